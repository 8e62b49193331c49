"""The feature job: validated events -> window features -> Delta feature table (MERGE), incrementally.

For a run over ``[start, end]`` and each feature set:

1. find the earliest event date among rows that landed in ``[start, end]`` (late events land in a
   later partition than their event date); recomputation starts there, so late data reaches
   every feature row it affects;
2. read validated events from that date minus the largest window's lookback up to ``end``
   (partition-pruned, pinned to the table version recorded in the ledger); when most of them are
   lookback, compute only the entities with events in the recomputed dates and, of the dates
   before ``start`` that late events pulled in, only the entities with a late event (the other
   entities' stored rows of those dates go into the MERGE unchanged);
3. join event-level dimensions as of each event's time (broadcast; a dimension whose joined
   columns are above the size limit is refused, or sort-merge joined with ``broadcast: auto``),
   compute the window features (:mod:`featuremill.transforms.features`), join entity-level
   dimensions as of each feature row's time;
4. MERGE into ``<warehouse>/<pipeline>/features/<set>`` on (entity keys, event time) within the
   recomputed date range: changed rows updated, new rows inserted, vanished rows deleted,
   identical rows untouched.

The feature table therefore equals a full recompute over the same dates after any sequence of
daily runs, and re-running a date changes no value and adds no row.

Every feature set is planned (inputs read and fingerprinted, committed runs found, schema
contract and quality rules of ``features.<set>`` decided) before any is merged.

Exactly-once (:mod:`featuremill.storage.exactly_once`): the MERGE carries the run key
``featuremill/<pipeline>/features/<set>/<start>/<end>`` as Delta ``txnAppId``. The run's input
fingerprint covers the feature set's definition, the identity (data file names and row counts)
of the validated events in the read range that had landed by ``end``, and the data files of
each joined dimension. Rows landing after ``end`` are left out on purpose: they belong to later
runs, which recompute the dates they touch. A re-run whose fingerprint matches the committed one
writes nothing (and decides no quality rule: there is nothing to gate); a different one needs
``corrective=True``.

An input range without events for the recomputed dates writes nothing (``skipped_empty``)
unless ``allow_empty=True``: a MERGE of nothing would delete the range's feature rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from featuremill.config import FeatureSetSpec, JoinSpec, PipelineConfig
from featuremill.core.errors import BroadcastTooLargeError, TableStateError
from featuremill.core.fingerprint import content_fingerprint, content_hash_aggregate
from featuremill.core.progress import stage
from featuremill.core.session import ensure_timezone
from featuremill.core.sql import col, quote_identifier
from featuremill.pipelines.common import RecordedRuns, missing_history_message
from featuremill.pipelines.preprocess import (
    helper_lookback_days,
    history_helpers,
    preprocessed_path,
    serve_preprocessed,
    serving_state,
)
from featuremill.preprocessing.timeseries import with_history_helpers
from featuremill.quality.gate import TableGate, enforce
from featuremill.quality.rules import EvaluationContext, check_patterns_in_spark
from featuremill.storage import io
from featuremill.storage.exactly_once import CommitGuard, _semantic, digest, feature_set_definition, run_key
from featuremill.storage.ledger import RunRecord
from featuremill.storage.retention import ensure_retention, replay_window
from featuremill.transforms.dimensions import HISTORY_COLUMNS, VALID_TO, as_of_join
from featuremill.transforms.features import with_window_features
from featuremill.transforms.ingest import EVENT_DATE, INGEST_DATE

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


#: ``on_commit(table, version)``: called right after each Delta commit of a run, before the
#: ledger records the run (an observation point; tests use it to simulate a crash there).
CommitHook = Callable[[str, int], None]


def run_features(
    spark,
    config: PipelineConfig,
    *,
    start: dt.date,
    end: dt.date,
    feature_sets: list[str] | None = None,
    incremental: bool = True,
    corrective: bool = False,
    allow_empty: bool = False,
    backfill_id: str | None = None,
    on_commit: CommitHook | None = None,
) -> list[FeatureRunResult]:
    """Compute the feature sets (all, or ``feature_sets``) for event dates ``[start, end]``.

    Every feature set is planned and checked (committed inputs, schema contract, quality rules of
    ``features.<set>``) before any is merged, so changed inputs without ``corrective``, a refused
    schema change or a failed ``fail`` rule leaves every feature table at its previous version.

    ``corrective`` rewrites a run key already committed from different inputs (new Delta
    txnVersion); ``allow_empty`` lets a range without events clear the range's feature rows;
    ``backfill_id`` marks the ledger rows of a backfill's chunks.
    """
    require_locked_definitions(config)
    ensure_timezone(spark, config.timezone)
    check_patterns_in_spark(spark, config)  # rules run as validated: Java must read them too
    chosen = [config.feature_set(n) for n in feature_sets] if feature_sets else list(config.feature_sets)
    runs = RecordedRuns(spark, config, job="features", start=start, end=end, backfill_id=backfill_id)
    planned: list[_Planned] = []
    try:
        for fs in chosen:
            record = runs.open(fs.name)
            with runs.measure(fs.name):
                planned.append(
                    _plan_feature_set(
                        spark,
                        config,
                        fs,
                        record,
                        start=start,
                        end=end,
                        incremental=incremental,
                        corrective=corrective,
                        allow_empty=allow_empty,
                    )
                )
        enforce(spark, config, [(p.gate, p.record.run_id) for p in planned if p.decided], job="features")
        results = []
        for p in planned:
            with runs.measure(p.feature_set.name):
                results.append(_write_feature_set(spark, config, p, end=end, on_commit=on_commit))
            runs.succeed(p.feature_set.name)
        runs.write()
        return results
    except BaseException as exc:
        runs.fail_open(exc)
        raise
    finally:
        for p in planned:
            if p.cached is not None:
                p.cached.unpersist()


def require_locked_definitions(config: PipelineConfig) -> None:
    """Raise :class:`~featuremill.core.errors.ConfigError` when a feature set's definition differs
    from the one its version is locked under (the lock file beside the pipeline file).

    Called by every writer of feature rows (this job, whichever command or DAG reaches it, and
    replay): a changed definition must never be written under an old version number. Without a
    lock file there is nothing to compare with (``featuremill validate`` warns).
    """
    from featuremill.storage import versions

    lock_file = versions.lock_path(config.file)
    versions.require_consistent(config, versions.read_lock(lock_file), lock_file=lock_file)


def _pinned_read(spark, path: str, versions: dict[str, int], name: str, *, version: int | None = None):
    """Read ``path`` at ``version`` (default: its latest), recording the version read under ``name``."""
    if version is None:
        version = io.delta_version(spark, path)
    if version is None:
        raise TableStateError(f"no Delta table at {path} ({name}); run the ingest job first")
    versions[name] = version
    return io.read_delta(spark, path, version=version)


def content_identity(df, *, with_size: bool = False):
    """Row count and the content fingerprint of every column of ``df`` (one small aggregate;
    :mod:`featuremill.core.fingerprint`).

    For dimensions: a snapshot is rewritten by every ingest run, so its file names change even
    when its content does not; its content is small (it is broadcast), so hashing it is cheap.
    ``with_size`` also returns, from the same aggregate, :func:`row_bytes` summed over the rows:
    ``(identity, bytes)``.
    """
    from pyspark.sql import functions as F

    aggs = [F.count(F.lit(1)).alias("n"), content_hash_aggregate(df, alias="h")]
    if with_size:
        aggs.append(F.coalesce(F.sum(row_bytes(df)), F.lit(0)).alias("bytes"))
    row = df.agg(*aggs).first()
    identity = {"rows": int(row["n"]), "checksum": content_fingerprint(row["h"])}
    return (identity, int(row["bytes"])) if with_size else identity


def row_bytes(df):
    """Column: an estimate of a row's size in a broadcast hash relation (Spark's UnsafeRow layout).

    8 bytes of null bits per 64 columns, 8 bytes per column, variable-length values (strings,
    binary; decimals above 18 digits and nested types by their string form) rounded up to 8
    bytes, plus 16 bytes of hash-map entry. It estimates the memory the broadcast takes, which the
    table's compressed size on disk does not (nor does that know which columns are joined).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    fixed = 8 * ((len(df.columns) + 63) // 64) + 8 * len(df.columns) + 16
    total = F.lit(fixed).cast("bigint")
    for field in df.schema.fields:
        c = col(field.name)
        kind = field.dataType
        if isinstance(kind, (T.StringType, T.BinaryType)):
            length = F.octet_length(c)
        elif isinstance(kind, T.DecimalType) and kind.precision > 18:
            length = F.lit(16)
        elif isinstance(kind, (T.NumericType, T.BooleanType, T.DateType, T.TimestampType, T.TimestampNTZType)):
            continue
        else:
            length = F.octet_length(c.cast("string"))
        total = total + F.coalesce(F.ceil(length / 8) * 8, F.lit(0)).cast("bigint")
    return total


