/* test_constitution_chain.c - bundle -> gov-constitution -> Redis -> gov-edge.
 *
 * Real processes against the real broker: a private redis-server, a private
 * gov-constitution (own consumer group, own trust file of three freshly
 * generated Ed25519 keys, threshold 2) and a private gov-edge on its own
 * port.  Bundles are really signed; each is produced to the real
 * constitution.bundles topic as an Avro ConstitutionBundle, exactly what
 * gov-somabrain-sync and `govctl publish` produce.  Checks are what an
 * operator sees: the edge's answers, the processors' /metrics, the
 * AuditEvents on identity.audit, the Redis keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

#define COMPONENT "gov-constitution-itest"

static pid_t redis_pid = -1;
static int redis_port;
/* A deployment of its own: the stack's gov-constitution consumes the same
 * topic and audits the same bundles under its own name. */
static itest_proc_t proc, edge;
static char tenant[64], trust_path[512];
static char env_redis[48], env_trust[560], env_maxdoc[48], env_reconcile[48];
static EVP_PKEY *keys[4]; /* alice, bob, carol trusted; mallory not */
static const char *names[4] = {"alice", "bob", "carol", "mallory"};

static void start_edge(void) {
    /* the edge needs a rule-pack trust too; this test publishes no pack */
    static char env_rp_trust[600];
    snprintf(env_rp_trust, sizeof env_rp_trust, "GOV_RULEPACK_TRUST_FILE=%s", trust_path);
    const char *env[] = {env_redis, env_reconcile, env_trust, env_rp_trust, NULL};
    itest_proc_start(&edge, "gov-edge", NULL, env, "itest-constitution-edge.log");
}

static int setup(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++)
        keys[i] = itest_ed25519_new();
    snprintf(trust_path, sizeof trust_path, "%s", itest_log_path("itest-trust.json"));
    itest_write_trust(trust_path, 2, 3, names, keys);

    redis_pid = itest_private_redis("constitution", &redis_port);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_redis);
    snprintf(env_trust, sizeof env_trust, "GOV_TRUST_FILE=%s", trust_path);
    snprintf(env_maxdoc, sizeof env_maxdoc, "GOV_MAX_DOCUMENT=%d", 8192);
    snprintf(env_reconcile, sizeof env_reconcile, "GOV_RECONCILE=%s", "60s");
    const char *env[] = {env_redis, env_trust, env_maxdoc, NULL};
    itest_proc_start(&proc, "gov-constitution", COMPONENT, env, "itest-gov-constitution.log");
    start_edge();
    itest_must_catch_up(&proc, 3);
    itest_unique("acme", tenant, sizeof tenant);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_proc_stop(&edge) | itest_proc_stop(&proc);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    for (int i = 0; i < 4; i++)
        EVP_PKEY_free(keys[i]);
    return rc;
}

/* --- building and publishing bundles --------------------------------------------- */

/* A bundle event of the tenant: document text, forms, checksum (NULL =
 * computed), signers (indexes into keys and names, -1 ends). */
static json_t *bundle(const char *doc, const char *canon, const char *alg, const char *checksum,
                      const int *who) {
    return itest_bundle_event(tenant, doc, canon, alg, checksum, keys, names, who);
}

static void doc_text(char *out, size_t size, const char *version, double max_risk) {
    snprintf(out, size,
             "{\"version\":\"%s\",\"tenant\":\"%s\",\"rules\":{\"prohibited_actions\":[\"exfiltrate\"],"
             "\"permitted_tool_categories\":[\"search\"],\"max_risk_score\":%g,"
             "\"require_human_approval_above_risk\":0.5},\"governance\":{\"signature_threshold\":2,"
             "\"valid_signers\":[\"alice\",\"bob\",\"mallory\"]},\"note\":\"caf\xc3\xa9 \xf0\x9f\xa4\x96\"}",
             version, tenant, max_risk);
}

static const int AB[] = {0, 1, -1};

static char *edge_get(const char *suffix, long *status) {
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "%s/v1/constitution/%s%s", edge.url, tenant, suffix);
    *status = itest_http_get(url, &body);
    return body;
}

/* Waits until the edge serves `checksum` for the tenant; returns ms waited or -1. */
static long wait_served(const char *checksum, int timeout_ms) {
    int64_t start = gov_mono_micros();
    while (gov_mono_micros() - start < (int64_t)timeout_ms * 1000) {
        long st;
        char *b = edge_get("/hash", &st);
        int ok = st == 200 && strstr(b, checksum) != NULL;
        free(b);
        if (ok)
            return (long)((gov_mono_micros() - start) / 1000);
        itest_sleep_ms(10);
    }
    return -1;
}

static char good_checksum[129];

static void test_accepted_bundle_is_served_within_a_second(void **state) {
    (void)state;
    char doc[1024];
    doc_text(doc, sizeof doc, "1.0.0", 0.8);
    json_t *b = bundle(doc, "somabrain-json", "sha3-512", NULL, AB);
    snprintf(good_checksum, sizeof good_checksum, "%s", json_string_value(json_object_get(b, "checksum")));
    itest_produce_event("constitution.bundles", "ConstitutionBundle", b);
    json_decref(b);
    long ms = wait_served(good_checksum, 10000);
    print_message("accepted bundle served by the edge %ld ms after its publication was acknowledged\n", ms);
    assert_true(ms >= 0);
    assert_true(ms <= 1000);

    /* metadata and the document's exact canonical bytes */
    long st;
    char *body = edge_get("", &st);
    assert_int_equal(st, 200);
    json_t *j = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "version")), "1.0.0");
    assert_string_equal(json_string_value(json_object_get(j, "canonicalization")), "somabrain-json");
    assert_int_equal(json_array_size(json_object_get(j, "signers")), 2);
    assert_true(json_is_object(json_object_get(j, "document")));
    json_decref(j);
    free(body);
    body = edge_get("/document", &st);
    assert_int_equal(st, 200);
    unsigned char md[64];
    unsigned int n = 0;
    char hex[129];
    EVP_Digest(body, strlen(body), md, &n, EVP_sha3_512(), NULL);
    gov_hex_encode(md, n, hex);
    assert_string_equal(hex, good_checksum);
    assert_non_null(strstr(body, "caf\\u00e9 \\ud83e\\udd16")); /* somabrain-json escaping */
    free(body);

    /* the listing, and the Redis state */
    assert_int_equal(itest_proc_get(&edge, "/v1/constitution", &body), 200);
    assert_non_null(strstr(body, tenant));
    free(body);
    redisReply *r = NULL;
    char eb[200];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "HGET constitution:{%s} signers", tenant), GOV_OK);
    assert_string_equal(r->str, "alice,bob");
    freeReplyObject(r);
}

typedef struct reason_case {
    const char *reason;
    json_t *bundle;
} reason_case_t;

