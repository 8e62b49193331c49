"""Window warm-up marking (featuremill.transforms.warmup) against hand-computed boundaries.

History starts 2026-09-01 00:00 UTC (the session time zone of the tests). A value with warm-up
``W`` at time ``t`` is complete exactly when ``t - W >= 2026-09-01 00:00``.
"""

from __future__ import annotations

import datetime as dt

from featuremill.config.model import FeatureSetSpec, FeatureSpec
from featuremill.transforms.warmup import (
    complete_conditions,
    first_history_date,
    warmup_seconds,
    with_complete_window,
)

H, D = 3600, 86400
FIRST = dt.date(2026, 9, 1)


def _f(name, function, window_seconds=None, **kw):
    return FeatureSpec(
        name=name, function=function, description="", owner="", version=1, window_seconds=window_seconds, **kw
    )


FS = FeatureSetSpec(
    name="acts",
    description="",
    owner="",
    version=1,
    update_frequency="daily",
    source="events",
    entity=("customer_id",),
    features=(
        _f("n_1h", "count", H),
        _f("s_7d", "sum", 7 * D, column="amount"),
        _f("s_30d", "sum", 30 * D, column="amount"),
        _f("r_7d_30d", "ratio", numerator="s_7d", denominator="s_30d"),
    ),
)


class _Helper:  # a preprocessing.timeseries spec: a 30-day z-score of s_7d
    column, window_seconds, output_columns = "s_7d", 30 * D, ("s_7d_zscore",)


def test_warmup_seconds_per_column():
    assert warmup_seconds(FS, [_Helper()]) == {
        "n_1h": H,
        "s_7d": 7 * D,
        "s_30d": 30 * D,
        "r_7d_30d": 30 * D,  # the larger of numerator and denominator
        "s_7d_zscore": 37 * D,  # 30 days of earlier 7-day sums
    }


def test_complete_per_window_just_inside_and_outside(spark):
    ts = dt.datetime
    rows = [
        ("a", ts(2026, 9, 1, 0, 59, 59)),  # 1h: t - 1h one second before the first history
        ("b", ts(2026, 9, 1, 1, 0, 0)),  # 1h: t - 1h == first: complete
        ("c", ts(2026, 9, 7, 23, 59, 59)),  # 7d: one second short
        ("d", ts(2026, 9, 8, 0, 0, 0)),  # 7d: exactly full
        ("e", ts(2026, 9, 30, 23, 59, 59)),  # 30d: one second short
        ("f", ts(2026, 10, 1, 0, 0, 0)),  # 30d: exactly full
        ("g", ts(2026, 10, 7, 23, 59, 59)),  # 37d: one second short
        ("h", ts(2026, 10, 8, 0, 0, 0)),  # 37d: exactly full
    ]
    df = spark.createDataFrame(rows, "id string, event_ts timestamp")
    warmups = warmup_seconds(FS, [_Helper()])
    conds = complete_conditions(event_time="event_ts", warmups=warmups, first_history=FIRST, columns=list(warmups))
    got = {
        r["id"]: tuple(r[c] for c in ("n_1h", "s_7d", "s_30d", "r_7d_30d", "s_7d_zscore"))
        for r in df.select("id", *[c.alias(n) for n, c in conds.items()]).collect()
    }
    expected = {
        "a": (False, False, False, False, False),
        "b": (True, False, False, False, False),
        "c": (True, False, False, False, False),
        "d": (True, True, False, False, False),
        "e": (True, True, False, False, False),
        "f": (True, True, True, True, False),
        "g": (True, True, True, True, False),
        "h": (True, True, True, True, True),
    }
    assert got == expected
    flagged = {
        r["id"]: r["complete_window"]
        for r in with_complete_window(df, event_time="event_ts", warmups=warmups, first_history=FIRST).collect()
    }
    assert flagged == {k: v[-1] for k, v in expected.items()}  # the row's longest warm-up, 37 days


def test_no_first_history_means_no_condition():
    assert complete_conditions(event_time="t", warmups={"x": 60}, first_history=None, columns=["x"]) == {}


def test_first_history_date_is_the_earliest_date(spark):
    df = spark.createDataFrame(
        [(dt.date(2026, 9, 3),), (dt.date(2026, 9, 1),), (dt.date(2026, 9, 2),)], "event_date date"
    )
    assert first_history_date(df) == dt.date(2026, 9, 1)
    assert first_history_date(df.where("event_date > '2026-12-01'")) is None
