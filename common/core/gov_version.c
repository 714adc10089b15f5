/* gov_version.c - semantic versions of constitutions and rule packs.
 *
 * How it works: one left-to-right pass over at most GOV_VERSION_MAX bytes;
 * numbers are read without leading zeros and refused above
 * GOV_VERSION_NUM_MAX (2^53 - 1) rather than wrapped or rounded, so
 * "18446744073709551616" is not version 0 and 9223372036854775807 is not
 * stored as the 9223372036854776000 JCS would write for it.  Comparison is
 * semver 2.0.0 precedence (section 11) on the parsed parts.
 * gov_version_from_json is the one reader of a "version" member, shared by
 * gov_constitution and gov_rulepack, so both refuse the same inputs with the
 * same reason codes.
 *
 * What it does not do: decide which version may follow which (a higher one
 * is accepted, a replay is a duplicate: gov_constitution and gov-rulepacks
 * apply that), or keep build metadata, which never affects precedence.
 */
#include "gov_version.h"

#include <ctype.h>
#include <inttypes.h>
#include <string.h>

#include "gov_util.h"

/* Why a version text was refused. */
typedef enum { SCAN_OK, SCAN_SYNTAX, SCAN_TOO_LARGE } scan_result_t;

/* Parses a decimal without leading zeros; returns chars consumed or 0.  A
 * number above GOV_VERSION_NUM_MAX is consumed whole and flagged in *big
 * (the value then saturates), so the caller can tell it from bad syntax. */
static size_t parse_num(const char *s, unsigned long long *out, int *big) {
    size_t i = 0;
    unsigned long long v = 0;
    if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && isdigit((unsigned char)s[1])))
        return 0;
    while (isdigit((unsigned char)s[i])) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (GOV_VERSION_NUM_MAX - d) / 10)
            *big = 1;
        else
            v = v * 10 + d;
        i++;
    }
    *out = v;
    return i;
}

/* Checks dot-separated identifiers of [0-9A-Za-z-]; numeric ones without
 * leading zeros when `strict_numeric`. */
static int identifiers_valid(const char *s, size_t n, int strict_numeric) {
    if (n == 0)
        return 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t len = i - start;
            if (len == 0)
                return 0;
            int numeric = 1;
            for (size_t k = start; k < i; k++)
                if (!isdigit((unsigned char)s[k]))
                    numeric = 0;
            if (strict_numeric && numeric && len > 1 && s[start] == '0')
                return 0;
            start = i + 1;
        } else if (!(isalnum((unsigned char)s[i]) || s[i] == '-')) {
            return 0;
        }
    }
    return 1;
}

/* s is NUL-terminated and shorter than GOV_VERSION_MAX. */
static scan_result_t version_scan(const char *s, gov_version_t *out) {
    gov_version_t v;
    int big = 0;
    memset(&v, 0, sizeof v);
    size_t i = parse_num(s, &v.major, &big);
    if (i == 0)
        return SCAN_SYNTAX;
    if (s[i] == '\0') /* a plain integer N reads as N.0.0 */
        goto done;
    size_t k;
    if (s[i] != '.' || (k = parse_num(s + i + 1, &v.minor, &big)) == 0)
        return SCAN_SYNTAX;
    i += 1 + k;
    if (s[i] != '.' || (k = parse_num(s + i + 1, &v.patch, &big)) == 0)
        return SCAN_SYNTAX;
    i += 1 + k;
    if (s[i] == '-') {
        const char *pre = s + i + 1;
        size_t plen = strcspn(pre, "+");
        if (!identifiers_valid(pre, plen, 1))
            return SCAN_SYNTAX;
        memcpy(v.pre, pre, plen);
        v.pre[plen] = '\0';
        i += 1 + plen;
    }
    if (s[i] == '+') {
        if (!identifiers_valid(s + i + 1, strlen(s + i + 1), 0))
            return SCAN_SYNTAX;
        i += strlen(s + i);
    }
    if (s[i] != '\0')
        return SCAN_SYNTAX;
done:
    if (big) /* well-formed, but a number in it cannot be carried exactly */
        return SCAN_TOO_LARGE;
    *out = v;
    return SCAN_OK;
}

int gov_version_parse(const char *s, gov_version_t *out) {
    if (s == NULL || out == NULL || strlen(s) >= GOV_VERSION_MAX)
        return -1;
    return version_scan(s, out) == SCAN_OK ? 0 : -1;
}

#define NOT_A_VERSION "must be semver or a non-negative integer"

