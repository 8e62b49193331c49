"""spark-submit entry point: the latest feature row per entity into the Feast online store
(see featuremill.serving.materialize; incremental by Delta version).

spark-submit ... jobs/materialize.py conf/pipelines/demo.yaml --env emr --repo /opt/feast/demo
"""

import sys

from featuremill.cli import main

if __name__ == "__main__":
    sys.exit(main(["materialize", *sys.argv[1:]]))
