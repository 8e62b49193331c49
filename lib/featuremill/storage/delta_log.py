"""Read what a Delta table's commit log records and the public APIs do not give back.

Two facts come from the commit files ``<table>/_delta_log/<version, 20 digits>.json`` (the
open Delta protocol, not a Delta internal API):

* **when each version was committed**: ``commitInfo.inCommitTimestamp`` when In-Commit
  Timestamps are on, else ``commitInfo.timestamp`` (the writer's clock at commit). Not the file
  modification time, which is what ``DESCRIBE HISTORY`` reports without In-Commit Timestamps and
  which a copy, a restore from backup or some object stores reset;
* **which idempotent-write transactions a commit carries** (``txn`` actions: ``appId`` and
  ``version``, the ``txnAppId`` / ``txnVersion`` a writer passed) and its ``userMetadata``.

The commit files of a table are listed on the driver (a directory listing through Hadoop's
FileSystem; Spark globs them itself under Spark Connect) and parsed by Spark with a fixed schema
that keeps only those fields, so ``add``/``remove`` actions cost nothing but the read. Commit files
exist for ``delta.logRetentionDuration`` (featuremill tables keep
them at least as long as the pipeline's replay window, see :mod:`featuremill.storage.retention`);
versions older than that live only in checkpoints, and for them this module has no timestamp.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from featuremill.storage.names import existing_location, table_location

log = logging.getLogger(__name__)

_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")
_LOG_SCHEMA = (
    "commitInfo struct<timestamp: bigint, inCommitTimestamp: bigint, operation: string, userMetadata: string>, "
    "txn struct<appId: string, version: bigint>"
)


@dataclass(frozen=True)
class Commit:
    """One commit of a Delta table as its log file records it."""

    version: int
    timestamp: dt.datetime  # UTC, naive; in-commit timestamp or the writer's commit time
    timestamp_source: str  # "in_commit_timestamp", "commit_info" or "file_modification_time"
    operation: str | None = None
    user_metadata: str | None = None
    txns: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    def txn_version(self, app_id: str) -> int | None:
        """``txnVersion`` this commit recorded for ``app_id``, if any."""
        versions = [v for a, v in self.txns if a == app_id]
        return max(versions) if versions else None

    @property
    def metadata(self) -> dict[str, Any]:
        """``userMetadata`` parsed as JSON (``{}`` when absent or not JSON)."""
        if not self.user_metadata:
            return {}
        try:
            value = json.loads(self.user_metadata)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def _log_dir(path: str) -> str:
    return path.rstrip("/") + "/_delta_log"


def _list_commit_files(spark, path: str) -> list[tuple[int, str]] | None:
    """``(version, file URI)`` of every retained commit file, sorted; ``None`` without JVM access.

    A directory listing on the driver through Hadoop's FileSystem (any storage Spark can read).
    """
    try:
        jvm = spark.sparkContext._jvm
        hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    except Exception:  # Spark Connect: no SparkContext on the client
        return None
    log_path = jvm.org.apache.hadoop.fs.Path(_log_dir(path))
    fs = log_path.getFileSystem(hadoop_conf)
    if not fs.exists(log_path):
        return []
    out = []
    for status in fs.listStatus(log_path):
        file_path = status.getPath()
        match = _COMMIT_FILE.match(file_path.getName())
        if match:
            out.append((int(match.group(1)), file_path.toString()))
    return sorted(out)


def read_commits(spark, path: str, *, app_id: str | None = None, min_version: int | None = None) -> list[Commit]:
    """The retained commits of the table at ``path``, oldest first.

    ``app_id`` keeps only commits carrying a ``txn`` action for that application id;
    ``min_version`` skips older commit files without reading them. Returns ``[]`` when there is
    no table. Only one row per commit reaches the driver.
    """
    from pyspark.sql import functions as F

    located = existing_location(spark, path)
    if located is None:
        return []
    path = located
    files = _list_commit_files(spark, path)
    reader = spark.read.schema(_LOG_SCHEMA)
    if files is None:  # no driver-side listing: let Spark glob the log (Spark Connect)
        raw = reader.json(_log_dir(path) + "/*.json")
    else:
        if min_version is not None:
            files = [f for f in files if f[0] >= min_version]
        if not files:
            return []
        raw = reader.json([uri for _, uri in files])
    raw = raw.withColumn("version", F.regexp_extract(F.col("_metadata.file_name"), r"^(\d{20})\.json$", 1))
    raw = raw.where(F.col("version") != "").withColumn("version", F.col("version").cast("bigint"))
    if min_version is not None:
        raw = raw.where(F.col("version") >= F.lit(min_version))
    per_commit = raw.groupBy("version").agg(
        F.max("commitInfo.inCommitTimestamp").alias("ict"),
        F.max("commitInfo.timestamp").alias("ts"),
        F.max(F.col("_metadata.file_modification_time")).alias("mtime"),
        F.first("commitInfo.operation", ignorenulls=True).alias("operation"),
        F.first("commitInfo.userMetadata", ignorenulls=True).alias("user_metadata"),
        F.collect_list(
            F.when(
                F.col("txn").isNotNull(),
                F.struct(F.col("txn.appId").alias("app_id"), F.col("txn.version").alias("txn_version")),
            )
        ).alias("txns"),
    )
    if app_id is not None:
        per_commit = per_commit.where(F.exists("txns", lambda t: t["app_id"] == F.lit(app_id)))
    commits = []
    for row in per_commit.collect():
        if row["ict"] is not None:
            timestamp, source = _from_millis(row["ict"]), "in_commit_timestamp"
        elif row["ts"] is not None:
            timestamp, source = _from_millis(row["ts"]), "commit_info"
        else:  # commitInfo disabled by the writer: the file's time is all there is
            timestamp, source = _utc_naive(row["mtime"]), "file_modification_time"
        commits.append(
            Commit(
                version=int(row["version"]),
                timestamp=timestamp,
                timestamp_source=source,
                operation=row["operation"],
                user_metadata=row["user_metadata"],
                txns=tuple((t["app_id"], int(t["txn_version"])) for t in row["txns"] or ()),
            )
        )
    return sorted(commits, key=lambda c: c.version)


def _utc_naive(value: dt.datetime | None) -> dt.datetime:
    """A timestamp collected from Spark (naive, in the Python process's local time) as naive UTC."""
    if value is None:
        return dt.datetime(1970, 1, 1)
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _from_millis(millis: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.timezone.utc).replace(tzinfo=None)


def latest_txn_commit(spark, path: str, app_id: str) -> Commit | None:
    """The retained commit that recorded the highest ``txnVersion`` for ``app_id``, or ``None``."""
    if not _snapshot_has_txn(spark, path, app_id):
        return None
    commits = read_commits(spark, path, app_id=app_id)
    if not commits:
        return None
    return max(commits, key=lambda c: (c.txn_version(app_id) or -1, c.version))


def jvm_snapshot(spark, path: str):
    """``(DeltaLog, Snapshot)`` of the table at ``path`` through the driver's JVM, brought up to date.

    Delta's internal Scala API (``org.apache.spark.sql.delta.DeltaLog``): callers use it only as a
    shortcut and fall back to the public API on any error. Raises on Spark Connect (no JVM).
    """
    jvm = spark._jvm
    none = jvm.scala.Option.empty()
    location = table_location(spark, path)
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, str(location))
    return delta_log, delta_log.update(False, none, none)


