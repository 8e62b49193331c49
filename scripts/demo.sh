#!/usr/bin/env bash
# Generate the demo data, run the demo pipeline in local mode and print a summary.
# Tables land in ./warehouse/demo/, raw data in ./data/demo/. Extra arguments go to
# `featuremill demo`, e.g. scripts/demo.sh --events 1000000
# scripts/demo.sh --stream [--seconds S] [--rate R]: the streaming demo instead (Kafka ->
# customer_activity for S seconds, printing each micro-batch's freshness; docs/streaming.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "${1:-}" = "--stream" ]; then
  shift
  exec .venv/bin/python scripts/stream_demo.py "$@"
fi
# --serve: ends with a Feast repository in feast/demo, the SQLite online store filled by
# `featuremill materialize`, and one online vector beside its training row (docs/serving.md)
# executors run the virtualenv's Python (the online writer needs Feast and pyarrow there)
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$PWD/.venv/bin/python}
exec .venv/bin/featuremill demo --serve feast/demo "$@"
