"""The streaming feature job: a Kafka (or Delta) stream of an events source -> the feature table.

One Structured Streaming query per feature set; every micro-batch runs, in ``foreachBatch``:

1. (kafka) parse each record's JSON value against the source's declared columns and classify it
   with the batch ingest's checks (type parsing, required fields, non-finite values, the
   ``quarantine`` quality rules of ``validated.<source>``); valid events older than the watermark
   (the newest event time of the earlier micro-batches minus ``allowed_lateness``) become ``late``;
   duplicates by the source key, within the micro-batch and against the events earlier
   micro-batches kept, become ``duplicate``;
2. count the verdicts (one small aggregate) and append the rejected records to the stream's
   quarantine table (topic, partition, offset, raw value, rule, reason) and the valid events to
   the stream's validated table;
3. for the entities of the micro-batch, read their events from the earliest new event's date
   minus the feature set's lookback, compute the feature set with the batch implementation
   (:func:`featuremill.pipelines.build_features.build_feature_frame`), keep each entity's rows at
   or after its earliest new event (the only rows new events can change) and MERGE them into the
   feature table on (entity keys, event time);
4. with an online store (``--feast-repo``), write the latest feature row of each entity of the
   micro-batch to it (serving's writer), read back from the feature table after the MERGE;
5. append the micro-batch's metrics to the run log.

Exactly once: every Delta write of a micro-batch carries ``txnAppId`` =
``featuremill/<pipeline>/stream/<feature set>/<query id>`` (the query id is stored in the
checkpoint: a restart keeps it, a new checkpoint gets a new one) and ``txnVersion`` = the batch
id. Spark replays a micro-batch whose checkpoint commit is missing with the same offsets; Delta
skips each write that already committed, and step 1 of the replay excludes the replayed batch's own
rows from its duplicate check and watermark, so the replay classifies exactly as the first attempt.

Tables (under ``<warehouse>/<pipeline>/stream/<feature set>/``): ``validated``, ``quarantine``,
``_checkpoint``; the feature table is the batch job's, ``features/<set>``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from featuremill.config import FeatureSetSpec, PipelineConfig
from featuremill.config.streams import StreamSpec, stream_of
from featuremill.core.errors import FeaturemillError, OnlineStoreError, ServingError
from featuremill.core.sql import col, quote_identifier
from featuremill.pipelines.build_features import _dimension_frame, build_feature_frame, lookback_days
from featuremill.pipelines.preprocess import helper_lookback_days
from featuremill.quality import contracts
from featuremill.quality.gate import TableGate
from featuremill.storage import io
from featuremill.storage.io import CommitTag
from featuremill.storage.ledger import RunRecord, append_run
from featuremill.streaming.records import (
    BATCH_ID,
    KAFKA_TIMESTAMP,
    STREAM_ID,
    batch_starts,
    kafka_records,
    stream_quarantine_rows,
    stream_valid_rows,
    with_late_flagged,
    with_stream_classification,
)
from featuremill.transforms.ingest import EVENT_DATE, INGEST_DATE, RULE, with_duplicates_flagged

log = logging.getLogger(__name__)

#: Spark's Kafka connector (4.0.1 is not served: its token-provider jar is missing).
KAFKA_PACKAGE = "org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.0"
_FAR_FUTURE = dt.date(9999, 12, 31)

#: ``hook(stage, batch_id)``, called after each step of a micro-batch: ``classified`` (before any
#: write), ``quarantine``, ``validated``, ``features`` (after those Delta commits). Tests use it to
#: kill the process at each point.
BatchHook = Callable[[str, int], None]


class StreamError(FeaturemillError):
    """The streaming query stopped with an error, or cannot start."""


@dataclass(frozen=True)
class StreamPaths:
    """Where a feature set's stream keeps its tables and checkpoint."""

    validated: str
    quarantine: str
    checkpoint: str
    features: str


