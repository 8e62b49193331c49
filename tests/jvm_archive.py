"""A class-data-sharing archive for the test run's JVMs.

Every Spark JVM the suite starts (the session's, and the CLI, demo, stream, fault and Feast
subprocesses') loads and verifies the same few thousand classes of Spark, Scala and Delta before it
does any work: about 3 s of a fresh local session's 11 s to its first Delta write and read on this
machine. A dynamic CDS archive (JDK 13+, ``-XX:ArchiveClassesAtExit``) holds those classes
already parsed and verified, and a JVM started with ``-XX:SharedArchiveFile`` maps them instead:
measured 10.7 s -> 7.6 s for a fresh session's start plus its first Delta write and read.

Local sessions have such an archive of their own (:mod:`featuremill.core.jvm_archive`, built by
scripts/setup.sh); the tests build theirs the same way from a workload that also runs the test
session's settings (interpreted expressions, no adaptive execution), and use it instead of the
local sessions' one. It is built once per machine (about 45 s, README) by :func:`ensure_archive`; it lives
under ``.venv/`` and is keyed as the local sessions' one (the JDK, pyspark and the cached Delta
jars), so a change of any of them builds a new one. :func:`enabled_options` gives the options a
JVM uses it with; tests/conftest.py puts them in ``SPARK_SUBMIT_OPTS`` (where get_spark sees that
class sharing is chosen and adds no archive of its own), which spark-submit (and so pyspark) adds to every driver JVM it
starts, the test session's and its subprocesses' alike. A JVM whose class path or JDK does not
match the archive ignores it (the JVM checks; ``-Xlog:cds=off`` keeps that check from printing),
and nothing else changes: the same classes, the same code.

``FEATUREMILL_TEST_JVM_ARCHIVE=0`` turns it off.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from featuremill.core import jvm_archive
from featuremill.core.session import class_archive_key, class_archive_options

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE_DIR = ROOT / ".venv" / "jvm-archive"


def archive_path() -> Path | None:
    """Where the archive for this JDK, pyspark and Delta jar set is (built or not); ``None``
    without a JDK. (The tests' own: its workload runs the test session's settings too.)"""
    key = class_archive_key()
    return None if key is None else ARCHIVE_DIR / f"spark-{key}.jsa"


def _turned_off() -> bool:
    return os.environ.get("FEATUREMILL_TEST_JVM_ARCHIVE", "1") == "0"


def enabled_options() -> str:
    """The options a test JVM starts with: the archive's when it is built and not turned off,
    else ``""``."""
    if _turned_off():
        return ""
    path = archive_path()
    return class_archive_options(path) if path is not None and path.exists() else ""


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
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "lib"), env.get("PYTHONPATH", "")])
    return (
        path
        if jvm_archive.build(path, args=["-m", "tests.jvm_archive"], replaces="spark-*.jsa", environ=env, cwd=ROOT)
        else None
    )


def _workload() -> None:
    """Load what the tests' JVMs load: the local sessions' workload
    (:func:`featuremill.core.jvm_archive.run_workload`) with the test session's settings and then
    with Spark's defaults (code generation, adaptive execution), as the subprocesses run, and an
    Arrow conversion to pandas."""
    import tempfile

    from featuremill.core.session import get_spark
    from tests.conftest import TEST_SPARK_CONF

    spark = get_spark("jvm-archive", master="local[2]", conf=TEST_SPARK_CONF)
    root = Path(tempfile.mkdtemp())
    try:
        for generated in (False, True):
            spark.conf.set("spark.sql.codegen.wholeStage", str(generated).lower())
            spark.conf.set("spark.sql.codegen.factoryMode", "FALLBACK" if generated else "NO_CODEGEN")
            spark.conf.set("spark.sql.adaptive.enabled", str(generated).lower())
            jvm_archive.run_workload(spark, root / f"m{int(generated)}")
            spark.read.json(str(root / f"m{int(generated)}" / "json")).toPandas()
    finally:
        shutil.rmtree(root, ignore_errors=True)
        jvm_archive.stop_and_wait(spark)


if __name__ == "__main__":
    _workload()
