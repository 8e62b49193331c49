"""spark-submit entry point: compute a feature set from its source's stream (see featuremill.streaming.job).

spark-submit --packages io.delta:delta-spark_2.13:4.0.1,org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.0 \
    jobs/stream_features.py conf/pipelines/demo.yaml --env standalone --feature-set customer_activity
"""

import sys

from featuremill.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", *sys.argv[1:]]))
