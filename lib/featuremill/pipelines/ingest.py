"""The ingest job: raw files -> validated Delta tables + quarantine, with exact accounting.

For each source (dimensions first, then event sources):

1. read the landing partitions in ``[start, end]`` as strings (partition pruning);
2. parse against the declared schema, collect per-row reasons (:mod:`featuremill.ingest`);
   check the schema contract against the live validated table and apply the ``quarantine``
   quality rules (:mod:`featuremill.quality.gate`);
3. flag duplicate keys, within the batch and against rows already ingested from other dates;
4. count rows by verdict on the driver (a handful of numbers), in the same aggregation as every
   quality rule's and metric's aggregate, and check ``rows read = valid + quarantined``;
5. decide the quality rules and record them in ``quality_metrics``; a ``fail`` rule stops here;
6. write: validated events replace the rows that came from the same landing dates
   (``replaceWhere _ingest_date BETWEEN start AND end``), dimension snapshots overwrite their
   table, quarantine rows replace that source's quarantine rows for the same landing dates.

Steps 1-5 run for every source before step 6 runs for any, so an unreadable file (for example a
CSV whose header does not match the declared columns), a refused schema change or a failed
``fail`` rule stops the job with no table changed. Re-running a date rewrites identical rows:
feature values and row counts do not change.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from featuremill import io
from featuremill.config import PipelineConfig, SourceSpec
from featuremill.errors import BroadcastTooLargeError, InputDataError, TableStateError
from featuremill.ingest import (
    EVENT_DATE,
    INGEST_DATE,
    RULE,
    quarantine_rows,
    valid_rows,
    with_classification,
    with_duplicates_flagged,
)
from featuremill.ledger import RunRecord
from featuremill.pipelines.common import RecordedRuns
from featuremill.quality.gate import TableGate, enforce
from featuremill.quality.rules import EvaluationContext
from featuremill.progress import stage
from featuremill.session import ensure_timezone
from featuremill.sql import col, literal, quote_identifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """Per-source accounting of one ingest run."""

    source: str
    start: dt.date
    end: dt.date
    run_id: str
    status: str
    rows_read: int
    rows_valid: int
    rows_quarantined: int
    rows_duplicate: int
    by_rule: dict
    validated_version: int | None
    quarantine_version: int | None


def run_ingest(spark, config: PipelineConfig, *, start: dt.date, end: dt.date,
               sources: list[str] | None = None, allow_empty: bool = False) -> list[IngestResult]:
    """Ingest the landing dates ``[start, end]`` of the pipeline's sources (all, or ``sources``).

    Every source is read, classified and checked (schema contract, quality rules) before any
    table is written, so a ``fail`` rule or a refused schema change on one source leaves every
    table at its previous version.
    """
    ensure_timezone(spark, config.timezone)
    chosen = [config.source(name) for name in sources] if sources else list(config.sources)
    ordered = [s for s in chosen if s.kind == "dimension"] + [s for s in chosen if s.kind == "events"]
    runs = RecordedRuns(spark, config, job="ingest", start=start, end=end)
    prepared: list[_Prepared] = []
    try:
        references: dict[str, object] = {}
        for src in ordered:
            record = runs.open(src.name)
            item = _prepare_source(spark, config, src, record, start=start, end=end, allow_empty=allow_empty,
                                   references=references)
            prepared.append(item)
            if item.flagged is not None and src.kind == "dimension":
                # Referential rules of later sources see the dimension rows this run will write.
                references[src.name] = valid_rows(item.flagged, source=src)
        enforce(spark, config, [(p.gate, p.record.run_id) for p in prepared if p.decided], job="ingest")
        results = []
        for item in prepared:
            results.append(_write_source(spark, config, item, start=start, end=end))
            runs.succeed(item.source.name)
        return results
    except BaseException as exc:
        runs.fail_open(exc)
        raise
    finally:
        for item in prepared:
            if item.flagged is not None:
                item.flagged.unpersist()


@dataclass
class _Prepared:
    """A source read, classified and counted, not yet written."""

    source: SourceSpec
    record: RunRecord
    gate: TableGate
    flagged: object | None
    by_rule: dict
    rows_read: int
    rows_valid: int
    rows_quarantined: int
    skipped: bool = False
    decided: bool = False


def _reference_frames(spark, config: PipelineConfig, gate: TableGate, references: dict) -> dict:
    """Dimension rows for the gate's referential rules: this run's, else the validated table's."""
    out = {}
    for rule in gate.spec.row_rules:
        if rule.check != "referential":
            continue
        if rule.dimension in references:
            out[rule.dimension] = references[rule.dimension]
            continue
        dim = config.source(rule.dimension)
        path = config.tables.validated(dim.name)
        if not io.is_delta_table(spark, path):
            raise TableStateError(f"rule {rule.name!r} of {gate.name} needs dimension {dim.name!r}, which has no "
                                  f"validated table at {path} yet; ingest it first (or in the same run)")
        size = io.table_size_bytes(spark, path)
        if size > dim.max_broadcast_bytes:
            raise BroadcastTooLargeError(
                f"rule {rule.name!r}: dimension {dim.name!r} is {size / 1024 / 1024:.1f} MiB on disk, above its "
                f"broadcast limit of {dim.max_broadcast_bytes / 1024 / 1024:.0f} MiB; raise "
                f"sources.{dim.name}.max_broadcast_mb if executors have the memory")
        out[rule.dimension] = io.read_delta(spark, path)
    return out


