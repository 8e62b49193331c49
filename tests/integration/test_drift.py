"""Drift on generated data with known shifts, and drift values against scipy/numpy references.

Data come from ``spark.range`` with hash-based uniforms (xxhash64 of a salt and the row id) and
Box-Muller normals: deterministic whatever the partitioning, and no driver-side lists.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst
from scipy.spatial.distance import jensenshannon

from featuremill.quality.drift import compare, fit_reference, score_counts
from featuremill.quality.spec import DriftSettings

TWO_PI = 2 * math.pi


def _u(salt: int):
    from pyspark.sql import functions as F

    h = F.xxhash64(F.lit(salt), F.col("id"))
    return F.abs(h % F.lit(1 << 52)) / F.lit(float(1 << 52))


def _z(salt: int):
    from pyspark.sql import functions as F

    return F.sqrt(-2.0 * F.log(_u(salt) + F.lit(1e-12))) * F.cos(F.lit(TWO_PI) * _u(salt + 1))


def _category(salt: int, new_share: float = 0.0):
    from pyspark.sql import functions as F

    u = _u(salt)
    return (
        F.when(u < new_share, "kiosk")
        .when(u < new_share + (1 - new_share) * 0.5, "web")
        .when(u < new_share + (1 - new_share) * 0.8, "app")
        .otherwise("store")
    )


def _frame(spark, rows: int, salt: int, *, shift: float = 0.0, new_share: float = 0.0, null_share: float = 0.01):
    """x, c, y with the reference distributions; x2, c2, y2 the same, optionally shifted."""
    from pyspark.sql import functions as F

    base = spark.range(0, rows, 1, 4)
    return base.select(
        (F.lit(50.0) + F.lit(10.0) * _z(salt)).alias("x"),
        _category(salt + 2).alias("c"),
        F.when(_u(salt + 3) < 0.01, F.lit(None)).otherwise(F.lit(100.0) + F.lit(5.0) * _z(salt + 4)).alias("y"),
        (F.lit(50.0 + 10.0 * shift) + F.lit(10.0) * _z(salt + 10)).alias("x2"),
        _category(salt + 12, new_share).alias("c2"),
        F.when(_u(salt + 13) < null_share, F.lit(None))
        .otherwise(F.lit(100.0) + F.lit(5.0) * _z(salt + 14))
        .alias("y2"),
    )


FEATURES = ["x", "c", "y", "x2", "c2", "y2"]


@pytest.mark.slow
def test_drift_at_1m_rows_no_alert_for_same_distribution_alert_on_known_shifts(compiled_spark):
    spark = compiled_spark
    from pyspark import StorageLevel

    settings = DriftSettings()
    # cached: the fit reads the reference three times; generating it is not what is tested
    reference = _frame(spark, 1_000_000, salt=100).persist(StorageLevel.MEMORY_AND_DISK)
    current = _frame(spark, 1_000_000, salt=200, shift=0.2, new_share=0.05, null_share=0.10).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    refs = fit_reference(reference, FEATURES, settings)
    results = {d.feature: d for d in compare(refs, score_counts(current, refs, settings), settings)}

    # Same distributions, independent samples of a million rows: no alert, no warning.
    for name in ("x", "c", "y"):
        assert results[name].level == "ok", (name, results[name].reasons)
    assert results["x"].psi < 0.001 and results["x"].ks < 0.005 and results["x"].wasserstein_norm < 0.01
    # A mean shift of 0.2 standard deviations: normalised Wasserstein ~0.2, above the 0.1 alert.
    assert results["x2"].level == "alert"
    assert results["x2"].wasserstein_norm == pytest.approx(0.2, abs=0.01)
    assert results["x2"].ks == pytest.approx(2 * sst.norm.cdf(0.1) - 1, abs=0.005)  # 0.0797 for a 0.2 sd shift
    # A new category in 5% of rows.
    assert results["c2"].level == "alert"
    assert results["c2"].unseen_share == pytest.approx(0.05, abs=0.002)
    assert results["c2"].unseen_example == "kiosk"
    # Nulls from 1% to 10%.
    assert results["y2"].level == "alert"
    assert results["y2"].null_share == pytest.approx(0.09, abs=0.002)
    assert any(r.startswith("null_share") for r in results["y2"].reasons)
    # The three unchanged features alone: the table-level verdict is ok.
    same = [r for r in refs if r.feature in ("x", "c", "y")]
    assert {d.level for d in compare(same, score_counts(current, same, settings), settings)} == {"ok"}
    reference.unpersist()
    current.unpersist()


def _numpy_bins(values: np.ndarray, lo: float, hi: float, edges: list[float]) -> list[int]:
    """The documented numeric binning, written with numpy: null, < min, [min, e1) ... [ek, max], > max."""
    counts = [int(np.isnan(values).sum()), 0]
    v = values[~np.isnan(values)]
    counts[1] = int((v < lo).sum())
    inside = v[(v >= lo) & (v <= hi)]
    idx = np.searchsorted(np.asarray(edges), inside, side="right")
    counts += [int((idx == i).sum()) for i in range(len(edges) + 1)]
    counts.append(int((v > hi).sum()))
    return counts


def test_drift_values_match_scipy_and_numpy(spark):
    """PSI, JS, chi-square: exact on the same bins; KS within 0.005; Wasserstein within 2%."""
    from pyspark.sql import functions as F

    settings = DriftSettings()
    ref_df = _frame(spark, 40_000, salt=300).select("x", "c", "y")
    cur_df = _frame(spark, 30_000, salt=400).select(
        (F.col("x") * 1.3 + 4).alias("x"), F.when(F.col("c") == "store", "app").otherwise(F.col("c")).alias("c"), "y"
    )
    refs = fit_reference(ref_df, ["x", "c", "y"], settings)
    got = {d.feature: d for d in compare(refs, score_counts(cur_df, refs, settings), settings)}
    ref_pd, cur_pd = ref_df.toPandas(), cur_df.toPandas()

    rx = next(r for r in refs if r.feature == "x")
    ref_x, cur_x = ref_pd["x"].to_numpy(float), cur_pd["x"].to_numpy(float)
    # Edges are the reference deciles (approximate: rank error well under 0.2%).
    for k, edge in enumerate(rx.edges, start=1):
        assert (ref_x <= edge).mean() == pytest.approx(k / 10, abs=0.002)
    ref_counts = _numpy_bins(ref_x, rx.min, rx.max, rx.edges)
    cur_counts = _numpy_bins(cur_x, rx.min, rx.max, rx.edges)
    assert rx.bin_counts == ref_counts and got["x"].current_counts == cur_counts
    r, c = np.array(ref_counts) / len(ref_x), np.array(cur_counts) / len(cur_x)
    r_eps, c_eps = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    assert got["x"].psi == pytest.approx(float(np.sum((c_eps - r_eps) * np.log(c_eps / r_eps))), rel=1e-9)
    assert got["x"].js == pytest.approx(jensenshannon(ref_counts, cur_counts, base=2), rel=1e-9)
    assert got["x"].ks == pytest.approx(sst.ks_2samp(ref_x, cur_x).statistic, abs=0.005)
    w1 = sst.wasserstein_distance(ref_x, cur_x)
    assert got["x"].wasserstein == pytest.approx(w1, rel=0.02)
    assert got["x"].wasserstein_norm == pytest.approx(w1 / np.std(ref_x), rel=0.02)
    assert got["x"].out_of_range_share == pytest.approx(((cur_x < ref_x.min()) | (cur_x > ref_x.max())).mean())

    # Categorical: bins null, web, app, store, __other__, __unseen__ (top values by reference count).
    rc = next(r for r in refs if r.feature == "c")
    assert rc.categories == ["web", "app", "store"]
    ref_vc, cur_vc = ref_pd["c"].value_counts(), cur_pd["c"].value_counts()
    table = np.array(
        [
            [0] + [int(ref_vc.get(k, 0)) for k in ("web", "app", "store")] + [0, 0],
            [0] + [int(cur_vc.get(k, 0)) for k in ("web", "app", "store")] + [0, 0],
        ]
    )
    assert [rc.bin_counts, got["c"].current_counts] == table.tolist()
    nonempty = table[:, table.sum(axis=0) > 0]
    chi = sst.chi2_contingency(nonempty, correction=False)
    assert got["c"].chi2 == pytest.approx(chi.statistic, rel=1e-9)
    assert got["c"].chi2_dof == chi.dof
    assert got["c"].cramers_v == pytest.approx(sst.contingency.association(nonempty, method="cramer"), rel=1e-9)
    assert got["c"].js == pytest.approx(jensenshannon(table[0], table[1], base=2), rel=1e-9)
    assert got["c"].level == "alert"  # 20% of rows moved from store to app

    # y is the same distribution on both sides (at 30-40k rows): not an alert.
    assert got["y"].level == "ok", got["y"].reasons
    # BH across the run's p-values (x: KS, c: chi-square, y: KS)
    raw = [got[n].ks_pvalue if n != "c" else got[n].chi2_pvalue for n in ("x", "c", "y")]
    assert [got[n].p_adjusted for n in ("x", "c", "y")] == pytest.approx(
        list(sst.false_discovery_control(raw, method="bh")), rel=1e-9
    )


def test_warming_up_30d_feature_alerts_only_without_the_exclusion(spark):
    """A 30-day sum fills over the first 30 days of data, then is stable: a reference from day 8
    drifts against the last days unless the warming-up values are left out (per feature)."""
    import datetime as dt

    from pyspark.sql import functions as F

    from featuremill.transforms.warmup import complete_conditions

    first = dt.date(2026, 9, 1)
    per_day = 200
    base = spark.range(0, 60 * per_day, 1, 4).withColumn("k", (F.col("id") / per_day).cast("int"))
    df = base.select(
        "k",
        (F.lit(first).cast("timestamp") + F.make_interval(days=F.col("k"), hours=F.lit(12))).alias("event_ts"),
        # day k (0-based) at noon: (k + 1) days of a 10/day spend while filling, then 300 (+ noise)
        (F.least(F.col("k") + 1, F.lit(30)) * F.lit(10.0) + F.lit(3.0) * _z(71)).alias("s_30d"),
        (F.lit(5.0) + _z(81)).alias("n_1h"),
    )
    reference, current = df.where("k BETWEEN 7 AND 44"), df.where("k >= 45")
    settings = DriftSettings()
    warmups = {"s_30d": 30 * 86400, "n_1h": 3600}
    complete = complete_conditions(event_time="event_ts", warmups=warmups, first_history=first, columns=list(warmups))

    def levels(cond):
        refs = fit_reference(reference, ["s_30d", "n_1h"], settings, complete=cond)
        counts = score_counts(current, refs, settings, complete=cond)
        return {d.feature: d for d in compare(refs, counts, settings)}

    without = levels(None)
    assert without["s_30d"].level == "alert"
    assert without["s_30d"].warming_up_reference == 0 and without["s_30d"].rows_reference == 38 * per_day

    kept = levels(complete)
    assert kept["s_30d"].level == "ok", kept["s_30d"].reasons
    # day k at noon is complete for 30 days when k + 0.5 >= 30: days 7..29 (23 days) left out
    assert (kept["s_30d"].warming_up_reference, kept["s_30d"].rows_reference) == (23 * per_day, 15 * per_day)
    assert (kept["s_30d"].warming_up_current, kept["s_30d"].rows_current) == (0, 15 * per_day)
    # the 1-hour feature keeps every row while the 30-day one warms up
    assert (kept["n_1h"].warming_up_reference, kept["n_1h"].rows_reference) == (0, 38 * per_day)
    assert kept["n_1h"].level == "ok"
