#!/usr/bin/env python3
"""Measure featuremill's performance targets side by side: `featuremill bench` as a script.

    scripts/bench.py --events 1M            # ~15 minutes on 2 cores
    scripts/bench.py --events 5M            # the README table
    scripts/bench.py --events 20M           # adds the 20M point of the scaling curve and the 1g-driver run
    scripts/bench.py --events 20000 --runs 1 --warmup 0   # a smoke run

Prints a Markdown table (figure, measured, target, met) and writes reports/bench/bench-<size>.{md,json}.
Runs under the project's .venv (re-executing itself there when started with another Python).
Options: scripts/bench.py --help. The suite lives in featuremill.bench (see docs/performance.md).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    try:
        import featuremill  # noqa: F401
    except ImportError:
        venv_python = ROOT / ".venv" / "bin" / "python"
        # compare environments, not executables: the venv's python is a symlink to the system one
        if venv_python.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
            os.execv(str(venv_python), [str(venv_python), __file__, *sys.argv[1:]])
        sys.stderr.write("featuremill is not installed: run scripts/setup.sh first\n")
        return 2
    os.chdir(ROOT)  # the default pipeline, workdir and report folder are relative to the project
    from featuremill.cli import main as cli_main

    return cli_main(["bench", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
