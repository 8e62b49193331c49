"""Dimension history (type 2) and the as-of join, against hand-written expected versions."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from featuremill.core.errors import JoinColumnClashError
from featuremill.transforms.dimensions import as_of_join, recorded_times, with_snapshot_history

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
    times = history.agg(recorded_times()).first()[0] if history is not None else []
    return with_snapshot_history(
        history,
        _snapshots(spark, snaps),
        key=["customer"],
        attributes=["segment", "tier"],
        snapshot_dates=[_day(day) for day in snaps],
        history_times=times,
    ).localCheckpoint()  # as read back from the table: no lineage of the earlier histories


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


def _reference_history(versions: set[tuple], snaps: dict[int, list[tuple]]) -> set[tuple]:
    """The history after ``snaps``, by the definition in plain Python: the state of every key at each
    date the old history records or a snapshot gives (a snapshot's date: the snapshot; any other
    date: the version the old history has valid then), and a version wherever a key's state changes.
    ``versions``: (customer, segment, tier, _ingest_date, _source_file, valid_from, valid_to)."""

    def recorded_state(t: dt.datetime) -> dict:
        return {
            c: (s, tier, day, f)
            for c, s, tier, day, f, start, end in versions
            if start <= t and (end is None or t < end)
        }

    new = {_ts(day): {c: (s, t, _day(day), f"s{day}.csv") for c, s, t in people} for day, people in snaps.items()}
    times = sorted({v[5] for v in versions} | {v[6] for v in versions if v[6] is not None} | set(new))
    states = [(t, new[t] if t in new else recorded_state(t)) for t in times]
    out = set()
    for c in {c for _, state in states for c in state}:
        changes = []  # (time, value or None for absent, bookkeeping)
        for t, state in states:
            value = state[c][:2] if c in state else None
            if not changes or changes[-1][1] != value:
                changes.append((t, value, state[c][2:] if c in state else None))
        for i, (t, value, book) in enumerate(changes):
            if value is not None:
                end = changes[i + 1][0] if i + 1 < len(changes) else None
                out.add((c, *value, *book, t, end))
    return out


def _full_versions(df) -> set[tuple]:
    cols = ["customer", "segment", "tier", "_ingest_date", "_source_file", "valid_from", "valid_to"]
    return {tuple(r[c] for c in cols) for r in df.collect()}


@pytest.mark.slow  # six history builds
def test_with_snapshot_history_matches_the_definition_on_a_random_snapshot_sequence(spark):
    # Six batches of one or two dated snapshots, in any date order: repeated dates (a corrected
    # snapshot), dates before the history's latest (a backfill), keys appearing, changing,
    # disappearing and coming back, null attributes.
    rng = random.Random(14)
    history, expected, seen, backfills = None, set(), set(), 0
    for _ in range(6):
        days = rng.sample(range(1, 13), rng.choice((1, 2)))
        snaps = {
            day: [
                (c, rng.choice(("gold", "silver", None)), rng.choice(("x", "y")))
                for c in range(1, 6)
                if rng.random() < 0.7
            ]
            for day in days
        }
        backfills += bool(seen) and min(days) < max(seen)
        seen |= set(days)
        history = _history(spark, history, snaps)
        expected = _reference_history(expected, snaps)
        assert _full_versions(history) == expected, snaps
    assert backfills >= 3  # the sequence inserts snapshots before later history (restated after them)


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


PRODUCTS = "product_id bigint, year int, valid_from timestamp, valid_to timestamp"


def _products(spark):
    """Hand-written product history: product 10's release year corrected from 2019 to 2020 on day 3."""
    return spark.createDataFrame(
        [(10, 2019, _ts(1), _ts(3)), (10, 2020, _ts(3), None), (11, 2021, _ts(1), None)], PRODUCTS
    )


def test_as_of_join_renamed_column_sits_beside_the_frames_own(spark):
    events = spark.createDataFrame(
        [("e1", 10, _ts(2), 1999), ("e2", 10, _ts(3, 1), 2005), ("e3", 12, _ts(3, 1), 2010)],
        "id string, product_id bigint, ts timestamp, year int",
    )
    joined = as_of_join(
        events, _products(spark), on=["product_id"], columns=["year"], time_column="ts", rename={"year": "release_year"}
    )
    assert joined.columns == ["id", "product_id", "ts", "year", "release_year"]
    assert {r["id"]: (r["year"], r["release_year"]) for r in joined.collect()} == {
        "e1": (1999, 2019),
        "e2": (2005, 2020),
        "e3": (2010, None),  # product 12 has no version
    }


def test_as_of_join_clash_without_rename_says_how_to_rename(spark):
    events = spark.createDataFrame([("e1", 10, _ts(2), 1999)], "id string, product_id bigint, ts timestamp, year int")
    with pytest.raises(JoinColumnClashError, match=r"columns: \{year: new_name\}"):
        as_of_join(events, _products(spark), on=["product_id"], columns=["year"], time_column="ts")
    with pytest.raises(JoinColumnClashError, match="cannot join dimension column 'year' as 'id'"):
        as_of_join(
            events, _products(spark), on=["product_id"], columns=["year"], time_column="ts", rename={"year": "id"}
        )


