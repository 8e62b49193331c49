"""The feature job: validated events -> window features -> Delta feature table (MERGE), incrementally.

For a run over ``[start, end]`` and each feature set:

1. find the earliest event date among rows that landed in ``[start, end]`` (late events land in a
   later partition than their event date); recomputation starts there, so late data reaches
   every feature row it affects;
2. read validated events from that date minus the largest window's lookback up to ``end``
   (partition-pruned, pinned to the table version recorded in the ledger);
3. broadcast-join event-level dimensions (refusing tables above the size limit), compute the
   window features (:mod:`featuremill.features`), broadcast-join entity-level dimensions;
4. MERGE into ``<warehouse>/<pipeline>/features/<set>`` on (entity keys, event time) within the
   recomputed date range: changed rows updated, new rows inserted, vanished rows deleted,
   identical rows untouched.

The feature table therefore equals a full recompute over the same dates after any sequence of
daily runs, and re-running a date changes no value and adds no row.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass

from featuremill import io
from featuremill.config import FeatureSetSpec, JoinSpec, PipelineConfig
from featuremill.errors import BroadcastTooLargeError, TableStateError
from featuremill.features import with_window_features
from featuremill.ingest import EVENT_DATE, INGEST_DATE
from featuremill.ledger import RunRecord
from featuremill.pipelines.common import RecordedRuns
from featuremill.pipelines.preprocess import helper_lookback_days, history_helpers, serve_preprocessed
from featuremill.quality.gate import TableGate, enforce
from featuremill.quality.rules import EvaluationContext
from featuremill.progress import stage
from featuremill.session import ensure_timezone
from featuremill.sql import col
from featuremill.timeseries import with_history_helpers

log = logging.getLogger(__name__)

FEATURE_VERSION_COLUMN = "_feature_set_version"


@dataclass(frozen=True)
class FeatureRunResult:
    """What one feature-set run computed and wrote."""

    feature_set: str
    run_id: str
    status: str
    compute_start: dt.date | None
    end: dt.date
    events_read: int
    rows_out: int
    rows_inserted: int
    rows_updated: int
    rows_deleted: int
    table_version: int | None


def lookback_days(feature_set: FeatureSetSpec) -> int:
    """Whole days of history before a date that its features can reach."""
    return math.ceil(feature_set.lookback_seconds / 86400)


def run_features(spark, config: PipelineConfig, *, start: dt.date, end: dt.date,
                 feature_sets: list[str] | None = None, incremental: bool = True) -> list[FeatureRunResult]:
    """Compute the feature sets (all, or ``feature_sets``) for event dates ``[start, end]``.

    Every feature set is planned and checked (schema contract, quality rules of
    ``features.<set>``) before any is merged, so a refused schema change or a failed ``fail``
    rule leaves every feature table at its previous version.
    """
    ensure_timezone(spark, config.timezone)
    chosen = [config.feature_set(n) for n in feature_sets] if feature_sets else list(config.feature_sets)
    runs = RecordedRuns(spark, config, job="features", start=start, end=end)
    planned: list[_Planned] = []
    try:
        for fs in chosen:
            planned.append(_plan_feature_set(spark, config, fs, runs.open(fs.name), start=start, end=end,
                                             incremental=incremental))
        enforce(spark, config, [(p.gate, p.record.run_id) for p in planned if p.gate.active], job="features")
        results = []
        for p in planned:
            results.append(_write_feature_set(spark, config, p, end=end))
            runs.succeed(p.feature_set.name)
        return results
    except BaseException as exc:
        runs.fail_open(exc)
        raise
    finally:
        for p in planned:
            if p.cached is not None:
                p.cached.unpersist()


def _pinned_read(spark, path: str, versions: dict[str, int], name: str):
    version = io.delta_version(spark, path)
    if version is None:
        raise TableStateError(f"no Delta table at {path} ({name}); run the ingest job first")
    versions[name] = version
    return io.read_delta(spark, path, version=version)


def _dimension_frame(spark, config: PipelineConfig, join: JoinSpec, versions: dict[str, int]):
    """The dimension's key and requested columns, marked for broadcast after a size check."""
    from pyspark.sql import functions as F

    dim = config.source(join.dimension)
    path = config.tables.validated(dim.name)
    df = _pinned_read(spark, path, versions, f"validated.{dim.name}")
    size = io.table_size_bytes(spark, path)
    if size > dim.max_broadcast_bytes:
        raise BroadcastTooLargeError(
            f"dimension {dim.name!r} is {size / 1024 / 1024:.1f} MiB on disk, above its broadcast limit of "
            f"{dim.max_broadcast_bytes / 1024 / 1024:.0f} MiB; raise sources.{dim.name}.max_broadcast_mb "
            "(or the environment's max_broadcast_mb) if executors have the memory, or join it at entity level"
        )
    return F.broadcast(df.select(*[col(k) for k in join.on], *[col(c) for c in join.columns]))


