/* test_rulepacks.c - RulePackPublished -> gov-rulepacks -> Redis + audit.
 *
 * Real processes against the real broker: a private redis-server and a
 * private gov-rulepacks (own consumer group, own admin port, its own
 * rule-pack trust: signer
 * itest-ops for this run's tenants, itest-ops-b for tenant2 only).  Every
 * pack is signed by itest-ops as `govctl rulepack sign` signs, unless the
 * case is about signatures.  Packs are the demo pack of
 * deploy/demo/rulepack-demo.json, re-targeted to a tenant no other run uses
 * and varied by text edits; each is produced to the real policy.rulepacks
 * topic as an Avro RulePackPublished, exactly what `govctl rulepack publish`
 * produces.  Checks are what an operator sees: the Redis keys, the
 * processor's /metrics, the AuditEvents on identity.audit, the DLQ.
 *
 * Expected canonical bytes come from gov_rulepack_canonical_json of the
 * same text (the contract: Redis holds exactly that); expected audit event
 * ids from gov_uuid_v7_derive over the published event id.
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

#include "gov_alloc.h"
#include "gov_rulepack.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

#define TOPIC "policy.rulepacks"
/* The contract limit on rules (gov_rulepack_limits_default): the same for
 * every processor and every edge, not configurable. */
#define MAX_RULES_CONTRACT 500

#define COMPONENT "gov-rulepacks-itest"

static pid_t redis_pid = -1;
static int redis_port;
/* A deployment of its own: the stack's gov-rulepacks consumes the same topic
 * and audits the same events under its own name. */
static itest_proc_t proc;
static itest_proc_t edge;   /* a private gov-edge on the private Redis, when running */
static char env_ctrust[600];
static char tenant[64], tenant2[64];
static char env_redis[48], env_brokers[300], env_trust[600], tenant3[64], tenant4[64];
/* keys[i] signs as ids[i]: the trusted operator, an operator trusted for
 * tenant2 only, and a key that is in no trust file posing as itest-ops. */
static EVP_PKEY *keys[3];
static const char *const ids[] = {"itest-ops", "itest-ops-b", "itest-ops"};
static const int by_ops[] = {0, -1};
static char v1_canonical_sha[GOV_SHA256_HEXLEN + 1];
static char *v1_canonical;         /* what Redis must hold while v1 is current */
static char v1_event_id[GOV_UUID_STRLEN + 1];
static json_t *v1_event;           /* the accepted event, to deliver it again */

/* --- helpers ------------------------------------------------------------------ */

/* The demo pack for tenant t at version v, then `from` -> `to` when given. */
static char *demo_pack(const char *t, const char *v, const char *from, const char *to) {
    char *text = itest_read_file("deploy/demo/rulepack-demo.json", NULL), buf[128];
    snprintf(buf, sizeof buf, "\"tenant\": \"%s\"", t);
    char *a = itest_replace_once(text, "\"tenant\": \"demo\"", buf);
    snprintf(buf, sizeof buf, "\"version\": \"%s\"", v);
    char *b = itest_replace_once(a, "\"version\": \"1.1.0\"", buf);
    free(text);
    free(a);
    if (from == NULL)
        return b;
    char *c = itest_replace_once(b, from, to);
    free(b);
    return c;
}

/* Canonical JSON and its SHA-256 hex of a valid pack text, by the library. */
static char *canonical_of(const char *text, char sha[GOV_SHA256_HEXLEN + 1]) {
    gov_rulepack_t *p = NULL;
    char eb[512];
    if (gov_rulepack_parse(text, strlen(text), NULL, &p, NULL, eb, sizeof eb) != GOV_OK)
        fail_msg("test pack does not parse: %s", eb);
    size_t len;
    const char *c = gov_rulepack_canonical_json(p, &len);
    char *out = strndup(c, len);
    unsigned char md[GOV_SHA256_LEN];
    assert_int_equal(gov_sha256(c, len, md), GOV_OK);
    gov_hex_encode(md, GOV_SHA256_LEN, sha);
    gov_rulepack_free(p);
    return out;
}

/* A RulePackPublished event for the pack text, signed as who[] says. */
static json_t *event_signed(const char *t, const char *pack_id, const char *version,
                            const char *text, const int *who) {
    char id[GOV_UUID_STRLEN + 1];
    assert_int_equal(gov_uuid_v7(id), GOV_OK);
    json_t *ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "event_id", id, "occurred_at",
                           (json_int_t)gov_now_micros(), "tenant", t, "pack_id", pack_id,
                           "version", version, "rulepack_json", text, "published_by",
                           "itest-rulepacks");
    itest_sign_rulepack_event(ev, keys, ids, who);
    return ev;
}

/* The same, signed by the trusted operator. */
static json_t *event_for(const char *t, const char *pack_id, const char *version,
                         const char *text) {
    return event_signed(t, pack_id, version, text, by_ops);
}

static const char *ev_id(const json_t *ev) {
    return json_string_value(json_object_get(ev, "event_id"));
}

typedef struct produced {
    int32_t partition;
    int64_t offset;
} produced_t;

static produced_t publish(json_t *ev) {
    produced_t p = {-1, -1};
    itest_produce_event_at(TOPIC, "RulePackPublished", ev, &p.partition, &p.offset);
    return p;
}

/* GET key from the private Redis: new string (free) or NULL. */
static char *redis_get(const char *fmt, const char *arg) {
    redisReply *r = NULL;
    char eb[200], key[256];
    snprintf(key, sizeof key, fmt, arg);
    const char *argv[] = {"GET", key};
    assert_int_equal(gov_redis_command(itest_redis(), &r, 2, argv, NULL, eb, sizeof eb), GOV_OK);
    char *s = r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : NULL;
    freeReplyObject(r);
    return s;
}

static char *redis_hget(const char *t, const char *field) {
    redisReply *r = NULL;
    char eb[200];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                        "HGET policy:rulepack:{%s}:meta %s", t, field), GOV_OK);
    char *s = r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : NULL;
    freeReplyObject(r);
    return s;
}

/* Waits until gov-rulepacks has finished the message at p (its offset key
 * in Redis is written last, after any audit event was acknowledged). */
static void wait_processed_within(produced_t p, int timeout_ms) {
    if (!itest_wait_offset(itest_redis(), proc.group, TOPIC, p.partition, p.offset, timeout_ms))
        fail_msg("gov-rulepacks did not process offset %lld of partition %d within %d s",
                 (long long)p.offset, (int)p.partition, timeout_ms / 1000);
}

static void wait_processed(produced_t p) { wait_processed_within(p, 30000); }

static char *metrics_text(void) {
    char *body = NULL;
    if (itest_proc_get(&proc, "/metrics", &body) != 200)
        fail_msg("/metrics of gov-rulepacks did not answer");
    return body;
}

/* A metric's value for the tenant and one more label filter (may be NULL);
 * 0 when no sample matched. */
