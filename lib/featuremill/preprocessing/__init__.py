"""Preprocessing with stored fitted state: fit once on a training table, store it versioned,
apply the same numbers everywhere (training sets, the feature job, serving).

Public API:

* :func:`fit_preprocessing` (``DataFrame`` + :class:`PreprocessingSpec` -> :class:`FittedState`);
* :func:`apply_preprocessing` (``DataFrame`` + state -> ``DataFrame``, plain Spark expressions);
* :func:`store_fitted_state` / :func:`load_fitted_state` (Delta table, versioned by name);
* :func:`~featuremill.preprocessing.state.FittedState.to_json` for serving outside Spark.

See ``docs/preprocessing.md``.
"""

from featuremill.preprocessing.apply import apply_preprocessing, fold_expression
from featuremill.preprocessing.fit import fit_preprocessing
from featuremill.preprocessing.spec import PreprocessingSpec, parse_preprocessing_section
from featuremill.preprocessing.state import FittedState
from featuremill.preprocessing.store import load_fitted_state, read_state_json, store_fitted_state, write_state_json

__all__ = [
    "FittedState",
    "PreprocessingSpec",
    "apply_preprocessing",
    "fit_preprocessing",
    "fold_expression",
    "load_fitted_state",
    "parse_preprocessing_section",
    "read_state_json",
    "store_fitted_state",
    "write_state_json",
]