def _dimension_frame(
    spark,
    config: PipelineConfig,
    join: JoinSpec,
    versions: dict[str, int],
    states: dict[str, Any] | None = None,
    *,
    pinned: dict[str, int] | None = None,
    fallbacks: list[str] | None = None,
):
    """The dimension history's key, requested and validity columns, marked for broadcast.

    Columns: ``join.on``, ``join.columns``, ``valid_from``, ``valid_to`` (only the current
    versions for ``as_of: latest``). The size guard measures these rows (one small aggregate, the
    same that yields the content identity), not the table's files: over the dimension's
    ``max_broadcast_mb`` the run stops, or with ``broadcast: auto`` the join becomes a sort-merge
    join (logged). ``states`` receives the content identity of the rows used
    (:func:`content_identity`); ``pinned`` maps table names to the versions to read (replay),
    default the latest; ``fallbacks`` receives the dimension's name when it is sort-merge joined.
    """
    from pyspark.sql import functions as F

    dim = config.source(join.dimension)
    path = config.tables.validated(dim.name)
    name = f"validated.{dim.name}"
    df = _pinned_read(spark, path, versions, name, version=(pinned or {}).get(name))
    missing = [c for c in HISTORY_COLUMNS if c not in df.columns]
    if missing:
        unknown = (
            "it is a snapshot written before featuremill kept dimension history, so the attributes valid at "
            "each event's time are unknown"
        )
        raise TableStateError(missing_history_message(dim.name, path, missing, unknown=unknown))
    selected = df.select(*[col(k) for k in join.on], *[col(c) for c in join.columns], *map(col, HISTORY_COLUMNS))
    if join.as_of == "latest":
        selected = selected.where(col(VALID_TO).isNull())
    identity, size = content_identity(selected, with_size=True)
    if states is not None:
        label = f"{join.level} join as of {join.as_of}: {', '.join(join.on + join.columns)}"
        states[f"{name} ({label})"] = identity
    if size <= dim.max_broadcast_bytes:
        return F.broadcast(selected)
    mib, limit = _size_text(size), _size_text(dim.max_broadcast_bytes)
    if join.broadcast == "auto":
        log.warning(
            "dimension %s: the joined columns are about %s in memory, above its broadcast limit of %s; "
            "joining with a sort-merge join (broadcast: auto), which shuffles the rows by %s",
            dim.name,
            mib,
            limit,
            ", ".join(join.on),
        )
        if fallbacks is not None:
            fallbacks.append(dim.name)
        return selected.hint("merge")
    raise BroadcastTooLargeError(
        f"dimension {dim.name!r} is about {mib} in memory for the joined columns ({', '.join(join.on + join.columns)} "
        f"and validity), above its broadcast limit of {limit}; "
        f"raise sources.{dim.name}.max_broadcast_mb (or the environment's max_broadcast_mb) if executors have the "
        f"memory, join fewer columns, or set broadcast: auto on the join to {dim.name!r} to fall back to a "
        "sort-merge join"
    )


