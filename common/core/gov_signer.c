/* gov_signer.c - the signer handle, the RFC 7638 key id, the public JWK, and
 * the in-process Ed25519 backend.
 *
 * How it works: a signer is a function table plus the backend's context,
 * with the public key and its kid fixed at creation, so every accessor is a
 * field read and only sign reaches the backend.  The kid is the thumbprint
 * of the public key (docs/contracts.md, "Signing keys"), computed here for
 * every backend so that the same key carries the same kid on a token, in a
 * key file name and as a PKCS#11 label.  The in-process backend keeps an
 * OpenSSL EVP_PKEY, which OpenSSL allows to be used read-only from many
 * threads; each signature takes its own EVP_MD_CTX.
 *
 * What it does not do: read, write or generate key files, talk to a token,
 * or decode base64url (the JWT code owns parsing).  The base64url encoder
 * here is the minimum the kid and the JWK need.
 */
#include "gov_signer.h"

#include "gov_b64url.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_hash.h"

#define BACKEND_NAME_MAX 15

struct gov_signer {
    const gov_signer_ops_t *ops;
    void *ctx;
    uint8_t pub[GOV_SIGNER_PUB_LEN];
    char kid[GOV_SIGNER_KID_SIZE];
    char backend[BACKEND_NAME_MAX + 1];
};

static void set_err(char *errbuf, size_t errbuf_size, const char *msg) {
    if (errbuf != NULL && errbuf_size > 0)
        snprintf(errbuf, errbuf_size, "%s", msg);
}


/* --- kid and JWK ------------------------------------------------------------------ */

