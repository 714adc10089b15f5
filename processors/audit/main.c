/* gov-audit - materializes the audit trail and the decision log.
 *
 * Consumes policy.decisions and copies each PolicyDecision unchanged into
 * identity.audit (the relay); consumes identity.audit (AuditEvent and the
 * relayed PolicyDecision) and appends every event to its tenant's
 * hash-chained stream audit:{T}.  Why the relay: a chain fed by two topics
 * takes whatever interleaving the consumer saw, which a replay cannot
 * reproduce; fed by one partition per tenant, the chain is a function of
 * that partition, so Redis can be rebuilt from Kafka with the same entries
 * and the same head (docs/contracts.md, "Rebuilding Redis").  The relay's
 * progress is its committed offset only (kafka_only): a rebuild replays
 * identity.audit, never the relay.  A
 * decision is also materialized as policy:decision:{T}:<decision_id> with a
 * TTL, so a downstream service can check an X-Policy-Decision-Id.
 *
 * Dedup compares content: an event whose event_id is known with the same
 * content is a replay (silent); the same id with other content - or a
 * PolicyDecision naming a known decision_id under another event_id - is a
 * conflict.  Nothing is lost: the twin is chained as its own entry, counted
 * in audit_event_conflicts_total{tenant} and logged at error; a decision
 * record is never overwritten but is marked (conflicting_event_id), and
 * GET /v1/decisions shows the mark.  Whoever produces first therefore
 * cannot keep a later event out of the chain.  Offsets are stored only after
 * the Redis script that wrote the entry, the dedup index and the offset key
 * has succeeded.  Poison messages go to <topic>.dlq (gov_processor).
 *
 * The relay's new consumer group starts at the earliest retained decision:
 * a copy of what an earlier deployment relayed is byte-identical, a replay.
 *
 * Reads top to bottom: config -> connect -> loop -> shut down.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "gov_log.h"
#include "gov_processor.h"
#include "gov_state.h"

#define AUDIT_TOPIC "identity.audit"
#define DECISIONS_TOPIC "policy.decisions"

static const gov_processor_spec_t spec = {
    .name = "gov-audit",
    .default_admin_port = 8704,
    .topics = {{AUDIT_TOPIC, GOV_PROCESSOR_SCHEMAS("AuditEvent", "PolicyDecision"), 1},
               {DECISIONS_TOPIC, GOV_PROCESSOR_SCHEMAS("PolicyDecision"), 1}},
    .kafka_only = (const char *const[]){DECISIONS_TOPIC, NULL},
};

static long decision_ttl_ms;
static long event_id_window_ms;

static const gov_config_entry_t config[] = {
    GOV_CFG_DURATION("decision_ttl", "168h", 1000, 31L * 24 * 3600 * 1000, "how long a materialized decision (policy:decision:{T}:<id>) is kept", &decision_ttl_ms),
    GOV_CFG_DURATION("event_id_window", "168h", 1000, 31L * 24 * 3600 * 1000, "how long an event_id is kept in audit:{T}:ids to recognise a replay or a conflicting twin (decision ids are kept for decision_ttl)", &event_id_window_ms),
};

typedef struct audit_ctx {
    gov_state_audit_t *store;
    gov_metric_t *m_conflicts;
    uint64_t rebuilds;   /* gov_processor_rebuilds when the cache was last valid */
} audit_ctx_t;

/* Copies a PolicyDecision, bytes and key unchanged, into identity.audit and
 * waits for the acknowledgement: the tenant's partition of identity.audit
 * is then the one order of its chain, so replaying it rebuilds the same
 * chain.  A copy made twice (a crash before the commit) is a replay there:
 * the first one decides its place. */
