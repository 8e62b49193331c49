"""featuremill dag export: the demo's Airflow, Databricks and EMR definitions, loaded by the real
parsers (Airflow's DagBag, databricks-sdk + databricks-bundles, botocore's request validator) in
.venv-deploy (scripts/deploy-tools.sh), and their content checked against the demo's dag: section.

Expected values are written out here from conf/pipelines/demo.yaml (schedule 30 2 * * * UTC,
retries 2 from 5m exponential capped at 30m, timeouts 2h / 1h, SLA 4h), not read back from the code.
"""

from __future__ import annotations

import argparse
import configparser
import datetime as dt
import json
import subprocess

import pytest

from featuremill.cli import main
from tests.conftest import ROOT

# A fresh machine first installs Airflow, the Databricks SDK and botocore into .venv-deploy, and
# every check starts an interpreter that imports one of them.
pytestmark = pytest.mark.slow

DEMO = str(ROOT / "conf" / "pipelines" / "demo.yaml")
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


@pytest.fixture(scope="session")
def deploy_python():
    proc = subprocess.run(
        [str(ROOT / "scripts" / "deploy-tools.sh")], cwd=ROOT, capture_output=True, text=True, timeout=1200
    )
    if proc.returncode != 0:
        pytest.skip(
            "scheduler parsers could not be installed into .venv-deploy "
            f"(scripts/deploy-tools.sh exit {proc.returncode}): {proc.stderr[-800:]}"
        )
    return str(ROOT / proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    mp = pytest.MonkeyPatch()
    mp.setenv("FEATUREMILL_WAREHOUSE", "s3://acme-lake/featuremill/warehouse")
    mp.setenv("FEATUREMILL_DATA_ROOT", "s3://acme-landing/shop")
    try:
        for target in ("airflow", "databricks", "emr", "emr-serverless"):
            extra = ["--date", "2026-09-01"] if target == "emr" else []
            artifacts = [] if target in ("airflow", "databricks") else ["--artifacts", "s3://acme-artifacts/fm/0.1.0"]
            assert (
                main(["dag", "export", DEMO, "--target", target, "--out", str(out / target), *artifacts, *extra]) == 0
            )
    finally:
        mp.undo()
    return out


def _check(deploy_python, kind: str, path) -> dict:
    proc = subprocess.run(
        [deploy_python, str(ROOT / "tests" / "deploy_check.py"), kind, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("@@RESULT@@", 1)[1])


def _parse_run_args(argv: list[str]) -> argparse.Namespace:
    """Parse a job's arguments with featuremill's own `run` parser (what the job will do with them)."""
    from featuremill.commands import run as run_command

    parser = argparse.ArgumentParser()
    run_command.add_arguments(parser)
    return parser.parse_args(argv)


def _console_scripts() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = [x.strip() for x in cfg["options.entry_points"]["console_scripts"].splitlines() if x.strip()]
    return dict(tuple(p.strip() for p in line.split("=", 1)) for line in lines)


def test_airflow_dag_loads_in_dagbag(deploy_python, exported):
    result = _check(deploy_python, "airflow", exported / "airflow")
    assert result["import_errors"] == {}
    dag = result["dags"]["featuremill_demo"]
    assert (dag["timetable"], dag["cron"], dag["timezone"]) == ("CronDataIntervalTimetable", "30 2 * * *", "UTC")
    assert dag["max_active_runs"] == 1 and dag["catchup"] is False
    # the first run starts after its interval closes and its {{ ds }} is the day that closed
    assert dag["first_run"]["run_after"] == "2026-09-02T02:30:00+00:00"
    assert dag["first_run"]["ds"] == "2026-09-01"
    assert dag["deadlines"] == [
        {
            "reference": "DagRunQueuedAtDeadline",
            "interval_s": 4 * 3600.0,
            "callback": "featuremill.deploy.alerts.log_deadline_miss",
            "callback_kwargs": {"pipeline": "demo", "sla": "14400s"},
        }
    ]
    tasks = dag["tasks"]
    assert set(tasks) == {"ingest", "features"}
    expected = {
        "ingest": ([], 7200.0, "jobs/ingest.py", "ingest"),
        "features": (["ingest"], 3600.0, "jobs/build_features.py", "features"),
    }
    for name, (upstream, timeout, script, job) in expected.items():
        t = tasks[name]
        assert t["operator"] == "SparkSubmitOperator"
        assert (t["retries"], t["retry_delay_s"], t["retry_exponential_backoff"], t["max_retry_delay_s"]) == (
            2,
            300.0,
            2.0,
            1800.0,
        )
        assert t["execution_timeout_s"] == timeout and t["upstream"] == upstream
        assert t["application"] == f"/opt/featuremill/0.1.0/{script}" and (ROOT / script).exists()
        assert t["py_files"] == "/opt/featuremill/0.1.0/featuremill.zip"
        assert t["packages"] == "io.delta:delta-spark_2.13:4.0.1"
        assert t["conf"] == {"spark.sql.extensions": DELTA_EXTENSION, "spark.sql.catalog.spark_catalog": DELTA_CATALOG}
        assert t["env_vars"] == {
            "FEATUREMILL_WAREHOUSE": "{{ var.value.FEATUREMILL_WAREHOUSE }}",
            "FEATUREMILL_DATA_ROOT": "{{ var.value.FEATUREMILL_DATA_ROOT }}",
        }
        assert "{{ ds }}" in t["application_args"]
        # what the job script receives, rendered by Airflow for ds=2026-09-01, is a valid featuremill run
        args = _parse_run_args(t["application_args_rendered"] + ["--job", job])
        assert (args.pipeline, args.env, str(args.date), args.job) == (
            "/opt/featuremill/0.1.0/conf/pipelines/demo.yaml",
            "/opt/featuremill/0.1.0/conf/env/standalone.yaml",
            "2026-09-01",
            job,
        )


def test_databricks_bundle_loads_in_sdk_and_bundle_schema(deploy_python, exported):
    result = _check(deploy_python, "databricks", exported / "databricks")
    bundle = result["bundle"]
    assert bundle["include"] == ["resources/*.yml"]
    assert bundle["targets"]["dev"]["mode"] == "development" and bundle["targets"]["prod"]["mode"] == "production"
    artifact = bundle["artifacts"]["featuremill"]
    assert artifact["type"] == "whl" and (exported / "databricks" / artifact["path"]).resolve() == ROOT.resolve()
    job = result["jobs"]["featuremill_demo"]
    assert job["keys_dropped_by_sdk"] == []  # every key is a Jobs API field the SDK knows
    assert job["bundle_job_name"] == "featuremill demo" and job["max_concurrent_runs"] == 1
    assert job["schedule"] == {
        "quartz_cron_expression": "0 30 2 * * ?",
        "timezone_id": "UTC",
        "pause_status": "UNPAUSED",
    }
    assert job["health"] == {"rules": [{"metric": "RUN_DURATION_SECONDS", "op": "GREATER_THAN", "value": 14400}]}
    (cluster,) = job["job_clusters"]
    assert cluster["new_cluster"]["spark_version"] == "17.3.x-scala2.13"
    assert cluster["new_cluster"]["spark_env_vars"] == {
        "FEATUREMILL_WAREHOUSE": "${var.featuremill_warehouse}",
        "FEATUREMILL_DATA_ROOT": "${var.featuremill_data_root}",
    }
    assert [t["task_key"] for t in job["tasks"]] == ["ingest", "features"]
    assert _console_scripts()["featuremill"] == "featuremill.cli:main"
    for task, depends, timeout, job_name in zip(job["tasks"], ([], ["ingest"]), (7200, 3600), ("ingest", "features")):
        assert (task["package_name"], task["entry_point"]) == ("featuremill", "featuremill")
        assert task["depends_on"] == depends and task["timeout_seconds"] == timeout
        assert (task["max_retries"], task["min_retry_interval_millis"]) == (2, 300_000)
        assert task["job_cluster_key"] == "featuremill"
        (library,) = task["libraries"]  # the wheel package.sh builds, relative to the resource file
        whl = library["whl"]
        assert whl.endswith("/dist/*.whl")
        assert (exported / "databricks" / "resources" / whl[: -len("/*.whl")]).resolve() == (ROOT / "dist").resolve()
        params = task["parameters"]
        assert params[0] == "run" and "{{job.trigger.time.iso_date}}" in params
        # A run triggered on 2026-09-02 processes 2026-09-01, as the Airflow run does.
        rendered = [p.replace("{{job.trigger.time.iso_date}}", "2026-09-02") for p in params]
        args = _parse_run_args(rendered[1:])
        from featuremill.commands._common import resolve_dates

        assert [str(d) for d in resolve_dates(args)] == ["2026-09-01", "2026-09-01"]
        assert args.job == job_name
        assert args.pipeline == "/Workspace${workspace.file_path}/conf/pipelines/demo.yaml"
    assert (exported / "databricks" / "conf" / "pipelines" / "demo.yaml").read_text() == (
        ROOT / "conf" / "pipelines" / "demo.yaml"
    ).read_text()
    assert (exported / "databricks" / "conf" / "env" / "databricks.yaml").exists()


def test_emr_steps_validate_against_botocore(deploy_python, exported):
    result = _check(deploy_python, "emr", exported / "emr")
    assert result["add_job_flow_steps"] == "ok" and result["configurations"] == "ok"
    assert result["configuration_classifications"] == {
        "delta-defaults": {"delta.enabled": "true"},
        "spark-defaults": {"spark.sql.extensions": DELTA_EXTENSION, "spark.sql.catalog.spark_catalog": DELTA_CATALOG},
    }
    steps = result["steps"]
    assert [s["name"] for s in steps] == ["featuremill demo ingest 2026-09-01", "featuremill demo features 2026-09-01"]
    for step, script in zip(steps, ("jobs/ingest.py", "jobs/build_features.py")):
        args = step["args"]
        assert step["jar"] == "command-runner.jar" and step["action_on_failure"] == "CANCEL_AND_WAIT"
        assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
        assert f"spark.sql.extensions={DELTA_EXTENSION}" in args
        assert f"spark.sql.catalog.spark_catalog={DELTA_CATALOG}" in args
        assert "--packages" not in args  # EMR's own Delta build; --packages would clash with it
        assert args[args.index("--py-files") + 1] == "s3://acme-artifacts/fm/0.1.0/featuremill.zip"
        assert args[args.index("--files") + 1] == (
            "s3://acme-artifacts/fm/0.1.0/conf/pipelines/demo.yaml,s3://acme-artifacts/fm/0.1.0/conf/env/emr.yaml"
        )
        assert "spark.yarn.appMasterEnv.FEATUREMILL_WAREHOUSE=s3://acme-lake/featuremill/warehouse" in args
        entry = args.index(f"s3://acme-artifacts/fm/0.1.0/{script}")
        # cluster mode: the YAML files are in the driver's working directory, by base name
        assert args[entry + 1 :] == ["demo.yaml", "--env", "emr.yaml", "--date", "2026-09-01"]


def test_emr_serverless_job_runs_validate_against_botocore(deploy_python, exported):
    result = _check(deploy_python, "emr-serverless", exported / "emr-serverless")
    runs = result["job_runs"]
    assert set(runs) == {"start_job_run_dag.json", "start_job_run_ingest.json", "start_job_run_features.json"}
    assert all(r["validation"] == "ok" for r in runs.values()), {k: r["validation"] for k, r in runs.items()}
    for name, script, attempts, minutes in (
        ("ingest", "jobs/ingest.py", 3, 120),
        ("features", "jobs/build_features.py", 3, 60),
        ("dag", "jobs/dag_run.py", 1, None),
    ):
        request = runs[f"start_job_run_{name}.json"]["request"]
        submit = request["jobDriver"]["sparkSubmit"]
        assert submit["entryPoint"] == f"s3://acme-artifacts/fm/0.1.0/{script}" and (ROOT / script).exists()
        assert submit["entryPointArguments"][:5] == ["demo.yaml", "--env", "emr.yaml", "--date", "RUN_DATE"]
        params = submit["sparkSubmitParameters"].split()
        confs = {
            params[i + 1].split("=", 1)[0]: params[i + 1].split("=", 1)[1]
            for i in range(len(params))
            if params[i] == "--conf"
        }
        assert confs["spark.jars"] == (
            "/usr/share/aws/delta/lib/delta-spark.jar,/usr/share/aws/delta/lib/delta-storage.jar"
        )
        assert confs["spark.sql.extensions"] == DELTA_EXTENSION
        assert confs["spark.sql.catalog.spark_catalog"] == DELTA_CATALOG
        assert confs["spark.submit.pyFiles"] == "s3://acme-artifacts/fm/0.1.0/featuremill.zip"
        assert confs["spark.emr-serverless.driverEnv.FEATUREMILL_DATA_ROOT"] == "s3://acme-landing/shop"
        assert request["retryPolicy"] == {"maxAttempts": attempts}
        assert request.get("executionTimeoutMinutes") == minutes or name == "dag"
    schedule = result["schedule"]
    assert schedule["validation"] == "ok" and schedule["input_validation"] == "ok"
    assert schedule["request"]["ScheduleExpression"] == "cron(30 2 * * ? *)"
    assert schedule["request"]["ScheduleExpressionTimezone"] == "UTC"
    args = schedule["input"]["jobDriver"]["sparkSubmit"]["entryPointArguments"]
    assert args == ["demo.yaml", "--env", "emr.yaml", "--date", "<aws.scheduler.scheduled-time>", "--date-offset", "-1"]
    # EventBridge substitutes an ISO timestamp; featuremill reads its date and applies the offset
    rendered = [a.replace("<aws.scheduler.scheduled-time>", "2026-09-02T02:30:00Z") for a in args]

    # ... in the DAG-run job (jobs/dag_run.py = featuremill dag run)
    from featuremill.commands import dag as dag_command

    parser = argparse.ArgumentParser()
    dag_command.add_arguments(parser)
    args = parser.parse_args(["run", *rendered])
    assert str(args.date + dt.timedelta(days=args.date_offset)) == "2026-09-01"
    for name in ("ingest", "features"):  # the per-job requests parse as featuremill run arguments
        job_args = runs[f"start_job_run_{name}.json"]["request"]["jobDriver"]["sparkSubmit"]["entryPointArguments"]
        job_args = [a.replace("RUN_DATE", "2026-09-01") for a in job_args]  # the placeholder to fill in
        assert _parse_run_args(job_args + ["--job", name]).job == name
