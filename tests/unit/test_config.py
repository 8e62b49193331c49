"""featuremill validate: every kind of bad config is rejected with the file and the path in it."""

from __future__ import annotations

import copy

import pytest
import yaml

from featuremill.cli import main
from featuremill.config import load_pipeline, parse_duration
from featuremill.core.errors import ConfigError
from tests.conftest import ROOT

BASE = {
    "pipeline": "shop",
    "owner": "team@example.com",
    "sources": {
        "tx": {
            "kind": "events",
            "format": "csv",
            "path": "tx",
            "partition_column": "event_date",
            "event_time": "ts",
            "key": "id",
            "columns": {
                "id": "string",
                "cust": {"type": "bigint", "nullable": False},
                "ts": "timestamp",
                "amount": "double",
                "channel": "string",
                "sku": "bigint",
            },
        },
        "products": {
            "kind": "dimension",
            "format": "csv",
            "path": "p",
            "key": "sku",
            "columns": {"sku": "bigint", "category": "string"},
        },
    },
    "feature_sets": [
        {
            "name": "cust_fs",
            "description": "d",
            "owner": "o",
            "version": 1,
            "source": "tx",
            "entity": "cust",
            "joins": [{"dimension": "products", "on": "sku", "columns": ["category"]}],
            "features": [
                {"name": "n_1h", "function": "count", "window": "1h", "description": "d"},
                {"name": "sum_7d", "function": "sum", "column": "amount", "window": "7d", "description": "d"},
                {"name": "sum_1d", "function": "sum", "column": "amount", "window": "1d", "description": "d"},
                {
                    "name": "cat_n",
                    "function": "count",
                    "window": "30d",
                    "description": "d",
                    "where": {"column": "category", "equals": "toys"},
                },
                {"name": "r", "function": "ratio", "numerator": "sum_1d", "denominator": "sum_7d", "description": "d"},
            ],
        }
    ],
}


def _load(project, doc):
    path = project / "conf" / "pipelines" / "p.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, load_pipeline(path, env="local")


def _errors(project, doc) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(project, doc)
    return [str(i) for i in info.value.issues]


def test_load_pipeline_accepts_base(project):
    path, config = _load(project, BASE)
    fs = config.feature_set("cust_fs")
    assert [f.name for f in fs.features] == ["n_1h", "sum_7d", "sum_1d", "cat_n", "r"]
    assert fs.lookback_seconds == 30 * 86400
    assert config.source("tx").path == str((project / "data" / "tx").resolve())
    assert config.tables.features("cust_fs") == str((project / "warehouse").resolve()) + "/shop/features/cust_fs"


