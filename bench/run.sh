#!/usr/bin/env bash
# bench/run.sh - the benchmarks of `make bench` (docs/benchmarks.md). Never part of `make test`.
#
#   make bench                       every benchmark below, side by side in one run
#   make bench BENCH=evaluate        one (or several: BENCH="evaluate opa-evaluate")
#   bash bench/run.sh [NAME...]      the same, after `make release`
#
# Benchmarks (names as in var/bench/results.json):
#   scorer-inprocess     libgov's scorer in process, 1 and 2 threads (scorer-inprocess-1t, scorer-inprocess)
#   evaluate             gov-edge POST /v1/evaluate, wrk, closed loop, C connections, T threads
#   opa-evaluate         Open Policy Agent, same policy (bench/rego_gen), same wrk settings
#   evaluate-rate        gov-edge at fixed rates (bench/loadgen, open loop): evaluate-rate-<R>;
#                        each entry's "decision_log": CPU per decision of gov-audit + Redis + the
#                        broker (/proc, until gov-audit's lag is 0 again) and that drain time
#   opa-evaluate-rate    OPA at the same fixed rates: opa-evaluate-rate-<R>
#                        (both BENCH_RATE_DURATION s, default 60, after the warm-up)
#   evaluate-soak        gov-edge at BENCH_SOAK_RATE/s (5000) for BENCH_SOAK_SECONDS (600) with
#                        gov-audit and gov-archive restarted on the hot window BENCH_SOAK_WINDOW_S
#                        (120; deploy/stack.sh GOV_HOT_WINDOW); its entry's "soak": Redis
#                        used_memory every 5 s (redis_used_memory_series), the window, and the
#                        checks used_memory_flat, every_decision_chained, chain_verified
#                        (run_soak below states each criterion)
#   rate-sweep           gov-edge and OPA at each rate of BENCH_SWEEP_RATES ("1000 2500 5000
#                        7500 10000 12500"), BENCH_SWEEP_DURATION s (20) each: entries
#                        evaluate-sweep-<R>, opa-evaluate-sweep-<R>; plotted by
#                        bench/plot_sweep.sh (gnuplot-nox) to BENCH_SWEEP_PNG
#                        (docs/img/rate-sweep.png)
#   sign-raw-pem         raw Ed25519 signatures/s of the PEM-file key store (bench/sign_bench file)
#   sign-raw-pkcs11      the same through PKCS#11 on the stack's SoftHSM2 token (sign_bench pkcs11)
#   token-issue-pem      gov-edge POST /v1/tokens/issue (client credentials, HTTP Basic, form body),
#                        the stack's edge (GOV_SIGNER_BACKEND=file); bench/loadgen --closed-loop at
#                        BENCH_TOKEN_CONNECTIONS, every answer checked to be a token that parses;
#                        then every TokenIssued of the bench's client on identity.tokens is counted
#                        and must equal the tokens handed out ("every audit event acknowledged")
#   token-issue-pkcs11   the same against a second gov-edge with GOV_SIGNER_BACKEND=pkcs11 on the
#                        stack's SoftHSM2 token (started and stopped here)
#   hydra-token-issue    Ory Hydra (built once from the Go module proxy, cached in
#                        $HOME/.cache/soma-gov/hydra-<version>; DSN=memory, JWT access tokens) under
#                        the same load: POST /oauth2/token with a client-credentials client made
#                        through its admin API
#   sessions-start       gov-edge POST /v1/sessions/start straight to the stack's edge (no gateway):
#                        one allowed request of tenant bench with a bearer token (scope
#                        sessions:start), bench/loadgen --closed-loop --expect-session at
#                        BENCH_TOKEN_CONNECTIONS; every answer 201 with a session token, and every
#                        session token's TokenIssued counted on identity.tokens
#   sessions-start-gateway       the same through the stack's nginx gateway (GOV_GATEWAY_URL,
#                        which proxies /v1/ to gov-edge), closed loop
#   sessions-start-gateway-rate  through the gateway at BENCH_SESSION_RATE sessions/s (default
#                        1000; issue 11's target: p95 <= 5 ms), open loop (bench/loadgen --rate)
#
# What it does: starts the stack if needed (deploy/stack.sh start), builds the bench tools
# (make bench-tools), generates the requests (bench/gen_requests, seeded), publishes the
# bench tenant through the real path (constitution signed with the demo signers and
# published with govctl; the rule pack signed by the demo rule-pack operator with
# `govctl rulepack sign` and published with `govctl rulepack publish`), waits until
# gov-edge serves it, builds
# OPA once (cached in $HOME/.cache/soma-gov/opa-<version>), generates the Rego, starts
# OPA, checks that libgov, the edge and OPA agree on EVERY request (any difference
# aborts, printing the input), then measures. Results: var/bench/results.json (list of
# entries), var/bench/summary.json (machine, ratios, targets), a table on stdout.
#
# Settings (environment): BENCH_REQUESTS (2000), BENCH_SEED (42), BENCH_PROMPT_BYTES (1024),
# BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_DURATION (15 s), BENCH_WARMUP (3 s),
# BENCH_RATES ("10000 500"), BENCH_SCORER_DURATION (5 s), BENCH_OPA_VERSION (v1.22.2),
# BENCH_RATE_DURATION (60 s: the fixed-rate entries), BENCH_SOAK_FLAT_PCT (10),
# BENCH_OPA_PORT (8181 + GOV_PORT_OFFSET), BENCH_SERVE_TIMEOUT (90 s), BENCH_QUIET_TIMEOUT (300 s),
# BENCH_RESULTS_DIR (var/bench: where results.json and summary.json go; e.g. a rate sweep
# BENCH_RATES="1000 2000 4000" BENCH_RESULTS_DIR=var/bench/sweep make bench BENCH=evaluate-rate
# keeps the main run's results).
# Tokens: BENCH_TOKEN_CONNECTIONS (BENCH_CONNECTIONS), BENCH_TOKEN_SCOPE (bench.tokens),
# BENCH_SIGN_DURATION (5 s), BENCH_HYDRA_VERSION (v2.3.0), BENCH_HYDRA_PORT (4444 +
# GOV_PORT_OFFSET; the admin API on the next port), BENCH_PKCS11_EDGE_PORT (a free port).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

REQUESTS_N=${BENCH_REQUESTS:-2000}
SEED=${BENCH_SEED:-42}
PROMPT_BYTES=${BENCH_PROMPT_BYTES:-1024}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
DURATION=${BENCH_DURATION:-15}
WARMUP=${BENCH_WARMUP:-3}
RATES=${BENCH_RATES:-10000 500}
SCORER_DURATION=${BENCH_SCORER_DURATION:-5}
OPA_VERSION=${BENCH_OPA_VERSION:-v1.22.2}
OPA_PORT=${BENCH_OPA_PORT:-$(( 8181 + ${GOV_PORT_OFFSET:-0} ))}
SERVE_TIMEOUT=${BENCH_SERVE_TIMEOUT:-90}

TOKEN_CONNS=${BENCH_TOKEN_CONNECTIONS:-$CONNS}
TOKEN_SCOPE=${BENCH_TOKEN_SCOPE:-bench.tokens}
SIGN_DURATION=${BENCH_SIGN_DURATION:-5}
HYDRA_VERSION=${BENCH_HYDRA_VERSION:-v2.3.0}
HYDRA_PORT=${BENCH_HYDRA_PORT:-$(( 4444 + ${GOV_PORT_OFFSET:-0} ))}
HYDRA_ADMIN_PORT=$(( HYDRA_PORT + 1 ))

ALL=(scorer-inprocess evaluate opa-evaluate evaluate-rate opa-evaluate-rate evaluate-soak rate-sweep
     sign-raw-pem sign-raw-pkcs11 token-issue-pem token-issue-pkcs11 hydra-token-issue
     sessions-start sessions-start-gateway sessions-start-gateway-rate)
