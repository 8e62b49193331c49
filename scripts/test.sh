#!/usr/bin/env bash
# Run the whole test suite (sets the environment up first). Extra arguments go to pytest,
# e.g. scripts/test.sh tests/unit -k window
# FEATUREMILL_TEST_WORKERS=N (N > 1) runs N worker processes (pytest-xdist; tests/conftest.py keeps
# the files that share a server, a session fixture or a checkout folder in one worker). The default
# is one process: on 2 cores two workers measured no gain (README, Development).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The scheduler parsers of the deploy-export tests (.venv-deploy: Airflow and others, half a
# minute once per machine) install in the background while pytest starts (the class archive's
# build, the first tests); the tests' own call of the script waits for this one (a lock).
scripts/deploy-tools.sh >.venv/deploy-tools.log 2>&1 &
deploy_tools=$!
workers=${FEATUREMILL_TEST_WORKERS:-1}
status=0
if [ "$workers" -gt 1 ]; then
  .venv/bin/python -m pytest -n "$workers" --dist loadscope --no-loadscope-reorder "$@" || status=$?
else
  .venv/bin/python -m pytest "$@" || status=$?
fi
# a failed install shows in the deploy-export tests, which run the script again
wait "$deploy_tools" || true
exit "$status"
