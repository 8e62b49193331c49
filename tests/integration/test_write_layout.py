"""File layout of partitioned tables: the io writers create them with Delta's optimized writes,
so rows spread over many tasks land in about one file per partition value, not one per task."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from featuremill.storage import io

DATES = 5
TASKS = 8


@pytest.fixture
def spread(spark):
    """40 rows over 5 dates, spread over 8 tasks so that every task holds every date."""
    # range's partitions are contiguous: task i holds k = 5i .. 5i+4, one row of each date
    return spark.range(0, DATES * TASKS, 1, TASKS).select(
        F.col("id").cast("int").alias("k"),
        F.date_add(F.lit(dt.date(2026, 9, 1)), (F.col("id") % DATES).cast("int")).alias("d"),
        F.col("id").cast("double").alias("v"),
    )


def _files_per_date(spark, path):
    """``{date: number of data files}`` from the table's current snapshot."""
    files = spark.read.format("delta").load(path).select("d", F.input_file_name().alias("f")).distinct()
    return {r["d"].isoformat(): r["n"] for r in files.groupBy("d").agg(F.count("f").alias("n")).collect()}


def _per_date(files):
    """``{date: files}`` for each of the fixture's dates."""
    return {(dt.date(2026, 9, 1) + dt.timedelta(days=i)).isoformat(): files for i in range(DATES)}


def _one_file_each(spark, path):
    return _files_per_date(spark, path) == _per_date(1)


def test_writers_create_partitioned_tables_with_one_file_per_date(spark, spread, tmp_path):
    root = str(tmp_path)
    predicate = io.date_range_predicate("d", dt.date(2026, 9, 1), dt.date(2026, 9, 5))
    writes = {
        "replace_where": lambda p: io.replace_where(spread, p, root=root, predicate=predicate, partition_by=["d"]),
        "overwrite": lambda p: io.overwrite(spread, p, root=root, partition_by=["d"]),
        "append": lambda p: io.append(spread, p, root=root, partition_by=["d"]),
        "merge_range": lambda p: io.merge_range(
            spread,
            p,
            root=root,
            keys=["k"],
            value_columns=["v"],
            partition_column="d",
            start=dt.date(2026, 9, 1),
            end=dt.date(2026, 9, 5),
            partition_by=["d"],
        ),
        "replace_table": lambda p: io.replace_table(spread, p, root=root, partition_by=["d"]),
    }
    for name, write in writes.items():
        path = str(tmp_path / name)
        write(path)
        assert io.table_properties(spark, path).get(io.OPTIMIZE_WRITE) == "true", name
        assert _one_file_each(spark, path), (name, _files_per_date(spark, path))


def test_plain_write_of_the_same_rows_writes_a_file_per_task_and_date(spark, spread, tmp_path):
    """The layout the property avoids: without it the rows above make 8 files per date."""
    path = str(tmp_path / "plain")
    spread.write.format("delta").partitionBy("d").save(path)
    assert _files_per_date(spark, path) == _per_date(TASKS)


def test_merge_into_a_created_table_keeps_one_new_file_per_date(spark, spread, tmp_path):
    path = str(tmp_path / "merged")
    day_range = {"partition_column": "d", "start": dt.date(2026, 9, 1), "end": dt.date(2026, 9, 5)}
    merge = dict(root=str(tmp_path), keys=["k"], value_columns=["v"], partition_by=["d"], **day_range)
    io.merge_range(spread, path, **merge)
    io.merge_range(spread.withColumn("v", F.col("v") + 1), path, **merge)
    assert _one_file_each(spark, path), _files_per_date(spark, path)
    assert sorted(r["v"] for r in spark.read.format("delta").load(path).collect()) == [k + 1.0 for k in range(40)]


def test_declared_property_and_session_conf_override_the_default(spark, spread, tmp_path):
    root = str(tmp_path)
    predicate = io.date_range_predicate("d", dt.date(2026, 9, 1), dt.date(2026, 9, 5))
    declared = str(tmp_path / "declared")
    io.replace_where(
        spread, declared, root=root, predicate=predicate, partition_by=["d"], properties={io.OPTIMIZE_WRITE: "false"}
    )
    assert io.table_properties(spark, declared)[io.OPTIMIZE_WRITE] == "false"
    assert set(_files_per_date(spark, declared).values()) == {TASKS}

    # a cluster's session setting wins over the table property featuremill sets
    spark.conf.set("spark.databricks.delta.optimizeWrite.enabled", "false")
    try:
        conf_off = str(tmp_path / "conf_off")
        io.replace_where(spread, conf_off, root=root, predicate=predicate, partition_by=["d"])
    finally:
        spark.conf.unset("spark.databricks.delta.optimizeWrite.enabled")
    assert io.table_properties(spark, conf_off)[io.OPTIMIZE_WRITE] == "true"
    assert set(_files_per_date(spark, conf_off).values()) == {TASKS}
