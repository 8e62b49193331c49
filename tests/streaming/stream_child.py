"""A stream driver for the SIGKILL tests: ``python -m tests.streaming.stream_child PIPELINE STAGE:BATCH``.

Runs the pipeline's ``activity`` stream with ``--available-now`` semantics in its own Spark
application and kills itself with SIGKILL (no clean-up of any kind) when micro-batch ``BATCH``
reaches ``STAGE``: ``classified`` (before any Delta write), ``quarantine`` / ``validated`` /
``features`` (right after that Delta commit; after ``features`` only the checkpoint's commit is
left).
"""

from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str]) -> int:
    pipeline, crash = argv[:2]
    stage, _, batch = crash.partition(":")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from featuremill.config import load_pipeline
    from featuremill.core.session import get_spark
    from featuremill.streaming.job import local_conf, run_stream

    config = load_pipeline(pipeline, env="local")
    conf = local_conf(dict(config.env.spark_conf))
    spark = get_spark("featuremill-stream-child", master=config.env.master, conf=conf)

    def hook(reached: str, batch_id: int) -> None:
        print(f"REACHED {reached} {batch_id}", flush=True)
        if reached == stage and batch_id == int(batch):
            print(f"CRASH {reached} {batch_id}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    run_stream(spark, config, feature_set="activity", available_now=True, hook=hook)
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
