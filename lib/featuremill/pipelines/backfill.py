"""Backfill: recompute a historical range chunk by chunk, resumably, each chunk a recorded run.

``run_backfill(start=D1, end=D2, job="all", chunk_days=N)`` is the sequence of runs a daily
schedule would have made, in chunks of ``N`` landing dates:

1. **ingest phase** (``job`` ingest or all): dimension snapshots once for ``[D1, D2]``, then each
   event source chunk by chunk (``replaceWhere`` on the chunk's landing dates);
2. **features phase** (``job`` features or all): each chunk as ``run --job features --start a
   --end b``: the read widens by the largest window's lookback, late events that landed in the
   chunk pull the recomputation back to their event date, and the MERGE replaces exactly the
   recomputed dates.

Ingest runs completely before features so every features chunk sees the same validated
tables, whatever chunk the backfill was interrupted in.

**Resuming.** Every chunk run carries the backfill's id (a hash of the pipeline, the job, the
range, the chunk size, the targets, their definitions and ``corrective``) in the ledger. Running
the same backfill again skips each (chunk, target) that the ledger records as ``succeeded`` or
``skipped_empty`` for that id since the last *completed* attempt of the same backfill, and runs
the rest. A chunk killed after its Delta commit but before its ledger row is run again and finds
its commit (exactly-once, :mod:`featuremill.storage.exactly_once`): it writes nothing and records
success. After a completed attempt, the same command starts a new attempt, in which unchanged
chunks are no-ops (already committed) and changed ones need ``corrective``. ``restart`` ignores
an unfinished attempt's progress.

**Empty chunks** write nothing (``skipped_empty``): ingest leaves earlier data of a landing date
alone when no files are there, features leave feature rows alone when no events are dated in
the chunk. ``allow_empty`` lets them clear instead.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from featuremill.config import PipelineConfig
from featuremill.core.session import ensure_timezone
from featuremill.pipelines.common import recorded_run
from featuremill.storage.exactly_once import digest, feature_set_definition, source_definition
from featuremill.storage.ledger import read_runs

log = logging.getLogger(__name__)

JOBS = ("ingest", "features", "all")
DONE_STATUSES = ("succeeded", "skipped_empty")


@dataclass(frozen=True)
class ChunkOutcome:
    """What the backfill did with one (job, target, chunk)."""

    job: str
    target: str
    start: dt.date
    end: dt.date
    outcome: str  # "ran", "already_committed", "skipped_empty", "done_earlier"
    run_id: str | None = None


@dataclass
class BackfillResult:
    backfill_id: str
    run_id: str
    chunks: list[tuple[dt.date, dt.date]]
    outcomes: list[ChunkOutcome] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)


def chunk_ranges(start: dt.date, end: dt.date, chunk_days: int) -> list[tuple[dt.date, dt.date]]:
    """``[start, end]`` cut into consecutive inclusive ranges of ``chunk_days`` days (the last may be shorter)."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    if chunk_days < 1:
        raise ValueError(f"chunk size must be at least one day, got {chunk_days}")
    out = []
    day = start
    while day <= end:
        last = min(day + dt.timedelta(days=chunk_days - 1), end)
        out.append((day, last))
        day = last + dt.timedelta(days=1)
    return out


def backfill_id(
    config: PipelineConfig,
    *,
    job: str,
    start: dt.date,
    end: dt.date,
    chunk_days: int,
    sources: list[str],
    feature_sets: list[str],
    corrective: bool,
) -> str:
    """Identity of a backfill command: same arguments and definitions, same id (so it can resume)."""
    return digest(
        {
            "pipeline": config.name,
            "job": job,
            "start": start,
            "end": end,
            "chunk_days": chunk_days,
            "sources": {s: source_definition(config, config.source(s)) for s in sorted(sources)},
            "feature_sets": {f: feature_set_definition(config, config.feature_set(f)) for f in sorted(feature_sets)},
            "corrective": corrective,
        }
    )[:16]


def completed_chunks(spark, config: PipelineConfig, backfill: str) -> set[tuple[str, str, dt.date, dt.date]]:
    """(job, target, start, end) the current attempt of ``backfill`` already finished.

    The current attempt is everything after the latest ``backfill`` summary row with status
    ``succeeded`` for this id (a completed attempt); a killed or failed attempt has none.
    Reads a few ledger columns filtered to this id.
    """
    from pyspark.sql import functions as F

    from featuremill.storage import io

    if not io.is_delta_table(spark, config.tables.run_log):
        return set()
    runs = read_runs(spark, config.tables.run_log, pipeline=config.name)
    if "backfill_id" not in runs.columns:
        return set()
    mine = (
        runs.where(F.col("backfill_id") == F.lit(backfill))
        .select("job", "target", "start_date", "end_date", "status", "started_at", "finished_at")
        .collect()
    )
    completed_at = max(
        (r["finished_at"] for r in mine if r["job"] == "backfill" and r["status"] == "succeeded"), default=None
    )
    return {
        (r["job"], r["target"], r["start_date"], r["end_date"])
        for r in mine
        if r["job"] in ("ingest", "features")
        and r["status"] in DONE_STATUSES
        and (completed_at is None or r["started_at"] > completed_at)
    }


