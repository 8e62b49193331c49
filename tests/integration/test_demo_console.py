"""The console of a ``featuremill demo`` run: its results, featuremill's own log lines, and nothing
from the JVM (no Spark WARN lines, no stack traces, no Ivy resolution report)."""

from __future__ import annotations

import re

import pytest

from featuremill.bench.demo import STEPS, step_seconds

pytestmark = pytest.mark.slow

#: A log4j line of Spark's pattern layouts: "25/12/04 17:20:01 WARN Utils: ..." (the level as a word,
#: so featuremill's own "17:20:01 WARNING featuremill.x: ..." lines do not match).
JVM_LEVEL = re.compile(r"\b(WARN|ERROR|FATAL)\b")
#: featuremill's own log lines (pipelines.common.configure_logging): "HH:MM:SS LEVEL logger: message".
OWN_LOG = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ([\w.]+): ")
#: Printed by the JVM itself, not by a logger: Spark's launcher always starts the driver with
#: --add-modules=jdk.incubator.vector and the JDK has no switch to silence the notice.
JDK_INCUBATOR = "WARNING: Using incubator modules: jdk.incubator.vector"


def test_demo_console_has_no_jvm_warnings_stack_traces_or_ivy_report(demo_run):
    printed = demo_run.printed
    lines = printed.splitlines()
    assert [line for line in lines if JVM_LEVEL.search(line)] == []
    assert "Exception" not in printed
    assert "Traceback" not in printed
    for noise in (":: resolving dependencies", ":: loading settings", "Ivy Default Cache", "log4j profile"):
        assert noise not in printed, noise
    assert 'Setting default log level to "WARN"' not in printed
    # Every line that says WARNING is featuremill's own finding or the JDK's notice above.
    warnings = [line for line in lines if "WARNING" in line and line != JDK_INCUBATOR]
    for line in warnings:
        match = OWN_LOG.match(line)
        assert match and match.group(2).startswith("featuremill."), line


def test_demo_console_still_prints_the_results_and_what_it_injected(demo_run):
    printed = demo_run.printed
    # the dirty data is announced before the run, so the quality warnings it causes read as expected
    announced = printed.index("demo data: dirty on purpose")
    assert "rule 'referential_customer_id'" in printed[announced : announced + 600]
    for result in ("runs (rows read = valid + quarantined):", "Delta tables:", "model step", "select: kept"):
        assert result in printed, result
    # the time of each step, in the order the demo runs them (read as the benchmark's demo
    # section reads them); together within the whole run
    steps = step_seconds(printed)
    assert list(steps) == [
        "start Spark",
        "generate data",
        "ingest, history",
        "features, history",
        "model (fit + select)",
        "ingest, last day",
        "features, last day",
        "quality reports",
    ]
    assert tuple(steps) == STEPS
    total = float(re.search(r"finished in (\d+)s", printed).group(1))
    assert 0 < sum(steps.values()) <= total + 1
    assert announced < printed.index("runs (rows read = valid + quarantined):")
    # featuremill's INFO lines still reach the console (only the JVM's were silenced)
    assert any(
        (m := OWN_LOG.match(line)) and m.group(1) == "INFO" and m.group(2).startswith("featuremill.")
        for line in printed.splitlines()
    )
