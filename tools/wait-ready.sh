#!/usr/bin/env bash
# tools/wait-ready.sh - waits until every given component answers 200 on /readyz.
#
#   bash tools/wait-ready.sh [--timeout SECONDS] NAME,ADMIN_URL[,PID] ...
#
# ADMIN_URL is the component's admin base URL (http://127.0.0.1:8701); its
# GET /readyz is 200 only when every part of it is OK (Kafka assignment, Redis,
# loaded state; docs/operations.md "Health") - /healthz only says the loop runs.
# deploy/stack.sh start calls it for every service it started or reused, so
# `make run` returns only when the whole chain is ready.
#
# How: polls all components together every 0.2 s (one GET each, 1 s timeout),
# prints the ones still not ready with their status (at most every 2 s, and
# whenever the set changes), and returns 0 once every one answered 200.
# Bounded: after --timeout seconds (default 60) it prints, for each component
# still not ready, its URL, its last HTTP status and its /readyz body (the
# first 600 bytes), and exits 1. With a PID, a component whose process is gone
# fails at once (exit 1) instead of running out the clock.
#
# It does not start, restart or stop anything. Exit: 0 ready, 1 not ready or
# exited, 2 usage.
set -euo pipefail

TIMEOUT=60
BODY_MAX=600

usage() { sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { printf '==> %s\n' "$*"; }

[[ ${1:-} == --timeout ]] && { [[ $# -ge 2 ]] || usage; TIMEOUT=$2; shift 2; }
[[ $TIMEOUT =~ ^[0-9]+$ ]] && (( TIMEOUT >= 1 )) || { echo "wait-ready: --timeout must be a number of seconds >= 1" >&2; exit 2; }
(( $# > 0 )) || usage

names=(); urls=(); pids=()
for arg in "$@"; do
  IFS=, read -r name url pid extra <<<"$arg"
  [[ -n $name && $url == http://* && -z ${extra:-} ]] || { echo "wait-ready: not NAME,URL[,PID]: $arg" >&2; exit 2; }
  [[ -z ${pid:-} || $pid =~ ^[0-9]+$ ]] || { echo "wait-ready: $name: PID must be a number: $pid" >&2; exit 2; }
  names+=("$name"); urls+=("${url%/}"); pids+=("${pid:-}")
done

# probe URL: prints "<http status> <body>" of GET URL/readyz ("000 " when
# nothing answered within a second).
probe() {
  local out
  out="$(curl -s --max-time 1 -w '\n%{http_code}' "$1/readyz" 2>/dev/null)" || true
  [[ -n $out ]] || out=$'\n000'
  printf '%s %s' "${out##*$'\n'}" "${out%$'\n'*}"
}

# elapsed: seconds since the start, to a tenth (EPOCHREALTIME, bash 5).
elapsed() {
  local us=$(( ${EPOCHREALTIME/./} - start_us ))
  printf '%d.%d' $(( us / 1000000 )) $(( us / 100000 % 10 ))
}

# gone PID: 0 when the process has exited (a zombie counts as exited).
gone() {
  local stat
  kill -0 "$1" 2>/dev/null || return 0
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  [[ ${stat:0:1} == Z ]]
}

start_us=${EPOCHREALTIME/./}
deadline=$(( SECONDS + TIMEOUT ))
pending=("${!names[@]}")
shown=""; last_print=-2
say "waiting until ${#pending[@]} components answer 200 on /readyz (at most ${TIMEOUT}s)"
while :; do
  still=(); last=()
  for i in "${pending[@]}"; do
    p="$(probe "${urls[$i]}")"
    [[ ${p%% *} == 200 ]] && continue
    if [[ -n ${pids[$i]} ]] && gone "${pids[$i]}"; then
      echo "wait-ready: ${names[$i]} (pid ${pids[$i]}) exited before it was ready" >&2
      exit 1
    fi
    still+=("$i"); last[$i]=$p
  done
  pending=("${still[@]}")
  (( ${#pending[@]} == 0 )) && break
  now=$SECONDS
  if (( now >= deadline )); then
    for i in "${pending[@]}"; do
      p=${last[$i]}; body=${p#* }
      printf 'wait-ready: %s not ready: %s/readyz answered %s: %s\n' \
        "${names[$i]}" "${urls[$i]}" "${p%% *}" "${body:0:BODY_MAX}" >&2
    done
    echo "wait-ready: not ready within ${TIMEOUT}s: $(for i in "${pending[@]}"; do printf '%s ' "${names[$i]}"; done)" >&2
    exit 1
  fi
  line="$(for i in "${pending[@]}"; do printf '%s(%s) ' "${names[$i]}" "${last[$i]%% *}"; done)"
  if [[ $line != "$shown" ]] || (( now - last_print >= 2 )); then
    say "  not ready yet ($(elapsed) s): ${line% }"
    shown=$line; last_print=$now
  fi
  sleep 0.2
done
say "all ${#names[@]} components are ready ($(elapsed) s)"
