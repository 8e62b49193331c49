"""Point-in-time join benchmark: featuremill's strategies against a Feast-style range join.

Everything runs in one Spark application on the same generated data (written once to Parquet,
so every method reads files as a real job would). Each method's full output is materialised with
the ``noop`` sink (no driver collection); timings are medians of ``runs`` after ``warmup`` runs.
Before timing, every method's result is checked against the first one: same row count, same
checksum over the spine id and the feature columns (a sum of 64-bit row hashes, order-free).

Methods (``METHODS``):

* ``window``: :func:`featuremill.transforms.pit.point_in_time_join` with ``strategy="window"``.
* ``broadcast``: the same with ``strategy="broadcast"``.
* ``last_ignorenulls``: the Tecton/tempo shape, union + ``last(struct, ignorenulls)`` over
  ``ORDER BY ts, is_spine`` (correct only without known-at; kept to price ``max(struct)``).
* ``feast_range_row_number``: Feast's Spark offline store shape: inner range join on the key
  with ``f.ts <= s.ts`` (and the TTL), ``ROW_NUMBER() OVER (PARTITION BY spine row ORDER BY
  f.ts DESC) = 1``, left join back to the spine. The spine row id is the spine's unique
  ``label_id`` (Feast concatenates keys and time without a separator; that collision bug is not
  reproduced here so the results can be compared).
* ``feast_template``: the full shape of Feast's Spark offline-store query template (string row
  ids, distinct points, range join, ROW_NUMBER, the range join's result joined again with the
  winners, left join back on the row id): what a Feast user on Spark runs.
* ``floor``: shuffle + sort of both inputs' keys and times by (key, time) with nothing else.
* ``floor_rows``: the same with every spine and feature column carried: the data movement no
  shuffle-based PIT join can avoid on unclustered inputs.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from featuremill.transforms.pit import FeatureSource, point_in_time_join

log = logging.getLogger(__name__)

FEATURE_COLUMNS = ("f_sum_7d", "f_count_7d", "f_last_amount")
METHODS = ("window", "broadcast", "last_ignorenulls", "feast_range_row_number", "floor")
#: Methods whose output is compared with featuremill's (the floors produce no join result).
FLOORS = ("floor", "floor_rows")
_T0_SECONDS = 1_704_067_200  # 2024-01-01 00:00:00 UTC


@dataclass(frozen=True)
class PitBenchData:
    """Generated inputs: the feature table and the spine (both Parquet) and their sizes."""

    features_path: str
    spine_path: str
    feature_rows: int
    spine_rows: int
    entities: int
    days: int
    feature_columns: tuple[str, ...] = FEATURE_COLUMNS


@dataclass
class MethodResult:
    method: str
    seconds: list[float] = field(default_factory=list)
    rows: int | None = None
    checksum: int | None = None
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


def generate(
    spark,
    path: str,
    *,
    feature_rows: int,
    entities: int,
    spine_rows: int,
    days: int = 90,
    seed: int = 7,
    null_fraction: float = 0.05,
) -> PitBenchData:
    """Write a feature table and a spine under ``path`` (Parquet) and describe them.

    Feature table: ``entity_id`` bigint, ``ts`` timestamp (unique per entity, spread over
    ``days``), ``known_at`` timestamp (the end of the day after ``ts``: rows become visible the
    next day), three feature columns with ``null_fraction`` genuine nulls. Spine: ``label_id``
    bigint (unique), ``entity_id`` (a few ids without any feature history), ``label_ts``, ``label``.
    Values derive from hashes of row ids, so the data does not depend on partitioning.
    """
    from pyspark.sql import functions as F

    span_us = days * 86_400 * 1_000_000
    per_entity = max(1, feature_rows // entities)
    step_us = span_us // per_entity

    def u(column, salt: int):  # uniform in [0, 1) from a hash: deterministic, partition-free
        return (F.abs(F.xxhash64(column, F.lit(seed), F.lit(salt))) % F.lit(1_000_000)) / F.lit(1_000_000.0)

    rid = F.col("id")
    features = (
        spark.range(0, feature_rows, numPartitions=max(2, feature_rows // 1_000_000 * 2))
        .select(
            (rid % entities).alias("entity_id"),
            (
                F.lit(_T0_SECONDS * 1_000_000)
                + (rid / entities).cast("long") * step_us
                + (u(rid, 1) * (step_us - 1)).cast("long")
            ).alias("ts_us"),
            u(rid, 2).alias("r1"),
            u(rid, 3).alias("r2"),
            u(rid, 4).alias("r3"),
        )
        .select(
            "entity_id",
            F.timestamp_micros("ts_us").alias("ts"),
            F.timestamp_micros(F.expr("(floor(ts_us / 86400000000) + 2) * 86400000000")).alias("known_at"),
            F.when(F.col("r1") >= null_fraction, F.round(F.col("r2") * 1000, 2)).alias("f_sum_7d"),
            (F.col("r3") * 40).cast("bigint").alias("f_count_7d"),
            F.when(F.col("r2") >= null_fraction, F.round(F.col("r3") * 100, 2)).alias("f_last_amount"),
        )
    )
    spine = spark.range(0, spine_rows, numPartitions=max(2, spine_rows // 500_000 * 2)).select(
        rid.alias("label_id"),
        # 1% of the spine asks about entities that have no history at all
        F.when(u(rid, 5) < 0.01, F.lit(entities) + rid % 97)
        .otherwise((u(rid, 6) * entities).cast("long"))
        .alias("entity_id"),
        F.timestamp_micros(F.lit(_T0_SECONDS * 1_000_000) + (u(rid, 7) * span_us).cast("long")).alias("label_ts"),
        (u(rid, 8) < 0.2).cast("int").alias("label"),
    )
    features_path, spine_path = f"{path.rstrip('/')}/features", f"{path.rstrip('/')}/spine"
    features.write.mode("overwrite").parquet(features_path)
    spine.write.mode("overwrite").parquet(spine_path)
    return PitBenchData(features_path, spine_path, feature_rows, spine_rows, entities, days)


def _source(
    features, *, ttl_seconds: int | None, known_at: bool, columns: Sequence[str] = FEATURE_COLUMNS
) -> FeatureSource:
    return FeatureSource(
        name="bench",
        frame=features,
        keys=("entity_id",),
        event_time="ts",
        columns=tuple(columns),
        known_at="known_at" if known_at else None,
        ttl_seconds=ttl_seconds,
    )


def method_frames(
    spark, data: PitBenchData, *, ttl_seconds: int | None = None, known_at: bool = False
) -> dict[str, Callable[[], object]]:
    """Method name -> a function building that method's output DataFrame (not yet executed)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    columns = tuple(data.feature_columns)
    ttl_interval = F.expr(f"INTERVAL {ttl_seconds} SECONDS") if ttl_seconds is not None else None

    def read():
        return spark.read.parquet(data.features_path), spark.read.parquet(data.spine_path)

    def featuremill(strategy: str):
        def build():
            features, spine = read()
            source = _source(features, ttl_seconds=ttl_seconds, known_at=known_at, columns=columns)
            return point_in_time_join(spine, [source], spine_time="label_ts", strategy=strategy)

        return build

    def last_ignorenulls():
        features, spine = read()
        s = spine.select(
            "entity_id",
            F.col("label_ts").alias("t"),
            F.lit(1).alias("side"),
            F.struct(*spine.columns).alias("spine"),
            F.lit(None).alias("m"),
        )
        f = features.select(
            "entity_id",
            F.col("ts").alias("t"),
            F.lit(0).alias("side"),
            F.lit(None).alias("spine"),
            F.struct(F.col("ts").alias("ts"), *columns).alias("m"),
        )
        w = Window.partitionBy("entity_id").orderBy("t", "side").rowsBetween(Window.unboundedPreceding, 0)
        out = (
            s.unionByName(f)
            .select("side", "spine", F.last("m", ignorenulls=True).over(w).alias("m"))
            .where(F.col("side") == 1)
        )
        ok = F.col("m").isNotNull()
        if ttl_seconds is not None:
            ok = ok & (F.col("m.ts") > F.col("spine.label_ts") - ttl_interval)
        return out.select("spine.*", *[F.when(ok, F.col(f"m.{c}")).alias(c) for c in columns])

    def feast():
        features, spine = read()
        fv = features.select(F.col("entity_id").alias("fv_entity_id"), F.col("ts").alias("fv_ts"), *columns)
        cond = (F.col("entity_id") == F.col("fv_entity_id")) & (F.col("fv_ts") <= F.col("label_ts"))
        if ttl_seconds is not None:
            cond = cond & (F.col("fv_ts") > F.col("label_ts") - ttl_interval)
        rn = Window.partitionBy("label_id").orderBy(F.col("fv_ts").desc())
        best = (
            spine.select("label_id", "entity_id", "label_ts")
            .join(fv, cond, "inner")
            .withColumn("rn", F.row_number().over(rn))
            .where("rn = 1")
            .select(F.col("label_id").alias("best_label_id"), *columns)
        )
        return spine.join(best, spine["label_id"] == best["best_label_id"], "left").drop("best_label_id")

    def feast_template():
        # The shape of Feast's Spark offline store (MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN in
        # feast/infra/offline_stores/contrib/spark_offline_store/spark.py), one feature view:
        # an entity row id made of the keys and the time as strings; the distinct (keys, time,
        # row id) points; the feature view pre-filtered to the spine's time range (min/max taken
        # on the driver, as Feast does); "base" = inner range join on the key with
        # f.ts <= s.ts (and the TTL); "latest" = ROW_NUMBER() per row id ordered by f.ts DESC = 1;
        # base joined again with latest on (row id, f.ts), then left-joined to the spine on the
        # row id. Written with DataFrames here; same joins, same windows. The TTL bound is
        # f.ts > s.ts - ttl (Feast uses >=) so that every method answers the same question.
        features, spine = read()
        row_id = F.concat(F.col("entity_id").cast("string"), F.col("label_ts").cast("string"))
        entity_df = spine.select("*", F.col("label_ts").alias("entity_timestamp"), row_id.alias("row_id"))
        points = entity_df.select("entity_id", "entity_timestamp", "row_id").distinct()  # GROUP BY
        bounds = spine.agg(F.min("label_ts"), F.max("label_ts")).first()
        subquery = features.select(
            F.col("ts").alias("event_timestamp"), F.col("entity_id").alias("fv_entity_id"), *columns
        ).where(F.col("event_timestamp") <= F.lit(bounds[1]))
        cond = (F.col("event_timestamp") <= F.col("entity_timestamp")) & (F.col("fv_entity_id") == F.col("entity_id"))
        if ttl_seconds is not None:
            subquery = subquery.where(F.col("event_timestamp") >= F.lit(bounds[0]) - ttl_interval)
            cond = cond & (F.col("event_timestamp") > F.col("entity_timestamp") - ttl_interval)
        base = subquery.join(points, cond, "inner").select("event_timestamp", *columns, "entity_timestamp", "row_id")
        rn = Window.partitionBy("row_id").orderBy(F.col("event_timestamp").desc())
        latest = (
            base.select("event_timestamp", "row_id", F.row_number().over(rn).alias("row_number"))
            .where("row_number = 1")
            .drop("row_number")
        )
        cleaned = base.join(latest, ["row_id", "event_timestamp"], "inner").select("row_id", *columns)
        return entity_df.join(cleaned, "row_id", "left").select(*spine.columns, *columns)

    def floor():
        features, spine = read()
        both = spine.select("entity_id", F.col("label_ts").alias("t")).unionByName(
            features.select("entity_id", F.col("ts").alias("t"))
        )
        return both.repartition("entity_id").sortWithinPartitions("entity_id", "t")

    def floor_rows():
        # The floor with the data a join has to move: every spine column and every feature
        # column (plus the feature time) go through the shuffle and the sort.
        features, spine = read()
        s = spine.select("entity_id", F.col("label_ts").alias("t"), F.struct(*spine.columns).alias("spine"))
        f = features.select("entity_id", F.col("ts").alias("t"), F.struct("ts", *columns).alias("m"))
        both = s.unionByName(f, allowMissingColumns=True)
        return both.repartition("entity_id").sortWithinPartitions("entity_id", "t")

    methods = {
        "window": featuremill("window"),
        "broadcast": featuremill("broadcast"),
        "last_ignorenulls": last_ignorenulls,
        "feast_range_row_number": feast,
        "feast_template": feast_template,
        "floor": floor,
        "floor_rows": floor_rows,
    }
    if known_at:
        for name in ("last_ignorenulls", "feast_range_row_number", "feast_template"):
            methods.pop(name)
    return methods


