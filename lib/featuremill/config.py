"""Pipeline configuration: YAML loaded once, checked, and turned into frozen dataclasses.

Config flows one way: CLI arguments -> :func:`load_pipeline` (reads the pipeline YAML and an
environment overlay) -> :class:`PipelineConfig` -> plain arguments to the library. Nothing below
this module reads files or environment variables.

Validation never starts Spark. Every problem found is collected and raised together as a
:class:`~featuremill.errors.ConfigError` whose lines name the file and the path inside it, e.g.
``conf/pipelines/demo.yaml: feature_sets[0].features[3].window: '7x' is not a duration (use 30m, 1h, 7d)``.
The format is documented in ``docs/pipeline-config.md``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from featuremill.errors import ConfigError, ConfigIssue

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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
WINDOW_AGGREGATIONS = ("count", "sum", "mean", "stddev", "min", "max")
FEATURE_FUNCTIONS = WINDOW_AGGREGATIONS + ("lag", "time_since_previous", "ratio")
DEFAULT_MAX_BROADCAST_BYTES = 64 * 1024 * 1024


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
        f"{declared!r} is not a supported type (use one of {', '.join(sorted(set(COLUMN_TYPES)))}"
        ", or decimal(p,s))"
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
    """A broadcast join to a dimension: ``level`` is ``event`` (before windows) or ``entity``."""

    dimension: str
    on: tuple[str, ...]
    columns: tuple[str, ...]
    level: str = "event"


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
    def event_sources(self) -> tuple[SourceSpec, ...]:
        return tuple(s for s in self.sources if s.kind == "events")

    @property
    def dimension_sources(self) -> tuple[SourceSpec, ...]:
        return tuple(s for s in self.sources if s.kind == "dimension")

    @property
    def tables(self) -> "TablePaths":
        return TablePaths(root=f"{self.env.warehouse.rstrip('/')}/{self.name}")


@dataclass(frozen=True)
class TablePaths:
    """Locations of the Delta tables a pipeline owns, all under ``<warehouse>/<pipeline>/``."""

    root: str

    def validated(self, source: str) -> str:
        return f"{self.root}/validated/{source}"

    @property
    def quarantine(self) -> str:
        return f"{self.root}/quarantine"

    def features(self, feature_set: str) -> str:
        return f"{self.root}/features/{feature_set}"

    @property
    def run_log(self) -> str:
        return f"{self.root}/run_log"

    @property
    def model_registry(self) -> str:
        return f"{self.root}/model_registry"


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


class Checker:
    """Collects issues with their file and path while walking a YAML document."""

    def __init__(self, file: str):
        self.file = file
        self.issues: list[ConfigIssue] = []

    def error(self, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, path, message))

    def warn(self, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, path, message, severity="warning"))

    def mapping(self, value: Any, path: str, required: tuple[str, ...] = (),
                optional: tuple[str, ...] = ()) -> dict | None:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {_kind(value)}")
            return None
        allowed = set(required) | set(optional)
        for key in value:
            if not isinstance(key, str):
                self.error(path, f"key {key!r} is not a string")
            elif key not in allowed:
                hint = _closest(key, allowed)
                self.error(_join(path, key), "unknown key" + (f" (did you mean {hint!r}?)" if hint else
                                                               f"; allowed: {', '.join(sorted(allowed))}"))
        for key in required:
            if key not in value:
                self.error(_join(path, key), "is required")
        return value

    def string(self, value: Any, path: str, *, choices: tuple[str, ...] | None = None,
               identifier: bool = False) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.error(path, f"expected a non-empty string, got {_kind(value)}")
            return None
        if choices is not None and value not in choices:
            self.error(path, f"{value!r} is not one of {', '.join(choices)}")
            return None
        if identifier and not _NAME_RE.match(value):
            self.error(path, f"{value!r} is not a valid name (letters, digits and _, not starting with a digit)")
            return None
        return value

    def integer(self, value: Any, path: str, *, minimum: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"expected an integer, got {_kind(value)}")
            return None
        if minimum is not None and value < minimum:
            self.error(path, f"{value} is below the minimum {minimum}")
            return None
        return value

    def positive_number(self, value: Any, path: str) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            self.error(path, f"expected a positive number, got {_kind(value)}")
            return None
        return float(value)

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.error(path, f"expected true or false, got {_kind(value)}")
            return None
        return value

    def names(self, value: Any, path: str) -> tuple[str, ...] | None:
        """A column name or a list of column names."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            self.error(path, f"expected a column name or a non-empty list of names, got {_kind(value)}")
            return None
        out = []
        for i, item in enumerate(items):
            name = self.string(item, f"{path}[{i}]" if isinstance(value, list) else path)
            if name is not None:
                out.append(name)
        if len(set(out)) != len(out):
            self.error(path, "lists a name more than once")
        return tuple(out)

    def duration(self, value: Any, path: str) -> int | None:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.error(path, str(exc))
            return None

    def raise_if_errors(self) -> None:
        errors = [i for i in self.issues if i.severity == "error"]
        if errors:
            raise ConfigError(self.issues)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _closest(key: str, allowed: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.75)
    return match[0] if match else None


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 would turn keys such as ``on`` (a join's
    key columns) or values such as ``no``/``off`` (a country code, a filter value) into booleans."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml_text(text: str) -> Any:
    """Parse YAML with 1.2 boolean rules (see :class:`_Yaml12Loader`)."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(path), "", "file not found")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([ConfigIssue(str(path), where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None


_ENV_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env_vars(text: str, path: str, checker: Checker, environ: Mapping[str, str]) -> str:
    def repl(match: re.Match) -> str:
        name = match.group(1)
        if name not in environ:
            checker.error(path, f"environment variable {name} is not set")
            return match.group(0)
        return environ[name]

    return _ENV_VAR_RE.sub(repl, text)


def _is_uri(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text)) and not re.match(r"^[A-Za-z]:[\\/]", text)


def _resolve_path(text: str, base: str | Path) -> str:
    """Absolute local path, or an URI (s3://, abfss://, dbfs:/ ...) unchanged; relative to ``base``."""
    if _is_uri(text):
        return text
    if os.path.isabs(text):
        return str(Path(text).resolve())
    if _is_uri(str(base)):
        return str(base).rstrip("/") + "/" + text
    return str((Path(base) / text).resolve())


def load_env(path: str | Path, *, environ: Mapping[str, str] | None = None,
             overrides: Mapping[str, str] | None = None) -> EnvSpec:
    """Read an environment overlay (``conf/env/<name>.yaml``).

    Relative paths in it are relative to the project root, the folder that holds ``conf/``.
    ``${VAR}`` references are expanded from ``environ`` (the process environment by default);
    ``overrides`` (``warehouse``, ``data_root``, ``master``) come from command-line flags and
    are relative to the current directory.
    """
    env_path = Path(path)
    checker = Checker(str(env_path))
    doc = _read_yaml(env_path)
    doc = {} if doc is None else doc
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    data = checker.mapping(doc, "", required=("warehouse", "data_root"),
                           optional=("name", "description", "master", "spark", "max_broadcast_mb"))
    checker.raise_if_errors()
    assert data is not None
    project_root = env_path.resolve().parent.parent.parent
    values: dict[str, str] = {}
    for key in ("warehouse", "data_root", "master"):
        if key in overrides and overrides[key]:
            values[key] = overrides[key]
            continue
        if key in data and data[key] is not None:
            text = checker.string(data[key], key)
            if text is not None:
                values[key] = _expand_env_vars(text, key, checker, environ)
    spark_conf: list[tuple[str, str]] = []
    if "spark" in data:
        conf = checker.mapping(data["spark"], "spark", optional=tuple(data["spark"] or {}) if isinstance(data["spark"], dict) else ())
        for key, value in (conf or {}).items():
            if isinstance(value, (dict, list)) or value is None:
                checker.error(_join("spark", str(key)), f"expected a scalar value, got {_kind(value)}")
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            spark_conf.append((str(key), _expand_env_vars(text, _join("spark", str(key)), checker, environ)))
    max_mb: float = DEFAULT_MAX_BROADCAST_BYTES / (1024 * 1024)
    if "max_broadcast_mb" in data:
        max_mb = checker.positive_number(data["max_broadcast_mb"], "max_broadcast_mb") or max_mb
    checker.raise_if_errors()
    cwd = Path.cwd()
    return EnvSpec(
        name=str(data.get("name") or env_path.stem),
        file=str(env_path),
        warehouse=_resolve_path(values["warehouse"], cwd if "warehouse" in overrides and overrides["warehouse"] else project_root),
        data_root=_resolve_path(values["data_root"], cwd if "data_root" in overrides and overrides["data_root"] else project_root),
        master=values.get("master"),
        spark_conf=tuple(spark_conf),
        max_broadcast_bytes=int(max_mb * 1024 * 1024),
    )


def find_env_file(pipeline_file: str | Path, env: str) -> Path:
    """``env`` is a path to a YAML file, or a name looked up in ``conf/env/`` beside the pipeline."""
    candidate = Path(env)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    return Path(pipeline_file).resolve().parent.parent / "env" / f"{env}.yaml"


def load_pipeline(path: str | Path, *, env: str | Path = "local", environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, str] | None = None) -> PipelineConfig:
    """Load and check a pipeline file against an environment overlay.

    ``env`` is an environment name (``local`` -> ``conf/env/local.yaml`` next to the pipeline's
    ``conf/pipelines/`` folder) or a path. Raises :class:`ConfigError` listing every problem.
    """
    env_spec = load_env(find_env_file(path, str(env)), environ=environ, overrides=overrides)
    return parse_pipeline(_read_yaml(Path(path)), file=str(path), env=env_spec)


