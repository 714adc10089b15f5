/* test_audit_faults.c - gov-audit's batch loop under faults, against the real
 * Kafka broker and a real Redis (REVIEW12 H1, H2, M6, L4).
 *
 * What it checks, each the way an operator would see it (the chain in
 * Redis, the DLQ topic, the group's committed offsets, the log):
 *   - a poison message held behind a batch whose Redis append failed is not
 *     dead-lettered above the rewound events: after kill -9 and a restart
 *     every event is chained and the poison is in the DLQ once (H1);
 *   - past 64 tenants in one batch, a tenant whose first event failed does
 *     not get its second chained before it (H2);
 *   - a poison message the DLQ does not take stops its partition: after
 *     kill -9, the DLQ restored and a restart, the poison reaches the DLQ
 *     and the event after it is chained once (M6);
 *   - with Redis down and every partition of identity.audit failing, the
 *     processor backs off once per batch, not once per partition (L4).
 *
 * How: a private redis-server and a private gov-audit (its own component
 * name, consumer group and admin port) on the stack's topics, with tenants
 * of its own; the stack's gov-audit reads the same messages, so every DLQ
 * record counted carries this deployment's x-gov-component.  The M6 case
 * deletes identity.audit.dlq for a while (auto-create is off) and creates
 * it again; teardown restores it if a failure left it missing.  The L4 case
 * kills the private Redis, so it runs last.
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
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

#define COMPONENT "gov-audit-faults"
#define LOGNAME "itest-gov-audit-faults.log"
#define AUDIT_TOPIC "identity.audit"
#define DLQ_TOPIC "identity.audit.dlq"

static pid_t redis_pid = -1;
static int redis_port;
static itest_proc_t audit;
static char env_port[48];

/* (Re)starts the private gov-audit with extra settings (NULL-terminated
 * "K=V", at most 6); the same group: it resumes from its committed offsets. */
static void start_audit(const char *const *extra) {
    const char *env[8] = {env_port, ITEST_NO_RELAY};
    size_t n = 2;
    for (; extra && *extra && n < 7; extra++)
        env[n++] = *extra;
    env[n] = NULL;
    itest_proc_start(&audit, "gov-audit", COMPONENT, env, LOGNAME);
}

/* Stops the private gov-audit (a clean exit is part of its contract) and
 * starts it again with extra settings; its metrics start at 0. */
static void restart_audit(const char *const *extra) {
    assert_int_equal(itest_proc_stop(&audit), 0);
    start_audit(extra);
}

/* --- Kafka: the DLQ topic, committed offsets, explicit partitions ---------- */

