/* test_cluster_chain.c - the governance chain on a Redis Cluster (issue 13).
 *
 * Its own cluster: deploy/cluster.sh starts six redis-server nodes (three
 * masters, three replicas) at ITEST_CLUSTER_CHAIN_BASE (default 9741, never
 * test_redis_cluster's 9701) under var/cluster-chain, and purges them at the
 * end.  On it, with the stack's Kafka, private processes with their own
 * component names and consumer groups, each given GOV_REDIS_NODES:
 *   - gov-constitution and gov-rulepacks: a fresh group replays what the
 *     stack published for the demo tenant (signed bundle and pack, verified
 *     against the stack's trust files) into the cluster;
 *   - gov-audit (GOV_RELAY=false: the stack's gov-audit is the one relay on
 *     this Kafka, docs/config.md; this one chains the copies it relays);
 *   - gov-edge, which loads the tenant from the cluster.
 * Steps: evaluations through the edge are answered, each decision is chained
 * once in the cluster's audit:{demo}, `govctl audit verify` (GOV_REDIS_NODES)
 * passes; then the master of demo's slot is killed with SIGKILL while
 * evaluations run, the cluster promotes its replica, and every decision the
 * edge answered - before, during and after - is chained exactly once and the
 * chain still verifies.
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
#include "gov_redis_slot.h"
#include "itest_util.h"

#define TENANT "demo"
#define NODES 6
#define MAX_IDS 256
#define WAIT_MS 60000

static int base_port = 9741;
static char env_nodes[256], env_brokers[200], env_trust[1100], env_rtrust[1100];
static char var_dir[1024];
static itest_proc_t constitution, rulepacks, audit, edge;
static gov_redis_t *cluster;
static char ids[MAX_IDS][64];
static size_t nids;

static int run_cluster_sh(const char *what) {
    const char *argv[] = {"bash", itest_path("deploy/cluster.sh"), what, NULL, NULL};
    if (strcmp(what, "redis-stop") == 0)
        argv[3] = "--purge";
    static char env_base[64], env_var[1100];
    snprintf(env_base, sizeof env_base, "GOV_CLUSTER_REDIS_BASE=%d", base_port);
    snprintf(env_var, sizeof env_var, "GOV_VAR_DIR=%s", var_dir);
    const char *env[] = {env_base, env_var, NULL};
    return itest_run(argv, env, NULL, 0);
}

/* A direct connection to one node: what redis-cli -p <port> sees. */
static redisReply *node_cmd(int port, int argc, const char **argv) {
    gov_redis_t *r = NULL;
    char eb[256];
    redisReply *rep = NULL;
    if (gov_redis_new("127.0.0.1", port, 2000, &r, eb, sizeof eb) == GOV_OK)
        (void)gov_redis_command(r, &rep, argc, argv, NULL, eb, sizeof eb);
    gov_redis_free(r);
    return rep;
}

/* The port of the master serving slot, as the node at ask_port says; 0 when
 * it does not answer. */
static int owner_of(int ask_port, unsigned slot) {
    const char *argv[] = {"CLUSTER", "SLOTS"};
    redisReply *r = node_cmd(ask_port, 2, argv);
    int port = 0;
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if ((unsigned)e->element[0]->integer <= slot && slot <= (unsigned)e->element[1]->integer)
            port = (int)e->element[2]->element[1]->integer;
    }
    if (r != NULL)
        freeReplyObject(r);
    return port;
}

static int tenant_materialized(void *opaque) {
    (void)opaque;
    char eb[256];
    int n = 0;
    const char *keys[] = {"constitution:{" TENANT "}", "policy:rulepack:{" TENANT "}"};
    for (int i = 0; i < 2; i++) {
        const char *argv[] = {"EXISTS", keys[i]};
        redisReply *r = NULL;
        if (gov_redis_command(cluster, &r, 2, argv, NULL, eb, sizeof eb) == GOV_OK)
            n += r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
    }
    return n == 2;
}

