/* test_redis_cluster.c - gov_redis_cluster against a real Redis Cluster.
 *
 * The cluster is deploy/cluster.sh's: six redis-server nodes on loopback
 * (GOV_CLUSTER_REDIS_BASE, default 9701..9706), three masters with one
 * replica each.  The test starts it when none answers and stops (purges)
 * what it started; a cluster that was up is left up, its killed node
 * restarted.  It needs nothing of the single-node stack.
 *
 * Checked as an operator would, by asking the nodes themselves (CLUSTER
 * SLOTS, GET on the node, ROLE), never the client's own view alone:
 *   - routing: every key lands on the master that owns its slot, scripts of
 *     one tenant's keys run, a script over two slots is refused, a pipeline
 *     over the three masters answers in order - with no redirect;
 *   - MOVED: a slot migrated behind the client's back (SETSLOT IMPORTING /
 *     MIGRATING, MIGRATE, SETSLOT NODE) is followed, the map reloaded;
 *   - ASK: a key already moved while its slot is still migrating is read
 *     with ASKING on the target, a key not yet moved from the source;
 *   - failover: a master killed with SIGKILL, its replica promoted by the
 *     cluster itself (cluster-node-timeout 1 s), and the client follows the
 *     new map without being told;
 *   - the state layer unchanged on a cluster handle (gov_redis_new_cluster):
 *     gov-audit's batch (a pipeline over every master, the append script
 *     of docs/contracts.md "Redis Cluster") chains each tenant's events on
 *     its own master with its applied offset beside it, and a replay of the
 *     batch is a replay; a script's undeclared keys of its own slot (the
 *     identity key script's pattern) are served, another slot's refused.
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
#include "gov_redis_cluster.h"
#include "gov_redis_slot.h"
#include "gov_state.h"
#include "itest_util.h"

#define NODES 6

static int base_port = 9701;
static int started_here;
static char nodes_list[256];

/* A direct connection to one node (not cluster-aware): what an operator's
 * redis-cli -p <port> sees. */
static redisReply *node_cmd(int port, int argc, const char **argv) {
    gov_redis_t *r = NULL;
    char eb[256];
    if (gov_redis_new("127.0.0.1", port, 3000, &r, eb, sizeof eb) != GOV_OK) {
        gov_redis_free(r);
        return NULL;
    }
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_command(r, &rep, argc, argv, NULL, eb, sizeof eb);
    gov_redis_free(r);
    if (err == GOV_ERR_REDIS || err == GOV_ERR_UNAVAILABLE) {
        /* an error reply, as a reply: the test looks at its text */
        rep = calloc(1, sizeof *rep);
        assert_non_null(rep);
        rep->type = REDIS_REPLY_ERROR;
        rep->str = strdup(eb);
        rep->len = strlen(eb);
        return rep;   /* freed by free_reply */
    }
    return err == GOV_OK ? rep : NULL;
}

static void free_reply(redisReply *r) {
    if (r != NULL && r->type == REDIS_REPLY_ERROR && r->element == NULL && r->elements == 0 &&
        r->len > 7 && strncmp(r->str, "redis", 5) == 0) {
        free(r->str);
        free(r);
        return;
    }
    freeReplyObject(r);
}

static int cluster_ok_on(int port) {
    const char *argv[] = {"CLUSTER", "INFO"};
    redisReply *r = node_cmd(port, 2, argv);
    int ok = r != NULL && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
    free_reply(r);
    return ok;
}

static int cluster_ok_all(void *opaque) {
    (void)opaque;
    for (int i = 0; i < NODES; i++)
        if (!cluster_ok_on(base_port + i))
            return 0;
    return 1;
}

static int run_cluster_sh(const char *what) {
    const char *argv[] = {"bash", itest_path("deploy/cluster.sh"), what, NULL, NULL};
    if (strcmp(what, "redis-stop") == 0)
        argv[3] = "--purge";
    char env_base[64];
    snprintf(env_base, sizeof env_base, "GOV_CLUSTER_REDIS_BASE=%d", base_port);
    const char *env[] = {env_base, NULL};
    return itest_run(argv, env, NULL, 0);
}

