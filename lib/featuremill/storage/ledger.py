"""The run ledger: one Delta row per job run (successful or failed), appended at the end.

Grain: one row per ``run_id``. Columns are listed in :data:`RUN_LOG_SCHEMA`. The ledger is how
later runs learn what earlier ones did (input and output table versions for replay, the dates
covered) and how people see what happened (``featuremill runs``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from featuremill import __version__
from featuremill.core.local_rows import local_dataframe
from featuremill.storage import io

log = logging.getLogger(__name__)

RUN_LOG_SCHEMA = (
    "run_id string, pipeline string, job string, target string, start_date date, end_date date, "
    "status string, started_at timestamp, finished_at timestamp, duration_s double, "
    "rows_read bigint, rows_written bigint, rows_quarantined bigint, rows_duplicate bigint, "
    "input_versions map<string,bigint>, output_versions map<string,bigint>, "
    "metrics map<string,double>, details string, error string, code_version string, "
    # exactly-once and backfill bookkeeping, freshness (added columns: older logs read them as null)
    "run_key string, txn_version bigint, input_fingerprint string, max_event_time timestamp, backfill_id string"
)


def new_run_id() -> str:
    return uuid.uuid4().hex


@dataclass
class RunRecord:
    """What one run did. Filled in by the job as it goes and appended once at the end."""

    pipeline: str
    job: str
    start_date: dt.date | None
    end_date: dt.date | None
    target: str = ""
    run_id: str = field(default_factory=new_run_id)
    status: str = "running"
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    finished_at: dt.datetime | None = None
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    input_versions: dict[str, int] = field(default_factory=dict)
    output_versions: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    code_version: str = __version__
    #: ``featuremill/<pipeline>/<job>/<target>/<start>/<end>``: the Delta txnAppId of the run's writes
    run_key: str | None = None
    #: the Delta txnVersion (generation of the run key) the run wrote or found committed
    txn_version: int | None = None
    #: hash of what the run read and the definition it applied (see featuremill.storage.exactly_once)
    input_fingerprint: str | None = None
    #: latest event time among the rows the run wrote (UTC); freshness = finished_at - this
    max_event_time: dt.datetime | None = None
    #: the backfill this run was a chunk of
    backfill_id: str | None = None
    #: seconds spent on this run's own work when a job interleaves several runs (all planned,
    #: then all written: :class:`featuremill.pipelines.common.RecordedRuns`); not a column
    busy_s: float | None = None

    @property
    def duration_s(self) -> float | None:
        """Wall time of the run: its own work when the job interleaved runs, else start to finish.

        Interleaved runs' start-to-finish spans overlap (each includes the others' writes), so
        their durations would add up to more than the job took.
        """
        if self.finished_at is None:
            return None
        if self.busy_s is not None:
            return self.busy_s
        return (self.finished_at - self.started_at).total_seconds()

    def finish(self, status: str, error: str | None = None) -> None:
        self.status = status
        self.error = error
        self.finished_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        if self.max_event_time is not None:
            self.metrics["freshness_s"] = (self.finished_at - self.max_event_time).total_seconds()

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["duration_s"] = self.duration_s
        row["details"] = json.dumps(self.details, sort_keys=True, default=str)
        row["metrics"] = {k: (float(v) if v is not None else None) for k, v in self.metrics.items()}
        return row


def append_run(spark, path: str, record: RunRecord, *, root: str) -> None:
    """Append ``record`` to the run log at ``path`` (created on first use); ``path`` must lie
    under ``root``, the warehouse."""
    append_runs(spark, path, [record], root=root)


def append_runs(spark, path: str, records: Sequence[RunRecord], *, root: str) -> None:
    """Append ``records`` to the run log at ``path`` in one Delta commit (none for no record).

    A job that runs several targets records them together: one commit per job, not one per
    source or feature set (each commit is a Delta transaction of its own, about 0.4 s on tiny data).
    """
    from pyspark.sql.types import _parse_datatype_string

    if not records:
        return
    schema = _parse_datatype_string(RUN_LOG_SCHEMA)
    rows = [record.as_row() for record in records]
    df = local_dataframe(spark, [tuple(row.get(f.name) for f in schema.fields) for row in rows], schema)
    io.append(df, path, root=root, merge_schema=True, what="run log")
    for record in records:
        log.info("run %s (%s %s) recorded as %s", record.run_id, record.pipeline, record.job, record.status)


def read_runs(spark, path: str, *, pipeline: str | None = None, job: str | None = None):
    """The run log as a DataFrame, newest first, optionally filtered."""
    from pyspark.sql import functions as F

    from featuremill.storage import io

    df = io.load_delta(spark, path)
    if pipeline:
        df = df.where(F.col("pipeline") == F.lit(pipeline))
    if job:
        df = df.where(F.col("job") == F.lit(job))
    return df.orderBy(F.col("started_at").desc())


def as_dict(mapping: Mapping | None) -> dict:
    return dict(mapping or {})
