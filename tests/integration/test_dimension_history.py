"""Dimensions as of the event: full, daily, backfill and replay runs; the join's plan; the broadcast guard.

A tiny pipeline whose two dimensions land as dated snapshots (``snapshot_date=YYYY-MM-DD``).
Customer 1's segment changes from gold to platinum, and product 10's category from toys to books,
in the snapshot of day 3. Customer 2 first appears in that snapshot, but buys on day 2. The
expected rows are written out by hand from the documented semantics: a snapshot landed on day D
applies from D 00:00; before a key's first snapshot its attributes are null.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import string
from pathlib import Path

import pytest
from chispa import assert_df_equality

from featuremill.bench.common import explain_text
from featuremill.cli import main
from featuremill.config import load_pipeline
from featuremill.core.errors import BroadcastTooLargeError, TrainingSetError
from featuremill.pipelines.backfill import run_backfill
from featuremill.pipelines.build_features import _dimension_frame, build_feature_frame, run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.pipelines.replay import replay_run
from featuremill.pipelines.training_set import _dimension_history
from featuremill.storage import io

# Every test here runs the pipeline's jobs (ingest, features, backfill, replay): whole suite only.
pytestmark = pytest.mark.slow

DAYS = [dt.date(2026, 9, 1) + dt.timedelta(days=i) for i in range(4)]

PIPELINE = """\
pipeline: asof
sources:
  tx:
    kind: events
    format: csv
    path: tx
    partition_column: landing_date
    event_time: ts
    key: id
    columns:
      id: string
      customer: {{type: bigint, nullable: false}}
      product: bigint
      ts: {{type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}}
  customers:
    kind: dimension
    format: csv
    path: customers
    partition_column: snapshot_date
    key: customer
    columns:
      customer: bigint
      segment: string
  products:
    kind: dimension
    format: csv
    path: products
    partition_column: snapshot_date
    key: product
    max_broadcast_mb: {products_mb}
    columns:
      product: bigint
      category: string
      notes: string
feature_sets:
  - name: cust
    description: customer features
    owner: tests
    version: 1
    source: tx
    entity: customer
    joins:
      - {{dimension: products, on: product, columns: [category], level: event{products_join}}}
      - {{dimension: customers, on: customer, columns: [segment], level: entity}}
    features:
      - {{name: n_2d, function: count, window: 2d, description: purchases in 2 days}}
      - {{name: toys_2d, function: count, window: 2d, where: {{column: category, equals: toys}}, description: toys}}
"""

# (customer, event time) -> (segment, toys_2d), from the snapshots of days 1 and 3 by hand.
EXPECTED = {
    (1, dt.datetime(2026, 9, 1, 10)): ("gold", 1),
    (1, dt.datetime(2026, 9, 2, 10)): ("gold", 2),
    (2, dt.datetime(2026, 9, 2, 12)): (None, 1),  # before customer 2's first snapshot: no attribute
    (1, dt.datetime(2026, 9, 3, 10)): ("platinum", 1),  # day 3's purchase is of books already
    (1, dt.datetime(2026, 9, 4, 10)): ("platinum", 0),
    (2, dt.datetime(2026, 9, 4, 12)): ("silver", 0),  # day 2's toy is exactly 2 days back: outside
}


def _project(root: Path, *, products_mb: float = 16, products_join: str = "", notes: int = 0) -> Path:
    (root / "conf" / "pipelines").mkdir(parents=True)
    (root / "conf" / "env").mkdir(parents=True)
    (root / "conf" / "env" / "local.yaml").write_text("warehouse: warehouse\ndata_root: data\n")
    path = root / "conf" / "pipelines" / "asof.yaml"
    path.write_text(PIPELINE.format(products_mb=products_mb, products_join=products_join))
    rng = random.Random(7)

    def write(folder: str, header: str, rows: list[str]) -> None:
        target = root / "data" / folder
        target.mkdir(parents=True, exist_ok=True)
        (target / "part-0.csv").write_text(header + "\n" + "".join(r + "\n" for r in rows))

    def note() -> str:  # an unused wide column: large on disk, never joined
        return "".join(rng.choice(string.ascii_letters) for _ in range(notes))

    write("customers/snapshot_date=2026-09-01", "customer,segment", ["1,gold"])
    write("customers/snapshot_date=2026-09-03", "customer,segment", ["1,platinum", "2,silver"])
    write("products/snapshot_date=2026-09-01", "product,category,notes", [f"10,toys,{note()}"])
    write("products/snapshot_date=2026-09-03", "product,category,notes", [f"10,books,{note()}"])
    events = {
        DAYS[0]: ["a1,1,10,2026-09-01 10:00:00"],
        DAYS[1]: ["a2,1,10,2026-09-02 10:00:00", "b1,2,10,2026-09-02 12:00:00"],
        DAYS[2]: ["a3,1,10,2026-09-03 10:00:00"],
        DAYS[3]: ["a4,1,10,2026-09-04 10:00:00", "b2,2,10,2026-09-04 12:00:00"],
    }
    for day, lines in events.items():
        write(f"tx/landing_date={day}", "id,customer,product,ts", lines)
    return path


def _rows(df) -> dict:
    return {(r["customer"], r["ts"]): (r["segment"], r["toys_2d"]) for r in df.collect()}


def _features(spark, config):
    return spark.read.format("delta").load(config.tables.features("cust"))


@pytest.fixture(scope="module")
def full_run(spark, tmp_path_factory) -> Path:
    """The default project after one full run (ingest, then features, over every day): built once,
    copied by each test that starts from it (its tables are relative to the project folder)."""
    root = tmp_path_factory.mktemp("asof_full")
    config = load_pipeline(_project(root), env="local")
    run_ingest(spark, config, start=DAYS[0], end=DAYS[-1])
    run_features(spark, config, start=DAYS[0], end=DAYS[-1])
    return root


def _copy_of(full_run: Path, tmp_path: Path) -> Path:
    """A private copy of the full run's project; its root."""
    return Path(shutil.copytree(full_run, tmp_path / "project"))


