"""Reads and writes: the only module that touches storage.

Raw sources are read with every declared column as a string (parsing happens in
:mod:`featuremill.ingest`, where a value that does not parse becomes a quarantine reason rather
than a silent null). Delta writes are idempotent per run: partitions are replaced with
``replaceWhere`` or rows are merged on their keys.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence

from featuremill.config import SourceSpec
from featuremill.errors import InputDataError, TableStateError
from featuremill.sql import col, literal, quote_identifier

log = logging.getLogger(__name__)

CORRUPT_RECORD = "_corrupt_record"
SOURCE_FILE = "_source_file"

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


def _writer(df, *, commit: CommitTag | None, properties: Mapping[str, str] | None, creating: bool):
    """A Delta DataFrameWriter with the commit tag and, for a new table, its table properties."""
    writer = df.write.format("delta")
    for key, value in (commit.writer_options() if commit else {}).items():
        writer = writer.option(key, value)
    if creating:
        for key, value in (properties or {}).items():
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
        reader = reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        if source.format == "csv":
            # enforceSchema=false makes Spark check each file's header against the declared
            # names and fail with the file's path instead of silently mapping by position.
            reader = reader.option("header", "true").option("enforceSchema", "false")
        if source.partition_column:
            reader = reader.option("basePath", source.path)
        for key, value in options.items():
            reader = reader.option(key, value)
        df = _load(reader, source.path, source.name)
        df = df.withColumn(SOURCE_FILE, F.col("_metadata.file_path"))
    elif source.format == "parquet":
        df = _load(spark.read.options(**options).format("parquet"), source.path, source.name)
        df = df.withColumn(SOURCE_FILE, F.col("_metadata.file_path"))
        df = df.select(*[F.expr(f"try_cast({quote_identifier(c.name)} AS STRING)").alias(c.name)
                         for c in source.columns],
                       *([col(source.partition_column).cast("string").alias(source.partition_column)]
                         if source.partition_column else []), SOURCE_FILE)
    else:  # delta
        df = _load(spark.read.options(**options).format("delta"), source.path, source.name)
        df = df.select(*[F.expr(f"try_cast({quote_identifier(c.name)} AS STRING)").alias(c.name)
                         for c in source.columns],
                       *([col(source.partition_column).cast("string").alias(source.partition_column)]
                         if source.partition_column else []),
                       F.lit(source.path).alias(SOURCE_FILE))
    if source.partition_column and (start or end):
        part = col(source.partition_column)
        if start:
            df = df.where(part >= F.lit(start.isoformat()))
        if end:
            df = df.where(part <= F.lit(end.isoformat()))
    return df


def _load(reader, path: str, name: str):
    try:
        return reader.load(path)
    except Exception as exc:  # AnalysisException: PATH_NOT_FOUND and friends
        message = str(exc).splitlines()[0]
        if "PATH_NOT_FOUND" in message or "Path does not exist" in message:
            raise InputDataError(f"source {name!r}: path does not exist", file=path) from None
        raise


def is_delta_table(spark, path: str) -> bool:
    from delta.tables import DeltaTable

    try:
        return DeltaTable.isDeltaTable(spark, path)
    except Exception:
        return False


def delta_version(spark, path: str) -> int | None:
    """Latest committed version of the table at ``path``; ``None`` if there is no table."""
    from delta.tables import DeltaTable

    if not is_delta_table(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return int(row["version"]) if row else None


def last_operation_metrics(spark, path: str) -> dict[str, str]:
    """``operationMetrics`` of the latest commit (rows inserted, updated, deleted, written...)."""
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).history(1).select("operationMetrics").first()
    return dict(row["operationMetrics"] or {}) if row else {}


def table_size_bytes(spark, path: str) -> int:
    """Size on disk of a Delta table's current snapshot, from its log (no data scan)."""
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).detail().select("sizeInBytes").first()
    return int(row["sizeInBytes"])


def read_delta(spark, path: str, *, version: int | None = None):
    """Read a Delta table, pinned to ``version`` when given (time travel)."""
    if not is_delta_table(spark, path):
        raise TableStateError(f"no Delta table at {path}; run the job that creates it first")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", int(version))
    return reader.load(path)


def date_range_predicate(column: str, start: dt.date, end: dt.date, *, qualifier: str = "") -> str:
    """``column >= DATE'start' AND column <= DATE'end'`` with the column quoted.

    Not ``BETWEEN``: Delta 4.0's replaceWhere fails to resolve it (INTERNAL_ERROR).
    """
    ident = (f"{qualifier}." if qualifier else "") + quote_identifier(column)
    return f"({ident} >= {literal(start)} AND {ident} <= {literal(end)})"


