"""``featuremill apply PIPELINE --on TABLE --out PATH``: apply a stored preprocessing state to a table."""

from __future__ import annotations

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--on", required=True, metavar="TABLE", help="Delta table or Parquet folder to transform")
    parser.add_argument("--out", required=True, help="output Delta table (overwritten)")
    parser.add_argument(
        "--mode",
        choices=("serving", "training"),
        default="serving",
        help="training: out-of-fold target encoding for the rows the state was fitted on; "
        "serving (default): full-data statistics",
    )
    parser.add_argument("--state-version", type=int, help="fitted-state version (default: the latest)")


def run(args) -> int:
    from featuremill.pipelines.preprocess import run_apply

    config = load_config(args)
    spark = spark_for(config, f"featuremill-apply-{config.name}")
    state, version = run_apply(spark, config, table=args.on, out=args.out, mode=args.mode, version=args.state_version)
    emit(f"apply {state.name} v{state.version} ({args.mode}): {args.on} -> {args.out} (Delta version {version})")
    return 0
