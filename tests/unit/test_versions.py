"""Feature-set fingerprints and the lock file: no Spark needed, like ``featuremill validate``."""

from __future__ import annotations

import hashlib
import json

import pytest

from featuremill.cli import main
from featuremill.config import load_pipeline
from featuremill.core.errors import ConfigError
from featuremill.storage import versions
from tests.conftest import write_pipeline

PIPELINE = """\
pipeline: shop
timezone: UTC
sources:
  tx:
    kind: events
    format: csv
    path: tx
    partition_column: landed
    event_time: ts
    key: id
    columns:
      id: string
      customer: bigint
      ts: timestamp
      amount: double
      channel: string
      note: string
feature_sets:
  - name: spend
    description: Spend per customer.
    owner: team@example.com
    version: {version}
    source: tx
    entity: customer
    features:
      - {{name: n_7d, function: count, window: 7d, description: Purchases in 7 days}}
      - {{name: sum_7d, function: sum, column: amount, window: {window}, description: Spend in 7 days}}
      - {{name: web_7d, function: count, window: 7d, where: {{column: channel, equals: web}}, description: Web purchases}}
"""


def _config(project, *, version=1, window="7d", text=None, name="shop.yaml"):
    path = write_pipeline(project, text or PIPELINE.format(version=version, window=window), name)
    return path, load_pipeline(path)


def test_feature_set_fingerprint_is_sha256_of_canonical_definition(project):
    _, config = _config(project)
    fs = config.feature_set("spend")
    definition = versions.feature_set_definition(config, fs)
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    assert versions.feature_set_fingerprint(config, fs) == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    # what decides the values is in it; the unused column 'note' is not
    assert definition["source"]["columns"] == {
        "amount": "double",
        "channel": "string",
        "customer": "bigint",
        "id": "string",
        "ts": "timestamp",
    }
    assert [f["name"] for f in definition["features"]] == ["n_7d", "sum_7d", "web_7d"]
    assert definition["features"][1]["window_seconds"] == 7 * 86400


def test_feature_set_fingerprint_ignores_docs_and_order_but_not_semantics(project):
    _, base = _config(project)
    fingerprint = versions.feature_set_fingerprint(base, base.feature_set("spend"))

    def fp_of(text):
        _, cfg = _config(project, text=text, name="variant.yaml")
        return versions.feature_set_fingerprint(cfg, cfg.feature_set("spend"))

    text = PIPELINE.format(version=1, window="7d")
    docs_only = text.replace("Spend per customer.", "Money spent.").replace("team@example.com", "other@example.com")
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if "name: n_7d" in line)
    reordered = "\n".join(lines[:i] + [lines[i + 1], lines[i]] + lines[i + 2 :]) + "\n"
    unused_column_type = text.replace("note: string", "note: bigint")
    assert fp_of(docs_only) == fingerprint
    assert fp_of(reordered) == fingerprint
    assert fp_of(unused_column_type) == fingerprint
    assert fp_of(PIPELINE.format(version=1, window="8d")) != fingerprint
    assert fp_of(text.replace("equals: web", "equals: app")) != fingerprint
    assert fp_of(text.replace("amount: double", "amount: decimal(12,2)")) != fingerprint
    assert fp_of(text.replace("timezone: UTC", "timezone: Europe/Paris")) != fingerprint


def test_check_lock_refuses_a_definition_change_without_a_version_bump(project):
    path, config = _config(project)
    lock_file = versions.lock_path(path)
    assert lock_file.name == "shop.lock.json"
    issues = versions.check_lock(config, None, lock_file=lock_file)
    assert [i.severity for i in issues] == ["warning"] and "no lock file" in issues[0].message
    versions.write_lock(versions.updated_lock(config, None, lock_file=lock_file))
    lock = versions.read_lock(lock_file)
    assert versions.check_lock(config, lock, lock_file=lock_file) == []

    _, changed = _config(project, window="8d")
    issues = versions.check_lock(changed, lock, lock_file=lock_file)
    assert len(issues) == 1 and issues[0].severity == "error"
    assert issues[0].path == "feature_sets[0].version"
    assert "changed without a version bump" in issues[0].message
    assert "sum_7d: window_seconds 604800 -> 691200" in issues[0].message
    assert "Set version: 2" in issues[0].message
    with pytest.raises(ConfigError, match="changed without a version bump"):
        versions.updated_lock(changed, lock, lock_file=lock_file)
    with pytest.raises(ConfigError):
        versions.require_consistent(changed, lock, lock_file=lock_file)

    _, bumped = _config(project, version=2, window="8d")
    issues = versions.check_lock(bumped, lock, lock_file=lock_file)
    assert [i.severity for i in issues] == ["warning"] and "version 2 is new" in issues[0].message
    versions.write_lock(versions.updated_lock(bumped, lock, lock_file=lock_file))
    lock = versions.read_lock(lock_file)
    assert sorted(lock.versions("spend")) == [1, 2]
    assert versions.check_lock(bumped, lock, lock_file=lock_file) == []
    # going back to the version-1 definition under version 1 is fine; under version 2 it is not
    assert versions.check_lock(config, lock, lock_file=lock_file) == []
    _, relabelled = _config(project, version=2, window="7d")
    assert [i.severity for i in versions.check_lock(relabelled, lock, lock_file=lock_file)] == ["error"]


