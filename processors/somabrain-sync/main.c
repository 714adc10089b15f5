/* gov-somabrain-sync - fetches each tenant's signed constitution bundle from
 * SomaBrain and publishes it to constitution.bundles.
 *
 * For every configured tenant, on its own schedule (sync_interval +/- jitter;
 * exponential backoff per tenant after failures), it GETs somabrain_url with
 * {tenant} substituted, conditionally (If-None-Match with the ETag of the
 * last bundle it published), bounded in time and size (fetch.c).  A 200 body
 * must be a bundle of the right shape for that tenant (gov_bundle); it is
 * then produced as a ConstitutionBundle event, key = tenant, acks=all, with
 * the document as the exact JSON text received.  A 304 publishes nothing.
 * Every failure has a stable reason code and is counted
 * (somabrain_sync_errors_total), logged, audited (AuditEvent on
 * identity.audit) and shown in /readyz.
 *
 * What it does not do: verify signatures or checksums (gov-constitution does,
 * with the configured trust), or consume anything.  Fetches are sequential,
 * one tenant at a time; a slow SomaBrain delays the others by at most
 * total_timeout each.
 *
 * --once fetches every tenant once and exits 0 when all succeeded, else 1;
 * it does not start the admin server (a daemon may hold the port).
 *
 * Reads top to bottom: rows -> start (gov_runtime: config, log, signals,
 * metrics, admin server, producer) -> loop (fetch -> check -> publish) ->
 * shut down.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch.h"
#include "gov_admin.h"
#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_backoff.h"
#include "gov_bundle.h"
#include "gov_config.h"
#include "gov_kafka.h"
#include "gov_log.h"
#include "gov_metrics.h"
#include "gov_runtime.h"
#include "gov_time.h"
#include "gov_util.h"

#define COMPONENT "gov-somabrain-sync"
#define TOPIC_BUNDLES "constitution.bundles"
#define TOPIC_AUDIT "identity.audit"
#define MAX_TENANTS 1000
#define MAX_URL 2048

/* Every failure reason, so each series exists (at 0) from the start. */
static const gov_reason_t all_reasons[] = {
    GOV_REASON_UNREACHABLE, GOV_REASON_TIMEOUT, GOV_REASON_TLS,
    GOV_REASON_HTTP_STATUS, GOV_REASON_TOO_LARGE, GOV_REASON_TRANSFER_FAILED,
    GOV_REASON_INVALID_JSON, GOV_REASON_INVALID_BUNDLE,
    GOV_REASON_TENANT_MISMATCH, GOV_REASON_KAFKA_UNAVAILABLE, GOV_REASON_INTERNAL,
};

/* --- configuration ------------------------------------------------------------ */

static char *somabrain_url;
static char *somabrain_tenants;
static long sync_interval_ms;
static double sync_jitter;
static long connect_timeout_ms;
static long total_timeout_ms;
static long max_body;
static long backoff_base_ms;
static long backoff_max_ms;
static long produce_timeout_ms;
static char *ca_file;
static int once;

static int validate_url(const char *v, char *eb, size_t n) {
    size_t len = strlen(v);
    const char *scheme_end;
    if (strncasecmp(v, "http://", 7) == 0)
        scheme_end = v + 7;
    else if (strncasecmp(v, "https://", 8) == 0)
        scheme_end = v + 8;
    else {
        snprintf(eb, n, "must start with http:// or https://");
        return -1;
    }
    if (len > MAX_URL) {
        snprintf(eb, n, "longer than %d bytes", MAX_URL);
        return -1;
    }
    if (strstr(v, "{tenant}") == NULL) {
        snprintf(eb, n, "must contain {tenant}");
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f) {
            snprintf(eb, n, "must be printable ASCII without spaces");
            return -1;
        }
    /* The URL is logged, audited and published as the bundle's source:
     * credentials must not be in it. */
    size_t auth = strcspn(scheme_end, "/?#");
    if (memchr(scheme_end, '@', auth) != NULL) {
        snprintf(eb, n, "must not contain user information (credentials)");
        return -1;
    }
    return 0;
}

