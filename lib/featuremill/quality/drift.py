"""Feature drift between a reference selection and a current selection of a table.

**Reference profile** (fitted once, stored versioned in ``<warehouse>/<pipeline>/drift_references``):

* numeric feature: bins from the reference's approximate deciles (``bins`` quantiles), between the
  reference min and max, plus explicit bins ``null`` (null and NaN), ``< min`` and ``> max``
  (out of range; empty in the reference by construction); a quantile grid of ``grid`` points
  (probabilities (k - 0.5) / grid) for KS and Wasserstein; mean and population std;
* categorical feature (string, boolean): the ``top_categories`` most frequent values as bins, plus
  ``null``, ``__other__`` (seen in the reference, not in the top) and ``__unseen__`` (never seen
  in the reference). Up to ``max_categories`` reference values are stored to tell "other" from
  "unseen"; with more distinct values than that, unseen values count as other (noted).

Fitting costs three Spark jobs (moments and deciles; category counts; the reference's own bin
counts), scoring a current selection one: every feature is stacked into (feature, value, bin)
rows and aggregated by feature, so the number of jobs and of aggregate expressions does not grow
with the number of features. The reference is reused for the same table, selection and binning
settings, so a new partition costs one aggregation; ``refit=True`` forces a new fit.

**Metrics** per feature (see :mod:`featuremill.core.stats` for formulas): PSI and
Jensen-Shannon distance on the bins; KS statistic and Wasserstein-1 (normalised by the
reference std) on the quantile grids; chi-square on the 2 x k table of categorical bins with
Cramer's V; the change in null share; the share of current values out of the reference range
(numeric) or unseen (categorical).

**Decisions** use effect sizes against warn / alert thresholds (``quality.drift.thresholds``,
defaults in :data:`featuremill.quality.spec.DEFAULT_THRESHOLDS`). p-values (KS, chi-square) are
adjusted with Benjamini-Hochberg across all features of the run and only gate their effect size:
KS or Cramer's V count only when their adjusted p-value is below ``fdr_alpha``, never alone, so
large samples do not alarm on negligible differences and small samples do not alarm on noise.
Features with fewer than ``min_rows`` rows on either side are ``skipped``.

**Warming-up values** (feature tables): a value whose window reaches before the table's first
event date (:mod:`featuremill.transforms.warmup`; a 30-day sum on day 3 of the data) is not
comparable with later values, so by default it is left out of both the reference and the
current selection, per feature (a 1-hour feature keeps its rows while a 30-day one warms up).
The report counts the values left out per side (``warming_up_reference`` /
``warming_up_current``) and records the first history date; ``include_warming_up=True``
(``featuremill drift --include-warming-up``) compares every value.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from featuremill.core import stats
from featuremill.core.local_rows import local_dataframe
from featuremill.core.report_html import json_safe
from featuremill.core.sql import col
from featuremill.quality.profile import column_kind
from featuremill.quality.spec import DriftSettings
from featuremill.quality.tables import stack

log = logging.getLogger(__name__)

NULL_BIN = "null"
OTHER_BIN = "__other__"
UNSEEN_BIN = "__unseen__"
LEVELS = ("ok", "warn", "alert")

REFERENCES_SCHEMA = (
    "reference_id string, pipeline string, table_name string, selection string, table_version bigint, "
    "created_at timestamp, params string, binning_rule string, feature string, kind string, data_type string, "
    "rows bigint, nulls bigint, warming_up bigint, mean double, std double, min double, max double, "
    "edges array<double>, "
    "categories array<string>, known_categories array<string>, unseen_tracked boolean, bin_labels array<string>, "
    "bin_counts array<bigint>, grid array<double>"
)
RESULTS_SCHEMA = (
    "drift_run_id string, pipeline string, table_name string, created_at timestamp, reference_id string, "
    "reference_selection string, reference_version bigint, current_selection string, current_version bigint, "
    "feature string, kind string, rows_reference bigint, rows_current bigint, warming_up_reference bigint, "
    "warming_up_current bigint, null_share_reference double, "
    "null_share_current double, null_share double, out_of_range_share double, unseen_share double, "
    "unseen_example string, unseen_distinct bigint, psi double, js double, ks double, ks_pvalue double, "
    "wasserstein double, wasserstein_norm double, chi2 double, chi2_dof int, chi2_pvalue double, cramers_v double, "
    "p_adjusted double, level string, reasons string, bin_labels array<string>, reference_counts array<bigint>, "
    "current_counts array<bigint>, reference_grid array<double>, current_grid array<double>"
)


def binning_rule(settings: DriftSettings) -> str:
    """The binning contract recorded with every reference."""
    return (
        f"numeric: {settings.bins} bins at the reference's approximate {settings.bins}-quantiles "
        f"(percentile_approx accuracy {settings.accuracy}) between its min and max, plus null (null, NaN), "
        f"'< min' and '> max' bins; {settings.grid}-point quantile grid at (k-0.5)/{settings.grid}. "
        f"categorical: top {settings.top_categories} reference values, null, {OTHER_BIN} (other reference "
        f"values, up to {settings.max_categories} stored), {UNSEEN_BIN}. PSI epsilon {settings.psi_epsilon}."
    )


@dataclass
class FeatureReference:
    """The stored reference of one feature."""

    feature: str
    kind: str
    data_type: str
    rows: int = 0
    nulls: int = 0
    warming_up: int = 0  # reference values left out because their window was still filling
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    edges: list[float] = field(default_factory=list)  # interior edges (numeric)
    categories: list[str] = field(default_factory=list)  # top categories, each its own bin
    known_categories: list[str] = field(default_factory=list)
    unseen_tracked: bool = True
    bin_labels: list[str] = field(default_factory=list)
    bin_counts: list[int] = field(default_factory=list)
    grid: list[float] = field(default_factory=list)


@dataclass
class Reference:
    reference_id: str
    pipeline: str
    table: str
    selection: str
    table_version: int | None
    created_at: str
    params: dict
    binning_rule: str
    features: list[FeatureReference]

    def feature(self, name: str) -> FeatureReference | None:
        return next((f for f in self.features if f.feature == name), None)


@dataclass
class Counts:
    """What scoring measures for one feature of one selection."""

    rows: int
    non_null: int
    bin_counts: list[int]
    grid: list[float]
    unseen_example: str | None = None
    unseen_distinct: int | None = None
    warming_up: int = 0  # values left out (not in rows) because their window was still filling


@dataclass
class FeatureDrift:
    feature: str
    kind: str
    rows_reference: int
    rows_current: int
    null_share_reference: float | None
    null_share_current: float | None
    warming_up_reference: int = 0
    warming_up_current: int = 0
    null_share: float | None = None
    out_of_range_share: float | None = None
    unseen_share: float | None = None
    unseen_example: str | None = None
    unseen_distinct: int | None = None
    psi: float | None = None
    js: float | None = None
    ks: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    wasserstein_norm: float | None = None
    chi2: float | None = None
    chi2_dof: int | None = None
    chi2_pvalue: float | None = None
    cramers_v: float | None = None
    p_adjusted: float | None = None
    level: str = "ok"
    reasons: list[str] = field(default_factory=list)
    bin_labels: list[str] = field(default_factory=list)
    reference_counts: list[int] = field(default_factory=list)
    current_counts: list[int] = field(default_factory=list)
    reference_grid: list[float] = field(default_factory=list)
    current_grid: list[float] = field(default_factory=list)


@dataclass
class DriftReport:
    drift_run_id: str
    pipeline: str
    table: str
    created_at: str
    reference_id: str
    reference_selection: str
    reference_version: int | None
    current_selection: str
    current_version: int | None
    settings: dict
    binning_rule: str
    features: list[FeatureDrift]
    reference_reused: bool = False
    #: first history date and whether warming-up values were left out (feature tables)
    warm_up: dict = field(default_factory=dict)

    @property
    def warming_up(self) -> tuple[int, int]:
        """Values left out as warming up: (reference, current), summed over features."""
        return (
            sum(f.warming_up_reference for f in self.features),
            sum(f.warming_up_current for f in self.features),
        )

    @property
    def level(self) -> str:
        levels = [f.level for f in self.features if f.level in LEVELS]
        return max(levels, key=LEVELS.index) if levels else "ok"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["level"] = self.level
        return json_safe(data)


# --------------------------------------------------------------------------------------------
# Spark passes
# --------------------------------------------------------------------------------------------


def _value(name: str, data_type: str):
    """Numeric features as double with NaN -> null; categorical as string."""
    from pyspark.sql import functions as F

    c = col(name)
    if column_kind(data_type) == "numeric":
        value = c.cast("double")
        return F.when(~F.isnan(c), value) if data_type in ("double", "float") else value
    return c.cast("string")


def feature_kinds(df, features: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Feature -> (kind, data type); only numeric and categorical columns can be compared."""
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    out = {}
    for name in features:
        kind = column_kind(types[name])
        if kind in ("numeric", "categorical"):
            out[name] = (kind, types[name])
        else:
            log.info("drift: skipping %s (%s): only numeric and categorical columns are compared", name, types[name])
    return out


