/* test_spool.c - the decision spool's file (common/runtime/gov_spool.c)
 * without Kafka: appends until full (GOV_ERR_UNAVAILABLE, counted), a
 * reopen finds every record again (replayed) and accepts no more; a second
 * open of the same directory is refused (flock); a file cut mid-record is
 * extended and its torn record cut and counted; a file that is not a spool
 * is refused; damage the spool cannot explain (a bad record with intact
 * ones behind it, a lost cursor, a changed capacity) refuses the open and
 * leaves the file as it was.  The drain and Kafka are tested by
 * test_decision_spool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_spool.h"
#include "gov_spool_frame.h"

static char dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_spool.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/decisions.spool", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

static gov_spool_config_t cfg(void) {
    return (gov_spool_config_t){.dir = dir, .capacity = 8192, .sync_ms = 0,
                                .degraded_pct = 50, .topic = "policy.decisions"};
}

static void test_full_reopen_torn(void **state) {
    (void)state;
    char eb[256];
    gov_spool_config_t c = cfg();
    gov_spool_t *s = NULL, *other = NULL;
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_OK);
    /* a second process (here: a second open) is refused */
    assert_int_equal(gov_spool_open(&c, &other, eb, sizeof eb), GOV_ERR_EXISTS);
    assert_null(other);
    char val[200];
    memset(val, 'v', sizeof val);
    int n = 0;
    gov_err_t err;
    while ((err = gov_spool_append(s, "tenant", 6, val, sizeof val)) == GOV_OK)
        n++;
    assert_int_equal(err, GOV_ERR_UNAVAILABLE);
    assert_int_equal(n, 8192 / gov_spool_frame_size(6, sizeof val));
    assert_int_equal(gov_spool_append(s, "tenant", 6, val, 5000), GOV_ERR_TOO_LARGE);
    gov_spool_stats_t st;
    gov_spool_stats(s, &st);
    assert_int_equal(st.records, (uint64_t)n);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.next_seq, (uint64_t)n + 1);
    gov_spool_free(s);

    /* reopen: every record found again, still full */
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_OK);
    gov_spool_stats(s, &st);
    assert_int_equal(st.replayed, (uint64_t)n);
    assert_int_equal(st.records, (uint64_t)n);
    assert_int_equal(st.torn_bytes, 0);
    assert_int_equal(gov_spool_append(s, "tenant", 6, val, sizeof val), GOV_ERR_UNAVAILABLE);
    gov_spool_free(s);

    /* cut the file in the middle of the last record: extended, the torn
     * record cut and counted, the others kept */
    char path[128];
    snprintf(path, sizeof path, "%s/decisions.spool", dir);
    size_t fs = gov_spool_frame_size(6, sizeof val);
    assert_int_equal(truncate(path, (off_t)(4096 + (size_t)(n - 1) * fs + fs / 2)), 0);
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_OK);
    gov_spool_stats(s, &st);
    assert_int_equal(st.replayed, (uint64_t)n - 1);
    assert_true(st.torn_bytes > 0);
    /* the cut record's place is written again */
    assert_int_equal(gov_spool_append(s, "tenant", 6, val, sizeof val), GOV_OK);
    gov_spool_free(s);
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_OK);
    gov_spool_stats(s, &st);
    assert_int_equal(st.replayed, (uint64_t)n);
    assert_int_equal(st.torn_bytes, 0);
    gov_spool_free(s);
    unlink(path);
}

static void test_not_a_spool(void **state) {
    (void)state;
    char path[128], eb[256];
    snprintf(path, sizeof path, "%s/decisions.spool", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 5000; i++)
        fputc('x', f);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);   /* not refused for its mode first */
    gov_spool_config_t c = cfg();
    gov_spool_t *s = NULL;
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_ERR_PARSE);
    assert_null(s);
    assert_non_null(strstr(eb, "not a decision spool"));
    unlink(path);
    c.capacity = 100;   /* below the bound */
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_ERR_INVALID_ARG);
}

static void spool_path(char *path, size_t n) {
    snprintf(path, n, "%s/decisions.spool", dir);
}

static void poke(const char *path, off_t at, const void *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseeko(f, at, SEEK_SET), 0);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void peek_file(const char *path, off_t at, void *bytes, size_t n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseeko(f, at, SEEK_SET), 0);
    assert_int_equal(fread(bytes, 1, n, f), n);
    fclose(f);
}

/* Twenty 200-byte records; returns the frame size. */
static size_t fill20(void) {
    char eb[256], val[200];
    gov_spool_config_t c = cfg();
    gov_spool_t *s = NULL;
    memset(val, 'v', sizeof val);
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_OK);
    for (int i = 0; i < 20; i++)
        assert_int_equal(gov_spool_append(s, "tenant", 6, val, sizeof val), GOV_OK);
    gov_spool_free(s);
    return gov_spool_frame_size(6, sizeof val);
}

/* fill20 on the test's spool: its path and configuration. */
static gov_spool_config_t filled20(char *path, size_t n) {
    spool_path(path, n);
    fill20();
    return cfg();
}