/* constitution_rejected_total{tenant=t, reason} of our gov-constitution. */
static double rejected_for(const char *t, const char *reason) {
    char f1[128], f2[96];
    snprintf(f1, sizeof f1, "tenant=\"%s\"", t);
    snprintf(f2, sizeof f2, "reason=\"%s\"", reason);
    const char *flt[] = {f1, f2, NULL};
    double v = itest_proc_metric(&proc, "constitution_rejected_total", flt);
    return v < 0 ? 0 : v;
}

static double rejected(const char *reason) { return rejected_for(tenant, reason); }

typedef struct audit_seen {
    const char *reasons[20];
    int seen[20];
    size_t n, found;
} audit_seen_t;

static int collect_audit(void *opaque, const gov_kafka_msg_t *m) {
    audit_seen_t *a = opaque;
    if (m->key_len != strlen(tenant) || memcmp(m->key, tenant, m->key_len) != 0)
        return 0;
    json_t *ev = NULL;
    const char *type;
    char eb[200];
    if (gov_avro_decode(itest_avro(), m->value, m->len, &ev, &type, eb, sizeof eb) != GOV_OK)
        return 0;
    const char *action = json_string_value(json_object_get(ev, "action"));
    const char *reason = json_string_value(json_object_get(ev, "reason"));
    const char *comp = json_string_value(json_object_get(ev, "component"));
    if (comp == NULL || strcmp(comp, COMPONENT) != 0)
        reason = NULL; /* the stack's gov-constitution audits the same bundles */
    if (action && strcmp(action, "constitution.rejected") == 0 && reason)
        for (size_t i = 0; i < a->n; i++)
            if (!a->seen[i] && strcmp(a->reasons[i], reason) == 0) {
                a->seen[i] = 1;
                a->found++;
            }
    json_decref(ev);
    return a->found == a->n;
}

static void test_every_bad_bundle_is_rejected_with_its_reason(void **state) {
    (void)state;
    char doc[1024], other[1024], big[10000];
    doc_text(doc, sizeof doc, "2.0.0", 0.8);
    char cs[129];
    itest_checksum(doc, "jcs", "sha256", cs);
    reason_case_t cases[16];
    size_t n = 0;

    /* tampered document: signed checksum of doc, text of another */
    doc_text(other, sizeof other, "2.0.0", 0.9);
    json_t *b = bundle(doc, "jcs", "sha256", NULL, AB);
    json_object_set_new(b, "document_json", json_string(other));
    cases[n++] = (reason_case_t){"checksum_mismatch", b};
    /* tampered checksum, signatures made over the tampered value */
    char bad_cs[129];
    snprintf(bad_cs, sizeof bad_cs, "%s", cs);
    bad_cs[0] = bad_cs[0] == 'a' ? 'b' : 'a';
    cases[n++] = (reason_case_t){"checksum_mismatch", bundle(doc, "jcs", "sha256", bad_cs, AB)};
    const int AM[] = {0, 3, -1}, AA[] = {0, 0, -1}, A[] = {0, -1}, AC[] = {0, 2, -1};
    cases[n++] = (reason_case_t){"untrusted_signer", bundle(doc, "jcs", "sha256", NULL, AM)};
    cases[n++] = (reason_case_t){"duplicate_signer", bundle(doc, "jcs", "sha256", NULL, AA)};
    cases[n++] = (reason_case_t){"threshold_not_met", bundle(doc, "jcs", "sha256", NULL, A)};
    cases[n++] = (reason_case_t){"signer_not_permitted", bundle(doc, "jcs", "sha256", NULL, AC)};
    doc_text(other, sizeof other, "0.9.0", 0.8);
    cases[n++] = (reason_case_t){"version_rollback", bundle(other, "jcs", "sha256", NULL, AB)};
    doc_text(other, sizeof other, "1.0.0", 0.1);
    cases[n++] = (reason_case_t){"equivocation", bundle(other, "jcs", "sha256", NULL, AB)};
    b = bundle(doc, "jcs", "sha256", NULL, AB);
    json_object_set_new(b, "hash_alg", json_string("md5"));
    cases[n++] = (reason_case_t){"unknown_hash_algorithm", b};
    b = bundle(doc, "jcs", "sha256", NULL, AB);
    json_object_set_new(json_array_get(json_object_get(b, "signatures"), 1), "algorithm",
                        json_string("ecdsa-p256"));
    cases[n++] = (reason_case_t){"unknown_signature_algorithm", b};
    /* a document over max_document (8 KiB here) */
    size_t bl = (size_t)snprintf(big, sizeof big, "{\"version\":\"3.0.0\",\"pad\":\"");
    memset(big + bl, 'x', 9000);
    snprintf(big + bl + 9000, sizeof big - bl - 9000, "\"}");
    cases[n++] = (reason_case_t){"document_too_large", bundle(big, "jcs", "sha256", NULL, AB)};

    audit_seen_t seen;
    memset(&seen, 0, sizeof seen);
    for (size_t i = 0; i < n; i++) {
        double before = rejected(cases[i].reason);
        itest_produce_event("constitution.bundles", "ConstitutionBundle", cases[i].bundle);
        json_decref(cases[i].bundle);
        int ok = 0;
        for (int w = 0; w < 200 && !ok; w++) {
            ok = rejected(cases[i].reason) >= before + 1;
            if (!ok)
                itest_sleep_ms(50);
        }
        if (!ok)
            fail_msg("case %zu: no constitution_rejected_total{reason=\"%s\"} increment", i,
                     cases[i].reason);
        int dup = 0;
        for (size_t k = 0; k < seen.n; k++)
            dup |= strcmp(seen.reasons[k], cases[i].reason) == 0;
        if (!dup)
            seen.reasons[seen.n++] = cases[i].reason;
        /* the last good constitution is still what the edge serves */
        assert_true(wait_served(good_checksum, 1000) >= 0);
    }
    /* every rejection also left an AuditEvent with its reason */
    assert_true(itest_consume_until("identity.audit", collect_audit, &seen, 60000));
    assert_int_equal(seen.found, seen.n);
}

/* --- trust: tenant binding, continuity, strict rules (issue 8) -------------------- */

/* Produces b (consumed) for tenant t and waits for its rejection with
 * `reason`: the metric increments and the AuditEvent of our
 * gov-constitution, correlated with the bundle, carries the reason. */
static void expect_rejected(const char *t, json_t *b, const char *reason) {
    char bundle_id[64];
    snprintf(bundle_id, sizeof bundle_id, "%s", json_string_value(json_object_get(b, "event_id")));
    double before = rejected_for(t, reason);
    itest_produce_event("constitution.bundles", "ConstitutionBundle", b);
    json_decref(b);
    int ok = 0;
    for (int w = 0; w < 200 && !ok; w++) {
        ok = rejected_for(t, reason) >= before + 1;
        if (!ok)
            itest_sleep_ms(50);
    }
    if (!ok)
        fail_msg("tenant %s: no constitution_rejected_total{reason=\"%s\"} increment", t, reason);
    json_t *ev = itest_find_audit(t, COMPONENT, "constitution.rejected", bundle_id, 30000);
    if (ev == NULL)
        fail_msg("tenant %s: no constitution.rejected AuditEvent for bundle %s", t, bundle_id);
    assert_string_equal(json_string_value(json_object_get(ev, "reason")), reason);
    json_decref(ev);
}

