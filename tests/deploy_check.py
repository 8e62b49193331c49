"""Load scheduler definitions with the schedulers' own parsers; print what they saw as JSON.

Runs under .venv-deploy/bin/python (scripts/deploy-tools.sh), not the project's .venv:

    deploy_check.py airflow DAG_FOLDER
    deploy_check.py databricks BUNDLE_DIR
    deploy_check.py emr EXPORT_DIR
    deploy_check.py emr-serverless EXPORT_DIR

The tests (tests/integration/test_deploy_export.py) assert on this JSON: what Airflow's DagBag,
databricks-sdk / databricks-bundles and botocore's request validator made of the files, not on
the text featuremill wrote. Any parser error is reported, never swallowed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path


def _seconds(value):
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)


def check_airflow(folder: str) -> dict:
    home = tempfile.mkdtemp(prefix="airflow-home-")
    os.environ.setdefault("AIRFLOW_HOME", home)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    import airflow
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    out: dict = {
        "airflow_version": airflow.__version__,
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "dags": {},
    }
    for dag_id, dag in bag.dags.items():
        timetable = dag.timetable
        tasks = {}
        for task in dag.tasks:
            rendered = (
                task.render_template(task.application_args, {"ds": "2026-09-01"})
                if hasattr(task, "application_args")
                else None
            )
            tasks[task.task_id] = {
                "operator": type(task).__name__,
                "retries": task.retries,
                "retry_delay_s": _seconds(task.retry_delay),
                "retry_exponential_backoff": task.retry_exponential_backoff,
                "max_retry_delay_s": _seconds(task.max_retry_delay),
                "execution_timeout_s": _seconds(task.execution_timeout),
                "upstream": sorted(task.upstream_task_ids),
                "application": getattr(task, "application", None),
                "application_args": getattr(task, "application_args", None),
                "application_args_rendered": rendered,
                "py_files": getattr(task, "py_files", None),
                "files": getattr(task, "files", None),
                "packages": getattr(task, "packages", None),
                "conf": getattr(task, "conf", None),
                "env_vars": getattr(task, "env_vars", None),
                "conn_id": getattr(task, "conn_id", getattr(task, "_conn_id", None)),
            }
        deadlines = [
            {
                "reference": type(d.reference).__name__,
                "interval_s": _seconds(d.interval),
                "callback": d.callback.path,
                "callback_kwargs": d.callback.kwargs,
            }
            for d in (dag.deadline or [])
        ]
        out["dags"][dag_id] = {
            "timetable": type(timetable).__name__,
            "cron": getattr(timetable, "expression", None),
            "timezone": str(getattr(timetable, "timezone", "")),
            "first_run": _first_run(dag),
            "start_date": dag.start_date.isoformat() if dag.start_date else None,
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "tags": sorted(dag.tags),
            "deadlines": deadlines,
            "tasks": tasks,
        }
    return out


def _first_run(dag) -> dict | None:
    """When the scheduler would start the first run, and that run's {{ ds }} (core timetable)."""
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.interval import CronDataIntervalTimetable

    sdk = dag.timetable
    if type(sdk).__name__ != "CronDataIntervalTimetable":
        return None
    core = CronDataIntervalTimetable(sdk.expression, timezone=sdk.timezone)
    info = core.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=True),
    )
    return {
        "run_after": info.run_after.isoformat(),
        "ds": info.logical_date.strftime("%Y-%m-%d"),
        "data_interval": [info.data_interval.start.isoformat(), info.data_interval.end.isoformat()],
    }


