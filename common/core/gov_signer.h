/* gov_signer.h - one Ed25519 signing key behind a small function table.
 *
 * A gov_signer_t is what every issuer of a signature (the JWT code, the
 * edge's token issuance, `govctl keys rotate`) holds: the key id, the
 * 32-byte public key, the backend's name, and a sign function.  Where the
 * private key lives is the backend's business - a PKCS#11 token
 * (common/runtime/gov_signer_pkcs11.c), a PEM file in a key directory
 * (gov_signer_pem.c), or process memory (gov_signer_from_ed25519_raw, the
 * software backend the PEM backend and the known-answer tests use).  The
 * private key is never reachable through this interface.
 *
 *   kid   RFC 7638 JWK thumbprint of the public key: base64url (no padding)
 *         of SHA-256 over {"crv":"Ed25519","kty":"OKP","x":"<b64url(pub)>"}.
 *         43 characters.  Computed here from the public key, never taken
 *         from a backend, so one key has one kid wherever it is stored.
 *   JWK   gov_signer_public_jwk: the public key as the JWKS serves it,
 *         canonical JSON (keys sorted, RFC 8785 shape).
 *
 * Pure: no file, socket, clock or dynamic loading here; a backend brings
 * its own I/O and hands in a sign function (gov_signer_wrap).
 *
 * Thread-safety: the accessors are thread-safe.  gov_signer_sign is
 * thread-safe when the backend's sign is (all three backends here are).
 * gov_signer_free must not race with any other call on the same signer.
 */
#ifndef GOV_SIGNER_H
#define GOV_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "gov_buf.h"
#include "gov_err.h"

#define GOV_SIGNER_PUB_LEN 32
#define GOV_SIGNER_SIG_LEN 64
#define GOV_SIGNER_SEED_LEN 32
/* base64url of a SHA-256 digest without padding, plus the NUL. */
#define GOV_SIGNER_KID_LEN 43
#define GOV_SIGNER_KID_SIZE (GOV_SIGNER_KID_LEN + 1)

typedef struct gov_signer gov_signer_t;

/* A backend.  sign writes the 64-byte Ed25519 signature of msg[0..len) into
 * sig, or returns an error with errbuf filled (never with key material in
 * it).  free releases ctx (NULL ctx never reaches it).  Both are called with
 * the ctx given to gov_signer_wrap. */
typedef struct gov_signer_ops {
    gov_err_t (*sign)(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[GOV_SIGNER_SIG_LEN],
                      char *errbuf, size_t errbuf_size);
    void (*free)(void *ctx);
} gov_signer_ops_t;

/* Makes a signer of a backend: ops is borrowed (static storage expected),
 * ctx is STOLEN (released with ops->free when the signer is freed, and also
 * when this call fails), pub is copied, backend is copied (1..15 chars,
 * "file" | "pkcs11" | "memory").  The kid is computed here.  Returns a new
 * signer (gov_signer_free), or NULL on allocation failure or a bad argument.
 * Cost: one SHA-256. */
gov_signer_t *gov_signer_wrap(const gov_signer_ops_t *ops, void *ctx,
                              const uint8_t pub[GOV_SIGNER_PUB_LEN], const char *backend);

/* Signs msg[0..len) (msg may be NULL when len is 0) into sig.  GOV_OK, or
 * the backend's error with errbuf filled. */
gov_err_t gov_signer_sign(gov_signer_t *s, const uint8_t *msg, size_t len,
                          uint8_t sig[GOV_SIGNER_SIG_LEN], char *errbuf, size_t errbuf_size);

/* Checks sig as an Ed25519 (RFC 8032) signature of msg[0..len) under the
 * raw public key pub, in process with OpenSSL: 1 valid, 0 invalid, -1 the
 * check could not run (out of memory).  msg may be NULL when len is 0.
 * Pure and reentrant; O(len). */
int gov_signer_verify(const uint8_t pub[GOV_SIGNER_PUB_LEN], const uint8_t *msg, size_t len,
                      const uint8_t sig[GOV_SIGNER_SIG_LEN]);

/* Borrowed, valid until gov_signer_free: the 43-char kid, the 32-byte
 * public key, the backend name. */
const char *gov_signer_kid(const gov_signer_t *s);
const uint8_t *gov_signer_public_key(const gov_signer_t *s);
const char *gov_signer_backend(const gov_signer_t *s);

/* Releases the signer and its backend context.  NULL is safe. */
void gov_signer_free(gov_signer_t *s);

/* Writes the RFC 7638 thumbprint of pub into kid (GOV_SIGNER_KID_SIZE
 * bytes, NUL-terminated).  GOV_OK or GOV_ERR_CRYPTO. */
gov_err_t gov_signer_kid_of(const uint8_t pub[GOV_SIGNER_PUB_LEN], char kid[GOV_SIGNER_KID_SIZE]);

/* 1 when s has the shape of a kid: exactly 43 characters of the base64url
 * alphabet (so it is also a safe file name stem and PKCS#11 label). */
int gov_signer_kid_valid(const char *s);

/* Appends the public JWK of pub to out (caller's buffer; errors sticky in
 * out->err, as every gov_buf writer):
 *   {"alg":"EdDSA","crv":"Ed25519","kid":"<kid>","kty":"OKP","use":"sig","x":"<b64url(pub)>"}
 * kid is borrowed and must be gov_signer_kid_valid (else GOV_ERR_INVALID_ARG
 * and nothing is appended).  Returns out->err or that error. */
gov_err_t gov_signer_public_jwk(const uint8_t pub[GOV_SIGNER_PUB_LEN], const char *kid,
                                gov_buf_t *out);

/* The software backend ("memory"): a signer over the Ed25519 private key
 * whose RFC 8032 seed is seed (copied into an OpenSSL key; the caller
 * cleanses its own copy).  backend names it ("memory" for tests, "file" for
 * the PEM backend).  On GOV_OK *out is a new signer.  Cost: one key
 * derivation. */
gov_err_t gov_signer_from_ed25519_raw(const uint8_t seed[GOV_SIGNER_SEED_LEN], const char *backend,
                                      gov_signer_t **out, char *errbuf, size_t errbuf_size);

/* The same for a key OpenSSL already holds (an EVP_PKEY *, passed as void *
 * so this header does not pull in OpenSSL): the key is STOLEN (freed on
 * failure too) and must be an Ed25519 private key (GOV_ERR_UNSUPPORTED
 * otherwise). */
gov_err_t gov_signer_from_evp_take(void *evp_pkey, const char *backend, gov_signer_t **out,
                                   char *errbuf, size_t errbuf_size);


#endif /* GOV_SIGNER_H */
