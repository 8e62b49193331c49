"""Every job in ``jobs/`` on a real Spark standalone cluster (scripts/cluster.sh: a master and two
workers on 127.0.0.1, separate JVMs), submitted with scripts/submit.sh exactly as a user would.

One cluster start, one application per submit, in this order (:data:`PLAN`; a guard checks that
the plan submits every file in ``jobs/``; the last three, independent of each other, are submitted
at the same time):

===================  ==========================================  ==============================================
submit               arguments                                   checked against
===================  ==========================================  ==============================================
ingest               --date D1                                   distributed over both workers; tables below
stream (delta)       customer_activity --available-now           the next submit's batch rows, value by value
features             --date D1                                   the stream's rows; tables below
dag                  run --date D2 (ingest, then features)       run log: both DAG nodes and their runs for D2
backfill             --start D3 --end D3                         every table == the local run; run log
profile              validated.transactions                      row count, columns, amount's stats (local)
drift                customer_activity D1..D2 vs D3              rows per side and warm-up per window length
materialize          the Feast repository (SQLite online store)  get_online_features == an entity's latest row
===================  ==========================================  ==============================================

The pipeline is conf/pipelines/demo.yaml with its transactions stream declared as ``delta`` (the
validated table read as a stream) instead of Kafka, so the stream job needs no broker; the stream
block is not part of any fingerprint, so the demo's lock file applies unchanged.

Also checks that:
* the jobs ran on the cluster: every task in Spark's own event log ran on an executor of a worker,
  none on the driver, none failed; ingest gets an executor on each worker and waits for both
  (``minRegisteredResourcesRatio=1``), and both ran tasks; the other jobs get one executor
  (``spark.cores.max=1``: an executor JVM less to start per submit on the 2 shared cores; the
  spread over workers is the scheduler's, the same for every job, so one job shows it);
* the package reached the cluster through spark-submit: driver and executors use a Python that
  has pyspark (and the project's other dependencies, Feast among them) but NOT featuremill
  installed, so the jobs can only import it from --py-files;
* the cluster is stopped (no process left) even when an assertion fails.

Each submit's wall time is printed (``pytest -s``), not asserted.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.jvm_archive import enabled_options

pytestmark = [pytest.mark.slow, pytest.mark.server]  # a standalone Spark cluster

DEMO = ROOT / "conf" / "pipelines" / "demo.yaml"
D1, D2, D3 = "2026-09-01", "2026-09-02", "2026-09-03"
START, END = D1, D3
#: (job name for scripts/submit.sh, its arguments after the pipeline), in submission order
PLAN: list[tuple[str, list[str]]] = [
    ("ingest", ["--date", D1]),
    ("stream", ["--feature-set", "customer_activity", "--available-now"]),
    ("features", ["--date", D1]),
    ("dag", ["--date", D2]),
    ("backfill", ["--start", D3, "--end", D3]),
    ("profile", ["--table", "validated.transactions"]),
    (
        "drift",
        ["--table", "features.customer_activity", "--reference", f"{D1}..{D2}", "--current", D3, "--fail-on", "never"],
    ),
    ("materialize", []),  # --repo added once the repository exists
]
#: jobs whose tasks must have run on both workers (they wait until both executors registered)
DISTRIBUTED = ("ingest",)
#: the plan's last jobs, independent of each other: submitted at the same time
CONCURRENT = ("profile", "drift", "materialize")
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


def _pipeline_with_delta_stream(project: Path) -> Path:
    """``project``/conf/pipelines/demo.yaml: the demo pipeline, its stream read from Delta, beside
    the demo's lock file and the standalone environment."""
    (project / "conf" / "pipelines").mkdir(parents=True)
    (project / "conf" / "env").mkdir(parents=True)
    text, replaced = re.subn(
        r"\n    stream:\n      type: kafka\n(?:      .*\n)+", "\n    stream: {type: delta}\n", DEMO.read_text()
    )
    assert replaced == 1, "the demo pipeline's transactions stream block was not found"
    pipeline = project / "conf" / "pipelines" / "demo.yaml"
    pipeline.write_text(text)
    shutil.copy(DEMO.with_name("demo.lock.json"), pipeline.with_name("demo.lock.json"))
    shutil.copy(ROOT / "conf" / "env" / "standalone.yaml", project / "conf" / "env" / "standalone.yaml")
    return pipeline