def stream_paths(config: PipelineConfig, feature_set: str, *, checkpoint: str | None = None) -> StreamPaths:
    root = f"{config.tables.root}/stream/{feature_set}"
    return StreamPaths(
        validated=config.tables.table(f"stream/{feature_set}/validated"),
        quarantine=config.tables.table(f"stream/{feature_set}/quarantine"),
        checkpoint=checkpoint or f"{root}/_checkpoint",  # a folder, also when tables are named
        features=config.tables.features(feature_set),
    )


@dataclass
class BatchResult:
    """Accounting of one micro-batch (also what the run log records)."""

    batch_id: int
    input_rows: int
    valid_rows: int
    quarantined: int
    by_rule: dict
    output_rows: int
    duration_s: float
    freshness_s: float | None
    latency_s: float | None
    online_rows: int | None = None
    online_freshness_s: float | None = None


@dataclass
class OnlineTarget:
    """The online store a stream writes each micro-batch's changed entities to (a Feast repository).

    Built by :func:`online_target` before the query starts (registry, definition hash and store
    checked then); the view's key types come from the feature table on the first write.
    """

    repo: str
    store_yaml: str
    view_proto: bytes
    address: str
    _view: object | None = None
    join_keys: dict | None = None

    def view(self, spark, config: PipelineConfig, fs: FeatureSetSpec):
        if self._view is None:
            from featuremill.serving.materialize import _VALUE_TYPE_NAMES
            from featuremill.serving.repo import feature_set_view

            self._view = feature_set_view(spark, config, fs)
            self.join_keys = {k: _VALUE_TYPE_NAMES[t] for k, t in self._view.keys}
        return self._view


def online_target(config: PipelineConfig, fs: FeatureSetSpec, repo: str) -> OnlineTarget:
    """Check the Feast repository ``repo`` serves ``fs`` as defined now and its store answers.

    Raises :class:`~featuremill.core.errors.ServingError` (no ``feature_store.yaml``, the view not
    applied, or applied with another definition hash: regenerate and apply) or
    :class:`~featuremill.core.errors.OnlineStoreError` (the store does not answer), before the
    query starts, so nothing is written.
    """
    from pathlib import Path

    from featuremill.serving import online
    from featuremill.serving.materialize import applied_views
    from featuremill.serving.repo import STORE_FILE, TAG_HASH
    from featuremill.storage.versions import feature_set_fingerprint

    root = Path(repo).resolve()
    if not (root / STORE_FILE).is_file():
        raise ServingError(f"{root} has no {STORE_FILE}; generate it with featuremill feast-repo PIPELINE --out {root}")
    applied = applied_views(root, [fs.name])[fs.name]
    found, wanted = applied.tags.get(TAG_HASH), feature_set_fingerprint(config, fs)
    if found != wanted:
        raise ServingError(
            f"feature view {fs.name!r}: the repository {root} was applied with definition hash {found}, the pipeline "
            f"now has {wanted}; regenerate and apply it (featuremill feast-repo PIPELINE --out {root} --apply) "
            "before streaming to it"
        )
    online.check_reachable(config.env.online_store, root)
    return OnlineTarget(
        repo=str(root),
        store_yaml=(root / STORE_FILE).read_text(),
        view_proto=applied.to_proto().SerializeToString(),
        address=online.store_address(config.env.online_store, root),
    )