def test_validate_bad_duration_names_file_and_path(project):
    doc = copy.deepcopy(BASE)
    doc["feature_sets"][0]["features"][3]["window"] = "7x"
    errors = _errors(project, doc)
    assert errors == [
        f"{project}/conf/pipelines/p.yaml: feature_sets[0].features[3].window: '7x' is not a duration (use 30m, 1h, 7d)"
    ]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["sources"]["tx"].update(colums={}), "sources.tx.colums: unknown key (did you mean 'columns'?)"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (
            lambda d: d["feature_sets"][0].update(version="one"),
            "feature_sets[0].version: expected an integer, got string 'one'",
        ),
        (
            lambda d: d["sources"]["tx"]["columns"].update(amount="money"),
            "sources.tx.columns.amount.type: 'money' is not a supported type",
        ),
        (
            lambda d: d["feature_sets"][0]["features"][1].update(column="amt"),
            "feature_sets[0].features[1].column: column 'amt' is not a column of the source or its event-level joins",
        ),
        (
            lambda d: d["feature_sets"][0].update(source="clicks"),
            "feature_sets[0].source: source 'clicks' is not declared under sources",
        ),
        (
            lambda d: d["feature_sets"][0]["features"][2].update(name="n_1h"),
            "feature_sets[0].features[2].name: duplicate feature name 'n_1h'",
        ),
        (
            lambda d: d["feature_sets"][0]["features"][4].update(denominator="nope"),
            "feature_sets[0].features[4].denominator: feature 'nope' is not declared in this feature set",
        ),
        (
            lambda d: d["feature_sets"][0].update(entity="customer"),
            "feature_sets[0].entity: column 'customer' is not declared in source 'tx'",
        ),
        (
            lambda d: d["sources"]["tx"].update(event_time="when"),
            "sources.tx.event_time: column 'when' is not declared in columns",
        ),
        (
            lambda d: d["feature_sets"][0]["joins"][0].update(on="cust"),
            "feature_sets[0].joins[0].on: column 'cust' is not declared in dimension 'products'",
        ),
        (
            lambda d: d["feature_sets"][0]["features"][0].pop("window"),
            "feature_sets[0].features[0].window: is required for function 'count'",
        ),
        (
            lambda d: d["feature_sets"][0]["features"][1].update(function="median"),
            "feature_sets[0].features[1].function: 'median' is not one of",
        ),
        (
            lambda d: d["feature_sets"][0]["features"][1].update(column="channel", function="mean"),
            "feature_sets[0].features[1].column: mean needs a numeric column, 'channel' is string",
        ),
        (
            lambda d: d["feature_sets"][0]["features"][1].update(function="percentile"),
            "feature_sets[0].features[1].percentile: is required for function 'percentile' (e.g. 0.9)",
        ),
        (
            lambda d: d["feature_sets"][0]["features"][1].update(function="percentile", percentile=90),
            "feature_sets[0].features[1].percentile: expected a number between 0 and 1 exclusive",
        ),
        (
            lambda d: d["feature_sets"][0]["features"][1].update(percentile=0.5),
            "feature_sets[0].features[1].percentile: only function 'percentile' takes a percentile",
        ),
        (
            lambda d: d["feature_sets"][0]["features"][1].update(
                column="channel", function="percentile", percentile=0.5
            ),
            "feature_sets[0].features[1].column: percentile needs a numeric column, 'channel' is string",
        ),
    ],
)
def test_validate_rejects_each_kind_of_error(project, mutate, expected):
    doc = copy.deepcopy(BASE)
    mutate(doc)
    errors = _errors(project, doc)
    prefix = f"{project}/conf/pipelines/p.yaml: "
    assert all(e.startswith(prefix) for e in errors), errors
    assert any(e[len(prefix) :].startswith(expected) for e in errors), errors


def test_validate_reports_every_error_at_once(project):
    doc = copy.deepcopy(BASE)
    doc["feature_sets"][0]["features"][0]["window"] = "1y"
    doc["feature_sets"][0]["features"][1]["window"] = "-3d"
    errors = _errors(project, doc)
    assert len(errors) == 2


