/* edge.h - gov-edge's shared context, request and response types.
 *
 * The server (server.c) turns libmicrohttpd callbacks into one
 * edge_request_t per request - method, path segments, query, headers it
 * needs, and the body (bounded by max_body) - routes it to a handler, and
 * sends the handler's edge_response_t.  Handlers never touch libmicrohttpd:
 * they read the snapshot and fill a response, so they can be reasoned about
 * (and fuzzed) as plain functions.  The one kind that reads Redis, a lookup
 * (edge_decision_get), runs on the server's lookup threads, never on the
 * HTTP threads that answer /v1/evaluate.
 *
 * Thread-safety: handlers run on libmicrohttpd's pool threads or on the
 * lookup threads; everything in edge_t they use is thread-safe (snapshot,
 * metrics) or read-only (config); per-thread resources (matcher scratch,
 * Redis connection) are thread-local.
 */
#ifndef EDGE_H
#define EDGE_H

#include <jansson.h>
#include <stddef.h>

#include "gov_admin.h"
#include "gov_avro.h"
#include "gov_constitution.h"
#include "gov_kafka.h"
#include "gov_metrics.h"
#include "gov_reason.h"
#include "snapshot.h"

#define EDGE_MAX_SEGMENTS 8

typedef struct edge_config {
    char *listen_addr;
    long port;
    long threads;
    long max_body;
    long connection_limit;
    long connection_timeout_ms;
    char *kafka_brokers;
    char *redis_host;
    long redis_port;
    long redis_timeout_ms;
    long reconcile_ms;
    char *log_level;
    char *edge_id;
    char *trust_file;   /* constitution trust, the format gov-constitution reads */
    long lookup_threads;    /* threads that run the Redis lookups (GET /v1/decisions) */
    long lookup_queue;      /* lookups waiting for one; more get 503 at once */
    long lookup_timeout_ms; /* Redis timeout of a lookup, and its hold-off after a failure */
    char *rulepack_trust_file;   /* rule-pack trust, the file gov-rulepacks reads */
} edge_config_t;

typedef struct edge {
    edge_config_t cfg;
    edge_state_t *state;
    gov_metrics_t *metrics;
    gov_status_t *status;
    gov_metric_t *m_requests;     /* http_requests_total{route,code} */
    gov_metric_t *m_duration;     /* http_request_duration_seconds{route} */
    gov_metric_t *m_snapshot_gen; /* edge_snapshot_generation */
    gov_metric_t *m_reloads;      /* edge_state_reloads_total{tenant,trigger,outcome} */
    gov_metric_t *m_rejected;     /* edge_state_rejected_total{tenant,kind,reason} */
    gov_trust_t *trust;           /* from trust_file; immutable */
    gov_trust_t *rulepack_trust;  /* from rulepack_trust_file; immutable */
    gov_metric_t *m_decisions;    /* policy_decision_total{tenant,decision,policy_id} */
    gov_metric_t *m_eval_duration;/* policy_evaluation_duration_seconds */
    gov_metric_t *m_log_failed;   /* policy_decision_log_failed_total{stage} */
    gov_kafka_producer_t *producer;   /* decision log; thread-safe */
    gov_avro_registry_t *avro;        /* immutable */
} edge_t;

typedef struct edge_request {
    const char *method;
    const char *path;
    size_t nseg;
    char *seg[EDGE_MAX_SEGMENTS];   /* decoded path segments (owned by the server) */
    const char *body;               /* NUL-terminated, may contain NUL only if body_len says */
    size_t body_len;
    const char *content_type;
    const char *authorization;
} edge_request_t;

typedef struct edge_response {
    unsigned status;
    const char *content_type;       /* static */
    char *body;                     /* owned (gov_malloc) */
    size_t body_len;
    const char *route;              /* static route name for metrics */
    char *headers[16];              /* owned "Name: value" strings */
    size_t nheaders;
} edge_response_t;

/* Sets a JSON body (steals j) with status. */
void edge_respond_json(edge_response_t *r, unsigned status, json_t *j);
/* Sets the error body {"error":{"code","message"}} with status; "code" is
 * gov_reason_code(code), the message is fmt's text made valid UTF-8. */
void edge_respond_error(edge_response_t *r, unsigned status, gov_reason_t code,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Adds a header (copied). */
void edge_add_header(edge_response_t *r, const char *name, const char *value);

/* The router: fills resp for req. */
void edge_route(edge_t *e, const edge_request_t *req, edge_response_t *resp);

/* Handlers (evaluate_api.c). */
void edge_evaluate(edge_t *e, const edge_request_t *req, edge_response_t *resp);
/* A lookup: reads Redis (with lookup_timeout_ms), so it runs on a lookup
 * thread only (server.c routes it there). */
void edge_decision_get(edge_t *e, const edge_request_t *req, edge_response_t *resp);

/* Handlers (constitution_api.c). */
void edge_constitution_list(edge_t *e, const edge_request_t *req, edge_response_t *resp);
void edge_constitution_get(edge_t *e, const edge_request_t *req, edge_response_t *resp);

/* Server lifecycle (server.c). */
typedef struct edge_server edge_server_t;
gov_err_t edge_server_start(edge_t *e, edge_server_t **out, char *errbuf, size_t errbuf_size);
void edge_server_stop(edge_server_t *s);

/* Loader (loader.c): loads every tenant from Redis, then follows
 * constitution.updated and reconciles periodically, on its own thread. */
typedef struct edge_loader edge_loader_t;
gov_err_t edge_loader_start(edge_t *e, edge_loader_t **out, char *errbuf, size_t errbuf_size);
void edge_loader_stop(edge_loader_t *l);

#endif
