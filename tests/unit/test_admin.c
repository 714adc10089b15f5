/* test_admin.c - component status and the real admin HTTP server.
 *
 * Every test starts the real libmicrohttpd server on a loopback port and
 * talks to it with libcurl: /healthz, /readyz through NOT_READY -> OK ->
 * ERROR, /metrics (compared with the registry's own rendering and checked by
 * the real promtool), 404 and 405 bodies, HEAD, binding to the given address
 * only, a port already in use, the connection limit, a /readyz snapshot that
 * stays consistent while another thread flips states, and failure injection
 * on the allocations of the /readyz and /metrics handlers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gov_admin.h"
#include "gov_alloc.h"
#include "gov_metrics.h"

#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"

/* ------------------------------------------------------------------------ */
/* HTTP client                                                               */

typedef struct http_result {
    CURLcode curl;
    long status;
    char *body; /* malloc, NUL-terminated */
    size_t body_len;
    char content_type[128];
    char allow[64];
    char cache_control[64];
} http_result_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *p) {
    http_result_t *r = p;
    size_t n = size * nmemb;
    char *body = realloc(r->body, r->body_len + n + 1);
    if (body == NULL)
        return 0;
    memcpy(body + r->body_len, data, n);
    r->body = body;
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

static void copy_header_value(const char *data, size_t n, size_t name_len, char *dst,
                              size_t dst_size) {
    const char *v = data + name_len;
    size_t len = n - name_len;
    while (len > 0 && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n'))
        len--;
    if (len >= dst_size)
        len = dst_size - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *p) {
    http_result_t *r = p;
    size_t n = size * nmemb;
    static const char ct[] = "content-type:", allow[] = "allow:", cc[] = "cache-control:";
    if (n > sizeof(ct) - 1 && strncasecmp(data, ct, sizeof(ct) - 1) == 0)
        copy_header_value(data, n, sizeof(ct) - 1, r->content_type, sizeof(r->content_type));
    else if (n > sizeof(allow) - 1 && strncasecmp(data, allow, sizeof(allow) - 1) == 0)
        copy_header_value(data, n, sizeof(allow) - 1, r->allow, sizeof(r->allow));
    else if (n > sizeof(cc) - 1 && strncasecmp(data, cc, sizeof(cc) - 1) == 0)
        copy_header_value(data, n, sizeof(cc) - 1, r->cache_control, sizeof(r->cache_control));
    return n;
}

/* Performs one request; r->curl tells whether an answer came back. */
static void http_request_to(const char *host, unsigned port, const char *method,
                            const char *path, long timeout_ms, http_result_t *r) {
    char url[256];
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://%s:%u%s", host, port, path);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "{\"a\":1}");
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    r->curl = curl_easy_perform(curl);
    if (r->curl == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(curl);
    if (r->body == NULL) {
        r->body = calloc(1, 1);
        assert_non_null(r->body);
    }
}

static void http_request(unsigned port, const char *method, const char *path,
                         http_result_t *r) {
    http_request_to("127.0.0.1", port, method, path, 10000, r);
    if (r->curl != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(r->curl));
}

static void http_result_clear(http_result_t *r) {
    free(r->body);
    r->body = NULL;
}

static json_t *parse_json(const http_result_t *r) {
    json_error_t error;
    json_t *v = json_loadb(r->body, r->body_len, 0, &error);
    if (v == NULL)
        fail_msg("body is not JSON (%s): %s", error.text, r->body);
    return v;
}

/* Asserts the docs/contracts.md error body with the given code. */
static void assert_error_body(const http_result_t *r, const char *code) {
    assert_string_equal(r->content_type, "application/json");
    json_t *v = parse_json(r);
    json_t *err = json_object_get(v, "error");
    assert_true(json_is_object(err));
    assert_int_equal(json_object_size(v), 1);
    assert_int_equal(json_object_size(err), 2);
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    const char *message = json_string_value(json_object_get(err, "message"));
    assert_non_null(message);
    assert_true(strlen(message) > 0);
    json_decref(v);
}

/* ------------------------------------------------------------------------ */
/* Server fixture                                                            */

typedef struct fixture {
    gov_status_t *status;
    gov_metrics_t *metrics;
    gov_admin_t *admin;
    unsigned port;
} fixture_t;

/* Starts a server on addr at a free port of a pid-dependent range, moving
 * to the next port when one is taken (GOV_ERR_IO). */
static unsigned start_on_free_port(const char *addr, gov_status_t *st, gov_metrics_t *m,
                                   gov_admin_t **out) {
    unsigned base = 20000 + (unsigned)(getpid() % 20000);
    char errbuf[256];
    for (unsigned i = 0; i < 200; i++) {
        unsigned port = base + i * 7;
        gov_err_t err = gov_admin_start(addr, port, st, m, out, errbuf, sizeof(errbuf));
        if (err == GOV_OK) {
            assert_non_null(*out);
            return port;
        }
        assert_int_equal(err, GOV_ERR_IO);
        assert_null(*out);
        assert_non_null(strstr(errbuf, addr));
    }
    fail_msg("no free port found");
    return 0;
}

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->status = gov_status_new();
    f->metrics = gov_metrics_new();
    if (f->status == NULL || f->metrics == NULL)
        return -1;
    f->port = start_on_free_port("127.0.0.1", f->status, f->metrics, &f->admin);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    gov_admin_stop(f->admin);
    gov_status_free(f->status);
    gov_metrics_free(f->metrics);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------------ */

static void test_healthz(void **state) {
    fixture_t *f = *state;
    http_result_t r;
    http_request(f->port, "GET", "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(r.cache_control, "no-store");
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    http_result_clear(&r);

    http_request(f->port, "HEAD", "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.body_len, 0);
    http_result_clear(&r);

    /* The query string is not part of the path. */
    http_request(f->port, "GET", "/healthz?verbose=1", &r);
    assert_int_equal(r.status, 200);
    http_result_clear(&r);
}

/* Returns the component object named name in a /readyz body (borrowed). */
static json_t *find_component(json_t *body, const char *name) {
    json_t *list = json_object_get(body, "components");
    assert_true(json_is_array(list));
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        if (strcmp(json_string_value(json_object_get(item, "name")), name) == 0)
            return item;
    }
    fail_msg("component %s not listed", name);
    return NULL;
}

static void assert_component(json_t *body, const char *name, const char *state,
                             const char *revision, const char *detail) {
    json_t *c = find_component(body, name);
    assert_int_equal(json_object_size(c), 5);
    assert_string_equal(json_string_value(json_object_get(c, "state")), state);
    if (revision)
        assert_string_equal(json_string_value(json_object_get(c, "revision")), revision);
    else
        assert_true(json_is_null(json_object_get(c, "revision")));
    if (detail)
        assert_string_equal(json_string_value(json_object_get(c, "detail")), detail);
    else
        assert_true(json_is_null(json_object_get(c, "detail")));
}

/* Parses the RFC 3339 "YYYY-MM-DDTHH:MM:SS.mmmZ" form; returns Unix time. */
static time_t parse_rfc3339(const char *s) {
    struct tm tm;
    int ms = -1, consumed = 0;
    memset(&tm, 0, sizeof(tm));
    assert_non_null(s);
    assert_int_equal(strlen(s), 24);
    assert_int_equal(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &consumed),
                     7);
    assert_int_equal(consumed, 24);
    assert_true(ms >= 0 && ms <= 999);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static void test_readyz_transitions(void **state) {
    fixture_t *f = *state;
    http_result_t r;

    /* No component at all: not ready. */
    http_request(f->port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(r.body, "{\"status\":\"not_ready\",\"components\":[]}");
    http_result_clear(&r);
    assert_int_equal(gov_status_ready(f->status), 0);

    assert_int_equal(gov_status_register(f->status, "kafka"), GOV_OK);
    assert_int_equal(gov_status_register(f->status, "redis"), GOV_OK);
    assert_int_equal(gov_status_register(f->status, "kafka"), GOV_OK); /* finds it */
    http_request(f->port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body,
                        "{\"status\":\"not_ready\",\"components\":["
                        "{\"name\":\"kafka\",\"state\":\"not_ready\",\"last_ok\":null,"
                        "\"revision\":null,\"detail\":null},"
                        "{\"name\":\"redis\",\"state\":\"not_ready\",\"last_ok\":null,"
                        "\"revision\":null,\"detail\":null}]}");
    http_result_clear(&r);

    /* One OK, one still not ready: 503. */
    time_t before = time(NULL);
    gov_status_set(f->status, "kafka", GOV_STATUS_OK, NULL, "bundle-7");
    http_request(f->port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    json_t *body = parse_json(&r);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "not_ready");
    assert_component(body, "kafka", "ok", "bundle-7", NULL);
    assert_component(body, "redis", "not_ready", NULL, NULL);
    time_t when = parse_rfc3339(
        json_string_value(json_object_get(find_component(body, "kafka"), "last_ok")));
    assert_true(when >= before && when <= time(NULL));
    json_decref(body);
    http_result_clear(&r);

    /* All OK: 200. */
    gov_status_set(f->status, "redis", GOV_STATUS_OK, "connected", NULL);
    assert_int_equal(gov_status_ready(f->status), 1);
    http_request(f->port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 200);
    body = parse_json(&r);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "ok");
    assert_component(body, "redis", "ok", NULL, "connected");
    char kafka_last_ok[64];
    snprintf(kafka_last_ok, sizeof(kafka_last_ok), "%s",
             json_string_value(json_object_get(find_component(body, "kafka"), "last_ok")));
    json_decref(body);
    http_result_clear(&r);

    /* HEAD gives the same status without a body. */
    http_request(f->port, "HEAD", "/readyz", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    http_result_clear(&r);

    /* DEGRADED is still ready (200): the body says "degraded" and which
     * component; back to OK, the body says "ok" again. */
    gov_status_set(f->status, "tenant:acme", GOV_STATUS_DEGRADED, "constitution refused", NULL);
    assert_int_equal(gov_status_ready(f->status), 1);
    http_request(f->port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 200);
    body = parse_json(&r);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "degraded");
    assert_component(body, "tenant:acme", "degraded", NULL, "constitution refused");
    json_decref(body);
    http_result_clear(&r);
    gov_status_set(f->status, "tenant:acme", GOV_STATUS_OK, NULL, NULL);
    http_request(f->port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 200);
    body = parse_json(&r);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "ok");
    json_decref(body);
    http_result_clear(&r);
    /* DEGRADED next to an error is not ready. */
    gov_status_set(f->status, "tenant:acme", GOV_STATUS_DEGRADED, NULL, NULL);

    /* An error: 503, detail shown, last success and revision kept. */
    gov_status_set(f->status, "kafka", GOV_STATUS_ERROR, "broker down", NULL);
    assert_int_equal(gov_status_ready(f->status), 0);
    http_request(f->port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    body = parse_json(&r);
    assert_component(body, "kafka", "error", "bundle-7", "broker down");
    assert_string_equal(
        json_string_value(json_object_get(find_component(body, "kafka"), "last_ok")),
        kafka_last_ok);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "not_ready");
    json_decref(body);
    http_result_clear(&r);

    /* Recovery clears the detail (NULL) and replaces the revision. */
    gov_status_set(f->status, "kafka", GOV_STATUS_OK, NULL, "bundle-8");
    http_request(f->port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 200);
    body = parse_json(&r);
    assert_component(body, "kafka", "ok", "bundle-8", NULL);
    json_decref(body);
    http_result_clear(&r);
}

static void test_status_edge_cases(void **state) {
    fixture_t *f = *state;
    http_result_t r;
    assert_int_equal(gov_status_register(f->status, NULL), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_status_register(f->status, ""), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_status_register(f->status, "bad\xff"), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_status_register(NULL, "x"), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_status_ready(NULL), 0);

    /* set on an unregistered name registers it; an unknown state is ERROR. */
    gov_status_set(f->status, "loader", GOV_STATUS_OK, NULL, NULL);
    gov_status_set(f->status, "weird", (gov_status_state_t)42, NULL, NULL);
    /* Detail is bounded and made valid UTF-8. */
    char long_detail[2000];
    memset(long_detail, 'x', sizeof(long_detail) - 1);
    long_detail[sizeof(long_detail) - 1] = '\0';
    gov_status_set(f->status, "chatty", GOV_STATUS_ERROR, long_detail, "rev\xff\xfe");
    http_request(f->port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    json_t *body = parse_json(&r);
    assert_component(body, "loader", "ok", NULL, NULL);
    assert_component(body, "weird", "error", NULL, NULL);
    json_t *chatty = find_component(body, "chatty");
    assert_int_equal(strlen(json_string_value(json_object_get(chatty, "detail"))), 512);
    assert_string_equal(json_string_value(json_object_get(chatty, "revision")),
                        "rev\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(body);
    http_result_clear(&r);

    /* The component table is bounded. */
    gov_err_t err = GOV_OK;
    int registered = 3;
    for (int i = 0; i < 100 && err == GOV_OK; i++) {
        char name[32];
        snprintf(name, sizeof(name), "c%d", i);
        err = gov_status_register(f->status, name);
        registered += err == GOV_OK;
    }
    assert_int_equal(err, GOV_ERR_TOO_LARGE);
    assert_int_equal(registered, 64);
    gov_status_free(NULL);
    gov_admin_stop(NULL);
}

/* Runs `promtool check metrics` on text; returns its exit status. */
static int promtool_check(const char *text, size_t len) {
    char path[] = "/tmp/gov_admin_promtool_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    int status = system(cmd);
    unlink(path);
    assert_true(status != -1 && WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_metrics_endpoint(void **state) {
    fixture_t *f = *state;
    http_result_t r;
    gov_metric_t *events = gov_metrics_counter(f->metrics, "processor_events_total",
                                               "Events handled by a processor.", 3,
                                               (const char *[]){"processor", "topic", "outcome"});
    gov_metric_t *eval = gov_metrics_histogram(
        f->metrics, "policy_evaluation_duration_seconds", "Policy evaluation time.", 0, NULL,
        gov_metrics_latency_bucket_count, gov_metrics_latency_buckets);
    assert_non_null(events);
    assert_non_null(eval);
    gov_metric_inc(events, (const char *[]){"gov-audit", "identity.audit", "ok"}, 1);
    gov_metric_observe(eval, NULL, 0.0042);

    http_request(f->port, "GET", "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, CONTENT_TYPE_METRICS);
    char *expected = NULL;
    size_t expected_len = 0;
    assert_int_equal(gov_metrics_render(f->metrics, &expected, &expected_len), GOV_OK);
    assert_int_equal(r.body_len, expected_len);
    assert_string_equal(r.body, expected);
    assert_non_null(strstr(r.body, "\nprocessor_events_total{processor=\"gov-audit\","
                                   "topic=\"identity.audit\",outcome=\"ok\"} 1\n"));
    assert_int_equal(promtool_check(r.body, r.body_len), 0);
    gov_free(expected);
    http_result_clear(&r);

    /* The endpoint is live, not a snapshot. */
    gov_metric_inc(events, (const char *[]){"gov-audit", "identity.audit", "ok"}, 41);
    http_request(f->port, "GET", "/metrics", &r);
    assert_non_null(strstr(r.body, "outcome=\"ok\"} 42\n"));
    http_result_clear(&r);
}

static void test_not_found(void **state) {
    fixture_t *f = *state;
    static const char *const paths[] = {"/", "/nope", "/healthz/", "/metrics/x", "/READYZ",
                                        "/v1/evaluate"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        http_result_t r;
        http_request(f->port, "GET", paths[i], &r);
        if (r.status != 404)
            fail_msg("GET %s: %ld", paths[i], r.status);
        assert_error_body(&r, "not_found");
        http_result_clear(&r);
    }
    http_result_t r;
    http_request(f->port, "POST", "/nope", &r);
    assert_int_equal(r.status, 404);
    assert_error_body(&r, "not_found");
    http_result_clear(&r);
}

static void test_method_not_allowed(void **state) {
    fixture_t *f = *state;
    static const struct {
        const char *method, *path;
    } cases[] = {{"POST", "/healthz"}, {"PUT", "/metrics"}, {"DELETE", "/readyz"},
                 {"PATCH", "/healthz"}, {"OPTIONS", "/metrics"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_result_t r;
        http_request(f->port, cases[i].method, cases[i].path, &r);
        if (r.status != 405)
            fail_msg("%s %s: %ld", cases[i].method, cases[i].path, r.status);
        assert_string_equal(r.allow, "GET, HEAD");
        assert_error_body(&r, "method_not_allowed");
        http_result_clear(&r);
    }
    /* The server is still fine afterwards. */
    http_result_t r;
    http_request(f->port, "GET", "/healthz", &r);
    assert_int_equal(r.status, 200);
    http_result_clear(&r);
}

/* Bound to 127.0.0.1 only: 127.0.0.2 (same loopback interface) is refused,
 * and a second server can take the same port there. */
static void test_binds_only_given_address(void **state) {
    fixture_t *f = *state;
    http_result_t r;
    http_request_to("127.0.0.2", f->port, "GET", "/healthz", 5000, &r);
    assert_int_equal(r.curl, CURLE_COULDNT_CONNECT);
    http_result_clear(&r);

    gov_status_t *st2 = gov_status_new();
    gov_metrics_t *m2 = gov_metrics_new();
    gov_admin_t *second = NULL;
    char errbuf[256];
    assert_int_equal(gov_admin_start("127.0.0.2", f->port, st2, m2, &second, errbuf,
                                     sizeof(errbuf)),
                     GOV_OK);
    gov_status_register(st2, "only-on-second");
    http_request_to("127.0.0.2", f->port, "GET", "/readyz", 5000, &r);
    assert_int_equal(r.curl, CURLE_OK);
    assert_non_null(strstr(r.body, "only-on-second"));
    http_result_clear(&r);
    http_request(f->port, "GET", "/readyz", &r);
    assert_null(strstr(r.body, "only-on-second"));
    http_result_clear(&r);
    gov_admin_stop(second);
    gov_status_free(st2);
    gov_metrics_free(m2);
}

static void test_port_in_use_and_bad_arguments(void **state) {
    fixture_t *f = *state;
    gov_admin_t *other = (gov_admin_t *)&other; /* must be reset to NULL */
    char errbuf[256], expect[64];
    assert_int_equal(gov_admin_start("127.0.0.1", f->port, f->status, f->metrics, &other,
                                     errbuf, sizeof(errbuf)),
                     GOV_ERR_IO);
    assert_null(other);
    snprintf(expect, sizeof(expect), "127.0.0.1:%u", f->port);
    assert_non_null(strstr(errbuf, expect));

    static const char *const bad_addrs[] = {"localhost", "999.1.1.1", "", "127.0.0.1:80"};
    for (size_t i = 0; i < sizeof(bad_addrs) / sizeof(bad_addrs[0]); i++) {
        assert_int_equal(gov_admin_start(bad_addrs[i], 8704, f->status, f->metrics, &other,
                                         errbuf, sizeof(errbuf)),
                         GOV_ERR_INVALID_ARG);
        assert_null(other);
        assert_true(strlen(errbuf) > 0);
    }
    assert_int_equal(gov_admin_start("127.0.0.1", 0, f->status, f->metrics, &other, errbuf,
                                     sizeof(errbuf)),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_admin_start("127.0.0.1", 65536, f->status, f->metrics, &other,
                                     errbuf, sizeof(errbuf)),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_admin_start("127.0.0.1", 8704, NULL, f->metrics, &other, NULL, 0),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_admin_start("127.0.0.1", 8704, f->status, NULL, &other, NULL, 0),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_admin_start("127.0.0.1", 8704, f->status, f->metrics, NULL, NULL, 0),
                     GOV_ERR_INVALID_ARG);
}

static void test_ipv6_loopback(void **state) {
    (void)state;
    /* Only meaningful where the kernel has ::1; the probe is a plain bind. */
    int s = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int have_v6 = s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (s >= 0)
        close(s);
    if (!have_v6)
        skip();
    gov_status_t *st = gov_status_new();
    gov_metrics_t *m = gov_metrics_new();
    gov_admin_t *admin = NULL;
    unsigned port = start_on_free_port("::1", st, m, &admin);
    http_result_t r;
    http_request_to("[::1]", port, "GET", "/healthz", 5000, &r);
    assert_int_equal(r.curl, CURLE_OK);
    assert_int_equal(r.status, 200);
    http_result_clear(&r);
    /* Not reachable over IPv4. */
    http_request_to("127.0.0.1", port, "GET", "/healthz", 5000, &r);
    assert_int_not_equal(r.curl, CURLE_OK);
    http_result_clear(&r);
    gov_admin_stop(admin);
    gov_status_free(st);
    gov_metrics_free(m);
}

/* With every slot held by idle clients, a new request is not served; once
 * they leave, it is. */
static void test_connection_limit(void **state) {
    fixture_t *f = *state;
    enum { LIMIT = 64 };
    int idle[LIMIT];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < LIMIT; i++) {
        idle[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(idle[i] >= 0);
        assert_int_equal(connect(idle[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    usleep(300 * 1000); /* let the server accept them all */
    http_result_t r;
    http_request_to("127.0.0.1", f->port, "GET", "/healthz", 1500, &r);
    assert_int_not_equal(r.curl, CURLE_OK);
    http_result_clear(&r);
    for (int i = 0; i < LIMIT; i++)
        close(idle[i]);
    /* The server notices the closed sockets on its next poll. */
    int served = 0;
    for (int attempt = 0; attempt < 50 && !served; attempt++) {
        http_request_to("127.0.0.1", f->port, "GET", "/healthz", 2000, &r);
        served = r.curl == CURLE_OK && r.status == 200;
        http_result_clear(&r);
        if (!served)
            usleep(100 * 1000);
    }
    assert_true(served);
}

/* ------------------------------------------------------------------------ */

typedef struct flipper {
    gov_status_t *status;
    atomic_int stop;
} flipper_t;

static void *flip_states(void *p) {
    flipper_t *fl = p;
    unsigned i = 0;
    while (!atomic_load(&fl->stop)) {
        char rev[32];
        snprintf(rev, sizeof(rev), "rev-%u", i);
        gov_status_set(fl->status, "a", (i % 3 == 0) ? GOV_STATUS_ERROR : GOV_STATUS_OK,
                       (i % 2) ? "odd" : NULL, rev);
        gov_status_set(fl->status, "b", GOV_STATUS_OK, NULL, rev);
        i++;
        /* Let the server thread run: under valgrind threads take turns, and
         * a thread that never yields starves the one answering HTTP. */
        sched_yield();
    }
    return NULL;
}

/* Each /readyz answer is one consistent snapshot: the HTTP status agrees with
 * the body's status and with the component states in it. */
static void test_readyz_consistent_under_concurrency(void **state) {
    fixture_t *f = *state;
    flipper_t fl = {.status = f->status};
    atomic_init(&fl.stop, 0);
    gov_status_register(f->status, "a");
    gov_status_register(f->status, "b");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, flip_states, &fl), 0);
    int seen_ok = 0, seen_not = 0;
    for (int i = 0; i < 200; i++) {
        http_result_t r;
        http_request_to("127.0.0.1", f->port, "GET", "/readyz", 30000, &r);
        if (r.curl != CURLE_OK) {
            /* stop the thread before failing: it reads this frame's `fl` */
            atomic_store(&fl.stop, 1);
            pthread_join(t, NULL);
            http_result_clear(&r);
            fail_msg("GET /readyz: %s", curl_easy_strerror(r.curl));
        }
        json_t *body = parse_json(&r);
        int all_ok = 1;
        size_t k;
        json_t *item;
        json_array_foreach(json_object_get(body, "components"), k, item) {
            all_ok &= strcmp(json_string_value(json_object_get(item, "state")), "ok") == 0;
        }
        const char *st = json_string_value(json_object_get(body, "status"));
        assert_int_equal(r.status, all_ok ? 200 : 503);
        assert_string_equal(st, all_ok ? "ok" : "not_ready");
        seen_ok += all_ok;
        seen_not += !all_ok;
        json_decref(body);
        http_result_clear(&r);
    }
    atomic_store(&fl.stop, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(seen_ok + seen_not == 200);
}

/* ------------------------------------------------------------------------ */
/* Failure injection in the handlers (jansson allocates through gov_malloc). */

static void test_readyz_allocation_failures(void **state) {
    fixture_t *f = *state;
    gov_status_register(f->status, "kafka");
    gov_status_set(f->status, "kafka", GOV_STATUS_OK, "connected", "r-1");
    gov_status_set(f->status, "redis", GOV_STATUS_ERROR, "refused", NULL);
    int saw_500 = 0;
    for (long n = 0;; n++) {
        http_result_t r;
        gov_alloc_fail_after(n);
        http_request(f->port, "GET", "/readyz", &r);
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (failures == 0) {
            assert_int_equal(r.status, 503);
            json_t *body = parse_json(&r);
            assert_component(body, "kafka", "ok", "r-1", "connected");
            assert_component(body, "redis", "error", NULL, "refused");
            json_decref(body);
            http_result_clear(&r);
            break;
        }
        assert_int_equal(r.status, 500);
        assert_error_body(&r, "out_of_memory");
        saw_500++;
        http_result_clear(&r);
        assert_true(n < 1000);
    }
    assert_true(saw_500 > 5);
}

static void test_metrics_allocation_failures(void **state) {
    fixture_t *f = *state;
    gov_metric_t *m = gov_metrics_counter(f->metrics, "oom_events_total", "OOM.", 1,
                                          (const char *[]){"tenant"});
    assert_non_null(m);
    for (int i = 0; i < 500; i++) {
        char tenant[32];
        snprintf(tenant, sizeof(tenant), "tenant-%d", i);
        gov_metric_inc(m, (const char *[]){tenant}, 1);
    }
    for (long n = 0;; n++) {
        http_result_t r;
        gov_alloc_fail_after(n);
        http_request(f->port, "GET", "/metrics", &r);
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (failures == 0) {
            assert_int_equal(r.status, 200);
            assert_string_equal(r.content_type, CONTENT_TYPE_METRICS);
            assert_non_null(strstr(r.body, "oom_events_total{tenant=\"tenant-499\"} 1\n"));
            http_result_clear(&r);
            assert_true(n > 1);
            break;
        }
        assert_int_equal(r.status, 500);
        assert_error_body(&r, "out_of_memory");
        http_result_clear(&r);
        assert_true(n < 1000);
    }
}

int main(void) {
    gov_alloc_install_jansson();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readyz_transitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_edge_cases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binds_only_given_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_in_use_and_bad_arguments, setup, teardown),
        cmocka_unit_test(test_ipv6_loopback),
        cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readyz_consistent_under_concurrency, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_readyz_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_allocation_failures, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
