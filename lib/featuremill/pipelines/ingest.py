"""The ingest job: raw files -> validated Delta tables + quarantine, with exact accounting.

For each source (dimensions first, then event sources):

1. read the landing partitions in ``[start, end]`` as strings (partition pruning);
2. parse against the declared schema, collect per-row reasons (:mod:`featuremill.transforms.ingest`);
   check the schema contract against the live validated table and apply the ``quarantine``
   quality rules (:mod:`featuremill.quality.gate`);
3. flag duplicate keys, within the batch and against rows already ingested from other dates;
4. count rows by verdict on the driver (a handful of numbers), in the same aggregation as every
   quality rule's and metric's aggregate, and check ``rows read = valid + quarantined``;
5. decide the quality rules and record them in ``quality_metrics``; a ``fail`` rule stops here;
6. write: validated events replace the rows that came from the same landing dates
   (``replaceWhere _ingest_date BETWEEN start AND end``), dimension snapshots are added to the
   dimension's type-2 history (:mod:`featuremill.transforms.dimensions`; the small table is
   rewritten whole), quarantine rows replace that source's quarantine rows for the same landing
   dates.

Steps 1-5 run for every source before step 6 runs for any, so an unreadable file (for example a
CSV whose header does not match the declared columns), a refused schema change, a failed
``fail`` rule or a changed-input refusal (below) stops the job with no table changed.

Exactly-once (:mod:`featuremill.storage.exactly_once`): both writes of a source (validated and
quarantine, including the rows ``quarantine`` quality rules send there) carry the run key
``featuremill/<pipeline>/ingest/<source>/<start>/<end>`` as Delta ``txnAppId``. The input
fingerprint is the source's definition (plus its ``quarantine`` rules, when it has any, and the
content of the dimensions their referential rules check) and the row count and an
order-independent checksum of the raw records read (record text, file, landing date), computed
in the aggregation of step 4. A re-run over the same raw input writes nothing and, as it writes
nothing, decides no quality rule and appends nothing to ``quality_metrics`` (a crash between the
two writes is finished by the retry: the table already written is skipped, the other written,
after the quality rules are decided again); changed input needs ``corrective=True``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from featuremill.config import PipelineConfig, SourceSpec
from featuremill.core.columns import SOURCE_FILE
from featuremill.core.errors import BroadcastTooLargeError, InputDataError, TableStateError
from featuremill.core.progress import stage
from featuremill.core.session import ensure_timezone
from featuremill.core.sql import col, literal, quote_identifier
from featuremill.pipelines.common import RecordedRuns
from featuremill.quality.gate import TableGate, enforce
from featuremill.quality.rules import EvaluationContext, check_patterns_in_spark
from featuremill.storage import io
from featuremill.storage.exactly_once import CommitGuard, _semantic, digest, run_key, source_definition
from featuremill.storage.ledger import RunRecord
from featuremill.storage.retention import ensure_retention, replay_window
from featuremill.transforms.dimensions import (
    HISTORY_COLUMNS,
    VALID_FROM,
    VALID_TO,
    recorded_times,
    with_snapshot_history,
)
from featuremill.transforms.ingest import (
    EVENT_DATE,
    INGEST_DATE,
    RAW_RECORD,
    RULE,
    quarantine_rows,
    valid_rows,
    with_classification,
    with_duplicates_flagged,
)

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


def run_ingest(
    spark,
    config: PipelineConfig,
    *,
    start: dt.date,
    end: dt.date,
    sources: list[str] | None = None,
    allow_empty: bool = False,
    corrective: bool = False,
    backfill_id: str | None = None,
    on_commit=None,
) -> list[IngestResult]:
    """Ingest the landing dates ``[start, end]`` of the pipeline's sources (all, or ``sources``).

    Every source is read, classified and checked (schema contract, quality rules, committed
    inputs) before any table is written, so a ``fail`` rule, a refused schema change or changed
    input without ``corrective`` on one source leaves every table at its previous version.

    ``corrective`` rewrites a run key already committed from different raw input (new Delta
    txnVersion); ``backfill_id`` marks the ledger rows of a backfill's chunks; ``on_commit(table,
    version)`` is called after each Delta commit, before the ledger write.
    """
    ensure_timezone(spark, config.timezone)
    check_patterns_in_spark(spark, config)  # rules run as validated: Java must read them too
    chosen = [config.source(name) for name in sources] if sources else list(config.sources)
    ordered = [s for s in chosen if s.kind == "dimension"] + [s for s in chosen if s.kind == "events"]
    runs = RecordedRuns(spark, config, job="ingest", start=start, end=end, backfill_id=backfill_id)
    prepared: list[_Prepared] = []
    try:
        references: dict[str, object] = {}
        for src in ordered:
            record = runs.open(src.name)
            with runs.measure(src.name):
                item = _prepare_source(
                    spark,
                    config,
                    src,
                    record,
                    start=start,
                    end=end,
                    allow_empty=allow_empty,
                    references=references,
                    corrective=corrective,
                )
            prepared.append(item)
            if item.flagged is not None and src.kind == "dimension":
                # Referential rules of later sources see the dimension rows this run will write.
                references[src.name] = valid_rows(item.flagged, source=src)
        enforce(spark, config, [(p.gate, p.record.run_id) for p in prepared if p.decided], job="ingest")
        results = []
        for item in prepared:
            with runs.measure(item.source.name):
                results.append(_write_source(spark, config, item, start=start, end=end, on_commit=on_commit))
            runs.succeed(item.source.name)
        runs.write()
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
    #: the landing dates that gave valid rows (dated sources and dimensions)
    valid_dates: tuple[dt.date, ...] = ()
    skipped: bool = False
    decided: bool = False
    guard: CommitGuard | None = None


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
            raise TableStateError(
                f"rule {rule.name!r} of {gate.name} needs dimension {dim.name!r}, which has no "
                f"validated table at {path} yet; ingest it first (or in the same run)"
            )
        size = io.table_size_bytes(spark, path)
        if size > dim.max_broadcast_bytes:
            raise BroadcastTooLargeError(
                f"rule {rule.name!r}: dimension {dim.name!r} is {size / 1024 / 1024:.1f} MiB on disk, above its "
                f"broadcast limit of {dim.max_broadcast_bytes / 1024 / 1024:.0f} MiB; raise "
                f"sources.{dim.name}.max_broadcast_mb if executors have the memory"
            )
        out[rule.dimension] = io.read_delta(spark, path)
    return out


def _quarantine_rule_inputs(gate: TableGate, reference_frames: dict) -> dict:
    """What of the quality configuration decides which rows ingest quarantines (for the fingerprint).

    Empty without ``quarantine`` rules, so a source without them keeps the fingerprint it had
    before quality rules existed. Referential rules add the content of the dimension keys they
    check (a small aggregate over a broadcast-sized table).
    """
    from featuremill.pipelines.build_features import content_identity

    rules = gate.spec.quarantine_rules
    if not rules:
        return {}
    out: dict = {"quarantine_rules": digest(_semantic(list(rules)))}
    for rule in rules:
        if rule.check == "referential" and rule.dimension in reference_frames:
            keys = reference_frames[rule.dimension].select(*[col(c) for c in rule.dimension_columns])
            out[f"reference {rule.name}"] = content_identity(keys)
    return out


def _prepare_source(
    spark,
    config: PipelineConfig,
    source: SourceSpec,
    record: RunRecord,
    *,
    start: dt.date,
    end: dt.date,
    allow_empty: bool,
    references: dict,
    corrective: bool = False,
) -> _Prepared:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    tables = config.tables
    validated_path = tables.validated(source.name)
    validated_name = f"validated.{source.name}"
    record.run_key = run_key(config.name, "ingest", source.name, start, end)
    gate = TableGate(config, validated_name, allow_quarantine=True)
    with stage(f"ingest {source.name}: read and classify", spark, key="read_classify") as st:
        # Events and dated dimension snapshots: the landing folders of [start, end]; an undated
        # dimension: its whole folder, the snapshot as of this run.
        dated = source.kind == "events" or source.partition_column is not None
        raw = io.read_raw_source(spark, source, start=start if dated else None, end=end if dated else None)
        classified = with_classification(raw, source=source, ingest_date=end)
        to_write = valid_rows(classified, source=source)
        if source.kind == "dimension":
            _check_history_table(spark, source, validated_path)
            to_write = to_write.select("*", *[F.lit(None).cast("timestamp").alias(c) for c in HISTORY_COLUMNS])
        gate.check_schema(spark, to_write)
        reference_frames = _reference_frames(spark, config, gate, references)
        classified = gate.with_row_rules(classified, references=reference_frames)
        # The classified rows are read twice only when earlier ingests can hold duplicates (the
        # batch's dates, then the flags): cached then. Read once, a cache would only add a write
        # and a read of every row (1M events, first ingest, warm: 35-37 s with it, 32-34 s without).
        # DISK_ONLY, not MEMORY_AND_DISK: a batch's partitions are large and wide (raw record,
        # source file); unrolling them into the memory store ran a local[2] driver with a 1g heap
        # out of memory at 5M events, while the disk cache completes in about the same time.
        has_earlier = source.kind == "events" and io.is_delta_table(spark, validated_path)
        if has_earlier:
            classified = classified.persist(StorageLevel.DISK_ONLY)
        existing = None
        try:
            if has_earlier:
                # Only partitions holding this batch's event dates can hold its duplicates.
                batch_dates = [
                    r[0]
                    for r in classified.where(col(RULE).isNull()).select(EVENT_DATE).distinct().collect()
                    if r[0] is not None
                ]
                existing = (
                    io.read_delta(spark, validated_path)
                    .where(col(EVENT_DATE).isin(batch_dates))
                    .where(~col(INGEST_DATE).between(F.lit(start), F.lit(end)))
                    .select(*[col(k) for k in source.key], col(INGEST_DATE).alias("_existing_ingest_date"))
                )
            # A dimension batch may hold several dated snapshots: a key repeats once per snapshot.
            dup_key = list(source.key) + ([INGEST_DATE] if source.kind == "dimension" else [])
            flagged = with_duplicates_flagged(classified, key=dup_key, existing_keys=existing)
            flagged = flagged.persist(StorageLevel.DISK_ONLY)
            # One job: rows by verdict, the raw input's checksum (the run's fingerprint), the latest
            # valid event time (freshness), plus every quality rule's and metric's aggregate over
            # the valid rows (the group whose rule is null).
            checksum = F.xxhash64(col(RAW_RECORD), col(SOURCE_FILE), col(INGEST_DATE)).cast("decimal(38,0)")
            latest = (
                F.expr(f"unix_micros({quote_identifier(source.event_time)})")
                if source.event_time
                else F.lit(None).cast("bigint")
            )
            # the landing dates that gave rows (a handful of strings: one per date of the range);
            # a dimension's valid ones date its snapshots (none: no snapshot to add)
            landed = (
                F.collect_set(col(INGEST_DATE).cast("string"))
                if source.partition_column or source.kind == "dimension"
                else F.array().cast("array<string>")
            )
            counted = (
                flagged.groupBy(RULE)
                .agg(
                    F.count(F.lit(1)).alias("__rows"),
                    F.sum(checksum).alias("__h"),
                    F.max(latest).alias("__t"),
                    landed.alias("__landed"),
                    *gate.aggregations(flagged),
                )
                .collect()
            )
            by_rule = {(r[RULE] or "valid"): int(r["__rows"]) for r in counted}
            input_checksum = str(sum(int(r["__h"] or 0) for r in counted))
            max_valid_micros = next((r["__t"] for r in counted if r[RULE] is None), None)
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
    if max_valid_micros is not None:
        record.max_event_time = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(max_valid_micros))
    record.details = {"by_rule": by_rule, "source_path": source.path, "source_format": source.format}
    log.info(
        "source %s: read %d rows: %d valid, %d quarantined (%s)",
        source.name,
        rows_read,
        rows_valid,
        rows_quarantined,
        ", ".join(f"{k}={v}" for k, v in sorted(by_rule.items()) if k != "valid") or "none",
    )
    valid_dates = tuple(
        sorted(dt.date.fromisoformat(d) for r in counted if r[RULE] is None for d in (r["__landed"] or ()))
    )
    item = _Prepared(source, record, gate, flagged, by_rule, rows_read, rows_valid, rows_quarantined, valid_dates)
    if source.kind == "events" and not (allow_empty or source.allow_empty):
        landed_dates = {str(d)[:10] for r in counted for d in (r["__landed"] or ())}
        try:
            _require_rows_every_day(source, start=start, end=end, rows_read=rows_read, landed=landed_dates)
        except InputDataError:
            flagged.unpersist()
            raise
    if rows_read == 0 and not allow_empty:
        # An empty landing range must not silently delete what earlier runs wrote.
        log.warning(
            "source %s: no input rows for %s..%s; nothing written (pass --allow-empty to clear)",
            source.name,
            start,
            end,
        )
        record.status = "skipped_empty"
        item.skipped = True
        return item
    inputs = {
        "definition": digest(source_definition(config, source)),
        "raw": {"rows": rows_read, "checksum": input_checksum},
    }
    inputs.update(_quarantine_rule_inputs(gate, reference_frames))
    item.guard = guard = CommitGuard(
        spark,
        run_key=record.run_key,
        run_id=record.run_id,
        label=f"ingest {source.name} {start}..{end}",
        inputs=inputs,
        tables={validated_name: validated_path, "quarantine": tables.quarantine},
        corrective=corrective,
    ).plan()
    record.txn_version = guard.txn_version
    record.input_fingerprint = guard.fingerprint
    if guard.all_committed:
        # Nothing will be written, so there is nothing for the quality gate to let through.
        return item
    if gate.active:
        with stage(f"ingest {source.name}: quality rules", spark, key="quality_rules"):
            kept = None
            if source.kind == "events" and io.is_delta_table(spark, validated_path):
                kept = io.read_delta(spark, validated_path).where(~col(INGEST_DATE).between(F.lit(start), F.lit(end)))
            started = record.started_at.replace(tzinfo=dt.timezone.utc)
            context = EvaluationContext(
                now=started, start=start if source.kind == "events" else end, end=end, timezone=config.timezone
            )
            gate.decide(
                spark, valid=flagged.where(col(RULE).isNull()), existing=kept, context=context, quarantined=by_rule
            )
            item.decided = True
            record.details["quality"] = {r.rule: r.status for r in gate.results}
    return item


def _require_rows_every_day(source: SourceSpec, *, start: dt.date, end: dt.date, rows_read: int, landed: set) -> None:
    """Raise :class:`InputDataError` when a landing date of ``[start, end]`` gave no rows.

    A day without rows (0-byte or header-only files, an empty folder, nothing landed) is far more
    often a truncated or late upload than a quiet day; passing it silently would publish features
    computed without it. ``sources.<name>.allow_empty: true`` (or ``--allow-empty``) accepts it.
    """
    if source.partition_column:
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        empty = [d.isoformat() for d in days if d.isoformat() not in landed]
    else:
        empty = [] if rows_read else [f"{start}..{end}"]
    if empty:
        shown = ", ".join(empty[:10]) + (f" (and {len(empty) - 10} more)" if len(empty) > 10 else "")
        raise InputDataError(
            f"source {source.name!r}: no rows for landing date(s) {shown} (0-byte or header-only files, an empty "
            "folder, or nothing landed): a truncated or missing upload? Nothing was written. If such days are "
            f"expected, set sources.{source.name}.allow_empty: true (or pass --allow-empty for this run)",
            file=source.path,
        )


def _write_source(
    spark, config: PipelineConfig, item: _Prepared, *, start: dt.date, end: dt.date, on_commit=None
) -> IngestResult:
    source, record, flagged, gate, guard = item.source, item.record, item.flagged, item.gate, item.guard
    tables = config.tables
    validated_path = tables.validated(source.name)
    validated_name = f"validated.{source.name}"
    if item.skipped:
        return IngestResult(
            source.name,
            start,
            end,
            record.run_id,
            record.status,
            0,
            0,
            0,
            0,
            item.by_rule,
            io.delta_version(spark, validated_path),
            io.delta_version(spark, tables.quarantine),
        )
    window = replay_window(config)
    targets = {validated_name: validated_path, "quarantine": tables.quarantine}
    rows_valid, rows_quarantined, by_rule = item.rows_valid, item.rows_quarantined, item.by_rule
    written = rows_valid
    quarantine_written: int | None = None  # by the quarantine commit's metrics, when this run wrote it
    output_versions: dict[str, int] = {}
    wrote: list[str] = []
    if guard.is_committed(validated_name):
        output_versions[validated_name] = guard.prior(validated_name).table_version
    else:
        with stage(f"ingest {source.name}: write validated", spark, key="write_validated") as st:
            ensure_retention(spark, validated_path, window, root=config.env.root)
            valid = valid_rows(flagged, source=source)
            gate.prepare_write(spark)
            if source.kind == "events":
                predicate = io.date_range_predicate(INGEST_DATE, start, end)
                io.replace_where(
                    valid,
                    validated_path,
                    root=config.env.root,
                    what=f"table {validated_name}",
                    predicate=predicate,
                    partition_by=[EVENT_DATE],
                    evolve_schema=gate.evolve_schema,
                    commit=guard.tag(validated_name),
                    properties=window.table_properties(),
                )
            else:
                valid = _dimension_history(spark, source, valid, validated_path, start=start, landed=item.valid_dates)
                io.overwrite(
                    valid,
                    validated_path,
                    root=config.env.root,
                    what=f"table {validated_name}",
                    evolve_schema=gate.evolve_schema,
                    commit=guard.tag(validated_name),
                    properties=window.table_properties(),
                )
            output_versions[validated_name], mine = guard.confirm(validated_name, empty=rows_valid == 0)
            if mine:
                wrote.append(validated_name)
                committed = _committed_rows(
                    spark,
                    validated_path,
                    output_versions[validated_name],
                    metrics=guard.confirmed_metrics.get(validated_name),
                )
                if source.kind == "events":
                    written = committed
                else:
                    # The history collapses unchanged snapshots into versions: its row count is
                    # not the snapshot's. Every valid snapshot row is a version or confirms one.
                    written = rows_valid
                    record.details["history_rows"] = committed
            st.set_rows(written)
        if on_commit is not None:
            on_commit(validated_name, output_versions[validated_name])
    if guard.is_committed("quarantine"):
        output_versions["quarantine"] = guard.prior("quarantine").table_version
    else:
        with stage(f"ingest {source.name}: write quarantine", spark, key="write_quarantine") as st:
            ensure_retention(spark, tables.quarantine, window, root=config.env.root)
            q_start = start if source.kind == "events" or source.partition_column else end
            predicate = f"{quote_identifier('source')} = {literal(source.name)} AND " + io.date_range_predicate(
                INGEST_DATE, q_start, end
            )
            quarantined = quarantine_rows(flagged, source=source, fallback_ingest_date=end)
            io.replace_where(
                quarantined,
                tables.quarantine,
                root=config.env.root,
                what="quarantine table",
                predicate=predicate,
                partition_by=["source", INGEST_DATE],
                commit=guard.tag("quarantine"),
                properties=window.table_properties(),
            )
            output_versions["quarantine"], mine = guard.confirm("quarantine", empty=rows_quarantined == 0)
            if mine:
                wrote.append("quarantine")
                quarantine_written = _committed_rows(
                    spark,
                    tables.quarantine,
                    output_versions["quarantine"],
                    metrics=guard.confirmed_metrics.get("quarantine"),
                )
            elif rows_quarantined == 0:
                quarantine_written = 0  # Delta recorded no commit: nothing went in
            st.set_rows(rows_quarantined)
        if on_commit is not None:
            on_commit("quarantine", output_versions["quarantine"])
    if written != rows_valid:
        raise InputDataError(
            f"source {source.name!r}: counted {rows_valid} valid rows but wrote {written}; "
            "the input changed during the run, re-run it"
        )
    if quarantine_written is not None and validated_name in wrote and written + quarantine_written != item.rows_read:
        # Two independent counts: the rows read (the classification's aggregate) and what the two
        # Delta commits of this run record. A difference means rows were lost between them.
        raise InputDataError(
            f"source {source.name!r}: read {item.rows_read} rows, but the validated commit (version "
            f"{output_versions[validated_name]}) recorded {written} and the quarantine commit "
            f"(version {output_versions['quarantine']}) {quarantine_written}: "
            f"{item.rows_read - written - quarantine_written} row(s) are in neither table; the run is marked failed, "
            "re-run it with --corrective after finding the cause"
        )
    record.rows_written = written if validated_name in wrote else 0
    record.output_versions = output_versions
    status = "succeeded" if wrote else "already_committed"
    record.details["commit"] = (
        "written"
        if len(wrote) == len(targets)
        else "already_committed"
        if not wrote
        else "completed:" + ",".join(wrote)
    )
    if not wrote:
        prior = guard.prior(validated_name)
        record.details["committed_by_run"] = prior.run_id if prior else None
    return IngestResult(
        source.name,
        start,
        end,
        record.run_id,
        status,
        item.rows_read,
        rows_valid,
        rows_quarantined,
        by_rule.get("duplicate", 0),
        by_rule,
        output_versions[validated_name],
        output_versions["quarantine"],
    )


def _check_history_table(spark, source: SourceSpec, path: str) -> None:
    """Refuse to add to a dimension table written before featuremill kept dimension history."""
    if not io.is_delta_table(spark, path):
        return
    columns = set(io.read_delta(spark, path).columns)
    if not set(HISTORY_COLUMNS) <= columns:
        raise TableStateError(
            f"dimension {source.name!r}: the table at {path} is a snapshot without history (no "
            f"{' / '.join(HISTORY_COLUMNS)} columns; written by an older featuremill); its past versions are "
            "unknown, so it cannot be converted. Move it aside and re-ingest the dimension from its first "
            "snapshot date (featuremill backfill PIPELINE --job ingest --source "
            f"{source.name} --start FIRST_DATE --end TODAY)"
        )


def _dimension_history(spark, source: SourceSpec, valid, path: str, *, start: dt.date, landed: tuple[dt.date, ...]):
    """The dimension's history table after this run's snapshots (see :mod:`featuremill.transforms.dimensions`).

    A dated dimension (``partition_column``) brings one snapshot per landing folder, dated by it
    (``landed``: the landing dates that gave valid rows, from the run's counting aggregate;
    empty when no row is valid, and the history is then unchanged).
    An undated one is the snapshot as of this run's ``start``, and never earlier than the latest
    date the history records: today's file says nothing about the past, so a backfill of an older
    range must not write it there (land dated snapshots for that).
    """
    from pyspark.sql import functions as F

    history = io.read_delta(spark, path) if io.is_delta_table(spark, path) else None
    latest, history_times = None, []
    if history is not None:
        # One aggregate row: the times the history records, and (to_date in Spark: the session's
        # time zone, the one valid_from was made in) the latest date it describes.
        latest, history_times = history.agg(
            F.max(F.to_date(F.greatest(col(VALID_FROM), F.coalesce(col(VALID_TO), col(VALID_FROM))))),
            recorded_times(),
        ).first()
    snapshot_dates = list(landed)
    if source.partition_column is None:
        snapshot_date = start
        if latest is not None and latest > start:
            log.warning(
                "dimension %s: an undated snapshot cannot describe %s, before the latest recorded "
                "date %s; recorded as of %s (land dated snapshots to rebuild the past)",
                source.name,
                start,
                latest,
                latest,
            )
            snapshot_date = latest
        valid = valid.withColumn(INGEST_DATE, F.lit(snapshot_date))
        snapshot_dates = [snapshot_date] if landed else []
    attributes = [c.name for c in source.columns if c.name not in source.key]
    built = with_snapshot_history(
        history,
        valid,
        key=source.key,
        attributes=attributes,
        snapshot_dates=snapshot_dates,
        history_times=history_times,
    )
    return built.select(
        *[col(c) for c in source.column_names], col(INGEST_DATE), col(SOURCE_FILE), *map(col, HISTORY_COLUMNS)
    )


def _committed_rows(spark, path: str, version: int, *, metrics: dict[str, str] | None = None) -> int:
    """Rows written by commit ``version`` of ``path``, by its ``numOutputRows`` operation metric
    (``metrics``: that commit's metrics when the caller already read them)."""
    if metrics is None:
        metrics = io.commit_metrics(spark, path, version)
    if "numOutputRows" not in metrics and metrics.get("numFiles") == "0":
        return 0  # a write of no rows adds no file and records no row count
    if "numOutputRows" not in metrics:
        raise TableStateError(f"commit {version} of {path} records no numOutputRows; cannot account for its rows")
    return int(metrics["numOutputRows"])


def _is_spark_error(exc: Exception) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("pyspark", "py4j")) or isinstance(exc, InputDataError)


