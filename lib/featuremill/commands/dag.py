"""``featuremill dag show|run|export PIPELINE``: the pipeline's DAG (its ``dag:`` section).

* ``show``: the jobs in dependency order with schedule, retries, timeouts and SLA;
* ``run --date D``: run the jobs here, in order, each with its declared retries (backoff between
  attempts) and timeout; a job whose upstream failed is not run. Every attempt is a row in the
  run log (``job = 'dag'``, ``target`` = the DAG job, ``details.labels.attempt``), and so are the
  job's own runs, labelled with the same DAG run id and attempt;
* ``export --target airflow|databricks|emr|emr-serverless --out DIR``: scheduler definitions
  (see :mod:`featuremill.deploy.exporters`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt

from featuremill.commands import emit
from featuremill.commands._common import _date, add_pipeline_arguments, load_config, spark_for
from featuremill.core.errors import FeaturemillError

TARGETS = ("airflow", "databricks", "emr", "emr-serverless")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="dag_action", metavar="ACTION")
    sub.required = True
    show = sub.add_parser("show", help="print the jobs in run order with their settings")
    add_pipeline_arguments(show)
    run = sub.add_parser("run", help="run the DAG's jobs here, in order, with their retries")
    add_pipeline_arguments(run)
    run.add_argument(
        "--date",
        required=True,
        type=_date,
        help="run date (the landing date to process), YYYY-MM-DD (a timestamp stands for its date)",
    )
    run.add_argument(
        "--date-offset",
        type=int,
        default=0,
        metavar="DAYS",
        help="shift --date by DAYS (schedulers pass their trigger date with --date-offset -1)",
    )
    run.add_argument("--only", action="append", metavar="JOB", help="run only this DAG job (repeatable)")
    export = sub.add_parser("export", help="write scheduler definitions (Airflow, Databricks, EMR)")
    add_pipeline_arguments(export)
    export.add_argument("--target", required=True, choices=TARGETS)
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument(
        "--platform-env",
        metavar="ENV",
        help="environment the scheduled jobs use (default: emr for EMR targets, databricks for "
        "Databricks, standalone for Airflow)",
    )
    export.add_argument(
        "--artifacts",
        metavar="URI",
        help="where package.sh's dist/ and the conf/ folder are uploaded "
        "(e.g. s3://bucket/featuremill/0.1.0); defaults per target",
    )
    export.add_argument("--date", help="EMR steps: the run date to put in the steps (default: a RUN_DATE placeholder)")


def _dag_of(config):
    dag = config.section("dag")
    if dag is None:
        raise FeaturemillError(
            f"{config.file} has no dag: section; declare its jobs, schedule and retries (docs/deployment.md)"
        )
    return dag


def run(args) -> int:
    config = load_config(args)
    dag = _dag_of(config)
    if args.dag_action == "show":
        emit(f"pipeline {config.name} ({config.file})")
        for line in _show_lines(dag):
            emit(line)
        return 0
    if args.dag_action == "export":
        from featuremill.deploy.exporters import export

        written = export(
            config,
            dag,
            target=args.target,
            out_dir=args.out,
            pipeline_file=args.pipeline,
            env=args.platform_env,
            artifacts=args.artifacts,
            run_date=args.date,
        )
        for path in written:
            emit(f"wrote {path}")
        return 0
    return _run_dag(args, config, dag)


def _show_lines(dag):
    from featuremill.deploy.dag import iter_lines

    return list(iter_lines(dag))


def _run_dag(args, config, dag) -> int:
    from featuremill.commands import run as run_command
    from featuremill.core.session import is_connect
    from featuremill.deploy.dag import job_argv, run_dag
    from featuremill.pipelines.common import recorded_run, run_labels
    from featuremill.storage.ledger import RunRecord, append_run, new_run_id

    run_date = args.date + dt.timedelta(days=args.date_offset)
    spark = spark_for(config, f"featuremill-dag-{config.name}")
    # A Spark Connect client has no SparkContext and so no job groups: there an attempt's
    # operations carry a session tag (this thread's) and a timeout interrupts that tag.
    connect = is_connect(spark)
    dag_run_id = new_run_id()
    unknown = [n for n in (args.only or []) if n not in {j.name for j in dag.jobs}]
    if unknown:
        raise FeaturemillError(f"the DAG has no job(s) {', '.join(unknown)}; jobs: {', '.join(dag.order())}")

    def run_job(job, attempt: int) -> None:
        argv = job_argv(job, pipeline=args.pipeline, env=args.env, date=run_date.isoformat())
        if args.warehouse:
            argv += ["--warehouse", args.warehouse]
        if args.data_root:
            argv += ["--data-root", args.data_root]
        parser = argparse.ArgumentParser(prog=f"featuremill {argv[0]}")
        run_command.add_arguments(parser)
        run_command.run(parser.parse_args(argv[1:]))

    @contextlib.contextmanager
    def attempt_scope(job, attempt: int, group: str):
        labels = {"dag_run_id": dag_run_id, "dag_job": job.name, "attempt": attempt, "max_attempts": job.max_attempts}
        if connect:
            spark.addTag(group)
        else:
            spark.sparkContext.setJobGroup(
                group, f"featuremill dag {config.name}: {job.name} attempt {attempt}", interruptOnCancel=True
            )
        try:
            with run_labels(**labels):
                with recorded_run(spark, config, job="dag", target=job.name, start=run_date, end=run_date) as record:
                    record.details = {
                        "kind": job.kind,
                        "depends_on": list(job.depends_on),
                        "timeout_s": job.timeout_seconds,
                        "retries": job.retry.retries,
                    }
                    yield record
        finally:
            if connect:
                spark.removeTag(group)
            else:
                spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)

    def skip_scope(job, reason: str) -> None:
        record = RunRecord(pipeline=config.name, job="dag", target=job.name, start_date=run_date, end_date=run_date)
        record.details = {
            "kind": job.kind,
            "depends_on": list(job.depends_on),
            "labels": {"dag_run_id": dag_run_id, "dag_job": job.name, "attempt": 0, "max_attempts": job.max_attempts},
        }
        record.finish("upstream_failed", error=reason)
        append_run(spark, config.tables.run_log, record, root=config.env.root)

    def cancel(job, attempt: int) -> None:
        group = f"featuremill-dag-{job.name}-{attempt}"
        if connect:
            spark.interruptTag(group)
        else:
            spark.sparkContext.cancelJobGroup(group)

    result = run_dag(
        dag, run_job=run_job, attempt_scope=attempt_scope, skip_scope=skip_scope, cancel=cancel, only=args.only
    )
    emit(f"dag run {dag_run_id} of {config.name} for {run_date}:")
    for a in result.attempts:
        took = a.finished - a.started
        emit(
            f"  {a.job:<20} attempt {a.attempt}  {a.status:<10} {took:7.1f}s"
            + (f"  {a.error.splitlines()[0][:160]}" if a.error else "")
        )
    for name, state in result.states.items():
        if state == "upstream_failed":
            emit(f"  {name:<20} not run    upstream_failed")
    emit("result: " + ", ".join(f"{k}={v}" for k, v in result.states.items()))
    return 0 if result.succeeded else 1
