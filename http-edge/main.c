/* gov-edge - the synchronous HTTP API of Soma Governance Core.
 *
 * Serves the constitution read APIs (and, as later parts land, evaluate,
 * tokens, sessions and gateway authorization) from an in-memory snapshot of
 * the state the processors materialized in Redis.  A request never waits on
 * Redis; the loader thread keeps the snapshot current (constitution.updated
 * events plus periodic reconciliation).  /healthz, /readyz and /metrics are
 * served on the same port.
 *
 * Reads top to bottom: config -> state -> loader -> server -> wait for a
 * signal -> stop the server, then the loader.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "edge.h"
#include "gov_alloc.h"
#include "gov_config.h"
#include "gov_log.h"
#include "gov_matcher.h"

static volatile sig_atomic_t running = 1;

static void on_signal(int sig) {
    (void)sig;
    running = 0;
}

static int validate_log_level(const char *v, char *eb, size_t n) {
    if (gov_log_level_parse(v) < 0) {
        snprintf(eb, n, "must be debug, info, warn or error");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    static edge_t e;
    edge_config_t *c = &e.cfg;
    const gov_config_entry_t config[] = {
        {"listen_addr", GOV_CFG_STRING, "127.0.0.1", 0, 0, "IPv4 address to listen on", &c->listen_addr, NULL, 0},
        {"port", GOV_CFG_INT, "8700", 1, 65535, "HTTP port", &c->port, NULL, 0},
        {"threads", GOV_CFG_INT, "2", 1, 256, "HTTP worker threads (epoll thread pool)", &c->threads, NULL, 0},
        {"max_body", GOV_CFG_INT, "65536", 256, 16777216, "largest request body accepted, bytes", &c->max_body, NULL, 0},
        {"connection_limit", GOV_CFG_INT, "1024", 1, 100000, "concurrent connections", &c->connection_limit, NULL, 0},
        {"connection_timeout", GOV_CFG_DURATION_MS, "30s", 1000, 3600000, "idle connection timeout", &c->connection_timeout_ms, NULL, 0},
        {"kafka_brokers", GOV_CFG_STRING, "127.0.0.1:19092", 0, 0, "Kafka bootstrap servers", &c->kafka_brokers, NULL, 0},
        {"redis_host", GOV_CFG_STRING, "127.0.0.1", 0, 0, "Redis host", &c->redis_host, NULL, 0},
        {"redis_port", GOV_CFG_INT, "6390", 1, 65535, "Redis port", &c->redis_port, NULL, 0},
        {"redis_timeout", GOV_CFG_DURATION_MS, "2s", 10, 60000, "Redis timeout (loader only)", &c->redis_timeout_ms, NULL, 0},
        {"reconcile", GOV_CFG_DURATION_MS, "30s", 100, 3600000, "period of the full comparison with Redis", &c->reconcile_ms, NULL, 0},
        {"log_level", GOV_CFG_STRING, "info", 0, 0, "debug, info, warn or error", &c->log_level, validate_log_level, 0},
        {"edge_id", GOV_CFG_STRING, "edge-1", 0, 0, "this replica's name, in decision logs", &c->edge_id, NULL, 0},
    };
    const size_t ncfg = sizeof config / sizeof config[0];
    char eb[512];
    int rc = 1;
    edge_server_t *server = NULL;
    edge_loader_t *loader = NULL;

    gov_alloc_install_jansson();
    gov_log_init("gov-edge", GOV_LOG_INFO);
    gov_config_result_t res;
    if (gov_config_load(config, ncfg, argc, argv, &res, eb, sizeof eb) != GOV_OK) {
        fprintf(stderr, "gov-edge: %s\n", eb);
        gov_config_free_strings(config, ncfg);
        return 2;
    }
    if (res == GOV_CONFIG_EXIT) {
        gov_config_free_strings(config, ncfg);
        return 0;
    }
    gov_log_init("gov-edge", (gov_log_level_t)gov_log_level_parse(c->log_level));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    e.state = edge_state_new();
    e.metrics = gov_metrics_new();
    e.status = gov_status_new();
    if (!e.state || !e.metrics || !e.status)
        goto out;
    e.m_requests = gov_metrics_counter(e.metrics, "http_requests_total",
        "HTTP requests answered, by route and status code.", 2, (const char *[]){"route", "code"});
    e.m_duration = gov_metrics_histogram(e.metrics, "http_request_duration_seconds",
        "Time to answer a request, by route.", 1, (const char *[]){"route"},
        gov_metrics_latency_bucket_count, gov_metrics_latency_buckets);
    e.m_snapshot_gen = gov_metrics_gauge(e.metrics, "edge_snapshot_generation",
        "Generation of the in-memory state snapshot (increments on every change).", 0, NULL);
    e.m_decisions = gov_metrics_counter(e.metrics, "policy_decision_total",
        "Policy decisions, by tenant, decision and rule pack (policy_id).", 3,
        (const char *[]){"tenant", "decision", "policy_id"});
    e.m_eval_duration = gov_metrics_histogram(e.metrics, "policy_evaluation_duration_seconds",
        "Time to evaluate one request (constitution, rules, score), excluding HTTP.", 0, NULL,
        gov_metrics_latency_bucket_count, gov_metrics_latency_buckets);
    e.m_log_failed = gov_metrics_counter(e.metrics, "policy_decision_log_failed_total",
        "Decisions that could not be logged to policy.decisions (enqueue or delivery).", 1,
        (const char *[]){"stage"});
    e.m_reloads = gov_metrics_counter(e.metrics, "edge_state_reloads_total",
        "Tenant state loads from Redis, by trigger (startup, event, reconcile) and outcome.", 3,
        (const char *[]){"tenant", "trigger", "outcome"});
    gov_status_register(e.status, "state");
    gov_status_register(e.status, "redis");
    gov_status_register(e.status, "kafka");

    if (gov_matcher_install_allocator() != GOV_OK ||
        gov_avro_registry_new(&e.avro, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "start-up failed", "error", eb, (const char *)NULL);
        goto out;
    }
    if (gov_kafka_producer_new(c->kafka_brokers, "gov-edge", NULL, &e.producer, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "decision log producer", "error", eb, (const char *)NULL);
        goto out;
    }
    if (edge_loader_start(&e, &loader, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "loader did not start", "error", eb, (const char *)NULL);
        goto out;
    }
    if (edge_server_start(&e, &server, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "HTTP server did not start", "error", eb, (const char *)NULL);
        goto out;
    }
    char port[16], threads[16];
    snprintf(port, sizeof port, "%ld", c->port);
    snprintf(threads, sizeof threads, "%ld", c->threads);
    gov_log(GOV_LOG_INFO, "listening", "addr", c->listen_addr, "port", port, "threads", threads,
            (const char *)NULL);
    while (running) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL); /* a signal also cuts this short */
    }
    gov_log(GOV_LOG_INFO, "shutting down", (const char *)NULL);
    rc = 0;
out:
    edge_server_stop(server);
    edge_loader_stop(loader);
    gov_kafka_producer_free(e.producer, 10000);
    gov_avro_registry_free(e.avro);
    gov_status_free(e.status);
    gov_metrics_free(e.metrics);
    edge_state_free(e.state);
    gov_config_free_strings(config, ncfg);
    return rc;
}
