/* test_buf.c - gov_buf: growth, limits, overflow, sticky failure, JSON strings.
 *
 * The JSON string escaping is checked two ways: byte for byte against the
 * escapes RFC 8785 section 3.2.2.2 prescribes, and by parsing the output back
 * with jansson (an independent parser) for every single byte 0x00..0x7f.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_buf.h"

static void test_empty_and_appends(void **state) {
    (void)state;
    gov_buf_t b;
    char *s;
    size_t n;
    gov_buf_init(&b, 0);
    assert_int_equal(gov_buf_finish(&b, &s, &n), GOV_OK);
    assert_string_equal(s, "");
    assert_int_equal(n, 0);
    gov_free(s);

    gov_buf_init(&b, 0);
    gov_buf_puts(&b, "a=");
    gov_buf_put_u64(&b, UINT64_MAX);
    gov_buf_putc(&b, ',');
    gov_buf_put_i64(&b, INT64_MIN);
    gov_buf_printf(&b, ",%s-%d", "x", 7);
    gov_buf_put(&b, "\0z", 2);
    assert_int_equal(gov_buf_finish(&b, &s, &n), GOV_OK);
    assert_int_equal(n, strlen("a=18446744073709551615,-9223372036854775808,x-7") + 2);
    assert_string_equal(s, "a=18446744073709551615,-9223372036854775808,x-7");
    assert_memory_equal(s + n - 2, "\0z", 3); /* and the trailing NUL */
    gov_free(s);
    assert_null(b.data);
    gov_buf_free(&b);
    gov_buf_free(NULL);
}

static void test_growth(void **state) {
    (void)state;
    gov_buf_t b;
    gov_buf_init(&b, 0);
    for (int i = 0; i < 100000; i++)
        gov_buf_putc(&b, (char)('a' + i % 26));
    assert_int_equal(b.err, GOV_OK);
    assert_int_equal(b.len, 100000);
    assert_true(b.cap > b.len);
    assert_int_equal(b.data[b.len], '\0');
    for (int i = 0; i < 100000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    gov_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    gov_buf_free(&b);
}

static void test_limit_is_sticky(void **state) {
    (void)state;
    gov_buf_t b;
    char *s = (char *)"not touched";
    gov_buf_init(&b, 8);
    gov_buf_puts(&b, "12345678"); /* exactly the limit */
    assert_int_equal(b.err, GOV_OK);
    gov_buf_putc(&b, '9');
    assert_int_equal(b.err, GOV_ERR_TOO_LARGE);
    assert_int_equal(b.len, 8);
    gov_buf_puts(&b, ""); /* no-op, error stays */
    gov_buf_printf(&b, "%d", 1);
    assert_int_equal(b.err, GOV_ERR_TOO_LARGE);
    assert_int_equal(gov_buf_finish(&b, &s, NULL), GOV_ERR_TOO_LARGE);
    assert_null(s);
    assert_null(b.data);
    /* finish leaves a fresh buffer with the same limit */
    gov_buf_puts(&b, "abcdefghi");
    assert_int_equal(b.err, GOV_ERR_TOO_LARGE);
    /* reset clears the error and keeps the limit */
    gov_buf_reset(&b);
    gov_buf_puts(&b, "abc");
    assert_int_equal(b.err, GOV_OK);
    assert_string_equal(b.data, "abc");
    gov_buf_free(&b);
}

static void test_size_overflow(void **state) {
    (void)state;
    gov_buf_t b;
    gov_buf_init(&b, 0);
    gov_buf_puts(&b, "xy");
    /* len + n + 1 would wrap: refused before any arithmetic overflows. */
    assert_int_equal(gov_buf_reserve(&b, SIZE_MAX), GOV_ERR_NOMEM);
    assert_int_equal(b.len, 2);
    gov_buf_reset(&b);
    gov_buf_puts(&b, "xy");
    assert_int_equal(gov_buf_reserve(&b, SIZE_MAX - 2), GOV_ERR_NOMEM);
    gov_buf_free(&b);
}

static void test_json_string_rfc8785(void **state) {
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } v[] = {
        {"", 0, "\"\""},
        {"plain", 5, "\"plain\""},
        {"\"\\", 2, "\"\\\"\\\\\""},
        {"\b\t\n\f\r", 5, "\"\\b\\t\\n\\f\\r\""},
        {"\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\""},
        {"\0a", 2, "\"\\u0000a\""},
        {"/\xe2\x82\xac", 4, "\"/\xe2\x82\xac\""}, /* '/' and non-ASCII unescaped */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        gov_buf_t b;
        char *s;
        gov_buf_init(&b, 0);
        gov_buf_put_json_string(&b, v[i].in, v[i].n);
        assert_int_equal(gov_buf_finish(&b, &s, NULL), GOV_OK);
        assert_string_equal(s, v[i].out);
        gov_free(s);
    }
    /* Every ASCII byte round-trips through an independent parser. */
    for (int c = 0; c < 0x80; c++) {
        char in[3] = {'x', (char)c, 'y'};
        gov_buf_t b;
        char *s;
        size_t n;
        gov_buf_init(&b, 0);
        gov_buf_put_json_string(&b, in, 3);
        assert_int_equal(gov_buf_finish(&b, &s, &n), GOV_OK);
        json_error_t je;
        json_t *j = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        assert_non_null(j);
        assert_int_equal(json_string_length(j), 3);
        assert_memory_equal(json_string_value(j), in, 3);
        json_decref(j);
        gov_free(s);
    }
}

