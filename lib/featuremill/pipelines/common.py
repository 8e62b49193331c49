"""What every job shares: date arguments, the recorded-run context, logging set-up."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import sys
from typing import Iterator

from featuremill.config import PipelineConfig
from featuremill.ledger import RunRecord, append_run

log = logging.getLogger(__name__)


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (use YYYY-MM-DD)") from None


_RUN_LABELS: contextvars.ContextVar[dict] = contextvars.ContextVar("featuremill_run_labels", default={})


@contextlib.contextmanager
def run_labels(**labels) -> Iterator[None]:
    """Label every run recorded inside the block (e.g. the DAG run id and attempt number).

    The labels are stored under ``details["labels"]`` of each run-log row, so the rows of one
    scheduled attempt can be found and counted.
    """
    token = _RUN_LABELS.set({**_RUN_LABELS.get(), **labels})
    try:
        yield
    finally:
        _RUN_LABELS.reset(token)


def _with_labels(record: RunRecord) -> None:
    labels = _RUN_LABELS.get()
    if labels:
        record.details = {**(record.details or {}), "labels": dict(labels)}


@contextlib.contextmanager
def recorded_run(spark, config: PipelineConfig, *, job: str, target: str, start: dt.date | None,
                 end: dt.date | None, run_id: str | None = None) -> Iterator[RunRecord]:
    """Yield a :class:`RunRecord`; append it to the run log when the block ends, failed or not.

    A block may set ``record.status`` itself (for example ``skipped_empty``); otherwise the run is
    ``succeeded``, or ``failed`` with the error text when the block raises.
    """
    record = RunRecord(pipeline=config.name, job=job, target=target, start_date=start, end_date=end)
    if run_id:
        record.run_id = run_id
    try:
        yield record
    except BaseException as exc:
        record.finish("failed", error=f"{type(exc).__name__}: {exc}"[:4000])
        _with_labels(record)
        try:
            append_run(spark, config.tables.run_log, record)
        except Exception:  # the original error matters more than a failed ledger write
            log.exception("could not record failed run %s", record.run_id)
        raise
    record.finish(record.status if record.status not in ("running",) else "succeeded", record.error)
    _with_labels(record)
    append_run(spark, config.tables.run_log, record)


class RecordedRuns:
    """Several :func:`recorded_run` blocks whose ends are decided one by one.

    A job that checks every target before writing any (so a failed quality rule leaves all its
    tables unchanged) opens a run per target first, closes each as succeeded after its write, and
    on an error marks every run still open as failed with that error.
    """

    def __init__(self, spark, config: PipelineConfig, *, job: str, start: dt.date | None, end: dt.date | None):
        self._spark, self._config, self._job, self._start, self._end = spark, config, job, start, end
        self._open: dict[str, contextlib.AbstractContextManager] = {}

    def open(self, target: str) -> RunRecord:
        manager = recorded_run(self._spark, self._config, job=self._job, target=target, start=self._start,
                               end=self._end)
        record = manager.__enter__()
        self._open[target] = manager
        return record

    def succeed(self, target: str) -> None:
        self._open.pop(target).__exit__(None, None, None)

    def fail_open(self, exc: BaseException) -> None:
        while self._open:
            _, manager = self._open.popitem()
            try:
                manager.__exit__(type(exc), exc, exc.__traceback__)
            except BaseException:  # recorded_run re-raises; the caller raises the original error
                pass


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr with timestamps; called by entry points only, never on import."""
    root = logging.getLogger()
    if any(getattr(h, "_featuremill", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler._featuremill = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("featuremill").setLevel(getattr(logging, level.upper(), logging.INFO))
