"""Streaming benchmark (issue 16): end-to-end freshness at a fixed produce rate, and the highest
rate the query sustains.

Setup: a throw-away project under the work folder whose ``tx`` source declares a Kafka stream on a
new topic (2 partitions) and one feature set, ``activity`` (6 windowed features over 1 hour and 1
day, ``customer_id``). The stream runs as ``featuremill stream PIPELINE --feature-set activity``
in its own process (its own Spark application, local[2], with Spark's Kafka connector), exactly as
a user runs it; this process produces with a real Kafka client (kafka-python) and measures.

Each produced event carries ``sent_ms`` (the producer's wall clock at send, a declared column, so
it lands in the stream's validated table with the micro-batch id). An event's **freshness** is
the time its micro-batch finished (``finished_at`` of the micro-batch's run-log row, written right
after the feature table's MERGE committed) minus ``sent_ms``: from produce to the Delta feature
table. Computed by Spark over the validated table joined with the run log; only percentiles per
step reach the driver.

Rates: after a warm-up (``warmup_s`` at the first rate, not measured) the producer runs each rate
of the ladder for ``step_s`` seconds, then waits (at most ``drain_s``) until the query has
processed every record (read from the checkpoint's commit and offset files); a step that does not
drain ends the ladder. A step **keeps up** when every event of the step reached the feature table
and the p99 freshness of the events produced in the step's second half is at most ``keep_up_s`` (a
query that falls behind sees its freshness grow through the step). The sustained rate is the
highest achieved produce rate of the consecutive steps that kept up, from the first. The
fixed-rate freshness figure is the step at ``rate``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PIPELINE_NAME = "benchstream"
FEATURE_SET = "activity"
CHANNELS = ("web", "app", "store")

PIPELINE_YAML = """\
pipeline: benchstream
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
      sent_ms: bigint
    stream:
      type: kafka
      bootstrap_servers: "{bootstrap}"
      topic: {topic}
      starting_offsets: earliest
      allowed_lateness: 1h
      trigger: {trigger}s
feature_sets:
  - name: activity
    description: Purchases per customer (streaming benchmark).
    owner: bench@featuremill.local
    version: 1
    source: tx
    entity: customer_id
    features:
      - {{name: n_1h, function: count, window: 1h, description: Purchases in 1 hour}}
      - {{name: amount_sum_1h, function: sum, column: amount, window: 1h, description: Spend in 1 hour}}
      - {{name: n_1d, function: count, window: 1d, description: Purchases in 1 day}}
      - {{name: amount_sum_1d, function: sum, column: amount, window: 1d, description: Spend in 1 day}}
      - {{name: amount_max_1d, function: max, column: amount, window: 1d, description: Largest purchase in 1 day}}
      - {{name: web_n_1d, function: count, window: 1d, where: {{column: channel, equals: web}}, description: Web}}
"""

ENV_YAML = """\
warehouse: warehouse
data_root: data
master: local[2]
spark:
  spark.sql.shuffle.partitions: 4
  spark.default.parallelism: 4
  spark.ui.enabled: false
  spark.sql.session.timeZone: UTC
  spark.driver.memory: 2g
