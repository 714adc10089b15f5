/* test_canon_chain.c - numbers beyond 2^53 through gov-rulepacks, gov-constitution and gov-edge.
 *
 * Issue 9, point 3, as an operator met it:
 *   - a rule pack with version 9223372036854775807 used to be accepted and
 *     stored as JCS, which writes that number as the double
 *     9223372036854776000 - text the edge could not parse, so the tenant
 *     became unloadable for good.  Now the version is refused at validation
 *     with a reason code, nothing is stored, and the tenant keeps its pack;
 *   - a signed JCS constitution holding such numbers was accepted and then
 *     refused by every edge, whose parser could not read the stored
 *     canonical document back.  Now the edge loads and serves it, after
 *     verifying it again from Redis; a constitution whose version is beyond
 *     2^53 - 1 is refused with the reason.
 *
 * Real processes: a private redis-server, a private gov-rulepacks and
 * gov-constitution (their own consumer groups, admin ports and component
 * names) and a private gov-edge reading that Redis, on the stack's broker.
 * Packs are the demo pack re-targeted to a tenant no other run uses,
 * produced to the real policy.rulepacks topic as `govctl rulepack publish`
 * does; bundles are signed by keys generated here, which the private
 * processes' trust file alone trusts.  Each check waits for the processor's
 * offset key in the private Redis (written last, after the audit event was
 * acknowledged) or for the edge's answer, then reads what an operator reads:
 * the Redis keys, the processors' *_rejected_total and their audit events,
 * found by component name, so the stack's own processors (same topics,
 * same events) cannot answer in their place.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "gov_rulepack.h"
#include "gov_time.h"
#include "gov_util.h"
#include "gov_version.h"
#include "itest_util.h"

#define TOPIC "policy.rulepacks"
#define BUNDLES "constitution.bundles"
#define COMPONENT "gov-rulepacks-itest-canon"
#define COMPONENT_C "gov-constitution-itest-canon"

static pid_t redis_pid = -1;
static int redis_port;
static itest_proc_t proc, cproc, edge;
static char tenant[64], trust_path[512];
static char env_redis[48], env_brokers[300], env_trust[560], env_rp_trust[580];
static char rp_trust_path[512];
static EVP_PKEY *keys[2];
static const char *names[2] = {"alice", "bob"};
static const int AB[] = {0, 1, -1};

static int setup(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++)
        keys[i] = itest_ed25519_new();
    snprintf(trust_path, sizeof trust_path, "%s", itest_log_path("itest-canon-trust.json"));
    itest_write_trust(trust_path, 2, 2, names, keys);
    /* packs are signed by the same two keys, one signature suffices */
    snprintf(rp_trust_path, sizeof rp_trust_path, "%s",
             itest_log_path("itest-canon-rulepack-trust.json"));
    itest_write_trust(rp_trust_path, 1, 2, names, keys);
    redis_pid = itest_private_redis("canon-chain", &redis_port);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_redis); /* itest_redis() talks to the private Redis */
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    snprintf(env_trust, sizeof env_trust, "GOV_TRUST_FILE=%s", trust_path);
    snprintf(env_rp_trust, sizeof env_rp_trust, "GOV_RULEPACK_TRUST_FILE=%s", rp_trust_path);
    const char *env[] = {env_redis, env_brokers, env_trust, env_rp_trust, NULL};
    itest_proc_start(&proc, "gov-rulepacks", COMPONENT, env, "itest-canon-rulepacks.log");
    itest_proc_start(&cproc, "gov-constitution", COMPONENT_C, env, "itest-canon-constitution.log");
    itest_proc_start(&edge, "gov-edge", NULL, env, "itest-canon-edge.log");
    itest_unique("vl", tenant, sizeof tenant);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_proc_stop(&edge) | itest_proc_stop(&cproc) | itest_proc_stop(&proc);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    for (int i = 0; i < 2; i++)
        EVP_PKEY_free(keys[i]);
    return rc;
}

/* Waits until `processor` finished the message at (partition, offset): its
 * offset key in the private Redis is written last.  A fresh group first
 * works through the topic's history. */
static void wait_processed(const char *processor, const char *topic, int32_t partition,
                           int64_t offset) {
    if (!itest_wait_offset(itest_redis(), processor, topic, partition, offset, ITEST_HISTORY_MS))
        fail_msg("%s did not process offset %lld of %s/%d", processor, (long long)offset, topic,
                 (int)partition);
}