static int setup(void **state) {
    (void)state;
    const char *b = getenv("GOV_CLUSTER_REDIS_BASE");
    if (b != NULL)
        base_port = atoi(b);
    size_t off = 0;
    for (int i = 0; i < NODES; i++)
        off += (size_t)snprintf(nodes_list + off, sizeof nodes_list - off, "%s127.0.0.1:%d",
                                i ? "," : "", base_port + i);
    if (!cluster_ok_all(NULL)) {
        /* ours to stop only when no node ran; a node down is restarted */
        started_here = 1;
        for (int i = 0; i < NODES; i++) {
            const char *argv[] = {"PING"};
            redisReply *r = node_cmd(base_port + i, 1, argv);
            started_here &= r == NULL || r->type == REDIS_REPLY_ERROR;
            free_reply(r);
        }
        /* nothing ran: start from a clean slate - six nodes restarted
         * together from old nodes.conf files may still fail over among
         * themselves after cluster_state:ok (1 s node timeout) */
        if (started_here)
            assert_int_equal(run_cluster_sh("redis-stop"), 0);
        assert_int_equal(run_cluster_sh("redis-start"), 0);
    }
    assert_true(cluster_ok_all(NULL));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (started_here)
        run_cluster_sh("redis-stop");
    return 0;
}

/* The master port owning slot, asked of the node at port (CLUSTER SLOTS). */
static int owner_of(int ask_port, unsigned slot) {
    const char *argv[] = {"CLUSTER", "SLOTS"};
    redisReply *r = node_cmd(ask_port, 2, argv);
    int port = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *e = r->element[i];
            if ((unsigned)e->element[0]->integer <= slot &&
                slot <= (unsigned)e->element[1]->integer)
                port = (int)e->element[2]->element[1]->integer;
        }
    free_reply(r);
    return port;
}

static void node_id(int port, char id[48]) {
    const char *argv[] = {"CLUSTER", "MYID"};
    redisReply *r = node_cmd(port, 2, argv);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(id, 48, "%s", r->str);
    free_reply(r);
}

/* A master other than `not`. */
static int other_master(int not_port) {
    for (int i = 0; i < NODES; i++) {
        int p = base_port + i;
        if (p == not_port)
            continue;
        const char *argv[] = {"ROLE"};
        redisReply *r = node_cmd(p, 1, argv);
        int master = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                     strcmp(r->element[0]->str, "master") == 0;
        free_reply(r);
        if (master)
            return p;
    }
    return 0;
}