static double metric(const char *name, const char *t, const char *extra) {
    char *body = metrics_text(), f1[128] = "";
    if (t != NULL)
        snprintf(f1, sizeof f1, "tenant=\"%s\"", t);
    const char *flt[] = {t ? f1 : extra, t ? extra : NULL, NULL};
    double v = itest_metric(body, name, flt);
    free(body);
    return v < 0 ? 0 : v;
}

static double rejected(const char *t, const char *reason) {
    char f[96];
    snprintf(f, sizeof f, "reason=\"%s\"", reason);
    return metric("rulepack_rejected_total", t, f);
}

static double events(const char *outcome) {
    char f[96];
    snprintf(f, sizeof f, "outcome=\"%s\"", outcome);
    return metric("processor_events_total", NULL, f);
}

static void assert_current_is(const char *t, const char *canonical) {
    char *cur = redis_get("policy:rulepack:{%s}", t);
    if (cur == NULL || strcmp(cur, canonical) != 0)
        fail_msg("policy:rulepack:{%s} changed:\n%s", t, cur ? cur : "(nil)");
    free(cur);
}

/* --- audit events ----------------------------------------------------------------- */

/* AuditEvents on identity.audit whose correlation_id is one of ids[]. */
typedef struct audit_want {
    const char *ids[24];
    json_t *found[24];     /* first AuditEvent seen for ids[i] */
    int copies[24];        /* how many messages carried that event */
    size_t n, nfound;
    const char *tenant_key;
    int32_t partition;     /* of the tenant's audit events, -1 until seen */
    int64_t stop_offset;   /* when >= 0: read up to this offset, then stop */
    const char *type;      /* the schema looked for: NULL for AuditEvent */
} audit_want_t;

/* Events emitted by COMPONENT (the stack's gov-rulepacks emits its own for
 * the same input) that refer to one of ids[]: AuditEvents by their
 * correlation_id, RulePackUpdated (w->type) by its published_event_id. */
static int collect_audit(void *opaque, const gov_kafka_msg_t *m) {
    audit_want_t *w = opaque;
    int at_end = w->stop_offset >= 0 && m->partition == w->partition &&
                 m->offset >= w->stop_offset;
    if (m->key_len != strlen(w->tenant_key) || memcmp(m->key, w->tenant_key, m->key_len) != 0)
        return at_end;
    json_t *ev = NULL;
    const char *type;
    char eb[200];
    if (gov_avro_decode(itest_avro(), m->value, m->len, &ev, &type, eb, sizeof eb) != GOV_OK)
        return at_end;
    w->partition = m->partition;
    const char *want_type = w->type ? w->type : "AuditEvent";
    const char *corr = json_string_value(json_object_get(
        ev, w->type ? "published_event_id" : "correlation_id"));
    const char *comp = json_string_value(json_object_get(ev, "component"));
    if (strcmp(type, want_type) != 0 || comp == NULL || strcmp(comp, COMPONENT) != 0)
        corr = NULL; /* another deployment's event about the same input */
    for (size_t i = 0; corr && i < w->n; i++) {
        if (strcmp(w->ids[i], corr) != 0)
            continue;
        if (w->found[i] == NULL) {
            w->found[i] = json_incref(ev);
            w->nfound++;
        }
        w->copies[i]++;
    }
    json_decref(ev);
    if (w->stop_offset >= 0)
        return at_end;
    return w->nfound == w->n;
}

static void audit_want_clear(audit_want_t *w) {
    for (size_t i = 0; i < w->n; i++)
        json_decref(w->found[i]);
}

/* The AuditEvent's details_json, parsed. */
static json_t *details_of(const json_t *audit) {
    const char *d = json_string_value(json_object_get(audit, "details_json"));
    json_t *j = d ? json_loads(d, 0, NULL) : NULL;
    if (j == NULL)
        fail_msg("audit event without a JSON details_json");
    return j;
}

static void derived_id(const json_t *ev, const char *action, char out[GOV_UUID_STRLEN + 1]) {
    char seed[128];
    snprintf(seed, sizeof seed, COMPONENT "/%s/%s", ev_id(ev), action);
    json_int_t at = json_integer_value(json_object_get(ev, "occurred_at"));
    assert_int_equal(gov_uuid_v7_derive((uint64_t)(at / 1000), seed, out), GOV_OK);
}

/* The private gov-rulepacks starts its new group at the earliest offsets and
 * first works through what earlier runs left on the topic.  A marker (a
 * pack that is not JSON, for a throw-away tenant) is produced into every
 * partition and waited for: after that, every event counted is this run's. */
static void catch_up(void) {
    int n = itest_topic_partitions(TOPIC), seen = 0;
    char done[64] = {0};
    for (int tries = 0; seen < n && tries < 200; tries++) {
        char t[64];
        itest_unique("rp-marker", t, sizeof t);
        json_t *ev = event_for(t, "marker", "1", "not a pack");
        produced_t p = publish(ev);
        json_decref(ev);
        if (p.partition >= 0 && p.partition < 64 && !done[p.partition]) {
            /* the whole history first: it grows with every run on a stack,
             * and the sanitizer build compiles each pack slowly */
            wait_processed_within(p, ITEST_HISTORY_MS);
            done[p.partition] = 1;
            seen++;
        }
    }
    if (seen < n)
        fail_msg("could not reach every partition of %s with a marker", TOPIC);
}

/* --- setup ------------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    redis_pid = itest_private_redis("rulepacks", &redis_port);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_redis); /* itest_redis() talks to the private Redis */
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    itest_unique("rp", tenant, sizeof tenant);
    itest_unique("rp2", tenant2, sizeof tenant2);
    itest_unique("rp3", tenant3, sizeof tenant3);
    itest_unique("rp4", tenant4, sizeof tenant4);
    for (int i = 0; i < 3; i++)
        keys[i] = itest_ed25519_new();
    char *pem0 = itest_public_pem(keys[0]), *pem1 = itest_public_pem(keys[1]);
    json_t *trust = json_pack(
        "{s:{s:s, s:s}, s:{s:{s:i, s:[s]}, s:{s:i, s:[s, s]}, s:{s:i, s:[s]}, s:{s:i, s:[s]}}}",
        "signers", ids[0], pem0, ids[1], pem1, "tenants", tenant, "threshold", 1, "signers",
        ids[0], tenant2, "threshold", 1, "signers", ids[0], ids[1], tenant3, "threshold", 1,
        "signers", ids[0], tenant4, "threshold", 1, "signers", ids[0]);
    const char *trust_path = itest_log_path("itest-rulepacks-trust.json");
    assert_int_equal(json_dump_file(trust, trust_path, 0), 0);
    json_decref(trust);
    free(pem0);
    free(pem1);
    snprintf(env_trust, sizeof env_trust, "GOV_RULEPACK_TRUST_FILE=%s", trust_path);
    const char *env[] = {env_redis, env_brokers, env_trust, NULL};
    itest_proc_start(&proc, "gov-rulepacks", COMPONENT, env, "itest-gov-rulepacks.log");
    catch_up();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_proc_stop(&edge);
    rc |= itest_proc_stop(&proc);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    free(v1_canonical);
    json_decref(v1_event);
    for (int i = 0; i < 3; i++)
        EVP_PKEY_free(keys[i]);
    return rc;
}

