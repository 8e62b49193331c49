"""Scheduler definitions for a pipeline's DAG: Airflow, Databricks Asset Bundle, EMR, EMR Serverless.

``featuremill dag export PIPELINE --target T --out DIR`` writes:

* ``airflow``: ``featuremill_<pipeline>.py``, an Airflow 3 DAG with one ``SparkSubmitOperator``
  per job (``jobs/<job>.py`` + ``featuremill.zip`` + the Delta package and settings), the
  schedule as a ``CronDataIntervalTimetable`` so ``{{ ds }}`` is the day that just closed,
  per-task retries with exponential backoff and ``execution_timeout``, the SLA as a
  ``DeadlineAlert``, ``max_active_runs=1``;
* ``databricks``: an Asset Bundle (``databricks.yml``, ``resources/<pipeline>.job.yml``, the
  config files under ``conf/``): one job per pipeline on a ``17.3.x-scala2.13`` job cluster, one
  ``python_wheel_task`` per DAG job calling the ``featuremill`` console script, Quartz schedule,
  task retries and timeouts, ``max_concurrent_runs: 1``, the SLA as a run-duration health rule;
* ``emr``: ``add_job_flow_steps.json`` (the ``AddJobFlowSteps`` request: one ``command-runner.jar``
  spark-submit step per job in dependency order, ``CANCEL_AND_WAIT`` so a failure stops the
  steps after it) and ``configurations.json`` (``delta-defaults`` + the Delta session settings);
* ``emr-serverless``: a ``StartJobRun`` request per job and one for the whole DAG
  (``jobs/dag_run.py``, which applies the declared retries and records every attempt), with
  EMR's Delta jars from ``/usr/share/aws/delta/lib``, plus ``schedule.json``, an EventBridge
  Scheduler ``CreateSchedule`` request that starts the DAG run on the schedule.

Every job runs the same ``featuremill`` command line as ``featuremill dag run``
(:func:`featuremill.deploy.dag.job_argv`). Values only known on the platform (bucket names, role ARNs,
cluster and application ids) are read from ``settings`` or left as ``CHANGE-ME`` placeholders.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from featuremill import __version__
from featuremill.config import PipelineConfig, find_env_file
from featuremill.core.errors import ConfigError, ConfigIssue
from featuremill.core.schedule import to_aws_cron, to_quartz
from featuremill.core.session import DELTA_CATALOG, DELTA_EXTENSION
from featuremill.core.spark_versions import TESTED_DELTA, TESTED_SPARK, delta_maven_coordinate
from featuremill.deploy.dag import DagJob, DagSpec, job_argv, script_args

DATABRICKS_SPARK_VERSION = "17.3.x-scala2.13"
EMR_DELTA_JARS = "/usr/share/aws/delta/lib/delta-spark.jar,/usr/share/aws/delta/lib/delta-storage.jar"
DEFAULT_SLA_CALLBACK = "featuremill.deploy.alerts.log_deadline_miss"
DEFAULT_ENVS = {"airflow": "standalone", "databricks": "databricks", "emr": "emr", "emr-serverless": "emr"}
DEFAULT_ARTIFACTS = {
    "airflow": f"/opt/featuremill/{__version__}",
    "emr": f"s3://CHANGE-ME/featuremill/{__version__}",
    "emr-serverless": f"s3://CHANGE-ME/featuremill/{__version__}",
}
RUN_DATE_PLACEHOLDER = "RUN_DATE"


@dataclass(frozen=True)
class ExportContext:
    """Everything an exporter needs, resolved once by :func:`export`."""

    config: PipelineConfig
    dag: DagSpec
    pipeline_file: Path
    env_name: str
    env_file: Path
    artifacts: str
    env_vars: Mapping[str, str] = field(default_factory=dict)  # variables the env file needs on the platform
    run_date: str | None = None
    spark_version: str = TESTED_SPARK
    delta_version: str = TESTED_DELTA

    @property
    def dag_id(self) -> str:
        return f"featuremill_{self.config.name}"

    def artifact(self, relative: str) -> str:
        return f"{self.artifacts.rstrip('/')}/{relative}"

    @property
    def conf_pipeline(self) -> str:
        return self.artifact(f"conf/pipelines/{self.pipeline_file.name}")

    @property
    def conf_env(self) -> str:
        return self.artifact(f"conf/env/{self.env_file.name}")


def referenced_env_vars(env_file: Path) -> list[str]:
    """``${VAR}`` names an environment file expects, in order of appearance."""
    names: list[str] = []
    for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", env_file.read_text(encoding="utf-8")):
        if name not in names:
            names.append(name)
    return names


def export(
    config: PipelineConfig,
    dag: DagSpec,
    *,
    target: str,
    out_dir: str | Path,
    pipeline_file: str | Path,
    env: str | None = None,
    artifacts: str | None = None,
    run_date: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write the ``target`` definitions for ``dag`` into ``out_dir``; return the files written."""
    environ = os.environ if environ is None else environ
    pipeline_path = Path(pipeline_file)
    env_name = env or DEFAULT_ENVS[target]
    env_file = find_env_file(pipeline_path, env_name)
    if env_file is None:
        raise ConfigError(
            [
                ConfigIssue(
                    str(pipeline_path),
                    "",
                    f"exporting for {target} needs an environment file: write conf/env/{env_name}.yaml "
                    "beside the pipeline's conf/ folder or pass --env PATH.yaml",
                )
            ]
        )
    names = referenced_env_vars(env_file) if env_file is not None and env_file.exists() else []
    spark_version, delta_version = _local_versions()
    ctx = ExportContext(
        config=config,
        dag=dag,
        pipeline_file=pipeline_path,
        env_name=env_name,
        env_file=env_file,
        artifacts=artifacts or DEFAULT_ARTIFACTS.get(target, ""),
        env_vars={n: environ.get(n, f"CHANGE-ME-{n}") for n in names},
        run_date=run_date,
        spark_version=spark_version,
        delta_version=delta_version,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = {
        "airflow": write_airflow,
        "databricks": write_databricks_bundle,
        "emr": write_emr_steps,
        "emr-serverless": write_emr_serverless,
    }[target]
    return writer(ctx, out)


def _local_versions() -> tuple[str, str]:
    import importlib.metadata as metadata

    try:
        return metadata.version("pyspark"), metadata.version("delta-spark")
    except metadata.PackageNotFoundError:
        return TESTED_SPARK, TESTED_DELTA


def _delta_conf() -> dict[str, str]:
    return {"spark.sql.extensions": DELTA_EXTENSION, "spark.sql.catalog.spark_catalog": DELTA_CATALOG}


# --------------------------------------------------------------------------------------------
# Airflow
# --------------------------------------------------------------------------------------------


def _py_timedelta(seconds: int | None) -> str:
    return "None" if seconds is None else f"dt.timedelta(seconds={int(seconds)})"


def write_airflow(ctx: ExportContext, out: Path) -> list[Path]:
    dag = ctx.dag
    cfg = ctx.config
    lines = [
        f'"""Airflow DAG for the featuremill pipeline {cfg.name!r}.',
        "",
        f"Generated by `featuremill dag export {ctx.pipeline_file.name} --target airflow` (featuremill {__version__});",
        "regenerate it rather than editing it. Needs Airflow >= 3.1 and apache-airflow-providers-apache-spark.",
        "",
        f"Artifacts ({ctx.artifacts}) are scripts/package.sh's dist/ plus the conf/ folder, present on the",
        "Airflow workers; the 'spark_default' connection names the cluster's master. The run date of each",
        "run is {{ ds }}: the start of the schedule interval, i.e. the day that has just closed.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import datetime as dt",
        "",
        "from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator",
        "from airflow.sdk import DAG, CronDataIntervalTimetable, DeadlineAlert, DeadlineReference, SyncCallback",
        "",
        f"ARTIFACTS = {ctx.artifacts!r}",
        f"PIPELINE = ARTIFACTS + '/conf/pipelines/{ctx.pipeline_file.name}'",
        f"ENV_FILE = ARTIFACTS + '/conf/env/{ctx.env_file.name}'",
        f"SPARK_CONF = {json.dumps(_delta_conf(), indent=4)}",
        f"DELTA_PACKAGE = {delta_maven_coordinate(ctx.spark_version, ctx.delta_version)!r}",
        "# Values of the ${VAR}s in the environment file, from Airflow Variables.",
        "ENV_VARS = {" + ", ".join(f"{n!r}: '{{{{ var.value.{n} }}}}'" for n in ctx.env_vars) + "}",
        "",
    ]
    schedule = f"CronDataIntervalTimetable({dag.schedule!r}, timezone={dag.timezone!r})" if dag.schedule else "None"
    start = dag.start_date
    start_expr = (
        f"dt.datetime({start.year}, {start.month}, {start.day}, tzinfo=dt.timezone.utc)"
        if start
        else "dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)"
    )
    deadline = ""
    if dag.sla_seconds:
        callback = dag.sla_callback or DEFAULT_SLA_CALLBACK
        deadline = (
            f"    deadline=DeadlineAlert(\n"
            f"        reference=DeadlineReference.DAGRUN_QUEUED_AT,\n"
            f"        interval={_py_timedelta(dag.sla_seconds)},\n"
            f"        callback=SyncCallback({callback!r}, kwargs={{'pipeline': {cfg.name!r}, "
            f"'sla': {str(dag.sla_seconds) + 's'!r}}}),\n"
            f"    ),\n"
        )
    lines += [
        "with DAG(",
        f"    dag_id={ctx.dag_id!r},",
        f"    description={cfg.description!r},",
        f"    schedule={schedule},",
        f"    start_date={start_expr},",
        f"    catchup={dag.catchup!r},",
        "    max_active_runs=1,  # runs of one pipeline never overlap: its MERGEs would conflict",
        f"    tags={sorted(set(dag.tags) | {'featuremill', cfg.name})!r},",
        f"    default_args={{'owner': {cfg.owner or 'featuremill'!r}, 'depends_on_past': False}},",
    ]
    if deadline:
        lines.append(deadline.rstrip("\n"))
    lines.append(") as dag:")
    tasks = {}
    for job in dag.jobs:
        var = _identifier(job.name)
        tasks[job.name] = var
        args = script_args(job, pipeline="PIPELINE_PLACEHOLDER", env="ENV_PLACEHOLDER", date="{{ ds }}")
        args_src = (
            "["
            + ", ".join(
                "PIPELINE" if a == "PIPELINE_PLACEHOLDER" else "ENV_FILE" if a == "ENV_PLACEHOLDER" else repr(a)
                for a in args
            )
            + "]"
        )
        retry = job.retry
        lines += [
            f"    {var} = SparkSubmitOperator(",
            f"        task_id={job.name!r},",
            f"        doc_md={(job.description or job.kind)!r},",
            f"        name={f'featuremill-{cfg.name}-{job.name}'!r},",
            "        conn_id='spark_default',",
            f"        application=ARTIFACTS + '/{job.script}',",
            "        py_files=ARTIFACTS + '/featuremill.zip',",
            "        files=PIPELINE + ',' + ENV_FILE,",
            "        packages=DELTA_PACKAGE,",
            "        conf=SPARK_CONF,",
            "        env_vars=ENV_VARS,",
            f"        application_args={args_src},",
            f"        retries={retry.retries},",
            f"        retry_delay={_py_timedelta(retry.retry_delay_seconds)},",
            f"        retry_exponential_backoff={2.0 if retry.backoff == 'exponential' else 0},",
            f"        max_retry_delay={_py_timedelta(retry.max_retry_delay_seconds)},",
            f"        execution_timeout={_py_timedelta(job.timeout_seconds)},",
            "    )",
        ]
    for job in dag.jobs:
        for dep in job.depends_on:
            lines.append(f"    {tasks[dep]} >> {tasks[job.name]}")
    path = out / f"{ctx.dag_id}.py"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [path]


def _identifier(name: str) -> str:
    return re.sub(r"\W", "_", name) + "_task"


# --------------------------------------------------------------------------------------------
# Databricks Asset Bundle
# --------------------------------------------------------------------------------------------


def databricks_job(ctx: ExportContext, wheel_glob: str = "../dist/*.whl") -> dict:
    """The bundle's job resource (``resources.jobs.<key>``), as a plain dict."""
    dag = ctx.dag
    cfg = ctx.config
    workspace_conf = "/Workspace${workspace.file_path}/conf"
    pipeline_arg = f"{workspace_conf}/pipelines/{ctx.pipeline_file.name}"
    env_arg = f"{workspace_conf}/env/{ctx.env_file.name}"
    tasks = []
    for name in dag.order():
        job = dag.job(name)
        params = job_argv(
            job,
            pipeline=pipeline_arg,
            env=env_arg,
            date="{{job.trigger.time.iso_date}}",
            date_offset_days=dag.date_offset_days,
        )
        task = {
            "task_key": job.name,
            "description": job.description or job.kind,
            "job_cluster_key": "featuremill",
            "python_wheel_task": {"package_name": "featuremill", "entry_point": "featuremill", "parameters": params},
            "libraries": [{"whl": wheel_glob}],
            "max_retries": job.retry.retries,
            # Databricks retries at a fixed interval: the first delay of the declared backoff.
            "min_retry_interval_millis": job.retry.retry_delay_seconds * 1000,
            "retry_on_timeout": True,
        }
        if job.timeout_seconds:
            task["timeout_seconds"] = job.timeout_seconds
        if job.depends_on:
            task["depends_on"] = [{"task_key": d} for d in job.depends_on]
        tasks.append(task)
    env_vars = {n: "${var." + n.lower() + "}" for n in ctx.env_vars}
    job_def: dict = {
        "name": f"featuremill {cfg.name}",
        "description": cfg.description,
        "max_concurrent_runs": 1,
        "tags": {"featuremill": __version__, "pipeline": cfg.name, **dict.fromkeys(dag.tags, "")},
        "job_clusters": [
            {
                "job_cluster_key": "featuremill",
                "new_cluster": {
                    "spark_version": DATABRICKS_SPARK_VERSION,
                    "node_type_id": "${var.node_type_id}",
                    "autoscale": {"min_workers": 1, "max_workers": 4},
                    "data_security_mode": "SINGLE_USER",
                    "spark_conf": {"spark.sql.session.timeZone": dag.timezone},
                    "spark_env_vars": env_vars,
                },
            }
        ],
        "tasks": tasks,
    }
    if dag.schedule:
        job_def["schedule"] = {
            "quartz_cron_expression": to_quartz(dag.schedule),
            "timezone_id": dag.timezone,
            "pause_status": "UNPAUSED",
        }
    if dag.sla_seconds:
        job_def["health"] = {
            "rules": [{"metric": "RUN_DURATION_SECONDS", "op": "GREATER_THAN", "value": dag.sla_seconds}]
        }
        job_def["email_notifications"] = {
            "on_duration_warning_threshold_exceeded": [cfg.owner] if cfg.owner else [],
            "on_failure": [cfg.owner] if cfg.owner else [],
        }
    return job_def


def write_databricks_bundle(ctx: ExportContext, out: Path) -> list[Path]:
    import yaml

    key = ctx.dag_id
    project_root = ctx.pipeline_file.resolve().parent.parent.parent
    to_root = os.path.relpath(project_root, out.resolve())
    variables = {"node_type_id": {"description": "worker and driver node type", "default": "i3.xlarge"}}
    for name in ctx.env_vars:
        variables[name.lower()] = {"description": f"value of ${{{name}}} in conf/env/{ctx.env_file.name}"}
    bundle = {
        "bundle": {"name": key},
        "include": ["resources/*.yml"],
        # The wheel is built from the featuremill project by scripts/package.sh into its dist/.
        "artifacts": {"featuremill": {"type": "whl", "path": to_root, "build": "scripts/package.sh --out dist"}},
        "variables": variables,
        "targets": {
            "dev": {"mode": "development", "default": True},
            "prod": {"mode": "production"},
        },
    }
    wheel_glob = os.path.relpath(project_root / "dist", (out / "resources").resolve()) + "/*.whl"
    resources = {"resources": {"jobs": {key: databricks_job(ctx, wheel_glob)}}}
    (out / "resources").mkdir(parents=True, exist_ok=True)
    written = []
    path = out / "databricks.yml"
    path.write_text(_yaml_header(ctx) + yaml.safe_dump(bundle, sort_keys=False), encoding="utf-8")
    written.append(path)
    path = out / "resources" / f"{key}.job.yml"
    path.write_text(_yaml_header(ctx) + yaml.safe_dump(resources, sort_keys=False, width=120), encoding="utf-8")
    written.append(path)
    written += _copy_conf(ctx, out)
    return written


def _yaml_header(ctx: ExportContext) -> str:
    return (
        f"# Generated by featuremill {__version__}: featuremill dag export {ctx.pipeline_file.name} "
        "--target databricks. Regenerate rather than edit.\n"
    )


def _copy_conf(ctx: ExportContext, out: Path) -> list[Path]:
    """The bundle syncs conf/ to the workspace, where the tasks read the YAML files."""
    written = []
    for src, sub in ((ctx.pipeline_file, "pipelines"), (ctx.env_file, "env")):
        dst = out / "conf" / sub / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        written.append(dst)
    return written


# --------------------------------------------------------------------------------------------
# EMR on EC2 and EMR Serverless
# --------------------------------------------------------------------------------------------


def emr_steps(ctx: ExportContext) -> dict:
    """The ``AddJobFlowSteps`` request: one spark-submit step per job, in dependency order."""
    date = ctx.run_date or RUN_DATE_PLACEHOLDER
    steps = []
    env_confs: list[str] = []
    for name, value in ctx.env_vars.items():
        env_confs += [
            "--conf",
            f"spark.yarn.appMasterEnv.{name}={value}",
            "--conf",
            f"spark.executorEnv.{name}={value}",
        ]
    for name in ctx.dag.order():
        job = ctx.dag.job(name)
        args = [
            "spark-submit",
            "--deploy-mode",
            "cluster",
            "--conf",
            f"spark.sql.extensions={DELTA_EXTENSION}",
            "--conf",
            f"spark.sql.catalog.spark_catalog={DELTA_CATALOG}",
            "--py-files",
            ctx.artifact("featuremill.zip"),
            # cluster mode: the YAML files land in the driver's working directory
            "--files",
            f"{ctx.conf_pipeline},{ctx.conf_env}",
            *env_confs,
            ctx.artifact(job.script),
            *script_args(job, pipeline=ctx.pipeline_file.name, env=ctx.env_file.name, date=date),
        ]
        steps.append(
            {
                "Name": f"featuremill {ctx.config.name} {job.name} {date}",
                # A failed step cancels the ones after it (its dependants), and the cluster stays up.
                "ActionOnFailure": "CANCEL_AND_WAIT",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
            }
        )
    return {"JobFlowId": "CHANGE-ME-CLUSTER-ID", "Steps": steps}


def emr_configurations() -> list[dict]:
    """``Configurations`` for the EMR cluster: EMR's own Delta build, and the session settings."""
    return [
        {"Classification": "delta-defaults", "Properties": {"delta.enabled": "true"}},
        {"Classification": "spark-defaults", "Properties": _delta_conf()},
    ]


def write_emr_steps(ctx: ExportContext, out: Path) -> list[Path]:
    written = []
    for name, body in (("add_job_flow_steps.json", emr_steps(ctx)), ("configurations.json", emr_configurations())):
        path = out / name
        path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _serverless_submit_parameters(ctx: ExportContext) -> str:
    confs = [
        ("spark.jars", EMR_DELTA_JARS),
        *_delta_conf().items(),
        ("spark.submit.pyFiles", ctx.artifact("featuremill.zip")),
        ("spark.files", f"{ctx.conf_pipeline},{ctx.conf_env}"),
    ]
    for name, value in ctx.env_vars.items():
        confs += [(f"spark.emr-serverless.driverEnv.{name}", value), (f"spark.executorEnv.{name}", value)]
    return " ".join(f"--conf {k}={v}" for k, v in confs)


def emr_serverless_job_run(
    ctx: ExportContext, job: DagJob | None, *, date: str, date_offset_days: int = 0, client_token: str | None = None
) -> dict:
    """A ``StartJobRun`` request for one DAG job, or for the whole DAG when ``job`` is None."""
    if job is None:
        script = "jobs/dag_run.py"
        arguments = [ctx.pipeline_file.name, "--env", ctx.env_file.name, "--date", date]
        timeout = sum(j.timeout_seconds or 0 for j in ctx.dag.jobs) * max(
            (j.max_attempts for j in ctx.dag.jobs), default=1
        )
        name = f"featuremill-{ctx.config.name}-dag"
        attempts = 1  # the DAG run retries its jobs itself
    else:
        script = job.script
        arguments = script_args(
            job, pipeline=ctx.pipeline_file.name, env=ctx.env_file.name, date=date, date_offset_days=date_offset_days
        )
        timeout = job.timeout_seconds or 0
        name = f"featuremill-{ctx.config.name}-{job.name}"
        attempts = job.max_attempts
    if job is None and date_offset_days:
        arguments = arguments + ["--date-offset", str(date_offset_days)]
    body: dict = {
        "applicationId": "CHANGE-ME-APPLICATION-ID",
        "executionRoleArn": "arn:aws:iam::111122223333:role/CHANGE-ME-featuremill-job-role",
        "clientToken": client_token or f"{name}-{date}"[:64],
        "name": name,
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": ctx.artifact(script),
                "entryPointArguments": arguments,
                "sparkSubmitParameters": _serverless_submit_parameters(ctx),
            }
        },
        "retryPolicy": {"maxAttempts": attempts},
        "tags": {"featuremill": __version__, "pipeline": ctx.config.name},
    }
    if timeout:
        body["executionTimeoutMinutes"] = max(1, -(-timeout // 60))
    return body


def eventbridge_schedule(ctx: ExportContext) -> dict:
    """``CreateSchedule`` (EventBridge Scheduler) starting the DAG run on the pipeline's schedule."""
    scheduled = "<aws.scheduler.scheduled-time>"
    run = emr_serverless_job_run(
        ctx,
        None,
        date=scheduled,
        date_offset_days=ctx.dag.date_offset_days,
        client_token=f"featuremill-{ctx.config.name}-{scheduled}",
    )
    return {
        "Name": f"featuremill-{ctx.config.name}",
        "Description": f"featuremill pipeline {ctx.config.name}: DAG run on EMR Serverless",
        "ScheduleExpression": to_aws_cron(ctx.dag.schedule or "@daily"),
        "ScheduleExpressionTimezone": ctx.dag.timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Target": {
            "Arn": "arn:aws:scheduler:::aws-sdk:emrserverless:startJobRun",
            "RoleArn": "arn:aws:iam::111122223333:role/CHANGE-ME-scheduler-role",
            "Input": json.dumps(run),
            "RetryPolicy": {"MaximumRetryAttempts": 0},
        },
    }


def write_emr_serverless(ctx: ExportContext, out: Path) -> list[Path]:
    date = ctx.run_date or RUN_DATE_PLACEHOLDER
    files = {"start_job_run_dag.json": emr_serverless_job_run(ctx, None, date=date)}
    for name in ctx.dag.order():
        files[f"start_job_run_{name}.json"] = emr_serverless_job_run(ctx, ctx.dag.job(name), date=date)
    if ctx.dag.schedule:
        files["schedule.json"] = eventbridge_schedule(ctx)
    written = []
    for name, body in files.items():
        path = out / name
        path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
