"""What get_spark sets for a session it builds in local mode: a quiet JVM log and cached Delta jars,
never over a logging setup or jars the user chose. Pure settings, no Spark started."""

from __future__ import annotations

import configparser

import pytest

from featuremill.core import session
from tests.conftest import ROOT

QUIET = f"-Dlog4j2.configurationFile={session.QUIET_LOG4J.as_uri()}"


@pytest.fixture()
def environ(tmp_path) -> dict[str, str]:
    """An environment with no Spark or log4j variables and an empty cache folder of its own."""
    return {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_quiet_log4j_file_ships_with_the_package_and_keeps_errors():
    text = session.QUIET_LOG4J.read_text()
    assert "rootLogger.level = error" in text
    assert "appender.console.target = SYSTEM_ERR" in text
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    shipped = [p.strip() for p in cfg["options.package_data"]["featuremill"].split(",")]
    assert "core/log4j2-quiet.properties" in shipped


def test_local_session_starts_with_the_quiet_log4j_config(environ):
    settings = session.local_settings({}, environ)
    assert settings["spark.driver.extraJavaOptions"] == QUIET
    assert session.spark_log_level({}, environ) is None
    # the local defaults are still there
    assert settings["spark.sql.extensions"] == session.DELTA_EXTENSION


def test_local_session_caches_thousands_of_generated_classes_and_a_given_setting_wins(classic_spark, environ):
    # the default of 100 made every streaming micro-batch recompile the last one's classes
    assert session.local_settings({}, environ)["spark.sql.codegen.cache.maxEntries"] == "2000"
    assert (
        session.local_settings({"spark.sql.codegen.cache.maxEntries": "300"}, environ)[
            "spark.sql.codegen.cache.maxEntries"
        ]
        == "300"
    )
    # a static setting: it reaches the JVM only at start, as the suite's own session shows
    assert classic_spark.sparkContext.getConf().get("spark.sql.codegen.cache.maxEntries") == "2000"


def test_quiet_option_is_appended_to_the_users_java_options(environ):
    settings = session.local_settings({"spark.driver.extraJavaOptions": "-XX:+UseParallelGC"}, environ)
    assert settings["spark.driver.extraJavaOptions"] == f"-XX:+UseParallelGC {QUIET}"


@pytest.mark.parametrize(
    ("conf", "env"),
    [
        ({"spark.driver.extraJavaOptions": "-Dlog4j2.configurationFile=/etc/my-log4j2.xml"}, {}),
        ({}, {"SPARK_SUBMIT_OPTS": "-Dlog4j2.configurationFile=/etc/my-log4j2.xml"}),
        ({}, {"LOG4J_CONFIGURATION_FILE": "/etc/my-log4j2.xml"}),
    ],
)
def test_a_users_log4j_config_is_left_alone(environ, conf, env):
    settings = session.local_settings(conf, {**environ, **env})
    assert settings.get("spark.driver.extraJavaOptions", "") == conf.get("spark.driver.extraJavaOptions", "")
    assert session.user_log4j_config(settings, {**environ, **env}) is not None


def test_a_log4j2_file_in_the_spark_conf_dir_is_left_alone(environ, tmp_path):
    conf_dir = tmp_path / "spark-conf"
    conf_dir.mkdir()
    (conf_dir / "log4j2.properties.template").write_text("")
    env = {**environ, "SPARK_CONF_DIR": str(conf_dir)}
    assert session.local_settings({}, env)["spark.driver.extraJavaOptions"] == QUIET  # a template is no config
    (conf_dir / "log4j2.properties").write_text("rootLogger.level = info\n")
    assert "spark.driver.extraJavaOptions" not in session.local_settings({}, env)
    assert session.user_log4j_config({}, env) == str(conf_dir / "log4j2.properties")


def test_an_asked_for_spark_log_level_brings_spark_logging_back(environ):
    conf = {"featuremill.logLevel": "warn"}
    assert "spark.driver.extraJavaOptions" not in session.local_settings(conf, environ)
    assert session.spark_log_level(conf, environ) == "WARN"
    # the environment variable wins over the environment file
    env = {**environ, session.LOG_LEVEL_ENV: "info"}
    assert session.spark_log_level(conf, env) == "INFO"
    assert "spark.driver.extraJavaOptions" not in session.local_settings({}, env)


def test_delta_jars_come_from_ivy_until_a_resolution_is_recorded(environ, tmp_path):
    package = session.local_delta_package()
    settings = session.local_settings({}, environ)
    assert settings["spark.jars.packages"] == package and "spark.jars" not in settings

    jars = [tmp_path / "ivy" / "io.delta_delta-spark.jar", tmp_path / "ivy" / "io.delta_delta-storage.jar"]
    jars[0].parent.mkdir()
    for jar in jars:
        jar.write_bytes(b"")
    record = session._jars_record(package, environ)
    record.parent.mkdir(parents=True)
    record.write_text("".join(f"{jar.as_uri()}\n" for jar in jars))
    settings = session.local_settings({}, environ)
    assert settings["spark.jars"] == ",".join(jar.as_uri() for jar in jars)
    assert "spark.jars.packages" not in settings

    jars[1].unlink()  # a cleared Ivy cache: resolve again rather than start without a jar
    assert session.cached_jars(package, environ) == []
    assert session.local_settings({}, environ)["spark.jars.packages"] == package


def test_explicit_jars_are_left_alone(environ):
    settings = session.local_settings({"spark.jars.packages": "io.delta:delta-spark_2.13:9.9.9"}, environ)
    assert settings["spark.jars.packages"] == "io.delta:delta-spark_2.13:9.9.9" and "spark.jars" not in settings
    settings = session.local_settings({"spark.jars": "/opt/delta.jar"}, environ)
    assert settings["spark.jars"] == "/opt/delta.jar" and "spark.jars.packages" not in settings


def test_stream_sessions_use_the_recorded_jars_of_delta_and_kafka(environ, tmp_path):
    from featuremill.streaming.job import local_conf, local_packages

    packages = local_packages()
    assert "spark-sql-kafka" in packages
    assert local_conf({}, environ)["spark.jars.packages"] == packages

    jars = [tmp_path / "ivy" / name for name in ("io.delta_delta-spark.jar", "org.apache.spark_spark-sql-kafka.jar")]
    jars[0].parent.mkdir()
    for jar in jars:
        jar.write_bytes(b"")
    record = session._jars_record(packages, environ)
    record.parent.mkdir(parents=True)
    record.write_text("".join(f"{jar.as_uri()}\n" for jar in jars))
    conf = local_conf({}, environ)
    assert conf["spark.jars"] == ",".join(jar.as_uri() for jar in jars)
    assert "spark.jars.packages" not in conf
    # a Delta-only record is not mistaken for the stream's packages
    assert session._jars_record(session.local_delta_package(), environ) != record
    # jars or packages the environment names win
    assert local_conf({"spark.jars": "/opt/x.jar"}, environ) == {
        "spark.jars": "/opt/x.jar",
        "spark.driver.extraJavaOptions": "-Xss16m",
    }


def test_configure_logging_silences_feasts_spark_source_notice_only():
    """Feast's "spark data source API is ... alpha" RuntimeWarning, raised by its own SparkSource on
    every registry read, is not printed by a featuremill entry point, even though Feast's modules
    reset the warning filters when imported after it; other warnings still are. A process of its
    own: pytest records warnings instead of printing them. Feast is the ``serving`` extra: the
    Spark compatibility lanes do not install it."""
    import subprocess
    import sys

    pytest.importorskip("feast.infra.offline_stores.contrib.spark_offline_store.spark_source")

    script = (
        "import warnings\n"
        "from featuremill.pipelines.common import configure_logging\n"
        "{setup}"
        "from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource\n"
        "SparkSource(name='s', query='SELECT 1 AS k, current_timestamp() AS ts', timestamp_field='ts')\n"
        "warnings.warn('a RuntimeWarning of anyone else', RuntimeWarning)\n"
    )

    def printed(setup: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script.format(setup=setup)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert "spark data source API" in printed("")  # without featuremill's set-up, Feast prints it
    stderr = printed("configure_logging()\n")
    assert "spark data source API" not in stderr
    assert "a RuntimeWarning of anyone else" in stderr


def _archive(environ) -> str:
    """Build a stand-in for the class archive where get_spark looks for it; its Java options."""
    path = session.class_archive_path(environ)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    return session.class_archive_options(path)


def test_local_session_runs_the_parallel_collector_and_the_class_archive_once_built(environ):
    assert session.local_settings({}, environ)["spark.driver.defaultJavaOptions"] == "-XX:+UseParallelGC"
    archive = _archive(environ)
    settings = session.local_settings({"spark.driver.extraJavaOptions": "-Xss4m"}, environ)
    assert settings["spark.driver.defaultJavaOptions"] == f"-XX:+UseParallelGC {archive}"
    assert archive.startswith("-XX:SharedArchiveFile=") and "/featuremill/jvm-archive/spark-" in archive
    # the user's own options stay where they were, the quiet log4j option still appended
    assert settings["spark.driver.extraJavaOptions"] == f"-Xss4m {QUIET}"


@pytest.mark.parametrize(
    ("conf", "env", "kept"),
    [
        ({"spark.driver.extraJavaOptions": "-XX:+UseG1GC -Xss4m"}, {}, "archive"),
        ({}, {"SPARK_SUBMIT_OPTS": "-XX:+UseZGC"}, "archive"),
        ({}, {"JAVA_TOOL_OPTIONS": "-Dx=1 -XX:+UseSerialGC"}, "archive"),
        ({}, {"_JAVA_OPTIONS": "-XX:+UseShenandoahGC"}, "archive"),
        ({}, {"SPARK_SUBMIT_OPTS": "-XX:SharedArchiveFile=/opt/my.jsa"}, "collector"),
        ({"spark.driver.extraJavaOptions": "-Xshare:off"}, {}, "collector"),
        ({"spark.driver.defaultJavaOptions": "-Xss4m"}, {}, "none"),
    ],
)
def test_a_users_collector_class_sharing_or_default_options_are_left_alone(environ, conf, env, kept):
    # two collectors in one option list stop the JVM from starting
    archive = _archive(environ)
    settings = session.local_settings(conf, {**environ, **env})
    added = {"archive": archive, "collector": "-XX:+UseParallelGC", "none": "-Xss4m"}[kept]
    assert settings["spark.driver.defaultJavaOptions"] == added


def test_a_collector_or_default_options_in_spark_defaults_conf_are_left_alone(environ, tmp_path):
    conf_dir = tmp_path / "spark-conf"
    conf_dir.mkdir()
    env = {**environ, "SPARK_CONF_DIR": str(conf_dir)}
    (conf_dir / "spark-defaults.conf").write_text("spark.driver.memory 4g\n")
    assert session.local_settings({}, env)["spark.driver.defaultJavaOptions"] == "-XX:+UseParallelGC"
    (conf_dir / "spark-defaults.conf").write_text("spark.driver.extraJavaOptions -XX:+UseG1GC\n")
    assert "spark.driver.defaultJavaOptions" not in session.local_settings({}, env)
    assert session.user_java_option(session._COLLECTOR, {}, env) == "spark-defaults.conf"
    (conf_dir / "spark-defaults.conf").write_text("spark.driver.defaultJavaOptions -Xss4m\n")
    assert "spark.driver.defaultJavaOptions" not in session.local_settings({}, env)
