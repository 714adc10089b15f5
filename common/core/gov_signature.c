/* gov_signature.c - the trust file and the Ed25519 threshold, one
 * implementation for constitution bundles and rule packs.
 *
 * How it works: gov_trust_parse reads the signers (PEM, Ed25519 only, one
 * key per id) and the per-tenant bindings, each a bitmask over the at most
 * 32 signers, so "does signer s count for tenant T" is one bit test.
 * gov_signatures_check_form applies the rules that need no key (count,
 * algorithm, ids); gov_signatures_count decodes each signature, verifies
 * every signature of a signer bound to the tenant over the caller's message
 * and counts the distinct ones.  All trusted signatures present must
 * verify: one bad signature from a trusted signer refuses the whole, because
 * what carries a forged signature is not something every signer vouched
 * for.  Callers say what the message is (a bundle's checksum hex, a pack's
 * SHA-256 hex) and add their own minimum threshold (a document's
 * governance); everything else is decided here, the same way for both.
 *
 * What it does not do: read key files, know what a document or a pack is,
 * or keep any state between calls.
 */
#include "gov_signature.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_b64url.h"
#include "gov_util.h"

/* --- trust ------------------------------------------------------------------ */

typedef struct trusted_signer {
    char id[GOV_SIGNER_ID_MAX + 1];
    EVP_PKEY *key;
    unsigned char raw[32];   /* the raw public key: two ids, one key are refused */
} trusted_signer_t;

/* One tenant's binding: which signers count (bit i = signers[i]), how many
 * must sign, whether a document naming no tenant is taken. */
typedef struct trust_tenant {
    char name[GOV_TENANT_MAX + 1];
    int threshold;
    int unbound;
    uint32_t mask;
} trust_tenant_t;

struct gov_trust {
    size_t n;
    trusted_signer_t signers[GOV_MAX_SIGNATURES];
    /* The legacy format {"threshold", "signers"} binds every tenant to all
     * signers and takes no unbound document: any_tenant holds that binding. */
    int legacy;
    trust_tenant_t any_tenant;
    size_t ntenants;
    trust_tenant_t *tenants;   /* gov_calloc'd, ntenants entries */
};

void gov_trust_free(gov_trust_t *t) {
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        EVP_PKEY_free(t->signers[i].key);
    gov_free(t->tenants);
    gov_free(t);
}

size_t gov_trust_count(const gov_trust_t *t) { return t->n; }
size_t gov_trust_tenant_count(const gov_trust_t *t) { return t->legacy ? 0 : t->ntenants; }

int gov_trust_signer_of(const gov_trust_t *t, const unsigned char pub[32], char *id) {
    for (size_t i = 0; t && i < t->n; i++)
        if (memcmp(t->signers[i].raw, pub, 32) == 0) {
            snprintf(id, GOV_SIGNER_ID_MAX + 1, "%s", t->signers[i].id);
            return 0;
        }
    return -1;
}

static const trust_tenant_t *trust_tenant(const gov_trust_t *t, const char *tenant) {
    if (tenant == NULL)
        return NULL;
    if (t->legacy)
        return gov_tenant_valid(tenant, strlen(tenant)) ? &t->any_tenant : NULL;
    for (size_t i = 0; i < t->ntenants; i++)
        if (strcmp(t->tenants[i].name, tenant) == 0)
            return &t->tenants[i];
    return NULL;
}

int gov_trust_tenant(const gov_trust_t *t, const char *tenant, int *threshold, int *unbound) {
    const trust_tenant_t *tt = trust_tenant(t, tenant);
    if (tt == NULL)
        return -1;
    if (threshold)
        *threshold = tt->threshold;
    if (unbound)
        *unbound = tt->unbound;
    return 0;
}

int gov_signer_id_valid(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > GOV_SIGNER_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* explicit ranges: the syntax must not depend on the locale */
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!(alnum || c == '_' || c == '-' || c == '.' || c == '@' || c == ':'))
            return 0;
    }
    return 1;
}

/* Reads the "signers" map into t.  Two ids holding one public key are
 * refused: a threshold counts keys, and one key must not count twice. */
