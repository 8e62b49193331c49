"""The streaming tests' Kafka broker: Apache Kafka itself, started by scripts/kafka.sh for the session."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import ROOT
from tests.streaming.helpers import CONTROLLER_PORT, KAFKA_PORT, kafka


@pytest.fixture(scope="session")
def kafka_broker():
    """A single-node KRaft broker on 127.0.0.1 (scripts/kafka.sh start ... stop); its address."""
    env = dict(os.environ, KAFKA_PORT=str(KAFKA_PORT), KAFKA_CONTROLLER_PORT=str(CONTROLLER_PORT))
    already = subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "status"], env=env).returncode == 0
    if not already:
        kafka("start")
    yield f"127.0.0.1:{KAFKA_PORT}"
    if not already:
        kafka("stop")
