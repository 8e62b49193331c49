"""The training-set job: spine + feature tables -> point-in-time-correct training set + manifest.

``build_training_set`` (``featuremill training-set PIPELINE --spine ... --features ... --out ...``):

1. check the pipeline against its lock file (a definition changed without a version bump stops
   the job, see :mod:`featuremill.storage.versions`);
2. read the spine (Delta pinned to its current version, or Parquet/CSV/JSON) and fingerprint it;
3. for each requested feature set, pin its Delta table's current version, and check in one small
   aggregate that every row was written by the requested version (and, with known-at, carries
   ``_known_at``): a training set never mixes feature versions silently; the same aggregate gives
   the table's first event date;
3b. **warm-up** (unless ``include_warming_up``): leave out spine rows whose label time ``T`` has a
   window still filling, ``T - W < first`` for some set (``W`` the longest window of its
   attached features, ``first`` its table's first event date, midnight in the pipeline time
   zone; :mod:`featuremill.transforms.warmup`): their 30-day features would hold a few days of
   history. The count left out and each set's ``first_history`` / ``warmup_seconds`` go to the
   manifest, and the output's row and spine checks apply to the spine rows kept. Rows with a
   null label time stay (they get no feature row at all). With ``include_warming_up`` every
   spine row is kept, as before the rule existed; the manifest's ``first_history`` and
   ``warmup_seconds`` let a reader flag them (``complete_window`` in
   :func:`featuremill.transforms.warmup.with_complete_window`);
4. point-in-time join (:func:`featuremill.transforms.pit.point_in_time_join`), strategy chosen by spine size;
   then, for ``dimension_columns``, the as-of join of each dimension's history, pinned to its
   current Delta version (:func:`featuremill.transforms.dimensions.as_of_join`, see below);
5. overwrite the output Delta table, check it has exactly the spine's row count, fingerprint it;
6. write the manifest (:mod:`featuremill.storage.manifest`) and a run-log row.

``rebuild_training_set`` (``--manifest M``) repeats steps 4-6 on the inputs recorded in a
manifest (dimension histories included), read through Delta time travel, and fails unless the
rebuilt output has the recorded fingerprint.

Output columns: the spine's columns unchanged, then per feature set its features (declared
order), then the requested entity-level dimension columns (``dimension_columns``,
``--dimension-columns``), in the order asked. The copies of those columns in the feature tables
are never used: they are as of the feature row's time, which may be days before the label time.
Each value comes from the dimension's history instead (:mod:`featuremill.transforms.dimensions`),
the version valid at the label time ``T`` (``valid_from <= T < valid_to``; with ``strict`` the
version valid just before ``T``), read at a pinned Delta version recorded in the manifest
(``dimension_columns``). A dimension table without history columns (a snapshot written before
featuremill kept history) is refused: its rows hold today's values, which would leak into
earlier label times. The feature tables' internal columns (``_known_at``,
``_feature_set_version``: :data:`featuremill.core.columns.RESERVED_PREFIX`) only drive the join and
its checks; they never reach the output. For debugging, ``keep_internal_columns``
(``--keep-internal-columns``) adds per feature set ``_<set>_event_time`` (event time of the
feature row used) and, with known-at, ``_<set>_known_at``; ``featuremill select`` leaves them
out. A spine with an internal-prefixed column is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from featuremill.config import PipelineConfig
from featuremill.core.columns import RESERVED_PREFIX, is_internal
from featuremill.core.errors import ChangedInputError, InputDataError, TableStateError, TrainingSetError
from featuremill.core.progress import stage
from featuremill.core.session import ensure_timezone
from featuremill.pipelines.build_features import FEATURE_VERSION_COLUMN
from featuremill.pipelines.common import missing_history_message, recorded_run
from featuremill.storage import io, versions
from featuremill.storage import manifest as manifests
from featuremill.storage.exactly_once import CommitGuard, run_key
from featuremill.transforms.dimensions import HISTORY_COLUMNS, as_of_join
from featuremill.transforms.features import KNOWN_AT
from featuremill.transforms.ingest import EVENT_DATE
from featuremill.transforms.pit import FeatureSource, point_in_time_join
from featuremill.transforms.warmup import is_complete, warmup_seconds

log = logging.getLogger(__name__)

#: ``auto`` uses the broadcast strategy up to this many spine rows (see docs/training-sets.md).
BROADCAST_MAX_SPINE_ROWS = 50_000
#: ... and only while the spine is this many times smaller than the smallest feature table.
BROADCAST_MIN_FEATURE_RATIO = 20


@dataclass(frozen=True)
class FeatureRequest:
    """``NAME`` or ``NAME@VERSION`` from the command line."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


