"""Feature-set versions: definition fingerprints, the committed lock file, model links.

A feature set's **fingerprint** is ``sha256:`` + the SHA-256 of the canonical JSON of everything
that decides its values: the source, event-time, order-key and entity columns with their types,
the joins, the pipeline time zone, and each feature's function, column, window, offset, filter,
ratio operands and type. Descriptions, owners, update frequency and the declaration order of
features or joins do not count (they change no value).

The **lock file** sits beside the pipeline (``conf/pipelines/demo.yaml`` ->
``conf/pipelines/demo.lock.json``) and is committed with it. It records, per feature set, the
fingerprint and canonical definition of every version ever locked, and, per registered model,
the feature-set versions it was trained on. ``featuremill validate`` compares the pipeline with
it without starting Spark:

* a definition that differs from the locked fingerprint of the same version is an **error**
  (bump ``version``), as is a version lower than one already locked but never recorded;
* a new version, a new feature set, or a missing lock file is a **warning** until
  ``featuremill validate PIPELINE --update-lock`` records it;
* a registered model whose feature-set versions the pipeline no longer declares is a **warning**
  (its features would change under it).

``--update-lock`` refuses to overwrite a locked version's fingerprint: the only way to change a
definition is a new version. The feature job and the training-set job refuse to run on a
pipeline that fails these checks when a lock file exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featuremill.config import FeatureSetSpec, PipelineConfig
from featuremill.core.errors import ConfigError, ConfigIssue

LOCK_FORMAT = 1


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same document always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def sha256_fingerprint(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def feature_set_definition(config: PipelineConfig, feature_set: FeatureSetSpec) -> dict[str, Any]:
    """The canonical, value-deciding definition of a feature set (see the module docstring)."""
    source = config.source(feature_set.source)
    used = set(feature_set.entity) | set(source.key) | {source.event_time}
    features = []
    for f in sorted(feature_set.features, key=lambda f: f.name):
        entry: dict[str, Any] = {"name": f.name, "function": f.function, "dtype": f.dtype}
        if f.column is not None:
            entry["column"] = f.column
            used.add(f.column)
        if f.window_seconds is not None:
            entry["window_seconds"] = f.window_seconds
        if f.percentile is not None:
            entry["percentile"] = f.percentile
        if f.function == "lag":
            entry["offset"] = f.offset
        if f.where is not None:
            entry["where"] = {"column": f.where.column, "equals": f.where.equals}
            used.add(f.where.column)
        if f.function == "ratio":
            entry["numerator"], entry["denominator"] = f.numerator, f.denominator
        features.append(entry)
    joins = []
    for j in sorted(feature_set.joins, key=lambda j: (j.level, j.dimension)):
        dim = config.source(j.dimension)
        entry = {
            "dimension": j.dimension,
            "level": j.level,
            "on": list(j.on),
            "columns": list(j.columns),
            "types": {c: dim.column(c).type for c in sorted(set(j.on) | set(j.columns))},
        }
        if j.as_of != "event_time":  # only when not the default, so locked fingerprints stay valid
            entry["as_of"] = j.as_of
        if j.renames:  # likewise only when a column is renamed (its name in the feature frame)
            entry["renames"] = dict(j.renames)
        joins.append(entry)
        if j.level == "event":
            used |= set(j.on)
    source_columns = {c: source.column(c).type for c in sorted(used) if c in source.column_names}
    return {
        "name": feature_set.name,
        "source": {
            "name": source.name,
            "event_time": source.event_time,
            "order_key": list(source.key),
            "columns": source_columns,
        },
        "entity": list(feature_set.entity),
        "timezone": config.timezone,
        "joins": joins,
        "features": features,
    }


def feature_set_fingerprint(config: PipelineConfig, feature_set: FeatureSetSpec) -> str:
    return sha256_fingerprint(feature_set_definition(config, feature_set))


def feature_fingerprint(config: PipelineConfig, feature_set: FeatureSetSpec, feature_name: str) -> str:
    """One feature's fingerprint: its own definition in the context of its set.

    The context is what decides every feature's values (source, entity, time zone, joins) plus,
    for a ratio, the definitions of its numerator and denominator; a sibling feature's change
    leaves it alone, a reworded description or owner never counts.
    """
    definition = feature_set_definition(config, feature_set)
    by_name = {f["name"]: f for f in definition["features"]}
    own = by_name[feature_name]
    inputs = [by_name[n] for n in (own.get("numerator"), own.get("denominator")) if n in by_name]
    return sha256_fingerprint(
        {
            "source": definition["source"],
            "entity": definition["entity"],
            "timezone": definition["timezone"],
            "joins": definition["joins"],
            "feature": own,
            "inputs": inputs,
        }
    )


def lock_path(pipeline_file: str | Path) -> Path:
    """``conf/pipelines/demo.yaml`` -> ``conf/pipelines/demo.lock.json``."""
    path = Path(pipeline_file)
    return path.with_name(path.stem + ".lock.json")


@dataclass(frozen=True)
class Lock:
    """A parsed lock file (plain dicts inside, as written)."""

    file: str
    pipeline: str
    feature_sets: Mapping[str, Any]
    models: Mapping[str, Any]

    def versions(self, feature_set: str) -> dict[int, dict]:
        entry = self.feature_sets.get(feature_set) or {}
        return {int(v): body for v, body in (entry.get("versions") or {}).items()}

    def as_document(self) -> dict[str, Any]:
        return {
            "lock_format": LOCK_FORMAT,
            "pipeline": self.pipeline,
            "feature_sets": dict(self.feature_sets),
            "models": dict(self.models),
        }


def read_lock(path: str | Path) -> Lock | None:
    """The lock file at ``path``, or ``None`` if there is none. Raises ConfigError if unreadable."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError([ConfigIssue(str(path), "", f"not a readable lock file: {exc}")]) from None
    if not isinstance(doc, dict) or doc.get("lock_format") != LOCK_FORMAT:
        raise ConfigError(
            [
                ConfigIssue(
                    str(path), "lock_format", f"expected lock_format {LOCK_FORMAT}; regenerate with --update-lock"
                )
            ]
        )
    return Lock(
        file=str(path),
        pipeline=str(doc.get("pipeline") or ""),
        feature_sets=doc.get("feature_sets") or {},
        models=doc.get("models") or {},
    )


