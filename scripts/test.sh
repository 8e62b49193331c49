#!/usr/bin/env bash
# Run the whole test suite (sets the environment up first). Extra arguments go to pytest,
# e.g. scripts/test.sh tests/unit -k window
# FEATUREMILL_TEST_WORKERS=N (N > 1) runs N worker processes (pytest-xdist; tests/conftest.py keeps
# the files that share a server, a session fixture or a checkout folder in one worker). The default
# is one process: on 2 cores two workers measured no gain (README, Development).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
workers=${FEATUREMILL_TEST_WORKERS:-1}
if [ "$workers" -gt 1 ]; then
  exec .venv/bin/python -m pytest -n "$workers" --dist loadscope --no-loadscope-reorder "$@"
fi
exec .venv/bin/python -m pytest "$@"