/* The version in constitution:{t}, or NULL when there is none (new string). */
static char *state_version(const char *t) {
    redisReply *r = NULL;
    char eb[200];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                        "HGET constitution:{%s} version", t), GOV_OK);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

static void test_cross_tenant_replay_and_unbound_documents_refused(void **state) {
    (void)state;
    char victim[64], doc[1024];
    itest_unique("victim", victim, sizeof victim);
    /* tenant A's bundle, signed by signers B trusts too, replayed to B */
    doc_text(doc, sizeof doc, "99.0.0", 0.8);
    expect_rejected(victim, itest_bundle_event(victim, doc, "jcs", "sha256", NULL, keys, names, AB),
                    "tenant_mismatch");
    /* a document naming no tenant: this trust (the older single-binding
     * format) takes none */
    expect_rejected(victim, itest_bundle_event(victim, "{\"version\":\"99.0.0\"}", "jcs", "sha256",
                                               NULL, keys, names, AB),
                    "unbound_document");
    /* a typo in the rules: refused before it can become current */
    snprintf(doc, sizeof doc,
             "{\"version\":\"1.0.0\",\"tenant\":\"%s\",\"rules\":{\"prohibited_action\":[\"x\"]}}",
             victim);
    expect_rejected(victim, itest_bundle_event(victim, doc, "jcs", "sha256", NULL, keys, names, AB),
                    "invalid_rules");
    /* B's state is untouched and the edge serves nothing for B */
    assert_null(state_version(victim));
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "%s/v1/constitution/%s/hash", edge.url, victim);
    assert_int_equal(itest_http_get(url, &body), 404);
    free(body);
    /* and A still has its own */
    assert_true(wait_served(good_checksum, 1000) >= 0);
}

static void test_successor_dropping_governance_refused(void **state) {
    (void)state;
    char t[64], doc[512];
    itest_unique("cont", t, sizeof t);
    /* in force: version 1.0.0 requiring three signatures (the trust says 2) */
    snprintf(doc, sizeof doc,
             "{\"version\":\"1.0.0\",\"tenant\":\"%s\",\"governance\":{\"signature_threshold\":3}}", t);
    const int ABC[] = {0, 1, 2, -1};
    json_t *b = itest_bundle_event(t, doc, "jcs", "sha256", NULL, keys, names, ABC);
    itest_produce_event("constitution.bundles", "ConstitutionBundle", b);
    json_decref(b);
    char *v = NULL;
    for (int w = 0; w < 200 && v == NULL; w++) {
        if ((v = state_version(t)) == NULL)
            itest_sleep_ms(50);
    }
    if (v == NULL)
        fail_msg("tenant %s: version 1.0.0 was not accepted", t);
    assert_string_equal(v, "1.0.0");
    free(v);
    /* its successor drops the governance section: two signatures are not enough */
    snprintf(doc, sizeof doc, "{\"version\":\"2.0.0\",\"tenant\":\"%s\"}", t);
    expect_rejected(t, itest_bundle_event(t, doc, "jcs", "sha256", NULL, keys, names, AB),
                    "threshold_not_met");
    v = state_version(t);
    assert_string_equal(v, "1.0.0");
    free(v);
}

static void test_replay_is_a_duplicate_and_newer_version_rebinds(void **state) {
    (void)state;
    char doc[1024];
    doc_text(doc, sizeof doc, "1.0.0", 0.8);
    /* the accepted bundle again: no rejection of any kind */
    double before = 0;
    const char *reasons[] = {"equivocation", "version_rollback", NULL};
    for (int i = 0; reasons[i]; i++)
        before += rejected(reasons[i]);
    json_t *b = bundle(doc, "somabrain-json", "sha3-512", NULL, AB);
    itest_produce_event("constitution.bundles", "ConstitutionBundle", b);
    json_decref(b);

    doc_text(doc, sizeof doc, "1.1.0", 0.7);
    b = bundle(doc, "jcs", "sha3-512", NULL, AB);
    char cs[129];
    snprintf(cs, sizeof cs, "%s", json_string_value(json_object_get(b, "checksum")));
    itest_produce_event("constitution.bundles", "ConstitutionBundle", b);
    json_decref(b);
    long ms = wait_served(cs, 10000);
    print_message("version 1.1.0 served %ld ms after publication\n", ms);
    assert_true(ms >= 0 && ms <= 1000);
    double after = 0;
    for (int i = 0; reasons[i]; i++)
        after += rejected(reasons[i]);
    assert_true(after == before);

    redisReply *r = NULL;
    char eb[200];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "LINDEX constitution:{%s}:history 0", tenant), GOV_OK);
    assert_string_equal(r->str, good_checksum);
    freeReplyObject(r);
    snprintf(good_checksum, sizeof good_checksum, "%s", cs);
}

typedef struct count_ctx {
    const char *event_id;
    int *seen;
} count_ctx_t;

/* Counts the messages whose event has event_id; never stops early. */
static int count_event_id(void *opaque, const gov_kafka_msg_t *m) {
    count_ctx_t *c = opaque;
    json_t *ev = NULL;
    const char *type = NULL;
    char eb[200];
    if (gov_avro_decode(itest_avro(), m->value, m->len, &ev, &type, eb, sizeof eb) != GOV_OK)
        return 0;
    const char *id = json_string_value(json_object_get(ev, "event_id"));
    if (id && strcmp(id, c->event_id) == 0)
        (*c->seen)++;
    json_decref(ev);
    return 0;
}

/* The copies of event_id in topic from marks (its ends before the case
 * published anything) to its end now: every message of the range is read,
 * however long the topic's history before it. */
static int copies_since(const char *topic, const int64_t *marks, const char *event_id) {
    int seen = 0;
    count_ctx_t cc = {event_id, &seen};
    if (!itest_scan_topic(topic, marks, count_event_id, &cc, 60000))
        fail_msg("%s was not read to its end within 60 s", topic);
    return seen;
}

/* Produces bundle b to constitution.bundles and waits until this file's
 * gov-constitution has finished it (its partition watermark, written after
 * the events were acknowledged, reached the message). */
static void produce_and_wait(json_t *b) {
    int32_t part = -1;
    int64_t off = -1;
    itest_produce_event_at("constitution.bundles", "ConstitutionBundle", b, &part, &off);
    if (!itest_wait_offset(itest_redis(), proc.group, "constitution.bundles", part, off, 30000))
        fail_msg("%s did not finish offset %lld of constitution.bundles/%d", COMPONENT,
                 (long long)off, (int)part);
}

