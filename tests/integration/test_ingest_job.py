"""The ingest job on hand-written CSV files: accounting, quarantine reasons, duplicates, re-runs, bad files."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io as stdio
import json

import pytest

from featuremill.core.errors import InputDataError
from featuremill.pipelines.ingest import run_ingest
from featuremill.storage import io
from tests.integration.shop import load, make_project, write_dimensions, write_landing

D1, D2, D3 = dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3)

DAY1 = [
    "e1,1,10,2024-03-01 10:00:00,10.00,web",
    'e2,1,11,2024-03-01 11:00:00,"12,50",web',
    "e3,,10,2024-03-01 12:00:00,5.00,app",
    "e4,2,10,not-a-time,5.00,app",
    "e5,2,10,2024-03-01 13:00:00,NaN,web",
    "e6,2,10,2024-03-01 14:00:00,7.00,web",
    "e6,2,10,2024-03-01 14:00:00,7.00,web",
    "e7,2,10",
    "e8,2,11,2024-02-28 09:00:00,3.00,store",
]
DAY2 = [
    "e9,1,10,2024-03-02 09:00:00,4.00,web",
    "e1,1,10,2024-03-01 10:00:00,10.00,web",
]


@pytest.fixture()
def shop(tmp_path):
    make_project(tmp_path)
    write_dimensions(tmp_path)
    write_landing(tmp_path, D1.isoformat(), DAY1)
    write_landing(tmp_path, D2.isoformat(), DAY2)
    return tmp_path


def _rows(spark, path, *cols):
    return sorted(tuple(r) for r in spark.read.format("delta").load(path).select(*cols).collect())


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_run_ingest_accounts_for_every_row_with_a_reason(spark, shop):
    config = load(shop)
    results = {r.source: r for r in run_ingest(spark, config, start=D1, end=D1)}
    tx = results["tx"]
    raw_lines = len(DAY1)  # counted from the input, independently of Spark
    assert tx.rows_read == raw_lines
    assert (tx.rows_valid, tx.rows_quarantined, tx.rows_duplicate) == (3, 6, 1)
    assert tx.rows_read == tx.rows_valid + tx.rows_quarantined

    tables = config.tables
    valid = _rows(spark, tables.validated("tx"), "event_id", "customer_id", "amount", "event_date", "_ingest_date")
    assert valid == [
        ("e1", 1, 10.0, D1, D1),
        ("e6", 2, 7.0, D1, D1),
        ("e8", 2, 3.0, dt.date(2024, 2, 28), D1),  # a late event keeps its own event date
    ]
    quarantine = spark.read.format("delta").load(tables.quarantine).where("source = 'tx'")
    by_event = {
        json.loads(r["raw_record"]).get("event_id") if r["rule"] != "malformed" else r["raw_record"]: (
            r["rule"],
            r["reason"],
            r["source_file"],
        )
        for r in quarantine.collect()
    }
    assert by_event["e2"][:2] == ("type", "field 'amount': cannot parse '12,50' as double")
    assert by_event["e3"][:2] == ("not_null", "field 'customer_id': null in a required column")
    assert by_event["e4"][:2] == ("type", "field 'event_ts': cannot parse 'not-a-time' as timestamp")
    assert by_event["e5"][:2] == ("non_finite", "field 'amount': non-finite value 'NaN'")
    assert by_event["e6"][:2] == (
        "duplicate",
        'duplicate event: key {"event_id":"e6"} appears more than once in this batch (first copy kept)',
    )
    assert by_event["e7,2,10"][0] == "malformed"
    assert by_event["e7,2,10"][1].startswith("malformed record: could not be split into the declared fields")
    assert all(src.endswith("event_date=2024-03-01/part-0.csv") for _, _, src in by_event.values())
    assert quarantine.count() == tx.rows_quarantined


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_run_ingest_dimension_rows_quarantined(spark, shop):
    write_dimensions(shop, customers=["1,gold", "x,silver", ",bronze", "1,gold"])
    config = load(shop)
    result = {r.source: r for r in run_ingest(spark, config, start=D1, end=D1, sources=["customers"])}["customers"]
    assert (result.rows_read, result.rows_valid, result.rows_quarantined) == (4, 1, 3)
    rules = _rows(spark, config.tables.quarantine, "source", "rule")
    assert rules == [("customers", "duplicate"), ("customers", "not_null"), ("customers", "type")]


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_run_ingest_duplicate_across_landing_dates(spark, shop):
    config = load(shop)
    run_ingest(spark, config, start=D1, end=D1, sources=["tx"])
    result = run_ingest(spark, config, start=D2, end=D2, sources=["tx"])[0]
    assert (result.rows_read, result.rows_valid, result.rows_duplicate) == (2, 1, 1)
    q = (
        spark.read.format("delta")
        .load(config.tables.quarantine)
        .where("rule = 'duplicate' AND _ingest_date = DATE'2024-03-02'")
    )
    assert [r["reason"] for r in q.collect()] == [
        'duplicate event: key {"event_id":"e1"} was already ingested from landing date 2024-03-01'
    ]


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_run_ingest_rerun_changes_nothing(spark, shop):
    config = load(shop)
    run_ingest(spark, config, start=D1, end=D2)
    tables = config.tables
    before_valid = _rows(spark, tables.validated("tx"), "*")
    before_q = _rows(spark, tables.quarantine, "*")
    again = {r.source: r for r in run_ingest(spark, config, start=D1, end=D2)}
    assert _rows(spark, tables.validated("tx"), "*") == before_valid
    assert _rows(spark, tables.quarantine, "*") == before_q
    assert again["tx"].rows_read == len(DAY1) + len(DAY2) == again["tx"].rows_valid + again["tx"].rows_quarantined
    # Re-running one day of a range replaces only that day's rows.
    run_ingest(spark, config, start=D2, end=D2, sources=["tx"])
    assert _rows(spark, tables.validated("tx"), "*") == before_valid


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_run_ingest_bad_header_fails_before_any_write(spark, shop):
    config = load(shop)
    run_ingest(spark, config, start=D1, end=D1)
    # the job's runs (one per source) reach the run log in one commit
    run_log = config.tables.run_log
    assert io.delta_version(spark, run_log) == 0
    logged = spark.read.format("delta").load(run_log).collect()
    assert sorted((r["target"], r["status"]) for r in logged) == sorted((s.name, "succeeded") for s in config.sources)
    assert len({r["run_id"] for r in logged}) == len(config.sources) > 1
    versions = {p: io.delta_version(spark, p) for p in (config.tables.validated("tx"), config.tables.quarantine)}
    bad = write_landing(
        shop,
        D3.isoformat(),
        ["e20,1,10,2024-03-03 10:00:00,1.00,web"],
        header="event_id,customer,product_id,event_ts,amount,channel",
    )
    with pytest.raises(InputDataError) as info:
        run_ingest(spark, config, start=D3, end=D3, sources=["tx"])
    message = str(info.value)
    assert str(bad) in message
    assert "field: customer_id" in message and "value: 'customer'" in message
    assert {p: io.delta_version(spark, p) for p in versions} == versions
    runs = spark.read.format("delta").load(config.tables.run_log).where("status = 'failed'").collect()
    assert len(runs) == 1 and runs[0]["target"] == "tx" and "customer" in runs[0]["error"]
    assert io.delta_version(spark, run_log) == 1  # the failed run: one more commit


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_run_ingest_empty_range_keeps_existing_rows(spark, shop):
    config = load(shop)
    run_ingest(spark, config, start=D1, end=D1, sources=["tx"])
    version = io.delta_version(spark, config.tables.validated("tx"))
    # Re-running D1 over the same raw input finds its commit (exactly-once) and writes nothing.
    rerun = run_ingest(spark, config, start=D1, end=D1, sources=["tx"])[0]
    assert rerun.status == "already_committed"
    # Nothing landed on D3: the run reads no rows and must not clear anything. By default an
    # events source without rows for a landing date fails the run (a missing upload?)...
    with pytest.raises(InputDataError, match="no rows for landing date"):
        run_ingest(spark, config, start=D3, end=D3, sources=["tx"])
    assert io.delta_version(spark, config.tables.validated("tx")) == version
    # ...and with allow_empty on the source it is skipped.
    tolerant = dataclasses.replace(
        config, sources=tuple(dataclasses.replace(s, allow_empty=s.kind == "events") for s in config.sources)
    )
    result = run_ingest(spark, tolerant, start=D3, end=D3, sources=["tx"])[0]
    assert result.status == "skipped_empty"
    assert io.delta_version(spark, config.tables.validated("tx")) == version


def test_read_raw_source_prunes_landing_partitions(spark, shop):
    config = load(shop)
    df = io.read_raw_source(spark, config.source("tx"), start=D2, end=D2)
    buffer = stdio.StringIO()
    with contextlib.redirect_stdout(buffer):
        df.explain()
    plan = buffer.getvalue()
    assert "PartitionFilters: [isnotnull(event_date" in plan
    assert "(event_date#" in plan and ">= 2024-03-02" in plan and "<= 2024-03-02" in plan
    assert sorted(r["event_id"] for r in df.collect()) == ["e1", "e9"]
