"""The one SparkSession factory.

:func:`get_spark` returns the active session when there is one, and otherwise:

* under ``spark-submit``, on Databricks or on EMR it calls ``getOrCreate()`` and leaves every
  setting of the platform alone (Delta comes from the platform or the submit command);
* in local mode (a plain ``python`` process) it builds a ``local[*]`` session with the Delta
  extension, catalog and jars (resolved from Maven Central once and cached by Ivy); the jar's
  coordinate follows the installed pyspark and delta-spark (:func:`local_delta_package`);
* with a Spark Connect remote (``SPARK_REMOTE``, which pyspark itself honours, or the
  ``spark.remote`` setting) it returns a Connect session instead: for ``local[...]`` remotes pyspark
  starts a local Connect server, which gets the same Delta settings and jars; an ``sc://`` server
  keeps its own settings (it must have Delta's extension and catalog). A Connect client has no
  SparkContext, RDDs or JVM access: see README, "Spark Connect" for what degrades there.

It logs which runtime it detected. Nothing here runs at import time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from featuremill.core.errors import SessionError

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"

#: Settings applied to sessions this module builds itself (local mode only).
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.sql.extensions": DELTA_EXTENSION,
    "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Delta's retention check must stay on; the defaults below only quieten local runs.
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
}


@dataclass(frozen=True)
class Runtime:
    """Where the driver runs: ``local``, ``spark-submit``, ``databricks`` or ``emr``.

    ``cluster_manager`` (``local``, ``standalone``, ``yarn``, ``k8s``; empty when unknown) comes from
    the session's master URL once a session exists (:func:`with_cluster_manager`).
    """

    name: str
    detail: str = ""
    cluster_manager: str = ""


def cluster_manager(master: str | None) -> str:
    """``spark://`` -> standalone, ``yarn`` -> yarn, ``k8s://`` -> k8s, ``local[..]`` -> local."""
    text = (master or "").strip()
    for prefix, name in (("spark://", "standalone"), ("yarn", "yarn"), ("k8s://", "k8s"), ("local", "local")):
        if text.startswith(prefix):
            return name
    return ""


def with_cluster_manager(runtime: Runtime, master: str | None) -> Runtime:
    """``runtime`` with its cluster manager read from the master URL (EMR runs on YARN)."""
    return Runtime(runtime.name, runtime.detail, cluster_manager(master))


def detect_runtime(environ: Mapping[str, str] | None = None) -> Runtime:
    """Tell the platform from the environment, without starting Spark."""
    env = os.environ if environ is None else environ
    if env.get("DATABRICKS_RUNTIME_VERSION"):
        return Runtime("databricks", env["DATABRICKS_RUNTIME_VERSION"])
    if env.get("EMR_RELEASE_LABEL") or env.get("AWS_EMR_CLUSTER_ID") or os.path.isdir("/usr/share/aws/emr"):
        return Runtime("emr", env.get("EMR_RELEASE_LABEL", ""))
    # spark-submit starts the Python driver with a gateway to its own JVM.
    if env.get("PYSPARK_GATEWAY_PORT"):
        return Runtime("spark-submit", env.get("SPARK_HOME", ""))
    return Runtime("local")


def get_spark(
    app_name: str = "featuremill",
    *,
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
):
    """Return the SparkSession to use.

    ``master`` and ``conf`` (for example the ``spark:`` block of an environment file) apply only
    to a session built here in local mode (or to a local Spark Connect server); a platform or
    ``spark-submit`` session keeps its own.
    Raises :class:`SessionError` when the session cannot read and write Delta tables.
    """
    from pyspark.sql import SparkSession

    env = os.environ if environ is None else environ
    remote = (conf or {}).get("spark.remote") or env.get("SPARK_REMOTE")
    if remote:
        return _connect_session(app_name, remote, master=master, conf=conf)
    active = SparkSession.getActiveSession()
    runtime = detect_runtime(environ)
    if active is not None:
        runtime = with_cluster_manager(runtime, _master(active))
        log.info(
            "using the active Spark session (runtime=%s, cluster manager=%s, master=%s)",
            runtime.name,
            runtime.cluster_manager or "unknown",
            _master(active),
        )
        _require_delta(active, runtime)
        return active
    if runtime.name != "local":
        spark = SparkSession.builder.appName(app_name).getOrCreate()
        runtime = with_cluster_manager(runtime, _master(spark))
        log.info(
            "runtime %s %s on %s: using the platform's session settings (master=%s, executor python=%s)",
            runtime.name,
            runtime.detail,
            runtime.cluster_manager or "an unknown cluster manager",
            _master(spark),
            _conf(spark, "spark.pyspark.python") or "default",
        )
        _require_delta(spark, runtime)
        return spark

    builder = SparkSession.builder.appName(app_name).master(master or "local[*]")
    settings = dict(LOCAL_DEFAULTS)
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    if "spark.jars.packages" not in settings and "spark.jars" not in settings:
        builder = builder.config("spark.jars.packages", local_delta_package())
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.get("featuremill.logLevel", "WARN"))
    log.info("runtime local: built a %s session with Delta (Spark %s)", master or "local[*]", spark.version)
    return spark


