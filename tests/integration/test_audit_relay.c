/* test_audit_relay.c - a relay copy is chained once however late it comes
 * (REVIEW13 M1), against the real Kafka broker and a real Redis.
 *
 * The stack's gov-audit is the one relay: it copies a PolicyDecision from
 * policy.decisions into identity.audit and stamps the copy with its source
 * (x-gov-relay-source: "<partition>/<offset>") and its MAC under the
 * stack's relay key (x-gov-relay-mac).  A private gov-audit of its own
 * (component gov-audit-relay-itest, its own group, a private Redis, relay
 * off, the stack's relay key) chains identity.audit with an event id window of 5 s and a
 * decision TTL of 1 s, so "after the window" needs no long wait: the test
 * waits until the window has observably passed - the decision record gone,
 * the event_id trimmed from audit:{T}:ids - then puts the relay's copy on
 * identity.audit again, byte for byte with its headers, as a relay that
 * lost its committed offsets (a kill before the auto-commit, a new group)
 * would.  Before the source stamps, that copy was chained a second time as
 * a plain entry; now the tenant's relay mark says it is a replay.  Then
 * Redis is flushed and the private gov-audit rebuilds the chain from
 * identity.audit: the chain head it reaches is the live one.
 *
 * And a stamp is honoured only with the relay's MAC: a PolicyDecision
 * another producer stamps with a source offset beyond the relay's (and a
 * MAC it cannot compute) is chained by content and moves no mark, so the
 * relay's later copy from that partition is still chained.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_audit_chain.h"
#include "gov_avro.h"
#include "gov_state.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

#define COMPONENT "gov-audit-relay-itest"

static pid_t redis_pid = -1;
static int redis_port;
static itest_proc_t audit;
static char env_port[48], env_key[1100];

static const char *const audit_env[] = {env_port, env_key, ITEST_NO_RELAY,
                                        "GOV_EVENT_ID_WINDOW=5s", "GOV_DECISION_TTL=1s", NULL};

static int setup(void **state) {
    (void)state;
    redis_pid = itest_private_redis("audit-relay", &redis_port);
    snprintf(env_port, sizeof env_port, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_port); /* itest_redis() reads the private Redis */
    /* the stack's relay key: this deployment checks the stack relay's stamps */
    const char *key = itest_env("GOV_RELAY_KEY_FILE", "");
    if (key[0] == 0) {
        fprintf(stderr, "the stack has no relay key (GOV_RELAY_KEY_FILE in var/stack.env): "
                        "restart it with this deploy/stack.sh\n");
        return -1;
    }
    snprintf(env_key, sizeof env_key, "GOV_RELAY_KEY_FILE=%s", key);
    itest_proc_start(&audit, "gov-audit", COMPONENT, audit_env, "itest-gov-audit-relay.log");
    itest_must_catch_up(&audit, 3);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_private_stop(&audit, redis_pid);
    return rc;
}

/* The relay's copy of one decision on identity.audit: its bytes, key and
 * headers, as found. */
typedef struct relay_copy {
    const char *decision_id;   /* in */
    int found;
    int32_t partition;
    char key[128];
    unsigned char *value;
    size_t len;
    char stamp[64], mac[80], from[256], component[128];
} relay_copy_t;

static int match_copy(void *opaque, const gov_kafka_msg_t *m) {
    relay_copy_t *c = opaque;
    char from[256];
    itest_msg_header(m, "x-gov-relayed-from", from, sizeof from);
    if (c->found || from[0] == 0)
        return 0;
    json_t *ev = NULL;
    const char *type = NULL;
    char eb[256];
    if (gov_avro_decode(itest_avro(), m->value, m->len, &ev, &type, eb, sizeof eb) != GOV_OK)
        return 0;
    const char *did = json_string_value(json_object_get(ev, "decision_id"));
    if (did && strcmp(did, c->decision_id) == 0) {
        c->found = 1;
        c->partition = m->partition;
        snprintf(c->key, sizeof c->key, "%.*s", (int)m->key_len, (const char *)m->key);
        c->value = malloc(m->len);
        memcpy(c->value, m->value, m->len);
        c->len = m->len;
        snprintf(c->from, sizeof c->from, "%s", from);
        itest_msg_header(m, GOV_RELAY_SOURCE_HEADER, c->stamp, sizeof c->stamp);
        itest_msg_header(m, GOV_RELAY_MAC_HEADER, c->mac, sizeof c->mac);
        itest_msg_header(m, "x-gov-component", c->component, sizeof c->component);
    }
    json_decref(ev);
    return c->found;
}