/* The id gov-constitution derives for what it emits because of bundle b. */
static void derived_id(json_t *b, const char *action, char out[GOV_UUID_STRLEN + 1]) {
    char seed[256];
    snprintf(seed, sizeof seed, "%s/%s/%s", COMPONENT,
             json_string_value(json_object_get(b, "event_id")), action);
    json_int_t at = json_integer_value(json_object_get(b, "occurred_at"));
    assert_int_equal(gov_uuid_v7_derive((uint64_t)(at / 1000), seed, out), GOV_OK);
}

/* Replays are silent: the current bundle published again (a new event with
 * the same signed content, and the very same event) changes nothing and
 * announces nothing - no second ConstitutionUpdated, no second accepted
 * audit event - while its first publication announced both. */
static void test_replay_of_the_current_bundle_is_silent(void **state) {
    (void)state;
    char doc[1024];
    doc_text(doc, sizeof doc, "1.2.0", 0.7);
    json_t *b = bundle(doc, "jcs", "sha3-512", NULL, AB);
    const char *first_id = json_string_value(json_object_get(b, "event_id"));
    int64_t audit_marks[64], upd_marks[64];
    itest_topic_ends("identity.audit", audit_marks, 64);
    itest_topic_ends("constitution.updated", upd_marks, 64);
    produce_and_wait(b);
    json_t *audit = itest_find_audit(tenant, COMPONENT, "constitution.accepted", first_id, 30000);
    assert_non_null(audit);   /* the first publication is announced */
    json_decref(audit);
    itest_found_t upd = {0};
    derived_id(b, "constitution.updated", upd.event_id);
    assert_int_equal(itest_find_events("constitution.updated", "ConstitutionUpdated", &upd, 1, 30000), 1);
    json_decref(upd.event);

    json_t *again = bundle(doc, "jcs", "sha3-512", NULL, AB);   /* new event_id */
    produce_and_wait(again);
    produce_and_wait(b);                                        /* the same event */
    /* Both were finished, and what they would have emitted would have been
     * acknowledged before that: the topics read to their ends now are
     * conclusive (ids derive from the bundle event: `again` would announce
     * under ids of its own) */
    char again_acc[GOV_UUID_STRLEN + 1], again_upd[GOV_UUID_STRLEN + 1];
    derived_id(again, "constitution.accepted", again_acc);
    derived_id(again, "constitution.updated", again_upd);
    assert_int_equal(copies_since("identity.audit", audit_marks, again_acc), 0);
    assert_int_equal(copies_since("constitution.updated", upd_marks, again_upd), 0);
    /* the same event again: still exactly one ConstitutionUpdated of its id */
    assert_int_equal(copies_since("constitution.updated", upd_marks, upd.event_id), 1);
    snprintf(good_checksum, sizeof good_checksum, "%s",
             json_string_value(json_object_get(b, "checksum")));
    json_decref(again);
    json_decref(b);
}

/* Publishes a jcs bundle of `version` signed by alice and bob and waits
 * until this file's gov-constitution has finished it; returns the bundle
 * (new reference) with its partition and offset. */
static json_t *publish_finished(const char *version, int32_t *part, int64_t *off) {
    char doc[1024];
    doc_text(doc, sizeof doc, version, 0.7);
    json_t *b = bundle(doc, "jcs", "sha3-512", NULL, AB);
    itest_produce_event_at("constitution.bundles", "ConstitutionBundle", b, part, off);
    if (!itest_wait_offset(itest_redis(), proc.group, "constitution.bundles", *part, *off, 30000))
        fail_msg("%s did not finish offset %lld", COMPONENT, (long long)*off);
    return b;
}

/* A partition consumed again (its watermark deleted, so gov-constitution
 * rebuilds it from the beginning) re-applies nothing the tenant's keys
 * already hold: the accepted bundle lies below the tenant's applied offset
 * (its replay came after it) and is finished without being judged again,
 * the replay at the applied offset itself is judged a silent duplicate -
 * the tenant's keys byte for byte as before, no second ConstitutionUpdated
 * or audit event - and the processor's applied offset for the tenant is
 * the stored one (named in its log line for the accepted bundle). */
static void test_rewound_partition_reapplies_nothing(void **state) {
    (void)state;
    int32_t part = -1;
    int64_t off = -1, audit_marks[64], upd_marks[64];
    itest_topic_ends("identity.audit", audit_marks, 64);
    itest_topic_ends("constitution.updated", upd_marks, 64);
    json_t *b = publish_finished("1.3.0", &part, &off);
    int32_t part2 = -1;
    int64_t off2 = -1;   /* the same event again: the tenant's applied offset */
    itest_produce_event_at("constitution.bundles", "ConstitutionBundle", b, &part2, &off2);
    assert_int_equal(part2, part);
    if (!itest_wait_offset(itest_redis(), proc.group, "constitution.bundles", part, off2, 30000))
        fail_msg("%s did not finish offset %lld", COMPONENT, (long long)off2);
    char k[5][320], want[32];
    snprintf(k[0], sizeof k[0], "constitution:{%s}", tenant);
    snprintf(k[1], sizeof k[1], "constitution:{%s}:doc", tenant);
    snprintf(k[2], sizeof k[2], "constitution:{%s}:history", tenant);
    snprintf(k[3], sizeof k[3], "gov:{tenants}:constitution");
    snprintf(k[4], sizeof k[4], "gov:applied:{%s}:%s:constitution.bundles:%d", tenant, proc.group,
             (int)part);
    const char *state_keys[] = {k[0], k[1], k[2], k[3], k[4]};
    snprintf(want, sizeof want, "%lld", (long long)off2);
    const char *get[] = {"GET", k[4]};
    redisReply *r = itest_redis_cmd(itest_redis(), 2, get, NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, want);   /* written with the state */
    freeReplyObject(r);
    char *before = itest_redis_snapshot(itest_redis(), state_keys, 5);
    const char *flt[] = {"topic=\"constitution.bundles\"", NULL};
    double skipped = itest_proc_metric(&proc, "processor_already_applied_total", flt);

    assert_true(itest_replay_partition(&proc, itest_redis(), "constitution.bundles", part, off2,
                                       ITEST_HISTORY_MS));
    char *after = itest_redis_snapshot(itest_redis(), state_keys, 5);
    assert_string_equal(before, after);
    assert_true(itest_proc_metric(&proc, "processor_already_applied_total", flt) >
                (skipped < 0 ? 0 : skipped));
    /* everything of the replay was acknowledged before the watermark moved
     * past it: exactly the first publication's events */
    char upd_id[GOV_UUID_STRLEN + 1], audit_id[GOV_UUID_STRLEN + 1];
    derived_id(b, "constitution.updated", upd_id);
    derived_id(b, "constitution.accepted", audit_id);
    assert_int_equal(copies_since("constitution.updated", upd_marks, upd_id), 1);
    assert_int_equal(copies_since("identity.audit", audit_marks, audit_id), 1);
    /* the processor's applied offset for the tenant: the stored one */
    assert_true(itest_log_already_applied(&proc, tenant, off, off2));
    free(before);
    free(after);
    snprintf(good_checksum, sizeof good_checksum, "%s",
             json_string_value(json_object_get(b, "checksum")));
    json_decref(b);
}

