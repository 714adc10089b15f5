/* test_somabrain_sync.c - the pure core of gov-somabrain-sync (gov_bundle):
 * the raw document span scanner, the bundle shape check, gov_bundle_parse,
 * the ConstitutionBundle event (through the real Avro codec and back), and
 * the fetch schedule (jitter and backoff with a given random input).
 *
 * The span scanner's contract is that the bytes it returns are exactly the
 * bytes of the "document" value in the body; every case checks the span
 * against the literal text, and a property test checks that no proper prefix
 * of a valid bundle is accepted.  Allocation failure is injected at every
 * allocation of the parse -> event -> encode path (SQLite's OOM technique):
 * each must fail cleanly, and the suite runs under ASan and valgrind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_bundle.h"
#include "gov_err.h"

/* A document with what re-serialization would change: number spellings,
 * escapes, non-ASCII, whitespace and key order. */
#define DOC                                                                          \
    "{ \"version\": \"1.2.0\",\n  \"rules\": {\"max_risk_score\": 0.1, \"tiny\": 1e-7," \
    " \"big\": 1E+2, \"neg\": -0.0, \"z\": 10.50},\n"                                  \
    "  \"name\": \"Constitution \\u00e9 caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80\","    \
    " \"quote\": \"a \\\"}\\\" b\\\\\", \"empty\": {}, \"list\": [ [], [1, [2]], null, true ] }"

#define SIGS                                                                         \
    "[{\"signer_id\": \"human_operator\", \"algorithm\": \"ed25519\", \"signature\": " \
    "\"00ff\", \"note\": \"extra\"}]"

static char *make_bundle(const char *tenant, const char *doc) {
    static const char fmt[] =
        "{\"tenant\": \"%s\", \"canonicalization\": \"somabrain-json\",\n"
        " \"document\" :\t%s ,\n \"hash_alg\": \"sha256\", \"checksum\": \"abcdef\","
        " \"signatures\": " SIGS ", \"issued_by\": \"somabrain\"}\n";
    size_t n = strlen(fmt) + strlen(tenant) + strlen(doc) + 1;
    char *b = malloc(n);
    assert_non_null(b);
    snprintf(b, n, fmt, tenant, doc);
    return b;
}

static void expect_span(const char *text, const char *name, const char *want) {
    size_t off = 99, len = 99;
    char eb[128] = "";
    gov_err_t e = gov_bundle_member_span(text, strlen(text), name, &off, &len, eb, sizeof eb);
    if (e != GOV_OK)
        fail_msg("span of %s in %s: %s (%s)", name, text, gov_err_code(e), eb);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(text + off, want, len);
}

static void expect_span_err(const char *text, size_t len, gov_err_t want) {
    size_t off = 0, slen = 0;
    char eb[128] = "";
    gov_err_t e = gov_bundle_extract_document_span(text, len, &off, &slen, eb, sizeof eb);
    if (e != want)
        fail_msg("%.*s: got %s (%s), want %s", (int)len, text, gov_err_code(e), eb,
                 gov_err_code(want));
    assert_true(eb[0] != '\0'); /* every refusal says why */
}

/* --- span scanner -------------------------------------------------------------- */

static void test_span_is_the_exact_document_text(void **state) {
    (void)state;
    char *b = make_bundle("acme", DOC);
    expect_span(b, "document", DOC);
    expect_span(b, "signatures", SIGS);
    expect_span(b, "checksum", "\"abcdef\"");
    expect_span(b, "tenant", "\"acme\"");
    free(b);
    /* first, last, only, and with no whitespace at all */
    expect_span("{\"document\":{\"a\":1},\"x\":2}", "document", "{\"a\":1}");
    expect_span("{\"x\":2,\"document\":{\"a\":[1,2.5e-3]}}", "document", "{\"a\":[1,2.5e-3]}");
    expect_span(" \r\n\t{ \"document\" : {} } \n", "document", "{}");
    /* any JSON value: the shape check, not the scanner, wants an object */
    expect_span("{\"document\":-0.0e+00}", "document", "-0.0e+00");
    expect_span("{\"document\":\"\\u00e9\"}", "document", "\"\\u00e9\"");
    expect_span("{\"document\":null}", "document", "null");
    expect_span("{\"document\":[true,false]}", "document", "[true,false]");
}

