/* gov_jwt.c - EdDSA access tokens: issue and verify, no I/O.
 *
 * What: the token format of docs/contracts.md ("JWT"): a compact JWS whose
 * header is {"alg":"EdDSA","kid":...,"typ":"JWT"} and whose payload is the
 * claims object, and the one verifier every edge runs.
 *
 * How: issuing writes the header and the claims byte for byte (members in
 * RFC 8785 order, strings escaped as JCS does, integers in decimal), so the
 * payload is its own canonical form and equal claims give equal tokens; the
 * signature comes from the caller's callback, so no private key is ever in
 * this module.  Verifying splits the token without copying, decodes each
 * part with the strict gov_b64url (one spelling per token), parses the
 * header with gov_canon_parse (duplicates refused), checks the header
 * against the pinned configuration, asks the caller's lookup for the key,
 * verifies the signature with OpenSSL, and only then parses and checks the
 * claims.  The rules and their order are in gov_jwt.h; the first that fails
 * names the reason.
 *
 * What it does not do: fetch keys or JWKS, read a clock, draw a jti, know
 * about revocation (the caller looks the jti up) or any algorithm but
 * Ed25519; unknown claims are ignored, unknown header members refused.
 */
#include "gov_jwt.h"

#include <jansson.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_b64url.h"
#include "gov_canon.h"
#include "gov_json.h"
#include "gov_signer.h"
#include "gov_util.h"

static const char header_prefix[] = "{\"alg\":\"EdDSA\",\"kid\":";
static const char header_suffix[] = ",\"typ\":\"JWT\"}";

/* --- shared checks ---------------------------------------------------------- */

/* 1 when s is RFC 6749 §3.3 scope: scope-tokens of %x21 / %x23-5B / %x5D-7E
 * separated by single spaces, no leading or trailing space; "" is none. */
static int scope_valid(const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ') {
            if (i == 0 || i + 1 == n || s[i + 1] == ' ')
                return 0;
        } else if (c < 0x21 || c > 0x7E || c == '"' || c == '\\') {
            return 0;
        }
    }
    return 1;
}

/* 1 when s is 1..max bytes of lowercase hex. */
static int hex_valid(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* 1 when s is 1..GOV_JWT_KID_MAX bytes of printable ASCII. */
static int kid_valid(const char *s) {
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > GOV_JWT_KID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7E)
            return 0;
    return 1;
}

/* The rules both issuing and verifying hold the claims to: the name of the
 * first claim that breaks one (static), or NULL.  Strings are within their
 * fields by construction of the struct (a missing NUL is caught by the
 * bounded strnlen).  O(size of the claims). */
static const char *claims_invalid(const gov_jwt_claims_t *c) {
    static const struct {
        const char *name;
        size_t off, cap;
        int required;
    } strings[] = {
        {"iss", offsetof(gov_jwt_claims_t, iss), GOV_JWT_ISS_MAX, 1},
        {"sub", offsetof(gov_jwt_claims_t, sub), GOV_JWT_SUB_MAX, 1},
        {"aud", offsetof(gov_jwt_claims_t, aud), GOV_JWT_AUD_MAX, 1},
        {"jti", offsetof(gov_jwt_claims_t, jti), GOV_JWT_JTI_MAX, 1},
        {"tenant", offsetof(gov_jwt_claims_t, tenant), GOV_JWT_TENANT_MAX, 1},
        {"scope", offsetof(gov_jwt_claims_t, scope), GOV_JWT_SCOPE_MAX, 0},
        {"constitution_hash", offsetof(gov_jwt_claims_t, constitution_hash), GOV_JWT_HASH_MAX, 1},
        {"client_id", offsetof(gov_jwt_claims_t, client_id), GOV_JWT_CLIENT_ID_MAX, 0},
        {"parent_jti", offsetof(gov_jwt_claims_t, parent_jti), GOV_JWT_JTI_MAX, 0},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        const char *s = (const char *)c + strings[i].off;
        size_t n = strnlen(s, strings[i].cap + 1);
        if (n > strings[i].cap || (strings[i].required && n == 0) || !gov_utf8_valid(s, n))
            return strings[i].name;
    }
    if (!gov_tenant_valid(c->tenant, strlen(c->tenant)))
        return "tenant";
    if (!scope_valid(c->scope))
        return "scope";
    if (!hex_valid(c->constitution_hash, GOV_JWT_HASH_MAX))
        return "constitution_hash";
    if (c->iat < 0 || c->iat > GOV_JWT_TIME_MAX)
        return "iat";
    if (c->nbf < c->iat || c->nbf > GOV_JWT_TIME_MAX)
        return "nbf";
    if (c->exp <= c->nbf || c->exp > GOV_JWT_TIME_MAX)
        return "exp";
    return NULL;
}

