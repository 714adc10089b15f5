/* gov_processor.c - the shared consume -> decode -> materialize -> commit loop.
 *
 * How it works: gov_processor_next polls the consumer, runs the periodic
 * housekeeping (readiness, lag gauges) at most once a second, and decodes the
 * message.  Poison is handled right there (DLQ, then offset store), so the
 * processor's handler only ever sees well-formed events of the schemas its
 * topic carries.  gov_processor_done turns the handler's result into exactly
 * one of: store the offset, dead-letter then store, or rewind and back off.
 *
 * Invariant: an offset is stored only after the message's effect is durable
 * - in Redis (materialized), or in the DLQ topic (acknowledged by Kafka).
 *
 * Redis is a view of Kafka (docs/contracts.md, "Rebuilding Redis"): after
 * each message the partition's watermark is set with SET ... GET, and the
 * processor remembers what it wrote.  Found missing or lower - before a
 * message (one GET), by the write itself, or by the idle check every
 * rebuild_check - it means Redis lost writes: the watermark is put back to
 * what Redis holds, the partition seeks to just after it (its beginning
 * when nothing is left) and what had been applied before is replayed with
 * gov_processor_msg_t.replay set (handlers materialize, announce nothing; a
 * poison replay is not dead-lettered again).  At assignment a partition
 * starts from Redis's view when it is behind the committed offset.
 * Offsets Redis holds that are not below the partition's end never came
 * from this topic (it was deleted and recreated: offsets restart at 0;
 * or they were written by hand): they are logged at error, counted, and
 * not trusted - the partition starts at its committed offset or
 * beginning, a message under such a tenant applied offset is judged.
 *
 * Start-up, configuration of the shared settings, signals, logging, metrics,
 * the admin server, Redis and the producer are gov_runtime's; this layer adds
 * the consumer and what a processor does with each message.
 *
 * What it does not do: the Redis write itself (the processor's handler
 * writes state and offset together through gov_state); the rebuild relies
 * on the handlers' idempotence and does not reorder anything - it replays
 * each partition in its own order.
 */
#include "gov_processor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_log.h"
#include "gov_time.h"
#include "gov_util.h"

/* What the processor knows of one assigned partition: the watermark it
 * expects Redis to hold (the last one it wrote, or read at assignment) and,
 * after a rebuild, the last offset that had been applied before (messages up
 * to it are replays: gov_processor_msg_t.replay). */
#define MAX_PARTS 64
#define WATERMARK_UNKNOWN INT64_MIN   /* Redis did not answer at assignment */
#define MAX_BLOCKED 16                /* tenants tracked for recovery */
#define APPLIED_SLOTS 1024            /* (tenant, partition) applied offsets kept */

/* The last offset this processor applied to one tenant's keys from one
 * partition (what gov:applied:{T}:... must hold at least).  A fixed table
 * indexed by hash: a collision forgets the older entry (it is then not
 * checked until written again), so memory stays bounded. */
typedef struct applied_slot {
    char tenant[GOV_TENANT_MAX + 1];
    char topic[128];
    int32_t partition;
    int64_t offset;
} applied_slot_t;

typedef struct part_state {
    char topic[128];
    int32_t partition;
    int used;
    int64_t expected;      /* -1: none yet; WATERMARK_UNKNOWN */
    int64_t replay_until;  /* -1: nothing to replay */
    int moved;             /* a handler's message rebuilt it (batch: no rewind) */
} part_state_t;

struct gov_processor {
    const gov_processor_spec_t *spec;
    gov_runtime_t *rt;
    gov_runtime_spec_t rt_spec;
    const gov_runtime_config_t *conf; /* the shared rows, borrowed from rt */
    /* the processor rows */
    char *kafka_group;
    long dlq_timeout_ms;
    long retry_max_ms;
    /* borrowed from rt */
    gov_metrics_t *metrics;
    gov_status_t *status;
    gov_redis_t *redis;
    gov_kafka_producer_t *producer;
    /* owned */
    gov_kafka_consumer_t *consumer;
    gov_metric_t *m_events;
    gov_metric_t *m_lag, *m_position;
    gov_metric_t *m_duration;
    gov_metric_t *m_batch;   /* messages per batch (gov_processor_run_batch) */
    int64_t last_tick_us;
    unsigned retry_attempt;
    /* lost-write detection (docs/contracts.md, "Rebuilding Redis") */
    long rebuild_check_ms;
    int64_t last_check_us;
    gov_metric_t *m_rebuilds;
    uint64_t rebuilds;   /* since start: handlers drop caches when it moves */
    int replaying;       /* the message in hand is a replay (rebuild) */
    part_state_t parts[MAX_PARTS];
    /* tenants whose writes fail with a data error (a wrong-typed key):
     * marked degraded in /readyz until a write of theirs succeeds */
    gov_metric_t *m_tenant_errors;
    gov_metric_t *m_already_applied;
    gov_metric_t *m_applied_ahead;
    char blocked[MAX_BLOCKED][GOV_TENANT_MAX + 1];
    int nblocked;
    /* per-tenant applied offsets (docs/contracts.md, "Rebuilding Redis") */
    applied_slot_t applied[APPLIED_SLOTS];
    int rebuilt_now;   /* the handler's message started a rebuild */
    /* batch collection (gov_processor_run_batch): messages held but not yet
     * applied.  While any are held, a poison message is not dead-lettered
     * at once (that would store its offset above theirs): it waits here
     * until the batch is finished. */
    size_t batch_held;
    /* the back-off owed before the next poll: 0, or one delay for every
     * message rewound since the last sleep (a batch sleeps once, however
     * many of its partitions stopped - REVIEW12 L4) */
    long backoff_ms;
    gov_kafka_msg_t *pending_km;
    const char *pending_reason;   /* static reason code */
    char pending_detail[256];
    int pending_replay;
};

gov_redis_t *gov_processor_redis(gov_processor_t *p) { return p->redis; }
gov_kafka_producer_t *gov_processor_producer(gov_processor_t *p) { return p->producer; }
gov_metrics_t *gov_processor_metrics(gov_processor_t *p) { return p->metrics; }
gov_status_t *gov_processor_status(gov_processor_t *p) { return p->status; }
const gov_avro_registry_t *gov_processor_avro(gov_processor_t *p) {
    return gov_runtime_avro(p->rt);
}
const char *gov_processor_name(gov_processor_t *p) { return p->conf->component_name; }

gov_err_t gov_processor_derive_id(gov_processor_t *p, uint64_t unix_ms, const char *event_id,
                                  const char *action, char out[GOV_UUID_STRLEN + 1]) {
    char seed[256];
    snprintf(seed, sizeof seed, "%s/%s/%s", p->conf->component_name, event_id, action);
    return gov_uuid_v7_derive(unix_ms, seed, out);
}
int gov_processor_running(gov_processor_t *p) { return gov_runtime_running(p->rt); }

/* Starts the runtime with the processor rows (shared rows placed, then the
 * consumer's own), followed by the processor's extra rows. */
/* The processor's metric families and readiness components, registered
 * before the admin server answers its first request. */