def _explain_read_error(exc: Exception, source: SourceSpec, *, spark=None) -> Exception:
    """Turn Spark's read failures into an error naming the source, file and field when known."""
    import re

    text = str(exc)
    file_match = re.search(
        r"(?:CSV file|file|path)[:=]?\s*['\"]?((?:file:|s3a?:|abfss?:|gs:|dbfs:|hdfs:)?/[^\s'\",]+?)\.?(?:\s|$|['\",])",
        text,
    )
    length = re.search(r"Header length: (\d+), schema size: (\d+)", text)
    if length and file_match:
        # A column added or dropped upstream: name the columns by comparing the file's header line.
        declared = list(source.column_names)
        header_line = _first_line(spark, file_match.group(1))
        found = [h.strip().strip('"') for h in header_line.split(",")] if header_line else []
        extra = [h for h in found if h not in declared]
        missing = [d for d in declared if found and d not in found]
        detail = "; ".join(
            part
            for part in (
                f"columns not declared: {', '.join(extra)}" if extra else "",
                f"declared columns missing: {', '.join(missing)}" if missing else "",
            )
            if part
        )
        return InputDataError(
            f"source {source.name!r}: CSV header has {length.group(1)} columns, the source declares "
            f"{length.group(2)}"
            + (f" ({detail})" if detail else "")
            + "; declare the new columns (or remove them upstream) before ingesting this file",
            file=file_match.group(1),
            field=(extra or missing or [None])[0],
            value=header_line,
        )
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
    return InputDataError(
        f"source {source.name!r}: cannot read input: {first}", file=file_match.group(1) if file_match else source.path
    )


def _first_line(spark, path: str) -> str | None:
    """The first line of a (CSV) file, for an error message; None when it cannot be read."""
    if spark is None:
        return None
    try:
        row = spark.read.text(path).limit(1).collect()  # one line, on the error path only
    except Exception:  # the original read error is what matters
        return None
    return row[0][0] if row else None