class _BatchProcessor:
    """The ``foreachBatch`` function of one query (see the module docstring for the steps)."""

    def __init__(
        self,
        config: PipelineConfig,
        feature_set: FeatureSetSpec,
        stream: StreamSpec,
        paths: StreamPaths,
        *,
        hook: BatchHook | None = None,
        online: OnlineTarget | None = None,
    ):
        self.config = config
        self.online = online
        self.feature_set = feature_set
        self.stream = stream
        self.source = config.source(feature_set.source)
        self.paths = paths
        self.hook = hook or (lambda stage, batch_id: None)
        self.gate = TableGate(config, f"validated.{self.source.name}", allow_quarantine=True)
        self.results: list[BatchResult] = []
        self.error: FeaturemillError | None = None
        self._query_id: str | None = None
        self._jobs_before: set[int] = set()
        self._newest: dt.datetime | None = None
        self._newest_known = False
        self._schema: contracts.SchemaChange | None = None
        self._ready = threading.Event()

    def set_query(self, query_id: str) -> None:
        self._query_id = query_id
        self._ready.set()

    @property
    def app_id(self) -> str:
        if not self._ready.wait(120):
            raise StreamError("the streaming query did not report its id")
        return f"featuremill/{self.config.name}/stream/{self.feature_set.name}/{self._query_id}"

    def __call__(self, batch_df, batch_id: int) -> None:
        started = time.monotonic()
        self._jobs_before = _job_ids(batch_df.sparkSession)
        try:
            if self.stream.type == "kafka":
                result = self._kafka_batch(batch_df, int(batch_id), started)
            else:
                result = self._delta_batch(batch_df, int(batch_id), started)
        except FeaturemillError as exc:
            # kept whole: the query's own exception wraps it in a Python traceback
            self.error = exc
            raise
        self.results.append(result)

    # ------------------------------------------------------------------ kafka
    def _references(self, spark) -> dict:
        refs = {}
        for rule in self.gate.spec.row_rules:
            if rule.check == "referential":
                path = self.config.tables.validated(rule.dimension)
                if not io.is_delta_table(spark, path):
                    raise StreamError(
                        f"rule {rule.name!r} needs dimension {rule.dimension!r}, which has no validated table at "
                        f"{path}; ingest it first (featuremill run PIPELINE --job ingest --source {rule.dimension})"
                    )
                refs[rule.dimension] = io.read_delta(spark, path)
        return refs

    def _prior(self, spark, batch_id: int):
        """The stream's validated events, without the rows this or later batches of this query wrote."""
        if not io.is_delta_table(spark, self.paths.validated):
            return None
        mine = (col(STREAM_ID) == self._query_id) & (col(BATCH_ID) >= batch_id)
        return io.read_delta(spark, self.paths.validated).where(~mine)

    def _kafka_batch(self, batch_df, batch_id: int, started: float) -> BatchResult:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        spark = batch_df.sparkSession
        source = self.source
        app_id = self.app_id
        tag = CommitTag(app_id, batch_id, user_metadata=f'{{"featuremill_stream_batch": {batch_id}}}')
        classified = with_stream_classification(kafka_records(batch_df, source=source), source=source)
        classified = self.gate.with_row_rules(classified, references=self._references(spark))
        prior = self._prior(spark, batch_id)
        watermark = self._watermark(prior)
        classified = with_late_flagged(classified, event_time=source.event_time, watermark=watermark)
        # Cached once and kept until the batch ends: the Kafka records are read once; the date
        # list of the duplicate check and every write below read this cache.
        classified = classified.persist(StorageLevel.MEMORY_AND_DISK)
        flagged = None
        try:
            existing = None
            if prior is not None:
                # Earlier events on the micro-batch's event dates only (as the batch ingest's
                # duplicate check), joined in the plan: no list of dates comes to the driver.
                # Valid events are at or after the watermark, so older partitions are pruned.
                dates = F.broadcast(classified.where(col(RULE).isNull()).select(EVENT_DATE).distinct())
                if watermark is not None:
                    prior = prior.where(col(EVENT_DATE) >= F.lit(watermark.date()))
                existing = prior.join(dates, on=EVENT_DATE, how="left_semi").select(
                    *[col(k) for k in source.key], col(INGEST_DATE).alias("_existing_ingest_date")
                )
            flagged = with_duplicates_flagged(classified, key=source.key, existing_keys=existing)
            flagged = flagged.persist(StorageLevel.MEMORY_AND_DISK)
            result = self._kafka_write(spark, flagged, batch_id, started, tag)
        finally:
            if flagged is not None:
                flagged.unpersist()
            classified.unpersist()
        return result

    def _watermark(self, prior) -> dt.datetime | None:
        """The newest event time kept by earlier micro-batches minus the allowed lateness.

        The first micro-batch of a process reads it from the validated table (one aggregate; on
        a replay ``prior`` excludes the replayed batch's own rows); later ones keep it up to date
        on the driver from each batch's newest valid event (the query is the table's only writer).
        """
        from pyspark.sql import functions as F

        if not self._newest_known:
            if prior is not None:
                self._newest = prior.agg(F.max(col(self.source.event_time))).first()[0]
            self._newest_known = True
        if self._newest is None:
            return None
        return self._newest - dt.timedelta(seconds=self.stream.allowed_lateness_seconds)

    def _kafka_write(self, spark, flagged, batch_id: int, started: float, tag: CommitTag) -> BatchResult:
        from pyspark.sql import functions as F

        source = self.source
        counted = (
            flagged.groupBy(RULE)
            .agg(
                F.count(F.lit(1)).alias("n"),
                F.min(col(source.event_time)).alias("t_min"),
                F.max(col(source.event_time)).alias("t_max"),
                F.min(col(KAFKA_TIMESTAMP)).alias("k_min"),
            )
            .collect()
        )
        by_rule = {(r[RULE] or "valid"): int(r["n"]) for r in counted}
        valid_row = next((r for r in counted if r[RULE] is None), None)
        input_rows = sum(by_rule.values())
        valid = by_rule.get("valid", 0)
        quarantined = input_rows - valid
        k_min = min((r["k_min"] for r in counted if r["k_min"] is not None), default=None)
        valid_rows = stream_valid_rows(flagged, source=source, stream_id=self._query_id, batch_id=batch_id)
        change = self._schema_change(spark, valid_rows) if valid else None
        self.hook("classified", batch_id)
        if quarantined:
            rows = stream_quarantine_rows(flagged, source=source, stream_id=self._query_id, batch_id=batch_id)
            _append(rows, self.paths.quarantine, tag, root=self.config.env.root, partition_by=[INGEST_DATE])
        self.hook("quarantine", batch_id)
        output_rows = 0
        if valid:
            contracts.prepare_table(spark, self.paths.validated, change, root=self.config.env.root)
            _append(
                valid_rows,
                self.paths.validated,
                tag,
                root=self.config.env.root,
                partition_by=[EVENT_DATE],
                merge_schema=change.evolves,
            )
            self.hook("validated", batch_id)
            starts = batch_starts(
                flagged.where(col(RULE).isNull()), entity=self.feature_set.entity, event_time=source.event_time
            )
            output_rows = self._merge_features(spark, starts, valid_row["t_min"], tag)
            newest = valid_row["t_max"]
            self._newest = newest if self._newest is None else max(self._newest, newest)
        self.hook("features", batch_id)
        online_rows = self._publish(spark, starts, valid_row["t_min"]) if valid else None
        return self._record(
            spark,
            batch_id,
            started,
            input_rows=input_rows,
            valid=valid,
            quarantined=quarantined,
            by_rule=by_rule,
            output_rows=output_rows,
            max_event=valid_row["t_max"] if valid_row else None,
            kafka_min=k_min,
            online_rows=online_rows,
        )

    def _schema_change(self, spark, valid_rows) -> contracts.SchemaChange:
        """The declared columns against the live validated table, by the source's schema policy.

        Checked before any write of the first micro-batch of a process (the declared columns do
        not change while it runs): a column added to the source's declaration is added to the
        table (``additive: allow``, the default; older rows read null), widenings listed under
        ``quality.tables.validated.<source>.schema.widening`` widen it, anything else raises
        :class:`~featuremill.core.errors.SchemaContractError` naming the column and the fix, and
        the query stops with every table unchanged.
        """
        if self._schema is None:
            live, version = contracts.live_schema(spark, self.paths.validated)
            self._schema = contracts.compare_schemas(
                live,
                valid_rows.schema,
                self.gate.spec.schema,
                table=f"stream validated.{self.source.name} ({self.paths.validated})",
                live_version=version,
                policy_path=f"quality.tables.validated.{self.source.name}.schema",
            )
        return self._schema

    # ------------------------------------------------------------------ delta
    def _delta_batch(self, batch_df, batch_id: int, started: float) -> BatchResult:
        from pyspark.sql import functions as F

        spark = batch_df.sparkSession
        source = self.source
        tag = CommitTag(self.app_id, batch_id)
        row = batch_df.agg(F.count(F.lit(1)), F.min(col(source.event_time)), F.max(col(source.event_time))).first()
        rows, t_min, t_max = int(row[0]), row[1], row[2]
        output_rows = 0
        if rows:
            valid = batch_df.where(
                F.greatest(*[col(k).isNull() for k in self.feature_set.entity], col(source.event_time).isNull())
                == F.lit(False)
            )
            starts = batch_starts(valid, entity=self.feature_set.entity, event_time=source.event_time)
            output_rows = self._merge_features(spark, starts, t_min, tag)
        self.hook("features", batch_id)
        online_rows = self._publish(spark, starts, t_min) if rows else None
        return self._record(
            spark,
            batch_id,
            started,
            input_rows=rows,
            valid=rows,
            quarantined=0,
            by_rule={"valid": rows},
            output_rows=output_rows,
            max_event=t_max,
            kafka_min=None,
            online_rows=online_rows,
        )

    # ------------------------------------------------------------------ features
    def _events_path(self) -> str:
        if self.stream.type == "kafka":
            return self.paths.validated
        return self.config.tables.validated(self.source.name)

    def _merge_features(self, spark, starts, earliest: dt.datetime, tag: CommitTag) -> int:
        """Recompute and MERGE the feature rows the micro-batch's events can change; rows written."""
        from pyspark.sql import functions as F

        fs, source = self.feature_set, self.source
        from_date = earliest.date()
        read_start = from_date - dt.timedelta(days=lookback_days(fs) + helper_lookback_days(self.config, fs))
        starts = F.broadcast(starts)
        events = (
            io.read_delta(spark, self._events_path())
            .where(col(EVENT_DATE) >= F.lit(read_start))
            .join(starts.select(*[col(k) for k in fs.entity]), on=list(fs.entity), how="left_semi")
        )
        versions: dict[str, int] = {}
        dimensions = {j.dimension: _dimension_frame(spark, self.config, j, versions) for j in fs.joins}
        frame = build_feature_frame(
            events, config=self.config, feature_set=fs, dimensions=dimensions, start=from_date, end=_FAR_FUTURE
        )
        frame = (
            frame.join(starts, on=list(fs.entity), how="inner")
            .where(col(source.event_time) >= col("__fm_from"))
            .drop("__fm_from")
        )
        keys = [*fs.entity, source.event_time]
        return _upsert(
            spark,
            frame,
            self.paths.features,
            root=self.config.env.root,
            keys=keys,
            from_date=from_date,
            tag=tag,
        )

    # ------------------------------------------------------------------ online store
    def _publish(self, spark, starts, earliest: dt.datetime) -> int | None:
        """Write the latest feature row of each entity of the micro-batch to the online store.

        Read back from the feature table after the MERGE (so a replayed micro-batch, whose MERGE
        Delta skipped, writes the same rows again: online writes are upserts). Each entity's latest
        row is at or after its earliest new event, hence at or after ``earliest``: older
        partitions are pruned. Returns the rows written (``None`` without an online store).
        """
        if self.online is None:
            return None
        from pyspark.sql import functions as F

        from featuremill.serving import online
        from featuremill.serving.materialize import latest_rows

        target = self.online
        view = target.view(spark, self.config, self.feature_set)
        table = (
            io.read_delta(spark, self.paths.features)
            .where(col(EVENT_DATE) >= F.lit(earliest.date()))
            .join(
                F.broadcast(starts.select(*[col(k) for k in self.feature_set.entity])),
                on=list(self.feature_set.entity),
                how="left_semi",
            )
        )
        rows = latest_rows(table, keys=view.key_names, event_time=view.event_time, columns=view.feature_names)
        written = online.write_batches(
            rows,
            repo=target.repo,
            store_yaml=target.store_yaml,
            view_proto=target.view_proto,
            join_keys=target.join_keys,
            batch_rows=online.DEFAULT_BATCH_ROWS,
        )
        try:
            return int(written.agg(F.sum("rows")).first()[0] or 0)  # one aggregate row
        except Exception as exc:
            raise OnlineStoreError(
                f"online store {target.address}: writing the latest rows of {self.feature_set.name!r} failed "
                f"({_first_line(exc)}); the micro-batch is not committed, a restart writes them again"
            ) from None

    # ------------------------------------------------------------------ run log
    def _record(
        self,
        spark,
        batch_id: int,
        started: float,
        *,
        input_rows: int,
        valid: int,
        quarantined: int,
        by_rule: dict,
        output_rows: int,
        max_event,
        kafka_min,
        online_rows: int | None = None,
    ) -> BatchResult:
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        duration = time.monotonic() - started
        record = RunRecord(
            pipeline=self.config.name, job="stream", start_date=None, end_date=None, target=self.feature_set.name
        )
        record.run_key = self.app_id
        record.txn_version = batch_id
        record.rows_read = input_rows
        record.rows_written = output_rows
        record.rows_quarantined = quarantined
        record.rows_duplicate = by_rule.get("duplicate", 0)
        record.max_event_time = max_event
        latency = (now - kafka_min).total_seconds() if kafka_min is not None else None
        record.metrics.update(
            input_rows=input_rows,
            quarantined=quarantined,
            valid_rows=valid,
            output_rows=output_rows,
            batch_duration_s=duration,
            produce_to_table_max_s=latency,
        )
        if self.online is not None:
            # the online rows were written just before ``now``: event time (and produce time) to
            # online visibility, as the table's freshness below is event time to the table
            record.metrics.update(
                online_rows=online_rows or 0,
                online_freshness_s=(now - max_event).total_seconds() if online_rows and max_event else None,
                produce_to_online_max_s=latency if online_rows else None,
            )
        record.details = {
            "batch_id": batch_id,
            "by_rule": by_rule,
            "stream_type": self.stream.type,
            "late": by_rule.get("late", 0),
        }
        record.metrics["spark_jobs"] = len(_job_ids(spark) - self._jobs_before)
        record.busy_s = duration
        record.finish("succeeded")
        append_run(spark, self.config.tables.run_log, record, root=self.config.env.root)
        freshness = record.metrics.get("freshness_s")
        log.info(
            "stream %s batch %d: %d records, %d valid, %d quarantined (%s), %d feature rows, %.1f s, freshness %s",
            self.feature_set.name,
            batch_id,
            input_rows,
            valid,
            quarantined,
            ", ".join(f"{k}={v}" for k, v in sorted(by_rule.items()) if k != "valid") or "none",
            output_rows,
            duration,
            f"{freshness:.1f} s" if freshness is not None else "n/a",
        )
        return BatchResult(
            batch_id,
            input_rows,
            valid,
            quarantined,
            by_rule,
            output_rows,
            duration,
            freshness,
            latency,
            online_rows,
            record.metrics.get("online_freshness_s"),
        )