static gov_err_t register_parts(void *ctx, gov_metrics_t *metrics, gov_status_t *status) {
    gov_processor_t *p = ctx;
    p->m_events = gov_metrics_counter(metrics, "processor_events_total",
        "Events handled by a processor, by outcome (materialized, duplicate, dead_lettered, retried).",
        3, (const char *[]){"processor", "topic", "outcome"});
    p->m_lag = gov_metrics_gauge(metrics, "processor_consumer_lag",
        "Messages between the consumer's position and the partition's high watermark.",
        3, (const char *[]){"processor", "topic", "partition"});
    p->m_position = gov_metrics_gauge(metrics, "processor_consumer_position",
        "The next offset the consumer fetches from the partition (where it started, or the "
        "partition's first retained offset, before its first fetch): with the partition's end "
        "at some moment, whether the processor has read that far.",
        3, (const char *[]){"processor", "topic", "partition"});
    p->m_duration = gov_metrics_histogram(metrics, "processor_materialize_duration_seconds",
        "Time from receiving a message to its offset being stored.", 1,
        (const char *[]){"processor"}, gov_metrics_latency_bucket_count,
        gov_metrics_latency_buckets);
    static const double batch_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
    p->m_batch = gov_metrics_histogram(metrics, "processor_batch_messages",
        "Messages per batch of a batching processor (gov-audit): one handler call, one Redis round trip for its writes.",
        1, (const char *[]){"processor"}, sizeof batch_buckets / sizeof batch_buckets[0],
        batch_buckets);
    p->m_rebuilds = gov_metrics_counter(metrics, "processor_rebuilds_total",
        "Partitions replayed from Kafka because Redis lost writes (watermark missing or lower than written).",
        3, (const char *[]){"processor", "topic", "partition"});
    p->m_tenant_errors = gov_metrics_counter(metrics, "processor_tenant_write_errors_total",
        "Writes of a tenant's state that failed with a data error (e.g. WRONGTYPE: a key of the wrong type); the message is retried and its partition waits.",
        2, (const char *[]){"processor", "tenant"});
    p->m_already_applied = gov_metrics_counter(metrics, "processor_already_applied_total",
        "Messages finished without judging them again: the tenant's applied offset (gov:applied:{T}:...) already covered them (a rewound or rebuilt partition).",
        2, (const char *[]){"processor", "topic"});
    p->m_applied_ahead = gov_metrics_counter(metrics, "processor_offset_ahead_total",
        "Offsets in Redis not below the partition's end: they belong to a deleted and recreated topic (offsets restarted at 0), another Kafka cluster, or were written by hand. kind=applied: a tenant's applied offset, the message was judged anyway; kind=watermark: a partition watermark at assignment, the partition started at its committed offset or beginning.",
        3, (const char *[]){"processor", "topic", "kind"});
    if (p->m_events == NULL || p->m_lag == NULL || p->m_position == NULL || p->m_duration == NULL || p->m_batch == NULL ||
        p->m_rebuilds == NULL ||
        p->m_tenant_errors == NULL || p->m_already_applied == NULL || p->m_applied_ahead == NULL)
        return GOV_ERR_NOMEM;
    gov_err_t err = gov_status_register(status, "kafka");
    return err != GOV_OK ? err : gov_status_register(status, "redis");
}

static gov_err_t start_runtime(gov_processor_t *p, const gov_config_entry_t *extra,
                               size_t nextra, int argc, char **argv, int *exit_code) {
    const gov_config_entry_t base[] = {
        GOV_RUNTIME_ROW("kafka_brokers"),
        GOV_CFG_STRING("kafka_group", p->spec->name, "Kafka consumer group id", &p->kafka_group),
        GOV_RUNTIME_ROW("redis_host"),
        GOV_RUNTIME_ROW("redis_port"),
        GOV_RUNTIME_ROW("redis_timeout"),
        GOV_RUNTIME_ROW("admin_addr"),
        GOV_RUNTIME_ROW("admin_port"),
        GOV_RUNTIME_ROW("log_level"),
        GOV_RUNTIME_ROW("component_name"),
        GOV_CFG_DURATION("dlq_timeout", "10s", 100, 300000,
                         "how long to wait for the DLQ acknowledgement of a poison message",
                         &p->dlq_timeout_ms),
        GOV_CFG_DURATION("retry_max", "5s", 10, 300000,
                         "longest back-off between retries of a message whose write failed",
                         &p->retry_max_ms),
        GOV_CFG_DURATION("rebuild_check", "1s", 50, 60000,
                         "how often an idle processor checks that Redis still holds its partition watermarks (missing or lower: Redis lost writes, rebuild from Kafka); every message is checked anyway",
                         &p->rebuild_check_ms),
    };
    const size_t nbase = sizeof base / sizeof base[0];
    gov_config_entry_t *rows = gov_calloc(nbase + nextra, sizeof *rows);
    if (rows == NULL) {
        fprintf(stderr, "%s: out of memory\n", p->spec->name);
        return GOV_ERR_NOMEM;
    }
    memcpy(rows, base, sizeof base);
    if (nextra)
        memcpy(rows + nbase, extra, nextra * sizeof *extra);
    p->rt_spec = (gov_runtime_spec_t){
        .name = p->spec->name,
        .default_admin_port = p->spec->default_admin_port,
        .admin = 1,
        .redis = 1,
        .producer = 1,
        .register_parts = register_parts,
        .register_ctx = p,
    };
    gov_err_t err = gov_runtime_start(&p->rt, &p->rt_spec, rows, nbase + nextra, argc, argv,
                                      exit_code);
    gov_free(rows); /* the runtime keeps its own copy */
    return err;
}

static int64_t on_assign(void *opaque, const char *topic, int32_t partition, int64_t committed);
static void on_revoke(void *opaque);

static void free_processor(gov_processor_t *p) {
    if (p == NULL)
        return;
    gov_kafka_consumer_close(p->consumer);
    gov_free(p);
}

gov_err_t gov_processor_init(gov_processor_t **out, const gov_processor_spec_t *spec,
                             const gov_config_entry_t *extra, size_t nextra,
                             int argc, char **argv, int *exit_code) {
    char eb[512] = "";
    gov_err_t err;
    *exit_code = 1;
    gov_processor_t *p = gov_calloc(1, sizeof *p);
    if (p == NULL) {
        fprintf(stderr, "%s: out of memory\n", spec->name);
        return GOV_ERR_NOMEM;
    }
    p->spec = spec;
    if ((err = start_runtime(p, extra, nextra, argc, argv, exit_code)) != GOV_OK) {
        gov_free(p);
        return err;
    }
    *exit_code = 1;
    p->conf = gov_runtime_config(p->rt);
    p->metrics = gov_runtime_metrics(p->rt);
    p->status = gov_runtime_status(p->rt);
    p->redis = gov_runtime_redis(p->rt);
    p->producer = gov_runtime_producer(p->rt);

    /* The group names the offset keys: it must be a key part. */
    char probe[GOV_STATE_KEY_MAX];
    gov_state_pos_t gp = {p->kafka_group, "topic", 0, 0, NULL};
    if (gov_state_watermark_key(&gp, probe) != GOV_OK) {
        fprintf(stderr, "%s: kafka_group must be non-empty, without ':' and short enough for a "
                "Redis key\n", spec->name);
        *exit_code = 2;
        err = GOV_ERR_INVALID_ARG;
        goto fail;
    }

    const char *topics[GOV_PROCESSOR_MAX_TOPICS];
    size_t ntopics = 0;
    for (size_t i = 0; i < GOV_PROCESSOR_MAX_TOPICS && spec->topics[i].topic; i++)
        if (spec->topics[i].enabled == NULL || *spec->topics[i].enabled)
            topics[ntopics++] = spec->topics[i].topic;
    char fwait[24], fmin[24];
    const char *fconf[5] = {NULL};
    size_t nf = 0;
    if (spec->fetch_wait_max_ms) {
        snprintf(fwait, sizeof fwait, "%ld", *spec->fetch_wait_max_ms);
        fconf[nf++] = "fetch.wait.max.ms";
        fconf[nf++] = fwait;
    }
    if (spec->fetch_min_bytes) {
        snprintf(fmin, sizeof fmin, "%ld", *spec->fetch_min_bytes);
        fconf[nf++] = "fetch.min.bytes";
        fconf[nf++] = fmin;
    }
    if ((err = gov_kafka_consumer_new(p->conf->kafka_brokers, p->kafka_group, spec->name,
                                      topics, ntopics, fconf, &p->consumer,
                                      eb, sizeof eb)) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "kafka consumer", "error", eb, (const char *)NULL);
        goto fail;
    }
    gov_kafka_consumer_on_assign(p->consumer, on_assign, on_revoke, p);
    char port[16], rport[16];
    snprintf(port, sizeof port, "%ld", p->conf->admin_port);
    snprintf(rport, sizeof rport, "%ld", p->conf->redis_port);
    if (p->conf->redis_nodes != NULL && p->conf->redis_nodes[0] != 0)
        gov_log(GOV_LOG_INFO, "started", "kafka", p->conf->kafka_brokers, "group", p->kafka_group,
                "redis_nodes", p->conf->redis_nodes, "admin_port", port, (const char *)NULL);
    else
        gov_log(GOV_LOG_INFO, "started", "kafka", p->conf->kafka_brokers, "group", p->kafka_group,
                "redis_host", p->conf->redis_host, "redis_port", rport, "admin_port", port,
                (const char *)NULL);
    *out = p;
    *exit_code = 0;
    return GOV_OK;
