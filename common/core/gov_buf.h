/* gov_buf.h - the one growing byte buffer of libgov.
 *
 * Writers append; the buffer grows by doubling through gov_realloc.  The
 * first failure is sticky: an allocation failure (GOV_ERR_NOMEM), a size
 * overflow (GOV_ERR_NOMEM) or passing the caller's limit (GOV_ERR_TOO_LARGE)
 * is recorded in b->err, every later append is a no-op, and the caller checks
 * once at the end (gov_buf_finish).  That keeps serializers free of an error
 * check per byte without ever writing past what was allocated.
 *
 * The bytes are always NUL-terminated once anything was appended (the NUL
 * is not counted in len), so text can be handed on as a C string; binary
 * content may contain NUL bytes of its own.
 *
 *   gov_buf_t b;
 *   gov_buf_init(&b, 0);
 *   gov_buf_puts(&b, "{\"a\":");
 *   gov_buf_put_u64(&b, 42);
 *   gov_buf_putc(&b, '}');
 *   char *s; size_t n;
 *   if (gov_buf_finish(&b, &s, &n) != GOV_OK) ...   // b is empty either way
 *
 * Thread-safety: a buffer belongs to one thread at a time.
 */
#ifndef GOV_BUF_H
#define GOV_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"

typedef struct gov_buf {
    char *data;   /* owned; NULL until the first append */
    size_t len;   /* bytes written, not counting the trailing NUL */
    size_t cap;   /* bytes allocated */
    size_t limit; /* largest len allowed; 0: no limit but SIZE_MAX */
    gov_err_t err;/* first failure, sticky */
} gov_buf_t;

/* Starts an empty buffer; limit 0 means unbounded.  Allocates nothing. */
void gov_buf_init(gov_buf_t *b, size_t limit);

/* Makes sure n more bytes fit (plus the NUL); records the failure otherwise.
 * Returns b->err. */
gov_err_t gov_buf_reserve(gov_buf_t *b, size_t n);

/* Appenders: no-ops once b->err is set.  Cost: amortized O(n). */
void gov_buf_put(gov_buf_t *b, const void *data, size_t n);
void gov_buf_putc(gov_buf_t *b, char c);
void gov_buf_puts(gov_buf_t *b, const char *s);
void gov_buf_put_u64(gov_buf_t *b, uint64_t v);
void gov_buf_put_i64(gov_buf_t *b, int64_t v);
void gov_buf_printf(gov_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string: quotes around s[0..n), escaping '"', '\\' and the C0
 * controls the way RFC 8785 does (\b \t \n \f \r, else \u00XX); every other
 * byte goes out as is, so s must already be valid UTF-8. */
void gov_buf_put_json_string(gov_buf_t *b, const char *s, size_t n);

/* Length of the longest prefix of s[0..n) made of whole 8-byte blocks in
 * which no byte is '"', '\\' or below 0x20 (nor, when high is 1, 0x80 or
 * above): bytes a JSON string reader or writer copies as they are.  Eight
 * bytes per step (SWAR: the "has a byte less than" and "has a zero byte"
 * tests, exact for "any"), so the plain runs of a prompt cost about one
 * instruction a byte instead of four compares.  The caller handles the rest
 * byte by byte.  Pure, O(n). */
static inline size_t gov_json_plain_run(const char *s, size_t n, int high) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;
    while (n - i >= 8) {
        uint64_t x, q, bs;
        __builtin_memcpy(&x, s + i, 8);
        q = x ^ (ones * 0x22);
        bs = x ^ (ones * 0x5C);
        if ((((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs) |
             (high ? x : 0)) & highs)
            break;
        i += 8;
    }
    return i;
}

/* Empties the buffer (keeping its memory) and clears the error. */
void gov_buf_reset(gov_buf_t *b);

/* Hands the bytes over: on GOV_OK *out is a new NUL-terminated allocation
 * (gov_free; "" when nothing was written) and *out_len its length (out_len
 * may be NULL).  On failure returns b->err and *out is NULL.  Either way the
 * buffer is left empty and owns nothing. */
gov_err_t gov_buf_finish(gov_buf_t *b, char **out, size_t *out_len);

/* Releases the memory; the buffer is empty afterwards.  NULL is safe. */
void gov_buf_free(gov_buf_t *b);

#endif /* GOV_BUF_H */
