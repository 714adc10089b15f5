/* test_version_limits.c - rule-pack versions beyond 2^53 - 1 or 63 bytes, through gov-rulepacks.
 *
 * Issue 9, point 3: a pack with version 9223372036854775807 used to be
 * accepted and stored as JCS, which writes it as the double
 * 9223372036854776000 - text the edge could not parse, so the tenant became
 * unloadable for good.  Now the version is refused at validation with a
 * reason code, nothing is stored, and the tenant keeps its pack.
 *
 * Real processes: a private redis-server and a private gov-rulepacks (its
 * own consumer group, admin port and component name) on the stack's
 * broker.  Packs are the demo pack re-targeted to a tenant no other run
 * uses, produced to the real policy.rulepacks topic as the Avro
 * RulePackPublished `govctl rulepack publish` produces.  Each check waits
 * for the processor's offset key in the private Redis (written last, after
 * the audit event was acknowledged) and then reads what an operator reads:
 * the Redis keys, the processor's rulepack_rejected_total and its
 * rulepack.rejected AuditEvent, found by this processor's component name,
 * so the stack's own gov-rulepacks (same topic, same events) cannot answer
 * in its place.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_rulepack.h"
#include "gov_time.h"
#include "gov_util.h"
#include "gov_version.h"
#include "itest_util.h"

#define TOPIC "policy.rulepacks"
#define COMPONENT "gov-rulepacks-itest-versions"

static pid_t redis_pid = -1;
static int redis_port;
static itest_proc_t proc;
static char tenant[64];
static char env_redis[48], env_brokers[300];

static int setup(void **state) {
    (void)state;
    redis_pid = itest_private_redis("version-limits", &redis_port);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_redis); /* itest_redis() talks to the private Redis */
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    const char *env[] = {env_redis, env_brokers, NULL};
    itest_proc_start(&proc, "gov-rulepacks", COMPONENT, env, "itest-gov-rulepacks-versions.log");
    itest_unique("vl", tenant, sizeof tenant);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_proc_stop(&proc);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    return rc;
}

/* The demo pack for the test's tenant with `"version": <version_json>`. */
static char *pack_text(const char *version_json) {
    char *text = itest_read_file("deploy/demo/rulepack-demo.json", NULL), buf[160];
    snprintf(buf, sizeof buf, "\"tenant\": \"%s\"", tenant);
    char *a = itest_replace_once(text, "\"tenant\": \"demo\"", buf);
    snprintf(buf, sizeof buf, "\"version\": %s", version_json);
    char *b = itest_replace_once(a, "\"version\": \"1.0.0\"", buf);
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
    int32_t partition = -1;
    int64_t offset = -1;
    itest_produce_event_at(TOPIC, "RulePackPublished", ev, &partition, &offset);
    json_decref(ev);
    free(text);
    /* a fresh group works through the topic's history first */
    if (!itest_wait_offset(itest_redis(), "gov-rulepacks", TOPIC, partition, offset,
                           ITEST_HISTORY_MS))
        fail_msg("gov-rulepacks did not process offset %lld of partition %d",
                 (long long)offset, (int)partition);
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

static double rejected(const char *reason) {
    char f1[128], f2[96];
    snprintf(f1, sizeof f1, "tenant=\"%s\"", tenant);
    snprintf(f2, sizeof f2, "reason=\"%s\"", reason);
    const char *flt[] = {f1, f2, NULL};
    double v = itest_proc_metric(&proc, "rulepack_rejected_total", flt);
    return v < 0 ? 0 : v;
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_beyond_2_53_is_refused_not_stored),
    };
    return cmocka_run_group_tests_name("version_limits", tests, setup, teardown);
}
