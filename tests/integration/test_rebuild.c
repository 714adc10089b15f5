/* test_rebuild.c - Redis is a rebuildable view of Kafka (docs/contracts.md,
 * "Rebuilding Redis").
 *
 * A deployment of its own on a private redis-server: gov-constitution,
 * gov-rulepacks and gov-audit under their own component names and groups,
 * and an edge, for a tenant of this run whose constitution (two versions)
 * and rule pack (two versions) are published the real way.  Then, while
 * evaluations run against the edge:
 *   - FLUSHALL: every processor notices (processor_rebuilds_total of each,
 *     filtered by this deployment's processor), replays its partitions, and
 *     the constitution, its history, the rule pack, its history and the
 *     audit chain come back identical - compared with dumps taken before,
 *     the chain entry by entry (not the stream ids), the head hash, and
 *     `govctl audit verify`;
 *   - an older RDB snapshot restored (BGSAVE, copy dump.rdb, publish newer
 *     versions and decide more, stop Redis, put the old dump back, start
 *     it): the same, against the dumps of the newer state;
 *   - every evaluate answer during all of it is the first one (decision_id
 *     and evaluated_at aside): the edge kept serving its verified snapshot;
 *   - gov-rulepacks' replays announce nothing: after its watermarks are
 *     deleted three times, its RulePackUpdated and rulepack.accepted for
 *     the tenant still number exactly its accepted packs.
 * Every wait is on an outcome (a metric, a dump, a count), never a sleep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gov_avro.h"
#include "gov_buf.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

enum { PC, PR, PA, EDGE, NPROC };
static const char *bins[NPROC] = {"gov-constitution", "gov-rulepacks", "gov-audit", "gov-edge"};
static const char *components[NPROC] = {"gov-constitution-itest-rebuild",
                                        "gov-rulepacks-itest-rebuild", "gov-audit-itest-rebuild",
                                        NULL};
static itest_proc_t procs[NPROC];
static pid_t redis_pid = -1;
static int redis_port;
static char redis_dir[512];
static char tenant[64], trust_path[512], rp_trust_path[512];
static char env_redis[48], env_trust[560], env_rp_trust[580], env_check[48];
static EVP_PKEY *keys[2];
static const char *signer_ids[2] = {"alice", "bob"};

/* --- publishing ------------------------------------------------------------------ */

static void publish_constitution(const char *version) {
    char doc[1024];
    snprintf(doc, sizeof doc,
             "{\"version\":\"%s\",\"tenant\":\"%s\",\"rules\":{\"prohibited_actions\":[\"exfiltrate_data\"],"
             "\"permitted_tool_categories\":[\"search\"],\"max_risk_score\":0.7,"
             "\"require_human_approval_above_risk\":0.5},\"governance\":{\"signature_threshold\":2}}",
             version, tenant);
    static const int both[] = {0, 1, -1};
    json_t *b = itest_bundle_event(tenant, doc, "jcs", "sha256", NULL, keys, signer_ids, both);
    itest_produce_event("constitution.bundles", "ConstitutionBundle", b);
    json_decref(b);
}

static void publish_pack(const char *version) {
    char pack[2048], id[GOV_UUID_STRLEN + 1];
    snprintf(pack, sizeof pack,
             "{\"pack_id\":\"itest-rebuild\",\"tenant\":\"%s\",\"version\":\"%s\","
             "\"thresholds\":{\"max_risk_score\":0.7},\"rules\":["
             "{\"id\":\"pii.email\",\"severity\":\"high\",\"weight\":0.25,\"effect\":\"add\",\"message\":\"e-mail address\","
             " \"match\":{\"prompt\":[{\"regex\":\"[a-z0-9._%%+-]+@[a-z0-9.-]+\\\\.[a-z]{2,}\",\"case_insensitive\":true}]}}]}",
             tenant, version);
    gov_uuid_v7(id);
    json_t *ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "event_id", id, "occurred_at",
                           (json_int_t)gov_now_micros(), "tenant", tenant, "pack_id",
                           "itest-rebuild", "version", version, "rulepack_json", pack,
                           "published_by", "itest");
    static const int alice[] = {0, -1};
    itest_sign_rulepack_event(ev, keys, signer_ids, alice);
    itest_produce_event("policy.rulepacks", "RulePackPublished", ev);
    json_decref(ev);
}

