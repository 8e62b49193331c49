"""Shared fixtures: one SparkSession for the whole run, temporary warehouses, config builders.

Lanes. ``scripts/test.sh`` runs every test; ``scripts/test.sh -m "not slow"`` is the fast lane
(target: under 5 minutes on 2 cores). ``FEATUREMILL_TEST_WORKERS=2 scripts/test.sh`` runs two
worker processes (pytest-xdist, one SparkSession each; files run whole in one worker). On 2 cores
it measured no gain (each worker then runs at about 0.6x), so one process is the default.
How a new test file joins cheaply:

* Use the session-wide ``spark`` fixture; do not start a SparkSession or a ``featuremill``
  subprocess unless the separate process is what the test checks (a kill, a CLI's exit code, a
  cluster). Build data shared by several tests in a ``scope="module"`` fixture and only read it.
* Mark ``@pytest.mark.slow`` a test that runs the pipeline's jobs, the demo, the benchmark or
  anything that takes more than a few seconds: it then runs only in the whole suite.
* Mark ``@pytest.mark.server`` (or ``pytestmark = pytest.mark.server`` for a whole file) a test
  that needs a real server (Kafka, a feature-store online store, a Spark cluster). It is
  ``slow`` as well (added below, so ``-m "not slow"`` leaves it out), and ``-m "not server"``
  leaves out only those. Start the server in a ``scope="module"`` (or session) fixture, once
  per file, and stop it in the fixture's teardown; skip with ``pytest.skip`` naming what is
  missing when the server's binary or image is not there.
* A file that shares a port, a session fixture or a folder of the checkout with another file
  joins that file's group in ``SHARED_WORKER`` below, so both run in the same worker.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: JVM options of the test session's JVM (and of the demo and metastore subprocesses, which run
#: minutes): a throughput collector. The JIT keeps both tiers: with code generation off (below)
#: the hot code is Spark's and Delta's own, the same classes for the whole session, which the C2
#: compiler pays back. Measured (two interleaved rounds, quiet machine, test_replay +
#: unit/test_dimensions [+ faults/test_time_travel]): C1 only 85.0 s and 111.8 s, both tiers
#: 75.6 s and 102.2 s (-9 to -11%). Short-lived JVMs (SIGKILL children, the cluster's submits)
#: keep C1 only, where compiling more costs more than it returns.
TEST_JVM_OPTIONS = "-XX:+UseParallelGC"

TEST_SPARK_CONF = {
    # 2 shuffle partitions on local[2]: one wave of tasks. (spark.default.parallelism stays 4:
    # at 2 a preprocessing test's rtol=1e-9 sums change order.)
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "4",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    # Adaptive execution re-plans every stage at run time, which for tables of a few rows costs
    # more than it saves. Measured on the same files, interleaved, quiet machine: 163 -> 147 s
    # (test_features_job + unit/test_pit) and 209 -> 196 s (test_dimension_history +
    # test_training_set + unit/test_preprocessing), 6-10% less. Every test passes either way. One
    # output does depend on it: feature selection samples with rand(seed), which follows the
    # partitioning, so the demo's selection differs (tests/integration/conftest.py keeps it on
    # there). The demo, scripts/bench.py, the cluster test and the CLI and stream subprocesses keep
    # Spark's default (on), so the plans users run are still exercised there.
    "spark.sql.adaptive.enabled": "false",
    # the Delta logs of test tables are a few files: rebuild a snapshot in one task
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.driver.memory": "2g",
    "spark.driver.extraJavaOptions": TEST_JVM_OPTIONS,
    # Tests assert on plans and exact values; keep broadcast decisions explicit.
    "spark.sql.autoBroadcastJoinThreshold": "-1",
    # The suite runs thousands of queries over a few rows each: generating and compiling Java for
    # every new plan costs more than evaluating those rows interpreted (same results, same plans
    # but for the WholeStageCodegen wrappers). Measured on the same 37 tests, interleaved: 13-15%
    # less wall time. The demo, scripts/bench.py and the tests' CLI, cluster and stream
    # subprocesses keep Spark's default code generation (the metastore test's subprocess copies
    # these settings, so that its run and the in-session reference plan alike).
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    # PySpark 4 records the Python call site of every DataFrame and Column call in the JVM (about
    # six Py4J round trips per F.col or F.lit) so that an error can name the user's line. The
    # suite builds thousands of expressions over a few rows: the fast lane 134.5 s -> 122.7 s
    # (two rounds each, interleaved). Errors keep their messages; only the "== DataFrame ==" call
    # site context is left out. Every local session get_spark builds has it off too
    # (core/session.py LOCAL_DEFAULTS); the suite's other Spark subprocesses set it themselves (the
    # shared demo run, Feast's sessions, the metastore run, the stream and kill children, the
    # cluster's submits).
    "spark.python.sql.dataFrameDebugging.enabled": "false",
}

#: The settings of ``TEST_SPARK_CONF`` that fit any process running tiny tables: the demo run the
#: integration tests share and the Spark sessions Feast's offline store starts take them too.
TINY_TABLES = (
    "spark.sql.shuffle.partitions",
    "spark.sql.codegen.wholeStage",
    "spark.sql.codegen.factoryMode",
    "spark.databricks.delta.snapshotPartitions",
    "spark.python.sql.dataFrameDebugging.enabled",
)


#: Files that must run in the same worker process when ``scripts/test.sh`` runs the suite in
#: parallel: they share a server port, a session-scoped fixture built at a cost, or a folder of
#: the checkout. Every other file is a unit of its own (its module fixtures built once).
SHARED_WORKER = {
    "tests/streaming/": "kafka-broker",  # one broker on 127.0.0.1:19092 for the session
    "tests/faults/": "faults-shop",  # the session's ingested shop template
    "tests/integration/test_demo_model.py": "demo-run",  # the session's shared demo run
    "tests/integration/test_runs_demo.py": "demo-run",
    "tests/integration/test_demo_console.py": "demo-run",
    # scripts/package.sh builds in the checkout (build/, lib/featuremill.egg-info); .venv-deploy
    "tests/integration/test_cluster.py": "package-build",
    "tests/integration/test_deploy_export.py": "package-build",
    "tests/unit/test_deploy_submit.py": "package-build",
}


def worker_group(relative_path: str) -> str:
    """The unit of work a test file belongs to: its shared group, else the file itself."""
    for prefix, group in SHARED_WORKER.items():
        if relative_path.startswith(prefix):
            return group
    return relative_path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scope scheduling with :func:`worker_group` as the scope: a group runs whole
    in one worker, in collection order (``--no-loadscope-reorder``: the heavy fault and
    integration groups first, the many short unit files fill the end)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid.split("::", 1)[0])

    return GroupScheduling(config, log)


def pytest_configure(config):
    """Every Spark JVM of the run (this session's and its subprocesses') maps the classes it loads
    from a class-data-sharing archive (tests/jvm_archive.py), built on the first run. pytest-xdist
    workers use the archive their controller built."""
    from tests.jvm_archive import enabled_options, ensure_archive

    if not hasattr(config, "workerinput"):
        ensure_archive()
    options = enabled_options()
    if options:
        os.environ["SPARK_SUBMIT_OPTS"] = f"{os.environ.get('SPARK_SUBMIT_OPTS', '')} {options}".strip()


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    """A test that needs a server is slow too: the fast lane (``-m "not slow"``) leaves it out."""
    for item in items:
        if item.get_closest_marker("server") is not None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


#: seconds per test file (set-up, call and tear-down of its tests), for the summary below
_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + (report.duration or 0.0)


def pytest_terminal_summary(terminalreporter):
    """The files that cost the most, summed over their tests (``--durations`` lists single
    phases, so a file of many medium tests never shows there)."""
    if not _FILE_SECONDS:
        return
    total = sum(_FILE_SECONDS.values())
    terminalreporter.write_sep("=", f"slowest test files (of {total:.0f} s in tests)")
    for path, seconds in sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1])[:25]:
        terminalreporter.write_line(f"{seconds:8.1f}s {100 * seconds / total:5.1f}%  {path}")


@pytest.fixture(scope="session")
def spark():
    from featuremill.core.session import get_spark

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run the interpreter running the tests
    session = get_spark("featuremill-tests", master="local[2]", conf=TEST_SPARK_CONF)
    yield session
    session.stop()


@pytest.fixture()
def compiled_spark(spark):
    """The session with whole-stage code generation on, for a test whose cost is its rows (a
    million-row scan), not its number of queries: the session turns code generation off because
    most tests run many tiny queries. Restores the session's settings afterwards."""
    settings = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}
    before = {key: spark.conf.get(key) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    yield spark
    for key, value in before.items():
        spark.conf.set(key, value)


@pytest.fixture()
def project(tmp_path):
    """A throw-away project root: conf/pipelines, conf/env/local.yaml, data/ and warehouse/."""
    (tmp_path / "conf" / "pipelines").mkdir(parents=True)
    (tmp_path / "conf" / "env").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "conf" / "env" / "local.yaml").write_text(
        textwrap.dedent("""\
        warehouse: warehouse
        data_root: data
        max_broadcast_mb: 16
    """)
    )
    return tmp_path


