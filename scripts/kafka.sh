#!/usr/bin/env bash
# Local Apache Kafka broker for Wharf development and CI: a single KRaft node
# (broker + controller, no ZooKeeper, no Docker) run from the official jars on
# Maven Central.
#
#   scripts/kafka.sh up        start it (idempotent: reuses a broker already on the port)
#   scripts/kafka.sh down      stop it (SIGTERM, then SIGKILL after a bound; idempotent)
#   scripts/kafka.sh restart   down + up, data kept (topics and offsets survive)
#   scripts/kafka.sh status    exit 0 if a broker answers on the port
#   scripts/kafka.sh logs [-f] last lines of the broker log (-f follows)
#   scripts/kafka.sh reset     down + delete the data dir (next up formats afresh)
#
# Environment (all optional):
#   KAFKA_VERSION      Kafka version from Maven Central            (default 4.4.0)
#   WHARF_CACHE        cache root, outside git                     (default $HOME/.cache/wharf)
#   WHARF_KAFKA_DATA   data dir: config, log dirs, pid, logs       (default $WHARF_CACHE/kafka-data)
#   KAFKA_PORT         PLAINTEXT listener on 127.0.0.1             (default 9092)
#   KAFKA_CONTROLLER_PORT  CONTROLLER listener on 127.0.0.1        (default 9093)
#   KAFKA_PROXY_PORT   off by default. When set, an extra PROXY listener binds
#                      127.0.0.1:$KAFKA_PROXY_LISTENER_PORT and advertises
#                      127.0.0.1:$KAFKA_PROXY_PORT, where a fault proxy
#                      (@wharf/chaos) listens and forwards to it: kafkajs follows
#                      advertised addresses, so without this it bypasses a proxy
#   KAFKA_PROXY_LISTENER_PORT  bind port of the PROXY listener (default CONTROLLER_PORT+1)
#   KAFKA_HEAP_OPTS    JVM heap                                    (default -Xmx1g -Xms256m)
#   KAFKA_START_TIMEOUT  seconds to wait for readiness             (default 90)
#   KAFKA_STOP_TIMEOUT   seconds between SIGTERM and SIGKILL       (default 30)
#
# A locked-down node (@wharf/chaos startSecureBrokers) also sets, all off by default:
#   KAFKA_SECURE_CONFIG  a properties file appended to server.properties; its keys win
#                      (listeners, TLS, SASL, authorizer). KAFKA_PORT then names its
#                      TLS listener, which the readiness probe reaches with:
#   KAFKA_PROBE_CA, KAFKA_PROBE_CERT, KAFKA_PROBE_KEY  PEM files for a mutual-TLS probe
#   KAFKA_AUTHORIZER_LOG_LEVEL  kafka.authorizer.logger level (default WARN); INFO
#                      logs every refused operation ("Principal = User:… is Denied …")
#   KAFKA_SCRAM_FILE   one StorageTool '--add-scram' value per line, e.g.
#                      SCRAM-SHA-512=[name=alice,password=...]: users made at format
#                      time. Passed in a java @argfile (mode 0600), never on a command line.
#
# Jars go to $WHARF_CACHE/kafka-$KAFKA_VERSION/libs (downloaded once through
# scripts/kafka/pom.xml; later runs need no network).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
WHARF_CACHE="${WHARF_CACHE:-$HOME/.cache/wharf}"
LIBS_DIR="$WHARF_CACHE/kafka-$KAFKA_VERSION/libs"
DATA_DIR="${WHARF_KAFKA_DATA:-$WHARF_CACHE/kafka-data}"
HOST=127.0.0.1
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1g -Xms256m}"
PROXY_PORT="${KAFKA_PROXY_PORT:-}"
PROXY_LISTENER_PORT="${KAFKA_PROXY_LISTENER_PORT:-$((CONTROLLER_PORT + 1))}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