"""


@dataclass(frozen=True)
class StreamingOptions:
    """``bootstrap``: the Kafka broker (HOST:PORT); ``rate``: the fixed produce rate of the freshness
    figure (events/s); ``rates``: the ladder (ascending; ``rate`` is added); seconds per step,
    drain after each step and warm-up; ``customers`` entities; ``keep_up_s`` see module docstring."""

    bootstrap: str
    rate: int = 2000
    rates: tuple[int, ...] = (2000, 5000, 8000)
    step_s: float = 60.0
    drain_s: float = 60.0
    warmup_s: float = 15.0
    customers: int = 20_000
    keep_up_s: float = 10.0
    trigger_s: int = 1
    start_timeout_s: float = 300.0

    def ladder(self) -> list[int]:
        return sorted(set(self.rates) | {self.rate})


def make_project(root: Path, options: StreamingOptions, topic: str) -> Path:
    (root / "conf" / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "env").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "conf" / "env" / "local.yaml").write_text(ENV_YAML)
    path = root / "conf" / "pipelines" / f"{PIPELINE_NAME}.yaml"
    path.write_text(PIPELINE_YAML.format(bootstrap=options.bootstrap, topic=topic, trigger=options.trigger_s))
    return path


class Producer:
    """Events at a fixed rate with a real Kafka client; ``sent_ms`` and ``ts`` are the send time."""

    def __init__(self, bootstrap: str, topic: str, *, customers: int, seed: int):
        from kafka import KafkaProducer

        self.topic = topic
        self.customers = customers
        self.rng = random.Random(seed)
        self.errors = 0
        self.sent = 0
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=256 * 1024, retries=5
        )

    def _error(self, _exc) -> None:
        self.errors += 1

    def send(self, prefix: str, n: int) -> None:
        now = time.time()
        ms = int(now * 1000)
        ts = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        rng = self.rng
        for _ in range(n):
            event = {
                "event_id": f"{prefix}{self.sent}",
                "customer_id": rng.randrange(1, self.customers + 1),
                "ts": ts,
                "amount": round(rng.uniform(1, 500), 2),
                "channel": CHANNELS[rng.randrange(3)],
                "sent_ms": ms,
            }
            self.producer.send(self.topic, value=json.dumps(event).encode()).add_errback(self._error)
            self.sent += 1

    def run(self, prefix: str, rate: float, seconds: float) -> dict:
        """Produce ``rate`` events/s for ``seconds`` (paced every few milliseconds); flush."""
        started = time.time()
        first = self.sent
        began = time.perf_counter()
        while True:
            elapsed = time.perf_counter() - began
            if elapsed >= seconds:
                break
            due = int(rate * elapsed) - (self.sent - first)
            if due > 0:
                self.send(prefix, min(due, max(1, int(rate // 50))))
            else:
                time.sleep(0.002)
        self.producer.flush(timeout=120)
        ended = time.time()
        produced = self.sent - first
        return {
            "start_ms": int(started * 1000),
            "end_ms": int(ended * 1000) + 1,
            "produced": produced,
            "achieved_rate": produced / max(ended - started, 1e-9),
        }

    def close(self) -> None:
        self.producer.close(timeout=30)


def create_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def consumed(checkpoint: str) -> int:
    """Kafka records the query has fully processed: the end offsets (summed over partitions) of the
    newest micro-batch with a commit file in the checkpoint (written after its ``foreachBatch``, so
    after its feature-table MERGE and run-log row). Reads two small files; no Spark."""
    commits = Path(checkpoint) / "commits"
    done = [int(p.name) for p in commits.iterdir() if p.name.isdigit()] if commits.is_dir() else []
    if not done:
        return 0
    lines = (Path(checkpoint) / "offsets" / str(max(done))).read_text().splitlines()
    offsets = json.loads(lines[-1])
    return sum(int(o) for partitions in offsets.values() for o in partitions.values())


def wait_drained(checkpoint: str, produced: int, *, timeout_s: float, process: subprocess.Popen) -> bool:
    """Wait until the query has processed ``produced`` records (True) or ``timeout_s`` passed (False)."""
    deadline = time.monotonic() + timeout_s
    while consumed(checkpoint) < produced:
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def start_stream(pipeline: Path, root: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env["TZ"] = "UTC"  # the run log's finished_at is a naive UTC time converted with the local zone
    cmd = [sys.executable, "-m", "featuremill", "stream", str(pipeline), "--feature-set", FEATURE_SET]
    with open(root / "stream.log", "w") as log_file:  # the child keeps its own descriptor
        return subprocess.Popen(
            cmd, cwd=str(root), env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_stream(process: subprocess.Popen) -> None:
    """Stop the stream process group started by :func:`start_stream` (SIGTERM, then SIGKILL)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def measure(spark, config, steps: list[dict]) -> list[dict]:
    """Per step: events that reached the feature table, freshness p50 / p99 / max (whole step) and
    p99 over the step's second half; the micro-batches that carried the step's events and their mean seconds."""
    from pyspark.sql import functions as F

    from featuremill.streaming.job import stream_paths

    paths = stream_paths(config, FEATURE_SET)
    prefix = f"featuremill/{config.name}/stream/{FEATURE_SET}/"
    runs = (
        spark.read.format("delta")
        .load(config.tables.run_log)
        .where((F.col("job") == "stream") & (F.col("target") == FEATURE_SET))
        .select("run_key", "txn_version", "finished_at", "duration_s", "rows_read")
    )
    batches = runs.groupBy("run_key", "txn_version").agg(
        F.min("finished_at").alias("finished_at"), F.max("duration_s").alias("duration_s")
    )
    events = spark.read.format("delta").load(paths.validated).select("sent_ms", "_stream_id", "_batch_id")
    joined = events.join(
        batches,
        (F.concat(F.lit(prefix), F.col("_stream_id")) == F.col("run_key"))
        & (F.col("_batch_id") == F.col("txn_version")),
        "inner",
    ).select(
        "sent_ms",
        "_batch_id",
        "duration_s",
        (F.unix_micros("finished_at") / F.lit(1e6) - F.col("sent_ms") / F.lit(1e3)).alias("fresh_s"),
    )
    step = F.lit(None).cast("int")
    for i, s in reversed(list(enumerate(steps))):
        step = F.when((F.col("sent_ms") >= s["start_ms"]) & (F.col("sent_ms") < s["end_ms"]), F.lit(i)).otherwise(step)
    half = F.lit(False)
    for i, s in enumerate(steps):
        mid = (s["start_ms"] + s["end_ms"]) // 2
        half = F.when(F.col("step") == i, F.col("sent_ms") >= mid).otherwise(half)
    tagged = joined.withColumn("step", step).where(F.col("step").isNotNull()).withColumn("second_half", half)
    whole = {
        r["step"]: r
        for r in tagged.groupBy("step")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.percentile_approx("fresh_s", [0.5, 0.99], 10000).alias("p"),
            F.max("fresh_s").alias("max"),
        )
        .collect()  # one row per step
    }
    late = {
        r["step"]: r["p99"]
        for r in tagged.where("second_half")
        .groupBy("step")
        .agg(F.percentile_approx("fresh_s", 0.99, 10000).alias("p99"))
        .collect()  # one row per step
    }
    per_batch = {
        r["step"]: r
        for r in tagged.groupBy("step", "_batch_id")
        .agg(F.max("duration_s").alias("d"))
        .groupBy("step")
        .agg(F.count(F.lit(1)).alias("n"), F.avg("d").alias("avg_s"))
        .collect()  # one row per step
    }
    out = []
    for i, s in enumerate(steps):
        w, b = whole.get(i), per_batch.get(i)
        out.append(
            {
                **s,
                "arrived": int(w["n"]) if w else 0,
                "p50_s": float(w["p"][0]) if w else None,
                "p99_s": float(w["p"][1]) if w else None,
                "max_s": float(w["max"]) if w else None,
                "p99_second_half_s": float(late[i]) if late.get(i) is not None else None,
                "batches": int(b["n"]) if b else 0,
                "batch_avg_s": float(b["avg_s"]) if b else None,
            }
        )
    return out


