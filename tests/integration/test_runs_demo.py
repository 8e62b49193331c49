"""`featuremill runs` after `featuremill demo`: every demo run is listed with its duration, rows and
freshness, checked against the raw landing files (DuckDB), the written feature table and the
wall time of the demo command, not against the run log code."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from featuremill import cli
from featuremill.commands.runs import COLUMNS, human_seconds
from featuremill.config import load_pipeline

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "conf" / "pipelines" / "demo.yaml"


def _seconds(cell: str) -> float:
    """``4.2s`` / ``3m05s`` / ``2h07m`` / ``3d04h`` -> seconds (the coarse units lose the rest)."""
    if cell.endswith("s") and "m" not in cell:
        return float(cell[:-1])
    match = re.fullmatch(r"(\d+)([dhm])(\d\d)([hms])", cell)
    assert match, f"not a duration: {cell!r}"
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return int(match.group(1)) * unit[match.group(2)] + int(match.group(3)) * unit[match.group(4)]


@pytest.mark.slow
def test_runs_shows_duration_rows_and_freshness_of_the_demo_runs(spark, demo_run, capsys):
    import duckdb

    # the demo (700 events over 10 days) ran once for the session: tests/integration/conftest.py
    where = demo_run.where
    demo_wall_s = demo_run.wall_s

    assert cli.main(["runs", str(DEMO), "--limit", "100", *where]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = re.split(r"\s{2,}", lines[1].strip())
    assert header == list(COLUMNS)
    table = [dict(zip(header, re.split(r"\s{2,}", line.strip()))) for line in lines[2:]]
    config = load_pipeline(DEMO, overrides={"warehouse": where[1], "data_root": where[3]})
    sources = [s.name for s in config.sources]
    feature_sets = [f.name for f in config.feature_sets]
    # the demo runs ingest and features twice (days 1..9, then day 10) and, between them, the
    # model step: fit the preprocessing state and select features on the history
    assert sorted((r["job"], r["target"]) for r in table) == sorted(
        [("ingest", s) for s in sources] * 2
        + [("features", f) for f in feature_sets] * 2
        + [("fit", config.section("preprocessing").name), ("select", config.section("preprocessing").label)]
    )
    assert all(r["status"] == "succeeded" for r in table)

    # duration: every run has one, and together they fit in the demo command's wall time
    durations = [_seconds(r["duration"]) for r in table]
    assert all(d > 0 for d in durations) and sum(durations) <= demo_wall_s

    # rows read by the transaction ingests = CSV rows in their landing partitions (DuckDB)
    raw = duckdb.sql(
        f"SELECT event_date::VARCHAR AS d, count(*) AS n FROM read_csv("
        f"'{demo_run.data_root}/transactions/*/*.csv', hive_partitioning=true) GROUP BY 1"
    ).fetchall()
    per_day = {dt.date.fromisoformat(d): n for d, n in raw}
    first, last = min(per_day), max(per_day)
    ingests = {
        r["dates"]: int(r["rows read"].replace(",", ""))
        for r in table
        if r["job"] == "ingest" and r["target"] == "transactions"
    }
    assert ingests == {
        f"{first}..{last - dt.timedelta(days=1)}": sum(n for d, n in per_day.items() if d < last),
        str(last): per_day[last],
    }

    # freshness of a feature run = its end minus the latest event time it wrote (feature table)
    ledger = {r["run_id"][:12]: r for r in spark.read.format("delta").load(config.tables.run_log).collect()}
    for row in (r for r in table if r["job"] == "features"):
        run = ledger[row["run"]]
        written = (
            spark.read.format("delta")
            .load(config.tables.features(row["target"]))
            .where(F.col("event_date").between(F.lit(run["start_date"]), F.lit(run["end_date"])))
            .agg(F.max(config.source(config.feature_set(row["target"]).source).event_time))
            .first()[0]
        )
        assert row["freshness"] == human_seconds((run["finished_at"] - written).total_seconds())
        assert row["rows written"] != "-" and row["cpu"] != "-"