CONFIG="$DATA_DIR/server.properties"
LOG4J_CONFIG="$DATA_DIR/log4j2.properties"
LOG_DIRS="$DATA_DIR/kraft-logs"
APP_LOG_DIR="$DATA_DIR/logs"
SERVER_LOG="$APP_LOG_DIR/server.log"
STDOUT_LOG="$APP_LOG_DIR/kafka.out"
PID_FILE="$DATA_DIR/kafka.pid"
CLUSTER_ID_FILE="$DATA_DIR/cluster.id"

log() { printf '[kafka.sh] %s\n' "$*" >&2; }
die() { printf '[kafka.sh] ERROR: %s\n' "$*" >&2; exit 1; }

now_ms() { date +%s%3N; }
elapsed() { # $1 = start in ms -> seconds with one decimal
  local d=$(( $(now_ms) - $1 ))
  printf '%d.%d' $((d / 1000)) $(((d % 1000) / 100))
}

java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    echo "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    return 1
  fi
}

require_java() {
  JAVA="$(java_bin)" || die "java not found. Kafka $KAFKA_VERSION needs a Java 17+ runtime: install it (Debian/Ubuntu: 'apt-get install -y openjdk-17-jre-headless') or set JAVA_HOME."
  local v major
  v="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
  major="${v%%.*}"
  [[ "$major" == 1 ]] && major="$(echo "$v" | cut -d. -f2)"
  if [[ "$major" =~ ^[0-9]+$ ]] && (( major < 17 )); then
    die "java $v at $JAVA is too old: Kafka 4 brokers need Java 17+ (Debian/Ubuntu: 'apt-get install -y openjdk-17-jre-headless', then set JAVA_HOME)."
  fi
}

require_mvn() {
  command -v mvn >/dev/null 2>&1 || die "mvn not found; it is needed once to download Kafka's jars from Maven Central into $LIBS_DIR. Install Maven 3.6+ (Debian/Ubuntu: 'apt-get install -y maven')."
}

# ---------------------------------------------------------------- jars

ensure_libs() {
  if [[ -f "$LIBS_DIR/.complete" ]]; then
    return 0
  fi
  require_mvn
  local tmp="$LIBS_DIR.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  local args=(-B -q -Dstyle.color=never -f "$POM" "-Dkafka.version=$KAFKA_VERSION"
              dependency:copy-dependencies "-DoutputDirectory=$tmp")
  log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION into $LIBS_DIR"
  # Offline first (everything may already be in ~/.m2), then online.
  if ! mvn -o "${args[@]}" >/dev/null 2>&1; then
    rm -rf "$tmp"; mkdir -p "$tmp"
    if ! mvn "${args[@]}"; then
      rm -rf "$tmp"
      die "mvn could not resolve Kafka $KAFKA_VERSION from Maven Central (see output above)."
    fi
  fi
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 \
    || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn dependency:copy-dependencies"; }
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  touch "$LIBS_DIR/.complete"
}

# ---------------------------------------------------------------- config

write_config() {
  mkdir -p "$DATA_DIR" "$LOG_DIRS" "$APP_LOG_DIR"
  local listeners="PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT"
  local advertised="PLAINTEXT://$HOST:$PORT"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if [[ -n "$PROXY_PORT" ]]; then
    listeners="$listeners,PROXY://$HOST:$PROXY_LISTENER_PORT"
    advertised="$advertised,PROXY://$HOST:$PROXY_PORT"
    protocols="$protocols,PROXY:PLAINTEXT"
  fi
  cat >"$CONFIG" <<EOF
# Generated by scripts/kafka.sh (Wharf) - rewritten on every 'up'; edit the script instead.
# Single-node KRaft cluster for local development and CI.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols

log.dirs=$LOG_DIRS

# One broker: every internal topic has one replica.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# Fast recovery after a kill -9 (chaos tests): a restarted node re-registers only
# once its old registration expired (default 9 s session; DuplicateBrokerRegistration).
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000

# Small segments and short retention: test data, not production data.
log.segment.bytes=16777216
log.retention.hours=24
log.retention.check.interval.ms=60000
log.cleaner.dedupe.buffer.size=16777216
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
  if [[ -n "${KAFKA_SECURE_CONFIG:-}" ]]; then
    [[ -r "$KAFKA_SECURE_CONFIG" ]] || die "KAFKA_SECURE_CONFIG=$KAFKA_SECURE_CONFIG is not a readable file"
    { printf '\n# From KAFKA_SECURE_CONFIG (%s): later keys win.\n' "$KAFKA_SECURE_CONFIG"; cat "$KAFKA_SECURE_CONFIG"; } >>"$CONFIG"
  fi
  cat >"$LOG4J_CONFIG" <<EOF
# Generated by scripts/kafka.sh (Wharf).
status = warn
name = wharf-kafka
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $SERVER_LOG
appender.file.filePattern = $SERVER_LOG.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = ${KAFKA_AUTHORIZER_LOG_LEVEL:-WARN}
EOF
}