static void node_expect(int port, const char *cmd, const char *a1, const char *a2,
                        const char *a3, const char *want) {
    const char *argv[] = {cmd, a1, a2, a3};
    int argc = a1 == NULL ? 1 : a2 == NULL ? 2 : a3 == NULL ? 3 : 4;
    redisReply *r = node_cmd(port, argc, argv);
    assert_non_null(r);
    if (want != NULL) {
        if (r->type == REDIS_REPLY_ERROR)
            fail_msg("%s %s on %d: %s", cmd, a1 ? a1 : "", port, r->str);
        assert_true(r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
        assert_string_equal(r->str, want);
    }
    free_reply(r);
}

static void cluster_get(gov_redis_cluster_t *c, const char *key, const char *want) {
    const char *argv[] = {"GET", key};
    redisReply *r = NULL;
    char eb[256];
    gov_err_t err = gov_redis_cluster_command(c, &r, 2, argv, NULL, eb, sizeof eb);
    if (err != GOV_OK)
        fail_msg("GET %s through the cluster client: %s (%s)", key, eb, gov_err_str(err));
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
}

static void cluster_set(gov_redis_cluster_t *c, const char *key, const char *value) {
    const char *argv[] = {"SET", key, value};
    char eb[256];
    gov_err_t err = gov_redis_cluster_command(c, NULL, 3, argv, NULL, eb, sizeof eb);
    if (err != GOV_OK)
        fail_msg("SET %s through the cluster client: %s", key, eb);
}

static gov_redis_cluster_t *client(void) {
    gov_redis_cluster_t *c = NULL;
    char eb[256];
    if (gov_redis_cluster_new(nodes_list, 3000, &c, eb, sizeof eb) != GOV_OK)
        fail_msg("cluster client on %s: %s", nodes_list, eb);
    return c;
}

/* A key no other run uses, "itest:cluster:{<prefix>-...}:k"; its slot. */
static unsigned fresh_key(const char *prefix, char *key, size_t size) {
    char run[64];
    itest_unique(prefix, run, sizeof run);
    snprintf(key, size, "itest:cluster:{%s}:k", run);
    return gov_redis_key_slot(key, strlen(key));
}

static gov_redis_script_t two_keys_script = {
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "redis.call('SET', KEYS[2], ARGV[1])\n"
    "return redis.call('GET', KEYS[1])\n", ""};

static gov_redis_script_t get_script = {"return redis.call('GET', KEYS[1])\n", ""};

/* The pattern of gov_state_identity.c's key script: keys named inside the
 * script, not declared, carrying the declared key's hash tag. */
static gov_redis_script_t undeclared_script = {
    "redis.call('SET', KEYS[1] .. ':inner', ARGV[1])\n"
    "return redis.call('GET', ARGV[2])\n", ""};

static void test_undeclared_keys_of_the_slot(void **state) {
    (void)state;
    gov_redis_cluster_t *c = client();
    char run[64], k[160], inner[180], other[160], eb[256];
    itest_unique("undecl", run, sizeof run);
    snprintf(k, sizeof k, "itest:cluster:{%s}:k", run);
    snprintf(inner, sizeof inner, "%s:inner", k);
    const char *argv[] = {k, "v", inner};
    redisReply *r = NULL;
    /* docs/contracts.md "Redis Cluster": Redis 7 serves an undeclared key
     * of the script's own slot */
    assert_int_equal(gov_redis_cluster_eval(c, &undeclared_script, 1, 3, argv, NULL, &r, eb,
                                            sizeof eb),
                     GOV_OK);
    assert_string_equal(r->str, "v");
    freeReplyObject(r);
    /* and refuses one of a slot on another master.  (A script without a
     * shebang keeps Redis 6's leniency for another slot of the same node:
     * it runs until a reshard moves one of the slots - so one slot per
     * script is kept by the hash tag, never left to Redis to enforce.) */
    const char *host;
    int kport = 0, oport = 0;
    assert_int_equal(gov_redis_cluster_route(c, k, strlen(k), &host, &kport), GOV_OK);
    for (int i = 0; i < 256; i++) {
        snprintf(other, sizeof other, "itest:cluster:{%s-%d}:other", run, i);
        assert_int_equal(gov_redis_cluster_route(c, other, strlen(other), &host, &oport), GOV_OK);
        if (oport != kport)
            break;
    }
    assert_true(oport != kport);
    const char *xargv[] = {k, "w", other};
    assert_int_equal(gov_redis_cluster_eval(c, &undeclared_script, 1, 3, xargv, NULL, &r, eb,
                                            sizeof eb),
                     GOV_ERR_REDIS);
    assert_true(strstr(eb, "non local key") != NULL || strstr(eb, "same slot") != NULL);
    gov_redis_cluster_free(c);
}

static void test_routing_by_slot(void **state) {
    (void)state;
    gov_redis_cluster_t *c = client();
    assert_int_equal(gov_redis_cluster_masters(c), 3);
    char run[64], key[30][128], val[30][160];
    itest_unique("route", run, sizeof run);
    int owners[3] = {0}, nowners = 0;
    for (int i = 0; i < 30; i++) {
        snprintf(key[i], sizeof key[i], "itest:cluster:{%s-t%d}:k", run, i);
        snprintf(val[i], sizeof val[i], "v-%s-%d", run, i);
        cluster_set(c, key[i], val[i]);
        /* the owner, asked of the cluster (not the client), has it */
        unsigned slot = gov_redis_key_slot(key[i], strlen(key[i]));
        int owner = owner_of(base_port, slot);
        assert_true(owner != 0);
        node_expect(owner, "GET", key[i], NULL, NULL, val[i]);
        /* and another master refuses it with MOVED naming the owner */
        const char *argv[] = {"GET", key[i]};
        redisReply *r = node_cmd(other_master(owner), 2, argv);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ERROR);
        char want[64];
        snprintf(want, sizeof want, "MOVED %u 127.0.0.1:%d", slot, owner);
        assert_non_null(strstr(r->str, want));
        free_reply(r);
        int seen = 0;
        for (int j = 0; j < nowners; j++)
            seen |= owners[j] == owner;
        if (!seen && nowners < 3)
            owners[nowners++] = owner;
    }
    assert_int_equal(nowners, 3);   /* 30 tenants reach every master */

    /* one tenant's keys in one script: one slot, run on its master */
    char k1[160], k2[160];
    snprintf(k1, sizeof k1, "itest:cluster:{%s-script}:a", run);
    snprintf(k2, sizeof k2, "itest:cluster:{%s-script}:b", run);
    const char *sargv[] = {k1, k2, "both"};
    redisReply *r = NULL;
    char eb[256];
    assert_int_equal(gov_redis_cluster_eval(c, &two_keys_script, 2, 3, sargv, NULL, &r, eb,
                                            sizeof eb),
                     GOV_OK);
    assert_string_equal(r->str, "both");
    freeReplyObject(r);
    int owner = owner_of(base_port, gov_redis_key_slot(k2, strlen(k2)));
    node_expect(owner, "GET", k2, NULL, NULL, "both");
    /* two tenants in one script: refused before it is sent */
    const char *xargv[] = {key[0], key[1], "x"};
    assert_true(gov_redis_key_slot(key[0], strlen(key[0])) !=
                gov_redis_key_slot(key[1], strlen(key[1])));
    assert_int_equal(gov_redis_cluster_eval(c, &two_keys_script, 2, 3, xargv, NULL, &r, eb,
                                            sizeof eb),
                     GOV_ERR_INVALID_ARG);
    cluster_get(c, key[0], val[0]);   /* unchanged */

    /* a pipeline over the three masters answers in the order asked */
    for (int i = 0; i < 30; i++) {
        const char *gargv[] = {"GET", key[i]};
        if (i % 3 == 0) {
            const char *eargv[] = {key[i]};
            assert_int_equal(gov_redis_cluster_append_eval(c, &get_script, 1, 1, eargv, NULL),
                             GOV_OK);
        } else {
            assert_int_equal(gov_redis_cluster_append(c, 2, gargv, NULL), GOV_OK);
        }
    }
    /* an EVALSHA of a script a node never saw answers NOSCRIPT: like
     * gov-audit, read the whole pipeline first, then run those again */
    int noscript[30] = {0};
    for (int i = 0; i < 30; i++) {
        gov_err_t err = gov_redis_cluster_read(c, &r, eb, sizeof eb);
        if (err == GOV_ERR_REDIS && strstr(eb, "NOSCRIPT") && i % 3 == 0) {
            noscript[i] = 1;
            continue;
        }
        if (err != GOV_OK)
            fail_msg("pipelined reply %d: %s", i, eb);
        assert_string_equal(r->str, val[i]);
        freeReplyObject(r);
    }
    for (int i = 0; i < 30; i++) {
        if (!noscript[i])
            continue;
        const char *eargv[] = {key[i]};
        assert_int_equal(gov_redis_cluster_eval(c, &get_script, 1, 1, eargv, NULL, &r, eb,
                                                sizeof eb),
                         GOV_OK);
        assert_string_equal(r->str, val[i]);
        freeReplyObject(r);
    }
    /* a pipeline left after one reply: the next one pairs every reply
     * with its own command, on every master */
    for (int i = 0; i < 30; i++) {
        const char *gargv[] = {"GET", key[i]};
        assert_int_equal(gov_redis_cluster_append(c, 2, gargv, NULL), GOV_OK);
    }
    assert_int_equal(gov_redis_cluster_read(c, &r, eb, sizeof eb), GOV_OK);
    freeReplyObject(r);
    for (int i = 29; i >= 0; i--) {
        const char *gargv[] = {"GET", key[i]};
        assert_int_equal(gov_redis_cluster_append(c, 2, gargv, NULL), GOV_OK);
    }
    for (int i = 29; i >= 0; i--) {
        if (gov_redis_cluster_read(c, &r, eb, sizeof eb) != GOV_OK)
            fail_msg("second pipeline, reply for key %d: %s", i, eb);
        assert_string_equal(r->str, val[i]);
        freeReplyObject(r);
    }
    gov_redis_cluster_stats_t st;
    gov_redis_cluster_stats(c, &st);
    assert_int_equal(st.moved, 0);
    assert_int_equal(st.ask, 0);
    gov_redis_cluster_free(c);
}

