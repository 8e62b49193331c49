"""Training-set manifests: what a training set was built from, precisely enough to rebuild it.

A manifest is a JSON document written beside the training set (``<out>.manifest.json`` by
default). Keys (``MANIFEST_FORMAT`` 1):

* ``kind`` (``featuremill.training_set``), ``manifest_format``, ``created_at`` (UTC ISO time);
* ``code``: ``featuremill`` version, ``git_commit`` (when known), Spark and Python versions;
* ``pipeline``: ``name``, ``file``, ``env``, ``timezone``, ``tables_root``;
* ``spine``: ``path``, ``format``, ``delta_version`` (Delta spines), ``time_column``, ``rows``,
  ``fingerprint`` (:func:`featuremill.core.fingerprint.frame_fingerprint`);
* ``options``: ``strict``, ``ttl_seconds``, ``known_at``, ``strategy`` (the one used),
  ``keep_internal_columns`` (absent in manifests written before it existed, whose outputs carried
  the ``_<set>_event_time`` / ``_<set>_known_at`` columns: a rebuild keeps them);
* ``feature_sets``: one entry per requested set: ``name``, ``version``, ``fingerprint`` (of the
  definition, :mod:`featuremill.storage.versions`), ``table``, ``delta_version``, ``entity``,
  ``event_time``, ``features``, ``rows``;
* ``output``: ``path``, ``format`` (``delta``), ``delta_version``, ``rows``, ``fingerprint``,
  ``columns``;
* ``preprocessing``: ``null`` here; the preprocessing step stores its fitted state's reference
  (artifact path and version) under this key so a rebuild can apply the same fit;
* ``rebuilt_from`` (rebuilds only): the source manifest's path and whether the output matched.

Rebuilding reads every Delta input at its recorded version (time travel) and refuses a
non-Delta spine whose fingerprint changed.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from collections.abc import Mapping
from typing import Any

from featuremill.core.errors import TrainingSetError

# The one content fingerprint (transforms.fingerprint), re-exported where manifests use it.
from featuremill.core.fingerprint import frame_fingerprint, frame_fingerprints  # noqa: F401

MANIFEST_FORMAT = 1
MANIFEST_KIND = "featuremill.training_set"


def code_info(spark, *, git_commit: str | None = None) -> dict[str, Any]:
    from featuremill import __version__

    return {
        "featuremill": __version__,
        "git_commit": git_commit,
        "spark": spark.version,
        "python": platform.python_version(),
    }


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def default_manifest_path(out: str) -> str:
    return out.rstrip("/") + ".manifest.json"


def dumps(manifest: Mapping[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"


def loads(text: str, *, path: str) -> dict[str, Any]:
    """Parse and check a manifest; :class:`TrainingSetError` naming the file when it is not one."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise TrainingSetError(f"{path}: not a JSON manifest ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND:
        raise TrainingSetError(
            f"{path}: not a featuremill training-set manifest (kind {doc.get('kind')!r})"
            if isinstance(doc, dict)
            else f"{path}: not a featuremill training-set manifest"
        )
    if doc.get("manifest_format") != MANIFEST_FORMAT:
        raise TrainingSetError(
            f"{path}: manifest_format {doc.get('manifest_format')!r} is not supported "
            f"(this featuremill reads {MANIFEST_FORMAT})"
        )
    for key in ("pipeline", "spine", "options", "feature_sets", "output"):
        if key not in doc:
            raise TrainingSetError(f"{path}: manifest has no {key!r} section")
    return doc