/* --- tests ---------------------------------------------------------------------------- */

static void test_accepted_pack_is_materialized(void **state) {
    (void)state;
    char *text = demo_pack(tenant, "1.0.0", NULL, NULL);
    v1_canonical = canonical_of(text, v1_canonical_sha);
    json_t *ev = event_for(tenant, "demo-baseline", "1.0.0", text);
    produced_t p = publish(ev);
    wait_processed(p);
    free(text);

    /* the canonical JSON, byte for byte; the meta hash; the index */
    assert_current_is(tenant, v1_canonical);
    char *v = redis_hget(tenant, "version");
    assert_string_equal(v, "1.0.0");
    free(v);
    v = redis_hget(tenant, "rules");
    assert_string_equal(v, "12");
    free(v);
    v = redis_hget(tenant, "patterns");
    assert_string_equal(v, "20");
    free(v);
    v = redis_hget(tenant, "sha256");
    assert_string_equal(v, v1_canonical_sha);
    free(v);
    v = redis_hget(tenant, "event_id");
    assert_string_equal(v, ev_id(ev));
    free(v);
    v = redis_hget(tenant, "previous_version");
    assert_string_equal(v, "");
    free(v);
    /* who signed, and the signatures themselves: what every edge verifies */
    v = redis_hget(tenant, "signers");
    assert_string_equal(v, "itest-ops");
    free(v);
    v = redis_hget(tenant, "signatures");
    json_t *stored = json_loads(v ? v : "", 0, NULL);
    assert_true(json_equal(stored, json_object_get(ev, "signatures")));
    json_decref(stored);
    free(v);
    redisReply *r = NULL;
    char eb[200];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                        "SISMEMBER gov:{tenants}:rulepack %s", tenant), GOV_OK);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_true(metric("rulepack_accepted_total", tenant, NULL) == 1);

    /* the AuditEvent, with the id derived from the published event */
    audit_want_t w = {.ids = {ev_id(ev)}, .n = 1, .tenant_key = tenant, .partition = -1,
                      .stop_offset = -1};
    assert_true(itest_consume_until("identity.audit", collect_audit, &w, 60000));
    json_t *a = w.found[0];
    char want_id[GOV_UUID_STRLEN + 1];
    derived_id(ev, "rulepack.accepted", want_id);
    assert_string_equal(json_string_value(json_object_get(a, "event_id")), want_id);
    assert_string_equal(json_string_value(json_object_get(a, "action")), "rulepack.accepted");
    assert_string_equal(json_string_value(json_object_get(a, "outcome")), "success");
    assert_string_equal(json_string_value(json_object_get(a, "component")), COMPONENT);
    assert_string_equal(json_string_value(json_object_get(a, "actor")), "itest-rulepacks");
    assert_string_equal(json_string_value(json_object_get(a, "subject")), "demo-baseline@1.0.0");
    json_t *d = details_of(a);
    assert_string_equal(json_string_value(json_object_get(d, "pack_id")), "demo-baseline");
    assert_string_equal(json_string_value(json_object_get(d, "version")), "1.0.0");
    assert_int_equal(json_integer_value(json_object_get(d, "rules")), 12);
    assert_string_equal(json_string_value(json_object_get(d, "sha256")), v1_canonical_sha);
    assert_true(json_is_null(json_object_get(d, "previous_version")));
    assert_string_equal(json_string_value(json_object_get(d, "signers")), "itest-ops");
    json_decref(d);
    audit_want_clear(&w);
    snprintf(v1_event_id, sizeof v1_event_id, "%s", ev_id(ev));
    v1_event = ev;
}

typedef struct bad_case {
    const char *reason;
    const char *error_part;   /* must occur in the audit's details.error */
    const char *field;        /* details.field, NULL: not checked */
    json_t *ev;
} bad_case_t;

/* A pack of n rules: the demo's, plus copies of pii.email under new ids. */
static char *pack_with_rules(const char *t, size_t n) {
    char *text = demo_pack(t, "2.0.0", NULL, NULL);
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    json_t *rules = json_object_get(doc, "rules");
    for (size_t i = json_array_size(rules); i < n; i++) {
        json_t *r = json_deep_copy(json_array_get(rules, 0));
        char id[32];
        snprintf(id, sizeof id, "extra.rule_%02zu", i);
        json_object_set_new(r, "id", json_string(id));
        json_array_append_new(rules, r);
    }
    char *out = json_dumps(doc, JSON_INDENT(1));
    json_decref(doc);
    return out;
}

