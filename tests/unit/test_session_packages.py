"""The Delta jar get_spark asks Ivy for follows the installed pyspark and delta-spark."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest

from featuremill.core import session
from featuremill.core.spark_versions import VersionMismatchError


def _fake_pyspark(tmp_path, version: str, scala_jar: str | None):
    jars = tmp_path / "pyspark" / "jars"
    jars.mkdir(parents=True)
    if scala_jar:
        (jars / scala_jar).write_bytes(b"")
    return types.SimpleNamespace(__version__=version, __file__=str(tmp_path / "pyspark" / "__init__.py"))


@pytest.mark.parametrize(
    ("pyspark_version", "scala_jar", "delta_version", "expected"),
    [
        ("3.5.7", "scala-library-2.12.18.jar", "3.3.2", "io.delta:delta-spark_2.12:3.3.2"),
        ("4.0.1", "scala-library-2.13.16.jar", "4.0.1", "io.delta:delta-spark_2.13:4.0.1"),
        ("4.2.0", "scala-library-2.13.17.jar", "4.4.0", "io.delta:delta-spark_4.2_2.13:4.4.0"),
        # no scala-library jar to read (a trimmed install): pip's 3.x builds are Scala 2.12
        ("3.5.7", None, "3.3.2", "io.delta:delta-spark_2.12:3.3.2"),
    ],
)
def test_local_delta_package_matches_the_installed_pair(
    tmp_path, monkeypatch, pyspark_version, scala_jar, delta_version, expected
):
    fake = _fake_pyspark(tmp_path, pyspark_version, scala_jar)
    monkeypatch.setitem(sys.modules, "pyspark", fake)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: delta_version)
    assert session.local_delta_package() == expected


def test_local_delta_package_refuses_a_mismatched_pair(tmp_path, monkeypatch):
    fake = _fake_pyspark(tmp_path, "4.2.0", "scala-library-2.13.17.jar")
    monkeypatch.setitem(sys.modules, "pyspark", fake)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "4.0.1")
    with pytest.raises(VersionMismatchError, match="built for Spark 4.0"):
        session.local_delta_package()


def test_is_connect_tells_a_connect_session_by_its_class():
    connect_cls = type("SparkSession", (), {"__module__": "pyspark.sql.connect.session"})
    classic_cls = type("SparkSession", (), {"__module__": "pyspark.sql.session"})
    assert session.is_connect(connect_cls()) is True
    assert session.is_connect(classic_cls()) is False
