#!/usr/bin/env bash
# The test suite runner: `make test` calls `tests/run.sh all`.
#
#   tests/run.sh unit          cmocka unit tests, release and ASan/UBSan builds, then valgrind
#   tests/run.sh fuzz          every libFuzzer target for a short run (FUZZ_SECONDS, default 20)
#   tests/run.sh integration   integration tests against the real stack (started if not up);
#                              ITEST_ONLY="test_a test_b" runs only those
#   tests/run.sh compose       docker-compose.yml checked by Docker Compose v5 (built once, cached)
#   tests/run.sh openapi       docs/openapi.yaml validated and exercised against the live edge
#   tests/run.sh all           all of the above; valgrind and fuzz in the background at the
#                              lowest priority beside the integration tests (background_checks)
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

# Timing: every check's line ends with its elapsed wall-clock seconds, every
# stage ends with its wall-clock and CPU seconds (user+sys of the processes it
# waited for: the tests and what they started; not the stack, not the background
# Compose build), and the last lines sum them up with the slowest checks, so a
# slow run says where its time went.
now_us() { echo "${EPOCHREALTIME/./}"; }
secs() { printf '%d.%01d' $(($1 / 1000000)) $(($1 % 1000000 / 100000)); }
# CPU_US: the CPU microseconds (user+sys) of this shell's reaped children so far,
# from /proc (a builtin read: a command substitution would be a new process
# with no children of its own).
TICK_US=$((1000000 / $(getconf CLK_TCK)))
cpu_mark() {
    local st
    read -r -a st <"/proc/$BASHPID/stat"
    CPU_US=$(((st[15] + st[16]) * TICK_US))
}
check_times=()
stage_times=()
suite_t0=$(now_us)
# stage NAME FUNCTION: runs one stage and records its elapsed time.
stage() {
    local name=$1 t0 c0 dt dc
    shift
    cpu_mark
    t0=$(now_us) c0=$CPU_US
    "$@"
    cpu_mark
    dt=$(($(now_us) - t0)) dc=$((CPU_US - c0))
    stage_times+=("$(printf '%-12s %7ss wall %7ss cpu' "$name" "$(secs $dt)" "$(secs $dc)")")
    note "stage $name: $(secs $dt) s wall, $(secs $dc) s CPU"
}
# The elapsed wall-clock and CPU time of the check that just ended (label, wall
# start, CPU start): recorded for the summary and left in `took` for its line.
# The CPU is the check's own processes' (a test and what it started and reaped),
# which a loaded machine does not inflate the way it inflates the wall clock.
took=
check_elapsed() {
    cpu_mark
    local dt=$(($(now_us) - $2)) dc=$((CPU_US - $3))
    check_times+=("$dt $(secs $dc) $1")
    took=$(printf '%6ss %5ss cpu' "$(secs $dt)" "$(secs $dc)")
}
timing_summary() {
    [ ${#stage_times[@]} -gt 0 ] || return 0
    echo "stage timings:"
    printf '    %s\n' "${stage_times[@]}"
    echo "    total        $(secs $(($(now_us) - suite_t0)))s wall"
    echo "slowest checks:"
    printf '%s\n' "${check_times[@]}" | sort -rn | head -12 | while read -r us cpu label; do
        printf '    %7ss wall %6ss cpu  %s\n' "$(secs "$us")" "$cpu" "$label"
    done
}

# Runs a cmocka binary with TAP output and counts its cases.
run_cmocka() {
    local label=$1; shift
    local log="$LOGDIR/$label.log" t0 c0
    cpu_mark
    t0=$(now_us) c0=$CPU_US
    CMOCKA_MESSAGE_OUTPUT=TAP "$@" >"$log" 2>&1
    local rc=$?
    check_elapsed "$label" "$t0" "$c0"
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
        printf '    FAIL %-40s %d ok, %d failed %s (log: %s)\n' "$label" "$ok" "$notok" "$took" "${log#$ROOT/}"
        grep -E '^not ok|^#' "$log" | head -20 | sed 's/^/      /'
        tail -5 "$log" | sed 's/^/      | /'
    else
        printf '    ok   %-40s %3d cases %s\n' "$label" "$ok" "$took"
    fi
}

# Runs a command that is one check.
run_check() {
    local label=$1; shift
    local log="$LOGDIR/$label.log" t0 c0 rc
    cpu_mark
    t0=$(now_us) c0=$CPU_US
    "$@" >"$log" 2>&1
    rc=$?
    check_elapsed "$label" "$t0" "$c0"
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        printf '    ok   %-50s %s\n' "$label" "$took"
    else
        failed=$((failed + 1))
        failures+=("$label")
        printf '    FAIL %-50s %s (log: %s)\n' "$label" "$took" "${log#$ROOT/}"
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

unit_builds() {
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
}

valgrind_unit() {
    note "valgrind (release unit tests, no leaks allowed)"
    for t in build/release/tests/test_*; do
        [ -x "$t" ] || continue
        run_check "valgrind-$(basename "$t")" valgrind --quiet --leak-check=full \
            --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
            --error-exitcode=1 "$t"
    done
}

unit() {
    unit_builds
    valgrind_unit
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

# The integration tests run as two passes at once against the one stack: the
# release pass in this shell, the ASan pass (the same tests driving the
# sanitizer builds of the binaries they start) in the background, in reverse
# order so that the two meet on one test at most once.  Most tests wait on the
# stack far more than they compute (time-based rules, broker round trips), so
# the two passes take little more than the longer one.  They share nothing
# but the stack: every test has its own tenants, component names, consumer
# groups, private processes and log names (the suite's rule).  Two locks keep
# what remains apart:
#   - a test's own lock: the same test never runs in both passes at once (its
#     log and private Redis names are per test, not per pass);
#   - the chain lock (CHAIN_ITESTS, below);
#   - the stack's lock, shared by every test but those in EXCLUSIVE_ITESTS,
#     which stop or remove a part of the stack the others use, or flood the
#     machine to see what still gets through, and so run alone:
#     test_decision_spool pauses the broker (SIGSTOP), test_edge_lanes the
#     stack's gov-identity, test_audit_faults deletes identity.audit.dlq,
#     test_gateway_flood sends tens of thousands of requests a second and
#     wants every one of its client's checks decided within nginx's 2 s (beside
#     the other pass on two cores one was not, in the CI of 2026-12-08).
#     An exclusive test announces itself first (the .intent file), so that the
#     other pass starts nothing new while it waits.
# test_rebuild too, for now: under load gov-audit's batch retried while Redis
# was down can land on a restored older chain before the lost writes are
# noticed (a product race, open: the append scripts must compare-and-set the
# tenant's applied offset); alone, the CI runs of 2026-12-08 passed it.
EXCLUSIVE_ITESTS=" test_decision_spool test_edge_lanes test_audit_faults test_gateway_flood test_rebuild "
# The tests whose private gov-constitution or gov-rulepacks judge every bundle
# and pack on the shared topics - and announce a rejection into the foreign
# tenant's audit chain - and test_chain, which reads its tenant's whole chain:
# one of them at a time (a third lock, .itest-chain.lock), beside any other
# test.  In the CI of 2026-12-08 test_evaluate's gov-rulepacks chained
# rulepack.rejected into test_rebuild's tenant while test_rebuild compared its
# chain entry by entry.
CHAIN_ITESTS=" test_canon_chain test_chain test_cluster_chain test_constitution_chain test_evaluate test_govctl_rulepack test_identity_attack test_rebuild test_rulepacks "
ITEST_LOCK=$LOGDIR/.itest.lock
itest_lock() {
    local name=$1
    exec {itest_tfd}>"$LOGDIR/.itest-$name.lock"
    flock "$itest_tfd"
    case "$CHAIN_ITESTS" in
        *" $name "*) exec {itest_cfd}>"$LOGDIR/.itest-chain.lock"; flock "$itest_cfd" ;;
        *) exec {itest_cfd}>/dev/null ;;
    esac
    case "$EXCLUSIVE_ITESTS" in
        *" $name "*)
            : >"$ITEST_LOCK.intent"
            exec {itest_gfd}>"$ITEST_LOCK"
            flock -x "$itest_gfd"
            rm -f "$ITEST_LOCK.intent" ;;
        *)
            while [ -e "$ITEST_LOCK.intent" ]; do sleep 0.2; done
            exec {itest_gfd}>"$ITEST_LOCK"
            flock -s "$itest_gfd" ;;
    esac
}
itest_unlock() {
    exec {itest_gfd}>&- {itest_cfd}>&- {itest_tfd}>&-
}

