"""Spark-free pieces of replay / backfill / exactly-once: the replay_window section, retention
properties, chunking, run keys, change descriptions, commit times and the runs table formatting."""

from __future__ import annotations

import datetime as dt

import pytest

from featuremill.commands.runs import human_bytes, human_seconds
from featuremill.config import parse_pipeline
from featuremill.core.errors import ConfigError
from featuremill.pipelines.backfill import chunk_ranges
from featuremill.storage.delta_log import Commit, monotonic_timestamps
from featuremill.storage.exactly_once import (
    commit_metadata,
    describe_differences,
    digest,
    feature_set_definition,
    parse_commit_metadata,
    run_key,
)
from featuremill.storage.io import CommitTag
from featuremill.storage.retention import ReplayWindow, interval_seconds, missing_properties, replay_window
from tests.integration.reliability_data import PIPELINE

D = dt.date


def _config(window: str | None = "30d", tmp_path=None):
    from featuremill.config import EnvSpec, load_yaml_text

    doc = load_yaml_text(PIPELINE.format(window=window or "7d"))
    if window is None:
        del doc["replay_window"]
    env = EnvSpec(name="t", file="t.yaml", warehouse="/wh", data_root="/data")
    return parse_pipeline(doc, file="shop.yaml", env=env)


def test_replay_window_section_parses_and_sets_retention_at_least_delta_defaults():
    assert replay_window(_config("30d")) == ReplayWindow(seconds=30 * 86400, declared=True)
    assert replay_window(_config("60d")).table_properties() == {
        "delta.logRetentionDuration": "interval 60 days",
        "delta.deletedFileRetentionDuration": "interval 60 days",
    }
    # never below Delta's own defaults (30 days of log, 7 days of removed files)
    assert replay_window(_config("3d")).table_properties() == {
        "delta.logRetentionDuration": "interval 30 days",
        "delta.deletedFileRetentionDuration": "interval 7 days",
    }
    assert replay_window(_config("36h")).days == 2
    default = replay_window(_config(None))
    assert default.seconds == 7 * 86400 and not default.declared


def test_replay_window_section_rejects_a_non_duration_with_file_and_path():
    with pytest.raises(ConfigError) as err:
        _config("a month")
    assert "shop.yaml: replay_window: 'a month' is not a duration" in str(err.value)


def test_missing_properties_keeps_longer_and_unparseable_settings():
    required = ReplayWindow(seconds=30 * 86400).table_properties()
    assert missing_properties({}, required) == required
    assert missing_properties(
        {"delta.logRetentionDuration": "interval 8 weeks", "delta.deletedFileRetentionDuration": "interval 1 days"},
        required,
    ) == {"delta.deletedFileRetentionDuration": "interval 30 days"}
    assert (
        missing_properties(
            {"delta.logRetentionDuration": "forever", "delta.deletedFileRetentionDuration": "30 days"}, required
        )
        == {}
    )
    assert interval_seconds("interval 2 weeks") == 14 * 86400
    assert interval_seconds("INTERVAL 36 HOURS") == 36 * 3600


def test_served_tables_get_the_change_feed_unless_it_was_set_by_hand():
    served = ReplayWindow(seconds=30 * 86400).table_properties(change_feed=True)
    assert served == {
        "delta.logRetentionDuration": "interval 30 days",
        "delta.deletedFileRetentionDuration": "interval 30 days",
        "delta.enableChangeDataFeed": "true",
    }
    retention = {k: v for k, v in served.items() if k != "delta.enableChangeDataFeed"}
    assert missing_properties(retention, served) == {"delta.enableChangeDataFeed": "true"}  # never set: turned on
    assert missing_properties({**retention, "delta.enableChangeDataFeed": "false"}, served) == {}  # by hand: kept
    assert missing_properties({**retention, "delta.enableChangeDataFeed": "TRUE"}, served) == {}


def test_chunk_ranges_cover_the_range_without_overlap():
    assert chunk_ranges(D(2026, 9, 1), D(2026, 9, 10), 3) == [
        (D(2026, 9, 1), D(2026, 9, 3)),
        (D(2026, 9, 4), D(2026, 9, 6)),
        (D(2026, 9, 7), D(2026, 9, 9)),
        (D(2026, 9, 10), D(2026, 9, 10)),
    ]
    assert chunk_ranges(D(2026, 9, 1), D(2026, 9, 1), 7) == [(D(2026, 9, 1), D(2026, 9, 1))]
    with pytest.raises(ValueError, match="at least one day"):
        chunk_ranges(D(2026, 9, 1), D(2026, 9, 2), 0)
    with pytest.raises(ValueError, match="before start"):
        chunk_ranges(D(2026, 9, 2), D(2026, 9, 1), 1)


