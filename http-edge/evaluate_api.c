/* evaluate_api.c - POST /v1/evaluate and GET /v1/decisions/{tenant}/{id}.
 *
 * Evaluate: parse and validate the request (bounded), take the snapshot,
 * evaluate against the tenant's constitution rules and rule pack with this
 * thread's matcher scratch, answer.  Nothing on this path waits on Redis or
 * Kafka: the decision log entry (PolicyDecision) is appended to the durable
 * decision spool (gov_spool.h) before the answer and delivered in the
 * background; a full spool fails the answer closed (503 decision_log_full).
 * Without a spool configured it is queued to the producer, and a decision
 * that cannot be queued is counted (policy_decision_log_failed_total), not
 * allowed to change the answer.  The tenant's state is missing or unusable -> 503 with a
 * stable code: the edge never guesses.  The prompt is never logged or sent
 * on: the answer and the PolicyDecision carry the excerpts gov_policy_evaluate
 * has already masked, and input_digest.
 *
 * Decisions: reads the decision gov-audit materialized in Redis, through a
 * per-thread Redis connection, so a downstream service can check an
 * X-Policy-Decision-Id.  This is the one read path that touches Redis.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge.h"
#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_kafka.h"
#include "gov_log.h"
#include "gov_policy.h"
#include "gov_redis.h"
#include "gov_state.h"
#include "gov_time.h"
#include "gov_util.h"

/* --- per-thread resources --------------------------------------------------- */

static pthread_key_t scratch_key, redis_key;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;

static void free_scratch(void *p) { gov_matcher_scratch_free(p); }
static void free_redis(void *p) { gov_redis_free(p); }

static void make_keys(void) {
    pthread_key_create(&scratch_key, free_scratch);
    pthread_key_create(&redis_key, free_redis);
}

/* This thread's matcher scratch (gov_policy_evaluate fits it to each pack). */
static gov_matcher_scratch_t *thread_scratch(void) {
    pthread_once(&keys_once, make_keys);
    gov_matcher_scratch_t *s = pthread_getspecific(scratch_key);
    if (s == NULL && gov_matcher_scratch_new(NULL, &s) == GOV_OK)
        pthread_setspecific(scratch_key, s);
    return s;
}

gov_redis_t *edge_thread_redis(edge_t *e) {
    pthread_once(&keys_once, make_keys);
    gov_redis_t *r = pthread_getspecific(redis_key);
    if (r == NULL) {
        char eb[256];
        gov_err_t err = gov_redis_connect(e->cfg.redis_nodes, e->cfg.redis_host,
                                          (int)e->cfg.redis_port, (int)e->cfg.lookup_timeout_ms,
                                          &r, eb, sizeof eb);
        if (err != GOV_OK && err != GOV_ERR_UNAVAILABLE) {
            gov_redis_free(r);
            return NULL;
        }
        gov_redis_set_hold_off(r, (int)e->cfg.lookup_timeout_ms);
        pthread_setspecific(redis_key, r);
    }
    return r;
}

/* --- helpers ------------------------------------------------------------------ */

/* Writes n decimal digits of v at p, zero-padded. */
static char *put_digits(char *p, unsigned v, int n) {
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + n;
}

/* "2026-12-07T22:34:05.123456Z".  Every answer writes one, so the years
 * 1970-9999 are done by hand (the civil date from the day count, Howard
 * Hinnant's days_from_civil inverse): gmtime_r takes glibc's time-zone lock
 * and snprintf parses its format on every call.  Anything else (never a
 * clock of this century) goes the old way, with the same bytes. */