# The command without the lock descriptors: a process the test leaves behind
# must not hold a lock after the test (flock locks live as long as any copy of
# the descriptor).
without_lock_fds() {
    "$@" {itest_tfd}>&- {itest_gfd}>&- {itest_cfd}>&-
}

# One integration test of either pass: label, then the command.
run_itest() {
    local label=$1 name
    shift
    name=$(basename "${*: -1}")
    itest_lock "$name"
    run_cmocka "$label" without_lock_fds "$@"
    itest_unlock
}

# ITEST_ONLY="test_a test_b": only these integration tests (a developer's
# run; the suite runs them all).
itest_list() {
    local t
    for t in build/release/itests/test_*; do
        if [ -n "${ITEST_ONLY:-}" ]; then
            case " $ITEST_ONLY " in *" $(basename "$t") "*) ;; *) continue ;; esac
        fi
        printf '%s\n' "$t"
    done
}

release_pass() {
    local t
    for t in $(itest_list); do
        [ -x "$t" ] && run_itest "itest-$(basename "$t")" "$t"
    done
}

asan_pass() {
    local tests
    mapfile -t tests < <(itest_list | sort -r)
    for t in "${tests[@]}"; do
        # A test whose subject is library code in its own process (not a
        # binary it starts) runs as its ASan build.  test_signer_pkcs11 stays
        # release: SoftHSM2 2.6.1 leaks in C_SignInit (runbook, key stores).
        case "$(basename "$t")" in
            test_kafka_fatal|test_kafka_group|test_redis_cluster) t=build/asan/itests/$(basename "$t") ;;
            # This pass exists for the code the tests' own processes do not
            # hold: the gov-* binaries and govctl they start from
            # ITEST_BIN_DIR, which no unit test or fuzz target runs under ASan.
            # A test that starts none of them would run the very same release
            # code against the same stack a second time, so it runs once (in
            # the release pass):
            #   test_avro_kafka, test_redaction, test_signer_pkcs11 start no
            #     binary at all (the codecs they drive are unit-tested and
            #     fuzzed under ASan; the edge test_redaction asks is the
            #     stack's own, release either way);
            #   test_state_redis starts only `govctl audit verify`, which
            #     test_audit_verify's ASan run drives over intact and damaged
            #     chains;
            #   test_token_interop starts only `govctl clients add`, which the
            #     ASan runs of test_chain, test_gateway, test_sessions and
            #     test_tokens_deferred drive; the tokens it checks come from
            #     the stack's own (release) edge;
            #   test_chain, the acceptance test, drives its private gov-edge
            #     through routes whose ASan runs stay: POST /v1/sessions/start
            #     with and without Kafka (test_sessions), /v1/authz behind
            #     nginx (test_gateway), client-credentials tokens (test_tokens);
            #     what it adds is the order of the whole chain and the audit
            #     chain at its end, which the release pass checks.
            test_avro_kafka|test_redaction|test_signer_pkcs11|test_state_redis|test_token_interop|test_chain)
                note "skipped under ASan: $(basename "$t") (starts no binary the ASan pass would add; see tests/run.sh)"
                continue ;;
        esac
        if [ ! -x "$t" ]; then   # never skipped in silence (make asan builds them)
            failed=$((failed + 1))
            failures+=("itest-asan-$(basename "$t")")
            echo "    FAIL itest-asan-$(basename "$t"): $t is not built"
            continue
        fi
        # the decision spool's 60 s outage runs once, in the release pass; the
        # ASan pass drives the same paths with a 20 s one
        ITEST_BIN_DIR=build/asan/bin ITEST_SPOOL_OUTAGE_S=20 \
            ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            run_itest "itest-asan-$(basename "$t")" "$t"
    done
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
    rm -f "$ITEST_LOCK.intent"   # a run that was interrupted may have left it
    note "the ASan + UBSan pass runs beside the release pass (its lines follow the release pass's)"
    in_background asan itest-asan asan_pass
    release_pass
    in_background_join asan
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

