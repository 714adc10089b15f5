/* gov_kafka.c - librdkafka producer and consumer with the project's rules.
 *
 * Producer: a dedicated thread calls rd_kafka_poll so delivery reports are
 * served without the caller's help.  A synchronous send carries a small
 * reference-counted waiter as the message opaque: the delivery callback and
 * the waiting caller each hold one reference, so a caller that times out can
 * return while the report is still in flight without either side touching
 * freed memory.  A group (gov_kafka_group_*) is the asynchronous form: the
 * opaque of each of its messages, reference-counted the same way (one per
 * queued message, one for the caller until the seal); a mutex-guarded count
 * of pending reports and the first failure decide its outcome, and the one
 * thread that decides it (a delivery report or the seal) calls its
 * callback, so it runs exactly once and never while the group can still
 * change.  Nobody waits on a thread for it.
 *
 * Fatal errors.  After rd_kafka_fatal_error() a librdkafka producer is
 * unusable for good: every produce fails with "Local: Fatal error".  The
 * idempotent producer gets there when the broker's sequence state for its
 * producer id disagrees with its own (OUT_OF_ORDER_SEQUENCE_NUMBER on the
 * first request in flight - e.g. its id collided with a stale one after a
 * broker was replaced).  So the handle is recreated in place: error_cb flags
 * RD_KAFKA_RESP_ERR__FATAL for the poll thread, and a produce that meets
 * RD_KAFKA_RESP_ERR__FATAL does the same work itself; either takes the write
 * lock, and only the first for a given handle generation acts.  It logs
 * "kafka producer fatal error; recreating the producer" once at error level
 * with librdkafka's reason, builds a new handle from a duplicate of the
 * configuration kept from start-up (rd_kafka_conf_dup before rd_kafka_new),
 * swaps it in, then purges the old handle (queued and in-flight), serves its
 * remaining delivery reports and destroys it.  Callers produce under the
 * read lock.  Messages of the old handle fail with an error delivery report
 * (a synchronous send returns GOV_ERR_KAFKA), so the caller's own retry
 * (the processor loop retries a failed message) sends them again.  A
 * group's message of the old handle fails its group: its caller answers the
 * failure, and re-sending it later would act behind that answer.  An
 * asynchronous message (gov_kafka_produce: nobody waits for it, nobody
 * retries it - gov-edge's decisions) that fails because its handle is fatal
 * is kept by the delivery callback and produced again by the poll thread
 * once the handle works (requeue_keep/requeue_drain; after other messages
 * queued meanwhile).  So nothing is lost, and a purged in-flight message
 * that the broker did write is a duplicate the consumers' idempotent
 * materialization absorbs.
 * kafka_producer_recreated_total counts recreations (gov_kafka_producer_
 * report).  Bounded: when a fatal error comes GOV_KAFKA_RECREATE_LIMIT
 * times more within GOV_KAFKA_RECREATE_WINDOW_S seconds, recreating does not
 * help (the cause is outside the process) - the producer gives up for good:
 * it logs "kafka producer fatal error; giving up", and every produce returns
 * GOV_ERR_KAFKA with that reason in errbuf until the process is restarted,
 * and the status component "kafka_producer" turns ERROR (/readyz).
 *
 * Consumer: offsets are stored explicitly (enable.auto.offset.store=false)
 * and auto-committed from the store; revocation commits synchronously before
 * the partitions are given up.  An optional assignment hook chooses where
 * each assigned partition starts (gov_processor resumes from what Redis
 * says is applied), and a partition can be moved back (seek) to rebuild.  Broker-down errors are tracked so /readyz can
 * report them.
 *
 * What it does not do: transactions (materialization is idempotent instead),
 * schema handling (gov_avro), retries above librdkafka's own, recovery of a
 * consumer's fatal errors (a consumer group member has none to raise
 * without static membership, which we do not use).
 */
#include "gov_kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gov_alloc.h"
#include "gov_log.h"
#include "gov_metrics.h"
#include "gov_time.h"

struct gov_kafka_producer {
    /* The handle is read under the read lock by every caller and the poll
     * thread; a recreation swaps it under the write lock (writer-preferring,
     * so a stream of producers cannot starve it). */
    pthread_rwlock_t lock;
    rd_kafka_t *rk;
    rd_kafka_conf_t *conf;   /* pristine copy taken before rd_kafka_new: each
                              * recreated handle gets a duplicate of it */
    uint64_t generation;     /* bumped by each recreation (write lock) */
    int64_t recreated_at_us[GOV_KAFKA_RECREATE_LIMIT]; /* ring (write lock) */
    size_t recreated_next;
    int gave_up;             /* set under the write lock, read under the read lock */
    char gave_up_reason[384];
    gov_metric_t *m_recreated; /* borrowed; may be NULL (write lock) */
    gov_status_t *status;      /* borrowed; may be NULL (write lock) */
    int message_timeout_ms;  /* librdkafka gives up on a message after this */
    pthread_t poller;
    atomic_int stop;
    atomic_int fatal_pending; /* error_cb saw RD_KAFKA_RESP_ERR__FATAL */
    atomic_uint_fast64_t failed;
    atomic_uint_fast64_t recreated;
    atomic_uint_fast64_t queue_full;   /* refused at once: local queue full */
    atomic_int queue_full_logged;      /* gov_kafka_produce: one line per episode */
    /* async messages failed because their handle turned fatal, kept to be
     * produced again on the recreated handle (requeue_mu; the delivery
     * callback cannot take the handle lock) */
    pthread_mutex_t requeue_mu;
    struct requeued *requeue;
    atomic_int requeue_pending;
};

/* One message to produce again: its topic, key and value follow it. */
typedef struct requeued {
    struct requeued *next;
    rd_kafka_headers_t *hdrs;   /* owned; NULL when none */
    size_t topic_len, key_len, len;
    int has_key;
    char data[];
} requeued_t;

/* What a message's opaque points to: a waiter (gov_kafka_produce_sync) or
 * a group (gov_kafka_group_*); the tag tells the delivery callback which.
 * NULL: an asynchronous message nobody waits for. */
