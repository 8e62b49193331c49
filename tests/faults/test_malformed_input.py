"""Scenarios 7 and 8: a malformed-input matrix, with ANSI mode on and off.

Every data line of every landing file is either a validated row or a quarantine row with a rule
and a reason; ``rows read = valid + quarantined`` and the number of rows read equals the lines in
the files (counted here without Spark). A landing date without rows (empty files, zero-byte
partitions, empty directories) fails the run by default and, with ``allow_empty: true`` on the
source, reads as no rows. The expected verdict of each line is written by hand
below; the same verdicts must come out with ``spark.sql.ansi.enabled`` true and false.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap

import pytest

from featuremill.config import load_pipeline
from featuremill.core.errors import InputDataError
from featuremill.pipelines.ingest import run_ingest
from tests.faults.helpers import D1, D2, D3, versions

# Runs the pipeline's jobs: whole suite only, not the fast lane (-m "not slow").
pytestmark = pytest.mark.slow

PIPELINE = """\
pipeline: mal
owner: tests@example.com
sources:
  tx:
    kind: events
    format: csv
    path: tx
    partition_column: event_date
    event_time: event_ts
    key: event_id
    columns:
      event_id: string
      customer_id: {type: bigint, nullable: false}
      product_id: int
      event_ts: {type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}
      amount: {type: double, nullable: false}
      channel: string
  js:
    kind: events
    format: json
    path: js
    partition_column: event_date
    event_time: event_ts
    key: event_id
    columns:
      event_id: string
      customer_id: {type: bigint, nullable: false}
      event_ts: timestamp
      amount: double
      note: string
feature_sets:
  - name: f
    description: counts
    owner: tests@example.com
    version: 1
    source: tx
    entity: customer_id
    features:
      - {name: n_1d, function: count, window: 1d, description: events in a day}