#: Optional top-level sections, each parsed by its own module: key -> "module:function".
#: The function is called as ``fn(checker, value, path, context)`` where ``context`` is a
#: :class:`SectionContext`; it reports problems with ``checker.error(path, message)`` /
#: ``checker.warn(...)`` and returns the parsed (frozen) object, stored in
#: ``PipelineConfig.sections[key]``. Modules are imported only when their key is present.
SECTIONS: dict[str, str] = {
    "replay_window": "featuremill.retention:parse_replay_window",
    "quality": "featuremill.quality.spec:parse_section",
    "dag": "featuremill.dag:parse_dag_section",
    "preprocessing": "featuremill.preprocessing.spec:parse_preprocessing_section",
    "selection": "featuremill.selection.spec:parse_selection_section",
}


@dataclass(frozen=True)
class SectionContext:
    """What a section parser may refer to: the already-parsed sources and feature sets."""

    file: str
    sources: tuple[SourceSpec, ...]
    feature_sets: tuple[FeatureSetSpec, ...]
    env: EnvSpec
    document: Mapping[str, Any]


def _section_parser(target: str) -> Callable[..., Any]:
    import importlib

    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def parse_pipeline(doc: Any, *, file: str, env: EnvSpec) -> PipelineConfig:
    """Check a parsed pipeline document and build a :class:`PipelineConfig`."""
    checker = Checker(file)
    top = checker.mapping(
        doc if doc is not None else {}, "",
        required=("pipeline", "sources", "feature_sets"),
        optional=("description", "owner", "timezone") + tuple(SECTIONS),
    )
    if top is None:
        checker.raise_if_errors()
    assert top is not None
    name = checker.string(top.get("pipeline"), "pipeline", identifier=True) if "pipeline" in top else None
    timezone = "UTC"
    if "timezone" in top:
        timezone = checker.string(top["timezone"], "timezone") or "UTC"

    sources = _parse_sources(checker, top.get("sources"), env) if "sources" in top else ()
    by_name = {s.name: s for s in sources}
    feature_sets = _parse_feature_sets(checker, top.get("feature_sets"), by_name) if "feature_sets" in top else ()
    context = SectionContext(file=file, sources=tuple(sources), feature_sets=tuple(feature_sets), env=env,
                             document=top)
    sections: dict[str, Any] = {}
    for key, target in SECTIONS.items():
        if key in top:
            sections[key] = _section_parser(target)(checker, top[key], key, context)
    checker.raise_if_errors()
    return PipelineConfig(
        name=name or "",
        file=file,
        description=str(top.get("description") or ""),
        owner=str(top.get("owner") or ""),
        timezone=timezone,
        sources=tuple(sources),
        feature_sets=tuple(feature_sets),
        env=env,
        sections=sections,
        warnings=tuple(i for i in checker.issues if i.severity != "error"),
        raw=top,
    )


