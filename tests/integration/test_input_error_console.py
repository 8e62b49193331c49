"""The console of a run that stops on bad input: featuremill's one-line error first and alone.

A raw file without a declared column used to print the executor's Java stack trace of the failed
task (``FAILED_READ_FILE.NO_HINT``, 100-odd lines) before the error that names the file and the
column. The run is a ``featuremill`` subprocess, since what the user sees on the console is the
point; the Parquet and Delta schema check runs in this session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from featuremill.config import load_pipeline
from featuremill.core.errors import InputDataError
from featuremill.storage import io
from tests.conftest import write_pipeline

#: Printed by the JVM itself, not by a logger (tests/integration/test_demo_console.py).
JDK_INCUBATOR = "WARNING: Using incubator modules: jdk.incubator.vector"

PIPELINE = """\
pipeline: errfirst
owner: tests@example.com
sources:
  views:
    kind: events
    format: {fmt}
    path: views
    partition_column: event_date
    event_time: event_ts
    key: event_id
    columns:
      event_id: string
      user_id: {{type: bigint, nullable: false}}
      event_ts: {{type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}}
      duration_s: double
feature_sets:
  - name: activity
    description: views per user
    owner: tests@example.com
    version: 1
    source: views
    entity: user_id
    features:
      - {{name: views_1d, function: count, window: 1d, description: views in a day}}
"""


def _landing(project: Path, date: str) -> Path:
    folder = project / "data" / "views" / f"event_date={date}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.slow
def test_cli_run_missing_declared_column_prints_the_error_first_and_changes_no_table(project):
    pipeline = write_pipeline(project, PIPELINE.format(fmt="csv"))
    day = _landing(project, "2026-01-01")
    (day / "part-0.csv").write_text(
        "event_id,user_id,event_ts,duration_s\ne1,1,2026-01-01 09:00:00,12.5\ne2,2,2026-01-01 10:00:00,3.0\n"
    )
    bad = day / "part-1.csv"  # duration_s dropped upstream
    bad.write_text("event_id,user_id,event_ts\ne3,1,2026-01-01 11:00:00\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "featuremill", "run", str(pipeline), "--job", "ingest"]
        + ["--start", "2026-01-01", "--end", "2026-01-01", "--log-level", "WARNING"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 2, printed
    lines = [line for line in done.stderr.splitlines() if line.strip() and line != JDK_INCUBATOR]
    assert lines[0].startswith("featuremill run: error: source 'views': CSV header has 3 columns"), printed
    assert "declared columns missing: duration_s" in lines[0]
    assert f"file: file://{bad};" in lines[0]
    assert "; field: duration_s;" in lines[0]
    assert "value: 'event_id,user_id,event_ts'" in lines[0]
    assert [line for line in printed.splitlines() if line.startswith("\tat ")] == []
    assert "Traceback" not in printed
    assert " ERROR " not in printed  # no log4j ERROR record (the executor's "Exception in task")
    # Nothing was ingested: the only table is the run log, which records the failed run.
    tables = sorted(str(p.parent.relative_to(project / "warehouse")) for p in project.rglob("_delta_log"))
    assert tables == ["errfirst/run_log"], tables


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_check_declared_columns_missing_column_names_path_and_field(spark, project, fmt):
    pipeline = write_pipeline(project, PIPELINE.format(fmt=fmt))
    source = load_pipeline(pipeline, env="local").source("views")
    frame = spark.createDataFrame(
        [("e1", "1", "2026-01-01 09:00:00", "2026-01-01")],
        "event_id string, user_id string, event_ts string, event_date string",
    )
    frame.write.format(fmt).partitionBy("event_date").save(source.path)
    with pytest.raises(InputDataError) as info:
        io.read_raw_source(spark, source)
    error = info.value
    assert (error.file, error.field) == (source.path, "duration_s")
    assert str(error) == (
        f"source 'views': the {fmt} data has no column 'duration_s'; its columns are "
        "event_id, user_id, event_ts, event_date: add the column upstream or remove it from "
        f"sources.views.columns before ingesting; file: {source.path}; field: duration_s"
    )


def test_check_declared_columns_matches_names_as_spark_resolves_them(spark, project):
    source = load_pipeline(write_pipeline(project, PIPELINE.format(fmt="parquet")), env="local").source("views")
    found = ["EVENT_ID", "user_id", "event_ts", "Duration_S", "event_date"]
    io.check_declared_columns(spark, source, found)  # case-insensitive, as Spark resolves by default
    previous = spark.conf.get("spark.sql.caseSensitive")
    spark.conf.set("spark.sql.caseSensitive", "true")
    try:
        with pytest.raises(InputDataError) as info:
            io.check_declared_columns(spark, source, found)
    finally:
        spark.conf.set("spark.sql.caseSensitive", previous)
    assert info.value.field == "event_id"
    assert "(declared columns missing: event_id, duration_s)" in str(info.value)