typedef struct copy_scan {
    relay_copy_t *copy;
    int64_t from[64];
} copy_scan_t;

/* identity.audit from where it ended before the decision, to its end now */
static int copy_found(void *opaque) {
    copy_scan_t *s = opaque;
    (void)itest_scan_topic("identity.audit", s->from, match_copy, s->copy, 10000);
    return s->copy->found;
}

/* EXISTS key, or HEXISTS key field when field is not NULL: 1 or 0. */
static long long exists(const char *key, const char *field) {
    const char *argv[] = {field ? "HEXISTS" : "EXISTS", key, field};
    redisReply *r = itest_redis_cmd(itest_redis(), field ? 3 : 2, argv, NULL);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* The window has passed for event_id `old` of tenant T: its decision record
 * expired (decision_ttl 1 s) and the id is trimmed from audit:{T}:ids.  The
 * trim runs on an append of the tenant, so while the id is there, one more
 * of the tenant's AuditEvents is produced once the one before is chained. */
typedef struct window_wait {
    const char *tenant, *old_event_id, *decision_key;
    char ids_key[128];
    char filler[48];   /* the last filler's event_id, "" before the first */
    int fillers;
} window_wait_t;

static int window_passed(void *opaque) {
    window_wait_t *w = opaque;
    if (exists(w->decision_key, NULL) == 0 && exists(w->ids_key, w->old_event_id) == 0)
        return 1;
    if (w->filler[0] == 0 || exists(w->ids_key, w->filler) == 1) {
        json_t *e = itest_audit_event(w->tenant, "token.issued");
        snprintf(w->filler, sizeof w->filler, "%s",
                 json_string_value(json_object_get(e, "event_id")));
        itest_produce_event("identity.audit", "AuditEvent", e);
        json_decref(e);
        w->fillers++;
    }
    return 0;
}

/* Entries of the chain `key` whose payload names decision_id; *hash gets
 * the hash of the entry at seq (when there is one). */
static int decision_entries(const char *key, const char *decision_id, long long seq, char *hash,
                            size_t hash_size) {
    char eb[256], needle[80];
    redisReply *r = NULL;
    if (gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XRANGE %s - +", key) != GOV_OK)
        fail_msg("XRANGE: %s", eb);
    snprintf(needle, sizeof needle, "\"decision_id\":\"%s\"", decision_id);
    int n = 0;
    hash[0] = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        const char *h = NULL;
        long long s = -1;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            const char *name = f->element[k]->str, *v = f->element[k + 1]->str;
            if (strcmp(name, "payload") == 0 && strstr(v, needle))
                n++;
            else if (strcmp(name, "seq") == 0)
                s = strtoll(v, NULL, 10);
            else if (strcmp(name, "hash") == 0)
                h = v;
        }
        if (s == seq && h)
            snprintf(hash, hash_size, "%s", h);
    }
    freeReplyObject(r);
    return n;
}

static void head_of(const char *tenant, char *hash, size_t size, long long *seq) {
    redisReply *r = NULL;
    char eb[256];
    if (gov_state_audit_head_read(itest_redis(), tenant, &r, eb, sizeof eb) != GOV_OK)
        fail_msg("head of %s: %s", tenant, eb);
    assert_int_equal(r->elements, 2);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
    snprintf(hash, size, "%s", r->element[0]->str);
    *seq = strtoll(r->element[1]->str, NULL, 10);
    freeReplyObject(r);
}

