"""featuremill docs: the feature catalog covers every demo feature with meaning, owner, calculation,
version, fingerprint, update frequency, quality rules and lineage; expected values come from the
raw YAML (read here with PyYAML), not from featuremill's parser."""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser

import pytest
import yaml

from featuremill.cli import main
from featuremill.config import load_pipeline
from featuremill.storage.catalog import build_catalog, read_lineage_inputs
from featuremill.storage.ledger import RunRecord, append_run
from tests.conftest import ROOT

DEMO = ROOT / "conf" / "pipelines" / "demo.yaml"


def _raw_features() -> dict[str, dict]:
    doc = yaml.safe_load(DEMO.read_text())
    out = {}
    for fs in doc["feature_sets"]:
        for f in fs["features"]:
            out[f["name"]] = {
                **f,
                "_set": fs["name"],
                "_owner": f.get("owner", fs["owner"]),
                "_version": f.get("version", fs["version"]),
                "_joins": fs.get("joins", []),
                "_source": fs["source"],
            }
    return out


class _Headings(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.th = [], []
        self._in_th = False

    def handle_starttag(self, tag, attrs):
        if tag == "h3":
            self.ids.append(dict(attrs).get("id"))
        self._in_th = tag == "th"

    def handle_data(self, data):
        if self._in_th:
            self.th.append(data)
            self._in_th = False


FIELDS = [
    "Business meaning",
    "Owner",
    "Calculation",
    "Function",
    "Window",
    "Source columns",
    "Filter",
    "Entity / time",
    "Type",
    "Version",
    "Fingerprint",
    "Update frequency",
    "Quality rules",
    "Lineage",
    "Last build",
]


def test_docs_demo_covers_every_feature(tmp_path):
    assert main(["docs", str(DEMO), "--out", str(tmp_path), "--no-lineage"]) == 0
    catalog = json.loads((tmp_path / "demo.catalog.json").read_text())
    raw = _raw_features()
    entries = {f["name"]: f for fs in catalog["feature_sets"] for f in fs["features"]}
    assert set(entries) == set(raw) and len(raw) == 21
    for name, spec in raw.items():
        e = entries[name]
        calc = e["calculation"]
        assert e["feature_set"] == spec["_set"]
        assert e["description"] == spec["description"] and e["owner"] == spec["_owner"]
        assert e["version"] == spec["_version"]
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", e["fingerprint"])
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", e["feature_set_fingerprint"])
        assert calc["function"] == spec["function"] and calc["window"] == spec.get("window")
        assert calc["column"] == spec.get("column")
        if "where" in spec:
            assert calc["where"] == f"{spec['where']['column']} = {spec['where']['equals']!r}"
        for col in [spec.get("column"), spec.get("where", {}).get("column")]:
            if not col:
                continue
            dims = [j for j in spec["_joins"] if col in j["columns"]]
            # PyYAML reads YAML 1.1, where the key `on` is the boolean True
            expected = (
                f"{dims[0]['dimension']}.{col} (joined on {dims[0].get('on', dims[0].get(True))})"
                if dims
                else f"{spec['_source']}.{col}"
            )
            assert expected in calc["source_columns"], (name, calc["source_columns"])
        assert e["update_frequency"] == {"schedule": "daily at 02:30 UTC (schedule '30 2 * * *')", "declared": "daily"}
        assert sorted((r["table"], r["check"]) for r in e["quality_rules"]) == _expected_rules(name, spec), name
        lineage = e["lineage"]
        assert lineage["feature_table"].endswith(f"/demo/features/{spec['_set']}")
        assert [s["source"] for s in lineage["raw_sources"]] == [spec["_source"]] + [
            j["dimension"] for j in spec["_joins"]
        ]
        assert lineage["validated_tables"][0].endswith(f"/demo/validated/{spec['_source']}")
    # different features have different fingerprints; a set's features share its set fingerprint
    assert len({e["fingerprint"] for e in entries.values()}) == 21
    assert len({e["feature_set_fingerprint"] for e in entries.values()}) == 2
    assert "(t - 7d, t]" in entries["amount_sum_7d"]["calculation"]["text"]

    markdown = (tmp_path / "demo.md").read_text()
    for name in raw:
        section = markdown.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0]
        assert [
            line.split("|")[1].strip()
            for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| |")
        ] == FIELDS, name
    parser = _Headings()
    parser.feed((tmp_path / "demo.html").read_text())
    assert sorted(parser.ids) == sorted(raw)
    assert parser.th.count("Business meaning") == 21 and parser.th.count("Lineage") == 21


