/* test_gateway_paths.c - the request paths of the stack's nginx gateway and
 * gov-edge's /v1/authz (review 11: M1, M2, M3), against the running stack:
 * its nginx (GOV_GATEWAY_URL), its gov-edge (GOV_EDGE_URL, configured by
 * deploy/stack.sh with the gateway credential var/gateway/credential), its
 * counting upstream ("upstream-stack", 8781 + GOV_PORT_OFFSET), Kafka, Redis
 * and gov-audit's chain audit:{demo}.
 *
 * Nothing private runs here: the subject is the stack's own gateway as an
 * operator deploys it.  What is this test's own is the client it registers
 * and the session token it starts through the gateway: every decision made
 * for that token carries its jti as session_id, so the audit chain is read
 * for that jti only.
 * What an operator would check:
 *   - M1: /v1/authz/.., /v1/authz/%2e%2e and /v1/authz/../evaluate through
 *     nginx with a valid session token and a spoofed X-Original-URI answer
 *     400 (invalid_path) with no decision id; /v1/authz at the edge without
 *     the gateway credential answers 403 authz_gateway_credential_invalid
 *     with no decision; with it, it decides;
 *   - M2: /public/../admin, //admin, /%2561dmin, and (REVIEW12 M5)
 *     /public/..;/admin/delete, its %3b/%3B forms, /api/items;jsessionid=1,
 *     /admin. and /admin%20 (a path that is not its own canonical form) and
 *     /x?q=rm+-rf+/ (the demo pack's destructive command once
 *     form-decoded) through nginx: 403 and the upstream count unchanged;
 *   - M3: the Envoy form at the edge, GET /v1/authz/x?q=rm%20-rf%20/: the
 *     query is evaluated, 403 deny;
 *   - M6: a client token (scope sessions:start, not "session") through nginx
 *     is 403 insufficient_scope, nothing passes; a session started from a
 *     5 s bearer is given at most 5 s and is refused (401 token_expired)
 *     once the bearer expired (past the edge's leeway); revoking the bearer
 *     ends its session at once (401 token_parent_revoked);
 *   - nginx (two private ones from render.sh, named gwpaths-nginx-*, one
 *     request/s and a burst of one): token issuance over the rate is 429
 *     gateway_rate_limited with X-Policy-Decision: deny; with the edge
 *     unreachable a session start is 503 gateway_edge_unavailable, deny;
 *   - the audit chain holds a PolicyDecision for this token's jti exactly
 *     for the answers that carried a decision id, none for the probes.
 * Every wait is on an observable outcome, bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

#define TENANT "demo"
#define WAIT_MS 30000
#define FORM "application/x-www-form-urlencoded"
#define MAX_IDS 32

static int gw_port, edge_port, upstream_port;
static char client_id[128], client_secret[128], start_tok[4096];
static char session_tok[4096], session_jti[64], auth[4200], credential[300];
static char decision_ids[MAX_IDS][64];
static size_t n_decision_ids;

/* --- helpers ---------------------------------------------------------------------- */

/* The port of an "http://host:port" setting of var/stack.env. */
static int port_of(const char *name, const char *fallback) {
    const char *url = itest_env(name, fallback);
    const char *colon = strrchr(url, ':');
    assert_non_null(colon);
    return atoi(colon + 1);
}

static json_t *body_of(const char *raw) {
    const char *b = strstr(raw, "\r\n\r\n");
    return b ? json_loads(b + 4, 0, NULL) : NULL;
}

/* Keeps the answer's X-Policy-Decision-Id, if it has one, for the chain check. */
static void keep_decision_id(const char *raw) {
    char id[64];
    itest_header_of(raw, "X-Policy-Decision-Id", id, sizeof id);
    if (id[0] == '\0')
        return;
    assert_true(gov_uuid_v7_valid(id));
    assert_true(n_decision_ids < MAX_IDS);
    snprintf(decision_ids[n_decision_ids++], sizeof decision_ids[0], "%s", id);
}

