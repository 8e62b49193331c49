"""Every rule kind under severities warn and fail, decided by the gate on a tiny frame.

Expected failing counts are written out by hand from the four rows below; the anomaly z-score
is recomputed with numpy from the history the test writes.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from featuremill.core.errors import QualityRuleFailed
from featuremill.quality import history
from featuremill.quality.gate import TableGate, enforce, quality_metrics_path
from featuremill.quality.rules import EvaluationContext
from tests.integration.quality_helpers import load, write_pipeline

DAY = dt.date(2024, 1, 2)
NOW = dt.datetime(2024, 1, 2, 12, 0, tzinfo=dt.timezone.utc)
SCHEMA = (
    "id string, cust bigint, ts timestamp, amount double, channel string, code string, event_date date, "
    "_ingest_date date, _source_file string"
)


def _rules(severity: str) -> str:
    return f"""\
tables:
  validated.tx:
    rules:
      - {{check: not_null, column: amount, severity: {severity}}}
      - {{check: range, column: amount, min: 0, max: 100, severity: {severity}}}
      - {{check: allowed_values, column: channel, values: [web], severity: {severity}}}
      - {{check: regex, column: code, pattern: "^C", severity: {severity}}}
      - {{check: referential, column: cust, dimension: customers, severity: {severity}}}
      - {{check: unique, column: code, scope: batch, severity: {severity}}}
      - {{check: completeness, column: amount, min_percent: 90, severity: {severity}}}
      - {{check: freshness, max_age: 1h, severity: {severity}}}
      - {{check: row_count_change, max_change_percent: 50, severity: {severity}}}
      - {{check: anomaly, metric: mean, column: amount, max_sd: 3, min_history: 3, severity: {severity}}}
      - {{check: anomaly, metric: null_fraction, column: code, min_history: 3, severity: {severity}}}
"""


def _t(hour, minute=0):
    return dt.datetime(2024, 1, 2, hour, minute)


BAD_ROWS = [
    ("e1", 1, _t(10, 0), 500.0, "web", "C1"),
    ("e2", 2, _t(10, 10), None, "app", "X2"),
    ("e3", 7, _t(10, 20), 300.0, "web", "C1"),
    ("e4", 1, _t(10, 30), 200.0, "web", "C4"),
]
GOOD_ROWS = [(f"g{i}", 1 + i % 2, _t(11, 5 * i), 9.0 + i % 3, "web", f"C{i}") for i in range(8)]
MEAN_HISTORY = [10.0, 11.0, 9.0, 10.5]


def _frame(spark, rows):
    return spark.createDataFrame([r + (DAY, DAY, "f") for r in rows], SCHEMA)


def _seed_history(spark, config):
    """Earlier partitions in quality_metrics, plus a failed run and a re-run that must be ignored."""
    recs = []
    for i, mean in enumerate(MEAN_HISTORY):
        day = DAY - dt.timedelta(days=len(MEAN_HISTORY) - i)
        recs += history.build_records(
            run_id=f"r{i}",
            pipeline="q",
            job="ingest",
            table="validated.tx",
            start=day,
            end=day,
            recorded_at=dt.datetime(2024, 1, 1, i),
            gate_status="passed",
            results=[],
            metrics=[("rows_per_day", "", 10.0), ("mean", "amount", mean), ("null_fraction", "code", 0.0)],
        )
    last = DAY - dt.timedelta(days=1)
    # the bad run of the last day (gate failed) and an older superseded value of the same day
    recs += history.build_records(
        run_id="bad",
        pipeline="q",
        job="ingest",
        table="validated.tx",
        start=last,
        end=last,
        recorded_at=dt.datetime(2024, 1, 1, 23),
        gate_status="failed",
        results=[],
        metrics=[("rows_per_day", "", 5000.0), ("mean", "amount", 1e6)],
    )
    recs += history.build_records(
        run_id="old",
        pipeline="q",
        job="ingest",
        table="validated.tx",
        start=last,
        end=last,
        recorded_at=dt.datetime(2023, 1, 1),
        gate_status="passed",
        results=[],
        metrics=[("rows_per_day", "", 999.0), ("mean", "amount", -50.0)],
    )
    history.append_records(spark, quality_metrics_path(config), recs, root=config.env.warehouse)


def _gate(spark, config, rows):
    customers = spark.createDataFrame([(1, "gold"), (2, "silver")], "cust bigint, segment string")
    gate = TableGate(config, "validated.tx")
    frame = _frame(spark, rows)
    gate.check_schema(spark, frame)
    frame = gate.with_row_rules(frame, references={"customers": customers})
    gate.measure(frame)
    gate.decide(spark, valid=frame, context=EvaluationContext(now=NOW, start=DAY, end=DAY))
    return gate


@pytest.mark.slow  # every rule kind checked on a table, twice (warn, fail)
@pytest.mark.parametrize("severity", ["warn", "fail"])
def test_every_rule_kind_under_warn_and_fail(spark, project, severity):
    write_pipeline(project, _rules(severity))
    config = load(project)
    _seed_history(spark, config)

    gate = _gate(spark, config, BAD_ROWS)
    got = {r.rule: (r.status, r.failing_rows) for r in gate.results}
    assert got == {
        "not_null_amount": (severity, 1),
        "range_amount": (severity, 3),
        "allowed_values_channel": (severity, 1),
        "regex_code": (severity, 1),
        "referential_cust": (severity, 1),
        "unique_code": (severity, 1),
        "completeness_amount": (severity, 1),
        "freshness_ts": (severity, None),
        "row_count_change": (severity, None),
        "anomaly_mean_amount": (severity, None),
        "anomaly_null_fraction_code": ("pass", None),
    }
    by_rule = {r.rule: r for r in gate.results}
    assert by_rule["completeness_amount"].value == pytest.approx(75.0)
    assert by_rule["freshness_ts"].value == pytest.approx(90 * 60)  # 10:30 -> 12:00
    assert by_rule["row_count_change"].value == pytest.approx(60.0)  # 4 rows vs 10 the day before
    expected_z = (np.mean([500.0, 300.0, 200.0]) - np.mean(MEAN_HISTORY)) / np.std(MEAN_HISTORY, ddof=1)
    assert by_rule["anomaly_mean_amount"].value == pytest.approx(expected_z)
    if severity == "fail":
        with pytest.raises(QualityRuleFailed) as info:
            enforce(spark, config, [(gate, "run-bad")], job="ingest", recorded_at=NOW)
        assert str(info.value).startswith("10 quality rule(s) failed")
        assert "example keys: " in str(info.value)
    else:
        enforce(spark, config, [(gate, "run-bad")], job="ingest", recorded_at=NOW)
    stored = spark.read.format("delta").load(quality_metrics_path(config)).where("run_id = 'run-bad'")
    assert stored.where("kind = 'rule'").count() == 11
    assert {r.gate_status for r in stored.collect()} == {"failed" if severity == "fail" else "passed"}

    good = _gate(spark, config, GOOD_ROWS)
    assert {r.rule: r.status for r in good.results} == {
        "not_null_amount": "pass",
        "range_amount": "pass",
        "allowed_values_channel": "pass",
        "regex_code": "pass",
        "referential_cust": "pass",
        "unique_code": "pass",
        "completeness_amount": "pass",
        "freshness_ts": "pass",
        "row_count_change": "pass",
        "anomaly_mean_amount": "pass",
        "anomaly_null_fraction_code": "pass",
    }
    enforce(spark, config, [(good, "run-good")], job="ingest", recorded_at=NOW)