def _parse_columns(checker: Checker, value: Any, path: str) -> tuple[ColumnSpec, ...]:
    data = checker.mapping(value, path, optional=tuple(value) if isinstance(value, dict) else ())
    if not data:
        if data is not None:
            checker.error(path, "declares no columns")
        return ()
    columns = []
    for col_name, spec in data.items():
        col_path = _join(path, str(col_name))
        if isinstance(spec, str):
            spec = {"type": spec}
        body = checker.mapping(spec, col_path, required=("type",),
                               optional=("nullable", "description", "format", "allow_non_finite"))
        if body is None or "type" not in body:
            continue
        try:
            sql_type = spark_type(body["type"])
        except ValueError as exc:
            checker.error(_join(col_path, "type"), str(exc))
            continue
        nullable = checker.boolean(body["nullable"], _join(col_path, "nullable")) if "nullable" in body else True
        fmt = checker.string(body["format"], _join(col_path, "format")) if "format" in body else None
        if fmt is not None and sql_type not in ("timestamp", "date"):
            checker.error(_join(col_path, "format"), "only timestamp and date columns take a format")
        allow_nf = checker.boolean(body["allow_non_finite"], _join(col_path, "allow_non_finite")) \
            if "allow_non_finite" in body else False
        columns.append(ColumnSpec(name=str(col_name), type=sql_type, nullable=bool(nullable) if nullable is not None else True,
                                  description=str(body.get("description") or ""), format=fmt,
                                  allow_non_finite=bool(allow_nf)))
    return tuple(columns)


