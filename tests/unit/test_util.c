/* test_util.c - gov_util, gov_err and gov_alloc: core only (it links
 * libgov_core.a alone; the clock, back-off and log tests are test_time.c's
 * and test_log.c's).
 *
 * Known answers: the UUIDv7 example of RFC 9562 Appendix A.6; the hex of
 * SHA-256("abc") from FIPS 180-2 Appendix B.1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gov_alloc.h"
#include "gov_err.h"
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

static void test_uuid_v7_valid(void **state) {
    (void)state;
    assert_true(gov_uuid_v7_valid("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"));
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

/* Hex both ways on the FIPS 180-2 B.1 SHA-256("abc") digest (that the
 * digest is right is test_hash.c's known answer). */
static void test_hex(void **state) {
    (void)state;
    static const char kat[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    static const unsigned char md[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    char hex[65];
    gov_hex_encode(md, 32, hex);
    assert_string_equal(hex, kat);
    unsigned char back[32];
    assert_int_equal(gov_hex_decode(hex, 64, back, 32), 0);
    assert_memory_equal(back, md, 32);
    assert_int_equal(gov_hex_decode("BA7816BF", 8, back, 4), 0); /* either case */
    assert_memory_equal(back, md, 4);
    assert_int_equal(gov_hex_decode("zz", 2, back, 1), -1);
    assert_int_equal(gov_hex_decode("abc", 3, back, 1), -1);
    /* The four digits of a \uXXXX escape. */
    uint32_t u = 7;
    assert_int_equal(gov_hex_u16("d83D", &u), 0);
    assert_int_equal(u, 0xD83D);
    assert_int_equal(gov_hex_u16("0000", &u), 0);
    assert_int_equal(u, 0);
    assert_int_equal(gov_hex_u16("FFFF", &u), 0);
    assert_int_equal(u, 0xFFFF);
    assert_int_equal(gov_hex_u16("00g0", &u), -1);
    assert_int_equal(gov_hex_u16("12 4", &u), -1);
    assert_int_equal(u, 0xFFFF); /* untouched on failure */
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

/* A helper that takes its own varargs, as gov_bundle's and gov_rulepack's
 * failure helpers do. */
static void errbuf_via_v(char *eb, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    gov_errbuf_v(eb, n, fmt, ap);
    va_end(ap);
}

static void test_errbuf(void **state) {
    (void)state;
    char eb[8] = "unset";
    gov_errbuf(eb, sizeof eb, "code: %d", 42);
    assert_string_equal(eb, "code: 4");     /* cut to the buffer, NUL-terminated */
    errbuf_via_v(eb, sizeof eb, "%s", "ab");
    assert_string_equal(eb, "ab");
    gov_errbuf(NULL, 8, "x");                /* no buffer: nothing happens */
    gov_errbuf(eb, 0, "x");
    errbuf_via_v(NULL, 8, "x");
    errbuf_via_v(eb, 0, "x");
    assert_string_equal(eb, "ab");
}

static void test_utf8_shorten(void **state) {
    (void)state;
    char out[48];
    gov_utf8_shorten(out, sizeof out, "role", 32);
    assert_string_equal(out, "role");
    gov_utf8_shorten(out, sizeof out, "a\x01" "b\x7f\n", 32);   /* controls and DEL */
    assert_string_equal(out, "a?b??");
    /* 40 ASCII bytes: cut at 32, then "..." */
    gov_utf8_shorten(out, sizeof out, "0123456789012345678901234567890123456789", 32);
    assert_string_equal(out, "01234567890123456789012345678901...");
    /* 31 ASCII bytes and a 2-byte character: the character does not fit */
    gov_utf8_shorten(out, sizeof out, "0123456789012345678901234567890\xc3\xa9", 32);
    assert_string_equal(out, "0123456789012345678901234567890...");
    /* a C1 character is not ASCII control: kept whole */
    gov_utf8_shorten(out, sizeof out, "\xc2\x85x", 32);
    assert_string_equal(out, "\xc2\x85x");
    /* malformed UTF-8 ends the text shown */
    gov_utf8_shorten(out, sizeof out, "ab\xff" "cd", 32);
    assert_string_equal(out, "ab...");
    /* a small dst moves the cut earlier to keep "..." */
    char small[8];
    gov_utf8_shorten(small, sizeof small, "abcdefghij", 32);
    assert_string_equal(small, "abcd...");
    gov_utf8_shorten(small, 3, "abcdefghij", 32);
    assert_string_equal(small, "");
    small[0] = 'x';
    gov_utf8_shorten(small, 0, "abc", 32);
    assert_int_equal(small[0], 'x');
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_v7_rfc9562_example),
        cmocka_unit_test(test_uuid_v7_valid),
        cmocka_unit_test(test_uuid_v7_derive),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_tenant_syntax),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_errbuf),
        cmocka_unit_test(test_utf8_shorten),
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_alloc_failure_injection),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
