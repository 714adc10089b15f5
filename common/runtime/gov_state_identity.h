/* gov_state_identity.h - the Redis layout of identity: signing keys and the
 * JWKS, OAuth clients, issued and revoked tokens (docs/contracts.md "Redis
 * keys", identity rows).
 *
 *   identity:{keys}:key:<kid>     hash: alg, public_jwk, backend, state,
 *                                 created_at, activates_at, retires_at (""
 *                                 none), previous_kid ("" none), event_id,
 *                                 signed, signatures (the signed payload of
 *                                 the KeyRotated that wrote it and its
 *                                 signatures: a reader re-verifies them)
 *   identity:{keys}:key:<kid>:retired
 *                                 string: the retired kid's retires_at - its
 *                                 permanent tombstone (retired is final)
 *   identity:{keys}:kids          set: the live kids (retired ones leave it)
 *   identity:{keys}:jwks          string: {"keys":[...]} of every key not
 *                                 retired, by activates_at then kid
 *   identity:client:{<client_id>} hash: secret_hash, tenants (comma-
 *                                 separated), scopes (space-separated),
 *                                 registered_at, registered_by, event_id,
 *                                 signed, signatures (as a key's)
 *   identity:client:{<client_id>}:removed
 *                                 hash: removed_at, removed_by, event_id -
 *                                 the tombstone that makes removal final
 *   identity:token:{T}:<jti>      hash: status (active | revoked), sub,
 *                                 client_id, scope, aud, kid,
 *                                 constitution_hash, iat, nbf, exp (µs),
 *                                 revoked_at, revoke_reason; PEXPIREAT exp
 *
 * Each writer is one Lua script over one hash slot ({keys}, {<client_id>}
 * or {T}) that writes the state and the slot's applied offset
 * gov:applied:{<slot>}:<group>:<topic>:<partition> together.  The key and
 * client scripts treat a message at or below the applied offset as a
 * replay (nothing changes), so replaying a partition from any offset leaves
 * Redis as it was.  The token script is idempotent by construction (it sets
 * fields, never counts).  The JWKS is rebuilt in the key script from the
 * stored key hashes (found through identity:{keys}:kids, in the same slot).
 *
 * What it does not do: decide.  Whether a JWK is an Ed25519 key whose kid is
 * its thumbprint, whether a client's tenants and scopes are well formed, is
 * gov-identity's business; this stores what it accepted and reports what
 * the stored state says about a transition (a state moved back).
 *
 * Thread-safety: functions use the caller's gov_redis_t (one per thread).
 */
#ifndef GOV_STATE_IDENTITY_H
#define GOV_STATE_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_redis.h"
#include "gov_state.h"

/* The hash tag of the key store's slot; also what pos->tenant is for its
 * applied offset. */
#define GOV_STATE_IDENTITY_KEYS_SLOT "keys"
/* An RFC 7638 SHA-256 thumbprint: 43 base64url characters. */
#define GOV_STATE_IDENTITY_KID_LEN 43

/* 1 when kid is 43 base64url characters (what a thumbprint is). */
int gov_state_identity_kid_valid(const char *kid);

/* What a write found. */
typedef enum gov_state_identity_outcome {
    GOV_STATE_IDENTITY_WRITTEN = 0,   /* the state changed */
    GOV_STATE_IDENTITY_REPLAY,        /* at or below the applied offset, or the
                                         same content: nothing changed */
    GOV_STATE_IDENTITY_APPLIED,       /* this very event (its event_id) is what the
                                         state holds: a redelivery of a message
                                         applied before; nothing changed */
    GOV_STATE_IDENTITY_BACKWARDS,     /* key: state/activates_at/retires_at earlier */
    GOV_STATE_IDENTITY_CHANGED,       /* key: a fixed field differs; client: the
                                         client_id is registered with other content */
    GOV_STATE_IDENTITY_REMOVED,       /* client: the client_id was removed (final) */
    GOV_STATE_IDENTITY_RETIRED,       /* key: the kid was retired (its tombstone is
                                         permanent) and the event is not 'retired' */
    GOV_STATE_IDENTITY_STALE,         /* key: an unknown kid, pending or active, whose
                                         activates_at is older than event time - the
                                         longest token lifetime */
    GOV_STATE_IDENTITY_FENCED,        /* key: produced under a rotator lease epoch older
                                         than the lease's current one */
} gov_state_identity_outcome_t;

/* --- keys ------------------------------------------------------------------- */

