/* gov_canon.c - RFC 8785 (JCS) and SomaBrain (Python json.dumps) canonical JSON.
 *
 * What it is for: a constitution's checksum is hash(canonical(document)), and
 * the signer computed it in another language; one byte of difference and a
 * good signature fails.  Both forms are written by one recursive walker over
 * a jansson tree into a gov_buf; the two differ in three places:
 *
 *   key order   JCS compares keys as UTF-16 code unit sequences, so a key
 *               with a character above U+FFFF (a surrogate, 0xD800..) sorts
 *               before one with U+E000..U+FFFF; SomaBrain compares code
 *               points, which for UTF-8 is plain byte order.
 *   strings     JCS escapes only '"', '\\' and C0 controls; SomaBrain escapes
 *               everything outside ' '..'~' (so DEL too) as \uXXXX.
 *   numbers     JCS turns every number, integers included, into a double and
 *               writes it as ECMAScript does; SomaBrain writes integers
 *               exactly and reals as Python's repr.
 *
 * Both number forms start from the same shortest round-trip digits: for
 * p = 1..17 we ask printf for the nearest p-digit decimal (glibc rounds
 * correctly, ties to even) and read it back with strtod (also correctly
 * rounded).  The first p at which it - or, when the double sits at a power
 * of two and its rounding interval is lopsided, the p-digit neighbour on the
 * other side - reads back as x gives the shortest digits, nearest first.
 * (The neighbour matters: for 46 of the 2098 powers of two, e.g. 2^-1017 =
 * 7.120236347223045e-307, a nearest-only search would print 17 digits.)
 * Digits and exponent are re-read without a decimal separator, so the
 * process locale cannot change the bytes.
 *
 * Parsing is jansson's, behind a grammar/depth pass of our own (see the parse
 * section): jansson 2.14 reports its allocation failures as syntax errors,
 * and a bundle refused for lack of memory must not be logged as malformed.
 * The same pass makes both forms round-trip (docs/contracts.md, "Canonical
 * JSON"): JCS writes an integral double with 2^63 <= |x| < 1e21 as plain
 * digits, which jansson would refuse as an integer beyond json_int_t, so an
 * integer literal spelled exactly that way is respelled with an exponent
 * ("...00" -> "...e2", same length, same value) before jansson reads it,
 * and becomes the real it stands for.
 *
 * What it does not do: no I/O and no hashing beyond one gov_hash call in
 * gov_canon_checksum; it does not decide whether a document is a valid
 * constitution, only what its canonical bytes are.
 */
#include "gov_canon.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_buf.h"
#include "gov_hash.h"
#include "gov_util.h"

/* ---- names ------------------------------------------------------------- */

int gov_canon_from_name(const char *name, gov_canon_t *out) {
    if (name == NULL || out == NULL)
        return -1;
    if (strcmp(name, "jcs") == 0) {
        *out = GOV_CANON_JCS;
        return 0;
    }
    if (strcmp(name, "somabrain-json") == 0) {
        *out = GOV_CANON_SOMABRAIN;
        return 0;
    }
    return -1;
}

const char *gov_canon_name(gov_canon_t kind) {
    switch (kind) {
    case GOV_CANON_JCS: return "jcs";
    case GOV_CANON_SOMABRAIN: return "somabrain-json";
    }
    return "unknown";
}

/* ---- shortest round-trip digits ---------------------------------------- */

/* value = 0.d[0]d[1]..d[k-1] * 10^point, d[0] != '0' (point is the position
 * of the decimal point counted from the left of the digits: ECMAScript's n,
 * Python's decpt). */
typedef struct {
    char d[20];
    int k;
    int point;
} decimal_t;

/* Reads printf's "%.*e" output ("d.ddde+XX", "de-XX"; the separator may be
 * a locale's) into dec.  Only digits and the exponent are taken. */
static void decimal_from_e(const char *s, decimal_t *dec) {
    dec->k = 0;
    while (*s != '\0' && *s != 'e') {
        if (*s >= '0' && *s <= '9' && dec->k < (int)sizeof dec->d)
            dec->d[dec->k++] = *s;
        s++;
    }
    assert(*s == 'e');
    s++;
    int neg = (*s == '-');
    if (*s == '-' || *s == '+')
        s++;
    int e = 0;
    while (*s >= '0' && *s <= '9')
        e = e * 10 + (*s++ - '0');
    dec->point = (neg ? -e : e) + 1;
}

/* The double nearest to dec: "ddddde<exp>", no separator, so strtod's
 * locale has nothing to misread. */
static double decimal_value(const decimal_t *dec) {
    char s[48];
    memcpy(s, dec->d, (size_t)dec->k);
    snprintf(s + dec->k, sizeof s - (size_t)dec->k, "e%d", dec->point - dec->k);
    return strtod(s, NULL);
}

