#!/usr/bin/env bash
# deploy/cluster.sh - a real Redis Cluster on loopback for the cluster work of
# issue 13 (docs/operations.md): six redis-server nodes, three masters and
# three replicas, made a cluster by `redis-cli --cluster create
# --cluster-replicas 1`.  The single-node stack (deploy/stack.sh) is untouched
# and stays the default; nothing here starts unless asked.
#
#   bash deploy/cluster.sh redis-start    start the six nodes, create the cluster
#                                         (or reuse it when it is up)
#   bash deploy/cluster.sh redis-stop     stop the nodes this script started (pid files)
#   bash deploy/cluster.sh redis-stop --purge   ... and wipe var/cluster/redis
#   bash deploy/cluster.sh status         one line per node
#   bash deploy/cluster.sh kafka-start    three combined broker+controller KRaft nodes
#                                         (the stack's Kafka jars), started only on request
#   bash deploy/cluster.sh kafka-stop     stop them (--purge: wipe var/cluster/kafka)
#
# State: var/cluster/redis/<port>/ (nodes.conf, appendonly, the pid file, the
# log) and var/cluster/cluster.env (GOV_REDIS_NODES=host:port,... of the six).
#
# Kafka: var/cluster/kafka/<n>/ (server.properties, data, log, pid), brokers on
# 127.0.0.1:GOV_CLUSTER_KAFKA_BASE+n (9711-9713), controllers on +10 (9721-9723);
# replication factor 3 and min.insync.replicas 2 by default; cluster.env gets
# GOV_KAFKA_BROKERS as a comma list.
#
# Overrides (environment): GOV_VAR_DIR (var), GOV_CLUSTER_REDIS_BASE (9701:
# the nodes take BASE..BASE+5; keep them in 9000-9999 and off the port-offset
# stacks' admin ports, 9000-9690), GOV_CLUSTER_NODE_TIMEOUT
# (1000 ms: how long a master may be silent before its replica takes over -
# small, so a failover test takes seconds, not the 15 s default).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="${GOV_VAR_DIR:-$ROOT/var}"
DIR="$VAR/cluster"
HOST=127.0.0.1
BASE="${GOV_CLUSTER_REDIS_BASE:-9701}"
NODE_TIMEOUT="${GOV_CLUSTER_NODE_TIMEOUT:-1000}"
NODES=6
READY_TIMEOUT=30

die() { echo "cluster.sh: $*" >&2; exit 1; }
say() { echo "cluster.sh: $*"; }

[[ $BASE =~ ^[0-9]+$ ]] && (( BASE >= 9000 && BASE + NODES - 1 <= 9999 )) ||
  die "GOV_CLUSTER_REDIS_BASE must keep the nodes in 9000-9999"
[[ $NODE_TIMEOUT =~ ^[0-9]+$ ]] || die "GOV_CLUSTER_NODE_TIMEOUT must be a number (ms)"

ports() { seq "$BASE" $((BASE + NODES - 1)); }
node_dir() { echo "$DIR/redis/$1"; }

# The pid of the node on port $1 when it is ours and alive, else nothing.
node_pid() {
  local f pid
  f="$(node_dir "$1")/redis.pid"
  [[ -f $f ]] || return 0
  pid="$(cat "$f")"
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    [[ "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" == *redis-server*":$1"* ]] &&
    echo "$pid"
  return 0
}

# Stops pid with SIGTERM, SIGKILL after $2 tenths of a second.
stop_pid() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq "$2"); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

cli() { timeout 5 redis-cli -h "$HOST" -p "$1" "${@:2}"; }

cluster_ok() { [[ "$(cli "$BASE" CLUSTER INFO 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p')" == ok ]]; }

start_node() {
  local p=$1 d
  d="$(node_dir "$p")"
  mkdir -p "$d"
  if [[ -n "$(node_pid "$p")" ]]; then return 0; fi
  if (echo > "/dev/tcp/$HOST/$p") 2>/dev/null; then
    die "port $p is taken by a process this script did not start (GOV_CLUSTER_REDIS_BASE)"
  fi
  # appendonly with fsync every second, like the single-node stack; the
  # replica of a killed master has what it replicated, no more (the gap is
  # what the processors' rebuild detects: docs/contracts.md "Redis Cluster").
  # A replica always stands for election (validity factor 0): a loaded test
  # machine can starve the replication link, and a master killed on purpose
  # must be replaced, not left down for want of a fresh enough replica.
  redis-server --bind "$HOST" --port "$p" --protected-mode yes --daemonize yes \
    --dir "$d" --pidfile "$d/redis.pid" --logfile "$d/redis.log" \
    --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout "$NODE_TIMEOUT" --cluster-require-full-coverage yes \
    --cluster-replica-validity-factor 0 \
    --appendonly yes --appendfsync everysec --save ""
}

