"""Fixtures of the integration suite: one ``featuremill demo`` run shared by the tests that read it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from featuremill.core.session import LOG_LEVEL_ENV
from tests.conftest import ROOT, TEST_SPARK_CONF, TINY_TABLES

DEMO = ROOT / "conf" / "pipelines" / "demo.yaml"
#: 700 events over 10 days: the smallest demo whose model step (fit + select) has both label classes.
DEMO_EVENTS, DEMO_DAYS = 700, 10


@dataclass(frozen=True)
class DemoRun:
    """A finished ``featuremill demo`` run: where it wrote, what it printed (stdout and stderr
    together), how long it took."""

    warehouse: Path
    data_root: Path
    reports: Path
    printed: str
    wall_s: float

    @property
    def where(self) -> list[str]:
        """The ``--warehouse``/``--data-root`` arguments that point a command at this run."""
        return ["--warehouse", str(self.warehouse), "--data-root", str(self.data_root)]


@pytest.fixture(scope="session")
def demo_run(spark, tmp_path_factory) -> DemoRun:
    """``featuremill demo`` on the small dataset, run once for the session (read-only for tests).

    The demo takes minutes; the tests that check what it leaves (the run list, the model step's
    report and tables, its console) only read its output, so they share one run instead of each
    running it. It runs as its own process, the way a user starts it, so ``printed`` is the whole
    console: stdout and stderr (featuremill's log lines and anything the JVM prints) in the order
    they came. Its environment is ``conf/env/local.yaml`` with the test JVM's options, two
    shuffle partitions, interpreted expressions, one Delta snapshot partition and no
    Python call-site record (``TINY_TABLES`` of ``TEST_SPARK_CONF``), as the test session runs tiny
    tables.
    """
    import yaml

    base = tmp_path_factory.mktemp("demo")
    run = DemoRun(base / "warehouse", base / "data", base / "reports", "", 0.0)
    env_file = base / "local-test.yaml"
    local = yaml.safe_load((ROOT / "conf" / "env" / "local.yaml").read_text())
    local["master"] = "local[2]"
    # the test session's settings for tiny tables (interpreted expressions, one Delta snapshot
    # partition): the same console, 115 s -> 70 s alone. Adaptive execution stays on: without
    # it the model step's selection on these 700 events kept no feature (see issue 20's notes)
    local["spark"] = {
        **local.get("spark", {}),
        **{key: TEST_SPARK_CONF[key] for key in (*TINY_TABLES, "spark.driver.extraJavaOptions")},
        "spark.ui.enabled": "false",
    }
    env_file.write_text(yaml.safe_dump(local))
    # a plain local-mode process: nothing of this test session's gateway or logging choices leaks in
    child_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_REMOTE", LOG_LEVEL_ENV)
    }
    cmd = [sys.executable, "-m", "featuremill", "demo", str(DEMO), "--env", str(env_file)]
    cmd += ["--events", str(DEMO_EVENTS), "--days", str(DEMO_DAYS), *run.where, "--reports", str(run.reports)]
    began = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1500
    )
    wall_s = time.monotonic() - began
    (base / "console.txt").write_text(proc.stdout)  # to read after a failure
    assert proc.returncode == 0, proc.stdout[-4000:]
    return DemoRun(run.warehouse, run.data_root, run.reports, proc.stdout, wall_s)
