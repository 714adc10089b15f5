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
#include "gov_jwt.h"
#include "gov_kafka.h"
#include "gov_metrics.h"
#include "gov_micros.h"
#include "gov_policy.h"
#include "gov_reason.h"
#include "gov_redis.h"
#include "gov_signer_rt.h"
#include "gov_spool.h"
#include "gov_util.h"
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
    char *redis_nodes;  /* NULL: one Redis at redis_host:redis_port; set: a cluster */
    long redis_timeout_ms;
    long reconcile_ms;
    char *log_level;
    char *edge_id;
    char *trust_file;   /* constitution trust, the format gov-constitution reads */
    long lookup_threads;    /* threads that run the Redis lookups (GET /v1/decisions) */
    long lookup_queue;      /* lookups waiting for one; more get 503 at once */
    long lookup_timeout_ms; /* Redis timeout of a lookup, and its hold-off after a failure */
    long policy_lookup_threads; /* the policy lane's threads (/v1/authz, /v1/sessions/start) */
    long policy_lookup_queue;   /* the policy lane's queue; more get 503 lookup_capacity */
    char *rulepack_trust_file;   /* rule-pack trust, the file gov-rulepacks reads */
    /* tokens (tokens_api.c, identity.c) */
    gov_keystore_config_t keystore;   /* where the signing keys are */
    char *token_issuer;               /* iss of every token, and the base of the endpoints */
    char *token_audience;             /* aud of every token */
    long token_ttl_default_s;
    long token_ttl_max_s;
    long token_leeway_s;
    long token_constitution_grace_s;  /* a replaced constitution hash still accepted */
    long identity_refresh_ms;         /* period of the identity snapshot refresh */
    char *identity_trust_file;        /* identity trust: keys and clients re-verified (identity.c) */
    long deferred_max;                /* answers awaiting a completion; more get 503 */
    long kafka_ack_timeout_ms;        /* message.timeout.ms of the edge's producer */
    long kafka_linger_ms;             /* linger.ms of the edge's producer */
    long client_cache_ttl_ms;         /* how long a client record read from Redis is reused */
    long shutdown_grace_ms;           /* a stop waits this for deferred answers, then purges */
    char *authz_gateway_credential_file; /* the secret /v1/authz requires (NULL: none) */
    char *authz_required_scope;       /* the scope a token needs at /v1/authz ("session") */
    /* the durable decision spool (gov_spool.h); dir NULL: none (decisions
     * go to the producer directly and a Kafka outage longer than
     * kafka_ack_timeout loses them) */
    char *decision_spool_dir;
    long decision_spool_bytes;
    long decision_spool_sync_ms;
    long decision_spool_degraded_pct;
} edge_config_t;

typedef struct edge_identity edge_identity_t;

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
    gov_keystore_t *keystore;         /* NULL: none configured (issuance answers 503) */
    edge_identity_t *identity;        /* signing keys, JWKS, constitution grace (identity.c) */
    gov_metric_t *m_tokens;           /* identity_tokens_issued_total{outcome} */
    gov_metric_t *m_gw_requests;      /* gateway_requests_total{route,decision} */
    gov_metric_t *m_gw_duration;      /* gateway_policy_duration_seconds */
    gov_metric_t *m_deferred;         /* edge_deferred_requests (gauge) */
    gov_metric_t *m_deferred_refused; /* edge_deferred_refused_total{reason} */
    gov_metric_t *m_conn_limited;     /* edge_connection_limit_refused_total */
    char *authz_credential;           /* from authz_gateway_credential_file; NULL: not required */
    gov_spool_t *spool;               /* the decision spool; NULL: none configured */
} edge_t;

