"""A feature-set definition changed without a version bump is refused by every writer of feature
rows: ``featuremill run``, ``featuremill backfill``, ``featuremill replay`` and the DAG runner.
The check sits in the feature job itself, so no path reaches the feature table around it."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F

from featuremill import cli
from featuremill.config import load_pipeline
from featuremill.core.errors import ConfigError
from featuremill.pipelines.backfill import run_backfill
from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.pipelines.replay import replay_run
from featuremill.storage import io
from tests.integration.reliability_data import day, make_project

# The module's fixture runs the ingest and feature jobs: whole suite only.
pytestmark = pytest.mark.slow

DAG = """\
dag:
  schedule: "0 3 * * *"
  defaults: {retries: 0, timeout: 10m}
  jobs:
    features: {job: features}
"""


@pytest.fixture(scope="module")
def changed(spark, tmp_path_factory):
    """Days 1-2 ingested and built under a lock; then n_2d's window edited to 3d, version kept at 1."""
    root = tmp_path_factory.mktemp("lock")
    pipeline, _ = make_project(root, days=2)
    pipeline.write_text(pipeline.read_text() + DAG)
    assert cli.main(["validate", str(pipeline), "--update-lock"]) == 0
    config = load_pipeline(pipeline)
    run_ingest(spark, config, start=day(1), end=day(2))
    [run] = run_features(spark, config, start=day(1), end=day(2))
    text = pipeline.read_text()
    edited = text.replace("{name: n_2d, function: count, window: 2d", "{name: n_2d, function: count, window: 3d")
    assert edited != text
    pipeline.write_text(edited)
    features = load_pipeline(pipeline).tables.features("spend")
    return pipeline, run.run_id, features, io.delta_version(spark, features)


def _unchanged(spark, features, version):
    assert io.delta_version(spark, features) == version


def test_backfill_refuses_a_definition_changed_under_its_version(spark, changed, capsys):
    pipeline, _, features, version = changed
    with pytest.raises(ConfigError, match="changed without a version bump"):
        run_backfill(spark, load_pipeline(pipeline), start=day(1), end=day(2), job="features", chunk_days=2)
    rc = cli.main(["backfill", str(pipeline), "--start", str(day(1)), "--end", str(day(2)), "--job", "features"])
    assert rc == 2
    assert "spend" in capsys.readouterr().err
    _unchanged(spark, features, version)


def test_run_and_the_feature_job_refuse_it(spark, changed, capsys):
    pipeline, _, features, version = changed
    with pytest.raises(ConfigError, match="changed without a version bump"):
        run_features(spark, load_pipeline(pipeline), start=day(1), end=day(2))
    assert cli.main(["run", str(pipeline), "--job", "features", "--date", str(day(2))]) == 2
    assert "changed without a version bump" in capsys.readouterr().err
    _unchanged(spark, features, version)


def test_replay_refuses_it(spark, changed):
    pipeline, run_id, features, version = changed
    with pytest.raises(ConfigError, match="changed without a version bump"):
        replay_run(spark, load_pipeline(pipeline), run_id=run_id)
    _unchanged(spark, features, version)


def test_dag_runner_refuses_it(spark, changed, capsys):
    pipeline, _, features, version = changed
    rc = cli.main(["dag", "run", str(pipeline), "--date", str(day(2)), "--env", "local"])
    capsys.readouterr()
    assert rc == 1
    config = load_pipeline(pipeline)
    failed = (
        io.read_delta(spark, config.tables.run_log)
        .where((F.col("job") == "dag") | (F.col("status") == "failed"))
        .where(F.col("error").contains("changed without a version bump"))
        .count()
    )
    assert failed >= 1
    _unchanged(spark, features, version)
    # the lock itself still pins version 1 to the old window
    lock = json.loads(pipeline.with_name("shop.lock.json").read_text())
    assert "1" in lock["feature_sets"]["spend"]["versions"]
