/* test_policy_parse.c - the one-pass request parser against the tree parser
 * it replaced.
 *
 * gov_policy_request_parse (common/core/gov_policy_request.c) must give every
 * input the answer the old path gave (tests/unit/policy_request_tree.h:
 * gov_canon_parse, gov_json_depth, validation on the jansson tree, SHA-256
 * of gov_canon_serialize's RFC 8785 bytes): the same gov_err_t, the same
 * reason, the same message (except the byte offset of a refusal jansson
 * made, which jansson counted its own way), and on success the same
 * input_digest and the same fields.  The inputs: every file of every fuzz
 * corpus under tests/fuzz/corpus/, every request of tests/vectors/policy,
 * hand-written edge cases (numbers at the limits of int64 and double, JCS's
 * integer spellings, duplicate keys shallow and deep and in large objects,
 * NUL in keys, escapes, refusals in every order), and a fixed-seed stream of
 * mutations of them (byte changes, truncations, splices), each under the
 * default limits and under small ones.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "gov_alloc.h"
#include "gov_policy.h"
#include "policy_request_tree.h"
#include "unit_files.h"

/* Refusals jansson made: their message carries jansson's byte count. */
static int jansson_refusal(gov_reason_t r) {
    return r == GOV_REASON_DUPLICATE_KEY || r == GOV_REASON_NUMBER_OUT_OF_RANGE ||
           r == GOV_REASON_NUL_IN_KEY;
}

static int same_str(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static size_t compared, accepted;

/* Both parsers on text[0..len) under lim: the same answer, or a failure
 * naming the input. */
static void same_answer(const char *text, size_t len, const gov_policy_limits_t *lim) {
    gov_policy_request_t a;
    tree_request_t b;
    char ea[256] = "", eb[256] = "";
    gov_reason_t ra = GOV_REASON_COUNT_, rb = GOV_REASON_COUNT_;
    gov_err_t ca = gov_policy_request_parse(text, len, lim, &a, &ra, ea, sizeof ea);
    gov_err_t cb = tree_request_parse(text, len, lim, &b, &rb, eb, sizeof eb);
    compared++;
    if (ca != cb || ra != rb || (!jansson_refusal(ra) && strcmp(ea, eb) != 0))
        fail_msg("input %.*s (%zu bytes): one-pass %s %s \"%s\", tree %s %s \"%s\"",
                 (int)(len < 200 ? len : 200), text, len, gov_err_code(ca), gov_reason_code(ra),
                 ea, gov_err_code(cb), gov_reason_code(rb), eb);
    if (ca == GOV_OK) {
        accepted++;
        assert_string_equal(a.input_digest, b.input_digest);
        assert_true(same_str(a.tenant, b.tenant) && same_str(a.session_id, b.session_id) &&
                    same_str(a.user, b.user) && same_str(a.role, b.role) &&
                    same_str(a.action, b.action) && same_str(a.tool_name, b.tool_name) &&
                    same_str(a.tool_category, b.tool_category));
        assert_int_equal(a.prompt_len, b.prompt_len);
        assert_memory_equal(a.prompt, b.prompt, a.prompt_len);
        assert_int_equal(a.nmetadata, b.metadata ? json_object_size(b.metadata) : 0);
        for (size_t i = 0; i < a.nmetadata; i++) {
            const json_t *v = json_object_get(b.metadata, a.metadata[i].key);
            assert_non_null(v);
            assert_string_equal(a.metadata[i].value, json_string_value(v));
            assert_int_equal(a.metadata[i].value_len, json_string_length(v));
            assert_string_equal(gov_policy_request_metadata(&a, a.metadata[i].key),
                                a.metadata[i].value);
            if (i > 0)
                assert_true(strcmp(a.metadata[i - 1].key, a.metadata[i].key) < 0);
        }
        assert_null(gov_policy_request_metadata(&a, "\x7f no such key"));
    } else {
        assert_null(a.mem);
        assert_null(a.tenant);
        assert_null(a.metadata);
    }
    gov_policy_request_clear(&a);
    tree_request_clear(&b);
}

/* The limits every input is tried under: the defaults, and small ones that
 * turn other checks on. */
static void same_answer_all_limits(const char *text, size_t len) {
    gov_policy_limits_t lim = gov_policy_limits_default();
    same_answer(text, len, NULL);
    lim.max_depth = 1;
    lim.max_string_bytes = 3;
    lim.max_metadata_entries = 1;
    lim.max_prompt_bytes = 8;
    same_answer(text, len, &lim);
    lim = gov_policy_limits_default();
    lim.max_depth = 64;
    lim.max_metadata_entries = 0;
    lim.max_bytes = len > 0 ? len - 1 : 0;
    same_answer(text, len, &lim);
}

/* A fixed-seed stream (xorshift64*): the same mutations on every run. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

/* Bytes a mutation puts in: JSON's own, and the ones that break it. */
static const char interesting[] = "{}[]\":,\\u0e-+.9 \t\n\x00\x7f\x80\xc3\xa9\xed\xf4\xff";

static void mutate_and_compare(const char *text, size_t len, int rounds) {
    char *buf = malloc(len + 64);
    assert_non_null(buf);
    for (int r = 0; r < rounds; r++) {
        size_t n = len;
        memcpy(buf, text, len);
        int edits = 1 + (int)(rng() % 3);
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = (size_t)(rng() % n);
            switch (rng() % 4) {
            case 0: /* change a byte */
                buf[at] = interesting[rng() % (sizeof interesting - 1)];
                break;
            case 1: /* cut the text */
                n = at;
                break;
            case 2: /* drop a byte */
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            default: /* duplicate a run (a member twice, a deeper value) */
                if (n + 32 <= len + 64) {
                    size_t run = 1 + (size_t)(rng() % 31);
                    if (run > n - at)
                        run = n - at;
                    memmove(buf + at + run, buf + at, n - at);
                    n += run;
                }
                break;
            }
        }
        same_answer_all_limits(buf, n);
    }
    free(buf);
}