static void format_rfc3339_us(int64_t us, char *out, size_t size) {
    if (us >= 0 && us < INT64_C(253402300800000000) && size >= 28) {
        int64_t sec = us / 1000000, days = sec / 86400, sod = sec % 86400;
        int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
        int64_t mday = doy - (153 * mp + 2) / 5 + 1, mon = mp < 10 ? mp + 3 : mp - 9;
        int64_t year = yoe + era * 400 + (mon <= 2);
        char *p = put_digits(out, (unsigned)year, 4);
        *p++ = '-';
        p = put_digits(p, (unsigned)mon, 2);
        *p++ = '-';
        p = put_digits(p, (unsigned)mday, 2);
        *p++ = 'T';
        p = put_digits(p, (unsigned)(sod / 3600), 2);
        *p++ = ':';
        p = put_digits(p, (unsigned)(sod / 60 % 60), 2);
        *p++ = ':';
        p = put_digits(p, (unsigned)(sod % 60), 2);
        *p++ = '.';
        p = put_digits(p, (unsigned)(us % 1000000), 6);
        *p++ = 'Z';
        *p = '\0';
        return;
    }
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    unsigned frac = (unsigned)(((us % 1000000) + 1000000) % 1000000);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac % 1000000u);
}

/* "0.350000" for 350000; micros is clamped to [0, 1000000]. */
static void micros_text(int64_t micros, char *out, size_t size) {
    char num[GOV_MICROS_TEXT];
    int64_t m = micros < 0 ? 0 : micros > GOV_MICROS_ONE ? GOV_MICROS_ONE : micros;
    int n = gov_micros_format(m, num);
    if (size > 0) {
        size_t k = (size_t)n < size ? (size_t)n : size - 1;
        memcpy(out, num, k);
        out[k] = '\0';
    }
}