gov_err_t gov_signer_kid_of(const uint8_t pub[GOV_SIGNER_PUB_LEN], char kid[GOV_SIGNER_KID_SIZE]) {
    /* RFC 7638 §3: the required members of an OKP key (RFC 8037 §2), in
     * lexicographic order, no whitespace. */
    char x[GOV_SIGNER_KID_SIZE];
    char json[96];
    unsigned char digest[GOV_SHA256_LEN];
    gov_b64url_encode(pub, GOV_SIGNER_PUB_LEN, x);
    int n = snprintf(json, sizeof json, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    if (n < 0 || (size_t)n >= sizeof json)
        return GOV_ERR_INTERNAL;
    if (gov_sha256(json, (size_t)n, digest) != GOV_OK)
        return GOV_ERR_CRYPTO;
    gov_b64url_encode(digest, sizeof digest, kid);
    return GOV_OK;
}

int gov_signer_kid_valid(const char *s) {
    uint8_t digest[32];
    size_t n = 0;
    /* a kid is the canonical spelling of a SHA-256 digest, nothing else */
    return s != NULL && strnlen(s, GOV_SIGNER_KID_LEN + 1) == GOV_SIGNER_KID_LEN &&
           gov_b64url_decode(s, GOV_SIGNER_KID_LEN, digest, sizeof digest, &n, NULL, 0) == GOV_OK &&
           n == sizeof digest;
}

gov_err_t gov_signer_public_jwk(const uint8_t pub[GOV_SIGNER_PUB_LEN], const char *kid,
                                gov_buf_t *out) {
    if (pub == NULL || out == NULL || !gov_signer_kid_valid(kid))
        return GOV_ERR_INVALID_ARG;
    char x[GOV_SIGNER_KID_SIZE];
    gov_b64url_encode(pub, GOV_SIGNER_PUB_LEN, x);
    /* kid and x are base64url: nothing in them needs escaping. */
    gov_buf_printf(out,
                   "{\"alg\":\"EdDSA\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"kty\":\"OKP\","
                   "\"use\":\"sig\",\"x\":\"%s\"}",
                   kid, x);
    return out->err;
}

/* --- the handle ---------------------------------------------------------------------- */

gov_signer_t *gov_signer_wrap(const gov_signer_ops_t *ops, void *ctx,
                              const uint8_t pub[GOV_SIGNER_PUB_LEN], const char *backend) {
    gov_signer_t *s = NULL;
    if (ops == NULL || ops->sign == NULL || ops->free == NULL || pub == NULL || backend == NULL ||
        backend[0] == '\0' || strlen(backend) > BACKEND_NAME_MAX)
        goto fail;
    s = gov_calloc(1, sizeof *s);
    if (s == NULL)
        goto fail;
    memcpy(s->pub, pub, GOV_SIGNER_PUB_LEN);
    if (gov_signer_kid_of(pub, s->kid) != GOV_OK)
        goto fail;
    snprintf(s->backend, sizeof s->backend, "%s", backend);
    s->ops = ops;
    s->ctx = ctx;
    return s;
fail:
    gov_free(s);
    if (ctx != NULL && ops != NULL && ops->free != NULL)
        ops->free(ctx);
    return NULL;
}

gov_err_t gov_signer_sign(gov_signer_t *s, const uint8_t *msg, size_t len,
                          uint8_t sig[GOV_SIGNER_SIG_LEN], char *errbuf, size_t errbuf_size) {
    if (s == NULL || sig == NULL || (msg == NULL && len > 0)) {
        set_err(errbuf, errbuf_size, "signer: invalid argument");
        return GOV_ERR_INVALID_ARG;
    }
    static const uint8_t empty[1] = {0};
    return s->ops->sign(s->ctx, msg != NULL ? msg : empty, len, sig, errbuf, errbuf_size);
}

const char *gov_signer_kid(const gov_signer_t *s) { return s->kid; }
const uint8_t *gov_signer_public_key(const gov_signer_t *s) { return s->pub; }
const char *gov_signer_backend(const gov_signer_t *s) { return s->backend; }

void gov_signer_free(gov_signer_t *s) {
    if (s == NULL)
        return;
    if (s->ctx != NULL)
        s->ops->free(s->ctx);
    gov_free(s);
}

int gov_signer_verify(const uint8_t pub[GOV_SIGNER_PUB_LEN], const uint8_t *msg, size_t len,
                      const uint8_t sig[GOV_SIGNER_SIG_LEN]) {
    static const uint8_t empty[1] = {0};
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, GOV_SIGNER_PUB_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int r = -1;
    if (key != NULL && ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1)
        r = EVP_DigestVerify(ctx, sig, GOV_SIGNER_SIG_LEN, msg != NULL ? msg : empty, len) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return r;
}

/* --- the in-process backend ------------------------------------------------------------ */

static gov_err_t evp_sign(void *ctx, const uint8_t *msg, size_t len,
                          uint8_t sig[GOV_SIGNER_SIG_LEN], char *errbuf, size_t errbuf_size) {
    EVP_PKEY *key = ctx;
    gov_err_t rc = GOV_ERR_CRYPTO;
    size_t siglen = GOV_SIGNER_SIG_LEN;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL) {
        set_err(errbuf, errbuf_size, "signer: out of memory");
        return GOV_ERR_NOMEM;
    }
    /* Ed25519 is one-shot: no digest is named (RFC 8032 PureEdDSA). */
    if (EVP_DigestSignInit(md, NULL, NULL, NULL, key) != 1 ||
        EVP_DigestSign(md, sig, &siglen, msg, len) != 1 || siglen != GOV_SIGNER_SIG_LEN) {
        set_err(errbuf, errbuf_size, "signer: Ed25519 signing failed");
        goto out;
    }
    rc = GOV_OK;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

static void evp_free(void *ctx) { EVP_PKEY_free(ctx); }

static const gov_signer_ops_t evp_ops = {.sign = evp_sign, .free = evp_free};

gov_err_t gov_signer_from_evp_take(void *evp_pkey, const char *backend, gov_signer_t **out,
                                   char *errbuf, size_t errbuf_size) {
    EVP_PKEY *key = evp_pkey;
    uint8_t pub[GOV_SIGNER_PUB_LEN];
    size_t publen = sizeof pub;
    *out = NULL;
    if (key == NULL) {
        set_err(errbuf, errbuf_size, "signer: no key");
        return GOV_ERR_INVALID_ARG;
    }
    if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(key);
        set_err(errbuf, errbuf_size, "signer: the key is not an Ed25519 key");
        return GOV_ERR_UNSUPPORTED;
    }
    if (EVP_PKEY_get_raw_public_key(key, pub, &publen) != 1 || publen != sizeof pub) {
        EVP_PKEY_free(key);
        set_err(errbuf, errbuf_size, "signer: cannot read the Ed25519 public key");
        return GOV_ERR_CRYPTO;
    }
    *out = gov_signer_wrap(&evp_ops, key, pub, backend);
    if (*out == NULL) {
        set_err(errbuf, errbuf_size, "signer: out of memory");
        return GOV_ERR_NOMEM;
    }
    return GOV_OK;
}

gov_err_t gov_signer_from_ed25519_raw(const uint8_t seed[GOV_SIGNER_SEED_LEN], const char *backend,
                                      gov_signer_t **out, char *errbuf, size_t errbuf_size) {
    *out = NULL;
    if (seed == NULL) {
        set_err(errbuf, errbuf_size, "signer: no seed");
        return GOV_ERR_INVALID_ARG;
    }
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, GOV_SIGNER_SEED_LEN);
    if (key == NULL) {
        set_err(errbuf, errbuf_size, "signer: cannot make an Ed25519 key of the seed");
        return GOV_ERR_CRYPTO;
    }
    return gov_signer_from_evp_take(key, backend, out, errbuf, errbuf_size);
}