def checksum(df, columns: Sequence[str] = FEATURE_COLUMNS) -> tuple[int, int]:
    """(rows, content hash over label_id and the features): order-free, the project's one content
    fingerprint (:mod:`featuremill.core.fingerprint`)."""
    from pyspark.sql import functions as F

    from featuremill.core.fingerprint import content_hash_aggregate

    row = df.agg(F.count(F.lit(1)).alias("n"), content_hash_aggregate(df, "s", ("label_id",) + tuple(columns))).first()
    return int(row["n"]), int(row["s"] or 0)


def run(
    spark,
    data: PitBenchData,
    *,
    methods: Sequence[str] = METHODS,
    runs: int = 3,
    warmup: int = 1,
    ttl_seconds: int | None = None,
    known_at: bool = False,
) -> list[MethodResult]:
    """Check every method's result, then time them (``noop`` sink) round-robin; medians in results.

    Rounds interleave the methods (``warmup`` untimed rounds, then ``runs`` timed ones), so a
    change of load on a shared machine hits every method alike instead of whichever ran last.
    """
    frames = method_frames(spark, data, ttl_seconds=ttl_seconds, known_at=known_at)
    results = [MethodResult(name) for name in methods if name in frames]
    for result in results:
        if result.method not in FLOORS:
            result.rows, result.checksum = checksum(frames[result.method](), data.feature_columns)
    for round_no in range(warmup + runs):
        for result in results:
            began = time.perf_counter()
            frames[result.method]().write.format("noop").mode("overwrite").save()
            if round_no >= warmup:
                result.seconds.append(time.perf_counter() - began)
    for result in results:
        log.info("pit bench %s: %s", result.method, ", ".join(f"{s:.2f}s" for s in result.seconds))
    return results


def markdown_table(results: Sequence[MethodResult], *, baseline: str = "window") -> str:
    """The results as a Markdown table: median seconds, ratio to ``baseline``, rows, checksum match."""
    base = next((r for r in results if r.method == baseline), None)
    reference = next((r for r in results if r.checksum is not None), None)
    lines = ["| method | median s | runs s | x window | rows | same result |", "|---|---|---|---|---|---|"]
    for r in results:
        ratio = f"{r.median / base.median:.2f}" if base and base.median and r.median else "-"
        same = (
            "-"
            if r.checksum is None
            else ("yes" if reference and (r.rows, r.checksum) == (reference.rows, reference.checksum) else "NO")
        )
        runs_s = " ".join(f"{s:.2f}" for s in r.seconds)
        lines.append(
            f"| {r.method} | {r.median:.2f} | {runs_s} | {ratio} | {r.rows if r.rows is not None else '-'} | {same} |"
        )
    return "\n".join(lines)
