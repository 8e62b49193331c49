#!/usr/bin/env bash
# Run the unit tests and a small demo against another Spark + Delta pair, in its own virtualenv.
#
#   scripts/compat.sh LANE [pytest args...]
#   scripts/compat.sh LANE --install-only
#
# LANE        pyspark            delta-spark   Delta jar (from Maven Central, cached by Ivy)
# 3.5         3.5.7              3.3.2         io.delta:delta-spark_2.12:3.3.2  (EMR 7, DBR 15.4/16.4)
# 4.2         4.2.0              4.4.0         io.delta:delta-spark_4.2_2.13:4.4.0 (newest pair that
#                                              resolves: delta-spark 4.4.1 is on PyPI without its jars)
# connect     4.0.1 [connect]    4.0.1         io.delta:delta-spark_2.13:4.0.1, used by a local Spark
#                                              Connect server (SPARK_REMOTE=local[2]); the client
#                                              has no SparkContext, RDDs or JVM access
#
# Creates .venv-compat-<lane>/ (gitignored; re-used when its pins did not change), installs
# featuremill and the test dependencies there (the versions of constraints.txt except the Spark
# and Delta ones), then runs `pytest tests/unit` and `featuremill demo --events 5000` into a
# temporary folder. Prints one line per step and a last line `compat <lane>: ...`; the exit code is
# 0 only when every step passed. Logs go to reports/compat/<lane>/. Not part of .ci/run: run by hand
# and record the result in the README's support table.
set -uo pipefail
cd "$(dirname "$0")/.."

lane=${1:-}
shift || true
case "$lane" in
  3.5) pins=("pyspark==3.5.7" "delta-spark==3.3.2") ;;
  4.2) pins=("pyspark==4.2.0" "delta-spark==4.4.0") ;;
  connect) pins=("pyspark[connect]==4.0.1" "delta-spark==4.0.1") ;;
  *)
    echo "usage: scripts/compat.sh 3.5|4.2|connect [pytest args...]" >&2
    exit 2
    ;;
esac

log() { printf '[compat %s] %s\n' "$lane" "$*" >&2; }
result() { printf 'compat %-7s %-8s %s\n' "$lane" "$1" "$2"; }

python_bin=${PYTHON:-python3.11}
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3
venv=.venv-compat-$lane
logs=reports/compat/$lane
mkdir -p "$logs"
status=0

# --- 1. environment -------------------------------------------------------------------------
# The test tools keep the versions of the main environment; Spark, Delta and what they pin
# (py4j, importlib_metadata) come from the lane.
constraints=$logs/constraints.txt
grep -viE '^(pyspark|delta-spark|py4j|importlib[-_]metadata|zipp)==' constraints.txt >"$constraints"
want=$({ printf '%s\n' "${pins[@]}"; cat "$constraints" setup.cfg; } | sha256sum | cut -c1-16)
stamp=$venv/.featuremill-compat
began=$(date +%s)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  log "installing ${pins[*]} and the test dependencies into $venv (log: $logs/pip.log)"
  rm -rf "$venv"
  if "$python_bin" -m venv "$venv" >"$logs/pip.log" 2>&1 &&
    "$venv/bin/python" -m pip install --quiet --upgrade pip >>"$logs/pip.log" 2>&1 &&
    "$venv/bin/python" -m pip install -c "$constraints" "${pins[@]}" \
      "pyyaml" "pytest" "chispa" "pandas" "pyarrow" "numpy" "duckdb" "scipy" "scikit-learn" >>"$logs/pip.log" 2>&1 &&
    # --no-deps: the `local`/`test` extras pin the main environment's pyspark
    "$venv/bin/python" -m pip install --no-deps -e . >>"$logs/pip.log" 2>&1; then
    echo "$want" >"$stamp"
  else
    result install "FAILED ($(tail -n 3 "$logs/pip.log" | tr '\n' ' '))"
    exit 1
  fi
fi
versions=$("$venv/bin/python" -c 'import importlib.metadata as m; print("pyspark", m.version("pyspark"), "delta-spark", m.version("delta-spark"))')
result install "ok: $versions ($(($(date +%s) - began))s)"

if [ "$lane" = connect ]; then
  # pyspark starts a local Spark Connect server (in a JVM of its own, 127.0.0.1 only) for
  # `local[...]` remotes; featuremill.core.session.get_spark gives it Delta's jars and settings.
  export SPARK_REMOTE="local[2]"
fi
export PYSPARK_PYTHON=$PWD/$venv/bin/python
[ "${1:-}" = --install-only ] && exit 0

# --- 2. unit tests --------------------------------------------------------------------------
began=$(date +%s)
"$venv/bin/python" -m pytest -q -p no:cacheprovider -o addopts="" -rfE tests/unit "$@" >"$logs/unit.log" 2>&1
rc=$?
summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|[0-9]+ (passed|failed|error)' "$logs/unit.log" | tail -n 1 | sed 's/=//g; s/^ *//; s/ *$//')
if [ $rc -eq 0 ]; then
  result unit "passed: $summary ($(($(date +%s) - began))s)"
else
  status=1
  result unit "FAILED: ${summary:-exit $rc} ($(($(date +%s) - began))s; failures listed in $logs/unit.log)"
fi

# --- 3. small demo --------------------------------------------------------------------------
began=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/featuremill-compat-$lane.XXXXXX")
# COMPAT_DEMO_TIMEOUT=SECONDS stops the demo after that long (default: no limit)
timeout "${COMPAT_DEMO_TIMEOUT:-0}" "$venv/bin/featuremill" demo conf/pipelines/demo.yaml --events 5000 \
  --warehouse "$work/warehouse" --data-root "$work/data" --reports "$work/reports" >"$logs/demo.log" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
  result demo "passed: 5000 events ($(($(date +%s) - began))s)"
elif [ $rc -eq 124 ]; then
  status=1
  result demo "NOT FINISHED: stopped after COMPAT_DEMO_TIMEOUT=${COMPAT_DEMO_TIMEOUT}s; $(grep -c 'featuremill.core.progress: stage .*: done' "$logs/demo.log") stages done"
else
  status=1
  result demo "FAILED: exit $rc ($(($(date +%s) - began))s): $(grep -E 'Error|Exception' "$logs/demo.log" | tail -n 1 | cut -c1-240)"
fi
rm -rf "$work"

if [ $status -eq 0 ]; then
  result all "passed on $(date -u +%Y-%m-%d): $versions"
else
  result all "FAILED on $(date -u +%Y-%m-%d): $versions (see $logs/)"
fi
exit $status