def _expected_rules(name, spec) -> list[tuple[str, str]]:
    """Rules of demo.yaml that guard a feature: on the feature (or a ratio's inputs) in its feature
    table, table-wide rules there, and rules on the source columns it reads in the validated table."""
    tables = yaml.safe_load(DEMO.read_text())["quality"]["tables"]
    own = {name, spec.get("numerator"), spec.get("denominator")} - {None}
    reads = {spec.get("column"), spec.get("where", {}).get("column")} - {None}
    out = []
    for table, table_spec in tables.items():
        for rule in table_spec.get("rules", []):
            columns = set(rule.get("columns", [])) | ({rule["column"]} if "column" in rule else set())
            if (table == f"features.{spec['_set']}" and (not columns or columns & own)) or (
                table == f"validated.{spec['_source']}" and columns & reads
            ):
                out.append((table, rule["check"]))
    return sorted(out)


def _write(project, doc) -> str:
    path = project / "conf" / "pipelines" / "p.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def _doc(window="7d", description="spend"):
    return {
        "pipeline": "shop",
        "owner": "team@x",
        "sources": {
            "tx": {
                "kind": "events",
                "format": "csv",
                "path": "tx",
                "partition_column": "event_date",
                "event_time": "ts",
                "key": "id",
                "columns": {"id": "string", "cust": "bigint", "ts": "timestamp", "amount": "double"},
            }
        },
        "feature_sets": [
            {
                "name": "cust",
                "description": "d",
                "owner": "o",
                "version": 2,
                "source": "tx",
                "entity": "cust",
                "features": [
                    {
                        "name": "spend_7d",
                        "function": "sum",
                        "column": "amount",
                        "window": window,
                        "description": description,
                    },
                    {"name": "n_1d", "function": "count", "window": "1d", "description": "n"},
                ],
            }
        ],
        "quality": {
            "tables": {
                "validated.tx": {"rules": [{"check": "range", "column": "amount", "min": 0, "severity": "warn"}]},
                "features.cust": {"rules": [{"check": "not_null", "columns": ["n_1d"], "severity": "warn"}]},
            }
        },
    }


def test_catalog_fingerprint_follows_definition_not_wording(project):
    base = build_catalog(load_pipeline(_write(project, _doc()), env="local"))
    reworded = build_catalog(load_pipeline(_write(project, _doc(description="money spent")), env="local"))
    rewindowed = build_catalog(load_pipeline(_write(project, _doc(window="14d")), env="local"))

    def fp(catalog, name):
        return next(f for f in catalog["feature_sets"][0]["features"] if f["name"] == name)

    assert fp(base, "spend_7d")["fingerprint"] == fp(reworded, "spend_7d")["fingerprint"]
    assert fp(base, "spend_7d")["fingerprint"] != fp(rewindowed, "spend_7d")["fingerprint"]
    assert fp(base, "n_1d")["fingerprint"] == fp(rewindowed, "n_1d")["fingerprint"]
    assert fp(base, "spend_7d")["feature_set_fingerprint"] != fp(rewindowed, "spend_7d")["feature_set_fingerprint"]
    # quality rules guarding a feature: on its input column, or on the feature itself
    assert [r["check"] for r in fp(base, "spend_7d")["quality_rules"]] == ["range"]
    assert [r["check"] for r in fp(base, "n_1d")["quality_rules"]] == ["not_null"]
    assert fp(base, "spend_7d")["update_frequency"] == {"schedule": None, "declared": "daily"}


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_catalog_lineage_from_run_log(spark, project):
    config = load_pipeline(_write(project, _doc()), env="local")
    day = dt.date(2026, 9, 1)
    built = RunRecord(pipeline="shop", job="features", target="cust", start_date=day, end_date=day)
    built.output_versions = {"features.cust": 3}
    built.finish("succeeded")
    training = RunRecord(pipeline="shop", job="training_set", target="churn_train_v1", start_date=day, end_date=day)
    training.input_versions = {"features.cust": 3}  # as the training-set job records its inputs
    training.finish("succeeded")
    unrelated = RunRecord(pipeline="shop", job="training_set", target="other", start_date=day, end_date=day)
    unrelated.input_versions = {"features.customer": 1}
    unrelated.finish("succeeded")
    for record in (built, training, unrelated):
        append_run(spark, config.tables.run_log, record, root=config.env.warehouse)
    from featuremill.storage.registry import REGISTRY_SCHEMA

    registry_row = dict.fromkeys(spark.createDataFrame([], REGISTRY_SCHEMA).columns)
    registry_row.update(model="churn", model_version="7", pipeline="shop", feature_sets={"cust": 2})
    spark.createDataFrame([registry_row], REGISTRY_SCHEMA).write.format("delta").save(config.tables.model_registry)

    runs, models = read_lineage_inputs(spark, config)
    catalog = build_catalog(config, runs=runs, models=models)
    lineage = catalog["feature_sets"][0]["features"][0]["lineage"]
    assert lineage["last_run"]["run_id"] == built.run_id
    assert lineage["last_run"]["output_versions"] == {"features.cust": 3}
    assert lineage["last_run"]["dates"] == "2026-09-01..2026-09-01"
    assert lineage["consumers"][:1] == [
        {"kind": "training set", "name": "churn_train_v1", "run_id": training.run_id, "at": str(training.finished_at)}
    ]
    assert [m["model"] for m in models] == ["churn"]
    assert {"kind": "model", "name": "churn", "version": "7"} in build_catalog(config, runs=runs, models=models)[
        "feature_sets"
    ][0]["features"][0]["lineage"]["consumers"]


