"""Deployment: spark-submit command lines, DAG definitions for schedulers, platform artifacts.

Everything here builds text or argument lists from a :class:`~featuremill.config.PipelineConfig`;
nothing starts Spark. See ``docs/deployment.md``.
"""
