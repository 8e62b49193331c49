"""Ingest transforms: parse raw string records against the declared schema and split good from bad.

Every input row ends in exactly one place: the validated output or the quarantine with a reason.
All checks are Spark expressions (``try_cast``, ``try_to_timestamp``), so a bad value yields a
reason, never an exception, and the same split comes out whether ANSI mode is on or off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from featuremill.config import ColumnSpec, SourceSpec
from featuremill.core.columns import CORRUPT_RECORD, SOURCE_FILE
from featuremill.core.sql import col, literal, quote_identifier

#: Columns the classification adds; the validated table keeps EVENT_DATE, INGEST_DATE, SOURCE_FILE.
EVENT_DATE = "event_date"
INGEST_DATE = "_ingest_date"
REASON = "_reason"
RULE = "_rule"
RAW_RECORD = "_raw_record"

#: Quarantine table columns (one row per rejected input row).
QUARANTINE_COLUMNS = ("source", INGEST_DATE, "source_file", "raw_record", "rule", "reason")

_VALUE_CHARS = 120


@dataclass(frozen=True)
class RowCheck:
    """An extra row-level rule: rows where ``failed`` is true are quarantined under ``rule``.

    ``failed`` is a boolean Column (null counts as passed); ``message`` a string Column that
    explains the failure for that row.
    """

    rule: str
    failed: object
    message: object


def parse_expression(name: str, spec: ColumnSpec):
    """Column for the typed value of raw string column ``name``; null when it does not parse.

    Uses SQL ``try_cast`` / ``try_to_timestamp`` (Spark 3.5 and 4.x; ANSI on or off).
    """
    from pyspark.sql import functions as F

    ident = quote_identifier(name)
    if spec.type == "string":
        return F.col(ident)
    if spec.type == "timestamp":
        if spec.format:
            return F.expr(f"try_to_timestamp({ident}, {literal(spec.format)})")
        return F.expr(f"try_cast(trim({ident}) AS TIMESTAMP)")
    if spec.type == "date":
        if spec.format:
            return F.expr(f"to_date(try_to_timestamp({ident}, {literal(spec.format)}))")
        return F.expr(f"try_cast(trim({ident}) AS DATE)")
    if spec.type == "boolean":
        return F.expr(f"try_cast(lower(trim({ident})) AS BOOLEAN)")
    return F.expr(f"try_cast(trim({ident}) AS {spec.type.upper()})")


def _shown(column):
    """A raw value cut to a readable length for a reason message."""
    from pyspark.sql import functions as F

    return F.when(
        F.length(column) > _VALUE_CHARS, F.concat(F.substring(column, 1, _VALUE_CHARS), F.lit("..."))
    ).otherwise(column)


def column_checks(source: SourceSpec) -> list[RowCheck]:
    """The schema contract of a source as row checks over raw columns and their parsed values.

    Expects the raw string columns plus ``__parsed_<name>`` for each declared column.
    """
    from pyspark.sql import functions as F

    checks: list[RowCheck] = []
    if source.format in ("csv", "json"):
        checks.append(
            RowCheck(
                "malformed",
                F.col(CORRUPT_RECORD).isNotNull(),
                F.lit("malformed record: could not be split into the declared fields"),
            )
        )
    key = set(source.key)
    for spec in source.columns:
        raw = col(spec.name)
        parsed = col(f"__parsed_{spec.name}")
        # Bytes that are not valid UTF-8 are decoded as U+FFFD: the original value is lost, so the
        # row is quarantined rather than stored altered.
        checks.append(
            RowCheck(
                "encoding",
                F.instr(raw, "\ufffd") > 0,
                F.lit(f"field '{spec.name}': invalid UTF-8 byte sequence (decoded as U+FFFD)"),
            )
        )
        checks.append(
            RowCheck(
                "type",
                raw.isNotNull() & parsed.isNull(),
                F.concat(F.lit(f"field '{spec.name}': cannot parse '"), _shown(raw), F.lit(f"' as {spec.type}")),
            )
        )
        if not spec.nullable or spec.name in key or spec.name == source.event_time:
            checks.append(
                RowCheck(
                    "not_null",
                    raw.isNull(),
                    F.lit(f"field '{spec.name}': null in a required column"),
                )
            )
        if spec.type in ("double", "float") and not spec.allow_non_finite:
            checks.append(
                RowCheck(
                    "non_finite",
                    F.isnan(parsed) | parsed.isin(float("inf"), float("-inf")),
                    F.concat(F.lit(f"field '{spec.name}': non-finite value '"), _shown(raw), F.lit("'")),
                )
            )
    if source.partition_column:
        part = col(source.partition_column)
        checks.append(
            RowCheck(
                "partition",
                part.isNull() | F.expr(f"try_cast({quote_identifier(source.partition_column)} AS DATE)").isNull(),
                F.concat(
                    F.lit(f"partition '{source.partition_column}': '"),
                    F.coalesce(part, F.lit("null")),
                    F.lit("' is not a date (YYYY-MM-DD)"),
                ),
            )
        )
    return checks


def with_classification(raw, *, source: SourceSpec, ingest_date, extra_checks: Sequence[RowCheck] = ()):
    """DataFrame -> DataFrame: typed columns plus the verdict for each raw row.

    Input: the string columns of :func:`featuremill.storage.io.read_raw_source` (declared columns,
    ``_corrupt_record`` for csv/json, ``_source_file``, the partition column if any).
    ``ingest_date`` is a ``datetime.date`` used when the source has no landing partition.

    Output, one row per input row (same grain): every declared column with its declared type
    (null where the raw value did not parse), ``event_date`` (date of the event time, for event
    sources), ``_ingest_date`` (date: the landing partition, or ``ingest_date``), ``_source_file``
    (string), ``_raw_record`` (string: the raw line or the raw fields as JSON), ``_rule`` (string,
    null when valid: the first failed rule) and ``_reason`` (string, null when valid: every failed
    check, ``; ``-separated).
    """
    from pyspark.sql import functions as F

    df = raw.select(
        "*",
        *[parse_expression(c.name, c).alias(f"__parsed_{c.name}") for c in source.columns],
    )
    checks = list(column_checks(source)) + list(extra_checks)
    rules = F.array(*[F.when(c.failed, F.lit(c.rule)) for c in checks])
    messages = F.array(*[F.when(c.failed, c.message) for c in checks])
    raw_fields = F.to_json(F.struct(*[col(c.name) for c in source.columns]))
    raw_record = F.coalesce(col(CORRUPT_RECORD), raw_fields) if source.format in ("csv", "json") else raw_fields
    ingest = (
        F.expr(f"try_cast({quote_identifier(source.partition_column)} AS DATE)")
        if source.partition_column
        else F.lit(ingest_date)
    )
    df = df.select(
        *[col(f"__parsed_{c.name}").alias(c.name) for c in source.columns],
        ingest.alias(INGEST_DATE),
        col(SOURCE_FILE).alias(SOURCE_FILE),
        raw_record.alias(RAW_RECORD),
        F.get(F.filter(rules, lambda x: x.isNotNull()), 0).alias(RULE)
        if checks
        else F.lit(None).cast("string").alias(RULE),
        F.concat_ws("; ", F.filter(messages, lambda x: x.isNotNull())).alias(REASON),
    )
    df = df.withColumn(REASON, F.when(col(RULE).isNotNull(), col(REASON)))
    if source.event_time:
        df = df.withColumn(EVENT_DATE, F.to_date(col(source.event_time)))
    return df


def with_duplicates_flagged(classified, *, key: Sequence[str], existing_keys=None):
    """DataFrame -> DataFrame: mark repeated keys among valid rows as ``duplicate``.

    Within the batch the kept copy is the one from the earliest landing date, then file, then raw
    text (deterministic). ``existing_keys``, when given, holds ``key`` columns plus
    ``_existing_ingest_date`` for rows already in the validated table from other landing dates:
    a valid row whose key is there is a duplicate too. Rows already invalid are not touched.
    Same columns and grain as the input.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    key_cols = [col(k) for k in key]
    valid = col(RULE).isNull()
    order = Window.partitionBy(*key_cols, valid).orderBy(col(INGEST_DATE), col(SOURCE_FILE), col(RAW_RECORD))
    rank = F.when(valid, F.row_number().over(order))
    key_text = F.to_json(F.struct(*key_cols))
    df = classified.withColumn("__dup_in_batch", F.coalesce(rank > 1, F.lit(False)))
    df = df.withColumn(
        REASON,
        F.when(
            col("__dup_in_batch"),
            F.concat(
                F.lit("duplicate event: key "),
                key_text,
                F.lit(" appears more than once in this batch (first copy kept)"),
            ),
        ).otherwise(col(REASON)),
    )
    df = df.withColumn(RULE, F.when(col("__dup_in_batch"), F.lit("duplicate")).otherwise(col(RULE)))
    if existing_keys is not None:
        df = df.join(existing_keys, on=list(key), how="left")
        df = df.withColumn("__dup_existing", col(RULE).isNull() & col("_existing_ingest_date").isNotNull())
        df = df.withColumn(
            REASON,
            F.when(
                col("__dup_existing"),
                F.concat(
                    F.lit("duplicate event: key "),
                    key_text,
                    F.lit(" was already ingested from landing date "),
                    col("_existing_ingest_date").cast("string"),
                ),
            ).otherwise(col(REASON)),
        )
        df = df.withColumn(RULE, F.when(col("__dup_existing"), F.lit("duplicate")).otherwise(col(RULE)))
        df = df.drop("_existing_ingest_date", "__dup_existing")
    return df.drop("__dup_in_batch")


def valid_rows(classified, *, source: SourceSpec):
    """The validated-table projection of the rows with no failed rule."""
    from pyspark.sql import functions as F

    cols = [col(c.name) for c in source.columns]
    extra = [col(EVENT_DATE)] if source.event_time else []
    return classified.where(F.col(RULE).isNull()).select(*cols, *extra, col(INGEST_DATE), col(SOURCE_FILE))


def quarantine_rows(classified, *, source: SourceSpec, fallback_ingest_date):
    """The quarantine-table projection of the rows with a failed rule (see ``QUARANTINE_COLUMNS``).

    Rows whose landing partition is not a date are filed under ``fallback_ingest_date``.
    """
    from pyspark.sql import functions as F

    return classified.where(F.col(RULE).isNotNull()).select(
        F.lit(source.name).alias("source"),
        F.coalesce(col(INGEST_DATE), F.lit(fallback_ingest_date)).alias(INGEST_DATE),
        col(SOURCE_FILE).alias("source_file"),
        col(RAW_RECORD).alias("raw_record"),
        col(RULE).alias("rule"),
        col(REASON).alias("reason"),
    )
