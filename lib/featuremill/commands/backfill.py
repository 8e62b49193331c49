"""``featuremill backfill PIPELINE --start D1 --end D2 [--job ingest|features|all] [--chunk-days N]``.

Recompute a historical range chunk by chunk, each chunk a recorded run; re-running the same
command after a failure or a kill resumes where it stopped (see
:mod:`featuremill.pipelines.backfill` and docs/reliability.md).
"""

from __future__ import annotations

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for

#: how each chunk outcome is printed (the same words as the closing summary line)
OUTCOME_LABELS = {
    "ran": "ran",
    "already_committed": "already committed",
    "skipped_empty": "empty",
    "done_earlier": "done by an earlier attempt",
}


def add_arguments(parser) -> None:
    from featuremill.commands._common import _date

    add_pipeline_arguments(parser)
    parser.add_argument("--start", type=_date, required=True, help="first landing date, YYYY-MM-DD")
    parser.add_argument("--end", type=_date, required=True, help="last landing date (inclusive), YYYY-MM-DD")
    parser.add_argument(
        "--job",
        choices=("ingest", "features", "all"),
        default="all",
        help="which jobs to backfill (default all: ingest every chunk, then features)",
    )
    parser.add_argument("--chunk-days", type=int, default=1, help="landing dates per chunk (default 1)")
    parser.add_argument("--source", action="append", help="ingest only this source (repeatable)")
    parser.add_argument("--feature-set", action="append", help="build only this feature set (repeatable)")
    parser.add_argument(
        "--corrective",
        action="store_true",
        help="rewrite chunks already committed from different inputs (new Delta txnVersion)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="ignore the progress of an unfinished earlier attempt of the same backfill",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="let chunks without input clear what earlier runs wrote for their dates",
    )


def run(args) -> int:
    from featuremill.pipelines.backfill import run_backfill

    config = load_config(args)
    if args.end < args.start:
        raise SystemExit(f"--end {args.end} is before --start {args.start}")
    if args.chunk_days < 1:
        raise SystemExit("--chunk-days must be at least 1")
    spark = spark_for(config, f"featuremill-backfill-{config.name}")

    def progress(outcome, index, total) -> None:
        emit(
            f"[{index}/{total}] {outcome.job} {outcome.target} {outcome.start}..{outcome.end}: "
            f"{OUTCOME_LABELS.get(outcome.outcome, outcome.outcome)}"
            + (f" (run {outcome.run_id[:12]})" if outcome.run_id else "")
        )

    result = run_backfill(
        spark,
        config,
        start=args.start,
        end=args.end,
        job=args.job,
        chunk_days=args.chunk_days,
        sources=args.source,
        feature_sets=args.feature_set,
        corrective=args.corrective,
        restart=args.restart,
        allow_empty=args.allow_empty,
        on_chunk=progress,
    )
    emit(
        f"backfill {result.backfill_id} ({args.job} {args.start}..{args.end}, {len(result.chunks)} chunk(s) of "
        f"{args.chunk_days} day(s)): {result.count('ran')} ran, {result.count('already_committed')} already "
        f"committed, {result.count('skipped_empty')} empty, {result.count('done_earlier')} done by an earlier "
        "attempt"
    )
    return 0
