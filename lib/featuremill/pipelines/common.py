"""What every job shares: date arguments, the recorded-run context, logging set-up."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import sys
import time
import warnings
from collections.abc import Iterator, Sequence

from featuremill.config import PipelineConfig
from featuremill.core.progress import collect_stage_times
from featuremill.core.run_metrics import job_tag, tagged_job_metrics, tagged_jobs
from featuremill.storage.ledger import RunRecord, append_run, append_runs

log = logging.getLogger(__name__)


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (use YYYY-MM-DD)") from None


_RUN_LABELS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("featuremill_run_labels", default=None)


@contextlib.contextmanager
def run_labels(**labels) -> Iterator[None]:
    """Label every run recorded inside the block (e.g. the DAG run id and attempt number).

    The labels are stored under ``details["labels"]`` of each run-log row, so the rows of one
    scheduled attempt can be found and counted.
    """
    token = _RUN_LABELS.set({**(_RUN_LABELS.get() or {}), **labels})
    try:
        yield
    finally:
        _RUN_LABELS.reset(token)


def _with_labels(record: RunRecord) -> None:
    labels = _RUN_LABELS.get()
    if labels:
        record.details = {**(record.details or {}), "labels": dict(labels)}


def _new_record(
    config: PipelineConfig,
    *,
    job: str,
    target: str,
    start: dt.date | None,
    end: dt.date | None,
    run_id: str | None,
    backfill_id: str | None,
) -> RunRecord:
    record = RunRecord(pipeline=config.name, job=job, target=target, start_date=start, end_date=end)
    if run_id:
        record.run_id = run_id
    record.backfill_id = backfill_id
    return record


@contextlib.contextmanager
def measured(spark, record: RunRecord) -> Iterator[None]:
    """Attribute the block's Spark jobs (job tag) and keyed stage times to ``record``.

    May be entered several times for one record (a job that prepares every target, then writes
    them): the stage times add up, and the job tag collects every job the record's blocks ran.
    """
    with tagged_jobs(spark, job_tag(record.run_id)), collect_stage_times(record.metrics):
        yield


def _finished(spark, record: RunRecord, exc: BaseException | None) -> RunRecord:
    """``record`` finished (failed when ``exc``), with its Spark metrics and the run's labels."""
    record.metrics.update(tagged_job_metrics(spark, job_tag(record.run_id)))
    if exc is not None:
        record.finish("failed", error=f"{type(exc).__name__}: {exc}"[:4000])
    else:
        record.finish(record.status if record.status not in ("running",) else "succeeded", record.error)
    _with_labels(record)
    return record


def _record_end(spark, config: PipelineConfig, record: RunRecord, exc: BaseException | None) -> None:
    """Finish ``record`` (failed when ``exc``) and append it to the run log."""
    _finished(spark, record, exc)
    try:
        append_run(spark, config.tables.run_log, record, root=config.env.root)
    except Exception:
        if exc is None:
            raise
        log.exception("could not record failed run %s", record.run_id)  # the original error matters more


@contextlib.contextmanager
def recorded_run(
    spark,
    config: PipelineConfig,
    *,
    job: str,
    target: str,
    start: dt.date | None,
    end: dt.date | None,
    run_id: str | None = None,
    backfill_id: str | None = None,
) -> Iterator[RunRecord]:
    """Yield a :class:`RunRecord`; append it to the run log when the block ends, failed or not.

    A block may set ``record.status`` itself (for example ``skipped_empty``); otherwise the run is
    ``succeeded``, or ``failed`` with the error text when the block raises. The record's
    ``metrics`` receive the wall time of every keyed :func:`featuremill.core.progress.stage` inside the
    block and the Spark metrics of the jobs the block ran (:mod:`featuremill.core.run_metrics`).
    """
    record = _new_record(config, job=job, target=target, start=start, end=end, run_id=run_id, backfill_id=backfill_id)
    try:
        with measured(spark, record):
            yield record
    except BaseException as exc:
        _record_end(spark, config, record, exc)
        raise
    _record_end(spark, config, record, None)