def parse_feature_requests(text: str) -> tuple[FeatureRequest, ...]:
    """``"a,b@2"`` -> requests; :class:`TrainingSetError` on a malformed item or a repeat."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, version = item.partition("@")
        if not name or (sep and not version.isdigit()):
            raise TrainingSetError(f"--features: {item!r} is not NAME or NAME@VERSION (VERSION a whole number)")
        out.append(FeatureRequest(name.strip(), int(version) if sep else None))
    if not out:
        raise TrainingSetError("--features: give at least one feature set, e.g. --features customer_activity")
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise TrainingSetError(f"--features: a feature set is listed twice ({', '.join(names)})")
    return tuple(out)


@dataclass(frozen=True)
class DimensionColumnRequest:
    """``COLUMN`` or ``FEATURE_SET.COLUMN`` from ``--dimension-columns``."""

    column: str
    feature_set: str | None = None

    def __str__(self) -> str:
        return self.column if self.feature_set is None else f"{self.feature_set}.{self.column}"


def parse_dimension_columns(text: str) -> tuple[DimensionColumnRequest, ...]:
    """``"segment,customer_activity.country"`` -> requests; :class:`TrainingSetError` on a
    malformed item or a column asked twice."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        parts = [p.strip() for p in item.split(".")]
        if len(parts) > 2 or not all(parts):
            raise TrainingSetError(
                f"--dimension-columns: {item!r} is not COLUMN or FEATURE_SET.COLUMN, e.g. segment or "
                "customer_activity.segment"
            )
        out.append(DimensionColumnRequest(parts[-1], parts[0] if len(parts) == 2 else None))
    if not out:
        raise TrainingSetError("--dimension-columns: give at least one column, e.g. --dimension-columns segment")
    names = [r.column for r in out]
    if len(set(names)) != len(names):
        raise TrainingSetError(f"--dimension-columns: a column is listed twice ({', '.join(map(str, out))})")
    return tuple(out)


def resolve_dimension_columns(
    config: PipelineConfig, feature_sets: Sequence[str], requests: Sequence[DimensionColumnRequest]
) -> list[dict[str, Any]]:
    """The dimension joins that give the requested columns: one entry per (feature set, dimension),
    ``{"feature_set", "dimension", "on", "columns", "dimension_columns"}``: ``columns`` as asked
    (the join's names in the feature frame, after a ``columns: {dim_col: name}`` rename), in the
    order asked, and ``dimension_columns`` the dimension's own names for them.

    A column must be among the (output) columns of a ``level: entity`` join of one of ``feature_sets``
    (the requested feature sets); :class:`TrainingSetError` names the fix for an unknown column, an
    event-level join column, a feature set not requested, or a column two requested sets join from
    different dimensions (qualify it as ``FEATURE_SET.COLUMN``).
    """
    requested = [config.feature_set(name) for name in feature_sets]
    offered = [f"{fs.name}.{c}" for fs in requested for j in fs.joins if j.level == "entity" for c in j.output_columns]
    offer = (
        f"the entity-level dimension columns of the requested feature sets are {', '.join(offered)}"
        if offered
        else "the requested feature sets join no dimension with level: entity"
    )
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for request in requests:
        if request.feature_set is not None and request.feature_set not in feature_sets:
            raise TrainingSetError(
                f"--dimension-columns: {request}: feature set {request.feature_set!r} is not among --features "
                f"({', '.join(feature_sets)}); add it there or drop the prefix"
            )
        sets = [fs for fs in requested if request.feature_set in (None, fs.name)]
        found = [(fs, j) for fs in sets for j in fs.joins if j.level == "entity" and request.column in j.output_columns]
        if not found:
            event = [
                f"{fs.name} (dimension {j.dimension})"
                for fs in sets
                for j in fs.joins
                if j.level == "event" and request.column in j.output_columns
            ]
            if event:
                raise TrainingSetError(
                    f"--dimension-columns: {request} is joined at event level (before the windows) in "
                    f"{', '.join(event)}, not per entity; only columns of joins with level: entity can be attached "
                    f"({offer})"
                )
            raise TrainingSetError(f"--dimension-columns: {request} is not a dimension column; {offer}")
        if len({(j.dimension, j.on) for _, j in found}) > 1:
            raise TrainingSetError(
                f"--dimension-columns: {request} is joined from different dimensions by "
                f"{', '.join(f'{fs.name} ({j.dimension})' for fs, j in found)}; name one as FEATURE_SET.COLUMN"
            )
        fs, join = found[0]
        entry = entries.setdefault(
            (fs.name, join.dimension),
            {
                "feature_set": fs.name,
                "dimension": join.dimension,
                "on": list(join.on),
                "columns": [],
                "dimension_columns": [],
            },
        )
        entry["columns"].append(request.column)
        entry["dimension_columns"].append(join.dimension_column(request.column))
    return list(entries.values())


def check_dimension_column_names(spine_columns: Sequence[str], entries, dimension_entries) -> None:
    """Refuse a dimension column whose name the spine or an attached feature already uses.

    ``entries``: the feature sets' manifest entries (``name``, ``features``); ``dimension_entries``:
    :func:`resolve_dimension_columns`' entries. :class:`TrainingSetError` names the clash."""
    taken = {c: "the spine" for c in spine_columns}
    taken.update({f: f"feature set {e['name']!r}" for e in entries for f in e["features"]})
    for d in dimension_entries:
        for c in d["columns"]:
            if c in taken:
                raise TrainingSetError(
                    f"--dimension-columns: {c} (dimension {d['dimension']!r}) is already a column of {taken[c]}; "
                    "rename that column in the spine, or leave the dimension column out"
                )


