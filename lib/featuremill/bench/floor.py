"""The hand-written floor: the demo pipeline's ingest and feature job as one plain PySpark job.

What a data engineer would write by hand for ``conf/pipelines/demo.yaml``, with no framework
around it: read the raw CSV files with the declared schema, parse the types, route every row that
fails a check (a value that does not parse, a required field that is null, a non-finite amount, a
quarantine rule) or repeats an event key to a quarantine table, keep the dimensions' first
snapshot as their history, broadcast-join the dimensions as of each event, compute the same
windows and history helpers with Spark window functions, and write the same Delta tables
partitioned the same way (with Delta's optimized writes, as featuremill's tables have them).

No run log, no commit guard, no quality metrics, no schema gate, no lock file: those are what the
benchmark measures as featuremill's overhead. :func:`differences` checks that the floor's tables
hold exactly featuremill's rows, so the ratio of the two wall times compares the same work.

Everything here is specific to the demo pipeline on purpose (a floor is a hand-written job), and
it reads only what :mod:`featuremill.pipelines.demo_data` writes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

#: Output tables under the floor's root, named as in featuremill's warehouse.
TABLES = (
    "validated/transactions",
    "validated/customers",
    "validated/products",
    "quarantine",
    "features/customer_activity",
    "features/product_demand",
)
_OPTIMIZE_WRITE = {"delta.autoOptimize.optimizeWrite": "true"}
_US = 1_000_000
_HOUR, _DAY = 3_600, 86_400


def _read_csv(spark, path: str, columns: list[str]):
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(c, StringType()) for c in [*columns, "_corrupt_record"]])
    return (
        spark.read.schema(schema)
        .option("header", "true")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt_record")
        .csv(path)
        .withColumn("_source_file", F.col("_metadata.file_path"))
    )


def _classify(raw, *, columns: dict[str, str], required: set[str], finite: set[str], rules: list):
    """Typed columns, ``_raw_record`` and ``rule`` (the first failed check, null when valid).

    ``columns`` maps each column to a SQL expression parsing its raw string; ``rules`` are
    (name, failed) pairs over the typed columns, checked after the per-column checks.
    """
    from pyspark.sql import functions as F

    typed = raw.select("*", *[F.expr(e).alias(f"__p_{c}") for c, e in columns.items()])
    checks = [("malformed", F.col("_corrupt_record").isNotNull())]
    for c in columns:
        raw_c, parsed = F.col(c), F.col(f"__p_{c}")
        checks.append(("encoding", F.instr(raw_c, "\ufffd") > 0))
        checks.append(("type", raw_c.isNotNull() & parsed.isNull()))
        if c in required:
            checks.append(("not_null", raw_c.isNull()))
        if c in finite:
            checks.append(("non_finite", F.isnan(parsed) | parsed.isin(float("inf"), float("-inf"))))
    rule = F.lit(None).cast("string")
    for name, failed in reversed(checks):
        rule = F.when(failed, F.lit(name)).otherwise(rule)
    raw_record = F.coalesce(F.col("_corrupt_record"), F.to_json(F.struct(*[F.col(c) for c in columns])))
    out = typed.select(
        *[F.col(f"__p_{c}").alias(c) for c in columns],
        *[c for c in raw.columns if c not in columns and c != "_corrupt_record"],
        raw_record.alias("_raw_record"),
        rule.alias("rule"),
    )
    for name, failed in rules:  # in order: the first failing rule names the row
        out = out.withColumn("rule", F.when(F.col("rule").isNull() & failed, F.lit(name)).otherwise(F.col("rule")))
    return out


def _flag_duplicates(df, key: str):
    """Valid rows repeating ``key``: all but the earliest (landing date, file, raw text) are duplicates."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    valid = F.col("rule").isNull()
    first = Window.partitionBy(key, valid).orderBy("_ingest_date", "_source_file", "_raw_record")
    again = valid & (F.row_number().over(first) > 1)
    return df.withColumn("rule", F.when(again, F.lit("duplicate")).otherwise(F.col("rule")))


