"""Structured Streaming: Kafka or Delta streams of an events source -> the same window features.

:mod:`~featuremill.streaming.records` holds the DataFrame -> DataFrame transforms (Kafka records
to classified rows, late events); :mod:`~featuremill.streaming.job` runs the query, one
``foreachBatch`` per micro-batch, with idempotent Delta writes. See ``docs/streaming.md``.
"""
