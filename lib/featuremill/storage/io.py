"""Reads and writes: the only module that touches storage.

Raw sources are read with every declared column as a string (parsing happens in
:mod:`featuremill.transforms.ingest`, where a value that does not parse becomes a quarantine reason rather
than a silent null). Delta writes are idempotent per run: partitions are replaced with
``replaceWhere`` or rows are merged on their keys.

Every function here that creates or changes a table (or writes a document) takes the warehouse
root as a required ``root`` and refuses, with :class:`WritePathError` and before touching
anything, a path outside it (:func:`check_write_path`). No other module writes to storage
(``tests/unit/test_write_paths.py`` scans the library for direct writes).

A table reference is either a path (a local path or URI: it has a ``/`` or a scheme) or a
metastore name, ``schema.table`` or ``catalog.schema.table`` (:func:`is_table_name`). Every
function taking a table's ``path`` takes either: a name is read with ``DataFrameReader.table``,
written with ``saveAsTable`` (a managed table: the metastore picks its location), merged and
inspected through ``DeltaTable.forName`` or SQL on its quoted name. A name is written only in the
namespace the ``root`` carries (``EnvSpec.root``, from the environment's ``tables:``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from featuremill.config import SourceSpec
from featuremill.core.columns import CORRUPT_RECORD, SOURCE_FILE
from featuremill.core.errors import InputDataError, TableStateError, WritePathError
from featuremill.core.local_rows import local_dataframe
from featuremill.core.sql import col, literal, quote_identifier
from featuremill.storage.commit_retry import retry_on_conflict
from featuremill.storage.names import (
    forget_location,
    is_table_name,
    name_parts,
    table_identifier,
)

log = logging.getLogger(__name__)


#: The schemas (``[catalog.]schema``, quoted) this process created or found.
_SCHEMAS_CREATED: set[str] = set()


def load_delta(spark, ref: str, reader=None):
    """``reader`` (default ``spark.read.format("delta")``) loading the table ``ref``: by path or by name."""
    reader = spark.read.format("delta") if reader is None else reader
    return reader.table(ref) if is_table_name(ref) else reader.load(ref)


def _save(writer, ref: str, spark, commit: CommitTag | None = None) -> None:
    """``writer.save(path)``, or ``writer.saveAsTable(name)`` after creating the name's schema.

    ``saveAsTable`` creating or replacing a table (CREATE [OR REPLACE] TABLE AS SELECT) keeps the
    ``txnAppId``/``txnVersion`` writer options but drops ``userMetadata``, which exactly-once
    bookkeeping reads back: for a name the commit tag is also set as session confs around it.
    """
    if not is_table_name(ref):
        writer.save(ref)
        return
    namespace = ".".join(quote_identifier(p) for p in name_parts(ref)[:-1])
    if namespace not in _SCHEMAS_CREATED:  # once per process: a metastore call per write is slow
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {namespace}")
        _SCHEMAS_CREATED.add(namespace)
    forget_location(ref)
    with session_commit_tag(spark, commit):
        writer.saveAsTable(ref)


def _retried(what: str):
    """Re-run a write function (``fn(df, path, ...)``) on a Delta concurrency conflict, bounded.

    The whole function runs again, so it re-decides create-or-update and re-opens the table on
    its latest snapshot (see :mod:`featuremill.storage.commit_retry`).
    """
    import functools

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(df, path, *args, **kwargs):
            return retry_on_conflict(lambda: fn(df, path, *args, **kwargs), path=path, what=what)

        return wrapper

    return decorate


#: Session confs Delta reads for idempotent DML (MERGE/UPDATE/DELETE) and commit metadata.
TXN_APP_ID_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
_SESSION_TXN_LOCK = threading.Lock()


@dataclass(frozen=True)
class CommitTag:
    """What a write tells Delta about itself, for exactly-once commits.

    ``app_id``/``version`` become the commit's ``txnAppId``/``txnVersion``: Delta skips (commits
    nothing) a write whose version is not above the last one recorded for that application id in
    the table. ``user_metadata`` is stored in the commit's ``commitInfo.userMetadata``.
    """

    app_id: str
    version: int
    user_metadata: str = ""

    def writer_options(self) -> dict[str, str]:
        options = {"txnAppId": self.app_id, "txnVersion": str(int(self.version))}
        if self.user_metadata:
            options["userMetadata"] = self.user_metadata
        return options


#: The table property that turns on Delta's optimized writes for a table.
OPTIMIZE_WRITE = "delta.autoOptimize.optimizeWrite"


def _writer(
    df,
    *,
    commit: CommitTag | None,
    properties: Mapping[str, str] | None,
    creating: bool,
    partition_by: Sequence[str] = (),
):
    """A Delta DataFrameWriter with the commit tag and, for a new table, its table properties and
    partition columns.

    A new partitioned table also gets ``delta.autoOptimize.optimizeWrite = true`` unless
    ``properties`` set it: without it every task writes its own file into every partition value it
    holds (a year of dates from 16 shuffle partitions: 5,840 files of ~60 rows), and every later
    read and MERGE pays per file. Delta then shuffles by the partition columns before writing, so
    each date gets about one file per 512 MiB. Delta's session conf
    ``spark.databricks.delta.optimizeWrite.enabled``, when a cluster sets it, overrides the
    property either way.
    """
    writer = df.write.format("delta")
    for key, value in (commit.writer_options() if commit else {}).items():
        writer = writer.option(key, value)
    if creating:
        table_properties = dict(properties or {})
        if partition_by:
            table_properties.setdefault(OPTIMIZE_WRITE, "true")
            writer = writer.partitionBy(*partition_by)
        for key, value in table_properties.items():
            writer = writer.option(key, value)
    return writer


@contextlib.contextmanager
def session_commit_tag(spark, commit: CommitTag | None) -> Iterator[None]:
    """Set the commit tag as session confs for the duration of one DML command (MERGE).

    DataFrame writes take the tag as writer options; MERGE/UPDATE/DELETE only read session confs.
    The previous values are restored afterwards so no later write inherits the tag (and a
    platform's own ``userMetadata`` survives); a lock keeps two threads of one session from
    mixing their tags.
    """
    if commit is None:
        yield
        return
    wanted = {TXN_APP_ID_CONF: commit.app_id, TXN_VERSION_CONF: str(int(commit.version))}
    if commit.user_metadata:
        wanted[USER_METADATA_CONF] = commit.user_metadata
    with _SESSION_TXN_LOCK:
        previous = {key: spark.conf.get(key, None) for key in wanted}
        try:
            for key, value in wanted.items():
                spark.conf.set(key, value)
            yield
        finally:
            for key, value in previous.items():
                if value is None:
                    spark.conf.unset(key)
                else:
                    spark.conf.set(key, value)


def raw_schema(source: SourceSpec):
    """All declared columns as strings (plus the landing-partition column and a corrupt-record slot)."""
    from pyspark.sql.types import StringType, StructField, StructType

    fields = [StructField(c.name, StringType(), True) for c in source.columns]
    if source.format in ("csv", "json"):
        fields.append(StructField(CORRUPT_RECORD, StringType(), True))
    if source.partition_column:
        fields.append(StructField(source.partition_column, StringType(), True))
    return StructType(fields)


def read_raw_source(spark, source: SourceSpec, *, start: dt.date | None = None, end: dt.date | None = None):
    """Read a source as strings, pruned to landing partitions in ``[start, end]``.

    Columns: every declared column (string), ``_corrupt_record`` (csv/json: the raw line when it
    could not be split into fields), ``_source_file``, and the partition column when declared.
    The date filter is on the partition column, so it shows as ``PartitionFilters`` in the plan.
    """
    from pyspark.sql import functions as F

    options = {k: v for k, v in source.options}
    if source.format in ("csv", "json"):
        reader = spark.read.format(source.format).schema(raw_schema(source))
        for key, value in options.items():
            reader = reader.option(key, value)
        # The safety options last, so no source option can override them (validation refuses
        # them too: config.sources.RESERVED_READER_OPTIONS).
        reader = reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        if source.format == "csv":
            # enforceSchema=false makes Spark check each file's header against the declared
            # names and fail with the file's path instead of silently mapping by position.
            reader = reader.option("header", "true").option("enforceSchema", "false")
        if source.partition_column:
            reader = reader.option("basePath", source.path)
        df = _load(reader, source.path, source.name)
        df = df.withColumn(SOURCE_FILE, F.col("_metadata.file_path"))
    elif source.format == "parquet":
        df = _load(spark.read.options(**options).format("parquet"), source.path, source.name)
        check_declared_columns(spark, source, df.columns)
        df = df.withColumn(SOURCE_FILE, F.col("_metadata.file_path"))
        df = df.select(
            *[F.expr(f"try_cast({quote_identifier(c.name)} AS STRING)").alias(c.name) for c in source.columns],
            *(
                [col(source.partition_column).cast("string").alias(source.partition_column)]
                if source.partition_column
                else []
            ),
            SOURCE_FILE,
        )
    else:  # delta
        df = _load(spark.read.options(**options).format("delta"), source.path, source.name)
        check_declared_columns(spark, source, df.columns)
        df = df.select(
            *[F.expr(f"try_cast({quote_identifier(c.name)} AS STRING)").alias(c.name) for c in source.columns],
            *(
                [col(source.partition_column).cast("string").alias(source.partition_column)]
                if source.partition_column
                else []
            ),
            F.lit(source.path).alias(SOURCE_FILE),
        )
    if source.partition_column and (start or end):
        part = col(source.partition_column)
        if start:
            df = df.where(part >= F.lit(start.isoformat()))
        if end:
            df = df.where(part <= F.lit(end.isoformat()))
    return df


def check_declared_columns(spark, source: SourceSpec, found: Sequence[str]) -> None:
    """Refuse a Parquet or Delta source whose schema lacks a declared column, before any data is read.

    ``found``: the columns of the source as read (the schema Spark took from the files' footers or
    the Delta log, not their rows). Names match as Spark resolves them (``spark.sql.caseSensitive``).
    Raises :class:`InputDataError` naming the source's path and the first missing column; without
    it the missing column would fail as an unresolved column deep in the job. CSV files are checked
    by Spark itself as they are read (``enforceSchema=false``: every file's header against the
    declared names); a JSON record without a declared key reads as null, as for any record.
    """
    case_sensitive = str(spark.conf.get("spark.sql.caseSensitive", "false")).lower() == "true"

    def norm(name: str) -> str:
        return name if case_sensitive else name.lower()

    have = {norm(c) for c in found}
    wanted = list(source.column_names) + ([source.partition_column] if source.partition_column else [])
    missing = [c for c in wanted if norm(c) not in have]
    if missing:
        raise InputDataError(
            f"source {source.name!r}: the {source.format} data has no column {missing[0]!r}"
            + (f" (declared columns missing: {', '.join(missing)})" if len(missing) > 1 else "")
            + f"; its columns are {', '.join(found) or 'none'}: add the column upstream or remove it from "
            f"sources.{source.name}.columns before ingesting",
            file=source.path,
            field=missing[0],
        )


def _load(reader, path: str, name: str):
    try:
        return reader.load(path)
    except Exception as exc:  # AnalysisException: PATH_NOT_FOUND and friends
        message = str(exc).splitlines()[0]
        if "PATH_NOT_FOUND" in message or "Path does not exist" in message:
            raise InputDataError(f"source {name!r}: path does not exist", file=path) from None
        raise


# Over Spark Connect, delta-spark's ``DeltaTable`` needs Delta's Connect plugin on the server
# (``io.delta:delta-connect-server``); the helpers below use plain Delta SQL there instead, which
# any Connect server with Delta's SQL extension runs. Classic sessions keep ``DeltaTable``.


def _connect(spark) -> bool:
    from featuremill.core.session import is_connect

    return is_connect(spark)


def is_delta_table(spark, path: str) -> bool:
    if is_table_name(path):
        try:
            if not spark.catalog.tableExists(path):
                return False
            row = delta_detail(spark, path).select("format").first()
        except Exception:  # no such catalog or schema
            return False
        return row is not None and str(row["format"]).lower() == "delta"
    if _connect(spark):
        try:
            row = delta_detail(spark, path).select("format").first()
        except Exception:  # not a Delta table (or no such path)
            return False
        return row is not None and str(row["format"]).lower() == "delta"
    from delta.tables import DeltaTable

    try:
        return DeltaTable.isDeltaTable(spark, path)
    except Exception:
        return False


def delta_history(spark, path: str, limit: int | None = None):
    """``DeltaTable.history(limit)`` of the table at ``path`` (newest commit first)."""
    if _connect(spark):
        suffix = f" LIMIT {int(limit)}" if limit else ""
        return spark.sql(f"DESCRIBE HISTORY {table_identifier(path)}{suffix}")
    table = _delta_table(spark, path)
    return table.history(limit) if limit else table.history()


def delta_detail(spark, path: str):
    """``DeltaTable.detail()`` (one row: format, sizeInBytes, numFiles, properties...)."""
    if _connect(spark):
        return spark.sql(f"DESCRIBE DETAIL {table_identifier(path)}")
    return _delta_table(spark, path).detail()


def _delta_table(spark, ref: str):
    """``DeltaTable.forName`` or ``DeltaTable.forPath`` (classic sessions)."""
    from delta.tables import DeltaTable

    return DeltaTable.forName(spark, ref) if is_table_name(ref) else DeltaTable.forPath(spark, ref)


def merge_insert_new(df, path: str, on: str, *, root: str, what: str = "table") -> None:
    """MERGE ``df`` (alias ``s``) into the Delta table at ``path`` (alias ``t``), inserting the
    rows with no match for ``on`` and leaving every existing row alone. ``path`` must lie under
    ``root`` (:func:`check_write_path`)."""
    check_write_path(path, root, what=what)
    spark = df.sparkSession
    if _connect(spark):
        _sql_merge(df, path, on, ["WHEN NOT MATCHED THEN INSERT *"])
        return
    _delta_table(spark, path).alias("t").merge(df.alias("s"), on).whenNotMatchedInsertAll().execute()


def _sql_merge(df, path: str, on: str, clauses: Sequence[str], *, evolve_schema: bool = False) -> None:
    """``MERGE INTO delta.`path` t USING <df> s ON ... <clauses>`` through a temporary view."""
    import uuid

    spark = df.sparkSession
    view = f"featuremill_merge_source_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(view)
    evolution = " WITH SCHEMA EVOLUTION" if evolve_schema else ""
    try:
        spark.sql(f"MERGE{evolution} INTO {table_identifier(path)} AS t USING {view} AS s ON {on} " + " ".join(clauses))
    finally:
        spark.catalog.dropTempView(view)


class CommitInfo(NamedTuple):
    """One commit of a Delta table: its version, ``userMetadata`` and ``operationMetrics``."""

    version: int
    user_metadata: str | None
    operation_metrics: dict[str, str]


def delta_version(spark, path: str) -> int | None:
    """Latest committed version of the table at ``path``; ``None`` if there is no table."""
    if not is_delta_table(spark, path):
        return None
    fast = _log_commit(spark, path, None, version_only=True)
    if fast is not None:
        return fast.version
    row = delta_history(spark, path, 1).select("version").first()
    return int(row["version"]) if row else None


def latest_commit(spark, path: str) -> CommitInfo | None:
    """The latest commit of the table at ``path``, or ``None`` without a table."""
    if not is_delta_table(spark, path):
        return None
    fast = _log_commit(spark, path, None)
    if fast is not None:
        return fast
    row = delta_history(spark, path, 1).select("version", "userMetadata", "operationMetrics").first()
    return _commit_info(row) if row else None


def last_operation_metrics(spark, path: str) -> dict[str, str]:
    """``operationMetrics`` of the latest commit (rows inserted, updated, deleted, written...)."""
    latest = latest_commit(spark, path)
    return latest.operation_metrics if latest else {}


def commit_metrics(spark, path: str, version: int) -> dict[str, str]:
    """``operationMetrics`` of commit ``version`` of the table at ``path`` (empty when not in the log).

    By version, not "the latest": another writer (the quarantine table is shared by every
    source) may have committed after it.
    """
    from pyspark.sql import functions as F

    fast = _log_commit(spark, path, int(version))
    if fast is not None:
        return fast.operation_metrics
    # through delta_history: DESCRIBE HISTORY under Spark Connect, where DeltaTable needs a server plugin
    history = delta_history(spark, path)
    row = history.where(F.col("version") == F.lit(version)).select("operationMetrics").first()
    return dict(row["operationMetrics"] or {}) if row else {}


def _commit_info(row) -> CommitInfo:
    return CommitInfo(int(row["version"]), row["userMetadata"], dict(row["operationMetrics"] or {}))


def _log_commit(spark, path: str, version: int | None, *, version_only: bool = False) -> CommitInfo | None:
    """Commit ``version`` (default: the latest) read from the table's Delta log in the driver's JVM.

    ``DeltaTable.history`` builds a DataFrame of every field of the commits it reads: about 0.3 s
    a call, paid several times by every job's bookkeeping (which version was written, by which
    run, with how many rows). Reading the one commit through ``DeltaLog`` costs a few
    milliseconds. ``DeltaLog`` is Delta's internal API, so this is a shortcut only: ``None`` (the
    caller then reads the history) on Spark Connect, on a runtime whose Delta differs (Databricks
    ships its own), on any error, or when the commit has no ``commitInfo``.
    """
    if _connect(spark):
        return None
    from py4j.protocol import Py4JError

    from featuremill.storage import delta_log as log_files

    try:
        delta_log, snapshot = log_files.jvm_snapshot(spark, path)
        latest = int(snapshot.version())
        if latest < 0:
            return None
        target = latest if version is None else int(version)
        if version_only and version is None:
            return CommitInfo(latest, None, {})
        if target > latest or target < 0:
            return None
        try:
            changes = delta_log.getChanges(target, False)  # Delta 3.x - 4.0
        except Py4JError:  # Delta 4.1+: getChanges(startVersion, catalogTableOpt, failOnDataLoss)
            changes = delta_log.getChanges(target, spark._jvm.scala.Option.empty(), False)
        if not changes.hasNext():
            return None
        found = changes.next()
        if int(found._1()) != target:
            return None
        actions = found._2()
        for i in range(actions.size()):
            action = actions.apply(i)
            if action.getClass().getSimpleName() != "CommitInfo":
                continue
            metadata = action.userMetadata()
            metrics = action.operationMetrics()
            converted = (
                # JavaConverters: in Scala 2.12 (Spark 3.5) and 2.13 alike
                dict(spark._jvm.scala.collection.JavaConverters.mapAsJavaMap(metrics.get()))
                if metrics.isDefined()
                else {}
            )
            return CommitInfo(target, metadata.get() if metadata.isDefined() else None, converted)
        return None
    except Exception as exc:  # an internal API: any failure means "use the public history"
        log.debug("reading the Delta log of %s directly failed (%s); using its history", path, exc)
        return None


def table_size_bytes(spark, path: str) -> int:
    """Size on disk of a Delta table's current snapshot, from its log (no data scan)."""
    row = delta_detail(spark, path).select("sizeInBytes").first()
    return int(row["sizeInBytes"])


