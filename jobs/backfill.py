"""spark-submit entry point: recompute a date range chunk by chunk (see featuremill.pipelines.backfill).

    spark-submit ... jobs/backfill.py conf/pipelines/demo.yaml --env standalone \
        --start 2026-09-01 --end 2026-09-28 --chunk-days 7

Re-submitting the same arguments after a failure resumes the backfill.
"""

import sys

from featuremill.cli import main

if __name__ == "__main__":
    sys.exit(main(["backfill", *sys.argv[1:]]))
