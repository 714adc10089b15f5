/* test_oauth_params.c - the token endpoints' parameter reader
 * (http-edge/oauth_params.c): form and JSON bodies, HTTP Basic credentials,
 * the refusals, and allocation failures.
 *
 * Known answer: the client_secret_basic header of RFC 6749 section 2.3.1
 * (client "s6BhdRkqt3", secret "7Fjfp0ZBr1KtDRbnfVdmIw").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "../../http-edge/oauth_params.h"
#include "gov_alloc.h"

static gov_err_t parse(const char *body, int form, const char *authz, oauth_params_t *p,
                       gov_reason_t *why) {
    char eb[160];
    return oauth_params_parse(body, strlen(body), form, authz, p, why, eb, sizeof eb);
}

static void expect_refused(const char *body, int form, const char *authz, gov_reason_t want) {
    oauth_params_t p;
    gov_reason_t why = GOV_REASON_NONE;
    assert_int_equal(parse(body, form, authz, &p, &why), GOV_ERR_INVALID_ARG);
    assert_int_equal(why, want);
    assert_null(p.grant_type);
    assert_null(p.client_id);
    assert_null(p.token);
}

static void test_form(void **state) {
    (void)state;
    oauth_params_t p;
    gov_reason_t why;
    assert_int_equal(parse("grant_type=client_credentials&scope=read+write%3Aall&tenant=demo"
                           "&ttl=60&other=x&&token=a.b.c&token_type_hint=access_token",
                           1, NULL, &p, &why),
                     GOV_OK);
    assert_string_equal(p.grant_type, "client_credentials");
    assert_string_equal(p.scope, "read write:all");
    assert_string_equal(p.tenant, "demo");
    assert_string_equal(p.ttl, "60");
    assert_string_equal(p.token, "a.b.c");
    assert_string_equal(p.token_type_hint, "access_token");
    assert_null(p.client_id);
    assert_int_equal(p.basic, 0);
    oauth_params_clear(&p);
    /* expires_in is the same slot as ttl */
    assert_int_equal(parse("expires_in=30", 1, NULL, &p, &why), GOV_OK);
    assert_string_equal(p.ttl, "30");
    oauth_params_clear(&p);
}

static void test_form_refusals(void **state) {
    (void)state;
    expect_refused("scope=a&scope=b", 1, NULL, GOV_REASON_INVALID_REQUEST);
    expect_refused("ttl=1&expires_in=2", 1, NULL, GOV_REASON_INVALID_REQUEST);
    expect_refused("token=%4", 1, NULL, GOV_REASON_INVALID_REQUEST);
    expect_refused("token=%zz", 1, NULL, GOV_REASON_INVALID_REQUEST);
    expect_refused("token=a%00b", 1, NULL, GOV_REASON_INVALID_REQUEST);
    expect_refused("token=%ff%fe", 1, NULL, GOV_REASON_INVALID_REQUEST); /* not UTF-8 */
    /* review10: a name spelled with escapes is the same parameter, and a
     * duplicate through it is refused, as is an overlong UTF-8 '/' */
    expect_refused("client_id=a&client%5Fid=b", 1, NULL, GOV_REASON_INVALID_REQUEST);
    expect_refused("scope=a&%73cope=b", 1, NULL, GOV_REASON_INVALID_REQUEST);
    expect_refused("tenant=%c0%af", 1, NULL, GOV_REASON_INVALID_REQUEST);
    expect_refused("{\"scope\":\"a\",\"scope\":\"b\"}", 0, NULL, GOV_REASON_INVALID_JSON);
    expect_refused("{\"scope\":\"a\\u0000b\"}", 0, NULL, GOV_REASON_INVALID_JSON);
}

