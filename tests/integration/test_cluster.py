"""The jobs on a real Spark standalone cluster (scripts/cluster.sh: a master and two workers on
127.0.0.1, separate JVMs), submitted with scripts/submit.sh exactly as a user would.

Checks that:
* the jobs ran distributed: every task in Spark's own event log ran on an executor of a worker,
  none on the driver, and both workers' executors ran tasks;
* the package reached the cluster through spark-submit: driver and executors use a Python that
  has pyspark but NOT featuremill installed, so the jobs can only import it from --py-files;
* the tables the cluster wrote equal, value by value, those of a local-mode run of the same
  pipeline on the same data;
* the cluster is stopped (no process left) even when an assertion fails.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.server]  # a standalone Spark cluster

DEMO = ROOT / "conf" / "pipelines" / "demo.yaml"
START, END = "2026-09-01", "2026-09-03"
SMALL_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _free_ports(count: int) -> int:
    """A base port with ``count`` consecutive free ports on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count >= 65000:
            continue
        ok = True
        for port in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free ports")


def _python_without_featuremill(tmp: Path) -> str:
    """A Python 3.11 that sees the project's pyspark/pyyaml but not its featuremill install.

    The .pth file adds .venv's site-packages as a plain path entry, so the .pth files inside it
    (among them featuremill's editable install) are not processed.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp)], check=True)
    site = Path(tmp) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "featuremill-cluster-deps.pth").write_text(
        f"{ROOT / '.venv' / 'lib' / site.parent.name / 'site-packages'}\n"
    )
    python = str(Path(tmp) / "bin" / "python")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run(
        [python, "-c", "import pyspark, yaml\ntry:\n import featuremill\nexcept ImportError:\n print('absent')"],
        capture_output=True,
        text=True,
        env=clean,
    )
    assert probe.stdout.strip() == "absent", (probe.stdout, probe.stderr)
    return python


def _events(event_dir: Path) -> list[list[dict]]:
    apps = []
    for path in sorted(glob.glob(str(event_dir / "app-*"))):
        with open(path, encoding="utf-8") as handle:
            apps.append([json.loads(line) for line in handle if line.strip()])
    return apps


def _pids_of(state: Path) -> list[int]:
    """Processes (any) whose environment carries this cluster's state folder."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if f"FEATUREMILL_CLUSTER_STATE={state}".encode() in environ.split(b"\0"):
            pids.append(int(proc.name))
    return pids


def _local_reference(spark, tmp: Path, data_root: Path):
    """The same pipeline in local mode (the test session), into its own warehouse."""
    from featuremill.config import load_pipeline
    from featuremill.pipelines.build_features import run_features
    from featuremill.pipelines.common import parse_date
    from featuremill.pipelines.ingest import run_ingest

    env = tmp / "local-env.yaml"
    env.write_text(
        textwrap.dedent(f"""\
        warehouse: {tmp / "local-warehouse"}
        data_root: {data_root}
    """)
    )
    config = load_pipeline(DEMO, env=str(env))
    run_ingest(spark, config, start=parse_date(START), end=parse_date(END))
    run_features(spark, config, start=parse_date(START), end=parse_date(END))
    return config