def read_delta(spark, path: str, *, version: int | None = None):
    """Read a Delta table, pinned to ``version`` when given (time travel)."""
    if not is_delta_table(spark, path):
        raise TableStateError(f"no Delta table at {path}; run the job that creates it first")
    reader = spark.read.format("delta")
    if version is not None:
        check_time_travel(spark, path, int(version))
        reader = reader.option("versionAsOf", int(version))
        try:
            return load_delta(spark, path, reader)  # resolving the version is eager: a missing one fails here
        except Exception as exc:
            text = str(exc)
            if "time travel" not in text.lower() and "VERSION" not in text:
                raise
            first = next((line.strip() for line in text.splitlines() if "version" in line.lower()), text[:300])
            raise TableStateError(
                f"cannot time travel the Delta table at {path} to version {version}: {first} "
                "(the commit was removed by log retention; keep delta.logRetentionDuration "
                "longer than the replay window)"
            ) from None
    return load_delta(spark, path, reader)


def read_change_feed(spark, path: str, *, start: int, end: int):
    """Delta's change data feed of the table at ``path`` for versions ``start`` to ``end`` (inclusive).

    The table's columns plus ``_change_type`` (insert, update_preimage, update_postimage, delete),
    ``_commit_version`` and ``_commit_timestamp``. Delta checks the range lazily: a version in it
    without the feed fails (``DELTA_MISSING_CHANGE_DATA``) when the scan is planned (an action, ``cache()``).
    """
    reader = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", int(start))
        .option("endingVersion", int(end))
    )
    return load_delta(spark, path, reader)