/* Clears any migration state slot has on the masters (a run that failed
 * half-way leaves IMPORTING/MIGRATING behind). */
static void slot_stable(unsigned slot) {
    char s[16];
    snprintf(s, sizeof s, "%u", slot);
    for (int i = 0; i < NODES; i++)
        node_expect(base_port + i, "CLUSTER", "SETSLOT", s, "STABLE", NULL);
}

/* Starts moving slot from src to dst: IMPORTING on dst, MIGRATING on src. */
static void slot_migrating(unsigned slot, int src, int dst) {
    char s[16], src_id[48], dst_id[48];
    snprintf(s, sizeof s, "%u", slot);
    node_id(src, src_id);
    node_id(dst, dst_id);
    const char *imp[] = {"CLUSTER", "SETSLOT", s, "IMPORTING", src_id};
    const char *mig[] = {"CLUSTER", "SETSLOT", s, "MIGRATING", dst_id};
    redisReply *r = node_cmd(dst, 5, imp);
    assert_true(r != NULL && r->type == REDIS_REPLY_STATUS);
    free_reply(r);
    r = node_cmd(src, 5, mig);
    assert_true(r != NULL && r->type == REDIS_REPLY_STATUS);
    free_reply(r);
}

static void migrate_key(const char *key, int src, int dst) {
    char p[16];
    snprintf(p, sizeof p, "%d", dst);
    const char *argv[] = {"MIGRATE", "127.0.0.1", p, key, "0", "5000"};
    redisReply *r = node_cmd(src, 6, argv);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("MIGRATE %s: %s", key, r->str);
    free_reply(r);
}

