"""Replay: recompute a recorded feature run from the exact table versions it read.

The ledger row of a feature run (grain: run_id + feature set) holds the Delta version of every
table the run read (``input_versions``: the validated events and each joined dimension), the
dates it recomputed (``details.compute_start`` .. ``end_date``) and a digest of the feature set's
definition. ``replay_run`` reads the same versions through Delta time travel, applies
:func:`featuremill.pipelines.build_features.build_feature_frame` to the same dates and writes
the result to its own table, ``<warehouse>/<pipeline>/replay/<run_id>/features/<set>``
(replaced on each replay), never to the live feature table. The output equals, bit for bit, the
feature rows the run wrote, and the replay checks it: it reads the feature table at the version
the run committed (``output_versions``), restricted to the recomputed dates, and compares both by
the content fingerprint, every column and row (:func:`compare_outputs`); a difference is
reported per column with the number of rows it touches.

Versions can be overridden per table: ``as_of_versions={"transactions": 12}`` or
``as_of_timestamps={"transactions": datetime}``; a timestamp resolves to the latest version
committed at or before it, by the commit time recorded in the table's log
(:mod:`featuremill.storage.delta_log`), not by file modification times.

**Replay window.** Everything is checked before any data is read, and a replay the pipeline's
``replay_window`` does not cover fails with :class:`~featuremill.core.errors.ReplayWindowError`:

* the run itself must be younger than the window (when any version comes from its record);
* every version must still be in its table's log;
* a version that is no longer the table's latest must have been superseded within the window:
  the files its successor removed are kept ``delta.deletedFileRetentionDuration`` (>= the window
  for featuremill's tables), after which VACUUM may delete them, and Delta >= 4.1 refuses time
  travel past that retention even without VACUUM.

A changed feature-set definition (the digest differs) is refused too: the replay would not
reproduce the run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from featuremill.config import PipelineConfig
from featuremill.core.errors import ReplayError, ReplayWindowError, TableStateError
from featuremill.core.progress import stage
from featuremill.core.session import ensure_timezone
from featuremill.core.sql import col
from featuremill.pipelines.build_features import (
    _dimension_frame,
    _pinned_read,
    build_feature_frame,
    fingerprint_definition,
    lookback_days,
    require_locked_definitions,
)
from featuremill.pipelines.common import recorded_run
from featuremill.pipelines.preprocess import helper_lookback_days
from featuremill.storage import io
from featuremill.storage.delta_log import commit_times, version_at
from featuremill.storage.exactly_once import digest
from featuremill.storage.ledger import read_runs
from featuremill.storage.retention import ReplayWindow, replay_window
from featuremill.transforms.ingest import EVENT_DATE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayResult:
    """One replayed feature set."""

    feature_set: str
    replayed_run_id: str
    replay_run_id: str
    output_path: str
    compute_start: dt.date
    end: dt.date
    rows: int
    versions: Mapping[str, int]
    version_sources: Mapping[str, str] = field(default_factory=dict)
    #: the replayed output against what the run wrote (None when the run recorded no output version)
    comparison: OutputComparison | None = None

    @property
    def faithful(self) -> bool:
        """Every input read at the version the run read (no ``--as-of-*`` override)."""
        return all(v == "run" for v in self.version_sources.values())


@dataclass(frozen=True)
class OutputComparison:
    """The replayed feature rows against the rows the run wrote, by the content fingerprint.

    ``identical`` is true when the two have the same columns and the same rows, every column
    bit for bit (:mod:`featuremill.core.fingerprint`: -0.0 as 0.0, NaN as NaN). Otherwise
    ``column_rows`` says, per differing column, on how many rows (matched by the feature keys) it
    differs, and ``only_original`` / ``only_replayed`` count the keys present on one side only.
    """

    original_version: int
    rows_original: int
    rows_replayed: int
    fingerprint_original: str
    fingerprint_replayed: str
    only_in_original_columns: tuple[str, ...] = ()
    only_in_replay_columns: tuple[str, ...] = ()
    column_rows: Mapping[str, int] = field(default_factory=dict)
    only_original: int = 0
    only_replayed: int = 0

    @property
    def identical(self) -> bool:
        return (
            self.fingerprint_original == self.fingerprint_replayed
            and self.rows_original == self.rows_replayed
            and not self.only_in_original_columns
            and not self.only_in_replay_columns
        )

    def describe(self) -> str:
        if self.identical:
            return (
                f"identical to the run's output (version {self.original_version}): {self.rows_replayed} rows, "
                f"every column, fingerprint {self.fingerprint_replayed}"
            )
        parts = [f"rows {self.rows_original} written, {self.rows_replayed} replayed"]
        if self.only_in_original_columns:
            parts.append("columns only in the run's output: " + ", ".join(self.only_in_original_columns))
        if self.only_in_replay_columns:
            parts.append("columns only in the replay: " + ", ".join(self.only_in_replay_columns))
        if self.only_original or self.only_replayed:
            parts.append(
                f"keys only in the run's output: {self.only_original}, only in the replay: {self.only_replayed}"
            )
        if self.column_rows:
            parts.append(
                "columns differing: " + ", ".join(f"{c} on {n} row(s)" for c, n in sorted(self.column_rows.items()))
            )
        return f"DIFFERS from the run's output (version {self.original_version}): " + "; ".join(parts)


def compare_outputs(original, replayed, *, keys: list[str], original_version: int) -> OutputComparison:
    """Compare two feature frames (same grain, unique ``keys``) by the content fingerprint.

    One aggregate per frame (row count, a fingerprint of all shared columns and one per column
    with the keys); only when they differ, one full outer join on the keys counts, per differing
    column, the rows where it differs (``<=>``, so null equals null and NaN equals NaN), and the
    keys present on one side only. Only counts reach the driver.
    """
    from pyspark.sql import functions as F

    from featuremill.core.fingerprint import frame_fingerprints
    from featuremill.core.sql import col

    shared = [c for c in replayed.columns if c in original.columns]
    values = [c for c in shared if c not in keys]
    groups = {"__all": shared, **{c: [*keys, c] for c in values}}
    left = frame_fingerprints(original.select(*[col(c) for c in shared]), groups)
    right = frame_fingerprints(replayed.select(*[col(c) for c in shared]), groups)
    differing = [c for c in values if left[c] != right[c]]
    only_original = only_replayed = 0
    column_rows: dict[str, int] = {}
    if differing or left["__all"][0] != right["__all"][0]:
        o = original.select(*[col(k) for k in keys], *[col(c).alias(f"o__{c}") for c in differing]).withColumn(
            "__o", F.lit(True)
        )
        r = replayed.select(*[col(k) for k in keys], *[col(c).alias(f"r__{c}") for c in differing]).withColumn(
            "__r", F.lit(True)
        )
        joined = o.join(r, on=keys, how="full_outer")
        both = F.col("__o").isNotNull() & F.col("__r").isNotNull()
        counts = joined.agg(
            F.count(F.when(F.col("__r").isNull(), F.lit(1))).alias("__only_o"),
            F.count(F.when(F.col("__o").isNull(), F.lit(1))).alias("__only_r"),
            *[
                F.count(F.when(both & ~F.col(f"o__{c}").eqNullSafe(F.col(f"r__{c}")), F.lit(1))).alias(f"d{i}")
                for i, c in enumerate(differing)
            ],
        ).first()
        only_original, only_replayed = int(counts["__only_o"]), int(counts["__only_r"])
        # columns whose fingerprints differ only through keys on one side are not listed: those
        # rows are counted in only_original / only_replayed
        column_rows = {c: int(counts[f"d{i}"]) for i, c in enumerate(differing) if int(counts[f"d{i}"])}
        # a column whose values differ only in a way <=> does not see (-0.0, NaN payloads) is
        # normalised alike by the fingerprint too; any other count here is a real difference
    return OutputComparison(
        original_version=original_version,
        rows_original=left["__all"][0],
        rows_replayed=right["__all"][0],
        fingerprint_original=left["__all"][1],
        fingerprint_replayed=right["__all"][1],
        only_in_original_columns=tuple(c for c in original.columns if c not in replayed.columns),
        only_in_replay_columns=tuple(c for c in replayed.columns if c not in original.columns),
        column_rows=column_rows,
        only_original=only_original,
        only_replayed=only_replayed,
    )


def replay_path(config: PipelineConfig, run_id: str, feature_set: str) -> str:
    """Where a replay of ``run_id`` writes ``feature_set``."""
    return config.tables.table(f"replay/{run_id}/features/{feature_set}")


def table_path(config: PipelineConfig, name: str) -> str:
    """Path of a ledger table name such as ``validated.transactions``."""
    kind, _, rest = name.partition(".")
    if kind == "validated" and rest:
        return config.tables.validated(rest)
    if kind == "features" and rest:
        return config.tables.features(rest)
    raise ReplayError(f"unknown table name {name!r} in the run log")


def _table_name(config: PipelineConfig, given: str) -> str:
    """``transactions`` or ``validated.transactions`` -> ``validated.transactions``."""
    name = given if "." in given else f"validated.{given}"
    source = name.partition(".")[2]
    try:
        config.source(source)
    except KeyError:
        raise ReplayError(
            f"{given!r} is not a source of pipeline {config.name!r} "
            f"(sources: {', '.join(s.name for s in config.sources)})"
        ) from None
    return name


def replay_run(
    spark,
    config: PipelineConfig,
    *,
    run_id: str,
    feature_sets: list[str] | None = None,
    as_of_versions: Mapping[str, int] | None = None,
    as_of_timestamps: Mapping[str, dt.datetime] | None = None,
    output_root: str | None = None,
    now: dt.datetime | None = None,
) -> list[ReplayResult]:
    """Replay feature run ``run_id`` (all its feature sets, or ``feature_sets``); see the module docstring.

    ``now`` (UTC, naive) is the reference time for the replay window (default: the clock).
    ``output_root`` replaces ``<warehouse>/<pipeline>/replay`` as the parent of the outputs; it
    must lie inside the warehouse (:class:`~featuremill.core.errors.WritePathError` otherwise,
    before anything is computed).
    """
    require_locked_definitions(config)
    ensure_timezone(spark, config.timezone)
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    window = replay_window(config)
    rows = _runs_to_replay(spark, config, run_id, feature_sets)
    overrides_v = {_table_name(config, k): int(v) for k, v in (as_of_versions or {}).items()}
    overrides_t = {_table_name(config, k): v for k, v in (as_of_timestamps or {}).items()}
    plans = []
    for row in rows:  # check everything first: nothing is read or written unless all can replay
        plans.append(_plan(spark, config, row, window, now, overrides_v, overrides_t))
    outputs = [
        f"{output_root.rstrip('/')}/{run_id}/features/{feature_set.name}"
        if output_root
        else replay_path(config, run_id, feature_set.name)
        for feature_set, *_ in plans
    ]
    for out in outputs:  # before anything is computed; the writer checks again
        io.check_write_path(out, config.env.root, what="replay output")
    results = []
    for row, (feature_set, versions, sources, details), out in zip(rows, plans, outputs):
        results.append(_replay_one(spark, config, row, feature_set, versions, sources, details, out))
    return results


def _runs_to_replay(spark, config: PipelineConfig, run_id: str, feature_sets: list[str] | None):
    from pyspark.sql import functions as F

    if not io.is_delta_table(spark, config.tables.run_log):
        raise ReplayError(f"pipeline {config.name!r} has no run log at {config.tables.run_log}; nothing to replay")
    found = (
        read_runs(spark, config.tables.run_log, pipeline=config.name).where(F.col("run_id") == F.lit(run_id)).collect()
    )
    if not found:
        raise ReplayError(
            f"no run {run_id!r} in the run log of pipeline {config.name!r} "
            f"({config.tables.run_log}); `featuremill runs` lists the recent runs"
        )
    features = [r for r in found if r["job"] == "features"]
    if not features:
        raise ReplayError(
            f"run {run_id} is a {found[0]['job']} run; replay recomputes feature runs "
            "(their ledger rows hold the versions they read)"
        )
    if feature_sets:
        unknown = sorted(set(feature_sets) - {r["target"] for r in features})
        if unknown:
            raise ReplayError(
                f"run {run_id} did not build feature set(s) {', '.join(unknown)}; it built "
                f"{', '.join(sorted(r['target'] for r in features))}"
            )
        features = [r for r in features if r["target"] in feature_sets]
    not_written = [r for r in features if r["status"] != "succeeded"]
    if not_written:
        r = not_written[0]
        raise ReplayError(
            f"run {run_id} of feature set {r['target']} ended {r['status']!r}; only succeeded runs "
            "wrote features that a replay can reproduce"
        )
    return sorted(features, key=lambda r: r["target"])


def _plan(
    spark,
    config: PipelineConfig,
    row,
    window: ReplayWindow,
    now: dt.datetime,
    overrides_v: Mapping[str, int],
    overrides_t: Mapping[str, dt.datetime],
):
    run_id = row["run_id"]
    try:
        feature_set = config.feature_set(row["target"])
    except KeyError:
        raise ReplayError(
            f"run {run_id} built feature set {row['target']!r}, which pipeline {config.name!r} no longer declares"
        ) from None
    details = json.loads(row["details"] or "{}")
    recorded = details.get("definition")
    if recorded and recorded != digest(fingerprint_definition(config, feature_set)):
        raise ReplayError(
            f"feature set {feature_set.name!r} is defined differently now than when run {run_id} ran "
            f"({row['started_at']:%Y-%m-%d %H:%M} UTC): replaying it with today's definition would not reproduce "
            "that run. Replay with the pipeline file (and featuremill version) of that run."
        )
    versions = {str(k): int(v) for k, v in (row["input_versions"] or {}).items()}
    if not versions or not details.get("compute_start"):
        raise ReplayError(f"run {run_id} ({feature_set.name}) recorded no input versions; it predates replay support")
    label = (
        f"run {run_id} (features {feature_set.name} {row['start_date']}..{row['end_date']}, "
        f"ran {row['started_at']:%Y-%m-%d %H:%M} UTC)"
    )
    for name in list(overrides_v) + list(overrides_t):
        if name not in versions:
            raise ReplayError(f"{label} did not read {name}; it read {', '.join(sorted(versions))}")
    sources = dict.fromkeys(versions, "run")
    for name, version in overrides_v.items():
        versions[name], sources[name] = version, "as_of_version"
    for name, when in overrides_t.items():
        versions[name] = version_at(spark, table_path(config, name), _utc_naive(when), name=name)
        sources[name] = f"as_of_timestamp {_utc_naive(when).isoformat(sep=' ')}"
    limit = now - dt.timedelta(seconds=window.seconds)
    if "run" in sources.values() and row["started_at"] < limit:
        raise ReplayWindowError(
            f"{label} is older than the pipeline's replay window of {window} (replayable until "
            f"{row['started_at'] + dt.timedelta(seconds=window.seconds):%Y-%m-%d %H:%M} UTC). The table versions it "
            "read may have been vacuumed or dropped from the log, so a replay could return wrong data; nothing was "
            "read. Raise replay_window in the pipeline file to keep future runs replayable for longer, or pin "
            "versions that are still retained with --as-of-version / --as-of-timestamp."
        )
    for name, version in versions.items():
        _check_version(spark, config, name, version, window, now, label)
    return feature_set, versions, sources, details


def _check_version(
    spark, config: PipelineConfig, name: str, version: int, window: ReplayWindow, now: dt.datetime, label: str
) -> None:
    path = table_path(config, name)
    times = commit_times(spark, path)
    if not times:
        raise TableStateError(f"{label}: {name} has no Delta table at {path}")
    latest = max(times)
    if version > latest:
        raise ReplayError(f"{label}: {name} has no version {version} (its latest is {latest})")
    if version not in times:
        oldest = min(times)
        raise ReplayWindowError(
            f"{label}: version {version} of {name} is no longer in its commit log (oldest retained: version {oldest}, "
            f"{times[oldest]:%Y-%m-%d %H:%M} UTC); the table's log retention has passed, so it cannot be read back "
            "reliably. Nothing was read."
        )
    if version == latest:
        return  # still the current version: its files cannot have been vacuumed
    superseded = times.get(version + 1)
    if superseded is not None and superseded < now - dt.timedelta(seconds=window.seconds):
        raise ReplayWindowError(
            f"{label}: version {version} of {name} was superseded at {superseded:%Y-%m-%d %H:%M} UTC, before the "
            f"pipeline's replay window of {window}; files it needs may have been vacuumed (Delta >= 4.1 refuses such "
            "time travel outright). Nothing was read."
        )


def _utc_naive(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _replay_one(
    spark,
    config: PipelineConfig,
    row,
    feature_set,
    versions: dict[str, int],
    sources: dict[str, str],
    details: dict,
    out_path: str,
) -> ReplayResult:
    from pyspark.sql import functions as F

    source = config.source(feature_set.source)
    end = row["end_date"]
    compute_start = dt.date.fromisoformat(details["compute_start"])
    # the same widening as the feature job: windows plus the preprocessing.timeseries helpers
    read_start = compute_start - dt.timedelta(
        days=lookback_days(feature_set) + helper_lookback_days(config, feature_set)
    )
    events_name = f"validated.{source.name}"
    with recorded_run(spark, config, job="replay", target=feature_set.name, start=compute_start, end=end) as record:
        read: dict[str, int] = {}
        validated = _pinned_read(
            spark, table_path(config, events_name), read, events_name, version=versions[events_name]
        )
        dimensions = {j.dimension: _dimension_frame(spark, config, j, read, pinned=versions) for j in feature_set.joins}
        events = validated.where(col(EVENT_DATE).between(F.lit(read_start), F.lit(end)))
        frame = build_feature_frame(
            events, config=config, feature_set=feature_set, dimensions=dimensions, start=compute_start, end=end
        )
        with stage(f"replay {feature_set.name}: compute and write {compute_start}..{end}", spark, key="compute_write"):
            io.replace_table(frame, out_path, root=config.env.root, what="replay output", partition_by=[EVENT_DATE])
            rows = int(io.last_operation_metrics(spark, out_path).get("numOutputRows", 0))
        comparison = None
        out_name = f"features.{feature_set.name}"
        original_version = (row["output_versions"] or {}).get(out_name)
        if original_version is not None:
            with stage(f"replay {feature_set.name}: compare with the run's output", spark, key="compare"):
                original = io.read_delta(spark, config.tables.features(feature_set.name), version=original_version)
                original = original.where(col(EVENT_DATE).between(F.lit(compute_start), F.lit(end)))
                comparison = compare_outputs(
                    original,
                    io.read_delta(spark, out_path),
                    keys=[*feature_set.entity, source.event_time],
                    original_version=int(original_version),
                )
            (log.info if comparison.identical else log.warning)(
                "replay of run %s (%s): %s", row["run_id"], feature_set.name, comparison.describe()
            )
        record.input_versions = read
        record.rows_read = 0
        record.rows_written = rows
        record.output_versions = {f"replay.{feature_set.name}": io.delta_version(spark, out_path)}
        record.details = {
            "replayed_run_id": row["run_id"],
            "output_path": out_path,
            "version_sources": sources,
            "compute_start": compute_start.isoformat(),
            "read_start": read_start.isoformat(),
        }
        if comparison is not None:
            record.details["comparison"] = {
                "identical": comparison.identical,
                "original_version": comparison.original_version,
                "fingerprint_original": comparison.fingerprint_original,
                "fingerprint_replayed": comparison.fingerprint_replayed,
                "column_rows": dict(comparison.column_rows),
            }
        log.info(
            "replayed run %s of %s: %d feature rows for %s..%s from %s into %s",
            row["run_id"],
            feature_set.name,
            rows,
            compute_start,
            end,
            ", ".join(f"{k}@v{v}" for k, v in sorted(read.items())),
            out_path,
        )
        return ReplayResult(
            feature_set.name,
            row["run_id"],
            record.run_id,
            out_path,
            compute_start,
            end,
            rows,
            dict(read),
            sources,
            comparison,
        )
