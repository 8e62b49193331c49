"""Loading a pipeline file: the top level, and the optional sections parsed by their own modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featuremill.config.checker import Checker, read_yaml
from featuremill.config.env import builtin_local_env, find_env_file, load_env
from featuremill.config.feature_sets import parse_feature_sets
from featuremill.config.model import EnvSpec, FeatureSetSpec, PipelineConfig, SourceSpec
from featuremill.config.sources import parse_sources
from featuremill.config.streams import parse_streams


def load_pipeline(
    path: str | Path,
    *,
    env: str | Path = "local",
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Load and check a pipeline file against an environment overlay.

    ``env`` is a path to a YAML file or an environment name, found in the nearest ``conf/env/``
    above the pipeline file, then in the current directory's (see
    :func:`~featuremill.config.env.env_search_paths`); ``local`` falls back to a built-in default.
    Raises :class:`ConfigError` listing every problem.
    """
    env_file = find_env_file(path, str(env))
    if env_file is None:
        env_spec = builtin_local_env(overrides=overrides)
    else:
        env_spec = load_env(env_file, environ=environ, overrides=overrides)
    return parse_pipeline(read_yaml(Path(path)), file=str(path), env=env_spec)


#: Optional top-level sections, each parsed by its own module: key -> "module:function".
#: The function is called as ``fn(checker, value, path, context)`` where ``context`` is a
#: :class:`SectionContext`; it reports problems with ``checker.error(path, message)`` /
#: ``checker.warn(...)`` and returns the parsed (frozen) object, stored in
#: ``PipelineConfig.sections[key]``. Modules are imported only when their key is present.
SECTIONS: dict[str, str] = {
    "replay_window": "featuremill.storage.retention:parse_replay_window",
    "quality": "featuremill.quality.spec:parse_section",
    "dag": "featuremill.deploy.dag:parse_dag_section",
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
        doc if doc is not None else {},
        "",
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

    sources = parse_sources(checker, top.get("sources"), env) if "sources" in top else ()
    by_name = {s.name: s for s in sources}
    feature_sets = parse_feature_sets(checker, top.get("feature_sets"), by_name) if "feature_sets" in top else ()
    context = SectionContext(file=file, sources=tuple(sources), feature_sets=tuple(feature_sets), env=env, document=top)
    sections: dict[str, Any] = {}
    streams = parse_streams(checker, top.get("sources"), by_name) if "sources" in top else {}
    if streams:
        sections["streams"] = streams
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
