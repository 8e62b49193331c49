"""The model registry: which feature-set versions (and which training set) each model version used.

A Delta table at ``<warehouse>/<pipeline>/model_registry``, one row per (model, model version),
columns :data:`REGISTRY_SCHEMA`. A model version is immutable: registering the same manifest
again is a no-op, registering a different one under the same version is refused. The feature-set
versions per model are also written to the pipeline's lock file when it is at hand, so
``featuremill validate`` (which starts no Spark) can warn before a change breaks a model;
``featuremill models PIPELINE --sync-lock`` copies them from this table into the lock file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

from featuremill.config import PipelineConfig
from featuremill.core.errors import TrainingSetError
from featuremill.core.local_rows import local_dataframe
from featuremill.storage import io
from featuremill.storage.versions import sha256_fingerprint

log = logging.getLogger(__name__)

REGISTRY_SCHEMA = (
    "model string, model_version string, pipeline string, registered_at timestamp, "
    "training_set string, training_set_version bigint, training_set_fingerprint string, manifest_path string, "
    "manifest_id string, feature_sets map<string,int>, feature_fingerprints map<string,string>, "
    "feature_table_versions map<string,bigint>, spine_fingerprint string, code_version string, manifest string"
)


def registry_path(tables_root: str) -> str:
    return f"{tables_root.rstrip('/')}/model_registry"


def manifest_id(manifest: Mapping[str, Any]) -> str:
    """What identifies a training set: the output it describes and every input version."""
    return sha256_fingerprint(
        {
            "output": {k: manifest["output"].get(k) for k in ("path", "delta_version", "fingerprint")},
            "spine": manifest["spine"].get("fingerprint"),
            "feature_sets": [(e["name"], e["version"], e["delta_version"]) for e in manifest["feature_sets"]],
        }
    )


def register_model(
    spark, path: str, *, root: str, model: str, version: str, manifest: Mapping[str, Any], manifest_path: str
) -> str:
    """Record a model version; returns ``"registered"`` or ``"unchanged"`` (same manifest again).

    ``root`` is the warehouse root ``path`` must lie under."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import _parse_datatype_string

    if not model.strip() or not str(version).strip():
        raise TrainingSetError("register-model: NAME and VERSION must not be empty")
    ident = manifest_id(manifest)
    if io.is_delta_table(spark, path):
        existing = (
            io.read_delta(spark, path)
            .where((F.col("model") == model) & (F.col("model_version") == str(version)))
            .select("manifest_id", "manifest_path")
            .collect()
        )  # at most one row
        if existing:
            if existing[0]["manifest_id"] == ident:
                return "unchanged"
            raise TrainingSetError(
                f"model {model!r} version {version} is already registered with another training set "
                f"({existing[0]['manifest_path']}); model versions are immutable: register a new version"
            )
    code = manifest.get("code") or {}
    row = {
        "model": model,
        "model_version": str(version),
        "pipeline": manifest["pipeline"]["name"],
        "registered_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
        "training_set": manifest["output"]["path"],
        "training_set_version": manifest["output"]["delta_version"],
        "training_set_fingerprint": manifest["output"]["fingerprint"],
        "manifest_path": manifest_path,
        "manifest_id": ident,
        "feature_sets": {e["name"]: int(e["version"]) for e in manifest["feature_sets"]},
        "feature_fingerprints": {e["name"]: e.get("fingerprint") for e in manifest["feature_sets"]},
        "feature_table_versions": {e["name"]: int(e["delta_version"]) for e in manifest["feature_sets"]},
        "spine_fingerprint": manifest["spine"]["fingerprint"],
        "code_version": " ".join(f"{k}={v}" for k, v in sorted(code.items()) if v),
        "manifest": json.dumps(manifest, sort_keys=True, default=str),
    }
    schema = _parse_datatype_string(REGISTRY_SCHEMA)
    df = local_dataframe(spark, [tuple(row[f.name] for f in schema.fields)], schema)
    if not io.is_delta_table(spark, path):
        io.create_if_absent(df, path, root=root, what="model registry")
    else:
        # Insert-if-absent: two concurrent registrations of one version cannot both land.
        io.merge_insert_new(
            df, path, "t.model = s.model AND t.model_version = s.model_version", root=root, what="model registry"
        )
    log.info("registered model %s version %s (%s)", model, version, manifest_path)
    return "registered"


def read_models(spark, path: str) -> list[dict[str, Any]]:
    """Every registered model version (a small table) by model and registration time; [] when none."""
    if not io.is_delta_table(spark, path):
        return []
    rows = io.read_delta(spark, path).drop("manifest").orderBy("model", "registered_at").collect()
    return [r.asDict() for r in rows]


def compatibility(config: PipelineConfig, feature_sets: Mapping[str, int]) -> list[str]:
    """Why a model trained on ``feature_sets`` (name -> version) no longer matches the pipeline."""
    declared = {fs.name: fs.version for fs in config.feature_sets}
    problems = []
    for name, version in sorted(feature_sets.items()):
        if name not in declared:
            problems.append(f"{name}@{version}: feature set no longer declared")
        elif declared[name] != version:
            problems.append(f"{name}@{version}: pipeline now declares version {declared[name]}")
    return problems


def lock_models(models: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The lock file's ``models`` section from registry rows."""
    out: dict[str, dict[str, Any]] = {}
    for m in models:
        out.setdefault(m["model"], {})[m["model_version"]] = {
            "feature_sets": {
                name: {"version": int(v), "fingerprint": (m.get("feature_fingerprints") or {}).get(name)}
                for name, v in sorted((m.get("feature_sets") or {}).items())
            },
            "training_set": m["training_set"],
        }
    return out
