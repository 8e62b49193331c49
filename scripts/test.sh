#!/usr/bin/env bash
# Run the whole test suite (sets the environment up first). Extra arguments go to pytest,
# e.g. scripts/test.sh tests/unit -k window
# Two worker processes (pytest-xdist; tests/conftest.py keeps the files that share a server, a
# session fixture or a checkout folder in one worker): FEATUREMILL_TEST_WORKERS=1 runs one process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
workers=${FEATUREMILL_TEST_WORKERS:-2}
if [ "$workers" -gt 1 ]; then
  exec .venv/bin/python -m pytest -n "$workers" --dist loadscope --no-loadscope-reorder "$@"
fi
exec .venv/bin/python -m pytest "$@"