def _parse_sources(checker: Checker, value: Any, env: EnvSpec) -> list[SourceSpec]:
    data = checker.mapping(value, "sources", optional=tuple(value) if isinstance(value, dict) else ())
    if not data:
        if data is not None:
            checker.error("sources", "declares no sources")
        return []
    out = []
    for src_name, body in data.items():
        path = _join("sources", str(src_name))
        if checker.string(src_name, path, identifier=True) is None:
            continue
        spec = checker.mapping(body, path, required=("kind", "format", "path", "columns", "key"),
                               optional=("description", "owner", "options", "partition_column", "event_time",
                                         "max_broadcast_mb"))
        if spec is None:
            continue
        kind = checker.string(spec.get("kind"), _join(path, "kind"), choices=SOURCE_KINDS) if "kind" in spec else None
        fmt = checker.string(spec.get("format"), _join(path, "format"), choices=SOURCE_FORMATS) if "format" in spec else None
        rel = checker.string(spec.get("path"), _join(path, "path")) if "path" in spec else None
        columns = _parse_columns(checker, spec.get("columns"), _join(path, "columns")) if "columns" in spec else ()
        names = {c.name for c in columns}
        key = checker.names(spec.get("key"), _join(path, "key")) if "key" in spec else None
        for i, k in enumerate(key or ()):
            if names and k not in names:
                checker.error(_join(path, "key"), f"column {k!r} is not declared in columns")
        event_time = partition_column = None
        if "event_time" in spec:
            event_time = checker.string(spec["event_time"], _join(path, "event_time"))
            if event_time and names and event_time not in names:
                checker.error(_join(path, "event_time"), f"column {event_time!r} is not declared in columns")
            elif event_time and names and next(c for c in columns if c.name == event_time).type != "timestamp":
                checker.error(_join(path, "event_time"), f"column {event_time!r} must be declared as timestamp")
        if "partition_column" in spec:
            partition_column = checker.string(spec["partition_column"], _join(path, "partition_column"), identifier=True)
            if partition_column and partition_column in names:
                checker.error(_join(path, "partition_column"),
                              f"{partition_column!r} is a directory partition (name=value folders), not a file column")
        if kind == "events":
            if "event_time" not in spec:
                checker.error(_join(path, "event_time"), "is required for an events source")
            if "partition_column" not in spec and fmt != "delta":
                checker.error(_join(path, "partition_column"), "is required for an events source read from files")
        options: list[tuple[str, str]] = []
        if "options" in spec:
            opts = checker.mapping(spec["options"], _join(path, "options"),
                                   optional=tuple(spec["options"]) if isinstance(spec["options"], dict) else ())
            for k, v in (opts or {}).items():
                if isinstance(v, (dict, list)) or v is None:
                    checker.error(_join(_join(path, "options"), str(k)), f"expected a scalar, got {_kind(v)}")
                else:
                    options.append((str(k), str(v).lower() if isinstance(v, bool) else str(v)))
        max_bytes = env.max_broadcast_bytes
        if "max_broadcast_mb" in spec:
            mb = checker.positive_number(spec["max_broadcast_mb"], _join(path, "max_broadcast_mb"))
            if mb is not None:
                max_bytes = int(mb * 1024 * 1024)
        if None in (kind, fmt, rel, key) or not columns:
            continue
        out.append(SourceSpec(
            name=str(src_name), kind=kind, format=fmt, path=_resolve_path(rel, env.data_root),
            columns=columns, key=key, event_time=event_time, partition_column=partition_column,
            options=tuple(options), max_broadcast_bytes=max_bytes,
            description=str(spec.get("description") or ""), owner=str(spec.get("owner") or ""),
        ))
    return out