def _dimension_history(
    spark, config: PipelineConfig, dimension: str, *, table: str | None = None, version: int | None = None
):
    """(history frame, table path, Delta version) of a dimension: its validated table (or
    ``table``, a manifest's record) at ``version``, default its current version."""
    table = table or config.tables.validated(dimension)
    if version is None:
        version = io.delta_version(spark, table)
        if version is None:
            raise TableStateError(
                f"no table for dimension {dimension!r} at {table}; run "
                f"`featuremill run {config.file} --job ingest` first"
            )
        frame = io.read_delta(spark, table, version=version)
    else:
        frame = _read_pinned(spark, table, fmt="delta", version=version, what=f"dimension {dimension!r}")[0]
    missing = [c for c in HISTORY_COLUMNS if c not in frame.columns]
    if missing:
        unknown = (
            "it is a snapshot of today's values, not a history, so the values valid at each label time are "
            "unknown and today's would leak into earlier labels"
        )
        raise TrainingSetError(
            missing_history_message(dimension, table, missing, unknown=unknown) + ", or leave --dimension-columns out"
        )
    return frame, table, version


def _with_dimension_columns(joined, dimension_entries, frames, *, spine_time: str, strict: bool):
    """DataFrame -> DataFrame: ``joined`` (spine + features) with each entry's columns as of the
    label time (same rows; null where no version of the key is valid then)."""
    from featuremill.core.sql import col

    for entry, frame in zip(dimension_entries, frames):
        sources = entry.get("dimension_columns") or entry["columns"]
        history = frame.select(*[col(k) for k in entry["on"]], *[col(c) for c in sources], *map(col, HISTORY_COLUMNS))
        joined = as_of_join(
            joined,
            history,
            on=entry["on"],
            columns=sources,
            rename=dict(zip(sources, entry["columns"], strict=True)),
            time_column=spine_time,
            strict=strict,
        )
    return joined


@dataclass(frozen=True)
class TrainingSetOptions:
    spine: str
    features: tuple[FeatureRequest, ...]
    out: str
    spine_format: str | None = None
    spine_time: str | None = None
    manifest_out: str | None = None
    strict: bool = False
    ttl_seconds: int | None = None
    known_at: bool = False
    strategy: str = "auto"
    #: kept features of a selection (``featuremill select``'s selected_features.json), or None for all
    selected_features: tuple[str, ...] | None = None
    selected_from: str | None = None
    #: add the ``_<set>_event_time`` / ``_<set>_known_at`` columns of the matched rows (debugging)
    keep_internal_columns: bool = False
    #: keep spine rows whose feature windows reach before the first event date; by default they
    #: are left out (module docstring, step 3b)
    include_warming_up: bool = False
    #: entity-level dimension columns to attach as of the label time (module docstring)
    dimension_columns: tuple[DimensionColumnRequest, ...] = ()


@dataclass(frozen=True)
class TrainingSetResult:
    out: str
    manifest_path: str
    manifest: Mapping[str, Any]
    rows: int
    strategy: str
    identical_to_source: bool | None = None
    warming_up_excluded: int = 0


def choose_strategy(requested: str, *, spine_rows: int, feature_rows: Sequence[int]) -> str:
    """``window`` or ``broadcast``; ``auto`` picks broadcast only for spines that are small in
    absolute terms and next to every feature table (the measured crossover, docs/training-sets.md)."""
    if requested != "auto":
        return requested
    smallest = min(feature_rows) if feature_rows else 0
    if spine_rows <= BROADCAST_MAX_SPINE_ROWS and spine_rows * BROADCAST_MIN_FEATURE_RATIO <= smallest:
        return "broadcast"
    return "window"


def _spine_time_column(spine, requested: str | None) -> str:
    from pyspark.sql.types import TimestampNTZType, TimestampType

    if requested:
        return requested
    stamps = [f.name for f in spine.schema.fields if isinstance(f.dataType, (TimestampType, TimestampNTZType))]
    if len(stamps) != 1:
        raise TrainingSetError(
            "the spine has "
            + (f"several timestamp columns ({', '.join(stamps)})" if stamps else "no timestamp column")
            + "; name the label time with --time-column"
        )
    return stamps[0]


def _with_zoned_time(spine, column: str, *, timezone: str):
    """A spine whose label time is ``TIMESTAMP_NTZ`` (pandas' naive datetimes, for example) with
    that column read as a wall-clock time in the pipeline's time zone (the session's, set by
    :func:`ensure_timezone`); any other spine unchanged."""
    from pyspark.sql.types import TimestampNTZType

    from featuremill.core.sql import col

    field = next((f for f in spine.schema.fields if f.name == column), None)
    if field is None or not isinstance(field.dataType, TimestampNTZType):
        return spine
    log.info("spine column %s is TIMESTAMP_NTZ: reading it as wall-clock time in %s", column, timezone)
    return spine.withColumn(column, col(column).cast("timestamp"))