class RecordedRuns:
    """Several recorded runs (one per target) whose ends are decided one by one.

    A job that checks every target before writing any (so a failed quality rule leaves all its
    tables unchanged) opens a run per target first, runs each target's work inside
    :meth:`measure` (so its Spark jobs and stage times are attributed to that target's run),
    closes each as succeeded after its write, and on an error marks every run still open as
    failed with that error. The closed runs reach the run log together (:meth:`write` at the end
    of the job, or :meth:`fail_open`): one commit per job. A job killed before that leaves no row
    for its runs; a re-run finds their Delta commits (``already_committed``) and records them.
    """

    def __init__(
        self,
        spark,
        config: PipelineConfig,
        *,
        job: str,
        start: dt.date | None,
        end: dt.date | None,
        backfill_id: str | None = None,
    ):
        self._spark, self._config, self._job, self._start, self._end = spark, config, job, start, end
        self._backfill_id = backfill_id
        self._open: dict[str, RunRecord] = {}
        self._closed: list[RunRecord] = []  # finished, not yet in the run log

    def open(self, target: str) -> RunRecord:
        record = _new_record(
            self._config,
            job=self._job,
            target=target,
            start=self._start,
            end=self._end,
            run_id=None,
            backfill_id=self._backfill_id,
        )
        self._open[target] = record
        return record

    @contextlib.contextmanager
    def measure(self, target: str) -> Iterator[None]:
        """Context: the block's Spark jobs, keyed stages and wall time count for ``target``'s run.

        The run's ``duration_s`` is the sum of its blocks, so the durations of a job's runs add
        up to at most the job's wall time (their start-to-finish spans overlap).
        """
        record = self._open[target]
        began = time.monotonic()
        try:
            with measured(self._spark, record):
                yield
        finally:
            record.busy_s = (record.busy_s or 0.0) + (time.monotonic() - began)

    def succeed(self, target: str) -> None:
        """Close ``target``'s run as succeeded (its end time and metrics now); :meth:`write`
        appends it to the run log."""
        self._closed.append(_finished(self._spark, self._open.pop(target), None))

    def write(self) -> None:
        """Append every closed run not yet written to the run log, in one commit: a job's runs
        cost one run-log commit, not one per target."""
        if self._closed:
            append_runs(self._spark, self._config.tables.run_log, self._closed, root=self._config.env.root)
            self._closed = []

    def fail_open(self, exc: BaseException) -> None:
        """Close every run still open as failed with ``exc`` and write every closed run (a failed
        run-log write is logged, not raised: the original error matters more)."""
        while self._open:
            _, record = self._open.popitem()
            self._closed.append(_finished(self._spark, record, exc))
        try:
            self.write()
        except Exception:
            log.exception("could not record the runs %s", ", ".join(r.run_id for r in self._closed))


#: Feast's notice, printed each time it loads a SparkSource (every materialization and registry
#: read), that its Spark source API is alpha. featuremill chose that source on purpose
#: (:mod:`featuremill.serving.repo`) and a user can do nothing about it; several copies at the end
#: of a demo read as a problem.
FEAST_SPARK_SOURCE_NOTICE = "The spark data source API is an experimental feature"


def _without_feast_spark_source_notice(show):
    """``warnings.showwarning`` that drops :data:`FEAST_SPARK_SOURCE_NOTICE` and shows the rest.

    A display hook rather than a warnings filter: Feast's modules call
    ``warnings.simplefilter("once", RuntimeWarning)`` when imported (after an entry point set up
    its filters), which would put the notice back in front of any filter.
    """

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, RuntimeWarning) and str(message).startswith(FEAST_SPARK_SOURCE_NOTICE):
            return
        show(message, category, filename, lineno, file, line)

    showwarning._featuremill = True  # type: ignore[attr-defined]
    return showwarning


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr with timestamps; called by entry points only, never on import."""
    if not getattr(warnings.showwarning, "_featuremill", False):
        warnings.showwarning = _without_feast_spark_source_notice(warnings.showwarning)
    root = logging.getLogger()
    if any(getattr(h, "_featuremill", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler._featuremill = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("featuremill").setLevel(getattr(logging, level.upper(), logging.INFO))


def missing_history_message(dimension: str, table: str, missing: Sequence[str], *, unknown: str) -> str:
    """Why a dimension table without history columns cannot serve a point-in-time join, and the
    re-ingest that gives it history. ``unknown``: what cannot be known without it."""
    return (
        f"dimension {dimension!r}: the table at {table} has no {' / '.join(missing)} column(s): {unknown}. "
        "Move it aside and re-ingest the dimension from its first snapshot date "
        f"(featuremill backfill PIPELINE --job ingest --source {dimension} --start FIRST_DATE --end TODAY)"
    )
