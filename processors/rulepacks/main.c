/* gov-rulepacks - verifies published rule packs and materializes the
 * accepted ones.
 *
 * Consumes policy.rulepacks.  For each RulePackPublished it parses the pack
 * text with gov_rulepack_parse under the contract limits (every rule of
 * docs/policy.md, patterns compiled; the same limits every edge applies),
 * checks that the pack is the one the event announces (tenant, pack_id,
 * version), verifies the event's detached signatures against the rule-pack
 * trust (gov_rulepack_verify_signatures: Ed25519 over the SHA-256 hex of the
 * canonical pack, trusted for this tenant, threshold >= 1), reads the
 * tenant's current pack from Redis and compares versions, then:
 *   accept     -> one script writes policy:rulepack:{T} (canonical JSON),
 *                 its meta hash (with the signatures and signers, so every
 *                 edge verifies again), the history and the offset,
 *                 compare-and-set on the current pack's bytes; then SADD
 *                 policy:rulepack:tenants; then RulePackUpdated to
 *                 policy.rulepacks.updated (every edge reloads the tenant
 *                 on it) and an AuditEvent (rulepack.accepted);
 *   duplicate  -> the same canonical pack as the current one, or one that
 *                 was current before (its SHA-256 is in the history): a
 *                 replay, silent - nothing changes, no audit, no update.
 *                 Two exceptions finish what may be unfinished: the very
 *                 event that made the current pack current (a redelivery
 *                 after a crash between the write and the acknowledgements)
 *                 produces the index, RulePackUpdated and the audit event
 *                 again under the same derived ids; and a signed replay of
 *                 a current pack stored without signatures (materialized
 *                 before packs were signed) stores them and announces it;
 *   reject     -> nothing changes; rulepack_rejected_total{tenant,reason}
 *                 and an AuditEvent (rulepack.rejected) naming the reason,
 *                 the rule and the field.  Reasons: the gov_rulepack_error_t
 *                 code, tenant_mismatch, pack_id_mismatch, version_mismatch,
 *                 the signature reasons (no_signatures, untrusted_signer,
 *                 invalid_signature, tenant_not_trusted, ...),
 *                 version_rollback, equivocation, and current_pack_unreadable
 *                 (the stored state was damaged by hand: nothing is
 *                 accepted over a version that cannot be read, and the
 *                 partition is not blocked by retrying).
 * The offset is stored only after all of that.  Before any of it, a message
 * below the tenant's applied offset (gov:applied:{T}:..., written with the
 * state) is finished as a duplicate without being judged again
 * (gov_processor_tenant_applied): a rewound or rebuilt partition re-applies
 * and re-counts nothing the tenant's keys already hold.  The message at the
 * applied offset itself is judged (what an accept left unannounced is
 * finished) without a second rejection count or audit event.
 *
 * A replay (m->replay: a rebuild after Redis lost writes) materializes the
 * same state and announces nothing: no RulePackUpdated, no audit event, no
 * count of accepted or rejected packs - all of that happened when the event
 * was first judged, and a Redis writer deleting the watermark must not make
 * gov-rulepacks repeat it (docs/contracts.md, "Rebuilding Redis").
 *
 * What it does not do: trust anything in the event beyond its shape
 * (gov_processor checks framing, schema, UUIDv7 and key = tenant) and the
 * signatures its own trust file vouches for, or echo unbounded event text
 * into logs and audit events.
 *
 * Reads top to bottom: config -> connect -> loop -> shut down.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_constitution.h"
#include "gov_events.h"
#include "gov_file.h"
#include "gov_log.h"
#include "gov_processor.h"
#include "gov_rulepack.h"
#include "gov_time.h"
#include "gov_util.h"

static const gov_processor_spec_t spec = {
    .name = "gov-rulepacks",
    .default_admin_port = 8702,
    .topics = {{"policy.rulepacks", GOV_PROCESSOR_SCHEMAS("RulePackPublished"), 1}},
};

/* Where every edge hears that a tenant's pack changed in Redis. */
#define TOPIC_UPDATED "policy.rulepacks.updated"