def run(spark, workdir: str, options: StreamingOptions, *, seed: int = 7) -> dict:
    """Run the streaming section (see the module docstring); JSON-ready dict."""
    import shutil

    from featuremill.config import load_pipeline
    from featuremill.streaming.job import stream_paths

    root = Path(workdir).resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    topic = f"featuremill_bench_{int(time.time())}"
    pipeline = make_project(root, options, topic)
    config = load_pipeline(pipeline, env="local")
    checkpoint = stream_paths(config, FEATURE_SET).checkpoint
    create_topic(options.bootstrap, topic)
    producer = Producer(options.bootstrap, topic, customers=options.customers, seed=seed)
    process = start_stream(pipeline, root)
    ladder = options.ladder()
    steps: list[dict] = []
    began = time.perf_counter()
    try:
        producer.send("seed-", 100)
        producer.producer.flush(timeout=60)
        if not wait_drained(checkpoint, producer.sent, timeout_s=options.start_timeout_s, process=process):
            raise RuntimeError(
                f"the stream processed no batch within {options.start_timeout_s:g} s "
                f"(exit code {process.poll()}); see {root}/stream.log"
            )
        startup_s = time.perf_counter() - began
        log.info(
            "streaming: first micro-batch after %.0f s; warm-up %g s at %d/s", startup_s, options.warmup_s, ladder[0]
        )
        if options.warmup_s > 0:
            producer.run("warm-", ladder[0], options.warmup_s)
            wait_drained(checkpoint, producer.sent, timeout_s=options.drain_s, process=process)
        for i, rate in enumerate(ladder):
            step = producer.run(f"r{i}-", rate, options.step_s)
            step["rate"] = rate
            t0 = time.perf_counter()
            step["drained"] = wait_drained(checkpoint, producer.sent, timeout_s=options.drain_s, process=process)
            step["drain_s"] = round(time.perf_counter() - t0, 1)
            log.info(
                "streaming: %d events/s step produced %d (%.0f/s); %s after %.1f s",
                rate,
                step["produced"],
                step["achieved_rate"],
                "drained" if step["drained"] else "NOT drained",
                step["drain_s"],
            )
            steps.append(step)
            if process.poll() is not None:
                raise RuntimeError(f"the stream exited with {process.returncode}; see {root}/stream.log")
            if not step["drained"]:
                break  # it fell behind: a higher rate cannot keep up either
    finally:
        producer.close()
        stop_stream(process)
    measured = measure(spark, config, steps)
    for s in measured:
        s["kept_up"] = bool(
            s["arrived"] == s["produced"]
            and s["p99_second_half_s"] is not None
            and s["p99_second_half_s"] <= options.keep_up_s
        )
    sustained = None
    for s in measured:
        if not s["kept_up"]:
            break
        sustained = s["achieved_rate"]
    fixed = next((s for s in measured if s["rate"] == options.rate), measured[0])
    return {
        "topic": topic,
        "customers": options.customers,
        "rate": options.rate,
        "step_s": options.step_s,
        "drain_s": options.drain_s,
        "warmup_s": options.warmup_s,
        "keep_up_s": options.keep_up_s,
        "trigger_s": options.trigger_s,
        "startup_s": round(startup_s, 1),
        "producer_errors": producer.errors,
        "steps": measured,
        "fixed": fixed,
        "sustained_rate": sustained,
        "highest_rate_tried": max(ladder),
    }
