/* gov_identity_sig.h - operator signatures on identity events: what is
 * signed in a KeyRotated, a ClientRegistered and a ClientRemoved, and the
 * threshold check against the identity trust (docs/contracts.md, "Signed
 * identity events").
 *
 * The signed bytes of an event are the RFC 8785 (JCS) canonical JSON of
 *   {"type": "<KeyRotated|ClientRegistered|ClientRemoved>", <every field of
 *    the event but event_id, occurred_at and signatures>}
 * so the kind is bound (a signature over one kind never passes for
 * another), every content field is covered (a field added to a schema
 * later is covered without a change here), and the transport envelope
 * (the event id, its time) is not: the same signed content may travel in
 * a new event.  Each signature is Ed25519 over those bytes themselves.
 *
 * The signers that count are the identity trust file's (the rule-pack trust
 * format, gov_signature.h) bound to the scope GOV_IDENTITY_SIG_SCOPE: the
 * older single-binding format {"threshold", "signers"} covers it, the
 * per-tenant format must list "identity" as a tenant.  Every rule of
 * gov_signatures_check_form and gov_signatures_count applies unchanged.
 *
 * Pure: no clock, file or global; the trust, the event and the key are
 * arguments.  Thread-safety: reentrant.
 */
#ifndef GOV_IDENTITY_SIG_H
#define GOV_IDENTITY_SIG_H

#include <jansson.h>
#include <stddef.h>

#include "gov_err.h"
#include "gov_signature.h"
#include "gov_signer.h"

/* The trust scope (the "tenant" of gov_signatures_count) of identity events. */
#define GOV_IDENTITY_SIG_SCOPE "identity"
/* Largest signed payload (an event's content; a KeyRotated is ~500 bytes,
 * a ClientRegistered at most 64 tenants and 64 scopes). */
#define GOV_IDENTITY_SIG_PAYLOAD_MAX 32768
/* Largest signatures array text (32 signatures of ~200 bytes). */
#define GOV_IDENTITY_SIG_SIGS_MAX 16384

/* 1 when type is a signed identity event kind. */
int gov_identity_sig_kind(const char *type);

/* The signed payload of event (borrowed JSON object in gov_avro's mapping)
 * of kind type: on GOV_OK *out is a new NUL-terminated buffer (gov_free) of
 * *out_len bytes.  GOV_ERR_INVALID_ARG for another kind or a non-object,
 * GOV_ERR_TOO_LARGE beyond GOV_IDENTITY_SIG_PAYLOAD_MAX, else
 * gov_canon_serialize's errors; errbuf says which.  Cost: one copy and one
 * canonical serialization of the event. */
gov_err_t gov_identity_sig_payload(const char *type, const json_t *event, char **out,
                                   size_t *out_len, char *errbuf, size_t errbuf_size);

/* Appends {"signer_id", "algorithm": "ed25519", "signature": <128 hex>} to
 * sigs (borrowed JSON array), signed by s (borrowed) over payload[0..len).
 * signer_id must be gov_signer_id_valid.  GOV_ERR_INVALID_ARG, the
 * signer's error, or GOV_ERR_NOMEM. */
gov_err_t gov_identity_sig_sign(gov_signer_t *s, const char *signer_id, const char *payload,
                                size_t len, json_t *sigs, char *errbuf, size_t errbuf_size);

/* Judges sigs (borrowed JSON; anything but an array is no_signatures) over
 * payload[0..len) against t: the form rules, then the count for
 * GOV_IDENTITY_SIG_SCOPE with a minimum threshold of 1.  GOV_OK when the
 * threshold is met (out->reason GOV_REASON_NONE); GOV_ERR_VERIFY with
 * out->reason and out->detail otherwise; GOV_ERR_CRYPTO when OpenSSL
 * failed.  out is always filled.  Cost: one Ed25519 verification per
 * trusted signature (at most GOV_MAX_SIGNATURES). */
gov_err_t gov_identity_sig_check(const gov_trust_t *t, const char *payload, size_t len,
                                 const json_t *sigs, gov_sig_count_t *out);

/* Re-judges a record stored with its signed payload and signatures text
 * (what gov-identity accepted, read back from a store that is not a trust
 * root): both texts bounded (GOV_IDENTITY_SIG_PAYLOAD_MAX /
 * GOV_IDENTITY_SIG_SIGS_MAX), the signatures parsed as JSON and checked as
 * gov_identity_sig_check, then the payload parsed (gov_canon_parse), its
 * canonical form its own bytes, its "type" type and its member id_field the
 * string id.  On GOV_OK *content is the payload as a new JSON object
 * (json_decref).  Otherwise GOV_ERR_VERIFY with out->reason
 * (identity_signature_invalid for a payload that is missing, not
 * canonical or about another object; the signature reasons otherwise) and
 * out->detail; GOV_ERR_NOMEM / GOV_ERR_CRYPTO.  NULL texts are missing. */
gov_err_t gov_identity_sig_check_stored(const gov_trust_t *t, const char *type,
                                        const char *id_field, const char *id,
                                        const char *payload, size_t payload_len,
                                        const char *sigs_text, size_t sigs_len, json_t **content,
                                        gov_sig_count_t *out);

#endif /* GOV_IDENTITY_SIG_H */