/* --- issuing ----------------------------------------------------------------- */

gov_err_t gov_jws_sign_compact(const void *header, size_t header_len, const void *payload,
                               size_t payload_len, gov_jwt_sign_fn sign, void *sign_ctx,
                               gov_buf_t *out_token, char *errbuf, size_t errbuf_size) {
    if ((header == NULL && header_len > 0) || (payload == NULL && payload_len > 0) ||
        sign == NULL || out_token == NULL) {
        gov_errbuf(errbuf, errbuf_size, "invalid argument");
        return GOV_ERR_INVALID_ARG;
    }
    if (out_token->err != GOV_OK) {
        gov_errbuf(errbuf, errbuf_size, "the output buffer has failed before");
        return out_token->err;
    }
    size_t start = out_token->len;
    uint8_t sig[64];
    gov_b64url_put(out_token, header, header_len);
    gov_buf_putc(out_token, '.');
    gov_b64url_put(out_token, payload, payload_len);
    gov_err_t rc = out_token->err;
    if (rc != GOV_OK) {
        gov_errbuf(errbuf, errbuf_size, "token does not fit: %s", gov_err_str(rc));
        goto out;
    }
    rc = sign(sign_ctx, (const uint8_t *)out_token->data + start, out_token->len - start, sig,
              errbuf, errbuf_size);
    if (rc != GOV_OK)
        goto out;
    gov_buf_putc(out_token, '.');
    gov_b64url_put(out_token, sig, sizeof sig);
    rc = out_token->err;
    if (rc != GOV_OK)
        gov_errbuf(errbuf, errbuf_size, "token does not fit: %s", gov_err_str(rc));
out:
    if (rc != GOV_OK) {
        /* leave the buffer as it was, error included, so a retry can append */
        out_token->len = start;
        out_token->err = GOV_OK;
        if (out_token->data != NULL)
            out_token->data[start] = '\0';
    }
    return rc;
}

/* Appends "name":"value" (value escaped as JCS does) and a comma unless last. */
static void put_string_member(gov_buf_t *b, const char *name, const char *value, int last) {
    gov_buf_put_json_string(b, name, strlen(name));
    gov_buf_putc(b, ':');
    gov_buf_put_json_string(b, value, strlen(value));
    if (!last)
        gov_buf_putc(b, ',');
}

static void put_int_member(gov_buf_t *b, const char *name, int64_t value) {
    gov_buf_put_json_string(b, name, strlen(name));
    gov_buf_putc(b, ':');
    gov_buf_put_i64(b, value);
    gov_buf_putc(b, ',');
}