/* Moves dec one unit in its last place up or down, keeping k digits. */
static void decimal_step(decimal_t *dec, int up) {
    int i = dec->k - 1;
    if (up) {
        while (i >= 0 && dec->d[i] == '9')
            dec->d[i--] = '0';
        if (i >= 0) {
            dec->d[i]++;
        } else { /* 99..9 -> 100..0, one decade up */
            dec->d[0] = '1';
            dec->point++;
        }
    } else {
        while (i >= 0 && dec->d[i] == '0')
            dec->d[i--] = '9';
        assert(i >= 0); /* d[0] != '0' */
        dec->d[i]--;
        if (dec->d[0] == '0') { /* 100..0 -> 099..9 -> 99..9, one decade down */
            memmove(dec->d, dec->d + 1, (size_t)dec->k - 1);
            dec->d[dec->k - 1] = '9';
            dec->point--;
        }
    }
}

/* Shortest digits that read back as x (finite, > 0), the nearest to x among
 * them.  At most 17 printf/strtod pairs (34 when an interval is lopsided). */
static void shortest_digits(double x, decimal_t *out) {
    for (int p = 1; p <= 17; p++) {
        char s[48];
        decimal_t near;
        snprintf(s, sizeof s, "%.*e", p - 1, x);
        decimal_from_e(s, &near);
        double v = decimal_value(&near);
        if (v == x) {
            *out = near;
            goto trim;
        }
        /* The nearest p-digit decimal misses; the one on the other side of x
         * can still hit when x is a power of two (its lower gap is half the
         * upper one).  No other p-digit decimal can. */
        decimal_t other = near;
        decimal_step(&other, v < x);
        if (decimal_value(&other) == x) {
            *out = other;
            goto trim;
        }
    }
    assert(!"17 significant digits always round-trip");
    out->d[0] = '0';
    out->k = 1;
    out->point = 1;
    return;
trim:
    while (out->k > 1 && out->d[out->k - 1] == '0')
        out->k--;
}

/* ---- number formatters ------------------------------------------------- */

static void put_zeros(char **p, int n) {
    while (n-- > 0)
        *(*p)++ = '0';
}

static void put_digits(char **p, const char *d, int n) {
    memcpy(*p, d, (size_t)n);
    *p += n;
}

int gov_canon_format_es6(double x, char buf[GOV_CANON_NUMBUF]) {
    buf[0] = '\0';
    if (!isfinite(x))
        return -1;
    char *p = buf;
    if (x == 0) { /* +0 and -0 alike (ECMA-262: ToString(-0) is "0") */
        *p++ = '0';
        *p = '\0';
        return 1;
    }
    if (x < 0) {
        *p++ = '-';
        x = -x;
    }
    decimal_t dec;
    shortest_digits(x, &dec);
    int k = dec.k, n = dec.point;
    if (k <= n && n <= 21) { /* integer: digits then n-k zeros */
        put_digits(&p, dec.d, k);
        put_zeros(&p, n - k);
    } else if (0 < n && n <= 21) { /* point inside the digits */
        put_digits(&p, dec.d, n);
        *p++ = '.';
        put_digits(&p, dec.d + n, k - n);
    } else if (-6 < n && n <= 0) { /* 0.000ddd */
        *p++ = '0';
        *p++ = '.';
        put_zeros(&p, -n);
        put_digits(&p, dec.d, k);
    } else { /* d[.ddd]e+N */
        *p++ = dec.d[0];
        if (k > 1) {
            *p++ = '.';
            put_digits(&p, dec.d + 1, k - 1);
        }
        p += snprintf(p, GOV_CANON_NUMBUF - (size_t)(p - buf), "e%c%d", n - 1 < 0 ? '-' : '+',
                      abs(n - 1));
    }
    *p = '\0';
    return (int)(p - buf);
}

int gov_canon_format_pyrepr(double x, char buf[GOV_CANON_NUMBUF]) {
    buf[0] = '\0';
    if (!isfinite(x))
        return -1;
    char *p = buf;
    if (signbit(x)) {
        *p++ = '-';
        x = -x;
    }
    if (x == 0) {
        memcpy(p, "0.0", 4);
        return (int)(p - buf) + 3;
    }
    decimal_t dec;
    shortest_digits(x, &dec);
    int k = dec.k, decpt = dec.point;
    if (decpt <= -4 || decpt > 16) { /* CPython's 'r' format: repr switches here */
        *p++ = dec.d[0];
        if (k > 1) {
            *p++ = '.';
            put_digits(&p, dec.d + 1, k - 1);
        }
        p += snprintf(p, GOV_CANON_NUMBUF - (size_t)(p - buf), "e%c%02d",
                      decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
    } else if (decpt <= 0) {
        *p++ = '0';
        *p++ = '.';
        put_zeros(&p, -decpt);
        put_digits(&p, dec.d, k);
    } else if (decpt >= k) {
        put_digits(&p, dec.d, k);
        put_zeros(&p, decpt - k);
        *p++ = '.';
        *p++ = '0';
    } else {
        put_digits(&p, dec.d, decpt);
        *p++ = '.';
        put_digits(&p, dec.d + decpt, k - decpt);
    }
    *p = '\0';
    return (int)(p - buf);
}

/* ---- strings ----------------------------------------------------------- */

/* Decodes the UTF-8 sequence at s[0..n) into *cp; returns its length, or 0
 * when it is not well-formed (gov_utf8_seq_len decides that: overlong,
 * surrogate, > U+10FFFF, truncated). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    static const unsigned char lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    size_t len = gov_utf8_seq_len(s, n);
    if (len == 0)
        return 0;
    uint32_t v = s[0] & lead_mask[len];
    for (size_t i = 1; i < len; i++)
        v = v << 6 | (s[i] & 0x3F);
    *cp = v;
    return len;
}

/* The short escapes of JSON (minus "\/"), which SomaBrain's form uses as
 * RFC 8785 does. */
static const char *short_escape(uint32_t cp) {
    switch (cp) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    }
    return NULL;
}

