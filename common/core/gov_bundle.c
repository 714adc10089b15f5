/* gov_bundle.c - bundle shape, raw document span, ConstitutionBundle event.
 * See gov_bundle.h.  (The sync schedule is gov_backoff_periodic_ms.)
 *
 * How the span scanner works: one forward pass over the bytes with an
 * explicit stack of open containers (one byte each, GOV_BUNDLE_MAX_DEPTH
 * deep), so hostile nesting costs neither recursion nor memory.  Strings are
 * walked escape by escape; a member name of the top-level object is decoded
 * on the fly (escapes to UTF-8) and compared with the wanted name, so the
 * scanner and jansson agree on which member is "document".  The scan goes on
 * to the end of the text after the member is found: a second member of that
 * name, or anything after the object, is an error, never a silent choice.
 *
 * gov_bundle_parse runs jansson first (with duplicate keys refused) for the
 * values, then the scanner for the document's bytes.  Both accept only
 * well-formed JSON, so where jansson accepts a body the scanner finds the
 * same "document" (the fuzz target checks exactly that).
 *
 * What it does not do: checksum or signature verification (gov_constitution).
 */
#include "gov_bundle.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gov_util.h"

/* --- the raw span scanner ------------------------------------------------ */

typedef struct scan {
    const unsigned char *base, *p, *end;
    char *errbuf;
    size_t errbuf_size;
} scan_t;

static gov_err_t scan_fail(scan_t *s, gov_err_t err, const char *what) {
    gov_errbuf(s->errbuf, s->errbuf_size, "%s at byte %zu", what, (size_t)(s->p - s->base));
    return err;
}

static void skip_ws(scan_t *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static size_t utf8_encode(unsigned cp, unsigned char out[4]) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reads one escape sequence at s->p (the backslash) into the code point *cp,
 * joining a surrogate pair.  Lone surrogates are refused, as jansson does. */
static gov_err_t scan_escape(scan_t *s, unsigned *cp) {
    if (s->end - s->p < 2)
        return scan_fail(s, GOV_ERR_PARSE, "unterminated escape");
    switch (s->p[1]) {
    case '"': *cp = '"'; break;
    case '\\': *cp = '\\'; break;
    case '/': *cp = '/'; break;
    case 'b': *cp = '\b'; break;
    case 'f': *cp = '\f'; break;
    case 'n': *cp = '\n'; break;
    case 'r': *cp = '\r'; break;
    case 't': *cp = '\t'; break;
    case 'u': {
        uint32_t hi, lo;
        if (s->end - s->p < 6 || gov_hex_u16(s->p + 2, &hi) != 0)
            return scan_fail(s, GOV_ERR_PARSE, "malformed \\u escape");
        if (hi >= 0xDC00 && hi <= 0xDFFF)
            return scan_fail(s, GOV_ERR_PARSE, "lone low surrogate escape");
        if (hi >= 0xD800 && hi <= 0xDBFF) {
            if (s->end - s->p < 12 || s->p[6] != '\\' || s->p[7] != 'u' ||
                gov_hex_u16(s->p + 8, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                return scan_fail(s, GOV_ERR_PARSE, "lone high surrogate escape");
            *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            s->p += 12;
            return GOV_OK;
        }
        *cp = hi;
        s->p += 6;
        return GOV_OK;
    }
    default:
        return scan_fail(s, GOV_ERR_PARSE, "invalid escape");
    }
    s->p += 2;
    return GOV_OK;
}

/* Scans the string whose opening quote is at s->p.  When want != NULL,
 * *equal says whether its decoded value is exactly want[0..want_len). */
static gov_err_t scan_string(scan_t *s, const char *want, size_t want_len, int *equal) {
    size_t pos = 0;
    int eq = 1;
    s->p++;
    for (;;) {
        if (s->p >= s->end)
            return scan_fail(s, GOV_ERR_PARSE, "unterminated string");
        unsigned c = *s->p;
        const unsigned char *bytes = s->p;
        unsigned char enc[4];
        size_t n;
        if (c == '"') {
            s->p++;
            break;
        }
        if (c < 0x20)
            return scan_fail(s, GOV_ERR_PARSE, "control character in string");
        if (c == '\\') {
            unsigned cp;
            gov_err_t e = scan_escape(s, &cp);
            if (e != GOV_OK)
                return e;
            n = utf8_encode(cp, enc);
            bytes = enc;
        } else if (c < 0x80) {
            n = 1;
            s->p++;
        } else {
            n = gov_utf8_seq_len(s->p, (size_t)(s->end - s->p));
            if (n == 0)
                return scan_fail(s, GOV_ERR_PARSE, "invalid UTF-8 in string");
            s->p += n;
        }
        if (want != NULL && eq) {
            if (pos + n <= want_len && memcmp(want + pos, bytes, n) == 0)
                pos += n;
            else
                eq = 0;
        }
    }
    if (equal)
        *equal = eq && pos == want_len;
    return GOV_OK;
}

static int is_digit(const scan_t *s) {
    return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

static gov_err_t scan_number(scan_t *s) {
    if (*s->p == '-')
        s->p++;
    if (!is_digit(s))
        return scan_fail(s, GOV_ERR_PARSE, "malformed number");
    if (*s->p == '0')
        s->p++;
    else
        while (is_digit(s))
            s->p++;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!is_digit(s))
            return scan_fail(s, GOV_ERR_PARSE, "malformed number fraction");
        while (is_digit(s))
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!is_digit(s))
            return scan_fail(s, GOV_ERR_PARSE, "malformed number exponent");
        while (is_digit(s))
            s->p++;
    }
    return GOV_OK;
}

static gov_err_t scan_literal(scan_t *s, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return scan_fail(s, GOV_ERR_PARSE, "invalid literal");
    s->p += n;
    return GOV_OK;
}

/* Skips one member name and its colon inside a nested object. */
static gov_err_t scan_member_name(scan_t *s) {
    skip_ws(s);
    if (s->p >= s->end || *s->p != '"')
        return scan_fail(s, GOV_ERR_PARSE, "expected a member name");
    gov_err_t e = scan_string(s, NULL, 0, NULL);
    if (e != GOV_OK)
        return e;
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':')
        return scan_fail(s, GOV_ERR_PARSE, "expected ':'");
    s->p++;
    return GOV_OK;
}

