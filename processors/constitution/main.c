/* gov-constitution - verifies signed constitution bundles and materializes
 * the accepted ones.
 *
 * Consumes constitution.bundles.  For each ConstitutionBundle it reads the
 * tenant's current state from Redis, applies every rule of
 * gov_constitution_verify against the locally configured trust, and then:
 *   accept     -> one script writes constitution:{T}, :doc, :history and the
 *                 offset (compare-and-set on the current checksum); then
 *                 ConstitutionUpdated is produced to constitution.updated and
 *                 an AuditEvent (constitution.accepted) to identity.audit;
 *   duplicate  -> a replay of an accepted bundle: nothing changes and
 *                 nothing is announced again (replays are silent); only when
 *                 it is the current one and its events were never
 *                 acknowledged (field `announced`: a crash between the Redis
 *                 write and the acknowledgement) are they produced, with the
 *                 same event ids;
 *   reject     -> nothing changes; constitution_rejected_total{tenant,reason}
 *                 and an AuditEvent (constitution.rejected, with the reason).
 * A message replayed to rebuild Redis (m->replay: Redis lost writes) is
 * materialized the same way and announces nothing.
 * Before any of that, a message below the tenant's applied offset
 * (gov:applied:{T}:..., kept by the same scripts) is finished as a
 * duplicate without being judged again (gov_processor_tenant_applied): a
 * rewound or rebuilt partition re-applies and re-counts nothing the
 * tenant's keys already hold.  The message at the applied offset itself is
 * judged (an accept written but not announced is finished) without a
 * second rejection count or audit event.
 * Event ids are derived from the bundle's event id, so any re-emission is
 * deduplicated downstream.  The offset is stored only after all of that.
 *
 * Reads top to bottom: config -> connect -> loop -> shut down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_constitution.h"
#include "gov_events.h"
#include "gov_file.h"
#include "gov_log.h"
#include "gov_processor.h"
#include "gov_time.h"
#include "gov_util.h"

static const gov_processor_spec_t spec = {
    .name = "gov-constitution",
    .default_admin_port = 8701,
    .topics = {{"constitution.bundles", GOV_PROCESSOR_SCHEMAS("ConstitutionBundle"), 1}},
};

static char *trust_file;
static long max_document;

static const gov_config_entry_t config[] = {
    GOV_CFG_STRING("trust_file", NULL, "trust configuration: {\"signers\": {\"<id>\": \"<Ed25519 PEM>\"}, \"tenants\": {\"<tenant>\": {\"threshold\": N, \"signers\": [\"<id>\"], \"unbound_documents\": false}}} (or the older {\"threshold\": N, \"signers\": {...}}: every tenant, documents must name theirs)", &trust_file),
    GOV_CFG_INT("max_document", "1048576", 1024, 16777216, "largest constitution document accepted, in bytes", &max_document),
};

typedef struct ctx {
    gov_processor_t *p;
    gov_trust_t *trust;
    gov_metric_t *m_rejected, *m_accepted, *m_version, *m_unverified;
} ctx_t;

static gov_trust_t *load_trust(const char *path) {
    char eb[512];
    gov_trust_t *t = NULL;
    char *buf = NULL;
    size_t n = 0;
    if (path == NULL) {
        gov_log(GOV_LOG_ERROR, "trust file cannot be read (set GOV_TRUST_FILE)", "path",
                "(unset)", (const char *)NULL);
        return NULL;
    }
    if (gov_file_read(path, GOV_TRUST_FILE_MAX, 0, &buf, &n, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "trust file cannot be read (set GOV_TRUST_FILE)", "path", path,
                "error", eb, (const char *)NULL);
        return NULL;
    }
    if (gov_trust_parse(buf, n, &t, eb, sizeof eb) != GOV_OK)
        gov_log(GOV_LOG_ERROR, "trust file rejected", "path", path, "error", eb, (const char *)NULL);
    gov_free(buf);
    return t;
}

/* Numeric gauge value of a version: major*1e6 + minor*1e3 + patch. */
static double version_gauge(const char *version) {
    gov_version_t v;
    if (gov_version_parse(version, &v) != 0)
        return -1;
    return (double)v.major * 1e6 + (double)v.minor * 1e3 + (double)v.patch;
}

