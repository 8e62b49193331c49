"""Benchmarks through the real jobs: end to end (ingest + features), incremental vs full, driver memory.

All of them run :func:`featuremill.pipelines.ingest.run_ingest` and
:func:`featuremill.pipelines.build_features.run_features` on the demo pipeline
(``conf/pipelines/demo.yaml``: 3 sources, 2 feature sets, 21 features, quality rules) against
temporary warehouses, with the raw CSV data written by :mod:`featuremill.pipelines.demo_data`.

``python -m featuremill.bench.pipeline --events N --data DIR --warehouse DIR --json OUT`` runs one
end-to-end pass in a fresh process; the driver-memory figure uses it so that
``spark.driver.memory`` really sizes the JVM (it cannot change once a JVM runs).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from featuremill.bench.common import Timed, paired_ratio, time_round_robin
from featuremill.core.run_metrics import tagged_job_count, tagged_jobs
from featuremill.pipelines.demo_data import DemoDataSpec, write_demo_data

log = logging.getLogger(__name__)


def load_demo_config(pipeline: str, *, warehouse: str, data_root: str):
    from featuremill.config import load_pipeline

    return load_pipeline(pipeline, env="local", overrides={"warehouse": warehouse, "data_root": data_root})


#: Sessions that count Spark jobs keep this many in the status store (Spark's default is 1,000,
#: fewer than a pipeline step over many days runs).
RETAINED_JOBS = "100000"


def delta_commit_count(root: str) -> int:
    """Delta commits of every table under ``root``: the numbered JSON files of each ``_delta_log``."""
    return sum(1 for log_dir in Path(root).rglob("_delta_log") for f in log_dir.glob("*.json") if f.stem.isdigit())


class _HeapSampler:
    """Samples the driver JVM's heap in use (``MemoryMXBean``) every ``interval_s`` on a thread of
    its own and keeps the largest sample: the figure Spark's UI calls peak JVM on-heap memory."""

    def __init__(self, spark, interval_s: float = 0.5):
        jvm = spark.sparkContext._jvm
        self._memory = jvm.java.lang.management.ManagementFactory.getMemoryMXBean()
        self._runtime = jvm.java.lang.Runtime.getRuntime()
        self.max_bytes = 0
        self.peak_bytes = 0
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="featuremill-heap-sampler", daemon=True)

    def _sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes, int(self._memory.getHeapMemoryUsage().getUsed()))
        # the usable heap moves a little with some collectors (Parallel leaves out one survivor space)
        self.max_bytes = max(self.max_bytes, int(self._runtime.maxMemory()))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval_s)

    def __enter__(self) -> _HeapSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


@contextlib.contextmanager
def counted_work(spark, warehouse: str, tag: str) -> Iterator[dict]:
    """Count the Spark jobs this thread starts and the Delta commits under ``warehouse`` in the block,
    and the driver JVM's peak heap in use.

    The jobs carry ``tag`` plus a suffix unique to the block.

    Fills the yielded dict with ``spark_jobs`` (``None`` when the status store is not readable),
    ``delta_commits``, ``peak_heap_bytes`` and ``max_heap_bytes`` when the block ends. The peak is
    the largest heap in use sampled every 0.5 s (garbage not yet collected included, as in Spark's
    own peak memory metrics; a shorter spike can be missed), so it never exceeds the usable heap
    ``max_heap_bytes``. In local mode the driver JVM also runs every task, so this is all the heap
    the run's Spark used.
    """
    counts: dict = {}
    commits_before = delta_commit_count(warehouse)
    tag = f"{tag}-{uuid.uuid4().hex[:12]}"  # the status store keeps earlier blocks' jobs under their tags
    with _HeapSampler(spark) as heap, tagged_jobs(spark, tag):
        yield counts
    counts["spark_jobs"] = tagged_job_count(spark, tag)
    counts["delta_commits"] = delta_commit_count(warehouse) - commits_before
    counts["peak_heap_bytes"] = heap.peak_bytes
    counts["max_heap_bytes"] = heap.max_bytes


