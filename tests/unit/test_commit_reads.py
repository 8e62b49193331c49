"""Reading one commit from the Delta log (the fast path of storage.io and storage.delta_log)
against Delta's public history, for every kind of write featuremill makes, and the fallback
when the internal API is out of reach."""

from __future__ import annotations

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from featuremill.storage import delta_log, io


def _history(spark, path):
    """``{version: (userMetadata, operationMetrics)}`` from DeltaTable.history (the reference)."""
    rows = DeltaTable.forPath(spark, path).history().select("version", "userMetadata", "operationMetrics").collect()
    return {r["version"]: (r["userMetadata"], dict(r["operationMetrics"] or {})) for r in rows}


@pytest.fixture(scope="module")
def table(spark, tmp_path_factory):
    """Five commits: create, tagged append, MERGE, replaceWhere, overwrite."""
    from featuremill.core.session import is_connect

    if is_connect(spark):  # the fast path reads the driver's JVM; the reference needs DeltaTable
        pytest.skip("classic session only: reads the Delta log through the driver's JVM")
    path = str(tmp_path_factory.mktemp("commits") / "t")
    df = spark.range(6).select(F.col("id"), (F.col("id") % 2).alias("p"), F.lit("a").alias("v"))
    df.write.format("delta").partitionBy("p").save(path)
    (
        spark.range(6, 9)
        .select(F.col("id"), (F.col("id") % 2).alias("p"), F.lit("b").alias("v"))
        .write.format("delta")
        .mode("append")
        .option("userMetadata", '{"run_id": "r1"}')
        .option("txnAppId", "app-1")
        .option("txnVersion", 3)
        .save(path)
    )
    updates = spark.range(4, 12).select(F.col("id"), (F.col("id") % 2).alias("p"), F.lit("c").alias("v"))
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(updates.alias("s"), "t.id = s.id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    (
        spark.range(0, 4, 2)
        .select(F.col("id"), F.lit(0).cast("bigint").alias("p"), F.lit("d").alias("v"))
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", "p = 0")
        .save(path)
    )
    df.write.format("delta").mode("overwrite").option("userMetadata", "last").save(path)
    return path


def test_commit_metrics_equal_the_history_for_every_kind_of_write(spark, table):
    reference = _history(spark, table)
    assert sorted(reference) == [0, 1, 2, 3, 4]
    for version, (metadata, metrics) in reference.items():
        fast = io._log_commit(spark, table, version)
        assert fast is not None, version
        assert (fast.version, fast.user_metadata, fast.operation_metrics) == (version, metadata, metrics)
        assert io.commit_metrics(spark, table, version) == metrics
    assert reference[2][1]["numTargetRowsInserted"] == "3" and reference[2][1]["numTargetRowsUpdated"] == "5"
    assert io.commit_metrics(spark, table, 9) == {}  # not in the log


def test_latest_commit_and_version_equal_the_history(spark, table, tmp_path):
    latest = io.latest_commit(spark, table)
    assert latest == io.CommitInfo(4, "last", _history(spark, table)[4][1])
    assert io.delta_version(spark, table) == 4
    assert io.last_operation_metrics(spark, table)["numOutputRows"] == "6"
    assert io.latest_commit(spark, str(tmp_path / "none")) is None
    assert io.delta_version(spark, str(tmp_path / "none")) is None


def test_latest_txn_commit_uses_the_snapshot_for_an_unknown_app(spark, table, tmp_path):
    assert delta_log._snapshot_has_txn(spark, table, "app-1") is True
    assert delta_log._snapshot_has_txn(spark, table, "app-2") is False
    assert delta_log._snapshot_has_txn(spark, str(tmp_path / "none"), "app-1") is False
    found = delta_log.latest_txn_commit(spark, table, "app-1")
    assert (found.version, found.txn_version("app-1"), found.user_metadata) == (1, 3, '{"run_id": "r1"}')
    assert delta_log.latest_txn_commit(spark, table, "app-2") is None


def test_commit_reads_fall_back_to_the_history_without_the_internal_api(spark, table, monkeypatch):
    reference = _history(spark, table)

    def unavailable(spark, path):
        raise RuntimeError("no DeltaLog here")  # as on Spark Connect or a runtime with its own Delta

    monkeypatch.setattr(delta_log, "jvm_snapshot", unavailable)
    assert io._log_commit(spark, table, 2) is None
    assert delta_log._snapshot_has_txn(spark, table, "app-2") is True  # unknown: read the commit files
    assert io.commit_metrics(spark, table, 2) == reference[2][1]
    assert io.latest_commit(spark, table) == io.CommitInfo(4, "last", reference[4][1])
    assert io.delta_version(spark, table) == 4
