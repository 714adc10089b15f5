/* gov-audit - materializes the audit trail and the decision log.
 *
 * Consumes policy.decisions and copies each PolicyDecision unchanged into
 * identity.audit (the relay); consumes identity.audit (AuditEvent and the
 * relayed PolicyDecision) and appends every event to its tenant's
 * hash-chained stream audit:{T}.  Why the relay: a chain fed by two topics
 * takes whatever interleaving the consumer saw, which a replay cannot
 * reproduce; fed by one partition per tenant, the chain is a function of
 * that partition, so Redis can be rebuilt from Kafka with the same entries
 * and the same head (docs/contracts.md, "Rebuilding Redis").  The relay's
 * progress is its committed offset only (kafka_only): a rebuild replays
 * identity.audit, never the relay.  A
 * decision is also materialized as policy:decision:{T}:<decision_id> with a
 * TTL, so a downstream service can check an X-Policy-Decision-Id.
 *
 * Dedup compares content: an event whose event_id is known with the same
 * content is a replay (silent); the same id with other content - or a
 * PolicyDecision naming a known decision_id under another event_id - is a
 * conflict.  Nothing is lost: the twin is chained as its own entry, counted
 * in audit_event_conflicts_total{tenant} and logged at error; a decision
 * record is never overwritten but is marked (conflicting_event_id), and
 * GET /v1/decisions shows the mark.  Whoever produces first therefore
 * cannot keep a later event out of the chain.  Offsets are stored only after
 * the Redis script that wrote the entry, the dedup index and the offset key
 * has succeeded.  Poison messages go to <topic>.dlq (gov_processor).
 *
 * The relay's new consumer group starts at the earliest retained decision:
 * a copy of what an earlier deployment relayed is byte-identical, a replay.
 * So one deployment per Kafka cluster relays (relay=true, the default);
 * any other on the same topics sets relay=false and only chains: each
 * relay would otherwise add a copy of every retained decision to
 * identity.audit, which every gov-audit then reads.
 *
 * Exactly once without a clock: each copy is stamped with its source
 * (x-gov-relay-source: "<partition>/<offset>" of policy.decisions) and,
 * with relay_key_file, an HMAC of stamp and bytes (x-gov-relay-mac); the
 * chain keeps per tenant the highest source offset it handled per source
 * partition, and a copy whose stamp verifies and is at or below it is a
 * replay whatever its age (gov_state_audit.c, docs/contracts.md "Exactly
 * once in the chain").  A copy without a verified stamp - older data,
 * another producer, no key configured - is judged by content within
 * event_id_window, as before: a stamp can only ever make a copy a replay,
 * so one nobody can check must not count.
 *
 * Reads top to bottom: config -> connect -> loop -> shut down.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "gov_alloc.h"
#include "gov_audit_chain.h"
#include "gov_file.h"
#include "gov_log.h"
#include "gov_processor.h"
#include "gov_state.h"
#include "gov_time.h"

#define AUDIT_TOPIC "identity.audit"
#define DECISIONS_TOPIC "policy.decisions"

static long fetch_wait_ms;
static long fetch_min_bytes;
static int relay_on;

static const gov_processor_spec_t spec = {
    .name = "gov-audit",
    .default_admin_port = 8704,
    .topics = {{AUDIT_TOPIC, GOV_PROCESSOR_SCHEMAS("AuditEvent", "PolicyDecision"), 1},
               {DECISIONS_TOPIC, GOV_PROCESSOR_SCHEMAS("PolicyDecision"), 1, &relay_on}},
    .kafka_only = (const char *const[]){DECISIONS_TOPIC, NULL},
    .fetch_wait_max_ms = &fetch_wait_ms,
    .fetch_min_bytes = &fetch_min_bytes,
};

static char *relay_key_file;
/* the relay key's bytes (relay_key_file, trailing whitespace cut); NULL:
 * stamps are sent without a MAC and not honoured */
static char *relay_key;
static size_t relay_key_len;
static long decision_ttl_ms;
static long event_id_window_ms;
static long batch_max;
static long batch_max_bytes;
static long batch_linger_ms;