static gov_err_t trust_parse_signers(gov_trust_t *t, json_t *sg, char *errbuf,
                                     size_t errbuf_size) {
    const char *k;
    json_t *v;
    if (!json_is_object(sg) || json_object_size(sg) == 0 ||
        json_object_size(sg) > GOV_MAX_SIGNATURES) {
        snprintf(errbuf, errbuf_size, "trust file: \"signers\" must map 1..%d signer ids to keys",
                 GOV_MAX_SIGNATURES);
        return GOV_ERR_CONFIG;
    }
    json_object_foreach(sg, k, v) {
        if (!gov_signer_id_valid(k)) {
            snprintf(errbuf, errbuf_size, "trust file: invalid signer id \"%.64s\"", k);
            return GOV_ERR_CONFIG;
        }
        if (!json_is_string(v)) {
            snprintf(errbuf, errbuf_size, "trust file: key of \"%s\" is not a PEM string", k);
            return GOV_ERR_CONFIG;
        }
        BIO *bio = BIO_new_mem_buf(json_string_value(v), (int)json_string_length(v));
        EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        trusted_signer_t *s = &t->signers[t->n];
        size_t rl = sizeof s->raw;
        if (key == NULL || EVP_PKEY_id(key) != EVP_PKEY_ED25519 ||
            EVP_PKEY_get_raw_public_key(key, s->raw, &rl) != 1 || rl != sizeof s->raw) {
            EVP_PKEY_free(key);
            snprintf(errbuf, errbuf_size, "trust file: key of \"%s\" is not an Ed25519 public key (PEM)", k);
            return GOV_ERR_CONFIG;
        }
        snprintf(s->id, sizeof s->id, "%s", k);
        s->key = key;
        t->n++;
        for (size_t i = 0; i + 1 < t->n; i++)
            if (memcmp(t->signers[i].raw, s->raw, sizeof s->raw) == 0) {
                snprintf(errbuf, errbuf_size,
                         "trust file: signers \"%s\" and \"%s\" have the same public key", 
                         t->signers[i].id, k);
                return GOV_ERR_CONFIG;
            }
    }
    return GOV_OK;
}

static int trust_signer_index(const gov_trust_t *t, const char *id) {
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->signers[i].id, id) == 0)
            return (int)i;
    return -1;
}

/* Reads one member of "tenants": {"threshold": N, "signers": [ids],
 * "unbound_documents": bool (default false)}. */