def fit_reference(
    df, features: Sequence[str], settings: DriftSettings, *, complete: dict | None = None
) -> list[FeatureReference]:
    """Fit the reference profile of ``features`` on ``df`` (three Spark jobs at most).

    ``complete`` maps a feature to a Boolean Column: rows where it is false are left out of that
    feature's profile (counted in ``warming_up``); features not in it keep every row.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    kinds = feature_kinds(df, features)
    refs = {n: FeatureReference(feature=n, kind=k, data_type=t) for n, (k, t) in kinds.items()}
    if not refs:
        return []
    deciles = [i / settings.bins for i in range(1, settings.bins)]
    # Job 1: moments and deciles of numeric features, distinct counts of categorical ones.
    complete = complete or {}
    entries = [
        {
            "f": F.lit(n),
            "num": _kept(_value(n, r.data_type), complete.get(n))
            if r.kind == "numeric"
            else F.lit(None).cast("double"),
            "cat": _kept(_value(n, r.data_type), complete.get(n))
            if r.kind == "categorical"
            else F.lit(None).cast("string"),
        }
        for n, r in refs.items()
    ]
    stacked = stack(df, entries)
    for r in (
        stacked.groupBy("f")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.min("num").alias("min"),
            F.max("num").alias("max"),
            F.avg("num").alias("mean"),
            F.stddev_pop("num").alias("std"),
            F.percentile_approx("num", deciles, settings.accuracy).alias("q"),
            F.approx_count_distinct("cat").alias("distinct"),
        )
        .collect()
    ):
        ref = refs[r["f"]]
        if ref.kind == "numeric":
            ref.min, ref.max = _f(r["min"]), _f(r["max"])
            ref.mean, ref.std = _f(r["mean"]), _f(r["std"])
            if ref.min is not None:
                ref.edges = sorted({float(q) for q in (r["q"] or []) if ref.min < float(q) <= ref.max})
    # Job 2: the most frequent values of every categorical feature, at most max_categories + 1.
    categorical = [n for n, r in refs.items() if r.kind == "categorical"]
    if categorical:
        entries = [{"f": F.lit(n), "v": _kept(_value(n, refs[n].data_type), complete.get(n))} for n in categorical]
        counted = stack(df, entries).where(F.col("v").isNotNull()).groupBy("f", "v").count()
        rank = F.row_number().over(Window.partitionBy("f").orderBy(F.col("count").desc(), F.col("v")))
        found: dict[str, list[tuple[str, int]]] = {n: [] for n in categorical}
        for r in counted.withColumn("rank", rank).where(F.col("rank") <= settings.max_categories + 1).collect():
            found[r["f"]].append((r["v"], int(r["count"])))
        for n, values in found.items():
            values.sort(key=lambda kv: (-kv[1], kv[0]))
            ref = refs[n]
            ref.unseen_tracked = len(values) <= settings.max_categories
            kept = values[: settings.max_categories]
            ref.categories = [v for v, _ in kept[: settings.top_categories]]
            ref.known_categories = sorted(v for v, _ in kept)
    for ref in refs.values():
        ref.bin_labels = bin_labels(ref)
    # Job 3: the reference's own bin counts and quantile grid, with exactly the scoring code.
    counts = score_counts(df, list(refs.values()), settings, complete=complete)
    for n, ref in refs.items():
        c = counts[n]
        ref.rows, ref.nulls, ref.warming_up = c.rows, c.rows - c.non_null, c.warming_up
        ref.bin_counts, ref.grid = c.bin_counts, c.grid
    return [refs[n] for n in features if n in refs]


def _kept(value, keep):
    """``value`` where ``keep`` holds (null elsewhere); ``value`` itself without a condition."""
    from pyspark.sql import functions as F

    return value if keep is None else F.when(keep, value)


def bin_labels(ref: FeatureReference) -> list[str]:
    if ref.kind == "numeric":
        if ref.min is None:
            return [NULL_BIN]
        bounds = [ref.min] + ref.edges
        inner = [f"[{_g(a)}, {_g(b)})" for a, b in zip(bounds, bounds[1:])] + [f"[{_g(bounds[-1])}, {_g(ref.max)}]"]
        return [NULL_BIN, f"< {_g(ref.min)}"] + inner + [f"> {_g(ref.max)}"]
    return [NULL_BIN] + list(ref.categories) + [OTHER_BIN, UNSEEN_BIN]


def bin_expression(ref: FeatureReference):
    """Integer Column: the bin of each row (index into :func:`bin_labels`)."""
    from pyspark.sql import functions as F

    value = _value(ref.feature, ref.data_type)
    if ref.kind == "numeric":
        if ref.min is None:
            return F.lit(0)
        inner = F.lit(2)
        for edge in ref.edges:
            inner = inner + (value >= F.lit(edge)).cast("int")
        above = len(ref.edges) + 3
        return (
            F.when(value.isNull(), F.lit(0))
            .when(value < F.lit(ref.min), F.lit(1))
            .when(value > F.lit(ref.max), F.lit(above))
            .otherwise(inner)
        )
    expr = F.when(value.isNull(), F.lit(0))
    for i, category in enumerate(ref.categories, start=1):
        expr = expr.when(value == F.lit(category), F.lit(i))
    other = len(ref.categories) + 1
    if ref.unseen_tracked:
        extra = [v for v in ref.known_categories if v not in set(ref.categories)]
        if extra:
            expr = expr.when(value.isin(*extra), F.lit(other))
        return expr.otherwise(F.lit(other + 1))
    return expr.otherwise(F.lit(other))


def score_counts(
    df, refs: Sequence[FeatureReference], settings: DriftSettings, *, complete: dict | None = None
) -> dict[str, Counts]:
    """Bin counts and quantile grids of ``df`` for every reference feature: one Spark job.

    Rows are stacked as (feature, numeric value, bin, unseen value, keep) and aggregated by
    feature with a fixed set of expressions (one count per bin index up to the largest bin
    count). Rows where ``complete[feature]`` is false are counted as ``warming_up`` only.
    """
    from pyspark.sql import functions as F

    if not refs:
        return {}
    grid = stats.quantile_grid(settings.grid)
    max_bins = max(len(r.bin_labels) for r in refs)
    entries = []
    for r in refs:
        value = _value(r.feature, r.data_type)
        num = value if r.kind == "numeric" else F.lit(None).cast("double")
        unseen_bin = len(r.bin_labels) - 1
        unseen = (
            F.when(bin_expression(r) == F.lit(unseen_bin), value)
            if r.kind == "categorical" and r.unseen_tracked
            else F.lit(None).cast("string")
        )
        entries.append(
            {
                "f": F.lit(r.feature),
                "num": num,
                "bin": bin_expression(r),
                "present": value.isNotNull(),
                "unseen": unseen.cast("string"),
                "keep": (complete or {}).get(r.feature, F.lit(True)),
            }
        )
    stacked = stack(df, entries)
    keep = F.col("keep")
    aggs = [
        F.count(F.when(keep, True)).alias("rows"),
        F.count(F.when(keep & F.col("present"), True)).alias("non_null"),
        F.percentile_approx(F.when(keep, F.col("num")), grid, settings.accuracy).alias("grid"),
        F.first(F.when(keep, F.col("unseen")), ignorenulls=True).alias("unseen_example"),
        F.approx_count_distinct(F.when(keep, F.col("unseen"))).alias("unseen_distinct"),
        F.count(F.when(~keep, True)).alias("warming_up"),
    ]
    aggs += [F.count(F.when(keep & (F.col("bin") == F.lit(i)), True)).alias(f"b{i}") for i in range(max_bins)]
    out = {}
    by_name = {r.feature: r for r in refs}
    for row in stacked.groupBy("f").agg(*aggs).collect():
        r = by_name[row["f"]]
        out[r.feature] = Counts(
            rows=int(row["rows"]),
            non_null=int(row["non_null"]),
            bin_counts=[int(row[f"b{i}"]) for i in range(len(r.bin_labels))],
            grid=([float(v) for v in row["grid"]] if row["grid"] is not None and r.kind == "numeric" else []),
            unseen_example=row["unseen_example"],
            unseen_distinct=int(row["unseen_distinct"]) if r.kind == "categorical" else None,
            warming_up=int(row["warming_up"]),
        )
    for r in refs:  # an empty selection yields no group at all
        out.setdefault(r.feature, Counts(rows=0, non_null=0, bin_counts=[0] * len(r.bin_labels), grid=[]))
    return out


# --------------------------------------------------------------------------------------------
# Comparison and decision (driver, small vectors)
# --------------------------------------------------------------------------------------------


def compare(
    refs: Sequence[FeatureReference], current: dict[str, Counts], settings: DriftSettings
) -> list[FeatureDrift]:
    """Drift metrics and levels of every feature (see the module docstring)."""
    out = []
    for ref in refs:
        cur = current[ref.feature]
        d = FeatureDrift(
            feature=ref.feature,
            kind=ref.kind,
            rows_reference=ref.rows,
            rows_current=cur.rows,
            null_share_reference=_share(ref.nulls, ref.rows),
            null_share_current=_share(cur.rows - cur.non_null, cur.rows),
            warming_up_reference=ref.warming_up,
            warming_up_current=cur.warming_up,
            bin_labels=list(ref.bin_labels),
            reference_counts=list(ref.bin_counts),
            current_counts=list(cur.bin_counts),
            reference_grid=list(ref.grid),
            current_grid=list(cur.grid),
        )
        if d.null_share_reference is not None and d.null_share_current is not None:
            d.null_share = abs(d.null_share_current - d.null_share_reference)
        if cur.rows > 0 and ref.rows > 0:
            d.psi = stats.psi(ref.bin_counts, cur.bin_counts, epsilon=settings.psi_epsilon)
            d.js = stats.js_distance(ref.bin_counts, cur.bin_counts)
        if ref.kind == "numeric":
            if cur.rows > 0 and len(cur.bin_counts) > 2:
                d.out_of_range_share = (cur.bin_counts[1] + cur.bin_counts[-1]) / cur.rows
            if ref.grid and cur.grid:
                d.ks = stats.ks_from_quantiles(ref.grid, cur.grid)
                d.ks_pvalue = stats.ks_pvalue(d.ks, ref.rows - ref.nulls, cur.non_null)
                d.wasserstein = stats.wasserstein_from_quantiles(ref.grid, cur.grid)
                if ref.std and ref.std > 0:
                    d.wasserstein_norm = d.wasserstein / ref.std
                else:
                    d.wasserstein_norm = 0.0 if d.wasserstein == 0 else math.inf
        else:
            d.unseen_share = (cur.bin_counts[-1] / cur.rows) if cur.rows > 0 and ref.unseen_tracked else None
            d.unseen_example, d.unseen_distinct = cur.unseen_example, cur.unseen_distinct
            if cur.rows > 0 and ref.rows > 0:
                d.chi2, d.chi2_dof = stats.chi2_contingency(ref.bin_counts, cur.bin_counts)
                d.chi2_pvalue = stats.chi2_sf(d.chi2, d.chi2_dof)
                d.cramers_v = stats.cramers_v(d.chi2, ref.rows + cur.rows)
        out.append(d)
    adjusted = stats.benjamini_hochberg([d.ks_pvalue if d.kind == "numeric" else d.chi2_pvalue for d in out])
    for d, p in zip(out, adjusted):
        d.p_adjusted = p
        _decide(d, settings)
    return out


def _decide(d: FeatureDrift, settings: DriftSettings) -> None:
    if d.rows_reference < settings.min_rows or d.rows_current < settings.min_rows:
        d.level = "skipped"
        d.reasons = [
            f"too few rows to judge ({d.rows_reference} reference, {d.rows_current} current; "
            f"min_rows {settings.min_rows})"
        ]
        return
    gated_by_p = {"ks", "cramers_v"}
    level = "ok"
    reasons = []
    for metric in ("psi", "js", "ks", "wasserstein", "cramers_v", "null_share", "out_of_range_share", "unseen_share"):
        value = getattr(d, "wasserstein_norm" if metric == "wasserstein" else metric)
        threshold = settings.threshold(metric)
        if value is None or threshold is None or (isinstance(value, float) and math.isnan(value)):
            continue
        hit = None
        if threshold.alert is not None and value >= threshold.alert:
            hit = "alert"
        elif threshold.warn is not None and value >= threshold.warn:
            hit = "warn"
        if hit is None:
            continue
        if metric in gated_by_p and (d.p_adjusted is None or d.p_adjusted >= settings.fdr_alpha):
            continue  # a large effect on too little data: not significant after BH
        limit = threshold.alert if hit == "alert" else threshold.warn
        reasons.append(f"{metric} {value:.4g} >= {limit:g} ({hit})")
        if LEVELS.index(hit) > LEVELS.index(level):
            level = hit
    if d.unseen_share and d.unseen_example is not None:
        reasons.append(f"unseen values, e.g. {d.unseen_example!r} (~{d.unseen_distinct} distinct)")
    d.level, d.reasons = level, reasons


# --------------------------------------------------------------------------------------------
# Storage and the whole command
# --------------------------------------------------------------------------------------------


def store_reference(spark, path: str, reference: Reference, *, root: str) -> None:
    from pyspark.sql.types import _parse_datatype_string

    schema = _parse_datatype_string(REFERENCES_SCHEMA)
    created = dt.datetime.fromisoformat(reference.created_at).replace(tzinfo=None)
    params = json.dumps(reference.params, sort_keys=True)
    rows = [
        (
            reference.reference_id,
            reference.pipeline,
            reference.table,
            reference.selection,
            reference.table_version,
            created,
            params,
            reference.binning_rule,
            f.feature,
            f.kind,
            f.data_type,
            f.rows,
            f.nulls,
            f.warming_up,
            f.mean,
            f.std,
            f.min,
            f.max,
            f.edges,
            f.categories,
            f.known_categories,
            f.unseen_tracked,
            f.bin_labels,
            f.bin_counts,
            f.grid,
        )
        for f in reference.features
    ]
    from featuremill.storage import io

    io.append(local_dataframe(spark, rows, schema), path, root=root, merge_schema=True, what="drift reference table")
    log.info(
        "stored drift reference %s of %s (%s, %d features)",
        reference.reference_id,
        reference.table,
        reference.selection,
        len(rows),
    )


def load_reference(
    spark,
    path: str,
    *,
    table: str,
    selection: str,
    params: dict,
    features: Sequence[str],
    reference_id: str | None = None,
) -> Reference | None:
    """The latest stored reference for (table, selection, params) covering ``features``, or None."""
    from pyspark.sql import functions as F

    from featuremill.storage import io

    if not io.is_delta_table(spark, path):
        return None
    df = io.load_delta(spark, path)
    if reference_id:
        df = df.where(F.col("reference_id") == F.lit(reference_id))
    else:
        df = df.where(
            (F.col("table_name") == F.lit(table))
            & (F.col("selection") == F.lit(selection))
            & (F.col("params") == F.lit(json.dumps(params, sort_keys=True)))
        )
    rows = df.collect()
    if not rows:
        return None
    by_id: dict[str, list] = {}
    for r in rows:
        by_id.setdefault(r["reference_id"], []).append(r)
    for rid, group in sorted(by_id.items(), key=lambda kv: kv[1][0]["created_at"], reverse=True):
        names = {r["feature"] for r in group}
        if reference_id or set(features) <= names:
            first = group[0]
            feats = [
                FeatureReference(
                    feature=r["feature"],
                    kind=r["kind"],
                    data_type=r["data_type"],
                    rows=r["rows"],
                    nulls=r["nulls"],
                    warming_up=int(r.asDict().get("warming_up") or 0),  # older references: none
                    mean=r["mean"],
                    std=r["std"],
                    min=r["min"],
                    max=r["max"],
                    edges=list(r["edges"] or []),
                    categories=list(r["categories"] or []),
                    known_categories=list(r["known_categories"] or []),
                    unseen_tracked=bool(r["unseen_tracked"]),
                    bin_labels=list(r["bin_labels"] or []),
                    bin_counts=[int(x) for x in (r["bin_counts"] or [])],
                    grid=list(r["grid"] or []),
                )
                for r in group
            ]
            order = {n: i for i, n in enumerate(features)}
            feats = [f for f in feats if not features or f.feature in order]
            feats.sort(key=lambda f: order.get(f.feature, 0))
            return Reference(
                reference_id=rid,
                pipeline=first["pipeline"],
                table=first["table_name"],
                selection=first["selection"],
                table_version=first["table_version"],
                created_at=first["created_at"].isoformat(),
                params=json.loads(first["params"]),
                binning_rule=first["binning_rule"],
                features=feats,
            )
    return None


def store_results(spark, path: str, report: DriftReport, *, root: str) -> None:
    from pyspark.sql.types import _parse_datatype_string

    schema = _parse_datatype_string(RESULTS_SCHEMA)
    created = dt.datetime.fromisoformat(report.created_at).replace(tzinfo=None)
    rows = []
    for f in report.features:
        rows.append(
            (
                report.drift_run_id,
                report.pipeline,
                report.table,
                created,
                report.reference_id,
                report.reference_selection,
                report.reference_version,
                report.current_selection,
                report.current_version,
                f.feature,
                f.kind,
                f.rows_reference,
                f.rows_current,
                f.warming_up_reference,
                f.warming_up_current,
                f.null_share_reference,
                f.null_share_current,
                f.null_share,
                f.out_of_range_share,
                f.unseen_share,
                f.unseen_example,
                f.unseen_distinct,
                f.psi,
                f.js,
                f.ks,
                f.ks_pvalue,
                f.wasserstein,
                f.wasserstein_norm,
                f.chi2,
                f.chi2_dof,
                f.chi2_pvalue,
                f.cramers_v,
                f.p_adjusted,
                f.level,
                "; ".join(f.reasons),
                f.bin_labels,
                f.reference_counts,
                f.current_counts,
                f.reference_grid or None,
                f.current_grid or None,
            )
        )
    from featuremill.storage import io

    io.append(local_dataframe(spark, rows, schema), path, root=root, merge_schema=True, what="drift results table")
    log.info("stored drift results %s (%d features) in %s", report.drift_run_id, len(rows), path)


def run_drift(
    spark,
    config,
    *,
    table: str,
    reference,
    current,
    columns: Sequence[str] | None = None,
    refit: bool = False,
    store: bool = True,
    include_warming_up: bool = False,
) -> DriftReport:
    """Compare ``current`` with ``reference`` (both :class:`~featuremill.quality.tables.Selection`).

    Reuses the stored reference for the same table, selection and binning settings unless
    ``refit``; stores new references and the results in Delta when ``store``. On a feature
    table, values whose window reaches before the table's first event date are left out of both
    sides unless ``include_warming_up`` (see the module docstring).
    """
    from featuremill.quality.spec import quality_of
    from featuremill.quality.tables import columns_for_analysis, read_selection, resolve_table, shown

    quality = quality_of(config)
    settings = quality.drift
    spec = quality.table(table)
    ref_table = resolve_table(config, table)
    current_df, current_sel, current_version = read_selection(spark, ref_table, current)
    features = columns_for_analysis(
        current_df.schema, ref_table, columns=columns or spec.drift_columns or None, exclude=spec.drift_exclude
    )
    features = list(feature_kinds(current_df, features))
    params = settings.binning_params()
    warm = _warm_up(spark, config, ref_table, features, include=include_warming_up)
    ref_first = current_first = None
    if warm is not None:
        ref_first = warm.first(reference.version if reference.version is not None else current_version)
        current_first = warm.first(current_version)
        # a reference fitted with other warm-up rules or another first date (a backfill added
        # earlier history) describes other values: never reuse it
        params = dict(params, warm_up={"first_history": str(ref_first), "warmup_seconds": warm.warmups})
    key = _reference_key(reference)
    stored = (
        None
        if refit
        else load_reference(
            spark, config.tables.table("drift_references"), table=table, selection=key, params=params, features=features
        )
    )
    reused = stored is not None
    if stored is None:
        ref_df, ref_sel, ref_version = read_selection(spark, ref_table, reference)
        fitted = fit_reference(ref_df, features, settings, complete=warm.complete(ref_first) if warm else None)
        stored = Reference(
            reference_id=uuid.uuid4().hex,
            pipeline=config.name,
            table=table,
            selection=key if not reference.latest else shown(reference, ref_sel),
            table_version=ref_version,
            created_at=_now_text(),
            params=params,
            binning_rule=binning_rule(settings),
            features=fitted,
        )
        if store:
            store_reference(spark, config.tables.table("drift_references"), stored, root=config.env.root)
    else:
        log.info(
            "drift: reusing reference %s (%s, fitted %s)", stored.reference_id, stored.selection, stored.created_at
        )
    refs = [f for f in stored.features if f.feature in set(features)]
    counts = score_counts(current_df, refs, settings, complete=warm.complete(current_first) if warm else None)
    report = DriftReport(
        drift_run_id=uuid.uuid4().hex,
        pipeline=config.name,
        table=table,
        created_at=_now_text(),
        reference_id=stored.reference_id,
        reference_selection=stored.selection,
        reference_version=stored.table_version,
        current_selection=shown(current, current_sel),
        current_version=current_version,
        settings=_settings_dict(settings),
        binning_rule=stored.binning_rule,
        features=compare(refs, counts, settings),
        reference_reused=reused,
        warm_up=(
            {
                "excluded": warm is not None,
                "first_history_reference": str(ref_first) if warm else None,
                "first_history_current": str(current_first) if warm else None,
            }
            if ref_table.kind == "features"
            else {}
        ),
    )
    if store:
        store_results(spark, config.tables.table("drift_results"), report, root=config.env.root)
    return report


@dataclass
class _WarmUp:
    """Warm-up of a feature table's compared columns and its first history date per version."""

    spark: object
    path: str
    event_time: str
    warmups: dict[str, int]
    firsts: dict = field(default_factory=dict)

    def first(self, version: int | None) -> dt.date | None:
        """First event date of the whole table at ``version`` (one small aggregate, memoised)."""
        from featuremill.storage import io
        from featuremill.transforms.warmup import first_history_date

        if version not in self.firsts:
            self.firsts[version] = first_history_date(io.read_delta(self.spark, self.path, version=version))
        return self.firsts[version]

    def complete(self, first: dt.date | None) -> dict:
        from featuremill.transforms.warmup import complete_conditions

        return complete_conditions(
            event_time=self.event_time, warmups=self.warmups, first_history=first, columns=list(self.warmups)
        )


def _warm_up(spark, config, table, features: Sequence[str], *, include: bool) -> _WarmUp | None:
    """The warm-up rules of a feature table's ``features``; None when values are all compared."""
    from featuremill.transforms.warmup import warmup_seconds

    if include or table.kind != "features":
        return None
    fs = config.feature_set(table.name.partition(".")[2])
    preprocessing = config.section("preprocessing")
    helpers = preprocessing.timeseries_for(fs.name) if preprocessing is not None else ()
    warmups = {k: v for k, v in warmup_seconds(fs, helpers).items() if k in set(features)}
    if not warmups:
        return None
    return _WarmUp(spark, table.path, table.event_time, warmups)


def _reference_key(selection) -> str:
    """Selection text used to find a stored reference: the dates and an explicit version only."""
    return selection.text


def _settings_dict(settings: DriftSettings) -> dict:
    data = asdict(settings)
    data["thresholds"] = {k: {"warn": t.warn, "alert": t.alert} for k, t in settings.thresholds}
    return data


def _share(part: int, total: int) -> float | None:
    return part / total if total else None


def _f(value) -> float | None:
    return None if value is None else float(value)


def _g(value: float) -> str:
    return f"{value:.4g}"


def _now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
