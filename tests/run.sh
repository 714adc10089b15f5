#!/usr/bin/env bash
# The test suite runner: `make test` calls `tests/run.sh all`.
#
#   tests/run.sh unit          cmocka unit tests, release and ASan/UBSan builds, then valgrind
#   tests/run.sh fuzz          every libFuzzer target for a short run (FUZZ_SECONDS, default 20)
#   tests/run.sh integration   integration tests against the real stack (started if not up)
#   tests/run.sh compose       docker-compose.yml checked by Docker Compose v5 (built once, cached)
#   tests/run.sh openapi       docs/openapi.yaml validated and exercised against the live edge
#   tests/run.sh all           all of the above
#
# Each cmocka test case counts once per build it runs in; valgrind and fuzz runs count one
# each. The last line is "N passed, N failed". Exit status is 0 only when nothing failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
what=${1:-all}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
LOGDIR=$ROOT/var/test-logs
mkdir -p "$LOGDIR"
passed=0
failed=0
failures=()

note() { printf '==> %s\n' "$*"; }

# Runs a cmocka binary with TAP output and counts its cases.
run_cmocka() {
    local label=$1; shift
    local log="$LOGDIR/$label.log"
    CMOCKA_MESSAGE_OUTPUT=TAP "$@" >"$log" 2>&1
    local rc=$?
    local ok notok
    ok=$(grep -cE '^ok [0-9]+' "$log")
    notok=$(grep -cE '^not ok [0-9]+' "$log")
    if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
        notok=1 # crashed or failed outside a test case
    fi
    passed=$((passed + ok))
    failed=$((failed + notok))
    if [ "$notok" -gt 0 ]; then
        failures+=("$label")
        printf '    FAIL %-40s %d ok, %d failed (log: %s)\n' "$label" "$ok" "$notok" "${log#$ROOT/}"
        grep -E '^not ok|^#' "$log" | head -20 | sed 's/^/      /'
        tail -5 "$log" | sed 's/^/      | /'
    else
        printf '    ok   %-40s %d cases\n' "$label" "$ok"
    fi
}

# Runs a command that is one check.
run_check() {
    local label=$1; shift
    local log="$LOGDIR/$label.log"
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        printf '    ok   %s\n' "$label"
    else
        failed=$((failed + 1))
        failures+=("$label")
        printf '    FAIL %s (log: %s)\n' "$label" "${log#$ROOT/}"
        tail -15 "$log" | sed 's/^/      | /'
    fi
}

# The core library must stay pure; the same check run on the runtime library
# must object (so the check itself can fail).
core_purity() {
    tools/check-core-symbols.sh build/release/libgov_core.a &&
        tools/check-core-symbols.sh build/asan/libgov_core.a &&
        ! tools/check-core-symbols.sh build/release/libgov_runtime.a 2>/dev/null
}

unit() {
    note "core library purity (no I/O library, clock, file or socket call)"
    run_check "core-purity" core_purity
    note "unit tests (release build)"
    for t in build/release/tests/test_*; do
        [ -x "$t" ] && run_cmocka "unit-$(basename "$t")" "$t"
    done
    note "unit tests (ASan + UBSan build)"
    for t in build/asan/tests/test_*; do
        [ -x "$t" ] && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            run_cmocka "asan-$(basename "$t")" "$t"
    done
    note "valgrind (release unit tests, no leaks allowed)"
    for t in build/release/tests/test_*; do
        [ -x "$t" ] || continue
        run_check "valgrind-$(basename "$t")" valgrind --quiet --leak-check=full \
            --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
            --error-exitcode=1 "$t"
    done
}