static void test_damage_in_the_middle(void **state) {
    (void)state;
    char path[128], eb[512];
    spool_path(path, sizeof path);
    size_t fs = fill20();
    /* the clean close noted the next seq in the header (for stack.sh) */
    uint8_t close_seq[8];
    peek_file(path, 32, close_seq, sizeof close_seq);
    assert_int_equal(close_seq[0], 21);
    /* one byte of record 10's value flipped: 11..20 are intact behind it */
    uint8_t b;
    off_t at = (off_t)(4096 + 9 * fs + 100);
    peek_file(path, at, &b, 1);
    b ^= 0x40;
    poke(path, at, &b, 1);
    gov_spool_config_t c = cfg();
    gov_spool_t *s = NULL;
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_ERR_PARSE);
    assert_null(s);
    assert_non_null(strstr(eb, "record seq 10 "));
    assert_non_null(strstr(eb, "seq 11..20 follow it intact"));
    assert_non_null(strstr(eb, "20 unacknowledged from seq 1"));
    /* nothing was cut: the same refusal again */
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_ERR_PARSE);
    assert_non_null(strstr(eb, "record seq 10 "));
    /* damage in the last record is a torn tail: cut and counted */
    b ^= 0x40;
    poke(path, at, &b, 1);
    at = (off_t)(4096 + 19 * fs + 100);
    peek_file(path, at, &b, 1);
    b ^= 0x40;
    poke(path, at, &b, 1);
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_OK);
    gov_spool_stats_t st;
    gov_spool_stats(s, &st);
    assert_int_equal(st.replayed, 19);
    assert_true(st.torn_bytes > 0);
    gov_spool_free(s);
    unlink(path);
}

static void test_cursor_lost(void **state) {
    (void)state;
    char path[128], eb[512];
    gov_spool_config_t c = filled20(path, sizeof path);
    gov_spool_t *s = NULL;
    /* a cursor slot that holds bytes but no valid cursor */
    uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    poke(path, 64 + 8, junk, sizeof junk);
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_ERR_PARSE);
    assert_null(s);
    assert_non_null(strstr(eb, "neither cursor slot is valid"));
    /* slots zeroed, but the ring starts with seq 5: a cursor was lost */
    uint8_t zero[64] = {0}, frame[256];
    poke(path, 64, zero, sizeof zero);
    size_t fs = gov_spool_frame_size(1, 1);
    assert_int_equal(gov_spool_frame_write(frame, sizeof frame, 5, 0, "k", 1, "v", 1), GOV_OK);
    poke(path, 4096, frame, fs);
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_ERR_PARSE);
    assert_non_null(strstr(eb, "starts with seq 5"));
    unlink(path);
}

static void test_header_damaged_and_upgraded(void **state) {
    (void)state;
    char path[128], eb[512];
    gov_spool_config_t c = filled20(path, sizeof path);
    gov_spool_t *s = NULL;
    /* the capacity changed from 8192 to 8192 + 4096: refused by the CRC */
    uint8_t cap1 = 0x30;
    poke(path, 17, &cap1, 1);
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_ERR_PARSE);
    assert_non_null(strstr(eb, "CRC"));
    /* a version-1 header (no CRC) is read and upgraded in place */
    uint8_t v1[8] = {1, 0, 0, 0, 0, 0, 0, 0}, nocrc[4] = {0}, cap0 = 0x20;
    poke(path, 17, &cap0, 1);
    poke(path, 8, v1, 8);
    poke(path, 24, nocrc, 4);
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_OK);
    gov_spool_stats_t st;
    gov_spool_stats(s, &st);
    assert_int_equal(st.replayed, 20);
    gov_spool_free(s);
    uint8_t h[GOV_SPOOL_HEADER_BYTES], want[GOV_SPOOL_HEADER_BYTES];
    peek_file(path, 0, h, sizeof h);
    gov_spool_header_write(want, 8192);
    assert_memory_equal(h, want, 32);
    /* close_seq: 0 while open (a kill -9 leaves "unknown"), the next seq
     * after a clean close */
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_OK);
    peek_file(path, 32, h, 8);
    assert_memory_equal(h, want + 32, 8);
    gov_spool_free(s);
    peek_file(path, 32, h, 8);
    assert_int_equal(h[0], 21);
    unlink(path);
}

/* A record Kafka would never take (over librdkafka's message.max.bytes)
 * is refused at append, not answered and then stuck in the drain. */
static void test_record_fits_kafka(void **state) {
    (void)state;
    char eb[256];
    gov_spool_config_t c = cfg();
    c.capacity = 4u << 20;
    gov_spool_t *s = NULL;
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_OK);
    char *val = calloc(1, GOV_SPOOL_RECORD_MAX);
    assert_non_null(val);
    assert_int_equal(GOV_SPOOL_RECORD_MAX, 1000000);
    assert_int_equal(gov_spool_append(s, "tenant", 6, val, GOV_SPOOL_RECORD_MAX - 6), GOV_OK);
    assert_int_equal(gov_spool_append(s, "tenant", 6, val, GOV_SPOOL_RECORD_MAX - 5),
                     GOV_ERR_TOO_LARGE);
    gov_spool_stats_t st;
    gov_spool_stats(s, &st);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.refused, 0);   /* too large is not "full" */
    free(val);
    gov_spool_free(s);
    char path[128];
    snprintf(path, sizeof path, "%s/decisions.spool", dir);
    unlink(path);
}

/* A directory or file open to group or others is refused (REVIEW13 L7). */
static void test_permissions(void **state) {
    (void)state;
    char path[128], eb[512];
    gov_spool_config_t c = filled20(path, sizeof path);
    gov_spool_t *s = NULL;
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_null(s);
    assert_non_null(strstr(eb, "spool directory"));
    assert_non_null(strstr(eb, "mode 0755"));
    assert_int_equal(chmod(dir, 0700), 0);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_non_null(strstr(eb, "spool file"));
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_OK);
    gov_spool_free(s);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_reopen_torn),
        cmocka_unit_test(test_not_a_spool),
        cmocka_unit_test(test_damage_in_the_middle),
        cmocka_unit_test(test_cursor_lost),
        cmocka_unit_test(test_header_damaged_and_upgraded),
        cmocka_unit_test(test_record_fits_kafka),
        cmocka_unit_test(test_permissions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
