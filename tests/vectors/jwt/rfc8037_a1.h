/* rfc8037_a1.h - the Ed25519 key of RFC 8037 Appendix A.1 (RFC 8032 §7.1
 * TEST 1) and a signer over it, for test_jwt.c and fuzz_jwt_verify.c.
 *
 * The signer is OpenSSL's Ed25519 called directly - the test's own issuer,
 * not gov_jwt code - with the private key as ctx (32 bytes), in the shape of
 * gov_jwt_sign_fn.  Test code only: a private key lives here because it is
 * the RFC's published one.
 */
#ifndef RFC8037_A1_H
#define RFC8037_A1_H

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>

#include "gov_err.h"

/* RFC 8037 A.1 "d" and "x" */
static const uint8_t rfc8037_a1_d[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
static const uint8_t rfc8037_a1_x[32] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a};

/* Signs msg[0..len) with the 32-byte Ed25519 private key ctx (borrowed). */
static inline gov_err_t rfc8037_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64],
                                     char *errbuf, size_t errbuf_size) {
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, ctx, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t siglen = 64;
    gov_err_t rc = GOV_ERR_CRYPTO;
    if (key != NULL && md != NULL && EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
        EVP_DigestSign(md, sig, &siglen, msg, len) == 1 && siglen == 64)
        rc = GOV_OK;
    else if (errbuf != NULL && errbuf_size > 0)
        snprintf(errbuf, errbuf_size, "test signer failed");
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    return rc;
}

#endif /* RFC8037_A1_H */