/* --- dumps ------------------------------------------------------------------------- */

/* Appends the reply's strings (nested arrays flattened) to a growing text,
 * one per line.  Amortized O(length): the chain's dump is taken every 200 ms
 * while it grows under load (an strlen per field made it quadratic - minutes
 * of CPU in the CI's run). */
static void append_reply(gov_buf_t *text, const redisReply *r) {
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            append_reply(text, r->element[i]);
        return;
    }
    if (r->type == REDIS_REPLY_STRING)
        gov_buf_put(text, r->str, r->len);
    else
        gov_buf_puts(text, "(nil)");
    gov_buf_putc(text, '\n');
}

static void append_cmd(gov_buf_t *text, const char *fmt, ...) {
    char cmd[512], eb[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    redisReply *r = NULL;
    if (gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "%s", cmd) != GOV_OK) {
        append_reply(text, &(redisReply){.type = REDIS_REPLY_NIL});
        return;
    }
    append_reply(text, r);
    freeReplyObject(r);
}

/* The text of a finished dump (the caller frees it). */
static char *dump_text(gov_buf_t *b) {
    gov_buf_putc(b, 0);   /* an empty dump is "" too, never NULL */
    assert_int_equal(b->err, GOV_OK);
    return b->data;
}

/* The tenant's constitution, history, rule pack, meta and history, and its
 * place in both indexes, as text (hash fields sorted by Redis's SORT). */
static char *dump_state(void) {
    gov_buf_t b, *t = &b;
    gov_buf_init(&b, 0);
    static const char *const cfields[] = {"checksum", "hash_alg", "canonicalization", "version",
                                          "verified_at", "signers", "source", "bundle_event_id",
                                          "signatures", "announced", NULL};
    for (const char *const *f = cfields; *f; f++)
        append_cmd(t, "HGET constitution:{%s} %s", tenant, *f);
    append_cmd(t, "GET constitution:{%s}:doc", tenant);
    append_cmd(t, "LRANGE constitution:{%s}:history 0 -1", tenant);
    append_cmd(t, "SISMEMBER gov:{tenants}:constitution %s", tenant);
    append_cmd(t, "GET policy:rulepack:{%s}", tenant);
    static const char *const pfields[] = {"sha256", "version", "pack_id", "rules", "patterns",
                                          "event_id", "published_by", "accepted_at",
                                          "previous_version", "signers", "signatures", NULL};
    for (const char *const *f = pfields; *f; f++)
        append_cmd(t, "HGET policy:rulepack:{%s}:meta %s", tenant, *f);
    append_cmd(t, "LRANGE policy:rulepack:{%s}:history 0 -1", tenant);
    append_cmd(t, "SISMEMBER gov:{tenants}:rulepack %s", tenant);
    return dump_text(t);
}

/* The tenant's audit chain: every entry's fields (not its stream id, which
 * is the time of materialization), then the head. */
static char *dump_chain(void) {
    gov_buf_t b, *t = &b;
    char eb[256];
    gov_buf_init(&b, 0);
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XRANGE audit:{%s} - +",
                                        tenant), GOV_OK);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i]->elements == 2)
            append_reply(t, r->element[i]->element[1]);
    freeReplyObject(r);
    append_cmd(t, "HMGET audit:{%s}:head hash seq", tenant);
    return dump_text(t);
}

typedef struct same_want {
    const char *want;
    char *(*dump)(void);
} same_want_t;

static int same_again(void *opaque) {
    same_want_t *w = opaque;
    char *now = w->dump();
    int same = strcmp(now, w->want) == 0;
    free(now);
    return same;
}

/* Waits until dump() gives want again; fails with both texts otherwise. */
/* Writes both texts under var/test-logs for a failure message. */
static void keep_dumps(const char *before, const char *now) {
    const char *const names[2] = {"itest-rebuild-before.txt", "itest-rebuild-now.txt"};
    const char *const texts[2] = {before, now};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(itest_log_path(names[i]), "w");
        if (f) {
            fputs(texts[i], f);
            fclose(f);
        }
    }
}