def _job_ids(spark) -> set[int]:
    """Ids of the Spark jobs of this thread's job group the driver still remembers (for the
    ``spark_jobs`` metric of a micro-batch: the difference before and after it)."""
    sc = spark.sparkContext
    return set(sc.statusTracker().getJobIdsForGroup(sc.getLocalProperty("spark.jobGroup.id")))


def _first_line(exc: BaseException) -> str:
    """The Python exception line of a failed Spark task (``redis.exceptions.ConnectionError: ...``)."""
    from featuremill.serving.materialize import _first_line as first_line

    return first_line(exc)


def _stop_between_batches(query, *, wait_s: float = 600.0) -> None:
    """Stop ``query`` once its running micro-batch (if any) has finished.

    Stopping interrupts a running ``foreachBatch``; that is safe (the batch is replayed from the
    checkpoint next time) but wastes the batch's work and fills the log with the interruption.
    """
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and query.isActive and query.status.get("isTriggerActive"):
        time.sleep(0.5)
    query.stop()


def _append(df, path: str, tag: CommitTag, *, root: str, partition_by, merge_schema: bool = False) -> None:
    """Append with the micro-batch's txnAppId/txnVersion: a replayed batch's append is skipped.

    ``merge_schema`` adds the columns a schema check accepted (and widens accepted widenings).
    ``root`` is the warehouse root ``path`` must lie under.
    """
    io.append(
        df, path, root=root, partition_by=partition_by, merge_schema=merge_schema, commit=tag, what="stream table"
    )


