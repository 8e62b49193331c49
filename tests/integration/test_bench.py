"""Smoke runs of the benchmark suite: it runs, and the point-in-time methods agree.

Timings are never asserted (they belong to scripts/bench.py's printed table). What is checked:
the compared point-in-time methods return the same rows as featuremill's join, which itself is
checked against an independent DuckDB ASOF JOIN here; the window-feature plan; the table layout.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from featuremill.bench import common, floor, suite
from tests.conftest import ROOT


def test_parse_size_accepts_suffixes_and_plain_numbers():
    assert [common.parse_size(x) for x in ("1M", "5m", "20M", "20000", "50k", "2.5M")] == [
        1_000_000,
        5_000_000,
        20_000_000,
        20_000,
        50_000,
        2_500_000,
    ]
    with pytest.raises(ValueError):
        common.parse_size("five")
    assert suite.SuiteOptions(events=5_000_000).curve() == [1_000_000, 5_000_000]
    assert suite.SuiteOptions(events=20_000).curve() == [20_000]
    # sizes given are all run, above --events too (the 5M figures and the 20M end to end in one run)
    assert suite.SuiteOptions(events=5_000_000, scale_sizes=(1_000_000, 20_000_000)).curve() == [
        1_000_000,
        5_000_000,
        20_000_000,
    ]
    assert suite.SuiteOptions(events=20_000_000, scale_sizes=(1_000_000,)).curve() == [1_000_000, 20_000_000]


@pytest.fixture(scope="module")
def smoke_report(spark, tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    # 3,000 events: a spine of ~750 rows (a quarter of the events), over the 500 asserted below
    options = suite.SuiteOptions(events=3_000, days=8, sections=("pit", "windows"), runs=1, warmup=0, workdir=str(work))
    return suite.run_suite(spark, options), work


@pytest.mark.slow  # shares smoke_report: one suite run of the pit and windows sections (minutes)
def test_bench_pit_methods_agree_with_each_other_and_with_duckdb(spark, smoke_report):
    import duckdb

    report, work = smoke_report
    pit = report["sections"]["pit"]
    assert pit["results_agree"] is True
    joined = {m["method"] for m in pit["methods"] if m["checksum"] is not None}
    assert joined == {"window", "last_ignorenulls", "feast_range_row_number", "feast_template"}
    assert all(m["rows"] == pit["spine_rows"] for m in pit["methods"] if m["rows"] is not None)
    assert pit["spine_rows"] > 500

    # Independent reference: DuckDB's ASOF JOIN over the same Parquet inputs (latest f.ts <= s.ts).
    from featuremill.bench.data import PIT_FEATURES
    from featuremill.bench.pit import PitBenchData, method_frames

    base = work / "pit_3000"
    data = PitBenchData(str(base / "features"), str(base / "spine"), 0, 0, 0, 0, feature_columns=PIT_FEATURES)
    ours = (
        method_frames(spark, data)["window"]()
        .select("label_id", *PIT_FEATURES)
        .toPandas()
        .sort_values("label_id")
        .reset_index(drop=True)
    )
    con = duckdb.connect()
    ref = con.execute(f"""
        SELECT s.label_id, f.f_sum_7d, f.f_count_7d, f.f_mean_30d
        FROM read_parquet('{base}/spine/*.parquet') s
        ASOF LEFT JOIN read_parquet('{base}/features/*.parquet') f
          ON s.entity_id = f.entity_id AND s.label_ts >= f.ts
        ORDER BY s.label_id""").df()
    assert len(ref) == len(ours) == pit["spine_rows"]
    assert ours["label_id"].tolist() == ref["label_id"].tolist()
    assert ref["f_count_7d"].isna().sum() > 0  # some labels come before any history
    for c in PIT_FEATURES:
        assert ours[c].isna().tolist() == ref[c].isna().tolist(), c
        both = ours[c].notna()
        assert (ours.loc[both, c] - ref.loc[both, c]).abs().max() < 1e-9, c


@pytest.mark.slow  # shares smoke_report: one suite run of the pit and windows sections (minutes)
def test_bench_windows_plan_and_report_rendering(smoke_report, tmp_path):
    report, _ = smoke_report
    windows = report["sections"]["windows"]
    assert windows["plan_12"]["Exchange"] == 1
    assert windows["plan_12"]["Sort"] == 1
    assert len(windows["features_12"]) == 12
    assert {f.split("_")[0] for f in windows["features_12"]} == {"count", "sum", "mean", "stddev", "min", "max"}
    assert {f.split("_")[1] for f in windows["features_12"]} == {"1h", "1d", "7d", "30d"}
    text = suite.render(report)
    for figure in ("identical results", "Feast Spark template", "floor", "12 rolling features", "1 Exchange, 1 Sort"):
        assert figure in text
    json_path, md_path = suite.write_report(report, str(tmp_path))
    loaded = json.loads(json_path.read_text())
    assert loaded["machine_before"]["cpus"] >= 1
    assert loaded["summary"][0]["met"] is True
    assert md_path.read_text() == text
    again = suite.rederive(loaded)["summary"]  # --render recomputes the same verdicts from the JSON
    assert [(r["figure"], r["met"]) for r in again] == [(r["figure"], r["met"]) for r in report["summary"]]


def test_bench_command_rejects_unknown_sections(capsys):
    from featuremill.cli import main

    assert main(["bench", "--events", "lots"]) == 2
    assert "cannot read 'lots' as a size" in capsys.readouterr().err
    assert main(["bench", "--sections", "pit,speed"]) == 2
    assert "unknown section 'speed'" in capsys.readouterr().err


DEMO_OUTPUT = """demo: 200,000 events over 56 days ... finished in 219s