def check_time_travel(spark, path: str, version: int) -> None:
    """Refuse (:class:`TableStateError`) to read ``version`` when a VACUUM may have deleted its files.

    Delta keeps the commit (so ``VERSION AS OF`` resolves) after VACUUM deleted the data files
    that later commits removed; reading such a version then fails on a missing file, or, where
    ``spark.sql.files.ignoreMissingFiles`` is on, silently returns part of the rows. A VACUUM at
    time ``T`` with retention ``R`` deletes files removed before ``T - R``: version ``v`` is intact
    only if the commit after it (the first that could remove its files) is later than that. Reads
    the table history only (no data). Versions the log no longer has fail in Delta with the list
    of available versions.
    """
    from pyspark.sql import functions as F

    latest = delta_version(spark, path)
    if latest is None or version >= latest:
        return  # no later commit has removed a file of this version
    later = delta_history(spark, path).where(F.col("version") > F.lit(version))
    vacuum_ops = ["VACUUM START", "VACUUM END"]  # metadata-only commits: they remove no file
    first = later.where(~F.col("operation").isin(*vacuum_ops)).agg(F.min("version")).first()[0]
    if first is None:
        return  # nothing after this version removed files yet
    successor = later.where(F.col("version") == F.lit(first)).select("version", "timestamp").first()
    vacuums = (
        later.where((F.col("operation") == F.lit("VACUUM START")) & (F.col("version") > F.lit(first)))
        .select("version", "timestamp", "operationParameters")
        .collect()
    )  # a handful of rows
    for r in vacuums:
        params = r["operationParameters"] or {}
        retention_ms = params.get("specifiedRetentionMillis") or params.get("defaultRetentionMillis")
        if retention_ms is None:
            continue
        cutoff = r["timestamp"].timestamp() - int(retention_ms) / 1000.0
        if successor["timestamp"].timestamp() <= cutoff:
            raise TableStateError(
                f"version {version} of the Delta table at {path} can no longer be read in full: VACUUM (version "
                f"{r['version']}, {r['timestamp']}) deleted the files that version {successor['version']} "
                f"({successor['timestamp']}) replaced. Time travel only within the table's "
                "delta.deletedFileRetentionDuration; raise it (and logRetentionDuration) to cover the replay window"
            )


