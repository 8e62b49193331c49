"""Rank and filter features of a training table, in a number of Spark passes independent of the
number of features.

Passes (each is one Spark action; all features of a kind share it):

1. **profile**: one wide ``agg``: per feature non-null count, ``approx_count_distinct``, mean,
   sample std, min, max and a ``percentile_approx`` grid (numeric); label count and quantiles;
2. **value counts**: one stacked ``groupBy(feature, value)``: exact counts of low-cardinality
   values (and, for high-cardinality numerics, of the values on the quantile grid, which include
   every value holding more than 1/20 of the rows); a window keeps the top values per feature;
   gives the frequency ratio and % unique (near-zero variance), categorical levels, label classes;
3. **contingency**: one stacked ``groupBy(feature, bin, label)``: numeric features in quantile bins,
   categoricals by level, nulls in their own bin; mutual information and Pearson's chi-square
   test of independence are computed on the driver from these counts
   (``scores.mutual_information``, ``core.stats.chi2_independence``: the statistic, degrees of
   freedom and p-value MLlib's ``ChiSquareTest`` gives, without its second pass over the rows);
4. **MLlib**: the prepared vectors are persisted once, then ``ANOVATest`` or ``FValueTest``
   (numeric features), ``Correlation`` (one d x d matrix) and a
   ``RandomForestClassifier``/``Regressor`` on a sample;
5. **permutation importance** on a held-out sample: every (feature, repeat) permutation is a copy
   of the held-out rows with that feature's values cyclically shifted, all copies scored by the
   forest in one ``transform`` + ``groupBy``;
6. optional **PCA** (MLlib) on the standardised numeric features.

Nothing but aggregates reaches the driver. Details of each score and of the keep/drop rules are
in ``docs/preprocessing.md#feature-selection``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from featuremill.core.columns import is_internal, reserved_name_message, user_columns
from featuremill.core.errors import SelectionError
from featuremill.core.fingerprint import content_fingerprint, content_hash_aggregate
from featuremill.core.progress import stage
from featuremill.core.report_html import json_safe
from featuremill.core.session import is_connect
from featuremill.core.sql import col
from featuremill.core.stats import chi2_independence, chi2_sf
from featuremill.selection.scores import (
    FeatureScore,
    average_ranks,
    benjamini_hochberg,
    chi2_is_valid,
    decide,
    mutual_information,
    near_zero_variance,
    redundant_pairs,
)
from featuremill.selection.spec import SelectionSpec

log = logging.getLogger(__name__)

NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double", "boolean")
EXACT_DISTINCT_LIMIT = 1000  # below this (approximate) count, values are counted exactly
GRID_STEPS = 20  # the 1/20 quantile grid: candidate frequent values for NZV
MIN_CLASS_ROWS = 10  # held-out rows per class needed for permutation importance
SCORE_METHODS = ("mutual_information", "chi2_score", "f_score", "rf_importance", "permutation_importance")


@dataclass
class SelectionResult:
    """What :func:`select_features` measured and decided (JSON-serialisable via :meth:`to_dict`)."""

    label: str
    task: str
    rows: int
    labelled_rows: int
    classes: list[str]
    features: list[FeatureScore]
    data_fingerprint: str = ""
    correlation_names: list[str] = field(default_factory=list)
    correlation: list[list[float | None]] = field(default_factory=list)
    redundant: list[dict[str, Any]] = field(default_factory=list)
    baseline_loss: float | None = None
    loss_name: str = ""
    pca_explained_variance: list[float] | None = None
    pca_components_for_variance: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def selected(self) -> list[str]:
        return [f.name for f in sorted(self.features, key=lambda f: f.rank or 0) if f.decision == "keep"]

    def feature(self, name: str) -> FeatureScore:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["selected"] = self.selected
        return json_safe(body)


def _finite(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _clean(name: str, spark_type: str):
    from pyspark.sql import functions as F

    c = col(name)
    if spark_type in ("float", "double"):
        return F.when(F.isnan(c), F.lit(None).cast("double")).otherwise(c.cast("double"))
    return c.cast("double")


def _bin_expression(x, edges: Sequence[float], null_bin: int):
    """Bin index = number of inner edges strictly below x (numpy ``searchsorted(edges, x, 'left')``)."""
    from pyspark.sql import functions as F

    if not edges:
        index = F.lit(0)
    else:
        index = sum(((x > F.lit(float(e))).cast("int") for e in edges[1:]), (x > F.lit(float(edges[0]))).cast("int"))
    return F.when(x.isNull(), F.lit(null_bin)).otherwise(index).cast("int")


def quantile_edges(quantile_values: Sequence[float | None], bins: int, grid: Sequence[float]) -> list[float]:
    """Inner bin edges: the distinct quantiles at 1/bins, 2/bins, ... (bins-1)/bins."""
    wanted = {round(j / bins, 10) for j in range(1, bins)}
    values = [v for q, v in zip(grid, quantile_values) if round(q, 10) in wanted and v is not None]
    return sorted(set(values))


def _grid(bins: int) -> list[float]:
    return sorted(
        {round(j / GRID_STEPS, 10) for j in range(GRID_STEPS + 1)} | {round(j / bins, 10) for j in range(bins + 1)}
    )


def _level_map(levels: Sequence[str]):
    from pyspark.sql import functions as F

    if not levels:
        return None
    return F.map_from_arrays(F.array(*[F.lit(v) for v in levels]), F.array(*[F.lit(i) for i in range(len(levels))]))


def _level_index(value, levels: Sequence[str]):
    """0..k-1 for the kept levels, k for any other value, k+1 for null."""
    from pyspark.sql import functions as F

    k = len(levels)
    lookup = _level_map(levels)
    found = F.try_element_at(lookup, value) if lookup is not None else F.lit(None).cast("int")
    return F.when(value.isNull(), F.lit(k + 1)).otherwise(F.coalesce(found, F.lit(k))).cast("int")


@dataclass
class _Candidates:
    """The label and the candidate features of one run: Spark types, kinds and the scores to fill.

    ``idx`` numbers the numeric then the categorical features; the stacked passes tag rows with it.
    """

    label: str
    label_type: str
    types: dict[str, str]
    scores: list[FeatureScore]
    numeric: list[str]
    categorical: list[str]
    by_name: dict[str, FeatureScore] = field(init=False)
    idx: dict[str, int] = field(init=False)
    label_numeric: bool = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {s.name: s for s in self.scores}
        self.idx = {c: i for i, c in enumerate(self.numeric + self.categorical)}
        self.label_numeric = self.label_type in NUMERIC_TYPES or self.label_type.startswith("decimal")


@dataclass
class _Prepared:
    """The labelled rows as model inputs: ``label``, ``label_bin``, ``x<i>`` (imputed numeric),
    ``b<i>`` (numeric bin) and ``k<i>`` (categorical level index), and which features they hold."""

    frame: Any
    usable_numeric: list[str]
    usable_categorical: list[str]
    n_label_bins: int
    binned: list[tuple[str, str]]  # (feature, bin column) for the contingency pass and chi-square
    num_cols: list[str]
    model_cols: list[str]


def select_features(
    df, spec: SelectionSpec, *, label: str | None = None, features: Sequence[str] | None = None
) -> SelectionResult:
    """Score every candidate feature of ``df`` against ``label`` and decide which to keep.

    Candidates: ``features`` (or ``spec.features``), else every column but the label,
    ``spec.exclude`` and the internal columns (:func:`featuremill.core.columns.is_internal`, never
    candidates: naming one as a feature or the label is a :class:`SelectionError`). Numeric (and
    boolean) columns are scored as numbers, string columns as categories; other types are
    reported as unsupported and dropped. Rows with a null label are counted but not used for
    relevance scores.
    """
    from pyspark import StorageLevel

    cand = _candidates(df, spec, label=label or spec.label, features=features)
    grid = _grid(spec.bins)
    y_raw, y_class = _label_columns(cand)
    profile = _profile_pass(df, cand, grid=grid, y_raw=y_raw)
    rows, labelled = int(profile["rows"]), int(profile["y_n"])
    data_fingerprint = content_fingerprint(profile["content_hash"])
    if labelled == 0:
        raise SelectionError(f"label column {cand.label!r} has no non-null values")
    task = _task(spec, cand, label_distinct=int(profile["y_d"]))
    quantiles = _read_profile(cand, profile, grid=grid)
    top, exact_distinct = _value_count_pass(df, cand, spec, task=task, quantiles=quantiles, y_class=y_class)
    _near_zero_variance(cand, spec, top=top, exact_distinct=exact_distinct)
    classes = _label_classes(cand, spec, task=task, top=top, exact_distinct=exact_distinct)
    prep = _prepare(
        df, cand, spec, task=task, classes=classes, top=top, quantiles=quantiles, profile=profile, grid=grid
    )
    _contingency_pass(prep, cand)
    assembled = _assemble(prep).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # Fill the cache in one job over every partition: the MLlib calls below start with a
        # single-partition ``first()``, which would compute one partition while the other cores wait.
        with stage("selection: model inputs (cached)"):
            total = assembled.count()
        _f_test(assembled, prep, cand, task=task)
        corr_names, matrix = _correlation(assembled, prep, cand, spec, task=task, classes=classes)
        baseline, loss_name = _model_importances(
            assembled,
            spec,
            task,
            classes,
            prep.model_cols,
            prep.usable_numeric + prep.usable_categorical,
            cand.by_name,
            total=total,
        )
        pca_var, pca_k = _pca(assembled, prep, spec)
    finally:
        assembled.unpersist()
    pairs = _rank_and_decide(cand, spec, corr_names=corr_names, matrix=matrix, baseline=baseline)
    return SelectionResult(
        label=cand.label,
        task=task,
        rows=rows,
        labelled_rows=labelled,
        classes=classes,
        features=cand.scores,
        data_fingerprint=data_fingerprint,
        correlation_names=corr_names,
        correlation=matrix,
        redundant=[{"a": p.a, "b": p.b, "correlation": p.rho} for p in pairs],
        baseline_loss=baseline,
        loss_name=loss_name,
        pca_explained_variance=pca_var,
        pca_components_for_variance=pca_k,
        settings=json_safe(dataclasses.asdict(spec)) | {"label_bins": prep.n_label_bins},
    )


def _candidates(df, spec: SelectionSpec, *, label: str | None, features: Sequence[str] | None) -> _Candidates:
    """Check the label and the candidate columns, and sort the candidates by kind."""
    if not label:
        raise SelectionError("no label column: pass --label or set selection.label")
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    if is_internal(label):
        raise SelectionError(f"label {reserved_name_message(label)}")
    if label not in types:
        shown = ", ".join(user_columns(types))
        raise SelectionError(f"label column {label!r} is not in the training data (columns: {shown})")
    # internal (_-prefixed) columns are featuremill's bookkeeping, never candidates
    default = [c for c in user_columns(df.columns) if c != label and c not in spec.exclude]
    names = list(features or spec.features or default)
    internal = [c for c in names if is_internal(c)]
    if internal:
        raise SelectionError(f"feature {reserved_name_message(internal[0])}")
    missing = [c for c in names if c not in types]
    if missing:
        raise SelectionError(f"feature column(s) {', '.join(missing)} are not in the training data")
    if label in names:
        raise SelectionError(f"the label {label!r} cannot also be a feature")
    scores: list[FeatureScore] = []
    numeric: list[str] = []
    categorical: list[str] = []
    for c in names:
        t = types[c]
        if t in NUMERIC_TYPES or t.startswith("decimal"):
            numeric.append(c)
            scores.append(FeatureScore(c, "numeric", t))
        elif t == "string":
            categorical.append(c)
            scores.append(FeatureScore(c, "categorical", t))
        else:
            reason = f"unsupported type {t} (encode it as a number or a string)"
            scores.append(FeatureScore(c, "unsupported", t, decision="drop", reason=reason))
    if not numeric and not categorical:
        raise SelectionError("no numeric or string feature to select from")
    return _Candidates(label, types[label], types, scores, numeric, categorical)


def _label_columns(cand: _Candidates):
    """The label as a value (numbers cleaned of NaN/inf) and as a class name (string)."""
    from pyspark.sql import functions as F

    label = cand.label
    y_raw = _clean(label, cand.label_type) if cand.label_numeric else col(label).cast("string")
    # classes keep the label's own spelling (1, not 1.0); NaN is a missing label
    y_class = F.when(y_raw.isNull(), F.lit(None).cast("string")).otherwise(col(label).cast("string"))
    return y_raw, y_class


def _profile_pass(df, cand: _Candidates, *, grid: Sequence[float], y_raw):
    """Pass 1 (one ``agg``): rows, content hash, label count/distinct/quantiles, per-feature stats."""
    from pyspark.sql import functions as F

    aggs = [
        F.count(F.lit(1)).alias("rows"),
        content_hash_aggregate(df, "content_hash"),
        F.count(y_raw).alias("y_n"),
        F.approx_count_distinct(y_raw).alias("y_d"),
    ]
    if cand.label_numeric:
        aggs.append(F.percentile_approx(y_raw, grid, 10_000).alias("y_q"))
    for c in cand.numeric:
        x = _clean(c, cand.types[c])
        i = cand.idx[c]
        aggs += [
            F.count(x).alias(f"n{i}"),
            F.approx_count_distinct(x).alias(f"d{i}"),
            F.avg(x).alias(f"m{i}"),
            F.stddev_samp(x).alias(f"s{i}"),
            F.percentile_approx(x, grid, 10_000).alias(f"q{i}"),
        ]
    for c in cand.categorical:
        i = cand.idx[c]
        aggs += [F.count(col(c)).alias(f"n{i}"), F.approx_count_distinct(col(c)).alias(f"d{i}")]
    with stage("selection: profile pass"):
        return df.agg(*aggs).first()


def _task(spec: SelectionSpec, cand: _Candidates, *, label_distinct: int) -> str:
    """The task: as configured, or with ``auto`` classification for strings and small integer labels."""
    task = spec.task
    if task == "auto":
        integral = cand.label_type in ("tinyint", "smallint", "int", "bigint", "boolean")
        task = "classification" if (not cand.label_numeric or (integral and label_distinct <= 20)) else "regression"
    if task == "regression" and not cand.label_numeric:
        raise SelectionError(f"task regression needs a numeric label; {cand.label!r} is {cand.label_type}")
    return task


def _read_profile(cand: _Candidates, profile, *, grid: Sequence[float]) -> dict[str, list]:
    """Fill counts, distinct counts, mean, std and CV from pass 1; returns each numeric's quantile grid."""
    quantiles = {}
    for c in cand.numeric:
        i = cand.idx[c]
        f = cand.by_name[c]
        f.non_null = int(profile[f"n{i}"])
        f.distinct = int(profile[f"d{i}"])
        f.mean, f.std = _finite(profile[f"m{i}"]), _finite(profile[f"s{i}"])
        if f.mean and f.std is not None:
            f.cv = abs(f.std / f.mean)
        quantiles[c] = list(profile[f"q{i}"] or [None] * len(grid))
    for c in cand.categorical:
        f = cand.by_name[c]
        f.non_null, f.distinct = int(profile[f"n{cand.idx[c]}"]), int(profile[f"d{cand.idx[c]}"])
    return quantiles


