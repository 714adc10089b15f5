/* gov_kafka.c - librdkafka producer and consumer with the project's rules.
 *
 * Producer: a dedicated thread calls rd_kafka_poll so delivery reports are
 * served without the caller's help.  A synchronous send carries a small
 * reference-counted waiter as the message opaque: the delivery callback and
 * the waiting caller each hold one reference, so a caller that times out can
 * return while the report is still in flight without either side touching
 * freed memory.
 *
 * Consumer: offsets are stored explicitly (enable.auto.offset.store=false)
 * and auto-committed from the store; revocation commits synchronously before
 * the partitions are given up.  An optional assignment hook chooses where
 * each assigned partition starts (gov_processor resumes from what Redis
 * says is applied), and a partition can be moved back (seek) to rebuild.  Broker-down errors are tracked so /readyz can
 * report them.
 *
 * What it does not do: transactions (materialization is idempotent instead),
 * schema handling (gov_avro), retries above librdkafka's own.
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

struct gov_kafka_producer {
    rd_kafka_t *rk;
    int message_timeout_ms;  /* librdkafka gives up on a message after this */
    pthread_t poller;
    atomic_int stop;
    atomic_uint_fast64_t failed;
};

typedef struct sync_waiter {
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

static void producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    gov_kafka_producer_t *p = opaque;
    sync_waiter_t *w = m->_private;
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
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    gov_log_level_t lv = level <= 3 ? GOV_LOG_ERROR : level <= 4 ? GOV_LOG_WARN
                       : level <= 6 ? GOV_LOG_INFO : GOV_LOG_DEBUG;
    gov_log(lv, buf, "source", "librdkafka", "facility", fac, (const char *)NULL);
}

static void *producer_poll_thread(void *arg) {
    gov_kafka_producer_t *p = arg;
    while (!atomic_load(&p->stop))
        rd_kafka_poll(p->rk, 100);
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
    gov_kafka_producer_t *p = gov_calloc(1, sizeof *p);
    if (p == NULL)
        return GOV_ERR_NOMEM;
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
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, p);
    char mt[32];
    size_t mtlen = sizeof mt;
    p->message_timeout_ms = 30000;
    if (rd_kafka_conf_get(conf, "message.timeout.ms", mt, &mtlen) == RD_KAFKA_CONF_OK)
        p->message_timeout_ms = atoi(mt);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errbuf_size);
    if (p->rk == NULL) {
        err = GOV_ERR_KAFKA;
        goto out;
    }
    conf = NULL; /* owned by rk now */
    if (pthread_create(&p->poller, NULL, producer_poll_thread, p) != 0) {
        snprintf(errbuf, errbuf_size, "cannot start delivery report thread");
        rd_kafka_destroy(p->rk);
        p->rk = NULL;
        err = GOV_ERR_INTERNAL;
        goto out;
    }
    *out = p;
    p = NULL;
out:
    if (conf)
        rd_kafka_conf_destroy(conf);
    gov_free(p);
    return err;
}

void gov_kafka_producer_free(gov_kafka_producer_t *p, int flush_timeout_ms) {
    if (p == NULL)
        return;
    rd_kafka_resp_err_t fe = rd_kafka_flush(p->rk, flush_timeout_ms);
    if (fe != RD_KAFKA_RESP_ERR_NO_ERROR) {
        char n[32];
        snprintf(n, sizeof n, "%d", rd_kafka_outq_len(p->rk));
        gov_log(GOV_LOG_ERROR, "kafka producer closed with undelivered messages",
                "count", n, (const char *)NULL);
    }
    atomic_store(&p->stop, 1);
    pthread_join(p->poller, NULL);
    rd_kafka_destroy(p->rk);
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

static rd_kafka_resp_err_t produce_one(gov_kafka_producer_t *p, const char *topic,
                                       const void *key, size_t key_len,
                                       const void *value, size_t len,
                                       const gov_kafka_header_t *headers,
                                       size_t nheaders, void *opaque) {
    rd_kafka_headers_t *hdrs = make_headers(headers, nheaders);
    rd_kafka_resp_err_t e;
    for (int attempt = 0;; attempt++) {
        e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic),
                              RD_KAFKA_V_KEY((void *)key, key_len),
                              RD_KAFKA_V_VALUE((void *)value, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque),
                              RD_KAFKA_V_END);
        /* A full local queue drains as the poller serves reports: wait a
         * little, boundedly, rather than drop. */
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt >= 50)
            break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR && hdrs)
        rd_kafka_headers_destroy(hdrs); /* not taken on failure */
    return e;
}

gov_err_t gov_kafka_produce(gov_kafka_producer_t *p, const char *topic,
                            const void *key, size_t key_len, const void *value,
                            size_t len, const gov_kafka_header_t *headers,
                            size_t nheaders) {
    rd_kafka_resp_err_t e = produce_one(p, topic, key, key_len, value, len,
                                        headers, nheaders, NULL);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        atomic_fetch_add(&p->failed, 1);
        gov_log(GOV_LOG_ERROR, "kafka produce failed", "topic", topic, "error",
                rd_kafka_err2str(e), (const char *)NULL);
        return GOV_ERR_KAFKA;
    }
    return GOV_OK;
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
    atomic_store(&w->refs, 2);

    rd_kafka_resp_err_t e = produce_one(p, topic, key, key_len, value, len,
                                        headers, nheaders, w);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errbuf, errbuf_size, "produce to %s: %s", topic, rd_kafka_err2str(e));
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

uint64_t gov_kafka_producer_failed(gov_kafka_producer_t *p) {
    return (uint64_t)atomic_load(&p->failed);
}

gov_err_t gov_kafka_producer_flush(gov_kafka_producer_t *p, int timeout_ms) {
    return rd_kafka_flush(p->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR
               ? GOV_OK : GOV_ERR_TIMEOUT;
}

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

void gov_kafka_consumer_lag(gov_kafka_consumer_t *c, gov_kafka_lag_fn fn, void *opaque) {
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || parts == NULL)
        return;
    rd_kafka_position(c->rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t lo = -1, hi = -1, lag = -1;
        if (rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition, &lo, &hi) ==
                RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0) {
            rd_kafka_topic_partition_t *st =
                c->starts ? rd_kafka_topic_partition_list_find(c->starts, tp->topic, tp->partition)
                          : NULL;
            if (tp->offset >= 0)
                lag = hi - tp->offset;
            else if (st && st->offset >= 0)
                lag = hi - st->offset; /* nothing consumed yet; started there */
            else if (lo >= 0)
                lag = hi - lo; /* nothing consumed yet in this assignment */
            if (lag < 0)
                lag = 0;
        }
        fn(opaque, tp->topic, tp->partition, lag);
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
