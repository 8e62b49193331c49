"""Scenario 5: duplicate keys within one batch, before the feature MERGE.

Two kinds of duplicates reach a run: the same event key more than once (re-sent rows, two files
of one landing date), and distinct events of one entity at the same instant (the feature table's
MERGE key is entity + event time). The first are quarantined by the declared rule (first copy by
landing date, file, raw line) and counted; the second are folded into one feature row. Either way
the MERGE source has one row per key, so the MERGE never meets Delta's multiple-match error, on
the first run or on a re-run that matches existing rows.
"""

from __future__ import annotations

import math

import pytest

from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.storage import io
from tests.faults.helpers import D1, load, rows, shop_project
from tests.integration.shop import write_landing

PART0 = [
    "c1,1,10,2024-03-01 10:00:00,10.00,web",
    "c2,1,11,2024-03-01 10:00:00,2.00,app",  # customer 1 again at the same instant as c1
    "c1,1,10,2024-03-01 10:00:00,99.00,web",  # key c1 again, other amount: '...,99.00' sorts after '...,10.00'
    "c3,2,10,2024-03-01 12:00:00,5.00,web",
]
PART1 = [
    "c3,2,10,2024-03-01 12:00:00,6.00,web",  # key c3 again in a later file of the same landing date
    "c4,2,11,2024-03-01 12:00:00,1.00,app",  # customer 2 again at the same instant as c3
]


@pytest.fixture()
def dup_shop(tmp_path):
    root = shop_project(tmp_path / "shop", days=((D1, PART0),))
    write_landing(root, D1.isoformat(), PART1, name="part-1.csv")
    return root


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_duplicate_keys_in_batch_deduplicated_counted_and_merge_reruns(spark, dup_shop):
    config = load(dup_shop)
    tx = {r.source: r for r in run_ingest(spark, config, start=D1, end=D1)}["tx"]
    assert (tx.rows_read, tx.rows_valid, tx.rows_duplicate, tx.rows_quarantined) == (6, 4, 2, 2)
    tables = config.tables
    # The declared rule keeps the first copy: earliest landing date, then file, then raw line.
    assert rows(spark, tables.validated("tx"), "event_id", "amount", "_source_file") == [
        ("c1", 10.0, f"file:{dup_shop}/data/tx/event_date=2024-03-01/part-0.csv"),
        ("c2", 2.0, f"file:{dup_shop}/data/tx/event_date=2024-03-01/part-0.csv"),
        ("c3", 5.0, f"file:{dup_shop}/data/tx/event_date=2024-03-01/part-0.csv"),
        ("c4", 1.0, f"file:{dup_shop}/data/tx/event_date=2024-03-01/part-1.csv"),
    ]
    assert rows(spark, tables.quarantine, "rule", "raw_record", where="source = 'tx'") == [
        (
            "duplicate",
            '{"event_id":"c1","customer_id":"1","product_id":"10","event_ts":"2024-03-01 10:00:00",'
            '"amount":"99.00","channel":"web"}',
        ),
        (
            "duplicate",
            '{"event_id":"c3","customer_id":"2","product_id":"10","event_ts":"2024-03-01 12:00:00",'
            '"amount":"6.00","channel":"web"}',
        ),
    ]
    logged = spark.read.format("delta").load(tables.run_log).where("target = 'tx'").first()
    assert (logged["rows_read"], logged["rows_duplicate"], logged["rows_quarantined"]) == (6, 2, 2)

    out = tables.features("cust")
    first = run_features(spark, config, start=D1, end=D1)[0]
    # Two events per (customer, instant) fold into one row each: 2 MERGE keys from 4 events.
    assert (first.events_read, first.rows_out, first.rows_inserted) == (4, 2, 2)
    expected = [
        # customer, n_1d, sum, mean, std, toys, prev_amount, since_prev, share, segment
        (1, 2, 12.0, 6.0, math.sqrt(32), 1, 10.0, None, 2 / 12, "gold"),
        (2, 2, 6.0, 3.0, math.sqrt(8), 1, 5.0, None, 2 / 6, "silver"),
    ]
    cols = (
        "customer_id",
        "n_1d",
        "amount_sum_2d",
        "amount_mean_2d",
        "amount_std_2d",
        "toys_n_2d",
        "prev_amount",
        "since_prev",
        "share_1d_2d",
        "segment",
    )
    got = rows(spark, out, *cols)
    assert [r[:2] for r in got] == [e[:2] for e in expected]
    for g, e in zip(got, expected):
        assert g[2:4] == pytest.approx(e[2:4]) and g[4] == pytest.approx(e[4])
        assert (g[5], g[6], g[7], g[9]) == (e[5], e[6], e[7], e[9]) and g[8] == pytest.approx(e[8])
    assert io.delta_version(spark, out) == 0

    # A plain re-run is a no-op (same run key, same inputs: exactly-once).
    assert run_features(spark, config, start=D1, end=D1)[0].status == "already_committed"
    assert io.delta_version(spark, out) == 0
    # A corrective re-run MERGEs again and matches every target row: with duplicate source keys
    # this is where Delta would fail.
    again = run_features(spark, config, start=D1, end=D1, corrective=True)[0]
    assert (again.rows_out, again.rows_inserted, again.rows_updated, again.rows_deleted) == (2, 0, 0, 0)
    assert rows(spark, out, *cols) == got
    assert io.delta_version(spark, out) == 1


def test_merge_with_duplicate_source_keys_fails_atomically_in_delta(spark, tmp_path):
    """What the deduplication protects against: Delta's own behaviour, table left unchanged."""
    import datetime as dt

    path = str(tmp_path / "t")
    day = dt.date(2024, 3, 1)
    spark.createDataFrame([(1, day, 1.0)], "k bigint, d date, v double").write.format("delta").save(path)
    source = spark.createDataFrame([(1, day, 2.0), (1, day, 3.0), (2, day, 4.0)], "k bigint, d date, v double")
    with pytest.raises(Exception) as info:
        io.merge_range(
            source, path, root=str(tmp_path), keys=["k"], value_columns=["v"], partition_column="d", start=day, end=day
        )
    assert "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE" in str(info.value)
    assert io.delta_version(spark, path) == 0
    assert rows(spark, path, "k", "v") == [(1, 1.0)]
