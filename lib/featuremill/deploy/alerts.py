"""Callbacks a scheduler calls when a featuremill run misses its SLA.

The Airflow DAG written by ``featuremill dag export --target airflow`` points its deadline alert
at :func:`log_deadline_miss` unless the pipeline names its own (``dag.sla_callback``). Install
featuremill (pure Python, no Spark needed) in the Airflow environment for it to be importable.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def log_deadline_miss(context=None, **kwargs) -> None:
    """Log an SLA miss at ERROR level with the pipeline and the SLA (``kwargs`` from the DAG)."""
    run = None
    if isinstance(context, dict):
        run = context.get("dag_run") or context.get("run_id")
    log.error("featuremill SLA missed: pipeline=%s sla=%s run=%s", kwargs.get("pipeline"), kwargs.get("sla"), run)
