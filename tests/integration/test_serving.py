"""Online serving through Feast (issue 15): the generated repository, materialization into SQLite
and a real Redis, and the proof of no training-serving skew.

The reference for every online vector is featuremill's own training set: a spine with one row per
entity at a label time after every event (the materialization time), joined point-in-time by
``featuremill training-set``. A few values are also checked against numbers worked out by hand
from the events below (windows ``(t - 2d, t]``):

========  =====  =====================  ======  =======  ==============================================
customer  store  event time             amount  channel  latest row (n_2d, sum_2d, last_channel)
========  =====  =====================  ======  =======  ==============================================
1         a      2024-01-01 10:00       10      web
1         a      2024-01-02 08:00       20      app      2, 30.0, app
1         b      2024-01-02 09:00       7       store    1, 7.0, store   (same customer, another store)
2         a      2024-01-01 11:00       5       web      1, 5.0, web
11        a      2024-01-01 12:00       1       web      1, 1.0, web     (not in the spine)
========  =====  =====================  ======  =======  ==============================================

Day 3 (2024-01-03) lands one event for (1, a) at 09:00 (amount 40, web), which becomes 3, 70.0, web
((t - 2d, t] = (01-01 09:00, 01-03 09:00] still holds the 01-01 10:00 event), and a late event for (2, a) at exactly 01-01 11:00 (amount 3,
app; its id e6 orders it after e2): the row at that same event time is recomputed to 2, 8.0, app, a
correction that Feast's Redis store would skip by default (same event time), so two entities change.

The pipeline's ``preprocessing`` section standard-scales ``sum_2d`` and imputes (0) then min-max
scales ``n_2d``; the fixture fits it on the training set at LABEL_TIME, so the feature job also
writes ``preprocessed/spend``, served as the view ``spend_preprocessed``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from featuremill.cli import main
from tests.conftest import ROOT, TEST_SPARK_CONF, TINY_TABLES

REDIS_PORT = 6399

PIPELINE = """\
pipeline: shopserve
timezone: UTC
sources:
  tx:
    kind: events
    format: csv
    path: tx
    partition_column: landed
    event_time: ts
    key: id
    columns:
      id: string
      customer: bigint
      store: string
      ts: {{type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}}
      amount: double
      channel: string
feature_sets:
  - name: spend
    description: Spend per customer and store.
    owner: team@example.com
    version: {version}
    source: tx
    entity: [customer, store]
    features:
      - {{name: n_2d, function: count, window: 2d, description: Purchases in 2 days}}
      - {{name: sum_2d, function: sum, column: amount, window: {window}, description: Spend in 2 days}}
      - {{name: last_channel, function: last, column: channel, window: 7d, description: Latest channel}}
preprocessing:
  name: spendprep
  transforms:
    - columns: [sum_2d]
      scale: standard
    - columns: [n_2d]
      impute: {{strategy: constant, value: 0}}
      scale: minmax
  serving: {{feature_sets: [spend]}}
"""

LANDINGS = {
    "2024-01-01": [
        ("e1", 1, "a", "2024-01-01 10:00:00", 10.0, "web"),
        ("e2", 2, "a", "2024-01-01 11:00:00", 5.0, "web"),
        ("e7", 11, "a", "2024-01-01 12:00:00", 1.0, "web"),  # key (11, "a"): Feast's row id of (1, "1a") too
    ],
    "2024-01-02": [
        ("e3", 1, "a", "2024-01-02 08:00:00", 20.0, "app"),
        ("e4", 1, "b", "2024-01-02 09:00:00", 7.0, "store"),
    ],
    "2024-01-03": [
        ("e5", 1, "a", "2024-01-03 09:00:00", 40.0, "web"),
        ("e6", 2, "a", "2024-01-01 11:00:00", 3.0, "app"),  # late, same event time as e2
    ],
}
FEATURES = ["n_2d", "sum_2d", "last_channel"]
KEYS = ["customer", "store"]
#: entities in the spine; (3, "a") never had an event
ENTITIES = [(1, "a"), (1, "b"), (2, "a"), (3, "a")]
LABEL_TIME = dt.datetime(2024, 2, 1)  # after every event: the materialization time

D = dt.date.fromisoformat


def _land(project: Path, date: str, rows=None) -> None:
    folder = project / "data" / "tx" / f"landed={date}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = LANDINGS[date] if rows is None else rows
    lines = ["id,customer,store,ts,amount,channel"] + [",".join(map(str, row)) for row in rows]
    (folder / "part-0.csv").write_text("\n".join(lines) + "\n")


def _write_env(project: Path, name: str, online_store: str) -> None:
    # the test session's settings for tiny tables, for the Spark sessions that Feast's offline store
    # starts (`feast apply`, `feast materialize`; in-process commands use the test session)
    spark = "".join(f"  {key}: {TEST_SPARK_CONF[key]!r}\n" for key in TINY_TABLES)
    (project / "conf" / "env" / f"{name}.yaml").write_text(
        f"warehouse: warehouse\ndata_root: data\nmaster: local[2]\nonline_store: {online_store}\nspark:\n{spark}"
    )


def _featurised_project(spark, project: Path, envs: dict[str, str]):
    """``project`` with the shopserve pipeline, the environments ``envs`` (name -> online_store),
    days 01-01..01-02 landed and featurised, and the definitions locked: ``(pipeline, config)``."""
    from featuremill.config import load_pipeline

    (project / "conf" / "pipelines").mkdir(parents=True)
    (project / "conf" / "env").mkdir(parents=True)
    for name, store in envs.items():
        _write_env(project, name, store)
    pipeline = project / "conf" / "pipelines" / "shopserve.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(version=1, window="2d")))
    for date in ("2024-01-01", "2024-01-02"):
        _land(project, date)
    config = load_pipeline(pipeline)
    _run_days(spark, config, "2024-01-01", "2024-01-02")
    assert main(["validate", str(pipeline), "--update-lock"]) == 0
    return pipeline, config


def _run_days(spark, config, first: str, last: str) -> None:
    from featuremill.pipelines.build_features import run_features
    from featuremill.pipelines.ingest import run_ingest

    run_ingest(spark, config, start=D(first), end=D(last))
    run_features(spark, config, start=D(first), end=D(last))


def _training_set(spark, project: Path, pipeline: Path, name: str, *extra: str, entities=ENTITIES) -> Path:
    """``featuremill training-set`` over a spine with every entity at LABEL_TIME; returns its path."""
    spine = project / "spines" / name
    spark.createDataFrame(
        [(c, s, LABEL_TIME) for c, s in entities], "customer bigint, store string, label_ts timestamp"
    ).write.format("delta").mode("overwrite").save(str(spine))
    out = project / "warehouse" / "training" / name
    args = ["training-set", str(pipeline), "--spine", str(spine), "--features", "spend", "--out", str(out), *extra]
    assert main(args) == 0
    return out


def _training_rows(spark, project: Path, pipeline: Path, name: str, *, entities=ENTITIES) -> dict:
    """featuremill's PIT training set at LABEL_TIME for every entity: key -> feature tuple."""
    out = _training_set(spark, project, pipeline, name, entities=entities)
    rows = spark.read.format("delta").load(str(out)).collect()  # one row per spine entity (a handful)
    return {(r["customer"], r["store"]): tuple(r[f] for f in FEATURES) for r in rows}