"""

LONG = "x" * 100_000
CSV_HEADER = b"event_id,customer_id,product_id,event_ts,amount,channel\n"
#: (line bytes, expected rule or None for valid). Blank lines are not rows (Spark skips them).
CSV_LINES = [
    (b"k01,1,10,2024-03-01 10:00:00,10.00,web", None),
    (b"k02,1,10", "malformed"),  # truncated line
    (b"k03,1,10,2024-03-01 10:00:00,1.00,web,EXTRA", "malformed"),  # an extra column
    (b"k04;1;10;2024-03-01 10:00:00;1.00;web", "malformed"),  # wrong delimiter
    (b"k05,1,10,2024-03-01 10:00:00,1.00,w\xffb", "encoding"),  # invalid UTF-8
    (b"k06,1,10,2024-03-01T10:00:00Z,1.00,web", "type"),  # other timestamp format
    (b"k07,1,10,2024-03-01 10:00:00+02:00,1.00,web", "type"),  # a time zone the format lacks
    (b"k08,99999999999999999999,10,2024-03-01 10:00:00,1.00,web", "type"),  # overflows bigint
    (b"k09,1,3000000000,2024-03-01 10:00:00,1.00,web", "type"),  # overflows int
    (b"k10,1,10,2024-03-01 10:00:00,1e400,web", "non_finite"),  # overflows double: +inf
    (b"k11,1,10,2024-03-01 10:00:00,NaN,web", "non_finite"),
    (b"k12,1,10,2024-03-01 10:00:00,-Infinity,web", "non_finite"),
    (b"", None),  # blank line: not a row
    (b"k13,1,10,2024-03-01 11:00:00,2.00," + LONG.encode(), None),  # a very long value is kept
    (b"k14,1,10," + b"9" * 5000 + b",1.00,web", "type"),  # a very long bad value
]
JSON_LINES = [
    (b'{"event_id":"j01","customer_id":1,"event_ts":"2024-03-01T10:00:00+02:00","amount":1.5,"note":"ok"}', None),
    (b'{"event_id":"j02","customer_id":"abc","event_ts":"2024-03-01 10:00:00","amount":1.5}', "type"),
    (b'{"event_id":"j03","customer_id":2,"event_ts":"2024-03-01 10:00:00","amount":true}', "type"),
    (b'{"event_id":"j04","customer_id":2,"event_ts":"2024-03-01 10:00:00"', "malformed"),  # broken bracket
    (b'{"event_id":"j05","customer_id":2,"event_ts":"03/01/2024 10:00","amount":1}', "type"),
    (b'{"event_id":"j06","customer_id":2,"event_ts":"2024-03-01 10:00:00","amount":{"v":1}}', "type"),
    (b'{"event_id":"j07","customer_id":3,"event_ts":"2024-03-01 12:00:00","amount":"NaN"}', "non_finite"),
    (b'{"event_id":"j08","customer_id":9223372036854775808,"event_ts":"2024-03-01 12:00:00","amount":1}', "type"),
    (b'{"event_id":"j09","customer_id":4,"event_ts":"2024-03-01 12:00:00","amount":2.5,"extra":"x"}', None),
    (b'{"event_id":"j10","customer_id":5,"event_ts":"2024-03-01 12:00:00","amount":1e999}', "non_finite"),
    (b'{"event_id":"j11","customer_id":5,"event_ts":"2024-03-01 12:00:00","amount":1.0,"note":"caf\xc3', "malformed"),
]


def _write(root, source: str, date: str, name: str, data: bytes):
    folder = root / "data" / source / f"event_date={date}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


@pytest.fixture(scope="module")
def malformed_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("malformed")
    (root / "conf" / "pipelines").mkdir(parents=True)
    (root / "conf" / "env").mkdir(parents=True)
    (root / "conf" / "env" / "local.yaml").write_text("warehouse: warehouse\ndata_root: data\n")
    (root / "conf" / "pipelines" / "mal.yaml").write_text(textwrap.dedent(PIPELINE))
    _write(root, "tx", "2024-03-01", "part-0.csv", CSV_HEADER + b"\n".join(line for line, _ in CSV_LINES) + b"\n")
    _write(root, "tx", "2024-03-01", "empty.csv", b"")  # an empty file beside good ones
    _write(root, "tx", "2024-03-02", "part-0.csv", b"")  # a zero-byte partition
    (root / "data" / "tx" / "event_date=2024-03-03").mkdir()  # a directory with no files
    _write(root, "js", "2024-03-01", "part-0.json", b"\n".join(line for line, _ in JSON_LINES) + b"\n")
    _write(root, "js", "2024-03-02", "part-0.json", b"")
    return root


def _key(raw: str) -> str:
    found = re.search(r"[kj]\d\d", raw)
    return found.group(0) if found else raw


def _expected(lines):
    rows = [(_key(line.decode("utf-8", errors="replace")), rule) for line, rule in lines if line]
    return sorted(r for r in rows if r[1] is None), sorted(r for r in rows if r[1] is not None)


@pytest.fixture(params=["true", "false"], ids=["ansi_on", "ansi_off"])
def ansi(request, spark):
    previous = spark.conf.get("spark.sql.ansi.enabled")
    spark.conf.set("spark.sql.ansi.enabled", request.param)
    yield request.param
    spark.conf.set("spark.sql.ansi.enabled", previous)


def _copy(malformed_project, tmp_path, *, allow_empty: bool = False):
    """A private copy; ``allow_empty`` declares both sources ``allow_empty: true`` (empty landing
    dates accepted instead of failing the run)."""
    import shutil

    root = tmp_path / "mal"
    shutil.copytree(malformed_project, root)
    if allow_empty:
        path = root / "conf" / "pipelines" / "mal.yaml"
        path.write_text(path.read_text().replace("    path: tx\n", "    path: tx\n    allow_empty: true\n"))
        path.write_text(path.read_text().replace("    path: js\n", "    path: js\n    allow_empty: true\n"))
    return root, load_pipeline(root / "conf" / "pipelines" / "mal.yaml", env="local")


def test_malformed_matrix_every_row_valid_or_quarantined_same_under_ansi(spark, malformed_project, tmp_path, ansi):
    # D2 and D3 hold no rows (zero-byte files, an empty folder): accepted here by allow_empty
    root, config = _copy(malformed_project, tmp_path, allow_empty=True)
    results = {r.source: r for r in run_ingest(spark, config, start=D1, end=D3)}
    tables = config.tables
    for source, lines in (("tx", CSV_LINES), ("js", JSON_LINES)):
        result = results[source]
        data_lines = sum(1 for line, _ in lines if line)
        assert result.rows_read == data_lines, source
        assert result.rows_read == result.rows_valid + result.rows_quarantined
        valid, rejected = _expected(lines)
        got_valid = sorted(
            (r[0], None) for r in spark.read.format("delta").load(tables.validated(source)).select("event_id").collect()
        )
        assert got_valid == valid, source
        quarantine = spark.read.format("delta").load(tables.quarantine).where(f"source = '{source}'").collect()
        assert sorted((_key(r["raw_record"]), r["rule"]) for r in quarantine) == rejected, source
        assert all(r["reason"] and r["source_file"] for r in quarantine)
        by_rule = {}
        for _, rule in rejected:
            by_rule[rule] = by_rule.get(rule, 0) + 1
        assert {k: v for k, v in result.by_rule.items() if k != "valid"} == by_rule, source

    reasons = {_key(r["raw_record"]): r["reason"] for r in spark.read.format("delta").load(tables.quarantine).collect()}
    assert reasons["k05"] == "field 'channel': invalid UTF-8 byte sequence (decoded as U+FFFD)"
    assert reasons["k08"] == "field 'customer_id': cannot parse '99999999999999999999' as bigint"
    assert reasons["k09"] == "field 'product_id': cannot parse '3000000000' as int"
    assert reasons["k10"] == "field 'amount': non-finite value '1e400'"
    assert reasons["k14"] == f"field 'event_ts': cannot parse '{'9' * 120}...' as timestamp"
    assert reasons["j02"] == "field 'customer_id': cannot parse 'abc' as bigint"
    assert reasons["j03"] == "field 'amount': cannot parse 'true' as double"
    assert reasons["j06"] == "field 'amount': cannot parse '{\"v\":1}' as double"

    tx = {r["event_id"]: r for r in spark.read.format("delta").load(tables.validated("tx")).collect()}
    assert len(tx["k13"]["channel"]) == 100_000 and tx["k13"]["channel"] == LONG
    assert (tx["k01"]["customer_id"], tx["k01"]["amount"]) == (1, 10.0)
    js = {r["event_id"]: r for r in spark.read.format("delta").load(tables.validated("js")).collect()}
    # An offset in the value is honoured: 10:00 at +02:00 is 08:00 UTC (the session time zone).
    assert js["j01"]["event_ts"] == dt.datetime(2024, 3, 1, 8, 0, 0)
    assert (js["j09"]["customer_id"], js["j09"]["amount"]) == (4, 2.5)
    assert versions(spark, tables.validated("tx"), tables.validated("js")) == [0, 0]
    run_log = spark.read.format("delta").load(tables.run_log).collect()
    assert sorted((r["target"], r["status"], r["rows_read"]) for r in run_log) == [
        ("js", "succeeded", len([x for x in JSON_LINES if x[0]])),
        ("tx", "succeeded", len([x for x in CSV_LINES if x[0]])),
    ]


def test_empty_landing_dates_fail_by_default_and_are_recorded(spark, malformed_project, tmp_path):
    """A landing date whose files hold no rows (a truncated upload) fails the run, in the run log,
    and changes no table; ``allow_empty: true`` on the source accepts it (next test)."""
    root, config = _copy(malformed_project, tmp_path)
    run_ingest(spark, config, start=D1, end=D1)
    tables = (config.tables.validated("tx"), config.tables.validated("js"), config.tables.quarantine)
    before = versions(spark, *tables)
    # D2: zero-byte files only; D3: an empty directory (tx) and no directory at all (js).
    for day in (D2, D3):
        with pytest.raises(InputDataError) as err:
            run_ingest(spark, config, start=day, end=day)
        message = str(err.value)
        assert "source 'tx'" in message and f"no rows for landing date(s) {day}" in message
        assert "sources.tx.allow_empty: true" in message
    # a range with rows on D1 but none on D2 fails too: the check is per landing date
    with pytest.raises(InputDataError, match="no rows for landing date"):
        run_ingest(spark, config, start=D1, end=D2, sources=["tx"])
    assert versions(spark, *tables) == before
    failed = spark.read.format("delta").load(config.tables.run_log).where("status = 'failed'").collect()
    assert sorted((r["target"], str(r["start_date"])) for r in failed) == [
        ("tx", str(D1)),
        ("tx", str(D2)),
        ("tx", str(D3)),
    ]
    assert all("no rows for landing date" in r["error"] for r in failed)


def test_empty_files_partitions_and_directories_read_as_no_rows(spark, malformed_project, tmp_path):
    root, config = _copy(malformed_project, tmp_path, allow_empty=True)
    run_ingest(spark, config, start=D1, end=D1)
    before = versions(spark, config.tables.validated("tx"), config.tables.validated("js"), config.tables.quarantine)
    # D2: zero-byte files only; D3: an empty directory (tx) and no directory at all (js).
    for day in (D2, D3):
        results = {r.source: r for r in run_ingest(spark, config, start=day, end=day)}
        assert {s: (r.status, r.rows_read) for s, r in results.items()} == {
            "tx": ("skipped_empty", 0),
            "js": ("skipped_empty", 0),
        }
    assert (
        versions(spark, config.tables.validated("tx"), config.tables.validated("js"), config.tables.quarantine)
        == before
    )


def test_wrong_delimiter_file_fails_before_any_write_naming_the_file(spark, malformed_project, tmp_path):
    root, config = _copy(malformed_project, tmp_path)
    run_ingest(spark, config, start=D1, end=D1)
    before = versions(spark, config.tables.validated("tx"), config.tables.validated("js"), config.tables.quarantine)
    bad = _write(
        root,
        "tx",
        "2024-03-03",
        "semi.csv",
        b"event_id;customer_id;product_id;event_ts;amount;channel\nz1;1;10;2024-03-03 10:00:00;1.0;web\n",
    )
    _write(
        root,
        "js",
        "2024-03-03",
        "part-0.json",
        b'{"event_id":"z2","customer_id":1,"event_ts":"2024-03-03 10:00:00","amount":1}\n',
    )
    # A whole file in another dialect is not a bad row but a bad file: the header names it.
    with pytest.raises(InputDataError) as info:
        run_ingest(spark, config, start=D3, end=D3)
    assert str(bad) in str(info.value) and "source 'tx'" in str(info.value)
    assert (
        versions(spark, config.tables.validated("tx"), config.tables.validated("js"), config.tables.quarantine)
        == before
    )
    assert json.loads('{"ok": true}')  # (the js file of the same run was not written either)


def test_a_row_lost_between_count_and_commits_fails_the_run(spark, malformed_project, tmp_path, monkeypatch):
    """rows read = valid + quarantined is checked against what the two Delta commits recorded
    (their numOutputRows), not by subtracting one count from the other: a row dropped on its way
    to the quarantine table is caught."""
    from pyspark.sql import functions as F

    import featuremill.pipelines.ingest as ingest_job

    root, config = _copy(malformed_project, tmp_path)
    original = ingest_job.quarantine_rows

    def lossy(flagged, **kwargs):  # loses the one invalid-UTF-8 row of tx
        return original(flagged, **kwargs).where(F.col("rule") != F.lit("encoding"))

    monkeypatch.setattr(ingest_job, "quarantine_rows", lossy)
    with pytest.raises(InputDataError) as err:
        run_ingest(spark, config, start=D1, end=D1, sources=["tx"])
    read = len([line for line, _ in CSV_LINES if line])
    valid = len([line for line, rule in CSV_LINES if line and rule is None])
    assert f"read {read} rows" in str(err.value)
    assert f"recorded {valid}" in str(err.value) and f"{read - valid - 1}: 1 row(s) are in neither table" in str(
        err.value
    )
    [failed] = spark.read.format("delta").load(config.tables.run_log).where("status = 'failed'").collect()
    assert failed["target"] == "tx" and "in neither table" in failed["error"]
