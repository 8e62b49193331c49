"""Profiles against pandas/numpy computed in the test."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from featuremill.quality.profile import profile_frame
from featuremill.quality.spec import ProfileSettings

N = 60
SCHEMA = "id string, n double, k int, s string, t timestamp, b boolean, a array<int>"


def _rows():
    rows = []
    for i in range(N):
        n = round(math.sin(i * 1.7) * 100, 3)
        if i == 5:
            n = None
        elif i == 7:
            n = float("nan")
        elif i == 9:
            n = float("inf")
        s = None if i % 11 == 0 else ["red", "green", "blue", "red", "red", "green"][i % 6]
        rows.append((f"id{i:03d}", n, i % 4, s, dt.datetime(2024, 1, 1) + dt.timedelta(hours=7 * i), i % 3 == 0, [i]))
    return rows


def test_profile_frame_matches_pandas(spark):
    rows = _rows()
    df = spark.createDataFrame(rows, SCHEMA)
    settings = ProfileSettings(histogram_bins=8, top_values=3)
    total, profiles = profile_frame(df, settings=settings)
    p = {c.column: c for c in profiles}
    pdf = pd.DataFrame(rows, columns=["id", "n", "k", "s", "t", "b", "a"])
    assert total == N and [c.column for c in profiles] == ["id", "n", "k", "s", "t", "b", "a"]

    n = p["n"]
    raw = pdf["n"].to_numpy(float)
    finite = raw[np.isfinite(raw)]
    assert (n.kind, n.rows, n.nulls, n.nan, n.infinite) == ("numeric", N, 1, 1, 1)  # NaN and inf are not null
    assert n.mean == pytest.approx(finite.mean()) and n.stddev == pytest.approx(finite.std(ddof=1))
    assert float(n.min) == pytest.approx(finite.min(), rel=1e-5) and float(n.max) == pytest.approx(
        finite.max(), rel=1e-5
    )
    expected_q = np.quantile(finite, settings.quantiles, method="inverted_cdf")
    assert n.quantiles == pytest.approx(list(expected_q))
    counts, _ = np.histogram(finite, bins=8, range=(finite.min(), finite.max()))
    assert [c for _, _, c in n.histogram] == list(counts)
    assert n.histogram[0][0] == pytest.approx(finite.min()) and n.histogram[-1][1] == pytest.approx(finite.max())

    k = p["k"]  # a discrete numeric column also gets top values
    assert k.distinct_approx == 4 and k.top_values == [("0", 15), ("1", 15), ("2", 15)]

    s = p["s"]
    vc = pdf["s"].value_counts()
    assert (s.kind, s.nulls, s.distinct_approx) == ("categorical", int(pdf["s"].isna().sum()), 3)
    assert s.top_values == [(v, int(c)) for v, c in sorted(vc.items(), key=lambda kv: (-kv[1], kv[0]))][:3]
    assert s.histogram == []

    t = p["t"]
    assert (t.kind, t.min, t.max) == ("temporal", "2024-01-01 00:00:00", str(pdf["t"].max()))
    assert sum(c for _, _, c in t.histogram) == N

    assert p["id"].top_values == [] and p["id"].note.startswith("nearly unique")
    assert p["b"].top_values == [("false", 40), ("true", 20)]
    assert (p["a"].kind, p["a"].nulls, p["a"].distinct_approx) == ("other", 0, None)