static void join_signers(const gov_verdict_t *v, char *out, size_t size) {
    out[0] = '\0';
    for (size_t i = 0; i < v->nsigners; i++) {
        size_t l = strlen(out);
        snprintf(out + l, size - l, "%s%s", i ? "," : "", v->signers[i]);
    }
}

/* The view of the tenant's current state that anti-rollback may trust
 * (docs/runbooks/security.md, "Redis writer"): the stored current bundle is
 * verified again here, under this processor's own trust; when it verifies,
 * the comparison uses the version read from the verified document (never
 * the hash field `version`) and its governance binds the successor.  When
 * it does not (tampered, unsigned, or signed by a signer since removed),
 * nothing stored about it is trusted to decide: it is counted
 * (constitution_state_unverified_total{reason}), logged at error, and the
 * view has no version and no in-force document - only the checksums kept
 * (current and history), which main.c still treats as replays.  *version
 * holds the verified version (or "").  GOV_ERR_NOMEM / GOV_ERR_CRYPTO when
 * it could not be decided. */
static gov_err_t trusted_view(ctx_t *c, const char *tenant, const gov_state_constitution_t *cur,
                              gov_constitution_state_t *st, char version[GOV_VERSION_MAX]) {
    gov_state_constitution_view(cur, st);
    version[0] = '\0';
    if (cur->version == NULL)
        return GOV_OK;
    gov_verdict_t v;
    gov_err_t err = gov_state_constitution_reverify(c->trust, tenant, cur->document,
                                                    cur->document_len, cur->canonicalization,
                                                    cur->hash_alg, cur->checksum,
                                                    cur->signatures, &v);
    if (err == GOV_OK && v.outcome == GOV_VERIFY_ACCEPT) {
        snprintf(version, GOV_VERSION_MAX, "%s", v.version);
        st->version = version;
    } else if (err == GOV_OK) {
        gov_reason_t why = cur->document_too_large ? GOV_REASON_TOO_LARGE : v.reason;
        gov_log(GOV_LOG_ERROR,
                "the stored current constitution does not verify here: its version is not "
                "used for anti-rollback", "tenant", tenant, "reason", gov_reason_code(why),
                "detail", v.detail, "checksum", cur->checksum, (const char *)NULL);
        gov_metric_inc(c->m_unverified, (const char *[]){gov_reason_code(why)}, 1);
        st->version = NULL;
        st->document_json = NULL;
        st->document_len = 0;
    }
    gov_verdict_clear(&v);
    return err;
}

/* 1 when checksum was accepted before for the tenant (current or history):
 * the replay rule that still holds when the stored current does not verify. */
static int known_checksum(const gov_state_constitution_t *cur, const char *checksum) {
    if (checksum == NULL)
        return 0;
    for (size_t i = 0; i < cur->nhistory; i++)
        if (strcmp(cur->history[i], checksum) == 0)
            return 1;
    return 0;
}

/* Produces ConstitutionUpdated and the accepted AuditEvent with ids derived
 * from the bundle, so a re-emission is the same event. */
