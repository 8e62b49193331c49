"""Profiling and drift run a number of Spark jobs that does not grow with the number of columns.

Jobs are counted with the status tracker: everything a step runs is tagged with a job group.
"""

from __future__ import annotations

import uuid

import pytest

from featuremill.quality.drift import compare, fit_reference, score_counts
from featuremill.quality.profile import TableProfile, profile_frame, store_profile
from featuremill.quality.spec import DriftSettings, ProfileSettings


def _wide(spark, n_columns: int, rows: int = 4000):
    """n_columns columns: doubles, ints and strings in turn, values hashed from the row id."""
    from pyspark.sql import functions as F

    cols = []
    for i in range(n_columns):
        h = F.abs(F.xxhash64(F.lit(i), F.col("id")))
        if i % 3 == 0:
            cols.append((h % 100000 / 1000.0).alias(f"d{i}"))
        elif i % 3 == 1:
            cols.append((h % 50).cast("int").alias(f"i{i}"))
        else:
            cols.append(F.concat(F.lit("v"), (h % 7).cast("string")).alias(f"s{i}"))
    return spark.range(0, rows, 1, 2).select(*cols)


def _jobs(spark, fn) -> int:
    sc = spark.sparkContext
    group = f"count-{uuid.uuid4().hex}"
    sc.setJobGroup(group, "counting jobs")
    try:
        fn()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    return len(sc.statusTracker().getJobIdsForGroup(group))


@pytest.mark.slow  # profiles and drift runs on narrow and wide tables
def test_profile_and_drift_job_counts_do_not_grow_with_columns(spark, tmp_path):
    counts = {}
    for n in (5, 50):
        df = _wide(spark, n)
        shifted = _wide(spark, n, rows=3000)

        def profile():
            rows, cols = profile_frame(df, settings=ProfileSettings())
            assert len(cols) == n and rows == 4000
            store_profile(
                spark,
                str(tmp_path / f"profiles_{n}"),
                TableProfile("p", "q", "t", "all", None, "2024-01-01T00:00:00+00:00", rows, cols),
                root=str(tmp_path),
            )

        refs = []

        def fit():
            refs.extend(fit_reference(df, df.columns, DriftSettings()))

        def score():
            results = compare(refs, score_counts(shifted, refs, DriftSettings()), DriftSettings())
            assert len(results) == n

        counts[n] = (_jobs(spark, profile), _jobs(spark, fit), _jobs(spark, score))
    print(
        f"\nSpark jobs (profile incl. Delta write, drift fit, drift score): 5 columns {counts[5]}, "
        f"50 columns {counts[50]}"
    )
    assert counts[5] == counts[50]
    profile_jobs, fit_jobs, score_jobs = counts[50]
    assert fit_jobs <= 8 and score_jobs <= 3  # AQE may run each shuffle stage as its own job