def _check_spine_columns(spine, path: str) -> None:
    """Refuse a spine with a column under the reserved prefix: it would pass through into the
    training set, a user-facing table that must hold no internal column."""
    internal = [c for c in spine.columns if is_internal(c)]
    if internal:
        raise TrainingSetError(
            f"spine {path}: column(s) {', '.join(internal)} start with {RESERVED_PREFIX!r}, the prefix featuremill "
            "reserves for its internal columns (docs/pipeline-config.md#reserved-column-names); drop or rename "
            "them in the spine"
        )


def _feature_table_summary(df, *, fs_name: str, version: int, known_at: bool, table: str):
    """Check the rows' writing version (and ``_known_at``) in one aggregate; return the row count
    and the first event date (None for an empty table)."""
    from pyspark.sql import functions as F

    from featuremill.core.sql import col

    if FEATURE_VERSION_COLUMN not in df.columns:
        raise TrainingSetError(
            f"feature table {table} has no {FEATURE_VERSION_COLUMN} column; rebuild it with "
            "`featuremill run PIPELINE --job features`"
        )
    if known_at and KNOWN_AT not in df.columns:
        raise TrainingSetError(
            f"feature set {fs_name!r}: its table has no {KNOWN_AT} column (written by an older featuremill), so "
            "--known-at cannot be honoured; recompute it with `featuremill run PIPELINE --job features --full "
            "--start FIRST --end LAST` over its whole history, or drop --known-at"
        )
    aggs = [F.count(F.lit(1)).alias("rows"), F.min(EVENT_DATE).alias("first"), F.max(EVENT_DATE).alias("last")]
    if known_at:
        aggs.append(F.sum(F.when(col(KNOWN_AT).isNull(), 1).otherwise(0)).alias("no_known_at"))
    summary = df.groupBy(col(FEATURE_VERSION_COLUMN).alias("v")).agg(*aggs).collect()  # one row per version
    other = [r for r in summary if r["v"] != version]
    if other:
        found = "; ".join(f"version {r['v']}: {r['rows']} rows, {r['first']}..{r['last']}" for r in other)
        raise TrainingSetError(
            f"feature set {fs_name!r}: the table {table} holds rows written by other versions than "
            f"{version} ({found}); "
            f"a training set must not mix versions. Recompute those dates with `featuremill run PIPELINE --job "
            f"features --full --start .. --end ..`, or request the version the table holds"
        )
    missing = sum(r["no_known_at"] for r in summary) if known_at else 0
    if missing:
        raise TrainingSetError(
            f"feature set {fs_name!r}: {missing} rows of {table} have no {KNOWN_AT} (written before featuremill "
            "recorded it); with --known-at they could never be used. Recompute them with `featuremill run PIPELINE "
            "--job features --full --start FIRST --end LAST`"
        )
    firsts = [r["first"] for r in summary if r["first"] is not None]
    return sum(r["rows"] for r in summary), (min(firsts) if firsts else None)


def _feature_sources(
    entries: Sequence[Mapping[str, Any]],
    frames: Sequence[Any],
    *,
    ttl_seconds: int | None,
    known_at: bool,
    keep_internal_columns: bool,
) -> list[FeatureSource]:
    """One join source per feature set. ``known_at`` filters on the table's ``_known_at`` either
    way; the matched row's event time and known-at become output columns only with
    ``keep_internal_columns`` (they carry the reserved prefix, so they are not user columns)."""
    return [
        FeatureSource(
            name=e["name"],
            frame=frame,
            keys=tuple(e["entity"]),
            event_time=e["event_time"],
            columns=tuple(e["features"]),
            known_at=KNOWN_AT if known_at else None,
            ttl_seconds=ttl_seconds,
            event_time_as=f"_{e['name']}_event_time" if keep_internal_columns else None,
            known_at_as=f"_{e['name']}_known_at" if known_at and keep_internal_columns else None,
        )
        for e, frame in zip(entries, frames)
    ]


def _apply_selection(
    entries: list[dict[str, Any]],
    frames: list[Any],
    feature_rows: list[int],
    *,
    selected: Sequence[str],
    source: str | None,
    dimension_columns: Sequence[str] = (),
    entity_join_columns: Sequence[str] = (),
):
    """Keep only the selected features of each requested feature set.

    The kept names are written into each entry's ``features`` (so a rebuild from the manifest
    joins the same columns); a set with no kept feature is left out of the join. Every selected
    name must belong to one of the requested sets: a selection made on another training set,
    or on transformed columns, is refused rather than silently ignored. A selected name among
    ``dimension_columns`` (the requested dimension columns, attached anyway) is accepted; one of
    ``entity_join_columns`` (the requested sets' entity-level join columns) not requested is
    refused with the flag that attaches it.
    """
    wanted = set(selected) - set(dimension_columns)
    known = {name for e in entries for name in e["features"]}
    unknown = sorted(wanted - known)
    if unknown:
        if set(unknown) & set(entity_join_columns):
            hint = "; a dimension column is attached only with --dimension-columns (list every selected one there)"
        else:
            hint = ""
        raise TrainingSetError(
            f"{source or 'selected features'}: {', '.join(unknown)} not a feature of the requested feature sets "
            f"({', '.join(e['name'] for e in entries)}); select on a training set built from these feature sets, "
            f"before preprocessing{hint}"
        )
    kept_entries, kept_frames, kept_rows, dropped = [], [], [], []
    for entry, frame, rows in zip(entries, frames, feature_rows):
        features = [name for name in entry["features"] if name in wanted]
        if not features:
            dropped.append(entry["name"])
            continue
        kept_entries.append(dict(entry, features=features))
        kept_frames.append(frame)
        kept_rows.append(rows)
    if not kept_entries:
        raise TrainingSetError(f"{source or 'selected features'}: the selection keeps no feature")
    if dropped:
        log.info("training set: no selected feature in %s; left out of the join", ", ".join(dropped))
    return (
        kept_entries,
        kept_frames,
        kept_rows,
        {"file": source, "features": sorted(set(selected)), "feature_sets_left_out": dropped},
    )