fail:
    gov_runtime_shutdown(p->rt, 1);
    free_processor(p);
    return err == GOV_OK ? GOV_ERR_INTERNAL : err;
}

/* The partition's state; a new one when create (NULL when the table is
 * full: that partition is then not checked, only logged). */
static part_state_t *part_find(gov_processor_t *p, const char *topic, int32_t partition,
                               int create) {
    part_state_t *free_slot = NULL;
    for (size_t i = 0; i < MAX_PARTS; i++) {
        part_state_t *ps = &p->parts[i];
        if (ps->used && ps->partition == partition && strcmp(ps->topic, topic) == 0)
            return ps;
        if (!ps->used && free_slot == NULL)
            free_slot = ps;
    }
    if (!create || free_slot == NULL || strlen(topic) >= sizeof free_slot->topic) {
        if (create)
            gov_log(GOV_LOG_WARN, "partition not tracked for lost-write detection", "topic",
                    topic, (const char *)NULL);
        return NULL;
    }
    memset(free_slot, 0, sizeof *free_slot);
    snprintf(free_slot->topic, sizeof free_slot->topic, "%s", topic);
    free_slot->partition = partition;
    free_slot->used = 1;
    free_slot->expected = -1;
    free_slot->replay_until = -1;
    return free_slot;
}

static int is_kafka_only(const gov_processor_t *p, const char *topic) {
    for (const char *const *t = p->spec->kafka_only; t && *t; t++)
        if (strcmp(*t, topic) == 0)
            return 1;
    return 0;
}

static void on_revoke(void *opaque) {
    gov_processor_t *p = opaque;
    memset(p->parts, 0, sizeof p->parts);
}

/* Where an assigned partition starts: Redis's view first.  The watermark
 * says what Redis holds; when it is missing (Redis flushed, or never
 * written) the partition is replayed from its beginning, when it is behind
 * the group's committed offset (an older snapshot) from just after it.
 * What lies between that and the committed offset was applied before: its
 * replay is silent. */
static int64_t on_assign(void *opaque, const char *topic, int32_t partition, int64_t committed) {
    gov_processor_t *p = opaque;
    /* A relay's new group (first start, or its offsets expired) starts at
     * the earliest retained message: starting at the end would never relay
     * what was produced before.  Copying again what an earlier deployment
     * relayed is safe: the copy is byte-identical, so gov-audit's dedup
     * takes it as a replay (docs/contracts.md, "The decision relay").  An
     * existing group resumes where it committed. */
    if (is_kafka_only(p, topic))
        return committed < 0 ? GOV_KAFKA_OFFSET_BEGINNING : GOV_KAFKA_OFFSET_COMMITTED;
    part_state_t *ps = part_find(p, topic, partition, 1);
    gov_state_pos_t pos = {p->kafka_group, topic, partition, 0, NULL};
    int64_t wm = -1;
    char eb[256] = "", part[16], c[32], w[32];
    if (gov_state_watermark_read(p->redis, &pos, &wm, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_WARN, "watermark unreadable at assignment; starting at the committed offset",
                "topic", topic, "error", eb, (const char *)NULL);
        if (ps)
            ps->expected = WATERMARK_UNKNOWN;
        return GOV_KAFKA_OFFSET_COMMITTED;
    }
    if (ps)
        ps->expected = wm;
    if (wm >= 0 && (committed < 0 || committed <= wm)) {
        /* Redis says more of the partition was applied than it holds: the
         * topic was deleted and recreated (its offsets restarted at 0, the
         * group's committed offsets went with it), or Redis belongs to
         * another cluster, or the key was written by hand.  Resuming after
         * the watermark would skip the new topic's messages. */
        int64_t end = gov_kafka_consumer_end(p->consumer, topic, partition, 1, 5000);
        if (end >= 0 && wm >= end) {
            char e[32];
            snprintf(part, sizeof part, "%d", (int)partition);
            snprintf(c, sizeof c, "%lld", (long long)committed);
            snprintf(w, sizeof w, "%lld", (long long)wm);
            snprintf(e, sizeof e, "%lld", (long long)end);
            gov_log(GOV_LOG_ERROR,
                    "partition watermark in Redis is beyond the end of the partition: the topic was "
                    "deleted and recreated, Redis belongs to another Kafka cluster, or the key was "
                    "written by hand; starting at the committed offset, else the beginning",
                    "topic", topic, "partition", part, "committed", c, "watermark", w,
                    "partition_end", e, (const char *)NULL);
            gov_metric_inc(p->m_applied_ahead, (const char *[]){p->spec->name, topic, "watermark"},
                           1);
            return committed >= 0 ? GOV_KAFKA_OFFSET_COMMITTED : GOV_KAFKA_OFFSET_BEGINNING;
        }
    }
    if (committed < 0 || committed <= wm + 1)
        return committed < 0 && wm >= 0 ? wm + 1 : GOV_KAFKA_OFFSET_COMMITTED;
    /* The group went further than Redis holds: rebuild. */
    if (ps)
        ps->replay_until = committed - 1;
    snprintf(part, sizeof part, "%d", (int)partition);
    snprintf(c, sizeof c, "%lld", (long long)committed);
    snprintf(w, sizeof w, "%lld", (long long)wm);
    gov_log(GOV_LOG_WARN, "Redis is behind the committed offset; rebuilding the partition from Kafka",
            "topic", topic, "partition", part, "committed", c, "watermark", w, (const char *)NULL);
    gov_metric_inc(p->m_rebuilds, (const char *[]){p->spec->name, topic, part}, 1);
    p->rebuilds++;
    return wm < 0 ? GOV_KAFKA_OFFSET_BEGINNING : wm + 1;
}

