"""A stream driver for the fault tests: ``python -m tests.streaming.stream_child PIPELINE STAGE:BATCH``.

Runs the pipeline's ``activity`` stream with ``--available-now`` semantics in its own Spark
application and kills itself with SIGKILL (no clean-up of any kind) when micro-batch ``BATCH``
reaches ``STAGE``: ``classified`` (before any Delta write), ``quarantine`` / ``validated`` /
``features`` (right after that Delta commit; after ``features`` only the checkpoint's commit is
left).

``broker-restart:BATCH`` instead stops the Kafka broker (``scripts/kafka.sh stop``) when
micro-batch ``BATCH`` has read its records and is about to write, and starts it again on the same
storage ``BROKER_DOWN_S`` seconds later while the query goes on; it prints ``DONE`` when the query
finished, or ``FAILED <error>`` (exit 3) when it stopped with an error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

BROKER_DOWN_S = 5.0
KAFKA_SH = str(Path(__file__).resolve().parents[2] / "scripts" / "kafka.sh")


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

    restarter: list[threading.Thread] = []

    def restart_broker() -> None:
        time.sleep(BROKER_DOWN_S)
        subprocess.run([KAFKA_SH, "start"], env=dict(os.environ, KAFKA_KEEP_STATE="1"), check=True, timeout=180)
        print("BROKER STARTED", flush=True)

    def hook(reached: str, batch_id: int) -> None:
        print(f"REACHED {reached} {batch_id}", flush=True)
        if stage == "broker-restart":
            if reached == "classified" and batch_id == int(batch) and not restarter:
                subprocess.run([KAFKA_SH, "stop"], check=True, timeout=60)
                print(f"BROKER STOPPED {batch_id}", flush=True)
                restarter.append(threading.Thread(target=restart_broker))
                restarter[0].start()
        elif reached == stage and batch_id == int(batch):
            print(f"CRASH {reached} {batch_id}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    try:
        run_stream(spark, config, feature_set="activity", available_now=True, hook=hook)
    except Exception as exc:  # the query stopped loudly: report it (the test resumes the stream)
        print(f"FAILED {type(exc).__name__}: {str(exc).splitlines()[0]}", flush=True)
        code = 3
    else:
        print("DONE", flush=True)
        code = 0
    for thread in restarter:
        thread.join()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
