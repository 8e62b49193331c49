"""Faults of the streaming job against a real broker: the process killed with SIGKILL inside
micro-batches (after the Delta commits and before the checkpoint; between the validated and the
feature commits; before any commit) and restarted from its checkpoint; then, in the last run, the
broker stopped (``scripts/kafka.sh stop``) while a micro-batch runs and started again on the same
storage 5 s later (the query must go on, or stop with a clear error and resume on the next run).
The stream carries poison records (not JSON; declared fields whose type changed on the producer's
side), quarantined without stopping the query. After the last run nothing is lost or doubled: the
feature table equals the batch job's full recompute over the valid events, the validated table
holds each valid event once and the quarantine each rejected record once."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from tests.streaming import helpers as h

pytestmark = pytest.mark.slow

#: (stage, micro-batch) of each killed run, in order; the last run completes.
CRASHES = ("features:0", "validated:1", "classified:2")
#: The last run replays micro-batch 2 and runs 3: the broker goes down while 2 is being written.
BROKER_RESTART = "broker-restart:2"


@pytest.fixture(scope="module")
def crashed_and_restarted(kafka_broker, tmp_path_factory):
    root = tmp_path_factory.mktemp("stream_kill")
    topic = f"kill-{uuid.uuid4().hex[:8]}"
    h.make_project(root, topic, batch=70)
    h.create_topic(topic, partitions=2)
    good = h.good_events(240, seed=21)
    values: list[bytes | None] = [h.value(e) for e in h.shuffled_within(good, block_s=1800, seed=22)]
    # a duplicate in each stretch of the stream (each micro-batch or the next keeps the first copy)
    for i, pos in enumerate((10, 75, 140, 205)):
        values.insert(pos + i, values[pos + i - 1])
    values.insert(50, b"{poison")
    values.insert(120, h.value(dict(good[1], event_id="wrong-type", amount="lots")))
    # the producer changes field types late in the stream (read in the micro-batch after the broker restart)
    values.insert(230, h.value(dict(good[2], event_id="typed-customer", customer_id="C-17")))
    values.insert(240, h.value(dict(good[4], event_id="typed-amount", amount="12,50")))
    produced = h.produce(topic, values)
    runs = []
    for crash in CRASHES:
        result = h.run_stream(root, crash=crash)
        runs.append(result)
        assert result.returncode == -9, f"{crash}: expected a SIGKILL, got {result.returncode}\n{result.stderr[-3000:]}"
        assert f"CRASH {crash.replace(':', ' ')}" in result.stdout
    broken = h.run_stream(root, crash=BROKER_RESTART)
    assert "BROKER STOPPED" in broken.stdout and "BROKER STARTED" in broken.stdout, broken.stderr[-3000:]
    continued = broken.returncode == 0 and "DONE" in broken.stdout
    assert continued or (broken.returncode == 3 and "FAILED" in broken.stdout), (
        f"rc {broken.returncode}\n{broken.stdout[-2000:]}\n{broken.stderr[-3000:]}"
    )
    if not continued:  # it stopped loudly: the next run resumes from the checkpoint
        final = h.run_stream(root)
        assert final.returncode == 0, final.stderr[-4000:]
    from featuremill.config import load_pipeline

    return {
        "root": root,
        "config": load_pipeline(root / "conf" / "pipelines" / "shop.yaml", env="local"),
        "produced": produced,
        "valid": good,
        "rules": Counter({"duplicate": 4, "malformed": 1, "type": 3}),
    }


def test_stream_kill_9_and_restart_lose_and_double_nothing(crashed_and_restarted, spark):
    run = crashed_and_restarted
    config = run["config"]
    base = run["root"] / "warehouse" / "shop" / "stream" / "activity"
    validated = spark.read.format("delta").load(str(base / "validated")).collect()
    quarantined = spark.read.format("delta").load(str(base / "quarantine")).collect()
    seen = [tuple(int(x) for x in r["_source_file"].rsplit("/", 2)[1:]) for r in validated]
    seen += [(r["partition"], r["offset"]) for r in quarantined]
    assert len(seen) == len(set(seen)), "a record was written twice"
    assert sorted(seen) == sorted(run["produced"]), "a record was lost"
    assert sorted(r["event_id"] for r in validated) == sorted(e["event_id"] for e in run["valid"])
    assert Counter(r["rule"] for r in quarantined) == run["rules"]
    reasons = {r["raw_value"]: r["reason"] for r in quarantined if r["rule"] == "type"}
    customer = next(v for k, v in reasons.items() if "typed-customer" in k)
    amount = next(v for k, v in reasons.items() if "typed-amount" in k)
    assert "customer_id" in customer and "C-17" in customer and "bigint" in customer
    assert "amount" in amount and "12,50" in amount and "double" in amount
    actual = spark.read.format("delta").load(config.tables.features("activity")).collect()
    expected = h.reference_features(spark, config, run["valid"]).collect()
    h.assert_same_features([r.asDict() for r in actual], [r.asDict() for r in expected])