/* Calls fn for each comma-separated, blank-trimmed item; stops at the first
 * non-zero return and returns it. */
static int for_each_tenant(const char *list, int (*fn)(void *, const char *, size_t),
                           void *opaque) {
    const char *p = list;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *s = p;
        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        const char *e = end;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        int r = fn(opaque, s, (size_t)(e - s));
        if (r != 0)
            return r;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

typedef struct tenant_check {
    char seen[MAX_TENANTS][GOV_TENANT_MAX + 1];
    size_t n;
    char *eb;
    size_t ebn;
} tenant_check_t;

static int check_one_tenant(void *opaque, const char *s, size_t len) {
    tenant_check_t *c = opaque;
    if (!gov_tenant_valid(s, len)) {
        snprintf(c->eb, c->ebn, "\"%.*s\" is not a valid tenant id", (int)(len > 70 ? 70 : len), s);
        return -1;
    }
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->seen[i]) == len && memcmp(c->seen[i], s, len) == 0) {
            snprintf(c->eb, c->ebn, "tenant \"%.*s\" is listed twice", (int)len, s);
            return -1;
        }
    if (c->n == MAX_TENANTS) {
        snprintf(c->eb, c->ebn, "more than %d tenants", MAX_TENANTS);
        return -1;
    }
    memcpy(c->seen[c->n], s, len);
    c->seen[c->n++][len] = '\0';
    return 0;
}

static int validate_tenants(const char *v, char *eb, size_t n) {
    tenant_check_t *c = gov_calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(eb, n, "out of memory");
        return -1;
    }
    c->eb = eb;
    c->ebn = n;
    int r = for_each_tenant(v, check_one_tenant, c);
    gov_free(c);
    return r;
}

/* --once fetches and exits: it needs something to fetch. */
static int check_once(char *eb, size_t n) {
    if (once && (somabrain_url == NULL || somabrain_tenants == NULL || !somabrain_tenants[0])) {
        snprintf(eb, n, "--once needs somabrain_url and somabrain_tenants");
        return -1;
    }
    return 0;
}


static const gov_config_entry_t config[] = {
    GOV_CFG_STRING("somabrain_url", NULL,
                   "bundle URL template, http(s), with {tenant}, e.g. "
                   "https://somabrain/bundles/{tenant}.json",
                   &somabrain_url, GOV_CFG_VALIDATE(validate_url)),
    GOV_CFG_STRING("somabrain_tenants", NULL,
                   "comma-separated tenant ids whose bundles are fetched", &somabrain_tenants,
                   GOV_CFG_VALIDATE(validate_tenants)),
    GOV_CFG_DURATION("sync_interval", "5m", 1000, 24L * 3600 * 1000,
                     "time between fetches of one tenant's bundle", &sync_interval_ms),
    GOV_CFG_FRACTION("sync_jitter", "0.1", 0.0, 1.0,
                     "fraction (0..1) by which each wait is randomly shortened or lengthened",
                     &sync_jitter),
    GOV_CFG_DURATION("somabrain_connect_timeout", "2s", 10, 60000,
                     "TCP + TLS connect timeout of a fetch", &connect_timeout_ms),
    GOV_CFG_DURATION("somabrain_timeout", "10s", 100, 600000,
                     "timeout of a whole fetch, body included", &total_timeout_ms),
    GOV_CFG_INT("somabrain_max_body", "1048576", 256, GOV_AVRO_MAX_BODY,
                "largest bundle body accepted, bytes (at most the 1 MiB Kafka message bound)",
                &max_body),
    GOV_CFG_DURATION("sync_backoff_base", "1s", 10, 3600000,
                     "wait after a tenant's first failure; doubled for each further one",
                     &backoff_base_ms),
    GOV_CFG_DURATION("sync_backoff_max", "5m", 10, 24L * 3600 * 1000,
                     "longest wait after failures", &backoff_max_ms),
    GOV_CFG_DURATION("produce_timeout", "10s", 1000, 300000,
                     "how long Kafka may take to acknowledge (acks=all) a bundle or audit event",
                     &produce_timeout_ms),
    GOV_RUNTIME_ROW("kafka_brokers"),
    GOV_RUNTIME_ROW("admin_addr"),
    GOV_RUNTIME_ROW("admin_port"),
    GOV_RUNTIME_ROW("log_level"),
    GOV_CFG_STRING("somabrain_ca_file", NULL,
                   "PEM file of CA certificates for https (default: the system trust store)",
                   &ca_file),
    GOV_CFG_BOOL("once", "false",
                 "fetch every tenant once, publish, exit 0 if all succeeded else 1 (no admin "
                 "server)",
                 &once),
};
#define NCONFIG (sizeof config / sizeof config[0])