/* Ends the move: slot belongs to dst, told to every master (what
 * redis-cli --cluster reshard does). */
static void slot_owned_by(unsigned slot, int dst) {
    char s[16], dst_id[48];
    snprintf(s, sizeof s, "%u", slot);
    node_id(dst, dst_id);
    for (int i = 0; i < NODES; i++) {
        const char *argv[] = {"CLUSTER", "SETSLOT", s, "NODE", dst_id};
        free_reply(node_cmd(base_port + i, 5, argv));
    }
}

typedef struct {
    unsigned slot;
    int port;
} owner_wait_t;

static int all_see_owner(void *opaque) {
    const owner_wait_t *w = opaque;
    for (int i = 0; i < NODES; i++)
        if (owner_of(base_port + i, w->slot) != w->port)
            return 0;
    return 1;
}

static void test_moved_after_slot_migration(void **state) {
    (void)state;
    gov_redis_cluster_t *c = client();
    char key[160];
    unsigned slot = fresh_key("moved", key, sizeof key);
    slot_stable(slot);
    cluster_set(c, key, "before");   /* the client's map is loaded now */
    int src = owner_of(base_port, slot), dst = other_master(src);
    assert_true(src != 0 && dst != 0);
    const char *host;
    int port = 0;
    assert_int_equal(gov_redis_cluster_route(c, key, strlen(key), &host, &port), GOV_OK);
    assert_int_equal(port, src);

    /* the slot moves behind the client's back */
    slot_migrating(slot, src, dst);
    migrate_key(key, src, dst);
    slot_owned_by(slot, dst);
    owner_wait_t w = {slot, dst};
    assert_true(itest_wait_for(all_see_owner, &w, 10000, 50) >= 0);

    gov_redis_cluster_stats_t st0, st1;
    gov_redis_cluster_stats(c, &st0);
    cluster_get(c, key, "before");          /* src answers MOVED; followed */
    gov_redis_cluster_stats(c, &st1);
    assert_int_equal(st1.moved, st0.moved + 1);
    assert_true(st1.refreshes > st0.refreshes);
    assert_int_equal(gov_redis_cluster_route(c, key, strlen(key), &host, &port), GOV_OK);
    assert_int_equal(port, dst);
    cluster_set(c, key, "after");            /* no redirect now */
    cluster_get(c, key, "after");
    gov_redis_cluster_stats(c, &st0);
    assert_int_equal(st0.moved, st1.moved);
    node_expect(dst, "GET", key, NULL, NULL, "after");
    gov_redis_cluster_free(c);
}