/* \uXXXX with lowercase hex, as both RFC 8785 and CPython write it. */
static void put_u_escape(gov_buf_t *b, uint32_t unit) {
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 'u', hex[(unit >> 12) & 15], hex[(unit >> 8) & 15],
                   hex[(unit >> 4) & 15], hex[unit & 15]};
    assert(unit <= 0xFFFF);
    gov_buf_put(b, esc, sizeof esc);
}

/* Writes s[0..n) as a quoted string.  Returns GOV_ERR_UNSUPPORTED when s is
 * not UTF-8 (jansson guarantees it is, except for *_nocheck values).
 * JCS's escaping (only '"', '\\' and C0 controls) is gov_buf's own JSON
 * string writer; SomaBrain's (everything outside ' '..'~', astral code
 * points as surrogate pairs) is written here. */
static gov_err_t put_string(gov_buf_t *b, const char *s, size_t n, gov_canon_t kind) {
    const unsigned char *u = (const unsigned char *)s;
    if (kind == GOV_CANON_JCS) {
        if (!gov_utf8_valid(s, n))
            return GOV_ERR_UNSUPPORTED;
        gov_buf_put_json_string(b, s, n);
        return GOV_OK;
    }
    gov_buf_putc(b, '"');
    size_t i = 0, run = 0; /* u[run..i) is pending literal output */
    while (i < n) {
        uint32_t cp;
        size_t len = utf8_next(u + i, n - i, &cp);
        if (len == 0)
            return GOV_ERR_UNSUPPORTED;
        if (cp < 0x20 || cp > 0x7E || cp == '"' || cp == '\\') {
            gov_buf_put(b, u + run, i - run);
            const char *esc = short_escape(cp);
            if (esc != NULL) {
                gov_buf_put(b, esc, 2);
            } else if (cp >= 0x10000) { /* a surrogate pair */
                put_u_escape(b, 0xD800 + ((cp - 0x10000) >> 10));
                put_u_escape(b, 0xDC00 + ((cp - 0x10000) & 0x3FF));
            } else {
                put_u_escape(b, cp);
            }
            run = i + len;
        }
        i += len;
    }
    gov_buf_put(b, u + run, n - run);
    gov_buf_putc(b, '"');
    return GOV_OK;
}

/* ---- key order --------------------------------------------------------- */

typedef struct {
    const char *key;
    size_t len;
    json_t *value;
} member_t;

/* RFC 8785 3.2.3: compare as UTF-16 code unit sequences.  Code points differ
 * in order from UTF-16 units only across the surrogate block: U+E000..U+FFFF
 * (one unit >= 0xE000) sort after U+10000.. (a lead unit 0xD800..0xDBFF).
 * Keys are valid UTF-8 here (checked before sorting). */
int gov_canon_utf16_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    const unsigned char *ua = (const unsigned char *)a, *ub = (const unsigned char *)b;
    size_t i = 0, j = 0;
    while (i < alen && j < blen) {
        uint32_t ca = 0, cb = 0;
        size_t la = utf8_next(ua + i, alen - i, &ca), lb = utf8_next(ub + j, blen - j, &cb);
        if (la == 0 || lb == 0) /* unreachable after validation; keep it total */
            return memcmp(ua + i, ub + j, 1) < 0 ? -1 : 1;
        if (ca != cb) {
            uint32_t fa = ca < 0x10000 ? ca : 0xD800 + ((ca - 0x10000) >> 10);
            uint32_t fb = cb < 0x10000 ? cb : 0xD800 + ((cb - 0x10000) >> 10);
            if (fa != fb)
                return fa < fb ? -1 : 1;
            return ca < cb ? -1 : 1; /* same lead surrogate: trail order = cp order */
        }
        i += la;
        j += lb;
    }
    if (i < alen)
        return 1;
    return j < blen ? -1 : 0;
}

static int member_cmp_jcs(const void *pa, const void *pb) {
    const member_t *a = pa, *b = pb;
    return gov_canon_utf16_cmp(a->key, a->len, b->key, b->len);
}

/* Python str order is code point order, which UTF-8 byte order preserves. */
static int member_cmp_codepoint(const void *pa, const void *pb) {
    const member_t *a = pa, *b = pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->key, b->key, n);
    if (c != 0)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* ---- the walker -------------------------------------------------------- */

static gov_err_t put_value(gov_buf_t *b, const json_t *v, gov_canon_t kind, int depth,
                           gov_reason_t *why, char *errbuf, size_t errbuf_size);