static gov_err_t trust_parse_tenant(const gov_trust_t *t, const char *name, json_t *o,
                                    trust_tenant_t *out, char *errbuf, size_t errbuf_size) {
    const char *k;
    json_t *v;
    if (!gov_tenant_valid(name, strlen(name))) {
        snprintf(errbuf, errbuf_size, "trust file: invalid tenant id \"%.64s\"", name);
        return GOV_ERR_CONFIG;
    }
    if (!json_is_object(o)) {
        snprintf(errbuf, errbuf_size, "trust file: tenant \"%s\" is not an object", name);
        return GOV_ERR_CONFIG;
    }
    json_object_foreach(o, k, v) {
        if (strcmp(k, "threshold") != 0 && strcmp(k, "signers") != 0 &&
            strcmp(k, "unbound_documents") != 0) {
            snprintf(errbuf, errbuf_size, "trust file: tenant \"%s\": unknown member \"%.64s\"",
                     name, k);
            return GOV_ERR_CONFIG;
        }
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    json_t *ub = json_object_get(o, "unbound_documents");
    if (ub != NULL && !json_is_boolean(ub)) {
        snprintf(errbuf, errbuf_size, "trust file: tenant \"%s\": \"unbound_documents\" must be true or false", name);
        return GOV_ERR_CONFIG;
    }
    out->unbound = json_is_true(ub);
    json_t *sg = json_object_get(o, "signers");
    size_t i;
    json_t *e;
    if (!json_is_array(sg) || json_array_size(sg) == 0) {
        snprintf(errbuf, errbuf_size, "trust file: tenant \"%s\": \"signers\" must be a non-empty array of signer ids", name);
        return GOV_ERR_CONFIG;
    }
    int nsig = 0;
    json_array_foreach(sg, i, e) {
        int idx = json_is_string(e) ? trust_signer_index(t, json_string_value(e)) : -1;
        if (idx < 0) {
            snprintf(errbuf, errbuf_size, "trust file: tenant \"%s\": signers[%zu] is not a signer of \"signers\"", name, i);
            return GOV_ERR_CONFIG;
        }
        if (out->mask & (1u << idx)) {
            snprintf(errbuf, errbuf_size, "trust file: tenant \"%s\": signer \"%s\" listed twice", name, t->signers[idx].id);
            return GOV_ERR_CONFIG;
        }
        out->mask |= 1u << idx;
        nsig++;
    }
    json_t *th = json_object_get(o, "threshold");
    if (!json_is_integer(th) || json_integer_value(th) < 1 || json_integer_value(th) > nsig) {
        snprintf(errbuf, errbuf_size, "trust file: tenant \"%s\": \"threshold\" must be an integer 1..%d (its signers)", name, nsig);
        return GOV_ERR_CONFIG;
    }
    out->threshold = (int)json_integer_value(th);
    return GOV_OK;
}

gov_err_t gov_trust_parse(const char *json_text, size_t len, gov_trust_t **out,
                          char *errbuf, size_t errbuf_size) {
    gov_err_t err = GOV_ERR_CONFIG;
    json_error_t je;
    memset(&je, 0, sizeof je); /* jansson may fail an allocation without filling it */
    gov_trust_t *t = NULL;
    json_t *root = json_loadb(json_text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL || !json_is_object(root)) {
        snprintf(errbuf, errbuf_size, "trust file is not a JSON object%s%s",
                 root ? "" : ": ", root ? "" : je.text);
        goto out;
    }
    const char *k;
    json_t *v;
    json_t *tenants = json_object_get(root, "tenants");
    json_object_foreach(root, k, v) {
        int known = strcmp(k, "signers") == 0 ||
                    (tenants ? strcmp(k, "tenants") == 0 : strcmp(k, "threshold") == 0);
        if (!known) {
            snprintf(errbuf, errbuf_size, "trust file: unknown member \"%.64s\"%s", k,
                     tenants && strcmp(k, "threshold") == 0
                         ? " (with \"tenants\", each tenant has its own threshold)" : "");
            goto out;
        }
    }
    t = gov_calloc(1, sizeof *t);
    if (t == NULL) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    if ((err = trust_parse_signers(t, json_object_get(root, "signers"), errbuf, errbuf_size)) !=
        GOV_OK)
        goto out;
    err = GOV_ERR_CONFIG;
    if (tenants == NULL) {
        json_t *th = json_object_get(root, "threshold");
        if (!json_is_integer(th) || json_integer_value(th) < 1 ||
            (size_t)json_integer_value(th) > t->n) {
            snprintf(errbuf, errbuf_size,
                     "trust file: \"threshold\" must be an integer 1..%zu (the signers)", t->n);
            goto out;
        }
        t->legacy = 1;
        t->any_tenant.threshold = (int)json_integer_value(th);
        t->any_tenant.mask = t->n >= 32 ? UINT32_MAX : (1u << t->n) - 1;
    } else {
        if (!json_is_object(tenants) || json_object_size(tenants) == 0 ||
            json_object_size(tenants) > GOV_TRUST_TENANTS_MAX) {
            snprintf(errbuf, errbuf_size, "trust file: \"tenants\" must map 1..%d tenant ids to bindings",
                     GOV_TRUST_TENANTS_MAX);
            goto out;
        }
        t->tenants = gov_calloc(json_object_size(tenants), sizeof *t->tenants);
        if (t->tenants == NULL) {
            err = GOV_ERR_NOMEM;
            goto out;
        }
        json_object_foreach(tenants, k, v) {
            if ((err = trust_parse_tenant(t, k, v, &t->tenants[t->ntenants], errbuf,
                                          errbuf_size)) != GOV_OK)
                goto out;
            t->ntenants++;
        }
    }
    *out = t;
    t = NULL;
    err = GOV_OK;
out:
    gov_trust_free(t);
    json_decref(root);
    return err;
}

/* The key of signer id when it counts for tenant binding tt, else NULL. */
static EVP_PKEY *trust_key(const gov_trust_t *t, const trust_tenant_t *tt, const char *id) {
    int i = trust_signer_index(t, id);
    return i >= 0 && (tt->mask & (1u << i)) ? t->signers[i].key : NULL;
}

/* --- signatures ------------------------------------------------------------- */

/* A signature's text: 128 hex digits, or the 64 bytes in base64 of either
 * alphabet - 86 symbols, optionally followed by "==" - decoded by the
 * shared strict decoders (gov_b64url.h): the URL alphabet by
 * gov_b64url_decode, the standard one (a '+' or '/' present) by
 * gov_b64_decode with its padding restored.  One alphabet per text, unused
 * bits zero: one accepted spelling per alphabet for each signature. */
int gov_signature_decode(const char *text, unsigned char out[64]) {
    if (text == NULL)
        return -1;
    size_t n = strlen(text);
    if (n == 128)
        return gov_hex_decode(text, 128, out, 64);
    if (n == 88) {
        if (text[86] != '=' || text[87] != '=')
            return -1;
        n = 86;
    }
    if (n != 86)
        return -1;
    size_t got = 0;
    gov_err_t err;
    if (memchr(text, '+', 86) != NULL || memchr(text, '/', 86) != NULL) {
        char padded[89];
        memcpy(padded, text, 86);
        memcpy(padded + 86, "==", 3);
        err = gov_b64_decode(padded, 88, out, 64, &got, NULL, 0);
    } else {
        err = gov_b64url_decode(text, 86, out, 64, &got, NULL, 0);
    }
    return err == GOV_OK && got == 64 ? 0 : -1;
}

static int ed25519_verify(EVP_PKEY *key, const unsigned char sig[64], const char *msg,
                          size_t len) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return -1;
    int r = -1;
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1)
        r = EVP_DigestVerify(ctx, sig, 64, (const unsigned char *)msg, len) == 1 ? 1 : 0;
    EVP_MD_CTX_free(ctx);
    return r;
}

