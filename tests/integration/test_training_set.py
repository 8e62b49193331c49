"""The training-set job end to end: CSV landing folders -> ingest -> features -> training set.

Expected feature values are worked out by hand below from the events, so the whole chain
(``_known_at`` from landing dates, MERGE of late data, the point-in-time join, the manifest and
the time-travel rebuild) is checked against numbers that do not come from featuremill.

Customer 1 (windows are 2 days, ``(t - 2d, t]``):

=====  ================  ========  ======  =====================================================
event  event time        lands on  amount  feature row after it: n_2d, sum_2d, _known_at
=====  ================  ========  ======  =====================================================
e1     01-01 10:00       01-01     10      1, 10, 01-02 00:00
e2     01-02 08:00       01-02     20      2, 30, 01-03 00:00
e4     01-02 12:00       01-04     1000    3, 1030, 01-05 00:00  (late: only after 01-04 lands)
e3     01-03 09:00       01-03     40      3, 70, 01-04 00:00 before e4 lands; 4, 1070, 01-05 after
=====  ================  ========  ======  =====================================================
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest
from chispa import assert_df_equality

from featuremill.cli import main
from featuremill.config import load_pipeline
from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.storage import versions

# Runs the pipeline's jobs: whole suite only, not the fast lane (-m "not slow").
pytestmark = pytest.mark.slow

PIPELINE = """\
pipeline: shop
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
      ts: {{type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}}
      amount: double
feature_sets:
  - name: spend
    description: Spend per customer.
    owner: team@example.com
    version: {version}
    source: tx
    entity: customer
    features:
      - {{name: n_2d, function: count, window: 2d, description: Purchases in 2 days}}
      - {{name: sum_2d, function: sum, column: amount, window: {window}, description: Spend in 2 days}}
