/* jwk.c - what gov-identity accepts as a signing key's public JWK.
 *
 * An Ed25519 OKP public key (RFC 8037): kty "OKP", crv "Ed25519", x the
 * canonical unpadded base64url of 32 bytes; no private part; alg, use and
 * kid, when present, EdDSA, sig and the event's kid.  The kid must be the
 * RFC 7638 SHA-256 thumbprint of the key, so a kid names exactly one key.
 * The accepted key is re-written in one normalized form, so the JWKS built
 * from it does not depend on how a producer spelled it.
 *
 * Pure (core, OpenSSL and jansson only): tests/fuzz/fuzz_identity_jwk.c
 * links it with core alone.  The thumbprint is gov_signer's (RFC 7638), the
 * decoding gov_b64url's strict one.
 */
#include "jwk.h"

#include <stdio.h>
#include <string.h>

#include "gov_b64url.h"
#include "gov_signer.h"

static const char *member(json_t *o, const char *name) {
    return json_string_value(json_object_get(o, name));
}

/* 1 when x is the canonical base64url (no padding) of exactly 32 bytes,
 * the raw key then in raw: the strict decoder refuses padding, foreign
 * characters and non-zero trailing bits. */
static int x_is_ed25519(const char *x, uint8_t raw[32]) {
    size_t n = 0;
    return x != NULL && strlen(x) == 43 &&
           gov_b64url_decode(x, 43, raw, 32, &n, NULL, 0) == GOV_OK && n == 32;
}

gov_err_t identity_jwk_check(const char *public_jwk, const char *kid, char *norm,
                             size_t norm_size, gov_reason_t *reason, char *eb, size_t ebsize) {
    json_error_t je;
    gov_err_t err = GOV_ERR_VERIFY;
    uint8_t raw[32];
    json_t *j = public_jwk && kid && strlen(public_jwk) <= IDENTITY_JWK_MAX
                    ? json_loads(public_jwk, JSON_REJECT_DUPLICATES, &je) : NULL;
    const char *kty = member(j, "kty"), *crv = member(j, "crv"), *x = member(j, "x");
    const char *jkid = member(j, "kid"), *alg = member(j, "alg"), *use = member(j, "use");
    *reason = GOV_REASON_INVALID_JWK;
    if (!json_is_object(j) || !kty || strcmp(kty, "OKP") || !crv || strcmp(crv, "Ed25519") ||
        !x_is_ed25519(x, raw)) {
        snprintf(eb, ebsize, "public_jwk is not an Ed25519 OKP JWK");
        goto out;
    }
    if (json_object_get(j, "d") || (alg && strcmp(alg, "EdDSA")) || (use && strcmp(use, "sig")) ||
        (json_object_get(j, "kid") && !jkid) || (json_object_get(j, "alg") && !alg) ||
        (json_object_get(j, "use") && !use)) {
        snprintf(eb, ebsize, "public_jwk has a private part or a wrong alg, use or kid");
        goto out;
    }
    char thumb[GOV_SIGNER_KID_SIZE];
    if (gov_signer_kid_of(raw, thumb) != GOV_OK) {
        snprintf(eb, ebsize, "SHA-256 failed");
        err = GOV_ERR_CRYPTO;
        goto out;
    }
    if (strcmp(thumb, kid) != 0 || (jkid && strcmp(jkid, kid) != 0)) {
        *reason = GOV_REASON_KID_NOT_THUMBPRINT;
        snprintf(eb, ebsize, "kid %.64s is not the thumbprint %s of its JWK", kid, thumb);
        goto out;
    }
    snprintf(norm, norm_size,
             "{\"alg\":\"EdDSA\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"kty\":\"OKP\","
             "\"use\":\"sig\",\"x\":\"%s\"}", kid, x);
    *reason = GOV_REASON_NONE;
    err = GOV_OK;
out:
    json_decref(j);
    return err;
}
