/* test_processor_redis.c - a processor recovers by itself when Redis does.
 *
 * A private gov-audit (component "gov-audit-itest-redis", its own consumer
 * group and redis-server) materializes audit events while its Redis is
 * stopped and restarted from its RDB file with a slow load (LOADING
 * replies), and while one tenant's stream key has the wrong type.  Checked
 * as an operator would: the streams in that Redis, the processor's log.
 * Nothing is skipped or lost: every event produced lands once Redis serves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_redis.h"
#include "gov_state.h"
#include "itest_util.h"

#define COMPONENT "gov-audit-itest-redis"

static pid_t redis_pid = -1;
static int redis_port;
static gov_redis_t *priv;
static itest_proc_t audit;

static int setup(void **state) {
    (void)state;
    static char env_redis[48];
    char eb[256];
    redis_pid = itest_private_redis("proc-redis", &redis_port);
    if (gov_redis_new("127.0.0.1", redis_port, 5000, &priv, eb, sizeof eb) != GOV_OK)
        fail_msg("private redis: %s", eb);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    const char *env[] = {env_redis, "GOV_RETRY_MAX=1s", ITEST_NO_RELAY, NULL};
    itest_proc_start(&audit, "gov-audit", COMPONENT, env, "itest-proc-redis-gov-audit.log");
    itest_must_catch_up(&audit, 3);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_proc_stop(&audit);
    gov_redis_free(priv);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    return rc;
}

static void audit_key(const char *tenant, char key[GOV_STATE_KEY_MAX]) {
    if (gov_state_key(GOV_STATE_AUDIT, tenant, key) != GOV_OK)
        fail_msg("no audit key for %s", tenant);
}

typedef struct xlen_wait {
    const char *key;
    long long want;
} xlen_wait_t;

static int xlen_reached(void *opaque) {
    xlen_wait_t *w = opaque;
    char eb[256];
    redisReply *r = NULL;
    long long n = -1;
    if (gov_redis_commandf(priv, &r, eb, sizeof eb, "XLEN %s", w->key) == GOV_OK) {
        n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
    }
    return n >= w->want;
}

static void produce(const char *tenant, int n) {
    for (int i = 0; i < n; i++) {
        json_t *e = itest_audit_event(tenant, "token.issued");
        itest_produce_event("identity.audit", "AuditEvent", e);
        json_decref(e);
    }
}

static int log_mentions(const char *what) {
    char *text = itest_read_file(itest_log_path(audit.log), NULL);
    int yes = strstr(text, what) != NULL;
    free(text);
    return yes;
}

static int log_has(void *what) { return log_mentions(what); }

static void test_restart_while_loading_loses_nothing(void **state) {
    (void)state;
    char tenant[64], key[GOV_STATE_KEY_MAX];
    itest_unique("proc-redis", tenant, sizeof tenant);
    audit_key(tenant, key);
    produce(tenant, 1);
    xlen_wait_t w = {key, 1};
    assert_true(itest_wait_for(xlen_reached, &w, 30000, 50) >= 0);

    itest_redis_fill_and_save(redis_port);
    assert_true(itest_stop(redis_pid, SIGTERM, 10000) != -1);
    redis_pid = -1;

    /* Produced while Redis is down: retried, never skipped. */
    produce(tenant, 2);
    redis_pid = itest_private_redis_restart_loading("proc-redis", redis_port);

    w.want = 3;
    assert_true(itest_wait_for(xlen_reached, &w, 60000, 100) >= 0);
    /* It went through the outage and the LOADING replies on its own. */
    assert_true(log_mentions("LOADING"));
    assert_true(xlen_reached(&(xlen_wait_t){key, 4}) == 0); /* exactly three: nothing twice */
    itest_redis_unfill(redis_port);
}

static void test_wrong_type_key_blocks_nothing_once_fixed(void **state) {
    (void)state;
    char bad[64], key[GOV_STATE_KEY_MAX], eb[256];
    itest_unique("proc-wrongtype", bad, sizeof bad);
    audit_key(bad, key);
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(priv, &r, eb, sizeof eb, "SET %s %s", key, "not-a-stream"),
                     GOV_OK);
    freeReplyObject(r);
    produce(bad, 1);
    /* The write fails with WRONGTYPE and is retried (logged), not dropped. */
    assert_true(itest_wait_for(log_has, "WRONGTYPE", 30000, 100) >= 0);
    assert_int_equal(gov_redis_commandf(priv, &r, eb, sizeof eb, "DEL %s", key), GOV_OK);
    freeReplyObject(r);
    xlen_wait_t w = {key, 1};
    assert_true(itest_wait_for(xlen_reached, &w, 30000, 100) >= 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_while_loading_loses_nothing),
        cmocka_unit_test(test_wrong_type_key_blocks_nothing_once_fixed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
