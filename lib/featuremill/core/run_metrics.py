"""Spark execution metrics of one run: executor CPU time, input bytes, peak memory.

Every Spark job a run triggers carries a job tag (``featuremill-run-<run_id>``, set with
``SparkContext.addJobTag`` for the run's thread). At the end of the run the metrics of the
tagged jobs' stages are read from Spark's in-process status store, the data behind the Spark UI
and its REST API, kept by the driver whether or not the UI is enabled:

========================================  ====================================================
``executor_cpu_s``                        CPU time of all tasks (executor run + deserialize)
``executor_run_s``                        wall time of all tasks, summed over task slots
``input_bytes``                           bytes read from storage by the run's scans
``shuffle_write_bytes``                   bytes written to shuffle
``spill_disk_bytes``                      bytes spilled to disk
``peak_task_execution_memory_bytes``      largest execution memory (sorts, aggregations,
                                          joins) any single task of the run used
``peak_executor_heap_bytes``              largest executor JVM heap seen during the run's
                                          stages (sampled at executor heartbeats, so absent
                                          for runs shorter than the heartbeat interval)
========================================  ====================================================

Each value is ``None`` when Spark does not expose it: under Spark Connect (no SparkContext),
when the status store dropped the jobs (more than ``spark.ui.retainedJobs``/``retainedStages``
ran since), or on a Spark version whose status store API differs. Nothing here fails a run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)

METRIC_KEYS = (
    "executor_cpu_s",
    "executor_run_s",
    "input_bytes",
    "shuffle_write_bytes",
    "spill_disk_bytes",
    "peak_task_execution_memory_bytes",
    "peak_executor_heap_bytes",
)


def job_tag(run_id: str) -> str:
    return f"featuremill-run-{run_id}"


@contextlib.contextmanager
def tagged_jobs(spark, tag: str) -> Iterator[bool]:
    """Tag the Spark jobs started by this thread inside the block; yields whether tagging works."""
    sc = _context(spark)
    added = False
    if sc is None and spark is not None:
        _log_connect_once()
    if sc is not None:
        try:
            sc.addJobTag(tag)
            added = True
        except Exception:  # Spark < 3.5 or a context without job tags
            log.debug("job tags unavailable; run metrics will be empty", exc_info=True)
    try:
        yield added
    finally:
        if added:
            try:
                sc.removeJobTag(tag)
            except Exception:
                log.debug("could not remove job tag %s", tag, exc_info=True)


_connect_logged = False


def _log_connect_once() -> None:
    global _connect_logged
    if not _connect_logged:
        _connect_logged = True
        log.info(
            "no SparkContext on this client (Spark Connect): run metrics (executor CPU, input bytes, "
            "shuffle, spill, peak memory) are not available and stay empty in the run log"
        )


def _context(spark):
    if spark is None:
        return None
    try:
        return spark.sparkContext
    except Exception:  # Spark Connect
        return None


def empty_metrics() -> dict[str, float | None]:
    return dict.fromkeys(METRIC_KEYS)


def tagged_job_metrics(spark, tag: str) -> dict[str, float | None]:
    """Sum/max the stage metrics of every job carrying ``tag`` (``None`` where unavailable)."""
    sc = _context(spark)
    if sc is None:
        return empty_metrics()
    try:
        return _collect(sc, tag)
    except Exception:
        log.debug("Spark status store not readable; run metrics left empty", exc_info=True)
        return empty_metrics()


def tagged_job_count(spark, tag: str) -> int | None:
    """How many Spark jobs carrying ``tag`` the status store still holds (``None`` where unreadable).

    The store keeps the last ``spark.ui.retainedJobs`` jobs (default 1,000); a caller that counts
    more must raise that setting when it creates the session.
    """
    sc = _context(spark)
    if sc is None:
        return None
    try:
        return len(sc._jsc.sc().statusTracker().getJobIdsForTag(tag))
    except Exception:
        log.debug("Spark status tracker not readable; no job count", exc_info=True)
        return None


def _collect(sc, tag: str) -> dict[str, float | None]:
    jvm = sc._jvm
    jsc = sc._jsc.sc()
    store = jsc.statusStore()
    job_ids = list(jsc.statusTracker().getJobIdsForTag(tag))
    if not job_ids:
        return empty_metrics()
    stage_ids: set[int] = set()
    for job_id in job_ids:
        try:
            job = store.job(int(job_id))
        except Exception:  # evicted from the store
            continue
        ids = job.stageIds()
        stage_ids.update(int(ids.apply(i)) for i in range(ids.length()))
    empty_list = jvm.java.util.ArrayList()
    no_quantiles = sc._gateway.new_array(jvm.double, 0)
    max_quantile = sc._gateway.new_array(jvm.double, 1)
    max_quantile[0] = 1.0
    cpu_ns = run_ms = input_bytes = shuffle_bytes = spill_bytes = 0
    peak_task = peak_heap = 0.0
    seen = False
    for stage_id in sorted(stage_ids):
        attempts = store.stageData(stage_id, False, empty_list, False, no_quantiles)
        for a in range(attempts.length()):
            data = attempts.apply(a)
            if data.status().toString() not in ("COMPLETE", "FAILED", "ACTIVE"):
                continue  # SKIPPED (its output was reused) or PENDING: no work of its own
            seen = True
            cpu_ns += int(data.executorCpuTime()) + int(data.executorDeserializeCpuTime())
            run_ms += int(data.executorRunTime())
            input_bytes += int(data.inputBytes())
            shuffle_bytes += int(data.shuffleWriteBytes())
            spill_bytes += int(data.diskBytesSpilled())
            peaks = data.peakExecutorMetrics()
            if peaks.isDefined():
                peak_heap = max(peak_heap, float(peaks.get().getMetricValue("JVMHeapMemory")))
            summary = store.taskSummary(stage_id, data.attemptId(), max_quantile)
            if summary.isDefined():
                peak_task = max(peak_task, float(summary.get().peakExecutionMemory().apply(0)))
    if not seen:
        return empty_metrics()
    return {
        "executor_cpu_s": cpu_ns / 1e9,
        "executor_run_s": run_ms / 1e3,
        "input_bytes": float(input_bytes),
        "shuffle_write_bytes": float(shuffle_bytes),
        "spill_disk_bytes": float(spill_bytes),
        "peak_task_execution_memory_bytes": peak_task,
        # zero means no heartbeat sampled the heap during the run, not an empty heap
        "peak_executor_heap_bytes": peak_heap if peak_heap > 0 else None,
    }