def _local_reference(spark, tmp: Path, pipeline: Path, data_root: Path):
    """The same pipeline in local mode (the test session), into its own warehouse: ingest D1, D2 and
    D3 as the cluster does (each ingest run of the undated dimension snapshots quarantines their bad
    rows again, and a duplicate's reason depends on the batch it arrived in), then features D1..D3
    in one run (the cluster's three runs must give the same rows)."""
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
    config = load_pipeline(pipeline, env=str(env))
    for day in (D1, D2, D3):
        run_ingest(spark, config, start=parse_date(day), end=parse_date(day))
    run_features(spark, config, start=parse_date(START), end=parse_date(END))
    return config


def _assert_same_table(actual, expected, what: str) -> None:
    """Same rows, column by column (floats within 1e-9), in any order."""
    from chispa import assert_approx_df_equality

    assert actual.count() == expected.count() > 0, what
    columns = sorted(expected.columns)
    assert sorted(actual.columns) == columns, what
    order = [c for c in columns if dict(expected.dtypes)[c] not in ("map<string,string>",)]
    assert_approx_df_equality(
        actual.select(*columns).orderBy(*order),
        expected.select(*columns).orderBy(*order),
        precision=1e-9,
        ignore_nullable=True,
    )


def _properties(app: list[dict]) -> dict:
    """The application's Spark properties, from its environment event."""
    start = next(e for e in app if e["Event"] == "SparkListenerEnvironmentUpdate")
    props = start["Spark Properties"]
    return dict(props) if isinstance(props, list) else props


def _app_name(job: str) -> str:
    """The application name a job's session takes (``featuremill-<verb>-<pipeline>``; the stream's
    adds its feature set)."""
    return "featuremill-stream-demo-customer_activity" if job == "stream" else f"featuremill-{job}-demo"


def _check_apps(apps: list[list[dict]], master: str, zip_path: str) -> None:
    """Each job of the plan ran as one application (found by its name: the last three start
    together), its tasks on the workers' executors, none failed."""
    by_name = {_properties(app)["spark.app.name"]: app for app in apps}
    assert len(by_name) == len(apps) and sorted(by_name) == sorted(_app_name(job) for job, _ in PLAN), sorted(by_name)
    for job, _ in PLAN:
        app = by_name[_app_name(job)]
        added = {
            e["Executor ID"]: e["Executor Info"]["Host"] for e in app if e["Event"] == "SparkListenerExecutorAdded"
        }
        ran = {e["Task Info"]["Executor ID"] for e in app if e["Event"] == "SparkListenerTaskEnd"}
        failed = [
            e for e in app if e["Event"] == "SparkListenerTaskEnd" and e["Task End Reason"]["Reason"] != "Success"
        ]
        assert ran and set(added.values()) == {"127.0.0.1"}, (job, ran, added)
        assert "driver" not in ran and ran <= set(added), (job, ran, added)
        assert not failed, job
        # two executors (one per worker) where the spread is checked, one elsewhere
        assert len(added) == (2 if job in DISTRIBUTED else 1), (job, added)
        if job in DISTRIBUTED:
            assert ran == set(added), (job, ran, added)
        props = _properties(app)
        assert props["spark.master"] == master, job
        # spark-submit adds the --packages jars to the Python path as well
        assert zip_path in props["spark.submit.pyFiles"].split(","), job


def _version(spark, path: Path) -> int:
    """The Delta table's latest version, from its history."""
    return spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").first()["version"]


