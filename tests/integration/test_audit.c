/* test_audit.c - gov-audit against the real Kafka broker and a real Redis.
 *
 * The group setup starts a private redis-server and a private gov-audit
 * (its own consumer group and admin port) so that killing and replaying it
 * does not disturb the stack's own gov-audit.  Events are produced to the
 * stack's real topics, Avro single-object encoded, and every check reads
 * what an operator would read: the Redis keys, the DLQ topic, /metrics and
 * `govctl audit verify`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gov_avro.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

#define COMPONENT "gov-audit-itest"

static pid_t redis_pid = -1;
static int redis_port;
/* A deployment of its own, next to the stack's gov-audit on the same topics. */
static itest_proc_t audit;
static char env_port[48];

static const char *const audit_env[] = {env_port, ITEST_NO_RELAY, NULL};

static void start_audit(void) {
    itest_proc_start(&audit, "gov-audit", COMPONENT, audit_env, "itest-gov-audit.log");
}

static int setup(void **state) {
    (void)state;
    redis_pid = itest_private_redis("audit", &redis_port);
    snprintf(env_port, sizeof env_port, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_port); /* itest helpers and govctl use it too */
    start_audit();
    /* A fresh group starts at the topics' beginning: once it has worked
     * through the history, what it counts is this run's. */
    itest_must_catch_up(&audit, 3);
    return 0;
}

/* A clean SIGTERM exit is part of the contract (and, for the sanitizer
 * build, where LeakSanitizer reports at exit): anything else fails. */
static int teardown(void **state) {
    (void)state;
    int rc = itest_private_stop(&audit, redis_pid);
    return rc;
}

static int govctl_verify(const char *tenant, char *out, size_t size) {
    const char *argv[] = {itest_bin("govctl"), "audit", "verify", "--tenant", tenant, NULL};
    return itest_run(argv, NULL, out, size);
}

static void produce_audit_events(const char *tenant, int n, char (*ids)[37]) {
    for (int i = 0; i < n; i++) {
        json_t *e = itest_audit_event(tenant, "token.issued");
        if (ids)
            snprintf(ids[i], 37, "%s", json_string_value(json_object_get(e, "event_id")));
        itest_produce_event("identity.audit", "AuditEvent", e);
        json_decref(e);
    }
}

static char tenant_main[64];

static void test_chain_is_materialized_in_order(void **state) {
    (void)state;
    itest_unique("t", tenant_main, sizeof tenant_main);
    char ids[20][37];
    produce_audit_events(tenant_main, 20, ids);
    char key[128];
    snprintf(key, sizeof key, "audit:{%s}", tenant_main);
    assert_int_equal(itest_wait_xlen(key, 20, 20000), 20);

    redisReply *r = NULL;
    char eb[256];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XRANGE %s - +", key), GOV_OK);
    assert_int_equal(r->elements, 20);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        const char *eid = NULL, *seq = NULL;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (strcmp(f->element[k]->str, "event_id") == 0) eid = f->element[k + 1]->str;
            if (strcmp(f->element[k]->str, "seq") == 0) seq = f->element[k + 1]->str;
        }
        assert_non_null(eid);
        assert_string_equal(eid, ids[i]); /* one tenant = one partition = in order */
        assert_int_equal(atoi(seq), (int)i + 1);
    }
    freeReplyObject(r);

    char out[512];
    assert_int_equal(govctl_verify(tenant_main, out, sizeof out), 0);
    assert_non_null(strstr(out, "entries=20"));
}

static void test_decision_is_materialized_with_ttl(void **state) {
    (void)state;
    char tenant[64], did[37], key[200], eb[256];
    itest_unique("t", tenant, sizeof tenant);
    gov_uuid_v7(did);
    json_t *e = itest_decision_event(tenant, did);
    itest_produce_event("policy.decisions", "PolicyDecision", e);
    json_decref(e);
    snprintf(key, sizeof key, "audit:{%s}", tenant);
    assert_int_equal(itest_wait_xlen(key, 1, 20000), 1);

    snprintf(key, sizeof key, "policy:decision:{%s}:%s", tenant, did);
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "HGET %s decision", key), GOV_OK);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "review");
    freeReplyObject(r);
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "HGET %s score", key), GOV_OK);
    assert_string_equal(r->str, "0.350000");
    freeReplyObject(r);
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "HGET %s reasons", key), GOV_OK);
    json_t *reasons = json_loads(r->str, 0, NULL);
    freeReplyObject(r);
    assert_non_null(reasons);
    assert_string_equal(json_string_value(json_object_get(json_array_get(reasons, 0), "rule_id")), "pii.email");
    json_decref(reasons);
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "HEXISTS %s tool_name", key), GOV_OK);
    assert_int_equal(r->integer, 0); /* null fields are not stored */
    freeReplyObject(r);
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "TTL %s", key), GOV_OK);
    assert_true(r->integer > 0 && r->integer <= 168 * 3600);
    freeReplyObject(r);
}

typedef struct conflict_want {
    const char *tenant_filter;
    double want, seen;
} conflict_want_t;

