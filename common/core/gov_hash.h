/* gov_hash.h - the registry of the hash algorithms libgov accepts by name.
 *
 * A constitution bundle names its hash algorithm ("hash_alg"); gov_canon,
 * gov_constitution, govctl and the edge all look that name up here, so the
 * set of accepted names, their OpenSSL digests and their lengths are written
 * once.  The names are a contract (docs/contracts.md): "sha3-512" (FIPS 202,
 * 64 bytes, SomaBrain's default) and "sha256" (FIPS 180-4, 32 bytes).  Lookup
 * is by exact, case-sensitive name: "SHA3-512" is not an algorithm.
 *
 * A gov_hash_alg_t is a borrowed pointer into a static table; it is never
 * freed and stays valid for the life of the process.
 *
 * Thread-safety: all functions are pure and thread-safe.
 */
#ifndef GOV_HASH_H
#define GOV_HASH_H

#include <stddef.h>

#include "gov_err.h"

/* The largest digest of any registered algorithm (SHA3-512), in bytes, and
 * the buffer its lowercase hex needs (with the NUL). */
#define GOV_HASH_MAX_LEN 64
#define GOV_HASH_HEX_MAX (2 * GOV_HASH_MAX_LEN + 1)

/* The names, for messages that list the choices ("... is not sha3-512 or
 * sha256"); test_hash checks it against the table. */
#define GOV_HASH_NAMES_TEXT "sha3-512 or sha256"
/* What govctl signs with when a bundle names no algorithm: SomaBrain's. */
#define GOV_HASH_DEFAULT_NAME "sha3-512"

#define GOV_SHA256_LEN 32
#define GOV_SHA256_HEXLEN 64

typedef struct gov_hash_alg gov_hash_alg_t;

/* The algorithm called name, or NULL when name is NULL or not registered.
 * Returns a borrowed, static pointer.  O(number of algorithms). */
const gov_hash_alg_t *gov_hash_by_name(const char *name);

/* Registered algorithms by index 0..gov_hash_count()-1 (NULL past the end),
 * in a fixed order; for listing and tests. */
size_t gov_hash_count(void);
const gov_hash_alg_t *gov_hash_at(size_t i);

/* The registered algorithms by constant, for code that needs one. */
const gov_hash_alg_t *gov_hash_sha3_512(void);
const gov_hash_alg_t *gov_hash_sha256(void);

/* Its name (static), digest length in bytes, and hex length (2 * len). */
const char *gov_hash_name(const gov_hash_alg_t *alg);
size_t gov_hash_len(const gov_hash_alg_t *alg);
size_t gov_hash_hex_len(const gov_hash_alg_t *alg);

/* Digest of buf[0..len) (borrowed) into out, which must hold
 * gov_hash_len(alg) bytes (GOV_HASH_MAX_LEN fits any).  GOV_ERR_INVALID_ARG
 * when alg is NULL, GOV_ERR_CRYPTO when OpenSSL fails (out is then
 * untouched).  One EVP call, O(len). */
gov_err_t gov_hash_digest(const gov_hash_alg_t *alg, const void *buf, size_t len,
                          unsigned char *out);

/* The same digest as lowercase hex into hex_out, which must hold
 * gov_hash_hex_len(alg) + 1 bytes (GOV_HASH_HEX_MAX fits any).  On failure
 * hex_out is "" (when not NULL) and the error is gov_hash_digest's. */
gov_err_t gov_hash_hex(const gov_hash_alg_t *alg, const void *buf, size_t len, char *hex_out);

/* SHA-256 of len bytes: gov_hash_digest(gov_hash_sha256(), ...). */
gov_err_t gov_sha256(const void *buf, size_t len, unsigned char out[GOV_SHA256_LEN]);

#endif /* GOV_HASH_H */
