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
 * What it does not do: the Redis write itself (the processor's handler
 * writes state and offset together through gov_state).
 */
#include "gov_processor.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_log.h"
#include "gov_time.h"
#include "gov_util.h"

static volatile sig_atomic_t run_flag = 1;

static void on_signal(int sig) {
    (void)sig;
    run_flag = 0;
}

struct gov_processor {
    const gov_processor_spec_t *spec;
    gov_config_entry_t *cfg;
    size_t ncfg;
    /* base configuration */
    char *kafka_brokers;
    char *kafka_group;
    char *redis_host;
    long redis_port;
    long redis_timeout_ms;
    char *admin_addr;
    long admin_port;
    char *log_level;
    char *component_name;
    long dlq_timeout_ms;
    long retry_max_ms;
    /* runtime */
    gov_metrics_t *metrics;
    gov_status_t *status;
    gov_admin_t *admin;
    gov_avro_registry_t *avro;
    gov_redis_t *redis;
    gov_kafka_producer_t *producer;
    gov_kafka_consumer_t *consumer;
    gov_metric_t *m_events;
    gov_metric_t *m_lag;
    gov_metric_t *m_duration;
    int64_t last_tick_us;
    unsigned retry_attempt;
    char admin_port_default[16];
};

gov_redis_t *gov_processor_redis(gov_processor_t *p) { return p->redis; }
gov_kafka_producer_t *gov_processor_producer(gov_processor_t *p) { return p->producer; }
gov_metrics_t *gov_processor_metrics(gov_processor_t *p) { return p->metrics; }
gov_status_t *gov_processor_status(gov_processor_t *p) { return p->status; }
const gov_avro_registry_t *gov_processor_avro(gov_processor_t *p) { return p->avro; }
const char *gov_processor_name(gov_processor_t *p) { return p->component_name; }

gov_err_t gov_processor_derive_id(gov_processor_t *p, uint64_t unix_ms, const char *event_id,
                                  const char *action, char out[GOV_UUID_STRLEN + 1]) {
    char seed[256];
    snprintf(seed, sizeof seed, "%s/%s/%s", p->component_name, event_id, action);
    return gov_uuid_v7_derive(unix_ms, seed, out);
}
int gov_processor_running(gov_processor_t *p) { (void)p; return run_flag; }

static int validate_component(const char *v, char *eb, size_t n) {
    if (!gov_tenant_valid(v, strlen(v))) {
        snprintf(eb, n, "must be 1-64 chars of [A-Za-z0-9._-]");
        return -1;
    }
    return 0;
}

static int validate_log_level(const char *v, char *eb, size_t n) {
    if (gov_log_level_parse(v) < 0) {
        snprintf(eb, n, "must be debug, info, warn or error");
        return -1;
    }
    return 0;
}

static gov_err_t build_config(gov_processor_t *p, const gov_config_entry_t *extra,
                              size_t nextra) {
    snprintf(p->admin_port_default, sizeof p->admin_port_default, "%u",
             p->spec->default_admin_port);
    const gov_config_entry_t base[] = {
        {"kafka_brokers", GOV_CFG_STRING, "127.0.0.1:19092", 0, 0,
         "Kafka bootstrap servers (host:port,...)", &p->kafka_brokers, NULL, 0},
        {"kafka_group", GOV_CFG_STRING, p->spec->name, 0, 0,
         "Kafka consumer group id", &p->kafka_group, NULL, 0},
        {"redis_host", GOV_CFG_STRING, "127.0.0.1", 0, 0, "Redis host", &p->redis_host, NULL, 0},
        {"redis_port", GOV_CFG_INT, "6390", 1, 65535, "Redis port", &p->redis_port, NULL, 0},
        {"redis_timeout", GOV_CFG_DURATION_MS, "2s", 10, 60000,
         "Redis connect and command timeout", &p->redis_timeout_ms, NULL, 0},
        {"admin_addr", GOV_CFG_STRING, "127.0.0.1", 0, 0,
         "address of the admin HTTP server (/healthz, /readyz, /metrics)", &p->admin_addr, NULL, 0},
        {"admin_port", GOV_CFG_INT, p->admin_port_default, 1, 65535,
         "port of the admin HTTP server", &p->admin_port, NULL, 0},
        {"log_level", GOV_CFG_STRING, "info", 0, 0, "debug, info, warn or error",
         &p->log_level, validate_log_level, 0},
        {"component_name", GOV_CFG_STRING, p->spec->name, 0, 0,
         "this deployment's name in its audit events (and in the seed of their ids): replicas "
         "share it, a separate deployment on the same Kafka takes its own", &p->component_name,
         validate_component, 0},
        {"dlq_timeout", GOV_CFG_DURATION_MS, "10s", 100, 300000,
         "how long to wait for the DLQ acknowledgement of a poison message", &p->dlq_timeout_ms, NULL, 0},
        {"retry_max", GOV_CFG_DURATION_MS, "5s", 10, 300000,
         "longest back-off between retries of a message whose write failed", &p->retry_max_ms, NULL, 0},
    };
    size_t nbase = sizeof base / sizeof base[0];
    p->cfg = gov_calloc(nbase + nextra, sizeof *p->cfg);
    if (p->cfg == NULL)
        return GOV_ERR_NOMEM;
    memcpy(p->cfg, base, sizeof base);
    if (nextra)
        memcpy(p->cfg + nbase, extra, nextra * sizeof *extra);
    p->ncfg = nbase + nextra;
    return GOV_OK;
}

