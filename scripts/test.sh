#!/usr/bin/env bash
# Run the whole test suite (sets the environment up first). Extra arguments go to pytest,
# e.g. scripts/test.sh tests/unit -k window
# Two worker processes by default (pytest-xdist; tests/conftest.py groups the files that must
# share one): FEATUREMILL_TEST_WORKERS=1, or -n 0, runs everything in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
workers=${FEATUREMILL_TEST_WORKERS:-2}
if [ "$workers" -gt 1 ]; then
  exec .venv/bin/python -m pytest -n "$workers" --dist loadgroup "$@"
fi
exec .venv/bin/python -m pytest "$@"