/* 1 when one line of the private processor's log holds every mark. */
static int log_has(const char *const *marks) {
    char *log = itest_read_file(itest_log_path(proc.log), NULL);
    int found = 0;
    for (char *save = NULL, *line = strtok_r(log, "\n", &save); line && !found;
         line = strtok_r(NULL, "\n", &save)) {
        found = 1;
        for (const char *const *m = marks; *m && found; m++)
            found = strstr(line, *m) != NULL;
    }
    free(log);
    return found;
}

/* Sets what(i) = the end of constitution.bundles/i + 100000 for every
 * partition i (its values in stale[i]); returns the partition count. */
static int set_beyond_ends(const char *fmt, char stale[16][32]) {
    int nparts = itest_topic_partitions("constitution.bundles");
    assert_true(nparts > 0 && nparts <= 16);
    for (int i = 0; i < nparts; i++) {
        char key[320];
        snprintf(key, sizeof key, fmt, proc.group, i);
        snprintf(stale[i], sizeof stale[i], "%lld",
                 (long long)(itest_high_watermark("constitution.bundles", i) + 100000));
        const char *set[] = {"SET", key, stale[i]};
        freeReplyObject(itest_redis_cmd(itest_redis(), 3, set, NULL));
    }
    return nparts;
}

/* A topic deleted and recreated restarts its offsets at 0 while Redis keeps
 * the tenant's applied offsets of the old topic.  Such an offset is not
 * below the partition's end - no message of this topic was ever applied
 * there - so a new bundle under it must be judged and served, not passed
 * over as "already applied" (the update would be lost unseen), and the
 * operator told why (error log line, processor_applied_offset_ahead_total).
 * The state is made without deleting the stack's shared topic: the
 * tenant's applied offset on every partition is set past that partition's
 * end (what a recreated topic leaves, and what a Redis writer could set). */
