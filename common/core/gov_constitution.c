/* gov_constitution.c - the verification rules of signed constitution bundles.
 *
 * How it works: gov_constitution_verify walks the rules of the header in
 * order and stops at the first that fails, so every rejection carries exactly
 * one stable reason code plus a detail naming the field or signer at fault.
 * The document is parsed once (gov_canon_parse: bounded, duplicate keys
 * refused), serialized once in the bundle's canonical form, and hashed once;
 * on acceptance the parsed document and its canonical bytes are handed to the
 * caller so nothing is recomputed.
 *
 * What is signed is the ASCII lowercase checksum hex (SomaBrain's scheme), so
 * every trusted signature is checked against those bytes with Ed25519.  All
 * trusted signatures present must verify: one bad signature from a trusted
 * signer rejects the bundle even if enough others are good, because a bundle
 * that carries a forged signature is not one any signer vouched for whole.
 *
 * The trust is per tenant: a signer counts only for the tenants the trust
 * file binds it to (a bitmask over the at most 32 signers), so a bundle
 * signed for tenant A carries no weight for B, and the tenant binding is
 * checked right after the document parses.  Two ids holding one key are
 * refused at parse time, which makes "distinct trusted ids" the same as
 * "distinct keys" everywhere below.  The document in force (state) is
 * re-read for its governance only once the incoming one would otherwise be
 * accepted, so a replay stays a replay whatever the current governance says.
 *
 * What it does not do: fetch anything, read keys from files, know the time.
 */
#include "gov_constitution.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_hash.h"
#include "gov_policy.h"
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