/* Skips one value starting at s->p (whitespace already skipped), which sits
 * at nesting depth `depth` (its enclosing containers).  Iterative: the open
 * containers are kept in a byte stack, bounded by GOV_BUNDLE_MAX_DEPTH. */
static gov_err_t skip_value(scan_t *s, unsigned depth) {
    unsigned char stack[GOV_BUNDLE_MAX_DEPTH];
    unsigned top = 0; /* containers opened by this call */
    gov_err_t e;
    for (;;) {
        /* at the start of a value */
        skip_ws(s);
        if (s->p >= s->end)
            return scan_fail(s, GOV_ERR_PARSE, "expected a value");
        unsigned char c = *s->p;
        if (c == '{' || c == '[') {
            if (depth + top + 1 > GOV_BUNDLE_MAX_DEPTH)
                return scan_fail(s, GOV_ERR_TOO_LARGE, "nesting deeper than the limit");
            stack[top++] = c;
            s->p++;
            skip_ws(s);
            if (s->p < s->end && *s->p == (c == '{' ? '}' : ']')) {
                s->p++;
                top--;
            } else {
                if (c == '{' && (e = scan_member_name(s)) != GOV_OK)
                    return e;
                continue; /* the first element or member value */
            }
        } else if (c == '"') {
            if ((e = scan_string(s, NULL, 0, NULL)) != GOV_OK)
                return e;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if ((e = scan_number(s)) != GOV_OK)
                return e;
        } else if (c == 't') {
            if ((e = scan_literal(s, "true")) != GOV_OK)
                return e;
        } else if (c == 'f') {
            if ((e = scan_literal(s, "false")) != GOV_OK)
                return e;
        } else if (c == 'n') {
            if ((e = scan_literal(s, "null")) != GOV_OK)
                return e;
        } else {
            return scan_fail(s, GOV_ERR_PARSE, "unexpected character");
        }
        /* after a complete value: close containers or go to the next one */
        for (;;) {
            if (top == 0)
                return GOV_OK;
            skip_ws(s);
            if (s->p >= s->end)
                return scan_fail(s, GOV_ERR_PARSE, "unterminated container");
            unsigned char open = stack[top - 1];
            if (*s->p == ',') {
                s->p++;
                if (open == '{' && (e = scan_member_name(s)) != GOV_OK)
                    return e;
                break; /* next value */
            }
            if (*s->p == (open == '{' ? '}' : ']')) {
                s->p++;
                top--;
                continue;
            }
            return scan_fail(s, GOV_ERR_PARSE, open == '{' ? "expected ',' or '}'"
                                                           : "expected ',' or ']'");
        }
    }
}