/* Event text echoed into logs and audit events is cut to this many bytes. */
#define ECHO_MAX 128
#define ACTOR_MAX 256

/* --- configuration ---------------------------------------------------------------- */

/* No limit rows: the rule-pack limits are contract constants
 * (gov_rulepack_limits_default, docs/contracts.md "Signed rule packs"), the
 * same in every processor and every edge, so whatever is accepted here
 * every edge loads. */
static char *trust_file;

static gov_config_entry_t config[] = {
    GOV_CFG_STRING("rulepack_trust_file", NULL, "rule-pack trust: the operator keys that sign packs, per tenant, in the constitution trust format ({\"signers\": {...}, \"tenants\": {\"<tenant>\": {\"threshold\": N, \"signers\": [...]}}}); required", &trust_file),
};

/* --- judging one event ---------------------------------------------------------------- */

typedef struct ctx {
    gov_processor_t *p;
    gov_trust_t *trust;                     /* rule-pack trust, immutable */
    gov_metric_t *m_rejected, *m_accepted, *m_unverified;
} ctx_t;

typedef enum { VERDICT_ACCEPT, VERDICT_DUPLICATE, VERDICT_REJECT } verdict_kind_t;

/* What was decided about one event.  Text fields are bounded, valid UTF-8. */
typedef struct verdict {
    verdict_kind_t kind;
    gov_reason_t reason;                    /* for rejections */
    char error[768];                        /* names the rule and the field */
    gov_rulepack_error_t detail;            /* rule_index -1 when not about a rule */
    char current_version[GOV_VERSION_MAX];  /* "" when the tenant has no pack */
    gov_sig_count_t sigs;                   /* who signed, once verified */
} verdict_t;

/* The event's fields (borrowed from the decoded event), and bounded copies
 * of the untrusted ones for logs and audit events. */
typedef struct announced {
    const char *tenant, *event_id, *pack_id, *version, *published_by;
    const char *text;
    size_t text_len;
    const json_t *signatures;               /* the event's array */
    uint64_t occurred_ms;
    char pack_id_echo[ECHO_MAX + 1], version_echo[ECHO_MAX + 1], actor[ACTOR_MAX + 1];
} announced_t;

/* Copies s into out (size bytes) cut on a character boundary, each byte
 * that does not start well-formed UTF-8 replaced; "" when out of memory. */
static void echo(const char *s, char *out, size_t size) {
    char *clean = gov_utf8_sanitize(s ? s : "", size - 1);
    snprintf(out, size, "%s", clean ? clean : "");
    gov_free(clean);
}

static void reject(verdict_t *v, gov_reason_t reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reject(verdict_t *v, gov_reason_t reason, const char *fmt, ...) {
    char raw[sizeof v->error];
    GOV_FORMAT_VA(raw, sizeof raw, fmt);
    v->kind = VERDICT_REJECT;
    v->reason = reason;
    echo(raw, v->error, sizeof v->error);
}

/* Checks that the parsed pack is the one the event announces.  0 or a
 * rejection in v. */
static int check_announced(const gov_rulepack_t *pack, const announced_t *a, verdict_t *v) {
    if (strcmp(gov_rulepack_tenant(pack), a->tenant) != 0) {
        reject(v, GOV_REASON_TENANT_MISMATCH, "pack tenant \"%s\" is not the event's tenant \"%s\"",
               gov_rulepack_tenant(pack), a->tenant);
        snprintf(v->detail.field, sizeof v->detail.field, "tenant");
        return -1;
    }
    if (strcmp(gov_rulepack_id(pack), a->pack_id) != 0) {
        reject(v, GOV_REASON_PACK_ID_MISMATCH, "pack_id \"%s\" is not the event's pack_id \"%s\"",
               gov_rulepack_id(pack), a->pack_id_echo);
        snprintf(v->detail.field, sizeof v->detail.field, "pack_id");
        return -1;
    }
    if (strcmp(gov_rulepack_version(pack), a->version) != 0) {
        reject(v, GOV_REASON_VERSION_MISMATCH, "version \"%s\" is not the event's version \"%s\"",
               gov_rulepack_version(pack), a->version_echo);
        snprintf(v->detail.field, sizeof v->detail.field, "version");
        return -1;
    }
    return 0;
}

/* Verifies the event's detached signatures over the pack against the
 * rule-pack trust (gov_rulepack_verify_signatures: the trust covers the
 * tenant, the pack names it, enough trusted signers signed its canonical
 * SHA-256 hex).  GOV_OK with a rejection in v when they do not;
 * GOV_ERR_CRYPTO when it could not be decided. */
static gov_err_t check_signed(const ctx_t *c, const gov_rulepack_t *pack, const announced_t *a,
                              const gov_bundle_sig_t *sigs, size_t nsigs, verdict_t *v) {
    gov_err_t err = gov_rulepack_verify_signatures(pack, a->tenant, sigs, nsigs, c->trust,
                                                   &v->sigs);
    if (err == GOV_OK && v->sigs.reason != GOV_REASON_NONE) {
        reject(v, v->sigs.reason, "%s", v->sigs.detail);
        snprintf(v->detail.field, sizeof v->detail.field, "signatures");
    }
    return err;
}

/* The signers that counted, comma-separated, into buf. */
static void signers_text(const gov_sig_count_t *sc, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sc->nsigners && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "," : "", sc->signers[i]);
}