static int conflicts_counted(void *opaque) {
    conflict_want_t *w = opaque;
    const char *flt[] = {w->tenant_filter, NULL};
    w->seen = itest_proc_metric(&audit, "audit_event_conflicts_total", flt);
    return w->seen >= w->want;
}

static void wait_conflicts(const char *tenant, double want) {
    char tf[96];
    snprintf(tf, sizeof tf, "tenant=\"%s\"", tenant);
    conflict_want_t w = {tf, want, 0};
    if (itest_wait_for(conflicts_counted, &w, 20000, 20) < 0)
        fail_msg("%s counted %g conflicts for %s, not %g", COMPONENT, w.seen, tenant, want);
}

static void hget(const char *key, const char *field, char *out, size_t size) {
    char eb[256];
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "HGET %s %s", key, field),
                     GOV_OK);
    snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "(nil)");
    freeReplyObject(r);
}

/* How many entries of the chain `key` have a payload containing `needle`. */
static int chain_count(const char *key, const char *needle) {
    char eb[256];
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XRANGE %s - +", key),
                     GOV_OK);
    int n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2)
            if (strcmp(f->element[k]->str, "payload") == 0 && strstr(f->element[k + 1]->str, needle))
                n++;
    }
    freeReplyObject(r);
    return n;
}

/* Decision records are write-once, and nothing is lost: a second
 * PolicyDecision (a new event) naming a known decision_id with another
 * decision is chained as its own entry, the record keeps the first
 * decision but is marked with the twin's event_id, and this deployment
 * counts the conflict. */
static void test_second_decision_with_a_known_id_is_a_counted_conflict(void **state) {
    (void)state;
    char tenant[64], did[37], key[200], got[64];
    itest_unique("wo", tenant, sizeof tenant);
    gov_uuid_v7(did);
    json_t *e = itest_decision_event(tenant, did);
    json_object_set_new(e, "decision", json_string("deny"));
    itest_produce_event("policy.decisions", "PolicyDecision", e);
    snprintf(key, sizeof key, "audit:{%s}", tenant);
    assert_int_equal(itest_wait_xlen(key, 1, 20000), 1);

    char ev2[GOV_UUID_STRLEN + 1];
    gov_uuid_v7(ev2);
    json_object_set_new(e, "event_id", json_string(ev2));
    json_object_set_new(e, "decision", json_string("allow"));
    itest_produce_event("policy.decisions", "PolicyDecision", e);
    json_decref(e);
    wait_conflicts(tenant, 1);
    assert_int_equal(itest_wait_xlen(key, 2, 20000), 2);
    assert_int_equal(chain_count(key, ev2), 1);
    char dkey[200];
    snprintf(dkey, sizeof dkey, "policy:decision:{%s}:%s", tenant, did);
    hget(dkey, "decision", got, sizeof got);
    assert_string_equal(got, "deny");
    hget(dkey, "conflicting_event_id", got, sizeof got);
    assert_string_equal(got, ev2);
}

typedef struct lookup_want {
    char url[512];
} lookup_want_t;

static int lookup_marked(void *opaque) {
    lookup_want_t *w = opaque;
    char *body = NULL;
    long st = itest_http_get(w->url, &body);
    int marked = st == 200 && body && strstr(body, "\"conflicting_event_id\"") != NULL;
    free(body);
    return marked;
}

/* Review finding 2a: a forged PolicyDecision produced straight to
 * identity.audit under the real decision's event_id and decision_id, before
 * the real one is relayed, no longer keeps the real one out: the relayed
 * deny is chained too, the record (the forgery's allow) is marked with the
 * conflict, and the conflict is counted by this deployment. */
static void test_forged_decision_cannot_preempt_the_relayed_one(void **state) {
    (void)state;
    char tenant[64], did[37], key[200], dkey[200], got[64];
    itest_unique("fg", tenant, sizeof tenant);
    gov_uuid_v7(did);
    json_t *real = itest_decision_event(tenant, did);
    json_object_set_new(real, "decision", json_string("deny"));
    json_t *forged = json_deep_copy(real);
    json_object_set_new(forged, "decision", json_string("allow"));
    itest_produce_event("identity.audit", "PolicyDecision", forged);
    json_decref(forged);
    snprintf(key, sizeof key, "audit:{%s}", tenant);
    assert_int_equal(itest_wait_xlen(key, 1, 20000), 1);

    itest_produce_event("policy.decisions", "PolicyDecision", real);
    json_decref(real);
    wait_conflicts(tenant, 1);
    assert_int_equal(itest_wait_xlen(key, 2, 20000), 2);
    assert_int_equal(chain_count(key, "\"decision\":\"deny\""), 1);
    assert_int_equal(chain_count(key, "\"decision\":\"allow\""), 1);
    snprintf(dkey, sizeof dkey, "policy:decision:{%s}:%s", tenant, did);
    hget(dkey, "conflicting_event_id", got, sizeof got);
    assert_int_equal(strlen(got), GOV_UUID_STRLEN);
    /* the relay delivered its copy (and gov-audit may see it twice): still
     * two entries, one conflict */
    char out[512];
    assert_int_equal(govctl_verify(tenant, out, sizeof out), 0);
    assert_int_equal(itest_wait_xlen(key, 3, 10), 2);
    /* End to end through the stack (its gov-audit saw the same two events,
     * its edge reads its Redis): GET /v1/decisions shows the mark. */
    lookup_want_t lw;
    snprintf(lw.url, sizeof lw.url, "%s/v1/decisions/%s/%s",
             itest_env("GOV_EDGE_URL", "http://127.0.0.1:8080"), tenant, did);
    if (itest_wait_for(lookup_marked, &lw, 30000, 50) < 0)
        fail_msg("GET %s never showed conflicting_event_id", lw.url);
}

