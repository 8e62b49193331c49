"""Window warm-up: which feature values were computed from a window reaching before the data.

A rolling value with window ``W`` at time ``t`` covers ``(t - W, t]``. When the source's history
begins at ``first`` (midnight, session time zone, of the first event date the feature table
holds) and ``t - W < first``, part of that window lies before any data: the value is *warming
up* (a 30-day spend on day 3 is a 3-day spend) and is not comparable with later values.

**Complete** means ``t - W >= first`` (``W`` the value's warm-up, below). Rows just at the
boundary are complete: ``(first, t]`` needs nothing before ``first``.

Warm-up per column of a feature table (:func:`warmup_seconds`):

* a window feature (aggregates, ``lag``, ``time_since_previous``): its window;
* a ``ratio``: the larger warm-up of its numerator and denominator;
* a history helper (``preprocessing.timeseries``) with window ``H`` over feature ``x``: ``H``
  plus the warm-up of ``x`` (it reads earlier values of ``x``, each needing its own window);
* anything else (keys, entity-level dimension columns): none, always complete.

The flag is computed when a table is read (drift references and current periods, training
sets), never stored: ``first`` comes from the whole feature table (one small aggregate,
:func:`first_history_date`), so a daily run that only sees a lookback slice cannot move it, and
a backfill that adds earlier history (and recomputes those feature dates) moves it without
rewriting any row. ``complete_window`` (:func:`with_complete_window`) is the per-row flag for
the row's longest warm-up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from featuremill.config import FeatureSetSpec
from featuremill.core.sql import col

#: The per-row flag's default name (a read-time column, never stored).
COMPLETE_WINDOW = "complete_window"


def warmup_seconds(feature_set: FeatureSetSpec, helpers: Sequence = ()) -> dict[str, int]:
    """Column -> seconds of history before a value of that column is complete.

    ``helpers`` are the set's ``preprocessing.timeseries`` specs (objects with ``column``,
    ``window_seconds`` and ``output_columns``). Columns not returned need no history.
    """
    out: dict[str, int] = {}
    for f in feature_set.features:
        if f.function == "ratio":
            continue
        out[f.name] = int(f.window_seconds or 0)
    for f in feature_set.features:
        if f.function == "ratio":
            out[f.name] = max(out.get(f.numerator, 0), out.get(f.denominator, 0))
    for h in helpers:
        for name in h.output_columns:
            out[name] = int(h.window_seconds) + out.get(h.column, 0)
    return {name: seconds for name, seconds in out.items() if seconds > 0}


def first_history_date(df, *, date_column: str = "event_date") -> dt.date | None:
    """The earliest ``date_column`` of ``df`` (one small aggregate; read the whole table, not a
    slice), or None for an empty table."""
    from pyspark.sql import functions as F

    return df.agg(F.min(col(date_column))).first()[0]


def is_complete(*, event_time: str, seconds: int, first_history: dt.date):
    """Boolean Column: ``event_time - seconds >= first_history`` (midnight, session time zone).

    Never null for a non-null event time: a warm-up of 0 is always complete.
    """
    from pyspark.sql import functions as F

    if seconds <= 0:
        return F.lit(True)
    first_us = F.unix_micros(F.lit(first_history).cast("timestamp"))
    return F.unix_micros(col(event_time)) - F.lit(seconds * 1_000_000) >= first_us


def complete_conditions(
    *, event_time: str, warmups: Mapping[str, int], first_history: dt.date | None, columns: Sequence[str]
) -> dict[str, object]:
    """Column name -> Boolean Column "this value is complete", for those of ``columns`` with a
    warm-up. Empty when ``first_history`` is None (nothing to compare against)."""
    if first_history is None:
        return {}
    return {
        c: is_complete(event_time=event_time, seconds=warmups[c], first_history=first_history)
        for c in columns
        if warmups.get(c, 0) > 0
    }


def with_complete_window(
    df,
    *,
    event_time: str,
    warmups: Mapping[str, int],
    first_history: dt.date,
    name: str = COMPLETE_WINDOW,
):
    """DataFrame -> DataFrame: adds ``name`` (boolean, not null): every feature of the row has a
    complete window, i.e. ``event_time - longest warm-up >= first_history``.

    Input columns: ``event_time`` (timestamp). Grain and keys unchanged; ``warmups`` as from
    :func:`warmup_seconds`.
    """
    longest = max(warmups.values(), default=0)
    return df.withColumn(name, is_complete(event_time=event_time, seconds=longest, first_history=first_history))