def _size_text(size: float) -> str:
    if size < 1024:
        return f"{int(size)} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def _join_dimension(df, dimension, join: JoinSpec, *, time_column: str):
    # Only the key, requested and validity columns are joined: a dimension's own bookkeeping
    # columns (``_ingest_date``...) must not shadow the events' columns of the same name.
    return as_of_join(
        df,
        dimension,
        on=join.on,
        columns=join.columns,
        time_column=None if join.as_of == "latest" else time_column,
        rename=dict(join.renames),
    )


def build_feature_frame(
    events, *, config: PipelineConfig, feature_set: FeatureSetSpec, dimensions: dict, start: dt.date, end: dt.date
):
    """DataFrame -> DataFrame: feature rows for event dates ``[start, end]``.

    ``events`` are validated events of ``feature_set.source`` covering at least
    ``[start - lookback, end]``; ``dimensions`` maps each join's dimension name to its (broadcast)
    frame. Output grain: one row per (entity keys, event time) with ``event_date`` (date), the
    features, ``_known_at`` (timestamp, when ``events`` carry ``_ingest_date``: see
    :mod:`featuremill.transforms.features`), the entity-level joined columns (under their names in
    the join's ``columns`` mapping, when renamed) and ``_feature_set_version`` (int).
    """
    from pyspark.sql import functions as F

    source = config.source(feature_set.source)
    df = events.where(
        F.greatest(*[col(k).isNull() for k in feature_set.entity], col(source.event_time).isNull()) == F.lit(False)
    )
    for join in feature_set.joins:
        if join.level == "event":
            df = _join_dimension(df, dimensions[join.dimension], join, time_column=source.event_time)
    df = with_window_features(
        df,
        entity=feature_set.entity,
        event_time=source.event_time,
        order_key=source.key,
        features=feature_set.features,
        known_at_from=INGEST_DATE if INGEST_DATE in events.columns else None,
    )
    helpers = history_helpers(config, feature_set)
    if helpers:  # preprocessing.timeseries: lags, diffs, z-scores, EMAs over the feature rows
        df = with_history_helpers(df, entity=feature_set.entity, event_time=source.event_time, helpers=helpers)
    df = df.withColumn(EVENT_DATE, F.to_date(col(source.event_time)))
    df = df.where(col(EVENT_DATE).between(F.lit(start), F.lit(end)))
    for join in feature_set.joins:
        if join.level == "entity":
            # As of the feature row's time: the end of its windows.
            df = _join_dimension(df, dimensions[join.dimension], join, time_column=source.event_time)
    return df.withColumn(FEATURE_VERSION_COLUMN, F.lit(feature_set.version))


