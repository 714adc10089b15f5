/* gov_keyrotate.h - the signing-key lifecycle: rotation and the transitions
 * that follow the clock (docs/contracts.md "Key rotation").
 *
 * One module, two callers: `govctl keys rotate` (an operator, once) and
 * gov-identity's rotator (scheduled rotation and time-driven transitions),
 * so a key rotated by hand and one rotated by the timer are the same events.
 *
 * A rotation generates a new Ed25519 key IN the key store (the private key
 * never leaves it), then produces on identity.keys (key = kid, acks=all,
 * waited for):
 *   1. KeyRotated{new kid, state pending, activates_at = now + delay} - or
 *      state active at once when delay is 0, which is allowed only when the
 *      store has no current key (the very first key);
 *   2. for every current key of the store (pending or active; normally one):
 *      KeyRotated{state retiring, retires_at = new.activates_at +
 *      token_ttl_max_s + token_leeway_s}, so the longest-lived token the old
 *      key can still sign expires before the key leaves the JWKS.
 * The new key is produced first: a crash between the two leaves two signing
 * candidates, never none.
 *
 * The current keys are read from Redis, i.e. from what gov-identity
 * materialized from identity.keys (the record).  Reading the topic itself
 * would mean consuming a compacted topic to its end on every call; the
 * materialized state is that same record, folded, one script away, and
 * gov-identity (the rotator) is the writer of it.  A KeyRotated not yet
 * materialized is not seen: two rotations started within that window both
 * retire the same old key (harmless) and leave two new keys (the newer
 * signs once active; the other retires at the next rotation).
 *
 * Only keys the key store holds are touched: a rotator manages its own
 * store's keys, never a key that another store (another deployment, a test)
 * published on the same topic.
 *
 * Thread-safety: a gov_keyrotate_t is used by one thread.
 */
#ifndef GOV_KEYROTATE_H
#define GOV_KEYROTATE_H

#include <stddef.h>
#include <stdint.h>

#include "gov_avro.h"
#include "gov_config.h"
#include "gov_err.h"
#include "gov_events.h"
#include "gov_kafka.h"
#include "gov_reason.h"
#include "gov_redis.h"
#include "gov_signer.h"
#include "gov_signer_rt.h"
#include "gov_state_identity.h"

/* The timing of a rotation (seconds). */
typedef struct gov_keyrotate_config {
    long propagation_s;    /* key_propagation_s: publication -> activation */
    long token_ttl_max_s;  /* token_ttl_max_s: the longest token lifetime */
    long leeway_s;         /* token_leeway_s: verifiers' clock-skew leeway */
} gov_keyrotate_config_t;

/* The rows of a binary that rotates (govctl keys rotate, gov-identity):
 * env GOV_KEY_PROPAGATION_S, GOV_TOKEN_TTL_MAX_S, GOV_TOKEN_LEEWAY_S. */
#define GOV_KEYROTATE_CONFIG_ROWS(c)                                                        \
    GOV_CFG_INT("key_propagation_s", "60", 0, 86400,                                        \
                "seconds between a new key's publication in the JWKS and its activation",   \
                &(c)->propagation_s),                                                       \
    GOV_CFG_INT("token_ttl_max_s", "3600", 1, 86400,                                        \
                "longest lifetime of an access token (a retiring key stays in the JWKS "    \
                "this long after its successor activates)",                                 \
                &(c)->token_ttl_max_s),                                                     \
    GOV_CFG_INT("token_leeway_s", "60", 0, 3600,                                            \
                "verifiers' clock-skew leeway, added to a retiring key's stay",             \
                &(c)->leeway_s)

/* The operators whose signatures every KeyRotated produced here carries
 * (docs/contracts.md "Signed identity events"): n >= 1 signers, borrowed. */
typedef struct gov_keyrotate_signers {
    const gov_events_signer_t *signers;
    size_t n;
    int64_t lease_epoch;   /* > 0: the rotator lease epoch the producer holds, sent as
                              header GOV_KEYROTATE_EPOCH_HEADER; gov-identity refuses an
                              event whose epoch is older than the lease's (key_lease_stale) */
} gov_keyrotate_signers_t;

/* The Kafka header of a KeyRotated that carries its producer's lease epoch
 * (decimal).  A header, not a field: a field changes KeyRotated's schema
 * fingerprint, and records framed with the older one would no longer
 * decode.  Unsigned: it fences honest holders that lost the lease; a
 * writer of identity.keys can only make its own event refused with it. */
#define GOV_KEYROTATE_EPOCH_HEADER "x-gov-lease-epoch"

/* One key as the rotation sees it (copied from Redis). */
typedef struct gov_keyrotate_key {
    char kid[GOV_SIGNER_KID_SIZE];
    char state[GOV_STATE_IDENTITY_STATE_MAX];
    int64_t created_at, activates_at, retires_at;   /* µs; retires_at -1: none */
    int in_store;                                   /* the key store holds it */
    gov_state_identity_key_rec_t rec;               /* owned */
} gov_keyrotate_key_t;