static void test_basic_rfc6749(void **state) {
    (void)state;
    oauth_params_t p;
    gov_reason_t why;
    assert_int_equal(parse("grant_type=client_credentials", 1,
                           "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3", &p, &why),
                     GOV_OK);
    assert_string_equal(p.client_id, "s6BhdRkqt3");
    assert_string_equal(p.client_secret, "7Fjfp0ZBr1KtDRbnfVdmIw");
    assert_int_equal(p.basic, 1);
    oauth_params_clear(&p);
    /* form-urlencoded inside: "a%3Ab:p%20w" -> "a:b", "p w" */
    assert_int_equal(parse("", 1, "basic YSUzQWI6cCUyMHc=", &p, &why), GOV_OK);
    assert_string_equal(p.client_id, "a:b");
    assert_string_equal(p.client_secret, "p w");
    oauth_params_clear(&p);
    /* another scheme is not client authentication */
    assert_int_equal(parse("", 1, "Bearer xyz", &p, &why), GOV_OK);
    assert_null(p.client_id);
    oauth_params_clear(&p);
}

static void test_basic_refusals(void **state) {
    (void)state;
    /* credentials in the header and the body */
    expect_refused("client_id=x", 1, "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3",
                   GOV_REASON_INVALID_REQUEST);
    expect_refused("", 1, "Basic !!!!", GOV_REASON_INVALID_REQUEST);
    expect_refused("", 1, "Basic YWJj", GOV_REASON_INVALID_REQUEST);     /* "abc": no colon */
    expect_refused("", 1, "Basic YWI6Y2Q", GOV_REASON_INVALID_REQUEST);  /* unpadded */
    expect_refused("", 1, "Basic YQ==YQ==", GOV_REASON_INVALID_REQUEST); /* padding inside */
    /* review10: one spelling per credential - "ab:cd" is YWI6Y2Q=, and
     * YWI6Y2R= (non-zero unused bits) used to decode to it as well */
    expect_refused("", 1, "Basic YWI6Y2R=", GOV_REASON_INVALID_REQUEST);
    expect_refused("", 1, "Basic YWI6Y2Q==", GOV_REASON_INVALID_REQUEST); /* padding over */
    expect_refused("", 1, "Basic YWI6Y2Q-", GOV_REASON_INVALID_REQUEST);  /* URL alphabet */
    expect_refused("", 1, "Basic ", GOV_REASON_INVALID_REQUEST);
    expect_refused("", 1, "Basic AA==", GOV_REASON_INVALID_REQUEST); /* a NUL */
}

static void test_json(void **state) {
    (void)state;
    oauth_params_t p;
    gov_reason_t why;
    assert_int_equal(parse("{\"grant_type\":\"client_credentials\",\"client_id\":\"c\","
                           "\"client_secret\":\"s\",\"ttl\":120,\"extra\":[1]}",
                           0, NULL, &p, &why),
                     GOV_OK);
    assert_string_equal(p.client_id, "c");
    assert_string_equal(p.client_secret, "s");
    assert_string_equal(p.ttl, "120");
    oauth_params_clear(&p);
    expect_refused("{\"token\":1}", 0, NULL, GOV_REASON_INVALID_REQUEST);
    expect_refused("{\"ttl\":1,\"expires_in\":2}", 0, NULL, GOV_REASON_INVALID_REQUEST);
    expect_refused("{\"token\":\"a\",\"token\":\"b\"}", 0, NULL, GOV_REASON_INVALID_JSON);
    expect_refused("[1]", 0, NULL, GOV_REASON_INVALID_JSON);
    expect_refused("", 0, NULL, GOV_REASON_INVALID_JSON);
}

/* Every allocation failing in turn: an error or success, never a leak (the
 * ASan and valgrind runs check the leaks). */
static void test_allocation_failures(void **state) {
    (void)state;
    for (long n = 0; n < 64; n++) {
        oauth_params_t p;
        gov_reason_t why;
        gov_alloc_fail_after(n);
        gov_err_t err = parse("grant_type=client_credentials&scope=a+b&token=t", 1,
                              "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3", &p, &why);
        long failed = gov_alloc_failures();
        gov_alloc_fail_reset();
        assert_true(err == GOV_OK || err == GOV_ERR_NOMEM);
        if (err == GOV_ERR_NOMEM)
            assert_int_equal(why, GOV_REASON_OUT_OF_MEMORY);
        oauth_params_clear(&p);
        if (failed == 0) {
            assert_int_equal(err, GOV_OK);
            break;
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_form_refusals),
        cmocka_unit_test(test_basic_rfc6749),
        cmocka_unit_test(test_basic_refusals),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
