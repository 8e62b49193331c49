"""Jobs around fitted preprocessing: fit on a training table, apply a stored state to a table,
and the feature job's hooks (history helpers, the ``preprocessed/<set>`` serving table).

Tables (under ``<warehouse>/<pipeline>/``):

* ``preprocessing_states``: fitted states, one row per (name, version) (:mod:`featuremill.preprocessing.store`);
* ``preprocessed/<feature_set>``: the feature table with the stored state applied in serving mode,
  written by the feature job when ``preprocessing.serving.feature_sets`` lists the set; same keys,
  same date partitions, MERGEd over the same date range as the feature table.

A fit on a training set that has a training-set manifest (``<training set>.manifest.json``, or
``manifest=``) records the stored state in the manifest's ``preprocessing`` key, after checking
that the manifest describes the rows fitted on (same content fingerprint and row count).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from featuremill import __version__
from featuremill.config import FeatureSetSpec, PipelineConfig
from featuremill.core.errors import InputDataError, PreprocessingError, TableStateError
from featuremill.core.progress import stage
from featuremill.pipelines.common import recorded_run
from featuremill.preprocessing import apply_preprocessing, fit_preprocessing
from featuremill.preprocessing.spec import PreprocessingSpec, TimeseriesSpec
from featuremill.preprocessing.state import FittedState
from featuremill.preprocessing.store import load_fitted_state, states_path, store_fitted_state, write_state_json
from featuremill.storage import io
from featuremill.storage.retention import replay_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingTable:
    """A training table as read: the DataFrame, where it came from and (Delta) its version."""

    df: object
    path: str
    format: str
    version: int | None


def read_training_table(spark, path: str) -> TrainingTable:
    """Read a Delta table (pinned to its current version) or a Parquet folder.

    What the rows contain is fingerprinted by the jobs themselves, inside their first aggregate
    (:mod:`featuremill.core.fingerprint`).
    """
    if io.is_delta_table(spark, path):
        version = io.delta_version(spark, path)
        return TrainingTable(io.read_delta(spark, path, version=version), path, "delta", version)
    try:
        df = spark.read.parquet(path)
    except Exception as exc:
        first = str(exc).splitlines()[0]
        raise TableStateError(f"cannot read training table {path} as Delta or Parquet: {first}") from None
    return TrainingTable(df, path, "parquet", None)


def overwrite_table(df, path: str, *, root: str, what: str = "output table") -> None:
    """Replace the Delta table at ``path`` (its schema too: a re-fit may change the columns);
    ``path`` must lie under ``root``, the warehouse."""
    io.replace_table(df, path, root=root, what=what)


def preprocessing_spec(config: PipelineConfig) -> PreprocessingSpec:
    spec = config.section("preprocessing")
    if spec is None:
        raise PreprocessingError(f"{config.file}: the pipeline has no preprocessing section; see docs/preprocessing.md")
    return spec


@dataclass(frozen=True)
class FitResult:
    state: FittedState
    run_id: str
    rows: int
    transformed_path: str | None
    json_path: str | None
    reused: bool
    manifest_path: str | None = None


# ---- training-set manifest --------------------------------------------------------------------

MANIFEST_KIND = "featuremill.training_set"  # written by the training-set job (issue 4)


def default_manifest_path(training_set: str) -> str:
    """Where the training-set job writes a training set's manifest: ``<training set>.manifest.json``."""
    return training_set.rstrip("/") + ".manifest.json"