static int setup(void **state) {
    (void)state;
    const char *b = getenv("ITEST_CLUSTER_CHAIN_BASE");
    if (b != NULL && atoi(b) > 0)
        base_port = atoi(b);
    snprintf(var_dir, sizeof var_dir, "%s", itest_path("var/cluster-chain"));
    run_cluster_sh("redis-stop"); /* a clean slate: nothing of an earlier run */
    assert_int_equal(run_cluster_sh("redis-start"), 0);
    size_t off = (size_t)snprintf(env_nodes, sizeof env_nodes, "GOV_REDIS_NODES=");
    for (int i = 0; i < NODES; i++)
        off += (size_t)snprintf(env_nodes + off, sizeof env_nodes - off, "%s127.0.0.1:%d",
                                i ? "," : "", base_port + i);
    char eb[256];
    if (gov_redis_new_cluster(env_nodes + strlen("GOV_REDIS_NODES="), 3000, &cluster, eb,
                              sizeof eb) != GOV_OK)
        fail_msg("cluster handle: %s", eb);
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    snprintf(env_trust, sizeof env_trust, "GOV_TRUST_FILE=%s", itest_env("GOV_TRUST_FILE", ""));
    snprintf(env_rtrust, sizeof env_rtrust, "GOV_RULEPACK_TRUST_FILE=%s",
             itest_env("GOV_RULEPACK_TRUST_FILE", ""));
    const char *env[] = {env_nodes, env_brokers, env_trust, env_rtrust, ITEST_NO_RELAY, NULL};
    itest_proc_start(&constitution, "gov-constitution", "itest-cluster-constitution", env,
                     "itest-cluster-constitution.log");
    itest_proc_start(&rulepacks, "gov-rulepacks", "itest-cluster-rulepacks", env,
                     "itest-cluster-rulepacks.log");
    itest_proc_start(&audit, "gov-audit", "itest-cluster-audit", env, "itest-cluster-audit.log");
    /* a fresh group works through the topics' history first (it grows with
     * every run on a long-lived stack; the ASan build is slow) */
    if (itest_wait_for(tenant_materialized, NULL, ITEST_HISTORY_MS, 100) < 0)
        fail_msg("the demo tenant was not materialized in the cluster");
    itest_proc_start(&edge, "gov-edge", NULL, env, "itest-cluster-edge.log");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_proc_stop(&edge);
    rc |= itest_proc_stop(&audit);
    rc |= itest_proc_stop(&rulepacks);
    rc |= itest_proc_stop(&constitution);
    gov_redis_free(cluster);
    run_cluster_sh("redis-stop");
    return rc;
}

/* One evaluation through the edge; its decision id kept.  1 when answered
 * 200 with a decision id. */
static int evaluate(void) {
    char url[128], req[256], *body = NULL;
    snprintf(url, sizeof url, "%s/v1/evaluate", edge.url);
    snprintf(req, sizeof req,
             "{\"tenant\":\"" TENANT "\",\"session_id\":\"cluster-%zu\",\"user\":\"u\","
             "\"role\":\"analyst\",\"prompt\":\"summarize the quarterly report\"}", nids);
    long st = itest_http_post_json(url, req, &body);
    json_t *j = json_loads(body ? body : "", 0, NULL);
    const char *id = json_string_value(json_object_get(j, "decision_id"));
    int ok = st == 200 && id != NULL && nids < MAX_IDS;
    if (ok)
        snprintf(ids[nids++], sizeof ids[0], "%s", id);
    json_decref(j);
    free(body);
    return ok;
}

/* How many entries of audit:{demo} (read through the cluster) are the
 * PolicyDecision of each kept id: counts[i]. */
