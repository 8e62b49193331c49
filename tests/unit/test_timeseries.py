"""History helpers (lags, differences, rolling z-score, EMA) against a pandas reference that spells
out the documented window (time in (t - W, t], previous rows only for the z-score)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from featuremill.preprocessing.spec import TimeseriesSpec
from featuremill.preprocessing.timeseries import with_history_helpers
from tests.conftest import physical_plan

T0 = dt.datetime(2024, 3, 1)
ROWS = [
    # entity a: gaps of 1 day, a null, a 3-day gap (the 3d window boundary is exclusive)
    ("a", T0, 10.0),
    ("a", T0 + dt.timedelta(days=1), 12.0),
    ("a", T0 + dt.timedelta(days=2), None),
    ("a", T0 + dt.timedelta(days=3), 11.0),
    ("a", T0 + dt.timedelta(days=6), 30.0),
    ("a", T0 + dt.timedelta(days=6, hours=5), 8.0),
    ("a", T0 + dt.timedelta(days=7), 9.0),
    # entity b: dense hourly rows
    *[("b", T0 + dt.timedelta(hours=h), float((h * 7) % 5)) for h in range(9)],
    ("c", T0, 1.0),
]


def _spec(window_days: int) -> TimeseriesSpec:
    return TimeseriesSpec(
        feature_set="fs",
        column="x",
        window=f"{window_days}d",
        window_seconds=window_days * 86400,
        lags=(1, 2),
        diffs=(1,),
        rolling_zscore=True,
        ema_alpha=0.5,
        ema_name=None,
    )


def _reference(pdf: pd.DataFrame, window: pd.Timedelta, alpha: float) -> pd.DataFrame:
    out = []
    for _, g in pdf.sort_values(["entity", "ts"]).groupby("entity"):
        g = g.reset_index(drop=True)
        for i, row in g.iterrows():
            inside = g[(g["ts"] > row["ts"] - window) & (g["ts"] <= row["ts"])]
            rec = {"entity": row["entity"], "ts": row["ts"]}
            for n in (1, 2):
                j = i - n
                rec[f"x_lag{n}"] = g.loc[j, "x"] if j >= 0 and g.loc[j, "ts"] > row["ts"] - window else np.nan
            rec["x_diff1"] = row["x"] - rec["x_lag1"]
            previous = inside[inside["ts"] < row["ts"]]["x"].dropna()
            std = previous.std(ddof=1) if len(previous) >= 2 else np.nan
            rec["x_zscore"] = (row["x"] - previous.mean()) / std if len(previous) >= 2 and std > 0 else np.nan
            weights = np.array([(1 - alpha) ** (i - k) for k in inside.index])
            values = inside["x"].to_numpy(dtype=float)
            present = ~np.isnan(values)
            rec["x_ema"] = (
                (weights[present] * values[present]).sum() / weights[present].sum() if present.any() else np.nan
            )
            out.append(rec)
    return pd.DataFrame(out)


@pytest.fixture(scope="module")
def frame(spark):
    return spark.createDataFrame(ROWS, "entity string, ts timestamp, x double")


def _run(frame, window_days: int) -> pd.DataFrame:
    df = with_history_helpers(frame, entity=["entity"], event_time="ts", helpers=[_spec(window_days)])
    return pd.DataFrame([r.asDict() for r in df.orderBy("entity", "ts").collect()])


def test_with_history_helpers_match_pandas_reference(frame):
    got = _run(frame, 3)
    pdf = pd.DataFrame(ROWS, columns=["entity", "ts", "x"]).astype({"x": float})
    expected = _reference(pdf, pd.Timedelta(days=3), 0.5)
    assert list(got.columns) == ["entity", "ts", "x", "x_lag1", "x_lag2", "x_diff1", "x_zscore", "x_ema"]
    for column in ("x_lag1", "x_lag2", "x_diff1", "x_zscore", "x_ema"):
        np.testing.assert_allclose(
            got[column].astype(float), expected[column].astype(float), rtol=1e-12, err_msg=column
        )
    # the 3-day gap: day 6's lag1 (day 3) is exactly 3 days back, outside (t - 3d, t]
    day6 = got[(got["entity"] == "a") & (got["ts"] == T0 + dt.timedelta(days=6))].iloc[0]
    assert np.isnan(day6["x_lag1"]) and day6["x_ema"] == 30.0


def test_with_history_helpers_ema_equals_pandas_ewm_when_history_fits_the_window(frame):
    got = _run(frame, 30)
    pdf = pd.DataFrame(ROWS, columns=["entity", "ts", "x"]).astype({"x": float}).sort_values(["entity", "ts"])
    expected = pdf.groupby("entity")["x"].transform(lambda s: s.ewm(alpha=0.5, adjust=True, ignore_na=False).mean())
    np.testing.assert_allclose(got["x_ema"], expected.to_numpy(), rtol=1e-12)


def test_with_history_helpers_plan_has_one_shuffle(frame):
    df = with_history_helpers(frame, entity=["entity"], event_time="ts", helpers=[_spec(3)])
    plan = physical_plan(df)
    assert plan.count("Exchange hashpartitioning") == 1, plan
