/* gov_jwt.h - access tokens: EdDSA JWTs in the compact JWS serialization,
 * issued and verified without I/O (docs/contracts.md, "JWT").
 *
 * Pure: the signing key stays behind a callback (the signer backend, PEM or
 * PKCS#11), the verification keys come from a lookup callback (the edge's
 * JWKS snapshot), and the clock, the jti and the configuration are
 * arguments.  Nothing here reads a file, a socket, a clock or a global.
 *
 * Issue:   header {"alg":"EdDSA","kid":<kid>,"typ":"JWT"}, claims in RFC 8785
 *          (JCS) member order, both written byte for byte by this module, so
 *          the same claims, kid and key always give the same token.
 * Verify:  all or nothing, the algorithm pinned by the caller's
 *          configuration, every refusal a GOV_ERR_VERIFY with a stable
 *          reason code (the rules and their order: gov_jwt_verify).
 * After:   revocation (token_revoked) is a lookup the caller makes with the
 *          jti; the constitution binding is gov_jwt_check_constitution.
 *
 * Thread-safety: every function is reentrant; the callbacks are called on
 * the caller's thread, synchronously, and must be reentrant if the caller
 * verifies from several threads at once.
 */
#ifndef GOV_JWT_H
#define GOV_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "gov_buf.h"
#include "gov_err.h"
#include "gov_reason.h"

/* The one algorithm implemented (RFC 8037 EdDSA over Ed25519). */
#define GOV_JWT_ALG_EDDSA "EdDSA"

/* Bounds of the fields (bytes, not counting the NUL).  A claim longer than
 * its field is token_invalid_claim when verified and GOV_ERR_INVALID_ARG when
 * issued. */
#define GOV_JWT_KID_MAX 128
#define GOV_JWT_ISS_MAX 256
#define GOV_JWT_SUB_MAX 256
#define GOV_JWT_AUD_MAX 256
#define GOV_JWT_JTI_MAX 128
#define GOV_JWT_TENANT_MAX 64 /* GOV_TENANT_MAX */
#define GOV_JWT_SCOPE_MAX 2048
#define GOV_JWT_HASH_MAX 128 /* the longest constitution checksum (SHA3-512 hex) */
#define GOV_JWT_CLIENT_ID_MAX 128
/* Most entries of an array-valued aud that a verifier reads. */
#define GOV_JWT_AUD_ARRAY_MAX 16
/* Default and largest max_token_bytes. */
#define GOV_JWT_MAX_TOKEN_DEFAULT 8192
#define GOV_JWT_MAX_TOKEN_LIMIT 65536
/* NumericDate bounds: 0 .. 9999-12-31T23:59:59Z, so sums with a leeway or a
 * lifetime cannot overflow int64_t. */
#define GOV_JWT_TIME_MAX INT64_C(253402300799)
/* Largest leeway a verifier takes (seconds). */
#define GOV_JWT_LEEWAY_MAX 3600

/* The claims of an access token (docs/contracts.md, "JWT").  Strings are
 * NUL-terminated UTF-8 held in the struct; times are NumericDate (seconds
 * since the epoch, integers).  client_id and parent_jti are optional: ""
 * means absent (not written when issuing; absent when verified).
 * parent_jti is the jti of the token a session token was started with
 * (gov-edge /v1/sessions/start): the session ends when its parent is
 * revoked (review 11, M6). */
typedef struct gov_jwt_claims {
    char iss[GOV_JWT_ISS_MAX + 1];
    char sub[GOV_JWT_SUB_MAX + 1];
    char aud[GOV_JWT_AUD_MAX + 1]; /* issued as a string; verified: the configured audience */
    int64_t exp;
    int64_t nbf;
    int64_t iat;
    char jti[GOV_JWT_JTI_MAX + 1];
    char tenant[GOV_JWT_TENANT_MAX + 1];
    char scope[GOV_JWT_SCOPE_MAX + 1]; /* RFC 6749 §3.3 scope-tokens, single spaces; may be "" */
    char constitution_hash[GOV_JWT_HASH_MAX + 1];
    char client_id[GOV_JWT_CLIENT_ID_MAX + 1];
    char parent_jti[GOV_JWT_JTI_MAX + 1];
} gov_jwt_claims_t;

/* --- signing --------------------------------------------------------------- */

