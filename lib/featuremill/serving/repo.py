"""A Feast feature repository generated from the pipeline file (``featuremill feast-repo``).

The pipeline YAML stays the one place where features are defined; the repository is derived:

* ``feature_store.yaml``: project = pipeline name, a file registry (``data/registry.db``), the
  ``spark`` offline store with Delta's jars, extension and catalog in its ``spark_conf``, and the
  environment's online store (``online_store:`` of ``conf/env/<env>.yaml``: SQLite by default,
  Redis by address);
* ``featuremill_features.py``: one ``Entity`` per key column (a multi-column key is a feature view
  over several entities, Feast's form of a composite key), and per feature set one
  ``FeatureView`` named like the set over a ``SparkSource`` that reads the set's Delta table
  (``query`` over ``delta.`PATH```, or over the table's name when the environment names
  tables: Feast refuses ``file_format="delta"``), plus, where the set has a preprocessed
  serving table, a view ``<set>_preprocessed`` over it. Each view carries the set's
  description, owner, TTL and tags ``featuremill.version`` / ``featuremill.definition_hash``
  (:func:`featuremill.storage.versions.feature_set_fingerprint`); value types come from the Delta
  schema (:func:`feast_type`).

Rendering is a pure function of the configuration and the table schemas: regenerating an
unchanged pipeline writes identical bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from featuremill.config import FeatureSetSpec, OnlineStoreSpec, PipelineConfig
from featuremill.core.errors import ServingError
from featuremill.storage import io
from featuremill.storage.versions import feature_set_fingerprint, sha256_fingerprint

log = logging.getLogger(__name__)

DEFINITIONS_FILE = "featuremill_features.py"
STORE_FILE = "feature_store.yaml"
REGISTRY_PATH = "data/registry.db"
PREPROCESSED_SUFFIX = "_preprocessed"

#: Tags every generated feature view carries.
TAG_PIPELINE = "featuremill.pipeline"
TAG_FEATURE_SET = "featuremill.feature_set"
TAG_VERSION = "featuremill.version"
TAG_HASH = "featuremill.definition_hash"
TAG_TABLE = "featuremill.table"
TAG_STATE = "featuremill.preprocessing_state"

#: Spark simple type name -> Feast type name (``feast.types``).
_SIMPLE_TYPES = {
    "bigint": "Int64",
    "int": "Int32",
    "smallint": "Int32",
    "tinyint": "Int32",
    "double": "Float64",
    "float": "Float32",
    "string": "String",
    "boolean": "Bool",
    "timestamp": "UnixTimestamp",
    "binary": "Bytes",
}


@dataclass(frozen=True)
class ViewSpec:
    """One Feast feature view over one Delta table (grain: one row per key and event time).

    ``keys``: (column, Feast type) of the entity key; ``features``: (column, Feast type,
    description) served; ``tags`` as written to the registry.
    """

    name: str
    table: str
    keys: tuple[tuple[str, str], ...]
    event_time: str
    features: tuple[tuple[str, str, str], ...]
    description: str
    owner: str
    tags: tuple[tuple[str, str], ...]
    feature_set: str

    @property
    def definition_hash(self) -> str:
        return dict(self.tags)[TAG_HASH]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f[0] for f in self.features)

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k[0] for k in self.keys)


def feast_type(data_type, *, column: str, table: str) -> str:
    """The Feast type (``feast.types`` name) that holds a Spark column type.

    Integers, floats, strings, booleans, timestamps, binaries and arrays of those map one to one;
    anything else (decimal, date, map, struct, nested arrays) raises :class:`ServingError`
    naming the column, the table and the fix.
    """
    from pyspark.sql.types import ArrayType

    if isinstance(data_type, ArrayType):
        inner = data_type.elementType.simpleString()
        if inner in _SIMPLE_TYPES and inner != "timestamp":
            return f"Array({_SIMPLE_TYPES[inner]})"
    else:
        name = data_type.simpleString()
        if name in _SIMPLE_TYPES:
            return _SIMPLE_TYPES[name]
    raise ServingError(
        f"column {column!r} of {table} has type {data_type.simpleString()}, which a Feast online store cannot "
        "hold (it holds integers, floats, strings, booleans, timestamps, bytes and arrays of them): cast it to "
        "double/string in the pipeline, or leave it out of the served features"
    )


def _schema(spark, table: str, what: str):
    if io.delta_version(spark, table) is None:
        raise ServingError(f"no Delta table for {what} at {table}; run `featuremill run PIPELINE --job features` first")
    return {f.name: f.dataType for f in io.read_delta(spark, table).schema.fields}


def _keys(config: PipelineConfig, fs: FeatureSetSpec, schema, table: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, feast_type(schema[k], column=k, table=table)) for k in fs.entity)


def feature_set_view(spark, config: PipelineConfig, fs: FeatureSetSpec) -> ViewSpec:
    """The feature view of one feature set: its declared features, typed from its Delta table."""
    table = config.tables.features(fs.name)
    schema = _schema(spark, table, f"feature set {fs.name!r}")
    missing = [f.name for f in fs.features if f.name not in schema]
    if missing:
        raise ServingError(
            f"feature table {table} has no column(s) {', '.join(missing)} declared by feature set {fs.name!r}; "
            "run `featuremill run PIPELINE --job features` for the new definition first"
        )
    features = tuple(
        (f.name, feast_type(schema[f.name], column=f.name, table=table), f.description) for f in fs.features
    )
    tags = {
        TAG_PIPELINE: config.name,
        TAG_FEATURE_SET: fs.name,
        TAG_VERSION: str(fs.version),
        TAG_HASH: feature_set_fingerprint(config, fs),
        TAG_TABLE: table,
    }
    return ViewSpec(
        name=fs.name,
        table=table,
        keys=_keys(config, fs, schema, table),
        event_time=config.source(fs.source).event_time or "",
        features=features,
        description=fs.description,
        owner=fs.owner,
        tags=tuple(sorted(tags.items())),
        feature_set=fs.name,
    )


def preprocessed_view(spark, config: PipelineConfig, fs: FeatureSetSpec) -> ViewSpec | None:
    """The view over ``preprocessed/<set>`` (the stored state applied by the feature job), or
    ``None`` when the set has no preprocessed serving table. Served columns: every column but the
    keys, the event time, ``event_date`` and featuremill's ``_``-prefixed bookkeeping columns."""
    from featuremill.pipelines.preprocess import preprocessed_path, serving_state

    table = preprocessed_path(config, fs.name)
    if io.delta_version(spark, table) is None:
        return None
    state = serving_state(spark, config, fs)
    if state is None:
        return None
    schema = _schema(spark, table, f"the preprocessed table of {fs.name!r}")
    event_time = config.source(fs.source).event_time or ""
    skip = set(fs.entity) | {event_time, "event_date"}
    features = tuple(
        (name, feast_type(dtype, column=name, table=table), f"{name} after preprocessing {state.name} v{state.version}")
        for name, dtype in schema.items()
        if name not in skip and not name.startswith("_")
    )
    definition = {"feature_set": feature_set_fingerprint(config, fs), "state": state.name, "version": state.version}
    tags = {
        TAG_PIPELINE: config.name,
        TAG_FEATURE_SET: fs.name,
        TAG_VERSION: str(fs.version),
        TAG_HASH: sha256_fingerprint(definition),
        TAG_TABLE: table,
        TAG_STATE: f"{state.name}@{state.version}",
    }
    return ViewSpec(
        name=fs.name + PREPROCESSED_SUFFIX,
        table=table,
        keys=_keys(config, fs, schema, table),
        event_time=event_time,
        features=features,
        description=f"{fs.description} Preprocessed with the stored state {state.name} v{state.version}.",
        owner=fs.owner,
        tags=tuple(sorted(tags.items())),
        feature_set=fs.name,
    )