enum { OPAQUE_WAITER = 1, OPAQUE_GROUP = 2 };

typedef struct sync_waiter {
    int tag;                 /* OPAQUE_WAITER; first member */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
    atomic_int refs;
} sync_waiter_t;

static void waiter_release(sync_waiter_t *w) {
    if (atomic_fetch_sub(&w->refs, 1) == 1) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        gov_free(w);
    }
}

/* Runs on whichever thread serves the handle's queue (the poll thread, a
 * flushing caller, or the recreation retiring an old handle); takes no lock
 * of the producer. */
/* An asynchronous message (no waiter: nobody retries it) failed because
 * its handle is in the fatal state - purged from the queue by librdkafka
 * itself or by producer_retire, or failed in flight: it is kept for the
 * recreated handle instead of being lost.  One that the broker did write
 * comes out twice; consumers take the byte-identical copy as a replay
 * (gov-audit's dedup).  1 when kept. */
static int requeue_keep(gov_kafka_producer_t *p, rd_kafka_t *rk, const rd_kafka_message_t *m) {
    if (rd_kafka_fatal_error(rk, NULL, 0) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    const char *topic = rd_kafka_topic_name(m->rkt);
    size_t tl = strlen(topic);
    requeued_t *q = gov_malloc(sizeof *q + tl + 1 + m->key_len + m->len);
    if (q == NULL)
        return 0;
    q->next = NULL;
    q->hdrs = NULL;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h)
        q->hdrs = rd_kafka_headers_copy(h);
    q->topic_len = tl;
    q->key_len = m->key_len;
    q->has_key = m->key != NULL;
    q->len = m->len;
    memcpy(q->data, topic, tl + 1);
    if (m->key_len)
        memcpy(q->data + tl + 1, m->key, m->key_len);
    if (m->len)
        memcpy(q->data + tl + 1 + m->key_len, m->payload, m->len);
    pthread_mutex_lock(&p->requeue_mu);
    q->next = p->requeue;   /* reversed; requeue_drain restores the order */
    p->requeue = q;
    pthread_mutex_unlock(&p->requeue_mu);
    atomic_store(&p->requeue_pending, 1);
    return 1;
}

static void group_report(gov_kafka_group_t *g, rd_kafka_resp_err_t err, const char *topic);

static void producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    gov_kafka_producer_t *p = opaque;
    int *tag = m->_private;
    /* read once: a released waiter is freed memory */
    int kind = tag ? *tag : 0;
    sync_waiter_t *w = kind == OPAQUE_WAITER ? m->_private : NULL;
    if (m->err && tag == NULL && requeue_keep(p, rk, m))
        return;
    if (m->err) {
        atomic_fetch_add(&p->failed, 1);
        char part[16];
        snprintf(part, sizeof part, "%d", (int)m->partition);
        gov_log(GOV_LOG_ERROR, "kafka delivery failed", "topic",
                rd_kafka_topic_name(m->rkt), "partition", part, "error",
                rd_kafka_err2str(m->err), (const char *)NULL);
    }
    if (w) {
        pthread_mutex_lock(&w->mu);
        w->done = 1;
        w->err = m->err;
        w->offset = m->offset;
        w->partition = m->partition;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        waiter_release(w);
    }
    if (kind == OPAQUE_GROUP)
        group_report(m->_private, m->err, rd_kafka_topic_name(m->rkt));
}

/* A fatal error is only flagged here: the handle cannot be replaced from
 * inside its own callback.  The poll thread (or the next produce) recreates
 * it; the reason is read then from rd_kafka_fatal_error. */
static void producer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk;
    gov_kafka_producer_t *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        atomic_store(&p->fatal_pending, 1);
        return;
    }
    gov_log(GOV_LOG_WARN, "kafka producer error", "error",
            rd_kafka_err2name((rd_kafka_resp_err_t)err), "reason", reason,
            (const char *)NULL);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    gov_log_level_t lv = level <= 3 ? GOV_LOG_ERROR : level <= 4 ? GOV_LOG_WARN
                       : level <= 6 ? GOV_LOG_INFO : GOV_LOG_DEBUG;
    gov_log(lv, buf, "source", "librdkafka", "facility", fac, (const char *)NULL);
}

/* Fails what the old handle still holds with error delivery reports (so
 * every waiter is released and every caller sees a failure it retries),
 * then destroys it.  Called without the lock: the handle is no longer
 * reachable from p.  Cost: bounded by the flush (5 s) and librdkafka's
 * thread shutdown. */