static long upstream_requests(void) {
    json_t *j = itest_upstream_counts(upstream_port, "upstream-stack");
    long n = (long)json_integer_value(json_object_get(j, "requests"));
    json_decref(j);
    return n;
}

/* Registers a client of TENANT with the scope sessions:start (govctl, as the
 * stack's identity operator); its id and secret into id and sec (128 B). */
static void register_client(char *id, char *sec) {
    char brokers[256], out[1024], err[4096];
    snprintf(brokers, sizeof brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    int rc = itest_govctl((const char *const[]){brokers, NULL},
                          (const char *const[]){"clients", "add", "--tenants", TENANT, "--scopes",
                                                "sessions:start", NULL},
                          out, sizeof out, err, sizeof err);
    itest_expect_ok(rc, err, __LINE__);
    json_t *o = json_loads(out, 0, NULL);
    assert_non_null(o);
    snprintf(id, 128, "%s", json_string_value(json_object_get(o, "client_id")));
    snprintf(sec, 128, "%s", json_string_value(json_object_get(o, "client_secret")));
    json_decref(o);
}

typedef struct issue_wait {
    const char *id, *sec, *ttl;   /* ttl may be NULL: the edge's default */
    char *tok;
    size_t size;
} issue_wait_t;

/* 1 once the stack's edge issued w->id a token of scope sessions:start (into
 * w->tok): the stack's gov-identity materialized the client. */
static int got_token(void *opaque) {
    issue_wait_t *w = opaque;
    char basic[512], raw[16384], form[128];
    itest_basic_auth(w->id, w->sec, basic);
    snprintf(form, sizeof form, "grant_type=client_credentials&scope=sessions:start%s%s",
             w->ttl ? "&ttl=" : "", w->ttl ? w->ttl : "");
    int st = itest_raw_post(edge_port, "/v1/tokens/issue", FORM, basic, form, raw, sizeof raw);
    json_t *j = body_of(raw);
    const char *t = json_string_value(json_object_get(j, "access_token"));
    int ok = st == 200 && t;
    if (ok)
        snprintf(w->tok, w->size, "%s", t);
    json_decref(j);
    return ok;
}

/* A session started through nginx with bearer tok: its token into out, its
 * session_id into jti (64 B, may be NULL); returns its expires_in. */
static long start_session_with(const char *tok, char *out, size_t size, char *jti) {
    static char raw[32768];
    char authz[4200];
    snprintf(authz, sizeof authz, "Bearer %s", tok);
    int st = itest_raw_post(gw_port, "/v1/sessions/start", "application/json", authz,
                            "{\"tenant\":\"" TENANT "\",\"session_id\":\"gwpaths\",\"user\":"
                            "\"u-gwpaths\",\"role\":\"analyst\",\"prompt\":\"weather\"}",
                            raw, sizeof raw);
    if (st != 201)
        fail_msg("sessions/start through nginx answered %d: %s", st, raw);
    json_t *j = body_of(raw);
    snprintf(out, size, "%s", json_string_value(json_object_get(j, "token")));
    if (jti)
        snprintf(jti, 64, "%s", json_string_value(json_object_get(j, "session_id")));
    long expires_in = (long)json_integer_value(json_object_get(j, "expires_in"));
    json_decref(j);
    return expires_in;
}

/* --- set-up ----------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    gw_port = port_of("GOV_GATEWAY_URL", "http://127.0.0.1:8780");
    edge_port = port_of("GOV_EDGE_URL", "http://127.0.0.1:8700");
    upstream_port = 8781 + atoi(itest_env("GOV_PORT_OFFSET", "0"));
    size_t clen = 0;
    char *c = itest_read_file(itest_path("var/gateway/credential"), &clen);
    if (c == NULL || clen == 0 || clen >= sizeof credential) {
        fprintf(stderr, "no var/gateway/credential: the stack was not started by deploy/stack.sh\n");
        free(c);
        return -1;
    }
    snprintf(credential, sizeof credential, "%.*s", (int)strcspn(c, "\r\n"), c);
    free(c);

    register_client(client_id, client_secret);
    issue_wait_t w = {client_id, client_secret, NULL, start_tok, sizeof start_tok};
    if (itest_wait_for(got_token, &w, WAIT_MS, 100) < 0) {
        fprintf(stderr, "client %s was never accepted by the stack's edge\n", client_id);
        return -1;
    }
    /* a session started through the gateway: its token is what passes it */
    start_session_with(start_tok, session_tok, sizeof session_tok, session_jti);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", session_tok);
    return session_tok[0] && gov_uuid_v7_valid(session_jti) ? 0 : -1;
}