SESSION_RATE=${BENCH_SESSION_RATE:-1000}
RATE_DURATION=${BENCH_RATE_DURATION:-60}
SWEEP_RATES=${BENCH_SWEEP_RATES:-1000 2500 5000 7500 10000 12500}
SWEEP_DURATION=${BENCH_SWEEP_DURATION:-20}
SWEEP_PNG=${BENCH_SWEEP_PNG:-docs/img/rate-sweep.png}
SOAK_SECONDS=${BENCH_SOAK_SECONDS:-600}
SOAK_RATE=${BENCH_SOAK_RATE:-5000}
SOAK_WINDOW=${BENCH_SOAK_WINDOW_S:-120}
SOAK_FLAT_PCT=${BENCH_SOAK_FLAT_PCT:-10}
BIN=build/release/bin
TOOLS=build/release/bench
OUT=var/bench
PARTS=$OUT/parts
LOGS=$OUT/logs
PACK=bench/rulepack-bench.json
CONSTITUTION_SRC=bench/constitution-bench.json
CONSTITUTION=$OUT/constitution-bench.signed.json
REQS=$OUT/requests.ndjson
REGO=$OUT/policy.rego
RESULTS_DIR=${BENCH_RESULTS_DIR:-$OUT}
TENANT=bench
OPA_DIR="${HOME:-/root}/.cache/soma-gov/opa-$OPA_VERSION"
OPA="$OPA_DIR/bin/opa"
OPA_URL="http://127.0.0.1:$OPA_PORT/v1/data/soma/decision"
OPA_PIDFILE=$OUT/opa.pid
HYDRA_DIR="${HOME:-/root}/.cache/soma-gov/hydra-$HYDRA_VERSION"
HYDRA="$HYDRA_DIR/bin/hydra"
HYDRA_PIDFILE=$OUT/hydra.pid
EDGE11_PIDFILE=$OUT/gov-edge-pkcs11.pid

say()  { printf '==> %s\n' "$*"; }
die()  { printf 'bench/run.sh: error: %s\n' "$*" >&2; exit 1; }