static const gov_config_entry_t config[] = {
    GOV_CFG_BOOL("relay", "true", "copy policy.decisions into identity.audit (the relay). One deployment per Kafka cluster relays; every other one on the same topics (a second Redis view, a standby) sets false and chains the copies it finds in identity.audit. A relay whose consumer group is new copies all of the retained policy.decisions again: a replay downstream, but one extra copy of every decision in identity.audit", &relay_on),
    GOV_CFG_STRING("relay_key_file", NULL, "file holding the relay key (at least 32 bytes; every gov-audit deployment on the same topics uses the same one): the relay authenticates its source stamps with it and the chain honours only stamps it verifies, so a relayed decision is chained once however late a copy comes. Unset: copies are deduplicated by content within event_id_window only", &relay_key_file),
    GOV_CFG_DURATION("decision_ttl", "1h", 1000, 31L * 24 * 3600 * 1000, "how long a materialized decision (policy:decision:{T}:<id>) is kept for lookups by id (GET /v1/decisions; the chain keeps every decision regardless)", &decision_ttl_ms),
    GOV_CFG_DURATION("event_id_window", "168h", 1000, 31L * 24 * 3600 * 1000, "how long an event_id is kept in audit:{T}:ids to recognise a replay or a conflicting twin (a relay copy whose stamp verifies is recognised by its source offset at any age; an unstamped copy or an edge spool's resend only within this window, so keep it at least policy.decisions' retention + one segment)", &event_id_window_ms),
    GOV_CFG_INT("batch_max", "500", 1, 10000, "most messages gov-audit takes into one batch (one Redis round trip for the chain, one broker acknowledgement for the relay)", &batch_max),
    GOV_CFG_INT("batch_max_bytes", "4194304", 1024, 268435456, "most bytes of Kafka values in one batch (the message that crosses it is the last)", &batch_max_bytes),
    GOV_CFG_DURATION("fetch_wait", "100ms", 1, 5000, "fetch.wait.max.ms of gov-audit's consumer: how long the broker holds a fetch for fetch_min_bytes to gather (the broker's CPU is spent per fetch; this adds at most this much to the decision log's lag)", &fetch_wait_ms),
    GOV_CFG_INT("fetch_min_bytes", "65536", 1, 104857600, "fetch.min.bytes of gov-audit's consumer: the broker answers a fetch once this much is there, or after fetch_wait", &fetch_min_bytes),
    GOV_CFG_DURATION("batch_linger", "10ms", 0, 1000, "how long a batch waits for more messages after its first (what is already fetched is taken without waiting)", &batch_linger_ms),
};

typedef struct audit_ctx {
    gov_state_audit_t *store;
    gov_metric_t *m_conflicts;
    uint64_t rebuilds;   /* gov_processor_rebuilds when the cache was last valid */
    gov_state_audit_item_t *items;   /* batch_max entries */
    size_t *item_msg;                /* items[k] is msgs[item_msg[k]] */
} audit_ctx_t;

/* The outcome of one batch's relay group, from the producer's thread. */
typedef struct relay_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    gov_err_t err;
    char detail[256];
} relay_wait_t;

static void relay_done(void *arg, gov_err_t err, const char *detail) {
    relay_wait_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->err = err;
    snprintf(w->detail, sizeof w->detail, "%s", detail ? detail : "");
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Copies the batch's PolicyDecisions, bytes and key unchanged, into
 * identity.audit and waits for all of their acknowledgements (one group):
 * the tenant's partition of identity.audit is then the one order of its
 * chain, so replaying it rebuilds the same chain.  The copies keep the
 * batch's order (one producer, idempotent: a partition's messages are
 * written in the order queued).  If any copy fails, every decision of the
 * batch is retried: a copy made twice is a replay there (the first one
 * decides its place).  Cost: one acknowledgement wait per batch. */