static void test_ask_during_migration(void **state) {
    (void)state;
    gov_redis_cluster_t *c = client();
    char run[64], moved[160], stays[160];
    itest_unique("ask", run, sizeof run);
    snprintf(moved, sizeof moved, "itest:cluster:{%s}:moved", run);
    snprintf(stays, sizeof stays, "itest:cluster:{%s}:stays", run);
    unsigned slot = gov_redis_key_slot(moved, strlen(moved));
    slot_stable(slot);
    cluster_set(c, moved, "m");
    cluster_set(c, stays, "s");
    int src = owner_of(base_port, slot), dst = other_master(src);

    slot_migrating(slot, src, dst);
    migrate_key(moved, src, dst);
    /* src no longer has `moved`: it answers ASK for it */
    const char *argv[] = {"GET", moved};
    redisReply *r = node_cmd(src, 2, argv);
    assert_true(r != NULL && r->type == REDIS_REPLY_ERROR && strstr(r->str, "ASK ") != NULL);
    free_reply(r);

    gov_redis_cluster_stats_t st0, st1;
    gov_redis_cluster_stats(c, &st0);
    cluster_get(c, moved, "m");               /* ASKING + GET on dst */
    gov_redis_cluster_stats(c, &st1);
    assert_int_equal(st1.ask, st0.ask + 1);
    assert_int_equal(st1.moved, st0.moved);
    cluster_get(c, stays, "s");               /* still served by src */
    const char *eargv[] = {moved};
    char eb[256];
    assert_int_equal(gov_redis_cluster_eval(c, &get_script, 1, 1, eargv, NULL, &r, eb, sizeof eb),
                     GOV_OK);
    assert_string_equal(r->str, "m");
    freeReplyObject(r);
    gov_redis_cluster_stats(c, &st0);
    assert_int_equal(st0.ask, st1.ask + 1);
    /* the map is not changed by ASK: the slot still routes to src */
    const char *host;
    int port = 0;
    assert_int_equal(gov_redis_cluster_route(c, stays, strlen(stays), &host, &port), GOV_OK);
    assert_int_equal(port, src);

    /* finish the migration; then the stale map meets MOVED */
    migrate_key(stays, src, dst);
    slot_owned_by(slot, dst);
    owner_wait_t w = {slot, dst};
    assert_true(itest_wait_for(all_see_owner, &w, 10000, 50) >= 0);
    cluster_get(c, stays, "s");
    gov_redis_cluster_stats(c, &st1);
    assert_int_equal(st1.moved, st0.moved + 1);
    gov_redis_cluster_free(c);
}

/* The replica port of the master at port (ROLE of the master). */
static int replica_of(int master) {
    const char *argv[] = {"ROLE"};
    redisReply *r = node_cmd(master, 1, argv);
    int port = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[2]->type == REDIS_REPLY_ARRAY && r->element[2]->elements > 0)
        port = atoi(r->element[2]->element[0]->element[1]->str);
    free_reply(r);
    return port;
}

static int has_replica(void *opaque) {
    return replica_of(*(const int *)opaque) != 0;
}

typedef struct {
    int port;
    const char *key, *value;
} replica_wait_t;

static int replica_has(void *opaque) {
    const replica_wait_t *w = opaque;
    gov_redis_t *r = NULL;
    char eb[256];
    int ok = 0;
    if (gov_redis_new("127.0.0.1", w->port, 3000, &r, eb, sizeof eb) == GOV_OK) {
        const char *ro[] = {"READONLY"}, *get[] = {"GET", w->key};
        redisReply *rep = NULL;
        if (gov_redis_command(r, NULL, 1, ro, NULL, eb, sizeof eb) == GOV_OK &&
            gov_redis_command(r, &rep, 2, get, NULL, eb, sizeof eb) == GOV_OK)
            ok = rep->type == REDIS_REPLY_STRING && strcmp(rep->str, w->value) == 0;
        freeReplyObject(rep);
    }
    gov_redis_free(r);
    return ok;
}

typedef struct {
    gov_redis_cluster_t *c;
    const char *key;
} client_wait_t;

static int client_reads(void *opaque) {
    const client_wait_t *w = opaque;
    const char *argv[] = {"GET", w->key};
    redisReply *r = NULL;
    char eb[256];
    int ok = gov_redis_cluster_command(w->c, &r, 2, argv, NULL, eb, sizeof eb) == GOV_OK &&
             r->type == REDIS_REPLY_STRING && strcmp(r->str, "survives") == 0;
    freeReplyObject(r);
    return ok;
}

