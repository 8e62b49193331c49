"""spark-submit entry point: profile a table (see featuremill.quality.profile and docs/quality.md).

Not named ``profile.py``: spark-submit puts this folder first on ``sys.path``, where that name
would shadow the standard library's ``profile`` module (imported by PySpark) for every job here.

    spark-submit ... jobs/profile_table.py conf/pipelines/demo.yaml --env emr \
        --table validated.transactions --date 2026-09-28
"""

import sys

from featuremill.cli import main

if __name__ == "__main__":
    sys.exit(main(["profile", *sys.argv[1:]]))