@pytest.mark.parametrize("missing", ["description", "owner"])
def test_catalog_requires_meaning_and_owner(project, missing):
    from featuremill.core.errors import ConfigError

    doc = _doc()
    del doc["feature_sets"][0][missing]
    with pytest.raises(ConfigError, match=missing):
        load_pipeline(_write(project, doc), env="local")


def _all_strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *_all_strings(v)]]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _all_strings(v)]
    return []


def test_catalog_never_names_an_internal_column(project, tmp_path, capsys):
    """The catalog lists the declared features only: a quality rule on a bookkeeping column
    (``_feature_set_version``) guards no feature, and a feature declared under the reserved ``_``
    prefix stops `featuremill docs` with the path to rename, before anything is written."""
    doc = _doc()
    doc["quality"]["tables"]["features.cust"]["rules"].append(
        {"check": "not_null", "columns": ["_feature_set_version"], "severity": "warn"}
    )
    catalog = build_catalog(load_pipeline(_write(project, doc), env="local"))
    assert [f["name"] for f in catalog["feature_sets"][0]["features"]] == ["spend_7d", "n_1d"]
    assert [s for s in _all_strings(catalog) if s.startswith("_")] == []

    doc["feature_sets"][0]["features"].append(
        {"name": "_n_7d", "function": "count", "window": "7d", "description": "internal-looking"}
    )
    out = tmp_path / "docs"
    assert main(["docs", _write(project, doc), "--out", str(out), "--no-lineage"]) == 2
    err = capsys.readouterr().err
    assert "feature_sets[0].features[2].name: feature name '_n_7d' starts with '_'" in err
    assert "rename it" in err
    assert not out.exists()


def test_catalog_names_a_renamed_joined_column_by_its_dimension_column(project):
    doc = _doc()
    doc["sources"]["tx"]["columns"]["year"] = "int"
    doc["sources"]["products"] = {
        "kind": "dimension",
        "format": "csv",
        "path": "products",
        "key": "sku",
        "columns": {"sku": "bigint", "year": "int"},
    }
    doc["sources"]["tx"]["columns"]["sku"] = "bigint"
    fs = doc["feature_sets"][0]
    fs["joins"] = [{"dimension": "products", "on": "sku", "columns": {"year": "release_year"}}]
    fs["features"] += [
        {"name": "newest_7d", "function": "max", "column": "release_year", "window": "7d", "description": "n"},
        {"name": "oldest_own_7d", "function": "min", "column": "year", "window": "7d", "description": "o"},
    ]
    doc["quality"]["tables"]["validated.products"] = {
        "rules": [{"check": "range", "column": "year", "min": 1900, "severity": "warn"}]
    }
    catalog = build_catalog(load_pipeline(_write(project, doc), env="local"))
    features = {f["name"]: f for f in catalog["feature_sets"][0]["features"]}
    assert features["newest_7d"]["calculation"]["source_columns"] == ["products.year as release_year (joined on sku)"]
    assert features["oldest_own_7d"]["calculation"]["source_columns"] == ["tx.year"]
    # the rule on the dimension's year guards the feature over it, not the one over the events' own year
    assert [r["check"] for r in features["newest_7d"]["quality_rules"]] == ["range"]
    assert features["oldest_own_7d"]["quality_rules"] == []
