"""Dimension history (type-2 slowly changing dimension) and the as-of join to it.

A dimension source lands as full snapshots. Ingest keeps every version of every key with its
validity, ``[valid_from, valid_to)``, so the feature job can join each event (or feature row) to
the attributes known at its time rather than to today's.

``valid_from`` is the start (00:00 in the session time zone, which the jobs set to the pipeline's
``timezone``) of the snapshot's landing date: the day granularity of the landing folders, the
same at which events become available. ``valid_to`` is exclusive, null for the current version.
A key missing from a snapshot is closed at that snapshot's date (a deleted customer has no
attributes from then on).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from featuremill.core.errors import JoinColumnClashError
from featuremill.core.sql import col
from featuremill.transforms.ingest import INGEST_DATE

VALID_FROM = "valid_from"
VALID_TO = "valid_to"
HISTORY_COLUMNS = (VALID_FROM, VALID_TO)

_T = "__snapshot_t"
_PRESENT = "__present"


def recorded_times():
    """Aggregate Column over a history table: the distinct times it records (every ``valid_from``
    and non-null ``valid_to``) as epoch microseconds, sorted (``array<bigint>``; one element per
    snapshot date at which some version starts or ends). The ``history_times`` argument of
    :func:`with_snapshot_history`, collected by the caller in one aggregate row."""
    from pyspark.sql import functions as F

    micros = [F.collect_set(F.unix_micros(col(c))) for c in HISTORY_COLUMNS]  # collect_set skips nulls
    return F.array_sort(F.array_distinct(F.concat(*micros)))


def with_snapshot_history(
    history,
    snapshots,
    *,
    key: Sequence[str],
    attributes: Sequence[str],
    snapshot_dates: Sequence[dt.date],
    history_times: Sequence[int],
):
    """DataFrame -> DataFrame: the dimension's history after adding ``snapshots``.

    ``snapshots``: valid dimension rows with the ``key`` and ``attributes`` columns,
    ``_ingest_date`` (date: the snapshot's landing date; every distinct date is one full snapshot,
    each key at most once per date) and ``_source_file``. ``snapshot_dates``: every distinct
    ``_ingest_date`` of ``snapshots`` (the caller knows them: a date listed that has no row would
    read as a snapshot in which every key is absent). ``history``: the current history table (same
    columns plus ``valid_from``, ``valid_to`` timestamps) or None for a new dimension;
    ``history_times``: its :func:`recorded_times` (required: without them a snapshot inserted before
    later history would not be restated after it; ``[]`` with no history).

    Output grain: one row per (key, valid_from), versions of a key never overlap; columns ``key``,
    ``attributes``, ``_ingest_date`` and ``_source_file`` of the snapshot that first showed the
    version, ``valid_from``, ``valid_to`` (exclusive, null = current).

    A snapshot date already in the history replaces what the history says for that date, so
    adding the same snapshots again yields the same history. A snapshot older than the history's
    latest date (a backfill) is inserted in place: its values hold until the next date at which
    the history records a change of any key, where the recorded state is restored.

    Plan: the snapshot and recorded times are literal arrays (a handful of values per snapshot
    date, evaluated once by the optimizer), so the only shuffles are the distinct keys and one
    repartition by key that every window below shares; a global order of times in a Spark window
    cost a single-partition shuffle and, with the joins to the time lists, 19 shuffles per run.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    key, attributes = list(key), list(attributes)
    bookkeeping = [INGEST_DATE, "_source_file"]
    payload = key + attributes + bookkeeping

    def obs(df, t, present: bool):
        return df.select(*[col(c) for c in payload], t.alias(_T), F.lit(present).alias(_PRESENT))

    def timestamps(values):
        return F.array(*values).cast("array<timestamp>")

    new_times = timestamps(F.lit(d).cast("timestamp") for d in sorted(set(snapshot_dates)))
    parts = [obs(snapshots, col(INGEST_DATE).cast("timestamp"), True)]
    all_keys = snapshots.select(*[col(k) for k in key])
    times = new_times
    if history is not None:
        opened = obs(history, col(VALID_FROM), True)
        closed = obs(history.where(col(VALID_TO).isNotNull()), col(VALID_TO), False)
        # The new snapshots replace what the history recorded at their dates.
        at_new_time = F.coalesce(F.array_contains(new_times, col(_T)), F.lit(False))
        parts.append(opened.unionByName(closed).where(~at_new_time))
        all_keys = all_keys.unionByName(history.select(*[col(k) for k in key]))
        # After a snapshot inserted before later history, the recorded state comes back at the
        # next recorded date: restate the whole recorded state there.
        recorded = timestamps(F.timestamp_micros(F.lit(int(m))) for m in history_times)
        every_time = F.array_distinct(F.concat(recorded, new_times))
        following = F.transform(new_times, lambda t: F.array_min(F.filter(every_time, lambda x: x > t)))
        restate = F.array_distinct(F.filter(following, lambda x: x.isNotNull() & ~F.array_contains(new_times, x)))
        valid_then = history.select("*", F.explode(restate).alias(_T)).where(
            (col(VALID_FROM) <= col(_T)) & (col(VALID_TO).isNull() | (col(_T) < col(VALID_TO)))
        )
        parts.append(obs(valid_then, col(_T), True))
        times = F.array_distinct(F.concat(new_times, restate))
    # Every key is absent at every date it is not observed at (present observations win below).
    nulls = [F.lit(None).cast(dict(snapshots.dtypes)[c]).alias(c) for c in attributes + bookkeeping]
    parts.append(
        all_keys.distinct().select(
            *[col(k) for k in key], *nulls, F.explode(times).alias(_T), F.lit(False).alias(_PRESENT)
        )
    )
    observations = parts[0]
    for part in parts[1:]:
        observations = observations.unionByName(part)
    # Partitioned by the key alone, the data satisfies both windows (by key and time; by key).
    observations = observations.repartition(*[col(k) for k in key])

    per_key = Window.partitionBy(*[col(k) for k in key])
    at_time = Window.partitionBy(*[col(k) for k in key], col(_T)).orderBy(
        col(_PRESENT).desc(), col(INGEST_DATE), col("_source_file")
    )
    observations = observations.withColumn("__rank", F.row_number().over(at_time)).where(col("__rank") == 1)
    signature = F.struct(col(_PRESENT), *[col(a) for a in attributes])
    by_time = per_key.orderBy(col(_T))
    changes = observations.withColumn("__prev", F.lag(signature).over(by_time)).where(
        col("__prev").isNull() | ~signature.eqNullSafe(col("__prev"))
    )
    versions = changes.withColumn(VALID_TO, F.lead(col(_T)).over(by_time)).where(col(_PRESENT))
    return versions.select(*[col(c) for c in key + attributes + bookkeeping], col(_T).alias(VALID_FROM), col(VALID_TO))


