/* test_http.c - gov_http: the request target and framing rules of gov-edge.
 *
 * Table-driven: targets a client may send (accepted) and the shapes refused
 * - %00 and other escaped control bytes, %2F in the path (allowed in the
 * query), raw bytes outside printable ASCII, broken escapes at the end of
 * the input, fragments, "." and ".." path segments however escaped (a
 * proxy in front routes on the path without them); then framing header sets from RFC 9112 section 6.3's
 * list of what a server must refuse, and the body limit at its edge; then
 * header fields as libmicrohttpd 0.9.75 hands them over after it met
 * whitespace before a colon or an obs-fold line (RFC 9112 sections 5.1,
 * 5.2).  Every
 * refusal must carry its reason and a detail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gov_http.h"

static void test_targets(void **state) {
    (void)state;
    static const char *const good[] = {
        "/", "/v1/constitution/demo", "/v1/constitution/no%2Dsuch", "/v1/decisions/a/b?x=%2F",
        "/v1/constitution/%C3%A9t%C3%A9", "/healthz?", "/a%7e", "*",
        /* dots that are names, not dot segments; dots in the query */
        "/a/.../b", "/a/.b", "/a/b.", "/a/..b/c", "/a/%2e%2e%2e", "/a/%2ex", "/v1/x?p=../..",
        "/a?./", "/a/b?q=%2e%2e",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char eb[128] = "";
        gov_reason_t why = GOV_REASON_NONE;
        if (gov_http_target_check(good[i], strlen(good[i]), &why, eb, sizeof eb) != GOV_OK)
            fail_msg("refused %s: %s", good[i], eb);
        assert_int_equal(why, GOV_REASON_NONE);
    }
    static const struct {
        const char *target;
        size_t len;   /* 0: strlen */
        const char *detail;
    } bad[] = {
        {"/v1/constitution/demo%00x", 0, "escaped control byte at offset 21"},
        {"/v1/constitution/demo%0A", 0, "escaped control byte"},
        {"/a%1f", 0, "escaped control byte"},
        {"/a%7F", 0, "escaped control byte"},
        {"/a?q=%00", 0, "escaped control byte"},
        {"/v1/constitution/demo%2Fhash", 0, "escaped '/' in the path"},
        {"/v1/constitution/demo%2fhash", 0, "escaped '/' in the path"},
        {"/a%zz", 0, "two hex digits"},
        {"/a%4", 0, "two hex digits"},
        {"/a%", 0, "two hex digits"},
        {"/a b", 0, "control byte or a byte outside ASCII"},
        {"/a\tb", 0, "control byte"},
        {"/d\x80mo", 0, "outside ASCII"},
        {"/a\x7f", 0, "outside ASCII"},
        {"/a\0b", 4, "control byte"},
        {"/a#frag", 0, "fragment"},
        {"", 0, "empty"},
        /* RFC 3986 dot segments, in every spelling (review 11, M1) */
        {"/v1/authz/..", 0, "\"..\" path segment at offset 10"},
        {"/v1/authz/../evaluate", 0, "path segment at offset 10"},
        {"/v1/authz/.", 0, "path segment"},
        {"/v1/./authz", 0, "path segment at offset 4"},
        {"/v1/authz/%2e%2e", 0, "path segment"},
        {"/v1/authz/%2E%2e/x", 0, "path segment"},
        {"/v1/authz/.%2E", 0, "path segment"},
        {"/v1/authz/%2e", 0, "path segment"},
        {"/v1/authz/..?q=1", 0, "path segment"},
        {"/..", 0, "path segment at offset 1"},
        {"..", 0, "path segment at offset 0"},
        {"/a/..", 4, "path segment"},   /* the segment ends where len does */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char eb[128] = "";
        gov_reason_t why = GOV_REASON_NONE;
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].target);
        if (gov_http_target_check(bad[i].target, len, &why, eb, sizeof eb) != GOV_ERR_PARSE)
            fail_msg("accepted case %zu", i);
        assert_int_equal(why, GOV_REASON_INVALID_PATH);
        if (strstr(eb, bad[i].detail) == NULL)
            fail_msg("case %zu: detail \"%s\" lacks \"%s\"", i, eb, bad[i].detail);
    }
    /* A cut escape at the end of a longer buffer: only len bytes count. */
    assert_int_equal(gov_http_target_check("/a%41", 4, NULL, NULL, 0), GOV_ERR_PARSE);
}

