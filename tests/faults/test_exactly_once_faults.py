"""Scenarios 2, 3 and 10 (replay part) on the exactly-once machinery (docs/reliability.md).

The crash of scenario 2 is real: a driver process kills itself with SIGKILL inside the commit
hook, after Delta committed and before the run log was written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("featuremill.storage.exactly_once", reason="needs the exactly-once machinery (issue 3)")

from featuremill.core.errors import ChangedInputError, ReplayWindowError
from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.pipelines.replay import replay_run
from tests.faults.helpers import D1, D2, DAY1, VALID_D1, VALID_D2, all_rows, load, rows, versions
from tests.integration.shop import write_landing

REPO = Path(__file__).resolve().parents[2]


def _crash_after_commit(root: Path, job: str, start: dt.date, end: dt.date, log_path: Path) -> str:
    """Run the job in a child driver that SIGKILLs itself right after its first Delta commit."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.faults.kill_child",
                str(root),
                job,
                start.isoformat(),
                end.isoformat(),
                "crash-after-commit",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            start_new_session=True,
        )
    try:
        out, _ = proc.communicate(timeout=900)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver's JVM, orphaned by the driver's death
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}: {out}"
    return out


def _ledger(spark, config, target):
    return (
        spark.read.format("delta")
        .load(config.tables.run_log)
        .where(f"target = '{target}'")
        .orderBy("started_at")
        .collect()
    )


@pytest.mark.slow
def test_crash_after_commit_before_run_log_then_retry_is_a_noop(spark, ingested_shop, tmp_path):
    config = load(ingested_shop)
    out = config.tables.features("cust")
    assert versions(spark, out) == [0]
    ledger_before = len(_ledger(spark, config, "cust"))

    printed = _crash_after_commit(ingested_shop, "features", D2, D2, tmp_path / "child.log")
    assert "COMMITTED features.cust 1" in printed
    # Committed (version 1 holds D2's rows), but the run log never heard of it.
    assert versions(spark, out) == [1]
    after_crash = all_rows(spark, out)
    assert spark.read.format("delta").load(out).where(f"event_date = DATE'{D2}'").count() == 3
    assert len(_ledger(spark, config, "cust")) == ledger_before

    [retry] = run_features(spark, config, start=D2, end=D2)
    assert retry.status == "already_committed"
    assert versions(spark, out) == [1]
    assert all_rows(spark, out) == after_crash
    [row] = [r for r in _ledger(spark, config, "cust") if r["start_date"] == D2]
    assert row["status"] == "succeeded" and json.loads(row["details"])["commit"] == "already_committed"
    assert row["output_versions"] == {"features.cust": 1}


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_same_run_key_with_changed_input_is_detected_not_skipped(spark, ingested_shop):
    config = load(ingested_shop)
    validated = config.tables.validated("tx")
    before_rows = rows(spark, validated, "event_id", "customer_id", "amount", "event_date", "_ingest_date")
    assert before_rows == sorted(VALID_D1 + VALID_D2)
    before = versions(spark, validated, config.tables.quarantine)
    # The same landing dates re-sent with one amount corrected: same run key, different input.
    write_landing(ingested_shop, D1.isoformat(), [DAY1[0].replace(",10.00,", ",11.00,")] + DAY1[1:])

    with pytest.raises(ChangedInputError) as info:
        run_ingest(spark, config, start=D1, end=D2, sources=["tx"])
    assert "already committed from different inputs" in str(info.value) and "--corrective" in str(info.value)
    assert versions(spark, validated, config.tables.quarantine) == before
    assert rows(spark, validated, "event_id", "customer_id", "amount", "event_date", "_ingest_date") == before_rows

    [fixed] = run_ingest(spark, config, start=D1, end=D2, sources=["tx"], corrective=True)
    assert fixed.status == "succeeded"
    expected = sorted([("a1", 1, 11.0, D1, D1)] + VALID_D1[1:] + VALID_D2)
    assert rows(spark, validated, "event_id", "customer_id", "amount", "event_date", "_ingest_date") == expected
    assert versions(spark, validated)[0] == before[0] + 1
    last = _ledger(spark, config, "tx")[-1]
    assert (last["status"], last["txn_version"]) == ("succeeded", 2)


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_replay_beyond_the_replay_window_fails_before_reading(spark, ingested_shop, tmp_path):
    config = load(ingested_shop)
    [run] = [r for r in _ledger(spark, config, "cust") if r["status"] == "succeeded"]
    out = tmp_path / "replayed"
    with pytest.raises(ReplayWindowError) as info:
        replay_run(
            spark, config, run_id=run["run_id"], now=run["started_at"] + dt.timedelta(days=31), output_root=str(out)
        )
    assert f"run {run['run_id']}" in str(info.value)
    assert not out.exists()
