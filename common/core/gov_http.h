/* gov_http.h - strict HTTP/1.1 request framing rules, pure.
 *
 * What gov-edge refuses before it reads a request body, decided from what
 * the client sent and nothing else (no socket here): the raw request target
 * the framing headers (Content-Length, Transfer-Encoding, every
 * occurrence counted), and the name and value of every header field.  http-edge/server.c feeds them from libmicrohttpd;
 * the fuzz target and the unit test feed them directly.
 *
 * Thread-safety: stateless; every function may be called from any thread.
 */
#ifndef GOV_HTTP_H
#define GOV_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_reason.h"

/* The framing headers of one request, as received. */
typedef struct gov_http_framing {
    unsigned content_length_count;      /* occurrences of Content-Length */
    const char *content_length;         /* the last one's value (borrowed), or NULL */
    unsigned transfer_encoding_count;   /* occurrences of Transfer-Encoding */
    const char *transfer_encoding;      /* the last one's value (borrowed), or NULL */
} gov_http_framing_t;

/* Checks the raw request target (len bytes, as the client sent it, before
 * any decoding): printable ASCII only, every '%' followed by two hex digits,
 * no escape of a control byte (%00-%1F, %7F) anywhere, no escaped '/' (%2F)
 * in the path (before '?'), no '#', and no path segment that is "." or ".."
 * once decoded ("%2e%2e" too): a proxy in front routes on the path with
 * them removed (RFC 3986 section 5.2.4) and may forward it as sent, so the
 * two would route one request differently (review 11, M1).  Bytes above
 * ASCII must be escaped (their UTF-8 is the router's business once
 * decoded).  GOV_OK, or GOV_ERR_PARSE
 * with *why = GOV_REASON_INVALID_PATH (why may be NULL) and the offending
 * offset in errbuf.  O(len). */
gov_err_t gov_http_target_check(const char *target, size_t len, gov_reason_t *why, char *errbuf,
                                size_t errbuf_size);

/* Checks the framing headers against RFC 9112 section 6 as a strict server
 * reads it: at most one Content-Length, of 1 to 19 decimal digits; never
 * Content-Length with Transfer-Encoding; Transfer-Encoding, if present, once
 * and exactly "chunked" (any case).  Then a Content-Length above max_body.
 * GOV_OK with *declared = the Content-Length, or -1 when there is none
 * (chunked or no body); GOV_ERR_PARSE with *why = GOV_REASON_INVALID_FRAMING,
 * or GOV_ERR_TOO_LARGE with *why = GOV_REASON_BODY_TOO_LARGE, the detail in
 * errbuf.  declared and why may be NULL.  O(length of the values). */
gov_err_t gov_http_framing_check(const gov_http_framing_t *f, uint64_t max_body,
                                 int64_t *declared, gov_reason_t *why, char *errbuf,
                                 size_t errbuf_size);

/* Checks one header field as libmicrohttpd 0.9.75 hands it over (name
 * without the colon, value without surrounding whitespace).  That parser
 * keeps whitespace between the name and the colon in the name
 * ("Content-Length " is not Content-Length to it, so a body becomes a second
 * request), and joins an obs-fold continuation line to the *name* of the
 * field before it, leading whitespace dropped ("Content-Length: 5\r\n 0"
 * arrives as "Content-Length0: 5").  RFC 9112 sections 5.1 and 5.2 want 400
 * for both, so refused are: a name that is not a token (RFC 9110 section
 * 5.6.2: empty, or holding a space, tab, ':' or any other delimiter); a name
 * that starts with Content-Length or Transfer-Encoding and goes on (a folded
 * framing field); a value with a control byte other than tab.  GOV_OK, or
 * GOV_ERR_PARSE with *why = GOV_REASON_INVALID_FRAMING (why may be NULL) and
 * the detail in errbuf.  NULL name or value is refused.  O(length). */
gov_err_t gov_http_field_check(const char *name, const char *value, gov_reason_t *why,
                               char *errbuf, size_t errbuf_size);

#endif /* GOV_HTTP_H */
