/* test_edge_redis.c - gov-edge against a Redis that misbehaves.
 *
 * A private redis-server holds a copy of the stack's demo tenant (its keys
 * DUMPed from the stack's Redis and RESTOREd, so the stack's trust file
 * verifies them); a private gov-edge ("edge-itest-redis", its own port)
 * serves it.  Then Redis is paused (SIGSTOP), handed keys of the wrong type,
 * stopped and restarted from its RDB file while it loads slowly (LOADING
 * replies), and the edge is checked as a client and an operator would:
 *   - lookups (GET /v1/decisions) answer 503 promptly while /v1/evaluate
 *     keeps answering 200 (point 6: lookups have threads of their own);
 *   - a tenant whose keys have the wrong type is degraded, the others are
 *     served, and a start-up with such a key becomes ready;
 *   - a pipeline abandoned on an error reply never pairs a later command
 *     with an earlier reply; the edge recovers by itself after LOADING.
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
#include <unistd.h>

#include "gov_redis.h"
#include "gov_state.h"
#include "gov_time.h"
#include "itest_util.h"

#define EDGE_ID "edge-itest-redis"
/* Bounded waits: far above a prompt answer, far below a stuck one. */
#define PROMPT_MS 2000
#define LOOKUP_ANSWER_MS 5000

static pid_t redis_pid = -1;
static int redis_port;
static gov_redis_t *priv;   /* the test's own connection to the private Redis */
static itest_proc_t edge;
static char env_redis[48], env_trust[600], env_pack_trust[600];

static const char *const eval_body =
    "{\"tenant\":\"demo\",\"session_id\":\"s-itest-redis\",\"user\":\"u\",\"role\":\"analyst\","
    "\"prompt\":\"hello\"}";
/* A well-formed decision id no one logged: 404 when Redis answers. */
static const char *const lookup_path = "/v1/decisions/demo/0190b3f0-0000-7000-8000-000000000000";

/* --- helpers ------------------------------------------------------------------------ */

static void state_key(gov_state_key_t kind, const char *tenant, char out[GOV_STATE_KEY_MAX]) {
    if (gov_state_key(kind, tenant, out) != GOV_OK)
        fail_msg("no state key for %s", tenant);
}

/* One raw request to a gov-edge port; the status within wait_ms, 0 if none. */
static int raw_status(int port, const char *method, const char *path, const char *body,
                      int wait_ms, char *buf, size_t size) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, body ? strlen(body) : 0, body ? body : "");
    int fd = itest_raw_send(port, req, (size_t)n);
    return itest_raw_answer(fd, buf, size, wait_ms, NULL);
}

static int evaluate_status(const itest_proc_t *p) {
    char buf[8192];
    return raw_status(p->port, "POST", "/v1/evaluate", eval_body, PROMPT_MS, buf, sizeof buf);
}

static int lookup_status(const itest_proc_t *p) {
    char buf[4096];
    return raw_status(p->port, "GET", lookup_path, NULL, LOOKUP_ANSWER_MS, buf, sizeof buf);
}

static int lookup_is_404(void *opaque) { return lookup_status(opaque) == 404; }

static void start_edge(itest_proc_t *p, const char *id, const char *log) {
    static char env_id[2][64];
    int slot = p == &edge ? 0 : 1;
    snprintf(env_id[slot], sizeof env_id[slot], "GOV_EDGE_ID=%s", id);
    const char *env[] = {env_redis, env_trust, env_pack_trust, env_id[slot], "GOV_RECONCILE=300ms",
                         "GOV_LOOKUP_TIMEOUT=250ms", NULL};
    itest_proc_start(p, "gov-edge", NULL, env, log);
}