gov_err_t gov_jwt_sign(const gov_jwt_claims_t *c, const char *kid, gov_jwt_sign_fn sign,
                       void *sign_ctx, gov_buf_t *out_token, char *errbuf, size_t errbuf_size) {
    gov_buf_t header, payload;
    gov_buf_init(&header, 0);
    gov_buf_init(&payload, 0);
    gov_err_t rc = GOV_ERR_INVALID_ARG;
    if (c == NULL || sign == NULL || out_token == NULL) {
        gov_errbuf(errbuf, errbuf_size, "invalid argument");
        goto out;
    }
    if (!kid_valid(kid)) {
        gov_errbuf(errbuf, errbuf_size, "kid is not 1..%d bytes of printable ASCII",
                   GOV_JWT_KID_MAX);
        goto out;
    }
    const char *bad = claims_invalid(c);
    if (bad != NULL) {
        gov_errbuf(errbuf, errbuf_size, "claim %s is missing or out of its bounds", bad);
        goto out;
    }
    gov_buf_put(&header, header_prefix, sizeof header_prefix - 1);
    gov_buf_put_json_string(&header, kid, strlen(kid));
    gov_buf_put(&header, header_suffix, sizeof header_suffix - 1);
    /* members in RFC 8785 order (UTF-16 code units of the names) */
    gov_buf_putc(&payload, '{');
    put_string_member(&payload, "aud", c->aud, 0);
    if (c->client_id[0] != '\0')
        put_string_member(&payload, "client_id", c->client_id, 0);
    put_string_member(&payload, "constitution_hash", c->constitution_hash, 0);
    put_int_member(&payload, "exp", c->exp);
    put_int_member(&payload, "iat", c->iat);
    put_string_member(&payload, "iss", c->iss, 0);
    put_string_member(&payload, "jti", c->jti, 0);
    put_int_member(&payload, "nbf", c->nbf);
    if (c->parent_jti[0] != '\0')
        put_string_member(&payload, "parent_jti", c->parent_jti, 0);
    put_string_member(&payload, "scope", c->scope, 0);
    put_string_member(&payload, "sub", c->sub, 0);
    put_string_member(&payload, "tenant", c->tenant, 1);
    gov_buf_putc(&payload, '}');
    rc = header.err != GOV_OK ? header.err : payload.err;
    if (rc != GOV_OK) {
        gov_errbuf(errbuf, errbuf_size, "building the token: %s", gov_err_str(rc));
        goto out;
    }
    rc = gov_jws_sign_compact(header.data, header.len, payload.data, payload.len, sign, sign_ctx,
                              out_token, errbuf, errbuf_size);
out:
    gov_buf_free(&header);
    gov_buf_free(&payload);
    return rc;
}

/* --- verifying --------------------------------------------------------------- */

/* A compact JWS taken apart: views into the token, the decoded parts. */
typedef struct jws {
    const char *part[3];
    size_t part_len[3];
    json_t *header;   /* owned */
    char *payload;    /* owned, NUL-terminated (the payload may hold NULs itself) */
    size_t payload_len;
    uint8_t sig[64];
} jws_t;

static void jws_release(jws_t *j) {
    json_decref(j->header);
    gov_free(j->payload);
    memset(j, 0, sizeof *j);
}

/* Decodes one part into a new allocation (*out, NUL-terminated). */
static gov_err_t decode_part(const char *s, size_t n, const char *name, char **out,
                             size_t *out_len, gov_reason_t *why, char *errbuf,
                             size_t errbuf_size) {
    char detail[128];
    size_t cap = gov_b64url_decoded_len(n);
    *out = gov_malloc(cap + 1);
    if (*out == NULL)
        return gov_reason_fail(why, GOV_REASON_NOMEM, GOV_ERR_NOMEM, errbuf, errbuf_size,
                               "out of memory decoding the %s", name);
    gov_err_t rc = gov_b64url_decode(s, n, (uint8_t *)*out, cap, out_len, detail, sizeof detail);
    if (rc == GOV_OK) {
        (*out)[*out_len] = '\0';
        return GOV_OK;
    }
    gov_free(*out);
    *out = NULL;
    return gov_reason_fail(why,
                           rc == GOV_ERR_UNSUPPORTED ? GOV_REASON_TOKEN_NONCANONICAL
                                                     : GOV_REASON_TOKEN_MALFORMED,
                           GOV_ERR_VERIFY, errbuf, errbuf_size, "%s: %s", name, detail);
}

/* Parses text[0..len) as a JSON object into *out (new reference). */
static gov_err_t parse_object(const char *text, size_t len, const char *name, json_t **out,
                              gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    char detail[160];
    gov_reason_t r = GOV_REASON_NONE;
    gov_err_t rc = gov_canon_parse(text, len, out, &r, detail, sizeof detail);
    if (rc == GOV_ERR_NOMEM)
        return gov_reason_fail(why, GOV_REASON_NOMEM, rc, errbuf, errbuf_size,
                               "out of memory parsing the %s", name);
    if (rc != GOV_OK)
        return gov_reason_fail(why,
                               r == GOV_REASON_DUPLICATE_KEY ? GOV_REASON_TOKEN_DUPLICATE_CLAIM
                                                             : GOV_REASON_TOKEN_MALFORMED,
                               GOV_ERR_VERIFY, errbuf, errbuf_size, "%s: %s", name, detail);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return gov_reason_fail(why, GOV_REASON_TOKEN_MALFORMED, GOV_ERR_VERIFY, errbuf,
                               errbuf_size, "the %s is not a JSON object", name);
    }
    return GOV_OK;
}

