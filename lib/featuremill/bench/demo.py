"""The demo's wall time: ``featuremill demo`` on its default data, as ``scripts/demo.sh`` runs it.

The benchmark runs it in a child process (a new JVM and fresh folders, as a user's first run after
``scripts/setup.sh``) and reads the time of each step from what the demo prints. The target
(issue 17): the whole run, from the command to its last line, under 3 minutes on the 2-core machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

#: The demo's steps, in the order it runs and prints them (``featuremill.commands.demo``).
STEPS = (
    "start Spark",
    "generate data",
    "ingest, history",
    "features, history",
    "model (fit + select)",
    "ingest, last day",
    "features, last day",
    "quality reports",
)
_STEP_LINE = re.compile(r"  (\S.*?) +(\d+\.\d) s")


def step_seconds(printed: str) -> dict[str, float]:
    """The ``time per step:`` block of a demo's output: step name -> seconds, in printed order.

    Raises ``ValueError`` when the block is missing or a line of it does not parse.
    """
    lines = printed.splitlines()
    try:
        first = lines.index("time per step:") + 1
    except ValueError:
        raise ValueError("the demo printed no 'time per step:' block") from None
    steps = {}
    for line in lines[first : first + len(STEPS)]:
        match = _STEP_LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"not a step time line of the demo: {line!r}")
        steps[match.group(1)] = float(match.group(2))
    return steps


def run(workdir: str, *, pipeline: str, timeout_s: int = 1800) -> dict:
    """``featuremill demo PIPELINE --serve`` with its default data under ``workdir/demo`` (removed first).

    Returns ``ok``, ``wall_s`` (the child process, start to exit), ``steps`` (seconds per step as
    the demo printed them) and ``steps_s`` (their sum); on a failure, the exit code and the tail
    of the output instead of the steps. The whole output is kept in ``workdir/demo/demo.log``.
    """
    root = Path(workdir) / "demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    cmd = [
        sys.executable,
        "-m",
        "featuremill",
        "demo",
        pipeline,
        "--warehouse",
        str(root / "warehouse"),
        "--data-root",
        str(root / "data"),
        "--reports",
        str(root / "reports"),
        "--serve",
        str(root / "feast"),
    ]
    env = dict(os.environ)
    env.pop("PYSPARK_GATEWAY_PORT", None)  # the child starts its own JVM
    env["PYSPARK_PYTHON"] = sys.executable  # as scripts/demo.sh: executors need Feast for --serve
    began = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired as exc:
        return {"ok": False, "error": f"timed out after {exc.timeout}s", "wall_s": time.perf_counter() - began}
    wall = time.perf_counter() - began
    printed = proc.stdout + proc.stderr
    # the run's own log (its stages with their times), for reading where a slow run went
    (root / "demo.log").write_text(printed)
    if proc.returncode != 0:
        return {"ok": False, "exit_code": proc.returncode, "error": printed[-3000:], "wall_s": wall}
    steps = step_seconds(proc.stdout)
    return {"ok": True, "wall_s": round(wall, 1), "steps": steps, "steps_s": round(sum(steps.values()), 1)}
