"""Versioned storage of fitted states: a Delta table, one row per (``name``, ``version``).

Table ``<warehouse>/<pipeline>/preprocessing_states`` (schema :data:`STATES_SCHEMA`): the state
as JSON text plus the columns people query (fingerprints, training reference, row count). Storing
is idempotent: a state whose fingerprint equals the latest version of its name is not stored
again, the existing version is returned. Versions count up from 1 per name; a concurrent writer
taking the same version number makes the MERGE insert nothing, which is detected and retried.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from featuremill.config.model import TablePaths
from featuremill.core.errors import PreprocessingError, TableStateError, WritePathError
from featuremill.core.local_rows import local_dataframe
from featuremill.preprocessing.state import FittedState
from featuremill.storage import io

log = logging.getLogger(__name__)

STATES_SCHEMA = (
    "name string, version bigint, created_at timestamp, state_fingerprint string, config_fingerprint string, "
    "data_fingerprint string, training_ref string, training_version bigint, label string, row_count bigint, "
    "code_version string, state_json string"
)


def states_path(tables: TablePaths) -> str:
    """Where a pipeline keeps its fitted states, beside its other tables: the reference (path
    or name) of its ``preprocessing_states`` table."""
    return tables.table("preprocessing_states")


def _latest_row(spark, path: str, name: str, version: int | None = None):
    """``(version, state_fingerprint, state_json)`` of the newest (or the given) version, in one read."""
    from pyspark.sql import functions as F

    if not io.is_delta_table(spark, path):
        return None
    df = io.read_delta(spark, path).where(F.col("name") == F.lit(name))
    if version is not None:
        df = df.where(F.col("version") == F.lit(int(version)))
    return df.select("version", "state_fingerprint", "state_json").orderBy(F.col("version").desc()).first()


def latest_version(spark, path: str, name: str) -> int | None:
    row = _latest_row(spark, path, name)
    return int(row["version"]) if row is not None else None


def store_fitted_state(spark, path: str, state: FittedState, *, root: str, attempts: int = 3) -> FittedState:
    """Store ``state`` as the next version of its name (or return the identical latest one).

    ``root`` is the warehouse root ``path`` must lie under."""
    from pyspark.sql import functions as F

    fingerprint = state.fingerprint
    for _ in range(attempts):
        latest = _latest_row(spark, path, state.name)
        current = int(latest["version"]) if latest is not None else None
        if latest is not None and latest["state_fingerprint"] == fingerprint:
            log.info("fitted state %s: identical to stored version %d, not stored again", state.name, current)
            return FittedState.from_json(latest["state_json"])
        version = (current or 0) + 1
        created = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
        stored = state.with_version(version, created.isoformat())
        row = [
            (
                stored.name,
                version,
                created,
                fingerprint,
                stored.config_fingerprint,
                stored.data_fingerprint,
                stored.training_ref,
                stored.training_version,
                stored.label,
                stored.row_count,
                stored.code_version,
                stored.to_json(),
            )
        ]
        frame = local_dataframe(spark, row, STATES_SCHEMA)
        if not io.is_delta_table(spark, path):
            try:
                io.create_if_absent(frame, path, root=root, what="fitted-state table")
                return stored
            except WritePathError:
                raise  # a refused path, not a lost creation race
            except Exception as exc:  # another writer created the table first: retry as a MERGE
                log.info("fitted-state table appeared concurrently (%s); retrying", str(exc).splitlines()[0])
                continue
        io.merge_insert_new(
            frame, path, "t.name = s.name AND t.version = s.version", root=root, what="fitted-state table"
        )
        won = (
            io.read_delta(spark, path)
            .where((F.col("name") == F.lit(stored.name)) & (F.col("version") == F.lit(version)))
            .select("state_fingerprint")
            .first()
        )
        if won is not None and won[0] == fingerprint:
            log.info("fitted state %s: stored as version %d", stored.name, version)
            return stored
        log.info("fitted state %s: version %d taken by a concurrent fit; retrying", stored.name, version)
    raise TableStateError(f"could not store fitted state {state.name!r} in {path} after {attempts} attempts")


def load_fitted_state(spark, path: str, name: str, *, version: int | None = None) -> FittedState:
    """The stored state ``name`` at ``version`` (default: the latest)."""
    from pyspark.sql import functions as F

    if not io.is_delta_table(spark, path):
        raise TableStateError(f"no fitted states at {path}; run `featuremill fit` first")
    row = _latest_row(spark, path, name, version)
    if row is None and version is None:
        raise PreprocessingError(f"no fitted state named {name!r} in {path}; run `featuremill fit` first")
    if row is None:
        known = [
            r[0]
            for r in io.read_delta(spark, path)
            .where(F.col("name") == F.lit(name))
            .select("version")
            .orderBy("version")
            .collect()
        ]
        raise PreprocessingError(f"fitted state {name!r} has no version {version} in {path} (versions: {known})")
    return FittedState.from_json(row["state_json"])


def write_state_json(state: FittedState, path: str | Path) -> Path:
    """Write the state as an indented JSON file (for serving systems outside Spark)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(state.to_json(indent=2) + "\n", encoding="utf-8")
    return out


def read_state_json(path: str | Path) -> FittedState:
    try:
        return FittedState.from_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PreprocessingError(f"fitted-state file {path} does not exist") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PreprocessingError(f"fitted-state file {path} is not a featuremill fitted state: {exc}") from None
