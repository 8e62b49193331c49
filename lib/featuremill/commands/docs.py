"""``featuremill docs PIPELINE --out DIR``: the feature catalog as Markdown, HTML and JSON.

Definitions come from the pipeline file (no Spark needed with ``--no-lineage``); the last build
of each feature table and the training sets and models that used it come from the run log and
the model registry, read with Spark when those tables exist.
"""

from __future__ import annotations

from pathlib import Path

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--no-lineage", action="store_true", help="do not read the run log / model registry (no Spark session)"
    )


def _has_local_table(path: str) -> bool:
    """Worth starting Spark for the lineage: a URI or a metastore name (only Spark can tell), or a
    local folder holding a Delta log."""
    from featuremill.storage.names import is_table_name

    return "://" in path or is_table_name(path) or (Path(path) / "_delta_log").is_dir()


def run(args) -> int:
    from featuremill.storage.catalog import (
        build_catalog,
        catalog_json,
        read_lineage_inputs,
        render_html,
        render_markdown,
    )

    config = load_config(args)
    runs, models = [], []
    if not args.no_lineage and _has_local_table(config.tables.run_log):
        spark = spark_for(config, f"featuremill-docs-{config.name}")
        runs, models = read_lineage_inputs(spark, config)
    catalog = build_catalog(config, runs=runs, models=models)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for suffix, text in (
        (".md", render_markdown(catalog)),
        (".html", render_html(catalog)),
        (".catalog.json", catalog_json(catalog)),
    ):
        path = out / f"{config.name}{suffix}"
        path.write_text(text, encoding="utf-8")
        emit(f"wrote {path}")
    n = sum(len(fs["features"]) for fs in catalog["feature_sets"])
    emit(
        f"{n} features in {len(catalog['feature_sets'])} feature sets; lineage from {len(runs)} run-log rows"
        f" and {len(models)} registry rows"
    )
    return 0