/* Signs msg[0..len) with the issuer's current Ed25519 key into sig (64
 * bytes, RFC 8032).  Returns GOV_OK, or an error with detail in errbuf; the
 * error is handed back unchanged by the caller.  ctx is the caller's. */
typedef gov_err_t (*gov_jwt_sign_fn)(void *ctx, const uint8_t *msg, size_t len,
                                     uint8_t sig[64], char *errbuf, size_t errbuf_size);

/* Appends the compact JWS BASE64URL(header).BASE64URL(payload).BASE64URL(sig)
 * to out_token (borrowed; not emptied first), signing header.payload through
 * sign.  header[0..header_len) and payload[0..payload_len) are the exact
 * bytes, used as given (this is the JWS layer; gov_jwt_sign builds both).
 * Returns GOV_OK; GOV_ERR_NOMEM / GOV_ERR_TOO_LARGE from the buffer; the
 * signer's error.  On failure out_token is left as it was.
 * Cost: O(header_len + payload_len) plus one signature. */
gov_err_t gov_jws_sign_compact(const void *header, size_t header_len, const void *payload,
                               size_t payload_len, gov_jwt_sign_fn sign, void *sign_ctx,
                               gov_buf_t *out_token, char *errbuf, size_t errbuf_size);

/* Issues a token for c (borrowed) signed by the key kid (1..GOV_JWT_KID_MAX
 * bytes of printable ASCII) through sign: appended to out_token (borrowed).
 * The claims are checked first (every required string non-empty and within
 * its bound, valid UTF-8, scope in RFC 6749 form, 0 <= iat <= nbf < exp <=
 * GOV_JWT_TIME_MAX); a claim that fails is GOV_ERR_INVALID_ARG naming it.
 * Otherwise as gov_jws_sign_compact.  Cost: O(size of the claims). */
gov_err_t gov_jwt_sign(const gov_jwt_claims_t *c, const char *kid, gov_jwt_sign_fn sign,
                       void *sign_ctx, gov_buf_t *out_token, char *errbuf, size_t errbuf_size);

/* --- verification ---------------------------------------------------------- */

/* What a key lookup answers for a kid.  "Retired" here means the key no
 * longer verifies; a key that has only stopped signing (rotated out) must
 * be answered as not retired until the last token it signed has expired
 * (docs/contracts.md, "JWT"), or those tokens fail early. */
typedef struct gov_jwt_key {
    uint8_t pub[32];        /* raw Ed25519 public key (RFC 8032) */
    /* both times 0..GOV_JWT_TIME_MAX; other values are GOV_ERR_INVALID_ARG */
    int64_t active_from;    /* the key signs tokens issued at or after this; 0: always */
    int64_t retired_at;     /* from this time on the key verifies nothing; 0: never */
    int retired;            /* non-zero: retired now, whatever the times say */
} gov_jwt_key_t;

/* Looks kid (NUL-terminated, borrowed for the call) up in the caller's key
 * set and fills *out.  Returns GOV_OK, GOV_ERR_NOT_FOUND for a kid the set
 * does not hold (token_unknown_kid), or another error, which gov_jwt_verify
 * hands back as is (the key set is unavailable: fail closed). */
typedef gov_err_t (*gov_jwt_key_lookup_fn)(void *ctx, const char *kid, gov_jwt_key_t *out);

/* The verifier's configuration: all of it comes from local configuration,
 * none of it from the token. */
typedef struct gov_jwt_verify_opts {
    const char *alg;          /* the pinned algorithm; only GOV_JWT_ALG_EDDSA is implemented */
    const char *iss;          /* the expected issuer (required) */
    const char *aud;          /* the expected audience (required) */
    int64_t leeway_s;         /* clock skew allowed on exp, nbf, iat: 0..GOV_JWT_LEEWAY_MAX */
    size_t max_token_bytes;   /* 0: GOV_JWT_MAX_TOKEN_DEFAULT; at most GOV_JWT_MAX_TOKEN_LIMIT */
    int64_t max_lifetime_s;   /* largest exp - iat accepted; 0: no bound */
    gov_jwt_key_lookup_fn lookup;
    void *lookup_ctx;
} gov_jwt_verify_opts_t;

