"""Window features against an independent reference: DuckDB SQL over the same tiny table.

The reference spells out the documented semantics directly (a correlated subquery per feature
over events with time in (t - w, t]) instead of window frames, so a wrong frame, a wrong
boundary or a lost tie in the Spark code shows up as a mismatch.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
from chispa import assert_approx_df_equality

from featuremill.config import FeatureSpec, WhereSpec, parse_duration
from featuremill.transforms.features import with_window_features

T0 = dt.datetime(2024, 1, 1, 0, 0, 0)
SCHEMA = "entity string, event_id string, ts timestamp, amount double, channel string"


def _t(minutes: float = 0, *, days: int = 0, micros: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(days=days, minutes=minutes, microseconds=micros)


EVENTS = [
    # entity a: a tie at 00:30, a null amount, an event exactly 1h before another, a 2-day gap
    ("a", "a1", _t(0), 10.0, "web"),
    ("a", "a3", _t(30), 5.0, "web"),
    ("a", "a2", _t(30), 20.0, "app"),
    ("a", "a4", _t(60), None, "web"),
    ("a", "a5", _t(120), 7.0, "store"),
    ("a", "a6", _t(120, micros=1), 1.0, "web"),
    ("a", "a7", _t(120, days=2), 4.0, "web"),
    # entity b: a single event
    ("b", "b1", _t(15), 3.0, "app"),
    # entity c: events 1 day apart exactly, and 1 microsecond inside the day
    ("c", "c1", _t(0), 2.0, "web"),
    ("c", "c2", _t(0, days=1), 4.0, "web"),
    ("c", "c3", _t(0, days=1, micros=-1), 8.0, "app"),
]


def _f(name, function, *, column=None, window=None, offset=1, where=None, numerator=None, denominator=None):
    return FeatureSpec(
        name=name,
        function=function,
        description="",
        owner="",
        version=1,
        column=column,
        window=window,
        window_seconds=parse_duration(window) if window else None,
        offset=offset,
        where=WhereSpec(*where) if where else None,
        numerator=numerator,
        denominator=denominator,
    )


FEATURES = [
    _f("n_1h", "count", window="1h"),
    _f("n_1d", "count", window="1d"),
    _f("n_amount_1d", "count", column="amount", window="1d"),
    _f("sum_1h", "sum", column="amount", window="1h"),
    _f("sum_1d", "sum", column="amount", window="1d"),
    _f("mean_1d", "mean", column="amount", window="1d"),
    _f("std_1d", "stddev", column="amount", window="1d"),
    _f("min_1h", "min", column="amount", window="1h"),
    _f("max_1d", "max", column="amount", window="1d"),
    _f("web_n_1d", "count", window="1d", where=("channel", "web")),
    _f("web_sum_1d", "sum", column="amount", window="1d", where=("channel", "web")),
    _f("lag1_30d", "lag", column="amount", offset=1, window="30d"),
    _f("lag2_30d", "lag", column="amount", offset=2, window="30d"),
    _f("lag1_1h", "lag", column="amount", offset=1, window="1h"),
    _f("since_prev_1d", "time_since_previous", window="1d"),
    _f("ratio_1h_1d", "ratio", numerator="sum_1h", denominator="sum_1d"),
]

REFERENCE_SQL = """
WITH instants AS (SELECT DISTINCT entity, ts FROM ev),
last_event AS (  -- the latest event of each instant, ties ordered by event_id
  SELECT entity, ts, event_id, amount,
         row_number() OVER (PARTITION BY entity ORDER BY ts, event_id) AS seq
  FROM ev
),
instant_seq AS (SELECT entity, ts, max(seq) AS seq FROM last_event GROUP BY entity, ts)
SELECT i.entity, i.ts,
  (SELECT count(*) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 HOUR AND e.ts <= i.ts) AS n_1h,
  (SELECT count(*) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts) AS n_1d,
  (SELECT count(amount) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts) AS n_amount_1d,
  (SELECT sum(amount) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 HOUR AND e.ts <= i.ts) AS sum_1h,
  (SELECT sum(amount) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts) AS sum_1d,
  (SELECT avg(amount) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts) AS mean_1d,
  (SELECT stddev_samp(amount) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts) AS std_1d,
  (SELECT min(amount) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 HOUR AND e.ts <= i.ts) AS min_1h,
  (SELECT max(amount) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts) AS max_1d,
  (SELECT count(*) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts AND e.channel = 'web') AS web_n_1d,
  (SELECT sum(amount) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts AND e.channel = 'web') AS web_sum_1d,
  (SELECT l.amount FROM last_event l WHERE l.entity = i.entity AND l.seq = s.seq - 1 AND l.ts > i.ts - INTERVAL 30 DAY) AS lag1_30d,
  (SELECT l.amount FROM last_event l WHERE l.entity = i.entity AND l.seq = s.seq - 2 AND l.ts > i.ts - INTERVAL 30 DAY) AS lag2_30d,
  (SELECT l.amount FROM last_event l WHERE l.entity = i.entity AND l.seq = s.seq - 1 AND l.ts > i.ts - INTERVAL 1 HOUR) AS lag1_1h,
  (SELECT epoch_us(i.ts) - epoch_us(max(e.ts)) FROM ev e WHERE e.entity = i.entity AND e.ts < i.ts AND e.ts > i.ts - INTERVAL 1 DAY) / 1e6 AS since_prev_1d
