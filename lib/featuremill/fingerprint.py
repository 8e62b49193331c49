"""Fingerprints of feature definitions: sha256 of their canonical JSON.

A fingerprint changes exactly when a definition that affects values changes (function, column,
window, filter, entity, joins, source, version), and not when a description or owner is
reworded, so catalogs, manifests and model links can tell "same feature" from "changed feature".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from featuremill.config import FeatureSetSpec, FeatureSpec

#: Fields that document a definition without changing its values.
_DOCUMENTATION_FIELDS = {"description", "owner", "update_frequency"}


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, dataclasses as dicts, tuples as lists."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), default=str)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name not in _DOCUMENTATION_FIELDS}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def feature_set_fingerprint(feature_set: FeatureSetSpec) -> str:
    """``sha256:<hex>`` of the feature set's value-affecting definition."""
    return "sha256:" + hashlib.sha256(canonical_json(feature_set).encode("utf-8")).hexdigest()


def feature_fingerprint(feature_set: FeatureSetSpec, feature: FeatureSpec) -> str:
    """``sha256:<hex>`` of one feature in its context (source, entity, joins of its set)."""
    inputs = [f for f in feature_set.features if f.name in (feature.numerator, feature.denominator)]
    # A ratio's values change when its numerator or denominator is redefined.
    context = {"source": feature_set.source, "entity": feature_set.entity, "joins": feature_set.joins,
               "feature": feature, "inputs": inputs}
    return "sha256:" + hashlib.sha256(canonical_json(context).encode("utf-8")).hexdigest()