static void test_late_relay_copy_is_chained_once_and_rebuilds_the_same(void **state) {
    (void)state;
    char tenant[64], did[37], stream[128], dec_key[200], want_stamp[64], want_from[256];
    itest_unique("rs", tenant, sizeof tenant);
    gov_uuid_v7(did);
    snprintf(stream, sizeof stream, "audit:{%s}", tenant);
    snprintf(dec_key, sizeof dec_key, "policy:decision:{%s}:%s", tenant, did);

    /* 1. the decision on policy.decisions; the stack's relay copies it */
    copy_scan_t scan = {0};
    relay_copy_t copy = {.decision_id = did};
    scan.copy = &copy;
    itest_topic_ends("identity.audit", scan.from, 64);
    json_t *d = itest_decision_event(tenant, did);
    char event_id[48];
    snprintf(event_id, sizeof event_id, "%s", json_string_value(json_object_get(d, "event_id")));
    int32_t src_part = -1;
    int64_t src_off = -1;
    itest_produce_event_at("policy.decisions", "PolicyDecision", d, &src_part, &src_off);
    json_decref(d);
    if (itest_wait_for(copy_found, &scan, 30000, 100) < 0)
        fail_msg("no relay copy of decision %s on identity.audit", did);
    /* the copy names its source: partition, offset and the record's Kafka
     * time on policy.decisions */
    snprintf(want_stamp, sizeof want_stamp, "%" PRId32 "/%" PRId64 "/", src_part, src_off);
    snprintf(want_from, sizeof want_from, "policy.decisions/%" PRId32 "/%" PRId64, src_part,
             src_off);
    if (strncmp(copy.stamp, want_stamp, strlen(want_stamp)) != 0 ||
        strtoll(copy.stamp + strlen(want_stamp), NULL, 10) <= 0)
        fail_msg("relay stamp %s is not %s<time>", copy.stamp, want_stamp);
    assert_string_equal(copy.from, want_from);
    assert_int_equal(strlen(copy.mac), 64);

    /* 2. this deployment chains it once */
    assert_int_equal(itest_wait_xlen(stream, 1, 30000), 1);
    char hash[80];
    assert_int_equal(decision_entries(stream, did, 0, hash, sizeof hash), 1);

    /* 3. the window passes: record expired, event_id trimmed */
    window_wait_t w = {.tenant = tenant, .old_event_id = event_id, .decision_key = dec_key};
    snprintf(w.ids_key, sizeof w.ids_key, "audit:{%s}:ids", tenant);
    if (itest_wait_for(window_passed, &w, 40000, 200) < 0)
        fail_msg("the event id window of %s did not pass for %s (%d fillers)", COMPONENT,
                 event_id, w.fillers);
    /* the last filler chained, so the head is settled */
    assert_int_equal(itest_wait_xlen(stream, 1 + w.fillers, 30000), 1 + w.fillers);
    char live_hash[80];
    long long live_seq = 0;
    head_of(tenant, live_hash, sizeof live_hash, &live_seq);
    assert_int_equal(live_seq, 1 + w.fillers);

    /* 4. the same copy again, as a relay that lost its offsets sends it */
    gov_kafka_header_t h[] = {{"x-gov-relayed-from", copy.from, strlen(copy.from)},
                              {"x-gov-component", copy.component, strlen(copy.component)},
                              {GOV_RELAY_SOURCE_HEADER, copy.stamp, strlen(copy.stamp)},
                              {GOV_RELAY_MAC_HEADER, copy.mac, strlen(copy.mac)}};
    int32_t again_part = -1;
    int64_t again_off = -1;
    char eb[256];
    assert_int_equal(gov_kafka_produce_sync(itest_producer(), "identity.audit", copy.key,
                                            strlen(copy.key), copy.value, copy.len, h, 4, 15000,
                                            &again_part, &again_off, eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(again_part, copy.partition);
    if (!itest_wait_offset(itest_redis(), audit.group, "identity.audit", again_part, again_off,
                           30000))
        fail_msg("%s did not reach identity.audit/%d/%" PRId64, COMPONENT, again_part, again_off);
    /* a replay: nothing chained, the head where it was */
    char after_hash[80];
    long long after_seq = 0;
    head_of(tenant, after_hash, sizeof after_hash, &after_seq);
    assert_int_equal(decision_entries(stream, did, 0, hash, sizeof hash), 1);
    assert_int_equal(after_seq, live_seq);
    assert_string_equal(after_hash, live_hash);

    /* 5. Redis lost: the rebuild from identity.audit reaches the same head */
    double rebuilds = itest_proc_metric(&audit, "processor_rebuilds_total", NULL);
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "FLUSHALL"), GOV_OK);
    freeReplyObject(r);
    json_t *next = itest_audit_event(tenant, "token.issued");   /* what notices the loss */
    itest_produce_event("identity.audit", "AuditEvent", next);
    json_decref(next);
    /* only a rebuild gives the stream its old length again: without one the
     * next event would start a new chain at seq 1 */
    assert_int_equal(itest_wait_xlen(stream, live_seq + 1, ITEST_HISTORY_MS), live_seq + 1);
    assert_true(itest_proc_metric(&audit, "processor_rebuilds_total", NULL) >=
                (rebuilds < 0 ? 0 : rebuilds) + 1);
    char rebuilt_hash[80];
    assert_int_equal(decision_entries(stream, did, live_seq, rebuilt_hash, sizeof rebuilt_hash),
                     1);
    assert_string_equal(rebuilt_hash, live_hash);
    head_of(tenant, after_hash, sizeof after_hash, &after_seq);
    assert_int_equal(after_seq, live_seq + 1);
    free(copy.value);
}

