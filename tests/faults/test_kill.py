"""Scenario 1: the driver process killed with SIGKILL in the middle of a Delta write.

A real ``python`` driver (with its own JVM, ``tests/faults/kill_child.py``) runs the ingest job
(``replaceWhere`` append of new landing dates) and then the feature job (MERGE). The test watches
the table's folder and sends SIGKILL to the driver's process group as soon as the write has put
its first data file there, before the commit: Delta writes data files first and commits the log
last. The table must stay at its last committed version (the files are orphans no snapshot
references), and a re-run must produce exactly one copy of every row.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.storage import io
from tests.faults.helpers import D1, D2, D3, load, shop_project

REPO = Path(__file__).resolve().parents[2]
PER_DAY = 6000


def _day_lines(day: dt.date) -> list[str]:
    """``PER_DAY`` valid events on ``day``: unique ids, one second apart, 200 customers."""
    return [
        f"{day:%m%d}-{i},{i % 200 + 1},{10 + i % 2},{day} {i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d},"
        f"{i % 97}.25,web"
        for i in range(PER_DAY)
    ]


def _parquet_files(table: str) -> set[str]:
    return {str(p) for p in Path(table).rglob("*.parquet") if "_delta_log" not in p.parts}


def _log_versions(table: str) -> list[int]:
    return sorted(int(p.stem) for p in (Path(table) / "_delta_log").glob("*.json"))


def _kill_mid_write(root: Path, job: str, start: dt.date, end: dt.date, table: str, log_path: Path) -> set[str]:
    """Run the job in a child driver; SIGKILL it once its write to ``table`` has written a data
    file. Returns the files the killed write left behind."""
    before = _parquet_files(table)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.kill_child", str(root), job, start.isoformat(), end.isoformat()],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            start_new_session=True,
        )
    watchdog = threading.Timer(600, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    try:
        for line in proc.stdout:
            if line.strip() == f"WRITE {table}":
                break
        else:
            pytest.fail(f"the child driver ended without writing {table}; see {log_path}")
        left = set()
        while proc.poll() is None:
            left = _parquet_files(table) - before
            if left:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait()
    finally:
        watchdog.cancel()
    assert proc.returncode == -signal.SIGKILL, f"the driver was not killed mid-write (exit {proc.returncode})"
    return left


@pytest.mark.slow
def test_sigkill_mid_append_and_mid_merge_leaves_last_version_and_rerun_writes_each_row_once(spark, tmp_path):
    root = shop_project(tmp_path / "shop", days=[(d, _day_lines(d)) for d in (D1, D2, D3)])
    config = load(root)
    validated, features = config.tables.validated("tx"), config.tables.features("cust")
    run_ingest(spark, config, start=D1, end=D1)
    run_features(spark, config, start=D1, end=D1)
    assert (_log_versions(validated), _log_versions(features)) == ([0], [0])

    # Killed in the middle of ingest's replaceWhere of landing dates D2..D3.
    orphans = _kill_mid_write(root, "ingest", D2, D3, validated, tmp_path / "ingest-child.log")
    assert orphans, "the kill should land after the first data file"
    assert _log_versions(validated) == [0]
    table = spark.read.format("delta").load(validated)
    assert table.count() == PER_DAY and table.select("event_id").distinct().count() == PER_DAY
    referenced = {Path(f.replace("file:", "", 1)).as_posix() for f in table.inputFiles()}
    assert not (orphans & referenced)  # the files exist, no snapshot references them

    [rerun] = [r for r in run_ingest(spark, config, start=D2, end=D3, sources=["tx"]) if r.source == "tx"]
    assert (rerun.rows_read, rerun.rows_valid, rerun.rows_quarantined) == (2 * PER_DAY, 2 * PER_DAY, 0)
    table = spark.read.format("delta").load(validated)
    expected_ids = {line.split(",")[0] for d in (D1, D2, D3) for line in _day_lines(d)}
    assert table.count() == 3 * PER_DAY
    assert {r[0] for r in table.select("event_id").collect()} == expected_ids
    assert io.delta_version(spark, validated) == 1

    # Killed in the middle of the feature MERGE of D2..D3.
    orphans = _kill_mid_write(root, "features", D2, D3, features, tmp_path / "features-child.log")
    assert orphans
    assert _log_versions(features) == [0]
    feats = spark.read.format("delta").load(features)
    assert feats.count() == PER_DAY
    assert feats.where(f"event_date <> DATE'{D1}'").count() == 0

    run_features(spark, config, start=D2, end=D3)
    feats = spark.read.format("delta").load(features)
    # One feature row per (customer, event time): every event has its own second.
    assert feats.count() == 3 * PER_DAY
    assert feats.select("customer_id", "event_ts").distinct().count() == 3 * PER_DAY
    assert sorted((r[0], r[1]) for r in feats.groupBy("event_date").count().collect()) == [
        (D1, PER_DAY),
        (D2, PER_DAY),
        (D3, PER_DAY),
    ]
    assert io.delta_version(spark, features) == 1
