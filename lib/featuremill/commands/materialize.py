"""``featuremill materialize PIPELINE --repo DIR``: the latest row per entity into Feast's online store."""

from __future__ import annotations

import os
import sys

from featuremill.commands import emit
from featuremill.commands._common import add_date_arguments, add_pipeline_arguments, load_config, spark_for


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument(
        "--repo", required=True, metavar="DIR", help="the Feast repository written by `featuremill feast-repo`"
    )
    parser.add_argument("--view", action="append", metavar="NAME", help="only this feature view (repeatable)")
    parser.add_argument(
        "--full", action="store_true", help="write every entity, not only those changed since the last run"
    )
    parser.add_argument("--batch-rows", type=int, default=1000, help="rows per online-store write (default 1000)")
    # DAG nodes pass the run date: materialization always serves the tables' latest versions, so
    # the date only labels the run.
    add_date_arguments(parser, required=False)


def run(args) -> int:
    from featuremill.serving.materialize import materialize

    config = load_config(args)
    # the writer runs Python on the executors: in local mode they must be this interpreter (with
    # Feast installed); spark-submit and clusters bring their own setting
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = spark_for(config, f"featuremill-materialize-{config.name}")
    results = materialize(spark, config, args.repo, views=args.view, full=args.full, batch_rows=args.batch_rows)
    methods = {"incremental_cdf": "change data feed", "incremental": "version diff"}
    for r in results:
        mode = "incremental" if r.mode in methods else r.mode
        since = f" since version {r.from_version} ({methods[r.mode]})" if r.mode in methods else ""
        vanished = f"; {r.vanished} changed entities without a row kept their stored vectors" if r.vanished else ""
        emit(
            f"materialize {r.view}: {mode}{since}, Delta version {r.table_version}, "
            f"{r.entities} entities written to {config.env.online_store.describe}{vanished}"
        )
    return 0