/* --- form and count ---------------------------------------------------------- */

int gov_signatures_from_json(const json_t *arr, gov_bundle_sig_t *out, size_t cap, size_t *n) {
    *n = 0;
    if (!json_is_array(arr))
        return -1;
    for (size_t i = 0; i < json_array_size(arr) && *n < cap; i++) {
        const json_t *sg = json_array_get(arr, i);
        out[(*n)++] = (gov_bundle_sig_t){json_string_value(json_object_get(sg, "signer_id")),
                                         json_string_value(json_object_get(sg, "algorithm")),
                                         json_string_value(json_object_get(sg, "signature"))};
    }
    return 0;
}

gov_err_t gov_signatures_to_json(const gov_bundle_sig_t *sigs, size_t n, char **out) {
    *out = NULL;
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_t *o = json_pack("{s:s?, s:s?, s:s?}", "signer_id", sigs[i].signer_id, "algorithm",
                              sigs[i].algorithm, "signature", sigs[i].signature);
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    /* jansson allocates through gov_malloc (gov_alloc_install_jansson) or
     * malloc, and gov_free releases either */
    *out = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return *out ? GOV_OK : GOV_ERR_NOMEM;
}

gov_reason_t gov_signatures_check_form(const gov_bundle_sig_t *sigs, size_t n, char *detail,
                                       size_t detail_size) {
    if (n == 0) {
        snprintf(detail, detail_size, "no signature");
        return GOV_REASON_NO_SIGNATURES;
    }
    if (n > GOV_MAX_SIGNATURES) {
        snprintf(detail, detail_size, "%zu signatures (at most %d)", n, GOV_MAX_SIGNATURES);
        return GOV_REASON_TOO_MANY_SIGNATURES;
    }
    for (size_t i = 0; i < n; i++) {
        const gov_bundle_sig_t *s = &sigs[i];
        if (s->algorithm == NULL || strcmp(s->algorithm, "ed25519") != 0) {
            snprintf(detail, detail_size,
                     "signature %zu uses algorithm \"%.40s\"; only ed25519 is accepted", i,
                     s->algorithm ? s->algorithm : "(none)");
            return GOV_REASON_UNKNOWN_SIGNATURE_ALGORITHM;
        }
        if (s->signer_id == NULL || !gov_signer_id_valid(s->signer_id)) {
            snprintf(detail, detail_size, "signature %zu has no valid signer_id", i);
            return GOV_REASON_MALFORMED_SIGNATURE;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(sigs[j].signer_id, s->signer_id) == 0) {
                snprintf(detail, detail_size, "signer \"%s\" signs more than once", s->signer_id);
                return GOV_REASON_DUPLICATE_SIGNER;
            }
    }
    return GOV_REASON_NONE;
}

