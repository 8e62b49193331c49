"""spark-submit entry point: profile a table (see featuremill.quality.profile and docs/quality.md).

    spark-submit ... jobs/profile.py conf/pipelines/demo.yaml --env emr --table validated.transactions --date 2026-09-28
"""
import sys

from featuremill.cli import main

if __name__ == "__main__":
    sys.exit(main(["profile", *sys.argv[1:]]))