/* Rules 1-9 of gov_jwt_verify: on GOV_OK *j holds the parts, the parsed
 * header and the decoded payload and signature (jws_release). */
static gov_err_t jws_open(const char *token, size_t len, size_t max, const char *alg, jws_t *j,
                          gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    gov_err_t rc;
    memset(j, 0, sizeof *j);
    if (len > max)
        return gov_reason_fail(why, GOV_REASON_TOKEN_TOO_LARGE, GOV_ERR_VERIFY, errbuf,
                               errbuf_size, "token of %zu bytes, limit %zu", len, max);
    if (len > 0 && token[0] == '{')
        return gov_reason_fail(why, GOV_REASON_TOKEN_UNSUPPORTED_SERIALIZATION, GOV_ERR_VERIFY,
                               errbuf, errbuf_size,
                               "a JWS JSON serialization; only the compact one is taken");
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && token[i] != '.')
            continue;
        if (k == 3)
            return gov_reason_fail(why, GOV_REASON_TOKEN_MALFORMED, GOV_ERR_VERIFY, errbuf,
                                   errbuf_size, "more than three parts");
        j->part[k] = token + start;
        j->part_len[k++] = i - start;
        start = i + 1;
    }
    if (k != 3 || j->part_len[0] == 0)
        return gov_reason_fail(why, GOV_REASON_TOKEN_MALFORMED, GOV_ERR_VERIFY, errbuf,
                               errbuf_size, k != 3 ? "fewer than three parts"
                                                   : "the header part is empty");
    /* every part's spelling first, so a re-spelled part is named as such */
    char *header_text = NULL;
    size_t header_len = 0, sig_len = 0;
    if ((rc = decode_part(j->part[0], j->part_len[0], "header", &header_text, &header_len, why,
                          errbuf, errbuf_size)) != GOV_OK ||
        (rc = decode_part(j->part[1], j->part_len[1], "payload", &j->payload, &j->payload_len,
                          why, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    char detail[128];
    rc = gov_b64url_decode(j->part[2], j->part_len[2], j->sig, sizeof j->sig, &sig_len, detail,
                           sizeof detail);
    if (rc == GOV_ERR_PARSE || rc == GOV_ERR_UNSUPPORTED) {
        rc = gov_reason_fail(why,
                             rc == GOV_ERR_UNSUPPORTED ? GOV_REASON_TOKEN_NONCANONICAL
                                                       : GOV_REASON_TOKEN_MALFORMED,
                             GOV_ERR_VERIFY, errbuf, errbuf_size, "signature: %s", detail);
        goto out;
    }
    /* GOV_ERR_TOO_LARGE: longer than 64 bytes, rule 9 */
    if ((rc = parse_object(header_text, header_len, "header", &j->header, why, errbuf,
                           errbuf_size)) != GOV_OK)
        goto out;
    rc = GOV_ERR_VERIFY;
    if (json_object_get(j->header, "crit") != NULL) {
        gov_reason_fail(why, GOV_REASON_TOKEN_CRIT_HEADER, rc, errbuf, errbuf_size,
                        "the header carries crit");
        goto out;
    }
    json_t *a = json_object_get(j->header, "alg");
    if (!json_is_string(a) || strcmp(json_string_value(a), alg) != 0 ||
        json_string_length(a) != strlen(alg)) {
        char shown[64];
        gov_utf8_shorten(shown, sizeof shown, json_is_string(a) ? json_string_value(a) : "(none)",
                         32);
        gov_reason_fail(why, GOV_REASON_TOKEN_ALG_NOT_ALLOWED, rc, errbuf, errbuf_size,
                        "alg %s is not the configured %s", shown, alg);
        goto out;
    }
    if (json_object_get(j->header, "cty") != NULL) {
        gov_reason_fail(why, GOV_REASON_TOKEN_UNSUPPORTED_SERIALIZATION, rc, errbuf, errbuf_size,
                        "the header carries cty (a nested JWT)");
        goto out;
    }
    static const char *const allowed[] = {"alg", "kid", "typ", NULL};
    const char *unknown = gov_json_unknown_member(j->header, allowed);
    json_t *typ = json_object_get(j->header, "typ");
    if (unknown != NULL || (typ != NULL && (!json_is_string(typ) ||
                                            strcmp(json_string_value(typ), "JWT") != 0 ||
                                            json_string_length(typ) != 3))) {
        char shown[64];
        gov_utf8_shorten(shown, sizeof shown, unknown != NULL ? unknown : "typ", 32);
        gov_reason_fail(why, GOV_REASON_TOKEN_HEADER_INVALID, rc, errbuf, errbuf_size,
                        unknown != NULL ? "header member %s is not taken"
                                        : "header %s is not \"JWT\"",
                        shown);
        goto out;
    }
    if (j->part_len[1] == 0 || sig_len != sizeof j->sig) {
        gov_reason_fail(why, GOV_REASON_TOKEN_MALFORMED, rc, errbuf, errbuf_size,
                        j->part_len[1] == 0 ? "the payload part is empty"
                                            : "the signature is not 64 bytes");
        goto out;
    }
    rc = GOV_OK;
out:
    gov_free(header_text);
    if (rc != GOV_OK)
        jws_release(j);
    return rc;
}

/* Rule 12 over the signing input header.payload as it appears in the token. */
static gov_err_t jws_check_signature(const jws_t *j, const uint8_t pub[32], gov_reason_t *why,
                                     char *errbuf, size_t errbuf_size) {
    size_t input_len = j->part_len[0] + 1 + j->part_len[1];
    int ok = gov_signer_verify(pub, (const uint8_t *)j->part[0], input_len, j->sig);
    if (ok < 0)
        return gov_reason_fail(why, GOV_REASON_CRYPTO, GOV_ERR_CRYPTO, errbuf, errbuf_size,
                               "Ed25519 verification could not run");
    if (ok == 0)
        return gov_reason_fail(why, GOV_REASON_TOKEN_BAD_SIGNATURE, GOV_ERR_VERIFY, errbuf,
                               errbuf_size, "the signature does not verify");
    return GOV_OK;
}

gov_err_t gov_jws_verify_compact(const char *token, size_t len, const uint8_t pub[32],
                                 gov_buf_t *payload_out, gov_reason_t *why, char *errbuf,
                                 size_t errbuf_size) {
    jws_t j;
    if (why != NULL)
        *why = GOV_REASON_NONE;
    if ((token == NULL && len > 0) || pub == NULL)
        return gov_reason_fail(why, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "invalid argument");
    gov_err_t rc = jws_open(token, len, GOV_JWT_MAX_TOKEN_LIMIT, GOV_JWT_ALG_EDDSA, &j, why,
                            errbuf, errbuf_size);
    if (rc != GOV_OK)
        return rc;
    rc = jws_check_signature(&j, pub, why, errbuf, errbuf_size);
    if (rc == GOV_OK && payload_out != NULL) {
        gov_buf_put(payload_out, j.payload, j.payload_len);
        if ((rc = payload_out->err) != GOV_OK)
            gov_reason_fail(why, GOV_REASON_NOMEM, rc, errbuf, errbuf_size,
                            "the payload does not fit the buffer");
    }
    jws_release(&j);
    return rc;
}

/* Rule 13: 1 when the payload has the shape of a compact JWS (three runs of
 * base64url characters split by two dots), i.e. a nested token. */
static int looks_like_compact_jws(const char *s, size_t n) {
    size_t dots = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.')
            dots++;
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_'))
            return 0;
    }
    return dots == 2;
}

/* Copies the string member name of obj into dst[0..cap]: 0 when it is
 * absent (dst "") or a string of at most cap bytes without NUL, else -1. */
static int claim_string(const json_t *obj, const char *name, char *dst, size_t cap) {
    const json_t *v = json_object_get(obj, name);
    dst[0] = '\0';
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return -1;
    size_t n = json_string_length(v);
    if (n > cap || memchr(json_string_value(v), '\0', n) != NULL)
        return -1;
    memcpy(dst, json_string_value(v), n + 1);
    return 0;
}

/* A NumericDate claim: an integer in 0..GOV_JWT_TIME_MAX.  0 or -1. */
static int claim_time(const json_t *obj, const char *name, int64_t *out) {
    const json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > GOV_JWT_TIME_MAX)
        return -1;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* Rule 15: reads the claims of payload into *c; the failing claim's name
 * (static) or NULL. */
static const char *claims_read(const json_t *payload, gov_jwt_claims_t *c) {
    const struct {
        const char *name;
        char *dst;
        size_t cap;
    } strings[] = {
        {"iss", c->iss, GOV_JWT_ISS_MAX},
        {"sub", c->sub, GOV_JWT_SUB_MAX},
        {"jti", c->jti, GOV_JWT_JTI_MAX},
        {"tenant", c->tenant, GOV_JWT_TENANT_MAX},
        {"scope", c->scope, GOV_JWT_SCOPE_MAX},
        {"constitution_hash", c->constitution_hash, GOV_JWT_HASH_MAX},
        {"client_id", c->client_id, GOV_JWT_CLIENT_ID_MAX},
        {"parent_jti", c->parent_jti, GOV_JWT_JTI_MAX},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (claim_string(payload, strings[i].name, strings[i].dst, strings[i].cap) != 0)
            return strings[i].name;
    /* present but empty would read back as absent: refuse the ambiguity */
    const char *optional[] = {"client_id", "parent_jti"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(payload, optional[i]);
        if (v != NULL && json_string_length(v) == 0)
            return optional[i];
    }
    /* scope is required even though it may be empty */
    if (json_object_get(payload, "scope") == NULL)
        return "scope";
    if (claim_time(payload, "exp", &c->exp) != 0)
        return "exp";
    if (claim_time(payload, "nbf", &c->nbf) != 0)
        return "nbf";
    if (claim_time(payload, "iat", &c->iat) != 0)
        return "iat";
    const json_t *aud = json_object_get(payload, "aud");
    if (json_is_string(aud)) {
        if (claim_string(payload, "aud", c->aud, GOV_JWT_AUD_MAX) != 0)
            return "aud";
    } else if (json_is_array(aud)) {
        size_t n = json_array_size(aud);
        if (n == 0 || n > GOV_JWT_AUD_ARRAY_MAX)
            return "aud";
        for (size_t i = 0; i < n; i++)
            if (!json_is_string(json_array_get(aud, i)))
                return "aud";
        /* which entry counts is rule 17's; a placeholder passes the checks */
        memcpy(c->aud, "[]", 3);
    } else {
        return "aud";
    }
    return claims_invalid(c);
}

/* Rule 17: 1 when aud (a string or an array of strings) names want. */
static int audience_matches(const json_t *aud, const char *want) {
    size_t wn = strlen(want);
    if (json_is_string(aud))
        return json_string_length(aud) == wn && memcmp(json_string_value(aud), want, wn) == 0;
    for (size_t i = 0; i < json_array_size(aud); i++) {
        const json_t *e = json_array_get(aud, i);
        if (json_string_length(e) == wn && memcmp(json_string_value(e), want, wn) == 0)
            return 1;
    }
    return 0;
}

static const char *verify_opts_invalid(const gov_jwt_verify_opts_t *o) {
    if (o == NULL)
        return "options";
    if (o->alg == NULL || strcmp(o->alg, GOV_JWT_ALG_EDDSA) != 0)
        return "alg (only EdDSA is implemented)";
    if (o->iss == NULL || o->iss[0] == '\0' || strlen(o->iss) > GOV_JWT_ISS_MAX)
        return "iss";
    if (o->aud == NULL || o->aud[0] == '\0' || strlen(o->aud) > GOV_JWT_AUD_MAX)
        return "aud";
    if (o->leeway_s < 0 || o->leeway_s > GOV_JWT_LEEWAY_MAX)
        return "leeway_s";
    if (o->max_token_bytes > GOV_JWT_MAX_TOKEN_LIMIT)
        return "max_token_bytes";
    if (o->max_lifetime_s < 0 || o->max_lifetime_s > GOV_JWT_TIME_MAX)
        return "max_lifetime_s";
    if (o->lookup == NULL)
        return "lookup";
    return NULL;
}

gov_err_t gov_jwt_verify(const char *token, size_t len, const gov_jwt_verify_opts_t *o,
                         int64_t now_s, gov_jwt_claims_t *out, gov_reason_t *why,
                         char *errbuf, size_t errbuf_size) {
    gov_jwt_claims_t c;
    jws_t j;
    json_t *payload = NULL;
    gov_jwt_key_t key;
    gov_err_t rc;
    memset(&c, 0, sizeof c);
    memset(&j, 0, sizeof j);
    memset(&key, 0, sizeof key);
    if (why != NULL)
        *why = GOV_REASON_NONE;
    if (out != NULL)
        memset(out, 0, sizeof *out);
    const char *bad_opt = verify_opts_invalid(o);
    if (bad_opt == NULL && (now_s < 0 || now_s > GOV_JWT_TIME_MAX))
        bad_opt = "now_s";
    if (bad_opt != NULL || (token == NULL && len > 0))
        return gov_reason_fail(why, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "invalid argument: %s",
                               bad_opt != NULL ? bad_opt : "token");
    size_t max = o->max_token_bytes != 0 ? o->max_token_bytes : GOV_JWT_MAX_TOKEN_DEFAULT;
    if ((rc = jws_open(token, len, max, o->alg, &j, why, errbuf, errbuf_size)) != GOV_OK)
        return rc;

    /* rules 10-12: the key, then the signature */
    rc = GOV_ERR_VERIFY;
    const json_t *kid = json_object_get(j.header, "kid");
    if (!json_is_string(kid) || json_string_length(kid) == 0 ||
        json_string_length(kid) > GOV_JWT_KID_MAX ||
        strlen(json_string_value(kid)) != json_string_length(kid)) {
        gov_reason_fail(why, GOV_REASON_TOKEN_UNKNOWN_KID, rc, errbuf, errbuf_size,
                        "the header names no usable kid");
        goto out;
    }
    char shown[80];
    gov_utf8_shorten(shown, sizeof shown, json_string_value(kid), 64);
    rc = o->lookup(o->lookup_ctx, json_string_value(kid), &key);
    if (rc == GOV_ERR_NOT_FOUND) {
        rc = gov_reason_fail(why, GOV_REASON_TOKEN_UNKNOWN_KID, GOV_ERR_VERIFY, errbuf,
                             errbuf_size, "kid %s is not in the key set", shown);
        goto out;
    }
    if (rc != GOV_OK) {
        gov_errbuf(errbuf, errbuf_size, "key lookup for kid %s failed: %s", shown,
                   gov_err_str(rc));
        goto out;
    }
    if (key.active_from < 0 || key.active_from > GOV_JWT_TIME_MAX || key.retired_at < 0 ||
        key.retired_at > GOV_JWT_TIME_MAX) {
        rc = gov_reason_fail(why, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                             errbuf_size, "key lookup for kid %s answered times out of range",
                             shown);
        goto out;
    }
    rc = GOV_ERR_VERIFY;
    if (key.retired || (key.retired_at != 0 && now_s >= key.retired_at)) {
        gov_reason_fail(why, GOV_REASON_TOKEN_KEY_RETIRED, rc, errbuf, errbuf_size,
                        "key %s is retired", shown);
        goto out;
    }
    if ((rc = jws_check_signature(&j, key.pub, why, errbuf, errbuf_size)) != GOV_OK)
        goto out;

    /* rules 13-15: the payload, now that it is authentic */
    rc = GOV_ERR_VERIFY;
    if (looks_like_compact_jws(j.payload, j.payload_len)) {
        gov_reason_fail(why, GOV_REASON_TOKEN_UNSUPPORTED_SERIALIZATION, rc, errbuf, errbuf_size,
                        "the payload is itself a compact JWS (a nested JWT)");
        goto out;
    }
    if ((rc = parse_object(j.payload, j.payload_len, "payload", &payload, why, errbuf,
                           errbuf_size)) != GOV_OK)
        goto out;
    rc = GOV_ERR_VERIFY;
    const char *bad = claims_read(payload, &c);
    if (bad != NULL) {
        gov_reason_fail(why, GOV_REASON_TOKEN_INVALID_CLAIM, rc, errbuf, errbuf_size,
                        "claim %s is missing, of the wrong type or out of its bounds", bad);
        goto out;
    }

    /* rules 16-21: what the claims say, against the configuration and now */
    if (strcmp(c.iss, o->iss) != 0) {
        gov_utf8_shorten(shown, sizeof shown, c.iss, 64);
        gov_reason_fail(why, GOV_REASON_TOKEN_WRONG_ISSUER, rc, errbuf, errbuf_size,
                        "iss %s is not the configured issuer", shown);
        goto out;
    }
    if (!audience_matches(json_object_get(payload, "aud"), o->aud)) {
        gov_reason_fail(why, GOV_REASON_TOKEN_WRONG_AUDIENCE, rc, errbuf, errbuf_size,
                        "aud does not name %s", o->aud);
        goto out;
    }
    memcpy(c.aud, o->aud, strlen(o->aud) + 1);
    if (now_s >= c.exp + o->leeway_s) {
        gov_reason_fail(why, GOV_REASON_TOKEN_EXPIRED, rc, errbuf, errbuf_size,
                        "expired at %lld (leeway %llds), now %lld", (long long)c.exp,
                        (long long)o->leeway_s, (long long)now_s);
        goto out;
    }
    if (now_s < c.nbf - o->leeway_s || now_s < c.iat - o->leeway_s) {
        gov_reason_fail(why, GOV_REASON_TOKEN_NOT_YET_VALID, rc, errbuf, errbuf_size,
                        "valid from %lld, issued at %lld (leeway %llds), now %lld",
                        (long long)c.nbf, (long long)c.iat, (long long)o->leeway_s,
                        (long long)now_s);
        goto out;
    }
    if (key.active_from != 0 && c.iat < key.active_from - o->leeway_s) {
        gov_reason_fail(why, GOV_REASON_TOKEN_KEY_NOT_ACTIVE, rc, errbuf, errbuf_size,
                        "issued at %lld, key active from %lld", (long long)c.iat,
                        (long long)key.active_from);
        goto out;
    }
    if (o->max_lifetime_s != 0 && c.exp - c.iat > o->max_lifetime_s) {
        gov_reason_fail(why, GOV_REASON_TOKEN_LIFETIME_TOO_LONG, rc, errbuf, errbuf_size,
                        "lifetime %llds, limit %llds", (long long)(c.exp - c.iat),
                        (long long)o->max_lifetime_s);
        goto out;
    }
    rc = GOV_OK;
    if (out != NULL)
        *out = c;
out:
    json_decref(payload);
    jws_release(&j);
    return rc;
}

gov_err_t gov_jwt_check_constitution(const gov_jwt_claims_t *c, const char *current_hash,
                                     const gov_jwt_grace_t *grace, size_t n, int64_t now_s,
                                     gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    if (why != NULL)
        *why = GOV_REASON_NONE;
    if (c == NULL || (grace == NULL && n > 0))
        return gov_reason_fail(why, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "invalid argument");
    /* No verified constitution accepts nothing, not even a hash in its
     * grace window: a tenant whose constitution stopped verifying (or was
     * removed) must not keep honouring the one before it. */
    if (current_hash != NULL && strcmp(c->constitution_hash, current_hash) == 0)
        return GOV_OK;
    for (size_t i = 0; current_hash != NULL && i < n; i++)
        if (grace[i].hash != NULL && now_s < grace[i].until_s &&
            strcmp(c->constitution_hash, grace[i].hash) == 0)
            return GOV_OK;
    char shown[80];
    gov_utf8_shorten(shown, sizeof shown, c->constitution_hash, 64);
    return gov_reason_fail(why, GOV_REASON_TOKEN_CONSTITUTION_STALE, GOV_ERR_VERIFY, errbuf,
                           errbuf_size,
                           current_hash == NULL
                               ? "the tenant has no verified constitution"
                               : "constitution_hash %s is neither current nor in the grace window",
                           shown);
}
