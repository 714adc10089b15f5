/* test_authz_request.c - /v1/authz's original-request mapping and the
 * consistency rules (http-edge/authz_request.c): the nginx and Envoy forms,
 * the canonical prompt (decoded once, the query also form-decoded, a path
 * that is not canonical refused), the body digest, every refusal, and
 * allocation failures.
 *
 * Known answers: the Content-Digest examples of RFC 9530 section 2 for the
 * body {"hello": "world"} (sha-256 and sha-512).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../http-edge/authz_request.h"
#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_policy.h"

#define RFC9530_BODY "{\"hello\": \"world\"}"
#define RFC9530_SHA256 "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
#define RFC9530_SHA512                                                                         \
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHW" \
    "XvJwew==:"

static const authz_caller_t who = {.tenant = "demo", .sub = "client-1", .jti = "jti-1"};

/* The request's JCS text (new, free) or fails. */
static char *build_text(const authz_original_t *o) {
    json_t *j = NULL;
    gov_reason_t why = GOV_REASON_COUNT_;
    char eb[256];
    gov_err_t err = authz_request_build(o, &who, &j, &why, eb, sizeof eb);
    if (err != GOV_OK)
        fail_msg("refused: %s (%s)", gov_reason_code(why), eb);
    assert_int_equal(why, GOV_REASON_NONE);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(gov_canon_serialize(j, GOV_CANON_JCS, &text, &len, NULL, NULL, 0), GOV_OK);
    json_decref(j);
    return text;
}

static void expect_refused(const authz_original_t *o, gov_reason_t want) {
    json_t *j = (json_t *)1;
    gov_reason_t why = GOV_REASON_NONE;
    char eb[256] = "";
    assert_int_equal(authz_request_build(o, &who, &j, &why, eb, sizeof eb), GOV_ERR_INVALID_ARG);
    assert_null(j);
    if (why != want)
        fail_msg("want %s, got %s (%s)", gov_reason_code(want), gov_reason_code(why), eb);
    assert_true(eb[0] != '\0');
}

/* nginx: the raw target decoded once, the method as the action. */
static void test_nginx_mapping(void **state) {
    (void)state;
    authz_original_t o = {.method = "GET", .uri = "/api/items?q=rm%20-rf%20%2F&x=a+b"};
    char *t = build_text(&o);
    assert_string_equal(t, "{\"action\":\"get\",\"metadata\":{\"content_digest\":\"none\"},"
                           "\"prompt\":\"GET /api/items?q=rm -rf /&x=a+b\\nGET /api/items?q=rm "
                           "-rf /&x=a b\",\"role\":\"gateway\","
                           "\"session_id\":\"jti-1\",\"tenant\":\"demo\",\"user\":\"client-1\"}");
    /* the mapped request is a valid evaluation request */
    gov_policy_request_t pr;
    gov_reason_t why;
    char eb[128];
    assert_int_equal(gov_policy_request_parse(t, strlen(t), NULL, &pr, &why, eb, sizeof eb),
                     GOV_OK);
    gov_policy_request_clear(&pr);
    free(t);
}

/* The digest is bound: two bodies, two requests (and two input digests). */
static void test_body_digest_bound(void **state) {
    (void)state;
    authz_original_t o = {.method = "POST", .uri = "/api/items", .content_length = "18",
                          .content_digest = RFC9530_SHA256};
    char *a = build_text(&o);
    assert_non_null(strstr(a, "\"content_digest\":\"" RFC9530_SHA256 "\""));
    o.content_digest = RFC9530_SHA512;
    char *b = build_text(&o);
    assert_non_null(strstr(b, RFC9530_SHA512));
    assert_string_not_equal(a, b);
    free(a);
    free(b);
    /* declared bodies need a digest; chunked counts as a body */
    o.content_digest = NULL;
    expect_refused(&o, GOV_REASON_AUTHZ_BODY_DIGEST_REQUIRED);
    o.content_length = NULL;
    o.transfer_encoding = "chunked";
    expect_refused(&o, GOV_REASON_AUTHZ_BODY_DIGEST_REQUIRED);
    o.transfer_encoding = NULL;
    o.content_length = "0";
    char *c = build_text(&o);
    assert_non_null(strstr(c, "\"content_digest\":\"none\""));
    free(c);
}

