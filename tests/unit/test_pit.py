"""Point-in-time join against independent references: hand-computed rows, pandas ``merge_asof``,
and a brute-force Python scan for known-at (which ``merge_asof`` cannot express).

Every test runs both strategies: they must agree with the reference, hence with each other.
"""

from __future__ import annotations

import datetime as dt
import random

import pandas as pd
import pytest
from chispa import assert_df_equality

from featuremill.core.errors import TrainingSetError
from featuremill.transforms.pit import FeatureSource, point_in_time_join
from tests.conftest import physical_plan

T0 = dt.datetime(2024, 3, 1)
US = dt.timedelta(microseconds=1)
STRATEGIES = ("window", "broadcast")


def _t(hours: float = 0, *, days: int = 0, micros: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(days=days, hours=hours, microseconds=micros)


FEATURE_SCHEMA = "k1 string, k2 string, ts timestamp, x double, n bigint, known timestamp"
FEATURES = [
    # key (a, b): a genuine null at 02:00 must not fall back to 7.0 from 01:00
    ("a", "b", _t(1), 7.0, 1, _t(1)),
    ("a", "b", _t(2), None, 2, _t(2)),
    # key (a1, b) vs (a, 1b): "a1"+"b" == "a"+"1b" as concatenated strings
    ("a1", "b", _t(1), 100.0, 3, _t(1)),
    # key (t, t): a tie at 05:00; the larger struct (same time, then x) wins: 9.0
    ("t", "t", _t(5), 9.0, 5, _t(5)),
    ("t", "t", _t(5), 3.0, 4, _t(5)),
    ("t", "t", _t(4), 1.0, 6, _t(4)),
    # key (ttl, x): one row at 00:00 for the TTL boundary
    ("ttl", "x", _t(0), 42.0, 7, _t(0)),
    # rows with a null key or a null time are never visible
    (None, "b", _t(0), 555.0, 8, _t(0)),
    ("a", None, _t(0), 556.0, 9, _t(0)),
    ("nul", "t", None, 557.0, 10, _t(0)),
]
SPINE_SCHEMA = "id int, k1 string, k2 string, label_ts timestamp, label string"
SPINE = [
    (1, "a", "b", _t(1, micros=-1), "before any row"),
    (2, "a", "b", _t(1), "exactly at 01:00"),
    (3, "a", "b", _t(1.5), "between"),
    (4, "a", "b", _t(3), "after the null row"),
    (4, "a", "b", _t(3), "after the null row"),  # a repeated spine row stays repeated, once each
    (5, "a", "1b", _t(3), "collides with (a1, b) if concatenated"),
    (6, "a1", "b", _t(3), "the real (a1, b)"),
    (7, "t", "t", _t(5), "tie at 05:00"),
    (8, "ttl", "x", _t(24), "age exactly 1 day"),
    (9, "ttl", "x", _t(24, micros=-1), "age 1 day minus 1 us"),
    (10, "zzz", "b", _t(3), "entity without history"),
    (11, "a", "b", None, "null label time"),
    (12, None, "b", _t(3), "null key"),
    (13, "a", None, _t(3), "other null key"),
]


def _source(spark, **kwargs):
    frame = spark.createDataFrame(FEATURES, FEATURE_SCHEMA)
    args = dict(name="f", frame=frame, keys=("k1", "k2"), event_time="ts", columns=("x", "n"), event_time_as="f_ts")
    args.update(kwargs)
    return FeatureSource(**args)


def _expected(spark, values: dict):
    """Spine rows with (x, n, f_ts) from ``values`` by id (missing ids: no match)."""
    rows = [s + values.get(s[0], (None, None, None)) for s in SPINE]
    return spark.createDataFrame(rows, SPINE_SCHEMA + ", x double, n bigint, f_ts timestamp")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_point_in_time_join_hand_computed_non_strict_with_ttl(spark, strategy):
    spine = spark.createDataFrame(SPINE, SPINE_SCHEMA)
    actual = point_in_time_join(spine, [_source(spark, ttl_seconds=86_400)], spine_time="label_ts", strategy=strategy)
    expected = _expected(
        spark,
        {
            2: (7.0, 1, _t(1)),  # event time == label time is visible (non-strict)
            3: (7.0, 1, _t(1)),
            4: (None, 2, _t(2)),  # the genuine null of the latest row, not 7.0
            6: (100.0, 3, _t(1)),  # only the real (a1, b); id 5 gets nothing
            7: (9.0, 5, _t(5)),  # tie: same event time, larger values win
            9: (42.0, 7, _t(0)),  # age 1 day - 1 us < TTL; id 8 (age == TTL) is too old
        },
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert actual.columns == [*spine.columns, "x", "n", "f_ts"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_point_in_time_join_hand_computed_strict_without_ttl(spark, strategy):
    spine = spark.createDataFrame(SPINE, SPINE_SCHEMA)
    actual = point_in_time_join(spine, [_source(spark)], spine_time="label_ts", strict=True, strategy=strategy)
    expected = _expected(
        spark,
        {
            3: (7.0, 1, _t(1)),  # id 2 at exactly 01:00 sees nothing when strict
            4: (None, 2, _t(2)),
            6: (100.0, 3, _t(1)),
            7: (1.0, 6, _t(4)),  # strict: the 05:00 tie is not before 05:00
            8: (42.0, 7, _t(0)),  # no TTL: any age
            9: (42.0, 7, _t(0)),
        },
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_point_in_time_join_tie_breaker_column_decides_before_values(spark, strategy):
    """A declared tie-breaker (e.g. a created-at column) wins over the values' order."""
    frame = spark.createDataFrame(
        [("k", _t(1), 1.0, 2), ("k", _t(1), 9.0, 1)], "k string, ts timestamp, x double, seq int"
    )
    spine = spark.createDataFrame([("k", _t(2))], "k string, s timestamp")
    source = FeatureSource("f", frame, keys=("k",), event_time="ts", columns=("x",), tie_breakers=("seq",))
    rows = point_in_time_join(spine, [source], spine_time="s", strategy=strategy).collect()
    assert [r["x"] for r in rows] == [1.0]  # seq 2 > seq 1, although 9.0 > 1.0


KNOWN_FEATURES = [
    # (entity, event time, known at, value)
    ("e", _t(10), _t(10, days=2), 1.0),  # late: known two days after it happened
    ("e", _t(20), _t(24), 2.0),  # newer event, known earlier than the late one
    ("e", _t(30), _t(30), 3.0),  # first version of the 30:00 row ...
    ("e", _t(30), _t(60), 4.0),  # ... revised (same event time) and known at 60:00
    ("g", _t(1), _t(1), None),  # a null value known immediately
]
KNOWN_SPINE = [
    (1, "e", _t(12)),  # 10:00 happened but is not known until day 2: nothing
    (2, "e", _t(24)),  # 20:00 known exactly now (<=): 2.0
    (3, "e", _t(31)),  # 30:00 v1 known: 3.0
    (4, "e", _t(59)),  # still v1
    (5, "e", _t(60)),  # revision known: 4.0 (the latest known revision of the latest event)
    (6, "e", _t(10, days=2, micros=-1)),  # just before the late row is known: 30:00 v1 -> 3.0
    (7, "g", _t(2)),  # the null value is the match: null, with its event time
]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_point_in_time_join_known_at_late_data_and_revisions(spark, strategy):
    frame = spark.createDataFrame(KNOWN_FEATURES, "e string, ts timestamp, known timestamp, x double")
    spine = spark.createDataFrame(KNOWN_SPINE, "id int, e string, s timestamp")
    source = FeatureSource(
        "f",
        frame,
        keys=("e",),
        event_time="ts",
        columns=("x",),
        known_at="known",
        event_time_as="f_ts",
        known_at_as="f_known",
    )
    actual = point_in_time_join(spine, [source], spine_time="s", strategy=strategy)
    expected = spark.createDataFrame(
        [
            (1, "e", _t(12), None, None, None),
            (2, "e", _t(24), 2.0, _t(20), _t(24)),
            (3, "e", _t(31), 3.0, _t(30), _t(30)),
            (4, "e", _t(59), 3.0, _t(30), _t(30)),
            (5, "e", _t(60), 4.0, _t(30), _t(60)),
            (6, "e", _t(10, days=2, micros=-1), 3.0, _t(30), _t(30)),  # the 60:00 revision is not known yet
            (7, "g", _t(2), None, _t(1), _t(1)),
        ],
        "id int, e string, s timestamp, x double, f_ts timestamp, f_known timestamp",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    # without known-at the late row leaks into id 1: the reason the option exists
    plain = FeatureSource("f", frame, keys=("e",), event_time="ts", columns=("x",))
    leaked = {r["id"]: r["x"] for r in point_in_time_join(spine, [plain], spine_time="s", strategy=strategy).collect()}
    assert leaked[1] == 1.0


# ---------------------------------------------------------------------------------------------
# random data against pandas merge_asof / a brute-force scan
# ---------------------------------------------------------------------------------------------


def _random_data(seed: int, *, n_features: int = 300, n_spine: int = 200):
    """Two-column keys whose concatenations collide, coarse times (many exact ties between spine
    and feature times), null values, null keys and null label times, repeated spine rows."""
    rng = random.Random(seed)
    keys = [("a1", "b"), ("a", "1b"), ("x", "y"), ("x", None), ("q", "q")]
    features, used = [], set()
    for i in range(n_features):
        k1, k2 = rng.choice(keys)
        if rng.random() < 0.03:
            k1 = None
        ts = T0 + dt.timedelta(hours=rng.randrange(0, 96))
        if (k1, k2, ts) in used:  # unique (key, time): merge_asof's tie order would be arbitrary
            continue
        used.add((k1, k2, ts))
        known = ts + dt.timedelta(hours=rng.choice([0, 0, 1, 5, 30]))
        x = None if rng.random() < 0.15 else round(rng.uniform(-10, 10), 3)
        features.append((k1, k2, ts, x, i, known))
    spine = []
    for j in range(n_spine):
        k1, k2 = rng.choice(keys + [("nohistory", "z")])
        s = None if rng.random() < 0.05 else T0 + dt.timedelta(hours=rng.randrange(-5, 110))
        spine.append((j, k1, k2, s, f"label{j % 3}"))
        if rng.random() < 0.05:
            spine.append((j, k1, k2, s, f"label{j % 3}"))  # an exact repeat
    return features, spine


def _merge_asof_reference(features, spine, *, strict: bool, ttl_seconds: int | None):
    """pandas merge_asof on the rows it can handle; null label times and null keys get nulls."""
    f = pd.DataFrame(features, columns=["k1", "k2", "ts", "x", "n", "known"]).dropna(subset=["k1", "k2", "ts"])
    f = f.sort_values("ts").rename(columns={"ts": "f_ts"})
    f["ts"] = f["f_ts"]
    s = pd.DataFrame(spine, columns=["id", "k1", "k2", "label_ts", "label"])
    s["pos"] = range(len(s))
    ok = s.dropna(subset=["k1", "k2", "label_ts"]).sort_values("label_ts")
    merged = pd.merge_asof(
        ok,
        f[["k1", "k2", "ts", "f_ts", "x", "n"]],
        left_on="label_ts",
        right_on="ts",
        by=["k1", "k2"],
        allow_exact_matches=not strict,
        tolerance=pd.Timedelta(seconds=ttl_seconds) - pd.Timedelta(microseconds=1) if ttl_seconds else None,
    )
    by_pos = {row.pos: row for row in merged.itertuples()}
    out = []
    for pos, (i, k1, k2, s_ts, label) in enumerate(spine):
        m = by_pos.get(pos)
        if m is None or pd.isna(m.f_ts):
            out.append((i, k1, k2, s_ts, label, None, None, None))
        else:
            out.append((i, k1, k2, s_ts, label, None if pd.isna(m.x) else float(m.x), int(m.n), m.f_ts.to_pydatetime()))
    return out


# Each strategy meets strict and non-strict, with and without TTL, across the four cases.
@pytest.mark.parametrize(
    "seed,strict,ttl,strategy",
    [
        (1, False, None, "window"),
        (2, True, 3600, "window"),
        (3, False, 6 * 3600, "broadcast"),
        (4, True, None, "broadcast"),
    ],
)
def test_point_in_time_join_random_matches_pandas_merge_asof(spark, seed, strict, ttl, strategy):
    features, spine_rows = _random_data(seed)
    frame = spark.createDataFrame(features, FEATURE_SCHEMA)
    spine = spark.createDataFrame(spine_rows, SPINE_SCHEMA)
    source = FeatureSource(
        "f", frame, keys=("k1", "k2"), event_time="ts", columns=("x", "n"), ttl_seconds=ttl, event_time_as="f_ts"
    )
    actual = point_in_time_join(spine, [source], spine_time="label_ts", strict=strict, strategy=strategy)
    expected = spark.createDataFrame(
        _merge_asof_reference(features, spine_rows, strict=strict, ttl_seconds=ttl),
        SPINE_SCHEMA + ", x double, n bigint, f_ts timestamp",
    )
    assert actual.count() == len(spine_rows)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def _brute_force_known_at(features, spine, *, strict: bool):
    """For each spine row scan every feature row: visible if keys equal (no nulls), event time
    <= (or <) label time and known <= label time; the latest event time wins, then the latest
    known time (unique here by construction)."""
    out = []
    for i, k1, k2, s, label in spine:
        best = None
        if s is not None and k1 is not None and k2 is not None:
            for fk1, fk2, ts, x, n, known in features:
                if (fk1, fk2) != (k1, k2) or ts is None or (ts >= s if strict else ts > s) or known > s:
                    continue
                if best is None or (ts, known) > (best[2], best[5]):
                    best = (fk1, fk2, ts, x, n, known)
        out.append((i, k1, k2, s, label) + ((best[3], best[4], best[2], best[5]) if best else (None,) * 4))
    return out


@pytest.mark.parametrize("seed,strict,strategy", [(5, False, "window"), (6, True, "broadcast")])
def test_point_in_time_join_known_at_random_matches_brute_force(spark, seed, strict, strategy):
    features, spine_rows = _random_data(seed)
    frame = spark.createDataFrame(features, FEATURE_SCHEMA)
    spine = spark.createDataFrame(spine_rows, SPINE_SCHEMA)
    source = FeatureSource(
        "f",
        frame,
        keys=("k1", "k2"),
        event_time="ts",
        columns=("x", "n"),
        known_at="known",
        event_time_as="f_ts",
        known_at_as="f_known",
    )
    actual = point_in_time_join(spine, [source], spine_time="label_ts", strict=strict, strategy=strategy)
    expected = spark.createDataFrame(
        _brute_force_known_at(features, spine_rows, strict=strict),
        SPINE_SCHEMA + ", x double, n bigint, f_ts timestamp, f_known timestamp",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_point_in_time_join_no_leakage_property(spark, strategy):
    """On random data with ties, late rows and revisions: every used feature row happened and was
    known at or before its label time, every spine row comes out exactly once, and rows without a
    match really had no visible feature row."""
    from pyspark.sql import functions as F

    rng = random.Random(11)
    features = []
    for _ in range(1500):
        ts = T0 + dt.timedelta(minutes=rng.randrange(0, 5 * 24 * 60, 30))
        features.append(
            (
                rng.randrange(40),
                ts,
                ts + dt.timedelta(minutes=rng.choice([0, 0, 30, 600, 3000])),
                None if rng.random() < 0.1 else rng.random(),
            )
        )
    spine_rows = [
        (j, rng.randrange(45), T0 + dt.timedelta(minutes=rng.randrange(-60, 6 * 24 * 60, 30))) for j in range(1000)
    ]
    frame = spark.createDataFrame(features, "e bigint, ts timestamp, known timestamp, x double")
    spine = spark.createDataFrame(spine_rows, "id bigint, e int, label_ts timestamp")  # int vs bigint key
    source = FeatureSource(
        "f",
        frame,
        keys=("e",),
        event_time="ts",
        columns=("x",),
        known_at="known",
        event_time_as="f_ts",
        known_at_as="f_known",
    )
    out = point_in_time_join(spine, [source], spine_time="label_ts", strategy=strategy)
    leak = (F.col("f_ts") > F.col("label_ts")) | (F.col("f_known") > F.col("label_ts"))
    stats = out.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct("id").alias("ids"),
        F.sum(F.col("f_ts").isNotNull().cast("int")).alias("matched"),
        F.sum(leak.cast("int")).alias("leaks"),
    ).first()
    assert stats["leaks"] == 0
    assert (stats["rows"], stats["ids"]) == (len(spine_rows), len(spine_rows))
    # unmatched spine rows: no visible feature row existed (checked with a plain SQL anti-join)
    out.createOrReplaceTempView("pit_out")
    frame.createOrReplaceTempView("pit_features")
    missed = spark.sql("""
        SELECT count(*) FROM pit_out o JOIN pit_features f
          ON o.e = f.e AND f.ts <= o.label_ts AND f.known <= o.label_ts
        WHERE o.f_ts IS NULL""").first()[0]
    assert missed == 0
    assert 0 < stats["matched"] < len(spine_rows)


def test_point_in_time_join_plan_one_shuffle_per_key_group(spark):
    """Sources keyed by the same spine columns share one Exchange, Sort and Window."""
    spine = spark.createDataFrame(SPINE, SPINE_SCHEMA)
    frame = spark.createDataFrame(FEATURES, FEATURE_SCHEMA)
    same_keys = [
        FeatureSource("f", frame, keys=("k1", "k2"), event_time="ts", columns=("x",)),
        FeatureSource(
            "g", frame.withColumnRenamed("n", "m"), keys=("k1", "k2"), event_time="ts", columns=("m",), known_at="known"
        ),
    ]
    other_keys = [FeatureSource("h", frame.withColumnRenamed("x", "y"), keys=("k1",), event_time="ts", columns=("y",))]
    plan = physical_plan(point_in_time_join(spine, same_keys + other_keys, spine_time="label_ts"))
    assert plan.count("Exchange hashpartitioning") == 2
    assert plan.count("Window [") == 2
    assert "SortMergeJoin" not in plan and "BroadcastHashJoin" not in plan


def test_point_in_time_join_two_sources_match_separate_joins(spark):
    """Two sources in one pass give the same columns as two single-source joins."""
    spine = spark.createDataFrame(SPINE, SPINE_SCHEMA)
    frame = spark.createDataFrame(FEATURES, FEATURE_SCHEMA)
    f = FeatureSource("f", frame, keys=("k1", "k2"), event_time="ts", columns=("x",), ttl_seconds=3600)
    g = FeatureSource(
        "g",
        frame.select("k1", "k2", "ts", "known", "n"),
        keys=("k1", "k2"),
        event_time="ts",
        columns=("n",),
        known_at="known",
    )
    both = point_in_time_join(spine, [f, g], spine_time="label_ts")
    one = point_in_time_join(point_in_time_join(spine, [f], spine_time="label_ts"), [g], spine_time="label_ts")
    assert_df_equality(both, one, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda s, f: (s.drop("k2"), f), "spine has no key column 'k2'"),
        (
            lambda s, f: (s.withColumn("k1", s["id"]), f),
            "key 'k1': the spine has int but feature source 'f' has string",
        ),
        (lambda s, f: (s.withColumn("x", s["id"]), f), "output column 'x' already exists"),
        (lambda s, f: (s.withColumn("label_ts", s["label_ts"].cast("date")), f), "is date, not timestamp"),
        (lambda s, f: (s.withColumnRenamed("label", "__fm_pit_x"), f), "reserved prefix"),
        (lambda s, f: (s, f.drop("n")), "feature source 'f' has no column 'n'"),
    ],
)
def test_point_in_time_join_rejects_bad_inputs_with_clear_errors(spark, change, message):
    spine, frame = change(spark.createDataFrame(SPINE, SPINE_SCHEMA), spark.createDataFrame(FEATURES, FEATURE_SCHEMA))
    source = FeatureSource("f", frame, keys=("k1", "k2"), event_time="ts", columns=("x", "n"))
    with pytest.raises(TrainingSetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        point_in_time_join(spine, [source], spine_time="label_ts")