static void free_processor(gov_processor_t *p) {
    if (p == NULL)
        return;
    gov_admin_stop(p->admin);
    gov_kafka_consumer_close(p->consumer);
    gov_kafka_producer_free(p->producer, 10000);
    gov_redis_free(p->redis);
    gov_avro_registry_free(p->avro);
    gov_status_free(p->status);
    gov_metrics_free(p->metrics);
    if (p->cfg) {
        gov_config_free_strings(p->cfg, p->ncfg);
        gov_free(p->cfg);
    }
    gov_free(p);
}

gov_err_t gov_processor_init(gov_processor_t **out, const gov_processor_spec_t *spec,
                             const gov_config_entry_t *extra, size_t nextra,
                             int argc, char **argv, int *exit_code) {
    char eb[512] = "";
    gov_err_t err;
    *exit_code = 1;
    gov_alloc_install_jansson();
    gov_log_init(spec->name, GOV_LOG_INFO);
    gov_processor_t *p = gov_calloc(1, sizeof *p);
    if (p == NULL)
        return GOV_ERR_NOMEM;
    p->spec = spec;
    if ((err = build_config(p, extra, nextra)) != GOV_OK)
        goto fail;

    gov_config_result_t res;
    err = gov_config_load(p->cfg, p->ncfg, argc, argv, &res, eb, sizeof eb);
    if (err != GOV_OK) {
        fprintf(stderr, "%s: %s\n", spec->name, eb);
        *exit_code = 2;
        goto fail;
    }
    if (res == GOV_CONFIG_EXIT) {
        *exit_code = 0;
        err = GOV_ERR_STATE;
        goto fail;
    }
    gov_log_init(spec->name, (gov_log_level_t)gov_log_level_parse(p->log_level));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    p->metrics = gov_metrics_new();
    p->status = gov_status_new();
    if (p->metrics == NULL || p->status == NULL) {
        err = GOV_ERR_NOMEM;
        goto fail;
    }
    p->m_events = gov_metrics_counter(p->metrics, "processor_events_total",
        "Events handled by a processor, by outcome (materialized, duplicate, dead_lettered, retried).",
        3, (const char *[]){"processor", "topic", "outcome"});
    p->m_lag = gov_metrics_gauge(p->metrics, "processor_consumer_lag",
        "Messages between the consumer's position and the partition's high watermark.",
        3, (const char *[]){"processor", "topic", "partition"});
    p->m_duration = gov_metrics_histogram(p->metrics, "processor_materialize_duration_seconds",
        "Time from receiving a message to its offset being stored.", 1,
        (const char *[]){"processor"}, gov_metrics_latency_bucket_count,
        gov_metrics_latency_buckets);
    gov_status_register(p->status, "kafka");
    gov_status_register(p->status, "redis");

    if ((err = gov_admin_start(p->admin_addr, (unsigned)p->admin_port, p->status,
                               p->metrics, &p->admin, eb, sizeof eb)) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "admin server did not start", "error", eb, (const char *)NULL);
        goto fail;
    }
    if ((err = gov_avro_registry_new(&p->avro, eb, sizeof eb)) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "schema registry did not load", "error", eb, (const char *)NULL);
        goto fail;
    }
    err = gov_redis_new(p->redis_host, (int)p->redis_port, (int)p->redis_timeout_ms,
                        &p->redis, eb, sizeof eb);
    if (err == GOV_ERR_UNAVAILABLE) {
        gov_log(GOV_LOG_WARN, "redis not reachable yet; will retry", "error", eb, (const char *)NULL);
    } else if (err != GOV_OK) {
        goto fail;
    }
    if ((err = gov_kafka_producer_new(p->kafka_brokers, spec->name, NULL, &p->producer,
                                      eb, sizeof eb)) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "kafka producer", "error", eb, (const char *)NULL);
        goto fail;
    }
    const char *topics[16];
    if (spec->ntopics > 16) {
        err = GOV_ERR_INVALID_ARG;
        goto fail;
    }
    for (size_t i = 0; i < spec->ntopics; i++)
        topics[i] = spec->topics[i].topic;
    if ((err = gov_kafka_consumer_new(p->kafka_brokers, p->kafka_group, spec->name,
                                      topics, spec->ntopics, NULL, &p->consumer,
                                      eb, sizeof eb)) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "kafka consumer", "error", eb, (const char *)NULL);
        goto fail;
    }
    char port[16], rport[16];
    snprintf(port, sizeof port, "%ld", p->admin_port);
    snprintf(rport, sizeof rport, "%ld", p->redis_port);
    gov_log(GOV_LOG_INFO, "started", "kafka", p->kafka_brokers, "group", p->kafka_group,
            "redis_host", p->redis_host, "redis_port", rport, "admin_port", port,
            (const char *)NULL);
    *out = p;
    *exit_code = 0;
    return GOV_OK;
