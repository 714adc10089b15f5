#!/usr/bin/env bash
# deploy/stack.sh - the local stack on loopback: a real single-node KRaft Apache
# Kafka, a real Redis, a SoftHSM2 token, the topics, and the project's binaries.
#
#   bash deploy/stack.sh start           start what is not running, reuse what is
#   bash deploy/stack.sh stop            stop what this script started (pid files)
#   bash deploy/stack.sh stop --purge    ... and wipe var/kafka, var/redis and var/spool
#   bash deploy/stack.sh reset           same as stop --purge
#   bash deploy/stack.sh restart         stop, then start
#   bash deploy/stack.sh status          a table of what runs
#
# All state is under var/ (GOV_VAR_DIR): kafka/ redis/ softhsm/ run/*.pid
# log/*.log and stack.env (GOV_*=value lines with every address used).
#
# Overrides (environment): GOV_VAR_DIR, GOV_KAFKA_PORT (19092),
# GOV_KAFKA_CONTROLLER_PORT (19093), GOV_REDIS_PORT (6390), GOV_GATEWAY_PORT
# (8780), GOV_KAFKA_LIBS, GOV_BIN_DIR (build/release/bin), GOV_KAFKA_HEAP_OPTS,
# GOV_HOT_WINDOW (a bench setting: the hot window Redis keeps - decision TTL,
# event id window and the age of the audit tail before gov-archive trims it; see
# write_env and check_dedup_window), GOV_DECISIONS_RETENTION_MS (policy.decisions'
# retention.ms, 518400000 = 6 days; a positive number of ms, and start refuses one
# that gov-audit's event_id_window, GOV_EVENT_ID_WINDOW, does not cover).
set -euo pipefail

# --- services: binary name and admin HTTP port (/healthz, /readyz, /metrics) --
# Started in this order after the infrastructure, stopped in reverse order.
# A binary that is not built (missing from GOV_BIN_DIR) is skipped.
# To add a service, add a line.
SERVICES=(
  "gov-constitution     8701"
  "gov-rulepacks        8702"
  "gov-identity         8703"
  "gov-audit            8704"
  "gov-somabrain-sync   8705"
  "gov-archive          8706"
  "gov-edge             8700"
)

# --- Kafka topics (docs/contracts.md, "Kafka topics"); each also gets a <topic>.dlq twin ---
TOPICS=(
  constitution.bundles
  constitution.updated
  policy.rulepacks
  policy.rulepacks.updated
  policy.decisions
  identity.tokens
  identity.keys
  identity.clients
  identity.audit
)
TOPIC_PARTITIONS=3
TOPIC_REPLICATION=1
# What each state topic keeps (docs/contracts.md, "Retention"): Redis is a
# view rebuilt from these, so they keep their whole history. Not compacted:
# the constitution and rule pack histories (anti-rollback) and the audit
# chain need every event, not the latest per tenant. identity.keys is keyed
# by key id, where the latest KeyRotated per key suffices. Topics not named
# keep the broker's default (7 days): constitution.updated only says when to
# re-read Redis; the .dlq twins are for operators. identity.clients keeps
# everything, not compacted: a removal (the tombstone that makes it final)
# must never be cleaned away, and clients are few. identity.tokens keeps 7
# days: longer than the longest token lifetime gov-edge may issue, so a
# rebuild of Redis restores every token and revocation still in force.
# policy.decisions is only the input of gov-audit's relay (its progress is the
# consumer group's offsets, never Redis; the chain is rebuilt from
# identity.audit), so it keeps GOV_DECISIONS_RETENTION_MS (default 6 days) with
# 1-day segments. A relay group that lost its offsets copies the retained
# decisions again; each copy carries its source partition/offset
# (x-gov-relay-source, authenticated with the relay key, ensure_relay_key) and
# the chain drops one at or below its mark whatever its age (docs/contracts.md, "Exactly once in the chain"). The time window
# still guards what carries no stamp (copies relayed before stamps, an edge
# spool's resend), so start refuses an event_id_window shorter than retention
# + one segment (check_dedup_window). That is not a bound on a record's age -
# Kafka never deletes a partition's active segment, so a quiet partition keeps
# a record until the next append rolls it - which is why stamped copies do
# not rely on it.
# identity.audit keeps everything: a rebuild of Redis chains a tenant from
# genesis at the partition's first retained event, so a trimmed identity.audit
# could not reproduce the chain (docs/contracts.md, "Retention").
# identity.keys takes the broker's append time as each record's timestamp
# (LogAppendTime): gov-identity judges an unknown kid's freshness by it, and
# a producer-chosen CreateTime would let a replay choose its own age.
# policy.decisions' segment.ms in TOPIC_CONFIGS below (spelled out there:
# tests/compose/check.sh reads that list alone), for check_dedup_window
DECISIONS_SEGMENT_MS=86400000
# 0 or -1 would be accepted by Kafka: 0 deletes decisions before the relay
# copies them once a segment rolls, -1 keeps them longer than any window
[[ ${GOV_DECISIONS_RETENTION_MS:-518400000} =~ ^[1-9][0-9]{0,14}$ ]] || { echo "stack.sh: GOV_DECISIONS_RETENTION_MS must be a positive number of ms (not 0 or -1)" >&2; exit 2; }
TOPIC_CONFIGS=(
  "constitution.bundles=retention.ms=-1,retention.bytes=-1"
  "policy.rulepacks=retention.ms=-1,retention.bytes=-1"
  "policy.decisions=retention.ms=${GOV_DECISIONS_RETENTION_MS:-518400000},retention.bytes=-1,segment.ms=86400000"
  "identity.audit=retention.ms=-1,retention.bytes=-1"
  "identity.keys=cleanup.policy=compact,retention.ms=-1,message.timestamp.type=LogAppendTime"
  "identity.clients=retention.ms=-1,retention.bytes=-1"
  "identity.tokens=retention.ms=604800000,retention.bytes=-1"
)

# --- settings ---------------------------------------------------------------
HOST=127.0.0.1
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
VAR="$(realpath -m "${GOV_VAR_DIR:-$ROOT/var}")"
BIN_DIR="$(realpath -m "${GOV_BIN_DIR:-$ROOT/build/release/bin}")"
KAFKA_VERSION=3.9.1
KAFKA_LIBS="${GOV_KAFKA_LIBS:-${HOME:-/root}/.cache/soma-gov/kafka-$KAFKA_VERSION/libs}"
# GOV_PORT_OFFSET shifts every default port at once, so a second stack (a CI
# check in a clone, a benchmark) can run beside the first.
PORT_OFFSET="${GOV_PORT_OFFSET:-0}"
[[ $PORT_OFFSET =~ ^[0-9]+$ ]] || { echo "stack.sh: GOV_PORT_OFFSET must be a number" >&2; exit 2; }
KAFKA_PORT="${GOV_KAFKA_PORT:-$((19092 + PORT_OFFSET))}"
KAFKA_CONTROLLER_PORT="${GOV_KAFKA_CONTROLLER_PORT:-$((19093 + PORT_OFFSET))}"
REDIS_PORT="${GOV_REDIS_PORT:-$((6390 + PORT_OFFSET))}"
GATEWAY_PORT="${GOV_GATEWAY_PORT:-$((8780 + PORT_OFFSET))}"
BUNDLE_PORT="${GOV_BUNDLE_SERVER_PORT:-$((8790 + PORT_OFFSET))}"
KAFKA_HEAP_OPTS="${GOV_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_READY_TIMEOUT=90
REDIS_READY_TIMEOUT=20
SERVICE_READY_TIMEOUT=20
STOP_TIMEOUT=15
TOKEN_LABEL=soma-gov

