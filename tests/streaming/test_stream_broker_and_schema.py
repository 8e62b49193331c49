"""Faults of the streaming job against a real broker, in one stream process and one restart:

* the broker is stopped (``scripts/kafka.sh stop``) while a micro-batch of the query is running
  and started again on the same storage 5 s later: the query either goes on or stops with a clear
  error, and the next run resumes from the checkpoint;
* the topic's records change schema mid-stream: a field nobody declared appears (ignored, as the
  batch ingest ignores undeclared JSON fields), a declared field changes type (each such record
  quarantined as ``type`` with the field and value in the reason), a record that is not JSON
  (``malformed``): the query goes on;
* the source then declares the new field (``additive: allow``, the default schema policy of
  ``validated.tx``) and the restarted stream adds the column to its validated table: older rows
  read null, newer rows carry the value.

After the last run nothing is lost or doubled: each produced record is in the validated table or
the quarantine exactly once, and the feature table equals the batch job's full recompute over
the valid events.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from tests.streaming import helpers as h

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker_restarted(kafka_broker, tmp_path_factory):
    root = tmp_path_factory.mktemp("stream_broker")
    topic = f"brk-{uuid.uuid4().hex[:8]}"
    pipeline = h.make_project(root, topic, batch=60)
    h.create_topic(topic, partitions=2)
    good = h.good_events(200, seed=31)
    first, second = good[:150], good[150:]
    values: list[bytes | None] = [h.value(e) for e in h.shuffled_within(first, block_s=1800, seed=32)]
    values.insert(95, values[94])  # a duplicate in the batch read while the broker is down
    # schema drift on the topic, in the last stretch of the first run
    drifted = [h.value(dict(e, coupon=f"C{i}")) for i, e in enumerate(second[:20])]
    drifted.insert(5, h.value(dict(second[0], event_id="typed-customer", customer_id="C-17")))
    drifted.insert(12, h.value(dict(second[1], event_id="typed-amount", amount="12,50")))
    drifted.insert(15, b"\x00\x01 not json")
    values += drifted
    produced = h.produce(topic, values)
    broken = h.run_stream(root, crash="broker-restart:1")
    assert "BROKER STOPPED 1" in broken.stdout and "BROKER STARTED" in broken.stdout, broken.stderr[-3000:]
    continued = broken.returncode == 0 and "DONE" in broken.stdout
    # either it went on, or it stopped loudly with the reason
    assert continued or (broken.returncode == 3 and "FAILED StreamError" in broken.stdout), (
        f"rc {broken.returncode}\n{broken.stdout[-2000:]}\n{broken.stderr[-3000:]}"
    )

    # The source declares the new field; the topic survived the restart (offsets go on).
    text = pipeline.read_text()
    pipeline.write_text(text.replace("      channel: string\n", "      channel: string\n      coupon: string\n", 1))
    last = {p: max(o for q, o in produced if q == p) for p, _ in produced}
    third = [dict(e, coupon=f"D{i}") for i, e in enumerate(second[20:])]
    more = h.produce(topic, [h.value(e) for e in third])
    assert all(o > last[p] for p, o in more), "the broker lost the topic's records across its restart"
    produced += more
    resumed = h.run_stream(root)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    from featuremill.config import load_pipeline

    return {
        "root": root,
        "config": load_pipeline(pipeline, env="local"),
        "produced": produced,
        "valid": good,
        "coupons": {e["event_id"]: e["coupon"] for e in third},
        "continued": continued,
        "broken": broken,
    }


def test_stream_broker_restart_and_schema_change_lose_and_double_nothing(broker_restarted, spark):
    run = broker_restarted
    config = run["config"]
    base = run["root"] / "warehouse" / "shop" / "stream" / "activity"
    validated = spark.read.format("delta").load(str(base / "validated")).collect()
    quarantined = spark.read.format("delta").load(str(base / "quarantine")).collect()
    seen = [tuple(int(x) for x in r["_source_file"].rsplit("/", 2)[1:]) for r in validated]
    seen += [(r["partition"], r["offset"]) for r in quarantined]
    assert len(seen) == len(set(seen)), "a record was written twice"
    assert sorted(seen) == sorted(run["produced"]), "a record was lost"
    assert sorted(r["event_id"] for r in validated) == sorted(e["event_id"] for e in run["valid"])
    assert Counter(r["rule"] for r in quarantined) == Counter({"type": 2, "malformed": 1, "duplicate": 1})
    reasons = {r["raw_value"]: r["reason"] for r in quarantined if r["rule"] == "type"}
    customer = next(v for k, v in reasons.items() if "typed-customer" in k)
    amount = next(v for k, v in reasons.items() if "typed-amount" in k)
    assert "customer_id" in customer and "C-17" in customer and "bigint" in customer
    assert "amount" in amount and "12,50" in amount and "double" in amount
    # the declared new column: null before the declaration (the field was not read), values after
    coupons = {r["event_id"]: r["coupon"] for r in validated}
    assert {k: v for k, v in coupons.items() if v is not None} == run["coupons"]
    actual = spark.read.format("delta").load(config.tables.features("activity")).collect()
    expected = h.reference_features(spark, config, run["valid"]).collect()
    h.assert_same_features([r.asDict() for r in actual], [r.asDict() for r in expected])
