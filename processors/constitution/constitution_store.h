/* constitution_store.h - gov-constitution's Redis state.
 *
 * Keys (DESIGN.md section 4):
 *   constitution:{T}          hash: checksum, hash_alg, version, verified_at,
 *                             signers, source, canonicalization, bundle_event_id
 *   constitution:{T}:doc      the verified document, canonical bytes
 *   constitution:{T}:history  list of previous checksums, newest first (capped)
 *   constitution:tenants      set of tenants that have a constitution
 *   gov:offsets:gov-constitution:constitution.bundles:<p>
 *
 * Thread-safety: one store per thread.
 */
#ifndef CONSTITUTION_STORE_H
#define CONSTITUTION_STORE_H

#include "gov_constitution.h"
#include "gov_redis.h"

#define CONSTITUTION_HISTORY_MAX 100

/* The tenant's current state as read from Redis (owned strings). */
typedef struct constitution_current {
    char *version;          /* NULL: none yet */
    char *checksum;
    char *history[CONSTITUTION_HISTORY_MAX];
    size_t nhistory;
} constitution_current_t;

gov_err_t constitution_store_read(gov_redis_t *r, const char *tenant,
                                  constitution_current_t *cur, char *errbuf,
                                  size_t errbuf_size);
void constitution_current_clear(constitution_current_t *cur);

/* Borrowed view of cur for gov_constitution_verify. */
void constitution_current_view(const constitution_current_t *cur,
                               gov_constitution_state_t *st);

typedef struct constitution_accepted {
    const char *tenant;
    const char *checksum;
    const char *hash_alg;
    const char *canonicalization;
    const char *version;
    const char *signers;        /* comma-separated, sorted */
    const char *source;
    const char *bundle_event_id;
    long long verified_at_us;
    const char *canonical;
    size_t canonical_len;
} constitution_accepted_t;

/* Writes the accepted constitution, pushes the previous checksum to the
 * history and writes the offset, in one script - only if the current
 * checksum is still expected_checksum (NULL: none).  GOV_ERR_CONFLICT when
 * another writer got there first: re-read and verify again. */
gov_err_t constitution_store_write(gov_redis_t *r, const constitution_accepted_t *a,
                                   const char *expected_checksum, const char *offset_key,
                                   long long offset, char *errbuf, size_t errbuf_size);

/* Records the processed offset alone (rejections and replays). */
gov_err_t constitution_store_offset(gov_redis_t *r, const char *offset_key, long long offset,
                                    char *errbuf, size_t errbuf_size);

#endif
