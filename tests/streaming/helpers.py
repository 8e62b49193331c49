"""Shared pieces of the streaming tests: the pipeline, deterministic events, a real Kafka producer,
the stream run in its own process, and the batch reference.

The streaming tests run each query in a subprocess (``featuremill stream`` or
:mod:`tests.streaming.stream_child`): its Spark session needs Spark's Kafka connector, which the
suite's shared session does not load (it would slow every other test's start-up), and the fault
tests must kill the process with SIGKILL. The checks read the Delta tables with the shared session.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT

KAFKA_PORT = int(os.environ.get("FEATUREMILL_TEST_KAFKA_PORT", "19092"))
CONTROLLER_PORT = int(os.environ.get("FEATUREMILL_TEST_KAFKA_CONTROLLER_PORT", "19093"))
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
LATENESS_H = 24

ENV_YAML = """\
warehouse: warehouse
data_root: data
master: local[2]
max_broadcast_mb: 16
spark:
  spark.sql.shuffle.partitions: 4
  spark.default.parallelism: 4
  spark.ui.enabled: false
  spark.sql.session.timeZone: UTC
  spark.databricks.delta.snapshotPartitions: 2
  spark.driver.extraJavaOptions: -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
  spark.python.sql.dataFrameDebugging.enabled: "false"
"""

PIPELINE_YAML = """\
pipeline: shop
timezone: UTC
sources:
  tx:
    kind: events
    format: csv
    path: tx
    partition_column: event_date
    event_time: ts
    key: event_id
    columns:
      event_id: string
      customer_id: {{type: bigint, nullable: false}}
      ts: {{type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}}
      amount: {{type: double, nullable: false}}
      channel: string
    stream:
      type: kafka
      bootstrap_servers: {bootstrap}
      topic: {topic}
      starting_offsets: earliest
      allowed_lateness: {lateness}h
      max_records_per_batch: {batch}
      trigger: 1s
feature_sets:
  - name: activity
    description: Purchases per customer.
    owner: tests@example.com
    version: 1
    source: tx
    entity: customer_id
    features:
      - {{name: n_1h, function: count, window: 1h, description: d}}
      - {{name: n_1d, function: count, window: 1d, description: d}}
      - {{name: amount_sum_1d, function: sum, column: amount, window: 1d, description: d}}
      - {{name: amount_sum_7d, function: sum, column: amount, window: 7d, description: d}}
      - {{name: amount_mean_7d, function: mean, column: amount, window: 7d, description: d}}
      - {{name: amount_std_7d, function: stddev, column: amount, window: 7d, description: d}}
      - {{name: amount_max_1d, function: max, column: amount, window: 1d, description: d}}
      - {{name: web_n_7d, function: count, window: 7d, where: {{column: channel, equals: web}}, description: d}}
      - {{name: prev_amount, function: lag, column: amount, offset: 1, window: 7d, description: d}}
      - {{name: secs_since_prev, function: time_since_previous, window: 7d, description: d}}
      - {{name: ratio_1d_7d, function: ratio, numerator: amount_sum_1d, denominator: amount_sum_7d, description: d}}
quality:
  tables:
    validated.tx:
      rules:
        - {{check: range, column: amount, min: 0, max: 10000, severity: quarantine}}
