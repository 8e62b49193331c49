"""``featuremill register-model NAME VERSION --manifest M``: record the feature versions a model used.

Writes a row to the pipeline's model registry (a Delta table, :mod:`featuremill.storage.registry`) and,
when the pipeline's lock file is at hand, the model's feature-set versions to it, so that
``featuremill validate`` warns before a change breaks the model.
"""

from __future__ import annotations

from pathlib import Path

from featuremill.commands import emit


def add_arguments(parser) -> None:
    parser.add_argument("name", metavar="NAME", help="model name")
    parser.add_argument("version", metavar="VERSION", help="model version (any text, e.g. 3 or 2026-09-28)")
    parser.add_argument("--manifest", required=True, help="the manifest of the training set the model was trained on")
    parser.add_argument("--pipeline", help="pipeline YAML (default: the file recorded in the manifest)")
    parser.add_argument("--env", help="environment (default: the one recorded in the manifest)")
    parser.add_argument("--warehouse", help="override the environment's warehouse root")
    parser.add_argument("--no-lock", action="store_true", help="do not record the model in the pipeline's lock file")


def run(args) -> int:
    from featuremill.config import load_pipeline
    from featuremill.core.errors import TrainingSetError
    from featuremill.core.session import get_spark
    from featuremill.storage import io, registry, versions
    from featuremill.storage import manifest as manifests

    pipeline_file = args.pipeline
    config = None
    if pipeline_file is None:
        # Peek at the manifest without Spark when it is a local file, to find the pipeline.
        local = Path(args.manifest)
        if local.is_file():
            recorded = manifests.loads(local.read_text(encoding="utf-8"), path=args.manifest)
            candidate = recorded["pipeline"].get("file")
            if candidate and Path(candidate).is_file():
                pipeline_file = candidate
                args.env = args.env or recorded["pipeline"].get("env")
    if pipeline_file is not None:
        overrides = {"warehouse": args.warehouse} if args.warehouse else None
        config = load_pipeline(pipeline_file, env=args.env or "local", overrides=overrides)
        spark = get_spark("featuremill-register-model", master=config.env.master, conf=dict(config.env.spark_conf))
    else:
        spark = get_spark("featuremill-register-model")
    manifest = manifests.loads(io.read_text(spark, args.manifest), path=args.manifest)
    if config is not None and config.name != manifest["pipeline"]["name"]:
        raise TrainingSetError(f"{args.manifest} is for pipeline {manifest['pipeline']['name']!r}, not {config.name!r}")
    root = (
        config.tables.root
        if config is not None
        else (
            args.warehouse.rstrip("/") + "/" + manifest["pipeline"]["name"]
            if args.warehouse
            else manifest["pipeline"]["tables_root"]
        )
    )
    path = config.tables.model_registry if config is not None else registry.registry_path(root)
    # The warehouse the registry must lie under: the pipeline's, else the one given, else the
    # manifest's own tables root (the registry is always <tables root>/model_registry).
    warehouse = config.env.root if config is not None else (args.warehouse or root)
    status = registry.register_model(
        spark,
        path,
        root=warehouse,
        model=args.name,
        version=args.version,
        manifest=manifest,
        manifest_path=args.manifest,
    )
    sets = ", ".join(f"{e['name']}@{e['version']}" for e in manifest["feature_sets"])
    emit(f"model {args.name} version {args.version}: {status} in {path} (features {sets})")
    if args.no_lock:
        return 0
    lock_file = versions.lock_path(pipeline_file) if pipeline_file else None
    lock = versions.read_lock(lock_file) if lock_file else None
    if lock is None:
        emit(
            "lock file not at hand: run `featuremill models PIPELINE --sync-lock` in the repository so that "
            "`featuremill validate` knows about this model"
        )
        return 0
    versions.write_lock(
        versions.with_model(
            lock,
            model=args.name,
            version=args.version,
            training_set=manifest["output"]["path"],
            feature_sets={e["name"]: e for e in manifest["feature_sets"]},
        )
    )
    emit(f"{lock_file}: recorded model {args.name} version {args.version} (commit it)")
    return 0