"""

LANDINGS = {
    "2024-01-01": [("e1", 1, "2024-01-01 10:00:00", 10.0), ("x1", 3, "2024-01-01 11:00:00", 5.0)],
    "2024-01-02": [("e2", 1, "2024-01-02 08:00:00", 20.0)],
    "2024-01-03": [("e3", 1, "2024-01-03 09:00:00", 40.0)],
    "2024-01-04": [("e4", 1, "2024-01-02 12:00:00", 1000.0)],  # late: happened on 01-02
}
D = dt.date.fromisoformat


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


SPINE = [  # (label_id, customer, label time, label)
    (1, 1, _ts("2024-01-02 09:00:00"), 0),
    (2, 1, _ts("2024-01-03 12:00:00"), 1),
    (2, 1, _ts("2024-01-03 12:00:00"), 1),  # repeated spine row
    (3, 1, _ts("2024-01-05 00:00:00"), 0),
    (4, 2, _ts("2024-01-03 12:00:00"), 1),  # no history
    (5, 1, None, 0),  # null label time
    (6, 3, _ts("2024-01-03 11:00:00"), 0),  # x1 exactly 2 days old: TTL 2d excludes it, no TTL keeps it
]
SPINE_SCHEMA = "label_id int, customer bigint, label_ts timestamp, label int"
OUT_SCHEMA = SPINE_SCHEMA + ", n_2d bigint, sum_2d double, _spend_event_time timestamp"


def _land(project: Path, date: str) -> None:
    folder = project / "data" / "tx" / f"landed={date}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["id,customer,ts,amount"] + [f"{i},{c},{t},{a}" for i, c, t, a in LANDINGS[date]]
    (folder / "part-0.csv").write_text("\n".join(lines) + "\n")


def _expected(spark, values: dict, *, known_at: bool = False):
    rows = []
    for row in SPINE:
        n, s, f_ts, *known = values.get(row[0], (None, None, None, None))
        rows.append(
            row
            + (n, s, _ts(f_ts) if f_ts else None)
            + ((_ts(known[0]) if known and known[0] else None,) if known_at else ())
        )
    schema = OUT_SCHEMA + (", _spend_known_at timestamp" if known_at else "")
    return spark.createDataFrame(rows, schema)


def _read(spark, path, version=None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(str(path))


@pytest.fixture(scope="module")
def shop(spark, tmp_path_factory):
    """A project with days 01-01..01-03 ingested and featurised, a locked pipeline, a Delta spine."""
    project = tmp_path_factory.mktemp("shop")
    (project / "conf" / "pipelines").mkdir(parents=True)
    (project / "conf" / "env").mkdir(parents=True)
    (project / "conf" / "env" / "local.yaml").write_text("warehouse: warehouse\ndata_root: data\n")
    pipeline = project / "conf" / "pipelines" / "shop.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(version=1, window="2d")))
    for date in ("2024-01-01", "2024-01-02", "2024-01-03"):
        _land(project, date)
    config = load_pipeline(pipeline)
    run_ingest(spark, config, start=D("2024-01-01"), end=D("2024-01-03"))
    run_features(spark, config, start=D("2024-01-01"), end=D("2024-01-03"))
    assert main(["validate", str(pipeline), "--update-lock"]) == 0
    spine_path = project / "spine"
    spark.createDataFrame(SPINE, SPINE_SCHEMA).write.format("delta").save(str(spine_path))
    return {
        "project": project,
        "pipeline": pipeline,
        "config": config,
        "spine": str(spine_path),
        "features": config.tables.features("spend"),
    }


@pytest.mark.slow  # two ingest + feature runs and seven training sets (~60 s on 2 cores)
def test_training_set_late_data_known_at_and_rebuild_from_manifest(spark, shop, capsys):
    """Acceptance 1 (late data with known-at, at job level) and 3 (identical rebuild after the
    feature table changed), plus the manifest's contents."""
    project, pipeline = shop["project"], str(shop["pipeline"])
    out1, out_known1 = project / "warehouse" / "ts" / "before", project / "warehouse" / "ts" / "before_known"
    # --keep-internal-columns: the matched rows' _spend_event_time / _spend_known_at are checked below
    keep = "--keep-internal-columns"
    # --include-warming-up: label 1 (01-02 09:00) has a 2-day window reaching before the first
    # event date 01-01; the late-data cases below need it (the default is tested further down)
    warm = "--include-warming-up"
    assert (
        main(
            ["training-set", pipeline, "--spine", shop["spine"], "--features", "spend", "--out", str(out1), keep, warm]
        )
        == 0
    )
    assert (
        main(
            [
                "training-set",
                pipeline,
                "--spine",
                shop["spine"],
                "--features",
                "spend@1",
                "--out",
                str(out_known1),
                keep,
                "--known-at",
                "--ttl",
                "2d",
                "--strategy",
                "broadcast",
                warm,
            ]
        )
        == 0
    )
    capsys.readouterr()
    before = {
        1: (2, 30.0, "2024-01-02 08:00:00"),
        2: (3, 70.0, "2024-01-03 09:00:00"),
        3: (3, 70.0, "2024-01-03 09:00:00"),
        6: (1, 5.0, "2024-01-01 11:00:00"),
    }
    assert_df_equality(_read(spark, out1), _expected(spark, before), ignore_row_order=True, ignore_nullable=True)
    # known-at: e2 is not known at 01-02 09:00 (only from 01-03), e3 not at 01-03 12:00 (from 01-04);
    # TTL 2d: x1 is exactly 2 days old for label 6
    before_known = {
        1: (1, 10.0, "2024-01-01 10:00:00", "2024-01-02 00:00:00"),
        2: (2, 30.0, "2024-01-02 08:00:00", "2024-01-03 00:00:00"),
        3: (3, 70.0, "2024-01-03 09:00:00", "2024-01-04 00:00:00"),
    }
    assert_df_equality(
        _read(spark, out_known1),
        _expected(spark, before_known, known_at=True),
        ignore_row_order=True,
        ignore_nullable=True,
    )

    manifest = json.loads(Path(f"{out1}.manifest.json").read_text())
    fs = manifest["feature_sets"][0]
    assert (fs["name"], fs["version"], fs["table"]) == ("spend", 1, shop["features"])
    assert fs["fingerprint"] == versions.feature_set_fingerprint(shop["config"], shop["config"].feature_set("spend"))
    table_version = fs["delta_version"]
    assert table_version == max(
        r["version"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{shop['features']}`").collect()
    )
    assert manifest["spine"]["format"] == "delta" and manifest["spine"]["rows"] == len(SPINE)
    assert manifest["spine"]["fingerprint"].startswith("xxh64sum:")
    assert manifest["output"]["rows"] == len(SPINE) and manifest["code"]["featuremill"]
    assert manifest["options"] == {
        "known_at": False,
        "strategy": "window",
        "strict": False,
        "ttl_seconds": None,
        "keep_internal_columns": True,
        "include_warming_up": True,
    }
    assert manifest["preprocessing"] is None

    # Late data lands: the feature job recomputes from 01-02 and the feature table changes.
    _land(project, "2024-01-04")
    config = shop["config"]
    run_ingest(spark, config, start=D("2024-01-04"), end=D("2024-01-04"))
    run_features(spark, config, start=D("2024-01-04"), end=D("2024-01-04"))
    out2, out_known2 = project / "warehouse" / "ts" / "after", project / "warehouse" / "ts" / "after_known"
    assert (
        main(
            ["training-set", pipeline, "--spine", shop["spine"], "--features", "spend", "--out", str(out2), keep, warm]
        )
        == 0
    )
    assert (
        main(
            [
                "training-set",
                pipeline,
                "--spine",
                shop["spine"],
                "--features",
                "spend",
                "--out",
                str(out_known2),
                keep,
                "--known-at",
                "--ttl",
                "2d",
                warm,
            ]
        )
        == 0
    )
    after = {**before, 2: (4, 1070.0, "2024-01-03 09:00:00"), 3: (4, 1070.0, "2024-01-03 09:00:00")}
    assert_df_equality(_read(spark, out2), _expected(spark, after), ignore_row_order=True, ignore_nullable=True)
    # With known-at the late e4 (landed 01-04) cannot reach label 2 at 01-03 12:00: it still sees e2's
    # row; label 3 at 01-05 00:00 sees the revised e3 row, known exactly then.
    after_known = {**before_known, 3: (4, 1070.0, "2024-01-03 09:00:00", "2024-01-05 00:00:00")}
    assert_df_equality(
        _read(spark, out_known2),
        _expected(spark, after_known, known_at=True),
        ignore_row_order=True,
        ignore_nullable=True,
    )

    # Rebuild the first training set from its manifest: time travel gives it back exactly.
    rebuilt = project / "warehouse" / "ts" / "rebuilt"
    assert main(["training-set", pipeline, "--manifest", f"{out1}.manifest.json", "--out", str(rebuilt)]) == 0
    assert "identical to the one in" in capsys.readouterr().out
    assert_df_equality(
        _read(spark, rebuilt), _read(spark, out1, manifest["output"]["delta_version"]), ignore_row_order=True
    )
    assert_df_equality(_read(spark, rebuilt), _expected(spark, before), ignore_row_order=True, ignore_nullable=True)
    again = json.loads(Path(f"{rebuilt}.manifest.json").read_text())
    assert again["rebuilt_from"]["identical"] is True
    assert again["feature_sets"][0]["delta_version"] == table_version


def test_training_set_refuses_mixed_versions_and_unbumped_changes(spark, shop, capsys):
    project = shop["project"]
    spine, out = shop["spine"], str(project / "warehouse" / "ts" / "refused")
    # A definition change without a bump: the feature job and the training-set job refuse it.
    changed = shop["pipeline"].with_name("shop_changed.yaml")
    changed.write_text(textwrap.dedent(PIPELINE.format(version=1, window="3d")))
    versions.lock_path(changed).write_text(versions.lock_path(shop["pipeline"]).read_text())
    history = (
        _read(spark, shop["features"]).count(),
        len(spark.sql(f"DESCRIBE HISTORY delta.`{shop['features']}`").collect()),
    )
    assert main(["run", str(changed), "--job", "features", "--date", "2024-01-03"]) == 2
    assert main(["training-set", str(changed), "--spine", spine, "--features", "spend", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("changed without a version bump") == 2
    assert (
        _read(spark, shop["features"]).count(),
        len(spark.sql(f"DESCRIBE HISTORY delta.`{shop['features']}`").collect()),
    ) == history

    # Bumped and locked, but the table still holds version-1 rows: no silent mix.
    bumped = shop["pipeline"].with_name("shop_v2.yaml")
    bumped.write_text(textwrap.dedent(PIPELINE.format(version=2, window="3d")))
    versions.lock_path(bumped).write_text(versions.lock_path(shop["pipeline"]).read_text())
    assert main(["validate", str(bumped), "--update-lock"]) == 0
    assert main(["training-set", str(bumped), "--spine", spine, "--features", "spend", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "holds rows written by other versions than 2 (version 1:" in err
    # Asking for the version the table holds works, and records that version's locked fingerprint.
    assert main(["training-set", str(bumped), "--spine", spine, "--features", "spend@1", "--out", out]) == 0
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["feature_sets"][0]["version"] == 1
    assert (
        manifest["feature_sets"][0]["fingerprint"]
        == versions.read_lock(versions.lock_path(bumped)).versions("spend")[1]["fingerprint"]
    )


def test_register_model_links_feature_versions_and_validate_warns(spark, shop, capsys):
    project, pipeline = shop["project"], str(shop["pipeline"])
    out = project / "warehouse" / "ts" / "for_model"
    assert main(["training-set", pipeline, "--spine", shop["spine"], "--features", "spend", "--out", str(out)]) == 0
    manifest = f"{out}.manifest.json"
    assert main(["register-model", "churn", "1", "--manifest", manifest]) == 0
    assert main(["register-model", "churn", "1", "--manifest", manifest]) == 0  # same manifest: no-op
    assert "unchanged" in capsys.readouterr().out
    registry = _read(spark, f"{shop['config'].tables.root}/model_registry")
    rows = registry.collect()
    assert len(rows) == 1 and rows[0]["feature_sets"] == {"spend": 1}
    assert rows[0]["training_set"] == str(out) and json.loads(rows[0]["manifest"])["output"]["path"] == str(out)
    # another training set under the same model version is refused
    other = project / "warehouse" / "ts" / "other"
    assert (
        main(
            ["training-set", pipeline, "--spine", shop["spine"], "--features", "spend", "--out", str(other), "--strict"]
        )
        == 0
    )
    assert main(["register-model", "churn", "1", "--manifest", f"{other}.manifest.json"]) == 2
    assert "already registered with another training set" in capsys.readouterr().err
    # the lock file beside the pipeline now knows the model; a version bump makes validate warn
    lock = versions.read_lock(versions.lock_path(pipeline))
    assert lock.models["churn"]["1"]["feature_sets"]["spend"]["version"] == 1
    assert main(["models", pipeline]) == 0
    assert "churn  1" in capsys.readouterr().out
    original = shop["pipeline"].read_text()
    try:
        shop["pipeline"].write_text(textwrap.dedent(PIPELINE.format(version=2, window="3d")))
        assert main(["validate", pipeline, "--update-lock"]) == 0
        out_text = capsys.readouterr().out
        assert "model 'churn' version 1 was trained on spend@1; the pipeline now declares version 2" in out_text
        assert main(["models", pipeline]) == 0
        assert "BREAKS: spend@1: pipeline now declares version 2" in capsys.readouterr().out
    finally:
        shop["pipeline"].write_text(original)


def test_training_set_selected_features_keeps_only_them_and_rebuilds(spark, shop, capsys, tmp_path):
    """`--selected-features` (select's selected_features.json) keeps only the kept features; the
    manifest records the selection and a rebuild joins the same columns."""
    project, pipeline = shop["project"], str(shop["pipeline"])
    full, picked = project / "warehouse" / "ts" / "all_features", project / "warehouse" / "ts" / "picked"
    selection = tmp_path / "report"
    selection.mkdir()
    (selection / "selected_features.json").write_text(json.dumps({"label": "label", "features": ["sum_2d"]}))
    keep = "--keep-internal-columns"
    assert (
        main(["training-set", pipeline, "--spine", shop["spine"], "--features", "spend", "--out", str(full), keep]) == 0
    )
    assert (
        main(
            [
                "training-set",
                pipeline,
                "--spine",
                shop["spine"],
                "--features",
                "spend",
                "--out",
                str(picked),
                "--selected-features",
                str(selection),
                keep,
            ]
        )
        == 0
    )
    kept = ["label_id", "customer", "label_ts", "label", "sum_2d", "_spend_event_time"]
    assert _read(spark, picked).columns == kept
    assert_df_equality(_read(spark, picked), _read(spark, full).select(*kept), ignore_row_order=True)
    manifest = json.loads(Path(f"{picked}.manifest.json").read_text())
    assert manifest["feature_sets"][0]["features"] == ["sum_2d"]
    assert manifest["selection"] == {"file": str(selection), "features": ["sum_2d"], "feature_sets_left_out": []}

    rebuilt = project / "warehouse" / "ts" / "picked_rebuilt"
    assert main(["training-set", pipeline, "--manifest", f"{picked}.manifest.json", "--out", str(rebuilt)]) == 0
    assert_df_equality(_read(spark, rebuilt), _read(spark, picked), ignore_row_order=True)
    capsys.readouterr()

    # a name that is not a feature of the requested sets is refused before anything is written
    (selection / "selected_features.json").write_text(json.dumps({"features": ["sum_2d", "sum_2d_scaled"]}))
    refused = project / "warehouse" / "ts" / "refused_selection"
    assert (
        main(
            [
                "training-set",
                pipeline,
                "--spine",
                shop["spine"],
                "--features",
                "spend",
                "--out",
                str(refused),
                "--selected-features",
                str(selection / "selected_features.json"),
            ]
        )
        == 2
    )
    assert "sum_2d_scaled not a feature of the requested feature sets (spend)" in capsys.readouterr().err
    assert not refused.exists()
    assert (
        main(
            [
                "training-set",
                pipeline,
                "--manifest",
                f"{picked}.manifest.json",
                "--out",
                str(refused),
                "--selected-features",
                str(selection),
            ]
        )
        == 2
    )
    assert "--selected-features: these come from the manifest" in capsys.readouterr().err


def test_training_set_accepts_a_pandas_spine_with_naive_timestamps(spark, shop, tmp_path):
    """A spine written by pandas has naive datetimes, which Spark reads as TIMESTAMP_NTZ: they are
    read as wall-clock times in the pipeline's time zone (UTC here), giving the same training set
    as the same spine with zoned timestamps, and a rebuild from the manifest matches it."""
    import pandas as pd

    frame = pd.DataFrame(SPINE, columns=["label_id", "customer", "label_ts", "label"])
    spine = tmp_path / "spine.parquet"
    frame.to_parquet(spine, index=False, coerce_timestamps="us")  # Spark cannot read nanosecond parquet
    assert dict(spark.read.parquet(str(spine)).dtypes)["label_ts"] == "timestamp_ntz"
    pipeline, project = str(shop["pipeline"]), shop["project"]
    zoned, naive = project / "warehouse" / "ts" / "zoned", project / "warehouse" / "ts" / "naive"
    assert main(["training-set", pipeline, "--spine", shop["spine"], "--features", "spend", "--out", str(zoned)]) == 0
    assert main(["training-set", pipeline, "--spine", str(spine), "--features", "spend", "--out", str(naive)]) == 0
    from_pandas = _read(spark, naive)
    assert dict(from_pandas.dtypes)["label_ts"] == "timestamp"
    # pandas stores the integer columns as int64; everything else must be the zoned spine's result
    normalised = from_pandas.withColumn("label_id", from_pandas["label_id"].cast("int")).withColumn(
        "label", from_pandas["label"].cast("int")
    )
    assert_df_equality(normalised, _read(spark, zoned), ignore_row_order=True, ignore_nullable=True)
    rebuilt = project / "warehouse" / "ts" / "naive_rebuilt"
    assert main(["training-set", pipeline, "--manifest", f"{naive}.manifest.json", "--out", str(rebuilt)]) == 0
    assert_df_equality(_read(spark, rebuilt), _read(spark, naive), ignore_row_order=True)


def test_training_set_rerun_with_the_same_inputs_writes_nothing(spark, shop, capsys):
    """The same request again is a no-op (no new Delta version, the manifest file untouched);
    a changed request replaces the training set under the next generation of its run key."""
    pipeline, project = str(shop["pipeline"]), shop["project"]
    out = project / "warehouse" / "ts" / "rerun"
    args = ["training-set", pipeline, "--spine", shop["spine"], "--features", "spend", "--out", str(out)]
    manifest = Path(f"{out}.manifest.json")

    def history() -> list[int]:
        return [r["version"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{out}`").collect()]

    assert main(args) == 0
    first_manifest, first_rows = manifest.read_bytes(), _read(spark, out).collect()
    assert history() == [0]
    assert main(args) == 0
    assert history() == [0]
    assert manifest.read_bytes() == first_manifest
    assert sorted(_read(spark, out).collect()) == sorted(first_rows)
    assert main([*args, "--ttl", "1d"]) == 0  # another request: a new version, a new manifest
    assert history() == [1, 0]
    assert json.loads(manifest.read_text())["options"]["ttl_seconds"] == 86400
    capsys.readouterr()


def test_training_set_leaves_out_warming_up_labels_by_default(spark, shop, capsys):
    """Issue 18: a label time whose longest window (2 days) reaches before the feature table's
    first event date (2024-01-01 00:00) is left out by default, counted, and kept on request."""
    project, pipeline = shop["project"], str(shop["pipeline"])
    out, kept = project / "warehouse" / "ts" / "warm_default", project / "warehouse" / "ts" / "warm_kept"
    args = ["training-set", pipeline, "--spine", shop["spine"], "--features", "spend"]
    assert main([*args, "--out", str(out)]) == 0
    assert "less 1 with windows still warming up" in capsys.readouterr().out
    assert main([*args, "--out", str(kept), "--include-warming-up"]) == 0
    # by hand: label 1 at 01-02 09:00 - 2d = 12-31 09:00 < 01-01 00:00 (left out); label 6 at
    # 01-03 11:00 - 2d = 01-01 11:00 and labels 2, 3, 4 are complete; label 5 (null time) stays
    ids = sorted(r["label_id"] for r in _read(spark, out).collect())
    assert ids == [2, 2, 3, 4, 5, 6]
    assert sorted(r["label_id"] for r in _read(spark, kept).collect()) == [1, 2, 2, 3, 4, 5, 6]
    # the rows kept by default are exactly the same rows of the full training set
    assert_df_equality(
        _read(spark, out), _read(spark, kept).where("label_id != 1"), ignore_row_order=True, ignore_nullable=True
    )
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["warming_up_excluded"] == 1 and manifest["output"]["rows"] == len(SPINE) - 1
    assert manifest["options"]["include_warming_up"] is False
    fs = manifest["feature_sets"][0]
    assert (fs["first_history"], fs["warmup_seconds"]) == ("2024-01-01", 2 * 86400)
    assert json.loads(Path(f"{kept}.manifest.json").read_text())["warming_up_excluded"] == 0
    # a rebuild from the manifest applies the same rule and gives the same rows back
    rebuilt = project / "warehouse" / "ts" / "warm_rebuilt"
    assert main(["training-set", pipeline, "--manifest", f"{out}.manifest.json", "--out", str(rebuilt)]) == 0
    assert_df_equality(_read(spark, rebuilt), _read(spark, out), ignore_row_order=True, ignore_nullable=True)


def test_training_set_holds_no_internal_column_unless_asked(spark, shop, capsys):
    """The feature table's bookkeeping columns (``_known_at``, ``_feature_set_version``) drive the
    join but never reach the training set: by default it holds the spine's columns and the
    features only (values equal to the debugging build's, which the tests above check by hand);
    a rebuild from its manifest matches it, and a spine with a ``_`` column is refused."""
    pipeline, project = str(shop["pipeline"]), shop["project"]
    assert {"_known_at", "_feature_set_version"} <= set(_read(spark, shop["features"]).columns)
    plain, debug = project / "warehouse" / "ts" / "plain", project / "warehouse" / "ts" / "debug"
    args = ["training-set", pipeline, "--spine", shop["spine"], "--features", "spend", "--known-at", "--ttl", "2d"]
    assert main([*args, "--out", str(plain)]) == 0
    assert main([*args, "--out", str(debug), "--keep-internal-columns"]) == 0
    user = ["label_id", "customer", "label_ts", "label", "n_2d", "sum_2d"]
    assert _read(spark, plain).columns == user
    assert _read(spark, debug).columns == [*user, "_spend_event_time", "_spend_known_at"]
    assert_df_equality(_read(spark, plain), _read(spark, debug).select(*user), ignore_row_order=True)
    manifest = json.loads(Path(f"{plain}.manifest.json").read_text())
    assert manifest["options"]["keep_internal_columns"] is False
    assert [c.split()[0] for c in manifest["output"]["columns"]] == user
    rebuilt = project / "warehouse" / "ts" / "plain_rebuilt"
    assert main(["training-set", pipeline, "--manifest", f"{plain}.manifest.json", "--out", str(rebuilt)]) == 0
    assert_df_equality(_read(spark, rebuilt), _read(spark, plain), ignore_row_order=True)
    capsys.readouterr()

    spine = project / "spine_internal"
    spark.createDataFrame(SPINE, SPINE_SCHEMA).withColumnRenamed("label", "_label").write.format("delta").save(
        str(spine)
    )
    refused = project / "warehouse" / "ts" / "refused_spine"
    assert main(["training-set", pipeline, "--spine", str(spine), "--features", "spend", "--out", str(refused)]) == 2
    assert "column(s) _label start with '_'" in capsys.readouterr().err
    assert not refused.exists()