#: Estimated bytes per entity key in the broadcast of the recomputed range's keys (hash-map entry
#: and row included); strings longer than this only make the estimate optimistic by their excess.
_KEY_BYTES = 64


def events_of_active_entities(events, *, entity, start: dt.date, end: dt.date, broadcast: bool):
    """DataFrame -> DataFrame: the events of the entities that have an event dated ``[start, end]``.

    Input: validated events (``entity`` keys, ``event_date``), already limited to the dates a run
    reads (``[start - lookback, end]``, a partition filter). Output: the same columns and rows,
    minus every entity without an event in ``[start, end]``. Those entities make no feature row
    dated in the range, and every feature of an entity depends on its own events only, so the
    feature rows of the range are unchanged; the window computation (shuffle, sort, frames) then
    handles the lookback of the active entities only instead of every entity's.

    A left semi join against the distinct keys of ``[start, end]`` (their scan is pruned to those
    partitions); ``broadcast`` makes it a broadcast hash join, which adds no shuffle of the events.
    """
    from pyspark.sql import functions as F

    keys = events.where(col(EVENT_DATE).between(F.lit(start), F.lit(end))).select(*[col(k) for k in entity]).distinct()
    if broadcast:
        keys = F.broadcast(keys)
    return events.join(keys, on=list(entity), how="left_semi")


def changed_entity_keys(events, *, entity, compute_start: dt.date, start: dt.date, end: dt.date):
    """DataFrame -> DataFrame: the distinct ``entity`` keys whose feature rows a run over
    ``[start, end]`` can change, when late events moved its recompute back to ``compute_start``.

    Input: validated events (``entity`` keys, ``event_date``, ``_ingest_date``). A key is kept when
    it has an event dated ``[start, end]`` (the run's own dates: every feature row dated there is
    computed, as without late events) or an event dated ``[compute_start, start)`` that landed in
    ``[start, end]`` (a late event). Any other entity has no event dated in the run's dates and no
    newly landed event, so its feature rows dated ``[compute_start, start)`` are the ones the runs of
    those dates wrote. The scan is pruned to the event-date partitions ``[compute_start, end]``.
    """
    from pyspark.sql import functions as F

    in_dates = col(EVENT_DATE).between(F.lit(start), F.lit(end))
    late = col(INGEST_DATE).between(F.lit(start), F.lit(end))
    return (
        events.where(col(EVENT_DATE).between(F.lit(compute_start), F.lit(end)))
        .where(in_dates | late)
        .select(*[col(k) for k in entity])
        .distinct()
    )


def _stored_rows_like(spark, path: str, frame):
    """The feature table at ``path`` as ``frame``'s columns, or ``None`` when there is no table or
    one of ``frame``'s columns is missing from it or has another type (then its rows cannot stand
    in for recomputed ones)."""
    if not io.is_delta_table(spark, path):
        return None
    stored = io.read_delta(spark, path)
    types = {f.name: f.dataType for f in stored.schema.fields}
    if any(types.get(f.name) != f.dataType for f in frame.schema.fields):
        return None
    return stored.select(*[col(c) for c in frame.columns])