def end_to_end(
    spark, pipeline: str, spec: DemoDataSpec, *, data_root: str, warehouse: str, one_landing_date: bool = False
) -> dict:
    """One pass over every landing date: ingest all sources, then every feature set. Fresh warehouse.

    ``one_landing_date``: the data was written by :func:`write_one_landing_date`: ingest covers the
    same dates (so the undated dimensions' snapshot is dated as in the daily run) and accepts the
    dates that landed nothing.
    """
    from featuremill.pipelines.build_features import run_features
    from featuremill.pipelines.ingest import run_ingest

    shutil.rmtree(warehouse, ignore_errors=True)
    config = load_demo_config(pipeline, warehouse=warehouse, data_root=data_root)
    spec = spec.resolved()
    began = time.perf_counter()
    with counted_work(spark, warehouse, "featuremill-bench-ingest") as ingest_work:
        ingests = run_ingest(spark, config, start=spec.start_date, end=spec.end_date, allow_empty=one_landing_date)
    ingest_s = time.perf_counter() - began
    with counted_work(spark, warehouse, "featuremill-bench-features") as features_work:
        features = run_features(spark, config, start=spec.start_date, end=spec.end_date)
    total_s = time.perf_counter() - began
    events = next(r for r in ingests if r.source == "transactions")
    return {
        "ingest_s": round(ingest_s, 3),
        "features_s": round(total_s - ingest_s, 3),
        "ingest_spark_jobs": ingest_work["spark_jobs"],
        "ingest_delta_commits": ingest_work["delta_commits"],
        "features_spark_jobs": features_work["spark_jobs"],
        "features_delta_commits": features_work["delta_commits"],
        "peak_driver_heap_bytes": max(ingest_work["peak_heap_bytes"], features_work["peak_heap_bytes"]),
        "driver_max_heap_bytes": features_work["max_heap_bytes"],
        "rows_read": events.rows_read,
        "rows_valid": events.rows_valid,
        "rows_quarantined": events.rows_quarantined,
        "feature_rows": {r.feature_set: r.rows_out for r in features},
    }


def prepare_data(spark, spec: DemoDataSpec, data_root: str) -> dict:
    """Write the demo CSV data (skipped when the same spec is already there); its manifest."""
    return write_demo_data(spark, data_root, spec)


def run_scaling(
    spark,
    pipeline: str,
    specs: list[DemoDataSpec],
    workdir: str,
    *,
    runs: int,
    warmup: int,
    single_run_from: int = 20_000_000,
) -> dict:
    """End to end at each size, beside the hand-written floor (:mod:`featuremill.bench.floor`)
    over the same data: events/s, seconds per million raw events, featuremill's time over the
    floor's; medians.

    Every round runs featuremill then the floor at each size, so the two are timed interleaved.
    After the timed rounds the floor's tables are compared with featuremill's (a difference raises:
    the ratio would not compare the same work). The warm-up runs the smallest size only; sizes of
    ``single_run_from`` events or more are timed once (a 20M-event pass takes many minutes on two
    cores).
    """
    from featuremill.bench import floor

    out: dict = {"sizes": []}
    manifests = {}
    for spec in specs:
        manifests[spec.events] = prepare_data(spark, spec, f"{workdir}/data/{spec.events}")

    def action(spec):
        return lambda: end_to_end(
            spark,
            pipeline,
            spec,
            data_root=f"{workdir}/data/{spec.events}",
            warehouse=f"{workdir}/warehouse/{spec.events}",
        )

    def floor_action(spec):
        def run():
            out_root = f"{workdir}/floor/{spec.events}"
            shutil.rmtree(out_root, ignore_errors=True)  # fresh tables, as end_to_end's warehouse
            return floor.hand_written_job(
                spark,
                data_root=f"{workdir}/data/{spec.events}",
                out_root=out_root,
                start=spec.start_date,
                end=spec.end_date,
            )

        return run

    def both(group):
        actions = {}
        for spec in group:
            actions[str(spec.events)] = action(spec)
            actions[f"{spec.events} floor"] = floor_action(spec)
        return actions

    smallest = min(specs, key=lambda s: s.events)
    for _ in range(warmup):
        for run in both([smallest]).values():
            run()
    timings: dict[str, Timed] = {}
    small = [s for s in specs if s.events < single_run_from]
    if small:
        timings.update(time_round_robin(both(small), runs=runs, warmup=0))
    for spec in specs:
        if spec.events >= single_run_from:
            timings.update(time_round_robin(both([spec]), runs=1, warmup=0))
    for spec in specs:
        t, f = timings[str(spec.events)], timings[f"{spec.events} floor"]
        config = load_demo_config(
            pipeline, warehouse=f"{workdir}/warehouse/{spec.events}", data_root=f"{workdir}/data/{spec.events}"
        )
        differences = floor.differences(
            spark, floor_root=f"{workdir}/floor/{spec.events}", featuremill_root=config.tables.root
        )
        if any(differences.values()):
            raise RuntimeError(
                f"end-to-end benchmark at {spec.events} events: the hand-written floor's tables differ from "
                f"featuremill's (rows in one only: {differences}): the ratio would not compare the same work"
            )
        rows = manifests[spec.events]["rows"]
        out["sizes"].append(
            {
                "events": spec.events,
                "raw_rows": rows,
                "customers": spec.resolved().customers,
                "days": spec.days,
                "median_s": t.median,
                "runs_s": [round(s, 2) for s in t.seconds],
                "events_per_s": rows / t.median,
                "s_per_million": t.median / (rows / 1e6),
                "last_run": t.detail.get("result"),
                "floor_median_s": f.median,
                "floor_runs_s": [round(s, 2) for s in f.seconds],
                "floor_last_run": f.detail.get("result"),
                "over_floor": paired_ratio(t.seconds, f.seconds),
                "floor_differences": differences,
            }
        )
    costs = [s["s_per_million"] for s in out["sizes"]]
    out["cost_spread"] = max(costs) / min(costs) if costs else None
    out["cost_largest_to_smallest"] = costs[-1] / costs[0] if costs else None
    out["warehouse_of"] = {spec.events: f"{workdir}/warehouse/{spec.events}" for spec in specs}
    out["data_of"] = {spec.events: f"{workdir}/data/{spec.events}" for spec in specs}
    out["floor_of"] = {spec.events: f"{workdir}/floor/{spec.events}" for spec in specs}
    return out