def as_of_join(
    df,
    dimension,
    *,
    on: Sequence[str],
    columns: Sequence[str],
    time_column: str | None,
    rename: Mapping[str, str] | None = None,
    strict: bool = False,
):
    """DataFrame -> DataFrame: ``df`` left-joined to the dimension row valid at ``time_column``.

    ``dimension`` holds ``on``, ``columns``, ``valid_from`` and ``valid_to`` (a history, see
    :func:`with_snapshot_history`), possibly marked for broadcast. Same grain and rows as ``df``,
    plus ``columns`` (null when no version of the key is valid at that time, for example an event
    before the key's first snapshot), each named ``rename[column]`` when ``rename`` maps it (a
    column ``df`` already has cannot be joined under its own name). ``time_column`` None joins the
    current versions (``as_of: latest``). The validity test is part of the join condition next to
    the key equality, so Spark keeps the equi-join strategy (a broadcast hash join) and evaluates
    the range on each match: exact, because a key's versions never overlap, so at most one matches.

    Boundaries: by default the version with ``valid_from <= t < valid_to`` (a version that starts
    exactly at ``t`` is used, like a feature row at the label time). ``strict`` uses the version
    valid just before ``t``, ``valid_from < t <= valid_to`` (like the training set's ``--strict``:
    nothing that appeared at ``t`` itself).

    Raises :class:`JoinColumnClashError` when a joined column's name (after ``rename``) is already
    a column of ``df``.
    """
    rename = dict(rename or {})
    outputs = [rename.get(c, c) for c in columns]
    clashes = [(c, o) for c, o in zip(columns, outputs, strict=True) if o in df.columns]
    if clashes:
        c, o = clashes[0]
        fix = (
            f"join it under another name with the mapping form columns: {{{c}: new_name}} in the join "
            "(dimension column: name in the feature frame)"
            if c == o
            else "give it another name in the join's columns mapping"
        )
        raise JoinColumnClashError(
            f"cannot join dimension column {c!r} as {o!r}: the frame already has a column {o!r}; {fix}"
        )
    renamed = {k: f"__dim_{k}" for k in on}
    right = dimension.select(
        *[col(k).alias(renamed[k]) for k in on],
        *[col(c).alias(o) for c, o in zip(columns, outputs, strict=True)],
        col(VALID_FROM).alias("__valid_from"),
        col(VALID_TO).alias("__valid_to"),
    )
    condition = None
    for k in on:
        term = df[k] == right[renamed[k]]
        condition = term if condition is None else condition & term
    if time_column is None:
        condition = condition & right["__valid_to"].isNull()
    else:
        t = df[time_column]
        if strict:
            condition = (
                condition & (t > right["__valid_from"]) & (right["__valid_to"].isNull() | (t <= right["__valid_to"]))
            )
        else:
            condition = (
                condition & (t >= right["__valid_from"]) & (right["__valid_to"].isNull() | (t < right["__valid_to"]))
            )
    return df.join(right, condition, how="left").select(*[df[c] for c in df.columns], *[right[o] for o in outputs])