def test_run_key_and_commit_tag():
    key = run_key("shop", "features", "spend", D(2026, 9, 1), D(2026, 9, 3))
    assert key == "featuremill/shop/features/spend/2026-09-01/2026-09-03"
    assert CommitTag(key, 2, '{"a":1}').writer_options() == {
        "txnAppId": key,
        "txnVersion": "2",
        "userMetadata": '{"a":1}',
    }
    meta = commit_metadata(
        run_key=key, run_id="r1", txn_version=2, fingerprint="f", inputs={"x": 1}, versions={"validated.purchases": 4}
    )
    assert parse_commit_metadata(meta) == {
        "run_key": key,
        "run_id": "r1",
        "txn_version": 2,
        "fingerprint": "f",
        "inputs": {"x": 1},
        "versions": {"validated.purchases": 4},
    }
    assert parse_commit_metadata("not json") == {} and parse_commit_metadata('{"other": 1}') == {}


def test_definition_digest_ignores_documentation_but_not_semantics():
    base = _config("30d")
    doc_only = parse_pipeline(
        _yaml_with(lambda d: d["feature_sets"][0].update(description="new words")), file="shop.yaml", env=base.env
    )
    window_changed = parse_pipeline(
        _yaml_with(lambda d: d["feature_sets"][0]["features"][0].update(window="3d")), file="shop.yaml", env=base.env
    )

    def of(config):
        return digest(feature_set_definition(config, config.feature_set("spend")))

    assert of(doc_only) == of(base)
    assert of(window_changed) != of(base)


def _yaml_with(change):
    from featuremill.config import load_yaml_text

    doc = load_yaml_text(PIPELINE.format(window="30d"))
    change(doc)
    return doc


def test_describe_differences_names_each_changed_leaf():
    before = {"definition": "a", "tables": {"validated.p": {"files": 3, "rows": 10}, "validated.d": {"rows": 2}}}
    after = {"definition": "a", "tables": {"validated.p": {"files": 4, "rows": 10}, "validated.d": {"rows": 2}}}
    assert describe_differences(before, after) == ["tables.validated.p.files: 3 then, 4 now"]
    assert describe_differences({}, {"x": 1}) == ["x: absent then, 1 now"]


def test_monotonic_timestamps_never_go_back():
    t = dt.datetime(2026, 9, 1, 12)
    commits = [
        Commit(0, t, "commit_info"),
        Commit(1, t - dt.timedelta(seconds=5), "commit_info"),
        Commit(2, t + dt.timedelta(seconds=1), "commit_info"),
    ]
    times = monotonic_timestamps(commits)
    assert times[0] == t and times[1] == t + dt.timedelta(milliseconds=1)
    assert times[2] == t + dt.timedelta(seconds=1)


def test_human_formats():
    assert human_seconds(None) == "-"
    assert human_seconds(4.5) == "4.5s"
    assert human_seconds(185) == "3m05s"
    assert human_seconds(2 * 3600 + 7 * 60) == "2h07m"
    assert human_seconds(3 * 86400 + 4 * 3600 + 100) == "3d04h"
    assert human_bytes(512) == "512 B" and human_bytes(3 * 1024 * 1024) == "3.0 MiB"


def test_read_text_missing_local_file_raises_without_touching_spark(tmp_path):
    """A missing manifest is found missing by an existence check, not by a failed Spark read
    (which logs a JVM FileNotFoundException stack trace): no session is needed to learn it."""
    from featuremill.core.errors import InputDataError
    from featuremill.storage import io

    missing = str(tmp_path / "training" / "inactive_2d.manifest.json")
    with pytest.raises(InputDataError, match="file not found"):
        io.read_text(None, missing)
    (tmp_path / "present.json").write_text('{"kind": "x"}')
    assert io.read_text(None, str(tmp_path / "present.json")) == '{"kind": "x"}'


def test_the_table_replacing_writer_refuses_a_path_outside_the_warehouse(tmp_path):
    from featuremill.core.errors import WritePathError
    from featuremill.storage import io

    root = str(tmp_path / "warehouse")
    # the check comes before the frame is touched: no Spark needed to see the refusal
    for outside in (str(tmp_path / "elsewhere"), f"{root}/../elsewhere", "/tmp"):
        with pytest.raises(WritePathError, match="outside the warehouse root"):
            io.replace_table(None, outside, root=root, what="replay output")
    assert not (tmp_path / "elsewhere").exists()
