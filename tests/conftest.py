"""Shared fixtures: one SparkSession for the whole run, temporary warehouses, config builders."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TEST_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "true",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.driver.memory": "2g",
    # Tests assert on plans and exact values; keep broadcast decisions explicit.
    "spark.sql.autoBroadcastJoinThreshold": "-1",
}


@pytest.fixture(scope="session")
def spark():
    from featuremill.core.session import get_spark

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run the interpreter running the tests
    session = get_spark("featuremill-tests", master="local[2]", conf=TEST_SPARK_CONF)
    yield session
    session.stop()


@pytest.fixture()
def project(tmp_path):
    """A throw-away project root: conf/pipelines, conf/env/local.yaml, data/ and warehouse/."""
    (tmp_path / "conf" / "pipelines").mkdir(parents=True)
    (tmp_path / "conf" / "env").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "conf" / "env" / "local.yaml").write_text(
        textwrap.dedent("""\
        warehouse: warehouse
        data_root: data
        max_broadcast_mb: 16
    """)
    )
    return tmp_path


def physical_plan(df) -> str:
    """The physical plan Spark would execute for ``df``, as text (Exchange, Sort, Window... nodes).

    Classic sessions read it from the JVM; a Spark Connect client asks the server for the same
    tree (``explain``), since it has no JVM of its own."""
    from featuremill.core.session import is_connect

    if is_connect(df.sparkSession):
        return df._explain_string(mode="simple")
    return df._jdf.queryExecution().executedPlan().toString()


def write_pipeline(project: Path, text: str, name: str = "test.yaml") -> Path:
    path = project / "conf" / "pipelines" / name
    path.write_text(textwrap.dedent(text))
    return path
