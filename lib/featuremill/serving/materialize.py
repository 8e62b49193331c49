"""``featuremill materialize``: the latest row per entity of each feature view, into Feast's online store.

For each view of the generated repository (:mod:`featuremill.serving.repo`):

1. **Refuse a stale repository**: the view's ``featuremill.definition_hash`` tag in the *applied*
   registry must equal the pipeline's current hash, otherwise nothing is written
   (:class:`ServingError`: regenerate and ``feast apply``).
2. **Check the store** answers (:func:`featuremill.serving.online.check_reachable`), before any write.
3. **Latest row per entity** at the table's current Delta version ``V`` (:func:`latest_rows`):
   one row per key, the row with the latest event time, ties broken by the larger feature values:
   the same row featuremill's point-in-time join picks for a label time after every event.
4. **Incremental**: when a run for the same store, view and definition hash recorded version
   ``L < V``, only the entities with changed rows are written. First choice, Delta's change data
   feed (mode ``incremental_cdf``): the distinct keys of the rows changed in versions ``L+1..V``
   (any ``_change_type``), then the latest row at ``V`` of only those entities (a semi join of
   version ``V`` on those keys). A changed key with no row left at ``V`` is counted and logged:
   Feast's ``online_write_batch`` cannot delete, so its stored vector stays (docs/serving.md).
   Fallback, when the table has no feed for the whole range (property off, the feed turned on
   after ``L``: Delta's ``DELTA_MISSING_CHANGE_DATA``, or a VACUUM after ``L``), logged with the
   reason: a version diff (mode ``incremental``: ``latest(V) EXCEPT ALL latest(L)``), which reads
   the table twice. ``L == V`` writes nothing.
5. **Write from the executors** in batches (:func:`featuremill.serving.online.write_batches`).
6. **Record** ``V`` in the Delta table ``<tables root>/serving/materializations`` only after every
   batch of the view was written: a failed or killed run records nothing for the view, so the
   next run writes the same entities again (writes are upserts: the result is the same).

State table columns: ``store`` (project and store address), ``view``, ``definition_hash``,
``table_version`` (bigint), ``entities`` (bigint: rows written), ``mode`` (full, incremental_cdf,
incremental, unchanged), ``materialized_at`` (timestamp); one row per view and run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from featuremill.config import PipelineConfig
from featuremill.core.errors import OnlineStoreError, ServingError, TableStateError
from featuremill.core.local_rows import local_dataframe
from featuremill.core.sql import col
from featuremill.serving import online
from featuremill.serving.repo import STORE_FILE, TAG_HASH, ViewSpec, repository_views
from featuremill.storage import io
from featuremill.storage.retention import CHANGE_DATA_FEED

log = logging.getLogger(__name__)

_VALUE = "__fm_latest"
#: Delta errors that mean "the change feed does not cover the range": fall back to the version diff.
_FEED_GAPS = (
    "DELTA_MISSING_CHANGE_DATA",
    "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE",
    "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_DATA_SCHEMA",
)
_VALUE_TYPE_NAMES = {"Int64": "INT64", "Int32": "INT32", "String": "STRING", "Bytes": "BYTES", "Bool": "BOOL"}


@dataclass(frozen=True)
class Materialized:
    """What one view's materialization did."""

    view: str
    mode: str  # full | incremental_cdf (change data feed) | incremental (version diff) | unchanged
    from_version: int | None
    table_version: int
    entities: int
    #: incremental_cdf: changed entities without a row at ``table_version`` (left in the store)
    vanished: int = 0


def state_path(config: PipelineConfig) -> str:
    return config.tables.table("serving/materializations")


def latest_rows(frame, *, keys: Sequence[str], event_time: str, columns: Sequence[str]):
    """DataFrame -> DataFrame: one row per key (``keys``, ``event_time``, ``columns``).

    The row with the latest event time; among rows with the same event time the one with the
    larger feature values (compared in ``columns`` order), as in
    :func:`featuremill.transforms.pit.point_in_time_join`. Rows with a null key or event time are
    never served (the point-in-time join never matches them either).
    """
    from pyspark.sql import functions as F

    usable = frame
    for k in (*keys, event_time):
        usable = usable.where(col(k).isNotNull())
    latest = usable.groupBy(*[col(k) for k in keys]).agg(
        F.max(F.struct(col(event_time).alias(event_time), *[col(c).alias(c) for c in columns])).alias(_VALUE)
    )
    return latest.select(*[col(k) for k in keys], *[F.col(f"{_VALUE}.`{c}`").alias(c) for c in (event_time, *columns)])


def changed_rows(current, previous):
    """Rows of ``current`` (latest per entity at ``V``) not identical in ``previous`` (at ``L``)."""
    return current.exceptAll(previous)


def changed_keys(changes, *, keys: Sequence[str]):
    """DataFrame -> DataFrame: the distinct non-null ``keys`` of a change data feed (any ``_change_type``)."""
    out = changes.select(*[col(k) for k in keys])
    for k in keys:
        out = out.where(col(k).isNotNull())
    return out.distinct()


