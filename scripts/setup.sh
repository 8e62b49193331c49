#!/usr/bin/env bash
# Idempotent set-up of a development/test environment at the repository root:
#   .venv/ with featuremill (editable) and the tested PySpark + Delta + test dependencies
#   (and the online extra: Feast and the Redis client; redis-server comes from scripts/redis.sh),
#   the Delta jars resolved from Maven Central into the Ivy cache (~/.ivy2.5.2), and the class
#   archive local sessions start with (~/.cache/featuremill/jvm-archive).
# Re-running is cheap: pip runs again only when setup.cfg or constraints.txt change, and the
# jars are fetched only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

python_bin=${PYTHON:-}
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python_bin=$candidate; break; fi
  done
fi
[ -n "$python_bin" ] || { log "Python 3.11 not found (set PYTHON=/path/to/python3.11)"; exit 1; }
command -v java >/dev/null 2>&1 || { log "java not found: install Java 17 and put it on PATH"; exit 1; }

if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($python_bin --version)"
  "$python_bin" -m venv .venv
fi

stamp=.venv/.featuremill-setup
want=$(cat setup.cfg pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  log "installing featuremill and the pinned test dependencies into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test,online]"
  echo "$want" > "$stamp"
fi

delta_version=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("delta-spark"))')
# get_spark passes the Delta jars of a recorded earlier resolution (no Ivy run, no Ivy report);
# resolve and record them once here, with Ivy's report kept in a log instead of on the console.
if ! .venv/bin/python -c 'import sys; from featuremill.core.session import cached_jars; sys.exit(0 if cached_jars() else 1)'; then
  log "resolving Delta $delta_version jars from Maven Central (first time only; report in .venv/delta-jars.log)"
  if ! .venv/bin/python - >.venv/delta-jars.log 2>&1 <<'PY'
import logging
logging.basicConfig(level=logging.WARNING)
from featuremill.core.session import get_spark
spark = get_spark("featuremill-setup", master="local[1]", conf={"spark.ui.enabled": "false"})
spark.range(1).count()
spark.stop()
PY
  then
    cat .venv/delta-jars.log >&2
    exit 1
  fi
fi
# the class archive local sessions start with (featuremill.core.jvm_archive: Spark's, Scala's and
# Delta's classes parsed and verified once, mapped by every later local JVM; about 40 s and 180 MB
# in ~/.cache/featuremill, once per JDK, pyspark and Delta jar set). Without it sessions start as before.
.venv/bin/python -m featuremill.core.jvm_archive || log "warning: no class archive; local sessions start without it"
# redis-server for the online-store tests (Debian package; nothing happens when it is installed)
scripts/redis.sh install || log "warning: could not install redis-server (the Redis online-store tests need it)"
# the Kafka broker of the streaming tests (scripts/kafka.sh; jars cached after the first time)
scripts/kafka.sh install
log "ready: $(.venv/bin/python --version), pyspark $(.venv/bin/python -c 'import pyspark; print(pyspark.__version__)'), delta-spark $delta_version"