FROM instants i JOIN instant_seq s USING (entity, ts)
ORDER BY 1, 2
"""


def _duckdb_events(events, *, extra: str = ""):
    """A DuckDB connection (UTC) with ``events`` in table ``ev``; ``extra`` declares more columns."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"CREATE TABLE ev (entity VARCHAR, event_id VARCHAR, ts TIMESTAMP, amount DOUBLE, channel VARCHAR{extra})"
    )
    con.executemany(f"INSERT INTO ev VALUES ({', '.join('?' * len(events[0]))})", events)
    return con


def _reference_rows(events):
    con = _duckdb_events(events)
    rows = con.execute(REFERENCE_SQL).fetchall()
    out = []
    for row in rows:
        row = list(row)
        sum_1h, sum_1d = row[5], row[6]
        ratio = None if sum_1h is None or not sum_1d else sum_1h / sum_1d
        out.append(tuple(row) + (ratio,))
    return out


def _expected_df(spark, rows):
    schema = (
        "entity string, ts timestamp, n_1h bigint, n_1d bigint, n_amount_1d bigint, sum_1h double, "
        "sum_1d double, mean_1d double, std_1d double, min_1h double, max_1d double, web_n_1d bigint, "
        "web_sum_1d double, lag1_30d double, lag2_30d double, lag1_1h double, since_prev_1d double, "
        "ratio_1h_1d double"
    )
    return spark.createDataFrame(rows, schema)


def test_with_window_features_matches_sql_reference(spark):
    events = spark.createDataFrame(EVENTS, SCHEMA)
    actual = with_window_features(events, entity=["entity"], event_time="ts", order_key=["event_id"], features=FEATURES)
    expected = _expected_df(spark, _reference_rows(EVENTS))
    assert_approx_df_equality(
        actual.orderBy("entity", "ts"), expected.orderBy("entity", "ts"), 1e-9, ignore_nullable=True
    )


def test_with_window_features_hand_computed_rows(spark):
    """A few values worked out by hand, so the reference itself is checked too."""
    events = spark.createDataFrame(EVENTS, SCHEMA)
    rows = {
        (r["entity"], r["ts"]): r
        for r in with_window_features(
            events, entity=["entity"], event_time="ts", order_key=["event_id"], features=FEATURES
        ).collect()
    }
    tie = rows[("a", _t(30))]  # both events at 00:30 count, folded into one row
    assert (tie["n_1h"], tie["sum_1h"], tie["min_1h"]) == (3, 35.0, 5.0)
    assert tie["lag1_30d"] == 20.0 and tie["lag2_30d"] == 10.0  # a3 is the later of the tie (by event_id)
    assert tie["since_prev_1d"] == 1800.0
    boundary = rows[("a", _t(120))]  # a4 at 01:00 is exactly 1h back: excluded (window is (t-1h, t])
    assert (boundary["n_1h"], boundary["sum_1h"]) == (1, 7.0)
    null_value = rows[("a", _t(60))]  # a4 has no amount: counted as an event, ignored by sum/count(amount)
    assert (null_value["n_1d"], null_value["n_amount_1d"], null_value["sum_1d"]) == (4, 3, 35.0)
    assert null_value["lag1_30d"] == 5.0
    gap = rows[("a", _t(120, days=2))]  # nothing else within 1d; lag still finds a6 within 30d
    assert (gap["n_1d"], gap["since_prev_1d"], gap["lag1_30d"], gap["lag1_1h"]) == (1, None, 1.0, None)
    single = rows[("b", _t(15))]
    assert (single["n_1d"], single["std_1d"], single["lag1_30d"], single["since_prev_1d"]) == (1, None, None, None)
    assert rows[("c", _t(0, days=1))]["n_1d"] == 2  # c1 exactly 1 day back is out, c3 one microsecond later is in
    assert len(rows) == 10  # 11 events, one tie folded