def _join_columns(dimension, join):
    # Only the key and requested columns: a dimension's own bookkeeping columns (``_ingest_date``...)
    # must not shadow the events' columns of the same name.
    return dimension.select(*[col(k) for k in join.on], *[col(c) for c in join.columns])


def build_feature_frame(events, *, config: PipelineConfig, feature_set: FeatureSetSpec, dimensions: dict,
                        start: dt.date, end: dt.date):
    """DataFrame -> DataFrame: feature rows for event dates ``[start, end]``.

    ``events`` are validated events of ``feature_set.source`` covering at least
    ``[start - lookback, end]``; ``dimensions`` maps each join's dimension name to its (broadcast)
    frame. Output grain: one row per (entity keys, event time) with ``event_date`` (date), the
    features, ``_known_at`` (timestamp, when ``events`` carry ``_ingest_date``: see
    :mod:`featuremill.features`), the entity-level joined columns and ``_feature_set_version`` (int).
    """
    from pyspark.sql import functions as F

    source = config.source(feature_set.source)
    df = events.where(F.greatest(*[col(k).isNull() for k in feature_set.entity],
                                 col(source.event_time).isNull()) == F.lit(False))
    for join in feature_set.joins:
        if join.level == "event":
            df = df.join(_join_columns(dimensions[join.dimension], join), on=list(join.on), how="left")
    df = with_window_features(df, entity=feature_set.entity, event_time=source.event_time,
                              order_key=source.key, features=feature_set.features,
                              known_at_from=INGEST_DATE if INGEST_DATE in events.columns else None)
    helpers = history_helpers(config, feature_set)
    if helpers:  # preprocessing.timeseries: lags, diffs, z-scores, EMAs over the feature rows
        df = with_history_helpers(df, entity=feature_set.entity, event_time=source.event_time, helpers=helpers)
    df = df.withColumn(EVENT_DATE, F.to_date(col(source.event_time)))
    df = df.where(col(EVENT_DATE).between(F.lit(start), F.lit(end)))
    for join in feature_set.joins:
        if join.level == "entity":
            df = df.join(_join_columns(dimensions[join.dimension], join), on=list(join.on), how="left")
    return df.withColumn(FEATURE_VERSION_COLUMN, F.lit(feature_set.version))


@dataclass
class _Planned:
    """A feature set computed (lazily, or cached when it has quality rules) and checked, not yet merged."""

    feature_set: FeatureSetSpec
    record: RunRecord
    gate: TableGate
    frame: object
    keys: list
    compute_start: dt.date
    events_read: int
    cached: object | None = None


