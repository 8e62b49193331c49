"""The dag: section and the local DAG runner's scheduling logic (no Spark: jobs are plain callables)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from featuremill.config import load_pipeline
from featuremill.core.errors import ConfigError
from featuremill.core.schedule import CronError, describe, to_aws_cron, to_quartz
from featuremill.deploy.dag import RetryPolicy, job_argv, run_dag, script_args
from tests.unit.test_config import BASE

DAG = {
    "schedule": "30 2 * * *",
    "start_date": "2026-09-01",
    "sla": "4h",
    "defaults": {
        "retries": 2,
        "retry_delay": "1m",
        "retry_backoff": "exponential",
        "max_retry_delay": "3m",
        "timeout": "2h",
    },
    "jobs": {
        "ingest_dims": {"job": "ingest", "args": ["--source", "products"]},
        "ingest_tx": {"job": "ingest", "args": ["--source", "tx"], "retries": 3},
        "features": {"job": "features", "depends_on": ["ingest_tx", "ingest_dims"], "timeout": "1h"},
        "report": {"job": "features", "depends_on": ["features"], "retries": 0},
    },
}


def _config(project, dag):
    doc = dict(BASE, dag=dag)
    path = project / "conf" / "pipelines" / "p.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_pipeline(path, env="local")


def _errors(project, dag) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _config(project, dag)
    return [str(i) for i in info.value.issues]


def test_parse_dag_section_values(project):
    dag = _config(project, DAG).section("dag")
    assert dag.schedule == "30 2 * * *" and dag.sla_seconds == 4 * 3600 and str(dag.start_date) == "2026-09-01"
    tx = dag.job("ingest_tx")
    assert tx.retry == RetryPolicy(
        retries=3, retry_delay_seconds=60, backoff="exponential", max_retry_delay_seconds=180
    )
    assert tx.timeout_seconds == 7200 and dag.job("features").timeout_seconds == 3600
    assert dag.job("report").max_attempts == 1
    # declaration order among jobs ready at the same time, dependencies first
    assert dag.order() == ["ingest_dims", "ingest_tx", "features", "report"]
    assert dag.downstream("ingest_tx") == {"features", "report"}


def test_retry_policy_delay_before_exponential_capped():
    policy = RetryPolicy(retries=4, retry_delay_seconds=60, backoff="exponential", max_retry_delay_seconds=180)
    assert [policy.delay_before(a) for a in range(1, 6)] == [0, 60, 120, 180, 180]
    assert [RetryPolicy(retries=2, retry_delay_seconds=5).delay_before(a) for a in (1, 2, 3)] == [0, 5, 5]


@pytest.mark.parametrize(
    "patch, expected",
    [
        (
            {"jobs": {"a": {"job": "ingest", "depends_on": ["b"]}, "b": {"job": "features", "depends_on": ["a"]}}},
            "dag.jobs: the dependencies form a cycle",
        ),
        (
            {"jobs": {"a": {"job": "ingest", "depends_on": ["nope"]}}},
            "dag.jobs.a.depends_on: job 'nope' is not declared",
        ),
        ({"jobs": {"a": {"job": "train"}}}, "dag.jobs.a.job: 'train' is not one of ingest, features"),
        ({"schedule": "61 2 * * *"}, "dag.schedule: '61 2 * * *': minute value '61' is outside 0-59"),
        (
            {"jobs": {"a": {"job": "ingest", "args": ["--date", "2026-01-01"]}}},
            "dag.jobs.a.args: --date is set by the scheduler",
        ),
        ({"jobs": {"a": {"job": "ingest", "retries": -1}}}, "dag.jobs.a.retries: -1 is below the minimum 0"),
        ({"jobs": {"a": {"job": "ingest", "timeout": "soon"}}}, "dag.jobs.a.timeout: 'soon' is not a duration"),
        (
            {"jobs": {"a": {"job": "ingest", "retry_backoff": "linear"}}},
            "dag.jobs.a.retry_backoff: 'linear' is not one of fixed, exponential",
        ),
    ],
)
def test_parse_dag_section_rejects(project, patch, expected):
    errors = _errors(project, {**DAG, **patch})
    assert any(expected in e for e in errors), errors


def test_job_argv_and_script_args_are_the_cli_invocation():
    from featuremill.deploy.dag import DagJob

    job = DagJob(name="ingest_tx", kind="ingest", args=("--source", "tx"))
    assert job_argv(job, pipeline="demo.yaml", env="emr", date="{{ ds }}") == [
        "run",
        "demo.yaml",
        "--job",
        "ingest",
        "--env",
        "emr",
        "--date",
        "{{ ds }}",
        "--source",
        "tx",
    ]
    assert script_args(job, pipeline="demo.yaml", env="emr", date="2026-09-01", date_offset_days=-1) == [
        "demo.yaml",
        "--env",
        "emr",
        "--date",
        "2026-09-01",
        "--date-offset",
        "-1",
        "--source",
        "tx",
    ]


def test_run_dag_retries_then_stops_dependants(project):
    dag = _config(project, DAG).section("dag")
    calls, sleeps, scopes, skipped = [], [], [], []

    def run_job(job, attempt):
        calls.append((job.name, attempt))
        if job.name == "ingest_tx":
            raise RuntimeError("source path missing")

    class Scope:
        def __init__(self, job, attempt, group):
            scopes.append((job.name, attempt))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    result = run_dag(
        dag,
        run_job=run_job,
        attempt_scope=Scope,
        sleep=sleeps.append,
        skip_scope=lambda job, reason: skipped.append((job.name, reason)),
    )
    # 1 + 3 retries of the failing job; the independent job ran once; nothing downstream ran
    assert calls == [("ingest_dims", 1), ("ingest_tx", 1), ("ingest_tx", 2), ("ingest_tx", 3), ("ingest_tx", 4)]
    assert scopes == calls
    assert sleeps == [60, 120, 180]  # exponential from 1m, capped at 3m
    assert result.states == {
        "ingest_dims": "succeeded",
        "ingest_tx": "failed",
        "features": "upstream_failed",
        "report": "upstream_failed",
    }
    assert [s[0] for s in skipped] == ["features", "report"]
    assert "ingest_tx" in skipped[0][1]
    assert [a.status for a in result.attempts] == ["succeeded", "failed", "failed", "failed", "failed"]
    assert not result.succeeded


def test_run_dag_retry_succeeds_and_continues(project):
    dag = _config(project, DAG).section("dag")
    calls = []

    def run_job(job, attempt):
        calls.append((job.name, attempt))
        if job.name == "ingest_tx" and attempt < 3:
            raise RuntimeError("flaky")

    result = run_dag(dag, run_job=run_job, sleep=lambda s: None)
    assert calls == [
        ("ingest_dims", 1),
        ("ingest_tx", 1),
        ("ingest_tx", 2),
        ("ingest_tx", 3),
        ("features", 1),
        ("report", 1),
    ]
    assert result.succeeded


def test_run_dag_timeout_cancels_the_attempt(project):
    dag = _config(
        project,
        {
            "jobs": {
                "slow": {"job": "features", "timeout": "1s", "retries": 1, "retry_delay": "1s"},
                "after": {"job": "features", "depends_on": ["slow"]},
            }
        },
    ).section("dag")
    cancelled = []
    released = threading.Event()

    def run_job(job, attempt):
        # Stands in for a Spark job that ends when its job group is cancelled.
        if not released.wait(timeout=20):
            raise AssertionError("cancel was never called")
        released.clear()
        raise RuntimeError("Job group cancelled")

    def cancel(job, attempt):
        cancelled.append((job.name, attempt))
        released.set()

    result = run_dag(dag, run_job=run_job, cancel=cancel, sleep=lambda s: None)
    assert cancelled == [("slow", 1), ("slow", 2)]
    assert [a.status for a in result.attempts] == ["timed_out", "timed_out"]
    assert "exceeded its timeout of 1s" in result.attempts[0].error
    assert result.states == {"slow": "failed", "after": "upstream_failed"}


@pytest.mark.parametrize(
    "cron, quartz, aws, words",
    [
        ("30 2 * * *", "0 30 2 * * ?", "cron(30 2 * * ? *)", "daily at 02:30 UTC"),
        ("@daily", "0 0 0 * * ?", "cron(0 0 * * ? *)", "daily at 00:00 UTC"),
        ("0 6 * * 1", "0 0 6 ? * 2", "cron(0 6 ? * 2 *)", "weekly on Monday at 06:00 UTC"),
        ("0 3 * * 5-7", "0 0 3 ? * 6,7,1", "cron(0 3 ? * 6,7,1 *)", "cron '0 3 * * 5-7' (UTC)"),
        ("15 * * * *", "0 15 * * * ?", "cron(15 * * * ? *)", "hourly at minute 15"),
    ],
)
def test_schedule_dialects(cron, quartz, aws, words):
    assert to_quartz(cron) == quartz
    assert to_aws_cron(cron) == aws
    assert describe(cron) == words


def test_schedule_rejects_both_day_fields():
    with pytest.raises(CronError, match="both day of month and day of week"):
        to_quartz("0 0 1 * 1")


def test_dag_show_prints_demo_order(capsys):
    from featuremill.cli import main
    from tests.conftest import ROOT

    assert main(["dag", "show", str(ROOT / "conf" / "pipelines" / "demo.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "schedule: 30 2 * * * (daily at 02:30 UTC)" in lines and "SLA: 4h" in lines
    jobs = [line.strip() for line in lines if line.strip()[:2] in ("1.", "2.")]
    assert jobs == [
        "1. ingest  job=ingest  retries=2  retry_delay=5m exponential  max_retry_delay=30m  timeout=2h",
        "2. features  job=features  after ingest  retries=2  retry_delay=5m exponential  max_retry_delay=30m  timeout=1h",
    ]


def test_exported_airflow_dag_callback_imports_and_logs(tmp_path, caplog):
    """The deadline callback the generated Airflow DAG names is importable and logs the miss."""
    import ast
    import importlib
    import logging

    from featuremill.cli import main

    demo = str(Path(__file__).resolve().parents[2] / "conf" / "pipelines" / "demo.yaml")
    assert main(["dag", "export", demo, "--target", "airflow", "--out", str(tmp_path)]) == 0
    (dag_file,) = tmp_path.glob("*.py")
    calls = [
        node
        for node in ast.walk(ast.parse(dag_file.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SyncCallback"
    ]
    assert len(calls) == 1
    dotted = ast.literal_eval(calls[0].args[0])
    kwargs = ast.literal_eval(next(k.value for k in calls[0].keywords if k.arg == "kwargs"))
    assert dotted == "featuremill.deploy.alerts.log_deadline_miss"
    module, _, name = dotted.rpartition(".")
    callback = getattr(importlib.import_module(module), name)
    with caplog.at_level(logging.ERROR, logger=module):
        callback({"dag_run": "scheduled__2026-09-01"}, **kwargs)
    assert caplog.records[-1].getMessage() == (
        "featuremill SLA missed: pipeline=demo sla=14400s run=scheduled__2026-09-01"
    )