/* A key as materialized (all borrowed). */
typedef struct gov_state_identity_key {
    const char *event_id;   /* the KeyRotated's, stored: recognises a redelivery */
    const char *kid, *alg, *public_jwk, *backend, *state, *previous_kid;  /* previous_kid "" none */
    int64_t created_at, activates_at, retires_at;   /* µs; retires_at < 0: none */
    const char *signed_payload;   /* gov_identity_sig_payload of the event (NULL: "") */
    const char *signatures;       /* its signatures array, JSON text (NULL: "") */
    int64_t token_lifetime_us;    /* the longest token lifetime + leeway (µs): how long a
                                     retired kid stays in the index past its retires_at,
                                     and how old an unknown kid's activates_at may be */
    int64_t event_time_us;        /* when the event arrived (µs; the Kafka timestamp):
                                     what an unknown kid's freshness is judged at; 0 none */
    int event_time_untrusted;     /* 1: the event's time cannot be trusted (the producer
                                     chose it, or it is 0): an unknown pending or active
                                     kid is STALE whatever event_time_us says */
    int64_t retired_keep_ms;      /* how long a swept retired kid's hash is kept (ms;
                                     <= 0: GOV_STATE_IDENTITY_RETIRED_KEEP_S) */
    int64_t lease_epoch;          /* the producer's rotator lease epoch (> 0), checked
                                     against identity:{keys}:rotator:epoch; 0 none */
    int lease_epoch_required;     /* 1: an event without an epoch (lease_epoch 0) is
                                     FENCED once the lease's epoch is > 0 (a live
                                     event; a rebuild's replay is not fenced) */
} gov_state_identity_key_t;

/* Rank of a key state: pending 0, active 1, retiring 2, retired 3; -1 for
 * anything else. */
int gov_state_identity_key_rank(const char *state);

/* Writes a KeyRotated: the key hash, the kid index, the JWKS rebuilt from
 * every key in the index, and pos's applied offset (pos->tenant is ignored:
 * the {keys} slot's), in one script.  The index holds live keys only: a
 * retired kid is noted in identity:{keys}:retired (a sorted set scored by
 * retires_at - activates_at when none - + k->token_lifetime_us, in ms) and every write
 * removes up to GOV_STATE_IDENTITY_SWEEP_BATCH kids past their time from
 * the index, their hashes then expiring after k->retired_keep_ms
 * (GOV_STATE_IDENTITY_RETIRED_KEEP_S by default).  A retired kid also gets a
 * permanent tombstone identity:{keys}:key:<kid>:retired (its retires_at),
 * checked first: any later event for it other than 'retired' is RETIRED -
 * retired is final, whether or not the hash is still there.  An unknown
 * kid (no hash, no tombstone) in state pending or active whose
 * activates_at + k->token_lifetime_us is before k->event_time_us is STALE
 * (a forgotten key replayed); so is every such kid when
 * k->event_time_untrusted (its age cannot be judged).  An event whose
 * k->lease_epoch is below the
 * lease's epoch is FENCED (its producer lost the rotator lease since), and
 * so is one without an epoch when k->lease_epoch_required and the lease has
 * an epoch (a producer outside the lease).
 * *outcome: WRITTEN, APPLIED, REPLAY,
 * BACKWARDS, CHANGED, RETIRED, STALE or FENCED (errbuf names the field; nothing is written, not
 * even the applied offset: a redelivery is refused again); *previous_state
 * the stored state before ("" none; may be NULL, else
 * GOV_STATE_IDENTITY_STATE_MAX bytes).  GOV_ERR_INVALID_ARG for a kid
 * that is not a thumbprint or an unknown state.  Cost: one script, O(keys)
 * for the JWKS. */
#define GOV_STATE_IDENTITY_STATE_MAX 16
gov_err_t gov_state_identity_key_write(gov_redis_t *r, const gov_state_identity_key_t *k,
                                       const gov_state_pos_t *pos,
                                       gov_state_identity_outcome_t *outcome,
                                       char *previous_state, char *errbuf, size_t errbuf_size);

/* A stored key (owned strings; gov_state_identity_key_clear).  found 0:
 * none (the strings are NULL). */
typedef struct gov_state_identity_key_rec {
    int found;
    char *alg, *public_jwk, *backend, *state, *previous_kid;
    int64_t created_at, activates_at, retires_at;   /* retires_at -1: none */
    char *signed_payload, *signatures;              /* NULL: absent (unverifiable) */
} gov_state_identity_key_rec_t;