def event_input_state(events, *, event_time: str, compute_start: dt.date, end: dt.date) -> dict[str, Any]:
    """One aggregate over the events a run reads (two small shuffles, a few numbers to the driver).

    ``events`` is the validated read for ``[compute_start - lookback, end]``. Returns
    ``rows_read``, ``rows_in_range`` (events dated ``[compute_start, end]``, the rows that make
    feature rows), ``max_event_micros`` (latest event time among them, UTC microseconds) and the
    identity of the rows that had landed by ``end``: ``landed_files``, ``landed_rows`` and a
    digest of (file name, rows) pairs. Reads the file name, the landing date and the event time.
    """
    from pyspark.sql import functions as F

    ts = F.expr(f"unix_micros({quote_identifier(event_time)})")
    per_file = (
        events.select(
            F.col("_metadata.file_name").alias("file"),
            (col(INGEST_DATE) <= F.lit(end)).alias("landed"),
            (col(EVENT_DATE) >= F.lit(compute_start)).alias("in_range"),
            ts.alias("t"),
        )
        .groupBy("file")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.count(F.when(F.col("landed"), F.lit(1))).alias("n_landed"),
            F.count(F.when(F.col("in_range"), F.lit(1))).alias("n_range"),
            F.max(F.when(F.col("in_range"), F.col("t"))).alias("max_t"),
        )
    )
    row = per_file.agg(
        F.coalesce(F.sum("n"), F.lit(0)).alias("rows_read"),
        F.coalesce(F.sum("n_range"), F.lit(0)).alias("rows_in_range"),
        F.max("max_t").alias("max_event_micros"),
        F.count(F.when(F.col("n_landed") > 0, F.lit(1))).alias("landed_files"),
        F.coalesce(F.sum("n_landed"), F.lit(0)).alias("landed_rows"),
        F.sum(F.when(F.col("n_landed") > 0, F.xxhash64("file", "n_landed").cast("decimal(38,0)"))).alias("digest"),
    ).first()
    return {
        "rows_read": int(row["rows_read"]),
        "rows_in_range": int(row["rows_in_range"]),
        "max_event_micros": row["max_event_micros"],
        "landed_files": int(row["landed_files"]),
        "landed_rows": int(row["landed_rows"]),
        "landed_digest": str(row["digest"] or 0),
    }


def micros_to_utc(micros: int | None) -> dt.datetime | None:
    if micros is None:
        return None
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(micros))


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
    guard: CommitGuard | None = None
    skipped: bool = False
    committed: bool = False
    decided: bool = False


def fingerprint_definition(config: PipelineConfig, feature_set: FeatureSetSpec) -> dict[str, Any]:
    """What the fingerprint hashes as the definition: the feature set's, plus the
    ``preprocessing.timeseries`` helpers computed over its rows (only when it has any)."""
    definition = feature_set_definition(config, feature_set)
    helpers = history_helpers(config, feature_set)
    if helpers:
        definition["history_helpers"] = _semantic(list(helpers))
    return definition


def _serve(
    spark, config: PipelineConfig, planned: _Planned, *, end: dt.date, on_commit: CommitHook | None = None
) -> None:
    """``preprocessing.serving``: apply the stored state to the run's feature rows, exactly once.

    Its own run key per state (``.../preprocessed/<set>@<state>.v<version>/<start>/<end>``): a
    newly fitted state serves the range on the next run without ``--corrective``; the same state
    over the same feature inputs writes nothing. Runs after the feature write, and also when the
    feature write was already committed (a state fitted since then gets served).
    """
    feature_set, record, guard = planned.feature_set, planned.record, planned.guard
    state = serving_state(spark, config, feature_set)
    if state is None:
        return
    name = f"preprocessed.{feature_set.name}"
    serve_guard = CommitGuard(
        spark,
        run_key=run_key(
            config.name,
            "preprocessed",
            f"{feature_set.name}@{state.name}.v{state.version}",
            record.start_date,
            record.end_date,
        ),
        run_id=record.run_id,
        label=f"preprocessed {feature_set.name} {record.start_date}..{record.end_date}",
        inputs={"features": guard.fingerprint, "state": {"name": state.name, "version": state.version}},
        versions=dict(record.input_versions),
        tables={name: preprocessed_path(config, feature_set.name)},
        corrective=guard.corrective,
    ).plan()
    if serve_guard.is_committed(name):
        record.output_versions[name] = serve_guard.prior(name).table_version
        return
    # change_feed: the preprocessed table is served (view <set>_preprocessed); materialization reads its feed
    ensure_retention(
        spark,
        preprocessed_path(config, feature_set.name),
        replay_window(config),
        root=config.env.root,
        change_feed=True,
    )
    serve_preprocessed(
        spark,
        config,
        feature_set,
        keys=planned.keys,
        partition_column=EVENT_DATE,
        start=planned.compute_start,
        end=end,
        state=state,
        commit=serve_guard.tag(name),
    )
    record.output_versions[name], _ = serve_guard.confirm(name)
    if on_commit is not None:
        on_commit(name, record.output_versions[name])


