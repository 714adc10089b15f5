/* test_gateway.c - the nginx gateway (deploy/nginx) in front of gov-edge's
 * /v1/authz, against a real nginx, a real gov-edge, a real upstream and the
 * stack's Kafka, Redis and identity.
 *
 * The test starts its own of each, so nothing of the stack can pass it in
 * their place: a private gov-edge ("edge-itest-gateway-<unique>": its
 * /metrics and the edge_id of the decisions it logged), a private counting
 * upstream (tests/integration/upstream_counter.c, named
 * "upstream-itest-gateway-<unique>", read on its own port), and two private
 * nginx from deploy/nginx/render.sh with prefixes under var/test-logs: one
 * over the private edge, one over a socket that accepts connections and
 * never answers (the check times out).  Tokens come from the stack's edge
 * (/v1/tokens/issue) for a client the test registers (register_client).
 * What an operator would check:
 *   - an allowed request passes with the edge's headers, and the upstream
 *     sees the edge's values of X-Policy-* / X-Constitution-Hash only
 *     (a client's values of those names are replaced; a client's other
 *     X-Policy-* name is refused);
 *   - a denied request (a destructive command in the target; a body
 *     without a Content-Digest) never reaches the upstream;
 *   - no token, an invalid token, a revoked token: 401 and nothing reaches
 *     the upstream; a review decision does not pass either;
 *   - the check times out: 503 deny, nothing reaches the upstream;
 *   - Envoy's form of the check (no Envoy here: the request as Envoy's
 *     ext_authz HTTP service sends it, to the private edge): the carried
 *     body is bound, a wrong Content-Digest, a destructive path, a bare
 *     prefix and a decision header on the check are refused;
 *   - the private edge stopped: 503 deny, nothing reaches the upstream.
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

#include <openssl/evp.h>

#include "gov_util.h"
#include "itest_util.h"

#define TENANT "demo"
#define WAIT_MS 20000
#define DIGEST_HELLO "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:"   /* "hello" */

static itest_rig_t rig;   /* client, private edge, upstream and nginx */
static pid_t nginx_hole_pid = -1;
static int gw_hole_port, hole_fd = -1;
static char prefix_hole[256];
static char token[4096], auth[4200];

/* --- HTTP ------------------------------------------------------------------------------ */

/* One request to the gateway on port: method, target, extra header lines
 * ("Name: value\r\n"...), a body (may be NULL).  The status (0: none), the
 * raw answer in raw. */
static int gw(int port, const char *method, const char *target, const char *headers,
              const char *body, char *raw, size_t raw_size) {
    return itest_http_request(port, method, target, headers, body, raw, raw_size);
}

static double gw_metric(const char *decision) {
    return itest_proc_metric(&rig.edge, "gateway_requests_total",
                             (const char *const[]){"route=\"authz\"", decision, NULL});
}

/* --- set-up ---------------------------------------------------------------------------- */

/* A form POST to the stack's edge as the registered client (HTTP Basic):
 * the status, the raw answer in raw. */
static int stack_edge_post(const char *path, const char *form, char *raw, size_t raw_size) {
    const char *url = itest_env("GOV_EDGE_URL", "http://127.0.0.1:8700");
    const char *colon = strrchr(url, ':');
    assert_non_null(colon);
    char pair[256], basic[512], hdr[640];
    snprintf(pair, sizeof pair, "%s:%s", rig.client_id, rig.client_secret);
    EVP_EncodeBlock((unsigned char *)basic, (const unsigned char *)pair, (int)strlen(pair));
    snprintf(hdr, sizeof hdr, "Authorization: Basic %s\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\n", basic);
    return gw(atoi(colon + 1), "POST", path, hdr, form, raw, raw_size);
}

/* A token from the stack's edge for the registered client into tok. */
static void issue_token(char *tok, size_t size) {
    char raw[16384];
    int st = stack_edge_post("/v1/tokens/issue", "grant_type=client_credentials&tenant=" TENANT,
                             raw, sizeof raw);
    if (st != 200)
        fail_msg("token issue answered %d: %s", st, raw);
    json_t *j = json_loads(strstr(raw, "\r\n\r\n") + 4, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "access_token"));
    assert_non_null(t);
    snprintf(tok, size, "%s", t);
    json_decref(j);
}

