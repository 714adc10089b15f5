/* test_micros.c - gov_micros: JSON numbers in [0,1] as exact millionths.
 *
 * The cases are the doubles at the edges: the same double spelled two ways
 * ("0.35" and "0.349999999999999977"), neighbours of 0.35 one ulp away,
 * 1e-6 and 5e-7, -0, and the range ends; then every k/1e6 on a stride over
 * the whole range converts back to k.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "gov_micros.h"

static gov_micros_status_t micros_of(const char *json, int64_t *m, char *text) {
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    gov_micros_status_t s = gov_micros_from_json(v, m, text);
    json_decref(v);
    return s;
}

static void test_micros_conversion(void **state) {
    (void)state;
    static const struct {
        const char *json;
        gov_micros_status_t st;
        int64_t micros;
        const char *text;
    } cases[] = {
        {"0", GOV_MICROS_OK, 0, "0"},
        {"1", GOV_MICROS_OK, 1000000, "1"},
        {"0.0", GOV_MICROS_OK, 0, "0"},
        {"-0.0", GOV_MICROS_OK, 0, "0"},
        {"1.0", GOV_MICROS_OK, 1000000, "1"},
        {"1e0", GOV_MICROS_OK, 1000000, "1"},
        {"0.35", GOV_MICROS_OK, 350000, "0.35"},
        {"0.000001", GOV_MICROS_OK, 1, "0.000001"},
        {"1e-6", GOV_MICROS_OK, 1, "0.000001"},
        {"0.999999", GOV_MICROS_OK, 999999, "0.999999"},
        {"0.1234560", GOV_MICROS_OK, 123456, "0.123456"},
        {"0.349999999999999977", GOV_MICROS_OK, 350000, "0.35"},  /* the same double as 0.35 */
        {"0.35000000000000001", GOV_MICROS_TOO_PRECISE, 0, "0.35000000000000003"},
        {"0.1234567", GOV_MICROS_TOO_PRECISE, 0, "0.1234567"},
        {"1e-7", GOV_MICROS_TOO_PRECISE, 0, "1e-7"},
        {"0.30000000000000004", GOV_MICROS_TOO_PRECISE, 0, "0.30000000000000004"},
        {"0.0000005", GOV_MICROS_TOO_PRECISE, 0, "5e-7"},
        {"1.0000001", GOV_MICROS_OUT_OF_RANGE, 0, "1.0000001"},
        {"1.5", GOV_MICROS_OUT_OF_RANGE, 0, "1.5"},
        {"2", GOV_MICROS_OUT_OF_RANGE, 0, "2"},
        {"-1", GOV_MICROS_OUT_OF_RANGE, 0, "-1"},
        {"-0.1", GOV_MICROS_OUT_OF_RANGE, 0, "-0.1"},
        {"-1e-7", GOV_MICROS_OUT_OF_RANGE, 0, "-1e-7"},
        {"10.5", GOV_MICROS_OUT_OF_RANGE, 0, "10.5"},
        {"1e300", GOV_MICROS_OUT_OF_RANGE, 0, "1e+300"},
        {"\"0.5\"", GOV_MICROS_NOT_NUMBER, 0, ""},
        {"true", GOV_MICROS_NOT_NUMBER, 0, ""},
        {"null", GOV_MICROS_NOT_NUMBER, 0, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t m = -12345;
        char text[GOV_CANON_NUMBUF];
        gov_micros_status_t st = micros_of(cases[i].json, &m, text);
        if (st != cases[i].st)
            fail_msg("%s: status %d, want %d", cases[i].json, st, cases[i].st);
        if (st == GOV_MICROS_OK)
            assert_int_equal(m, cases[i].micros);
        if (strcmp(text, cases[i].text) != 0)
            fail_msg("%s: text \"%s\", want \"%s\"", cases[i].json, text, cases[i].text);
    }
    /* Every k/1e6 written with 6 decimals converts back to k (a stride over
     * the whole range, plus both ends). */
    for (int64_t k = 0; k <= 1000000; k += (k < 2000 || k > 998000) ? 1 : 997) {
        char json[32], text[GOV_CANON_NUMBUF];
        int64_t m = -1;
        snprintf(json, sizeof json, "%lld.%06lld", (long long)(k / 1000000),
                 (long long)(k % 1000000));
        assert_int_equal(micros_of(json, &m, text), GOV_MICROS_OK);
        if (m != k)
            fail_msg("%s -> %lld", json, (long long)m);
    }
}

static void test_micros_format(void **state) {
    (void)state;
    char buf[GOV_MICROS_TEXT];
    assert_int_equal(gov_micros_format(0, buf), 8);
    assert_string_equal(buf, "0.000000");
    gov_micros_format(350000, buf);
    assert_string_equal(buf, "0.350000");
    gov_micros_format(1, buf);
    assert_string_equal(buf, "0.000001");
    gov_micros_format(1000000, buf);
    assert_string_equal(buf, "1.000000");
    gov_micros_format(-250000, buf);
    assert_string_equal(buf, "-0.250000");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_micros_conversion),
        cmocka_unit_test(test_micros_format),
    };
    return cmocka_run_group_tests_name("micros", tests, NULL, NULL);
}
