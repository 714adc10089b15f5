/* gov_identity_sig.c - the signed payload of identity events and its
 * threshold check (docs/contracts.md, "Signed identity events").
 *
 * How: the payload is the event object minus its envelope (event_id,
 * occurred_at) and its signatures, plus "type", serialized by gov_canon
 * (JCS); producers sign those bytes, gov-identity checks them on the event
 * it consumes and stores them beside the record, and gov-edge checks the
 * stored bytes again (gov_identity_sig_check_stored), so Redis never has
 * to be believed.  The counting is gov_signature's, unchanged: one trust
 * format, one set of rules, for constitutions, rule packs and identity.
 *
 * What it does not do: judge the content (gov-identity's field rules), read
 * the trust file or a key (the callers), or keep state.
 */
#include "gov_identity_sig.h"

#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_util.h"

static const char *const kinds[] = {"KeyRotated", "ClientRegistered", "ClientRemoved"};

int gov_identity_sig_kind(const char *type) {
    for (size_t i = 0; type && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(type, kinds[i]) == 0)
            return 1;
    return 0;
}

gov_err_t gov_identity_sig_payload(const char *type, const json_t *event, char **out,
                                   size_t *out_len, char *errbuf, size_t errbuf_size) {
    *out = NULL;
    *out_len = 0;
    if (!gov_identity_sig_kind(type) || !json_is_object(event)) {
        snprintf(errbuf, errbuf_size, "not a signed identity event kind, or not an object");
        return GOV_ERR_INVALID_ARG;
    }
    /* a shallow copy: the members are shared, only the top level differs */
    json_t *c = json_copy((json_t *)event);
    gov_err_t err = GOV_ERR_NOMEM;
    if (c == NULL || json_object_set_new(c, "type", json_string(type)) != 0) {
        snprintf(errbuf, errbuf_size, "out of memory");
        goto out;
    }
    json_object_del(c, "event_id");
    json_object_del(c, "occurred_at");
    json_object_del(c, "signatures");
    err = gov_canon_serialize(c, GOV_CANON_JCS, out, out_len, NULL, errbuf, errbuf_size);
    if (err == GOV_OK && *out_len > GOV_IDENTITY_SIG_PAYLOAD_MAX) {
        snprintf(errbuf, errbuf_size, "signed payload of %zu bytes exceeds %d", *out_len,
                 GOV_IDENTITY_SIG_PAYLOAD_MAX);
        gov_free(*out);
        *out = NULL;
        *out_len = 0;
        err = GOV_ERR_TOO_LARGE;
    }
out:
    json_decref(c);
    return err;
}

gov_err_t gov_identity_sig_sign(gov_signer_t *s, const char *signer_id, const char *payload,
                                size_t len, json_t *sigs, char *errbuf, size_t errbuf_size) {
    uint8_t sig[GOV_SIGNER_SIG_LEN];
    char hex[2 * GOV_SIGNER_SIG_LEN + 1];
    if (s == NULL || !gov_signer_id_valid(signer_id) || !json_is_array(sigs) ||
        json_array_size(sigs) >= GOV_MAX_SIGNATURES) {
        snprintf(errbuf, errbuf_size, "no signer, a signer id that is not an id, or no room");
        return GOV_ERR_INVALID_ARG;
    }
    gov_err_t err = gov_signer_sign(s, (const uint8_t *)payload, len, sig, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    gov_hex_encode(sig, sizeof sig, hex);
    json_t *e = json_pack("{s:s, s:s, s:s}", "signer_id", signer_id, "algorithm", "ed25519",
                          "signature", hex);
    if (e == NULL || json_array_append_new(sigs, e) != 0) {
        snprintf(errbuf, errbuf_size, "out of memory");
        return GOV_ERR_NOMEM;
    }
    return GOV_OK;
}

gov_err_t gov_identity_sig_check(const gov_trust_t *t, const char *payload, size_t len,
                                 const json_t *sigs, gov_sig_count_t *out) {
    gov_bundle_sig_t v[GOV_MAX_SIGNATURES + 1];
    size_t n = 0;
    memset(out, 0, sizeof *out);
    if (!json_is_array(sigs) || gov_signatures_from_json(sigs, v, sizeof v / sizeof v[0], &n) != 0)
        n = 0;
    if (json_is_array(sigs) && json_array_size(sigs) > GOV_MAX_SIGNATURES)
        n = GOV_MAX_SIGNATURES + 1;
    out->reason = gov_signatures_check_form(v, n, out->detail, sizeof out->detail);
    if (out->reason != GOV_REASON_NONE)
        return GOV_ERR_VERIFY;
    gov_err_t err = gov_signatures_count(t, GOV_IDENTITY_SIG_SCOPE, v, n, payload, len, 1, NULL,
                                         out);
    if (err != GOV_OK)
        return err;
    return out->reason == GOV_REASON_NONE ? GOV_OK : GOV_ERR_VERIFY;
}

static gov_err_t stored_fail(gov_sig_count_t *out, const char *detail) {
    out->reason = GOV_REASON_IDENTITY_SIGNATURE_INVALID;
    snprintf(out->detail, sizeof out->detail, "%s", detail);
    return GOV_ERR_VERIFY;
}

gov_err_t gov_identity_sig_check_stored(const gov_trust_t *t, const char *type,
                                        const char *id_field, const char *id,
                                        const char *payload, size_t payload_len,
                                        const char *sigs_text, size_t sigs_len, json_t **content,
                                        gov_sig_count_t *out) {
    json_t *sigs = NULL, *doc = NULL;
    char *canon = NULL;
    size_t canon_len = 0;
    gov_err_t err;
    *content = NULL;
    memset(out, 0, sizeof *out);
    if (payload == NULL || payload_len == 0 || payload_len > GOV_IDENTITY_SIG_PAYLOAD_MAX)
        return stored_fail(out, "no signed payload stored, or a larger one than allowed");
    if (sigs_text == NULL || sigs_len > GOV_IDENTITY_SIG_SIGS_MAX ||
        gov_canon_parse(sigs_text, sigs_len, &sigs, NULL, NULL, 0) != GOV_OK)
        sigs = NULL;   /* judged below as no_signatures: nothing readable was signed */
    if ((err = gov_identity_sig_check(t, payload, payload_len, sigs, out)) != GOV_OK)
        goto out;
    if (gov_canon_parse(payload, payload_len, &doc, NULL, NULL, 0) != GOV_OK ||
        !json_is_object(doc)) {
        err = stored_fail(out, "the signed payload is not a JSON object");
        goto out;
    }
    if (gov_canon_serialize(doc, GOV_CANON_JCS, &canon, &canon_len, NULL, NULL, 0) != GOV_OK ||
        canon_len != payload_len || memcmp(canon, payload, payload_len) != 0) {
        err = stored_fail(out, "the signed payload is not in its canonical form");
        goto out;
    }
    const char *ty = json_string_value(json_object_get(doc, "type"));
    const char *got = json_string_value(json_object_get(doc, id_field));
    if (ty == NULL || type == NULL || strcmp(ty, type) != 0 || got == NULL || id == NULL ||
        strcmp(got, id) != 0) {
        err = stored_fail(out, "the signed payload is about another kind or another object");
        goto out;
    }
    *content = doc;
    doc = NULL;
    err = GOV_OK;
out:
    gov_free(canon);
    json_decref(doc);
    json_decref(sigs);
    return err;
}
