/* gov_buf.c - the growing byte buffer.
 *
 * Growth doubles the capacity (first allocation 256 bytes), so n appends
 * cost O(total) copies.  Every size computation is checked before it is
 * made: len + n + 1 must not wrap, the doubling must not wrap, and the
 * caller's limit bounds len.  A failure is recorded once and never cleared
 * except by gov_buf_reset, so a serializer can append blindly and look once.
 */
#include "gov_buf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"

#define FIRST_CAPACITY 256

void gov_buf_init(gov_buf_t *b, size_t limit) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
    b->err = GOV_OK;
}

gov_err_t gov_buf_reserve(gov_buf_t *b, size_t n) {
    if (b->err != GOV_OK)
        return b->err;
    if (n > SIZE_MAX - 1 - b->len) {
        b->err = GOV_ERR_NOMEM;
        return b->err;
    }
    size_t need = b->len + n + 1; /* with the NUL */
    if (b->limit != 0 && need - 1 > b->limit) {
        b->err = GOV_ERR_TOO_LARGE;
        return b->err;
    }
    if (need <= b->cap)
        return GOV_OK;
    size_t cap = b->cap ? b->cap : FIRST_CAPACITY;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = gov_realloc(b->data, cap);
    if (p == NULL) {
        b->err = GOV_ERR_NOMEM;
        return b->err;
    }
    b->data = p;
    b->cap = cap;
    return GOV_OK;
}

void gov_buf_put(gov_buf_t *b, const void *data, size_t n) {
    if (gov_buf_reserve(b, n) != GOV_OK)
        return;
    if (n > 0)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void gov_buf_putc(gov_buf_t *b, char c) {
    gov_buf_put(b, &c, 1);
}

void gov_buf_puts(gov_buf_t *b, const char *s) {
    gov_buf_put(b, s, strlen(s));
}

void gov_buf_put_u64(gov_buf_t *b, uint64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    gov_buf_put(b, tmp, (size_t)n);
}

void gov_buf_put_i64(gov_buf_t *b, int64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    gov_buf_put(b, tmp, (size_t)n);
}

void gov_buf_printf(gov_buf_t *b, const char *fmt, ...) {
    if (b->err != GOV_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = GOV_ERR_INVALID_ARG;
        return;
    }
    if (gov_buf_reserve(b, (size_t)n) != GOV_OK)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void gov_buf_put_json_string(gov_buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the pending run of bytes that need no escape */
    gov_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        i += gov_json_plain_run(s + i, n - i, 0);
        if (i >= n)
            break;
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\t')
            esc = "\\t";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\f')
            esc = "\\f";
        else if (c == '\r')
            esc = "\\r";
        else if (c < 0x20) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = '\0';
            esc = u;
        }
        if (esc != NULL) {
            gov_buf_put(b, s + run, i - run);
            gov_buf_puts(b, esc);
            run = i + 1;
        }
    }
    gov_buf_put(b, s + run, n - run);
    gov_buf_putc(b, '"');
}

void gov_buf_reset(gov_buf_t *b) {
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
    b->err = GOV_OK;
}

gov_err_t gov_buf_finish(gov_buf_t *b, char **out, size_t *out_len) {
    gov_err_t err = b->err;
    *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    if (err == GOV_OK && b->data == NULL) {
        b->data = gov_malloc(1);
        if (b->data == NULL)
            err = GOV_ERR_NOMEM;
        else
            b->data[0] = '\0';
    }
    if (err != GOV_OK) {
        gov_buf_free(b);
        return err;
    }
    *out = b->data;
    if (out_len != NULL)
        *out_len = b->len;
    gov_buf_init(b, b->limit);
    return GOV_OK;
}

void gov_buf_free(gov_buf_t *b) {
    if (b == NULL)
        return;
    gov_free(b->data);
    gov_buf_init(b, b->limit);
}
