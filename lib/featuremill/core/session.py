"""The one SparkSession factory.

:func:`get_spark` returns the active session when there is one, and otherwise:

* under ``spark-submit``, on Databricks or on EMR it calls ``getOrCreate()`` and leaves every
  setting of the platform alone (Delta comes from the platform or the submit command);
* in local mode (a plain ``python`` process) it builds a ``local[*]`` session with the Delta
  extension, catalog and jars (resolved from Maven Central once and cached by Ivy); the jar's
  coordinate follows the installed pyspark and delta-spark (:func:`local_delta_package`); once
  resolved, later sessions pass the cached jar files and Ivy stays silent; its JVM starts with a
  quiet log4j2 configuration (Spark's warnings hidden, errors shown) unless the user configures
  logging or asks for a level (``featuremill.logLevel``, ``FEATUREMILL_SPARK_LOG_LEVEL``);
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
import re
import shutil
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
    # Delta rebuilds a table's snapshot (its list of files) in this many tasks, 50 by default, and
    # every read, MERGE and replaceWhere filters that cached list in as many. A table written from
    # one machine has hundreds to a few thousand files: two tasks hold them, and fifty cost a
    # task launch each on every query. The demo, measured on 2 cores: its Delta snapshot and
    # file-filtering jobs took 44 s at 50 and 8 s at 2 (wall 270 s -> 220 s, the same outputs).
    "spark.databricks.delta.snapshotPartitions": "2",
    # PySpark 4 records the Python call site of every DataFrame and Column call in the JVM (several
    # Py4J round trips per F.col) so that an error can quote the line that built the failing
    # expression. In a featuremill job that line is the library's, not the user's, and the
    # library builds thousands of expressions: the demo ran 220 s -> 205 s without it. Errors keep
    # their messages. An environment's ``spark:`` block can turn it back on.
    "spark.python.sql.dataFrameDebugging.enabled": "false",
    # Spark keeps the Java classes it generates and compiles for each query (whole-stage code,
    # projections, predicates) in a cache of 100 by default, shared by every query of the JVM. The
    # queries of one streaming micro-batch (its windows, the MERGE's join and rewrite, the appends)
    # need more than that together, so each micro-batch evicted the classes the next one asks for
    # again and they were all compiled anew (Janino, on the driver, between Spark jobs: thread dumps
    # inside the MERGEs caught it there). A few thousand cost a few megabytes of metaspace (about
    # 2 KB per class loader, read with `jcmd PID VM.classloader_stats`). Measured on 2 cores, one
    # run each, 60 s per rate: seconds per micro-batch 8.2 -> 5.9 at 2,000 events/s, 10.5 -> 7.0
    # at 5,000, 15.3 -> 9.7 at 8,000; the demo 198 s -> 191 s (within the spread of its runs). A
    # static setting: spark-submit and clusters set it with --conf (docs/streaming.md).
    "spark.sql.codegen.cache.maxEntries": "2000",
}

#: The log4j2 configuration a local session's JVM starts with (see :func:`local_settings`): Spark's
#: loggers at ERROR, so a normal run prints no JVM warnings, and errors still do.
QUIET_LOG4J = Path(__file__).with_name("log4j2-quiet.properties")
#: Spark's log level instead of the quiet start: the setting (in an environment's ``spark:`` block)
#: and the environment variable (which wins), e.g. ``FEATUREMILL_SPARK_LOG_LEVEL=WARN``.
LOG_LEVEL_KEY = "featuremill.logLevel"
LOG_LEVEL_ENV = "FEATUREMILL_SPARK_LOG_LEVEL"

#: The garbage collector of a local session's JVM, given in ``spark.driver.defaultJavaOptions`` (the
#: options Spark puts before ``extraJavaOptions``). The JDK's default, G1, keeps pauses short by
#: working beside the application: its concurrent marking and refinement threads and its write
#: barriers take CPU that a batch job on a laptop's few cores needs for the work itself, and a
#: batch job does not mind a pause. Measured with the class archive below, the demo on its
#: default data on 2 cores, one process per run, interleaved: in the first round 204-207 s with
#: neither, 183-192 s with this collector, 182-191 s with the archive, 177-181 s with both; in
#: each later pair the run with both 4-14% faster (docs/performance.md). Left out when the user
#: chose a collector anywhere the JVM reads options (two in one option list stop the JVM from
#: starting).
LOCAL_COLLECTOR = "-XX:+UseParallelGC"
#: The environment variables whose Java options reach a local session's driver JVM (spark-submit's
#: launcher reads the first two, the JVM the others).
JAVA_OPTION_VARIABLES = (
    "PYSPARK_SUBMIT_ARGS",
    "SPARK_SUBMIT_OPTS",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
)
#: A JVM option that names a collector (``-XX:+UseG1GC``, ``-XX:+UseZGC``, ...).
_COLLECTOR = re.compile(r"-XX:\+Use\w*GC\b")
#: The JVM checks a class archive against its class path and JDK; a mismatch is silent with these.
CLASS_ARCHIVE_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
#: A JVM option that chooses class-data sharing (featuremill.core.jvm_archive).
_CLASS_SHARING = re.compile(r"-XX:(SharedArchiveFile|ArchiveClassesAtExit)=|-Xshare:")


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
    settings = local_settings(conf, env)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    level = spark_log_level(conf, env)
    if level:
        spark.sparkContext.setLogLevel(level)
    if "spark.jars.packages" in settings and "spark.jars" not in settings:
        # Ivy resolved the packages this once: the next local session asking for the same packages
        # (Delta's by default, Delta's and Kafka's for a stream) can pass the files directly
        _remember_jars(spark, settings["spark.jars.packages"], env)
    log.info("runtime local: built a %s session with Delta (Spark %s)", master or "local[*]", spark.version)
    return spark


def spark_log_level(conf: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The Spark log level asked for: ``FEATUREMILL_SPARK_LOG_LEVEL``, else ``featuremill.logLevel``
    in ``conf`` (the environment's ``spark:`` block), else ``None`` (the quiet default)."""
    env = os.environ if environ is None else environ
    level = env.get(LOG_LEVEL_ENV) or (conf or {}).get(LOG_LEVEL_KEY)
    return level.strip().upper() if level and level.strip() else None


