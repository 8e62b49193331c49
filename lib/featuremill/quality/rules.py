"""Quality rules as Spark expressions, and the decision for each rule from a few measured numbers.

Row-level checks (``not_null``, ``range``, ``allowed_values``, ``regex``, ``referential``) become a
boolean "failed" Column and a message Column per row. A null value passes every check but
``not_null`` (use ``not_null`` or ``completeness`` for missing values), as in SQL constraints.

* severity ``quarantine``: :func:`with_quarantine_rules` marks failing rows with the rule name
  and reason, the same columns the ingest classification uses, so they land in the quarantine
  table and the accounting ``rows in = valid + quarantined`` still holds;
* severity ``warn`` / ``fail``: counted by an aggregate over the rows about to be written.

Aggregate checks (``completeness``, ``freshness``, ``row_count_change``, ``anomaly``) and the
per-column metrics are aggregate expressions too. :func:`measure_columns` returns all of them so
the job evaluates every rule in the one aggregation it runs anyway (ingest's count by verdict)
instead of one Spark job per rule. ``unique`` needs a shuffle by key and runs as one extra job
for all unique rules of a table (:func:`unique_counts`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from featuremill.config import NUMERIC_TYPES
from featuremill.core.sql import col, literal
from featuremill.quality.spec import RuleSpec, TableQualitySpec, quality_of

#: Columns :func:`with_quarantine_rules` reads and sets (the ingest classification's).
RULE = "_rule"
REASON = "_reason"

ROWS = "rows"
_SHOWN_CHARS = 80


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule on one run.

    ``status``: ``pass``, ``warn``, ``fail``, ``quarantined`` (rows were quarantined) or
    ``skipped`` (nothing to judge, e.g. no history yet). ``value`` is the observed number the
    rule judged (failing rows, completeness %, age in seconds, change %, z-score).
    """

    table: str
    rule: str
    check: str
    severity: str
    status: str
    message: str
    value: float | None = None
    threshold: str = ""
    rows: int | None = None
    failing_rows: int | None = None
    columns: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def describe(self) -> str:
        text = f"{self.table}: rule '{self.rule}' ({self.check}, severity {self.severity}): {self.message}"
        if self.examples:
            text += "; example keys: " + ", ".join(self.examples)
        return text


# --------------------------------------------------------------------------------------------
# Row-level expressions
# --------------------------------------------------------------------------------------------


def reference_marker(rule: RuleSpec) -> str:
    return f"__ref_{rule.name}"


def with_reference_flags(df, rules: Sequence[RuleSpec], references: Mapping[str, object]):
    """DataFrame -> DataFrame: add ``__ref_<rule>`` (boolean, true when the key is in the dimension).

    ``references`` maps a dimension name to a DataFrame holding its rows (validated table, or the
    rows about to be written in the same run). Its key columns are de-duplicated and broadcast, so
    the join never multiplies rows. Same grain as ``df``.
    """
    from pyspark.sql import functions as F

    for rule in rules:
        if rule.check != "referential":
            continue
        ref = references[rule.dimension]
        aliases = [f"__refk_{rule.name}_{i}" for i in range(len(rule.columns))]
        keys = (
            ref.select(*[col(dc).alias(a) for dc, a in zip(rule.dimension_columns, aliases)])
            .where(F.greatest(*[col(a).isNull() for a in aliases], F.lit(False)) == F.lit(False))
            .distinct()
            .withColumn(reference_marker(rule), F.lit(True))
        )
        condition = None
        for c, a in zip(rule.columns, aliases):
            term = col(c) == col(a)
            condition = term if condition is None else condition & term
        df = df.join(F.broadcast(keys), on=condition, how="left").drop(*aliases)
    return df