classpath() { echo "$LIBS_DIR/*"; }

format_storage() {
  if [[ -f "$LOG_DIRS/meta.properties" ]]; then
    return 0 # already formatted: keep the data
  fi
  local cid
  if [[ -s "$CLUSTER_ID_FILE" ]]; then
    cid="$(cat "$CLUSTER_ID_FILE")"
  else
    cid="$("$JAVA" -cp "$(classpath)" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a cluster id (kafka.tools.StorageTool random-uuid printed '$cid')"
    echo "$cid" >"$CLUSTER_ID_FILE"
  fi
  log "formatting $LOG_DIRS (cluster id $cid)"
  # Kafka 4 with controller.quorum.bootstrap.servers (dynamic quorum) needs
  # --standalone for a single controller; with controller.quorum.voters it must not be given.
  local tool=(kafka.tools.StorageTool format --config "$CONFIG" --cluster-id "$cid" --standalone)
  if [[ -n "${KAFKA_SCRAM_FILE:-}" ]]; then
    [[ -r "$KAFKA_SCRAM_FILE" ]] || die "KAFKA_SCRAM_FILE=$KAFKA_SCRAM_FILE is not a readable file"
    # The java launcher reads the main class and its arguments from an @argfile, so the
    # passwords are never on a command line (visible to every user in ps).
    local argfile="$DATA_DIR/format.args" line arg
    (umask 077; {
      for arg in "${tool[@]}"; do printf '"%s"\n' "$arg"; done
      while IFS= read -r line || [[ -n "$line" ]]; do
        [[ -n "$line" ]] && printf -- '--add-scram\n"%s"\n' "$line"
      done <"$KAFKA_SCRAM_FILE"
    } >"$argfile")
    tool=("@$argfile")
  fi
  "$JAVA" -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$(classpath)" "${tool[@]}" \
      >>"$APP_LOG_DIR/format.out" 2>&1 \
    || { rm -f "$DATA_DIR/format.args"; tail -n 20 "$APP_LOG_DIR/format.out" >&2; die "kafka.tools.StorageTool format failed (log: $APP_LOG_DIR/format.out)"; }
  rm -f "$DATA_DIR/format.args"
}

# ---------------------------------------------------------------- probes

