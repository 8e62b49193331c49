"""The frozen configuration objects, the declared types and durations.

Nothing here reads files: :mod:`featuremill.config.pipeline` builds these objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from featuremill.core.errors import ConfigIssue

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DECIMAL_RE = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")

#: Declared column types and the Spark SQL type each one maps to.
COLUMN_TYPES = {
    "string": "string",
    "boolean": "boolean",
    "tinyint": "tinyint",
    "smallint": "smallint",
    "int": "int",
    "integer": "int",
    "bigint": "bigint",
    "long": "bigint",
    "float": "float",
    "double": "double",
    "date": "date",
    "timestamp": "timestamp",
}
NUMERIC_TYPES = {"tinyint", "smallint", "int", "bigint", "float", "double"}
SOURCE_FORMATS = ("csv", "json", "parquet", "delta")
SOURCE_KINDS = ("events", "dimension")
WINDOW_AGGREGATIONS = ("count", "sum", "mean", "stddev", "min", "max", "first", "last", "count_distinct", "percentile")
FEATURE_FUNCTIONS = WINDOW_AGGREGATIONS + ("lag", "time_since_previous", "ratio")
DEFAULT_MAX_BROADCAST_BYTES = 64 * 1024 * 1024
#: ``as_of`` of a join: the dimension version valid at the row's event time, or the current one.
JOIN_AS_OF = ("event_time", "latest")
#: ``broadcast`` of a join: ``always`` refuses a dimension over its limit, ``auto`` falls back to
#: a sort-merge join.
JOIN_BROADCAST = ("always", "auto")


def parse_duration(text: Any) -> int:
    """Return the number of seconds in a duration such as ``30m``, ``1h``, ``7d`` or ``2w``.

    Raises ``ValueError`` with the accepted forms when ``text`` is not a duration.
    """
    match = _DURATION_RE.match(str(text)) if isinstance(text, (str, int)) else None
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration (use 30m, 1h, 7d)")
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    """Inverse of :func:`parse_duration` using the largest exact unit."""
    for unit, size in sorted(DURATION_UNITS.items(), key=lambda kv: -kv[1]):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def spark_type(declared: str) -> str:
    """Map a declared column type to its Spark SQL type name; ``ValueError`` if unknown."""
    text = str(declared).strip().lower()
    if text in COLUMN_TYPES:
        return COLUMN_TYPES[text]
    match = _DECIMAL_RE.match(text)
    if match and 0 < int(match.group(1)) <= 38 and int(match.group(2)) <= int(match.group(1)):
        return f"decimal({int(match.group(1))},{int(match.group(2))})"
    raise ValueError(
        f"{declared!r} is not a supported type (use one of {', '.join(sorted(set(COLUMN_TYPES)))}, or decimal(p,s))"
    )


# --------------------------------------------------------------------------------------------
# Frozen configuration objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """A declared column: name, Spark SQL type, nullability and, for timestamps, a parse format."""

    name: str
    type: str
    nullable: bool = True
    description: str = ""
    format: str | None = None
    allow_non_finite: bool = False

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES or self.type.startswith("decimal")


@dataclass(frozen=True)
class SourceSpec:
    """A raw input: an event stream partitioned by landing date, or a dimension snapshot."""

    name: str
    kind: str
    format: str
    path: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]
    event_time: str | None = None
    partition_column: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    max_broadcast_bytes: int = DEFAULT_MAX_BROADCAST_BYTES
    description: str = ""
    owner: str = ""
    #: events sources: accept a landing date whose files hold no rows (default: the run fails)
    allow_empty: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


@dataclass(frozen=True)
class JoinSpec:
    """A join to a dimension's history: ``level`` is ``event`` (before windows) or ``entity``.

    ``as_of`` is ``event_time`` (the version valid at the event's, or the feature row's, time) or
    ``latest`` (the current version, for attributes that never change); ``broadcast`` is
    ``always`` (refuse a dimension over its size limit) or ``auto`` (sort-merge join instead).

    ``columns`` are the dimension's column names; ``renames`` pairs each renamed one with its name
    in the feature frame (``columns: {year: release_year}``), empty when none is renamed.
    """

    dimension: str
    on: tuple[str, ...]
    columns: tuple[str, ...]
    level: str = "event"
    as_of: str = "event_time"
    broadcast: str = "always"
    renames: tuple[tuple[str, str], ...] = ()

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The joined columns' names in the feature frame, in ``columns`` order."""
        renamed = dict(self.renames)
        return tuple(renamed.get(c, c) for c in self.columns)

    def dimension_column(self, name: str) -> str | None:
        """The dimension column joined as ``name`` in the feature frame, None when none is."""
        for column, output in zip(self.columns, self.output_columns, strict=True):
            if output == name:
                return column
        return None