static void producer_retire(rd_kafka_t *old) {
    rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    if (rd_kafka_flush(old, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        char n[32];
        snprintf(n, sizeof n, "%d", rd_kafka_outq_len(old));
        gov_log(GOV_LOG_ERROR, "kafka producer retired with undelivered messages",
                "count", n, (const char *)NULL);
    }
    rd_kafka_destroy(old);
}

/* Recreates the handle of generation gen if it is in librdkafka's fatal
 * state; a no-op when another thread already did (the generation moved
 * on), when the handle is not fatal, or after giving up.  Takes the write
 * lock; the caller holds no lock of p.  Cost: one rd_kafka_new, plus
 * retiring the old handle (producer_retire). */
static void producer_recreate(gov_kafka_producer_t *p, uint64_t gen) {
    char reason[512] = "";
    char eb[512] = "";
    rd_kafka_t *old = NULL;
    pthread_rwlock_wrlock(&p->lock);
    if (p->generation != gen || p->gave_up)
        goto out;
    rd_kafka_resp_err_t fe = rd_kafka_fatal_error(p->rk, reason, sizeof reason);
    if (fe == RD_KAFKA_RESP_ERR_NO_ERROR)
        goto out;
    int64_t now = gov_mono_micros();
    size_t recent = 0;
    for (size_t i = 0; i < GOV_KAFKA_RECREATE_LIMIT; i++)
        if (p->recreated_at_us[i] != 0 &&
            now - p->recreated_at_us[i] < (int64_t)GOV_KAFKA_RECREATE_WINDOW_S * 1000000)
            recent++;
    if (recent >= GOV_KAFKA_RECREATE_LIMIT) {
        p->gave_up = 1;
        snprintf(p->gave_up_reason, sizeof p->gave_up_reason,
                 "kafka producer gave up: fatal error %d times within %d s (last: %s: %.200s); "
                 "restart the process",
                 GOV_KAFKA_RECREATE_LIMIT + 1, GOV_KAFKA_RECREATE_WINDOW_S,
                 rd_kafka_err2name(fe), reason);
        gov_log(GOV_LOG_ERROR, "kafka producer fatal error; giving up", "error",
                rd_kafka_err2name(fe), "reason", reason, "detail", p->gave_up_reason,
                (const char *)NULL);
        if (p->status)
            gov_status_set(p->status, "kafka_producer", GOV_STATUS_ERROR, p->gave_up_reason,
                           NULL);
        goto out;
    }
    gov_log(GOV_LOG_ERROR, "kafka producer fatal error; recreating the producer", "error",
            rd_kafka_err2name(fe), "reason", reason, (const char *)NULL);
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(p->conf);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, eb, sizeof eb);
    if (rk == NULL) {
        /* Keep the fatal handle: the next produce meets RD_KAFKA_RESP_ERR__FATAL
         * again and tries again. */
        rd_kafka_conf_destroy(conf);
        gov_log(GOV_LOG_ERROR, "kafka producer could not be recreated", "error", eb,
                (const char *)NULL);
        goto out;
    }
    old = p->rk;
    p->rk = rk;
    p->generation++;
    p->recreated_at_us[p->recreated_next] = now;
    p->recreated_next = (p->recreated_next + 1) % GOV_KAFKA_RECREATE_LIMIT;
    atomic_fetch_add(&p->recreated, 1);
    if (p->m_recreated)
        gov_metric_inc(p->m_recreated, NULL, 1);
out:
    pthread_rwlock_unlock(&p->lock);
    if (old)
        producer_retire(old);
}

static void requeue_drain(gov_kafka_producer_t *p);

static void *producer_poll_thread(void *arg) {
    gov_kafka_producer_t *p = arg;
    while (!atomic_load(&p->stop)) {
        pthread_rwlock_rdlock(&p->lock);
        uint64_t gen = p->generation;
        rd_kafka_poll(p->rk, 100);
        pthread_rwlock_unlock(&p->lock);
        if (atomic_exchange(&p->fatal_pending, 0))
            producer_recreate(p, gen);
        pthread_rwlock_rdlock(&p->lock);
        int fatal = rd_kafka_fatal_error(p->rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR;
        pthread_rwlock_unlock(&p->lock);
        if (!fatal)   /* kept messages go to a working handle only */
            requeue_drain(p);
    }
    return NULL;
}

static gov_err_t conf_set(rd_kafka_conf_t *conf, const char *k, const char *v,
                          char *errbuf, size_t errbuf_size) {
    if (rd_kafka_conf_set(conf, k, v, errbuf, errbuf_size) != RD_KAFKA_CONF_OK)
        return GOV_ERR_CONFIG;
    return GOV_OK;
}

static gov_err_t conf_set_list(rd_kafka_conf_t *conf, const char *const *kv,
                               char *errbuf, size_t errbuf_size) {
    for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
        gov_err_t e = conf_set(conf, kv[i], kv[i + 1], errbuf, errbuf_size);
        if (e != GOV_OK)
            return e;
    }
    return GOV_OK;
}

gov_err_t gov_kafka_producer_new(const char *brokers, const char *client_id,
                                 const char *const *extra_conf,
                                 gov_kafka_producer_t **out, char *errbuf,
                                 size_t errbuf_size) {
    gov_err_t err = GOV_OK;
    rd_kafka_conf_t *conf = NULL;
    int lock_made = 0;
    gov_kafka_producer_t *p = gov_calloc(1, sizeof *p);
    if (p == NULL)
        return GOV_ERR_NOMEM;
    pthread_rwlockattr_t la;
    pthread_rwlockattr_init(&la);
    pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    lock_made = pthread_rwlock_init(&p->lock, &la) == 0;
    pthread_mutex_init(&p->requeue_mu, NULL);
    pthread_rwlockattr_destroy(&la);
    if (!lock_made) {
        snprintf(errbuf, errbuf_size, "cannot create the producer lock");
        err = GOV_ERR_INTERNAL;
        goto out;
    }
    conf = rd_kafka_conf_new();
    if ((err = conf_set(conf, "bootstrap.servers", brokers, errbuf, errbuf_size)) ||
        (err = conf_set(conf, "client.id", client_id, errbuf, errbuf_size)) ||
        (err = conf_set(conf, "enable.idempotence", "true", errbuf, errbuf_size)) ||
        (err = conf_set(conf, "acks", "all", errbuf, errbuf_size)) ||
        (err = conf_set(conf, "linger.ms", "1", errbuf, errbuf_size)) ||
        (err = conf_set(conf, "message.timeout.ms", "10000", errbuf, errbuf_size)) ||
        (err = conf_set_list(conf, extra_conf, errbuf, errbuf_size)))
        goto out;
    rd_kafka_conf_set_dr_msg_cb(conf, producer_dr_cb);
    rd_kafka_conf_set_error_cb(conf, producer_error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, p);
    char mt[32];
    size_t mtlen = sizeof mt;
    p->message_timeout_ms = 30000;
    if (rd_kafka_conf_get(conf, "message.timeout.ms", mt, &mtlen) == RD_KAFKA_CONF_OK)
        p->message_timeout_ms = atoi(mt);
    p->conf = rd_kafka_conf_dup(conf); /* for recreating after a fatal error */
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errbuf_size);
    if (p->rk == NULL) {
        err = GOV_ERR_KAFKA;
        goto out;
    }
    conf = NULL; /* owned by rk now */
    if (pthread_create(&p->poller, NULL, producer_poll_thread, p) != 0) {
        snprintf(errbuf, errbuf_size, "cannot start delivery report thread");
        err = GOV_ERR_INTERNAL;
        goto out;
    }
    *out = p;
    p = NULL;
out:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (p) {
        if (p->rk)
            rd_kafka_destroy(p->rk);
        if (p->conf)
            rd_kafka_conf_destroy(p->conf);
        if (lock_made)
            pthread_rwlock_destroy(&p->lock);
        pthread_mutex_destroy(&p->requeue_mu);
        gov_free(p);
    }
    return err;
}

gov_err_t gov_kafka_producer_report(gov_kafka_producer_t *p, gov_metrics_t *reg,
                                    gov_status_t *status) {
    gov_metric_t *m = gov_metrics_counter(
        reg, "kafka_producer_recreated_total",
        "Times the Kafka producer was recreated after a librdkafka fatal error.", 0, NULL);
    if (m == NULL || (status && gov_status_register(status, "kafka_producer") != GOV_OK))
        return GOV_ERR_NOMEM;
    pthread_rwlock_wrlock(&p->lock);
    p->m_recreated = m;
    p->status = status;
    uint64_t before = (uint64_t)atomic_load(&p->recreated);
    if (status)
        gov_status_set(status, "kafka_producer", p->gave_up ? GOV_STATUS_ERROR : GOV_STATUS_OK,
                       p->gave_up ? p->gave_up_reason : NULL, NULL);
    pthread_rwlock_unlock(&p->lock);
    if (before > 0)
        gov_metric_inc(m, NULL, before);
    return GOV_OK;
}

void gov_kafka_producer_free(gov_kafka_producer_t *p, int flush_timeout_ms) {
    if (p == NULL)
        return;
    pthread_rwlock_rdlock(&p->lock);
    rd_kafka_resp_err_t fe = rd_kafka_flush(p->rk, flush_timeout_ms);
    if (fe != RD_KAFKA_RESP_ERR_NO_ERROR) {
        char n[32];
        snprintf(n, sizeof n, "%d", rd_kafka_outq_len(p->rk));
        gov_log(GOV_LOG_ERROR, "kafka producer closed with undelivered messages",
                "count", n, (const char *)NULL);
        /* Fail them with delivery reports, so every waiter and every group
         * learns its outcome (rd_kafka_destroy alone reports nothing). */
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->rk, 1000);
    }
    pthread_rwlock_unlock(&p->lock);
    atomic_store(&p->stop, 1);
    pthread_join(p->poller, NULL);
    rd_kafka_destroy(p->rk);
    rd_kafka_conf_destroy(p->conf);
    pthread_rwlock_destroy(&p->lock);
    for (requeued_t *q = p->requeue, *next; q; q = next) {   /* never produced again */
        next = q->next;
        atomic_fetch_add(&p->failed, 1);
        if (q->hdrs)
            rd_kafka_headers_destroy(q->hdrs);
        gov_free(q);
    }
    pthread_mutex_destroy(&p->requeue_mu);
    gov_free(p);
}

static rd_kafka_headers_t *make_headers(const gov_kafka_header_t *h, size_t n) {
    if (n == 0)
        return NULL;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_header_add(hdrs, h[i].name, -1, h[i].value, (ssize_t)h[i].len);
    return hdrs;
}

/* Queues one message on the current handle, under the read lock.  A full
 * local queue drains as the poller serves reports: when may_wait, wait a
 * little, boundedly (50 x 10 ms, the lock released meanwhile), rather than
 * drop - for the callers that may block (produce_sync, the requeue on the
 * poll thread).  The others (gov_kafka_produce, groups: gov-edge's HTTP
 * threads, which must never stall /v1/evaluate) fail at once, counted in
 * queue_full.  A handle in the fatal state is recreated here and the
 * message queued once more on the new one (it was never queued on the
 * old).  GOV_OK; GOV_ERR_UNAVAILABLE (the local queue is full and the caller
 * may not wait) or GOV_ERR_KAFKA, with the reason in errbuf. */
static gov_err_t produce_hdrs(gov_kafka_producer_t *p, const char *topic,
                              const void *key, size_t key_len,
                              const void *value, size_t len,
                              rd_kafka_headers_t *hdrs, void *opaque, int may_wait,
                              char *errbuf, size_t errbuf_size) {
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    int fatal_retried = 0;
    for (int attempt = 0;; attempt++) {
        pthread_rwlock_rdlock(&p->lock);
        if (p->gave_up) {
            snprintf(errbuf, errbuf_size, "%s", p->gave_up_reason);
            pthread_rwlock_unlock(&p->lock);
            if (hdrs)
                rd_kafka_headers_destroy(hdrs);
            return GOV_ERR_KAFKA;
        }
        uint64_t gen = p->generation;
        e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic),
                              RD_KAFKA_V_KEY((void *)key, key_len),
                              RD_KAFKA_V_VALUE((void *)value, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque),
                              RD_KAFKA_V_END);
        pthread_rwlock_unlock(&p->lock);
        if (e == RD_KAFKA_RESP_ERR__FATAL && !fatal_retried) {
            fatal_retried = 1;
            producer_recreate(p, gen);
            continue;
        }
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !may_wait) {
            atomic_fetch_add(&p->queue_full, 1);
            break;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt >= 50)
            break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return GOV_OK;
    if (hdrs)
        rd_kafka_headers_destroy(hdrs); /* not taken on failure */
    pthread_rwlock_rdlock(&p->lock);
    if (p->gave_up)
        snprintf(errbuf, errbuf_size, "%s", p->gave_up_reason);
    else
        snprintf(errbuf, errbuf_size, "produce to %s: %s", topic, rd_kafka_err2str(e));
    int full = !p->gave_up && e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !may_wait;
    pthread_rwlock_unlock(&p->lock);
    return full ? GOV_ERR_UNAVAILABLE : GOV_ERR_KAFKA;
}

/* produce_hdrs with the headers made from an array (hdrs taken by it). */
static gov_err_t produce_one(gov_kafka_producer_t *p, const char *topic,
                             const void *key, size_t key_len,
                             const void *value, size_t len,
                             const gov_kafka_header_t *headers,
                             size_t nheaders, void *opaque, int may_wait, char *errbuf,
                             size_t errbuf_size) {
    return produce_hdrs(p, topic, key, key_len, value, len, make_headers(headers, nheaders),
                        opaque, may_wait, errbuf, errbuf_size);
}

