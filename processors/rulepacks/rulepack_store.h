/* rulepack_store.h - gov-rulepacks' Redis state.
 *
 * Keys (docs/architecture.md, "Redis keys"):
 *   policy:rulepack:{T}           string: the accepted pack's canonical JSON
 *                                 (gov_rulepack_canonical_json), the only
 *                                 thing gov-edge reads; its version is the
 *                                 one inside it
 *   policy:rulepack:{T}:meta      hash: pack_id, version, sha256 (of the
 *                                 string), rules, patterns, event_id,
 *                                 published_by, accepted_at, previous_version
 *   policy:rulepack:{T}:history   list: SHA-256 hex of the packs that were
 *                                 current before, newest first (capped), so a
 *                                 replayed older pack is told from a rollback
 *   policy:rulepack:tenants       set: tenants that have a pack
 *   gov:offsets:gov-rulepacks:policy.rulepacks:<p>
 *
 * Thread-safety: one store per thread (it uses the caller's gov_redis_t).
 */
#ifndef RULEPACK_STORE_H
#define RULEPACK_STORE_H

#include <stddef.h>

#include "gov_err.h"
#include "gov_redis.h"
#include "gov_util.h"

#define RULEPACK_HISTORY_MAX 100

/* The tenant's current state as read from Redis, in one script (owned
 * memory; rulepack_current_clear). */
typedef struct rulepack_current {
    char *canonical;              /* NULL: the tenant has no pack */
    size_t canonical_len;
    char sha256[GOV_SHA256_HEXLEN + 1];   /* of canonical, computed here; "" when none */
    char *event_id;               /* meta: the RulePackPublished that made it current */
    char *previous_version;       /* meta: version it replaced ("" none); NULL if unknown */
    char *history[RULEPACK_HISTORY_MAX];
    size_t nhistory;
} rulepack_current_t;

/* Reads the tenant's pack, meta fields and history atomically.
 * GOV_ERR_STATE (errbuf naming the key) when one of the keys holds another
 * Redis type: the state was damaged outside gov-rulepacks.  Cost: one
 * script, O(size of the pack + history). */
gov_err_t rulepack_store_read(gov_redis_t *r, const char *tenant, rulepack_current_t *cur,
                              char *errbuf, size_t errbuf_size);
void rulepack_current_clear(rulepack_current_t *cur);

/* 1 when sha256 hex is the current pack's or in its history. */
int rulepack_current_knows(const rulepack_current_t *cur, const char *sha256);

typedef struct rulepack_accepted {
    const char *tenant;
    const char *canonical;
    size_t canonical_len;
    const char *sha256;
    const char *pack_id;
    const char *version;
    size_t rules;
    size_t patterns;
    const char *event_id;
    const char *published_by;
    long long accepted_at_us;
    const char *previous_version;   /* "" when none */
} rulepack_accepted_t;

/* Writes the accepted pack, its meta hash, pushes the previous pack's
 * SHA-256 to the history and writes the offset, in one script - only if the
 * tenant's pack is still exactly cur->canonical (none when NULL).  Then, as
 * a separate idempotent command, adds the tenant to policy:rulepack:tenants.
 * GOV_ERR_CONFLICT when another writer got there first: re-read and decide
 * again.  Cost: one script carrying both packs, one SADD. */
gov_err_t rulepack_store_write(gov_redis_t *r, const rulepack_accepted_t *a,
                               const rulepack_current_t *cur, const char *offset_key,
                               long long offset, char *errbuf, size_t errbuf_size);

/* SADD policy:rulepack:tenants tenant (idempotent). */
gov_err_t rulepack_store_index(gov_redis_t *r, const char *tenant, char *errbuf,
                               size_t errbuf_size);

/* Records the processed offset alone (rejections and replays). */
gov_err_t rulepack_store_offset(gov_redis_t *r, const char *offset_key, long long offset,
                                char *errbuf, size_t errbuf_size);

#endif