/* Envoy: the check's own method and raw target; a carried body is
 * digested here, and a Content-Digest must match it. */
static void test_envoy_body(void **state) {
    (void)state;
    authz_original_t o = {.method = "PUT", .uri = "/api/x%20y?q=1",
                          .body = RFC9530_BODY, .body_len = strlen(RFC9530_BODY)};
    char *t = build_text(&o);
    assert_non_null(strstr(t, "\"prompt\":\"PUT /api/x y?q=1\""));
    assert_non_null(strstr(t, RFC9530_SHA256));
    free(t);
    o.content_digest = RFC9530_SHA256;
    t = build_text(&o);
    free(t);
    o.content_digest = "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:";
    expect_refused(&o, GOV_REASON_AUTHZ_BODY_DIGEST_INVALID);
}

/* The canonical prompt (review 11, M2): known answers, and every target an
 * upstream could resolve to another path than the one decided refused. */
static void test_prompt_canonical(void **state) {
    (void)state;
    static const struct {
        const char *uri, *prompt;
    } good[] = {
        {"/", "GET /"},
        {"/admin", "GET /admin"},
        {"/%61dmin", "GET /admin"},                       /* decoded once */
        {"/a/", "GET /a/"},                               /* a trailing slash is a name */
        {"/a/...b/c", "GET /a/...b/c"},                   /* dots then more are a name */
        {"/.well-known/x.json", "GET /.well-known/x.json"},
        {"/a%20b/c", "GET /a b/c"},                       /* a space inside a name */
        {"/x?a=b;c&d=e.", "GET /x?a=b;c&d=e."},           /* the query is not a path */
        {"/x?q=rm+-rf+/", "GET /x?q=rm+-rf+/\nGET /x?q=rm -rf /"},
        {"/x?q=a%2Bb+c", "GET /x?q=a+b+c\nGET /x?q=a+b c"},  /* %2B stays '+' in the form line */
        {"/x?q=%2561", "GET /x?q=%61"},                   /* %25 in the query: decoded once */
        {"/x?a=..//./b", "GET /x?a=..//./b"},             /* the query is not a path */
        {"/%C3%A9t%C3%A9", "GET /\xc3\xa9t\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char *p = NULL, eb[160] = "";
        gov_reason_t why = GOV_REASON_COUNT_;
        if (authz_prompt("GET", good[i].uri, &p, &why, eb, sizeof eb) != GOV_OK)
            fail_msg("refused %s: %s", good[i].uri, eb);
        assert_int_equal(why, GOV_REASON_NONE);
        if (strcmp(p, good[i].prompt) != 0)
            fail_msg("%s: prompt \"%s\", want \"%s\"", good[i].uri, p, good[i].prompt);
        gov_free(p);
    }
    static const struct {
        const char *uri, *detail;
    } bad[] = {
        {"/public/../admin", "path segment"},
        {"/public/%2e%2e/admin", "path segment"},
        {"/public/%2E./admin", "path segment"},
        {"/./admin", "path segment"},
        {"/admin/.", "path segment"},
        {"//admin", "empty segment"},
        {"/a//b", "empty segment"},
        {"/%2561dmin", "%25"},
        {"/a%25", "%25"},
        {"/a\\..\\admin", "backslash"},
        {"/a%5c..%5Cadmin", "backslash"},
        {"/a%2Fb", "escaped '/'"},
        /* REVIEW12 M5: path parameters and IIS's trailing dots and spaces */
        {"/public/..;/admin", "';'"},
        {"/public/..%3b/admin", "';'"},
        {"/public/..%3B/admin", "';'"},
        {"/public/%2e%2e;/admin", "';'"},
        {"/admin;jsessionid=1", "';'"},
        {"/a;/b", "';'"},
        {"/admin.", "ending in '.'"},
        {"/admin./x", "ending in '.'"},
        {"/admin%2E?x=1", "ending in '.'"},
        {"/a/.../b", "ending in '.'"},
        {"/admin%20", "%20"},
        {"/admin%20/x", "%20"},
        {"/a%C3", "UTF-8"},
        {"/a#b", "fragment"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *p = (char *)1, eb[160] = "";
        gov_reason_t why = GOV_REASON_NONE;
        if (authz_prompt("GET", bad[i].uri, &p, &why, eb, sizeof eb) != GOV_ERR_INVALID_ARG)
            fail_msg("accepted %s", bad[i].uri);
        assert_null(p);
        assert_int_equal(why, GOV_REASON_AUTHZ_ORIGINAL_REQUEST_INVALID);
        if (strstr(eb, bad[i].detail) == NULL)
            fail_msg("%s: detail \"%s\" lacks \"%s\"", bad[i].uri, eb, bad[i].detail);
    }
}

static void test_refusals(void **state) {
    (void)state;
    const gov_reason_t bad = GOV_REASON_AUTHZ_ORIGINAL_REQUEST_INVALID;
    authz_original_t o = {.method = "GET", .uri = "/ok"};
    const char *methods[] = {NULL, "", "get", "G ET", "GET\r", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        o.method = methods[i];
        expect_refused(&o, bad);
    }
    o.method = "GET";
    const char *uris[] = {NULL, "", "ok", "http://x/", "/a b", "/a%", "/a%4", "/a%zz", "/a%00",
                          "/a%0a", "/a%7F", "/a%ff", "/a\x80", "/a#\x01"};
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        o.uri = uris[i];
        expect_refused(&o, bad);
    }
    char *big = malloc(AUTHZ_URI_MAX + 2);
    assert_non_null(big);
    memset(big, 'a', AUTHZ_URI_MAX + 1);
    big[0] = '/';
    big[AUTHZ_URI_MAX + 1] = '\0';
    o.uri = big;
    expect_refused(&o, bad);
    big[AUTHZ_URI_MAX] = '\0'; /* exactly the limit passes */
    char *t = build_text(&o);
    free(t);
    free(big);
    o.uri = "/ok";
    o.content_length = "12x";
    expect_refused(&o, bad);
    o.content_length = NULL;
    const char *digests[] = {"sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE:",
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPF=:", /* non-canonical last char */
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, " RFC9530_SHA512,
        "md5=:XrY7u+Ae7tCTyyK7j1rNww==:", "SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9D*PE=:"};
    for (size_t i = 0; i < sizeof digests / sizeof digests[0]; i++) {
        o.content_digest = digests[i];
        expect_refused(&o, GOV_REASON_AUTHZ_BODY_DIGEST_INVALID);
    }
}

static void test_consistency(void **state) {
    (void)state;
    gov_reason_t why;
    char eb[200];
    const char *cur = "aaaa", *old = "bbbb", *other = "cccc";
    gov_jwt_grace_t g[] = {{.hash = old, .until_s = 1000}};
#define CHECK(dh, ch, th, n, now, dd, ed, want, reason)                                      \
    do {                                                                                    \
        why = GOV_REASON_COUNT_;                                                            \
        assert_int_equal(authz_decision_consistent(dh, ch, th, g, n, now, dd, ed, &why, eb,   \
                                                   sizeof eb), want);                       \
        assert_int_equal(why, reason);                                                      \
    } while (0)
    CHECK(cur, cur, cur, 1, 10, "d1", "d1", GOV_OK, GOV_REASON_NONE);
    /* the token's hash in grace */
    CHECK(cur, cur, old, 1, 999, "d1", "d1", GOV_OK, GOV_REASON_NONE);
    /* ... but not once the grace ended, nor without grace */
    CHECK(cur, cur, old, 1, 1000, "d1", "d1", GOV_ERR_VERIFY,
          GOV_REASON_AUTHZ_CONSTITUTION_MISMATCH);
    CHECK(cur, cur, old, 0, 10, "d1", "d1", GOV_ERR_VERIFY, GOV_REASON_AUTHZ_CONSTITUTION_MISMATCH);
    CHECK(cur, cur, other, 1, 10, "d1", "d1", GOV_ERR_VERIFY,
          GOV_REASON_AUTHZ_CONSTITUTION_MISMATCH);
    /* the constitution changed under the decision: in grace passes, else not */
    CHECK(old, cur, old, 1, 10, "d1", "d1", GOV_OK, GOV_REASON_NONE);
    CHECK(other, cur, other, 1, 10, "d1", "d1", GOV_ERR_VERIFY,
          GOV_REASON_AUTHZ_CONSTITUTION_MISMATCH);
    CHECK(cur, "", cur, 1, 10, "d1", "d1", GOV_ERR_VERIFY, GOV_REASON_AUTHZ_CONSTITUTION_MISMATCH);
    CHECK(NULL, cur, cur, 1, 10, "d1", "d1", GOV_ERR_VERIFY,
          GOV_REASON_AUTHZ_CONSTITUTION_MISMATCH);
    CHECK(cur, NULL, cur, 1, 10, "d1", "d1", GOV_ERR_VERIFY,
          GOV_REASON_AUTHZ_CONSTITUTION_MISMATCH);
    CHECK(cur, cur, NULL, 1, 10, "d1", "d1", GOV_ERR_VERIFY,
          GOV_REASON_AUTHZ_CONSTITUTION_MISMATCH);
    /* the input digest */
    CHECK(cur, cur, cur, 1, 10, "d1", "d2", GOV_ERR_VERIFY, GOV_REASON_AUTHZ_INPUT_DIGEST_MISMATCH);
    CHECK(cur, cur, cur, 1, 10, "", "", GOV_ERR_VERIFY, GOV_REASON_AUTHZ_INPUT_DIGEST_MISMATCH);
    CHECK(cur, cur, cur, 1, 10, NULL, "d1", GOV_ERR_VERIFY,
          GOV_REASON_AUTHZ_INPUT_DIGEST_MISMATCH);
#undef CHECK
}

static void test_policy_headers(void **state) {
    (void)state;
    const char *yes[] = {"X-Policy-Decision", "x-policy-score", "X-POLICY-FOO", "X-Policy-",
                         "X-Constitution-Hash", "x-constitution-hash"};
    const char *no[] = {NULL, "", "X-Policy", "XPolicy-Decision", "X-Constitution-Hashes",
                        "X-Constitution", "Authorization", "Content-Digest"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(authz_header_is_policy(yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(authz_header_is_policy(no[i]));
}

/* Every allocation failing in turn: out_of_memory or success, never a leak
 * or a crash. */
static void test_allocation_failures(void **state) {
    (void)state;
    authz_original_t o = {.method = "POST", .uri = "/a%20b", .body = "x", .body_len = 1};
    for (long n = 0; n < 64; n++) {
        json_t *j = NULL;
        gov_reason_t why;
        char eb[128];
        gov_alloc_fail_after(n);
        gov_err_t err = authz_request_build(&o, &who, &j, &why, eb, sizeof eb);
        long failed = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (err == GOV_OK) {
            assert_non_null(j);
            json_decref(j);
            if (failed == 0)
                return;
        } else {
            assert_int_equal(err, GOV_ERR_NOMEM);
            assert_null(j);
        }
    }
    fail_msg("still failing after 64 allocations");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nginx_mapping),
        cmocka_unit_test(test_body_digest_bound),
        cmocka_unit_test(test_envoy_body),
        cmocka_unit_test(test_prompt_canonical),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_consistency),
        cmocka_unit_test(test_policy_headers),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