static void test_applied_offset_beyond_the_partition_end_is_judged(void **state) {
    (void)state;
    char stale[16][32], fmt[160];
    snprintf(fmt, sizeof fmt, "gov:applied:{%s}:%%s:constitution.bundles:%%d", tenant);
    set_beyond_ends(fmt, stale);
    const char *flt[] = {"topic=\"constitution.bundles\"", "kind=\"applied\"", NULL};
    double ahead = itest_proc_metric(&proc, "processor_offset_ahead_total", flt);

    int32_t part = -1;
    int64_t off = -1;
    json_t *b = publish_finished("1.4.0", &part, &off);
    const char *cs = json_string_value(json_object_get(b, "checksum"));
    assert_true(wait_served(cs, 5000) >= 0);   /* judged and accepted, not passed over */
    /* the stale offset is replaced by the message's own */
    char key[320], want[32];
    snprintf(key, sizeof key, "gov:applied:{%s}:%s:constitution.bundles:%d", tenant, proc.group,
             (int)part);
    snprintf(want, sizeof want, "%lld", (long long)off);
    const char *get[] = {"GET", key};
    redisReply *r = itest_redis_cmd(itest_redis(), 2, get, NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
    assert_true(itest_proc_metric(&proc, "processor_offset_ahead_total", flt) >
                (ahead < 0 ? 0 : ahead));
    char tmark[96], omark[48], amark[64];
    snprintf(tmark, sizeof tmark, "\"tenant\":\"%s\"", tenant);
    snprintf(omark, sizeof omark, "\"offset\":\"%lld\"", (long long)off);
    snprintf(amark, sizeof amark, "\"applied\":\"%s\"", stale[part]);
    const char *marks[] = {"\"level\":\"error\"", "applied offset is beyond the end of the partition",
                           tmark, omark, amark, NULL};
    assert_true(log_has(marks));
    snprintf(good_checksum, sizeof good_checksum, "%s", cs);
    json_decref(b);
}

/* The same for the partition watermarks a recreated topic leaves behind
 * (gov:offsets:<group>:<topic>:<p> beyond the partition's end): a restart
 * says so at error for each partition, naming watermark and end, counts it
 * (kind="watermark") and starts at the committed offset - resuming after
 * the watermark would pass the new topic's messages over - and a new
 * bundle is served. */
static void test_watermark_beyond_the_partition_end_is_explained(void **state) {
    (void)state;
    assert_int_equal(itest_proc_stop(&proc), 0);
    char stale[16][32];
    int nparts = set_beyond_ends("gov:offsets:%s:constitution.bundles:%d", stale);
    const char *env[] = {env_redis, env_trust, env_maxdoc, NULL};
    itest_proc_start(&proc, "gov-constitution", COMPONENT, env, "itest-gov-constitution.log");
    const char *flt[] = {"topic=\"constitution.bundles\"", "kind=\"watermark\"", NULL};
    assert_true(itest_proc_metric(&proc, "processor_offset_ahead_total", flt) >= nparts);
    for (int i = 0; i < nparts; i++) {
        char pmark[48], wmark[64];
        snprintf(pmark, sizeof pmark, "\"partition\":\"%d\"", i);
        snprintf(wmark, sizeof wmark, "\"watermark\":\"%s\"", stale[i]);
        const char *marks[] = {"\"level\":\"error\"", "watermark in Redis is beyond the end",
                               pmark, wmark, "partition_end", NULL};
        assert_true(log_has(marks));
    }
    char doc[1024];
    doc_text(doc, sizeof doc, "1.5.0", 0.7);
    json_t *b = bundle(doc, "jcs", "sha3-512", NULL, AB);
    const char *cs = json_string_value(json_object_get(b, "checksum"));
    itest_produce_event("constitution.bundles", "ConstitutionBundle", b);
    assert_true(wait_served(cs, 10000) >= 0);
    snprintf(good_checksum, sizeof good_checksum, "%s", cs);
    json_decref(b);
}

static void test_restarted_edge_loads_from_redis_and_refuses_tampered_state(void **state) {
    (void)state;
    assert_int_equal(itest_proc_stop(&edge), 0);
    start_edge();
    assert_true(wait_served(good_checksum, 5000) >= 0);

    /* tamper with the stored document: a fresh edge refuses to serve it */
    char eb[200];
    assert_int_equal(gov_redis_commandf(itest_redis(), NULL, eb, sizeof eb,
                                        "APPEND constitution:{%s}:doc %s", tenant, " "), GOV_OK);
    assert_int_equal(itest_proc_stop(&edge), 0);
    start_edge();
    long st;
    char *body = edge_get("/hash", &st);
    assert_int_equal(st, 404);
    assert_non_null(strstr(body, "constitution_not_found"));
    free(body);
    assert_int_equal(itest_proc_get(&edge, "/metrics", &body), 200);
    char f1[128];
    snprintf(f1, sizeof f1, "tenant=\"%s\"", tenant);
    const char *flt[] = {f1, "outcome=\"verification_failed\"", NULL};
    assert_true(itest_metric(body, "edge_state_reloads_total", flt) >= 1);
    free(body);
}

/* --- Redis is not a trust root ---------------------------------------------------- */

static long get_hash(const char *t, char **body) {
    char url[256];
    snprintf(url, sizeof url, "%s/v1/constitution/%s/hash", edge.url, t);
    return itest_http_get(url, body);
}

static long evaluate_status(const char *t, char **body) {
    char url[256], req[256];
    snprintf(url, sizeof url, "%s/v1/evaluate", edge.url);
    snprintf(req, sizeof req,
             "{\"tenant\":\"%s\",\"session_id\":\"s-1\",\"user\":\"u\",\"role\":\"analyst\","
             "\"prompt\":\"hello\"}", t);
    return itest_http_post_json(url, req, body);
}

/* edge_state_rejected_total{tenant=t,kind=constitution,reason=reason}, -1 when none. */
static double refused(const char *t, const char *reason) {
    return itest_edge_refused(&edge, t, "constitution", reason);
}

/* 1 when the edge's /readyz answers 200 and names component tenant:t degraded. */
static int readyz_degraded(const char *t) {
    return itest_edge_degraded(&edge, t);
}

/* Writes a constitution for tenant t straight into Redis, as a Redis writer
 * could: the document text (which must be canonical JCS), its SHA-256
 * checksum and the signatures of `who` (indexes into keys; -1 ends) over it. */
static void forge(const char *t, const char *doc, const int *who, char checksum[129]) {
    /* The bundle a signer would publish; its parts go straight to Redis. */
    json_t *b = itest_bundle_event(t, doc, "jcs", "sha256", NULL, keys, names, who);
    snprintf(checksum, 129, "%s", json_string_value(json_object_get(b, "checksum")));
    char *sj = json_dumps(json_object_get(b, "signatures"), JSON_COMPACT);
    json_decref(b);
    char eb[200];
    gov_redis_t *r = itest_redis();
    const char *hset[] = {"HSET", NULL, "checksum", checksum, "hash_alg", "sha256",
                          "canonicalization", "jcs", "version", "9.0.0", "signers", "forger",
                          "source", "redis", "signatures", sj};
    char k_hash[128], k_doc[128];
    snprintf(k_hash, sizeof k_hash, "constitution:{%s}", t);
    snprintf(k_doc, sizeof k_doc, "constitution:{%s}:doc", t);
    hset[1] = k_hash;
    assert_int_equal(gov_redis_command(r, NULL, (int)(sizeof hset / sizeof hset[0]), hset, NULL, eb, sizeof eb), GOV_OK);
    const char *set[] = {"SET", k_doc, doc};
    assert_int_equal(gov_redis_command(r, NULL, 3, set, NULL, eb, sizeof eb), GOV_OK);
    const char *sadd[] = {"SADD", "constitution:tenants", t};
    assert_int_equal(gov_redis_command(r, NULL, 3, sadd, NULL, eb, sizeof eb), GOV_OK);
    free(sj);
}

/* Copies tenant from's constitution keys to tenant to's, byte for byte. */
static void copy_constitution(const char *from, const char *to) {
    char eb[200];
    gov_redis_t *r = itest_redis();
    const char *fields[] = {"checksum", "hash_alg", "canonicalization", "version", "signers",
                            "source", "signatures", "verified_at", "bundle_event_id"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        redisReply *v = NULL;
        assert_int_equal(gov_redis_commandf(r, &v, eb, sizeof eb, "HGET constitution:{%s} %s",
                                            from, fields[i]), GOV_OK);
        assert_int_equal(v->type, REDIS_REPLY_STRING);
        assert_int_equal(gov_redis_commandf(r, NULL, eb, sizeof eb,
                                            "HSET constitution:{%s} %s %b", to, fields[i],
                                            v->str, v->len), GOV_OK);
        freeReplyObject(v);
    }
    redisReply *d = NULL;
    assert_int_equal(gov_redis_commandf(r, &d, eb, sizeof eb, "GET constitution:{%s}:doc", from),
                     GOV_OK);
    assert_int_equal(d->type, REDIS_REPLY_STRING);
    assert_int_equal(gov_redis_commandf(r, NULL, eb, sizeof eb, "SET constitution:{%s}:doc %b",
                                        to, d->str, d->len), GOV_OK);
    freeReplyObject(d);
    assert_int_equal(gov_redis_commandf(r, NULL, eb, sizeof eb, "SADD constitution:tenants %s",
                                        to), GOV_OK);
}

static void test_edge_verifies_what_redis_holds(void **state) {
    (void)state;
    char good[64], copied[64], forged[64], doc[512], cs[129];
    itest_unique("had", good, sizeof good);
    itest_unique("copy", copied, sizeof copied);
    itest_unique("forged", forged, sizeof forged);

    /* A constitution accepted by gov-constitution, served by the edge. */
    snprintf(doc, sizeof doc, "{\"governance\":{\"signature_threshold\":2},"
             "\"rules\":{\"max_risk_score\":0.8,\"permitted_tool_categories\":[\"search\"],\"prohibited_actions\":[\"exfiltrate\"],\"require_human_approval_above_risk\":0.5},\"tenant\":\"%s\",\"version\":\"1.0.0\"}", good);
    json_t *b = itest_bundle_event(good, doc, "jcs", "sha256", NULL, keys, names, AB);
    char good_cs[129];
    snprintf(good_cs, sizeof good_cs, "%s", json_string_value(json_object_get(b, "checksum")));
    itest_produce_event("constitution.bundles", "ConstitutionBundle", b);
    char *body = NULL;
    int served = 0;
    for (int i = 0; i < 1000 && !served; i++) {
        served = get_hash(good, &body) == 200 && strstr(body, good_cs) != NULL;
        free(body);
        if (!served)
            itest_sleep_ms(10);
    }
    assert_true(served);

    /* A constitution materialized before signatures were stored gets them
     * when its bundle is replayed (a duplicate otherwise changes nothing). */
    char eb[200];
    assert_int_equal(gov_redis_commandf(itest_redis(), NULL, eb, sizeof eb,
                                        "HDEL constitution:{%s} signatures", good), GOV_OK);
    itest_produce_event("constitution.bundles", "ConstitutionBundle", b);
    json_decref(b);
    long long has = 0;
    for (int i = 0; i < 1000 && has != 1; i++) {
        redisReply *r = NULL;
        assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                            "HEXISTS constitution:{%s} signatures", good), GOV_OK);
        has = r->integer;
        freeReplyObject(r);
        if (has != 1)
            itest_sleep_ms(10);
    }
    assert_int_equal(has, 1);

    /* Signed for `good`, copied into `copied`'s keys; a document consistent
     * with its checksum but signed by an untrusted key (mallory). */
    copy_constitution(good, copied);
    char fdoc[512];
    snprintf(fdoc, sizeof fdoc, "{\"rules\":{\"max_risk_score\":0.8,\"permitted_tool_categories\":[\"search\"],\"prohibited_actions\":[\"exfiltrate\"],\"require_human_approval_above_risk\":0.5},\"tenant\":\"%s\",\"version\":\"1.0.0\"}",
             forged);
    forge(forged, fdoc, (const int[]){3, -1}, cs);

    /* A restarted edge verifies everything it loads against its own trust:
     * the good one is served, the other two never are; it is ready, and
     * says which tenants are degraded and why. */
    assert_int_equal(itest_proc_stop(&edge), 0);
    snprintf(env_reconcile, sizeof env_reconcile, "GOV_RECONCILE=%s", "200ms");
    start_edge();
    assert_int_equal(get_hash(good, &body), 200);
    assert_non_null(strstr(body, good_cs));
    free(body);
    const char *never[] = {copied, forged};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(get_hash(never[i], &body), 404);
        assert_non_null(strstr(body, "constitution_not_found"));
        free(body);
        assert_int_equal(evaluate_status(never[i], &body), 503);
        assert_non_null(strstr(body, "\"constitution_missing\""));
        free(body);
        assert_true(readyz_degraded(never[i]));
    }
    assert_true(refused(copied, "tenant_mismatch") >= 1);
    assert_true(refused(forged, "untrusted_signer") >= 1);
    assert_true(refused(good, "untrusted_signer") < 0);

    /* A forged successor of the good one: the edge keeps serving the last
     * verified document, turns the tenant degraded and counts it. */
    snprintf(fdoc, sizeof fdoc, "{\"rules\":{\"max_risk_score\":0.8,\"permitted_tool_categories\":[\"search\"],\"prohibited_actions\":[\"exfiltrate\"],\"require_human_approval_above_risk\":0.5},\"tenant\":\"%s\",\"version\":\"2.0.0\"}", good);
    forge(good, fdoc, (const int[]){3, -1}, cs);
    int counted = 0;
    for (int i = 0; i < 1000 && !counted; i++) {
        counted = refused(good, "untrusted_signer") >= 1;
        if (!counted)
            itest_sleep_ms(10);
    }
    assert_true(counted);
    assert_int_equal(get_hash(good, &body), 200);
    assert_non_null(strstr(body, good_cs));
    assert_null(strstr(body, cs));
    free(body);
    assert_true(readyz_degraded(good));
    snprintf(env_reconcile, sizeof env_reconcile, "GOV_RECONCILE=%s", "60s");
}