static void relay_batch(gov_processor_t *p, gov_processor_msg_t *msgs, size_t n,
                        gov_err_t *results, char *eb, size_t ebsize) {
    const char *component = gov_processor_name(p);
    relay_wait_t w = {.err = GOV_OK};
    gov_kafka_group_t *g = NULL;
    size_t nrelay = 0;
    for (size_t i = 0; i < n; i++)
        nrelay += strcmp(msgs[i].kafka->topic, DECISIONS_TOPIC) == 0;
    if (nrelay == 0)
        return;
    gov_err_t err = GOV_OK;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    if ((err = gov_kafka_group_new(gov_processor_producer(p), relay_done, &w, &g)) != GOV_OK) {
        snprintf(eb, ebsize, "relay: %s", gov_err_str(err));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const gov_processor_msg_t *m = &msgs[i];
        const gov_kafka_msg_t *km = m->kafka;
        if (strcmp(km->topic, DECISIONS_TOPIC) != 0)
            continue;
        /* x-gov-component names the deployment that copied it (an operator,
         * or a test, tells two relays on the same topics apart);
         * x-gov-relay-source is what the chain's dedup reads */
        char stamp[GOV_RELAY_SOURCE_MAX], mac[GOV_SHA256_HEXLEN + 1] = "";
        /* the record's Kafka time tells this offset from the same offset
         * of a recreated or truncated topic (gov_relay_source_parse) */
        snprintf(stamp, sizeof stamp, "%" PRId32 "/%" PRId64 "/%" PRId64, km->partition,
                 km->offset, km->timestamp_ms > 0 ? km->timestamp_ms : 0);
        if (relay_key && gov_relay_mac(relay_key, relay_key_len, stamp, strlen(stamp), km->value,
                                       km->len, mac) != GOV_OK) {
            err = GOV_ERR_CRYPTO;   /* retried with the batch */
            snprintf(eb, ebsize, "relay: cannot compute the stamp's MAC");
            break;
        }
        gov_kafka_header_t h[] = {{"x-gov-relayed-from", m->source, strlen(m->source)},
                                  {"x-gov-component", component, strlen(component)},
                                  {GOV_RELAY_SOURCE_HEADER, stamp, strlen(stamp)},
                                  {GOV_RELAY_MAC_HEADER, mac, strlen(mac)}};
        if (gov_kafka_group_produce(g, AUDIT_TOPIC, km->key, km->key_len, km->value, km->len, h,
                                    relay_key ? 4 : 3) != GOV_OK)
            break;   /* the group failed: its outcome says why */
    }
    gov_kafka_group_seal(g);   /* relay_done runs exactly once, now or later */
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (err == GOV_OK) {
        err = w.err;
        if (err != GOV_OK)
            snprintf(eb, ebsize, "relay: %s", w.detail);
    }
out:
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    for (size_t i = 0; i < n; i++)
        if (strcmp(msgs[i].kafka->topic, DECISIONS_TOPIC) == 0)
            results[i] = err;
}

/* The relay stamp of a PolicyDecision read from identity.audit, into it,
 * when it is well formed and its MAC verifies with the relay key.  A
 * stamp is only ever a reason to drop a copy, so one that cannot be
 * trusted is ignored and the copy judged by content (nothing lost): none
 * (older data), no key here, or no MAC (a relay without a key) silently; a
 * malformed stamp or a wrong MAC (another key, a forgery) with a warning. */
static void read_stamp(const gov_processor_msg_t *m, gov_state_audit_item_t *it) {
    char v[GOV_RELAY_SOURCE_MAX + 1], mac[GOV_SHA256_HEXLEN + 2];
    const char *why = NULL;
    if (relay_key == NULL || strcmp(m->type, "PolicyDecision") != 0 ||
        !gov_kafka_msg_header(m->kafka, GOV_RELAY_SOURCE_HEADER, v, sizeof v) ||
        !gov_kafka_msg_header(m->kafka, GOV_RELAY_MAC_HEADER, mac, sizeof mac))
        return;
    if (gov_relay_source_parse(v, strlen(v), &it->relay_partition, &it->relay_offset,
                               &it->relay_time_ms) != GOV_OK)
        why = "relay stamp is not <partition>/<offset>/<time>; judged by content";
    else if (!gov_relay_mac_ok(relay_key, relay_key_len, v, strlen(v), m->kafka->value,
                               m->kafka->len, mac, strlen(mac)))
        why = "relay stamp's MAC does not verify with relay_key_file; judged by content";
    if (why == NULL) {
        it->relay_stamped = 1;
        return;
    }
    /* at most one line a minute (REVIEW14 L2: any producer on identity.audit
     * can send bad stamps), saying how many it stands for */
    static int64_t last_us;
    static long untold;
    int64_t now = gov_mono_micros();
    if (last_us != 0 && now - last_us < 60 * 1000000LL) {
        untold++;
        return;
    }
    char more[24];
    snprintf(more, sizeof more, "%ld", untold);
    gov_log(GOV_LOG_WARN, why, "header", GOV_RELAY_SOURCE_HEADER, "stamp", v, "source", m->source,
            "unlogged_since_last_line", more, (const char *)NULL);
    last_us = now;
    untold = 0;
}

