/* test_version.c - gov_version: semver 2.0.0 parsing and precedence.
 *
 * The precedence chain is the example of semver 2.0.0 section 11
 * ("1.0.0-alpha < 1.0.0-alpha.1 < ... < 1.0.0"), extended with releases and
 * the integer form; every pair of it is compared both ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gov_version.h"

static void test_semver_precedence(void **state) {
    (void)state;
    const char *order[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                           "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1",
                           "1.1.0", "2", "2.0.1", "10.0.0"};
    size_t n = sizeof order / sizeof order[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            gov_version_t a, b;
            assert_int_equal(gov_version_parse(order[i], &a), 0);
            assert_int_equal(gov_version_parse(order[j], &b), 0);
            int c = gov_version_compare(&a, &b);
            assert_int_equal(c, i < j ? -1 : i > j ? 1 : 0);
        }
    gov_version_t a, b;
    assert_int_equal(gov_version_parse("7", &a), 0);
    assert_int_equal(gov_version_parse("7.0.0+build.5", &b), 0);
    assert_int_equal(gov_version_compare(&a, &b), 0);
    const char *bad[] = {"", "01.0.0", "1.0", "1.0.0-", "1.0.0-01", "1.0.0+", "v1.0.0",
                         "1.0.0-a..b", "-1", "1.0.0 ", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(gov_version_parse(bad[i], &a), -1);
}

/* A refused version leaves *out as it was; the longest accepted text is
 * GOV_VERSION_MAX - 1 bytes. */
static void test_parse_bounds(void **state) {
    (void)state;
    gov_version_t v;
    memset(&v, 0x5a, sizeof v);
    gov_version_t before = v;
    assert_int_equal(gov_version_parse(NULL, &v), -1);
    assert_int_equal(gov_version_parse("1.0.0-", &v), -1);
    assert_memory_equal(&v, &before, sizeof v);
    char text[GOV_VERSION_MAX + 1];
    memset(text, 0, sizeof text);
    memcpy(text, "1.0.0-", 6);
    memset(text + 6, 'a', GOV_VERSION_MAX - 1 - 6);
    assert_int_equal(gov_version_parse(text, &v), 0);  /* 63 bytes */
    assert_string_equal(v.pre, text + 6);
    text[GOV_VERSION_MAX - 1] = 'a';
    assert_int_equal(gov_version_parse(text, &v), -1); /* 64 bytes */
    assert_int_equal(gov_version_parse("18446744073709551615.0.0", &v), 0);
    assert_true(v.major == 18446744073709551615ULL);
    assert_int_equal(gov_version_parse("18446744073709551616.0.0", &v), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_semver_precedence),
        cmocka_unit_test(test_parse_bounds),
    };
    return cmocka_run_group_tests_name("version", tests, NULL, NULL);
}
