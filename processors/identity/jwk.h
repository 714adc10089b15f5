/* jwk.h - gov-identity's check of a KeyRotated's public JWK (jwk.c).
 *
 * Thread-safety: pure, thread-safe.
 */
#ifndef IDENTITY_JWK_H
#define IDENTITY_JWK_H

#include <stddef.h>

#include <jansson.h>

#include "gov_err.h"
#include "gov_reason.h"

/* The largest public_jwk text looked at (an Ed25519 JWK is ~100 bytes). */
#define IDENTITY_JWK_MAX 1024
/* Room for the normalized JWK. */
#define IDENTITY_JWK_NORM_MAX 256

/* Checks public_jwk (borrowed, NUL-terminated, may be NULL): an Ed25519 OKP
 * public JWK whose RFC 7638 thumbprint - and whose own kid member, when
 * present - is `kid`.  On GOV_OK writes its normalized form
 * {"alg":"EdDSA","crv":"Ed25519","kid":..,"kty":"OKP","use":"sig","x":..}
 * into norm (norm_size >= IDENTITY_JWK_NORM_MAX).  Otherwise GOV_ERR_VERIFY
 * with *reason invalid_jwk or kid_not_thumbprint and the detail in errbuf
 * (GOV_ERR_CRYPTO when SHA-256 fails).  Cost: one JSON parse of at most
 * IDENTITY_JWK_MAX bytes and one SHA-256. */
gov_err_t identity_jwk_check(const char *public_jwk, const char *kid, char *norm,
                             size_t norm_size, gov_reason_t *reason, char *errbuf,
                             size_t errbuf_size);

#endif