static int setup(void **state) {
    (void)state;
    char brokers[256];
    snprintf(brokers, sizeof brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    itest_rig_start(&rig, "gateway", TENANT, "read",
                    /* its tokens are client tokens of scope "read", not sessions */
                    (const char *const[]){brokers, "GOV_LOOKUP_TIMEOUT=2s",
                                          "GOV_AUTHZ_REQUIRED_SCOPE=read", NULL});
    issue_token(token, sizeof token);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);

    int hole_port;
    hole_fd = itest_kafka_blackhole(&hole_port);
    gw_hole_port = itest_free_port();
    nginx_hole_pid = itest_gateway_start("gateway-nginx-hole", hole_port, rig.upstream_port,
                                         gw_hole_port, "1s", prefix_hole, sizeof prefix_hole);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_rig_stop(&rig) != 0;
    if (nginx_hole_pid > 0)
        rc |= itest_stop(nginx_hole_pid, SIGTERM, 10000) != 0;
    if (hole_fd >= 0)
        close(hole_fd);
    itest_workdir_remove(prefix_hole);
    return rc;
}

/* --- the cases ------------------------------------------------------------------------- */

typedef struct decision_wait {
    char url[256];
} decision_wait_t;

static int decision_logged(void *opaque) {
    decision_wait_t *w = opaque;
    char *body = NULL;
    long st = itest_http_get(w->url, &body);
    int ok = st == 200 && body && strstr(body, rig.edge.id) != NULL;
    free(body);
    return ok;
}

/* An allowed request passes, the upstream sees the edge's headers and only
 * those; the client's own values of the same names are replaced. */
static void test_allowed_passes_with_edge_headers(void **state) {
    (void)state;
    long before = itest_rig_requests(&rig);
    double allowed = gw_metric("decision=\"allow\"");
    char raw[16384], hdrs[4800];
    snprintf(hdrs, sizeof hdrs,
             "%sX-Policy-Decision: forged\r\nX-Policy-Score: 0.999999\r\n"
             "X-Policy-Decision-Id: forged\r\nX-Policy-Input-Digest: forged\r\n"
             "X-Constitution-Hash: forged\r\nX-Policy-Decision: forged-again\r\n", auth);
    int st = gw(rig.gw_port, "GET", "/api/items?q=weather", hdrs, NULL, raw, sizeof raw);
    if (st != 200)
        fail_msg("want 200, got %d: %s", st, raw);
    char decision[64], id[64], hash[160], score[32];
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    itest_header_of(raw, "X-Policy-Decision-Id", id, sizeof id);
    itest_header_of(raw, "X-Constitution-Hash", hash, sizeof hash);
    itest_header_of(raw, "X-Policy-Score", score, sizeof score);
    assert_string_equal(decision, "allow");
    assert_true(gov_uuid_v7_valid(id));
    assert_int_equal(strlen(hash), 128);
    assert_string_equal(score, "0.000000");

    /* exactly one request reached the upstream, with exactly the edge's five */
    assert_int_equal(itest_rig_requests(&rig), before + 1);
    json_t *c = itest_rig_counts(&rig);
    json_t *policy = json_object_get(json_object_get(c, "last"), "policy");
    assert_int_equal(json_object_size(policy), 5);
    assert_string_equal(json_string_value(json_object_get(policy, "x-policy-decision")), "allow");
    assert_string_equal(json_string_value(json_object_get(policy, "x-policy-decision-id")), id);
    assert_string_equal(json_string_value(json_object_get(policy, "x-constitution-hash")), hash);
    assert_string_equal(json_string_value(json_object_get(policy, "x-policy-score")), score);
    const char *digest = json_string_value(json_object_get(policy, "x-policy-input-digest"));
    assert_non_null(digest);
    assert_int_equal(strlen(digest), 64);
    json_decref(c);
    assert_true(gw_metric("decision=\"allow\"") >= (allowed < 0 ? 0 : allowed) + 1);

    /* the decision is this edge's: logged with its rig.edge.id, materialized by gov-audit */
    decision_wait_t w;
    snprintf(w.url, sizeof w.url, "%s/v1/decisions/%s/%s", rig.edge.url, TENANT, id);
    if (itest_wait_for(decision_logged, &w, 60000, 100) < 0)
        fail_msg("decision %s of %s was not found at %s", id, rig.edge.id, w.url);
}

/* A client's X-Policy-* header of another name cannot be removed by nginx:
 * the edge refuses the request, and nothing reaches the upstream. */
static void test_unknown_policy_header_refused(void **state) {
    (void)state;
    long before = itest_rig_requests(&rig);
    char raw[16384], hdrs[4400];
    snprintf(hdrs, sizeof hdrs, "%sX-Policy-Approved-By: me\r\n", auth);
    int st = gw(rig.gw_port, "GET", "/api/items", hdrs, NULL, raw, sizeof raw);
    assert_int_equal(st, 403);
    char decision[32];
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "deny");
    assert_int_equal(itest_rig_requests(&rig), before);
}