/* Redis lost writes of partition ps: its watermark is `found` (-1: gone)
 * where the processor expected ps->expected.  Puts the watermark back to
 * what Redis really holds (a crash now must resume from there), moves the
 * partition back to just after it - the beginning when nothing is left -
 * and marks everything up to `applied` as a replay.  Cost: one command, one
 * seek. */
static void rebuild(gov_processor_t *p, part_state_t *ps, int64_t found, int64_t applied) {
    char part[16], exp[32], fnd[32], eb[256] = "";
    snprintf(part, sizeof part, "%d", (int)ps->partition);
    snprintf(exp, sizeof exp, "%lld", (long long)ps->expected);
    snprintf(fnd, sizeof fnd, "%lld", (long long)found);
    gov_log(GOV_LOG_WARN, "Redis lost writes; rebuilding the partition from Kafka", "topic",
            ps->topic, "partition", part, "expected_watermark", exp, "found", fnd,
            (const char *)NULL);
    gov_metric_inc(p->m_rebuilds, (const char *[]){p->spec->name, ps->topic, part}, 1);
    p->rebuilds++;
    gov_state_pos_t pos = {p->kafka_group, ps->topic, ps->partition, found, NULL};
    if (gov_state_watermark_reset(p->redis, &pos, eb, sizeof eb) != GOV_OK)
        gov_log(GOV_LOG_WARN, "watermark not reset", "topic", ps->topic, "error", eb,
                (const char *)NULL);
    if (applied > ps->replay_until)
        ps->replay_until = applied;
    ps->expected = found;
    gov_kafka_consumer_seek(p->consumer, ps->topic, ps->partition,
                            found < 0 ? GOV_KAFKA_OFFSET_BEGINNING : found + 1);
}

/* Compares the partition's watermark in Redis with what the processor
 * expects; rebuilds when it is missing or lower.  1 when it rebuilt.  Cost:
 * one GET. */
static int check_partition(gov_processor_t *p, part_state_t *ps) {
    if (ps == NULL || ps->expected < 0)   /* nothing written yet, or unknown */
        return 0;
    gov_state_pos_t pos = {p->kafka_group, ps->topic, ps->partition, 0, NULL};
    int64_t wm = -1;
    char eb[256] = "";
    if (gov_state_watermark_read(p->redis, &pos, &wm, eb, sizeof eb) != GOV_OK || wm >= ps->expected)
        return 0;   /* unreachable: the write path will find out */
    rebuild(p, ps, wm, ps->expected);
    return 1;
}

typedef struct lag_ctx {
    gov_processor_t *p;
} lag_ctx_t;

static void on_lag(void *opaque, const char *topic, int32_t partition, int64_t lag,
                   int64_t position) {
    gov_processor_t *p = opaque;
    char part[16];
    snprintf(part, sizeof part, "%d", partition);
    if (lag >= 0)
        gov_metric_set(p->m_lag, (const char *[]){p->spec->name, topic, part}, (double)lag);
    if (position >= 0)
        gov_metric_set(p->m_position, (const char *[]){p->spec->name, topic, part},
                       (double)position);
}

/* Readiness and lag, at most once a second. */
static void housekeeping(gov_processor_t *p) {
    int64_t now = gov_mono_micros();
    if (now - p->last_check_us >= (int64_t)p->rebuild_check_ms * 1000) {
        p->last_check_us = now;
        for (size_t i = 0; i < MAX_PARTS; i++)
            if (p->parts[i].used)
                check_partition(p, &p->parts[i]);
    }
    if (now - p->last_tick_us < 1000000)
        return;
    p->last_tick_us = now;
    gov_err_t re = gov_redis_ping(p->redis);
    gov_status_set(p->status, "redis", re == GOV_OK ? GOV_STATUS_OK : GOV_STATUS_ERROR,
                   re == GOV_OK ? NULL : gov_err_str(re), NULL);
    int kh = gov_kafka_consumer_healthy(p->consumer);
    gov_status_set(p->status, "kafka", kh ? GOV_STATUS_OK : GOV_STATUS_NOT_READY,
                   kh ? NULL : "waiting for partition assignment or brokers", NULL);
    gov_kafka_consumer_lag(p->consumer, on_lag, p);
}

/* The message's effect is durable: store its offset for the commit and
 * move the partition's watermark in Redis (a single-key SET ... GET after
 * the tenant's script, docs/contracts.md "Rebuilding Redis").  A failed
 * watermark write is only logged: the next message writes it again. */
static void watermark_note(gov_processor_t *p, const gov_kafka_msg_t *km);
static void mark_done(gov_processor_t *p, const gov_kafka_msg_t *km) {
    gov_kafka_consumer_store(p->consumer, km);
    watermark_note(p, km);
}

/* mark_done's Redis half: the partition's watermark moves to km. */
static void watermark_note(gov_processor_t *p, const gov_kafka_msg_t *km) {
    gov_state_pos_t pos = {p->kafka_group, km->topic, km->partition, km->offset, NULL};
    int64_t previous = -1;
    char eb[256] = "";
    if (gov_state_watermark_swap(p->redis, &pos, &previous, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_WARN, "watermark not written", "topic", km->topic, "error", eb,
                (const char *)NULL);
        return;
    }
    part_state_t *ps = is_kafka_only(p, km->topic) ? NULL : part_find(p, km->topic, km->partition, 1);
    if (ps == NULL)
        return;
    /* The write itself sees a watermark that vanished or went back since
     * the check before this message: what came before it is lost. */
    if (ps->expected != WATERMARK_UNKNOWN && previous < ps->expected)
        rebuild(p, ps, previous, km->offset);
    else
        ps->expected = km->offset;
}

static void count(gov_processor_t *p, const char *topic, const char *outcome) {
    gov_metric_inc(p->m_events, (const char *[]){p->spec->name, topic, outcome}, 1);
}

/* Seeks km's partition back to km so that it is delivered again, and owes
 * one back-off before the next poll (backoff_sleep).  Every rewind until that
 * sleep shares the one delay: a batch whose partitions all stopped waits
 * once, not once per partition (REVIEW12 L4), and its attempt count grows
 * once per batch. */
static void rewind_later(gov_processor_t *p, gov_kafka_msg_t *km, const char *why) {
    char off[32], part[16], delay[32];
    if (p->backoff_ms == 0) {
        p->backoff_ms = gov_backoff_ms(p->retry_attempt, 100, p->retry_max_ms);
        if (p->backoff_ms < 1)
            p->backoff_ms = 1;
        if (p->retry_attempt < 30)
            p->retry_attempt++;
    }
    snprintf(off, sizeof off, "%lld", (long long)km->offset);
    snprintf(part, sizeof part, "%d", (int)km->partition);
    snprintf(delay, sizeof delay, "%ld", p->backoff_ms);
    gov_log(GOV_LOG_WARN, "write failed; message will be retried", "topic", km->topic,
            "partition", part, "offset", off, "retry_in_ms", delay, "error", why,
            (const char *)NULL);
    count(p, km->topic, "retried");
    gov_kafka_consumer_rewind(p->consumer, km);
}

/* The back-off owed by rewind_later, if any: one sleep (it ends early on
 * SIGTERM). */
static void backoff_sleep(gov_processor_t *p) {
    long ms = p->backoff_ms;
    p->backoff_ms = 0;
    if (ms > 0)
        gov_runtime_sleep(p->rt, ms);
}