static void test_every_invalid_pack_is_rejected_with_its_reason(void **state) {
    (void)state;
    assert_non_null(v1_canonical);
    bad_case_t cases[24];
    size_t n = 0;
    char *t;
#define PACK_CASE(reason_, part_, field_, from_, to_)                                            \
    do {                                                                                         \
        t = demo_pack(tenant, "2.0.0", from_, to_);                                              \
        cases[n++] = (bad_case_t){reason_, part_, field_,                                        \
                                  event_for(tenant, "demo-baseline", "2.0.0", t)};               \
        free(t);                                                                                 \
    } while (0)

    PACK_CASE("duplicate_id", "rules[2] (pii.email): id duplicates rules[0]", "id",
              "\"id\": \"pii.us_ssn\"", "\"id\": \"pii.email\"");
    PACK_CASE("out_of_range", "rules[1] (pii.payment_card): weight 1.5 is not in [0,1]", "weight",
              "\"weight\": 0.35, \"effect\": \"add\", \"message\": \"prompt contains what looks like a payment",
              "\"weight\": 1.5, \"effect\": \"add\", \"message\": \"prompt contains what looks like a payment");
    PACK_CASE("too_many_decimals",
              "rules[2] (pii.us_ssn): weight 0.3500001 has more than 6 decimal places", "weight",
              "\"weight\": 0.35, \"effect\": \"add\", \"message\": \"prompt contains what looks like a US",
              "\"weight\": 0.3500001, \"effect\": \"add\", \"message\": \"prompt contains what looks like a US");
    PACK_CASE("invalid_pattern",
              "rules[4] (injection.persona_jailbreak): match.prompt[0].regex is refused by Vectorscan",
              "match.prompt[0].regex", "(dan|an? (unrestricted", "(dan|an? ((unrestricted");
    PACK_CASE("unknown_field", "rules[9] (role.junior_export): priority is not a known member",
              "priority", "\"id\": \"role.junior_export\",",
              "\"id\": \"role.junior_export\", \"priority\": 3,");
    PACK_CASE("invalid_json", "pack is not valid JSON", NULL,
              "\"rules\": [", "\"rules\": [[");
    t = pack_with_rules(tenant, MAX_RULES_CONTRACT + 1);
    cases[n++] = (bad_case_t){"too_many_rules", "rules holds 501 rules (limit 500)", "rules",
                              event_for(tenant, "demo-baseline", "2.0.0", t)};
    free(t);
    /* valid packs that are not signed as the rule-pack trust requires */
    static const int nobody[] = {-1}, by_ops_b[] = {1, -1}, by_rogue[] = {2, -1};
    t = demo_pack(tenant, "2.0.0", NULL, NULL);
    cases[n++] = (bad_case_t){"no_signatures", "no signature", "signatures",
                              event_signed(tenant, "demo-baseline", "2.0.0", t, nobody)};
    /* itest-ops-b is trusted, for tenant2 only: no weight here */
    cases[n++] = (bad_case_t){"untrusted_signer", "\"itest-ops-b\" is not a trusted signer",
                              "signatures",
                              event_signed(tenant, "demo-baseline", "2.0.0", t, by_ops_b)};
    cases[n++] = (bad_case_t){"invalid_signature",
                              "the signature of trusted signer \"itest-ops\" does not verify",
                              "signatures",
                              event_signed(tenant, "demo-baseline", "2.0.0", t, by_rogue)};
    free(t);
    /* a signed pack of another version than the signed one: signatures of
     * the 2.0.0 pack carried by a 2.0.1 pack (the digest covers it all) */
    t = demo_pack(tenant, "2.0.0", NULL, NULL);
    json_t *signed_200 = event_for(tenant, "demo-baseline", "2.0.0", t);
    free(t);
    t = demo_pack(tenant, "2.0.1", NULL, NULL);
    json_t *ev_201 = event_signed(tenant, "demo-baseline", "2.0.1", t, nobody);
    json_object_set(ev_201, "signatures", json_object_get(signed_200, "signatures"));
    json_decref(signed_200);
    cases[n++] = (bad_case_t){"invalid_signature", "does not verify", "signatures", ev_201};
    free(t);
    /* valid packs that are not what the event announces; the first is
     * signed for tenant2 by a signer trusted there, and published for
     * tenant: refused whatever its signatures */
    t = demo_pack(tenant2, "2.0.0", NULL, NULL);
    cases[n++] = (bad_case_t){"tenant_mismatch", tenant2, "tenant",
                              event_for(tenant, "demo-baseline", "2.0.0", t)};
    free(t);
    t = demo_pack(tenant, "2.0.0", NULL, NULL);
    cases[n++] = (bad_case_t){"pack_id_mismatch", "is not the event's pack_id \"other-pack\"",
                              "pack_id", event_for(tenant, "other-pack", "2.0.0", t)};
    cases[n++] = (bad_case_t){"version_mismatch", "is not the event's version \"2.0.1\"",
                              "version", event_for(tenant, "demo-baseline", "2.0.1", t)};
    free(t);
    /* valid and announced, but against the current 1.0.0 */
    t = demo_pack(tenant, "0.9.0", NULL, NULL);
    cases[n++] = (bad_case_t){"version_rollback", "version 0.9.0 is not above the current version 1.0.0",
                              "version", event_for(tenant, "demo-baseline", "0.9.0", t)};
    free(t);
    t = demo_pack(tenant, "1.0.0", "\"max_risk_score\": 0.7", "\"max_risk_score\": 0.6");
    cases[n++] = (bad_case_t){"equivocation", "version 1.0.0 is already current with other content",
                              "version", event_for(tenant, "demo-baseline", "1.0.0", t)};
    free(t);
#undef PACK_CASE

    audit_want_t w = {.n = n, .tenant_key = tenant, .partition = -1, .stop_offset = -1};
    for (size_t i = 0; i < n; i++) {
        double before = rejected(tenant, cases[i].reason);
        produced_t p = publish(cases[i].ev);
        wait_processed(p);
        double after = rejected(tenant, cases[i].reason);
        if (after != before + 1)
            fail_msg("case %zu: rulepack_rejected_total{reason=\"%s\"} went %g -> %g", i,
                     cases[i].reason, before, after);
        /* nothing changed: the last good pack is still current */
        assert_current_is(tenant, v1_canonical);
        w.ids[i] = ev_id(cases[i].ev);
    }
    assert_true(metric("rulepack_accepted_total", tenant, NULL) == 1);

    /* each rejection left an AuditEvent with its reason, naming rule and field */
    if (!itest_consume_until("identity.audit", collect_audit, &w, 60000))
        fail_msg("only %zu of %zu rejection audit events arrived", w.nfound, w.n);
    for (size_t i = 0; i < n; i++) {
        json_t *a = w.found[i];
        char want_id[GOV_UUID_STRLEN + 1];
        derived_id(cases[i].ev, "rulepack.rejected", want_id);
        assert_string_equal(json_string_value(json_object_get(a, "event_id")), want_id);
        assert_string_equal(json_string_value(json_object_get(a, "action")), "rulepack.rejected");
        assert_string_equal(json_string_value(json_object_get(a, "outcome")), "rejected");
        assert_string_equal(json_string_value(json_object_get(a, "reason")), cases[i].reason);
        json_t *d = details_of(a);
        const char *err = json_string_value(json_object_get(d, "error"));
        if (err == NULL || strstr(err, cases[i].error_part) == NULL)
            fail_msg("case %s: details.error \"%s\" lacks \"%s\"", cases[i].reason,
                     err ? err : "(none)", cases[i].error_part);
        assert_string_equal(json_string_value(json_object_get(d, "code")), cases[i].reason);
        if (cases[i].field)
            assert_string_equal(json_string_value(json_object_get(d, "field")), cases[i].field);
        assert_string_equal(json_string_value(json_object_get(d, "published_by")), "itest-rulepacks");
        json_decref(d);
        json_decref(cases[i].ev);
    }
    audit_want_clear(&w);
}

/* Reads the tenant's partition of topic (events of `type`, NULL for
 * AuditEvent) to its end: none of COMPONENT's refers to the replay
 * `again`, and the ones for v1's event came at least twice (its first
 * delivery and the redelivery).  w holds what was found (audit_want_clear). */
static void replay_events(audit_want_t *w, const char *topic, const char *type,
                          const char *again) {
    memset(w, 0, sizeof *w);
    w->ids[0] = v1_event_id;   /* first find the partition of the tenant's events */
    w->n = 1;
    w->tenant_key = tenant;
    w->partition = -1;
    w->stop_offset = -1;
    w->type = type;
    assert_true(itest_consume_until(topic, collect_audit, w, 60000));
    int32_t part = w->partition;
    audit_want_clear(w);
    memset(w, 0, sizeof *w);
    w->ids[0] = again;
    w->ids[1] = v1_event_id;
    w->n = 2;
    w->tenant_key = tenant;
    w->partition = part;
    w->stop_offset = itest_high_watermark(topic, part) - 1;
    w->type = type;
    assert_true(itest_consume_until(topic, collect_audit, w, 60000));
    assert_null(w->found[0]);
    assert_int_equal(w->copies[0], 0);
    assert_true(w->copies[1] >= 2);
}