@dataclass(frozen=True)
class WhereSpec:
    """An equality filter on one column, applied inside a window aggregate."""

    column: str
    equals: Any


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: its business meaning and how it is computed."""

    name: str
    function: str
    description: str
    owner: str
    version: int
    column: str | None = None
    window: str | None = None
    window_seconds: int | None = None
    offset: int = 1
    numerator: str | None = None
    denominator: str | None = None
    where: WhereSpec | None = None
    dtype: str = "double"
    percentile: float | None = None


@dataclass(frozen=True)
class FeatureSetSpec:
    """Features over one source and one entity, written to one Delta table."""

    name: str
    description: str
    owner: str
    version: int
    update_frequency: str
    source: str
    entity: tuple[str, ...]
    features: tuple[FeatureSpec, ...]
    joins: tuple[JoinSpec, ...] = ()

    @property
    def lookback_seconds(self) -> int:
        """The longest history any feature of the set needs (its largest window)."""
        return max((f.window_seconds or 0) for f in self.features)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)


#: Online stores a Feast repository can serve from (``online_store:`` of an environment file).
ONLINE_STORE_TYPES = ("sqlite", "redis")


@dataclass(frozen=True)
class OnlineStoreSpec:
    """Where Feast serves features from: ``sqlite`` (a file, embedded; the default) or ``redis``.

    ``path`` is the SQLite file (relative paths are relative to the Feast repository);
    ``address`` is Redis' ``host:port``.
    """

    type: str = "sqlite"
    path: str = "data/online_store.db"
    address: str = "127.0.0.1:6379"

    @property
    def describe(self) -> str:
        """``sqlite at PATH`` / ``redis at HOST:PORT``: how errors name the store."""
        return f"{self.type} at {self.path if self.type == 'sqlite' else self.address}"


@dataclass(frozen=True)
class EnvSpec:
    """Where data lives and how a local session is configured, for one environment."""

    name: str
    file: str
    warehouse: str
    data_root: str
    master: str | None = None
    spark_conf: tuple[tuple[str, str], ...] = ()
    max_broadcast_bytes: int = DEFAULT_MAX_BROADCAST_BYTES
    online_store: OnlineStoreSpec = field(default_factory=OnlineStoreSpec)
    #: ``tables: {schema, catalog}``: the metastore namespace (``[catalog.]schema``) the pipeline's
    #: Delta tables are named in; ``None``: tables are paths under ``warehouse``.
    tables_namespace: str | None = None

    @property
    def root(self) -> WriteRoot:
        """What every write is checked against: the warehouse path (documents, and tables by
        path) carrying the tables' namespace when tables are named (``io.check_write_path``)."""
        return WriteRoot(self.warehouse, self.tables_namespace)


class WriteRoot(str):
    """The warehouse path (a ``str``, so every path check and join keeps working) that also
    carries ``namespace``, the ``[catalog.]schema`` a table written by name must lie in."""

    namespace: str | None

    def __new__(cls, warehouse: str, namespace: str | None = None) -> WriteRoot:
        value = super().__new__(cls, warehouse)
        value.namespace = namespace
        return value


def table_name_part(text: str) -> str:
    """``text`` as one part of a metastore table name: lower case (Hive and Unity Catalog fold
    names to it), every character other than a letter, digit or ``_`` replaced by ``_``."""
    return re.sub(r"[^a-z0-9_]", "_", text.lower())


@dataclass(frozen=True)
class PipelineConfig:
    """A whole pipeline, resolved against one environment."""

    name: str
    file: str
    description: str
    owner: str
    timezone: str
    sources: tuple[SourceSpec, ...]
    feature_sets: tuple[FeatureSetSpec, ...]
    env: EnvSpec
    sections: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[ConfigIssue, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def section(self, key: str, default: Any = None) -> Any:
        """The parsed object of an optional section (see :data:`SECTIONS`), or ``default``."""
        return self.sections.get(key, default)

    def source(self, name: str) -> SourceSpec:
        for src in self.sources:
            if src.name == name:
                return src
        raise KeyError(f"pipeline {self.name!r} has no source {name!r}")

    def feature_set(self, name: str) -> FeatureSetSpec:
        for fs in self.feature_sets:
            if fs.name == name:
                return fs
        raise KeyError(f"pipeline {self.name!r} has no feature set {name!r}")

    @property
    def tables(self) -> TablePaths:
        return TablePaths(
            root=f"{self.env.warehouse.rstrip('/')}/{self.name}",
            pipeline=self.name,
            namespace=self.env.tables_namespace,
        )


@dataclass(frozen=True)
class TablePaths:
    """References of the Delta tables a pipeline owns, and the folder of its documents.

    ``root`` (``<warehouse>/<pipeline>``) holds the documents (JSON manifests, checkpoints,
    generated repositories) whatever the tables are. A table is known by its path relative to
    ``root`` (``validated/transactions``): without ``namespace`` its reference is the path under
    ``root``; with ``namespace`` (``[catalog.]schema``, from the environment's ``tables:``) it is
    the metastore name ``<namespace>.<pipeline>__validated__transactions`` (:meth:`table`).
    """

    root: str
    pipeline: str = ""
    namespace: str | None = None

    def table(self, relative: str) -> str:
        """The reference (path or name) of the pipeline's table at ``relative`` (``a/b/c``)."""
        relative = relative.strip("/")
        if self.namespace is None:
            return f"{self.root}/{relative}"
        parts = [self.pipeline or self.root.rstrip("/").rsplit("/", 1)[-1], *relative.split("/")]
        return f"{self.namespace}.{'__'.join(table_name_part(p) for p in parts if p)}"

    def validated(self, source: str) -> str:
        return self.table(f"validated/{source}")

    @property
    def quarantine(self) -> str:
        return self.table("quarantine")

    def features(self, feature_set: str) -> str:
        return self.table(f"features/{feature_set}")

    @property
    def run_log(self) -> str:
        return self.table("run_log")

    @property
    def model_registry(self) -> str:
        return self.table("model_registry")
