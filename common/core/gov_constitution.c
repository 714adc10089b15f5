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
 * What is signed is the ASCII lowercase checksum hex (SomaBrain's scheme).
 * The trust file, the signature form and the threshold count live in
 * gov_signature.c, shared with signed rule packs: a signer counts only for
 * the tenants the trust file binds it to, every trusted signature present
 * must verify, and distinct trusted ids are distinct keys.  What is
 * constitution-specific stays here: the tenant binding of the document
 * (checked right after it parses), its governance section as an extra
 * minimum and a permitted list, and continuity with the document in force.  The document in force (state) is
 * re-read for its governance only once the incoming one would otherwise be
 * accepted, so a replay stays a replay whatever the current governance says.
 *
 * What it does not do: fetch anything, read keys from files, know the time.
 */
#include "gov_constitution.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_hash.h"
#include "gov_policy.h"
#include "gov_util.h"

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
    int takes_unbound = 0;
    if (gov_trust_tenant(trust, b->tenant, NULL, &takes_unbound) != 0) {
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
    if (dt == NULL && !takes_unbound) {
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

    /* 4. signatures: their form (gov_signature.c, shared with rule packs) */
    gov_reason_t form = gov_signatures_check_form(b->sigs, b->nsigs, v->detail, sizeof v->detail);
    if (form != GOV_REASON_NONE) {
        err = reject(v, form, "%s", v->detail);
        goto out;
    }

    /* 5. governance from the document, then who counts */
    int doc_threshold;
    json_t *valid_signers;
    if (read_governance(doc, &doc_threshold, &valid_signers, v->detail, sizeof v->detail) != 0) {
        err = reject(v, GOV_REASON_INVALID_GOVERNANCE, "%s", v->detail);
        goto out;
    }
    gov_sig_count_t sc;
    if ((err = gov_signatures_count(trust, b->tenant, b->sigs, b->nsigs, b->checksum, hexlen,
                                    doc_threshold, valid_signers, &sc)) != GOV_OK)
        goto out;
    v->nsigners = sc.nsigners;
    memcpy(v->signers, sc.signers, sizeof v->signers);
    v->required = sc.required;
    if (sc.reason != GOV_REASON_NONE) {
        err = reject(v, sc.reason, "%s", sc.detail);
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
