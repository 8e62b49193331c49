"""The streaming demo (``scripts/demo.sh --stream [--seconds S] [--rate R]``).

Starts the Kafka broker (scripts/kafka.sh), produces demo transactions stamped with the current
time at a fixed rate, runs ``featuremill stream conf/pipelines/demo.yaml --feature-set
customer_activity --duration S`` meanwhile, and prints each micro-batch's records, feature rows
and freshness. The dimensions the feature set joins come from the batch demo's validated tables;
when they are missing, a small demo dataset is generated and only the dimensions are ingested.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "conf" / "pipelines" / "demo.yaml"
FEATURE_SET = "customer_activity"


def featuremill(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "featuremill"), *args], cwd=ROOT, check=True, **kwargs)


def ensure_dimensions() -> dict:
    """The demo data's manifest; the dimensions ingested into warehouse/demo when they are not yet."""
    data = ROOT / "data" / "demo"
    manifest = data / "_generator.json"
    if not manifest.exists():
        print("[stream demo] no demo data yet: generating a small dataset", flush=True)
        featuremill("generate-data", "--out", str(data), "--events", "2000", "--days", "3")
    info = json.loads(manifest.read_text())
    if not (ROOT / "warehouse" / "demo" / "validated" / "customers" / "_delta_log").exists():
        print("[stream demo] ingesting the demo dimensions (customers, products)", flush=True)
        featuremill(
            "run", str(PIPELINE), "--job", "ingest", "--source", "customers", "--source", "products",
            "--date", info["end"],
        )  # fmt: skip
    return info


def produce(topic: str, servers: str, *, rate: float, seconds: float, customers: int, products: int, stop) -> int:
    """Produce demo transactions stamped now, ``rate`` per second, until ``seconds`` pass."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=servers, linger_ms=20, acks=1)
    rng = random.Random(11)
    run = uuid.uuid4().hex[:6]
    sent, started = 0, time.monotonic()
    while not stop.is_set() and time.monotonic() - started < seconds:
        due = int((time.monotonic() - started) * rate)
        while sent < due:
            now = dt.datetime.now(dt.timezone.utc)
            event = {
                "event_id": f"live-{run}-{sent}",
                "customer_id": rng.randrange(1, customers + 1),
                "product_id": rng.randrange(1, products + 1),
                "event_ts": now.strftime("%Y-%m-%d %H:%M:%S"),
                "amount": round(rng.lognormvariate(3.2, 0.8), 2),
                "quantity": rng.randrange(1, 6),
                "channel": rng.choice(["web", "app", "store"]),
            }
            producer.send(topic, json.dumps(event).encode())
            sent += 1
        time.sleep(0.02)
    producer.flush()
    producer.close()
    return sent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo.sh --stream", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="how long the stream runs (default 60)")
    parser.add_argument("--rate", type=float, default=200, help="events produced per second (default 200)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "lib"))
    from featuremill.config import load_pipeline
    from featuremill.config.streams import stream_of

    config = load_pipeline(PIPELINE, env="local")
    stream = stream_of(config, config.feature_set(FEATURE_SET).source)
    info = ensure_dimensions()
    spec = info["spec"]
    kafka = str(ROOT / "scripts" / "kafka.sh")
    port = stream.bootstrap_servers.rsplit(":", 1)[1]
    env = dict(os.environ, KAFKA_PORT=port, KAFKA_CONTROLLER_PORT=str(int(port) + 1))
    running = subprocess.run([kafka, "status"], env=env).returncode == 0
    if not running:
        subprocess.run([kafka, "start"], env=env, check=True)
    stop = threading.Event()
    counts: dict[str, int] = {}
    try:
        customers = spec.get("customers") or max(50, spec["events"] // 40)
        products = spec.get("products") or max(20, min(2000, spec["events"] // 200))
        producer = threading.Thread(
            target=lambda: counts.update(
                sent=produce(
                    stream.topic,
                    stream.bootstrap_servers,
                    rate=args.rate,
                    seconds=args.seconds,
                    customers=customers,
                    products=products,
                    stop=stop,
                )
            ),
            daemon=True,
        )
        producer.start()
        # The stream runs 30 s longer than the producer so that the last events reach the table;
        # at the end it lets its running micro-batch finish before it stops.
        # A fresh checkpoint per demo run: the broker's topic is new each time it starts.
        checkpoint = ROOT / "warehouse" / "demo" / "stream" / FEATURE_SET / f"_checkpoint-{uuid.uuid4().hex[:8]}"
        print(
            f"[stream demo] producing {args.rate:g} events/s to {stream.topic} for {args.seconds:g} s; "
            f"streaming them into warehouse/demo/features/{FEATURE_SET}",
            flush=True,
        )
        featuremill(
            "stream", str(PIPELINE), "--feature-set", FEATURE_SET, "--duration", str(args.seconds + 30),
            "--checkpoint", str(checkpoint), "--log-level", "WARNING",
        )  # fmt: skip
        stop.set()
        producer.join(timeout=30)
        print(f"[stream demo] produced {counts.get('sent', 0)} events; run log: featuremill runs", flush=True)
    finally:
        stop.set()
        if not running:
            subprocess.run([kafka, "stop"], env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
