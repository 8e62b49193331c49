"""Bounded retry of Delta commits that lost an optimistic-concurrency race.

Delta validates every commit against the commits that landed since the transaction read its
snapshot. When another writer touched the same files (two runs replacing or merging the same
partition, a schema change, two jobs creating one table) the loser raises a
``DeltaConcurrentModificationException`` subclass (``ConcurrentAppendException``,
``ConcurrentDeleteReadException``, ``MetadataChangedException``...) and commits nothing.

:func:`retry_on_conflict` re-runs the whole write, which starts a new transaction on the latest
snapshot, a bounded number of times with jittered exponential back-off. Because every featuremill
write is a pure function of its input frame (replace a predicate's rows, MERGE a range), the
table after a retried run equals the table after a serial run. When the attempts are spent it
raises :class:`~featuremill.core.errors.CommitConflictError` naming the table and the last conflict;
nothing of the failed write is visible.

Only conflicts are retried: a schema mismatch, a ``replaceWhere`` violation or a multiple-match
MERGE error would fail the same way again and are raised at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from featuremill.core.errors import CommitConflictError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts per write (the first one included). Enough for a few runs racing on one partition;
#: a scheduler allowing more concurrent runs of one job should serialise them instead.
DEFAULT_COMMIT_ATTEMPTS = 4
_BASE_BACKOFF_S = 0.25
_MAX_BACKOFF_S = 5.0

#: Delta's Python exception classes and the error classes (SQLSTATE-style names) of the same
#: conflicts, for sessions (Spark Connect, older Delta) that surface them as plain errors.
_CONFLICT_CLASSES = (
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
    "ConcurrentWriteException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "DeltaConcurrentModificationException",
)
_CONFLICT_ERROR_CLASSES = (
    "DELTA_CONCURRENT_APPEND",
    "DELTA_CONCURRENT_DELETE_READ",
    "DELTA_CONCURRENT_DELETE_DELETE",
    "DELTA_CONCURRENT_TRANSACTION",
    "DELTA_CONCURRENT_WRITE",
    "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",
)

_ATTEMPTS: contextvars.ContextVar[int | None] = contextvars.ContextVar("featuremill_commit_attempts", default=None)
_OBSERVERS: list[Callable[[str, int], None]] = []


def is_commit_conflict(exc: BaseException) -> bool:
    """True when ``exc`` is a Delta optimistic-concurrency conflict (retryable on a new snapshot)."""
    for klass in type(exc).__mro__:
        if klass.__name__ in _CONFLICT_CLASSES:
            return True
    text = str(exc)
    head = text[:2000]
    return any(f"[{name}" in head for name in _CONFLICT_ERROR_CLASSES) or any(
        f"io.delta.exceptions.{name}" in head for name in _CONFLICT_CLASSES
    )


@contextlib.contextmanager
def commit_attempts(attempts: int) -> Iterator[None]:
    """Use ``attempts`` tries per write inside the block instead of ``DEFAULT_COMMIT_ATTEMPTS``.

    No job flag sets it: it is for callers that embed the library (and the concurrency tests).
    A context variable, so concurrent runs in threads of one process keep their own setting.
    """
    if attempts < 1:
        raise ValueError(f"commit attempts must be at least 1, got {attempts}")
    token = _ATTEMPTS.set(attempts)
    try:
        yield
    finally:
        _ATTEMPTS.reset(token)


@contextlib.contextmanager
def observe_writes(callback: Callable[[str, int], None]) -> Iterator[None]:
    """Call ``callback(path, attempt)`` just before every write attempt (attempt counts from 1).

    For the fault-injection suite: like Delta's ``TransactionExecutionObserver`` it lets a test
    line two writers up at the same point, so a conflict happens every time rather than by luck.
    Nothing in the library registers an observer.
    """
    _OBSERVERS.append(callback)
    try:
        yield
    finally:
        _OBSERVERS.remove(callback)


def retry_on_conflict(write: Callable[[], T], *, path: str, what: str = "write", attempts: int | None = None) -> T:
    """Run ``write()``; on a Delta concurrency conflict run it again, up to ``attempts`` times in all.

    ``write`` must start from the table's latest state each time it is called (open the
    ``DeltaTable`` and decide create-or-update inside it), which is what makes the retry land on
    a fresh snapshot. Raises :class:`CommitConflictError` after the last failed attempt.
    """
    limit = attempts or _ATTEMPTS.get() or DEFAULT_COMMIT_ATTEMPTS
    for attempt in range(1, limit + 1):
        for observer in list(_OBSERVERS):
            observer(path, attempt)
        try:
            return write()
        except Exception as exc:
            if not is_commit_conflict(exc):
                raise
            summary = _first_line(exc)
            if attempt >= limit:
                raise CommitConflictError(
                    f"{what} to {path} lost {limit} commit race(s) to concurrent writers and was not committed; "
                    f"last conflict: {summary}. Run the job again when the other run has finished, or make the "
                    f"scheduler run one instance of this job at a time (max_active_runs=1)",
                    path=path,
                    attempts=limit,
                ) from exc
            pause = min(_MAX_BACKOFF_S, _BASE_BACKOFF_S * 2 ** (attempt - 1)) * (0.5 + random.random())
            log.warning(
                "%s to %s: commit conflict on attempt %d/%d (%s); retrying on the latest snapshot in %.2fs",
                what,
                path,
                attempt,
                limit,
                summary,
                pause,
            )
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def _first_line(exc: BaseException) -> str:
    """The line naming the conflict (a Py4J error's first line only says which call failed)."""
    text = str(exc).strip()
    lines = text.splitlines() or [type(exc).__name__]
    for line in lines[:50]:
        if (
            "io.delta.exceptions." in line
            or "[DELTA_CONCURRENT" in line
            or "[DELTA_METADATA_CHANGED" in line
            or "[DELTA_PROTOCOL_CHANGED" in line
        ):
            return line.strip()[:300]
    return lines[0][:300]