def read_manifest(spark, path: str) -> dict[str, Any]:
    """Read and check a training-set manifest, wherever the training-set job wrote it.

    Uses :func:`featuremill.storage.io.read_text`, the reader of what the training-set job writes: a
    local or FUSE-mounted file, or a folder on an object store.
    """
    try:
        text = io.read_text(spark, path)
    except InputDataError:
        raise PreprocessingError(f"training-set manifest {path} does not exist") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PreprocessingError(f"{path}: not a JSON training-set manifest ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND:
        found = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        raise PreprocessingError(f"{path}: not a featuremill training-set manifest (kind {found!r})")
    return doc


def _manifest_beside(spark, training_set: str) -> tuple[str | None, dict[str, Any] | None]:
    """The manifest the training-set job wrote beside ``training_set``, if there is one."""
    beside = default_manifest_path(training_set)
    try:
        return beside, read_manifest(spark, beside)
    except PreprocessingError as exc:
        if "does not exist" in str(exc):
            return None, None
        raise


def check_manifest_matches(doc: dict[str, Any], *, path: str, fingerprint: str, rows: int) -> None:
    """Refuse to record a fit in a manifest that describes other rows than the ones fitted on."""
    output = doc.get("output") or {}
    recorded_fp, recorded_rows = output.get("fingerprint"), output.get("rows")
    if (recorded_fp is not None and recorded_fp != fingerprint) or (
        recorded_rows is not None and recorded_rows != rows
    ):
        raise PreprocessingError(
            f"{path}: the manifest describes another training set (output rows {recorded_rows}, fingerprint "
            f"{recorded_fp}) than the one fitted on ({rows} rows, fingerprint {fingerprint}); rebuild the "
            "training set or give --manifest for this table"
        )


def manifest_entry(stored: FittedState, *, states_table: str) -> dict[str, Any]:
    """The manifest's ``preprocessing`` value: enough to load and apply the very same fit again."""
    return {
        "name": stored.name,
        "version": stored.version,
        "states_table": states_table,
        "state_fingerprint": stored.fingerprint,
        "config_fingerprint": stored.config_fingerprint,
        "data_fingerprint": stored.data_fingerprint,
        "label": stored.label,
        "fitted_at": stored.created_at,
    }


def write_manifest(spark, path: str, doc: dict[str, Any], *, root: str) -> None:
    """Write the manifest back with :func:`featuremill.storage.io.write_text` (atomic for local files);
    ``path`` must lie under ``root``, the warehouse."""
    io.write_text(
        spark, path, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n", root=root, what="manifest"
    )


def run_fit(
    spark,
    config: PipelineConfig,
    *,
    training_set: str,
    label: str | None = None,
    out: str | None = None,
    json_path: str | None = None,
    manifest: str | None = None,
) -> FitResult:
    """Fit the pipeline's preprocessing on ``training_set``, store the state as a new version.

    ``out`` also writes the training table transformed in training mode (out-of-fold target
    encoding) as a Delta table (overwritten); ``json_path`` exports the state as a JSON file.
    ``manifest`` (default: ``<training_set>.manifest.json`` when that file exists) is the
    training set's manifest: checked before anything is stored, then its ``preprocessing`` key
    records the stored state. Re-running on the same data and config stores nothing new,
    returns the same version and writes the same manifest entry.
    """
    if out:
        io.check_write_path(out, config.env.root, what="transformed training table")
    spec = preprocessing_spec(config)
    path = states_path(config.tables)
    with recorded_run(spark, config, job="fit", target=spec.name, start=None, end=None) as record:
        if manifest is None:
            manifest, manifest_doc = _manifest_beside(spark, training_set)
        else:
            manifest_doc = read_manifest(spark, manifest)
        if manifest_doc is not None:
            # The fit records itself in the manifest at the end: refuse a manifest outside the
            # warehouse now, before a state is stored, rather than after.
            io.check_write_path(manifest, config.env.root, what="training-set manifest")
        table = read_training_table(spark, training_set)
        before = _latest(spark, path, spec.name)
        with stage(f"fit {spec.name}: statistics"):
            state = fit_preprocessing(
                table.df,
                spec,
                label=label,
                feature_sets={fs.name: fs.feature_names for fs in config.feature_sets},
                pipeline=config.name,
                training_ref=table.path,
                training_version=table.version,
                code_version=__version__,
            )
        if manifest_doc is not None:
            check_manifest_matches(
                manifest_doc, path=manifest, fingerprint=state.data_fingerprint, rows=state.row_count
            )
        stored = store_fitted_state(spark, path, state, root=config.env.root)
        if manifest_doc is not None:
            manifest_doc["preprocessing"] = manifest_entry(stored, states_table=path)
            write_manifest(spark, manifest, manifest_doc, root=config.env.root)
        written = None
        if out:
            with stage(f"fit {spec.name}: write transformed training set"):
                transformed = apply_preprocessing(table.df, stored, mode="training")
                overwrite_table(transformed, out, root=config.env.root, what="transformed training table")
            written = out
        if json_path:
            write_state_json(stored, json_path)
        record.rows_read = stored.row_count
        record.input_versions = {"training_set": table.version} if table.version is not None else {}
        record.output_versions = {f"preprocessing_states.{stored.name}": int(stored.version)}
        record.details = {
            "training_set": table.path,
            "data_fingerprint": stored.data_fingerprint,
            "state_version": stored.version,
            "state_fingerprint": stored.fingerprint,
            "warnings": list(stored.warnings),
            "transformed": written,
            "manifest": manifest,
        }
        return FitResult(
            stored,
            record.run_id,
            stored.row_count,
            written,
            json_path,
            reused=before is not None and before == stored.version,
            manifest_path=manifest,
        )


def _latest(spark, path: str, name: str) -> int | None:
    from featuremill.preprocessing.store import latest_version

    return latest_version(spark, path, name)


def load_state(spark, config: PipelineConfig, *, version: int | None = None, name: str | None = None) -> FittedState:
    """The pipeline's stored state (its preprocessing name, latest version unless given)."""
    spec = preprocessing_spec(config)
    return load_fitted_state(spark, states_path(config.tables), name or spec.name, version=version)


def run_apply(
    spark, config: PipelineConfig, *, table: str, out: str, mode: str = "serving", version: int | None = None
) -> tuple[FittedState, int]:
    """Apply a stored state to any Delta or Parquet table and write the result (Delta, overwritten)."""
    io.check_write_path(out, config.env.root, what="output table")
    state = load_state(spark, config, version=version)
    with recorded_run(spark, config, job="apply", target=state.name, start=None, end=None) as record:
        source = read_training_table(spark, table)
        result = apply_preprocessing(source.df, state, mode=mode)
        with stage(f"apply {state.name} v{state.version}"):
            overwrite_table(result, out, root=config.env.root)
        written = io.delta_version(spark, out)
        record.input_versions = {f"preprocessing_states.{state.name}": int(state.version)}
        if source.version is not None:
            record.input_versions["table"] = source.version
        record.output_versions = {"output": written}
        record.details = {"table": table, "out": out, "mode": mode, "state_version": state.version}
    return state, written


# ---- feature-job hooks -----------------------------------------------------------------------


def history_helpers(config: PipelineConfig, feature_set: FeatureSetSpec) -> tuple[TimeseriesSpec, ...]:
    """The ``preprocessing.timeseries`` helpers declared for ``feature_set`` (may be empty)."""
    spec = config.section("preprocessing")
    return spec.timeseries_for(feature_set.name) if spec is not None else ()


def helper_lookback_days(config: PipelineConfig, feature_set: FeatureSetSpec) -> int:
    """Extra whole days of history the feature job reads for the helpers' windows."""
    import math

    from featuremill.preprocessing.timeseries import helper_lookback_seconds

    return math.ceil(helper_lookback_seconds(history_helpers(config, feature_set)) / 86400)


def preprocessed_path(config: PipelineConfig, feature_set: str) -> str:
    return config.tables.table(f"preprocessed/{feature_set}")


def serving_state(spark, config: PipelineConfig, feature_set: FeatureSetSpec) -> FittedState | None:
    """The stored state the feature job serves ``feature_set`` with, or ``None`` when serving is not
    configured for the set or no state has been fitted yet (logged)."""
    spec = config.section("preprocessing")
    if spec is None or feature_set.name not in spec.serving.feature_sets:
        return None
    try:
        return load_fitted_state(spark, states_path(config.tables), spec.name, version=spec.serving.version)
    except (TableStateError, PreprocessingError) as exc:
        if spec.serving.version is not None:
            raise
        log.warning(
            "feature set %s: no fitted preprocessing state yet (%s); preprocessed/%s not written",
            feature_set.name,
            exc,
            feature_set.name,
        )
        return None


def serve_preprocessed(
    spark,
    config: PipelineConfig,
    feature_set: FeatureSetSpec,
    *,
    keys: list[str],
    partition_column: str,
    start: dt.date,
    end: dt.date,
    state: FittedState | None = None,
    commit: io.CommitTag | None = None,
) -> int | None:
    """Feature-job hook: re-apply the stored state to the feature rows of ``[start, end]``.

    Reads the just-written feature table for the range, applies the state in serving mode (columns
    of the state absent from the feature set are skipped) and MERGEs into
    ``preprocessed/<feature_set>`` on the same keys and range, so re-runs change nothing. Returns
    the table's new Delta version, or ``None`` when serving is not configured for the set or no
    state has been fitted yet (logged). ``state`` (default: :func:`serving_state`) and ``commit``
    (the Delta txn tag of the MERGE, see :mod:`featuremill.storage.exactly_once`) come from the feature job.
    """
    from pyspark.sql import functions as F

    if state is None:
        state = serving_state(spark, config, feature_set)
        if state is None:
            return None
    features = io.read_delta(spark, config.tables.features(feature_set.name))
    rows = features.where((F.col(partition_column) >= F.lit(start)) & (F.col(partition_column) <= F.lit(end)))
    prepared = apply_preprocessing(rows, state, mode="serving", missing="skip")
    prepared = prepared.withColumn("_preprocessing_version", F.lit(int(state.version)))
    target = preprocessed_path(config, feature_set.name)
    value_columns = [c for c in prepared.columns if c not in keys]
    with stage(f"features {feature_set.name}: preprocessed (state {state.name} v{state.version})", spark):
        io.merge_range(
            prepared,
            target,
            root=config.env.root,
            what=f"table preprocessed.{feature_set.name}",
            keys=keys,
            value_columns=value_columns,
            partition_column=partition_column,
            start=start,
            end=end,
            partition_by=[partition_column],
            commit=commit,
            # a new table gets the replay window's retention and the change data feed (it is served)
            properties=replay_window(config).table_properties(change_feed=True),
        )
    return io.delta_version(spark, target)