/* Every file of every fuzz corpus (calls fn on each). */
static void each_corpus_file(void (*fn)(const char *, size_t)) {
    char *base = strdup(unit_repo_path("tests/fuzz/corpus"));
    DIR *top = opendir(base);
    if (top == NULL)
        fail_msg("cannot open %s", base);
    struct dirent *d;
    while ((d = readdir(top)) != NULL) {
        if (d->d_name[0] == '.')
            continue;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", base, d->d_name);
        DIR *sub = opendir(dir);
        if (sub == NULL)
            continue;
        struct dirent *f;
        while ((f = readdir(sub)) != NULL) {
            if (f->d_name[0] == '.')
                continue;
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, f->d_name);
            size_t len;
            char *text = unit_slurp_path(path, &len);
            fn(text, len);
            free(text);
        }
        closedir(sub);
    }
    closedir(top);
    free(base);
}

static void corpus_as_is(const char *text, size_t len) {
    same_answer_all_limits(text, len);
}

static void test_fuzz_corpora(void **state) {
    (void)state;
    compared = accepted = 0;
    each_corpus_file(corpus_as_is);
    assert_true(compared > 100);
    assert_true(accepted > 10); /* the policy_request corpus holds valid requests */
}

static void test_vectors(void **state) {
    (void)state;
    json_t *v = unit_policy_cases();
    json_t *cases = json_object_get(v, "cases"), *c;
    size_t i, n = 0;
    compared = accepted = 0;
    json_array_foreach(cases, i, c) {
        const json_t *req = json_object_get(c, "request");
        if (req == NULL)
            continue;
        /* compact, indented and key-sorted spellings of the same request */
        size_t flags[] = {JSON_COMPACT, JSON_INDENT(2) | JSON_SORT_KEYS, JSON_ENSURE_ASCII};
        for (size_t k = 0; k < 3; k++) {
            char *body = json_dumps(req, flags[k]);
            assert_non_null(body);
            same_answer_all_limits(body, strlen(body));
            free(body);
        }
        const char *want = json_string_value(
            json_object_get(json_object_get(c, "expect"), "input_digest"));
        if (want != NULL) {
            char *body = json_dumps(req, JSON_COMPACT);
            gov_policy_request_t r;
            if (gov_policy_request_parse(body, strlen(body), NULL, &r, NULL, NULL, 0) == GOV_OK) {
                assert_string_equal(r.input_digest, want);
                n++;
                gov_policy_request_clear(&r);
            }
            free(body);
        }
    }
    assert_true(n >= 40); /* the known digests (Python's rfc8785) */
    assert_true(accepted > 40);
    json_decref(v);
}

#define HEAD "\"tenant\":\"demo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\",\"prompt\":\"p\""

