/* test_runtime.c - the one start-up path (gov_runtime.h), for real.
 *
 * Starts real runtimes in this process: configuration with shared rows
 * placed among a binary's own, the exit codes of --help / usage errors /
 * start-up failures, the run flag under a real SIGTERM, the admin server
 * answering on a real loopback port (libcurl), and every allocation failure
 * during start-up ending cleanly.  No Kafka or Redis is needed: those parts
 * are off in these specs (the stack's integration tests start every binary
 * with them on).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_runtime.h"

static long workers;
static char *label;

static const gov_config_entry_t rows[] = {
    GOV_CFG_INT("workers", "4", 1, 64, "worker threads", &workers),
    GOV_RUNTIME_ROW("kafka_brokers"),
    GOV_RUNTIME_ROW_HELP("redis_port", "Redis port of the test"),
    GOV_RUNTIME_ROW("admin_addr"),
    GOV_RUNTIME_ROW("admin_port"),
    GOV_RUNTIME_ROW("log_level"),
    GOV_RUNTIME_ROW("component_name"),
    GOV_CFG_STRING("label", NULL, "free text", &label),
};
#define NROWS (sizeof rows / sizeof rows[0])

static const gov_runtime_spec_t quiet = {.name = "gov-test", .default_admin_port = 8799};

static int setup(void **state) {
    (void)state;
    unsetenv("GOV_CONFIG_FILE");
    unsetenv("GOV_ADMIN_PORT");
    return 0;
}

/* Runs gov_runtime_start with argv = {"gov-test", args..., NULL}. */
static gov_err_t start(gov_runtime_t **rt, const gov_runtime_spec_t *spec,
                       const gov_config_entry_t *table, size_t n, int *code, ...) {
    char *argv[16] = {(char *)"gov-test"};
    int argc = 1;
    va_list ap;
    va_start(ap, code);
    for (char *a; argc < 15 && (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    return gov_runtime_start(rt, spec, table, n, argc, argv, code);
}

/* Captures what fn writes to stdout into a new string (free). */
static char *run_capturing_stdout(gov_err_t *err, int *code, const char *opt) {
    fflush(stdout);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
    gov_runtime_t *rt = (gov_runtime_t *)1;
    *err = start(&rt, &quiet, rows, NROWS, code, opt, NULL);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    assert_null(rt);
    long size = ftell(tmp);
    char *out = calloc(1, (size_t)(size > 0 ? size : 0) + 1);
    assert_non_null(out);
    rewind(tmp);
    if (size > 0)
        assert_int_equal(fread(out, 1, (size_t)size, tmp), (size_t)size);
    fclose(tmp);
    return out;
}

static void test_shared_rows_take_their_place(void **state) {
    (void)state;
    gov_err_t err;
    int code = -1;
    char *out = run_capturing_stdout(&err, &code, "--print-config-docs");
    assert_int_equal(err, GOV_ERR_STATE);
    assert_int_equal(code, 0);
    /* the binary's order, the runtime's definitions, the binary's help where given */
    const char *w = strstr(out, "| `workers` |");
    const char *k = strstr(out, "| `kafka_brokers` | `GOV_KAFKA_BROKERS` | string | "
                                "`127.0.0.1:19092` |  | Kafka bootstrap servers (host:port,...) |");
    const char *r = strstr(out, "| `redis_port` | `GOV_REDIS_PORT` | int | `6390` | 1..65535 | "
                                "Redis port of the test |");
    const char *a = strstr(out, "| `admin_port` | `GOV_ADMIN_PORT` | int | `8799` | 1..65535 |");
    const char *c = strstr(out, "| `component_name` | `GOV_COMPONENT_NAME` | string | `gov-test` |");
    const char *l = strstr(out, "| `label` |");
    assert_true(w && k && r && a && c && l);
    assert_true(w < k && k < r && r < a && a < c && c < l);
    assert_null(strstr(out, "redis_host")); /* not placed: not there */
    free(out);

    out = run_capturing_stdout(&err, &code, "--help");
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "Usage: gov-test"));
    free(out);
}