static void test_master_killed_replica_promoted(void **state) {
    (void)state;
    gov_redis_cluster_t *c = client();
    char key[160];
    unsigned slot = fresh_key("failover", key, sizeof key);
    cluster_set(c, key, "survives");
    int master = owner_of(base_port, slot);
    assert_true(master != 0);
    /* a new cluster's replicas attach a moment after cluster_state:ok */
    assert_true(itest_wait_for(has_replica, &master, 20000, 50) >= 0);
    int replica = replica_of(master);
    replica_wait_t rw = {replica, key, "survives"};
    assert_true(itest_wait_for(replica_has, &rw, 10000, 50) >= 0);

    /* kill -9 the master (its pid from the node itself) */
    pid_t pid = itest_redis_node_pid(master);
    assert_int_equal(kill(pid, SIGKILL), 0);

    /* the client follows the promotion by itself: reads come back */
    client_wait_t cw = {c, key};
    long waited = itest_wait_for(client_reads, &cw, 30000, 100);
    assert_true(waited >= 0);
    const char *host;
    int port = 0;
    assert_int_equal(gov_redis_cluster_route(c, key, strlen(key), &host, &port), GOV_OK);
    assert_int_equal(port, replica);
    const char *role[] = {"ROLE"};
    redisReply *r = node_cmd(replica, 1, role);
    assert_true(r != NULL && r->type == REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "master");
    free_reply(r);
    cluster_set(c, key, "written-after");
    node_expect(replica, "GET", key, NULL, NULL, "written-after");
    print_message("failover followed after %ld ms\n", waited);
    gov_redis_cluster_free(c);

    /* the killed node back: it rejoins as a replica */
    assert_int_equal(run_cluster_sh("redis-start"), 0);
    assert_true(itest_wait_for(cluster_ok_all, NULL, 30000, 100) >= 0);
}

static long long node_xlen(const char *key) {
    const char *argv[] = {"XLEN", key};
    redisReply *r = node_cmd(owner_of(base_port, gov_redis_key_slot(key, strlen(key))), 2, argv);
    long long n = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    free_reply(r);
    return n;
}

/* EVALSHA calls node `port` has served so far (INFO commandstats). */
static long long node_evalshas(int port) {
    const char *argv[] = {"INFO", "commandstats"};
    redisReply *r = node_cmd(port, 2, argv);
    assert_non_null(r);
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, "cmdstat_evalsha:calls=")
                                                  : NULL;
    long long n = p ? atoll(p + strlen("cmdstat_evalsha:calls=")) : 0;
    free_reply(r);
    return n;
}

