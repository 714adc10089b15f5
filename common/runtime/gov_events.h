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
 * The identity events (ClientRegistered, ClientRemoved, KeyRotated,
 * TokenIssued, TokenRevoked) are built from C structs by the
 * gov_events_*_new builders below, so every producer (govctl, gov-edge, the
 * tests) spells them the same way; decoding is gov_avro's, as for every
 * event.
 *
 * Thread-safety: as thread-safe as the producer (which is); the builders are
 * pure and thread-safe.
 */
#ifndef GOV_EVENTS_H
#define GOV_EVENTS_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>

#include "gov_avro.h"
#include "gov_err.h"
#include "gov_kafka.h"
#include "gov_reason.h"
#include "gov_signer.h"

#define GOV_TOPIC_AUDIT "identity.audit"
#define GOV_EVENTS_ACK_TIMEOUT_MS 10000

/* Encodes `event` (borrowed) as `type` and produces it to `topic` keyed by
 * `key`; waits for the broker's acknowledgement. */
gov_err_t gov_events_emit(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                          const char *topic, const char *type, const char *key,
                          json_t *event, char *errbuf, size_t errbuf_size);
/* gov_events_emit with Kafka headers (borrowed; nheaders may be 0). */
gov_err_t gov_events_emit_with(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                               const char *topic, const char *type, const char *key,
                               json_t *event, const gov_kafka_header_t *headers,
                               size_t nheaders, char *errbuf, size_t errbuf_size);

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
/* The AuditEvent of f alone (a new reference), for a caller that produces
 * it itself (gov-edge's asynchronous issuance); NULL when out of memory or
 * no UUIDv7 could be drawn. */
json_t *gov_events_audit_new(const gov_audit_fields_t *f);

/* --- identity events (docs/contracts.md "Identity") --------------------------
 * Each builder returns a new JSON object in gov_avro's mapping (jansson
 * reference owned by the caller), or NULL when out of memory.  Strings are
 * borrowed and copied; event_id NULL means a fresh UUIDv7 and occurred_at 0
 * the clock.  Nothing is validated here: the consumer (gov-identity) judges.
 */
#define GOV_TOPIC_IDENTITY_CLIENTS "identity.clients"
#define GOV_TOPIC_IDENTITY_KEYS "identity.keys"
#define GOV_TOPIC_IDENTITY_TOKENS "identity.tokens"

typedef struct gov_client_registered {
    const char *event_id;
    int64_t occurred_at;
    const char *client_id;
    const char *secret_hash;          /* "sha256:<64 hex>" */
    const char *const *tenants;       /* ntenants strings */
    size_t ntenants;
    const char *const *scopes;
    size_t nscopes;
    const char *registered_by;
} gov_client_registered_t;
json_t *gov_events_client_registered_new(const gov_client_registered_t *c);

/* The field rules of a ClientRegistered, shared by govctl (before it
 * produces) and gov-identity (which refuses what breaks them):
 * a scope is an RFC 6749 scope-token (1*( %x21 / %x23-5B / %x5D-7E )) of at
 * most GOV_EVENTS_SCOPE_MAX bytes; a secret_hash is "sha256:" and 64
 * lowercase hex digits; at most GOV_EVENTS_CLIENT_LIST_MAX tenants and
 * scopes.  Pure. */
#define GOV_EVENTS_SCOPE_MAX 128
#define GOV_EVENTS_CLIENT_LIST_MAX 64
int gov_events_scope_token_valid(const char *s);
int gov_events_secret_hash_valid(const char *s);

json_t *gov_events_client_removed_new(const char *event_id, int64_t occurred_at,
                                      const char *client_id, const char *removed_by);

typedef struct gov_key_rotated {
    const char *event_id;
    int64_t occurred_at;
    const char *kid, *alg, *public_jwk, *backend;
    const char *state;                /* pending | active | retiring | retired */
    int64_t created_at, activates_at;
    int64_t retires_at;               /* < 0: null */
    const char *previous_kid;         /* NULL: null */
} gov_key_rotated_t;
json_t *gov_events_key_rotated_new(const gov_key_rotated_t *k);

typedef struct gov_token_issued {
    const char *event_id;
    int64_t occurred_at;
    const char *tenant, *jti, *sub, *client_id, *scope, *aud, *kid, *constitution_hash;
    int64_t issued_at, not_before, expires_at;
    const char *session_id, *decision_id;   /* NULL: null */
} gov_token_issued_t;
json_t *gov_events_token_issued_new(const gov_token_issued_t *t);

json_t *gov_events_token_revoked_new(const char *event_id, int64_t occurred_at,
                                     const char *tenant, const char *jti, int64_t expires_at,
                                     const char *reason, const char *revoked_by);

/* --- signing identity events (docs/contracts.md "Signed identity events") ----
 * Every KeyRotated, ClientRegistered and ClientRemoved carries operator
 * signatures over its signed payload (gov_identity_sig.h); the builders
 * above leave "signatures" empty, gov_events_sign fills it. */

/* One operator signing identity events: its id in the identity trust file
 * and its key (both borrowed). */
typedef struct gov_events_signer {
    const char *signer_id;
    gov_signer_t *signer;
} gov_events_signer_t;

/* Replaces ev's "signatures" (ev borrowed, modified) by the signatures of
 * signers[0..n) over gov_identity_sig_payload(type, ev).  Sign last: any
 * later change of a content field voids them.  GOV_ERR_INVALID_ARG (no
 * signer, not a signed kind, a bad signer id), the signer's error, or
 * GOV_ERR_NOMEM; errbuf says which. */
gov_err_t gov_events_sign(json_t *ev, const char *type, const gov_events_signer_t *signers,
                          size_t n, char *errbuf, size_t errbuf_size);

/* Parses an unencrypted Ed25519 private key from the PEM text pem (len
 * bytes, borrowed: the caller cleanses its buffer), naming path in errors.
 * The one PEM private-key parser of the operator tools and the rotator: a
 * passphrase prompt is refused (never waited for).  On GOV_OK *out is a new
 * key (EVP_PKEY_free).  GOV_ERR_CONFIG with key_invalid: no PEM private
 * key, an encrypted one, or another type than Ed25519. */
gov_err_t gov_events_pem_private_key(const char *pem, size_t len, const char *path,
                                     EVP_PKEY **out, gov_reason_t *why, char *errbuf,
                                     size_t errbuf_size);

/* Loads an operator's Ed25519 private key from the PEM file path under the
 * file backend's rules (gov_keystore_read_private: a regular file of this
 * user, no access for group or others, else key_insecure).  On GOV_OK *out
 * is a new signer (gov_signer_free; backend "file").  Errors: the reader's
 * (key_insecure, keystore_unavailable), GOV_ERR_CONFIG with key_invalid
 * for anything but an unencrypted Ed25519 key. */
gov_err_t gov_events_operator_key_load(const char *path, gov_signer_t **out, gov_reason_t *why,
                                       char *errbuf, size_t errbuf_size);

#endif