static rd_kafka_t *kafka_client(rd_kafka_type_t type, const char *group) {
    char eb[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers",
                      itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"), eb, sizeof eb);
    if (group)
        rd_kafka_conf_set(conf, "group.id", group, eb, sizeof eb);
    if (type == RD_KAFKA_PRODUCER)
        rd_kafka_conf_set(conf, "enable.idempotence", "true", eb, sizeof eb);
    rd_kafka_t *rk = rd_kafka_new(type, conf, eb, sizeof eb);
    if (rk == NULL)
        fail_msg("kafka client: %s", eb);
    return rk;
}

/* Partitions of topic per the broker's metadata; 0 when it does not exist. */
static int topic_partitions(const char *topic) {
    rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    /* all topics: asking for one by name could create it where auto-create is on */
    if (rd_kafka_metadata(rk, 1, NULL, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        n = 0;
        for (int i = 0; i < md->topic_cnt; i++)
            if (strcmp(md->topics[i].topic, topic) == 0 &&
                md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
                n = md->topics[i].partition_cnt;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    if (n < 0)
        fail_msg("no metadata from the broker");
    return n;
}

static int dlq_gone(void *opaque) {
    (void)opaque;
    return topic_partitions(DLQ_TOPIC) == 0;
}

/* Created again until the broker lists it (a create right after a delete
 * can be refused while the deletion finishes). */
static int dlq_created(void *opaque) {
    int *partitions = opaque;
    if (topic_partitions(DLQ_TOPIC) == *partitions)
        return 1;
    itest_create_topic(DLQ_TOPIC, *partitions);
    return topic_partitions(DLQ_TOPIC) == *partitions;
}

static int dlq_partitions = 3;   /* as deploy/stack.sh creates it */

static void restore_dlq(void) {
    if (itest_wait_for(dlq_created, &dlq_partitions, 60000, 500) < 0)
        fail_msg("%s could not be created again", DLQ_TOPIC);
}

/* The offset the private gov-audit's group committed for (topic,
 * partition); -1 when none.  A client of the group that does not join it. */
static int64_t committed(const char *topic, int32_t partition) {
    rd_kafka_t *rk = kafka_client(RD_KAFKA_CONSUMER, audit.group);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    int64_t off = -1;
    if (rd_kafka_committed(rk, l, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        l->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[0].offset >= 0)
        off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return off;
}

/* Encodes events[i] as types[i] and produces them, in order, to one
 * partition of topic (keyed by their tenant), waiting for all of them. */
static void produce_to_partition(const char *topic, int32_t partition, json_t **events,
                                 const char *const *types, size_t n) {
    rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
    char eb[256];
    for (size_t i = 0; i < n; i++) {
        unsigned char *buf = NULL;
        size_t len = 0;
        if (gov_avro_encode(itest_avro(), types[i], events[i], &buf, &len, eb, sizeof eb) != GOV_OK)
            fail_msg("encode %s: %s", types[i], eb);
        const char *key = json_string_value(json_object_get(events[i], "tenant"));
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        gov_free(buf);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            fail_msg("produce to %s/%d: %s", topic, (int)partition, rd_kafka_err2str(e));
    }
    if (rd_kafka_flush(rk, 15000) != RD_KAFKA_RESP_ERR_NO_ERROR || rd_kafka_outq_len(rk) != 0)
        fail_msg("produce to %s/%d: not acknowledged", topic, (int)partition);
    rd_kafka_destroy(rk);
}

/* DLQ records of this deployment keyed by one tenant, counted up to the
 * topic's end (read when the count starts). */
typedef struct dlq_count {
    const char *tenant;
    int64_t ends[16];
    int nparts;
    int64_t seen[16];   /* highest offset read per partition */
    int count;
    char source_offset[32];
} dlq_count_t;

/* A DLQ record of this deployment keyed by c's tenant. */
static int dlq_mine(const dlq_count_t *c, const gov_kafka_msg_t *m) {
    char comp[64] = "";
    itest_msg_header(m, "x-gov-component", comp, sizeof comp);
    return strcmp(comp, COMPONENT) == 0 && m->key_len == strlen(c->tenant) &&
           memcmp(m->key, c->tenant, m->key_len) == 0;
}

static int dlq_counted(void *opaque, const gov_kafka_msg_t *m) {
    dlq_count_t *c = opaque;
    if (dlq_mine(c, m)) {
        c->count++;
        itest_msg_header(m, "x-gov-source-offset", c->source_offset, sizeof c->source_offset);
    }
    if (m->partition >= 0 && m->partition < c->nparts && (int64_t)m->offset > c->seen[m->partition])
        c->seen[m->partition] = (int64_t)m->offset;
    for (int i = 0; i < c->nparts; i++)
        if (c->seen[i] < c->ends[i] - 1)
            return 0;
    return 1;
}

/* How many records this deployment dead-lettered for tenant (the source
 * offset of the last one in source_offset). */
static int dlq_records(const char *tenant, char *source_offset, size_t size) {
    dlq_count_t c = {.tenant = tenant};
    c.nparts = itest_topic_ends(DLQ_TOPIC, c.ends, 16);
    int any = 0;
    for (int i = 0; i < c.nparts; i++) {
        c.seen[i] = -1;
        any |= c.ends[i] > 0;
    }
    if (any && !itest_consume_until(DLQ_TOPIC, dlq_counted, &c, 30000))
        fail_msg("%s was not read to its end", DLQ_TOPIC);
    if (source_offset)
        snprintf(source_offset, size, "%s", c.source_offset);
    return c.count;
}

/* --- the private gov-audit's metrics -------------------------------------------- */

static double retried(void) {
    const char *flt[] = {"outcome=\"retried\"", "topic=\"" AUDIT_TOPIC "\"", NULL};
    double v = itest_proc_metric(&audit, "processor_events_total", flt);
    return v < 0 ? 0 : v;
}

/* Waits until the group committed an offset past `past` on partition (what
 * the faults below must never allow), or the processor retried `retries`
 * times; returns the committed offset then. */
typedef struct commit_or_retry {
    int32_t partition;
    int64_t past;
    double retries;
    int64_t committed;
} commit_or_retry_t;

static int committed_past_or_retried(void *opaque) {
    commit_or_retry_t *w = opaque;
    w->committed = committed(AUDIT_TOPIC, w->partition);
    return w->committed > w->past || retried() >= w->retries;
}

static void redis_cmd(const char *fmt, const char *arg) {
    char eb[256];
    redisReply *r = NULL;
    if (gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, fmt, arg) != GOV_OK)
        fail_msg("redis %s: %s", fmt, eb);
    freeReplyObject(r);
}

static long long xlen(const char *key) {
    return itest_wait_xlen(key, 0, 1);
}

/* The event_ids of the chain `key`, in chain order, into ids (at most max). */
static size_t chain_ids(const char *key, char (*ids)[48], size_t max) {
    char eb[256];
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XRANGE %s - +", key),
                     GOV_OK);
    size_t n = 0;
    for (size_t i = 0; i < r->elements && n < max; i++) {
        redisReply *f = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2)
            if (strcmp(f->element[k]->str, "event_id") == 0)
                snprintf(ids[n++], 48, "%s", f->element[k + 1]->str);
    }
    freeReplyObject(r);
    return n;
}

static int govctl_verify(const char *tenant, char *out, size_t size) {
    const char *argv[] = {itest_bin("govctl"), "audit", "verify", "--tenant", tenant, NULL};
    return itest_run(argv, NULL, out, size);
}

static void kill9_audit(void) {
    kill(audit.pid, SIGKILL);
    waitpid(audit.pid, NULL, 0);
    audit.pid = -1;
}

/* Waits until the partition's committed offset passes `past` or the
 * processor retried `retries` times (while `why`), reports which, and kills
 * the processor -9 before anything else can change; returns the committed
 * offset seen. */
static int64_t commit_or_retry_then_kill(int32_t partition, int64_t past, double retries,
                                         int timeout_ms, const char *why, const char *what) {
    commit_or_retry_t w = {partition, past, retries, -1};
    if (itest_wait_for(committed_past_or_retried, &w, timeout_ms, 100) < 0)
        fail_msg("%s neither retried nor committed while %s", COMPONENT, why);
    print_message("committed %lld on %s/%d (%s at %lld) before kill -9\n",
                  (long long)w.committed, AUDIT_TOPIC, (int)partition, what, (long long)past);
    kill9_audit();
    return w.committed;
}

static int setup(void **state) {
    (void)state;
    if (topic_partitions(DLQ_TOPIC) > 0)
        dlq_partitions = topic_partitions(DLQ_TOPIC);
    unlink(itest_log_path(LOGNAME));
    redis_pid = itest_private_redis("audit-faults", &redis_port);
    snprintf(env_port, sizeof env_port, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_port); /* itest_redis and govctl use it too */
    start_audit(NULL);
    /* a fresh group starts at the topics' beginning */
    itest_must_catch_up(&audit, 3);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_private_stop(&audit, redis_pid);
    if (topic_partitions(DLQ_TOPIC) == 0)
        restore_dlq();   /* a failed M6 case must not leave the stack without it */
    return rc;
}

/* H1: identity.audit partition P holds 5 events of tenant T, then an
 * undecodable record; all six are one batch (linger 500 ms), held while
 * Redis refuses writes (CLIENT PAUSE WRITE: every append times out after
 * redis_timeout).  The batch fails, P is rewound to the first event.  The
 * poison held behind it must not be dead-lettered now: that stored its
 * offset above the five and auto-commit committed it, so a kill -9 lost
 * them for good, and without a kill it was dead-lettered twice. */
static void test_held_poison_of_a_rewound_partition_is_not_committed(void **state) {
    (void)state;
    char tenant[64], key[128];
    itest_unique("h1", tenant, sizeof tenant);
    snprintf(key, sizeof key, "audit:{%s}", tenant);
    static const char *const slow[] = {"GOV_BATCH_LINGER=500ms", "GOV_REDIS_TIMEOUT=300ms",
                                       "GOV_RETRY_MAX=1s", NULL};
    restart_audit(slow);

    redis_cmd("CLIENT PAUSE %s WRITE", "60000");
    int32_t part = -1;
    int64_t first = -1;
    for (int i = 0; i < 5; i++) {
        json_t *e = itest_audit_event(tenant, "h1.test");
        int64_t off = -1;
        itest_produce_event_at(AUDIT_TOPIC, "AuditEvent", e, &part, &off);
        if (i == 0)
            first = off;
        json_decref(e);
    }
    static const char garbage[] = "\x00\x01junk";
    itest_produce_raw(AUDIT_TOPIC, tenant, garbage, sizeof garbage - 1);

    /* The bug shows as a commit past the first (unchained) event; fixed,
     * the batch keeps failing and being rewound: several retries. */
    int64_t committed_at_kill = commit_or_retry_then_kill(part, first, 6, 60000,
                                                          "Redis refused writes", "first event");
    redis_cmd("CLIENT UNPAUSE%s", "");
    assert_true(committed_at_kill <= first);

    start_audit(NULL);
    long long n = itest_wait_xlen(key, 5, 30000);
    if (n != 5)
        fail_msg("%lld of 5 events chained for %s after the restart", n, tenant);
    assert_true(itest_wait_caught_up(audit.port, 3, 30000));
    char out[512];
    assert_int_equal(govctl_verify(tenant, out, sizeof out), 0);
    assert_non_null(strstr(out, "entries=5"));
    /* caught up: the poison was handled, so its DLQ record is there */
    char src[32];
    int ndlq = dlq_records(tenant, src, sizeof src);
    if (ndlq != 1)
        fail_msg("%d records of %s's poison in %s from %s, not 1", ndlq, tenant, DLQ_TOPIC,
                 COMPONENT);
    assert_true(strtoll(src, NULL, 10) > first + 3);
    assert_int_equal(xlen(key), 5);
}

/* Each case undoes its fault even when it fails, so that the next one
 * starts from a working deployment (a case failing must not fail the
 * others). */
static int unpause_redis(void **state) {
    (void)state;
    char eb[256];
    redisReply *r = NULL;
    if (redis_pid > 0 && gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "CLIENT UNPAUSE") == GOV_OK)
        freeReplyObject(r);
    return 0;
}

static char h2_bad_key[160];

static int repair_decision_index(void **state) {
    (void)state;
    char eb[256];
    redisReply *r = NULL;
    if (h2_bad_key[0] &&
        gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "DEL %s", h2_bad_key) == GOV_OK)
        freeReplyObject(r);
    return 0;
}