/* Review finding 2b: processor audit ids are derivable
 * (gov_processor_derive_id: "<component>/<event_id>/<action>").  A harmless
 * AuditEvent pre-published under the id a future rulepack.rejected will
 * have does not keep the real one out: it is chained as a twin and counted.
 * The same event again (a producer retry) is a silent replay, and so is a
 * re-emission that differs only in occurred_at (a processor after a
 * crash). */
static void test_prepublished_audit_id_cannot_hide_the_real_event(void **state) {
    (void)state;
    char tenant[64], key[200], seed[256], aid[GOV_UUID_STRLEN + 1], pub[GOV_UUID_STRLEN + 1];
    itest_unique("pp", tenant, sizeof tenant);
    gov_uuid_v7(pub);
    uint64_t ms = (uint64_t)(gov_now_micros() / 1000);
    snprintf(seed, sizeof seed, "gov-rulepacks/%s/rulepack.rejected", pub);
    assert_int_equal(gov_uuid_v7_derive(ms, seed, aid), GOV_OK);
    json_t *harmless = itest_audit_event(tenant, "rulepack.accepted");
    json_object_set_new(harmless, "event_id", json_string(aid));
    itest_produce_event("identity.audit", "AuditEvent", harmless);
    itest_produce_event("identity.audit", "AuditEvent", harmless);  /* a retry */
    json_decref(harmless);
    snprintf(key, sizeof key, "audit:{%s}", tenant);
    assert_int_equal(itest_wait_xlen(key, 1, 20000), 1);

    json_t *rejected = itest_audit_event(tenant, "rulepack.rejected");
    json_object_set_new(rejected, "event_id", json_string(aid));
    json_object_set_new(rejected, "component", json_string("gov-rulepacks"));
    itest_produce_event("identity.audit", "AuditEvent", rejected);
    json_object_set_new(rejected, "occurred_at", json_integer(gov_now_micros() + 1000));
    itest_produce_event("identity.audit", "AuditEvent", rejected);  /* re-emitted */
    json_decref(rejected);
    wait_conflicts(tenant, 1);
    assert_int_equal(itest_wait_xlen(key, 2, 20000), 2);
    assert_int_equal(chain_count(key, "rulepack.rejected"), 1);
    /* a marker after all of it: once it is chained, everything before it was
     * handled - still two entries for the id, one conflict */
    json_t *marker = itest_audit_event(tenant, "token.issued");
    itest_produce_event("identity.audit", "AuditEvent", marker);
    json_decref(marker);
    assert_int_equal(itest_wait_xlen(key, 3, 20000), 3);
    assert_int_equal(chain_count(key, aid), 2);
    wait_conflicts(tenant, 1);
    const char *flt[] = {NULL, NULL};
    char tf[96];
    snprintf(tf, sizeof tf, "tenant=\"%s\"", tenant);
    flt[0] = tf;
    assert_true(itest_proc_metric(&audit, "audit_event_conflicts_total", flt) == 1);
    char out[512];
    assert_int_equal(govctl_verify(tenant, out, sizeof out), 0);
}

/* Review finding 12: a relay group that has never run starts at the
 * earliest retained decision, so a decision produced before it exists is
 * relayed - by this deployment (x-gov-component), not only by the stack's. */
typedef struct relayed_want {
    const char *component;
    const char *decision_id;
} relayed_want_t;

static int relayed_by(void *opaque, const gov_kafka_msg_t *m) {
    relayed_want_t *w = opaque;
    char from[128], comp[128];
    itest_msg_header(m, "x-gov-relayed-from", from, sizeof from);
    itest_msg_header(m, "x-gov-component", comp, sizeof comp);
    if (from[0] == 0 || strcmp(comp, w->component) != 0)
        return 0;
    json_t *ev = NULL;
    const char *type = NULL;
    char eb[256];
    if (gov_avro_decode(itest_avro(), m->value, m->len, &ev, &type, eb, sizeof eb) != GOV_OK)
        return 0;
    const char *did = json_string_value(json_object_get(ev, "decision_id"));
    int match = did && strcmp(did, w->decision_id) == 0;
    json_decref(ev);
    return match;
}

