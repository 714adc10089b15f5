/* gov_kafka.h - the Kafka producer and consumer every binary uses.
 *
 * Producer: idempotent (enable.idempotence=true, acks=all).  A background
 * thread serves delivery reports, so callers never poll.  Two ways to send:
 *   gov_kafka_produce       fire-and-track: returns once queued; a delivery
 *                           failure is counted (gov_kafka_producer_failed)
 *                           and logged - for the decision log, which must
 *                           not delay an answer (a full local queue fails
 *                           it at once, never waits: it runs on gov-edge's
 *                           HTTP threads; groups likewise);
 *   gov_kafka_produce_sync  waits until the broker acknowledged the message
 *                           (acks=all) or the timeout ran out - for the
 *                           fail-closed paths that may block (DLQ, govctl);
 *   gov_kafka_group_*       a group of messages with one completion callback,
 *                           called once when every message is acknowledged
 *                           or when one has failed for good - for the
 *                           fail-closed paths that must not hold a thread
 *                           while they wait (gov-edge's token issuance);
 *                           a single message is a group of one.
 *
 * A producer that librdkafka puts in its fatal state (rd_kafka_fatal_error:
 * e.g. the broker's sequence state for its producer id disagrees with its
 * own) is recreated in place, logged once at error level ("kafka producer
 * fatal error; recreating the producer") and counted
 * (kafka_producer_recreated_total).  Messages queued on the old handle fail
 * with an error delivery report; callers retry as for any failure.  After
 * GOV_KAFKA_RECREATE_LIMIT recreations within GOV_KAFKA_RECREATE_WINDOW_S
 * seconds, a further fatal error makes it give up: every produce then
 * returns GOV_ERR_KAFKA ("kafka producer gave up: ...; restart the
 * process") and the status component "kafka_producer" is ERROR.
 *
 * Consumer: a consumer-group member with enable.auto.offset.store=false.
 * The processor calls gov_kafka_consumer_store(msg) only after the Redis
 * write that materializes the message succeeded; the stored offsets are
 * committed in the background and synchronously when partitions are revoked
 * and at close, so a rebalance or a clean stop never re-delivers what was
 * materialized, and a crash re-delivers at most what was not committed
 * (materialization is idempotent, so that is harmless).
 *
 * A group's outcome is always definite: librdkafka reports every message,
 * acknowledged or failed, within message.timeout.ms (a timed-out one is
 * GOV_ERR_TIMEOUT), a message of a handle recreated after a fatal error
 * fails with it (it is not produced again behind the group's back), and
 * gov_kafka_producer_free fails what it could not flush - so the callback
 * always comes, exactly once.
 *
 * Thread-safety: a producer is thread-safe.  A group is used by one thread
 * until it is sealed.  A consumer belongs to the one
 * thread that polls it.
 */
#ifndef GOV_KAFKA_H
#define GOV_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_metrics.h"
#include "gov_status.h"

typedef struct gov_kafka_producer gov_kafka_producer_t;
typedef struct gov_kafka_consumer gov_kafka_consumer_t;

/* Fatal errors: at most this many recreations of the producer's handle
 * within this window; the next fatal error within it is final. */
#define GOV_KAFKA_RECREATE_LIMIT 5
#define GOV_KAFKA_RECREATE_WINDOW_S 60

/* A header for produce calls; name and value are borrowed. */
typedef struct gov_kafka_header {
    const char *name;
    const void *value;
    size_t len;
} gov_kafka_header_t;

/* --- producer ------------------------------------------------------------ */

/* brokers: bootstrap list; client_id: the binary's name.  Extra librdkafka
 * properties may be given as a NULL-terminated list of name, value pairs
 * (may be NULL). */
gov_err_t gov_kafka_producer_new(const char *brokers, const char *client_id,
                                 const char *const *extra_conf,
                                 gov_kafka_producer_t **out, char *errbuf,
                                 size_t errbuf_size);
/* Flushes for up to flush_timeout_ms, fails what is left (every waiter and
 * group hears of it), then frees.  NULL is a no-op. */
void gov_kafka_producer_free(gov_kafka_producer_t *p, int flush_timeout_ms);

/* Queues one message (key, value and headers are copied). */
gov_err_t gov_kafka_produce(gov_kafka_producer_t *p, const char *topic,
                            const void *key, size_t key_len, const void *value,
                            size_t len, const gov_kafka_header_t *headers,
                            size_t nheaders);

/* Sends one message and waits for its acknowledgement (acks=all).  GOV_OK
 * means the broker has it; GOV_ERR_TIMEOUT or GOV_ERR_KAFKA (reason in
 * errbuf) means it was not sent and never will be: the wait is at least the
 * producer's message.timeout.ms (default 10 s) + 2 s, so the outcome is
 * definite when this returns.  On success *partition and *offset
 * (each may be NULL) receive where the message was written. */
