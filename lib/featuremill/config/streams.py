"""The ``stream:`` block of an events source: where its records arrive as a stream.

.. code-block:: yaml

    sources:
      transactions:
        kind: events
        ...
        stream:
          type: kafka                       # or delta: the validated table read as a stream
          bootstrap_servers: 127.0.0.1:19092
          topic: transactions
          value_format: json                # one JSON object per record, the source's declared columns
          starting_offsets: earliest        # or latest (only for a new checkpoint)
          allowed_lateness: 1h              # events older than the newest event seen minus this: quarantined as late
          max_records_per_batch: 50000      # optional: maxOffsetsPerTrigger
          trigger: 5s                       # micro-batch interval of a continuous run
          options: {kafka.security.protocol: PLAINTEXT}   # optional extra source options

Parsed into :class:`StreamSpec` objects, kept in ``PipelineConfig.sections["streams"]`` keyed by
source name (so a source's definition, and with it every ingest fingerprint, is unchanged by
adding a stream).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from featuremill.config.checker import Checker, join_path, kind_of
from featuremill.config.model import SourceSpec

STREAM_TYPES = ("kafka", "delta")
STARTING_OFFSETS = ("earliest", "latest")
VALUE_FORMATS = ("json",)
#: Kafka source options featuremill sets itself (offsets live in the checkpoint; records are
#: read as bytes and parsed by the source's declared columns).
RESERVED_KAFKA_OPTIONS = {
    "subscribe": "the topic is the stream's `topic`",
    "subscribepattern": "the topic is the stream's `topic`",
    "assign": "the topic is the stream's `topic`",
    "kafka.bootstrap.servers": "set `bootstrap_servers`",
    "startingoffsets": "set `starting_offsets`",
    "maxoffsetspertrigger": "set `max_records_per_batch`",
    "failondataloss": "featuremill fails on data loss: records deleted before they were read would be lost uncounted",
    "kafka.group.id": "the query tracks its offsets in its checkpoint, not in a consumer group",
}


@dataclass(frozen=True)
class StreamSpec:
    """A stream of one events source (see the module docstring for the keys)."""

    source: str
    type: str
    bootstrap_servers: str | None = None
    topic: str | None = None
    value_format: str = "json"
    starting_offsets: str = "earliest"
    allowed_lateness_seconds: int = 3600
    max_records_per_batch: int | None = None
    trigger_seconds: int = 5
    options: tuple[tuple[str, str], ...] = ()


def _lateness(checker: Checker, value: Any, path: str) -> int | None:
    if value in (0, "0", "0s", "0m", "0h", "0d"):
        return 0
    return checker.duration(value, path)


def parse_streams(checker: Checker, sources_doc: Any, sources: Mapping[str, SourceSpec]) -> dict[str, StreamSpec]:
    """The ``stream:`` blocks of ``sources_doc`` (the raw ``sources:`` mapping), checked.

    Problems are reported through ``checker`` with their path, e.g.
    ``sources.transactions.stream.topic: is required for a kafka stream``.
    """
    out: dict[str, StreamSpec] = {}
    if not isinstance(sources_doc, dict):
        return out
    for name, body in sources_doc.items():
        if not isinstance(body, dict) or "stream" not in body:
            continue
        path = join_path(join_path("sources", str(name)), "stream")
        spec = checker.mapping(
            body["stream"],
            path,
            required=("type",),
            optional=(
                "bootstrap_servers",
                "topic",
                "value_format",
                "starting_offsets",
                "allowed_lateness",
                "max_records_per_batch",
                "trigger",
                "options",
            ),
        )
        if spec is None:
            continue
        source = sources.get(str(name))
        if source is not None and source.kind != "events":
            checker.error(path, f"only events sources can be streamed; {name!r} is a {source.kind}")
        kind = (
            checker.string(spec.get("type"), join_path(path, "type"), choices=STREAM_TYPES) if "type" in spec else None
        )
        servers = topic = None
        if kind == "kafka":
            for key in ("bootstrap_servers", "topic"):
                if key not in spec:
                    checker.error(join_path(path, key), "is required for a kafka stream")
            if "bootstrap_servers" in spec:
                servers = checker.string(spec["bootstrap_servers"], join_path(path, "bootstrap_servers"))
            if "topic" in spec:
                topic = checker.string(spec["topic"], join_path(path, "topic"))
                if topic and not all(c.isalnum() or c in "._-" for c in topic):
                    checker.error(
                        join_path(path, "topic"), f"{topic!r} is not a Kafka topic name (letters, digits, . _ -)"
                    )
        elif kind == "delta":
            for key in ("bootstrap_servers", "topic", "value_format", "starting_offsets", "options"):
                if key in spec:
                    checker.error(
                        join_path(path, key), "applies to kafka streams only (a delta stream reads the validated table)"
                    )
        value_format = "json"
        if "value_format" in spec:
            value_format = (
                checker.string(spec["value_format"], join_path(path, "value_format"), choices=VALUE_FORMATS) or "json"
            )
        starting = "earliest"
        if "starting_offsets" in spec:
            starting = (
                checker.string(spec["starting_offsets"], join_path(path, "starting_offsets"), choices=STARTING_OFFSETS)
                or "earliest"
            )
        lateness = 3600
        if "allowed_lateness" in spec:
            lateness = _lateness(checker, spec["allowed_lateness"], join_path(path, "allowed_lateness"))
        max_records = None
        if "max_records_per_batch" in spec:
            max_records = checker.integer(
                spec["max_records_per_batch"], join_path(path, "max_records_per_batch"), minimum=1
            )
        trigger = 5
        if "trigger" in spec:
            trigger = checker.duration(spec["trigger"], join_path(path, "trigger")) or 5
        options: list[tuple[str, str]] = []
        if "options" in spec and kind == "kafka":
            opts = spec["options"]
            if not isinstance(opts, dict):
                checker.error(join_path(path, "options"), f"expected a mapping, got {kind_of(opts)}")
                opts = {}
            for key, value in opts.items():
                opt_path = join_path(join_path(path, "options"), str(key))
                reason = RESERVED_KAFKA_OPTIONS.get(str(key).lower())
                if reason is not None:
                    checker.error(opt_path, f"option {key!r} cannot be set here: {reason}")
                elif isinstance(value, (dict, list)) or value is None:
                    checker.error(opt_path, f"expected a scalar, got {kind_of(value)}")
                else:
                    options.append((str(key), str(value).lower() if isinstance(value, bool) else str(value)))
        if kind is None or lateness is None or (kind == "kafka" and (servers is None or topic is None)):
            continue
        out[str(name)] = StreamSpec(
            source=str(name),
            type=kind,
            bootstrap_servers=servers,
            topic=topic,
            value_format=value_format,
            starting_offsets=starting,
            allowed_lateness_seconds=lateness,
            max_records_per_batch=max_records,
            trigger_seconds=trigger,
            options=tuple(options),
        )
    return out


def stream_of(config, source: str) -> StreamSpec:
    """The stream declared for ``source``; raises ``KeyError`` naming the fix when there is none."""
    streams = config.section("streams", {}) or {}
    if source not in streams:
        raise KeyError(
            f"source {source!r} declares no stream: add a `stream:` block to sources.{source} (see docs/streaming.md)"
        )
    return streams[source]