gov_err_t gov_version_parse_text(const char *s, size_t len, gov_version_t *out,
                                 gov_reason_t *reason, char *errbuf, size_t errbuf_size) {
    char text[GOV_VERSION_MAX];
    if (reason != NULL)
        *reason = GOV_REASON_NONE;
    if (s == NULL || out == NULL)
        return gov_reason_fail(reason, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "NULL version text or out");
    if (len >= GOV_VERSION_MAX)
        return gov_reason_fail(reason, GOV_REASON_VERSION_TOO_LONG, GOV_ERR_TOO_LARGE, errbuf,
                               errbuf_size, "is longer than %d bytes (%zu)", GOV_VERSION_MAX - 1,
                               len);
    memcpy(text, s, len);
    text[len] = '\0';
    switch (memchr(s, '\0', len) != NULL ? SCAN_SYNTAX : version_scan(text, out)) {
    case SCAN_OK:
        return GOV_OK;
    case SCAN_TOO_LARGE:
        return gov_reason_fail(reason, GOV_REASON_VERSION_TOO_LARGE, GOV_ERR_TOO_LARGE, errbuf,
                               errbuf_size, "has a number above 2^53-1 (%" PRIu64 ")",
                               (uint64_t)GOV_VERSION_NUM_MAX);
    case SCAN_SYNTAX:
        break;
    }
    return gov_reason_fail(reason, GOV_REASON_INVALID_VALUE, GOV_ERR_VERIFY, errbuf, errbuf_size,
                           NOT_A_VERSION);
}

gov_err_t gov_version_from_json(const json_t *v, char text[GOV_VERSION_MAX], gov_version_t *out,
                                gov_reason_t *reason, char *errbuf, size_t errbuf_size) {
    gov_err_t err;
    if (text != NULL)
        text[0] = '\0';
    if (reason != NULL)
        *reason = GOV_REASON_NONE;
    if (text == NULL || out == NULL)
        return gov_reason_fail(reason, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "NULL text or out");
    if (v == NULL)
        return gov_reason_fail(reason, GOV_REASON_MISSING_FIELD, GOV_ERR_VERIFY, errbuf,
                               errbuf_size, "is required");
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 0)
            return gov_reason_fail(reason, GOV_REASON_INVALID_VALUE, GOV_ERR_VERIFY, errbuf,
                                   errbuf_size, NOT_A_VERSION);
        if ((unsigned long long)n > GOV_VERSION_NUM_MAX)
            return gov_reason_fail(reason, GOV_REASON_VERSION_TOO_LARGE, GOV_ERR_TOO_LARGE,
                                   errbuf, errbuf_size,
                                   "%" JSON_INTEGER_FORMAT " is above 2^53-1 (%" PRIu64
                                   "), which JCS cannot write exactly",
                                   n, (uint64_t)GOV_VERSION_NUM_MAX);
        char num[GOV_VERSION_MAX];
        int len = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, n);
        err = gov_version_parse_text(num, (size_t)len, out, reason, errbuf, errbuf_size);
        if (err == GOV_OK)
            memcpy(text, num, (size_t)len + 1);
        return err;
    }
    if (!json_is_string(v))
        return gov_reason_fail(reason, GOV_REASON_INVALID_TYPE, GOV_ERR_VERIFY, errbuf,
                               errbuf_size, "must be a string or an integer");
    size_t len = json_string_length(v);
    err = gov_version_parse_text(json_string_value(v), len, out, reason, errbuf, errbuf_size);
    if (err == GOV_OK)
        memcpy(text, json_string_value(v), len + 1);
    return err;
}

static int cmp_ull(unsigned long long a, unsigned long long b) {
    return a < b ? -1 : a > b ? 1 : 0;
}

int gov_version_compare(const gov_version_t *a, const gov_version_t *b) {
    int c;
    if ((c = cmp_ull(a->major, b->major)) || (c = cmp_ull(a->minor, b->minor)) ||
        (c = cmp_ull(a->patch, b->patch)))
        return c;
    /* A release is above any of its prereleases. */
    if (a->pre[0] == '\0' || b->pre[0] == '\0')
        return (a->pre[0] == '\0') - (b->pre[0] == '\0');
    const char *pa = a->pre, *pb = b->pre;
    for (;;) {
        size_t la = strcspn(pa, "."), lb = strcspn(pb, ".");
        int na = 1, nb = 1;
        for (size_t i = 0; i < la; i++) na &= isdigit((unsigned char)pa[i]) != 0;
        for (size_t i = 0; i < lb; i++) nb &= isdigit((unsigned char)pb[i]) != 0;
        if (na && nb) {
            /* no leading zeros: longer is larger, else lexical */
            if (la != lb)
                return la < lb ? -1 : 1;
            c = memcmp(pa, pb, la);
        } else if (na != nb) {
            return na ? -1 : 1; /* numeric identifiers sort first */
        } else {
            c = memcmp(pa, pb, la < lb ? la : lb);
            if (c == 0)
                c = la < lb ? -1 : la > lb ? 1 : 0;
        }
        if (c)
            return c < 0 ? -1 : 1;
        int ea = pa[la] == '\0', eb = pb[lb] == '\0';
        if (ea || eb)
            return ea && eb ? 0 : ea ? -1 : 1;
        pa += la + 1;
        pb += lb + 1;
    }
}