static void test_new_relay_group_relays_earlier_decisions(void **state) {
    (void)state;
    char tenant[64], did[37];
    itest_unique("rl", tenant, sizeof tenant);
    gov_uuid_v7(did);
    json_t *e = itest_decision_event(tenant, did);
    itest_produce_event("policy.decisions", "PolicyDecision", e);
    json_decref(e);
    /* the relay's group is created only now, after the decision */
    itest_proc_t late = {0};
    const char *const relay_env[] = {env_port, NULL};
    itest_proc_start(&late, "gov-audit", COMPONENT "-late", relay_env, "itest-gov-audit-late.log");
    relayed_want_t w = {COMPONENT "-late", did};
    int found = itest_consume_until("identity.audit", relayed_by, &w, ITEST_HISTORY_MS);
    int stopped = itest_proc_stop(&late);
    assert_true(found);
    assert_int_equal(stopped, 0);
}

/* Review finding 9: one tenant's wrong-typed key stops its partition (the
 * message is retried: nothing is lost) but no longer silently - this
 * deployment's /readyz names tenant:<T> degraded with the key (still 200),
 * processor_tenant_write_errors_total counts it, the log names the key; once
 * the key is repaired the event is chained and the tenant is ok again. */
typedef struct degraded_want {
    const char *tenant;
    int want;
} degraded_want_t;

static int degraded_is(void *opaque) {
    degraded_want_t *w = opaque;
    return itest_edge_degraded(&audit, w->tenant) == w->want;
}

static void test_wrong_typed_key_is_named_and_degraded(void **state) {
    (void)state;
    char tenant[64], key[128], ids_key[128], eb[256];
    itest_unique("wt", tenant, sizeof tenant);
    produce_audit_events(tenant, 1, NULL);
    snprintf(key, sizeof key, "audit:{%s}", tenant);
    assert_int_equal(itest_wait_xlen(key, 1, 20000), 1);
    snprintf(ids_key, sizeof ids_key, "audit:{%s}:ids", tenant);
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "DEL %s", ids_key), GOV_OK);
    freeReplyObject(r);
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "SET %s x", ids_key), GOV_OK);
    freeReplyObject(r);
    produce_audit_events(tenant, 1, NULL);

    degraded_want_t w = {tenant, 1};
    if (itest_wait_for(degraded_is, &w, 20000, 20) < 0)
        fail_msg("%s did not report tenant:%s degraded", COMPONENT, tenant);
    char *body = NULL;
    assert_int_equal(itest_proc_get(&audit, "/readyz", &body), 200);
    assert_non_null(strstr(body, ids_key));
    free(body);
    char tf[96];
    snprintf(tf, sizeof tf, "tenant=\"%s\"", tenant);
    const char *flt[] = {tf, NULL};
    assert_true(itest_proc_metric(&audit, "processor_tenant_write_errors_total", flt) >= 1);
    size_t len = 0;
    char *log = itest_read_file(itest_log_path("itest-gov-audit.log"), &len);
    char want[200];
    snprintf(want, sizeof want, "\"key\":\"%s\"", ids_key);
    assert_non_null(log);
    assert_non_null(strstr(log, want));
    free(log);
    assert_int_equal(itest_wait_xlen(key, 2, 10), 1);   /* held, not skipped */

    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "DEL %s", ids_key), GOV_OK);
    freeReplyObject(r);
    assert_int_equal(itest_wait_xlen(key, 2, 30000), 2);
    w.want = 0;
    if (itest_wait_for(degraded_is, &w, 20000, 20) < 0)
        fail_msg("%s still reports tenant:%s degraded after the repair", COMPONENT, tenant);
}

/* Review finding 8: the per-tenant applied offsets are read.  Lowering one
 * tenant's gov:applied key (what a Redis Cluster failover that loses the
 * tenant's slot but keeps the partition watermark looks like) makes this
 * deployment rebuild the partition (processor_rebuilds_total moves), and
 * the tenant's next event is chained once, after the replay. */
typedef struct rebuild_want {
    double at_least, seen;
} rebuild_want_t;

static int audit_rebuilt(void *opaque) {
    rebuild_want_t *w = opaque;
    w->seen = itest_proc_metric(&audit, "processor_rebuilds_total", NULL);
    return w->seen >= w->at_least;
}

static void test_lowered_tenant_applied_offset_rebuilds(void **state) {
    (void)state;
    char tenant[64], key[128], eb[256], applied_key[256] = "";
    itest_unique("ap", tenant, sizeof tenant);
    produce_audit_events(tenant, 2, NULL);
    snprintf(key, sizeof key, "audit:{%s}", tenant);
    assert_int_equal(itest_wait_xlen(key, 2, 20000), 2);
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                        "KEYS gov:applied:{%s}:%s:identity.audit:*", tenant,
                                        audit.group), GOV_OK);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    snprintf(applied_key, sizeof applied_key, "%s", r->element[0]->str);
    freeReplyObject(r);
    rebuild_want_t w = {0, 0};
    w.seen = itest_proc_metric(&audit, "processor_rebuilds_total", NULL);
    w.at_least = (w.seen < 0 ? 0 : w.seen) + 1;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "DECRBY %s 1",
                                        applied_key), GOV_OK);
    freeReplyObject(r);
    produce_audit_events(tenant, 1, NULL);
    if (itest_wait_for(audit_rebuilt, &w, 30000, 20) < 0)
        fail_msg("%s did not rebuild (processor_rebuilds_total %g)", COMPONENT, w.seen);
    assert_int_equal(itest_wait_xlen(key, 3, 30000), 3);
    char out[512];
    assert_int_equal(govctl_verify(tenant, out, sizeof out), 0);
    assert_non_null(strstr(out, "entries=3"));
}

