"""``featuremill bench``: the performance targets, measured side by side, and the scaling curve.

Prints a Markdown table (every figure, its target, met / not met) and writes it with the full
JSON report to ``--out`` (default ``reports/bench/``). The work lives in :mod:`featuremill.bench.suite`.
Exit code 1 when the point-in-time methods disagree (a correctness failure, not a timing).
"""

from __future__ import annotations

from featuremill.commands import emit


def add_arguments(parser) -> None:
    from featuremill.bench.suite import DEFAULT_SECTIONS, PIT_METHODS, SECTIONS

    parser.add_argument(
        "--events", default="1M", help="events to generate: 1M, 5M, 20M or any number (20000, 50k); default 1M"
    )
    parser.add_argument(
        "--days", type=int, default=91, help="days of events (default 91: 90 days of history plus the new day)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default {','.join(DEFAULT_SECTIONS)}; serving and "
        "streaming need servers: --redis, --kafka)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure (median; default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (default 1)")
    parser.add_argument("--e2e-runs", type=int, help="end-to-end runs per size (default --runs; 20M runs once)")
    parser.add_argument(
        "--scale-sizes",
        default="",
        help="end-to-end sizes, each run, larger than --events too, so that one run holds the 5M figures "
        "and the 20M end to end (default: those of 1M,5M,20M up to --events)",
    )
    parser.add_argument("--driver-memory", default="1g", help="driver memory of the child run (default 1g)")
    parser.add_argument("--driver-events", help="events of the driver-memory run (default: --events, at most 20M)")
    parser.add_argument(
        "--landing-events", default="336k", help="events of the landing-dates figure (default 336k, a year)"
    )
    parser.add_argument("--landing-days", type=int, default=365, help="days of the landing-dates figure (default 365)")
    parser.add_argument(
        "--pit-methods",
        default=",".join(PIT_METHODS),
        help="point-in-time methods (featuremill.bench.pit.method_frames)",
    )
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--shuffle-partitions", type=int, default=16)
    parser.add_argument(
        "--bench-driver-memory",
        default="4g",
        help="driver memory of the benchmark's own Spark application (default 4g)",
    )
    parser.add_argument("--event-log", help="folder for the Spark event log (profile with the history server)")
    parser.add_argument("--pipeline", default="conf/pipelines/demo.yaml")
    parser.add_argument(
        "--workdir",
        default="bench-results/work",
        help="generated data and temporary tables; data is reused by later runs (default bench-results/work)",
    )
    parser.add_argument("--out", default="reports/bench", help="where to write bench-<size>.json and .md")
    parser.add_argument("--clean", action="store_true", help="delete --workdir when done")
    serving = parser.add_argument_group("serving section (Feast online stores)")
    serving.add_argument(
        "--redis", metavar="HOST:PORT", help="a running Redis for the Redis figures (scripts/redis.sh)"
    )
    serving.add_argument("--serve-port", type=int, default=6567, help="port of `feast serve` (127.0.0.1; default 6567)")
    serving.add_argument(
        "--lookups", type=int, default=300, help="timed online lookups per latency figure (default 300)"
    )
    streaming = parser.add_argument_group("streaming section (Kafka)")
    streaming.add_argument("--kafka", metavar="HOST:PORT", help="a running Kafka broker (scripts/kafka.sh start)")
    streaming.add_argument(
        "--stream-rate", type=int, default=2000, help="produce rate of the freshness figure, events/s (default 2000)"
    )
    streaming.add_argument(
        "--stream-rates", default="2000,5000,8000", help="rate ladder for the sustained rate (default 2000,5000,8000)"
    )
    streaming.add_argument("--stream-step-s", type=float, default=60.0, help="seconds per rate step (default 60)")
    streaming.add_argument(
        "--stream-drain-s", type=float, default=60.0, help="at most this long to drain after a step (default 60)"
    )
    streaming.add_argument(
        "--stream-warmup-s", type=float, default=15.0, help="unmeasured warm-up seconds (default 15)"
    )
    streaming.add_argument("--stream-customers", type=int, default=20_000, help="customers (entities; default 20000)")
    parser.add_argument(
        "--render",
        metavar="JSON",
        nargs="+",
        help="re-print stored reports (recomputing ratios and summary; several reports of the same "
        "size are merged section by section, later files winning); runs nothing",
    )