static int in_string_array(const json_t *arr, const char *s) {
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
        if (json_is_string(e) && strcmp(json_string_value(e), s) == 0)
            return 1;
    return 0;
}

static int cmp_signer(const void *a, const void *b) {
    return strcmp((const char *)a, (const char *)b);
}

static gov_err_t count_fail(gov_sig_count_t *out, gov_reason_t r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static gov_err_t count_fail(gov_sig_count_t *out, gov_reason_t r, const char *fmt, ...) {
    out->reason = r;
    GOV_FORMAT_VA(out->detail, sizeof out->detail, fmt);
    return GOV_OK;
}

gov_err_t gov_signatures_count(const gov_trust_t *t, const char *tenant,
                               const gov_bundle_sig_t *sigs, size_t n, const char *msg,
                               size_t msg_len, int min_threshold, const json_t *permitted,
                               gov_sig_count_t *out) {
    memset(out, 0, sizeof *out);
    const trust_tenant_t *tt = trust_tenant(t, tenant);
    if (tt == NULL)
        return count_fail(out, GOV_REASON_TENANT_NOT_TRUSTED,
                          "tenant \"%.64s\" is not in the trust configuration",
                          tenant ? tenant : "");
    int untrusted = 0, not_permitted = 0;
    const char *first_untrusted = NULL, *first_not_permitted = NULL;
    for (size_t i = 0; i < n && i < GOV_MAX_SIGNATURES; i++) {
        const gov_bundle_sig_t *s = &sigs[i];
        unsigned char raw[64];
        if (gov_signature_decode(s->signature, raw) != 0)
            return count_fail(out, GOV_REASON_MALFORMED_SIGNATURE,
                              "signature of \"%s\" is neither 128 hex characters nor base64 of 64 bytes",
                              s->signer_id);
        EVP_PKEY *key = trust_key(t, tt, s->signer_id);
        if (key == NULL) {
            if (untrusted++ == 0)
                first_untrusted = s->signer_id;
            continue;
        }
        int ok = ed25519_verify(key, raw, msg, msg_len);
        if (ok < 0)
            return GOV_ERR_CRYPTO;
        if (!ok)
            return count_fail(out, GOV_REASON_INVALID_SIGNATURE,
                              "the signature of trusted signer \"%s\" does not verify",
                              s->signer_id);
        if (permitted && !in_string_array(permitted, s->signer_id)) {
            if (not_permitted++ == 0)
                first_not_permitted = s->signer_id;
            continue;
        }
        snprintf(out->signers[out->nsigners++], GOV_SIGNER_ID_MAX + 1, "%s", s->signer_id);
    }
    qsort(out->signers, out->nsigners, sizeof out->signers[0], cmp_signer);
    out->required = tt->threshold > min_threshold ? tt->threshold : min_threshold;
    if ((int)out->nsigners >= out->required)
        return GOV_OK;
    if (untrusted)
        return count_fail(out, GOV_REASON_UNTRUSTED_SIGNER,
                          "%zu of %d required signatures count; \"%s\" is not a trusted signer",
                          out->nsigners, out->required, first_untrusted);
    if (not_permitted)
        return count_fail(out, GOV_REASON_SIGNER_NOT_PERMITTED,
                          "%zu of %d required signatures count; \"%s\" is not in governance.valid_signers",
                          out->nsigners, out->required, first_not_permitted);
    return count_fail(out, GOV_REASON_THRESHOLD_NOT_MET, "%zu of %d required signatures",
                      out->nsigners, out->required);
}