typedef struct dlq_find {
    const void *value;
    size_t len;
    char reason[64];
    char offset[32];
} dlq_find_t;

static int match_dlq(void *opaque, const gov_kafka_msg_t *m) {
    dlq_find_t *f = opaque;
    if (m->len != f->len || memcmp(m->value, f->value, f->len) != 0)
        return 0;
    itest_msg_header(m, "x-gov-dlq-reason", f->reason, sizeof f->reason);
    itest_msg_header(m, "x-gov-source-offset", f->offset, sizeof f->offset);
    /* the stack's gov-audit dead-letters the same message: only the private
     * one's copy counts */
    char comp[64] = "";
    itest_msg_header(m, "x-gov-component", comp, sizeof comp);
    return strcmp(comp, COMPONENT) == 0;
}

static const char *const dead_lettered_filter[] = {"outcome=\"dead_lettered\"",
                                                   "topic=\"identity.audit\"", NULL};

/* processor_events_total{outcome="dead_lettered",topic="identity.audit"} of
 * the private gov-audit; 0 before the first. */
static double dead_lettered(void) {
    double v = itest_proc_metric(&audit, "processor_events_total", dead_lettered_filter);
    return v < 0 ? 0 : v;
}

typedef struct dead_lettered_want {
    double want, seen;
} dead_lettered_t;

static int dead_lettered_reached(void *opaque) {
    dead_lettered_t *d = opaque;
    d->seen = dead_lettered();
    return d->seen >= d->want;
}

static void test_poison_goes_to_dlq_and_next_event_is_materialized(void **state) {
    (void)state;
    char tenant[64], key[128], nonce[64];
    double before = dead_lettered();
    itest_unique("t", tenant, sizeof tenant);
    itest_unique("garbage", nonce, sizeof nonce);

    /* 1. not Avro at all */
    char garbage[128];
    snprintf(garbage, sizeof garbage, "this is not avro %s", nonce);
    itest_produce_raw("identity.audit", tenant, garbage, strlen(garbage));
    /* 2. single-object header with a fingerprint no schema has */
    unsigned char unknown[24] = {0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8};
    memcpy(unknown + 10, nonce, 14);
    itest_produce_raw("identity.audit", tenant, unknown, sizeof unknown);
    /* 3. a valid AuditEvent whose Kafka key is not its tenant */
    json_t *e = itest_audit_event(tenant, "key.mismatch");
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[256];
    assert_int_equal(gov_avro_encode(itest_avro(), "AuditEvent", e, &buf, &len, eb, sizeof eb), GOV_OK);
    itest_produce_raw("identity.audit", "some-other-tenant", buf, len);
    json_decref(e);
    /* 4. a good event after them */
    produce_audit_events(tenant, 1, NULL);

    snprintf(key, sizeof key, "audit:{%s}", tenant);
    assert_int_equal(itest_wait_xlen(key, 1, 20000), 1);
    /* the private gov-audit has dead-lettered all three (it counts each
     * once the DLQ acknowledged it) and the poison did not land */
    dead_lettered_t dl = {before + 3, 0};
    if (itest_wait_for(dead_lettered_reached, &dl, 20000, 50) < 0)
        fail_msg("gov-audit dead-lettered %g of 3 poison messages", dl.seen - before);
    assert_int_equal(itest_wait_xlen(key, 1, 10), 1);

    dlq_find_t f1 = {garbage, strlen(garbage), "", ""};
    assert_true(itest_consume_until("identity.audit.dlq", match_dlq, &f1, 30000));
    assert_string_equal(f1.reason, "undecodable");
    assert_true(f1.offset[0] != 0);
    dlq_find_t f2 = {unknown, sizeof unknown, "", ""};
    assert_true(itest_consume_until("identity.audit.dlq", match_dlq, &f2, 30000));
    assert_string_equal(f2.reason, "unknown_schema");
    dlq_find_t f3 = {buf, len, "", ""};
    assert_true(itest_consume_until("identity.audit.dlq", match_dlq, &f3, 30000));
    assert_string_equal(f3.reason, "key_mismatch");
    free(buf);

    assert_true(dead_lettered() >= before + 3);
}

static void test_metrics_pass_promtool(void **state) {
    (void)state;
    char url[96], *body = NULL;
    assert_int_equal(itest_proc_get(&audit, "/metrics", &body), 200);
    assert_non_null(strstr(body, "processor_consumer_lag"));
    assert_non_null(strstr(body, "processor_events_total"));
    assert_int_equal(itest_promtool_check(body), 0);
    free(body);
    /* And the stack's own gov-audit, which `make run` started. */
    snprintf(url, sizeof url, "%s/metrics", itest_env("GOV_ADMIN_AUDIT", "http://127.0.0.1:8704"));
    body = NULL;
    assert_int_equal(itest_http_get(url, &body), 200);
    assert_int_equal(itest_promtool_check(body), 0);
    free(body);
}