static void backoff_and_rewind(gov_processor_t *p, gov_kafka_msg_t *km, const char *why) {
    rewind_later(p, km, why);
    backoff_sleep(p);
}

/* Sends km unchanged to <topic>.dlq and stores its offset only once the DLQ
 * has it: GOV_OK.  If the DLQ cannot take it, km is rewound (retried after
 * the back-off the caller sleeps, backoff_sleep) and the produce error is
 * returned: nothing after km in its partition may be stored now (REVIEW12
 * M6). */
static gov_err_t dead_letter(gov_processor_t *p, gov_kafka_msg_t *km, const char *reason,
                             const char *detail) {
    char dlq[256], part[16], off[32], eb[256];
    if (p->replaying) {
        /* Rebuilding Redis: this one went to the DLQ when it was first
         * consumed; a replay is silent. */
        mark_done(p, km);
        return GOV_OK;
    }
    snprintf(dlq, sizeof dlq, "%s.dlq", km->topic);
    snprintf(part, sizeof part, "%d", km->partition);
    snprintf(off, sizeof off, "%lld", (long long)km->offset);
    const char *det = detail ? detail : "";
    gov_kafka_header_t h[] = {
        {"x-gov-dlq-reason", reason, strlen(reason)},
        {"x-gov-dlq-detail", det, strlen(det)},
        {"x-gov-source-topic", km->topic, strlen(km->topic)},
        {"x-gov-source-partition", part, strlen(part)},
        {"x-gov-source-offset", off, strlen(off)},
        {"x-gov-processor", p->spec->name, strlen(p->spec->name)},
        {"x-gov-component", p->conf->component_name, strlen(p->conf->component_name)},
    };
    gov_err_t err = gov_kafka_produce_sync(p->producer, dlq, km->key, km->key_len,
                                           km->value, km->len, h, sizeof h / sizeof h[0],
                                           (int)p->dlq_timeout_ms, NULL, NULL, eb, sizeof eb);
    if (err != GOV_OK) {
        rewind_later(p, km, eb);
        return err;
    }
    gov_log(GOV_LOG_WARN, "poison message sent to dead-letter topic", "topic", km->topic,
            "partition", part, "offset", off, "reason", reason, "detail", det, "dlq", dlq,
            (const char *)NULL);
    count(p, km->topic, "dead_lettered");
    mark_done(p, km);
    p->retry_attempt = 0;
    return GOV_OK;
}

/* A poison message found by gov_processor_next: dead-lettered now, or,
 * while a batch is held, kept until the batch is finished (its offset must
 * not be stored above messages not yet applied).  Takes km. */
static void poison(gov_processor_t *p, gov_kafka_msg_t *km, const char *reason,
                   const char *detail) {
    if (p->batch_held > 0 && p->pending_km == NULL) {
        p->pending_km = km;
        p->pending_reason = reason;
        p->pending_replay = p->replaying;
        snprintf(p->pending_detail, sizeof p->pending_detail, "%s", detail ? detail : "");
        return;
    }
    dead_letter(p, km, reason, detail);
    gov_kafka_msg_free(km);
    backoff_sleep(p);
}

static const gov_processor_topic_t *find_topic(gov_processor_t *p, const char *topic) {
    for (size_t i = 0; i < GOV_PROCESSOR_MAX_TOPICS && p->spec->topics[i].topic; i++)
        if (strcmp(p->spec->topics[i].topic, topic) == 0)
            return &p->spec->topics[i];
    return NULL;
}

/* Checks what every event must satisfy; returns why not, or GOV_REASON_NONE. */
static gov_reason_t check_envelope(const gov_processor_topic_t *t, const gov_kafka_msg_t *km,
                                   json_t *ev, const char *type) {
    int known = 0;
    for (const char *const *s = t->schemas; s && *s; s++)
        if (strcmp(*s, type) == 0)
            known = 1;
    if (!known)
        return GOV_REASON_UNEXPECTED_SCHEMA;
    if (!gov_uuid_v7_valid(json_string_value(json_object_get(ev, "event_id"))))
        return GOV_REASON_INVALID_EVENT_ID;
    if (t->key_is_tenant) {
        json_t *tj = json_object_get(ev, "tenant");
        const char *tenant = json_string_value(tj);
        size_t tl = json_string_length(tj);
        if (tenant == NULL || !gov_tenant_valid(tenant, tl))
            return GOV_REASON_INVALID_TENANT;
        if (km->key == NULL || km->key_len != tl || memcmp(km->key, tenant, tl) != 0)
            return GOV_REASON_KEY_MISMATCH;
    }
    return GOV_REASON_NONE;
}

static gov_err_t next_msg(gov_processor_t *p, gov_processor_msg_t *m, int timeout_ms) {
    memset(m, 0, sizeof *m);
    housekeeping(p);
    gov_kafka_msg_t *km = NULL;
    gov_err_t err = gov_kafka_consumer_poll(p->consumer, timeout_ms, &km);
    if (err != GOV_OK)
        return err;
    int64_t started = gov_mono_micros();
    part_state_t *ps = part_find(p, km->topic, km->partition, 0);
    int replay = ps != NULL && km->offset <= ps->replay_until;
    p->replaying = replay;
    const gov_processor_topic_t *t = find_topic(p, km->topic);
    char eb[256] = "";
    json_t *ev = NULL;
    const char *type = NULL;
    if (t == NULL) {
        poison(p, km, gov_reason_code(GOV_REASON_UNEXPECTED_TOPIC), km->topic);
        return GOV_ERR_VERIFY;
    }
    err = gov_avro_decode(gov_runtime_avro(p->rt), km->value, km->len, &ev, &type, eb, sizeof eb);
    if (err == GOV_ERR_NOMEM) {
        backoff_and_rewind(p, km, "out of memory decoding");
        gov_kafka_msg_free(km);
        return err;
    }
    if (err != GOV_OK) {
        poison(p, km, gov_reason_code(err == GOV_ERR_UNSUPPORTED ? GOV_REASON_UNKNOWN_SCHEMA
                                                                 : GOV_REASON_UNDECODABLE),
               eb);
        return GOV_ERR_PARSE;
    }
    gov_reason_t why = check_envelope(t, km, ev, type);
    if (why != GOV_REASON_NONE) {
        poison(p, km, gov_reason_code(why), type);
        json_decref(ev);
        return GOV_ERR_VERIFY;
    }
    /* Before anything is written: does Redis still hold what this
     * partition wrote?  If not, the message is dropped (the seek delivers
     * it again, after the replay of what was lost). */
    /* (a replay skips it: a rebuild is under way, and the watermark write
     * after it still sees a new loss; so does a batch's second and later
     * message: the check ran before its first, and a rebuild now would
     * seek the partition under messages already held) */
    if (!replay && p->batch_held == 0 && check_partition(p, ps)) {
        json_decref(ev);
        gov_kafka_msg_free(km);
        return GOV_ERR_STATE;
    }
    m->replay = replay;
    m->kafka = km;
    m->event = ev;
    m->type = type;
    m->started_us = started;
    snprintf(m->source, sizeof m->source, "%s/%d/%lld", km->topic, km->partition,
             (long long)km->offset);
    return GOV_OK;
}

gov_err_t gov_processor_next(gov_processor_t *p, gov_processor_msg_t *m) {
    return next_msg(p, m, 200);
}

