"""Progress logging for long steps: stage name, rows and elapsed time.

:func:`stage` logs when a step starts and ends. While a step runs, a daemon thread reads
Spark's status tracker every few seconds and logs the active Spark stages' task progress, so a
user watching a long run sees it advance. It stops with the step. Nothing here prints.

A stage given a ``key`` also adds its wall time to the metrics of the run it belongs to:
:func:`collect_stage_times` (entered by ``pipelines.common.recorded_run``) names the mapping
that receives ``stage_s.<key>``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Iterator, MutableMapping

log = logging.getLogger("featuremill.core.progress")

_STAGE_TIMES: contextvars.ContextVar[MutableMapping[str, float | None] | None] = contextvars.ContextVar(
    "featuremill_stage_times", default=None
)


@contextlib.contextmanager
def collect_stage_times(into: MutableMapping[str, float | None]) -> Iterator[None]:
    """Inside the block, stages with a ``key`` add their elapsed seconds to ``into["stage_s.<key>"]``."""
    token = _STAGE_TIMES.set(into)
    try:
        yield
    finally:
        _STAGE_TIMES.reset(token)


class StageLog:
    """What a finished stage reports: its name, elapsed seconds and optional row count."""

    def __init__(self, name: str):
        self.name = name
        self.started = time.monotonic()
        self.elapsed = 0.0
        self.rows: int | None = None

    def set_rows(self, rows: int) -> None:
        self.rows = int(rows)


@contextlib.contextmanager
def stage(name: str, spark=None, *, interval: float = 10.0, key: str | None = None) -> Iterator[StageLog]:
    """Context manager timing one step; ``spark`` enables the task-progress heartbeat.

    ``key`` records the elapsed time as ``stage_s.<key>`` in the active :func:`collect_stage_times`
    mapping (summed when a key repeats).
    """
    record = StageLog(name)
    log.info("stage %s: started", name)
    stop = threading.Event()
    thread = None
    tracker = _status_tracker(spark)
    if tracker is not None:
        thread = threading.Thread(target=_heartbeat, args=(tracker, name, record, stop, interval), daemon=True)
        thread.start()
    try:
        yield record
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=1)
        record.elapsed = time.monotonic() - record.started
        times = _STAGE_TIMES.get()
        if key and times is not None:
            metric = f"stage_s.{key}"
            times[metric] = (times.get(metric) or 0.0) + record.elapsed
        rows = f", rows={record.rows:,}" if record.rows is not None else ""
        log.info("stage %s: done%s, elapsed=%.1fs", name, rows, record.elapsed)


def _status_tracker(spark):
    if spark is None:
        return None
    try:  # classic sessions only; Spark Connect has no SparkContext
        return spark.sparkContext.statusTracker()
    except Exception:
        return None


def _heartbeat(tracker, name: str, record: StageLog, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            parts = []
            for stage_id in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage_id)
                if info is not None:
                    parts.append(f"spark stage {stage_id}: {info.numCompletedTasks}/{info.numTasks} tasks")
            elapsed = time.monotonic() - record.started
            log.info("stage %s: running, elapsed=%.0fs%s", name, elapsed, ("; " + ", ".join(parts)) if parts else "")
        except Exception:  # the heartbeat must never break a job
            return
