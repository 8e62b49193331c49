"""Stream transforms: Kafka records -> classified rows, with the batch ingest's checks.

Every record of a micro-batch ends in exactly one place: the stream's validated table or its
quarantine with a reason. The checks are the batch ingest's own
(:func:`featuremill.transforms.ingest.parse_expression`, :func:`~featuremill.transforms.ingest.column_checks`,
the ``quarantine`` quality rules and :func:`~featuremill.transforms.ingest.with_duplicates_flagged`),
plus ``late``: an event older than the stream's watermark (the newest event time of the earlier
micro-batches minus the allowed lateness).
"""

from __future__ import annotations

import dataclasses

from featuremill.config import SourceSpec
from featuremill.core.columns import CORRUPT_RECORD, SOURCE_FILE
from featuremill.core.sql import col
from featuremill.transforms.ingest import (
    EVENT_DATE,
    INGEST_DATE,
    RAW_RECORD,
    REASON,
    RULE,
    column_checks,
    parse_expression,
)

#: Kafka metadata kept on every record (and in the stream's quarantine table).
TOPIC = "_topic"
PARTITION = "_partition"
OFFSET = "_offset"
KAFKA_TIMESTAMP = "_kafka_timestamp"

#: Stream quarantine columns: one row per rejected record.
STREAM_QUARANTINE_COLUMNS = (
    "source",
    "topic",
    "partition",
    "offset",
    "kafka_timestamp",
    "raw_value",
    "rule",
    "reason",
    INGEST_DATE,
    "stream_id",
    "batch_id",
)
#: Columns the stream's validated table adds to the source's declared columns.
STREAM_ID = "_stream_id"
BATCH_ID = "_batch_id"


def json_source(source: SourceSpec) -> SourceSpec:
    """``source`` as the stream reads it: JSON values (so the ``malformed`` check applies), no landing partition."""
    return dataclasses.replace(source, format="json", partition_column=None)