static void wait_same(char *(*dump)(void), const char *want, const char *what, int timeout_ms) {
    same_want_t w = {want, dump};
    if (itest_wait_for(same_again, &w, timeout_ms, 50) < 0) {
        char *now = dump();
        keep_dumps(want, now);
        fail_msg("%s did not come back identical (var/test-logs/itest-rebuild-{before,now}.txt)",
                 what);
    }
}

/* --- metrics ------------------------------------------------------------------------- */

typedef struct rebuilt_want {
    int proc;
    double at_least;
} rebuilt_want_t;

static double rebuilds(int proc) {
    /* processor_rebuilds_total of this deployment's own process */
    double v = itest_proc_metric(&procs[proc], "processor_rebuilds_total", NULL);
    return v < 0 ? 0 : v;
}

static int rebuilt(void *opaque) {
    rebuilt_want_t *w = opaque;
    return rebuilds(w->proc) >= w->at_least;
}

static void wait_rebuilt(int proc, double at_least) {
    rebuilt_want_t w = {proc, at_least};
    if (itest_wait_for(rebuilt, &w, ITEST_HISTORY_MS, 50) < 0)
        fail_msg("%s (%s) did not rebuild (processor_rebuilds_total %.0f, want >= %.0f)",
                 bins[proc], components[proc], rebuilds(proc), at_least);
}

/* --- evaluations under load ---------------------------------------------------------- */

static char request_body[512];

typedef struct load {
    pthread_t thread;
    atomic_int stop;
    atomic_long answered, changed, failed;
    char first[4096];
    char changed_answer[4096];
    char last_id[64];   /* the last decision's id: read after load_stop */
} load_t;

static load_t load;

/* The answer without what differs by design (the decision's id and time). */
static char *normalized(const char *body) {
    json_t *j = json_loads(body, 0, NULL);
    if (j == NULL)
        return strdup(body);
    json_object_del(j, "decision_id");
    json_object_del(j, "evaluated_at");
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

static void *load_main(void *arg) {
    (void)arg;
    char url[256];
    snprintf(url, sizeof url, "%s/v1/evaluate", procs[EDGE].url);
    while (!atomic_load(&load.stop)) {
        char *body = NULL;
        long st = itest_http_post_json(url, request_body, &body);
        char *n = normalized(body ? body : "");
        if (st != 200) {
            atomic_fetch_add(&load.failed, 1);
            if (load.changed_answer[0] == 0)
                snprintf(load.changed_answer, sizeof load.changed_answer, "HTTP %ld: %s", st, n);
        } else {
            json_t *j = json_loads(body, 0, NULL);
            const char *id = json_string_value(json_object_get(j, "decision_id"));
            snprintf(load.last_id, sizeof load.last_id, "%s", id ? id : "");
            json_decref(j);
            if (strcmp(n, load.first) != 0) {
                atomic_fetch_add(&load.changed, 1);
                if (load.changed_answer[0] == 0)
                    snprintf(load.changed_answer, sizeof load.changed_answer, "%s", n);
            }
        }
        atomic_fetch_add(&load.answered, 1);
        free(n);
        free(body);
        itest_sleep_ms(10);   /* pacing, not waiting: about 100 evaluations a second */
    }
    return NULL;
}

typedef struct count_want {
    long at_least;
} count_want_t;

static int answered_reached(void *opaque) {
    return atomic_load(&load.answered) >= ((count_want_t *)opaque)->at_least;
}

static void wait_answers(long more) {
    count_want_t w = {atomic_load(&load.answered) + more};
    if (itest_wait_for(answered_reached, &w, ITEST_HISTORY_MS, 10) < 0)
        fail_msg("the edge stopped answering (%ld answers)", atomic_load(&load.answered));
}

static void load_start(void) {
    atomic_store(&load.stop, 0);
    assert_int_equal(pthread_create(&load.thread, NULL, load_main, NULL), 0);
}

static void load_stop(void) {
    atomic_store(&load.stop, 1);
    pthread_join(load.thread, NULL);
}

/* Every decision the load made is in the chain: the edge logs them
 * asynchronously, in order (one request at a time), gov-audit relays and
 * appends them in that order - the last one present means all are. */
static int last_decision_in_chain(void *opaque) {
    (void)opaque;
    char eb[256];
    redisReply *r = NULL;
    int yes = 0;
    if (gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "EXISTS policy:decision:{%s}:%s",
                           tenant, load.last_id) == GOV_OK) {
        yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
    }
    return yes;
}

