#!/usr/bin/env bash
# tests/stack/readiness.sh - `deploy/stack.sh start` (and so `make run`) returns
# only when every component is ready, and tools/wait-ready.sh, which it uses,
# waits, fails and names what is not ready as it says.
#
# tests/run.sh integration runs it right after `deploy/stack.sh start` returned:
#   1. every service whose binary is built (GOV_ADMIN_* of var/stack.env) runs
#      and answers 200 on /readyz at the first GET - no retry, no wait;
#   2. a private gov-constitution (its own component name, consumer group and
#      admin port), started and handed to wait-ready.sh at once: wait-ready
#      returns 0 and the process then answers 200 at the first GET;
#   3. a private gov-constitution whose Redis port has no listener (its /readyz
#      answers 503, its /healthz 200): wait-ready.sh --timeout 3 exits 1 and its
#      error names the component, the status 503 and the body (redis: error);
#   4. the same process killed: wait-ready.sh fails at once, saying it exited.
# Exit 0 when all hold; the first failure is printed and exits 1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VAR="${GOV_VAR_DIR:-$ROOT/var}"
BIN="${ITEST_BIN_DIR:-$ROOT/build/release/bin}"
WAIT="$ROOT/tools/wait-ready.sh"
TAG="itest-ready-$$"
WORK="$(mktemp -d)"
declare -a PRIVATE=()

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
cleanup() {
  local p
  for p in "${PRIVATE[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PRIVATE[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

[[ -s $VAR/stack.env ]] || fail "no $VAR/stack.env: start the stack first (bash deploy/stack.sh start)"
set -a; . "$VAR/stack.env"; set +a

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# readyz_code URL: the status of one GET URL/readyz.
readyz_code() { curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$1/readyz" || true; }

# --- 1. the stack: ready at once ------------------------------------------------------
checked=0
while IFS='=' read -r key url; do
  [[ $key == GOV_ADMIN_* ]] || continue
  name="${key#GOV_ADMIN_}"; name="gov-${name,,}"; name="${name//_/-}"
  [[ -x $BIN/$name ]] || continue
  pid="$(head -n1 "$VAR/run/$name.pid" 2>/dev/null)" || fail "$name is built but has no pid file: it does not run"
  kill -0 "$pid" 2>/dev/null || fail "$name (pid $pid) does not run"
  code="$(readyz_code "$url")"
  [[ $code == 200 ]] || fail "$name: $url/readyz answered $code right after stack.sh start returned: $(curl -s --max-time 2 "$url/readyz")"
  echo "ok: $name $url/readyz 200 at the first GET"
  checked=$((checked + 1))
done <"$VAR/stack.env"
(( checked >= 2 )) || fail "only $checked services checked: stack.env names no GOV_ADMIN_* of a built binary"

# start_private NAME PORT [ENV=VALUE...]: a private gov-constitution with its own
# component name and consumer group on admin PORT; prints its pid.
start_private() {
  local name=$1 port=$2; shift 2
  env GOV_COMPONENT_NAME="$name" GOV_KAFKA_GROUP="$name" GOV_ADMIN_PORT="$port" "$@" \
    "$BIN/gov-constitution" >"$WORK/$name.log" 2>&1 </dev/null &
  echo $!
}

# --- 2. a private component: wait-ready returns when it is ready -------------------------
port="$(free_port)"
pid="$(start_private "$TAG" "$port")"; PRIVATE+=("$pid")
"$WAIT" --timeout 30 "$TAG,http://127.0.0.1:$port,$pid" >"$WORK/wait-ok.out" 2>&1 \
  || { cat "$WORK/wait-ok.out" "$WORK/$TAG.log" >&2; fail "wait-ready.sh did not see $TAG ready within 30 s"; }
code="$(readyz_code "http://127.0.0.1:$port")"
[[ $code == 200 ]] || fail "$TAG: wait-ready.sh returned but /readyz answers $code"
grep -q "\"admin_port\":\"$port\"" "$WORK/$TAG.log" || fail "$TAG's log does not show it serving admin port $port"
echo "ok: wait-ready.sh returned once $TAG was ready: $(tail -n1 "$WORK/wait-ok.out")"

# --- 3. a private component that cannot be ready: a clear error --------------------------
bad="$TAG-noredis"
port="$(free_port)"; dead_redis="$(free_port)"
pid="$(start_private "$bad" "$port" GOV_REDIS_PORT="$dead_redis")"; PRIVATE+=("$pid")
for (( i = 0; i < 100; i++ )); do   # until its admin server answers at all
  [[ "$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)" == 200 ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$WORK/$bad.log" >&2; fail "$bad exited"; }
  sleep 0.1
done
rc=0
"$WAIT" --timeout 3 "$bad,http://127.0.0.1:$port,$pid" >"$WORK/wait-bad.out" 2>&1 || rc=$?
cat "$WORK/wait-bad.out"
[[ $rc == 1 ]] || fail "wait-ready.sh exited $rc for a component that cannot be ready (want 1)"
grep -q "wait-ready: $bad not ready: http://127.0.0.1:$port/readyz answered 503: " "$WORK/wait-bad.out" \
  || fail "the error does not name $bad, its URL and the status 503"
grep -q '"name":"redis","state":"error"' "$WORK/wait-bad.out" || fail "the error does not show the /readyz body (redis in error)"
grep -q "not ready yet" "$WORK/wait-bad.out" || fail "no progress line while waiting"
echo "ok: wait-ready.sh named $bad, 503 and its body after 3 s"

# --- 4. a component that exits: no waiting out the clock --------------------------------
kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
t0=$SECONDS rc=0
"$WAIT" --timeout 60 "$bad,http://127.0.0.1:$port,$pid" >"$WORK/wait-gone.out" 2>&1 || rc=$?
[[ $rc == 1 ]] || fail "wait-ready.sh exited $rc for a component that is gone (want 1)"
grep -q "$bad (pid $pid) exited before it was ready" "$WORK/wait-gone.out" || { cat "$WORK/wait-gone.out"; fail "the error does not say $bad exited"; }
(( SECONDS - t0 < 10 )) || fail "wait-ready.sh took $(( SECONDS - t0 )) s to notice an exited component"
echo "ok: wait-ready.sh noticed at once that $bad exited"