fuzz() {
    note "fuzz targets, ${FUZZ_SECONDS}s each (ASan + UBSan)"
    for f in build/fuzz/fuzz_*; do
        [ -x "$f" ] || continue
        local name work seeds
        name=$(basename "$f")
        seeds=tests/fuzz/corpus/${name#fuzz_}
        work=$ROOT/var/fuzz/$name
        mkdir -p "$work"
        [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null
        run_check "fuzz-$name" "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$ROOT/var/fuzz/$name-" "$work"
    done
}

# Starts the stack unless it runs (stack_started=1 when this run started it); 1 when it
# did not start. stack_down stops it again at the end, unless GOV_KEEP_STACK=1.
stack_started=0
stack_up() {
    if ! bash deploy/stack.sh status --quiet >/dev/null 2>&1; then
        stack_started=1
    fi
    if ! bash deploy/stack.sh start; then
        failed=$((failed + 1))
        failures+=("stack-start")
        echo "    FAIL the stack did not start; see var/log/"
        return 1
    fi
}
stack_down() {
    if [ "$stack_started" = 1 ] && [ "${GOV_KEEP_STACK:-0}" != 1 ]; then
        note "stopping the stack this run started (GOV_KEEP_STACK=1 keeps it)"
        bash deploy/stack.sh stop
    fi
}

integration() {
    note "integration tests against the real stack"
    stack_up || return
    # `stack.sh start` returned: every component must be ready now, not later.
    run_check "stack-readyz" bash tests/stack/readiness.sh
    # make demo (deploy/demo.sh show): sessions, the gateway, as the README shows them
    run_check "stack-demo" bash tests/stack/demo.sh
    # The stack's addresses (only those: tests set everything else themselves).
    export GOV_KAFKA_BROKERS GOV_REDIS_HOST GOV_REDIS_PORT
    GOV_KAFKA_BROKERS=$(sed -n 's/^GOV_KAFKA_BROKERS=//p' var/stack.env)
    GOV_REDIS_HOST=$(sed -n 's/^GOV_REDIS_HOST=//p' var/stack.env)
    GOV_REDIS_PORT=$(sed -n 's/^GOV_REDIS_PORT=//p' var/stack.env)
    for t in build/release/itests/test_*; do
        [ -x "$t" ] && run_cmocka "itest-$(basename "$t")" "$t"
    done
    note "integration tests again, driving the ASan + UBSan binaries"
    for t in build/release/itests/test_*; do
        # A test whose subject is library code in its own process (not a
        # binary it starts) runs as its ASan build.  test_signer_pkcs11 stays
        # release: SoftHSM2 2.6.1 leaks in C_SignInit (runbook, key stores).
        case "$(basename "$t")" in
            test_kafka_fatal|test_kafka_group) t=build/asan/itests/$(basename "$t") ;;
        esac
        [ -x "$t" ] && ITEST_BIN_DIR=build/asan/bin \
            ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            run_cmocka "itest-asan-$(basename "$t")" "$t"
    done
}

# The API description: docs/openapi.yaml is valid OpenAPI 3.1 (openapi-spec-validator) and
# true of the live edge (Schemathesis, every check on; tests/openapi/run.sh). A route the
# edge does not serve yet is skipped and named, never counted as a pass.
openapi() {
    note "API description (docs/openapi.yaml): validated, then Schemathesis against the live edge"
    run_check "openapi-spec" bash tests/openapi/run.sh validate
    stack_up || return
    run_check "openapi-schemathesis" bash tests/openapi/run.sh live
    grep -h '^SKIP' "$LOGDIR/openapi-schemathesis.log" 2>/dev/null | sed 's/^/    /'
}

# docker-compose.yml, checked by Docker Compose itself (no engine needed): the
# build of Compose is one check, `config -q` and the binaries/gateway checks
# one more (tests/compose/check.sh).
compose() {
    note "docker-compose.yml (Docker Compose v5, tests/compose/check.sh)"
    # The first build takes minutes: its progress lines go to the terminal (fd 3)
    # as well as to the log.
    exec 3>&1
    run_check "compose-build" bash -c 'set -o pipefail; bash tests/compose/check.sh --build 2>&1 |
        while IFS= read -r line; do printf "%s\n" "$line"; printf "      %s\n" "$line" >&3; done'
    exec 3>&-
    run_check "compose-config" bash tests/compose/check.sh
}

# The first Compose build takes minutes of CPU: under `all` it runs in the
# background at the lowest priority on one Go thread while the integration tests
# (which mostly wait on the stack) run, and the compose stage after them finds it
# built (check.sh's lock makes a second caller wait for the first).
compose_prebuild() {
    mkdir -p var/log
    note "building Docker Compose in the background (var/log/compose-build.log)"
    GOV_COMPOSE_GOFLAGS=-p=1 GOMAXPROCS=1 nice -n 19 bash tests/compose/check.sh --build >var/log/compose-build.log 2>&1 &
}

case "$what" in
    unit) unit ;;
    fuzz) fuzz ;;
    integration) integration; stack_down ;;
    compose) compose ;;
    openapi) openapi; stack_down ;;
    all) unit; fuzz; compose_prebuild; integration; openapi; stack_down; compose ;;
    *) echo "usage: tests/run.sh unit|fuzz|integration|compose|openapi|all" >&2; exit 2 ;;
esac

if [ ${#failures[@]} -gt 0 ]; then
    echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
