"""featuremill dag run on real Delta tables: a failing upstream job is retried as declared, its
dependants do not run, and the run log holds one row per attempt."""

from __future__ import annotations

import json
import time

import pytest

from featuremill.cli import main
from featuremill.config import load_pipeline
from tests.conftest import slow_frame, write_pipeline

PIPELINE = """\
pipeline: shop
timezone: UTC
sources:
  tx:
    kind: events
    format: csv
    path: tx                       # never written: every ingest attempt fails
    partition_column: event_date
    event_time: ts
    key: id
    columns: {id: string, cust: bigint, ts: timestamp, amount: double}
  products:
    kind: dimension
    format: csv
    path: products
    key: sku
    columns: {sku: bigint, category: string}
feature_sets:
  - name: cust
    description: d
    owner: o
    version: 1
    source: tx
    entity: cust
    features:
      - {name: n_1d, function: count, window: 1d, description: d}
dag:
  schedule: "0 3 * * *"
  defaults: {retries: 2, retry_delay: 1s, retry_backoff: exponential, timeout: 10m}
  jobs:
    ingest_products: {job: ingest, args: [--source, products]}
    ingest_tx: {job: ingest, args: [--source, tx]}
    features: {job: features, depends_on: [ingest_tx, ingest_products]}
"""


def _labels(row) -> dict:
    return json.loads(row["details"]).get("labels", {})


def test_dag_run_failing_upstream_retried_and_stops_dependants(spark, project, capsys):
    (project / "data" / "products").mkdir()
    (project / "data" / "products" / "part-0.csv").write_text("sku,category\n1,toys\n2,books\n")
    path = write_pipeline(project, PIPELINE)

    rc = main(["dag", "run", str(path), "--date", "2026-09-01", "--env", "local"])
    out = capsys.readouterr().out
    assert rc == 1, out

    config = load_pipeline(path, env="local")
    runs = spark.read.format("delta").load(config.tables.run_log).collect()
    dag_rows = sorted((r for r in runs if r["job"] == "dag"), key=lambda r: r["started_at"])
    by_target = {}
    for r in dag_rows:
        by_target.setdefault(r["target"], []).append(r)

    # the failing job: 1 attempt + 2 retries, each recorded as failed with its attempt number
    tx = by_target["ingest_tx"]
    assert [(r["status"], _labels(r)["attempt"]) for r in tx] == [("failed", 1), ("failed", 2), ("failed", 3)]
    assert all(_labels(r)["max_attempts"] == 3 for r in tx)
    assert all("tx" in r["error"] for r in tx)
    assert len({_labels(r)["dag_run_id"] for r in dag_rows}) == 1
    # exponential backoff from 1s: at least 1s before the 2nd attempt, 2s before the 3rd
    gaps = [(b["started_at"] - a["finished_at"]).total_seconds() for a, b in zip(tx, tx[1:])]
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0, gaps

    # the independent job ran once and succeeded
    assert [(r["status"], _labels(r)["attempt"]) for r in by_target["ingest_products"]] == [("succeeded", 1)]
    # the dependant was not run: recorded as upstream_failed, no features run, no feature table
    assert [r["status"] for r in by_target["features"]] == ["upstream_failed"]
    assert "ingest_tx" in by_target["features"][0]["error"]
    assert not [r for r in runs if r["job"] == "features"]
    assert not (project / "warehouse" / "shop" / "features").exists()

    # the job's own run-log rows carry the same labels: one failed ingest of tx per attempt
    inner = sorted((r for r in runs if r["job"] == "ingest" and r["target"] == "tx"), key=lambda r: r["started_at"])
    assert [(r["status"], _labels(r)["attempt"], _labels(r)["dag_job"]) for r in inner] == [
        ("failed", 1, "ingest_tx"),
        ("failed", 2, "ingest_tx"),
        ("failed", 3, "ingest_tx"),
    ]
    products = [r for r in runs if r["job"] == "ingest" and r["target"] == "products"]
    assert [(r["status"], r["rows_written"]) for r in products] == [("succeeded", 2)]

    assert "ingest_tx            attempt 3  failed" in out
    assert "features             not run    upstream_failed" in out


TIMEOUT_PIPELINE = (
    PIPELINE.replace(
        "    ingest_products: {job: ingest, args: [--source, products]}",
        "    ingest_products: {job: ingest, args: [--source, products], timeout: 1s, retries: 0}",
    )
    .replace(
        "    features: {job: features, depends_on: [ingest_tx, ingest_products]}",
        "    features: {job: features, depends_on: [ingest_products]}",
    )
    .replace("    ingest_tx: {job: ingest, args: [--source, tx]}\n", "")
)

# Runs the pipeline's jobs: whole suite only, not the fast lane (-m "not slow").
pytestmark = pytest.mark.slow


def _after_a_minute_long_spark_job(run_ingest):
    """``run_ingest`` preceded by a Spark job that takes a minute: an attempt certain to outlast a
    1 s timeout, whatever the machine's speed, until it is cancelled."""

    def slow_ingest(spark, *args, **kwargs):
        slow_frame(spark, [1], 60).collect()
        return run_ingest(spark, *args, **kwargs)

    return slow_ingest


def test_dag_run_timeout_cancels_attempt_and_session_stays_usable(spark, project, capsys, monkeypatch):
    import featuremill.pipelines.ingest

    (project / "data" / "products").mkdir()
    (project / "data" / "products" / "part-0.csv").write_text("sku,category\n1,toys\n2,books\n")
    path = write_pipeline(project, TIMEOUT_PIPELINE, name="timeout.yaml")

    # the ingest attempt's first Spark job runs a minute unless the 1 s timeout cancels it (a tiny
    # ingest alone can finish within 1 s)
    monkeypatch.setattr(
        featuremill.pipelines.ingest,
        "run_ingest",
        _after_a_minute_long_spark_job(featuremill.pipelines.ingest.run_ingest),
    )
    began = time.monotonic()
    assert main(["dag", "run", str(path), "--date", "2026-09-01"]) == 1
    assert time.monotonic() - began < 50  # cancelled, not waited for
    out = capsys.readouterr().out
    config = load_pipeline(path, env="local")
    runs = spark.read.format("delta").load(config.tables.run_log).collect()
    dag_rows = {r["target"]: r for r in runs if r["job"] == "dag"}
    assert dag_rows["ingest_products"]["status"] == "failed"
    assert "exceeded its timeout of 1s" in dag_rows["ingest_products"]["error"]
    assert dag_rows["features"]["status"] == "upstream_failed"  # written after the cancel: session usable
    assert "ingest_products      attempt 1  timed_out" in out
    assert spark.range(3).count() == 3
