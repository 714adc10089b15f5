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
#include <openssl/pem.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

static pid_t redis_pid = -1, proc_pid = -1, edge_pid = -1;
static int redis_port, proc_port, edge_port;
static char tenant[64], trust_path[512];
static char env_redis[48], env_group[160], env_admin[48], env_trust[560], env_port[48],
    env_maxdoc[48], env_reconcile[48];
static EVP_PKEY *keys[4]; /* alice, bob, carol trusted; mallory not */
static const char *names[4] = {"alice", "bob", "carol", "mallory"};

static char *pem_of(EVP_PKEY *k) {
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, k);
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(bio);
    return out;
}

static void start_edge(void) {
    const char *env[] = {env_redis, env_port, env_reconcile, NULL};
    const char *argv[] = {itest_bin("gov-edge"), NULL};
    edge_pid = itest_spawn(argv, env, "itest-constitution-edge.log");
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", edge_port);
    if (!itest_wait_http(url, 200, 30000))
        fail_msg("gov-edge did not become ready (var/test-logs/itest-constitution-edge.log)");
}

static int setup(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
        EVP_PKEY_keygen_init(kc);
        EVP_PKEY_keygen(kc, &keys[i]);
        EVP_PKEY_CTX_free(kc);
    }
    char *p0 = pem_of(keys[0]), *p1 = pem_of(keys[1]), *p2 = pem_of(keys[2]);
    json_t *trust = json_pack("{s:i, s:{s:s, s:s, s:s}}", "threshold", 2, "signers", "alice", p0,
                              "bob", p1, "carol", p2);
    free(p0);
    free(p1);
    free(p2);
    snprintf(trust_path, sizeof trust_path, "%s", itest_path("var/test-logs/itest-trust.json"));
    if (json_dump_file(trust, trust_path, 0) != 0)
        fail_msg("cannot write %s", trust_path);
    json_decref(trust);

    redis_pid = itest_private_redis("constitution", &redis_port);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_redis);
    char group[96];
    itest_unique("itest-constitution", group, sizeof group);
    snprintf(env_group, sizeof env_group, "GOV_KAFKA_GROUP=%s", group);
    proc_port = 18900 + (int)(getpid() % 100);
    edge_port = proc_port + 100;
    snprintf(env_admin, sizeof env_admin, "GOV_ADMIN_PORT=%d", proc_port);
    snprintf(env_trust, sizeof env_trust, "GOV_TRUST_FILE=%s", trust_path);
    snprintf(env_port, sizeof env_port, "GOV_PORT=%d", edge_port);
    snprintf(env_maxdoc, sizeof env_maxdoc, "GOV_MAX_DOCUMENT=%d", 8192);
    snprintf(env_reconcile, sizeof env_reconcile, "GOV_RECONCILE=%s", "60s");
    const char *env[] = {env_redis, env_group, env_admin, env_trust, env_maxdoc, NULL};
    const char *argv[] = {itest_bin("gov-constitution"), NULL};
    proc_pid = itest_spawn(argv, env, "itest-gov-constitution.log");
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", proc_port);
    if (!itest_wait_http(url, 200, 30000))
        fail_msg("gov-constitution did not become ready (var/test-logs/itest-gov-constitution.log)");
    start_edge();
    if (!itest_wait_caught_up(proc_port, 3, 120000))
        fail_msg("gov-constitution did not catch up with constitution.bundles");
    itest_unique("acme", tenant, sizeof tenant);
    return 0;
}

static int stop_clean(pid_t pid, const char *what) {
    if (pid <= 0)
        return 0;
    int st = itest_stop(pid, SIGTERM, 15000);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "%s did not exit cleanly on SIGTERM (status %d)\n", what, st);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = stop_clean(edge_pid, "gov-edge") | stop_clean(proc_pid, "gov-constitution");
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    for (int i = 0; i < 4; i++)
        EVP_PKEY_free(keys[i]);
    return rc;
}

/* --- building and publishing bundles --------------------------------------------- */

static void sign_hex(int who, const char *msg, char out[129]) {
    unsigned char sig[64];
    size_t sl = 64;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestSignInit(ctx, NULL, NULL, NULL, keys[who]);
    EVP_DigestSign(ctx, sig, &sl, (const unsigned char *)msg, strlen(msg));
    EVP_MD_CTX_free(ctx);
    gov_hex_encode(sig, 64, out);
}