def failed_expression(rule: RuleSpec, column_types: Mapping[str, str]):
    """Boolean Column: true where the row fails ``rule`` (null or false otherwise)."""
    from pyspark.sql import functions as F

    c = col(rule.columns[0]) if rule.columns else None
    if rule.check == "not_null":
        cond = None
        for name in rule.columns:
            term = col(name).isNull()
            cond = term if cond is None else cond | term
        return cond
    if rule.check == "range":
        terms = []
        if rule.min is not None:
            terms.append(c < F.expr(literal(rule.min)))
        if rule.max is not None:
            terms.append(c > F.expr(literal(rule.max)))
        cond = terms[0]
        for t in terms[1:]:
            cond = cond | t
        if column_types.get(rule.columns[0]) in ("double", "float"):
            cond = cond | F.isnan(c)
        return cond
    if rule.check == "allowed_values":
        return ~c.isin(*rule.values)
    if rule.check == "regex":
        text = c if column_types.get(rule.columns[0]) == "string" else c.cast("string")
        return ~text.rlike(rule.pattern)
    if rule.check == "referential":
        present = F.greatest(*[col(n).isNull() for n in rule.columns], F.lit(False)) == F.lit(False)
        return present & col(reference_marker(rule)).isNull()
    raise ValueError(f"{rule.check} is not a row-level check")


def message_expression(rule: RuleSpec, column_types: Mapping[str, str]):
    """String Column explaining a failure of ``rule`` on a row (names the field and the value)."""
    from pyspark.sql import functions as F

    def shown(name: str):
        text = col(name).cast("string")
        cut = F.when(F.length(text) > _SHOWN_CHARS, F.concat(F.substring(text, 1, _SHOWN_CHARS), F.lit("...")))
        return F.coalesce(cut.otherwise(text), F.lit("null"))

    first = rule.columns[0] if rule.columns else ""
    if rule.check == "not_null":
        nulls = F.concat_ws(", ", *[F.when(col(n).isNull(), F.lit(f"'{n}'")) for n in rule.columns])
        return F.concat(F.lit(f"rule {rule.name}: field(s) "), nulls, F.lit(" null"))
    if rule.check == "range":
        low = "-inf" if rule.min is None else str(rule.min)
        high = "+inf" if rule.max is None else str(rule.max)
        return F.concat(
            F.lit(f"rule {rule.name}: field '{first}': value "), shown(first), F.lit(f" outside [{low}, {high}]")
        )
    if rule.check == "allowed_values":
        allowed = ", ".join(str(v) for v in rule.values)
        if len(allowed) > 200:
            allowed = allowed[:200] + "..."
        return F.concat(
            F.lit(f"rule {rule.name}: field '{first}': '"), shown(first), F.lit(f"' is not one of {allowed}")
        )
    if rule.check == "regex":
        return F.concat(
            F.lit(f"rule {rule.name}: field '{first}': '"), shown(first), F.lit(f"' does not match {rule.pattern}")
        )
    if rule.check == "referential":
        keys = F.to_json(F.struct(*[col(n) for n in rule.columns]))
        return F.concat(
            F.lit(f"rule {rule.name}: "),
            keys,
            F.lit(f" not found in dimension {rule.dimension} ({', '.join(rule.dimension_columns)})"),
        )
    raise ValueError(f"{rule.check} is not a row-level check")


def with_quarantine_rules(df, spec: TableQualitySpec, column_types: Mapping[str, str]):
    """DataFrame -> DataFrame: rows still valid (``_rule`` null) that fail a ``quarantine`` rule get
    ``_rule`` = the first failing rule's name and ``_reason`` = every failing rule's message.

    Input: typed columns plus ``_rule``/``_reason`` (see :func:`featuremill.transforms.ingest.with_classification`)
    and the ``__ref_*`` markers of :func:`with_reference_flags`. Same columns and grain.
    """
    from pyspark.sql import functions as F

    rules = spec.quarantine_rules
    if not rules:
        return df
    names = F.array(*[F.when(failed_expression(r, column_types), F.lit(r.name)) for r in rules])
    messages = F.array(
        *[F.when(failed_expression(r, column_types), message_expression(r, column_types)) for r in rules]
    )
    first = F.get(F.filter(names, lambda x: x.isNotNull()), 0)
    reason = F.concat_ws("; ", F.filter(messages, lambda x: x.isNotNull()))
    df = df.withColumn("__q_rule", F.when(col(RULE).isNull(), first)).withColumn("__q_reason", reason)
    return (
        df.withColumn(RULE, F.coalesce(col(RULE), col("__q_rule")))
        .withColumn(REASON, F.when(col("__q_rule").isNotNull(), col("__q_reason")).otherwise(col(REASON)))
        .drop("__q_rule", "__q_reason")
    )


