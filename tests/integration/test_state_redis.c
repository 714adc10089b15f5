/* test_state_redis.c - gov_state's readers and writers against a real Redis.
 *
 * The processors' integration tests (test_constitution_chain, test_rulepacks,
 * test_audit) check what an operator sees after one writer.  This file checks
 * what they cannot reach: two writers racing on the same tenant (the
 * compare-and-set of the constitution and rule pack scripts, the audit
 * script's compare-and-append against a stale head), the history caps, and
 * that a write with an unsafe tenant id touches nothing.  It runs against a
 * private redis-server (itest_private_redis) so it never disturbs the stack,
 * and reads the results back both through gov_state and with plain Redis
 * commands on the documented keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_state.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

static pid_t redis_pid = -1;
static int redis_port;
static char env_port[48];

static int setup(void **state) {
    (void)state;
    redis_pid = itest_private_redis("state", &redis_port);
    snprintf(env_port, sizeof env_port, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_port); /* itest_redis() and govctl use it */
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    return 0;
}

/* A string reply of `cmd` (printf-style) into out ("" for nil). */
static void redis_str(char *out, size_t size, const char *fmt, const char *arg) {
    char eb[256];
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, fmt, arg), GOV_OK);
    snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

static long long redis_int(const char *fmt, const char *arg) {
    char eb[256];
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, fmt, arg), GOV_OK);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static gov_state_constitution_accepted_t constitution(const char *tenant, const char *checksum,
                                                      const char *version) {
    return (gov_state_constitution_accepted_t){
        tenant, checksum, "sha256", "rfc8785", version, "alice,bob", "itest", "bundle-1",
        1700000000000000LL, "{\"v\":1}", 7,
        "[{\"signer_id\":\"alice\",\"algorithm\":\"ed25519\",\"signature\":\"aa\"}]",
    };
}