/* Fails the Nth allocation for every N a sequence of appends makes: the
 * result is GOV_ERR_NOMEM or the full text, never a partial success, and
 * nothing leaks (ASan and valgrind run this test). */
/* gov_buf_put_json_string reads eight bytes a step (gov_json_plain_run): a
 * byte that needs escaping must be found at every position of a block, in
 * every block, next to bytes that do not (0x7F, 0x80, 0xFF, ' ', '!', '#',
 * '[', ']'), so the output must equal a byte-by-byte escaper's for each. */
static void reference_escape(const unsigned char *s, size_t n, char *out) {
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b"
                      : c == '\t' ? "\\t" : c == '\n' ? "\\n" : c == '\f' ? "\\f"
                      : c == '\r' ? "\\r" : NULL;
        if (e != NULL) {
            memcpy(o, e, 2);
            o += 2;
        } else if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o = '\0';
}

static void test_json_string_every_position(void **state) {
    (void)state;
    static const unsigned char special[] = {'"', '\\', 0x00, 0x01, 0x08, 0x0A, 0x1F};
    static const unsigned char plain[] = {' ', '!', '#', '[', ']', 0x7F, 0x80, 0xFF, 'a'};
    unsigned char in[40];
    char want[40 * 6 + 3];
    size_t checked = 0;
    for (size_t len = 0; len <= sizeof in; len++)
        for (size_t pos = 0; pos < len; pos++)
            for (size_t k = 0; k < sizeof special; k++)
                for (size_t f = 0; f < sizeof plain; f++) {
                    memset(in, plain[f], len);
                    in[pos] = special[k];
                    reference_escape(in, len, want);
                    gov_buf_t b;
                    gov_buf_init(&b, 0);
                    gov_buf_put_json_string(&b, (const char *)in, len);
                    assert_int_equal(b.err, GOV_OK);
                    assert_int_equal(b.len, strlen(want));
                    assert_memory_equal(b.data, want, b.len);
                    /* the reader's variant also stops at 0x80 and above */
                    size_t run = gov_json_plain_run((const char *)in, len, 1);
                    size_t first = pos;
                    for (size_t i = 0; i < len; i++)
                        if (in[i] >= 0x80 || in[i] < 0x20 || in[i] == '"' || in[i] == '\\') {
                            first = i < first ? i : first;
                            break;
                        }
                    assert_true(run % 8 == 0 && run <= first && first - run < 8);
                    gov_buf_free(&b);
                    checked++;
                }
    assert_true(checked > 5000);
}

static void test_alloc_failure(void **state) {
    (void)state;
    int saw_failure = 0;
    for (long n = 0; n < 16; n++) {
        gov_buf_t b;
        char *s;
        size_t len;
        gov_buf_init(&b, 0);
        gov_alloc_fail_after(n);
        for (int i = 0; i < 2000; i++)
            gov_buf_puts(&b, "0123456789");
        gov_err_t err = gov_buf_finish(&b, &s, &len);
        gov_alloc_fail_reset();
        if (err == GOV_OK) {
            assert_int_equal(len, 20000);
            gov_free(s);
        } else {
            assert_int_equal(err, GOV_ERR_NOMEM);
            assert_null(s);
            saw_failure = 1;
        }
        assert_null(b.data);
    }
    assert_true(saw_failure);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_appends),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_limit_is_sticky),
        cmocka_unit_test(test_size_overflow),
        cmocka_unit_test(test_json_string_rfc8785),
        cmocka_unit_test(test_json_string_every_position),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
