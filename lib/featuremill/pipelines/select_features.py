"""The selection job: score the features of a training table, record the decisions, write reports.

Outputs:

* Delta table ``<warehouse>/<pipeline>/feature_selection``: one row per (selection, feature) with
  every score, the rank, the decision and its reason. A selection is identified by
  ``selection_id`` = hash of (training data content fingerprint, label, settings, candidates);
  re-running the same selection replaces its rows with identical ones (``replaceWhere``);
* in the report folder: ``selection.json`` (everything), ``selection.html`` (self-contained report
  with plots) and ``selected_features.json`` (the kept features, for the training-set job:
  :func:`load_selected_features`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from featuremill import __version__
from featuremill.config import PipelineConfig
from featuremill.core.errors import SelectionError
from featuremill.core.local_rows import local_dataframe
from featuremill.core.progress import stage
from featuremill.core.sql import literal
from featuremill.pipelines.common import recorded_run
from featuremill.pipelines.preprocess import read_training_table
from featuremill.selection import SelectionResult, SelectionSpec, select_features
from featuremill.selection.report import render_html
from featuremill.storage import io

log = logging.getLogger(__name__)

RESULTS_SCHEMA = (
    "selection_id string, run_id string, created_at timestamp, pipeline string, training_ref string, "
    "training_version bigint, data_fingerprint string, label string, task string, feature string, kind string, "
    "rank int, decision string, reason string, mean_rank double, mutual_information double, chi2 double, "
    "chi2_p double, chi2_p_adj double, chi2_valid boolean, f_stat double, f_p double, f_p_adj double, "
    "label_correlation double, "
    "rf_importance double, permutation_importance double, permutation_se double, freq_ratio double, "
    "unique_percent double, cv double, non_null bigint, distinct_values bigint"
)
SELECTED_FILE = "selected_features.json"


def results_path(config: PipelineConfig) -> str:
    return config.tables.table("feature_selection")


@dataclass(frozen=True)
class SelectRun:
    result: SelectionResult
    selection_id: str
    run_id: str
    report_dir: Path
    table_version: int | None


def selection_id(fingerprint: str, label: str, spec: SelectionSpec, features: Sequence[str] | None) -> str:
    body = json.dumps(
        {"data": fingerprint, "label": label, "spec": repr(spec), "features": list(features or [])}, sort_keys=True
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def run_select(
    spark,
    config: PipelineConfig,
    *,
    training_set: str,
    label: str | None = None,
    report_dir: str | Path,
    features: Sequence[str] | None = None,
) -> SelectRun:
    """Run :func:`featuremill.selection.select_features` on a Delta or Parquet training table."""
    spec = config.section("selection") or SelectionSpec()
    label = label or spec.label
    if not label:
        raise SelectionError("no label column: pass --label or set selection.label in the pipeline")
    out_dir = Path(report_dir)
    with recorded_run(spark, config, job="select", target=label, start=None, end=None) as record:
        table = read_training_table(spark, training_set)
        with stage("select: score features"):
            result = select_features(table.df, spec, label=label, features=features)
        sid = selection_id(result.data_fingerprint, label, spec, features)
        created = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
        rows = [
            (
                sid,
                record.run_id,
                created,
                config.name,
                table.path,
                table.version,
                result.data_fingerprint,
                result.label,
                result.task,
                f.name,
                f.kind,
                f.rank,
                f.decision,
                f.reason,
                f.mean_rank,
                f.mutual_information,
                f.chi2,
                f.chi2_p,
                f.chi2_p_adj,
                f.chi2_valid,
                f.f_stat,
                f.f_p,
                f.f_p_adj,
                f.label_correlation,
                f.rf_importance,
                f.permutation_importance,
                f.permutation_se,
                _finite(f.freq_ratio),
                f.unique_percent,
                f.cv,
                f.non_null,
                f.distinct,
            )
            for f in result.features
        ]
        frame = local_dataframe(spark, rows, RESULTS_SCHEMA)
        path = results_path(config)
        io.replace_where(
            frame,
            path,
            root=config.env.root,
            predicate=f"selection_id = {literal(sid)}",
            what="feature selection table",
        )
        version = io.delta_version(spark, path)
        context = {
            "pipeline": config.name,
            "training set": table.path,
            "training version": str(table.version) if table.version is not None else "(parquet)",
            "selection id": sid,
            "run id": record.run_id,
            "created": created.isoformat() + "Z",
            "featuremill": __version__,
        }
        write_reports(result, out_dir, context=context, pipeline=config.name)
        record.rows_read = result.rows
        record.rows_written = len(rows)
        record.input_versions = {"training_set": table.version} if table.version is not None else {}
        record.output_versions = {"feature_selection": version}
        record.details = {
            "selection_id": sid,
            "training_set": table.path,
            "label": label,
            "task": result.task,
            "kept": result.selected,
            "report_dir": str(out_dir),
        }
        return SelectRun(result, sid, record.run_id, out_dir, version)


def _finite(x):
    return x if x is None or (x == x and abs(x) != float("inf")) else None


def write_reports(result: SelectionResult, out_dir: Path, *, context: dict[str, str], pipeline: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    body = {"context": context, **result.to_dict()}
    (out_dir / "selection.json").write_text(
        json.dumps(body, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8"
    )
    (out_dir / "selection.html").write_text(
        render_html(result, title=f"Feature selection: {pipeline} / label {result.label}", context=context),
        encoding="utf-8",
    )
    selected = {
        "pipeline": pipeline,
        "label": result.label,
        "task": result.task,
        "selection_id": context.get("selection id"),
        "training_set": context.get("training set"),
        "features": result.selected,
    }
    (out_dir / SELECTED_FILE).write_text(json.dumps(selected, indent=2) + "\n", encoding="utf-8")


def load_selected_features(path: str | Path) -> list[str]:
    """The kept features of a selection (``selected_features.json``, or the folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / SELECTED_FILE
    try:
        body = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SelectionError(f"selected-features file {p} does not exist; run `featuremill select` first") from None
    features = body.get("features") if isinstance(body, dict) else None
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise SelectionError(f'{p} is not a selected-features file (expected {{"features": [names]}})')
    return features