# --------------------------------------------------------------------------------------------
# Measurements: one aggregation for every rule and metric of a table
# --------------------------------------------------------------------------------------------


def is_numeric(sql_type: str | None) -> bool:
    return sql_type is not None and (sql_type in NUMERIC_TYPES or sql_type.startswith("decimal"))


def metric_columns(columns: Sequence[str], spec: TableQualitySpec) -> list[str]:
    """Columns whose per-column metrics are recorded (all but ``_``-prefixed bookkeeping columns)."""
    return [c for c in columns if not c.startswith("_")] if spec.metrics else []


def measure_columns(
    spec: TableQualitySpec, column_types: Mapping[str, str], metric_columns: Sequence[str] = ()
) -> dict[str, object]:
    """Named aggregate Columns: row count, failures of warn/fail row rules, aggregate-rule inputs,
    and the metrics of ``metric_columns``. Evaluate them over the rows about to be written, in
    one aggregation."""
    from pyspark.sql import functions as F

    out: dict[str, object] = {ROWS: F.count(F.lit(1))}
    for rule in spec.rules:
        if rule.is_row_level and rule.severity in ("warn", "fail"):
            out[f"failed:{rule.name}"] = F.count(F.when(failed_expression(rule, column_types), F.lit(True)))
        elif rule.check == "completeness":
            out[f"nonnull:{rule.column}"] = F.count(col(rule.column))
        elif rule.check == "freshness":
            c = col(rule.column)
            micros = (
                F.unix_micros(c)
                if column_types.get(rule.column) == "timestamp"
                else F.unix_date(c).cast("long") * F.lit(86_400_000_000)
            )
            out[f"maxtime:{rule.column}"] = F.max(micros)
        elif rule.check == "anomaly" and rule.metric != "row_count":
            _add_metric(out, rule.column, column_types)
    for name in metric_columns:
        _add_metric(out, name, column_types)
    return out


def _add_metric(out: dict, name: str, column_types: Mapping[str, str]) -> None:
    from pyspark.sql import functions as F

    c = col(name)
    out[f"nonnull:{name}"] = F.count(c)
    if is_numeric(column_types.get(name)):
        value = c.cast("double")
        if column_types.get(name) in ("double", "float"):
            value = F.when(~F.isnan(c), value)
        out[f"min:{name}"] = F.min(value)
        out[f"max:{name}"] = F.max(value)
        out[f"mean:{name}"] = F.avg(value)
        out[f"stddev:{name}"] = F.stddev_samp(value)


def aliased(measures: Mapping[str, object]) -> tuple[list, dict[str, str]]:
    """Columns aliased ``__qm<i>`` (safe names) and the alias -> measure-name map."""
    cols, names = [], {}
    for i, (name, expr) in enumerate(measures.items()):
        alias = f"__qm{i}"
        cols.append(expr.alias(alias))
        names[alias] = name
    return cols, names


def read_measures(row, names: Mapping[str, str]) -> dict[str, float | int | None]:
    """A collected aggregate row -> measure name -> value."""
    if row is None:
        return {}
    data = row.asDict()
    return {name: data.get(alias) for alias, name in names.items()}


def unique_counts(valid, rules: Sequence[RuleSpec], *, existing=None) -> dict[str, tuple[int, int]]:
    """Rule name -> (duplicated keys, extra rows) for ``unique`` rules, in one Spark job.

    ``valid`` are the rows about to be written; ``existing`` the rows of the live table that the
    write keeps (used by rules with ``scope: table``). Rows with a null in a key column are not
    compared (SQL semantics). Keys of all rules are stacked as (rule, key-as-JSON), so the job
    count does not grow with the number of rules.
    """
    from pyspark.sql import functions as F

    rules = [r for r in rules if r.check == "unique"]
    if not rules:
        return {}

    def stacked(df, chosen):
        from featuremill.quality.tables import stack

        entries = [
            {
                "rule": F.lit(r.name),
                "key": F.when(
                    F.greatest(*[col(c).isNull() for c in r.columns], F.lit(False)) == F.lit(False),
                    F.to_json(F.struct(*[col(c) for c in r.columns])),
                ),
            }
            for r in chosen
        ]
        return stack(df, entries).where(F.col("key").isNotNull())

    keys = stacked(valid, rules)
    table_rules = [r for r in rules if r.scope == "table"]
    if existing is not None and table_rules:
        keys = keys.unionByName(stacked(existing, table_rules))
    counted = keys.groupBy("rule", "key").count().where(F.col("count") > 1)
    rows = (
        counted.groupBy("rule").agg(F.count(F.lit(1)).alias("keys"), F.sum(F.col("count") - 1).alias("extra")).collect()
    )
    found = {r["rule"]: (int(r["keys"]), int(r["extra"])) for r in rows}
    return {r.name: found.get(r.name, (0, 0)) for r in rules}