def date_range_predicate(column: str, start: dt.date, end: dt.date, *, qualifier: str = "") -> str:
    """``column >= DATE'start' AND column <= DATE'end'`` with the column quoted.

    Not ``BETWEEN``: Delta 4.0's replaceWhere fails to resolve it (INTERNAL_ERROR).
    """
    ident = (f"{qualifier}." if qualifier else "") + quote_identifier(column)
    return f"({ident} >= {literal(start)} AND {ident} <= {literal(end)})"


@_retried("replaceWhere write")
def replace_where(
    df,
    path: str,
    *,
    root: str,
    predicate: str,
    partition_by: Sequence[str] = (),
    evolve_schema: bool = False,
    commit: CommitTag | None = None,
    properties: Mapping[str, str] | None = None,
    what: str = "table",
) -> None:
    """Atomically replace the rows matching ``predicate`` with ``df`` (creating the table if needed).

    Delta refuses the write if any row of ``df`` falls outside ``predicate``, so a bug cannot
    overwrite more than the run owns. Callers must not pass an empty ``df`` unless they mean to
    delete the range. ``evolve_schema`` (``mergeSchema``) is set only after a schema contract
    check accepted the change (:mod:`featuremill.quality.contracts`). ``commit`` makes the write
    idempotent (see :class:`CommitTag`); ``properties`` are table properties set when the write
    creates the table. ``path`` must lie under ``root`` (:func:`check_write_path`).
    """
    check_write_path(path, root, what=what)
    spark = df.sparkSession
    creating = not is_delta_table(spark, path)
    writer = _writer(df, commit=commit, properties=properties, creating=creating, partition_by=partition_by)
    if evolve_schema:
        writer = writer.option("mergeSchema", "true")
    if not creating:
        _save(writer.mode("overwrite").option("replaceWhere", predicate), path, spark, commit)
    else:
        # "error" = ErrorIfExists; the Spark Connect client accepts only this spelling of it
        _save(writer.mode("error"), path, spark, commit)


