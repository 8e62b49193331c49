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
import string
from pathlib import Path

import pytest

from featuremill.bench.common import explain_text
from featuremill.config import load_pipeline
from featuremill.core.errors import BroadcastTooLargeError
from featuremill.pipelines.backfill import run_backfill
from featuremill.pipelines.build_features import _dimension_frame, build_feature_frame, run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.pipelines.replay import replay_run
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


def test_as_of_dimensions_in_a_full_run(spark, tmp_path):
    config = load_pipeline(_project(tmp_path), env="local")
    run_ingest(spark, config, start=DAYS[0], end=DAYS[-1])
    run_features(spark, config, start=DAYS[0], end=DAYS[-1])
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


def test_as_of_join_stays_a_broadcast_join_without_extra_shuffle(spark, tmp_path):
    config = load_pipeline(_project(tmp_path), env="local")
    run_ingest(spark, config, start=DAYS[0], end=DAYS[-1])
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
