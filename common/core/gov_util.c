/* gov_util.c - UUIDv7 formatting, hex, tenant and UTF-8 checks.
 *
 * Pure: nothing here reads a clock, draws randomness or does I/O (those live
 * in the runtime's gov_time.c); nothing keeps state.
 */
#include "gov_util.h"

#include "gov_alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gov_errbuf_v(char *errbuf, size_t errbuf_size, const char *fmt, va_list ap) {
    if (errbuf == NULL || errbuf_size == 0)
        return;
    vsnprintf(errbuf, errbuf_size, fmt, ap);
}

void gov_errbuf(char *errbuf, size_t errbuf_size, const char *fmt, ...) {
    GOV_FORMAT_VA(errbuf, errbuf_size, fmt);
}

void gov_hex_encode(const unsigned char *in, size_t len, char *out) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int gov_hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen) {
    if (inlen != 2 * outlen)
        return -1;
    for (size_t i = 0; i < outlen; i++) {
        int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int gov_hex_u16(const void *in, uint32_t *out) {
    unsigned char b[2];
    if (gov_hex_decode(in, 4, b, 2) != 0)
        return -1;
    *out = (uint32_t)b[0] << 8 | b[1];
    return 0;
}

void gov_uuid_v7_format(uint64_t unix_ms, const unsigned char rnd[10],
                        char out[GOV_UUID_STRLEN + 1]) {
    unsigned char b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(unix_ms >> (40 - 8 * i));
    memcpy(b + 6, rnd, 10);
    b[6] = (unsigned char)(0x70 | (b[6] & 0x0F)); /* version 7 */
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3F)); /* variant 10 */
    char hex[33];
    gov_hex_encode(b, 16, hex);
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[36] = '\0';
}

gov_err_t gov_uuid_v7_derive(uint64_t unix_ms, const char *seed,
                             char out[GOV_UUID_STRLEN + 1]) {
    unsigned char md[GOV_SHA256_LEN];
    gov_err_t err = gov_sha256(seed, strlen(seed), md);
    if (err == GOV_OK)
        gov_uuid_v7_format(unix_ms, md, out);
    return err;
}

int gov_uuid_v7_valid(const char *s) {
    if (s == NULL || strlen(s) != GOV_UUID_STRLEN)
        return 0;
    for (int i = 0; i < GOV_UUID_STRLEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return s[14] == '7' && (s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b');
}

int gov_tenant_valid(const char *s, size_t len) {
    if (s == NULL || len == 0 || len > GOV_TENANT_MAX)
        return 0;
    if (s[0] == '.' || s[0] == '-')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

size_t gov_utf8_seq_len(const unsigned char *s, size_t avail) {
    if (avail == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return avail >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        /* E0: no overlongs (>= A0); ED: no surrogates (<= 9F) */
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return avail >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        /* F0: no overlongs (>= 90); F4: nothing above U+10FFFF (<= 8F) */
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return avail >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
               (s[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

int gov_utf8_valid(const void *buf, size_t len) {
    const unsigned char *p = buf;
    size_t i = 0;
    while (i < len) {
        size_t n = gov_utf8_seq_len(p + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

char *gov_utf8_sanitize(const char *s, size_t max_bytes) {
    size_t len = strlen(s);
    size_t cap = len * 3 < max_bytes ? len * 3 : max_bytes;
    char *out = gov_malloc(cap + 1);
    if (out == NULL)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t n = gov_utf8_seq_len(p + i, len - i);
        const unsigned char *src = p + i;
        size_t advance = n;
        if (n == 0) {
            src = (const unsigned char *)"\xef\xbf\xbd";
            n = 3;
            advance = 1;
        }
        if (o + n > cap)
            break;
        memcpy(out + o, src, n);
        o += n;
        i += advance;
    }
    out[o] = '\0';
    return out;
}

void gov_utf8_shorten(char *dst, size_t dst_size, const char *s, size_t max_bytes) {
    if (dst == NULL || dst_size == 0)
        return;
    size_t o = 0, i = 0, len = strlen(s);
    size_t room = dst_size > 4 ? dst_size - 4 : 0; /* "..." and the NUL */
    size_t cap = max_bytes < room ? max_bytes : room;
    while (i < len && o < cap) {
        size_t sl = gov_utf8_seq_len((const unsigned char *)s + i, len - i);
        if (sl == 0 || o + sl > cap)
            break;
        for (size_t j = 0; j < sl; j++) {
            unsigned char ch = (unsigned char)s[i + j];
            dst[o++] = (sl == 1 && (ch < 0x20 || ch == 0x7f)) ? '?' : (char)ch;
        }
        i += sl;
    }
    if (i < len && o + 4 <= dst_size) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}
