/* test_util.c - gov_util, gov_err, gov_alloc and gov_log.
 *
 * Known answers: the UUIDv7 example of RFC 9562 Appendix A.6; SHA-256 of
 * "abc" from FIPS 180-2 Appendix B.1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "gov_alloc.h"
#include "gov_err.h"
#include "gov_log.h"
#include "gov_time.h"
#include "gov_util.h"

static void test_uuid_v7_rfc9562_example(void **state) {
    (void)state;
    /* RFC 9562 A.6: unix_ts_ms 0x017F22E279B0, rand_a 0xCC3, rand_b 0x18C4DC0C0C07398F */
    const unsigned char rnd[10] = {0x0C, 0xC3, 0x18, 0xC4, 0xDC, 0x0C, 0x0C, 0x07, 0x39, 0x8F};
    char out[37];
    gov_uuid_v7_format(0x017F22E279B0ULL, rnd, out);
    assert_string_equal(out, "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
    assert_true(gov_uuid_v7_valid(out));
}

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
    assert_false(gov_uuid_v7_valid("017f22e2-79b0-4cc3-98c4-dc0c0c07398f")); /* v4 */
    assert_false(gov_uuid_v7_valid("017F22E2-79B0-7CC3-98C4-DC0C0C07398F")); /* upper */
    assert_false(gov_uuid_v7_valid("017f22e2-79b0-7cc3-c8c4-dc0c0c07398f")); /* variant */
    assert_false(gov_uuid_v7_valid("017f22e2-79b0-7cc3-98c4-dc0c0c07398"));
    assert_false(gov_uuid_v7_valid(NULL));
}

static void test_uuid_v7_derive(void **state) {
    (void)state;
    char a[37], b[37], c[37];
    assert_int_equal(gov_uuid_v7_derive(0x017F22E279B0ULL, "bundle-1/accepted", a), GOV_OK);
    assert_int_equal(gov_uuid_v7_derive(0x017F22E279B0ULL, "bundle-1/accepted", b), GOV_OK);
    assert_int_equal(gov_uuid_v7_derive(0x017F22E279B0ULL, "bundle-1/updated", c), GOV_OK);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_true(gov_uuid_v7_valid(a));
    assert_memory_equal(a, "017f22e2-79b0-7", 15);
}

