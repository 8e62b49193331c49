"""Tables by name: the environment's ``tables:`` key, the names a pipeline's tables get, how a
reference is told to be a name or a path, and the write guard for names (no Spark needed: every
check happens before any work)."""

from __future__ import annotations

import pytest

from featuremill.config import load_pipeline
from featuremill.config.env import load_env
from featuremill.config.model import WriteRoot
from featuremill.core.errors import ConfigError, WritePathError
from featuremill.serving.repo import ViewSpec, render_definitions
from featuremill.storage import io
from tests.conftest import ROOT
from tests.unit.test_write_paths import WRITERS

DEMO = ROOT / "conf" / "pipelines" / "demo.yaml"


def _env(tmp_path, tables: str):
    path = tmp_path / "conf" / "env" / "meta.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"warehouse: /lake/featuremill\ndata_root: /lake/raw\n{tables}")
    return path


def test_env_tables_schema_and_catalog_give_the_namespace(tmp_path):
    assert load_env(_env(tmp_path, "tables: {schema: fm_test}\n")).tables_namespace == "fm_test"
    spec = load_env(_env(tmp_path, "tables: {catalog: Main, schema: ML_Features}\n"))
    assert spec.tables_namespace == "main.ml_features"  # metastores fold names to lower case
    assert spec.warehouse == "/lake/featuremill"  # documents stay there
    assert load_env(_env(tmp_path, "")).tables_namespace is None
    env = load_env(_env(tmp_path, "tables: {schema: '${SCHEMA}'}\n"), environ={"SCHEMA": "team_a"})
    assert env.tables_namespace == "team_a"


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ("tables: {catalog: main}\n", r"meta.yaml: tables.schema: is required"),
        ("tables: {schema: my-schema}\n", r"tables.schema: 'my-schema' is not a plain schema name"),
        (
            "tables: {schema: main.features}\n",
            r"tables.schema: 'main.features' is not a plain schema name.*separate keys",
        ),
        ("tables: {catalog: '`main`', schema: f}\n", r"tables.catalog: '`main`' is not a plain catalog name"),
        ("tables: {schema: 1st}\n", r"tables.schema: '1st' is not a plain schema name"),
        ("tables: {schema: fm, database: x}\n", r"tables.database: unknown key"),
        ("tables: fm_test\n", r"tables: expected a mapping, got"),
        ("tables: {schema: ''}\n", r"tables.schema: expected a non-empty string"),
        ("tables: {schema: '${NOPE}'}\n", r"tables.schema: environment variable NOPE is not set"),
    ],
)
def test_env_tables_errors_name_the_key_and_the_fix(tmp_path, tables, message):
    with pytest.raises(ConfigError, match=message):
        load_env(_env(tmp_path, tables), environ={})


def test_named_environment_names_every_table_pipeline_first(tmp_path):
    config = load_pipeline(DEMO, env=str(_env(tmp_path, "tables: {catalog: main, schema: fm}\n")))
    tables = config.tables
    assert tables.validated("transactions") == "main.fm.demo__validated__transactions"
    assert tables.quarantine == "main.fm.demo__quarantine"
    assert tables.features("customer_activity") == "main.fm.demo__features__customer_activity"
    assert tables.run_log == "main.fm.demo__run_log"
    assert tables.model_registry == "main.fm.demo__model_registry"
    assert tables.table("drift_results") == "main.fm.demo__drift_results"
    # a run id's dashes are not name characters
    assert tables.table("replay/20260901-ab12/features/x") == "main.fm.demo__replay__20260901_ab12__features__x"
    assert tables.root == "/lake/featuremill/demo"  # documents
    assert config.env.root == "/lake/featuremill" and config.env.root.namespace == "main.fm"


def test_path_environment_keeps_paths(tmp_path):
    config = load_pipeline(DEMO, env=str(_env(tmp_path, "")))
    assert config.tables.features("customer_activity") == "/lake/featuremill/demo/features/customer_activity"
    assert config.tables.table("drift_results") == "/lake/featuremill/demo/drift_results"
    assert config.env.root.namespace is None


