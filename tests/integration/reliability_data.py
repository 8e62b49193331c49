"""A tiny shop pipeline for the replay / backfill / exactly-once tests, with an independent reference.

Data: 3 customers, 4 products, a handful of purchases per day written as CSV landing partitions
``landing_date=YYYY-MM-DD``. From the second day on, two purchases per day land one day after
their event date (late events). The reference features are computed by DuckDB with correlated
subqueries over the raw purchases, spelling out the documented semantics (window ``(t - w, t]``,
one row per customer and distinct event time), so they share no code with featuremill.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import textwrap
from pathlib import Path

START = dt.date(2026, 9, 1)
PRODUCTS = [(1, "toys"), (2, "books"), (3, "toys"), (4, "garden")]
CUSTOMERS = (11, 12, 13)
FEATURE_COLUMNS = ("n_2d", "amount_sum_2d", "toy_spend_3d")

PIPELINE = """\
pipeline: shop
replay_window: {window}
sources:
  purchases:
    kind: events
    format: csv
    path: purchases
    partition_column: landing_date
    event_time: ts
    key: id
    columns:
      id: string
      customer: {{type: bigint, nullable: false}}
      product: {{type: bigint, nullable: false}}
      ts: {{type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}}
      amount: {{type: double, nullable: false}}
  products:
    kind: dimension
    format: csv
    path: products
    key: product
    columns:
      product: bigint
      category: string
feature_sets:
  - name: spend
    description: Spend per customer
    owner: tests
    version: 1
    source: purchases
    entity: customer
    joins:
      - {{dimension: products, on: product, columns: [category], level: event}}
    features:
      - {{name: n_2d, function: count, window: 2d, description: purchases in 2 days}}
      - {{name: amount_sum_2d, function: sum, column: amount, window: 2d, description: spend in 2 days}}
      - name: toy_spend_3d
        function: sum
        column: amount
        window: 3d
        where: {{column: category, equals: toys}}
        description: toy spend in 3 days
"""

ENV = """\
warehouse: warehouse
data_root: data
master: local[2]
max_broadcast_mb: 16
spark:
  spark.sql.shuffle.partitions: 4
  spark.default.parallelism: 4
  spark.ui.enabled: false
  spark.driver.memory: 1g
  spark.sql.session.timeZone: UTC
  # Delta rebuilds table state in this many tasks per snapshot (default 50): tiny tables, 2 cores
  spark.databricks.delta.snapshotPartitions: 2
  # only for a driver started by a child process (the backfill killed mid-way): a short-lived JVM
  # on 2 shared cores, so skip C2 compilation and parallel GC threads
  spark.driver.extraJavaOptions: -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