def test_yaml_on_key_is_not_a_boolean(project):
    # YAML 1.1 reads `on:` as True; the join's `on` key must survive as a string key.
    path = project / "conf" / "pipelines" / "p.yaml"
    text = yaml.safe_dump(BASE, sort_keys=False).replace("'on': sku", "on: sku")
    assert "\n    on: sku" in text
    path.write_text(text)
    assert load_pipeline(path).feature_set("cust_fs").joins[0].on == ("sku",)


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("1h", 3600), ("7d", 604800), ("2w", 1209600), ("45s", 45)])
def test_parse_duration_accepts(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["7x", "0d", "d", "1.5h", "", None, "7 days"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_cli_validate_exit_codes(project, capsys):
    assert main(["validate", str(ROOT / "conf" / "pipelines" / "demo.yaml")]) == 0
    assert "ok (3 sources, 2 feature sets" in capsys.readouterr().out
    doc = copy.deepcopy(BASE)
    doc["feature_sets"][0]["features"][3]["window"] = "7x"
    path = project / "conf" / "pipelines" / "bad.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: feature_sets[0].features[3].window: '7x' is not a duration (use 30m, 1h, 7d)" in out


def test_cli_unexpected_error_prints_its_one_line_first_then_the_detail(monkeypatch, capsys):
    import featuremill.commands.validate as validate

    def broken(args):
        raise RuntimeError("[FAILED_READ_FILE.NO_HINT] Encountered error while reading file x.csv.\n\tat org.Foo")

    monkeypatch.setattr(validate, "run", broken)
    assert main(["validate", str(ROOT / "conf" / "pipelines" / "demo.yaml")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "featuremill validate: error: RuntimeError: [FAILED_READ_FILE.NO_HINT] Encountered error while reading file x.csv."
    )
    assert err[1].startswith("detail (an unexpected error")
    assert err[2] == "Traceback (most recent call last):"
    assert "\tat org.Foo" in err


def test_cli_help_lists_verbs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for verb in ("validate", "run", "generate-data", "demo"):
        assert verb in out


def test_env_overlay_expands_variables_and_fails_when_unset(project, tmp_path):
    env = project / "conf" / "env" / "cluster.yaml"
    env.write_text("warehouse: ${WH_ROOT}/wh\ndata_root: s3://bucket/raw\n")
    path = project / "conf" / "pipelines" / "p.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False))
    config = load_pipeline(path, env="cluster", environ={"WH_ROOT": "s3://bucket"})
    assert config.env.warehouse == "s3://bucket/wh"
    assert config.source("tx").path == "s3://bucket/raw/tx"
    with pytest.raises(ConfigError, match=r"cluster.yaml: warehouse: environment variable WH_ROOT is not set"):
        load_pipeline(path, env="cluster", environ={})


def _pipeline_outside(tmp_path):
    """The BASE pipeline in a folder of its own, with no conf/ anywhere above it."""
    folder = tmp_path / "mine"
    folder.mkdir()
    path = folder / "my_pipeline.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False))
    return path


def test_load_pipeline_outside_a_project_uses_the_builtin_local_env(tmp_path, monkeypatch):
    path = _pipeline_outside(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = load_pipeline(path, env="local")
    assert config.env.name == "local"
    assert config.env.warehouse == str(tmp_path / "warehouse")
    assert config.env.data_root == str(tmp_path / "data")
    assert config.source("tx").path == str(tmp_path / "data" / "tx")


def test_find_env_file_nearest_conf_env_above_the_pipeline_then_cwd(tmp_path, monkeypatch):
    from featuremill.config import find_env_file

    project = tmp_path / "proj"
    (project / "pipelines" / "team").mkdir(parents=True)
    pipeline = project / "pipelines" / "team" / "p.yaml"
    pipeline.write_text("")
    cwd = tmp_path / "elsewhere"
    (cwd / "conf" / "env").mkdir(parents=True)
    (cwd / "conf" / "env" / "prod.yaml").write_text("warehouse: w\ndata_root: d\n")
    monkeypatch.chdir(cwd)
    assert find_env_file(pipeline, "prod") == cwd / "conf" / "env" / "prod.yaml"
    (project / "conf" / "env").mkdir(parents=True)
    (project / "conf" / "env" / "prod.yaml").write_text("warehouse: w\ndata_root: d\n")
    assert find_env_file(pipeline, "prod") == project / "conf" / "env" / "prod.yaml"
    # a folder named like the environment is not an environment file
    (cwd / "prod").mkdir()
    assert find_env_file(pipeline, "prod") == project / "conf" / "env" / "prod.yaml"


def test_cli_validate_outside_a_project_names_the_places_searched(tmp_path, monkeypatch, capsys):
    path = _pipeline_outside(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prod").mkdir()  # a folder of that name must not be taken for the environment
    assert main(["validate", str(path), "--env", "prod"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: environment 'prod' not found (looked for {tmp_path / 'mine' / 'conf' / 'env'}")
    assert str(tmp_path / "conf" / "env" / "prod.yaml") in out[0]
    assert "--env local" in out[0]
    assert out[1] == f"{path}: 1 error(s)"
    assert main(["validate", str(path)]) == 0
    n_features = sum(len(fs["features"]) for fs in BASE["feature_sets"])
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"{path}: ok (2 sources, 1 feature sets, {n_features} features; environment local)"
    )


def test_wrapped_never_cuts_a_word():
    from featuremill.commands import wrapped

    reason = (
        "redundant with amount_sum_7d (|correlation| 0.981 >= 0.95), which is more label-relevant "
        "(mutual information 0.0412 vs 0.0398)"
    )
    text = wrapped("    dropped amount_sum_30d: ", reason, indent=6, width=60)
    lines = text.splitlines()
    assert len(lines) > 1 and all(len(line) <= 60 for line in lines)
    assert all(line.startswith("      ") for line in lines[1:])
    assert text.split() == ("    dropped amount_sum_30d: " + reason).split()


def test_join_as_of_and_broadcast_parse_with_their_defaults(project):
    _, config = _load(project, BASE)
    join = config.feature_set("cust_fs").joins[0]
    assert (join.as_of, join.broadcast) == ("event_time", "always")
    doc = copy.deepcopy(BASE)
    doc["feature_sets"][0]["joins"][0].update(as_of="latest", broadcast="auto")
    _, config = _load(project, doc)
    join = config.feature_set("cust_fs").joins[0]
    assert (join.as_of, join.broadcast) == ("latest", "auto")


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda d: d["feature_sets"][0]["joins"][0].update(as_of="today"),
            "feature_sets[0].joins[0].as_of: 'today' is not one of",
        ),
        (
            lambda d: d["feature_sets"][0]["joins"][0].update(broadcast="never"),
            "feature_sets[0].joins[0].broadcast: 'never' is not one of",
        ),
        (
            lambda d: d["sources"]["products"]["columns"].update(valid_to="timestamp"),
            "sources.products.columns: 'valid_to' is reserved in a dimension",
        ),
    ],
)
def test_validate_rejects_bad_dimension_join_settings(project, mutate, expected):
    doc = copy.deepcopy(BASE)
    mutate(doc)
    errors = _errors(project, doc)
    prefix = f"{project}/conf/pipelines/p.yaml: "
    assert any(e[len(prefix) :].startswith(expected) for e in errors), errors


@pytest.mark.parametrize(
    "option, value",
    [
        ("mode", "DROPMALFORMED"),
        ("MODE", "FAILFAST"),
        ("enforceSchema", True),
        ("header", False),
        ("columnNameOfCorruptRecord", "_bad"),
        ("basePath", "/elsewhere"),
    ],
)
def test_reader_options_that_switch_off_row_accounting_are_refused_naming_file_and_field(project, option, value):
    doc = copy.deepcopy(BASE)
    doc["sources"]["tx"]["options"] = {"sep": ";", option: value}
    with pytest.raises(ConfigError) as err:
        _load(project, doc)
    [issue] = err.value.issues
    assert issue.file.endswith("p.yaml")
    assert issue.path == f"sources.tx.options.{option}"
    assert f"reader option {option!r} cannot be set" in str(err.value)


def test_allow_empty_is_an_events_source_flag(project):
    doc = copy.deepcopy(BASE)
    doc["sources"]["tx"]["allow_empty"] = True
    _, config = _load(project, doc)
    assert config.source("tx").allow_empty and not config.source("products").allow_empty
    doc["sources"]["products"]["allow_empty"] = True
    assert any("sources.products.allow_empty" in e for e in _errors(project, doc))


@pytest.mark.parametrize(
    "mutate, path",
    [
        (lambda d: d["sources"]["tx"]["columns"].update({"_flag": "string"}), "sources.tx.columns._flag"),
        (
            lambda d: d["sources"]["products"]["columns"].update({"_region": "string"}),
            "sources.products.columns._region",
        ),
        (lambda d: d["feature_sets"][0]["features"][0].update({"name": "_n_1h"}), "features[0].name"),
        (lambda d: d.update({"selection": {"label": "_known_at"}}), "selection.label"),
        (lambda d: d.update({"selection": {"label": "y", "features": ["n_1h", "_x"]}}), "selection.features"),
        (
            lambda d: d.update(
                {"preprocessing": {"label": "_known_at", "transforms": [{"columns": "sum_7d", "scale": "standard"}]}}
            ),
            "preprocessing.label",
        ),
    ],
    ids=["source_column", "dimension_column", "feature", "selection_label", "selection_feature", "preprocessing_label"],
)
def test_names_under_the_reserved_internal_prefix_are_refused(project, mutate, path):
    """User-declared names may not start with '_', the prefix of featuremill's internal columns
    (every user-facing reader leaves those out): one issue, at the right path, saying to rename."""
    doc = copy.deepcopy(BASE)
    mutate(doc)
    with pytest.raises(ConfigError) as err:
        _load(project, doc)
    [issue] = err.value.issues
    assert issue.file.endswith("p.yaml")
    assert issue.path.endswith(path), issue.path
    assert "starts with '_', the prefix featuremill reserves for its internal columns" in issue.message
    assert "rename it" in issue.message


def _with_year(doc):
    """BASE with a ``year`` column in both the events and the products dimension."""
    doc["sources"]["tx"]["columns"]["year"] = "int"
    doc["sources"]["products"]["columns"]["year"] = "int"
    return doc


def test_join_columns_mapping_renames_a_dimension_column(project):
    doc = _with_year(copy.deepcopy(BASE))
    doc["feature_sets"][0]["joins"][0]["columns"] = {"year": "release_year", "category": "category"}
    doc["feature_sets"][0]["features"].append(
        {
            "name": "newest_release_7d",
            "function": "max",
            "column": "release_year",
            "window": "7d",
            "description": "d",
            "where": {"column": "release_year", "equals": 2020},
        }
    )
    _, config = _load(project, doc)
    fs = config.feature_set("cust_fs")
    join = fs.joins[0]
    assert join.columns == ("year", "category")
    assert join.renames == (("year", "release_year"),)
    assert join.output_columns == ("release_year", "category")
    assert (join.dimension_column("release_year"), join.dimension_column("year")) == ("year", None)
    newest = fs.features[-1]
    assert (newest.column, newest.where.column, newest.dtype) == ("release_year", "release_year", "int")


def test_join_columns_list_form_has_no_renames(project):
    _, config = _load(project, BASE)
    join = config.feature_set("cust_fs").joins[0]
    assert (join.columns, join.renames, join.output_columns) == (("category",), (), ("category",))


@pytest.mark.parametrize(
    "columns, expected",
    [
        (
            ["year"],
            "feature_sets[0].joins[0].columns: column 'year' already exists before the join (a column of source "
            "'tx'); join it under another name with the mapping form columns: {year: products_year}",
        ),
        (
            {"year": "amount"},
            "feature_sets[0].joins[0].columns.year: 'amount', the name given to column 'year', already exists "
            "before the join (a column of source 'tx'); pick another name",
        ),
        (
            {"year": "event_date"},
            "feature_sets[0].joins[0].columns.year: 'event_date', the name given to column 'year', already exists",
        ),
        (
            {"year": "_year"},
            "feature_sets[0].joins[0].columns.year: new name '_year' starts with '_', the prefix featuremill reserves",
        ),
        (
            {"year": "release year"},
            "feature_sets[0].joins[0].columns.year: 'release year' is not a valid name",
        ),
        (
            {"year": None},
            "feature_sets[0].joins[0].columns.year: expected a non-empty string, got nothing",
        ),
        (
            {"year": "y", "category": "y"},
            "feature_sets[0].joins[0].columns: columns ['year', 'category'] are all joined as 'y'",
        ),
        (
            {"colour": "product_colour"},
            "feature_sets[0].joins[0].columns.colour: column 'colour' is not declared in dimension 'products'",
        ),
        (
            ["category", {"year": "release_year"}],
            "feature_sets[0].joins[0].columns: mixes names and mappings; list the names",
        ),
        (
            {},
            "feature_sets[0].joins[0].columns: expected a column name, a list of names or a mapping",
        ),
        (
            # renamed away: the feature's where filter on the dimension's own name no longer resolves
            {"category": "product_category"},
            "feature_sets[0].features[3].where.column: column 'category' is not a column of the source or its "
            "event-level joins",
        ),
    ],
)
def test_validate_rejects_bad_join_column_renames(project, columns, expected):
    doc = _with_year(copy.deepcopy(BASE))
    doc["feature_sets"][0]["joins"][0]["columns"] = columns
    errors = _errors(project, doc)
    prefix = f"{project}/conf/pipelines/p.yaml: "
    assert any(e.startswith(prefix + expected) for e in errors), errors


def test_validate_rejects_a_rename_onto_another_joins_column(project):
    doc = _with_year(copy.deepcopy(BASE))
    doc["sources"]["customers"] = {
        "kind": "dimension",
        "format": "csv",
        "path": "c",
        "key": "cust",
        "columns": {"cust": "bigint", "segment": "string", "year": "int"},
    }
    joins = doc["feature_sets"][0]["joins"]
    joins[0]["columns"] = {"year": "release_year", "category": "category"}
    joins.append({"dimension": "customers", "on": "cust", "columns": {"year": "release_year"}, "level": "entity"})
    errors = _errors(project, doc)
    assert errors == [
        f"{project}/conf/pipelines/p.yaml: feature_sets[0].joins[1].columns.year: 'release_year', the name given to "
        "column 'year', already exists before the join (joined by feature_sets[0].joins[0]); pick another name"
    ]
    joins[1]["columns"] = {"year": "signup_year", "segment": "segment"}
    doc["feature_sets"][0]["features"][0]["name"] = "signup_year"
    errors = _errors(project, doc)
    assert errors == [
        f"{project}/conf/pipelines/p.yaml: feature_sets[0].features[0].name: 'signup_year' clashes with a key or "
        "joined column"
    ]