typedef struct edge_request {
    const char *method;
    const char *path;               /* percent-decoded, without the query */
    const char *target;             /* the raw request target as sent, query included */
    size_t nseg;
    char *seg[EDGE_MAX_SEGMENTS];   /* decoded path segments (owned by the server) */
    const char *body;               /* NUL-terminated, may contain NUL only if body_len says */
    size_t body_len;
    const char *content_type;
    const char *authorization;
    void *conn;                     /* the server's connection: edge_request_header */
} edge_request_t;

/* The first value of request header name (case-insensitive), borrowed for
 * the request's life, or NULL (server.c).  Safe on a lookup thread too: the
 * connection is suspended there, and its headers are not written after they
 * were parsed. */
const char *edge_request_header(const edge_request_t *req, const char *name);
/* Calls fn(ctx, name, value) for every request header in order until fn
 * returns non-zero; returns that value, or 0 (server.c). */
typedef int (*edge_header_fn)(void *ctx, const char *name, const char *value);
int edge_request_headers(const edge_request_t *req, edge_header_fn fn, void *ctx);

typedef struct edge_response {
    unsigned status;
    const char *content_type;       /* static */
    char *body;                     /* owned (gov_malloc) */
    size_t body_len;
    const char *route;              /* static route name for metrics */
    char *headers[16];              /* owned "Name: value" strings */
    size_t nheaders;
    void *server_ctx;               /* the server's request (server.c); NULL outside it */
} edge_response_t;

/* Sets a JSON body (steals j) with status. */
void edge_respond_json(edge_response_t *r, unsigned status, json_t *j);
/* Sets the error body {"error":{"code","message"}} with status; "code" is
 * gov_reason_code(code), the message is fmt's text made valid UTF-8. */