gov_err_t gov_bundle_member_span(const char *text, size_t len, const char *name,
                                 size_t *off, size_t *span_len, char *errbuf,
                                 size_t errbuf_size) {
    if (text == NULL || name == NULL || off == NULL || span_len == NULL) {
        gov_errbuf(errbuf, errbuf_size, "invalid argument");
        return GOV_ERR_INVALID_ARG;
    }
    scan_t s = {(const unsigned char *)text, (const unsigned char *)text,
                (const unsigned char *)text + len, errbuf, errbuf_size};
    size_t name_len = strlen(name);
    int found = 0;
    gov_err_t e;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return scan_fail(&s, GOV_ERR_PARSE, "top-level value is not an object");
    s.p++;
    skip_ws(&s);
    if (s.p < s.end && *s.p == '}') {
        s.p++;
    } else {
        for (;;) {
            skip_ws(&s);
            if (s.p >= s.end || *s.p != '"')
                return scan_fail(&s, GOV_ERR_PARSE, "expected a member name");
            int equal = 0;
            if ((e = scan_string(&s, name, name_len, &equal)) != GOV_OK)
                return e;
            skip_ws(&s);
            if (s.p >= s.end || *s.p != ':')
                return scan_fail(&s, GOV_ERR_PARSE, "expected ':'");
            s.p++;
            skip_ws(&s);
            const unsigned char *start = s.p;
            if ((e = skip_value(&s, 1)) != GOV_OK)
                return e;
            if (equal) {
                if (found)
                    return scan_fail(&s, GOV_ERR_PARSE, "member appears twice");
                found = 1;
                *off = (size_t)(start - s.base);
                *span_len = (size_t)(s.p - start);
            }
            skip_ws(&s);
            if (s.p < s.end && *s.p == ',') {
                s.p++;
                continue;
            }
            if (s.p < s.end && *s.p == '}') {
                s.p++;
                break;
            }
            return scan_fail(&s, GOV_ERR_PARSE, "expected ',' or '}'");
        }
    }
    skip_ws(&s);
    if (s.p != s.end)
        return scan_fail(&s, GOV_ERR_PARSE, "characters after the object");
    if (!found) {
        gov_errbuf(errbuf, errbuf_size, "no member \"%s\"", name);
        return GOV_ERR_NOT_FOUND;
    }
    return GOV_OK;
}

gov_err_t gov_bundle_extract_document_span(const char *text, size_t len, size_t *off,
                                           size_t *span_len, char *errbuf,
                                           size_t errbuf_size) {
    return gov_bundle_member_span(text, len, "document", off, span_len, errbuf, errbuf_size);
}

/* --- shape --------------------------------------------------------------- */

/* A non-empty string without NUL, at most max bytes; else NULL. */
static const char *bounded_string(const json_t *v, size_t max) {
    const char *s = json_string_value(v);
    if (s == NULL)
        return NULL;
    size_t n = json_string_length(v);
    if (n == 0 || n > max || strlen(s) != n)
        return NULL;
    return s;
}

/* A shape refusal: GOV_ERR_VERIFY with the reason and the detail. */
#define shape_fail(reason, code, errbuf, errbuf_size, ...) \
    gov_reason_fail((reason), (code), GOV_ERR_VERIFY, (errbuf), (errbuf_size), __VA_ARGS__)