@_retried("overwrite")
def overwrite(
    df,
    path: str,
    *,
    root: str,
    partition_by: Sequence[str] = (),
    overwrite_schema: bool = False,
    evolve_schema: bool = False,
    commit: CommitTag | None = None,
    properties: Mapping[str, str] | None = None,
    what: str = "table",
) -> None:
    """Replace the whole table (dimension snapshots; training sets, whose columns may change).

    ``overwrite_schema`` replaces the schema outright (a training set's columns follow its
    request); ``evolve_schema`` only adds new columns, as in :func:`replace_where`.
    ``commit``/``properties``/``root`` as in :func:`replace_where`.
    """
    check_write_path(path, root, what=what)
    creating = not is_delta_table(df.sparkSession, path)
    writer = _writer(df, commit=commit, properties=properties, creating=creating, partition_by=partition_by)
    writer = writer.mode("overwrite").option("overwriteSchema", str(overwrite_schema).lower())
    if evolve_schema and not overwrite_schema:
        writer = writer.option("mergeSchema", "true")
    if partition_by and not creating:
        # an existing table's overwrite restates its partitioning (a new one gets it in _writer)
        writer = writer.partitionBy(*partition_by)
    _save(writer, path, df.sparkSession, commit)


@_retried("append")
def append(
    df,
    path: str,
    *,
    root: str,
    partition_by: Sequence[str] = (),
    merge_schema: bool = False,
    commit: CommitTag | None = None,
    what: str = "table",
) -> None:
    """Append ``df`` to the Delta table at ``path`` (created on first use, ``partition_by`` then).

    ``merge_schema`` (``mergeSchema``) adds the columns ``df`` has and the table lacks: for
    featuremill's own record tables (run log, quality history) whose schema grows with releases,
    and for stream tables after a schema check accepted the change. ``commit`` makes the append
    idempotent (a replayed micro-batch's append is skipped). ``path`` must lie under ``root``.
    """
    check_write_path(path, root, what=what)
    creating = bool(partition_by) and not is_delta_table(df.sparkSession, path)
    writer = _writer(df, commit=commit, properties=None, creating=creating, partition_by=partition_by).mode("append")
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    _save(writer, path, df.sparkSession, commit)


