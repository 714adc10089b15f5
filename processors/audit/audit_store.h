/* audit_store.h - gov-audit's materialization: hash-chained audit streams and
 * the decision log, written to Redis with one Lua script per event.
 *
 * Keys (DESIGN.md section 4; {T} is the tenant, a Redis Cluster hash tag):
 *   audit:{T}                  stream of chain entries
 *   audit:{T}:head             hash {hash, seq} of the last entry
 *   audit:{T}:ids              hash event_id -> stream entry id (replay dedup)
 *   policy:decision:{T}:<id>   hash of a PolicyDecision, with a TTL
 *   gov:offsets:gov-audit:<topic>:<partition>   last materialized offset
 *
 * Thread-safety: an audit_store_t belongs to one thread.
 */
#ifndef AUDIT_STORE_H
#define AUDIT_STORE_H

#include <jansson.h>

#include "gov_err.h"
#include "gov_redis.h"

typedef struct audit_store audit_store_t;

audit_store_t *audit_store_new(gov_redis_t *redis, long decision_ttl_s);
void audit_store_free(audit_store_t *s);

/* Appends `event` (borrowed, decoded, of schema `type`) to its tenant's chain
 * and, for a PolicyDecision, materializes the decision.  offset_key/offset
 * are written in the same script.  Returns GOV_OK, GOV_ERR_DUPLICATE when the
 * event_id is already in the chain (replay), GOV_ERR_INVALID_ARG for an event
 * that cannot be materialized (reason in errbuf), or a transient error. */
gov_err_t audit_store_append(audit_store_t *s, json_t *event, const char *type,
                             const char *source, const char *offset_key,
                             long long offset, char *errbuf, size_t errbuf_size);

#endif /* AUDIT_STORE_H */
