"""Table names and data selections used by quality rules, profiling and drift.

A pipeline's tables are named as in the run log: ``validated.<source>``, ``features.<set>``,
``quarantine``. :func:`resolve_table` turns a name into a :class:`TableRef` (path, key columns,
date column, declared column types) without starting Spark.

A **selection** picks rows of a table: ``2026-09-01`` (one date), ``2026-09-01..2026-09-14``
(dates, inclusive), ``v12`` (the whole table at Delta version 12), ``2026-09-01..2026-09-14@v12``
(dates at a version), ``all``, or ``latest`` (the latest date present). Dates filter the table's
date column (``event_date`` for events and features, ``_ingest_date`` for the quarantine).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from featuremill.config import FeatureSetSpec, PipelineConfig, SourceSpec
from featuremill.core.columns import RESERVED_PREFIX, is_internal, user_columns
from featuremill.core.errors import FeaturemillError

#: Columns the jobs add to every validated / feature table (name -> Spark SQL type).
VALIDATED_EXTRA = {"_ingest_date": "date", "_source_file": "string"}
FEATURE_VERSION = {"_feature_set_version": "int"}


class SelectionError(FeaturemillError):
    """A ``--reference`` / ``--current`` / ``--date`` selection cannot be understood."""


@dataclass(frozen=True)
class TableRef:
    """A table a pipeline owns: where it is and what its rows mean."""

    name: str
    path: str
    kind: str  # validated | features | quarantine | other
    key: tuple[str, ...] = ()
    event_time: str | None = None
    date_column: str | None = None
    columns: tuple[tuple[str, str], ...] = ()  # declared (name, Spark SQL type), in order

    @property
    def column_types(self) -> dict[str, str]:
        return dict(self.columns)


def declared_columns(
    name: str, sources: Sequence[SourceSpec], feature_sets: Sequence[FeatureSetSpec]
) -> dict[str, str] | None:
    """Column name -> Spark SQL type of ``validated.<source>`` / ``features.<set>``; None if unknown."""
    kind, _, rest = name.partition(".")
    by_source = {s.name: s for s in sources}
    if kind == "validated" and rest in by_source:
        src = by_source[rest]
        cols = {c.name: c.type for c in src.columns}
        if src.event_time:
            cols["event_date"] = "date"
        cols.update(VALIDATED_EXTRA)
        return cols
    if kind == "features":
        fs = next((f for f in feature_sets if f.name == rest), None)
        if fs is None:
            return None
        src = by_source[fs.source]
        cols = {k: src.column(k).type for k in fs.entity}
        cols[src.event_time] = "timestamp"
        cols["event_date"] = "date"
        for f in fs.features:
            cols[f.name] = f.dtype
        for join in fs.joins:
            if join.level == "entity":
                dim = by_source[join.dimension]
                for c, output in zip(join.columns, join.output_columns, strict=True):
                    cols[output] = dim.column(c).type
        cols.update(FEATURE_VERSION)
        return cols
    return None


def table_names(config: PipelineConfig) -> list[str]:
    """Every table name :func:`resolve_table` accepts for this pipeline."""
    return (
        [f"validated.{s.name}" for s in config.sources]
        + [f"features.{f.name}" for f in config.feature_sets]
        + ["quarantine"]
    )


def resolve_table(config: PipelineConfig, name: str) -> TableRef:
    """The :class:`TableRef` for ``validated.<source>``, ``features.<set>`` or ``quarantine``."""
    tables = config.tables
    kind, _, rest = name.partition(".")
    if kind == "validated" and rest in {s.name for s in config.sources}:
        src = config.source(rest)
        cols = declared_columns(name, config.sources, config.feature_sets) or {}
        return TableRef(
            name,
            tables.validated(rest),
            "validated",
            key=src.key,
            event_time=src.event_time,
            date_column="event_date" if src.event_time else None,
            columns=tuple(cols.items()),
        )
    if kind == "features" and rest in {f.name for f in config.feature_sets}:
        fs = config.feature_set(rest)
        src = config.source(fs.source)
        cols = declared_columns(name, config.sources, config.feature_sets) or {}
        return TableRef(
            name,
            tables.features(rest),
            "features",
            key=tuple(fs.entity) + (src.event_time,),
            event_time=src.event_time,
            date_column="event_date",
            columns=tuple(cols.items()),
        )
    if name == "quarantine":
        return TableRef(name, tables.quarantine, "quarantine", date_column="_ingest_date")
    raise SelectionError(
        f"pipeline {config.name!r} has no table {name!r}; use one of: {', '.join(table_names(config))}"
    )


@dataclass(frozen=True)
class Selection:
    """Rows of a table: an optional inclusive date range and an optional Delta version."""

    start: dt.date | None = None
    end: dt.date | None = None
    version: int | None = None
    latest: bool = False

    @property
    def text(self) -> str:
        return self.dates_text + (f"@v{self.version}" if self.version is not None else "")

    @property
    def dates_text(self) -> str:
        """The date part only (``2026-09-01``, ``2026-09-01..2026-09-14``, ``all``, ``latest``)."""
        if self.latest:
            dates = "latest"
        elif self.start is None:
            dates = "all"
        elif self.start == self.end:
            dates = self.start.isoformat()
        else:
            dates = f"{self.start}..{self.end}"
        return dates


_VERSION_RE = re.compile(r"^v(?:ersion)?=?(\d+)$")


def parse_selection(text: str) -> Selection:
    """Parse ``2026-09-01``, ``2026-09-01..2026-09-14``, ``v12``, ``...@v12``, ``all`` or ``latest``."""
    raw = str(text).strip()
    dates_part, version = raw, None
    if "@" in raw:
        dates_part, _, version_part = raw.partition("@")
        version = _version(version_part, raw)
    elif _VERSION_RE.match(raw):
        return Selection(version=_version(raw, raw))
    dates_part = dates_part.strip()
    if dates_part in ("", "all"):
        return Selection(version=version)
    if dates_part == "latest":
        return Selection(version=version, latest=True)
    first, sep, last = dates_part.partition("..")
    start = _date(first, raw)
    end = _date(last, raw) if sep else start
    if end < start:
        raise SelectionError(f"selection {raw!r}: end {end} is before start {start}")
    return Selection(start=start, end=end, version=version)


def shown(requested: Selection, resolved: Selection) -> str:
    """What a report calls a selection: resolved dates, plus the version only if one was asked for."""
    return resolved.dates_text + (f"@v{requested.version}" if requested.version is not None else "")


def _version(text: str, whole: str) -> int:
    match = _VERSION_RE.match(text.strip())
    if not match:
        raise SelectionError(f"selection {whole!r}: {text!r} is not a table version (use v12)")
    return int(match.group(1))


def _date(text: str, whole: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise SelectionError(
            f"selection {whole!r}: {text.strip()!r} is not a date (use YYYY-MM-DD, "
            "YYYY-MM-DD..YYYY-MM-DD, v12, all or latest)"
        ) from None


def read_selection(spark, table: TableRef, selection: Selection):
    """Read ``selection`` of ``table``. Returns ``(DataFrame, resolved Selection, table version)``.

    ``latest`` is resolved to the latest date present (one small aggregate on the date column);
    the version read is pinned and returned, so a report can say exactly what it looked at.
    """
    from pyspark.sql import functions as F

    from featuremill.core.sql import col
    from featuremill.storage import io

    version = selection.version if selection.version is not None else io.delta_version(spark, table.path)
    if version is None:
        raise SelectionError(f"table {table.name} does not exist yet at {table.path}; run the job that writes it")
    df = io.read_delta(spark, table.path, version=version)
    start, end = selection.start, selection.end
    if (start is not None or selection.latest) and table.date_column is None:
        raise SelectionError(f"table {table.name} has no date column; select it with 'all' or a version (v12)")
    if selection.latest:
        latest = df.agg(F.max(col(table.date_column))).first()[0]
        if latest is None:
            raise SelectionError(f"table {table.name} (version {version}) is empty")
        start = end = latest
    if start is not None:
        df = df.where((col(table.date_column) >= F.lit(start)) & (col(table.date_column) <= F.lit(end)))
    return df, Selection(start=start, end=end, version=version), version


def refuse_internal(columns: Sequence[str], table: TableRef) -> None:
    """Refuse explicitly requested internal columns: profiles and drift reports are user-facing,
    and featuremill's bookkeeping columns (:data:`featuremill.core.columns.RESERVED_PREFIX`) are
    not features."""
    internal = [c for c in columns if is_internal(c)]
    if internal:
        raise SelectionError(
            f"table {table.name}: {', '.join(internal)} "
            + ("is an internal column" if len(internal) == 1 else "are internal columns")
            + f" (prefix {RESERVED_PREFIX!r}, featuremill's bookkeeping), not profiled or compared; "
            "leave them out of --columns and the quality section"
        )


def columns_for_analysis(
    schema, table: TableRef, *, columns: Sequence[str] | None = None, exclude: Sequence[str] = ()
) -> list[str]:
    """Columns to profile or compare: ``columns`` if given (internal ones refused), else all but
    keys, dates and internal (``_``) columns."""
    names = [f.name for f in schema.fields]
    if columns:
        refuse_internal(columns, table)
        missing = [c for c in columns if c not in names]
        if missing:
            shown = ", ".join(user_columns(names))
            raise SelectionError(f"table {table.name} has no column(s) {', '.join(missing)}; it has {shown}")
        return list(columns)
    skip = set(table.key) | {table.event_time, table.date_column, "event_date"} | set(exclude)
    return [n for n in user_columns(names) if n not in skip]


def stack(df, entries: Sequence[dict]):
    """One output row per (input row, entry); ``entries`` are dicts field name -> Column, same keys.

    The fields are computed in a projection first and only then exploded with ``inline``: Spark
    splits a wide projection's generated code into methods, while one ``array(struct(...))`` of
    hundreds of expressions would exceed the JVM method size and fall back to interpreted mode.
    """
    from pyspark.sql import functions as F

    names = list(entries[0])
    wide = df.select(*[entry[name].alias(f"__s{i}_{name}") for i, entry in enumerate(entries) for name in names])
    return wide.select(
        F.inline(F.array(*[F.struct(*[F.col(f"__s{i}_{n}").alias(n) for n in names]) for i in range(len(entries))]))
    )
