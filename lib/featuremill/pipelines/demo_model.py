"""The demo's modelling step: an inactivity training table, ``fit`` and ``select`` on it.

Until the point-in-time training-set job is available, the demo builds its training table
directly from the ``customer_activity`` feature table: every feature row (a customer's state
after a purchase at ``event_ts``) is labelled ``inactive_2d = 1`` when the customer buys nothing
in the following 2 days ``(event_ts, event_ts + 2d]`` (about 8% of rows in the demo data).
Features only look back and the label only looks forward from the same instant, so nothing
leaks; rows whose horizon passes the last ingested day are left out (their label is not known yet).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from featuremill.config import PipelineConfig
from featuremill.core.columns import user_columns
from featuremill.core.progress import stage
from featuremill.pipelines.preprocess import FitResult, overwrite_table, run_fit
from featuremill.pipelines.select_features import SelectRun, run_select
from featuremill.storage import io

log = logging.getLogger(__name__)

LABEL = "inactive_2d"
HORIZON_DAYS = 2
FEATURE_SET = "customer_activity"


@dataclass(frozen=True)
class DemoModelResult:
    training_path: str
    training_rows: int
    positive_rate: float
    fit: FitResult
    selection: SelectRun


def training_path(config: PipelineConfig) -> str:
    return config.tables.table(f"training/{LABEL}")


def build_inactivity_training_set(spark, config: PipelineConfig, *, end: dt.date) -> tuple[str, int, float]:
    """Write the labelled feature rows whose horizon ends by ``end`` as a Delta table.

    Returns (path, rows, share of positive labels)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    fs = config.feature_set(FEATURE_SET)
    event_time = config.source(fs.source).event_time
    features = io.read_delta(spark, config.tables.features(fs.name))
    features = features.where(F.col("event_date") <= F.lit(end))
    following = Window.partitionBy(*fs.entity).orderBy(event_time)
    next_ts = F.lead(event_time).over(following)
    horizon = F.col(event_time) + F.expr(f"INTERVAL {HORIZON_DAYS} DAYS")
    cutoff = dt.datetime.combine(end + dt.timedelta(days=1), dt.time()) - dt.timedelta(days=HORIZON_DAYS)
    labelled = features.withColumn(LABEL, F.when(next_ts.isNull() | (next_ts > horizon), 1).otherwise(0)).where(
        F.col(event_time) < F.lit(cutoff)
    )
    # a training set is user-facing: the feature table's _known_at / _feature_set_version stay behind
    labelled = labelled.select(*user_columns(labelled.columns))
    path = training_path(config)
    with stage(f"demo: training set ({LABEL})", spark):
        overwrite_table(labelled, path, root=config.env.root, what="demo training set")
    stats = io.read_delta(spark, path).agg(F.count(F.lit(1)), F.avg(LABEL)).first()
    return path, int(stats[0]), float(stats[1] or 0.0)


def run_demo_model(spark, config: PipelineConfig, *, end: dt.date, report_dir: str | Path) -> DemoModelResult:
    """Build the training table, fit the preprocessing on it and run feature selection."""
    path, rows, rate = build_inactivity_training_set(spark, config, end=end)
    out = Path(report_dir)
    fit = run_fit(spark, config, training_set=path, label=LABEL, json_path=str(out / "preprocessing_state.json"))
    selection = run_select(spark, config, training_set=path, label=LABEL, report_dir=out)
    return DemoModelResult(path, rows, rate, fit, selection)