static void test_span_decodes_member_names(void **state) {
    (void)state;
    /* jansson decodes escapes in names, so the scanner must too */
    expect_span("{\"docum\\u0065nt\":{\"a\":1}}", "document", "{\"a\":1}");
    expect_span("{\"\\u0064ocument\":[]}", "document", "[]");
    expect_span("{\"caf\\u00e9\":1,\"caf\xc3\xa9x\":2}", "caf\xc3\xa9", "1");
    expect_span("{\"\\ud83d\\ude00\":7}", "\xf0\x9f\x98\x80", "7");
    expect_span("{\"a\\/b\":3}", "a/b", "3");
    /* near misses are other members */
    size_t off, len;
    const char *t = "{\"Document\":1,\"documents\":2,\"documen\":3,\"document\\u0000\":4}";
    assert_int_equal(gov_bundle_member_span(t, strlen(t), "document", &off, &len, NULL, 0),
                     GOV_ERR_NOT_FOUND);
}

static void test_span_ignores_decoys(void **state) {
    (void)state;
    /* "document" inside strings and nested objects is not the member */
    const char *t = "{\"a\":\"\\\"document\\\": {\",\"b\":{\"document\":1},"
                    "\"c\":[{\"document\":2}],\"document\":{\"x\":\"}\\\\\"},\"d\":\"]\"}";
    expect_span(t, "document", "{\"x\":\"}\\\\\"}");
}

