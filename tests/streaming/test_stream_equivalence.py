"""Streaming equals batch: records produced to a real Kafka broker, shuffled within the allowed
lateness, with duplicates, malformed and late records, streamed into the feature table in two
runs (a restart from the checkpoint in between); the table must equal the batch job's full
recompute over the same valid events, and every produced record must be in the validated table
or the quarantine exactly once. The second run also writes to the environment's online store
(SQLite, through a Feast repository generated and applied after the first run): the entities it
changed, and only those, must hold their latest row there."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter

import pytest

from tests.streaming import helpers as h

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def streamed(kafka_broker, tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("stream_eq")
    topic = f"eq-{uuid.uuid4().hex[:8]}"
    h.make_project(root, topic, batch=160)
    h.create_topic(topic, partitions=2)
    good = h.good_events(260, seed=7)
    order = h.shuffled_within(good, block_s=3600, seed=8)
    bad = [
        (b"not json at all", "malformed"),
        (None, "malformed"),  # a tombstone
        (h.value(dict(good[5], event_id="bad-type", customer_id="abc")), "type"),
        (h.value(dict(good[6], event_id="bad-range", amount=-5.0)), "range_amount"),
        (h.value(dict(good[7], event_id="bad-nan", amount="NaN")), "non_finite"),
        (h.value({k: v for k, v in dict(good[8], event_id="bad-null").items() if k != "customer_id"}), "not_null"),
    ]
    # schema drift on the topic: a field nobody declared yet (ignored: the record stays valid)
    values: list[bytes | None] = [h.value(dict(e, coupon="early") if i % 9 == 0 else e) for i, e in enumerate(order)]
    expected_rules: Counter = Counter()
    # duplicates right after their first copy (same or next micro-batch), poison records in between
    for i, pos in enumerate((20, 90, 150, 200)):
        values.insert(pos + i, values[pos + i - 1])
        expected_rules["duplicate"] += 1
    for j, (v, rule) in enumerate(bad):
        values.insert(30 + 37 * j, v)
        expected_rules[rule] += 1
    produced = h.produce(topic, values)
    first = h.run_stream(root)
    assert first.returncode == 0, first.stderr[-4000:]

    # Second run (a restart from the checkpoint): late events, a late and a timely duplicate of
    # first-run events, and new events that change the latest feature rows.
    newest = max(dt.datetime.strptime(e["ts"], "%Y-%m-%d %H:%M:%S") for e in good)
    late = [
        dict(good[40], event_id=f"late{i}", ts=(newest - dt.timedelta(hours=30 + i)).strftime("%Y-%m-%d %H:%M:%S"))
        for i in range(3)
    ]
    recent = next(
        e for e in reversed(good) if dt.datetime.strptime(e["ts"], "%Y-%m-%d %H:%M:%S") > newest - dt.timedelta(hours=6)
    )
    # one customer gets no new event: the online store must not receive it
    more = [e for e in h.good_events(30, seed=9, days=1, prefix="n") if e["customer_id"] != UNCHANGED]
    for e in more:
        e["ts"] = (
            dt.datetime.strptime(e["ts"], "%Y-%m-%d %H:%M:%S") + (newest.replace(hour=0, minute=0, second=0) - h.T0)
        ).strftime("%Y-%m-%d %H:%M:%S")
    # the source now declares `coupon` (schema policy of validated.tx: additive allowed by default)
    for e in more:
        e["coupon"] = f"C-{e['event_id']}"
    pipeline = root / "conf" / "pipelines" / "shop.yaml"
    pipeline.write_text(
        pipeline.read_text().replace("      channel: string\n", "      channel: string\n      coupon: string\n")
    )
    values2 = [h.value(e) for e in late] + [h.value(good[3]), h.value(recent)] + [h.value(e) for e in more]
    expected_rules["late"] += len(late) + 1  # good[3] is days older than the newest event seen
    expected_rules["duplicate"] += 1  # recent: within the lateness, already kept by the first run
    produced += h.produce(topic, values2)
    repo = _feast_repository(spark, root)
    second = h.run_stream(root, extra=("--feast-repo", str(repo)))
    assert second.returncode == 0, second.stderr[-4000:]
    from featuremill.config import load_pipeline

    config = load_pipeline(root / "conf" / "pipelines" / "shop.yaml", env="local")
    return {
        "root": root,
        "config": config,
        "topic": topic,
        "produced": produced,
        "valid": good + more,
        "expected_rules": expected_rules,
        "outputs": first.stdout + second.stdout,
        "repo": repo,
        "changed": sorted({e["customer_id"] for e in more}),
    }


UNCHANGED = 5


def _feast_repository(spark, root):
    """The environment declares a SQLite online store; the Feast repository of the feature set is
    generated and applied (in this process, with the suite's Spark session)."""
    from featuremill.config import load_pipeline
    from featuremill.serving.feast_cli import apply_in_process
    from featuremill.serving.repo import feature_set_view, render_repository, write_repository

    env = root / "conf" / "env" / "local.yaml"
    env.write_text(env.read_text() + "online_store: {type: sqlite, path: data/online_store.db}\n")
    config = load_pipeline(root / "conf" / "pipelines" / "shop.yaml", env="local")
    repo = root / "feast"
    write_repository(render_repository(config, [feature_set_view(spark, config, config.feature_set("activity"))]), repo)
    apply_in_process(spark, repo, pipeline=config.name)
    return repo


def test_stream_features_equal_the_batch_full_recompute(streamed, spark):
    config = streamed["config"]
    actual = spark.read.format("delta").load(config.tables.features("activity")).collect()
    expected = h.reference_features(spark, config, streamed["valid"]).collect()
    assert len(expected) > 250
    h.assert_same_features([r.asDict() for r in actual], [r.asDict() for r in expected])


def test_stream_valid_plus_quarantined_equals_produced(streamed, spark):
    root, topic = streamed["root"], streamed["topic"]
    base = root / "warehouse" / "shop" / "stream" / "activity"
    validated = spark.read.format("delta").load(str(base / "validated")).collect()
    quarantined = spark.read.format("delta").load(str(base / "quarantine")).collect()
    # every produced record exactly once, in one of the two tables
    seen = [tuple(int(x) for x in r["_source_file"].rsplit("/", 2)[1:]) for r in validated]
    seen += [(r["partition"], r["offset"]) for r in quarantined]
    assert len(seen) == len(set(seen)), "a record is in the tables twice"
    assert sorted(seen) == sorted(streamed["produced"])
    # the valid events are exactly the expected ones, each once
    assert sorted(r["event_id"] for r in validated) == sorted(e["event_id"] for e in streamed["valid"])
    assert Counter(r["rule"] for r in quarantined) == streamed["expected_rules"]
    assert all(r["topic"] == topic and r["reason"] for r in quarantined)
    poison = next(r for r in quarantined if r["raw_value"] == "not json at all")
    assert poison["rule"] == "malformed" and poison["offset"] is not None
    bad_type = next(r for r in quarantined if r["raw_value"] and "bad-type" in r["raw_value"])
    assert json.loads(bad_type["raw_value"])["customer_id"] == "abc"
    assert "customer_id" in bad_type["reason"] and "bigint" in bad_type["reason"]
    # the column declared before the second run: added to the table, null for the earlier rows
    # (their undeclared `coupon` field was not read), the values for the second run's events
    coupons = {r["event_id"]: r["coupon"] for r in validated if r["coupon"] is not None}
    assert coupons == {e["event_id"]: e["coupon"] for e in streamed["valid"] if "coupon" in e}
    assert len(coupons) >= 20


def test_stream_run_log_records_each_micro_batch(streamed, spark):
    config = streamed["config"]
    runs = spark.read.format("delta").load(config.tables.run_log).where("job = 'stream'").collect()
    assert len(runs) >= 3
    assert sum(r["metrics"]["input_rows"] for r in runs) == len(streamed["produced"])
    assert sum(r["metrics"]["quarantined"] for r in runs) == sum(streamed["expected_rules"].values())
    for r in runs:
        m = r["metrics"]
        assert m["batch_duration_s"] > 0
        assert m["valid_rows"] + m["quarantined"] == m["input_rows"]
        if m["valid_rows"]:
            assert m["freshness_s"] > 0 and m["output_rows"] > 0


def test_stream_writes_changed_entities_latest_rows_to_the_online_store(streamed, spark):
    from feast import FeatureStore

    config, changed = streamed["config"], streamed["changed"]
    assert UNCHANGED not in changed and len(changed) >= 5
    # independent reference: the batch recompute over the valid events, latest row per customer
    latest = {}
    for r in h.reference_features(spark, config, streamed["valid"]).collect():
        c = r["customer_id"]
        if c not in latest or r["ts"] > latest[c]["ts"]:
            latest[c] = r
    ask = [*changed, UNCHANGED]
    got = (
        FeatureStore(repo_path=str(streamed["repo"]))
        .get_online_features(
            features=[f"activity:{f}" for f in h.FEATURES], entity_rows=[{"customer_id": c} for c in ask]
        )
        .to_dict()
    )
    for i, c in enumerate(changed):
        for f in h.FEATURES:
            x, y = got[f][i], latest[c][f]
            if x is None or y is None:
                assert x is None and y is None, (c, f, x, y)
            else:
                assert x == pytest.approx(y, rel=1e-9, abs=1e-9), (c, f, x, y)
    assert all(got[f][len(changed)] is None for f in h.FEATURES), "an entity the stream did not change was written"
    runs = spark.read.format("delta").load(config.tables.run_log).where("job = 'stream'").collect()
    online = [r["metrics"] for r in runs if r["metrics"].get("online_rows") is not None]
    assert len(online) == 1  # the second run: one micro-batch, after the first run's (no store then)
    assert online[0]["online_rows"] == len(changed)
    assert online[0]["online_freshness_s"] > 0 and online[0]["produce_to_online_max_s"] >= 0
