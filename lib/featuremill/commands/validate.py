"""``featuremill validate PIPELINE``: check a pipeline file without starting Spark.

Also compares the feature-set definitions with the lock file beside the pipeline
(:mod:`featuremill.storage.versions`); ``--update-lock`` records the current versions in it.
"""

from __future__ import annotations

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config
from featuremill.core.errors import ConfigError


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument(
        "--update-lock",
        action="store_true",
        help="record the feature-set versions and fingerprints in PIPELINE's .lock.json "
        "(refused when a locked version's definition changed: bump the version)",
    )


def run(args) -> int:
    from featuremill.storage import versions

    try:
        config = load_config(args)
    except ConfigError as exc:
        for issue in exc.issues:
            emit(str(issue))
        errors = sum(1 for i in exc.issues if i.severity == "error")
        emit(f"{args.pipeline}: {errors} error(s)")
        return 1
    for warning in config.warnings:
        emit(str(warning))
    lock_file = versions.lock_path(args.pipeline)
    try:
        lock = versions.read_lock(lock_file)
        if getattr(args, "update_lock", False):
            versions.write_lock(versions.updated_lock(config, lock, lock_file=lock_file))
            emit(f"{lock_file}: recorded {', '.join(f'{fs.name}@{fs.version}' for fs in config.feature_sets)}")
            lock = versions.read_lock(lock_file)
        lock_issues = versions.check_lock(config, lock, lock_file=lock_file)
    except ConfigError as exc:
        lock_issues = exc.issues
    for issue in lock_issues:
        emit(str(issue))
    errors = sum(1 for i in lock_issues if i.severity == "error")
    if errors:
        emit(f"{args.pipeline}: {errors} error(s)")
        return 1
    n_features = sum(len(fs.features) for fs in config.feature_sets)
    emit(
        f"{args.pipeline}: ok ({len(config.sources)} sources, {len(config.feature_sets)} feature sets, "
        f"{n_features} features; environment {config.env.name})"
    )
    return 0