static gov_err_t put_object(gov_buf_t *b, const json_t *obj, gov_canon_t kind, int depth,
                            gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    gov_err_t err = GOV_OK;
    size_t n = json_object_size(obj), i = 0;
    member_t *m = NULL;
    if (n > 0) {
        m = gov_calloc(n, sizeof *m);
        if (m == NULL) {
            err = gov_reason_fail(why, GOV_REASON_NOMEM, GOV_ERR_NOMEM, errbuf, errbuf_size,
                                  "out of memory sorting %zu object members", n);
            goto out;
        }
    }
    /* jansson has no const iterator; iteration does not modify the object. */
    for (void *it = json_object_iter((json_t *)obj); it != NULL && i < n;
         it = json_object_iter_next((json_t *)obj, it), i++) {
        m[i].key = json_object_iter_key(it);
        m[i].len = json_object_iter_key_len(it);
        m[i].value = json_object_iter_value(it);
        if (!gov_utf8_valid(m[i].key, m[i].len)) {
            err = gov_reason_fail(why, GOV_REASON_INVALID_UTF8, GOV_ERR_UNSUPPORTED, errbuf,
                                  errbuf_size, "object key is not UTF-8");
            goto out;
        }
    }
    assert(i == n);
    if (n > 1)
        qsort(m, n, sizeof *m, kind == GOV_CANON_JCS ? member_cmp_jcs : member_cmp_codepoint);
    gov_buf_putc(b, '{');
    for (i = 0; i < n; i++) {
        if (i > 0)
            gov_buf_putc(b, ',');
        if (put_string(b, m[i].key, m[i].len, kind) != GOV_OK) {
            err = gov_reason_fail(why, GOV_REASON_INTERNAL, GOV_ERR_INTERNAL, errbuf, errbuf_size,
                                  "object key failed after validation"); /* validated above */
            goto out;
        }
        gov_buf_putc(b, ':');
        err = put_value(b, m[i].value, kind, depth, why, errbuf, errbuf_size);
        if (err != GOV_OK)
            goto out;
    }
    gov_buf_putc(b, '}');
out:
    gov_free(m);
    return err;
}

/* Writes v; depth is the nesting of v's container (0 at the top). */
static gov_err_t put_value(gov_buf_t *b, const json_t *v, gov_canon_t kind, int depth,
                           gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    char num[GOV_CANON_NUMBUF];
    gov_err_t err;
    if (v == NULL)
        return gov_reason_fail(why, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "NULL value in document");
    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (depth + 1 > GOV_CANON_MAX_DEPTH)
            return gov_reason_fail(why, GOV_REASON_TOO_DEEP, GOV_ERR_TOO_LARGE, errbuf, errbuf_size,
                                   "nesting exceeds %d", GOV_CANON_MAX_DEPTH);
        if (json_is_object(v))
            return put_object(b, v, kind, depth + 1, why, errbuf, errbuf_size);
        gov_buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                gov_buf_putc(b, ',');
            err = put_value(b, json_array_get(v, i), kind, depth + 1, why, errbuf, errbuf_size);
            if (err != GOV_OK)
                return err;
        }
        gov_buf_putc(b, ']');
        return GOV_OK;
    case JSON_STRING:
        err = put_string(b, json_string_value(v), json_string_length(v), kind);
        if (err != GOV_OK)
            return gov_reason_fail(why, GOV_REASON_INVALID_UTF8, err, errbuf, errbuf_size,
                                   "string value is not UTF-8");
        return GOV_OK;
    case JSON_INTEGER:
        if (kind == GOV_CANON_JCS) /* I-JSON: every number is a double */
            gov_canon_format_es6((double)json_integer_value(v), num);
        else
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        gov_buf_puts(b, num);
        return GOV_OK;
    case JSON_REAL: {
        double d = json_real_value(v);
        int len = kind == GOV_CANON_JCS ? gov_canon_format_es6(d, num)
                                        : gov_canon_format_pyrepr(d, num);
        if (len < 0)
            return gov_reason_fail(why, GOV_REASON_NON_FINITE_NUMBER, GOV_ERR_UNSUPPORTED, errbuf,
                                   errbuf_size, "NaN and Infinity have no JSON form");
        gov_buf_put(b, num, (size_t)len);
        return GOV_OK;
    }
    case JSON_TRUE:
        gov_buf_puts(b, "true");
        return GOV_OK;
    case JSON_FALSE:
        gov_buf_puts(b, "false");
        return GOV_OK;
    case JSON_NULL:
        gov_buf_puts(b, "null");
        return GOV_OK;
    }
    return gov_reason_fail(why, GOV_REASON_INTERNAL, GOV_ERR_INTERNAL, errbuf, errbuf_size,
                           "unknown jansson type");
}

gov_err_t gov_canon_serialize(const json_t *doc, gov_canon_t kind, char **out,
                              size_t *out_len, gov_reason_t *reason, char *errbuf,
                              size_t errbuf_size) {
    gov_buf_t b;
    gov_err_t err;
    gov_reason_t reason_sink; /* where a caller that passed no reason pointer gets it */
    if (reason == NULL)
        reason = &reason_sink;
    *reason = GOV_REASON_NONE;
    gov_buf_init(&b, 0);
    if (out != NULL)
        *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    if (doc == NULL || out == NULL || out_len == NULL ||
        (kind != GOV_CANON_JCS && kind != GOV_CANON_SOMABRAIN))
        return gov_reason_fail(reason, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "NULL argument or unknown canonicalization");
    err = put_value(&b, doc, kind, 0, reason, errbuf, errbuf_size);
    if (err != GOV_OK) {
        gov_buf_free(&b);
        return err;
    }
    /* The buffer has no limit: its only failure is memory. */
    err = gov_buf_finish(&b, out, out_len);
    if (err != GOV_OK)
        return gov_reason_fail(reason, GOV_REASON_NOMEM, err, errbuf, errbuf_size, "output buffer");
    return GOV_OK;
}