def _pipeline(project: Path) -> Path:
    return project / "conf" / "pipelines" / "asof.yaml"


def test_as_of_dimensions_in_a_full_run(spark, full_run, tmp_path):
    config = load_pipeline(_pipeline(_copy_of(full_run, tmp_path)), env="local")
    assert _rows(_features(spark, config)) == EXPECTED


def test_as_of_dimensions_in_daily_runs_and_a_replay(spark, tmp_path):
    config = load_pipeline(_project(tmp_path), env="local")
    runs = {}
    for day in DAYS:
        run_ingest(spark, config, start=day, end=day)
        runs[day] = run_features(spark, config, start=day, end=day)[0].run_id
    assert _rows(_features(spark, config)) == EXPECTED
    # Day 2's run, replayed after day 3's change reached the dimension history, still sees gold.
    replayed = replay_run(spark, config, run_id=runs[DAYS[1]])[0]
    day2 = {k: v for k, v in EXPECTED.items() if k[1].date() == DAYS[1]}
    assert _rows(spark.read.format("delta").load(replayed.output_path)) == day2


def test_as_of_dimensions_in_a_backfill(spark, tmp_path):
    config = load_pipeline(_project(tmp_path), env="local")
    run_backfill(spark, config, start=DAYS[0], end=DAYS[-1], job="all", chunk_days=2)
    assert _rows(_features(spark, config)) == EXPECTED
    # The dimension history itself: one version per change, closed at the next snapshot's date.
    history = spark.read.format("delta").load(config.tables.validated("customers"))
    assert {(r["customer"], r["segment"], r["valid_from"], r["valid_to"]) for r in history.collect()} == {
        (1, "gold", dt.datetime(2026, 9, 1), dt.datetime(2026, 9, 3)),
        (1, "platinum", dt.datetime(2026, 9, 3), None),
        (2, "silver", dt.datetime(2026, 9, 3), None),
    }


def test_as_of_latest_joins_the_current_version(spark, tmp_path):
    config = load_pipeline(_project(tmp_path, products_join=", as_of: latest"), env="local")
    run_ingest(spark, config, start=DAYS[0], end=DAYS[-1])
    run_features(spark, config, start=DAYS[0], end=DAYS[-1])
    # Every purchase is of books now: no toys, at any time; the segments stay as of the event.
    assert _rows(_features(spark, config)) == {k: (seg, 0) for k, (seg, _) in EXPECTED.items()}


def _frame(spark, config):
    fs = config.feature_set("cust")
    events = spark.read.format("delta").load(config.tables.validated("tx"))
    dims = {j.dimension: _dimension_frame(spark, config, j, {}) for j in fs.joins}
    return build_feature_frame(events, config=config, feature_set=fs, dimensions=dims, start=DAYS[0], end=DAYS[-1])