def _parse_feature_sets(checker: Checker, value: Any, sources: dict[str, SourceSpec]) -> list[FeatureSetSpec]:
    if not isinstance(value, list) or not value:
        checker.error("feature_sets", f"expected a non-empty list of feature sets, got {_kind(value)}")
        return []
    out = []
    seen_sets: set[str] = set()
    seen_features: dict[str, str] = {}
    for i, body in enumerate(value):
        path = f"feature_sets[{i}]"
        spec = checker.mapping(body, path, required=("name", "description", "owner", "version", "source",
                                                     "entity", "features"),
                               optional=("update_frequency", "joins"))
        if spec is None:
            continue
        name = checker.string(spec.get("name"), _join(path, "name"), identifier=True) if "name" in spec else None
        if name in seen_sets:
            checker.error(_join(path, "name"), f"feature set {name!r} is declared more than once")
        seen_sets.add(name or "")
        description = checker.string(spec.get("description"), _join(path, "description")) if "description" in spec else None
        owner = checker.string(spec.get("owner"), _join(path, "owner")) if "owner" in spec else None
        version = checker.integer(spec.get("version"), _join(path, "version"), minimum=1) if "version" in spec else None
        update_frequency = "daily"
        if "update_frequency" in spec:
            update_frequency = checker.string(spec["update_frequency"], _join(path, "update_frequency")) or "daily"
        source = None
        if "source" in spec:
            src_name = checker.string(spec["source"], _join(path, "source"))
            if src_name is not None:
                source = sources.get(src_name)
                if source is None:
                    checker.error(_join(path, "source"), f"source {src_name!r} is not declared under sources")
                elif source.kind != "events":
                    checker.error(_join(path, "source"), f"source {src_name!r} is a {source.kind}, features need an events source")
                    source = None
        entity = checker.names(spec.get("entity"), _join(path, "entity")) if "entity" in spec else None
        if source and entity:
            for k in entity:
                if k not in source.column_names:
                    checker.error(_join(path, "entity"), f"column {k!r} is not declared in source {source.name!r}")
        event_columns: dict[str, ColumnSpec] = {c.name: c for c in source.columns} if source else {}
        entity_columns: set[str] = set()
        joins = []
        if "joins" in spec:
            if not isinstance(spec["joins"], list):
                checker.error(_join(path, "joins"), f"expected a list, got {_kind(spec['joins'])}")
            else:
                for j, jbody in enumerate(spec["joins"]):
                    join = _parse_join(checker, jbody, f"{path}.joins[{j}]", sources, event_columns, entity or ())
                    if join is None:
                        continue
                    joins.append(join)
                    dim = sources[join.dimension]
                    for c in join.columns:
                        if join.level == "event":
                            event_columns[c] = dim.column(c)
                        else:
                            entity_columns.add(c)
        features = _parse_features(checker, spec.get("features"), _join(path, "features"), event_columns,
                                   owner or "", version or 1, seen_features, name or "")
        reserved = set(entity or ()) | entity_columns | ({source.event_time, "event_date"} if source else set())
        for f_i, feat in enumerate(features):
            if feat.name in reserved:
                checker.error(f"{path}.features[{f_i}].name", f"{feat.name!r} clashes with a key or joined column")
        if None in (name, description, owner, version, source, entity) or not features:
            continue
        out.append(FeatureSetSpec(name=name, description=description, owner=owner, version=version,
                                  update_frequency=update_frequency, source=source.name, entity=entity,
                                  features=tuple(features), joins=tuple(joins)))
    return out