static void test_values_and_exit_codes(void **state) {
    (void)state;
    gov_runtime_t *rt = NULL;
    int code = -1;
    assert_int_equal(start(&rt, &quiet, rows, NROWS, &code, "--redis_port=7000", "--workers=9",
                           "--label", "x y", NULL), GOV_OK);
    assert_int_equal(code, 0);
    assert_non_null(rt);
    const gov_runtime_config_t *c = gov_runtime_config(rt);
    assert_int_equal(c->redis_port, 7000);
    assert_int_equal(c->admin_port, 8799);
    assert_string_equal(c->kafka_brokers, "127.0.0.1:19092");
    assert_string_equal(c->component_name, "gov-test");
    assert_string_equal(c->log_level, "info");
    assert_null(c->redis_host);
    assert_int_equal(workers, 9);
    assert_string_equal(label, "x y");
    /* asked for nothing: no admin server, Redis or producer; always these */
    assert_non_null(gov_runtime_metrics(rt));
    assert_non_null(gov_runtime_status(rt));
    assert_non_null(gov_runtime_avro(rt));
    assert_null(gov_runtime_redis(rt));
    assert_null(gov_runtime_producer(rt));
    assert_true(gov_runtime_running(rt));
    assert_int_equal(gov_runtime_shutdown(rt, 7), 7);
    assert_null(label); /* the binary's strings are freed with the runtime */

    /* a usage error is 2, nothing left running */
    rt = (gov_runtime_t *)1;
    assert_int_equal(start(&rt, &quiet, rows, NROWS, &code, "--workers=0", NULL), GOV_ERR_CONFIG);
    assert_int_equal(code, 2);
    assert_null(rt);
    assert_int_equal(start(&rt, &quiet, rows, NROWS, &code, "--redis_host=h", NULL),
                     GOV_ERR_CONFIG); /* not a key of this binary */
    assert_int_equal(code, 2);
    assert_int_equal(start(&rt, &quiet, rows, NROWS, &code, "--component_name=a b", NULL),
                     GOV_ERR_CONFIG);
    assert_int_equal(code, 2);
    /* a placement of a row that does not exist is a programming error: 1 */
    const gov_config_entry_t bad[] = {GOV_RUNTIME_ROW("no_such_shared_row")};
    assert_int_equal(start(&rt, &quiet, bad, 1, &code, NULL), GOV_ERR_INVALID_ARG);
    assert_int_equal(code, 1);
    assert_null(rt);
    /* a part asked for without its rows is a programming error too */
    const gov_runtime_spec_t wants_redis = {.name = "gov-test", .redis = 1};
    assert_int_equal(start(&rt, &wants_redis, rows, NROWS, &code, NULL), GOV_ERR_INVALID_ARG);
    assert_int_equal(code, 1);
    assert_null(rt);
    assert_int_equal(gov_runtime_shutdown(NULL, 3), 3);
}

/* redis_nodes follows redis_host without being placed, so every binary that
 * talks to Redis can be pointed at a Redis Cluster; a table without
 * redis_host has neither (above). */
static void test_redis_nodes_follows_redis_host(void **state) {
    (void)state;
    const gov_config_entry_t with_redis[] = {
        GOV_RUNTIME_ROW("redis_host"),
        GOV_RUNTIME_ROW("redis_port"),
        GOV_RUNTIME_ROW("redis_timeout"),
    };
    gov_runtime_t *rt = NULL;
    int code = -1;
    assert_int_equal(start(&rt, &quiet, with_redis, 3, &code,
                           "--redis_nodes=127.0.0.1:7001,127.0.0.1:7002", NULL), GOV_OK);
    const gov_runtime_config_t *c = gov_runtime_config(rt);
    assert_string_equal(c->redis_nodes, "127.0.0.1:7001,127.0.0.1:7002");
    assert_string_equal(c->redis_host, "127.0.0.1");
    assert_int_equal(gov_runtime_shutdown(rt, 0), 0);
    rt = NULL;
    assert_int_equal(start(&rt, &quiet, with_redis, 3, &code, NULL), GOV_OK);
    assert_null(gov_runtime_config(rt)->redis_nodes); /* unset: the single node */
    assert_int_equal(gov_runtime_shutdown(rt, 0), 0);
    /* not a key of a binary without Redis */
    rt = NULL;
    assert_int_equal(start(&rt, &quiet, rows, NROWS, &code, "--redis_nodes=h:1", NULL),
                     GOV_ERR_CONFIG);
    assert_int_equal(code, 2);
}