def test_as_of_join_stays_a_broadcast_join_without_extra_shuffle(spark, full_run, tmp_path):
    config = load_pipeline(_pipeline(_copy_of(full_run, tmp_path)), env="local")
    frame = _frame(spark, config)
    plan = explain_text(frame, "simple")
    assert plan.count("BroadcastHashJoin") == 2, plan
    assert plan.count("BroadcastExchange") == 2, plan
    # the validity range is evaluated on each match of the hash join, not as a separate join
    assert "BroadcastNestedLoopJoin" not in plan and "SortMergeJoin" not in plan, plan
    assert len([line for line in plan.splitlines() if "Exchange hashpartitioning" in line]) == 1, plan
    assert _rows(frame) == EXPECTED


def test_broadcast_guard_measures_the_joined_columns_not_the_files(spark, tmp_path):
    # 4 KiB of unused notes per product row: several KiB of Parquet on disk, while
    # the joined columns (product, category, validity) are about 200 bytes.
    config = load_pipeline(_project(tmp_path, products_mb=0.003, notes=4096), env="local")
    run_ingest(spark, config, start=DAYS[0], end=DAYS[-1])
    assert io.table_size_bytes(spark, config.tables.validated("products")) > 0.003 * 1024 * 1024
    run_features(spark, config, start=DAYS[0], end=DAYS[-1])
    assert _rows(_features(spark, config)) == EXPECTED


def test_broadcast_guard_names_fixes_that_work_and_auto_falls_back_to_sort_merge(spark, tmp_path):
    config = load_pipeline(_project(tmp_path / "refuse", products_mb=0.0001), env="local")
    run_ingest(spark, config, start=DAYS[0], end=DAYS[-1])
    with pytest.raises(BroadcastTooLargeError) as refused:
        run_features(spark, config, start=DAYS[0], end=DAYS[-1])
    message = str(refused.value)
    assert "sources.products.max_broadcast_mb" in message and "broadcast: auto" in message
    assert "entity level" not in message  # an entity-level join goes through the same limit
    assert io.delta_version(spark, config.tables.features("cust")) is None

    config = load_pipeline(
        _project(tmp_path / "auto", products_mb=0.0001, products_join=", broadcast: auto"), env="local"
    )
    run_ingest(spark, config, start=DAYS[0], end=DAYS[-1])
    plan = explain_text(_frame(spark, config), "simple")
    assert plan.count("SortMergeJoin") == 1 and plan.count("BroadcastHashJoin") == 1, plan
    [result] = run_features(spark, config, start=DAYS[0], end=DAYS[-1])
    assert _rows(_features(spark, config)) == EXPECTED
    [logged] = spark.read.format("delta").load(config.tables.run_log).where(f"run_id = '{result.run_id}'").collect()
    assert json.loads(logged["details"])["sort_merge_joins"] == ["products"]


# Training-set spine: (label_id, customer, label time). Expected per row, by hand from the
# snapshots (customer 1: gold from 09-01, platinum from 09-03; customer 2: silver from 09-03) and
# the feature rows of EXPECTED (n_2d as counted from the events): (n_2d, toys_2d, segment as of
# the label time). The feature table's own segment column is as of the feature row's time:
# label 2 uses the feature row of 09-02 10:00 (segment gold there) but gets platinum.
TRAIN_SPINE_SCHEMA = "label_id int, customer bigint, label_ts timestamp"
TRAIN_SPINE = [
    (1, 1, dt.datetime(2026, 9, 2, 9)),
    (2, 1, dt.datetime(2026, 9, 3)),  # exactly when platinum starts: inclusive
    (3, 1, dt.datetime(2026, 9, 2, 23, 59, 59)),  # just before the change
    (4, 1, dt.datetime(2026, 9, 5)),
    (5, 2, dt.datetime(2026, 9, 2, 13)),  # bought before customer 2's first snapshot
    (6, 2, dt.datetime(2026, 9, 4, 12)),
    (7, 9, dt.datetime(2026, 9, 5)),  # no dimension row, no feature row
]
TRAIN_EXPECTED = {
    1: (1, 1, "gold"),
    2: (2, 2, "platinum"),
    3: (2, 2, "gold"),
    4: (2, 0, "platinum"),
    5: (1, 1, None),
    6: (1, 0, "silver"),
    7: (None, None, None),
}