def test_with_window_features_late_event_changes_only_later_rows(spark):
    """An event arriving late is placed by its event time: rows before it keep their values."""
    base = [e for e in EVENTS if e[0] == "c"]
    late = ("c", "c0", _t(-30), 100.0, "web")
    without = {
        r["ts"]: r
        for r in with_window_features(
            spark.createDataFrame(base, SCHEMA),
            entity=["entity"],
            event_time="ts",
            order_key=["event_id"],
            features=FEATURES,
        ).collect()
    }
    with_late = {
        r["ts"]: r
        for r in with_window_features(
            spark.createDataFrame(base + [late], SCHEMA),
            entity=["entity"],
            event_time="ts",
            order_key=["event_id"],
            features=FEATURES,
        ).collect()
    }
    assert with_late[_t(0)]["sum_1h"] == 102.0 and without[_t(0)]["sum_1h"] == 2.0
    assert with_late[_t(0, days=1)]["sum_1d"] == without[_t(0, days=1)]["sum_1d"] == 12.0
    expected = _reference_rows(base + [late])
    assert [(r[0], r[1], r[5]) for r in expected] == [("c", k, with_late[k]["sum_1h"]) for k in sorted(with_late)]


@pytest.mark.parametrize("seed", [1, 2])
def test_with_window_features_random_data_matches_reference(spark, seed):
    """Random events with many ties and nulls over 3 days."""
    import random

    rng = random.Random(seed)
    events = []
    for i in range(400):
        entity = rng.choice("pqrs")
        ts = T0 + dt.timedelta(minutes=rng.randrange(0, 3 * 24 * 60, 7))  # coarse grid: ties are common
        amount = None if rng.random() < 0.1 else round(rng.uniform(-50, 200), 2)
        events.append((entity, f"id{i:04d}", ts, amount, rng.choice(["web", "app"])))
    actual = with_window_features(
        spark.createDataFrame(events, SCHEMA),
        entity=["entity"],
        event_time="ts",
        order_key=["event_id"],
        features=FEATURES,
    )
    expected = _expected_df(spark, _reference_rows(events))
    assert_approx_df_equality(
        actual.orderBy("entity", "ts"), expected.orderBy("entity", "ts"), 1e-6, ignore_nullable=True
    )