/* ---- checksum ---------------------------------------------------------- */

gov_err_t gov_canon_checksum(const json_t *doc, gov_canon_t kind, const char *hash_alg,
                             char *hex_out, gov_reason_t *reason, char *errbuf,
                             size_t errbuf_size) {
    char *bytes = NULL;
    size_t len = 0;
    gov_err_t err;
    gov_reason_t reason_sink; /* where a caller that passed no reason pointer gets it */
    if (reason == NULL)
        reason = &reason_sink;
    *reason = GOV_REASON_NONE;
    if (hex_out != NULL)
        hex_out[0] = '\0';
    if (hash_alg == NULL || hex_out == NULL)
        return gov_reason_fail(reason, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "NULL hash_alg or hex_out");
    const gov_hash_alg_t *alg = gov_hash_by_name(hash_alg);
    if (alg == NULL)
        return gov_reason_fail(reason, GOV_REASON_UNSUPPORTED_HASH_ALG, GOV_ERR_UNSUPPORTED, errbuf,
                               errbuf_size, "'%.32s' (want " GOV_HASH_NAMES_TEXT ")", hash_alg);
    err = gov_canon_serialize(doc, kind, &bytes, &len, reason, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto out;
    if (gov_hash_hex(alg, bytes, len, hex_out) != GOV_OK) {
        err = gov_reason_fail(reason, GOV_REASON_CRYPTO, GOV_ERR_CRYPTO, errbuf, errbuf_size,
                              "%s digest failed", hash_alg);
        goto out;
    }
out:
    gov_free(bytes);
    return err;
}

/* ---- parse ------------------------------------------------------------- */

/* Our own pass over the text before jansson sees it: RFC 8259 grammar plus
 * the rules jansson adds (UTF-8 only, no lone surrogate escapes), iterative,
 * no allocation, and it counts nesting.  It exists because jansson 2.14 does
 * not tell an allocation failure from bad input: when its lexer cannot grow a
 * buffer it reports "invalid token", "string or '}' expected" or nothing at
 * all.  With the syntax settled here, a jansson failure on text that passed
 * can only be one of its semantic refusals (numeric overflow, duplicate key,
 * NUL in a key) or memory. */
typedef struct {
    const unsigned char *s;
    size_t n, i;
    gov_reason_t reason; /* SYNTAX, INVALID_UTF8, TRAILING_GARBAGE, TOO_DEEP */
    const char *detail;
    size_t jcs_big_ints; /* integer literals beyond json_int_t that JCS wrote */
    char *rewrite;       /* when set: a copy of s where those are respelled */
} scan_t;

static int scan_fail(scan_t *sc, gov_reason_t reason, const char *detail) {
    sc->reason = reason;
    sc->detail = detail;
    return -1;
}

static void scan_ws(scan_t *sc) {
    while (sc->i < sc->n && (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t' ||
                             sc->s[sc->i] == '\n' || sc->s[sc->i] == '\r'))
        sc->i++;
}

/* At "\\u" (s[*i] is the backslash): decodes the escape, a surrogate pair
 * as one code point.  The rules and messages of the grammar pass. */
int gov_canon_u_escape(const unsigned char *s, size_t n, size_t *i, uint32_t *cp,
                       gov_reason_t *reason, const char **detail) {
    uint32_t u, lo;
    if (n - *i < 6 || gov_hex_u16(s + *i + 2, &u) != 0)
        goto syntax;
    *i += 6;
    if (u >= 0xDC00 && u <= 0xDFFF) {
        *reason = GOV_REASON_INVALID_UTF8;
        *detail = "lone trail surrogate escape";
        return -1;
    }
    if (u >= 0xD800 && u <= 0xDBFF) {
        if (n - *i < 6 || s[*i] != '\\' || s[*i + 1] != 'u')
            goto lone_lead;
        if (gov_hex_u16(s + *i + 2, &lo) != 0)
            goto syntax;
        if (lo < 0xDC00 || lo > 0xDFFF)
            goto lone_lead;
        *i += 6;
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
    }
    *cp = u;
    return 0;
syntax:
    *reason = GOV_REASON_SYNTAX;
    *detail = "invalid \\u escape";
    return -1;
lone_lead:
    *reason = GOV_REASON_INVALID_UTF8;
    *detail = "lone lead surrogate escape";
    return -1;
}

/* At '"': consumes the string. */
static int scan_string(scan_t *sc) {
    sc->i++;
    for (;;) {
        if (sc->i >= sc->n)
            return scan_fail(sc, GOV_REASON_SYNTAX, "unterminated string");
        unsigned char c = sc->s[sc->i];
        if (c == '"') {
            sc->i++;
            return 0;
        }
        if (c < 0x20)
            return scan_fail(sc, GOV_REASON_SYNTAX, "control character in string");
        if (c >= 0x80) {
            uint32_t cp;
            size_t len = utf8_next(sc->s + sc->i, sc->n - sc->i, &cp);
            if (len == 0)
                return scan_fail(sc, GOV_REASON_INVALID_UTF8, "malformed UTF-8");
            sc->i += len;
            continue;
        }
        if (c != '\\') {
            sc->i++;
            continue;
        }
        if (sc->n - sc->i < 2)
            return scan_fail(sc, GOV_REASON_SYNTAX, "unterminated string");
        c = sc->s[sc->i + 1];
        if (c != 'u') {
            if (strchr("\"\\/bfnrt", c) == NULL || c == '\0')
                return scan_fail(sc, GOV_REASON_SYNTAX, "invalid escape");
            sc->i += 2;
            continue;
        }
        uint32_t u;
        gov_reason_t why;
        const char *detail;
        if (gov_canon_u_escape(sc->s, sc->n, &sc->i, &u, &why, &detail) != 0)
            return scan_fail(sc, why, detail);
    }
}

static int is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

/* A number or literal must not run into letters or digits ("truex", "1.5x"). */
static int scan_token_end(scan_t *sc) {
    if (sc->i < sc->n) {
        unsigned char c = sc->s[sc->i];
        if (is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
            c == '-' || c == '+' || c == '_')
            return scan_fail(sc, GOV_REASON_SYNTAX, "invalid token");
    }
    return 0;
}

/* The exact decimal digits of x, an integer with 2^53 <= x < 2^70, into
 * out (NUL-terminated); returns their number (0 outside that range).
 * x = m * 2^e with m < 2^53 and e <= 17, multiplied out in base-10^9
 * limbs: no printf, whose multi-precision path is slow for this. */
static int integer_digits(double x, char out[32]) {
    int exp2;
    double frac = frexp(x, &exp2);
    if (exp2 < 53 || exp2 > 70)
        return 0; /* not in range: the caller refuses the literal */
    unsigned long long m = (unsigned long long)ldexp(frac, 53), lim[3];
    unsigned long long shift = 1ULL << (exp2 - 53);
    const unsigned long long base = 1000000000ULL;
    unsigned long long lo = (m % base) * shift, hi = (m / base) * shift + lo / base;
    lim[0] = lo % base;
    lim[1] = hi % base;
    lim[2] = hi / base; /* < 10^4: x < 2^70 < 1.2e21 */
    char all[28];
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < 9; i++, lim[l] /= 10)
            all[26 - 9 * l - i] = (char)('0' + lim[l] % 10);
    int start = 0;
    while (start < 26 && all[start] == '0')
        start++;
    memcpy(out, all + start, (size_t)(27 - start));
    out[27 - start] = '\0';
    return 27 - start;
}