/* Produces again, in their first order, the messages requeue_keep kept
 * (on the recreated handle; a failure now is counted and logged as any
 * failed async produce).  Takes no lock on entry; the read lock per
 * message.  Cost: one produce per kept message. */
static void requeue_drain(gov_kafka_producer_t *p) {
    if (!atomic_exchange(&p->requeue_pending, 0))
        return;
    pthread_mutex_lock(&p->requeue_mu);
    requeued_t *q = p->requeue, *ordered = NULL;
    p->requeue = NULL;
    pthread_mutex_unlock(&p->requeue_mu);
    size_t n = 0;
    while (q) {
        requeued_t *next = q->next;
        q->next = ordered;
        ordered = q;
        q = next;
    }
    for (q = ordered; q; q = ordered) {
        ordered = q->next;
        char eb[512];
        const char *topic = q->data;
        if (produce_hdrs(p, topic, q->has_key ? q->data + q->topic_len + 1 : NULL, q->key_len,
                         q->data + q->topic_len + 1 + q->key_len, q->len, q->hdrs, NULL, 1, eb,
                         sizeof eb) != GOV_OK) {
            atomic_fetch_add(&p->failed, 1);
            gov_log(GOV_LOG_ERROR, "kafka produce failed", "topic", topic, "error", eb,
                    (const char *)NULL);
        } else {
            n++;
        }
        gov_free(q);
    }
    if (n > 0) {
        char c[32];
        snprintf(c, sizeof c, "%zu", n);
        gov_log(GOV_LOG_WARN, "messages of the fatal kafka producer produced again", "count", c,
                (const char *)NULL);
    }
}

gov_err_t gov_kafka_produce(gov_kafka_producer_t *p, const char *topic,
                            const void *key, size_t key_len, const void *value,
                            size_t len, const gov_kafka_header_t *headers,
                            size_t nheaders) {
    char eb[512];
    gov_err_t err = produce_one(p, topic, key, key_len, value, len, headers, nheaders, NULL, 0,
                                eb, sizeof eb);
    if (err == GOV_OK) {
        if (atomic_exchange(&p->queue_full_logged, 0))
            gov_log(GOV_LOG_INFO, "kafka producer queue accepts messages again", "topic", topic,
                    (const char *)NULL);
        return GOV_OK;
    }
    atomic_fetch_add(&p->failed, 1);
    /* a full queue refuses every message until it drains: one line per
     * episode, the count is in gov_kafka_producer_queue_full */
    if (err != GOV_ERR_UNAVAILABLE || !atomic_exchange(&p->queue_full_logged, 1))
        gov_log(GOV_LOG_ERROR, "kafka produce failed", "topic", topic, "error", eb,
                (const char *)NULL);
    return GOV_ERR_KAFKA;
}

gov_err_t gov_kafka_produce_sync(gov_kafka_producer_t *p, const char *topic,
                                 const void *key, size_t key_len,
                                 const void *value, size_t len,
                                 const gov_kafka_header_t *headers,
                                 size_t nheaders, int timeout_ms,
                                 int32_t *partition, int64_t *offset, char *errbuf,
                                 size_t errbuf_size) {
    sync_waiter_t *w = gov_calloc(1, sizeof *w);
    if (w == NULL)
        return GOV_ERR_NOMEM;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->tag = OPAQUE_WAITER;
    atomic_store(&w->refs, 2);

    if (produce_one(p, topic, key, key_len, value, len, headers, nheaders, w, 1, errbuf,
                    errbuf_size) != GOV_OK) {
        atomic_store(&w->refs, 1); /* the callback will never run */
        waiter_release(w);
        return GOV_ERR_KAFKA;
    }

    /* Wait past librdkafka's own message timeout, so that when this returns
     * the outcome is definite: a message reported as not sent can no longer
     * be delivered behind the caller's back. */
    if (timeout_ms < p->message_timeout_ms + 2000)
        timeout_ms = p->message_timeout_ms + 2000;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    gov_err_t err = GOV_OK;
    pthread_mutex_lock(&w->mu);
    while (!w->done) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &deadline) != 0 && !w->done) {
            snprintf(errbuf, errbuf_size, "no acknowledgement from %s within %d ms",
                     topic, timeout_ms);
            err = GOV_ERR_TIMEOUT;
            break;
        }
    }
    if (err == GOV_OK && w->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errbuf, errbuf_size, "delivery to %s: %s", topic, rd_kafka_err2str(w->err));
        err = GOV_ERR_KAFKA;
    }
    if (err == GOV_OK && offset)
        *offset = w->offset;
    if (err == GOV_OK && partition)
        *partition = w->partition;
    pthread_mutex_unlock(&w->mu);
    waiter_release(w);
    return err;
}

/* --- groups of asynchronous messages ----------------------------------------- */

/* One reference for the caller until gov_kafka_group_seal, one per queued
 * message until its delivery report; the last release frees it.  fn is
 * called once, outside mu, by whoever decides the outcome. */
struct gov_kafka_group {
    int tag;                    /* OPAQUE_GROUP; first member */
    gov_kafka_producer_t *p;
    gov_kafka_group_fn fn;
    void *arg;
    pthread_mutex_t mu;
    atomic_int refs;
    size_t pending;             /* queued, not yet reported (mu) */
    int sealed;                 /* no more messages (mu) */
    int done;                   /* fn called or being called (mu) */
    gov_err_t err;              /* the first failure (mu) */
    char detail[256];
};

static void group_release(gov_kafka_group_t *g) {
    if (atomic_fetch_sub(&g->refs, 1) == 1) {
        pthread_mutex_destroy(&g->mu);
        gov_free(g);
    }
}

/* With g->mu held: 1 when the outcome is now known and fn was not called
 * yet (then done is set and the caller calls fn after unlocking, with the
 * copies it takes here). */
