/* test_spool.c - the decision spool's file (common/runtime/gov_spool.c)
 * without Kafka: appends until full (GOV_ERR_UNAVAILABLE, counted), a
 * reopen finds every record again (replayed) and accepts no more; a second
 * open of the same directory is refused (flock); a file cut mid-record is
 * extended and its torn record cut and counted; a file that is not a spool
 * is refused.  The drain and Kafka are tested by test_decision_spool.
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
    gov_spool_config_t c = cfg();
    gov_spool_t *s = NULL;
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_ERR_PARSE);
    assert_null(s);
    assert_non_null(strstr(eb, "not a decision spool"));
    unlink(path);
    c.capacity = 100;   /* below the bound */
    assert_int_equal(gov_spool_open(&c, &s, eb, sizeof eb), GOV_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_reopen_torn),
        cmocka_unit_test(test_not_a_spool),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
