"""Point-in-time (as-of) join: attach to each spine row the latest feature row it could have seen.

Semantics, for a spine (label) row with keys ``K`` and time ``s``, and one feature source:

* **Visible rows**: feature rows with the same keys (every key column equal, compared column by
  column: no concatenated row ids, so ``("a1", "b")`` and ``("a", "1b")`` never meet), event
  time ``f <= s`` (``f < s`` with ``strict``) and, when the source has a known-at column ``k``,
  ``k <= s``: a value is visible only once it was known. Feature rows with a null key, a null
  event time or (known-at on) a null known-at are never visible.
* **The match** is the visible row with the latest event time. Ties are broken
  deterministically by, in this order: the known-at time (later wins: the latest revision known
  at ``s``), the declared ``tie_breakers`` (larger wins), then the feature values themselves
  (the larger struct wins, so equal rows are interchangeable and the result never depends on
  partitioning or run).
* **TTL**: with ``ttl_seconds`` the match must also satisfy ``f > s - ttl`` (an age of exactly
  ``ttl`` is too old, like the ``(t - w, t]`` feature windows); otherwise every feature of that
  source is null. Older visible rows are older still, so filtering the match is exact.
* **Nulls**: a genuine null feature value of the match is returned as null; it is never
  replaced by an older non-null value (the values travel together in one struct).
* **Exactly once**: every spine row is in the output exactly once, with its columns unchanged
  and in their order, followed by the feature columns; spine rows that repeat stay repeated,
  spine rows with a null key or null time, or without a visible match, get null features.

Two strategies give identical results:

* ``window`` (default, scales with data): the spine rows and the feature rows are unioned,
  partitioned by the key columns and sorted by one long, ``2 * visible_from_us`` for feature
  rows and ``2 * s_us + 1`` for spine rows (a feature row visible at ``s`` sorts before the spine
  row). A running ``max(struct(f, k, tie_breakers, values))`` over that order then is, at each
  spine row, the best visible row. ``visible_from_us`` is ``f`` (``f + 1`` when strict; times
  are whole microseconds) or ``max(f, k)`` with known-at, so known-at costs nothing extra. Plan:
  one Exchange, one Sort and one Window per distinct spine-key tuple (sources keyed by the same
  spine columns share them); no row ids, no join back, no rows x versions intermediate.
* ``broadcast`` (small spines): the (keys, s) points of the spine are broadcast, joined
  to the feature rows on the keys with the visibility and TTL conditions, reduced with the same
  ``max(struct)`` per point and joined back to the spine through a broadcast. The feature table
  is scanned but never shuffled; the matched intermediate is points x visible versions (bounded
  by the TTL), so it suits spines far smaller than the feature table.

See ``docs/training-sets.md`` for the measurements behind the choice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from featuremill.core.errors import TrainingSetError
from featuremill.core.sql import col, quote_identifier

log = logging.getLogger(__name__)

STRATEGIES = ("window", "broadcast")
RESERVED_PREFIX = "__fm_pit_"
_ORDER = "__fm_pit_order"
_IS_SPINE = "__fm_pit_is_spine"
_SPINE = "__fm_pit_spine"
_MATCH = "__fm_pit_match_{}"
_POINT_KEY = "__fm_pit_key_{}"
_POINT_TIME = "__fm_pit_time"
# Fields of the match struct, in comparison order; the values follow as v0, v1, ...
_F_TS = "f_us"
_F_KNOWN = "k_us"


@dataclass(frozen=True, eq=False)
class FeatureSource:
    """One set of feature rows to attach to the spine.

    ``frame`` holds the feature rows: ``keys`` (compared to the spine's ``spine_keys``, same order;
    default the same names), ``event_time`` (timestamp), ``columns`` (the features to attach,
    under the same names), optionally ``known_at`` (timestamp: when the row's values became
    known) and ``tie_breakers`` (orderable columns; the larger wins among rows with the same
    event time). ``event_time_as`` / ``known_at_as`` name optional output columns holding the
    matched row's event time / known-at time (null without a match).
    """

    name: str
    frame: object
    keys: tuple[str, ...]
    event_time: str
    columns: tuple[str, ...]
    spine_keys: tuple[str, ...] | None = None
    known_at: str | None = None
    tie_breakers: tuple[str, ...] = ()
    ttl_seconds: int | None = None
    event_time_as: str | None = None
    known_at_as: str | None = None

    @property
    def join_keys(self) -> tuple[str, ...]:
        return tuple(self.spine_keys or self.keys)

    @property
    def output_columns(self) -> tuple[str, ...]:
        extra = tuple(c for c in (self.event_time_as, self.known_at_as) if c)
        return tuple(self.columns) + extra


@dataclass(frozen=True)
class _Prepared:
    """A source after checks: its candidate rows and how to read the match back."""

    source: FeatureSource
    index: int
    rows: object  # DataFrame: __fm_pit_key_<j> (join type), __fm_pit_order (visible-from us), match struct
    key_types: tuple[str, ...]  # the type both sides' keys are compared as
    value_fields: tuple[str, ...] = field(default=())


def point_in_time_join(
    spine, sources: Sequence[FeatureSource], *, spine_time: str, strict: bool = False, strategy: str = "window"
):
    """DataFrame -> DataFrame: the spine with each source's features as of each spine row's time.

    ``spine`` needs the key columns of every source (``FeatureSource.join_keys``) and
    ``spine_time`` (timestamp); any other column passes through unchanged. Output grain: one row
    per spine row (exactly once, order of rows unspecified), the spine's columns in their order,
    then per source its ``columns`` (the feature table's types) and the optional
    ``event_time_as`` / ``known_at_as`` timestamps. Semantics in the module docstring.

    Raises :class:`TrainingSetError` naming the column when a key or time column is missing or
    has an incompatible type, or when an output column would collide with a spine column.
    """
    if strategy not in STRATEGIES:
        raise TrainingSetError(f"unknown point-in-time strategy {strategy!r} (use one of {', '.join(STRATEGIES)})")
    if not sources:
        return spine
    _check_spine(spine, sources, spine_time)
    prepared = [_prepare(spine, source, i, strict=strict) for i, source in enumerate(sources)]
    spine_columns = list(spine.columns)
    if strategy == "window":
        groups: dict[tuple, list[_Prepared]] = {}
        for p in prepared:
            groups.setdefault((p.source.join_keys, p.key_types), []).append(p)
        out = spine
        for (keys, key_types), members in groups.items():
            out = _window_pass(out, members, keys=keys, key_types=key_types, spine_time=spine_time)
    else:
        out = spine
        for p in prepared:
            out = _broadcast_pass(out, p, spine_time=spine_time)
    final = spine_columns + [c for p in prepared for c in p.source.output_columns]
    return out.select(*[col(c) for c in final])


# --------------------------------------------------------------------------------------------
# checks and preparation
# --------------------------------------------------------------------------------------------


def _fields(df) -> dict:
    return {f.name: f.dataType for f in df.schema.fields}


def _check_spine(spine, sources: Sequence[FeatureSource], spine_time: str) -> None:
    from pyspark.sql.types import TimestampType

    fields = _fields(spine)
    reserved = [c for c in spine.columns if c.startswith(RESERVED_PREFIX)]
    if reserved:
        raise TrainingSetError(f"spine column {reserved[0]!r} uses the reserved prefix {RESERVED_PREFIX!r}; rename it")
    if spine_time not in fields:
        raise TrainingSetError(f"spine has no time column {spine_time!r} (columns: {', '.join(spine.columns)})")
    if not isinstance(fields[spine_time], TimestampType):
        raise TrainingSetError(
            f"spine time column {spine_time!r} is {fields[spine_time].simpleString()}, not timestamp; cast it "
            "(a date means midnight in the session time zone: make that explicit with CAST(... AS TIMESTAMP))"
        )
    seen = set(spine.columns)
    for source in sources:
        if len(source.join_keys) != len(source.keys) or not source.keys:
            raise TrainingSetError(f"feature source {source.name!r}: spine_keys must list one spine column per key")
        for key in source.join_keys:
            if key not in fields:
                raise TrainingSetError(
                    f"spine has no key column {key!r} needed by feature source {source.name!r} "
                    f"(spine columns: {', '.join(spine.columns)})"
                )
        for name in source.output_columns:
            if name in seen:
                raise TrainingSetError(
                    f"feature source {source.name!r}: output column {name!r} already exists "
                    "(in the spine or an earlier source); rename the spine column"
                )
            seen.add(name)


def _integral(dtype) -> bool:
    from pyspark.sql.types import ByteType, IntegerType, LongType, ShortType

    return isinstance(dtype, (ByteType, ShortType, IntegerType, LongType))


def _prepare(spine, source: FeatureSource, index: int, *, strict: bool) -> _Prepared:
    """The candidate rows of one source: spine-key columns, visible-from time, match struct."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    frame = source.frame
    fields = _fields(frame)
    spine_fields = _fields(spine)
    needed = list(source.keys) + [source.event_time] + list(source.columns) + list(source.tie_breakers)
    needed += [source.known_at] if source.known_at else []
    for name in needed:
        if name not in fields:
            raise TrainingSetError(
                f"feature source {source.name!r} has no column {name!r} (columns: {', '.join(frame.columns)})"
            )
    for name in [source.event_time] + ([source.known_at] if source.known_at else []):
        if not isinstance(fields[name], TimestampType):
            raise TrainingSetError(
                f"feature source {source.name!r}: column {name!r} is {fields[name].simpleString()}, not timestamp"
            )
    if source.ttl_seconds is not None and source.ttl_seconds <= 0:
        raise TrainingSetError(f"feature source {source.name!r}: ttl must be positive, got {source.ttl_seconds}s")

    key_columns, key_types = [], []
    for j, (fkey, skey) in enumerate(zip(source.keys, source.join_keys)):
        ftype, stype = fields[fkey], spine_fields[skey]
        if ftype == stype:
            key_types.append(ftype.simpleString())
        elif _integral(ftype) and _integral(stype):
            # Compare both sides as bigint so 7 (int) meets 7 (bigint); nothing else is coerced.
            key_types.append("bigint")
        else:
            raise TrainingSetError(
                f"key {skey!r}: the spine has {stype.simpleString()} but feature source {source.name!r} has "
                f"{ftype.simpleString()} ({fkey!r}); cast the spine column to {ftype.simpleString()}"
            )
        key_columns.append(col(fkey).cast(key_types[-1]).alias(_POINT_KEY.format(j)))

    f_us = F.expr(f"unix_micros({quote_identifier(source.event_time)})")
    visible_from = f_us + F.lit(1) if strict else f_us  # f < s  <=>  f + 1us <= s
    parts = [f_us.alias(_F_TS)]
    valid = F.greatest(*[col(k).isNull() for k in source.keys], col(source.event_time).isNull())
    if source.known_at:
        k_us = F.expr(f"unix_micros({quote_identifier(source.known_at)})")
        visible_from = F.greatest(visible_from, k_us)
        parts.append(k_us.alias(_F_KNOWN))
        valid = F.greatest(valid, col(source.known_at).isNull())
    parts += [col(c).alias(f"t{j}") for j, c in enumerate(source.tie_breakers)]
    value_fields = tuple(f"v{j}" for j in range(len(source.columns)))
    parts += [col(c).alias(v) for c, v in zip(source.columns, value_fields)]
    rows = frame.where(valid == F.lit(False)).select(
        *key_columns, visible_from.alias(_ORDER), F.struct(*parts).alias(_MATCH.format(index))
    )
    return _Prepared(source=source, index=index, rows=rows, key_types=tuple(key_types), value_fields=value_fields)


def _outputs(p: _Prepared, *, match, s_us):
    """The output columns of one source from its match struct, with the TTL applied."""
    from pyspark.sql import functions as F

    source = p.source
    ok = match.isNotNull() & s_us.isNotNull()
    if source.ttl_seconds is not None:
        ok = ok & (match.getField(_F_TS) > s_us - F.lit(source.ttl_seconds * 1_000_000))
    out = [F.when(ok, match.getField(v)).alias(c) for c, v in zip(source.columns, p.value_fields)]
    if source.event_time_as:
        out.append(F.when(ok, F.timestamp_micros(match.getField(_F_TS))).alias(source.event_time_as))
    if source.known_at_as:
        if source.known_at:
            out.append(F.when(ok, F.timestamp_micros(match.getField(_F_KNOWN))).alias(source.known_at_as))
        else:
            out.append(F.lit(None).cast("timestamp").alias(source.known_at_as))
    return out


# --------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------


def _window_pass(
    spine, members: list[_Prepared], *, keys: tuple[str, ...], key_types: tuple[str, ...], spine_time: str
):
    """One shuffle + sort + running window for all sources keyed by the same spine columns."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    partition = [_POINT_KEY.format(j) for j in range(len(keys))]
    s_us = F.expr(f"unix_micros({quote_identifier(spine_time)})")
    # Spine rows: the whole spine row packed into one struct (so a feature row carries a single
    # null field for it through the shuffle, and spine columns come back with their own types),
    # plus the keys as compared (same type as the feature side) for the partitioning.
    spine_rows = spine.select(
        *[col(k).cast(t).alias(pk) for k, t, pk in zip(keys, key_types, partition)],
        (s_us * F.lit(2) + F.lit(1)).alias(_ORDER),
        F.lit(True).alias(_IS_SPINE),
        F.struct(*[col(c) for c in spine.columns]).alias(_SPINE),
    )
    union = spine_rows
    for p in members:
        feature_rows = p.rows.select(
            *[col(pk) for pk in partition],
            (col(_ORDER) * F.lit(2)).alias(_ORDER),
            F.lit(False).alias(_IS_SPINE),
            col(_MATCH.format(p.index)),
        )
        union = union.unionByName(feature_rows, allowMissingColumns=True)

    running = (
        Window.partitionBy(*[col(pk) for pk in partition])
        .orderBy(col(_ORDER))
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    matches = [F.max(col(_MATCH.format(p.index))).over(running).alias(_MATCH.format(p.index)) for p in members]
    joined = union.select(col(_ORDER), col(_IS_SPINE), col(_SPINE), *matches).where(col(_IS_SPINE))
    s_after = F.expr(f"({quote_identifier(_ORDER)} - 1) div 2")  # spine rows carry 2 * s_us + 1
    restored = [col(_SPINE).getField(c).alias(c) for c in spine.columns]
    features = [c for p in members for c in _outputs(p, match=col(_MATCH.format(p.index)), s_us=s_after)]
    return joined.select(*restored, *features)


def _broadcast_pass(spine, p: _Prepared, *, spine_time: str):
    """Broadcast the spine's (keys, time) points, range-join, reduce per point, broadcast back."""
    from pyspark.sql import functions as F

    keys = p.source.join_keys
    point_keys = [_POINT_KEY.format(j) for j in range(len(keys))]
    s_us = F.expr(f"unix_micros({quote_identifier(spine_time)})")
    not_null = F.greatest(*[col(k).isNull() for k in keys], col(spine_time).isNull()) == F.lit(False)
    spine_keys = [col(k).cast(t) for k, t in zip(keys, p.key_types)]
    # Not de-duplicated: repeated points only repeat pairs that the aggregate folds anyway, and a
    # distinct would cost a shuffle of the spine.
    points = spine.where(not_null).select(
        *[c.alias(pk) for c, pk in zip(spine_keys, point_keys)], s_us.alias(_POINT_TIME)
    )
    match = _MATCH.format(p.index)
    rows = p.rows.select(*[col(pk).alias(f"{pk}_f") for pk in point_keys], col(_ORDER), col(match))
    cond = F.col(_ORDER) <= F.col(_POINT_TIME)
    for pk in point_keys:
        cond = cond & (F.col(f"{pk}_f") == F.col(pk))
    if p.source.ttl_seconds is not None:
        # Pruning only (the exact TTL test is applied to the match below): rows older than the
        # TTL can never be the answer, so they need not reach the aggregate.
        cond = cond & (F.col(match).getField(_F_TS) > F.col(_POINT_TIME) - F.lit(p.source.ttl_seconds * 1_000_000))
    best = (
        rows.join(F.broadcast(points), on=cond, how="inner")
        .groupBy(*[F.col(pk) for pk in point_keys], F.col(_POINT_TIME))
        .agg(F.max(F.col(match)).alias(match))
    )
    back = F.col(_POINT_TIME) == s_us
    for c, pk in zip(spine_keys, point_keys):
        back = back & (F.col(pk) == c)
    joined = spine.join(F.broadcast(best), on=back, how="left")
    return joined.select(*[col(c) for c in spine.columns], *_outputs(p, match=F.col(match), s_us=s_us))