/* --- setup ---------------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    char eb[256];
    redis_pid = itest_private_redis("edge-redis", &redis_port);
    if (gov_redis_new("127.0.0.1", redis_port, 5000, &priv, eb, sizeof eb) != GOV_OK)
        fail_msg("private redis: %s", eb);
    const char *flush[] = {"FLUSHALL"};
    freeReplyObject(itest_redis_cmd(priv, 1, flush, NULL));
    itest_copy_tenant(priv, "demo");
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    snprintf(env_trust, sizeof env_trust, "GOV_TRUST_FILE=%s", itest_path("var/demo/trust.json"));
    snprintf(env_pack_trust, sizeof env_pack_trust, "GOV_RULEPACK_TRUST_FILE=%s",
             itest_path("var/demo/rulepack-trust.json"));
    start_edge(&edge, EDGE_ID, "itest-edge-redis-gov-edge.log");
    if (evaluate_status(&edge) != 200)
        fail_msg("the private edge does not serve the copied demo tenant");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_proc_stop(&edge);
    gov_redis_free(priv);
    if (redis_pid > 0) {
        kill(redis_pid, SIGCONT);
        itest_stop(redis_pid, SIGTERM, 5000);
    }
    return rc;
}

/* --- gov_redis: an abandoned pipeline ------------------------------------------------- */

static void test_abandoned_pipeline_never_desynchronizes(void **state) {
    (void)state;
    char eb[256];
    gov_redis_t *r = NULL;
    assert_int_equal(gov_redis_new("127.0.0.1", redis_port, 2000, &r, eb, sizeof eb), GOV_OK);
    const char *set[] = {"SET", "itest:pipe", "a-string"};
    freeReplyObject(itest_redis_cmd(r, 3, set, NULL));
    const char *get[] = {"GET", "itest:pipe"}, *hgetall[] = {"HGETALL", "itest:pipe"},
               *echo[] = {"ECHO", "third-reply"};
    assert_int_equal(gov_redis_append(r, 2, get, NULL), GOV_OK);
    assert_int_equal(gov_redis_append(r, 2, hgetall, NULL), GOV_OK);
    assert_int_equal(gov_redis_append(r, 2, echo, NULL), GOV_OK);
    redisReply *rep = NULL;
    assert_int_equal(gov_redis_read(r, &rep, eb, sizeof eb), GOV_OK);
    assert_string_equal(rep->str, "a-string");
    freeReplyObject(rep);
    /* WRONGTYPE: a caller stops here, the third reply unread. */
    assert_int_equal(gov_redis_read(r, &rep, eb, sizeof eb), GOV_ERR_REDIS);
    assert_non_null(strstr(eb, "WRONGTYPE"));
    /* The next command gets its own reply, not "third-reply". */
    rep = NULL;
    assert_int_equal(gov_redis_commandf(r, &rep, eb, sizeof eb, "ECHO %s", "fresh"), GOV_OK);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "fresh");
    freeReplyObject(rep);
    /* And a new pipeline read to its end stays on the same footing. */
    assert_int_equal(gov_redis_append(r, 2, echo, NULL), GOV_OK);
    assert_int_equal(gov_redis_append(r, 2, get, NULL), GOV_OK);
    assert_int_equal(gov_redis_read(r, &rep, eb, sizeof eb), GOV_OK);
    assert_string_equal(rep->str, "third-reply");
    freeReplyObject(rep);
    assert_int_equal(gov_redis_read(r, &rep, eb, sizeof eb), GOV_OK);
    assert_string_equal(rep->str, "a-string");
    freeReplyObject(rep);
    const char *del[] = {"DEL", "itest:pipe"};
    freeReplyObject(itest_redis_cmd(r, 2, del, NULL));
    gov_redis_free(r);
}

/* --- point 6: lookups never slow evaluation ------------------------------------------- */

