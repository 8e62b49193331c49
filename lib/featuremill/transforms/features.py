"""Window features: rolling aggregates, lags, time since the previous event, ratios.

Semantics (see ``docs/pipeline-config.md``):

* The output grain is one row per entity and distinct event time ``t``: the entity's state
  after every event at or before ``t``. Events sharing a timestamp are folded into one row.
* A rolling aggregate with window ``w`` covers events with time in ``(t - w, t]``: the left
  edge is excluded, the right edge (every event at ``t``, ties included) is included.
* ``lag`` with offset ``n`` is the value of the column ``n`` events before the latest event at
  ``t``, events at one instant being ordered by the source key; null when that event is older
  than the window or missing.
* ``time_since_previous`` is the seconds from the entity's latest event strictly before ``t``
  (within the window) to ``t``; null for the first event in the window.
* ``ratio`` divides two features of the same row; null when the denominator is 0 or null.
* ``stddev`` is the sample standard deviation (null for a single value); every aggregate
  ignores null inputs, and ``count`` without a column counts events.
* ``first`` / ``last`` are the column's value at the earliest / latest event in the window whose
  value is not null, events at one instant ordered by the source key; ``count_distinct`` counts
  the distinct non-null values; ``percentile`` is Spark's ``percentile_approx`` (accuracy 10000):
  the smallest value with at least ``p * n`` of the window's ``n`` non-null values at or below it,
  exact while a window holds fewer than 10000 values, within a rank error of ``n / 10000`` above.
* ``_known_at`` (when the events carry a landing date): the start of the day after the latest
  landing date among the entity's events in ``(t - W, t]``, ``W`` the largest window of the set.
  Every value of the row depends only on those events, so before that instant at least one of
  them had not landed and the row as stored could not have been computed. Point-in-time joins
  with known-at on use it to keep late-arriving data out of the past.

Every feature only looks back over its window, so computing a date from that date's events
plus the largest window's lookback gives exactly the values of a full recompute.

Plan shape: one shuffle by entity and one sort by (entity, time, key) feed two Window
operators (row-ordered lags, then range frames); ``explain()`` shows a single Exchange.

Cost: ``count`` (of events or of a column), and ``sum`` / ``mean`` of an integer column (``sum``
of a decimal column too), are differences of running totals: the total up to ``t`` minus the
total up to ``t - w``, two frames that start at the entity's first event, which Spark updates
once per row. Those totals are exact, so the values are the window's own to the last bit. Every
other aggregate (and those over floating-point columns, where a difference of running totals
would round differently) uses a sliding range frame, which Spark re-aggregates over the frame's
rows each time it moves.
"""

from __future__ import annotations

from collections.abc import Sequence

from featuremill.config import FeatureSpec
from featuremill.core.sql import col, quote_identifier

TS_MICROS = "__fm_ts_us"
KNOWN_AT = "_known_at"
_NEXT_TS = "__fm_next_ts_us"
#: percentile_approx's accuracy: the rank error is at most n / accuracy.
PERCENTILE_ACCURACY = 10_000
_WINDOW_AGGS = {
    "count": "count",
    "sum": "sum",
    "mean": "avg",
    "stddev": "stddev_samp",
    "min": "min",
    "max": "max",
}


def _value_column(feature: FeatureSpec):
    """The input of an aggregate: the column (or 1 for a plain count), masked by ``where``."""
    from pyspark.sql import functions as F

    value = col(feature.column) if feature.column else F.lit(1)
    if feature.where is not None:
        value = F.when(col(feature.where.column) == F.lit(feature.where.equals), value)
    return value


_ORDERED_AGGS = ("first", "last", "count_distinct", "percentile")


