"""The ``spark-submit`` command line for a featuremill job (behind ``scripts/submit.sh``).

Usage (what ``scripts/submit.sh`` passes through)::

    submit.sh [OPTIONS] [SPARK_SUBMIT_OPTIONS --] JOB PIPELINE [JOB_ARGS]

    submit.sh ingest conf/pipelines/demo.yaml --env standalone --date 2026-09-01
    submit.sh --master spark://127.0.0.1:7177 --executor-memory 1g -- \
        features conf/pipelines/demo.yaml --env standalone --date 2026-09-01
    submit.sh --dry-run --platform emr --deploy-mode cluster -- \
        ingest conf/pipelines/demo.yaml --env emr --date 2026-09-01

``JOB`` names a file in ``jobs/`` (:data:`JOB_SCRIPTS`): ``ingest``, ``features``
(``build_features``), ``backfill``, ``dag`` (``dag_run``), ``drift``, ``materialize``,
``profile`` (``profile_table``) or ``stream`` (``stream_features``); ``JOB_ARGS`` are that
``featuremill`` verb's arguments after ``PIPELINE``.

``OPTIONS`` are this tool's own (``--platform``, ``--dist``, ``--env-archive``, ``--dry-run``);
every other option before ``--`` goes to spark-submit unchanged. The command adds:

* ``--py-files <dist>/featuremill.zip`` (the package, pure Python) or, with ``--env-archive``,
  ``--archives <archive>#environment`` and ``spark.pyspark.python=./environment/bin/python``;
* ``--files PIPELINE,ENV_FILE`` so that in cluster deploy mode, where the driver runs on a cluster
  node, the driver finds both YAML files in its working directory (the job arguments are
  rewritten to their base names then);
* the Delta session settings (``spark.sql.extensions``, ``spark.sql.catalog.spark_catalog``),
  needed on every platform;
* the Delta jars: ``--packages io.delta:<artifact for this Spark>:<version>`` where the platform
  does not ship Delta (local, standalone, YARN, Kubernetes), EMR's own jars from
  ``/usr/share/aws/delta/lib`` on EMR (``--packages`` would clash with the bundled ``-amzn`` build),
  nothing on Databricks (which runs jobs from the bundle, not from spark-submit).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from featuremill.config import find_env_file
from featuremill.core.errors import FeaturemillError
from featuremill.core.session import DELTA_CATALOG, DELTA_EXTENSION, cluster_manager
from featuremill.core.spark_versions import delta_maven_coordinate

#: job name -> entry script (relative to the project root or the dist folder): every file in
#: ``jobs/`` by its stem, and by the ``featuremill`` verb it runs where that name differs
JOB_SCRIPTS: dict[str, str] = {
    "ingest": "jobs/ingest.py",
    "features": "jobs/build_features.py",
    "build_features": "jobs/build_features.py",
    "backfill": "jobs/backfill.py",
    "dag": "jobs/dag_run.py",
    "dag_run": "jobs/dag_run.py",
    "drift": "jobs/drift.py",
    "materialize": "jobs/materialize.py",
    "profile": "jobs/profile_table.py",
    "profile_table": "jobs/profile_table.py",
    "stream": "jobs/stream_features.py",
    "stream_features": "jobs/stream_features.py",
}

#: Platforms whose Spark ships Delta Lake: no --packages.
DELTA_PROVIDED = ("emr", "databricks")
EMR_DELTA_JARS = ("/usr/share/aws/delta/lib/delta-spark.jar", "/usr/share/aws/delta/lib/delta-storage.jar")
OWN_OPTIONS = ("--platform", "--dist", "--env-archive", "--dry-run", "--project-root")


class SubmitError(FeaturemillError):
    """The job cannot be submitted as asked (unknown job, missing package, Databricks ...)."""


@dataclass(frozen=True)
class SubmitSettings:
    """Facts about the submitting machine and the chosen platform."""

    spark_submit: str
    spark_version: str
    delta_version: str | None
    scala_version: str = "2.13"
    platform: str = "local"
    dist: str = "dist"
    project_root: str = "."
    env_archive: str | None = None
    python: str | None = None
    emr_delta_jars: tuple[str, ...] = EMR_DELTA_JARS
    extra_env: Mapping[str, str] = field(default_factory=dict)


def platform_from_master(master: str | None, default: str = "local") -> str:
    """``spark://`` -> standalone, ``yarn`` -> yarn, ``k8s://`` -> k8s, ``local[..]`` -> local."""
    return cluster_manager(master) or default


def is_loopback_master(master: str | None) -> bool:
    """True for ``spark://127.0.0.1:7177``, ``spark://localhost:7077`` (a cluster on this machine)."""
    import re

    match = re.match(r"^spark://([^:/]+)", master or "")
    return bool(match) and (match.group(1) in ("localhost", "::1") or match.group(1).startswith("127."))