/* The tenant's current pack, if it verifies here: the stored bytes parsed
 * with the fixed pack limits and its stored signatures checked against this
 * processor's own trust, exactly as an edge does before serving it (Redis
 * is not a trust root).  *out is the parsed pack (gov_rulepack_free) or
 * NULL when it does not verify; then the stored pack is counted
 * (rulepack_state_unverified_total{reason}), logged at error, and its
 * version is not used for anti-rollback (docs/runbooks/security.md).
 * GOV_ERR_NOMEM / GOV_ERR_CRYPTO when it could not be decided.  Cost: a
 * parse and matcher compile of at most the pack bound. */
static gov_err_t verified_current(const ctx_t *c, const char *tenant,
                                  const gov_state_rulepack_t *cur, gov_rulepack_t **out) {
    char eb[256];
    gov_rulepack_error_t pe;
    gov_reason_t why = GOV_REASON_NONE;
    const char *detail = eb;
    gov_rulepack_t *stored = NULL;
    *out = NULL;
    gov_err_t err = gov_rulepack_parse(cur->canonical, cur->canonical_len, NULL, &stored, &pe, eb,
                                       sizeof eb);
    if (err == GOV_ERR_NOMEM)
        return err;
    if (err != GOV_OK) {
        why = pe.code != GOV_REASON_NONE ? pe.code : GOV_REASON_CURRENT_PACK_UNREADABLE;
    } else {
        gov_bundle_sig_t sigs[GOV_MAX_SIGNATURES + 1];
        size_t nsigs = 0;
        json_t *arr = cur->signatures ? json_loads(cur->signatures, JSON_REJECT_DUPLICATES, NULL)
                                      : NULL;
        gov_sig_count_t sc;
        memset(&sc, 0, sizeof sc);
        if (gov_signatures_from_json(arr, sigs, GOV_MAX_SIGNATURES + 1, &nsigs) != 0) {
            why = GOV_REASON_NO_SIGNATURES;
            detail = "no readable signatures stored with the pack";
        } else if ((err = gov_rulepack_verify_signatures(stored, tenant, sigs, nsigs, c->trust,
                                                         &sc)) == GOV_OK) {
            why = sc.reason;
            snprintf(eb, sizeof eb, "%s", sc.detail);
        }
        json_decref(arr);
        if (err != GOV_OK) {
            gov_rulepack_free(stored);
            return err;
        }
    }
    if (why == GOV_REASON_NONE) {
        *out = stored;
        return GOV_OK;
    }
    gov_rulepack_free(stored);
    gov_log(GOV_LOG_ERROR,
            "the stored current rule pack does not verify here: its version is not used for "
            "anti-rollback", "tenant", tenant, "reason", gov_reason_code(why), "detail", detail,
            "sha256", cur->sha256, (const char *)NULL);
    gov_metric_inc(c->m_unverified, (const char *[]){gov_reason_code(why)}, 1);
    return GOV_OK;
}