static int blocked_find(const gov_processor_t *p, const char *tenant) {
    for (int i = 0; i < p->nblocked; i++)
        if (strcmp(p->blocked[i], tenant) == 0)
            return i;
    return -1;
}

/* A write of the message's tenant failed with a data error (GOV_ERR_REDIS:
 * WRONGTYPE, a script error - not an outage).  The message is retried, so
 * nothing is lost, but its partition waits for it: make that visible -
 * counted every time, and the first time logged at error with the key at
 * fault and /readyz's component tenant:<T> set degraded with the reason.
 * Cost: a dozen TYPE commands the first time, nothing after. */
static void tenant_blocked(gov_processor_t *p, const gov_processor_msg_t *m, const char *why) {
    const char *tenant = json_string_value(json_object_get(m->event, "tenant"));
    if (tenant == NULL || !gov_tenant_valid(tenant, strlen(tenant)))
        return;
    gov_metric_inc(p->m_tenant_errors, (const char *[]){p->spec->name, tenant}, 1);
    if (blocked_find(p, tenant) >= 0)
        return;
    char key[GOV_STATE_KEY_MAX + 8], type[64], eb[256] = "", comp[GOV_TENANT_MAX + 8],
        detail[GOV_STATE_KEY_MAX + 400], off[32];
    if (gov_state_wrong_type_key(p->redis, tenant, key, sizeof key, type, sizeof type, eb,
                                 sizeof eb) != GOV_OK)
        snprintf(key, sizeof key, "(not found: %s)", eb);
    snprintf(off, sizeof off, "%lld", (long long)m->kafka->offset);
    gov_log(GOV_LOG_ERROR,
            "a tenant's state cannot be written; its message is retried and the partition waits",
            "tenant", tenant, "key", key, "key_type", type, "topic", m->kafka->topic, "offset",
            off, "error", why ? why : "", (const char *)NULL);
    snprintf(comp, sizeof comp, "tenant:%s", tenant);
    snprintf(detail, sizeof detail, "writes fail%s%s%s%s: %.200s", key[0] ? ": key " : "", key,
             type[0] ? " is a " : "", type, why ? why : "");
    if (gov_status_register(p->status, comp) == GOV_OK)
        gov_status_set(p->status, comp, GOV_STATUS_DEGRADED, detail, NULL);
    if (p->nblocked < MAX_BLOCKED)
        snprintf(p->blocked[p->nblocked++], sizeof p->blocked[0], "%s", tenant);
}

/* A write of a tenant marked blocked succeeded: its component is OK again. */
static void tenant_recovered(gov_processor_t *p, const gov_processor_msg_t *m) {
    if (p->nblocked == 0)
        return;
    const char *tenant = json_string_value(json_object_get(m->event, "tenant"));
    int i = tenant ? blocked_find(p, tenant) : -1;
    if (i < 0)
        return;
    char comp[GOV_TENANT_MAX + 8];
    snprintf(comp, sizeof comp, "tenant:%s", tenant);
    gov_status_set(p->status, comp, GOV_STATUS_OK, "writes succeed again", NULL);
    gov_log(GOV_LOG_INFO, "a tenant's state is written again", "tenant", tenant,
            (const char *)NULL);
    memmove(p->blocked[i], p->blocked[i + 1], (size_t)(p->nblocked - i - 1) * sizeof p->blocked[0]);
    p->nblocked--;
}

/* What a handler's result means for its message (gov_processor.h). */
enum { RESULT_DONE, RESULT_POISON, RESULT_RETRY };
static int result_kind(gov_err_t result) {
    switch (result) {
    case GOV_OK:
    case GOV_ERR_DUPLICATE:
        return RESULT_DONE;
    case GOV_ERR_VERIFY:
    case GOV_ERR_PARSE:
    case GOV_ERR_INVALID_ARG:
    case GOV_ERR_TOO_LARGE:
    case GOV_ERR_UNSUPPORTED:
        return RESULT_POISON;
    default:
        return RESULT_RETRY;
    }
}

/* A message materialized (or a replay), its offset stored: counted. */
static void finished(gov_processor_t *p, const gov_processor_msg_t *m, gov_err_t result) {
    count(p, m->kafka->topic, result == GOV_OK ? "materialized" : "duplicate");
    p->retry_attempt = 0;
    tenant_recovered(p, m);
}

/* A message the handler found poison: to the DLQ with its reason. */
static gov_err_t dead_letter_result(gov_processor_t *p, const gov_processor_msg_t *m,
                                    gov_err_t result, gov_reason_t reason) {
    return dead_letter(p, m->kafka,
                reason != GOV_REASON_NONE ? gov_reason_code(reason) : gov_err_code(result),
                m->type);
}

void gov_processor_done(gov_processor_t *p, gov_processor_msg_t *m, gov_err_t result,
                        gov_reason_t reason, const char *detail) {
    gov_kafka_msg_t *km = m->kafka;
    switch (result_kind(result)) {
    case RESULT_DONE:
        mark_done(p, km);
        finished(p, m, result);
        break;
    case RESULT_POISON:
        dead_letter_result(p, m, result, reason);
        backoff_sleep(p);   /* when the DLQ did not take it */
        break;
    default:
        /* A handler that saw state go back (GOV_ERR_STATE: e.g. an audit
         * head behind what it appended) has the partition checked now. */
        if (result == GOV_ERR_STATE &&
            (p->rebuilt_now || check_partition(p, part_find(p, km->topic, km->partition, 0)))) {
            p->rebuilt_now = 0;   /* the partition was moved back: no rewind */
            break;
        }
        if (result == GOV_ERR_REDIS)
            tenant_blocked(p, m, detail);
        backoff_and_rewind(p, km, detail ? detail : gov_err_str(result));
        break;
    }
    gov_metric_observe(p->m_duration, (const char *[]){p->spec->name},
                       (double)(gov_mono_micros() - m->started_us) / 1e6);
    json_decref(m->event);
    gov_kafka_msg_free(km);
    memset(m, 0, sizeof *m);
}

/* The table slot of the message's (tenant, topic, partition); NULL when the
 * message has no tenant or its names do not fit. */