@pytest.mark.parametrize(
    ("ref", "named"),
    [
        ("fm.demo__run_log", True),
        ("main.fm.demo__run_log", True),
        ("`main`.`fm`.`odd-name`", True),
        ("/lake/featuremill/demo/run_log", False),
        ("s3://bucket/wh/demo/run_log", False),
        ("dbfs:/wh/demo/run_log", False),
        ("file:/tmp/x.y", False),
        ("C:\\wh\\x.y", False),
        ("spine.csv/part", False),
        ("run_log", False),  # one part: not a metastore name
        ("a.b.c.d", False),
    ],
)
def test_is_table_name(ref, named):
    assert io.is_table_name(ref) is named


def test_table_identifier_quotes_names_and_paths():
    assert io.table_identifier("main.fm.demo__run_log") == "`main`.`fm`.`demo__run_log`"
    assert io.table_identifier("`main`.`fm`.`odd-name`") == "`main`.`fm`.`odd-name`"
    assert io.table_identifier("/wh/demo/run_log") == "delta.`/wh/demo/run_log`"


def test_check_write_path_names_inside_and_outside_the_namespace():
    root = WriteRoot("/lake/featuremill", "main.fm")
    assert io.check_write_path("main.fm.demo__run_log", root) == "main.fm.demo__run_log"
    assert io.check_write_path("MAIN.FM.demo__x", root) == "MAIN.FM.demo__x"
    assert io.check_write_path("/lake/featuremill/demo/manifests/x.json", root)  # documents: paths
    for outside in ("main.other.demo__run_log", "hive_metastore.fm.demo__run_log", "fm.demo__run_log"):
        with pytest.raises(
            WritePathError, match=rf"{outside}: it is outside the environment's table namespace main.fm"
        ):
            io.check_write_path(outside, root, what="run log")
    with pytest.raises(WritePathError, match=r"names no table namespace; set tables: \{schema: ...\}"):
        io.check_write_path("fm.demo__run_log", "/lake/featuremill")
    with pytest.raises(WritePathError, match="outside the warehouse root"):
        io.check_write_path("/elsewhere/t", root)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_writer_refuses_a_name_outside_the_namespace_before_any_work(name):
    """No session, no frame: the refusal comes first (a call that got further would fail on None)."""
    root = WriteRoot("/lake/featuremill", "fm")
    target = "documents.notes" if name == "write_text" else "other.demo__features__x"
    with pytest.raises(WritePathError, match="outside the environment's table namespace fm"):
        WRITERS[name](None, None, target, root)


def test_feast_source_selects_from_the_table_name(tmp_path):
    config = load_pipeline(DEMO, env=str(_env(tmp_path, "tables: {schema: fm}\n")))
    view = ViewSpec(
        name="customer_activity",
        table=config.tables.features("customer_activity"),
        keys=(("customer_id", "Int64"),),
        event_time="event_ts",
        features=(("txn_count_1d", "Int64", "Purchases in the last 24 hours"),),
        description="d",
        owner="o",
        tags=(),
        feature_set="customer_activity",
    )
    text = render_definitions(config, [view])
    assert "FROM `fm`.`demo__features__customer_activity`" in text
    assert "delta.`" not in text


def test_training_set_cli_keeps_table_names_only_in_a_named_environment(tmp_path, monkeypatch):
    from featuremill.commands.training_set import absolute

    monkeypatch.chdir(tmp_path)
    (tmp_path / "labels.csv").write_text("customer_id,label_ts\n")
    assert absolute("fm.demo__training__churn", names=True) == "fm.demo__training__churn"
    assert absolute("labels.csv", names=True) == str(tmp_path / "labels.csv")  # a file here stays a file
    assert absolute("fm.demo__training__churn") == str(tmp_path / "fm.demo__training__churn")  # paths env
    assert absolute("s3://bucket/ts", names=True) == "s3://bucket/ts"