def repository_views(spark, config: PipelineConfig, *, preprocessed: bool = True) -> list[ViewSpec]:
    """Every view the repository holds: per feature set its own, then its preprocessed one."""
    views = []
    for fs in config.feature_sets:
        views.append(feature_set_view(spark, config, fs))
        extra = preprocessed_view(spark, config, fs) if preprocessed else None
        if extra is not None:
            views.append(extra)
    return views


def _entities(views: Sequence[ViewSpec]) -> dict[str, str]:
    """Key column -> Feast type, refusing one key name with two types."""
    out: dict[str, str] = {}
    for view in views:
        for name, ftype in view.keys:
            if out.setdefault(name, ftype) != ftype:
                raise ServingError(
                    f"key column {name!r} is {out[name]} in one feature set and {ftype} in {view.name!r}; Feast "
                    "entities have one type: declare the same type for the key in every source"
                )
    return out


_VALUE_TYPES = {"Int64": "INT64", "Int32": "INT32", "String": "STRING", "Bytes": "BYTES", "Bool": "BOOL"}


def render_definitions(config: PipelineConfig, views: Sequence[ViewSpec], *, ttl_seconds: int = 0) -> str:
    """The Python definitions file (entities, sources, feature views). ``ttl_seconds`` 0: no expiry
    (featuremill's training sets use no TTL by default; see docs/serving.md)."""
    entities = _entities(views)
    for name, ftype in entities.items():
        if ftype not in _VALUE_TYPES:
            raise ServingError(f"key column {name!r} is {ftype}; Feast entity keys must be integers, strings or bytes")
    feature_types = {t for v in views for _, t, _ in v.features}
    types = sorted({t.replace("Array(", "").rstrip(")") for t in feature_types} | set(entities.values()))
    if any(t.startswith("Array(") for t in feature_types):
        types = ["Array", *types]
    lines = [
        f"# Generated by `featuremill feast-repo` from {Path(config.file).name} (pipeline {config.name}).",
        "# Do not edit: change the pipeline file and regenerate, then `feast apply`.",
        "from datetime import timedelta",
        "",
        "from feast import Entity, FeatureView, Field, ValueType",
        "from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource",
        f"from feast.types import {', '.join(types)}",
        "",
    ]
    for name, ftype in sorted(entities.items()):
        lines += [
            f"{name} = Entity(",
            f"    name={name!r},",
            f"    join_keys=[{name!r}],",
            f"    value_type=ValueType.{_VALUE_TYPES[ftype]},",
            f"    description={('key column ' + name + ' of pipeline ' + config.name)!r},",
            ")",
            "",
        ]
    for view in views:
        columns = [*view.key_names, view.event_time, *view.feature_names]
        # delta.`PATH` for a table by path, `schema`.`table` for a metastore name (the offline
        # store's session gets the environment's spark conf, so it sees the same metastore)
        query = f"SELECT {', '.join('`' + c + '`' for c in columns)} FROM {io.table_identifier(view.table)}"
        tags = dict(view.tags)
        lines += [
            f"{view.name}_source = SparkSource(",
            f"    name={(view.name + '_source')!r},",
            f"    query={query!r},",
            f"    timestamp_field={view.event_time!r},",
            f"    description={('Delta table ' + view.table)!r},",
            ")",
            "",
            f"{view.name} = FeatureView(",
            f"    name={view.name!r},",
            f"    entities=[{', '.join(view.key_names)}],",
            f"    ttl=timedelta(seconds={int(ttl_seconds)}),",
            "    schema=[",
        ]
        for name, ftype in view.keys:
            lines.append(f"        Field(name={name!r}, dtype={ftype}),")
        for name, ftype, description in view.features:
            lines.append(f"        Field(name={name!r}, dtype={ftype}, description={description!r}),")
        lines += [
            "    ],",
            "    online=True,",
            f"    source={view.name}_source,",
            f"    description={view.description!r},",
            f"    owner={view.owner!r},",
            "    tags={",
            *[f"        {k!r}: {v!r}," for k, v in sorted(tags.items())],
            "    },",
            ")",
            "",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def offline_spark_conf(config: PipelineConfig) -> dict[str, str]:
    """The Spark settings Feast's offline store needs to read Delta (jars, extension, catalog)."""
    from featuremill.core.session import DELTA_CATALOG, DELTA_EXTENSION, local_delta_package

    conf = {
        "spark.master": config.env.master or "local[*]",
        "spark.jars.packages": local_delta_package(),
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
    }
    for key, value in config.env.spark_conf:
        if key.startswith("spark.") and key not in conf:
            conf[key] = value
    return conf


def online_store_yaml(store: OnlineStoreSpec) -> dict[str, str]:
    """The ``online_store:`` block of ``feature_store.yaml``."""
    if store.type == "redis":
        return {"type": "redis", "connection_string": store.address}
    return {"type": "sqlite", "path": store.path}


def render_store_yaml(config: PipelineConfig, spark_conf: Mapping[str, str]) -> str:
    """``feature_store.yaml``: project, registry, offline store (Spark + Delta), online store."""
    import yaml

    doc = {
        "project": config.name,
        "provider": "local",
        "registry": REGISTRY_PATH,
        "offline_store": {"type": "spark", "spark_conf": dict(sorted(spark_conf.items()))},
        "online_store": online_store_yaml(config.env.online_store),
        "entity_key_serialization_version": 3,
    }
    header = f"# Generated by `featuremill feast-repo` from {Path(config.file).name} (environment {config.env.name}).\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def render_repository(config: PipelineConfig, views: Sequence[ViewSpec], *, ttl_seconds: int = 0) -> dict[str, str]:
    """File name -> text of the whole repository."""
    return {
        STORE_FILE: render_store_yaml(config, offline_spark_conf(config)),
        DEFINITIONS_FILE: render_definitions(config, views, ttl_seconds=ttl_seconds),
        ".feastignore": "data/\n",
    }


def write_repository(files: Mapping[str, str], out: str | Path) -> list[str]:
    """Write the files under ``out`` (created); return the names whose content changed."""
    root = Path(out)
    (root / "data").mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in sorted(files.items()):
        path = root / name
        if path.is_file() and path.read_text() == text:
            continue
        path.write_text(text)
        changed.append(name)
    return changed
