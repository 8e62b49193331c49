#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, broker + controller in one process) on 127.0.0.1,
# for the streaming tests and demo. Nothing is mocked: it is Apache Kafka's own broker, run from
# its Maven artifacts (org.apache.kafka:kafka_2.13, scripts/kafka/pom.xml).
#
#   scripts/kafka.sh install   resolve the broker's jars from Maven Central once (cached)
#   scripts/kafka.sh start     format KRaft storage in a fresh temp dir, start, wait until ready
#                              (KAFKA_KEEP_STATE=1: restart on the existing storage, topics and
#                              records kept, when the state dir holds a formatted broker)
#   scripts/kafka.sh stop      stop the broker started by `start` (by its recorded pid)
#   scripts/kafka.sh status    exit 0 when the recorded broker process is alive
#
# Environment: KAFKA_PORT (broker, default 19092), KAFKA_CONTROLLER_PORT (default 19093),
# KAFKA_STATE_DIR (pid file, log and data dir; default /tmp/featuremill-kafka-$KAFKA_PORT),
# FEATUREMILL_KAFKA_JARS (jar cache; default ~/.cache/featuremill/kafka-<version>),
# KAFKA_HEAP (default 512m), FEATUREMILL_KAFKA_RESOLVER=ivy (resolve with pyspark's Ivy even when mvn exists;
# without mvn Ivy is used anyway).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[kafka] %s\n' "$*" >&2; }

kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)
jars=${FEATUREMILL_KAFKA_JARS:-$HOME/.cache/featuremill/kafka-$kafka_version}
port=${KAFKA_PORT:-19092}
controller_port=${KAFKA_CONTROLLER_PORT:-19093}
state=${KAFKA_STATE_DIR:-/tmp/featuremill-kafka-$port}
pidfile=$state/broker.pid

install() {
  if [ -f "$jars/.complete" ]; then
    return 0
  fi
  log "resolving Apache Kafka $kafka_version broker jars from Maven Central into $jars (first time only)"
  mkdir -p "$jars"
  if [ "${FEATUREMILL_KAFKA_RESOLVER:-}" != ivy ] && command -v mvn >/dev/null 2>&1; then
    mvn -q -B -f scripts/kafka/pom.xml dependency:copy-dependencies >&2 \
      -DoutputDirectory="$jars" -DincludeScope=runtime
  else
    # No Maven: the Ivy jar inside pyspark resolves the same artifacts from Maven Central.
    local ivy
    ivy=$(ls .venv/lib/python3*/site-packages/pyspark/jars/ivy-*.jar 2>/dev/null | head -1)
    [ -n "$ivy" ] || { log "neither mvn nor pyspark's Ivy found: run scripts/setup.sh or install Maven"; exit 1; }
    local slf4j
    slf4j=$(sed -n '/<artifactId>slf4j-simple</{n;s:.*<version>\(.*\)</version>.*:\1:p}' scripts/kafka/pom.xml)
    for module in "org.apache.kafka kafka_2.13 $kafka_version" "org.slf4j slf4j-simple $slf4j" \
      "org.slf4j slf4j-api $slf4j"; do
      # shellcheck disable=SC2086
      java -jar "$ivy" -dependency $module -confs default -retrieve "$jars/[artifact]-[revision].[ext]" \
        -cache "${FEATUREMILL_IVY_DIR:-$HOME/.ivy2.5.2}/cache" >/dev/null
    done
    rm -f "$jars"/slf4j-api-1.*.jar  # Kafka's own 1.7 API; the 2.x API and binding replace it, as in the pom
  fi
  ls "$jars"/kafka_2.13-"$kafka_version".jar >/dev/null
  touch "$jars/.complete"
}

alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

ready() {
  # a broker is ready when it accepts connections on its listener (the client check below then
  # confirms it answers metadata requests)
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

start() {
  install
  if alive; then
    log "already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"
    return 0
  fi
  if ready; then
    log "port $port is taken by another process; set KAFKA_PORT"; exit 1
  fi
  if [ "${KAFKA_KEEP_STATE:-}" = 1 ] && [ -f "$state/data/meta.properties" ]; then
    # a restart (the streaming fault tests): same storage, so topics, records and offsets survive
    log "restarting Kafka $kafka_version on its existing storage in $state"
    launch
    return 0
  fi
  rm -rf "$state"
  mkdir -p "$state/data"
  cat > "$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$state/data
num.partitions=2
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
  local cp="$jars/*"
  local cluster_id
  cluster_id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  java -cp "$cp" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
    -c "$state/server.properties" > "$state/format.log" 2>&1 \
    || { cat "$state/format.log" >&2; exit 1; }
  log "starting Kafka $kafka_version (KRaft) on 127.0.0.1:$port (controller $controller_port), state in $state"
  launch
}

launch() {
  local cp="$jars/*"
  nohup java -Xmx"${KAFKA_HEAP:-512m}" -Xms128m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$cp" kafka.Kafka "$state/server.properties" >> "$state/broker.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if ! alive; then
      log "broker exited during start-up; its log:"; tail -40 "$state/broker.log" >&2; exit 1
    fi
    if ready; then
      log "ready (pid $(cat "$pidfile"))"
      return 0
    fi
    sleep 0.5
  done
  log "broker not ready after 60 s; its log:"; tail -40 "$state/broker.log" >&2
  stop; exit 1
}

stop() {
  if ! [ -f "$pidfile" ]; then
    log "not running (no $pidfile)"; return 0
  fi
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "stopped (pid $pid)"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) alive ;;
  *) echo "usage: scripts/kafka.sh install|start|stop|status" >&2; exit 2 ;;
esac