/* --- M1: /v1/authz is the gateway's only ------------------------------------------ */

/* Dot segments reach the edge as sent (nginx routes them to location /v1/):
 * refused before any route, no decision. */
static void test_dot_segments_refused(void **state) {
    (void)state;
    static const char *const targets[] = {"/v1/authz/..", "/v1/authz/%2e%2e",
                                          "/v1/authz/../evaluate", "/v1/authz/%2E%2e/x"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char raw[16384], hdrs[4800], id[64], code[64];
        snprintf(hdrs, sizeof hdrs, "%sX-Original-Method: DELETE\r\n"
                 "X-Original-URI: /admin/users\r\n", auth);
        int st = itest_http_request(gw_port, "GET", targets[i], hdrs, NULL, raw, sizeof raw);
        if (st != 400 && st != 404)
            fail_msg("%s through nginx: want 400/404, got %d: %s", targets[i], st, raw);
        itest_header_of(raw, "X-Policy-Decision-Id", id, sizeof id);
        if (id[0] != '\0')
            fail_msg("%s: a decision was made (%s)", targets[i], id);
        itest_error_code(raw, code, sizeof code);
        if (st == 400 && strcmp(code, "invalid_path") != 0)
            fail_msg("%s: want invalid_path, got '%s': %s", targets[i], code, raw);
    }
}

/* The edge itself: a check without the gateway credential is refused before
 * the token is looked at; with it, the same check is decided. */
static void test_credential_required(void **state) {
    (void)state;
    char raw[16384], hdrs[4800], id[64], code[64], decision[32];
    snprintf(hdrs, sizeof hdrs, "%sX-Original-Method: GET\r\nX-Original-URI: /api/items\r\n",
             auth);
    int st = itest_http_request(edge_port, "GET", "/v1/authz", hdrs, NULL, raw, sizeof raw);
    if (st != 403)
        fail_msg("/v1/authz without the credential: want 403, got %d: %s", st, raw);
    itest_error_code(raw, code, sizeof code);
    assert_string_equal(code, "authz_gateway_credential_invalid");
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "deny");
    itest_header_of(raw, "X-Policy-Decision-Id", id, sizeof id);
    assert_string_equal(id, "");
    /* a wrong one of the right length is refused the same way */
    char wrong[300];
    snprintf(wrong, sizeof wrong, "%s", credential);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    snprintf(hdrs, sizeof hdrs, "%sX-Original-Method: GET\r\nX-Original-URI: /api/items\r\n"
             "X-Gov-Gateway-Credential: %s\r\n", auth, wrong);
    st = itest_http_request(edge_port, "GET", "/v1/authz", hdrs, NULL, raw, sizeof raw);
    assert_int_equal(st, 403);
    itest_error_code(raw, code, sizeof code);
    assert_string_equal(code, "authz_gateway_credential_invalid");
    /* the gateway's credential: decided (allow) */
    snprintf(hdrs, sizeof hdrs, "%sX-Original-Method: GET\r\nX-Original-URI: /api/items\r\n"
             "X-Gov-Gateway-Credential: %s\r\n", auth, credential);
    st = itest_http_request(edge_port, "GET", "/v1/authz", hdrs, NULL, raw, sizeof raw);
    if (st != 200)
        fail_msg("/v1/authz with the credential: want 200, got %d: %s", st, raw);
    keep_decision_id(raw);
}

