/* gov_audit_chain.c - hashing and checking audit chain entries.
 *
 * The hash input is streamed into one EVP digest context: no buffer is built,
 * so the cost is one pass over the payload whatever its size.
 */
#include "gov_audit_chain.h"

#include <inttypes.h>
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