def _snapshot_has_txn(spark, path: str, app_id: str) -> bool:
    """``False`` only when the table's current snapshot records no transaction for ``app_id``.

    Every run asks this for a new run key, and the answer is almost always "none": the
    snapshot's map of ``appId -> txnVersion`` (the state Delta itself checks idempotent writes
    against) answers in milliseconds, where reading the commit files takes a Spark job. It is
    Delta's internal API, so any failure (Spark Connect, a runtime with its own Delta) answers
    ``True`` and the caller reads the commit files. A transaction Delta expired from the snapshot
    (``delta.setTransactionRetentionDuration``) no longer blocks Delta's own writes either.
    """
    try:
        _, snapshot = jvm_snapshot(spark, path)
        if int(snapshot.version()) < 0:
            return False
        return bool(snapshot.transactions().get(app_id).isDefined())
    except Exception as exc:  # an internal API: fall back to the commit files
        log.debug("reading the transactions of %s from its snapshot failed (%s)", path, exc)
        return True


def monotonic_timestamps(commits: list[Commit]) -> dict[int, dt.datetime]:
    """Commit time per version, made non-decreasing the way Delta does for its history.

    Writers on different machines can disagree about the clock; a version is never treated as
    committed before the version preceding it.
    """
    out: dict[int, dt.datetime] = {}
    previous: dt.datetime | None = None
    for commit in sorted(commits, key=lambda c: c.version):
        ts = commit.timestamp
        if previous is not None and ts <= previous:
            ts = previous + dt.timedelta(milliseconds=1)
        out[commit.version] = ts
        previous = ts
    return out


def version_at(spark, path: str, timestamp: dt.datetime, *, name: str = "") -> int:
    """The latest version committed at or before ``timestamp`` (UTC, naive) by commit time.

    Raises :class:`~featuremill.core.errors.TableStateError` when the table has no retained commit
    that early, naming the oldest one it has.
    """
    from featuremill.core.errors import TableStateError

    commits = read_commits(spark, path)
    label = name or path
    if not commits:
        raise TableStateError(f"{label}: no Delta table (or no retained commits) at {path}")
    times = monotonic_timestamps(commits)
    eligible = [v for v, ts in times.items() if ts <= timestamp]
    if not eligible:
        oldest = commits[0]
        raise TableStateError(
            f"{label}: no retained version was committed at or before {timestamp.isoformat(sep=' ')} UTC; "
            f"the oldest retained commit is version {oldest.version} at "
            f"{times[oldest.version].isoformat(sep=' ')} UTC (older commits are past the table's log retention)"
        )
    return max(eligible)


def commit_times(spark, path: str) -> dict[int, dt.datetime]:
    """Commit time of every retained version (see :func:`monotonic_timestamps`)."""
    return monotonic_timestamps(read_commits(spark, path))
