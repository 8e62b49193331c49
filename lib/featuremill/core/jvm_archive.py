"""A class-data-sharing archive for the driver JVM of a local session.

A local Spark JVM loads, parses and verifies the same several thousand classes of Spark, Scala
and Delta every time it starts, and more as each new kind of query runs. A dynamic CDS archive
(JDK 13 and later: ``-XX:ArchiveClassesAtExit``) holds those classes already parsed and verified;
a JVM started with ``-XX:SharedArchiveFile`` maps them instead of loading them. Same classes, same
code: only the loading is skipped.

:func:`build` makes the archive once per machine (``python -m featuremill.core.jvm_archive``,
which ``scripts/setup.sh`` runs: about 40 s and 180 MB) from a child process that runs a small
Delta workload and dumps what it loaded when it exits. It lives in the user's cache folder
(``$XDG_CACHE_HOME`` or ``~/.cache``, ``featuremill/jvm-archive/``) and its name is keyed by the
JDK, pyspark and the cached Delta jars, so a change of any of them asks for a new one
(:func:`featuremill.core.session.class_archive_path`).
:func:`featuremill.core.session.local_settings` starts a local session's JVM with it when it is
there (never a spark-submit or platform session). A JVM whose JDK or class path does not match the
archive ignores it (the JVM checks; ``-Xlog:cds=off`` keeps the check from printing), so a stale
archive costs nothing but the time it would have saved.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from featuremill.core.session import CLASS_ARCHIVE_QUIET, class_archive_path

log = logging.getLogger(__name__)


def build(
    path: Path,
    *,
    args: list[str],
    replaces: str,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> bool:
    """Run ``python ARGS`` (a workload) in a child process whose Spark JVM dumps the classes it
    loaded to ``path`` when it exits; ``True`` when the archive was written. The archives in the
    folder that match the glob ``replaces`` (made for another JDK or jar set) are removed first.
    The build's output goes to ``build.log`` beside it."""
    env = dict(os.environ if environ is None else environ)
    for name in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET"):
        env.pop(name, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(replaces):
        old.unlink()
    partial = path.with_suffix(".partial")
    env["SPARK_SUBMIT_OPTS"] = f"-XX:ArchiveClassesAtExit={partial} {CLASS_ARCHIVE_QUIET}"
    with open(path.parent / "build.log", "w") as out:
        done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        return False
    partial.rename(path)
    return True


def stop_and_wait(spark) -> None:
    """Stop ``spark`` and wait for its JVM to exit: the JVM writes the archive as it exits, after
    the Python process would have."""
    launched = getattr(spark.sparkContext._gateway, "proc", None)
    spark.stop()
    if launched is not None:
        launched.stdin.close()  # pyspark's gateway JVM exits when its stdin closes
        launched.wait(timeout=600)


def run_workload(spark, root: Path) -> None:
    """Load what a featuremill job's JVM loads: CSV and JSON reads, Delta partitioned writes,
    reads, a MERGE and its history, a replaceWhere, windows, aggregates and a broadcast join, in
    the folder ``root`` (created; its caller removes it)."""
    from delta.tables import DeltaTable
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    events = spark.range(200).select(
        (F.col("id") % 7).alias("key"),
        F.timestamp_seconds(F.lit(1_700_000_000) + F.col("id") * 600).alias("ts"),
        (F.col("id") * 1.5).alias("amount"),
        F.date_format(F.timestamp_seconds(F.lit(1_700_000_000) + F.col("id") * 600), "yyyy-MM-dd").alias("day"),
    )
    events.write.mode("overwrite").option("header", True).csv(str(root / "csv"))
    raw = spark.read.option("header", True).csv(str(root / "csv"))
    raw.where(F.col("amount").cast("double") > 3).groupBy("day").agg(F.percentile_approx("amount", 0.5)).collect()
    events.write.mode("overwrite").json(str(root / "json"))
    spark.read.json(str(root / "json")).count()
    table = str(root / "delta")
    events.write.format("delta").partitionBy("day").save(table)
    window = Window.partitionBy("key").orderBy(F.col("ts").cast("long")).rangeBetween(-3600, 0)
    features = spark.read.format("delta").load(table).withColumn("n", F.count("*").over(window))
    features.join(F.broadcast(events.groupBy("key").agg(F.sum("amount").alias("s"))), "key").collect()
    on = "t.key = s.key AND t.ts = s.ts"
    merge = DeltaTable.forPath(spark, table).alias("t").merge(events.limit(20).alias("s"), on)
    merge.whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
    spark.sql(f"DESCRIBE HISTORY delta.`{table}`").collect()
    day = events.where("day = '2023-11-14'")
    day.write.format("delta").mode("overwrite").option("replaceWhere", "day = '2023-11-14'").save(table)


def _workload() -> None:
    """:func:`run_workload` with a local session's settings (code generation, adaptive execution)."""
    import tempfile

    from featuremill.core.session import get_spark

    spark = get_spark("featuremill-jvm-archive", master="local[2]", conf={"spark.ui.enabled": "false"})
    root = Path(tempfile.mkdtemp())
    try:
        run_workload(spark, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        stop_and_wait(spark)


def main(argv: list[str] | None = None) -> int:
    """Build the local sessions' archive when it is missing; 0 when it is there afterwards.
    (``--workload``: be the build's child.)"""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--workload"]:
        _workload()
        return 0
    logging.basicConfig(level=logging.INFO, format="[jvm-archive] %(message)s")
    path = class_archive_path()
    if path is None:
        log.warning("no JDK found: no class archive built")
        return 1
    if path.exists():
        log.info("class archive for local sessions: %s (already built)", path)
        return 0
    import pyspark

    # an archive per pyspark version: another virtualenv's (a Spark 3.5 lane) stays
    replaces = f"spark-{pyspark.__version__}-*.jsa"
    if not build(path, args=["-m", "featuremill.core.jvm_archive", "--workload"], replaces=replaces):
        log.warning(
            "could not build the class archive (see %s); local sessions start without it", path.parent / "build.log"
        )
        return 1
    log.info("class archive for local sessions: %s (%.0f MB)", path, path.stat().st_size / 2**20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
