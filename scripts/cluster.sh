#!/usr/bin/env bash
# A Spark standalone cluster on this machine, from the pyspark installed in .venv (no download):
# one master and N workers bound to 127.0.0.1, each a separate JVM with its own work dir and log.
#
#   scripts/cluster.sh start     # prints the master URL (spark://127.0.0.1:PORT) on stdout
#   scripts/cluster.sh status    # master URL and alive workers; exit 1 when not running
#   scripts/cluster.sh stop      # stops every process it started (process groups), then checks
#
# Settings (environment):
#   FEATUREMILL_CLUSTER_DIR        state folder: pids, logs, worker dirs (default .cluster/)
#   FEATUREMILL_CLUSTER_PORT       master RPC port (default 7177)
#   FEATUREMILL_CLUSTER_UI_PORT    master web UI port (default 8180); workers use the ports after it
#   FEATUREMILL_CLUSTER_WORKERS    number of workers (default 2)
#   FEATUREMILL_CLUSTER_WORKER_CORES / _WORKER_MEMORY   per worker (default 1 core, 1g)
#   PYSPARK_PYTHON                 Python for executors (default .venv/bin/python)
#
# Jobs go to it with:  FEATUREMILL_MASTER=spark://127.0.0.1:7177 scripts/submit.sh ingest ...
# Every process is started in its own session (setsid), so stop kills the whole group, including
# executors a worker launched, by the ids recorded at start, never by name.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${FEATUREMILL_CLUSTER_DIR:-$root/.cluster}
port=${FEATUREMILL_CLUSTER_PORT:-7177}
ui_port=${FEATUREMILL_CLUSTER_UI_PORT:-8180}
workers=${FEATUREMILL_CLUSTER_WORKERS:-2}
worker_cores=${FEATUREMILL_CLUSTER_WORKER_CORES:-1}
worker_memory=${FEATUREMILL_CLUSTER_WORKER_MEMORY:-1g}
py=$root/.venv/bin/python
master_url=spark://127.0.0.1:$port

log() { printf '[cluster] %s\n' "$*" >&2; }

spark_home() {
  "$py" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'
}

# Alive = the recorded process exists and is still one we started (its environment names our
# state folder), so a recycled pid is never signalled.
alive() {
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "FEATUREMILL_CLUSTER_STATE=$state"
}

cluster_json() {
  "$py" - "$ui_port" <<'PY'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=2) as r:
        print(json.dumps(json.load(r)))
except Exception:
    sys.exit(1)
PY
}

alive_workers() {
  cluster_json 2>/dev/null | "$py" -c 'import json,sys; print(json.load(sys.stdin).get("aliveworkers", 0))' 2>/dev/null || echo 0
}

launch() {  # name, class, args...
  local name=$1; shift
  local out=$state/logs/$name.out
  # setsid: the process leads its own group, so stop can signal it and its children together.
  setsid nohup "$SPARK_HOME/bin/spark-class" "$@" >"$out" 2>&1 </dev/null &
  echo $! >"$state/pids/$name.pid"
}

start() {
  if [ -f "$state/pids/master.pid" ] && alive "$(cat "$state/pids/master.pid")"; then
    log "already running: $master_url"
    echo "$master_url"
    return 0
  fi
  stop_all quiet
  export SPARK_HOME
  SPARK_HOME=$(spark_home)
  mkdir -p "$state/pids" "$state/logs" "$state/work" "$state/conf" "$state/tmp"
  # Own conf dir: no spark-defaults/log4j from elsewhere leak in; quiet logs to the .out files.
  cat >"$state/conf/spark-env.sh" <<EOF
SPARK_LOCAL_IP=127.0.0.1
SPARK_LOCAL_DIRS=$state/tmp
EOF
  export SPARK_CONF_DIR=$state/conf
  export FEATUREMILL_CLUSTER_STATE=$state
  export SPARK_LOCAL_IP=127.0.0.1
  export SPARK_LOG_DIR=$state/logs
  export SPARK_WORKER_DIR=$state/work
  export SPARK_LOCAL_DIRS=$state/tmp
  export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$py}
  # Small daemons: the master and workers only schedule; executors get their own heap.
  export SPARK_DAEMON_MEMORY=${SPARK_DAEMON_MEMORY:-256m}
  # The daemons do little work: no C2 compiler, no parallel GC threads competing for the cores.
  export SPARK_DAEMON_JAVA_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC ${SPARK_DAEMON_JAVA_OPTS:-}"
  log "starting master $master_url (web UI http://127.0.0.1:$ui_port) from $SPARK_HOME"
  launch master org.apache.spark.deploy.master.Master \
    --host 127.0.0.1 --port "$port" --webui-port "$ui_port"
  for i in $(seq 1 "$workers"); do
    mkdir -p "$state/work/worker-$i"
    launch "worker-$i" org.apache.spark.deploy.worker.Worker \
      --host 127.0.0.1 --port 0 --webui-port $((ui_port + i)) \
      --cores "$worker_cores" --memory "$worker_memory" --work-dir "$state/work/worker-$i" "$master_url"
  done
  local waited=0
  while [ "$(alive_workers)" -lt "$workers" ]; do
    if [ $waited -ge 90 ] || ! alive "$(cat "$state/pids/master.pid")"; then
      log "cluster did not come up within ${waited}s; last log lines:"
      tail -n 20 "$state"/logs/*.out >&2 || true
      stop_all quiet
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "up after ${waited}s: master $master_url, $workers workers x $worker_cores core(s), $worker_memory"
  echo "$master_url"
}

stop_all() {
  local quiet=${1:-}
  [ -d "$state/pids" ] || { [ -n "$quiet" ] || log "not running (no $state/pids)"; return 0; }
  local pids=() f pid
  for f in "$state"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if alive "$pid"; then pids+=("$pid"); fi
  done
  if [ ${#pids[@]} -gt 0 ]; then
    [ -n "$quiet" ] || log "stopping process groups ${pids[*]}"
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for _ in $(seq 1 20); do
      local left=0
      for pid in "${pids[@]}"; do
        if kill -0 -- "-$pid" 2>/dev/null; then left=1; fi
      done
      [ $left = 0 ] && break
      sleep 0.5
    done
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  fi
  rm -f "$state"/pids/*.pid
  [ -n "$quiet" ] || log "stopped"
}

status() {
  if [ -f "$state/pids/master.pid" ] && alive "$(cat "$state/pids/master.pid")"; then
    echo "$master_url alive_workers=$(alive_workers)"
    return 0
  fi
  echo "not running"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop_all ;;
  status) status ;;
  *) echo "usage: scripts/cluster.sh start|stop|status" >&2; exit 2 ;;
esac