def run(args) -> int:
    from featuremill.bench import suite
    from featuremill.bench.common import parse_size
    from featuremill.bench.pipeline import RETAINED_JOBS
    from featuremill.core.errors import FeaturemillError
    from featuremill.core.session import get_spark

    if args.render:
        import json
        from pathlib import Path

        report = suite.rederive(suite.merge([json.loads(Path(p).read_text()) for p in args.render]))
        suite.write_report(report, args.out)
        emit(suite.render(report))
        return 0
    try:
        events = parse_size(args.events)
        sizes = tuple(parse_size(s) for s in args.scale_sizes.split(",") if s.strip())
        driver_events = parse_size(args.driver_events) if args.driver_events else None
    except ValueError as exc:
        raise FeaturemillError(str(exc)) from None
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = [s for s in sections if s not in suite.SECTIONS]
    if unknown:
        raise FeaturemillError(f"unknown section {unknown[0]!r}: use {', '.join(suite.SECTIONS)}")
    from featuremill.bench.serving import ServingOptions
    from featuremill.bench.streaming import StreamingOptions

    try:
        rates = tuple(int(parse_size(r)) for r in args.stream_rates.split(",") if r.strip())
    except ValueError as exc:
        raise FeaturemillError(f"--stream-rates: {exc}") from None
    if "streaming" in sections and not args.kafka:
        raise FeaturemillError(
            "the streaming section needs a Kafka broker: scripts/kafka.sh start, then --kafka HOST:PORT"
        )
    streaming = (
        StreamingOptions(
            bootstrap=args.kafka,
            rate=args.stream_rate,
            rates=rates,
            step_s=args.stream_step_s,
            drain_s=args.stream_drain_s,
            warmup_s=args.stream_warmup_s,
            customers=args.stream_customers,
        )
        if args.kafka
        else None
    )
    options = suite.SuiteOptions(
        events=events,
        days=args.days,
        seed=args.seed,
        sections=sections,
        runs=args.runs,
        e2e_runs=args.e2e_runs,
        warmup=args.warmup,
        workdir=args.workdir,
        pipeline=args.pipeline,
        scale_sizes=sizes,
        driver_memory=args.driver_memory,
        driver_events=driver_events,
        landing_events=parse_size(args.landing_events),
        landing_days=args.landing_days,
        pit_methods=tuple(m for m in args.pit_methods.split(",") if m),
        master=args.master,
        shuffle_partitions=args.shuffle_partitions,
        serving=ServingOptions(redis=args.redis, http_port=args.serve_port, lookups=args.lookups),
        streaming=streaming,
    )
    conf = {
        "spark.sql.shuffle.partitions": str(args.shuffle_partitions),
        "spark.ui.enabled": "false",
        # the end-to-end figures count each step's Spark jobs in the status store
        "spark.ui.retainedJobs": RETAINED_JOBS,
        "spark.ui.retainedStages": RETAINED_JOBS,
        "spark.driver.memory": args.bench_driver_memory,
        "spark.sql.adaptive.enabled": "true",
    }
    if args.event_log:
        conf.update({"spark.eventLog.enabled": "true", "spark.eventLog.dir": args.event_log})
    import os
    import sys

    # materialization writes from Python workers with Feast installed: in local mode, this interpreter
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = get_spark("featuremill-bench", master=args.master, conf=conf)
    from featuremill.core.errors import SessionError
    from featuremill.core.session import is_connect

    if is_connect(spark):
        # the suite reads physical plans, JVM memory and the status store through the driver's JVM
        raise SessionError("featuremill bench needs a classic Spark session; unset SPARK_REMOTE (Spark Connect)")
    report = suite.run_suite(spark, options)
    json_path, md_path = suite.write_report(report, args.out)
    emit(suite.render(report))
    emit(f"written: {md_path} and {json_path}")
    if args.clean:
        suite.clean(args.workdir)
    pit = report["sections"].get("pit")
    if pit is not None and not pit["results_agree"]:
        emit("ERROR: the point-in-time methods returned different results")
        return 1
    return 0
