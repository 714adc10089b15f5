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
#
# State: var/cluster/redis/<port>/ (nodes.conf, appendonly, the pid file, the
# log) and var/cluster/cluster.env (GOV_REDIS_NODES=host:port,... of the six).
#
# Overrides (environment): GOV_VAR_DIR (var), GOV_CLUSTER_REDIS_BASE (9001:
# the nodes take BASE..BASE+5; keep them in 9000-9999), GOV_CLUSTER_NODE_TIMEOUT
# (1000 ms: how long a master may be silent before its replica takes over -
# small, so a failover test takes seconds, not the 15 s default).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="${GOV_VAR_DIR:-$ROOT/var}"
DIR="$VAR/cluster"
HOST=127.0.0.1
BASE="${GOV_CLUSTER_REDIS_BASE:-9001}"
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
  redis-server --bind "$HOST" --port "$p" --protected-mode yes --daemonize yes \
    --dir "$d" --pidfile "$d/redis.pid" --logfile "$d/redis.log" \
    --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout "$NODE_TIMEOUT" --cluster-require-full-coverage yes \
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
  printf 'GOV_REDIS_NODES=%s\n' "$list" > "$DIR/cluster.env"
  say "Redis Cluster up: GOV_REDIS_NODES=$list (written to $DIR/cluster.env)"
}

redis_stop() {
  local p pid
  for p in $(ports); do
    pid="$(node_pid "$p")"
    [[ -n $pid ]] || continue
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  done
  rm -f "$DIR/cluster.env"
  if [[ ${1:-} == --purge ]]; then rm -rf "$DIR/redis"; fi
  say "Redis Cluster nodes stopped"
}

status() {
  local p pid role
  for p in $(ports); do
    pid="$(node_pid "$p")"
    role="$( [[ -n $pid ]] && cli "$p" ROLE 2>/dev/null | head -1 || echo -)"
    printf '%-6s %-8s %-8s %s\n' "$p" "${pid:--}" "${role:--}" "$(node_dir "$p")/redis.log"
  done
}

case "${1:-}" in
  redis-start) redis_start ;;
  redis-stop) redis_stop "${2:-}" ;;
  status) status ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
