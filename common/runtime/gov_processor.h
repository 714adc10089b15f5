/* gov_processor.h - the runtime every Kafka -> Redis processor shares.
 *
 * A processor's main.c reads top to bottom:
 *
 *   gov_processor_t *p;
 *   if (gov_processor_init(&p, &spec, extra_cfg, n_extra, argc, argv) ...)
 *   gov_processor_run(p, materialize, &ctx);   // next -> materialize -> done
 *   return gov_processor_shutdown(p);
 *
 * where the loop gov_processor_run drives is, spelled out:
 *
 *   while (gov_processor_running(p)) {
 *       gov_processor_msg_t m;
 *       if (gov_processor_next(p, &m) != GOV_OK) continue;   // poll + decode
 *       gov_err_t e = materialize(ctx, p, &m, &reason, eb, sizeof eb);
 *       gov_processor_done(p, &m, e, reason, eb);            // commit/DLQ/retry
 *   }
 *
 * What the runtime does for the processor:
 *   - start-up through gov_runtime: the shared rows every processor has
 *     (Kafka, Redis, admin address, log level, component name) plus
 *     kafka_group, dlq_timeout, retry_max and the processor's own rows;
 *     logging, metrics registry, component status, the admin HTTP server,
 *     Redis and an idempotent producer;
 *   - a consumer (group = config kafka_group);
 *   - decoding: a message that does not decode (bad framing, unknown
 *     fingerprint, body that fails validation), whose schema is not one the
 *     topic carries, or whose key is not its tenant, is a poison message: it
 *     is produced unchanged to <topic>.dlq with headers saying why and
 *     where from, waited for (acks=all), counted and logged with its offset,
 *     and only then is its offset stored.  Nothing is silently dropped.
 *   - once a message's effect is durable, its offset is stored and the
 *     partition's watermark gov:offsets:<group>:<topic>:<partition> is set
 *     in Redis (one SET ... GET, after the tenant's script);
 *   - gov_processor_done maps the handler's result:
 *       GOV_OK, GOV_ERR_DUPLICATE -> store the offset (materialized)
 *       GOV_ERR_VERIFY, GOV_ERR_PARSE, GOV_ERR_INVALID_ARG, GOV_ERR_TOO_LARGE,
 *       GOV_ERR_UNSUPPORTED       -> poison: DLQ, then store the offset
 *                                    (a DLQ that does not take it: as
 *                                    transient)
 *       anything else             -> transient: rewind to the message and
 *                                    back off; it is delivered again
 *   - SIGTERM/SIGINT stop the loop; shutdown commits and closes cleanly;
 *   - lost writes: a watermark found missing or lower than written (Redis
 *     flushed, an older snapshot, a failover) rebuilds the partition from
 *     Kafka (config rebuild_check; processor_rebuilds_total); replayed
 *     messages carry m->replay;
 *   - readiness: Redis answers PING and the consumer has its assignment;
 *     a tenant whose write fails with a data error (WRONGTYPE: one of its
 *     keys has the wrong type) shows as component tenant:<T>, degraded,
 *     naming the key, until a write of it succeeds - the message is retried
 *     meanwhile (its partition waits; nothing is skipped), logged at error
 *     once with the key and counted every time in
 *     processor_tenant_write_errors_total{processor,tenant};
 *   - processor_events_total{processor,topic,outcome},
 *     processor_consumer_lag{processor,topic,partition},
 *     processor_rebuilds_total{processor,topic,partition},
 *     processor_already_applied_total{processor,topic},
 *     processor_materialize_duration_seconds{processor},
 *     processor_batch_messages{processor} (batching processors only).
 *
 * Thread-safety: one processor per process; all calls from the main thread.
 */
#ifndef GOV_PROCESSOR_H
#define GOV_PROCESSOR_H

#include <jansson.h>
#include <stddef.h>