def check_databricks(bundle_dir: str) -> dict:
    import yaml
    from databricks.bundles.jobs import Job
    from databricks.sdk.service.jobs import JobSettings

    root = Path(bundle_dir)
    bundle = yaml.safe_load((root / "databricks.yml").read_text())
    out: dict = {"bundle": bundle, "jobs": {}}
    for pattern in bundle.get("include", []):
        for resource_file in sorted(root.glob(pattern)):
            doc = yaml.safe_load(resource_file.read_text())
            for key, job in doc["resources"]["jobs"].items():
                settings = JobSettings.from_dict(job)
                roundtrip = settings.as_dict()
                bundle_job = Job.from_dict(job)  # the bundle schema: raises on unknown fields
                out["jobs"][key] = {
                    "file": str(resource_file.relative_to(root)),
                    "keys_dropped_by_sdk": sorted(_dropped(job, roundtrip)),
                    "bundle_job_name": bundle_job.name,
                    "name": settings.name,
                    "max_concurrent_runs": settings.max_concurrent_runs,
                    "schedule": settings.schedule.as_dict() if settings.schedule else None,
                    "health": settings.health.as_dict() if settings.health else None,
                    "job_clusters": [c.as_dict() for c in settings.job_clusters or []],
                    "tasks": [
                        {
                            "task_key": t.task_key,
                            "depends_on": [d.task_key for d in t.depends_on or []],
                            "package_name": t.python_wheel_task.package_name if t.python_wheel_task else None,
                            "entry_point": t.python_wheel_task.entry_point if t.python_wheel_task else None,
                            "parameters": t.python_wheel_task.parameters if t.python_wheel_task else None,
                            "libraries": [lib.as_dict() for lib in t.libraries or []],
                            "max_retries": t.max_retries,
                            "min_retry_interval_millis": t.min_retry_interval_millis,
                            "timeout_seconds": t.timeout_seconds,
                            "job_cluster_key": t.job_cluster_key,
                        }
                        for t in settings.tasks or []
                    ],
                }
    return out


def _dropped(original, roundtrip, prefix="") -> list[str]:
    """Keys of ``original`` that the SDK's from_dict/as_dict did not keep (i.e. it did not know)."""
    missing = []
    if isinstance(original, dict):
        for key, value in original.items():
            if not isinstance(roundtrip, dict) or key not in roundtrip:
                missing.append(prefix + key)
            else:
                missing += _dropped(value, roundtrip[key], prefix + key + ".")
    elif isinstance(original, list) and isinstance(roundtrip, list):
        for i, (a, b) in enumerate(zip(original, roundtrip)):
            missing += _dropped(a, b, f"{prefix}[{i}].")
    return missing


def _validate(service: str, operation: str, params: dict, member: str | None = None) -> str:
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    shape = model.input_shape.members[member] if member else model.input_shape
    report = ParamValidator().validate(params, shape)
    return report.generate_report() if report.has_errors() else "ok"


def check_emr(folder: str) -> dict:
    root = Path(folder)
    steps = json.loads((root / "add_job_flow_steps.json").read_text())
    configurations = json.loads((root / "configurations.json").read_text())
    return {
        "add_job_flow_steps": _validate("emr", "AddJobFlowSteps", steps),
        "configurations": _validate("emr", "RunJobFlow", configurations, member="Configurations"),
        "steps": [
            {
                "name": s["Name"],
                "action_on_failure": s["ActionOnFailure"],
                "jar": s["HadoopJarStep"]["Jar"],
                "args": s["HadoopJarStep"]["Args"],
            }
            for s in steps["Steps"]
        ],
        "configuration_classifications": {c["Classification"]: c["Properties"] for c in configurations},
    }


def check_emr_serverless(folder: str) -> dict:
    root = Path(folder)
    out: dict = {"job_runs": {}, "schedule": None}
    for path in sorted(root.glob("start_job_run_*.json")):
        body = json.loads(path.read_text())
        out["job_runs"][path.name] = {"validation": _validate("emr-serverless", "StartJobRun", body), "request": body}
    schedule_file = root / "schedule.json"
    if schedule_file.exists():
        body = json.loads(schedule_file.read_text())
        target_input = json.loads(body["Target"]["Input"])
        out["schedule"] = {
            "validation": _validate("scheduler", "CreateSchedule", body),
            "input_validation": _validate("emr-serverless", "StartJobRun", target_input),
            "request": body,
            "input": target_input,
        }
    return out


def main(argv: list[str]) -> int:
    kind, path = argv[0], argv[1]
    check = {
        "airflow": check_airflow,
        "databricks": check_databricks,
        "emr": check_emr,
        "emr-serverless": check_emr_serverless,
    }[kind]
    result = check(path)
    sys.stdout.write("\n@@RESULT@@" + json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