static gov_err_t emit_accepted(ctx_t *c, json_t *ev, const char *version, const char *signers,
                               const char *previous, char *eb, size_t ebsize) {
    const char *tenant = json_string_value(json_object_get(ev, "tenant"));
    const char *bundle_id = json_string_value(json_object_get(ev, "event_id"));
    const char *checksum = json_string_value(json_object_get(ev, "checksum"));
    uint64_t ms = (uint64_t)(json_integer_value(json_object_get(ev, "occurred_at")) / 1000);
    char updated_id[GOV_UUID_STRLEN + 1], audit_id[GOV_UUID_STRLEN + 1];
    gov_processor_derive_id(c->p, ms, bundle_id, "constitution.updated", updated_id);
    gov_processor_derive_id(c->p, ms, bundle_id, "constitution.accepted", audit_id);

    json_t *signer_list = json_array();
    char buf[GOV_MAX_SIGNATURES * (GOV_SIGNER_ID_MAX + 1) + 1];
    snprintf(buf, sizeof buf, "%s", signers);
    for (char *save = NULL, *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save))
        json_array_append_new(signer_list, json_string(s));
    json_t *upd = json_pack("{s:s, s:I, s:s, s:s, s:O, s:s, s:o, s:o, s:O, s:s}", "event_id",
                            updated_id, "occurred_at", (json_int_t)gov_now_micros(), "tenant",
                            tenant, "checksum", checksum, "hash_alg",
                            json_object_get(ev, "hash_alg"), "version", version,
                            "previous_checksum", previous ? json_string(previous) : json_null(),
                            "signers", signer_list, "source", json_object_get(ev, "source"),
                            "bundle_event_id", bundle_id);
    if (upd == NULL)
        return GOV_ERR_NOMEM;
    gov_err_t err = gov_events_emit(gov_processor_producer(c->p), gov_processor_avro(c->p),
                                    "constitution.updated", "ConstitutionUpdated", tenant, upd,
                                    eb, ebsize);
    json_decref(upd);
    if (err != GOV_OK)
        return err;
    json_t *details = json_pack("{s:s, s:s, s:s, s:O}", "version", version, "signers", signers,
                                "previous_checksum", previous ? previous : "",
                                "source", json_object_get(ev, "source"));
    gov_audit_fields_t af = {
        .tenant = tenant, .component = gov_processor_name(c->p), .actor = signers,
        .action = "constitution.accepted", .outcome = "success", .subject = checksum,
        .correlation_id = bundle_id, .details = details, .event_id = audit_id,
    };
    err = gov_events_audit(gov_processor_producer(c->p), gov_processor_avro(c->p), &af, eb, ebsize);
    json_decref(details);
    return err;
}

static gov_err_t emit_rejected(ctx_t *c, json_t *ev, const gov_verdict_t *v, char *eb,
                               size_t ebsize) {
    const char *tenant = json_string_value(json_object_get(ev, "tenant"));
    const char *bundle_id = json_string_value(json_object_get(ev, "event_id"));
    uint64_t ms = (uint64_t)(json_integer_value(json_object_get(ev, "occurred_at")) / 1000);
    char audit_id[GOV_UUID_STRLEN + 1];
    gov_processor_derive_id(c->p, ms, bundle_id, "constitution.rejected", audit_id);
    json_t *details = json_pack("{s:s, s:O, s:O}", "detail", v->detail, "source",
                                json_object_get(ev, "source"), "claimed_checksum",
                                json_object_get(ev, "checksum"));
    gov_audit_fields_t af = {
        .tenant = tenant, .component = gov_processor_name(c->p), .actor = gov_processor_name(c->p),
        .action = "constitution.rejected", .outcome = "rejected",
        .reason = gov_reason_code(v->reason),
        .subject = json_string_value(json_object_get(ev, "checksum")),
        .correlation_id = bundle_id, .details = details, .event_id = audit_id,
    };
    gov_err_t err = gov_events_audit(gov_processor_producer(c->p), gov_processor_avro(c->p), &af,
                                     eb, ebsize);
    json_decref(details);
    return err;
}

/* Verifies and materializes one bundle.  Returns GOV_OK (accepted or
 * rejected - both are handled outcomes), GOV_ERR_DUPLICATE, or a transient
 * error for which the message is retried. */