/* --- M2: the policy decides the path the upstream resolves ------------------------ */

static void test_non_canonical_targets_denied(void **state) {
    (void)state;
    static const struct {
        const char *target, *code;
    } cases[] = {
        {"/public/../admin", "authz_original_request_invalid"},
        {"//admin", "authz_original_request_invalid"},
        {"/%2561dmin", "authz_original_request_invalid"},
        /* REVIEW12 M5: what Java servers resolve as /admin (path parameters),
         * and IIS (trailing dots and spaces), sent as is (curl --path-as-is) */
        {"/public/..;/admin/delete", "authz_original_request_invalid"},
        {"/public/..%3b/admin/delete", "authz_original_request_invalid"},
        {"/public/..%3B/admin/delete", "authz_original_request_invalid"},
        {"/api/items;jsessionid=1", "authz_original_request_invalid"},
        {"/admin.", "authz_original_request_invalid"},
        {"/admin%20", "authz_original_request_invalid"},
        {"/x?q=rm+-rf+/", NULL},   /* a decision: the demo pack denies it */
    };
    char raw[16384];
    /* the counter counts: an allowed request reaches it */
    long before = upstream_requests();
    int st = itest_http_request(gw_port, "GET", "/api/items?q=weather", auth, NULL, raw,
                                sizeof raw);
    if (st != 200)
        fail_msg("an allowed request through nginx: want 200, got %d: %s", st, raw);
    keep_decision_id(raw);
    assert_int_equal(upstream_requests(), before + 1);
    before = upstream_requests();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char decision[32], id[64];
        st = itest_http_request(gw_port, "GET", cases[i].target, auth, NULL, raw, sizeof raw);
        if (st != 403)
            fail_msg("%s through nginx: want 403, got %d: %s", cases[i].target, st, raw);
        itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
        assert_string_equal(decision, "deny");
        itest_header_of(raw, "X-Policy-Decision-Id", id, sizeof id);
        if ((cases[i].code == NULL) != (id[0] != '\0'))
            fail_msg("%s: decision id '%s' not as expected", cases[i].target, id);
        keep_decision_id(raw);
        if (cases[i].code == NULL)
            continue;
        /* nginx answers the refusal with its own page: the reason is the
         * edge's answer to the same check as nginx asks it */
        char hdrs[4800], code[64];
        snprintf(hdrs, sizeof hdrs, "%sX-Original-Method: GET\r\nX-Original-URI: %s\r\n"
                 "X-Gov-Gateway-Credential: %s\r\n", auth, cases[i].target, credential);
        st = itest_http_request(edge_port, "GET", "/v1/authz", hdrs, NULL, raw, sizeof raw);
        itest_error_code(raw, code, sizeof code);
        if (st != 403 || strcmp(code, cases[i].code) != 0)
            fail_msg("%s at the edge: want 403 %s, got %d '%s': %s", cases[i].target,
                     cases[i].code, st, code, raw);
    }
    assert_int_equal(upstream_requests(), before);
}

/* --- M3: the Envoy form evaluates the query --------------------------------------- */

static void test_envoy_query_evaluated(void **state) {
    (void)state;
    char raw[16384], hdrs[4800], decision[32], code[64];
    snprintf(hdrs, sizeof hdrs, "%sX-Gov-Gateway-Credential: %s\r\n", auth, credential);
    int st = itest_http_request(edge_port, "GET", "/v1/authz/x?q=rm%20-rf%20/", hdrs, NULL, raw,
                                sizeof raw);
    if (st != 403)
        fail_msg("Envoy form with a denied query: want 403, got %d: %s", st, raw);
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "deny");
    itest_error_code(raw, code, sizeof code);
    assert_string_equal(code, "authz_denied");
    keep_decision_id(raw);
    /* the same path without the query passes: the query decided */
    st = itest_http_request(edge_port, "GET", "/v1/authz/x?q=weather", hdrs, NULL, raw,
                            sizeof raw);
    if (st != 200)
        fail_msg("Envoy form with a harmless query: want 200, got %d: %s", st, raw);
    keep_decision_id(raw);
}

