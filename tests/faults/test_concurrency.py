"""Scenario 4: concurrent runs of one job on one SparkSession (threads), bounded commit retries.

LocalLogStore is atomic only inside one JVM, so (as in Delta's own suites) the racing writers are
threads of one session. A barrier at the write call (``commit_retry.observe_writes``) lines both
writers up so they read the same snapshot and a conflict happens on every run, not by luck.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from featuremill.core.errors import CommitConflictError
from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.storage import io
from featuremill.storage.commit_retry import commit_attempts, is_commit_conflict, observe_writes
from tests.conftest import slow_frame
from tests.faults.helpers import (
    D1,
    D2,
    QUARANTINE_D1,
    VALID_D1,
    VALID_D2,
    all_rows,
    copy_warehouse,
    load,
    rows,
    versions,
)


def _race(*calls, barrier_path: str, parties: int = 2, timeout: float = 60):
    """Run ``calls`` in threads; each thread's first write to ``barrier_path`` waits for the others."""
    barrier = threading.Barrier(parties, timeout=timeout)
    waited: set[int] = set()

    def observer(path, attempt):
        ident = threading.get_ident()
        if path == barrier_path and attempt == 1 and ident not in waited:
            waited.add(ident)
            barrier.wait()

    results, errors = [None] * len(calls), [None] * len(calls)

    def runner(i, call):
        try:
            results[i] = call()
        except BaseException as exc:  # reported by the test
            errors[i] = exc

    with observe_writes(observer):
        threads = [threading.Thread(target=runner, args=(i, c)) for i, c in enumerate(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    return results, errors


def _conflicts(caplog, path):
    return [
        r
        for r in caplog.records
        if r.name == "featuremill.storage.commit_retry"
        and path in r.getMessage()
        and "commit conflict" in r.getMessage()
    ]


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_concurrent_ingest_same_partition_one_retries_and_equals_serial(spark, ingested_shop, caplog):
    config = load(ingested_shop)
    tables = config.tables
    v_valid, v_quarantine = versions(spark, tables.validated("tx"), tables.quarantine)
    assert v_valid == 0
    caplog.set_level(logging.WARNING, logger="featuremill.storage.commit_retry")

    results, errors = _race(
        lambda: run_ingest(spark, config, start=D1, end=D1, sources=["tx"]),
        lambda: run_ingest(spark, config, start=D1, end=D1, sources=["tx"]),
        barrier_path=tables.validated("tx"),
    )

    assert errors == [None, None]
    # Both read version 0; one committed, the other lost the race and retried on the new
    # snapshot, where Delta skipped it: same run key, its txnVersion already recorded.
    assert len(_conflicts(caplog, tables.validated("tx"))) >= 1
    assert sorted(r[0].status for r in results) in (["already_committed", "succeeded"], ["succeeded", "succeeded"])
    assert rows(
        spark, tables.validated("tx"), "event_id", "customer_id", "amount", "event_date", "_ingest_date"
    ) == sorted(VALID_D1 + VALID_D2)
    assert rows(spark, tables.quarantine, "source", "_ingest_date", "rule") == QUARANTINE_D1
    # Exactly one commit per table for the run key: the loser's attempts left nothing behind.
    assert versions(spark, tables.validated("tx"), tables.quarantine) == [1, v_quarantine + 1]
    history = spark.read.format("delta").load(tables.run_log).where("job = 'ingest' AND target = 'tx'")
    assert history.where("status = 'failed'").count() == 0 and history.count() == 3


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_concurrent_ingest_disjoint_partitions_both_commit(spark, ingested_shop):
    config = load(ingested_shop)
    tables = config.tables
    v_quarantine = io.delta_version(spark, tables.quarantine)

    results, errors = _race(
        lambda: run_ingest(spark, config, start=D1, end=D1, sources=["tx"]),
        lambda: run_ingest(spark, config, start=D2, end=D2, sources=["tx"]),
        barrier_path=tables.validated("tx"),
    )

    assert errors == [None, None]
    assert results[0][0].rows_valid == 3 and results[1][0].rows_valid == 3
    assert rows(
        spark, tables.validated("tx"), "event_id", "customer_id", "amount", "event_date", "_ingest_date"
    ) == sorted(VALID_D1 + VALID_D2)
    assert rows(spark, tables.quarantine, "source", "_ingest_date", "rule") == QUARANTINE_D1
    # D2 has no rejected rows: its quarantine write replaces nothing with nothing, but still commits
    # the run key's Delta transaction id (exactly-once bookkeeping), so each run adds one version.
    assert versions(spark, tables.validated("tx"), tables.quarantine) == [2, v_quarantine + 2]


@pytest.mark.slow
def test_concurrent_feature_merge_same_range_equals_serial_run(spark, ingested_shop, tmp_path, caplog):
    config = load(ingested_shop)
    out = config.tables.features("cust")
    assert versions(spark, out) == [0]
    # The serial reference: the same run on a copy of the project, alone.
    copy_warehouse(ingested_shop, tmp_path / "serial")
    serial = load(tmp_path / "serial")
    run_features(spark, serial, start=D2, end=D2)
    caplog.set_level(logging.WARNING, logger="featuremill.storage.commit_retry")

    results, errors = _race(
        lambda: run_features(spark, config, start=D2, end=D2),
        lambda: run_features(spark, config, start=D2, end=D2),
        barrier_path=out,
    )

    assert errors == [None, None]
    # A MERGE takes its Delta txn id from session confs, so featuremill runs one MERGE of a
    # session at a time: the second waits, then Delta skips it (its txn version is recorded).
    # Conflicts between sessions or processes are the ingest case above and the bounded-retry test.
    assert len(_conflicts(caplog, out)) <= 1
    assert all_rows(spark, out) == all_rows(spark, serial.tables.features("cust"))
    df = spark.read.format("delta").load(out)
    assert df.count() == 6  # one row per valid event of D1 and D2, no copies
    assert sorted(r[0] for r in df.select("event_date").distinct().collect()) == [D1, D2]
    assert sorted(r[0].status for r in results) == ["already_committed", "succeeded"]
    inserted = sorted(r[0].rows_inserted for r in results)
    assert inserted == [0, 3]  # the retried MERGE was skipped by Delta: same run key, already committed
    assert versions(spark, out) == [1]


@pytest.mark.slow
def test_concurrent_feature_merge_disjoint_ranges_both_commit(spark, ingested_shop, caplog):
    config = load(ingested_shop)
    out = config.tables.features("cust")
    before = all_rows(spark, out)
    caplog.set_level(logging.WARNING, logger="featuremill.storage.commit_retry")

    # D1 was committed by the template's run: a corrective run MERGEs it again (a real write).
    results, errors = _race(
        lambda: run_features(spark, config, start=D1, end=D1, corrective=True),
        lambda: run_features(spark, config, start=D2, end=D2),
        barrier_path=out,
    )

    assert errors == [None, None]
    # The MERGE reads only its range's files (io.merge_range), so disjoint ranges should not
    # conflict; if Delta reports one anyway, it is retried (bounded), never lost.
    assert len(_conflicts(caplog, out)) <= 1
    df = spark.read.format("delta").load(out)
    assert df.where("event_date = DATE'2024-03-01'").count() == 3
    assert df.where("event_date = DATE'2024-03-02'").count() == 3
    assert [r for r in all_rows(spark, out) if D1 in r] == before  # D1 recomputed to identical values
    assert sorted(r[0].rows_inserted for r in results) == [0, 3]
    assert versions(spark, out) == [2]


def _conflicter(spark, path, go: threading.Event, done: threading.Event, commits: list):
    """Append a row to the partition the slow writer reads each time ``go`` is set."""
    while not done.is_set():
        if go.wait(timeout=0.1):
            go.clear()
            time.sleep(0.8)  # the slow writer has read its snapshot and is writing files
            spark.createDataFrame([(100 + len(commits), "p")], "v bigint, part string").write.format("delta").mode(
                "append"
            ).save(path)
            commits.append(io.delta_version(spark, path))


@pytest.mark.slow  # minutes under load in the fast-lane run: whole suite only
@pytest.mark.parametrize("attempts, conflicting_attempts", [(3, 2), (2, 2)])
def test_retry_on_conflict_is_bounded_and_retries_on_a_fresh_snapshot(spark, tmp_path, attempts, conflicting_attempts):
    path = str(tmp_path / "t")
    spark.createDataFrame([(1, "p")], "v bigint, part string").write.format("delta").partitionBy("part").save(path)
    go, done, commits = threading.Event(), threading.Event(), []
    worker = threading.Thread(target=_conflicter, args=(spark, path, go, done, commits))
    worker.start()
    seen = []

    def observer(p, attempt):
        if p == path:
            seen.append(attempt)
            if attempt <= conflicting_attempts:
                go.set()

    try:
        with observe_writes(observer), commit_attempts(attempts):
            if attempts > conflicting_attempts:
                io.replace_where(slow_frame(spark, [7, 8], 2.5), path, root=str(tmp_path), predicate="part = 'p'")
            else:
                with pytest.raises(CommitConflictError) as info:
                    io.replace_where(slow_frame(spark, [7, 8], 2.5), path, root=str(tmp_path), predicate="part = 'p'")
                assert f"lost {attempts} commit race(s)" in str(info.value) and path in str(info.value)
                assert is_commit_conflict(info.value.__cause__)
    finally:
        done.set()
        worker.join()

    assert seen == list(range(1, min(attempts, conflicting_attempts + 1) + 1))
    assert commits == [1, 2][:conflicting_attempts]
    table = sorted(r[0] for r in spark.read.format("delta").load(path).select("v").collect())
    if attempts > conflicting_attempts:
        # The third attempt read version 2 (both concurrent appends) and replaced the partition.
        assert table == [7, 8]
        assert versions(spark, path) == [3]
    else:
        # Nothing of the failed write is visible: the table is exactly the concurrent appends.
        assert table == [1, 100, 101]
        assert versions(spark, path) == [2]