def _latest_row(table, key: str, event_time: str) -> dict:
    """The latest row of the entity with the most rows among those whose latest event time is unique."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_entity = Window.partitionBy(key)
    latest = (
        table.withColumn("__n", F.count(F.lit(1)).over(by_entity))
        .withColumn("__last", F.max(event_time).over(by_entity))
        .where(F.col(event_time) == F.col("__last"))
        .withColumn("__ties", F.count(F.lit(1)).over(by_entity))
        .where("__ties = 1")
        .orderBy(F.col("__n").desc(), F.col(key))
        .drop("__n", "__last", "__ties")
        .first()
    )
    assert latest is not None
    return latest.asDict()


def test_every_job_on_standalone_cluster_matches_local_mode(spark, tmp_path):
    from featuremill.cli import main as featuremill
    from featuremill.deploy.submit import JOB_SCRIPTS
    from featuremill.pipelines.demo_data import DemoDataSpec, write_demo_data

    # guard: a new file in jobs/ must be submitted here too
    assert {Path(JOB_SCRIPTS[job]).name for job, _ in PLAN} == {p.name for p in (ROOT / "jobs").glob("*.py")}

    began = time.monotonic()
    data_root = tmp_path / "data"
    write_demo_data(spark, data_root, DemoDataSpec(events=1500, days=3, start=START))
    pipeline = _pipeline_with_delta_stream(tmp_path / "project")
    print(f"\n[cluster test] data: {time.monotonic() - began:.0f} s", flush=True)
    # the local reference runs in this session while the cluster starts and the submits run: it
    # shares no table with them, and it is only read once every submit is done
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-reference")
    reference = background.submit(_local_reference, spark, tmp_path, pipeline, data_root)
    side_by_side = ThreadPoolExecutor(max_workers=len(CONCURRENT), thread_name_prefix="submit")

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
    cluster_root = Path(env["FEATUREMILL_WAREHOUSE"]) / "demo"
    repo = tmp_path / "feast"
    cluster = str(ROOT / "scripts" / "cluster.sh")
    try:
        started = subprocess.run([cluster, "start"], env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stderr
        master = started.stdout.strip().splitlines()[-1]
        assert master == f"spark://127.0.0.1:{base}"
        print(f"[cluster test] cluster started: {time.monotonic() - began:.0f} s", flush=True)

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
            # a few thousand rows: interpreted expressions cost less than compiling code per plan
            # (as in the test session, tests/conftest.py)
            "--conf",
            "spark.sql.codegen.wholeStage=false",
            "--conf",
            "spark.sql.codegen.factoryMode=NO_CODEGEN",
            # no Python call site recorded per DataFrame call (tests/conftest.py)
            "--conf",
            "spark.python.sql.dataFrameDebugging.enabled=false",
            # short-lived JVMs on 2 shared cores: skip C2 compilation and parallel GC threads; and
            # map the classes they load from the run's class archive (tests/jvm_archive.py; a JVM
            # whose class path differs from the archive's ignores it)
            "--conf",
            f"spark.driver.extraJavaOptions={SMALL_JVM} {enabled_options()}".strip(),
            "--conf",
            f"spark.executor.extraJavaOptions={SMALL_JVM} {enabled_options()}".strip(),
        ]
        # where the spread is checked: an executor on each worker, tasks start once both registered;
        # elsewhere one executor (a JVM less to start on the 2 shared cores) and no wait
        one_executor = ["--conf", "spark.cores.max=1"]
        # the Delta jar files this machine's first Ivy resolution recorded (scripts/setup.sh):
        # passed as --jars, no submit runs an Ivy resolution (spark-submit resolves --packages anew each time)
        from featuremill.core.session import cached_jars

        delta_jars = cached_jars()
        if delta_jars:
            spark_options += ["--jars", ",".join(delta_jars)]
        wait_for_both = [
            "--conf",
            "spark.cores.max=2",
            "--conf",
            "spark.scheduler.minRegisteredResourcesRatio=1.0",
            "--conf",
            "spark.scheduler.maxRegisteredResourcesWaitingTime=120s",
        ]
        timings: list[tuple[str, float]] = []

        def submit(job: str, args: list[str]) -> str:
            options = spark_options + (wait_for_both if job in DISTRIBUTED else one_executor)
            t0 = time.monotonic()
            proc = subprocess.run(
                [str(ROOT / "scripts" / "submit.sh"), *options, "--", job, str(pipeline), "--env", "standalone", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                cwd=tmp_path,
            )
            timings.append((job, time.monotonic() - t0))
            print(f"[cluster test] submit {job}: {timings[-1][1]:.1f} s", flush=True)
            assert proc.returncode == 0, f"{job} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
            return proc.stdout

        def table(root: Path, name: str):
            return spark.read.format("delta").load(str(root / name))

        outputs = {}
        # the last jobs only read what the earlier ones wrote and each writes a table of its own
        # (profiles, drift_results, serving/materializations): submitted side by side, two at a time
        # on the two worker cores (a driver's start overlaps another's work; the third gets a core
        # when one frees up)
        pending = {}
        for job, args in PLAN:
            if job == "materialize":
                # the Feast repository of the cluster's tables, applied here (Feast is in this Python)
                assert (
                    featuremill(
                        [
                            "feast-repo",
                            str(pipeline),
                            "--env",
                            "standalone",
                            "--warehouse",
                            str(Path(env["FEATUREMILL_WAREHOUSE"])),
                            "--data-root",
                            str(data_root),
                            "--out",
                            str(repo),
                            "--apply",
                        ]
                    )
                    == 0
                )
                args = ["--repo", str(repo)]
            if job in CONCURRENT:
                pending[job] = side_by_side.submit(submit, job, args)
                continue
            outputs[job] = submit(job, args)
            if job == "stream":
                # what the delta stream wrote from the rows landed on D1 (later landings hold late
                # events dated D1, so the local run of D1..D3 is no reference for it) ...
                stream_version = _version(spark, cluster_root / "features" / "customer_activity")
                assert not (cluster_root / "features" / "product_demand").exists()
            if job == "features":
                # ... equals the batch job's rows for the same events, which replaced them
                feature_table = str(cluster_root / "features" / "customer_activity")
                assert _version(spark, cluster_root / "features" / "customer_activity") > stream_version
                _assert_same_table(
                    spark.read.format("delta").option("versionAsOf", stream_version).load(feature_table),
                    spark.read.format("delta").load(feature_table),
                    "stream features/customer_activity",
                )
        outputs.update({job: future.result() for job, future in pending.items()})
        print("[cluster test] submits: " + ", ".join(f"{j} {s:.0f} s" for j, s in timings), flush=True)
        local = reference.result()
        local_root = Path(local.tables.root)
        print(f"[cluster test] local reference ready: {time.monotonic() - began:.0f} s", flush=True)

        # -- the work ran on the workers' executors, never on the driver -----------------------
        apps = _events(events)
        assert len(apps) == len(PLAN)
        _check_apps(apps, master, str(tmp_path / "dist" / "featuremill.zip"))
        # the workers launched those executors (their work dirs hold the logs): each worker one for
        # every application checked for the spread, one more per other application in all
        launched = [len(list((state / "work" / w).glob("app-*/*/stderr"))) for w in ("worker-1", "worker-2")]
        assert min(launched) >= len(DISTRIBUTED) and sum(launched) == len(PLAN) + len(DISTRIBUTED), launched

        # -- ingest D1, dag D2 and backfill D3 together equal the local run of D1..D3 ------------
        tables = [f"validated/{s.name}" for s in local.sources] + ["quarantine"]
        tables += [f"features/{fs.name}" for fs in local.feature_sets]
        for name in tables:
            _assert_same_table(table(cluster_root, name), table(local_root, name), name)
        runs = table(cluster_root, "run_log").collect()  # one row per run: a few dozen
        print(
            "[cluster test] run log: "
            + "; ".join(sorted(f"{r['job']} {r['target']} {r['start_date']} {r['status']}" for r in runs)),
            flush=True,
        )
        days = [D1, D2, D3]
        expected = [("ingest", s.name, d, "succeeded") for s in local.sources for d in days]
        expected += [("features", fs.name, d, "succeeded") for fs in local.feature_sets for d in days]
        assert sorted(
            (r["job"], r["target"], str(r["start_date"]), r["status"])
            for r in runs
            if r["job"] in ("ingest", "features")
        ) == sorted(expected)
        assert all(str(r["end_date"]) == str(r["start_date"]) for r in runs if r["job"] in ("ingest", "features"))
        # dag: both nodes ran once, in one application, for D2
        assert sorted((r["target"], str(r["start_date"]), r["status"]) for r in runs if r["job"] == "dag") == [
            ("features", D2, "succeeded"),
            ("ingest", D2, "succeeded"),
        ]
        # backfill: one run of its range; no run beyond the jobs submitted
        assert sorted((r["target"], str(r["start_date"]), r["status"]) for r in runs if r["job"] == "backfill") == [
            ("all", D3, "succeeded")
        ]
        assert {r["job"] for r in runs} == {"ingest", "features", "dag", "backfill", "stream"}
        # stream: one run-log row per micro-batch, as many as the job reported
        stream_runs = [r for r in runs if r["job"] == "stream"]
        assert f"stream customer_activity: {len(stream_runs)} micro-batch(es)" in outputs["stream"]
        assert stream_runs and {(r["target"], r["status"]) for r in stream_runs} == {("customer_activity", "succeeded")}
        assert f"(all {D3}..{D3}, 1 chunk(s) of 1 day(s))" in outputs["backfill"]

        # -- profile: the validated transactions, against the local table ------------------------
        from pyspark.sql import functions as F

        validated = table(local_root, "validated/transactions")
        profile = table(cluster_root, "profiles").where("table_name = 'validated.transactions'").collect()
        assert len({r["profile_id"] for r in profile}) == 1
        assert {r["table_rows"] for r in profile} == {validated.count()}
        assert {r["column_name"] for r in profile} == {c for c in validated.columns if not c.startswith("_")}
        amount = next(r for r in profile if r["column_name"] == "amount")
        want = validated.agg(F.count("amount"), F.min("amount"), F.max("amount"), F.mean("amount")).first()
        assert (amount["non_null"], amount["nulls"]) == (want[0], validated.count() - want[0])
        assert (float(amount["min"]), float(amount["max"])) == (want[1], want[2])
        assert amount["mean"] == pytest.approx(want[3], rel=1e-9)
        assert list((tmp_path / "reports" / "demo").glob("profile_*.json"))

        # -- drift: rows per side (compared + left out as warming up) and warm-up per window ----------
        drift = table(cluster_root, "drift_results").collect()  # one row per feature
        assert {(r["table_name"], r["reference_selection"], r["current_selection"]) for r in drift} == {
            ("features.customer_activity", f"{D1}..{D2}", D3)
        }
        features = table(local_root, "features/customer_activity")
        reference_rows = features.where(f"event_date BETWEEN '{D1}' AND '{D2}'").count()
        current_rows = features.where(f"event_date = '{D3}'").count()
        by_feature = {r["feature"]: r for r in drift}
        declared = {f.name for f in local.feature_set("customer_activity").features}
        assert declared <= set(by_feature) <= set(features.columns)
        for r in drift:
            assert r["rows_reference"] + r["warming_up_reference"] == reference_rows, r["feature"]
            assert r["rows_current"] + r["warming_up_current"] == current_rows, r["feature"]
        # on D3 a 1-day window starts after D1 (nothing warming up), a 7-day one before it (all)
        assert (by_feature["txn_count_1d"]["rows_current"], by_feature["txn_count_1d"]["warming_up_current"]) == (
            current_rows,
            0,
        )
        assert by_feature["txn_count_7d"]["warming_up_current"] == current_rows
        assert list((tmp_path / "reports" / "demo").glob("drift_*.json"))

        # -- materialize: Feast serves an entity's latest feature row ------------------------------
        from feast import FeatureStore

        store = FeatureStore(repo_path=str(repo))
        names = [f.name for f in store.get_feature_view("customer_activity").features]
        assert declared <= set(names)
        latest = _latest_row(table(cluster_root, "features/customer_activity"), "customer_id", "event_ts")
        served = store.get_online_features(
            features=[f"customer_activity:{n}" for n in names], entity_rows=[{"customer_id": latest["customer_id"]}]
        ).to_dict()
        for name in names:
            want = latest[name]
            if isinstance(want, float):
                assert served[name] == [pytest.approx(want, rel=1e-9)], name
            else:
                assert served[name] == [want], name
        # the first run writes every entity of the table
        written = re.search(r"materialize customer_activity: .*?, (\d+) entities written", outputs["materialize"])
        customers = table(cluster_root, "features/customer_activity").select("customer_id").distinct().count()
        assert written is not None and int(written.group(1)) == customers
    finally:
        # an early failure still waits for the reference's writes and the submits under way
        background.shutdown(wait=True)
        side_by_side.shutdown(wait=True)
        stopped = subprocess.run([cluster, "stop"], env=env, capture_output=True, text=True, timeout=120)
        left = _pids_of(state)
        shutil.rmtree(state / "tmp", ignore_errors=True)
        print(f"[cluster test] total: {time.monotonic() - began:.0f} s", flush=True)
    assert stopped.returncode == 0, stopped.stderr
    assert left == [], f"processes left after cluster.sh stop: {left}"
