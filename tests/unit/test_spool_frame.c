/* test_spool_frame.c - the decision spool's frame and cursor codec
 * (common/core/gov_spool_frame.c): CRC-32C against the known answers of
 * RFC 3720 (iSCSI) appendix B.4 and the "123456789" check value; a record
 * written and read back; every cut of a record read as TORN (never as a
 * record) and every single-bit flip after the magic caught; another seq
 * (a stale lap), zeros and garbage read as END; wrap markers; the cursor
 * slots' CRC and the choice of the newer slot; the search for an intact
 * frame of a given seq behind damage; the file header's known bytes, its
 * CRC and version 1 (no CRC) still read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gov_spool_frame.h"

static void test_crc32c_known_answers(void **state) {
    (void)state;
    assert_int_equal(gov_crc32c(0, "123456789", 9), 0xE3069283u);
    uint8_t buf[32];
    memset(buf, 0, sizeof buf);              /* RFC 3720 B.4: 32 bytes of zeros */
    assert_int_equal(gov_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof buf);           /* 32 bytes of ones */
    assert_int_equal(gov_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)             /* incrementing */
        buf[i] = (uint8_t)i;
    assert_int_equal(gov_crc32c(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)             /* decrementing */
        buf[i] = (uint8_t)(31 - i);
    assert_int_equal(gov_crc32c(0, buf, 32), 0x113FDB5Cu);
    /* the byte table agrees with the instruction on every length */
    uint8_t big[1031];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 131 + 7);
    for (size_t n = 0; n <= sizeof big; n += 1 + n / 16)
        assert_int_equal(gov_crc32c(0, big, n), gov_crc32c_portable(0, big, n));
    assert_int_equal(gov_crc32c_portable(0, "123456789", 9), 0xE3069283u);
    /* continuing a CRC over two parts equals one pass */
    assert_int_equal(gov_crc32c(gov_crc32c(0, "12345", 5), "6789", 4), 0xE3069283u);
}

static void test_round_trip(void **state) {
    (void)state;
    uint8_t buf[256];
    const char *key = "tenant-a", *val = "an avro body, any bytes\x00\x01";
    size_t vl = 25, size = gov_spool_frame_size(8, vl);
    assert_int_equal(size % 8, 0);
    assert_int_equal(size, 72);
    memset(buf, 0xAB, sizeof buf);
    assert_int_equal(gov_spool_frame_write(buf, sizeof buf, 42, 1700000000123456, key, 8, val, vl),
                     GOV_OK);
    for (size_t i = GOV_SPOOL_FRAME_HEADER + 8 + vl; i < size; i++)
        assert_int_equal(buf[i], 0);   /* padding zeroed */
    gov_spool_frame_t f;
    assert_int_equal(gov_spool_frame_read(buf, size, 42, 1, &f), GOV_SPOOL_FRAME_RECORD);
    assert_int_equal(f.seq, 42);
    assert_int_equal(f.at_us, 1700000000123456);
    assert_int_equal(f.size, size);
    assert_int_equal(f.key_len, 8);
    assert_memory_equal(f.key, key, 8);
    assert_int_equal(f.value_len, vl);
    assert_memory_equal(f.value, val, vl);
    /* too small a buffer, too large a key */
    assert_int_equal(gov_spool_frame_write(buf, size - 1, 1, 0, key, 8, val, vl),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_spool_frame_write(buf, sizeof buf, 1, 0, key, 70000, val, vl),
                     GOV_ERR_TOO_LARGE);
}

