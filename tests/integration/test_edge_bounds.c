/* test_edge_bounds.c - gov-edge's cost is bounded by what changed, not by
 * what anyone sends it (review findings 5 and 6).
 *
 * A private redis-server holds a copy of the stack's demo tenant (DUMP and
 * RESTORE, so the stack's trust files verify it); a private gov-edge
 * ("edge-itest-bounds", its own port, reconcile 60 s so only events and the
 * start-up load move it) serves it.  Then, as the reviewer did:
 *   - 300 replayed RulePackUpdated for demo and update events for made-up
 *     tenants cost one comparison per burst and tenant: no full reload, no
 *     metric series for a tenant the edge does not serve; a real change
 *     announced after them is loaded once;
 *   - a pack refused keeps the last verified pack while the constitution
 *     reloads, and the reverse (finding 11);
 *   - the pack in Redis grows to 256 MiB: the edge refuses it before reading
 *     it (kind "state", reason too_large, tenant degraded), keeps serving the
 *     last verified state, and its peak RSS stays far below the value.
 * Every wait is on an observable outcome (a metric, /readyz), bounded.
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

#include "gov_alloc.h"
#include "gov_redis.h"
#include "gov_state.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

#define EDGE_ID "edge-itest-bounds"
#define FLOOD 300
#define MADE_UP 50

static pid_t redis_pid = -1;
static int redis_port;
static gov_redis_t *priv;
static itest_proc_t edge;
static char env_redis[48], env_trust[600], env_pack_trust[600];

static const char *const eval_body =
    "{\"tenant\":\"demo\",\"session_id\":\"s-itest-bounds\",\"user\":\"u\",\"role\":\"analyst\","
    "\"prompt\":\"hello\"}";

static int evaluate_status(void) {
    char url[96], *body = NULL;
    snprintf(url, sizeof url, "%s/v1/evaluate", edge.url);
    long st = itest_http_post_json(url, eval_body, &body);
    free(body);
    return (int)st;
}

/* edge_state_reloads_total{tenant,trigger="event",outcome}, 0 when none. */
static double event_reloads(const char *tenant, const char *outcome) {
    char ft[128], fo[64];
    snprintf(ft, sizeof ft, "tenant=\"%s\"", tenant);
    snprintf(fo, sizeof fo, "outcome=\"%s\"", outcome);
    double v = itest_proc_metric(&edge, "edge_state_reloads_total",
                                 (const char *[]){ft, "trigger=\"event\"", fo, NULL});
    return v < 0 ? 0 : v;
}

/* A RulePackUpdated for tenant (its content is not what the edge acts on:
 * it reads Redis); where it landed in *partition. */
static void produce_updated(const char *tenant, int32_t *partition) {
    char id[GOV_UUID_STRLEN + 1];
    assert_int_equal(gov_uuid_v7(id), GOV_OK);
    json_t *ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:n, s:[s], s:s, s:s}", "event_id", id,
                           "occurred_at", (json_int_t)gov_now_micros(), "tenant", tenant,
                           "pack_id", "demo-baseline", "version", "1.0.0", "sha256",
                           "0000000000000000000000000000000000000000000000000000000000000000",
                           "previous_version", "signers", "itest", "published_event_id", id,
                           "component", "itest-bounds");
    int64_t offset;
    itest_produce_event_at("policy.rulepacks.updated", "RulePackUpdated", ev, partition, &offset);
    json_decref(ev);
}

static int setup(void **state) {
    (void)state;
    char eb[256];
    redis_pid = itest_private_redis("edge-bounds", &redis_port);
    if (gov_redis_new("127.0.0.1", redis_port, 20000, &priv, eb, sizeof eb) != GOV_OK)
        fail_msg("private redis: %s", eb);
    const char *flush[] = {"FLUSHALL"};
    freeReplyObject(itest_redis_cmd(priv, 1, flush, NULL));
    itest_copy_tenant(priv, "demo");
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    snprintf(env_trust, sizeof env_trust, "GOV_TRUST_FILE=%s", itest_path("var/demo/trust.json"));
    snprintf(env_pack_trust, sizeof env_pack_trust, "GOV_RULEPACK_TRUST_FILE=%s",
             itest_path("var/demo/rulepack-trust.json"));
    const char *env[] = {env_redis, env_trust, env_pack_trust, "GOV_EDGE_ID=" EDGE_ID,
                         "GOV_RECONCILE=60s", NULL};
    itest_proc_start(&edge, "gov-edge", NULL, env, "itest-edge-bounds-gov-edge.log");
    if (evaluate_status() != 200)
        fail_msg("the private edge does not serve the copied demo tenant");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_proc_stop(&edge);
    gov_redis_free(priv);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 10000);
    return rc;
}

typedef struct reload_wait {
    const char *tenant, *outcome;
    double at_least;
} reload_wait_t;