/* --- M6: only sessions pass, and they end with their bearer ----------------------- */

/* A bearer token of scope sessions:start (the client token, not a session)
 * is refused at the gateway: 403 insufficient_scope, deny, nothing passes. */
static void test_client_token_refused(void **state) {
    (void)state;
    char raw[16384], hdrs[4800], decision[32], www[256];
    snprintf(hdrs, sizeof hdrs, "Authorization: Bearer %s\r\n", start_tok);
    long before = upstream_requests();
    int st = itest_http_request(gw_port, "GET", "/api/items", hdrs, NULL, raw, sizeof raw);
    if (st != 403)
        fail_msg("a client token through nginx: want 403, got %d: %s", st, raw);
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "deny");
    assert_int_equal(upstream_requests(), before);
    /* the edge's answer itself names the reason */
    snprintf(hdrs, sizeof hdrs, "Authorization: Bearer %s\r\nX-Gov-Gateway-Credential: %s\r\n"
             "X-Original-Method: GET\r\nX-Original-URI: /api/items\r\n", start_tok, credential);
    st = itest_http_request(edge_port, "GET", "/v1/authz", hdrs, NULL, raw, sizeof raw);
    assert_int_equal(st, 403);
    char code[64];
    itest_error_code(raw, code, sizeof code);
    assert_string_equal(code, "insufficient_scope");
    itest_header_of(raw, "WWW-Authenticate", www, sizeof www);
    assert_non_null(strstr(www, "error=\"insufficient_scope\""));
}

/* A client token of ttl seconds (a fresh client of its own) into tok, and
 * its client's credentials into id/secret (128 B). */
static void start_token_with_ttl(const char *ttl, char *tok, size_t size, char *id,
                                 char *sec) {
    register_client(id, sec);
    issue_wait_t w = {id, sec, ttl, tok, size};
    if (itest_wait_for(got_token, &w, WAIT_MS, 100) < 0)
        fail_msg("client %s got no token of ttl %s", id, ttl);
}

typedef struct refused_wait {
    const char *tok;
    int status;
    char code[64];
} refused_wait_t;

/* 1 once the session token w->tok no longer passes the gateway (its status
 * kept in w->status), with its reason as the edge gives it in w->code. */
static int session_refused(void *opaque) {
    refused_wait_t *w = opaque;
    char raw[16384], hdrs[4800];
    snprintf(hdrs, sizeof hdrs, "Authorization: Bearer %s\r\n", w->tok);
    w->status = itest_http_request(gw_port, "GET", "/api/items", hdrs, NULL, raw, sizeof raw);
    if (w->status == 200)
        return 0;
    snprintf(hdrs, sizeof hdrs, "Authorization: Bearer %s\r\nX-Gov-Gateway-Credential: %s\r\n"
             "X-Original-Method: GET\r\nX-Original-URI: /api/items\r\n", w->tok, credential);
    itest_http_request(edge_port, "GET", "/v1/authz", hdrs, NULL, raw, sizeof raw);
    itest_error_code(raw, w->code, sizeof w->code);
    return 1;
}

/* A session never outlives its bearer: started from a 5 s bearer, it is
 * given at most 5 s and is refused once the bearer expired (plus the
 * edge's leeway). */