def write_one_landing_date(spark, spec: DemoDataSpec, out_dir: str) -> dict:
    """The demo data of ``spec`` with every transaction row landed on its last date; its manifest.

    The same raw rows as :func:`featuremill.pipelines.demo_data.write_demo_data` writes (dirty
    rows, duplicates and late events included), in one landing folder instead of one per day; the
    dimensions are the same. Skipped when ``out_dir`` already holds this spec.
    """
    from pyspark.sql import functions as F

    from featuremill.pipelines.demo_data import customers_frame, products_frame, transactions_frame

    spec = spec.resolved()
    out = Path(out_dir)
    manifest_path = out / "_one_landing_date.json"
    wanted = {"spec": asdict(spec), "landing_date": spec.end_date.isoformat()}
    if manifest_path.exists() and json.loads(manifest_path.read_text()).get("wanted") == wanted:
        return json.loads(manifest_path.read_text())
    shutil.rmtree(out, ignore_errors=True)
    tx = transactions_frame(spark, spec).withColumn("event_date", F.lit(spec.end_date.isoformat()))
    tx.sortWithinPartitions("event_id").write.partitionBy("event_date").option("header", "true").csv(
        str(out / "transactions")
    )
    customers_frame(spark, spec).coalesce(1).write.option("header", "true").csv(str(out / "customers"))
    products_frame(spark, spec).coalesce(1).write.option("header", "true").csv(str(out / "products"))
    manifest = {"wanted": wanted, "rows": tx.count()}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def run_landing_dates(spark, pipeline: str, spec: DemoDataSpec, workdir: str, *, runs: int, warmup: int) -> dict:
    """End to end over a year of daily landing folders against the same rows landed on one date.

    Both pipelines must read the same raw rows and write the same feature tables but for
    ``_known_at`` (when a row could be known: the day after its landing date), checked after the
    timed rounds (a difference raises); what differs is the number of landing partitions, so the
    ratio is what the suite's per-day work (a scan, a commit, a job per day or per source) costs.
    """
    from featuremill.storage import io
    from featuremill.transforms.features import KNOWN_AT

    spec = spec.resolved()
    daily_root = f"{workdir}/data/daily-{spec.events}-{spec.days}"
    one_root = f"{workdir}/data/one-date-{spec.events}-{spec.days}"
    daily_rows = prepare_data(spark, spec, daily_root)["rows"]
    one_rows = write_one_landing_date(spark, spec, one_root)["rows"]
    runs_of = {
        "daily": {"data_root": daily_root, "warehouse": f"{workdir}/warehouse/landing-daily"},
        "one date": {"data_root": one_root, "warehouse": f"{workdir}/warehouse/landing-one-date"},
    }
    timed = time_round_robin(
        {
            name: (lambda kw=kw, name=name: end_to_end(spark, pipeline, spec, one_landing_date=name != "daily", **kw))
            for name, kw in runs_of.items()
        },
        runs=runs,
        warmup=warmup,
    )
    daily, one = timed["daily"], timed["one date"]
    differences = {}
    configs = [load_demo_config(pipeline, **kw) for kw in runs_of.values()]
    for fs in configs[0].feature_sets:
        tables = [io.read_delta(spark, config.tables.features(fs.name)).drop(KNOWN_AT) for config in configs]
        differences[fs.name] = tables[0].exceptAll(tables[1]).count() + tables[1].exceptAll(tables[0]).count()
    if daily_rows != one_rows or any(differences.values()):
        raise RuntimeError(
            f"landing-date benchmark: the two layouts differ (raw rows {daily_rows} / {one_rows}; feature rows "
            f"in one layout only: {differences}): the ratio would not compare the same work"
        )
    return {
        "events": spec.events,
        "days": spec.days,
        "raw_rows": daily_rows,
        "feature_rows_in_one_layout_only": differences,
        "timings": {k: v.as_dict() for k, v in timed.items()},
        "ratio": paired_ratio(daily.seconds, one.seconds),
        "ratio_of_medians": daily.median / one.median if one.median else None,
    }


