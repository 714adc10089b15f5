/* test_chain.c - the user's acceptance test (issue 11, point 4): the whole
 * governance chain, end to end, through a real nginx gateway.
 *
 * Real processes only, each private one filtered by its own name or port so
 * the stack's own cannot pass it in its place:
 *   - a private gov-edge ("edge-itest-chain-<unique>") over the stack's
 *     Redis, keys and trust files, producing to the stack's Kafka;
 *   - a private counting upstream (tests/integration/upstream_counter.c,
 *     "upstream-itest-chain-<unique>", read on its own port);
 *   - a private nginx rendered from deploy/nginx/gateway.conf.in over that
 *     edge and upstream (/v1/ is forwarded to the edge, everything else is
 *     guarded by auth_request /v1/authz);
 *   - the stack's processors (gov-identity materializes the client, gov-audit
 *     chains the decisions), Redis and Kafka.
 * The steps, in order (one cmocka test each; they share state):
 *   1. POST /v1/sessions/start sent to nginx -> evaluated -> 201 with the
 *      decision headers and a session token;
 *   2. an upstream call through nginx with that token passes: the upstream
 *      counts +1 and saw X-Policy-Decision: allow and the session's
 *      X-Constitution-Hash;
 *   3. a denied prompt mints nothing (403, no token) and a denied upstream
 *      call never reaches the upstream;
 *   4. a client's own X-Policy-* / X-Constitution-Hash values are replaced:
 *      the upstream sees the edge's values only;
 *   5. once the decisions of steps 1-4 are in the audit chain (the edge
 *      queues its decision log without waiting, so a kill before delivery
 *      would lose them), the edge killed -> nginx answers 503
 *      X-Policy-Decision: deny, the upstream count unchanged;
 *   6. the edge restarted with its producer on a dead broker port, behind a
 *      second private nginx: sessions/start through nginx answers 503 deny
 *      and no token appears in the body;
 *   7. every decision id of steps 1-4 (X-Policy-Decision-Id) is an entry of
 *      the demo tenant's audit chain audit:{demo}, the session.started event
 *      of step 1 too, and `govctl audit verify --tenant demo` exits 0.
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

#include "gov_util.h"
#include "itest_util.h"

#define TENANT "demo"
#define WAIT_MS 60000
#define FORM "application/x-www-form-urlencoded"
#define ALLOW_PROMPT "summarize the quarterly report"
#define DENY_PROMPT "please rm -rf / now"
#define TOKEN_PREFIX "eyJhbGciOiJFZERTQSI"   /* every token this edge signs starts so */
#define MAX_IDS 8

static char env_brokers[200];
static itest_rig_t rig;   /* client, private edge, upstream and nginx */
static itest_proc_t dead_edge;
static pid_t nginx_dead_pid = -1;
static int gw_dead_port;
static char prefix_dead[256];
static char start_tok[4096];
static char session_tok[4096], session_hash[160];
static char decision_ids[MAX_IDS][64];
static size_t n_decision_ids;

/* --- HTTP ------------------------------------------------------------------------- */

/* The body of a raw answer parsed as JSON (a new reference; NULL if not JSON). */
static json_t *body_of(const char *raw) {
    const char *b = strstr(raw, "\r\n\r\n");
    return b ? json_loads(b + 4, 0, NULL) : NULL;
}

/* Keeps the X-Policy-Decision-Id of an answer for step 7; fails when absent. */
static void keep_decision_id(const char *raw, int line) {
    char id[64];
    itest_header_of(raw, "X-Policy-Decision-Id", id, sizeof id);
    if (!gov_uuid_v7_valid(id))
        fail_msg("line %d: no valid X-Policy-Decision-Id ('%s')", line, id);
    assert_true(n_decision_ids < MAX_IDS);
    snprintf(decision_ids[n_decision_ids++], sizeof decision_ids[0], "%s", id);
}

/* The four decision headers are present and X-Policy-Decision is want. */
static void expect_decision_headers(const char *raw, const char *want, int line) {
    char v[256];
    itest_header_of(raw, "X-Policy-Decision", v, sizeof v);
    if (strcmp(v, want) != 0)
        fail_msg("line %d: X-Policy-Decision '%s', want %s: %s", line, v, want, raw);
    static const char *const names[] = {"X-Policy-Score", "X-Constitution-Hash",
                                        "X-Policy-Decision-Id"};
    for (size_t i = 0; i < 3; i++) {
        itest_header_of(raw, names[i], v, sizeof v);
        if (v[0] == '\0')
            fail_msg("line %d: no %s header: %s", line, names[i], raw);
    }
}