static int b64val(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

int gov_signature_decode(const char *text, unsigned char out[64]) {
    if (text == NULL)
        return -1;
    size_t n = strlen(text);
    if (n == 128)
        return gov_hex_decode(text, 128, out, 64);
    /* base64 of 64 bytes: 86 symbols, then optionally "==" */
    if (n == 88) {
        if (text[86] != '=' || text[87] != '=')
            return -1;
        n = 86;
    }
    if (n != 86)
        return -1;
    int url = 0, std = 0;
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(text[i]);
        if (v < 0)
            return -1;
        url |= text[i] == '-' || text[i] == '_';
        std |= text[i] == '+' || text[i] == '/';
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o < 64)
                out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* one alphabet only, and the 4 leftover bits must be zero (canonical) */
    if (url && std)
        return -1;
    return o == 64 && acc == 0 ? 0 : -1;
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

/* --- verification ----------------------------------------------------------- */

static gov_err_t reject(gov_verdict_t *v, gov_reason_t r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static gov_err_t reject(gov_verdict_t *v, gov_reason_t r, const char *fmt, ...) {
    v->outcome = GOV_VERIFY_REJECT;
    v->reason = r;
    GOV_FORMAT_VA(v->detail, sizeof v->detail, fmt);
    return GOV_OK;
}

static int checksum_well_formed(const char *c, size_t want) {
    if (c == NULL || strlen(c) != want)
        return 0;
    for (size_t i = 0; i < want; i++)
        if (!((c[i] >= '0' && c[i] <= '9') || (c[i] >= 'a' && c[i] <= 'f')))
            return 0;
    return 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp((const char *)a, (const char *)b);
}

/* Reads governance.signature_threshold / valid_signers.  Returns 0 or -1
 * (with detail written). */
static int read_governance(json_t *doc, int *doc_threshold, json_t **valid_signers,
                           char *detail, size_t size) {
    *doc_threshold = 0;
    *valid_signers = NULL;
    json_t *gov = json_object_get(doc, "governance");
    if (gov == NULL)
        return 0;
    if (!json_is_object(gov)) {
        snprintf(detail, size, "governance is not an object");
        return -1;
    }
    json_t *th = json_object_get(gov, "signature_threshold");
    if (th != NULL) {
        if (!json_is_integer(th) || json_integer_value(th) < 1 ||
            json_integer_value(th) > GOV_MAX_SIGNATURES) {
            snprintf(detail, size, "governance.signature_threshold must be an integer 1..%d",
                     GOV_MAX_SIGNATURES);
            return -1;
        }
        *doc_threshold = (int)json_integer_value(th);
    }
    json_t *vs = json_object_get(gov, "valid_signers");
    if (vs != NULL) {
        size_t i;
        json_t *e;
        if (!json_is_array(vs) || json_array_size(vs) == 0) {
            snprintf(detail, size, "governance.valid_signers must be a non-empty array of signer ids");
            return -1;
        }
        json_array_foreach(vs, i, e) {
            if (!json_is_string(e)) {
                snprintf(detail, size, "governance.valid_signers[%zu] is not a string", i);
                return -1;
            }
        }
        *valid_signers = vs;
    }
    return 0;
}

static int in_string_array(json_t *arr, const char *s) {
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
        if (strcmp(json_string_value(e), s) == 0)
            return 1;
    return 0;
}

/* Rule 8: the in-force document's governance (threshold, valid_signers)
 * applies to its successor too, so a successor cannot lower the bar by
 * dropping or rewriting its own governance section.  v->signers is narrowed
 * to the signers the in-force document permits.  An in-force document that
 * cannot be read refuses (fail closed).  Returns GOV_OK with a verdict, or
 * GOV_ERR_NOMEM. */
static gov_err_t continuity(const gov_constitution_state_t *state, gov_verdict_t *v, char *eb,
                            size_t ebsize) {
    json_t *prev = NULL;
    gov_reason_t why = GOV_REASON_NONE;
    gov_err_t pe = gov_canon_parse(state->document_json, state->document_len, &prev, &why, eb,
                                   ebsize);
    if (pe == GOV_ERR_NOMEM)
        return GOV_ERR_NOMEM;
    int prev_threshold = 0;
    json_t *prev_vs = NULL;
    if (pe != GOV_OK || !json_is_object(prev) ||
        read_governance(prev, &prev_threshold, &prev_vs, eb, ebsize) != 0) {
        json_decref(prev);
        return reject(v, GOV_REASON_INTERNAL_ERROR, "the in-force document (version %.40s) is unreadable",
                      state->version);
    }
    size_t kept = 0, dropped = 0;
    const char *first_dropped = NULL;
    for (size_t i = 0; i < v->nsigners; i++) {
        if (prev_vs && !in_string_array(prev_vs, v->signers[i])) {
            if (dropped++ == 0)
                first_dropped = v->signers[i];
            continue;
        }
        if (kept != i)
            memcpy(v->signers[kept], v->signers[i], sizeof v->signers[0]);
        kept++;
    }
    char culprit[GOV_SIGNER_ID_MAX + 1] = "";
    if (first_dropped)
        snprintf(culprit, sizeof culprit, "%s", first_dropped);
    json_decref(prev);
    v->nsigners = kept;
    if (prev_threshold > v->required)
        v->required = prev_threshold;
    if ((int)v->nsigners >= v->required)
        return GOV_OK;
    if (dropped)
        return reject(v, GOV_REASON_SIGNER_NOT_PERMITTED,
                      "%zu of %d required signatures count; \"%s\" is not in the in-force "
                      "version %.40s's governance.valid_signers",
                      v->nsigners, v->required, culprit, state->version);
    return reject(v, GOV_REASON_THRESHOLD_NOT_MET,
                  "%zu of %d required signatures (the in-force version %.40s requires %d)",
                  v->nsigners, v->required, state->version, prev_threshold);
}

gov_err_t gov_constitution_verify(const gov_bundle_in_t *b, const gov_trust_t *trust,
                                  const gov_constitution_state_t *state, gov_verdict_t *v) {
    memset(v, 0, sizeof *v);
    gov_err_t err = GOV_OK;
    json_t *doc = NULL;
    char *canon = NULL;
    size_t canon_len = 0;
    char eb[200];

    /* 1. algorithms and checksum form */
    gov_canon_t kind;
    if (gov_canon_from_name(b->canonicalization, &kind) != 0) {
        err = reject(v, GOV_REASON_UNKNOWN_CANONICALIZATION, "canonicalization \"%.40s\" is not jcs or somabrain-json",
                     b->canonicalization ? b->canonicalization : "(none)");
        goto out;
    }
    const gov_hash_alg_t *hash = gov_hash_by_name(b->hash_alg);
    if (hash == NULL) {
        err = reject(v, GOV_REASON_UNKNOWN_HASH_ALGORITHM, "hash_alg \"%.40s\" is not " GOV_HASH_NAMES_TEXT,
                     b->hash_alg ? b->hash_alg : "(none)");
        goto out;
    }
    size_t hexlen = gov_hash_hex_len(hash);
    if (!checksum_well_formed(b->checksum, hexlen)) {
        err = reject(v, GOV_REASON_MALFORMED_CHECKSUM, "checksum must be %zu lowercase hex characters for %s",
                     hexlen, b->hash_alg);
        goto out;
    }

    /* 2. the document */
    gov_reason_t why = GOV_REASON_NONE;
    gov_err_t pe = gov_canon_parse(b->document_json, b->document_len, &doc, &why, eb, sizeof eb);
    if (pe == GOV_ERR_NOMEM) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    if (pe != GOV_OK || !json_is_object(doc)) {
        err = reject(v, GOV_REASON_MALFORMED_DOCUMENT, "document: %s%s%s",
                     pe != GOV_OK ? gov_reason_code(why) : "", pe != GOV_OK ? ": " : "",
                     pe != GOV_OK ? eb : "not a JSON object");
        goto out;
    }

    /* 2b. tenant binding: the trust must cover the tenant; a document that
     * names a tenant must name this one, and one that names none is taken
     * only where the tenant's binding says so (a replay to another tenant
     * is refused here, whatever its signatures) */
    const trust_tenant_t *tt = trust_tenant(trust, b->tenant);
    if (tt == NULL) {
        err = reject(v, GOV_REASON_TENANT_NOT_TRUSTED,
                     "tenant \"%.64s\" is not in the trust configuration",
                     b->tenant ? b->tenant : "");
        goto out;
    }
    json_t *dt = json_object_get(doc, "tenant");
    if (dt != NULL && (!json_is_string(dt) || strcmp(json_string_value(dt), b->tenant) != 0)) {
        err = reject(v, GOV_REASON_TENANT_MISMATCH, "document.tenant is not \"%.64s\"",
                     b->tenant);
        goto out;
    }
    if (dt == NULL && !tt->unbound) {
        err = reject(v, GOV_REASON_UNBOUND_DOCUMENT,
                     "the document names no tenant and tenant \"%.64s\" takes no unbound documents",
                     b->tenant);
        goto out;
    }

    /* 3. the checksum */
    pe = gov_canon_serialize(doc, kind, &canon, &canon_len, &why, eb, sizeof eb);
    if (pe == GOV_ERR_NOMEM) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    if (pe != GOV_OK) {
        err = reject(v, GOV_REASON_MALFORMED_DOCUMENT, "document cannot be canonicalized: %s: %s",
                     gov_reason_code(why), eb);
        goto out;
    }
    char hex[GOV_CHECKSUM_HEX_MAX + 1];
    if (gov_hash_hex(hash, canon, canon_len, hex) != GOV_OK) {
        err = GOV_ERR_CRYPTO;
        goto out;
    }
    if (strcmp(hex, b->checksum) != 0) {
        err = reject(v, GOV_REASON_CHECKSUM_MISMATCH,
                     "%s of the %s form of the document is %.16s..., the bundle claims %.16s...",
                     b->hash_alg, b->canonicalization, hex, b->checksum);
        goto out;
    }

    /* 4. signatures */
    if (b->nsigs == 0) {
        err = reject(v, GOV_REASON_NO_SIGNATURES, "the bundle carries no signature");
        goto out;
    }
    if (b->nsigs > GOV_MAX_SIGNATURES) {
        err = reject(v, GOV_REASON_TOO_MANY_SIGNATURES, "%zu signatures (at most %d)", b->nsigs,
                     GOV_MAX_SIGNATURES);
        goto out;
    }
    for (size_t i = 0; i < b->nsigs; i++) {
        const gov_bundle_sig_t *s = &b->sigs[i];
        if (s->algorithm == NULL || strcmp(s->algorithm, "ed25519") != 0) {
            err = reject(v, GOV_REASON_UNKNOWN_SIGNATURE_ALGORITHM,
                         "signature %zu uses algorithm \"%.40s\"; only ed25519 is accepted", i,
                         s->algorithm ? s->algorithm : "(none)");
            goto out;
        }
        if (s->signer_id == NULL || !gov_signer_id_valid(s->signer_id)) {
            err = reject(v, GOV_REASON_MALFORMED_SIGNATURE, "signature %zu has no valid signer_id", i);
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(b->sigs[j].signer_id, s->signer_id) == 0) {
                err = reject(v, GOV_REASON_DUPLICATE_SIGNER, "signer \"%s\" signs more than once",
                             s->signer_id);
                goto out;
            }
    }

    /* 5. governance from the document, then who counts */
    int doc_threshold;
    json_t *valid_signers;
    if (read_governance(doc, &doc_threshold, &valid_signers, v->detail, sizeof v->detail) != 0) {
        err = reject(v, GOV_REASON_INVALID_GOVERNANCE, "%s", v->detail);
        goto out;
    }
    int untrusted = 0, not_permitted = 0;
    const char *first_untrusted = NULL, *first_not_permitted = NULL;
    for (size_t i = 0; i < b->nsigs; i++) {
        const gov_bundle_sig_t *s = &b->sigs[i];
        unsigned char raw[64];
        if (gov_signature_decode(s->signature, raw) != 0) {
            err = reject(v, GOV_REASON_MALFORMED_SIGNATURE,
                         "signature of \"%s\" is neither 128 hex characters nor base64 of 64 bytes",
                         s->signer_id);
            goto out;
        }
        EVP_PKEY *key = trust_key(trust, tt, s->signer_id);
        if (key == NULL) {
            untrusted++;
            if (!first_untrusted)
                first_untrusted = s->signer_id;
            continue;
        }
        int ok = ed25519_verify(key, raw, b->checksum, hexlen);
        if (ok < 0) {
            err = GOV_ERR_CRYPTO;
            goto out;
        }
        if (!ok) {
            err = reject(v, GOV_REASON_INVALID_SIGNATURE,
                         "the signature of trusted signer \"%s\" does not verify", s->signer_id);
            goto out;
        }
        if (valid_signers && !in_string_array(valid_signers, s->signer_id)) {
            not_permitted++;
            if (!first_not_permitted)
                first_not_permitted = s->signer_id;
            continue;
        }
        snprintf(v->signers[v->nsigners++], GOV_SIGNER_ID_MAX + 1, "%s", s->signer_id);
    }
    qsort(v->signers, v->nsigners, sizeof v->signers[0], cmp_str);
    v->required = tt->threshold > doc_threshold ? tt->threshold : doc_threshold;
    if ((int)v->nsigners < v->required) {
        if (untrusted)
            err = reject(v, GOV_REASON_UNTRUSTED_SIGNER,
                         "%zu of %d required signatures count; \"%s\" is not a trusted signer",
                         v->nsigners, v->required, first_untrusted);
        else if (not_permitted)
            err = reject(v, GOV_REASON_SIGNER_NOT_PERMITTED,
                         "%zu of %d required signatures count; \"%s\" is not in governance.valid_signers",
                         v->nsigners, v->required, first_not_permitted);
        else
            err = reject(v, GOV_REASON_THRESHOLD_NOT_MET, "%zu of %d required signatures",
                         v->nsigners, v->required);
        goto out;
    }

    /* 6. version */
    gov_version_t ver;
    gov_reason_t vreason;
    char vwhy[160];
    if (gov_version_from_json(json_object_get(doc, "version"), v->version, &ver, &vreason, vwhy,
                              sizeof vwhy) != GOV_OK) {
        /* Too long or beyond 2^53 - 1 keep their own codes: never truncated
         * or rounded (docs/contracts.md, "Versions"). */
        err = reject(v, vreason == GOV_REASON_VERSION_TOO_LONG ||
                                vreason == GOV_REASON_VERSION_TOO_LARGE
                            ? vreason
                            : GOV_REASON_INVALID_VERSION,
                     "document.version %s", vwhy);
        goto out;
    }

    /* 7. against what the tenant has */
    if (state && state->version) {
        if (state->checksum && strcmp(state->checksum, b->checksum) == 0) {
            v->outcome = GOV_VERIFY_DUPLICATE;
            snprintf(v->detail, sizeof v->detail, "already the current constitution");
            goto out;
        }
        for (size_t i = 0; i < state->nhistory; i++)
            if (state->history[i] && strcmp(state->history[i], b->checksum) == 0) {
                v->outcome = GOV_VERIFY_DUPLICATE;
                snprintf(v->detail, sizeof v->detail, "accepted before (in the history)");
                goto out;
            }
        gov_version_t cur;
        if (gov_version_parse(state->version, &cur) != 0) {
            err = reject(v, GOV_REASON_INTERNAL_ERROR, "the current version \"%.40s\" is unreadable",
                         state->version);
            goto out;
        }
        int c = gov_version_compare(&ver, &cur);
        if (c == 0) {
            err = reject(v, GOV_REASON_EQUIVOCATION,
                         "version %s is already in force with another checksum", v->version);
            goto out;
        }
        if (c < 0) {
            err = reject(v, GOV_REASON_VERSION_ROLLBACK, "version %s is older than the current %s",
                         v->version, state->version);
            goto out;
        }
    }
    /* 8. continuity: the in-force document's governance binds its successor */
    if (state && state->version && state->document_json) {
        err = continuity(state, v, eb, sizeof eb);
        if (err != GOV_OK || v->outcome == GOV_VERIFY_REJECT)
            goto out;
    }

    /* 9. rules the policy engine can apply */
    gov_policy_constitution_t *rules = NULL;
    gov_err_t re = gov_policy_constitution_from_json(doc, &rules, eb, sizeof eb);
    gov_policy_constitution_free(rules);
    if (re == GOV_ERR_NOMEM) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    if (re != GOV_OK) {
        err = reject(v, GOV_REASON_INVALID_RULES, "%s", eb);
        goto out;
    }

    v->outcome = GOV_VERIFY_ACCEPT;
    v->reason = GOV_REASON_NONE;
    snprintf(v->detail, sizeof v->detail, "accepted: version %s, %zu of %d required signers",
             v->version, v->nsigners, v->required);
    v->document = doc;
    v->canonical = canon;
    v->canonical_len = canon_len;
    doc = NULL;
    canon = NULL;
out:
    json_decref(doc);
    gov_free(canon);
    if (err != GOV_OK) {
        v->outcome = GOV_VERIFY_REJECT;
        v->reason = GOV_REASON_INTERNAL_ERROR;
        snprintf(v->detail, sizeof v->detail, "%s", gov_err_str(err));
    }
    return err;
}

void gov_verdict_clear(gov_verdict_t *v) {
    json_decref(v->document);
    gov_free(v->canonical);
    v->document = NULL;
    v->canonical = NULL;
}