/* Snapshot of a stream: entry ids and fields, as one string. */
static char *stream_snapshot(const char *key) {
    redisReply *r = NULL;
    char eb[256];
    if (gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XRANGE %s - +", key) != GOV_OK)
        fail_msg("XRANGE: %s", eb);
    size_t cap = 1 << 16, used = 0;
    char *s = malloc(cap);
    s[0] = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *ent = r->element[i];
        for (size_t k = 0; k <= ent->element[1]->elements; k++) {
            const char *v = k == 0 ? ent->element[0]->str : ent->element[1]->element[k - 1]->str;
            size_t l = strlen(v);
            if (used + l + 2 > cap) {
                cap = (used + l + 2) * 2;
                s = realloc(s, cap);
            }
            memcpy(s + used, v, l);
            used += l;
            s[used++] = '\n';
            s[used] = 0;
        }
    }
    freeReplyObject(r);
    return s;
}

static void test_replay_from_offset_zero_leaves_stream_identical(void **state) {
    (void)state;
    char key[128];
    snprintf(key, sizeof key, "audit:{%s}", tenant_main);
    char *before = stream_snapshot(key);
    assert_true(strlen(before) > 0);

    /* A second gov-audit with a brand-new group replays identity.audit
     * from offset 0 into the same Redis. */
    itest_proc_t replay = {0};
    itest_proc_start(&replay, "gov-audit", COMPONENT "-replay", audit_env,
                     "itest-gov-audit-replay.log");
    /* Caught up = all three partitions report lag 0. */
    int caught_up = itest_wait_caught_up(replay.port, 3, ITEST_HISTORY_MS);
    const char *flt[] = {"outcome=\"duplicate\"", NULL};
    double dups = itest_proc_metric(&replay, "processor_events_total", flt);
    int stopped = itest_proc_stop(&replay);
    assert_true(caught_up);
    assert_true(dups >= 20); /* at least this run's events were seen again */
    assert_int_equal(stopped, 0);

    char *after = stream_snapshot(key);
    assert_string_equal(before, after);
    free(before);
    free(after);
    char out[512];
    assert_int_equal(govctl_verify(tenant_main, out, sizeof out), 0);
}

static void test_kill9_mid_stream_loses_and_duplicates_nothing(void **state) {
    (void)state;
    enum { N = 300 };
    char tenant[64], key[128];
    static char ids[N][37];
    itest_unique("t", tenant, sizeof tenant);
    snprintf(key, sizeof key, "audit:{%s}", tenant);

    /* Produce steadily; once gov-audit has materialized some of them, kill -9
     * it while production goes on, so the kill lands mid-stream. */
    long long at_kill = -1;
    int32_t last_partition = -1;
    int64_t last_offset = -1;
    for (int i = 0; i < N; i++) {
        json_t *e = itest_audit_event(tenant, "kill.test");
        snprintf(ids[i], 37, "%s", json_string_value(json_object_get(e, "event_id")));
        if (i == N - 1) {
            /* the last one acknowledged, to know where the stream ends */
            itest_produce_event_at("identity.audit", "AuditEvent", e, &last_partition, &last_offset);
        } else {
            unsigned char *buf = NULL;
            size_t len = 0;
            char eb[256];
            assert_int_equal(gov_avro_encode(itest_avro(), "AuditEvent", e, &buf, &len, eb, sizeof eb), GOV_OK);
            assert_int_equal(gov_kafka_produce(itest_producer(), "identity.audit", tenant, strlen(tenant),
                                               buf, len, NULL, 0), GOV_OK);
            free(buf);
        }
        json_decref(e);
        if (i % 10 == 9) {
            itest_sleep_ms(20);
            if (audit.pid > 0 && itest_wait_xlen(key, 10, 1) >= 10) {
                kill(audit.pid, SIGKILL);
                waitpid(audit.pid, NULL, 0);
                audit.pid = -1;
                at_kill = itest_wait_xlen(key, 0, 1);
            }
        }
    }
    assert_int_equal(gov_kafka_producer_flush(itest_producer(), 15000), GOV_OK);
    assert_true(audit.pid == -1); /* it was killed */
    assert_true(at_kill >= 10 && at_kill < N); /* mid-stream */
    print_message("gov-audit killed with %lld of %d events materialized\n", at_kill, N);
    start_audit(); /* same group: resumes from the committed offsets */
    assert_int_equal(itest_wait_xlen(key, N, 60000), N);
    /* and not one more once it has handled the last message of the tenant's
     * partition (its offset key is written after the entry) */
    if (!itest_wait_offset(itest_redis(), audit.group, "identity.audit", last_partition,
                           last_offset, 60000))
        fail_msg("the restarted gov-audit did not reach offset %lld of identity.audit/%d",
                 (long long)last_offset, (int)last_partition);
    assert_int_equal(itest_wait_xlen(key, N, 10), N);

    /* Every event exactly once, in production order. */
    redisReply *r = NULL;
    char eb[256];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XRANGE %s - +", key), GOV_OK);
    assert_int_equal(r->elements, N);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        const char *eid = NULL;
        for (size_t k = 0; k + 1 < f->elements; k += 2)
            if (strcmp(f->element[k]->str, "event_id") == 0)
                eid = f->element[k + 1]->str;
        assert_string_equal(eid, ids[i]);
    }
    freeReplyObject(r);
    char out[512];
    assert_int_equal(govctl_verify(tenant, out, sizeof out), 0);
}