def training_manifest_path(config: PipelineConfig, out: str, manifest_out: str | None = None) -> str:
    """Where a training set's manifest goes: ``manifest_out``, else beside a training set written
    by path (``<out>.manifest.json``), else, for one written by name (a metastore table has no
    folder beside it), ``<warehouse>/<pipeline>/manifests/<name>.manifest.json``."""
    if manifest_out:
        return manifest_out
    if io.is_table_name(out):
        return f"{config.tables.root}/manifests/{out}.manifest.json"
    return manifests.default_manifest_path(out)


def _check_outputs(config: PipelineConfig, out: str, manifest_out: str | None) -> None:
    """Training sets and manifests are written only under the environment's warehouse root
    (a training set named in the metastore: in the environment's table namespace)."""
    io.check_write_path(out, config.env.root, what="training set")
    io.check_write_path(training_manifest_path(config, out, manifest_out), config.env.root, what="manifest")


def _training_set_guard(spark, config: PipelineConfig, *, out: str, run_id: str, inputs: Mapping[str, Any]):
    """The exactly-once guard of a training set: one run key per output path. A training set is
    replaced whenever what it is built from changes (the key's next generation), and not written
    again when nothing did (the same fingerprint as the key's last commit)."""
    key = run_key(config.name, "training_set", out, None, None)

    def guard(corrective: bool) -> CommitGuard:
        return CommitGuard(
            spark=spark,
            run_key=key,
            run_id=run_id,
            inputs=inputs,
            tables={"training_set": out},
            corrective=corrective,
            label=f"training set {out}",
        )

    try:
        return guard(False).plan()
    except ChangedInputError:
        return guard(True).plan()


def _write_output(
    spark,
    joined,
    *,
    out: str,
    root: str,
    spine_columns: list[str],
    spine: tuple[int, str],
    guard: CommitGuard | None = None,
) -> dict[str, Any]:
    """Overwrite ``out`` (unless ``guard`` says this key's commit is already there), then check it
    in one pass: the spine's row count, and the spine's own fingerprint over its columns in the
    output (so the spine did not change between the reads)."""
    with stage(f"training set: join and write {out}", spark) as st:
        if guard is None:
            io.overwrite(joined, out, root=root, overwrite_schema=True, what="training set")
            version = io.delta_version(spark, out)
        elif guard.is_committed("training_set"):
            version = guard.prior("training_set").table_version
        else:
            io.overwrite(
                joined, out, root=root, overwrite_schema=True, commit=guard.tag("training_set"), what="training set"
            )
            version, _ = guard.confirm("training_set")
        written = io.read_delta(spark, out, version=version)
        prints = manifests.frame_fingerprints(written, {"output": written.columns, "spine": spine_columns})
        rows, fingerprint = prints["output"]
        st.set_rows(rows)
    if rows != spine[0]:  # the join guarantees this; a failure here is a bug, never shipped data
        raise TrainingSetError(
            f"training set {out} has {rows} rows but the spine has {spine[0]}; "
            "this is a featuremill bug, please report it with the manifest"
        )
    if prints["spine"] != spine:
        raise TrainingSetError(
            f"the spine changed while the training set was built ({spine[1]} before, "
            f"{prints['spine'][1]} in the output); rebuild it from a stable spine (a Delta table)"
        )
    return {
        "path": out,
        "format": "delta",
        "delta_version": version,
        "rows": rows,
        "fingerprint": fingerprint,
        "columns": [f"{f.name} {f.dataType.simpleString()}" for f in written.schema.fields],
    }


