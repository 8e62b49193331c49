"""Benchmarks: data generators and timed methods, importable so scripts and suites share them.

The command-line wrappers live in ``scripts/`` and only parse arguments and print tables.
"""
