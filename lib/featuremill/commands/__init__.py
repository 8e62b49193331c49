"""CLI verbs. Each module: ``add_arguments(parser)`` and ``run(args) -> exit code``.

Output meant for the user goes to stdout through :func:`emit`; diagnostics go to logging.
"""

from __future__ import annotations

import sys


def emit(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