def _value_count_pass(df, cand: _Candidates, spec: SelectionSpec, *, task: str, quantiles, y_class):
    """Pass 2 (one stacked ``groupBy``): the top values per feature (and label classes, tagged -1)
    and each one's exact distinct count; returns ``(top, exact_distinct)`` keyed by ``idx``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    structs = []
    for c in cand.numeric:
        x = _clean(c, cand.types[c])
        f = cand.by_name[c]
        if f.distinct <= EXACT_DISTINCT_LIMIT:
            v = x.cast("string")
        else:
            candidates = sorted({q for q in quantiles[c] if q is not None})
            f.distinct_exact = False
            v = F.when(x.isin(*candidates), x.cast("string")) if candidates else F.lit(None).cast("string")
        structs.append(F.struct(F.lit(cand.idx[c]).alias("c"), v.alias("v")))
    for c in cand.categorical:
        structs.append(F.struct(F.lit(cand.idx[c]).alias("c"), col(c).alias("v")))
    if task == "classification":
        structs.append(F.struct(F.lit(-1).alias("c"), y_class.alias("v")))
    keep_top = max(spec.max_levels, spec.max_classes + 1, 2)
    counts = df.select(F.inline(F.array(*structs))).where(F.col("v").isNotNull()).groupBy("c", "v").count()
    per_feature = Window.partitionBy("c")
    counts = (
        counts.withColumn("rk", F.row_number().over(per_feature.orderBy(F.col("count").desc(), F.col("v"))))
        .withColumn("distinct", F.count(F.lit(1)).over(per_feature))
        .where(F.col("rk") <= keep_top)
    )
    top: dict[int, list[tuple[str, int]]] = {}
    exact_distinct: dict[int, int] = {}
    with stage("selection: value-count pass"):
        counted_rows = counts.collect()
    for r in counted_rows:
        top.setdefault(r["c"], []).append((r["v"], int(r["count"])))
        exact_distinct[r["c"]] = int(r["distinct"])
    for vs in top.values():
        vs.sort(key=lambda t: (-t[1], t[0]))
    return top, exact_distinct


def _near_zero_variance(cand: _Candidates, spec: SelectionSpec, *, top, exact_distinct) -> None:
    """Fill distinct counts, frequency ratio and % unique from pass 2; note near-zero variance."""
    for f in cand.scores:
        if f.kind == "unsupported":
            continue
        i = cand.idx[f.name]
        if f.distinct_exact:
            f.distinct = exact_distinct.get(i, 0)
        f.distinct = min(f.distinct, f.non_null)
        ratio, unique, flagged = near_zero_variance(
            [n for _, n in top.get(i, [])],
            f.distinct,
            f.non_null,
            freq_ratio_cut=spec.nzv_freq_ratio,
            unique_percent_cut=spec.nzv_unique_percent,
        )
        f.freq_ratio, f.unique_percent = ratio, unique
        if flagged:
            f.notes.append("near_zero_variance")


def _label_classes(cand: _Candidates, spec: SelectionSpec, *, task: str, top, exact_distinct) -> list[str]:
    """The label's classes in order (numerically for a numeric label); none for regression."""
    if task != "classification":
        return []
    if exact_distinct.get(-1, 0) > spec.max_classes:
        raise SelectionError(
            f"label {cand.label!r} has {exact_distinct[-1]} classes, above max_classes "
            f"{spec.max_classes}; set selection.task: regression or raise max_classes"
        )
    classes = [v for v, _ in top.get(-1, [])]
    classes.sort(key=lambda v: (float(v), v) if cand.label_numeric else (0.0, v))
    if len(classes) < 2:
        raise SelectionError(f"label {cand.label!r} has a single class; nothing to select against")
    return classes