def duplicate_examples(valid, rule: RuleSpec, *, existing=None, limit: int = 5) -> list[str]:
    """A few keys that break a ``unique`` rule (only run when the rule fails)."""
    from pyspark.sql import functions as F

    key = F.to_json(F.struct(*[col(c) for c in rule.columns])).alias("key")
    present = F.greatest(*[col(c).isNull() for c in rule.columns], F.lit(False)) == F.lit(False)
    keys = valid.where(present).select(key)
    if existing is not None and rule.scope == "table":
        keys = keys.unionByName(existing.where(present).select(key))
    return [
        r["key"] for r in keys.groupBy("key").count().where(F.col("count") > 1).orderBy("key").limit(limit).collect()
    ]


def failing_examples(
    valid, rule: RuleSpec, column_types: Mapping[str, str], key: Sequence[str], limit: int = 5
) -> list[str]:
    """A few keys (JSON) of rows failing a row-level or completeness rule (only run when it fails)."""
    from pyspark.sql import functions as F

    condition = col(rule.column).isNull() if rule.check == "completeness" else failed_expression(rule, column_types)
    shown = list(key) or list(rule.columns)
    keys = valid.where(condition).select(F.to_json(F.struct(*[col(k) for k in shown])).alias("k"))
    return [r["k"] for r in keys.limit(limit).collect()]


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationContext:
    """What a decision may depend on besides the measurements."""

    now: dt.datetime  # the run's start, timezone-aware
    start: dt.date | None  # the partition (date range) the run writes
    end: dt.date | None
    timezone: str = "UTC"
    history: Mapping[tuple[str, str], Sequence[tuple[dt.date, dt.date, float]]] = field(default_factory=dict)

    @property
    def days(self) -> int:
        if self.start is None or self.end is None:
            return 1
        return (self.end - self.start).days + 1


def evaluate(
    spec: TableQualitySpec,
    measures: Mapping[str, object],
    context: EvaluationContext,
    *,
    quarantined: Mapping[str, int] | None = None,
    unique: Mapping[str, tuple[int, int]] | None = None,
) -> list[RuleResult]:
    """Decide every rule of ``spec`` from the measured numbers (no Spark)."""
    rows = int(measures.get(ROWS) or 0)
    out = []
    for rule in spec.rules:
        out.append(_evaluate_rule(spec.table, rule, rows, measures, context, quarantined or {}, unique or {}))
    return out


def _result(table: str, rule: RuleSpec, status: str, message: str, **kw) -> RuleResult:
    return RuleResult(
        table=table,
        rule=rule.name,
        check=rule.check,
        severity=rule.severity,
        status=status,
        message=message,
        columns=rule.columns,
        **kw,
    )


def _verdict(rule: RuleSpec, bad: bool) -> str:
    return rule.severity if bad else "pass"