static void test_constitution_write_is_compare_and_set(void **state) {
    (void)state;
    char tenant[64], eb[256], got[256];
    itest_unique("c", tenant, sizeof tenant);
    gov_redis_t *r = itest_redis();
    gov_state_pos_t pos = {"gov-constitution", "constitution.bundles", 2, 10, tenant};

    gov_state_constitution_accepted_t a = constitution(tenant, "c1", "1.0.0");
    assert_int_equal(gov_state_constitution_write(r, &a, NULL, &pos, eb, sizeof eb), GOV_OK);
    /* a second writer that verified against "no constitution" loses */
    gov_state_constitution_accepted_t b = constitution(tenant, "c2", "2.0.0");
    pos.offset = 11;
    assert_int_equal(gov_state_constitution_write(r, &b, NULL, &pos, eb, sizeof eb),
                     GOV_ERR_CONFLICT);
    redis_str(got, sizeof got, "HGET constitution:{%s} checksum", tenant);
    assert_string_equal(got, "c1");
    redis_str(got, sizeof got, "GET gov:applied:{%s}:gov-constitution:constitution.bundles:2", tenant);
    assert_string_equal(got, "10");
    /* re-read, decide again against the winner: lands, c1 goes to the history */
    gov_state_constitution_t cur;
    assert_int_equal(gov_state_constitution_read(r, tenant, &cur, eb, sizeof eb), GOV_OK);
    assert_string_equal(cur.checksum, "c1");
    assert_string_equal(cur.version, "1.0.0");
    assert_int_equal(cur.nhistory, 0);
    assert_int_equal(gov_state_constitution_write(r, &b, cur.checksum, &pos, eb, sizeof eb), GOV_OK);
    gov_state_constitution_clear(&cur);
    assert_int_equal(gov_state_constitution_read(r, tenant, &cur, eb, sizeof eb), GOV_OK);
    assert_string_equal(cur.checksum, "c2");
    assert_int_equal(cur.nhistory, 1);
    assert_string_equal(cur.history[0], "c1");
    gov_state_constitution_clear(&cur);
    redis_str(got, sizeof got, "GET constitution:{%s}:doc", tenant);
    assert_string_equal(got, "{\"v\":1}");
    redis_str(got, sizeof got, "HGET constitution:{%s} signers", tenant);
    assert_string_equal(got, "alice,bob");
    redis_str(got, sizeof got, "HGET constitution:{%s} signatures", tenant);
    assert_string_equal(got, "[{\"signer_id\":\"alice\",\"algorithm\":\"ed25519\",\"signature\":\"aa\"}]");
    /* A constitution stored without signatures (before they were) gets
     * them, only for its own checksum and only once. */
    assert_int_equal(redis_int("HDEL constitution:{%s} signatures", tenant), 1);
    assert_int_equal(gov_state_constitution_read(r, tenant, &cur, eb, sizeof eb), GOV_OK);
    assert_int_equal(cur.has_signatures, 0);
    gov_state_constitution_clear(&cur);
    assert_int_equal(gov_state_constitution_add_signatures(r, tenant, "c1", "[1]", eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(redis_int("HEXISTS constitution:{%s} signatures", tenant), 0);
    assert_int_equal(gov_state_constitution_add_signatures(r, tenant, "c2", "[2]", eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(gov_state_constitution_add_signatures(r, tenant, "c2", "[3]", eb, sizeof eb),
                     GOV_OK);
    redis_str(got, sizeof got, "HGET constitution:{%s} signatures", tenant);
    assert_string_equal(got, "[2]");
    assert_int_equal(gov_state_constitution_read(r, tenant, &cur, eb, sizeof eb), GOV_OK);
    assert_int_equal(cur.has_signatures, 1);
    gov_state_constitution_clear(&cur);
    redis_str(got, sizeof got, "GET gov:applied:{%s}:gov-constitution:constitution.bundles:2", tenant);
    assert_string_equal(got, "11");
    assert_int_equal(redis_int("SISMEMBER gov:{tenants}:constitution %s", tenant), 1);

    /* the history keeps the newest 100 */
    char prev[32] = "c2", next[32];
    for (int i = 3; i <= 103; i++) {
        snprintf(next, sizeof next, "c%d", i);
        gov_state_constitution_accepted_t n = constitution(tenant, next, "3.0.0");
        assert_int_equal(gov_state_constitution_write(r, &n, prev, &pos, eb, sizeof eb), GOV_OK);
        memcpy(prev, next, sizeof prev);
    }
    assert_int_equal(redis_int("LLEN constitution:{%s}:history", tenant),
                     GOV_STATE_CONSTITUTION_HISTORY_MAX);
    assert_int_equal(gov_state_constitution_read(r, tenant, &cur, eb, sizeof eb), GOV_OK);
    assert_string_equal(cur.history[0], "c102");
    assert_string_equal(cur.history[GOV_STATE_CONSTITUTION_HISTORY_MAX - 1], "c3");
    gov_state_constitution_clear(&cur);
}

static gov_state_rulepack_accepted_t rulepack(const char *tenant, const char *canonical,
                                              const char *sha256, const char *version,
                                              const char *previous) {
    return (gov_state_rulepack_accepted_t){
        tenant, canonical, strlen(canonical), sha256, "pack-1", version, 2, 3, "ev-1",
        "alice", 1700000000000000LL, previous, "[]", "",
    };
}

static void sha256_hex(const char *s, char out[GOV_SHA256_HEXLEN + 1]) {
    unsigned char md[GOV_SHA256_LEN];
    assert_int_equal(gov_sha256(s, strlen(s), md), GOV_OK);
    gov_hex_encode(md, GOV_SHA256_LEN, out);
}

static void test_rulepack_write_is_compare_and_set_on_the_bytes(void **state) {
    (void)state;
    char tenant[64], eb[256], got[256], h1[GOV_SHA256_HEXLEN + 1], h2[GOV_SHA256_HEXLEN + 1];
    itest_unique("r", tenant, sizeof tenant);
    gov_redis_t *r = itest_redis();
    gov_state_pos_t pos = {"gov-rulepacks", "policy.rulepacks", 0, 5, tenant};
    sha256_hex("{\"version\":\"1\"}", h1);
    sha256_hex("{\"version\":\"2\"}", h2);

    gov_state_rulepack_t none, cur;
    assert_int_equal(gov_state_rulepack_read(r, tenant, &none, eb, sizeof eb), GOV_OK);
    assert_null(none.canonical);
    assert_string_equal(none.sha256, "");
    gov_state_rulepack_accepted_t a = rulepack(tenant, "{\"version\":\"1\"}", h1, "1", "");
    assert_int_equal(gov_state_rulepack_write(r, &a, &none, &pos, eb, sizeof eb), GOV_OK);
    /* a replica that decided against "no pack" loses */
    gov_state_rulepack_accepted_t b = rulepack(tenant, "{\"version\":\"2\"}", h2, "2", "1");
    pos.offset = 6;
    assert_int_equal(gov_state_rulepack_write(r, &b, &none, &pos, eb, sizeof eb),
                     GOV_ERR_CONFLICT);
    redis_str(got, sizeof got, "GET policy:rulepack:{%s}", tenant);
    assert_string_equal(got, "{\"version\":\"1\"}");
    redis_str(got, sizeof got, "GET gov:applied:{%s}:gov-rulepacks:policy.rulepacks:0", tenant);
    assert_string_equal(got, "5");

    assert_int_equal(gov_state_rulepack_read(r, tenant, &cur, eb, sizeof eb), GOV_OK);
    assert_string_equal(cur.sha256, h1);
    assert_string_equal(cur.event_id, "ev-1");
    assert_string_equal(cur.previous_version, "");
    assert_true(gov_state_rulepack_knows(&cur, h1));
    assert_false(gov_state_rulepack_knows(&cur, h2));
    assert_int_equal(gov_state_rulepack_write(r, &b, &cur, &pos, eb, sizeof eb), GOV_OK);
    gov_state_rulepack_clear(&cur);

    assert_int_equal(gov_state_rulepack_read(r, tenant, &cur, eb, sizeof eb), GOV_OK);
    assert_string_equal(cur.sha256, h2);
    assert_string_equal(cur.previous_version, "1");
    assert_int_equal(cur.nhistory, 1);
    assert_string_equal(cur.history[0], h1);
    assert_true(gov_state_rulepack_knows(&cur, h1));   /* a replayed v1 is known */
    gov_state_rulepack_clear(&cur);
    redis_str(got, sizeof got, "HGET policy:rulepack:{%s}:meta sha256", tenant);
    assert_string_equal(got, h2);
    redis_str(got, sizeof got, "HGET policy:rulepack:{%s}:meta patterns", tenant);
    assert_string_equal(got, "3");
    redis_str(got, sizeof got, "GET gov:applied:{%s}:gov-rulepacks:policy.rulepacks:0", tenant);
    assert_string_equal(got, "6");
    assert_int_equal(redis_int("SISMEMBER gov:{tenants}:rulepack %s", tenant), 1);
}

/* Counts tenant in gov_state_tenants_read's union. */
static int tenants_holds(const char *tenant) {
    char eb[256];
    gov_state_tenants_t all;
    assert_int_equal(gov_state_tenants_read(itest_redis(), &all, eb, sizeof eb), GOV_OK);
    int found = 0;
    for (size_t i = 0; i < all.count; i++) {
        size_t len;
        const char *t = gov_state_tenants_get(&all, i, &len);
        found += len == strlen(tenant) && memcmp(t, tenant, len) == 0;
    }
    gov_state_tenants_clear(&all);
    return found;
}

static void test_served_state_reads_what_was_written(void **state) {
    (void)state;
    char tenant[64], eb[256], h1[GOV_SHA256_HEXLEN + 1];
    itest_unique("s", tenant, sizeof tenant);
    gov_redis_t *r = itest_redis();
    gov_state_pos_t pos = {"gov-constitution", "constitution.bundles", 0, 1, tenant};

    gov_state_served_t st;
    assert_int_equal(gov_state_served_read(r, tenant, &st, eb, sizeof eb), GOV_OK);
    assert_null(st.checksum);
    assert_null(st.doc);
    assert_null(st.pack);
    gov_state_served_clear(&st);
    int same = 0;
    assert_int_equal(gov_state_served_same(r, tenant, "", "", &same, eb, sizeof eb), GOV_OK);
    assert_true(same);

    gov_state_constitution_accepted_t a = constitution(tenant, "c1", "1.2.3");
    assert_int_equal(gov_state_constitution_write(r, &a, NULL, &pos, eb, sizeof eb), GOV_OK);
    sha256_hex("{\"version\":\"1\"}", h1);
    gov_state_rulepack_t none = {0};
    gov_state_rulepack_accepted_t p = rulepack(tenant, "{\"version\":\"1\"}", h1, "1", "");
    pos = (gov_state_pos_t){"gov-rulepacks", "policy.rulepacks", 0, 1, tenant};
    assert_int_equal(gov_state_rulepack_write(r, &p, &none, &pos, eb, sizeof eb), GOV_OK);

    assert_int_equal(gov_state_served_read(r, tenant, &st, eb, sizeof eb), GOV_OK);
    assert_string_equal(st.checksum, "c1");
    assert_string_equal(st.hash_alg, "sha256");
    assert_string_equal(st.canonicalization, "rfc8785");
    assert_string_equal(st.version, "1.2.3");
    assert_string_equal(st.verified_at, "1700000000000000");
    assert_string_equal(st.signers, "alice,bob");
    assert_string_equal(st.source, "itest");
    assert_int_equal(st.doc_len, 7);
    assert_memory_equal(st.doc, "{\"v\":1}", 7);
    assert_int_equal(st.pack_len, strlen("{\"version\":\"1\"}"));
    assert_memory_equal(st.pack, "{\"version\":\"1\"}", st.pack_len);
    gov_state_served_clear(&st);

    assert_int_equal(gov_state_served_same(r, tenant, "c1", h1, &same, eb, sizeof eb), GOV_OK);
    assert_true(same);
    assert_int_equal(gov_state_served_same(r, tenant, "c0", h1, &same, eb, sizeof eb), GOV_OK);
    assert_false(same);
    assert_int_equal(gov_state_served_same(r, tenant, "c1", "", &same, eb, sizeof eb), GOV_OK);
    assert_false(same);

    assert_int_equal(tenants_holds(tenant), 1);   /* in both sets, once in the union */
}

/* A single-node deployment from before the {tenants} tag has its tenants in
 * constitution:tenants / policy:rulepack:tenants: a read copies them into
 * the tagged sets, with no operator step, and a member an older writer adds
 * later (a rolling upgrade) is copied by the next read.  The legacy sets
 * stay, members and all (REVIEW14 M3): an older edge restarted meanwhile
 * still reads its tenants there. */
static void test_legacy_tenant_index_is_moved_on_read(void **state) {
    (void)state;
    char c_only[64], p_only[64], late[64];
    itest_unique("lc", c_only, sizeof c_only);
    itest_unique("lp", p_only, sizeof p_only);
    itest_unique("ll", late, sizeof late);
    assert_int_equal(redis_int("SADD constitution:tenants %s", c_only), 1);
    assert_int_equal(redis_int("SADD policy:rulepack:tenants %s", p_only), 1);
    assert_int_equal(tenants_holds(c_only), 1);
    assert_int_equal(tenants_holds(p_only), 1);
    assert_int_equal(redis_int("SISMEMBER gov:{tenants}:constitution %s", c_only), 1);
    assert_int_equal(redis_int("SISMEMBER gov:{tenants}:rulepack %s", p_only), 1);
    assert_int_equal(redis_int("SISMEMBER constitution:tenants %s", c_only), 1);
    assert_int_equal(redis_int("SISMEMBER policy:rulepack:tenants %s", p_only), 1);
    assert_int_equal(redis_int("SADD constitution:tenants %s", late), 1);
    assert_int_equal(tenants_holds(late), 1);
    assert_int_equal(tenants_holds(c_only), 1); /* copied members stay */
    assert_int_equal(redis_int("SISMEMBER constitution:tenants %s", c_only), 1);
}

static void test_audit_writers_sharing_a_tenant_keep_one_chain(void **state) {
    (void)state;
    char tenant[64], eb[256], got[256], out[4096];
    itest_unique("a", tenant, sizeof tenant);
    gov_redis_t *r = itest_redis();
    /* two writers: each one's cached head goes stale whenever the other
     * appends, so every other append goes through the conflict path */
    gov_state_audit_t *w1 = gov_state_audit_new(r, 3600), *w2 = gov_state_audit_new(r, 3600);
    assert_non_null(w1);
    assert_non_null(w2);
    json_t *first = NULL;
    for (int i = 0; i < 10; i++) {
        json_t *e = itest_audit_event(tenant, "token.issued");
        gov_state_pos_t pos = {"gov-audit", "identity.audit", 1, 100 + i, NULL};
        assert_int_equal(gov_state_audit_append(i % 2 ? w2 : w1, e, "AuditEvent", "identity.audit/1/0",
                                                &pos, NULL, NULL, eb, sizeof eb), GOV_OK);
        if (first == NULL)
            first = e;
        else
            json_decref(e);
    }
    char decision_id[GOV_UUID_STRLEN + 1];
    assert_int_equal(gov_uuid_v7(decision_id), GOV_OK);
    json_t *d = itest_decision_event(tenant, decision_id);
    gov_state_pos_t dpos = {"gov-audit", "policy.decisions", 0, 7, NULL};
    gov_state_audit_twin_t twin = GOV_STATE_AUDIT_TWIN_EVENT_ID;
    assert_int_equal(gov_state_audit_append(w2, d, "PolicyDecision", "policy.decisions/0/7", &dpos,
                                            &twin, NULL, eb, sizeof eb), GOV_OK);
    assert_int_equal(twin, GOV_STATE_AUDIT_TWIN_NONE);
    /* Decision records are write-once: another event (a new event_id) naming
     * the same decision_id, with another decision, is a conflicting twin:
     * chained as its own entry (nothing is lost), the record is not
     * overwritten but marked with the twin's event_id. */
    char record[64], dkey[200];
    snprintf(dkey, sizeof dkey, "policy:decision:{%s}:%s", tenant, decision_id);
    redis_str(record, sizeof record, "HGET %s decision", dkey);
    assert_string_equal(record, "review");
    json_t *d2 = json_deep_copy(d);
    char ev2[GOV_UUID_STRLEN + 1];
    assert_int_equal(gov_uuid_v7(ev2), GOV_OK);
    json_object_set_new(d2, "event_id", json_string(ev2));
    json_object_set_new(d2, "decision", json_string("allow"));
    dpos.offset = 8;
    assert_int_equal(gov_state_audit_append(w1, d2, "PolicyDecision", "policy.decisions/0/8", &dpos,
                                            &twin, NULL, eb, sizeof eb), GOV_OK);
    assert_int_equal(twin, GOV_STATE_AUDIT_TWIN_DECISION_ID);
    redis_str(record, sizeof record, "HGET %s decision", dkey);
    assert_string_equal(record, "review");
    redis_str(record, sizeof record, "HGET %s conflicting_event_id", dkey);
    assert_string_equal(record, ev2);
    /* the twin again is a plain replay: no third entry */
    assert_int_equal(gov_state_audit_append(w2, d2, "PolicyDecision", "policy.decisions/0/8", &dpos,
                                            &twin, NULL, eb, sizeof eb), GOV_ERR_DUPLICATE);
    json_decref(d2);
    json_decref(d);
    assert_int_equal(redis_int("XLEN audit:{%s}", tenant), 12);
    redis_str(got, sizeof got, "HGET audit:{%s}:head seq", tenant);
    assert_string_equal(got, "12");

    /* a replay is a duplicate: the stream stays, the offset moves on */
    gov_state_pos_t replay = {"gov-audit", "identity.audit", 1, 200, NULL};
    assert_int_equal(gov_state_audit_append(w2, first, "AuditEvent", "identity.audit/1/0",
                                            &replay, NULL, NULL, eb, sizeof eb), GOV_ERR_DUPLICATE);
    json_decref(first);
    assert_int_equal(redis_int("XLEN audit:{%s}", tenant), 12);
    redis_str(got, sizeof got, "GET gov:applied:{%s}:gov-audit:identity.audit:1", tenant);
    assert_string_equal(got, "200");
    redis_str(got, sizeof got, "GET gov:applied:{%s}:gov-audit:policy.decisions:0", tenant);
    assert_string_equal(got, "8");

    /* the decision is readable, with its TTL */
    redisReply *fields = NULL;
    assert_int_equal(gov_state_decision_read(r, tenant, decision_id, &fields, eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(fields->type, REDIS_REPLY_ARRAY);
    int score = 0;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (strcmp(fields->element[i]->str, "score") == 0)
            score = strcmp(fields->element[i + 1]->str, "0.350000") == 0;
    freeReplyObject(fields);
    assert_true(score);
    char key[200];
    snprintf(key, sizeof key, "policy:decision:{%s}:%s", tenant, decision_id);
    long long ttl = redis_int("TTL %s", key);
    assert_true(ttl > 3500 && ttl <= 3600);

    /* the chain verifies end to end (govctl reads through gov_state too) */
    const char *argv[] = {itest_bin("govctl"), "audit", "verify", "--tenant", tenant, NULL};
    assert_int_equal(itest_run(argv, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "entries=12"));
    gov_state_audit_free(w1);
    gov_state_audit_free(w2);
}

/* Dedup compares content: whoever writes an event_id first cannot keep a
 * later, different event under that id out of the chain (review finding 2b:
 * a harmless event pre-published under a derived id). */
/* Appends ev as the message at `offset` of identity.audit partition 1. */
static gov_err_t append_at(gov_state_audit_t *w, json_t *ev, int64_t offset,
                           gov_state_audit_twin_t *twin) {
    char eb[256], source[64];
    snprintf(source, sizeof source, "identity.audit/1/%lld", (long long)offset);
    gov_state_pos_t pos = {"gov-audit", "identity.audit", 1, offset, NULL};
    gov_err_t err = gov_state_audit_append(w, ev, "AuditEvent", source, &pos, twin, NULL, eb, sizeof eb);
    if (err != GOV_OK && err != GOV_ERR_DUPLICATE)
        print_message("append at %lld: %s\n", (long long)offset, eb);
    return err;
}

static void test_audit_same_id_other_content_is_chained(void **state) {
    (void)state;
    char tenant[64], eb[256], got[256];
    itest_unique("tw", tenant, sizeof tenant);
    gov_state_audit_t *w = gov_state_audit_new(itest_redis(), 3600);
    assert_non_null(w);
    json_t *harmless = itest_audit_event(tenant, "rulepack.accepted");
    json_t *real = json_deep_copy(harmless);
    json_object_set_new(real, "action", json_string("rulepack.rejected"));
    gov_state_audit_twin_t twin = GOV_STATE_AUDIT_TWIN_DECISION_ID;
    assert_int_equal(append_at(w, harmless, 10, &twin), GOV_OK);
    assert_int_equal(twin, GOV_STATE_AUDIT_TWIN_NONE);
    /* the identical event again (a producer retry): silent */
    assert_int_equal(append_at(w, harmless, 11, &twin), GOV_ERR_DUPLICATE);
    /* ...and so is a re-emission that differs only in occurred_at (a
     * processor re-deriving the id after a crash) */
    json_t *reemitted = json_deep_copy(harmless);
    json_object_set_new(reemitted, "occurred_at",
                        json_integer(json_integer_value(json_object_get(harmless, "occurred_at")) + 7));
    assert_int_equal(append_at(w, reemitted, 11, &twin), GOV_ERR_DUPLICATE);
    json_decref(reemitted);
    /* the real one under the same id: chained as a twin */
    assert_int_equal(append_at(w, real, 12, &twin), GOV_OK);
    assert_int_equal(twin, GOV_STATE_AUDIT_TWIN_EVENT_ID);
    assert_int_equal(append_at(w, real, 13, &twin), GOV_ERR_DUPLICATE);
    assert_int_equal(redis_int("XLEN audit:{%s}", tenant), 2);
    redisReply *last = NULL;
    const char *argv[] = {"XREVRANGE", NULL, "+", "-", "COUNT", "1"};
    char key[128];
    snprintf(key, sizeof key, "audit:{%s}", tenant);
    argv[1] = key;
    assert_int_equal(gov_redis_command(itest_redis(), &last, 6, argv, NULL, eb, sizeof eb), GOV_OK);
    assert_int_equal(last->elements, 1);
    int has_rejected = 0;
    redisReply *fv = last->element[0]->element[1];
    for (size_t i = 0; i + 1 < fv->elements; i += 2)
        if (strcmp(fv->element[i]->str, "payload") == 0)
            has_rejected = strstr(fv->element[i + 1]->str, "rulepack.rejected") != NULL;
    freeReplyObject(last);
    assert_true(has_rejected);

    /* Bounded (finding 10): with a zero window, the next append drops every
     * earlier id from :ids and its age index, and keeps its own. */
    gov_state_audit_set_id_window(w, 0);
    assert_int_equal(redis_int("HLEN audit:{%s}:ids", tenant), 2);
    json_t *later = itest_audit_event(tenant, "token.issued");
    assert_int_equal(append_at(w, later, 14, &twin), GOV_OK);
    assert_int_equal(redis_int("HLEN audit:{%s}:ids", tenant), 1);
    assert_int_equal(redis_int("ZCARD audit:{%s}:ids:age", tenant), 1);
    redis_str(got, sizeof got, "HGET audit:{%s}:head seq", tenant);
    assert_string_equal(got, "3");
    json_decref(later);
    json_decref(real);
    json_decref(harmless);
    gov_state_audit_free(w);
}

static void test_unsafe_tenant_touches_nothing(void **state) {
    (void)state;
    char eb[256];
    gov_redis_t *r = itest_redis();
    long long before = redis_int("DBSIZE%s", "");
    gov_state_pos_t pos = {"gov-constitution", "constitution.bundles", 0, 1, "ok"};
    gov_state_constitution_accepted_t a = constitution("x}y", "c1", "1.0.0");
    assert_int_equal(gov_state_constitution_write(r, &a, NULL, &pos, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    gov_state_rulepack_t none = {0};
    gov_state_rulepack_accepted_t p = rulepack("x:y", "{}", "00", "1", "");
    assert_int_equal(gov_state_rulepack_write(r, &p, &none, &pos, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    json_t *e = itest_audit_event("ok", "token.issued");
    json_object_set_new(e, "tenant", json_string("a{b}"));
    gov_state_audit_t *w = gov_state_audit_new(r, 60);
    assert_int_equal(gov_state_audit_append(w, e, "AuditEvent", "s", &pos, NULL, NULL, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    gov_state_audit_free(w);
    json_decref(e);
    gov_state_pos_t bad = {"gov:x", "t", 0, 1, "ok"};
    assert_int_equal(gov_state_offset_write(r, &bad, eb, sizeof eb), GOV_ERR_INVALID_ARG);
    int64_t prev = 0;
    assert_int_equal(gov_state_watermark_swap(r, &bad, &prev, eb, sizeof eb), GOV_ERR_INVALID_ARG);
    bad = (gov_state_pos_t){"g", "t", 0, 1, "x}y"};
    assert_int_equal(gov_state_offset_write(r, &bad, eb, sizeof eb), GOV_ERR_INVALID_ARG);
    assert_int_equal(redis_int("DBSIZE%s", ""), before);
}

/* The watermark answers what it replaced: a write finds out by itself that
 * the key vanished or went back (FLUSHALL, an older snapshot). */
static void test_watermark_swap_reports_what_it_replaced(void **state) {
    (void)state;
    char group[64], eb[256], key[128];
    itest_unique("wm", group, sizeof group);
    gov_redis_t *r = itest_redis();
    gov_state_pos_t pos = {group, "identity.audit", 2, 5, NULL};
    int64_t prev = 0, now = 0;
    assert_int_equal(gov_state_watermark_read(r, &pos, &now, eb, sizeof eb), GOV_OK);
    assert_int_equal(now, -1);
    assert_int_equal(gov_state_watermark_swap(r, &pos, &prev, eb, sizeof eb), GOV_OK);
    assert_int_equal(prev, -1);
    pos.offset = 6;
    assert_int_equal(gov_state_watermark_swap(r, &pos, &prev, eb, sizeof eb), GOV_OK);
    assert_int_equal(prev, 5);
    assert_int_equal(gov_state_watermark_read(r, &pos, &now, eb, sizeof eb), GOV_OK);
    assert_int_equal(now, 6);
    snprintf(key, sizeof key, "gov:offsets:%s:identity.audit:2", group);
    assert_int_equal(redis_int("DEL %s", key), 1);
    pos.offset = 7;
    assert_int_equal(gov_state_watermark_swap(r, &pos, &prev, eb, sizeof eb), GOV_OK);
    assert_int_equal(prev, -1);
    /* what is not an offset reads as none */
    char cmd[200];
    snprintf(cmd, sizeof cmd, "SET %s 12x", key);
    redis_int(cmd, "");
    assert_int_equal(gov_state_watermark_read(r, &pos, &now, eb, sizeof eb), GOV_OK);
    assert_int_equal(now, -1);
}

/* `announced` follows the current checksum only: a replay of an announced
 * constitution is silent, a new one starts unannounced. */
static void test_constitution_announced_follows_the_current_checksum(void **state) {
    (void)state;
    char tenant[64], eb[256];
    itest_unique("an", tenant, sizeof tenant);
    gov_redis_t *r = itest_redis();
    gov_state_pos_t pos = {"gov-constitution", "constitution.bundles", 0, 1, tenant};
    gov_state_constitution_accepted_t a = constitution(tenant, "c1", "1.0.0");
    assert_int_equal(gov_state_constitution_write(r, &a, NULL, &pos, eb, sizeof eb), GOV_OK);
    gov_state_constitution_t cur;
    assert_int_equal(gov_state_constitution_read(r, tenant, &cur, eb, sizeof eb), GOV_OK);
    assert_int_equal(cur.announced, 0);
    gov_state_constitution_clear(&cur);
    assert_int_equal(gov_state_constitution_announced(r, tenant, "c0", eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_state_constitution_read(r, tenant, &cur, eb, sizeof eb), GOV_OK);
    assert_int_equal(cur.announced, 0);   /* not the current one: ignored */
    gov_state_constitution_clear(&cur);
    assert_int_equal(gov_state_constitution_announced(r, tenant, "c1", eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_state_constitution_read(r, tenant, &cur, eb, sizeof eb), GOV_OK);
    assert_int_equal(cur.announced, 1);
    gov_state_constitution_clear(&cur);
    gov_state_constitution_accepted_t b = constitution(tenant, "c2", "2.0.0");
    assert_int_equal(gov_state_constitution_write(r, &b, "c1", &pos, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_state_constitution_read(r, tenant, &cur, eb, sizeof eb), GOV_OK);
    assert_int_equal(cur.announced, 0);
    gov_state_constitution_clear(&cur);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watermark_swap_reports_what_it_replaced),
        cmocka_unit_test(test_constitution_announced_follows_the_current_checksum),
        cmocka_unit_test(test_constitution_write_is_compare_and_set),
        cmocka_unit_test(test_rulepack_write_is_compare_and_set_on_the_bytes),
        cmocka_unit_test(test_served_state_reads_what_was_written),
        cmocka_unit_test(test_legacy_tenant_index_is_moved_on_read),
        cmocka_unit_test(test_audit_writers_sharing_a_tenant_keep_one_chain),
        cmocka_unit_test(test_audit_same_id_other_content_is_chained),
        cmocka_unit_test(test_unsafe_tenant_touches_nothing),
    };
    return cmocka_run_group_tests_name("gov_state", tests, setup, teardown);
}