/* 1 when q * 10^z, written "<q>e<z>", reads back as x. */
static int reads_back(unsigned long long q, int z, double x) {
    char s[48];
    snprintf(s, sizeof s, "%llue%d", q, z);
    return strtod(s, NULL) == x; /* digits and exponent only: no locale */
}

/* 1 when tok[0..n) (an integer literal: '-'? digits, no fraction or
 * exponent; the caller checks) is beyond json_int_t and is exactly what
 * gov_canon_format_es6 writes for the double nearest to it.  JCS writes an
 * integral double with 2^63 <= |x| < 1e21 as plain digits
 * ("9223372036854776000" for 2^63); jansson would refuse them as too big an
 * integer.  Its shortest digits are at most 17 of the 19-21, so such a
 * spelling always ends in "00".  Any other literal beyond json_int_t
 * ("9223372036854775808") is left alone and refused: reading it as a double
 * would round it, silently.
 *
 * How: with tok = D * 10^z (D without trailing zeros) and x the double
 * nearest to it, D is x's shortest digits exactly when no multiple of
 * 10^(z+1) reads back as x (only the two around x can: an interval holding
 * x and one of them holds the nearer) and D is what shortest_digits picks
 * among the multiples of 10^z: the nearest to x (ties to even, as printf
 * rounds), or, when that one does not read back, its neighbour on the
 * other side of x.  x is an integer below 2^70 here, so its exact digits
 * are cheap (integer_digits) and the nearest is found in integer
 * arithmetic.  Cost: at most five strtod, against up to seventeen
 * printf/strtod rounds for gov_canon_format_es6 - a body of such numbers
 * must not parse ten times slower than any other. */