def _parse_join(checker: Checker, value: Any, path: str, sources: dict[str, SourceSpec],
                event_columns: dict[str, ColumnSpec], entity: tuple[str, ...]) -> JoinSpec | None:
    spec = checker.mapping(value, path, required=("dimension", "on", "columns"), optional=("level",))
    if spec is None:
        return None
    dim_name = checker.string(spec.get("dimension"), _join(path, "dimension")) if "dimension" in spec else None
    dim = sources.get(dim_name) if dim_name else None
    if dim_name and dim is None:
        checker.error(_join(path, "dimension"), f"source {dim_name!r} is not declared under sources")
    elif dim is not None and dim.kind != "dimension":
        checker.error(_join(path, "dimension"), f"source {dim_name!r} is not a dimension")
        dim = None
    level = checker.string(spec.get("level", "event"), _join(path, "level"), choices=("event", "entity"))
    on = checker.names(spec.get("on"), _join(path, "on")) if "on" in spec else None
    columns = checker.names(spec.get("columns"), _join(path, "columns")) if "columns" in spec else None
    ok = dim is not None and on is not None and columns is not None and level is not None
    if on:
        available = set(entity) if level == "entity" else set(event_columns)
        for k in on:
            if k not in available:
                where = "the entity keys" if level == "entity" else "the source columns"
                checker.error(_join(path, "on"), f"column {k!r} is not among {where}")
                ok = False
            if dim is not None and k not in dim.column_names:
                checker.error(_join(path, "on"), f"column {k!r} is not declared in dimension {dim.name!r}")
                ok = False
        if dim is not None and tuple(sorted(on)) != tuple(sorted(dim.key)):
            checker.error(_join(path, "on"), f"must be the dimension's key {list(dim.key)} so the join cannot multiply rows")
            ok = False
    if columns and dim is not None:
        for c in columns:
            if c not in dim.column_names:
                checker.error(_join(path, "columns"), f"column {c!r} is not declared in dimension {dim.name!r}")
                ok = False
            elif c in event_columns:
                checker.error(_join(path, "columns"), f"column {c!r} already exists before the join")
                ok = False
    return JoinSpec(dimension=dim.name, on=on, columns=columns, level=level) if ok else None


