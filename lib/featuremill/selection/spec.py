"""The ``selection:`` section of a pipeline file (all keys optional; defaults documented in
``docs/preprocessing.md#feature-selection``)::

    selection:
      label: churned
      task: auto                 # classification | regression | auto
      exclude: [customer_id, label_time]
      bins: 10                   # quantile bins for mutual information and chi-square
      near_zero_variance: {freq_ratio: 19, unique_percent: 10}
      correlation: {threshold: 0.9, method: pearson}
      alpha: 0.05                # Benjamini-Hochberg false discovery rate for the tests
      model: {trees: 50, max_depth: 6, sample_rows: 200000, holdout_fraction: 0.3,
              permutation_rows: 5000, permutation_repeats: 3, min_importance: 0.01}
      pca: {enabled: false, variance: 0.95}
      max_features: 50
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from featuremill.config import Checker, SectionContext
from featuremill.core.columns import is_internal, reserved_name_message

TASKS = ("auto", "classification", "regression")
CORRELATION_METHODS = ("pearson", "spearman")


@dataclass(frozen=True)
class ModelSpec:
    trees: int = 50
    max_depth: int = 6
    sample_rows: int = 200_000
    holdout_fraction: float = 0.3
    permutation_rows: int = 5_000
    permutation_repeats: int = 3
    min_importance: float = 0.01  # permutation importance, as a share of the baseline loss


@dataclass(frozen=True)
class SelectionSpec:
    label: str | None = None
    task: str = "auto"
    features: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    bins: int = 10
    max_levels: int = 50  # categorical levels kept per feature for the tests and the model
    nzv_freq_ratio: float = 95 / 5
    nzv_unique_percent: float = 10.0
    correlation_threshold: float = 0.9
    correlation_method: str = "pearson"
    alpha: float = 0.05
    model: ModelSpec = ModelSpec()
    pca: bool = False
    pca_variance: float = 0.95
    max_features: int | None = None
    seed: int = 42
    max_classes: int = 50


def _num(checker: Checker, value: Any, path: str, low: float, high: float | None = None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        checker.error(path, f"expected a number, got {value!r}")
        return None
    if value < low or (high is not None and value > high):
        checker.error(path, f"{value} is outside [{low}, {high if high is not None else 'inf'}]")
        return None
    return float(value)


def parse_selection_section(checker: Checker, value: Any, path: str, context: SectionContext) -> SelectionSpec | None:
    """Section parser registered in :data:`featuremill.config.SECTIONS` under ``selection``."""
    spec = checker.mapping(
        value if value is not None else {},
        path,
        optional=(
            "label",
            "task",
            "features",
            "exclude",
            "bins",
            "max_levels",
            "near_zero_variance",
            "correlation",
            "alpha",
            "model",
            "pca",
            "max_features",
            "seed",
            "max_classes",
        ),
    )
    if spec is None:
        return None
    out: dict[str, Any] = {}
    ok = True
    if "label" in spec:
        out["label"] = checker.string(spec["label"], f"{path}.label")
        if out["label"] and is_internal(out["label"]):
            checker.error(f"{path}.label", f"label {reserved_name_message(out['label'])}")
            ok = False
    if "task" in spec:
        out["task"] = checker.string(spec["task"], f"{path}.task", choices=TASKS)
    for key in ("features", "exclude"):
        if key in spec:
            out[key] = checker.names(spec[key], f"{path}.{key}")
    # internal columns are never candidates: listing one in exclude is harmless, in features an error
    for name in out.get("features") or ():
        if is_internal(name):
            checker.error(f"{path}.features", f"feature {reserved_name_message(name)}")
            ok = False
    for key, low in (("bins", 2), ("max_levels", 2), ("max_features", 1), ("seed", 0), ("max_classes", 2)):
        if key in spec:
            out[key] = checker.integer(spec[key], f"{path}.{key}", minimum=low)
    if "alpha" in spec:
        out["alpha"] = _num(checker, spec["alpha"], f"{path}.alpha", 0.0, 1.0)
    if "near_zero_variance" in spec:
        body = checker.mapping(
            spec["near_zero_variance"], f"{path}.near_zero_variance", optional=("freq_ratio", "unique_percent")
        )
        if body is not None:
            if "freq_ratio" in body:
                out["nzv_freq_ratio"] = _num(checker, body["freq_ratio"], f"{path}.near_zero_variance.freq_ratio", 1.0)
            if "unique_percent" in body:
                out["nzv_unique_percent"] = _num(
                    checker, body["unique_percent"], f"{path}.near_zero_variance.unique_percent", 0.0, 100.0
                )
    if "correlation" in spec:
        body = checker.mapping(spec["correlation"], f"{path}.correlation", optional=("threshold", "method"))
        if body is not None:
            if "threshold" in body:
                out["correlation_threshold"] = _num(
                    checker, body["threshold"], f"{path}.correlation.threshold", 0.0, 1.0
                )
            if "method" in body:
                out["correlation_method"] = checker.string(
                    body["method"], f"{path}.correlation.method", choices=CORRELATION_METHODS
                )
    if "model" in spec:
        body = checker.mapping(
            spec["model"],
            f"{path}.model",
            optional=(
                "trees",
                "max_depth",
                "sample_rows",
                "holdout_fraction",
                "permutation_rows",
                "permutation_repeats",
                "min_importance",
            ),
        )
        if body is not None:
            m: dict[str, Any] = {}
            for key, low in (
                ("trees", 1),
                ("max_depth", 1),
                ("sample_rows", 100),
                ("permutation_rows", 50),
                ("permutation_repeats", 1),
            ):
                if key in body:
                    m[key] = checker.integer(body[key], f"{path}.model.{key}", minimum=low)
            if "holdout_fraction" in body:
                m["holdout_fraction"] = _num(
                    checker, body["holdout_fraction"], f"{path}.model.holdout_fraction", 0.05, 0.9
                )
            if "min_importance" in body:
                m["min_importance"] = _num(checker, body["min_importance"], f"{path}.model.min_importance", 0.0)
            if any(v is None for v in m.values()):
                ok = False
            else:
                out["model"] = ModelSpec(**m)
    if "pca" in spec:
        body = checker.mapping(spec["pca"], f"{path}.pca", optional=("enabled", "variance"))
        if body is not None:
            if "enabled" in body:
                out["pca"] = checker.boolean(body["enabled"], f"{path}.pca.enabled")
            if "variance" in body:
                out["pca_variance"] = _num(checker, body["variance"], f"{path}.pca.variance", 0.01, 1.0)
    if not ok or any(v is None for v in out.values()):
        return None
    return SelectionSpec(**out)