def _plan_feature_set(
    spark,
    config: PipelineConfig,
    feature_set: FeatureSetSpec,
    record: RunRecord,
    *,
    start: dt.date,
    end: dt.date,
    incremental: bool,
    corrective: bool = False,
    allow_empty: bool = False,
) -> _Planned:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    source = config.source(feature_set.source)
    out_path = config.tables.features(feature_set.name)
    out_name = f"features.{feature_set.name}"
    label = f"features {feature_set.name} {start}..{end}"
    record.run_key = run_key(config.name, "features", feature_set.name, start, end)
    versions: dict[str, int] = {}
    tables: dict[str, Any] = {}
    events_name = f"validated.{source.name}"
    validated = _pinned_read(spark, config.tables.validated(source.name), versions, events_name)
    fallbacks: list[str] = []
    dimensions = {
        j.dimension: _dimension_frame(spark, config, j, versions, tables, fallbacks=fallbacks)
        for j in feature_set.joins
    }
    compute_start = start
    if incremental:
        # Late events landed in [start, end] but belong to earlier dates: recompute from there.
        with stage(f"features {feature_set.name}: find late events", spark, key="late_events"):
            earliest = (
                validated.where(col(INGEST_DATE).between(F.lit(start), F.lit(end))).agg(F.min(EVENT_DATE)).first()[0]
            )
        if earliest is not None and earliest < start:
            log.info("feature set %s: late events back to %s; recomputing from there", feature_set.name, earliest)
            compute_start = earliest
    read_start = compute_start - dt.timedelta(
        days=lookback_days(feature_set) + helper_lookback_days(config, feature_set)
    )
    events = validated.where(col(EVENT_DATE).between(F.lit(read_start), F.lit(end)))
    with stage(f"features {feature_set.name}: count input", spark, key="input_scan") as st:
        state = event_input_state(events, event_time=source.event_time, compute_start=compute_start, end=end)
        st.set_rows(state["rows_read"])
    events_read = state["rows_read"]
    tables[events_name] = {
        "event_dates": f"{read_start}..{end}",
        "landed_by": end.isoformat(),
        "files": state["landed_files"],
        "rows": state["landed_rows"],
        "files_digest": state["landed_digest"],
    }
    record.rows_read = events_read
    record.input_versions = dict(versions)
    record.max_event_time = micros_to_utc(state["max_event_micros"])
    record.details = {
        "compute_start": compute_start.isoformat(),
        "read_start": read_start.isoformat(),
        "feature_set_version": feature_set.version,
        "definition": digest(fingerprint_definition(config, feature_set)),
    }
    keys = list(feature_set.entity) + [source.event_time]
    gate = TableGate(config, out_name)
    planned = _Planned(feature_set, record, gate, None, keys, compute_start, events_read)
    if state["rows_in_range"] == 0 and not allow_empty:
        # A MERGE of nothing would delete every feature row of the range.
        log.warning(
            "%s: no events dated %s..%s; nothing written (pass --allow-empty to clear the range)",
            label,
            compute_start,
            end,
        )
        record.status = "skipped_empty"
        planned.skipped = True
        return planned
    planned.guard = guard = CommitGuard(
        spark,
        run_key=record.run_key,
        run_id=record.run_id,
        inputs={"definition": record.details["definition"], "tables": tables},
        versions=versions,
        tables={out_name: out_path},
        corrective=corrective,
        label=label,
    ).plan()
    record.txn_version = guard.txn_version
    record.input_fingerprint = guard.fingerprint
    if guard.is_committed(out_name):
        # Nothing will be written, so there is nothing for the quality gate to let through.
        planned.committed = True
        return planned
    compute_input, broadcast = events, None
    if incremental and 2 * state["rows_in_range"] <= state["rows_read"]:
        # Most rows read are lookback: compute only the entities with events in the range. The
        # counts come from the input-state aggregate above (no extra scan); a key per event of
        # the range bounds the distinct keys to broadcast.
        broadcast = state["rows_in_range"] * _KEY_BYTES * max(1, len(feature_set.entity)) <= (
            config.env.max_broadcast_bytes
        )
        compute_input = events_of_active_entities(
            events, entity=feature_set.entity, start=compute_start, end=end, broadcast=broadcast
        )
        record.details["active_entities_only"] = "broadcast" if broadcast else "shuffle"
    frame = build_feature_frame(
        compute_input, config=config, feature_set=feature_set, dimensions=dimensions, start=compute_start, end=end
    )
    if broadcast is not None and compute_start < start and not corrective:
        # Late events: only the entities they (or the run's own dates) touch are recomputed.
        late_range = _with_late_range_kept(
            spark,
            config,
            feature_set,
            frame,
            events=events,
            dimensions=dimensions,
            broadcast=broadcast,
            start=start,
            compute_start=compute_start,
            end=end,
        )
        if late_range is not None:
            frame = late_range
            record.details["late_range"] = "changed_entities_only"
    if fallbacks:
        # The plan shows where the sort-merge joins and their shuffles went (the log is the record).
        modes = frame.sparkSession._jvm.org.apache.spark.sql.execution.ExplainMode
        plan = frame._jdf.queryExecution().explainString(modes.fromString("simple"))
        log.warning("%s: %s joined with a sort-merge join; plan:\n%s", label, ", ".join(fallbacks), plan)
        record.details["sort_merge_joins"] = list(fallbacks)
    gate.check_schema(spark, frame)
    if gate.active:
        references = {
            r.dimension: io.read_delta(
                spark, config.tables.validated(r.dimension), version=versions.get(f"validated.{r.dimension}")
            )
            for r in gate.spec.row_rules
            if r.check == "referential"
        }
        frame = gate.with_row_rules(frame, references=references)
        # DISK_ONLY for the same reason as ingest's batch cache: bounded heap use on small drivers.
        frame = planned.cached = frame.persist(StorageLevel.DISK_ONLY)
        with stage(f"features {feature_set.name}: quality rules", spark, key="quality_rules"):
            gate.measure(frame)
            kept = None
            if io.is_delta_table(spark, out_path):
                kept = io.read_delta(spark, out_path).where(~col(EVENT_DATE).between(F.lit(compute_start), F.lit(end)))
            context = EvaluationContext(
                now=record.started_at.replace(tzinfo=dt.timezone.utc),
                start=compute_start,
                end=end,
                timezone=config.timezone,
            )
            gate.decide(spark, valid=frame, existing=kept, context=context)
        planned.decided = True
        frame = frame.select(*gate.output_columns)
        record.details["quality"] = {r.rule: r.status for r in gate.results}
    planned.frame = frame
    return planned