/* Batches (docs/contracts.md, "Audit batches"): a burst of AuditEvents and
 * PolicyDecisions (through the relay) lies in Kafka before gov-audit is
 * killed -9 while it works through it in batches - between a batch's
 * pipelined writes and its offsets, or amid the pipeline.  Restarted in the
 * same group, it replays the unfinished batch: every event is chained
 * exactly once, every decision materialized, the chain verifies; and it did
 * work in batches (processor_batch_messages: more than one message per
 * batch on average - one Redis round trip per batch). */
static int cmp_id(const void *a, const void *b) {
    return strcmp(a, b);
}

static void test_kill9_mid_batch_chains_every_event_once(void **state) {
    (void)state;
    enum { N = 8000 };   /* enough that a kill lands mid-burst on an idle machine too */
    char tenant[64], key[128], eb[256];
    static char ids[N][37], dids[N][37];
    itest_unique("t", tenant, sizeof tenant);
    snprintf(key, sizeof key, "audit:{%s}", tenant);

    /* the private gov-audit is stopped while the burst is produced, so
     * that the burst waits in Kafka and is taken in full batches */
    assert_int_equal(itest_proc_stop(&audit), 0);
    int ndec = 0;
    for (int i = 0; i < N; i++) {
        int decision = i % 2 == 1;
        json_t *e;
        if (decision) {
            gov_uuid_v7(dids[ndec]);
            e = itest_decision_event(tenant, dids[ndec++]);
        } else {
            e = itest_audit_event(tenant, "batch.test");
        }
        snprintf(ids[i], 37, "%s", json_string_value(json_object_get(e, "event_id")));
        unsigned char *buf = NULL;
        size_t len = 0;
        const char *type = decision ? "PolicyDecision" : "AuditEvent";
        assert_int_equal(gov_avro_encode(itest_avro(), type, e, &buf, &len, eb, sizeof eb), GOV_OK);
        assert_int_equal(gov_kafka_produce(itest_producer(),
                                           decision ? "policy.decisions" : "identity.audit", tenant,
                                           strlen(tenant), buf, len, NULL, 0), GOV_OK);
        free(buf);
        json_decref(e);
    }
    assert_int_equal(gov_kafka_producer_flush(itest_producer(), 15000), GOV_OK);

    /* batches of 50, so that the kill below lands mid-burst: with the
     * default 500 the burst is four pipelines, all of them chained before
     * the first look on an idle machine */
    static const char *const small_batches[] = {env_port, ITEST_NO_RELAY, "GOV_BATCH_MAX=50", NULL};
    /* not itest_proc_start: with one script per tenant and batch, gov-audit
     * chains the whole burst before its /readyz would first answer 200 */
    itest_proc_spawn(&audit, "gov-audit", COMPONENT, small_batches, "itest-gov-audit.log");
    /* kill -9 as soon as some - not all - of the burst is chained */
    long long at_kill = -1;
    for (int t = 0; t < 60000 && at_kill < 0; t++) {
        long long x = itest_wait_xlen(key, 0, 1);
        if (x >= 50) {
            kill(audit.pid, SIGKILL);
            waitpid(audit.pid, NULL, 0);
            audit.pid = -1;
            at_kill = itest_wait_xlen(key, 0, 1);
        } else {
            itest_sleep_ms(1);
        }
    }
    if (!(at_kill >= 50 && at_kill < N))
        fail_msg("gov-audit was killed with %lld of %d events chained: not mid-burst", at_kill, N);
    print_message("gov-audit killed -9 with %lld of %d events chained\n", at_kill, N);

    /* same group: resumes from the committed offsets */
    itest_proc_start(&audit, "gov-audit", COMPONENT, small_batches, "itest-gov-audit.log");
    assert_int_equal(itest_wait_xlen(key, N, 60000), N);
    /* the burst in batches: on average well over one message per batch */
    double batches = itest_proc_metric(&audit, "processor_batch_messages_count",
                                       (const char *[]){"processor=\"gov-audit\"", NULL});
    double messages = itest_proc_metric(&audit, "processor_batch_messages_sum",
                                        (const char *[]){"processor=\"gov-audit\"", NULL});
    print_message("restarted gov-audit: %.0f messages in %.0f batches\n", messages, batches);
    assert_true(batches > 0 && messages >= 4 * batches);

    /* every event exactly once, each tenant's chain intact */
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XRANGE %s - +", key), GOV_OK);
    assert_int_equal(r->elements, N);
    static char seen[N][37];
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2)
            if (strcmp(f->element[k]->str, "event_id") == 0)
                snprintf(seen[i], 37, "%s", f->element[k + 1]->str);
    }
    freeReplyObject(r);
    qsort(seen, N, 37, cmp_id);
    qsort(ids, N, 37, cmp_id);
    for (int i = 0; i < N; i++)
        assert_string_equal(seen[i], ids[i]);
    for (int i = 0; i < ndec; i++) {
        char dkey[200];
        snprintf(dkey, sizeof dkey, "policy:decision:{%s}:%.36s", tenant, dids[i]);
        assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "EXISTS %s", dkey), GOV_OK);
        assert_int_equal(r->integer, 1);
        freeReplyObject(r);
    }
    char out[512];
    assert_int_equal(govctl_verify(tenant, out, sizeof out), 0);
}