fail:
    free_processor(p);
    return err == GOV_OK ? GOV_ERR_INTERNAL : err;
}

typedef struct lag_ctx {
    gov_processor_t *p;
} lag_ctx_t;

static void on_lag(void *opaque, const char *topic, int32_t partition, int64_t lag) {
    gov_processor_t *p = opaque;
    char part[16];
    snprintf(part, sizeof part, "%d", partition);
    if (lag >= 0)
        gov_metric_set(p->m_lag, (const char *[]){p->spec->name, topic, part}, (double)lag);
}

/* Readiness and lag, at most once a second. */
static void housekeeping(gov_processor_t *p) {
    int64_t now = gov_mono_micros();
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

static void count(gov_processor_t *p, const char *topic, const char *outcome) {
    gov_metric_inc(p->m_events, (const char *[]){p->spec->name, topic, outcome}, 1);
}

static void backoff_and_rewind(gov_processor_t *p, gov_kafka_msg_t *km, const char *why) {
    char off[32], delay[32];
    long ms = gov_backoff_ms(p->retry_attempt, 100, p->retry_max_ms);
    if (p->retry_attempt < 30)
        p->retry_attempt++;
    snprintf(off, sizeof off, "%lld", (long long)km->offset);
    snprintf(delay, sizeof delay, "%ld", ms);
    gov_log(GOV_LOG_WARN, "write failed; message will be retried", "topic", km->topic,
            "offset", off, "retry_in_ms", delay, "error", why, (const char *)NULL);
    count(p, km->topic, "retried");
    gov_kafka_consumer_rewind(p->consumer, km);
    gov_sleep_ms_interruptible(ms, &run_flag);
}

/* Sends km unchanged to <topic>.dlq and stores its offset only once the DLQ
 * has it.  If the DLQ cannot take it, the message is retried later. */
static void dead_letter(gov_processor_t *p, gov_kafka_msg_t *km, const char *reason,
                        const char *detail) {
    char dlq[256], part[16], off[32], eb[256];
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
    };
    gov_err_t err = gov_kafka_produce_sync(p->producer, dlq, km->key, km->key_len,
                                           km->value, km->len, h, sizeof h / sizeof h[0],
                                           (int)p->dlq_timeout_ms, NULL, NULL, eb, sizeof eb);
    if (err != GOV_OK) {
        backoff_and_rewind(p, km, eb);
        return;
    }
    gov_log(GOV_LOG_WARN, "poison message sent to dead-letter topic", "topic", km->topic,
            "partition", part, "offset", off, "reason", reason, "detail", det, "dlq", dlq,
            (const char *)NULL);
    count(p, km->topic, "dead_lettered");
    gov_kafka_consumer_store(p->consumer, km);
    p->retry_attempt = 0;
}