/* Compares the new pack with the tenant's current one, as far as the
 * current one verifies (verified_current): an unverified current is treated
 * as absent, except that a pack whose digest Redis lists (current or
 * history) stays a replay.  GOV_OK with the verdict in v, or GOV_ERR_NOMEM /
 * GOV_ERR_CRYPTO. */
static gov_err_t judge_against_current(const ctx_t *c, const char *tenant,
                                       const gov_rulepack_t *pack, const char *sha256,
                                       const gov_state_rulepack_t *cur, verdict_t *v) {
    size_t len;
    const char *canonical = gov_rulepack_canonical_json(pack, &len);
    v->kind = VERDICT_ACCEPT;
    v->current_version[0] = '\0';
    if (cur->canonical == NULL)
        return GOV_OK;
    gov_rulepack_t *stored = NULL;
    gov_err_t err = verified_current(c, tenant, cur, &stored);
    if (err != GOV_OK)
        return err;
    if (stored == NULL) {
        if (gov_state_rulepack_knows(cur, sha256))
            v->kind = VERDICT_DUPLICATE;
        return GOV_OK;
    }
    snprintf(v->current_version, sizeof v->current_version, "%s", gov_rulepack_version(stored));
    int cmp = gov_version_compare(gov_rulepack_version_parsed(pack),
                                  gov_rulepack_version_parsed(stored));
    gov_rulepack_free(stored);
    if (cmp > 0)
        return GOV_OK;
    if (gov_state_rulepack_knows(cur, sha256)) {
        v->kind = VERDICT_DUPLICATE;
        return GOV_OK;
    }
    if (cmp == 0 && !(len == cur->canonical_len && memcmp(canonical, cur->canonical, len) == 0))
        reject(v, GOV_REASON_EQUIVOCATION,
               "version %s is already current with other content (current sha256 %s, "
               "this pack's %s)", gov_rulepack_version(pack), cur->sha256, sha256);
    else
        reject(v, GOV_REASON_VERSION_ROLLBACK, "version %s is not above the current version %s",
               gov_rulepack_version(pack), v->current_version);
    snprintf(v->detail.field, sizeof v->detail.field, "version");
    return GOV_OK;
}

/* --- events ------------------------------------------------------------------------------ */

static gov_err_t emit_accepted(ctx_t *c, const announced_t *a, const gov_rulepack_t *pack,
                               size_t patterns, const char *sha256, const char *previous,
                               const char *signers, char *eb, size_t ebsize) {
    char audit_id[GOV_UUID_STRLEN + 1], subject[2 * ECHO_MAX + 2];
    gov_err_t err = gov_processor_derive_id(c->p, a->occurred_ms, a->event_id, "rulepack.accepted",
                                            audit_id);
    if (err != GOV_OK)
        return err;
    snprintf(subject, sizeof subject, "%s@%s", gov_rulepack_id(pack), gov_rulepack_version(pack));
    json_t *details = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s?, s:s, s:s}",
                                "pack_id", gov_rulepack_id(pack),
                                "version", gov_rulepack_version(pack),
                                "rules", (json_int_t)gov_rulepack_rule_count(pack),
                                "patterns", (json_int_t)patterns,
                                "sha256", sha256,
                                "previous_version", previous && previous[0] ? previous : NULL,
                                "published_by", a->actor, "signers", signers);
    if (details == NULL)
        return GOV_ERR_NOMEM;
    gov_audit_fields_t af = {
        .tenant = a->tenant, .component = gov_processor_name(c->p), .actor = a->actor,
        .action = "rulepack.accepted", .outcome = "success", .subject = subject,
        .correlation_id = a->event_id, .details = details, .event_id = audit_id,
    };
    err = gov_events_audit(gov_processor_producer(c->p), gov_processor_avro(c->p), &af, eb, ebsize);
    json_decref(details);
    return err;
}