/* --- review finding 1 and 11: nothing unverified decides ---------------------------- */

/* edge_state_reloads_total{tenant=t,outcome=outcome}, -1 when none. */
static double edge_reloads(const char *t, const char *outcome) {
    char ft[128], fo[64];
    snprintf(ft, sizeof ft, "tenant=\"%s\"", t);
    snprintf(fo, sizeof fo, "outcome=\"%s\"", outcome);
    return itest_proc_metric(&edge, "edge_state_reloads_total", (const char *[]){ft, fo, NULL});
}

/* A JCS document of tenant t at version, signed by alice and bob, produced to
 * constitution.bundles; its checksum in cs. */
static void publish_version(const char *t, const char *version, char cs[129]) {
    char doc[512];
    snprintf(doc, sizeof doc, "{\"governance\":{\"signature_threshold\":2},"
             "\"rules\":{\"max_risk_score\":0.8,\"permitted_tool_categories\":[\"search\"],"
             "\"prohibited_actions\":[\"exfiltrate\"],\"require_human_approval_above_risk\":0.5},"
             "\"tenant\":\"%s\",\"version\":\"%s\"}", t, version);
    json_t *b = itest_bundle_event(t, doc, "jcs", "sha256", NULL, keys, names, AB);
    snprintf(cs, 129, "%s", json_string_value(json_object_get(b, "checksum")));
    itest_produce_event("constitution.bundles", "ConstitutionBundle", b);
    json_decref(b);
}

typedef struct served_wait {
    const char *tenant, *checksum;
} served_wait_t;

static int serves(void *opaque) {
    const served_wait_t *w = opaque;
    char *body = NULL;
    int ok = get_hash(w->tenant, &body) == 200 && strstr(body, w->checksum) != NULL;
    free(body);
    return ok;
}

static int wait_serves(const char *t, const char *checksum) {
    served_wait_t w = {t, checksum};
    return itest_wait_for(serves, &w, 15000, 20) >= 0;
}

typedef struct metric_wait {
    const char *tenant, *outcome;
} metric_wait_t;

static int reloaded_with(void *opaque) {
    const metric_wait_t *w = opaque;
    return edge_reloads(w->tenant, w->outcome) >= 1;
}

static int refused_pack(void *opaque) {
    char ft[128];
    snprintf(ft, sizeof ft, "tenant=\"%s\"", (const char *)opaque);
    return itest_proc_metric(&edge, "edge_state_rejected_total",
                             (const char *[]){ft, "kind=\"rulepack\"", NULL}) >= 1;
}

static int processor_unverified(void *opaque) {
    (void)opaque;
    return itest_proc_metric(&proc, "constitution_state_unverified_total", NULL) >= 1;
}

/* Finding 1 of the review: a Redis writer edits the hash fields beside a
 * verified document (version 999.0.0, signers, source).  The edge serves
 * what verified (the document's version, the signers that counted), so a
 * newer signed version is not "older than served"; gov-constitution judges
 * the rollback against the verified stored document, not the field; a
 * stored current that does not verify is counted and does not lock the
 * tenant out; an older verified state in Redis is "state_behind", not
 * served, and the tenant is degraded. */