RENAME_PIPELINE = """\
pipeline: shop
timezone: UTC
sources:
  tx:
    kind: events
    format: csv
    path: tx
    partition_column: landed
    event_time: ts
    key: id
    columns:
      id: string
      customer_id: bigint
      product_id: bigint
      ts: timestamp
      year: int
  products:
    kind: dimension
    format: csv
    path: products
    key: product_id
    columns: {product_id: bigint, year: int}
  customers:
    kind: dimension
    format: csv
    path: customers
    key: customer_id
    columns: {customer_id: bigint, year: int}
feature_sets:
  - name: buyers
    description: d
    owner: o
    version: 1
    source: tx
    entity: customer_id
    joins:
      - {dimension: products, on: product_id, columns: {year: release_year}, level: event}
      - {dimension: customers, on: customer_id, columns: {year: signup_year}, level: entity}
    features:
      - {name: newest_release_7d, function: max, column: release_year, window: 7d, description: d}
      - {name: n_2020_7d, function: count, window: 7d, where: {column: release_year, equals: 2020}, description: d}
      - {name: max_year_7d, function: max, column: year, window: 7d, description: d}
"""


def test_build_feature_frame_features_over_a_renamed_joined_column(spark, project):
    from featuremill.config import load_pipeline
    from featuremill.pipelines.build_features import build_feature_frame
    from tests.conftest import write_pipeline

    config = load_pipeline(write_pipeline(project, RENAME_PIPELINE))
    events = spark.createDataFrame(
        [
            ("e1", 1, 10, _ts(1, 10), 1999),
            ("e2", 1, 11, _ts(2, 10), 1999),
            ("e3", 1, 10, _ts(3, 10), 1999),  # after product 10's correction: 2020
            ("e4", 2, 10, _ts(0, 12), 2005),  # before product 10's first version, and customer 2's
            ("e5", 2, 12, _ts(2, 12), 2005),  # product 12 is not in the dimension
        ],
        "id string, customer_id bigint, product_id bigint, ts timestamp, year int",
    )
    customers = spark.createDataFrame(
        [(1, 2018, _ts(1), None), (2, 2015, _ts(1), None)],
        "customer_id bigint, year int, valid_from timestamp, valid_to timestamp",
    )
    frame = build_feature_frame(
        events,
        config=config,
        feature_set=config.feature_set("buyers"),
        dimensions={"products": _products(spark), "customers": customers},
        start=_day(0),
        end=_day(3),
    )
    assert "release_year" not in frame.columns  # an event-level join feeds the windows only
    got = {
        (r["customer_id"], r["ts"]): (r["newest_release_7d"], r["n_2020_7d"], r["max_year_7d"], r["signup_year"])
        for r in frame.collect()
    }
    assert got == {
        (1, _ts(1, 10)): (2019, 0, 1999, 2018),
        (1, _ts(2, 10)): (2021, 0, 1999, 2018),
        (1, _ts(3, 10)): (2021, 1, 1999, 2018),
        (2, _ts(0, 12)): (None, 0, 2005, None),  # no attribute from the future, for either join
        (2, _ts(2, 12)): (None, 0, 2005, 2015),
    }


# A dimension history written by hand (as ingest stores it): customer 1 is basic, then gold from
# 09-10 00:00; customer 2 is silver from 09-05 00:00; customer 3 has no row at all.
HISTORY_SCHEMA = "customer bigint, segment string, valid_from timestamp, valid_to timestamp"
LABEL_HISTORY = [
    (1, "basic", dt.datetime(2026, 9, 1), dt.datetime(2026, 9, 10)),
    (1, "gold", dt.datetime(2026, 9, 10), None),
    (2, "silver", dt.datetime(2026, 9, 5), None),
]
LABEL_SPINE_SCHEMA = "label_id int, customer int, label_ts timestamp, label int"
LABEL_SPINE = [
    (1, 1, dt.datetime(2026, 9, 5, 12), 0),
    (2, 1, dt.datetime(2026, 9, 9, 23, 59, 59), 0),
    (3, 1, dt.datetime(2026, 9, 10), 1),  # exactly at the change
    (4, 1, dt.datetime(2026, 9, 20), 1),
    (4, 1, dt.datetime(2026, 9, 20), 1),  # a repeated spine row stays repeated
    (5, 3, dt.datetime(2026, 9, 20), 0),  # no dimension row for customer 3
    (6, 1, None, 0),  # null label time
    (7, 1, dt.datetime(2026, 8, 31, 23), 0),  # before customer 1's first version
    (8, 2, dt.datetime(2026, 9, 5), 1),  # exactly at customer 2's first version
]


@pytest.mark.parametrize(
    ("strict", "segments"),
    [
        # valid_from <= t < valid_to: a version starting exactly at the label time is used
        (False, {1: "basic", 2: "basic", 3: "gold", 4: "gold", 5: None, 6: None, 7: None, 8: "silver"}),
        # valid_from < t <= valid_to: the version valid just before the label time
        (True, {1: "basic", 2: "basic", 3: "basic", 4: "gold", 5: None, 6: None, 7: None, 8: None}),
    ],
)
def test_as_of_join_label_times_around_a_change(spark, strict, segments):
    from chispa import assert_df_equality

    history = spark.createDataFrame(LABEL_HISTORY, HISTORY_SCHEMA)
    spine = spark.createDataFrame(LABEL_SPINE, LABEL_SPINE_SCHEMA)
    actual = as_of_join(spine, history, on=["customer"], columns=["segment"], time_column="label_ts", strict=strict)
    expected = spark.createDataFrame(
        [row + (segments[row[0]],) for row in LABEL_SPINE], LABEL_SPINE_SCHEMA + ", segment string"
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