def _with_late_range_kept(
    spark,
    config: PipelineConfig,
    feature_set: FeatureSetSpec,
    frame,
    *,
    events,
    dimensions: dict,
    broadcast: bool,
    start: dt.date,
    compute_start: dt.date,
    end: dt.date,
):
    """Feature rows for ``[compute_start, end]`` when late events moved an incremental run's range
    back to ``compute_start``: the entities :func:`changed_entity_keys` finds are recomputed, every
    other entity's stored rows dated ``[compute_start, start)`` are kept as they are.

    ``events`` is the run's validated read (``[compute_start - lookback, end]``), ``frame`` the
    feature rows computed for every entity with an event in the range: ``None`` (keep ``frame``)
    when the feature table does not exist yet or lacks one of its columns or types. The MERGE makes the
    range's rows equal its source, so the kept rows go into the source: identical rows are left
    alone, and the table's quality gate still sees every row of the range. At 5M events (a day of
    54,748 events, 538 of them late by up to 3 days) this recomputes 42,310 customers instead of
    97,467, whose lookback is 779,805 events instead of 1,564,125.
    """
    from pyspark.sql import functions as F

    stored = _stored_rows_like(spark, config.tables.features(feature_set.name), frame)
    if stored is None:
        return None
    entity = list(feature_set.entity)
    keys = changed_entity_keys(events, entity=entity, compute_start=compute_start, start=start, end=end)
    if broadcast:
        keys = F.broadcast(keys)
    recomputed = build_feature_frame(
        events.join(keys, on=entity, how="left_semi"),
        config=config,
        feature_set=feature_set,
        dimensions=dimensions,
        start=compute_start,
        end=end,
    )
    before_start = col(EVENT_DATE).between(F.lit(compute_start), F.lit(start - dt.timedelta(days=1)))
    kept = stored.where(before_start).join(keys, on=entity, how="left_anti")
    return recomputed.unionByName(kept)