def replace_where(df, path: str, *, predicate: str, partition_by: Sequence[str] = (),
                  commit: CommitTag | None = None, properties: Mapping[str, str] | None = None) -> None:
    """Atomically replace the rows matching ``predicate`` with ``df`` (creating the table if needed).

    Delta refuses the write if any row of ``df`` falls outside ``predicate``, so a bug cannot
    overwrite more than the run owns. Callers must not pass an empty ``df`` unless they mean to
    delete the range. ``commit`` makes the write idempotent (see :class:`CommitTag`);
    ``properties`` are table properties set when the write creates the table.
    """
    spark = df.sparkSession
    if is_delta_table(spark, path):
        writer = _writer(df, commit=commit, properties=properties, creating=False)
        writer.mode("overwrite").option("replaceWhere", predicate).save(path)
    else:
        writer = _writer(df, commit=commit, properties=properties, creating=True)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.mode("errorifexists").save(path)


def overwrite(df, path: str, *, partition_by: Sequence[str] = (), commit: CommitTag | None = None,
              properties: Mapping[str, str] | None = None) -> None:
    """Replace the whole table (dimension snapshots). ``commit``/``properties`` as in :func:`replace_where`."""
    creating = not is_delta_table(df.sparkSession, path)
    writer = _writer(df, commit=commit, properties=properties, creating=creating)
    writer = writer.mode("overwrite").option("overwriteSchema", "false")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def append(df, path: str, *, partition_by: Sequence[str] = ()) -> None:
    writer = df.write.format("delta").mode("append")
    if partition_by and not is_delta_table(df.sparkSession, path):
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def merge_range(df, path: str, *, keys: Iterable[str], value_columns: Iterable[str], partition_column: str,
                start: dt.date, end: dt.date, partition_by: Sequence[str] = (), commit: CommitTag | None = None,
                properties: Mapping[str, str] | None = None) -> dict[str, str]:
    """Make the rows of ``path`` with ``partition_column`` in ``[start, end]`` equal ``df``.

    MERGE on ``keys``: changed rows are updated, new rows inserted, rows of the range that ``df``
    no longer has are deleted; rows whose values are identical are left alone. The range literal in
    the condition lets Delta prune files and lets runs on disjoint ranges commit concurrently.
    Creates the table on first use. Returns the commit's operation metrics. ``commit`` makes the
    write idempotent (as writer options on creation, as session confs around the MERGE);
    ``properties`` are table properties set when the write creates the table.
    """
    from delta.tables import DeltaTable

    spark = df.sparkSession
    if not is_delta_table(spark, path):
        writer = _writer(df, commit=commit, properties=properties, creating=True)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.mode("errorifexists").save(path)
        return last_operation_metrics(spark, path)
    target_range = date_range_predicate(partition_column, start, end, qualifier="t")
    on = " AND ".join([f"t.{quote_identifier(k)} <=> s.{quote_identifier(k)}" for k in keys] + [target_range])
    changed = " OR ".join(f"NOT (t.{quote_identifier(c)} <=> s.{quote_identifier(c)})" for c in value_columns)
    builder = DeltaTable.forPath(spark, path).alias("t").merge(df.alias("s"), on)
    if changed:
        builder = builder.whenMatchedUpdateAll(condition=changed)
    builder = builder.whenNotMatchedInsertAll().whenNotMatchedBySourceDelete(condition=target_range)
    with session_commit_tag(spark, commit):
        builder.execute()
    return last_operation_metrics(spark, path)


def table_properties(spark, path: str) -> dict[str, str]:
    """The table properties of the Delta table at ``path``.

    ``SHOW TBLPROPERTIES`` reads only the table's metadata; ``DeltaTable.detail()`` would also
    compute file counts and sizes from the snapshot's state.
    """
    from featuremill.sql import delta_path_identifier

    rows = spark.sql(f"SHOW TBLPROPERTIES {delta_path_identifier(path)}").collect()
    return {r["key"]: r["value"] for r in rows}


def set_table_properties(spark, path: str, properties: Mapping[str, str]) -> None:
    """``ALTER TABLE delta.`path` SET TBLPROPERTIES (...)``: one metadata-only commit."""
    from featuremill.sql import delta_path_identifier

    if not properties:
        return
    assignments = ", ".join(f"{literal(k)} = {literal(v)}" for k, v in sorted(properties.items()))
    spark.sql(f"ALTER TABLE {delta_path_identifier(path)} SET TBLPROPERTIES ({assignments})")


def latest_commit(spark, path: str) -> tuple[int, str | None] | None:
    """``(version, userMetadata)`` of the table's latest commit, or ``None`` without a table."""
    from delta.tables import DeltaTable

    if not is_delta_table(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version", "userMetadata").first()
    return (int(row["version"]), row["userMetadata"]) if row else None


def replace_table(df, path: str, *, partition_by: Sequence[str] = ()) -> None:
    """Replace the whole table at ``path`` with ``df``, schema included (outputs featuremill owns
    entirely, such as replays)."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)
