"""Quality rules inside the real jobs: quarantine accounting, warn records, fail stops every write.

Expected values are written out by hand from the input rows below.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from featuremill.core.errors import QualityRuleFailed
from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from tests.integration.quality_helpers import load, versions, write_customers, write_pipeline, write_tx

# Runs the pipeline's jobs: whole suite only, not the fast lane (-m "not slow").
pytestmark = pytest.mark.slow

D1, D2 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)

RULES_D1 = """\
tables:
  validated.tx:
    rules:
      - {check: range, column: amount, min: 0, max: 1000, severity: quarantine}
      - {check: allowed_values, column: channel, values: [web, app], severity: quarantine}
      - {check: referential, column: cust, dimension: customers, severity: quarantine}
      - {check: not_null, column: channel, severity: quarantine}
      - {check: regex, column: code, pattern: "^[A-Z][0-9]{3}$", severity: quarantine}
      - {check: not_null, column: amount, severity: warn}
      - {check: completeness, column: amount, min_percent: 90, severity: warn}
      - {check: freshness, max_age: 1d, relative_to: partition_end, severity: warn}
      - {check: unique, column: code, severity: warn}
      - {check: row_count_change, max_change_percent: 50, severity: warn}
"""

DAY1 = [
    "e1,1,2024-01-02 10:00:00,10.0,web,A100",  # valid
    "e2,1,2024-01-02 10:05:00,-5.0,web,A101",  # range
    "e3,2,2024-01-02 10:10:00,20.0,fax,A102",  # allowed_values
    "e4,9,2024-01-02 10:15:00,30.0,app,A103",  # referential: customer 9 does not exist
    "e5,2,2024-01-02 10:20:00,40.0,,A104",  # not_null channel (allowed_values passes a null)
    "e6,3,2024-01-02 10:25:00,50.0,app,bad",  # regex
    "e7,3,2024-01-02 10:30:00,2000.0,fax,A106",  # range and allowed_values: filed under range (first)
    "e8,1,2024-01-02 10:35:00,x,web,A107",  # built-in type rule
    "e9,2,2024-01-02 10:40:00,60.0,web,A108",  # valid
    "e10,3,2024-01-02 10:45:00,,app,A109",  # valid, amount null (warn rules count it)
    "e1,1,2024-01-02 10:00:00,10.0,web,A100",  # duplicate of e1
]


def _metrics(spark, config):
    return spark.read.format("delta").load(f"{config.tables.root}/quality_metrics")


def test_ingest_quarantine_rules_accounting_and_recorded_results(spark, project):
    write_pipeline(project, RULES_D1)
    write_customers(project, ["1,gold", "2,silver", "3,gold"])
    write_tx(project, "2024-01-02", DAY1)
    config = load(project)

    results = {r.source: r for r in run_ingest(spark, config, start=D1, end=D1)}

    tx = results["tx"]
    assert tx.by_rule == {
        "valid": 3,
        "range_amount": 2,
        "allowed_values_channel": 1,
        "referential_cust": 1,
        "not_null_channel": 1,
        "regex_code": 1,
        "type": 1,
        "duplicate": 1,
    }
    assert (tx.rows_read, tx.rows_valid, tx.rows_quarantined) == (11, 3, 8)
    assert tx.rows_read == tx.rows_valid + tx.rows_quarantined
    validated = spark.read.format("delta").load(config.tables.validated("tx"))
    assert sorted(r.id for r in validated.select("id").collect()) == ["e1", "e10", "e9"]
    assert "__ref_referential_cust" not in validated.columns
    quarantine = {
        (json.loads(r.raw_record)["id"], r.rule): r.reason
        for r in spark.read.format("delta").load(config.tables.quarantine).where("source = 'tx'").collect()
    }
    assert set(quarantine) == {
        ("e2", "range_amount"),
        ("e3", "allowed_values_channel"),
        ("e4", "referential_cust"),
        ("e5", "not_null_channel"),
        ("e6", "regex_code"),
        ("e7", "range_amount"),
        ("e8", "type"),
        ("e1", "duplicate"),
    }
    assert quarantine[("e2", "range_amount")] == "rule range_amount: field 'amount': value -5.0 outside [0, 1000]"
    assert quarantine[("e7", "range_amount")] == (
        "rule range_amount: field 'amount': value 2000.0 outside [0, 1000]; "
        "rule allowed_values_channel: field 'channel': 'fax' is not one of "
        "web, app"
    )
    assert quarantine[("e4", "referential_cust")] == (
        'rule referential_cust: {"cust":9} not found in dimension customers (cust)'
    )
    assert quarantine[("e6", "regex_code")] == "rule regex_code: field 'code': 'bad' does not match ^[A-Z][0-9]{3}$"

    rules = {
        r.name: r for r in _metrics(spark, config).where("table_name = 'validated.tx' AND kind = 'rule'").collect()
    }
    assert {n: (r.status, r.failing_rows) for n, r in rules.items()} == {
        "range_amount": ("quarantined", 2),
        "allowed_values_channel": ("quarantined", 1),
        "referential_cust": ("quarantined", 1),
        "not_null_channel": ("quarantined", 1),
        "regex_code": ("quarantined", 1),
        "not_null_amount": ("warn", 1),
        "completeness_amount": ("warn", 1),
        "freshness_ts": ("pass", None),
        "unique_code": ("pass", 0),
        "row_count_change": ("skipped", None),
    }
    assert rules["completeness_amount"].value == pytest.approx(200 / 3)
    # latest valid event 10:45 on Jan 2; the partition ends at Jan 3 00:00 UTC: 13h15m
    assert rules["freshness_ts"].value == pytest.approx(13 * 3600 + 15 * 60)
    assert all(r.gate_status == "passed" for r in rules.values())
    metrics = {
        (r.name, r.column_name): r.value
        for r in _metrics(spark, config).where("table_name = 'validated.tx' AND kind = 'metric'").collect()
    }
    assert metrics[("rows", "")] == 3
    assert metrics[("null_fraction", "amount")] == pytest.approx(1 / 3)
    assert metrics[("mean", "amount")] == pytest.approx(35.0)
    assert metrics[("max", "cust")] == 3
    run_log = spark.read.format("delta").load(config.tables.run_log).where("target = 'tx'").first()
    assert (run_log.rows_read, run_log.rows_quarantined, run_log.status) == (11, 8, "succeeded")


FAIL_RULES = """\
tables:
  validated.tx:
    rules:
      - {name: amount_cap, check: range, column: amount, max: 500, severity: fail}
      - {check: completeness, column: code, min_percent: 100, severity: fail}
      - {check: unique, column: code, severity: fail}
      - {check: allowed_values, column: channel, values: [web, app], severity: warn}
  features.cust_fs:
    rules:
      - {check: range, column: n_1d, max: 1, severity: fail}