gov_err_t gov_kafka_produce_sync(gov_kafka_producer_t *p, const char *topic,
                                 const void *key, size_t key_len,
                                 const void *value, size_t len,
                                 const gov_kafka_header_t *headers,
                                 size_t nheaders, int timeout_ms,
                                 int32_t *partition, int64_t *offset, char *errbuf,
                                 size_t errbuf_size);

/* --- groups: asynchronous completion ------------------------------------------- */

typedef struct gov_kafka_group gov_kafka_group_t;

/* The outcome of a group: GOV_OK when every message was acknowledged
 * (acks=all); else the first failure - GOV_ERR_TIMEOUT (message.timeout.ms
 * ran out), GOV_ERR_KAFKA (refused, purged by a fatal-error recreation, the
 * producer gave up), GOV_ERR_NOMEM - with detail (borrowed, valid during the
 * call).  Runs once, on the producer's delivery-report thread, or on the
 * thread of gov_kafka_group_seal when the outcome is known by then (a
 * message could not be queued, or every report came before the seal).  It
 * must not block: it is called with no lock of the producer held, but every
 * delivery report of the process waits behind it. */
typedef void (*gov_kafka_group_fn)(void *arg, gov_err_t err, const char *detail);

/* A new, empty group whose outcome goes to fn(arg) (arg borrowed: it must
 * live until fn ran).  GOV_ERR_NOMEM. */
gov_err_t gov_kafka_group_new(gov_kafka_producer_t *p, gov_kafka_group_fn fn, void *arg,
                              gov_kafka_group_t **out);
/* Queues one message of g (key, value and headers are copied).  GOV_OK, or
 * the error that failed the group (it was not queued; the group's outcome
 * is that error, and once failed a group queues nothing more).  Only
 * before gov_kafka_group_seal. */
gov_err_t gov_kafka_group_produce(gov_kafka_group_t *g, const char *topic, const void *key,
                                  size_t key_len, const void *value, size_t len,
                                  const gov_kafka_header_t *headers, size_t nheaders);
/* Fails g with err and detail (copied) unless it already failed: for a
 * member the caller could not even build.  Only before the seal. */
void gov_kafka_group_fail(gov_kafka_group_t *g, gov_err_t err, const char *detail);
/* Closes g: no more messages.  Steals the caller's reference: fn is called
 * (here, when the outcome is already known, else later) and g frees itself
 * after the last report.  The caller must not touch g afterwards. */
void gov_kafka_group_seal(gov_kafka_group_t *g);

/* Messages whose delivery failed after queueing, since start. */
uint64_t gov_kafka_producer_failed(gov_kafka_producer_t *p);
/* Times the librdkafka handle was recreated after a fatal error, since
 * start. */
uint64_t gov_kafka_producer_recreated(gov_kafka_producer_t *p);
/* Reports the producer's fatal-error handling: registers
 * kafka_producer_recreated_total (a counter without labels) in reg and
 * counts each recreation there (earlier ones included); when status is not
 * NULL, registers the component "kafka_producer", OK until the producer
 * gives up, then ERROR with the reason (so /readyz shows it).  reg and
 * status are borrowed and must outlive p.  GOV_ERR_NOMEM when a
 * registration failed. */
gov_err_t gov_kafka_producer_report(gov_kafka_producer_t *p, gov_metrics_t *reg,
                                    gov_status_t *status);
/* Puts the current handle in librdkafka's genuine fatal state
 * (rd_kafka_test_fatal_error, OUT_OF_ORDER_SEQUENCE_NUMBER, reason
 * borrowed), for tests of the recovery and give-up paths.  GOV_ERR_KAFKA
 * when the handle is fatal already. */
gov_err_t gov_kafka_producer_test_fatal(gov_kafka_producer_t *p, const char *reason);
/* Waits until every queued message is delivered or failed; GOV_ERR_TIMEOUT
 * if some remain after timeout_ms. */
gov_err_t gov_kafka_producer_flush(gov_kafka_producer_t *p, int timeout_ms);
/* Gives up on every message not yet acknowledged - queued and in flight
 * (rd_kafka_purge) - and serves their delivery reports for up to
 * flush_timeout_ms, so each fails (GOV_ERR_KAFKA, "purged") and every
 * group's callback and every waiter runs now, while the caller's state is
 * still alive: for a stop that cannot wait out message.timeout.ms
 * (gov-edge's shutdown, REVIEW11 M4).  The producer stays usable.  GOV_OK
 * when nothing is left; GOV_ERR_TIMEOUT otherwise.  Cost: bounded by
 * flush_timeout_ms. */
gov_err_t gov_kafka_producer_purge(gov_kafka_producer_t *p, int flush_timeout_ms);
/* Messages refused at once because the local queue was full (by
 * gov_kafka_produce or a group: those never wait; produce_sync waits up
 * to 500 ms for room first), since start. */
uint64_t gov_kafka_producer_queue_full(gov_kafka_producer_t *p);

/* --- consumer ------------------------------------------------------------ */

typedef struct gov_kafka_msg {
    const char *topic;       /* borrowed from the message */
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t len;
    int64_t timestamp_ms;    /* -1 when absent */
    void *priv;              /* the rd_kafka_message_t */
} gov_kafka_msg_t;

