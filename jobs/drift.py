"""spark-submit entry point: drift of a table against a stored reference; exit code 1 on alerts.

    spark-submit ... jobs/drift.py conf/pipelines/demo.yaml --env emr --table features.customer_activity \\
        --reference 2026-09-08..2026-09-21 --current 2026-09-22..2026-09-28
"""

import sys

from featuremill.cli import main

if __name__ == "__main__":
    sys.exit(main(["drift", *sys.argv[1:]]))