/* RulePackUpdated on policy.rulepacks.updated, after the pack (or its
 * signatures) is in Redis: every edge reloads the tenant when it sees it.
 * The id is derived from the published event and `seed`, so a re-emission
 * after a crash is the same event. */
static gov_err_t emit_updated(ctx_t *c, const announced_t *a, const gov_rulepack_t *pack,
                              const char *sha256, const char *previous,
                              const gov_sig_count_t *sc, const char *seed, char *eb,
                              size_t ebsize) {
    char id[GOV_UUID_STRLEN + 1];
    gov_err_t err = gov_processor_derive_id(c->p, a->occurred_ms, a->event_id, seed, id);
    if (err != GOV_OK)
        return err;
    json_t *signers = json_array();
    for (size_t i = 0; signers != NULL && i < sc->nsigners; i++)
        if (json_array_append_new(signers, json_string(sc->signers[i])) != 0) {
            json_decref(signers);
            signers = NULL;
        }
    json_t *ev = signers == NULL ? NULL
        : json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:s}", "event_id", id,
                    "occurred_at", (json_int_t)gov_now_micros(), "tenant", a->tenant, "pack_id",
                    gov_rulepack_id(pack), "version", gov_rulepack_version(pack), "sha256",
                    sha256, "previous_version",
                    previous && previous[0] ? json_string(previous) : json_null(), "signers",
                    signers, "published_event_id", a->event_id, "component",
                    gov_processor_name(c->p));
    if (ev == NULL)
        return GOV_ERR_NOMEM;
    err = gov_events_emit(gov_processor_producer(c->p), gov_processor_avro(c->p),
                          TOPIC_UPDATED, "RulePackUpdated", a->tenant, ev, eb, ebsize);
    json_decref(ev);
    return err;
}

static gov_err_t emit_rejected(ctx_t *c, const announced_t *a, const verdict_t *v, char *eb,
                               size_t ebsize) {
    char audit_id[GOV_UUID_STRLEN + 1], subject[2 * ECHO_MAX + 2];
    gov_err_t err = gov_processor_derive_id(c->p, a->occurred_ms, a->event_id, "rulepack.rejected",
                                            audit_id);
    if (err != GOV_OK)
        return err;
    snprintf(subject, sizeof subject, "%s@%s", a->pack_id_echo, a->version_echo);
    const gov_rulepack_error_t *d = &v->detail;
    json_t *details = json_pack("{s:s, s:s, s:o, s:s?, s:s?, s:s, s:s, s:s?, s:s}",
                                "error", v->error, "code", gov_reason_code(v->reason),
                                "rule_index", d->rule_index >= 0 ? json_integer(d->rule_index)
                                                                 : json_null(),
                                "rule_id", d->rule_id[0] ? d->rule_id : NULL,
                                "field", d->field[0] ? d->field : NULL,
                                "pack_id", a->pack_id_echo, "version", a->version_echo,
                                "current_version",
                                v->current_version[0] ? v->current_version : NULL,
                                "published_by", a->actor);
    if (details == NULL)
        return GOV_ERR_NOMEM;
    gov_audit_fields_t af = {
        .tenant = a->tenant, .component = gov_processor_name(c->p), .actor = gov_processor_name(c->p),
        .action = "rulepack.rejected", .outcome = "rejected", .reason = gov_reason_code(v->reason),
        .subject = subject, .correlation_id = a->event_id, .details = details,
        .event_id = audit_id,
    };
    err = gov_events_audit(gov_processor_producer(c->p), gov_processor_avro(c->p), &af, eb, ebsize);
    json_decref(details);
    return err;
}

/* --- handling one message ----------------------------------------------------------------- */