/* Reads relay_key_file (when set) into relay_key.  GOV_OK, or an error
 * after logging why (a key file that is set but unusable stops the start:
 * running without would silently lose the guarantee). */
static gov_err_t load_relay_key(void) {
    if (relay_key_file == NULL || relay_key_file[0] == 0) {
        gov_log(GOV_LOG_WARN, "relay_key_file not set: relay copies are deduplicated by content within event_id_window only", (const char *)NULL);
        return GOV_OK;
    }
    char eb[256];
    gov_err_t err = gov_file_read(relay_key_file, 4096, GOV_FILE_SECRET, &relay_key,
                                  &relay_key_len, eb, sizeof eb);
    if (err != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "cannot read relay_key_file", "error", eb, (const char *)NULL);
        return err;
    }
    while (relay_key_len > 0 && (relay_key[relay_key_len - 1] == '\n' ||
                                 relay_key[relay_key_len - 1] == '\r' ||
                                 relay_key[relay_key_len - 1] == ' '))
        relay_key[--relay_key_len] = 0;
    if (relay_key_len < GOV_RELAY_KEY_MIN) {
        gov_log(GOV_LOG_ERROR, "relay_key_file holds fewer than 32 bytes", "path", relay_key_file,
                (const char *)NULL);
        return GOV_ERR_INVALID_ARG;
    }
    return GOV_OK;
}

/* Someone produced two different events under one id: both are in the
 * chain now; which one is genuine is for an operator to judge. */
static void note_twin(audit_ctx_t *c, const gov_processor_msg_t *m, gov_state_audit_twin_t twin) {
    const char *tenant = json_string_value(json_object_get(m->event, "tenant"));
    const char *decision_id = json_string_value(json_object_get(m->event, "decision_id"));
    gov_log(GOV_LOG_ERROR,
            twin == GOV_STATE_AUDIT_TWIN_EVENT_ID
                ? "event_id already chained with other content; chained as a conflicting twin"
                : "decision_id already recorded by another event; chained as a conflicting twin, the record is marked, not overwritten",
            "tenant", tenant, "type", m->type, "event_id",
            json_string_value(json_object_get(m->event, "event_id")), "decision_id",
            decision_id ? decision_id : "", "source", m->source, (const char *)NULL);
    gov_metric_inc(c->m_conflicts, (const char *[]){tenant}, 1);
}

/* One batch: the decisions are relayed (one acknowledgement wait), the
 * chain's events appended (one pipelined round trip; the hash chain, dedup
 * and conflict rules per event, gov_state_audit_append_batch).  An event
 * the script cannot store as it is, is dead-lettered as unmaterializable. */