static void test_sha256_fips180(void **state) {
    (void)state;
    unsigned char md[32];
    char hex[65];
    assert_int_equal(gov_sha256("abc", 3, md), GOV_OK);
    gov_hex_encode(md, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unsigned char back[32];
    assert_int_equal(gov_hex_decode(hex, 64, back, 32), 0);
    assert_memory_equal(back, md, 32);
    assert_int_equal(gov_hex_decode("zz", 2, back, 1), -1);
    assert_int_equal(gov_hex_decode("abc", 3, back, 1), -1);
}

static void test_tenant_syntax(void **state) {
    (void)state;
    assert_true(gov_tenant_valid("acme", 4));
    assert_true(gov_tenant_valid("_system", 7));
    assert_true(gov_tenant_valid("a.b-c_D9", 8));
    assert_false(gov_tenant_valid("", 0));
    assert_false(gov_tenant_valid("a}b", 3));   /* would break the hash tag */
    assert_false(gov_tenant_valid("a b", 3));
    assert_false(gov_tenant_valid("-a", 2));
    assert_false(gov_tenant_valid(".a", 2));
    assert_false(gov_tenant_valid("a:b", 3));
    char long_id[66];
    memset(long_id, 'a', 65);
    long_id[65] = 0;
    assert_true(gov_tenant_valid(long_id, 64));
    assert_false(gov_tenant_valid(long_id, 65));
}

static void test_utf8(void **state) {
    (void)state;
    assert_true(gov_utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    assert_false(gov_utf8_valid("\xc0\xaf", 2));          /* overlong '/' */
    assert_false(gov_utf8_valid("\xed\xa0\x80", 3));      /* surrogate D800 */
    assert_false(gov_utf8_valid("\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
    assert_false(gov_utf8_valid("\xe2\x82", 2));          /* truncated */
    assert_false(gov_utf8_valid("\x80", 1));
    assert_true(gov_utf8_valid("", 0));
}

static void test_err_names(void **state) {
    (void)state;
    assert_string_equal(gov_err_code(GOV_OK), "ok");
    assert_string_equal(gov_err_code(GOV_ERR_NOT_FOUND), "not_found");
    assert_string_equal(gov_err_code(GOV_ERR_INTERNAL), "internal_error");
    assert_string_equal(gov_err_code((gov_err_t)-999), "unknown_error");
    assert_string_equal(gov_err_str((gov_err_t)5), "unknown error");
    for (int e = 0; e >= GOV_ERR_INTERNAL; e--)
        assert_string_not_equal(gov_err_code((gov_err_t)e), "unknown_error");
}

static void test_alloc_failure_injection(void **state) {
    (void)state;
    gov_alloc_fail_after(2);
    void *a = gov_malloc(8), *b = gov_malloc(8), *c = gov_malloc(8);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);
    assert_null(gov_strdup("x"));
    assert_int_equal(gov_alloc_failures(), 2);
    gov_alloc_fail_reset();
    char *d = gov_strdup("xyz");
    assert_string_equal(d, "xyz");
    assert_null(gov_calloc((size_t)-1, 16)); /* overflow refused */
    gov_free(a);
    gov_free(b);
    gov_free(d);
    gov_free(NULL);
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

/* Captures what gov_log writes to stderr and parses it as JSON. */
static json_t *capture_log(gov_log_level_t lv, const char *msg, const char *k, const char *v) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    gov_log(lv, msg, k, v, (const char *)NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char buf[16384];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    if (n <= 0)
        return NULL;
    buf[n] = 0;
    assert_int_equal(buf[n - 1], '\n');
    assert_null(strchr(buf, '\n') == buf + n - 1 ? NULL : "embedded newline");
    return json_loads(buf, 0, NULL);
}

static void test_log_json_lines(void **state) {
    (void)state;
    gov_log_init("unit", GOV_LOG_INFO);
    json_t *j = capture_log(GOV_LOG_WARN, "line\nbreak \"quoted\"", "key\x01", "v\xc3\xa9\\");
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "component")), "unit");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "line\nbreak \"quoted\"");
    assert_string_equal(json_string_value(json_object_get(j, "key\x01")), "v\xc3\xa9\\");
    assert_non_null(json_string_value(json_object_get(j, "ts")));
    json_decref(j);
    /* invalid UTF-8 in a value: the line stays valid JSON, the byte becomes U+FFFD */
    j = capture_log(GOV_LOG_WARN, "bad", "v", "a\xff\xc3(b\xe2\x82\xac");
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "v")), "a\xef\xbf\xbd\xef\xbf\xbd(b\xe2\x82\xac");
    json_decref(j);
    /* below the level: nothing */
    assert_null(capture_log(GOV_LOG_DEBUG, "hidden", "a", "b"));
    /* oversize values are cut but the line stays one valid JSON object */
    char *big = malloc(20000);
    memset(big, 'x', 19999);
    big[19999] = 0;
    big[5000] = '"';
    j = capture_log(GOV_LOG_ERROR, "big", "v", big);
    assert_non_null(j);
    assert_true(strlen(json_string_value(json_object_get(j, "v"))) < 8192);
    json_decref(j);
    free(big);
    assert_int_equal(gov_log_level_parse("debug"), GOV_LOG_DEBUG);
    assert_int_equal(gov_log_level_parse("warning"), GOV_LOG_WARN);
    assert_int_equal(gov_log_level_parse("loud"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_v7_rfc9562_example),
        cmocka_unit_test(test_uuid_v7_generated),
        cmocka_unit_test(test_uuid_v7_derive),
        cmocka_unit_test(test_sha256_fips180),
        cmocka_unit_test(test_tenant_syntax),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_alloc_failure_injection),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_log_json_lines),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
