/* test_backoff.c - the one back-off function (gov_backoff.h).
 *
 * Known answers: u pins the random draw, so every delay is exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>

#include "gov_backoff.h"

/* The vectors of gov-somabrain-sync's schedule (moved here unchanged from
 * test_somabrain_sync.c when the function became gov_backoff_periodic_ms). */
static void test_periodic_schedule(void **state) {
    (void)state;
    const long I = 300000, B = 1000, M = 300000;
    /* success: interval +/- jitter, uniformly by u */
    assert_int_equal(gov_backoff_periodic_ms(I, 0.1, B, M, 0, 0.0), 270000);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.1, B, M, 0, 0.5), 300000);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.1, B, M, 0, 0.75), 315000);
    long top = gov_backoff_periodic_ms(I, 0.1, B, M, 0, 0.9999999999);
    assert_true(top >= 329999 && top <= 330000);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.0, B, M, 0, 0.123), I);
    for (double u = 0; u < 1.0; u += 0.01) {
        long d = gov_backoff_periodic_ms(I, 0.1, B, M, 0, u);
        assert_true(d >= 270000 && d <= 330000);
    }
    /* failures: base * 2^(n-1), capped, jittered but never above the cap */
    long want[] = {1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000};
    for (unsigned f = 1; f <= 11; f++)
        assert_int_equal(gov_backoff_periodic_ms(I, 0.1, B, M, f, 0.5), want[f - 1]);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.1, B, M, 1, 0.0), 900);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.1, B, M, 3, 0.75), 4200);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.1, B, M, 10, 0.99), M);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.1, B, M, 10, 0.0), 270000);
    /* no overflow however many failures */
    assert_int_equal(gov_backoff_periodic_ms(I, 0.0, B, M, 63, 0.5), M);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.0, B, M, 64, 0.5), M);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.0, B, M, 4000000000u, 0.5), M);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.0, 1L << 40, 1L << 50, 30, 0.5), 1L << 50);
    /* inputs out of range are clamped, never a zero or negative wait */
    assert_int_equal(gov_backoff_periodic_ms(I, 5.0, B, M, 0, 0.0), 1);
    assert_int_equal(gov_backoff_periodic_ms(I, -1.0, B, M, 0, 0.0), I);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.1, B, M, 0, -3.0), 270000);
    assert_true(gov_backoff_periodic_ms(I, 0.1, B, M, 0, 7.0) <= 330000);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.1, B, M, 0, NAN), 270000);
    assert_int_equal(gov_backoff_periodic_ms(0, 0.1, B, M, 0, 0.5), 1);
    assert_int_equal(gov_backoff_periodic_ms(-5, 0.1, B, M, 0, 0.5), 1);
    assert_int_equal(gov_backoff_periodic_ms(I, 0.1, 0, 0, 1, 0.5), 1);
}

/* gov_backoff_delay_ms: attempt 0 is base, doubled per attempt, capped,
 * jittered within +/- jitter, never above the cap, never below 1 ms. */
static void test_delay(void **state) {
    (void)state;
    long want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
    for (unsigned a = 0; a < 8; a++)
        assert_int_equal(gov_backoff_delay_ms(100, 5000, a, 0.2, 0.5), want[a]);
    assert_int_equal(gov_backoff_delay_ms(100, 5000, 0, 0.2, 0.0), 80);
    assert_int_equal(gov_backoff_delay_ms(100, 5000, 0, 0.2, 0.75), 110);
    assert_int_equal(gov_backoff_delay_ms(100, 5000, 20, 0.2, 0.99), 5000); /* cap holds */
    assert_int_equal(gov_backoff_delay_ms(100, 5000, 20, 0.2, 0.0), 4000);
    for (double u = 0; u < 1.0; u += 0.01) {
        long d = gov_backoff_delay_ms(1000, 60000, 2, 0.2, u);
        assert_true(d >= 3200 && d <= 4800);
    }
    /* no overflow, clamped inputs */
    assert_int_equal(gov_backoff_delay_ms(100, LONG_MAX, 4000000000u, 0.0, 0.5), 1L << 62);
    assert_int_equal(gov_backoff_delay_ms(0, 0, 5, 0.5, 0.5), 1);
    assert_int_equal(gov_backoff_delay_ms(-7, 0, 0, 0.0, 0.5), 1);
    assert_int_equal(gov_backoff_delay_ms(100, 0, 3, 0.0, 0.5), 100); /* cap <= 0: base */
    assert_int_equal(gov_backoff_delay_ms(100, 5000, 0, NAN, NAN), 100);
    assert_int_equal(gov_backoff_delay_ms(100, 5000, 0, 9.0, 0.0), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_periodic_schedule),
        cmocka_unit_test(test_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