# in_background NAME FUNCTION: runs the stage detached (a grandchild, so that its
# CPU is not booked to whichever check of this shell runs when it ends), its
# lines, counts and timings kept in files; in_background_join waits for it and
# reports them as if the stage had run at that point.
# in_background SLOT NAME FUNCTION / in_background_join SLOT: as many slots as
# there are names; each keeps its files under $LOGDIR/.background-SLOT.*.
bg_slots=()
in_background() {
    local slot=$1 bg_out="$LOGDIR/.background-$1"
    shift
    rm -f "$bg_out".*
    ( (
        echo "$BASHPID" >"$bg_out.pid"
        passed=0 failed=0 failures=() check_times=() stage_times=()
        stage "$@" >"$bg_out.lines" 2>&1
        printf '%s\n' "$passed" "$failed" >"$bg_out.counts"
        printf '%s\n' "${failures[@]}" >"$bg_out.failures"
        printf '%s\n' "${check_times[@]}" >"$bg_out.times"
        printf '%s\n' "${stage_times[@]}" >"$bg_out.stage"
        : >"$bg_out.done"
    ) & )
    bg_slots+=("$slot")
    # a run that ends early (an interrupt) does not leave them running
    trap 'for s in "${bg_slots[@]}"; do p=$(cat "$LOGDIR/.background-$s.pid" 2>/dev/null); [ -n "$p" ] && { pkill -TERM -P "$p"; kill "$p"; } 2>/dev/null; done' EXIT
}
in_background_join() {
    local slot=$1 bg_out="$LOGDIR/.background-$1" pid s
    while [ ! -e "$bg_out.done" ]; do
        pid=$(cat "$bg_out.pid" 2>/dev/null)
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            [ -e "$bg_out.done" ] || break   # it died without finishing
        fi
        sleep 1
    done
    local left=()
    for s in "${bg_slots[@]}"; do [ "$s" = "$slot" ] || left+=("$s"); done
    bg_slots=("${left[@]}")
    [ ${#bg_slots[@]} -gt 0 ] || trap - EXIT
    cat "$bg_out.lines" 2>/dev/null
    if [ ! -e "$bg_out.done" ] || [ ! -s "$bg_out.counts" ]; then
        failed=$((failed + 1))
        failures+=("background-$slot")
        echo "    FAIL the background stage $slot ended without its counts (see $bg_out.lines)"
        return
    fi
    local p f
    { read -r p; read -r f; } <"$bg_out.counts"
    passed=$((passed + p)) failed=$((failed + f))
    mapfile -t -O "${#failures[@]}" failures < <(grep -v '^$' "$bg_out.failures")
    mapfile -t -O "${#check_times[@]}" check_times < <(grep -v '^$' "$bg_out.times")
    mapfile -t -O "${#stage_times[@]}" stage_times < <(grep -v '^$' "$bg_out.stage")
    rm -f "$bg_out".*
}

# `all`: the unit tests first (a broken build fails fast); then valgrind and
# fuzz - the two CPU-bound checks, which share nothing with the stack (no port,
# their own builds and log files) - run in the background at the lowest
# priority while the integration tests, which mostly wait on the stack, run:
# they take the CPU the tests leave and yield it whenever a test or the stack
# wants it (nice 19: about 1/70 of a core's share under contention).  Their
# lines come after the integration and openapi stages'.  Each valgrind run is
# as in a stage of its own; each fuzz target runs FUZZ_SECONDS of wall clock,
# so under load it makes fewer executions than on an idle machine.
background_checks() {
    renice -n 19 -p "$BASHPID" >/dev/null 2>&1 || true
    valgrind_unit
    fuzz
}

case "$what" in
    unit) stage unit unit_builds; stage valgrind valgrind_unit ;;
    fuzz) stage fuzz fuzz ;;
    integration) stage integration integration; stack_down ;;
    compose) stage compose compose ;;
    openapi) stage openapi openapi; stack_down ;;
    all) stage unit unit_builds; in_background checks valgrind+fuzz background_checks
         compose_prebuild; stage integration integration
         stage openapi openapi; stack_down; in_background_join checks; stage compose compose ;;
    *) echo "usage: tests/run.sh unit|fuzz|integration|compose|openapi|all" >&2; exit 2 ;;
esac

timing_summary
if [ ${#failures[@]} -gt 0 ]; then
    echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
