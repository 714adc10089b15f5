/* test_edge_shutdown.c - gov-edge stopping with deferred answers pending
 * (REVIEW11 M4: server.c edge_server_stop, gov_kafka_producer_purge, the
 * reason shutting_down).
 *
 * The edges are private (their own ids "edge-itest-shutdown-*-<unique>",
 * itest_edge_start_on_stack) and run as the ASan + UBSan build
 * (ITEST_BIN_DIR=build/asan/bin unless the caller chose one, as the suite's
 * second pass does): a use after free aborts the edge, LeakSanitizer
 * reports at its exit, and either makes the exit status non-zero.
 *   - Pending against a stall: the brokers are a listener of this test that
 *     never answers (itest_kafka_blackhole; the stack's broker is never
 *     touched), kafka_ack_timeout 60 s, so nothing completes by itself, and
 *     shutdown_grace 3 s.  PENDING issuances are deferred, then SIGTERM:
 *     an issuance sent during the grace is answered 503 shutting_down;
 *     every pending client gets 503 (or a closed connection); the edge
 *     exits 0 well before the ack timeout, with no sanitizer report and no
 *     libmicrohttpd panic ("suspended connections").
 *   - SIGTERM while issuance runs on the stack's real Kafka, LOOPS times
 *     (the race of the last completion with the stop): every client gets
 *     200, 503 or a closed connection, and every exit is clean.
 * Every wait is on an observable outcome, bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gov_time.h"
#include "itest_util.h"

#define TENANT "demo"
#define PENDING 50
#define LOOPS 5   /* ITEST_SHUTDOWN_LOOPS overrides (the review asked for 200) */
#define LOOP_ISSUES 40
#define FORM "application/x-www-form-urlencoded"

static char client_id[128], authz[512];

/* Sends one issuance on a new connection: the socket, or -1 when the edge
 * no longer accepts connections (it stopped). */