/* POST /v1/sessions/start with prompt, bearer start_tok, to port (a gateway). */
static int start_session(int port, const char *session, const char *prompt, char *raw,
                         size_t size) {
    char body[1024], authz[4200];
    snprintf(body, sizeof body,
             "{\"tenant\":\"" TENANT "\",\"session_id\":\"%s\",\"user\":\"u-chain\","
             "\"role\":\"analyst\",\"prompt\":\"%s\"}", session, prompt);
    snprintf(authz, sizeof authz, "Bearer %s", start_tok);
    return itest_raw_post(port, "/v1/sessions/start", "application/json", authz, body, raw, size);
}

/* --- set-up ------------------------------------------------------------------------ */

static int got_start_token(void *opaque) {
    (void)opaque;
    char basic[512], raw[16384];
    itest_basic_auth(rig.client_id, rig.client_secret, basic);
    int st = itest_raw_post(rig.edge.port, "/v1/tokens/issue", FORM, basic,
                            "grant_type=client_credentials&scope=sessions:start", raw, sizeof raw);
    json_t *j = body_of(raw);
    const char *t = json_string_value(json_object_get(j, "access_token"));
    int ok = st == 200 && t;
    if (ok)
        snprintf(start_tok, sizeof start_tok, "%s", t);
    json_decref(j);
    return ok;
}

static int setup(void **state) {
    (void)state;
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    itest_rig_start(&rig, "chain", TENANT, "sessions:start",
                    (const char *const[]){env_brokers, NULL});
    /* the stack's gov-identity materialized the client; the edge reads it */
    if (itest_wait_for(got_start_token, NULL, WAIT_MS, 100) < 0) {
        fprintf(stderr, "client %s was never accepted (log var/test-logs/%s)\n", rig.client_id,
                rig.edge.log);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_rig_stop(&rig) != 0;
    if (nginx_dead_pid > 0)
        rc |= itest_stop(nginx_dead_pid, SIGTERM, 10000) != 0;
    rc |= itest_proc_stop(&dead_edge) != 0;
    itest_workdir_remove(prefix_dead);
    return rc;
}

/* --- the steps --------------------------------------------------------------------- */

/* 1. A session started through the gateway: evaluated, allowed, a token minted. */
static void test_1_session_started_through_gateway(void **state) {
    (void)state;
    static char raw[32768];
    int st = start_session(rig.gw_port, "chain-1", ALLOW_PROMPT, raw, sizeof raw);
    if (st != 201)
        fail_msg("sessions/start through nginx: want 201, got %d: %s", st, raw);
    expect_decision_headers(raw, "allow", __LINE__);
    keep_decision_id(raw, __LINE__);
    itest_header_of(raw, "X-Constitution-Hash", session_hash, sizeof session_hash);
    assert_int_equal(strlen(session_hash), 128);
    json_t *j = body_of(raw);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "allow");
    assert_non_null(json_string_value(json_object_get(j, "session_id")));
    const char *tok = json_string_value(json_object_get(j, "token"));
    assert_non_null(tok);
    snprintf(session_tok, sizeof session_tok, "%s", tok);
    json_decref(j);
}

/* 2. An upstream call with the session token passes with the edge's headers. */
static void test_2_upstream_call_passes_with_headers(void **state) {
    (void)state;
    assert_true(session_tok[0] != '\0');
    long before = itest_rig_requests(&rig);
    static char raw[32768];
    char hdrs[4400];
    snprintf(hdrs, sizeof hdrs, "Authorization: Bearer %s\r\n", session_tok);
    int st = itest_http_request(rig.gw_port, "GET", "/api/reports/q3", hdrs, NULL, raw, sizeof raw);
    if (st != 200)
        fail_msg("upstream call with the session token: want 200, got %d: %s", st, raw);
    expect_decision_headers(raw, "allow", __LINE__);
    keep_decision_id(raw, __LINE__);
    char id[64];
    itest_header_of(raw, "X-Policy-Decision-Id", id, sizeof id);

    json_t *c = itest_rig_counts(&rig);
    assert_int_equal(json_integer_value(json_object_get(c, "requests")), before + 1);
    json_t *policy = json_object_get(json_object_get(c, "last"), "policy");
    assert_string_equal(json_string_value(json_object_get(policy, "x-policy-decision")), "allow");
    assert_string_equal(json_string_value(json_object_get(policy, "x-constitution-hash")),
                        session_hash);
    assert_string_equal(json_string_value(json_object_get(policy, "x-policy-decision-id")), id);
    json_decref(c);
}

