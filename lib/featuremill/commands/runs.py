"""``featuremill runs PIPELINE [--limit N]``: the recent runs from the run log, as a table."""

from __future__ import annotations

import datetime as dt
import json

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for

COLUMNS = (
    "started (UTC)",
    "run",
    "job",
    "target",
    "dates",
    "status",
    "commit",
    "duration",
    "rows read",
    "rows written",
    "freshness",
    "cpu",
    "input",
    "peak task mem",
)


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--limit", type=int, default=20, help="how many runs to show, newest first (default 20)")
    parser.add_argument("--job", help="only runs of this job (ingest, features, backfill, replay)")


def run(args) -> int:
    from pyspark.sql import functions as F

    from featuremill.storage import io
    from featuremill.storage.ledger import read_runs

    config = load_config(args)
    spark = spark_for(config, f"featuremill-runs-{config.name}")
    if not io.is_delta_table(spark, config.tables.run_log):
        emit(f"pipeline {config.name!r} has no runs yet ({config.tables.run_log})")
        return 0
    df = read_runs(spark, config.tables.run_log, pipeline=config.name, job=args.job)
    wanted = [
        "run_id",
        "job",
        "target",
        "start_date",
        "end_date",
        "status",
        "started_at",
        "duration_s",
        "rows_read",
        "rows_written",
        "metrics",
        "details",
    ]
    rows = (
        df.select(*[F.col(c) if c in df.columns else F.lit(None).alias(c) for c in wanted]).limit(args.limit).collect()
    )
    emit(
        f"runs of pipeline {config.name!r}, newest first ({len(rows)} shown; freshness = end of run minus the "
        "latest event time written):"
    )
    table = [[_cell(r, c) for c in COLUMNS] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) if table else len(c) for i, c in enumerate(COLUMNS)]
    emit("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)))
    for t in table:
        emit("  ".join(v.ljust(w) for v, w in zip(t, widths)))
    return 0


def _cell(row, column: str) -> str:
    metrics = row["metrics"] or {}
    details = json.loads(row["details"] or "{}")
    if column == "started (UTC)":
        return row["started_at"].strftime("%Y-%m-%d %H:%M:%S") if row["started_at"] else "-"
    if column == "run":
        return row["run_id"][:12]
    if column == "dates":
        if row["start_date"] is None:
            return "-"
        return (
            str(row["start_date"])
            if row["start_date"] == row["end_date"]
            else f"{row['start_date']}..{row['end_date']}"
        )
    if column == "commit":
        return {"written": "written", "already_committed": "already"}.get(
            details.get("commit"), details.get("commit") or "-"
        )
    if column == "duration":
        return human_seconds(row["duration_s"])
    if column == "rows read":
        return f"{row['rows_read']:,}" if row["rows_read"] is not None else "-"
    if column == "rows written":
        return f"{row['rows_written']:,}" if row["rows_written"] is not None else "-"
    if column == "freshness":
        return human_seconds(metrics.get("freshness_s"))
    if column == "cpu":
        return human_seconds(metrics.get("executor_cpu_s"))
    if column == "input":
        return human_bytes(metrics.get("input_bytes"))
    if column == "peak task mem":
        return human_bytes(metrics.get("peak_task_execution_memory_bytes"))
    return str(row[column]) if row[column] is not None else "-"


def human_seconds(value) -> str:
    """``None`` -> ``-``; seconds as ``4.2s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    if value is None:
        return "-"
    seconds = float(value)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds:.1f}s"
    delta = dt.timedelta(seconds=int(round(seconds)))
    days, rest = delta.days, delta.seconds
    hours, minutes, secs = rest // 3600, rest % 3600 // 60, rest % 60
    if days:
        return f"{sign}{days}d{hours:02d}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m{secs:02d}s"


def human_bytes(value) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
