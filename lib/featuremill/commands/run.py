"""``featuremill run PIPELINE --job ingest|features --date D``: run one job."""

from __future__ import annotations

from featuremill.commands import emit
from featuremill.commands._common import (
    add_date_arguments,
    add_pipeline_arguments,
    load_config,
    resolve_dates,
    spark_for,
)

JOBS = ("ingest", "features")


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--job", required=True, choices=JOBS, help="which job to run")
    add_date_arguments(parser)
    parser.add_argument("--source", action="append", help="ingest only this source (repeatable)")
    parser.add_argument("--feature-set", action="append", help="build only this feature set (repeatable)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="features: compute exactly the given dates, ignoring late events landed in them",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="let an empty input range clear what earlier runs wrote for it (ingest: landing "
        "dates without files; features: dates without events)",
    )
    parser.add_argument(
        "--corrective",
        action="store_true",
        help="rewrite a run already committed from different inputs (new Delta txnVersion); "
        "without it such a re-run stops with an error instead of being skipped",
    )


def run(args) -> int:
    config = load_config(args)
    start, end = resolve_dates(args)
    if args.job == "features":
        from featuremill.storage import versions

        # A definition changed without a version bump must not reach the feature tables.
        lock_file = versions.lock_path(args.pipeline)
        versions.require_consistent(config, versions.read_lock(lock_file), lock_file=lock_file)
    spark = spark_for(config, f"featuremill-{args.job}-{config.name}")
    if args.job == "ingest":
        from featuremill.pipelines.ingest import run_ingest

        for r in run_ingest(
            spark,
            config,
            start=start,
            end=end,
            sources=args.source,
            allow_empty=args.allow_empty,
            corrective=args.corrective,
        ):
            emit(
                f"ingest {r.source}: {r.status}; read {r.rows_read}, valid {r.rows_valid}, "
                f"quarantined {r.rows_quarantined} (duplicates {r.rows_duplicate}); "
                f"validated Delta version {r.validated_version}, quarantine Delta version {r.quarantine_version}"
            )
    else:
        from featuremill.pipelines.build_features import run_features

        set_versions = {fs.name: fs.version for fs in config.feature_sets}
        for r in run_features(
            spark,
            config,
            start=start,
            end=end,
            feature_sets=args.feature_set,
            incremental=not args.full,
            corrective=args.corrective,
            allow_empty=args.allow_empty,
        ):
            emit(
                f"features {r.feature_set} (feature set version {set_versions[r.feature_set]}): {r.status}; "
                f"dates {r.compute_start}..{r.end}, events read {r.events_read}, "
                f"feature rows {r.rows_out} (inserted {r.rows_inserted}, updated {r.rows_updated}, "
                f"deleted {r.rows_deleted}); Delta table version {r.table_version}"
            )
    return 0