def _prepare(
    df, cand: _Candidates, spec: SelectionSpec, *, task: str, classes, top, quantiles, profile, grid
) -> _Prepared:
    """The labelled rows with label index/bin, imputed numerics, numeric bins, categorical indices."""
    from pyspark.sql import functions as F

    y_raw, y_class = _label_columns(cand)
    if task == "classification":
        y = _level_index(y_class, classes).cast("double")
        y_bin = y
        n_label_bins = len(classes)
    else:
        label_edges = quantile_edges(list(profile["y_q"] or []), spec.bins, grid)
        y = y_raw
        y_bin = _bin_expression(y_raw, label_edges, len(label_edges) + 1).cast("double")
        n_label_bins = len(label_edges) + 1
    idx = cand.idx
    usable_numeric = [c for c in cand.numeric if cand.by_name[c].non_null > 0]
    usable_categorical = [c for c in cand.categorical if cand.by_name[c].non_null > 0]
    edges = {c: quantile_edges(quantiles[c], spec.bins, grid) for c in usable_numeric}
    prepared_cols = [y.alias("label"), y_bin.alias("label_bin")]
    for c in usable_numeric:
        x = _clean(c, cand.types[c])
        mean = cand.by_name[c].mean or 0.0
        prepared_cols.append(F.coalesce(x, F.lit(float(mean))).alias(f"x{idx[c]}"))
        prepared_cols.append(_bin_expression(x, edges[c], len(edges[c]) + 1).alias(f"b{idx[c]}"))
    for c in usable_categorical:
        levels = [v for v, _ in top.get(idx[c], [])][: spec.max_levels]
        meta = {"ml_attr": {"type": "nominal", "num_vals": len(levels) + 2, "name": f"k{idx[c]}"}}
        prepared_cols.append(_level_index(col(c), levels).cast("double").alias(f"k{idx[c]}", metadata=meta))
    num_cols = [f"x{idx[c]}" for c in usable_numeric]
    return _Prepared(
        frame=df.where(y_raw.isNotNull()).select(*prepared_cols),
        usable_numeric=usable_numeric,
        usable_categorical=usable_categorical,
        n_label_bins=n_label_bins,
        binned=[(c, f"b{idx[c]}") for c in usable_numeric] + [(c, f"k{idx[c]}") for c in usable_categorical],
        num_cols=num_cols,
        model_cols=num_cols + [f"k{idx[c]}" for c in usable_categorical],
    )