def _write_feature_set(
    spark, config: PipelineConfig, planned: _Planned, *, end: dt.date, on_commit: CommitHook | None = None
) -> FeatureRunResult:
    feature_set, record, frame, keys = planned.feature_set, planned.record, planned.frame, planned.keys
    compute_start, guard = planned.compute_start, planned.guard
    out_path = config.tables.features(feature_set.name)
    out_name = f"features.{feature_set.name}"
    if planned.skipped:
        return FeatureRunResult(
            feature_set.name,
            record.run_id,
            "skipped_empty",
            compute_start,
            end,
            planned.events_read,
            0,
            0,
            0,
            0,
            io.delta_version(spark, out_path),
        )
    if planned.committed:
        prior = guard.prior(out_name)
        record.input_versions = dict(prior.versions) or dict(record.input_versions)
        record.output_versions = {out_name: prior.table_version}
        record.details.update(commit="already_committed", committed_by_run=prior.run_id)
        _serve(spark, config, planned, end=end, on_commit=on_commit)
        return FeatureRunResult(
            feature_set.name,
            record.run_id,
            "already_committed",
            compute_start,
            end,
            planned.events_read,
            0,
            0,
            0,
            0,
            prior.table_version,
        )
    window = replay_window(config)
    # change_feed: every feature table is served by a feature view; materialization reads its feed
    ensure_retention(spark, out_path, window, root=config.env.root, change_feed=True)
    value_columns = [c for c in frame.columns if c not in keys]
    # tables from before _known_at existed
    io.add_missing_columns(spark, out_path, frame, root=config.env.root, what=f"table {out_name}")
    with stage(
        f"features {feature_set.name}: compute and merge {compute_start}..{end}", spark, key="compute_merge"
    ) as st:
        planned.gate.prepare_write(spark)
        metrics = io.merge_range(
            frame,
            out_path,
            root=config.env.root,
            what=f"table {out_name}",
            keys=keys,
            value_columns=value_columns,
            partition_column=EVENT_DATE,
            start=compute_start,
            end=end,
            partition_by=[EVENT_DATE],
            evolve_schema=planned.gate.evolve_schema,
            commit=guard.tag(out_name),
            properties=window.table_properties(change_feed=True),
        )
        table_version, written_here = guard.confirm(out_name)
        if not written_here:
            metrics = {}
        inserted = int(metrics.get("numTargetRowsInserted", metrics.get("numOutputRows", 0)))
        updated = int(metrics.get("numTargetRowsUpdated", 0))
        deleted = int(metrics.get("numTargetRowsDeleted", 0))
        rows_out = int(metrics.get("numSourceRows", metrics.get("numOutputRows", 0)))
        st.set_rows(rows_out)
    if on_commit is not None:
        on_commit(out_name, table_version)
    record.rows_written = inserted + updated
    record.output_versions = {out_name: table_version}
    record.details.update(
        rows_out=rows_out,
        inserted=inserted,
        updated=updated,
        deleted=deleted,
        commit="written" if written_here else "already_committed",
    )
    _serve(spark, config, planned, end=end, on_commit=on_commit)
    log.info(
        "feature set %s version %d: %d feature rows for %s..%s (%d inserted, %d updated, %d deleted), "
        "Delta table version %s",
        feature_set.name,
        feature_set.version,
        rows_out,
        compute_start,
        end,
        inserted,
        updated,
        deleted,
        table_version,
    )
    status = "succeeded" if written_here else "already_committed"
    return FeatureRunResult(
        feature_set.name,
        record.run_id,
        status,
        compute_start,
        end,
        planned.events_read,
        rows_out,
        inserted,
        updated,
        deleted,
        table_version,
    )
