"""Faults of the streaming job against a real broker: the process killed with SIGKILL inside
micro-batches (after the Delta commits and before the checkpoint; between the validated and the
feature commits; before any commit) and restarted from its checkpoint, with poison records in
the stream. After the last restart nothing is lost or doubled: the feature table equals the
batch job's full recompute over the valid events, the validated table holds each valid event
once and the quarantine each rejected record once."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from tests.streaming import helpers as h

pytestmark = pytest.mark.slow

#: (stage, micro-batch) of each killed run, in order; the last run completes.
CRASHES = ("features:0", "validated:1", "classified:2")


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
    produced = h.produce(topic, values)
    runs = []
    for crash in CRASHES:
        result = h.run_stream(root, crash=crash)
        runs.append(result)
        assert result.returncode == -9, f"{crash}: expected a SIGKILL, got {result.returncode}\n{result.stderr[-3000:]}"
        assert f"CRASH {crash.replace(':', ' ')}" in result.stdout
    final = h.run_stream(root)
    assert final.returncode == 0, final.stderr[-4000:]
    from featuremill.config import load_pipeline

    return {
        "root": root,
        "config": load_pipeline(root / "conf" / "pipelines" / "shop.yaml", env="local"),
        "produced": produced,
        "valid": good,
        "rules": Counter({"duplicate": 4, "malformed": 1, "type": 1}),
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
    actual = spark.read.format("delta").load(config.tables.features("activity")).collect()
    expected = h.reference_features(spark, config, run["valid"]).collect()
    h.assert_same_features([r.asDict() for r in actual], [r.asDict() for r in expected])