/* A forged decision for tenant T stamped with the highest source offset
 * of every partition and a MAC of zeros: chained by content (a new event),
 * no mark moved - the relay's copy of T's next decision is chained too. */
static void test_forged_stamp_cannot_hide_a_later_relay_copy(void **state) {
    (void)state;
    char tenant[64], forged_id[37], did[37], stream[128], stamp[64];
    itest_unique("fs", tenant, sizeof tenant);
    snprintf(stream, sizeof stream, "audit:{%s}", tenant);
    int nparts = itest_topic_partitions("policy.decisions");
    gov_uuid_v7(forged_id);
    json_t *f = itest_decision_event(tenant, forged_id);
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[256];
    assert_int_equal(gov_avro_encode(itest_avro(), "PolicyDecision", f, &buf, &len, eb, sizeof eb),
                     GOV_OK);
    json_decref(f);
    static const char zeros[] =
        "0000000000000000000000000000000000000000000000000000000000000000";
    for (int p = 0; p < nparts; p++) {
        snprintf(stamp, sizeof stamp, "%d/%lld/%lld", p, GOV_RELAY_OFFSET_MAX,
                 GOV_RELAY_OFFSET_MAX);
        gov_kafka_header_t h[] = {{GOV_RELAY_SOURCE_HEADER, stamp, strlen(stamp)},
                                  {GOV_RELAY_MAC_HEADER, zeros, 64}};
        assert_int_equal(gov_kafka_produce_sync(itest_producer(), "identity.audit", tenant,
                                                strlen(tenant), buf, len, h, 2, 15000, NULL, NULL,
                                                eb, sizeof eb),
                         GOV_OK);
    }
    gov_free(buf);
    /* the first is chained, the others are its replays */
    assert_int_equal(itest_wait_xlen(stream, 1, 30000), 1);

    gov_uuid_v7(did);
    json_t *d = itest_decision_event(tenant, did);
    itest_produce_event("policy.decisions", "PolicyDecision", d);
    json_decref(d);
    assert_int_equal(itest_wait_xlen(stream, 2, 30000), 2);
    char hash[80];
    assert_int_equal(decision_entries(stream, did, 0, hash, sizeof hash), 1);
    assert_int_equal(decision_entries(stream, forged_id, 0, hash, sizeof hash), 1);
}

/* One batch of gov_state_audit_append_batch: events[i] (a PolicyDecision
 * when it has a decision_id, else an AuditEvent), stamped
 * 0/<stamp[i]>/<at[i]> when stamp[i] >= 0; each result into got[i]. */
static void state_batch(gov_state_audit_t *w, json_t **events, const long long *stamp,
                        const long long *at, size_t n, gov_err_t *got) {
    gov_state_audit_item_t items[4];
    assert_true(n <= 4);
    memset(items, 0, sizeof items);
    for (size_t i = 0; i < n; i++) {
        items[i].event = events[i];
        items[i].type =
            json_object_get(events[i], "decision_id") ? "PolicyDecision" : "AuditEvent";
        items[i].source = "identity.audit/0/0";
        items[i].pos = (gov_state_pos_t){"itest-relay-state", "identity.audit", 0, 1000, NULL};
        items[i].relay_stamped = stamp[i] >= 0;
        items[i].relay_offset = stamp[i] >= 0 ? stamp[i] : 0;
        items[i].relay_time_ms = stamp[i] >= 0 ? at[i] : 0;
    }
    assert_int_equal(gov_state_audit_append_batch(w, items, n), GOV_OK);
    for (size_t i = 0; i < n; i++)
        got[i] = items[i].result;
    for (size_t i = 0; i < n; i++)
        if (got[i] != GOV_OK && got[i] != GOV_ERR_DUPLICATE)
            print_message("item %zu: %s: %s\n", i, gov_err_str(got[i]), items[i].errbuf);
}

/* The marks through both scripts, at the state layer: a batch's group
 * script (predicted heads) and the one-by-one script (a stale head: a
 * second writer appended first).  A stamp at or below the tenant's mark is
 * a replay whatever the content; above it, the event is judged by content
 * and raises the mark; an AuditEvent's stamp is ignored. */