# 0 if something Kafka-like answers on HOST:PORT. With node: sends an
# ApiVersions v0 request and checks the correlation id and error code of the
# reply. Without node: a plain TCP connect.
broker_answers() {
  if command -v node >/dev/null 2>&1; then
    node -e '
      const net = require("net");
      const fs = require("fs");
      const [host, port, ca, cert, key] = [process.argv[1], +process.argv[2], ...process.argv.slice(3)];
      const cid = Buffer.from("wharf-probe");
      const body = Buffer.alloc(2 + 2 + 4 + 2 + cid.length);
      body.writeInt16BE(18, 0); body.writeInt16BE(0, 2); body.writeInt32BE(4242, 4);
      body.writeInt16BE(cid.length, 8); cid.copy(body, 10);
      const len = Buffer.alloc(4); len.writeInt32BE(body.length, 0);
      const s = ca
        ? require("tls").connect({ host, port, ca: fs.readFileSync(ca), cert: fs.readFileSync(cert), key: fs.readFileSync(key) })
        : net.connect({ host, port });
      let buf = Buffer.alloc(0);
      const done = (ok) => { s.destroy(); process.exit(ok ? 0 : 1); };
      s.setTimeout(2000, () => done(false));
      s.on("error", () => done(false));
      s.on(ca ? "secureConnect" : "connect", () => s.write(Buffer.concat([len, body])));
      s.on("data", (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 10) done(buf.readInt32BE(4) === 4242 && buf.readInt16BE(8) === 0);
      });
    ' "$HOST" "$PORT" ${KAFKA_PROBE_CA:+"$KAFKA_PROBE_CA" "$KAFKA_PROBE_CERT" "$KAFKA_PROBE_KEY"} 2>/dev/null
  else
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
  fi
}

# PIDs of our broker: from the pid file if it is alive and really ours, else
# any java running kafka.Kafka with our config path (stale or missing pid file).
broker_pids() {
  local pid
  if [[ -s "$PID_FILE" ]]; then
    pid="$(cat "$PID_FILE")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
       && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka\.Kafka $CONFIG"; then
      echo "$pid"
      return 0
    fi
  fi
  pgrep -f -- "kafka\.Kafka $CONFIG" 2>/dev/null || true
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local t0; t0="$(now_ms)"
  if broker_answers; then
    log "a Kafka broker already answers on $HOST:$PORT; reusing it"
    return 0
  fi
  if [[ -n "$(broker_pids)" ]]; then
    # Ours, but not answering (still starting, or wedged): wait for it, else restart it.
    log "our broker process exists but does not answer yet; waiting"
    if wait_ready "$t0" 0; then return 0; fi
    log "it did not become ready; stopping it and starting afresh"
    cmd_down
  fi
  if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
    die "$HOST:$PORT is taken by something that does not speak Kafka; free the port or set KAFKA_PORT"
  fi
  if (exec 3<>"/dev/tcp/$HOST/$CONTROLLER_PORT") 2>/dev/null; then
    die "controller port $HOST:$CONTROLLER_PORT is taken; free it or set KAFKA_CONTROLLER_PORT"
  fi

  require_java
  ensure_libs
  write_config
  format_storage

  # Keep the previous run's log for post-mortems; readiness looks at this run's log only.
  [[ -f "$SERVER_LOG" ]] && mv -f "$SERVER_LOG" "$SERVER_LOG.prev"
  : >"$SERVER_LOG"
  local t_launch; t_launch="$(now_ms)"
  # shellcheck disable=SC2086 # HEAP_OPTS is a list of JVM flags
  setsid nohup "$JAVA" $HEAP_OPTS -server \
      -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$LOG4J_CONFIG" -Dkafka.logs.dir="$APP_LOG_DIR" \
      -cp "$(classpath)" kafka.Kafka "$CONFIG" \
      >"$STDOUT_LOG" 2>&1 </dev/null 9>&- &
  echo $! >"$PID_FILE"
  log "started kafka.Kafka $KAFKA_VERSION (pid $(cat "$PID_FILE")), data in $DATA_DIR"
  if wait_ready "$t0" "$t_launch"; then
    return 0
  fi
  log "broker failed to start (see above); last 50 lines of $SERVER_LOG:"
  tail -n 50 "$SERVER_LOG" >&2 || true
  if [[ -s "$STDOUT_LOG" ]]; then log "last lines of $STDOUT_LOG:"; tail -n 20 "$STDOUT_LOG" >&2; fi
  cmd_down || true
  exit 1
}

# A process we just launched is alive while it exists and is not a zombie. Its
# command line is not checked: between fork and exec it is still "bash kafka.sh",
# and on a loaded machine the first check can fall in that window (CI once read
# it as "exited during start-up" and then stopped the very broker it had started).
launched_alive() {
  kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]
}