"""

FEATURES = (
    "n_1h",
    "n_1d",
    "amount_sum_1d",
    "amount_sum_7d",
    "amount_mean_7d",
    "amount_std_7d",
    "amount_max_1d",
    "web_n_7d",
    "prev_amount",
    "secs_since_prev",
    "ratio_1d_7d",
)


def make_project(root: Path, topic: str, *, batch: int = 150) -> Path:
    (root / "conf" / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "env").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "conf" / "env" / "local.yaml").write_text(ENV_YAML)
    path = root / "conf" / "pipelines" / "shop.yaml"
    path.write_text(PIPELINE_YAML.format(bootstrap=BOOTSTRAP, topic=topic, lateness=LATENESS_H, batch=batch))
    return path


def kafka(action: str) -> None:
    env = dict(os.environ, KAFKA_PORT=str(KAFKA_PORT), KAFKA_CONTROLLER_PORT=str(CONTROLLER_PORT))
    subprocess.run([str(ROOT / "scripts" / "kafka.sh"), action], check=True, env=env, timeout=180)


# ---------------------------------------------------------------- events
T0 = dt.datetime(2026, 9, 1)


def good_events(n: int, *, seed: int, customers: int = 12, days: int = 4, prefix: str = "e") -> list[dict]:
    """``n`` valid events over ``days`` days, in event-time order (times on whole seconds)."""
    rng = random.Random(seed)
    span = days * 86400
    times = sorted(rng.randrange(span) for _ in range(n))
    out = []
    for i, offset in enumerate(times):
        ts = T0 + dt.timedelta(seconds=offset)
        out.append(
            {
                "event_id": f"{prefix}{i:05d}",
                "customer_id": rng.randrange(1, customers + 1),
                "ts": ts.strftime("%Y-%m-%d %H:%M:%S"),
                "amount": round(rng.uniform(1, 500), 2),
                "channel": rng.choice(["web", "app", "store"]),
            }
        )
    # a few events sharing an instant with another event of the same customer (ties)
    for j in range(0, n - 1, max(n // 8, 2)):
        out[j + 1] = dict(out[j + 1], customer_id=out[j]["customer_id"], ts=out[j]["ts"])
    return out


def shuffled_within(events: list[dict], *, block_s: int, seed: int) -> list[dict]:
    """``events`` (in time order) shuffled inside consecutive blocks of ``block_s`` seconds of event
    time: no event comes after one more than ``block_s`` newer, far inside the allowed lateness."""
    rng = random.Random(seed)
    blocks: dict[int, list[dict]] = {}
    for e in events:
        ts = dt.datetime.strptime(e["ts"], "%Y-%m-%d %H:%M:%S")
        blocks.setdefault(int((ts - T0).total_seconds()) // block_s, []).append(e)
    out = []
    for key in sorted(blocks):
        block = blocks[key]
        rng.shuffle(block)
        out.extend(block)
    return out


def value(event: dict) -> bytes:
    return json.dumps(event).encode()


def produce(topic: str, values: list[bytes | None], *, keys: list[bytes | None] | None = None) -> list[tuple[int, int]]:
    """Produce ``values`` to ``topic`` with a real Kafka client, waiting for every acknowledgement;
    returns the (partition, offset) the broker gave each record."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5, retries=5)
    try:
        futures = [
            producer.send(topic, value=v, key=(keys[i] if keys else (b"tombstone" if v is None else None)))
            for i, v in enumerate(values)
        ]
        producer.flush(timeout=60)
        return [(m.partition, m.offset) for m in (f.get(timeout=60) for f in futures)]
    finally:
        producer.close()


def create_topic(topic: str, partitions: int = 2) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


# ---------------------------------------------------------------- the stream in its own process
def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "lib"), env.get("PYTHONPATH", "")])
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    # scripts/kafka.sh in the child (the broker-restart fault) acts on the tests' broker
    env.update(KAFKA_PORT=str(KAFKA_PORT), KAFKA_CONTROLLER_PORT=str(CONTROLLER_PORT))
    return env


def run_stream(
    root: Path, *, crash: str | None = None, timeout: int = 300, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """``featuremill stream ... --available-now`` in its own process (or the crashing child)."""
    pipeline = root / "conf" / "pipelines" / "shop.yaml"
    if crash:
        cmd = [sys.executable, "-m", "tests.streaming.stream_child", str(pipeline), crash]
    else:
        cmd = [
            sys.executable,
            "-m",
            "featuremill",
            "stream",
            str(pipeline),
            "--feature-set",
            "activity",
            "--available-now",
            *extra,
        ]
    return subprocess.run(cmd, cwd=root, env=child_env(), capture_output=True, text=True, timeout=timeout)


def reference_features(spark, config, valid: list[dict]):
    """The batch job's full recompute over ``valid`` events (build_feature_frame over every date)."""
    from pyspark.sql import functions as F

    from featuremill.pipelines.build_features import build_feature_frame

    source = config.source("tx")
    rows = [
        (
            e["event_id"],
            int(e["customer_id"]),
            dt.datetime.strptime(e["ts"], "%Y-%m-%d %H:%M:%S"),
            float(e["amount"]),
            e["channel"],
        )
        for e in valid
    ]
    df = spark.createDataFrame(rows, "event_id string, customer_id bigint, ts timestamp, amount double, channel string")
    df = df.withColumn("event_date", F.to_date("ts"))
    del source
    return build_feature_frame(
        df,
        config=config,
        feature_set=config.feature_set("activity"),
        dimensions={},
        start=dt.date(2000, 1, 1),
        end=dt.date(9999, 12, 31),
    )


def assert_same_features(actual_rows, expected_rows) -> None:
    """Every (customer, ts) row of both, every feature equal (doubles to 1e-9 relative)."""
    import math

    def keyed(rows):
        return {(r["customer_id"], r["ts"]): r for r in rows}

    a, e = keyed(actual_rows), keyed(expected_rows)
    assert len(a) == len(actual_rows), "the streamed feature table has duplicate (customer, ts) rows"
    missing, extra = sorted(set(e) - set(a))[:5], sorted(set(a) - set(e))[:5]
    assert not missing and not extra, f"rows missing from the stream: {missing}; rows only in the stream: {extra}"
    bad = []
    for key, exp in e.items():
        got = a[key]
        for f in FEATURES:
            x, y = got[f], exp[f]
            if x is None or y is None:
                same = x is None and y is None
            elif isinstance(y, float):
                same = math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
            else:
                same = x == y
            if not same:
                bad.append((key, f, x, y))
    assert not bad, f"{len(bad)} feature values differ (key, feature, streamed, batch): {bad[:10]}"


def textblock(text: str) -> str:
    return textwrap.dedent(text)
