"""Progress logging for long steps: stage name, rows and elapsed time.

:func:`stage` logs when a step starts and ends. While a step runs, a daemon thread reads
Spark's status tracker every few seconds and logs the active Spark stages' task progress, so a
user watching a long run sees it advance. It stops with the step. Nothing here prints.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Iterator

log = logging.getLogger("featuremill.progress")


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
def stage(name: str, spark=None, *, interval: float = 10.0) -> Iterator[StageLog]:
    """Context manager timing one step; ``spark`` enables the task-progress heartbeat."""
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