def write_lock(lock: Lock) -> None:
    """Write ``lock`` as indented, key-sorted JSON (stable diffs), atomically."""
    path = Path(lock.file)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(lock.as_document(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """A short human summary of what differs between two canonical definitions."""
    changes = []
    for key in ("source", "entity", "timezone", "joins"):
        if old.get(key) != new.get(key):
            changes.append(f"{key} changed")
    old_f = {f["name"]: f for f in old.get("features", [])}
    new_f = {f["name"]: f for f in new.get("features", [])}
    for name in sorted(set(old_f) - set(new_f)):
        changes.append(f"feature {name} removed")
    for name in sorted(set(new_f) - set(old_f)):
        changes.append(f"feature {name} added")
    for name in sorted(set(old_f) & set(new_f)):
        if old_f[name] != new_f[name]:
            fields = sorted(k for k in set(old_f[name]) | set(new_f[name]) if old_f[name].get(k) != new_f[name].get(k))
            detail = ", ".join(f"{k} {old_f[name].get(k)!r} -> {new_f[name].get(k)!r}" for k in fields)
            changes.append(f"feature {name}: {detail}")
    return "; ".join(changes) or "definition changed"


def _feature_set_path(config: PipelineConfig, name: str) -> str:
    for i, fs in enumerate(config.feature_sets):
        if fs.name == name:
            return f"feature_sets[{i}].version"
    return "feature_sets"


def check_lock(config: PipelineConfig, lock: Lock | None, *, lock_file: str | Path) -> list[ConfigIssue]:
    """Compare the pipeline with its lock file: definition changes without a version bump
    (errors), unrecorded versions (warnings) and registered models it would break (warnings)."""
    issues: list[ConfigIssue] = []
    hint = f"featuremill validate {config.file} --update-lock"
    if lock is None:
        issues.append(
            ConfigIssue(
                str(lock_file),
                "",
                f"no lock file: feature-set definitions are not pinned to their versions; run `{hint}` and commit it",
                severity="warning",
            )
        )
        return issues
    if lock.pipeline and lock.pipeline != config.name:
        issues.append(
            ConfigIssue(lock.file, "pipeline", f"lock file is for pipeline {lock.pipeline!r}, not {config.name!r}")
        )
    for fs in config.feature_sets:
        path = _feature_set_path(config, fs.name)
        locked = lock.versions(fs.name)
        definition = feature_set_definition(config, fs)
        fingerprint = sha256_fingerprint(definition)
        if not locked:
            issues.append(
                ConfigIssue(
                    config.file,
                    path,
                    f"feature set {fs.name!r} version {fs.version} is not in the lock file yet; run `{hint}`",
                    severity="warning",
                )
            )
        elif fs.version in locked:
            if locked[fs.version].get("fingerprint") != fingerprint:
                changes = describe_changes(locked[fs.version].get("definition") or {}, definition)
                issues.append(
                    ConfigIssue(
                        config.file,
                        path,
                        f"feature set {fs.name!r} changed without a version bump ({changes}); version {fs.version} is "
                        f"locked as {locked[fs.version].get('fingerprint')}. "
                        f"Set version: {max(locked) + 1} and run `{hint}`",
                    )
                )
        elif fs.version < max(locked):
            issues.append(
                ConfigIssue(
                    config.file,
                    path,
                    f"feature set {fs.name!r}: version {fs.version} was never "
                    f"locked and is below the locked version {max(locked)}; versions only go up "
                    f"(use {max(locked) + 1})",
                )
            )
        else:
            issues.append(
                ConfigIssue(
                    config.file,
                    path,
                    f"feature set {fs.name!r}: version {fs.version} is new "
                    f"(locked: {', '.join(map(str, sorted(locked)))}); run `{hint}`",
                    severity="warning",
                )
            )
    declared = {fs.name: fs for fs in config.feature_sets}
    for model, by_version in sorted(lock.models.items()):
        for model_version, entry in sorted(by_version.items()):
            for fs_name, used in sorted((entry.get("feature_sets") or {}).items()):
                fs = declared.get(fs_name)
                what = f"model {model!r} version {model_version} was trained on {fs_name}@{used.get('version')}"
                if fs is None:
                    issues.append(
                        ConfigIssue(
                            config.file,
                            "feature_sets",
                            f"{what}, which the pipeline no longer "
                            "declares; the model cannot be served from this pipeline",
                            severity="warning",
                        )
                    )
                elif fs.version != used.get("version"):
                    issues.append(
                        ConfigIssue(
                            config.file,
                            _feature_set_path(config, fs_name),
                            f"{what}; the pipeline now declares version {fs.version}, so the feature job writes values "
                            "this model was not trained on: retrain and register it, or keep the old definition as its "
                            "own feature set",
                            severity="warning",
                        )
                    )
    return issues


def updated_lock(config: PipelineConfig, lock: Lock | None, *, lock_file: str | Path) -> Lock:
    """The lock with the pipeline's current versions recorded.

    Raises :class:`ConfigError` with the offending issues when a locked version's definition
    changed (or a version went down): those need a version bump, not a new lock.
    """
    errors = [i for i in check_lock(config, lock, lock_file=lock_file) if i.severity == "error"]
    if errors:
        raise ConfigError(errors)
    feature_sets = {k: dict(v) for k, v in (lock.feature_sets if lock else {}).items()}
    for fs in config.feature_sets:
        definition = feature_set_definition(config, fs)
        entry = feature_sets.setdefault(fs.name, {})
        versions = dict(entry.get("versions") or {})
        versions[str(fs.version)] = {"fingerprint": sha256_fingerprint(definition), "definition": definition}
        entry["versions"] = dict(sorted(versions.items(), key=lambda kv: int(kv[0])))
    return Lock(
        file=str(lock_file), pipeline=config.name, feature_sets=feature_sets, models=dict(lock.models) if lock else {}
    )


def require_consistent(config: PipelineConfig, lock: Lock | None, *, lock_file: str | Path) -> None:
    """For jobs: raise :class:`ConfigError` when the pipeline fails its lock file's checks.

    Without a lock file there is nothing to compare with and the job runs (``validate`` warns).
    """
    if lock is None:
        return
    errors = [i for i in check_lock(config, lock, lock_file=lock_file) if i.severity == "error"]
    if errors:
        raise ConfigError(errors)


def with_model(
    lock: Lock, *, model: str, version: str, feature_sets: Mapping[str, Mapping[str, Any]], training_set: str
) -> Lock:
    """The lock with a model's feature-set versions recorded (as ``register-model`` does)."""
    models = {k: dict(v) for k, v in lock.models.items()}
    models.setdefault(model, {})[str(version)] = {
        "feature_sets": {
            name: {"version": int(v["version"]), "fingerprint": v.get("fingerprint")}
            for name, v in sorted(feature_sets.items())
        },
        "training_set": training_set,
    }
    return Lock(file=lock.file, pipeline=lock.pipeline, feature_sets=lock.feature_sets, models=models)


def with_models(lock: Lock, models: Mapping[str, Mapping[str, Any]]) -> Lock:
    """The lock with its ``models`` section replaced (``featuremill models --sync-lock``)."""
    return Lock(file=lock.file, pipeline=lock.pipeline, feature_sets=lock.feature_sets, models=dict(models))