static void wait_chain_settled(void) {
    if (load.last_id[0] == 0)
        fail_msg("the load made no decision");
    if (itest_wait_for(last_decision_in_chain, NULL, ITEST_HISTORY_MS, 50) < 0)
        fail_msg("decision %s never reached the chain", load.last_id);
}

/* The entries of a chain dump: everything before its head (two lines). */
static size_t entries_len(const char *chain) {
    size_t n = strlen(chain);
    int lines = 0;
    while (n > 0) {
        if (chain[n - 1] == '\n' && ++lines == 3)
            return n;
        n--;
    }
    return 0;
}

typedef struct prefix_want {
    const char *before;
} prefix_want_t;

static int chain_extends(void *opaque) {
    prefix_want_t *w = opaque;
    char *now = dump_chain();
    size_t n = entries_len(w->before);
    int yes = strlen(now) >= n && strncmp(now, w->before, n) == 0;
    free(now);
    return yes;
}

/* Waits until the chain's entries start with those of `before`. */
static void wait_chain_extends(const char *before, const char *what) {
    prefix_want_t w = {before};
    /* a rebuild replays the whole topic, every run's history included */
    if (itest_wait_for(chain_extends, &w, ITEST_HISTORY_MS, 200) < 0) {
        char *now = dump_chain();
        keep_dumps(before, now);
        fail_msg("%s: the chain does not start with the entries it had "
                 "(var/test-logs/itest-rebuild-{before,now}.txt)", what);
    }
}

/* --- setup -------------------------------------------------------------------------- */

typedef struct edge_want {
    const char *version;
} edge_want_t;

static int edge_serves(void *opaque) {
    edge_want_t *w = opaque;
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "%s/v1/evaluate", procs[EDGE].url);
    long st = itest_http_post_json(url, request_body, &body);
    char want[64];
    snprintf(want, sizeof want, "\"rulepack_version\":\"%s\"", w->version);
    int ok = st == 200 && body && strstr(body, want) != NULL;
    free(body);
    return ok;
}

/* Waits until the edge evaluates with pack `version`, then records its
 * answer: what every later answer must be. */
static void record_served_answer(const char *version) {
    edge_want_t w = {version};
    if (itest_wait_for(edge_serves, &w, ITEST_HISTORY_MS, 20) < 0)
        fail_msg("the edge does not serve pack %s of %s", version, tenant);
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "%s/v1/evaluate", procs[EDGE].url);
    assert_int_equal(itest_http_post_json(url, request_body, &body), 200);
    char *n = normalized(body);
    snprintf(load.first, sizeof load.first, "%s", n);
    free(n);
    free(body);
}

static void start_redis_on(int port) {
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    const char *argv[] = {"/usr/bin/redis-server", "--port", portbuf, "--bind", "127.0.0.1",
                          "--dir", redis_dir, "--save", "", "--appendonly", "no", NULL};
    redis_pid = itest_spawn(argv, NULL, "redis-rebuild-restarted.log");
}

static void remove_snapshots(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/dump.rdb", redis_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/dump.old", redis_dir);
    unlink(path);
}

