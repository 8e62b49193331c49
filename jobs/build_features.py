"""spark-submit entry point: compute window features into Delta (see featuremill.pipelines.build_features).

spark-submit ... jobs/build_features.py conf/pipelines/demo.yaml --env standalone --date 2026-09-01
"""

import sys

from featuremill.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:], "--job", "features"]))
