"""The JVM a local session starts: get_spark's parallel collector reaches it, and a collector the
user chose replaces it (two in one option list would stop the JVM from starting). Each case is a
fresh Python process, as a user's job is; the suite's own session names its collector itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

PROBE = """
import json, sys
from featuremill.core.session import get_spark
conf = {"spark.ui.enabled": "false", **json.loads(sys.argv[1])}
spark = get_spark("jvm-probe", master="local[1]", conf=conf)
beans = spark._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
print(json.dumps(sorted(bean.getName() for bean in beans)))
spark.stop()
"""


def _collectors(conf: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(conf)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_get_spark_local_jvm_runs_the_parallel_collector_unless_the_user_chose_one():
    cases = [{}, {"spark.driver.extraJavaOptions": "-XX:+UseSerialGC"}]
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        default, chosen = pool.map(_collectors, cases)
    assert default == ["PS MarkSweep", "PS Scavenge"]
    assert chosen == ["Copy", "MarkSweepCompact"]