static int issue_send(int port) {
    char req[1024];
    int len = snprintf(req, sizeof req,
                       "POST /v1/tokens/issue HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n"
                       "Authorization: %s\r\nContent-Type: " FORM "\r\nContent-Length: 29\r\n"
                       "\r\ngrant_type=client_credentials",
                       authz);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* The answer of issue_send: its status (0: closed without one, or never
 * connected); its error code into code ("" when none). */
static int issue_read(int fd, char code[64]) {
    static char raw[16384];
    code[0] = '\0';
    if (fd < 0)
        return 0;
    int st = itest_raw_answer(fd, raw, sizeof raw, 30000, NULL);
    const char *b = strstr(raw, "\r\n\r\n");
    json_t *j = b ? json_loads(b + 4, 0, NULL) : NULL;
    const char *c = json_string_value(json_object_get(j, "error"));
    snprintf(code, 64, "%s", c ? c : "");
    json_decref(j);
    return st;
}

static int pending_all(void *opaque) {
    return itest_proc_metric(opaque, "edge_deferred_requests", NULL) == PENDING;
}

/* Fails unless the edge's log (emptied before it started) is free of
 * sanitizer reports and libmicrohttpd panics. */
static void expect_clean_log(const char *logname) {
    size_t len = 0;
    char *log = itest_read_file(itest_log_path(logname), &len);
    const char *bad[] = {"AddressSanitizer", "LeakSanitizer", "runtime error",
                         "suspended connections"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (memmem(log, len, bad[i], strlen(bad[i])) != NULL)
            fail_msg("\"%s\" in var/test-logs/%s", bad[i], logname);
    free(log);
}

static const char *stop_log;

/* The edge has logged that it refuses new deferred answers. */
static int stop_begun(void *opaque) {
    (void)opaque;
    size_t len = 0;
    char *log = itest_read_file(itest_log_path(stop_log), &len);
    int begun = memmem(log, len, "new deferred answers are refused", 32) != NULL;
    free(log);
    return begun;
}

static void test_stop_with_pending_stalled(void **state) {
    (void)state;
    const char *logname = "itest-shutdown-stalled.log";
    itest_proc_t edge;
    int bh = itest_edge_start_stalled(&edge, "edge-itest-shutdown-stalled",
                                      (const char *const[]){"GOV_KAFKA_ACK_TIMEOUT=60s",
                                                            "GOV_SHUTDOWN_GRACE=3s", NULL},
                                      logname);
    static int fds[PENDING];
    for (int i = 0; i < PENDING; i++)
        fds[i] = issue_send(edge.port);
    if (itest_wait_for(pending_all, &edge, 30000, 20) < 0)
        fail_msg("the issuances were not all deferred (log var/test-logs/%s)", logname);
    int64_t t0 = gov_mono_micros();
    assert_int_equal(kill(edge.pid, SIGTERM), 0);
    stop_log = logname;
    if (itest_wait_for(stop_begun, NULL, 10000, 10) < 0)
        fail_msg("the edge never said it was stopping (log var/test-logs/%s)", logname);
    /* during the grace the edge still answers, and refuses what would wait */
    char code[64];
    int st = issue_read(issue_send(edge.port), code);
    if (st != 503 || strcmp(code, "shutting_down") != 0)
        fail_msg("an issuance during the stop: want 503 shutting_down, got %d %s", st, code);
    for (int i = 0; i < PENDING; i++) {
        st = issue_read(fds[i], code);
        if (st != 503 && st != 0)
            fail_msg("pending issuance %d: want 503 or closed, got %d %s", i, st, code);
    }
    if (itest_proc_stop(&edge) != 0)
        fail_msg("the edge did not exit cleanly (log var/test-logs/%s)", logname);
    long ms = (long)((gov_mono_micros() - t0) / 1000);
    if (ms > 15000)
        fail_msg("the stop took %ld ms (kafka_ack_timeout 60 s, shutdown_grace 3 s)", ms);
    expect_clean_log(logname);
    close(bh);
}

static void test_stop_while_issuing(void **state) {
    (void)state;
    const char *logname = "itest-shutdown-loop.log";
    char brokers[200];
    snprintf(brokers, sizeof brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    itest_write_file(itest_log_path(logname), "", 0);
    const char *n = getenv("ITEST_SHUTDOWN_LOOPS");
    int loops = n && atoi(n) > 0 ? atoi(n) : LOOPS;
    for (int loop = 0; loop < loops; loop++) {
        itest_proc_t edge;
        itest_edge_start_on_stack(&edge, "edge-itest-shutdown-loop",
                                  (const char *const[]){brokers, NULL}, logname);
        static int fds[LOOP_ISSUES];
        char code[64];
        /* warm the client cache: the rest sign on the HTTP threads */
        int st = issue_read(issue_send(edge.port), code);
        if (st != 200)
            fail_msg("loop %d: the first issuance answered %d %s", loop, st, code);
        for (int i = 0; i < LOOP_ISSUES; i++)
            fds[i] = issue_send(edge.port);
        /* while the edge works through them: some deferred, some acknowledged */
        assert_int_equal(kill(edge.pid, SIGTERM), 0);
        size_t ok = 0;
        for (int i = 0; i < LOOP_ISSUES; i++) {
            st = issue_read(fds[i], code);
            if (st != 200 && st != 503 && st != 0)
                fail_msg("loop %d, issuance %d: want 200, 503 or closed, got %d %s", loop, i, st,
                         code);
            ok += st == 200;
        }
        if (itest_proc_stop(&edge) != 0)
            fail_msg("loop %d: the edge did not exit cleanly (log var/test-logs/%s)", loop,
                     logname);
        fprintf(stderr, "loop %d: %zu of %d issued before the stop\n", loop, ok, LOOP_ISSUES);
    }
    expect_clean_log(logname);
}

static int setup(void **state) {
    (void)state;
    itest_client_register(TENANT, "read", client_id, sizeof client_id, authz);
    return 0;
}

int main(void) {
    /* the subject is memory safety at exit: the sanitizer build by default */
    setenv("ITEST_BIN_DIR", "build/asan/bin", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_with_pending_stalled),
        cmocka_unit_test(test_stop_while_issuing),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