def _contingency_pass(prep: _Prepared, cand: _Candidates) -> None:
    """Pass 3 (one stacked ``groupBy(feature, bin, label)``): mutual information and chi-square validity."""
    from pyspark.sql import functions as F

    if not prep.binned:
        return
    idx = cand.idx
    stacked = F.array(*[F.struct(F.lit(idx[c]).alias("c"), F.col(b).cast("int").alias("b")) for c, b in prep.binned])
    with stage("selection: contingency pass"):
        cells = (
            prep.frame.select(F.col("label_bin").cast("int").alias("y"), F.inline(stacked))
            .groupBy("c", "b", "y")
            .count()
            .collect()
        )
    tables: dict[int, dict] = {}
    for r in cells:
        tables.setdefault(r["c"], {})[(r["b"], r["y"])] = int(r["count"])
    # every row is in every feature's table: the label classes of the data, as MLlib's test takes them
    classes = {y for table in tables.values() for _, y in table}
    for c, _ in prep.binned:
        table = tables.get(idx[c], {})
        score = cand.by_name[c]
        score.mutual_information = mutual_information(table)
        score.chi2_valid = chi2_is_valid(table)
        if table:
            stat, dof = chi2_independence(table, classes)
            score.chi2 = _finite(stat)
            # one bin or one class: independent by construction (MLlib's ChiSquareTest: p 1.0)
            score.chi2_p = _finite(chi2_sf(stat, dof)) if dof > 0 else 1.0