static int dlq_back(void **state) {
    (void)state;
    if (topic_partitions(DLQ_TOPIC) == 0)
        restore_dlq();
    return 0;
}

static int partition_retried(void *opaque) {
    (void)opaque;
    return retried() >= 1;
}

/* H2: one batch holds 70 tenants' events on one partition, then tenant X's
 * PolicyDecision A and AuditEvent B.  X is past the 64 tenants whose heads
 * are predicted, so its items are appended one by one.  A fails (A's
 * decision record is a wrong-typed key: the script reads its owner before
 * it writes anything, and gets WRONGTYPE), B alone would succeed.  B must not be chained before A: once
 * the key is repaired the chain is A, B - Kafka's order, what a rebuild
 * from Kafka gives. */
static void test_late_tenant_of_a_wide_batch_keeps_kafka_order(void **state) {
    (void)state;
    enum { FILLERS = 70 };
    char x[64], key[128], dec_ids[160], did[37];
    itest_unique("h2x", x, sizeof x);
    snprintf(key, sizeof key, "audit:{%s}", x);

    /* stopped while the batch is produced: it waits in Kafka and is taken
     * whole (one fetch, linger 1 s) */
    assert_int_equal(itest_proc_stop(&audit), 0);
    json_t *events[FILLERS + 2];
    const char *types[FILLERS + 2];
    char last_filler[160] = "";
    for (int i = 0; i < FILLERS; i++) {
        char t[64];
        itest_unique("h2f", t, sizeof t);
        events[i] = itest_audit_event(t, "h2.filler");
        types[i] = "AuditEvent";
        snprintf(last_filler, sizeof last_filler, "audit:{%s}", t);
    }
    gov_uuid_v7(did);
    snprintf(dec_ids, sizeof dec_ids, "policy:decision:{%s}:%s", x, did);
    snprintf(h2_bad_key, sizeof h2_bad_key, "%s", dec_ids);
    redis_cmd("SET %s wrong-type", dec_ids);
    events[FILLERS] = itest_decision_event(x, did);
    types[FILLERS] = "PolicyDecision";
    events[FILLERS + 1] = itest_audit_event(x, "h2.second");
    types[FILLERS + 1] = "AuditEvent";
    char id_a[48], id_b[48];
    snprintf(id_a, sizeof id_a, "%s", json_string_value(json_object_get(events[FILLERS], "event_id")));
    snprintf(id_b, sizeof id_b, "%s",
             json_string_value(json_object_get(events[FILLERS + 1], "event_id")));
    produce_to_partition(AUDIT_TOPIC, 0, events, types, FILLERS + 2);
    for (int i = 0; i < FILLERS + 2; i++)
        json_decref(events[i]);

    static const char *const wide[] = {"GOV_BATCH_LINGER=1s", "GOV_RETRY_MAX=500ms", NULL};
    start_audit(wide);   /* its metrics start at 0 */
    assert_int_equal(itest_wait_xlen(last_filler, 1, 30000), 1);
    /* A failed (its partition was retried); B may not have passed it */
    if (itest_wait_for(partition_retried, NULL, 30000, 20) < 0)
        fail_msg("%s never retried %s's first event", COMPONENT, x);
    char ids[4][48];
    size_t n = chain_ids(key, ids, 4);
    if (n > 0 && strcmp(ids[0], id_b) == 0)
        fail_msg("%s chained %s's second event before its first (Kafka order: A, B)", COMPONENT, x);
    assert_int_equal(n, 0);

    redis_cmd("DEL %s", dec_ids);
    assert_int_equal(itest_wait_xlen(key, 2, 30000), 2);
    n = chain_ids(key, ids, 4);
    assert_int_equal(n, 2);
    if (strcmp(ids[0], id_a) != 0 || strcmp(ids[1], id_b) != 0)
        fail_msg("%s's chain is %s, %s; Kafka order is %s, %s", x, ids[0], ids[1], id_a, id_b);
    char out[512];
    assert_int_equal(govctl_verify(x, out, sizeof out), 0);
    assert_non_null(strstr(out, "entries=2"));
}