int gov_canon_jcs_integer_beyond_int64(const unsigned char *tok, size_t n) {
    int neg = tok[0] == '-';
    size_t nd = n - (size_t)neg, k = nd;
    if (nd < 19 || nd > 21 || tok[n - 1] != '0' || tok[n - 2] != '0')
        return 0;
    if (nd == 19 && memcmp(tok + neg, neg ? "9223372036854775808" : "9223372036854775807", 19) <= 0)
        return 0; /* a json_int_t */
    while (tok[neg + k - 1] == '0')
        k--; /* tok[neg] != '0': JSON has no leading zeros */
    if (k > 17)
        return 0; /* more digits than any shortest form has */
    unsigned long long d = 0;
    for (size_t i = 0; i < k; i++)
        d = d * 10 + (unsigned)(tok[neg + i] - '0');
    int z = (int)(nd - k); /* 2..20 */
    char lit[24], exact[32];
    memcpy(lit, tok + neg, nd);
    lit[nd] = '\0';
    double x = strtod(lit, NULL); /* digits only: no locale */
    /* x's exact decimal digits, split as q * 10^z + r; q < 10^19 fits in
     * 64 bits. */
    int len = integer_digits(x, exact);
    if (len <= z || len - z > 19)
        return 0;
    unsigned long long q = 0;
    for (int i = 0; i < len - z; i++)
        q = q * 10 + (unsigned)(exact[i] - '0');
    const char *r = exact + len - z;
    if (reads_back(q / 10, z + 1, x) || reads_back(q / 10 + 1, z + 1, x))
        return 0; /* a shorter spelling reads back as x */
    char half[24];
    memset(half, '0', (size_t)z);
    half[0] = '5';
    int cmp = memcmp(r, half, (size_t)z);
    unsigned long long near = q + (cmp > 0 || (cmp == 0 && (q & 1)));
    if (near == d)
        return 1;
    if (reads_back(near, z, x))
        return 0; /* the nearest reads back: it is what JCS writes */
    /* near is q (x above it: r > 0 here) or q + 1 (x below it) */
    return d == (near == q ? near + 1 : near - 1);
}

static int scan_number(scan_t *sc) {
    const unsigned char *s = sc->s;
    size_t n = sc->n, start = sc->i;
    if (sc->i < n && s[sc->i] == '-')
        sc->i++;
    if (sc->i < n && s[sc->i] == '0') {
        sc->i++;
    } else if (sc->i < n && is_digit(s[sc->i])) {
        while (sc->i < n && is_digit(s[sc->i]))
            sc->i++;
    } else {
        return scan_fail(sc, GOV_REASON_SYNTAX, "invalid number");
    }
    size_t int_end = sc->i; /* the token is an integer literal when it ends here */
    if (sc->i < n && s[sc->i] == '.') {
        sc->i++;
        if (sc->i >= n || !is_digit(s[sc->i]))
            return scan_fail(sc, GOV_REASON_SYNTAX, "invalid number");
        while (sc->i < n && is_digit(s[sc->i]))
            sc->i++;
    }
    if (sc->i < n && (s[sc->i] == 'e' || s[sc->i] == 'E')) {
        sc->i++;
        if (sc->i < n && (s[sc->i] == '+' || s[sc->i] == '-'))
            sc->i++;
        if (sc->i >= n || !is_digit(s[sc->i]))
            return scan_fail(sc, GOV_REASON_SYNTAX, "invalid number");
        while (sc->i < n && is_digit(s[sc->i]))
            sc->i++;
    }
    if (scan_token_end(sc) != 0)
        return -1;
    if (sc->i == int_end && gov_canon_jcs_integer_beyond_int64(s + start, sc->i - start)) {
        /* "...00" -> "...e2": the same value and length, but a real to
         * jansson, so byte offsets in its messages stay the caller's. */
        sc->jcs_big_ints++;
        if (sc->rewrite != NULL)
            memcpy(sc->rewrite + sc->i - 2, "e2", 2);
    }
    return 0;
}

static int scan_literal(scan_t *sc, const char *lit) {
    size_t l = strlen(lit);
    if (sc->n - sc->i < l || memcmp(sc->s + sc->i, lit, l) != 0)
        return scan_fail(sc, GOV_REASON_SYNTAX, "invalid token");
    sc->i += l;
    return scan_token_end(sc);
}

/* ws "string" ws ':' - an object member's key and colon. */
static int scan_member_key(scan_t *sc) {
    scan_ws(sc);
    if (sc->i >= sc->n || sc->s[sc->i] != '"')
        return scan_fail(sc, GOV_REASON_SYNTAX, "object key expected");
    if (scan_string(sc) != 0)
        return -1;
    scan_ws(sc);
    if (sc->i >= sc->n || sc->s[sc->i] != ':')
        return scan_fail(sc, GOV_REASON_SYNTAX, "':' expected");
    sc->i++;
    return 0;
}

/* 0 when s[0..n) is one JSON text nested at most max_depth deep.  O(n), no
 * recursion: the open containers are a stack of max_depth bytes. */