#include "gov_admin.h"
#include "gov_avro.h"
#include "gov_config.h"
#include "gov_err.h"
#include "gov_kafka.h"
#include "gov_metrics.h"
#include "gov_reason.h"
#include "gov_redis.h"
#include "gov_runtime.h"
#include "gov_state.h"
#include "gov_util.h"

/* Which schemas a topic may carry. */
typedef struct gov_processor_topic {
    const char *topic;
    const char *const *schemas;  /* NULL-terminated schema names */
    int key_is_tenant;           /* 1: the Kafka key must equal event.tenant */
    /* optional, read after loading: 0 leaves the topic unsubscribed (a
     * deployment's choice, such as gov-audit's relay); NULL: always read. */
    const int *enabled;
} gov_processor_topic_t;

#define GOV_PROCESSOR_MAX_TOPICS 8

/* What a processor is: its name, admin port and topics, written in place:
 *   {.name = "gov-x", .default_admin_port = 8709,
 *    .topics = {{"topic.a", GOV_PROCESSOR_SCHEMAS("SchemaA"), 1}}}
 * The topic list ends at the first entry without a topic. */
typedef struct gov_processor_spec {
    const char *name;                       /* "gov-audit" */
    unsigned default_admin_port;            /* 8701..8709 */
    gov_processor_topic_t topics[GOV_PROCESSOR_MAX_TOPICS];
    /* Topics whose handler writes to Kafka only (a relay), NULL-terminated
     * (may be NULL): their progress is the consumer group's committed
     * offset alone - their Redis watermark is written but never rebuilt
     * from, since a replay would write to Kafka again - and a new group
     * starts at their earliest retained message (nothing is skipped; the
     * handler must make a second copy harmless). */
    const char *const *kafka_only;
    /* optional, read after loading: the consumer's fetch.wait.max.ms and
     * fetch.min.bytes (librdkafka's 500 and 1 otherwise).  A broker answers
     * a fetch as soon as fetch.min.bytes are there: with 1, a busy topic
     * costs it one fetch response per few messages. */
    const long *fetch_wait_max_ms;
    const long *fetch_min_bytes;
} gov_processor_spec_t;

/* A NULL-terminated schema-name list for gov_processor_topic_t.schemas. */
#define GOV_PROCESSOR_SCHEMAS(...) ((const char *const[]){__VA_ARGS__, NULL})

typedef struct gov_processor_msg {
    gov_kafka_msg_t *kafka;   /* owned by the runtime until _done */
    json_t *event;            /* decoded event (owned by the runtime) */
    const char *type;         /* schema name, borrowed */
    char source[300];         /* "<topic>/<partition>/<offset>" */
    int64_t started_us;
    int replay;               /* 1: this message was applied before and is
                                 replayed to rebuild Redis (lost writes):
                                 materialize it, announce nothing */
} gov_processor_msg_t;

typedef struct gov_processor gov_processor_t;

/* Reads configuration (base + extra table), starts logging, metrics, the
 * admin server, Redis and Kafka.  Returns GOV_OK and a new processor, or an
 * error after printing why; *exit_code says what main should return when the
 * result is not GOV_OK (0 for --help/--print-config, 2 for usage errors, 1
 * for failures). */
gov_err_t gov_processor_init(gov_processor_t **out, const gov_processor_spec_t *spec,
                             const gov_config_entry_t *extra, size_t nextra,
                             int argc, char **argv, int *exit_code);

/* 1 until a stop signal arrived. */
int gov_processor_running(gov_processor_t *p);

/* Polls for the next message and decodes it.  GOV_OK: m holds a decoded
 * event that the caller must finish with gov_processor_done.  Anything else:
 * nothing to do now (timeout, or the message was poison and has been sent to
 * the DLQ). */
gov_err_t gov_processor_next(gov_processor_t *p, gov_processor_msg_t *m);