/* --- state ----------------------------------------------------------------- */

typedef struct tenant {
    char id[GOV_TENANT_MAX + 1];
    char *url;                              /* the template with {tenant} filled in */
    char status_name[GOV_TENANT_MAX + 16];  /* readiness component */
    char etag[SOMABRAIN_ETAG_MAX + 1];      /* of the last published bundle; "" none */
    unsigned failures;                      /* consecutive */
    int64_t next_due_us;                    /* monotonic */
} tenant_t;

typedef struct app {
    gov_runtime_t *rt;
    tenant_t *tenants;
    size_t ntenants;
    somabrain_fetch_opts_t fetch_opts;
    /* borrowed from rt */
    gov_metrics_t *metrics;
    gov_status_t *status;
    const gov_avro_registry_t *avro;
    gov_kafka_producer_t *producer;
    gov_metric_t *m_sync;
    gov_metric_t *m_errors;
    gov_metric_t *m_last_sync;
    gov_metric_t *m_duration;
} app_t;

static app_t app;
static gov_err_t register_parts(void *ctx, gov_metrics_t *metrics, gov_status_t *status);

/* --once has no admin server: a daemon may hold the port. */
static const gov_runtime_spec_t spec = {
    .name = COMPONENT,
    .default_admin_port = 8705,
    .admin = 1,
    .admin_unless = &once,
    .producer = 1,
    .producer_message_timeout_ms = &produce_timeout_ms,
    .producer_flush_ms = 5000,
    .check_config = check_once,
    .register_parts = register_parts,
    .register_ctx = &app,
};

