"""Scenario 10 (time travel part): versions whose files were vacuumed, or whose commits were cleaned
up, fail with a clear error; they never return partial or wrong rows.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from featuremill.core.errors import TableStateError
from featuremill.storage import io


@contextlib.contextmanager
def _conf(spark, **settings):
    previous = {k: spark.conf.get(k, None) for k in settings}
    for k, v in settings.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def _rows(df):
    return sorted(tuple(r) for r in df.collect())


@pytest.mark.slow  # minutes under load in the fast-lane run: whole suite only
def test_time_travel_to_a_vacuumed_version_is_refused_not_partial(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.createDataFrame([(1, "a"), (2, "b")], "k bigint, v string").write.format("delta").save(path)
    spark.createDataFrame([(3, "c")], "k bigint, v string").write.format("delta").mode("overwrite").save(path)
    assert _rows(io.read_delta(spark, path, version=0)) == [(1, "a"), (2, "b")]  # still intact

    # VACUUM with a retention shorter than Delta allows by default (the check is on for a reason).
    with _conf(spark, **{"spark.databricks.delta.retentionDurationCheck.enabled": "false"}):
        spark.sql(f"VACUUM delta.`{path}` RETAIN 0 HOURS")

    with pytest.raises(TableStateError) as info:
        io.read_delta(spark, path, version=0)
    message = str(info.value)
    assert f"version 0 of the Delta table at {path} can no longer be read in full: VACUUM" in message
    assert "delta.deletedFileRetentionDuration" in message
    # What the guard prevents: with ignoreMissingFiles (set on some platforms) Spark alone returns
    # version 0 without its rows, silently (count() alone would still say 2: it reads the log stats).
    with _conf(spark, **{"spark.sql.files.ignoreMissingFiles": "true"}):
        assert _rows(spark.read.format("delta").option("versionAsOf", 0).load(path)) == []
        with pytest.raises(TableStateError):
            io.read_delta(spark, path, version=0)
    # Versions the vacuum left intact still read, exactly.
    assert _rows(io.read_delta(spark, path, version=1)) == [(3, "c")]
    assert _rows(io.read_delta(spark, path)) == [(3, "c")]
    assert io.delta_version(spark, path) == 3  # VACUUM START and END are commits too


def test_time_travel_before_the_oldest_retained_commit_fails_with_available_versions(spark, tmp_path):
    path = str(tmp_path / "t")
    df = spark.createDataFrame([(1, "a")], "k bigint, v string")
    df.write.format("delta").option("delta.checkpointInterval", "1").save(path)
    spark.createDataFrame([(2, "b")], "k bigint, v string").write.format("delta").mode("append").save(path)
    spark.createDataFrame([(3, "c")], "k bigint, v string").write.format("delta").mode("append").save(path)
    # Log cleanup after logRetentionDuration deletes the oldest commit files once a checkpoint
    # covers them; done here by hand (Delta cleans up at day granularity).
    log = Path(path) / "_delta_log"
    assert (log / "00000000000000000002.checkpoint.parquet").exists()
    (log / "00000000000000000000.json").unlink()
    (log / "00000000000000000001.json").unlink()

    with pytest.raises(TableStateError) as info:
        io.read_delta(spark, path, version=0)
    assert f"cannot time travel the Delta table at {path} to version 0" in str(info.value)
    assert "2" in str(info.value)  # the oldest version still available
    assert _rows(io.read_delta(spark, path, version=2)) == [(1, "a"), (2, "b"), (3, "c")]