/* M6: a PolicyDecision whose decision_id is not a safe key part is
 * unmaterializable (the handler's poison), and the AuditEvent after it on
 * the same partition is fine.  The DLQ is gone (deleted; auto-create is
 * off), so dead-lettering fails: the partition must stop at the poison.
 * Storing the next event's offset committed past a poison that never
 * reached the DLQ, and a kill -9 lost it. */
static void test_poison_the_dlq_refuses_stops_its_partition(void **state) {
    (void)state;
    char tenant[64], key[128], did[37];
    itest_unique("m6", tenant, sizeof tenant);
    snprintf(key, sizeof key, "audit:{%s}", tenant);
    static const char *const quick[] = {"GOV_BATCH_LINGER=500ms", "GOV_DLQ_TIMEOUT=1s",
                                        "GOV_RETRY_MAX=500ms", NULL};
    restart_audit(quick);

    itest_delete_topic(DLQ_TOPIC);
    if (itest_wait_for(dlq_gone, NULL, 30000, 200) < 0)
        fail_msg("%s still listed after its deletion", DLQ_TOPIC);
    gov_uuid_v7(did);
    json_t *u = itest_decision_event(tenant, did);
    json_object_set_new(u, "decision_id", json_string("not a key part"));
    json_t *v = itest_audit_event(tenant, "m6.after");
    char id_v[48];
    snprintf(id_v, sizeof id_v, "%s", json_string_value(json_object_get(v, "event_id")));
    int32_t part = -1, part_v = -1;
    int64_t off_u = -1, off_v = -1;
    itest_produce_event_at(AUDIT_TOPIC, "PolicyDecision", u, &part, &off_u);
    itest_produce_event_at(AUDIT_TOPIC, "AuditEvent", v, &part_v, &off_v);
    json_decref(u);
    json_decref(v);
    assert_int_equal(part, part_v);

    /* The bug shows as a commit past the poison; fixed, the poison is
     * retried (each DLQ attempt waits out librdkafka's message timeout). */
    int64_t committed_at_kill = commit_or_retry_then_kill(part, off_u, 2, 80000,
                                                          "the DLQ was gone", "poison");
    restore_dlq();
    assert_true(committed_at_kill <= off_u);

    start_audit(NULL);
    assert_int_equal(itest_wait_xlen(key, 1, 30000), 1);
    assert_true(itest_wait_caught_up(audit.port, 3, 30000));
    /* caught up: the poison was handled, so its DLQ record is there */
    char src[32];
    int ndlq = dlq_records(tenant, src, sizeof src);
    if (ndlq != 1)
        fail_msg("%d records of %s's poison in %s from %s, not 1", ndlq, tenant, DLQ_TOPIC,
                 COMPONENT);
    assert_int_equal(strtoll(src, NULL, 10), off_u);
    char ids[2][48];
    assert_int_equal(chain_ids(key, ids, 2), 1);
    assert_string_equal(ids[0], id_v);
}

