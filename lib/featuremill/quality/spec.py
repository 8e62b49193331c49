"""The ``quality:`` section of a pipeline file -> frozen specs (no Spark needed).

Registered in :data:`featuremill.config.SECTIONS`; the parsed :class:`QualitySpec` is
``config.section("quality")``. The format is documented in ``docs/quality.md``. Every problem is
reported with the file and its path, e.g.
``quality.tables.validated.transactions.rules[2].column: 'amout' is not a column of validated.transactions``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from featuremill.config import NUMERIC_TYPES, Checker, ColumnSpec, SectionContext, spark_type

ROW_CHECKS = ("not_null", "range", "allowed_values", "regex", "referential")
AGGREGATE_CHECKS = ("unique", "completeness", "freshness", "row_count_change", "anomaly")
CHECKS = ROW_CHECKS + AGGREGATE_CHECKS
SEVERITIES = ("warn", "quarantine", "fail")
ANOMALY_METRICS = ("row_count", "null_fraction", "mean", "stddev", "min", "max")
#: Rule names the ingest classification already uses in the quarantine table.
RESERVED_RULE_NAMES = ("malformed", "encoding", "type", "not_null", "non_finite", "partition", "duplicate", "valid")

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_CHECK_KEYS: dict[str, tuple[str, ...]] = {
    "not_null": ("column", "columns"),
    "range": ("column", "min", "max"),
    "allowed_values": ("column", "values"),
    "regex": ("column", "pattern"),
    "referential": ("column", "columns", "dimension", "dimension_columns"),
    "unique": ("column", "columns", "scope"),
    "completeness": ("column", "min_percent"),
    "freshness": ("column", "max_age", "relative_to"),
    "row_count_change": ("max_change_percent",),
    "anomaly": ("metric", "column", "max_sd", "min_history", "history"),
}
_COMMON_KEYS = ("name", "check", "severity", "description")


@dataclass(frozen=True)
class RuleSpec:
    """One quality rule of one table. Which fields matter depends on ``check``."""

    name: str
    check: str
    severity: str
    columns: tuple[str, ...] = ()
    min: Any = None
    max: Any = None
    values: tuple[Any, ...] = ()
    pattern: str | None = None
    dimension: str | None = None
    dimension_columns: tuple[str, ...] = ()
    scope: str = "table"
    min_percent: float | None = None
    max_age_seconds: int | None = None
    relative_to: str = "run_time"
    max_change_percent: float | None = None
    metric: str | None = None
    max_sd: float = 3.0
    min_history: int = 5
    history: int = 30
    description: str = ""

    @property
    def is_row_level(self) -> bool:
        return self.check in ROW_CHECKS

    @property
    def column(self) -> str | None:
        return self.columns[0] if self.columns else None


@dataclass(frozen=True)
class SchemaPolicy:
    """How a table's schema may change between runs, and what it must contain.

    ``additive``: ``allow`` (new columns are added to the table) or ``refuse``. ``widening``:
    columns whose type may widen (``int`` -> ``bigint``, ``float`` -> ``double``, ...); ``("*",)``
    allows it for every column. Drops, renames and narrowing are always refused. ``columns``
    (output tables) are declared names and types the incoming data must have; ``key`` columns must
    be unique across the table (checked as a ``fail`` rule).
    """

    additive: str = "allow"
    widening: tuple[str, ...] = ()
    columns: tuple[ColumnSpec, ...] = ()
    key: tuple[str, ...] = ()

    def may_widen(self, column: str) -> bool:
        return "*" in self.widening or column in self.widening


@dataclass(frozen=True)
class TableQualitySpec:
    """The schema policy, rules and metric settings of one table."""

    table: str
    schema: SchemaPolicy = field(default_factory=SchemaPolicy)
    rules: tuple[RuleSpec, ...] = ()
    metrics: bool = True
    drift_columns: tuple[str, ...] = ()
    drift_exclude: tuple[str, ...] = ()
    configured: bool = True

    @property
    def row_rules(self) -> tuple[RuleSpec, ...]:
        return tuple(r for r in self.rules if r.is_row_level)

    @property
    def quarantine_rules(self) -> tuple[RuleSpec, ...]:
        return tuple(r for r in self.rules if r.severity == "quarantine")


@dataclass(frozen=True)
class Threshold:
    warn: float | None
    alert: float | None


#: Drift metrics and their default warn / alert levels (effect sizes, see docs/quality.md).
DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    "psi": Threshold(0.1, 0.25),
    "js": Threshold(0.05, 0.1),
    "ks": Threshold(0.05, 0.1),
    "wasserstein": Threshold(0.05, 0.1),
    "cramers_v": Threshold(0.05, 0.1),
    "null_share": Threshold(0.01, 0.05),
    "out_of_range_share": Threshold(0.01, 0.05),
    "unseen_share": Threshold(0.001, 0.01),
}


@dataclass(frozen=True)
class DriftSettings:
    """Binning and decision settings for drift (``quality.drift``)."""

    bins: int = 10
    grid: int = 1000
    top_categories: int = 20
    max_categories: int = 1000
    accuracy: int = 10000
    min_rows: int = 100
    fdr_alpha: float = 0.05
    psi_epsilon: float = 1e-4
    thresholds: tuple[tuple[str, Threshold], ...] = tuple(DEFAULT_THRESHOLDS.items())

    def threshold(self, metric: str) -> Threshold | None:
        return dict(self.thresholds).get(metric)

    def binning_params(self) -> dict[str, Any]:
        """The settings a stored reference profile depends on (a change means a new reference)."""
        return {
            "bins": self.bins,
            "grid": self.grid,
            "top_categories": self.top_categories,
            "max_categories": self.max_categories,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True)
class ProfileSettings:
    """Profiling settings (``quality.profile``)."""

    top_values: int = 10
    histogram_bins: int = 20
    quantiles: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    accuracy: int = 10000
    #: numeric columns with at most this many distinct values also get top values
    discrete_max_distinct: int = 50


@dataclass(frozen=True)
class QualitySpec:
    """The whole ``quality:`` section."""

    tables: tuple[TableQualitySpec, ...] = ()
    drift: DriftSettings = field(default_factory=DriftSettings)
    profile: ProfileSettings = field(default_factory=ProfileSettings)

    def table(self, name: str) -> TableQualitySpec:
        """The spec of ``name``; an unconfigured table gets the default policy and no rules."""
        for spec in self.tables:
            if spec.table == name:
                return spec
        return TableQualitySpec(table=name, configured=False)


def quality_of(config) -> QualitySpec:
    """``config.section("quality")`` or the defaults when the pipeline has no such section."""
    return config.section("quality") or QualitySpec()


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def parse_section(checker: Checker, value: Any, path: str, context: SectionContext) -> QualitySpec:
    """Parse ``quality:`` (see ``docs/quality.md``); problems go to ``checker``."""
    from featuremill.quality.tables import declared_columns

    data = checker.mapping(value if value is not None else {}, path, optional=("tables", "drift", "profile"))
    if data is None:
        return QualitySpec()
    tables: list[TableQualitySpec] = []
    if "tables" in data:
        tpath = f"{path}.tables"
        body = checker.mapping(
            data["tables"], tpath, optional=tuple(data["tables"]) if isinstance(data["tables"], dict) else ()
        )
        for name, spec in (body or {}).items():
            cols = declared_columns(str(name), context.sources, context.feature_sets)
            if cols is None:
                valid = [f"validated.{s.name}" for s in context.sources] + [
                    f"features.{f.name}" for f in context.feature_sets
                ]
                checker.error(
                    f"{tpath}.{name}", f"{name!r} is not a table of this pipeline (use one of: {', '.join(valid)})"
                )
                continue
            parsed = _parse_table(checker, spec, f"{tpath}.{name}", str(name), cols, context)
            if parsed is not None:
                tables.append(parsed)
    drift = _parse_drift(checker, data["drift"], f"{path}.drift") if "drift" in data else DriftSettings()
    profile = _parse_profile(checker, data["profile"], f"{path}.profile") if "profile" in data else ProfileSettings()
    return QualitySpec(tables=tuple(tables), drift=drift, profile=profile)


def _parse_table(
    checker: Checker, value: Any, path: str, name: str, cols: dict[str, str], context: SectionContext
) -> TableQualitySpec | None:
    data = checker.mapping(value if value is not None else {}, path, optional=("schema", "rules", "metrics", "drift"))
    if data is None:
        return None
    is_source = name.startswith("validated.")
    schema = (
        _parse_schema(checker, data["schema"], f"{path}.schema", name, cols, is_source)
        if "schema" in data
        else SchemaPolicy()
    )
    metrics = True
    if "metrics" in data:
        metrics = bool(checker.boolean(data["metrics"], f"{path}.metrics"))
    rules: list[RuleSpec] = []
    if "rules" in data:
        if not isinstance(data["rules"], list):
            checker.error(f"{path}.rules", "expected a list of rules")
        else:
            seen: set[str] = set()
            for i, body in enumerate(data["rules"]):
                rule = _parse_rule(checker, body, f"{path}.rules[{i}]", name, cols, context, is_source)
                if rule is None:
                    continue
                if rule.name in seen:
                    checker.error(
                        f"{path}.rules[{i}].name",
                        f"rule name {rule.name!r} is used twice in {name}; give one of them a name",
                    )
                    continue
                seen.add(rule.name)
                rules.append(rule)
    if schema.key:
        rules.append(
            RuleSpec(
                name="schema_key",
                check="unique",
                severity="fail",
                columns=schema.key,
                scope="table",
                description="schema.key must be unique",
            )
        )
    for c in schema.columns:
        if not c.nullable:
            rules.append(
                RuleSpec(
                    name=f"schema_not_null_{c.name}",
                    check="not_null",
                    severity="fail",
                    columns=(c.name,),
                    description="declared nullable: false",
                )
            )
    drift_columns: tuple[str, ...] = ()
    drift_exclude: tuple[str, ...] = ()
    if "drift" in data:
        dpath = f"{path}.drift"
        d = checker.mapping(data["drift"], dpath, optional=("columns", "exclude")) or {}
        if "columns" in d:
            drift_columns = _columns(checker, d["columns"], f"{dpath}.columns", name, cols) or ()
        if "exclude" in d:
            drift_exclude = _columns(checker, d["exclude"], f"{dpath}.exclude", name, cols) or ()
    return TableQualitySpec(
        table=name,
        schema=schema,
        rules=tuple(rules),
        metrics=metrics,
        drift_columns=drift_columns,
        drift_exclude=drift_exclude,
    )


def _parse_schema(
    checker: Checker, value: Any, path: str, name: str, cols: dict[str, str], is_source: bool
) -> SchemaPolicy:
    data = checker.mapping(
        value if value is not None else {}, path, optional=("additive", "widening", "columns", "key")
    )
    if data is None:
        return SchemaPolicy()
    additive = "allow"
    if "additive" in data:
        additive = checker.string(data["additive"], f"{path}.additive", choices=("allow", "refuse")) or "allow"
    widening: tuple[str, ...] = ()
    if "widening" in data:
        if data["widening"] == "*" or data["widening"] == ["*"]:
            widening = ("*",)
        else:
            widening = _columns(checker, data["widening"], f"{path}.widening", name, cols) or ()
    columns: list[ColumnSpec] = []
    if "columns" in data:
        if is_source:
            checker.error(
                f"{path}.columns",
                f"the columns of {name} are declared under sources; declare types and nullability there",
            )
        else:
            body = checker.mapping(
                data["columns"],
                f"{path}.columns",
                optional=tuple(data["columns"]) if isinstance(data["columns"], dict) else (),
            )
            for col_name, spec in (body or {}).items():
                cpath = f"{path}.columns.{col_name}"
                if isinstance(spec, str):
                    spec = {"type": spec}
                cbody = checker.mapping(spec, cpath, required=("type",), optional=("nullable", "description"))
                if cbody is None or "type" not in cbody:
                    continue
                if col_name not in cols:
                    checker.error(cpath, f"{col_name!r} is not a column of {name} ({', '.join(cols)})")
                    continue
                try:
                    sql_type = spark_type(cbody["type"])
                except ValueError as exc:
                    checker.error(f"{cpath}.type", str(exc))
                    continue
                nullable = checker.boolean(cbody["nullable"], f"{cpath}.nullable") if "nullable" in cbody else True
                columns.append(
                    ColumnSpec(
                        name=str(col_name),
                        type=sql_type,
                        nullable=nullable is not False,
                        description=str(cbody.get("description") or ""),
                    )
                )
    key: tuple[str, ...] = ()
    if "key" in data:
        key = _columns(checker, data["key"], f"{path}.key", name, cols) or ()
    return SchemaPolicy(additive=additive, widening=widening, columns=tuple(columns), key=key)


def _parse_rule(
    checker: Checker, value: Any, path: str, table: str, cols: dict[str, str], context: SectionContext, is_source: bool
) -> RuleSpec | None:
    if not isinstance(value, dict):
        checker.error(path, "expected a mapping with at least 'check' and 'severity'")
        return None
    check = value.get("check")
    if check not in CHECKS:
        checker.error(
            f"{path}.check",
            f"{check!r} is not a check; use one of: {', '.join(CHECKS)}"
            if "check" in value
            else "is required (one of: " + ", ".join(CHECKS) + ")",
        )
        return None
    data = checker.mapping(value, path, required=("check", "severity"), optional=_COMMON_KEYS + _CHECK_KEYS[check])
    if data is None or "severity" not in data:
        return None
    ok = True
    severity = checker.string(data["severity"], f"{path}.severity", choices=SEVERITIES)
    if severity is None:
        return None
    if severity == "quarantine":
        if check not in ROW_CHECKS:
            checker.error(
                f"{path}.severity",
                f"a {check} rule judges the whole table, not a row: it cannot quarantine rows; use warn or fail",
            )
            ok = False
        elif not is_source:
            checker.error(
                f"{path}.severity",
                f"rows of {table} are derived, not input: they cannot be "
                "quarantined; use warn or fail here, or quarantine the input "
                "rows with a rule on the source's validated table",
            )
            ok = False
    kw: dict[str, Any] = {}
    columns: tuple[str, ...] = ()
    multi = check in ("not_null", "referential", "unique")
    if "column" in data and "columns" in data:
        checker.error(path, "give column or columns, not both")
        ok = False
    elif "column" in data:
        c = checker.string(data["column"], f"{path}.column")
        columns = _checked_columns(checker, (c,) if c else (), f"{path}.column", table, cols)
        ok = ok and bool(columns)
    elif "columns" in data:
        columns = _columns(checker, data["columns"], f"{path}.columns", table, cols) or ()
        ok = ok and bool(columns)
        if columns and len(columns) > 1 and not multi:
            checker.error(f"{path}.columns", f"a {check} rule takes one column")
            ok = False
    needs_column = check in ("not_null", "range", "allowed_values", "regex", "referential", "unique", "completeness")
    if needs_column and not columns and "column" not in data and "columns" not in data:
        checker.error(f"{path}.column", f"is required for a {check} rule")
        ok = False
    if check == "range":
        if "min" not in data and "max" not in data:
            checker.error(path, "a range rule needs min, max or both")
            ok = False
        for bound in ("min", "max"):
            if bound in data:
                v = data[bound]
                if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                    checker.error(f"{path}.{bound}", f"expected a number (or a date/time text), got {v!r}")
                    ok = False
                elif columns and isinstance(v, str) and cols.get(columns[0]) in NUMERIC_TYPES:
                    checker.error(f"{path}.{bound}", f"column {columns[0]!r} is numeric; {bound} must be a number")
                    ok = False
                else:
                    kw[bound] = v
        if (
            isinstance(kw.get("min"), (int, float))
            and isinstance(kw.get("max"), (int, float))
            and kw["min"] > kw["max"]
        ):
            checker.error(path, f"min {kw['min']} is above max {kw['max']}")
            ok = False
    elif check == "allowed_values":
        values = data.get("values")
        if not isinstance(values, list) or not values or any(isinstance(v, (dict, list)) or v is None for v in values):
            checker.error(f"{path}.values", "expected a non-empty list of scalar values")
            ok = False
        else:
            kw["values"] = tuple(values)
    elif check == "regex":
        pattern = checker.string(data.get("pattern"), f"{path}.pattern")
        if pattern is not None:
            from featuremill.quality.regex import pattern_problem

            problem = pattern_problem(pattern)  # the subset both engines read alike, bounded
            if problem is not None:
                checker.error(f"{path}.pattern", problem)
                ok = False
            kw["pattern"] = pattern
        else:
            ok = False
    elif check == "referential":
        dim_name = checker.string(data.get("dimension"), f"{path}.dimension")
        dim = next((s for s in context.sources if s.name == dim_name), None)
        if dim_name and dim is None:
            checker.error(f"{path}.dimension", f"source {dim_name!r} is not declared under sources")
            ok = False
        elif dim is not None and dim.kind != "dimension":
            checker.error(f"{path}.dimension", f"source {dim_name!r} is a {dim.kind}, not a dimension")
            ok = False
        elif dim is not None:
            if "dimension_columns" in data:
                dcols = checker.names(data["dimension_columns"], f"{path}.dimension_columns") or ()
                for c in dcols:
                    if c not in dim.column_names:
                        checker.error(
                            f"{path}.dimension_columns", f"column {c!r} is not declared in dimension {dim.name!r}"
                        )
                        ok = False
            else:
                dcols = dim.key
            if columns and len(dcols) != len(columns):
                checker.error(
                    path,
                    f"{len(columns)} column(s) cannot be matched with the {len(dcols)} "
                    f"dimension column(s) {list(dcols)}",
                )
                ok = False
            kw["dimension"] = dim.name
            kw["dimension_columns"] = tuple(dcols)
        else:
            ok = False
    elif check == "unique":
        if "scope" in data:
            kw["scope"] = checker.string(data["scope"], f"{path}.scope", choices=("batch", "table")) or "table"
    elif check == "completeness":
        kw["min_percent"] = _number(checker, data.get("min_percent"), f"{path}.min_percent", low=0, high=100)
        ok = ok and kw["min_percent"] is not None
    elif check == "freshness":
        if "max_age" not in data:
            checker.error(f"{path}.max_age", "is required for a freshness rule (e.g. 2d)")
            ok = False
        else:
            kw["max_age_seconds"] = checker.duration(data["max_age"], f"{path}.max_age")
            ok = ok and kw["max_age_seconds"] is not None
        if "relative_to" in data:
            kw["relative_to"] = (
                checker.string(data["relative_to"], f"{path}.relative_to", choices=("run_time", "partition_end"))
                or "run_time"
            )
        if not columns:
            default = _default_time_column(table, context)
            if default is None:
                checker.error(f"{path}.column", f"{table} has no event time; name a timestamp column")
                ok = False
            else:
                columns = (default,)
        if columns and cols.get(columns[0]) not in ("timestamp", "date"):
            checker.error(
                f"{path}.column",
                f"column {columns[0]!r} is {cols.get(columns[0])}, freshness needs a timestamp or date",
            )
            ok = False
    elif check == "row_count_change":
        kw["max_change_percent"] = _number(checker, data.get("max_change_percent"), f"{path}.max_change_percent", low=0)
        ok = ok and kw["max_change_percent"] is not None
    elif check == "anomaly":
        metric = checker.string(data.get("metric"), f"{path}.metric", choices=ANOMALY_METRICS)
        if metric is None:
            ok = False
        elif metric == "row_count" and columns:
            checker.error(f"{path}.column", "row_count takes no column")
            ok = False
        elif metric != "row_count" and not columns:
            checker.error(f"{path}.column", f"metric {metric!r} needs a column")
            ok = False
        elif (
            metric in ("mean", "stddev", "min", "max")
            and cols.get(columns[0]) not in NUMERIC_TYPES
            and not str(cols.get(columns[0])).startswith("decimal")
        ):
            checker.error(
                f"{path}.column", f"metric {metric!r} needs a numeric column, {columns[0]!r} is {cols.get(columns[0])}"
            )
            ok = False
        kw["metric"] = metric
        if "max_sd" in data:
            kw["max_sd"] = _number(checker, data["max_sd"], f"{path}.max_sd", low=0)
            ok = ok and kw["max_sd"] is not None
        for key, minimum in (("min_history", 2), ("history", 2)):
            if key in data:
                kw[key] = checker.integer(data[key], f"{path}.{key}", minimum=minimum)
                ok = ok and kw[key] is not None
    if check in ("range", "regex", "allowed_values", "completeness") and columns and len(columns) != 1:
        ok = False
    if check == "range" and columns and cols.get(columns[0]) in ("string", "boolean") and ok:
        checker.warn(path, f"range on {cols.get(columns[0])} column {columns[0]!r} compares text, not numbers")
    name = _rule_name(checker, data, path, check, columns, kw.get("metric"))
    if not ok or name is None:
        return None
    return RuleSpec(
        name=name, check=check, severity=severity, columns=columns, description=str(data.get("description") or ""), **kw
    )


def _rule_name(
    checker: Checker, data: Mapping, path: str, check: str, columns: tuple[str, ...], metric: str | None
) -> str | None:
    if "name" in data:
        name = checker.string(data["name"], f"{path}.name", identifier=True)
        if name in RESERVED_RULE_NAMES:
            checker.error(f"{path}.name", f"{name!r} is a built-in ingest rule name; choose another")
            return None
        return name
    parts = [check] + ([metric] if metric else []) + list(columns)
    name = "_".join(parts)
    if not _NAME_RE.match(name):
        checker.error(f"{path}.name", f"cannot derive a rule name from {parts}; give the rule a name")
        return None
    return name


def _default_time_column(table: str, context: SectionContext) -> str | None:
    kind, _, rest = table.partition(".")
    if kind == "validated":
        src = next(s for s in context.sources if s.name == rest)
        return src.event_time
    fs = next(f for f in context.feature_sets if f.name == rest)
    return next(s for s in context.sources if s.name == fs.source).event_time


def _columns(checker: Checker, value: Any, path: str, table: str, cols: dict[str, str]) -> tuple[str, ...] | None:
    names = checker.names(value, path)
    if names is None:
        return None
    return _checked_columns(checker, names, path, table, cols) or None


def _checked_columns(
    checker: Checker, names: tuple[str, ...], path: str, table: str, cols: dict[str, str]
) -> tuple[str, ...]:
    bad = [n for n in names if n not in cols]
    for n in bad:
        checker.error(path, f"{n!r} is not a column of {table} ({', '.join(cols)})")
    return () if bad else tuple(names)


def _number(
    checker: Checker, value: Any, path: str, *, low: float | None = None, high: float | None = None
) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        checker.error(path, f"expected a number, got {value!r}")
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        checker.error(path, f"{value} must be {bounds}")
        return None
    return float(value)


def _parse_drift(checker: Checker, value: Any, path: str) -> DriftSettings:
    data = checker.mapping(
        value if value is not None else {},
        path,
        optional=(
            "bins",
            "grid",
            "top_categories",
            "max_categories",
            "accuracy",
            "min_rows",
            "fdr_alpha",
            "psi_epsilon",
            "thresholds",
        ),
    )
    if data is None:
        return DriftSettings()
    kw: dict[str, Any] = {}
    for key, minimum in (
        ("bins", 2),
        ("grid", 10),
        ("top_categories", 1),
        ("max_categories", 1),
        ("accuracy", 100),
        ("min_rows", 1),
    ):
        if key in data:
            v = checker.integer(data[key], f"{path}.{key}", minimum=minimum)
            if v is not None:
                kw[key] = v
    if "fdr_alpha" in data:
        v = _number(checker, data["fdr_alpha"], f"{path}.fdr_alpha", low=0, high=1)
        if v is not None:
            kw["fdr_alpha"] = v
    if "psi_epsilon" in data:
        v = _number(checker, data["psi_epsilon"], f"{path}.psi_epsilon", low=0, high=0.1)
        if v is not None:
            kw["psi_epsilon"] = v
    if kw.get("max_categories", 1000) < kw.get("top_categories", 20):
        checker.error(f"{path}.max_categories", "must be at least top_categories")
    thresholds = dict(DEFAULT_THRESHOLDS)
    if "thresholds" in data:
        tpath = f"{path}.thresholds"
        body = checker.mapping(data["thresholds"], tpath, optional=tuple(DEFAULT_THRESHOLDS)) or {}
        for metric, spec in body.items():
            if metric not in DEFAULT_THRESHOLDS:
                continue
            mpath = f"{tpath}.{metric}"
            if spec is None:  # `psi: null` switches a metric off
                thresholds[metric] = Threshold(None, None)
                continue
            t = checker.mapping(spec, mpath, optional=("warn", "alert"))
            if t is None:
                continue
            warn = (
                thresholds[metric].warn
                if "warn" not in t
                else (None if t["warn"] is None else _number(checker, t["warn"], f"{mpath}.warn", low=0))
            )
            alert = (
                thresholds[metric].alert
                if "alert" not in t
                else (None if t["alert"] is None else _number(checker, t["alert"], f"{mpath}.alert", low=0))
            )
            if warn is not None and alert is not None and warn > alert:
                checker.error(mpath, f"warn {warn} is above alert {alert}")
            thresholds[metric] = Threshold(warn, alert)
    return DriftSettings(thresholds=tuple(thresholds.items()), **kw)


def _parse_profile(checker: Checker, value: Any, path: str) -> ProfileSettings:
    data = checker.mapping(
        value if value is not None else {},
        path,
        optional=("top_values", "histogram_bins", "quantiles", "accuracy", "discrete_max_distinct"),
    )
    if data is None:
        return ProfileSettings()
    kw: dict[str, Any] = {}
    for key, minimum in (("top_values", 1), ("histogram_bins", 1), ("accuracy", 100), ("discrete_max_distinct", 0)):
        if key in data:
            v = checker.integer(data[key], f"{path}.{key}", minimum=minimum)
            if v is not None:
                kw[key] = v
    if "quantiles" in data:
        qs = data["quantiles"]
        if (
            not isinstance(qs, list)
            or not qs
            or any(isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1 for q in qs)
        ):
            checker.error(f"{path}.quantiles", "expected a list of probabilities between 0 and 1")
        else:
            kw["quantiles"] = tuple(sorted(float(q) for q in qs))
    return ProfileSettings(**kw)