def _parse_features(checker: Checker, value: Any, path: str, columns: dict[str, ColumnSpec], owner: str,
                    version: int, seen: dict[str, str], set_name: str) -> list[FeatureSpec]:
    if not isinstance(value, list) or not value:
        checker.error(path, f"expected a non-empty list of features, got {_kind(value)}")
        return []
    out: list[FeatureSpec] = []
    names_so_far: dict[str, FeatureSpec] = {}
    declared: set[str] = set()  # valid or not, so one bad feature does not cascade into its ratios
    pending_ratios: list[tuple[int, FeatureSpec]] = []
    for i, body in enumerate(value):
        fpath = f"{path}[{i}]"
        spec = checker.mapping(body, fpath, required=("name", "description", "function"),
                               optional=("column", "window", "offset", "numerator", "denominator", "where",
                                         "owner", "version"))
        if spec is None:
            continue
        name = checker.string(spec.get("name"), _join(fpath, "name"), identifier=True) if "name" in spec else None
        if name is not None:
            declared.add(name)
            if name in seen:
                checker.error(_join(fpath, "name"), f"duplicate feature name {name!r} (also in {seen[name]})")
            seen[name] = f"{set_name}" if set_name else fpath
        description = checker.string(spec.get("description"), _join(fpath, "description")) if "description" in spec else None
        function = checker.string(spec.get("function"), _join(fpath, "function"), choices=FEATURE_FUNCTIONS) \
            if "function" in spec else None
        f_owner = checker.string(spec["owner"], _join(fpath, "owner")) if "owner" in spec else owner
        f_version = checker.integer(spec["version"], _join(fpath, "version"), minimum=1) if "version" in spec else version
        column = window = None
        window_seconds = None
        offset = 1
        where = None
        numerator = denominator = None
        dtype = "double"
        ok = None not in (name, description, function, f_owner, f_version)
        needs_column = function in ("sum", "mean", "stddev", "min", "max", "lag")
        allows_column = needs_column or function == "count"
        if "column" in spec:
            if not allows_column:
                checker.error(_join(fpath, "column"), f"function {function!r} takes no column")
                ok = False
            else:
                column = checker.string(spec["column"], _join(fpath, "column"))
                if column is not None and column not in columns:
                    checker.error(_join(fpath, "column"), f"column {column!r} is not a column of the source or its event-level joins")
                    ok = False
                elif column is not None and function in ("sum", "mean", "stddev") and not columns[column].is_numeric:
                    checker.error(_join(fpath, "column"), f"{function} needs a numeric column, {column!r} is {columns[column].type}")
                    ok = False
        elif needs_column:
            checker.error(_join(fpath, "column"), f"is required for function {function!r}")
            ok = False
        if function == "ratio":
            for key in ("window", "offset", "where"):
                if key in spec:
                    checker.error(_join(fpath, key), "a ratio takes no " + key)
                    ok = False
            for key in ("numerator", "denominator"):
                if key not in spec:
                    checker.error(_join(fpath, key), "is required for a ratio")
                    ok = False
            numerator = checker.string(spec.get("numerator"), _join(fpath, "numerator")) if "numerator" in spec else None
            denominator = checker.string(spec.get("denominator"), _join(fpath, "denominator")) if "denominator" in spec else None
        elif function is not None:
            if "window" not in spec:
                checker.error(_join(fpath, "window"), f"is required for function {function!r} (the history it may look back over)")
                ok = False
            else:
                window_seconds = checker.duration(spec["window"], _join(fpath, "window"))
                window = str(spec["window"]).strip()
                ok = ok and window_seconds is not None
            if "offset" in spec:
                if function != "lag":
                    checker.error(_join(fpath, "offset"), "only lag takes an offset")
                    ok = False
                else:
                    offset = checker.integer(spec["offset"], _join(fpath, "offset"), minimum=1) or 1
            if "where" in spec:
                if function not in WINDOW_AGGREGATIONS:
                    checker.error(_join(fpath, "where"), "only window aggregations take a where filter")
                    ok = False
                w = checker.mapping(spec["where"], _join(fpath, "where"), required=("column", "equals"))
                if w is not None and "column" in w and "equals" in w:
                    wcol = checker.string(w["column"], _join(_join(fpath, "where"), "column"))
                    if wcol is not None and wcol not in columns:
                        checker.error(_join(_join(fpath, "where"), "column"), f"column {wcol!r} is not a column of the source or its event-level joins")
                        ok = False
                    elif isinstance(w["equals"], (dict, list)) or w["equals"] is None:
                        checker.error(_join(_join(fpath, "where"), "equals"), f"expected a scalar, got {_kind(w['equals'])}")
                        ok = False
                    elif wcol is not None:
                        where = WhereSpec(column=wcol, equals=w["equals"])
                else:
                    ok = False
        if function == "count":
            dtype = "bigint"
        elif function in ("min", "max", "lag") and column in columns:
            dtype = columns[column].type
        if not ok:
            continue
        feature = FeatureSpec(name=name, function=function, description=description, owner=f_owner,
                              version=f_version, column=column, window=window, window_seconds=window_seconds,
                              offset=offset, numerator=numerator, denominator=denominator, where=where, dtype=dtype)
        if function == "ratio":
            pending_ratios.append((i, feature))
        names_so_far[name] = feature
        out.append(feature)
    for i, feature in pending_ratios:
        for key in ("numerator", "denominator"):
            ref = getattr(feature, key)
            target = names_so_far.get(ref)
            if target is None and ref in declared:
                continue
            if target is None:
                checker.error(f"{path}[{i}].{key}", f"feature {ref!r} is not declared in this feature set")
            elif target.function == "ratio":
                checker.error(f"{path}[{i}].{key}", f"feature {ref!r} is itself a ratio; ratios take window features")
            elif target.dtype not in NUMERIC_TYPES and not target.dtype.startswith("decimal"):
                checker.error(f"{path}[{i}].{key}", f"feature {ref!r} is not numeric")
    return out


