"""``featuremill demo`` includes the fit + select step and leaves its report (issue 6, acceptance 4).

A small demo dataset (700 events over 10 days: the same events per customer and
day as the default demo, so the label has both classes). References: the demo's inactivity label
recomputed with pandas from the feature rows, and the report files against the Delta tables."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from featuremill.pipelines.demo_data import DemoDataSpec
from tests.integration.conftest import DEMO_DAYS, DEMO_EVENTS


@pytest.mark.slow
def test_demo_runs_fit_and_select_and_leaves_the_report(spark, demo_run):
    # the demo (700 events over 10 days, exit code 0) ran once for the session: tests/integration/conftest.py
    reports = demo_run.reports
    printed = demo_run.printed
    assert "model step" in printed and "select: kept" in printed

    # the report the demo leaves
    html = (reports / "selection.html").read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "<script" not in html
    body = json.loads((reports / "selection.json").read_text())
    kept = json.loads((reports / "selected_features.json").read_text())["features"]
    assert kept and kept == body["selected"]
    assert body["label"] == "inactive_2d" and len(body["features"]) > len(kept)

    # the stored state (version 1, exported as JSON too) and the selection results table
    root = demo_run.warehouse / "demo"
    states = spark.read.format("delta").load(str(root / "preprocessing_states")).collect()
    exported = json.loads((reports / "preprocessing_state.json").read_text())
    assert [s["version"] for s in states] == [1] and exported["version"] == 1
    assert exported["data_fingerprint"] == states[0]["data_fingerprint"]
    selection = spark.read.format("delta").load(str(root / "feature_selection"))
    assert {r["feature"] for r in selection.where("decision = 'keep'").collect()} == set(kept)

    # the last day's feature run served preprocessed rows with that state
    served = spark.read.format("delta").load(str(root / "preprocessed" / "customer_activity"))
    assert served.count() > 0
    assert {r[0] for r in served.select("_preprocessing_version").distinct().collect()} == {1}

    # the training label, recomputed with pandas: 1 when the customer's next purchase is more than
    # 2 days later (or never, within the history), only for rows whose 2-day horizon is complete
    spec = DemoDataSpec(events=DEMO_EVENTS, days=DEMO_DAYS)
    history_end = spec.end_date - dt.timedelta(days=1)
    features = spark.read.format("delta").load(str(root / "features" / "customer_activity"))
    rows = pd.DataFrame(
        [
            r.asDict()
            for r in features.where(features["event_date"] <= history_end).select("customer_id", "event_ts").collect()
        ]
    )
    rows = rows.sort_values(["customer_id", "event_ts"])
    following = rows.groupby("customer_id")["event_ts"].shift(-1)
    rows["inactive_2d"] = (following.isna() | (following - rows["event_ts"] > pd.Timedelta(days=2))).astype(int)
    cutoff = pd.Timestamp(history_end + dt.timedelta(days=1)) - pd.Timedelta(days=2)
    expected = sorted(
        map(tuple, rows[rows["event_ts"] < cutoff][["customer_id", "event_ts", "inactive_2d"]].itertuples(index=False))
    )
    training = spark.read.format("delta").load(str(root / "training" / "inactive_2d"))
    got = sorted(
        (r["customer_id"], pd.Timestamp(r["event_ts"]), r["inactive_2d"])
        for r in training.select("customer_id", "event_ts", "inactive_2d").collect()
    )
    assert got == [(c, pd.Timestamp(t), y) for c, t, y in expected]
    assert 0 < sum(y for *_, y in got) < len(got)

    # internal columns stay internal (issue 18): the feature table carries _known_at and
    # _feature_set_version, the training table, the selection report and its table name neither
    assert {"_known_at", "_feature_set_version"} <= set(features.columns)
    assert [c for c in training.columns if c.startswith("_")] == []
    assert {"customer_id", "event_ts", "inactive_2d", "amount_sum_7d"} <= set(training.columns)
    reported = [f["name"] for f in body["features"]]
    assert [n for n in reported if n.startswith("_")] == [] and "amount_sum_7d" in reported
    assert [r[0] for r in selection.select("feature").distinct().collect() if r[0].startswith("_")] == []
    assert "_known_at" not in (reports / "selection.html").read_text()


@pytest.mark.slow
def test_demo_drift_report_raises_no_alert_it_did_not_inject(demo_run):
    # issue 18: the demo injects no drift, so its printed drift summary must flag nothing, and
    # it must say that no drift was injected (a flag would then be a finding, not noise)
    printed = demo_run.printed
    drift_lines = [line for line in printed.splitlines() if line.strip().startswith("drift ")]
    assert drift_lines, printed[-3000:]
    for line in drift_lines:
        level = line.split(": ")[-1].split()[0]
        assert level == "OK", line
    assert "flagged:" not in printed
    assert "no drift is injected into the demo data" in printed
    # the JSON reports agree with what was printed: no feature at warn or alert
    for path in demo_run.reports.glob("drift_*.json"):
        report = json.loads(path.read_text())
        assert [f["feature"] for f in report["features"] if f["level"] in ("warn", "alert")] == [], path
