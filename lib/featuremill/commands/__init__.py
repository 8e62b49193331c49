"""CLI verbs. Each module: ``add_arguments(parser)`` and ``run(args) -> exit code``.

Output meant for the user goes to stdout through :func:`emit`; diagnostics go to logging.
"""

from __future__ import annotations

import sys


def emit(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def wrapped(first: str, text: str, *, indent: int, width: int = 110) -> str:
    """``first`` followed by ``text``, wrapped at word boundaries (never cut mid-word); the
    continuation lines are indented by ``indent`` spaces."""
    import textwrap

    return textwrap.fill(
        first + text, width=width, subsequent_indent=" " * indent, break_long_words=False, break_on_hyphens=False
    )