static void announced_from(const json_t *ev, announced_t *a) {
    memset(a, 0, sizeof *a);
    json_t *text = json_object_get(ev, "rulepack_json");
    a->tenant = json_string_value(json_object_get(ev, "tenant"));
    a->event_id = json_string_value(json_object_get(ev, "event_id"));
    a->pack_id = json_string_value(json_object_get(ev, "pack_id"));
    a->version = json_string_value(json_object_get(ev, "version"));
    a->published_by = json_string_value(json_object_get(ev, "published_by"));
    a->text = json_string_value(text);
    a->text_len = json_string_length(text);
    a->signatures = json_object_get(ev, "signatures");
    a->occurred_ms = (uint64_t)(json_integer_value(json_object_get(ev, "occurred_at")) / 1000);
    echo(a->pack_id, a->pack_id_echo, sizeof a->pack_id_echo);
    echo(a->version, a->version_echo, sizeof a->version_echo);
    echo(a->published_by && a->published_by[0] ? a->published_by : "unknown", a->actor,
         sizeof a->actor);
}

static size_t pattern_count(const gov_rulepack_t *pack) {
    size_t n = 0;
    for (size_t i = 0; i < gov_rulepack_rule_count(pack); i++)
        n += gov_rulepack_rule(pack, i)->pattern_count;
    return n;
}

/* A replay: nothing changes.  If it is the very event that made the current
 * pack current (a redelivery after a crash between the Redis write and the
 * audit's acknowledgement), what may not have been finished is done again:
 * the index, and the accepted audit event under its derived id.  A signed
 * replay of the current pack that was materialized before packs were signed
 * stores its signatures, so the edges can verify it.  Returns
 * GOV_ERR_DUPLICATE once the offset is stored, or a transient error. */
static gov_err_t finish_duplicate(ctx_t *c, const announced_t *a, const gov_rulepack_t *pack,
                                  size_t patterns, const char *sha256, const char *sig_json,
                                  const char *signers, const gov_sig_count_t *sc,
                                  const gov_state_rulepack_t *cur, const gov_state_pos_t *pos,
                                  int replay, char *eb, size_t ebsize) {
    gov_redis_t *r = gov_processor_redis(c->p);
    gov_err_t err = GOV_OK;
    int current = cur->canonical != NULL && strcmp(cur->sha256, sha256) == 0;
    if (current && !cur->has_signatures) {
        int stored = 0;
        err = gov_state_rulepack_add_signatures(r, a->tenant, sha256, sig_json, signers, &stored,
                                                eb, ebsize);
        if (err == GOV_OK && stored && !replay) {
            gov_log(GOV_LOG_INFO, "signatures stored for the current rule pack", "tenant",
                    a->tenant, "sha256", sha256, "signers", signers, (const char *)NULL);
            /* the edges refused it unsigned: now they can verify it */
            err = emit_updated(c, a, pack, sha256, cur->previous_version, sc,
                               "rulepack.signatures", eb, ebsize);
        }
    }
    if (err == GOV_OK && current && cur->event_id && strcmp(cur->event_id, a->event_id) == 0) {
        err = gov_state_rulepack_index(r, a->tenant, eb, ebsize);
        if (err == GOV_OK && !replay)
            err = emit_updated(c, a, pack, sha256, cur->previous_version, sc, "rulepack.updated",
                               eb, ebsize);
        if (err == GOV_OK && !replay)
            err = emit_accepted(c, a, pack, patterns, sha256,
                                cur->previous_version ? cur->previous_version : "", signers, eb,
                                ebsize);
    }
    if (err == GOV_OK)
        err = gov_state_offset_write(r, pos, eb, ebsize);
    return err == GOV_OK ? GOV_ERR_DUPLICATE : err;
}

/* Judges and materializes one event.  Returns GOV_OK (accepted or rejected:
 * both are handled outcomes), GOV_ERR_DUPLICATE, or a transient error for
 * which the message is delivered again. */