time per step:
  start Spark                5.4 s
  generate data             11.4 s
  ingest, history           30.7 s
  features, history         33.5 s
  model (fit + select)      56.3 s
  ingest, last day          26.3 s
  features, last day        30.9 s
  quality reports           24.5 s

quality reports (profiles and drift, self-contained HTML + JSON in reports/demo/):
"""


def test_demo_step_seconds_reads_every_step_and_the_figure_says_met_or_not():
    from featuremill.bench.demo import STEPS, step_seconds

    steps = step_seconds(DEMO_OUTPUT)
    assert tuple(steps) == STEPS and steps["model (fit + select)"] == 56.3
    with pytest.raises(ValueError, match="no 'time per step:' block"):
        step_seconds("finished in 219s")
    with pytest.raises(ValueError, match="not a step time line"):
        step_seconds(DEMO_OUTPUT.replace("  ingest, last day          26.3 s", "  ingest, last day  slow"))
    for wall, met in [(247.0, False), (179.0, True)]:
        report = {
            "options": {"events": 1},
            "sections": {"demo": {"ok": True, "wall_s": wall, "steps": steps, "steps_s": 219.0}},
        }
        (row,) = suite.summary_rows(report)
        assert row["figure"].startswith("Demo (") and row["target"] == "< 180 s" and row["met"] is met
        assert row["measured"] == f"{wall:.0f} s (steps 219 s)"
    failed = suite.summary_rows({"options": {}, "sections": {"demo": {"ok": False, "wall_s": 12.0}}})
    assert failed[0]["met"] is False and failed[0]["measured"] == "FAILED after 12 s"


def test_summary_rows_scaling_is_events_per_s_at_the_largest_size_over_the_smallest():
    def size(events, seconds):
        return {"events": events, "events_per_s": events / seconds, "s_per_million": seconds / (events / 1e6)}

    for big_s, ratio, met in [(2_000.0, 0.8, True), (2_500.0, 0.64, False), (500.0, 3.2, True)]:
        sizes = [size(1_000_000, 80.0), size(20_000_000, big_s)]
        e2e = {"sizes": sizes, "cost_spread": 1.0, "cost_largest_to_smallest": 1.0}
        rows = suite.summary_rows({"options": {}, "sections": {"e2e": e2e}})
        (row,) = [r for r in rows if r["figure"] == "Scaling: events/s at 20M / events/s at 1M"]
        assert row["target"] == ">= 0.8x" and row["met"] is met
        assert row["measured"] == f"{ratio:.2f}x"


def test_counted_work_counts_each_blocks_jobs_and_commits(spark, tmp_path):
    from featuremill.bench.pipeline import counted_work

    table = str(tmp_path / "warehouse" / "t")
    with counted_work(spark, str(tmp_path / "warehouse"), "test-count") as first:
        spark.range(3).collect()  # one job
        spark.range(3).write.format("delta").save(table)
        spark.range(3).write.format("delta").mode("append").save(table)
    with counted_work(spark, str(tmp_path / "warehouse"), "test-count") as second:
        spark.range(3).collect()
    assert first["delta_commits"] == 2 and second["delta_commits"] == 0
    assert second["spark_jobs"] == 1  # the first block's jobs, under the same tag, are not counted again
    assert first["spark_jobs"] > 1  # the collect and the writes' jobs


def test_counted_work_peak_heap_covers_an_array_held_in_the_block(spark, tmp_path):
    from featuremill.bench.pipeline import counted_work

    size = 128 * 2**20
    sc = spark.sparkContext
    with counted_work(spark, str(tmp_path / "warehouse"), "test-heap") as work:
        held = sc._gateway.new_array(sc._jvm.byte, size)  # lives in the driver JVM's heap until the block ends
        assert len(held) == size
        time.sleep(1.2)  # the heap is sampled every 0.5 s
    del held
    assert (
        size
        <= work["peak_heap_bytes"]
        <= work["max_heap_bytes"]
        <= int(sc._jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getMax())
    )


def test_summary_rows_end_to_end_give_the_last_runs_peak_driver_heap():
    def size(events, last_run):
        return {"events": events, "events_per_s": events / 80.0, "s_per_million": 80.0, "last_run": last_run}

    heap = {"peak_driver_heap_bytes": 1536 * 2**20, "driver_max_heap_bytes": 4 * 2**30}
    e2e = {"sizes": [size(1_000_000, heap), size(5_000_000, {})], "cost_spread": 1.0, "cost_largest_to_smallest": 1.0}
    rows = suite.summary_rows({"options": {}, "sections": {"e2e": e2e}})
    measured = {r["figure"]: r["measured"] for r in rows if r["figure"].startswith("End to end (ingest")}
    assert measured == {
        "End to end (ingest + features), 1M events": "12,500 events/s, 80.0 s per 1M events, "
        "peak driver heap 1,536 MiB of 4,096 MiB",
        # a report written before the figure existed has no heap in its last run
        "End to end (ingest + features), 5M events": "62,500 events/s, 80.0 s per 1M events",
    }


def test_summary_rows_driver_gives_the_childs_peak_heap_and_its_memory_setting():
    def driver():
        return {"ok": True, "events": 5_000_000, "driver_memory": "1g", "jvm_max_heap_mib": 1024, "seconds": 652.4}

    with_peak = {**driver(), "result": {"peak_driver_heap_bytes": 900 * 2**20, "driver_max_heap_bytes": 1017 * 2**20}}
    rows = suite.summary_rows({"options": {}, "sections": {"driver": with_peak}})
    assert [(r["figure"], r["measured"], r["met"]) for r in rows] == [
        (
            "Driver memory: end-to-end run with spark.driver.memory=1g",
            "completed at 5M events with spark.driver.memory=1g (peak heap in use 900 MiB of 1,017 MiB, 652s); "
            "20M not run at this size",
            None,
        )
    ]
    # a report written before the child recorded its peak
    rows = suite.summary_rows({"options": {}, "sections": {"driver": {**driver(), "driver_memory": "2g"}}})
    assert [(r["figure"], r["measured"]) for r in rows] == [
        (
            "Driver memory: end-to-end run with spark.driver.memory=2g",
            "completed at 5M events with spark.driver.memory=2g (JVM heap 1024 MiB, 652s); 20M not run at this size",
        )
    ]


@pytest.mark.slow
def test_bench_pipeline_sections_run_the_real_jobs(spark, tmp_path):
    options = suite.SuiteOptions(
        events=1_500,
        days=5,
        sections=("e2e", "incremental", "landing"),
        runs=1,
        warmup=0,
        workdir=str(tmp_path / "work"),
        landing_events=1_000,
        landing_days=4,
    )
    report = suite.run_suite(spark, options)
    e2e = report["sections"]["e2e"]["sizes"]
    assert [s["events"] for s in e2e] == [1_500]
    run = e2e[0]["last_run"]
    assert run["rows_read"] == e2e[0]["raw_rows"] == run["rows_valid"] + run["rows_quarantined"]
    assert run["rows_quarantined"] > 0 and set(run["feature_rows"]) == {"customer_activity", "product_demand"}
    # the commits counted per step are every version Delta's history holds for the warehouse's tables
    warehouse = Path(report["sections"]["e2e"]["warehouse_of"][1_500])
    history_rows = sum(
        spark.sql(f"DESCRIBE HISTORY delta.`{log_dir.parent}`").count() for log_dir in warehouse.rglob("_delta_log")
    )
    assert run["ingest_delta_commits"] > 0 and run["features_delta_commits"] > 0
    assert run["ingest_delta_commits"] + run["features_delta_commits"] == history_rows
    assert run["ingest_spark_jobs"] > 0 and run["features_spark_jobs"] > 0
    assert 0 < run["peak_driver_heap_bytes"] and run["driver_max_heap_bytes"] > 0
    table = suite.render(report)
    assert "peak driver heap MiB (last run)" in table
    assert "ingest: Spark jobs / Delta commits" in table
    assert f"| {run['ingest_spark_jobs']:,} / {run['ingest_delta_commits']:,} |" in table

    # the hand-written floor ran beside featuremill and wrote the same six tables, row for row
    size = report["sections"]["e2e"]["sizes"][0]
    assert size["floor_differences"] == {name: 0 for name in floor.TABLES}
    assert len(size["floor_runs_s"]) == 1 and size["over_floor"] > 0
    assert "featuremill ingest + features / hand-written floor (same tables), 1500 events" in table
    floor_root = report["sections"]["e2e"]["floor_of"][1_500]
    featuremill_root = str(warehouse / "demo")
    for name, expected_rows in [
        ("features/customer_activity", run["feature_rows"]["customer_activity"]),
        ("features/product_demand", run["feature_rows"]["product_demand"]),
        ("validated/transactions", run["rows_valid"]),
    ]:
        assert spark.read.format("delta").load(f"{floor_root}/{name}").count() == expected_rows > 0
    quarantined = spark.read.format("delta").load(f"{floor_root}/quarantine").where("source = 'transactions'")
    assert quarantined.count() == run["rows_quarantined"]
    # the comparison sees a single changed value: one row in each table only
    one = spark.read.format("delta").load(f"{floor_root}/features/customer_activity").orderBy("customer_id", "event_ts")
    one = one.first()
    spark.sql(
        f"UPDATE delta.`{floor_root}/features/customer_activity` SET amount_sum_7d_ema = amount_sum_7d_ema + 1e-9 "
        f"WHERE customer_id = {one['customer_id']} AND event_ts = TIMESTAMP'{one['event_ts']}'"
    )
    changed = floor.differences(
        spark, floor_root=floor_root, featuremill_root=featuremill_root, tables=["features/customer_activity"]
    )
    assert changed == {"features/customer_activity": 2}
    inc = report["sections"]["incremental"]
    full = inc["timings"]["full (every day)"]["detail"]["result"]
    one = inc["timings"]["incremental (last day)"]["detail"]["result"]
    assert full["rows_out"] == sum(run["feature_rows"].values())  # same data, same feature rows
    assert full["compute_start"] == "2026-09-01"
    assert "2026-09-01" < one["compute_start"] <= inc["new_day"] == "2026-09-05"
    assert 0 < one["rows_out"] < full["rows_out"] and one["events_read"] <= full["events_read"]
    assert inc["ratio"] > 0

    # the same raw rows in 4 daily landing folders or in one give the same feature rows but for
    # _known_at (the section raises otherwise); the one-folder data has a single landing date
    landing = report["sections"]["landing"]
    daily = landing["timings"]["daily"]["detail"]["result"]
    one = landing["timings"]["one date"]["detail"]["result"]
    assert landing["raw_rows"] == daily["rows_read"] == one["rows_read"] > 1_000
    assert daily["feature_rows"] == one["feature_rows"] and sum(one["feature_rows"].values()) > 0
    assert landing["feature_rows_in_one_layout_only"] == {"customer_activity": 0, "product_demand": 0}
    one_folder = Path(options.workdir) / "e2e" / "data" / "one-date-1000-4" / "transactions"
    assert [p.name for p in one_folder.iterdir() if p.is_dir()] == ["event_date=2026-09-04"]
    assert landing["ratio"] > 0 and "Landing dates: 4 daily folders / the same rows in one" in table


# ------------------------------------------------------------------ the server sections (issues 15, 16)
BENCH_REDIS_PORT = int(os.environ.get("FEATUREMILL_BENCH_REDIS_PORT", "6397"))
BENCH_KAFKA_PORT = int(os.environ.get("FEATUREMILL_BENCH_KAFKA_PORT", "19292"))
BENCH_SERVE_PORT = int(os.environ.get("FEATUREMILL_BENCH_SERVE_PORT", "6568"))


@pytest.fixture(scope="module")
def bench_redis():
    """A real redis-server from scripts/redis.sh on its own port (stopped only if started here)."""
    script = str(ROOT / "scripts" / "redis.sh")
    already = subprocess.run([script, "status", str(BENCH_REDIS_PORT)]).returncode == 0
    if not already:
        subprocess.run([script, "start", str(BENCH_REDIS_PORT)], check=True, timeout=300)
    yield f"127.0.0.1:{BENCH_REDIS_PORT}"
    if not already:
        subprocess.run([script, "stop", str(BENCH_REDIS_PORT)], check=False)


@pytest.fixture(scope="module")
def bench_kafka():
    """A real Kafka broker from scripts/kafka.sh on its own ports (stopped only if started here)."""
    env = dict(os.environ, KAFKA_PORT=str(BENCH_KAFKA_PORT), KAFKA_CONTROLLER_PORT=str(BENCH_KAFKA_PORT + 1))
    script = str(ROOT / "scripts" / "kafka.sh")
    already = subprocess.run([script, "status"], env=env).returncode == 0
    if not already:
        subprocess.run([script, "start"], check=True, env=env, timeout=300)
    yield f"127.0.0.1:{BENCH_KAFKA_PORT}"
    if not already:
        subprocess.run([script, "stop"], check=False, env=env)


@pytest.mark.server
def test_bench_serving_section_prints_every_figure(spark, tmp_path, bench_redis):
    from featuremill.bench.data import spec_for, typed_events
    from featuremill.bench.serving import ServingOptions

    serving = ServingOptions(redis=bench_redis, http_port=BENCH_SERVE_PORT, lookups=20)
    options = suite.SuiteOptions(
        events=400, days=5, sections=("serving",), runs=1, warmup=0, workdir=str(tmp_path / "w"), serving=serving
    )
    report = suite.run_suite(spark, options)
    v = report["sections"]["serving"]
    # independent count of the entities: distinct customers of the generated valid events (pandas)
    customers = typed_events(spark, spec_for(400, days=5)).select("customer_id").toPandas()["customer_id"].nunique()
    assert v["entities"] == customers > 0 and v["stores"] == ["sqlite", "redis"]
    for store in ("sqlite", "redis"):
        m = v["materialization"][store]
        assert m["entities"] == customers
        assert m["featuremill_rows_per_s"] > 0 and m["feast_rows_per_s"] > 0 and m["feast_over_featuremill"] > 0
        for path in ("sdk", "http"):
            for name in ("1 entity", f"{v['batch']} entities"):
                x = v["latency"][store][path][name]
                assert x["n"] == 20 and 0 < x["p50_ms"] <= x["p99_ms"] <= x["max_ms"], (store, path, name)
                assert x["found"] == x["asked"] == 20 * (1 if name == "1 entity" else v["batch"])
    i = v["incremental"]
    assert i["written_entities"] == i["changed_entities"] == [1] and i["ratio"] > 0
    figures = [r["figure"] for r in report["summary"]]
    assert len(figures) == 2 + 1 + 8  # materialization x2 stores, incremental, latency 2 stores x 2 paths x 2
    redis_target = [r for r in report["summary"] if r["figure"] == "Online latency, redis, Python SDK, 1 entity"]
    assert len(redis_target) == 1 and redis_target[0]["target"] == "p99 < 10 ms"
    assert isinstance(redis_target[0]["met"], bool)
    text = suite.render(report)
    for heading in ("### Online serving", "feast materialize", "incremental / full", "HTTP (feast serve)", ">= 5x"):
        assert heading in text


@pytest.mark.server
def test_bench_streaming_section_prints_freshness_and_rate(spark, tmp_path, bench_kafka):
    from featuremill.bench.streaming import StreamingOptions

    streaming = StreamingOptions(
        bootstrap=bench_kafka, rate=40, rates=(40,), step_s=3, drain_s=300, warmup_s=0, customers=30
    )
    options = suite.SuiteOptions(
        events=1_000, sections=("streaming",), runs=1, warmup=0, workdir=str(tmp_path / "w"), streaming=streaming
    )
    report = suite.run_suite(spark, options)
    v = report["sections"]["streaming"]
    assert [s["rate"] for s in v["steps"]] == [40]
    step = v["steps"][0]
    assert step["drained"] and step["produced"] > 0 and v["producer_errors"] == 0
    # independent count: the stream's validated table holds every produced event exactly once
    validated = spark.read.format("delta").load(
        str(tmp_path / "w" / "streaming" / "warehouse" / "benchstream" / "stream" / "activity" / "validated")
    )
    assert validated.count() == validated.select("event_id").distinct().count() == 100 + step["produced"]
    assert step["arrived"] == step["produced"]
    assert 0 < step["p50_s"] <= step["p99_s"] <= step["max_s"] and step["batches"] >= 1
    rows = {r["figure"].split(",")[0].split(":")[0]: r for r in report["summary"]}
    assert set(rows) == {"Streaming freshness", "Streaming"}
    assert rows["Streaming freshness"]["target"] == "p99 < 10 s"
    assert rows["Streaming"]["target"] == ">= 5,000 events/s" and rows["Streaming"]["met"] is False  # 40/s
    assert "### Streaming" in suite.render(report)