def _upsert(spark, frame, path: str, *, root: str, keys, from_date: dt.date, tag: CommitTag) -> int:
    """MERGE ``frame`` into the feature table: changed rows updated, new rows inserted, nothing deleted.

    Idempotent by ``tag`` (session confs around the MERGE). Returns the rows inserted plus updated
    by this commit (0 when Delta skipped it as already committed). ``root`` is the warehouse root.
    """
    if not io.is_delta_table(spark, path):
        io.append(frame, path, root=root, partition_by=[EVENT_DATE], commit=tag, what="stream feature table")
        metrics = io.last_operation_metrics(spark, path)
        return int(metrics.get("numOutputRows", 0))
    on = " AND ".join(
        [f"t.{quote_identifier(k)} <=> s.{quote_identifier(k)}" for k in keys]
        + [f"t.{quote_identifier(EVENT_DATE)} >= DATE'{from_date.isoformat()}'"]
    )
    values = [c for c in frame.columns if c not in keys]
    changed = " OR ".join(f"NOT (t.{quote_identifier(c)} <=> s.{quote_identifier(c)})" for c in values)
    counts = io.merge_upsert(
        frame, path, root=root, on=on, update_condition=changed, commit=tag, what="stream feature table"
    )
    if counts is None:
        return 0
    return int(counts.get("num_inserted_rows") or 0) + int(counts.get("num_updated_rows") or 0)


