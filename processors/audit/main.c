/* gov-audit - materializes the audit trail and the decision log.
 *
 * Consumes identity.audit (AuditEvent) and policy.decisions (PolicyDecision)
 * and appends every event to its tenant's hash-chained stream audit:{T}; a
 * decision is also materialized as policy:decision:{T}:<decision_id> with a
 * TTL, so a downstream service can check an X-Policy-Decision-Id.  A decision
 * record is written once: a later PolicyDecision naming the same decision_id
 * is a duplicate (logged, counted in audit_decision_duplicates_total), never
 * an overwrite.  Offsets
 * are stored only after the Redis script that wrote the entry, the dedup
 * index and the offset key has succeeded; replays are recognised by
 * event_id.  Poison messages go to <topic>.dlq (gov_processor).
 *
 * Reads top to bottom: config -> connect -> loop -> shut down.
 */
#include <stdio.h>

#include <jansson.h>

#include "gov_log.h"
#include "gov_processor.h"
#include "gov_state.h"

static const gov_processor_spec_t spec = {
    .name = "gov-audit",
    .default_admin_port = 8704,
    .topics = {{"identity.audit", GOV_PROCESSOR_SCHEMAS("AuditEvent"), 1},
               {"policy.decisions", GOV_PROCESSOR_SCHEMAS("PolicyDecision"), 1}},
};

static long decision_ttl_ms;

static const gov_config_entry_t config[] = {
    GOV_CFG_DURATION("decision_ttl", "168h", 1000, 31L * 24 * 3600 * 1000, "how long a materialized decision (policy:decision:{T}:<id>) is kept", &decision_ttl_ms),
};

typedef struct audit_ctx {
    gov_state_audit_t *store;
    gov_metric_t *m_decision_dups;
} audit_ctx_t;

/* Appends one event to its tenant's chain (and materializes a decision); an
 * event the script cannot store as it is, is dead-lettered as
 * unmaterializable. */
static gov_err_t append(void *ctx, gov_processor_t *p, gov_processor_msg_t *m,
                        gov_reason_t *reason, char *eb, size_t ebsize) {
    audit_ctx_t *c = ctx;
    gov_state_pos_t pos = gov_processor_position(p, m);
    int decision_dup = 0;
    gov_err_t e = gov_state_audit_append(c->store, m->event, m->type, m->source, &pos,
                                         &decision_dup, eb, ebsize);
    if (e == GOV_ERR_INVALID_ARG)
        *reason = GOV_REASON_UNMATERIALIZABLE;
    if (decision_dup) {
        const char *tenant = json_string_value(json_object_get(m->event, "tenant"));
        gov_log(GOV_LOG_WARN, "decision_id already recorded; the record is not overwritten",
                "tenant", tenant, "decision_id",
                json_string_value(json_object_get(m->event, "decision_id")), "event_id",
                json_string_value(json_object_get(m->event, "event_id")), "source", m->source,
                (const char *)NULL);
        gov_metric_inc(c->m_decision_dups, (const char *[]){tenant}, 1);
    }
    return e;
}

int main(int argc, char **argv) {
    int exit_code;
    gov_processor_t *p;
    if (gov_processor_init(&p, &spec, config, sizeof config / sizeof config[0], argc,
                           argv, &exit_code) != GOV_OK)
        return exit_code;

    audit_ctx_t c = {
        .store = gov_state_audit_new(gov_processor_redis(p), decision_ttl_ms / 1000),
        .m_decision_dups = gov_metrics_counter(gov_processor_metrics(p),
            "audit_decision_duplicates_total",
            "PolicyDecision events naming a decision_id already recorded (not materialized: decision records are write-once).",
            1, (const char *[]){"tenant"}),
    };
    if (c.store == NULL || c.m_decision_dups == NULL) {
        gov_log(GOV_LOG_ERROR, "out of memory", (const char *)NULL);
        gov_state_audit_free(c.store);
        gov_processor_shutdown(p);
        return 1;
    }

    gov_processor_run(p, append, &c);

    gov_state_audit_free(c.store);
    return gov_processor_shutdown(p);
}