def _running_total_types(feature: FeatureSpec, schema) -> tuple[str | None, str] | None:
    """``(type of the running sums, type of the result)`` when a rolling feature is computed from
    running totals (``None`` as the first for a ``count``, which sums nothing); ``None`` when it
    keeps a sliding frame.

    Running totals: every ``count``; ``sum`` / ``mean`` of an integer column; ``sum`` of a decimal
    column with at most 28 digits and 6 decimals (its totals fit decimal(38, s) and a difference of
    two keeps the scale). A difference of running totals equals the window's own aggregate only
    where the arithmetic is exact: floating-point inputs (and a decimal mean, whose rounding is
    Spark's own) keep the sliding frame. Sums of 32-bit (or narrower) values run in bigint, which
    overflows only past 2**32 events of the largest int; a bigint column's totals can leave the
    bigint range while a window's sum does not (Spark's ANSI sum would then fail), so they run in
    decimal(38, 0), slower per update but exact.
    """
    from pyspark.sql.types import DecimalType, IntegralType, LongType

    if feature.function == "count":
        return None, "bigint"
    if feature.function not in ("sum", "mean") or feature.column is None:
        return None
    try:
        dtype = schema[feature.column].dataType
    except (KeyError, ValueError):  # a nested or computed column: keep the sliding frame
        return None
    if isinstance(dtype, IntegralType):
        total = "decimal(38,0)" if isinstance(dtype, LongType) else "bigint"
        return total, ("bigint" if feature.function == "sum" else "double")
    if feature.function == "sum" and isinstance(dtype, DecimalType) and dtype.precision <= 28 and dtype.scale <= 6:
        return f"decimal(38,{dtype.scale})", f"decimal({dtype.precision + 10},{dtype.scale})"
    return None


