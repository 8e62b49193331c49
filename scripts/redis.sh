#!/usr/bin/env bash
# A local Redis for featuremill's online store (tests, CI, the docs' examples).
#   scripts/redis.sh install          install redis-server from the Debian package when missing
#   scripts/redis.sh start [PORT]     start it on 127.0.0.1:PORT (daemon, no persistence), wait for PING
#   scripts/redis.sh stop  [PORT]     stop the server this script started on PORT
#   scripts/redis.sh status [PORT]    exit 0 when it answers PING
# PORT defaults to $FEATUREMILL_REDIS_PORT, else 6399. State (pid file, log) in $TMPDIR/featuremill-redis-PORT/.
set -euo pipefail

cmd=${1:-}
port=${2:-${FEATUREMILL_REDIS_PORT:-6399}}
dir="${TMPDIR:-/tmp}/featuremill-redis-$port"
log() { printf '[redis] %s\n' "$*" >&2; }

ping() { redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; }

install() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    return 0
  fi
  log "installing redis-server (Debian package)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq redis-server >/dev/null
}

case "$cmd" in
  install) install ;;
  start)
    install
    if ping; then log "already running on 127.0.0.1:$port"; exit 0; fi
    mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --pidfile "$dir/redis.pid" \
      --logfile "$dir/redis.log" --dir "$dir" --save "" --appendonly no >/dev/null
    for _ in $(seq 1 50); do ping && { log "running on 127.0.0.1:$port (pid $(cat "$dir/redis.pid"))"; exit 0; }; sleep 0.1; done
    log "redis-server did not answer on 127.0.0.1:$port; see $dir/redis.log"; exit 1 ;;
  stop)
    if [ -f "$dir/redis.pid" ]; then
      pid=$(cat "$dir/redis.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$dir/redis.pid"
      log "stopped 127.0.0.1:$port"
    else
      log "no server started by this script on port $port"
    fi ;;
  status) ping ;;
  *) echo "usage: scripts/redis.sh install|start|stop|status [PORT]" >&2; exit 2 ;;
esac
