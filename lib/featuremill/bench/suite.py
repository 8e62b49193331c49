"""The benchmark suite: every performance target of featuremill, measured beside its comparison.

One Spark application runs the sections (the driver-memory figure runs in a child process so
that its 1g heap is real), each figure being the median of ``runs`` timed rounds after
``warmup`` untimed ones, the compared methods interleaved round by round. Sections:

* ``pit``: the training-set join (strategy ``window``) against the Feast shapes and the floors;
  every method's result is checked (row count + checksum of the feature columns) before timing.
* ``windows``: 12 rolling features against 1 over the same events; plan operators counted.
* ``incremental``: the feature job for one new day on 90 days of history against all days.
* ``e2e``: ingest + features over the demo pipeline at each size of the scaling curve, interleaved
  with the hand-written floor (:mod:`featuremill.bench.floor`) over the same data; the floor's
  tables are checked equal to featuremill's.
* ``driver``: the end-to-end run in a child process with ``spark.driver.memory=1g``.
* ``landing``: end to end over a year of daily landing folders against the same rows landed on
  one date (per-day work must not multiply).
* ``demo``: ``featuremill demo --serve`` on its default data in a child process (fresh folders,
  as a user's first run after set-up), its wall time and the time of each step it prints.
* ``serving`` (not in the default run): materialization into Feast's online stores, featuremill's
  against Feast's own, incremental against full, and online lookup latency (SDK and HTTP, SQLite
  and Redis); :mod:`featuremill.bench.serving`. Needs ``--redis`` for the Redis figures.
* ``streaming`` (not in the default run): freshness at a fixed Kafka produce rate and the highest
  rate the streaming query sustains; :mod:`featuremill.bench.streaming`. Needs ``--kafka``.

:func:`run_suite` returns a JSON-ready dict; :func:`render` turns it into Markdown.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from featuremill.bench import common
from featuremill.bench.common import fmt, format_size, markdown

log = logging.getLogger(__name__)

SECTIONS = ("pit", "windows", "incremental", "e2e", "driver", "landing", "demo", "serving", "streaming")
#: The sections a run without ``--sections`` runs: the two server sections need a Redis / Kafka.
DEFAULT_SECTIONS = ("pit", "windows", "incremental", "e2e", "driver", "landing", "demo")
SCALE_SIZES = (1_000_000, 5_000_000, 20_000_000)
PIT_METHODS = ("window", "last_ignorenulls", "feast_range_row_number", "feast_template", "floor", "floor_rows")

# Targets (issue 9); the README and docs/performance.md explain them.
TARGET_PIT_VS_FEAST = 8.0
TARGET_PIT_VS_FLOOR = 1.3
TARGET_WINDOWS = 1.3
TARGET_INCREMENTAL = 0.10
TARGET_SCALING = 1.3
TARGET_DRIVER_EVENTS = 20_000_000
TARGET_LANDING_DATES = 1.3  # a year of daily landing folders / the same rows in one (issue 17)
TARGET_OVER_FLOOR = 1.5  # featuremill ingest + features / the hand-written floor (issue 17)
TARGET_DEMO_S = 180.0  # the demo on its default data after set-up (issue 17)
#: events/s at the largest end-to-end size / events/s at the smallest (issue 17: 20M against 1M)
TARGET_RATE_AT_SCALE = 0.8
# Targets of issues 15 (serving) and 16 (streaming).
TARGET_MATERIALIZE_VS_FEAST = 5.0
TARGET_MATERIALIZE_INCREMENTAL = 0.10
TARGET_REDIS_P99_MS = 10.0
TARGET_STREAM_P99_S = 10.0
TARGET_STREAM_RATE = 5_000


@dataclass(frozen=True)
class SuiteOptions:
    events: int
    days: int = 91
    seed: int = 7
    sections: tuple[str, ...] = DEFAULT_SECTIONS
    runs: int = 3
    warmup: int = 1
    e2e_runs: int | None = None  # end-to-end runs per size (default: runs)
    workdir: str = "bench-results/work"
    pipeline: str = "conf/pipelines/demo.yaml"
    scale_sizes: tuple[int, ...] = field(default=())
    driver_memory: str = "1g"
    driver_events: int | None = None
    # the landing section: a year of the demo data (the size of the year of real data in issue 17)
    landing_events: int = 336_000
    landing_days: int = 365
    pit_methods: tuple[str, ...] = PIT_METHODS
    master: str = "local[2]"
    shuffle_partitions: int = 16
    serving: object | None = None  # featuremill.bench.serving.ServingOptions (default: SQLite only)
    streaming: object | None = None  # featuremill.bench.streaming.StreamingOptions (needs a broker)

    def curve(self) -> list[int]:
        """Sizes of the end-to-end scaling curve, with ``events`` among them.

        Sizes given in ``scale_sizes`` are all run, above ``events`` too: one run then measures the
        other sections at 5M and the end to end up to 20M. Without them, the standard sizes up to
        ``events``.
        """
        if self.scale_sizes:
            return sorted(set(self.scale_sizes) | {self.events})
        return sorted({s for s in SCALE_SIZES if s <= self.events} | {self.events})


def run_suite(spark, options: SuiteOptions) -> dict:
    """Run the chosen sections and return the report (JSON-ready)."""
    from featuremill.bench import data as bench_data
    from featuremill.bench import pipeline, windows
    from featuremill.bench import pit as pit_bench

    began = time.perf_counter()
    work = Path(options.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    spec = bench_data.spec_for(options.events, days=options.days, seed=options.seed)
    resolved = spec.resolved()
    report: dict = {
        "featuremill_bench": 1,
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "options": {
            "events": options.events,
            "days": options.days,
            "seed": options.seed,
            "runs": options.runs,
            "warmup": options.warmup,
            "e2e_runs": options.e2e_runs or options.runs,
            "sections": list(options.sections),
            "pipeline": options.pipeline,
        },
        "data": {
            "events": options.events,
            "customers": resolved.customers,
            "products": resolved.products,
            "days": options.days,
            "start": resolved.start,
        },
        "machine_before": common.machine(spark),
        "sections": {},
    }
    sections = report["sections"]
    needs_events = {"pit", "windows"} & set(options.sections)
    prepared = None
    if needs_events:
        t0 = time.perf_counter()
        prepared = bench_data.write_events(spark, spec, str(work / f"events_{options.events}"))
        report["data"]["typed_events"] = prepared.rows
        report["data"]["prepare_events_s"] = round(time.perf_counter() - t0, 1)

    if "pit" in options.sections:
        t0 = time.perf_counter()
        pit_data = bench_data.write_pit_inputs(spark, prepared, str(work / f"pit_{options.events}"), seed=options.seed)
        prep_s = time.perf_counter() - t0
        log.info("pit: %d feature rows, %d spine rows", pit_data.feature_rows, pit_data.spine_rows)
        results = pit_bench.run(spark, pit_data, methods=options.pit_methods, runs=options.runs, warmup=options.warmup)
        sections["pit"] = _pit_section(results, pit_data, prep_s)

    if "windows" in options.sections:
        sections["windows"] = windows.run(spark, prepared.path, runs=options.runs, warmup=options.warmup)

    e2e = None
    if "e2e" in options.sections:
        specs = [bench_data.spec_for(n, days=options.days, seed=options.seed) for n in options.curve()]
        e2e = pipeline.run_scaling(
            spark,
            options.pipeline,
            specs,
            str(work / "e2e"),
            runs=options.e2e_runs or options.runs,
            warmup=options.warmup,
        )
        sections["e2e"] = e2e

    # Pipeline-level figures take minutes per run: they use e2e_runs, and no warm-up when the
    # end-to-end section already ran the same jobs in this application.
    pipeline_rounds = {"runs": options.e2e_runs or options.runs, "warmup": 0 if e2e else options.warmup}
    if "incremental" in options.sections:
        validated_from = e2e["warehouse_of"].get(options.events) if e2e else None
        data_root = e2e["data_of"].get(options.events) if e2e else None
        sections["incremental"] = pipeline.run_incremental(
            spark,
            options.pipeline,
            spec,
            str(work / "e2e"),
            data_root=data_root,
            validated_from=validated_from,
            **pipeline_rounds,
        )

    if "driver" in options.sections:
        events = options.driver_events or min(options.events, TARGET_DRIVER_EVENTS)
        dspec = bench_data.spec_for(events, days=options.days, seed=options.seed)
        result = pipeline.driver_memory_run(
            options.pipeline,
            dspec,
            str(work / "e2e"),
            driver_memory=options.driver_memory,
            master=options.master,
            shuffle_partitions=options.shuffle_partitions,
        )
        sections["driver"] = result

    if "landing" in options.sections:
        lspec = bench_data.spec_for(options.landing_events, days=options.landing_days, seed=options.seed)
        sections["landing"] = pipeline.run_landing_dates(
            spark, options.pipeline, lspec, str(work / "e2e"), **pipeline_rounds
        )

    if "demo" in options.sections:
        from featuremill.bench import demo

        sections["demo"] = demo.run(str(work), pipeline=options.pipeline)

    if "serving" in options.sections:
        from featuremill.bench import serving

        events = spark.read.parquet(prepared.path) if prepared is not None else bench_data.typed_events(spark, spec)
        t0 = time.perf_counter()
        sections["serving"] = serving.run(
            spark,
            events,
            str(work / f"serving_{options.events}"),
            options.serving or serving.ServingOptions(),
            runs=options.runs,
            warmup=options.warmup,
            seed=options.seed,
        )
        sections["serving"]["elapsed_s"] = round(time.perf_counter() - t0, 1)

    if "streaming" in options.sections:
        from featuremill.bench import streaming

        if options.streaming is None:
            raise ValueError("the streaming section needs a Kafka broker: pass --kafka HOST:PORT")
        t0 = time.perf_counter()
        sections["streaming"] = streaming.run(spark, str(work / "streaming"), options.streaming, seed=options.seed)
        sections["streaming"]["elapsed_s"] = round(time.perf_counter() - t0, 1)

    report["machine_after"] = common.machine(spark)
    report["elapsed_s"] = round(time.perf_counter() - began, 1)
    report["summary"] = summary_rows(report)
    return report


def _pit_section(results, data, prep_s: float) -> dict:
    by = {r.method: r for r in results}
    checked = [r for r in results if r.checksum is not None]
    agree = bool(checked) and all((r.rows, r.checksum) == (checked[0].rows, checked[0].checksum) for r in checked)

    def median(name):
        r = by.get(name)
        return r.median if r else None

    def paired(a, b):
        ra, rb = by.get(a), by.get(b)
        return common.paired_ratio(ra.seconds, rb.seconds) if ra and rb else None

    window = median("window")
    return {
        "feature_rows": data.feature_rows,
        "spine_rows": data.spine_rows,
        "entities": data.entities,
        "prepare_s": round(prep_s, 1),
        "methods": [
            {
                "method": r.method,
                "median_s": r.median,
                "runs_s": [round(s, 3) for s in r.seconds],
                "rows": r.rows,
                "checksum": str(r.checksum) if r.checksum is not None else None,
            }
            for r in results
        ],
        "results_agree": agree,
        # Ratios are medians of per-round ratios (see common.paired_ratio); ratios of the
        # medians are kept beside them.
        "feast_template_over_window": paired("feast_template", "window"),
        "feast_range_over_window": paired("feast_range_row_number", "window"),
        "window_over_floor_rows": paired("window", "floor_rows"),
        "window_over_floor_keys": paired("window", "floor"),
        "last_ignorenulls_over_floor_rows": paired("last_ignorenulls", "floor_rows"),
        "ratio_of_medians": {
            "feast_template_over_window": common.ratio(median("feast_template"), window),
            "window_over_floor_rows": common.ratio(window, median("floor_rows")),
        },
    }


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**not met**")


def summary_rows(report: dict) -> list[dict]:
    """One row per target: figure, measured value, target, met."""
    s = report["sections"]
    rows = []
    if "pit" in s:
        p = s["pit"]
        agree = p["results_agree"]
        rows.append(
            {
                "figure": "PIT join: methods return identical results (rows + feature checksum)",
                "measured": f"{'yes' if agree else 'NO'} ({p['spine_rows']:,} rows each)",
                "target": "identical",
                "met": agree,
            }
        )
        v = p["feast_template_over_window"]
        rows.append(
            {
                "figure": "PIT join: Feast Spark template (no TTL) time / featuremill time",
                "measured": fmt(v, 2, "x"),
                "target": f">= {TARGET_PIT_VS_FEAST:g}x",
                "met": None if v is None else v >= TARGET_PIT_VS_FEAST,
            }
        )
        v = p["feast_range_over_window"]
        if v is not None:
            rows.append(
                {
                    "figure": "PIT join: minimal Feast-style range join + ROW_NUMBER / featuremill",
                    "measured": fmt(v, 2, "x"),
                    "target": "(for information)",
                    "met": None,
                }
            )
        v = p["window_over_floor_rows"]
        rows.append(
            {
                "figure": "PIT join: featuremill time / floor (shuffle + sort of both inputs)",
                "measured": fmt(v, 2, "x") + f" (keys-only floor: {fmt(p['window_over_floor_keys'], 2, 'x')})",
                "target": f"<= {TARGET_PIT_VS_FLOOR:g}x",
                "met": None if v is None else v <= TARGET_PIT_VS_FLOOR,
            }
        )
    if "windows" in s:
        w = s["windows"]
        v = w["ratio_12_to_1"]
        plan = w["plan_12"]
        rows.append(
            {
                "figure": "Window features: 12 rolling features time / 1 feature time",
                "measured": fmt(v, 2, "x"),
                "target": f"<= {TARGET_WINDOWS:g}x",
                "met": None if v is None else v <= TARGET_WINDOWS,
            }
        )
        rows.append(
            {
                "figure": "Window features: plan of the 12-feature frame",
                "measured": f"{plan['Exchange']} Exchange, {plan['Sort']} Sort, {plan['Window']} Window",
                "target": "1 Exchange, 1 Sort",
                "met": plan["Exchange"] == 1 and plan["Sort"] == 1,
            }
        )
    if "incremental" in s:
        i = s["incremental"]
        v = i["ratio"]
        rows.append(
            {
                "figure": f"Incremental: 1 new day on {i['history_days']} days of history / full recompute",
                "measured": fmt(None if v is None else v * 100, 1, "%"),
                "target": f"<= {TARGET_INCREMENTAL * 100:g}%",
                "met": None if v is None else v <= TARGET_INCREMENTAL,
            }
        )
    if "e2e" in s:
        e = s["e2e"]
        for size in e["sizes"]:
            rows.append(
                {
                    "figure": f"End to end (ingest + features), {format_size(size['events'])} events",
                    "measured": f"{size['events_per_s']:,.0f} events/s, {size['s_per_million']:.1f} s per 1M events"
                    + _peak_heap(size),
                    "target": "(reported)",
                    "met": None,
                }
            )
            v = size.get("over_floor")
            if "floor_median_s" in size:
                rows.append(
                    {
                        "figure": f"End to end: featuremill ingest + features / hand-written floor (same tables), "
                        f"{format_size(size['events'])} events",
                        "measured": fmt(v, 2, "x")
                        + f" ({fmt(size['median_s'], 1, 's')} / {fmt(size['floor_median_s'], 1, 's')})",
                        "target": f"<= {TARGET_OVER_FLOOR:g}x",
                        "met": None if v is None else v <= TARGET_OVER_FLOOR,
                    }
                )
        if len(e["sizes"]) > 1:
            v = e["cost_spread"]
            sizes = "/".join(format_size(x["events"]) for x in e["sizes"])
            rows.append(
                {
                    "figure": f"Scaling: cost per event, max / min across {sizes}",
                    "measured": fmt(v, 2, "x") + f" (largest / smallest {fmt(e['cost_largest_to_smallest'], 2, 'x')})",
                    "target": f"<= {TARGET_SCALING:g}x",
                    "met": None if v is None else v <= TARGET_SCALING,
                }
            )
            # issue 17's form: throughput must not fall with size (a fall in cost per event is fine)
            smallest, largest = e["sizes"][0], e["sizes"][-1]
            v = largest["events_per_s"] / smallest["events_per_s"]
            rows.append(
                {
                    "figure": f"Scaling: events/s at {format_size(largest['events'])} / events/s at "
                    f"{format_size(smallest['events'])}",
                    "measured": fmt(v, 2, "x"),
                    "target": f">= {TARGET_RATE_AT_SCALE:g}x",
                    "met": v >= TARGET_RATE_AT_SCALE,
                }
            )
    if "driver" in s:
        d = s["driver"]
        full = d["events"] >= TARGET_DRIVER_EVENTS
        ok = bool(d.get("ok"))
        measured = (
            f"{'completed' if ok else 'FAILED'} at {format_size(d['events'])} events with "
            f"spark.driver.memory={d['driver_memory']}"
            + (f" ({_child_heap(d)}, {d.get('seconds', 0):.0f}s)" if ok else "")
        )
        rows.append(
            {
                "figure": f"Driver memory: end-to-end run with spark.driver.memory={d['driver_memory']}",
                "measured": measured if full or not ok else measured + "; 20M not run at this size",
                "target": "completes at 20M events",
                "met": (ok if full else (None if ok else False)),
            }
        )
    if "landing" in s:
        g = s["landing"]
        v = g["ratio"]
        t = g["timings"]
        rows.append(
            {
                "figure": f"Landing dates: {g['days']} daily folders / the same rows in one, "
                f"{format_size(g['events'])} events end to end",
                "measured": fmt(v, 2, "x")
                + f" ({fmt(t['daily']['median_s'], 1, 's')} / {fmt(t['one date']['median_s'], 1, 's')})",
                "target": f"<= {TARGET_LANDING_DATES:g}x",
                "met": None if v is None else v <= TARGET_LANDING_DATES,
            }
        )
    if "demo" in s:
        d = s["demo"]
        ok = bool(d.get("ok"))
        rows.append(
            {
                "figure": "Demo (`featuremill demo --serve`, default data, after set-up): wall time, start to exit",
                "measured": f"{d['wall_s']:.0f} s (steps {d['steps_s']:.0f} s)"
                if ok
                else f"FAILED after {d['wall_s']:.0f} s",
                "target": f"< {TARGET_DEMO_S:.0f} s",
                "met": ok and d["wall_s"] < TARGET_DEMO_S,
            }
        )
    if "serving" in s:
        rows += _serving_rows(s["serving"], report["options"]["events"])
    if "streaming" in s:
        rows += _streaming_rows(s["streaming"])
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _serving_rows(v: dict, events: int) -> list[dict]:
    rows = []
    size = f"{format_size(events)} events, {v['entities']:,} entities"
    for store, m in v["materialization"].items():
        ratio = m["feast_over_featuremill"]
        rows.append(
            {
                "figure": f"Materialization into {store} ({size}): featuremill rows/s vs `feast materialize`",
                "measured": f"{m['featuremill_rows_per_s']:,.0f} vs {m['feast_rows_per_s']:,.0f} rows/s "
                f"({fmt(ratio, 2, 'x')})",
                "target": f">= {TARGET_MATERIALIZE_VS_FEAST:g}x Feast's",
                "met": None if ratio is None else ratio >= TARGET_MATERIALIZE_VS_FEAST,
            }
        )
    i = v["incremental"]
    ratio = i["ratio"]
    rows.append(
        {
            "figure": f"Materialization, {i['changed_fraction'] * 100:g}% of entities changed: incremental / full "
            f"({size})",
            "measured": fmt(None if ratio is None else ratio * 100, 1, "%")
            + f" ({fmt(i['incremental_median_s'])} s / {fmt(i['full_median_s'])} s)",
            "target": f"<= {TARGET_MATERIALIZE_INCREMENTAL * 100:g}%",
            "met": None if ratio is None else ratio <= TARGET_MATERIALIZE_INCREMENTAL,
        }
    )
    for store in ("sqlite", "redis"):
        lat = v["latency"].get(store)
        for path in ("sdk", "http"):
            for name in ("1 entity", f"{v['batch']} entities"):
                target_row = store == "redis" and path == "sdk" and name == "1 entity"
                figure = f"Online latency, {store}, {'Python SDK' if path == 'sdk' else 'HTTP (feast serve)'}, {name}"
                if lat is None:
                    if target_row:
                        rows.append(
                            {
                                "figure": figure,
                                "measured": "not run (no --redis)",
                                "target": f"p99 < {TARGET_REDIS_P99_MS:g} ms",
                                "met": None,
                            }
                        )
                    continue
                x = lat[path][name]
                rows.append(
                    {
                        "figure": figure,
                        "measured": f"p50 {_ms(x['p50_ms'])}, p99 {_ms(x['p99_ms'])} ({x['n']} lookups)",
                        "target": f"p99 < {TARGET_REDIS_P99_MS:g} ms" if target_row else "(reported)",
                        "met": (x["p99_ms"] < TARGET_REDIS_P99_MS) if target_row else None,
                    }
                )
    return rows


def _streaming_rows(v: dict) -> list[dict]:
    f = v["fixed"]
    p99 = f["p99_s"]
    complete = f["arrived"] == f["produced"]
    rows = [
        {
            "figure": f"Streaming freshness, produce -> Delta feature table, at {f['rate']:,} events/s for "
            f"{v['step_s']:g} s (achieved {f['achieved_rate']:,.0f}/s)",
            "measured": f"p50 {fmt(f['p50_s'], 1, ' s')}, p99 {fmt(p99, 1, ' s')}"
            + ("" if complete else f" ({f['arrived']:,} of {f['produced']:,} events arrived)"),
            "target": f"p99 < {TARGET_STREAM_P99_S:g} s",
            # nothing arrived within the drain time: far slower than the target, not unmeasured
            "met": (p99 is not None and p99 < TARGET_STREAM_P99_S and complete) if f["produced"] else None,
        }
    ]
    rate = v["sustained_rate"]
    ladder = "/".join(f"{s['rate']:,}" for s in v["steps"])
    rows.append(
        {
            "figure": f"Streaming: highest rate sustained (ladder {ladder} events/s, {v['step_s']:g} s each, "
            f"p99 freshness <= {v['keep_up_s']:g} s)",
            "measured": "none of the ladder" if rate is None else f"{rate:,.0f} events/s",
            "target": f">= {TARGET_STREAM_RATE:,} events/s",
            "met": rate is not None and rate >= TARGET_STREAM_RATE * 0.98,
        }
    )
    return rows


def _render_serving(v: dict) -> list[str]:
    lines = [
        "",
        f"### Online serving: {v['feature_rows']:,} feature rows, {v['entities']:,} entities "
        f"(stores: {', '.join(v['stores'])})",
        "",
    ]
    rows = []
    for store, m in v["materialization"].items():
        rows.append(
            [
                store,
                "featuremill materialize (full)",
                fmt(m["featuremill_median_s"]),
                " ".join(f"{x:.2f}" for x in m["featuremill_runs_s"]),
                f"{m['entities']:,}",
                f"{m['featuremill_rows_per_s']:,.0f}",
            ]
        )
        rows.append(
            [
                store,
                "feast materialize (FeatureStore.materialize)",
                fmt(m["feast_median_s"]),
                " ".join(f"{x:.2f}" for x in m["feast_runs_s"]),
                f"{m['entities']:,}",
                f"{m['feast_rows_per_s']:,.0f}",
            ]
        )
    i = v["incremental"]
    rows.append(
        [
            "sqlite",
            f"featuremill incremental ({i['changed_fraction'] * 100:g}% changed)",
            fmt(i["incremental_median_s"]),
            " ".join(f"{x:.2f}" for x in i["incremental_runs_s"]),
            "/".join(f"{x:,}" for x in i["written_entities"]),
            "-",
        ]
    )
    rows.append(
        [
            "sqlite",
            "featuremill full, same version",
            fmt(i["full_median_s"]),
            " ".join(f"{x:.2f}" for x in i["full_runs_s"]),
            "-",
            "-",
        ]
    )
    lines.append(markdown(["store", "run", "median s", "runs s", "entities written", "rows/s"], rows))
    lines += ["", f"Online lookups ({v['lookups']} timed per figure after {max(1, v['lookups'] // 10)} warm-up):", ""]
    rows = []
    for store, lat in v["latency"].items():
        for path, by in lat.items():
            for name, x in by.items():
                rows.append(
                    [
                        store,
                        "Python SDK" if path == "sdk" else "HTTP",
                        name,
                        _ms(x["p50_ms"]),
                        _ms(x["p99_ms"]),
                        _ms(x["max_ms"]),
                        f"{x['found']:,} / {x['asked']:,}",
                    ]
                )
    lines.append(markdown(["store", "path", "request", "p50", "p99", "max", "values found"], rows))
    return lines


def _render_streaming(v: dict) -> list[str]:
    lines = [
        "",
        f"### Streaming: Kafka -> featuremill stream -> Delta feature table ({v['customers']:,} customers, "
        f"trigger {v['trigger_s']} s, first micro-batch {v['startup_s']:.0f} s after start)",
        "",
    ]
    rows = [
        [
            f"{s['rate']:,}",
            f"{s['achieved_rate']:,.0f}",
            f"{s['arrived']:,} / {s['produced']:,}",
            fmt(s["p50_s"], 1),
            fmt(s["p99_s"], 1),
            fmt(s["max_s"], 1),
            fmt(s["p99_second_half_s"], 1),
            f"{s['batches']}",
            fmt(s["batch_avg_s"], 1),
            "yes" if s["kept_up"] else "**no**",
        ]
        for s in v["steps"]
    ]
    lines.append(
        markdown(
            [
                "rate/s",
                "achieved/s",
                "arrived / produced",
                "p50 s",
                "p99 s",
                "max s",
                "p99 2nd half s",
                "batches",
                "s per batch",
                "kept up",
            ],
            rows,
        )
    )
    lines += [
        "",
        f"Each step {v['step_s']:g} s, then {v['drain_s']:g} s to drain; kept up = every event arrived and the p99 "
        f"freshness of the step's second half <= {v['keep_up_s']:g} s. Producer errors: {v['producer_errors']}.",
    ]
    return lines


def _last_run_split(size: dict) -> str:
    last_run = size.get("last_run") or {}
    return f"{last_run.get('ingest_s', '-')} / {last_run.get('features_s', '-')}"


def _floor_split(size: dict) -> str:
    run = size.get("floor_last_run") or {}
    return f"{run['ingest_s']} / {run['features_s']}" if run else "-"


def _peak_heap(size: dict) -> str:
    """``, peak driver heap X MiB of Y MiB`` for the last end-to-end run at ``size`` (empty when not
    recorded: reports written before the figure existed)."""
    heap = _heap_in_use(size.get("last_run"))
    return "" if heap is None else f", peak driver heap {heap}"


def _child_heap(driver: dict) -> str:
    """The driver-memory child's heap as the end-to-end rows print it (:func:`_heap_in_use`), or,
    for reports written before the child's pass recorded it, the usable heap read at its end."""
    heap = _heap_in_use(driver.get("result"))
    return f"JVM heap {driver.get('jvm_max_heap_mib')} MiB" if heap is None else f"peak heap in use {heap}"