"""


def test_fail_rules_leave_every_output_table_at_its_previous_version(spark, project):
    write_pipeline(project)  # day 1 without rules
    write_pipeline(project, FAIL_RULES, name="strict.yaml")
    write_customers(project, ["1,gold", "2,silver"])
    write_tx(
        project, "2024-01-02", ["a1,1,2024-01-02 10:00:00,10.0,web,C001", "a2,2,2024-01-02 11:00:00,20.0,app,C002"]
    )
    config = load(project)
    run_ingest(spark, config, start=D1, end=D1)
    run_features(spark, config, start=D1, end=D1)
    before = versions(spark, config)
    assert None not in before.values()

    # Day 2: a new customer snapshot (would be written first) and events breaking three fail rules.
    write_customers(project, ["1,gold", "2,silver", "3,bronze"])
    write_tx(
        project,
        "2024-01-03",
        [
            "f1,1,2024-01-03 09:00:00,10.0,web,C010",
            "f2,2,2024-01-03 09:30:00,900.0,web,C011",  # amount_cap
            "f3,3,2024-01-03 10:00:00,30.0,store,",  # code null (completeness), channel not allowed (warn only)
            "f4,3,2024-01-03 10:30:00,700.0,app,C010",  # amount_cap; code C010 repeats f1's and day 1's? no: unique
            "f5,1,2024-01-03 11:00:00,5.0,web,C001",  # code C001 is already in the table (day 1): unique
        ],
    )
    strict = load(project, "strict.yaml")
    with pytest.raises(QualityRuleFailed) as info:
        run_ingest(spark, strict, start=D2, end=D2)
    text = str(info.value)
    assert "3 quality rule(s) failed; no output table was changed" in text
    assert (
        "validated.tx: rule 'amount_cap' (range, severity fail): 2 of 5 row(s) fail: 'amount' must be in "
        "[-inf, 500]; example keys: "
    ) in text
    assert '{"id":"f2"}' in text and '{"id":"f4"}' in text
    assert "rule 'completeness_code' (completeness, severity fail): 'code' is 80.000% complete (1 null of 5)" in text
    assert '{"id":"f3"}' in text
    assert (
        "rule 'unique_code' (unique, severity fail): 2 duplicated key(s) of (code) with 2 extra row(s) in this "
        "run's rows and the rest of the table"
    ) in text
    assert '{"code":"C001"}' in text and '{"code":"C010"}' in text
    assert versions(spark, config) == before  # the customers snapshot was not written either

    runs = spark.read.format("delta").load(config.tables.run_log).where(f"start_date = DATE'{D2}'").collect()
    assert sorted((r.target, r.status) for r in runs) == [("customers", "failed"), ("tx", "failed")]
    assert all("amount_cap" in r.error for r in runs)
    failed = _metrics(spark, config).where("kind = 'rule'").collect()
    assert {(r.name, r.status, r.gate_status) for r in failed} == {
        ("amount_cap", "fail", "failed"),
        ("completeness_code", "fail", "failed"),
        ("unique_code", "fail", "failed"),
        ("allowed_values_channel", "warn", "failed"),
    }

    # Feature tables: cust_fs breaks its rule (customer 1's two events of day 2 each see day 1's a1 at
    # 10:00 within their 1-day window: n_1d = 2 and 3), channel_fs has no rule;
    # both stay at their versions because the check runs before any MERGE.
    write_tx(
        project, "2024-01-03", ["g1,1,2024-01-03 09:00:00,10.0,web,C020", "g2,1,2024-01-03 09:30:00,20.0,web,C021"]
    )
    run_ingest(spark, config, start=D2, end=D2)
    before = versions(spark, config)
    with pytest.raises(QualityRuleFailed) as info:
        run_features(spark, strict, start=D2, end=D2)
    assert "features.cust_fs: rule 'range_n_1d' (range, severity fail): 2 of 2 row(s) fail" in str(info.value)
    assert '{"cust":1,"ts":"2024-01-03T09:30:00.000Z"}' in str(info.value)
    assert versions(spark, config) == before
