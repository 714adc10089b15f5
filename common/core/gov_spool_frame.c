/* gov_spool_frame.c - frames and cursor slots of the decision spool.
 *
 * What: the byte format gov_spool.c writes into its mapped ring (see the
 * header): self-delimiting, checksummed records that a reader can tell from
 * zeros, from stale records of an earlier lap (by seq) and from a record a
 * kill cut short (by CRC), and a double-slot cursor.
 * How: fixed 32-byte headers, little-endian integers, CRC-32C by
 * slicing-by-8 tables built once.  The CRC covers everything after itself,
 * seq and lengths included, so a torn header is caught like a torn body.
 * Not: no file or memory mapping (gov_spool.c), no compression, no
 * encryption (the spool holds what policy.decisions holds; its directory's
 * permissions protect it, docs/runbooks/security.md).
 */
#include "gov_spool_frame.h"

#include <pthread.h>
#include <string.h>

#define MAGIC_RECORD 0x31465347u /* "GSF1" */
#define MAGIC_WRAP 0x57465347u   /* "GSFW" */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

uint32_t gov_crc32c(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
              crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
              crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xFF];
    return ~crc;
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

size_t gov_spool_frame_size(size_t key_len, size_t value_len) {
    return (GOV_SPOOL_FRAME_HEADER + key_len + value_len + 7u) & ~(size_t)7u;
}

/* The header after the CRC: seq, at_us, lengths. */
static void put_header(uint8_t *out, uint32_t magic, uint64_t seq, int64_t at_us,
                       size_t key_len, size_t value_len) {
    put32(out, magic);
    put64(out + 8, seq);
    put64(out + 16, (uint64_t)at_us);
    put32(out + 24, (uint32_t)value_len);
    out[28] = (uint8_t)key_len;
    out[29] = (uint8_t)(key_len >> 8);
    out[30] = out[31] = 0;
}

gov_err_t gov_spool_frame_write(uint8_t *out, size_t out_size, uint64_t seq, int64_t at_us,
                                const void *key, size_t key_len, const void *value,
                                size_t value_len) {
    if (key_len > GOV_SPOOL_FRAME_MAX_KEY || value_len > GOV_SPOOL_FRAME_MAX_VALUE)
        return GOV_ERR_TOO_LARGE;
    size_t size = gov_spool_frame_size(key_len, value_len);
    if (out == NULL || out_size < size)
        return GOV_ERR_INVALID_ARG;
    put_header(out, MAGIC_RECORD, seq, at_us, key_len, value_len);
    uint8_t *p = out + GOV_SPOOL_FRAME_HEADER;
    if (key_len)
        memcpy(p, key, key_len);
    if (value_len)
        memcpy(p + key_len, value, value_len);
    size_t used = GOV_SPOOL_FRAME_HEADER + key_len + value_len;
    memset(out + used, 0, size - used);
    put32(out + 4, gov_crc32c(0, out + 8, used - 8));
    return GOV_OK;
}

gov_err_t gov_spool_frame_write_wrap(uint8_t *out, size_t out_size, uint64_t seq) {
    if (out == NULL || out_size < GOV_SPOOL_FRAME_HEADER)
        return GOV_ERR_INVALID_ARG;
    put_header(out, MAGIC_WRAP, seq, 0, 0, 0);
    put32(out + 4, gov_crc32c(0, out + 8, GOV_SPOOL_FRAME_HEADER - 8));
    return GOV_OK;
}

gov_spool_frame_kind_t gov_spool_frame_read(const uint8_t *buf, size_t avail,
                                            uint64_t expect_seq, int verify_crc,
                                            gov_spool_frame_t *out) {
    memset(out, 0, sizeof *out);
    if (buf == NULL || avail < GOV_SPOOL_FRAME_HEADER)
        return GOV_SPOOL_FRAME_END;
    uint32_t magic = get32(buf);
    if (magic != MAGIC_RECORD && magic != MAGIC_WRAP)
        return GOV_SPOOL_FRAME_END;
    if (get64(buf + 8) != expect_seq)
        return GOV_SPOOL_FRAME_END;   /* stale: an earlier lap's frame */
    size_t value_len = get32(buf + 24);
    size_t key_len = (size_t)buf[28] | (size_t)buf[29] << 8;
    out->seq = expect_seq;
    out->at_us = (int64_t)get64(buf + 16);
    size_t used = GOV_SPOOL_FRAME_HEADER + key_len + value_len;
    size_t size = gov_spool_frame_size(key_len, value_len);
    int bad = buf[30] != 0 || buf[31] != 0 || value_len > GOV_SPOOL_FRAME_MAX_VALUE;
    if (magic == MAGIC_WRAP)
        bad |= key_len != 0 || value_len != 0;
    /* the whole frame, padding included, must be there: a writer never
     * starts one that does not fit */
    if (bad || size > avail ||
        (verify_crc && get32(buf + 4) != gov_crc32c(0, buf + 8, used - 8))) {
        out->size = size > avail ? avail : size;
        return GOV_SPOOL_FRAME_TORN;
    }
    out->size = size;
    if (magic == MAGIC_WRAP)
        return GOV_SPOOL_FRAME_WRAP;
    out->key = buf + GOV_SPOOL_FRAME_HEADER;
    out->key_len = key_len;
    out->value = buf + GOV_SPOOL_FRAME_HEADER + key_len;
    out->value_len = value_len;
    return GOV_SPOOL_FRAME_RECORD;
}

void gov_spool_cursor_write(uint8_t *out, const gov_spool_cursor_t *c) {
    put64(out + 8, c->gen);
    put64(out + 16, c->lsn);
    put64(out + 24, c->seq);
    put32(out + 4, 0);
    put32(out, gov_crc32c(0, out + 4, GOV_SPOOL_CURSOR_SLOT - 4));
}

gov_err_t gov_spool_cursor_read(const uint8_t *in, gov_spool_cursor_t *out) {
    memset(out, 0, sizeof *out);
    if (get32(in) != gov_crc32c(0, in + 4, GOV_SPOOL_CURSOR_SLOT - 4) || get64(in + 8) == 0)
        return GOV_ERR_PARSE;
    out->gen = get64(in + 8);
    out->lsn = get64(in + 16);
    out->seq = get64(in + 24);
    return GOV_OK;
}
