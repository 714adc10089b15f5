/* edge_identity.h - the identity snapshot of gov-edge (identity.c): signing
 * keys with their signers, the JWKS, and the constitution grace list.
 *
 * Thread-safety: edge_identity_* are thread-safe; a snapshot is immutable
 * and may be read (and its signers used) by any number of threads while
 * a reference is held.
 */
#ifndef EDGE_IDENTITY_H
#define EDGE_IDENTITY_H

#include <stdatomic.h>
#include <stdint.h>

#include "edge.h"
#include "gov_jwt.h"
#include "gov_signer.h"
#include "gov_state_identity.h"

typedef struct edge_idkey {
    char kid[GOV_SIGNER_KID_SIZE];
    uint8_t pub[GOV_SIGNER_PUB_LEN];
    int rank;                   /* gov_state_identity_key_rank of its state */
    int64_t activates_at;       /* µs */
    int64_t retires_at;         /* µs; < 0: none */
    gov_signer_t *signer;       /* NULL: the keystore does not hold it (or it retires) */
} edge_idkey_t;

typedef struct edge_idsnap {
    atomic_int refs;
    size_t n;
    edge_idkey_t *keys;
    char *jwks;                 /* NULL: none materialized */
    size_t jwks_len;
    char *fingerprint;          /* what the refresh compares */
    size_t missing_signers;     /* keys the keystore did not hold: retried each refresh */
} edge_idsnap_t;

typedef struct edge_grace {
    char tenant[GOV_TENANT_MAX + 1];
    char hash[GOV_JWT_HASH_MAX + 1];
    int64_t until_s;
} edge_grace_t;

/* The current snapshot with a reference (edge_idsnap_release), or NULL
 * before the first successful read. */
edge_idsnap_t *edge_identity_acquire(edge_t *e);
void edge_idsnap_release(edge_idsnap_t *s);

/* Borrowed key of a held snapshot, or NULL.  O(keys). */
const edge_idkey_t *edge_identity_find(const edge_idsnap_t *s, const char *kid);

/* The key to sign with at now_us (borrowed), or NULL: the newest (by
 * activates_at, then kid) whose activates_at <= now, not past retires_at,
 * state pending or active, that the keystore holds.  O(keys). */
const edge_idkey_t *edge_identity_signing_key(const edge_idsnap_t *s, int64_t now_us);

/* A gov_jwt_key_lookup_fn over a held snapshot (ctx: the edge_idsnap_t). */
gov_err_t edge_identity_lookup(void *ctx, const char *kid, gov_jwt_key_t *out);

/* The grace entry of tenant (at most one: the hash its served constitution
 * replaced, until the replacement's replaced_at + token_constitution_grace_s,
 * rounded up) copied into out; returns how many (0 or 1).  Reads the served
 * snapshot: the same on every replica.  Any thread. */
size_t edge_identity_grace(edge_t *e, const char *tenant, edge_grace_t *out, size_t max);

/* Reads client_id's record through r (the caller's connection) and
 * re-verifies it against the edge's identity trust: a record whose signed
 * payload lacks a threshold of trusted signatures, or names another client,
 * reads as not found (out->found 0; counted in
 * identity_records_refused_total, logged).  On a verified record,
 * secret_hash, tenants (comma-joined) and scopes (space-joined) come from
 * the signed payload, not from the record's own fields.  Errors: the Redis
 * read's, GOV_ERR_NOMEM.  out is cleared by the caller
 * (gov_state_identity_client_clear) in every case.  Cost: one script and
 * one Ed25519 verification per trusted signature. */
gov_err_t edge_identity_client_get(edge_t *e, gov_redis_t *r, const char *client_id,
                                   gov_state_identity_client_rec_t *out, char *eb, size_t ebs);

/* Verifies token against the identity snapshot, then (full) revocation (a
 * Redis read on this thread's connection: lookup threads only) and the
 * constitution binding (current hash or the grace window).  GOV_OK;
 * GOV_ERR_VERIFY with *why; or GOV_ERR_UNAVAILABLE when the keys or the
 * token store cannot be read (detail in eb).  c is filled on GOV_OK (and,
 * for revoke's ownership check, on the signature-only pass, full = 0)
 * (tokens_api.c). */
gov_err_t edge_token_check(edge_t *e, const char *token, int full, gov_jwt_claims_t *c,
                           gov_reason_t *why, char *eb, size_t ebs);

/* The answer of a minted token (edge_token_mint): err GOV_OK with the
 * token (borrowed: copy it into resp, it is wiped after the call), or the
 * failure (token NULL: answer a 503 without it).  c holds the claims.
 * Runs once, on the Kafka delivery-report thread or the minting thread;
 * must not block. */
typedef void (*edge_mint_answer_fn)(void *arg, gov_err_t err, const char *token,
                                    size_t token_len, const gov_jwt_claims_t *c,
                                    edge_response_t *resp);

/* Signs c (copied) with key (borrowed: its snapshot held by the caller
 * until this returns), queues its TokenIssued (identity.tokens) and an
 * AuditEvent (identity.audit; action, component gov-edge, subject the jti,
 * correlation_id (borrowed, may be NULL))
 * as one gov_kafka group, and defers resp (edge_defer): when both are
 * acknowledged answer(arg, GOV_OK, token) fills it; when either fails or
 * times out answer(arg, err, NULL) does, and the token, which never left
 * this function's buffer, is wiped.  arg is freed with arg_free (may be
 * NULL) after the answer, or before returning -1.  0: deferred (the caller
 * must not touch resp again); -1: resp holds the error now (signing failed,
 * deferred_capacity, shutting_down, kafka_unavailable while the
 * acknowledgement breaker is open; oauth picks the OAuth or the house
 * shape) and answer
 * is never called.  Cost: one signature and two encodings on the caller's
 * thread; the acknowledgements are waited for by nobody (tokens_api.c). */
int edge_token_mint(edge_t *e, const gov_jwt_claims_t *c, const edge_idkey_t *key,
                    const char *action, const char *correlation_id, int oauth,
                    edge_response_t *resp,
                    edge_mint_answer_fn answer, void *arg, void (*arg_free)(void *));

#endif
