#!/usr/bin/env bash
# Idempotent set-up of .venv-deploy/: Apache Airflow (+ the Spark provider), databricks-sdk,
# databricks-bundles and botocore, pinned by requirements-deploy.txt / constraints-deploy.txt.
# The tests of `featuremill dag export` load the generated definitions with these real parsers
# (tests/deploy_check.py). Separate from .venv because Airflow's pins clash with the project's.
# Re-running is cheap: pip runs again only when the requirement files change. Prints the python.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${FEATUREMILL_DEPLOY_VENV:-.venv-deploy}
log() { printf '[deploy-tools] %s\n' "$*" >&2; }
python_bin=${PYTHON:-}
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python_bin=$candidate; break; fi
  done
fi
stamp=$venv/.featuremill-deploy-tools
want=$(cat requirements-deploy.txt constraints-deploy.txt | sha256sum | cut -c1-16)
# scripts/test.sh starts an install in the background while the tests start, and the tests run
# this script again: the second waits for the first, then finds the stamp.
exec 9>"$venv.lock"
flock 9
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv with $($python_bin --version)"
    "$python_bin" -m venv "$venv"
  fi
  log "installing Airflow, databricks-sdk, databricks-bundles, botocore into $venv (a minute or two, once)"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -c constraints-deploy.txt -r requirements-deploy.txt
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
