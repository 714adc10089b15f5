/* gov_constitution.h - verification of signed constitution bundles.
 *
 * Pure: every input is an argument (the bundle's fields, the trust
 * configuration, the tenant's current state); nothing here reads a file,
 * a socket, a clock or a global.  gov-constitution, govctl verify and the
 * tests all call the same function, so an offline `govctl verify` answers
 * exactly what the processor would.
 *
 * The rules (docs/contracts.md), applied in this order, all or nothing;
 * the first that fails gives the reason code:
 *   1. canonicalization is "jcs" or "somabrain-json"     unknown_canonicalization
 *      hash_alg is "sha3-512" or "sha256"                unknown_hash_algorithm
 *      checksum is lowercase hex of the right length     malformed_checksum
 *   2. the document parses (bounded, no duplicate keys)  malformed_document
 *      and is an object                                  malformed_document
 *   2b. the trust configuration covers the tenant        tenant_not_trusted
 *      document.tenant, when present, is this tenant     tenant_mismatch
 *      a document naming no tenant only where the
 *      tenant's binding takes unbound documents          unbound_document
 *   3. hash(canonical(document)) == checksum             checksum_mismatch
 *   4. 1..GOV_MAX_SIGNATURES signatures                  no_signatures / too_many_signatures
 *      each with algorithm "ed25519"                     unknown_signature_algorithm
 *      no signer_id twice                                duplicate_signer
 *      each signature hex (128) or base64 of 64 bytes    malformed_signature
 *      a trusted signer's signature verifies over the
 *      ASCII checksum hex                                invalid_signature
 *   5. governance.signature_threshold / valid_signers,
 *      when present, are well-formed                     invalid_governance
 *      distinct signers trusted FOR THIS TENANT (and,
 *      when the document lists valid_signers, only those
 *      in it) number at least max(tenant threshold,
 *      document threshold)                               untrusted_signer (some signer was not
 *                                                        trusted), signer_not_permitted (some was
 *                                                        outside valid_signers), else
 *                                                        threshold_not_met
 *   6. document.version is semver or a non-negative
 *      integer (number or digit string)                  invalid_version
 *   7. against the tenant's current constitution:
 *      a higher version is accepted; the same version with the same checksum,
 *      or an older version whose checksum is in the history, is a DUPLICATE
 *      (a replay: no change, no rejection); the same version with another
 *      checksum is                                       equivocation
 *      an older version never accepted is               version_rollback
 *   8. continuity, for a successor of an in-force document (state->document_json):
 *      only signers in ITS governance.valid_signers (when
 *      it lists them) count, and they number at least
 *      max(above, its signature_threshold)               signer_not_permitted / threshold_not_met
 *      (an in-force document that cannot be read        internal_error)
 *   9. the rules section is one gov_policy can apply
 *      (gov_policy_constitution_from_json: no unknown
 *      member, no wrong type)                            invalid_rules
 * Signers are counted by key: gov_trust_parse refuses two ids with one key,
 * so distinct trusted ids are distinct public keys.
 * A signature by an unknown signer never counts; there is no default key.
 *
 * Thread-safety: a gov_trust_t is immutable after parsing and may be shared;
 * verification is reentrant.
 */
#ifndef GOV_CONSTITUTION_H
#define GOV_CONSTITUTION_H

#include <jansson.h>
#include <stddef.h>

#include "gov_err.h"
#include "gov_hash.h"
#include "gov_reason.h"
#include "gov_signature.h"
#include "gov_version.h"

/* The longest checksum hex, without the NUL (SHA3-512's 128). */
#define GOV_CHECKSUM_HEX_MAX (GOV_HASH_HEX_MAX - 1)

/* The trust file (gov_trust_*), gov_bundle_sig_t and the signature rules
 * (rules 4 and 5) are gov_signature.h's, shared with signed rule packs. */

/* --- verification ---------------------------------------------------------- */

typedef struct gov_bundle_in {
    const char *tenant;
    const char *document_json;   /* the document's JSON text as received */
    size_t document_len;
    const char *canonicalization;
    const char *hash_alg;
    const char *checksum;
    const gov_bundle_sig_t *sigs;
    size_t nsigs;
} gov_bundle_in_t;

/* The tenant's current verified constitution; version NULL when none. */
typedef struct gov_constitution_state {
    const char *version;
    const char *checksum;
    const char *const *history;   /* checksums accepted before, any order */
    size_t nhistory;
    /* The in-force document's text (rule 8); NULL when not known, and then
     * only the incoming document's governance applies. */
    const char *document_json;
    size_t document_len;
} gov_constitution_state_t;

typedef enum gov_verify_outcome {
    GOV_VERIFY_ACCEPT = 0,
    GOV_VERIFY_DUPLICATE = 1,   /* already accepted: a replay, change nothing */
    GOV_VERIFY_REJECT = 2,
} gov_verify_outcome_t;

typedef struct gov_verdict {
    gov_verify_outcome_t outcome;
    gov_reason_t reason;                  /* GOV_REASON_NONE unless REJECT */
    char detail[256];                     /* human-readable, names the culprit */
    char version[GOV_VERSION_MAX];        /* document.version as text, when read */
    size_t nsigners;                      /* distinct trusted signers that counted */
    char signers[GOV_MAX_SIGNATURES][GOV_SIGNER_ID_MAX + 1];  /* sorted */
    int required;                         /* the threshold that applied */
    json_t *document;                     /* parsed document (owned), on ACCEPT */
    char *canonical;                      /* canonical bytes (owned), on ACCEPT */
    size_t canonical_len;
} gov_verdict_t;

/* Applies every rule above.  trust and state are borrowed; state may be NULL
 * (no current constitution).  Fills *v (call gov_verdict_clear after).  The
 * return value is GOV_OK whenever a verdict was reached (accept, duplicate
 * or reject); GOV_ERR_NOMEM / GOV_ERR_CRYPTO only when it could not be. */
gov_err_t gov_constitution_verify(const gov_bundle_in_t *b, const gov_trust_t *trust,
                                  const gov_constitution_state_t *state, gov_verdict_t *v);
void gov_verdict_clear(gov_verdict_t *v);

#endif /* GOV_CONSTITUTION_H */