/* The demo pack for the test's tenant with `"version": <version_json>`. */
static char *pack_text(const char *version_json) {
    char *text = itest_read_file("deploy/demo/rulepack-demo.json", NULL), buf[160];
    snprintf(buf, sizeof buf, "\"tenant\": \"%s\"", tenant);
    char *a = itest_replace_once(text, "\"tenant\": \"demo\"", buf);
    snprintf(buf, sizeof buf, "\"version\": %s", version_json);
    char *b = itest_replace_once(a, "\"version\": \"1.1.0\"", buf);
    free(text);
    free(a);
    return b;
}

/* Publishes the pack as `govctl rulepack publish` would (event version =
 * the version's text) and waits until the private gov-rulepacks finished
 * it.  Returns the event id into id. */
static void publish_and_wait(const char *version_json, const char *version_text,
                             char id[GOV_UUID_STRLEN + 1]) {
    char *text = pack_text(version_json);
    assert_int_equal(gov_uuid_v7(id), GOV_OK);
    json_t *ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "event_id", id, "occurred_at",
                           (json_int_t)gov_now_micros(), "tenant", tenant, "pack_id",
                           "demo-baseline", "version", version_text, "rulepack_json", text,
                           "published_by", "itest-version-limits");
    itest_sign_rulepack_event(ev, keys, names, AB);
    int32_t partition = -1;
    int64_t offset = -1;
    itest_produce_event_at(TOPIC, "RulePackPublished", ev, &partition, &offset);
    json_decref(ev);
    free(text);
    wait_processed(proc.group, TOPIC, partition, offset);
}

/* The tenant's stored pack, parsed the way every edge's loader parses it;
 * its version must be want. */
static void expect_stored_version(const char *want) {
    redisReply *r = NULL;
    char eb[256];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                        "GET policy:rulepack:{%s}", tenant), GOV_OK);
    if (r->type != REDIS_REPLY_STRING)
        fail_msg("policy:rulepack:{%s} is not stored", tenant);
    gov_rulepack_t *p = NULL;
    if (gov_rulepack_parse(r->str, r->len, NULL, &p, NULL, eb, sizeof eb) != GOV_OK)
        fail_msg("the stored pack does not load: %s\n%s", eb, r->str);
    assert_string_equal(gov_rulepack_version(p), want);
    gov_rulepack_free(p);
    freeReplyObject(r);
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                        "HGET policy:rulepack:{%s}:meta version", tenant), GOV_OK);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
}

/* <metric>{tenant=t, reason} of one of the private processors. */
static double rejected_by(const itest_proc_t *p, const char *metric, const char *t,
                          const char *reason) {
    char f1[128], f2[96];
    snprintf(f1, sizeof f1, "tenant=\"%s\"", t);
    snprintf(f2, sizeof f2, "reason=\"%s\"", reason);
    const char *flt[] = {f1, f2, NULL};
    double v = itest_proc_metric(p, metric, flt);
    return v < 0 ? 0 : v;
}

static double rejected(const char *reason) {
    return rejected_by(&proc, "rulepack_rejected_total", tenant, reason);
}

/* The refusal as an operator sees it: the counter, this processor's audit
 * event with the reason, and the tenant's pack unchanged and loadable. */
static void expect_refused(const char *version_json, const char *version_text,
                           const char *reason, double before, const char *stored) {
    char id[GOV_UUID_STRLEN + 1];
    publish_and_wait(version_json, version_text, id);
    if (rejected(reason) != before + 1)
        fail_msg("version %s: rulepack_rejected_total{reason=\"%s\"} is %g, want %g",
                 version_json, reason, rejected(reason), before + 1);
    json_t *audit = itest_find_audit(tenant, COMPONENT, "rulepack.rejected", id, 60000);
    if (audit == NULL)
        fail_msg("no rulepack.rejected audit event from " COMPONENT " for %s", id);
    assert_string_equal(json_string_value(json_object_get(audit, "reason")), reason);
    json_decref(audit);
    expect_stored_version(stored);
}