static int chain_counts(int *counts) {
    char eb[256];
    const char *argv[] = {"XRANGE", "audit:{" TENANT "}", "-", "+"};
    redisReply *r = NULL;
    if (gov_redis_command(cluster, &r, 4, argv, NULL, eb, sizeof eb) != GOV_OK)
        return 0;
    memset(counts, 0, nids * sizeof *counts);
    for (size_t e = 0; r->type == REDIS_REPLY_ARRAY && e < r->elements; e++) {
        redisReply *fields = r->element[e]->element[1];
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            if (strcmp(fields->element[k]->str, "payload") != 0)
                continue;
            for (size_t i = 0; i < nids; i++) {
                char needle[96];
                snprintf(needle, sizeof needle, "\"decision_id\":\"%s\"", ids[i]);
                counts[i] += strstr(fields->element[k + 1]->str, needle) != NULL;
            }
        }
    }
    freeReplyObject(r);
    return 1;
}

static int all_chained(void *opaque) {
    (void)opaque;
    int counts[MAX_IDS];
    if (!chain_counts(counts))
        return 0;
    for (size_t i = 0; i < nids; i++)
        if (counts[i] == 0)
            return 0;
    return 1;
}

/* Every kept decision is chained exactly once, and govctl verifies. */
static void expect_chained_once_and_verified(void) {
    if (itest_wait_for(all_chained, NULL, WAIT_MS, 200) < 0)
        fail_msg("not every one of %zu answered decisions reached audit:{" TENANT "}", nids);
    int counts[MAX_IDS];
    assert_true(chain_counts(counts));
    for (size_t i = 0; i < nids; i++)
        if (counts[i] != 1)
            fail_msg("decision %s is chained %d times", ids[i], counts[i]);
    char out[4096], err[4096];
    const char *env[] = {env_nodes, NULL};
    const char *args[] = {"audit", "verify", "--tenant", TENANT, "--quiet", NULL};
    int rc = itest_govctl(env, args, out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("govctl audit verify on the cluster: %d: %s", rc, err);
}

static void test_decisions_chained_on_the_cluster(void **state) {
    (void)state;
    for (int i = 0; i < 5; i++)
        assert_true(evaluate());
    expect_chained_once_and_verified();
}

static int promoted(void *opaque) {
    const int *old = opaque;
    unsigned slot = gov_redis_key_slot(TENANT, strlen(TENANT));
    for (int i = 0; i < NODES; i++) {
        if (base_port + i == *old)
            continue;
        int o = owner_of(base_port + i, slot);
        if (o != 0 && o != *old)
            return 1;
    }
    return 0;
}

static void test_master_killed_while_evaluating(void **state) {
    (void)state;
    unsigned slot = gov_redis_key_slot(TENANT, strlen(TENANT));
    int master = owner_of(base_port, slot);
    assert_true(master > 0);
    pid_t pid = itest_redis_node_pid(master);
    size_t before = nids;
    for (int i = 0; i < 5; i++)
        assert_true(evaluate());
    assert_int_equal(kill(pid, SIGKILL), 0);
    /* evaluations keep coming while the cluster notices and promotes: the
     * edge serves from memory, gov-audit retries the chain's writes */
    int answered = 0;
    while (!promoted(&master) && answered < 200) {
        answered += evaluate();
        itest_sleep_ms(50);
    }
    /* a loaded machine (the suite's other pass beside it) slows the
     * nodes' cron and gossip: allow a minute, and say what the survivors
     * saw if it is not enough */
    if (itest_wait_for(promoted, &master, 60000, 100) < 0) {
        for (int i = 0; i < NODES; i++) {
            if (base_port + i == master)
                continue;
            const char *argv[] = {"CLUSTER", "NODES"};
            redisReply *r = node_cmd(base_port + i, 2, argv);
            print_message("node %d's view:\n%s\n", base_port + i,
                          r && r->type == REDIS_REPLY_STRING ? r->str : "(no answer)");
            if (r)
                freeReplyObject(r);
            break;
        }
        fail_msg("no replica took over slot %u of killed master %d in 60 s", slot, master);
    }
    for (int i = 0; i < 5; i++)
        assert_true(evaluate());
    print_message("%zu decisions answered around the failover of master %d\n", nids - before,
                  master);
    expect_chained_once_and_verified();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decisions_chained_on_the_cluster),
        cmocka_unit_test(test_master_killed_while_evaluating),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