static void test_lookups_never_block_evaluate(void **state) {
    (void)state;
    assert_int_equal(lookup_status(&edge), 404);
    assert_int_equal(kill(redis_pid, SIGSTOP), 0);
    /* More lookups than the HTTP threads could absorb if they waited on
     * Redis (2 threads x 2 s redis_timeout each). */
    enum { NLOOKUPS = 24 };
    int fds[NLOOKUPS];
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n",
                     lookup_path);
    for (int i = 0; i < NLOOKUPS; i++)
        fds[i] = itest_raw_send(edge.port, req, (size_t)n);
    for (int i = 0; i < 5; i++) {
        int st = evaluate_status(&edge);
        if (st != 200) {
            kill(redis_pid, SIGCONT);
            fail_msg("evaluate #%d answered %d (0: nothing within %d ms) while Redis was paused",
                     i, st, PROMPT_MS);
        }
    }
    int unavailable = 0;
    for (int i = 0; i < NLOOKUPS; i++) {
        char buf[4096];
        int st = itest_raw_answer(fds[i], buf, sizeof buf, LOOKUP_ANSWER_MS, NULL);
        unavailable += st == 503 && strstr(buf, "\"decision_store_unavailable\"") != NULL;
    }
    assert_int_equal(kill(redis_pid, SIGCONT), 0);
    assert_int_equal(unavailable, NLOOKUPS);
    /* Redis is back: lookups recover by themselves. */
    assert_true(itest_wait_for(lookup_is_404, &edge, 15000, 100) >= 0);
    assert_int_equal(evaluate_status(&edge), 200);
}

/* --- point 2: a key of the wrong type ------------------------------------------------- */

typedef struct degraded_wait {
    const itest_proc_t *p;
    const char *tenant;
} degraded_wait_t;

static int tenant_degraded(void *opaque) {
    degraded_wait_t *w = opaque;
    char *body = NULL, want[160];
    snprintf(want, sizeof want, "\"name\":\"tenant:%s\",\"state\":\"degraded\"", w->tenant);
    long st = itest_proc_get(w->p, "/readyz", &body);
    int yes = st == 200 && body && strstr(body, want) != NULL;
    free(body);
    return yes;
}

static double rejected(const itest_proc_t *p, const char *tenant) {
    char f[128];
    snprintf(f, sizeof f, "tenant=\"%s\"", tenant);
    return itest_proc_metric(p, "edge_state_rejected_total",
                             (const char *[]){f, "kind=\"state\"", "reason=\"state_unreadable\"", NULL});
}

static void test_wrong_type_degrades_that_tenant_only(void **state) {
    (void)state;
    char t_hash[64], t_doc[64], k[GOV_STATE_KEY_MAX], k_demo[GOV_STATE_KEY_MAX];
    itest_unique("wt-hash", t_hash, sizeof t_hash);
    itest_unique("wt-doc", t_doc, sizeof t_doc);
    /* t_hash: its constitution hash is a list. */
    state_key(GOV_STATE_CONSTITUTION, t_hash, k);
    const char *rpush[] = {"RPUSH", k, "not-a-hash"};
    freeReplyObject(itest_redis_cmd(priv, 3, rpush, NULL));
    /* t_doc: a readable hash (demo's), its document a list. */
    state_key(GOV_STATE_CONSTITUTION, "demo", k_demo);
    state_key(GOV_STATE_CONSTITUTION, t_doc, k);
    itest_copy_key(priv, k_demo, k);
    state_key(GOV_STATE_CONSTITUTION_DOC, t_doc, k);
    rpush[1] = k;
    freeReplyObject(itest_redis_cmd(priv, 3, rpush, NULL));
    const char *sadd[] = {"SADD", gov_state_constitution_index_key(), t_hash, t_doc};
    freeReplyObject(itest_redis_cmd(priv, 4, sadd, NULL));

    /* The running edge: the next reconcile (300 ms) degrades both, serves demo. */
    degraded_wait_t w1 = {&edge, t_hash}, w2 = {&edge, t_doc};
    assert_true(itest_wait_for(tenant_degraded, &w1, 10000, 100) >= 0);
    assert_true(itest_wait_for(tenant_degraded, &w2, 10000, 100) >= 0);
    assert_true(rejected(&edge, t_hash) >= 1);
    assert_true(rejected(&edge, t_doc) >= 1);
    assert_int_equal(evaluate_status(&edge), 200);
    char *body = NULL;
    assert_int_equal(itest_proc_get(&edge, "/v1/constitution/demo", &body), 200);
    free(body);
    /* The reconcile keeps working for the others: redis stays OK. */
    assert_int_equal(itest_proc_get(&edge, "/readyz", &body), 200);
    assert_non_null(strstr(body, "\"name\":\"redis\",\"state\":\"ok\""));
    free(body);

    /* A fresh edge starting with those keys becomes ready (itest_proc_start
     * waits for /readyz 200), degraded for them, serving demo. */
    itest_proc_t fresh;
    memset(&fresh, 0, sizeof fresh);
    start_edge(&fresh, EDGE_ID "-fresh", "itest-edge-redis-gov-edge-fresh.log");
    degraded_wait_t w3 = {&fresh, t_hash};
    assert_true(itest_wait_for(tenant_degraded, &w3, 10000, 100) >= 0);
    assert_int_equal(evaluate_status(&fresh), 200);
    assert_int_equal(itest_proc_stop(&fresh), 0);

    const char *srem[] = {"SREM", gov_state_constitution_index_key(), t_hash, t_doc};
    freeReplyObject(itest_redis_cmd(priv, 4, srem, NULL));
}