static void checksum_of(const char *doc, const char *canon, const char *alg, char out[129]) {
    json_t *d = NULL;
    char eb[200];
    gov_canon_t kind;
    assert_int_equal(gov_canon_from_name(canon, &kind), 0);
    assert_int_equal(gov_canon_parse(doc, strlen(doc), &d, NULL, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_canon_checksum(d, kind, alg, out, eb, sizeof eb), GOV_OK);
    json_decref(d);
}

/* A bundle event: document text, forms, checksum (NULL = computed), signers
 * (indexes, -1 ends). */
static json_t *bundle(const char *doc, const char *canon, const char *alg, const char *checksum,
                      const int *who) {
    char cs[129];
    if (checksum)
        snprintf(cs, sizeof cs, "%s", checksum);
    else
        checksum_of(doc, canon, alg, cs);
    json_t *sigs = json_array();
    for (int i = 0; who[i] >= 0; i++) {
        char sig[129];
        sign_hex(who[i], cs, sig);
        json_array_append_new(sigs, json_pack("{s:s, s:s, s:s}", "signer_id", names[who[i]],
                                              "algorithm", "ed25519", "signature", sig));
    }
    char id[37];
    gov_uuid_v7(id);
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:n}", "event_id", id,
                     "occurred_at", (json_int_t)gov_now_micros(), "tenant", tenant,
                     "document_json", doc, "canonicalization", canon, "hash_alg", alg,
                     "checksum", cs, "signatures", sigs, "source", "itest", "etag");
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
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/constitution/%s%s", edge_port, tenant, suffix);
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
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/constitution", edge_port);
    assert_int_equal(itest_http_get(url, &body), 200);
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

static double rejected(const char *reason) {
    char url[96], *body = NULL, f1[128], f2[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", proc_port);
    if (itest_http_get(url, &body) != 200) {
        free(body);
        return -1;
    }
    snprintf(f1, sizeof f1, "tenant=\"%s\"", tenant);
    snprintf(f2, sizeof f2, "reason=\"%s\"", reason);
    const char *flt[] = {f1, f2, NULL};
    double v = itest_metric(body, "constitution_rejected_total", flt);
    free(body);
    return v < 0 ? 0 : v;
}

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
    checksum_of(doc, "jcs", "sha256", cs);
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

static void test_restarted_edge_loads_from_redis_and_refuses_tampered_state(void **state) {
    (void)state;
    assert_int_equal(stop_clean(edge_pid, "gov-edge"), 0);
    edge_pid = -1;
    start_edge();
    assert_true(wait_served(good_checksum, 5000) >= 0);

    /* tamper with the stored document: a fresh edge refuses to serve it */
    char eb[200];
    assert_int_equal(gov_redis_commandf(itest_redis(), NULL, eb, sizeof eb,
                                        "APPEND constitution:{%s}:doc %s", tenant, " "), GOV_OK);
    assert_int_equal(stop_clean(edge_pid, "gov-edge"), 0);
    edge_pid = -1;
    start_edge();
    long st;
    char *body = edge_get("/hash", &st);
    assert_int_equal(st, 404);
    assert_non_null(strstr(body, "constitution_not_found"));
    free(body);
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", edge_port);
    assert_int_equal(itest_http_get(url, &body), 200);
    char f1[128];
    snprintf(f1, sizeof f1, "tenant=\"%s\"", tenant);
    const char *flt[] = {f1, "outcome=\"verification_failed\"", NULL};
    assert_true(itest_metric(body, "edge_state_reloads_total", flt) >= 1);
    free(body);
}

static void test_bad_requests_and_metrics(void **state) {
    (void)state;
    char url[160], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/constitution/bad%%7Dtenant", edge_port);
    assert_int_equal(itest_http_get(url, &body), 400);
    assert_non_null(strstr(body, "\"invalid_tenant\""));
    free(body);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/constitution/nobody-here", edge_port);
    assert_int_equal(itest_http_get(url, &body), 404);
    free(body);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/nothing", edge_port);
    assert_int_equal(itest_http_get(url, &body), 404);
    assert_non_null(strstr(body, "{\"error\":{\"code\":\"not_found\""));
    free(body);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", edge_port);
    assert_int_equal(itest_http_get(url, &body), 200);
    assert_int_equal(itest_promtool_check(body), 0);
    free(body);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", proc_port);
    assert_int_equal(itest_http_get(url, &body), 200);
    assert_int_equal(itest_promtool_check(body), 0);
    free(body);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_bundle_is_served_within_a_second),
        cmocka_unit_test(test_every_bad_bundle_is_rejected_with_its_reason),
        cmocka_unit_test(test_replay_is_a_duplicate_and_newer_version_rebinds),
        cmocka_unit_test(test_restarted_edge_loads_from_redis_and_refuses_tampered_state),
        cmocka_unit_test(test_bad_requests_and_metrics),
    };
    return cmocka_run_group_tests_name("constitution-chain", tests, setup, teardown);
}