def local_delta_package() -> str:
    """The Delta jar matching the installed pyspark and delta-spark, e.g. ``io.delta:delta-spark_2.13:4.0.1``.

    The Scala version is the one pyspark's own jars are built for (``scala-library-2.1x.jar``);
    raises :class:`SessionError` when delta-spark is missing and
    :class:`~featuremill.core.spark_versions.VersionMismatchError` when the pair is not built for
    each other.
    """
    import importlib.metadata as metadata

    from featuremill.core.spark_versions import delta_maven_coordinate

    try:
        delta_version = metadata.version("delta-spark")
    except metadata.PackageNotFoundError as exc:  # pragma: no cover - depends on the install
        raise SessionError("local mode needs delta-spark: pip install 'featuremill[local]'") from exc
    import pyspark

    return delta_maven_coordinate(pyspark.__version__, delta_version, _pyspark_scala_version(pyspark))


def _pyspark_scala_version(pyspark_module) -> str:
    jars = Path(pyspark_module.__file__).parent / "jars"
    for jar in sorted(jars.glob("scala-library-*.jar")):
        return jar.name[len("scala-library-") : -len(".jar")]
    # pip's pyspark 3.x ships Scala 2.12 jars, 4.x only 2.13
    return "2.12" if pyspark_module.__version__.startswith("3.") else "2.13"


def is_connect(spark) -> bool:
    """Whether ``spark`` is a Spark Connect session (no SparkContext, RDDs or JVM on the client)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _connect_session(app_name: str, remote: str, *, master: str | None, conf: Mapping[str, str] | None):
    """A Spark Connect session; a ``local[...]`` remote starts a local server with Delta."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.remote(remote).appName(app_name)
    local = remote.startswith("local")
    if local:
        # the local server listens on the loopback interface only
        settings = {**LOCAL_DEFAULTS, "spark.connect.grpc.binding.address": "127.0.0.1"}
        settings.update({k: v for k, v in (conf or {}).items() if k != "spark.remote"})
        if "spark.jars.packages" not in settings and "spark.jars" not in settings:
            settings["spark.jars.packages"] = local_delta_package()
        for key, value in settings.items():
            if not key.startswith("featuremill."):
                builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if local:
        log.info(
            "Spark Connect: started a local server %s with Delta (Spark %s)%s",
            remote,
            spark.version,
            f"; master {master} ignored" if master and master != remote else "",
        )
    else:
        log.info("Spark Connect: connected to %s (Spark %s), using the server's settings", remote, spark.version)
        _require_delta(spark, Runtime("connect", remote))
    return spark


def _master(spark) -> str:
    try:
        return spark.conf.get("spark.master")
    except Exception:  # Spark Connect sessions do not expose the master
        return "unknown"


def _conf(spark, key: str) -> str | None:
    try:
        return spark.conf.get(key, None)
    except Exception:  # Spark Connect may refuse some keys
        return None


def _require_delta(spark, runtime: Runtime) -> None:
    if runtime.name == "databricks":
        return
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    if DELTA_EXTENSION not in extensions:
        raise SessionError(
            "the Spark session has no Delta extension: set spark.sql.extensions="
            f"{DELTA_EXTENSION} and spark.sql.catalog.spark_catalog={DELTA_CATALOG} "
            "(scripts/submit.sh does this) or run through get_spark() in local mode"
        )


def ensure_timezone(spark, timezone: str) -> None:
    """Pipelines define dates in their declared time zone; make the session agree."""
    current = spark.conf.get("spark.sql.session.timeZone")
    if _normalise_tz(current) != _normalise_tz(timezone):
        log.warning(
            "session time zone %s differs from the pipeline's %s; using %s for this job", current, timezone, timezone
        )
        spark.conf.set("spark.sql.session.timeZone", timezone)


def _normalise_tz(name: str | None) -> str:
    text = (name or "").strip()
    return "UTC" if text.upper() in ("UTC", "ETC/UTC", "Z", "GMT", "ETC/GMT", "+00:00") else text