/* The keys of Redis (identity:{keys}:kids, each read), marked in_store
 * against ks's listing (ks may be NULL: none marked).  On GOV_OK *keys is a
 * new array of *n (gov_keyrotate_keys_free).  Cost: one script per key plus
 * one listing of the store. */
gov_err_t gov_keyrotate_keys_load(gov_redis_t *r, gov_keystore_t *ks, gov_keyrotate_key_t **keys,
                                  size_t *n, gov_reason_t *why, char *errbuf, size_t errbuf_size);
void gov_keyrotate_keys_free(gov_keyrotate_key_t *keys, size_t n);

/* The newest current (pending or active) key of the store: greatest
 * activates_at, then created_at, then kid.  Borrowed from keys, or NULL. */
const gov_keyrotate_key_t *gov_keyrotate_newest(const gov_keyrotate_key_t *keys, size_t n);

/* The retires_at a retiring key gets when its successor activates at
 * successor_activates_at (µs): that + (ttl max + leeway) s, and never before
 * the key's own activates_at.  Pure. */
int64_t gov_keyrotate_retires_at(const gov_keyrotate_config_t *cfg, int64_t own_activates_at,
                                 int64_t successor_activates_at);

/* What a rotation did. */
typedef struct gov_keyrotate_result {
    char kid[GOV_SIGNER_KID_SIZE];
    int64_t activates_at;                         /* µs */
    char previous_kid[GOV_SIGNER_KID_SIZE];       /* "" none */
    int64_t retires_at;                           /* µs; -1 none */
    const char *state;                            /* "pending" or "active" (static) */
} gov_keyrotate_result_t;

/* Rotates (see above) at time now_us, the new key activating activate_in_s
 * seconds later (< 0: the propagation delay).  An activate_in_s below the
 * propagation delay while the store has a current key is refused before
 * anything is generated: GOV_ERR_INVALID_ARG, key_activation_too_soon.
 * keys/n: the state gov_keyrotate_keys_load read (borrowed).  Produces
 * through p (borrowed; acks=all) with events encoded by reg, each signed
 * by op (borrowed).  Errors:
 * the key store's (its *why), kafka_unavailable (a KeyRotated not
 * acknowledged: the key exists in the store, unpublished, and is never
 * used), internal_error.  Cost: one key generation, 1 + current produce
 * round trips. */
gov_err_t gov_keyrotate_rotate(gov_keystore_t *ks, gov_kafka_producer_t *p,
                               const gov_avro_registry_t *reg, const gov_keyrotate_signers_t *op,
                               const gov_keyrotate_config_t *cfg,
                               const gov_keyrotate_key_t *keys, size_t n, int64_t now_us,
                               long activate_in_s, gov_keyrotate_result_t *out, gov_reason_t *why,
                               char *errbuf, size_t errbuf_size);

/* The transitions due at now_us among the store's keys, each produced as a
 * KeyRotated with only its state changed: pending -> active at
 * activates_at, retiring -> retired at retires_at.  *produced: how many.
 * Errors as gov_keyrotate_rotate. */
gov_err_t gov_keyrotate_transitions(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                                    const gov_keyrotate_signers_t *op,
                                    const gov_keyrotate_key_t *keys, size_t n, int64_t now_us,
                                    int *produced, gov_reason_t *why, char *errbuf,
                                    size_t errbuf_size);

/* Emergency retirement (a compromised key): produces KeyRotated{state
 * retired} for kid at once, whatever its store, its retires_at kept when
 * set (a KeyRotated may not move it earlier) else max(now, activates_at).
 * gov-identity then drops it from the JWKS and every token it signed stops
 * verifying.  GOV_ERR_NOT_FOUND (key_not_found) for a kid not materialized,
 * GOV_ERR_DUPLICATE (key_already_retired) when it is retired already
 * (nothing produced).  Errors
 * otherwise as gov_keyrotate_rotate. */
gov_err_t gov_keyrotate_retire_now(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                                   const gov_keyrotate_signers_t *op,
                                   const gov_keyrotate_key_t *keys, size_t n, const char *kid,
                                   int64_t now_us, int64_t *retires_at, gov_reason_t *why,
                                   char *errbuf, size_t errbuf_size);

/* 1 when a scheduled rotation is due: period_s > 0, the store has a current
 * key, and the newest one was created period_s or more before now_us.  No
 * current key: 0 (the first key is an operator's act, `govctl keys rotate
 * --activate-in 0`).  Pure. */
int gov_keyrotate_due(const gov_keyrotate_key_t *keys, size_t n, long period_s, int64_t now_us);

#endif /* GOV_KEYROTATE_H */