static int group_decide(gov_kafka_group_t *g, gov_err_t *err, char *detail, size_t size) {
    if (g->done || !g->sealed || (g->err == GOV_OK && g->pending > 0))
        return 0;
    g->done = 1;
    *err = g->err;
    snprintf(detail, size, "%s", g->err == GOV_OK ? "acknowledged" : g->detail);
    return 1;
}

static void group_fail(gov_kafka_group_t *g, gov_err_t err, const char *detail) {
    if (g->err == GOV_OK) {
        g->err = err;
        snprintf(g->detail, sizeof g->detail, "%s", detail);
    }
}

/* From the delivery callback: one message of g reported. */
static void group_report(gov_kafka_group_t *g, rd_kafka_resp_err_t e, const char *topic) {
    gov_err_t out = GOV_OK;
    char detail[256];
    pthread_mutex_lock(&g->mu);
    g->pending--;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        char d[256];
        snprintf(d, sizeof d, "delivery to %s: %s", topic, rd_kafka_err2str(e));
        group_fail(g, e == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ? GOV_ERR_TIMEOUT : GOV_ERR_KAFKA, d);
    }
    int fire = group_decide(g, &out, detail, sizeof detail);
    pthread_mutex_unlock(&g->mu);
    if (fire)
        g->fn(g->arg, out, detail);
    group_release(g);
}

gov_err_t gov_kafka_group_new(gov_kafka_producer_t *p, gov_kafka_group_fn fn, void *arg,
                              gov_kafka_group_t **out) {
    gov_kafka_group_t *g = gov_calloc(1, sizeof *g);
    if (g == NULL)
        return GOV_ERR_NOMEM;
    g->tag = OPAQUE_GROUP;
    g->p = p;
    g->fn = fn;
    g->arg = arg;
    pthread_mutex_init(&g->mu, NULL);
    atomic_store(&g->refs, 1);
    *out = g;
    return GOV_OK;
}

gov_err_t gov_kafka_group_produce(gov_kafka_group_t *g, const char *topic, const void *key,
                                  size_t key_len, const void *value, size_t len,
                                  const gov_kafka_header_t *headers, size_t nheaders) {
    char eb[256];
    pthread_mutex_lock(&g->mu);
    if (g->sealed || g->err != GOV_OK) {   /* a failed group sends nothing more */
        gov_err_t prior = g->sealed ? GOV_ERR_INTERNAL : g->err;
        pthread_mutex_unlock(&g->mu);
        return prior;
    }
    g->pending++;
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&g->mu);
    gov_err_t err = produce_one(g->p, topic, key, key_len, value, len, headers, nheaders, g, 0,
                                eb, sizeof eb);
    if (err == GOV_OK)
        return GOV_OK;
    err = GOV_ERR_KAFKA;   /* a full queue too: the group's outcomes are documented */
    pthread_mutex_lock(&g->mu);
    g->pending--;                           /* never queued: no report comes */
    group_fail(g, err, eb);
    pthread_mutex_unlock(&g->mu);
    group_release(g);
    return err;
}

void gov_kafka_group_fail(gov_kafka_group_t *g, gov_err_t err, const char *detail) {
    pthread_mutex_lock(&g->mu);
    group_fail(g, err, detail);
    pthread_mutex_unlock(&g->mu);
}

void gov_kafka_group_seal(gov_kafka_group_t *g) {
    gov_err_t out = GOV_OK;
    char detail[256];
    pthread_mutex_lock(&g->mu);
    g->sealed = 1;
    int fire = group_decide(g, &out, detail, sizeof detail);
    pthread_mutex_unlock(&g->mu);
    if (fire)
        g->fn(g->arg, out, detail);
    group_release(g);
}

uint64_t gov_kafka_producer_failed(gov_kafka_producer_t *p) {
    return (uint64_t)atomic_load(&p->failed);
}

uint64_t gov_kafka_producer_recreated(gov_kafka_producer_t *p) {
    return (uint64_t)atomic_load(&p->recreated);
}

uint64_t gov_kafka_producer_queue_full(gov_kafka_producer_t *p) {
    return (uint64_t)atomic_load(&p->queue_full);
}

gov_err_t gov_kafka_producer_purge(gov_kafka_producer_t *p, int flush_timeout_ms) {
    pthread_rwlock_rdlock(&p->lock);
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, flush_timeout_ms);
    pthread_rwlock_unlock(&p->lock);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? GOV_OK : GOV_ERR_TIMEOUT;
}

gov_err_t gov_kafka_producer_flush(gov_kafka_producer_t *p, int timeout_ms) {
    pthread_rwlock_rdlock(&p->lock);
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
    pthread_rwlock_unlock(&p->lock);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? GOV_OK : GOV_ERR_TIMEOUT;
}

gov_err_t gov_kafka_producer_test_fatal(gov_kafka_producer_t *p, const char *reason) {
    pthread_rwlock_rdlock(&p->lock);
    rd_kafka_resp_err_t e =
        rd_kafka_test_fatal_error(p->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason);
    pthread_rwlock_unlock(&p->lock);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? GOV_OK : GOV_ERR_KAFKA;
}

/* --- consumer ------------------------------------------------------------ */
/* --- consumer ------------------------------------------------------------ */

struct gov_kafka_consumer {
    rd_kafka_t *rk;
    atomic_int brokers_down;
    int assigned;
    gov_kafka_assign_fn on_assign;
    gov_kafka_revoke_fn on_revoke;
    void *on_assign_opaque;
    /* where each assigned partition started (explicit offsets, or logical
     * ones): the lag of a partition nothing was consumed from yet */
    rd_kafka_topic_partition_list_t *starts;
};

void gov_kafka_consumer_on_assign(gov_kafka_consumer_t *c, gov_kafka_assign_fn fn,
                                  gov_kafka_revoke_fn revoke, void *opaque) {
    c->on_assign = fn;
    c->on_revoke = revoke;
    c->on_assign_opaque = opaque;
}

/* Asks the assignment hook where each partition starts, given the group's
 * committed offsets (fetched here: the hook compares them with its own
 * record, e.g. what Redis says is applied). */