static gov_err_t handle(void *ctx, gov_processor_t *p, gov_processor_msg_t *m,
                        gov_reason_t *reason, char *eb, size_t ebsize) {
    ctx_t *c = ctx;
    (void)p;
    (void)reason;
    announced_t a;
    announced_from(m->event, &a);
    gov_redis_t *r = gov_processor_redis(c->p);
    gov_state_pos_t pos = gov_processor_position(c->p, m);

    verdict_t v;
    memset(&v, 0, sizeof v);
    gov_rulepack_t *pack = NULL;
    char sha256[GOV_SHA256_HEXLEN + 1] = "";
    char signers[GOV_MAX_SIGNATURES * (GOV_SIGNER_ID_MAX + 1) + 1] = "";
    char *sig_json = NULL;
    gov_bundle_sig_t sigs[GOV_MAX_SIGNATURES + 1];
    size_t nsigs = 0, patterns = 0;
    char raw[sizeof v.error];
    /* Already applied for the tenant (a rewound or rebuilt partition): not
     * judged again, nothing written, nothing announced or counted.  At the
     * applied offset itself, an accept's announcements are finished below
     * (finish_duplicate) and a rejection is not counted again. */
    int redelivered = 0;
    gov_err_t err = gov_processor_tenant_applied(c->p, m, &redelivered, eb, ebsize);
    if (err != GOV_OK)
        return err;
    err = gov_rulepack_parse(a.text, a.text_len, NULL, &pack, &v.detail, raw, sizeof raw);
    if (err == GOV_ERR_NOMEM) {
        snprintf(eb, ebsize, "out of memory parsing the rule pack");
        return err;
    }
    if (err != GOV_OK) {
        reject(&v, v.detail.code, "%s", raw);
    } else if (check_announced(pack, &a, &v) == 0 &&
               (gov_signatures_from_json(a.signatures, sigs, GOV_MAX_SIGNATURES + 1, &nsigs),
                (err = check_signed(c, pack, &a, sigs, nsigs, &v)) != GOV_OK)) {
        snprintf(eb, ebsize, "verifying the pack's signatures: %s", gov_err_str(err));
        goto out;
    } else if (v.kind != VERDICT_REJECT) {
        if ((err = gov_signatures_to_json(sigs, nsigs, &sig_json)) != GOV_OK)
            goto out;
        signers_text(&v.sigs, signers, sizeof signers);
        size_t len;
        const char *canonical = gov_rulepack_canonical_json(pack, &len);
        unsigned char md[GOV_SHA256_LEN];
        if ((err = gov_sha256(canonical, len, md)) != GOV_OK)
            goto out;
        gov_hex_encode(md, GOV_SHA256_LEN, sha256);
        patterns = pattern_count(pack);
    }

    for (int attempt = 0; v.kind != VERDICT_REJECT && attempt < 5; attempt++) {
        gov_state_rulepack_t cur;
        err = gov_state_rulepack_read(r, a.tenant, &cur, eb, ebsize);
        if (err == GOV_ERR_STATE) {
            reject(&v, GOV_REASON_CURRENT_PACK_UNREADABLE,
                   "the tenant's stored state is damaged (%s); repair it before publishing", eb);
            err = GOV_OK;
            break;
        }
        if (err != GOV_OK)
            goto out;
        if ((err = judge_against_current(c, a.tenant, pack, sha256, &cur, &v)) != GOV_OK) {
            gov_state_rulepack_clear(&cur);
            goto out;
        }
        if (v.kind == VERDICT_ACCEPT) {
            size_t len;
            gov_state_rulepack_accepted_t acc = {
                a.tenant, gov_rulepack_canonical_json(pack, &len), 0, sha256,
                gov_rulepack_id(pack), gov_rulepack_version(pack),
                gov_rulepack_rule_count(pack), patterns, a.event_id, a.actor,
                gov_processor_msg_time_us(m),
                v.current_version, sig_json, signers,
            };
            acc.canonical_len = len;
            err = gov_state_rulepack_write(r, &acc, &cur, &pos, eb, ebsize);
            if (err == GOV_OK && !m->replay) {
                char nrules[24];
                snprintf(nrules, sizeof nrules, "%zu", gov_rulepack_rule_count(pack));
                gov_log(GOV_LOG_INFO, "rule pack accepted", "tenant", a.tenant, "pack_id",
                        gov_rulepack_id(pack), "version", gov_rulepack_version(pack), "rules",
                        nrules, "previous_version", v.current_version, "sha256", sha256,
                        "published_by", a.actor, "signers", signers, (const char *)NULL);
                gov_metric_inc(c->m_accepted, (const char *[]){a.tenant}, 1);
                err = emit_updated(c, &a, pack, sha256, v.current_version, &v.sigs,
                                   "rulepack.updated", eb, ebsize);
                if (err == GOV_OK)
                    err = emit_accepted(c, &a, pack, patterns, sha256, v.current_version,
                                        signers, eb, ebsize);
            }
        } else if (v.kind == VERDICT_DUPLICATE) {
            err = finish_duplicate(c, &a, pack, patterns, sha256, sig_json, signers, &v.sigs,
                                   &cur, &pos, m->replay, eb, ebsize);
        }
        gov_state_rulepack_clear(&cur);
        if (err != GOV_ERR_CONFLICT)
            break;
        v.kind = VERDICT_ACCEPT;   /* decide again against the winner */
    }

    if (v.kind == VERDICT_REJECT && (m->replay || redelivered)) {
        /* counted, logged and audited when it was first judged (a
         * rejection's offset is written after its audit event) */
        err = gov_state_offset_write(r, &pos, eb, ebsize);
    } else if (v.kind == VERDICT_REJECT) {
        char idx[24];
        snprintf(idx, sizeof idx, "%ld", v.detail.rule_index);
        gov_log(GOV_LOG_WARN, "rule pack rejected", "tenant", a.tenant, "reason", gov_reason_code(v.reason),
                "error", v.error, "rule_index", idx, "rule_id", v.detail.rule_id, "field",
                v.detail.field, "pack_id", a.pack_id_echo, "version", a.version_echo,
                "source", m->source, (const char *)NULL);
        gov_metric_inc(c->m_rejected, (const char *[]){a.tenant, gov_reason_code(v.reason)}, 1);
        err = emit_rejected(c, &a, &v, eb, ebsize);
        if (err == GOV_OK)
            err = gov_state_offset_write(r, &pos, eb, ebsize);
    }
out:
    gov_free(sig_json);
    gov_rulepack_free(pack);
    return err;
}