def run_backfill(
    spark,
    config: PipelineConfig,
    *,
    start: dt.date,
    end: dt.date,
    job: str = "all",
    chunk_days: int = 1,
    sources: list[str] | None = None,
    feature_sets: list[str] | None = None,
    corrective: bool = False,
    restart: bool = False,
    allow_empty: bool = False,
    on_chunk: Callable[[ChunkOutcome, int, int], None] | None = None,
) -> BackfillResult:
    """Recompute ``[start, end]`` in chunks of ``chunk_days`` (see the module docstring).

    ``sources``/``feature_sets`` restrict the targets (default: all); ``on_chunk(outcome, i, n)``
    is called after each chunk target (progress reporting).
    """
    from featuremill.pipelines.build_features import run_features
    from featuremill.pipelines.ingest import run_ingest

    if job not in JOBS:
        raise ValueError(f"job must be one of {', '.join(JOBS)}, got {job!r}")
    ensure_timezone(spark, config.timezone)
    chunks = chunk_ranges(start, end, chunk_days)
    chosen_sources = list(sources) if sources else [s.name for s in config.sources]
    for name in chosen_sources:
        config.source(name)  # KeyError names an unknown source before anything runs
    chosen_sets = list(feature_sets) if feature_sets else [f.name for f in config.feature_sets]
    for name in chosen_sets:
        config.feature_set(name)
    do_ingest, do_features = job in ("ingest", "all"), job in ("features", "all")
    bid = backfill_id(
        config,
        job=job,
        start=start,
        end=end,
        chunk_days=chunk_days,
        sources=chosen_sources if do_ingest else [],
        feature_sets=chosen_sets if do_features else [],
        corrective=corrective,
    )
    done = set() if restart else completed_chunks(spark, config, bid)
    dims = [s for s in chosen_sources if config.source(s).kind == "dimension"] if do_ingest else []
    events = [s for s in chosen_sources if config.source(s).kind == "events"] if do_ingest else []
    plan: list[tuple[str, dt.date, dt.date, list[str]]] = []
    if dims:
        plan.append(("ingest", start, end, dims))
    if events:
        plan.extend(("ingest", a, b, events) for a, b in chunks)
    if do_features:
        plan.extend(("features", a, b, chosen_sets) for a, b in chunks)
    total = sum(len(targets) for *_, targets in plan)
    log.info(
        "backfill %s: %s %s..%s in %d chunk(s) of %d day(s): %d chunk target(s), %d done by an earlier attempt",
        bid,
        job,
        start,
        end,
        len(chunks),
        chunk_days,
        total,
        sum(1 for j, a, b, ts in plan for t in ts if (j, t, a, b) in done),
    )

    with recorded_run(spark, config, job="backfill", target=job, start=start, end=end, backfill_id=bid) as record:
        result = BackfillResult(backfill_id=bid, run_id=record.run_id, chunks=chunks)
        record.details = {
            "chunk_days": chunk_days,
            "chunks": len(chunks),
            "corrective": corrective,
            "restart": restart,
            "sources": chosen_sources if do_ingest else [],
            "feature_sets": chosen_sets if do_features else [],
        }
        index = 0
        for step_job, a, b, targets in plan:
            todo = [t for t in targets if (step_job, t, a, b) not in done]
            for t in targets:
                if t not in todo:
                    index += 1
                    outcome = ChunkOutcome(step_job, t, a, b, "done_earlier")
                    result.outcomes.append(outcome)
                    log.info("backfill %s: %s %s %s..%s done by an earlier attempt; skipped", bid, step_job, t, a, b)
                    if on_chunk:
                        on_chunk(outcome, index, total)
            if not todo:
                continue
            log.info("backfill %s: %s %s..%s for %s", bid, step_job, a, b, ", ".join(todo))
            if step_job == "ingest":
                results = run_ingest(
                    spark,
                    config,
                    start=a,
                    end=b,
                    sources=todo,
                    allow_empty=allow_empty,
                    corrective=corrective,
                    backfill_id=bid,
                )
                pairs = [(r.source, r.status, r.run_id) for r in results]
            else:
                results = run_features(
                    spark,
                    config,
                    start=a,
                    end=b,
                    feature_sets=todo,
                    corrective=corrective,
                    allow_empty=allow_empty,
                    backfill_id=bid,
                )
                pairs = [(r.feature_set, r.status, r.run_id) for r in results]
            for target, status, run_id in pairs:
                index += 1
                outcome = ChunkOutcome(step_job, target, a, b, "ran" if status == "succeeded" else status, run_id)
                result.outcomes.append(outcome)
                if on_chunk:
                    on_chunk(outcome, index, total)
        record.details.update(
            {k: result.count(k) for k in ("ran", "already_committed", "skipped_empty", "done_earlier")}
        )
        record.rows_written = 0
    return result
