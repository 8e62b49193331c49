#!/usr/bin/env bash
# Submit a featuremill job with spark-submit, with the package, the config files and the Delta
# settings the platform needs:
#
#   scripts/submit.sh [OPTIONS] [SPARK_SUBMIT_OPTIONS --] JOB PIPELINE [JOB_ARGS]
#
#   scripts/submit.sh ingest conf/pipelines/demo.yaml --env local --date 2026-09-01
#   scripts/submit.sh --master spark://127.0.0.1:7177 -- features conf/pipelines/demo.yaml --env standalone --date 2026-09-01
#   scripts/submit.sh --dry-run --platform emr --deploy-mode cluster -- ingest conf/pipelines/demo.yaml --env emr --date 2026-09-01
#
# JOB: a file in jobs/ by name: ingest | features (build_features) | backfill | dag (dag_run) |
# drift | materialize | profile (profile_table) | stream (stream_features); JOB_ARGS are that
# featuremill verb's arguments.  OPTIONS: --platform local|standalone|yarn|k8s|emr (default: from the
# master URL, or emr on an EMR node), --dist DIR (default dist/), --env-archive FILE (a venv-pack
# archive instead of --py-files), --dry-run (print the command).  FEATUREMILL_MASTER sets the
# default --master; PYSPARK_PYTHON the Python of the driver and executors.  dist/featuremill.zip
# is rebuilt (scripts/package.sh) when lib/ is newer.  Details: featuremill/deploy/submit.py and
# docs/deployment.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=$(command -v python3)

dist=dist
prev=""
for arg in "$@"; do
  [ "$prev" = "--dist" ] && dist=$arg
  case "$arg" in --dist=*) dist=${arg#--dist=} ;; --) break ;; esac
  prev=$arg
done
case "$dist" in /*) ;; *) dist=$root/$dist ;; esac
if [ ! -f "$dist/featuremill.zip" ] || [ -n "$(find "$root/lib/featuremill" -name '*.py' -newer "$dist/featuremill.zip" -print -quit)" ]; then
  "$root/scripts/package.sh" --out "$dist" >&2
fi
exec "$py" -m featuremill.deploy.submit --project-root "$root" "$@"