def _running_total_aggregate(feature: FeatureSpec, by_time, *, total_type: str | None, result_type: str):
    """``count`` / ``sum`` / ``mean`` over ``(t - window, t]`` as running totals up to ``t`` minus
    running totals up to ``t - window`` (both frames start at the entity's first event), in the
    types :func:`_running_total_types` chose.

    Spark evaluates a frame that starts unbounded incrementally (one update per row), where a
    sliding range frame re-aggregates every row of the frame each time it moves: the cost no longer
    grows with the rows in the window. The totals are exact, so the difference is exactly the
    window's aggregate, whatever the running totals' start, which keeps an incremental run equal to
    a full recompute. Types and nulls are the sliding frame's: ``count`` bigint; ``sum`` bigint for
    integers, decimal(p + 10, s) for decimals, null when the window holds no non-null value;
    ``mean`` double: the window's sum as a double over the count, which is what Spark's ``avg`` of
    integers gives while its own double sum is exact (below 2**53), and closer above that.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    value = _value_column(feature)
    upto_t = by_time.rangeBetween(Window.unboundedPreceding, 0)
    before = by_time.rangeBetween(Window.unboundedPreceding, -feature.window_seconds * 1_000_000)
    # count over an empty frame is 0, so the difference needs no null handling
    count = F.count(value).over(upto_t) - F.count(value).over(before)
    if total_type is None:
        return count
    total = value.cast(total_type)
    window_sum = F.sum(total).over(upto_t) - F.coalesce(F.sum(total).over(before), F.lit(0).cast(total_type))
    if feature.function == "sum":
        return F.when(count > 0, window_sum.cast(result_type))
    return F.when(count > 0, window_sum.cast("double") / count.cast("double"))


def _range_aggregate(feature: FeatureSpec, frame, *, order_key: Sequence[str]):
    """The aggregate of a range-frame feature over ``frame`` (see the module docstring)."""
    from pyspark.sql import functions as F

    value = _value_column(feature)
    if feature.function in _WINDOW_AGGS:
        return getattr(F, _WINDOW_AGGS[feature.function])(value).over(frame)
    if feature.function == "count_distinct":
        # Spark has no DISTINCT window aggregates; a set per frame is exact.
        return F.size(F.collect_set(value).over(frame)).cast("bigint")
    if feature.function == "percentile":
        return F.percentile_approx(value, F.lit(feature.percentile), F.lit(PERCENTILE_ACCURACY)).over(frame)
    # first / last: min_by / max_by over (time, key) ignore rows whose ordering is null, so a
    # null ordering for null values makes them skip nulls, and the key breaks ties.
    ordering = F.when(value.isNotNull(), F.struct(col(TS_MICROS), *[col(k) for k in order_key]))
    return (F.min_by if feature.function == "first" else F.max_by)(value, ordering).over(frame)


def lag_within_window(value, *, offset: int, ts_micros, window_seconds: int, over):
    """Column expression: ``value`` of the row ``offset`` rows back in ``over``, null when that row
    is missing or its time (``ts_micros``, microseconds) is not in ``(t - window, t]``.

    ``over`` is a window partitioned by entity and ordered by time (ties by a key, if any).
    """
    from pyspark.sql import functions as F

    lagged_ts = F.lag(ts_micros, offset).over(over)
    return F.when(lagged_ts > ts_micros - F.lit(window_seconds * 1_000_000), F.lag(value, offset).over(over))


def with_window_features(
    events,
    *,
    entity: Sequence[str],
    event_time: str,
    order_key: Sequence[str],
    features: Sequence[FeatureSpec],
    known_at_from: str | None = None,
):
    """DataFrame -> DataFrame: window features per entity and event time.

    Input columns: ``entity`` keys, ``event_time`` (timestamp), ``order_key`` (columns that order
    events sharing a timestamp, normally the source's unique key) and every column the features
    read. Rows whose entity key or event time is null must have been filtered out before.

    Output: one row per (``entity``, ``event_time``) with the entity keys, ``event_time`` and one
    column per feature, in declaration order. Types: ``count``/``count_distinct`` bigint, ``sum``
    the Spark sum type of the column, ``mean``/``stddev``/``ratio``/``time_since_previous`` double,
    ``min``/``max``/``lag``/``first``/``last``/``percentile`` the column's type. With
    ``known_at_from`` (a date column: the day each event landed) the output also has
    ``_known_at`` (timestamp, the start of the day after the latest landing date in the row's
    largest window, midnight in the session time zone).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    entity_cols = [col(k) for k in entity]
    ts_us = F.expr(f"unix_micros({quote_identifier(event_time)})")
    df = events.withColumn(TS_MICROS, ts_us)
    by_rows = Window.partitionBy(*entity_cols).orderBy(col(TS_MICROS), *[col(k) for k in order_key])
    by_time = Window.partitionBy(*entity_cols).orderBy(col(TS_MICROS))

    # First Window operator: offsets in event order. Its sort (entity, time, key) also satisfies
    # the range windows' order (entity, time), so Spark adds no second sort.
    row_level = [F.lead(col(TS_MICROS), 1).over(by_rows).alias(_NEXT_TS)]
    for f in features:
        if f.function == "lag":
            lagged = lag_within_window(
                col(f.column), offset=f.offset, ts_micros=col(TS_MICROS), window_seconds=f.window_seconds, over=by_rows
            )
            row_level.append(lagged.alias(f.name))
    df = df.select("*", *row_level)

    range_level = []
    for f in features:
        running = _running_total_types(f, events.schema) if f.function in _WINDOW_AGGS else None
        if running is not None:
            total_type, result_type = running
            range_level.append(
                _running_total_aggregate(f, by_time, total_type=total_type, result_type=result_type).alias(f.name)
            )
        elif f.function in _WINDOW_AGGS or f.function in _ORDERED_AGGS:
            frame = by_time.rangeBetween(-(f.window_seconds * 1_000_000 - 1), 0)
            range_level.append(_range_aggregate(f, frame, order_key=order_key).alias(f.name))
        elif f.function == "time_since_previous":
            frame = by_time.rangeBetween(-(f.window_seconds * 1_000_000 - 1), -1)
            previous = F.max(col(TS_MICROS)).over(frame)
            range_level.append(((col(TS_MICROS) - previous) / F.lit(1_000_000.0)).alias(f.name))
    known_at = []
    if known_at_from is not None:
        # One more range frame over the same (entity, time) order: same Window operator, no sort.
        largest_us = max(f.window_seconds or 0 for f in features) * 1_000_000
        frame = by_time.rangeBetween(-(largest_us - 1), 0) if largest_us else by_time.rangeBetween(0, 0)
        latest_landing = F.max(col(known_at_from)).over(frame)
        range_level.append(F.date_add(latest_landing, 1).cast("timestamp").alias(KNOWN_AT))
        known_at = [col(KNOWN_AT)]
    df = df.select("*", *range_level)

    # Keep the last event of each instant: its row-level lags are "as of t" and range values are
    # identical across the instant.
    df = df.where(col(_NEXT_TS).isNull() | (col(_NEXT_TS) != col(TS_MICROS)))

    for f in features:
        if f.function == "ratio":
            expr = f"try_divide({quote_identifier(f.numerator)}, {quote_identifier(f.denominator)})"
            df = df.withColumn(f.name, F.expr(expr).cast("double"))
    return df.select(*entity_cols, col(event_time), *[col(f.name) for f in features], *known_at)
