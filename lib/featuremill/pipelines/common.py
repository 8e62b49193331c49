"""What every job shares: date arguments, the recorded-run context, logging set-up."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
from typing import Iterator

from featuremill.config import PipelineConfig
from featuremill.ledger import RunRecord, append_run
from featuremill.progress import collect_stage_times
from featuremill.run_metrics import job_tag, tagged_job_metrics, tagged_jobs

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


@contextlib.contextmanager
def recorded_run(spark, config: PipelineConfig, *, job: str, target: str, start: dt.date | None,
                 end: dt.date | None, run_id: str | None = None,
                 backfill_id: str | None = None) -> Iterator[RunRecord]:
    """Yield a :class:`RunRecord`; append it to the run log when the block ends, failed or not.

    A block may set ``record.status`` itself (for example ``skipped_empty``); otherwise the run is
    ``succeeded``, or ``failed`` with the error text when the block raises. The record's
    ``metrics`` receive the wall time of every keyed :func:`featuremill.progress.stage` inside the
    block and the Spark metrics of the jobs the block ran (:mod:`featuremill.run_metrics`).
    """
    record = RunRecord(pipeline=config.name, job=job, target=target, start_date=start, end_date=end)
    if run_id:
        record.run_id = run_id
    record.backfill_id = backfill_id
    tag = job_tag(record.run_id)
    with tagged_jobs(spark, tag), collect_stage_times(record.metrics):
        try:
            yield record
        except BaseException as exc:
            record.metrics.update(tagged_job_metrics(spark, tag))
            record.finish("failed", error=f"{type(exc).__name__}: {exc}"[:4000])
            try:
                append_run(spark, config.tables.run_log, record)
            except Exception:  # the original error matters more than a failed ledger write
                log.exception("could not record failed run %s", record.run_id)
            raise
    record.metrics.update(tagged_job_metrics(spark, tag))
    record.finish(record.status if record.status not in ("running",) else "succeeded", record.error)
    append_run(spark, config.tables.run_log, record)


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