static const gov_processor_topic_t *find_topic(gov_processor_t *p, const char *topic) {
    for (size_t i = 0; i < p->spec->ntopics; i++)
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

gov_err_t gov_processor_next(gov_processor_t *p, gov_processor_msg_t *m) {
    memset(m, 0, sizeof *m);
    housekeeping(p);
    gov_kafka_msg_t *km = NULL;
    gov_err_t err = gov_kafka_consumer_poll(p->consumer, 200, &km);
    if (err != GOV_OK)
        return err;
    int64_t started = gov_mono_micros();
    const gov_processor_topic_t *t = find_topic(p, km->topic);
    char eb[256] = "";
    json_t *ev = NULL;
    const char *type = NULL;
    if (t == NULL) {
        dead_letter(p, km, gov_reason_code(GOV_REASON_UNEXPECTED_TOPIC), km->topic);
        gov_kafka_msg_free(km);
        return GOV_ERR_VERIFY;
    }
    err = gov_avro_decode(p->avro, km->value, km->len, &ev, &type, eb, sizeof eb);
    if (err == GOV_ERR_NOMEM) {
        backoff_and_rewind(p, km, "out of memory decoding");
        gov_kafka_msg_free(km);
        return err;
    }
    if (err != GOV_OK) {
        dead_letter(p, km, gov_reason_code(err == GOV_ERR_UNSUPPORTED ? GOV_REASON_UNKNOWN_SCHEMA
                                                                      : GOV_REASON_UNDECODABLE),
                    eb);
        gov_kafka_msg_free(km);
        return GOV_ERR_PARSE;
    }
    gov_reason_t why = check_envelope(t, km, ev, type);
    if (why != GOV_REASON_NONE) {
        dead_letter(p, km, gov_reason_code(why), type);
        json_decref(ev);
        gov_kafka_msg_free(km);
        return GOV_ERR_VERIFY;
    }
    m->kafka = km;
    m->event = ev;
    m->type = type;
    m->started_us = started;
    snprintf(m->source, sizeof m->source, "%s/%d/%lld", km->topic, km->partition,
             (long long)km->offset);
    return GOV_OK;
}

void gov_processor_done(gov_processor_t *p, gov_processor_msg_t *m, gov_err_t result,
                        gov_reason_t reason, const char *detail) {
    gov_kafka_msg_t *km = m->kafka;
    switch (result) {
    case GOV_OK:
    case GOV_ERR_DUPLICATE:
        gov_kafka_consumer_store(p->consumer, km);
        count(p, km->topic, result == GOV_OK ? "materialized" : "duplicate");
        p->retry_attempt = 0;
        break;
    case GOV_ERR_VERIFY:
    case GOV_ERR_PARSE:
    case GOV_ERR_INVALID_ARG:
    case GOV_ERR_TOO_LARGE:
    case GOV_ERR_UNSUPPORTED:
        dead_letter(p, km, reason != GOV_REASON_NONE ? gov_reason_code(reason) : gov_err_code(result),
                    m->type);
        break;
    default:
        backoff_and_rewind(p, km, detail ? detail : gov_err_str(result));
        break;
    }
    gov_metric_observe(p->m_duration, (const char *[]){p->spec->name},
                       (double)(gov_mono_micros() - m->started_us) / 1e6);
    json_decref(m->event);
    gov_kafka_msg_free(km);
    memset(m, 0, sizeof *m);
}

gov_state_pos_t gov_processor_position(const gov_processor_t *p, const gov_processor_msg_t *m) {
    return (gov_state_pos_t){p->spec->name, m->kafka->topic, m->kafka->partition,
                             (int64_t)m->kafka->offset};
}

int gov_processor_shutdown(gov_processor_t *p) {
    gov_log(GOV_LOG_INFO, "shutting down", (const char *)NULL);
    free_processor(p);
    gov_log(GOV_LOG_INFO, "stopped", (const char *)NULL);
    return 0;
}