def _manifest_of(spark, path: str, output: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest at ``path`` if it describes ``output`` (same version, rows and fingerprint)."""
    try:
        document = manifests.loads(io.read_text(spark, path), path=path)
    except (InputDataError, TrainingSetError):
        return None
    recorded = document.get("output") or {}
    same = all(recorded.get(k) == output[k] for k in ("delta_version", "rows", "fingerprint"))
    return document if same else None


def build_training_set(
    spark,
    config: PipelineConfig,
    options: TrainingSetOptions,
    *,
    lock: versions.Lock | None,
    lock_file: str,
    git_commit: str | None = None,
    env_name: str | None = None,
) -> TrainingSetResult:
    """Build a training set as described in the module docstring; returns what was written."""
    ensure_timezone(spark, config.timezone)
    versions.require_consistent(config, lock, lock_file=lock_file)
    for request in options.features:
        if request.name not in {fs.name for fs in config.feature_sets}:
            raise TrainingSetError(
                f"pipeline {config.name!r} has no feature set {request.name!r} "
                f"(it has {', '.join(fs.name for fs in config.feature_sets)})"
            )
    _check_outputs(config, options.out, options.manifest_out)
    dimension_entries = resolve_dimension_columns(config, [r.name for r in options.features], options.dimension_columns)
    with recorded_run(spark, config, job="training_set", target=options.out, start=None, end=None) as record:
        spine_version = None
        if options.spine_format in (None, "delta") and io.is_delta_table(spark, options.spine):
            spine_version = io.delta_version(spark, options.spine)
        spine, spine_format = io.read_table(spark, options.spine, fmt=options.spine_format, version=spine_version)
        _check_spine_columns(spine, options.spine)
        spine_time = _spine_time_column(spine, options.spine_time)
        with stage("training set: fingerprint spine", spark) as st:
            spine_rows, spine_fp = manifests.frame_fingerprint(spine)
            st.set_rows(spine_rows)
        spine = _with_zoned_time(spine, spine_time, timezone=config.timezone)

        entries, frames, feature_rows = [], [], []
        for request in options.features:
            fs = config.feature_set(request.name)
            version = request.version if request.version is not None else fs.version
            if version == fs.version:
                fingerprint = versions.feature_set_fingerprint(config, fs)
            else:
                locked = lock.versions(fs.name).get(version) if lock else None
                fingerprint = locked.get("fingerprint") if locked else None
                log.warning(
                    "feature set %s: version %s requested, the pipeline declares %s; using the table's rows "
                    "as written by version %s",
                    fs.name,
                    version,
                    fs.version,
                    version,
                )
            table = config.tables.features(fs.name)
            table_version = io.delta_version(spark, table)
            if table_version is None:
                raise TableStateError(
                    f"no feature table for {fs.name!r} at {table}; run "
                    f"`featuremill run {config.file} --job features` first"
                )
            frame = io.read_delta(spark, table, version=table_version)
            with stage(f"training set: check {fs.name} rows", spark) as st:
                rows, first = _feature_table_summary(
                    frame, fs_name=fs.name, version=version, known_at=options.known_at, table=table
                )
                st.set_rows(rows)
            source = config.source(fs.source)
            entries.append(
                {
                    "name": fs.name,
                    "version": version,
                    "fingerprint": fingerprint,
                    "table": table,
                    "delta_version": table_version,
                    "entity": list(fs.entity),
                    "event_time": source.event_time,
                    "features": list(fs.feature_names),
                    "rows": rows,
                    "first_history": first.isoformat() if first is not None else None,
                }
            )
            frames.append(frame)
            feature_rows.append(rows)

        selection = None
        if options.selected_features is not None:
            entries, frames, feature_rows, selection = _apply_selection(
                entries,
                frames,
                feature_rows,
                selected=options.selected_features,
                source=options.selected_from,
                dimension_columns=[c for d in dimension_entries for c in d["columns"]],
                entity_join_columns=[
                    c
                    for r in options.features
                    for j in config.feature_set(r.name).joins
                    if j.level == "entity"
                    for c in j.output_columns
                ],
            )
        for entry in entries:  # after the selection: only the attached features' windows count
            fs = config.feature_set(entry["name"])
            entry["warmup_seconds"] = max(
                (v for k, v in warmup_seconds(fs).items() if k in set(entry["features"])), default=0
            )
        spine, kept = _warm_up_spine(
            spark, spine, entries, spine_time=spine_time, include=options.include_warming_up, full=spine_rows
        )
        kept_rows, kept_fp = kept if kept is not None else (spine_rows, spine_fp)
        strategy = choose_strategy(options.strategy, spine_rows=spine_rows, feature_rows=feature_rows)
        log.info(
            "training set: %d spine rows, feature tables of %s rows: %s strategy",
            spine_rows,
            "/".join(map(str, feature_rows)),
            strategy,
        )
        check_dimension_column_names(spine.columns, entries, dimension_entries)
        dimension_frames = []
        for entry in dimension_entries:
            frame, table, table_version = _dimension_history(spark, config, entry["dimension"])
            entry.update(table=table, delta_version=table_version)
            dimension_frames.append(frame)
        joined = point_in_time_join(
            spine,
            _feature_sources(
                entries,
                frames,
                ttl_seconds=options.ttl_seconds,
                known_at=options.known_at,
                keep_internal_columns=options.keep_internal_columns,
            ),
            spine_time=spine_time,
            strict=options.strict,
            strategy=strategy,
        )
        joined = _with_dimension_columns(
            joined, dimension_entries, dimension_frames, spine_time=spine_time, strict=options.strict
        )
        inputs = {
            "spine": {"path": options.spine, "format": spine_format, "time_column": spine_time},
            "spine_content": {"rows": spine_rows, "fingerprint": spine_fp},
            "feature_sets": entries,
            "options": {
                "strict": options.strict,
                "ttl_seconds": options.ttl_seconds,
                "known_at": options.known_at,
                "strategy": strategy,
                "keep_internal_columns": options.keep_internal_columns,
                "include_warming_up": options.include_warming_up,
            },
            "selection": selection,
            "dimension_columns": dimension_entries,
        }
        guard = _training_set_guard(spark, config, out=options.out, run_id=record.run_id, inputs=inputs)
        output = _write_output(
            spark,
            joined,
            out=options.out,
            root=config.env.root,
            spine_columns=spine.columns,
            spine=(kept_rows, kept_fp),
            guard=guard,
        )
        manifest_file = training_manifest_path(config, options.out, options.manifest_out)
        unchanged = guard.is_committed("training_set") and _manifest_of(spark, manifest_file, output)
        document = unchanged or {
            "kind": manifests.MANIFEST_KIND,
            "manifest_format": manifests.MANIFEST_FORMAT,
            "created_at": manifests.now_iso(),
            "run_id": record.run_id,
            "code": manifests.code_info(spark, git_commit=git_commit),
            "pipeline": {
                "name": config.name,
                "file": _absolute_file(config.file),
                "env": env_name or config.env.name,
                "timezone": config.timezone,
                "tables_root": config.tables.root,
            },
            "spine": {
                "path": options.spine,
                "format": spine_format,
                "delta_version": spine_version,
                "time_column": spine_time,
                "rows": spine_rows,
                "fingerprint": spine_fp,
            },
            "options": {
                "strict": options.strict,
                "ttl_seconds": options.ttl_seconds,
                "known_at": options.known_at,
                "strategy": strategy,
                "keep_internal_columns": options.keep_internal_columns,
                "include_warming_up": options.include_warming_up,
            },
            "warming_up_excluded": spine_rows - kept_rows,
            "feature_sets": entries,
            "dimension_columns": dimension_entries,
            "output": output,
            "selection": selection,
            "preprocessing": None,
        }
        if not unchanged:
            io.write_text(spark, manifest_file, manifests.dumps(document), root=config.env.root, what="manifest")
        record.rows_read = spine_rows
        record.rows_written = output["rows"]
        record.input_versions = {f"features.{e['name']}": e["delta_version"] for e in entries}
        record.input_versions.update({f"validated.{d['dimension']}": d["delta_version"] for d in dimension_entries})
        if spine_version is not None:
            record.input_versions["spine"] = spine_version
        record.output_versions = {"training_set": output["delta_version"]}
        record.details = {
            "manifest": manifest_file,
            "strategy": strategy,
            "spine": options.spine,
            "feature_sets": {e["name"]: e["version"] for e in entries},
            "commit": "already_committed" if unchanged else "written",
        }
    log.info(
        "training set %s: %d rows, manifest %s%s",
        options.out,
        output["rows"],
        manifest_file,
        " (unchanged: already built from the same inputs)" if unchanged else "",
    )
    return TrainingSetResult(
        options.out, manifest_file, document, output["rows"], strategy, warming_up_excluded=spine_rows - kept_rows
    )


def _warm_up_spine(spark, spine, entries: Sequence[Mapping[str, Any]], *, spine_time: str, include: bool, full: int):
    """The spine rows to join (see step 3b) and, when some were left out, their (rows,
    fingerprint) for the output checks; ``(spine, None)`` when the whole spine is kept.

    ``entries`` carry ``first_history`` (ISO date or None) and ``warmup_seconds`` per feature set.
    """
    import datetime as dt

    from pyspark.sql import functions as F

    from featuremill.core.sql import col

    rules = [
        is_complete(
            event_time=spine_time,
            seconds=int(e.get("warmup_seconds") or 0),
            first_history=dt.date.fromisoformat(e["first_history"]),
        )
        for e in entries
        if e.get("first_history") and e.get("warmup_seconds")
    ]
    complete = F.lit(True)
    for rule in rules:
        complete = complete & rule
    if include or not rules:
        return spine, None
    # a null label time gets no feature row at all: nothing is warming up, the row stays
    kept = spine.where(col(spine_time).isNull() | complete)
    with stage("training set: fingerprint spine rows with complete windows", spark) as st:
        rows, fingerprint = manifests.frame_fingerprint(kept)
        st.set_rows(rows)
    log.info(
        "training set: %d of %d spine rows left out as warming up (windows before the first event date)",
        full - rows,
        full,
    )
    return kept, (rows, fingerprint)


def rebuild_training_set(
    spark,
    config: PipelineConfig,
    source_manifest: Mapping[str, Any],
    *,
    manifest_path: str,
    out: str,
    manifest_out: str | None = None,
    strategy: str | None = None,
    git_commit: str | None = None,
) -> TrainingSetResult:
    """Rebuild the training set a manifest describes, reading every input at its recorded version.

    Fails with :class:`TrainingSetError` when an input cannot be read as recorded (a changed
    non-Delta spine, a Delta version removed by retention) or when the result's fingerprint
    differs from the recorded one.
    """
    _check_outputs(config, out, manifest_out)
    m = source_manifest
    if m["pipeline"]["name"] != config.name:
        raise TrainingSetError(f"{manifest_path} is for pipeline {m['pipeline']['name']!r}, not {config.name!r}")
    ensure_timezone(spark, m["pipeline"].get("timezone") or config.timezone)
    opts = m["options"]
    with recorded_run(spark, config, job="training_set_rebuild", target=out, start=None, end=None) as record:
        spine_info = m["spine"]
        spine, _ = _read_pinned(
            spark, spine_info["path"], fmt=spine_info["format"], version=spine_info.get("delta_version"), what="spine"
        )
        with stage("training set rebuild: fingerprint spine", spark):
            rows, fingerprint = manifests.frame_fingerprint(spine)
        if (rows, fingerprint) != (spine_info["rows"], spine_info["fingerprint"]):
            raise TrainingSetError(
                f"the spine {spine_info['path']} changed since {manifest_path} was written ({spine_info['rows']} rows "
                f"{spine_info['fingerprint']} then, {rows} rows {fingerprint} now); only a Delta spine can be read "
                "as it was: store spines as Delta tables, or keep them immutable"
            )
        spine = _with_zoned_time(
            spine, spine_info["time_column"], timezone=m["pipeline"].get("timezone") or config.timezone
        )
        frames = [
            _read_pinned(spark, e["table"], fmt="delta", version=e["delta_version"], what=f"feature set {e['name']!r}")[
                0
            ]
            for e in m["feature_sets"]
        ]
        used = strategy or opts.get("strategy") or "window"
        # manifests written before the warm-up rule carry no first_history: every row is kept
        spine, kept = _warm_up_spine(
            spark,
            spine,
            m["feature_sets"],
            spine_time=spine_info["time_column"],
            include=bool(opts.get("include_warming_up", False)),
            full=rows,
        )
        full_rows = rows
        if kept is not None:
            rows, fingerprint = kept
        # manifests written before dimension columns could be asked for attach none
        dimension_entries = m.get("dimension_columns") or []
        dimension_frames = [
            _dimension_history(spark, config, d["dimension"], table=d["table"], version=d["delta_version"])[0]
            for d in dimension_entries
        ]
        joined = point_in_time_join(
            spine,
            _feature_sources(
                m["feature_sets"],
                frames,
                ttl_seconds=opts["ttl_seconds"],
                known_at=opts["known_at"],
                # manifests written before the option existed describe outputs that carried them
                keep_internal_columns=opts.get("keep_internal_columns", True),
            ),
            spine_time=spine_info["time_column"],
            strict=opts["strict"],
            strategy=used,
        )
        joined = _with_dimension_columns(
            joined, dimension_entries, dimension_frames, spine_time=spine_info["time_column"], strict=opts["strict"]
        )
        output = _write_output(
            spark,
            joined,
            out=out,
            root=config.env.root,
            spine_columns=spine.columns,
            spine=(rows, fingerprint),
        )
        identical = (output["rows"], output["fingerprint"]) == (m["output"]["rows"], m["output"]["fingerprint"])
        document = dict(m)
        document.update(
            {
                "created_at": manifests.now_iso(),
                "run_id": record.run_id,
                "code": manifests.code_info(spark, git_commit=git_commit),
                "options": dict(opts, strategy=used),
                "output": output,
                "rebuilt_from": {
                    "manifest": manifest_path,
                    "output": m["output"]["path"],
                    "output_delta_version": m["output"]["delta_version"],
                    "identical": identical,
                },
            }
        )
        path = training_manifest_path(config, out, manifest_out)
        io.write_text(spark, path, manifests.dumps(document), root=config.env.root, what="manifest")
        record.rows_read = full_rows
        record.rows_written = output["rows"]
        record.input_versions = {f"features.{e['name']}": e["delta_version"] for e in m["feature_sets"]}
        record.input_versions.update({f"validated.{d['dimension']}": d["delta_version"] for d in dimension_entries})
        record.output_versions = {"training_set": output["delta_version"]}
        record.details = {"manifest": path, "rebuilt_from": manifest_path, "identical": identical}
        if not identical:
            record.status = "failed"
            record.error = "rebuilt output differs from the manifest"
    if not identical:
        raise TrainingSetError(
            f"the rebuilt training set {out} differs from the one {manifest_path} describes "
            f"({m['output']['rows']} rows "
            f"{m['output']['fingerprint']} recorded, {output['rows']} rows {output['fingerprint']} rebuilt)"
        )
    log.info("training set rebuilt into %s from %s: identical", out, manifest_path)
    return TrainingSetResult(out, path, document, output["rows"], used, identical_to_source=True)


def _absolute_file(path: str) -> str:
    """A local pipeline file as an absolute path, so ``register-model`` finds it from any folder."""
    import os

    return os.path.abspath(path) if os.path.isfile(path) else path


def _read_pinned(spark, path: str, *, fmt: str, version: int | None, what: str):
    try:
        return io.read_table(spark, path, fmt=fmt, version=version)
    except TrainingSetError:
        raise
    except Exception as exc:  # Delta: VersionNotFound / files removed by VACUUM, or the path is gone
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingSetError(
            f"cannot read {what} at {path}"
            + (f" version {version}" if version is not None else "")
            + f": {first}. Delta keeps old versions only within delta.logRetentionDuration and "
            "delta.deletedFileRetentionDuration (and until VACUUM); rebuilds need both to cover the manifest's age"
        ) from None
