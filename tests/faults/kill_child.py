"""A job driver for the SIGKILL scenarios: ``python -m tests.faults.kill_child ROOT JOB START END [MODE]``
(and ``python -m tests.faults.kill_child PIPELINE materialize REPO``: see :func:`materialize`).

Runs one featuremill job in its own Spark application (local[1], many small tasks, so a write
takes a while) and prints ``WRITE <path>`` just before each Delta write attempt, so the test
can watch the table's folder and kill this process (driver and JVM) while the write runs.
With MODE ``crash-after-commit`` the process kills itself with SIGKILL inside the job's commit
hook: after Delta committed, before the run log is written.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys


def materialize(pipeline: str, repo: str) -> int:
    """``featuremill materialize PIPELINE --repo REPO --batch-rows 1`` with the pausing worker.

    Its Python daemon is :mod:`tests.faults.online_pause_daemon`: the first online write of a
    task lands, then the worker announces it (``FEATUREMILL_PAUSE_AFTER_WRITE``) and blocks until
    the test kills this driver. local[1]: one task at a time, so exactly one batch is written.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from featuremill.cli import main as cli
    from featuremill.core.session import get_spark

    get_spark(
        "featuremill-kill-child",
        master="local[1]",
        conf={
            "spark.ui.enabled": "false",
            "spark.python.sql.dataFrameDebugging.enabled": "false",  # as the test session
            "spark.sql.shuffle.partitions": "2",
            "spark.python.daemon.module": "tests.faults.online_pause_daemon",
            "spark.databricks.delta.snapshotPartitions": "1",
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        },
    )
    code = cli(["materialize", pipeline, "--repo", repo, "--batch-rows", "1"])  # reuses the session above
    print("DONE", flush=True)
    return code


def main(argv: list[str]) -> int:
    if argv[1] == "materialize":  # PIPELINE materialize REPO
        return materialize(argv[0], argv[2])
    root, job, start, end = argv[:4]
    mode = argv[4] if len(argv) > 4 else "watch"
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from featuremill.config import load_pipeline
    from featuremill.core.session import get_spark
    from featuremill.pipelines.build_features import run_features
    from featuremill.pipelines.ingest import run_ingest
    from featuremill.storage.commit_retry import observe_writes

    spark = get_spark(
        "featuremill-kill-child",
        master="local[1]",
        conf={
            "spark.ui.enabled": "false",
            "spark.python.sql.dataFrameDebugging.enabled": "false",  # as the test session
            "spark.sql.shuffle.partitions": "16",
            "spark.sql.files.maxPartitionBytes": "65536",
            "spark.sql.adaptive.enabled": "false",
            "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "false",
            "spark.databricks.delta.snapshotPartitions": "2",
            # a short-lived JVM on 2 shared cores: skip C2 compilation and parallel GC threads
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        },
    )
    config = load_pipeline(os.path.join(root, "conf", "pipelines", "shop.yaml"), env="local")
    s, e = dt.date.fromisoformat(start), dt.date.fromisoformat(end)

    def announce(path, attempt):
        print(f"WRITE {path}", flush=True)

    def crash(table, version):
        print(f"COMMITTED {table} {version}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    hooks = {"on_commit": crash} if mode == "crash-after-commit" else {}
    with observe_writes(announce):
        if job == "ingest":
            run_ingest(spark, config, start=s, end=e, sources=["tx"], **hooks)
        else:
            run_features(spark, config, start=s, end=e, **hooks)
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