def create_if_absent(df, path: str, *, root: str, what: str = "table") -> None:
    """Create the Delta table at ``path`` holding ``df``; fails (Delta's error) if it exists.

    For insert-if-absent tables (model registry, fitted states) whose first write must not
    silently land on a table another writer created meanwhile: the caller catches the failure
    and retries with a MERGE. ``path`` must lie under ``root``; :class:`WritePathError` is raised
    before anything is written, so callers that catch the creation failure must let it through.
    """
    check_write_path(path, root, what=what)
    # "error" = ErrorIfExists; the Spark Connect client accepts only this spelling of it
    _save(df.write.format("delta").mode("error"), path, df.sparkSession)


def merge_upsert(
    df, path: str, *, root: str, on: str, update_condition: str, commit: CommitTag | None = None, what: str = "table"
) -> dict[str, int] | None:
    """MERGE ``df`` (alias ``s``) into the existing Delta table at ``path`` (alias ``t``):
    matched rows for which ``update_condition`` holds are updated, unmatched rows inserted, no row
    deleted. ``commit`` is set as session confs around the MERGE (idempotent). Returns the
    MERGE's counts row as a dict, or ``None`` when Delta returned none (skipped as already
    committed). ``path`` must lie under ``root``.
    """
    check_write_path(path, root, what=what)
    spark = df.sparkSession
    builder = _delta_table(spark, path).alias("t").merge(df.alias("s"), on)
    builder = builder.whenMatchedUpdateAll(condition=update_condition).whenNotMatchedInsertAll()
    with session_commit_tag(spark, commit):
        # MERGE returns its counts as one row (none, or zeros, when Delta skipped it as committed)
        result = builder.execute().first()
    return None if result is None else result.asDict()


@_retried("MERGE")
def merge_range(
    df,
    path: str,
    *,
    keys: Iterable[str],
    value_columns: Iterable[str],
    partition_column: str,
    start: dt.date,
    end: dt.date,
    root: str,
    partition_by: Sequence[str] = (),
    evolve_schema: bool = False,
    commit: CommitTag | None = None,
    properties: Mapping[str, str] | None = None,
    what: str = "table",
) -> dict[str, str]:
    """Make the rows of ``path`` with ``partition_column`` in ``[start, end]`` equal ``df``.

    One MERGE on ``keys``, one commit: changed rows are updated, new rows inserted, rows of the
    range that ``df`` no longer has are deleted; rows whose values are identical are left alone.
    The deletions are not a NOT MATCHED BY SOURCE clause: with one, Delta reads and rewrites every
    file of the table, whatever the range (a daily run rewrote all 55 days of the demo's feature
    table). Instead the range's keys missing from ``df`` join the MERGE's source as deletion
    markers (:func:`_with_range_deletions`), so every clause is on matched or source rows and the
    range literal in the condition prunes the target to the range's files. (With
    ``evolve_schema``, whose MERGE adds the source's columns to the table, the NOT MATCHED BY
    SOURCE form is kept, so no marker column can be added.) A conflicting commit is retried on the
    latest snapshot, a bounded number of times (:mod:`featuremill.storage.commit_retry`).
    Creates the table on first use. Returns the commit's operation metrics, ``numSourceRows``
    counting ``df``'s rows (the markers left out). ``evolve_schema``
    turns on MERGE schema evolution: without it Delta silently drops source columns the target
    lacks, so callers set it after a schema contract check accepted new columns. ``commit`` makes
    the write idempotent (as writer options on creation, as session confs around the MERGE);
    ``properties`` are table properties set when the write creates the table. ``path`` must lie
    under ``root`` (:func:`check_write_path`).
    """
    check_write_path(path, root, what=what)
    spark = df.sparkSession
    if not is_delta_table(spark, path):
        writer = _writer(df, commit=commit, properties=properties, creating=True, partition_by=partition_by)
        _save(writer.mode("error"), path, spark, commit)
        return last_operation_metrics(spark, path)
    target_range = date_range_predicate(partition_column, start, end, qualifier="t")
    on = " AND ".join([f"t.{quote_identifier(k)} <=> s.{quote_identifier(k)}" for k in keys] + [target_range])
    existing = {c.lower() for c in load_delta(spark, path).columns} if evolve_schema else None
    # A column the target does not have yet exists only after evolution: a matched row needs an
    # update when its new value is not null (null is what the evolved row reads anyway).
    changed = " OR ".join(
        f"NOT (t.{quote_identifier(c)} <=> s.{quote_identifier(c)})"
        if existing is None or c.lower() in existing
        else f"s.{quote_identifier(c)} IS NOT NULL"
        for c in value_columns
    )
    if _connect(spark):
        clauses = [f"WHEN MATCHED AND ({changed}) THEN UPDATE SET *"] if changed else []
        clauses += ["WHEN NOT MATCHED THEN INSERT *", f"WHEN NOT MATCHED BY SOURCE AND {target_range} THEN DELETE"]
        with session_commit_tag(spark, commit):
            _sql_merge(df, path, on, clauses, evolve_schema=evolve_schema)
        return last_operation_metrics(spark, path)
    if evolve_schema:
        builder = _delta_table(spark, path).alias("t").merge(df.alias("s"), on)
        if changed:
            builder = builder.whenMatchedUpdateAll(condition=changed)
        builder = builder.whenNotMatchedInsertAll().whenNotMatchedBySourceDelete(condition=target_range)
        with session_commit_tag(spark, commit):
            builder.withSchemaEvolution().execute()
        return last_operation_metrics(spark, path)
    source = _with_range_deletions(
        df, load_delta(spark, path).where(date_range_predicate(partition_column, start, end)), keys=list(keys)
    )
    marker = f"s.{quote_identifier(DELETION_MARKER)}"
    builder = _delta_table(spark, path).alias("t").merge(source.alias("s"), on)
    builder = builder.whenMatchedDelete(condition=marker)
    if changed:
        builder = builder.whenMatchedUpdateAll(condition=f"NOT {marker} AND ({changed})")
    # without schema evolution UPDATE SET * / INSERT * take the target's columns only: the marker stays out
    builder = builder.whenNotMatchedInsertAll(condition=f"NOT {marker}")
    with session_commit_tag(spark, commit):
        builder.execute()
    metrics = dict(last_operation_metrics(spark, path))
    if "numSourceRows" in metrics and "numTargetRowsDeleted" in metrics:
        # a marker deletes exactly one row: one matching two target rows fails the MERGE (multiple match)
        metrics["numSourceRows"] = str(int(metrics["numSourceRows"]) - int(metrics["numTargetRowsDeleted"]))
    return metrics