static void test_replays_are_duplicates_and_newer_versions_replace(void **state) {
    (void)state;
    assert_non_null(v1_event);
    const char *reasons[] = {"equivocation", "version_rollback", NULL};
    double rej_before = 0;
    for (int i = 0; reasons[i]; i++)
        rej_before += rejected(tenant, reasons[i]);

    /* 1. the accepted pack published again (a new event): a duplicate */
    double dup_before = events("duplicate");
    char *text = demo_pack(tenant, "1.0.0", NULL, NULL);
    json_t *again = event_for(tenant, "demo-baseline", "1.0.0", text);
    free(text);
    wait_processed(publish(again));
    assert_true(events("duplicate") == dup_before + 1);
    assert_current_is(tenant, v1_canonical);

    /* 2. the accepted event itself delivered again (what a crash between
     *    the Redis write and the audit acknowledgement leaves): a duplicate
     *    that re-emits the accepted audit event under the same id */
    produced_t p = publish(v1_event);
    wait_processed(p);
    assert_true(events("duplicate") == dup_before + 2);
    assert_current_is(tenant, v1_canonical);

    /* Everything gov-rulepacks produced for those two is acknowledged (the
     * offset key is written after it): read the tenant's partitions of
     * identity.audit and policy.rulepacks.updated to their ends.  No audit
     * event and no RulePackUpdated for the re-published pack (replays are
     * silent); the accepted audit event and the update of v1 at least
     * twice, every copy with its one derived id. */
    audit_want_t w;
    replay_events(&w, "identity.audit", NULL, ev_id(again));
    print_message("accepted audit event of v1 seen %d times, all with one event id\n", w.copies[1]);
    char want_id[GOV_UUID_STRLEN + 1];
    derived_id(v1_event, "rulepack.accepted", want_id);
    assert_string_equal(json_string_value(json_object_get(w.found[1], "event_id")), want_id);
    audit_want_clear(&w);
    replay_events(&w, "policy.rulepacks.updated", "RulePackUpdated", ev_id(again));
    derived_id(v1_event, "rulepack.updated", want_id);
    assert_string_equal(json_string_value(json_object_get(w.found[1], "event_id")), want_id);
    assert_string_equal(json_string_value(json_object_get(w.found[1], "sha256")), v1_canonical_sha);
    assert_string_equal(json_string_value(json_object_get(w.found[1], "version")), "1.0.0");
    audit_want_clear(&w);

    /* 3. a newer version replaces it; v1 goes to the history */
    text = demo_pack(tenant, "1.1.0", "\"max_risk_score\": 0.7", "\"max_risk_score\": 0.65");
    char v2_sha[GOV_SHA256_HEXLEN + 1];
    char *v2_canonical = canonical_of(text, v2_sha);
    json_t *v2 = event_for(tenant, "demo-baseline", "1.1.0", text);
    free(text);
    wait_processed(publish(v2));
    assert_current_is(tenant, v2_canonical);
    assert_true(metric("rulepack_accepted_total", tenant, NULL) == 2);
    char *v = redis_hget(tenant, "previous_version");
    assert_string_equal(v, "1.0.0");
    free(v);
    redisReply *r = NULL;
    char eb[200];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                        "LRANGE policy:rulepack:{%s}:history 0 -1", tenant), GOV_OK);
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->str, v1_canonical_sha);
    freeReplyObject(r);

    /* 4. v1 again, now older than the current: a replay of a pack that was
     *    current, not a rollback */
    text = demo_pack(tenant, "1.0.0", NULL, NULL);
    json_t *old = event_for(tenant, "demo-baseline", "1.0.0", text);
    free(text);
    wait_processed(publish(old));
    assert_true(events("duplicate") == dup_before + 3);
    double rej_after = 0;
    for (int i = 0; reasons[i]; i++)
        rej_after += rejected(tenant, reasons[i]);
    assert_true(rej_after == rej_before);

    /* 5. an older version that never was current: a rollback */
    text = demo_pack(tenant, "1.0.1", NULL, NULL);
    json_t *down = event_for(tenant, "demo-baseline", "1.0.1", text);
    free(text);
    double rb = rejected(tenant, "version_rollback");
    wait_processed(publish(down));
    assert_true(rejected(tenant, "version_rollback") == rb + 1);
    assert_current_is(tenant, v2_canonical);

    /* the accepted audit event of v2 names v1 as the previous version */
    memset(&w, 0, sizeof w);
    w.ids[0] = ev_id(v2);
    w.n = 1;
    w.tenant_key = tenant;
    w.partition = -1;
    w.stop_offset = -1;
    assert_true(itest_consume_until("identity.audit", collect_audit, &w, 60000));
    json_t *d = details_of(w.found[0]);
    assert_string_equal(json_string_value(json_object_get(d, "previous_version")), "1.0.0");
    assert_string_equal(json_string_value(json_object_get(d, "sha256")), v2_sha);
    json_decref(d);
    audit_want_clear(&w);

    free(v2_canonical);
    json_decref(again);
    json_decref(v2);
    json_decref(old);
    json_decref(down);
}

/* How many AuditEvents of COMPONENT on the tenant's partition of
 * identity.audit refer to published event `id` (read to the end). */
static int audit_copies(const char *id) {
    audit_want_t w;
    memset(&w, 0, sizeof w);
    w.ids[0] = id;
    w.n = 1;
    w.tenant_key = tenant;
    w.partition = -1;
    w.stop_offset = -1;
    assert_true(itest_consume_until("identity.audit", collect_audit, &w, 60000));
    int32_t part = w.partition;
    audit_want_clear(&w);
    memset(&w, 0, sizeof w);
    w.ids[0] = id;
    w.n = 1;
    w.tenant_key = tenant;
    w.partition = part;
    w.stop_offset = itest_high_watermark("identity.audit", part) - 1;
    assert_true(itest_consume_until("identity.audit", collect_audit, &w, 60000));
    int copies = w.copies[0];
    audit_want_clear(&w);
    return copies;
}

/* A partition consumed again (its watermark deleted, so gov-rulepacks
 * rebuilds it from the beginning) re-judges nothing the tenant's keys
 * already hold: a rejected rollback below the tenant's applied offset (a
 * second one came after it) is finished without being judged again, the
 * second, at the applied offset, is neither counted nor audited again - the
 * tenant's keys byte for byte as before - and the processor's applied
 * offset for the tenant is the stored one (named in its log). */
