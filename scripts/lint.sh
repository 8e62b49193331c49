#!/usr/bin/env bash
# Style and layering checks (called by .ci/run): ruff's linter and formatter, and the
# import-linter contract in pyproject.toml that keeps the package's layers pointing down.
# Sets the environment up first (scripts/setup.sh installs the pinned linters with the test extra).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check lib jobs scripts tests
.venv/bin/ruff format --check lib jobs scripts tests
.venv/bin/lint-imports pyproject.toml