def rows_of(frame, changed, *, keys: Sequence[str]):
    """DataFrame -> DataFrame: the rows of ``frame`` whose ``keys`` are in ``changed`` (a semi join)."""
    return frame.join(changed, on=list(keys), how="left_semi")


def _error_condition(exc: BaseException) -> str | None:
    getter = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    try:
        return getter() if getter else None
    except Exception:  # a PySpark error without a JVM condition
        return None


def _feed_keys(spark, view: ViewSpec, *, last: int, version: int):
    """``(keys, count)``: the distinct keys changed in versions ``last+1..version`` by the change feed.

    ``None`` (reason logged) when the feed does not cover the range: the property is off, a VACUUM
    since ``last`` may have deleted ``_change_data`` files, or Delta refuses the range. The count
    is the one Spark action here; Delta checks the range when the scan is planned (``cache()``).
    """
    setting = io.table_properties(spark, view.table).get(CHANGE_DATA_FEED, "false")
    if setting.strip().lower() != "true":
        log.info("view %s: %s has %s=%s; incremental by version diff", view.name, view.table, CHANGE_DATA_FEED, setting)
        return None
    try:
        io.check_time_travel(spark, view.table, last)  # VACUUM removes _change_data files like data files
    except TableStateError as exc:
        log.warning("view %s: change feed since version %d may be incomplete (%s); version diff", view.name, last, exc)
        return None
    keys = changed_keys(io.read_change_feed(spark, view.table, start=last + 1, end=version), keys=view.key_names)
    try:
        # cached: the feed is read once, and the semi join then sees the key set's real size (a feed
        # relation has no statistics), so Spark can choose a broadcast when it is small. cache()
        # plans the scan, and planning is where Delta checks the range: a gap fails here or at count
        keys = keys.cache()
        count = keys.count()  # one aggregate row
    except Exception as exc:
        keys.unpersist()
        condition = _error_condition(exc)
        if condition not in _FEED_GAPS:
            raise
        log.warning(
            "view %s: no change feed for all of versions %d..%d (%s: %s); incremental by version diff",
            view.name,
            last + 1,
            version,
            condition,
            str(exc).splitlines()[0][:300],
        )
        return None
    return keys, count


def _last_recorded(spark, config: PipelineConfig, store: str, view: ViewSpec) -> int | None:
    from pyspark.sql import functions as F

    path = state_path(config)
    if io.delta_version(spark, path) is None:
        return None
    row = (
        io.read_delta(spark, path)
        .where(F.col("store") == store)
        .where(F.col("view") == view.name)
        .where(F.col("definition_hash") == view.definition_hash)
        .agg(F.max("table_version").alias("v"))
        .collect()[0]  # one aggregate row
    )
    return None if row["v"] is None else int(row["v"])


def _record(spark, config: PipelineConfig, store: str, view: ViewSpec, result: Materialized) -> None:
    row = [
        (
            store,
            view.name,
            view.definition_hash,
            result.table_version,
            result.entities,
            result.mode,
            dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
        )
    ]
    schema = (
        "store string, view string, definition_hash string, table_version bigint, entities bigint, mode string, "
        "materialized_at timestamp"
    )
    frame = local_dataframe(spark, row, schema)
    io.append(frame, state_path(config), root=config.env.root, what="materialization log")


def applied_views(repo: str | Path, names: Sequence[str]) -> dict:
    """The applied registry's feature views by name (raises naming the ones never applied)."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    applied = {fv.name: fv for fv in store.list_feature_views()}
    missing = [n for n in names if n not in applied]
    if missing:
        raise ServingError(
            f"feature view(s) {', '.join(missing)} are not in the applied registry of {repo}; regenerate and apply "
            f"the repository: featuremill feast-repo PIPELINE --out {repo} --apply"
        )
    return applied


def check_hashes(views: Sequence[ViewSpec], applied: dict, repo: str | Path) -> None:
    """Refuse (:class:`ServingError`) a view whose applied definition hash is not the pipeline's."""
    for view in views:
        found = applied[view.name].tags.get(TAG_HASH)
        if found != view.definition_hash:
            raise ServingError(
                f"feature view {view.name!r}: the repository {repo} was applied with definition hash {found}, the "
                f"pipeline now has {view.definition_hash}; regenerate and apply it "
                f"(featuremill feast-repo PIPELINE --out {repo} --apply) before materializing"
            )