def _assemble(prep: _Prepared):
    """The prepared rows as model inputs: ``label`` and the MLlib vectors ``num_vec`` and
    ``model_vec`` (each when non-empty). The bins are left out: only the contingency pass reads
    them, from ``prep.frame``."""
    from pyspark.ml.feature import VectorAssembler

    assembled = prep.frame
    if prep.num_cols:
        assembled = VectorAssembler(inputCols=prep.num_cols, outputCol="num_vec").transform(assembled)
    if prep.model_cols:
        assembled = VectorAssembler(inputCols=prep.model_cols, outputCol="model_vec").transform(assembled)
    return assembled.select(
        "label",
        *(["num_vec"] if prep.num_cols else []),
        *(["model_vec"] if prep.model_cols else []),
    )


def _f_test(assembled, prep: _Prepared, cand: _Candidates, *, task: str) -> None:
    """ANOVA F (classification) or F-regression of the numeric features (MLlib, one call)."""
    if not prep.num_cols:
        return
    test = "ANOVATest" if task == "classification" else "FValueTest"
    if is_connect(prep.frame.sparkSession):
        # MLlib's ANOVATest/FValueTest are reached through the JVM, which a Spark Connect
        # client lacks: the same statistics from one aggregate over the prepared rows
        with stage(f"selection: {test} (Spark SQL aggregates, Spark Connect)"):
            f_results = _f_tests_by_aggregates(prep.frame, prep.num_cols, task)
    else:
        with stage(f"selection: {test} (MLlib)"):
            res = _mllib_stat_test(test, assembled, "num_vec", "label").collect()
        f_results = [(int(r["featureIndex"]), r["fValue"], r["pValue"]) for r in res]
    for index, f_value, p_value in f_results:
        c = prep.usable_numeric[index]
        cand.by_name[c].f_stat, cand.by_name[c].f_p = _finite(f_value), _finite(p_value)