/* Finishes m according to the handler's result (see above).  reason: the
 * x-gov-dlq-reason of a poison result; GOV_REASON_NONE means the result's
 * gov_err_code().  detail (may be NULL, borrowed): what a transient failure
 * is logged with when the message is retried; NULL logs gov_err_str(). */
void gov_processor_done(gov_processor_t *p, gov_processor_msg_t *m,
                        gov_err_t result, gov_reason_t reason, const char *detail);

/* What a processor does with one decoded message: verify it and materialize
 * it (through gov_state, offset included).  Returns the result that
 * gov_processor_done maps; *reason (GOV_REASON_NONE on entry) may name the
 * x-gov-dlq-reason of a poison result, and errbuf holds the detail logged
 * with a retry.  ctx is the processor's own state, borrowed. */
typedef gov_err_t (*gov_processor_handler_t)(void *ctx, gov_processor_t *p,
                                             gov_processor_msg_t *m, gov_reason_t *reason,
                                             char *errbuf, size_t errbuf_size);

/* The loop every processor runs until a stop signal: next -> handler ->
 * done.  Returns when gov_processor_running(p) is 0. */
void gov_processor_run(gov_processor_t *p, gov_processor_handler_t handler, void *ctx);

/* Batches (gov-audit): how many messages one handler call takes at most -
 * by count, by bytes (the message that crosses max_bytes is the last) - and
 * how long, after the first, to wait for more (linger_ms; what is already
 * fetched is taken without waiting). */
typedef struct gov_processor_batch_limits {
    size_t max_count;
    size_t max_bytes;
    long linger_ms;
} gov_processor_batch_limits_t;

/* What a processor does with a batch of decoded messages msgs[0..n), in
 * their consumed order: apply them and set results[i] (and reasons[i] for a
 * poison result) as a per-message handler's return value would be;
 * results[] enter as GOV_ERR_INTERNAL (a message left so is retried),
 * reasons[] as GOV_REASON_NONE.  errbuf: the detail logged with retries.
 * A handler must apply a partition's messages in order and must not apply
 * a message after one of its partition that it failed transiently (the
 * partition is rewound to that one). */
typedef void (*gov_processor_batch_handler_t)(void *ctx, gov_processor_t *p,
                                              gov_processor_msg_t *msgs, size_t n,
                                              gov_err_t *results, gov_reason_t *reasons,
                                              char *errbuf, size_t errbuf_size);

/* gov_processor_run with batches: collects up to limits' bounds (the
 * lost-write check runs before the batch's first message), calls handler
 * once, then finishes the messages in order - offsets stored per message,
 * each partition's watermark written once after its last applied message,
 * a transient failure (or a poison result the DLQ did not take) rewinding
 * its partition there; the batch then backs off once, however many
 * partitions it rewound.  A poison message met while collecting ends the
 * batch and is dead-lettered after it - or dropped, when its partition was
 * rewound in the batch (the rewind delivers it again in order) - so no
 * offset is ever stored above a message not yet applied.  Returns GOV_OK
 * when gov_processor_running(p) is 0, GOV_ERR_NOMEM at once when the
 * batch's arrays cannot be allocated. */
gov_err_t gov_processor_run_batch(gov_processor_t *p, gov_processor_batch_handler_t handler,
                                  void *ctx, const gov_processor_batch_limits_t *limits);

/* Stops the loop, commits, closes everything.  Returns the exit code. */
int gov_processor_shutdown(gov_processor_t *p);

/* Borrowed handles for the handler. */
gov_redis_t *gov_processor_redis(gov_processor_t *p);
gov_kafka_producer_t *gov_processor_producer(gov_processor_t *p);
gov_metrics_t *gov_processor_metrics(gov_processor_t *p);
gov_status_t *gov_processor_status(gov_processor_t *p);
const gov_avro_registry_t *gov_processor_avro(gov_processor_t *p);
/* This deployment's component name (config component_name, by default the
 * binary's name): the `component` of its audit events. */
const char *gov_processor_name(gov_processor_t *p);