static void test_span_refuses_malformed_text(void **state) {
    (void)state;
    static const char *const bad[] = {
        "", " ", "[]", "\"document\"", "null", "{", "{\"document\"", "{\"document\":",
        "{\"document\":}", "{\"document\" {}}", "{document:{}}", "{'document':{}}",
        "{\"document\":{},}", "{\"document\":[1,]}", "{\"document\":[1 2]}",
        "{\"document\":{\"a\" 1}}", "{\"document\":{\"a\":1,}}", "{\"document\":{1:2}}",
        "{\"document\":{}} x", "{\"document\":{}}{}", "{\"document\":{}}]",
        "{\"document\":01}", "{\"document\":1.}", "{\"document\":.5}", "{\"document\":-}",
        "{\"document\":1e}", "{\"document\":1e+}", "{\"document\":+1}", "{\"document\":0x1}",
        "{\"document\":tru}", "{\"document\":nul}", "{\"document\":True}", "{\"document\":NaN}",
        "{\"document\":\"abc}", "{\"document\":\"\\x\"}", "{\"document\":\"\\u12\"}",
        "{\"document\":\"\\u12G4\"}", "{\"document\":\"\\ud800\"}",
        "{\"document\":\"\\ud800\\u0041\"}", "{\"document\":\"\\udc00\"}",
        "{\"document\":\"tab\there\"}", "{\"document\":\"nl\nhere\"}",
        "{\"document\":\"\xc0\x80\"}",      /* overlong */
        "{\"document\":\"\xed\xa0\x80\"}",  /* UTF-8 surrogate */
        "{\"document\":\"\xf4\x90\x80\x80\"}", /* > U+10FFFF */
        "{\"document\":\"\xe2\x9c\"}",      /* cut sequence */
        "{\"document\":{}, \"document\":{}}", /* twice */
        "{\"document\":{}, \"docum\\u0065nt\":{}}", /* twice, spelled differently */
        "\xef\xbb\xbf{\"document\":{}}",    /* BOM */
        "{\"document\":[[[[]]]}",           /* unbalanced */
        "{\"document\":{]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_span_err(bad[i], strlen(bad[i]), GOV_ERR_PARSE);
    /* a raw NUL is not whitespace (jansson alone would skip one after a number) */
    expect_span_err("{\"document\":1\0}", 15, GOV_ERR_PARSE);
    expect_span_err("{\"document\":\"a\0b\"}", 18, GOV_ERR_PARSE);
    expect_span_err("{\"x\":1}", 7, GOV_ERR_NOT_FOUND);
    expect_span_err("{}", 2, GOV_ERR_NOT_FOUND);
    size_t off, len;
    assert_int_equal(gov_bundle_extract_document_span(NULL, 0, &off, &len, NULL, 0),
                     GOV_ERR_INVALID_ARG);
}

static void test_span_no_prefix_is_accepted(void **state) {
    (void)state;
    char *b = make_bundle("acme", DOC);
    size_t n = strlen(b), off, len;
    /* the text ends in "}\n": every cut before the closing brace must fail */
    for (size_t cut = 0; cut + 1 < n; cut++) {
        gov_err_t e = gov_bundle_extract_document_span(b, cut, &off, &len, NULL, 0);
        if (e == GOV_OK)
            fail_msg("prefix of %zu bytes accepted", cut);
    }
    assert_int_equal(gov_bundle_extract_document_span(b, n - 1, &off, &len, NULL, 0), GOV_OK);
    assert_int_equal(gov_bundle_extract_document_span(b, n, &off, &len, NULL, 0), GOV_OK);
    free(b);
}

/* {"document":[[...]]} with the document nested `depth` arrays deep. */
static char *nested(int depth) {
    char *t = malloc((size_t)depth * 2 + 32);
    assert_non_null(t);
    int o = sprintf(t, "{\"document\":");
    memset(t + o, '[', (size_t)depth);
    memset(t + o + depth, ']', (size_t)depth);
    sprintf(t + o + 2 * depth, "}");
    return t;
}

static void test_span_depth_is_bounded(void **state) {
    (void)state;
    size_t off, len;
    char eb[128];
    /* the document itself may nest GOV_BUNDLE_MAX_DEPTH - 1 (= 64) deep */
    char *ok = nested(GOV_BUNDLE_MAX_DEPTH - 1);
    assert_int_equal(gov_bundle_extract_document_span(ok, strlen(ok), &off, &len, eb, sizeof eb),
                     GOV_OK);
    free(ok);
    char *deep = nested(GOV_BUNDLE_MAX_DEPTH);
    assert_int_equal(gov_bundle_extract_document_span(deep, strlen(deep), &off, &len, eb,
                                                      sizeof eb), GOV_ERR_TOO_LARGE);
    assert_non_null(strstr(eb, "nesting"));
    free(deep);
    /* far beyond: refused at the limit, with no recursion to exhaust */
    size_t n = 1000000;
    char *huge = malloc(n + 16);
    assert_non_null(huge);
    memcpy(huge, "{\"document\":", 12);
    memset(huge + 12, '[', n);
    assert_int_equal(gov_bundle_extract_document_span(huge, n + 12, &off, &len, NULL, 0),
                     GOV_ERR_TOO_LARGE);
    free(huge);
}

/* --- shape ------------------------------------------------------------------- */

static json_t *good_bundle(void) {
    json_t *b = json_pack("{s:s, s:{s:s}, s:s, s:s, s:s, s:[{s:s, s:s, s:s}]}", "tenant", "acme",
                          "document", "version", "1", "canonicalization", "jcs", "hash_alg",
                          "sha256", "checksum", "ab", "signatures", "signer_id", "op",
                          "algorithm", "ed25519", "signature", "00");
    assert_non_null(b);
    return b;
}

static void expect_shape(json_t *b, const char *expected_tenant, const char *want_reason,
                         const char *want_in_detail) {
    gov_reason_t reason = GOV_REASON_COUNT_;
    char eb[256] = "";
    gov_err_t e = gov_bundle_check_shape(b, expected_tenant, &reason, eb, sizeof eb);
    if (want_reason == NULL) {
        if (e != GOV_OK)
            fail_msg("shape refused: %s", eb);
        assert_int_equal(reason, GOV_REASON_NONE);
        return;
    }
    assert_int_equal(e, GOV_ERR_VERIFY);
    assert_string_equal(gov_reason_code(reason), want_reason);
    if (strstr(eb, want_in_detail) == NULL)
        fail_msg("detail \"%s\" does not name \"%s\"", eb, want_in_detail);
}

static void test_shape(void **state) {
    (void)state;
    json_t *b = good_bundle();
    expect_shape(b, "acme", NULL, NULL);
    expect_shape(b, NULL, NULL, NULL);
    expect_shape(b, "other", "tenant_mismatch", "other");
    /* the document's own tenant too, where the tenant is known */
    json_object_set_new(json_object_get(b, "document"), "tenant", json_string("other"));
    expect_shape(b, "acme", "tenant_mismatch", "document.tenant");
    expect_shape(b, NULL, NULL, NULL);
    json_object_set_new(json_object_get(b, "document"), "tenant", json_integer(1));
    expect_shape(b, "acme", "tenant_mismatch", "document.tenant");
    json_object_set_new(json_object_get(b, "document"), "tenant", json_string("acme"));
    expect_shape(b, "acme", NULL, NULL);
    json_object_del(json_object_get(b, "document"), "tenant");
    json_object_set_new(b, "extra", json_integer(1)); /* ignored */
    json_array_clear(json_object_get(b, "signatures")); /* none: gov-constitution decides */
    expect_shape(b, "acme", NULL, NULL);
    json_decref(b);
    json_t *arr = json_array();
    expect_shape(arr, NULL, "invalid_bundle", "not a JSON object");
    json_decref(arr);

    /* each member missing, and each of the wrong type */
    static const char *const members[] = {"tenant", "document", "canonicalization", "hash_alg",
                                          "checksum", "signatures"};
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        b = good_bundle();
        json_object_del(b, members[i]);
        expect_shape(b, "acme", "invalid_bundle", members[i]);
        json_object_set_new(b, members[i], json_integer(5));
        expect_shape(b, "acme", "invalid_bundle", members[i]);
        json_decref(b);
    }
    static const char *const strings[] = {"canonicalization", "hash_alg", "checksum"};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        b = good_bundle();
        json_object_set_new(b, strings[i], json_string(""));
        expect_shape(b, "acme", "invalid_bundle", strings[i]);
        json_object_set_new(b, strings[i], json_stringn("a\0b", 3));
        expect_shape(b, "acme", "invalid_bundle", strings[i]);
        char *longs = malloc(GOV_BUNDLE_MAX_FIELD + 2);
        memset(longs, 'a', GOV_BUNDLE_MAX_FIELD + 1);
        longs[GOV_BUNDLE_MAX_FIELD + 1] = '\0';
        json_object_set_new(b, strings[i], json_string(longs));
        expect_shape(b, "acme", "invalid_bundle", strings[i]);
        longs[GOV_BUNDLE_MAX_FIELD] = '\0';
        json_object_set_new(b, strings[i], json_string(longs));
        expect_shape(b, "acme", NULL, NULL);
        free(longs);
        json_decref(b);
    }
    /* the tenant must be a tenant id, whatever was expected */
    b = good_bundle();
    json_object_set_new(b, "tenant", json_string("-bad"));
    expect_shape(b, NULL, "invalid_bundle", "tenant");
    json_object_set_new(b, "tenant", json_string("ac me"));
    expect_shape(b, "ac me", "invalid_bundle", "tenant");
    json_object_set_new(b, "document", json_array());
    json_object_set_new(b, "tenant", json_string("acme"));
    expect_shape(b, "acme", "invalid_bundle", "document");
    json_decref(b);

    /* signatures: each entry an object with three non-empty strings */
    static const char *const fields[] = {"signer_id", "algorithm", "signature"};
    for (size_t i = 0; i < 3; i++) {
        b = good_bundle();
        json_t *sig = json_array_get(json_object_get(b, "signatures"), 0);
        json_object_set_new(sig, fields[i], json_true());
        expect_shape(b, "acme", "invalid_bundle", fields[i]);
        json_object_del(sig, fields[i]);
        expect_shape(b, "acme", "invalid_bundle", fields[i]);
        json_decref(b);
    }
    b = good_bundle();
    json_array_append_new(json_object_get(b, "signatures"), json_string("sig"));
    expect_shape(b, "acme", "invalid_bundle", "signatures[1]");
    json_array_clear(json_object_get(b, "signatures"));
    for (int i = 0; i <= GOV_BUNDLE_MAX_SIGNATURES; i++)
        json_array_append_new(json_object_get(b, "signatures"),
                              json_pack("{s:s,s:s,s:s}", "signer_id", "s", "algorithm", "a",
                                        "signature", "x"));
    expect_shape(b, "acme", "invalid_bundle", "signatures");
    json_array_remove(json_object_get(b, "signatures"), 0);
    expect_shape(b, "acme", NULL, NULL);
    json_decref(b);
}