static gov_err_t relay(gov_processor_t *p, gov_processor_msg_t *m, char *eb, size_t ebsize) {
    const gov_kafka_msg_t *km = m->kafka;
    const char *component = gov_processor_name(p);
    /* x-gov-component names the deployment that copied it (an operator, or
     * a test, tells two relays on the same topics apart) */
    gov_kafka_header_t h[] = {{"x-gov-relayed-from", m->source, strlen(m->source)},
                              {"x-gov-component", component, strlen(component)}};
    return gov_kafka_produce_sync(gov_processor_producer(p), AUDIT_TOPIC, km->key, km->key_len,
                                  km->value, km->len, h, 2, 15000, NULL, NULL, eb, ebsize);
}

/* Appends one event to its tenant's chain (and materializes a decision); an
 * event the script cannot store as it is, is dead-lettered as
 * unmaterializable. */
static gov_err_t append(void *ctx, gov_processor_t *p, gov_processor_msg_t *m,
                        gov_reason_t *reason, char *eb, size_t ebsize) {
    audit_ctx_t *c = ctx;
    if (strcmp(m->kafka->topic, DECISIONS_TOPIC) == 0)
        return relay(p, m, eb, ebsize);
    if (gov_processor_rebuilds(p) != c->rebuilds) {
        /* Redis lost writes: the cached heads are ahead of it */
        gov_state_audit_forget(c->store);
        c->rebuilds = gov_processor_rebuilds(p);
    }
    gov_state_pos_t pos = gov_processor_position(p, m);
    gov_state_audit_twin_t twin = GOV_STATE_AUDIT_TWIN_NONE;
    int64_t applied_before = GOV_STATE_APPLIED_UNKNOWN;
    gov_err_t e = gov_state_audit_append(c->store, m->event, m->type, m->source, &pos, &twin,
                                         &applied_before, eb, ebsize);
    if (e == GOV_ERR_INVALID_ARG)
        *reason = GOV_REASON_UNMATERIALIZABLE;
    /* the tenant's slot lost writes (its applied offset went back): the
     * partition is being rebuilt, this message comes again in the replay */
    if ((e == GOV_OK || e == GOV_ERR_DUPLICATE || e == GOV_ERR_STATE) &&
        gov_processor_applied(p, m, applied_before)) {
        gov_state_audit_forget(c->store);
        snprintf(eb, ebsize, "tenant's applied offset went back; rebuilding");
        return GOV_ERR_STATE;
    }
    if (e == GOV_OK && twin != GOV_STATE_AUDIT_TWIN_NONE) {
        /* Someone produced two different events under one id: both are in
         * the chain now; which one is genuine is for an operator to judge. */
        const char *tenant = json_string_value(json_object_get(m->event, "tenant"));
        const char *decision_id = json_string_value(json_object_get(m->event, "decision_id"));
        gov_log(GOV_LOG_ERROR,
                twin == GOV_STATE_AUDIT_TWIN_EVENT_ID
                    ? "event_id already chained with other content; chained as a conflicting twin"
                    : "decision_id already recorded by another event; chained as a conflicting twin, the record is marked, not overwritten",
                "tenant", tenant, "type", m->type, "event_id",
                json_string_value(json_object_get(m->event, "event_id")), "decision_id",
                decision_id ? decision_id : "", "source", m->source, (const char *)NULL);
        gov_metric_inc(c->m_conflicts, (const char *[]){tenant}, 1);
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
        .m_conflicts = gov_metrics_counter(gov_processor_metrics(p),
            "audit_event_conflicts_total",
            "Events chained as conflicting twins: a known event_id with other content, or a PolicyDecision naming a decision_id recorded by another event.",
            1, (const char *[]){"tenant"}),
    };
    if (c.store == NULL || c.m_conflicts == NULL) {
        gov_log(GOV_LOG_ERROR, "out of memory", (const char *)NULL);
        gov_state_audit_free(c.store);
        gov_processor_shutdown(p);
        return 1;
    }
    gov_state_audit_set_id_window(c.store, event_id_window_ms);

    gov_processor_run(p, append, &c);

    gov_state_audit_free(c.store);
    return gov_processor_shutdown(p);
}
