"""``featuremill fit PIPELINE --on TRAINING_SET [--label COL]``: fit and store the preprocessing state."""

from __future__ import annotations

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument(
        "--on",
        required=True,
        metavar="TRAINING_SET",
        help="training table to fit on: a Delta table or a Parquet folder",
    )
    parser.add_argument("--label", help="label column (target encoding); default preprocessing.label")
    parser.add_argument("--out", help="also write the training set transformed in training mode (Delta, overwritten)")
    parser.add_argument("--json", help="also export the fitted state as a JSON file")
    parser.add_argument(
        "--manifest",
        help="the training set's manifest, to record the stored state in "
        "(default: TRAINING_SET.manifest.json when it exists)",
    )


def run(args) -> int:
    from featuremill.pipelines.preprocess import run_fit

    config = load_config(args)
    spark = spark_for(config, f"featuremill-fit-{config.name}")
    result = run_fit(
        spark, config, training_set=args.on, label=args.label, out=args.out, json_path=args.json, manifest=args.manifest
    )
    state = result.state
    emit(
        f"fit {state.name}: version {state.version}{' (unchanged, already stored)' if result.reused else ''}; "
        f"{result.rows:,} training rows, {len(state.columns)} columns, state {state.fingerprint[:12]}"
    )
    for c in state.columns:
        steps = [s for s in ("impute", "outliers", "scale", "encode") if getattr(c, s) is not None]
        detail = ", ".join(f"{s}={getattr(c, s).strategy if s == 'impute' else getattr(c, s).method}" for s in steps)
        emit(f"  {c.column:<28} {c.kind:<11} {detail} -> {', '.join(c.output_columns)[:80]}")
    for w in state.warnings:
        emit(f"  warning: {w}")
    if result.transformed_path:
        emit(f"transformed training set: {result.transformed_path}")
    if result.manifest_path:
        emit(f"recorded in training-set manifest {result.manifest_path}")
    if result.json_path:
        emit(f"state exported to {result.json_path}")
    return 0