static int reloads_reached(void *opaque) {
    const reload_wait_t *w = opaque;
    return event_reloads(w->tenant, w->outcome) >= w->at_least;
}

/* Finding 5: a replayed flood of update events costs comparisons, not
 * reloads; made-up tenants make no series; a real change still loads. */
static void test_update_flood_costs_no_reloads(void **state) {
    (void)state;
    double loaded0 = event_reloads("demo", "loaded");
    int32_t demo_partition = -1, p;
    for (int i = 0; i < FLOOD; i++)
        produce_updated("demo", &demo_partition);
    char prefix[64], names[MADE_UP][96];
    int same_partition[MADE_UP], nsame = 0;
    itest_unique("zz-nobody", prefix, sizeof prefix);
    for (int i = 0; i < MADE_UP; i++) {
        snprintf(names[i], sizeof names[i], "%s-%d", prefix, i);
        produce_updated(names[i], &p);
        same_partition[i] = p == demo_partition;
        nsame += same_partition[i];
    }
    assert_true(nsame > 0);
    reload_wait_t unchanged = {"demo", "unchanged", 1};
    assert_true(itest_wait_for(reloads_reached, &unchanged, 30000, 20) >= 0);

    /* A real change (the same signed pack, re-serialized: other bytes, the
     * same verified content), announced after the flood in its partition:
     * once it is loaded, every earlier event of the partition was handled. */
    char k[GOV_STATE_KEY_MAX];
    assert_int_equal(gov_state_key(GOV_STATE_RULEPACK, "demo", k), GOV_OK);
    const char *get[] = {"GET", k};
    redisReply *pack = itest_redis_cmd(priv, 2, get, NULL);
    assert_int_equal(pack->type, REDIS_REPLY_STRING);
    const char *append[] = {"APPEND", k, "\n"};
    freeReplyObject(itest_redis_cmd(priv, 3, append, NULL));
    freeReplyObject(pack);
    produce_updated("demo", &p);
    assert_int_equal(p, demo_partition);
    reload_wait_t loaded = {"demo", "loaded", loaded0 + 1};
    assert_true(itest_wait_for(reloads_reached, &loaded, 30000, 20) >= 0);
    /* One reload for 301 events (main: 301 full reloads). */
    assert_true(event_reloads("demo", "loaded") == loaded0 + 1);
    assert_int_equal(evaluate_status(), 200);

    char *body = NULL;
    assert_int_equal(itest_proc_get(&edge, "/metrics", &body), 200);
    for (int i = 0; i < MADE_UP; i++)
        if (same_partition[i])
            assert_null(strstr(body, names[i]));
    assert_int_equal(itest_promtool_check(body), 0);
    free(body);
}

typedef struct refused_wait {
    const char *kind;
    double at_least;
} refused_wait_t;

static int refused_no_signatures(void *opaque) {
    const refused_wait_t *w = opaque;
    return itest_edge_refused(&edge, "demo", w->kind, "no_signatures") >= w->at_least;
}

