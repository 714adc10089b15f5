/* test_time.c - gov_time: the clock, fresh UUIDv7s and back-off.
 *
 * Runtime: it links libgov_runtime.a (RUNTIME_UNIT in the Makefile).  What
 * is checked against the real clock is only what must hold whatever the
 * time is: a fresh UUIDv7's 48-bit prefix is "now" in milliseconds, two are
 * different, and back-off delays stay in their jittered bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "gov_err.h"
#include "gov_time.h"
#include "gov_util.h"

static void test_uuid_v7_generated(void **state) {
    (void)state;
    char a[37], b[37];
    assert_int_equal(gov_uuid_v7(a), GOV_OK);
    assert_int_equal(gov_uuid_v7(b), GOV_OK);
    assert_true(gov_uuid_v7_valid(a));
    assert_string_not_equal(a, b);
    /* Time-ordered: the 48-bit prefix is the current time in ms. */
    long long ms = strtoll((char[13]){a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[9],
                                      a[10], a[11], a[12], 0}, NULL, 16);
    long long now = gov_now_micros() / 1000;
    assert_true(ms <= now && ms > now - 5000);
}

static void test_backoff(void **state) {
    (void)state;
    for (unsigned i = 0; i < 40; i++) {
        long d = gov_backoff_ms(i, 100, 5000);
        assert_true(d >= 80 && d <= 6000);
    }
    long d0 = gov_backoff_ms(0, 100, 5000);
    assert_true(d0 >= 80 && d0 <= 120);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_v7_generated),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests_name("time", tests, NULL, NULL);
}
