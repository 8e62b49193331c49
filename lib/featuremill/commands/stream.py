"""``featuremill stream PIPELINE --feature-set NAME``: keep a feature table fresh from a stream."""

from __future__ import annotations

import os
import sys

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--feature-set", required=True, help="the feature set to compute from its source's stream")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--available-now", action="store_true", help="process what the stream holds now, in micro-batches, then stop"
    )
    mode.add_argument("--duration", type=float, metavar="S", help="run for S seconds, then stop")
    parser.add_argument(
        "--checkpoint", help="checkpoint location (default <warehouse>/<pipeline>/stream/<set>/_checkpoint)"
    )
    parser.add_argument("--bootstrap-servers", help="override the stream's Kafka bootstrap servers")
    parser.add_argument(
        "--feast-repo",
        metavar="DIR",
        help="a Feast repository (featuremill feast-repo ... --apply): each micro-batch also writes its entities' "
        "latest rows to the environment's online store",
    )


def run(args) -> int:
    from featuremill.core.session import detect_runtime, get_spark
    from featuremill.streaming.job import StreamError, local_conf, run_stream

    config = load_config(args)
    if args.feast_repo:
        # the online writer runs Python on the executors: locally they must be this interpreter
        # (with Feast installed); spark-submit and clusters bring their own setting
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        config.feature_set(args.feature_set)
    except KeyError as exc:
        raise StreamError(str(exc.args[0])) from None
    conf = dict(config.env.spark_conf)
    if detect_runtime().name == "local":
        conf = local_conf(conf)  # Delta plus Spark's Kafka connector
    spark = get_spark(f"featuremill-stream-{config.name}-{args.feature_set}", master=config.env.master, conf=conf)
    results = run_stream(
        spark,
        config,
        feature_set=args.feature_set,
        available_now=args.available_now,
        duration_s=args.duration,
        checkpoint=args.checkpoint,
        bootstrap_servers=args.bootstrap_servers,
        feast_repo=args.feast_repo,
    )
    for r in results:
        fresh = f"{r.freshness_s:.1f} s" if r.freshness_s is not None else "n/a"
        latency = f"{r.latency_s:.1f} s" if r.latency_s is not None else "n/a"
        emit(
            f"stream {args.feature_set} batch {r.batch_id}: {r.input_rows} records, {r.valid_rows} valid, "
            f"{r.quarantined} quarantined, {r.output_rows} feature rows, {r.duration_s:.1f} s; "
            f"freshness {fresh} (now - newest event time), produce to table {latency}"
            + (
                f"; online store: {r.online_rows} entities, event time to online {r.online_freshness_s:.1f} s"
                if r.online_rows
                else ""
            )
        )
    total = sum(r.input_rows for r in results)
    emit(f"stream {args.feature_set}: {len(results)} micro-batch(es), {total} records")
    return 0
