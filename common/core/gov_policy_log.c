/* gov_policy_log.c - the decision-log event (PolicyDecision) written directly.
 *
 * What it is for: gov-edge logs every decision (docs/contracts.md,
 * "policy.decisions").  Building a jansson object per decision only to have
 * gov_avro_encode walk it beside the schema cost more than the evaluation's
 * scan; this writer appends the Avro single-object message of
 * schemas/PolicyDecision.avsc straight from the request and the decision.
 *
 * How it works: the header (C3 01, the schema's fingerprint from the
 * registry), then the fields in the schema's order: strings as a length and
 * their bytes, longs zig-zag (gov_avro_write_long), the ["null","string"]
 * unions as branch 0 or branch 1 and the string, the Decision enum as its
 * symbol's index (allow 0, review 1, deny 2: gov_decision_t's own values),
 * the reasons as one block of records, then 0.  tests/unit/test_policy_log.c
 * checks that the bytes are exactly gov_avro_encode's for the same event and
 * that gov_avro_decode reads them back.
 *
 * What it does not do: check the strings (the request was validated, rule
 * texts came from a validated pack, excerpts are cut on characters and
 * masked, the rest are ids of checked syntax - the caller's, see
 * gov_policy.h), or produce to Kafka.  It follows the schema it was written
 * for: a change to PolicyDecision.avsc changes this file and its test.
 */
#include "gov_policy.h"

#include <string.h>

#include "gov_avro.h"

static void put_string(gov_buf_t *b, const char *s, size_t len) {
    gov_avro_write_long(b, (int64_t)len);
    gov_buf_put(b, s, len);
}

static void put_cstring(gov_buf_t *b, const char *s) {
    put_string(b, s, strlen(s));
}

/* Consecutive string fields of the schema, in its order. */
static void put_cstrings(gov_buf_t *b, const char *const *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        put_cstring(b, s[i]);
}

/* ["null","string"]: branch 0, or branch 1 and the string. */
static void put_optional(gov_buf_t *b, const char *s, size_t len) {
    if (s == NULL) {
        gov_avro_write_long(b, 0);
        return;
    }
    gov_avro_write_long(b, 1);
    put_string(b, s, len);
}

/* An optional NUL-terminated string (NULL: branch 0). */
static void put_optional_cstring(gov_buf_t *b, const char *s) {
    put_optional(b, s, s != NULL ? strlen(s) : 0);
}

gov_err_t gov_policy_decision_avro(const gov_avro_registry_t *reg, const gov_policy_log_t *log,
                                   const gov_policy_request_t *req,
                                   const gov_policy_decision_t *d, gov_buf_t *out) {
    uint64_t fp;
    if (reg == NULL || log == NULL || req == NULL || d == NULL || out == NULL)
        return GOV_ERR_INVALID_ARG;
    gov_err_t rc = gov_avro_registry_fingerprint(reg, "PolicyDecision", &fp);
    if (rc != GOV_OK)
        return rc;
    unsigned char header[GOV_AVRO_HEADER_LEN] = {GOV_AVRO_MAGIC0, GOV_AVRO_MAGIC1};
    for (int i = 0; i < 8; i++)
        header[2 + i] = (unsigned char)(fp >> (8 * i));
    gov_buf_put(out, header, sizeof header);
    put_cstring(out, log->event_id);
    gov_avro_write_long(out, log->occurred_at_us);
    put_cstrings(out, (const char *const[]){log->tenant, log->decision_id, req->session_id,
                                            req->user, req->role}, 5);
    put_optional_cstring(out, req->action);
    put_optional_cstring(out, req->tool_name);
    put_optional_cstring(out, req->tool_category);
    gov_avro_write_long(out, (int64_t)d->decision);
    gov_avro_write_long(out, d->score_micros);
    if (d->nreasons > 0) {
        gov_avro_write_long(out, (int64_t)d->nreasons);
        for (size_t i = 0; i < d->nreasons; i++) {
            const gov_policy_reason_t *r = &d->reasons[i];
            put_cstring(out, r->rule_id);
            put_cstring(out, gov_severity_name(r->severity));
            gov_avro_write_long(out, r->weight_micros);
            put_cstring(out, r->message ? r->message : "");
            put_optional(out, r->has_excerpt ? r->excerpt : NULL, r->excerpt_len);
        }
    }
    gov_avro_write_long(out, 0);
    put_cstrings(out, (const char *const[]){log->constitution_hash, log->policy_id,
                                            log->rulepack_version, d->input_digest}, 4);
    gov_avro_write_long(out, log->evaluated_at_us);
    put_cstring(out, log->edge_id);
    return out->err;
}