def _online(repo: Path, view: str = "spend", features=FEATURES, *, entities=ENTITIES) -> tuple[dict, dict]:
    """Feast's get_online_features for every spine entity: key -> values, key -> statuses."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    response = store.get_online_features(
        features=[f"{view}:{f}" for f in features],
        entity_rows=[{"customer": c, "store": s} for c, s in entities],
    )
    data = response.to_dict()
    proto = response.proto
    names = list(proto.metadata.feature_names.val)
    statuses = {}
    values = {}
    for i, (c, s) in enumerate(entities):
        values[(c, s)] = tuple(data[f][i] for f in features)
        statuses[(c, s)] = tuple(proto.results[names.index(f)].statuses[i] for f in features)
    return values, statuses


def _assert_same(online: dict, training: dict, features=FEATURES) -> None:
    """Exact for integers and strings, floats within 1e-9 relative."""
    assert set(online) == set(training)
    for key, expected in training.items():
        got = online[key]
        for name, want, have in zip(features, expected, got, strict=True):
            if isinstance(want, float):
                assert have == pytest.approx(want, rel=1e-9), (key, name)
            else:
                assert have == want, (key, name, have, want)


def _preprocessed_rows(spark, path: Path) -> dict:
    """A preprocessed training set: key -> (n_2d, sum_2d, last_channel) after the stored state."""
    rows = spark.read.format("delta").load(str(path)).collect()  # four spine rows
    return {(r["customer"], r["store"]): tuple(r[f] for f in FEATURES) for r in rows}


def _assert_preprocessed_same(spark, shop, repo: Path, training: dict) -> None:
    """Online vectors of spend_preprocessed == the preprocessed training rows, under the manifest's state.

    A never-seen entity is the one difference: the training set imputes its missing n_2d (0, scaled),
    while the online store has no row for it and returns nulls (docs/serving.md).
    """
    from feast import FeatureStore

    recorded = shop["fit_manifest"]["preprocessing"]
    view = FeatureStore(repo_path=str(repo)).get_feature_view("spend_preprocessed")
    assert view.tags["featuremill.preprocessing_state"] == f"{recorded['name']}@{recorded['version']}"
    table = shop["project"] / "warehouse" / "shopserve" / "preprocessed" / "spend"
    served = spark.read.format("delta").load(str(table)).select("_preprocessing_version").distinct().collect()
    assert [r[0] for r in served] == [recorded["version"]]
    online, _ = _online(repo, "spend_preprocessed")
    known = {k: v for k, v in training.items() if k != (3, "a")}
    _assert_same({k: online[k] for k in known}, known)
    assert online[(3, "a")] == (None, None, None)
    assert training[(3, "a")] == (0.0, None, None)  # imputed 0, min-max scaled with min 0


def _state_rows(spark, project: Path) -> int:
    path = project / "warehouse" / "shopserve" / "serving" / "materializations"
    return spark.read.format("delta").load(str(path)).count() if path.exists() else 0


@pytest.fixture(scope="module")
def redis_server():
    """A real redis-server on 127.0.0.1:6399 from scripts/redis.sh (installed from Debian when missing)."""
    script = str(ROOT / "scripts" / "redis.sh")
    subprocess.run([script, "start", str(REDIS_PORT)], check=True)
    yield f"127.0.0.1:{REDIS_PORT}"
    subprocess.run([script, "stop", str(REDIS_PORT)], check=False)


@pytest.fixture(scope="module")
def shop(spark, tmp_path_factory):
    """Days 01-01..01-02 ingested and featurised; a locked pipeline; SQLite and Redis environments."""
    from featuremill.pipelines.build_features import run_features

    project = tmp_path_factory.mktemp("serving")
    pipeline, config = _featurised_project(
        spark,
        project,
        {
            "local": "{type: sqlite}",
            "redis": f"{{type: redis, address: '127.0.0.1:{REDIS_PORT}'}}",
            "redis_down": "{type: redis, address: '127.0.0.1:6398'}",
        },
    )
    # preprocessing: fit the state on featuremill's training set at LABEL_TIME (its manifest records
    # the stored state), keep the transformed training set (what a model trains on), and re-run the
    # feature job so its serving hook writes preprocessed/spend with that state
    fit_set = project / "warehouse" / "training" / "fit"
    _training_set(spark, project, pipeline, "fit")
    transformed = project / "warehouse" / "training" / "fit_preprocessed"
    assert main(["fit", str(pipeline), "--on", str(fit_set), "--out", str(transformed)]) == 0
    manifest = json.loads(Path(f"{fit_set}.manifest.json").read_text())
    run_features(spark, config, start=D("2024-01-01"), end=D("2024-01-02"))
    return {
        "project": project,
        "pipeline": pipeline,
        "config": config,
        "fit_manifest": manifest,
        "fit_set": fit_set,
        "fit_transformed": transformed,
    }


def _repo(shop, name: str, env: str, *extra: str) -> Path:
    out = shop["project"] / "feast" / name
    assert main(["feast-repo", str(shop["pipeline"]), "--env", env, "--out", str(out), *extra]) == 0
    return out


# --------------------------------------------------------------------------------------------
# the repository
# --------------------------------------------------------------------------------------------


@pytest.mark.slow  # its fixture ingests, featurises, fits and builds training sets (minutes on 2 cores)
def test_feast_repo_deterministic_applies_and_plan_shows_a_changed_definition(shop, capsys):
    from featuremill.storage.versions import feature_set_fingerprint

    repo = _repo(shop, "plan", "local")
    first = {p.name: p.read_text() for p in repo.iterdir() if p.is_file()}
    _repo(shop, "plan", "local")
    assert {p.name: p.read_text() for p in repo.iterdir() if p.is_file()} == first  # identical bytes
    assert "changed: " not in capsys.readouterr().out.splitlines()[-1]

    definitions = first["featuremill_features.py"]
    fingerprint = feature_set_fingerprint(shop["config"], shop["config"].feature_set("spend"))
    assert f"'featuremill.definition_hash': '{fingerprint}'" in definitions
    assert "entities=[customer, store]" in definitions  # the two-column key: one entity per column
    assert "Field(name='n_2d', dtype=Int64" in definitions and "Field(name='sum_2d', dtype=Float64" in definitions
    assert "Field(name='last_channel', dtype=String" in definitions
    assert "FROM delta.`" in definitions and "file_format" not in definitions

    from featuremill.serving import feast_cli

    applied = feast_cli.run_feast(repo, "apply")
    assert applied.returncode == 0, applied.stderr[-2000:]
    # Feast's plan always lists each view as updated (its source's meta timestamps differ), so the
    # check is on the definition: an unchanged pipeline shows no change of tags, a changed one does.
    # (--skip-source-validation: the sources were validated by the apply above; saves a Spark start)
    unchanged = feast_cli.run_feast(repo, "plan", "--skip-source-validation")
    assert unchanged.returncode == 0, unchanged.stderr[-2000:]
    assert "tags:" not in unchanged.stdout and "featuremill.definition_hash" not in unchanged.stdout

    # a changed definition (the 2-day sum becomes a 3-day sum, version 2) changes the hash and the plan
    changed_pipeline = shop["project"] / "conf" / "pipelines" / "changed.yaml"
    changed_pipeline.write_text(textwrap.dedent(PIPELINE.format(version=2, window="3d")))
    from featuremill.config import load_pipeline

    changed = load_pipeline(changed_pipeline)
    assert feature_set_fingerprint(changed, changed.feature_set("spend")) != fingerprint
    # the changed pipeline reads the same tables (same pipeline name and warehouse)
    assert main(["feast-repo", str(changed_pipeline), "--out", str(repo)]) == 0
    assert "featuremill_features.py" in capsys.readouterr().out.split("changed: ")[1]
    plan = feast_cli.run_feast(repo, "plan", "--skip-source-validation")
    assert plan.returncode == 0, plan.stderr[-2000:]
    new_hash = feature_set_fingerprint(changed, changed.feature_set("spend"))
    tag_lines = [line for line in plan.stdout.splitlines() if line.strip().startswith("tags:")]
    # two views change: spend, and spend_preprocessed (its hash covers the set's fingerprint and the state)
    assert len(tag_lines) == 2, plan.stdout[-3000:]
    import ast

    changes = {}
    for line in tag_lines:
        old_tags, new_tags = (ast.literal_eval(side.strip()) for side in line.split("tags:", 1)[1].split(" -> "))
        view = old_tags["featuremill.feature_set"] + (
            "_preprocessed" if "featuremill.preprocessing_state" in old_tags else ""
        )
        changes[view] = (old_tags, new_tags)
    old_tags, new_tags = changes["spend"]
    assert (old_tags["featuremill.definition_hash"], new_tags["featuremill.definition_hash"]) == (fingerprint, new_hash)
    assert (old_tags["featuremill.version"], new_tags["featuremill.version"]) == ("1", "2")
    old_tags, new_tags = changes["spend_preprocessed"]
    assert old_tags["featuremill.definition_hash"] != new_tags["featuremill.definition_hash"]
    assert old_tags["featuremill.preprocessing_state"] == new_tags["featuremill.preprocessing_state"] == "spendprep@1"
    assert (old_tags["featuremill.version"], new_tags["featuremill.version"]) == ("1", "2")


def test_feast_repo_unmappable_type_is_named(spark, tmp_path):
    from pyspark.sql.types import DecimalType, MapType, StringType

    from featuremill.core.errors import ServingError
    from featuremill.serving.repo import feast_type

    with pytest.raises(ServingError, match=r"column 'price' of T has type decimal\(10,2\).*cast it"):
        feast_type(DecimalType(10, 2), column="price", table="T")
    with pytest.raises(ServingError, match="column 'tags' of T has type map<string,string>"):
        feast_type(MapType(StringType(), StringType()), column="tags", table="T")


# --------------------------------------------------------------------------------------------
# materialization and skew, SQLite then Redis
# --------------------------------------------------------------------------------------------


@pytest.mark.slow  # ingest + features for three days, training sets, two online stores (~2 min on 2 cores)
@pytest.mark.server  # a real redis-server (scripts/redis.sh)
def test_materialize_sqlite_and_redis_equal_training_set_incremental_and_faults(spark, shop, redis_server, capsys):
    from featuremill.config import load_pipeline
    from featuremill.serving import feast_cli
    from featuremill.serving.repo import DEFINITIONS_FILE

    project, pipeline = shop["project"], str(shop["pipeline"])
    sqlite_repo = _repo(shop, "sqlite", "local", "--apply")
    redis_repo = _repo(shop, "redis", "redis", "--apply")
    assert "connection_string: 127.0.0.1:6399" in (redis_repo / "feature_store.yaml").read_text()

    # -- store down: one line naming store and address, non-zero exit, nothing recorded
    down_repo = _repo(shop, "down", "redis_down", "--apply")
    capsys.readouterr()
    assert main(["materialize", pipeline, "--env", "redis_down", "--repo", str(down_repo)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(
        "featuremill materialize: error: online store redis at 127.0.0.1:6398"
    )
    assert "is not reachable" in errors[0] and "nothing was materialized" in errors[0]
    assert _state_rows(spark, project) == 0

    # -- full materialization into both stores equals featuremill's training set
    training = _training_rows(spark, project, shop["pipeline"], "day2")
    hand = {(1, "a"): (2, 30.0, "app"), (1, "b"): (1, 7.0, "store"), (2, "a"): (1, 5.0, "web"), (3, "a"): (None,) * 3}
    assert training == hand  # the reference agrees with the hand-computed values
    # the preprocessed training set (`fit --out`) against the state worked out by hand from the fit rows:
    # sum_2d standard-scaled with the population mean/std of (30, 7, 5) (nulls ignored); n_2d imputed
    # with 0, then min-max scaled over (2, 1, 1, 0)
    fitted = [v[1] for v in hand.values() if v[1] is not None]
    mean = sum(fitted) / len(fitted)
    std = (sum((x - mean) ** 2 for x in fitted) / len(fitted)) ** 0.5
    hand_pre = {k: ((v[0] or 0) / 2, None if v[1] is None else (v[1] - mean) / std, v[2]) for k, v in hand.items()}
    pre_training = _preprocessed_rows(spark, shop["fit_transformed"])
    assert set(pre_training) == set(hand_pre)
    for key, (n, total, channel) in hand_pre.items():
        got = pre_training[key]
        assert got[0] == pytest.approx(n, rel=1e-12) and got[2] == channel, key
        assert (got[1] is None) if total is None else got[1] == pytest.approx(total, rel=1e-12), key
    assert pre_training[(1, "a")][1] == pytest.approx(16 / (386 / 3) ** 0.5, rel=1e-12)
    for env, repo in (("local", sqlite_repo), ("redis", redis_repo)):
        assert main(["materialize", pipeline, "--env", env, "--repo", str(repo)]) == 0
        assert "spend: full, Delta version" in capsys.readouterr().out
        online, statuses = _online(repo)
        _assert_same(online, training)
        from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

        # never seen: nulls (checked above); SQLite reports NOT_FOUND, Feast 0.67's Redis store reports
        # PRESENT for a key it does not hold (its read path; docs/serving.md)
        unseen = FieldStatus.NOT_FOUND if env == "local" else FieldStatus.PRESENT
        assert statuses[(3, "a")] == (unseen,) * 3, env
        assert statuses[(1, "a")] == (FieldStatus.PRESENT,) * 3
        # the preprocessed view serves the stored state the training set's manifest recorded
        _assert_preprocessed_same(spark, shop, repo, _preprocessed_rows(spark, shop["fit_transformed"]))
    assert _state_rows(spark, project) == 4  # two views (spend, spend_preprocessed) x two stores

    # -- a re-run writes nothing
    assert main(["materialize", pipeline, "--repo", str(sqlite_repo)]) == 0
    assert "spend: unchanged" in capsys.readouterr().out

    # -- day 3 changes one entity: only it is written, and the stores equal the new training set
    _land(project, "2024-01-03")
    _run_days(spark, shop["config"], "2024-01-03", "2024-01-03")
    training3 = _training_rows(spark, project, shop["pipeline"], "day3")
    assert training3[(1, "a")] == (3, 70.0, "web") and training3[(2, "a")] == (2, 8.0, "app")
    assert training3[(1, "b")] == training[(1, "b")]
    # the day-3 training set with the manifest's state applied (training mode, as `fit --out` does)
    recorded = shop["fit_manifest"]["preprocessing"]
    applied3 = project / "warehouse" / "training" / "day3_preprocessed"
    day3 = str(project / "warehouse" / "training" / "day3")
    args = ["--on", day3, "--out", str(applied3), "--mode", "training", "--state-version", str(recorded["version"])]
    assert main(["apply", pipeline, *args]) == 0
    preprocessed3 = _preprocessed_rows(spark, applied3)
    for env, repo in (("local", sqlite_repo), ("redis", redis_repo)):
        assert main(["materialize", pipeline, "--env", env, "--repo", str(repo)]) == 0
        out = capsys.readouterr().out
        assert "spend: incremental since version" in out and "2 entities written" in out, out
        assert "spend_preprocessed: incremental since version" in out, out
        _assert_same(_online(repo)[0], training3)
        _assert_preprocessed_same(spark, shop, repo, preprocessed3)

    # -- a hash mismatch refuses: the pipeline changed (window 3d, version 2) but the repository was not regenerated
    changed = load_pipeline(shop["pipeline"])  # unchanged file: hashes agree
    assert changed.feature_set("spend").version == 1
    moved = project / "conf" / "pipelines" / "shopserve_v2.yaml"
    moved.write_text(textwrap.dedent(PIPELINE.format(version=2, window="3d")))
    before = _state_rows(spark, project)
    assert main(["materialize", str(moved), "--repo", str(sqlite_repo)]) == 2
    err = capsys.readouterr().err
    assert "was applied with definition hash" in err and "regenerate and apply it" in err
    assert _state_rows(spark, project) == before
    assert "featuremill.definition_hash" in (sqlite_repo / DEFINITIONS_FILE).read_text()

    # -- an unknown view or feature is named
    assert main(["materialize", pipeline, "--repo", str(sqlite_repo), "--view", "nope"]) == 2
    assert "unknown feature view(s) nope" in capsys.readouterr().err
    from feast import FeatureStore

    with pytest.raises(Exception, match="no_such_feature"):
        FeatureStore(repo_path=str(sqlite_repo)).get_online_features(
            features=["spend:no_such_feature"], entity_rows=[{"customer": 1, "store": "a"}]
        ).to_dict()

    # -- feast's own materialization on the same repository (the baseline) gives the same vectors
    baseline = project / "feast" / "baseline"
    shutil.copytree(sqlite_repo, baseline)
    import sqlite3

    with sqlite3.connect(baseline / "data" / "online_store.db") as db:  # empty the copy's online table
        db.execute("DELETE FROM shopserve_spend")
    assert _online(baseline)[0][(1, "a")] == (None, None, None)
    done = feast_cli.run_feast(baseline, "materialize", "2023-12-31T00:00:00", "2024-02-01T00:00:00")
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same(_online(baseline)[0], training3)
    # ... and into Redis: the test's own server emptied, then refilled by Feast's materialization
    # alone, through its SDK in this process (the `feast` command above already showed that the
    # repository's own Spark settings read the table; a second command would only start a JVM more)
    import redis
    from feast import FeatureStore

    host, port = redis_server.split(":")
    redis.Redis(host=host, port=int(port)).flushall()
    assert _online(redis_repo)[0][(1, "a")] == (None, None, None)
    regex_names = "spark.sql.parser.quotedRegexColumnNames"
    before = spark.conf.get(regex_names, "false")
    try:
        FeatureStore(repo_path=str(redis_repo)).materialize(
            start_date=dt.datetime(2023, 12, 31), end_date=dt.datetime(2024, 2, 1)
        )
    finally:
        spark.conf.set(regex_names, before)  # Feast switches it on for the session it uses
    _assert_same(_online(redis_repo)[0], training3)


# --------------------------------------------------------------------------------------------
# incremental materialization: Delta's change data feed first, the version diff without it
# --------------------------------------------------------------------------------------------

#: every entity of the change-feed project's table, and (3, "a"), never seen
FEED_ENTITIES = [(1, "a"), (1, "b"), (2, "a"), (11, "a"), (3, "a")]
#: day 4 changes two entities that day 3 does not touch (the two tests hold in either order)
DAY4 = [
    ("e8", 1, "b", "2024-01-04 08:00:00", 4.0, "app"),  # (01-02 08:00, 01-04 08:00] holds e4 too: 2, 11.0, app
    ("e9", 11, "a", "2024-01-04 12:00:00", 2.0, "web"),  # e7 (01-01 12:00) is out of the 2 days: 1, 2.0, web
]
FEED = "delta.enableChangeDataFeed"


@pytest.fixture(scope="module")
def feed_shop(spark, tmp_path_factory):
    """A project of its own (days 01-01..01-02 featurised; no fitted state, so one view: spend).

    Its own: the other tests count the entities and state rows of the ``shop`` project.
    """

    project = tmp_path_factory.mktemp("feed")
    pipeline, config = _featurised_project(spark, project, {"local": "{type: sqlite}"})
    table = str(project / "warehouse" / "shopserve" / "features" / "spend")
    return {"project": project, "pipeline": pipeline, "config": config, "table": table}


def _recorded(spark, project: Path, repo: Path) -> list[tuple]:
    """The state table's rows of one store, oldest first: (view, table_version, entities, mode)."""
    from pyspark.sql import functions as F

    path = str(project / "warehouse" / "shopserve" / "serving" / "materializations")
    rows = spark.read.format("delta").load(path).where(F.col("store").contains(str(repo))).orderBy("materialized_at")
    return [tuple(r) for r in rows.select("view", "table_version", "entities", "mode").collect()]  # a few rows


