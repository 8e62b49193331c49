"""``featuremill models PIPELINE``: list registered models and whether the pipeline still serves them."""

from __future__ import annotations

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument(
        "--sync-lock", action="store_true", help="copy every model's feature-set versions into the pipeline's lock file"
    )


def run(args) -> int:
    from featuremill.storage import registry, versions

    config = load_config(args)
    spark = spark_for(config, f"featuremill-models-{config.name}")
    path = config.tables.model_registry
    models = registry.read_models(spark, path)
    if not models:
        emit(f"no models registered in {path}")
    else:
        header = ("model", "version", "registered (UTC)", "feature sets", "training set", "status")
        rows = []
        for m in models:
            problems = registry.compatibility(config, m["feature_sets"] or {})
            rows.append(
                (
                    m["model"],
                    m["model_version"],
                    m["registered_at"].strftime("%Y-%m-%d %H:%M:%S"),
                    ", ".join(f"{k}@{v}" for k, v in sorted((m["feature_sets"] or {}).items())),
                    f"{m['training_set']} (v{m['training_set_version']})",
                    "ok" if not problems else "BREAKS: " + "; ".join(problems),
                )
            )
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        for r in [header] + rows:
            emit("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    if args.sync_lock:
        lock_file = versions.lock_path(args.pipeline)
        lock = versions.read_lock(lock_file)
        if lock is None:
            from featuremill.core.errors import ConfigError, ConfigIssue

            raise ConfigError(
                [
                    ConfigIssue(
                        str(lock_file),
                        "",
                        f"no lock file: create it first with `featuremill validate {args.pipeline} --update-lock`",
                    )
                ]
            )
        versions.write_lock(versions.with_models(lock, registry.lock_models(models)))
        emit(f"{lock_file}: models section now lists {len(models)} model version(s)")
    return 0