static void append_batch(void *ctx, gov_processor_t *p, gov_processor_msg_t *msgs, size_t n,
                         gov_err_t *results, gov_reason_t *reasons, char *eb, size_t ebsize) {
    audit_ctx_t *c = ctx;
    relay_batch(p, msgs, n, results, eb, ebsize);
    if (gov_processor_rebuilds(p) != c->rebuilds) {
        /* Redis lost writes: the cached heads are ahead of it */
        gov_state_audit_forget(c->store);
        c->rebuilds = gov_processor_rebuilds(p);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(msgs[i].kafka->topic, AUDIT_TOPIC) != 0)
            continue;
        c->items[k] = (gov_state_audit_item_t){
            .event = msgs[i].event, .type = msgs[i].type, .source = msgs[i].source,
            .pos = gov_processor_position(p, &msgs[i]),
        };
        read_stamp(&msgs[i], &c->items[k]);
        c->item_msg[k++] = i;
    }
    if (k == 0)
        return;
    if (gov_state_audit_append_batch(c->store, c->items, k) != GOV_OK) {
        snprintf(eb, ebsize, "out of memory for the batch");
        return;   /* every result stays GOV_ERR_INTERNAL: retried */
    }
    /* partitions found rebuilding in this batch: their later messages come
     * again in the replay */
    int32_t rebuilt[GOV_PROCESSOR_MAX_TOPICS * 8];
    size_t nrebuilt = 0;
    for (size_t j = 0; j < k; j++) {
        gov_processor_msg_t *m = &msgs[c->item_msg[j]];
        gov_state_audit_item_t *it = &c->items[j];
        gov_err_t e = it->result;
        int skip = 0;
        for (size_t r = 0; r < nrebuilt; r++)
            skip |= rebuilt[r] == m->kafka->partition;
        if (skip) {
            results[c->item_msg[j]] = GOV_ERR_STATE;
            continue;
        }
        if (e == GOV_ERR_INVALID_ARG)
            reasons[c->item_msg[j]] = GOV_REASON_UNMATERIALIZABLE;
        /* the tenant's slot lost writes (its applied offset went back): the
         * partition is being rebuilt, this message comes again in the replay */
        if ((e == GOV_OK || e == GOV_ERR_DUPLICATE || e == GOV_ERR_STATE) &&
            gov_processor_applied(p, m, it->applied_before)) {
            gov_state_audit_forget(c->store);
            snprintf(it->errbuf, sizeof it->errbuf, "tenant's applied offset went back; rebuilding");
            e = GOV_ERR_STATE;
            if (nrebuilt < sizeof rebuilt / sizeof rebuilt[0])
                rebuilt[nrebuilt++] = m->kafka->partition;
        }
        if (e == GOV_OK && it->twin != GOV_STATE_AUDIT_TWIN_NONE)
            note_twin(c, m, it->twin);
        if (e != GOV_OK && e != GOV_ERR_DUPLICATE && eb[0] == 0)
            snprintf(eb, ebsize, "%s", it->errbuf);
        results[c->item_msg[j]] = e;
    }
}

int main(int argc, char **argv) {
    int exit_code;
    gov_processor_t *p;
    if (gov_processor_init(&p, &spec, config, sizeof config / sizeof config[0], argc,
                           argv, &exit_code) != GOV_OK)
        return exit_code;

    audit_ctx_t c = {
        .store = gov_state_audit_new(gov_processor_redis(p), decision_ttl_ms / 1000),
        .items = gov_calloc((size_t)batch_max, sizeof *c.items),
        .item_msg = gov_calloc((size_t)batch_max, sizeof *c.item_msg),
        .m_conflicts = gov_metrics_counter(gov_processor_metrics(p),
            "audit_event_conflicts_total",
            "Events chained as conflicting twins: a known event_id with other content, or a PolicyDecision naming a decision_id recorded by another event.",
            1, (const char *[]){"tenant"}),
    };
    int code = 1;
    if (c.store == NULL || c.m_conflicts == NULL || c.items == NULL || c.item_msg == NULL) {
        gov_log(GOV_LOG_ERROR, "out of memory", (const char *)NULL);
        gov_processor_shutdown(p);
        goto out;
    }
    if (load_relay_key() != GOV_OK) {
        gov_processor_shutdown(p);
        goto out;
    }
    gov_state_audit_set_id_window(c.store, event_id_window_ms);

    gov_processor_batch_limits_t limits = {(size_t)batch_max, (size_t)batch_max_bytes,
                                           batch_linger_ms};
    gov_err_t err = gov_processor_run_batch(p, append_batch, &c, &limits);
    code = gov_processor_shutdown(p);
    if (err != GOV_OK)
        code = 1;
out:
    if (relay_key) {
        explicit_bzero(relay_key, relay_key_len);
        gov_free(relay_key);
    }
    gov_state_audit_free(c.store);
    gov_free(c.items);
    gov_free(c.item_msg);
    return code;
}