def _heap_in_use(run: dict | None) -> str | None:
    """``X MiB of Y MiB``: an end-to-end pass's peak heap in use and the largest usable heap during
    it (the parallel collector resizes its survivor spaces, which moves ``Runtime.maxMemory``);
    None when the pass did not record them."""
    run = run or {}
    peak, limit = run.get("peak_driver_heap_bytes"), run.get("driver_max_heap_bytes")
    return None if peak is None or limit is None else f"{_mib(peak)} MiB of {_mib(limit)} MiB"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def _last_run_work(size: dict, step: str) -> str:
    """``jobs / commits`` of one pipeline step in the last end-to-end run."""
    last_run = size.get("last_run") or {}
    jobs, commits = last_run.get(f"{step}_spark_jobs"), last_run.get(f"{step}_delta_commits")
    return f"{'-' if jobs is None else f'{jobs:,}'} / {'-' if commits is None else f'{commits:,}'}"


def render(report: dict) -> str:
    """The report as Markdown: the summary table, then one table per section."""
    m = report["machine_before"]
    after = report.get("machine_after", {})
    o = report["options"]
    lines = [
        f"## featuremill benchmark: {format_size(o['events'])} events ({report['data']['customers']:,} customers, "
        f"{o['days']} days)",
        "",
        f"Machine: {m['cpus']} cores ({m.get('cpu_model') or 'unknown CPU'}), {m['memory_gib']} GiB; load average "
        f"{m['load_average']} before, {after.get('load_average')} after. Spark {m.get('spark')} {m.get('master')}, "
        f"Java {m.get('java')}, Python {m['python']}, driver memory {m.get('driver_memory')}, "
        f"{m.get('shuffle_partitions')} shuffle partitions, AQE {m.get('adaptive')}. Medians of {o['runs']} runs "
        f"after {o['warmup']} warm-up, methods interleaved round by round"
        + (
            f" (end to end and incremental: {o.get('e2e_runs', o['runs'])} run(s) per size, 1 at 20M)"
            if {"e2e", "incremental"} & set(o["sections"])
            else ""
        )
        + f"; ratios are medians of per-round ratios; {report['elapsed_s']:.0f}s in all.",
        "",
    ]
    lines.append(
        markdown(
            ["figure", "measured", "target", "met"],
            [[r["figure"], r["measured"], r["target"], _met(r["met"])] for r in report["summary"]],
        )
    )
    s = report["sections"]
    if "pit" in s:
        p = s["pit"]
        lines += [
            "",
            f"### Point-in-time join: {p['feature_rows']:,} feature rows, {p['spine_rows']:,} spine rows, "
            f"{p['entities']:,} customers, no TTL",
            "",
        ]
        window = next((x["median_s"] for x in p["methods"] if x["method"] == "window"), None)
        first = next((x for x in p["methods"] if x["checksum"] is not None), None)
        lines.append(
            markdown(
                ["method", "median s", "runs s", "x featuremill", "rows", "same result"],
                [
                    [
                        x["method"],
                        fmt(x["median_s"]),
                        " ".join(f"{v:.2f}" for v in x["runs_s"]),
                        fmt(common.ratio(x["median_s"], window)),
                        "-" if x["rows"] is None else f"{x['rows']:,}",
                        "-"
                        if x["checksum"] is None
                        else ("yes" if (x["rows"], x["checksum"]) == (first["rows"], first["checksum"]) else "NO"),
                    ]
                    for x in p["methods"]
                ],
            )
        )
    if "windows" in s:
        w = s["windows"]
        lines += ["", "### Window features (featuremill.transforms.features.with_window_features, customer entity)", ""]
        one = w["timings"]["1 feature"]["median_s"]
        lines.append(
            markdown(
                ["frame", "median s", "runs s", "x 1 feature"],
                [
                    [
                        name,
                        fmt(t["median_s"]),
                        " ".join(f"{v:.2f}" for v in t["runs_s"]),
                        fmt(common.ratio(t["median_s"], one)),
                    ]
                    for name, t in w["timings"].items()
                ],
            )
        )
        lines += [
            "",
            f"12 features: {', '.join(w['features_12'])}. Plan of the 12-feature frame: "
            f"{w['plan_12']['Exchange']} Exchange, {w['plan_12']['Sort']} Sort, {w['plan_12']['Window']} Window "
            "operators (lags and range frames run in two Window operators over one sort).",
        ]
    if "incremental" in s:
        i = s["incremental"]
        lines += ["", f"### Incremental vs full: the feature job, new day {i['new_day']}", ""]
        rows = []
        for name, t in i["timings"].items():
            r = t.get("detail", {}).get("result", {})
            rows.append(
                [
                    name,
                    fmt(t["median_s"]),
                    " ".join(f"{v:.2f}" for v in t["runs_s"]),
                    r.get("compute_start", "-"),
                    f"{r.get('events_read', 0):,}",
                    f"{r.get('rows_out', 0):,}",
                ]
            )
        lines.append(markdown(["run", "median s", "runs s", "recomputed from", "events read", "feature rows"], rows))
    if "e2e" in s:
        e = s["e2e"]
        lines += ["", "### End to end: ingest + features, demo pipeline", ""]
        lines.append(
            markdown(
                [
                    "events",
                    "raw rows",
                    "customers",
                    "median s",
                    "runs s",
                    "events/s",
                    "s per 1M events",
                    "ingest s / features s (last run)",
                    "ingest: Spark jobs / Delta commits",
                    "features: Spark jobs / Delta commits",
                    "peak driver heap MiB (last run)",
                    "floor median s",
                    "floor ingest s / features s (last run)",
                    "floor runs s",
                    "x floor",
                ],
                [
                    [
                        format_size(x["events"]),
                        f"{x['raw_rows']:,}",
                        f"{x['customers']:,}",
                        fmt(x["median_s"], 1),
                        " ".join(f"{v:.1f}" for v in x["runs_s"]),
                        f"{x['events_per_s']:,.0f}",
                        fmt(x["s_per_million"], 1),
                        _last_run_split(x),
                        _last_run_work(x, "ingest"),
                        _last_run_work(x, "features"),
                        _mib((x.get("last_run") or {}).get("peak_driver_heap_bytes")),
                        fmt(x.get("floor_median_s"), 1),
                        _floor_split(x),
                        " ".join(f"{v:.1f}" for v in x.get("floor_runs_s", [])) or "-",
                        fmt(x.get("over_floor"), 2, "x"),
                    ]
                    for x in e["sizes"]
                ],
            )
        )
    if "driver" in s:
        d = s["driver"]
        lines += [
            "",
            f"### Driver memory: child process, spark.driver.memory={d['driver_memory']}, "
            f"{format_size(d['events'])} events",
            "",
        ]
        if d.get("ok"):
            lines.append(f"Completed in {d['seconds']:.0f}s ({_child_heap(d)}; {d['result']['rows_read']:,} raw rows).")
        else:
            lines.append(f"FAILED (exit code {d.get('exit_code')}): {d.get('error', '')[-600:]}")
    if "landing" in s:
        g = s["landing"]
        lines += [
            "",
            f"### Landing dates: {format_size(g['events'])} events over {g['days']} days, daily folders "
            "or one, end to end",
            "",
        ]
        lines.append(
            markdown(
                [
                    "landing",
                    "median s",
                    "runs s",
                    "ingest s / features s (last run)",
                    "ingest: Spark jobs / Delta commits",
                    "features: Spark jobs / Delta commits",
                ],
                [
                    [
                        f"{g['days']} daily folders" if name == "daily" else "one folder",
                        fmt(t["median_s"], 1),
                        " ".join(f"{v:.1f}" for v in t["runs_s"]),
                        _last_run_split(size),
                        _last_run_work(size, "ingest"),
                        _last_run_work(size, "features"),
                    ]
                    for name, t in g["timings"].items()
                    for size in [{"last_run": (t.get("detail") or {}).get("result")}]
                ],
            )
        )
    if "demo" in s and s["demo"].get("ok"):
        d = s["demo"]
        lines += ["", "### Demo: `featuremill demo --serve`, default data, a new process", ""]
        rows = [[name, fmt(seconds, 1)] for name, seconds in d["steps"].items()]
        rows += [["(steps together)", fmt(d["steps_s"], 1)], ["(whole run, start to exit)", fmt(d["wall_s"], 1)]]
        lines.append(markdown(["step", "s"], rows))
    if "serving" in s:
        lines += _render_serving(s["serving"])
    if "streaming" in s:
        lines += _render_streaming(s["streaming"])
    return "\n".join(lines) + "\n"