#: The column :func:`merge_range` adds to its MERGE source: true on a deletion marker.
DELETION_MARKER = "__fm_delete"


def _with_range_deletions(df, target_range, *, keys: Sequence[str]):
    """``df`` with ``DELETION_MARKER`` false, plus one marker row (the keys, every other column
    null, ``DELETION_MARKER`` true) per key of ``target_range`` (the target's rows in the range)
    that ``df`` does not have, keys compared null-safe as in the MERGE condition."""
    from pyspark.sql import functions as F

    present = df.select(*[col(k) for k in keys]).alias("s")
    missing = (
        target_range.select(*[col(k) for k in keys])
        .alias("t")
        .join(
            present,
            [F.col(f"t.{quote_identifier(k)}").eqNullSafe(F.col(f"s.{quote_identifier(k)}")) for k in keys],
            "left_anti",
        )
        .select(*[F.col(f"t.{quote_identifier(k)}").alias(k) for k in keys])
    )
    return df.withColumn(DELETION_MARKER, F.lit(False)).unionByName(
        missing.withColumn(DELETION_MARKER, F.lit(True)), allowMissingColumns=True
    )


def add_missing_columns(spark, path: str, df, *, root: str, what: str = "table") -> list[str]:
    """Add to the Delta table at ``path`` the columns of ``df`` it lacks (nullable, at the end).

    For a job whose output gained a column (a table written by an older featuremill): rows
    already there get null until they are rewritten. Explicit DDL rather than MERGE schema
    evolution, so a misspelt column can never widen a table by accident elsewhere. Returns the
    names added; does nothing when the table does not exist yet. ``path`` must lie under ``root``.
    """
    check_write_path(path, root, what=what)
    if not is_delta_table(spark, path):
        return []
    existing = {f.name for f in load_delta(spark, path).schema.fields}
    missing = [f for f in df.schema.fields if f.name not in existing]
    if missing:
        columns = ", ".join(f"{quote_identifier(f.name)} {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE {table_identifier(path)} ADD COLUMNS ({columns})")
        log.info("table %s: added column(s) %s", path, ", ".join(f.name for f in missing))
    return [f.name for f in missing]


def write_text(spark, path: str, text: str, *, root: str, what: str = "document") -> None:
    """Write a small text document (a manifest) to ``path``: a local file, or through Spark.

    Local paths (and FUSE mounts such as ``/dbfs`` or ``/Volumes``) are written as one plain
    file. A URI (``s3://``, ``abfss://``...) becomes a folder holding one text part written by
    Spark, which :func:`read_text` reads back; no JVM internals, so it works on Spark Connect.
    ``path`` must lie under ``root`` (:func:`check_write_path`).
    """
    import os

    check_write_path(path, root, what=what)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path) and not path.startswith("file:"):
        df = local_dataframe(spark, [(text,)], "value string")
        df.write.mode("overwrite").option("lineSep", "\n").text(path)
        return
    local = path[len("file:") :] if path.startswith("file:") else path
    parent = os.path.dirname(os.path.abspath(local))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{local}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, local)  # atomic on one file system: readers never see half a manifest


def read_text(spark, path: str) -> str:
    """Read what :func:`write_text` wrote (a local file, or a folder written by Spark)."""
    import os

    local = path[len("file:") :] if path.startswith("file:") else path
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", local):
        if os.path.isfile(local):
            with open(local, encoding="utf-8") as handle:
                return handle.read()
        if not os.path.exists(local):
            # Checked here rather than by a failed Spark read, which logs a JVM stack trace.
            raise InputDataError("file not found", file=path)
    try:
        rows = spark.read.option("wholetext", "true").text(path).collect()  # one small document
    except Exception as exc:
        message = str(exc).splitlines()[0]
        if "PATH_NOT_FOUND" in message or "Path does not exist" in message:
            raise InputDataError("file not found", file=path) from None
        raise
    return "".join(r[0] for r in rows)


