"""Shared data and assertions for the fault-injection suite: a tiny shop, exact table states."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from featuremill.config import load_pipeline
from featuremill.storage import io
from tests.integration.shop import make_project, write_dimensions, write_landing

D1, D2, D3 = dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3)

#: Landing files, one per date. Keys are unique across dates, so runs on different dates never
#: see each other's rows as duplicates. Two bad rows on D1 (a type error and a missing field).
DAY1 = [
    "a1,1,10,2024-03-01 10:00:00,10.00,web",
    "a2,1,11,2024-03-01 11:00:00,12.50,web",
    "a3,2,10,2024-03-01 12:00:00,5.00,app",
    "a4,2,10,2024-03-01 13:00:00,not-a-number,web",
    "a5,2,11",
]
DAY2 = [
    "b1,1,10,2024-03-02 09:00:00,4.00,web",
    "b2,2,11,2024-03-02 10:30:00,8.00,app",
    "b3,2,10,2024-03-02 18:00:00,1.50,web",
]
#: What the validated table must hold after ingesting D1 and D2, computed by hand from the lines:
#: (event_id, customer_id, amount, event_date, _ingest_date).
VALID_D1 = [("a1", 1, 10.0, D1, D1), ("a2", 1, 12.5, D1, D1), ("a3", 2, 5.0, D1, D1)]
VALID_D2 = [("b1", 1, 4.0, D2, D2), ("b2", 2, 8.0, D2, D2), ("b3", 2, 1.5, D2, D2)]
QUARANTINE_D1 = [("tx", D1, "malformed"), ("tx", D1, "type")]


def shop_project(root: Path, *, days=((D1, DAY1), (D2, DAY2))) -> Path:
    make_project(root)
    write_dimensions(root)
    for day, lines in days:
        write_landing(root, day.isoformat(), lines)
    return root


def load(root: Path, **overrides):
    return load_pipeline(root / "conf" / "pipelines" / "shop.yaml", env="local", overrides=overrides or None)


def rows(spark, path, *cols, where: str | None = None):
    df = spark.read.format("delta").load(str(path))
    if where:
        df = df.where(where)
    return sorted(tuple(r) for r in df.select(*cols).collect())


def all_rows(spark, path):
    """Every row of a Delta table, every column, sorted (for table-equality checks)."""
    df = spark.read.format("delta").load(str(path))
    return sorted((tuple(r) for r in df.select(*sorted(df.columns)).collect()), key=repr)


def versions(spark, *paths):
    return [io.delta_version(spark, str(p)) for p in paths]


def copy_warehouse(src_root: Path, dst_root: Path) -> None:
    """Copy a project (conf, data and Delta tables are plain files locally)."""
    shutil.copytree(src_root, dst_root)
