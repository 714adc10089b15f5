/* gov_hash.c - the hash-algorithm registry: names, OpenSSL digests, lengths.
 *
 * How it works: a static table maps each accepted name to the EVP_MD getter
 * and the digest length; a lookup is a strcmp per entry (two entries).  The
 * EVP_MD is fetched per call through its getter (EVP_sha3_512() returns a
 * static object in OpenSSL 3, no allocation), so the table itself holds no
 * OpenSSL state and needs no initialization.  The digest length OpenSSL
 * reports is checked against the table, so a table entry that lies fails
 * loudly as GOV_ERR_CRYPTO instead of producing short hex.
 *
 * What it does not do: incremental hashing (gov_audit_chain feeds its own
 * EVP context) or keyed MACs; no algorithm is chosen by a message, only
 * looked up by the name local configuration or a signed bundle gives.
 */
#include "gov_hash.h"

#include <openssl/evp.h>
#include <string.h>

#include "gov_util.h"

struct gov_hash_alg {
    const char *name;
    const EVP_MD *(*md)(void);
    size_t len;
};

/* The order is the one GOV_HASH_NAMES_TEXT lists. */
static const gov_hash_alg_t algs[] = {
    {"sha3-512", EVP_sha3_512, 64},
    {"sha256", EVP_sha256, GOV_SHA256_LEN},
};

#define NALGS (sizeof algs / sizeof algs[0])

const gov_hash_alg_t *gov_hash_by_name(const char *name) {
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < NALGS; i++)
        if (strcmp(algs[i].name, name) == 0)
            return &algs[i];
    return NULL;
}

size_t gov_hash_count(void) {
    return NALGS;
}

const gov_hash_alg_t *gov_hash_at(size_t i) {
    return i < NALGS ? &algs[i] : NULL;
}

const gov_hash_alg_t *gov_hash_sha3_512(void) {
    return &algs[0];
}

const gov_hash_alg_t *gov_hash_sha256(void) {
    return &algs[1];
}

const char *gov_hash_name(const gov_hash_alg_t *alg) {
    return alg->name;
}

size_t gov_hash_len(const gov_hash_alg_t *alg) {
    return alg->len;
}

size_t gov_hash_hex_len(const gov_hash_alg_t *alg) {
    return 2 * alg->len;
}

gov_err_t gov_hash_digest(const gov_hash_alg_t *alg, const void *buf, size_t len,
                          unsigned char *out) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (alg == NULL || (buf == NULL && len > 0))
        return GOV_ERR_INVALID_ARG;
    const EVP_MD *m = alg->md();
    if (m == NULL || EVP_Digest(buf, len, md, &mdlen, m, NULL) != 1 || mdlen != alg->len)
        return GOV_ERR_CRYPTO;
    memcpy(out, md, mdlen);
    return GOV_OK;
}

gov_err_t gov_hash_hex(const gov_hash_alg_t *alg, const void *buf, size_t len, char *hex_out) {
    unsigned char md[GOV_HASH_MAX_LEN];
    if (hex_out == NULL)
        return GOV_ERR_INVALID_ARG;
    hex_out[0] = '\0';
    gov_err_t err = gov_hash_digest(alg, buf, len, md);
    if (err == GOV_OK)
        gov_hex_encode(md, alg->len, hex_out);
    return err;
}

gov_err_t gov_sha256(const void *buf, size_t len, unsigned char out[GOV_SHA256_LEN]) {
    return gov_hash_digest(gov_hash_sha256(), buf, len, out);
}
