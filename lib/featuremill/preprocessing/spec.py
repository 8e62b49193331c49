"""The ``preprocessing:`` section of a pipeline file, parsed into frozen dataclasses (no Spark).

Format (documented in ``docs/preprocessing.md``)::

    preprocessing:
      name: churn                 # name of the stored fitted state (default: the pipeline name)
      label: churned              # label column, for target encoding (``--label`` overrides)
      key: [customer_id, label_ts]  # row key: out-of-fold assignment of target encoding
      folds: 5
      transforms:
        - columns: [amount_sum_7d, amount_sum_30d]   # or match: "^amount_" or feature_set: NAME
          impute: {strategy: median, indicator: true}
          outliers: {method: iqr, k: 1.5, flag: true}
          scale: standard
        - columns: segment
          encode: {method: target, smoothing: 20}
      timeseries:
        - {feature_set: customer_activity, column: amount_sum_1d, window: 30d, lags: [1], diffs: [1],
           rolling_zscore: true, ema: {span: 5}}
      serving: {feature_sets: [customer_activity], version: latest}

Every problem is reported through the pipeline :class:`~featuremill.config.Checker` with its
path, like the rest of the configuration.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from featuremill.config import Checker, SectionContext, parse_duration
from featuremill.core.columns import is_internal, reserved_name_message

IMPUTE_STRATEGIES = ("mean", "median", "mode", "constant")
NUMERIC_IMPUTE = ("mean", "median")
OUTLIER_METHODS = ("iqr", "zscore", "winsorize")
SCALE_METHODS = ("standard", "minmax", "robust")
ENCODE_METHODS = ("one_hot", "ordinal", "hashing", "target")
ORDINAL_ORDERS = ("frequency", "lexical")

DEFAULT_FOLDS = 5
DEFAULT_ACCURACY = 100_000  # percentile_approx accuracy: relative error 1e-5
DEFAULT_MAX_LEVELS = 10_000  # category levels kept per column in the fitted state
DEFAULT_ONE_HOT_MAX = 20
DEFAULT_SMOOTHING = 10.0
DEFAULT_HASH_BUCKETS = 32


@dataclass(frozen=True)
class ImputeSpec:
    """Fill nulls (and NaN) with a statistic or a constant; optionally add ``<col>__missing``."""

    strategy: str
    value: Any = None
    indicator: bool = False


@dataclass(frozen=True)
class OutlierSpec:
    """Bounds from IQR (``k``), z-score (``k``) or quantiles (``lower``/``upper``); clip and/or flag."""

    method: str
    k: float = 1.5
    lower: float = 0.01
    upper: float = 0.99
    clip: bool = True
    flag: bool = False


@dataclass(frozen=True)
class ScaleSpec:
    method: str


@dataclass(frozen=True)
class EncodeSpec:
    """How a categorical column becomes numbers. See ``docs/preprocessing.md`` for each method."""

    method: str
    max_categories: int = DEFAULT_ONE_HOT_MAX
    min_frequency: float = 0.0
    order: str | tuple[str, ...] = "frequency"
    buckets: int = DEFAULT_HASH_BUCKETS
    smoothing: float = DEFAULT_SMOOTHING


@dataclass(frozen=True)
class TransformSpec:
    """One rule: which columns (explicit names, a regex or a feature set) and the steps applied."""

    columns: tuple[str, ...] = ()
    match: str | None = None
    feature_set: str | None = None
    impute: ImputeSpec | None = None
    outliers: OutlierSpec | None = None
    scale: ScaleSpec | None = None
    encode: EncodeSpec | None = None
    path: str = ""

    @property
    def is_numeric(self) -> bool:
        """Steps that need a numeric column (statistics, bounds, scaling)."""
        return (
            self.outliers is not None
            or self.scale is not None
            or (self.impute is not None and self.impute.strategy in NUMERIC_IMPUTE)
        )


@dataclass(frozen=True)
class TimeseriesSpec:
    """History helpers over one feature column of a feature set, computed by the feature job."""

    feature_set: str
    column: str
    window: str
    window_seconds: int
    lags: tuple[int, ...] = ()
    diffs: tuple[int, ...] = ()
    rolling_zscore: bool = False
    ema_alpha: float | None = None
    ema_name: str | None = None

    @property
    def output_columns(self) -> tuple[str, ...]:
        out = [f"{self.column}_lag{n}" for n in self.lags]
        out += [f"{self.column}_diff{n}" for n in self.diffs]
        if self.rolling_zscore:
            out.append(f"{self.column}_zscore")
        if self.ema_alpha is not None:
            out.append(self.ema_name or f"{self.column}_ema")
        return tuple(out)


@dataclass(frozen=True)
class ServingSpec:
    """Apply the stored state in the feature job to these feature sets (``preprocessed/<set>``)."""

    feature_sets: tuple[str, ...] = ()
    version: int | None = None  # None: the latest stored version


@dataclass(frozen=True)
class PreprocessingSpec:
    name: str
    transforms: tuple[TransformSpec, ...]
    label: str | None = None
    key: tuple[str, ...] = ()
    folds: int = DEFAULT_FOLDS
    seed: int = 42
    accuracy: int = DEFAULT_ACCURACY
    max_levels: int = DEFAULT_MAX_LEVELS
    remainder: str = "passthrough"
    timeseries: tuple[TimeseriesSpec, ...] = ()
    serving: ServingSpec = ServingSpec()

    def timeseries_for(self, feature_set: str) -> tuple[TimeseriesSpec, ...]:
        return tuple(t for t in self.timeseries if t.feature_set == feature_set)


def _j(path: str, key: str) -> str:
    return f"{path}.{key}"


def _number(
    checker: Checker,
    value: Any,
    path: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        checker.error(path, f"expected a number, got {value!r}")
        return None
    if low is not None and (value < low or (low_open and value == low)):
        checker.error(path, f"{value} must be {'>' if low_open else '>='} {low}")
        return None
    if high is not None and value > high:
        checker.error(path, f"{value} must be <= {high}")
        return None
    return float(value)


def _short_form(value: Any, key: str) -> Any:
    """``scale: standard`` is short for ``scale: {method: standard}``."""
    return {key: value} if isinstance(value, str) else value


def _parse_impute(checker: Checker, value: Any, path: str) -> ImputeSpec | None:
    spec = checker.mapping(
        _short_form(value, "strategy"), path, required=("strategy",), optional=("value", "indicator")
    )
    if spec is None or "strategy" not in spec:
        return None
    strategy = checker.string(spec["strategy"], _j(path, "strategy"), choices=IMPUTE_STRATEGIES)
    indicator = checker.boolean(spec["indicator"], _j(path, "indicator")) if "indicator" in spec else False
    fill = spec.get("value")
    if strategy == "constant":
        if "value" not in spec or isinstance(fill, (dict, list)) or fill is None:
            checker.error(_j(path, "value"), "constant imputation needs a scalar value")
            return None
    elif "value" in spec:
        checker.error(_j(path, "value"), f"only strategy constant takes a value, not {strategy!r}")
        return None
    if strategy is None or indicator is None:
        return None
    return ImputeSpec(strategy=strategy, value=fill, indicator=indicator)


def _parse_outliers(checker: Checker, value: Any, path: str) -> OutlierSpec | None:
    spec = checker.mapping(
        _short_form(value, "method"), path, required=("method",), optional=("k", "lower", "upper", "clip", "flag")
    )
    if spec is None or "method" not in spec:
        return None
    method = checker.string(spec["method"], _j(path, "method"), choices=OUTLIER_METHODS)
    if method is None:
        return None
    ok = True
    k = 1.5 if method == "iqr" else 3.0
    lower, upper = 0.01, 0.99
    if "k" in spec:
        if method == "winsorize":
            checker.error(_j(path, "k"), "winsorize takes lower and upper quantiles, not k")
            ok = False
        else:
            k = _number(checker, spec["k"], _j(path, "k"), low=0, low_open=True)
    for key in ("lower", "upper"):
        if key in spec:
            if method != "winsorize":
                checker.error(_j(path, key), f"only winsorize takes {key}; {method} takes k")
                ok = False
                continue
            v = _number(checker, spec[key], _j(path, key), low=0, high=1)
            if v is None:
                ok = False
            elif key == "lower":
                lower = v
            else:
                upper = v
    if method == "winsorize" and lower >= upper:
        checker.error(path, f"lower quantile {lower} must be below upper {upper}")
        ok = False
    clip = checker.boolean(spec["clip"], _j(path, "clip")) if "clip" in spec else True
    flag = checker.boolean(spec["flag"], _j(path, "flag")) if "flag" in spec else False
    if clip is False and flag is False:
        checker.error(path, "clip: false and flag: false would do nothing; set one of them")
        ok = False
    if not ok or k is None or clip is None or flag is None:
        return None
    return OutlierSpec(method=method, k=k, lower=lower, upper=upper, clip=clip, flag=flag)


def _parse_encode(checker: Checker, value: Any, path: str) -> EncodeSpec | None:
    spec = checker.mapping(
        _short_form(value, "method"),
        path,
        required=("method",),
        optional=("max_categories", "min_frequency", "order", "buckets", "smoothing"),
    )
    if spec is None or "method" not in spec:
        return None
    method = checker.string(spec["method"], _j(path, "method"), choices=ENCODE_METHODS)
    if method is None:
        return None
    allowed = {
        "one_hot": ("max_categories", "min_frequency"),
        "ordinal": ("max_categories", "min_frequency", "order"),
        "hashing": ("buckets",),
        "target": ("max_categories", "min_frequency", "smoothing"),
    }[method]
    ok = True
    for key in spec:
        if key != "method" and key not in allowed:
            checker.error(_j(path, key), f"encoding {method!r} takes no {key} (it takes {', '.join(allowed)})")
            ok = False
    default_max = DEFAULT_ONE_HOT_MAX if method == "one_hot" else DEFAULT_MAX_LEVELS
    max_categories = (
        checker.integer(spec["max_categories"], _j(path, "max_categories"), minimum=1)
        if "max_categories" in spec
        else default_max
    )
    min_frequency = (
        _number(checker, spec["min_frequency"], _j(path, "min_frequency"), low=0, high=1)
        if "min_frequency" in spec
        else 0.0
    )
    buckets = (
        checker.integer(spec["buckets"], _j(path, "buckets"), minimum=2) if "buckets" in spec else DEFAULT_HASH_BUCKETS
    )
    smoothing = (
        _number(checker, spec["smoothing"], _j(path, "smoothing"), low=0) if "smoothing" in spec else DEFAULT_SMOOTHING
    )
    order: str | tuple[str, ...] = "frequency"
    if "order" in spec:
        raw = spec["order"]
        if isinstance(raw, list):
            if not raw or any(isinstance(v, (dict, list)) or v is None for v in raw):
                checker.error(_j(path, "order"), "expected frequency, lexical or a list of category values")
                ok = False
            elif len({str(v) for v in raw}) != len(raw):
                checker.error(_j(path, "order"), "lists a category more than once")
                ok = False
            else:
                order = tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in raw)
        else:
            order = checker.string(raw, _j(path, "order"), choices=ORDINAL_ORDERS) or "frequency"
    if not ok or None in (max_categories, min_frequency, buckets, smoothing):
        return None
    return EncodeSpec(
        method=method,
        max_categories=max_categories,
        min_frequency=min_frequency,
        order=order,
        buckets=buckets,
        smoothing=smoothing,
    )


def _parse_transform(checker: Checker, value: Any, path: str, context: SectionContext) -> TransformSpec | None:
    spec = checker.mapping(
        value, path, optional=("columns", "match", "feature_set", "impute", "outliers", "scale", "encode")
    )
    if spec is None:
        return None
    selectors = [k for k in ("columns", "match", "feature_set") if k in spec]
    if len(selectors) != 1:
        checker.error(path, "give exactly one of columns, match or feature_set")
        return None
    columns: tuple[str, ...] = ()
    match = feature_set = None
    if "columns" in spec:
        columns = checker.names(spec["columns"], _j(path, "columns")) or ()
        if not columns:
            return None
    elif "match" in spec:
        match = checker.string(spec["match"], _j(path, "match"))
        if match is not None:
            try:
                re.compile(match)
            except re.error as exc:
                checker.error(_j(path, "match"), f"{match!r} is not a regular expression: {exc}")
                return None
    else:
        feature_set = checker.string(spec["feature_set"], _j(path, "feature_set"))
        if feature_set is not None and feature_set not in {fs.name for fs in context.feature_sets}:
            checker.error(_j(path, "feature_set"), f"feature set {feature_set!r} is not declared under feature_sets")
            return None
    impute = _parse_impute(checker, spec["impute"], _j(path, "impute")) if "impute" in spec else None
    outliers = _parse_outliers(checker, spec["outliers"], _j(path, "outliers")) if "outliers" in spec else None
    scale = None
    if "scale" in spec:
        body = checker.mapping(_short_form(spec["scale"], "method"), _j(path, "scale"), required=("method",))
        method = (
            checker.string(body["method"], _j(_j(path, "scale"), "method"), choices=SCALE_METHODS)
            if body and "method" in body
            else None
        )
        scale = ScaleSpec(method) if method else None
    encode = _parse_encode(checker, spec["encode"], _j(path, "encode")) if "encode" in spec else None
    if not any(k in spec for k in ("impute", "outliers", "scale", "encode")):
        checker.error(path, "declares no step (impute, outliers, scale or encode)")
        return None
    if "encode" in spec and ("outliers" in spec or "scale" in spec):
        checker.error(path, "encode is for categorical columns and cannot be combined with outliers or scale")
        return None
    if "encode" in spec and impute is not None and impute.strategy in NUMERIC_IMPUTE:
        checker.error(
            _j(path, "impute"),
            f"a categorical column cannot be imputed with the {impute.strategy}; use mode or constant",
        )
        return None
    if any(
        k in spec and v is None
        for k, v in (("impute", impute), ("outliers", outliers), ("scale", scale), ("encode", encode))
    ):
        return None
    return TransformSpec(
        columns=columns,
        match=match,
        feature_set=feature_set,
        impute=impute,
        outliers=outliers,
        scale=scale,
        encode=encode,
        path=path,
    )


def _parse_timeseries(checker: Checker, value: Any, path: str, context: SectionContext) -> TimeseriesSpec | None:
    spec = checker.mapping(
        value, path, required=("feature_set", "column", "window"), optional=("lags", "diffs", "rolling_zscore", "ema")
    )
    if spec is None or not {"feature_set", "column", "window"} <= set(spec):
        return None
    fs_name = checker.string(spec["feature_set"], _j(path, "feature_set"))
    fs = next((f for f in context.feature_sets if f.name == fs_name), None)
    if fs_name is not None and fs is None:
        checker.error(_j(path, "feature_set"), f"feature set {fs_name!r} is not declared under feature_sets")
        return None
    column = checker.string(spec["column"], _j(path, "column"))
    if fs is not None and column is not None:
        feature = next((f for f in fs.features if f.name == column), None)
        if feature is None:
            checker.error(_j(path, "column"), f"{column!r} is not a feature of feature set {fs.name!r}")
            return None
        if feature.dtype not in (
            "bigint",
            "int",
            "smallint",
            "tinyint",
            "double",
            "float",
        ) and not feature.dtype.startswith("decimal"):
            checker.error(_j(path, "column"), f"feature {column!r} is {feature.dtype}, helpers need a number")
            return None
    try:
        window_seconds = parse_duration(spec["window"])
    except ValueError as exc:
        checker.error(_j(path, "window"), str(exc))
        return None
    ints: dict[str, tuple[int, ...]] = {}
    for key in ("lags", "diffs"):
        raw = spec.get(key, [])
        raw = [raw] if isinstance(raw, int) and not isinstance(raw, bool) else raw
        if not isinstance(raw, list) or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in raw):
            checker.error(_j(path, key), "expected a list of positive integers (row offsets)")
            return None
        ints[key] = tuple(dict.fromkeys(raw))
    zscore = checker.boolean(spec["rolling_zscore"], _j(path, "rolling_zscore")) if "rolling_zscore" in spec else False
    alpha = None
    ema_name = None
    if "ema" in spec:
        ema = checker.mapping(spec["ema"], _j(path, "ema"), optional=("span", "alpha", "name"))
        if ema is None:
            return None
        if ("span" in ema) == ("alpha" in ema):
            checker.error(_j(path, "ema"), "give exactly one of span (rows, >= 1) or alpha (0 < alpha <= 1)")
            return None
        if "span" in ema:
            span = _number(checker, ema["span"], _j(_j(path, "ema"), "span"), low=1)
            if span is None:
                return None
            alpha = 2.0 / (span + 1.0)
        else:
            alpha = _number(checker, ema["alpha"], _j(_j(path, "ema"), "alpha"), low=0, high=1, low_open=True)
            if alpha is None:
                return None
        if "name" in ema:
            ema_name = checker.string(ema["name"], _j(_j(path, "ema"), "name"), identifier=True)
    if zscore is None or column is None or fs is None:
        return None
    out = TimeseriesSpec(
        feature_set=fs.name,
        column=column,
        window=str(spec["window"]).strip(),
        window_seconds=window_seconds,
        lags=ints["lags"],
        diffs=ints["diffs"],
        rolling_zscore=zscore,
        ema_alpha=alpha,
        ema_name=ema_name,
    )
    if not out.output_columns:
        checker.error(path, "declares no helper (lags, diffs, rolling_zscore or ema)")
        return None
    existing = set(fs.feature_names)
    for name in out.output_columns:
        if name in existing:
            checker.error(path, f"output column {name!r} clashes with a feature of {fs.name!r}")
            return None
    return out


def parse_preprocessing_section(
    checker: Checker, value: Any, path: str, context: SectionContext
) -> PreprocessingSpec | None:
    """Section parser registered in :data:`featuremill.config.SECTIONS` under ``preprocessing``."""
    spec = checker.mapping(
        value,
        path,
        optional=(
            "name",
            "label",
            "key",
            "folds",
            "seed",
            "accuracy",
            "max_levels",
            "remainder",
            "transforms",
            "timeseries",
            "serving",
        ),
    )
    if spec is None:
        return None
    default_name = context.document.get("pipeline") if isinstance(context.document.get("pipeline"), str) else "default"
    name = checker.string(spec["name"], _j(path, "name"), identifier=True) if "name" in spec else default_name
    label = checker.string(spec["label"], _j(path, "label")) if "label" in spec else None
    if label and is_internal(label):
        checker.error(_j(path, "label"), f"label {reserved_name_message(label)}")
        label = None
    key = checker.names(spec["key"], _j(path, "key")) if "key" in spec else ()
    folds = checker.integer(spec["folds"], _j(path, "folds"), minimum=2) if "folds" in spec else DEFAULT_FOLDS
    seed = checker.integer(spec["seed"], _j(path, "seed")) if "seed" in spec else 42
    accuracy = (
        checker.integer(spec["accuracy"], _j(path, "accuracy"), minimum=100) if "accuracy" in spec else DEFAULT_ACCURACY
    )
    max_levels = (
        checker.integer(spec["max_levels"], _j(path, "max_levels"), minimum=1)
        if "max_levels" in spec
        else DEFAULT_MAX_LEVELS
    )
    remainder = (
        checker.string(spec["remainder"], _j(path, "remainder"), choices=("passthrough", "drop"))
        if "remainder" in spec
        else "passthrough"
    )
    transforms: list[TransformSpec] = []
    raw = spec.get("transforms", [])
    if not isinstance(raw, list):
        checker.error(_j(path, "transforms"), "expected a list of transforms")
        raw = []
    explicit: dict[str, str] = {}
    for i, body in enumerate(raw):
        t = _parse_transform(checker, body, f"{path}.transforms[{i}]", context)
        if t is None:
            continue
        for c in t.columns:
            if c in explicit:
                checker.error(f"{path}.transforms[{i}].columns", f"column {c!r} is already listed at {explicit[c]}")
            explicit[c] = f"{path}.transforms[{i}]"
        transforms.append(t)
    timeseries: list[TimeseriesSpec] = []
    raw_ts = spec.get("timeseries", [])
    if not isinstance(raw_ts, list):
        checker.error(_j(path, "timeseries"), "expected a list of helpers")
        raw_ts = []
    seen_outputs: set[tuple[str, str]] = set()
    for i, body in enumerate(raw_ts):
        ts = _parse_timeseries(checker, body, f"{path}.timeseries[{i}]", context)
        if ts is None:
            continue
        for out in ts.output_columns:
            if (ts.feature_set, out) in seen_outputs:
                checker.error(f"{path}.timeseries[{i}]", f"output column {out!r} is produced twice")
            seen_outputs.add((ts.feature_set, out))
        timeseries.append(ts)
    serving = ServingSpec()
    if "serving" in spec:
        body = checker.mapping(spec["serving"], _j(path, "serving"), required=("feature_sets",), optional=("version",))
        if body is not None and "feature_sets" in body:
            sets = checker.names(body["feature_sets"], _j(_j(path, "serving"), "feature_sets")) or ()
            declared = {fs.name for fs in context.feature_sets}
            for s in sets:
                if s not in declared:
                    checker.error(_j(_j(path, "serving"), "feature_sets"), f"feature set {s!r} is not declared")
            version = None
            if "version" in body and body["version"] != "latest":
                version = checker.integer(body["version"], _j(_j(path, "serving"), "version"), minimum=1)
            serving = ServingSpec(feature_sets=tuple(sets), version=version)
    if not transforms and not timeseries:
        checker.error(path, "declares no transforms and no timeseries helpers")
    if any(t.encode and t.encode.method == "target" for t in transforms) and not key:
        checker.error(
            _j(path, "key"),
            "is required with target encoding: the row key assigns each training row "
            "to an out-of-fold group (e.g. key: [customer_id, label_time])",
        )
    if None in (name, folds, seed, accuracy, max_levels, remainder) or (("label" in spec) and label is None):
        return None
    return PreprocessingSpec(
        name=name,
        transforms=tuple(transforms),
        label=label,
        key=tuple(key),
        folds=folds,
        seed=seed,
        accuracy=accuracy,
        max_levels=max_levels,
        remainder=remainder,
        timeseries=tuple(timeseries),
        serving=serving,
    )
