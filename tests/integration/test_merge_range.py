"""``io.merge_range``: the range's rows become the source's (updated, inserted, deleted, identical
rows left alone) in one commit that reads and rewrites only the range's files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, StringType, StructField, StructType

from featuremill.storage import io

SCHEMA = StructType([StructField("k", IntegerType()), StructField("d", DateType()), StructField("v", StringType())])
D1, D2, D3 = dt.date(2026, 9, 1), dt.date(2026, 9, 2), dt.date(2026, 9, 3)


def _table(spark, tmp_path) -> str:
    """Three dates, each written by its own commit (one file per date)."""
    path = str(tmp_path / "t")
    for rows in (
        [(1, D1, "a"), (2, D1, "b")],
        [(3, D2, "c"), (4, D2, "d"), (5, D2, "e"), (None, D2, "null key")],
        [(6, D3, "f")],
    ):
        spark.createDataFrame(rows, SCHEMA).write.format("delta").mode("append").partitionBy("d").save(path)
    return path


def _files(spark, path) -> dict[str, set[str]]:
    files = spark.read.format("delta").load(path).select("d", F.input_file_name().alias("f")).distinct().collect()
    out: dict[str, set[str]] = {}
    for r in files:
        out.setdefault(r["d"].isoformat(), set()).add(r["f"])
    return out


def _last_commit(path) -> list[dict]:
    log = sorted(Path(path, "_delta_log").glob("*.json"))[-1]
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _counts(metrics) -> tuple[int, int, int, int]:
    """(updated, inserted, deleted, source rows) of a MERGE's operation metrics."""
    names = ("numTargetRowsUpdated", "numTargetRowsInserted", "numTargetRowsDeleted", "numSourceRows")
    return tuple(int(metrics[n]) for n in names)


def test_merge_range_updates_inserts_deletes_and_rewrites_only_the_range(spark, tmp_path):
    path = _table(spark, tmp_path)
    before = _files(spark, path)
    # D2 becomes: 3 unchanged, 4 changed, 5 gone, 7 new, the null key unchanged
    source = spark.createDataFrame([(3, D2, "c"), (4, D2, "D"), (7, D2, "g"), (None, D2, "null key")], SCHEMA)

    metrics = io.merge_range(
        source, path, root=str(tmp_path), keys=["k"], value_columns=["v"], partition_column="d", start=D2, end=D2
    )

    got = sorted(
        (r["k"] if r["k"] is not None else -1, r["d"].isoformat(), r["v"])
        for r in spark.read.format("delta").load(path).collect()
    )
    expected = sorted(
        [
            (1, "2026-09-01", "a"),
            (2, "2026-09-01", "b"),
            (3, "2026-09-02", "c"),
            (4, "2026-09-02", "D"),
            (7, "2026-09-02", "g"),
            (-1, "2026-09-02", "null key"),
            (6, "2026-09-03", "f"),
        ]
    )
    assert got == expected
    assert spark.read.format("delta").load(path).columns == ["k", "d", "v"]  # no marker column added
    assert _counts(metrics) == (1, 1, 1, 4)
    # the commit removed D2's file only: D1 and D3 were neither read for rewriting nor rewritten
    removed = [a["remove"] for a in _last_commit(path) if "remove" in a]
    assert removed and {r["partitionValues"]["d"] for r in removed} == {"2026-09-02"}
    after = _files(spark, path)
    assert after["2026-09-01"] == before["2026-09-01"] and after["2026-09-03"] == before["2026-09-03"]
    assert after["2026-09-02"] != before["2026-09-02"]
    assert io.delta_version(spark, path) == 3  # one commit


def test_merge_range_of_identical_rows_changes_no_row(spark, tmp_path):
    path = _table(spark, tmp_path)
    source = spark.read.format("delta").load(path).where(F.col("d") == F.lit(D2))

    metrics = io.merge_range(
        source, path, root=str(tmp_path), keys=["k"], value_columns=["v"], partition_column="d", start=D2, end=D2
    )

    assert _counts(metrics) == (0, 0, 0, 4)
    assert spark.read.format("delta").load(path).count() == 7


def test_merge_range_with_an_empty_source_empties_the_range_only(spark, tmp_path):
    path = _table(spark, tmp_path)
    empty = spark.createDataFrame([], SCHEMA)

    metrics = io.merge_range(
        empty, path, root=str(tmp_path), keys=["k"], value_columns=["v"], partition_column="d", start=D2, end=D3
    )

    left = sorted((r["k"], r["d"].isoformat()) for r in spark.read.format("delta").load(path).collect())
    assert left == [(1, "2026-09-01"), (2, "2026-09-01")]
    assert (int(metrics["numTargetRowsDeleted"]), int(metrics["numSourceRows"])) == (5, 0)
