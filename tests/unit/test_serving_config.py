"""``online_store:`` of an environment file and the DAG job kind ``materialize`` (issue 15)."""

from __future__ import annotations

import pytest

from featuremill.config import load_env
from featuremill.core.errors import ConfigError


def _env(tmp_path, body: str):
    path = tmp_path / "conf" / "env" / "e.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("warehouse: w\ndata_root: d\n" + body)
    return path


def test_load_env_online_store_default_sqlite_and_redis_address(tmp_path):
    assert load_env(_env(tmp_path / "a", "")).online_store.describe == "sqlite at data/online_store.db"
    redis = load_env(_env(tmp_path / "b", "online_store: {type: redis, address: '127.0.0.1:6399'}\n")).online_store
    assert (redis.type, redis.address, redis.describe) == ("redis", "127.0.0.1:6399", "redis at 127.0.0.1:6399")


def test_load_env_online_store_bad_address_and_type_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"online_store.address: expected HOST:PORT"):
        load_env(_env(tmp_path / "a", "online_store: {type: redis, address: localhost}\n"))
    with pytest.raises(ConfigError, match=r"online_store.type: 'memcached' is not one of sqlite, redis"):
        load_env(_env(tmp_path / "b", "online_store: {type: memcached}\n"))


def test_job_argv_materialize_runs_the_materialize_verb():
    from featuremill.deploy.dag import DagJob, job_argv, script_args

    job = DagJob(name="serve", kind="materialize", depends_on=("features",), args=("--repo", "feast/demo"))
    argv = job_argv(job, pipeline="demo.yaml", env="local", date="2026-09-01")
    assert argv == ["materialize", "demo.yaml", "--env", "local", "--date", "2026-09-01", "--repo", "feast/demo"]
    assert job.script == "jobs/materialize.py"
    assert script_args(job, pipeline="demo.yaml", env="local", date="2026-09-01")[0] == "demo.yaml"