static void test_framing(void **state) {
    (void)state;
    static const struct {
        gov_http_framing_t f;
        gov_err_t rc;
        gov_reason_t why;
        int64_t declared;
    } cases[] = {
        {{0, NULL, 0, NULL}, GOV_OK, GOV_REASON_NONE, -1},
        {{1, "0", 0, NULL}, GOV_OK, GOV_REASON_NONE, 0},
        {{1, "65536", 0, NULL}, GOV_OK, GOV_REASON_NONE, 65536},
        {{1, "0065536", 0, NULL}, GOV_OK, GOV_REASON_NONE, 65536},
        {{0, NULL, 1, "chunked"}, GOV_OK, GOV_REASON_NONE, -1},
        {{0, NULL, 1, "Chunked"}, GOV_OK, GOV_REASON_NONE, -1},
        {{1, "65537", 0, NULL}, GOV_ERR_TOO_LARGE, GOV_REASON_BODY_TOO_LARGE, -1},
        {{1, "104857600", 0, NULL}, GOV_ERR_TOO_LARGE, GOV_REASON_BODY_TOO_LARGE, -1},
        {{1, "9999999999999999999", 0, NULL}, GOV_ERR_TOO_LARGE, GOV_REASON_BODY_TOO_LARGE, -1},
        {{1, "18446744073709551617", 0, NULL}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{2, "5", 0, NULL}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{1, "5", 1, "chunked"}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{0, NULL, 2, "chunked"}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{0, NULL, 1, "gzip, chunked"}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{0, NULL, 1, "chunked, chunked"}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{0, NULL, 1, NULL}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{1, "", 0, NULL}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{1, "+5", 0, NULL}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{1, "5, 5", 0, NULL}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{1, " 5", 0, NULL}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{1, "0x10", 0, NULL}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
        {{1, NULL, 0, NULL}, GOV_ERR_PARSE, GOV_REASON_INVALID_FRAMING, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char eb[160] = "";
        gov_reason_t why = GOV_REASON_NONE;
        int64_t declared = 42;
        gov_err_t rc = gov_http_framing_check(&cases[i].f, 65536, &declared, &why, eb, sizeof eb);
        if (rc != cases[i].rc || why != cases[i].why || declared != cases[i].declared)
            fail_msg("case %zu: rc %d why %d declared %lld (%s)", i, rc, why, (long long)declared,
                     eb);
        if (rc != GOV_OK && eb[0] == '\0')
            fail_msg("case %zu: no detail", i);
    }
}

static void test_fields(void **state) {
    (void)state;
    static const char *const good[][2] = {
        {"Host", "edge"}, {"Content-Length", "5"}, {"content-length", "5"},
        {"Transfer-Encoding", "chunked"}, {"X-A", "a\tb c"}, {"!#$%&'*+-.^_`|~09azAZ", ""},
        {"Content-Type", "application/json; charset=\xc3\xa9"}, {"Content", "x"},
        {"Content-Lengt", "5"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char eb[160] = "";
        gov_reason_t why = GOV_REASON_NONE;
        if (gov_http_field_check(good[i][0], good[i][1], &why, eb, sizeof eb) != GOV_OK)
            fail_msg("refused %s: %s", good[i][0], eb);
        assert_int_equal(why, GOV_REASON_NONE);
    }
    static const struct {
        const char *name, *value, *detail;
    } bad[] = {
        /* "Content-Length : 5" */
        {"Content-Length ", "5", "not a token"},
        {"Transfer-Encoding\t", "chunked", "not a token"},
        /* " Host: x" as the first field line */
        {" Host", "x", "not a token"},
        /* "X-A: a\r\n\tb c": the continuation joined to the name */
        {"X-Ab c", "a", "not a token"},
        /* "X-A: a\r\n Content-Length: 5" */
        {"X-AContent-Length: 5", "a", "not a token"},
        /* "Content-Length: 35\r\n 0" */
        {"Content-Length0", "35", "folded Content-Length"},
        {"transfer-encodingchunked", "x", "folded Content-Length or Transfer-Encoding"},
        {"X@Y", "1", "not a token"},
        {"X(Y)", "1", "not a token"},
        {"X/Y", "1", "not a token"},
        {"X\x80", "1", "not a token"},
        {"", "1", "empty header name"},
        {"X-A", "a\x01b", "control byte at offset 1"},
        {"X-A", "a\x7f", "control byte"},
        {"Transfer-Encoding", "\x0b" "chunked", "control byte"},
        {NULL, "1", "empty"},
        {"X-A", NULL, "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char eb[160] = "";
        gov_reason_t why = GOV_REASON_NONE;
        if (gov_http_field_check(bad[i].name, bad[i].value, &why, eb, sizeof eb) != GOV_ERR_PARSE)
            fail_msg("accepted case %zu", i);
        assert_int_equal(why, GOV_REASON_INVALID_FRAMING);
        if (strstr(eb, bad[i].detail) == NULL)
            fail_msg("case %zu: detail \"%s\" lacks \"%s\"", i, eb, bad[i].detail);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_fields),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