static void test_version_beyond_2_53_is_refused_not_stored(void **state) {
    (void)state;
    char id[GOV_UUID_STRLEN + 1];
    publish_and_wait("\"1.0.0\"", "1.0.0", id);
    expect_stored_version("1.0.0");

    expect_refused("9223372036854775807", "9223372036854775807", "version_too_large", 0, "1.0.0");
    expect_refused("9007199254740992", "9007199254740992", "version_too_large", 1, "1.0.0");
    expect_refused("\"9223372036854775807.0.0\"", "9223372036854775807.0.0", "version_too_large",
                   2, "1.0.0");
    expect_refused("\"1.0.1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
                   "1.0.1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                   "version_too_long", 0, "1.0.0");

    /* The top of the range is accepted and reads back exactly from what
     * Redis holds (JCS writes 9007199254740991 as itself). */
    publish_and_wait("9007199254740991", "9007199254740991", id);
    expect_stored_version("9007199254740991");
}

/* Produces a bundle of tenant t signed by alice and bob; returns its checksum
 * into cs and waits until the private gov-constitution finished it. */
static void publish_bundle(const char *t, const char *doc, char cs[129]) {
    json_t *b = itest_bundle_event(t, doc, "jcs", "sha256", NULL, keys, names, AB);
    snprintf(cs, 129, "%s", json_string_value(json_object_get(b, "checksum")));
    int32_t partition = -1;
    int64_t offset = -1;
    itest_produce_event_at(BUNDLES, "ConstitutionBundle", b, &partition, &offset);
    json_decref(b);
    wait_processed(cproc.group, BUNDLES, partition, offset);
}

static char *edge_get(const char *t, const char *suffix, long *status) {
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "%s/v1/constitution/%s%s", edge.url, t, suffix);
    *status = itest_http_get(url, &body);
    return body;
}

typedef struct served {
    const char *tenant, *checksum;
} served_t;

static int edge_serves(void *opaque) {
    const served_t *s = opaque;
    long st;
    char *b = edge_get(s->tenant, "/hash", &st);
    int ok = st == 200 && b != NULL && strstr(b, s->checksum) != NULL;
    free(b);
    return ok;
}

#define RULES "\"rules\":{\"max_risk_score\":0.8,\"permitted_tool_categories\":[\"search\"]," \
              "\"prohibited_actions\":[\"exfiltrate\"],\"require_human_approval_above_risk\":0.5}"

static void test_constitution_with_big_numbers_is_served(void **state) {
    (void)state;
    char t[64], doc[1024], cs[129];
    itest_unique("cbig", t, sizeof t);
    /* JCS writes these as 9223372036854776000, 10000000000000000000 and
     * 999999999999999700000: integers beyond json_int_t */
    snprintf(doc, sizeof doc,
             "{\"version\":\"1.0.0\",\"tenant\":\"%s\"," RULES ",\"limits\":{\"big\":"
             "9223372036854775807,\"e19\":1e19,\"near_1e21\":999999999999999700000}}",
             t);
    publish_bundle(t, doc, cs);
    served_t want = {t, cs};
    if (itest_wait_for(edge_serves, &want, 30000, 10) < 0)
        fail_msg("the edge never served the accepted constitution of %s (checksum %s); see %s", t,
                 cs, edge.log);
    long st;
    char *body = edge_get(t, "/document", &st);
    assert_int_equal(st, 200);
    if (strstr(body, "9223372036854776000") == NULL || strstr(body, "999999999999999700000") == NULL)
        fail_msg("served document: %s", body);
    free(body);
    /* the stored canonical bytes read back to the same bytes */
    redisReply *r = NULL;
    char eb[256];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                        "GET constitution:{%s}:doc", t), GOV_OK);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char sum[129];
    itest_checksum(r->str, "jcs", "sha256", sum);
    assert_string_equal(sum, cs);
    freeReplyObject(r);
}

static void test_constitution_version_beyond_2_53_is_refused(void **state) {
    (void)state;
    char t[64], doc[1024], cs[129];
    itest_unique("cver", t, sizeof t);
    snprintf(doc, sizeof doc, "{\"version\":9223372036854775807,\"tenant\":\"%s\"," RULES "}",
             t);
    publish_bundle(t, doc, cs);
    double n = rejected_by(&cproc, "constitution_rejected_total", t, "version_too_large");
    if (n != 1)
        fail_msg("constitution_rejected_total{reason=\"version_too_large\"} is %g, want 1", n);
    redisReply *r = NULL;
    char eb[256];
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                        "EXISTS constitution:{%s}", t), GOV_OK);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_beyond_2_53_is_refused_not_stored),
        cmocka_unit_test(test_constitution_with_big_numbers_is_served),
        cmocka_unit_test(test_constitution_version_beyond_2_53_is_refused),
    };
    return cmocka_run_group_tests_name("canon_chain", tests, setup, teardown);
}