static applied_slot_t *applied_slot_of(gov_processor_t *p, const gov_processor_msg_t *m) {
    const char *tenant = json_string_value(json_object_get(m->event, "tenant"));
    const gov_kafka_msg_t *km = m->kafka;
    if (tenant == NULL || strlen(tenant) > GOV_TENANT_MAX || strlen(km->topic) >= 128)
        return NULL;
    uint32_t h = 2166136261u; /* FNV-1a over tenant, topic, partition */
    for (const char *c = tenant; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    for (const char *c = km->topic; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    h = (h ^ (uint32_t)km->partition) * 16777619u;
    return &p->applied[h % APPLIED_SLOTS];
}

/* The tenant's stored applied offset is above the message but not below
 * the partition's end (the broker is asked to confirm what the consumer's
 * cache says): no message of this partition was ever applied there.  The
 * topic was deleted and recreated (its offsets restarted at 0 while Redis
 * kept the old ones) or the key was written by hand.  Passing the message
 * over would drop a new update unseen, so it is judged instead - the
 * anti-rollback check against the stored state still holds - and the
 * handler's write replaces the stale offset.  Logged at error, counted.
 * Cost: one broker round trip, only on this path. */
static int applied_ahead_of_topic(gov_processor_t *p, const gov_processor_msg_t *m,
                                  int64_t applied) {
    const gov_kafka_msg_t *km = m->kafka;
    int64_t end = gov_kafka_consumer_end(p->consumer, km->topic, km->partition, 0, 5000);
    if (end < 0 || applied < end)
        return 0;
    end = gov_kafka_consumer_end(p->consumer, km->topic, km->partition, 1, 5000);
    if (end < 0 || applied < end)
        return 0;
    char part[16], off[32], stored[32], ends[32];
    snprintf(part, sizeof part, "%d", (int)km->partition);
    snprintf(off, sizeof off, "%lld", (long long)km->offset);
    snprintf(stored, sizeof stored, "%lld", (long long)applied);
    snprintf(ends, sizeof ends, "%lld", (long long)end);
    gov_log(GOV_LOG_ERROR,
            "tenant's applied offset is beyond the end of the partition: the topic was deleted and "
            "recreated or the key was written by hand; judging the message instead of passing it over",
            "tenant", json_string_value(json_object_get(m->event, "tenant")), "topic", km->topic,
            "partition", part, "offset", off, "applied", stored, "partition_end", ends,
            (const char *)NULL);
    gov_metric_inc(p->m_applied_ahead, (const char *[]){p->spec->name, km->topic, "applied"}, 1);
    applied_slot_t *slot = applied_slot_of(p, m);
    if (slot != NULL)
        slot->tenant[0] = 0;   /* re-learned from the handler's write */
    return 1;
}

/* gov_processor_applied; with to_stored, the remembered offset is raised to
 * applied_before when that is higher (a writer that never lowers the stored
 * offset: what Redis holds is then what is applied).  gov-audit's script
 * sets the offset of every message, so there the message's offset is what
 * is applied after it. */
static int note_applied(gov_processor_t *p, const gov_processor_msg_t *m, int64_t applied_before,
                        int to_stored) {
    const char *tenant = json_string_value(json_object_get(m->event, "tenant"));
    const gov_kafka_msg_t *km = m->kafka;
    applied_slot_t *slot = applied_slot_of(p, m);
    if (slot == NULL || applied_before == GOV_STATE_APPLIED_UNKNOWN)
        return 0;
    int known = slot->tenant[0] && strcmp(slot->tenant, tenant) == 0 &&
                strcmp(slot->topic, km->topic) == 0 && slot->partition == km->partition;
    if (known && !m->replay && applied_before < slot->offset) {
        /* The tenant's keys went back while the partition watermark did not:
         * its hash slot lost writes (a Redis Cluster failover, a restored
         * key).  Rebuild the partition from what the tenant still has. */
        char part[16], had[32], now[32];
        snprintf(part, sizeof part, "%d", (int)km->partition);
        snprintf(had, sizeof had, "%lld", (long long)slot->offset);
        snprintf(now, sizeof now, "%lld", (long long)applied_before);
        gov_log(GOV_LOG_WARN, "a tenant's applied offset went back: its keys lost writes; rebuilding the partition from Kafka",
                "tenant", tenant, "topic", km->topic, "partition", part, "applied", had,
                "found", now, (const char *)NULL);
        part_state_t *ps = part_find(p, km->topic, km->partition, 0);
        slot->tenant[0] = 0;   /* re-learned from the replay */
        if (ps == NULL)
            return 0;
        int64_t last = ps->expected > slot->offset ? ps->expected : slot->offset;
        rebuild(p, ps, applied_before, last);
        p->rebuilt_now = 1;
        ps->moved = 1;
        return 1;
    }
    snprintf(slot->tenant, sizeof slot->tenant, "%s", tenant);
    snprintf(slot->topic, sizeof slot->topic, "%s", km->topic);
    slot->partition = km->partition;
    int64_t now_applied = to_stored && applied_before > (int64_t)km->offset
                              ? applied_before : (int64_t)km->offset;
    if (!known || now_applied > slot->offset)
        slot->offset = now_applied;
    return 0;
}

int gov_processor_applied(gov_processor_t *p, const gov_processor_msg_t *m,
                          int64_t applied_before) {
    return note_applied(p, m, applied_before, 0);
}

gov_err_t gov_processor_tenant_applied(gov_processor_t *p, const gov_processor_msg_t *m,
                                       int *redelivered, char *errbuf, size_t errbuf_size) {
    gov_state_pos_t pos = gov_processor_position(p, m);
    int64_t applied = -1;
    *redelivered = 0;
    gov_err_t err = gov_state_applied_read(p->redis, &pos, &applied, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    if (applied > pos.offset && applied_ahead_of_topic(p, m, applied))
        return GOV_OK;
    /* the stored offset only grows here (a message below it is passed
     * over, not written): it is what is applied for the tenant */
    if (note_applied(p, m, applied, 1)) {
        snprintf(errbuf, errbuf_size, "tenant's applied offset went back; rebuilding");
        return GOV_ERR_STATE;
    }
    /* At the applied offset itself the write landed but what follows it
     * (announcing an accepted state) may not have: the handler finishes
     * it.  Below it, a later message of the tenant was judged after this
     * one was finished (a partition is processed in order): nothing left. */
    *redelivered = applied == pos.offset;
    if (applied <= pos.offset)
        return GOV_OK;
    char part[16], off[32], stored[32];
    snprintf(part, sizeof part, "%d", (int)pos.partition);
    snprintf(off, sizeof off, "%lld", (long long)pos.offset);
    snprintf(stored, sizeof stored, "%lld", (long long)applied);
    gov_log(GOV_LOG_INFO, "message already applied for its tenant; finished without judging it again",
            "tenant", pos.tenant, "topic", pos.topic, "partition", part, "offset", off,
            "applied", stored, (const char *)NULL);
    gov_metric_inc(p->m_already_applied, (const char *[]){p->spec->name, pos.topic}, 1);
    return GOV_ERR_DUPLICATE;
}

uint64_t gov_processor_rebuilds(const gov_processor_t *p) {
    return p->rebuilds;
}

int64_t gov_processor_msg_time_us(const gov_processor_msg_t *m) {
    return m->kafka->timestamp_ms >= 0 ? m->kafka->timestamp_ms * 1000 : gov_now_micros();
}

gov_state_pos_t gov_processor_position(const gov_processor_t *p, const gov_processor_msg_t *m) {
    return (gov_state_pos_t){p->kafka_group, m->kafka->topic, m->kafka->partition,
                             (int64_t)m->kafka->offset,
                             json_string_value(json_object_get(m->event, "tenant"))};
}

void gov_processor_run(gov_processor_t *p, gov_processor_handler_t handler, void *ctx) {
    while (gov_processor_running(p)) {
        gov_processor_msg_t m;
        if (gov_processor_next(p, &m) != GOV_OK)
            continue;
        char eb[512] = "";
        gov_reason_t reason = GOV_REASON_NONE;
        gov_err_t e = handler(ctx, p, &m, &reason, eb, sizeof eb);
        gov_processor_done(p, &m, e, reason, eb);
    }
}

/* The poison message kept while a batch was held: dead-lettered now that
 * the batch before it is finished (its partition's order is kept: the
 * batch stopped at it). */
static void finish_pending(gov_processor_t *p) {
    if (p->pending_km == NULL)
        return;
    gov_kafka_msg_t *km = p->pending_km;
    p->pending_km = NULL;
    p->replaying = p->pending_replay;
    dead_letter(p, km, p->pending_reason, p->pending_detail);   /* failed: rewound */
    gov_kafka_msg_free(km);
}

/* Is (topic, partition) among the n partitions listed in topics/parts? */
static int part_listed(const gov_kafka_msg_t *const *kms, size_t n, const gov_kafka_msg_t *km) {
    for (size_t i = 0; i < n; i++)
        if (kms[i] && kms[i]->partition == km->partition && strcmp(kms[i]->topic, km->topic) == 0)
            return (int)i + 1;
    return 0;
}

/* gov_processor_done for a batch, in the batch's order.  A partition's
 * offsets are stored message by message, its watermark written once, after
 * its last applied message (one SET ... GET per partition and batch, not
 * per message).  A transient failure - or a poison message the DLQ did
 * not take - rewinds its partition to that message and the partition's
 * later messages in the batch are left alone (the rewind delivers them
 * again; they were applied or not - a replay of an applied one is a
 * duplicate).  The back-off is not slept here: gov_processor_run_batch
 * sleeps once per batch, after every stopped partition was rewound.
 * Cost: one Redis command per partition, plus what a poison or failed
 * message costs alone. */
static void done_batch(gov_processor_t *p, gov_processor_msg_t *msgs, size_t n,
                       const gov_err_t *results, const gov_reason_t *reasons,
                       const char *detail, const gov_kafka_msg_t **last,
                       const gov_kafka_msg_t **stopped) {
    size_t nlast = 0, nstopped = 0;
    for (size_t i = 0; i < n; i++) {
        gov_processor_msg_t *m = &msgs[i];
        gov_kafka_msg_t *km = m->kafka;
        if (part_listed(stopped, nstopped, km))
            continue;
        int li = part_listed(last, nlast, km);
        p->replaying = m->replay;
        gov_err_t result = results[i];
        switch (result_kind(result)) {
        case RESULT_DONE:
            gov_kafka_consumer_store(p->consumer, km);
            if (li)
                last[li - 1] = km;
            else
                last[nlast++] = km;
            finished(p, m, result);
            break;
        case RESULT_POISON:
            if (dead_letter_result(p, m, result, reasons[i]) == GOV_OK) {
                /* its watermark write covers the partition's earlier messages */
                if (li)
                    last[li - 1] = NULL;
                break;
            }
            /* The DLQ did not take it: rewound to it, so the partition
             * stops here - storing a later message's offset would commit
             * past a poison that never reached the DLQ (REVIEW12 M6). */
            if (li) {
                watermark_note(p, last[li - 1]);
                last[li - 1] = NULL;
            }
            stopped[nstopped++] = km;
            break;
        default: {
            if (li) {
                watermark_note(p, last[li - 1]);
                last[li - 1] = NULL;
            }
            stopped[nstopped++] = km;
            part_state_t *ps = part_find(p, km->topic, km->partition, 0);
            if (result == GOV_ERR_STATE && ((ps && ps->moved) || check_partition(p, ps)))
                break;   /* the partition was moved back: no rewind */
            if (result == GOV_ERR_REDIS)
                tenant_blocked(p, m, detail);
            rewind_later(p, km, detail && detail[0] ? detail : gov_err_str(result));
            break;
        }
        }
    }
    for (size_t i = 0; i < nlast; i++)
        if (last[i])
            watermark_note(p, last[i]);
    /* The poison held behind this batch comes after every message of its
     * partition here: when that partition stopped (rewound, or moved back
     * for a rebuild), the seek delivers the poison again in its order, so
     * it is dropped now - dead-lettering it would store its offset above
     * messages not applied (REVIEW12 H1), and twice. */
    if (p->pending_km != NULL && part_listed(stopped, nstopped, p->pending_km)) {
        gov_kafka_msg_free(p->pending_km);
        p->pending_km = NULL;
    }
    p->rebuilt_now = 0;
    for (size_t i = 0; i < n; i++) {
        gov_metric_observe(p->m_duration, (const char *[]){p->spec->name},
                           (double)(gov_mono_micros() - msgs[i].started_us) / 1e6);
        json_decref(msgs[i].event);
        gov_kafka_msg_free(msgs[i].kafka);
        memset(&msgs[i], 0, sizeof msgs[i]);
    }
}

gov_err_t gov_processor_run_batch(gov_processor_t *p, gov_processor_batch_handler_t handler,
                                  void *ctx, const gov_processor_batch_limits_t *limits) {
    gov_err_t err = GOV_OK;
    size_t max = limits->max_count > 0 ? limits->max_count : 1;
    gov_processor_msg_t *msgs = gov_calloc(max, sizeof *msgs);
    gov_err_t *results = gov_calloc(max, sizeof *results);
    gov_reason_t *reasons = gov_calloc(max, sizeof *reasons);
    const gov_kafka_msg_t **last = gov_calloc(max, sizeof *last);
    const gov_kafka_msg_t **stopped = gov_calloc(max, sizeof *stopped);
    if (msgs == NULL || results == NULL || reasons == NULL || last == NULL || stopped == NULL) {
        gov_log(GOV_LOG_ERROR, "out of memory for the batch arrays", (const char *)NULL);
        err = GOV_ERR_NOMEM;
        goto out;
    }
    while (gov_processor_running(p)) {
        p->batch_held = 0;
        if (next_msg(p, &msgs[0], 200) != GOV_OK)
            continue;
        size_t n = 1, bytes = msgs[0].kafka->len;
        p->batch_held = 1;
        int64_t until = gov_mono_micros() + (int64_t)limits->linger_ms * 1000;
        /* Take what else arrives within the linger, up to the bounds; a
         * poison message ends the batch (it waits in pending_km). */
        while (n < max && bytes < limits->max_bytes && gov_processor_running(p)) {
            int64_t left_us = until - gov_mono_micros();
            if (next_msg(p, &msgs[n], left_us > 0 ? (int)((left_us + 999) / 1000) : 0) != GOV_OK)
                break;
            bytes += msgs[n].kafka->len;
            p->batch_held = ++n;
        }
        p->batch_held = 0;
        for (size_t i = 0; i < MAX_PARTS; i++)
            p->parts[i].moved = 0;
        p->rebuilt_now = 0;
        char eb[512] = "";
        for (size_t i = 0; i < n; i++) {
            results[i] = GOV_ERR_INTERNAL;
            reasons[i] = GOV_REASON_NONE;
        }
        gov_metric_observe(p->m_batch, (const char *[]){p->spec->name}, (double)n);
        handler(ctx, p, msgs, n, results, reasons, eb, sizeof eb);
        done_batch(p, msgs, n, results, reasons, eb, last, stopped);
        finish_pending(p);
        backoff_sleep(p);   /* once per batch, after every stopped partition was rewound */
    }
out:
    gov_free(msgs);
    gov_free(results);
    gov_free(reasons);
    gov_free(last);
    gov_free(stopped);
    return err;
}

int gov_processor_shutdown(gov_processor_t *p) {
    gov_log(GOV_LOG_INFO, "shutting down", (const char *)NULL);
    /* Readiness is no longer kept up to date from here on: stop answering
     * it before the consumer's final commit, which can take as long as the
     * broker does.  The consumer closes (and commits) while Redis and the
     * producer are still up; the runtime then frees the rest. */
    gov_runtime_stop_admin(p->rt);
    gov_kafka_consumer_close(p->consumer);
    p->consumer = NULL;
    /* The runtime borrows p's spec copy and frees p's string rows: it goes
     * first. */
    int code = gov_runtime_shutdown(p->rt, 0);
    free_processor(p);
    return code;
}
