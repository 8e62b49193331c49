"""Preprocessing fit/apply against independent references computed inside each test:
scikit-learn transformers, numpy quantiles (``method="inverted_cdf"``, the definition
``percentile_approx`` follows at full accuracy), pandas group-bys and ``zlib.crc32``.

Conventions under test (documented in docs/preprocessing.md): the standard deviation is the
population one (ddof=0, as scikit-learn); quantiles (median, IQR, winsorisation bounds) are values
of the data (inverted CDF); NaN counts as missing; each step is fitted on the previous step's output.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import pytest

from featuremill.config import Checker, SectionContext
from featuremill.core.errors import PreprocessingError
from featuremill.preprocessing import (
    FittedState,
    apply_preprocessing,
    fit_preprocessing,
    load_fitted_state,
    store_fitted_state,
)
from featuremill.preprocessing.apply import fold_expression
from featuremill.preprocessing.spec import parse_preprocessing_section
from tests.conftest import physical_plan

CONTEXT = SectionContext(file="test.yaml", sources=(), feature_sets=(), env=None, document={"pipeline": "t"})
N = 240


def _spec(body: dict):
    checker = Checker("test.yaml")
    spec = parse_preprocessing_section(checker, body, "preprocessing", CONTEXT)
    assert not [i for i in checker.issues if i.severity == "error"], checker.issues
    return spec


def _errors(body: dict) -> list[str]:
    checker = Checker("test.yaml")
    parse_preprocessing_section(checker, body, "preprocessing", CONTEXT)
    return [str(i) for i in checker.issues]


@pytest.fixture(scope="module")
def data():
    """Training data: numbers with nulls, a NaN and outliers; categories with rare levels and nulls."""
    rng = np.random.default_rng(11)
    a = rng.normal(50, 10, N).round(2)
    a[:4] = [400.0, -300.0, 250.0, 180.0]  # outliers
    a_obj = a.astype(object)
    a_obj[10:22] = None  # missing
    a_obj[30] = float("nan")  # NaN counts as missing too
    b = rng.exponential(3.0, N).round(3)
    n_int = rng.integers(0, 5, N)
    cats = rng.choice(["web", "app", "store", "kiosk", "phone"], N, p=[0.5, 0.3, 0.15, 0.03, 0.02]).astype(object)
    cats[40:46] = None
    seg = rng.choice(["gold", "silver", "bronze", "tin"], N, p=[0.2, 0.3, 0.45, 0.05])
    y = (rng.random(N) < np.where(seg == "gold", 0.8, np.where(seg == "silver", 0.5, 0.2))).astype(int)
    pdf = pd.DataFrame(
        {"id": np.arange(N), "a": a_obj, "b": b, "n": n_int, "cat": cats, "seg": seg, "y": y.astype(float)}
    )
    return pdf


def _frame(spark, pdf: pd.DataFrame):
    schema = "id int, a double, b double, n int, cat string, seg string, y double"
    rows = [
        tuple(
            None
            if (v is None or (isinstance(v, float) and math.isnan(v) and c != "a"))
            else (float(v) if c in ("a", "b", "y") else (int(v) if c in ("id", "n") else str(v)))
            for c, v in zip(pdf.columns, r)
        )
        for r in pdf.itertuples(index=False)
    ]
    return spark.createDataFrame(rows, schema)


def _collect(df, columns) -> pd.DataFrame:
    return pd.DataFrame([r.asDict() for r in df.orderBy("id").select(*columns).collect()])


def _a_clean(pdf: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(pdf["a"], errors="coerce")


def _q(values, q) -> float:
    return float(np.quantile(np.asarray(values, dtype=float), q, method="inverted_cdf"))


# ---- numeric: scaling ------------------------------------------------------------------------


def test_apply_preprocessing_scalers_match_sklearn(spark, data):
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    df = _frame(spark, data)
    spec = _spec(
        {
            "transforms": [
                {"columns": "b", "scale": "standard"},
                {"columns": "n", "scale": "minmax"},
                {"columns": "a", "scale": "robust"},
            ]
        }
    )
    state = fit_preprocessing(df, spec)
    out = _collect(apply_preprocessing(df, state), ["id", "a", "b", "n"])
    expected_b = StandardScaler().fit_transform(data[["b"]].to_numpy(float))[:, 0]
    expected_n = MinMaxScaler().fit_transform(data[["n"]].to_numpy(float))[:, 0]
    np.testing.assert_allclose(out["b"], expected_b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out["n"], expected_n, rtol=1e-9, atol=1e-12)
    # robust: (x - median) / IQR on the non-missing values; missing stays missing (no imputation)
    a = _a_clean(data)
    present = a.dropna().to_numpy()
    median, iqr = _q(present, 0.5), _q(present, 0.75) - _q(present, 0.25)
    expected_a = (a - median) / iqr
    assert out["a"].isna().tolist() == expected_a.isna().tolist()
    np.testing.assert_allclose(out["a"].dropna(), expected_a.dropna(), rtol=1e-9)


def test_apply_preprocessing_impute_then_scale_matches_sklearn_pipeline(spark, data):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = _frame(spark, data)
    state = fit_preprocessing(
        df,
        _spec(
            {"transforms": [{"columns": "a", "impute": {"strategy": "mean", "indicator": True}, "scale": "standard"}]}
        ),
    )
    out = _collect(apply_preprocessing(df, state), ["id", "a", "a__missing"])
    a = _a_clean(data).to_numpy(dtype=float)
    expected = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()).fit_transform(a.reshape(-1, 1))[:, 0]
    np.testing.assert_allclose(out["a"], expected, rtol=1e-9)
    assert out["a__missing"].tolist() == np.isnan(a).astype(int).tolist()
    assert sum(out["a__missing"]) == 13  # 12 nulls + 1 NaN


@pytest.mark.parametrize("strategy", ["median", "mode", "constant"])
def test_apply_preprocessing_imputation_matches_pandas(spark, data, strategy):
    df = _frame(spark, data)
    body = {"strategy": strategy, **({"value": -1} if strategy == "constant" else {})}
    state = fit_preprocessing(
        df, _spec({"transforms": [{"columns": ["a", "cat"] if strategy != "median" else "a", "impute": body}]})
    )
    out = _collect(apply_preprocessing(df, state), ["id", "a", "cat"])
    a = _a_clean(data)
    if strategy == "median":
        fill = _q(a.dropna(), 0.5)  # the lower median: a value of the data
    elif strategy == "mode":
        fill = float(a.round(6).mode().min())  # most frequent, ties to the smallest
    else:
        fill = -1.0
    np.testing.assert_allclose(out["a"], a.fillna(fill), rtol=1e-12)
    if strategy != "median":
        cat_fill = data["cat"].mode().min() if strategy == "mode" else "-1"
        assert out["cat"].tolist() == data["cat"].fillna(cat_fill).tolist()


# ---- numeric: outliers -----------------------------------------------------------------------


def test_apply_preprocessing_outliers_iqr_zscore_winsorize_match_numpy(spark, data):
    from pyspark.sql import functions as F

    df = _frame(spark, data).withColumn("a2", F.col("a")).withColumn("a3", F.col("a"))
    spec = _spec(
        {
            "transforms": [
                {"columns": "a", "outliers": {"method": "iqr", "k": 1.5, "flag": True}},
                {"columns": "a2", "outliers": {"method": "zscore", "k": 2.0, "flag": True}},
                {"columns": "a3", "outliers": {"method": "winsorize", "lower": 0.05, "upper": 0.95, "clip": True}},
                {"columns": "b", "impute": "median", "outliers": {"method": "iqr", "clip": False, "flag": True}},
            ]
        }
    )
    state = fit_preprocessing(df, spec)
    out = pd.DataFrame([r.asDict() for r in apply_preprocessing(df, state).orderBy("id").collect()])
    a = _a_clean(data).to_numpy(dtype=float)
    present = a[~np.isnan(a)]
    q1, q3 = _q(present, 0.25), _q(present, 0.75)
    lo, hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    expected = np.clip(a, lo, hi)
    np.testing.assert_allclose(out["a"], expected, rtol=1e-12)  # NaN stays NaN (null) positions
    assert out["a__outlier"].tolist() == ((a < lo) | (a > hi)).astype(int).tolist()
    mean, std = present.mean(), present.std(ddof=0)
    lo2, hi2 = mean - 2 * std, mean + 2 * std
    np.testing.assert_allclose(out["a2"], np.clip(a, lo2, hi2), rtol=1e-9)
    assert out["a2__outlier"].tolist() == ((a < lo2) | (a > hi2)).astype(int).tolist()
    np.testing.assert_allclose(out["a3"], np.clip(a, _q(present, 0.05), _q(present, 0.95)), rtol=1e-12)
    assert "a3__outlier" not in out.columns
    b = data["b"].to_numpy(float)
    q1b, q3b = _q(b, 0.25), _q(b, 0.75)
    flags = ((b < q1b - 1.5 * (q3b - q1b)) | (b > q3b + 1.5 * (q3b - q1b))).astype(int)
    np.testing.assert_allclose(out["b"], b, rtol=0)  # flag only: values unchanged
    assert out["b__outlier"].tolist() == flags.tolist() and flags.sum() > 0


def test_fit_preprocessing_fits_each_step_on_the_previous_steps_output(spark, data):
    """Scaling after clipping uses the mean/std of the clipped values (scikit-learn Pipeline semantics)."""
    df = _frame(spark, data)
    state = fit_preprocessing(
        df,
        _spec(
            {"transforms": [{"columns": "a", "impute": "median", "outliers": {"method": "iqr"}, "scale": "standard"}]}
        ),
    )
    a = _a_clean(data).to_numpy(dtype=float)
    filled = np.where(np.isnan(a), _q(a[~np.isnan(a)], 0.5), a)
    q1, q3 = _q(filled, 0.25), _q(filled, 0.75)
    clipped = np.clip(filled, q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1))
    out = _collect(apply_preprocessing(df, state), ["id", "a"])
    np.testing.assert_allclose(out["a"], (clipped - clipped.mean()) / clipped.std(ddof=0), rtol=1e-9)


# ---- categorical -----------------------------------------------------------------------------


def test_apply_preprocessing_one_hot_rare_unseen_and_null_buckets(spark, data):
    df = _frame(spark, data)
    state = fit_preprocessing(
        df,
        _spec(
            {
                "transforms": [
                    {"columns": "cat", "encode": {"method": "one_hot", "min_frequency": 0.05, "max_categories": 2}}
                ]
            }
        ),
    )
    counts = data["cat"].value_counts()  # pandas: nulls excluded
    frequent = [v for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n / N >= 0.05][:2]
    assert state.column("cat").encode.levels == (*frequent, None)
    assert state.column("cat").encode.output_columns == (
        "cat__web",
        "cat__app",
        "cat__null",
        "cat__rare",
        "cat__unseen",
    )
    new = spark.createDataFrame([(1, "web"), (2, "kiosk"), (3, "drone"), (4, None), (5, "app")], "id int, cat string")
    out = _collect(apply_preprocessing(new, state), ["id", *state.column("cat").encode.output_columns])
    assert out.drop(columns="id").values.tolist() == [
        [1, 0, 0, 0, 0],  # web: its own column
        [0, 0, 0, 1, 0],  # kiosk: seen at fit but rare
        [0, 0, 0, 0, 1],  # drone: never seen -> unseen
        [0, 0, 1, 0, 0],  # null: nulls were a level at fit time
        [0, 1, 0, 0, 0],
    ]
    train = _collect(apply_preprocessing(df, state), ["id", "cat__web", "cat__rare", "cat__null"])
    assert train["cat__web"].tolist() == (data["cat"] == "web").astype(int).tolist()
    assert train["cat__rare"].tolist() == data["cat"].isin(set(counts.index) - set(frequent)).astype(int).tolist()
    assert train["cat__null"].tolist() == data["cat"].isna().astype(int).tolist()


def test_apply_preprocessing_ordinal_orders_and_hashing_match_references(spark, data):
    df = _frame(spark, data)
    state = fit_preprocessing(
        df,
        _spec(
            {
                "transforms": [
                    {"columns": "cat", "impute": {"strategy": "constant", "value": "none"}, "encode": "ordinal"},
                    {"columns": "seg", "encode": {"method": "ordinal", "order": ["tin", "bronze", "silver", "gold"]}},
                    {"columns": "n", "encode": {"method": "hashing", "buckets": 7}},
                ]
            }
        ),
    )
    out = _collect(apply_preprocessing(df, state), ["id", "cat", "seg", "n"])
    filled = data["cat"].fillna("none")
    by_frequency = [v for v, _ in sorted(filled.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))]
    assert out["cat"].tolist() == [by_frequency.index(v) for v in filled]
    assert out["seg"].tolist() == [["tin", "bronze", "silver", "gold"].index(v) for v in data["seg"]]
    assert out["n"].tolist() == [zlib.crc32(str(v).encode()) % 7 for v in data["n"]]
    new = spark.createDataFrame([(1, "unknown-cat", "platinum", 3)], "id int, cat string, seg string, n int")
    row = apply_preprocessing(new, state).first()
    assert (row["cat"], row["seg"], row["n"]) == (-1, -1, zlib.crc32(b"3") % 7)


def test_apply_preprocessing_target_encoding_serving_matches_sklearn(spark, data):
    from sklearn.preprocessing import TargetEncoder

    df = _frame(spark, data)
    state = fit_preprocessing(
        df,
        _spec(
            {
                "key": "id",
                "label": "y",
                "transforms": [{"columns": "seg", "encode": {"method": "target", "smoothing": 5}}],
            }
        ),
    )
    out = _collect(apply_preprocessing(df, state, mode="serving"), ["id", "seg"])
    encoder = TargetEncoder(smooth=5.0, target_type="continuous").fit(data[["seg"]], data["y"])
    np.testing.assert_allclose(out["seg"], encoder.transform(data[["seg"]])[:, 0], rtol=1e-9)
    unseen = apply_preprocessing(spark.createDataFrame([(1, "zinc")], "id int, seg string"), state).first()["seg"]
    assert unseen == pytest.approx(data["y"].mean())


def _oof_reference(pdf: pd.DataFrame, folds: np.ndarray, k: int, a: float) -> np.ndarray:
    out = np.empty(len(pdf))
    for f in range(k):
        other = pdf[folds != f]
        prior = other["y"].mean()
        stats = other.groupby("seg")["y"].agg(["sum", "count"])
        rows = folds == f
        s = pdf.loc[rows, "seg"].map(stats["sum"]).fillna(0.0)
        n = pdf.loc[rows, "seg"].map(stats["count"]).fillna(0.0)
        out[rows] = (s + a * prior) / (n + a)
    return out


@pytest.mark.slow  # fits and applies out-of-fold encodings
def test_apply_preprocessing_target_encoding_is_out_of_fold(spark, data):
    df = _frame(spark, data)
    spec = _spec(
        {
            "key": "id",
            "label": "y",
            "folds": 4,
            "transforms": [{"columns": "seg", "encode": {"method": "target", "smoothing": 3}}],
        }
    )
    state = fit_preprocessing(df, spec)
    folds = np.array(
        [r["f"] for r in df.orderBy("id").select(fold_expression(["id"], folds=4, seed=42).alias("f")).collect()]
    )
    assert sorted(set(folds)) == [0, 1, 2, 3]
    out = _collect(apply_preprocessing(df, state, mode="training"), ["id", "seg"])
    np.testing.assert_allclose(out["seg"], _oof_reference(data, folds, 4, 3.0), rtol=1e-9)

    # A row's own label never reaches its own encoding: flip one label, refit, compare.
    flipped = data.copy()
    flipped.loc[7, "y"] = 1.0 - flipped.loc[7, "y"]
    state2 = fit_preprocessing(_frame(spark, flipped), spec)
    out2 = _collect(apply_preprocessing(_frame(spark, flipped), state2, mode="training"), ["id", "seg"])
    assert out2.loc[7, "seg"] == out.loc[7, "seg"]
    same_segment_other_fold = (data["seg"] == data.loc[7, "seg"]) & (folds != folds[7])
    assert not np.allclose(out2.loc[same_segment_other_fold, "seg"], out.loc[same_segment_other_fold, "seg"])
    # ...whereas the serving (full-data) encoding of that row does move with its label
    serving = [
        apply_preprocessing(_frame(spark, d), s).orderBy("id").collect()[7]["seg"]
        for d, s in ((data, state), (flipped, state2))
    ]
    assert serving[0] != serving[1]


# ---- stored state ----------------------------------------------------------------------------


@pytest.mark.slow  # three fits and Delta writes of fitted states
def test_stored_state_applied_to_new_data_gives_fit_time_numbers(spark, data, tmp_path):
    df = _frame(spark, data)
    spec = _spec(
        {
            "key": "id",
            "label": "y",
            "transforms": [
                {
                    "columns": "a",
                    "impute": {"strategy": "median", "indicator": True},
                    "outliers": {"method": "iqr"},
                    "scale": "standard",
                },
                {"columns": "cat", "encode": {"method": "one_hot", "max_categories": 3}},
                {"columns": "seg", "encode": "target"},
            ],
        }
    )
    state = fit_preprocessing(df, spec)
    at_fit = _collect(apply_preprocessing(df, state), ["id", "a", "a__missing", "cat__web", "cat__rare", "seg"])
    path = str(tmp_path / "states")
    stored = store_fitted_state(spark, path, state, root=str(tmp_path))
    assert stored.version == 1
    assert store_fitted_state(spark, path, state, root=str(tmp_path)).version == 1  # identical state: not stored again
    loaded = load_fitted_state(spark, path, state.name)
    assert loaded == stored and FittedState.from_json(stored.to_json()) == stored
    # new data: a copy of 25 training rows plus rows the fit never saw
    reused = data.iloc[:25].copy()
    new_rows = pd.DataFrame(
        {
            "id": [1000, 1001],
            "a": [None, 1e6],
            "b": [1.0, 2.0],
            "n": [1, 2],
            "cat": ["drone", "web"],
            "seg": ["gold", "zinc"],
            "y": [0.0, 1.0],
        }
    ).astype(object)
    later = _collect(
        apply_preprocessing(_frame(spark, pd.concat([reused, new_rows], ignore_index=True)), loaded),
        ["id", "a", "a__missing", "cat__web", "cat__rare", "seg"],
    )
    pd.testing.assert_frame_equal(later.iloc[:25].reset_index(drop=True), at_fit.iloc[:25].reset_index(drop=True))
    a = _a_clean(data).to_numpy(dtype=float)
    filled = np.where(np.isnan(a), _q(a[~np.isnan(a)], 0.5), a)
    q1, q3 = _q(filled, 0.25), _q(filled, 0.75)
    clipped = np.clip(filled, q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1))
    expect = [
        (_q(a[~np.isnan(a)], 0.5) - clipped.mean()) / clipped.std(ddof=0),
        (q3 + 1.5 * (q3 - q1) - clipped.mean()) / clipped.std(ddof=0),
    ]
    np.testing.assert_allclose(later["a"].iloc[25:], expect, rtol=1e-9)
    assert later["seg"].iloc[26] == pytest.approx(data["y"].mean())  # unseen segment -> prior
    # a different fit of the same name is the next version; older versions stay loadable
    other = store_fitted_state(
        spark,
        path,
        fit_preprocessing(df, _spec({"transforms": [{"columns": "b", "scale": "minmax"}]})),
        root=str(tmp_path),
    )
    assert other.version == 2
    assert load_fitted_state(spark, path, "t", version=1) == stored
    assert load_fitted_state(spark, path, "t").column("b").scale.method == "minmax"
    with pytest.raises(PreprocessingError, match="has no version 7"):
        load_fitted_state(spark, path, "t", version=7)


def test_fit_preprocessing_all_null_columns_as_documented(spark):
    df = spark.createDataFrame([(i, None, None, float(i)) for i in range(6)], "id int, x double, s string, z double")
    state = fit_preprocessing(
        df,
        _spec(
            {
                "transforms": [
                    {"columns": "x", "impute": "mean", "scale": "standard"},
                    {"columns": "s", "encode": "one_hot"},
                    {"columns": "z", "outliers": {"method": "zscore"}},
                ]
            }
        ),
    )
    assert state.column("x").impute.fill == 0.0
    assert (state.column("x").scale.center, state.column("x").scale.scale) == (0.0, 1.0)
    assert state.column("s").encode.levels == (None,)
    assert any("no non-null values" in w for w in state.warnings)
    new = spark.createDataFrame([(1, None, None, 1.0), (2, 5.0, "a", 2.0)], "id int, x double, s string, z double")
    rows = apply_preprocessing(new, state).orderBy("id").collect()
    assert [(r["x"], r["s__null"], r["s__unseen"]) for r in rows] == [(0.0, 1, 0), (5.0, 0, 1)]


@pytest.mark.slow  # two fits, one over many columns
def test_fit_preprocessing_pass_count_does_not_grow_with_columns(classic_spark):
    """Fitting 3 or 30 columns runs the same number of Spark jobs (wide aggs, one stacked group-by)."""
    spark = classic_spark  # counts jobs with the SparkContext's status tracker

    def jobs(width: int) -> int:
        cols = ", ".join(f"x{i} double, c{i} string" for i in range(width))
        rows = [
            tuple(v for i in range(width) for v in (float((r * (i + 3)) % 17), f"v{(r + i) % 4}")) for r in range(50)
        ]
        df = spark.createDataFrame(rows, cols).localCheckpoint(eager=True)
        spec = _spec(
            {
                "transforms": [
                    {"match": "^x", "impute": "median", "outliers": {"method": "iqr"}, "scale": "standard"},
                    {"match": "^c", "encode": {"method": "one_hot", "max_categories": 2}},
                ]
            }
        )
        sc = spark.sparkContext
        group = f"fit-{width}"
        sc.setJobGroup(group, group)
        try:
            fit_preprocessing(df, spec)
        finally:
            sc.setLocalProperty("spark.jobGroup.id", None)
        return len(sc.statusTracker().getJobIdsForGroup(group))

    small, large = jobs(3), jobs(30)
    assert small == large, (small, large)


# ---- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            {"transforms": [{"columns": "a", "scale": "zscore"}]},
            "scale.method: 'zscore' is not one of standard, minmax, robust",
        ),
        (
            {"transforms": [{"columns": "a", "match": "b", "scale": "standard"}]},
            "give exactly one of columns, match or feature_set",
        ),
        ({"transforms": [{"columns": "a", "encode": "target"}]}, "preprocessing.key: is required with target encoding"),
        ({"transforms": [{"columns": "a", "encode": "one_hot", "scale": "standard"}]}, "cannot be combined"),
        (
            {"transforms": [{"columns": "a", "impute": {"strategy": "constant"}}]},
            "constant imputation needs a scalar value",
        ),
        ({"transforms": [{"columns": "a", "outliers": {"method": "iqr", "lower": 0.1}}]}, "only winsorize takes lower"),
        (
            {"transforms": [{"columns": "a", "outliers": {"method": "winsorize", "lower": 0.9, "upper": 0.1}}]},
            "must be below upper",
        ),
        (
            {"transforms": [{"columns": "a", "encode": {"method": "hashing", "smoothing": 2}}]},
            "encoding 'hashing' takes no smoothing",
        ),
        ({"transforms": [{"columns": "a"}]}, "declares no step"),
        ({"transforms": [{"columns": "a", "scale": "minmax"}, {"columns": ["a"], "impute": "mean"}]}, "already listed"),
        ({"transforms": [{"feature_set": "nope", "scale": "minmax"}]}, "feature set 'nope' is not declared"),
    ],
)
def test_parse_preprocessing_section_rejects(body, expected):
    assert any(expected in e for e in _errors(body)), _errors(body)


def test_fit_preprocessing_rejects_wrong_column_types_and_missing_columns(spark):
    df = spark.createDataFrame([(1, "x", 1.0)], "id int, s string, y double")
    with pytest.raises(PreprocessingError, match="column 's' is string; outliers, scale"):
        fit_preprocessing(df, _spec({"transforms": [{"columns": "s", "scale": "standard"}]}))
    with pytest.raises(PreprocessingError, match="column 'nope' is not in the training data"):
        fit_preprocessing(df, _spec({"transforms": [{"columns": "nope", "scale": "standard"}]}))
    labelled = spark.createDataFrame([(1, "x", "yes")], "id int, s string, lab string")
    with pytest.raises(PreprocessingError, match="label column 'lab' is string"):
        fit_preprocessing(
            labelled, _spec({"key": "id", "transforms": [{"columns": "s", "encode": "target"}]}), label="lab"
        )


@pytest.mark.slow  # fits and applies twice
def test_apply_preprocessing_large_lookups_are_broadcast_joined_with_same_values(spark, data, monkeypatch):
    from featuremill.preprocessing import apply as apply_module

    df = _frame(spark, data)
    state = fit_preprocessing(
        df,
        _spec(
            {
                "key": "id",
                "label": "y",
                "transforms": [
                    {"columns": "cat", "encode": {"method": "one_hot", "max_categories": 2}},
                    {"columns": "n", "encode": "ordinal"},
                    {"columns": "seg", "encode": "target"},
                ],
            }
        ),
    )
    inline = apply_preprocessing(df, state, mode="training")
    monkeypatch.setattr(apply_module, "MAP_LITERAL_LIMIT", 1)
    joined = apply_preprocessing(df, state, mode="training")
    assert "BroadcastHashJoin" in physical_plan(joined)
    assert joined.columns == inline.columns
    pd.testing.assert_frame_equal(_collect(joined, joined.columns), _collect(inline, inline.columns))


def test_content_fingerprint_ignores_order_and_partitioning_not_values(spark):
    from pyspark.sql import functions as F

    from featuremill.core.fingerprint import content_fingerprint, content_hash_aggregate

    def fingerprint(df):
        return content_fingerprint(df.agg(content_hash_aggregate(df, "h")).first()["h"])

    rows = [(i, f"v{i % 3}", float(i) / 7, None if i % 5 else 1) for i in range(50)]
    schema = "id int, s string, x double, m int"
    base = fingerprint(spark.createDataFrame(rows, schema))
    assert base.startswith("xxh64sum:") and base != "xxh64sum:0"
    # same rows, other order and partitioning: same fingerprint
    assert fingerprint(spark.createDataFrame(list(reversed(rows)), schema).repartition(3)) == base
    # one value changed in the last bits: different
    changed = rows[:10] + [(10, "v1", 10 / 7 + 1e-9, 1)] + rows[11:]
    assert fingerprint(spark.createDataFrame(changed, schema)) != base
    # a repeated row counts (a sum, not an XOR of row hashes)
    assert fingerprint(spark.createDataFrame(rows + rows[:2] + rows[:2], schema)) != base
    # a null moving to another column is a different row (Spark's hash alone skips nulls)
    pair = "a int, b int"
    assert fingerprint(spark.createDataFrame([(None, 1)], pair)) != fingerprint(
        spark.createDataFrame([(1, None)], pair)
    )
    # map columns (which Spark cannot hash) are fingerprinted through their JSON text
    with_map = spark.createDataFrame(rows, schema).withColumn("tags", F.create_map(F.col("s"), F.col("id")))
    other_map = spark.createDataFrame(rows, schema).withColumn("tags", F.create_map(F.col("s"), F.col("id") + 1))
    assert fingerprint(with_map) != fingerprint(other_map)
