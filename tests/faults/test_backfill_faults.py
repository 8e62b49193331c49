"""Scenario 9: an empty input chunk in a backfill never deletes existing partitions."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("featuremill.storage.exactly_once", reason="needs the exactly-once machinery (issue 3)")

from featuremill.core.errors import InputDataError
from featuremill.pipelines.backfill import run_backfill
from tests.faults.helpers import D2, D3, VALID_D1, VALID_D2, all_rows, load, rows, versions

# Runs the pipeline's jobs: whole suite only, not the fast lane (-m "not slow").
pytestmark = pytest.mark.slow


def test_backfill_with_empty_chunks_keeps_existing_partitions(spark, ingested_shop):
    config = load(ingested_shop)
    validated, out = config.tables.validated("tx"), config.tables.features("cust")
    first = run_backfill(spark, config, start=D2, end=D3, job="features", chunk_days=1)
    assert [(o.start, o.outcome) for o in first.outcomes] == [(D2, "ran"), (D3, "skipped_empty")]
    features_before = all_rows(spark, out)
    assert len(features_before) == 6
    before = versions(spark, validated, config.tables.quarantine, out)

    # D2's landing file disappears (moved, expired) and D3 never landed: both chunks are empty.
    # An empty landing date fails the chunk by default (a truncated or missing upload), and
    # with the source's allow_empty it is skipped; either way nothing is deleted.
    (ingested_shop / "data" / "tx" / "event_date=2024-03-02" / "part-0.csv").unlink()
    with pytest.raises(InputDataError, match="no rows for landing date"):
        run_backfill(spark, config, start=D2, end=D3, job="ingest", sources=["tx"], chunk_days=1)
    assert versions(spark, validated, config.tables.quarantine, out) == before
    tolerant = dataclasses.replace(
        config, sources=tuple(dataclasses.replace(s, allow_empty=s.kind == "events") for s in config.sources)
    )
    result = run_backfill(spark, tolerant, start=D2, end=D3, job="ingest", sources=["tx"], chunk_days=1, restart=True)
    assert [(o.start, o.outcome) for o in result.outcomes] == [(D2, "skipped_empty"), (D3, "skipped_empty")]
    assert rows(spark, validated, "event_id", "customer_id", "amount", "event_date", "_ingest_date") == sorted(
        VALID_D1 + VALID_D2
    )

    again = run_backfill(spark, config, start=D2, end=D3, job="features", chunk_days=1)
    assert [(o.start, o.outcome) for o in again.outcomes] == [(D2, "already_committed"), (D3, "skipped_empty")]
    assert all_rows(spark, out) == features_before
    assert versions(spark, validated, config.tables.quarantine, out) == before