static int setup(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++)
        keys[i] = itest_ed25519_new();
    snprintf(trust_path, sizeof trust_path, "%s", itest_log_path("itest-rebuild-trust.json"));
    itest_write_trust(trust_path, 2, 2, signer_ids, keys);
    snprintf(rp_trust_path, sizeof rp_trust_path, "%s",
             itest_log_path("itest-rebuild-rulepack-trust.json"));
    itest_write_trust(rp_trust_path, 1, 2, signer_ids, keys);
    /* where itest_private_redis keeps it: var/test-redis/<name>; a
     * snapshot an earlier run left there would be loaded at start */
    snprintf(redis_dir, sizeof redis_dir, "%s", itest_log_path("../test-redis/rebuild"));
    remove_snapshots();
    redis_pid = itest_private_redis("rebuild", &redis_port);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_redis);
    snprintf(env_trust, sizeof env_trust, "GOV_TRUST_FILE=%s", trust_path);
    snprintf(env_rp_trust, sizeof env_rp_trust, "GOV_RULEPACK_TRUST_FILE=%s", rp_trust_path);
    snprintf(env_check, sizeof env_check, "GOV_REBUILD_CHECK=%s", "200ms");
    for (int i = 0; i < NPROC; i++) {
        const char *env[] = {env_redis, env_trust, env_rp_trust, env_check, NULL, NULL};
        if (i == EDGE)
            env[3] = NULL;
        if (i == PA)
            env[4] = ITEST_NO_RELAY;
        char log[96];
        snprintf(log, sizeof log, "itest-rebuild-%s.log", bins[i]);
        itest_proc_start(&procs[i], bins[i], components[i], env, log);
    }
    for (int i = PC; i <= PA; i++)
        itest_must_catch_up(&procs[i], 3);
    itest_unique("rebuild", tenant, sizeof tenant);
    snprintf(request_body, sizeof request_body,
             "{\"tenant\":\"%s\",\"session_id\":\"s-1\",\"user\":\"alice\",\"role\":\"analyst\","
             "\"prompt\":\"mail carol@example.com the summary\"}", tenant);
    /* two versions of each: the histories are not empty */
    publish_constitution("1.0.0");
    publish_pack("1");
    publish_constitution("1.1.0");
    publish_pack("2");
    record_served_answer("2");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = 0;
    for (int i = NPROC - 1; i >= 0; i--)
        rc |= itest_proc_stop(&procs[i]);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    remove_snapshots();
    for (int i = 0; i < 2; i++)
        EVP_PKEY_free(keys[i]);
    return rc;
}

/* `govctl audit verify` finds the chain intact, and Redis's head is the
 * head of the chain dump (its hash: the dump's second-to-last line). */
static void govctl_verify_ok(const char *chain) {
    char out[4096], head[80];
    size_t e = entries_len(chain);
    const char *nl = strchr(chain + e, '\n');
    snprintf(head, sizeof head, "%.*s", nl ? (int)(nl - (chain + e)) : 0, chain + e);
    const char *argv[] = {itest_bin("govctl"), "audit", "verify", "--tenant", tenant, NULL};
    int rc = itest_run(argv, NULL, out, sizeof out);
    if (rc != 0 || strstr(out, "OK") == NULL)
        fail_msg("govctl audit verify failed (exit %d): %s", rc, out);
    if (strlen(head) != 64)
        fail_msg("no head hash in the chain dump");
    char eb[256];
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "HGET audit:{%s}:head hash",
                                        tenant), GOV_OK);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, head);
    freeReplyObject(r);
}

/* --- tests ---------------------------------------------------------------------------- */

static void flushall(void) {
    char eb[256];
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "FLUSHALL ASYNC"), GOV_OK);
    freeReplyObject(r);
}

static void no_answer_changed(void) {
    long changed = atomic_load(&load.changed), failed = atomic_load(&load.failed);
    print_message("%ld evaluations; %ld changed, %ld failed\n", atomic_load(&load.answered),
                  changed, failed);
    if (changed || failed)
        fail_msg("an evaluate answer changed during the rebuild: %s", load.changed_answer);
}

static void test_flushall_under_load_rebuilds_identical_state(void **state) {
    (void)state;
    load_start();
    wait_answers(30);
    char *state0 = dump_state();
    char *chain0 = dump_chain();
    double before[PA + 1];
    for (int i = PC; i <= PA; i++)
        before[i] = rebuilds(i);
    flushall();
    for (int i = PC; i <= PA; i++)
        wait_rebuilt(i, before[i] + 1);
    wait_same(dump_state, state0, "constitution and rule pack state", ITEST_HISTORY_MS);
    wait_chain_extends(chain0, "after FLUSHALL under load");
    wait_answers(30);   /* still under load after the rebuild */
    load_stop();
    wait_chain_settled();
    char *chain1 = dump_chain();
    wait_chain_extends(chain0, "settled");
    govctl_verify_ok(chain1);

    /* A quiet FLUSHALL: the very same chain, entries and head. */
    double a_before = rebuilds(PA);
    flushall();
    wait_rebuilt(PA, a_before + 1);
    wait_same(dump_chain, chain1, "the audit chain", ITEST_HISTORY_MS);
    wait_same(dump_state, state0, "constitution and rule pack state", ITEST_HISTORY_MS);
    govctl_verify_ok(chain1);
    no_answer_changed();
    free(state0);
    free(chain0);
    free(chain1);
}