# --- selection ----------------------------------------------------------------
declare -A WANT=()
if [[ $# -eq 0 || -z "${*// /}" ]]; then
  for b in "${ALL[@]}"; do WANT[$b]=1; done
else
  for arg in "$@"; do
    for b in ${arg//,/ }; do
      [[ " ${ALL[*]} " == *" $b "* ]] || die "unknown benchmark '$b' (known: ${ALL[*]})"
      WANT[$b]=1
    done
  done
fi
want() { [[ -n ${WANT[$1]:-} ]]; }
NEED_EDGE=0; NEED_OPA=0
# The token benchmarks issue for tenant bench, whose constitution publish_tenant publishes.
{ want evaluate || want evaluate-rate || want evaluate-soak || want rate-sweep || want token-issue-pem || want token-issue-pkcs11 || want sessions-start ||
  want sessions-start-gateway || want sessions-start-gateway-rate; } && NEED_EDGE=1
{ want opa-evaluate || want opa-evaluate-rate || want rate-sweep; } && NEED_OPA=1

mkdir -p "$PARTS" "$LOGS"
rm -f "$PARTS"/*.json "$OUT/equivalence.json"
if [[ -s var/stack.env ]]; then
  # shellcheck source=/dev/null
  set -a; . var/stack.env; set +a
fi
redis_used() { # bytes Redis uses (the decision log grows it), or "" when it does not answer
  redis-cli -h "${GOV_REDIS_HOST:-127.0.0.1}" -p "${GOV_REDIS_PORT:-6390}" INFO memory 2>/dev/null \
    | tr -d '\r' | sed -n 's/^used_memory://p'
}

# --- machine facts --------------------------------------------------------------
export BENCH_NPROC; BENCH_NPROC="$(nproc)"
export BENCH_CPU_MODEL; BENCH_CPU_MODEL="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
export BENCH_KERNEL; BENCH_KERNEL="$(uname -sr)"
export BENCH_LOADAVG; BENCH_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
export BENCH_STARTED_AT; BENCH_STARTED_AT="$(date -u +%FT%TZ)"
export BENCH_WRK_VERSION; BENCH_WRK_VERSION="$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2 || true)"
say "machine: $BENCH_NPROC x $BENCH_CPU_MODEL, $BENCH_KERNEL, load average $BENCH_LOADAVG"

# --- CPU accounting (to say who used the 2 cores) ---------------------------------
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { # pid -> utime+stime of the process (all threads), in clock ticks
  local s; s="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
  s="${s##*) }"
  awk '{ print $12 + $13 }' <<<"$s"
}
# All processes' CPU ticks: "pid ticks comm" lines (comm with spaces made "_").
cpu_snapshot() {
  awk 'FNR == 1 {
         i = index($0, "("); j = match($0, /\) [A-Za-z] /)
         if (i == 0 || j == 0) next
         comm = substr($0, i + 1, j - i - 1); gsub(/[^A-Za-z0-9._:+-]/, "_", comm)
         split(substr($0, j + 2), f, " ")
         print substr($0, 1, i - 2), f[12] + f[13], comm
       }' /proc/[0-9]*/stat 2>/dev/null || true
}
# top_cpu BEFORE AFTER -> JSON array of the 8 processes that used the most CPU between the
# two snapshots (processes that exited in between are not in it; the load generator's own
# CPU is measured separately).
top_cpu() {
  awk -v hz="$CLK_TCK" 'NR == FNR { before[$1] = $2; next }
       { d = $2 - ($1 in before ? before[$1] : 0); if (d > 0) print d, $1, $3 }' "$1" "$2" \
    | sort -rn | head -n 8 \
    | awk -v hz="$CLK_TCK" 'BEGIN { printf "[" }
        { printf "%s{\"comm\":\"%s\",\"pid\":%s,\"cpu_s\":%.2f}", (NR > 1 ? "," : ""), $3, $2, $1 / hz }
        END { printf "]" }'
}
# write_meta NAME...: the measurement context of entries NAME, after meta_begin PID /
# meta_end around the measurement: load average before, CPU seconds the server process
# (PID; none for the in-process scorer) used, the load generator's CPU, the processes that
# used the most CPU, wall time, and how busy the machine was (all processes' CPU, from
# /proc/PID/stat, over cores x wall time).
write_meta() {
  local names="" n
  for n in "$@"; do names+="${names:+,}\"$n\""; done
  local wall_ns=$(( M_T1 - M_T0 ))
  # CPU of every process alive at the end (kernel threads included) + the load generator,
  # as a percentage of all cores over the wall time.
  local all_ticks
  all_ticks="$(awk 'NR == FNR { b[$1] = $2; next } { d = $2 - ($1 in b ? b[$1] : 0); if (d > 0) s += d } END { print s + 0 }' \
    "$OUT/cpu.before" "$OUT/cpu.after")"
  local server=""
  if [[ -n $M_PID ]]; then
    server="$(printf '"server_pid":%s,"server_cpu_s":%s,' "$M_PID" \
      "$(awk -v v="$(( M_P1 - M_P0 ))" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", v / hz }')")"
  fi
  local gen=""
  [[ -n ${M_GEN_CPU:-} ]] && gen="\"bench_process_cpu_s\":$M_GEN_CPU,"
  printf '{"meta_for":[%s],"loadavg_before":"%s","quiet_wait_s":%s,"audit_lag_before":%s,%s%s"top_cpu":%s,"wall_s":%s,"machine_cpu_busy_pct":%s}\n' \
    "$names" "$M_LOAD" "${M_QUIET:-0}" "${M_LAG:--1}" "$server" "$gen" "$(top_cpu "$OUT/cpu.before" "$OUT/cpu.after")" \
    "$(awk -v v="$wall_ns" 'BEGIN { printf "%.3f", v / 1e9 }')" \
    "$(awk -v a="$all_ticks" -v g="${M_GEN_CPU:-0}" -v hz="$CLK_TCK" -v w="$wall_ns" -v n="$BENCH_NPROC" \
         'BEGIN { printf "%.1f", 100 * (a / hz + g) / (w / 1e9 * n) }')" \
    >"$PARTS/meta-$1.json"
}
meta_begin() { # [pid]   (after wait_quiet)
  M_QUIET=$QUIET_WAIT; M_LAG="$(audit_lag)"
  M_PID=${1:-}; M_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
  M_P0=0; [[ -n $M_PID ]] && M_P0=$(proc_ticks "$M_PID")
  M_GEN_CPU=""
  cpu_snapshot >"$OUT/cpu.before"
  M_T0=$(date +%s%N)
}
meta_end() {
  M_T1=$(date +%s%N); M_P1=0; [[ -n $M_PID ]] && M_P1=$(proc_ticks "$M_PID")
  cpu_snapshot >"$OUT/cpu.after"
}
# gen_cpu CMD...: runs the benchmark's own process (wrk, loadgen, scorer_bench) with stdout
# to $GEN_OUT and stderr to $GEN_ERR, leaving its user+system CPU seconds in M_GEN_CPU.
gen_cpu() {
  local TIMEFORMAT='%U %S' t rc=0
  { t="$( { time "$@" >"$GEN_OUT" 2>"$GEN_ERR"; } 2>&1 )"; } || rc=$?
  M_GEN_CPU="$(awk '{ printf "%.2f", $1 + $2 }' <<<"$t")"
  return $rc
}

# wait_quiet: the edge's decision log (PolicyDecision -> Kafka -> gov-audit -> Redis) keeps
# gov-audit and Redis busy after a run, and the data it adds makes Redis rewrite its
# append-only file (a forked redis-server child, a core for tens of seconds). So that one
# benchmark's background work does not land in the next one's window (OPA's above all),
# wait until gov-audit, gov-rulepacks, gov-edge and this stack's redis-server (var/run/redis.pid)
# with its children (the append-only-file rewrite is a forked redis-server) together use
# < 5% of a core over a second (at most BENCH_QUIET_TIMEOUT s, default 300). Other stacks'
# Redis on the machine are not waited for: on a shared machine they are never quiet.
QUIET_WAIT=0
wait_quiet() {
  local pids=() n f start=$SECONDS t0 t1 p
  while :; do
    pids=()
    for n in gov-audit gov-rulepacks gov-edge; do
      f=var/run/$n.pid
      [[ -s $f ]] && pids+=("$(cat "$f")")
    done
    if [[ -s var/run/redis.pid ]]; then
      p="$(cat var/run/redis.pid)"
      pids+=("$p")
      for p in $(pgrep -P "$p" || true); do pids+=("$p"); done
    fi
    (( ${#pids[@]} > 0 )) || break
    t0=0; for p in "${pids[@]}"; do t0=$(( t0 + $(proc_ticks "$p") )); done
    sleep 1
    t1=0; for p in "${pids[@]}"; do t1=$(( t1 + $(proc_ticks "$p") )); done
    (( (t1 - t0) * 100 < 5 * CLK_TCK )) && break
    if (( SECONDS - start >= ${BENCH_QUIET_TIMEOUT:-300} )); then
      printf 'bench/run.sh: warning: the services did not go quiet within %ss; measuring anyway\n' "${BENCH_QUIET_TIMEOUT:-300}" >&2
      break
    fi
  done
  QUIET_WAIT=$(( SECONDS - start ))
  (( QUIET_WAIT > 1 )) && say "waited ${QUIET_WAIT}s for the services to go quiet (the decision log: gov-audit, Redis)"
  return 0
}

# Sum of gov-audit's consumer lag on policy.decisions (from its /metrics), or -1.
audit_lag() {
  local url="${GOV_ADMIN_AUDIT:-}"
  [[ -n $url ]] || { echo -1; return; }
  curl -s -m 2 "$url/metrics" 2>/dev/null \
    | awk '/^processor_consumer_lag\{.*topic="policy.decisions"/ { s += $NF; n++ } END { print n ? s : -1 }'
}

json_str() { # a JSON string body: escapes \ and "
  local s=${1//\\/\\\\}; printf '%s' "${s//\"/\\\"}"
}

# --- build ----------------------------------------------------------------------------
say "building the bench tools (make bench-tools)"
make --no-print-directory bench-tools >"$LOGS/build.log" 2>&1 || { tail -n 30 "$LOGS/build.log" >&2; die "make bench-tools failed (log: $LOGS/build.log)"; }

say "generating $REQUESTS_N requests (seed $SEED, prompts of $PROMPT_BYTES bytes) -> $REQS"
"$TOOLS/gen_requests" --count "$REQUESTS_N" --seed "$SEED" --tenant "$TENANT" \
  --prompt-bytes "$PROMPT_BYTES" --out "$REQS"

# --- servers this script starts (OPA, Hydra, the pkcs11 gov-edge) -----------------------------
# stop_pid PIDFILE EXE: SIGTERM (then SIGKILL after 5 s) to the process of PIDFILE, only when it
# still runs EXE (a recycled pid is left alone).
stop_pid() {
  local f=$1 exe=$2
  [[ -s $f ]] || return 0
  local pid; pid="$(cat "$f")"
  if [[ $pid =~ ^[0-9]+$ ]] && [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$exe" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    local i; for (( i = 0; i < 50; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
port_in_use() { timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }
# wait_up NAME URL PIDFILE LOG SECONDS: until URL answers 200; dies (showing LOG) when the
# process of PIDFILE exits or SECONDS pass.
wait_up() {
  local name=$1 url=$2 pidfile=$3 log=$4 i
  for (( i = 0; i < $5 * 10; i++ )); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" == 200 ]] && return 0
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -n 30 "$log" >&2; die "$name exited"; }
    sleep 0.1
  done
  die "$name did not answer $url with 200 within $5 s (log: $log)"
}

# --- OPA -------------------------------------------------------------------------------------
stop_opa() { stop_pid "$OPA_PIDFILE" "$OPA"; }

build_opa() {
  if [[ -x $OPA ]] && "$OPA" version 2>/dev/null | grep -q "^Version: ${OPA_VERSION#v}\$"; then
    return 0
  fi
  local go=/usr/local/go/bin/go
  [[ -x $go ]] || die "Go is not installed at $go (needed once to build Open Policy Agent $OPA_VERSION)"
  say "building Open Policy Agent $OPA_VERSION with $($go version | cut -d' ' -f3) (once; cached in $OPA_DIR)"
  mkdir -p "$OPA_DIR"
  ( export GOPATH="$OPA_DIR/gopath" GOBIN="$OPA_DIR/bin" GOMODCACHE="$OPA_DIR/gomodcache" \
           GOCACHE="$OPA_DIR/gocache" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
    cd "$OPA_DIR" && "$go" install "github.com/open-policy-agent/opa@$OPA_VERSION" ) \
    >"$OPA_DIR/build.log" 2>&1 || { tail -n 20 "$OPA_DIR/build.log" >&2; die "building OPA failed (log: $OPA_DIR/build.log)"; }
  "$OPA" version | grep -q "^Version: ${OPA_VERSION#v}\$" || die "$OPA is not version $OPA_VERSION"
}

start_opa() {
  stop_opa
  if port_in_use "$OPA_PORT"; then
    die "127.0.0.1:$OPA_PORT is in use by a process this script did not start (set BENCH_OPA_PORT)"
  fi
  say "starting OPA $OPA_VERSION on 127.0.0.1:$OPA_PORT with $REGO"
  setsid "$OPA" run --server --addr "127.0.0.1:$OPA_PORT" --disable-telemetry \
    --log-level error "$REGO" >"$LOGS/opa.log" 2>&1 </dev/null &
  echo $! >"$OPA_PIDFILE"
  wait_up OPA "http://127.0.0.1:$OPA_PORT/health" "$OPA_PIDFILE" "$LOGS/opa.log" 10
}

# --- Ory Hydra and the token benchmarks ---------------------------------------------------------
stop_hydra() { stop_pid "$HYDRA_PIDFILE" "$HYDRA"; }
stop_edge11() { stop_pid "$EDGE11_PIDFILE" "$ROOT/$BIN/gov-edge"; }
# evaluate-soak, cut short (die): its memory sampler stopped, the usual windows back
soak_restore() {
  [[ -n ${SOAK_SAMPLER:-} ]] && { kill "$SOAK_SAMPLER" 2>/dev/null || true; }
  if (( ${SOAK_HOT:-0} )); then hot_window_restart || true; fi
}
trap 'stop_opa; stop_hydra; stop_edge11; soak_restore' EXIT

# Hydra's go.mod replaces github.com/ory/hydra-client-go/v2 with ./internal/httpclient, a nested
# module that the module zip does not carry, so `go install github.com/ory/hydra/v2@VERSION`
# (which refuses replace directives) cannot build it. So: download the module, copy it out of
# the module cache, point that replace at the published hydra-client-go/v2 of the version its
# go.mod requires, and build with the sqlite tags of Hydra's own Makefile (the in-memory store,
# DSN=memory, is SQLite: go-sqlite3, so cgo).
build_hydra() {
  if [[ -x $HYDRA ]] && "$HYDRA" version 2>/dev/null | grep -Eq "^Version:[[:space:]]+$HYDRA_VERSION\$"; then
    return 0
  fi
  local go=/usr/local/go/bin/go
  [[ -x $go ]] || die "Go is not installed at $go (needed once to build Ory Hydra $HYDRA_VERSION)"
  command -v cc >/dev/null || die "a C compiler is needed to build Ory Hydra (go-sqlite3 is cgo)"
  say "building Ory Hydra $HYDRA_VERSION with $($go version | cut -d' ' -f3) (once; cached in $HYDRA_DIR; several minutes)"
  mkdir -p "$HYDRA_DIR"
  ( set -e
    export GOPATH="$HYDRA_DIR/gopath" GOMODCACHE="$HYDRA_DIR/gomodcache" GOCACHE="$HYDRA_DIR/gocache" \
           GOTOOLCHAIN=local CGO_ENABLED=1 GOFLAGS="-modcacherw -mod=mod"
    cd "$HYDRA_DIR"
    local dir cv
    dir="$("$go" mod download -json "github.com/ory/hydra/v2@$HYDRA_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -d $dir ]] || { echo "go mod download gave no module directory" >&2; exit 1; }
    cv="$(sed -n 's#^[[:space:]]*github.com/ory/hydra-client-go/v2 \(v[^ ]*\)$#\1#p' "$dir/go.mod" | head -n1)"
    [[ -n $cv ]] || { echo "no github.com/ory/hydra-client-go/v2 requirement in $dir/go.mod" >&2; exit 1; }
    rm -rf src && cp -r "$dir" src && chmod -R u+w src && cd src
    "$go" mod edit -replace "github.com/ory/hydra-client-go/v2=github.com/ory/hydra-client-go/v2@$cv"
    time "$go" build -tags sqlite,sqlite_omit_load_extension \
      -ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$HYDRA_VERSION" -o "$HYDRA" . ) \
    >"$HYDRA_DIR/build.log" 2>&1 || { tail -n 20 "$HYDRA_DIR/build.log" >&2; die "building Ory Hydra failed (log: $HYDRA_DIR/build.log)"; }
  "$HYDRA" version | grep -Eq "^Version:[[:space:]]+$HYDRA_VERSION\$" || die "$HYDRA is not version $HYDRA_VERSION"
}

# Hydra with its in-memory store and JWT access tokens (its default signing key for them: a
# generated RS256 key), loopback only, --dev for plain HTTP (as the edge serves it here).
start_hydra() {
  stop_hydra
  local p
  for p in "$HYDRA_PORT" "$HYDRA_ADMIN_PORT"; do
    port_in_use "$p" && die "127.0.0.1:$p is in use by a process this script did not start (set BENCH_HYDRA_PORT)"
  done
  say "starting Ory Hydra $HYDRA_VERSION on 127.0.0.1:$HYDRA_PORT (admin $HYDRA_ADMIN_PORT), DSN=memory, STRATEGIES_ACCESS_TOKEN=jwt"
  env DSN=memory STRATEGIES_ACCESS_TOKEN=jwt URLS_SELF_ISSUER="http://127.0.0.1:$HYDRA_PORT" \
    SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$HYDRA_PORT" \
    SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$HYDRA_ADMIN_PORT" \
    SECRETS_SYSTEM="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" LOG_LEVEL=error \
    setsid "$HYDRA" serve all --dev --sqa-opt-out >"$LOGS/hydra.log" 2>&1 </dev/null &
  echo $! >"$HYDRA_PIDFILE"
  wait_up Hydra "http://127.0.0.1:$HYDRA_ADMIN_PORT/health/ready" "$HYDRA_PIDFILE" "$LOGS/hydra.log" 30
}

json_member() { # JSON text, member name -> the member's string value (flat objects)
  sed -n "s/.*\"$2\" *: *\"\\([^\"]*\\)\".*/\\1/p" <<<"$1"
}

# hydra_client: a client-credentials client through Hydra's admin API -> HYDRA_ID, HYDRA_SECRET;
# then one token must come back (200, a JWT) before anything is timed.
hydra_client() {
  local c
  c="$(curl -s -X POST "http://127.0.0.1:$HYDRA_ADMIN_PORT/admin/clients" -H 'Content-Type: application/json' \
        -d "{\"client_name\":\"soma-gov-bench\",\"grant_types\":[\"client_credentials\"],\"scope\":\"$TOKEN_SCOPE\",\"token_endpoint_auth_method\":\"client_secret_basic\"}")"
  HYDRA_ID="$(json_member "$c" client_id)"; HYDRA_SECRET="$(json_member "$c" client_secret)"
  [[ -n $HYDRA_ID && -n $HYDRA_SECRET ]] || die "Hydra's admin API made no client: $c"
  local t
  t="$(curl -s -u "$HYDRA_ID:$HYDRA_SECRET" -d grant_type=client_credentials -d "scope=$TOKEN_SCOPE" \
        "http://127.0.0.1:$HYDRA_PORT/oauth2/token")"
  [[ "$(json_member "$t" access_token)" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] \
    || die "Hydra issued no JWT access token: $t"
  local h; h="$(json_member "$t" access_token | cut -d. -f1 | tr '_-' '/+')"
  while (( ${#h} % 4 )); do h+="="; done
  HYDRA_ALG="$(json_member "$(base64 -d <<<"$h" 2>/dev/null || true)" alg)"
  say "Hydra issues JWT access tokens (client $HYDRA_ID, alg ${HYDRA_ALG:-?})"
}

# edge_client EDGE_URL: registers a fresh bench client (govctl clients add, tenant bench) ->
# TOK_ID, TOK_SECRET, and waits until EDGE_URL issues it a token (gov-identity materializes the
# client into Redis, where the edge reads it). TOK_PROBES: the tokens those probes got (they
# count among the tokens handed out).
edge_client() {
  local edge=$1 c code deadline=$(( SECONDS + SERVE_TIMEOUT ))
  c="$("$BIN/govctl" clients add --tenants "$TENANT" --scopes "$TOKEN_SCOPE")" || die "govctl clients add failed"
  TOK_ID="$(json_member "$c" client_id)"; TOK_SECRET="$(json_member "$c" client_secret)"
  [[ -n $TOK_ID && -n $TOK_SECRET ]] || die "govctl clients add printed no client: $c"
  TOK_PROBES=0
  while :; do
    code="$(curl -s -o "$OUT/token-probe.json" -w '%{http_code}' -u "$TOK_ID:$TOK_SECRET" \
             -d grant_type=client_credentials -d "scope=$TOKEN_SCOPE" -d "tenant=$TENANT" \
             "$edge/v1/tokens/issue" || true)"
    [[ $code == 200 ]] && { TOK_PROBES=$(( TOK_PROBES + 1 )); break; }
    (( SECONDS >= deadline )) && die "$edge/v1/tokens/issue did not issue a token to the new client $TOK_ID within ${SERVE_TIMEOUT}s (last: $code $(head -c 300 "$OUT/token-probe.json"))"
    sleep 0.2
  done
}

# A second gov-edge, the stack's configuration with GOV_SIGNER_BACKEND=pkcs11 (the stack's
# SoftHSM2 token: GOV_PKCS11_MODULE, GOV_PKCS11_TOKEN_LABEL, GOV_PKCS11_PIN of var/stack.env).
start_edge11() {
  stop_edge11
  local port=${BENCH_PKCS11_EDGE_PORT:-}
  if [[ -z $port ]]; then
    for port in $(seq $(( 9300 + ${GOV_PORT_OFFSET:-0} )) $(( 9399 + ${GOV_PORT_OFFSET:-0} ))); do
      port_in_use "$port" || break
    done
  fi
  port_in_use "$port" && die "127.0.0.1:$port is in use (set BENCH_PKCS11_EDGE_PORT)"
  say "starting a gov-edge with GOV_SIGNER_BACKEND=pkcs11 on 127.0.0.1:$port"
  ( set -a; . var/stack.env; set +a
    export GOV_PORT="$port" GOV_ADMIN_PORT="$port" GOV_SIGNER_BACKEND=pkcs11 GOV_EDGE_ID=bench-pkcs11
    exec setsid "$ROOT/$BIN/gov-edge" ) >"$LOGS/gov-edge-pkcs11.log" 2>&1 </dev/null &
  echo $! >"$EDGE11_PIDFILE"
  EDGE11_URL="http://127.0.0.1:$port"
  wait_up "the pkcs11 gov-edge" "$EDGE11_URL/healthz" "$EDGE11_PIDFILE" "$LOGS/gov-edge-pkcs11.log" 30
}

# TokenIssued events on identity.tokens that name client $1. The client is fresh (random id),
# and TokenRevoked carries no client id, so every message that holds the id is its TokenIssued.
# kcat -J prints one JSON envelope a line (the Avro payload's control bytes escaped).
token_events() {
  kcat -C -b "$GOV_KAFKA_BROKERS" -t identity.tokens -o beginning -e -q -J 2>"$LOGS/kcat.err" \
    | grep -c -F -- "$1" || true
}

# run_token NAME URL FORM ID SECRET SERVER-PID PROBES: closed-loop token load (bench/loadgen);
# with PROBES set (gov-edge), the audit check: TokenIssued events of client ID == tokens handed
# out (PROBES + every token loadgen received, warm-up included; loadgen awaits every request in
# flight, so no token was issued that nobody received).
run_token() {
  local name=$1 url=$2 form=$3 id=$4 secret=$5 pid=$6 probes=${7:-}
  run_loadgen "$name" "$pid" \
    "${WARMUP}s + ${DURATION}s, $TOKEN_CONNS connections, closed loop (bench/loadgen) -> $url" \
    "every answer must be 200 with a token that parses; a run with failures is not a result" \
    "$TOOLS/loadgen" --url "$url" --form "$form" --basic "$id:$secret" --expect-token \
    --closed-loop --duration "$DURATION" --warmup "$WARMUP" --connections "$TOKEN_CONNS" \
    --name "$name" --out "$PARTS/$name.json"
  [[ -n $probes ]] || return 0
  local got handed events
  got="$(sed -n 's/^ *"tokens_received": *\([0-9]*\).*/\1/p' "$PARTS/$name.json")"
  handed=$(( probes + got ))
  events="$(token_events "$id")"
  printf '{"meta_for":["%s"],"audit":{"topic":"identity.tokens","client_id":"%s","token_issued_events":%s,"tokens_handed_out":%s,"all_acknowledged":%s}}\n' \
    "$name" "$id" "$events" "$handed" "$( [[ $events == "$handed" ]] && echo true || echo false)" >"$PARTS/meta-audit-$name.json"
  say "$name: $events TokenIssued events on identity.tokens for client $id, $handed tokens handed out"
  [[ $events == "$handed" ]] || die "$name: TokenIssued events ($events) != tokens handed out ($handed): not every issuance was audited"
}

# --- the bench tenant on the stack -----------------------------------------------------------
publish_tenant() {
  # shellcheck source=/dev/null
  set -a; . var/stack.env; set +a
  local edge="$GOV_EDGE_URL" govctl="$BIN/govctl"
  local keys="$GOV_VAR_DIR/demo/keys" trust="$GOV_TRUST_FILE"
  [[ -s $keys/human_operator.key && -s $keys/somabrain_root.key && -s $trust ]] \
    || die "the demo signers are missing ($keys, $trust): run deploy/stack.sh start"

  # Constitution: signed by the two demo signers the stack's gov-constitution trusts.
  # Ed25519 signatures are deterministic: re-signing gives the same bundle bytes.
  cp "$CONSTITUTION_SRC" "$CONSTITUTION.tmp"
  "$govctl" sign --signer human_operator --key "$keys/human_operator.key" "$CONSTITUTION.tmp" >/dev/null
  "$govctl" sign --signer somabrain_root --key "$keys/somabrain_root.key" "$CONSTITUTION.tmp" >/dev/null
  local v; v="$("$govctl" verify --trust "$trust" "$CONSTITUTION.tmp")" || die "the bench constitution does not verify"
  mv -f "$CONSTITUTION.tmp" "$CONSTITUTION"
  local checksum; checksum="$(sed -n 's/.* checksum=\([0-9a-f]*\).*/\1/p' <<<"$v")"
  if [[ "$(curl -s "$edge/v1/constitution/$TENANT/hash" || true)" == *"\"$checksum\""* ]]; then
    say "the edge already serves the bench constitution (checksum ${checksum:0:16}...)"
  else
    say "publishing the bench constitution (govctl publish --tenant $TENANT)"
    "$govctl" publish --tenant "$TENANT" --source bench/run.sh "$CONSTITUTION"
  fi

  # Rule pack: signed and published with govctl.
  head -n 1 "$REQS" >"$OUT/probe.ndjson"
  if "$TOOLS/equiv_check" --pack "$PACK" --constitution "$CONSTITUTION" --requests "$OUT/probe.ndjson" \
       --edge "$edge/v1/evaluate" 2>/dev/null; then
    say "the edge already evaluates tenant $TENANT with this rule pack's version"
  else
    # Signed by the demo rule-pack operator the stack's gov-rulepacks and gov-edge trust
    # for tenant bench (deploy/demo.sh); the signatures stay detached, under $OUT.
    local pack_key="$keys/pack_operator.key" sigs="$OUT/rulepack.sig"
    [[ -s $pack_key && -s ${GOV_RULEPACK_TRUST_FILE:-} ]] \
      || die "the demo rule-pack operator is missing ($pack_key, GOV_RULEPACK_TRUST_FILE): run deploy/stack.sh start"
    "$govctl" rulepack sign --signer pack_operator --key "$pack_key" --sigs "$sigs" "$PACK" >/dev/null
    say "publishing the bench rule pack (govctl rulepack publish $PACK, signed by pack_operator)"
    "$govctl" rulepack publish --sigs "$sigs" "$PACK"
  fi

  say "waiting until gov-edge serves tenant $TENANT ($edge/v1/evaluate, up to ${SERVE_TIMEOUT}s)"
  local deadline=$(( SECONDS + SERVE_TIMEOUT ))
  until "$TOOLS/equiv_check" --pack "$PACK" --constitution "$CONSTITUTION" --requests "$OUT/probe.ndjson" \
          --edge "$edge/v1/evaluate" 2>"$LOGS/probe.log"; do
    if (( SECONDS >= deadline )); then
      cat "$LOGS/probe.log" >&2
      die "gov-edge does not serve tenant $TENANT with $PACK after ${SERVE_TIMEOUT}s (see var/log/gov-edge.log, var/log/gov-rulepacks.log; a changed pack needs a higher \"version\")"
    fi
    sleep 0.5
  done
  EDGE_URL="$edge/v1/evaluate"
  EDGE_PID="$(cat "$GOV_VAR_DIR/run/gov-edge.pid")"
}

if (( NEED_EDGE )); then
  say "making sure the stack is up (deploy/stack.sh start)"
  bash deploy/stack.sh start >"$LOGS/stack.log" 2>&1 || { tail -n 30 "$LOGS/stack.log" >&2; die "deploy/stack.sh start failed (log: $LOGS/stack.log)"; }
  publish_tenant
  export BENCH_REDIS_USED_BEFORE; BENCH_REDIS_USED_BEFORE="$(redis_used)"
else
  # Without the edge nothing is published: the scorer and rego_gen read only the
  # document's rules, which signing does not change.
  CONSTITUTION=$CONSTITUTION_SRC
  if want sign-raw-pkcs11; then # the stack's SoftHSM2 token
    say "making sure the stack is up (deploy/stack.sh start)"
    bash deploy/stack.sh start >"$LOGS/stack.log" 2>&1 || { tail -n 30 "$LOGS/stack.log" >&2; die "deploy/stack.sh start failed (log: $LOGS/stack.log)"; }
    set -a; . var/stack.env; set +a
  fi
fi
want hydra-token-issue && build_hydra

if (( NEED_OPA )); then
  build_opa
  export BENCH_OPA_VERSION="$OPA_VERSION"
  say "generating the Rego policy (bench/rego_gen) -> $REGO"
  "$TOOLS/rego_gen" --pack "$PACK" --constitution "$CONSTITUTION" --out "$REGO"
  "$OPA" check "$REGO" >/dev/null || die "opa check $REGO failed"
  start_opa
fi

# --- equivalence, on every input, before anything is timed --------------------------------
if (( NEED_EDGE || NEED_OPA )); then
  say "checking that libgov$( (( NEED_EDGE )) && printf ', gov-edge')$( (( NEED_OPA )) && printf ' and OPA') agree on all $REQUESTS_N requests"
  args=(--pack "$PACK" --constitution "$CONSTITUTION" --requests "$REQS" --out "$OUT/equivalence.json")
  (( NEED_EDGE )) && args+=(--edge "$EDGE_URL")
  (( NEED_OPA )) && args+=(--opa "$OPA_URL")
  "$TOOLS/equiv_check" "${args[@]}" || die "the engines disagree (above: the offending input); nothing was timed"
fi

# --- the benchmarks ------------------------------------------------------------------------
run_wrk() { # name url plain|wrap server-pid
  local name=$1 url=$2 mode=$3 pid=$4
  local cmd=(wrk "-t$THREADS" "-c$CONNS" "-d${DURATION}s" --timeout 10s -s bench/wrk-cycle.lua "$url" -- "$REQS" "$mode" "$THREADS")
  wait_quiet
  say "$name: warm-up ${WARMUP}s, then wrk -t$THREADS -c$CONNS -d${DURATION}s $url"
  wrk "-t$THREADS" "-c$CONNS" "-d${WARMUP}s" --timeout 10s -s bench/wrk-cycle.lua "$url" -- "$REQS" "$mode" "$THREADS" \
    >"$LOGS/$name.warmup.txt" 2>&1 || die "$name: wrk warm-up failed (log: $LOGS/$name.warmup.txt)"
  meta_begin "$pid"
  GEN_OUT="$LOGS/$name.wrk.txt" GEN_ERR="$LOGS/$name.wrk.err"
  gen_cpu "${cmd[@]}" || { cat "$LOGS/$name.wrk.txt" "$LOGS/$name.wrk.err" >&2; die "$name: wrk failed"; }
  meta_end
  local line; line="$(sed -n 's/^WRK_JSON //p' "$LOGS/$name.wrk.txt")"
  [[ -n $line ]] || { cat "$LOGS/$name.wrk.txt" >&2; die "$name: no WRK_JSON line in wrk's output"; }
  printf '{"name":"%s","tool":"wrk","url":"%s","concurrency":%s,"threads":%s,"duration_s":%s,"warmup_s":%s,"command":"%s","wrk":%s}\n' \
    "$name" "$url" "$CONNS" "$THREADS" "$DURATION" "$WARMUP" "$(json_str "${cmd[*]}")" "$line" >"$PARTS/$name.json"
  write_meta "$name"
  grep -E 'Requests/sec|Latency|Non-2xx|Socket errors' "$LOGS/$name.wrk.txt" | sed 's/^/    /'
}

# run_loadgen NAME SERVER-PID WHAT WHY-IT-FAILS CMD...: one bench/loadgen run, measured
# (meta_begin/meta_end around it), its stderr summary printed. After wait_quiet, unless
# RL_NO_QUIET is set (the soak waited already and its memory sampler runs from the load's start).
run_loadgen() {
  local name=$1 pid=$2 what=$3 why=$4
  shift 4
  [[ -n ${RL_NO_QUIET:-} ]] || wait_quiet
  say "$name: $what"
  meta_begin "$pid"
  GEN_OUT=/dev/null GEN_ERR="$LOGS/$name.loadgen.txt"
  gen_cpu "$@" || { cat "$LOGS/$name.loadgen.txt" >&2; die "$name: loadgen failed${why:+ ($why)}"; }
  meta_end
  write_meta "$name"
  sed 's/^/    /' "$LOGS/$name.loadgen.txt"
}

# The decision log's CPU (issue 12: <= 40 us per decision for gov-audit + Redis + the broker):
# utime+stime (/proc/PID/stat) of the stack's gov-audit, redis-server and Kafka JVM (their
# var/run pid files: another stack's processes on the machine are not counted) from before the
# run until gov-audit's lag on policy.decisions and identity.audit is back to 0, divided by the
# decisions gov-audit handled on policy.decisions meanwhile (its processor_events_total). The
# drain time (end of the run -> lag 0) is the "lag back to zero within 5 s" figure.
audit_decisions() { # decisions gov-audit finished on policy.decisions (any outcome but retried)
  curl -s -m 2 "${GOV_ADMIN_AUDIT:-}/metrics" 2>/dev/null \
    | awk '/^processor_events_total\{.*topic="policy.decisions"/ && !/outcome="retried"/ { s += $NF } END { print s + 0 }'
}
audit_lag_all() { # gov-audit's lag over both its topics, or -1
  curl -s -m 2 "${GOV_ADMIN_AUDIT:-}/metrics" 2>/dev/null \
    | awk '/^processor_consumer_lag\{/ { s += $NF; n++ } END { print n ? s : -1 }'
}
pipeline_begin() {
  P_AUDIT0=$(proc_ticks "$(cat var/run/gov-audit.pid 2>/dev/null || echo 0)")
  P_REDIS0=$(proc_ticks "$(cat var/run/redis.pid 2>/dev/null || echo 0)")
  P_KAFKA0=$(proc_ticks "$(cat var/run/kafka.pid 2>/dev/null || echo 0)")
  P_DEC0=$(audit_decisions)
}
# audit_drain SECONDS: until gov-audit's lag on both its topics is 0; 1 when SECONDS passed first.
# The lag gauge is refreshed once a second: a 0 is believed once the decision count is still too.
audit_drain() {
  local t0 lag dec
  t0=$(date +%s%N)
  while :; do
    lag=$(audit_lag_all); dec=$(audit_decisions)
    if [[ $lag == 0 ]]; then
      sleep 1.1
      [[ $(audit_lag_all) == 0 && $(audit_decisions) == "$dec" ]] && return 0
    fi
    (( ($(date +%s%N) - t0) / 1000000000 >= $1 )) && return 1
    sleep 0.2
  done
}
pipeline_end() { # name: waits for the lag to reach 0 (BENCH_AUDIT_DRAIN_TIMEOUT, 120 s), writes the meta
  local name=$1 t0 drained=true
  t0=$(date +%s%N)
  audit_drain "${BENCH_AUDIT_DRAIN_TIMEOUT:-120}" || drained=false
  local drain_ns=$(( $(date +%s%N) - t0 ))
  local a r k n
  a=$(( $(proc_ticks "$(cat var/run/gov-audit.pid 2>/dev/null || echo 0)") - P_AUDIT0 ))
  r=$(( $(proc_ticks "$(cat var/run/redis.pid 2>/dev/null || echo 0)") - P_REDIS0 ))
  k=$(( $(proc_ticks "$(cat var/run/kafka.pid 2>/dev/null || echo 0)") - P_KAFKA0 ))
  n=$(( $(audit_decisions) - P_DEC0 ))
  awk -v name="$name" -v a="$a" -v r="$r" -v k="$k" -v n="$n" -v hz="$CLK_TCK" -v d="$drain_ns" -v ok="$drained" 'BEGIN {
    per = n > 0 ? (a + r + k) / hz * 1e6 / n : -1
    printf "{\"meta_for\":[\"%s\"],\"decision_log\":{\"decisions\":%d,\"gov_audit_cpu_s\":%.2f,\"redis_cpu_s\":%.2f,\"broker_cpu_s\":%.2f,", name, n, a / hz, r / hz, k / hz
    printf "\"cpu_us_per_decision\":%.1f,\"drained\":%s,\"drain_s\":%.1f,\"measured_until\":\"gov-audit lag 0 on policy.decisions and identity.audit\"}}\n", per, ok, d / 1e9
  }' >"$PARTS/meta-$name-decision-log.json"
  say "$name: decision log: $(sed 's/.*"decision_log"://; s/}}$/}/' "$PARTS/meta-$name-decision-log.json")"
}

run_rate() { # name url rate wrap? server-pid [duration]
  local name=$1 url=$2 rate=$3 wrap=$4 pid=$5 dur=${6:-$RATE_DURATION}
  local cmd=("$TOOLS/loadgen" --url "$url" --bodies "$REQS" --rate "$rate" --duration "$dur"
             --warmup "$WARMUP" --connections "$CONNS" --name "$name" --out "$PARTS/$name.json")
  [[ $wrap == wrap ]] && cmd+=(--wrap-input)
  # the edge's entries: the decision log's CPU per decision, measured until gov-audit caught up
  [[ $wrap == wrap ]] || { wait_quiet; pipeline_begin; }
  run_loadgen "$name" "$pid" "${rate} requests/s for ${WARMUP}s + ${dur}s over $CONNS connections (bench/loadgen)" "" "${cmd[@]}"
  [[ $wrap == wrap ]] || pipeline_end "$name"
}

if want scorer-inprocess; then
  wait_quiet
  say "scorer-inprocess: 1 and 2 threads, ${SCORER_DURATION}s each after 1s of warm-up"
  meta_begin
  GEN_OUT=/dev/null GEN_ERR="$LOGS/scorer-inprocess.txt"
  gen_cpu "$TOOLS/scorer_bench" --pack "$PACK" --constitution "$CONSTITUTION" --requests "$REQS" \
    --threads 1,2 --duration "$SCORER_DURATION" --warmup 1 --out "$PARTS/scorer-inprocess.json" \
    || { cat "$LOGS/scorer-inprocess.txt" >&2; die "scorer_bench failed"; }
  meta_end
  sed 's/^/    /' "$LOGS/scorer-inprocess.txt"
  write_meta scorer-inprocess-1t scorer-inprocess
fi
want evaluate && run_wrk evaluate "$EDGE_URL" plain "$EDGE_PID"
want opa-evaluate && run_wrk opa-evaluate "$OPA_URL" wrap "$(cat "$OPA_PIDFILE")"
for rate in $RATES; do
  want evaluate-rate && run_rate "evaluate-rate-$rate" "$EDGE_URL" "$rate" plain "$EDGE_PID"
  want opa-evaluate-rate && run_rate "opa-evaluate-rate-$rate" "$OPA_URL" "$rate" wrap "$(cat "$OPA_PIDFILE")"
done
# rate-sweep: the edge (decision log on) and OPA at each offered rate of SWEEP_RATES, side by side,
# SWEEP_DURATION s each; plotted after the report (bench/plot_sweep.sh -> SWEEP_PNG)
if want rate-sweep; then
  for rate in $SWEEP_RATES; do
    run_rate "evaluate-sweep-$rate" "$EDGE_URL" "$rate" plain "$EDGE_PID" "$SWEEP_DURATION"
    run_rate "opa-evaluate-sweep-$rate" "$OPA_URL" "$rate" wrap "$(cat "$OPA_PIDFILE")" "$SWEEP_DURATION"
  done
fi

# --- evaluate-soak: the hot window stays bounded (issue 12, point 5) ------------------------
# The stack's gov-audit and gov-archive are restarted with GOV_HOT_WINDOW=<W>s (deploy/stack.sh:
# decision_ttl = event_id_window = segment_age = W), then gov-edge takes SOAK_RATE evaluations/s
# for SOAK_SECONDS (bench/loadgen, open loop, no warm-up: every request sent is counted) while
# Redis's used_memory is sampled every 5 s. Checks, all in the entry's "soak":
#   used_memory_flat   the window is full by the end of the run's first third (W <= S/3) and
#                      the last third's highest sample is at most SOAK_FLAT_PCT % (10) above
#                      the second third's highest: growth after the window filled is a leak
#   every_decision_chained  the tenant's chain head advanced by exactly the decisions gov-edge
#                      made for it in the run (policy_decision_total{tenant="bench"}), with no
#                      decision-log failure (policy_decision_log_failed_total), once gov-audit's
#                      lag is 0; tenant bench gets no other event meanwhile
#   chain_verified     `govctl audit verify --tenant bench --archive DIR` exits 0: the chain from
#                      genesis is whole across the archive's segments and the tail, so every seq
#                      counted above is in one of them, linked
# Afterwards both processes are restarted with the stack's usual windows.
edge_metric_sum() { # FAMILY [LABEL-FILTER]: sum of gov-edge's series of FAMILY matching the filter
  curl -s -m 2 "${GOV_EDGE_URL:-}/metrics" 2>/dev/null \
    | awk -v fam="$1" -v filt="${2:-}" 'index($0, fam "{") == 1 || $1 == fam { if (filt == "" || index($0, filt)) s += $NF } END { printf "%d\n", s }'
}
chain_head_seq() { # the tenant's chain head seq (0 when there is none)
  local s
  s="$(redis-cli -h "${GOV_REDIS_HOST:-127.0.0.1}" -p "${GOV_REDIS_PORT:-6390}" HGET "audit:{$TENANT}:head" seq 2>/dev/null | tr -d '\r')"
  printf '%s\n' "${s:-0}"
}
# hot_window_restart [DURATION]: gov-audit and gov-archive again, with GOV_HOT_WINDOW=DURATION
# (or, without it, the stack's usual windows).
hot_window_restart() {
  local n
  for n in gov-audit gov-archive; do stop_pid "var/run/$n.pid" "$ROOT/$BIN/$n"; done
  if [[ -n ${1:-} ]]; then
    GOV_HOT_WINDOW="$1" bash deploy/stack.sh start >>"$LOGS/stack.log" 2>&1
  else
    env -u GOV_HOT_WINDOW -u GOV_DECISION_TTL -u GOV_EVENT_ID_WINDOW -u GOV_SEGMENT_AGE \
      bash deploy/stack.sh start >>"$LOGS/stack.log" 2>&1
  fi || { tail -n 30 "$LOGS/stack.log" >&2; die "deploy/stack.sh start (hot window '${1:-usual}') failed (log: $LOGS/stack.log)"; }
}
SOAK_HOT=0
run_soak() {
  local name=evaluate-soak d0 d1 f0 f1 h0 h1 verify_out vrc=0
  (( SOAK_WINDOW * 3 <= SOAK_SECONDS )) \
    || say "$name: warning: the window (${SOAK_WINDOW}s) is not full by the end of the run's first third; used_memory_flat cannot pass"
  wait_quiet
  say "$name: restarting gov-audit and gov-archive with the hot window ${SOAK_WINDOW}s (GOV_HOT_WINDOW)"
  SOAK_HOT=1
  hot_window_restart "${SOAK_WINDOW}s"
  wait_quiet   # after the restart: the sampler's 0 s is the load's start, nothing before it
  # the chain head below must not still grow with an earlier benchmark's decisions
  audit_drain 300 || die "$name: gov-audit's lag did not reach 0 within 300 s before the soak"
  d0=$(edge_metric_sum policy_decision_total "tenant=\"$TENANT\"")
  f0=$(edge_metric_sum policy_decision_log_failed_total)
  h0=$(chain_head_seq)
  local series="$OUT/soak-memory.txt"
  : >"$series"
  # the sampler, every 5 s on a schedule from the start: seconds, used_memory, and the entries of
  # the tenant's chain tail (audit:{T}; what gov-archive has not yet archived and trimmed)
  ( t0=$(date +%s%N); k=0
    while :; do
      printf '%d %s %s\n' $(( k * 5 )) "$(redis_used)" "$(redis-cli -h "${GOV_REDIS_HOST:-127.0.0.1}" \
        -p "${GOV_REDIS_PORT:-6390}" XLEN "audit:{$TENANT}" 2>/dev/null | tr -d '\r')" >>"$series"
      k=$(( k + 1 ))
      now=$(date +%s%N); wait_ns=$(( t0 + k * 5000000000 - now ))
      (( wait_ns > 0 )) && sleep "$(awk -v n="$wait_ns" 'BEGIN { printf "%.3f", n / 1e9 }')"
    done ) &
  SOAK_SAMPLER=$!
  pipeline_begin
  RL_NO_QUIET=1 run_loadgen "$name" "$EDGE_PID" "$SOAK_RATE requests/s for ${SOAK_SECONDS}s over $CONNS connections, hot window ${SOAK_WINDOW}s (bench/loadgen)" "" \
    "$TOOLS/loadgen" --url "$EDGE_URL" --bodies "$REQS" --rate "$SOAK_RATE" --duration "$SOAK_SECONDS" \
    --warmup 0 --connections "$CONNS" --name "$name" --out "$PARTS/$name.json"
  kill "$SOAK_SAMPLER" 2>/dev/null || true
  wait "$SOAK_SAMPLER" 2>/dev/null || true
  SOAK_SAMPLER=""
  pipeline_end "$name"
  # the chain is counted once every decision of the run is in it: at a rate gov-audit does not
  # keep up with, its backlog takes longer than the usual drain timeout
  audit_drain "$SOAK_SECONDS" || say "$name: warning: gov-audit's lag is not 0 ${SOAK_SECONDS}s after the drain timeout; counting anyway"
  d1=$(edge_metric_sum policy_decision_total "tenant=\"$TENANT\"")
  f1=$(edge_metric_sum policy_decision_log_failed_total)
  h1=$(chain_head_seq)
  say "$name: govctl audit verify --tenant $TENANT --archive $GOV_ARCHIVE_DIR"
  verify_out="$("$BIN/govctl" audit verify --tenant "$TENANT" --archive "$GOV_ARCHIVE_DIR" 2>&1)" || vrc=$?
  printf '    %s\n' "$verify_out"
  local tail_len wm
  tail_len="$(redis-cli -h "${GOV_REDIS_HOST:-127.0.0.1}" -p "${GOV_REDIS_PORT:-6390}" XLEN "audit:{$TENANT}" 2>/dev/null | tr -d '\r')"
  wm="$(redis-cli -h "${GOV_REDIS_HOST:-127.0.0.1}" -p "${GOV_REDIS_PORT:-6390}" HGET "audit:{$TENANT}:archive" seq 2>/dev/null | tr -d '\r')"
  awk -v name="$name" -v s="$SOAK_SECONDS" -v w="$SOAK_WINDOW" -v pct="$SOAK_FLAT_PCT" \
      -v d="$(( d1 - d0 ))" -v f="$(( f1 - f0 ))" -v h0="$h0" -v h1="$h1" -v vrc="$vrc" \
      -v vout="$(json_str "$verify_out")" -v tl="${tail_len:-0}" -v wm="${wm:-0}" '
    $2 != "" { t[n] = $1; b[n] = $2; x[n] = ($3 == "" ? -1 : $3); n++ }
    END {
      m2 = -1; m3 = -1
      for (i = 0; i < n; i++) {
        if (t[i] >= s / 3 && t[i] < 2 * s / 3 && b[i] > m2) m2 = b[i]
        if (t[i] >= 2 * s / 3 && b[i] > m3) m3 = b[i]
      }
      flat = (3 * w <= s && m2 > 0 && m3 > 0 && m3 <= m2 * (1 + pct / 100)) ? "true" : "false"
      chained = (h1 - h0 == d && f == 0) ? "true" : "false"
      printf "{\"meta_for\":[\"%s\"],\"soak\":{\"window_s\":%d,\"hot_window\":{\"decision_ttl_s\":%d,\"event_id_window_s\":%d,\"segment_age_s\":%d},", name, w, w, w, w
      printf "\"redis_used_memory_series\":["
      for (i = 0; i < n; i++) printf "%s[%d,%d]", (i ? "," : ""), t[i], b[i]
      printf "],\"audit_tail_entries_series\":["
      for (i = 0; i < n; i++) printf "%s[%d,%d]", (i ? "," : ""), t[i], x[i]
      printf "],\"used_memory_second_third_max\":%d,\"used_memory_last_third_max\":%d,", m2, m3
      printf "\"used_memory_growth_pct\":%.1f,", (m2 > 0 ? 100 * (m3 - m2) / m2 : -1)
      printf "\"flat_criterion\":\"window full by s/3 (window_s*3 <= duration_s) and last third max <= second third max * (1 + %s%%)\",", pct
      printf "\"decisions\":%d,\"decision_log_failed\":%d,\"chain_seq_before\":%d,\"chain_seq_after\":%d,", d, f, h0, h1
      printf "\"archived_seq\":%d,\"tail_entries\":%d,\"verify_exit\":%d,\"verify_output\":\"%s\",", wm, tl, vrc, vout
      printf "\"checks\":{\"used_memory_flat\":%s,\"every_decision_chained\":%s,\"chain_verified\":%s}}}\n", flat, chained, (vrc == 0 ? "true" : "false")
    }' "$series" >"$PARTS/meta-$name-soak.json"
  say "$name: checks $(sed 's/.*"checks"://; s/}}}$/}/' "$PARTS/meta-$name-soak.json"); decisions $(( d1 - d0 )), chain $h0 -> $h1, archived to $wm, tail $tail_len"
  say "$name: restarting gov-audit and gov-archive with the stack's usual windows"
  hot_window_restart
  SOAK_HOT=0
}
want evaluate-soak && run_soak

# Tokens: the raw signing rate of each key store next to the tokens/s of the edge that uses it,
# and Hydra under the same load, all in this run.
run_sign() { # name file|pkcs11
  local name=$1 backend=$2
  local cmd=("$TOOLS/sign_bench" "$backend" "$THREADS" "$SIGN_DURATION")
  wait_quiet
  say "$name: ${SIGN_DURATION}s of Ed25519 signatures through the $backend key store, $THREADS threads (bench/sign_bench)"
  meta_begin
  GEN_OUT="$LOGS/$name.out" GEN_ERR="$LOGS/$name.err"
  gen_cpu "${cmd[@]}" || { cat "$LOGS/$name.err" >&2; die "$name: sign_bench failed"; }
  meta_end
  printf '{"name":"%s","tool":"sign_bench","command":"%s","sign_bench":%s}\n' \
    "$name" "$(json_str "${cmd[*]}")" "$(cat "$LOGS/$name.out")" >"$PARTS/$name.json"
  write_meta "$name"
  sed 's/^/    /' "$LOGS/$name.out"
}
want sign-raw-pem && run_sign sign-raw-pem file
want sign-raw-pkcs11 && run_sign sign-raw-pkcs11 pkcs11
EDGE_FORM="grant_type=client_credentials&scope=${TOKEN_SCOPE// /+}&tenant=$TENANT"
if want token-issue-pem; then
  edge_client "$GOV_EDGE_URL"
  run_token token-issue-pem "$GOV_EDGE_URL/v1/tokens/issue" "$EDGE_FORM" "$TOK_ID" "$TOK_SECRET" "$EDGE_PID" "$TOK_PROBES"
fi
if want token-issue-pkcs11; then
  start_edge11
  edge_client "$EDGE11_URL"
  run_token token-issue-pkcs11 "$EDGE11_URL/v1/tokens/issue" "$EDGE_FORM" "$TOK_ID" "$TOK_SECRET" "$(cat "$EDGE11_PIDFILE")" "$TOK_PROBES"
  stop_edge11
fi
if want hydra-token-issue; then
  start_hydra
  hydra_client
  run_token hydra-token-issue "http://127.0.0.1:$HYDRA_PORT/oauth2/token" \
    "grant_type=client_credentials&scope=${TOKEN_SCOPE// /+}" "$HYDRA_ID" "$HYDRA_SECRET" "$(cat "$HYDRA_PIDFILE")"
  stop_hydra
  printf '{"meta_for":["hydra-token-issue"],"hydra":{"version":"%s","dsn":"memory","access_token_strategy":"jwt","access_token_alg":"%s"}}\n' \
    "$HYDRA_VERSION" "${HYDRA_ALG:-}" >"$PARTS/meta-hydra-token-issue.json"
  export BENCH_HYDRA_VERSION="$HYDRA_VERSION"
fi

# Sessions: POST /v1/sessions/start straight to the stack's gov-edge (no gateway) with one allowed
# request of tenant bench and a bearer token (scope sessions:start) of a fresh client; every
# answer must be 201 with a session token, and, as for the tokens, every session token handed out
# must have its TokenIssued on identity.tokens.
# One sessions benchmark: name, base URL, and the loadgen mode ("closed" or a rate).
run_sessions() {
  local name=$1 base=$2 mode=$3 bearer code got handed events
  TOKEN_SCOPE="sessions:start" edge_client "$GOV_EDGE_URL"
  bearer="$(json_member "$(cat "$OUT/token-probe.json")" access_token)"
  [[ -n $bearer ]] || die "$name: no bearer token for client $TOK_ID"
  printf '{"tenant":"%s","session_id":"bench-session","user":"bench-user","role":"engineer","prompt":"Summarize the release notes of the billing service."}\n' \
    "$TENANT" >"$OUT/session-bodies.ndjson"
  code="$(curl -s -o "$OUT/session-probe.json" -w '%{http_code}' -H "Authorization: Bearer $bearer" \
           -H 'Content-Type: application/json' --data-binary @"$OUT/session-bodies.ndjson" \
           "$base/v1/sessions/start" || true)"
  [[ $code == 201 ]] || die "$name: the probe session was answered $code: $(head -c 300 "$OUT/session-probe.json")"
  local -a load=(--closed-loop --connections "$TOKEN_CONNS")
  local how="closed loop, $TOKEN_CONNS connections"
  if [[ $mode != closed ]]; then
    load=(--rate "$mode" --connections "$CONNS"); how="$mode sessions/s over $CONNS connections"
  fi
  run_loadgen "$name" "$EDGE_PID" \
    "${WARMUP}s + ${DURATION}s, $how (bench/loadgen) -> $base/v1/sessions/start" \
    "every answer must be 201 with a session token; a run with failures is not a result" \
    "$TOOLS/loadgen" --url "$base/v1/sessions/start" --bodies "$OUT/session-bodies.ndjson" \
    --bearer "$bearer" --expect-session "${load[@]}" --duration "$DURATION" --warmup "$WARMUP" \
    --name "$name" --out "$PARTS/$name.json"
  got="$(sed -n 's/^ *"tokens_received": *\([0-9]*\).*/\1/p' "$PARTS/$name.json")"
  handed=$(( got + TOK_PROBES + 1 ))   # + the bearer token + the probe session
  events="$(token_events "$TOK_ID")"
  say "$name: $events TokenIssued events on identity.tokens for client $TOK_ID, $handed tokens handed out (the bearer token included)"
  [[ $events == "$handed" ]] || die "$name: TokenIssued events ($events) != tokens handed out ($handed)"
}

want sessions-start && run_sessions sessions-start "$GOV_EDGE_URL" closed
if want sessions-start-gateway || want sessions-start-gateway-rate; then
  [[ -n ${GOV_GATEWAY_URL:-} ]] || die "sessions through the gateway: the stack has no nginx gateway (GOV_GATEWAY_URL; is nginx installed?)"
  want sessions-start-gateway && run_sessions sessions-start-gateway "$GOV_GATEWAY_URL" closed
  want sessions-start-gateway-rate && run_sessions sessions-start-gateway-rate "$GOV_GATEWAY_URL" "$SESSION_RATE"
fi

# --- report -------------------------------------------------------------------------------
if (( NEED_EDGE )); then
  wait_quiet
  export BENCH_REDIS_USED_AFTER; BENCH_REDIS_USED_AFTER="$(redis_used)"
  say "Redis used_memory: ${BENCH_REDIS_USED_BEFORE:-?} bytes before, ${BENCH_REDIS_USED_AFTER:-?} after (the decision log of every evaluation is materialized by gov-audit)"
fi
mkdir -p "$RESULTS_DIR"
"$TOOLS/report" --out "$RESULTS_DIR/results.json" --summary "$RESULTS_DIR/summary.json" \
  $( [[ -s $OUT/equivalence.json ]] && printf '%s ' "--equivalence" "$OUT/equivalence.json" ) \
  "$PARTS"/*.json
say "results: $RESULTS_DIR/results.json, summary: $RESULTS_DIR/summary.json"
if want rate-sweep; then
  command -v gnuplot >/dev/null || bash deploy/install-deps.sh --bench >"$LOGS/install-deps.log" 2>&1 \
    || { tail -n 20 "$LOGS/install-deps.log" >&2; die "installing gnuplot-nox failed (log: $LOGS/install-deps.log)"; }
  bash bench/plot_sweep.sh "$RESULTS_DIR/results.json" "$SWEEP_PNG" "$RESULTS_DIR/rate-sweep.dat" \
    "make bench BENCH=rate-sweep, ${SWEEP_DURATION} s per rate, started $BENCH_STARTED_AT, load average $BENCH_LOADAVG, $BENCH_NPROC cores"
  say "rate sweep: $SWEEP_PNG (data: $RESULTS_DIR/rate-sweep.dat)"
fi
