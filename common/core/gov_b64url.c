/* gov_b64url.c - strict unpadded base64url.
 *
 * What: the encoding JWS puts in each part of a compact token, and its one
 * strict decoder (docs/contracts.md, "JWT").  How: a 64-entry alphabet for
 * encoding and a 256-entry reverse table (-1 outside the alphabet) for
 * decoding, 4 characters to 3 bytes; a final group of 2 or 3 characters
 * carries 4 or 2 unused bits, which must be zero, so the encoder's output is
 * the only spelling accepted.  What it does not do: standard base64, padding,
 * line breaks or whitespace - all of those are refused, not skipped.
 */
#include "gov_b64url.h"

#include "gov_util.h"

static const char alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The value of c in the alphabet, or -1. */
static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

size_t gov_b64url_encoded_len(size_t n) {
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

size_t gov_b64url_decoded_len(size_t len) {
    return len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
}

void gov_b64url_encode(const void *in, size_t n, char *out) {
    const uint8_t *p = in;
    size_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        out[o++] = alphabet[p[i] >> 2];
        out[o++] = alphabet[(p[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
        out[o++] = alphabet[v >> 10];
        out[o++] = alphabet[(v >> 4) & 63];
        out[o++] = alphabet[(v << 2) & 63];
    }
    out[o] = '\0';
}

void gov_b64url_put(gov_buf_t *b, const void *in, size_t n) {
    const uint8_t *p = in;
    char chunk[4 * 64 + 1];
    /* nothing to reserve for nothing: an empty reservation would allocate
     * without the NUL an append writes */
    if (n == 0 || gov_buf_reserve(b, gov_b64url_encoded_len(n)) != GOV_OK)
        return;
    for (size_t i = 0; i < n; i += 3 * 64) {
        size_t take = n - i < 3 * 64 ? n - i : 3 * 64;
        gov_b64url_encode(p + i, take, chunk);
        gov_buf_put(b, chunk, gov_b64url_encoded_len(take));
    }
}

gov_err_t gov_b64url_decode(const char *text, size_t len, uint8_t *out, size_t out_cap,
                            size_t *out_len, char *errbuf, size_t errbuf_size) {
    if ((text == NULL && len > 0) || (out == NULL && out_cap > 0) || out_len == NULL) {
        gov_errbuf(errbuf, errbuf_size, "invalid argument");
        return GOV_ERR_INVALID_ARG;
    }
    *out_len = 0;
    /* Padding first: "QQ==" is a spelling of real bytes, not garbage, and is
     * told apart so a caller can name it. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '=') {
            gov_errbuf(errbuf, errbuf_size, "padding '=' at offset %zu", i);
            return GOV_ERR_UNSUPPORTED;
        }
        if (b64url_value(c) < 0) {
            gov_errbuf(errbuf, errbuf_size, "byte 0x%02x at offset %zu is not base64url", c, i);
            return GOV_ERR_PARSE;
        }
    }
    if (len % 4 == 1) {
        gov_errbuf(errbuf, errbuf_size, "length %zu is 1 mod 4", len);
        return GOV_ERR_PARSE;
    }
    size_t need = gov_b64url_decoded_len(len);
    if (need > out_cap) {
        gov_errbuf(errbuf, errbuf_size, "%zu bytes do not fit %zu", need, out_cap);
        return GOV_ERR_TOO_LARGE;
    }
    size_t o = 0, i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t v = (uint32_t)b64url_value((unsigned char)text[i]) << 18 |
                     (uint32_t)b64url_value((unsigned char)text[i + 1]) << 12 |
                     (uint32_t)b64url_value((unsigned char)text[i + 2]) << 6 |
                     (uint32_t)b64url_value((unsigned char)text[i + 3]);
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    if (len - i == 2) {
        uint32_t v = (uint32_t)b64url_value((unsigned char)text[i]) << 6 |
                     (uint32_t)b64url_value((unsigned char)text[i + 1]);
        if (v & 0xF) {
            gov_errbuf(errbuf, errbuf_size, "non-zero unused bits at offset %zu", i + 1);
            return GOV_ERR_UNSUPPORTED;
        }
        out[o++] = (uint8_t)(v >> 4);
    } else if (len - i == 3) {
        uint32_t v = (uint32_t)b64url_value((unsigned char)text[i]) << 12 |
                     (uint32_t)b64url_value((unsigned char)text[i + 1]) << 6 |
                     (uint32_t)b64url_value((unsigned char)text[i + 2]);
        if (v & 0x3) {
            gov_errbuf(errbuf, errbuf_size, "non-zero unused bits at offset %zu", i + 2);
            return GOV_ERR_UNSUPPORTED;
        }
        out[o++] = (uint8_t)(v >> 10);
        out[o++] = (uint8_t)(v >> 2);
    }
    *out_len = o;
    return GOV_OK;
}