/* Appends the NUL-terminated s at *p (the caller sized the buffer). */
static char *put_text(char *p, const char *s) {
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* Records the decision log entry before the answer is sent.  The
 * PolicyDecision is written straight into a buffer (gov_policy_decision_avro):
 * no JSON event in between.  With a spool (decision_spool_dir) the record
 * is appended to it - a memcpy into a mapped file, no syscall - and the
 * spool's drain hands it to Kafka; GOV_ERR_UNAVAILABLE when the spool is
 * full, so the caller refuses to decide (fail closed: no decision without
 * a durable record).  Without a spool it is queued to the producer and
 * never fails the answer (counted when it cannot be queued).  Returns
 * GOV_OK or the error that must fail the answer. */
static gov_err_t log_decision(edge_t *e, const edge_tenant_t *t, const gov_policy_request_t *req,
                              const gov_policy_decision_t *d, const char *decision_id,
                              int64_t at) {
    if (e->producer == NULL && e->spool == NULL)
        return GOV_OK;
    char event_id[GOV_UUID_STRLEN + 1];
    gov_buf_t b;
    gov_buf_init(&b, GOV_AVRO_HEADER_LEN + GOV_AVRO_MAX_BODY);
    gov_err_t err = gov_uuid_v7(event_id);
    if (err == GOV_OK) {
        const gov_rulepack_t *pack = t->rulepack.pack;
        gov_policy_log_t l = {
            .event_id = event_id,
            .occurred_at_us = at,
            .tenant = t->name,
            .decision_id = decision_id,
            .constitution_hash = t->constitution.checksum,
            .policy_id = gov_rulepack_id(pack),
            .rulepack_version = gov_rulepack_version(pack),
            .evaluated_at_us = at,
            .edge_id = e->cfg.edge_id,
        };
        err = gov_policy_decision_avro(e->avro, &l, req, d, &b);
    }
    const char *why = gov_err_code(err);
    if (err == GOV_OK && e->spool != NULL) {
        err = gov_spool_append(e->spool, t->name, strlen(t->name), b.data, b.len);
        why = err == GOV_ERR_UNAVAILABLE ? "decision spool full" : "decision spool refused";
    } else if (err == GOV_OK) {
        err = gov_kafka_produce(e->producer, "policy.decisions", t->name, strlen(t->name),
                                (const unsigned char *)b.data, b.len, NULL, 0);
        why = "queue refused";
    }
    if (err != GOV_OK) {
        gov_metric_inc(e->m_log_failed, (const char *[]){e->spool ? "spool" : "enqueue"}, 1);
        gov_log(GOV_LOG_ERROR, "decision could not be logged", "tenant", t->name, "decision_id",
                decision_id, "error", why, (const char *)NULL);
    }
    gov_buf_free(&b);
    return e->spool != NULL ? err : GOV_OK;
}

/* --- the decision (shared by evaluate, sessions and authz) -------------------- */

void edge_decision_clear(edge_decision_t *d) {
    if (d == NULL)
        return;
    gov_policy_decision_clear(&d->d);
    if (d->snapshot)
        edge_snapshot_release(d->snapshot);
    memset(d, 0, sizeof *d);
}

int edge_decide(edge_t *e, const gov_policy_request_t *pr, edge_decision_t *out,
                edge_response_t *resp) {
    char eb[512];
    gov_reason_t reason = GOV_REASON_NONE;
    memset(out, 0, sizeof *out);
    if (!edge_state_loaded(e->state)) {
        edge_respond_error(resp, 503, GOV_REASON_STATE_NOT_LOADED,
                           "the edge has not loaded its state yet");
        return -1;
    }
    edge_snapshot_t *s = edge_state_acquire(e->state);
    const edge_tenant_t *t = edge_snapshot_find(s, pr->tenant);
    if (t == NULL || t->constitution.checksum[0] == '\0') {
        edge_respond_error(resp, 503, GOV_REASON_CONSTITUTION_MISSING,
                           "no verified constitution for tenant %s", pr->tenant);
        goto fail;
    }
    if (t->constitution.rules == NULL) {
        edge_respond_error(resp, 503, GOV_REASON_CONSTITUTION_RULES_INVALID,
                           "the constitution of %s has rules this engine cannot apply: %s",
                           pr->tenant, t->constitution.rules_error);
        goto fail;
    }
    if (t->rulepack.pack == NULL) {
        edge_respond_error(resp, 503, GOV_REASON_RULEPACK_MISSING,
                           "no usable rule pack for tenant %s%s%s", pr->tenant,
                           t->rulepack.error[0] ? ": " : "", t->rulepack.error);
        goto fail;
    }
    gov_matcher_scratch_t *scratch = thread_scratch();
    int64_t t0 = gov_mono_micros();
    gov_err_t err = gov_policy_evaluate(t->constitution.rules, t->rulepack.pack, pr, scratch,
                                        &out->d, &reason, eb, sizeof eb);
    double seconds = (double)(gov_mono_micros() - t0) / 1e6;
    if (err != GOV_OK) {
        /* Fail closed with a clear error; never a pass.  The log's "error"
         * is "<reason>: <detail>", as it has always read. */
        char why[sizeof eb + 64];
        snprintf(why, sizeof why, "%s: %s", gov_reason_code(reason), eb);
        gov_log(GOV_LOG_ERROR, "evaluation failed", "tenant", pr->tenant, "error", why,
                (const char *)NULL);
        edge_respond_error(resp, 503, GOV_REASON_EVALUATION_FAILED,
                           "the request could not be evaluated");
        goto fail;
    }
    gov_metric_observe(e->m_eval_duration, NULL, seconds);
    if (gov_uuid_v7(out->decision_id) != GOV_OK) {
        edge_respond_error(resp, 503, GOV_REASON_EVALUATION_FAILED,
                           "no randomness for a decision id");
        goto fail;
    }
    out->snapshot = s;
    out->tenant = t;
    out->evaluated_us = gov_now_micros();
    micros_text(out->d.score_micros, out->score, sizeof out->score);
    gov_err_t logged = log_decision(e, t, pr, &out->d, out->decision_id, out->evaluated_us);
    if (logged != GOV_OK) {
        /* no durable record, no decision (docs/contracts.md, "Decision spool") */
        if (logged == GOV_ERR_UNAVAILABLE)
            edge_respond_error(resp, 503, GOV_REASON_DECISION_LOG_FULL,
                               "the decision log is full: Kafka has not acknowledged the "
                               "decisions this edge holds");
        else
            edge_respond_error(resp, 503, GOV_REASON_EVALUATION_FAILED,
                               "the decision could not be recorded");
        out->snapshot = NULL;
        out->tenant = NULL;
        goto fail;
    }
    gov_metric_inc(e->m_decisions, (const char *[]){t->name, gov_decision_name(out->d.decision),
                                                    gov_rulepack_id(t->rulepack.pack)}, 1);
    return 0;
fail:
    gov_policy_decision_clear(&out->d);
    edge_snapshot_release(s);
    memset(out, 0, sizeof *out);
    return -1;
}

void edge_decision_headers(const edge_decision_t *d, edge_response_t *resp) {
    edge_add_header(resp, "X-Policy-Decision", gov_decision_name(d->d.decision));
    edge_add_header(resp, "X-Policy-Score", d->score);
    edge_add_header(resp, "X-Constitution-Hash", d->tenant->constitution.checksum);
    edge_add_header(resp, "X-Policy-Decision-Id", d->decision_id);
}

/* --- POST /v1/evaluate ------------------------------------------------------- */

int edge_policy_request_read(edge_t *e, const edge_request_t *req, gov_policy_request_t *pr,
                             edge_response_t *resp) {
    char eb[512];
    gov_reason_t reason = GOV_REASON_NONE;
    if (req->content_type && !edge_content_type_is(req->content_type, "application/json")) {
        edge_respond_error(resp, 415, GOV_REASON_UNSUPPORTED_MEDIA_TYPE, "send application/json");
        return -1;
    }
    gov_policy_limits_t lim = gov_policy_limits_default();
    lim.max_bytes = (size_t)e->cfg.max_body;
    gov_err_t err = gov_policy_request_parse(req->body, req->body_len, &lim, pr, &reason, eb,
                                            sizeof eb);
    if (err == GOV_OK)
        return 0;
    if (err == GOV_ERR_NOMEM)
        edge_respond_error(resp, 503, GOV_REASON_OUT_OF_MEMORY, "out of memory");
    else
        edge_respond_error(resp, err == GOV_ERR_TOO_LARGE ? 413 : 400,
                           reason != GOV_REASON_NONE ? reason : GOV_REASON_INVALID_REQUEST, "%s",
                           eb);
    return -1;
}

void edge_evaluate(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    gov_policy_request_t pr;
    if (edge_policy_request_read(e, req, &pr, resp) != 0)
        return;
    edge_decision_t d;
    if (edge_decide(e, &pr, &d, resp) != 0) {
        gov_policy_request_clear(&pr);
        return;
    }
    const edge_tenant_t *t = d.tenant;
    char evaluated[64], extra[768];
    format_rfc3339_us(d.evaluated_us, evaluated, sizeof evaluated);
    /* Every value here is of a checked syntax (uuid, hex, tenant, pack id,
     * version) and bounded (the sum is far below sizeof extra): no escaping
     * can be needed, and no snprintf on every answer. */
    const char *parts[] = {"\"decision_id\":\"", d.decision_id, "\",\"tenant\":\"", t->name,
                           "\",\"constitution_hash\":\"", t->constitution.checksum,
                           "\",\"policy_id\":\"", gov_rulepack_id(t->rulepack.pack),
                           "\",\"rulepack_version\":\"", gov_rulepack_version(t->rulepack.pack),
                           "\",\"evaluated_at\":\"", evaluated, "\""};
    size_t need = 1;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        need += strlen(parts[i]);
    if (need > sizeof extra) {   /* cannot happen with checked ids; never truncate */
        edge_respond_error(resp, 503, GOV_REASON_EVALUATION_FAILED, "decision ids too long");
        goto out;
    }
    char *x = extra;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        x = put_text(x, parts[i]);
    *x = '\0';
    char *body = NULL;
    size_t body_len = 0;
    if (gov_policy_decision_to_json(&d.d, extra, &body, &body_len) != GOV_OK) {
        edge_respond_error(resp, 503, GOV_REASON_OUT_OF_MEMORY, "out of memory");
        goto out;
    }
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = body;
    resp->body_len = body_len;
    edge_decision_headers(&d, resp);
out:
    edge_decision_clear(&d);
    gov_policy_request_clear(&pr);
}

/* --- GET /v1/decisions/{tenant}/{decision_id} ---------------------------------- */

void edge_decision_get(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    const char *tenant = req->seg[2], *id = req->seg[3];
    if (!gov_tenant_valid(tenant, strlen(tenant))) {
        edge_respond_error(resp, 400, GOV_REASON_INVALID_TENANT,
                           "tenant ids are 1-64 chars of [A-Za-z0-9._-]");
        return;
    }
    if (!gov_uuid_v7_valid(id)) {
        edge_respond_error(resp, 400, GOV_REASON_INVALID_DECISION_ID, "decision ids are UUIDv7");
        return;
    }
    gov_redis_t *r = edge_thread_redis(e);
    char eb[256];
    redisReply *rep = NULL;
    if (r == NULL || gov_state_decision_read(r, tenant, id, &rep, eb, sizeof eb) != GOV_OK) {
        edge_respond_error(resp, 503, GOV_REASON_DECISION_STORE_UNAVAILABLE,
                           "the decision store cannot be read");
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
        freeReplyObject(rep);
        edge_respond_error(resp, 404, GOV_REASON_DECISION_NOT_FOUND,
                           "no decision %s for tenant %s (unknown, not yet logged, or expired)", id,
                           tenant);
        return;
    }
    static const char *const fields[] = {"decision_id", "tenant", "decision", "constitution_hash",
        "policy_id", "rulepack_version", "input_digest", "session_id", "user", "role", "action",
        "tool_name", "tool_category", "edge_id", "event_id",
        /* set by gov-audit when another event claimed this decision_id */
        "conflicting_event_id"};
    json_t *out = json_object();
    char score[GOV_MICROS_TEXT] = "";
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const char *k = rep->element[i]->str, *v = rep->element[i + 1]->str;
        size_t vl = rep->element[i + 1]->len;
        if (strcmp(k, "score_micros") == 0) {
            /* exact: the same 6-decimal text /v1/evaluate answered */
            long long micros = strtoll(v, NULL, 10);
            if (micros >= 0 && micros <= GOV_MICROS_ONE)
                micros_text(micros, score, sizeof score);
        } else if (strcmp(k, "reasons") == 0) {
            json_t *rs = json_loadb(v, vl, 0, NULL);
            json_object_set_new(out, "reasons", rs ? rs : json_array());
        } else if (strcmp(k, "evaluated_at") == 0) {
            char at[64];
            format_rfc3339_us(strtoll(v, NULL, 10), at, sizeof at);
            json_object_set_new(out, "evaluated_at", json_string(at));
        } else {
            for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
                if (strcmp(k, fields[f]) == 0)
                    json_object_set_new(out, k, json_stringn(v, vl));
        }
    }
    freeReplyObject(rep);
    /* jansson cannot write a number from its text: splice the score in. */
    char *rest = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    size_t n = rest ? strlen(rest) + sizeof score + 16 : 0;
    char *body = rest ? gov_malloc(n) : NULL;
    if (body == NULL) {
        gov_free(rest);
        edge_respond_error(resp, 503, GOV_REASON_OUT_OF_MEMORY, "out of memory");
        return;
    }
    snprintf(body, n, "{\"score\":%s%s%s", score[0] ? score : "null", strlen(rest) > 2 ? "," : "",
             rest + 1);
    gov_free(rest);
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = body;
    resp->body_len = strlen(body);
}
