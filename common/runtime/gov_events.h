/* gov_events.h - building and emitting the events every component shares.
 *
 * gov_events_emit encodes an event (a jansson object following gov_avro's
 * mapping) as Avro single-object and produces it with the tenant (or kid)
 * as key, waiting for the acknowledgement: the callers are the fail-closed
 * paths, where an event that Kafka did not take must not be assumed sent.
 *
 * gov_events_audit builds an AuditEvent (docs/contracts.md) and emits it
 * to identity.audit.  event_id may be given (a derived id for events that
 * may be re-emitted after a crash) or NULL for a fresh UUIDv7.
 *
 * Thread-safety: as thread-safe as the producer (which is).
 */
#ifndef GOV_EVENTS_H
#define GOV_EVENTS_H

#include <jansson.h>

#include "gov_avro.h"
#include "gov_err.h"
#include "gov_kafka.h"

#define GOV_TOPIC_AUDIT "identity.audit"
#define GOV_EVENTS_ACK_TIMEOUT_MS 10000

/* Encodes `event` (borrowed) as `type` and produces it to `topic` keyed by
 * `key`; waits for the broker's acknowledgement. */
gov_err_t gov_events_emit(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                          const char *topic, const char *type, const char *key,
                          json_t *event, char *errbuf, size_t errbuf_size);

typedef struct gov_audit_fields {
    const char *tenant;        /* required; "_system" for none */
    const char *component;     /* required */
    const char *actor;         /* required */
    const char *action;        /* required, e.g. "constitution.accepted" */
    const char *outcome;       /* "success" | "rejected" | "failure" */
    const char *reason;        /* may be NULL */
    const char *subject;       /* may be NULL */
    const char *correlation_id;/* may be NULL */
    json_t *details;           /* borrowed JSON object, may be NULL */
    const char *event_id;      /* NULL: a fresh UUIDv7 */
} gov_audit_fields_t;

gov_err_t gov_events_audit(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                           const gov_audit_fields_t *f, char *errbuf, size_t errbuf_size);

#endif