@pytest.fixture
def classic_spark(spark):
    """The session, for a test of what only a classic session has (the driver's JVM, its job status,
    RDDs); skipped over Spark Connect (``scripts/compat.sh connect``), where that code does not run."""
    from featuremill.core.session import is_connect

    if is_connect(spark):
        pytest.skip("classic session only: the test reads what a Spark Connect client does not have")
    return spark


def physical_plan(df) -> str:
    """The physical plan Spark would execute for ``df``, as text (Exchange, Sort, Window... nodes).

    Classic sessions read it from the JVM; a Spark Connect client asks the server for the same
    tree (``explain``), since it has no JVM of its own."""
    from featuremill.core.session import is_connect

    if is_connect(df.sparkSession):
        return df._explain_string(mode="simple")
    return df._jdf.queryExecution().executedPlan().toString()


def slow_frame(spark, values, seconds):
    """A frame whose computation takes ``seconds`` (a UDF that sleeps on its first value: test-only),
    so a write or an action on it is slow whatever the machine's speed. One partition: the sleep
    holds back the whole job."""
    import time

    from pyspark.sql import functions as F

    first = values[0]

    @F.udf("bigint")
    def slow(v):
        if v == first:
            time.sleep(seconds)
        return v

    return (
        spark.createDataFrame([(v, "p") for v in values], "v bigint, part string")
        .coalesce(1)
        .withColumn("v", slow("v"))
    )


def write_pipeline(project: Path, text: str, name: str = "test.yaml") -> Path:
    path = project / "conf" / "pipelines" / name
    path.write_text(textwrap.dedent(text))
    return path