/* A number of INFO persistence ("rdb_saves:": RDB saves started since
 * start; "rdb_bgsave_in_progress:"); -1 when absent. */
static long long persistence(const char *field) {
    char eb[256];
    redisReply *r = NULL;
    long long v = -1;
    if (gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "INFO persistence") == GOV_OK) {
        const char *f = r->type == REDIS_REPLY_STRING ? strstr(r->str, field) : NULL;
        if (f)
            v = atoll(f + strlen(field));
        freeReplyObject(r);
    }
    return v;
}

static long long rdb_saves(void) {
    return persistence("rdb_saves:");
}

typedef struct saved_want {
    long long saves;
} saved_want_t;

static int bgsave_done(void *opaque) {
    return rdb_saves() > ((saved_want_t *)opaque)->saves &&
           persistence("rdb_bgsave_in_progress:") == 0 &&
           persistence("rdb_last_bgsave_status:ok") != -1;
}

static void test_older_snapshot_restored_is_rebuilt(void **state) {
    (void)state;
    char eb[256], cmd[2048];
    redisReply *r = NULL;
    /* the snapshot: what Redis holds now */
    saved_want_t sw = {rdb_saves()};
    assert_true(sw.saves >= 0);
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "BGSAVE"), GOV_OK);
    freeReplyObject(r);
    if (itest_wait_for(bgsave_done, &sw, 30000, 20) < 0)
        fail_msg("BGSAVE did not finish");
    snprintf(cmd, sizeof cmd, "cp '%s/dump.rdb' '%s/dump.old'", redis_dir, redis_dir);
    assert_int_equal(system(cmd), 0);

    /* more writes after it: newer versions, more decisions */
    publish_constitution("1.2.0");
    publish_pack("3");
    record_served_answer("3");
    load_start();
    wait_answers(30);
    load_stop();
    wait_chain_settled();
    char *state1 = dump_state();
    char *chain1 = dump_chain();

    /* Redis goes back to the snapshot, under load */
    double before[PA + 1];
    for (int i = PC; i <= PA; i++)
        before[i] = rebuilds(i);
    load_start();
    itest_stop(redis_pid, SIGTERM, 10000);
    snprintf(cmd, sizeof cmd, "cp '%s/dump.old' '%s/dump.rdb'", redis_dir, redis_dir);
    assert_int_equal(system(cmd), 0);
    start_redis_on(redis_port);
    for (int i = PC; i <= PA; i++)
        wait_rebuilt(i, before[i] + 1);
    wait_same(dump_state, state1, "constitution and rule pack state after the restore", ITEST_HISTORY_MS);
    wait_chain_extends(chain1, "after the restore");
    wait_answers(30);
    load_stop();
    wait_chain_settled();
    char *chain2 = dump_chain();
    wait_chain_extends(chain1, "settled after the restore");
    govctl_verify_ok(chain2);
    no_answer_changed();
    free(state1);
    free(chain1);
    free(chain2);
}

/* --- replays announce nothing (review finding 7) ------------------------------------ */

/* Counts this deployment's announcements for the tenant on one topic until
 * the marker (pack version "marker") shows up. */
typedef struct announced_count {
    const char *type;     /* "RulePackUpdated" or "AuditEvent" */
    const char *marker;   /* version of the marker pack */
    int count;            /* before the marker */
} announced_count_t;