redis_start() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    die "redis-server and redis-cli are needed (deploy/install-deps.sh)"
  mkdir -p "$DIR"
  local p deadline
  for p in $(ports); do start_node "$p"; done
  deadline=$((SECONDS + READY_TIMEOUT))
  for p in $(ports); do
    until [[ "$(cli "$p" PING 2>/dev/null)" == PONG ]]; do
      (( SECONDS < deadline )) || die "node $p did not answer PING (log $(node_dir "$p")/redis.log)"
      sleep 0.1
    done
  done
  if ! cluster_ok; then
    if [[ "$(cli "$BASE" CLUSTER INFO | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')" == 1 ]]; then
      say "creating the cluster: 3 masters, 3 replicas on $HOST:$BASE-$((BASE + NODES - 1))"
      local addrs=()
      for p in $(ports); do addrs+=("$HOST:$p"); done
      redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/create.log" 2>&1 ||
        { cat "$DIR/create.log" >&2; die "redis-cli --cluster create failed"; }
    fi
    until cluster_ok; do
      (( SECONDS < deadline )) || die "the cluster did not reach cluster_state:ok (redis-stop --purge, then start again)"
      sleep 0.2
    done
  fi
  # every node must agree the map is whole before a client is pointed at it
  for p in $(ports); do
    until [[ "$(cli "$p" CLUSTER INFO 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p')" == ok ]]; do
      (( SECONDS < deadline )) || die "node $p does not see cluster_state:ok"
      sleep 0.2
    done
  done
  local list
  list="$(ports | sed "s/^/$HOST:/" | paste -sd, -)"
  touch "$DIR/cluster.env"
  sed -i '/^GOV_REDIS_NODES=/d' "$DIR/cluster.env"
  printf 'GOV_REDIS_NODES=%s\n' "$list" >> "$DIR/cluster.env"
  say "Redis Cluster up: GOV_REDIS_NODES=$list (written to $DIR/cluster.env)"
}

# stop_nodes PIDFN TENTHS ENVKEY DATADIR WHAT PURGE NODE...: stops each node
# (PIDFN NODE names its pid; TENTHS of a second before SIGKILL), removes its
# address line from cluster.env, and with PURGE=--purge its data directory.
stop_nodes() {
  local pidfn=$1 tenths=$2 key=$3 data=$4 what=$5 purge=$6 n pid
  shift 6
  for n in "$@"; do
    pid="$("$pidfn" "$n")"
    [[ -n $pid ]] && stop_pid "$pid" "$tenths"
  done
  [[ -f "$DIR/cluster.env" ]] && sed -i "/^$key=/d" "$DIR/cluster.env"
  if [[ $purge == --purge ]]; then rm -rf "$data"; fi
  say "$what nodes stopped"
}

redis_stop() { stop_nodes node_pid 50 GOV_REDIS_NODES "$DIR/redis" "Redis Cluster" "${1:-}" $(ports); }

status() {
  local p pid role
  for p in $(ports); do
    pid="$(node_pid "$p")"
    role="$( [[ -n $pid ]] && cli "$p" ROLE 2>/dev/null | head -1 || echo -)"
    printf '%-6s %-8s %-8s %s\n' "$p" "${pid:--}" "${role:--}" "$(node_dir "$p")/redis.log"
  done
}

# --- Kafka: three KRaft nodes, each broker and controller ------------------------

KAFKA_VERSION=3.9.1
KAFKA_LIBS="${GOV_KAFKA_LIBS:-${HOME:-/root}/.cache/soma-gov/kafka-$KAFKA_VERSION/libs}"
KAFKA_BASE="${GOV_CLUSTER_KAFKA_BASE:-9710}"
KAFKA_HEAP_OPTS="${GOV_KAFKA_HEAP_OPTS:--Xms128m -Xmx384m}"
KAFKA_READY_TIMEOUT=180
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
KDIR="$DIR/kafka"

[[ $KAFKA_BASE =~ ^[0-9]+$ ]] && (( KAFKA_BASE >= 9000 && KAFKA_BASE + 13 <= 9999 )) ||
  die "GOV_CLUSTER_KAFKA_BASE must keep the brokers (+1..+3) and controllers (+11..+13) in 9000-9999"

kafka_pid() {
  local f pid
  f="$KDIR/$1/kafka.pid"
  [[ -f $f ]] || return 0
  pid="$(cat "$f")"
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    [[ "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" == *kafka.Kafka*"$KDIR/$1/"* ]] &&
    echo "$pid"
  return 0
}