def _evaluate_rule(
    table: str,
    rule: RuleSpec,
    rows: int,
    m: Mapping[str, object],
    ctx: EvaluationContext,
    quarantined: Mapping[str, int],
    unique: Mapping[str, tuple[int, int]],
) -> RuleResult:
    cols = ", ".join(rule.columns)
    if rule.is_row_level and rule.severity == "quarantine":
        n = int(quarantined.get(rule.name, 0))
        return _result(
            table,
            rule,
            "quarantined" if n else "pass",
            f"{n} row(s) quarantined" + (f" ({cols})" if cols else ""),
            value=float(n),
            threshold="0 rows",
            rows=rows + n,
            failing_rows=n,
        )
    if rule.is_row_level:
        n = int(m.get(f"failed:{rule.name}") or 0)
        what = _row_rule_text(rule)
        return _result(
            table,
            rule,
            _verdict(rule, n > 0),
            f"{n} of {rows} row(s) fail: {what}",
            value=float(n),
            threshold="0 rows",
            rows=rows,
            failing_rows=n,
        )
    if rule.check == "unique":
        keys, extra = unique.get(rule.name, (0, 0))
        scope = "this run's rows and the rest of the table" if rule.scope == "table" else "this run's rows"
        return _result(
            table,
            rule,
            _verdict(rule, extra > 0),
            f"{keys} duplicated key(s) of ({cols}) with {extra} extra row(s) in {scope}",
            value=float(extra),
            threshold="0 duplicate rows",
            rows=rows,
            failing_rows=extra,
        )
    if rule.check == "completeness":
        if rows == 0:
            return _result(table, rule, "skipped", "no rows to judge", rows=0)
        nonnull = int(m.get(f"nonnull:{rule.column}") or 0)
        pct = 100.0 * nonnull / rows
        return _result(
            table,
            rule,
            _verdict(rule, pct < rule.min_percent),
            f"'{rule.column}' is {pct:.3f}% complete ({rows - nonnull} null of {rows}); needs >= {rule.min_percent:g}%",
            value=pct,
            threshold=f">= {rule.min_percent:g}%",
            rows=rows,
            failing_rows=rows - nonnull,
        )
    if rule.check == "freshness":
        latest = m.get(f"maxtime:{rule.column}")
        if latest is None:
            return _result(
                table,
                rule,
                _verdict(rule, True),
                f"no '{rule.column}' value at all: cannot be fresh",
                threshold=f"<= {rule.max_age_seconds}s",
                rows=rows,
            )
        reference = _reference_time(rule, ctx)
        age = reference.timestamp() - int(latest) / 1e6
        latest_text = dt.datetime.fromtimestamp(int(latest) / 1e6, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        relative = "the run time" if rule.relative_to == "run_time" else "the end of the partition"
        return _result(
            table,
            rule,
            _verdict(rule, age > rule.max_age_seconds),
            f"latest '{rule.column}' is {latest_text}, {_human(age)} before {relative}; "
            f"allowed {_human(rule.max_age_seconds)}",
            value=age,
            threshold=f"<= {rule.max_age_seconds}s",
            rows=rows,
        )
    if rule.check == "row_count_change":
        per_day = rows / ctx.days
        previous = list(ctx.history.get(("rows_per_day", ""), ()))
        if not previous:
            return _result(
                table,
                rule,
                "skipped",
                "no earlier partition in quality_metrics to compare with",
                rows=rows,
                threshold=f"<= {rule.max_change_percent:g}%",
            )
        p_start, p_end, prev = max(previous, key=lambda t: (t[1], t[0]))
        if prev == 0:
            change = 0.0 if per_day == 0 else math.inf
        else:
            change = 100.0 * abs(per_day - prev) / prev
        span = p_start.isoformat() if p_start == p_end else f"{p_start}..{p_end}"
        return _result(
            table,
            rule,
            _verdict(rule, change > rule.max_change_percent),
            f"{per_day:.1f} rows/day vs {prev:.1f} in the previous partition ({span}): "
            f"{change:.1f}% change; allowed {rule.max_change_percent:g}%",
            value=change,
            threshold=f"<= {rule.max_change_percent:g}%",
            rows=rows,
        )
    if rule.check == "anomaly":
        return _evaluate_anomaly(table, rule, rows, m, ctx)
    raise ValueError(rule.check)


def current_metric(metric: str, column: str | None, rows: int, m: Mapping[str, object], days: int) -> float | None:
    """The value of a history metric for this run (see :func:`featuremill.quality.history.metric_rows`)."""
    if metric == "row_count":
        return rows / days
    nonnull = m.get(f"nonnull:{column}")
    if metric == "null_fraction":
        return None if rows == 0 or nonnull is None else 1.0 - int(nonnull) / rows
    value = m.get(f"{metric}:{column}")
    return None if value is None else float(value)


def _evaluate_anomaly(
    table: str, rule: RuleSpec, rows: int, m: Mapping[str, object], ctx: EvaluationContext
) -> RuleResult:
    name = "rows_per_day" if rule.metric == "row_count" else rule.metric
    label = "rows/day" if rule.metric == "row_count" else f"{rule.metric} of '{rule.column}'"
    value = current_metric(rule.metric, rule.column, rows, m, ctx.days)
    series = sorted(ctx.history.get((name, rule.column or ""), ()), key=lambda t: (t[1], t[0]))[-rule.history :]
    values = [v for _, _, v in series if v is not None and not math.isnan(v)]
    threshold = f"|z| <= {rule.max_sd:g}"
    if value is None:
        return _result(
            table, rule, "skipped", f"{label} is undefined for this run (no values)", rows=rows, threshold=threshold
        )
    if len(values) < rule.min_history:
        return _result(
            table,
            rule,
            "skipped",
            f"{label} = {value:.6g}; only {len(values)} earlier partition(s) "
            f"in quality_metrics, needs {rule.min_history}",
            value=None,
            rows=rows,
            threshold=threshold,
        )
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    if sd == 0:
        z = 0.0 if value == mean else math.inf
    else:
        z = (value - mean) / sd
    return _result(
        table,
        rule,
        _verdict(rule, abs(z) > rule.max_sd),
        f"{label} = {value:.6g} vs history mean {mean:.6g} (sd {sd:.6g}, {len(values)} partitions): "
        f"z = {z:.2f}; allowed +/-{rule.max_sd:g} sd",
        value=z,
        threshold=threshold,
        rows=rows,
    )


def _reference_time(rule: RuleSpec, ctx: EvaluationContext) -> dt.datetime:
    if rule.relative_to == "partition_end" and ctx.end is not None:
        from zoneinfo import ZoneInfo

        local = dt.datetime.combine(ctx.end + dt.timedelta(days=1), dt.time(0), ZoneInfo(ctx.timezone))
        return local.astimezone(dt.timezone.utc)
    return ctx.now


def _row_rule_text(rule: RuleSpec) -> str:
    cols = ", ".join(f"'{c}'" for c in rule.columns)
    if rule.check == "not_null":
        return f"{cols} must not be null"
    if rule.check == "range":
        low = "-inf" if rule.min is None else rule.min
        high = "+inf" if rule.max is None else rule.max
        return f"{cols} must be in [{low}, {high}]"
    if rule.check == "allowed_values":
        return f"{cols} must be one of {', '.join(str(v) for v in rule.values)[:200]}"
    if rule.check == "regex":
        return f"{cols} must match {rule.pattern}"
    return f"{cols} must exist in dimension {rule.dimension} ({', '.join(rule.dimension_columns)})"


def _human(seconds: float) -> str:
    s = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def examples_json(values: Sequence[object]) -> tuple[str, ...]:
    return tuple(v if isinstance(v, str) else json.dumps(v, default=str) for v in values)


def check_patterns_in_spark(spark, config) -> None:
    """Compile every ``regex`` rule's pattern with Spark's engine (one tiny job, no data read).

    Raises :class:`~featuremill.core.errors.ConfigError` naming the file and the rule's field for
    each pattern Spark refuses.
    """
    from pyspark.sql import functions as F

    from featuremill.core.errors import ConfigError, ConfigIssue

    found = [
        (f"quality.tables.{t.table}.rules[{i}].pattern", r.pattern)
        for t in quality_of(config).tables
        for i, r in enumerate(t.rules)
        if r.check == "regex" and r.pattern is not None
    ]
    if not found:
        return
    try:
        spark.range(1).select(*[F.lit("").rlike(p).alias(f"p{i}") for i, (_, p) in enumerate(found)]).collect()
        return
    except Exception:  # which pattern(s)? one at a time, on the error path only
        pass
    issues = []
    for path, pattern in found:
        try:
            spark.range(1).select(F.lit("").rlike(pattern)).collect()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            issues.append(ConfigIssue(config.file, path, f"Spark's (Java) regex engine refuses {pattern!r}: {first}"))
    if issues:
        raise ConfigError(issues)
