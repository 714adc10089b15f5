/* gov_http.c - strict HTTP/1.1 request framing rules, pure.
 *
 * Three scanners over bytes a client controls: the raw request target, the
 * framing headers already counted by the caller, and each header field.  Both look at each byte
 * once and allocate nothing; the first rule broken decides the reason.  They
 * refuse what a proxy in front could read differently from us (several or
 * mixed length headers: request smuggling) and what would change meaning
 * once decoded (%00 cuts the path where the router sees it, %2F re-splits
 * it, "." and ".." segments are removed by a proxy that routes on the
 * result), and header fields libmicrohttpd reads differently from RFC 9112
 * (whitespace before the colon, obs-fold lines: a proxy that honours the
 * field and we who lose it disagree on where the body ends).
 *
 * What it does not do: parse HTTP itself (libmicrohttpd does), decode the
 * target, or know any route.
 */
#include "gov_http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 1 when the n bytes at s, a path segment as sent, decode to "." or "..":
 * each byte a '.' or a "%2e" / "%2E" escape (RFC 3986 section 2.3: an
 * escaped unreserved byte is that byte). */
static int dot_segment(const char *s, size_t n) {
    size_t dots = 0;
    for (size_t i = 0; i < n; dots++) {
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '%' && n - i >= 3 &&
                   s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E')) {
            i += 3;
        } else {
            return 0;
        }
    }
    return dots == 1 || dots == 2;
}

gov_err_t gov_http_target_check(const char *target, size_t len, gov_reason_t *why, char *errbuf,
                                size_t errbuf_size) {
    int in_query = 0;
    const char *problem = NULL;
    size_t i = 0, seg = 0;   /* seg: where the current path segment starts */
    if (target == NULL || len == 0) {
        problem = "an empty request target";
    }
    for (; problem == NULL && i <= len; i++) {
        int end = i == len;
        unsigned char c = end ? '/' : (unsigned char)target[i];
        if (!in_query && (c == '/' || c == '?')) {
            /* the segment [seg, i) ends: "." and ".." would be removed by
             * RFC 3986 remove_dot_segments in a proxy in front (nginx routes
             * on the result) but kept as names here */
            if (dot_segment(target + seg, i - seg)) {
                problem = "a \".\" or \"..\" path segment";
                i = seg;
                break;
            }
            seg = i + 1;
        }
        if (end)
            break;
        if (c <= 0x20 || c >= 0x7f) {
            problem = "a control byte or a byte outside ASCII";
            break;
        }
        if (c == '#') {
            problem = "a fragment";
            break;
        }
        if (c == '?')
            in_query = 1;
        if (c != '%')
            continue;
        int hi = i + 1 < len ? hexval((unsigned char)target[i + 1]) : -1;
        int lo = hi >= 0 && i + 2 < len ? hexval((unsigned char)target[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            problem = "a '%' not followed by two hex digits";
            break;
        }
        int v = hi * 16 + lo;
        if (v < 0x20 || v == 0x7f) {
            problem = "an escaped control byte";
            break;
        }
        if (!in_query && v == '/') {
            problem = "an escaped '/' in the path";
            break;
        }
        i += 2;
    }
    if (problem == NULL)
        return GOV_OK;
    return gov_reason_fail(why, GOV_REASON_INVALID_PATH, GOV_ERR_PARSE, errbuf, errbuf_size,
                           "the request target has %s at offset %zu", problem, i);
}

gov_err_t gov_http_framing_check(const gov_http_framing_t *f, uint64_t max_body,
                                 int64_t *declared, gov_reason_t *why, char *errbuf,
                                 size_t errbuf_size) {
    if (declared)
        *declared = -1;
    const char *problem = NULL;
    const char *cl = f->content_length_count ? f->content_length : NULL;
    if (f->content_length_count > 1)
        problem = "more than one Content-Length";
    else if (f->content_length_count && f->transfer_encoding_count)
        problem = "Content-Length together with Transfer-Encoding";
    else if (f->transfer_encoding_count > 1)
        problem = "more than one Transfer-Encoding";
    else if (f->transfer_encoding_count &&
             (f->transfer_encoding == NULL || strcasecmp(f->transfer_encoding, "chunked") != 0))
        problem = "a Transfer-Encoding other than \"chunked\"";
    else if (f->content_length_count &&
             (cl == NULL || cl[0] == '\0' || strlen(cl) > 19 ||
              strspn(cl, "0123456789") != strlen(cl)))
        problem = "a Content-Length that is not 1 to 19 decimal digits";
    if (problem)
        return gov_reason_fail(why, GOV_REASON_INVALID_FRAMING, GOV_ERR_PARSE, errbuf,
                               errbuf_size, "the request has %s", problem);
    if (cl == NULL)
        return GOV_OK;
    uint64_t n = 0;
    for (const char *p = cl; *p; p++)
        n = n * 10 + (uint64_t)(*p - '0'); /* 19 digits < 2^64 */
    if (n > max_body)
        return gov_reason_fail(why, GOV_REASON_BODY_TOO_LARGE, GOV_ERR_TOO_LARGE, errbuf,
                               errbuf_size, "request body exceeds %llu bytes",
                               (unsigned long long)max_body);
    if (declared)
        *declared = (int64_t)n;
    return GOV_OK;
}

/* RFC 9110 section 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" /
 * "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. */
static int is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* 1 when name starts with prefix (any case) and has more after it. */
static int extends_name(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    return strncasecmp(name, prefix, n) == 0 && name[n] != '\0';
}

gov_err_t gov_http_field_check(const char *name, const char *value, gov_reason_t *why,
                               char *errbuf, size_t errbuf_size) {
    const char *problem = NULL;
    size_t at = 0;
    if (name == NULL || value == NULL || name[0] == '\0') {
        problem = "an empty header name";
    } else {
        for (; name[at] != '\0'; at++)
            if (!is_tchar((unsigned char)name[at])) {
                problem = "a header name that is not a token (whitespace before the colon, "
                          "or a folded line)";
                break;
            }
        if (problem == NULL &&
            (extends_name(name, "Content-Length") || extends_name(name, "Transfer-Encoding"))) {
            problem = "a folded Content-Length or Transfer-Encoding line";
            at = 0;
        }
        for (size_t i = 0; problem == NULL && value[i] != '\0'; i++) {
            unsigned char c = (unsigned char)value[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                problem = "a header value with a control byte";
                at = i;
            }
        }
    }
    if (problem == NULL)
        return GOV_OK;
    return gov_reason_fail(why, GOV_REASON_INVALID_FRAMING, GOV_ERR_PARSE, errbuf, errbuf_size,
                           "the request has %s at offset %zu", problem, at);
}