kafka_brokers() {
  local n out=()
  for n in 1 2 3; do out+=("$HOST:$((KAFKA_BASE + n))"); done
  (IFS=,; echo "${out[*]}")
}

kafka_tool() {
  "$JAVA" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlog4j.configuration="file:$KDIR/tools-log4j.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

kafka_config() {
  local n=$1 d="$KDIR/$1" voters=""
  local m
  for m in 1 2 3; do voters+="${voters:+,}$m@$HOST:$((KAFKA_BASE + 10 + m))"; done
  mkdir -p "$d/data"
  cat >"$d/server.properties" <<PROPS
# Generated by deploy/cluster.sh; overwritten on every start.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://$HOST:$((KAFKA_BASE + n)),CONTROLLER://$HOST:$((KAFKA_BASE + 10 + n))
advertised.listeners=PLAINTEXT://$HOST:$((KAFKA_BASE + n))
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
  cat >"$d/log4j.properties" <<PROPS
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$d/kafka.log
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
}

kafka_ready() {
  local n
  n="$(timeout 10 kcat -b "$(kafka_brokers)" -L -m 3 -t __soma_gov_probe 2>/dev/null | grep -c "^  broker [123] at ")"
  [[ $n == 3 ]]
}

kafka_start() {
  [[ -d $KAFKA_LIBS ]] || die "no Kafka jars in $KAFKA_LIBS (start the single-node stack once: it fetches them)"
  command -v kcat >/dev/null || die "kcat is needed (deploy/install-deps.sh)"
  mkdir -p "$KDIR"
  printf 'log4j.rootLogger=WARN, stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\nlog4j.appender.stderr.Target=System.err\nlog4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n' \
    >"$KDIR/tools-log4j.properties"
  if [[ ! -s "$KDIR/cluster.id" ]]; then
    kafka_tool kafka.tools.StorageTool random-uuid | tr -d '[:space:]' >"$KDIR/cluster.id"
  fi
  local n cid
  cid="$(cat "$KDIR/cluster.id")"
  for n in 1 2 3; do
    kafka_config "$n"
    [[ -n "$(kafka_pid "$n")" ]] && continue
    local p
    for p in $((KAFKA_BASE + n)) $((KAFKA_BASE + 10 + n)); do
      if (echo > "/dev/tcp/$HOST/$p") 2>/dev/null; then die "port $p is taken (GOV_CLUSTER_KAFKA_BASE)"; fi
    done
    [[ -f "$KDIR/$n/data/meta.properties" ]] ||
      kafka_tool kafka.tools.StorageTool format -t "$cid" -c "$KDIR/$n/server.properties" >>"$KDIR/$n/format.log" 2>&1 ||
      die "formatting node $n failed (see $KDIR/$n/format.log)"
    say "starting Kafka node $n: broker $HOST:$((KAFKA_BASE + n)), controller $HOST:$((KAFKA_BASE + 10 + n))"
    # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of JVM options
    setsid "$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dkafka.logs.dir="$KDIR/$n" -Dlog4j.configuration="file:$KDIR/$n/log4j.properties" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KDIR/$n/server.properties" >"$KDIR/$n/kafka.out" 2>&1 </dev/null &
    echo $! >"$KDIR/$n/kafka.pid"
  done
  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
  until kafka_ready; do
    for n in 1 2 3; do
      [[ -n "$(kafka_pid "$n")" ]] || { tail -20 "$KDIR/$n/kafka.out" >&2; die "Kafka node $n exited"; }
    done
    (( SECONDS < deadline )) || die "the three brokers did not all answer within ${KAFKA_READY_TIMEOUT}s"
    sleep 0.5
  done
  touch "$DIR/cluster.env"
  sed -i '/^GOV_KAFKA_BROKERS=/d' "$DIR/cluster.env"
  printf 'GOV_KAFKA_BROKERS=%s\n' "$(kafka_brokers)" >>"$DIR/cluster.env"
  say "Kafka cluster up: GOV_KAFKA_BROKERS=$(kafka_brokers) (replication factor 3, min.insync.replicas 2)"
}

kafka_stop() { stop_nodes kafka_pid 150 GOV_KAFKA_BROKERS "$KDIR" "Kafka cluster" "${1:-}" 1 2 3; }

case "${1:-}" in
  redis-start) redis_start ;;
  redis-stop) redis_stop "${2:-}" ;;
  kafka-start) kafka_start ;;
  kafka-stop) kafka_stop "${2:-}" ;;
  status) status ;;
  *) sed -n '2,32p' "$0" >&2; exit 2 ;;
esac