static void test_torn_and_flipped(void **state) {
    (void)state;
    uint8_t buf[128];
    size_t size = gov_spool_frame_size(4, 40);
    uint8_t val[40];
    for (int i = 0; i < 40; i++)
        val[i] = (uint8_t)(i * 7);
    assert_int_equal(gov_spool_frame_write(buf, sizeof buf, 9, 5, "ten1", 4, val, 40), GOV_OK);
    gov_spool_frame_t f;
    /* every cut after the seq: TORN, never a record (kill -9 mid-write) */
    for (size_t cut = GOV_SPOOL_FRAME_HEADER; cut < GOV_SPOOL_FRAME_HEADER + 44; cut++)
        assert_int_equal(gov_spool_frame_read(buf, cut, 9, 1, &f), GOV_SPOOL_FRAME_TORN);
    /* a cut inside the header: END (nothing to read) */
    for (size_t cut = 0; cut < GOV_SPOOL_FRAME_HEADER; cut++)
        assert_int_equal(gov_spool_frame_read(buf, cut, 9, 1, &f), GOV_SPOOL_FRAME_END);
    /* the tail zeroed, as a torn write into a zeroed file leaves it */
    uint8_t torn[128];
    memcpy(torn, buf, size);
    memset(torn + 50, 0, size - 50);
    assert_int_equal(gov_spool_frame_read(torn, size, 9, 1, &f), GOV_SPOOL_FRAME_TORN);
    assert_int_equal(f.size, size);
    /* every bit flipped after the magic: not a record */
    for (size_t i = 4; i < GOV_SPOOL_FRAME_HEADER + 44; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(torn, buf, size);
            torn[i] ^= (uint8_t)(1u << bit);
            assert_int_not_equal(gov_spool_frame_read(torn, size, 9, 1, &f),
                                 GOV_SPOOL_FRAME_RECORD);
        }
    /* without the CRC check the intact frame still reads */
    assert_int_equal(gov_spool_frame_read(buf, size, 9, 0, &f), GOV_SPOOL_FRAME_RECORD);
}

static void test_end_and_wrap(void **state) {
    (void)state;
    uint8_t buf[64];
    gov_spool_frame_t f;
    memset(buf, 0, sizeof buf);
    assert_int_equal(gov_spool_frame_read(buf, sizeof buf, 1, 1, &f), GOV_SPOOL_FRAME_END);
    memset(buf, 0x5A, sizeof buf);
    assert_int_equal(gov_spool_frame_read(buf, sizeof buf, 1, 1, &f), GOV_SPOOL_FRAME_END);
    assert_int_equal(gov_spool_frame_read(NULL, 0, 1, 1, &f), GOV_SPOOL_FRAME_END);
    /* a record of an earlier lap (another seq) ends the log cleanly */
    assert_int_equal(gov_spool_frame_write(buf, sizeof buf, 3, 0, "k", 1, "v", 1), GOV_OK);
    assert_int_equal(gov_spool_frame_read(buf, sizeof buf, 4, 1, &f), GOV_SPOOL_FRAME_END);
    assert_int_equal(gov_spool_frame_read(buf, sizeof buf, 3, 1, &f), GOV_SPOOL_FRAME_RECORD);
    /* a wrap marker carries the seq of the record after it */
    assert_int_equal(gov_spool_frame_write_wrap(buf, 16, 7), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_spool_frame_write_wrap(buf, sizeof buf, 7), GOV_OK);
    assert_int_equal(gov_spool_frame_read(buf, sizeof buf, 7, 1, &f), GOV_SPOOL_FRAME_WRAP);
    assert_int_equal(gov_spool_frame_read(buf, sizeof buf, 8, 1, &f), GOV_SPOOL_FRAME_END);
    buf[20] ^= 1;   /* damaged marker: torn, not followed */
    assert_int_equal(gov_spool_frame_read(buf, sizeof buf, 7, 1, &f), GOV_SPOOL_FRAME_TORN);
}

static void test_cursor_slots(void **state) {
    (void)state;
    uint8_t slot[GOV_SPOOL_CURSOR_SLOT];
    gov_spool_cursor_t c = {.gen = 5, .lsn = 123456789012ull, .seq = 77}, r;
    memset(slot, 0, sizeof slot);
    assert_int_equal(gov_spool_cursor_read(slot, &r), GOV_ERR_PARSE);   /* never written */
    gov_spool_cursor_write(slot, &c);
    assert_int_equal(gov_spool_cursor_read(slot, &r), GOV_OK);
    assert_int_equal(r.gen, 5);
    assert_int_equal(r.lsn, 123456789012ull);
    assert_int_equal(r.seq, 77);
    /* a slot cut mid-write (half old, half new) is refused */
    uint8_t half[GOV_SPOOL_CURSOR_SLOT];
    gov_spool_cursor_t c2 = {.gen = 6, .lsn = 999, .seq = 80};
    gov_spool_cursor_write(half, &c2);
    memcpy(half + 16, slot + 16, 16);
    assert_int_equal(gov_spool_cursor_read(half, &r), GOV_ERR_PARSE);
}

