"""``featuremill validate PIPELINE``: check a pipeline file without starting Spark."""

from __future__ import annotations

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config
from featuremill.errors import ConfigError


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)


def run(args) -> int:
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
    n_features = sum(len(fs.features) for fs in config.feature_sets)
    emit(f"{args.pipeline}: ok ({len(config.sources)} sources, {len(config.feature_sets)} feature sets, "
         f"{n_features} features; environment {config.env.name})")
    return 0