def _option_value(options: Sequence[str], name: str) -> str | None:
    """The value of ``--name V`` / ``--name=V`` in spark-submit options (last one wins)."""
    value = None
    for i, arg in enumerate(options):
        if arg == name and i + 1 < len(options):
            value = options[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def _conf_value(options: Sequence[str], key: str) -> str | None:
    value = None
    for i, arg in enumerate(options):
        if arg == "--conf" and i + 1 < len(options) and options[i + 1].startswith(key + "="):
            value = options[i + 1].split("=", 1)[1]
    return value


def deploy_mode(spark_options: Sequence[str]) -> str:
    return (
        _option_value(spark_options, "--deploy-mode")
        or _conf_value(spark_options, "spark.submit.deployMode")
        or "client"
    )


def _rewrite_env_arg(job_args: list[str], new_value: str) -> list[str]:
    out = []
    skip = False
    replaced = False
    for i, arg in enumerate(job_args):
        if skip:
            skip = False
            continue
        if arg == "--env" and i + 1 < len(job_args):
            out += ["--env", new_value]
            skip = replaced = True
        elif arg.startswith("--env="):
            out.append(f"--env={new_value}")
            replaced = True
        else:
            out.append(arg)
    return out if replaced else out + ["--env", new_value]


def build_submit_command(
    job: str, pipeline: str, job_args: Sequence[str], spark_options: Sequence[str], settings: SubmitSettings
) -> list[str]:
    """The full spark-submit argument list for ``job`` on ``pipeline`` (pure: reads no files)."""
    if job not in JOB_SCRIPTS:
        raise SubmitError(f"unknown job {job!r}; choose one of {', '.join(sorted(JOB_SCRIPTS))}")
    if settings.platform == "databricks":
        raise SubmitError(
            "Databricks runs featuremill as a python_wheel_task from the asset bundle, not through "
            "spark-submit: featuremill dag export PIPELINE --target databricks"
        )
    root = Path(settings.project_root)
    dist = Path(settings.dist) if Path(settings.dist).is_absolute() else root / settings.dist
    job_args = list(job_args)
    env_name = _option_value(job_args, "--env") or "local"
    # PIPELINE and an --env path are relative to the caller's folder, like every featuremill verb.
    pipeline_path = Path(os.path.abspath(pipeline))
    env_file = find_env_file(pipeline_path, env_name)
    # No file: the built-in local environment, which the job finds by name on the other side too.
    env_path = Path(os.path.abspath(env_file)) if env_file is not None else None
    mode = deploy_mode(spark_options)

    cmd = [settings.spark_submit]
    if _option_value(spark_options, "--name") is None:
        cmd += ["--name", f"featuremill-{job}-{pipeline_path.stem}"]
    cmd += [
        "--conf",
        f"spark.sql.extensions={DELTA_EXTENSION}",
        "--conf",
        f"spark.sql.catalog.spark_catalog={DELTA_CATALOG}",
    ]
    user_jars = (_option_value(spark_options, "--packages") or "") + (_option_value(spark_options, "--jars") or "")
    if "delta" in user_jars:
        pass  # the caller chose the Delta jars
    elif settings.platform == "emr":
        cmd += ["--jars", ",".join(settings.emr_delta_jars)]
    elif settings.platform not in DELTA_PROVIDED:
        if not settings.delta_version:
            raise SubmitError(
                "cannot tell which Delta version to use: install delta-spark next to pyspark "
                "or set FEATUREMILL_DELTA_VERSION"
            )
        cmd += [
            "--packages",
            delta_maven_coordinate(settings.spark_version, settings.delta_version, settings.scala_version),
        ]
    if is_loopback_master(_option_value(spark_options, "--master")):
        # A cluster on this machine: keep the driver on the loopback address too, or Spark picks
        # the first network interface and executors call back to it.
        cmd += ["--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1"]
    if settings.env_archive:
        cmd += [
            "--archives",
            f"{settings.env_archive}#environment",
            "--conf",
            "spark.pyspark.python=./environment/bin/python",
        ]
        if mode == "client":
            # The driver runs here, outside the unpacked archive.
            cmd += ["--conf", f"spark.pyspark.driver.python={settings.python or sys.executable}"]
    else:
        cmd += ["--py-files", str(dist / "featuremill.zip")]
        if settings.python:
            cmd += ["--conf", f"spark.pyspark.python={settings.python}"]
    cmd += ["--files", ",".join(str(p) for p in (pipeline_path, env_path) if p is not None)]
    cmd += list(spark_options)
    script = dist / JOB_SCRIPTS[job] if (dist / JOB_SCRIPTS[job]).exists() else root / JOB_SCRIPTS[job]
    cmd.append(str(script))
    if mode == "cluster":
        # --files lands both YAML files in the driver's working directory on the cluster.
        cmd.append(pipeline_path.name)
        cmd += _rewrite_env_arg(job_args, env_path.name) if env_path is not None else job_args
    else:
        cmd.append(str(pipeline_path))
        cmd += job_args
    return cmd


def split_arguments(argv: Sequence[str]) -> tuple[dict, list[str], str, str, list[str]]:
    """``[OPTIONS] [SPARK_SUBMIT_OPTIONS --] JOB PIPELINE [JOB_ARGS]`` -> its parts."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut + 1 :]
    else:
        head, tail = [], argv
    own: dict = {}
    spark_options: list[str] = []
    i = 0
    while i < len(head):
        arg = head[i]
        name, _, inline = arg.partition("=")
        if name in OWN_OPTIONS:
            if name == "--dry-run":
                own["dry_run"] = True
                i += 1
                continue
            value = inline if inline else (head[i + 1] if i + 1 < len(head) else None)
            if value is None:
                raise SubmitError(f"{name} needs a value")
            own[name[2:].replace("-", "_")] = value
            i += 1 if inline else 2
            continue
        spark_options.append(arg)
        i += 1
    if len(tail) < 2:
        raise SubmitError("usage: submit.sh [OPTIONS] [SPARK_SUBMIT_OPTIONS --] JOB PIPELINE [JOB_ARGS]")
    return own, spark_options, tail[0], tail[1], tail[2:]


def _installed_version(dist_name: str) -> str | None:
    import importlib.metadata as metadata

    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        return None


def _spark_home(environ: Mapping[str, str]) -> Path:
    if environ.get("SPARK_HOME"):
        return Path(environ["SPARK_HOME"])
    try:
        import pyspark
    except ImportError:
        raise SubmitError("no Spark found: set SPARK_HOME or install pyspark") from None
    return Path(pyspark.__file__).parent


def _scala_version(spark_home: Path) -> str:
    for jar in sorted((spark_home / "jars").glob("scala-library-*.jar")):
        return ".".join(jar.stem.split("-")[-1].split(".")[:2])
    return "2.13"


def _spark_version(spark_home: Path) -> str:
    try:
        import pyspark

        return pyspark.__version__
    except ImportError:
        for jar in sorted((spark_home / "jars").glob("spark-core_*.jar")):
            return jar.stem.split("-")[-1]
    raise SubmitError(f"cannot tell the Spark version of {spark_home}")


def settings_from_environment(own: dict, spark_options: Sequence[str], environ: Mapping[str, str]) -> SubmitSettings:
    """Look at this machine (SPARK_HOME, installed pyspark/delta-spark, EMR markers) once."""
    from featuremill.core.session import detect_runtime

    spark_home = _spark_home(environ)
    runtime = detect_runtime(environ)
    master = _option_value(spark_options, "--master") or environ.get("FEATUREMILL_MASTER")
    platform = own.get("platform") or (
        runtime.name if runtime.name in ("emr", "databricks") else platform_from_master(master)
    )
    return SubmitSettings(
        spark_submit=str(spark_home / "bin" / "spark-submit"),
        spark_version=_spark_version(spark_home),
        delta_version=environ.get("FEATUREMILL_DELTA_VERSION") or _installed_version("delta-spark"),
        scala_version=_scala_version(spark_home),
        platform=platform,
        dist=own.get("dist", "dist"),
        project_root=own.get("project_root", "."),
        env_archive=own.get("env_archive"),
        python=environ.get("PYSPARK_PYTHON"),
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    try:
        own, spark_options, job, pipeline, job_args = split_arguments(sys.argv[1:] if argv is None else argv)
        master = environ.get("FEATUREMILL_MASTER")
        if master and _option_value(spark_options, "--master") is None:
            spark_options = ["--master", master] + spark_options
        settings = settings_from_environment(own, spark_options, environ)
        cmd = build_submit_command(job, pipeline, job_args, spark_options, settings)
        if (
            not settings.env_archive
            and not (Path(settings.project_root) / settings.dist / "featuremill.zip").exists()
            and not Path(settings.dist, "featuremill.zip").exists()
        ):
            raise SubmitError(f"{settings.dist}/featuremill.zip not found: run scripts/package.sh first")
    except FeaturemillError as exc:
        sys.stderr.write(f"submit: error: {exc}\n")
        return 2
    sys.stderr.write("[submit] " + shlex.join(cmd) + "\n")
    if own.get("dry_run"):
        sys.stdout.write(shlex.join(cmd) + "\n")
        return 0
    env = dict(environ)
    if is_loopback_master(_option_value(spark_options, "--master")):
        env["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.execve(cmd[0], cmd, env)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