/* The id of an event this processor emits because of the input event
 * `event_id`: a UUIDv7 derived from "<component>/<event_id>/<action>", so a
 * replay or a replica re-emits the same id (consumers deduplicate), while a
 * separate deployment sharing the topics emits its own. */
gov_err_t gov_processor_derive_id(gov_processor_t *p, uint64_t unix_ms, const char *event_id,
                                  const char *action, char out[GOV_UUID_STRLEN + 1]);

/* Per-tenant lost-write detection: a handler whose tenant script reported
 * the tenant's applied offset as Redis held it before the write
 * (applied_before: -1 none; GOV_STATE_APPLIED_UNKNOWN is ignored) passes it
 * here.  The processor remembers the last offset it applied per (tenant,
 * topic, partition) (a bounded table); a stored offset lower than that
 * means the tenant's hash slot lost writes while the partition watermark
 * did not: the partition is rebuilt from applied_before (as for a lost
 * watermark; processor_rebuilds_total) and 1 is returned - the handler then
 * returns GOV_ERR_STATE, and the message comes again in the replay.  0
 * otherwise (the offset is remembered). */
int gov_processor_applied(gov_processor_t *p, const gov_processor_msg_t *m,
                          int64_t applied_before);

/* The per-tenant applied-offset check of a handler that judges before it
 * writes (gov-constitution, gov-rulepacks): reads the tenant's applied
 * offset for m's partition (gov_state_applied_read) and checks it as
 * gov_processor_applied does - except that the offset remembered for the
 * tenant becomes the stored one when that is higher (these writers never
 * lower it).
 *   GOV_OK, *redelivered 0: not applied yet, judge it;
 *   GOV_OK, *redelivered 1: m is the tenant's applied offset itself - its
 *     write landed, and what follows a write may not have (a crash before
 *     an accepted state was announced): judge it to finish that, but
 *     count and announce no rejection again (a rejection's offset is
 *     written after its audit event was acknowledged);
 *   GOV_ERR_DUPLICATE: below the applied offset - a later message of the
 *     tenant was judged after this one was finished (a rewound or rebuilt
 *     partition, the tenant's slot intact): the handler returns it at once,
 *     writing and announcing nothing (logged, counted in
 *     processor_already_applied_total{processor,topic});
 *   GOV_ERR_STATE: the tenant's slot lost writes, the partition is being
 *     rebuilt (return it); or the Redis error.
 * An applied offset above m that is not below the partition's end (the
 * broker confirms it) was never an offset of this topic: it was deleted and
 * recreated, or the key was written by hand.  Then m is judged (GOV_OK,
 * *redelivered 0), logged at error and counted in
 * processor_offset_ahead_total{processor,topic,kind="applied"}: passing it over
 * would drop a new update unseen.
 * Cost: one GET (and one broker round trip on that path). */
gov_err_t gov_processor_tenant_applied(gov_processor_t *p, const gov_processor_msg_t *m,
                                       int *redelivered, char *errbuf, size_t errbuf_size);

/* How many times Redis was found to have lost writes since start (each
 * rebuild of a partition counts): a handler that caches what it read from
 * Redis drops the cache when this moves. */
uint64_t gov_processor_rebuilds(const gov_processor_t *p);

/* The time the message was appended to Kafka (its timestamp), in µs since
 * the epoch; the clock when it has none.  What a materialized "accepted at"
 * records, so a rebuild from Kafka restores the same value. */
int64_t gov_processor_msg_time_us(const gov_processor_msg_t *m);

/* The message's position (consumer group, topic, partition, offset, the
 * event's tenant) for gov_state's writers, which write the tenant's applied
 * offset with the state.  The strings are borrowed from p and m: valid until
 * gov_processor_done. */
gov_state_pos_t gov_processor_position(const gov_processor_t *p, const gov_processor_msg_t *m);

#endif /* GOV_PROCESSOR_H */
