/* oauth_params.c - reads the token endpoints' parameters from a form body,
 * a JSON body, or HTTP Basic credentials.
 *
 * How: one pass over the body; each known name fills one slot, refused when
 * it is filled already (RFC 6749 section 3.2: a parameter MUST NOT appear
 * twice), every value bounded, percent-decoded ('+' is a space, RFC 6749
 * appendix B), NUL-free and valid UTF-8.  Basic credentials are base64 of
 * form-urlencoded id and secret (RFC 6749 section 2.3.1), decoded by the
 * shared strict decoder (gov_b64_decode: padding required, one spelling).
 *
 * What it does not do: decide whether a client, scope or tenant is allowed
 * (tokens_api.c), or keep anything: pure, no I/O.
 */
#include "oauth_params.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gov_alloc.h"
#include "gov_b64url.h"
#include "gov_util.h"

static char **slot(oauth_params_t *p, const char *name, size_t n) {
#define SLOT(lit, field)                                                                     \
    if (n == sizeof lit - 1 && memcmp(name, lit, n) == 0)                                   \
        return &p->field;
    SLOT("grant_type", grant_type)
    SLOT("client_id", client_id)
    SLOT("client_secret", client_secret)
    SLOT("scope", scope)
    SLOT("tenant", tenant)
    SLOT("ttl", ttl)
    SLOT("expires_in", ttl)
    SLOT("token", token)
    SLOT("token_type_hint", token_type_hint)
#undef SLOT
    return NULL;
}

/* Percent-decodes s[0..n) into a new string; NULL with *bad set when the
 * escape is broken, the result holds a NUL or is not UTF-8. */
static char *form_decode(const char *s, size_t n, int *bad) {
    char *out = gov_malloc(n + 1);
    size_t k = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            unsigned char byte;
            if (n - i < 3 || gov_hex_decode(s + i + 1, 2, &byte, 1) != 0)
                goto bad;
            c = (char)byte;
            i += 2;
        }
        if (c == '\0')
            goto bad;
        out[k++] = c;
    }
    out[k] = '\0';
    if (!gov_utf8_valid(out, k))
        goto bad;
    return out;
bad:
    *bad = 1;
    gov_free(out);
    return NULL;
}