static void test_state_layer_on_cluster(void **state) {
    (void)state;
    enum { TENANTS = 9, PER = 3, N = TENANTS * PER + TENANTS };
    gov_redis_t *r = NULL;
    char eb[256], run[48], tenant[TENANTS][64], did[TENANTS][64];
    if (gov_redis_new_cluster(nodes_list, 3000, &r, eb, sizeof eb) != GOV_OK)
        fail_msg("cluster handle: %s", eb);
    assert_int_equal(gov_redis_ping(r), GOV_OK);
    gov_state_audit_t *s = gov_state_audit_new(r, 3600);
    assert_non_null(s);
    itest_unique("clu", run, sizeof run);
    gov_state_audit_item_t items[N];
    memset(items, 0, sizeof items);
    char src[N][48];
    for (int t = 0; t < TENANTS; t++) {
        snprintf(tenant[t], sizeof tenant[t], "%s-%d", run, t);
        snprintf(did[t], sizeof did[t], "d-%s-%d", run, t);
    }
    /* interleaved as a partition would carry them: every tenant's events
     * spread over the batch, a decision after each tenant's third */
    for (int i = 0; i < N; i++) {
        int t = i % TENANTS, dec = i >= TENANTS * PER;
        items[i].event = dec ? itest_decision_event(tenant[t], did[t])
                             : itest_audit_event(tenant[t], "cluster.check");
        items[i].type = dec ? "PolicyDecision" : "AuditEvent";
        snprintf(src[i], sizeof src[i], "identity.audit/0/%d", i);
        items[i].source = src[i];
        items[i].pos = (gov_state_pos_t){"itest-cluster", "identity.audit", 0, i, NULL};
    }
    long long evalsha_before = 0;
    for (int i = 0; i < NODES; i++)
        evalsha_before += node_evalshas(base_port + i);
    assert_int_equal(gov_state_audit_append_batch(s, items, N), GOV_OK);
    /* the pipelined path itself, not its one-by-one fallback (an EVALSHA
     * per event): the group script is loaded on each master (one EVALSHA
     * answered NOSCRIPT, then EVAL) and each tenant's group goes to its own
     * master as one EVALSHA - a script loaded on one master only sends the
     * other masters' tenants one by one */
    long long evalsha_after = 0;
    for (int i = 0; i < NODES; i++)
        evalsha_after += node_evalshas(base_port + i);
    if (evalsha_after - evalsha_before > TENANTS + 3)
        fail_msg("%lld EVALSHA for %d tenants on 3 masters: the batch went one by one",
                 evalsha_after - evalsha_before, TENANTS);
    for (int i = 0; i < N; i++)
        if (items[i].result != GOV_OK)
            fail_msg("item %d (%s): %s %s", i, tenant[i % TENANTS], gov_err_str(items[i].result),
                     items[i].errbuf);
    int masters_used[3] = {0}, nused = 0;
    for (int t = 0; t < TENANTS; t++) {
        char k[GOV_STATE_KEY_MAX], applied[GOV_STATE_KEY_MAX];
        assert_int_equal(gov_state_key(GOV_STATE_AUDIT, tenant[t], k), GOV_OK);
        /* asked of the owning master itself */
        assert_int_equal(node_xlen(k), PER + 1);
        gov_state_pos_t p = {"itest-cluster", "identity.audit", 0, 0, tenant[t]};
        assert_int_equal(gov_state_offset_key(&p, applied), GOV_OK);
        unsigned slot = gov_redis_key_slot(k, strlen(k));
        assert_int_equal(gov_redis_key_slot(applied, strlen(applied)), slot);
        char want[16];
        snprintf(want, sizeof want, "%d", TENANTS * PER + t);
        node_expect(owner_of(base_port, slot), "GET", applied, NULL, NULL, want);
        redisReply *head = NULL;
        assert_int_equal(gov_state_audit_head_read(r, tenant[t], &head, eb, sizeof eb), GOV_OK);
        assert_string_equal(head->element[1]->str, "4");
        freeReplyObject(head);
        int o = owner_of(base_port, slot), seen = 0;
        for (int j = 0; j < nused; j++)
            seen |= masters_used[j] == o;
        if (!seen && nused < 3)
            masters_used[nused++] = o;
    }
    assert_true(nused >= 2);   /* the batch really spanned masters */

    /* the same batch again (a redelivery): every event a replay */
    for (int i = 0; i < N; i++)
        items[i].result = GOV_OK;
    gov_state_audit_forget(s);
    assert_int_equal(gov_state_audit_append_batch(s, items, N), GOV_OK);
    for (int i = 0; i < N; i++)
        if (items[i].result != GOV_ERR_DUPLICATE)
            fail_msg("replayed item %d: %s %s", i, gov_err_str(items[i].result), items[i].errbuf);
    for (int t = 0; t < TENANTS; t++) {
        char k[GOV_STATE_KEY_MAX];
        assert_int_equal(gov_state_key(GOV_STATE_AUDIT, tenant[t], k), GOV_OK);
        assert_int_equal(node_xlen(k), PER + 1);
    }
    /* the partition watermark: its own slot, a single-key command */
    gov_state_pos_t wpos = {"itest-cluster", "identity.audit", 0, N - 1, NULL};
    int64_t wm = -1;
    assert_int_equal(gov_state_watermark_reset(r, &wpos, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_state_watermark_read(r, &wpos, &wm, eb, sizeof eb), GOV_OK);
    assert_int_equal(wm, N - 1);
    for (int i = 0; i < N; i++)
        json_decref(items[i].event);
    gov_state_audit_free(s);
    gov_redis_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_by_slot),
        cmocka_unit_test(test_state_layer_on_cluster),
        cmocka_unit_test(test_undeclared_keys_of_the_slot),
        cmocka_unit_test(test_moved_after_slot_migration),
        cmocka_unit_test(test_ask_during_migration),
        cmocka_unit_test(test_master_killed_replica_promoted),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
