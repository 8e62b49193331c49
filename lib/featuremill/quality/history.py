"""The quality-metrics history: a Delta table of every run's rule results and per-column metrics.

Location: ``<warehouse>/<pipeline>/quality_metrics``. Grain: one row per (run, table, rule) with
``kind = 'rule'`` and one row per (run, table, metric, column) with ``kind = 'metric'``. Columns
are :data:`QUALITY_METRICS_SCHEMA`. The table is a log, like the run log: every run appends,
including runs a ``fail`` rule stopped (``gate_status = 'failed'``), so the failure is on record.

Metric names: ``rows`` and ``rows_per_day`` (column empty), and per column ``null_fraction``, and
for numeric columns ``mean``, ``stddev``, ``min``, ``max``.

History reads (:func:`metric_history`) use only runs whose gate passed and keep the latest value
per partition, so re-running a date does not count twice and bad data does not become the norm.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence

from featuremill.core.local_rows import local_dataframe
from featuremill.quality.rules import ROWS, RuleResult, current_metric, is_numeric

log = logging.getLogger(__name__)

QUALITY_METRICS_SCHEMA = (
    "run_id string, pipeline string, job string, table_name string, partition_start date, partition_end date, "
    "recorded_at timestamp, gate_status string, kind string, name string, column_name string, "
    "check_name string, severity string, status string, value double, threshold string, rows bigint, "
    "failing_rows bigint, message string, examples array<string>"
)


def metric_rows(
    *, table: str, measures: Mapping[str, object], column_types: Mapping[str, str], columns: Sequence[str], days: int
) -> list[tuple[str, str, float | None]]:
    """(metric, column, value) for the history: rows, rows/day and the per-column metrics."""
    rows = int(measures.get(ROWS) or 0)
    out: list[tuple[str, str, float | None]] = [("rows", "", float(rows)), ("rows_per_day", "", rows / max(days, 1))]
    for c in columns:
        out.append(("null_fraction", c, current_metric("null_fraction", c, rows, measures, days)))
        if is_numeric(column_types.get(c)):
            for metric in ("mean", "stddev", "min", "max"):
                out.append((metric, c, current_metric(metric, c, rows, measures, days)))
    return out


def build_records(
    *,
    run_id: str,
    pipeline: str,
    job: str,
    table: str,
    start: dt.date | None,
    end: dt.date | None,
    recorded_at: dt.datetime,
    gate_status: str,
    results: Iterable[RuleResult],
    metrics: Iterable[tuple[str, str, float | None]],
) -> list[dict]:
    """Rows of the quality-metrics table for one table of one run."""
    base = {
        "run_id": run_id,
        "pipeline": pipeline,
        "job": job,
        "table_name": table,
        "partition_start": start,
        "partition_end": end,
        "recorded_at": _naive_utc(recorded_at),
        "gate_status": gate_status,
    }
    out = []
    for r in results:
        out.append(
            {
                **base,
                "kind": "rule",
                "name": r.rule,
                "column_name": ",".join(r.columns),
                "check_name": r.check,
                "severity": r.severity,
                "status": r.status,
                "value": _finite(r.value),
                "threshold": r.threshold,
                "rows": r.rows,
                "failing_rows": r.failing_rows,
                "message": r.message,
                "examples": list(r.examples),
            }
        )
    for name, column, value in metrics:
        out.append(
            {
                **base,
                "kind": "metric",
                "name": name,
                "column_name": column,
                "check_name": None,
                "severity": None,
                "status": "ok",
                "value": _finite(value),
                "threshold": None,
                "rows": None,
                "failing_rows": None,
                "message": None,
                "examples": [],
            }
        )
    return out


def append_records(spark, path: str, records: Sequence[dict], *, root: str) -> None:
    """Append rows to the quality-metrics table at ``path`` (created on first use): one commit.

    ``root`` is the warehouse root ``path`` must lie under."""
    if not records:
        return
    from pyspark.sql.types import _parse_datatype_string

    schema = _parse_datatype_string(QUALITY_METRICS_SCHEMA)
    df = local_dataframe(spark, [tuple(r.get(f.name) for f in schema.fields) for r in records], schema)
    from featuremill.storage import io

    io.append(df, path, root=root, merge_schema=True, what="quality metrics table")
    log.info("recorded %d quality metric row(s) in %s", len(records), path)


def metric_history(
    spark, path: str, *, table: str, metrics: Iterable[tuple[str, str]], before: dt.date | None
) -> dict[tuple[str, str], list[tuple[dt.date, dt.date, float]]]:
    """(metric, column) -> [(partition_start, partition_end, value)] of earlier partitions.

    Only partitions ending before ``before``, only runs whose quality gate passed, and the latest
    recorded value per partition. One small Spark job over the metrics table (none if it does
    not exist yet).
    """
    from pyspark.sql import functions as F

    from featuremill.storage import io

    wanted = sorted(set(metrics))
    if not wanted or not io.is_delta_table(spark, path):
        return {}
    df = io.load_delta(spark, path).where(
        (F.col("table_name") == F.lit(table))
        & (F.col("kind") == F.lit("metric"))
        & (F.col("gate_status") == F.lit("passed"))
        & F.col("value").isNotNull()
    )
    condition = None
    for name, column in wanted:
        term = (F.col("name") == F.lit(name)) & (F.coalesce(F.col("column_name"), F.lit("")) == F.lit(column))
        condition = term if condition is None else condition | term
    df = df.where(condition)
    if before is not None:
        df = df.where(F.col("partition_end") < F.lit(before))
    latest = df.groupBy("name", "column_name", "partition_start", "partition_end").agg(
        F.max_by("value", "recorded_at").alias("value")
    )
    out: dict[tuple[str, str], list[tuple[dt.date, dt.date, float]]] = {}
    for r in latest.collect():
        out.setdefault((r["name"], r["column_name"] or ""), []).append(
            (r["partition_start"], r["partition_end"], float(r["value"]))
        )
    return out


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _finite(value: float | None) -> float | None:
    import math

    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else (1e308 if value > 0 else -1e308) if not math.isnan(value) else None
