/* gov_version.c - semantic versions of constitutions and rule packs.
 *
 * How it works: one left-to-right pass over at most GOV_VERSION_MAX bytes;
 * numbers are read without leading zeros and refused on overflow rather
 * than wrapped, so "18446744073709551616" is not version 0.  Comparison is
 * semver 2.0.0 precedence (section 11) on the parsed parts.
 *
 * What it does not do: decide which version may follow which (a higher one
 * is accepted, a replay is a duplicate: gov_constitution and gov-rulepacks
 * apply that), or keep build metadata, which never affects precedence.
 */
#include "gov_version.h"

#include <ctype.h>
#include <string.h>

/* Parses a decimal without leading zeros; returns chars consumed or 0. */
static size_t parse_num(const char *s, unsigned long long *out) {
    size_t i = 0;
    unsigned long long v = 0;
    if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && isdigit((unsigned char)s[1])))
        return 0;
    while (isdigit((unsigned char)s[i])) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (~0ULL - d) / 10)
            return 0;
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

int gov_version_parse(const char *s, gov_version_t *out) {
    if (s == NULL || strlen(s) >= GOV_VERSION_MAX)
        return -1;
    gov_version_t v;
    memset(&v, 0, sizeof v);
    size_t i = parse_num(s, &v.major);
    if (i == 0)
        return -1;
    if (s[i] == '\0') { /* a plain integer N reads as N.0.0 */
        *out = v;
        return 0;
    }
    size_t k;
    if (s[i] != '.' || (k = parse_num(s + i + 1, &v.minor)) == 0)
        return -1;
    i += 1 + k;
    if (s[i] != '.' || (k = parse_num(s + i + 1, &v.patch)) == 0)
        return -1;
    i += 1 + k;
    if (s[i] == '-') {
        const char *pre = s + i + 1;
        size_t plen = strcspn(pre, "+");
        if (!identifiers_valid(pre, plen, 1))
            return -1;
        memcpy(v.pre, pre, plen);
        v.pre[plen] = '\0';
        i += 1 + plen;
    }
    if (s[i] == '+') {
        if (!identifiers_valid(s + i + 1, strlen(s + i + 1), 0))
            return -1;
        i += strlen(s + i);
    }
    if (s[i] != '\0')
        return -1;
    *out = v;
    return 0;
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