/* Reads identity:{keys}:key:<kid>, every field bounded by
 * GOV_STATE_FIELD_MAX (a larger one reads as absent).  One script. */
gov_err_t gov_state_identity_key_get(gov_redis_t *r, const char *kid,
                                     gov_state_identity_key_rec_t *out, char *errbuf,
                                     size_t errbuf_size);
void gov_state_identity_key_clear(gov_state_identity_key_rec_t *k);

/* The materialized kids, the whole index identity:{keys}:kids (never a
 * sample): *kids is a new array of *n new strings,
 * gov_state_identity_kids_free.  GOV_ERR_TOO_LARGE (errbuf gives the size)
 * when the index holds more than GOV_STATE_IDENTITY_KIDS_MAX kids - only a
 * Redis writer or a broken sweep gets there; callers fail loudly and keep
 * what they had.  One script. */
#define GOV_STATE_IDENTITY_KIDS_MAX 1024
#define GOV_STATE_IDENTITY_SWEEP_BATCH 64
#define GOV_STATE_IDENTITY_RETIRED_KEEP_S (30LL * 86400)
gov_err_t gov_state_identity_key_list(gov_redis_t *r, char ***kids, size_t *n, char *errbuf,
                                      size_t errbuf_size);
void gov_state_identity_kids_free(char **kids, size_t n);

/* The JWKS document: *json new (gov_free), NUL-terminated, *len bytes; NULL
 * when there is none.  GOV_ERR_TOO_LARGE beyond GOV_STATE_FIELD_MAX (not
 * read).  One GETRANGE. */
gov_err_t gov_state_identity_jwks_get(gov_redis_t *r, char **json, size_t *len, char *errbuf,
                                      size_t errbuf_size);

/* --- clients ---------------------------------------------------------------- */

typedef struct gov_state_identity_client {
    const char *client_id, *secret_hash;
    const char *tenants;        /* comma-separated */
    const char *scopes;         /* space-separated */
    const char *registered_by, *event_id;
    int64_t registered_at;      /* µs: the event's Kafka timestamp */
    const char *signed_payload; /* gov_identity_sig_payload of the event (NULL: "") */
    const char *signatures;     /* its signatures array, JSON text (NULL: "") */
} gov_state_identity_client_t;

/* Registers a client (ClientRegistered) with pos's applied offset (in the
 * client's slot), in one script.  *outcome: WRITTEN, APPLIED (this event,
 * redelivered), REPLAY (same content already stored, or at or below the
 * applied offset), CHANGED (registered with other content) or REMOVED
 * (tombstoned); neither of the last two writes anything.  Cost: one script. */
gov_err_t gov_state_identity_client_add(gov_redis_t *r, const gov_state_identity_client_t *c,
                                        const gov_state_pos_t *pos,
                                        gov_state_identity_outcome_t *outcome, char *errbuf,
                                        size_t errbuf_size);

/* Removes a client (ClientRemoved): deletes its hash and writes the
 * tombstone and pos's applied offset, in one script.  *existed: 1 when the
 * hash was there.  *outcome: WRITTEN, APPLIED (this event, redelivered)
 * or REPLAY. */
gov_err_t gov_state_identity_client_remove(gov_redis_t *r, const char *client_id,
                                           const char *removed_by, const char *event_id,
                                           int64_t removed_at, const gov_state_pos_t *pos,
                                           gov_state_identity_outcome_t *outcome, int *existed,
                                           char *errbuf, size_t errbuf_size);

/* A stored client (owned strings; gov_state_identity_client_clear). */
typedef struct gov_state_identity_client_rec {
    int found;
    char *secret_hash, *tenants, *scopes, *registered_by;
    int64_t registered_at;
    char *signed_payload, *signatures;   /* NULL: absent (unverifiable) */
} gov_state_identity_client_rec_t;

/* Reads identity:client:{<client_id>}, fields bounded as key_get. */
gov_err_t gov_state_identity_client_get(gov_redis_t *r, const char *client_id,
                                        gov_state_identity_client_rec_t *out, char *errbuf,
                                        size_t errbuf_size);
void gov_state_identity_client_clear(gov_state_identity_client_rec_t *c);

/* --- tokens ----------------------------------------------------------------- */