/* Verifies token[0..len) (no NUL needed) against o (borrowed) at now_s
 * (seconds since the epoch).  The rules, in this order; the first that fails
 * is the reason (*why; may be NULL) with detail in errbuf:
 *   1  len <= max_token_bytes                                 token_too_large
 *   2  not a JWS JSON serialization (first byte '{')          token_unsupported_serialization
 *   3  exactly three parts, the header part non-empty, each
 *      part base64url: alphabet, length                        token_malformed
 *      no '=' padding, unused bits zero                       token_noncanonical
 *   4  the header is a JSON object without duplicates         token_malformed / token_duplicate_claim
 *   5  no "crit"                                               token_crit_header
 *   6  "alg" is the pinned one ("none", HS*, ... never are)    token_alg_not_allowed
 *   7  no "cty" (a nested JWT)                                 token_unsupported_serialization
 *   8  only alg, kid, typ; typ, when present, is "JWT"         token_header_invalid
 *   9  payload and signature parts non-empty, a 64-byte sig   token_malformed
 *  10  "kid" a non-empty string the lookup knows              token_unknown_kid
 *  11  the key is not retired at now                          token_key_retired
 *  12  the Ed25519 signature verifies over header.payload     token_bad_signature
 *  13  the payload is not itself a compact JWS                token_unsupported_serialization
 *  14  the payload is a JSON object without duplicates        token_malformed / token_duplicate_claim
 *  15  every claim present with its type and bounds           token_invalid_claim
 *  16  iss equal to o->iss                                     token_wrong_issuer
 *  17  aud equal to o->aud, or an array (1..16 strings)
 *      containing it                                           token_wrong_audience
 *  18  now < exp + leeway                                      token_expired
 *  19  now >= nbf - leeway and now >= iat - leeway             token_not_yet_valid
 *  20  iat >= key.active_from - leeway                         token_key_not_active
 *  21  exp - iat <= max_lifetime (when set)                    token_lifetime_too_long
 * Claims the module does not know are ignored (RFC 7519 §4).  The payload is
 * parsed only after its signature verified.
 *
 * Returns GOV_OK with *out (may be NULL) filled and *why GOV_REASON_NONE;
 * GOV_ERR_VERIFY for a refusal; GOV_ERR_INVALID_ARG for unusable options
 * (detail names the option); GOV_ERR_NOMEM; GOV_ERR_CRYPTO when OpenSSL
 * failed; the lookup's own error.  On any failure *out is zeroed.
 * Cost: O(len) plus one Ed25519 verification; no more than two allocations
 * of at most len bytes besides the parsed JSON. */
gov_err_t gov_jwt_verify(const char *token, size_t len, const gov_jwt_verify_opts_t *o,
                         int64_t now_s, gov_jwt_claims_t *out, gov_reason_t *why,
                         char *errbuf, size_t errbuf_size);

/* The JWS layer alone (RFC 7515 + RFC 8037), for known-answer tests and
 * tools: token[0..len) must be three base64url parts (rule 3 above), its
 * header a JSON object whose alg is "EdDSA" with no crit (rules 4-6), and
 * its signature valid under pub.  Claims are not looked at.  On GOV_OK the
 * decoded payload is appended to payload_out (borrowed; may be NULL).
 * Returns and reasons as gov_jwt_verify.  Cost: O(len) plus one verification. */
gov_err_t gov_jws_verify_compact(const char *token, size_t len, const uint8_t pub[32],
                                 gov_buf_t *payload_out, gov_reason_t *why, char *errbuf,
                                 size_t errbuf_size);

/* --- after verification ---------------------------------------------------- */

/* A previous constitution hash a tenant still accepts, until a cut-off. */
typedef struct gov_jwt_grace {
    const char *hash;   /* borrowed */
    int64_t until_s;    /* accepted while now < until_s */
} gov_jwt_grace_t;

/* Whether c's constitution_hash binds it to the tenant's constitution at now:
 * equal to current_hash (borrowed; NULL when the tenant has no verified
 * constitution, which accepts nothing, grace entries included), or equal to
 * a grace[i].hash with now < grace[i].until_s.  GOV_OK (*why none) or GOV_ERR_VERIFY with
 * token_constitution_stale and the detail; GOV_ERR_INVALID_ARG for NULL c or
 * grace with n > 0.  O(n) string comparisons. */
gov_err_t gov_jwt_check_constitution(const gov_jwt_claims_t *c, const char *current_hash,
                                     const gov_jwt_grace_t *grace, size_t n, int64_t now_s,
                                     gov_reason_t *why, char *errbuf, size_t errbuf_size);

#endif /* GOV_JWT_H */
