"""Tables by name: an environment with ``tables: {schema: ...}`` runs the demo pipeline end to end
against a Hive metastore (Spark's built-in one, Derby under a temporary folder), replay and a
training set included, and every table it writes equals, value by value, the same pipeline run
by path in the test session. No Delta table lands under the environment's warehouse path.

``spark.sql.catalogImplementation`` is a static conf and the test session is not a Hive one, so
the named run happens in a subprocess (:mod:`tests.integration.metastore_run`: one JVM for all
the jobs, the CLI's re-run of a day by name included).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import ROOT, TEST_SPARK_CONF
from tests.integration.metastore_run import END, FEATURE_SET, START, run_steps
from tests.jvm_archive import enabled_options

pytestmark = pytest.mark.slow

DEMO = ROOT / "conf" / "pipelines" / "demo.yaml"
SCHEMA = "fm_test"
#: What each named table is, as the table the path-based run wrote (relative to <warehouse>/demo).
SAME_AS_PATH = {
    "demo__validated__transactions": "validated/transactions",
    "demo__validated__customers": "validated/customers",
    "demo__validated__products": "validated/products",
    "demo__quarantine": "quarantine",
    "demo__features__customer_activity": "features/customer_activity",
}


def _env_file(tmp: Path, data_root: Path, *, named: bool) -> Path:
    """An environment file: by path (the reference) or naming its tables in a Derby-backed metastore."""
    name = "named" if named else "paths"
    spark = dict(TEST_SPARK_CONF)
    meta = tmp / "metastore"
    if named:
        # the test session's settings too, so both runs plan (and sum) alike; Derby's home (its
        # derby.log) under tmp rather than the current folder
        spark.update(
            {
                "spark.sql.catalogImplementation": "hive",
                "spark.sql.warehouse.dir": str(meta / "spark-warehouse"),
                "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={meta}/metastore_db;create=true",
                "spark.driver.extraJavaOptions": f"{spark['spark.driver.extraJavaOptions']} -Dderby.system.home={meta}",
            }
        )
    text = textwrap.dedent(f"""\
        warehouse: {tmp / (name + "-warehouse")}
        data_root: {data_root}
        master: local[2]
    """)
    if named:
        text += f"tables: {{schema: {SCHEMA}}}\n"
        text += "spark:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in spark.items())
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return path


def _spine(tmp: Path) -> Path:
    """Labels: a few customers at a time on the last day (CSV with a header)."""
    path = tmp / "spine.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "label_ts"])
        for customer in range(1, 41):
            writer.writerow([customer, f"{END.isoformat()} {customer % 24:02d}:30:00"])
    return path


def _rows(df) -> list[tuple]:
    """Every row, every column (in name order), rows sorted: for an exact comparison."""
    columns = sorted(df.columns)
    return sorted((tuple(r) for r in df.select(*columns).collect()), key=repr)


def _delta_tables_under(folder: Path) -> list[str]:
    return sorted(str(p.parent) for p in folder.rglob("_delta_log"))


def test_pipeline_naming_its_tables_runs_against_the_metastore_like_by_path(spark, tmp_path):
    from featuremill.pipelines.demo_data import DemoDataSpec, write_demo_data
    from featuremill.storage import io

    data_root = tmp_path / "data"
    write_demo_data(spark, data_root, DemoDataSpec(events=1500, days=3, start=START.isoformat()))
    spine = _spine(tmp_path)
    named_env = _env_file(tmp_path, data_root, named=True)
    export = tmp_path / "export"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    env["SPARK_SUBMIT_OPTS"] = enabled_options()  # the run's class archive (tests/jvm_archive.py)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "lib")])
    # the named run starts first and the reference (the same steps by path, in the test session)
    # runs while it does: they share only the raw data and the spine, which both only read, and
    # the subprocess's JVM start and Hive set-up leave a core free
    # (its output goes to files: a full pipe would stop it until the reference is done)
    out_path, err_path = tmp_path / "named-run.out", tmp_path / "named-run.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        named_run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.metastore_run",
                str(DEMO),
                str(named_env),
                str(spine),
                str(export),
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=err,
        )
        try:
            reference_env = _env_file(tmp_path, data_root, named=False)
            reference = run_steps(
                spark, str(DEMO), str(reference_env), str(spine), str(tmp_path / "paths-warehouse" / "ts")
            )
            named_run.wait(timeout=1500)
        finally:
            if named_run.poll() is None:
                named_run.kill()
                named_run.wait()
    stdout = out_path.read_text()
    assert named_run.returncode == 0, err_path.read_text()[-4000:]
    named = json.loads(stdout.strip().splitlines()[-1])
    root = reference["config"].tables.root

    # the named run used the metastore, and every table it wrote is a managed table there
    assert named["catalog"] == "hive"
    assert named["features"] == f"{SCHEMA}.demo__features__{FEATURE_SET}"
    assert set(SAME_AS_PATH) | {"demo__run_log", "demo__training__spine"} <= set(named["tables"])
    assert named["replay_output"].startswith(f"{SCHEMA}.demo__replay__")
    assert named["replay_output"].endswith(f"__features__{FEATURE_SET}")
    assert named["replay_output"].split(".", 1)[1] in named["tables"]
    spark_warehouse = (tmp_path / "metastore" / "spark-warehouse").resolve()
    for table, location in named["locations"].items():
        assert location.startswith("file:"), location
        assert Path(urlparse(location).path).parent == spark_warehouse / f"{SCHEMA}.db", (table, location)
    # ... and no Delta table under the environment's warehouse path, which holds documents only
    named_warehouse = tmp_path / "named-warehouse"
    assert _delta_tables_under(named_warehouse) == []
    manifest = named_warehouse / "demo" / "manifests" / f"{SCHEMA}.demo__training__spine.manifest.json"
    assert json.loads(manifest.read_text())["kind"] == "featuremill.training_set"
    assert not (tmp_path / "derby.log").exists()

    # value by value, each named table equals the table the path-based run wrote
    for table, relative in SAME_AS_PATH.items():
        got = _rows(spark.read.parquet(str(export / table)))
        want = _rows(io.read_delta(spark, f"{root}/{relative}"))
        assert want, table
        assert got == want, table
    got = _rows(spark.read.parquet(str(export / "demo__training__spine")))
    assert reference["training_exit"] == named["training_exit"] == 0
    assert got == _rows(io.read_delta(spark, str(tmp_path / "paths-warehouse" / "ts")))
    assert len(got) == 40

    # replay: time travel by name gives run A's rows, which the replay recomputed
    assert named["version_a"] == reference["version_a"] < named["version_now"] == reference["version_now"]
    at_run_a = _rows(spark.read.parquet(str(export / "features_at_run_a")))
    assert at_run_a == _rows(io.read_delta(spark, reference["features"], version=reference["version_a"]))
    assert at_run_a != _rows(spark.read.parquet(str(export / f"demo__features__{FEATURE_SET}")))
    replay_table = named["replay_output"].split(".", 1)[1]
    assert _rows(spark.read.parquet(str(export / replay_table))) == _rows(
        io.read_delta(spark, reference["replay_output"])
    )
    assert named["replay_identical"] and reference["replay_identical"]

    # the run log records the same jobs by name as by path
    def jobs(df):
        return sorted((r["job"], r["target"], r["status"]) for r in df.collect())

    named_log = jobs(spark.read.parquet(str(export / "demo__run_log")))
    path_log = jobs(io.read_delta(spark, reference["config"].tables.run_log))
    assert [j[0] for j in named_log] == [j[0] for j in path_log]

    # Feast reads the named table through the metastore, the path-based one through delta.`path`
    assert f"FROM `{SCHEMA}`.`demo__features__{FEATURE_SET}`" in " ".join(named["queries"])
    assert "delta.`" not in " ".join(named["queries"])
    assert "FROM delta.`" in " ".join(reference["queries"])

    # the CLI by name (in the named run's process: Derby's metastore admits one JVM at a time):
    # re-running the last day's ingest changes no table (idempotent) and records the run
    assert named["rerun_exit"] == 0
    before, after = named["versions_before_rerun"], named["versions_after_rerun"]
    assert after["validated__transactions"] == before["validated__transactions"] is not None
    assert after["quarantine"] == before["quarantine"] is not None
    assert after["run_log"] > before["run_log"]
    assert _delta_tables_under(named_warehouse) == []
