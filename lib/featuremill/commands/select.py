"""``featuremill select PIPELINE --training-set PATH --label COL``: rank and filter features."""

from __future__ import annotations

from featuremill.commands import emit, wrapped
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--training-set", required=True, help="training table: a Delta table or a Parquet folder")
    parser.add_argument("--label", help="label column (default selection.label)")
    parser.add_argument(
        "--features",
        help="comma-separated candidate features (default: every column but the label and selection.exclude)",
    )
    parser.add_argument(
        "--report-dir",
        help="folder for selection.html/.json and selected_features.json (default reports/<pipeline>/selection)",
    )


def run(args) -> int:
    from featuremill.pipelines.select_features import run_select

    config = load_config(args)
    spark = spark_for(config, f"featuremill-select-{config.name}")
    features = [f.strip() for f in args.features.split(",") if f.strip()] if args.features else None
    report_dir = args.report_dir or f"reports/{config.name}/selection"
    outcome = run_select(
        spark, config, training_set=args.training_set, label=args.label, report_dir=report_dir, features=features
    )
    r = outcome.result
    emit(
        f"select: label {r.label!r} ({r.task}), {r.rows:,} rows; kept {len(r.selected)} of {len(r.features)} "
        f"features; selection {outcome.selection_id}"
    )
    emit(f"  {'rank':>4}  {'feature':<28} {'decision':<8} reason")
    for f in sorted(r.features, key=lambda f: f.rank or 0):
        emit(wrapped(f"  {f.rank:>4}  {f.name:<28} {f.decision:<8} ", f.reason, indent=46))
    emit(
        f"report: {outcome.report_dir / 'selection.html'}; "
        f"kept features: {outcome.report_dir / 'selected_features.json'}"
    )
    return 0