def test_with_window_features_known_at_matches_sql_reference(spark):
    """``_known_at`` = the day after the latest landing date among the events in the row's
    largest window (here 1 day): a late event delays every row whose window holds it."""
    landing = {  # event_id -> landing date (else its event date); a5 lands two days late, c1 four
        "a5": dt.date(2024, 1, 3),
        "c1": dt.date(2024, 1, 5),
    }
    events = [e + (landing.get(e[1], e[2].date()),) for e in EVENTS]
    features = [_f("n_1h", "count", window="1h"), _f("sum_1d", "sum", column="amount", window="1d")]
    df = spark.createDataFrame(events, SCHEMA + ", landed date")
    actual = with_window_features(
        df, entity=["entity"], event_time="ts", order_key=["event_id"], features=features, known_at_from="landed"
    )
    con = _duckdb_events(events, extra=", landed DATE")
    expected_rows = con.execute("""
        SELECT i.entity, i.ts,
          (SELECT count(*) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 HOUR AND e.ts <= i.ts),
          (SELECT sum(amount) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts),
          (SELECT CAST(max(landed) + INTERVAL 1 DAY AS TIMESTAMP) FROM ev e
            WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts)
        FROM (SELECT DISTINCT entity, ts FROM ev) i ORDER BY 1, 2""").fetchall()
    expected = spark.createDataFrame(
        expected_rows, "entity string, ts timestamp, n_1h bigint, sum_1d double, _known_at timestamp"
    )
    assert_approx_df_equality(
        actual.orderBy("entity", "ts"), expected.orderBy("entity", "ts"), 1e-9, ignore_nullable=True
    )
    known = {(r["entity"], r["ts"]): r["_known_at"] for r in actual.collect()}
    assert known[("a", _t(120))] == dt.datetime(2024, 1, 4)  # a5 landed on Jan 3
    assert known[("a", _t(120, micros=1))] == dt.datetime(2024, 1, 4)  # a5 is in its 1-day window too
    assert known[("a", _t(120, days=2))] == dt.datetime(2024, 1, 4)  # only a7 (landed Jan 3) in its window
    assert known[("c", _t(0, days=1, micros=-1))] == dt.datetime(2024, 1, 6)  # c1 (landed Jan 5) still inside
    assert known[("c", _t(0, days=1))] == dt.datetime(2024, 1, 3)  # c1 exactly 1 day back is out: c2 (Jan 2)


ORDERED_FEATURES = [
    _f("first_1d", "first", column="amount", window="1d"),
    _f("last_1h", "last", column="amount", window="1h"),
    _f("last_web_1d", "last", column="amount", window="1d", where=("channel", "web")),
    _f("channels_1d", "count_distinct", column="channel", window="1d"),
    _f("p90_1d", "percentile", column="amount", window="1d"),
    _f("median_1h", "percentile", column="amount", window="1h"),
]
ORDERED_FEATURES[4] = FeatureSpec(**{**ORDERED_FEATURES[4].__dict__, "percentile": 0.9})
ORDERED_FEATURES[5] = FeatureSpec(**{**ORDERED_FEATURES[5].__dict__, "percentile": 0.5})

# first/last: the earliest/latest non-null value in (t - w, t], ties by event_id; count_distinct
# ignores nulls; percentile p: the smallest value with at least p * n of the n values at or below it.
ORDERED_REFERENCE_SQL = """
WITH instants AS (SELECT DISTINCT entity, ts FROM ev)
SELECT i.entity, i.ts,
  (SELECT e.amount FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts
     AND e.amount IS NOT NULL ORDER BY e.ts, e.event_id LIMIT 1) AS first_1d,
  (SELECT e.amount FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 HOUR AND e.ts <= i.ts
     AND e.amount IS NOT NULL ORDER BY e.ts DESC, e.event_id DESC LIMIT 1) AS last_1h,
  (SELECT e.amount FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts
     AND e.amount IS NOT NULL AND e.channel = 'web' ORDER BY e.ts DESC, e.event_id DESC LIMIT 1) AS last_web_1d,
  (SELECT count(DISTINCT e.channel) FROM ev e WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY
     AND e.ts <= i.ts) AS channels_1d,
  (SELECT list_sort(list(e.amount))[CAST(ceil(0.9 * count(e.amount)) AS INTEGER)] FROM ev e
     WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 DAY AND e.ts <= i.ts AND e.amount IS NOT NULL) AS p90_1d,
  (SELECT list_sort(list(e.amount))[CAST(ceil(0.5 * count(e.amount)) AS INTEGER)] FROM ev e
     WHERE e.entity = i.entity AND e.ts > i.ts - INTERVAL 1 HOUR AND e.ts <= i.ts AND e.amount IS NOT NULL) AS median_1h
FROM instants i
ORDER BY 1, 2
"""
ORDERED_SCHEMA = (
    "entity string, ts timestamp, first_1d double, last_1h double, last_web_1d double, channels_1d bigint, "
    "p90_1d double, median_1h double"
)


def _ordered_reference(spark, events):
    con = _duckdb_events(events)
    return spark.createDataFrame(con.execute(ORDERED_REFERENCE_SQL).fetchall(), ORDERED_SCHEMA)