static void test_rewound_partition_rejudges_nothing(void **state) {
    (void)state;
    char *text = demo_pack(tenant, "1.0.2", NULL, NULL);
    json_t *down = event_for(tenant, "demo-baseline", "1.0.2", text);   /* a rollback */
    json_t *down2 = event_for(tenant, "demo-baseline", "1.0.2", text);
    free(text);
    double rb = rejected(tenant, "version_rollback");
    produced_t p = publish(down);
    wait_processed(p);
    produced_t p2 = publish(down2);   /* the tenant's applied offset */
    assert_int_equal(p2.partition, p.partition);
    wait_processed(p2);
    assert_true(rejected(tenant, "version_rollback") == rb + 2);

    char k[5][320], want[32];
    snprintf(k[0], sizeof k[0], "policy:rulepack:{%s}", tenant);
    snprintf(k[1], sizeof k[1], "policy:rulepack:{%s}:meta", tenant);
    snprintf(k[2], sizeof k[2], "policy:rulepack:{%s}:history", tenant);
    snprintf(k[3], sizeof k[3], "gov:{tenants}:rulepack");
    snprintf(k[4], sizeof k[4], "gov:applied:{%s}:%s:%s:%d", tenant, proc.group, TOPIC,
             (int)p.partition);
    const char *state_keys[] = {k[0], k[1], k[2], k[3], k[4]};
    snprintf(want, sizeof want, "%lld", (long long)p2.offset);
    char *applied = redis_get("%s", k[4]);
    assert_non_null(applied);
    assert_string_equal(applied, want);   /* written with the verdict */
    free(applied);
    char *before = itest_redis_snapshot(itest_redis(), state_keys, 5);
    double skipped = metric("processor_already_applied_total", NULL, "topic=\"" TOPIC "\"");

    assert_true(itest_replay_partition(&proc, itest_redis(), TOPIC, p.partition, p2.offset,
                                       ITEST_HISTORY_MS));
    char *after = itest_redis_snapshot(itest_redis(), state_keys, 5);
    assert_string_equal(before, after);
    assert_true(metric("processor_already_applied_total", NULL, "topic=\"" TOPIC "\"") > skipped);
    assert_true(rejected(tenant, "version_rollback") == rb + 2);
    assert_int_equal(audit_copies(ev_id(down)), 1);
    assert_int_equal(audit_copies(ev_id(down2)), 1);
    /* the processor's applied offset for the tenant: the stored one */
    assert_true(itest_log_already_applied(&proc, tenant, p.offset, p2.offset));
    free(before);
    free(after);
    json_decref(down);
    json_decref(down2);
}

static void test_damaged_current_pack_decides_nothing(void **state) {
    (void)state;
    /* Redis damaged by hand: a stored current that does not verify decides
     * nothing (review finding 1) - it is counted, and a signed pack replaces
     * it instead of the tenant being locked out (the partition is not
     * blocked either). */
    char eb[200], sha[GOV_SHA256_HEXLEN + 1];
    assert_int_equal(gov_redis_commandf(itest_redis(), NULL, eb, sizeof eb,
                                        "SET policy:rulepack:{%s} %s", tenant2, "{\"not\":\"a pack\"}"),
                     GOV_OK);
    double unverified = metric("rulepack_state_unverified_total", NULL, "reason=");
    char *text = demo_pack(tenant2, "5.0.0", NULL, NULL);
    json_t *ev = event_for(tenant2, "demo-baseline", "5.0.0", text);
    char *canonical = canonical_of(text, sha);
    free(text);
    wait_processed(publish(ev));
    assert_true(rejected(tenant2, "current_pack_unreadable") < 1);
    assert_true(metric("rulepack_state_unverified_total", NULL, "reason=") >=
                unverified + 1);
    assert_current_is(tenant2, canonical);
    json_decref(ev);

    /* The reviewer's repro: the stored pack's version edited to 9999.0.0
     * (its signatures no longer verify); a signed 5.0.1 is not a rollback. */
    char *forged = itest_replace_once(canonical, "\"version\":\"5.0.0\"",
                                      "\"version\":\"9999.0.0\"");
    free(canonical);
    assert_int_equal(gov_redis_commandf(itest_redis(), NULL, eb, sizeof eb,
                                        "SET policy:rulepack:{%s} %s", tenant2, forged), GOV_OK);
    free(forged);
    double rollbacks = rejected(tenant2, "version_rollback");
    text = demo_pack(tenant2, "5.0.1", NULL, NULL);
    ev = event_for(tenant2, "demo-baseline", "5.0.1", text);
    canonical = canonical_of(text, sha);
    free(text);
    wait_processed(publish(ev));
    assert_true(rejected(tenant2, "version_rollback") == rollbacks);
    assert_current_is(tenant2, canonical);
    free(canonical);
    json_decref(ev);

    /* a key of the wrong type: the same refusal, not a retry loop that
     * would block every tenant of the partition */
    char t3[64];
    snprintf(t3, sizeof t3, "%s", tenant3);
    assert_int_equal(gov_redis_commandf(itest_redis(), NULL, eb, sizeof eb,
                                        "HSET policy:rulepack:{%s}:history x y", t3), GOV_OK);
    text = demo_pack(t3, "1.0.0", NULL, NULL);
    ev = event_for(t3, "demo-baseline", "1.0.0", text);
    free(text);
    wait_processed(publish(ev));
    assert_true(rejected(t3, "current_pack_unreadable") == 1);
    char *cur = redis_get("policy:rulepack:{%s}", t3);
    assert_null(cur);
    json_decref(ev);
    assert_true(events("retried") == 0);
}

typedef struct dlq_find {
    const void *value;
    size_t len;
    char reason[64], offset[32], processor[64];
} dlq_find_t;

static int match_dlq(void *opaque, const gov_kafka_msg_t *m) {
    dlq_find_t *f = opaque;
    if (m->len != f->len || memcmp(m->value, f->value, f->len) != 0)
        return 0;
    itest_msg_header(m, "x-gov-dlq-reason", f->reason, sizeof f->reason);
    itest_msg_header(m, "x-gov-source-offset", f->offset, sizeof f->offset);
    itest_msg_header(m, "x-gov-processor", f->processor, sizeof f->processor);
    /* the stack's gov-rulepacks dead-letters the same message: only the
     * private one's copy counts */
    char comp[64] = "";
    itest_msg_header(m, "x-gov-component", comp, sizeof comp);
    return strcmp(f->processor, "gov-rulepacks") == 0 && strcmp(comp, COMPONENT) == 0;
}

static void test_poison_goes_to_dlq(void **state) {
    (void)state;
    double before = events("dead_lettered");
    char nonce[64], garbage[128];
    itest_unique("rulepack-garbage", nonce, sizeof nonce);
    snprintf(garbage, sizeof garbage, "this is not avro %s", nonce);
    itest_produce_raw(TOPIC, tenant, garbage, strlen(garbage));
    dlq_find_t f = {garbage, strlen(garbage), "", "", ""};
    assert_true(itest_consume_until(TOPIC ".dlq", match_dlq, &f, 30000));
    assert_string_equal(f.reason, "undecodable");
    assert_true(f.offset[0] != 0);
    for (int i = 0; i < 100 && events("dead_lettered") < before + 1; i++)
        itest_sleep_ms(50);
    assert_true(events("dead_lettered") >= before + 1);
    /* and the processor goes on: a later pack is still judged */
    char *text = demo_pack(tenant, "0.1.0", NULL, NULL);
    json_t *ev = event_for(tenant, "demo-baseline", "0.1.0", text);
    free(text);
    double rb = rejected(tenant, "version_rollback");
    wait_processed(publish(ev));
    assert_true(rejected(tenant, "version_rollback") == rb + 1);
    json_decref(ev);
}

/* --- what an edge serves -------------------------------------------------------------- */

/* reconcile: "200ms" where Redis is written by hand (no event), "60s"
 * where only the update events may bring a change in time. */