def _f_tests_by_aggregates(prepared, num_cols: Sequence[str], task: str) -> list[tuple[int, float, float]]:
    """``(feature index, F, p-value)`` per column of ``num_cols``, as MLlib's ``ANOVATest``
    (classification: one-way ANOVA of each feature across the ``label`` classes) or
    ``FValueTest`` (regression: F of the univariate linear regression on ``label``) compute them.

    Input: ``prepared`` with the non-null double columns ``num_cols`` and ``label``. One Spark
    aggregate (per class: count, sum and sum of squares of every column; for regression: count
    and Pearson correlation with the label); only those few numbers come to the driver.
    """
    from pyspark.sql import functions as F

    out: list[tuple[int, float, float]] = []
    if task == "classification":
        aggs = [F.count(F.lit(1)).alias("n")]
        for j, c in enumerate(num_cols):
            x = F.col(c).cast("double")
            aggs += [F.sum(x).alias(f"s{j}"), F.sum(x * x).alias(f"q{j}")]
        groups = prepared.groupBy("label").agg(*aggs).collect()
        n = sum(int(g["n"]) for g in groups)
        k = len(groups)
        for j in range(len(num_cols)):
            total = sum(float(g[f"s{j}"]) for g in groups)
            between_raw = sum(float(g[f"s{j}"]) ** 2 / int(g["n"]) for g in groups)
            between = between_raw - total * total / n
            within = sum(float(g[f"q{j}"]) for g in groups) - between_raw
            out.append((j, *_f_and_p(between, k - 1, within, n - k)))
        return out
    row = prepared.agg(
        F.count(F.lit(1)).alias("n"),
        *(
            F.corr(F.col(c).cast("double"), F.col("label").cast("double")).alias(f"r{j}")
            for j, c in enumerate(num_cols)
        ),
    ).first()
    n = int(row["n"])
    for j in range(len(num_cols)):
        r = row[f"r{j}"]
        if r is None or math.isnan(r):
            out.append((j, float("nan"), float("nan")))
            continue
        r2 = min(float(r) * float(r), 1.0)
        out.append((j, *_f_and_p(r2, 1, 1.0 - r2, n - 2)))
    return out


def _f_and_p(explained: float, df1: int, residual: float, df2: int) -> tuple[float, float]:
    """``F = (explained / df1) / (residual / df2)`` and its upper-tail p-value."""
    if df1 <= 0 or df2 <= 0:
        return float("nan"), float("nan")
    explained, residual = max(explained, 0.0), max(residual, 0.0)
    if residual == 0.0:
        return (float("inf"), 0.0) if explained > 0.0 else (float("nan"), float("nan"))
    f_value = (explained / df1) / (residual / df2)
    return f_value, _f_sf(f_value, df1, df2)