/* 3. A denied prompt mints nothing; a denied request never reaches the upstream. */
static void test_3_denied_never_reaches_upstream(void **state) {
    (void)state;
    long before = itest_rig_requests(&rig);
    static char raw[32768];
    int st = start_session(rig.gw_port, "chain-3", DENY_PROMPT, raw, sizeof raw);
    if (st != 403)
        fail_msg("denied prompt through nginx: want 403, got %d: %s", st, raw);
    expect_decision_headers(raw, "deny", __LINE__);
    keep_decision_id(raw, __LINE__);
    json_t *j = body_of(raw);
    assert_null(json_object_get(j, "token"));
    assert_null(strstr(raw, TOKEN_PREFIX));
    json_decref(j);

    char hdrs[4400];
    snprintf(hdrs, sizeof hdrs, "Authorization: Bearer %s\r\n", session_tok);
    st = itest_http_request(rig.gw_port, "GET", "/api/run?cmd=rm%20-rf%20%2F", hdrs, NULL, raw, sizeof raw);
    if (st != 403)
        fail_msg("denied upstream call: want 403, got %d: %s", st, raw);
    char decision[32];
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "deny");
    keep_decision_id(raw, __LINE__);
    assert_int_equal(itest_rig_requests(&rig), before);
}

/* 4. A client's X-Policy-* / X-Constitution-Hash values never reach the upstream. */
static void test_4_spoofed_headers_stripped(void **state) {
    (void)state;
    long before = itest_rig_requests(&rig);
    static char raw[32768];
    char hdrs[4800];
    snprintf(hdrs, sizeof hdrs,
             "Authorization: Bearer %s\r\nX-Policy-Decision: spoofed\r\n"
             "X-Policy-Score: 0.000001\r\nX-Policy-Decision-Id: spoofed\r\n"
             "X-Policy-Input-Digest: spoofed\r\nX-Constitution-Hash: spoofed\r\n", session_tok);
    int st = itest_http_request(rig.gw_port, "GET", "/api/reports/q4", hdrs, NULL, raw, sizeof raw);
    if (st != 200)
        fail_msg("call with spoofed headers: want 200, got %d: %s", st, raw);
    keep_decision_id(raw, __LINE__);
    char id[64], score[32];
    itest_header_of(raw, "X-Policy-Decision-Id", id, sizeof id);
    itest_header_of(raw, "X-Policy-Score", score, sizeof score);

    json_t *c = itest_rig_counts(&rig);
    assert_int_equal(json_integer_value(json_object_get(c, "requests")), before + 1);
    json_t *policy = json_object_get(json_object_get(c, "last"), "policy");
    assert_int_equal(json_object_size(policy), 5);
    const char *k;
    json_t *v;
    json_object_foreach(policy, k, v) {
        if (strstr(json_string_value(v), "spoofed"))
            fail_msg("the upstream saw the client's %s: %s", k, json_string_value(v));
    }
    assert_string_equal(json_string_value(json_object_get(policy, "x-policy-decision")), "allow");
    assert_string_equal(json_string_value(json_object_get(policy, "x-policy-decision-id")), id);
    assert_string_equal(json_string_value(json_object_get(policy, "x-policy-score")), score);
    assert_string_equal(json_string_value(json_object_get(policy, "x-constitution-hash")),
                        session_hash);
    assert_int_equal(strlen(json_string_value(json_object_get(policy, "x-policy-input-digest"))),
                     64);
    json_decref(c);
}

/* --- the audit chain ---------------------------------------------------------------- */

typedef struct chain_find {
    const char *needle, *also;   /* both in one entry's payload (also may be NULL) */
} chain_find_t;

/* 1 when an entry of audit:{TENANT} has a payload holding f->needle and f->also. */
static int chain_has(void *opaque) {
    const chain_find_t *f = opaque;
    char eb[256];
    redisReply *r = NULL;
    if (gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XRANGE audit:{" TENANT "} - +") !=
        GOV_OK)
        return 0;
    int found = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && !found; i++) {
        redisReply *fields = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            const char *val = fields->element[k + 1]->str;
            if (strcmp(fields->element[k]->str, "payload") == 0 && strstr(val, f->needle) &&
                (!f->also || strstr(val, f->also)))
                found = 1;
        }
    }
    freeReplyObject(r);
    return found;
}

/* Waits until every decision id kept so far is an entry of audit:{TENANT};
 * fails naming the first that is not.  The ms waited. */
static long wait_decisions_chained(void) {
    long waited = 0;
    for (size_t i = 0; i < n_decision_ids; i++) {
        char field[96];   /* the PolicyDecision itself, not an event naming it */
        snprintf(field, sizeof field, "\"decision_id\":\"%s\"", decision_ids[i]);
        chain_find_t f = {field, NULL};
        long w = itest_wait_for(chain_has, &f, WAIT_MS, 100);
        if (w < 0)
            fail_msg("decision %s (the %zu. kept) is not in audit:{" TENANT "}", decision_ids[i],
                     i + 1);
        waited += w;
    }
    return waited;
}

