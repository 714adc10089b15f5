/* jwk.c - what gov-identity accepts as a signing key's public JWK.
 *
 * An Ed25519 OKP public key (RFC 8037): kty "OKP", crv "Ed25519", x the
 * canonical unpadded base64url of 32 bytes; no private part; alg, use and
 * kid, when present, EdDSA, sig and the event's kid.  The kid must be the
 * RFC 7638 SHA-256 thumbprint of the key, so a kid names exactly one key.
 * The accepted key is re-written in one normalized form, so the JWKS built
 * from it does not depend on how a producer spelled it.
 *
 * Pure (OpenSSL and jansson only): tests/fuzz/fuzz_identity_jwk.c links it
 * with core alone.  When the signer module (gov_signer) provides the
 * thumbprint, this file should call it instead of its own.
 */
#include "jwk.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

static const char *member(json_t *o, const char *name) {
    return json_string_value(json_object_get(o, name));
}

/* base64url without padding of n bytes into out (room for 4*ceil(n/3)+1). */
static void b64url(const unsigned char *in, size_t n, char *out) {
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = 0;
    for (char *c = out; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
}

/* 1 when x is the canonical base64url (no padding) of exactly 32 bytes. */
static int x_is_ed25519(const char *x) {
    unsigned char raw[48];
    char std[48], again[48];
    if (x == NULL || strlen(x) != 43)
        return 0;
    for (int i = 0; i < 43; i++) {
        char c = x[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
        std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    std[43] = '=';
    std[44] = 0;
    if (EVP_DecodeBlock(raw, (const unsigned char *)std, 44) != 33)   /* 32 + 1 pad byte */
        return 0;
    b64url(raw, 32, again);
    return strcmp(again, x) == 0;   /* non-canonical trailing bits are refused */
}

gov_err_t identity_jwk_check(const char *public_jwk, const char *kid, char *norm,
                             size_t norm_size, gov_reason_t *reason, char *eb, size_t ebsize) {
    json_error_t je;
    gov_err_t err = GOV_ERR_VERIFY;
    json_t *j = public_jwk && kid && strlen(public_jwk) <= IDENTITY_JWK_MAX
                    ? json_loads(public_jwk, JSON_REJECT_DUPLICATES, &je) : NULL;
    const char *kty = member(j, "kty"), *crv = member(j, "crv"), *x = member(j, "x");
    const char *jkid = member(j, "kid"), *alg = member(j, "alg"), *use = member(j, "use");
    *reason = GOV_REASON_INVALID_JWK;
    if (!json_is_object(j) || !kty || strcmp(kty, "OKP") || !crv || strcmp(crv, "Ed25519") ||
        !x_is_ed25519(x)) {
        snprintf(eb, ebsize, "public_jwk is not an Ed25519 OKP JWK");
        goto out;
    }
    if (json_object_get(j, "d") || (alg && strcmp(alg, "EdDSA")) || (use && strcmp(use, "sig")) ||
        (json_object_get(j, "kid") && !jkid) || (json_object_get(j, "alg") && !alg) ||
        (json_object_get(j, "use") && !use)) {
        snprintf(eb, ebsize, "public_jwk has a private part or a wrong alg, use or kid");
        goto out;
    }
    /* RFC 7638 section 3.2: the required members in lexicographic order, no
     * whitespace; x is base64url already, so no escaping is needed */
    char members[128], thumb[48];
    unsigned char digest[32];
    unsigned int dlen = 0;
    snprintf(members, sizeof members, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    if (EVP_Digest(members, strlen(members), digest, &dlen, EVP_sha256(), NULL) != 1 ||
        dlen != 32) {
        snprintf(eb, ebsize, "SHA-256 failed");
        err = GOV_ERR_CRYPTO;
        goto out;
    }
    b64url(digest, 32, thumb);
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
