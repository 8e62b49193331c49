"""Pipeline configuration: YAML loaded once, checked, and turned into frozen dataclasses.

Config flows one way: CLI arguments -> :func:`load_pipeline` (reads the pipeline YAML and an
environment overlay) -> :class:`PipelineConfig` -> plain arguments to the library. Nothing below
this module reads files or environment variables.

Validation never starts Spark. Every problem found is collected and raised together as a
:class:`~featuremill.core.errors.ConfigError` whose lines name the file and the path inside it, e.g.
``conf/pipelines/demo.yaml: feature_sets[0].features[3].window: '7x' is not a duration (use 30m, 1h, 7d)``.
The format is documented in ``docs/pipeline-config.md``.
"""

from featuremill.config.checker import Checker, load_yaml_text
from featuremill.config.env import find_env_file, load_env
from featuremill.config.model import (
    COLUMN_TYPES,
    DURATION_UNITS,
    FEATURE_FUNCTIONS,
    NUMERIC_TYPES,
    SOURCE_FORMATS,
    SOURCE_KINDS,
    WINDOW_AGGREGATIONS,
    ColumnSpec,
    EnvSpec,
    FeatureSetSpec,
    FeatureSpec,
    JoinSpec,
    OnlineStoreSpec,
    PipelineConfig,
    SourceSpec,
    TablePaths,
    WhereSpec,
    format_duration,
    parse_duration,
    spark_type,
)
from featuremill.config.pipeline import SECTIONS, SectionContext, load_pipeline, parse_pipeline

__all__ = [
    "COLUMN_TYPES",
    "DURATION_UNITS",
    "FEATURE_FUNCTIONS",
    "NUMERIC_TYPES",
    "SECTIONS",
    "SOURCE_FORMATS",
    "SOURCE_KINDS",
    "WINDOW_AGGREGATIONS",
    "Checker",
    "ColumnSpec",
    "EnvSpec",
    "FeatureSetSpec",
    "FeatureSpec",
    "JoinSpec",
    "OnlineStoreSpec",
    "PipelineConfig",
    "SectionContext",
    "SourceSpec",
    "TablePaths",
    "WhereSpec",
    "find_env_file",
    "format_duration",
    "load_env",
    "load_pipeline",
    "load_yaml_text",
    "parse_duration",
    "parse_pipeline",
    "spark_type",
]
