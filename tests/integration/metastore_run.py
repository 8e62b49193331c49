"""The demo pipeline's jobs in one process, for an environment given on the command line.

``python -m tests.integration.metastore_run PIPELINE ENV SPINE EXPORT`` runs, in one Spark
session built from the environment (so ``spark.sql.catalogImplementation: hive`` in its
``spark:`` block takes effect): ingest and features for the first two days (run A), ingest and
features for the third day (one feature set, the third day's ingest of its source only), the replay of run A's ``customer_activity``, a training set through
the CLI (``featuremill training-set``), the Feast definitions and, by name only, a CLI re-run
of the third day's ingest (``featuremill run --job ingest``). Every table it then finds in the
environment's table namespace (``tables:``) is copied to ``EXPORT/<table>`` as Parquet, plus
``EXPORT/features_at_run_a``: the feature table time-travelled to run A's version. The last line
printed is a JSON summary. :mod:`tests.integration.test_metastore_names` runs this in a
subprocess (catalogImplementation is a static conf: the test session cannot switch to Hive) and
runs the same steps by path in the test session (:func:`run_steps`) as the reference.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

START, DAY2, END = dt.date(2026, 9, 1), dt.date(2026, 9, 2), dt.date(2026, 9, 3)
FEATURE_SET = "customer_activity"
SOURCE = "transactions"


def run_steps(spark, pipeline: str, env: str, spine: str, training_out: str) -> dict:
    """The jobs, by the library's own entry points; returns what the comparison needs."""
    from featuremill import cli
    from featuremill.config import load_pipeline
    from featuremill.pipelines.build_features import run_features
    from featuremill.pipelines.ingest import run_ingest
    from featuremill.pipelines.replay import replay_run
    from featuremill.serving.repo import feature_set_view, render_definitions
    from featuremill.storage import io

    config = load_pipeline(pipeline, env=env)
    # one feature set (the one that joins both dimensions) and, on the third day, only its source:
    # every kind of table and step is named, at the cost of fewer Spark jobs
    run_ingest(spark, config, start=START, end=DAY2)
    [run_a] = run_features(spark, config, start=START, end=DAY2, feature_sets=[FEATURE_SET])
    features = config.tables.features(FEATURE_SET)
    version_a = io.delta_version(spark, features)
    run_ingest(spark, config, start=END, end=END, sources=[SOURCE])
    run_features(spark, config, start=END, end=END, feature_sets=[FEATURE_SET])
    [replayed] = replay_run(spark, config, run_id=run_a.run_id, feature_sets=[FEATURE_SET])
    code = cli.main(
        ["training-set", pipeline, "--env", env, "--spine", spine, "--features", FEATURE_SET, "--out", training_out]
        + ["--include-warming-up"]  # three days of data: every 30-day window is still warming up
    )
    views = [feature_set_view(spark, config, config.feature_set(FEATURE_SET))]
    definitions = render_definitions(config, views)
    return {
        "config": config,
        "features": features,
        "version_a": version_a,
        "version_now": io.delta_version(spark, features),
        "replay_output": replayed.output_path,
        "replay_identical": bool(replayed.comparison and replayed.comparison.identical),
        "training_exit": code,
        "queries": [line.strip() for line in definitions.splitlines() if line.strip().startswith("query=")],
    }


def main(argv: list[str]) -> int:
    pipeline, env, spine, export = argv
    from featuremill import cli
    from featuremill.config import load_pipeline
    from featuremill.core.session import get_spark
    from featuremill.storage import io
    from featuremill.storage.names import table_location

    config = load_pipeline(pipeline, env=env)
    namespace = config.env.tables_namespace
    spark = get_spark("featuremill-metastore-test", master=config.env.master, conf=dict(config.env.spark_conf))
    steps = run_steps(spark, pipeline, env, spine, f"{namespace}.demo__training__spine")
    tables = sorted(r["tableName"] for r in spark.sql(f"SHOW TABLES IN {namespace}").collect())
    locations = {}
    for table in tables:
        name = f"{namespace}.{table}"
        locations[table] = table_location(spark, name)
        spark.read.table(name).write.parquet(f"{export}/{table}")
    io.read_delta(spark, steps["features"], version=steps["version_a"]).write.parquet(f"{export}/features_at_run_a")
    # then, after the export (so the run log compared is the steps' own), the CLI by name in the
    # same JVM (Derby's metastore admits one at a time): re-running the last day's ingest must
    # change no table and add the run to the run log
    names = {t: f"{namespace}.demo__{t}" for t in ("validated__transactions", "quarantine", "run_log")}
    before = {t: io.delta_version(spark, n) for t, n in names.items()}
    rerun = cli.main(
        ["run", pipeline, "--env", env, "--start", END.isoformat(), "--end", END.isoformat()]
        + ["--job", "ingest", "--source", SOURCE]
    )
    after = {t: io.delta_version(spark, n) for t, n in names.items()}
    summary = {
        "catalog": spark.conf.get("spark.sql.catalogImplementation"),
        "tables": tables,
        "locations": locations,
        "features": steps["features"],
        "version_a": steps["version_a"],
        "version_now": steps["version_now"],
        "replay_output": steps["replay_output"],
        "replay_identical": steps["replay_identical"],
        "training_exit": steps["training_exit"],
        "queries": steps["queries"],
        "rerun_exit": rerun,
        "versions_before_rerun": before,
        "versions_after_rerun": after,
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
