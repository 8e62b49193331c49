"""``featuremill feast-repo PIPELINE --out DIR [--apply]``: write a Feast repository from the pipeline."""

from __future__ import annotations

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder of the Feast repository (created)")
    parser.add_argument(
        "--ttl",
        default=None,
        metavar="DURATION",
        help="feature views' TTL, e.g. 30d (default: none, like featuremill's training sets; see docs/serving.md)",
    )
    parser.add_argument(
        "--no-preprocessed", action="store_true", help="leave out the views over preprocessed/<set> tables"
    )
    parser.add_argument(
        "--apply", action="store_true", help="apply it to its registry afterwards (Feast's SDK, in this Spark session)"
    )


def run(args) -> int:
    from featuremill.config import parse_duration
    from featuremill.serving import feast_cli
    from featuremill.serving.repo import render_repository, repository_views, write_repository

    ttl = 0
    if args.ttl:
        try:
            ttl = parse_duration(args.ttl)
        except ValueError as exc:
            raise SystemExit(f"--ttl: {exc}") from None
    config = load_config(args)
    spark = spark_for(config, f"featuremill-feast-repo-{config.name}")
    views = repository_views(spark, config, preprocessed=not args.no_preprocessed)
    changed = write_repository(render_repository(config, views, ttl_seconds=ttl), args.out)
    emit(
        f"feast repository {args.out}: {len(views)} feature views ({', '.join(v.name for v in views)}), "
        f"online store {config.env.online_store.describe}; "
        + (f"changed: {', '.join(changed)}" if changed else "unchanged")
    )
    if args.apply:
        applied = feast_cli.apply_in_process(spark, args.out, pipeline=config.name)
        emit(f"applied to the registry of {args.out}: {', '.join(applied)}")
    return 0