/* Appends a tenant and its URL; returns -1 when out of memory. */
static int add_tenant(void *opaque, const char *s, size_t len) {
    app_t *a = opaque;
    tenant_t *t = &a->tenants[a->ntenants];
    memcpy(t->id, s, len);
    t->id[len] = '\0';
    snprintf(t->status_name, sizeof t->status_name, "tenant:%s", t->id);
    /* Substitute every {tenant}; the tenant syntax is URL-path safe. */
    size_t n = 0;
    for (const char *p = strstr(somabrain_url, "{tenant}"); p; p = strstr(p + 8, "{tenant}"))
        n++;
    size_t size = strlen(somabrain_url) + n * len + 1;
    if ((t->url = gov_malloc(size)) == NULL)
        return -1;
    char *o = t->url;
    for (const char *p = somabrain_url; *p;) {
        if (strncmp(p, "{tenant}", 8) == 0) {
            memcpy(o, t->id, len);
            o += len;
            p += 8;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    a->ntenants++;
    return 0;
}

/* Sets t's next fetch time from now and returns the delay in ms. */
static long schedule(tenant_t *t) {
    long ms = gov_backoff_periodic_ms(sync_interval_ms, sync_jitter, backoff_base_ms,
                                      backoff_max_ms, t->failures, gov_random_unit());
    t->next_due_us = gov_mono_micros() + (int64_t)ms * 1000;
    return ms;
}

/* --- audit -------------------------------------------------------------------- */

/* Produces the AuditEvent of a failed sync and waits for the broker.  A
 * delivery failure is logged and shown on the kafka component; the sync
 * failure itself is still counted and logged by the caller. */
static void audit_failure(app_t *a, const tenant_t *t, gov_reason_t why, long http_status,
                          const char *detail, long retry_ms) {
    const char *reason = gov_reason_code(why);
    char id[GOV_UUID_STRLEN + 1], eb[256] = "";
    json_t *details = NULL, *ev = NULL;
    char *details_text = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    gov_err_t err = GOV_ERR_NOMEM;
    if ((err = gov_uuid_v7(id)) != GOV_OK)
        goto out;
    err = GOV_ERR_NOMEM;
    details = json_pack("{s:s, s:s}", "detail", detail, "url", t->url);
    if (details == NULL)
        goto out;
    if (http_status > 0 && json_object_set_new(details, "http_status",
                                               json_integer(http_status)) != 0)
        goto out;
    if (retry_ms >= 0 && json_object_set_new(details, "retry_in_ms", json_integer(retry_ms)) != 0)
        goto out;
    if ((details_text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
        goto out;
    ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:s}", "event_id", id,
                   "occurred_at", (json_int_t)gov_now_micros(), "tenant", t->id, "component",
                   COMPONENT, "actor", COMPONENT, "action", "constitution.sync", "outcome",
                   "failure", "reason", reason, "subject", t->url, "correlation_id",
                   "details_json", details_text);
    if (ev == NULL)
        goto out;
    if ((err = gov_avro_encode(a->avro, "AuditEvent", ev, &buf, &len, eb, sizeof eb)) != GOV_OK)
        goto out;
    err = gov_kafka_produce_sync(a->producer, TOPIC_AUDIT, t->id, strlen(t->id), buf, len, NULL,
                                 0, (int)produce_timeout_ms + 2000, NULL, NULL, eb, sizeof eb);
    gov_status_set(a->status, "kafka", err == GOV_OK ? GOV_STATUS_OK : GOV_STATUS_ERROR,
                   err == GOV_OK ? NULL : gov_reason_code(GOV_REASON_KAFKA_UNAVAILABLE), NULL);
out:
    if (err != GOV_OK)
        gov_log(GOV_LOG_ERROR, "audit event not delivered", "tenant", t->id, "reason", reason,
                "error", eb[0] ? eb : gov_err_str(err), (const char *)NULL);
    gov_free(buf);
    gov_free(details_text); /* jansson allocates with gov_malloc */
    json_decref(ev);
    json_decref(details);
}

/* --- outcomes ----------------------------------------------------------------- */

static void record_failure(app_t *a, tenant_t *t, gov_reason_t why, long http_status,
                           const char *raw_detail) {
    const char *reason = gov_reason_code(why);
    /* Details can quote the body (parser messages): keep them valid UTF-8. */
    char *detail = gov_utf8_sanitize(raw_detail ? raw_detail : "", 240);
    const char *d = detail ? detail : "(detail lost: out of memory)";
    if (t->failures < 64)
        t->failures++;
    long retry_ms = once ? -1 : schedule(t);
    audit_failure(a, t, why, http_status, d, retry_ms);

    char st[16], retry[24], fails[16];
    snprintf(st, sizeof st, "%ld", http_status);
    snprintf(retry, sizeof retry, "%ld", retry_ms);
    snprintf(fails, sizeof fails, "%u", t->failures);
    gov_log(GOV_LOG_WARN, "bundle sync failed", "tenant", t->id, "reason", reason,
            "http_status", http_status > 0 ? st : NULL, "detail", d, "url", t->url,
            "consecutive_failures", fails, "retry_in_ms", once ? NULL : retry,
            (const char *)NULL);
    gov_metric_inc(a->m_errors, (const char *[]){t->id, reason}, 1);
    char sd[300];
    snprintf(sd, sizeof sd, "%s: %s", reason, d);
    gov_status_set(a->status, t->status_name, GOV_STATUS_ERROR, sd, NULL);
    gov_free(detail);
}

static void record_success(app_t *a, tenant_t *t, const char *outcome, const char *revision) {
    t->failures = 0;
    if (!once)
        schedule(t);
    gov_metric_inc(a->m_sync, (const char *[]){t->id, outcome}, 1);
    gov_metric_set(a->m_last_sync, (const char *[]){t->id}, (double)gov_now_micros() / 1e6);
    gov_status_set(a->status, t->status_name, GOV_STATUS_OK, outcome, revision);
}

/* Checks a fetched body and publishes it.  Returns 1 when published. */
static int publish(app_t *a, tenant_t *t, const somabrain_fetch_result_t *res) {
    char eb[512] = "", id[GOV_UUID_STRLEN + 1];
    gov_reason_t reason = GOV_REASON_NONE;
    json_t *bundle = NULL, *ev = NULL;
    unsigned char *buf = NULL;
    size_t len = 0, doc_off = 0, doc_len = 0;
    int64_t offset = -1;
    int ok = 0;
    gov_err_t err = gov_bundle_parse(res->body, res->body_len, t->id, &bundle, &doc_off,
                                     &doc_len, &reason, eb, sizeof eb);
    if (err != GOV_OK) {
        record_failure(a, t, reason != GOV_REASON_NONE ? reason : GOV_REASON_INTERNAL, 200, eb);
        goto out;
    }
    if ((err = gov_uuid_v7(id)) != GOV_OK ||
        (err = gov_bundle_event_new(bundle, res->body + doc_off, doc_len, id, gov_now_micros(),
                                    t->url, res->etag[0] ? res->etag : NULL, &ev)) != GOV_OK) {
        record_failure(a, t, GOV_REASON_INTERNAL, 200, gov_err_str(err));
        goto out;
    }
    err = gov_avro_encode(a->avro, "ConstitutionBundle", ev, &buf, &len, eb, sizeof eb);
    if (err != GOV_OK) {
        record_failure(a, t, err == GOV_ERR_TOO_LARGE ? GOV_REASON_TOO_LARGE
                                                      : GOV_REASON_INTERNAL, 200, eb);
        goto out;
    }
    /* message.timeout.ms = produce_timeout, so by the end of this wait the
     * message is either acknowledged or definitely failed. */
    err = gov_kafka_produce_sync(a->producer, TOPIC_BUNDLES, t->id, strlen(t->id), buf, len,
                                 NULL, 0, (int)produce_timeout_ms + 2000, NULL, &offset, eb, sizeof eb);
    if (err != GOV_OK) {
        gov_status_set(a->status, "kafka", GOV_STATUS_ERROR,
                       gov_reason_code(GOV_REASON_KAFKA_UNAVAILABLE), NULL);
        record_failure(a, t, GOV_REASON_KAFKA_UNAVAILABLE, 200, eb);
        goto out;
    }
    gov_status_set(a->status, "kafka", GOV_STATUS_OK, NULL, NULL);
    /* Only now is the ETag ours: a 304 to it means "what we published". */
    snprintf(t->etag, sizeof t->etag, "%s", res->etag);
    const char *checksum = json_string_value(json_object_get(bundle, "checksum"));
    record_success(a, t, "published", checksum);
    char off[24], bytes[24];
    snprintf(off, sizeof off, "%lld", (long long)offset);
    snprintf(bytes, sizeof bytes, "%zu", doc_len);
    gov_log(GOV_LOG_INFO, "bundle published", "tenant", t->id, "event_id", id, "offset", off,
            "checksum", checksum, "document_bytes", bytes, "etag",
            res->etag[0] ? res->etag : NULL, (const char *)NULL);
    ok = 1;
out:
    gov_free(buf);
    json_decref(ev);
    json_decref(bundle);
    return ok;
}

/* One fetch of one tenant, with everything that follows from it.  Returns 1
 * on success (published or not modified), 0 on failure, -1 when abandoned
 * because of shutdown.  Cost: at most total_timeout + 2 * (produce_timeout
 * + 2 s). */
static int sync_tenant(app_t *a, tenant_t *t) {
    somabrain_fetch_result_t res;
    int64_t started = gov_mono_micros();
    gov_err_t err = somabrain_fetch(&a->fetch_opts, t->url, t->etag[0] ? t->etag : NULL,
                                    gov_runtime_run_flag(a->rt), &res);
    gov_metric_observe(a->m_duration, (const char *[]){t->id},
                       (double)(gov_mono_micros() - started) / 1e6);
    int rc = 0;
    if (err != GOV_OK) {
        record_failure(a, t, GOV_REASON_INTERNAL, 0, res.detail);
    } else if (res.outcome == SOMABRAIN_FETCH_ABORTED) {
        rc = -1;
    } else if (res.outcome == SOMABRAIN_FETCH_FAILED) {
        record_failure(a, t, res.reason, res.http_status, res.detail);
    } else if (res.outcome == SOMABRAIN_FETCH_NOT_MODIFIED) {
        record_success(a, t, "not_modified", NULL);
        gov_log(GOV_LOG_DEBUG, "bundle not modified", "tenant", t->id, "etag", t->etag,
                (const char *)NULL);
        rc = 1;
    } else {
        rc = publish(a, t, &res);
    }
    somabrain_fetch_result_clear(&res);
    return rc;
}

/* --- setup and shutdown ------------------------------------------------------- */

/* The tenants, their metric series and readiness components: registered
 * by the runtime (spec.register_parts) before the admin server answers, so
 * the first scrape already has every series. */
static gov_err_t register_parts(void *ctx, gov_metrics_t *metrics, gov_status_t *status) {
    app_t *a = ctx;
    gov_err_t err;
    a->metrics = metrics;
    a->status = status;
    a->fetch_opts = (somabrain_fetch_opts_t){connect_timeout_ms, total_timeout_ms,
                                             (size_t)max_body, ca_file};
    if (somabrain_tenants != NULL &&
        (a->tenants = gov_calloc(MAX_TENANTS, sizeof *a->tenants)) == NULL)
        return GOV_ERR_NOMEM;
    if (somabrain_tenants != NULL && somabrain_url != NULL &&
        for_each_tenant(somabrain_tenants, add_tenant, a) != 0)
        return GOV_ERR_NOMEM;

    a->m_sync = gov_metrics_counter(a->metrics, "somabrain_sync_total",
        "Successful bundle fetches, by outcome (published, not_modified).", 2,
        (const char *[]){"tenant", "outcome"});
    a->m_errors = gov_metrics_counter(a->metrics, "somabrain_sync_errors_total",
        "Failed bundle fetches, by reason code.", 2, (const char *[]){"tenant", "reason"});
    a->m_last_sync = gov_metrics_gauge(a->metrics, "constitution_last_sync_timestamp_seconds",
        "Unix time of the last successful fetch (published or not modified).", 1,
        (const char *[]){"tenant"});
    a->m_duration = gov_metrics_histogram(a->metrics, "constitution_fetch_duration_seconds",
        "Duration of a bundle fetch from SomaBrain, any outcome.", 1, (const char *[]){"tenant"},
        gov_metrics_latency_bucket_count, gov_metrics_latency_buckets);
    if (!a->m_sync || !a->m_errors || !a->m_last_sync || !a->m_duration)
        return GOV_ERR_NOMEM;
    if ((err = gov_status_register(a->status, "kafka")) != GOV_OK)
        return err;
    gov_status_set(a->status, "kafka", GOV_STATUS_NOT_READY, "nothing produced yet", NULL);
    if (a->ntenants == 0) {
        /* Not configured: stay up (the stack starts every binary) but say so. */
        if ((err = gov_status_register(a->status, "config")) != GOV_OK)
            return err;
        gov_status_set(a->status, "config", GOV_STATUS_NOT_READY,
                       "somabrain_url and somabrain_tenants are not set", NULL);
    }
    for (size_t i = 0; i < a->ntenants; i++) {
        tenant_t *t = &a->tenants[i];
        if ((err = gov_status_register(a->status, t->status_name)) != GOV_OK)
            return err;
        gov_status_set(a->status, t->status_name, GOV_STATUS_NOT_READY, "not fetched yet", NULL);
        gov_metric_inc(a->m_sync, (const char *[]){t->id, "published"}, 0);
        gov_metric_inc(a->m_sync, (const char *[]){t->id, "not_modified"}, 0);
        for (size_t r = 0; r < sizeof all_reasons / sizeof all_reasons[0]; r++)
            gov_metric_inc(a->m_errors, (const char *[]){t->id, gov_reason_code(all_reasons[r])}, 0);
        t->next_due_us = 0; /* every tenant is due at start */
    }
    return GOV_OK;
}

static void app_free(app_t *a) {
    for (size_t i = 0; i < a->ntenants; i++)
        gov_free(a->tenants[i].url);
    gov_free(a->tenants);
}

static tenant_t *earliest_due(app_t *a) {
    tenant_t *best = NULL;
    for (size_t i = 0; i < a->ntenants; i++)
        if (best == NULL || a->tenants[i].next_due_us < best->next_due_us)
            best = &a->tenants[i];
    return best;
}

int main(int argc, char **argv) {
    int exit_code = 1;

    /* start: config, log, signals, metrics, admin server, producer */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "%s: libcurl did not initialize\n", COMPONENT);
        return 1;
    }
    if (gov_runtime_start(&app.rt, &spec, config, NCONFIG, argc, argv, &exit_code) != GOV_OK)
        goto out;
    exit_code = 1;
    app.avro = gov_runtime_avro(app.rt);
    app.producer = gov_runtime_producer(app.rt);
    const gov_runtime_config_t *shared = gov_runtime_config(app.rt);
    char n[16], iv[24], ap[16];
    snprintf(n, sizeof n, "%zu", app.ntenants);
    snprintf(iv, sizeof iv, "%ld", sync_interval_ms);
    snprintf(ap, sizeof ap, "%ld", shared->admin_port);
    if (app.ntenants == 0)
        gov_log(GOV_LOG_ERROR, "not configured: set somabrain_url and somabrain_tenants; "
                "idle until stopped", (const char *)NULL);
    gov_log(GOV_LOG_INFO, "started", "kafka", shared->kafka_brokers, "url", somabrain_url,
            "tenants", n, "interval_ms", iv, "admin_port", once ? NULL : ap, "mode",
            once ? "once" : "daemon", (const char *)NULL);

    /* loop */
    if (once) {
        int all_ok = 1;
        for (size_t i = 0; i < app.ntenants && gov_runtime_running(app.rt); i++)
            if (sync_tenant(&app, &app.tenants[i]) != 1)
                all_ok = 0;
        exit_code = all_ok && gov_runtime_running(app.rt) ? 0 : 1;
    } else {
        while (gov_runtime_running(app.rt)) {
            tenant_t *t = earliest_due(&app);
            int64_t now = gov_mono_micros();
            if (t != NULL && t->next_due_us <= now) {
                sync_tenant(&app, t);
                continue;
            }
            long wait_ms = t ? (long)((t->next_due_us - now + 999) / 1000) : 200;
            gov_runtime_sleep(app.rt, wait_ms < 200 ? wait_ms : 200);
        }
        exit_code = 0;
    }

    /* shut down */
    gov_log(GOV_LOG_INFO, "shutting down", (const char *)NULL);
out:
    app_free(&app);
    exit_code = gov_runtime_shutdown(app.rt, exit_code);
    curl_global_cleanup();
    return exit_code;
}