/* Joins group_id subscribed to topics[0..ntopics).  New groups start at the
 * earliest offset.  extra_conf as for the producer. */
gov_err_t gov_kafka_consumer_new(const char *brokers, const char *group_id,
                                 const char *client_id,
                                 const char *const *topics, size_t ntopics,
                                 const char *const *extra_conf,
                                 gov_kafka_consumer_t **out, char *errbuf,
                                 size_t errbuf_size);

/* Waits up to timeout_ms for the next message.  Returns GOV_OK with a new
 * message in *msg (free with gov_kafka_msg_free), GOV_ERR_TIMEOUT when none
 * came, or GOV_ERR_KAFKA for a consumer error (logged; keep polling). */
gov_err_t gov_kafka_consumer_poll(gov_kafka_consumer_t *c, int timeout_ms,
                                  gov_kafka_msg_t **msg);
void gov_kafka_msg_free(gov_kafka_msg_t *msg);

/* The last value of header `name` of msg into buf (NUL-terminated, cut to
 * size - 1 bytes): 1 when present, 0 when absent (buf ""). */
int gov_kafka_msg_header(const gov_kafka_msg_t *msg, const char *name, char *buf, size_t size);
/* 1 when msg's timestamp_ms is the broker's append time (the topic's
 * message.timestamp.type is LogAppendTime), 0 when the producer chose it
 * (CreateTime) or it has none: only the former can be trusted as "when it
 * arrived". */
int gov_kafka_msg_log_append_time(const gov_kafka_msg_t *msg);

/* Marks msg as materialized: its offset + 1 will be committed. */
gov_err_t gov_kafka_consumer_store(gov_kafka_consumer_t *c, const gov_kafka_msg_t *msg);

/* Rewinds the partition of msg so that msg is delivered again by the next
 * poll (used when materialization failed and must be retried). */
gov_err_t gov_kafka_consumer_rewind(gov_kafka_consumer_t *c, const gov_kafka_msg_t *msg);

/* 1 when the consumer currently has partitions assigned and has heard from
 * the broker recently (for /readyz). */
int gov_kafka_consumer_healthy(gov_kafka_consumer_t *c);

/* Calls fn for each assigned partition with its lag (high watermark -
 * position; -1 when unknown) and its position (the next offset the consumer
 * fetches; where it started, or the low watermark, when it has fetched
 * nothing yet; -1 when unknown).  Uses cached watermarks: never blocks. */
typedef void (*gov_kafka_lag_fn)(void *opaque, const char *topic,
                                 int32_t partition, int64_t lag, int64_t position);
void gov_kafka_consumer_lag(gov_kafka_consumer_t *c, gov_kafka_lag_fn fn, void *opaque);

/* The end offset (high watermark) of a partition: the consumer's cached
 * value, which a fetch that delivered a message of it has set, or, when
 * that is unknown or `confirm` is set, the broker's answer (waits up to
 * timeout_ms).  -1 when neither is known.  Offsets of one incarnation of a
 * topic stay below it; an offset recorded elsewhere (Redis) that is not
 * below it belongs to a deleted and recreated topic, or was forged. */
int64_t gov_kafka_consumer_end(gov_kafka_consumer_t *c, const char *topic, int32_t partition,
                               int confirm, int timeout_ms);

/* Where an assigned partition starts: an offset >= 0, or one of these. */
#define GOV_KAFKA_OFFSET_BEGINNING (-2)    /* the oldest message kept */
#define GOV_KAFKA_OFFSET_END (-1)          /* after the newest message */
#define GOV_KAFKA_OFFSET_COMMITTED (-1001) /* the group's committed offset
                                              (auto.offset.reset without one) */

/* Called from the poll that receives a partition assignment, once per
 * partition, with the group's committed offset (-1 when there is none or it
 * could not be fetched); returns where the partition starts. */
typedef int64_t (*gov_kafka_assign_fn)(void *opaque, const char *topic, int32_t partition,
                                       int64_t committed);
/* Called from the poll that revokes the assignment, after the commit. */
typedef void (*gov_kafka_revoke_fn)(void *opaque);
/* Sets the assignment hooks (NULL fn: start at the committed offsets;
 * revoke may be NULL).  Call before the first poll; borrowed. */
void gov_kafka_consumer_on_assign(gov_kafka_consumer_t *c, gov_kafka_assign_fn fn,
                                  gov_kafka_revoke_fn revoke, void *opaque);

/* Moves an assigned partition so the next poll delivers `offset` (>= 0, or
 * GOV_KAFKA_OFFSET_BEGINNING).  Waits up to 5 s for the seek. */
gov_err_t gov_kafka_consumer_seek(gov_kafka_consumer_t *c, const char *topic, int32_t partition,
                                  int64_t offset);

/* Commits stored offsets synchronously, leaves the group, frees. */
void gov_kafka_consumer_close(gov_kafka_consumer_t *c);

#endif /* GOV_KAFKA_H */
