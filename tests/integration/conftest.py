"""Fixtures of the integration suite: one ``featuremill demo`` run shared by the tests that read it."""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

DEMO = ROOT / "conf" / "pipelines" / "demo.yaml"
#: 700 events over 10 days: the smallest demo whose model step (fit + select) has both label classes.
DEMO_EVENTS, DEMO_DAYS = 700, 10


@dataclass(frozen=True)
class DemoRun:
    """A finished ``featuremill demo`` run: where it wrote, what it printed, how long it took."""

    warehouse: Path
    data_root: Path
    reports: Path
    printed: str
    wall_s: float

    @property
    def where(self) -> list[str]:
        """The ``--warehouse``/``--data-root`` arguments that point a command at this run."""
        return ["--warehouse", str(self.warehouse), "--data-root", str(self.data_root)]


@pytest.fixture(scope="session")
def demo_run(spark, tmp_path_factory) -> DemoRun:
    """``featuremill demo`` on the small dataset, run once for the session (read-only for tests).

    The demo takes minutes; the tests that check what it leaves (the run list, the model step's
    report and tables) only read its output, so they share one run instead of each running it.
    """
    from featuremill import cli

    base = tmp_path_factory.mktemp("demo")
    run = DemoRun(base / "warehouse", base / "data", base / "reports", "", 0.0)
    out = io.StringIO()
    began = time.monotonic()
    with contextlib.redirect_stdout(out):
        code = cli.main(
            ["demo", str(DEMO), "--events", str(DEMO_EVENTS), "--days", str(DEMO_DAYS), *run.where]
            + ["--reports", str(run.reports)]
        )
    wall_s = time.monotonic() - began
    assert code == 0, out.getvalue()[-4000:]
    return DemoRun(run.warehouse, run.data_root, run.reports, out.getvalue(), wall_s)
