"""The ``quality:`` section: accepted forms, and each kind of mistake reported with its path."""

from __future__ import annotations

import copy

import pytest
import yaml

from featuremill.config import load_pipeline
from featuremill.core.errors import ConfigError
from featuremill.quality.spec import DEFAULT_THRESHOLDS, QualitySpec, quality_of
from tests.unit.test_config import BASE


def _doc(quality):
    doc = copy.deepcopy(BASE)
    doc["sources"]["tx"]["columns"]["quantity"] = "int"
    doc["quality"] = quality
    return doc


def _load(project, doc):
    path = project / "conf" / "pipelines" / "p.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_pipeline(path, env="local")


def _errors(project, doc) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(project, doc)
    return [str(i) for i in info.value.issues if i.severity == "error"]


GOOD = {
    "tables": {
        "validated.tx": {
            "schema": {"additive": "refuse", "widening": ["quantity"]},
            "rules": [
                {"check": "range", "column": "amount", "min": 0, "max": 1000, "severity": "quarantine"},
                {
                    "name": "known_channel",
                    "check": "allowed_values",
                    "column": "channel",
                    "values": ["web", "app"],
                    "severity": "quarantine",
                },
                {"check": "regex", "column": "id", "pattern": "^e[0-9]+$", "severity": "warn"},
                {"check": "referential", "column": "sku", "dimension": "products", "severity": "warn"},
                {"check": "not_null", "columns": ["channel", "amount"], "severity": "fail"},
                {"check": "unique", "column": "id", "scope": "batch", "severity": "fail"},
                {"check": "completeness", "column": "amount", "min_percent": 99.5, "severity": "fail"},
                {"check": "freshness", "max_age": "2d", "severity": "warn"},
                {"check": "row_count_change", "max_change_percent": 50, "severity": "warn"},
                {"check": "anomaly", "metric": "mean", "column": "amount", "max_sd": 4, "severity": "warn"},
                {"check": "anomaly", "metric": "row_count", "severity": "warn", "min_history": 3},
            ],
        },
        "features.cust_fs": {
            "schema": {
                "columns": {"n_1h": "bigint", "sum_7d": {"type": "double", "nullable": False}},
                "key": ["cust", "ts"],
            },
            "rules": [{"check": "range", "column": "r", "min": 0, "max": 1, "severity": "fail"}],
        },
    },
    "drift": {"bins": 20, "thresholds": {"psi": {"alert": 0.3}, "js": None}},
    "profile": {"top_values": 5, "quantiles": [0.5, 0.1]},
}


def test_quality_section_parses_every_check(project):
    config = _load(project, _doc(GOOD))
    quality = quality_of(config)
    tx = quality.table("validated.tx")
    names = [r.name for r in tx.rules]
    assert names == [
        "range_amount",
        "known_channel",
        "regex_id",
        "referential_sku",
        "not_null_channel_amount",
        "unique_id",
        "completeness_amount",
        "freshness_ts",
        "row_count_change",
        "anomaly_mean_amount",
        "anomaly_row_count",
    ]
    assert tx.schema.additive == "refuse" and tx.schema.may_widen("quantity") and not tx.schema.may_widen("amount")
    fresh = next(r for r in tx.rules if r.check == "freshness")
    assert fresh.columns == ("ts",) and fresh.max_age_seconds == 2 * 86400  # the source's event time by default
    ref = next(r for r in tx.rules if r.check == "referential")
    assert ref.dimension == "products" and ref.dimension_columns == ("sku",)
    fs = quality.table("features.cust_fs")
    # schema.key and nullable: false become fail rules
    assert [(r.name, r.check, r.severity) for r in fs.rules] == [
        ("range_r", "range", "fail"),
        ("schema_key", "unique", "fail"),
        ("schema_not_null_sum_7d", "not_null", "fail"),
    ]
    assert quality.drift.bins == 20
    assert quality.drift.threshold("psi").alert == 0.3 and quality.drift.threshold("psi").warn == 0.1
    assert quality.drift.threshold("js").alert is None
    assert quality.drift.threshold("ks") == DEFAULT_THRESHOLDS["ks"]
    assert quality.profile.quantiles == (0.1, 0.5)
    # an unconfigured table gets the defaults
    other = quality.table("validated.products")
    assert not other.configured and other.schema.additive == "allow" and other.rules == ()