def _plan_feature_set(spark, config: PipelineConfig, feature_set: FeatureSetSpec, record: RunRecord, *,
                      start: dt.date, end: dt.date, incremental: bool) -> _Planned:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    source = config.source(feature_set.source)
    versions: dict[str, int] = {}
    validated = _pinned_read(spark, config.tables.validated(source.name), versions, f"validated.{source.name}")
    compute_start = start
    if incremental:
        # Late events landed in [start, end] but belong to earlier dates: recompute from there.
        earliest = (validated.where(col(INGEST_DATE).between(F.lit(start), F.lit(end)))
                    .agg(F.min(EVENT_DATE)).first()[0])
        if earliest is not None and earliest < start:
            log.info("feature set %s: late events back to %s; recomputing from there", feature_set.name, earliest)
            compute_start = earliest
    read_start = compute_start - dt.timedelta(days=lookback_days(feature_set) + helper_lookback_days(config, feature_set))
    events = validated.where(col(EVENT_DATE).between(F.lit(read_start), F.lit(end)))
    with stage(f"features {feature_set.name}: count input", spark) as st:
        events_read = events.count()
        st.set_rows(events_read)
    dimensions = {j.dimension: _dimension_frame(spark, config, j, versions) for j in feature_set.joins}
    frame = build_feature_frame(events, config=config, feature_set=feature_set, dimensions=dimensions,
                                start=compute_start, end=end)
    keys = list(feature_set.entity) + [source.event_time]
    gate = TableGate(config, f"features.{feature_set.name}")
    gate.check_schema(spark, frame)
    cached = None
    if gate.active:
        references = {r.dimension: io.read_delta(spark, config.tables.validated(r.dimension),
                                                 version=versions.get(f"validated.{r.dimension}"))
                      for r in gate.spec.row_rules if r.check == "referential"}
        frame = gate.with_row_rules(frame, references=references)
        frame = cached = frame.persist(StorageLevel.MEMORY_AND_DISK)
        with stage(f"features {feature_set.name}: quality rules", spark):
            gate.measure(frame)
            out_path = config.tables.features(feature_set.name)
            kept = None
            if io.is_delta_table(spark, out_path):
                kept = io.read_delta(spark, out_path).where(~col(EVENT_DATE).between(F.lit(compute_start), F.lit(end)))
            context = EvaluationContext(now=record.started_at.replace(tzinfo=dt.timezone.utc), start=compute_start,
                                        end=end, timezone=config.timezone)
            gate.decide(spark, valid=frame, existing=kept, context=context)
        frame = frame.select(*gate.output_columns)
    record.rows_read = events_read
    record.input_versions = versions
    record.details = {"compute_start": compute_start.isoformat(), "read_start": read_start.isoformat(),
                      "feature_set_version": feature_set.version}
    if gate.active:
        record.details["quality"] = {r.rule: r.status for r in gate.results}
    return _Planned(feature_set, record, gate, frame, keys, compute_start, events_read, cached)


def _write_feature_set(spark, config: PipelineConfig, planned: _Planned, *, end: dt.date) -> FeatureRunResult:
    feature_set, record, frame, keys = planned.feature_set, planned.record, planned.frame, planned.keys
    compute_start = planned.compute_start
    out_path = config.tables.features(feature_set.name)
    value_columns = [c for c in frame.columns if c not in keys]
    io.add_missing_columns(spark, out_path, frame)  # tables from before _known_at existed
    with stage(f"features {feature_set.name}: compute and merge {compute_start}..{end}", spark) as st:
        planned.gate.prepare_write(spark)
        metrics = io.merge_range(frame, out_path, keys=keys, value_columns=value_columns,
                                 partition_column=EVENT_DATE, start=compute_start, end=end,
                                 partition_by=[EVENT_DATE], evolve_schema=planned.gate.evolve_schema)
        inserted = int(metrics.get("numTargetRowsInserted", metrics.get("numOutputRows", 0)))
        updated = int(metrics.get("numTargetRowsUpdated", 0))
        deleted = int(metrics.get("numTargetRowsDeleted", 0))
        rows_out = int(metrics.get("numSourceRows", metrics.get("numOutputRows", 0)))
        st.set_rows(rows_out)
    table_version = io.delta_version(spark, out_path)
    record.rows_written = inserted + updated
    record.output_versions = {f"features.{feature_set.name}": table_version}
    served = serve_preprocessed(spark, config, feature_set, keys=keys, partition_column=EVENT_DATE,
                                start=compute_start, end=end)
    if served is not None:  # preprocessing.serving: the stored state applied to these rows
        record.output_versions[f"preprocessed.{feature_set.name}"] = served
    record.details.update({"rows_out": rows_out, "inserted": inserted, "updated": updated, "deleted": deleted})
    log.info("feature set %s: %d feature rows for %s..%s (%d inserted, %d updated, %d deleted), version %s",
             feature_set.name, rows_out, compute_start, end, inserted, updated, deleted, table_version)
    return FeatureRunResult(feature_set.name, record.run_id, "succeeded", compute_start, end, planned.events_read,
                            rows_out, inserted, updated, deleted, table_version)