/* Rewrites the stream with the same ids and fields except `change` applied
 * to entry `at` (0-based): "payload" alters its payload, "delete" drops it. */
static void rewrite_stream(const char *key, size_t at, const char *change) {
    redisReply *r = NULL;
    char eb[256];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XRANGE %s - +", key), GOV_OK);
    redisReply *d = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &d, eb, sizeof eb, "DEL %s", key), GOV_OK);
    freeReplyObject(d);
    for (size_t i = 0; i < r->elements; i++) {
        if (i == at && strcmp(change, "delete") == 0)
            continue;
        redisReply *ent = r->element[i], *f = ent->element[1];
        const char *argv[64];
        size_t n = 0;
        argv[n++] = "XADD";
        argv[n++] = key;
        argv[n++] = ent->element[0]->str;
        for (size_t k = 0; k < f->elements && n < 62; k += 2) {
            argv[n++] = f->element[k]->str;
            if (i == at && strcmp(f->element[k]->str, "payload") == 0)
                argv[n++] = "{\"action\":\"token.issued\",\"tenant\":\"forged\"}";
            else
                argv[n++] = f->element[k + 1]->str;
        }
        assert_int_equal(gov_redis_command(itest_redis(), NULL, (int)n, argv, NULL, eb, sizeof eb), GOV_OK);
    }
    freeReplyObject(r);
}

static void test_tampered_entry_is_found_by_govctl(void **state) {
    (void)state;
    char tenant[64], key[128], out[1024];
    itest_unique("t", tenant, sizeof tenant);
    produce_audit_events(tenant, 10, NULL);
    snprintf(key, sizeof key, "audit:{%s}", tenant);
    assert_int_equal(itest_wait_xlen(key, 10, 20000), 10);
    assert_int_equal(govctl_verify(tenant, out, sizeof out), 0);

    rewrite_stream(key, 4, "payload");
    assert_int_equal(govctl_verify(tenant, out, sizeof out), 1);
    assert_non_null(strstr(out, "position=5"));
    assert_non_null(strstr(out, "does not match its contents"));

    /* Put the real entry back by rewriting from a fresh chain, then delete one. */
    char t2[64], k2[128];
    itest_unique("t", t2, sizeof t2);
    produce_audit_events(t2, 6, NULL);
    snprintf(k2, sizeof k2, "audit:{%s}", t2);
    assert_int_equal(itest_wait_xlen(k2, 6, 20000), 6);
    rewrite_stream(k2, 2, "delete");
    assert_int_equal(govctl_verify(t2, out, sizeof out), 1);
    assert_non_null(strstr(out, "position=3"));

    /* A cut tail is found through the head record. */
    char t3[64], k3[128];
    itest_unique("t", t3, sizeof t3);
    produce_audit_events(t3, 4, NULL);
    snprintf(k3, sizeof k3, "audit:{%s}", t3);
    assert_int_equal(itest_wait_xlen(k3, 4, 20000), 4);
    rewrite_stream(k3, 3, "delete");
    assert_int_equal(govctl_verify(t3, out, sizeof out), 1);
    assert_non_null(strstr(out, "head does not match"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_is_materialized_in_order),
        cmocka_unit_test(test_decision_is_materialized_with_ttl),
        cmocka_unit_test(test_second_decision_with_a_known_id_is_a_counted_conflict),
        cmocka_unit_test(test_forged_decision_cannot_preempt_the_relayed_one),
        cmocka_unit_test(test_prepublished_audit_id_cannot_hide_the_real_event),
        cmocka_unit_test(test_new_relay_group_relays_earlier_decisions),
        cmocka_unit_test(test_wrong_typed_key_is_named_and_degraded),
        cmocka_unit_test(test_lowered_tenant_applied_offset_rebuilds),
        cmocka_unit_test(test_poison_goes_to_dlq_and_next_event_is_materialized),
        cmocka_unit_test(test_metrics_pass_promtool),
        cmocka_unit_test(test_replay_from_offset_zero_leaves_stream_identical),
        cmocka_unit_test(test_kill9_mid_stream_loses_and_duplicates_nothing),
        cmocka_unit_test(test_kill9_mid_batch_chains_every_event_once),
        cmocka_unit_test(test_tampered_entry_is_found_by_govctl),
    };
    return cmocka_run_group_tests_name("gov-audit", tests, setup, teardown);
}