@pytest.mark.slow  # ingest + features for three days, training sets (minutes on 2 cores)
def test_materialize_incremental_reads_the_change_feed_and_writes_only_the_changed_entities(spark, feed_shop, capsys):
    from featuremill.storage import io

    project, pipeline, table = feed_shop["project"], str(feed_shop["pipeline"]), feed_shop["table"]
    assert io.table_properties(spark, table)[FEED] == "true"  # the feature job created the table with the feed
    repo = _repo(feed_shop, "feed", "local", "--apply")
    assert main(["materialize", pipeline, "--repo", str(repo)]) == 0
    assert "spend: full, Delta version" in capsys.readouterr().out
    last = io.delta_version(spark, table)

    # day 3: a new event for (1, a) and a late one for (2, a) recomputed at the same event time
    _land(project, "2024-01-03")
    _run_days(spark, feed_shop["config"], "2024-01-03", "2024-01-03")
    version = io.delta_version(spark, table)
    assert version > last
    assert main(["materialize", pipeline, "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    # two entities by hand (the table above): only (1, a) and (2, a) have changed rows
    assert (
        f"spend: incremental since version {last} (change data feed), Delta version {version}, 2 entities written"
        in out
    ), out
    # the full run wrote the four entities of days 1-2: (1, a), (1, b), (2, a), (11, a)
    assert _recorded(spark, project, repo) == [("spend", last, 4, "full"), ("spend", version, 2, "incremental_cdf")]
    training = _training_rows(spark, project, feed_shop["pipeline"], "feed3", entities=FEED_ENTITIES)
    assert training[(1, "a")] == (3, 70.0, "web") and training[(2, "a")] == (2, 8.0, "app")  # by hand
    assert training[(3, "a")] == (None,) * 3
    _assert_same(_online(repo, entities=FEED_ENTITIES)[0], training)

    # nothing changed since: unchanged, nothing written
    assert main(["materialize", pipeline, "--repo", str(repo)]) == 0
    assert "spend: unchanged" in capsys.readouterr().out


@pytest.mark.slow  # ingest + features for a day, training sets (minutes on 2 cores)
def test_materialize_incremental_without_the_change_feed_falls_back_to_the_version_diff(
    spark, feed_shop, capsys, caplog
):
    import logging

    from featuremill.storage import io

    project, pipeline, table = feed_shop["project"], str(feed_shop["pipeline"]), feed_shop["table"]
    off = _repo(feed_shop, "nofeed", "local", "--apply")  # materialized while the table has no feed
    late = _repo(feed_shop, "latefeed", "local", "--apply")  # the feed is turned on again after day 4
    for repo in (off, late):
        assert main(["materialize", pipeline, "--repo", str(repo)]) == 0
    last = io.delta_version(spark, table)
    warehouse = feed_shop["config"].env.warehouse
    io.set_table_properties(spark, table, {FEED: "false"}, root=warehouse)  # as set by hand: the feature job keeps it

    _land(project, "2024-01-04", DAY4)
    _run_days(spark, feed_shop["config"], "2024-01-04", "2024-01-04")
    assert io.table_properties(spark, table)[FEED] == "false"
    version = io.delta_version(spark, table)
    training = _training_rows(spark, project, feed_shop["pipeline"], "feed4", entities=FEED_ENTITIES)
    assert training[(1, "b")] == (2, 11.0, "app") and training[(11, "a")] == (1, 2.0, "web")  # by hand

    caplog.set_level(logging.INFO, logger="featuremill.serving.materialize")
    capsys.readouterr()
    assert main(["materialize", pipeline, "--repo", str(off)]) == 0
    out = capsys.readouterr().out
    assert (
        f"spend: incremental since version {last} (version diff), Delta version {version}, 2 entities written" in out
    ), out
    assert f"{FEED}=false; incremental by version diff" in caplog.text
    assert _recorded(spark, project, off)[-1] == ("spend", version, 2, "incremental")
    _assert_same(_online(off, entities=FEED_ENTITIES)[0], training)

    # the feed turned on after day 4 was written: the property says on, Delta refuses the range
    # (day 4's commit has no change data) and the run falls back with the reason logged
    io.set_table_properties(spark, table, {FEED: "true"}, root=warehouse)
    caplog.clear()
    assert main(["materialize", pipeline, "--repo", str(late)]) == 0
    out = capsys.readouterr().out
    assert f"spend: incremental since version {last} (version diff), Delta version {version + 1}, 2 entities" in out
    assert "DELTA_MISSING_CHANGE_DATA" in caplog.text and "incremental by version diff" in caplog.text
    assert _recorded(spark, project, late)[-1] == ("spend", version + 1, 2, "incremental")
    _assert_same(_online(late, entities=FEED_ENTITIES)[0], training)


# --------------------------------------------------------------------------------------------
# Feast's offline retrieval (get_historical_features) against featuremill's PIT join
# --------------------------------------------------------------------------------------------

T = dt.datetime.fromisoformat
#: (customer, store, label time) -> what both must return, or (featuremill, Feast) where they differ.
#: Only rows that day 3 (the incremental test) does not change, so the test holds in any order.
HISTORICAL_SPINE = {
    (1, "a", T("2024-01-01 09:59:59")): None,  # before the first event: null in both
    (1, "a", T("2024-01-02 08:00:00")): (2, 30.0, "app"),  # label exactly at an event time: both include it
    (1, "b", T("2024-01-03 08:59:59")): (1, 7.0, "store"),  # inside the TTL
    # the event is exactly TTL (1 day) old: featuremill excludes it (f > s - ttl), Feast includes it (>=)
    (1, "b", T("2024-01-03 09:00:00")): ("differs", None, (1, 7.0, "store")),
    (11, "a", T("2024-01-02 11:00:00")): (1, 1.0, "web"),
    # Feast's row id is CONCAT(customer, store, time) without a separator: (1, "1a") collides with
    # (11, "a") at the same time and is handed (11, "a")'s features; featuremill compares columns
    (1, "1a", T("2024-01-02 11:00:00")): ("differs", None, (1, 1.0, "web")),
    (3, "a", T("2024-01-02 11:00:00")): None,  # never seen
}


@pytest.mark.slow  # a training set and Feast's Spark retrieval (several SQL statements) in this session
def test_get_historical_features_against_featuremill_pit_join(spark, shop):
    """Feast's get_historical_features over the generated repository (TTL 1d) vs featuremill's
    training set with --ttl 1d on the same spine: equal except the two documented differences."""
    from feast import FeatureStore

    from featuremill.serving import feast_cli

    project, pipeline = shop["project"], shop["pipeline"]
    repo = _repo(shop, "historical", "local", "--ttl", "1d")
    feast_cli.apply_in_process(spark, repo, pipeline="shopserve")
    spine = project / "spines" / "historical"
    rows = list(HISTORICAL_SPINE)
    spark.createDataFrame(rows, "customer bigint, store string, label_ts timestamp").write.format("delta").mode(
        "overwrite"
    ).save(str(spine))
    out = project / "warehouse" / "training" / "historical"
    # --include-warming-up: these label times sit in the first days of data (windows still
    # filling), which a training set leaves out by default; the comparison with Feast needs them
    args = ["--spine", str(spine), "--features", "spend", "--ttl", "1d", "--out", str(out), "--include-warming-up"]
    assert main(["training-set", str(pipeline), *args]) == 0
    featuremill = {
        (r["customer"], r["store"], r["label_ts"]): tuple(r[f] for f in FEATURES)
        for r in spark.read.format("delta").load(str(out)).collect()  # seven spine rows
    }

    import pandas as pd

    entity_df = pd.DataFrame(rows, columns=["customer", "store", "label_ts"])
    quoted = spark.conf.get("spark.sql.parser.quotedRegexColumnNames", "false")
    try:  # Feast's Spark offline store reuses this session and switches quotedRegexColumnNames on
        job = FeatureStore(repo_path=str(repo)).get_historical_features(
            entity_df=entity_df, features=[f"spend:{f}" for f in FEATURES]
        )
        feast_rows = job.to_spark_df().collect()  # seven spine rows
    finally:
        spark.conf.set("spark.sql.parser.quotedRegexColumnNames", quoted)
    feast = {}
    for r in feast_rows:
        key = (r["customer"], r["store"], r["label_ts"].replace(tzinfo=None))
        assert key not in feast, f"Feast returned spine row {key} twice"
        feast[key] = tuple(r[f] for f in FEATURES)
    assert set(feast) == set(featuremill) == set(HISTORICAL_SPINE)

    for key, expected in HISTORICAL_SPINE.items():
        if expected is not None and expected[0] == "differs":
            want_featuremill, want_feast = expected[1] or (None,) * 3, expected[2]
        else:
            want_featuremill = want_feast = expected or (None,) * 3
        assert featuremill[key] == want_featuremill, ("featuremill", key)
        assert feast[key] == want_feast, ("feast", key)

    # ties at one event time cannot reach either join: a feature table holds one row per key and event time
    table = spark.read.format("delta").load(str(project / "warehouse" / "shopserve" / "features" / "spend"))
    assert table.count() == table.select(*KEYS, "ts").distinct().count()


# --------------------------------------------------------------------------------------------
# the HTTP feature server and a materialization killed mid-write (SQLite)
# --------------------------------------------------------------------------------------------

HTTP_PORT = 6566


@pytest.fixture(scope="module")
def served(spark, shop):
    """A SQLite repository applied and materialized in this process, and the PIT training rows it must serve."""
    from featuremill.serving import feast_cli

    repo = _repo(shop, "http", "local")
    feast_cli.apply_in_process(spark, repo, pipeline="shopserve")
    assert main(["materialize", str(shop["pipeline"]), "--repo", str(repo)]) == 0
    training = _training_rows(spark, shop["project"], shop["pipeline"], "served")
    return {"repo": repo, "training": training}


def _http_json(url: str, body: dict | None = None, *, timeout: float = 10) -> dict:
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


@pytest.mark.slow  # the feature server's start (Feast import, gunicorn) takes ~10 s
@pytest.mark.server  # `feast serve` on 127.0.0.1:6566
def test_feast_serve_http_returns_the_training_row_and_nulls_for_an_unseen_entity(served, tmp_path):
    import os
    import signal
    import time
    import urllib.error

    from featuremill.core.errors import ServingError
    from featuremill.serving.feast_cli import feast_executable

    try:
        feast = feast_executable()
    except ServingError as exc:
        pytest.skip(f"the feast command is not installed: {exc}")
    log_path = tmp_path / "feast-serve.log"
    base = f"http://127.0.0.1:{HTTP_PORT}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [feast, "serve", "-h", "127.0.0.1", "-p", str(HTTP_PORT), "--no-access-log"],
            cwd=served["repo"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # gunicorn's workers too: the teardown kills the process group
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"feast serve exited ({proc.returncode}): {log_path.read_text()[-2000:]}"
            try:
                _http_json(f"{base}/health", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                assert time.monotonic() < deadline, f"feast serve not ready in 120 s: {log_path.read_text()[-2000:]}"
                time.sleep(0.5)
        reply = _http_json(
            f"{base}/get-online-features",
            {"features": [f"spend:{f}" for f in FEATURES], "entities": {"customer": [1, 3], "store": ["a", "a"]}},
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    names = reply["metadata"]["feature_names"]
    results = {name: reply["results"][i] for i, name in enumerate(names)}
    assert results["customer"]["values"] == [1, 3] and results["store"]["values"] == ["a", "a"]
    known = tuple(results[f]["values"][0] for f in FEATURES)
    _assert_same({(1, "a"): known}, {(1, "a"): served["training"][(1, "a")]})
    assert [results[f]["values"][1] for f in FEATURES] == [None, None, None]  # never seen
    assert [results[f]["statuses"] for f in FEATURES] == [["PRESENT", "NOT_FOUND"]] * 3


def _online_entities(repo: Path, table: str) -> int:
    import sqlite3

    with sqlite3.connect(repo / "data" / "online_store.db") as db:
        return db.execute(f"SELECT count(DISTINCT entity_key) FROM {table}").fetchone()[0]


@pytest.mark.slow  # a second driver process with its own JVM (~30 s)
def test_materialize_killed_mid_write_then_rerun_leaves_the_store_equal_to_the_table(spark, shop, served, tmp_path):
    """SIGKILL while the online write is half done (tests/faults/kill_child.py pauses the executor
    after its first batch); the killed run records nothing and a re-run makes the store equal the table."""
    import os
    import signal
    import sqlite3
    import sys
    import time

    from featuremill.storage import io

    project, pipeline = shop["project"], str(shop["pipeline"])
    killed = project / "feast" / "killed"
    shutil.copytree(served["repo"], killed)  # a second store: its own SQLite file, nothing recorded for it
    with sqlite3.connect(killed / "data" / "online_store.db") as db:
        for table in ("shopserve_spend", "shopserve_spend_preprocessed"):
            db.execute(f"DELETE FROM {table}")
    before = _state_rows(spark, project)
    marker, log_path = tmp_path / "paused", tmp_path / "materialize-child.log"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    env["FEATUREMILL_PAUSE_AFTER_WRITE"] = str(marker)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.kill_child", pipeline, "materialize", str(killed)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, (
                f"the materialize child ended ({proc.returncode}): {log_path.read_text()[-3000:]}"
            )
            assert time.monotonic() < deadline, f"no online write in 240 s: {log_path.read_text()[-3000:]}"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the driver was not killed mid-write (exit {proc.returncode})"
    assert marker.read_text() == "spend 1\n"  # exactly one batch of one row was written
    assert _online_entities(killed, "shopserve_spend") == 1  # of four entities in the table
    assert _online_entities(killed, "shopserve_spend_preprocessed") == 0
    assert _state_rows(spark, project) == before  # the killed run recorded nothing

    # the re-run finds nothing recorded for this store: it writes every entity, and the store equals the table
    assert main(["materialize", pipeline, "--repo", str(killed)]) == 0
    assert _online_entities(killed, "shopserve_spend") == 4
    assert _online_entities(killed, "shopserve_spend_preprocessed") == 4
    _assert_same(_online(killed)[0], served["training"])
    assert _online(killed, "spend_preprocessed")[0] == _online(served["repo"], "spend_preprocessed")[0]
    from pyspark.sql import functions as F

    state = io.read_delta(spark, str(project / "warehouse" / "shopserve" / "serving" / "materializations"))
    recorded = state.where(F.col("store").contains(str(killed))).select("view", "table_version", "mode").collect()
    tables = project / "warehouse" / "shopserve"
    assert sorted(tuple(r) for r in recorded) == [
        ("spend", io.delta_version(spark, str(tables / "features" / "spend")), "full"),
        ("spend_preprocessed", io.delta_version(spark, str(tables / "preprocessed" / "spend")), "full"),
    ]