void edge_respond_error(edge_response_t *r, unsigned status, gov_reason_t code,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Adds a header (copied). */
void edge_add_header(edge_response_t *r, const char *name, const char *value);

/* Deferred answers (server.c).  A handler that waits on something that
 * completes elsewhere (Kafka acknowledgements) does not hold its thread:
 *
 *     edge_deferred_t *d = edge_defer(resp);
 *     if (d == NULL) return;            // resp holds the 503
 *     ... hand d to whoever completes (never touch resp again) ...
 *     // later, on any thread:
 *     edge_response_t *r = edge_deferred_response(d);  // fill r
 *     edge_deferred_finish(d);
 *
 * The connection stays suspended (libmicrohttpd reads and times out
 * nothing of it) until both the handler has returned and the completion
 * has finished; whichever comes last resumes it, and it is answered then.
 * A client that closed meanwhile is noticed on that answer, so the request
 * context outlives every completion.  At most deferred_max at once. */
typedef struct edge_deferred edge_deferred_t;
/* Takes over resp (the caller must not touch it after handing the handle
 * on).  NULL when over deferred_max, when the server is stopping, or when
 * resp is not a server's (a handler called directly): resp then holds the
 * 503 (deferred_capacity, shutting_down; the OAuth shape when oauth) to
 * answer now. */
edge_deferred_t *edge_defer(edge_response_t *resp, int oauth);
/* Answers resp 503 why (deferred_capacity, shutting_down,
 * kafka_unavailable: a request that would await Kafka acknowledgements and
 * is refused at once) with msg, in the OAuth or the house shape, with
 * Retry-After, and counts it in edge_deferred_refused_total{reason}. */
void edge_deferred_refused(edge_t *e, edge_response_t *resp, gov_reason_t why, int oauth,
                           const char *msg);
/* The response to fill (borrowed, until edge_deferred_finish). */
edge_response_t *edge_deferred_response(edge_deferred_t *d);
/* Sends what the response holds; d is gone when this returns.  Any thread,
 * exactly once per handle; never blocks. */
void edge_deferred_finish(edge_deferred_t *d);

/* For a handler of a route that runs on the HTTP threads unless it needs
 * Redis (token issuance: the client record, when not cached): says so
 * instead of answering (resp holds nothing else); the server queues the
 * request to a lookup thread, where the handler runs again from the start.
 * Never called on a lookup thread. */
void edge_respond_lookup(edge_response_t *resp);
/* 1 on the server's lookup threads (where Redis may be waited on). */
int edge_on_lookup_thread(void);

/* 1 when the Content-Type ct (borrowed, may be NULL: 0) is the media type
 * want (lower case, borrowed): compared without regard to case (RFC 9110
 * section 8.3.1) and followed by nothing, or by optional whitespace and
 * ";" parameters - so "application/jsonx" and "application/json-seq" are
 * not "application/json".  O(strlen(want)). */
int edge_content_type_is(const char *ct, const char *want);

/* The router: fills resp for req. */
void edge_route(edge_t *e, const edge_request_t *req, edge_response_t *resp);

/* One evaluated decision (evaluate_api.c): what /v1/evaluate answers, and
 * what /v1/sessions/start and /v1/authz build on. */
typedef struct edge_decision {
    gov_policy_decision_t d;                 /* owned */
    char decision_id[GOV_UUID_STRLEN + 1];
    char score[GOV_MICROS_TEXT];             /* "0.350000" */
    int64_t evaluated_us;
    edge_snapshot_t *snapshot;               /* held reference: tenant stays valid */
    const edge_tenant_t *tenant;             /* borrowed from snapshot: constitution, pack */
} edge_decision_t;

/* Evaluates pr (parsed and validated by gov_policy_request_parse) against
 * its tenant's state and queues the decision log entry (PolicyDecision),
 * counting policy_decision_total.  0: *out is filled (edge_decision_clear);
 * -1: resp holds the error (503 state_not_loaded, constitution_missing,
 * constitution_rules_invalid, rulepack_missing, evaluation_failed) and *out
 * is empty.  Never waits on Redis or Kafka. */
int edge_decide(edge_t *e, const gov_policy_request_t *pr, edge_decision_t *out,
                edge_response_t *resp);
void edge_decision_clear(edge_decision_t *d);
/* Adds X-Policy-Decision, X-Policy-Score, X-Constitution-Hash and
 * X-Policy-Decision-Id of d to resp. */
void edge_decision_headers(const edge_decision_t *d, edge_response_t *resp);

/* Reads req's body as an evaluation request (415 unless JSON; parsed and
 * bounded by gov_policy_request_parse, limit max_body).  0: *pr is filled
 * (gov_policy_request_clear); -1: resp holds the 400/413/415/503.
 * (evaluate_api.c; /v1/evaluate and /v1/sessions/start) */
int edge_policy_request_read(edge_t *e, const edge_request_t *req, gov_policy_request_t *pr,
                             edge_response_t *resp);

/* Handlers (evaluate_api.c). */
void edge_evaluate(edge_t *e, const edge_request_t *req, edge_response_t *resp);
/* A lookup: reads Redis (with lookup_timeout_ms), so it runs on a lookup
 * thread only (server.c routes it there). */
void edge_decision_get(edge_t *e, const edge_request_t *req, edge_response_t *resp);

/* Gateway authorization (authz_api.c): nginx auth_request and Envoy
 * ext_authz (HTTP service).  A lookup (edge_token_check reads Redis). */
void edge_authz(edge_t *e, const edge_request_t *req, edge_response_t *resp);
/* The refusals of a check that need no lookup (REVIEW12 and REVIEW13 M2),
 * for the HTTP thread before the check is queued: no bearer token (401
 * authz_token_missing, WWW-Authenticate), a token without the configured
 * gateway credential (403 authz_gateway_credential_invalid), or a token
 * that fails edge_token_check's no-Redis pass (full = 0: signature,
 * iss/aud/exp/nbf against the identity snapshot; 401 with the token_*
 * reason and WWW-Authenticate error="invalid_token", as the late check
 * answers it), lacks authz_required_scope (403 insufficient_scope) or
 * cannot be checked because the keys are not loaded (503
 * identity_store_unavailable); all with X-Policy-Decision: deny, counted in
 * gateway_requests_total.  1: resp holds the answer; 0: resp untouched, the
 * token verified, the check goes to its lookup (which verifies it again in
 * full).  Reads req, the immutable e->authz_credential, the refcounted
 * identity snapshot and the clock: any thread.  Cost: O(headers), one JWT
 * parse and at most one Ed25519 verification. */
int edge_authz_early(edge_t *e, const edge_request_t *req, edge_response_t *resp);
/* The bearer prologue of /v1/authz and /v1/sessions/start (authz_api.c):
 * the Authorization: Bearer token verified in full (edge_token_check: a
 * lookup thread only) into *c, then its scope must hold `scope` (NULL or
 * "": any).  0: verified.  -1: resp holds the refusal, always with
 * X-Policy-Decision: deny - 401 authz_token_missing or the token's reason
 * (WWW-Authenticate: Bearer realm="<realm>", with error="invalid_token" and
 * error_description the reason for a bad token), 403 insufficient_scope
 * (error="insufficient_scope", scope), 503 identity_store_unavailable. */
int edge_bearer_check(edge_t *e, const edge_request_t *req, const char *realm,
                      const char *scope, gov_jwt_claims_t *c, edge_response_t *resp);
/* Reads the gateway credential of authz_gateway_credential_file into
 * e->authz_credential (owned; edge_authz_fini wipes and frees it): one line
 * of 32-256 bytes of [A-Za-z0-9._~+/=-] (a trailing newline is dropped).
 * Not configured: GOV_OK and no credential required.  GOV_ERR_* with the
 * detail in errbuf: the edge does not start (authz_api.c). */
gov_err_t edge_authz_init(edge_t *e, char *errbuf, size_t errbuf_size);
void edge_authz_fini(edge_t *e);

/* Handlers (constitution_api.c). */
void edge_constitution_list(edge_t *e, const edge_request_t *req, edge_response_t *resp);
void edge_constitution_get(edge_t *e, const edge_request_t *req, edge_response_t *resp);

/* The OAuth error shape (RFC 6749 section 5.2) the token endpoints answer:
 * {"error":"<code>","error_description":"<message>"}, code the reason's
 * stable code (server.c). */
void edge_respond_oauth_error(edge_response_t *r, unsigned status, gov_reason_t code,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* This thread's Redis connection for lookups (lookup_timeout_ms; NULL when
 * out of memory); owned by the thread (evaluate_api.c). */
gov_redis_t *edge_thread_redis(edge_t *e);

/* Handlers (tokens_api.c); issue, verify, introspect and revoke are lookups
 * (they wait on Redis and Kafka). */
void edge_token_issue(edge_t *e, const edge_request_t *req, edge_response_t *resp);
void edge_token_verify(edge_t *e, const edge_request_t *req, edge_response_t *resp);
void edge_token_introspect(edge_t *e, const edge_request_t *req, edge_response_t *resp);
void edge_token_revoke(edge_t *e, const edge_request_t *req, edge_response_t *resp);
void edge_jwks(edge_t *e, const edge_request_t *req, edge_response_t *resp);
void edge_openid_configuration(edge_t *e, const edge_request_t *req, edge_response_t *resp);

/* POST /v1/sessions/start (sessions_api.c): bearer token (scope
 * sessions:start) -> evaluation -> a session token on allow, answered
 * through edge_defer once its events are acknowledged.  A lookup (the
 * token's revocation is read from Redis). */
void edge_session_start(edge_t *e, const edge_request_t *req, edge_response_t *resp);

/* Identity snapshot (identity.c): the signing keys (Redis, via
 * gov_state_identity, with the keystore's signers), the JWKS, and the
 * constitution hashes replaced less than token_constitution_grace_s ago.
 * A thread refreshes it every identity_refresh_ms. */
gov_err_t edge_identity_start(edge_t *e, char *errbuf, size_t errbuf_size);
void edge_identity_stop(edge_t *e);

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