def _write(df, path: str, *, partition_by: Sequence[str] = ()) -> None:
    """A plain Delta overwrite (the floor's only write: no root check, no commit tag); a
    partitioned table gets optimized writes, as featuremill's partitioned tables do."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        for key, value in _OPTIMIZE_WRITE.items():
            writer = writer.option(key, value)
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def _quarantine(df, source: str, *, fallback_date: dt.date):
    from pyspark.sql import functions as F

    return df.where(F.col("rule").isNotNull()).select(
        F.lit(source).alias("source"),
        F.coalesce(F.col("_ingest_date"), F.lit(fallback_date)).alias("_ingest_date"),
        F.col("_source_file").alias("source_file"),
        F.col("_raw_record").alias("raw_record"),
        F.col("rule"),
        F.concat(F.lit("rejected by "), F.col("rule")).alias("reason"),
    )


def ingest(spark, *, data_root: str, out_root: str, start: dt.date, end: dt.date) -> None:
    """The validated transactions (partitioned by event date), the two dimensions' histories and
    the quarantine (partitioned by source and landing date) for the landing dates ``[start, end]``."""
    from pyspark.sql import functions as F

    raw = _read_csv(
        spark,
        f"{data_root}/transactions",
        ["event_id", "customer_id", "product_id", "event_ts", "amount", "quantity", "channel"],
    ).where(F.col("event_date").between(F.lit(start.isoformat()), F.lit(end.isoformat())))
    raw = raw.withColumn("_ingest_date", F.expr("try_cast(event_date AS DATE)")).drop("event_date")
    tx = _classify(
        raw,
        columns={
            "event_id": "event_id",
            "customer_id": "try_cast(trim(customer_id) AS BIGINT)",
            "product_id": "try_cast(trim(product_id) AS BIGINT)",
            "event_ts": "try_to_timestamp(event_ts, 'yyyy-MM-dd HH:mm:ss')",
            "amount": "try_cast(trim(amount) AS DOUBLE)",
            "quantity": "try_cast(trim(quantity) AS INT)",
            "channel": "channel",
        },
        required={"event_id", "customer_id", "product_id", "event_ts", "amount"},
        finite={"amount"},
        rules=[
            ("partition", F.col("_ingest_date").isNull()),
            ("range_amount", (F.col("amount") < 0) | (F.col("amount") > 100000) | F.isnan("amount")),
            ("allowed_values_channel", ~F.col("channel").isin("web", "app", "store")),
        ],
    )
    tx = _flag_duplicates(tx.withColumn("event_date", F.to_date("event_ts")), "event_id")
    tx = tx.persist()
    valid = tx.where(F.col("rule").isNull()).select(
        "event_id",
        "customer_id",
        "product_id",
        "event_ts",
        "amount",
        "quantity",
        "channel",
        "event_date",
        "_ingest_date",
        "_source_file",
    )
    _write(valid, f"{out_root}/validated/transactions", partition_by=["event_date"])

    quarantined = _quarantine(tx, "transactions", fallback_date=end)
    dimensions = {
        "customers": {
            "customer_id": "try_cast(trim(customer_id) AS BIGINT)",
            "segment": "segment",
            "country": "country",
            "signup_date": "try_cast(trim(signup_date) AS DATE)",
        },
        "products": {
            "product_id": "try_cast(trim(product_id) AS BIGINT)",
            "category": "category",
            "unit_price": "try_cast(trim(unit_price) AS DOUBLE)",
        },
    }
    for name, columns in dimensions.items():
        key = next(iter(columns))
        # An undated snapshot: filed under the run's last date, valid from its first.
        dim = _classify(
            _read_csv(spark, f"{data_root}/{name}", list(columns)).withColumn("_ingest_date", F.lit(end)),
            columns=columns,
            required={key},
            finite={c for c in columns if "double" in columns[c].lower()},
            rules=[],
        )
        dim = _flag_duplicates(dim, key)
        history = dim.where(F.col("rule").isNull()).select(
            *columns,
            F.lit(start).alias("_ingest_date"),
            "_source_file",
            F.lit(start).cast("timestamp").alias("valid_from"),
            F.lit(None).cast("timestamp").alias("valid_to"),
        )
        _write(history, f"{out_root}/validated/{name}")
        quarantined = quarantined.unionByName(_quarantine(dim, name, fallback_date=end))
    _write(quarantined, f"{out_root}/quarantine", partition_by=["source", "_ingest_date"])
    tx.unpersist()


def _as_of(events, dimension, *, key: str, columns: list[str], time_column: str):
    """Left join to the dimension version valid at ``time_column`` (``valid_from <= t < valid_to``)."""
    from pyspark.sql import functions as F

    dim = dimension.select(F.col(key).alias("__k"), *columns, "valid_from", "valid_to")
    t = events[time_column]
    on = (events[key] == dim["__k"]) & (t >= dim["valid_from"]) & (dim["valid_to"].isNull() | (t < dim["valid_to"]))
    return events.join(F.broadcast(dim), on, "left").select(*[events[c] for c in events.columns], *columns)


def _windows(events, *, entity: str, row_level: dict, range_level: dict, largest_s: int):
    """One row per (entity, event time): the last event of each instant (ties ordered by
    ``event_id``), with the ``row_level`` columns (name -> function of the row-ordered window),
    then the ``range_level`` ones (name -> function of a frame maker) and ``_known_at``.

    Row-level first: their sort (entity, time, event id) also serves the range frames, so ties are
    summed in one order and Spark adds no second sort."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_rows = Window.partitionBy(entity).orderBy("__t", "event_id")
    by_time = Window.partitionBy(entity).orderBy("__t")

    def frame(seconds: int, upper: int = 0):
        return by_time.rangeBetween(-(seconds * _US - 1), upper)

    df = events.withColumn("__t", F.expr("unix_micros(event_ts)"))
    df = df.select(
        "*", F.lead("__t").over(by_rows).alias("__next"), *[f(by_rows).alias(n) for n, f in row_level.items()]
    )
    known_at = F.date_add(F.max("_ingest_date").over(frame(largest_s)), 1).cast("timestamp").alias("_known_at")
    df = df.select("*", *[f(frame).alias(n) for n, f in range_level.items()], known_at)
    return df.where(F.col("__next").isNull() | (F.col("__next") != F.col("__t")))