static int scan_json(scan_t *sc, int max_depth) {
    char stack[GOV_CANON_MAX_DEPTH];
    int depth = 0;
    assert(max_depth <= GOV_CANON_MAX_DEPTH);
    for (;;) {
        /* a value is expected */
        scan_ws(sc);
        if (sc->i >= sc->n)
            return scan_fail(sc, GOV_REASON_SYNTAX, "value expected");
        unsigned char c = sc->s[sc->i];
        if (c == '[' || c == '{') {
            if (depth == max_depth)
                return scan_fail(sc, GOV_REASON_TOO_DEEP, "nesting exceeds the limit");
            stack[depth++] = (char)c;
            sc->i++;
            scan_ws(sc);
            if (sc->i < sc->n && sc->s[sc->i] == (c == '[' ? ']' : '}')) {
                sc->i++;
                depth--;
            } else {
                if (c == '{' && scan_member_key(sc) != 0)
                    return -1;
                continue;
            }
        } else if (c == '"') {
            if (scan_string(sc) != 0)
                return -1;
        } else if (c == '-' || is_digit(c)) {
            if (scan_number(sc) != 0)
                return -1;
        } else if (scan_literal(sc, c == 't' ? "true" : c == 'f' ? "false" : "null") != 0) {
            return -1;
        }
        /* a value ended: close containers or move to the next element */
        for (;;) {
            scan_ws(sc);
            if (depth == 0) {
                if (sc->i != sc->n)
                    return scan_fail(sc, GOV_REASON_TRAILING_GARBAGE, "end of input expected");
                return 0;
            }
            if (sc->i >= sc->n)
                return scan_fail(sc, GOV_REASON_SYNTAX, "unexpected end of input");
            c = sc->s[sc->i];
            char open = stack[depth - 1];
            if ((open == '[' && c == ']') || (open == '{' && c == '}')) {
                sc->i++;
                depth--;
                continue;
            }
            if (c != ',')
                return scan_fail(sc, GOV_REASON_SYNTAX, open == '[' ? "',' or ']' expected"
                                                           : "',' or '}' expected");
            sc->i++;
            if (open == '{' && scan_member_key(sc) != 0)
                return -1;
            break;
        }
    }
}

gov_err_t gov_canon_parse(const char *text, size_t len, json_t **out, gov_reason_t *reason,
                          char *errbuf, size_t errbuf_size) {
    /* Zeroed: when jansson fails to allocate its lexer it returns without
     * setting an error, and json_error_code() would read an unset byte. */
    json_error_t jerr;
    gov_reason_t reason_sink; /* where a caller that passed no reason pointer gets it */
    memset(&jerr, 0, sizeof jerr);
    if (reason == NULL)
        reason = &reason_sink;
    *reason = GOV_REASON_NONE;
    if (out != NULL)
        *out = NULL;
    if (text == NULL || out == NULL) {
        *reason = GOV_REASON_INVALID_ARG;
        gov_errbuf(errbuf, errbuf_size, "NULL text or out");
        return GOV_ERR_INVALID_ARG;
    }
    scan_t sc = {(const unsigned char *)text, len, 0, GOV_REASON_NONE, NULL, 0, NULL};
    if (scan_json(&sc, GOV_CANON_MAX_DEPTH) != 0) {
        int deep = sc.reason == GOV_REASON_TOO_DEEP;
        *reason = sc.reason;
        if (deep)
            gov_errbuf(errbuf, errbuf_size, "nesting exceeds %d (byte %zu)",
                    GOV_CANON_MAX_DEPTH, sc.i);
        else
            gov_errbuf(errbuf, errbuf_size, "%s (byte %zu)", sc.detail, sc.i);
        return deep ? GOV_ERR_TOO_LARGE : GOV_ERR_PARSE;
    }
    char *respelled = NULL;
    if (sc.jcs_big_ints > 0) {
        /* A second pass over a copy respells them; it cannot fail where the
         * first one passed. */
        if ((respelled = gov_malloc(len)) == NULL) {
            *reason = GOV_REASON_NOMEM;
            gov_errbuf(errbuf, errbuf_size, "copy of %zu bytes to respell numbers", len);
            return GOV_ERR_NOMEM;
        }
        memcpy(respelled, text, len);
        scan_t again = {(const unsigned char *)text, len, 0, GOV_REASON_NONE, NULL, 0, respelled};
        int rescan = scan_json(&again, GOV_CANON_MAX_DEPTH);
        assert(rescan == 0 && again.jcs_big_ints == sc.jcs_big_ints);
        (void)rescan;
    }
    *out = json_loadb(respelled ? respelled : text, len,
                      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    gov_free(respelled);
    if (*out != NULL)
        return GOV_OK;
    /* The text is well-formed (above), so this is a semantic refusal or memory. */
    switch (json_error_code(&jerr)) {
    case json_error_numeric_overflow:
        *reason = GOV_REASON_NUMBER_OUT_OF_RANGE;
        gov_errbuf(errbuf, errbuf_size, "%s (byte %d)", jerr.text, jerr.position);
        return GOV_ERR_UNSUPPORTED;
    case json_error_null_byte_in_key:
        *reason = GOV_REASON_NUL_IN_KEY;
        gov_errbuf(errbuf, errbuf_size, "%s (byte %d)", jerr.text, jerr.position);
        return GOV_ERR_UNSUPPORTED;
    case json_error_duplicate_key:
        *reason = GOV_REASON_DUPLICATE_KEY;
        gov_errbuf(errbuf, errbuf_size, "%s (byte %d)", jerr.text, jerr.position);
        return GOV_ERR_PARSE;
    default:
        *reason = GOV_REASON_NOMEM;
        gov_errbuf(errbuf, errbuf_size, "jansson failed on well-formed text: %s",
                jerr.text[0] ? jerr.text : "(no detail)");
        return GOV_ERR_NOMEM;
    }
}