static int count_announced(void *opaque, const gov_kafka_msg_t *m) {
    announced_count_t *w = opaque;
    json_t *ev = NULL;
    const char *type = NULL;
    char eb[256], subject[64];
    if (gov_avro_decode(itest_avro(), m->value, m->len, &ev, &type, eb, sizeof eb) != GOV_OK)
        return 0;
    int done = 0;
    const char *t = json_string_value(json_object_get(ev, "tenant"));
    const char *comp = json_string_value(json_object_get(ev, "component"));
    if (strcmp(type, w->type) == 0 && t && strcmp(t, tenant) == 0 && comp &&
        strcmp(comp, components[PR]) == 0) {
        const char *version;
        if (strcmp(type, "AuditEvent") == 0) {
            const char *action = json_string_value(json_object_get(ev, "action"));
            const char *subj = json_string_value(json_object_get(ev, "subject"));
            snprintf(subject, sizeof subject, "%s", subj ? subj : "");
            char *at = strchr(subject, '@');
            version = at && action && strcmp(action, "rulepack.accepted") == 0 ? at + 1 : NULL;
        } else {
            version = json_string_value(json_object_get(ev, "version"));
        }
        if (version && strcmp(version, w->marker) == 0)
            done = 1;
        else if (version)
            w->count++;
    }
    json_decref(ev);
    return done;
}

typedef struct watermark_want {
    int partition;
    const char *value;
} watermark_want_t;

static int watermark_is(void *opaque) {
    watermark_want_t *w = opaque;
    char eb[256];
    redisReply *r = NULL;
    if (gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "GET gov:offsets:%s:policy.rulepacks:%d",
                           procs[PR].group, w->partition) != GOV_OK)
        return 0;
    /* at or past it: the partition may still be replaying an earlier
     * rebuild, and then it moves on beyond that value */
    int back = r->type == REDIS_REPLY_STRING && atoll(r->str) >= atoll(w->value);
    freeReplyObject(r);
    return back;
}

/* Deleting gov-rulepacks' watermarks makes it replay its partitions (a
 * rebuild): the replays materialize and announce nothing - no
 * RulePackUpdated, no rulepack.accepted, not counted.  So, after three
 * rebuilds (and the FLUSHALL and snapshot rebuilds before), this
 * deployment announced each pack exactly as often as it accepted one
 * (rulepack_accepted_total); the marker pack published after them ends the
 * count on each topic (one partition per tenant: it comes after every
 * replay's announcement). */
static void test_rulepacks_replays_announce_nothing(void **state) {
    (void)state;
    char tf[96], eb[256];
    snprintf(tf, sizeof tf, "tenant=\"%s\"", tenant);
    const char *flt[] = {tf, NULL};
    double accepted = itest_proc_metric(&procs[PR], "rulepack_accepted_total", flt);
    assert_true(accepted >= 2);
    for (int round = 0; round < 3; round++) {
        double before = rebuilds(PR);
        char was[3][32];
        for (int part = 0; part < 3; part++) {
            redisReply *r = NULL;
            assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                                "GETDEL gov:offsets:%s:policy.rulepacks:%d",
                                                procs[PR].group, part), GOV_OK);
            snprintf(was[part], sizeof was[part], "%s",
                     r->type == REDIS_REPLY_STRING ? r->str : "");
            freeReplyObject(r);
        }
        wait_rebuilt(PR, before + 1);
        /* the replay is over once each watermark is back where it was, or
         * further (a deletion during a replay would be absorbed by it) */
        for (int part = 0; part < 3; part++) {
            if (was[part][0] == 0)
                continue;
            watermark_want_t ww = {part, was[part]};
            if (itest_wait_for(watermark_is, &ww, ITEST_HISTORY_MS, 50) < 0)
                fail_msg("gov-rulepacks' watermark of partition %d did not come back to %s or more", part,
                         was[part]);
        }
    }
    publish_pack("99");
    announced_count_t upd = {"RulePackUpdated", "99", 0}, aud = {"AuditEvent", "99", 0};
    assert_true(itest_consume_until("policy.rulepacks.updated", count_announced, &upd,
                                    ITEST_HISTORY_MS));
    assert_true(itest_consume_until("identity.audit", count_announced, &aud, ITEST_HISTORY_MS));
    print_message("accepted %.0f; announced %d RulePackUpdated, %d rulepack.accepted\n", accepted,
                  upd.count, aud.count);
    assert_int_equal(upd.count, (int)accepted);
    assert_int_equal(aud.count, (int)accepted);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flushall_under_load_rebuilds_identical_state),
        cmocka_unit_test(test_older_snapshot_restored_is_rebuilt),
        cmocka_unit_test(test_rulepacks_replays_announce_nothing),
    };
    return cmocka_run_group_tests_name("rebuild", tests, setup, teardown);
}