/* Denied requests never reach the upstream; a body must come with its digest. */
static void test_denied_never_reaches_upstream(void **state) {
    (void)state;
    long before = itest_rig_requests(&rig);
    double denied = gw_metric("decision=\"deny\"");
    char raw[16384], hdrs[4400];
    /* the demo pack denies destructive commands, however they are escaped */
    int st = gw(rig.gw_port, "GET", "/api/run?cmd=rm%20-rf%20%2F", auth, NULL, raw, sizeof raw);
    assert_int_equal(st, 403);
    char decision[32], id[64];
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    itest_header_of(raw, "X-Policy-Decision-Id", id, sizeof id);
    assert_string_equal(decision, "deny");
    assert_true(gov_uuid_v7_valid(id));
    /* review (an e-mail address and a password: 0.45 > the pack's 0.4) does not pass either */
    st = gw(rig.gw_port, "GET", "/api/mail?to=ann@example.com&password=hunter2", auth, NULL, raw,
            sizeof raw);
    assert_int_equal(st, 403);
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "review");
    /* a body without its Content-Digest */
    st = gw(rig.gw_port, "POST", "/api/items", auth, "hello", raw, sizeof raw);
    assert_int_equal(st, 403);
    assert_int_equal(itest_rig_requests(&rig), before);
    assert_true(gw_metric("decision=\"deny\"") >= (denied < 0 ? 0 : denied) + 2);
    assert_true(gw_metric("decision=\"review\"") >= 1);

    /* with it, the body passes, and the upstream finds the body matches */
    snprintf(hdrs, sizeof hdrs, "%sContent-Digest: " DIGEST_HELLO "\r\n", auth);
    st = gw(rig.gw_port, "POST", "/api/items", hdrs, "hello", raw, sizeof raw);
    if (st != 200)
        fail_msg("want 200, got %d: %s", st, raw);
    json_t *c = itest_rig_counts(&rig);
    assert_int_equal(json_integer_value(json_object_get(c, "requests")), before + 1);
    assert_true(json_is_true(json_object_get(json_object_get(c, "last"), "digest_ok")));
    json_decref(c);
}

/* No token, a bad token: 401 with WWW-Authenticate, nothing passes. */
static void test_identity_refused(void **state) {
    (void)state;
    long before = itest_rig_requests(&rig);
    double unauth = gw_metric("decision=\"unauthenticated\"");
    char raw[16384], www[256], decision[32];
    int st = gw(rig.gw_port, "GET", "/api/items", NULL, NULL, raw, sizeof raw);
    assert_int_equal(st, 401);
    itest_header_of(raw, "WWW-Authenticate", www, sizeof www);
    assert_string_equal(www, "Bearer realm=\"soma-governance\"");
    /* a token with its signature changed */
    char bad[4200], hdr[4400];
    snprintf(bad, sizeof bad, "%s", token);
    size_t n = strlen(bad);
    bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", bad);
    st = gw(rig.gw_port, "GET", "/api/items", hdr, NULL, raw, sizeof raw);
    assert_int_equal(st, 401);
    itest_header_of(raw, "WWW-Authenticate", www, sizeof www);
    assert_non_null(strstr(www, "error=\"invalid_token\""));
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "deny");
    /* a token that passed once, revoked: refused at once */
    char second[4096], form[4200];
    issue_token(second, sizeof second);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", second);
    assert_int_equal(gw(rig.gw_port, "GET", "/api/items", hdr, NULL, raw, sizeof raw), 200);
    before++;
    snprintf(form, sizeof form, "token=%s", second);
    assert_int_equal(stack_edge_post("/v1/tokens/revoke", form, raw, sizeof raw), 200);
    assert_int_equal(gw(rig.gw_port, "GET", "/api/items", hdr, NULL, raw, sizeof raw), 401);
    itest_header_of(raw, "WWW-Authenticate", www, sizeof www);
    assert_non_null(strstr(www, "error_description=\"token_revoked\""));
    assert_int_equal(itest_rig_requests(&rig), before);
    assert_true(gw_metric("decision=\"unauthenticated\"") >= (unauth < 0 ? 0 : unauth) + 3);
}

/* A request through the gateway on port is answered 503 authz_unavailable
 * with X-Policy-Decision: deny, and the upstream saw nothing more. */