/* 5. The edge killed: nginx denies, nothing reaches the upstream. */
static void test_5_edge_stopped_nginx_denies(void **state) {
    (void)state;
    /* gov-edge queues its decision log without waiting for Kafka
     * (docs/contracts.md, "Producers"): a kill inside that window loses
     * decisions already answered.  The decisions of steps 1-4 are waited
     * for in the chain first, so step 7 checks what the kill cannot take. */
    fprintf(stderr, "decisions of steps 1-4 chained after %ld ms\n", wait_decisions_chained());
    long before = itest_rig_requests(&rig);
    /* killed, not stopped: no clean shutdown, nothing said to nginx; reaped */
    assert_true(itest_stop(rig.edge.pid, SIGKILL, 15000) != -1);
    rig.edge.pid = -1;
    static char raw[32768];
    char hdrs[4400], decision[32];
    snprintf(hdrs, sizeof hdrs, "Authorization: Bearer %s\r\n", session_tok);
    int st = itest_http_request(rig.gw_port, "GET", "/api/reports/q3", hdrs, NULL, raw, sizeof raw);
    if (st != 503)
        fail_msg("edge down: want 503, got %d: %s", st, raw);
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "deny");
    assert_non_null(strstr(raw, "\"authz_unavailable\""));
    /* a session cannot be started either: nginx has no edge to ask */
    st = start_session(rig.gw_port, "chain-5", ALLOW_PROMPT, raw, sizeof raw);
    assert_true(st >= 500);
    assert_null(strstr(raw, TOKEN_PREFIX));
    assert_int_equal(itest_rig_requests(&rig), before);
}

/* 6. The edge restarted with Kafka out of reach: no token is minted. */
static void test_6_kafka_stopped_no_token(void **state) {
    (void)state;
    char bad[64];
    snprintf(bad, sizeof bad, "GOV_KAFKA_BROKERS=127.0.0.1:%d", itest_free_port());
    itest_edge_start_on_stack(&dead_edge, "edge-itest-chain-nokafka",
                              (const char *const[]){bad, "GOV_KAFKA_ACK_TIMEOUT=2s", NULL},
                              "itest-chain-edge-nokafka.log");
    gw_dead_port = itest_free_port();
    nginx_dead_pid = itest_gateway_start("chain-nginx-nokafka", dead_edge.port, rig.upstream_port,
                                         gw_dead_port, "2s", prefix_dead, sizeof prefix_dead);
    long before = itest_rig_requests(&rig);
    static char raw[32768];
    int st = start_session(gw_dead_port, "chain-6", ALLOW_PROMPT, raw, sizeof raw);
    if (st != 503)
        fail_msg("Kafka down: want 503, got %d: %s", st, raw);
    char decision[32];
    itest_header_of(raw, "X-Policy-Decision", decision, sizeof decision);
    assert_string_equal(decision, "deny");
    json_t *j = body_of(raw);
    assert_null(json_object_get(j, "token"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "kafka_unavailable");
    json_decref(j);
    assert_null(strstr(raw, TOKEN_PREFIX));
    assert_int_equal(itest_rig_requests(&rig), before);
}

static void test_7_audit_chain_holds_every_step(void **state) {
    (void)state;
    assert_int_equal(n_decision_ids, 5);
    wait_decisions_chained();
    /* the minted session of step 1 is audited, correlated with its decision */
    chain_find_t s = {decision_ids[0], "session.started"};
    if (itest_wait_for(chain_has, &s, WAIT_MS, 200) < 0)
        fail_msg("no session.started entry for decision %s in the chain", decision_ids[0]);

    char out[1024];
    int rc = itest_run((const char *const[]){itest_bin("govctl"), "audit", "verify", "--tenant",
                                             TENANT, NULL},
                       NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("govctl audit verify --tenant " TENANT " exited %d: %s", rc, out);
    assert_non_null(strstr(out, "entries="));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_1_session_started_through_gateway),
        cmocka_unit_test(test_2_upstream_call_passes_with_headers),
        cmocka_unit_test(test_3_denied_never_reaches_upstream),
        cmocka_unit_test(test_4_spoofed_headers_stripped),
        cmocka_unit_test(test_5_edge_stopped_nginx_denies),
        cmocka_unit_test(test_6_kafka_stopped_no_token),
        cmocka_unit_test(test_7_audit_chain_holds_every_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
