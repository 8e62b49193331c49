#!/usr/bin/env bash
# Generate the demo data, run the demo pipeline in local mode and print a summary.
# Tables land in ./warehouse/demo/, raw data in ./data/demo/. Extra arguments go to
# `featuremill demo`, e.g. scripts/demo.sh --events 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# --serve: ends with a Feast repository in feast/demo, the SQLite online store filled by
# `featuremill materialize`, and one online vector beside its training row (docs/serving.md)
exec .venv/bin/featuremill demo --serve feast/demo "$@"
