"""Statistical feature selection: scores from several methods, keep/drop decisions with reasons,
JSON + Delta + HTML outputs. See ``docs/preprocessing.md#feature-selection``."""

from featuremill.selection.select import SelectionResult, select_features
from featuremill.selection.spec import SelectionSpec, parse_selection_section

__all__ = ["SelectionResult", "SelectionSpec", "parse_selection_section", "select_features"]
