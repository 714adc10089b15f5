/* gov_signature.h - operator trust and Ed25519 signature thresholds, shared
 * by signed constitution bundles and signed rule packs.
 *
 * Pure: the trust file's text, the signatures and the signed message are
 * arguments; nothing here reads a file, a clock or a global.  One
 * implementation serves gov_constitution_verify (the message is the ASCII
 * checksum hex of the bundle) and gov_rulepack_verify_signatures (the
 * message is the ASCII lowercase SHA-256 hex of the pack's canonical JSON),
 * so a constitution signer and a pack signer are judged by the same rules
 * (docs/contracts.md, "Constitution bundles" and "Signed rule packs"):
 *   form    1..GOV_MAX_SIGNATURES signatures             no_signatures / too_many_signatures
 *           each with algorithm "ed25519"                unknown_signature_algorithm
 *           a valid signer_id, none twice                malformed_signature / duplicate_signer
 *   count   each signature hex (128) or base64 of 64 B   malformed_signature
 *           a signer trusted FOR THIS TENANT whose
 *           signature does not verify                    invalid_signature
 *           distinct trusted signers (optionally only
 *           those in a `permitted` list) number at least
 *           max(tenant threshold, the caller's minimum)  untrusted_signer / signer_not_permitted
 *                                                        / threshold_not_met
 * A signature by a signer the trust does not bind to the tenant never
 * counts; there is no default key.  gov_trust_parse refuses one key under
 * two ids, so distinct trusted ids are distinct public keys.
 *
 * Thread-safety: a gov_trust_t is immutable after parsing and may be shared;
 * every function is reentrant.
 */
#ifndef GOV_SIGNATURE_H
#define GOV_SIGNATURE_H

#include <jansson.h>
#include <stddef.h>

#include "gov_err.h"
#include "gov_reason.h"

#define GOV_MAX_SIGNATURES 32
#define GOV_SIGNER_ID_MAX 64

/* 1 when s is a signer id: 1..GOV_SIGNER_ID_MAX chars of [A-Za-z0-9_.@:-]
 * (locale-independent; no '/', so an id is also a safe file name stem). */
int gov_signer_id_valid(const char *s);

/* --- trust ----------------------------------------------------------------- */

typedef struct gov_trust gov_trust_t;

/* Most tenants one trust file binds. */
#define GOV_TRUST_TENANTS_MAX 1024

/* Parses a trust file (docs/contracts.md, "Constitution bundles"), either
 *   {"signers": {"<signer_id>": "<Ed25519 public key, PEM>", ...},
 *    "tenants": {"<tenant>": {"threshold": N, "signers": ["<signer_id>", ...],
 *                             "unbound_documents": true|false}, ...}}
 * (per tenant: the signers that count, 1 <= N <= their number; a document
 * naming no tenant only where unbound_documents is true, default false), or
 * the older single binding
 *   {"threshold": N, "signers": {...}}
 * which binds EVERY tenant to all its signers and takes no unbound document
 * (so a document must name the tenant it is verified for).  Signer ids
 * 1..64 chars, every key an Ed25519 key, no key under two ids (the error
 * names both), tenant ids as gov_tenant_valid.  Unknown members are an
 * error.  The rule-pack trust file has the same format.  On GOV_OK *out is
 * a new trust (gov_trust_free); GOV_ERR_CONFIG with errbuf otherwise. */
gov_err_t gov_trust_parse(const char *json_text, size_t len, gov_trust_t **out,
                          char *errbuf, size_t errbuf_size);
void gov_trust_free(gov_trust_t *t);
/* Number of signers (keys) in the file. */
size_t gov_trust_count(const gov_trust_t *t);
/* Number of tenants listed; 0 for the older format (which covers all). */
size_t gov_trust_tenant_count(const gov_trust_t *t);
/* 0 when the trust covers tenant, with its threshold and whether it takes
 * unbound documents (either out-pointer may be NULL); -1 when it does not. */
int gov_trust_tenant(const gov_trust_t *t, const char *tenant, int *threshold, int *unbound);

/* The id of the signer whose public key is pub (32 raw Ed25519 bytes) into
 * id (GOV_SIGNER_ID_MAX + 1 bytes): 0, or -1 when no signer has that key.
 * Lets a process holding a private key find the id it signs under.  O(n). */
int gov_trust_signer_of(const gov_trust_t *t, const unsigned char pub[32], char *id);

/* --- signatures ------------------------------------------------------------ */

/* One detached signature as it travels (all borrowed). */
typedef struct gov_bundle_sig {
    const char *signer_id;
    const char *algorithm;
    const char *signature;
} gov_bundle_sig_t;

/* Decodes a signature given as 128 hex chars, or standard/URL-safe base64
 * (padding optional) of 64 bytes.  Returns 0 or -1. */
int gov_signature_decode(const char *text, unsigned char out[64]);

/* Borrowed views of the members of a JSON array of {"signer_id",
 * "algorithm", "signature"} objects (a member that is missing or not a
 * string is NULL, and the checks below name it).  At most cap entries are
 * filled; *n is min(array size, cap), so a cap of GOV_MAX_SIGNATURES + 1 is
 * enough for too_many_signatures.  -1 when arr is not an array.  The views
 * live as long as arr. */
int gov_signatures_from_json(const json_t *arr, gov_bundle_sig_t *out, size_t cap, size_t *n);

/* The signatures as compact JSON [{"signer_id","algorithm","signature"}...]
 * in the given order: a new string (gov_free) in *out, or GOV_ERR_NOMEM. */
gov_err_t gov_signatures_to_json(const gov_bundle_sig_t *sigs, size_t n, char **out);

/* The form rules (see the header comment).  GOV_REASON_NONE when they hold,
 * else the reason with detail written.  O(n^2) over n <= 32. */
gov_reason_t gov_signatures_check_form(const gov_bundle_sig_t *sigs, size_t n, char *detail,
                                       size_t detail_size);

/* What counted. */
typedef struct gov_sig_count {
    gov_reason_t reason;                  /* GOV_REASON_NONE when the threshold is met */
    char detail[256];
    size_t nsigners;                      /* distinct trusted signers that counted */
    char signers[GOV_MAX_SIGNATURES][GOV_SIGNER_ID_MAX + 1];  /* sorted */
    int required;                         /* max(tenant threshold, min_threshold) */
} gov_sig_count_t;

/* The count rules over sigs[0..n) (already past gov_signatures_check_form)
 * for tenant: every signature by a signer the trust binds to the tenant must
 * verify over msg[0..msg_len); only those, and when permitted (a JSON array
 * of strings, borrowed; may be NULL) only those it lists, count.  A tenant
 * the trust does not cover is tenant_not_trusted.  GOV_OK whenever *out
 * holds a verdict; GOV_ERR_CRYPTO when OpenSSL failed.  Cost: one Ed25519
 * verification per trusted signature. */
gov_err_t gov_signatures_count(const gov_trust_t *t, const char *tenant,
                               const gov_bundle_sig_t *sigs, size_t n, const char *msg,
                               size_t msg_len, int min_threshold, const json_t *permitted,
                               gov_sig_count_t *out);

#endif /* GOV_SIGNATURE_H */
