"""Environment overlays (``conf/env/<name>.yaml``): where the warehouse and the data live."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from featuremill.config.checker import Checker, join_path, kind_of, read_yaml
from featuremill.config.model import DEFAULT_MAX_BROADCAST_BYTES, ONLINE_STORE_TYPES, EnvSpec, OnlineStoreSpec
from featuremill.core.errors import ConfigError, ConfigIssue

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


def resolve_path(text: str, base: str | Path) -> str:
    """Absolute local path, or an URI (s3://, abfss://, dbfs:/ ...) unchanged; relative to ``base``."""
    if _is_uri(text):
        return text
    if os.path.isabs(text):
        return str(Path(text).resolve())
    if _is_uri(str(base)):
        return str(base).rstrip("/") + "/" + text
    return str((Path(base) / text).resolve())


def load_env(
    path: str | Path, *, environ: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
) -> EnvSpec:
    """Read an environment overlay (``conf/env/<name>.yaml``).

    Relative paths in it are relative to the project root, the folder that holds ``conf/``.
    ``${VAR}`` references are expanded from ``environ`` (the process environment by default);
    ``overrides`` (``warehouse``, ``data_root``, ``master``) come from command-line flags and
    are relative to the current directory.
    """
    env_path = Path(path)
    checker = Checker(str(env_path))
    doc = read_yaml(env_path)
    doc = {} if doc is None else doc
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    data = checker.mapping(
        doc,
        "",
        required=("warehouse", "data_root"),
        optional=("name", "description", "master", "spark", "max_broadcast_mb", "online_store", "tables"),
    )
    checker.raise_if_errors()
    assert data is not None
    project_root = env_path.resolve().parent.parent.parent
    values: dict[str, str] = {}
    for key in ("warehouse", "data_root", "master"):
        if overrides.get(key):
            values[key] = overrides[key]
            continue
        if key in data and data[key] is not None:
            text = checker.string(data[key], key)
            if text is not None:
                values[key] = _expand_env_vars(text, key, checker, environ)
    spark_conf: list[tuple[str, str]] = []
    if "spark" in data:
        conf = checker.mapping(
            data["spark"], "spark", optional=tuple(data["spark"] or {}) if isinstance(data["spark"], dict) else ()
        )
        for key, value in (conf or {}).items():
            if isinstance(value, (dict, list)) or value is None:
                checker.error(join_path("spark", str(key)), f"expected a scalar value, got {kind_of(value)}")
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            spark_conf.append((str(key), _expand_env_vars(text, join_path("spark", str(key)), checker, environ)))
    max_mb: float = DEFAULT_MAX_BROADCAST_BYTES / (1024 * 1024)
    if "max_broadcast_mb" in data:
        max_mb = checker.positive_number(data["max_broadcast_mb"], "max_broadcast_mb") or max_mb
    online_store = _online_store(checker, data.get("online_store"), environ) if "online_store" in data else None
    namespace = _tables_namespace(checker, data.get("tables"), environ) if "tables" in data else None
    checker.raise_if_errors()
    cwd = Path.cwd()
    return EnvSpec(
        name=str(data.get("name") or env_path.stem),
        file=str(env_path),
        warehouse=resolve_path(values["warehouse"], cwd if overrides.get("warehouse") else project_root),
        data_root=resolve_path(values["data_root"], cwd if overrides.get("data_root") else project_root),
        master=values.get("master"),
        spark_conf=tuple(spark_conf),
        max_broadcast_bytes=int(max_mb * 1024 * 1024),
        online_store=online_store or OnlineStoreSpec(),
        tables_namespace=namespace,
    )


#: One part of a metastore name in ``tables:`` (a Hive/Glue database, a Unity Catalog catalog or schema).
_NAMESPACE_PART_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _tables_namespace(checker: Checker, value, environ: Mapping[str, str]) -> str | None:
    """``tables: {schema: S}`` (Hive, Glue) or ``{catalog: C, schema: S}`` (Unity Catalog): the
    namespace ``[C.]S`` the pipeline's tables are named in, instead of paths under the warehouse."""
    spec = checker.mapping(value, "tables", required=("schema",), optional=("catalog",))
    if spec is None:
        return None
    parts = []
    for key in ("catalog", "schema"):
        if key not in spec:
            continue
        text = checker.string(spec[key], f"tables.{key}")
        if text is None:
            return None
        text = _expand_env_vars(text, f"tables.{key}", checker, environ)
        if not _NAMESPACE_PART_RE.match(text):
            checker.error(
                f"tables.{key}",
                f"{text!r} is not a plain {key} name: use letters, digits and _ (not starting with a digit), "
                f"without dots or quotes (write the catalog and the schema as separate keys)",
            )
            return None
        parts.append(text.lower())
    return ".".join(parts)


def _online_store(checker: Checker, value, environ: Mapping[str, str]) -> OnlineStoreSpec | None:
    """``online_store: {type: sqlite, path: data/online_store.db}`` or ``{type: redis, address: HOST:PORT}``."""
    spec = checker.mapping(value, "online_store", required=("type",), optional=("path", "address"))
    if spec is None:
        return None
    kind = checker.string(spec.get("type"), "online_store.type", choices=ONLINE_STORE_TYPES)
    values = {}
    for key in ("path", "address"):
        if key in spec:
            text = checker.string(spec[key], f"online_store.{key}")
            if text is not None:
                values[key] = _expand_env_vars(text, f"online_store.{key}", checker, environ)
    address = values.get("address")
    if address is not None and not re.match(r"^[^:\s]+:\d{1,5}$", address):
        checker.error("online_store.address", f"expected HOST:PORT (e.g. 127.0.0.1:6379), got {address!r}")
    if kind == "sqlite" and "address" in values:
        checker.error("online_store.address", "a sqlite online store has a path, not an address")
    if kind == "redis" and "path" in values:
        checker.error("online_store.path", "a redis online store has an address (HOST:PORT), not a path")
    if kind is None:
        return None
    return OnlineStoreSpec(type=kind, **values)


#: The environment every pipeline can run in without an environment file: local mode, tables
#: under ``./warehouse`` and raw data under ``./data``, relative to the current directory.
BUILTIN_LOCAL_ENV = "local"


def env_search_paths(pipeline_file: str | Path, env: str, *, cwd: str | Path | None = None) -> list[Path]:
    """Where an environment named ``env`` is looked for, in order: ``conf/env/<env>.yaml`` in the
    pipeline file's folder and each folder above it (the nearest wins), then in the current directory."""
    pipeline_dir = Path(pipeline_file).resolve().parent
    candidates = [folder / "conf" / "env" / f"{env}.yaml" for folder in (pipeline_dir, *pipeline_dir.parents)]
    here = Path(cwd or Path.cwd()).resolve() / "conf" / "env" / f"{env}.yaml"
    if here not in candidates:
        candidates.append(here)
    return candidates


def find_env_file(pipeline_file: str | Path, env: str) -> Path | None:
    """The environment file for ``env``: a path to a YAML file, or a name looked up by
    :func:`env_search_paths`. ``None`` for ``local`` when no file is found: the built-in default.

    Raises :class:`ConfigError` naming the places searched when a named environment is not found.
    """
    candidate = Path(env)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        return candidate
    searched = env_search_paths(pipeline_file, env)
    found = next((path for path in searched if path.is_file()), None)
    if found is not None or env == BUILTIN_LOCAL_ENV:
        return found
    nearest = searched[0].parent
    raise ConfigError(
        [
            ConfigIssue(
                str(pipeline_file),
                "",
                f"environment {env!r} not found (looked for {', '.join(str(s) for s in searched)}); "
                f"write {nearest / (env + '.yaml')} (keys: warehouse, data_root), pass --env PATH.yaml, "
                f"or use --env {BUILTIN_LOCAL_ENV}",
            )
        ]
    )


def builtin_local_env(*, overrides: Mapping[str, str] | None = None) -> EnvSpec:
    """The ``local`` environment when no ``conf/env/local.yaml`` exists: tables under
    ``./warehouse``, raw data under ``./data`` (the current directory), Spark in local mode."""
    overrides = dict(overrides or {})
    cwd = Path.cwd()
    return EnvSpec(
        name=BUILTIN_LOCAL_ENV,
        file="(built-in local environment)",
        warehouse=resolve_path(overrides.get("warehouse") or "warehouse", cwd),
        data_root=resolve_path(overrides.get("data_root") or "data", cwd),
        master=overrides.get("master") or "local[*]",
    )