# Ready = the broker logged that it started (it is unfenced and serves
# metadata) AND answers an ApiVersions request on the PLAINTEXT port.
wait_ready() {
  local t0="$1" t_launch="$2" deadline=$(( $(date +%s) + START_TIMEOUT ))
  local launched=""
  [[ "$t_launch" != 0 ]] && launched="$(cat "$PID_FILE")"
  while (( $(date +%s) < deadline )); do
    if [[ -n "$launched" ]] && ! launched_alive "$launched"; then
      log "broker process exited during start-up"
      return 1
    fi
    if [[ -z "$launched" && -z "$(broker_pids)" ]]; then
      log "broker process exited during start-up"
      return 1
    fi
    if grep -q 'Kafka Server started' "$SERVER_LOG" 2>/dev/null && broker_answers; then
      if [[ "$t_launch" != 0 ]]; then
        log "ready on $HOST:$PORT: broker start $(elapsed "$t_launch") s, total 'up' $(elapsed "$t0") s"
      else
        log "ready on $HOST:$PORT after $(elapsed "$t0") s"
      fi
      return 0
    fi
    sleep 0.25
  done
  log "broker not ready within ${START_TIMEOUT}s (KAFKA_START_TIMEOUT)"
  return 1
}

cmd_down() {
  local pids
  pids="$(broker_pids)"
  if [[ -z "$pids" ]]; then
    rm -f "$PID_FILE"
    if broker_answers; then
      log "no broker of ours is running, but something answers on $HOST:$PORT (not started by this script; left alone)"
    else
      log "not running"
    fi
    return 0
  fi
  log "stopping broker (pid ${pids//$'\n'/ })"
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  local deadline=$(( $(date +%s) + STOP_TIMEOUT ))
  while (( $(date +%s) < deadline )); do
    local alive=""
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    if [[ -z "$alive" ]]; then
      rm -f "$PID_FILE"
      log "stopped"
      return 0
    fi
    sleep 0.25
  done
  log "still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  for _ in $(seq 1 40); do
    local alive=""
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [[ -z "$alive" ]] && break
    sleep 0.25
  done
  rm -f "$PID_FILE"
  log "killed"
}

cmd_status() {
  local pids; pids="$(broker_pids)"
  if broker_answers; then
    if [[ -n "$pids" ]]; then
      echo "running: Kafka $KAFKA_VERSION on $HOST:$PORT (pid ${pids//$'\n'/ }), data $DATA_DIR"
    else
      echo "running: a Kafka broker answers on $HOST:$PORT (not started by this script)"
    fi
    return 0
  fi
  if [[ -n "$pids" ]]; then
    echo "starting or unresponsive: pid ${pids//$'\n'/ }, not answering on $HOST:$PORT"
  else
    echo "not running"
  fi
  return 1
}

cmd_logs() {
  [[ -f "$SERVER_LOG" ]] || die "no log yet at $SERVER_LOG"
  if [[ "${1:-}" == "-f" ]]; then
    exec tail -n 50 -F "$SERVER_LOG"
  fi
  tail -n "${1:-100}" "$SERVER_LOG"
}

cmd_reset() {
  cmd_down
  log "deleting $DATA_DIR"
  rm -rf "$DATA_DIR"
}

usage() {
  sed -n '2,39p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# Serialise up/down/restart/reset of one data dir (parallel CI jobs, test hooks).
# The broker itself must not inherit the lock fd (it is closed with 9>&- at launch).
lock() {
  mkdir -p "$DATA_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$DATA_DIR/.lock"
    flock -w $(( START_TIMEOUT + STOP_TIMEOUT + 60 )) 9 || die "timed out waiting for another kafka.sh on $DATA_DIR"
  fi
}

case "${1:-}" in
  up|start) lock; cmd_up ;;
  down|stop) lock; cmd_down ;;
  restart) lock; cmd_down; cmd_up ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  reset) lock; cmd_reset ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