def _customer_features(events, customers, products, *, start: dt.date, end: dt.date):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    amount, t = F.col("amount"), F.col("__t")

    def agg(fn, column, seconds):
        return lambda frame: fn(column).over(frame(seconds))

    def count(seconds, when=None):
        return lambda frame: F.count(F.lit(1) if when is None else F.when(when, 1)).over(frame(seconds))

    def previous_amount(by_rows):
        return F.when(F.lag("__t").over(by_rows) > t - F.lit(30 * _DAY * _US), F.lag(amount).over(by_rows))

    def seconds_since_previous(frame):
        return (t - F.max(t).over(frame(30 * _DAY, -1))) / F.lit(1_000_000.0)

    features = {
        "txn_count_1h": count(_HOUR),
        "txn_count_1d": count(_DAY),
        "txn_count_7d": count(7 * _DAY),
        "amount_sum_1d": agg(F.sum, amount, _DAY),
        "amount_sum_7d": agg(F.sum, amount, 7 * _DAY),
        "amount_sum_30d": agg(F.sum, amount, 30 * _DAY),
        "amount_mean_7d": agg(F.avg, amount, 7 * _DAY),
        "amount_std_30d": agg(F.stddev_samp, amount, 30 * _DAY),
        "amount_min_7d": agg(F.min, amount, 7 * _DAY),
        "amount_max_7d": agg(F.max, amount, 7 * _DAY),
        "web_txn_count_7d": count(7 * _DAY, F.col("channel") == "web"),
        "electronics_spend_30d": agg(F.sum, F.when(F.col("category") == "electronics", amount), 30 * _DAY),
        "list_price_mean_30d": agg(F.avg, F.col("unit_price"), 30 * _DAY),
        "secs_since_prev_txn": seconds_since_previous,
    }
    row_level = {"prev_amount": previous_amount}
    df = _as_of(events, products, key="product_id", columns=["category", "unit_price"], time_column="event_ts")
    df = _windows(df, entity="customer_id", row_level=row_level, range_level=features, largest_s=30 * _DAY)
    df = df.withColumn("spend_ratio_1d_30d", F.expr("try_divide(amount_sum_1d, amount_sum_30d)").cast("double"))

    # History helpers of amount_sum_7d over the feature rows of the last 30 days.
    x = F.col("amount_sum_7d")
    by_rows = Window.partitionBy("customer_id").orderBy("__t")
    previous = by_rows.rangeBetween(-(30 * _DAY * _US - 1), -1)
    df = df.withColumn("__row", F.row_number().over(by_rows))
    lag1 = F.when(F.lag("__t").over(by_rows) > t - F.lit(30 * _DAY * _US), F.lag(x).over(by_rows))
    mean, std = F.avg(x).over(previous), F.stddev_samp(x).over(previous)
    zscore = F.when((F.count(x).over(previous) >= 2) & (std > 0), (x - mean) / std)
    history = F.collect_list(F.struct(F.col("__row").alias("r"), x.alias("x"))).over(
        by_rows.rangeBetween(-(30 * _DAY * _US - 1), 0)
    )
    decay = F.lit(1.0 - 2.0 / 6.0)  # span 5

    def step(acc, e):
        weight = F.when(e["x"].isNull(), F.lit(0.0)).otherwise(F.pow(decay, F.col("__row") - e["r"]))
        return F.struct(
            (acc["num"] + weight * F.coalesce(e["x"], F.lit(0.0))).alias("num"), (acc["den"] + weight).alias("den")
        )

    sums = F.aggregate(history, F.struct(F.lit(0.0).alias("num"), F.lit(0.0).alias("den")), step)
    df = df.select(
        "*",
        lag1.alias("amount_sum_7d_lag1"),
        (x - lag1).alias("amount_sum_7d_diff1"),
        zscore.alias("amount_sum_7d_zscore"),
        F.when(sums["den"] > 0, sums["num"] / sums["den"]).alias("amount_sum_7d_ema"),
    )
    df = df.withColumn("event_date", F.to_date("event_ts")).where(F.col("event_date").between(start, end))
    df = _as_of(df, customers, key="customer_id", columns=["segment", "country"], time_column="event_ts")
    return df.select(
        "customer_id",
        "event_ts",
        *features,
        *row_level,
        "spend_ratio_1d_30d",
        "_known_at",
        "amount_sum_7d_lag1",
        "amount_sum_7d_diff1",
        "amount_sum_7d_zscore",
        "amount_sum_7d_ema",
        "event_date",
        "segment",
        "country",
        F.lit(1).alias("_feature_set_version"),
    )