static void start_edge(const char *reconcile) {
    static char env_reconcile[48];
    itest_proc_stop(&edge);   /* one left running by a test that failed */
    snprintf(env_reconcile, sizeof env_reconcile, "GOV_RECONCILE=%s", reconcile);
    const char *env[] = {env_redis, env_ctrust, env_trust, env_reconcile, NULL};
    itest_proc_start(&edge, "gov-edge", NULL, env, "itest-rulepacks-edge.log");
}

/* The rule pack version the edge evaluates tenant t with ("" when it
 * answers otherwise), and the HTTP status. */
static long served_pack(const char *t, char version[64]) {
    char url[256], req[256], *body = NULL;
    snprintf(url, sizeof url, "%s/v1/evaluate", edge.url);
    snprintf(req, sizeof req,
             "{\"tenant\":\"%s\",\"session_id\":\"s-1\",\"user\":\"u\",\"role\":\"analyst\","
             "\"prompt\":\"hello\"}", t);
    long st = itest_http_post_json(url, req, &body);
    json_t *j = json_loads(body ? body : "", 0, NULL);
    snprintf(version, 64, "%s", json_string_value(json_object_get(j, "rulepack_version")) ?: "");
    json_decref(j);
    free(body);
    return st;
}

static double edge_refused(const char *t, const char *reason) {
    return itest_edge_refused(&edge, t, "rulepack", reason);
}

typedef struct pack_wait {
    const char *tenant, *version;
} pack_wait_t;

static int serves_version(void *opaque) {
    pack_wait_t *w = opaque;
    char v[64];
    return served_pack(w->tenant, v) == 200 && strcmp(v, w->version) == 0;
}

typedef struct refusal_wait {
    const char *tenant, *reason;
} refusal_wait_t;

static int refused_now(void *opaque) {
    refusal_wait_t *w = opaque;
    return edge_refused(w->tenant, w->reason) >= 1;
}

/* Stores a constitution for t as gov-constitution stores an accepted one:
 * a canonical (JCS) document, its SHA-256 and itest-ops's signature, which
 * the edge verifies against env_ctrust.  Written here rather than through a
 * private gov-constitution: the constitution is not what is under test, and
 * it is verified all the same. */
static void store_constitution(const char *t) {
    char doc[512], eb[200];
    snprintf(doc, sizeof doc, "{\"rules\":{\"max_risk_score\":0.8,\"permitted_tool_categories\":[\"search\"],"
             "\"prohibited_actions\":[\"exfiltrate\"],\"require_human_approval_above_risk\":0.5},"
             "\"tenant\":\"%s\",\"version\":\"1.0.0\"}", t);
    json_t *b = itest_bundle_event(t, doc, "jcs", "sha256", NULL, keys, ids, by_ops);
    char *sj = json_dumps(json_object_get(b, "signatures"), JSON_COMPACT);
    gov_redis_t *r = itest_redis();
    assert_int_equal(gov_redis_commandf(r, NULL, eb, sizeof eb,
                                        "HSET constitution:{%s} checksum %s hash_alg sha256 "
                                        "canonicalization jcs version 1.0.0 signers itest-ops "
                                        "source itest verified_at 1 signatures %s", t,
                                        json_string_value(json_object_get(b, "checksum")), sj),
                     GOV_OK);
    assert_int_equal(gov_redis_commandf(r, NULL, eb, sizeof eb, "SET constitution:{%s}:doc %s",
                                        t, doc), GOV_OK);
    assert_int_equal(gov_redis_commandf(r, NULL, eb, sizeof eb, "SADD constitution:tenants %s", t),
                     GOV_OK);
    free(sj);
    json_decref(b);
}

/* The edges' constitution trust: itest-ops, for every tenant (the older
 * form); documents name their tenant. */
static void write_constitution_trust(void) {
    const char *ctrust = itest_log_path("itest-rulepacks-ctrust.json");
    itest_write_trust(ctrust, 1, 1, ids, keys);
    snprintf(env_ctrust, sizeof env_ctrust, "GOV_TRUST_FILE=%s", ctrust);
}

static int64_t percentile(int64_t *v, size_t n, int p) {
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    size_t k = (n * (size_t)p + 99) / 100;
    return v[k ? k - 1 : 0];
}

/* The version of tenant t's pack in the private Redis ("" for none). */
static void redis_version(const char *t, char out[64]) {
    char *v = redis_hget(t, "version");
    snprintf(out, 64, "%s", v ? v : "");
    free(v);
}

/* A small signed pack for t at version v: two prompt literals, so what is
 * measured below is propagation, not Vectorscan compiling a large pack
 * (the demo pack's 20 patterns cost ~60 ms of CPU on every replica). */
static char *small_pack(const char *t, const char *v) {
    char *text = malloc(1024);
    snprintf(text, 1024,
             "{\"pack_id\":\"small\",\"tenant\":\"%s\",\"version\":\"%s\",\"rules\":["
             "{\"id\":\"secrets.password\",\"severity\":\"high\",\"weight\":0.3,\"effect\":\"add\","
             "\"message\":\"password\",\"match\":{\"prompt\":[{\"literal\":\"password\"}]}},"
             "{\"id\":\"shell.rm\",\"severity\":\"critical\",\"weight\":0.1,\"effect\":\"deny\","
             "\"message\":\"rm\",\"match\":{\"prompt\":[{\"literal\":\"rm -rf /\"}]}}]}", t, v);
    return text;
}

/* Rule packs are announced after they are materialized (RulePackUpdated):
 * an edge whose reconcile is a minute away serves what Redis holds within
 * the propagation time, also when gov-rulepacks was down while the pack was
 * published.  Measured: from the moment Redis holds a version to the moment
 * the edge evaluates with it, p95 over 20 publications. */