TABLE_FORMATS = ("delta", "parquet", "csv", "json")


def read_table(spark, path: str, *, fmt: str | None = None, version: int | None = None):
    """Read a user-supplied table (a spine): Delta (pinned to ``version``), Parquet, CSV or JSON.

    ``fmt`` defaults to ``delta`` when ``path`` holds a Delta table, else to the file extension
    (``.csv``, ``.json``), else ``parquet``. CSV needs a header; its types are inferred. Returns
    ``(DataFrame, format)``; :class:`InputDataError` naming the path when it does not exist.
    """
    if fmt is None and is_table_name(path):
        fmt = "delta"
    if fmt is None:
        lowered = path.rstrip("/").lower()
        fmt = (
            "delta"
            if is_delta_table(spark, path)
            else "csv"
            if lowered.endswith(".csv")
            else "json"
            if lowered.endswith((".json", ".jsonl"))
            else "parquet"
        )
    if fmt not in TABLE_FORMATS:
        raise InputDataError(f"unknown table format {fmt!r} (use one of {', '.join(TABLE_FORMATS)})", file=path)
    if fmt == "delta":
        if not is_delta_table(spark, path):
            raise InputDataError("not a Delta table", file=path)
        return read_delta(spark, path, version=version), fmt
    if version is not None:
        raise InputDataError(f"a {fmt} table has no versions to time-travel to", file=path)
    reader = spark.read.format(fmt)
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    return _load(reader, path, path), fmt


def table_properties(spark, path: str) -> dict[str, str]:
    """The table properties of the Delta table at ``path``.

    ``SHOW TBLPROPERTIES`` reads only the table's metadata; ``DeltaTable.detail()`` would also
    compute file counts and sizes from the snapshot's state.
    """
    rows = spark.sql(f"SHOW TBLPROPERTIES {table_identifier(path)}").collect()
    return {r["key"]: r["value"] for r in rows}


def set_table_properties(spark, path: str, properties: Mapping[str, str], *, root: str, what: str = "table") -> None:
    """``ALTER TABLE delta.`path` SET TBLPROPERTIES (...)``: one metadata-only commit.

    ``path`` must lie under ``root`` (:func:`check_write_path`)."""
    check_write_path(path, root, what=what)
    if not properties:
        return
    assignments = ", ".join(f"{literal(k)} = {literal(v)}" for k, v in sorted(properties.items()))
    spark.sql(f"ALTER TABLE {table_identifier(path)} SET TBLPROPERTIES ({assignments})")


def replace_table(df, path: str, *, root: str, what: str = "table", partition_by: Sequence[str] = ()) -> None:
    """Replace the whole table at ``path`` with ``df``, schema included (outputs featuremill owns
    entirely, such as replays). ``path`` must lie under ``root`` (the warehouse): the table is
    replaced wholesale, so a path given by a user is checked here, at the write itself
    (:func:`check_write_path`), whatever the caller checked before."""
    check_write_path(path, root, what=what)
    # replaced wholesale, schema and partitioning included: written as a new table
    writer = _writer(df, commit=None, properties=None, creating=True, partition_by=partition_by)
    _save(writer.mode("overwrite").option("overwriteSchema", "true"), path, df.sparkSession)


def _normalised(path: str) -> tuple[str, str]:
    """``(scheme://authority, normalised absolute path)`` of a local path or URI, ``..`` resolved."""
    import os
    import posixpath

    text = str(path)
    if text.startswith("file:"):
        text = re.sub(r"^file:(//)?", "", text)
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/]*)(/.*)?$", text)
    if match:
        return match.group(1).lower(), posixpath.normpath(match.group(2) or "/")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text) and not re.match(r"^[A-Za-z]:[\\/]", text):
        scheme, _, rest = text.partition(":")  # dbfs:/x
        return scheme.lower() + ":", posixpath.normpath(rest or "/")
    # realpath: a symlink inside the warehouse must not lead a write outside it.
    return "", os.path.realpath(os.path.abspath(text))


def check_write_path(path: str, root: str, *, what: str = "table") -> str:
    """Return ``path`` when it lies under ``root`` (the warehouse); :class:`WritePathError` otherwise.

    Paths are compared after resolving ``..`` (and, for local paths, symlinks), so
    ``<warehouse>/../elsewhere`` is refused like ``/elsewhere``. Call it before any work starts.

    A table name (:func:`is_table_name`) must lie in the namespace ``root`` carries
    (``EnvSpec.root``: the environment's ``tables:``), compared case-insensitively.
    """
    if is_table_name(path):
        namespace = getattr(root, "namespace", None)
        parts = [p.lower() for p in name_parts(path)]
        if namespace and ".".join(parts[:-1]) == namespace.lower():
            return path
        where = (
            f"it is outside the environment's table namespace {namespace}; name it {namespace}.<table>"
            if namespace
            else "the environment names no table namespace; set tables: {schema: ...} in the environment file"
        )
        raise WritePathError(f"refusing to write the {what} {path}: {where}")
    scheme, target = _normalised(path)
    root_scheme, base = _normalised(root)
    inside = scheme == root_scheme and (target == base or target.startswith(base.rstrip("/") + "/"))
    if not inside:
        raise WritePathError(
            f"refusing to write the {what} at {path}: it is outside the warehouse root {root}; "
            f"choose a path under {root.rstrip('/')}/ (or point the environment's warehouse at "
            f"the place you want featuremill to write)"
        )
    return path