gov_err_t gov_bundle_check_shape(const json_t *bundle, const char *expected_tenant,
                                 gov_reason_t *reason, char *errbuf, size_t errbuf_size) {
    static const char *const fields[] = {"canonicalization", "hash_alg", "checksum"};
    static const char *const sig_fields[] = {"signer_id", "algorithm", "signature"};
    gov_reason_t reason_sink; /* where a caller that passed no reason pointer gets it */
    const gov_reason_t bad = GOV_REASON_INVALID_BUNDLE;
    if (reason == NULL)
        reason = &reason_sink;
    *reason = GOV_REASON_NONE;
    if (!json_is_object(bundle))
        return shape_fail(reason, bad, errbuf, errbuf_size, "bundle is not a JSON object");

    const char *tenant = bounded_string(json_object_get(bundle, "tenant"), GOV_TENANT_MAX);
    if (tenant == NULL || !gov_tenant_valid(tenant, strlen(tenant)))
        return shape_fail(reason, bad, errbuf, errbuf_size,
                          "member \"tenant\" is missing or not a valid tenant id");
    if (expected_tenant != NULL && strcmp(tenant, expected_tenant) != 0)
        return shape_fail(reason, GOV_REASON_TENANT_MISMATCH, errbuf, errbuf_size,
                          "bundle is for tenant \"%s\", fetched for \"%s\"", tenant,
                          expected_tenant);
    const json_t *doc = json_object_get(bundle, "document");
    if (!json_is_object(doc))
        return shape_fail(reason, bad, errbuf, errbuf_size,
                          "member \"document\" is missing or not an object");
    /* The rule gov_constitution_verify applies: a document that names a
     * tenant names this one.  Only where the tenant is known (the sync's
     * fetch); govctl passes NULL and lets verify --tenant decide. */
    const json_t *dt = json_object_get(doc, "tenant");
    if (expected_tenant != NULL && dt != NULL &&
        (!json_is_string(dt) || strcmp(json_string_value(dt), expected_tenant) != 0))
        return shape_fail(reason, GOV_REASON_TENANT_MISMATCH, errbuf, errbuf_size,
                          "document.tenant is not \"%s\", the tenant it was fetched for",
                          expected_tenant);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (bounded_string(json_object_get(bundle, fields[i]), GOV_BUNDLE_MAX_FIELD) == NULL)
            return shape_fail(reason, bad, errbuf, errbuf_size,
                              "member \"%s\" is missing or not a non-empty string of at most "
                              "%d bytes", fields[i], GOV_BUNDLE_MAX_FIELD);
    const json_t *sigs = json_object_get(bundle, "signatures");
    if (!json_is_array(sigs))
        return shape_fail(reason, bad, errbuf, errbuf_size,
                          "member \"signatures\" is missing or not an array");
    size_t nsigs = json_array_size(sigs);
    if (nsigs > GOV_BUNDLE_MAX_SIGNATURES)
        return shape_fail(reason, bad, errbuf, errbuf_size,
                          "%zu signatures, more than %d", nsigs, GOV_BUNDLE_MAX_SIGNATURES);
    for (size_t i = 0; i < nsigs; i++) {
        const json_t *sig = json_array_get(sigs, i);
        if (!json_is_object(sig))
            return shape_fail(reason, bad, errbuf, errbuf_size,
                              "signatures[%zu] is not an object", i);
        for (size_t k = 0; k < sizeof sig_fields / sizeof sig_fields[0]; k++)
            if (bounded_string(json_object_get(sig, sig_fields[k]), GOV_BUNDLE_MAX_FIELD) == NULL)
                return shape_fail(reason, bad, errbuf, errbuf_size,
                                  "signatures[%zu].%s is missing or not a non-empty string of "
                                  "at most %d bytes", i, sig_fields[k], GOV_BUNDLE_MAX_FIELD);
    }
    return GOV_OK;
}

/* --- parse ----------------------------------------------------------------- */