def test_with_window_features_first_last_distinct_percentile_match_sql_reference(spark):
    actual = with_window_features(
        spark.createDataFrame(EVENTS, SCHEMA),
        entity=["entity"],
        event_time="ts",
        order_key=["event_id"],
        features=ORDERED_FEATURES,
    )
    expected = _ordered_reference(spark, EVENTS)
    assert_approx_df_equality(actual.orderBy("entity", "ts"), expected.orderBy("entity", "ts"), 0, ignore_nullable=True)
    rows = {(r["entity"], r["ts"]): r for r in actual.collect()}
    tie = rows[("a", _t(30))]  # a2 (20.0, app) and a3 (5.0, web) at 00:30: a3 is later by event_id
    assert (tie["first_1d"], tie["last_1h"], tie["last_web_1d"], tie["channels_1d"]) == (10.0, 5.0, 5.0, 2)
    assert (tie["p90_1d"], tie["median_1h"]) == (20.0, 10.0)  # values 5, 10, 20
    after_null = rows[("a", _t(60))]  # a4 has no amount: last skips it
    assert (after_null["last_1h"], after_null["channels_1d"]) == (5.0, 2)


@pytest.mark.parametrize("seed", [3, 4])
def test_with_window_features_ordered_aggregates_random_data_match_reference(spark, seed):
    import random

    rng = random.Random(seed)
    events = []
    for i in range(300):
        ts = T0 + dt.timedelta(minutes=rng.randrange(0, 2 * 24 * 60, 11))
        amount = None if rng.random() < 0.15 else float(rng.randrange(-20, 80))
        events.append((rng.choice("pqr"), f"id{i:04d}", ts, amount, rng.choice(["web", "app", "store", None])))
    actual = with_window_features(
        spark.createDataFrame(events, SCHEMA),
        entity=["entity"],
        event_time="ts",
        order_key=["event_id"],
        features=ORDERED_FEATURES,
    )
    expected = _ordered_reference(spark, events)
    assert_approx_df_equality(actual.orderBy("entity", "ts"), expected.orderBy("entity", "ts"), 0, ignore_nullable=True)


# Every aggregate kind at every window length, against DuckDB, on generated data: an independent
# correlated subquery per feature (events with time in (t - w, t] of the same entity).
LENGTHS = {"1h": "1 HOUR", "1d": "1 DAY", "7d": "7 DAY"}
_IN_WINDOW = "e.entity = i.entity AND e.ts > i.ts - INTERVAL {w} AND e.ts <= i.ts"
#: kind -> (function, column, where, DuckDB expression over the window's rows ``e``, Spark type)
KINDS = {
    "n": ("count", None, None, "(SELECT count(*) FROM ev e WHERE {win})", "bigint"),
    "n_amount": ("count", "amount", None, "(SELECT count(e.amount) FROM ev e WHERE {win})", "bigint"),
    "n_web": (
        "count",
        None,
        ("channel", "web"),
        "(SELECT count(*) FROM ev e WHERE {win} AND e.channel = 'web')",
        "bigint",
    ),
    "sum": ("sum", "amount", None, "(SELECT sum(e.amount) FROM ev e WHERE {win})", "double"),
    "mean": ("mean", "amount", None, "(SELECT avg(e.amount) FROM ev e WHERE {win})", "double"),
    "std": ("stddev", "amount", None, "(SELECT stddev_samp(e.amount) FROM ev e WHERE {win})", "double"),
    "min": ("min", "amount", None, "(SELECT min(e.amount) FROM ev e WHERE {win})", "double"),
    "max": ("max", "amount", None, "(SELECT max(e.amount) FROM ev e WHERE {win})", "double"),
    "first": (
        "first",
        "amount",
        None,
        "(SELECT e.amount FROM ev e WHERE {win} AND e.amount IS NOT NULL ORDER BY e.ts, e.event_id LIMIT 1)",
        "double",
    ),
    "last": (
        "last",
        "amount",
        None,
        "(SELECT e.amount FROM ev e WHERE {win} AND e.amount IS NOT NULL ORDER BY e.ts DESC, e.event_id DESC LIMIT 1)",
        "double",
    ),
    "channels": (
        "count_distinct",
        "channel",
        None,
        "(SELECT count(DISTINCT e.channel) FROM ev e WHERE {win})",
        "bigint",
    ),
    "median": (
        "percentile",
        "amount",
        None,
        "(SELECT list_sort(list(e.amount))[CAST(ceil(0.5 * count(e.amount)) AS INTEGER)] FROM ev e "
        "WHERE {win} AND e.amount IS NOT NULL)",
        "double",
    ),
    "lag1": (
        "lag",
        "amount",
        None,
        "(SELECT l.amount FROM seq l WHERE l.entity = i.entity AND l.n = s.n - 1 AND l.ts > i.ts - INTERVAL {w})",
        "double",
    ),
    "lag2": (
        "lag",
        "amount",
        None,
        "(SELECT l.amount FROM seq l WHERE l.entity = i.entity AND l.n = s.n - 2 AND l.ts > i.ts - INTERVAL {w})",
        "double",
    ),
    "since": (
        "time_since_previous",
        None,
        None,
        "(SELECT epoch_us(i.ts) - epoch_us(max(e.ts)) FROM ev e WHERE e.entity = i.entity AND e.ts < i.ts "
        "AND e.ts > i.ts - INTERVAL {w}) / 1e6",
        "double",
    ),
}