static void choose_start(gov_kafka_consumer_t *c, rd_kafka_t *rk,
                         rd_kafka_topic_partition_list_t *parts) {
    rd_kafka_resp_err_t ce = rd_kafka_committed(rk, parts, 10000);
    if (ce != RD_KAFKA_RESP_ERR_NO_ERROR)
        gov_log(GOV_LOG_WARN, "committed offsets unknown at assignment", "error",
                rd_kafka_err2str(ce), (const char *)NULL);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t committed = ce == RD_KAFKA_RESP_ERR_NO_ERROR && !tp->err && tp->offset >= 0
                                ? tp->offset : -1;
        int64_t start = c->on_assign(c->on_assign_opaque, tp->topic, tp->partition, committed);
        int64_t lo = -1, hi = -1;
        if (start == GOV_KAFKA_OFFSET_END &&
            rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi, 10000) ==
                RD_KAFKA_RESP_ERR_NO_ERROR)
            start = hi;   /* explicit: the lag is known before the first message */
        else if (start == GOV_KAFKA_OFFSET_COMMITTED && committed >= 0)
            start = committed;
        tp->offset = start == GOV_KAFKA_OFFSET_BEGINNING ? RD_KAFKA_OFFSET_BEGINNING
                     : start == GOV_KAFKA_OFFSET_END ? RD_KAFKA_OFFSET_END
                     : start == GOV_KAFKA_OFFSET_COMMITTED ? RD_KAFKA_OFFSET_INVALID
                     : start;
        tp->err = RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    if (c->starts)
        rd_kafka_topic_partition_list_destroy(c->starts);
    c->starts = rd_kafka_topic_partition_list_copy(parts);
}

static void consumer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk;
    gov_kafka_consumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        atomic_store(&c->brokers_down, 1);
    gov_log(GOV_LOG_WARN, "kafka consumer error", "error",
            rd_kafka_err2name((rd_kafka_resp_err_t)err), "reason", reason,
            (const char *)NULL);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    gov_kafka_consumer_t *c = opaque;
    char n[16];
    snprintf(n, sizeof n, "%d", parts ? parts->cnt : 0);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (c->on_assign && parts)
            choose_start(c, rk, parts);
        rd_kafka_assign(rk, parts);
        c->assigned = 1;
        atomic_store(&c->brokers_down, 0);
        gov_log(GOV_LOG_INFO, "partitions assigned", "count", n, (const char *)NULL);
    } else {
        /* Commit what was materialized before giving the partitions up, so
         * the next owner starts exactly after it. */
        rd_kafka_resp_err_t ce = rd_kafka_commit(rk, NULL, 0);
        if (ce != RD_KAFKA_RESP_ERR_NO_ERROR && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
            gov_log(GOV_LOG_WARN, "commit on revoke failed", "error",
                    rd_kafka_err2str(ce), (const char *)NULL);
        rd_kafka_assign(rk, NULL);
        c->assigned = 0;
        if (c->on_revoke)
            c->on_revoke(c->on_assign_opaque);
        gov_log(GOV_LOG_INFO, "partitions revoked", "count", n, (const char *)NULL);
    }
}

gov_err_t gov_kafka_consumer_new(const char *brokers, const char *group_id,
                                 const char *client_id,
                                 const char *const *topics, size_t ntopics,
                                 const char *const *extra_conf,
                                 gov_kafka_consumer_t **out, char *errbuf,
                                 size_t errbuf_size) {
    gov_err_t err = GOV_OK;
    rd_kafka_topic_partition_list_t *sub = NULL;
    gov_kafka_consumer_t *c = gov_calloc(1, sizeof *c);
    if (c == NULL)
        return GOV_ERR_NOMEM;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if ((err = conf_set(conf, "bootstrap.servers", brokers, errbuf, errbuf_size)) ||
        (err = conf_set(conf, "group.id", group_id, errbuf, errbuf_size)) ||
        (err = conf_set(conf, "client.id", client_id, errbuf, errbuf_size)) ||
        (err = conf_set(conf, "enable.auto.offset.store", "false", errbuf, errbuf_size)) ||
        (err = conf_set(conf, "enable.auto.commit", "true", errbuf, errbuf_size)) ||
        (err = conf_set(conf, "auto.commit.interval.ms", "1000", errbuf, errbuf_size)) ||
        (err = conf_set(conf, "auto.offset.reset", "earliest", errbuf, errbuf_size)) ||
        (err = conf_set(conf, "enable.partition.eof", "false", errbuf, errbuf_size)) ||
        (err = conf_set(conf, "session.timeout.ms", "10000", errbuf, errbuf_size)) ||
        (err = conf_set(conf, "heartbeat.interval.ms", "1000", errbuf, errbuf_size)) ||
        (err = conf_set(conf, "topic.metadata.refresh.interval.ms", "10000", errbuf, errbuf_size)) ||
        (err = conf_set_list(conf, extra_conf, errbuf, errbuf_size)))
        goto out;
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, consumer_error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errbuf_size);
    if (c->rk == NULL) {
        err = GOV_ERR_KAFKA;
        goto out;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(c->rk);
    sub = rd_kafka_topic_partition_list_new((int)ntopics);
    for (size_t i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(sub, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(c->rk, sub);
    if (se != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errbuf, errbuf_size, "subscribe: %s", rd_kafka_err2str(se));
        err = GOV_ERR_KAFKA;
        goto out;
    }
    *out = c;
    c = NULL;
out:
    if (sub)
        rd_kafka_topic_partition_list_destroy(sub);
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (c) {
        if (c->rk)
            rd_kafka_destroy(c->rk);
        gov_free(c);
    }
    return err;
}

gov_err_t gov_kafka_consumer_poll(gov_kafka_consumer_t *c, int timeout_ms,
                                  gov_kafka_msg_t **msg) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (m == NULL)
        return GOV_ERR_TIMEOUT;
    if (m->err) {
        char part[16];
        snprintf(part, sizeof part, "%d", (int)m->partition);
        gov_log(GOV_LOG_WARN, "kafka consume error", "topic",
                m->rkt ? rd_kafka_topic_name(m->rkt) : "", "partition", part,
                "error", rd_kafka_message_errstr(m), (const char *)NULL);
        rd_kafka_message_destroy(m);
        return GOV_ERR_KAFKA;
    }
    atomic_store(&c->brokers_down, 0);
    gov_kafka_msg_t *g = gov_calloc(1, sizeof *g);
    if (g == NULL) {
        /* Deliver it again rather than lose it. */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset = m->offset;
        rd_kafka_error_t *se = rd_kafka_seek_partitions(c->rk, l, 1000);
        if (se)
            rd_kafka_error_destroy(se);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_message_destroy(m);
        return GOV_ERR_NOMEM;
    }
    g->topic = rd_kafka_topic_name(m->rkt);
    g->partition = m->partition;
    g->offset = m->offset;
    g->key = m->key;
    g->key_len = m->key_len;
    g->value = m->payload;
    g->len = m->len;
    rd_kafka_timestamp_type_t tt;
    g->timestamp_ms = rd_kafka_message_timestamp(m, &tt);
    g->priv = m;
    *msg = g;
    return GOV_OK;
}