static void test_relay_marks_in_both_append_scripts(void **state) {
    (void)state;
    char tenant[64], stream[128], marks[128], did[37];
    itest_unique("rm", tenant, sizeof tenant);
    snprintf(stream, sizeof stream, "audit:{%s}", tenant);
    snprintf(marks, sizeof marks, "audit:{%s}:relay", tenant);
    gov_redis_t *r = itest_redis();
    gov_state_audit_t *w1 = gov_state_audit_new(r, 3600), *w2 = gov_state_audit_new(r, 3600);
    assert_non_null(w1);
    assert_non_null(w2);
    json_t *ev[4];
    gov_err_t got[4];
    /* w1: a decision stamped 0/10 through the group script */
    gov_uuid_v7(did);
    ev[0] = itest_decision_event(tenant, did);
    state_batch(w1, ev, (const long long[]){10}, (const long long[]){1000}, 1, got);
    assert_int_equal(got[0], GOV_OK);
    json_decref(ev[0]);
    const char *hget[] = {"HGET", marks, "0"};
    redisReply *m = itest_redis_cmd(r, 3, hget, NULL);
    assert_string_equal(m->str, "10");
    freeReplyObject(m);
    /* w2's cached head is genesis: its group stops at the first item and
     * everything goes one by one through the single-event script */
    for (int i = 0; i < 4; i++) {
        char d[37];
        gov_uuid_v7(d);
        ev[i] = i == 3 ? itest_audit_event(tenant, "token.issued") : itest_decision_event(tenant, d);
    }
    state_batch(w2, ev, (const long long[]){-1, 10, 11, 5},
                (const long long[]){0, 1000, 1001, 900}, 4, got);
    assert_int_equal(got[0], GOV_OK);            /* unstamped, new */
    assert_int_equal(got[1], GOV_ERR_DUPLICATE); /* at the mark, other content */
    assert_int_equal(got[2], GOV_OK);            /* above: new, the mark moves */
    assert_int_equal(got[3], GOV_OK);            /* an AuditEvent: stamp ignored */
    for (int i = 0; i < 4; i++)
        json_decref(ev[i]);
    m = itest_redis_cmd(r, 3, hget, NULL);
    assert_string_equal(m->str, "11");
    freeReplyObject(m);
    /* and the group script of w1 (now stale too) meets the moved mark */
    gov_uuid_v7(did);
    ev[0] = itest_decision_event(tenant, did);
    state_batch(w1, ev, (const long long[]){11}, (const long long[]){1001}, 1, got);
    assert_int_equal(got[0], GOV_ERR_DUPLICATE);
    json_decref(ev[0]);
    assert_int_equal(itest_wait_xlen(stream, 4, 1000), 4);
    /* REVIEW14 H1: policy.decisions recreated (or truncated): a new record
     * comes at an offset the mark has passed, with a later time - judged,
     * chained, and the new incarnation takes the mark over; its own replay
     * is one; a record after it whose time is older than the latest seen
     * (another edge's clock) is new by its offset */
    for (int i = 0; i < 3; i++) {
        char d[37];
        gov_uuid_v7(d);
        ev[i] = itest_decision_event(tenant, d);
    }
    state_batch(w2, ev, (const long long[]){5}, (const long long[]){2000}, 1, got);
    assert_int_equal(got[0], GOV_OK);
    m = itest_redis_cmd(r, 3, hget, NULL);
    assert_string_equal(m->str, "5");
    freeReplyObject(m);
    state_batch(w2, ev + 1, (const long long[]){5, 6}, (const long long[]){2000, 1500}, 2, got);
    assert_int_equal(got[0], GOV_ERR_DUPLICATE);
    assert_int_equal(got[1], GOV_OK);
    for (int i = 0; i < 3; i++)
        json_decref(ev[i]);
    assert_int_equal(itest_wait_xlen(stream, 6, 1000), 6);
    gov_state_audit_free(w1);
    gov_state_audit_free(w2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_marks_in_both_append_scripts),
        cmocka_unit_test(test_late_relay_copy_is_chained_once_and_rebuilds_the_same),
        cmocka_unit_test(test_forged_stamp_cannot_hide_a_later_relay_copy),
    };
    return cmocka_run_group_tests_name("audit_relay", tests, setup, teardown);
}