static void test_forged_fields_never_decide(void **state) {
    (void)state;
    char t[64], cs1[129], cs2[129], cs3[129], cs_old[129], eb[200];
    itest_unique("fv", t, sizeof t);
    publish_version(t, "1.0.0", cs1);
    assert_true(wait_serves(t, cs1));

    assert_int_equal(gov_redis_commandf(itest_redis(), NULL, eb, sizeof eb,
                                        "HSET constitution:{%s} version 999.0.0 signers "
                                        "ceo_approved source https://evil.example/x", t),
                     GOV_OK);
    /* A restarted edge loads the forged fields with the verified document. */
    assert_int_equal(itest_proc_stop(&edge), 0);
    snprintf(env_reconcile, sizeof env_reconcile, "GOV_RECONCILE=%s", "200ms");
    start_edge();
    char path[160], *body = NULL;
    snprintf(path, sizeof path, "/v1/constitution/%s", t);
    assert_int_equal(itest_proc_get(&edge, path, &body), 200);
    json_t *meta = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(meta);
    /* The top-level fields (the document itself is in "document"). */
    assert_string_equal(json_string_value(json_object_get(meta, "version")), "1.0.0");
    assert_string_equal(json_string_value(json_object_get(meta, "source")), "");
    json_t *signers = json_object_get(meta, "signers");
    assert_int_equal(json_array_size(signers), 2);
    assert_string_equal(json_string_value(json_array_get(signers, 0)), "alice");
    assert_string_equal(json_string_value(json_array_get(signers, 1)), "bob");
    json_decref(meta);

    /* A correctly signed 1.0.1 is newer than what verified: accepted by
     * gov-constitution, served by the edge. */
    publish_version(t, "1.0.1", cs2);
    assert_true(wait_serves(t, cs2));
    char ft[128];
    snprintf(ft, sizeof ft, "tenant=\"%s\"", t);
    assert_true(itest_proc_metric(&proc, "constitution_rejected_total",
                                  (const char *[]){ft, NULL}) < 0);

    /* The stored current loses its signatures: it no longer verifies, so its
     * version decides nothing (counted); a signed successor goes through. */
    assert_int_equal(gov_redis_commandf(itest_redis(), NULL, eb, sizeof eb,
                                        "HSET constitution:{%s} signatures [] version 999.0.0",
                                        t), GOV_OK);
    publish_version(t, "1.0.2", cs3);
    assert_true(wait_serves(t, cs3));
    assert_true(itest_wait_for(processor_unverified, NULL, 5000, 20) >= 0);

    /* Redis goes back to an older, verified version: the edge keeps 1.0.2,
     * reports "state_behind" and the tenant degraded. */
    char old_doc[512];
    snprintf(old_doc, sizeof old_doc, "{\"governance\":{\"signature_threshold\":2},"
             "\"rules\":{\"max_risk_score\":0.8,\"permitted_tool_categories\":[\"search\"],"
             "\"prohibited_actions\":[\"exfiltrate\"],\"require_human_approval_above_risk\":0.5},"
             "\"tenant\":\"%s\",\"version\":\"1.0.0\"}", t);
    forge(t, old_doc, AB, cs_old);
    metric_wait_t mw = {t, "state_behind"};
    assert_true(itest_wait_for(reloaded_with, &mw, 10000, 20) >= 0);
    assert_true(wait_serves(t, cs3));
    assert_true(readyz_degraded(t));
    assert_true(refused(t, "state_behind") >= 1);
    snprintf(env_reconcile, sizeof env_reconcile, "GOV_RECONCILE=%s", "60s");
}

/* Finding 11 of the review: a pack this edge refuses (signed by a key its
 * rule-pack trust does not hold) does not freeze the tenant's constitution:
 * a newly verified constitution is served, the pack stays refused. */
static void test_refused_pack_does_not_freeze_the_constitution(void **state) {
    (void)state;
    char t[64], cs1[129], cs2[129], eb[200];
    itest_unique("fp", t, sizeof t);
    publish_version(t, "1.0.0", cs1);
    assert_true(wait_serves(t, cs1));

    /* The demo pack for t, signed by mallory only, written straight to Redis. */
    char *text = itest_read_file("deploy/demo/rulepack-demo.json", NULL), buf[128];
    snprintf(buf, sizeof buf, "\"tenant\": \"%s\"", t);
    char *pack = itest_replace_once(text, "\"tenant\": \"demo\"", buf);
    free(text);
    json_t *ev = json_pack("{s:s}", "rulepack_json", pack);
    itest_sign_rulepack_event(ev, keys, names, (const int[]){3, -1});
    char *sigs = json_dumps(json_object_get(ev, "signatures"), JSON_COMPACT);
    assert_int_equal(gov_redis_commandf(itest_redis(), NULL, eb, sizeof eb,
                                        "SET policy:rulepack:{%s} %s", t, pack), GOV_OK);
    assert_int_equal(gov_redis_commandf(itest_redis(), NULL, eb, sizeof eb,
                                        "HSET policy:rulepack:{%s}:meta signatures %s", t, sigs),
                     GOV_OK);
    assert_int_equal(gov_redis_commandf(itest_redis(), NULL, eb, sizeof eb,
                                        "SADD policy:rulepack:tenants %s", t), GOV_OK);
    free(sigs);
    free(pack);
    json_decref(ev);

    /* The running edge (reconcile 60 s) hears of it with the next update. */
    publish_version(t, "1.0.1", cs2);
    assert_true(wait_serves(t, cs2));
    assert_true(itest_wait_for(refused_pack, t, 10000, 20) >= 0);
    assert_true(readyz_degraded(t));
}

static void test_bad_requests_and_metrics(void **state) {
    (void)state;
    char *body = NULL;
    assert_int_equal(itest_proc_get(&edge, "/v1/constitution/bad%7Dtenant", &body), 400);
    assert_non_null(strstr(body, "\"invalid_tenant\""));
    free(body);
    assert_int_equal(itest_proc_get(&edge, "/v1/constitution/nobody-here", &body), 404);
    free(body);
    assert_int_equal(itest_proc_get(&edge, "/v1/nothing", &body), 404);
    assert_non_null(strstr(body, "{\"error\":{\"code\":\"not_found\""));
    free(body);
    assert_int_equal(itest_proc_get(&edge, "/metrics", &body), 200);
    assert_int_equal(itest_promtool_check(body), 0);
    free(body);
    assert_int_equal(itest_proc_get(&proc, "/metrics", &body), 200);
    assert_int_equal(itest_promtool_check(body), 0);
    free(body);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_bundle_is_served_within_a_second),
        cmocka_unit_test(test_every_bad_bundle_is_rejected_with_its_reason),
        cmocka_unit_test(test_cross_tenant_replay_and_unbound_documents_refused),
        cmocka_unit_test(test_successor_dropping_governance_refused),
        cmocka_unit_test(test_replay_is_a_duplicate_and_newer_version_rebinds),
        cmocka_unit_test(test_replay_of_the_current_bundle_is_silent),
        cmocka_unit_test(test_rewound_partition_reapplies_nothing),
        cmocka_unit_test(test_applied_offset_beyond_the_partition_end_is_judged),
        cmocka_unit_test(test_watermark_beyond_the_partition_end_is_explained),
        cmocka_unit_test(test_restarted_edge_loads_from_redis_and_refuses_tampered_state),
        cmocka_unit_test(test_edge_verifies_what_redis_holds),
        cmocka_unit_test(test_forged_fields_never_decide),
        cmocka_unit_test(test_refused_pack_does_not_freeze_the_constitution),
        cmocka_unit_test(test_bad_requests_and_metrics),
    };
    return cmocka_run_group_tests_name("constitution-chain", tests, setup, teardown);
}