static int only_even_workers(char *eb, size_t n) {
    if (workers % 2 != 0) {
        snprintf(eb, n, "workers must be even");
        return -1;
    }
    return 0;
}

static void test_check_config_is_a_usage_error(void **state) {
    (void)state;
    const gov_runtime_spec_t spec = {
        .name = "gov-test", .default_admin_port = 8799, .check_config = only_even_workers};
    gov_runtime_t *rt = NULL;
    int code = -1;
    assert_int_equal(start(&rt, &spec, rows, NROWS, &code, "--workers=3", NULL), GOV_ERR_CONFIG);
    assert_int_equal(code, 2);
    assert_null(rt);
    assert_int_equal(start(&rt, &spec, rows, NROWS, &code, "--workers=2", NULL), GOV_OK);
    assert_int_equal(gov_runtime_shutdown(rt, 0), 0);
}

static void test_sigterm_clears_the_run_flag(void **state) {
    (void)state;
    gov_runtime_t *rt = NULL;
    int code = -1;
    assert_int_equal(start(&rt, &quiet, rows, NROWS, &code, NULL), GOV_OK);
    assert_true(gov_runtime_running(rt));
    assert_int_equal(raise(SIGTERM), 0);
    assert_false(gov_runtime_running(rt));
    assert_int_equal(*gov_runtime_run_flag(rt), 0);
    gov_runtime_sleep(rt, 5000); /* returns at once: stopping */
    assert_int_equal(gov_runtime_shutdown(rt, 0), 0);
    /* a new runtime runs again */
    assert_int_equal(start(&rt, &quiet, rows, NROWS, &code, NULL), GOV_OK);
    assert_true(gov_runtime_running(rt));
    gov_runtime_stop(rt);
    assert_false(gov_runtime_running(rt));
    assert_int_equal(gov_runtime_shutdown(rt, 0), 0);
}

static size_t discard(char *p, size_t s, size_t n, void *u) {
    (void)p;
    (void)u;
    return s * n;
}

/* HTTP status of GET http://127.0.0.1:port/path, 0 when nothing answers. */
static long http_get(unsigned port, const char *path) {
    char url[128];
    long status = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    return status;
}

/* Starts spec with its admin server on a free port (tries ports from a
 * pid-derived base; a taken port is GOV_ERR_IO with exit code 1) and
 * returns the runtime, the port in *port, the number of start attempts in
 * *attempts (NULL: not wanted). */
static gov_runtime_t *start_on_free_port(const gov_runtime_spec_t *spec, unsigned *port,
                                         unsigned *attempts) {
    gov_runtime_t *rt = NULL;
    int code = -1;
    char opt[32];
    unsigned i = 0;
    for (; i < 200 && rt == NULL; i++) {
        *port = 20000 + (unsigned)(getpid() % 20000) + i * 11;
        snprintf(opt, sizeof opt, "--admin_port=%u", *port);
        gov_err_t err = start(&rt, spec, rows, NROWS, &code, opt, NULL);
        if (err != GOV_OK) {
            assert_int_equal(err, GOV_ERR_IO); /* port taken: next one */
            assert_int_equal(code, 1);
        }
    }
    assert_non_null(rt);
    if (attempts != NULL)
        *attempts = i;
    return rt;
}

/* register_parts runs before the admin server answers: its component and
 * metric family are there at the first request.  gov_runtime_stop_admin
 * stops answering at once, before the rest shuts down. */
