#!/usr/bin/env bash
# Run the whole test suite (sets the environment up first). Extra arguments go to pytest,
# e.g. scripts/test.sh tests/unit -k window
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
