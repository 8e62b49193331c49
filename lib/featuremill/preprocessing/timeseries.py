"""History helpers over an entity's feature rows: lags, differences, rolling z-score, EMA.

They run at the feature-table grain (one row per entity and instant, see :mod:`featuremill.transforms.features`)
inside the feature job, so a training set and a serving lookup read the same values. Each helper
has a time ``window`` ``W`` and, at a row with time ``t``, only sees rows of the same entity with
time in ``(t - W, t]``; the feature job widens its read by ``W`` so incremental runs equal a full
recompute. Definitions (``x`` is the feature column, rows ordered by time):

* ``<x>_lag<n>``: ``x`` of the n-th previous row; null when that row is older than the window or
  missing.
* ``<x>_diff<n>``: ``x - <x>_lag<n>`` (null when either is null).
* ``<x>_zscore``: ``(x - mean) / std`` over the *previous* rows in the window (the current row is
  excluded, so an outlier does not dampen its own score); sample std; null with fewer than two
  previous values or a zero std.
* ``<x>_ema`` (or the configured name): exponentially weighted mean over the rows in the window,
  current row included, weight ``(1 - alpha)^k`` for the row ``k`` rows back, null values skipped
  (pandas ``ewm(alpha=..., adjust=True, ignore_na=False).mean()`` when the whole history is
  inside the window). ``span: s`` means ``alpha = 2 / (s + 1)``.

Plan shape: one shuffle by entity and one sort feed the helpers' windows, whatever their number.
"""

from __future__ import annotations

from collections.abc import Sequence

from featuremill.core.sql import col, quote_identifier
from featuremill.preprocessing.spec import TimeseriesSpec
from featuremill.transforms.features import lag_within_window

_TS = "__fm_ts_us_h"
_ROW = "__fm_row_h"


def helper_lookback_seconds(helpers: Sequence[TimeseriesSpec]) -> int:
    """How much earlier history the helpers need beyond the features' own lookback."""
    return max((h.window_seconds for h in helpers), default=0)


def with_history_helpers(df, *, entity: Sequence[str], event_time: str, helpers: Sequence[TimeseriesSpec]):
    """DataFrame -> DataFrame: ``df`` plus one column per helper output (double), same rows.

    Input: one row per (``entity``, ``event_time``) (the feature-table grain) with every helper's
    column. Output columns are appended in declaration order (see :attr:`TimeseriesSpec.output_columns`).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not helpers:
        return df
    keys = [col(k) for k in entity]
    out = df.withColumn(_TS, F.expr(f"unix_micros({quote_identifier(event_time)})"))
    by_rows = Window.partitionBy(*keys).orderBy(col(_TS))
    out = out.withColumn(_ROW, F.row_number().over(by_rows))
    by_time = Window.partitionBy(*keys).orderBy(col(_TS))
    added = []
    for h in helpers:
        x = col(h.column).cast("double")
        w_us = h.window_seconds * 1_000_000
        lags = {}
        for n in sorted(set(h.lags) | set(h.diffs)):
            lags[n] = lag_within_window(x, offset=n, ts_micros=col(_TS), window_seconds=h.window_seconds, over=by_rows)
        for n in h.lags:
            added.append(lags[n].alias(f"{h.column}_lag{n}"))
        for n in h.diffs:
            added.append((x - lags[n]).alias(f"{h.column}_diff{n}"))
        if h.rolling_zscore:
            previous = by_time.rangeBetween(-(w_us - 1), -1)
            mean = F.avg(x).over(previous)
            std = F.stddev_samp(x).over(previous)
            enough = F.count(x).over(previous) >= 2
            added.append(F.when(enough & (std > 0), (x - mean) / std).alias(f"{h.column}_zscore"))
        if h.ema_alpha is not None:
            frame = by_time.rangeBetween(-(w_us - 1), 0)
            history = F.collect_list(F.struct(col(_ROW).alias("r"), x.alias("x"))).over(frame)
            decay = F.lit(1.0 - h.ema_alpha)

            def step(acc, e):
                weight = F.when(e["x"].isNull(), F.lit(0.0)).otherwise(F.pow(decay, col(_ROW) - e["r"]))
                return F.struct(
                    (acc["num"] + weight * F.coalesce(e["x"], F.lit(0.0))).alias("num"),
                    (acc["den"] + weight).alias("den"),
                )

            sums = F.aggregate(history, F.struct(F.lit(0.0).alias("num"), F.lit(0.0).alias("den")), step)
            ema = F.when(sums["den"] > 0, sums["num"] / sums["den"])
            added.append(ema.alias(h.ema_name or f"{h.column}_ema"))
    return out.select(*[col(c) for c in df.columns], *added)
