#!/usr/bin/env python
"""Time featuremill's point-in-time join against a Feast-style range join + ROW_NUMBER.

    .venv/bin/python scripts/bench_pit.py                      # ~2 minutes on 2 cores
    .venv/bin/python scripts/bench_pit.py --events 2000000 --entities 50000 --spine 500000
    .venv/bin/python scripts/bench_pit.py --spine 5000 --ttl 7d  # a small spine: broadcast's case

One Spark application, one generated dataset (Parquet in a temporary folder), every method's
output checked against the others (row count + checksum) before timing, medians after warm-up.
Prints a Markdown table with each method's ratio to featuremill's window strategy. Exit code 1
if any two methods disagree. The methods live in featuremill.bench.pit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="feature rows (default 1000000)")
    parser.add_argument("--entities", type=int, default=25_000, help="distinct entity ids (default 25000)")
    parser.add_argument("--spine", type=int, default=250_000, help="spine (label) rows (default 250000)")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--ttl", help="max feature age, e.g. 7d (default: none)")
    parser.add_argument("--known-at", action="store_true", help="also apply known-at (featuremill methods only)")
    parser.add_argument(
        "--methods",
        default=",".join(__import__("featuremill.bench.pit", fromlist=["METHODS"]).METHODS),
        help="comma-separated subset of the methods",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--shuffle-partitions", type=int, default=16)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--workdir", help="where to write the generated data (default: a temporary folder)")
    args = parser.parse_args(argv)

    from featuremill.bench import pit as bench
    from featuremill.config import parse_duration
    from featuremill.core.session import get_spark

    ttl = parse_duration(args.ttl) if args.ttl else None
    spark = get_spark(
        "featuremill-bench-pit",
        master=args.master,
        conf={
            "spark.sql.shuffle.partitions": str(args.shuffle_partitions),
            "spark.ui.enabled": "false",
            "spark.driver.memory": os.environ.get("BENCH_DRIVER_MEMORY", "6g"),
            "spark.sql.session.timeZone": "UTC",
        },
    )
    with tempfile.TemporaryDirectory(prefix="bench_pit_", dir=args.workdir) as workdir:
        began = time.perf_counter()
        data = bench.generate(
            spark, workdir, feature_rows=args.events, entities=args.entities, spine_rows=args.spine, days=args.days
        )
        generated = time.perf_counter() - began
        results = bench.run(
            spark,
            data,
            methods=[m for m in args.methods.split(",") if m],
            runs=args.runs,
            warmup=args.warmup,
            ttl_seconds=ttl,
            known_at=args.known_at,
        )
    print(
        f"## Point-in-time join: {args.events:,} feature rows, {args.entities:,} entities, {args.spine:,} spine rows, "
        f"{args.days} days, ttl {args.ttl or 'none'}, known-at {'on' if args.known_at else 'off'}"
    )
    print(
        f"Spark {spark.version}, {args.master}, {args.shuffle_partitions} shuffle partitions, AQE "
        f"{spark.conf.get('spark.sql.adaptive.enabled')}; medians of {args.runs} runs after {args.warmup} warm-up; "
        f"data generated in {generated:.1f}s"
    )
    print()
    print(bench.markdown_table(results))
    checked = [r for r in results if r.checksum is not None]
    if any((r.rows, r.checksum) != (checked[0].rows, checked[0].checksum) for r in checked):
        print("\nERROR: methods returned different results", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
