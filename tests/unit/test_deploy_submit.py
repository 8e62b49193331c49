"""spark-submit command lines, Delta coordinates per Spark version, and the package script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from featuremill.core.spark_versions import VersionMismatchError, delta_maven_coordinate
from featuremill.deploy.submit import SubmitError, SubmitSettings, build_submit_command, split_arguments
from tests.conftest import ROOT

DEMO = str(ROOT / "conf" / "pipelines" / "demo.yaml")
EXT = "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension"
CAT = "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog"


@pytest.mark.parametrize(
    "spark, delta, scala, expected",
    [
        ("3.5.3", "3.3.2", "2.12", "io.delta:delta-spark_2.12:3.3.2"),
        ("3.5.6-amzn-2", "3.3.2", "2.13", "io.delta:delta-spark_2.13:3.3.2"),
        ("4.0.1", "4.0.1", "2.13", "io.delta:delta-spark_2.13:4.0.1"),
        ("4.0.1", "4.1.0", "2.13", "io.delta:delta-spark_4.0_2.13:4.1.0"),
        ("4.1.1", "4.3.1", "2.13.16", "io.delta:delta-spark_4.1_2.13:4.3.1"),
        ("4.2.0", "4.4.0", "2.13", "io.delta:delta-spark_4.2_2.13:4.4.0"),
    ],
)
def test_delta_maven_coordinate_matrix(spark, delta, scala, expected):
    assert delta_maven_coordinate(spark, delta, scala) == expected


@pytest.mark.parametrize(
    "spark, delta, scala",
    [
        ("4.0.1", "3.3.2", "2.13"),
        ("3.5.3", "4.0.1", "2.13"),
        ("4.2.0", "4.3.1", "2.13"),
        ("4.0.1", "4.0.1", "2.12"),
    ],
)
def test_delta_maven_coordinate_rejects_mismatch(spark, delta, scala):
    with pytest.raises(VersionMismatchError):
        delta_maven_coordinate(spark, delta, scala)


def _settings(**kw) -> SubmitSettings:
    base = dict(
        spark_submit="/opt/spark/bin/spark-submit",
        spark_version="4.0.1",
        delta_version="4.0.1",
        project_root=str(ROOT),
        dist="/tmp/dist",
    )
    base.update(kw)
    return SubmitSettings(**base)


def _value(cmd, flag):
    return cmd[cmd.index(flag) + 1]


def test_build_submit_command_standalone_client_mode():
    cmd = build_submit_command(
        "ingest",
        DEMO,
        ["--env", "standalone", "--date", "2026-09-01"],
        ["--master", "spark://127.0.0.1:7177"],
        _settings(platform="standalone", python="/usr/bin/python3.11"),
    )
    assert cmd[0] == "/opt/spark/bin/spark-submit"
    assert EXT in cmd and CAT in cmd
    assert _value(cmd, "--packages") == "io.delta:delta-spark_2.13:4.0.1"
    assert _value(cmd, "--py-files") == "/tmp/dist/featuremill.zip"
    assert "spark.pyspark.python=/usr/bin/python3.11" in cmd
    assert "spark.driver.host=127.0.0.1" in cmd  # a cluster on this machine: loopback only
    assert _value(cmd, "--files") == f"{DEMO},{ROOT / 'conf' / 'env' / 'standalone.yaml'}"
    assert cmd[cmd.index(str(ROOT / "jobs" / "ingest.py")) :] == [
        str(ROOT / "jobs" / "ingest.py"),
        DEMO,
        "--env",
        "standalone",
        "--date",
        "2026-09-01",
    ]


def test_build_submit_command_emr_cluster_mode_uses_platform_delta_and_file_names():
    cmd = build_submit_command(
        "features",
        DEMO,
        ["--env", "emr", "--date", "2026-09-01"],
        ["--deploy-mode", "cluster"],
        _settings(platform="emr"),
    )
    assert "--packages" not in cmd
    assert (
        _value(cmd, "--jars") == "/usr/share/aws/delta/lib/delta-spark.jar,/usr/share/aws/delta/lib/delta-storage.jar"
    )
    assert EXT in cmd and CAT in cmd
    # the driver runs on the cluster: --files puts the YAML files in its working directory
    script = cmd.index(str(ROOT / "jobs" / "build_features.py"))
    assert cmd[script + 1 :] == ["demo.yaml", "--env", "emr.yaml", "--date", "2026-09-01"]
    assert _value(cmd, "--files").split(",") == [DEMO, str(ROOT / "conf" / "env" / "emr.yaml")]


def test_build_submit_command_env_archive_and_user_delta_jars():
    cmd = build_submit_command(
        "ingest",
        DEMO,
        ["--date", "2026-09-01"],
        ["--packages", "io.delta:delta-spark_2.13:4.0.0", "--deploy-mode", "cluster"],
        _settings(platform="yarn", env_archive="hdfs:///envs/fm.tar.gz"),
    )
    assert cmd.count("--packages") == 1 and _value(cmd, "--packages") == "io.delta:delta-spark_2.13:4.0.0"
    assert _value(cmd, "--archives") == "hdfs:///envs/fm.tar.gz#environment"
    assert "spark.pyspark.python=./environment/bin/python" in cmd and "--py-files" not in cmd
    assert not any(c.startswith("spark.pyspark.driver.python") for c in cmd)  # cluster mode: driver in archive too


def test_build_submit_command_refuses_databricks_and_unknown_jobs():
    with pytest.raises(SubmitError, match="python_wheel_task"):
        build_submit_command("ingest", DEMO, [], [], _settings(platform="databricks"))
    with pytest.raises(SubmitError, match="unknown job 'train'"):
        build_submit_command("train", DEMO, [], [], _settings())


def test_every_jobs_file_can_be_submitted_by_name():
    """Each entry point in jobs/ is a JOB name (its file stem), and every name points at a file there."""
    from featuremill.deploy.submit import JOB_SCRIPTS

    files = {p.name for p in (ROOT / "jobs").glob("*.py")}
    assert {Path(s).name for s in JOB_SCRIPTS.values()} == files
    for path in sorted(files):
        stem = Path(path).stem
        assert JOB_SCRIPTS[stem] == f"jobs/{path}"
        cmd = build_submit_command(stem, DEMO, ["--env", "standalone"], [], _settings(platform="standalone"))
        assert cmd[-4:] == [str(ROOT / "jobs" / path), DEMO, "--env", "standalone"]


def test_split_arguments():
    own, spark_opts, job, pipeline, job_args = split_arguments(
        [
            "--dry-run",
            "--platform",
            "emr",
            "--master",
            "yarn",
            "--conf",
            "a=b",
            "--dist=/d",
            "--",
            "ingest",
            "p.yaml",
            "--date",
            "2026-09-01",
        ]
    )
    assert own == {"dry_run": True, "platform": "emr", "dist": "/d"}
    assert spark_opts == ["--master", "yarn", "--conf", "a=b"]
    assert (job, pipeline, job_args) == ("ingest", "p.yaml", ["--date", "2026-09-01"])
    assert split_arguments(["features", "p.yaml"])[2:4] == ("features", "p.yaml")


def test_package_sh_builds_importable_zip_and_wheel(tmp_path):
    proc = subprocess.run(
        [str(ROOT / "scripts" / "package.sh"), "--out", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    sources = {
        str(p.relative_to(ROOT / "lib"))
        for p in (ROOT / "lib" / "featuremill").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    with zipfile.ZipFile(tmp_path / "featuremill.zip") as zf:
        assert {n for n in zf.namelist() if n.endswith(".py")} == sources
    (wheel,) = tmp_path.glob("featuremill-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert {n for n in zf.namelist() if n.endswith(".py")} == sources
        metadata = next(zf.read(n).decode() for n in zf.namelist() if n.endswith("METADATA"))
        entry_points = next(zf.read(n).decode() for n in zf.namelist() if n.endswith("entry_points.txt"))
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert requires == ["Requires-Dist: pyyaml>=6"]  # pyspark/delta come from the platform
    assert "featuremill = featuremill.cli:main" in entry_points
    assert (tmp_path / "jobs" / "ingest.py").exists() and (tmp_path / "jobs" / "dag_run.py").exists()
    # the zip alone is enough to import the package (what --py-files gives the driver)
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import featuremill.cli, "
            "featuremill; print(featuremill.__file__)",
            str(tmp_path / "featuremill.zip"),
        ],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).parts[-3:] == ("featuremill.zip", "featuremill", "__init__.py")


@pytest.mark.parametrize(
    "master, expected",
    [
        ("spark://127.0.0.1:7177", "standalone"),
        ("yarn", "yarn"),
        ("k8s://https://api:6443", "k8s"),
        ("local[2]", "local"),
        (None, ""),
    ],
)
def test_cluster_manager_from_master(master, expected):
    from featuremill.core.session import Runtime, cluster_manager, detect_runtime, with_cluster_manager

    assert cluster_manager(master) == expected
    runtime = detect_runtime({"PYSPARK_GATEWAY_PORT": "4040"})
    assert (
        with_cluster_manager(runtime, master) == Runtime("spark-submit", "", expected) or runtime.name == "emr"
    )  # on an EMR node the marker folder wins
    assert detect_runtime({"DATABRICKS_RUNTIME_VERSION": "17.3"}).name == "databricks"