gov_err_t gov_bundle_parse(const char *body, size_t len, const char *expected_tenant,
                           json_t **bundle, size_t *doc_off, size_t *doc_len,
                           gov_reason_t *reason, char *errbuf, size_t errbuf_size) {
    gov_reason_t reason_sink; /* where a caller that passed no reason pointer gets it */
    gov_err_t err;
    json_error_t jerr;
    json_t *b = NULL;
    if (reason == NULL)
        reason = &reason_sink;
    *reason = GOV_REASON_INTERNAL;
    if (bundle == NULL || doc_off == NULL || doc_len == NULL || (body == NULL && len > 0)) {
        gov_errbuf(errbuf, errbuf_size, "invalid argument");
        return GOV_ERR_INVALID_ARG;
    }
    *bundle = NULL;
    memset(&jerr, 0, sizeof jerr);
    b = json_loadb(body ? body : "", len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (b == NULL) {
        /* jansson fails some allocations without setting an error at all */
        if (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0') {
            gov_errbuf(errbuf, errbuf_size, "out of memory parsing the bundle");
            return GOV_ERR_NOMEM;
        }
        *reason = GOV_REASON_INVALID_JSON;
        gov_errbuf(errbuf, errbuf_size, "not JSON: %s at byte %d", jerr.text, jerr.position);
        return GOV_ERR_PARSE;
    }
    if (!json_is_object(b)) {
        *reason = GOV_REASON_INVALID_BUNDLE;
        gov_errbuf(errbuf, errbuf_size, "bundle is not a JSON object");
        err = GOV_ERR_VERIFY;
        goto out;
    }
    if ((err = gov_bundle_check_shape(b, expected_tenant, reason, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    err = gov_bundle_extract_document_span(body, len, doc_off, doc_len, errbuf, errbuf_size);
    if (err == GOV_ERR_TOO_LARGE) {
        *reason = GOV_REASON_INVALID_BUNDLE;
        err = GOV_ERR_VERIFY;
    } else if (err != GOV_OK) {
        /* jansson took it but the strict scanner did not (jansson drops a raw
         * NUL after a number or literal): refuse rather than guess. */
        *reason = GOV_REASON_INVALID_JSON;
        err = GOV_ERR_PARSE;
    }
out:
    if (err != GOV_OK) {
        json_decref(b);
        return err;
    }
    *reason = GOV_REASON_NONE;
    *bundle = b;
    return GOV_OK;
}

/* --- event ----------------------------------------------------------------- */

gov_err_t gov_bundle_event_new(const json_t *bundle, const char *doc, size_t doc_len,
                               const char *event_id, int64_t occurred_at_us,
                               const char *source, const char *etag, json_t **event) {
    gov_err_t err = GOV_ERR_NOMEM;
    json_t *ev = NULL, *sigs = NULL;
    gov_reason_t reason;
    if (event == NULL || event_id == NULL || source == NULL || (doc == NULL && doc_len > 0))
        return GOV_ERR_INVALID_ARG;
    *event = NULL;
    if (gov_bundle_check_shape(bundle, NULL, &reason, NULL, 0) != GOV_OK ||
        !gov_utf8_valid(doc ? doc : "", doc_len))
        return GOV_ERR_INVALID_ARG;
    const json_t *in = json_object_get(bundle, "signatures");
    if ((sigs = json_array()) == NULL)
        goto out;
    for (size_t i = 0; i < json_array_size(in); i++) {
        const json_t *s = json_array_get(in, i);
        json_t *o = json_pack("{s:O, s:O, s:O}", "signer_id", json_object_get(s, "signer_id"),
                              "algorithm", json_object_get(s, "algorithm"), "signature",
                              json_object_get(s, "signature"));
        if (o == NULL || json_array_append_new(sigs, o) != 0)
            goto out;
    }
    ev = json_pack("{s:s, s:I, s:O, s:s%, s:O, s:O, s:O, s:o, s:s, s:s?}", "event_id", event_id,
                   "occurred_at", (json_int_t)occurred_at_us, "tenant",
                   json_object_get(bundle, "tenant"), "document_json", doc ? doc : "", doc_len,
                   "canonicalization", json_object_get(bundle, "canonicalization"), "hash_alg",
                   json_object_get(bundle, "hash_alg"), "checksum",
                   json_object_get(bundle, "checksum"), "signatures", sigs, "source", source,
                   "etag", etag);
    sigs = NULL; /* "o" steals it, also when packing fails */
    if (ev == NULL)
        goto out;
    *event = ev;
    err = GOV_OK;
out:
    json_decref(sigs);
    return err;
}