def _every_kind_features(kinds=None):
    features, selects, schema = [], [], ["entity string", "ts timestamp"]
    for kind, (function, column, where, sql, dtype) in (KINDS if kinds is None else kinds).items():
        for length, interval in LENGTHS.items():
            name = f"{kind}_{length}"
            spec = _f(name, function, column=column, window=length, where=where, offset=2 if kind == "lag2" else 1)
            if function == "percentile":
                spec = FeatureSpec(**{**spec.__dict__, "percentile": 0.5})
            features.append(spec)
            selects.append(sql.format(win=_IN_WINDOW.format(w=interval), w=interval) + f" AS {name}")
            schema.append(f"{name} {dtype}")
    return features, selects, ", ".join(schema)


def _generated_events(seed: int):
    """Ties (a 5-minute grid), gaps (entity p is silent for 6 days), nulls in amount and channel,
    and entities with a single event, over 12 days."""
    import random

    rng = random.Random(seed)
    events = []
    for i in range(500):
        entity = rng.choice("pqrs")
        minute = rng.randrange(0, 12 * 24 * 60, 5)
        if entity == "p" and 3 * 24 * 60 <= minute < 9 * 24 * 60:
            minute += 6 * 24 * 60  # the gap
        amount = None if rng.random() < 0.1 else round(rng.uniform(-50, 200), 2)
        events.append((entity, f"id{i:04d}", _t(minute), amount, rng.choice(["web", "app", "store", None])))
    events += [("solo1", "s1", _t(61), 5.0, "web"), ("solo2", "s2", _t(3, days=4), None, None)]
    return events


def test_with_window_features_every_kind_and_length_match_duckdb(spark):
    events = _generated_events(seed=11)
    features, selects, schema = _every_kind_features()
    con = _duckdb_events(events)
    rows = con.execute(
        "WITH seq AS (SELECT entity, ts, amount, row_number() OVER (PARTITION BY entity ORDER BY ts, event_id) AS n "
        "FROM ev), instants AS (SELECT entity, ts, max(n) AS n FROM seq GROUP BY entity, ts) "
        f"SELECT i.entity, i.ts, {', '.join(selects)} FROM instants i JOIN instants s USING (entity, ts) ORDER BY 1, 2"
    ).fetchall()
    expected = spark.createDataFrame(rows, schema)
    actual = with_window_features(
        spark.createDataFrame(events, SCHEMA),
        entity=["entity"],
        event_time="ts",
        order_key=["event_id"],
        features=features,
    )
    assert len(rows) > 400 and {r[0] for r in rows} == {"p", "q", "r", "s", "solo1", "solo2"}
    assert_approx_df_equality(
        actual.orderBy("entity", "ts"), expected.orderBy("entity", "ts"), 1e-6, ignore_nullable=True
    )