"""


def day(n: int) -> dt.date:
    """Day ``n`` of the data, 1-based."""
    return START + dt.timedelta(days=n - 1)


def make_purchases(days: int, *, seed: int = 3) -> list[dict]:
    """Deterministic purchases for ``days`` days; each has its event time and its landing date."""
    rng = random.Random(seed)
    out = []
    for d in range(1, days + 1):
        for i in range(6):
            ts = dt.datetime.combine(day(d), dt.time()) + dt.timedelta(minutes=rng.randrange(0, 24 * 60))
            landing = day(d)
            if d >= 2 and i < 2:  # late: happened the day before, landed today
                ts -= dt.timedelta(days=1)
            out.append(
                {
                    "id": f"p{d:02d}{i}",
                    "customer": CUSTOMERS[rng.randrange(3)],
                    "product": PRODUCTS[rng.randrange(4)][0],
                    "ts": ts,
                    "amount": round(rng.uniform(1, 50), 2),
                    "landing": landing,
                }
            )
    return out


def write_purchases(data_root: Path, purchases: list[dict]) -> None:
    """One CSV per landing date under ``purchases/landing_date=YYYY-MM-DD/``."""
    by_landing: dict[dt.date, list[dict]] = {}
    for p in purchases:
        by_landing.setdefault(p["landing"], []).append(p)
    for landing, rows in by_landing.items():
        folder = data_root / "purchases" / f"landing_date={landing.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "part-0.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "customer", "product", "ts", "amount"])
            for r in sorted(rows, key=lambda r: r["id"]):
                writer.writerow(
                    [r["id"], r["customer"], r["product"], r["ts"].strftime("%Y-%m-%d %H:%M:%S"), f"{r['amount']:.2f}"]
                )


def write_products(data_root: Path, products=PRODUCTS) -> None:
    folder = data_root / "products"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "products.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["product", "category"])
        writer.writerows(products)


def make_project(root: Path, *, days: int, window: str = "30d") -> tuple[Path, list[dict]]:
    """A project folder with the shop pipeline, its environment and ``days`` days of data."""
    (root / "conf" / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "env").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "env" / "local.yaml").write_text(ENV)
    pipeline = root / "conf" / "pipelines" / "shop.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(window=window)))
    purchases = make_purchases(days)
    write_purchases(root / "data", purchases)
    write_products(root / "data")
    return pipeline, purchases


def reference_features(purchases: list[dict], *, start: dt.date, end: dt.date, products=PRODUCTS):
    """Expected feature rows (pandas, sorted) for event dates ``[start, end]``, by DuckDB."""
    import duckdb
    import pandas as pd

    con = duckdb.connect()
    con.register(
        "ev", pd.DataFrame([{k: p[k] for k in ("id", "customer", "product", "ts", "amount")} for p in purchases])
    )
    con.register("dim", pd.DataFrame(products, columns=["product", "category"]))
    sql = f"""
    WITH e AS (SELECT ev.*, dim.category FROM ev LEFT JOIN dim USING (product)),
    inst AS (SELECT DISTINCT customer, ts FROM e)
    SELECT i.customer, i.ts,
      (SELECT count(*) FROM e WHERE e.customer = i.customer
         AND e.ts > i.ts - INTERVAL 2 DAY AND e.ts <= i.ts) AS n_2d,
      (SELECT sum(amount) FROM e WHERE e.customer = i.customer
         AND e.ts > i.ts - INTERVAL 2 DAY AND e.ts <= i.ts) AS amount_sum_2d,
      (SELECT sum(amount) FROM e WHERE e.customer = i.customer AND e.category = 'toys'
         AND e.ts > i.ts - INTERVAL 3 DAY AND e.ts <= i.ts) AS toy_spend_3d
    FROM inst i
    WHERE CAST(i.ts AS DATE) BETWEEN DATE '{start}' AND DATE '{end}'
    ORDER BY i.customer, i.ts
    """
    out = con.execute(sql).df()
    out["customer"] = out["customer"].astype("int64")
    out["n_2d"] = out["n_2d"].astype("int64")
    return out.reset_index(drop=True)


def feature_rows(df, *, start: dt.date | None = None, end: dt.date | None = None):
    """A feature DataFrame (Spark) as sorted pandas with the reference's columns."""
    from pyspark.sql import functions as F

    if start is not None:
        df = df.where(F.col("event_date") >= F.lit(start))
    if end is not None:
        df = df.where(F.col("event_date") <= F.lit(end))
    out = df.select("customer", "ts", *FEATURE_COLUMNS).toPandas()
    out = out.sort_values(["customer", "ts"]).reset_index(drop=True)
    out["customer"] = out["customer"].astype("int64")
    out["n_2d"] = out["n_2d"].astype("int64")
    out["ts"] = out["ts"].astype("datetime64[us]")
    return out


def assert_same_rows(actual, expected) -> None:
    """Same keys in the same order, counts equal, sums equal to 1e-9 (null where expected null)."""
    import numpy as np
    import pandas as pd

    expected = expected.copy()
    expected["ts"] = pd.to_datetime(expected["ts"]).astype("datetime64[us]")
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}"
    assert list(actual["customer"]) == list(expected["customer"])
    assert list(actual["ts"]) == list(expected["ts"])
    assert list(actual["n_2d"]) == list(expected["n_2d"])
    for c in ("amount_sum_2d", "toy_spend_3d"):
        a = actual[c].to_numpy(dtype=float)
        e = expected[c].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(a), np.isnan(e)), f"{c}: nulls differ"
        assert np.allclose(a[~np.isnan(a)], e[~np.isnan(e)], rtol=0, atol=1e-9), f"{c}: values differ"