def test_pipeline_without_quality_section_gets_defaults(project):
    config = _load(project, copy.deepcopy(BASE))
    assert quality_of(config) == QualitySpec()


@pytest.mark.parametrize(
    "rules,expected",
    [
        (
            [{"check": "range", "column": "amout", "min": 0, "severity": "warn"}],
            "quality.tables.validated.tx.rules[0].column: 'amout' is not a column of validated.tx",
        ),
        (
            [{"check": "completeness", "column": "amount", "min_percent": 99, "severity": "quarantine"}],
            "cannot quarantine rows; use warn or fail",
        ),
        ([{"check": "range", "column": "amount", "severity": "warn"}], "a range rule needs min, max or both"),
        (
            [{"check": "regex", "column": "id", "pattern": "([a-z", "severity": "warn"}],
            "not a valid regular expression",
        ),
        (
            [{"check": "referential", "column": "sku", "dimension": "tx", "severity": "warn"}],
            "is a events, not a dimension",
        ),
        ([{"name": "duplicate", "check": "not_null", "column": "id", "severity": "warn"}], "built-in ingest rule name"),
        (
            [
                {"check": "not_null", "column": "id", "severity": "warn"},
                {"check": "not_null", "column": "id", "severity": "fail"},
            ],
            "rule name 'not_null_id' is used twice",
        ),
        ([{"check": "nonsense", "column": "id", "severity": "warn"}], "'nonsense' is not a check"),
        ([{"check": "not_null", "column": "id", "severity": "panic"}], "'panic' is not one of warn, quarantine, fail"),
        ([{"check": "anomaly", "metric": "mean", "column": "channel", "severity": "warn"}], "needs a numeric column"),
        (
            [{"check": "freshness", "column": "amount", "max_age": "1d", "severity": "warn"}],
            "freshness needs a timestamp",
        ),
        ([{"check": "range", "column": "amount", "min": "low", "severity": "warn"}], "min must be a number"),
    ],
)
def test_quality_rule_mistakes_are_reported_with_their_path(project, rules, expected):
    errors = _errors(project, _doc({"tables": {"validated.tx": {"rules": rules}}}))
    assert any(expected in e for e in errors), errors


def test_quality_refuses_quarantine_on_feature_tables_and_unknown_tables(project):
    errors = _errors(
        project,
        _doc(
            {
                "tables": {
                    "features.cust_fs": {"rules": [{"check": "not_null", "column": "n_1h", "severity": "quarantine"}]},
                    "features.nope": {},
                    "validated.tx": {"schema": {"columns": {"id": "string"}}},
                }
            }
        ),
    )
    assert any("features.cust_fs.rules[0].severity" in e and "cannot be quarantined" in e for e in errors)
    assert any("'features.nope' is not a table of this pipeline" in e for e in errors)
    assert any("declared under sources" in e for e in errors)


def test_quality_rules_on_features_name_a_renamed_joined_column_by_its_new_name(project):
    from featuremill.quality.tables import declared_columns

    doc = _doc({})
    doc["sources"]["customers"] = {
        "kind": "dimension",
        "format": "csv",
        "path": "c",
        "key": "cust",
        "columns": {"cust": "bigint", "segment": "string", "year": "int"},
    }
    doc["feature_sets"][0]["joins"].append(
        {
            "dimension": "customers",
            "on": "cust",
            "columns": {"year": "signup_year", "segment": "segment"},
            "level": "entity",
        }
    )
    rules = [
        {"check": "range", "column": "signup_year", "min": 1990, "severity": "warn"},
        {
            "check": "referential",
            "column": "signup_year",
            "dimension": "customers",
            "dimension_columns": ["year"],
            "severity": "warn",
        },
    ]
    doc["quality"] = {"tables": {"features.cust_fs": {"rules": rules}}}
    config = _load(project, doc)
    cols = declared_columns("features.cust_fs", config.sources, config.feature_sets)
    assert (cols["signup_year"], cols["segment"], "year" in cols) == ("int", "string", False)
    doc["quality"]["tables"]["features.cust_fs"]["rules"] = [
        {"check": "range", "column": "year", "min": 1990, "severity": "warn"}
    ]
    assert any("'year' is not a column of features.cust_fs" in e for e in _errors(project, doc))
