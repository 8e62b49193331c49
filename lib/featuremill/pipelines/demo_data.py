"""Deterministic synthetic e-commerce data for the demo, the tests and the benchmarks.

Generated with Spark itself, so 20M events take seconds, not minutes. Every value is a pure
function of (seed, row id) through ``xxhash64``, so the same arguments give the same rows whatever
the partitioning. Output (``<out>/``):

* ``transactions/event_date=YYYY-MM-DD/*.csv``: events (``event_id``, ``customer_id``,
  ``product_id``, ``event_ts``, ``amount``, ``quantity``, ``channel``), partitioned by the date
  the file landed;
* ``customers/*.csv`` (``customer_id``, ``segment``, ``country``, ``signup_date``) and
  ``products/*.csv`` (``product_id``, ``category``, ``unit_price``): small dimensions.

Dirty rows are mixed in on purpose, at fixed rates: unparseable amounts, null customer ids,
timestamps that are not timestamps, non-finite amounts, exact duplicate events (some landing a
day later), late events landing one to three days after their event date, customers missing
from the dimension, and bad rows in the dimensions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_START = dt.date(2026, 9, 1)
CHANNELS = ("web", "app", "store")
SEGMENTS = ("bronze", "silver", "gold")
COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL")
CATEGORIES = ("books", "electronics", "garden", "grocery", "home", "sports", "toys", "fashion")

#: Share of base events turned into each kind of dirty row.
DIRTY_RATES = {
    "bad_amount": 0.003,
    "null_customer": 0.002,
    "bad_timestamp": 0.002,
    "non_finite_amount": 0.0005,
    "duplicate": 0.005,
    "late": 0.01,
}


@dataclass(frozen=True)
class DemoDataSpec:
    """Parameters of one generated dataset; equal specs give identical data."""

    events: int = 200_000
    days: int = 28
    start: str = DEFAULT_START.isoformat()
    seed: int = 7
    customers: int = 0
    products: int = 0

    def resolved(self) -> DemoDataSpec:
        customers = self.customers or max(50, self.events // 40)
        products = self.products or max(20, min(2000, self.events // 200))
        return DemoDataSpec(self.events, self.days, self.start, self.seed, customers, products)

    @property
    def start_date(self) -> dt.date:
        return dt.date.fromisoformat(self.start)

    @property
    def end_date(self) -> dt.date:
        return self.start_date + dt.timedelta(days=self.days - 1)


def _uniform(seed: int, salt: int, id_col):
    """A deterministic U[0,1) per row from (seed, salt, id)."""
    from pyspark.sql import functions as F

    h = F.xxhash64(F.lit(seed), F.lit(salt), id_col)
    return F.abs(h % F.lit(1 << 52)) / F.lit(float(1 << 52))


def transactions_frame(spark, spec: DemoDataSpec):
    """The raw transactions as strings, with ``event_date`` (landing date) and the dirty rows.

    Also usable directly by benchmarks that skip the CSV round trip.
    """
    from pyspark.sql import functions as F

    spec = spec.resolved()
    s = spec.seed
    partitions = max(2, min(200, spec.events // 250_000 + 1))
    base = spark.range(0, spec.events, 1, partitions)
    i = F.col("id")
    u = {k: _uniform(s, k, i) for k in range(1, 13)}
    start_epoch = int(dt.datetime.combine(spec.start_date, dt.time(0), dt.timezone.utc).timestamp())
    ts_seconds = F.lit(start_epoch) + F.floor(u[3] * F.lit(spec.days * 86400)).cast("long")
    # Box-Muller normal for a log-normal amount.
    z = F.sqrt(-2.0 * F.log(u[4] + F.lit(1e-12))) * F.cos(2 * math.pi * u[5])
    amount = F.round(F.exp(F.lit(3.2) + F.lit(0.8) * z), 2)
    customer = (F.floor(F.pow(u[1], F.lit(1.6)) * spec.customers) + 1).cast("long")
    product = (F.floor(u[2] * spec.products) + 1).cast("long")
    channel = F.when(u[6] < 0.5, "web").when(u[6] < 0.85, "app").otherwise("store")
    quantity = (F.floor(F.pow(u[7], F.lit(2.0)) * 5) + 1).cast("int")
    dirty = u[8]
    r = DIRTY_RATES
    c1 = r["bad_amount"]
    c2 = c1 + r["null_customer"]
    c3 = c2 + r["bad_timestamp"]
    c4 = c3 + r["non_finite_amount"]
    ts = F.from_unixtime(ts_seconds, "yyyy-MM-dd HH:mm:ss")
    event_day = F.to_date(F.from_unixtime(ts_seconds, "yyyy-MM-dd"))
    late_days = F.when(u[9] < r["late"], F.floor(u[10] * 3) + 1).otherwise(0).cast("int")
    events = base.select(
        F.concat(F.lit("e"), F.lpad(i.cast("string"), 10, "0")).alias("event_id"),
        F.when((dirty >= c1) & (dirty < c2), F.lit(None).cast("string"))
        .otherwise(customer.cast("string"))
        .alias("customer_id"),
        product.cast("string").alias("product_id"),
        F.when(
            (dirty >= c2) & (dirty < c3),
            F.when(u[11] < 0.5, F.lit("not-a-timestamp")).otherwise(F.lit("2026-13-45 25:61:00")),
        )
        .otherwise(ts)
        .alias("event_ts"),
        F.when(dirty < c1, F.when(u[11] < 0.5, F.lit("12,50")).otherwise(F.lit("N/A")))
        .when((dirty >= c3) & (dirty < c4), F.when(u[11] < 0.5, F.lit("NaN")).otherwise(F.lit("Infinity")))
        .otherwise(F.format_string("%.2f", amount))
        .alias("amount"),
        quantity.cast("string").alias("quantity"),
        channel.alias("channel"),
        F.date_format(F.date_add(event_day, late_days), "yyyy-MM-dd").alias("event_date"),
        u[12].alias("__dup_u"),
    )
    # Exact re-sends of an event: half land with the original, half a day later.
    dups = events.where(F.col("__dup_u") < r["duplicate"]).withColumn(
        "event_date",
        F.when(F.col("__dup_u") < r["duplicate"] / 2, F.col("event_date")).otherwise(
            F.date_format(F.date_add(F.to_date("event_date"), 1), "yyyy-MM-dd")
        ),
    )
    out = events.unionByName(dups).drop("__dup_u")
    return out.where(F.col("event_date") <= F.lit(spec.end_date.isoformat()))


def customers_frame(spark, spec: DemoDataSpec):
    """Customer dimension as strings; about 1% of ids are missing and two rows are dirty."""
    from pyspark.sql import functions as F

    spec = spec.resolved()
    ids = spark.range(1, spec.customers + 1, 1, 1)
    i = F.col("id")
    u1, u2, u3, u4 = (_uniform(spec.seed, 100 + k, i) for k in range(4))
    signup = F.date_sub(F.lit(spec.start_date), F.floor(u3 * 700).cast("int"))
    df = ids.where(u4 >= 0.01).select(
        i.cast("string").alias("customer_id"),
        F.element_at(F.array(*[F.lit(x) for x in SEGMENTS]), (F.floor(u1 * len(SEGMENTS)) + 1).cast("int")).alias(
            "segment"
        ),
        F.element_at(F.array(*[F.lit(x) for x in COUNTRIES]), (F.floor(u2 * len(COUNTRIES)) + 1).cast("int")).alias(
            "country"
        ),
        F.date_format(signup, "yyyy-MM-dd").alias("signup_date"),
    )
    bad = spark.createDataFrame(
        [("", "gold", "DE", "2025-01-01"), ("x17", "silver", "FR", "2025-02-30")],
        "customer_id string, segment string, country string, signup_date string",
    )
    return df.unionByName(bad)


def products_frame(spark, spec: DemoDataSpec):
    """Product dimension as strings, with one unparseable price."""
    from pyspark.sql import functions as F

    spec = spec.resolved()
    ids = spark.range(1, spec.products + 1, 1, 1)
    i = F.col("id")
    u1, u2 = (_uniform(spec.seed, 200 + k, i) for k in range(2))
    df = ids.select(
        i.cast("string").alias("product_id"),
        F.element_at(F.array(*[F.lit(x) for x in CATEGORIES]), (F.floor(u1 * len(CATEGORIES)) + 1).cast("int")).alias(
            "category"
        ),
        F.format_string("%.2f", F.round(F.exp(F.lit(2.5) + u2 * 2), 2)).alias("unit_price"),
    )
    bad = spark.createDataFrame(
        [(str(spec.products + 1), "toys", "free")], "product_id string, category string, unit_price string"
    )
    return df.unionByName(bad)


def write_demo_data(spark, out_dir: str | Path, spec: DemoDataSpec = DemoDataSpec(), *, force: bool = False) -> dict:
    """Write the dataset under ``out_dir`` unless the same spec is already there; return its manifest."""
    out = Path(out_dir)
    spec = spec.resolved()
    manifest_path = out / "_generator.json"
    wanted = {"generator": "featuremill.pipelines.demo_data", "version": 1, **asdict(spec)}
    if not force and manifest_path.exists():
        try:
            if json.loads(manifest_path.read_text())["spec"] == wanted:
                log.info("demo data for %s already in %s; not regenerating", spec, out)
                return json.loads(manifest_path.read_text())
        except (ValueError, KeyError):
            pass
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    from pyspark.sql import functions as F

    tx = transactions_frame(spark, spec)
    (
        tx.repartition("event_date")
        .sortWithinPartitions("event_id")
        .write.partitionBy("event_date")
        .option("header", "true")
        .csv(str(out / "transactions"))
    )
    customers_frame(spark, spec).coalesce(1).write.option("header", "true").csv(str(out / "customers"))
    products_frame(spark, spec).coalesce(1).write.option("header", "true").csv(str(out / "products"))
    counts = tx.groupBy(F.col("event_date")).count().agg(F.sum("count"), F.count("*")).first()
    manifest = {
        "spec": wanted,
        "rows": int(counts[0]),
        "landing_dates": int(counts[1]),
        "start": spec.start,
        "end": spec.end_date.isoformat(),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    log.info("wrote %d transaction rows over %d landing dates to %s", manifest["rows"], manifest["landing_dates"], out)
    return manifest
