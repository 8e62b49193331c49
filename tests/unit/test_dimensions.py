"""Dimension history (type 2) and the as-of join, against hand-written expected versions."""

from __future__ import annotations

import datetime as dt

import pytest

from featuremill.transforms.dimensions import as_of_join, with_snapshot_history

D = dt.date(2026, 9, 1)
SNAP = "customer bigint, segment string, tier string, _ingest_date date, _source_file string"


def _day(n: int) -> dt.date:
    return D + dt.timedelta(days=n - 1)


def _ts(n: int, hour: int = 0) -> dt.datetime:
    return dt.datetime.combine(_day(n), dt.time(hour))


def _snapshots(spark, snaps: dict[int, list[tuple]]):
    rows = [(c, s, t, _day(day), f"s{day}.csv") for day, people in snaps.items() for (c, s, t) in people]
    return spark.createDataFrame(rows, SNAP)


def _history(spark, history, snaps):
    return with_snapshot_history(
        history, _snapshots(spark, snaps), key=["customer"], attributes=["segment", "tier"]
    ).cache()


def _versions(df) -> set[tuple]:
    return {(r["customer"], r["segment"], r["tier"], r["valid_from"], r["valid_to"]) for r in df.collect()}


@pytest.mark.slow  # several Delta MERGEs of the history
def test_history_in_order_changes_deletions_and_null_attributes(spark):
    history = _history(
        spark,
        None,
        {
            1: [(1, "gold", None), (2, "silver", "a")],
            5: [(1, "gold", None), (2, "silver", "a"), (3, "bronze", "b")],  # no change for 1, 2
            15: [(1, "platinum", None), (3, "bronze", "b")],  # 1 changes, 2 is deleted
        },
    )
    assert _versions(history) == {
        (1, "gold", None, _ts(1), _ts(15)),  # a null attribute equal to null: no new version on day 5
        (1, "platinum", None, _ts(15), None),
        (2, "silver", "a", _ts(1), _ts(15)),
        (3, "bronze", "b", _ts(5), None),
    }
    # the snapshot that first showed the version
    assert {(r["customer"], r["_source_file"]) for r in history.collect() if r["valid_to"] is None} == {
        (1, "s15.csv"),
        (3, "s5.csv"),
    }


@pytest.mark.slow  # several Delta MERGEs of the history
def test_history_adding_the_same_snapshot_again_changes_nothing(spark):
    first = _history(spark, None, {1: [(1, "gold", "x")], 15: [(1, "platinum", "x")]})
    again = _history(spark, first, {15: [(1, "platinum", "x")]})
    assert (
        _versions(again)
        == _versions(first)
        == {
            (1, "gold", "x", _ts(1), _ts(15)),
            (1, "platinum", "x", _ts(15), None),
        }
    )
    later = _history(spark, again, {20: [(1, "platinum", "x")]})  # confirms the current version
    assert _versions(later) == _versions(first)


@pytest.mark.slow  # several Delta MERGEs of the history
def test_history_snapshot_ingested_out_of_order_is_inserted_in_place(spark):
    history = _history(spark, None, {1: [(1, "gold", "x"), (2, "silver", "y")], 20: [(1, "platinum", "x")]})
    # A backfill lands day 10's snapshot after day 20's: 1 was silver and 4 existed on day 10.
    inserted = _history(spark, history, {10: [(1, "silver", "x"), (2, "silver", "y"), (4, "new", "z")]})
    assert _versions(inserted) == {
        (1, "gold", "x", _ts(1), _ts(10)),
        (1, "silver", "x", _ts(10), _ts(20)),
        (1, "platinum", "x", _ts(20), None),
        (2, "silver", "y", _ts(1), _ts(20)),  # unchanged on day 10, still deleted on day 20
        (4, "new", "z", _ts(10), _ts(20)),  # absent from day 20's snapshot
    }


def test_as_of_join_picks_the_version_valid_at_the_time(spark):
    history = _history(spark, None, {5: [(1, "gold", "x")], 15: [(1, "platinum", "x")]})
    events = spark.createDataFrame(
        [
            ("before-first", 1, _ts(4, 23)),
            ("first-instant", 1, _ts(5)),
            ("old", 1, _ts(14, 23)),
            ("change-instant", 1, _ts(15)),
            ("new", 1, _ts(30)),
            ("unknown-key", 9, _ts(20)),
        ],
        "id string, customer bigint, ts timestamp",
    )
    joined = as_of_join(events, history, on=["customer"], columns=["segment"], time_column="ts")
    assert joined.columns == ["id", "customer", "ts", "segment"]
    assert {r["id"]: r["segment"] for r in joined.collect()} == {
        "before-first": None,  # no attribute from the future
        "first-instant": "gold",
        "old": "gold",
        "change-instant": "platinum",  # valid_from inclusive, valid_to exclusive
        "new": "platinum",
        "unknown-key": None,
    }
    latest = as_of_join(events, history, on=["customer"], columns=["segment"], time_column=None)
    assert {r["id"]: r["segment"] for r in latest.collect()} == {
        "before-first": "platinum",
        "first-instant": "platinum",
        "old": "platinum",
        "change-instant": "platinum",
        "new": "platinum",
        "unknown-key": None,
    }
