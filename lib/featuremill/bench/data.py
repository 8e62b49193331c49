"""Benchmark inputs derived from the package's deterministic generator (:mod:`featuremill.pipelines.demo_data`).

Sizes scale with the number of events: customers (the entity) = events / 40 as in the demo, with
the demo's skewed customer distribution (the busiest customer has about 0.2% of all events), and
a fixed number of days (91 by default: 90 days of history plus the new day the incremental figure
needs), so per-entity density, and therefore the work per event, is the same at every size.

Everything here is preparation, written to Parquet once and never timed.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from featuremill.config import FeatureSpec
from featuremill.pipelines.demo_data import DemoDataSpec, transactions_frame

log = logging.getLogger(__name__)

DEFAULT_DAYS = 91
#: The feature table the point-in-time join benchmark joins: three features of the demo's
#: customer_activity set, computed by featuremill's own window transform.
PIT_FEATURES = ("f_sum_7d", "f_count_7d", "f_mean_30d")


def spec_for(events: int, *, days: int = DEFAULT_DAYS, seed: int = 7) -> DemoDataSpec:
    return DemoDataSpec(events=events, days=days, seed=seed)


def typed_events(spark, spec: DemoDataSpec):
    """The demo transactions parsed to their declared types, dirty and duplicate rows dropped.

    Columns: ``event_id`` string, ``customer_id`` bigint, ``product_id`` bigint, ``event_ts``
    timestamp, ``amount`` double, ``quantity`` int, ``channel`` string, ``landing_date`` date.
    Not the ingest job (that is measured end to end): a plain typed copy of the valid events.
    """
    from pyspark.sql import functions as F

    raw = transactions_frame(spark, spec)
    typed = raw.select(
        "event_id",
        F.expr("try_cast(customer_id AS BIGINT)").alias("customer_id"),
        F.expr("try_cast(product_id AS BIGINT)").alias("product_id"),
        F.expr("try_to_timestamp(event_ts, 'yyyy-MM-dd HH:mm:ss')").alias("event_ts"),
        F.expr("try_cast(amount AS DOUBLE)").alias("amount"),
        F.expr("try_cast(quantity AS INT)").alias("quantity"),
        "channel",
        F.to_date("event_date").alias("landing_date"),
    )
    ok = (
        F.col("customer_id").isNotNull()
        & F.col("event_ts").isNotNull()
        & F.col("amount").isNotNull()
        & ~F.isnan("amount")
        & (F.abs("amount") != F.lit(float("inf")))
    )
    # Exact re-sends share the event id; keep the copy that landed first (a shuffle, but untimed).
    return (
        typed.where(ok)
        .groupBy("event_id")
        .agg(F.min_by(F.struct(*[c for c in typed.columns if c != "event_id"]), F.col("landing_date")).alias("e"))
        .select("event_id", "e.*")
    )


@dataclass(frozen=True)
class PreparedEvents:
    path: str
    rows: int
    customers: int
    days: int
    start: dt.date


def write_events(spark, spec: DemoDataSpec, path: str) -> PreparedEvents:
    """Typed valid events as Parquet (``path``), and their row count."""
    typed_events(spark, spec).write.mode("overwrite").parquet(path)
    rows = spark.read.parquet(path).count()
    spec = spec.resolved()
    return PreparedEvents(path, rows, spec.customers, spec.days, spec.start_date)


def pit_feature_specs() -> list[FeatureSpec]:
    def spec(name, function, column, window, seconds):
        return FeatureSpec(
            name=name,
            function=function,
            description="",
            owner="",
            version=1,
            column=column,
            window=window,
            window_seconds=seconds,
        )

    return [
        spec("f_sum_7d", "sum", "amount", "7d", 7 * 86400),
        spec("f_count_7d", "count", None, "7d", 7 * 86400),
        spec("f_mean_30d", "mean", "amount", "30d", 30 * 86400),
    ]


def write_pit_inputs(spark, events: PreparedEvents, path: str, *, spine_fraction: float = 0.25, seed: int = 7):
    """Feature table and spine for the point-in-time join benchmark, from the typed events.

    Feature table (``<path>/features``): the output of :func:`featuremill.transforms.features.with_window_features`
    over the events (one row per customer and event time) renamed to the benchmark's columns:
    ``entity_id`` bigint, ``ts`` timestamp, ``known_at`` timestamp (the row's ``_known_at``),
    :data:`PIT_FEATURES`. Spine (``<path>/spine``): ``spine_fraction`` of the events, hash-sampled:
    ``label_id`` (unique), ``entity_id``, ``label_ts`` = the event time shifted by a uniform
    offset in [-1 day, +2 days) (so some labels come before any history of their customer), and
    ``label``.
    """
    from pyspark.sql import functions as F

    from featuremill.bench.pit import PitBenchData
    from featuremill.transforms.features import with_window_features

    ev = spark.read.parquet(events.path)
    feats = with_window_features(
        ev,
        entity=["customer_id"],
        event_time="event_ts",
        order_key=["event_id"],
        features=pit_feature_specs(),
        known_at_from="landing_date",
    )
    feats = feats.select(
        F.col("customer_id").alias("entity_id"),
        F.col("event_ts").alias("ts"),
        F.col("_known_at").alias("known_at"),
        *PIT_FEATURES,
    )

    def u(salt: int):
        return (F.abs(F.xxhash64(F.col("event_id"), F.lit(seed), F.lit(salt))) % F.lit(1_000_000)) / F.lit(1e6)

    offset_us = (u(2) * F.lit(3 * 86_400_000_000) - F.lit(86_400_000_000)).cast("long")
    spine = ev.where(u(1) < F.lit(spine_fraction)).select(
        F.expr("CAST(substring(event_id, 2) AS BIGINT)").alias("label_id"),
        F.col("customer_id").alias("entity_id"),
        F.timestamp_micros(F.unix_micros("event_ts") + offset_us).alias("label_ts"),
        (u(3) < F.lit(0.2)).cast("int").alias("label"),
    )
    features_path, spine_path = f"{path.rstrip('/')}/features", f"{path.rstrip('/')}/spine"
    feats.write.mode("overwrite").parquet(features_path)
    spine.write.mode("overwrite").parquet(spine_path)
    feature_rows = spark.read.parquet(features_path).count()
    spine_rows = spark.read.parquet(spine_path).count()
    return PitBenchData(
        features_path, spine_path, feature_rows, spine_rows, events.customers, events.days, feature_columns=PIT_FEATURES
    )