typedef struct gov_state_identity_token {
    const char *tenant, *jti, *sub, *client_id, *scope, *aud, *kid, *constitution_hash;
    int64_t issued_at, not_before, expires_at;   /* µs */
} gov_state_identity_token_t;

/* Materializes a TokenIssued: the token hash (status active unless a
 * revocation is already recorded) with PEXPIREAT at expires_at, and pos's
 * applied offset (in the tenant's slot), in one script.  *applied_before:
 * the applied offset Redis held before (-1 none), for
 * gov_processor_applied.  An expires_at in the past leaves no key. */
gov_err_t gov_state_identity_token_issue(gov_redis_t *r, const gov_state_identity_token_t *t,
                                         const gov_state_pos_t *pos, int64_t *applied_before,
                                         char *errbuf, size_t errbuf_size);

/* Materializes a TokenRevoked: status revoked (the key is created when the
 * issue is not known yet), revoked_at, revoke_reason, PEXPIREAT at
 * expires_at, and pos's applied offset, in one script. */
gov_err_t gov_state_identity_token_revoke(gov_redis_t *r, const char *tenant, const char *jti,
                                          int64_t expires_at, int64_t revoked_at,
                                          const char *reason, const gov_state_pos_t *pos,
                                          int64_t *applied_before, char *errbuf,
                                          size_t errbuf_size);

typedef enum gov_state_token_status {
    GOV_STATE_TOKEN_UNKNOWN = 0,   /* no record (never materialized, or expired) */
    GOV_STATE_TOKEN_ACTIVE,
    GOV_STATE_TOKEN_REVOKED,
} gov_state_token_status_t;

/* The status of identity:token:{T}:<jti> and its exp (µs; 0 unknown).
 * One script, fields bounded. */
gov_err_t gov_state_identity_token_status(gov_redis_t *r, const char *tenant, const char *jti,
                                          gov_state_token_status_t *status, int64_t *exp,
                                          char *errbuf, size_t errbuf_size);

/* The key names, for tests and operators (GOV_OK, or the key builders'
 * errors). */
gov_err_t gov_state_identity_key_key(const char *kid, char out[GOV_STATE_KEY_MAX]);
gov_err_t gov_state_identity_client_key(const char *client_id, char out[GOV_STATE_KEY_MAX]);
gov_err_t gov_state_identity_token_key(const char *tenant, const char *jti,
                                       char out[GOV_STATE_KEY_MAX]);
const char *gov_state_identity_jwks_key(void);
const char *gov_state_identity_kids_key(void);
/* identity:{keys}:retired: retired kids scored by when they leave the
 * index (ms).  Static string. */
const char *gov_state_identity_retired_key(void);
/* identity:{keys}:key:<kid>:retired, the permanent tombstone of a retired
 * kid (GOV_ERR_INVALID_ARG for a kid that is not a thumbprint). */
gov_err_t gov_state_identity_key_tombstone_key(const char *kid, char out[GOV_STATE_KEY_MAX]);

/* --- the rotator lease ----------------------------------------------------------
 *
 *   identity:{keys}:rotator       string: the owner id of the one gov-identity
 *                                 (or govctl) that performs time-driven key
 *                                 transitions and rotation; PX lease_ms
 *   identity:{keys}:rotator:epoch string: the lease's epoch, incremented by
 *                                 every take (never by a renewal)
 *
 * Takes or renews the lease for owner (borrowed, 1..200 bytes): *held 1 when
 * owner holds it after the call (it was free, expired or already owner's),
 * 0 when another owner does; *epoch (may be NULL) the lease's epoch after
 * the call.  A holder whose epoch changed between two calls lost the lease
 * meanwhile (another took it): what it was about to do is no longer its
 * business.  One script. */
gov_err_t gov_state_identity_rotator_lease(gov_redis_t *r, const char *owner, long lease_ms,
                                           int *held, int64_t *epoch, char *errbuf,
                                           size_t errbuf_size);
/* Takes the lease over from any holder (an operator's `govctl keys
 * rotate`): owner holds it for lease_ms, *epoch the new epoch - the holder
 * it replaced sees another owner (or another epoch) at its next call and
 * stands by.  One script. */
gov_err_t gov_state_identity_rotator_take(gov_redis_t *r, const char *owner, long lease_ms,
                                          int64_t *epoch, char *errbuf, size_t errbuf_size);
const char *gov_state_identity_rotator_key(void);
const char *gov_state_identity_rotator_epoch_key(void);

#endif /* GOV_STATE_IDENTITY_H */