def test_check_lock_warns_when_a_registered_model_loses_its_feature_version(project):
    path, config = _config(project)
    lock_file = versions.lock_path(path)
    lock = versions.updated_lock(config, None, lock_file=lock_file)
    fp = versions.feature_set_fingerprint(config, config.feature_set("spend"))
    lock = versions.with_model(
        lock,
        model="churn",
        version="3",
        training_set="/ts/churn",
        feature_sets={"spend": {"version": 1, "fingerprint": fp}},
    )
    versions.write_lock(lock)
    lock = versions.read_lock(lock_file)
    assert versions.check_lock(config, lock, lock_file=lock_file) == []
    _, bumped = _config(project, version=2, window="8d")
    lock = versions.updated_lock(bumped, lock, lock_file=lock_file)
    issues = versions.check_lock(bumped, lock, lock_file=lock_file)
    assert len(issues) == 1 and issues[0].severity == "warning"
    assert "model 'churn' version 3 was trained on spend@1; the pipeline now declares version 2" in issues[0].message


def test_validate_command_fails_on_unbumped_change_and_update_lock_records(project, capsys):
    path, _ = _config(project)
    assert main(["validate", str(path)]) == 0
    assert "no lock file" in capsys.readouterr().out
    assert main(["validate", str(path), "--update-lock"]) == 0
    out = capsys.readouterr().out
    assert "recorded spend@1" in out and "ok (" in out
    locked = json.loads(versions.lock_path(path).read_text())
    assert list(locked["feature_sets"]["spend"]["versions"]) == ["1"]

    write_pipeline(project, PIPELINE.format(version=1, window="14d"), "shop.yaml")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "feature set 'spend' changed without a version bump" in out and "1 error(s)" in out
    assert main(["validate", str(path), "--update-lock"]) == 1  # refused: the lock is unchanged
    capsys.readouterr()
    assert json.loads(versions.lock_path(path).read_text()) == locked

    write_pipeline(project, PIPELINE.format(version=2, window="14d"), "shop.yaml")
    assert main(["validate", str(path), "--update-lock"]) == 0
    assert list(json.loads(versions.lock_path(path).read_text())["feature_sets"]["spend"]["versions"]) == ["1", "2"]


def test_demo_pipeline_matches_its_committed_lock_file():
    from tests.conftest import ROOT

    pipeline = ROOT / "conf" / "pipelines" / "demo.yaml"
    config = load_pipeline(pipeline)
    lock_file = versions.lock_path(pipeline)
    assert versions.check_lock(config, versions.read_lock(lock_file), lock_file=lock_file) == []


JOINED = """\
pipeline: shop
timezone: UTC
sources:
  tx:
    kind: events
    format: csv
    path: tx
    partition_column: landed
    event_time: ts
    key: id
    columns: {{id: string, customer: bigint, sku: bigint, ts: timestamp, category: string}}
  products:
    kind: dimension
    format: csv
    path: products
    key: sku
    columns: {{sku: bigint, category: string, year: int}}
feature_sets:
  - name: spend
    description: Spend per customer.
    owner: team@example.com
    version: 1
    source: tx
    entity: customer
    joins:
      - {{dimension: products, on: sku, columns: {columns}}}
    features:
      - {{name: newest_7d, function: max, column: {year}, window: 7d, description: Newest release bought}}
"""


def test_feature_set_fingerprint_changes_with_a_join_column_rename(project):
    from featuremill.storage import exactly_once

    def load(columns, year="year"):
        _, cfg = _config(project, text=JOINED.format(columns=columns, year=year), name="joined.yaml")
        fs = cfg.feature_set("spend")
        return versions.feature_set_definition(cfg, fs), versions.feature_set_fingerprint(cfg, fs), cfg, fs

    listed, listed_fp, cfg, fs = load("[year]")
    same, same_fp, _, _ = load("{year: year}")
    renamed, renamed_fp, rcfg, rfs = load("{year: release_year}", year="release_year")
    other, other_fp, _, _ = load("{year: launch_year}", year="launch_year")
    assert "renames" not in listed["joins"][0]  # fingerprints locked before renames existed stay valid
    assert same_fp == listed_fp  # mapping a column to its own name is the list form
    assert renamed["joins"][0]["renames"] == {"year": "release_year"}
    assert renamed["joins"][0]["types"] == {"sku": "bigint", "year": "int"}  # the dimension's own names
    assert len({listed_fp, renamed_fp, other_fp}) == 3
    # the exactly-once definition: the same, and no new key for a join without renames
    assert set(exactly_once.feature_set_definition(cfg, fs)["feature_set"]["joins"][0]) == {
        "dimension",
        "on",
        "columns",
        "level",
        "as_of",
    }
    assert exactly_once.feature_set_definition(rcfg, rfs)["feature_set"]["joins"][0]["renames"] == [
        ["year", "release_year"]
    ]
