"""A class-data-sharing archive for the test run's JVMs.

Every Spark JVM the suite starts (the session's, and the CLI, demo, stream, fault and Feast
subprocesses') loads and verifies the same few thousand classes of Spark, Scala and Delta before it
does any work: about 3 s of a fresh local session's 11 s to its first Delta write and read on this
machine. A dynamic CDS archive (JDK 13+, ``-XX:ArchiveClassesAtExit``) holds those classes
already parsed and verified, and a JVM started with ``-XX:SharedArchiveFile`` maps them instead:
measured 10.7 s -> 7.6 s for a fresh session's start plus its first Delta write and read.

The archive is built once per machine (about 25 s) by :func:`ensure_archive`, from a child
process that runs a small Delta workload and dumps what it loaded when it exits; it lives under
``.venv/`` and is keyed by the JDK, pyspark and the cached Delta jars, so a change of any of them
builds a new one. :func:`jvm_options` gives the options a JVM uses it with; tests/conftest.py puts
them in ``SPARK_SUBMIT_OPTS``, which spark-submit (and so pyspark) adds to every driver JVM it
starts, the test session's and its subprocesses' alike. A JVM whose class path or JDK does not
match the archive ignores it (the JVM checks; ``-Xlog:cds=off`` keeps that check from printing),
and nothing else changes: the same classes, the same code.

``FEATUREMILL_TEST_JVM_ARCHIVE=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE_DIR = ROOT / ".venv" / "jvm-archive"
#: the JVM checks an archive against its class path and JDK; a mismatch is silent with these
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def archive_path() -> Path | None:
    """Where the archive for this JDK, pyspark and Delta jar set is (built or not); ``None``
    without a JDK."""
    java = _java()
    if java is None:
        return None
    import pyspark

    from featuremill.core.session import cached_jars

    key = "\n".join([os.path.realpath(java), pyspark.__version__, pyspark.__file__, *cached_jars()])
    return ARCHIVE_DIR / f"spark-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


def jvm_options(path: Path) -> str:
    """The Java options that make a JVM use the archive at ``path``."""
    return f"-XX:SharedArchiveFile={path} {QUIET}"


def _turned_off() -> bool:
    return os.environ.get("FEATUREMILL_TEST_JVM_ARCHIVE", "1") == "0"


def enabled_options() -> str:
    """The options a test JVM starts with: the archive's when it is built and not turned off,
    else ``""``."""
    if _turned_off():
        return ""
    path = archive_path()
    return jvm_options(path) if path is not None and path.exists() else ""


def ensure_archive() -> Path | None:
    """The archive's path, built first when missing; ``None`` when turned off or the build failed
    (the tests then run without it, as before)."""
    if _turned_off():
        return None
    path = archive_path()
    if path is None:
        return None
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob("spark-*.jsa"):
        old.unlink()
    partial = path.with_suffix(".partial")
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")}
    env["SPARK_SUBMIT_OPTS"] = f"-XX:ArchiveClassesAtExit={partial} {QUIET}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "lib"), env.get("PYTHONPATH", "")])
    log = path.parent / "build.log"
    with open(log, "w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "tests.jvm_archive"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    if done.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        return None
    partial.rename(path)
    return path


def _workload() -> None:
    """Load what the tests' JVMs load: Delta writes, reads, a MERGE, windows, joins, file formats,
    with the test session's settings and then with Spark's defaults (code generation, adaptive
    execution), as the subprocesses run."""
    import tempfile

    from delta.tables import DeltaTable
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from featuremill.core.session import get_spark
    from tests.conftest import TEST_SPARK_CONF

    spark = get_spark("jvm-archive", master="local[2]", conf=TEST_SPARK_CONF)
    root = Path(tempfile.mkdtemp())
    try:
        for generated in (False, True):
            spark.conf.set("spark.sql.codegen.wholeStage", str(generated).lower())
            spark.conf.set("spark.sql.codegen.factoryMode", "FALLBACK" if generated else "NO_CODEGEN")
            spark.conf.set("spark.sql.adaptive.enabled", str(generated).lower())
            table = str(root / f"t{int(generated)}")
            events = spark.range(200).select(
                (F.col("id") % 7).alias("key"),
                F.timestamp_seconds(F.lit(1_700_000_000) + F.col("id") * 600).alias("ts"),
                (F.col("id") * 1.5).alias("amount"),
                F.date_format(F.timestamp_seconds(F.lit(1_700_000_000) + F.col("id") * 600), "yyyy-MM-dd").alias("day"),
            )
            events.write.format("delta").partitionBy("day").save(table)
            window = Window.partitionBy("key").orderBy(F.col("ts").cast("long")).rangeBetween(-3600, 0)
            features = spark.read.format("delta").load(table).withColumn("n", F.count("*").over(window))
            features.join(F.broadcast(events.groupBy("key").agg(F.sum("amount").alias("s"))), "key").collect()
            DeltaTable.forPath(spark, table).alias("t").merge(
                events.limit(20).alias("s"), "t.key = s.key AND t.ts = s.ts"
            ).whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
            spark.sql(f"DESCRIBE HISTORY delta.`{table}`").collect()
            events.write.mode("overwrite").option("header", True).csv(str(root / f"c{int(generated)}"))
            spark.read.option("header", True).csv(str(root / f"c{int(generated)}")).count()
            events.write.mode("overwrite").json(str(root / f"j{int(generated)}"))
            spark.read.json(str(root / f"j{int(generated)}")).toPandas()
    finally:
        # the JVM writes the archive as it exits, after this process would: end it here and wait
        launched = getattr(spark.sparkContext._gateway, "proc", None)
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)
        if launched is not None:
            launched.stdin.close()  # pyspark's gateway JVM exits when its stdin closes
            launched.wait(timeout=600)


if __name__ == "__main__":
    _workload()