# count, sum and mean of integer and decimal columns come from running totals (a difference of two
# frames that start at the entity's first event); checked exactly (no tolerance) against DuckDB.
#: kind -> (function, column, where, DuckDB expression over the window's rows ``e``, Spark type)
EXACT_KINDS = {
    "n_qty": ("count", "qty", None, "(SELECT count(e.qty) FROM ev e WHERE {win})", "bigint"),
    "qty": ("sum", "qty", None, "(SELECT CAST(sum(e.qty) AS BIGINT) FROM ev e WHERE {win})", "bigint"),
    "qty_web": (
        "sum",
        "qty",
        ("channel", "web"),
        "(SELECT CAST(sum(e.qty) AS BIGINT) FROM ev e WHERE {win} AND e.channel = 'web')",
        "bigint",
    ),
    "qty_mean": ("mean", "qty", None, "(SELECT avg(e.qty) FROM ev e WHERE {win})", "double"),
    "price": ("sum", "price", None, "(SELECT sum(e.price) FROM ev e WHERE {win})", "decimal(22,2)"),
    "small": ("sum", "small", None, "(SELECT CAST(sum(e.small) AS BIGINT) FROM ev e WHERE {win})", "bigint"),
}
EXACT_SCHEMA = (
    "entity string, event_id string, ts timestamp, amount double, channel string, qty int, "
    "price decimal(12,2), small smallint"
)


def _exact_events(seed: int):
    """:func:`_generated_events` plus an int, a decimal(12,2) and a smallint column, each with nulls."""
    import random
    from decimal import Decimal

    rng = random.Random(seed)
    out = []
    for entity, event_id, ts, amount, channel in _generated_events(seed):
        qty = None if rng.random() < 0.1 else rng.randrange(-5, 1_000_000)
        price = None if rng.random() < 0.1 else Decimal(rng.randrange(-10_000, 9_999_999_999)) / 100
        small = None if rng.random() < 0.2 else rng.randrange(-300, 300)
        out.append((entity, event_id, ts, amount, channel, qty, price, small))
    return out


def test_with_window_features_running_totals_match_duckdb_exactly(spark):
    events = _exact_events(seed=12)
    features, selects, schema = _every_kind_features(EXACT_KINDS)
    con = _duckdb_events(events, extra=", qty INTEGER, price DECIMAL(12,2), small SMALLINT")
    rows = con.execute(
        f"SELECT i.entity, i.ts, {', '.join(selects)} FROM (SELECT DISTINCT entity, ts FROM ev) i ORDER BY 1, 2"
    ).fetchall()
    expected = spark.createDataFrame(rows, schema)
    actual = with_window_features(
        spark.createDataFrame(events, EXACT_SCHEMA),
        entity=["entity"],
        event_time="ts",
        order_key=["event_id"],
        features=features,
    )
    price_1h = [r[2 + selects.index(next(s for s in selects if s.endswith(" AS price_1h")))] for r in rows]
    assert len(rows) > 400 and None in price_1h  # a window whose decimals are all null
    # exact: the same types, the same values to the last bit (means included)
    assert actual.schema.simpleString() == expected.schema.simpleString()
    assert_approx_df_equality(actual.orderBy("entity", "ts"), expected.orderBy("entity", "ts"), 0, ignore_nullable=True)


def test_with_window_features_integer_sum_exact_where_running_totals_pass_the_long_range(spark):
    """Running totals of values near 4e18 leave the bigint range after three events; a window of
    at most two of them does not, and its sum must still be exact (Python integers as reference)."""
    big = 4_000_000_000_000_000_000
    values = [big, big, big, -big, -big, big, 7]
    events = [("e", f"id{i}", _t(i * 60 * 24), values[i]) for i in range(len(values))]  # one a day
    df = spark.createDataFrame(events, "entity string, event_id string, ts timestamp, v bigint")
    actual = with_window_features(
        df,
        entity=["entity"],
        event_time="ts",
        order_key=["event_id"],
        features=[_f("v_2d", "sum", column="v", window="2d")],
    )
    expected = [sum(values[max(0, i - 1) : i + 1]) for i in range(len(values))]
    assert [r["v_2d"] for r in actual.orderBy("ts").collect()] == expected
    # the premise: a bigint running total would overflow (3 * 4e18), no window sum does
    assert max(sum(values[: i + 1]) for i in range(len(values))) > 2**63 - 1
    assert max(abs(v) for v in expected) < 2**63
