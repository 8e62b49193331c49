"""spark-submit entry point: run the pipeline's whole DAG in one Spark application (see featuremill.commands.dag).

    spark-submit ... jobs/dag_run.py conf/pipelines/demo.yaml --env emr --date 2026-09-01

Jobs run in dependency order with the declared retries and timeouts; every attempt is recorded
in the run log. Used for EMR Serverless schedules, where one job run carries the whole DAG.
"""

import sys

from featuremill.cli import main

if __name__ == "__main__":
    sys.exit(main(["dag", "run", *sys.argv[1:]]))
