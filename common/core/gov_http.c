/* gov_http.c - strict HTTP/1.1 request framing rules, pure.
 *
 * Two scanners over bytes a client controls: the raw request target, and
 * the framing headers already counted by the caller.  Both look at each byte
 * once and allocate nothing; the first rule broken decides the reason.  They
 * refuse what a proxy in front could read differently from us (several or
 * mixed length headers: request smuggling) and what would change meaning
 * once decoded (%00 cuts the path where the router sees it, %2F re-splits
 * it).
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

gov_err_t gov_http_target_check(const char *target, size_t len, gov_reason_t *why, char *errbuf,
                                size_t errbuf_size) {
    int in_query = 0;
    const char *problem = NULL;
    size_t i = 0;
    if (target == NULL || len == 0) {
        problem = "an empty request target";
    }
    for (; problem == NULL && i < len; i++) {
        unsigned char c = (unsigned char)target[i];
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
