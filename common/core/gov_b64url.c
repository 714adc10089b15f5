/* gov_b64url.c - strict unpadded base64url, and strict padded base64.
 *
 * What: the encoding JWS puts in each part of a compact token, and its one
 * strict decoder (docs/contracts.md, "JWT"); the same decoder over the
 * standard alphabet with its '=' padding, for HTTP Basic credentials
 * (RFC 7617, RFC 6749 section 2.3.1).  How: a 64-entry alphabet for
 * encoding and a reverse lookup (-1 outside the alphabet) for decoding, 4
 * characters to 3 bytes; a final group of 2 or 3 characters carries 4 or 2
 * unused bits, which must be zero, so the encoder's output is the only
 * spelling accepted.  Standard base64 strips exactly the padding its length
 * calls for and then decodes the rest through the same loop with '+' and
 * '/' in place of '-' and '_'.  What it does not do: line breaks,
 * whitespace, mixed alphabets or missing padding - all of those are
 * refused, not skipped.
 */
#include "gov_b64url.h"

#include "gov_util.h"

static const char alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The last two characters of an alphabet: "-_" (base64url) or "+/". */
typedef struct b64_tail {
    unsigned char c62, c63;
} b64_tail_t;

static const b64_tail_t url_tail = {'-', '_'}, std_tail = {'+', '/'};

/* The value of c in the alphabet ending in t, or -1. */
static int b64_value(unsigned char c, b64_tail_t t) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == t.c62)
        return 62;
    if (c == t.c63)
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

/* The strict unpadded decoder over the alphabet ending in t; the caller
 * checked the arguments and set *out_len to 0.  O(len). */
static gov_err_t decode_unpadded(const char *text, size_t len, b64_tail_t t, uint8_t *out,
                                 size_t out_cap, size_t *out_len, char *errbuf,
                                 size_t errbuf_size) {
    /* Padding first: "QQ==" is a spelling of real bytes, not garbage, and is
     * told apart so a caller can name it. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '=') {
            gov_errbuf(errbuf, errbuf_size, "padding '=' at offset %zu", i);
            return GOV_ERR_UNSUPPORTED;
        }
        if (b64_value(c, t) < 0) {
            gov_errbuf(errbuf, errbuf_size, "byte 0x%02x at offset %zu is not %s", c, i,
                       t.c62 == '-' ? "base64url" : "base64");
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
        uint32_t v = (uint32_t)b64_value((unsigned char)text[i], t) << 18 |
                     (uint32_t)b64_value((unsigned char)text[i + 1], t) << 12 |
                     (uint32_t)b64_value((unsigned char)text[i + 2], t) << 6 |
                     (uint32_t)b64_value((unsigned char)text[i + 3], t);
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    if (len - i == 2) {
        uint32_t v = (uint32_t)b64_value((unsigned char)text[i], t) << 6 |
                     (uint32_t)b64_value((unsigned char)text[i + 1], t);
        if (v & 0xF) {
            gov_errbuf(errbuf, errbuf_size, "non-zero unused bits at offset %zu", i + 1);
            return GOV_ERR_UNSUPPORTED;
        }
        out[o++] = (uint8_t)(v >> 4);
    } else if (len - i == 3) {
        uint32_t v = (uint32_t)b64_value((unsigned char)text[i], t) << 12 |
                     (uint32_t)b64_value((unsigned char)text[i + 1], t) << 6 |
                     (uint32_t)b64_value((unsigned char)text[i + 2], t);
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

static int decode_args_invalid(const char *text, size_t len, const uint8_t *out, size_t out_cap,
                               size_t *out_len, char *errbuf, size_t errbuf_size) {
    if ((text == NULL && len > 0) || (out == NULL && out_cap > 0) || out_len == NULL) {
        gov_errbuf(errbuf, errbuf_size, "invalid argument");
        return 1;
    }
    *out_len = 0;
    return 0;
}

gov_err_t gov_b64url_decode(const char *text, size_t len, uint8_t *out, size_t out_cap,
                            size_t *out_len, char *errbuf, size_t errbuf_size) {
    if (decode_args_invalid(text, len, out, out_cap, out_len, errbuf, errbuf_size))
        return GOV_ERR_INVALID_ARG;
    return decode_unpadded(text, len, url_tail, out, out_cap, out_len, errbuf, errbuf_size);
}

gov_err_t gov_b64_decode(const char *text, size_t len, uint8_t *out, size_t out_cap,
                         size_t *out_len, char *errbuf, size_t errbuf_size) {
    if (decode_args_invalid(text, len, out, out_cap, out_len, errbuf, errbuf_size))
        return GOV_ERR_INVALID_ARG;
    if (len % 4 != 0) {
        gov_errbuf(errbuf, errbuf_size, "length %zu is not a multiple of 4 (padding missing)",
                   len);
        return GOV_ERR_PARSE;
    }
    /* a length that is a multiple of 4 calls for exactly the '=' it ends in
     * (at most two); one more anywhere is refused by the unpadded decoder */
    size_t pad = 0;
    while (pad < 2 && pad < len && text[len - 1 - pad] == '=')
        pad++;
    return decode_unpadded(text, len - pad, std_tail, out, out_cap, out_len, errbuf, errbuf_size);
}