static void expect_unavailable(int port, long before) {
    char raw[16384], decision[32];
    int st = gw(port, "GET", "/api/items", auth, NULL, raw, sizeof raw);
    assert_int_equal(st, 503);
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "deny");
    assert_non_null(strstr(raw, "\"authz_unavailable\""));
    assert_int_equal(itest_rig_requests(&rig), before);
}

/* The check does not answer in time: 503 deny, nothing passes. */
static void test_authz_timeout_denied(void **state) {
    (void)state;
    expect_unavailable(gw_hole_port, itest_rig_requests(&rig));
}

/* The error code of a raw JSON answer into out ("" when none). */
static void error_code_of(const char *raw, char *out, size_t size) {
    const char *b = strstr(raw, "\r\n\r\n");
    json_t *j = b ? json_loads(b + 4, 0, NULL) : NULL;
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    snprintf(out, size, "%s", c ? c : "");
    json_decref(j);
}

/* Envoy's ext_authz HTTP service, as Envoy sends a check (path_prefix
 * /v1/authz, the original method and path, the body with
 * with_request_body), straight to the private edge - no Envoy here. */
static void test_envoy_check_form(void **state) {
    (void)state;
    char raw[16384], hdrs[4400], decision[32], code[64], digest[96];
    int st = gw(rig.edge.port, "POST", "/v1/authz/api/items", auth, "hello", raw, sizeof raw);
    if (st != 200)
        fail_msg("want 200, got %d: %s", st, raw);
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    itest_header_of(raw, "X-Policy-Input-Digest", digest, sizeof digest);
    assert_string_equal(decision, "allow");
    assert_int_equal(strlen(digest), 64);
    /* the body is bound: another body, another input digest */
    char other[96];
    assert_int_equal(gw(rig.edge.port, "POST", "/v1/authz/api/items", auth, "hellO", raw, sizeof raw),
                     200);
    itest_header_of(raw, "X-Policy-Input-Digest", other, sizeof other);
    assert_string_not_equal(digest, other);
    /* a Content-Digest that is not the body's */
    snprintf(hdrs, sizeof hdrs, "%sContent-Digest: " DIGEST_HELLO "\r\n", auth);
    assert_int_equal(gw(rig.edge.port, "POST", "/v1/authz/api/items", hdrs, "hellO", raw, sizeof raw),
                     403);
    error_code_of(raw, code, sizeof code);
    assert_string_equal(code, "authz_body_digest_invalid");
    /* the demo pack denies a destructive command in the path */
    assert_int_equal(gw(rig.edge.port, "GET", "/v1/authz/shell/rm%20-rf%20~", auth, NULL, raw,
                        sizeof raw), 403);
    error_code_of(raw, code, sizeof code);
    assert_string_equal(code, "authz_denied");
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "deny");
    /* the bare prefix without X-Original-URI says nothing: refused, not "/" */
    assert_int_equal(gw(rig.edge.port, "GET", "/v1/authz", auth, NULL, raw, sizeof raw), 403);
    error_code_of(raw, code, sizeof code);
    assert_string_equal(code, "authz_original_request_invalid");
    /* a decision header on the check itself */
    snprintf(hdrs, sizeof hdrs, "%sX-Policy-Decision: allow\r\n", auth);
    assert_int_equal(gw(rig.edge.port, "GET", "/v1/authz/api/items", hdrs, NULL, raw, sizeof raw),
                     403);
    error_code_of(raw, code, sizeof code);
    assert_string_equal(code, "authz_policy_header_forged");
}

/* The edge stopped: 503 deny, nothing passes. */
static void test_edge_stopped_denied(void **state) {
    (void)state;
    long before = itest_rig_requests(&rig);
    char raw[16384];
    assert_int_equal(gw(rig.gw_port, "GET", "/api/items", auth, NULL, raw, sizeof raw), 200);
    before++;
    /* SIGTERM: its exit must be clean (LeakSanitizer reports at exit in the
     * ASan run); then nothing answers on its port */
    assert_int_equal(itest_proc_stop(&rig.edge), 0);
    expect_unavailable(rig.gw_port, before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_passes_with_edge_headers),
        cmocka_unit_test(test_unknown_policy_header_refused),
        cmocka_unit_test(test_denied_never_reaches_upstream),
        cmocka_unit_test(test_identity_refused),
        cmocka_unit_test(test_authz_timeout_denied),
        cmocka_unit_test(test_envoy_check_form),
        cmocka_unit_test(test_edge_stopped_denied), /* last: it stops the edge */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
