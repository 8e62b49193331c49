"""The ANOVA / F-regression statistics feature selection computes from Spark aggregates where
MLlib's JVM-only tests are out of reach (Spark Connect), against scipy and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.feature_selection import f_regression

from featuremill.selection.select import _f_sf, _f_tests_by_aggregates

RNG = np.random.default_rng(11)
N = 240
LABEL_CLASS = RNG.integers(0, 3, N).astype(float)
X_SHIFTED = RNG.normal(0, 1, N) + 0.6 * LABEL_CLASS  # depends on the class
X_NOISE = RNG.normal(5, 2, N)  # does not
LABEL_REG = 2.0 * X_SHIFTED + RNG.normal(0, 1.5, N)


def _frame(spark, label):
    rows = [(float(a), float(b), float(y)) for a, b, y in zip(X_SHIFTED, X_NOISE, label, strict=True)]
    return spark.createDataFrame(rows, "x0 double, x1 double, label double")


def test_anova_matches_scipy_f_oneway(spark):
    got = _f_tests_by_aggregates(_frame(spark, LABEL_CLASS), ["x0", "x1"], "classification")
    for index, x in enumerate((X_SHIFTED, X_NOISE)):
        expected = stats.f_oneway(*(x[LABEL_CLASS == k] for k in (0.0, 1.0, 2.0)))
        assert got[index][0] == index
        assert got[index][1] == pytest.approx(expected.statistic, rel=1e-9)
        assert got[index][2] == pytest.approx(expected.pvalue, rel=1e-7, abs=1e-300)
    assert got[0][2] < 1e-6 < got[1][2]


def test_f_regression_matches_sklearn(spark):
    got = _f_tests_by_aggregates(_frame(spark, LABEL_REG), ["x0", "x1"], "regression")
    f_expected, p_expected = f_regression(np.column_stack([X_SHIFTED, X_NOISE]), LABEL_REG)
    assert [g[0] for g in got] == [0, 1]
    assert [g[1] for g in got] == pytest.approx(list(f_expected), rel=1e-9)
    assert [g[2] for g in got] == pytest.approx(list(p_expected), rel=1e-7, abs=1e-300)


@pytest.mark.parametrize(("f_value", "df1", "df2"), [(2.5, 1, 10), (3.1, 2, 97), (0.2, 3, 1000), (40.0, 1, 998)])
def test_f_upper_tail_matches_scipy(f_value, df1, df2):
    assert _f_sf(f_value, df1, df2) == pytest.approx(stats.f.sf(f_value, df1, df2), rel=1e-10)