def _training_expected(spark, expected: dict):
    rows = [row + expected[row[0]] for row in TRAIN_SPINE]
    return spark.createDataFrame(rows, TRAIN_SPINE_SCHEMA + ", n_2d bigint, toys_2d bigint, segment string")


def test_training_set_dimension_columns_as_of_the_label_time(spark, full_run, tmp_path, capsys):
    project = _copy_of(full_run, tmp_path)
    pipeline = _pipeline(project)
    config = load_pipeline(pipeline, env="local")
    spine = str(tmp_path / "spine")
    spark.createDataFrame(TRAIN_SPINE, TRAIN_SPINE_SCHEMA).write.format("delta").save(spine)
    out = project / "warehouse" / "training" / "seg"
    base = ["training-set", str(pipeline), "--spine", spine, "--features", "cust", "--include-warming-up"]

    # Error cases first (no output written): an unknown column, an event-level join column.
    assert main(base + ["--out", str(out), "--dimension-columns", "tier"]) == 2
    assert (
        "tier is not a dimension column; the entity-level dimension columns of the requested feature sets are "
        "cust.segment" in capsys.readouterr().err
    )
    assert main(base + ["--out", str(out), "--dimension-columns", "category"]) == 2
    assert "category is joined at event level" in capsys.readouterr().err
    assert main(base + ["--out", str(out), "--dimension-columns", "cust.segment"]) == 0
    built = spark.read.format("delta").load(str(out))
    assert built.columns == ["label_id", "customer", "label_ts", "n_2d", "toys_2d", "segment"]
    assert_df_equality(built, _training_expected(spark, TRAIN_EXPECTED), ignore_row_order=True, ignore_nullable=True)
    manifest = json.loads((project / "warehouse" / "training" / "seg.manifest.json").read_text())
    customers = config.tables.validated("customers")
    recorded = {
        "feature_set": "cust",
        "dimension": "customers",
        "on": ["customer"],
        "columns": ["segment"],
        "dimension_columns": ["segment"],
        "table": customers,
        "delta_version": io.delta_version(spark, customers),
    }
    assert manifest["dimension_columns"] == [recorded]

    # Customer 1 becomes basic in a snapshot of 09-05: a new build sees it from 09-05 00:00 on
    # (label 4), a rebuild from the manifest reads the history as it was and stays identical.
    folder = project / "data" / "customers" / "snapshot_date=2026-09-05"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_text("customer,segment\n1,basic\n2,silver\n")
    run_ingest(spark, config, start=dt.date(2026, 9, 5), end=dt.date(2026, 9, 5), sources=["customers"])
    rebuilt = project / "warehouse" / "training" / "seg_rebuilt"
    manifest_path = str(project / "warehouse" / "training" / "seg.manifest.json")
    assert main(["training-set", str(pipeline), "--manifest", manifest_path, "--out", str(rebuilt)]) == 0
    assert_df_equality(
        spark.read.format("delta").load(str(rebuilt)),
        _training_expected(spark, TRAIN_EXPECTED),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    fresh = project / "warehouse" / "training" / "seg_fresh"
    assert main(base + ["--out", str(fresh), "--dimension-columns", "segment", "--strict"]) == 0
    # --strict: the version valid just before the label time (label 2 at the change: still gold;
    # label 4 at basic's first instant: still platinum); the features use rows strictly before too
    # (label 6 at 09-04 12:00 gets the feature row of 09-02 12:00)
    strict = {**TRAIN_EXPECTED, 2: (2, 2, "gold"), 4: (2, 0, "platinum"), 6: (1, 1, "silver")}
    assert_df_equality(
        spark.read.format("delta").load(str(fresh)),
        _training_expected(spark, strict),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    fresh_default = project / "warehouse" / "training" / "seg_fresh_default"
    assert main(base + ["--out", str(fresh_default), "--dimension-columns", "segment"]) == 0
    assert_df_equality(
        spark.read.format("delta").load(str(fresh_default)),
        _training_expected(spark, {**TRAIN_EXPECTED, 4: (2, 0, "basic")}),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_training_set_dimension_columns_refuse_a_snapshot_without_history(spark, tmp_path):
    config = load_pipeline(_project(tmp_path), env="local")
    table = str(tmp_path / "warehouse" / "snapshot_customers")
    spark.createDataFrame([(1, "gold")], "customer bigint, segment string").write.format("delta").save(table)
    with pytest.raises(TrainingSetError, match="no valid_from / valid_to column.*snapshot of today's values"):
        _dimension_history(spark, config, "customers", table=table)
