/* gov-edge - the synchronous HTTP API of Soma Governance Core.
 *
 * Serves the constitution read APIs (and, as later parts land, evaluate,
 * tokens, sessions and gateway authorization) from an in-memory snapshot of
 * the state the processors materialized in Redis.  An HTTP thread never waits
 * on Redis (lookups have threads of their own, server.c); the loader thread
 * keeps the snapshot current (constitution.updated
 * events plus periodic reconciliation).  /healthz, /readyz and /metrics are
 * served on the same port.
 *
 * Reads top to bottom: rows -> start (gov_runtime: config, log, signals,
 * metrics, producer) -> state -> loader -> server -> wait for a signal ->
 * stop the server, then the loader -> shut down.
 */
#include <stdio.h>

#include "edge.h"
#include "gov_config.h"
#include "gov_file.h"
#include "gov_log.h"
#include "gov_matcher.h"
#include "gov_runtime.h"

/* The HTTP server answers /healthz, /readyz and /metrics on its own port:
 * no admin server.  Redis is the loader's (its own connection). */
static edge_t the_edge;
static const gov_runtime_spec_t spec = {
    .name = "gov-edge",
    .producer = 1, /* the decision log, token and session events */
    /* bounds every deferred answer: librdkafka reports each message,
     * acknowledged or failed, within it */
    .producer_message_timeout_ms = &the_edge.cfg.kafka_ack_timeout_ms,
    .producer_linger_ms = &the_edge.cfg.kafka_linger_ms,
};

/* Registers the edge's metrics and readiness components. */
static int register_metrics(edge_t *e) {
    e->m_requests = gov_metrics_counter(e->metrics, "http_requests_total",
        "HTTP requests answered, by route and status code.", 2, (const char *[]){"route", "code"});
    e->m_duration = gov_metrics_histogram(e->metrics, "http_request_duration_seconds",
        "Time to answer a request, by route.", 1, (const char *[]){"route"},
        gov_metrics_latency_bucket_count, gov_metrics_latency_buckets);
    e->m_snapshot_gen = gov_metrics_gauge(e->metrics, "edge_snapshot_generation",
        "Generation of the in-memory state snapshot (increments on every change).", 0, NULL);
    e->m_decisions = gov_metrics_counter(e->metrics, "policy_decision_total",
        "Policy decisions, by tenant, decision and rule pack (policy_id).", 3,
        (const char *[]){"tenant", "decision", "policy_id"});
    e->m_eval_duration = gov_metrics_histogram(e->metrics, "policy_evaluation_duration_seconds",
        "Time to evaluate one request (constitution, rules, score), excluding HTTP.", 0, NULL,
        gov_metrics_latency_bucket_count, gov_metrics_latency_buckets);
    e->m_log_failed = gov_metrics_counter(e->metrics, "policy_decision_log_failed_total",
        "Decisions that could not be logged to policy.decisions (enqueue or delivery).", 1,
        (const char *[]){"stage"});
    e->m_reloads = gov_metrics_counter(e->metrics, "edge_state_reloads_total",
        "Tenant state loads from Redis, by trigger (startup, event, reconcile) and outcome.", 3,
        (const char *[]){"tenant", "trigger", "outcome"});
    e->m_rejected = gov_metrics_counter(e->metrics, "edge_state_rejected_total",
        "Tenant state in Redis that did not verify here and is not served, by kind "
        "(constitution; state: keys that cannot be read as stored) and reason code.", 3, (const char *[]){"tenant", "kind", "reason"});
    e->m_tokens = gov_metrics_counter(e->metrics, "identity_tokens_issued_total",
        "Token issuance requests that reached signing, by outcome (issued; kafka_unavailable: "
        "the TokenIssued or AuditEvent was not acknowledged and no token was answered).", 1,
        (const char *[]){"outcome"});
    e->m_gw_requests = gov_metrics_counter(e->metrics, "gateway_requests_total",
        "Gateway authorization checks (/v1/authz), by route and outcome (allow, deny, review, "
        "unauthenticated, error).", 2, (const char *[]){"route", "decision"});
    e->m_gw_duration = gov_metrics_histogram(e->metrics, "gateway_policy_duration_seconds",
        "Time to decide one gateway check: token, evaluation and consistency checks.", 0, NULL,
        gov_metrics_latency_bucket_count, gov_metrics_latency_buckets);
    e->m_deferred = gov_metrics_gauge(e->metrics, "edge_deferred_requests",
        "Requests whose answer awaits its Kafka acknowledgements (token issuance, sessions); "
        "at most deferred_max (read from the count when /metrics is rendered).", 0, NULL);
    e->m_deferred_refused = gov_metrics_counter(e->metrics, "edge_deferred_refused_total",
        "Requests that would await Kafka acknowledgements (token issuance, sessions) answered "
        "503 at once, by reason (deferred_capacity: deferred_max reached; kafka_unavailable: "
        "the acknowledgement breaker is open; shutting_down: the edge is stopping).", 1,
        (const char *[]){"reason"});
    e->m_conn_limited = gov_metrics_counter(e->metrics, "edge_connection_limit_refused_total",
        "Connections libmicrohttpd accepted and closed at once because connection_limit was "
        "reached (at the limit it mostly stops accepting: new connections then wait in the "
        "kernel's backlog, uncounted).", 0, NULL);
    gov_status_register(e->status, "state");
    gov_status_register(e->status, "redis");
    gov_status_register(e->status, "kafka");
    /* the producer's acknowledgements (tokens_api.c breaker): DEGRADED, never
     * NOT_READY, while they stall - /v1/evaluate and /v1/authz need none */
    gov_status_register(e->status, "kafka_acks");
    gov_status_set(e->status, "kafka_acks", GOV_STATUS_OK, NULL, NULL);
    return e->m_deferred_refused && e->m_conn_limited && e->m_gw_requests && e->m_gw_duration && e->m_deferred && e->m_tokens && e->m_requests && e->m_duration && e->m_snapshot_gen && e->m_decisions &&
           e->m_eval_duration && e->m_log_failed && e->m_reloads && e->m_rejected;
}