def local_settings(conf: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every setting :func:`get_spark` gives a session it builds in local mode, without starting Spark.

    :data:`LOCAL_DEFAULTS`, then ``conf`` (which wins), then:

    * the Delta jars: the cached jar files of an earlier resolution as ``spark.jars`` when they are
      all still there, else ``spark.jars.packages`` (Ivy resolves them and prints its report);
      an explicit ``spark.jars`` or ``spark.jars.packages`` in ``conf`` is left alone;
    * a quiet start: ``-Dlog4j2.configurationFile=`` :data:`QUIET_LOG4J` appended to
      ``spark.driver.extraJavaOptions``, so Spark's own startup and run-time warnings never print
      (errors do). Not when a Spark log level is asked for (:func:`spark_log_level`) and not when
      the user already points the JVM at a log4j configuration (:func:`user_log4j_config`);
    * ``spark.driver.defaultJavaOptions``: the parallel collector (:data:`LOCAL_COLLECTOR`) and
      the class archive of :mod:`featuremill.core.jvm_archive` when it is built, each unless the
      user chose a collector or class sharing (:func:`user_java_option`); nothing when the user
      set default Java options.
    """
    env = os.environ if environ is None else environ
    settings = dict(LOCAL_DEFAULTS)
    settings.update(conf or {})
    if "spark.jars.packages" not in settings and "spark.jars" not in settings:
        settings.update(package_jars(local_delta_package(), env))
    if spark_log_level(conf, env) is None and user_log4j_config(settings, env) is None:
        java = settings.get("spark.driver.extraJavaOptions", "")
        # a file: URI has no spaces, so Spark's splitting of the option string keeps it whole
        settings["spark.driver.extraJavaOptions"] = f"{java} -Dlog4j2.configurationFile={QUIET_LOG4J.as_uri()}".strip()
    defaults = _java_defaults(settings, env)
    if defaults:
        settings["spark.driver.defaultJavaOptions"] = defaults
    return settings


def _java_defaults(settings: Mapping[str, str], env: Mapping[str, str]) -> str:
    """The driver's default Java options get_spark adds (see :func:`local_settings`), or ``""``."""
    if "spark.driver.defaultJavaOptions" in settings or "spark.driver.defaultJavaOptions" in _spark_defaults_file(env):
        return ""  # the user's (or the administrator's) own default options stay as they are
    options = []
    if user_java_option(_COLLECTOR, settings, env) is None:
        options.append(LOCAL_COLLECTOR)
    if user_java_option(_CLASS_SHARING, settings, env) is None:
        archive = class_archive_path(env)
        if archive is not None and archive.exists():
            options.append(class_archive_options(archive))
    return " ".join(options)


def user_java_option(
    option: re.Pattern, settings: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> str | None:
    """Where the user already gives the driver JVM an ``option`` (a pattern; then get_spark does
    not add its own), or ``None``.

    Looks at the driver's Java options in ``settings``, at the environment variables the launcher
    and the JVM read, and at ``spark-defaults.conf`` in the Spark conf folder (``SPARK_CONF_DIR``,
    else ``SPARK_HOME/conf``).
    """
    env = os.environ if environ is None else environ
    for key in ("spark.driver.defaultJavaOptions", "spark.driver.extraJavaOptions"):
        if option.search(settings.get(key, "")):
            return key
    for name in JAVA_OPTION_VARIABLES:
        if option.search(env.get(name, "")):
            return name
    if option.search(_spark_defaults_file(env)):
        return "spark-defaults.conf"
    return None


def _spark_defaults_file(env: Mapping[str, str]) -> str:
    """The text of ``spark-defaults.conf`` in the Spark conf folder, ``""`` without one."""
    conf_dir = env.get("SPARK_CONF_DIR") or (os.path.join(env["SPARK_HOME"], "conf") if env.get("SPARK_HOME") else "")
    try:
        return Path(conf_dir, "spark-defaults.conf").read_text(encoding="utf-8") if conf_dir else ""
    except OSError:
        return ""


def user_log4j_config(settings: Mapping[str, str], environ: Mapping[str, str] | None = None) -> str | None:
    """Where the user already configures the JVM's logging (then get_spark keeps out), or ``None``.

    Looks at the driver's Java options in ``settings`` and in the environment variables the
    launcher reads, at ``LOG4J_CONFIGURATION_FILE`` and at a ``log4j2*`` file in the Spark conf
    folder (``SPARK_CONF_DIR``, else ``SPARK_HOME/conf``), which Spark puts on the classpath.
    """
    env = os.environ if environ is None else environ
    if "log4j" in settings.get("spark.driver.extraJavaOptions", ""):
        return "spark.driver.extraJavaOptions"
    for name in JAVA_OPTION_VARIABLES:
        if "log4j" in env.get(name, ""):
            return name
    if env.get("LOG4J_CONFIGURATION_FILE"):
        return "LOG4J_CONFIGURATION_FILE"
    conf_dir = env.get("SPARK_CONF_DIR") or (os.path.join(env["SPARK_HOME"], "conf") if env.get("SPARK_HOME") else "")
    if conf_dir and os.path.isdir(conf_dir):
        for name in sorted(os.listdir(conf_dir)):
            if name.startswith("log4j2") and not name.endswith(".template"):
                return os.path.join(conf_dir, name)
    return None


def _cache_folder(environ: Mapping[str, str]) -> Path:
    """featuremill's folder in the user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or str(Path.home()), ".cache")
    return Path(base) / "featuremill"


def _jars_record(package: str, environ: Mapping[str, str]) -> Path:
    return _cache_folder(environ) / (package.replace(":", "_") + ".jars")


def java_binary(environ: Mapping[str, str] | None = None) -> str | None:
    """The ``java`` Spark's launcher starts: ``$JAVA_HOME/bin/java``, else the one on ``PATH``."""
    env = os.environ if environ is None else environ
    home = env.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java", path=env.get("PATH"))


def class_archive_key(environ: Mapping[str, str] | None = None) -> str | None:
    """What a class archive is valid for, as 16 hex digits: the JDK, pyspark and the cached Delta
    jars; ``None`` without a JDK."""
    import hashlib

    import pyspark

    java = java_binary(environ)
    if java is None:
        return None
    key = "\n".join([os.path.realpath(java), pyspark.__version__, pyspark.__file__, *cached_jars(environ=environ)])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def class_archive_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the local sessions' class archive (:mod:`featuremill.core.jvm_archive`) for this JDK,
    pyspark and Delta jar set is, built or not; ``None`` without a JDK."""
    import pyspark

    env = os.environ if environ is None else environ
    key = class_archive_key(env)
    return None if key is None else _cache_folder(env) / "jvm-archive" / f"spark-{pyspark.__version__}-{key}.jsa"


def class_archive_options(path: Path) -> str:
    """The Java options that make a JVM use the class archive at ``path``."""
    return f"-XX:SharedArchiveFile={path} {CLASS_ARCHIVE_QUIET}"


def cached_jars(package: str | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The local jar files an earlier session's Ivy resolution of ``package`` (a ``spark.jars.packages``
    value; Delta's jar by default) produced, or ``[]``.

    Empty when there is no record of one or when any recorded jar is gone (a cleared Ivy cache):
    then Ivy resolves again. ``scripts/setup.sh`` makes the record once.
    """
    env = os.environ if environ is None else environ
    record = _jars_record(package or local_delta_package(), env)
    try:
        jars = [line.strip() for line in record.read_text().splitlines() if line.strip()]
    except OSError:
        return []
    if not jars or not all(os.path.isfile(_local_path(j)) for j in jars):
        return []
    return jars


def package_jars(packages: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The setting that brings ``packages`` into a local session: ``spark.jars`` with the files of an
    earlier resolution when they are all still on disk (Ivy neither runs nor prints), else
    ``spark.jars.packages`` (Ivy resolves them; :func:`get_spark` records the files)."""
    jars = cached_jars(packages, environ)
    return {"spark.jars": ",".join(jars)} if jars else {"spark.jars.packages": packages}


def _local_path(jar: str) -> str:
    """``file:///x/y.jar`` or ``file:/x/y.jar`` (as spark-submit lists them) -> ``/x/y.jar``."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(jar)
    return unquote(parsed.path) if parsed.scheme == "file" else jar


def _remember_jars(spark, package: str, environ: Mapping[str, str]) -> None:
    """Record the jar files Ivy resolved ``package`` to (spark-submit lists them in ``spark.jars``),
    so the next local session passes them directly and Ivy neither runs nor prints."""
    jars = [j for j in (spark.sparkContext.getConf().get("spark.jars", "") or "").split(",") if j.strip()]
    if not jars or not all(os.path.isfile(_local_path(j)) for j in jars):
        return
    record = _jars_record(package, environ)
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(".tmp")
        tmp.write_text("\n".join(jars) + "\n")
        tmp.replace(record)  # atomic: a concurrent reader sees the old record or the whole new one
    except OSError as exc:  # a read-only home only costs Ivy's report on the next start
        log.debug("could not record the Delta jars in %s: %s", record, exc)


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