void gov_kafka_msg_free(gov_kafka_msg_t *msg) {
    if (msg == NULL)
        return;
    rd_kafka_message_destroy(msg->priv);
    gov_free(msg);
}

static gov_err_t offset_op(gov_kafka_consumer_t *c, const gov_kafka_msg_t *msg, int store) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, msg->topic, msg->partition)->offset =
        store ? msg->offset + 1 : msg->offset;
    gov_err_t err = GOV_OK;
    if (store) {
        rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, l);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR || l->elems[0].err) {
            gov_log(GOV_LOG_WARN, "offset store failed", "topic", msg->topic, "error",
                    rd_kafka_err2str(e ? e : l->elems[0].err), (const char *)NULL);
            err = GOV_ERR_KAFKA;
        }
    } else {
        rd_kafka_error_t *se = rd_kafka_seek_partitions(c->rk, l, 5000);
        if (se) {
            gov_log(GOV_LOG_WARN, "seek failed", "topic", msg->topic, "error",
                    rd_kafka_error_string(se), (const char *)NULL);
            rd_kafka_error_destroy(se);
            err = GOV_ERR_KAFKA;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return err;
}

gov_err_t gov_kafka_consumer_seek(gov_kafka_consumer_t *c, const char *topic, int32_t partition,
                                  int64_t offset) {
    gov_kafka_msg_t at = {.topic = topic, .partition = partition,
                          .offset = offset == GOV_KAFKA_OFFSET_BEGINNING ? RD_KAFKA_OFFSET_BEGINNING
                                                                         : offset};
    return offset_op(c, &at, 0);
}

gov_err_t gov_kafka_consumer_store(gov_kafka_consumer_t *c, const gov_kafka_msg_t *msg) {
    return offset_op(c, msg, 1);
}

gov_err_t gov_kafka_consumer_rewind(gov_kafka_consumer_t *c, const gov_kafka_msg_t *msg) {
    return offset_op(c, msg, 0);
}

int gov_kafka_consumer_healthy(gov_kafka_consumer_t *c) {
    if (!atomic_load(&c->brokers_down))
        return c->assigned;
    /* Brokers were reported down: probe once, briefly. */
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(c->rk, 0, NULL, &md, 200) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        atomic_store(&c->brokers_down, 0);
        return c->assigned;
    }
    return 0;
}

int64_t gov_kafka_consumer_end(gov_kafka_consumer_t *c, const char *topic, int32_t partition,
                               int confirm, int timeout_ms) {
    int64_t lo = -1, hi = -1;
    if (!confirm && rd_kafka_get_watermark_offsets(c->rk, topic, partition, &lo, &hi) ==
                        RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0)
        return hi;
    if (rd_kafka_query_watermark_offsets(c->rk, topic, partition, &lo, &hi, timeout_ms) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    return hi >= 0 ? hi : -1;
}

void gov_kafka_consumer_lag(gov_kafka_consumer_t *c, gov_kafka_lag_fn fn, void *opaque) {
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || parts == NULL)
        return;
    rd_kafka_position(c->rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t lo = -1, hi = -1, lag = -1, pos = -1;
        if (rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition, &lo, &hi) ==
                RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0) {
            rd_kafka_topic_partition_t *st =
                c->starts ? rd_kafka_topic_partition_list_find(c->starts, tp->topic, tp->partition)
                          : NULL;
            if (tp->offset >= 0)
                pos = tp->offset;
            else if (st && st->offset >= 0)
                pos = st->offset; /* nothing consumed yet; started there */
            else if (lo >= 0)
                pos = lo; /* nothing consumed yet in this assignment */
            if (pos >= 0)
                lag = hi - pos > 0 ? hi - pos : 0;
        }
        fn(opaque, tp->topic, tp->partition, lag, pos);
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

void gov_kafka_consumer_close(gov_kafka_consumer_t *c) {
    if (c == NULL)
        return;
    rd_kafka_resp_err_t ce = rd_kafka_commit(c->rk, NULL, 0);
    if (ce != RD_KAFKA_RESP_ERR_NO_ERROR && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
        gov_log(GOV_LOG_WARN, "final commit failed", "error", rd_kafka_err2str(ce),
                (const char *)NULL);
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    if (c->starts)
        rd_kafka_topic_partition_list_destroy(c->starts);
    gov_free(c);
}

int gov_kafka_msg_header(const gov_kafka_msg_t *msg, const char *name, char *buf, size_t size) {
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    if (size > 0)
        buf[0] = 0;
    if (msg == NULL || msg->priv == NULL || size == 0 ||
        rd_kafka_message_headers(msg->priv, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    snprintf(buf, size, "%.*s", (int)(len < size ? len : size - 1), v ? (const char *)v : "");
    return 1;
}

int gov_kafka_msg_log_append_time(const gov_kafka_msg_t *msg) {
    rd_kafka_timestamp_type_t tt = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    if (msg == NULL || msg->priv == NULL)
        return 0;
    rd_kafka_message_timestamp(msg->priv, &tt);
    return tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME;
}