def run_incremental(
    spark,
    pipeline: str,
    spec: DemoDataSpec,
    workdir: str,
    *,
    runs: int,
    warmup: int,
    data_root: str | None = None,
    validated_from: str | None = None,
) -> dict:
    """The feature job for the last day on top of the earlier days' history vs all days from scratch.

    Two warehouses hold the same validated tables (copied from ``validated_from``, a warehouse
    the end-to-end run filled, or ingested here). Incremental: the feature tables are restored
    (Delta RESTORE, untimed) to the history computed for every day but the last, then
    ``run_features`` runs for the last day; it recomputes from the earliest event date of rows
    that landed that day (late events) and reads the largest window's lookback before it.
    Full: the feature tables are deleted (untimed), then ``run_features`` runs over every day.
    """
    from delta.tables import DeltaTable

    from featuremill.pipelines.build_features import run_features
    from featuremill.pipelines.ingest import run_ingest
    from featuremill.storage import io

    spec = spec.resolved()
    data_root = data_root or f"{workdir}/data/{spec.events}"
    prepare_data(spark, spec, data_root)
    inc_wh, full_wh = f"{workdir}/incremental/inc", f"{workdir}/incremental/full"
    for wh in (inc_wh, full_wh):
        shutil.rmtree(wh, ignore_errors=True)
    inc = load_demo_config(pipeline, warehouse=inc_wh, data_root=data_root)
    full = load_demo_config(pipeline, warehouse=full_wh, data_root=data_root)
    if validated_from:
        source_root = load_demo_config(pipeline, warehouse=validated_from, data_root=data_root).tables.root
        shutil.copytree(f"{source_root}/validated", f"{inc.tables.root}/validated")
    else:
        run_ingest(spark, inc, start=spec.start_date, end=spec.end_date)
    shutil.copytree(f"{inc.tables.root}/validated", f"{full.tables.root}/validated")

    last = spec.end_date
    history_end = last - dt.timedelta(days=1)
    run_features(spark, inc, start=spec.start_date, end=history_end)
    history = {fs.name: io.delta_version(spark, inc.tables.features(fs.name)) for fs in inc.feature_sets}

    def restore():
        for name, version in history.items():
            table = DeltaTable.forPath(spark, inc.tables.features(name))
            if io.delta_version(spark, inc.tables.features(name)) != version:
                table.restoreToVersion(version)

    def drop_full():
        shutil.rmtree(f"{full.tables.root}/features", ignore_errors=True)

    def summary(results):
        return {
            "compute_start": min(r.compute_start for r in results).isoformat(),
            "events_read": sum(r.events_read for r in results),
            "rows_out": sum(r.rows_out for r in results),
        }

    actions = {
        "incremental (last day)": lambda: summary(run_features(spark, inc, start=last, end=last)),
        "full (every day)": lambda: summary(
            run_features(spark, full, start=spec.start_date, end=last, incremental=False)
        ),
    }
    timed = time_round_robin(
        actions, runs=runs, warmup=warmup, before={"incremental (last day)": restore, "full (every day)": drop_full}
    )
    one, every = timed["incremental (last day)"], timed["full (every day)"]
    return {
        "days": spec.days,
        "history_days": spec.days - 1,
        "new_day": last.isoformat(),
        "timings": {k: v.as_dict() for k, v in timed.items()},
        "ratio": paired_ratio(one.seconds, every.seconds),
        "ratio_of_medians": one.median / every.median if every.median else None,
    }


