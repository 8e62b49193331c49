"""Running Feast's own command line on a generated repository (``feast apply``, ``feast plan``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from featuremill.core.errors import ServingError


def feast_executable() -> str:
    """The ``feast`` command installed beside this Python (the ``online`` extra), else on PATH."""
    beside = Path(sys.executable).parent / "feast"
    if beside.is_file():
        return str(beside)
    found = shutil.which("feast")
    if not found:
        raise ServingError(
            "the feast command is not installed: pip install 'featuremill[online]' (scripts/setup.sh does)"
        )
    return found


def run_feast(repo: str | Path, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    """``feast ARGS`` in ``repo``; returns the finished process (stdout and stderr captured as text)."""
    return subprocess.run(
        [feast_executable(), *args], cwd=str(repo), capture_output=True, text=True, timeout=timeout_s, check=False
    )


def apply(repo: str | Path) -> str:
    """``feast apply``; raises :class:`ServingError` with Feast's last error line when it fails."""
    done = run_feast(repo, "apply")
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise ServingError(f"feast apply in {repo} failed: {lines[-1] if lines else 'exit ' + str(done.returncode)}")
    return done.stdout


def apply_in_process(spark, repo: str | Path, *, pipeline: str) -> list[str]:
    """Apply the generated definitions through Feast's SDK in this process (no second Spark session).

    Each view's source query is checked first in featuremill's own Spark session (it must read and
    have the view's columns); then the entities, sources and views of the definitions file are
    applied with ``FeatureStore.apply``, and views of the same pipeline that the file no longer
    defines are deleted. Feast's own source validation is not used in-process: it would switch the
    session's ``spark.sql.parser.quotedRegexColumnNames`` on. Returns the applied view names.
    """
    import runpy

    from feast import Entity, FeatureStore, FeatureView
    from feast.data_source import DataSource

    from featuremill.serving.repo import DEFINITIONS_FILE, TAG_PIPELINE

    repo = Path(repo).resolve()
    namespace = runpy.run_path(str(repo / DEFINITIONS_FILE))
    objects = [v for _, v in sorted(namespace.items()) if isinstance(v, (Entity, FeatureView, DataSource))]
    views = [o for o in objects if isinstance(o, FeatureView)]
    for view in views:
        query = view.batch_source.query
        try:
            columns = set(spark.sql(query).columns)
        except Exception as exc:
            raise ServingError(f"feature view {view.name!r}: its source query does not run ({exc}): {query}") from None
        wanted = {f.name for f in view.schema} | {view.batch_source.timestamp_field}
        if not wanted <= columns:
            raise ServingError(f"feature view {view.name!r}: its source lacks {', '.join(sorted(wanted - columns))}")
    store = FeatureStore(repo_path=str(repo))
    names = {v.name for v in views}
    stale = [fv for fv in store.list_feature_views() if fv.tags.get(TAG_PIPELINE) == pipeline and fv.name not in names]
    store.apply(objects, objects_to_delete=stale, partial=not stale)
    return sorted(names)
