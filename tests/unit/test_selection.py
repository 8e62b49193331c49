"""Feature selection on generated data with known informative, redundant and noise features,
scores against scikit-learn / scipy references computed in the test, and the pass count.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from featuremill.selection import SelectionSpec, select_features
from featuremill.selection.scores import benjamini_hochberg, mutual_information, near_zero_variance
from featuremill.selection.spec import ModelSpec

FAST_MODEL = ModelSpec(trees=15, max_depth=4, permutation_rows=1500, permutation_repeats=2)


def _generate(n: int, seed: int, *, extra_noise: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    c1 = rng.choice(list("abcd"), n)
    effect = pd.Series(c1).map({"a": -1.2, "b": 0.0, "c": 0.6, "d": 1.4}).to_numpy()
    logit = 1.6 * x1 + 0.9 * x2 + effect
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = {
        "x1": x1,
        "x2": np.where(rng.random(n) < 0.05, np.nan, x2),  # informative, with missing values
        "x1_twin": x1 + 0.3 * rng.normal(size=n),  # noisy copy of x1 (|rho| ~ 0.96)
        "c1": c1,
        "noise_a": rng.normal(size=n),
        "noise_b": rng.uniform(size=n) * 1000,
        "noise_c": rng.choice(list("pqr"), n),
        "nzv": np.where(rng.random(n) < 0.985, 0.0, rng.normal(size=n)),  # near-zero variance
        "constant": np.ones(n),
    }
    for i in range(extra_noise):
        frame[f"extra_{i}"] = rng.normal(size=n)
    frame["y"] = y
    return pd.DataFrame(frame)


def _spark_frame(spark, pdf: pd.DataFrame):
    types = {c: ("string" if pdf[c].dtype == object else ("int" if c == "y" else "double")) for c in pdf.columns}
    rows = [
        tuple(None if (isinstance(v, float) and math.isnan(v)) else (v.item() if hasattr(v, "item") else v) for v in r)
        for r in pdf.itertuples(index=False)
    ]
    df = spark.createDataFrame(rows, ", ".join(f"{c} {t}" for c, t in types.items()))
    # materialise once so the job counts below measure selection, not the Python-side source
    return df.localCheckpoint(eager=True)


@pytest.fixture(scope="module")
def generated(spark):
    pdf = _generate(2000, seed=5)
    return pdf, _spark_frame(spark, pdf)


@pytest.fixture(scope="module")
def selection(generated):
    _, df = generated
    return select_features(df, SelectionSpec(model=FAST_MODEL, pca=True), label="y")


@pytest.mark.slow  # shares the module's selection run: a forest and permutation importances (half a minute)
def test_select_features_keeps_informative_drops_noise_and_redundant_twin(selection):
    decisions = {f.name: f.decision for f in selection.features}
    assert sorted(selection.selected) == ["c1", "x1", "x2"], {f.name: f.reason for f in selection.features}
    assert decisions["x1_twin"] == "drop" and "redundant with x1" in selection.feature("x1_twin").reason
    for noise in ("noise_a", "noise_b", "noise_c"):
        assert selection.feature(noise).reason.startswith("no evidence of relevance")
    assert selection.feature("nzv").reason.startswith("near-zero variance")
    assert selection.feature("constant").reason.startswith("constant")
    assert selection.task == "classification" and selection.classes == ["0", "1"]
    # the three informative features rank first
    assert {f.name for f in selection.features if f.rank <= 3} == {"x1", "x2", "c1"}
    assert selection.pca_explained_variance and abs(sum(selection.pca_explained_variance) - 1.0) < 1e-9


def _bins(x: np.ndarray, bins: int) -> np.ndarray:
    """The documented discretisation: inner edges = distinct quantiles (inverted CDF) at j/bins,
    bin = number of edges strictly below the value; missing values get their own bin."""
    present = x[~np.isnan(x)]
    edges = np.unique(np.quantile(present, [j / bins for j in range(1, bins)], method="inverted_cdf"))
    out = np.searchsorted(edges, np.nan_to_num(x, nan=0.0), side="left")
    return np.where(np.isnan(x), len(edges) + 1, out)


@pytest.mark.slow  # shares the module's selection run
def test_mutual_information_matches_sklearn_on_the_same_discretisation(generated, selection):
    from sklearn.feature_selection import mutual_info_classif
    from sklearn.metrics import mutual_info_score

    pdf, _ = generated
    y = pdf["y"].to_numpy()
    for name in ("x1", "x2", "x1_twin", "noise_a", "noise_b"):
        expected = mutual_info_score(_bins(pdf[name].to_numpy(float), 10), y)
        assert selection.feature(name).mutual_information == pytest.approx(expected, rel=1e-9, abs=1e-12), name
    for name in ("c1", "noise_c"):
        expected = mutual_info_score(pdf[name], y)
        assert selection.feature(name).mutual_information == pytest.approx(expected, rel=1e-9, abs=1e-12), name
    codes = np.column_stack([_bins(pdf["x1"].to_numpy(float), 10), pd.factorize(pdf["c1"])[0]])
    ref = mutual_info_classif(codes, y, discrete_features=True)
    assert [selection.feature("x1").mutual_information, selection.feature("c1").mutual_information] == pytest.approx(
        list(ref), rel=1e-9
    )


@pytest.mark.slow  # shares the module's selection run
def test_select_features_tests_match_scipy_and_sklearn(generated, selection):
    from scipy.stats import chi2_contingency
    from sklearn.feature_selection import f_classif

    pdf, _ = generated
    y = pdf["y"].to_numpy()
    for name in ("x1", "noise_a"):
        table = pd.crosstab(_bins(pdf[name].to_numpy(float), 10), y).to_numpy()
        stat, p, _, _ = chi2_contingency(table, correction=False)
        assert selection.feature(name).chi2 == pytest.approx(stat, rel=1e-9)
        assert selection.feature(name).chi2_p == pytest.approx(p, rel=1e-6, abs=1e-12)
    x = pdf[["x1", "x2", "noise_b"]].to_numpy(float)
    x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)  # missing values imputed with the mean
    f, p = f_classif(x, y)
    for i, name in enumerate(("x1", "x2", "noise_b")):
        assert selection.feature(name).f_stat == pytest.approx(f[i], rel=1e-6)
        assert selection.feature(name).f_p == pytest.approx(p[i], rel=1e-5, abs=1e-12)
    rho = np.corrcoef(pdf["x1"], pdf["x1_twin"])[0, 1]
    i, j = selection.correlation_names.index("x1"), selection.correlation_names.index("x1_twin")
    assert selection.correlation[i][j] == pytest.approx(rho, rel=1e-9)


def test_benjamini_hochberg_matches_scipy():
    from scipy.stats import false_discovery_control

    p = [0.001, 0.04, 0.03, 0.5, None, 0.2, 0.0001, 0.049]
    present = [v for v in p if v is not None]
    expected = iter(false_discovery_control(present, method="bh"))
    assert benjamini_hochberg(p) == [None if v is None else pytest.approx(next(expected), rel=1e-12) for v in p]


def test_near_zero_variance_follows_caret_rule():
    # 96 zeros, 2 ones, 2 twos: ratio 48 > 19 and 3% unique < 10% -> flagged
    assert near_zero_variance([96, 2], 3, 100, freq_ratio_cut=19, unique_percent_cut=10) == (48.0, 3.0, True)
    # same ratio but 50% unique -> kept
    assert near_zero_variance([960, 20], 500, 1000, freq_ratio_cut=19, unique_percent_cut=10)[2] is False
    assert near_zero_variance([10], 1, 10, freq_ratio_cut=19, unique_percent_cut=10)[2] is True


def test_mutual_information_of_independent_table_is_zero():
    assert mutual_information({(0, 0): 25, (0, 1): 25, (1, 0): 25, (1, 1): 25}) == pytest.approx(0.0, abs=1e-15)
    assert mutual_information({(0, 0): 50, (1, 1): 50}) == pytest.approx(math.log(2))


@pytest.mark.slow  # a full selection run with its forest
def test_select_features_regression_task(spark):
    rng = np.random.default_rng(2)
    n = 800
    pdf = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n)})
    pdf["target"] = 3 * pdf["signal"] + rng.normal(scale=0.5, size=n)
    df = _spark_frame(spark, pdf)
    result = select_features(df, SelectionSpec(model=FAST_MODEL), label="target")
    assert result.task == "regression" and result.loss_name == "mean squared error"
    assert result.selected == ["signal"]
    assert result.feature("signal").label_correlation == pytest.approx(np.corrcoef(pdf["signal"], pdf["target"])[0, 1])


@pytest.mark.slow  # a full selection run with its forest
def test_select_features_never_names_an_internal_column(spark):
    """A training table carrying featuremill's bookkeeping columns (``_known_at``,
    ``_feature_set_version``, a kept ``_<set>_event_time``): they are neither candidates nor
    reported as dropped, the real features are scored as before, and naming one is refused."""
    import json

    from pyspark.sql import functions as F

    from featuremill.core.errors import SelectionError

    rng = np.random.default_rng(3)
    n = 600
    pdf = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n)})
    pdf["target"] = 3 * pdf["signal"] + rng.normal(scale=0.5, size=n)
    df = (
        _spark_frame(spark, pdf)
        .withColumn("_known_at", F.lit("2024-01-02 00:00:00").cast("timestamp"))
        .withColumn("_feature_set_version", F.lit(1))
        .withColumn("_spend_event_time", F.lit("2024-01-01 10:00:00").cast("timestamp"))
        .withColumn("_score_shadow", F.col("signal") * 2)  # numeric and informative: still not a candidate
    )
    result = select_features(df, SelectionSpec(model=FAST_MODEL), label="target")
    assert [f.name for f in result.features] == ["signal", "noise"]
    assert result.selected == ["signal"]
    assert result.feature("noise").decision == "drop"
    assert not [name for name in result.correlation_names if name.startswith("_")]
    assert '"_' not in json.dumps(result.to_dict())  # no internal name anywhere in the report's data
    with pytest.raises(SelectionError, match="'_known_at' starts with '_'"):
        select_features(df, SelectionSpec(model=FAST_MODEL), label="target", features=["signal", "_known_at"])
    with pytest.raises(SelectionError, match="'_score_shadow' starts with '_'"):
        select_features(df, SelectionSpec(model=FAST_MODEL), label="_score_shadow")


@pytest.mark.slow  # two full selections, one of 40 features on 3,000 rows
def test_select_features_job_count_does_not_grow_with_feature_count(classic_spark):
    """Acceptance 3: 5 features on 1,000 rows and 40 features on 3,000 rows run the same number of
    Spark jobs, and the rows brought to the driver (every ``collect``, including ``first``) stay
    fewer than the rows of the data: only aggregates reach the driver."""
    spark = classic_spark  # counts jobs with the SparkContext's status tracker

    def run(n_rows: int, extra: int) -> tuple[int, int]:
        pdf = _generate(n_rows, seed=9, extra_noise=extra)
        features = ["x1", "x2", "c1", "noise_a", "noise_b"] + [f"extra_{i}" for i in range(extra)]
        df = _spark_frame(spark, pdf[features + ["y"]])
        collected = []
        cls = type(df)  # the classic DataFrame implementation in use
        original = cls.collect

        def counting_collect(self):
            rows = original(self)
            collected.append(len(rows))
            return rows

        sc = spark.sparkContext
        group = f"select-{n_rows}-{extra}"
        cls.collect = counting_collect
        sc.setJobGroup(group, group)
        try:
            select_features(df, SelectionSpec(model=FAST_MODEL), label="y")
        finally:
            cls.collect = original
            sc.setLocalProperty("spark.jobGroup.id", None)
        return len(sc.statusTracker().getJobIdsForGroup(group)), sum(collected)

    jobs_5, rows_5 = run(1000, 0)
    jobs_40, rows_40 = run(3000, 35)
    assert jobs_40 == jobs_5, (jobs_5, jobs_40)
    assert rows_5 < 1000 and rows_40 < 3000, (rows_5, rows_40)


def _score(name, mi, **kw):
    from featuremill.selection.scores import FeatureScore

    base = dict(non_null=100, distinct=50, chi2_p_adj=0.001, f_p_adj=0.001, mean_rank=1.0)
    base.update(kw)
    return FeatureScore(name, "numeric", "double", mutual_information=mi, **base)


def test_decide_redundancy_keeps_the_more_relevant_and_names_a_kept_feature():
    from featuremill.selection.scores import Pair, decide

    # a ~ b and b ~ c are correlated, a and c are not: keep a (most relevant), drop b, keep c
    features = [_score("a", 0.30), _score("b", 0.20), _score("c", 0.10), _score("d", 0.0, chi2_p_adj=0.5, f_p_adj=0.7)]
    decide(
        features,
        pairs=[Pair("a", "b", 0.97), Pair("b", "c", -0.95)],
        alpha=0.05,
        min_importance=0.01,
        baseline_loss=None,
        max_features=None,
    )
    got = {f.name: (f.decision, f.reason.split(" (")[0]) for f in features}
    assert got == {
        "a": ("keep", "relevant by chi2, F"),
        "b": ("drop", "redundant with a"),
        "c": ("keep", "relevant by chi2, F"),
        "d": ("drop", "no evidence of relevance: chi-square adjusted p 0.5, F-test adjusted p 0.7"),
    }


def test_chi2_is_valid_follows_cochran():
    from featuremill.selection.scores import chi2_is_valid

    assert chi2_is_valid({(0, 0): 30, (0, 1): 30, (1, 0): 30, (1, 1): 30})
    # row totals 100 and 4, column totals 98 and 6: expected count of cell (1, 1) = 4 * 6 / 104 < 1
    assert not chi2_is_valid({(0, 0): 95, (0, 1): 5, (1, 0): 3, (1, 1): 1})
