"""Exactly-once commits: retries after a crash between the Delta commit and the ledger write are
no-ops, changed inputs are refused without --corrective, and the io writers really carry the
Delta txn ids (Delta itself skips the repeat)."""

from __future__ import annotations

import json

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from featuremill.config import load_pipeline
from featuremill.core.errors import ChangedInputError
from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.storage import io
from featuremill.storage.delta_log import read_commits
from featuremill.storage.exactly_once import run_key
from featuremill.storage.retention import ReplayWindow, ensure_retention
from tests.integration.reliability_data import (
    assert_same_rows,
    day,
    feature_rows,
    make_project,
    reference_features,
)


class SimulatedCrash(RuntimeError):
    """Raised by a commit hook: the job dies after Delta committed, before the ledger write."""


def _crash_on(table_name):
    def hook(table, version):
        if table == table_name:
            raise SimulatedCrash(f"crash after committing {table} version {version}")

    return hook


def _ledger(spark, config, key):
    return (
        spark.read.format("delta")
        .load(config.tables.run_log)
        .where(F.col("run_key") == key)
        .orderBy("started_at")
        .collect()
    )


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    """Four days of data, days 1..3 ingested. Tests use distinct run keys (date ranges)."""
    root = tmp_path_factory.mktemp("exactly_once")
    pipeline, purchases = make_project(root, days=4)
    config = load_pipeline(pipeline)
    run_ingest(spark, config, start=day(1), end=day(3))
    return config, purchases


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_features_retry_after_crash_between_commit_and_ledger_leaves_table_version_unchanged(spark, ingested):
    config, _ = ingested
    out = config.tables.features("spend")
    key = run_key("shop", "features", "spend", day(1), day(2))

    with pytest.raises(SimulatedCrash):
        run_features(spark, config, start=day(1), end=day(2), on_commit=_crash_on("features.spend"))
    version_after_crash = io.delta_version(spark, out)
    rows_after_crash = feature_rows(spark.read.format("delta").load(out))
    committed = read_commits(spark, out, app_id=key)
    assert [c.txn_version(key) for c in committed] == [1]

    [retry] = run_features(spark, config, start=day(1), end=day(2))

    assert retry.status == "already_committed"
    assert io.delta_version(spark, out) == version_after_crash
    assert len(read_commits(spark, out, app_id=key)) == 1
    assert_same_rows(feature_rows(spark.read.format("delta").load(out)), rows_after_crash)
    crashed, succeeded = _ledger(spark, config, key)
    assert crashed["status"] == "failed" and "SimulatedCrash" in crashed["error"]
    assert succeeded["status"] == "succeeded" and succeeded["txn_version"] == 1
    assert json.loads(succeeded["details"])["commit"] == "already_committed"
    assert succeeded["output_versions"] == {"features.spend": version_after_crash}
    assert succeeded["input_versions"] == crashed["input_versions"]
    # tables featuremill creates cover the declared replay window (30d): both retentions >= 30 days
    props = io.table_properties(spark, out)
    assert props["delta.logRetentionDuration"] == "interval 30 days"
    assert props["delta.deletedFileRetentionDuration"] == "interval 30 days"


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_ingest_retry_after_crash_between_its_two_commits_writes_only_the_missing_one(spark, tmp_path):
    pipeline, purchases = make_project(tmp_path, days=2)
    config = load_pipeline(pipeline)
    validated = config.tables.validated("purchases")
    key = run_key("shop", "ingest", "purchases", day(1), day(2))

    with pytest.raises(SimulatedCrash):
        run_ingest(
            spark, config, start=day(1), end=day(2), sources=["purchases"], on_commit=_crash_on("validated.purchases")
        )
    validated_version = io.delta_version(spark, validated)
    assert not io.is_delta_table(spark, config.tables.quarantine)

    [retry] = run_ingest(spark, config, start=day(1), end=day(2), sources=["purchases"])

    assert io.delta_version(spark, validated) == validated_version
    assert len(read_commits(spark, validated, app_id=key)) == 1
    assert len(read_commits(spark, config.tables.quarantine, app_id=key)) == 1
    assert retry.status == "succeeded"  # it wrote the quarantine table the crash left unwritten
    rows = spark.read.format("delta").load(validated)
    expected_ids = sorted(p["id"] for p in purchases)
    assert rows.count() == len(expected_ids)
    assert sorted(r["id"] for r in rows.select("id").collect()) == expected_ids
    [row] = [r for r in _ledger(spark, config, key) if r["status"] == "succeeded"]
    assert json.loads(row["details"])["commit"] == "completed:quarantine"