/* "ts":"2026-12-07T22:34:05.123456Z" of a log line, as seconds. */
static double line_time(const char *line) {
    const char *t = strstr(line, "\"ts\":\"");
    struct tm tm = {0};
    double frac = 0;
    if (t == NULL || sscanf(t + 6, "%4d-%2d-%2dT%2d:%2d:%2d%lf", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &frac) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + frac;
}

/* The retries the private gov-audit logged for partition 0's message at
 * `offset` since the log had `from` bytes: their times into at[] (at most
 * max); how many. */
typedef struct retry_log {
    size_t from;
    char offset[32];
    double at[64];
    int n;
    int want;
} retry_log_t;

static int retries_logged(void *opaque) {
    retry_log_t *r = opaque;
    size_t len = 0;
    char *log = itest_read_file(itest_log_path(LOGNAME), &len);
    r->n = 0;
    if (log == NULL || len <= r->from) {
        free(log);
        return 0;
    }
    char want[64];
    snprintf(want, sizeof want, "\"offset\":\"%s\"", r->offset);
    for (char *line = log + r->from; line && *line && r->n < 64;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        if (strstr(line, "write failed; message will be retried") &&
            strstr(line, "\"topic\":\"" AUDIT_TOPIC "\"") && strstr(line, want))
            r->at[r->n++] = line_time(line);
        line = nl ? nl + 1 : NULL;
    }
    free(log);
    return r->n >= r->want;
}

/* L4: Redis is down and a message waits on each of identity.audit's
 * partitions, so every batch stops all of them.  The processor must back
 * off once per batch (retry_max 3 s: a partition is retried within about
 * 3.6 s, the cap plus its jitter), not once per stopped partition in turn
 * (3 x 3 s between polls, growing with the partition count toward
 * max.poll.interval.ms).  SIGTERM still ends it at once. */
static void test_one_backoff_per_batch_with_redis_down(void **state) {
    (void)state;
    /* a 1 s linger: after the rewind every partition's message is taken
     * into the one batch even when the fetches answer apart (ASan build,
     * fetch_wait 100 ms per partition's fetch) - with 200 ms the ASan run
     * saw one partition per batch, three batches in turn, 9 s for each */
    static const char *const capped[] = {"GOV_RETRY_MAX=3s", "GOV_BATCH_LINGER=1s", NULL};
    restart_audit(capped);
    int nparts = itest_topic_partitions(AUDIT_TOPIC);
    assert_true(nparts >= 2 && nparts <= 16);
    int64_t ends[16];
    /* partition 0's next offset must differ from the others' (the log
     * names a retried message by its offset) */
    for (int round = 0; round < 50; round++) {
        itest_topic_ends(AUDIT_TOPIC, ends, 16);
        int clash = 0;
        for (int i = 1; i < nparts; i++)
            clash |= ends[i] == ends[0];
        if (!clash)
            break;
        char t[64];
        itest_unique("l4pad", t, sizeof t);
        json_t *e = itest_audit_event(t, "l4.pad");
        const char *type = "AuditEvent";
        produce_to_partition(AUDIT_TOPIC, 0, &e, &type, 1);
        json_decref(e);
    }
    size_t from = 0;
    free(itest_read_file(itest_log_path(LOGNAME), &from));

    itest_stop(redis_pid, SIGKILL, 5000);
    redis_pid = -1;
    retry_log_t r = {.from = from, .want = 9};
    for (int p = 0; p < nparts; p++) {
        char t[64];
        itest_unique("l4", t, sizeof t);
        json_t *e = itest_audit_event(t, "l4.test");
        const char *type = "AuditEvent";
        produce_to_partition(AUDIT_TOPIC, p, &e, &type, 1);
        json_decref(e);
    }
    snprintf(r.offset, sizeof r.offset, "%lld", (long long)ends[0]);

    /* 9 retries: the back-off doubles from 100 ms to the 3 s cap and stays */
    long waited = itest_wait_for(retries_logged, &r, 30000, 100);
    double widest = 0;
    for (int i = 1; i < r.n; i++)
        if (r.at[i] - r.at[i - 1] > widest)
            widest = r.at[i] - r.at[i - 1];
    print_message("partition 0 retried %d times, widest gap %.2f s (%d partitions)\n", r.n,
                  widest, nparts);
    if (waited < 0)
        fail_msg("%s retried partition 0 %d times in 30 s, not 9: widest gap %.2f s", COMPONENT,
                 r.n, widest);
    if (widest > 5.5)
        fail_msg("%s left partition 0 unpolled for %.2f s: more than one 3 s back-off per batch",
                 COMPONENT, widest);

    int64_t t0 = gov_mono_micros();
    assert_int_equal(itest_proc_stop(&audit), 0);
    double stop_s = (double)(gov_mono_micros() - t0) / 1e6;
    print_message("SIGTERM -> exit: %.2f s\n", stop_s);
    assert_true(stop_s < 5.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_held_poison_of_a_rewound_partition_is_not_committed,
                                  unpause_redis),
        cmocka_unit_test_teardown(test_late_tenant_of_a_wide_batch_keeps_kafka_order,
                                  repair_decision_index),
        cmocka_unit_test_teardown(test_poison_the_dlq_refuses_stops_its_partition, dlq_back),
        /* last: it kills the private Redis */
        cmocka_unit_test(test_one_backoff_per_batch_with_redis_down),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