static void test_find_behind_damage(void **state) {
    (void)state;
    uint8_t buf[256];
    size_t off = 1;
    memset(buf, 0, sizeof buf);
    /* seq 7 at offset 48, after 48 bytes of damage */
    memset(buf, 0xA5, 48);
    assert_int_equal(gov_spool_frame_write(buf + 48, sizeof buf - 48, 7, 0, "k", 1, "v", 1),
                     GOV_OK);
    assert_int_equal(gov_spool_frame_find(buf, sizeof buf, sizeof buf, 7, &off), GOV_OK);
    assert_int_equal(off, 48);
    assert_int_equal(gov_spool_frame_find(buf, sizeof buf, sizeof buf, 8, &off),
                     GOV_ERR_NOT_FOUND);   /* another seq */
    assert_int_equal(gov_spool_frame_find(buf, sizeof buf, 48, 7, &off),
                     GOV_ERR_NOT_FOUND);   /* beyond the span */
    assert_int_equal(gov_spool_frame_find(buf, 60, sizeof buf, 7, &off),
                     GOV_ERR_NOT_FOUND);   /* cut by avail */
    /* a wrap marker counts too; a frame of that seq failing its CRC does not */
    assert_int_equal(gov_spool_frame_write_wrap(buf + 48, sizeof buf - 48, 9), GOV_OK);
    assert_int_equal(gov_spool_frame_find(buf, sizeof buf, sizeof buf, 9, &off), GOV_OK);
    assert_int_equal(off, 48);
    buf[48 + 20] ^= 0x10;
    assert_int_equal(gov_spool_frame_find(buf, sizeof buf, sizeof buf, 9, &off),
                     GOV_ERR_NOT_FOUND);
    /* peek: a frame header of any seq, CRC unchecked; zeros are none */
    uint64_t seq = 1;
    assert_true(gov_spool_frame_peek(buf + 48, sizeof buf - 48, &seq));
    assert_int_equal(seq, 9);
    assert_false(gov_spool_frame_peek(buf + 128, sizeof buf - 128, &seq));
    assert_false(gov_spool_frame_peek(buf + 48, 16, &seq));
}

static void test_file_header(void **state) {
    (void)state;
    uint8_t h[GOV_SPOOL_HEADER_BYTES];
    char eb[128];
    uint64_t cap = 0;
    unsigned version = 0;
    gov_spool_header_write(h, 8192);
    /* known bytes: "GOVSPOOL", version 2, capacity 8192 LE, CRC-32C of the
     * 24 bytes before it (0x5E617890, computed independently with a
     * bitwise CRC-32C), zeros */
    static const uint8_t want[GOV_SPOOL_HEADER_BYTES] = {
        'G', 'O', 'V', 'S', 'P', 'O', 'O', 'L', 2, 0, 0, 0, 0, 0, 0, 0,
        0x00, 0x20, 0, 0, 0, 0, 0, 0, 0x90, 0x78, 0x61, 0x5E, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(h, want, sizeof want);
    assert_int_equal(gov_spool_header_read(h, &cap, &version, eb, sizeof eb), GOV_OK);
    assert_int_equal(cap, 8192);
    assert_int_equal(version, 2);
    /* close_seq is outside the CRC */
    gov_spool_header_set_close_seq(h, 0x0102030405060708ull);
    assert_int_equal(h[32], 0x08);
    assert_int_equal(h[39], 0x01);
    assert_int_equal(gov_spool_header_read(h, &cap, &version, eb, sizeof eb), GOV_OK);
    /* a flipped capacity bit is caught */
    h[17] ^= 0x01;
    assert_int_equal(gov_spool_header_read(h, &cap, &version, eb, sizeof eb), GOV_ERR_PARSE);
    assert_non_null(strstr(eb, "CRC"));
    assert_int_equal(cap, 0);
    /* version 1: the same without a CRC, read as it is */
    h[17] ^= 0x01;
    h[8] = 1;
    memset(h + 24, 0, 4);
    assert_int_equal(gov_spool_header_read(h, &cap, &version, eb, sizeof eb), GOV_OK);
    assert_int_equal(version, 1);
    assert_int_equal(cap, 8192);
    h[8] = 3;
    assert_int_equal(gov_spool_header_read(h, &cap, &version, eb, sizeof eb), GOV_ERR_PARSE);
    assert_non_null(strstr(eb, "not a decision spool"));
    h[8] = 2;
    h[0] = 'X';
    assert_int_equal(gov_spool_header_read(h, &cap, &version, eb, sizeof eb), GOV_ERR_PARSE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_answers),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_torn_and_flipped),
        cmocka_unit_test(test_end_and_wrap),
        cmocka_unit_test(test_cursor_slots),
        cmocka_unit_test(test_find_behind_damage),
        cmocka_unit_test(test_file_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
