"""The quality gate the jobs run before they write a table.

For each output table of a run the job creates a :class:`TableGate` and, before any write:

1. :meth:`TableGate.check_schema`: the schema contract against the live Delta table (no Spark job);
2. :meth:`TableGate.with_row_rules`: referential markers (broadcast joins) and, on input tables,
   ``quarantine`` rules that send failing rows to the quarantine table;
3. :meth:`TableGate.aggregations` + :meth:`TableGate.take_measures`: the aggregate expressions of
   every rule and metric, evaluated in the aggregation the job runs anyway (ingest's count by
   verdict), or :meth:`TableGate.measure` (one aggregation) where the job has none;
4. :meth:`TableGate.decide`: rule decisions (plus one job for ``unique`` rules, one small read of
   the metrics history for ``row_count_change``/``anomaly``, and a ``limit(5)`` query of example
   keys for each rule that fails);

then :func:`enforce` appends every table's results and metrics to ``quality_metrics`` in one
commit and raises :class:`~featuremill.core.errors.QualityRuleFailed` if a ``fail`` rule did not hold,
so the job stops with every output table at its previous version. Only after that does the job
write, calling :meth:`TableGate.prepare_write` and passing :attr:`TableGate.evolve_schema`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence

from featuremill.core.errors import QualityRuleFailed
from featuremill.quality import contracts, history
from featuremill.quality import rules as R
from featuremill.quality.spec import quality_of
from featuremill.quality.tables import resolve_table

log = logging.getLogger(__name__)


def quality_metrics_path(config) -> str:
    """``<warehouse>/<pipeline>/quality_metrics``."""
    return config.tables.table("quality_metrics")


class TableGate:
    """The schema contract, rules and metrics of one output table for one run."""

    def __init__(self, config, table: str, *, allow_quarantine: bool = False):
        self.config = config
        self.name = table
        self.spec = quality_of(config).table(table)
        self.ref = resolve_table(config, table)
        self.allow_quarantine = allow_quarantine
        self.change: contracts.SchemaChange | None = None
        self.column_types: dict[str, str] = {}
        self.output_columns: list[str] = []
        self.measures: dict[str, object] = {}
        self.results: list[R.RuleResult] = []
        self.metrics: list[tuple[str, str, float | None]] = []
        self.context: R.EvaluationContext | None = None
        self._names: dict[str, str] = {}

    # ---------------------------------------------------------------- configuration
    @property
    def active(self) -> bool:
        """Rules or metrics are configured for this table (else only the schema check runs)."""
        return self.spec.configured

    @property
    def evolve_schema(self) -> bool:
        return bool(self.change and self.change.evolves)

    # ---------------------------------------------------------------- 1. schema
    def check_schema(self, spark, df) -> contracts.SchemaChange:
        """Compare ``df`` (what will be written) with the live table; raises SchemaContractError."""
        self.output_columns = list(df.columns)
        self.change = contracts.check_write(spark, df, self.ref.path, self.spec.schema, table=self.name)
        return self.change

    def prepare_write(self, spark) -> None:
        """Apply accepted widenings to the table properties; call right before the write."""
        if self.change is not None:
            contracts.prepare_table(spark, self.ref.path, self.change, root=self.config.env.root)

    # ---------------------------------------------------------------- 2. row rules
    def with_row_rules(self, df, *, references: Mapping[str, object] | None = None):
        """DataFrame -> DataFrame: ``__ref_*`` markers, then quarantine rules (input tables only)."""
        rules = self.spec.row_rules
        if not rules:
            return df
        missing = sorted({r.dimension for r in rules if r.check == "referential"} - set(references or {}))
        if missing:
            raise ValueError(f"{self.name}: no reference data for dimension(s) {', '.join(missing)}")
        df = R.with_reference_flags(df, rules, references or {})
        if self.spec.quarantine_rules:
            if not self.allow_quarantine:
                raise ValueError(f"{self.name}: quarantine rules apply only to input tables")
            df = R.with_quarantine_rules(df, self.spec, _types(df))
        return df

    # ---------------------------------------------------------------- 3. measurements
    def aggregations(self, df) -> list:
        """Aliased aggregate Columns of every rule and metric, for the caller's aggregation over
        ``df`` (which must hold the output columns and the ``__ref_*`` markers)."""
        if not self.active:
            return []
        self.column_types = _types(df)
        exprs = R.measure_columns(self.spec, self.column_types, self._metric_columns())
        cols, self._names = R.aliased(exprs)
        return cols

    def _metric_columns(self) -> list[str]:
        names = self.output_columns or list(self.column_types)
        return R.metric_columns([c for c in names if c in self.column_types], self.spec)

    def take_measures(self, row) -> dict:
        """Read the values of :meth:`aggregations` from the collected row (None: no rows)."""
        self.measures = R.read_measures(row, self._names) if row is not None else {R.ROWS: 0}
        if row is not None and self.measures.get(R.ROWS) is None:
            self.measures[R.ROWS] = 0
        return self.measures

    def measure(self, df) -> dict:
        """One aggregation over ``df`` (every row is about to be written)."""
        cols = self.aggregations(df)
        if not cols:
            return {}
        return self.take_measures(df.agg(*cols).first())

    # ---------------------------------------------------------------- 4. decisions
    def decide(
        self, spark, *, valid, context: R.EvaluationContext, existing=None, quarantined: Mapping[str, int] | None = None
    ) -> list[R.RuleResult]:
        """Evaluate every rule; ``valid`` are the rows to be written, ``existing`` the rows of the
        live table the write keeps (for ``unique`` rules with ``scope: table``)."""
        if not self.active:
            return []
        unique = R.unique_counts(valid, self.spec.rules, existing=existing)
        wanted = set()
        for rule in self.spec.rules:
            if rule.check == "row_count_change" or (rule.check == "anomaly" and rule.metric == "row_count"):
                wanted.add(("rows_per_day", ""))
            elif rule.check == "anomaly":
                wanted.add((rule.metric, rule.column or ""))
        past = (
            history.metric_history(
                spark, quality_metrics_path(self.config), table=self.name, metrics=wanted, before=context.start
            )
            if wanted
            else {}
        )
        self.context = R.EvaluationContext(
            now=context.now, start=context.start, end=context.end, timezone=context.timezone, history=past
        )
        results = R.evaluate(self.spec, self.measures, self.context, quarantined=quarantined, unique=unique)
        self.results = [self._with_examples(r, valid, existing) for r in results]
        self.metrics = history.metric_rows(
            table=self.name,
            measures=self.measures,
            column_types=self.column_types,
            columns=self._metric_columns(),
            days=self.context.days,
        )
        for r in self.results:
            if r.status == "warn":
                log.warning("quality warning: %s", r.describe())
            elif r.status == "fail":
                log.error("quality failure: %s", r.describe())
            else:
                log.info("quality %s: %s", r.status, r.describe())
        return self.results

    def _with_examples(self, result: R.RuleResult, valid, existing) -> R.RuleResult:
        if not result.failed:
            return result
        rule = next(r for r in self.spec.rules if r.name == result.rule)
        if rule.check == "unique":
            examples = R.duplicate_examples(valid, rule, existing=existing)
        elif rule.is_row_level or rule.check == "completeness":
            examples = R.failing_examples(valid, rule, self.column_types, self.ref.key)
        else:
            return result
        from dataclasses import replace

        return replace(result, examples=R.examples_json(examples))

    def records(self, *, run_id: str, job: str, gate_status: str, recorded_at: dt.datetime) -> list[dict]:
        if not self.active or self.context is None:
            return []
        return history.build_records(
            run_id=run_id,
            pipeline=self.config.name,
            job=job,
            table=self.name,
            start=self.context.start,
            end=self.context.end,
            recorded_at=recorded_at,
            gate_status=gate_status,
            results=self.results,
            metrics=self.metrics,
        )


def enforce(
    spark, config, gates: Sequence[tuple[TableGate, str]], *, job: str, recorded_at: dt.datetime | None = None
) -> list[R.RuleResult]:
    """Record every gate's results and metrics (one commit), then raise if a ``fail`` rule failed.

    ``gates`` pairs each decided gate with the run id of the run that owns its table.
    """
    failures = [r for gate, _ in gates for r in gate.results if r.failed]
    status = "failed" if failures else "passed"
    when = recorded_at or dt.datetime.now(dt.timezone.utc)
    records = [
        rec
        for gate, run_id in gates
        for rec in gate.records(run_id=run_id, job=job, gate_status=status, recorded_at=when)
    ]
    if records:
        history.append_records(spark, quality_metrics_path(config), records, root=config.env.root)
    if failures:
        raise QualityRuleFailed(failures)
    return [r for gate, _ in gates for r in gate.results]


def _types(df) -> dict[str, str]:
    return {f.name: f.dataType.simpleString() for f in df.schema.fields}