def _product_features(events, *, start: dt.date, end: dt.date):
    from pyspark.sql import functions as F

    week = 7 * _DAY
    features = {
        "units_sold_1d": lambda frame: F.sum("quantity").over(frame(_DAY)),
        "units_sold_7d": lambda frame: F.sum("quantity").over(frame(week)),
        "orders_7d": lambda frame: F.count(F.lit(1)).over(frame(week)),
        "revenue_mean_7d": lambda frame: F.avg("amount").over(frame(week)),
    }
    df = _windows(events, entity="product_id", row_level={}, range_level=features, largest_s=week)
    df = df.withColumn("demand_ratio_1d_7d", F.expr("try_divide(units_sold_1d, units_sold_7d)").cast("double"))
    df = df.withColumn("event_date", F.to_date("event_ts")).where(F.col("event_date").between(start, end))
    return df.select(
        "product_id",
        "event_ts",
        *features,
        "demand_ratio_1d_7d",
        "_known_at",
        "event_date",
        F.lit(1).alias("_feature_set_version"),
    )


def features(spark, *, out_root: str, start: dt.date, end: dt.date) -> None:
    """Both feature tables for event dates ``[start, end]`` from the floor's validated tables."""

    def read(name):
        return spark.read.format("delta").load(f"{out_root}/{name}")

    events = read("validated/transactions")
    customer = _customer_features(events, read("validated/customers"), read("validated/products"), start=start, end=end)
    _write(customer, f"{out_root}/features/customer_activity", partition_by=["event_date"])
    _write(
        _product_features(events, start=start, end=end),
        f"{out_root}/features/product_demand",
        partition_by=["event_date"],
    )


def hand_written_job(spark, *, data_root: str, out_root: str, start: dt.date, end: dt.date) -> dict:
    """The floor: :func:`ingest` then :func:`features` over the demo data in ``data_root``; the
    seconds each took (``ingest_s``, ``features_s``)."""
    began = time.perf_counter()
    ingest(spark, data_root=data_root, out_root=out_root, start=start, end=end)
    ingested = time.perf_counter()
    features(spark, out_root=out_root, start=start, end=end)
    return {"ingest_s": round(ingested - began, 3), "features_s": round(time.perf_counter() - ingested, 3)}


def differences(spark, *, floor_root: str, featuremill_root: str, tables: Sequence[str] = TABLES) -> dict[str, int]:
    """Rows in one table but not the other (both ways, duplicates counted), per table of ``tables``
    (names of :data:`TABLES`), over featuremill's columns; the quarantine's ``reason`` (free text,
    featuremill's names every field and value) is left out. All zero: the same output.

    One aggregation per table: each distinct row's count in featuremill's table minus its count in
    the floor's, summed in absolute value (what ``exceptAll`` both ways counts, in one shuffle).
    """
    from pyspark.sql import functions as F

    out = {}
    for name in tables:
        mine = spark.read.format("delta").load(f"{featuremill_root}/{name}")
        floor = spark.read.format("delta").load(f"{floor_root}/{name}")
        columns = [c for c in mine.columns if c != "reason"]
        both = mine.select(*columns, F.lit(1).alias("__side")).unionByName(
            floor.select(*columns, F.lit(-1).alias("__side"))
        )
        per_row = both.groupBy(*columns).agg(F.sum("__side").alias("__n"))
        out[name] = int(per_row.agg(F.coalesce(F.sum(F.abs("__n")), F.lit(0))).first()[0])
    return out