static void test_edge_follows_what_gov_rulepacks_materializes(void **state) {
    (void)state;
    char v[64], ver[16];
    write_constitution_trust();
    store_constitution(tenant4);
    start_edge("60s");

    /* The lag of one publication: from accepted_at (meta: the publication's
     * Kafka timestamp, so the lag includes gov-rulepacks' own work and is
     * if anything over-estimated) to the moment the edge answers with the
     * version,
     * polled every 2 ms.  40 publications. */
    enum { N = 40 };
    int64_t lag_us[N];
    for (int i = 0; i < N; i++) {
        snprintf(ver, sizeof ver, "1.0.%d", i);
        char *text = small_pack(tenant4, ver);
        json_t *ev = event_for(tenant4, "small", ver, text);
        free(text);
        publish(ev);
        json_decref(ev);
        int64_t t0 = gov_mono_micros();
        while (!(served_pack(tenant4, v) == 200 && strcmp(v, ver) == 0)) {
            if (gov_mono_micros() - t0 > 30000000LL)
                fail_msg("version %s not served within 30 s", ver);
            itest_sleep_ms(2);
        }
        int64_t seen = gov_now_micros();
        char *at = redis_hget(tenant4, "accepted_at");
        redis_version(tenant4, v);
        if (at == NULL || strcmp(v, ver) != 0)
            fail_msg("Redis does not hold %s (it holds \"%s\") while the edge serves it", ver, v);
        lag_us[i] = seen - strtoll(at, NULL, 10);
        free(at);
    }
    int64_t p95 = percentile(lag_us, N, 95), p50 = percentile(lag_us, N, 50);
    print_message("edge behind Redis: p50 %lld us, p95 %lld us (%d publications)\n",
                  (long long)p50, (long long)p95, N);
    /* The figure is reported, not asserted: timings on a shared CI machine
     * are noise (the contract's p95 <= 100 ms is measured by this print
     * and in docs/benchmarks.md).  What is asserted is the mechanism: each
     * version was served within 30 s while the edge's reconcile was a
     * minute away, so the update event, not the reconcile, brought it. */

    /* gov-rulepacks down while 2.0.0 is published: Redis and the edge keep
     * 1.0.39; once it is back, the edge serves 2.0.0 within 10 s of its
     * readiness - by the event, the reconcile is a minute away */
    assert_int_equal(itest_proc_stop(&proc), 0);
    char *text = small_pack(tenant4, "2.0.0");
    json_t *ev = event_for(tenant4, "small", "2.0.0", text);
    free(text);
    produced_t p = publish(ev);
    json_decref(ev);
    redis_version(tenant4, v);
    assert_string_equal(v, "1.0.39");
    assert_int_equal(served_pack(tenant4, v), 200);
    assert_string_equal(v, "1.0.39");
    const char *env[] = {env_redis, env_brokers, env_trust, NULL};
    itest_proc_start(&proc, "gov-rulepacks", COMPONENT, env, "itest-gov-rulepacks.log");
    pack_wait_t want = {tenant4, "2.0.0"};
    long ms = itest_wait_for(serves_version, &want, 10000, 5);
    if (ms < 0)
        fail_msg("the edge did not serve 2.0.0 within 10 s of gov-rulepacks' restart");
    wait_processed(p);
    print_message("2.0.0 served %ld ms after gov-rulepacks was ready again\n", ms);
    assert_int_equal(itest_proc_stop(&edge), 0);
}

/* Redis is not a trust root for packs either: a private gov-edge verifies
 * every pack it loads against its own rule-pack trust.  A signed pack copied
 * to another tenant and a forged successor (consistent meta, the signatures
 * of the real pack) are refused - counted, the tenant degraded in /readyz -
 * while the last verified pack stays served; after a restart, with nothing
 * verified to fall back on, the tenant is not served at all. */
static void test_edge_verifies_the_packs_redis_holds(void **state) {
    (void)state;
    char eb[200], v[64];
    /* tenant's current pack is 1.1.0, accepted by gov-rulepacks above */
    write_constitution_trust();
    store_constitution(tenant);

    /* tenant's signed pack copied byte for byte, signatures and all, to tenant3 */
    gov_redis_t *r = itest_redis();
    char *pack = redis_get("policy:rulepack:{%s}", tenant), *sigs = redis_hget(tenant, "signatures");
    assert_non_null(pack);
    assert_non_null(sigs);
    assert_int_equal(gov_redis_commandf(r, NULL, eb, sizeof eb, "SET policy:rulepack:{%s} %s",
                                        tenant3, pack), GOV_OK);
    assert_int_equal(gov_redis_commandf(r, NULL, eb, sizeof eb,
                                        "HSET policy:rulepack:{%s}:meta signatures %s", tenant3,
                                        sigs), GOV_OK);
    assert_int_equal(gov_redis_commandf(r, NULL, eb, sizeof eb,
                                        "SADD policy:rulepack:tenants %s", tenant3), GOV_OK);

    start_edge("200ms");
    pack_wait_t want = {tenant, "1.1.0"};
    if (itest_wait_for(serves_version, &want, 10000, 20) < 0)
        fail_msg("the edge does not serve %s's signed pack 1.1.0", tenant);
    refusal_wait_t copied = {tenant3, "tenant_mismatch"};
    if (itest_wait_for(refused_now, &copied, 10000, 20) < 0)
        fail_msg("the edge did not refuse the pack copied to %s", tenant3);
    assert_true(itest_edge_degraded(&edge, tenant3));
    assert_true(edge_refused(tenant, "invalid_signature") < 0);

    /* a forged successor: another pack (9.0.0, a higher threshold), the
     * meta made consistent with it, the real pack's signatures beside it */
    char *text = demo_pack(tenant, "9.0.0", "\"max_risk_score\": 0.7", "\"max_risk_score\": 0.99");
    char fsha[GOV_SHA256_HEXLEN + 1];
    char *forged = canonical_of(text, fsha);
    free(text);
    assert_int_equal(gov_redis_commandf(r, NULL, eb, sizeof eb, "SET policy:rulepack:{%s} %s",
                                        tenant, forged), GOV_OK);
    assert_int_equal(gov_redis_commandf(r, NULL, eb, sizeof eb,
                                        "HSET policy:rulepack:{%s}:meta sha256 %s version 9.0.0",
                                        tenant, fsha), GOV_OK);
    refusal_wait_t forged_w = {tenant, "invalid_signature"};
    if (itest_wait_for(refused_now, &forged_w, 10000, 20) < 0)
        fail_msg("the edge did not refuse the forged pack of %s", tenant);
    assert_int_equal(served_pack(tenant, v), 200);
    assert_string_equal(v, "1.1.0");   /* the last verified pack */
    assert_true(itest_edge_degraded(&edge, tenant));

    /* restarted: the forged pack is refused again, and nothing is served */
    assert_int_equal(itest_proc_stop(&edge), 0);
    start_edge("200ms");
    if (itest_wait_for(refused_now, &forged_w, 10000, 20) < 0)
        fail_msg("the restarted edge did not refuse the forged pack of %s", tenant);
    assert_int_equal(served_pack(tenant, v), 503);
    assert_string_equal(v, "");
    assert_true(itest_edge_degraded(&edge, tenant));
    assert_int_equal(itest_proc_stop(&edge), 0);
    free(forged);
    free(pack);
    free(sigs);
}

static void test_metrics_pass_promtool(void **state) {
    (void)state;
    char *body = metrics_text();
    assert_non_null(strstr(body, "rulepack_rejected_total{"));
    assert_non_null(strstr(body, "rulepack_accepted_total{"));
    assert_non_null(strstr(body, "processor_events_total{"));
    assert_int_equal(itest_promtool_check(body), 0);
    free(body);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_pack_is_materialized),
        cmocka_unit_test(test_every_invalid_pack_is_rejected_with_its_reason),
        cmocka_unit_test(test_replays_are_duplicates_and_newer_versions_replace),
        cmocka_unit_test(test_rewound_partition_rejudges_nothing),
        cmocka_unit_test(test_damaged_current_pack_decides_nothing),
        cmocka_unit_test(test_poison_goes_to_dlq),
        cmocka_unit_test(test_metrics_pass_promtool),
        cmocka_unit_test(test_edge_follows_what_gov_rulepacks_materializes),
        cmocka_unit_test(test_edge_verifies_the_packs_redis_holds),
    };
    return cmocka_run_group_tests_name("rulepacks", tests, setup, teardown);
}
