"""featuremill init: a project made outside this repository validates and runs with the installed tool."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from featuremill.cli import main

FEATUREMILL = str(Path(sys.executable).parent / "featuremill")


def _installed(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The installed console script, with no PYTHONPATH from the test run (the package must be installed)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([FEATUREMILL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def starter(tmp_path) -> Path:
    made = _installed(["init", "demo2"], cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "featuremill run pipelines/starter.yaml --job ingest --start 2026-01-01 --end 2026-01-02" in made.stdout
    return tmp_path / "demo2"


def test_init_writes_a_project_that_validates_with_the_installed_tool(starter):
    assert sorted(str(p.relative_to(starter)) for p in starter.rglob("*") if p.is_file()) == [
        "README.md",
        "conf/env/local.yaml",
        "data/page_views/event_date=2026-01-01/part-0.csv",
        "data/page_views/event_date=2026-01-02/part-0.csv",
        "pipelines/starter.lock.json",
        "pipelines/starter.yaml",
    ]
    assert len((starter / "README.md").read_text().splitlines()) == 3
    checked = _installed(["validate", "pipelines/starter.yaml"], cwd=starter)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == [
        "pipelines/starter.yaml: ok (1 sources, 1 feature sets, 4 features; environment local)"
    ]
    again = _installed(["init", "demo2"], cwd=starter.parent)
    assert again.returncode == 2 and "exists and is not an empty folder" in again.stderr


@pytest.mark.slow  # runs the ingest and feature jobs
def test_init_project_runs_ingest_and_features(spark, starter, monkeypatch, capsys):
    monkeypatch.chdir(starter)
    dates = ["--start", "2026-01-01", "--end", "2026-01-02"]
    assert main(["run", "pipelines/starter.yaml", "--job", "ingest", *dates]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ingest page_views: succeeded; read 10, valid 10, quarantined 0 (duplicates 0); "
        "validated Delta version 0, quarantine Delta version 0"
    ]
    assert main(["run", "pipelines/starter.yaml", "--job", "features", *dates]) == 0
    # which version is which: the feature set's definition version, the Delta table's commit version
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("features user_activity (feature set version 1): succeeded; dates 2026-01-01..2026-01-02")
    assert line.endswith("feature rows 10 (inserted 10, updated 0, deleted 0); Delta table version 0")
    table = spark.read.format("delta").load(str(starter / "warehouse" / "starter" / "features" / "user_activity"))
    assert table.count() == 10  # ten sample events, no two of one user at the same instant
    rows = {
        (r.user_id, r.event_ts.strftime("%m-%d %H:%M")): (r.views_1d, r.views_7d, r.seconds_1d, r.mean_seconds_7d)
        for r in table.where("user_id in (1, 3)").collect()
    }
    # Hand-computed from the sample events: windows are (t - window, t].
    assert rows == {
        (1, "01-01 09:00"): (1, 1, 12.5, 12.5),
        (1, "01-01 09:05"): (2, 2, 52.5, 26.25),
        (1, "01-02 00:30"): (3, 3, 60.5, pytest.approx(60.5 / 3)),
        (1, "01-02 16:40"): (2, 4, 41.0, 93.5 / 4),
        (3, "01-01 12:00"): (1, 1, 95.0, 95.0),
        (3, "01-02 08:00"): (2, 2, 156.5, 156.5 / 2),
        (3, "01-02 08:01"): (3, 3, 170.5, pytest.approx(170.5 / 3)),
    }