def _prepare_source(spark, config: PipelineConfig, source: SourceSpec, record: RunRecord, *, start: dt.date,
                    end: dt.date, allow_empty: bool, references: dict) -> _Prepared:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    tables = config.tables
    validated_path = tables.validated(source.name)
    gate = TableGate(config, f"validated.{source.name}", allow_quarantine=True)
    with stage(f"ingest {source.name}: read and classify", spark) as st:
        raw = io.read_raw_source(spark, source, start=start if source.kind == "events" else None,
                                 end=end if source.kind == "events" else None)
        classified = with_classification(raw, source=source, ingest_date=end)
        gate.check_schema(spark, valid_rows(classified, source=source))
        classified = gate.with_row_rules(classified, references=_reference_frames(spark, config, gate, references))
        classified = classified.persist(StorageLevel.MEMORY_AND_DISK)
        existing = None
        try:
            if source.kind == "events" and io.is_delta_table(spark, validated_path):
                # Only partitions holding this batch's event dates can hold its duplicates.
                batch_dates = [r[0] for r in classified.where(col(RULE).isNull())
                               .select(EVENT_DATE).distinct().collect() if r[0] is not None]
                existing = (io.read_delta(spark, validated_path)
                            .where(col(EVENT_DATE).isin(batch_dates))
                            .where(~col(INGEST_DATE).between(F.lit(start), F.lit(end)))
                            .select(*[col(k) for k in source.key],
                                    col(INGEST_DATE).alias("_existing_ingest_date")))
            flagged = with_duplicates_flagged(classified, key=source.key, existing_keys=existing)
            flagged = flagged.persist(StorageLevel.MEMORY_AND_DISK)
            # One job: rows by verdict, plus every quality rule's and metric's aggregate over the
            # valid rows (the group whose rule is null).
            counted = (flagged.groupBy(RULE).agg(F.count(F.lit(1)).alias("__rows"), *gate.aggregations(flagged))
                       .collect())
            by_rule = {(r[RULE] or "valid"): int(r["__rows"]) for r in counted}
            gate.take_measures(next((r for r in counted if r[RULE] is None), None))
        except Exception as exc:
            if not _is_spark_error(exc):
                raise
            raise _explain_read_error(exc, source, spark=spark) from exc
        finally:
            classified.unpersist()
        rows_read = sum(by_rule.values())
        rows_valid = by_rule.get("valid", 0)
        rows_quarantined = rows_read - rows_valid
        st.set_rows(rows_read)
    record.rows_read = rows_read
    record.rows_quarantined = rows_quarantined
    record.rows_duplicate = by_rule.get("duplicate", 0)
    record.details = {"by_rule": by_rule, "source_path": source.path, "source_format": source.format}
    log.info("source %s: read %d rows: %d valid, %d quarantined (%s)", source.name, rows_read, rows_valid,
             rows_quarantined, ", ".join(f"{k}={v}" for k, v in sorted(by_rule.items()) if k != "valid") or "none")
    item = _Prepared(source, record, gate, flagged, by_rule, rows_read, rows_valid, rows_quarantined)
    if rows_read == 0 and not allow_empty:
        # An empty landing range must not silently delete what earlier runs wrote.
        log.warning("source %s: no input rows for %s..%s; nothing written (pass --allow-empty to clear)",
                    source.name, start, end)
        record.status = "skipped_empty"
        item.skipped = True
        return item
    if gate.active:
        with stage(f"ingest {source.name}: quality rules", spark):
            kept = None
            if source.kind == "events" and io.is_delta_table(spark, validated_path):
                kept = io.read_delta(spark, validated_path).where(~col(INGEST_DATE).between(F.lit(start), F.lit(end)))
            started = record.started_at.replace(tzinfo=dt.timezone.utc)
            context = EvaluationContext(now=started, start=start if source.kind == "events" else end, end=end,
                                        timezone=config.timezone)
            gate.decide(spark, valid=flagged.where(col(RULE).isNull()), existing=kept, context=context,
                        quarantined=by_rule)
            item.decided = True
            record.details["quality"] = {r.rule: r.status for r in gate.results}
    return item


