"""Fit preprocessing on a training table in a bounded number of Spark passes.

Each step is fitted on the output of the step before it (as in a scikit-learn ``Pipeline``):
imputation on the raw values, outlier bounds on the imputed values, scaling on the imputed and
clipped values. The passes, whatever the number of columns:

1. one wide ``agg`` over every numeric column: count, mean, population std, min, max and one
   ``percentile_approx`` array per column, plus the label's per-fold counts and sums;
2. one stacked ``groupBy(column, value)`` for every categorical column (and numeric columns
   imputed with the mode): category counts, label counts and sums per out-of-fold group, capped
   at ``max_levels`` values per column with the rest pooled (a window ranks values per column);
3. only for columns that are imputed *and* have outlier bounds: one wide ``agg`` on the imputed
   values;
4. only for scaled columns with an earlier step: one wide ``agg`` on the values the scaler sees.

Only these aggregates reach the driver. Quantiles are ``percentile_approx`` values (a value of
the data: with enough accuracy, numpy's ``method="inverted_cdf"``); the standard deviation is the
population one (ddof=0, as scikit-learn's ``StandardScaler``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from featuremill.core.errors import PreprocessingError
from featuremill.core.fingerprint import content_fingerprint, content_hash_aggregate
from featuremill.core.sql import col
from featuremill.preprocessing.apply import category_value, clean_numeric, fold_expression, numeric_columns
from featuremill.preprocessing.spec import NUMERIC_IMPUTE, PreprocessingSpec, TransformSpec
from featuremill.preprocessing.state import (
    ColumnState,
    EncodeState,
    FittedState,
    ImputeState,
    OutlierState,
    ScaleState,
    spec_fingerprint,
)

log = logging.getLogger(__name__)

NUMERIC_SPARK_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double")
BASE_QUANTILES = (0.25, 0.5, 0.75)
MISSING_CATEGORY = "__missing__"


def is_numeric_type(spark_type: str) -> bool:
    return spark_type in NUMERIC_SPARK_TYPES or spark_type.startswith("decimal")


def resolve_columns(
    spec: PreprocessingSpec,
    column_types: Mapping[str, str],
    *,
    label: str | None,
    feature_sets: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[tuple[str, TransformSpec]], list[str]]:
    """Which rule applies to which column of the data, in the data's column order.

    Explicit ``columns`` win over ``match``/``feature_set`` rules; among those, the first rule
    that matches wins. The label and key columns are never transformed. Returns the assignments
    and warnings (feature-set features absent from the data).
    """
    reserved = set(spec.key) | ({label} if label else set())
    warnings: list[str] = []
    assigned: dict[str, TransformSpec] = {}
    for t in spec.transforms:
        for c in t.columns:
            if c not in column_types:
                raise PreprocessingError(
                    f"{t.path}.columns: column {c!r} is not in the training data (columns: {', '.join(column_types)})"
                )
            if c in reserved:
                raise PreprocessingError(
                    f"{t.path}.columns: {c!r} is the label or a key column and cannot be transformed"
                )
            assigned[c] = t
    for t in spec.transforms:
        if t.match is not None:
            pattern = re.compile(t.match)
            names = [c for c in column_types if pattern.search(c)]
        elif t.feature_set is not None:
            declared = list((feature_sets or {}).get(t.feature_set, ()))
            names = [c for c in declared if c in column_types]
            lacking = [c for c in declared if c not in column_types]
            if lacking:
                warnings.append(
                    f"{t.path}: features of {t.feature_set!r} not in the training data, skipped: {', '.join(lacking)}"
                )
        else:
            continue
        for c in names:
            if c not in assigned and c not in reserved:
                assigned[c] = t
    ordered = [(c, assigned[c]) for c in column_types if c in assigned]
    if not ordered:
        raise PreprocessingError("no column of the training data matches any preprocessing transform")
    return ordered, warnings


def _kind(rule: TransformSpec, spark_type: str, column: str) -> str:
    numeric = is_numeric_type(spark_type)
    if rule.encode is not None:
        return "categorical"
    if rule.is_numeric and not numeric:
        raise PreprocessingError(
            f"{rule.path}: column {column!r} is {spark_type}; outliers, scale and "
            "mean/median imputation need a numeric column (encode it instead)"
        )
    return "numeric" if numeric else "categorical"


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _numeric_stats_aggs(prefix: str, expr, quantiles: Sequence[float], accuracy: int) -> list:
    from pyspark.sql import functions as F

    return [
        F.count(expr).alias(f"{prefix}_n"),
        F.avg(expr).alias(f"{prefix}_mean"),
        F.stddev_pop(expr).alias(f"{prefix}_std"),
        F.min(expr).alias(f"{prefix}_min"),
        F.max(expr).alias(f"{prefix}_max"),
        F.percentile_approx(expr, list(quantiles), accuracy).alias(f"{prefix}_q"),
    ]


def _read_stats(row, prefix: str, quantiles: Sequence[float]) -> dict[str, Any]:
    qs = row[f"{prefix}_q"]
    out = {
        "non_null": int(row[f"{prefix}_n"]),
        "mean": _finite(row[f"{prefix}_mean"]),
        "std": _finite(row[f"{prefix}_std"]),
        "min": _finite(row[f"{prefix}_min"]),
        "max": _finite(row[f"{prefix}_max"]),
        "quantiles": {
            repr(q): (_finite(v) if qs is not None else None)
            for q, v in zip(quantiles, qs if qs is not None else [None] * len(quantiles))
        },
    }
    return out


def _q(stats: Mapping[str, Any], q: float) -> float | None:
    return stats["quantiles"].get(repr(q))


def _sanitise(level: str) -> str:
    text = re.sub(r"[^0-9A-Za-z_]+", "_", level).strip("_")
    return text or "blank"


@dataclass
class _Fit:
    """What the passes of one fit share: the resolved rules, column types and kinds, the label
    (cleaned, when target encoding needs it) and its out-of-fold group, the output names claimed."""

    spec: PreprocessingSpec
    rules: list[tuple[str, TransformSpec]]
    column_types: dict[str, str]
    kinds: dict[str, str]
    label: str | None
    y: Any = None
    fold: Any = None
    warnings: list[str] = field(default_factory=list)
    new_names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rule_of = dict(self.rules)
        self.index = {c: i for i, (c, _) in enumerate(self.rules)}
        self.numeric = [c for c, _ in self.rules if self.kinds[c] == "numeric"]

    def claim(self, name: str, owner: str) -> str:
        """Reserve the output column ``name`` for ``owner``; it must be new and produced once."""
        if name in self.column_types and name != owner:
            raise PreprocessingError(f"output column {name!r} (from {owner!r}) already exists in the training data")
        if name in self.new_names:
            raise PreprocessingError(
                f"output column {name!r} is produced by both {self.new_names[name]!r} and {owner!r}"
            )
        self.new_names[name] = owner
        return name


def fit_preprocessing(
    df,
    spec: PreprocessingSpec,
    *,
    label: str | None = None,
    feature_sets: Mapping[str, Sequence[str]] | None = None,
    pipeline: str = "",
    training_ref: str = "",
    training_version: int | None = None,
    code_version: str = "",
) -> FittedState:
    """Fit ``spec`` on the training DataFrame ``df`` and return the (unstored) :class:`FittedState`.

    Required columns: every column a transform names (or matches), the label when target
    encoding is used (numeric or boolean; rows with a null label count for category frequencies
    but not for label statistics), and the key columns (target encoding). ``feature_sets`` maps a
    feature-set name to its feature names, for ``feature_set:`` rules.
    """
    fit = _resolve(df, spec, label=label or spec.label, feature_sets=feature_sets)
    first, quantiles = _stats_pass(df, fit)
    row_count = int(first["rows"])
    if row_count == 0:
        raise PreprocessingError("the training data has no rows; nothing to fit")
    data_fingerprint = content_fingerprint(first["content_hash"])
    raw_stats = {c: _read_stats(first, f"a{fit.index[c]}", quantiles[c]) for c in fit.numeric}
    priors = _fold_priors(fit, first)
    levels_of = _category_pass(df, fit)
    columns = _imputed_columns(fit, row_count=row_count, raw_stats=raw_stats, levels_of=levels_of)
    bound_stats, imputed = _outlier_pass(df, fit, columns, raw_stats=raw_stats, quantiles=quantiles)
    _add_outliers(fit, columns, bound_stats)
    _scale_pass(df, fit, columns, raw_stats=raw_stats, bound_stats=bound_stats, imputed=imputed)
    for c, r in fit.rules:
        if r.encode is not None:
            enc = _encode_state(c, r, levels_of.get(c), row_count, priors, spec, fit.claim, fit.warnings)
            columns[c] = replace(columns[c], encode=enc)
    for w in fit.warnings:
        log.warning("preprocessing %s: %s", spec.name, w)
    return FittedState(
        name=spec.name,
        columns=tuple(columns[c] for c, _ in fit.rules),
        label=fit.label,
        key=tuple(spec.key),
        folds=spec.folds,
        seed=spec.seed,
        remainder=spec.remainder,
        pipeline=pipeline,
        training_ref=training_ref,
        training_version=training_version,
        data_fingerprint=data_fingerprint,
        config_fingerprint=spec_fingerprint(spec),
        row_count=row_count,
        code_version=code_version,
        warnings=tuple(fit.warnings),
    )


def _resolve(df, spec: PreprocessingSpec, *, label: str | None, feature_sets) -> _Fit:
    """Match the rules to the columns, classify them, and check the label and key target encoding needs."""
    column_types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    rules, warnings = resolve_columns(spec, column_types, label=label, feature_sets=feature_sets)
    kinds = {c: _kind(rule, column_types[c], c) for c, rule in rules}
    fit = _Fit(spec, rules, column_types, kinds, label, warnings=warnings)
    if not any(rule.encode is not None and rule.encode.method == "target" for _, rule in rules):
        return fit
    if not label:
        raise PreprocessingError("target encoding needs a label column: set preprocessing.label or pass --label")
    if label not in column_types:
        raise PreprocessingError(f"label column {label!r} is not in the training data")
    if not (is_numeric_type(column_types[label]) or column_types[label] == "boolean"):
        raise PreprocessingError(
            f"label column {label!r} is {column_types[label]}; target encoding needs a "
            "numeric (0/1 or continuous) or boolean label"
        )
    lacking = [k for k in spec.key if k not in column_types]
    if lacking:
        raise PreprocessingError(
            f"key column(s) {', '.join(lacking)} are not in the training data; target "
            "encoding assigns out-of-fold groups by the key"
        )
    fit.y = (
        clean_numeric(label, "double" if column_types[label] in ("float", "double") else "bigint")
        if column_types[label] != "boolean"
        else col(label).cast("double")
    )
    fit.fold = fold_expression(spec.key, folds=spec.folds, seed=spec.seed)
    return fit


def _stats_pass(df, fit: _Fit):
    """Pass 1 (one ``agg``): rows, content hash, raw numeric statistics, label totals per fold;
    returns the row and the quantile probabilities asked per numeric column."""
    from pyspark.sql import functions as F

    spec, y, fold = fit.spec, fit.y, fit.fold
    quantiles: dict[str, tuple[float, ...]] = {}
    aggs = [F.count(F.lit(1)).alias("rows"), content_hash_aggregate(df, "content_hash")]
    for c in fit.numeric:
        r = fit.rule_of[c]
        qs = set(BASE_QUANTILES)
        if r.outliers is not None and r.outliers.method == "winsorize" and r.impute is None:
            qs |= {r.outliers.lower, r.outliers.upper}
        quantiles[c] = tuple(sorted(qs))
        expr = clean_numeric(c, fit.column_types[c])
        aggs += _numeric_stats_aggs(f"a{fit.index[c]}", expr, quantiles[c], spec.accuracy)
    if y is not None:
        aggs += [F.count(y).alias("y_n"), F.sum(y).alias("y_s")]
        for k in range(spec.folds):
            aggs += [
                F.sum(F.when((fold == k) & y.isNotNull(), 1).otherwise(0)).alias(f"y_n{k}"),
                F.sum(F.when(fold == k, y)).alias(f"y_s{k}"),
            ]
    return df.agg(*aggs).first(), quantiles


def _fold_priors(fit: _Fit, first) -> tuple[float, ...]:
    """The label mean outside each out-of-fold group, then overall (target encoding's priors)."""
    if fit.y is None:
        return ()
    n_all, s_all = int(first["y_n"]), float(first["y_s"] or 0.0)
    if n_all == 0:
        raise PreprocessingError(f"label column {fit.label!r} has no non-null values; target encoding cannot be fitted")
    fold_priors = []
    for k in range(fit.spec.folds):
        n_k, s_k = int(first[f"y_n{k}"]), float(first[f"y_s{k}"] or 0.0)
        if n_all - n_k == 0:
            raise PreprocessingError(
                f"every labelled row falls in out-of-fold group {k}; target encoding needs "
                f"labelled rows in at least two of the {fit.spec.folds} groups (more rows or a "
                "more varied key)"
            )
        fold_priors.append((s_all - s_k) / (n_all - n_k))
    return tuple(fold_priors) + (s_all / n_all,)


def _category_value(fit: _Fit, c: str):
    """The struct pass 2 stacks for column ``c``: index ``c``, category text ``v``, number ``d``."""
    from pyspark.sql import functions as F

    r = fit.rule_of[c]
    if fit.kinds[c] == "numeric":
        d = clean_numeric(c, fit.column_types[c])
        v = d.cast("string")
    else:
        fill = r.impute.value if (r.impute is not None and r.impute.strategy == "constant") else None
        probe = ColumnState(
            column=c,
            kind="categorical",
            input_type=fit.column_types[c],
            impute=ImputeState("constant", _fill_text(fill)) if fill is not None else None,
        )
        v = category_value(probe)
        d = F.lit(None).cast("double")
    return F.struct(F.lit(fit.index[c]).alias("c"), v.alias("v"), d.alias("d"))


def _category_pass(df, fit: _Fit) -> dict[str, dict]:
    """Pass 2 (one stacked ``groupBy``): per counted column its top ``max_levels`` values with
    counts and label sums per fold, the rest pooled as ``overflow``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spec, y = fit.spec, fit.y
    counted = [
        c
        for c, r in fit.rules
        if (
            fit.kinds[c] == "categorical"
            and r.encode is not None
            and r.encode.method in ("one_hot", "ordinal", "target")
        )
        or (r.impute is not None and r.impute.strategy == "mode")
    ]
    if not counted:
        return {}
    extra = [y.alias("y"), fit.fold.alias("f")] if y is not None else []
    stacked = df.select(*extra, F.inline(F.array(*[_category_value(fit, c) for c in counted])))
    sums = [F.count(F.lit(1)).alias("n"), F.max("d").alias("d")]
    label_sums = ["ny", "sy"] + [f"n{k}" for k in range(spec.folds)] + [f"s{k}" for k in range(spec.folds)]
    if y is not None:
        sums += [F.count("y").alias("ny"), F.sum("y").alias("sy")]
        for k in range(spec.folds):
            sums += [
                F.sum(F.when((F.col("f") == k) & F.col("y").isNotNull(), 1).otherwise(0)).alias(f"n{k}"),
                F.sum(F.when(F.col("f") == k, F.col("y"))).alias(f"s{k}"),
            ]
    grouped = stacked.groupBy("c", "v").agg(*sums)
    ranking = Window.partitionBy("c").orderBy(F.col("n").desc(), F.col("v").asc())
    ranked = grouped.withColumn("rk", F.row_number().over(ranking))
    kept = (F.col("rk") <= F.lit(spec.max_levels)) | F.col("v").isNull()
    resum = [F.sum("n").alias("n"), F.max("d").alias("d")]
    if y is not None:
        resum += [F.sum(n).alias(n) for n in label_sums]
    final = ranked.groupBy("c", F.when(kept, F.col("v")).alias("v"), (~kept).alias("overflow")).agg(*resum)
    by_index = {i: c for c, i in fit.index.items()}
    levels_of: dict[str, dict] = {}
    for row in final.collect():
        entry = levels_of.setdefault(by_index[row["c"]], {"levels": {}, "overflow": None})
        stats = row.asDict()
        if row["overflow"]:
            entry["overflow"] = stats
        else:
            entry["levels"][row["v"]] = stats
    return levels_of


def _imputed_columns(fit: _Fit, *, row_count: int, raw_stats, levels_of) -> dict[str, ColumnState]:
    """One state per column with its imputation fill (from passes 1 and 2) and fit-time stats."""
    columns: dict[str, ColumnState] = {}
    for c, r in fit.rules:
        impute = None
        if r.impute is not None:
            fill = _impute_fill(c, r, fit.kinds[c], raw_stats.get(c), levels_of.get(c), fit.warnings)
            indicator = fit.claim(f"{c}__missing", c) if r.impute.indicator else None
            impute = ImputeState(strategy=r.impute.strategy, fill=fill, indicator_column=indicator)
        stats = {"rows": row_count, **(raw_stats.get(c) or {})}
        if c in levels_of:
            stats["distinct_stored"] = sum(1 for v in levels_of[c]["levels"] if v is not None)
            stats["overflow_rows"] = int(levels_of[c]["overflow"]["n"]) if levels_of[c]["overflow"] else 0
            stats["null_rows"] = int(levels_of[c]["levels"].get(None, {}).get("n", 0))
        columns[c] = ColumnState(
            column=c, kind=fit.kinds[c], input_type=fit.column_types[c], impute=impute, stats=stats
        )
    return columns


def _outlier_pass(df, fit: _Fit, columns, *, raw_stats, quantiles) -> tuple[dict[str, dict], list[str]]:
    """Statistics the outlier bounds are fitted on: the raw ones, or pass 3 (one ``agg``) on the
    imputed values for columns both imputed and bounded; returns them and those imputed columns."""
    need_bounds = [c for c in fit.numeric if fit.rule_of[c].outliers is not None]
    bound_stats: dict[str, dict] = {c: raw_stats[c] for c in need_bounds if fit.rule_of[c].impute is None}
    imputed = [c for c in need_bounds if fit.rule_of[c].impute is not None]
    if imputed:
        aggs = []
        for c in imputed:
            o = fit.rule_of[c].outliers
            qs = set(BASE_QUANTILES) | ({o.lower, o.upper} if o.method == "winsorize" else set())
            quantiles[c] = tuple(sorted(qs))
            expr, _ = numeric_columns(columns[c], upto="impute")
            aggs += _numeric_stats_aggs(f"a{fit.index[c]}", expr, quantiles[c], fit.spec.accuracy)
        row = df.agg(*aggs).first()
        for c in imputed:
            bound_stats[c] = _read_stats(row, f"a{fit.index[c]}", quantiles[c])
    return bound_stats, imputed


def _add_outliers(fit: _Fit, columns: dict[str, ColumnState], bound_stats: dict[str, dict]) -> None:
    """Set each bounded column's outlier state (bounds, clipping, flag column)."""
    for c in fit.numeric:
        o = fit.rule_of[c].outliers
        if o is None:
            continue
        lower, upper = _bounds(o, bound_stats[c])
        if lower is None:
            fit.warnings.append(
                f"column {c!r}: no non-null values at fit time; outlier bounds are undefined "
                "(values pass unchanged, flags are 0)"
            )
        flag = fit.claim(f"{c}__outlier", c) if o.flag else None
        columns[c] = replace(
            columns[c], outliers=OutlierState(method=o.method, lower=lower, upper=upper, clip=o.clip, flag_column=flag)
        )


def _scale_pass(df, fit: _Fit, columns, *, raw_stats, bound_stats, imputed) -> None:
    """Set each scaled column's scale state, from statistics of the values the scaler sees: reused
    from an earlier pass when they are the same values, else pass 4 (one ``agg``)."""
    scaled = [c for c in fit.numeric if fit.rule_of[c].scale is not None]
    scale_stats: dict[str, dict] = {}
    for c in scaled:
        r = fit.rule_of[c]
        if r.impute is None and r.outliers is None:
            scale_stats[c] = raw_stats[c]
        elif r.outliers is None and c in imputed:
            scale_stats[c] = bound_stats[c]
    todo = [c for c in scaled if c not in scale_stats]
    if todo:
        aggs = []
        for c in todo:
            expr, _ = numeric_columns(columns[c], upto="outliers")
            aggs += _numeric_stats_aggs(f"s{fit.index[c]}", expr, BASE_QUANTILES, fit.spec.accuracy)
        row = df.agg(*aggs).first()
        for c in todo:
            scale_stats[c] = _read_stats(row, f"s{fit.index[c]}", BASE_QUANTILES)
    for c in scaled:
        method = fit.rule_of[c].scale.method
        columns[c] = replace(columns[c], scale=_scale_state(c, method, scale_stats[c], fit.warnings))


def _fill_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _impute_fill(
    c: str, r: TransformSpec, kind: str, stats: dict | None, levels: dict | None, warnings: list[str]
) -> Any:
    strategy = r.impute.strategy
    if strategy == "constant":
        value = r.impute.value
        if kind == "numeric":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PreprocessingError(f"{r.path}.impute.value: {value!r} is not a number; column {c!r} is numeric")
            return float(value)
        return _fill_text(value)
    if strategy in NUMERIC_IMPUTE:
        value = stats["mean"] if strategy == "mean" else _q(stats, 0.5)
        if value is None:
            warnings.append(f"column {c!r}: no non-null values at fit time; {strategy} imputation fills 0.0")
            return 0.0
        return value
    # mode: the most frequent non-null value; ties go to the smallest value (as pandas and
    # scikit-learn's most_frequent do)
    candidates = [(v, s) for v, s in (levels or {"levels": {}})["levels"].items() if v is not None]
    if not candidates:
        fallback = 0.0 if kind == "numeric" else MISSING_CATEGORY
        warnings.append(f"column {c!r}: no non-null values at fit time; mode imputation fills {fallback!r}")
        return fallback
    if kind == "numeric":
        best = min(candidates, key=lambda vs: (-vs[1]["n"], vs[1]["d"]))
        return float(best[1]["d"])
    best = min(candidates, key=lambda vs: (-vs[1]["n"], vs[0]))
    return best[0]


def _bounds(o, stats: dict) -> tuple[float | None, float | None]:
    if stats["non_null"] == 0:
        return None, None
    if o.method == "iqr":
        q1, q3 = _q(stats, 0.25), _q(stats, 0.75)
        return q1 - o.k * (q3 - q1), q3 + o.k * (q3 - q1)
    if o.method == "zscore":
        return stats["mean"] - o.k * stats["std"], stats["mean"] + o.k * stats["std"]
    return _q(stats, o.lower), _q(stats, o.upper)


def _scale_state(c: str, method: str, stats: dict, warnings: list[str]) -> ScaleState:
    if stats["non_null"] == 0:
        warnings.append(f"column {c!r}: no non-null values at fit time; {method} scaling is the identity")
        return ScaleState(method=method, center=0.0, scale=1.0)
    if method == "standard":
        center, spread = stats["mean"], stats["std"]
    elif method == "minmax":
        center, spread = stats["min"], stats["max"] - stats["min"]
    else:
        center, spread = _q(stats, 0.5), _q(stats, 0.75) - _q(stats, 0.25)
    if not spread:
        warnings.append(f"column {c!r}: zero spread at fit time; {method} scaling divides by 1")
        spread = 1.0
    return ScaleState(method=method, center=float(center), scale=float(spread))


def _merge_into(target: dict, extra: dict, folds: int) -> None:
    for key in ["n", "ny", "sy"] + [f"n{k}" for k in range(folds)] + [f"s{k}" for k in range(folds)]:
        if key in extra:
            target[key] = (target.get(key) or 0) + (extra[key] or 0)


def _encode_state(
    c: str,
    r: TransformSpec,
    counted: dict | None,
    row_count: int,
    priors: tuple[float, ...],
    spec: PreprocessingSpec,
    claim,
    warnings: list[str],
) -> EncodeState:
    e = r.encode
    if e.method == "hashing":
        return EncodeState(method="hashing", buckets=e.buckets)
    levels_stats: dict = {k: dict(v) for k, v in (counted or {"levels": {}})["levels"].items()}
    overflow_stats = (counted or {}).get("overflow")
    if r.impute is not None and r.impute.strategy == "mode" and None in levels_stats:
        fill = _impute_fill(c, r, "categorical", None, counted, [])
        null_stats = levels_stats.pop(None)
        if fill in levels_stats:
            _merge_into(levels_stats[fill], null_stats, spec.folds)
        else:
            levels_stats[fill] = null_stats
    null_stats = levels_stats.pop(None, None)
    ranked = sorted(levels_stats.items(), key=lambda kv: (-kv[1]["n"], kv[0]))
    if e.method == "ordinal" and isinstance(e.order, tuple):
        levels: list = list(e.order)
        rare: list = []
        overflow = False
    else:
        frequent = [v for v, s in ranked if s["n"] / row_count >= e.min_frequency]
        kept = frequent[: e.max_categories]
        rare = [v for v, _ in ranked if v not in set(kept)]
        if e.method == "ordinal" and e.order == "lexical":
            kept = sorted(kept)
        levels = list(kept)
        overflow = overflow_stats is not None
        if overflow:
            warnings.append(
                f"column {c!r}: more than {spec.max_levels} distinct values at fit time; values not "
                "stored in the state are treated as rare, not unseen"
            )
        if null_stats is not None and null_stats["n"] > 0:
            levels.append(None)
    if not levels and e.method != "hashing":
        warnings.append(f"column {c!r}: no category kept at fit time (all null or all rare)")
    outputs: tuple[str, ...] = ()
    if e.method == "one_hot":
        names = []
        used: set[str] = set()
        for level in levels:
            base = f"{c}__null" if level is None else f"{c}__{_sanitise(level)}"
            name, i = base, 2
            while name in used:
                name, i = f"{base}_{i}", i + 1
            used.add(name)
            names.append(name)
        if rare or overflow:
            names.append(f"{c}__rare")
        names.append(f"{c}__unseen")
        outputs = tuple(claim(n, c) for n in names)
    if e.method != "target":
        return EncodeState(
            method=e.method, levels=tuple(levels), rare_levels=tuple(rare), overflow=overflow, output_columns=outputs
        )
    a = e.smoothing

    def encode(stats: dict | None) -> tuple[float, ...]:
        values = []
        for k in range(spec.folds + 1):
            if stats is None:
                values.append(priors[k])
                continue
            if k < spec.folds:
                n = (stats.get("ny") or 0) - (stats.get(f"n{k}") or 0)
                s = (stats.get("sy") or 0.0) - (stats.get(f"s{k}") or 0.0)
            else:
                n, s = stats.get("ny") or 0, stats.get("sy") or 0.0
            values.append(priors[k] if n + a == 0 else (s + a * priors[k]) / (n + a))
        return tuple(values)

    encodings = tuple(encode(null_stats if level is None else levels_stats[level]) for level in levels)
    rare_pool = None
    if rare or overflow:
        rare_pool = {}
        for level in rare:
            _merge_into(rare_pool, levels_stats[level], spec.folds)
        if overflow_stats is not None:
            _merge_into(rare_pool, overflow_stats, spec.folds)
    return EncodeState(
        method="target",
        levels=tuple(levels),
        rare_levels=tuple(rare),
        overflow=overflow,
        encodings=encodings,
        rare_encoding=encode(rare_pool) if rare_pool is not None else None,
        prior=priors,
        smoothing=a,
    )
