"""The ``stream:`` block of an events source: parsed into StreamSpec, refused with clear errors."""

from __future__ import annotations

import pytest

from featuremill.config import load_pipeline
from featuremill.config.streams import StreamSpec, stream_of
from featuremill.core.errors import ConfigError
from tests.conftest import write_pipeline

BASE = """\
pipeline: shop
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
      customer_id: bigint
      ts: timestamp
      amount: double
{stream}
feature_sets:
  - name: activity
    description: d
    owner: o
    version: 1
    source: tx
    entity: customer_id
    features:
      - {{name: n_1d, function: count, window: 1d, description: d}}
"""


def _load(project, stream: str):
    return load_pipeline(write_pipeline(project, BASE.format(stream=stream)), env="local")


def test_parse_streams_kafka_block(project):
    config = _load(
        project,
        """\
    stream:
      type: kafka
      bootstrap_servers: 127.0.0.1:19092
      topic: shop.tx
      allowed_lateness: 2h
      max_records_per_batch: 500
      trigger: 10s
      options: {kafka.security.protocol: PLAINTEXT}
""",
    )
    assert stream_of(config, "tx") == StreamSpec(
        source="tx",
        type="kafka",
        bootstrap_servers="127.0.0.1:19092",
        topic="shop.tx",
        allowed_lateness_seconds=7200,
        max_records_per_batch=500,
        trigger_seconds=10,
        options=(("kafka.security.protocol", "PLAINTEXT"),),
    )


def test_parse_streams_delta_block_and_zero_lateness(project):
    config = _load(project, "    stream: {type: delta, allowed_lateness: 0s}\n")
    spec = stream_of(config, "tx")
    assert (spec.type, spec.allowed_lateness_seconds, spec.topic) == ("delta", 0, None)


def test_parse_streams_errors_name_the_key(project):
    with pytest.raises(ConfigError) as err:
        _load(
            project,
            """\
    stream:
      type: kafka
      topic: "bad topic"
      starting_offsets: yesterday
      allowed_lateness: soon
      options: {subscribe: other, failOnDataLoss: false}
""",
        )
    text = str(err.value)
    assert "sources.tx.stream.bootstrap_servers: is required for a kafka stream" in text
    assert "sources.tx.stream.topic: 'bad topic' is not a Kafka topic name" in text
    assert "sources.tx.stream.starting_offsets: 'yesterday' is not one of earliest, latest" in text
    assert "sources.tx.stream.allowed_lateness: 'soon' is not a duration" in text
    assert "sources.tx.stream.options.subscribe: option 'subscribe' cannot be set here" in text
    assert "sources.tx.stream.options.failOnDataLoss" in text


def test_parse_streams_unknown_type_and_delta_with_topic(project):
    with pytest.raises(ConfigError) as err:
        _load(project, "    stream: {type: kinesis}\n")
    assert "sources.tx.stream.type: 'kinesis' is not one of kafka, delta" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _load(project, "    stream: {type: delta, topic: t}\n")
    assert "sources.tx.stream.topic: applies to kafka streams only" in str(err.value)


def test_stream_of_without_block_names_the_fix(project):
    config = _load(project, "")
    with pytest.raises(KeyError, match="declares no stream: add a `stream:` block to sources.tx"):
        stream_of(config, "tx")


def test_online_target_without_repository_names_the_fix(project, tmp_path):
    """``--feast-repo`` pointing at a folder that is not a generated repository is refused before
    the query starts (nothing written), naming the missing file and the command that makes it."""
    from featuremill.core.errors import ServingError
    from featuremill.streaming.job import online_target

    config = _load(project, "    stream: {type: delta}\n")
    with pytest.raises(ServingError, match=r"has no feature_store\.yaml; generate it with featuremill feast-repo"):
        online_target(config, config.feature_set("activity"), str(tmp_path / "nowhere"))