/* --- parse -------------------------------------------------------------------- */

static void expect_parse(const char *body, size_t len, const char *tenant, gov_err_t want_err,
                         const char *want_reason) {
    json_t *b = (json_t *)1;
    size_t off = 0, dlen = 0;
    gov_reason_t reason = GOV_REASON_COUNT_;
    char eb[256] = "";
    gov_err_t e = gov_bundle_parse(body, len, tenant, &b, &off, &dlen, &reason, eb, sizeof eb);
    if (e != want_err)
        fail_msg("parse: %s (%s), want %s", gov_err_code(e), eb, gov_err_code(want_err));
    assert_null(b);
    assert_string_equal(gov_reason_code(reason), want_reason);
    assert_true(eb[0] != '\0');
}

static void test_parse(void **state) {
    (void)state;
    char *body = make_bundle("acme", DOC);
    json_t *b = NULL;
    size_t off = 0, dlen = 0;
    gov_reason_t reason = GOV_REASON_COUNT_;
    char eb[256] = "";
    assert_int_equal(gov_bundle_parse(body, strlen(body), "acme", &b, &off, &dlen, &reason, eb,
                                      sizeof eb), GOV_OK);
    assert_int_equal(reason, GOV_REASON_NONE);
    assert_int_equal(dlen, strlen(DOC));
    assert_memory_equal(body + off, DOC, dlen);
    /* the span parses to the value jansson gave for "document" */
    json_t *doc = json_loadb(body + off, dlen, 0, NULL);
    assert_true(json_equal(doc, json_object_get(b, "document")));
    json_decref(doc);
    json_decref(b);

    expect_parse(body, strlen(body), "other", GOV_ERR_VERIFY, "tenant_mismatch");
    expect_parse(body, strlen(body) - 3, "acme", GOV_ERR_PARSE, "invalid_json");
    free(body);

    expect_parse("", 0, "acme", GOV_ERR_PARSE, "invalid_json");
    expect_parse("\x89PNG garbage\xff", 13, "acme", GOV_ERR_PARSE, "invalid_json");
    expect_parse("<html>404</html>", 16, "acme", GOV_ERR_PARSE, "invalid_json");
    expect_parse("[1,2]", 5, "acme", GOV_ERR_VERIFY, "invalid_bundle");
    expect_parse("\"acme\"", 6, "acme", GOV_ERR_VERIFY, "invalid_bundle");
    expect_parse("{\"tenant\":\"acme\"}", 17, "acme", GOV_ERR_VERIFY,
                 "invalid_bundle");
    /* duplicate keys anywhere are refused by jansson: no guessing which one */
    char *dup = make_bundle("acme", "{\"a\":1,\"a\":2}");
    expect_parse(dup, strlen(dup), "acme", GOV_ERR_PARSE, "invalid_json");
    free(dup);
    const char *dupdoc = "{\"tenant\":\"acme\",\"document\":{},\"document\":{}}";
    expect_parse(dupdoc, strlen(dupdoc), "acme", GOV_ERR_PARSE, "invalid_json");
    /* a document nested deeper than gov_canon accepts */
    char deepdoc[300];
    int o = sprintf(deepdoc, "{\"a\":");
    for (int i = 0; i < GOV_BUNDLE_MAX_DEPTH; i++)
        deepdoc[o++] = '[';
    for (int i = 0; i < GOV_BUNDLE_MAX_DEPTH; i++)
        deepdoc[o++] = ']';
    sprintf(deepdoc + o, "}");
    char *deep = make_bundle("acme", deepdoc);
    expect_parse(deep, strlen(deep), "acme", GOV_ERR_VERIFY, "invalid_bundle");
    free(deep);
    /* jansson skips a raw NUL after a literal; the scanner does not */
    const char nul[] = "{\"tenant\":\"acme\",\"document\":{\"a\":true\0},\"canonicalization\":"
                       "\"jcs\",\"hash_alg\":\"sha256\",\"checksum\":\"ab\",\"signatures\":[]}";
    json_t *probe = json_loadb(nul, sizeof nul - 1, 0, NULL);
    if (probe != NULL) /* only meaningful where jansson is that lenient */
        expect_parse(nul, sizeof nul - 1, "acme", GOV_ERR_PARSE, "invalid_json");
    json_decref(probe);
}