def kafka_records(kafka, *, source: SourceSpec):
    """DataFrame -> DataFrame: Kafka records -> one row of raw string fields per record.

    Input: the Kafka source's columns (``key``, ``value`` binary, ``topic``, ``partition``,
    ``offset``, ``timestamp``). Output, same grain: every declared column as a string (a JSON
    number or object is kept as its JSON text, so the declared type is checked by the same parsing
    as a CSV field), ``_corrupt_record`` (the value when it is not a JSON object, else null),
    ``_source_file`` (``kafka://<topic>/<partition>/<offset>``), ``_raw_record`` (the value as
    text), ``_topic``, ``_partition``, ``_offset``, ``_kafka_timestamp``.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = T.StructType(
        [T.StructField(c.name, T.StringType()) for c in source.columns]
        + [T.StructField(CORRUPT_RECORD, T.StringType())]
    )
    value = F.col("value").cast("string")
    parsed = F.from_json(value, schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_RECORD})
    df = kafka.select(
        value.alias(RAW_RECORD),
        parsed.alias("__fm_json"),
        F.col("topic").alias(TOPIC),
        F.col("partition").alias(PARTITION),
        F.col("offset").alias(OFFSET),
        F.col("timestamp").alias(KAFKA_TIMESTAMP),
    )
    # A null value (a tombstone) or one that is not a JSON object is malformed as a whole.
    corrupt = F.when(
        col("__fm_json").isNull() | F.col("__fm_json").getField(CORRUPT_RECORD).isNotNull() | col(RAW_RECORD).isNull(),
        F.coalesce(col(RAW_RECORD), F.lit("")),
    )
    return df.select(
        *[F.when(corrupt.isNull(), F.col("__fm_json").getField(c.name)).alias(c.name) for c in source.columns],
        corrupt.alias(CORRUPT_RECORD),
        F.concat(F.lit("kafka://"), col(TOPIC), F.lit("/"), col(PARTITION), F.lit("/"), col(OFFSET)).alias(SOURCE_FILE),
        col(RAW_RECORD),
        col(TOPIC),
        col(PARTITION),
        col(OFFSET),
        col(KAFKA_TIMESTAMP),
    )


def with_stream_classification(records, *, source: SourceSpec):
    """DataFrame -> DataFrame: typed columns plus the verdict of each record (batch ingest's checks).

    Input: :func:`kafka_records`. Output, same grain: every declared column with its declared
    type (null where it did not parse), ``event_date``, ``_ingest_date`` (the date the record
    reached Kafka), ``_source_file``, ``_raw_record``, the Kafka metadata columns, ``_rule``
    (null when valid: the first failed check) and ``_reason`` (every failed check, ``; ``-separated).
    """
    from pyspark.sql import functions as F

    src = json_source(source)
    df = records.select("*", *[parse_expression(c.name, c).alias(f"__parsed_{c.name}") for c in src.columns])
    checks = column_checks(src)
    rules = F.array(*[F.when(c.failed, F.lit(c.rule)) for c in checks])
    messages = F.array(*[F.when(c.failed, c.message) for c in checks])
    df = df.select(
        *[col(f"__parsed_{c.name}").alias(c.name) for c in src.columns],
        F.to_date(col(KAFKA_TIMESTAMP)).alias(INGEST_DATE),
        col(SOURCE_FILE),
        col(RAW_RECORD),
        col(TOPIC),
        col(PARTITION),
        col(OFFSET),
        col(KAFKA_TIMESTAMP),
        F.get(F.filter(rules, lambda x: x.isNotNull()), 0).alias(RULE),
        F.concat_ws("; ", F.filter(messages, lambda x: x.isNotNull())).alias(REASON),
    )
    df = df.withColumn(REASON, F.when(col(RULE).isNotNull(), col(REASON)))
    return df.withColumn(EVENT_DATE, F.to_date(col(source.event_time)))


def with_late_flagged(classified, *, event_time: str, watermark):
    """DataFrame -> DataFrame: valid rows whose ``event_time`` is before ``watermark`` become ``late``.

    ``watermark`` is a ``datetime`` (the newest event time of the earlier micro-batches minus the
    allowed lateness) or ``None`` (nothing is late yet). Same columns and grain as the input.
    """
    from pyspark.sql import functions as F

    if watermark is None:
        return classified
    late = col(RULE).isNull() & (col(event_time) < F.lit(watermark))
    reason = F.concat(
        F.lit("late event: event time "),
        col(event_time).cast("string"),
        F.lit(
            f" is before the stream's watermark {watermark.isoformat(sep=' ')} (newest event time seen minus the "
            "allowed lateness)"
        ),
    )
    return classified.withColumn(REASON, F.when(late, reason).otherwise(col(REASON))).withColumn(
        RULE, F.when(late, F.lit("late")).otherwise(col(RULE))
    )


def stream_quarantine_rows(classified, *, source: SourceSpec, stream_id: str, batch_id: int):
    """The stream quarantine projection of rows with a failed rule (see ``STREAM_QUARANTINE_COLUMNS``)."""
    from pyspark.sql import functions as F

    return classified.where(col(RULE).isNotNull()).select(
        F.lit(source.name).alias("source"),
        col(TOPIC).alias("topic"),
        col(PARTITION).alias("partition"),
        col(OFFSET).alias("offset"),
        col(KAFKA_TIMESTAMP).alias("kafka_timestamp"),
        col(RAW_RECORD).alias("raw_value"),
        col(RULE).alias("rule"),
        col(REASON).alias("reason"),
        col(INGEST_DATE),
        F.lit(stream_id).alias("stream_id"),
        F.lit(batch_id).cast("bigint").alias("batch_id"),
    )


def stream_valid_rows(classified, *, source: SourceSpec, stream_id: str, batch_id: int):
    """The stream validated-table projection of rows without a failed rule.

    Columns: the declared columns, ``event_date``, ``_ingest_date``, ``_source_file``,
    ``_stream_id``, ``_batch_id`` (the micro-batch that wrote the row; a replayed micro-batch
    excludes its own rows when it looks for duplicates and its watermark).
    """
    from pyspark.sql import functions as F

    return classified.where(col(RULE).isNull()).select(
        *[col(c.name) for c in source.columns],
        col(EVENT_DATE),
        col(INGEST_DATE),
        col(SOURCE_FILE),
        F.lit(stream_id).alias(STREAM_ID),
        F.lit(batch_id).cast("bigint").alias(BATCH_ID),
    )


def batch_starts(valid, *, entity, event_time: str):
    """DataFrame -> DataFrame: per entity of a micro-batch, the earliest new event time.

    Output: the entity keys and ``__fm_from`` (timestamp): the entity's feature rows at or after
    it are the ones the micro-batch can change (every feature looks back only over its window,
    and rows before it saw none of the new events).
    """
    from pyspark.sql import functions as F

    return valid.groupBy(*[col(k) for k in entity]).agg(F.min(col(event_time)).alias("__fm_from"))