static void test_session_ends_with_bearer_expiry(void **state) {
    (void)state;
    char tok[4096], id[128], sec[128], session[4096];
    start_token_with_ttl("5", tok, sizeof tok, id, sec);
    long expires_in = start_session_with(tok, session, sizeof session, NULL);
    if (expires_in < 1 || expires_in > 5)
        fail_msg("a session of a 5 s bearer is given %ld s", expires_in);
    refused_wait_t w = {.tok = session};
    assert_false(session_refused(&w));   /* it passes while the bearer lives */
    long waited = itest_wait_for(session_refused, &w, 90000, 500);
    if (waited < 0)
        fail_msg("the session of an expired bearer still passes the gateway");
    assert_int_equal(w.status, 401);
    assert_string_equal(w.code, "token_expired");
}

/* Revoking the bearer ends its sessions: 401 token_parent_revoked. */
static void test_session_ends_with_bearer_revocation(void **state) {
    (void)state;
    char tok[4096], id[128], sec[128], session[4096], basic[512], raw[16384], form[4200];
    start_token_with_ttl("600", tok, sizeof tok, id, sec);
    start_session_with(tok, session, sizeof session, NULL);
    refused_wait_t w = {.tok = session};
    assert_false(session_refused(&w));
    itest_basic_auth(id, sec, basic);
    snprintf(form, sizeof form, "token=%s", tok);
    int st = itest_raw_post(edge_port, "/v1/tokens/revoke", FORM, basic, form, raw, sizeof raw);
    if (st != 200)
        fail_msg("revoke answered %d: %s", st, raw);
    /* revoke answers once every replica refuses the token: at once */
    assert_true(session_refused(&w));
    assert_int_equal(w.status, 401);
    assert_string_equal(w.code, "token_parent_revoked");
}

/* --- nginx: issuance limited per address, the edge's absence a JSON deny ---------- */

/* A private nginx from render.sh (prefix into dir) over edge_at_port with
 * one request per second and a burst of one on /v1/tokens/ and
 * /v1/sessions/; its port. */
static int private_gateway(const char *what, int edge_at_port, pid_t *pid, char *dir,
                           size_t dir_size) {
    setenv("GOV_GATEWAY_ISSUE_RATE", "1r/s", 1);
    setenv("GOV_GATEWAY_ISSUE_BURST", "1", 1);
    setenv("GOV_GATEWAY_ISSUE_CONN", "4", 1);
    int port = itest_free_port();
    *pid = itest_gateway_start(what, edge_at_port, upstream_port, port, "2s", dir, dir_size);
    unsetenv("GOV_GATEWAY_ISSUE_RATE");
    unsetenv("GOV_GATEWAY_ISSUE_BURST");
    unsetenv("GOV_GATEWAY_ISSUE_CONN");
    return port;
}

/* Over its rate, token issuance through the gateway is refused by nginx
 * itself: 429 gateway_rate_limited with X-Policy-Decision: deny. */
static void test_issuance_rate_limited(void **state) {
    (void)state;
    char dir[256], raw[16384], basic[512], code[64], decision[32];
    pid_t pid;
    int port = private_gateway("gwpaths-nginx-limited", edge_port, &pid, dir, sizeof dir);
    itest_basic_auth(client_id, client_secret, basic);
    int limited = 0, passed = 0;
    for (int i = 0; i < 6 && !limited; i++) {
        int st = itest_raw_post(port, "/v1/tokens/issue", FORM, basic,
                                "grant_type=client_credentials&scope=sessions:start", raw,
                                sizeof raw);
        if (st == 200) {
            passed++;
            continue;
        }
        if (st != 429)
            fail_msg("issue through the limited gateway: want 200 or 429, got %d: %s", st, raw);
        limited = 1;
        itest_error_code(raw, code, sizeof code);
        assert_string_equal(code, "gateway_rate_limited");
        itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
        assert_string_equal(decision, "deny");
    }
    assert_int_equal(itest_stop(pid, SIGTERM, 10000), 0);
    itest_workdir_remove(dir);
    assert_true(passed >= 1);   /* the limit is a rate, not a wall */
    assert_true(limited);
}

/* The edge unreachable: a session start through the gateway is a JSON
 * deny from nginx (503 gateway_edge_unavailable), not nginx's HTML 502. */