RUN="$VAR/run"
LOG="$VAR/log"
ENV_FILE="$VAR/stack.env"
KAFKA_DIR="$VAR/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_LOG4J="$KAFKA_DIR/log4j.properties"
TOOLS_LOG4J="$KAFKA_DIR/tools-log4j.properties"
REDIS_DIR="$VAR/redis"
HSM_DIR="$VAR/softhsm"
HSM_CONF="$HSM_DIR/softhsm2.conf"
HSM_PINS="$HSM_DIR/pins.env"
KEYS_DIR="$VAR/keys"        # the stack's signing-key store (file backend)
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

say()  { printf '==> %s\n' "$*"; }
warn() { printf 'stack.sh: warning: %s\n' "$*" >&2; }
die()  { printf 'stack.sh: error: %s\n' "$*" >&2; exit 1; }

# Prints the last lines of each log given, to stderr.
show_logs() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    printf -- '---- last lines of %s ----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

for p in KAFKA_PORT KAFKA_CONTROLLER_PORT REDIS_PORT GATEWAY_PORT; do
  if ! [[ ${!p} =~ ^[0-9]+$ ]] || (( ${!p} < 1 || ${!p} > 65535 )); then
    die "GOV_$p=${!p} is not a port number"
  fi
done

# service line -> name / port / env suffix (gov-somabrain-sync -> SOMABRAIN_SYNC)
svc_name() { local n p; read -r n p <<<"$1"; printf '%s' "$n"; }
svc_port() { local n p; read -r n p <<<"$1"; printf '%s' "$((p + PORT_OFFSET))"; }
svc_env()  { local n="${1#gov-}"; n="${n^^}"; printf '%s' "${n//-/_}"; }

# --- processes ----------------------------------------------------------------

pidfile() { printf '%s/%s.pid' "$RUN" "$1"; }

read_pid() {
  local f; f="$(pidfile "$1")"
  [[ -s $f ]] || return 1
  local pid; pid="$(head -n1 "$f")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  printf '%s' "$pid"
}

cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# 0 while pid runs. A zombie counts as gone: the process has exited, only
# its reaping is pending (PID 1 of a container may reap late or never).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ ${stat:0:1} != Z ]]
}

# What identifies each component's process (guards against pid reuse).
matches() { # component pid
  local name=$1 pid=$2 cmd
  alive "$pid" || return 1
  cmd="$(cmdline_of "$pid")" || return 1
  # our spawn wrapper, between writing the pid file and exec'ing the command
  [[ $cmd == *"soma-gov-spawn $(pidfile "$name") "* ]] && return 0
  case $name in
    kafka) [[ $cmd == *kafka.Kafka* && $cmd == *"$KAFKA_PROPS"* ]] ;;
    redis) [[ $cmd == *redis-server* && ( $cmd == *":$REDIS_PORT "* || $cmd == *"--port $REDIS_PORT "* ) ]] ;;
    *)     local exe; exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
           [[ ${exe% (deleted)} == "$BIN_DIR/$name" || ${exe% (deleted)} == */"$name" ]] ;;
  esac
}

# Prints the pid when the component runs (per its pid file); removes a stale
# pid file. Returns 1 when it does not run.
running_pid() {
  local pid
  pid="$(read_pid "$1")" || { rm -f "$(pidfile "$1")"; return 1; }
  if matches "$1" "$pid"; then printf '%s' "$pid"; return 0; fi
  rm -f "$(pidfile "$1")"
  return 1
}

# spawn NAME LOGFILE CMD...: runs CMD in its own session, detached from the
# terminal, stdout/stderr to LOGFILE, and writes its pid to var/run/NAME.pid.
# Inherited file descriptors (the stack lock, make's jobserver) are closed.
spawn() {
  local name=$1 log=$2; shift 2
  local pf; pf="$(pidfile "$name")"
  rm -f "$pf"
  printf '\n---- %s: start %s\n' "$(date -u +%FT%TZ)" "$name" >>"$log"
  setsid bash -c '
    pf=$1; shift
    for fd in /proc/$$/fd/*; do
      n=${fd##*/}
      if [ "$n" -gt 2 ] 2>/dev/null; then eval "exec $n>&-" 2>/dev/null; fi
    done
    echo $$ >"$pf.tmp" && mv -f "$pf.tmp" "$pf"
    exec "$@"' soma-gov-spawn "$pf" "$@" >>"$log" 2>&1 </dev/null &
  local i pid=""
  for (( i = 0; i < 250; i++ )); do
    [[ -s $pf ]] && { pid="$(head -n1 "$pf")"; break; }
    sleep 0.02
  done
  [[ -n $pid ]] || die "$name did not start (no pid file); see $log"
  # Wait until the wrapper has exec'ed the command (or the command died).
  for (( i = 0; i < 250; i++ )); do
    alive "$pid" || return 0
    [[ "$(cmdline_of "$pid")" == *soma-gov-spawn* ]] || return 0
    sleep 0.02
  done
}