int main(int argc, char **argv) {
    int exit_code;
    gov_processor_t *p;
    if (gov_processor_init(&p, &spec, config, sizeof config / sizeof config[0], argc, argv,
                           &exit_code) != GOV_OK)
        return exit_code;

    ctx_t c = {.p = p};
    /* Without its own trust it would accept packs nobody vouched for. */
    char eb[512];
    if (gov_file_trust_load(trust_file, &c.trust, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "rule-pack trust file cannot be used (set GOV_RULEPACK_TRUST_FILE)",
                "path", trust_file ? trust_file : "(unset)", "error", eb, (const char *)NULL);
        gov_processor_shutdown(p);
        return 1;
    }
    gov_metrics_t *mr = gov_processor_metrics(p);
    c.m_rejected = gov_metrics_counter(mr, "rulepack_rejected_total",
        "Rule packs rejected, by tenant and reason code.", 2, (const char *[]){"tenant", "reason"});
    c.m_accepted = gov_metrics_counter(mr, "rulepack_accepted_total",
        "Rule packs validated and materialized.", 1, (const char *[]){"tenant"});
    c.m_unverified = gov_metrics_counter(mr, "rulepack_state_unverified_total",
        "Times the stored current pack did not verify under this processor's trust (its "
        "version was not used for anti-rollback), by reason code.", 1,
        (const char *[]){"reason"});

    char nsigners[24];
    snprintf(nsigners, sizeof nsigners, "%zu", gov_trust_count(c.trust));
    gov_log(GOV_LOG_INFO, "rule-pack trust loaded", "path", trust_file, "signers", nsigners,
            (const char *)NULL);

    gov_processor_run(p, handle, &c);
    int rc = gov_processor_shutdown(p);
    gov_trust_free(c.trust);
    return rc;
}