static gov_err_t handle(void *ctx, gov_processor_t *p, gov_processor_msg_t *m,
                        gov_reason_t *reason, char *eb, size_t ebsize) {
    ctx_t *c = ctx;
    (void)p;
    (void)reason;
    json_t *ev = m->event;
    const char *tenant = json_string_value(json_object_get(ev, "tenant"));
    json_t *docj = json_object_get(ev, "document_json");
    json_t *sigsj = json_object_get(ev, "signatures");
    gov_state_pos_t pos = gov_processor_position(c->p, m);
    gov_redis_t *r = gov_processor_redis(c->p);
    /* Already applied for the tenant (a rewound or rebuilt partition): not
     * judged again, nothing written, nothing announced.  At the applied
     * offset itself, an unannounced accept is finished below. */
    int redelivered = 0;
    gov_err_t err = gov_processor_tenant_applied(c->p, m, &redelivered, eb, ebsize);
    if (err != GOV_OK)
        return err;

    gov_bundle_sig_t sigs[GOV_MAX_SIGNATURES + 1];
    size_t nsigs = json_array_size(sigsj);
    size_t nview = nsigs > GOV_MAX_SIGNATURES ? GOV_MAX_SIGNATURES + 1 : nsigs;
    for (size_t i = 0; i < nview; i++) {
        json_t *s = json_array_get(sigsj, i);
        sigs[i] = (gov_bundle_sig_t){json_string_value(json_object_get(s, "signer_id")),
                                     json_string_value(json_object_get(s, "algorithm")),
                                     json_string_value(json_object_get(s, "signature"))};
    }
    gov_bundle_in_t in = {
        tenant, json_string_value(docj), json_string_length(docj),
        json_string_value(json_object_get(ev, "canonicalization")),
        json_string_value(json_object_get(ev, "hash_alg")),
        json_string_value(json_object_get(ev, "checksum")), sigs, nsigs,
    };

    for (int attempt = 0; attempt < 5; attempt++) {
        gov_state_constitution_t cur;
        if ((err = gov_state_constitution_read(r, tenant, &cur, eb, ebsize)) != GOV_OK)
            return err;
        gov_constitution_state_t st;
        char cur_version[GOV_VERSION_MAX];
        if ((err = trusted_view(c, tenant, &cur, &st, cur_version)) != GOV_OK) {
            gov_state_constitution_clear(&cur);
            return err;
        }
        gov_verdict_t v;
        memset(&v, 0, sizeof v);
        if (st.version == NULL && cur.version != NULL && known_checksum(&cur, in.checksum)) {
            /* Unverified current: an older accepted bundle replayed stays a
             * replay (never a rollback to it). */
            v.outcome = GOV_VERIFY_DUPLICATE;
            snprintf(v.detail, sizeof v.detail, "accepted before (in the history)");
        } else if (in.document_len > (size_t)max_document) {
            v.outcome = GOV_VERIFY_REJECT;
            v.reason = GOV_REASON_DOCUMENT_TOO_LARGE;
            snprintf(v.detail, sizeof v.detail, "document of %zu bytes exceeds max_document %ld",
                     in.document_len, max_document);
        } else if ((err = gov_constitution_verify(&in, c->trust, &st, &v)) != GOV_OK) {
            gov_state_constitution_clear(&cur);
            return err;
        }
        char signers[GOV_MAX_SIGNATURES * (GOV_SIGNER_ID_MAX + 1) + 1];
        join_signers(&v, signers, sizeof signers);

        if (v.outcome == GOV_VERIFY_ACCEPT) {
            /* The signatures are stored with the document, so every edge
             * verifies again what it loads (Redis is not a trust root). */
            char *sigs_json = json_dumps(sigsj, JSON_COMPACT | JSON_SORT_KEYS);
            gov_state_constitution_accepted_t a = {
                tenant, in.checksum, in.hash_alg, in.canonicalization, v.version, signers,
                json_string_value(json_object_get(ev, "source")),
                json_string_value(json_object_get(ev, "event_id")), gov_processor_msg_time_us(m),
                v.canonical, v.canonical_len, sigs_json,
            };
            err = sigs_json ? gov_state_constitution_write(r, &a, cur.checksum, &pos, eb, ebsize)
                            : GOV_ERR_NOMEM;
            gov_free(sigs_json);
            if (err == GOV_OK && m->replay) {
                /* Rebuilding Redis: this was announced when it was first
                 * accepted; the replay is silent. */
                gov_log(GOV_LOG_INFO, "constitution restored", "tenant", tenant, "version",
                        v.version, "checksum", in.checksum, (const char *)NULL);
                err = gov_state_constitution_announced(r, tenant, in.checksum, eb, ebsize);
            } else if (err == GOV_OK) {
                gov_log(GOV_LOG_INFO, "constitution accepted", "tenant", tenant, "version",
                        v.version, "checksum", in.checksum, "signers", signers, (const char *)NULL);
                gov_metric_inc(c->m_accepted, (const char *[]){tenant}, 1);
                gov_metric_set(c->m_version, (const char *[]){tenant}, version_gauge(v.version));
                err = emit_accepted(c, ev, v.version, signers, cur.checksum, eb, ebsize);
                if (err == GOV_OK)
                    err = gov_state_constitution_announced(r, tenant, in.checksum, eb, ebsize);
            }
        } else if (v.outcome == GOV_VERIFY_DUPLICATE) {
            err = GOV_ERR_DUPLICATE;
            if (cur.checksum && strcmp(cur.checksum, in.checksum) == 0) {
                const char *prev = cur.nhistory ? cur.history[0] : NULL;
                gov_err_t e2 = GOV_OK;
                if (!cur.has_signatures) {
                    /* Materialized before signatures were stored: the replay
                     * (verified above) makes it verifiable by the edges. */
                    char *sigs_json = json_dumps(sigsj, JSON_COMPACT | JSON_SORT_KEYS);
                    e2 = sigs_json ? gov_state_constitution_add_signatures(r, tenant, in.checksum,
                                                                           sigs_json, eb, ebsize)
                                   : GOV_ERR_NOMEM;
                    gov_free(sigs_json);
                }
                if (e2 == GOV_OK)
                    e2 = gov_state_constitution_index(r, tenant, eb, ebsize);
                /* Silent unless its events were never acknowledged (a crash
                 * between the write and the announcement). */
                if (e2 == GOV_OK && !cur.announced && !m->replay) {
                    e2 = emit_accepted(c, ev, v.version, signers, prev, eb, ebsize);
                    if (e2 == GOV_OK)
                        e2 = gov_state_constitution_announced(r, tenant, in.checksum, eb, ebsize);
                }
                if (e2 != GOV_OK)
                    err = e2;
            }
            if (err == GOV_ERR_DUPLICATE) {
                gov_err_t e3 = gov_state_offset_write(r, &pos, eb, ebsize);
                if (e3 != GOV_OK)
                    err = e3;
            }
        } else {
            gov_log(GOV_LOG_WARN, "constitution rejected", "tenant", tenant, "reason",
                    gov_reason_code(v.reason), "detail", v.detail, "source",
                    json_string_value(json_object_get(ev, "source")), (const char *)NULL);
            if (!m->replay && !redelivered) {
                /* (redelivered: counted and audited before its offset) */
                gov_metric_inc(c->m_rejected, (const char *[]){tenant, gov_reason_code(v.reason)}, 1);
                err = emit_rejected(c, ev, &v, eb, ebsize);
            }
            if (err == GOV_OK)
                err = gov_state_offset_write(r, &pos, eb, ebsize);
        }
        gov_verdict_clear(&v);
        gov_state_constitution_clear(&cur);
        if (err != GOV_ERR_CONFLICT)
            break;
    }
    return err;
}