def driver_memory_run(
    pipeline: str,
    spec: DemoDataSpec,
    workdir: str,
    *,
    driver_memory: str = "1g",
    master: str = "local[2]",
    shuffle_partitions: int = 16,
    data_root: str | None = None,
    timeout_s: int | None = None,
) -> dict:
    """One end-to-end pass in a fresh Python process whose Spark driver gets ``driver_memory``.

    In local mode the driver JVM also runs the executors, so its heap is all the memory Spark
    has. Returns the child's JSON report, or the failure (exit code and the tail of its output).
    """
    data_root = data_root or f"{workdir}/data/{spec.events}"
    out_json = f"{workdir}/driver_memory_{spec.events}.json"
    cmd = [
        sys.executable,
        "-m",
        "featuremill.bench.pipeline",
        "--pipeline",
        pipeline,
        "--events",
        str(spec.events),
        "--days",
        str(spec.days),
        "--seed",
        str(spec.seed),
        "--data",
        data_root,
        "--warehouse",
        f"{workdir}/warehouse/driver_memory_{spec.events}",
        "--driver-memory",
        driver_memory,
        "--master",
        master,
        "--shuffle-partitions",
        str(shuffle_partitions),
        "--json",
        out_json,
    ]
    began = time.perf_counter()
    env = dict(os.environ)
    env.pop("PYSPARK_GATEWAY_PORT", None)  # the child must start its own JVM
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired as exc:
        return {
            "ok": False,
            "driver_memory": driver_memory,
            "events": spec.events,
            "error": f"timed out after {exc.timeout}s",
            "wall_s": time.perf_counter() - began,
        }
    wall = time.perf_counter() - began
    if proc.returncode != 0 or not Path(out_json).exists():
        tail = (proc.stderr or "")[-3000:]
        return {
            "ok": False,
            "driver_memory": driver_memory,
            "events": spec.events,
            "exit_code": proc.returncode,
            "error": tail,
            "wall_s": wall,
        }
    report = json.loads(Path(out_json).read_text())
    report.update({"ok": True, "wall_s": wall})
    return report


def main(argv=None) -> int:
    """Entry point of the child process: one end-to-end pass, a JSON report."""
    parser = argparse.ArgumentParser(description="one end-to-end pass of the demo pipeline (benchmark child)")
    parser.add_argument("--pipeline", default="conf/pipelines/demo.yaml")
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", required=True)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--shuffle-partitions", type=int, default=16)
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)

    from featuremill.core.session import get_spark
    from featuremill.pipelines.common import configure_logging

    configure_logging("WARNING")
    spark = get_spark(
        "featuremill-bench-driver-memory",
        master=args.master,
        conf={
            "spark.driver.memory": args.driver_memory,
            "spark.ui.enabled": "false",
            "spark.ui.retainedJobs": RETAINED_JOBS,
            "spark.ui.retainedStages": RETAINED_JOBS,
            "spark.sql.shuffle.partitions": str(args.shuffle_partitions),
            "spark.sql.adaptive.enabled": "true",
        },
    )
    spec = DemoDataSpec(events=args.events, days=args.days, seed=args.seed)
    prepare_data(spark, spec, args.data)
    began = time.perf_counter()
    result = end_to_end(spark, args.pipeline, spec, data_root=args.data, warehouse=args.warehouse)
    elapsed = time.perf_counter() - began
    jvm = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()
    report = {
        "events": args.events,
        "driver_memory": args.driver_memory,
        "spark_driver_memory_conf": spark.sparkContext.getConf().get("spark.driver.memory"),
        "jvm_max_heap_mib": int(jvm.maxMemory()) // (1024 * 1024),
        "seconds": elapsed,
        "result": result,
    }
    Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    spark.stop()
    shutil.rmtree(args.warehouse, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