static gov_err_t fail(oauth_params_t *p, gov_reason_t *why, gov_reason_t r, gov_err_t err,
                      char *errbuf, size_t errbuf_size, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static gov_err_t fail(oauth_params_t *p, gov_reason_t *why, gov_reason_t r, gov_err_t err,
                      char *errbuf, size_t errbuf_size, const char *fmt, ...) {
    oauth_params_clear(p);
    if (why)
        *why = r;
    if (errbuf && errbuf_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errbuf_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* Stores v (stolen) in the slot of name[0..n); -1 when it is taken.  A
 * value dropped is wiped first: it may be a second client_secret. */
static int put(oauth_params_t *p, const char *name, size_t n, char *v) {
    char **s = slot(p, name, n);
    if (s == NULL || *s != NULL) {
        OPENSSL_cleanse(v, strlen(v));
        gov_free(v);
        return s == NULL ? 0 : -1;
    }
    *s = v;
    return 0;
}

static gov_err_t parse_form(const char *body, size_t len, oauth_params_t *p, gov_reason_t *why,
                            char *errbuf, size_t errbuf_size) {
    size_t i = 0;
    while (i < len) {
        const char *pair = body + i;
        const char *amp = memchr(pair, '&', len - i);
        size_t plen = amp ? (size_t)(amp - pair) : len - i;
        i += plen + 1;
        if (plen == 0)
            continue;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;
        const char *val = eq ? eq + 1 : pair + plen;
        size_t vlen = eq ? plen - klen - 1 : 0;
        if (vlen > OAUTH_PARAM_MAX * 3 || klen > 64)
            return fail(p, why, GOV_REASON_INVALID_REQUEST, GOV_ERR_INVALID_ARG, errbuf,
                        errbuf_size, "a form parameter is too long");
        int bad = 0;
        char *k = form_decode(pair, klen, &bad);
        char *v = k ? form_decode(val, vlen, &bad) : NULL;
        if (v == NULL || strlen(v) > OAUTH_PARAM_MAX) {
            gov_free(k);
            gov_free(v);
            if (!bad && v == NULL)
                return fail(p, why, GOV_REASON_OUT_OF_MEMORY, GOV_ERR_NOMEM, errbuf,
                            errbuf_size, "out of memory");
            return fail(p, why, GOV_REASON_INVALID_REQUEST, GOV_ERR_INVALID_ARG, errbuf,
                        errbuf_size, "a form parameter is not valid form-urlencoded UTF-8");
        }
        int dup = put(p, k, strlen(k), v) != 0;
        if (dup) {
            char name[65];
            snprintf(name, sizeof name, "%s", k);
            gov_free(k);
            return fail(p, why, GOV_REASON_INVALID_REQUEST, GOV_ERR_INVALID_ARG, errbuf,
                        errbuf_size, "parameter %s appears more than once", name);
        }
        gov_free(k);
    }
    return GOV_OK;
}

static gov_err_t parse_json(const char *body, size_t len, oauth_params_t *p, gov_reason_t *why,
                            char *errbuf, size_t errbuf_size) {
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        return fail(p, why, GOV_REASON_INVALID_JSON, GOV_ERR_INVALID_ARG, errbuf, errbuf_size,
                    "the body is not a JSON object");
    }
    const char *k;
    json_t *v;
    gov_err_t err = GOV_OK;
    json_object_foreach(j, k, v) {
        char **s = slot(p, k, strlen(k));
        if (s == NULL)
            continue;
        char num[32];
        const char *text = json_string_value(v);
        size_t tl = text ? json_string_length(v) : 0;
        if (text == NULL && json_is_integer(v) && s == &p->ttl) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            text = num;
            tl = strlen(num);
        }
        if (text == NULL || tl > OAUTH_PARAM_MAX || memchr(text, '\0', tl) != NULL) {
            err = fail(p, why, GOV_REASON_INVALID_REQUEST, GOV_ERR_INVALID_ARG, errbuf,
                       errbuf_size, "parameter %.64s must be a string of at most %d bytes", k,
                       OAUTH_PARAM_MAX);
            break;
        }
        if (*s != NULL) { /* ttl and expires_in both */
            err = fail(p, why, GOV_REASON_INVALID_REQUEST, GOV_ERR_INVALID_ARG, errbuf,
                       errbuf_size, "parameter %.64s appears more than once", k);
            break;
        }
        if ((*s = gov_strndup(text, tl)) == NULL) {
            err = fail(p, why, GOV_REASON_OUT_OF_MEMORY, GOV_ERR_NOMEM, errbuf, errbuf_size,
                       "out of memory");
            break;
        }
    }
    json_decref(j);
    return err;
}

/* Standard padded base64 (RFC 4648 section 4, strict: gov_b64_decode) of
 * s[0..n) into a new NUL-terminated string; NULL with *bad set when it is
 * not that or decodes to a NUL, NULL alone when out of memory. */
static char *b64_decode(const char *s, size_t n, int *bad) {
    size_t cap = gov_b64url_decoded_len(n), k = 0;
    char *out = gov_malloc(cap + 1);
    if (out == NULL)
        return NULL;
    if (n == 0 || gov_b64_decode(s, n, (uint8_t *)out, cap, &k, NULL, 0) != GOV_OK ||
        memchr(out, '\0', k) != NULL) {
        *bad = 1;
        OPENSSL_cleanse(out, cap + 1);
        gov_free(out);
        return NULL;
    }
    out[k] = '\0';
    return out;
}

static gov_err_t parse_basic(const char *authz, oauth_params_t *p, gov_reason_t *why,
                             char *errbuf, size_t errbuf_size) {
    if (strncasecmp(authz, "Basic ", 6) != 0)
        return GOV_OK; /* another scheme: not client authentication */
    const char *b = authz + 6;
    while (*b == ' ')
        b++;
    size_t n = strlen(b);
    while (n > 0 && b[n - 1] == ' ')
        n--;
    if (p->client_id || p->client_secret)
        return fail(p, why, GOV_REASON_INVALID_REQUEST, GOV_ERR_INVALID_ARG, errbuf, errbuf_size,
                    "client credentials in both the Authorization header and the body");
    int bad = 0;
    char *dec = n <= OAUTH_PARAM_MAX ? b64_decode(b, n, &bad) : NULL;
    /* dec holds the secret: wiped before it is freed, like the slots */
    size_t dec_len = dec ? strlen(dec) : 0;
    char *colon = dec ? strchr(dec, ':') : NULL;
    if (colon == NULL) {
        int nomem = dec == NULL && !bad && n <= OAUTH_PARAM_MAX;
        if (dec)
            OPENSSL_cleanse(dec, dec_len);
        gov_free(dec);
        if (nomem)
            return fail(p, why, GOV_REASON_OUT_OF_MEMORY, GOV_ERR_NOMEM, errbuf, errbuf_size,
                        "out of memory");
        return fail(p, why, GOV_REASON_INVALID_REQUEST, GOV_ERR_INVALID_ARG, errbuf, errbuf_size,
                    "the Basic credentials are not base64 of id:secret");
    }
    *colon = '\0';
    p->client_id = form_decode(dec, strlen(dec), &bad);
    p->client_secret = p->client_id ? form_decode(colon + 1, strlen(colon + 1), &bad) : NULL;
    OPENSSL_cleanse(dec, dec_len);
    gov_free(dec);
    if (p->client_secret == NULL)
        return fail(p, why, bad ? GOV_REASON_INVALID_REQUEST : GOV_REASON_OUT_OF_MEMORY,
                    bad ? GOV_ERR_INVALID_ARG : GOV_ERR_NOMEM, errbuf, errbuf_size,
                    "the Basic credentials are not form-urlencoded UTF-8");
    p->basic = 1;
    return GOV_OK;
}

gov_err_t oauth_params_parse(const char *body, size_t len, int form, const char *authz,
                             oauth_params_t *p, gov_reason_t *why, char *errbuf,
                             size_t errbuf_size) {
    memset(p, 0, sizeof *p);
    if (why)
        *why = GOV_REASON_NONE;
    gov_err_t err = form ? parse_form(body, len, p, why, errbuf, errbuf_size)
                         : parse_json(body, len, p, why, errbuf, errbuf_size);
    if (err == GOV_OK && authz != NULL)
        err = parse_basic(authz, p, why, errbuf, errbuf_size);
    return err;
}

void oauth_params_clear(oauth_params_t *p) {
    char **all[] = {&p->grant_type, &p->client_id, &p->client_secret, &p->scope,
                    &p->tenant, &p->ttl, &p->token, &p->token_type_hint};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (*all[i] && (all[i] == &p->client_secret || all[i] == &p->token))
            OPENSSL_cleanse(*all[i], strlen(*all[i]));
        gov_free(*all[i]);
        *all[i] = NULL;
    }
    p->basic = 0;
}