def test_jobs_on_standalone_cluster_match_local_mode(spark, tmp_path):
    from chispa import assert_approx_df_equality

    from featuremill.pipelines.demo_data import DemoDataSpec, write_demo_data

    data_root = tmp_path / "data"
    write_demo_data(spark, data_root, DemoDataSpec(events=1500, days=3, start=START))
    local = _local_reference(spark, tmp_path, data_root)

    state = tmp_path / "cluster"
    events = tmp_path / "events"
    events.mkdir()
    base = _free_ports(4)
    env = dict(os.environ)
    for key in [k for k in env if k.startswith(("PYSPARK_", "SPARK_")) or k == "PYTHONPATH"]:
        env.pop(key)  # the test session's own settings must not leak into the cluster
    env.update(
        {
            "FEATUREMILL_CLUSTER_DIR": str(state),
            "FEATUREMILL_CLUSTER_PORT": str(base),
            "FEATUREMILL_CLUSTER_UI_PORT": str(base + 1),
            "FEATUREMILL_CLUSTER_WORKERS": "2",
            "FEATUREMILL_CLUSTER_WORKER_CORES": "1",
            "FEATUREMILL_CLUSTER_WORKER_MEMORY": "1g",
            "FEATUREMILL_WAREHOUSE": str(tmp_path / "cluster-warehouse"),
            "FEATUREMILL_DATA_ROOT": str(data_root),
            "PYSPARK_PYTHON": _python_without_featuremill(tmp_path / "bare-python"),
        }
    )
    cluster = str(ROOT / "scripts" / "cluster.sh")
    try:
        started = subprocess.run([cluster, "start"], env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stderr
        master = started.stdout.strip().splitlines()[-1]
        assert master == f"spark://127.0.0.1:{base}"

        spark_options = [
            "--dist",
            str(tmp_path / "dist"),  # package.sh builds the zip here
            "--master",
            master,
            "--executor-memory",
            "768m",
            "--driver-memory",
            "1g",
            "--conf",
            "spark.executor.cores=1",
            "--conf",
            "spark.cores.max=2",
            # start tasks only once both workers' executors are registered
            "--conf",
            "spark.scheduler.minRegisteredResourcesRatio=1.0",
            "--conf",
            "spark.scheduler.maxRegisteredResourcesWaitingTime=120s",
            "--conf",
            "spark.eventLog.enabled=true",
            "--conf",
            f"spark.eventLog.dir={events}",
            "--conf",
            "spark.eventLog.compress=false",
            "--conf",
            "spark.eventLog.rolling.enabled=false",
            "--conf",
            "spark.sql.shuffle.partitions=4",
            "--conf",
            "spark.default.parallelism=4",
            "--conf",
            "spark.databricks.delta.snapshotPartitions=2",
            "--conf",
            "spark.ui.enabled=false",
            "--conf",
            "spark.log.level=WARN",
            # short-lived JVMs on 2 shared cores: skip C2 compilation and parallel GC threads
            "--conf",
            f"spark.driver.extraJavaOptions={SMALL_JVM}",
            "--conf",
            f"spark.executor.extraJavaOptions={SMALL_JVM}",
        ]
        for job in ("ingest", "features"):
            proc = subprocess.run(
                [
                    str(ROOT / "scripts" / "submit.sh"),
                    *spark_options,
                    "--",
                    job,
                    str(DEMO),
                    "--env",
                    "standalone",
                    "--start",
                    START,
                    "--end",
                    END,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                cwd=tmp_path,
            )
            assert proc.returncode == 0, f"{job} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}"
            assert f"{job} " in proc.stdout

        # -- the work ran on the workers' executors, never on the driver -----------------------
        apps = _events(events)
        assert len(apps) == 2
        for app in apps:
            added = {
                e["Executor ID"]: e["Executor Info"]["Host"] for e in app if e["Event"] == "SparkListenerExecutorAdded"
            }
            ran = {e["Task Info"]["Executor ID"] for e in app if e["Event"] == "SparkListenerTaskEnd"}
            failed = [
                e for e in app if e["Event"] == "SparkListenerTaskEnd" and e["Task End Reason"]["Reason"] != "Success"
            ]
            assert len(added) == 2 and set(added.values()) == {"127.0.0.1"}
            assert "driver" not in ran and ran == set(added), (ran, added)
            assert not failed
            start = next(e for e in app if e["Event"] == "SparkListenerEnvironmentUpdate")
            props = start["Spark Properties"]
            props = dict(props) if isinstance(props, list) else props
            assert props["spark.master"] == master
            # spark-submit adds the --packages jars to the Python path as well
            assert str(tmp_path / "dist" / "featuremill.zip") in props["spark.submit.pyFiles"].split(",")
        # each worker launched executors for both applications (their work dirs hold the logs)
        for worker in ("worker-1", "worker-2"):
            assert len(list((state / "work" / worker).glob("app-*/*/stderr"))) == 2

        # -- the cluster's tables equal the local run's, value by value -------------------------
        cluster_root = Path(env["FEATUREMILL_WAREHOUSE"]) / "demo"
        local_root = Path(local.tables.root)
        tables = [f"validated/{s.name}" for s in local.sources] + ["quarantine"]
        tables += [f"features/{fs.name}" for fs in local.feature_sets]
        for table in tables:
            expected = spark.read.format("delta").load(str(local_root / table))
            actual = spark.read.format("delta").load(str(cluster_root / table))
            assert actual.count() == expected.count() > 0, table
            columns = sorted(expected.columns)
            assert sorted(actual.columns) == columns, table
            order = [c for c in columns if dict(expected.dtypes)[c] not in ("map<string,string>",)]
            assert_approx_df_equality(
                actual.select(*columns).orderBy(*order),
                expected.select(*columns).orderBy(*order),
                precision=1e-9,
                ignore_nullable=True,
            )
        runs = spark.read.format("delta").load(str(cluster_root / "run_log")).collect()
        assert sorted((r["job"], r["target"], r["status"]) for r in runs) == sorted(
            [("ingest", s.name, "succeeded") for s in local.sources]
            + [("features", fs.name, "succeeded") for fs in local.feature_sets]
        )
    finally:
        stopped = subprocess.run([cluster, "stop"], env=env, capture_output=True, text=True, timeout=120)
        left = _pids_of(state)
        shutil.rmtree(state / "tmp", ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    assert left == [], f"processes left after cluster.sh stop: {left}"
