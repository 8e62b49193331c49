"""Drift statistics on small vectors against scipy/numpy computed inside the test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst
from scipy.spatial.distance import jensenshannon

from featuremill.core import stats

REF = [120, 340, 560, 10, 0, 970]
CUR = [100, 400, 500, 40, 7, 950]


def _psi_reference(ref, cur, eps):
    r = np.asarray(ref, float) / np.sum(ref)
    c = np.asarray(cur, float) / np.sum(cur)
    r, c = np.maximum(r, eps), np.maximum(c, eps)
    return float(np.sum((c - r) * np.log(c / r)))


def test_psi_matches_formula_with_epsilon_for_empty_bins():
    assert stats.psi(REF, CUR) == pytest.approx(_psi_reference(REF, CUR, 1e-4), rel=1e-12)
    assert stats.psi(REF, REF) == 0.0
    # An empty reference bin gets epsilon: finite, large.
    assert 0.05 < stats.psi([10, 0], [9, 1]) < 1.0


def test_js_distance_matches_scipy_base2():
    assert stats.js_distance(REF, CUR) == pytest.approx(jensenshannon(REF, CUR, base=2), rel=1e-12)
    assert stats.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert stats.js_distance(REF, REF) == 0.0


def test_chi2_contingency_matches_scipy_without_correction():
    stat, dof = stats.chi2_contingency(REF, CUR)
    table = np.array([REF, CUR])
    table = table[:, table.sum(axis=0) > 0]  # scipy refuses empty columns; ours drops them
    expected = sst.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert dof == expected.dof
    assert stats.chi2_sf(stat, dof) == pytest.approx(expected.pvalue, rel=1e-9)
    n = table.sum()
    assert stats.cramers_v(stat, n) == pytest.approx(sst.contingency.association(table, method="cramer"), rel=1e-12)


def test_chi2_independence_matches_scipy_on_an_r_by_c_table_with_empty_cells():
    # 4 bins x 3 classes; bin 7 has no row of class "c", a class absent from no other bin
    table = np.array([[30, 12, 5], [8, 40, 9], [0, 14, 22], [11, 3, 0]])
    bins, classes = [2, 5, 7, 9], ["a", "b", "c"]
    cells = {(b, y): int(table[i, j]) for i, b in enumerate(bins) for j, y in enumerate(classes) if table[i, j]}
    stat, dof = stats.chi2_independence(cells, classes)
    expected = sst.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert dof == expected.dof == 6
    assert stats.chi2_sf(stat, dof) == pytest.approx(expected.pvalue, rel=1e-9)
    # without the classes, the columns are those present: the same here (every class occurs)
    assert stats.chi2_independence(cells) == (stat, dof)


def test_chi2_independence_of_one_row_or_one_column_is_zero_with_no_freedom():
    assert stats.chi2_independence({(1, "a"): 5, (1, "b"): 7}, ["a", "b"]) == (0.0, 0)
    assert stats.chi2_independence({(1, "a"): 5, (2, "a"): 7}, ["a"]) == (0.0, 0)
    # a class the table lacks still counts as a column when named: 2 x 2, one column empty
    stat, dof = stats.chi2_independence({(1, "a"): 5, (2, "a"): 7}, ["a", "b"])
    assert (stat, dof) == (0.0, 1)


@pytest.mark.parametrize(
    "stat,dof", [(0.5, 1), (3.84, 1), (30.0, 1), (12.0, 5), (80.0, 100), (130.0, 100), (500.0, 300)]
)
def test_chi2_sf_matches_scipy(stat, dof):
    assert stats.chi2_sf(stat, dof) == pytest.approx(sst.chi2.sf(stat, dof), rel=1e-9)


@pytest.mark.parametrize("x", [0.1, 0.5, 0.9, 1.0, 1.36, 2.0, 4.0])
def test_kolmogorov_sf_matches_scipy(x):
    assert stats.kolmogorov_sf(x) == pytest.approx(sst.kstwobign.sf(x), rel=1e-9, abs=1e-15)


def test_benjamini_hochberg_matches_scipy_and_skips_missing():
    ps = [0.01, 0.04, 0.03, 0.5, 0.002, 0.2]
    expected = sst.false_discovery_control(ps, method="bh")
    got = stats.benjamini_hochberg(ps[:3] + [None] + ps[3:])
    assert got[3] is None
    assert np.allclose([g for g in got if g is not None], expected, rtol=1e-12)


def test_ks_and_wasserstein_from_quantile_grids_match_scipy_on_samples():
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 1, 40_000)
    cur = rng.normal(0.3, 1.2, 30_000)
    grid = stats.quantile_grid(1000)
    q_ref = np.quantile(ref, grid, method="inverted_cdf")
    q_cur = np.quantile(cur, grid, method="inverted_cdf")
    d = stats.ks_from_quantiles(q_ref, q_cur)
    # A 1000-point grid resolves the CDFs to about 1/1000 each.
    assert d == pytest.approx(sst.ks_2samp(ref, cur).statistic, abs=0.003)
    w = stats.wasserstein_from_quantiles(q_ref, q_cur)
    assert w == pytest.approx(sst.wasserstein_distance(ref, cur), rel=0.01)
    # Ties (a discrete distribution): the estimate sees the jumps.
    ref_d = rng.integers(0, 5, 20_000)
    cur_d = rng.integers(1, 6, 20_000)
    d = stats.ks_from_quantiles(
        np.quantile(ref_d, grid, method="inverted_cdf"), np.quantile(cur_d, grid, method="inverted_cdf")
    )
    assert d == pytest.approx(sst.ks_2samp(ref_d, cur_d).statistic, abs=0.003)


def test_ks_pvalue_is_the_asymptotic_two_sample_value():
    d, n, m = 0.02, 5000, 4000
    expected = sst.kstwobign.sf(d * math.sqrt(n * m / (n + m)))
    assert stats.ks_pvalue(d, n, m) == pytest.approx(expected, rel=1e-9)
