"""Backfill: a real `featuremill backfill` process killed with SIGKILL mid-way, then the same
command again, ends with every row exactly once, the ledger holding each chunk done once, and
the feature table equal to a from-scratch full build (and to an independent reference). Empty
input chunks never delete data."""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import subprocess
import sys
import threading

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from featuremill import cli
from featuremill.config import load_pipeline
from featuremill.core.errors import InputDataError
from featuremill.pipelines.backfill import chunk_ranges, run_backfill
from featuremill.pipelines.build_features import build_feature_frame
from featuremill.storage import io
from featuremill.transforms.dimensions import HISTORY_COLUMNS
from tests.integration.reliability_data import (
    assert_same_rows,
    day,
    feature_rows,
    make_project,
    reference_features,
)

CHUNK_DAYS = 4  # chunks 1-4, 5-8, 9-10


def BACKFILL_ARGS(pipeline):
    return [
        "backfill",
        str(pipeline),
        "--start",
        str(day(1)),
        "--end",
        str(day(10)),
        "--job",
        "all",
        "--chunk-days",
        str(CHUNK_DAYS),
    ]


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_until_killed(pipeline, cwd, log_path, *, kill_after_line) -> list[str]:
    """Start `featuremill backfill` in its own process group; SIGKILL it (Python driver and JVM)
    once a progress line matching ``kill_after_line`` has been printed."""
    cmd = [sys.executable, "-m", "featuremill", *BACKFILL_ARGS(pipeline)]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "lib"))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, start_new_session=True
        )
    watchdog = threading.Timer(600, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if kill_after_line(line):
                os.killpg(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=120)
    finally:
        watchdog.cancel()
    assert proc.returncode == -signal.SIGKILL, f"backfill was not killed (exit {proc.returncode}): {lines}"
    return lines


@pytest.mark.slow
def test_backfill_killed_with_sigkill_then_rerun_writes_every_row_once(spark, tmp_path, capsys):
    project = tmp_path / "project"
    pipeline, purchases = make_project(project, days=10)
    chunks = chunk_ranges(day(1), day(10), CHUNK_DAYS)
    # kill right after the first features chunk is reported done: the second one is under way
    lines = _run_until_killed(
        pipeline,
        project,
        tmp_path / "killed.log",
        kill_after_line=lambda line: " features spend " in line and ": ran" in line,
    )
    assert sum(": ran" in line for line in lines) == 1 + len(chunks) + 1  # dimension, ingest chunks, 1 features

    # the same command again (in this process, to reuse its Spark session)
    code = cli.main(BACKFILL_ARGS(pipeline))
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    progress = collections.Counter(line.rsplit(": ", 1)[1].split(" (")[0] for line in out if line.startswith("["))
    assert progress["done by an earlier attempt"] == 1 + len(chunks) + 1
    assert progress["ran"] + progress["already committed"] == len(chunks) - 1
    backfill = out[-1].split()[1]

    config = load_pipeline(pipeline)
    # the ledger: each (job, target, chunk) of this backfill succeeded exactly once
    ledger = spark.read.format("delta").load(config.tables.run_log).where(F.col("backfill_id") == backfill).collect()
    done = collections.Counter(
        (r["job"], r["target"], r["start_date"], r["end_date"])
        for r in ledger
        if r["status"] == "succeeded" and r["job"] != "backfill"
    )
    expected = (
        {("ingest", "products", day(1), day(10))}
        | {("ingest", "purchases", a, b) for a, b in chunks}
        | {("features", "spend", a, b) for a, b in chunks}
    )
    assert set(done) == expected
    assert set(done.values()) == {1}
    assert [r["status"] for r in ledger if r["job"] == "backfill"] == ["succeeded"]
    # every input row exactly once
    validated = spark.read.format("delta").load(config.tables.validated("purchases"))
    assert sorted(r["id"] for r in validated.select("id").collect()) == sorted(p["id"] for p in purchases)
    features = spark.read.format("delta").load(config.tables.features("spend"))
    assert features.count() == features.select("customer", "ts").distinct().count()
    backfilled = feature_rows(features)

    # a from-scratch full build: all ten days computed at once from the same validated data
    spend = config.feature_set("spend")
    dims = {
        "products": F.broadcast(
            spark.read.format("delta")
            .load(config.tables.validated("products"))
            .select("product", "category", *HISTORY_COLUMNS)  # the dimension's history: joined as of each event
        )
    }
    full = build_feature_frame(validated, config=config, feature_set=spend, dimensions=dims, start=day(1), end=day(10))
    assert_same_rows(backfilled, feature_rows(full))
    assert_same_rows(backfilled, reference_features(purchases, start=day(1), end=day(10)))

    # the killed process recorded its runs with their metrics (a separate Spark application)
    killed_features = [r for r in ledger if r["job"] == "features" and r["start_date"] == day(1)][0]
    metrics = killed_features["metrics"]
    assert metrics["executor_cpu_s"] > 0 and metrics["input_bytes"] > 0
    assert metrics["stage_s.compute_merge"] > 0 and metrics["freshness_s"] > 0


@pytest.mark.slow
def test_backfill_chunks_without_input_keep_existing_rows(spark, tmp_path):
    pipeline, purchases = make_project(tmp_path, days=2)
    config = load_pipeline(pipeline)
    run_backfill(spark, config, start=day(1), end=day(2), job="all", chunk_days=2)
    out = config.tables.features("spend")
    validated = config.tables.validated("purchases")
    before = feature_rows(spark.read.format("delta").load(out))
    assert_same_rows(before, reference_features(purchases, start=day(1), end=day(2)))

    # landing dates with no files: ingest writes nothing, validated keeps its rows (by default
    # the chunk fails: an events source without rows for a day; with allow_empty it is skipped)
    validated_version = io.delta_version(spark, validated)
    with pytest.raises(InputDataError, match="no rows for landing date"):
        run_backfill(spark, config, start=day(3), end=day(3), job="ingest", sources=["purchases"])
    assert io.delta_version(spark, validated) == validated_version
    tolerant = dataclasses.replace(
        config, sources=tuple(dataclasses.replace(s, allow_empty=s.kind == "events") for s in config.sources)
    )
    result = run_backfill(spark, tolerant, start=day(3), end=day(3), job="ingest", sources=["purchases"], restart=True)
    assert [o.outcome for o in result.outcomes] == ["skipped_empty"]
    assert io.delta_version(spark, validated) == validated_version

    # the validated events vanish: a features chunk over day 2 has no events and must not
    # delete day 2's feature rows...
    DeltaTable.forPath(spark, validated).delete()
    version = io.delta_version(spark, out)
    result = run_backfill(spark, config, start=day(2), end=day(2), job="features")
    assert [o.outcome for o in result.outcomes] == ["skipped_empty"]
    assert io.delta_version(spark, out) == version
    assert_same_rows(feature_rows(spark.read.format("delta").load(out)), before)
    # ...unless asked to; then exactly day 2 is cleared
    run_backfill(spark, config, start=day(2), end=day(2), job="features", allow_empty=True)
    assert_same_rows(
        feature_rows(spark.read.format("delta").load(out)), before[before["ts"].dt.date < day(2)].reset_index(drop=True)
    )