static void test_edge_unreachable_json_deny(void **state) {
    (void)state;
    char dir[256], raw[16384], code[64], decision[32], authz[4200];
    pid_t pid;
    int port = private_gateway("gwpaths-nginx-noedge", itest_free_port(), &pid, dir, sizeof dir);
    snprintf(authz, sizeof authz, "Bearer %s", start_tok);
    int st = itest_raw_post(port, "/v1/sessions/start", "application/json", authz,
                            "{\"tenant\":\"" TENANT "\"}", raw, sizeof raw);
    assert_int_equal(itest_stop(pid, SIGTERM, 10000), 0);
    itest_workdir_remove(dir);
    if (st != 503)
        fail_msg("sessions/start with the edge unreachable: want 503, got %d: %s", st, raw);
    itest_error_code(raw, code, sizeof code);
    assert_string_equal(code, "gateway_edge_unavailable");
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "deny");
}

/* --- the audit chain ------------------------------------------------------------- */

/* How many entries of audit:{TENANT} have a payload holding needle (and
 * also, when not NULL); -1 when Redis did not answer. */
static long chain_count(const char *needle, const char *also) {
    char eb[256];
    redisReply *r = NULL;
    if (gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XRANGE audit:{" TENANT "} - +") !=
        GOV_OK)
        return -1;
    long n = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *fields = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            const char *val = fields->element[k + 1]->str;
            if (strcmp(fields->element[k]->str, "payload") == 0 && strstr(val, needle) &&
                (!also || strstr(val, also)))
                n++;
        }
    }
    freeReplyObject(r);
    return n;
}

static int last_chained(void *opaque) {
    (void)opaque;
    char field[96];
    snprintf(field, sizeof field, "\"decision_id\":\"%.63s\"", decision_ids[n_decision_ids - 1]);
    return chain_count(field, NULL) > 0;
}

/* Runs last: every decision this token got is chained, and nothing else for
 * its jti - the refused probes left no PolicyDecision behind. */
static void test_chain_has_decided_only(void **state) {
    (void)state;
    /* a last allowed request through nginx: its decision is the barrier */
    char raw[16384];
    int st = itest_http_request(gw_port, "GET", "/api/items?q=last", auth, NULL, raw, sizeof raw);
    assert_int_equal(st, 200);
    keep_decision_id(raw);
    long waited = itest_wait_for(last_chained, NULL, 60000, 100);
    if (waited < 0)
        fail_msg("decision %s is not in audit:{" TENANT "}", decision_ids[n_decision_ids - 1]);
    char jti[96];
    snprintf(jti, sizeof jti, "\"session_id\":\"%s\"", session_jti);
    long n = chain_count(jti, "\"decision_id\"");
    for (size_t i = 0; i < n_decision_ids; i++) {
        char field[96];
        snprintf(field, sizeof field, "\"decision_id\":\"%.63s\"", decision_ids[i]);
        if (chain_count(field, jti) != 1)
            fail_msg("decision %s is not chained once under jti %s", decision_ids[i],
                     session_jti);
    }
    if (n != (long)n_decision_ids)
        fail_msg("audit:{" TENANT "} holds %ld decisions for jti %s, want %zu (the probes "
                 "left decisions)", n, session_jti, n_decision_ids);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dot_segments_refused),
        cmocka_unit_test(test_credential_required),
        cmocka_unit_test(test_non_canonical_targets_denied),
        cmocka_unit_test(test_envoy_query_evaluated),
        cmocka_unit_test(test_client_token_refused),
        cmocka_unit_test(test_session_ends_with_bearer_revocation),
        cmocka_unit_test(test_session_ends_with_bearer_expiry),
        cmocka_unit_test(test_issuance_rate_limited),
        cmocka_unit_test(test_edge_unreachable_json_deny),
        cmocka_unit_test(test_chain_has_decided_only),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