/* --- event -------------------------------------------------------------------- */

static void test_event_roundtrip_keeps_document_bytes(void **state) {
    (void)state;
    gov_avro_registry_t *reg = NULL;
    char eb[256] = "";
    assert_int_equal(gov_avro_registry_new(&reg, eb, sizeof eb), GOV_OK);
    char *body = make_bundle("acme", DOC);
    json_t *b = NULL, *ev = NULL, *back = NULL;
    size_t off, dlen, len;
    gov_reason_t reason;
    const char *name;
    unsigned char *buf = NULL;
    assert_int_equal(gov_bundle_parse(body, strlen(body), "acme", &b, &off, &dlen, &reason, eb,
                                      sizeof eb), GOV_OK);
    const char *id = "019a9e8e-4f11-7cc3-98c4-dc0c0c07398f";
    for (int with_etag = 0; with_etag < 2; with_etag++) {
        assert_int_equal(gov_bundle_event_new(b, body + off, dlen, id, 1763980000123456LL,
                                              "http://127.0.0.1/b/acme.json",
                                              with_etag ? "\"6921-1a2\"" : NULL, &ev), GOV_OK);
        assert_int_equal(gov_avro_encode(reg, "ConstitutionBundle", ev, &buf, &len, eb, sizeof eb),
                         GOV_OK);
        assert_int_equal(gov_avro_decode(reg, buf, len, &back, &name, eb, sizeof eb), GOV_OK);
        assert_string_equal(name, "ConstitutionBundle");
        json_t *dj = json_object_get(back, "document_json");
        assert_int_equal(json_string_length(dj), strlen(DOC));
        assert_memory_equal(json_string_value(dj), DOC, strlen(DOC));
        assert_string_equal(json_string_value(json_object_get(back, "event_id")), id);
        assert_int_equal(json_integer_value(json_object_get(back, "occurred_at")),
                         1763980000123456LL);
        assert_string_equal(json_string_value(json_object_get(back, "tenant")), "acme");
        assert_string_equal(json_string_value(json_object_get(back, "canonicalization")),
                            "somabrain-json");
        assert_string_equal(json_string_value(json_object_get(back, "hash_alg")), "sha256");
        assert_string_equal(json_string_value(json_object_get(back, "checksum")), "abcdef");
        assert_string_equal(json_string_value(json_object_get(back, "source")),
                            "http://127.0.0.1/b/acme.json");
        if (with_etag)
            assert_string_equal(json_string_value(json_object_get(back, "etag")), "\"6921-1a2\"");
        else
            assert_true(json_is_null(json_object_get(back, "etag")));
        json_t *sigs = json_object_get(back, "signatures");
        assert_int_equal(json_array_size(sigs), 1);
        json_t *want = json_pack("{s:s, s:s, s:s}", "signer_id", "human_operator", "algorithm",
                                 "ed25519", "signature", "00ff"); /* "note" does not travel */
        assert_true(json_equal(json_array_get(sigs, 0), want));
        json_decref(want);
        json_decref(back);
        json_decref(ev);
        gov_free(buf);
    }
    /* refused: an unchecked bundle, a document that is not UTF-8 */
    json_t *empty = json_object();
    assert_int_equal(gov_bundle_event_new(empty, "{}", 2, id, 0, "s", NULL, &ev),
                     GOV_ERR_INVALID_ARG);
    json_decref(empty);
    assert_int_equal(gov_bundle_event_new(b, "{\"a\":\"\xff\"}", 9, id, 0, "s", NULL, &ev),
                     GOV_ERR_INVALID_ARG);
    json_decref(b);
    free(body);
    gov_avro_registry_free(reg);
}