static void test_edge_cases(void **state) {
    (void)state;
    static const char *const cases[] = {
        /* numbers: int64's ends, JCS's spellings of doubles beyond it, others */
        "{" HEAD ",\"x\":9223372036854775807}",
        "{" HEAD ",\"x\":9223372036854775808}",
        "{" HEAD ",\"x\":-9223372036854775808}",
        "{" HEAD ",\"x\":-9223372036854775809}",
        "{" HEAD ",\"x\":9223372036854776000}",
        "{" HEAD ",\"x\":-9223372036854776000}",
        "{" HEAD ",\"x\":10000000000000000000}",
        "{" HEAD ",\"x\":100000000000000000000}",
        "{" HEAD ",\"x\":1000000000000000000000}",
        "{" HEAD ",\"x\":12345678901234567890}",
        "{" HEAD ",\"x\":18446744073709552000}",
        "{" HEAD ",\"x\":1.7976931348623157e308}",
        "{" HEAD ",\"x\":1.7976931348623158e308}",
        "{" HEAD ",\"x\":1.7976931348623159e308}",
        "{" HEAD ",\"x\":-1.8e308}",
        "{" HEAD ",\"x\":179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174.0}",
        "{" HEAD ",\"x\":0.00017976931348623159e312}",
        "{" HEAD ",\"x\":1e309}",
        "{" HEAD ",\"x\":1E+400}",
        "{" HEAD ",\"x\":0e99999999999999999999}",
        "{" HEAD ",\"x\":0.000e400}",
        "{" HEAD ",\"x\":1e-400}",
        "{" HEAD ",\"x\":-0}",
        "{" HEAD ",\"x\":1e99999999999999999999}",
        "{" HEAD ",\"x\":[1e400,{\"a\":1,\"a\":2}]}",
        "{" HEAD ",\"x\":[{\"a\":1,\"a\":2},1e400]}",
        "{" HEAD ",\"x\":[{\"a\":1,\"a\":2},1e400,]}",
        /* duplicates: at every depth, escaped spellings, many keys */
        "{" HEAD ",\"tenant\":\"demo\"}",
        "{" HEAD ",\"t\\u0065nant\":\"x\"}",
        "{" HEAD ",\"tool\":{\"name\":\"a\",\"name\":\"b\",\"category\":\"c\"}}",
        "{" HEAD ",\"metadata\":{\"k\":\"1\",\"k\":\"2\"}}",
        "{" HEAD ",\"x\":{\"y\":{\"z\":{\"q\":1,\"q\":2}}}}",
        "{" HEAD ",\"x\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
        "\"j\":1,\"k\":2,\"l\":3,\"m\":4,\"n\":5,\"o\":6,\"p\":7,\"q\":8,\"r\":9,\"h\":0,\"b\":1}}",
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
        "\"j\":1,\"k\":2,\"l\":3,\"m\":4,\"n\":5,\"o\":6,\"p\":7,\"q\":8,\"r\":9," HEAD "}",
        /* NUL in keys, before and after other refusals */
        "{" HEAD ",\"a\\u0000b\":1}",
        "{" HEAD ",\"a\\u0000b\":1,\"a\\u0000b\":1}",
        "{" HEAD ",\"x\":1e400,\"a\\u0000b\":1}",
        "{\"a\\u0000\":1,\"tenant\":\"demo\",\"tenant\":\"x\"}",
        /* escapes in keys and values */
        "{\"\\u0074enant\":\"d\\u0065mo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\","
        "\"prompt\":\"\\ud83d\\ude42 \\/ \\b\\f\\n\\r\\t \\u0000 \\\"\\\\\"}",
        "{" HEAD ",\"metadata\":{\"\\u00e9\":\"\\u00e9\",\"\\ud83d\\ude42\":\"x\","
        "\"\\uffff\":\"y\",\"e\":\"z\",\"\\u007f\":\"w\"}}",
        "{" HEAD ",\"metadata\":{\"b\":\"1\",\"a\":\"1\",\"a\\u0000\":\"1\"}}",
        "{" HEAD ",\"metadata\":{\"\":1,\"k\":\"a\\u0000\"}}",
        "{" HEAD ",\"metadata\":{\"zz\":{\"a\":1},\"b\":\"x\\u0000\",\"c\":\"\"}}",
        "{" HEAD ",\"metadata\":{},\"tool\":{\"category\":\"c\",\"name\":\"n\"},\"action\":\"a\"}",
        "{" HEAD ",\"tool\":{\"name\":\"n\",\"category\":\"c\",\"zz\":1,\"aa\":2}}",
        "{" HEAD ",\"tool\":{\"name\":{\"x\":1},\"category\":\"c\"}}",
        "{" HEAD ",\"zz\":1,\"\\u00e9\":2,\"a\":3}",
        "{\"tenant\":\"\",\"session_id\":\"s\"}",
        "{\"tenant\":\"demo\",\"session_id\":\"\",\"user\":\"u\",\"role\":\"r\",\"prompt\":\"\"}",
        "{\"tenant\":\"demo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\",\"prompt\":\"\"}",
        /* grammar */
        "{" HEAD ",\"x\":tru}",
        "{" HEAD ",\"x\":truex}",
        "{" HEAD ",\"x\":01}",
        "{" HEAD ",\"x\":1.}",
        "{" HEAD ",\"x\":1e}",
        "{" HEAD ",\"x\":\"\\x\"}",
        "{" HEAD ",\"x\":\"\\u12\"}",
        "{" HEAD ",\"x\":\"\\udc00\"}",
        "{" HEAD ",\"x\":\"\\ud800\\u0041\"}",
        "{" HEAD ",\"x\":\"\\ud800\\uzzzz\"}",
        "{" HEAD ",\"x\":\"\\ud800x\"}",
        "{" HEAD "",
        "{" HEAD ",",
        "{" HEAD ",\"x\"",
        "{" HEAD ",\"x\" 1}",
        "{" HEAD "} {}",
        "{" HEAD "}   ",
        "  \t\n{" HEAD "}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        "",
        "null",
        "1e400",
        "\"x\"",
        "{}",
        "[]",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same_answer_all_limits(cases[i], strlen(cases[i]));
    /* a NUL byte in and after the text */
    static const char nul1[] = "{" HEAD "}\0";
    static const char nul2[] = "{" HEAD ",\"x\":1\0}";
    static const char nul3[] = "{" HEAD ",\"x\":\"a\0b\"}";
    same_answer_all_limits(nul1, sizeof nul1 - 1);
    same_answer_all_limits(nul2, sizeof nul2 - 1);
    same_answer_all_limits(nul3, sizeof nul3 - 1);
}

/* Large objects: many distinct keys (the sorted duplicate check), one
 * duplicate among them, many metadata entries. */
static void test_large_objects(void **state) {
    (void)state;
    size_t cap = 1 << 20, n;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (int dup = 0; dup < 2; dup++) {
        n = (size_t)snprintf(buf, cap, "{" HEAD ",\"metadata\":{");
        for (int k = 0; k < 3000; k++)
            n += (size_t)snprintf(buf + n, cap - n, "%s\"k%d\":\"v%d\"", k ? "," : "",
                                  dup && k == 2999 ? 1234 : k, k);
        n += (size_t)snprintf(buf + n, cap - n, "}}");
        same_answer_all_limits(buf, n);
        gov_policy_limits_t lim = gov_policy_limits_default();
        lim.max_metadata_entries = 5000;
        same_answer(buf, n, &lim);
    }
    free(buf);
}

static void corpus_mutated(const char *text, size_t len) {
    if (len <= 4096)
        mutate_and_compare(text, len, 12);
}

static void test_mutations(void **state) {
    (void)state;
    compared = 0;
    each_corpus_file(corpus_mutated);
    static const char *const seeds[] = {
        "{" HEAD ",\"action\":\"a\",\"tool\":{\"name\":\"n\",\"category\":\"c\"},"
        "\"metadata\":{\"env\":\"prod\",\"\\u00e9\":\"\\ud83d\\ude42\"},\"x\":[1,2.5e3,-0,true]}",
        "{\"x\":{\"y\":{\"z\":[1e308,{\"a\":1,\"b\":2}]}}," HEAD "}",
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        mutate_and_compare(seeds[i], strlen(seeds[i]), 400);
    assert_true(compared > 1000);
    print_message("%zu inputs compared, %zu accepted\n", compared, accepted);
}

/* Every allocation of a parse failed in turn: NOMEM or the same answer,
 * never a leak (the ASan and valgrind runs see to that). */
static void test_allocation_failures(void **state) {
    (void)state;
    const char *t = "{" HEAD ",\"tool\":{\"name\":\"n\",\"category\":\"c\"},"
                    "\"metadata\":{\"a\":\"1\",\"b\":\"2\"},\"x\":1e309}";
    const char *ok = "{" HEAD ",\"tool\":{\"name\":\"n\",\"category\":\"c\"},"
                     "\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}";
    const char *texts[] = {t, ok};
    for (size_t k = 0; k < 2; k++) {
        for (int nth = 0; nth < 20; nth++) {
            gov_policy_request_t r;
            gov_reason_t why = GOV_REASON_COUNT_;
            char err[128];
            gov_alloc_fail_after(nth);
            gov_err_t rc = gov_policy_request_parse(texts[k], strlen(texts[k]), NULL, &r, &why,
                                                    err, sizeof err);
            gov_alloc_fail_reset();
            if (rc == GOV_ERR_NOMEM) {
                assert_int_equal(why, GOV_REASON_NOMEM);
                assert_null(r.mem);
            } else {
                assert_int_equal(rc, k == 0 ? GOV_ERR_PARSE : GOV_OK);
            }
            gov_policy_request_clear(&r);
        }
    }
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuzz_corpora),      cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_edge_cases),        cmocka_unit_test(test_large_objects),
        cmocka_unit_test(test_mutations),         cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