/* HGET/HSET of one field of one of demo's hashes in the private Redis. */
static char *hget(gov_state_key_t kind, const char *field) {
    char k[GOV_STATE_KEY_MAX];
    assert_int_equal(gov_state_key(kind, "demo", k), GOV_OK);
    const char *argv[] = {"HGET", k, field};
    redisReply *r = itest_redis_cmd(priv, 3, argv, NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *v = strdup(r->str);
    freeReplyObject(r);
    return v;
}

static void hset(gov_state_key_t kind, const char *field, const char *value) {
    char k[GOV_STATE_KEY_MAX];
    assert_int_equal(gov_state_key(kind, "demo", k), GOV_OK);
    const char *argv[] = {"HSET", k, field, value};
    freeReplyObject(itest_redis_cmd(priv, 4, argv, NULL));
}

/* Other pack bytes with the same signed content (so the edge reloads), then
 * an update event. */
static void touch_pack(void) {
    char k[GOV_STATE_KEY_MAX];
    assert_int_equal(gov_state_key(GOV_STATE_RULEPACK, "demo", k), GOV_OK);
    const char *append[] = {"APPEND", k, " "};
    freeReplyObject(itest_redis_cmd(priv, 3, append, NULL));
    int32_t p;
    produce_updated("demo", &p);
}

/* Finding 11: a refused pack keeps the last verified pack while the
 * constitution is loaded, and a refused constitution keeps the last verified
 * constitution while the pack is loaded; evaluation goes on with both. */
static void test_one_part_refused_keeps_the_other(void **state) {
    (void)state;
    char *pack_sigs = hget(GOV_STATE_RULEPACK_META, "signatures");
    char *doc_sigs = hget(GOV_STATE_CONSTITUTION, "signatures");
    double pack0 = itest_edge_refused(&edge, "demo", "rulepack", "no_signatures");
    double doc0 = itest_edge_refused(&edge, "demo", "constitution", "no_signatures");

    hset(GOV_STATE_RULEPACK_META, "signatures", "[]");
    touch_pack();
    refused_wait_t wp = {"rulepack", (pack0 < 0 ? 0 : pack0) + 1};
    assert_true(itest_wait_for(refused_no_signatures, &wp, 30000, 20) >= 0);
    assert_int_equal(evaluate_status(), 200);
    assert_true(itest_edge_degraded(&edge, "demo"));

    hset(GOV_STATE_RULEPACK_META, "signatures", pack_sigs);
    hset(GOV_STATE_CONSTITUTION, "signatures", "[]");
    touch_pack();
    refused_wait_t wc = {"constitution", (doc0 < 0 ? 0 : doc0) + 1};
    assert_true(itest_wait_for(refused_no_signatures, &wc, 30000, 20) >= 0);
    assert_int_equal(evaluate_status(), 200);
    assert_true(itest_edge_degraded(&edge, "demo"));

    hset(GOV_STATE_CONSTITUTION, "signatures", doc_sigs);
    double loaded = event_reloads("demo", "loaded");
    touch_pack();
    reload_wait_t wl = {"demo", "loaded", loaded + 1};
    assert_true(itest_wait_for(reloads_reached, &wl, 30000, 20) >= 0);
    assert_false(itest_edge_degraded(&edge, "demo"));
    assert_int_equal(evaluate_status(), 200);
    free(pack_sigs);
    free(doc_sigs);
}

/* Peak resident set of a process, in KiB (VmHWM); -1 when unreadable. */
static long peak_rss_kib(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

static int refused_too_large(void *opaque) {
    (void)opaque;
    return itest_edge_refused(&edge, "demo", "state", "too_large") >= 1;
}

/* Finding 6: a 256 MiB pack in Redis is refused before it is read. */
static void test_oversized_value_is_never_read(void **state) {
    (void)state;
    long before = peak_rss_kib(edge.pid);
    assert_true(before > 0);
    char k[GOV_STATE_KEY_MAX];
    assert_int_equal(gov_state_key(GOV_STATE_RULEPACK, "demo", k), GOV_OK);
    const char *grow[] = {"SETRANGE", k, "268435455", "x"};
    freeReplyObject(itest_redis_cmd(priv, 4, grow, NULL));
    int32_t p;
    produce_updated("demo", &p);
    assert_true(itest_wait_for(refused_too_large, NULL, 30000, 20) >= 0);
    assert_true(itest_edge_degraded(&edge, "demo"));
    /* The last verified state stays served. */
    assert_int_equal(evaluate_status(), 200);
    long after = peak_rss_kib(edge.pid);
    /* Reading the value would have taken at least its 256 MiB. */
    assert_true(after - before < 64 * 1024);
    const char *del[] = {"DEL", k};
    freeReplyObject(itest_redis_cmd(priv, 2, del, NULL));
}

/* Finding 6, decisions: a decision record grown in Redis past the size of
 * the Kafka message it came from is not sent to the edge (503), while a
 * record of normal size is answered. */
static void test_oversized_decision_is_never_read(void **state) {
    (void)state;
    char id[GOV_UUID_STRLEN + 1], key[GOV_STATE_KEY_MAX], url[256], *body = NULL;
    assert_int_equal(gov_uuid_v7(id), GOV_OK);
    assert_int_equal(gov_state_decision_key("demo", id, key), GOV_OK);
    const char *small[] = {"HSET", key, "decision_id", id, "tenant", "demo", "decision", "allow"};
    freeReplyObject(itest_redis_cmd(priv, 8, small, NULL));
    snprintf(url, sizeof url, "%s/v1/decisions/demo/%s", edge.url, id);
    assert_int_equal(itest_http_get(url, &body), 200);
    free(body);
    /* 2 MiB in one field (HSET of a large value built here). */
    size_t big = 2u * 1024 * 1024;
    char *value = malloc(big);
    memset(value, 'x', big);
    const char *hset[] = {"HSET", key, "reasons", value};
    size_t lens[] = {4, strlen(key), 7, big};
    freeReplyObject(itest_redis_cmd(priv, 4, hset, lens));
    free(value);
    assert_int_equal(itest_http_get(url, &body), 503);
    assert_non_null(strstr(body, "decision_store_unavailable"));
    free(body);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_update_flood_costs_no_reloads),
        cmocka_unit_test(test_one_part_refused_keeps_the_other),
        cmocka_unit_test(test_oversized_value_is_never_read),
        cmocka_unit_test(test_oversized_decision_is_never_read),
    };
    return cmocka_run_group_tests_name("edge-bounds", tests, setup, teardown);
}
