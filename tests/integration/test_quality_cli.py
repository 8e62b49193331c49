"""``featuremill profile`` and ``featuremill drift`` end to end: stored tables, offline HTML, exit codes."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from featuremill.cli import main
from featuremill.pipelines.ingest import run_ingest
from tests.integration.quality_helpers import load, write_customers, write_pipeline, write_tx

# Runs the pipeline's jobs: whole suite only, not the fast lane (-m "not slow").
pytestmark = pytest.mark.slow


def _day(day: str, rng, scale: float) -> list[str]:
    rows = []
    for i in range(300):
        amount = round(float(rng.lognormal(3.0, 0.5)) * scale, 2)
        channel = "web" if rng.random() < 0.6 else "app"
        rows.append(f"{day}-{i},{1 + i % 3},{day} {i % 24:02d}:{i % 60:02d}:00,{amount},{channel},C{i}")
    return rows


def _assert_offline_html(path):
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text
    for external in ("<script", "src=", "<link", "href='http", 'href="http', "@import"):
        assert external not in text


def test_profile_and_drift_commands(spark, project, capsys):
    pipeline = write_pipeline(project, "drift: {min_rows: 50}\n")
    write_customers(project, ["1,gold", "2,silver", "3,gold"])
    rng = np.random.default_rng(11)
    for day, scale in (("2024-01-02", 1.0), ("2024-01-03", 1.0), ("2024-01-04", 1.6)):
        write_tx(project, day, _day(day, rng, scale))
    config = load(project)
    run_ingest(spark, config, start=dt.date(2024, 1, 2), end=dt.date(2024, 1, 4))
    out = project / "reports"
    args = [str(pipeline), "--table", "validated.tx", "--out", str(out)]

    assert main(["profile", *args, "--date", "2024-01-04"]) == 0
    html_path = out / "profile_validated.tx_2024-01-04.html"
    _assert_offline_html(html_path)
    data = json.loads((out / "profile_validated.tx_2024-01-04.json").read_text())
    assert data["rows"] == 300 and [c["column"] for c in data["columns"]][:3] == ["id", "cust", "ts"]
    stored = spark.read.format("delta").load(f"{config.tables.root}/profiles")
    assert stored.where(f"profile_id = '{data['profile_id']}'").count() == len(data["columns"])

    drift = ["drift", *args, "--reference", "2024-01-02..2024-01-03", "--columns", "amount,channel"]
    assert main([*drift, "--current", "2024-01-04"]) == 1  # amounts 60% larger: alert, exit 1
    printed = capsys.readouterr().out
    assert "fitted" in printed and "drift alert: amount" in printed
    report = json.loads((out / "drift_validated.tx_2024-01-04.json").read_text())
    assert report["level"] == "alert"
    levels = {f["feature"]: f["level"] for f in report["features"]}
    assert levels["amount"] == "alert" and levels["channel"] == "ok"
    _assert_offline_html(out / "drift_validated.tx_2024-01-04.html")

    # A day from the reference period: no alert, and the stored reference is reused (not refitted).
    assert main([*drift, "--current", "2024-01-03"]) == 0
    assert "reused" in capsys.readouterr().out
    assert main([*drift, "--current", "2024-01-04", "--fail-on", "never"]) == 0
    refs = spark.read.format("delta").load(f"{config.tables.root}/drift_references")
    assert refs.select("reference_id").distinct().count() == 1
    results = spark.read.format("delta").load(f"{config.tables.root}/drift_results")
    assert results.select("drift_run_id").distinct().count() == 3

    # Internal columns stay internal: the validated table holds them, no profile or drift report names them.
    validated = spark.read.format("delta").load(config.tables.validated("tx")).columns
    assert {"_ingest_date", "_source_file"} <= set(validated)
    profiled = [c["column"] for c in data["columns"]]
    assert profiled == [c for c in validated if not c.startswith("_")]
    assert {"amount", "channel", "event_date"} <= set(profiled)
    stored_names = {r["column_name"] for r in stored.where(f"profile_id = '{data['profile_id']}'").collect()}
    assert stored_names == set(profiled)
    capsys.readouterr()
    assert main(["profile", *args, "--date", "2024-01-04", "--columns", "amount,_source_file"]) == 2
    assert "validated.tx: _source_file is an internal column" in capsys.readouterr().err
    assert main(["drift", *args, "--reference", "2024-01-02..2024-01-03", "--current", "2024-01-03"]) == 0
    default = json.loads((out / "drift_validated.tx_2024-01-03.json").read_text())
    assert {f["feature"] for f in default["features"]} == {"cust", "amount", "channel", "code"}
    capsys.readouterr()
    refused = ["drift", *args, "--reference", "2024-01-02..2024-01-03", "--current", "2024-01-03"]
    assert main([*refused, "--columns", "amount,_ingest_date"]) == 2
    assert "validated.tx: _ingest_date is an internal column" in capsys.readouterr().err
