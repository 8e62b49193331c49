"""spark-submit entry point: validate raw landing partitions into Delta (see featuremill.pipelines.ingest).

spark-submit ... jobs/ingest.py conf/pipelines/demo.yaml --env standalone --date 2026-09-01
"""

import sys

from featuremill.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:], "--job", "ingest"]))