/* Fails allocation n of parse -> event -> encode, for every n: each run
 * fails cleanly (no crash, no leak: ASan/valgrind) until one succeeds. */
static void test_allocation_failures(void **state) {
    (void)state;
    gov_avro_registry_t *reg = NULL;
    char eb[256];
    assert_int_equal(gov_avro_registry_new(&reg, eb, sizeof eb), GOV_OK);
    char *body = make_bundle("acme", DOC);
    int succeeded = 0;
    long n;
    for (n = 0; n < 10000 && !succeeded; n++) {
        json_t *b = NULL, *ev = NULL;
        size_t off, dlen, len;
        gov_reason_t reason;
        unsigned char *buf = NULL;
        gov_alloc_fail_after(n);
        gov_err_t e = gov_bundle_parse(body, strlen(body), "acme", &b, &off, &dlen, &reason, eb,
                                       sizeof eb);
        if (e == GOV_OK)
            e = gov_bundle_event_new(b, body + off, dlen, "019a9e8e-4f11-7cc3-98c4-dc0c0c07398f",
                                     1, "src", "etag", &ev);
        if (e == GOV_OK)
            e = gov_avro_encode(reg, "ConstitutionBundle", ev, &buf, &len, eb, sizeof eb);
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (e == GOV_OK) {
            assert_int_equal(failures, 0);
            succeeded = 1;
        } else {
            assert_true(failures > 0); /* only the injected failure makes it fail */
            assert_null(buf);
        }
        gov_free(buf);
        json_decref(ev);
        json_decref(b);
    }
    assert_true(succeeded);
    assert_true(n > 10); /* the path really allocates: the loop tested something */
    free(body);
    gov_avro_registry_free(reg);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_span_is_the_exact_document_text),
        cmocka_unit_test(test_span_decodes_member_names),
        cmocka_unit_test(test_span_ignores_decoys),
        cmocka_unit_test(test_span_refuses_malformed_text),
        cmocka_unit_test(test_span_no_prefix_is_accepted),
        cmocka_unit_test(test_span_depth_is_bounded),
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_event_roundtrip_keeps_document_bytes),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