def _write_source(spark, config: PipelineConfig, item: _Prepared, *, start: dt.date, end: dt.date) -> IngestResult:
    source, record, flagged, gate = item.source, item.record, item.flagged, item.gate
    tables = config.tables
    validated_path = tables.validated(source.name)
    if item.skipped:
        return IngestResult(source.name, start, end, record.run_id, record.status, 0, 0, 0, 0, item.by_rule,
                            io.delta_version(spark, validated_path), io.delta_version(spark, tables.quarantine))
    rows_valid, rows_quarantined, by_rule = item.rows_valid, item.rows_quarantined, item.by_rule
    with stage(f"ingest {source.name}: write validated", spark) as st:
        valid = valid_rows(flagged, source=source)
        gate.prepare_write(spark)
        version_before = io.delta_version(spark, validated_path)
        if source.kind == "events":
            predicate = io.date_range_predicate(INGEST_DATE, start, end)
            io.replace_where(valid, validated_path, predicate=predicate, partition_by=[EVENT_DATE],
                             evolve_schema=gate.evolve_schema)
        else:
            io.overwrite(valid, validated_path, evolve_schema=gate.evolve_schema)
        # Replacing a range that held nothing with nothing commits no version (Delta skips empty
        # commits): then the latest commit is an earlier run's, not this write.
        committed = io.delta_version(spark, validated_path) != version_before
        written = int(io.last_operation_metrics(spark, validated_path).get("numOutputRows", rows_valid)) \
            if committed else 0
        st.set_rows(written)
    with stage(f"ingest {source.name}: write quarantine", spark) as st:
        q_start = start if source.kind == "events" else end
        predicate = (f"{quote_identifier('source')} = {literal(source.name)} AND "
                     + io.date_range_predicate(INGEST_DATE, q_start, end))
        quarantined = quarantine_rows(flagged, source=source, fallback_ingest_date=end)
        io.replace_where(quarantined, tables.quarantine, predicate=predicate,
                         partition_by=["source", INGEST_DATE])
        st.set_rows(rows_quarantined)
    if written != rows_valid:
        raise InputDataError(f"source {source.name!r}: counted {rows_valid} valid rows but wrote {written}; "
                             "the input changed during the run, re-run it")
    record.rows_written = written
    validated_version = io.delta_version(spark, validated_path)
    quarantine_version = io.delta_version(spark, tables.quarantine)
    record.output_versions = {f"validated.{source.name}": validated_version, "quarantine": quarantine_version}
    return IngestResult(source.name, start, end, record.run_id, "succeeded", item.rows_read, rows_valid,
                        rows_quarantined, by_rule.get("duplicate", 0), by_rule, validated_version, quarantine_version)


def _is_spark_error(exc: Exception) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("pyspark", "py4j")) or isinstance(exc, InputDataError)


def _explain_read_error(exc: Exception, source: SourceSpec, *, spark=None) -> Exception:
    """Turn Spark's read failures into an error naming the source, file and field when known."""
    import re

    text = str(exc)
    file_match = re.search(r"(?:CSV file|file|path)[:=]?\s*['\"]?((?:file:|s3a?:|abfss?:|gs:|dbfs:|hdfs:)?/[^\s'\",]+?)\.?(?:\s|$|['\",])", text)
    length = re.search(r"Header length: (\d+), schema size: (\d+)", text)
    if length and file_match:
        # A column added or dropped upstream: name the columns by comparing the file's header line.
        declared = list(source.column_names)
        header_line = _first_line(spark, file_match.group(1))
        found = [h.strip().strip('"') for h in header_line.split(",")] if header_line else []
        extra = [h for h in found if h not in declared]
        missing = [d for d in declared if found and d not in found]
        detail = "; ".join(part for part in (
            f"columns not declared: {', '.join(extra)}" if extra else "",
            f"declared columns missing: {', '.join(missing)}" if missing else "") if part)
        return InputDataError(
            f"source {source.name!r}: CSV header has {length.group(1)} columns, the source declares "
            f"{length.group(2)}" + (f" ({detail})" if detail else "")
            + "; declare the new columns (or remove them upstream) before ingesting this file",
            file=file_match.group(1), field=(extra or missing or [None])[0], value=header_line)
    header = re.search(r"Header: (.*?), Schema: (.*?)(?:\n|Expected)", text)
    if "does not conform to the schema" in text or "CSV header" in text:
        found = re.search(r"Expected: (\S+) but found: (\S+)", text)
        return InputDataError(
            f"source {source.name!r}: CSV header does not match the declared columns"
            + (f" (expected {found.group(1)!r}, found {found.group(2)!r})" if found else "")
            + (f"; header {header.group(1)}" if header else ""),
            file=file_match.group(1) if file_match else source.path,
            field=found.group(1) if found else None,
            value=found.group(2) if found else None,
        )
    if isinstance(exc, InputDataError):
        return exc
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return InputDataError(f"source {source.name!r}: cannot read input: {first}",
                          file=file_match.group(1) if file_match else source.path)


def _first_line(spark, path: str) -> str | None:
    """The first line of a (CSV) file, for an error message; None when it cannot be read."""
    if spark is None:
        return None
    try:
        row = spark.read.text(path).limit(1).collect()  # one line, on the error path only
    except Exception:  # the original read error is what matters
        return None
    return row[0][0] if row else None