/* Stops the spool's drain after the server: waits shutdown_grace for Kafka
 * to acknowledge what it holds; what is left stays in the file for the next
 * start.  The producer outlives the spool (gov_runtime_shutdown frees it),
 * so groups still out are purged here, while the spool they report to is
 * alive; one that still has not reported keeps the spool from being freed
 * (the process is exiting: a leak, never a use after free). */
static void stop_spool(edge_t *e) {
    if (e->spool == NULL)
        return;
    if (gov_spool_stop(e->spool, (int)e->cfg.shutdown_grace_ms) > 0 && e->producer) {
        gov_kafka_producer_purge(e->producer, 2000);
        if (gov_spool_stop(e->spool, 2000) > 0) {
            gov_log(GOV_LOG_ERROR, "decision spool: batches still out at exit; not freed",
                    (const char *)NULL);
            e->spool = NULL;
            return;
        }
    }
    gov_spool_free(e->spool);
    e->spool = NULL;
}

int main(int argc, char **argv) {
    edge_t *const ep = &the_edge;
    edge_config_t *c = &ep->cfg;
    const gov_config_entry_t rows[] = {
        GOV_CFG_STRING("listen_addr", "127.0.0.1", "IPv4 address to listen on", &c->listen_addr),
        GOV_CFG_INT("port", "8700", 1, 65535, "HTTP port", &c->port),
        GOV_CFG_INT("threads", "2", 1, 256, "HTTP worker threads (epoll thread pool)",
                    &c->threads),
        GOV_CFG_INT("max_body", "65536", 256, 16777216, "largest request body accepted, bytes",
                    &c->max_body),
        GOV_CFG_INT("connection_limit", "1024", 1, 100000, "concurrent connections",
                    &c->connection_limit),
        GOV_CFG_DURATION("connection_timeout", "30s", 1000, 3600000, "idle connection timeout",
                         &c->connection_timeout_ms),
        GOV_RUNTIME_ROW_HELP("kafka_brokers", "Kafka bootstrap servers"),
        GOV_RUNTIME_ROW("redis_host"),
        GOV_RUNTIME_ROW("redis_port"),
        GOV_RUNTIME_ROW_HELP("redis_timeout", "Redis timeout (loader only)"),
        GOV_CFG_INT("lookup_threads", "2", 1, 64,
                    "threads that run Redis lookups (GET /v1/decisions, the token endpoints), "
                    "apart from the HTTP threads so a slow Redis never delays /v1/evaluate",
                    &c->lookup_threads),
        GOV_CFG_INT("lookup_queue", "64", 1, 100000,
                    "lookups waiting for a lookup thread; more are answered 503 "
                    "lookup_capacity at once",
                    &c->lookup_queue),
        GOV_CFG_INT("policy_lookup_threads", "2", 1, 64,
                    "threads of the policy lane, the lookups of /v1/authz and "
                    "/v1/sessions/start, apart from the other lookups (token endpoints, "
                    "decisions) so a flood of those never refuses the gateway's checks",
                    &c->policy_lookup_threads),
        GOV_CFG_INT("policy_lookup_queue", "64", 1, 100000,
                    "policy-lane lookups waiting for a thread; more are answered 503 "
                    "lookup_capacity (with X-Policy-Decision: deny) at once",
                    &c->policy_lookup_queue),
        GOV_CFG_DURATION("lookup_timeout", "250ms", 10, 10000,
                         "Redis connect and command timeout of a lookup; after a failure, "
                         "lookups answer 503 at once for as long", &c->lookup_timeout_ms),
        GOV_CFG_INT("deferred_max", "256", 1, 1000000,
                    "requests whose answer awaits its Kafka acknowledgements (token issuance, "
                    "sessions) at once; more are answered 503 deferred_capacity at once; at "
                    "most connection_limit/4 (refused at start-up otherwise), so a Kafka stall "
                    "cannot hold every connection", &c->deferred_max),
        GOV_CFG_DURATION("kafka_ack_timeout", "10s", 1000, 300000,
                         "message.timeout.ms of the edge's producer: a token or session whose "
                         "events are not acknowledged within it is answered 503; when the "
                         "last 20 issuances within it all timed out, issuance answers 503 "
                         "kafka_unavailable at once (one probe a second) until one is "
                         "acknowledged", &c->kafka_ack_timeout_ms),
        GOV_CFG_DURATION("kafka_linger", "5ms", 0, 1000,
                         "linger.ms of the edge's producer: how long a decision (or token "
                         "event) waits for others to share its produce request; the broker's "
                         "CPU is spent per request, so a longer linger cuts the decision "
                         "log's broker CPU per decision, and adds at most this much to a "
                         "token's or session's answer (they wait for the acknowledgement)",
                         &c->kafka_linger_ms),
        GOV_CFG_DURATION("shutdown_grace", "5s", 0, 300000,
                         "how long a stop waits for answers awaiting Kafka acknowledgements; "
                         "then their messages are purged and their clients answered 503",
                         &c->shutdown_grace_ms),
        GOV_CFG_DURATION("client_cache_ttl", "1s", 0, 60000,
                         "how long a client record read from Redis is reused for token "
                         "issuance (issuance then needs no Redis read and runs on the HTTP "
                         "threads); a client removed in Redis is accepted for up to this long "
                         "after; 0: every issuance reads Redis on a lookup thread",
                         &c->client_cache_ttl_ms),
        GOV_CFG_DURATION("reconcile", "30s", 100, 3600000,
                         "period of the full comparison with Redis", &c->reconcile_ms),
        GOV_RUNTIME_ROW("log_level"),
        GOV_CFG_STRING("edge_id", "edge-1", "this replica's name, in decision logs", &c->edge_id),
        GOV_CFG_STRING("trust_file", NULL, "constitution trust, the file gov-constitution reads: every constitution loaded from Redis is verified against it (signatures, tenant binding, checksum) before it is served", &c->trust_file),
        GOV_KEYSTORE_CONFIG_ROWS(&c->keystore),
        GOV_CFG_STRING("token_issuer", "http://127.0.0.1:8700", "iss of every token this edge issues and accepts, and the base URL of the endpoints in /.well-known/openid-configuration", &c->token_issuer),
        GOV_CFG_STRING("token_audience", "soma-governance", "aud of every token this edge issues and accepts", &c->token_audience),
        GOV_CFG_INT("token_ttl_default_s", "900", 1, 86400, "lifetime of a token when the request names none, seconds", &c->token_ttl_default_s),
        GOV_CFG_INT("token_ttl_max_s", "3600", 1, 86400, "largest token lifetime: a longer ttl asked for is capped, a token living longer is refused (must stay below identity.tokens' 7-day retention)", &c->token_ttl_max_s),
        GOV_CFG_INT("token_leeway_s", "30", 0, 3600, "clock skew allowed on exp, nbf and iat when verifying", &c->token_leeway_s),
        GOV_CFG_INT("token_constitution_grace_s", "0", 0, 86400, "how long after a tenant's constitution was replaced tokens bound to the previous hash still verify (0: only the current hash)", &c->token_constitution_grace_s),
        GOV_CFG_DURATION("identity_refresh", "1s", 100, 600000, "period of the identity snapshot refresh (signing keys and JWKS from Redis)", &c->identity_refresh_ms),
        GOV_CFG_STRING("identity_trust_file", NULL, "identity trust, the file gov-identity reads: every signing key and client loaded from Redis is re-verified against it (signatures over the signed payload of its KeyRotated or ClientRegistered) before it is used or served in the JWKS", &c->identity_trust_file),
        GOV_CFG_STRING("authz_gateway_credential_file", NULL, "file holding the gateway credential (one line, 32-256 bytes): when set, /v1/authz answers only a check carrying it in X-Gov-Gateway-Credential (the nginx gateway's check location sets it; deploy/nginx/render.sh) and refuses any other with 403 authz_gateway_credential_invalid; unset: /v1/authz answers any caller (an edge not reachable but through the gateway)", &c->authz_gateway_credential_file),
        GOV_CFG_STRING("authz_required_scope", "session", "the scope a bearer token must hold to pass /v1/authz (a session token from /v1/sessions/start holds \"session\"): any other token is refused 403 insufficient_scope; \"\": any verified token passes", &c->authz_required_scope),
        GOV_CFG_STRING("decision_spool_dir", NULL, "directory of the durable decision spool (created 0700; one edge per directory, locked): every decision is written there before it is answered and sent to policy.decisions from there in order, so a Kafka outage loses none; when it is full, decisions are answered 503 decision_log_full. Unset: no spool - decisions are queued to the producer directly and an outage longer than kafka_ack_timeout loses them", &c->decision_spool_dir),
        GOV_CFG_INT("decision_spool_bytes", "2147483648", 65536, 1099511627776, "size of the decision spool's ring file, bytes, reserved on disk at start (posix_fallocate), rounded down to a multiple of 8; at about 600 bytes a decision the default holds 10 minutes at 5,000/s with room to spare (docs/contracts.md, Decision spool); an existing spool file keeps its size until it is removed", &c->decision_spool_bytes),
        GOV_CFG_DURATION("decision_spool_sync", "1s", 0, 3600000, "period of the decision spool's msync: a kill -9 never loses a spooled decision, a power loss loses at most this much; 0: the kernel's writeback only", &c->decision_spool_sync_ms),
        GOV_CFG_INT("decision_spool_degraded_pct", "50", 1, 100, "fill level (percent) from which readiness shows the decision_spool component DEGRADED (ERROR while it refuses decisions)", &c->decision_spool_degraded_pct),
        GOV_CFG_STRING("rulepack_trust_file", NULL, "rule-pack trust, the file gov-rulepacks reads: every rule pack loaded from Redis is verified against it (signatures over its canonical SHA-256, tenant) before it is served", &c->rulepack_trust_file),
    };
    char eb[512] = "";
    int rc = 1;
    edge_server_t *server = NULL;
    edge_loader_t *loader = NULL;
    gov_runtime_t *rt;

    if (gov_runtime_start(&rt, &spec, rows, sizeof rows / sizeof rows[0], argc, argv, &rc) !=
        GOV_OK)
        return rc;
    rc = 1;
    /* Deferred answers hold their connections: at most a quarter of them,
     * so a Kafka stall leaves the rest to /v1/evaluate and /v1/authz. */
    if (c->deferred_max > c->connection_limit / 4) {
        char dm[24], cl[24];
        snprintf(dm, sizeof dm, "%ld", c->deferred_max);
        snprintf(cl, sizeof cl, "%ld", c->connection_limit);
        gov_log(GOV_LOG_ERROR, "deferred_max must be at most connection_limit/4",
                "deferred_max", dm, "connection_limit", cl, (const char *)NULL);
        goto out;
    }
    /* The shared settings, for the loader and the handlers (borrowed). */
    const gov_runtime_config_t *shared = gov_runtime_config(rt);
    c->kafka_brokers = shared->kafka_brokers;
    c->redis_host = shared->redis_host;
    c->redis_port = shared->redis_port;
    c->redis_nodes = shared->redis_nodes;
    c->redis_timeout_ms = shared->redis_timeout_ms;
    c->log_level = shared->log_level;
    ep->metrics = gov_runtime_metrics(rt);
    ep->status = gov_runtime_status(rt);
    ep->producer = gov_runtime_producer(rt);
    ep->avro = gov_runtime_avro(rt);

    /* Redis is not a trust root: without its own trust the edge would serve
     * whatever a Redis writer stored, so it does not start. */
    if (gov_file_trust_load(c->trust_file, &ep->trust, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "trust file cannot be used (set GOV_TRUST_FILE)", "path",
                c->trust_file ? c->trust_file : "(unset)", "error", eb, (const char *)NULL);
        goto out;
    }
    if (gov_file_trust_load(c->rulepack_trust_file, &ep->rulepack_trust, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "rule-pack trust file cannot be used (set GOV_RULEPACK_TRUST_FILE)",
                "path", c->rulepack_trust_file ? c->rulepack_trust_file : "(unset)", "error", eb,
                (const char *)NULL);
        goto out;
    }
    if (edge_authz_init(ep, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "gateway credential cannot be used (authz_gateway_credential_file)",
                "error", eb, (const char *)NULL);
        goto out;
    }
    ep->state = edge_state_new();
    if (ep->state == NULL || !register_metrics(ep)) {
        gov_log(GOV_LOG_ERROR, "start-up failed", "error", "out of memory", (const char *)NULL);
        goto out;
    }
    if (gov_matcher_install_allocator() != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "start-up failed", "error", "pattern matcher allocator",
                (const char *)NULL);
        goto out;
    }
    /* The keystore is optional: without one (file backend, no key
     * directory) the edge serves everything but issuance (503). */
    if (c->keystore.backend != GOV_KEYSTORE_FILE || c->keystore.key_dir != NULL) {
        gov_reason_t why = GOV_REASON_NONE;
        if (gov_keystore_open(&c->keystore, &ep->keystore, &why, eb, sizeof eb) != GOV_OK) {
            gov_log(GOV_LOG_ERROR, "keystore cannot be opened", "reason", gov_reason_code(why),
                    "error", eb, (const char *)NULL);
            goto out;
        }
    } else {
        gov_log(GOV_LOG_INFO, "no keystore configured (GOV_SIGNER_KEY_DIR): tokens are not issued",
                (const char *)NULL);
    }
    if (edge_identity_start(ep, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "identity snapshot did not start", "error", eb, (const char *)NULL);
        goto out;
    }
    if (edge_loader_start(ep, &loader, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "loader did not start", "error", eb, (const char *)NULL);
        goto out;
    }
    /* The spool before the server: no decision is answered before it can
     * be recorded; what a previous run left unacknowledged is sent first. */
    if (c->decision_spool_dir != NULL) {
        gov_spool_config_t sc = {
            .dir = c->decision_spool_dir,
            .capacity = (uint64_t)c->decision_spool_bytes & ~(uint64_t)7,
            .sync_ms = c->decision_spool_sync_ms,
            .degraded_pct = c->decision_spool_degraded_pct,
            .topic = "policy.decisions",
        };
        if (gov_spool_open(&sc, &ep->spool, eb, sizeof eb) != GOV_OK ||
            gov_spool_start(ep->spool, ep->producer, ep->metrics, ep->status, eb, sizeof eb) !=
                GOV_OK) {
            gov_log(GOV_LOG_ERROR, "decision spool cannot be used (decision_spool_dir)", "error",
                    eb, (const char *)NULL);
            goto out;
        }
    }
    if (edge_server_start(ep, &server, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "HTTP server did not start", "error", eb, (const char *)NULL);
        goto out;
    }
    char port[16], threads[16];
    snprintf(port, sizeof port, "%ld", c->port);
    snprintf(threads, sizeof threads, "%ld", c->threads);
    gov_log(GOV_LOG_INFO, "listening", "addr", c->listen_addr, "port", port, "threads", threads,
            (const char *)NULL);
    while (gov_runtime_running(rt))
        gov_runtime_sleep(rt, 100);
    gov_log(GOV_LOG_INFO, "shutting down", (const char *)NULL);
    rc = 0;
out:
    edge_server_stop(server);
    stop_spool(ep);
    edge_loader_stop(loader);
    edge_identity_stop(ep);
    gov_keystore_free(ep->keystore);
    edge_state_free(ep->state);
    gov_trust_free(ep->trust);
    gov_trust_free(ep->rulepack_trust);
    edge_authz_fini(ep);
    return gov_runtime_shutdown(rt, rc);
}