@pytest.mark.slow
def test_rerun_after_later_landings_is_a_noop_but_changed_input_needs_corrective(spark, ingested):
    config, purchases = ingested
    out = config.tables.features("spend")
    validated = config.tables.validated("purchases")
    key = run_key("shop", "features", "spend", day(1), day(3))
    run_features(spark, config, start=day(1), end=day(3))
    committed_version = io.delta_version(spark, out)
    # day 4 lands, with late events dated day 3: rows inside the run's read range, but landed
    # after its window, belong to the day-4 run. Re-running days 1..3 is still a no-op.
    run_ingest(spark, config, start=day(4), end=day(4), sources=["purchases"])
    [again] = run_features(spark, config, start=day(1), end=day(3))
    assert again.status == "already_committed"
    assert io.delta_version(spark, out) == committed_version

    # Now change a row that had landed by day 3: the same run key is refused, nothing written.
    changed_id = sorted(p["id"] for p in purchases if p["landing"] == day(2))[0]
    DeltaTable.forPath(spark, validated).update(F.col("id") == changed_id, {"amount": F.lit(1000.0)})
    with pytest.raises(ChangedInputError) as err:
        run_features(spark, config, start=day(1), end=day(3))
    message = str(err.value)
    assert "--corrective" in message and "validated.purchases" in message
    assert "already committed from different inputs" in message
    assert io.delta_version(spark, out) == committed_version

    [fixed] = run_features(spark, config, start=day(1), end=day(3), corrective=True)
    assert fixed.status == "succeeded"
    assert io.delta_version(spark, out) > committed_version
    assert [c.txn_version(key) for c in read_commits(spark, out, app_id=key)] == [1, 2]
    changed = [dict(p, amount=1000.0) if p["id"] == changed_id else p for p in purchases]
    landed_by_3 = [p for p in changed if p["landing"] <= day(3)]
    live = feature_rows(spark.read.format("delta").load(out), end=day(2))
    # the corrective run recomputed days 1..3 from all current rows; on days 1..2 (no day-4
    # late events reach them) that is exactly the reference over the corrected purchases
    assert_same_rows(live, reference_features(landed_by_3, start=day(1), end=day(2)))


@pytest.mark.slow  # every writer of io twice, on Delta tables
def test_io_writers_carry_txn_ids_so_delta_skips_a_repeat(spark, tmp_path):
    path = str(tmp_path / "t")
    df = spark.createDataFrame(
        [(1, "2026-09-01", 1.0), (2, "2026-09-02", 2.0)], "k int, d string, v double"
    ).withColumn("d", F.to_date("d"))
    tag = io.CommitTag(app_id="test/app", version=1, user_metadata='{"x": 1}')
    predicate = io.date_range_predicate("d", day(1), day(2))
    io.replace_where(
        df,
        path,
        root=str(tmp_path),
        predicate=predicate,
        partition_by=["d"],
        commit=tag,
        properties={"delta.logRetentionDuration": "interval 31 days"},
    )
    io.replace_where(df, path, root=str(tmp_path), predicate=predicate, commit=tag)
    assert io.delta_version(spark, path) == 0
    assert io.table_properties(spark, path)["delta.logRetentionDuration"] == "interval 31 days"

    spark.conf.set(io.USER_METADATA_CONF, "platform-metadata")
    try:
        merge_tag = io.CommitTag(app_id="test/merge", version=5, user_metadata='{"m": 1}')
        changed = df.withColumn("v", F.col("v") * 10)
        for _ in range(2):
            io.merge_range(
                changed,
                path,
                root=str(tmp_path),
                keys=["k"],
                value_columns=["v"],
                partition_column="d",
                start=day(1),
                end=day(2),
                commit=merge_tag,
            )
        assert io.delta_version(spark, path) == 1
        assert sorted(r["v"] for r in spark.read.format("delta").load(path).collect()) == [10.0, 20.0]
        # the confs are back to what they were: no later write inherits the txn
        assert spark.conf.get(io.USER_METADATA_CONF) == "platform-metadata"
        assert spark.conf.get(io.TXN_APP_ID_CONF, None) is None
    finally:
        spark.conf.unset(io.USER_METADATA_CONF)
    [commit] = read_commits(spark, path, app_id="test/merge")
    assert commit.version == 1 and commit.txn_version("test/merge") == 5 and commit.metadata == {"m": 1}
    io.merge_range(
        changed,
        path,
        root=str(tmp_path),
        keys=["k"],
        value_columns=["v"],
        partition_column="d",
        start=day(1),
        end=day(2),
        commit=io.CommitTag(app_id="test/merge", version=6),
    )
    assert io.delta_version(spark, path) == 2


def test_ensure_retention_raises_short_settings_and_keeps_longer_ones(spark, tmp_path):
    path = str(tmp_path / "old")
    spark.range(3).write.format("delta").option("delta.logRetentionDuration", "interval 90 days").save(path)
    changed = ensure_retention(spark, path, ReplayWindow(seconds=45 * 86400), root=str(tmp_path))
    assert changed == {"delta.deletedFileRetentionDuration": "interval 45 days"}
    props = io.table_properties(spark, path)
    assert props["delta.logRetentionDuration"] == "interval 90 days"
    assert props["delta.deletedFileRetentionDuration"] == "interval 45 days"
    assert ensure_retention(spark, path, ReplayWindow(seconds=45 * 86400), root=str(tmp_path)) == {}
