/* test_version.c - gov_version: semver 2.0.0 parsing and precedence.
 *
 * The precedence chain is the example of semver 2.0.0 section 11
 * ("1.0.0-alpha < 1.0.0-alpha.1 < ... < 1.0.0"), extended with releases and
 * the integer form; every pair of it is compared both ways.  The limits
 * (2^53 - 1 per number, 63 bytes of text) are checked at their edges, with
 * the reason code each refusal carries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "gov_err.h"
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
    /* Numbers stop at 2^53 - 1 (docs/contracts.md, "Versions"). */
    assert_int_equal(gov_version_parse("9007199254740991.9007199254740991.9007199254740991", &v),
                     0);
    assert_true(v.major == 9007199254740991ULL && v.patch == 9007199254740991ULL);
    assert_int_equal(gov_version_parse("9007199254740992.0.0", &v), -1);
    assert_int_equal(gov_version_parse("1.9007199254740992.0", &v), -1);
    assert_int_equal(gov_version_parse("1.0.9007199254740992", &v), -1);
    assert_int_equal(gov_version_parse("18446744073709551616.0.0", &v), -1);
}

/* What gov_version_parse_text says for each refusal, and that a refusal
 * leaves *out alone. */
static void test_parse_text_reasons(void **state) {
    (void)state;
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        gov_err_t rc;
        gov_reason_t reason;
        const char *detail; /* a substring of errbuf */
    } cases[] = {
        {"9007199254740991", 0, GOV_OK, GOV_REASON_NONE, ""},
        {"9007199254740992", 0, GOV_ERR_TOO_LARGE, GOV_REASON_VERSION_TOO_LARGE, "2^53-1"},
        {"9223372036854775807", 0, GOV_ERR_TOO_LARGE, GOV_REASON_VERSION_TOO_LARGE,
         "9007199254740991"},
        {"1.2.99999999999999999999999-rc", 0, GOV_ERR_TOO_LARGE, GOV_REASON_VERSION_TOO_LARGE,
         "above"},
        /* bad syntax wins over a big number: it is not a version at all */
        {"99999999999999999999.x", 0, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "semver"},
        {"1.0.0-a..b", 0, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "semver"},
        {"1\0002", 3, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "semver"},
        {"1.0.0-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0,
         GOV_ERR_TOO_LARGE, GOV_REASON_VERSION_TOO_LONG, "longer than 63 bytes (64)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gov_version_t v;
        memset(&v, 0x5a, sizeof v);
        gov_version_t before = v;
        gov_reason_t why = GOV_REASON_COUNT_;
        char eb[160] = "";
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        gov_err_t rc = gov_version_parse_text(cases[i].text, len, &v, &why, eb, sizeof eb);
        if (rc != cases[i].rc || why != cases[i].reason || strstr(eb, cases[i].detail) == NULL)
            fail_msg("case %zu (%s): got %s %s \"%s\"", i, cases[i].text, gov_err_code(rc),
                     gov_reason_code(why), eb);
        if (rc != GOV_OK)
            assert_memory_equal(&v, &before, sizeof v);
    }
    gov_version_t v;
    assert_int_equal(gov_version_parse_text(NULL, 0, &v, NULL, NULL, 0), GOV_ERR_INVALID_ARG);
}

/* The JSON reader: integers are bounded before they are formatted, strings
 * are bounded before they are copied; text is "" after any refusal. */
static void test_from_json(void **state) {
    (void)state;
    static const struct {
        const char *json; /* the member's value; NULL: absent */
        gov_err_t rc;
        gov_reason_t reason;
        const char *text; /* on success */
    } cases[] = {
        {"7", GOV_OK, GOV_REASON_NONE, "7"},
        {"0", GOV_OK, GOV_REASON_NONE, "0"},
        {"9007199254740991", GOV_OK, GOV_REASON_NONE, "9007199254740991"},
        {"\"1.2.3-rc.1+b5\"", GOV_OK, GOV_REASON_NONE, "1.2.3-rc.1+b5"},
        {"9007199254740992", GOV_ERR_TOO_LARGE, GOV_REASON_VERSION_TOO_LARGE, NULL},
        {"9223372036854775807", GOV_ERR_TOO_LARGE, GOV_REASON_VERSION_TOO_LARGE, NULL},
        {"\"9223372036854775807\"", GOV_ERR_TOO_LARGE, GOV_REASON_VERSION_TOO_LARGE, NULL},
        {"\"1.0.0-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
         GOV_ERR_TOO_LARGE, GOV_REASON_VERSION_TOO_LONG, NULL},
        {"-1", GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, NULL},
        {"1.0", GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, NULL},
        {"9.3e18", GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, NULL},
        {"null", GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, NULL},
        {"\"v1\"", GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, NULL},
        {"\"1\\u00002\"", GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, NULL},
        {NULL, GOV_ERR_VERIFY, GOV_REASON_MISSING_FIELD, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = NULL;
        if (cases[i].json != NULL) {
            j = json_loads(cases[i].json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            assert_non_null(j);
        }
        char text[GOV_VERSION_MAX] = "junk", eb[160] = "";
        gov_version_t v;
        gov_reason_t why = GOV_REASON_COUNT_;
        gov_err_t rc = gov_version_from_json(j, text, &v, &why, eb, sizeof eb);
        if (rc != cases[i].rc || why != cases[i].reason)
            fail_msg("case %zu (%s): got %s %s \"%s\"", i, cases[i].json ? cases[i].json : "absent",
                     gov_err_code(rc), gov_reason_code(why), eb);
        if (rc == GOV_OK)
            assert_string_equal(text, cases[i].text);
        else
            assert_true(text[0] == '\0' && eb[0] != '\0');
        json_decref(j);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_semver_precedence),
        cmocka_unit_test(test_parse_bounds),
        cmocka_unit_test(test_parse_text_reasons),
        cmocka_unit_test(test_from_json),
    };
    return cmocka_run_group_tests_name("version", tests, NULL, NULL);
}