def _f_sf(f_value: float, df1: float, df2: float) -> float:
    """P(F > f_value) of Fisher's F(df1, df2): the regularized incomplete beta I_x(df2/2, df1/2)
    at x = df2 / (df2 + df1 f)."""
    if f_value <= 0.0:
        return 1.0
    return _betainc(df2 / 2.0, df1 / 2.0, df2 / (df2 + df1 * f_value))


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) (continued fraction, modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below this point
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return math.exp(log_front) * h / a


def _correlation(assembled, prep: _Prepared, cand: _Candidates, spec: SelectionSpec, *, task: str, classes):
    """The numeric features' correlation matrix (one MLlib call), plus each one's correlation with
    the label when the label is a number (regression or two classes); returns ``(names, matrix)``."""
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.stat import Correlation

    if not prep.num_cols:
        return [], []
    with_label = task == "regression" or len(classes) == 2
    corr_input = assembled
    corr_col = "num_vec"
    if with_label:
        corr_input = VectorAssembler(inputCols=["num_vec", "label"], outputCol="corr_vec").transform(assembled)
        corr_col = "corr_vec"
    with stage("selection: correlation (MLlib)"):
        m = Correlation.corr(corr_input, corr_col, spec.correlation_method).first()[0].toArray()
    p = len(prep.usable_numeric)
    matrix = [[_finite(m[i][j]) for j in range(p)] for i in range(p)]
    if with_label:
        for i, c in enumerate(prep.usable_numeric):
            cand.by_name[c].label_correlation = _finite(m[i][p])
    return list(prep.usable_numeric), matrix


def _pca(assembled, prep: _Prepared, spec: SelectionSpec) -> tuple[list[float] | None, int | None]:
    """Optional PCA of the standardised numerics: explained variance ratios and the components
    needed for ``spec.pca_variance``."""
    if not (spec.pca and prep.num_cols):
        return None, None
    from pyspark.ml.feature import PCA, StandardScaler

    scaled = (
        StandardScaler(withMean=True, withStd=True, inputCol="num_vec", outputCol="z")
        .fit(assembled)
        .transform(assembled)
    )
    model = PCA(k=len(prep.num_cols), inputCol="z", outputCol="pc").fit(scaled)
    pca_var = [float(v) for v in model.explainedVariance.toArray()]
    running = 0.0
    for k, v in enumerate(pca_var, start=1):
        running += v
        if running >= spec.pca_variance - 1e-12:
            return pca_var, k
    return pca_var, None


def _rank_and_decide(cand: _Candidates, spec: SelectionSpec, *, corr_names, matrix, baseline):
    """Adjust p-values (Benjamini-Hochberg), rank by mean rank over the methods, decide keep/drop;
    returns the redundant pairs."""
    tested = [f for f in cand.scores if f.kind != "unsupported"]
    for f, adj in zip(tested, benjamini_hochberg([f.chi2_p for f in tested])):
        f.chi2_p_adj = adj
    for f, adj in zip(tested, benjamini_hochberg([f.f_p for f in tested])):
        f.f_p_adj = adj
    table = {
        f.name: {
            "mutual_information": f.mutual_information,
            "chi2_score": _neglog(f.chi2_p),
            "f_score": _neglog(f.f_p),
            "rf_importance": f.rf_importance,
            "permutation_importance": f.permutation_importance,
        }
        for f in tested
    }
    for name, r in average_ranks(table, SCORE_METHODS).items():
        cand.by_name[name].mean_rank = r
    pairs = redundant_pairs(corr_names, matrix, spec.correlation_threshold)
    decide(
        cand.scores,
        pairs=pairs,
        alpha=spec.alpha,
        min_importance=spec.model.min_importance,
        baseline_loss=baseline,
        max_features=spec.max_features,
    )
    return pairs


def _mllib_stat_test(name: str, dataset, features_col: str, label_col: str):
    """MLlib's ``ANOVATest`` / ``FValueTest`` (Scala-only: PySpark wraps just ``ChiSquareTest``),
    called the way PySpark calls ``ChiSquareTest`` in a classic session. One row per feature:
    ``featureIndex``, ``pValue``, ``degreesOfFreedom``, ``fValue``."""
    from pyspark.ml.common import _java2py, _py2java
    from pyspark.ml.util import _jvm

    sc = dataset.sparkSession.sparkContext
    test = getattr(_jvm(), f"org.apache.spark.ml.stat.{name}")
    args = [_py2java(sc, arg) for arg in (dataset, features_col, label_col, True)]
    return _java2py(sc, test.test(*args))


def _neglog(p: float | None) -> float | None:
    if p is None:
        return None
    return -math.log10(max(p, 1e-300))


def _model_importances(
    assembled,
    spec: SelectionSpec,
    task: str,
    classes: list[str],
    model_cols: list[str],
    model_names: list[str],
    by_name: dict,
    *,
    total: int,
) -> tuple[float | None, str]:
    """Fit a forest on a sample of ``assembled`` (``total`` rows), record impurity importances and
    held-out permutation importances.

    Returns the baseline held-out loss (log loss or mean squared error) and its name.
    """
    if not model_cols:
        return None, ""
    fraction = min(1.0, spec.model.sample_rows / max(total, 1))
    model, hold = _fit_forest(assembled, spec, task, fraction=fraction, model_names=model_names, by_name=by_name)
    numbered, per_label = _held_out_sample(hold, spec, held_rows=total * fraction * spec.model.holdout_fraction)
    n_hold = sum(per_label.values())
    if task == "classification" and (len(per_label) < len(classes) or min(per_label.values()) < MIN_CLASS_ROWS):
        log.warning(
            "selection: held-out sample has %s rows per class (fewer than %d of some class); permutation "
            "importance skipped",
            per_label,
            MIN_CLASS_ROWS,
        )
        return None, ""
    if n_hold < 2:
        log.warning("selection: held-out sample has %d rows; permutation importance skipped", n_hold)
        return None, ""
    return _permutation_importance(
        model, numbered, spec, task, n_hold=n_hold, features=len(model_cols), model_names=model_names, by_name=by_name
    )


def _fit_forest(assembled, spec: SelectionSpec, task: str, *, fraction: float, model_names, by_name):
    """Fit the random forest on the training part of a ``fraction`` sample and record its impurity
    importances; returns the model and the held-out part of the sample."""
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.regression import RandomForestRegressor
    from pyspark.sql import functions as F

    m = spec.model
    sample = assembled.select("label", "model_vec").withColumn("u", F.rand(spec.seed))
    sample = sample.where(F.col("u") < F.lit(fraction))
    train = sample.where(F.col("u") >= F.lit(fraction * m.holdout_fraction))
    hold = sample.where(F.col("u") < F.lit(fraction * m.holdout_fraction))
    # A categorical feature needs at least as many bins as it has levels (kept + other + null).
    max_bins = max(
        [32] + [min(by_name[n].distinct, spec.max_levels) + 2 for n in model_names if by_name[n].kind == "categorical"]
    )
    common = dict(
        featuresCol="model_vec",
        labelCol="label",
        numTrees=m.trees,
        maxDepth=m.max_depth,
        maxBins=max_bins,
        seed=spec.seed,
        subsamplingRate=1.0,
    )
    forest = RandomForestClassifier(**common) if task == "classification" else RandomForestRegressor(**common)
    with stage("selection: random forest (MLlib)"):
        model = forest.fit(train)
    for name, value in zip(model_names, model.featureImportances.toArray()):
        by_name[name].rf_importance = float(value)
    return model, hold


def _held_out_sample(hold, spec: SelectionSpec, *, held_rows: float):
    """At most about ``permutation_rows`` held-out rows as ``label``, ``arr`` (the model vector as
    an array) and ``i`` (0..n-1 in random order), checkpointed; returns it and its rows per label."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    hold_fraction = min(1.0, spec.model.permutation_rows / max(held_rows, 1.0))
    hold = hold.where(F.rand(spec.seed + 1) < F.lit(hold_fraction))
    numbered = hold.select("label", vector_to_array("model_vec").alias("arr")).withColumn(
        "i", F.row_number().over(Window.orderBy(F.rand(spec.seed + 2))) - 1
    )
    with stage("selection: held-out sample"):
        numbered = numbered.localCheckpoint(eager=True)
        per_label = {r["label"]: int(r["count"]) for r in numbered.groupBy("label").count().collect()}
    return numbered, per_label


def _permutation_importance(
    model, numbered, spec: SelectionSpec, task: str, *, n_hold: int, features: int, model_names, by_name
) -> tuple[float | None, str]:
    """Score every (feature, repeat) permutation of the held-out rows in one pass and record each
    feature's mean loss increase and its standard error; returns the baseline loss and its name."""
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql import functions as F

    repeats = spec.model.permutation_repeats
    rng = random.Random(spec.seed)
    shifts = [[rng.randrange(1, n_hold) for _ in range(repeats)] for _ in range(features)]
    donors = numbered.select(
        F.inline(
            F.array(
                *[
                    F.struct(
                        F.lit(j).alias("j"),
                        F.lit(r).alias("r"),
                        F.pmod(F.col("i") + F.lit(shifts[j][r]), F.lit(n_hold)).alias("target"),
                        F.get(F.col("arr"), j).alias("donor"),
                    )
                    for j in range(features)
                    for r in range(repeats)
                ]
            )
        )
    )
    permuted = numbered.join(donors, numbered["i"] == donors["target"]).select(
        "i",
        "label",
        "j",
        "r",
        F.transform("arr", lambda x, k: F.when(k == F.col("j"), F.col("donor")).otherwise(x)).alias("arr"),
    )
    base = numbered.select("i", "label", F.lit(-1).alias("j"), F.lit(0).alias("r"), "arr")
    scored = model.transform(permuted.unionByName(base).withColumn("model_vec", array_to_vector("arr")))
    if task == "classification":
        p_true = F.get(vector_to_array("probability"), F.col("label").cast("int"))
        loss = -F.log(F.greatest(p_true, F.lit(1e-15)))
        loss_name = "log loss"
    else:
        loss = (F.col("prediction") - F.col("label")) ** 2
        loss_name = "mean squared error"
    # Paired per-row differences (permuted loss - original loss) give both the importance and its
    # standard error from one scoring pass, even with a single repeat.
    scored = scored.select("i", "j", "r", loss.alias("loss"))
    base_loss = scored.where(F.col("j") == -1).select("i", F.col("loss").alias("base"))
    diffs = (
        scored.where(F.col("j") >= 0)
        .join(base_loss, "i")
        .groupBy("j")
        .agg(
            F.avg(F.col("loss") - F.col("base")).alias("mean"),
            F.stddev_samp(F.col("loss") - F.col("base")).alias("sd"),
            F.count(F.lit(1)).alias("n"),
            F.avg("base").alias("baseline"),
        )
    )
    with stage("selection: permutation importance"):
        results = diffs.collect()
    if not results:
        return None, loss_name
    baseline = float(results[0]["baseline"])
    for r in results:
        name = model_names[int(r["j"])]
        by_name[name].permutation_importance = float(r["mean"])
        sd = float(r["sd"]) if r["sd"] is not None else 0.0
        by_name[name].permutation_se = sd / math.sqrt(max(int(r["n"]), 1))
    return baseline, loss_name