int main(int argc, char **argv) {
    int exit_code;
    gov_processor_t *p;
    if (gov_processor_init(&p, &spec, config, sizeof config / sizeof config[0], argc, argv,
                           &exit_code) != GOV_OK)
        return exit_code;

    ctx_t c = {.p = p};
    c.trust = load_trust(trust_file);
    if (c.trust == NULL) {
        gov_processor_shutdown(p);
        return 1;
    }
    gov_metrics_t *mr = gov_processor_metrics(p);
    c.m_rejected = gov_metrics_counter(mr, "constitution_rejected_total",
        "Constitution bundles rejected, by tenant and reason code.", 2,
        (const char *[]){"tenant", "reason"});
    c.m_accepted = gov_metrics_counter(mr, "constitution_accepted_total",
        "Constitution bundles verified and materialized.", 1, (const char *[]){"tenant"});
    c.m_unverified = gov_metrics_counter(mr, "constitution_state_unverified_total",
        "Times the stored current constitution did not verify under this processor's trust "
        "(its version was not used for anti-rollback), by reason code.", 1,
        (const char *[]){"reason"});
    c.m_version = gov_metrics_gauge(mr, "constitution_bundle_version",
        "Version of the tenant's current constitution as major*1e6 + minor*1e3 + patch.", 1,
        (const char *[]){"tenant"});
    char n[16], nt[16];
    snprintf(n, sizeof n, "%zu", gov_trust_count(c.trust));
    if (gov_trust_tenant_count(c.trust) > 0)
        snprintf(nt, sizeof nt, "%zu", gov_trust_tenant_count(c.trust));
    else
        snprintf(nt, sizeof nt, "all");
    gov_log(GOV_LOG_INFO, "trust loaded", "path", trust_file, "signers", n, "tenants", nt,
            (const char *)NULL);

    gov_processor_run(p, handle, &c);

    gov_trust_free(c.trust);
    return gov_processor_shutdown(p);
}
