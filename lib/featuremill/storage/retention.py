"""The replay window and the Delta retention that keeps it honest.

A pipeline declares how far back its runs must stay replayable::

    replay_window: 30d

Replay reads source tables with time travel, which needs two things to still exist for every
version inside the window: the commit files (``delta.logRetentionDuration``) and the data files
that later commits removed (``delta.deletedFileRetentionDuration``; VACUUM deletes them after
it, and from Delta 4.1 any ``AS OF`` older than it is refused even without VACUUM). So the
tables featuremill writes get both properties set to at least the window, never below Delta's
defaults (30 days for the log, 7 days for removed files): at creation, or with
``ALTER TABLE ... SET TBLPROPERTIES`` the next time a job writes an existing table whose
setting is missing or shorter. A longer setting made by hand is left alone.

Without a ``replay_window`` key the window is 7 days, what Delta's defaults cover anyway.

Tables a Feast feature view serves (feature tables, preprocessed serving tables) also get
``delta.enableChangeDataFeed = true`` (``change_feed=True``): incremental materialization reads
the feed (:mod:`featuremill.serving.materialize`), and its ``_change_data`` files are kept by the
same ``delta.deletedFileRetentionDuration``. An explicit ``false`` set by hand is left alone
(materialization then diffs versions instead).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from featuremill.config import format_duration

log = logging.getLogger(__name__)

DAY = 86400
#: The table property that makes Delta record the change data feed (``_change_data`` files).
CHANGE_DATA_FEED = "delta.enableChangeDataFeed"
DEFAULT_WINDOW_SECONDS = 7 * DAY
#: Delta's own defaults: featuremill never sets a property below them.
DELTA_DEFAULT_DAYS = {"delta.logRetentionDuration": 30, "delta.deletedFileRetentionDuration": 7}

_INTERVAL = re.compile(r"^\s*(?:interval\s+)?(\d+)\s*(second|minute|hour|day|week)s?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": DAY, "week": 7 * DAY}


@dataclass(frozen=True)
class ReplayWindow:
    """How long after a run it must remain replayable (``replay_window`` in the pipeline file)."""

    seconds: int = DEFAULT_WINDOW_SECONDS
    declared: bool = False

    @property
    def days(self) -> int:
        """The window in whole days, rounded up (table properties are set in days)."""
        return max(1, math.ceil(self.seconds / DAY))

    def __str__(self) -> str:
        return format_duration(self.seconds)

    def table_properties(self, *, change_feed: bool = False) -> dict[str, str]:
        """Delta table properties that keep every version inside the window readable.

        ``change_feed`` adds ``delta.enableChangeDataFeed = true`` (tables a feature view serves).
        """
        properties = {key: f"interval {max(self.days, floor)} days" for key, floor in DELTA_DEFAULT_DAYS.items()}
        if change_feed:
            properties[CHANGE_DATA_FEED] = "true"
        return properties


def parse_replay_window(checker, value: Any, path: str, context) -> ReplayWindow | None:
    """Section parser for the top-level ``replay_window`` key (registered in ``config.SECTIONS``)."""
    seconds = checker.duration(value, path)
    if seconds is None:
        return None
    return ReplayWindow(seconds=seconds, declared=True)


def replay_window(config) -> ReplayWindow:
    """The pipeline's replay window, or the default when it declares none."""
    return config.section("replay_window") or ReplayWindow()


def interval_seconds(text: str | None) -> int | None:
    """Seconds in a Delta interval property such as ``interval 30 days``; ``None`` if unparseable."""
    if text is None:
        return None
    match = _INTERVAL.match(str(text))
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


def missing_properties(current: Mapping[str, str], required: Mapping[str, str]) -> dict[str, str]:
    """The ``required`` retention properties that ``current`` lacks or sets shorter.

    A value featuremill cannot parse is left alone (someone set it on purpose) with a warning.
    """
    out = {}
    for key, wanted in required.items():
        have = current.get(key)
        if have is None:
            out[key] = wanted
            continue
        if key == CHANGE_DATA_FEED:  # a boolean: an explicit setting made by hand is kept
            if have.strip().lower() != wanted:
                log.info("table property %s=%r set by hand; left as is (materialization diffs versions)", key, have)
            continue
        have_s, wanted_s = interval_seconds(have), interval_seconds(wanted)
        if have_s is None:
            log.warning("table property %s=%r is not an interval featuremill understands; left as is", key, have)
        elif wanted_s is not None and have_s < wanted_s:
            out[key] = wanted
    return out


def ensure_retention(spark, path: str, window: ReplayWindow, *, root: str, change_feed: bool = False) -> dict[str, str]:
    """Raise the retention properties of the existing table at ``path`` to cover ``window``.

    ``change_feed`` also turns on Delta's change data feed when the table has no setting for it
    (see the module docstring). Returns the properties it changed (empty when the table already
    covers the window or does not exist yet: new tables get them at creation through the writers
    in :mod:`featuremill.storage.io`). ``root`` is the warehouse root the table must lie under
    (:func:`~featuremill.storage.io.check_write_path`).
    """
    from featuremill.storage import io

    if not io.is_delta_table(spark, path):
        return {}
    changes = missing_properties(io.table_properties(spark, path), window.table_properties(change_feed=change_feed))
    if changes:
        io.set_table_properties(spark, path, changes, root=root)
        log.info(
            "table %s: set %s (replay window %s)",
            path,
            ", ".join(f"{k}={v}" for k, v in sorted(changes.items())),
            window,
        )
    return changes