static gov_err_t register_probe(void *ctx, gov_metrics_t *metrics, gov_status_t *status) {
    int *calls = ctx;
    (*calls)++;
    if (gov_metrics_counter(metrics, "probe_total", "Registered before serving.", 0, NULL) ==
        NULL)
        return GOV_ERR_NOMEM;
    return gov_status_register(status, "probe");
}

static void test_parts_registered_before_serving(void **state) {
    (void)state;
    int calls = 0;
    const gov_runtime_spec_t spec = {.name = "gov-test", .admin = 1,
                                     .register_parts = register_probe, .register_ctx = &calls};
    unsigned port = 0, attempts = 0;
    gov_runtime_t *rt = start_on_free_port(&spec, &port, &attempts);
    /* once per start attempt: a taken port fails after register_parts ran */
    assert_int_equal(calls, attempts);
    /* "probe" is registered and not ready: 503 names it, not an empty set */
    assert_int_equal(http_get(port, "/readyz"), 503);
    gov_status_set(gov_runtime_status(rt), "probe", GOV_STATUS_OK, NULL, NULL);
    assert_int_equal(http_get(port, "/readyz"), 200);
    gov_runtime_stop_admin(rt);
    assert_int_equal(http_get(port, "/healthz"), 0); /* refused before shutdown */
    gov_runtime_stop_admin(rt);                      /* idempotent */
    assert_int_equal(gov_runtime_shutdown(rt, 0), 0);
}

static void test_admin_server_and_one_shot_mode(void **state) {
    (void)state;
    int once = 0;
    const gov_runtime_spec_t spec = {.name = "gov-test", .admin = 1, .admin_unless = &once};
    unsigned port = 0;
    int code = -1;
    char opt[32];
    gov_runtime_t *rt = start_on_free_port(&spec, &port, NULL);
    snprintf(opt, sizeof opt, "--admin_port=%u", port);
    assert_int_equal(http_get(port, "/healthz"), 200);
    assert_int_equal(http_get(port, "/readyz"), 503); /* no component registered */
    assert_int_equal(gov_status_register(gov_runtime_status(rt), "x"), GOV_OK);
    gov_status_set(gov_runtime_status(rt), "x", GOV_STATUS_OK, NULL, NULL);
    assert_int_equal(http_get(port, "/readyz"), 200);
    assert_int_equal(http_get(port, "/metrics"), 200);
    assert_int_equal(gov_runtime_shutdown(rt, 0), 0);
    assert_int_equal(http_get(port, "/healthz"), 0); /* stopped with the runtime */

    once = 1; /* the one-shot mode has no admin server */
    assert_int_equal(start(&rt, &spec, rows, NROWS, &code, opt, NULL), GOV_OK);
    assert_int_equal(http_get(port, "/healthz"), 0);
    assert_int_equal(gov_runtime_shutdown(rt, 0), 0);
}

/* Every allocation failure during start-up is an error with nothing
 * leaked or left running (ASan and valgrind check the leaking part). */
static void test_allocation_failures(void **state) {
    (void)state;
    int failed = 0, code;
    for (long n = 0; n < 5000; n++) {
        gov_runtime_t *rt = NULL;
        gov_alloc_fail_after(n);
        gov_err_t err = start(&rt, &quiet, rows, NROWS, &code, "--label=x", NULL);
        gov_alloc_fail_reset();
        if (err == GOV_OK) {
            assert_int_equal(gov_runtime_shutdown(rt, 0), 0);
            break;
        }
        assert_null(rt);
        assert_true(code == 1 || code == 2);
        failed++;
    }
    assert_true(failed >= 5);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_shared_rows_take_their_place, setup),
        cmocka_unit_test_setup(test_values_and_exit_codes, setup),
        cmocka_unit_test_setup(test_redis_nodes_follows_redis_host, setup),
        cmocka_unit_test_setup(test_check_config_is_a_usage_error, setup),
        cmocka_unit_test_setup(test_sigterm_clears_the_run_flag, setup),
        cmocka_unit_test_setup(test_admin_server_and_one_shot_mode, setup),
        cmocka_unit_test_setup(test_parts_registered_before_serving, setup),
        cmocka_unit_test_setup(test_allocation_failures, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
