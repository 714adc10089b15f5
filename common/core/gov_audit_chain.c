/* gov_audit_chain.c - hashing and checking audit chain entries.
 *
 * The hash input is streamed into one EVP digest context: no buffer is built,
 * so the cost is one pass over the payload whatever its size.
 *
 * It also reads the relay's source stamp (gov_relay_source_parse): outside
 * input - any producer of identity.audit can set the header - so it is
 * strict, and whatever is not exactly one spelling of a bounded partition
 * and offset is refused (gov-audit then treats the copy as unstamped).
 */
#include "gov_audit_chain.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static int put_lp(EVP_MD_CTX *ctx, const void *s, size_t n) {
    char len[32];
    int k = snprintf(len, sizeof len, "%zu:", n);
    return EVP_DigestUpdate(ctx, len, (size_t)k) == 1 &&
           (n == 0 || EVP_DigestUpdate(ctx, s, n) == 1);
}

gov_err_t gov_audit_chain_hash(const gov_audit_entry_t *e,
                               char out[GOV_SHA256_HEXLEN + 1]) {
    if (e->prev_hash == NULL || e->event_id == NULL || e->type == NULL ||
        e->source == NULL || e->payload == NULL)
        return GOV_ERR_INVALID_ARG;
    char seq[32], at[32];
    snprintf(seq, sizeof seq, "%" PRIu64, e->seq);
    snprintf(at, sizeof at, "%" PRId64, e->occurred_at);
    gov_err_t err = GOV_ERR_CRYPTO;
    unsigned char md[GOV_SHA256_LEN];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return GOV_ERR_NOMEM;
    static const char domain[] = "soma-audit-v1";
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, domain, sizeof domain - 1) != 1 ||
        !put_lp(ctx, e->prev_hash, strlen(e->prev_hash)) ||
        !put_lp(ctx, seq, strlen(seq)) ||
        !put_lp(ctx, e->event_id, strlen(e->event_id)) ||
        !put_lp(ctx, e->type, strlen(e->type)) ||
        !put_lp(ctx, at, strlen(at)) ||
        !put_lp(ctx, e->source, strlen(e->source)) ||
        !put_lp(ctx, e->payload, e->payload_len) ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != GOV_SHA256_LEN)
        goto out;
    gov_hex_encode(md, GOV_SHA256_LEN, out);
    err = GOV_OK;
out:
    EVP_MD_CTX_free(ctx);
    return err;
}

gov_audit_break_t gov_audit_chain_check(const gov_audit_entry_t *e,
                                        const char *stored_hash,
                                        const char *expected_prev,
                                        uint64_t expected_seq) {
    if (e->prev_hash == NULL || stored_hash == NULL || expected_prev == NULL)
        return GOV_AUDIT_MALFORMED;
    if (e->seq != expected_seq)
        return GOV_AUDIT_BAD_SEQ;
    if (strcmp(e->prev_hash, expected_prev) != 0)
        return GOV_AUDIT_BAD_PREV;
    char h[GOV_SHA256_HEXLEN + 1];
    if (gov_audit_chain_hash(e, h) != GOV_OK)
        return GOV_AUDIT_MALFORMED;
    if (strcmp(h, stored_hash) != 0)
        return GOV_AUDIT_BAD_HASH;
    return GOV_AUDIT_INTACT;
}

const char *gov_audit_break_str(gov_audit_break_t b) {
    switch (b) {
    case GOV_AUDIT_INTACT: return "intact";
    case GOV_AUDIT_BAD_PREV: return "prev_hash does not match the previous entry";
    case GOV_AUDIT_BAD_SEQ: return "sequence number out of order";
    case GOV_AUDIT_BAD_HASH: return "entry hash does not match its contents";
    case GOV_AUDIT_MALFORMED: return "entry is malformed";
    }
    return "unknown";
}

/* Strict decimal of at most max: digits only, no leading zero (one spelling
 * per number, so two stamps of one source compare equal as text too). */
static int parse_decimal(const char *s, size_t len, long long max, long long *out) {
    if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
        return -1;
    long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (max - (s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

gov_err_t gov_relay_source_parse(const char *s, size_t len, int32_t *partition, int64_t *offset,
                                 int64_t *time_ms) {
    if (s == NULL || len >= GOV_RELAY_SOURCE_MAX)
        return GOV_ERR_PARSE;
    const char *s1 = memchr(s, '/', len);
    if (s1 == NULL)
        return GOV_ERR_PARSE;
    size_t plen = (size_t)(s1 - s), rest = len - plen - 1;
    const char *s2 = memchr(s1 + 1, '/', rest);
    if (s2 == NULL)
        return GOV_ERR_PARSE;
    size_t olen = (size_t)(s2 - s1 - 1);
    long long p = 0, o = 0, t = 0;
    if (parse_decimal(s, plen, GOV_RELAY_PARTITION_MAX, &p) != 0 ||
        parse_decimal(s1 + 1, olen, GOV_RELAY_OFFSET_MAX, &o) != 0 ||
        parse_decimal(s2 + 1, rest - olen - 1, GOV_RELAY_OFFSET_MAX, &t) != 0)
        return GOV_ERR_PARSE;
    *partition = (int32_t)p;
    *offset = (int64_t)o;
    *time_ms = (int64_t)t;
    return GOV_OK;
}

gov_err_t gov_relay_mac(const void *key, size_t key_len, const char *stamp, size_t stamp_len,
                        const void *value, size_t len, char out[GOV_SHA256_HEXLEN + 1]) {
    if (key == NULL || key_len < GOV_RELAY_KEY_MIN || stamp == NULL || (value == NULL && len))
        return GOV_ERR_INVALID_ARG;
    static const char domain[] = "soma-relay-v1";
    char lp[32];
    int k = snprintf(lp, sizeof lp, "%zu:", stamp_len);
    gov_err_t err = GOV_ERR_CRYPTO;
    unsigned char md[GOV_SHA256_LEN];
    size_t mdlen = 0;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (ctx && EVP_MAC_init(ctx, key, key_len, params) == 1 &&
        EVP_MAC_update(ctx, (const unsigned char *)domain, sizeof domain - 1) == 1 &&
        EVP_MAC_update(ctx, (const unsigned char *)lp, (size_t)k) == 1 &&
        (stamp_len == 0 || EVP_MAC_update(ctx, (const unsigned char *)stamp, stamp_len) == 1) &&
        (len == 0 || EVP_MAC_update(ctx, value, len) == 1) &&
        EVP_MAC_final(ctx, md, &mdlen, sizeof md) == 1 && mdlen == sizeof md) {
        gov_hex_encode(md, sizeof md, out);
        err = GOV_OK;
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return err;
}

int gov_relay_mac_ok(const void *key, size_t key_len, const char *stamp, size_t stamp_len,
                     const void *value, size_t len, const char *mac, size_t mac_len) {
    char want[GOV_SHA256_HEXLEN + 1];
    if (mac == NULL || mac_len != GOV_SHA256_HEXLEN ||
        gov_relay_mac(key, key_len, stamp, stamp_len, value, len, want) != GOV_OK)
        return 0;
    return CRYPTO_memcmp(want, mac, GOV_SHA256_HEXLEN) == 0;
}