def merge(reports: list[dict]) -> dict:
    """Several reports of one size (e.g. sections run separately) as one; later reports win."""
    if len({r["options"]["events"] for r in reports}) > 1:
        raise ValueError("cannot merge reports of different sizes")
    out = dict(reports[0])
    out["sections"] = {}
    out["options"] = dict(reports[0]["options"])
    out["options"]["sections"] = []
    for r in reports:
        out["sections"].update(r["sections"])
        out["options"]["sections"] += [s for s in r["options"]["sections"] if s not in out["options"]["sections"]]
        out["options"]["e2e_runs"] = r["options"].get("e2e_runs", out["options"].get("e2e_runs"))
    out["machine_after"] = reports[-1].get("machine_after")
    out["elapsed_s"] = sum(r.get("elapsed_s", 0) for r in reports)
    return out


def rederive(report: dict) -> dict:
    """Recompute the ratios and the summary of a stored JSON report from its per-run seconds.

    Lets ``featuremill bench --render FILE`` re-print a report (for instance one written by an
    older version of the suite) with the current ratio rules, without re-running anything.
    """
    s = report["sections"]
    if "pit" in s:
        runs = {m["method"]: m["runs_s"] for m in s["pit"]["methods"]}

        def paired(a, b):
            return common.paired_ratio(runs[a], runs[b]) if a in runs and b in runs else None

        s["pit"].update(
            {
                "feast_template_over_window": paired("feast_template", "window"),
                "feast_range_over_window": paired("feast_range_row_number", "window"),
                "window_over_floor_rows": paired("window", "floor_rows"),
                "window_over_floor_keys": paired("window", "floor"),
                "last_ignorenulls_over_floor_rows": paired("last_ignorenulls", "floor_rows"),
            }
        )
    if "windows" in s:
        t = s["windows"]["timings"]
        s["windows"]["ratio_12_to_1"] = common.paired_ratio(t["12 features"]["runs_s"], t["1 feature"]["runs_s"])
        s["windows"]["ratio_24_to_1"] = common.paired_ratio(t["24 features"]["runs_s"], t["1 feature"]["runs_s"])
    if "incremental" in s:
        t = s["incremental"]["timings"]
        s["incremental"]["ratio"] = common.paired_ratio(
            t["incremental (last day)"]["runs_s"], t["full (every day)"]["runs_s"]
        )
    report["summary"] = summary_rows(report)
    return report


def write_report(report: dict, out_dir: str) -> tuple[Path, Path]:
    """Write ``bench-<size>.json`` and ``bench-<size>.md`` into ``out_dir``; return both paths."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = f"bench-{format_size(report['options']['events'])}"
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    slim = dict(report)
    slim["sections"] = {
        k: {kk: vv for kk, vv in v.items() if kk not in ("warehouse_of", "data_of")}
        for k, v in report["sections"].items()
    }
    json_path.write_text(json.dumps(slim, indent=2, default=str))
    md_path.write_text(render(report))
    return json_path, md_path


def clean(workdir: str) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
