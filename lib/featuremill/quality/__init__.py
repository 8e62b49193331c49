"""Data quality: schema contracts, rules with quarantine, metrics history, profiling and drift.

Modules:

* :mod:`~featuremill.quality.spec`: the ``quality:`` section of a pipeline file -> frozen specs;
* :mod:`~featuremill.quality.tables`: table names (``validated.<source>``, ``features.<set>``) and
  data selections (``2026-09-01..2026-09-14``, ``v12``);
* :mod:`~featuremill.quality.contracts`: schema contracts and the evolution policy;
* :mod:`~featuremill.quality.rules`: row-level and aggregate rules as Spark expressions;
* :mod:`~featuremill.quality.gate`: what the jobs call before they write (check, measure, decide);
* :mod:`~featuremill.quality.history`: the ``quality_metrics`` Delta table and anomaly checks;
* :mod:`~featuremill.quality.profile`, :mod:`~featuremill.quality.drift`: profiling and drift;
* :mod:`~featuremill.core.stats`: the small-vector statistics (PSI, JS, KS, W1, chi-square, BH);
* :mod:`~featuremill.quality.report`: self-contained HTML and JSON reports.

The user documentation is ``docs/quality.md``.
"""