def local_packages() -> str:
    """``spark.jars.packages`` for a local session: Delta's jar plus Spark's Kafka connector."""
    from featuremill.core.session import local_delta_package

    return f"{local_delta_package()},{KAFKA_PACKAGE}"


#: Thread stack size for the driver JVM: a micro-batch interrupted by ``--duration``'s stop once
#: overflowed the stream execution thread's default stack while formatting the interruption's
#: error (regular expressions over a long message), leaving a StackOverflowError in the log.
DRIVER_STACK = "-Xss16m"


def local_conf(conf: dict[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A local session's settings for streaming: Delta plus Kafka's connector, a larger thread stack.

    The jars are those of an earlier session's Ivy resolution of the same packages when they are
    all still on disk (``spark.jars``: Ivy neither runs nor prints its report), else the packages
    themselves (``spark.jars.packages``; :func:`featuremill.core.session.get_spark` then records
    what Ivy resolved for the next start). Jars or packages given in ``conf`` are left alone.
    """
    from featuremill.core.session import package_jars

    out = dict(conf)
    if "spark.jars.packages" not in out and "spark.jars" not in out:
        out.update(package_jars(local_packages(), environ))
    java = out.get("spark.driver.extraJavaOptions", "")
    if "-Xss" not in java:
        out["spark.driver.extraJavaOptions"] = f"{java} {DRIVER_STACK}".strip()
    return out


def run_stream(
    spark,
    config: PipelineConfig,
    *,
    feature_set: str,
    available_now: bool = False,
    duration_s: float | None = None,
    checkpoint: str | None = None,
    bootstrap_servers: str | None = None,
    feast_repo: str | None = None,
    hook: BatchHook | None = None,
) -> list[BatchResult]:
    """Run the stream of ``feature_set``'s source into its feature table.

    ``available_now`` processes what the source holds now (in micro-batches of at most
    ``max_records_per_batch``) and stops; ``duration_s`` runs micro-batches every ``trigger`` for
    that long and stops; neither runs until the query fails or is stopped. ``bootstrap_servers``
    overrides the pipeline's. ``feast_repo`` (a repository written by ``featuremill feast-repo`` and
    applied) makes each micro-batch also write its entities' latest rows to the environment's
    online store. Returns the accounting of the micro-batches this process ran.
    Raises :class:`StreamError` when the query fails.
    """
    import dataclasses

    from featuremill.core.session import ensure_timezone

    ensure_timezone(spark, config.timezone)
    fs = config.feature_set(feature_set)
    try:
        stream = stream_of(config, fs.source)
    except KeyError as exc:
        raise StreamError(str(exc.args[0])) from None
    if bootstrap_servers:
        stream = dataclasses.replace(stream, bootstrap_servers=bootstrap_servers)
    paths = stream_paths(config, fs.name, checkpoint=checkpoint)
    online = online_target(config, fs, feast_repo) if feast_repo else None
    processor = _BatchProcessor(config, fs, stream, paths, hook=hook, online=online)
    if stream.type == "kafka":
        reader = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", stream.bootstrap_servers)
            .option("subscribe", stream.topic)
            .option("startingOffsets", stream.starting_offsets)
            .option("failOnDataLoss", "true")
        )
        if stream.max_records_per_batch:
            reader = reader.option("maxOffsetsPerTrigger", str(stream.max_records_per_batch))
        for key, value in stream.options:
            reader = reader.option(key, value)
        df = reader.load()
    else:
        # Batch ingest rewrites landing dates (replaceWhere): those commits are skipped here; the
        # daily feature job recomputes the dates they touch.
        reader = spark.readStream.format("delta").option("skipChangeCommits", "true")
        if stream.max_records_per_batch:
            reader = reader.option("maxFilesPerTrigger", str(stream.max_records_per_batch))
        df = io.load_delta(spark, config.tables.validated(fs.source), reader)
    writer = (
        df.writeStream.foreachBatch(processor)
        .option("checkpointLocation", paths.checkpoint)
        .queryName(f"featuremill_{config.name}_{fs.name}")
    )
    writer = (
        writer.trigger(availableNow=True)
        if available_now
        else writer.trigger(processingTime=f"{stream.trigger_seconds} seconds")
    )
    log.info(
        "stream %s: %s %s -> %s (checkpoint %s, %s)",
        fs.name,
        stream.type,
        stream.topic or config.tables.validated(fs.source),
        paths.features,
        paths.checkpoint,
        "available now" if available_now else (f"for {duration_s:g} s" if duration_s else "until stopped"),
    )
    query = writer.start()
    processor.set_query(str(query.id))
    try:
        if available_now:
            query.awaitTermination()
        elif duration_s is not None:
            if query.awaitTermination(duration_s):
                error = query.exception()
                raise StreamError(
                    f"stream {fs.name}: the query stopped before its {duration_s:g} s"
                    + (f": {str(error).strip().splitlines()[0]}" if error is not None else " (see the log above)")
                )
            _stop_between_batches(query)
        else:
            query.awaitTermination()
    except Exception as exc:
        if processor.error is not None:
            raise processor.error from None
        if type(exc).__name__ in ("StreamingQueryException",) or "pyspark" in type(exc).__module__:
            raise StreamError(f"stream {fs.name}: the query failed: {str(exc).strip().splitlines()[0]}") from exc
        raise
    error = query.exception()
    if processor.error is not None:
        raise processor.error
    if error is not None:
        raise StreamError(f"stream {fs.name}: the query failed: {str(error).strip().splitlines()[0]}")
    return processor.results