def materialize(
    spark,
    config: PipelineConfig,
    repo: str | Path,
    *,
    views: Sequence[str] | None = None,
    full: bool = False,
    batch_rows: int = online.DEFAULT_BATCH_ROWS,
) -> list[Materialized]:
    """Materialize the repository's views (all, or those named) into its online store; see module docstring."""
    repo = Path(repo).resolve()
    store_yaml = (repo / STORE_FILE).read_text() if (repo / STORE_FILE).is_file() else None
    if store_yaml is None:
        raise ServingError(f"{repo} has no {STORE_FILE}; generate it with featuremill feast-repo PIPELINE --out {repo}")
    specs = repository_views(spark, config)
    if views:
        unknown = [n for n in views if n not in {v.name for v in specs}]
        if unknown:
            raise ServingError(
                f"unknown feature view(s) {', '.join(unknown)} (the repository has {', '.join(v.name for v in specs)})"
            )
        specs = [v for v in specs if v.name in views]
    applied = applied_views(repo, [v.name for v in specs])
    check_hashes(specs, applied, repo)
    store = config.env.online_store
    online.check_reachable(store, repo)
    store_id = f"{config.name}|{online.store_address(store, repo)}"
    results = []
    for view in specs:
        results.append(
            _materialize_view(
                spark,
                config,
                view,
                applied[view.name],
                repo=repo,
                store_yaml=store_yaml,
                store_id=store_id,
                full=full,
                batch_rows=batch_rows,
            )
        )
    return results


def _materialize_view(spark, config, view: ViewSpec, applied_view, *, repo, store_yaml, store_id, full, batch_rows):
    version = io.delta_version(spark, view.table)
    if version is None:
        raise ServingError(f"no Delta table at {view.table} for view {view.name!r}")
    last = None if full else _last_recorded(spark, config, store_id, view)
    if last is not None and last >= version:
        log.info("view %s: Delta version %d already in %s; nothing to write", view.name, version, store_id)
        return Materialized(view.name, "unchanged", last, version, 0)
    args = {"keys": view.key_names, "event_time": view.event_time, "columns": view.feature_names}
    current = io.read_delta(spark, view.table, version=version)
    rows = latest_rows(current, **args)
    mode, feed = "full", None
    if last is not None:
        feed = _feed_keys(spark, view, last=last, version=version)
    if feed is not None:
        # only the entities with a changed row: Spark picks the join strategy (a broadcast when small)
        rows = latest_rows(rows_of(current, feed[0], keys=view.key_names), **args)
        mode = "incremental_cdf"
    elif last is not None:
        try:
            previous = latest_rows(io.read_delta(spark, view.table, version=last), **args)
            rows = changed_rows(rows, previous)
            mode = "incremental"
        except Exception as exc:  # the old version was vacuumed: fall back to a full write
            log.warning("view %s: version %d no longer readable (%s); materializing in full", view.name, last, exc)
    try:
        if feed is not None and feed[1] == 0:
            entities = 0  # no data change since L (metadata-only commits, OPTIMIZE): no scan, no write
        else:
            entities = _write(config, view, applied_view, rows, repo=repo, store_yaml=store_yaml, batch_rows=batch_rows)
    finally:
        if feed is not None:
            feed[0].unpersist()  # the cached key set
    # a changed key without a row at V (all its rows deleted): Feast's online_write_batch cannot
    # delete, so the store keeps its last vector; say so instead of leaving it silently stale
    vanished = feed[1] - entities if feed is not None else 0
    if vanished:
        log.warning(
            "view %s: %d changed entities have no row at Delta version %d; their stored vectors stay in %s "
            "(Feast's online write cannot delete)",
            view.name,
            vanished,
            version,
            store_id,
        )
    result = Materialized(view.name, mode, last, version, entities, vanished)
    _record(spark, config, store_id, view, result)
    log.info("view %s: %s materialization of Delta version %d: %d entities written", view.name, mode, version, entities)
    return result


def _write(config, view: ViewSpec, applied_view, rows, *, repo, store_yaml, batch_rows) -> int:
    """Write ``rows`` from the executors; the number written (raises :class:`OnlineStoreError`)."""
    from pyspark.sql import functions as F

    join_keys = {k: _VALUE_TYPE_NAMES[t] for k, t in view.keys}
    written = online.write_batches(
        rows,
        repo=str(repo),
        store_yaml=store_yaml,
        view_proto=applied_view.to_proto().SerializeToString(),
        join_keys=join_keys,
        batch_rows=batch_rows,
    )
    try:
        return int(written.agg(F.sum("rows").alias("n")).collect()[0]["n"] or 0)  # one aggregate row
    except Exception as exc:
        raise OnlineStoreError(
            f"online store {online.store_address(config.env.online_store, repo)}: writing view {view.name!r} "
            f"failed ({_first_line(exc)}); nothing was recorded, the next run writes the same entities again"
        ) from None


def _first_line(exc: BaseException) -> str:
    """The Python exception line of a failed Spark task (``redis.exceptions.ConnectionError: ...``)."""
    import re

    text = str(exc)
    found = re.findall(r"^\s*([\w.]*(?:Error|Exception): .+)$", text, flags=re.MULTILINE)
    return (found[-1] if found else (text.splitlines() or [type(exc).__name__])[0]).strip()[:300]
