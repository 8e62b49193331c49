"""Scenario 6: upstream schema drift (a column added, a type changed, a column dropped).

Raw CSV files are checked against the declared columns (header by name); the declared columns are
checked against the live validated table by the schema policy (``quality.tables.<t>.schema``).
Each refusal names the file or the table, the column and the fix, and happens before any table of
the run is written: every table keeps its Delta version. An accepted change (a new column declared
under ``additive: allow``) reaches the table with older rows reading null.
"""

from __future__ import annotations

import pytest

from featuremill.core.errors import InputDataError, SchemaContractError
from featuremill.pipelines.ingest import run_ingest
from tests.faults.helpers import D2, D3, VALID_D1, VALID_D2, load, rows, versions
from tests.integration.shop import HEADER, write_landing

# Runs the pipeline's jobs: whole suite only, not the fast lane (-m "not slow").
pytestmark = pytest.mark.slow


def _all_versions(spark, config):
    t = config.tables
    return versions(
        spark, t.validated("tx"), t.validated("customers"), t.validated("products"), t.quarantine, t.features("cust")
    )


def _declare(root, *, add: str = "", drop: str = "", retype: tuple[str, str] | None = None, quality: str = ""):
    """Edit the shop pipeline's ``tx`` columns the way an upstream change would be followed."""
    path = root / "conf" / "pipelines" / "shop.yaml"
    text = path.read_text()
    if add:
        text = text.replace("      channel: string\n", "      channel: string\n      " + add + "\n", 1)
    if drop:
        text = text.replace(f"      {drop}: string\n", "", 1)
    if retype:
        old, new = retype
        text = text.replace(old, new, 1)
    if quality:
        text += quality
    path.write_text(text)


def test_upstream_adds_a_column_refused_until_declared_then_added(spark, ingested_shop):
    config = load(ingested_shop)
    before = _all_versions(spark, config)
    bad = write_landing(
        ingested_shop, D3.isoformat(), ["d1,1,10,2024-03-03 10:00:00,3.00,web,SPRING"], header=HEADER + ",coupon"
    )
    # Undeclared extra column in the file: the header check names the file; no table changes,
    # including the dimensions that the same run read and checked first.
    with pytest.raises(InputDataError) as info:
        run_ingest(spark, config, start=D3, end=D3)
    message = str(info.value)
    assert "source 'tx'" in message and str(bad) in message
    assert "CSV header has 7 columns, the source declares 6 (columns not declared: coupon)" in message
    assert _all_versions(spark, config) == before

    # Declared, under the default policy (additive: allow): the column is added, old rows null.
    _declare(ingested_shop, add="coupon: string")
    result = {r.source: r for r in run_ingest(spark, load(ingested_shop), start=D3, end=D3, sources=["tx"])}["tx"]
    assert (result.rows_read, result.rows_valid, result.rows_quarantined) == (1, 1, 0)
    got = rows(spark, config.tables.validated("tx"), "event_id", "amount", "coupon")
    assert got == sorted([(r[0], r[2], None) for r in VALID_D1 + VALID_D2] + [("d1", 3.0, "SPRING")])
    assert versions(spark, config.tables.validated("tx")) == [before[0] + 1]


def test_upstream_adds_a_column_refused_by_additive_refuse_policy(spark, ingested_shop):
    config = load(ingested_shop)
    write_landing(
        ingested_shop, D3.isoformat(), ["d1,1,10,2024-03-03 10:00:00,3.00,web,SPRING"], header=HEADER + ",coupon"
    )
    _declare(
        ingested_shop,
        add="coupon: string",
        quality="quality:\n  tables:\n    validated.tx:\n      schema: {additive: refuse}\n",
    )
    before = _all_versions(spark, config)
    with pytest.raises(SchemaContractError) as info:
        run_ingest(spark, load(ingested_shop), start=D3, end=D3)
    message = str(info.value)
    assert message.startswith("table validated.tx (live Delta version 0): schema change refused, nothing was written")
    assert "'coupon'" in message and "additive" in message
    assert _all_versions(spark, config) == before


def test_upstream_changes_a_type_refused_with_the_fix(spark, ingested_shop):
    config = load(ingested_shop)
    before = _all_versions(spark, config)
    # Upstream now sends amounts as text with a currency. Undeclared, they are bad values of a
    # double column: quarantined row by row, never a silent null.
    write_landing(ingested_shop, D3.isoformat(), ["d1,1,10,2024-03-03 10:00:00,3.00 EUR,web"])
    result = {r.source: r for r in run_ingest(spark, config, start=D3, end=D3, sources=["tx"])}["tx"]
    assert (result.rows_read, result.rows_valid, result.by_rule.get("type")) == (1, 0, 1)
    assert rows(spark, config.tables.quarantine, "rule", "reason", where="_ingest_date = DATE'2024-03-03'") == [
        ("type", "field 'amount': cannot parse '3.00 EUR' as double")
    ]
    after_first = _all_versions(spark, config)
    # No valid row: the validated table's rows are untouched (its one new version only records
    # the run key's Delta transaction id); the quarantine table gets the row.
    assert after_first[0] == before[0] + 1 and after_first[3] == before[3] + 1
    assert rows(spark, config.tables.validated("tx"), "event_id", "amount") == sorted(
        (r[0], r[2]) for r in VALID_D1 + VALID_D2
    )

    # Upstream also switched channel to numeric codes; declaring channel as int would change the
    # column's type: the policy refuses it (only declared widenings are allowed).
    _declare(ingested_shop, retype=("      channel: string\n", "      channel: int\n"))
    with pytest.raises(SchemaContractError) as info:
        run_ingest(spark, load(ingested_shop), start=D3, end=D3, sources=["tx"])
    message = str(info.value)
    assert "column 'channel' would change type from string to int: only widening is allowed" in message
    assert "Fix: declare 'channel' as string again" in message
    assert _all_versions(spark, config) == after_first


def test_upstream_drops_a_column_refused_in_file_and_in_declaration(spark, ingested_shop):
    config = load(ingested_shop)
    before = _all_versions(spark, config)
    header = HEADER.replace(",channel", "")
    bad = write_landing(ingested_shop, D3.isoformat(), ["d1,1,10,2024-03-03 10:00:00,3.00"], header=header)
    with pytest.raises(InputDataError) as info:
        run_ingest(spark, config, start=D3, end=D3)
    assert str(bad) in str(info.value) and "source 'tx'" in str(info.value)
    assert "declared columns missing: channel" in str(info.value) and "field: channel" in str(info.value)
    assert _all_versions(spark, config) == before

    # Following the drop in the declaration: dropping a column of the live table is refused.
    _declare(ingested_shop, drop="channel")
    with pytest.raises(SchemaContractError) as info:
        run_ingest(spark, load(ingested_shop), start=D3, end=D3)
    message = str(info.value)
    assert (
        "column 'channel' (string) is in the table but missing from the incoming data: dropping columns is "
        "refused" in message
    )
    assert _all_versions(spark, config) == before
    # The refused runs are in the run log as failed, with the message.
    failed = spark.read.format("delta").load(config.tables.run_log).where("status = 'failed' AND target = 'tx'")
    assert failed.count() == 2
    assert any("dropping columns is refused" in r["error"] for r in failed.collect())
    assert D2  # (the landing dates before D3 stay as ingested)
