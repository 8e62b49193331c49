"""Running Feast's own command line on a generated repository (``feast apply``, ``feast plan``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from featuremill.core.errors import ServingError


def feast_executable() -> str:
    """The ``feast`` command installed beside this Python (the ``online`` extra), else on PATH."""
    beside = Path(sys.executable).parent / "feast"
    if beside.is_file():
        return str(beside)
    found = shutil.which("feast")
    if not found:
        raise ServingError(
            "the feast command is not installed: pip install 'featuremill[online]' (scripts/setup.sh does)"
        )
    return found


def run_feast(repo: str | Path, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    """``feast ARGS`` in ``repo``; returns the finished process (stdout and stderr captured as text)."""
    return subprocess.run(
        [feast_executable(), *args], cwd=str(repo), capture_output=True, text=True, timeout=timeout_s, check=False
    )


def apply(repo: str | Path) -> str:
    """``feast apply``; raises :class:`ServingError` with Feast's last error line when it fails."""
    done = run_feast(repo, "apply")
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise ServingError(f"feast apply in {repo} failed: {lines[-1] if lines else 'exit ' + str(done.returncode)}")
    return done.stdout
