"""``featuremill training-set PIPELINE``: build a point-in-time-correct training set, or rebuild one.

    featuremill training-set conf/pipelines/demo.yaml --spine labels.parquet \\
        --features customer_activity,product_demand@1 --out warehouse/demo/training/churn_v1 --ttl 30d --known-at
    featuremill training-set conf/pipelines/demo.yaml --manifest warehouse/demo/training/churn_v1.manifest.json \\
        --out warehouse/demo/training/churn_v1_rebuilt
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--spine", help="the label table: a Delta table, Parquet, CSV (with header) or JSON")
    parser.add_argument(
        "--spine-format",
        choices=("delta", "parquet", "csv", "json"),
        help="format of --spine (default: Delta if it is one, else from the extension, else Parquet)",
    )
    parser.add_argument("--time-column", help="the spine's label time column (default: its only timestamp column)")
    parser.add_argument("--features", help="feature sets to attach: NAME[@VERSION],...")
    parser.add_argument("--out", required=True, help="output Delta table (replaced if it exists)")
    parser.add_argument("--manifest-out", help="where to write the manifest (default OUT.manifest.json)")
    parser.add_argument(
        "--strict", action="store_true", help="use feature rows strictly before the label time (default: at or before)"
    )
    parser.add_argument("--ttl", help="maximum age of a feature row, e.g. 7d (an age of exactly TTL is too old)")
    parser.add_argument(
        "--known-at", action="store_true", help="use a feature row only once it was known (its _known_at <= label time)"
    )
    parser.add_argument(
        "--keep-internal-columns",
        action="store_true",
        help="debugging: also write each feature set's _<set>_event_time (and, with --known-at, _<set>_known_at) "
        "of the matched row; off by default, as _-prefixed columns are internal",
    )
    parser.add_argument(
        "--include-warming-up",
        action="store_true",
        help="keep spine rows whose feature windows reach before the feature table's first event date "
        "(left out by default)",
    )
    parser.add_argument(
        "--strategy",
        choices=("auto", "window", "broadcast"),
        default="auto",
        help="join strategy; the result is identical, only speed differs (default auto)",
    )
    parser.add_argument(
        "--dimension-columns",
        metavar="COLS",
        help="entity-level dimension columns of the requested feature sets to attach, as of each label time "
        "(from the dimension's history): COLUMN or FEATURE_SET.COLUMN, comma-separated, e.g. segment,country",
    )
    parser.add_argument(
        "--selected-features",
        metavar="FILE",
        help="keep only the features `featuremill select` kept (its selected_features.json, or the "
        "report folder holding it); recorded in the manifest",
    )
    parser.add_argument(
        "--manifest",
        help="rebuild the training set this manifest describes (time travel); "
        "--spine/--features/--strict/--ttl/--known-at/--include-warming-up/--dimension-columns come from the manifest",
    )


def absolute(path: str | None, *, names: bool = False) -> str | None:
    """Local paths made absolute (a manifest must not depend on the current folder); URIs unchanged.

    ``names`` (the environment names its tables, ``tables:``): a metastore table name
    (``schema.table``) is kept too, unless a file or folder of that name exists here
    (``labels.csv`` in the current folder stays a file).
    """
    import os
    import re

    from featuremill.storage import io

    if path is None or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
        return path
    if names and io.is_table_name(path) and not os.path.exists(path):
        return path
    return os.path.abspath(path)


def git_commit() -> str | None:
    """The featuremill checkout's commit (``+dirty`` with local changes), or None when not in git."""
    import featuremill

    where = str(Path(featuremill.__file__).resolve().parent)
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run(args) -> int:
    from featuremill.config import parse_duration
    from featuremill.core.errors import TrainingSetError
    from featuremill.pipelines import training_set as job
    from featuremill.storage import io, versions
    from featuremill.storage import manifest as manifests

    config = load_config(args)
    named = config.env.tables_namespace is not None
    args.spine, args.out = absolute(args.spine, names=named), absolute(args.out, names=named)
    args.manifest_out = absolute(args.manifest_out)
    if args.manifest:
        given = [
            flag
            for flag, value in (
                ("--spine", args.spine),
                ("--features", args.features),
                ("--ttl", args.ttl),
                ("--strict", args.strict),
                ("--known-at", args.known_at),
                ("--keep-internal-columns", args.keep_internal_columns),
                ("--include-warming-up", args.include_warming_up),
                ("--selected-features", args.selected_features),
                ("--dimension-columns", args.dimension_columns),
            )
            if value
        ]
        if given:
            raise TrainingSetError(f"{', '.join(given)}: these come from the manifest when rebuilding with --manifest")
        spark = spark_for(config, f"featuremill-training-set-{config.name}")
        source = manifests.loads(io.read_text(spark, args.manifest), path=args.manifest)
        result = job.rebuild_training_set(
            spark,
            config,
            source,
            manifest_path=args.manifest,
            out=args.out,
            manifest_out=args.manifest_out,
            strategy=None if args.strategy == "auto" else args.strategy,
            git_commit=git_commit(),
        )
        emit(
            f"training set rebuilt: {result.out} ({result.rows:,} rows, {result.strategy} strategy), identical to "
            f"the one in {args.manifest}; manifest {result.manifest_path}"
        )
        return 0
    if not args.spine or not args.features:
        raise TrainingSetError("give --spine and --features (or --manifest to rebuild)")
    try:
        ttl = parse_duration(args.ttl) if args.ttl else None
    except ValueError as exc:
        raise TrainingSetError(f"--ttl: {exc}") from None
    selected = None
    if args.selected_features:
        from featuremill.pipelines.select_features import load_selected_features

        args.selected_features = absolute(args.selected_features)
        selected = tuple(load_selected_features(args.selected_features))
    options = job.TrainingSetOptions(
        spine=args.spine,
        features=job.parse_feature_requests(args.features),
        out=args.out,
        spine_format=args.spine_format,
        spine_time=args.time_column,
        manifest_out=args.manifest_out,
        strict=args.strict,
        ttl_seconds=ttl,
        known_at=args.known_at,
        strategy=args.strategy,
        keep_internal_columns=args.keep_internal_columns,
        selected_features=selected,
        selected_from=args.selected_features,
        include_warming_up=args.include_warming_up,
        dimension_columns=job.parse_dimension_columns(args.dimension_columns) if args.dimension_columns else (),
    )
    lock_file = versions.lock_path(args.pipeline)
    lock = versions.read_lock(lock_file)
    spark = spark_for(config, f"featuremill-training-set-{config.name}")
    result = job.build_training_set(
        spark, config, options, lock=lock, lock_file=str(lock_file), git_commit=git_commit(), env_name=args.env
    )
    sets = ", ".join(
        f"{e['name']}@{e['version']} (table version {e['delta_version']})" for e in result.manifest["feature_sets"]
    )
    rows = (
        f"{result.rows:,} rows = spine rows"
        if not result.warming_up_excluded
        else f"{result.rows:,} rows = spine rows less {result.warming_up_excluded:,} with windows still warming up "
        "(--include-warming-up keeps them)"
    )
    emit(f"training set: {result.out} ({rows}; {result.strategy} strategy) from {sets}")
    emit(f"manifest: {result.manifest_path}")
    return 0