/* --- point 2: Redis stopped, restarted from its RDB while it loads -------------------- */

static int redis_ok(void *opaque) {
    (void)opaque;
    return gov_redis_ping(priv) == GOV_OK;
}

static int log_mentions_loading(const itest_proc_t *p) {
    char *text = itest_read_file(itest_log_path(p->log), NULL);
    int yes = strstr(text, "LOADING") != NULL;
    free(text);
    return yes;
}

static void test_restart_while_loading_recovers(void **state) {
    (void)state;
    /* Enough keys that loading with a per-key delay takes seconds. */
    itest_redis_fill_and_save(redis_port);
    assert_true(itest_stop(redis_pid, SIGTERM, 10000) != -1);
    redis_pid = -1;

    /* Redis down: evaluate answers from the snapshot, lookups 503 at once. */
    assert_int_equal(evaluate_status(&edge), 200);
    assert_int_equal(lookup_status(&edge), 503);

    redis_pid = itest_private_redis_restart_loading("edge-redis", redis_port);
    /* While it loads: a fresh edge starts (and waits), the running one
     * keeps answering evaluate and lookups answer 503. */
    assert_int_equal(evaluate_status(&edge), 200);
    assert_int_equal(lookup_status(&edge), 503);
    itest_proc_t fresh;
    memset(&fresh, 0, sizeof fresh);
    start_edge(&fresh, EDGE_ID "-loading", "itest-edge-redis-gov-edge-loading.log");
    /* It saw LOADING (the load was retried, not given up) and is ready. */
    assert_true(log_mentions_loading(&fresh));
    assert_int_equal(evaluate_status(&fresh), 200);
    char *body = NULL;
    assert_int_equal(itest_proc_get(&fresh, "/v1/constitution/demo", &body), 200);
    free(body);
    assert_int_equal(itest_proc_stop(&fresh), 0);

    /* Loaded: the running edge's lookups and reconcile recover by themselves. */
    assert_true(itest_wait_for(redis_ok, NULL, 30000, 100) >= 0);
    assert_true(itest_wait_for(lookup_is_404, &edge, 15000, 100) >= 0);
    assert_int_equal(evaluate_status(&edge), 200);
    itest_redis_unfill(redis_port);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abandoned_pipeline_never_desynchronizes),
        cmocka_unit_test(test_lookups_never_block_evaluate),
        cmocka_unit_test(test_wrong_type_degrades_that_tenant_only),
        cmocka_unit_test(test_restart_while_loading_recovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