# 0 when something accepts TCP connections on HOST:port.
port_open() {
  timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

ensure_port_free() { # port what
  if port_open "$1"; then
    die "$HOST:$1 is already in use by a process this script did not start ($2); stop it or choose another port (see the overrides at the top of deploy/stack.sh)"
  fi
}

# stop_all NAME...: SIGTERM to every one that runs, wait up to STOP_TIMEOUT
# seconds for all, then SIGKILL what is left.
stop_all() {
  local name pid
  local -a names=() pids=()
  for name in "$@"; do
    if pid="$(running_pid "$name")"; then
      say "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      names+=("$name"); pids+=("$pid")
    fi
  done
  [[ ${#pids[@]} -gt 0 ]] || return 0
  local deadline=$(( SECONDS + STOP_TIMEOUT )) still i
  while :; do
    still=0
    for i in "${!pids[@]}"; do
      alive "${pids[$i]}" && still=1
    done
    [[ $still -eq 0 || $SECONDS -ge $deadline ]] && break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    if alive "${pids[$i]}"; then
      warn "${names[$i]} (pid ${pids[$i]}) did not stop within ${STOP_TIMEOUT}s; SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
    rm -f "$(pidfile "${names[$i]}")"
  done
}

# --- prerequisites --------------------------------------------------------------

ensure_prereqs() {
  local c
  for c in "$JAVA" kcat redis-server redis-cli softhsm2-util curl setsid flock; do
    if ! command -v "$c" >/dev/null 2>&1; then
      say "$c not found; running deploy/install-deps.sh --all"
      bash "$SCRIPT_DIR/install-deps.sh" --all
      break
    fi
  done
  # Fetches the Kafka jars unless they are cached (a cheap check when they are).
  bash "$SCRIPT_DIR/install-deps.sh" --kafka
  compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null \
    || die "no Kafka jars in $KAFKA_LIBS (run: bash deploy/install-deps.sh --all)"
}

# --- Kafka ----------------------------------------------------------------------

write_kafka_config() {
  mkdir -p "$KAFKA_DATA"
  local tmp="$KAFKA_PROPS.tmp"
  cat >"$tmp" <<EOF
# Generated by deploy/stack.sh; edits are overwritten on every start.
# Single-node KRaft: this process is both broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=$TOPIC_PARTITIONS
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF
  mv -f "$tmp" "$KAFKA_PROPS"

  cat >"$KAFKA_LOG4J" <<EOF
# Generated by deploy/stack.sh. Broker log: $LOG/kafka.log
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$LOG/kafka.log
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel\$=WARN
EOF

  cat >"$TOOLS_LOG4J" <<EOF
# Generated by deploy/stack.sh. For the Kafka command-line tools: warnings to stderr.
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

kafka_tool() { # class args...
  local class=$1; shift
  "$JAVA" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss1m \
    -Dlog4j.configuration="file:$TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" "$class" "$@"
}

format_kafka_storage() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
  local cid
  if [[ -s "$KAFKA_DIR/cluster.id" ]]; then
    cid="$(cat "$KAFKA_DIR/cluster.id")"
  else
    cid="$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"$LOG/kafka-tools.log")" \
      || die "kafka.tools.StorageTool random-uuid failed; see $LOG/kafka-tools.log"
    cid="$(tr -d '[:space:]' <<<"$cid")"
    printf '%s\n' "$cid" >"$KAFKA_DIR/cluster.id"
  fi
  say "formatting Kafka storage (cluster id $cid) in $KAFKA_DATA"
  kafka_tool kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_PROPS" \
    >>"$LOG/kafka-tools.log" 2>&1 \
    || { show_logs "$LOG/kafka-tools.log"; die "formatting the Kafka storage failed"; }
}

# 0 when the broker answers a metadata request and lists itself (node 1).
kafka_ready() {
  timeout 10 kcat -b "$HOST:$KAFKA_PORT" -L -m 3 -t __soma_gov_probe 2>/dev/null \
    | grep -q "broker 1 at $HOST:$KAFKA_PORT"
}

start_kafka() {
  write_kafka_config
  local pid
  if pid="$(running_pid kafka)"; then
    say "Kafka already running (pid $pid), reusing"
  else
    ensure_port_free "$KAFKA_PORT" "Kafka, GOV_KAFKA_PORT"
    ensure_port_free "$KAFKA_CONTROLLER_PORT" "Kafka controller, GOV_KAFKA_CONTROLLER_PORT"
    format_kafka_storage
    say "starting Kafka $KAFKA_VERSION (KRaft) on $HOST:$KAFKA_PORT, controller $HOST:$KAFKA_CONTROLLER_PORT"
    # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of JVM options
    spawn kafka "$LOG/kafka.out" "$JAVA" $KAFKA_HEAP_OPTS \
      -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
      -XX:ErrorFile="$LOG/kafka-hs_err_%p.log" \
      -Djava.awt.headless=true -Dkafka.logs.dir="$LOG" \
      -Dlog4j.configuration="file:$KAFKA_LOG4J" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS"
  fi
  local deadline=$(( SECONDS + KAFKA_READY_TIMEOUT ))
  until kafka_ready; do
    if ! running_pid kafka >/dev/null; then
      show_logs "$LOG/kafka.out" "$LOG/kafka.log"
      die "Kafka exited during startup"
    fi
    if (( SECONDS >= deadline )); then
      show_logs "$LOG/kafka.out" "$LOG/kafka.log"
      die "Kafka did not answer metadata requests on $HOST:$KAFKA_PORT within ${KAFKA_READY_TIMEOUT}s (it is still running: bash deploy/stack.sh stop)"
    fi
    sleep 0.25
  done
}

# Topic names the broker knows, one a line.
list_topics() {
  timeout 10 kcat -b "$HOST:$KAFKA_PORT" -L -m 5 2>/dev/null \
    | sed -n 's/^ *topic "\([^"]*\)" with \([0-9]*\) partitions.*/\1 \2/p'
}

# create_topics TOPIC...: one JVM and one CreateTopics request
# (deploy/kafka/CreateTopics.java through Java's source launcher). A Java
# without the jdk.compiler module cannot launch source files; then Kafka's own
# TopicCommand runs once per topic, a few in parallel.
create_topics() {
  if "$JAVA" --list-modules 2>/dev/null | grep -q '^jdk\.compiler@'; then
    kafka_tool "$SCRIPT_DIR/kafka/CreateTopics.java" \
      "$HOST:$KAFKA_PORT" "$TOPIC_PARTITIONS" "$TOPIC_REPLICATION" "$@"
    return
  fi
  local jobs; jobs="$(nproc 2>/dev/null || echo 2)"; (( jobs > 4 )) && jobs=4
  export -f kafka_tool
  export JAVA TOOLS_LOG4J KAFKA_LIBS HOST KAFKA_PORT TOPIC_PARTITIONS TOPIC_REPLICATION
  printf '%s\n' "$@" \
    | xargs -P "$jobs" -I{} bash -c 'kafka_tool org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$HOST:$KAFKA_PORT" --create --if-not-exists --topic "$1" \
        --partitions "$TOPIC_PARTITIONS" --replication-factor "$TOPIC_REPLICATION"' _ {}
}

# ensure_topic_configs: sets TOPIC_CONFIGS on the topics, new or existing
# (an older stack's topics get them too). Idempotent; skipped when the
# settings recorded in $KAFKA_DIR/topic-configs.applied are these for this
# broker's cluster, so a restart starts no JVM for it.
ensure_topic_configs() {
  local marker="$KAFKA_DIR/topic-configs.applied" want
  want="$(cat "$KAFKA_DIR/cluster.id" 2>/dev/null) ${TOPIC_CONFIGS[*]}"
  [[ -f $marker && "$(cat "$marker")" == "$want" ]] && { say "topic retention: as configured"; return 0; }
  say "setting topic retention: ${TOPIC_CONFIGS[*]}"
  if "$JAVA" --list-modules 2>/dev/null | grep -q '^jdk\.compiler@'; then
    kafka_tool "$SCRIPT_DIR/kafka/TopicConfigs.java" "$HOST:$KAFKA_PORT" "${TOPIC_CONFIGS[@]}" \
      >>"$LOG/kafka-tools.log" 2>&1 || { show_logs "$LOG/kafka-tools.log"; die "setting topic retention failed"; }
  else
    local tc
    for tc in "${TOPIC_CONFIGS[@]}"; do
      kafka_tool kafka.admin.ConfigCommand --bootstrap-server "$HOST:$KAFKA_PORT" --alter \
        --entity-type topics --entity-name "${tc%%=*}" --add-config "${tc#*=}" \
        >>"$LOG/kafka-tools.log" 2>&1 || { show_logs "$LOG/kafka-tools.log"; die "setting retention of ${tc%%=*} failed"; }
    done
  fi
  printf '%s\n' "$want" >"$marker"
}

ensure_topics() {
  local -a want=() missing=()
  local t
  for t in "${TOPICS[@]}"; do want+=("$t" "$t.dlq"); done
  local have; have="$(list_topics)"
  for t in "${want[@]}"; do
    grep -q "^$t " <<<"$have" || missing+=("$t")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    say "topics: all ${#want[@]} present"
  else
    say "creating ${#missing[@]} topics ($TOPIC_PARTITIONS partitions, RF $TOPIC_REPLICATION): ${missing[*]}"
    create_topics "${missing[@]}" >>"$LOG/kafka-tools.log" 2>&1 \
      || { show_logs "$LOG/kafka-tools.log"; die "creating topics failed"; }
    # The broker's metadata cache follows the controller within moments.
    local deadline=$(( SECONDS + 15 ))
    while :; do
      have="$(list_topics)"; missing=()
      for t in "${want[@]}"; do grep -q "^$t " <<<"$have" || missing+=("$t"); done
      [[ ${#missing[@]} -eq 0 ]] && break
      (( SECONDS >= deadline )) && die "topics still missing after creation: ${missing[*]}"
      sleep 0.2
    done
  fi
  local name n
  while read -r name n; do
    for t in "${want[@]}"; do
      if [[ $name == "$t" && $n != "$TOPIC_PARTITIONS" ]]; then
        warn "topic $t has $n partitions (expected $TOPIC_PARTITIONS)"
      fi
    done
  done <<<"$have"
}

# --- Redis ----------------------------------------------------------------------

redis_ready() {
  [[ "$(timeout 3 redis-cli -h "$HOST" -p "$REDIS_PORT" PING 2>/dev/null)" == PONG ]]
}

start_redis() {
  mkdir -p "$REDIS_DIR"
  local pid
  if pid="$(running_pid redis)"; then
    say "Redis already running (pid $pid), reusing"
  else
    ensure_port_free "$REDIS_PORT" "Redis, GOV_REDIS_PORT"
    say "starting Redis on $HOST:$REDIS_PORT (append-only file in $REDIS_DIR)"
    spawn redis "$LOG/redis.log" redis-server \
      --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
      --daemonize no --supervised no --pidfile "" --logfile "" \
      --dir "$REDIS_DIR" --save "" --appendonly yes --appendfsync everysec
  fi
  local deadline=$(( SECONDS + REDIS_READY_TIMEOUT ))
  until redis_ready; do
    if ! running_pid redis >/dev/null; then
      show_logs "$LOG/redis.log"; die "Redis exited during startup"
    fi
    if (( SECONDS >= deadline )); then
      show_logs "$LOG/redis.log"; die "Redis did not answer PING on $HOST:$REDIS_PORT within ${REDIS_READY_TIMEOUT}s"
    fi
    sleep 0.1
  done
}

# --- SoftHSM2 -------------------------------------------------------------------

pkcs11_module() {
  local m
  for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do
    [[ -f $m ]] && { printf '%s' "$m"; return 0; }
  done
  return 1
}

random_pin() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }

hsm_token_present() {
  SOFTHSM2_CONF="$HSM_CONF" softhsm2-util --show-slots 2>/dev/null \
    | grep -Eq "^[[:space:]]*Label:[[:space:]]+${TOKEN_LABEL}[[:space:]]*$"
}

ensure_softhsm() {
  mkdir -p "$HSM_DIR/tokens"
  chmod 0700 "$HSM_DIR" "$HSM_DIR/tokens"
  if [[ ! -f $HSM_CONF ]]; then
    cat >"$HSM_CONF" <<EOF
# Generated by deploy/stack.sh: the local stack's SoftHSM2 token store.
directories.tokendir = $HSM_DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
  fi
  pkcs11_module >/dev/null || die "libsofthsm2.so not found (package softhsm2)"
  local present=0
  hsm_token_present && present=1
  if [[ $present -eq 1 && ! -s $HSM_PINS ]]; then
    warn "token $TOKEN_LABEL exists but $HSM_PINS is gone: its PINs are lost; re-creating the token"
    SOFTHSM2_CONF="$HSM_CONF" softhsm2-util --delete-token --token "$TOKEN_LABEL" >/dev/null
    present=0
  fi
  if [[ ! -s $HSM_PINS ]]; then
    ( umask 077
      printf 'GOV_PKCS11_SO_PIN=%s\nGOV_PKCS11_PIN=%s\n' "$(random_pin)" "$(random_pin)" >"$HSM_PINS" )
  fi
  chmod 0600 "$HSM_PINS"
  if [[ $present -eq 0 ]]; then
    local so user
    so="$(sed -n 's/^GOV_PKCS11_SO_PIN=//p' "$HSM_PINS")"
    user="$(sed -n 's/^GOV_PKCS11_PIN=//p' "$HSM_PINS")"
    say "initializing SoftHSM2 token \"$TOKEN_LABEL\" in $HSM_DIR/tokens"
    SOFTHSM2_CONF="$HSM_CONF" softhsm2-util --init-token --free --label "$TOKEN_LABEL" \
      --so-pin "$so" --pin "$user" >>"$LOG/softhsm.log" 2>&1 \
      || { show_logs "$LOG/softhsm.log"; die "softhsm2-util --init-token failed"; }
  else
    say "SoftHSM2 token \"$TOKEN_LABEL\" present"
  fi
}

# --- signing keys -----------------------------------------------------------------

# The file key store of the stack (GOV_SIGNER_KEY_DIR): 0700, one <kid>.pem
# (0600) per key; gov_keystore refuses a directory open to group or others.
ensure_key_store() {
  mkdir -p "$KEYS_DIR"
  chmod 0700 "$KEYS_DIR"
}

# When the key store has no current key, the very first one: `govctl keys
# rotate --activate-in 0` (published active at once), after gov-identity is
# up, then waits until it is in the JWKS gov-identity materializes.  With a
# current key, govctl refuses --activate-in 0 (key_activation_too_soon)
# before generating anything: nothing to do.  Later rotations are
# gov-identity's (GOV_KEY_ROTATION_PERIOD_S) or an operator's.
# The readyz "signing" component of the stack's gov-edge: "ok", or
# "<state>: <detail>"; "" when the edge does not answer or has none.
edge_signing_state() {
  local port
  port="$(svc_port_of gov-edge)" || return 0
  curl -s --max-time 1 "http://$HOST:$port/readyz" 2>/dev/null \
    | jq -r '.components[]? | select(.name == "signing")
             | if .state == "ok" then "ok" else "\(.state): \(.detail // "")" end' 2>/dev/null || true
}

# The current (pending or active) kids of Redis whose record carries no
# signatures: written before identity events were signed (an old var/).
# gov-edge re-verifies every key record and never signs with such a key,
# yet `govctl keys rotate` counts it as current.
unsigned_current_kids() {
  local govctl="$BIN_DIR/govctl" kid sigs
  ( set -a; . "$ENV_FILE"; set +a; "$govctl" keys list 2>/dev/null ) \
    | jq -r 'select(.state == "pending" or .state == "active") | .kid' 2>/dev/null \
    | while read -r kid; do
        sigs="$(redis-cli -h "$HOST" -p "$REDIS_PORT" --raw HGET "identity:{keys}:key:$kid" signatures 2>/dev/null)"
        [[ -z $sigs ]] && echo "$kid"
      done
}

# The store already has a current key (key_activation_too_soon): fine only
# if gov-edge can sign with it.  An unsigned key left by an old var/ is
# retired (it is unusable: nothing trusts its record) and a first key made
# again; any other reason the edge cannot sign stops the start, with the
# edge's own words.
bootstrap_check_current_key() {
  local govctl="$BIN_DIR/govctl" state="" kid out deadline
  [[ " ${STARTED_SERVICES[*]} " == *" gov-edge "* ]] || return 0
  deadline=$(( SECONDS + SERVICE_READY_TIMEOUT ))
  while (( SECONDS < deadline )); do
    state="$(edge_signing_state)"
    [[ $state == ok ]] && return 0
    sleep 0.2
  done
  local -a unsigned=()
  mapfile -t unsigned < <(unsigned_current_kids)
  if (( ${#unsigned[@]} == 0 )); then
    die "gov-edge cannot sign with the current key of $KEYS_DIR (readyz signing: ${state:-no answer}); see $LOG/gov-edge.log and \`govctl keys list\`"
  fi
  for kid in "${unsigned[@]}"; do
    say "current key $kid in Redis is unsigned (a var/ from before signed identity events): retiring it"
    out="$( set -a; . "$ENV_FILE"; set +a; "$govctl" keys retire "$kid" 2>&1 )" \
      || die "govctl keys retire $kid failed: $out (or start from an empty var/: bash deploy/stack.sh stop; rm -rf var)"
    deadline=$(( SECONDS + SERVICE_READY_TIMEOUT ))
    until [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" --raw HGET "identity:{keys}:key:$kid" state 2>/dev/null)" == retired ]]; do
      (( SECONDS < deadline )) || die "key $kid was not retired within ${SERVICE_READY_TIMEOUT}s"
      sleep 0.1
    done
  done
  BOOTSTRAP_AGAIN=1
}

bootstrap_signing_key() {
  local govctl="$BIN_DIR/govctl" out rc kid deadline
  [[ -x "$govctl" && -x "$BIN_DIR/gov-identity" ]] || return 0
  set +e
  out="$( set -a; . "$ENV_FILE"; set +a; "$govctl" keys rotate --activate-in 0 2>&1 )"
  rc=$?
  set -e
  if (( rc != 0 )); then
    [[ $out == *key_activation_too_soon* ]] || die "govctl keys rotate --activate-in 0 failed: $out"
    BOOTSTRAP_AGAIN=0
    bootstrap_check_current_key
    (( BOOTSTRAP_AGAIN )) || return 0
    out="$( set -a; . "$ENV_FILE"; set +a; "$govctl" keys rotate --activate-in 0 2>&1 )" \
      || die "govctl keys rotate --activate-in 0 failed after retiring the unsigned key: $out"
  fi
  kid="$(sed -n 's/.*"kid":"\([A-Za-z0-9_-]*\)".*/\1/p' <<<"$out")"
  [[ -n $kid ]] || die "govctl keys rotate printed no kid: $out"
  say "first signing key $kid (file store $KEYS_DIR)"
  deadline=$(( SECONDS + SERVICE_READY_TIMEOUT ))
  until redis-cli -h "$HOST" -p "$REDIS_PORT" --raw GET 'identity:{keys}:jwks' 2>/dev/null \
          | grep -q "\"kid\":\"$kid\""; do
    (( SECONDS < deadline )) || die "key $kid did not reach identity:{keys}:jwks within ${SERVICE_READY_TIMEOUT}s"
    sleep 0.1
  done
}

# --- identity trust (docs/contracts.md "Signed identity events") -----------------
# The stack's identity operator: one Ed25519 key (var/identity/operator.key,
# 0600; govctl keygen) that signs every KeyRotated, ClientRegistered and
# ClientRemoved the stack produces - gov-identity's rotator, the first key
# (bootstrap_signing_key) and `govctl clients add` with var/stack.env loaded
# - and the identity trust file that lists it (threshold 1), read by
# gov-identity and every gov-edge.  Kept across restarts, like the demo keys.
IDENTITY_DIR="$VAR/identity"
IDENTITY_SIGNER="stack-identity-operator"
ensure_identity_trust() {
  local govctl="$BIN_DIR/govctl" pub
  [[ -x $govctl ]] || return 0
  mkdir -p "$IDENTITY_DIR"
  chmod 0700 "$IDENTITY_DIR"
  if [[ ! -s "$IDENTITY_DIR/$IDENTITY_SIGNER.key" ]]; then
    "$govctl" keygen --signer "$IDENTITY_SIGNER" --out "$IDENTITY_DIR" >/dev/null \
      || die "govctl keygen of the identity operator key failed"
  fi
  chmod 0600 "$IDENTITY_DIR/$IDENTITY_SIGNER.key"
  pub="$(awk 'BEGIN { ORS = "" } { print $0 "\\n" }' "$IDENTITY_DIR/$IDENTITY_SIGNER.pub")"
  ( umask 077
    printf '{"threshold": 1, "signers": {"%s": "%s"}}\n' "$IDENTITY_SIGNER" "$pub" \
      >"$IDENTITY_DIR/trust.json.tmp" )
  mv -f "$IDENTITY_DIR/trust.json.tmp" "$IDENTITY_DIR/trust.json"
}
# The stack.env lines of the identity trust (write_env).
identity_trust_env() {
  echo "GOV_IDENTITY_TRUST_FILE=${GOV_IDENTITY_TRUST_FILE:-$IDENTITY_DIR/trust.json}"
  echo "GOV_IDENTITY_OPERATOR_KEY_FILE=${GOV_IDENTITY_OPERATOR_KEY_FILE:-$IDENTITY_DIR/$IDENTITY_SIGNER.key}"
}

# The gateway credential (review 11, M1): a random secret that the stack's
# gov-edge requires of /v1/authz (GOV_AUTHZ_GATEWAY_CREDENTIAL_FILE, set for
# gov-edge only) and that only the nginx gateway's check location sends
# (render.sh, GOV_GATEWAY_CREDENTIAL_FILE). Kept across restarts, 0600.
GATEWAY_CREDENTIAL="$VAR/gateway/credential"
ensure_gateway_credential() { ensure_secret_file "$GATEWAY_CREDENTIAL"; }

# ensure_secret_file PATH: 32 random bytes as 64 hex chars in PATH (0600, its
# directory 0700), unless PATH already holds something.
ensure_secret_file() {
  [[ -s $1 ]] && return 0
  mkdir -p "$(dirname "$1")"
  chmod 0700 "$(dirname "$1")"
  ( umask 077; od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$1.tmp" )
  mv -f "$1.tmp" "$1"
}

# The key gov-audit's relay authenticates its source stamps with and its chain checks
# them by (GOV_RELAY_KEY_FILE, docs/contracts.md "Exactly once in the chain"): every
# gov-audit on the same topics needs the same one. Kept across restarts, 0600.
RELAY_KEY="$VAR/relay/relay.key"
ensure_relay_key() { ensure_secret_file "$RELAY_KEY"; }

# --- stack.env ------------------------------------------------------------------

write_env() {
  local tmp="$ENV_FILE.tmp" line parent
  parent="$(ps -o comm= -p "$PPID" 2>/dev/null | tr -c 'A-Za-z0-9_.-' '_' | sed 's/_*$//')" || parent=unknown
  ( umask 077
    {
      echo "GOV_VAR_DIR=$VAR"
      echo "GOV_PORT_OFFSET=$PORT_OFFSET"
      echo "GOV_KAFKA_BROKERS=$HOST:$KAFKA_PORT"
      echo "GOV_KAFKA_CONTROLLER=$HOST:$KAFKA_CONTROLLER_PORT"
      echo "GOV_KAFKA_LIBS=$KAFKA_LIBS"
      echo "GOV_KAFKA_CLUSTER_ID=$(cat "$KAFKA_DIR/cluster.id" 2>/dev/null || true)"
      echo "GOV_REDIS_HOST=$HOST"
      echo "GOV_REDIS_PORT=$REDIS_PORT"
      echo "GOV_EDGE_URL=http://$HOST:$(svc_port_of gov-edge)"
      # what the stack's edges put in (and demand of) every token: the issuer
      # is the edge's own URL, so openid-configuration names reachable endpoints
      echo "GOV_TOKEN_ISSUER=http://$HOST:$(svc_port_of gov-edge)"
      echo "GOV_TOKEN_AUDIENCE=${GOV_TOKEN_AUDIENCE:-soma-governance}"
      echo "GOV_GATEWAY_URL=http://$HOST:$GATEWAY_PORT"
      for line in "${SERVICES[@]}"; do
        echo "GOV_ADMIN_$(svc_env "$(svc_name "$line")")=http://$HOST:$(svc_port "$line")"
      done
      echo "GOV_SIGNER_KEY_DIR=$KEYS_DIR"
      echo "GOV_RELAY_KEY_FILE=$RELAY_KEY"
      # gov-archive's segment files (docs/contracts.md, "The archive"); back it up
      echo "GOV_ARCHIVE_DIR=${GOV_ARCHIVE_DIR:-$VAR/archive}"
      # the local stack cuts segments by size only (segment_entries, 10,000): a test reading
      # its tenant's stream is not trimmed under it; production keeps the 5m default
      echo "GOV_SEGMENT_AGE=${GOV_HOT_WINDOW:-${GOV_SEGMENT_AGE:-24h}}"
      # GOV_HOT_WINDOW (a duration, e.g. 120s; bench/run.sh evaluate-soak): the hot window
      # Redis keeps - gov-audit's decision_ttl and event_id_window and gov-archive's
      # segment_age (how old the chain's tail grows before it is archived and trimmed), so
      # that Redis stays flat under a soak. A bench setting: check_dedup_window says what
      # it gives up
      if [[ -n ${GOV_HOT_WINDOW:-} ]]; then
        echo "GOV_HOT_WINDOW=$GOV_HOT_WINDOW"
        echo "GOV_DECISION_TTL=$GOV_HOT_WINDOW"
        echo "GOV_EVENT_ID_WINDOW=$GOV_HOT_WINDOW"
      fi
      echo "SOFTHSM2_CONF=$HSM_CONF"
      echo "GOV_PKCS11_MODULE=$(pkcs11_module)"
      echo "GOV_PKCS11_TOKEN_LABEL=$TOKEN_LABEL"
      echo "GOV_PKCS11_PIN=$(sed -n 's/^GOV_PKCS11_PIN=//p' "$HSM_PINS")"
      # The demo tenant (deploy/demo.sh): trust of gov-constitution, the local
      # bundle server that gov-somabrain-sync polls.
      echo "GOV_TRUST_FILE=${GOV_TRUST_FILE:-$VAR/demo/trust.json}"
      echo "GOV_RULEPACK_TRUST_FILE=${GOV_RULEPACK_TRUST_FILE:-$VAR/demo/rulepack-trust.json}"
      identity_trust_env
      local default_url="http://$HOST:$BUNDLE_PORT/bundles/{tenant}.json"
      echo "GOV_SOMABRAIN_URL=${GOV_SOMABRAIN_URL:-$default_url}"
      echo "GOV_SOMABRAIN_TENANTS=${GOV_SOMABRAIN_TENANTS:-demo}"
      echo "GOV_BUNDLE_SERVER_PORT=$BUNDLE_PORT"
      echo "GOV_STACK_STARTED_BY=pid:$$,cmd:deploy/stack.sh,parent:${parent:-unknown},user:$(id -un)"
      echo "GOV_STACK_STARTED_AT=$(date -u +%FT%TZ)"
    } >"$tmp" )
  mv -f "$tmp" "$ENV_FILE"
}

svc_port_of() {
  local line
  for line in "${SERVICES[@]}"; do
    [[ $(svc_name "$line") == "$1" ]] && { svc_port "$line"; return 0; }
  done
  return 1
}

# --- services -------------------------------------------------------------------

healthz_code() { # port
  curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$HOST:$1/healthz" 2>/dev/null || true
}

# 0 when the running process is not the binary now in BIN_DIR (rebuilt).
binary_changed() { # name pid
  local exe; exe="$(readlink "/proc/$2/exe" 2>/dev/null)" || return 1
  [[ $exe == *" (deleted)" ]] && return 0
  [[ "$(stat -L -c %d:%i "/proc/$2/exe" 2>/dev/null)" != "$(stat -c %d:%i "$BIN_DIR/$1" 2>/dev/null)" ]]
}

STARTED_SERVICES=()
start_services() {
  local line name port pid
  local -a waiting=()
  for line in "${SERVICES[@]}"; do
    name="$(svc_name "$line")"; port="$(svc_port "$line")"
    if [[ ! -x "$BIN_DIR/$name" ]]; then
      say "$name: not built ($BIN_DIR/$name), skipped"
      continue
    fi
    if pid="$(running_pid "$name")"; then
      if binary_changed "$name" "$pid"; then
        say "$name: binary was rebuilt, restarting"
        stop_all "$name"
      else
        say "$name already running (pid $pid), reusing"
        STARTED_SERVICES+=("$name"); waiting+=("$line")
        continue
      fi
    fi
    ensure_port_free "$port" "$name admin port"
    say "starting $name (admin http://$HOST:$port)"
    # shellcheck source=/dev/null
    ( set -a; . "$ENV_FILE"; set +a
      export GOV_ADMIN_PORT="$port" GOV_PORT="$port"   # gov-edge serves on GOV_PORT
      # gov-edge signs tokens with keys of the stack's file key store
      # (GOV_SIGNER_KEY_DIR from the env file, ensure_key_store); a key signs
      # once `govctl keys rotate` published it (bootstrap_signing_key)
      [[ $name == gov-edge ]] && export GOV_AUTHZ_GATEWAY_CREDENTIAL_FILE="$GATEWAY_CREDENTIAL"
      # gov-edge writes every decision to its durable spool before it answers,
      # so a Kafka outage loses none (docs/contracts.md, Decision spool); the
      # stack's spool is 256 MiB (about 400,000 decisions) unless
      # GOV_STACK_DECISION_SPOOL_BYTES says otherwise - production sizes it for
      # the longest outage it must ride out
      [[ $name == gov-edge ]] && export GOV_DECISION_SPOOL_DIR="$VAR/spool" \
        GOV_DECISION_SPOOL_BYTES="${GOV_STACK_DECISION_SPOOL_BYTES:-268435456}"
      spawn "$name" "$LOG/$name.log" "$BIN_DIR/$name" )
    STARTED_SERVICES+=("$name"); waiting+=("$line")
  done
  # Wait for every one of them (they start in parallel).
  local deadline=$(( SECONDS + SERVICE_READY_TIMEOUT ))
  for line in "${waiting[@]}"; do
    name="$(svc_name "$line")"; port="$(svc_port "$line")"
    until [[ "$(healthz_code "$port")" == 200 ]]; do
      if ! running_pid "$name" >/dev/null; then
        show_logs "$LOG/$name.log"; die "$name exited during startup"
      fi
      if (( SECONDS >= deadline )); then
        show_logs "$LOG/$name.log"
        die "$name: http://$HOST:$port/healthz did not answer 200 within ${SERVICE_READY_TIMEOUT}s"
      fi
      sleep 0.1
    done
  done
}

# --- the nginx gateway (deploy/nginx) ---------------------------------------------
# nginx on GATEWAY_PORT in front of gov-edge: gov-edge's own API (/v1/...,
# /.well-known/...) passes through, everything else goes to the protected
# upstream after gov-edge's /v1/authz allowed it. The upstream is
# GOV_GATEWAY_UPSTREAM (host:port) when set, else the counting echo server of
# the tests (build/release/itests/upstream_counter, "upstream_counter") on
# GOV_GATEWAY_UPSTREAM_PORT (8781 + offset). One nginx process, no master
# (-g 'daemon off; master_process off;'), tracked like the others:
# var/run/nginx.pid, its prefix var/nginx (nginx.conf, logs), var/log/nginx.log.
# Skipped, with a note, when nginx or the upstream is missing or a port is taken.
GATEWAY_PREFIX="$VAR/nginx"
GATEWAY_UPSTREAM_PORT="${GOV_GATEWAY_UPSTREAM_PORT:-$((8781 + PORT_OFFSET))}"
GATEWAY_UPSTREAM_BIN="$ROOT/build/release/itests/upstream_counter"

nginx_path() { PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v nginx; }

gateway_wait() { # port what log
  local deadline=$(( SECONDS + SERVICE_READY_TIMEOUT )) code
  until code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$HOST:$1/$2" 2>/dev/null)"         && [[ $code == "$3" ]]; do
    (( SECONDS < deadline )) || { show_logs "$4"; die "$HOST:$1 did not answer /$2 with $3 within ${SERVICE_READY_TIMEOUT}s"; }
    sleep 0.1
  done
}

start_gateway() {
  local nginx upstream pid
  nginx="$(nginx_path)" || { say "nginx not installed: gateway skipped (bash deploy/install-deps.sh --all)"; return 0; }
  if [[ -n ${GOV_GATEWAY_UPSTREAM:-} ]]; then
    upstream=$GOV_GATEWAY_UPSTREAM
  elif [[ -x $GATEWAY_UPSTREAM_BIN ]]; then
    upstream="$HOST:$GATEWAY_UPSTREAM_PORT"
    if pid="$(running_pid upstream_counter)" \
       && [[ "$(stat -L -c %d:%i "/proc/$pid/exe" 2>/dev/null)" == "$(stat -c %d:%i "$GATEWAY_UPSTREAM_BIN")" ]]; then
      say "gateway upstream already running (pid $pid), reusing"
    else
      stop_all upstream_counter
      if port_open "$GATEWAY_UPSTREAM_PORT"; then
        warn "$HOST:$GATEWAY_UPSTREAM_PORT is in use (GOV_GATEWAY_UPSTREAM_PORT): gateway skipped"; return 0
      fi
      say "starting the gateway's upstream (upstream_counter) on $upstream"
      spawn upstream_counter "$LOG/upstream_counter.log" "$GATEWAY_UPSTREAM_BIN" "$GATEWAY_UPSTREAM_PORT" upstream-stack
      gateway_wait "$GATEWAY_UPSTREAM_PORT" __counts 200 "$LOG/upstream_counter.log"
    fi
  else
    say "no gateway upstream (set GOV_GATEWAY_UPSTREAM or make release): gateway skipped"
    return 0
  fi
  cp -f "$GATEWAY_PREFIX/nginx.conf" "$GATEWAY_PREFIX/nginx.conf.running" 2>/dev/null || true
  # the per-address issuance limits are raised for this stack: its benchmark
  # (bench/run.sh sessions-start-gateway-rate) starts 1,000 sessions/s from
  # one address; render.sh's defaults are a production's
  GOV_GATEWAY_CREDENTIAL_FILE="$GATEWAY_CREDENTIAL" \
    GOV_GATEWAY_ISSUE_RATE="${GOV_GATEWAY_ISSUE_RATE:-5000r/s}" \
    GOV_GATEWAY_ISSUE_BURST="${GOV_GATEWAY_ISSUE_BURST:-5000}" \
    GOV_GATEWAY_ISSUE_CONN="${GOV_GATEWAY_ISSUE_CONN:-4096}" \
    bash "$SCRIPT_DIR/nginx/render.sh" "$GATEWAY_PREFIX" "$HOST:$GATEWAY_PORT" \
    "$HOST:$(svc_port_of gov-edge)" "$upstream" >/dev/null || die "deploy/nginx/render.sh failed"
  if pid="$(running_pid nginx)"; then
    if cmp -s "$GATEWAY_PREFIX/nginx.conf" "$GATEWAY_PREFIX/nginx.conf.running"; then
      say "nginx gateway already running (pid $pid), reusing"; STARTED_SERVICES+=(nginx); return 0
    fi
    say "nginx gateway configuration changed, restarting"
    stop_all nginx
  fi
  rm -f "$GATEWAY_PREFIX/nginx.conf.running"
  # Not fatal: nothing else of the stack needs the gateway (test_gateway runs
  # its own), and with offsets 10 apart 8780 + offset is a neighbour's 8790.
  if port_open "$GATEWAY_PORT"; then
    warn "$HOST:$GATEWAY_PORT is in use by another process (GOV_GATEWAY_PORT): gateway skipped"; return 0
  fi
  say "starting the nginx gateway on http://$HOST:$GATEWAY_PORT (upstream $upstream)"
  spawn nginx "$LOG/nginx.log" "$nginx" -p "$GATEWAY_PREFIX" -c "$GATEWAY_PREFIX/nginx.conf" \
    -e "$GATEWAY_PREFIX/error.log" -g 'daemon off; master_process off;'
  # nginx answers /v1/authz itself (404): the gateway is up
  gateway_wait "$GATEWAY_PORT" v1/authz 404 "$GATEWAY_PREFIX/error.log"
  STARTED_SERVICES+=(nginx)
}

stop_gateway() { stop_all nginx upstream_counter; }

service_names() {
  local line; for line in "${SERVICES[@]}"; do svc_name "$line"; echo; done
}

# --- readiness (ops) --------------------------------------------------------------
# `start` returns only when every service it started or reused answers 200 on
# its /readyz (Kafka assignment, Redis, loaded state); /healthz, which
# start_services waits for, only says the loop runs. tools/wait-ready.sh polls
# them together, prints progress, and after GOV_READY_TIMEOUT seconds (default
# 60) names each one not ready with its /readyz status and body; a service
# whose process exits meanwhile fails at once.
READY_TIMEOUT="${GOV_READY_TIMEOUT:-60}"
wait_ready() {
  local name pid
  local -a targets=()
  for name in "${STARTED_SERVICES[@]}"; do
    # the nginx gateway has no /readyz: start_gateway waited for it to answer
    [[ $name == nginx ]] && continue
    pid="$(running_pid "$name")" || { show_logs "$LOG/$name.log"; die "$name exited during startup"; }
    targets+=("$name,http://$HOST:$(svc_port_of "$name"),$pid")
  done
  (( ${#targets[@]} > 0 )) || return 0
  bash "$ROOT/tools/wait-ready.sh" --timeout "$READY_TIMEOUT" "${targets[@]}" \
    || die "the stack is not ready (logs: $LOG/<name>.log; it is still running: bash deploy/stack.sh stop)"
}
# --- end of readiness (ops) --------------------------------------------------------

# --- commands -------------------------------------------------------------------

lock() {
  mkdir -p "$RUN" "$LOG"
  exec 9>"$RUN/stack.lock"
  if ! flock -w 120 9; then
    die "another deploy/stack.sh holds $RUN/stack.lock"
  fi
}

# One var/ holds one stack: a start with another GOV_PORT_OFFSET than the
# running stack's would find its processes on other ports, take them for
# strangers and drop their pid files. var/run/port-offset records the offset
# of the stack that runs there; another offset is refused while it runs.
check_offset() {
  local f="$RUN/port-offset" other name
  if [[ -s $f ]] && other="$(cat "$f")" && [[ $other != "$PORT_OFFSET" ]]; then
    for name in redis kafka; do
      if [[ -s $RUN/$name.pid ]] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
        die "$VAR holds a running stack on port offset $other (this start asks for $PORT_OFFSET): use GOV_PORT_OFFSET=$other, or stop it first (GOV_PORT_OFFSET=$other bash deploy/stack.sh stop)"
      fi
    done
  fi
  printf '%s\n' "$PORT_OFFSET" >"$f"
}

# duration_ms DURATION: a gov_config duration ("250ms", "5s", "5m", "1h" or bare ms)
# in ms on stdout; 1 when it is not one.
duration_ms() {
  [[ $1 =~ ^([0-9]{1,12})(ms|s|m|h)?$ ]] || return 1
  local v=$((10#${BASH_REMATCH[1]}))
  case ${BASH_REMATCH[2]} in
    s) v=$((v * 1000)) ;;
    m) v=$((v * 60000)) ;;
    h) v=$((v * 3600000)) ;;
  esac
  echo "$v"
}

# Refuses a gov-audit event_id_window (GOV_EVENT_ID_WINDOW, default 168h) shorter than
# policy.decisions' retention + one segment: an unstamped copy (relayed before
# x-gov-relay-source, or an edge spool's resend) older than the window would be chained
# twice (docs/contracts.md, "Exactly once in the chain").
check_dedup_window() {
  local window retention=${GOV_DECISIONS_RETENTION_MS:-518400000}
  # GOV_HOT_WINDOW (the soak's bounded Redis) shortens the window on purpose: relay
  # copies are still deduplicated by their stamp at any age, an edge spool's resend
  # only within the hot window
  if [[ -n ${GOV_HOT_WINDOW:-} ]]; then
    say "GOV_HOT_WINDOW=$GOV_HOT_WINDOW: gov-audit's event_id_window is $GOV_HOT_WINDOW, shorter than policy.decisions' retention - a decision an edge's spool resends more than $GOV_HOT_WINDOW after it was first chained (an edge down that long after a power loss) is chained twice; relay copies are recognised by their stamp at any age (a bench setting, not for production)"
    return 0
  fi
  window=$(duration_ms "${GOV_EVENT_ID_WINDOW:-168h}") ||
    die "GOV_EVENT_ID_WINDOW=${GOV_EVENT_ID_WINDOW} is not a duration (250ms, 5s, 5m, 1h)"
  if ((window < retention + DECISIONS_SEGMENT_MS)); then
    die "gov-audit's event_id_window (${GOV_EVENT_ID_WINDOW:-168h} = ${window} ms) is shorter than policy.decisions' retention + one segment ($retention + $DECISIONS_SEGMENT_MS ms): raise GOV_EVENT_ID_WINDOW or lower GOV_DECISIONS_RETENTION_MS"
  fi
}

cmd_start() {
  check_dedup_window
  lock
  check_offset
  local t0ns; t0ns="$(date +%s%N)"
  ensure_prereqs
  mkdir -p "$KAFKA_DIR"
  start_redis
  start_kafka
  ensure_softhsm
  ensure_key_store
  ensure_identity_trust
  ensure_gateway_credential
  ensure_relay_key
  ensure_topics
  ensure_topic_configs
  write_env
  if [[ -x "$SCRIPT_DIR/demo.sh" ]]; then
    # Signer keys and the trust file must exist before gov-constitution starts.
    # shellcheck source=/dev/null
    ( set -a; . "$ENV_FILE"; set +a; "$SCRIPT_DIR/demo.sh" trust 9>&- ) || die "deploy/demo.sh trust failed"
  fi
  start_services
  bootstrap_signing_key
  if [[ -x "$SCRIPT_DIR/demo.sh" ]]; then
    say "loading the demo tenant (deploy/demo.sh)"
    # shellcheck source=/dev/null
    ( set -a; . "$ENV_FILE"; set +a; "$SCRIPT_DIR/demo.sh" load 9>&- ) || die "deploy/demo.sh load failed"
  fi
  start_gateway
  wait_ready
  local ms=$(( ( $(date +%s%N) - t0ns ) / 1000000 ))
  say "stack is up ($(( ms / 1000 )).$(printf '%03d' $(( ms % 1000 ))) s)"
  print_addresses
}

print_addresses() {
  local line name
  printf '    %-20s %-34s %s\n' "Kafka (KRaft)" "$HOST:$KAFKA_PORT" "log $LOG/kafka.log"
  printf '    %-20s %-34s %s\n' "Kafka controller" "$HOST:$KAFKA_CONTROLLER_PORT" ""
  printf '    %-20s %-34s %s\n' "Redis" "$HOST:$REDIS_PORT" "log $LOG/redis.log"
  printf '    %-20s %-34s %s\n' "SoftHSM2 token" "$TOKEN_LABEL" "SOFTHSM2_CONF=$HSM_CONF"
  for line in "${SERVICES[@]}"; do
    name="$(svc_name "$line")"
    if [[ " ${STARTED_SERVICES[*]} " == *" $name "* ]]; then
      printf '    %-20s %-34s %s\n' "$name" "http://$HOST:$(svc_port "$line")" "log $LOG/$name.log"
    fi
  done
  [[ " ${STARTED_SERVICES[*]} " == *" nginx "* ]] && printf '    %-20s %-34s %s\n' "nginx gateway" "http://$HOST:$GATEWAY_PORT" "log $GATEWAY_PREFIX/error.log"
  printf '    %-20s %s\n' "addresses" "$ENV_FILE"
}

# Prints how many records $VAR/spool/decisions.spool held (from its header:
# the next seq noted at its last clean close, less the cursor's seq - no
# scan; "unknown" when gov-edge did not close it cleanly) and removes
# $VAR/spool (docs/contracts.md, Decision spool).
spool_purge() {
  local dir="$VAR/spool" f="$VAR/spool/decisions.spool" held=unknown
  [[ -d $dir ]] || return 0
  if [[ -f $f ]] && [[ $(head -c 8 "$f" 2>/dev/null) == GOVSPOOL ]]; then
    local close_seq gen0 seq0 gen1 seq1 ack=1
    close_seq=$(od -An -t u8 -j 32 -N 8 "$f" | tr -d ' ')
    gen0=$(od -An -t u8 -j 72 -N 8 "$f" | tr -d ' ');  seq0=$(od -An -t u8 -j 88 -N 8 "$f" | tr -d ' ')
    gen1=$(od -An -t u8 -j 104 -N 8 "$f" | tr -d ' '); seq1=$(od -An -t u8 -j 120 -N 8 "$f" | tr -d ' ')
    if [[ $gen0 != 0 || $gen1 != 0 ]]; then
      if [[ $gen1 -gt $gen0 ]]; then ack=$seq1; else ack=$seq0; fi
    fi
    if [[ $close_seq =~ ^[0-9]+$ && $close_seq -gt 0 && $close_seq -ge $ack ]]; then
      held=$(( close_seq - ack ))
    fi
  fi
  if [[ $held == 0 ]]; then
    say "wiping $dir (the decision spool was empty)"
  else
    say "wiping $dir: the decision spool held $held decision record(s) Kafka had not acknowledged; they are discarded with the stack"
  fi
  rm -rf "$dir"
}

cmd_stop() {
  local purge=0
  case ${1:-} in
    --purge) purge=1 ;;
    "") ;;
    *) die "stop: unknown option $1 (stop [--purge])" ;;
  esac
  lock
  local -a svcs=() all
  mapfile -t all < <(service_names)
  local i
  for (( i = ${#all[@]} - 1; i >= 0; i-- )); do svcs+=("${all[$i]}"); done
  stop_gateway
  stop_all "${svcs[@]}"
  if [[ -x "$SCRIPT_DIR/demo.sh" ]]; then
    GOV_VAR_DIR="$VAR" "$SCRIPT_DIR/demo.sh" stop || warn "deploy/demo.sh stop failed"
  fi
  stop_all kafka
  stop_all redis
  if [[ $purge -eq 1 ]]; then
    say "wiping $KAFKA_DIR and $REDIS_DIR"
    rm -rf "$KAFKA_DIR" "$REDIS_DIR"
    # The decision spool goes with them: its records were meant for the
    # Kafka and Redis just wiped, and a new stack would otherwise chain the
    # old stack's decisions into its tenants' chains (REVIEW13 L2).  It is
    # removed, not refused: a broken Kafka is the usual reason to reset.
    spool_purge
  fi
  say "stopped"
}

cmd_status() {
  local rc=0 pid state line name port
  printf '%-20s %-8s %-8s %-28s %s\n' COMPONENT STATE PID ADDRESS LOG
  row() { printf '%-20s %-8s %-8s %-28s %s\n' "$@"; }
  if pid="$(running_pid kafka)"; then
    state=running; kafka_ready && state=ready
  else state=stopped; pid=-; rc=3; fi
  row kafka "$state" "$pid" "$HOST:$KAFKA_PORT" "$LOG/kafka.log"
  if pid="$(running_pid redis)"; then
    state=running; redis_ready && state=ready
  else state=stopped; pid=-; rc=3; fi
  row redis "$state" "$pid" "$HOST:$REDIS_PORT" "$LOG/redis.log"
  for line in "${SERVICES[@]}"; do
    name="$(svc_name "$line")"; port="$(svc_port "$line")"
    if pid="$(running_pid "$name")"; then
      state=running; [[ "$(healthz_code "$port")" == 200 ]] && state=healthy
    elif [[ -x "$BIN_DIR/$name" ]]; then state=stopped; pid=-; rc=3
    else state=unbuilt; pid=-; fi
    row "$name" "$state" "$pid" "http://$HOST:$port" "$LOG/$name.log"
  done
  return $rc
}

case "${1:-}" in
  start)   cmd_start ;;
  stop)    shift; cmd_stop "${1:-}" ;;
  reset)   cmd_stop --purge ;;
  restart) cmd_stop; exec bash "${BASH_SOURCE[0]}" start ;;
  status)  cmd_status ;;
  *) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
