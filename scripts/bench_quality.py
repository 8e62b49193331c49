#!/usr/bin/env python
"""Benchmark: Spark jobs and wall time of profiling, drift and quality rules, side by side.

    .venv/bin/python scripts/bench_quality.py [--rows 500000] [--columns 10,50]

For each column count it times, on one generated table (``spark.range`` + hashed values, written
to Parquet and read back, so every pass reads storage as it would on a cluster):

* profile: featuremill's two stacked passes vs a naive baseline of one aggregation per column;
* drift: reference fit (3 jobs) and scoring a new selection (1 job);
* rules: the ingest pass (count by verdict, every column read) alone, with the aggregates of
  10 rules, and with the per-column metrics too: what quality rules add to the pass that runs
  anyway (same job count).

Prints a table; nothing is asserted (timings belong here, not in tests).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))


def _table(spark, rows: int, columns: int):
    from pyspark.sql import functions as F

    cols = []
    for i in range(columns):
        h = F.abs(F.xxhash64(F.lit(i), F.col("id")))
        if i % 3 == 0:
            cols.append((h % 1_000_000 / 1000.0).alias(f"d{i}"))
        elif i % 3 == 1:
            cols.append((h % 50).cast("int").alias(f"i{i}"))
        else:
            cols.append(F.concat(F.lit("v"), (h % 12).cast("string")).alias(f"s{i}"))
    rule = F.when(F.col("id") % 100 == 0, F.lit("type")).alias("_rule")
    return spark.range(0, rows, 1, 8).select(*cols, rule)


def _timed(spark, fn):
    sc = spark.sparkContext
    group = uuid.uuid4().hex
    sc.setJobGroup(group, "bench")
    start = time.perf_counter()
    try:
        fn()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    return time.perf_counter() - start, len(sc.statusTracker().getJobIdsForGroup(group))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--columns", default="10,50")
    args = parser.parse_args()

    import tempfile

    from pyspark.sql import functions as F

    from featuremill.core.session import get_spark
    from featuremill.quality import rules as R
    from featuremill.quality.drift import fit_reference, score_counts
    from featuremill.quality.profile import profile_frame
    from featuremill.quality.spec import DriftSettings, ProfileSettings, RuleSpec, TableQualitySpec

    spark = get_spark(
        "bench-quality", master="local[2]", conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "8"}
    )
    spark.sparkContext.setLogLevel("ERROR")
    print(f"rows={args.rows:,}  (local[2]; seconds, Spark jobs)")
    header = (
        f"{'columns':>7} | {'profile':>14} {'naive/column':>14} {'ratio':>6} | {'drift fit':>12} "
        f"{'drift score':>12} | {'verdict pass':>12} {'+10 rules':>12} {'+ metrics':>12}"
    )
    print(header)
    print("-" * len(header))
    tmp = tempfile.mkdtemp(prefix="bench-quality-")
    for n in [int(x) for x in args.columns.split(",")]:
        # Read from Parquet, not a cache: like a real table, every extra pass re-reads storage.
        folder = f"{tmp}/t{n}"
        _table(spark, args.rows, n).write.mode("overwrite").parquet(folder)
        df = spark.read.parquet(folder)
        data_cols = [c for c in df.columns if not c.startswith("_")]
        profile = _timed(spark, lambda: profile_frame(df.select(*data_cols), settings=ProfileSettings()))

        def naive():
            for c in data_cols:  # what a per-column profiler does: one aggregation (and job) per column
                df.agg(F.count(c), F.approx_count_distinct(c), F.min(c), F.max(c)).collect()
                if not c.startswith("s"):
                    df.agg(F.avg(c), F.stddev(c), F.percentile_approx(c, [0.25, 0.5, 0.75])).collect()
                else:
                    df.groupBy(c).count().orderBy(F.col("count").desc()).limit(10).collect()

        baseline = _timed(spark, naive)
        refs = []
        fit = _timed(spark, lambda: refs.extend(fit_reference(df.select(*data_cols), data_cols, DriftSettings())))
        score = _timed(spark, lambda: score_counts(df.select(*data_cols), refs, DriftSettings()))
        types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
        numeric = [c for c in data_cols if not c.startswith("s")]
        strings = [c for c in data_cols if c.startswith("s")]
        spec = TableQualitySpec(
            table="t",
            rules=(
                RuleSpec("r1", "range", "warn", columns=(numeric[0],), min=0, max=500),
                RuleSpec("r2", "not_null", "fail", columns=tuple(numeric[:3])),
                RuleSpec("r3", "allowed_values", "warn", columns=(strings[0],), values=("v1", "v2", "v3")),
                RuleSpec("r4", "regex", "warn", columns=(strings[0],), pattern="^v[0-9]+$"),
                RuleSpec("r5", "completeness", "fail", columns=(numeric[-1],), min_percent=99),
                RuleSpec("r6", "freshness", "warn", columns=(numeric[0],), max_age_seconds=86400),
                RuleSpec("r7", "range", "fail", columns=(numeric[-1],), min=0),
                RuleSpec("r8", "not_null", "warn", columns=(strings[-1],)),
                RuleSpec("r9", "anomaly", "warn", columns=(numeric[1],), metric="mean"),
                RuleSpec("r10", "row_count_change", "warn", max_change_percent=50),
            ),
        )

        def aggregates(metrics: bool):
            measures = R.measure_columns(spec, types, R.metric_columns(data_cols, spec) if metrics else [])
            measures.pop(f"maxtime:{numeric[0]}", None)  # freshness needs a time column; keep the rest
            return R.aliased(measures)[0]

        # Baseline: the ingest pass's count by verdict, reading every column as ingest's parsing does.
        touch = F.max(F.xxhash64(*[F.col(c) for c in data_cols]))
        count_only = _timed(spark, lambda: df.groupBy("_rule").agg(F.count(F.lit(1)), touch).collect())
        rules_only = _timed(
            spark, lambda: df.groupBy("_rule").agg(F.count(F.lit(1)), touch, *aggregates(False)).collect()
        )
        with_metrics = _timed(
            spark, lambda: df.groupBy("_rule").agg(F.count(F.lit(1)), touch, *aggregates(True)).collect()
        )
        print(
            f"{n:>7} | {profile[0]:>8.1f}s {profile[1]:>3}j {baseline[0]:>8.1f}s {baseline[1]:>3}j "
            f"{baseline[0] / profile[0]:>6.2f} | {fit[0]:>7.1f}s {fit[1]:>2}j {score[0]:>7.1f}s {score[1]:>2}j | "
            f"{count_only[0]:>7.1f}s {count_only[1]:>2}j {rules_only[0]:>7.1f}s {rules_only[1]:>2}j "
            f"{with_metrics[0]:>7.1f}s {with_metrics[1]:>2}j"
        )


if __name__ == "__main__":
    main()
