/* test_rulepack.c - gov_rulepack: every validation rule of docs/policy.md.
 *
 * Each invalid pack breaks exactly one rule of an otherwise valid pack; the
 * test checks the return code, the stable error code, the rule named (index
 * as published and id), the field, and the message.  Valid packs are checked
 * field by field, and their canonical JSON against bytes written by hand
 * (RFC 8785: keys sorted, no whitespace, shortest numbers).  Patterns are
 * compiled by the real Vectorscan; its refusals are provoked for real.
 *
 * Signed packs: known answers made by CPython + the `cryptography` package
 * with the RFC 8032 section 7.1 keys (tests/vectors/rulepack/gen.py): the
 * canonical bytes, their SHA-256 and two signatures must be what libgov
 * computes and accepts; each rule of gov_rulepack_verify_signatures is broken
 * once; an allocation-failure sweep runs over accepted AND refused packs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_rulepack.h"
#include "gov_signature.h"

/* A valid rule with id ID and the given extra members (or replacements
 * appended after; the test texts never repeat a member). */
#define HEAD "\"pack_id\":\"p\",\"tenant\":\"demo\",\"version\":\"1\""
#define PACK(rules) "{" HEAD ",\"rules\":[" rules "]}"
#define RULE_BODY "\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\",\"message\":\"m\""
#define RULE(id) "{\"id\":\"" id "\"," RULE_BODY ",\"match\":{\"role\":[\"a\"]}}"
#define RULE_M(id, match) "{\"id\":\"" id "\"," RULE_BODY ",\"match\":" match "}"

static const char docs_example[] =
    "{\n"
    "  \"pack_id\": \"base\",\n"
    "  \"tenant\": \"demo\",\n"
    "  \"version\": \"3\",\n"
    "  \"description\": \"Baseline rules\",\n"
    "  \"thresholds\": { \"max_risk_score\": 0.7, \"require_human_approval_above_risk\": 0.4 },\n"
    "  \"rules\": [\n"
    "    { \"id\": \"pii.email\", \"description\": \"E-mail addresses in prompts\", \"severity\": "
    "\"high\",\n"
    "      \"weight\": 0.35, \"effect\": \"add\", \"message\": \"prompt contains an e-mail "
    "address\",\n"
    "      \"match\": {\n"
    "        \"prompt\": [ { \"regex\": \"[a-z0-9._%+-]+@[a-z0-9.-]+\\\\.[a-z]{2,}\", "
    "\"case_insensitive\": true },\n"
    "                    { \"literal\": \"my password is\", \"case_insensitive\": true } ],\n"
    "        \"role\": [\"analyst\", \"intern\"],\n"
    "        \"action\": [\"export\", \"send_email\"],\n"
    "        \"tool_category\": [\"email\"],\n"
    "        \"metadata\": { \"env\": { \"equals\": \"prod\" }, \"region\": { \"in\": [\"eu\", "
    "\"us\"] } }\n"
    "      } }\n"
    "  ]\n"
    "}\n";

static gov_rulepack_t *must_parse_lim(const char *text, const gov_rulepack_limits_t *lim) {
    gov_rulepack_t *p = NULL;
    gov_rulepack_error_t d;
    char err[512] = "";
    gov_err_t rc = gov_rulepack_parse(text, strlen(text), lim, &p, &d, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("pack refused: %s [%s]: %s", gov_err_code(rc), gov_reason_code(d.code), err);
    return p;
}

static gov_rulepack_t *must_parse(const char *text) {
    return must_parse_lim(text, NULL);
}

/* ---- valid packs ------------------------------------------------------------ */

static void test_docs_example_parses(void **state) {
    (void)state;
    gov_rulepack_t *p = must_parse(docs_example);
    assert_string_equal(gov_rulepack_id(p), "base");
    assert_string_equal(gov_rulepack_tenant(p), "demo");
    assert_string_equal(gov_rulepack_version(p), "3");
    assert_int_equal(gov_rulepack_version_parsed(p)->major, 3);
    assert_int_equal(gov_rulepack_max_risk_micros(p), 700000);
    assert_int_equal(gov_rulepack_approval_micros(p), 400000);
    assert_int_equal(gov_rulepack_rule_count(p), 1);
    const gov_rule_t *r = gov_rulepack_rule(p, 0);
    assert_null(gov_rulepack_rule(p, 1));
    assert_string_equal(r->id, "pii.email");
    assert_int_equal(r->decl_index, 0);
    assert_int_equal(r->severity, GOV_SEVERITY_HIGH);
    assert_int_equal(r->effect, GOV_EFFECT_ADD);
    assert_int_equal(r->weight_micros, 350000);
    assert_string_equal(r->message, "prompt contains an e-mail address");
    assert_string_equal(r->description, "E-mail addresses in prompts");
    assert_int_equal(r->conditions, GOV_COND_PROMPT | GOV_COND_ROLE | GOV_COND_ACTION |
                                        GOV_COND_TOOL_CATEGORY | GOV_COND_METADATA);
    assert_int_equal(r->pattern_first, 0);
    assert_int_equal(r->pattern_count, 2);
    assert_int_equal(r->roles.n, 2);
    assert_string_equal(r->roles.v[0], "analyst");
    assert_string_equal(r->roles.v[1], "intern");
    assert_true(gov_strset_contains(&r->actions, "send_email"));
    assert_false(gov_strset_contains(&r->actions, "send"));
    assert_true(gov_strset_contains(&r->tool_categories, "email"));
    assert_int_equal(r->nmetadata, 2);
    assert_string_equal(r->metadata[0].key, "env");
    assert_int_equal(r->metadata[0].is_in, 0);
    assert_string_equal(r->metadata[0].values.v[0], "prod");
    assert_string_equal(r->metadata[1].key, "region");
    assert_int_equal(r->metadata[1].is_in, 1);
    assert_int_equal(r->metadata[1].values.n, 2);
    assert_non_null(gov_rulepack_matcher(p));
    assert_int_equal(gov_matcher_count(gov_rulepack_matcher(p)), 2);
    gov_rulepack_free(p);
    gov_rulepack_free(NULL);
}

/* Rules come out in id order whatever the declaration order; the canonical
 * JSON is the same bytes, and equals the RFC 8785 form written by hand. */
static void test_canonical_json_and_order(void **state) {
    (void)state;
    const char *a =
        "{\"version\":\"2\",\"tenant\":\"demo\",\"pack_id\":\"p\",\"rules\":["
        "{\"match\":{\"prompt\":[{\"literal\":\"x\"}]},\"id\":\"zeta\",\"severity\":\"low\","
        "\"weight\":0.50,\"effect\":\"add\",\"message\":\"z\"},"
        "{\"id\":\"Alpha\",\"severity\":\"critical\",\"weight\":1,\"effect\":\"deny\","
        "\"message\":\"\\u00e9\",\"match\":{\"role\":[\"b\",\"a\"]}},"
        "{\"id\":\"mid\",\"severity\":\"medium\",\"weight\":1e-6,\"effect\":\"add\","
        "\"message\":\"m\",\"match\":{\"prompt\":[{\"regex\":\"y+\",\"case_insensitive\":false}]}}"
        "]}";
    const char *b =
        "{\"pack_id\":\"p\",\"tenant\":\"demo\",\"version\":\"2\",\"rules\":["
        "{\"id\":\"mid\",\"severity\":\"medium\",\"weight\":0.000001,\"effect\":\"add\","
        "\"message\":\"m\",\"match\":{\"prompt\":[{\"regex\":\"y+\",\"case_insensitive\":false}]}},"
        "{\"id\":\"zeta\",\"severity\":\"low\",\"weight\":0.5,\"effect\":\"add\",\"message\":\"z\","
        "\"match\":{\"prompt\":[{\"literal\":\"x\"}]}},"
        "{\"id\":\"Alpha\",\"severity\":\"critical\",\"weight\":1.0,\"effect\":\"deny\","
        "\"message\":\"\xc3\xa9\",\"match\":{\"role\":[\"b\",\"a\"]}}"
        "]}";
    /* By hand: keys sorted, rules by id ("Alpha" < "mid" < "zeta" bytewise),
     * numbers in ES6 form (1e-6 -> 0.000001, 1.0 -> 1, 0.50 -> 0.5), the
     * role list kept as published, U+00E9 as UTF-8. */
    const char *want =
        "{\"pack_id\":\"p\",\"rules\":["
        "{\"effect\":\"deny\",\"id\":\"Alpha\",\"match\":{\"role\":[\"b\",\"a\"]},"
        "\"message\":\"\xc3\xa9\",\"severity\":\"critical\",\"weight\":1},"
        "{\"effect\":\"add\",\"id\":\"mid\",\"match\":{\"prompt\":[{\"case_insensitive\":false,"
        "\"regex\":\"y+\"}]},\"message\":\"m\",\"severity\":\"medium\",\"weight\":0.000001},"
        "{\"effect\":\"add\",\"id\":\"zeta\",\"match\":{\"prompt\":[{\"literal\":\"x\"}]},"
        "\"message\":\"z\",\"severity\":\"low\",\"weight\":0.5}"
        "],\"tenant\":\"demo\",\"version\":\"2\"}";
    gov_rulepack_t *pa = must_parse(a), *pb = must_parse(b);
    size_t la, lb;
    const char *ca = gov_rulepack_canonical_json(pa, &la);
    const char *cb = gov_rulepack_canonical_json(pb, &lb);
    assert_string_equal(ca, want);
    assert_int_equal(la, strlen(want));
    assert_string_equal(cb, want);
    assert_int_equal(lb, la);

    const char *ids[] = {"Alpha", "mid", "zeta"};
    const size_t decl_a[] = {1, 2, 0};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(gov_rulepack_rule(pa, i)->id, ids[i]);
        assert_int_equal(gov_rulepack_rule(pa, i)->decl_index, decl_a[i]);
    }
    /* Patterns are numbered in id order: mid's first, then zeta's. */
    assert_int_equal(gov_rulepack_rule(pa, 1)->pattern_first, 0);
    assert_int_equal(gov_rulepack_rule(pa, 2)->pattern_first, 1);
    assert_int_equal(gov_rulepack_rule(pa, 0)->weight_micros, 1000000);
    assert_int_equal(gov_rulepack_rule(pa, 1)->weight_micros, 1);
    assert_int_equal(gov_rulepack_rule(pa, 2)->weight_micros, 500000);

    /* Fixed point: the canonical form parses to the same canonical bytes. */
    gov_rulepack_t *pc = must_parse(ca);
    assert_string_equal(gov_rulepack_canonical_json(pc, NULL), want);
    char *copy = NULL;
    size_t lc = 0;
    assert_int_equal(gov_rulepack_render_canonical(pc, &copy, &lc), GOV_OK);
    assert_int_equal(lc, strlen(want));
    assert_string_equal(copy, want);
    gov_free(copy);
    gov_rulepack_free(pa);
    gov_rulepack_free(pb);
    gov_rulepack_free(pc);
}

static void test_versions_thresholds_and_no_patterns(void **state) {
    (void)state;
    gov_rulepack_t *p = must_parse("{\"pack_id\":\"a.b-c_9\",\"tenant\":\"acme\",\"version\":7,"
                                   "\"rules\":[" RULE("r") "]}");
    assert_string_equal(gov_rulepack_version(p), "7");
    assert_int_equal(gov_rulepack_max_risk_micros(p), -1);
    assert_int_equal(gov_rulepack_approval_micros(p), -1);
    assert_null(gov_rulepack_matcher(p));   /* no prompt condition anywhere */
    gov_rulepack_free(p);

    p = must_parse("{\"pack_id\":\"p\",\"tenant\":\"acme\",\"version\":\"1.2.3-rc.1+b5\","
                   "\"thresholds\":{\"require_human_approval_above_risk\":0},"
                   "\"rules\":[" RULE("r") "]}");
    const gov_version_t *v = gov_rulepack_version_parsed(p);
    gov_version_t v2;
    assert_int_equal(gov_version_parse("1.2.3", &v2), 0);
    assert_true(gov_version_compare(v, &v2) < 0);   /* a prerelease precedes */
    assert_int_equal(gov_rulepack_max_risk_micros(p), -1);
    assert_int_equal(gov_rulepack_approval_micros(p), 0);
    gov_rulepack_free(p);

    /* Thresholds that would loosen a constitution still parse: the evaluator
     * takes the minimum (tested in test_policy.c). */
    p = must_parse("{" HEAD ",\"thresholds\":{\"max_risk_score\":1,"
                   "\"require_human_approval_above_risk\":0.999999},\"rules\":[" RULE("r") "]}");
    assert_int_equal(gov_rulepack_max_risk_micros(p), 1000000);
    assert_int_equal(gov_rulepack_approval_micros(p), 999999);
    gov_rulepack_free(p);

    /* Duplicate entries of a set collapse; equal values in "in" too. */
    p = must_parse(PACK(RULE_M("r", "{\"action\":[\"x\",\"y\",\"x\"],"
                                    "\"metadata\":{\"b\":{\"in\":[\"1\",\"1\"]},"
                                    "\"a\":{\"equals\":\"\"}}}")));
    const gov_rule_t *r = gov_rulepack_rule(p, 0);
    assert_int_equal(r->actions.n, 2);
    assert_int_equal(r->nmetadata, 2);
    assert_string_equal(r->metadata[0].key, "a");
    assert_string_equal(r->metadata[0].values.v[0], "");
    assert_int_equal(r->metadata[1].values.n, 1);
    gov_rulepack_free(p);
}

static void test_limits_default(void **state) {
    (void)state;
    gov_rulepack_limits_t l = gov_rulepack_limits_default();
    assert_int_equal(l.max_rules, 500);
    assert_int_equal(l.max_pattern_bytes, 64 * 1024);
    assert_int_equal(l.max_pattern_len, 4 * 1024);
    assert_int_equal(l.max_bytes, 512 * 1024); /* a pack and its event fit one 1 MiB Avro message */
}

static void test_names(void **state) {
    (void)state;
    assert_string_equal(gov_severity_name(GOV_SEVERITY_CRITICAL), "critical");
    assert_string_equal(gov_effect_name(GOV_EFFECT_DENY), "deny");
}

/* ---- invalid packs: one broken rule each --------------------------------------------- */

typedef struct bad_case {
    const char *name;
    const char *text;
    gov_err_t rc;
    const char *code;
    long index;
    const char *id;
    const char *field;
    const char *message;   /* exact, or a substring when it starts with '~' */
} bad_case_t;

#define LONG_ID                                                                        \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const bad_case_t bad_cases[] = {
    /* ids */
    {"duplicate ids", PACK(RULE("a") "," RULE("b") "," RULE("a")), GOV_ERR_VERIFY, "duplicate_id",
     2, "a", "id", "rules[2] (a): id duplicates rules[0]"},
    {"id missing", PACK("{" RULE_BODY ",\"match\":{\"role\":[\"a\"]}}"), GOV_ERR_VERIFY,
     "missing_field", 0, "", "id", "rules[0]: id is required"},
    {"id with a space", PACK(RULE("ok") "," RULE("bad id")), GOV_ERR_VERIFY, "invalid_value", 1,
     "", "id", "rules[1]: id must be 1-128 characters of [A-Za-z0-9._:-]"},
    {"id too long", PACK(RULE(LONG_ID)), GOV_ERR_VERIFY, "invalid_value", 0, "", "id", "~1-128"},
    {"id a number", PACK("{\"id\":5," RULE_BODY ",\"match\":{\"role\":[\"a\"]}}"), GOV_ERR_VERIFY,
     "invalid_type", 0, "", "id", "rules[0]: id must be a string"},
    {"rule not an object", PACK(RULE("a") ",7"), GOV_ERR_VERIFY, "invalid_type", 1, "", "",
     "rules[1]: must be an object"},
    /* weight */
    {"weight above 1", PACK("{\"id\":\"w\",\"severity\":\"low\",\"weight\":1.5,\"effect\":\"add\","
                            "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "out_of_range", 0, "w", "weight", "rules[0] (w): weight 1.5 is not in [0,1]"},
    {"weight integer 2", PACK("{\"id\":\"w\",\"severity\":\"low\",\"weight\":2,\"effect\":\"add\","
                              "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "out_of_range", 0, "w", "weight", "rules[0] (w): weight 2 is not in [0,1]"},
    {"weight just above 1",
     PACK("{\"id\":\"w\",\"severity\":\"low\",\"weight\":1.0000001,\"effect\":\"add\","
          "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "out_of_range", 0, "w", "weight",
     "rules[0] (w): weight 1.0000001 is not in [0,1]"},
    {"weight below 0", PACK("{\"id\":\"w\",\"severity\":\"low\",\"weight\":-0.1,\"effect\":\"add\","
                            "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "out_of_range", 0, "w", "weight", "rules[0] (w): weight -0.1 is not in [0,1]"},
    {"weight 7 decimals", PACK(RULE("ok") ",{\"id\":\"pii.email\",\"severity\":\"high\","
                                          "\"weight\":0.1234567,\"effect\":\"add\",\"message\":"
                                          "\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "too_many_decimals", 1, "pii.email", "weight",
     "rules[1] (pii.email): weight 0.1234567 has more than 6 decimal places"},
    {"weight 1e-7", PACK("{\"id\":\"w\",\"severity\":\"low\",\"weight\":1e-7,\"effect\":\"add\","
                         "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "too_many_decimals", 0, "w", "weight",
     "rules[0] (w): weight 1e-7 has more than 6 decimal places"},
    {"weight as a string",
     PACK("{\"id\":\"w\",\"severity\":\"low\",\"weight\":\"0.5\",\"effect\":\"add\","
          "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "invalid_type", 0, "w", "weight", "rules[0] (w): weight must be a number"},
    {"weight missing", PACK("{\"id\":\"w\",\"severity\":\"low\",\"effect\":\"add\","
                            "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "missing_field", 0, "w", "weight", "rules[0] (w): weight is required"},
    /* severity, effect, message, description */
    {"bad severity", PACK("{\"id\":\"s\",\"severity\":\"urgent\",\"weight\":0.1,\"effect\":\"add\","
                          "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "invalid_value", 0, "s", "severity",
     "rules[0] (s): severity must be one of low, medium, high, critical"},
    {"severity a number", PACK("{\"id\":\"s\",\"severity\":3,\"weight\":0.1,\"effect\":\"add\","
                               "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "invalid_type", 0, "s", "severity", "~must be a string"},
    {"severity in capitals",
     PACK("{\"id\":\"s\",\"severity\":\"HIGH\",\"weight\":0.1,\"effect\":\"add\","
          "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "invalid_value", 0, "s", "severity", "~one of low"},
    {"bad effect", PACK("{\"id\":\"e\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"block\","
                        "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "invalid_value", 0, "e", "effect", "rules[0] (e): effect must be add or deny"},
    {"effect missing", PACK("{\"id\":\"e\",\"severity\":\"low\",\"weight\":0.1,"
                            "\"message\":\"m\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "missing_field", 0, "e", "effect", "~is required"},
    {"message empty", PACK("{\"id\":\"m\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\","
                           "\"message\":\"\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "invalid_value", 0, "m", "message", "rules[0] (m): message must not be empty"},
    {"message with U+0000",
     PACK("{\"id\":\"m\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\","
          "\"message\":\"a\\u0000b\",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "invalid_value", 0, "m", "message", "~U+0000"},
    {"message missing", PACK("{\"id\":\"m\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\","
                             "\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "missing_field", 0, "m", "message", "~is required"},
    {"description a number",
     PACK("{\"id\":\"d\",\"description\":1," RULE_BODY ",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "invalid_type", 0, "d", "description", "~must be a string"},
    /* unknown members at every level */
    {"unknown top-level member", "{" HEAD ",\"rules\":[" RULE("a") "],\"zz\":1,\"extra\":true}",
     GOV_ERR_VERIFY, "unknown_field", -1, "", "extra", "extra is not a known member"},
    {"unknown rule member",
     PACK("{\"id\":\"u\",\"colour\":\"red\"," RULE_BODY ",\"match\":{\"role\":[\"a\"]}}"),
     GOV_ERR_VERIFY, "unknown_field", 0, "u", "colour",
     "rules[0] (u): colour is not a known member"},
    {"unknown match member", PACK(RULE_M("u", "{\"role\":[\"a\"],\"user\":[\"x\"]}")),
     GOV_ERR_VERIFY, "unknown_field", 0, "u", "match.user",
     "rules[0] (u): match.user is not a known member"},
    {"unknown pattern member",
     PACK(RULE_M("u", "{\"prompt\":[{\"literal\":\"x\"},{\"literal\":\"y\",\"flags\":\"i\"}]}")),
     GOV_ERR_VERIFY, "unknown_field", 0, "u", "match.prompt[1].flags",
     "rules[0] (u): match.prompt[1].flags is not a known member"},
    {"unknown metadata condition member",
     PACK(RULE_M("u", "{\"metadata\":{\"env\":{\"equals\":\"prod\",\"regex\":\"p.*\"}}}")),
     GOV_ERR_VERIFY, "unknown_field", 0, "u", "match.metadata.env.regex",
     "rules[0] (u): match.metadata.env.regex is not a known member"},
    {"unknown thresholds member",
     "{" HEAD ",\"thresholds\":{\"max_risk\":0.5},\"rules\":[" RULE("a") "]}", GOV_ERR_VERIFY,
     "unknown_field", -1, "", "thresholds.max_risk", "thresholds.max_risk is not a known member"},
    /* match */
    {"empty match", PACK(RULE_M("e", "{}")), GOV_ERR_VERIFY, "empty_match", 0, "e", "match",
     "rules[0] (e): match must give at least one condition"},
    {"match missing", PACK("{\"id\":\"e\"," RULE_BODY "}"), GOV_ERR_VERIFY, "missing_field", 0,
     "e", "match", "~is required"},
    {"match an array", PACK(RULE_M("e", "[]")), GOV_ERR_VERIFY, "invalid_type", 0, "e", "match",
     "~must be an object"},
    {"empty prompt list", PACK(RULE_M("e", "{\"prompt\":[]}")), GOV_ERR_VERIFY, "invalid_value",
     0, "e", "match.prompt", "~at least one pattern"},
    {"empty literal", PACK(RULE_M("e", "{\"prompt\":[{\"literal\":\"\"}]}")), GOV_ERR_VERIFY,
     "invalid_value", 0, "e", "match.prompt[0].literal",
     "rules[0] (e): match.prompt[0].literal must not be empty"},
    {"literal and regex", PACK(RULE_M("e", "{\"prompt\":[{\"literal\":\"a\",\"regex\":\"b\"}]}")),
     GOV_ERR_VERIFY, "invalid_value", 0, "e", "match.prompt[0]", "~exactly one of literal"},
    {"neither literal nor regex",
     PACK(RULE_M("e", "{\"prompt\":[{\"case_insensitive\":true}]}")), GOV_ERR_VERIFY,
     "missing_field", 0, "e", "match.prompt[0]", "~a literal or a regex"},
    {"regex a number", PACK(RULE_M("e", "{\"prompt\":[{\"regex\":1}]}")), GOV_ERR_VERIFY,
     "invalid_type", 0, "e", "match.prompt[0].regex", "~must be a string"},
    {"case_insensitive a string",
     PACK(RULE_M("e", "{\"prompt\":[{\"literal\":\"a\",\"case_insensitive\":\"yes\"}]}")),
     GOV_ERR_VERIFY, "invalid_type", 0, "e", "match.prompt[0].case_insensitive",
     "~true or false"},
    {"empty role list", PACK(RULE_M("e", "{\"role\":[]}")), GOV_ERR_VERIFY, "invalid_value", 0,
     "e", "match.role", "~at least one value"},
    {"role not a list", PACK(RULE_M("e", "{\"role\":\"admin\"}")), GOV_ERR_VERIFY, "invalid_type",
     0, "e", "match.role", "~array of strings"},
    {"role entry a number", PACK(RULE_M("e", "{\"role\":[\"a\",1]}")), GOV_ERR_VERIFY,
     "invalid_type", 0, "e", "match.role[1]", "rules[0] (e): match.role[1] must be a string"},
    {"action entry empty", PACK(RULE_M("e", "{\"action\":[\"\"]}")), GOV_ERR_VERIFY,
     "invalid_value", 0, "e", "match.action[0]", "~must not be empty"},
    {"metadata empty", PACK(RULE_M("e", "{\"metadata\":{}}")), GOV_ERR_VERIFY, "invalid_value", 0,
     "e", "match.metadata", "~at least one key"},
    {"metadata equals and in",
     PACK(RULE_M("e", "{\"metadata\":{\"env\":{\"equals\":\"a\",\"in\":[\"b\"]}}}")),
     GOV_ERR_VERIFY, "invalid_value", 0, "e", "match.metadata.env", "~exactly one of equals"},
    {"metadata no condition", PACK(RULE_M("e", "{\"metadata\":{\"env\":{}}}")), GOV_ERR_VERIFY,
     "missing_field", 0, "e", "match.metadata.env", "~exactly one of equals"},
    {"metadata in not a list", PACK(RULE_M("e", "{\"metadata\":{\"env\":{\"in\":\"prod\"}}}")),
     GOV_ERR_VERIFY, "invalid_type", 0, "e", "match.metadata.env.in", "~array of strings"},
    {"metadata equals a number", PACK(RULE_M("e", "{\"metadata\":{\"env\":{\"equals\":1}}}")),
     GOV_ERR_VERIFY, "invalid_type", 0, "e", "match.metadata.env.equals", "~must be a string"},
    {"metadata condition a string", PACK(RULE_M("e", "{\"metadata\":{\"env\":\"prod\"}}")),
     GOV_ERR_VERIFY, "invalid_type", 0, "e", "match.metadata.env", "~equals"},
    /* patterns Vectorscan refuses, named with their rule */
    {"back-reference",
     PACK(RULE("ok") ",{\"id\":\"bad.re\"," RULE_BODY ",\"match\":{\"prompt\":["
                     "{\"literal\":\"fine\"},{\"regex\":\"(a)\\\\1\"}]}}"),
     GOV_ERR_VERIFY, "invalid_pattern", 1, "bad.re", "match.prompt[1].regex",
     "rules[1] (bad.re): match.prompt[1].regex is refused by Vectorscan: Back-references are "
     "unsupported."},
    {"unbalanced parenthesis",
     PACK(RULE_M("z.first", "{\"prompt\":[{\"literal\":\"x\"}]}") "," RULE_M(
         "a.paren", "{\"prompt\":[{\"regex\":\"(abc\"}]}")),
     GOV_ERR_VERIFY, "invalid_pattern", 1, "a.paren", "match.prompt[0].regex",
     "~Missing close parenthesis"},
    {"regex matching the empty string", PACK(RULE_M("e", "{\"prompt\":[{\"regex\":\"a*\"}]}")),
     GOV_ERR_VERIFY, "invalid_pattern", 0, "e", "match.prompt[0].regex", "~empty"},
    {"regex with lookahead", PACK(RULE_M("e", "{\"prompt\":[{\"regex\":\"a(?=b)\"}]}")),
     GOV_ERR_VERIFY, "invalid_pattern", 0, "e", "match.prompt[0].regex", "~not supported"},
    {"regex with U+0000", PACK(RULE_M("e", "{\"prompt\":[{\"regex\":\"a\\u0000b\"}]}")),
     GOV_ERR_VERIFY, "invalid_pattern", 0, "e", "match.prompt[0].regex", "~NUL"},
    /* pack header */
    {"pack_id with a slash", "{\"pack_id\":\"a/b\",\"tenant\":\"demo\",\"version\":\"1\","
                             "\"rules\":[" RULE("a") "]}",
     GOV_ERR_VERIFY, "invalid_value", -1, "", "pack_id",
     "pack_id must be 1-64 characters of [A-Za-z0-9._-]"},
    {"pack_id missing", "{\"tenant\":\"demo\",\"version\":\"1\",\"rules\":[" RULE("a") "]}",
     GOV_ERR_VERIFY, "missing_field", -1, "", "pack_id", "pack_id is required"},
    {"bad tenant", "{\"pack_id\":\"p\",\"tenant\":\"-demo\",\"version\":\"1\","
                   "\"rules\":[" RULE("a") "]}",
     GOV_ERR_VERIFY, "invalid_value", -1, "", "tenant", "~tenant must be"},
    {"version not semver", "{\"pack_id\":\"p\",\"tenant\":\"demo\",\"version\":\"v1\","
                           "\"rules\":[" RULE("a") "]}",
     GOV_ERR_VERIFY, "invalid_value", -1, "", "version",
     "version must be semver or a non-negative integer"},
    {"version negative", "{\"pack_id\":\"p\",\"tenant\":\"demo\",\"version\":-1,"
                         "\"rules\":[" RULE("a") "]}",
     GOV_ERR_VERIFY, "invalid_value", -1, "", "version", "~non-negative"},
    {"version a real", "{\"pack_id\":\"p\",\"tenant\":\"demo\",\"version\":1.5,"
                       "\"rules\":[" RULE("a") "]}",
     GOV_ERR_VERIFY, "invalid_type", -1, "", "version", "~string or an integer"},
    {"threshold above 1", "{" HEAD ",\"thresholds\":{\"max_risk_score\":1.2},\"rules\":[" RULE(
                              "a") "]}",
     GOV_ERR_VERIFY, "out_of_range", -1, "", "thresholds.max_risk_score",
     "thresholds.max_risk_score 1.2 is not in [0,1]"},
    {"threshold 7 decimals",
     "{" HEAD ",\"thresholds\":{\"require_human_approval_above_risk\":0.4000001},\"rules\":[" RULE(
         "a") "]}",
     GOV_ERR_VERIFY, "too_many_decimals", -1, "", "thresholds.require_human_approval_above_risk",
     "thresholds.require_human_approval_above_risk 0.4000001 has more than 6 decimal places"},
    {"threshold a string", "{" HEAD ",\"thresholds\":{\"max_risk_score\":\"0.5\"},\"rules\":[" RULE(
                               "a") "]}",
     GOV_ERR_VERIFY, "invalid_type", -1, "", "thresholds.max_risk_score", "~must be a number"},
    {"thresholds a list", "{" HEAD ",\"thresholds\":[0.5],\"rules\":[" RULE("a") "]}",
     GOV_ERR_VERIFY, "invalid_type", -1, "", "thresholds", "~must be an object"},
    {"no rules", PACK(""), GOV_ERR_VERIFY, "invalid_value", -1, "", "rules",
     "rules must hold at least one rule"},
    {"rules an object", "{" HEAD ",\"rules\":{}}", GOV_ERR_VERIFY, "invalid_type", -1, "", "rules",
     "rules must be an array"},
    {"rules missing", "{" HEAD "}", GOV_ERR_VERIFY, "missing_field", -1, "", "rules",
     "rules is required"},
    {"not an object", "[1,2]", GOV_ERR_VERIFY, "invalid_type", -1, "", "",
     "pack must be a JSON object"},
    /* not JSON */
    {"truncated JSON", "{\"pack_id\":", GOV_ERR_PARSE, "invalid_json", -1, "", "",
     "~not valid JSON"},
    {"invalid UTF-8", "{\"pack_id\":\"\xc3\x28\"}", GOV_ERR_PARSE, "invalid_utf8", -1, "", "",
     "~invalid_utf8"},
    {"duplicate key", "{\"pack_id\":\"a\",\"pack_id\":\"b\"}", GOV_ERR_PARSE, "duplicate_key", -1,
     "", "", "~duplicate"},
    {"too deep", "{\"a\":[[[[[[[[1]]]]]]]]}", GOV_ERR_TOO_LARGE, "too_deep", -1, "", "",
     "pack nests deeper than 8"},
};

static void check_bad(const bad_case_t *c, const gov_rulepack_limits_t *lim) {
    gov_rulepack_t *p = (gov_rulepack_t *)0x1;
    gov_rulepack_error_t d;
    char err[512] = "";
    gov_err_t rc = gov_rulepack_parse(c->text, strlen(c->text), lim, &p, &d, err, sizeof err);
    if (rc != c->rc)
        fail_msg("%s: rc %s, want %s (%s)", c->name, gov_err_code(rc), gov_err_code(c->rc), err);
    assert_null(p);
    if (strcmp(gov_reason_code(d.code), c->code) != 0)
        fail_msg("%s: code %s, want %s (%s)", c->name, gov_reason_code(d.code), c->code, err);
    if (d.rule_index != c->index)
        fail_msg("%s: rule_index %ld, want %ld (%s)", c->name, d.rule_index, c->index, err);
    if (strcmp(d.rule_id, c->id) != 0)
        fail_msg("%s: rule_id \"%s\", want \"%s\"", c->name, d.rule_id, c->id);
    if (strcmp(d.field, c->field) != 0)
        fail_msg("%s: field \"%s\", want \"%s\" (%s)", c->name, d.field, c->field, err);
    if (c->message[0] == '~' ? strstr(err, c->message + 1) == NULL : strcmp(err, c->message) != 0)
        fail_msg("%s: message \"%s\", want \"%s\"", c->name, err, c->message);
}

static void test_invalid_packs(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++)
        check_bad(&bad_cases[i], NULL);
    /* The same error without a detail struct or errbuf does not crash. */
    gov_rulepack_t *p = NULL;
    assert_int_equal(gov_rulepack_parse(bad_cases[0].text, strlen(bad_cases[0].text), NULL, &p,
                                        NULL, NULL, 0),
                     GOV_ERR_VERIFY);
    assert_int_equal(gov_rulepack_parse(NULL, 0, NULL, &p, NULL, NULL, 0), GOV_ERR_INVALID_ARG);
}

/* Builds a pack of n rules (ids r000..), each with one literal of plen
 * bytes, into a new malloc'd string. */
static char *pack_of(size_t n, size_t plen) {
    size_t cap = 256 + n * (160 + plen);
    char *s = malloc(cap), *w = s;
    assert_non_null(s);
    w += sprintf(w, "{" HEAD ",\"rules\":[");
    for (size_t i = 0; i < n; i++) {
        w += sprintf(w, "%s{\"id\":\"r%03zu\"," RULE_BODY ",\"match\":{\"prompt\":[{\"literal\":\"",
                     i ? "," : "", i);
        for (size_t k = 0; k < plen; k++)
            *w++ = (char)('a' + (i + k) % 26);
        w += sprintf(w, "\"}]}}");
    }
    sprintf(w, "]}");
    return s;
}

static void test_limits(void **state) {
    (void)state;
    gov_rulepack_limits_t lim = gov_rulepack_limits_default();

    /* 500 rules parse; 501 do not. */
    char *ok = pack_of(500, 8), *over = pack_of(501, 8);
    gov_rulepack_t *p = must_parse(ok);
    assert_int_equal(gov_rulepack_rule_count(p), 500);
    gov_rulepack_free(p);
    bad_case_t c501 = {"501 rules", over, GOV_ERR_TOO_LARGE, "too_many_rules", -1, "", "rules",
                       "rules holds 501 rules (limit 500)"};
    check_bad(&c501, NULL);
    free(ok);
    free(over);

    lim.max_rules = 3;
    bad_case_t c4 = {"4 rules, limit 3", PACK(RULE("a") "," RULE("b") "," RULE("c") "," RULE("d")),
                     GOV_ERR_TOO_LARGE, "too_many_rules", -1, "", "rules",
                     "rules holds 4 rules (limit 3)"};
    check_bad(&c4, &lim);

    lim = gov_rulepack_limits_default();
    lim.max_pattern_bytes = 10;
    bad_case_t cb = {"pattern bytes",
                     PACK(RULE_M("pb", "{\"prompt\":[{\"literal\":\"123456\"},"
                                       "{\"regex\":\"abcdef\"}]}")),
                     GOV_ERR_TOO_LARGE, "too_many_pattern_bytes", 0, "pb",
                     "match.prompt[1].regex",
                     "rules[0] (pb): match.prompt[1].regex brings the pack's patterns to 12 bytes "
                     "(limit 10)"};
    check_bad(&cb, &lim);
    /* The sum runs over rules: 6 + 6 across two rules. */
    bad_case_t cb2 = {"pattern bytes across rules",
                      PACK(RULE_M("x1", "{\"prompt\":[{\"literal\":\"123456\"}]}") "," RULE_M(
                          "x2", "{\"prompt\":[{\"literal\":\"abcdef\"}]}")),
                      GOV_ERR_TOO_LARGE, "too_many_pattern_bytes", 1, "x2",
                      "match.prompt[0].literal", "~12 bytes (limit 10)"};
    check_bad(&cb2, &lim);

    lim = gov_rulepack_limits_default();
    lim.max_pattern_len = 4;
    bad_case_t cl = {"pattern length", PACK(RULE_M("pl", "{\"prompt\":[{\"literal\":\"12345\"}]}")),
                     GOV_ERR_TOO_LARGE, "pattern_too_long", 0, "pl", "match.prompt[0].literal",
                     "rules[0] (pl): match.prompt[0].literal is 5 bytes (limit 4)"};
    check_bad(&cl, &lim);

    lim = gov_rulepack_limits_default();
    lim.max_patterns = 2;
    bad_case_t cn = {"pattern count",
                     PACK(RULE_M("a", "{\"prompt\":[{\"literal\":\"1\"}]}") "," RULE_M(
                         "b", "{\"prompt\":[{\"literal\":\"2\"},{\"literal\":\"3\"}]}")),
                     GOV_ERR_TOO_LARGE, "too_many_patterns", 1, "b", "match.prompt",
                     "~3 patterns (limit 2)"};
    check_bad(&cn, &lim);

    lim = gov_rulepack_limits_default();
    lim.max_bytes = 20;
    bad_case_t cs = {"text size", PACK(RULE("a")), GOV_ERR_TOO_LARGE, "too_large", -1, "", "",
                     "~limit 20"};
    check_bad(&cs, &lim);

    lim = gov_rulepack_limits_default();
    lim.max_set_entries = 2;
    bad_case_t ce = {"set size", PACK(RULE_M("s", "{\"role\":[\"a\",\"b\",\"c\"]}")),
                     GOV_ERR_TOO_LARGE, "too_large", 0, "s", "match.role",
                     "rules[0] (s): match.role has 3 values (limit 2)"};
    check_bad(&ce, &lim);

    lim = gov_rulepack_limits_default();
    lim.max_value_bytes = 3;
    bad_case_t cv = {"value length", PACK(RULE_M("v", "{\"role\":[\"abcd\"]}")), GOV_ERR_TOO_LARGE,
                     "too_large", 0, "v", "match.role[0]", "~4 bytes (limit 3)"};
    check_bad(&cv, &lim);

    lim = gov_rulepack_limits_default();
    lim.max_metadata_keys = 1;
    bad_case_t ck = {"metadata keys",
                     PACK(RULE_M("k", "{\"metadata\":{\"a\":{\"equals\":\"1\"},"
                                      "\"b\":{\"equals\":\"2\"}}}")),
                     GOV_ERR_TOO_LARGE, "too_large", 0, "k", "match.metadata",
                     "~2 keys (limit 1)"};
    check_bad(&ck, &lim);

    lim = gov_rulepack_limits_default();
    lim.max_text_bytes = 4;
    bad_case_t ct = {"message length",
                     PACK("{\"id\":\"t\",\"severity\":\"low\",\"weight\":0.1,\"effect\":\"add\","
                          "\"message\":\"hello\",\"match\":{\"role\":[\"a\"]}}"),
                     GOV_ERR_TOO_LARGE, "too_large", 0, "t", "message",
                     "rules[0] (t): message is 5 bytes (limit 4)"};
    check_bad(&ct, &lim);
}

/* A hostile metadata key is cut and cleaned before it reaches a message. */
static void test_error_field_is_sanitized(void **state) {
    (void)state;
    const char *text = PACK(RULE_M(
        "k", "{\"metadata\":{\"a\\nb\\u0001cccccccccccccccccccccccccccccccccccccccccccccc\":"
             "{\"bogus\":1}}}"));
    gov_rulepack_error_t d;
    char err[512];
    gov_rulepack_t *p = NULL;
    assert_int_equal(gov_rulepack_parse(text, strlen(text), NULL, &p, &d, err, sizeof err),
                     GOV_ERR_VERIFY);
    assert_string_equal(d.field, "match.metadata.a?b?cccccccccccccccccccccccccccc....bogus");
    assert_null(strchr(err, '\n'));
}

/* ---- signed packs ------------------------------------------------------------ */

static char *slurp(const char *rel, size_t *len) {
    char path[1024];
    const char *root = getenv("GOV_ROOT");
    snprintf(path, sizeof path, "%s/%s", root ? root : ".", rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s (run from the repository root or set GOV_ROOT)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

typedef struct signed_vec {
    char *pack_text, *canonical, *sha256, *trust_text, *sigs_text;
    gov_rulepack_t *pack;
    gov_trust_t *trust;
    json_t *sigs_json;
    gov_bundle_sig_t sigs[GOV_MAX_SIGNATURES + 1];
    size_t nsigs;
} signed_vec_t;

static void signed_vec_load(signed_vec_t *v) {
    memset(v, 0, sizeof *v);
    v->pack_text = slurp("tests/vectors/rulepack/signed/pack.json", NULL);
    v->canonical = slurp("tests/vectors/rulepack/signed/canonical.json", NULL);
    v->sha256 = slurp("tests/vectors/rulepack/signed/sha256", NULL);
    v->sha256[strcspn(v->sha256, "\n")] = 0;
    v->trust_text = slurp("tests/vectors/rulepack/signed/trust.json", NULL);
    v->sigs_text = slurp("tests/vectors/rulepack/signed/signatures.json", NULL);
    v->pack = must_parse(v->pack_text);
    char eb[256];
    assert_int_equal(gov_trust_parse(v->trust_text, strlen(v->trust_text), &v->trust, eb, sizeof eb),
                     GOV_OK);
    v->sigs_json = json_loads(v->sigs_text, 0, NULL);
    assert_int_equal(gov_signatures_from_json(v->sigs_json, v->sigs, GOV_MAX_SIGNATURES + 1,
                                              &v->nsigs), 0);
    assert_int_equal(v->nsigs, 2);
}

static void signed_vec_free(signed_vec_t *v) {
    gov_rulepack_free(v->pack);
    gov_trust_free(v->trust);
    json_decref(v->sigs_json);
    free(v->pack_text);
    free(v->canonical);
    free(v->sha256);
    free(v->trust_text);
    free(v->sigs_text);
}

static gov_reason_t verify_reason(const gov_rulepack_t *p, const char *tenant,
                                  const gov_bundle_sig_t *sigs, size_t n, const gov_trust_t *t,
                                  gov_sig_count_t *sc) {
    assert_int_equal(gov_rulepack_verify_signatures(p, tenant, sigs, n, t, sc), GOV_OK);
    return sc->reason;
}

static void test_signed_pack_known_answers(void **state) {
    (void)state;
    signed_vec_t v;
    signed_vec_load(&v);
    size_t len;
    assert_string_equal(gov_rulepack_canonical_json(v.pack, &len), v.canonical);
    char hex[GOV_SHA256_HEXLEN + 1];
    assert_int_equal(gov_rulepack_digest_hex(v.pack, hex), GOV_OK);
    assert_string_equal(hex, v.sha256);
    gov_sig_count_t sc;
    assert_int_equal(verify_reason(v.pack, "demo", v.sigs, 2, v.trust, &sc), GOV_REASON_NONE);
    assert_int_equal(sc.nsigners, 2);
    assert_int_equal(sc.required, 2);
    assert_string_equal(sc.signers[0], "ops-1");
    assert_string_equal(sc.signers[1], "ops-2");
    /* the signatures carried through the JSON form come back the same */
    char *round = NULL;
    assert_int_equal(gov_signatures_to_json(v.sigs, 2, &round), GOV_OK);
    json_t *rj = json_loads(round, 0, NULL);
    assert_true(json_equal(rj, v.sigs_json));
    json_decref(rj);
    gov_free(round);
    signed_vec_free(&v);
}

static void test_signed_pack_every_rule(void **state) {
    (void)state;
    signed_vec_t v;
    signed_vec_load(&v);
    gov_sig_count_t sc;
    gov_bundle_sig_t s[GOV_MAX_SIGNATURES + 1];

    /* tenant: the trust must cover it, the pack must name it */
    assert_int_equal(verify_reason(v.pack, "other", v.sigs, 2, v.trust, &sc),
                     GOV_REASON_TENANT_NOT_TRUSTED);
    const char *trust2 = "{\"signers\":{},\"tenants\":{}}";
    gov_trust_t *t2 = NULL;
    char eb[256];
    assert_int_not_equal(gov_trust_parse(trust2, strlen(trust2), &t2, eb, sizeof eb), GOV_OK);
    /* the same signers, trusted for "demo" and "acme": a demo pack for acme */
    json_t *tj = json_loads(v.trust_text, 0, NULL);
    json_object_set(json_object_get(tj, "tenants"), "acme",
                    json_object_get(json_object_get(tj, "tenants"), "demo"));
    char *tt = json_dumps(tj, 0);
    json_decref(tj);
    assert_int_equal(gov_trust_parse(tt, strlen(tt), &t2, eb, sizeof eb), GOV_OK);
    free(tt);
    assert_int_equal(verify_reason(v.pack, "acme", v.sigs, 2, t2, &sc), GOV_REASON_TENANT_MISMATCH);
    gov_trust_free(t2);

    /* form */
    assert_int_equal(verify_reason(v.pack, "demo", v.sigs, 0, v.trust, &sc),
                     GOV_REASON_NO_SIGNATURES);
    for (size_t i = 0; i <= GOV_MAX_SIGNATURES; i++)
        s[i] = v.sigs[0];
    assert_int_equal(verify_reason(v.pack, "demo", s, GOV_MAX_SIGNATURES + 1, v.trust, &sc),
                     GOV_REASON_TOO_MANY_SIGNATURES);
    s[0] = v.sigs[0];
    s[1] = v.sigs[0];
    assert_int_equal(verify_reason(v.pack, "demo", s, 2, v.trust, &sc), GOV_REASON_DUPLICATE_SIGNER);
    s[1] = v.sigs[1];
    s[1].algorithm = "rsa";
    assert_int_equal(verify_reason(v.pack, "demo", s, 2, v.trust, &sc),
                     GOV_REASON_UNKNOWN_SIGNATURE_ALGORITHM);
    s[1] = v.sigs[1];
    s[1].signer_id = "bad/id";
    assert_int_equal(verify_reason(v.pack, "demo", s, 2, v.trust, &sc), GOV_REASON_MALFORMED_SIGNATURE);
    s[1] = v.sigs[1];
    s[1].signature = "abcd";
    assert_int_equal(verify_reason(v.pack, "demo", s, 2, v.trust, &sc), GOV_REASON_MALFORMED_SIGNATURE);

    /* count: one signature short of the threshold; an unknown signer; a
     * trusted id with another key's signature; another pack's signatures */
    assert_int_equal(verify_reason(v.pack, "demo", v.sigs, 1, v.trust, &sc),
                     GOV_REASON_THRESHOLD_NOT_MET);
    assert_int_equal(sc.nsigners, 1);
    s[0] = v.sigs[0];
    s[1] = v.sigs[1];
    s[1].signer_id = "ops-3";
    assert_int_equal(verify_reason(v.pack, "demo", s, 2, v.trust, &sc), GOV_REASON_UNTRUSTED_SIGNER);
    assert_non_null(strstr(sc.detail, "\"ops-3\" is not a trusted signer"));
    s[1] = v.sigs[1];
    s[1].signer_id = "ops-1";
    s[0] = v.sigs[1];   /* ops-2's signature under ops-1's id */
    s[0].signer_id = "ops-1";
    s[1] = v.sigs[1];
    assert_int_equal(verify_reason(v.pack, "demo", s, 2, v.trust, &sc), GOV_REASON_INVALID_SIGNATURE);
    char *other = strdup(v.pack_text);
    char *at = strstr(other, "\"2.1.0\"");
    assert_non_null(at);
    memcpy(at, "\"2.1.1\"", 7);
    gov_rulepack_t *p2 = must_parse(other);
    assert_int_equal(verify_reason(p2, "demo", v.sigs, 2, v.trust, &sc), GOV_REASON_INVALID_SIGNATURE);
    gov_rulepack_free(p2);
    free(other);
    signed_vec_free(&v);
}

/* Verification allocates nothing of its own (OpenSSL's memory is not
 * gov_malloc's); what does is the JSON form the processor stores: each
 * allocation failing in turn gives GOV_ERR_NOMEM and no string, never a
 * truncated one. */
static void test_signatures_json_allocation_failures(void **state) {
    (void)state;
    signed_vec_t v;
    signed_vec_load(&v);
    long k;
    for (k = 0;; k++) {
        char *out = (char *)0x1;
        gov_alloc_fail_after(k);
        gov_err_t rc = gov_signatures_to_json(v.sigs, v.nsigs, &out);
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            json_t *j = json_loads(out, 0, NULL);
            assert_true(json_equal(j, v.sigs_json));
            json_decref(j);
            gov_free(out);
            break;
        }
        assert_int_equal(rc, GOV_ERR_NOMEM);
        assert_null(out);
    }
    assert_true(k > 3);
    signed_vec_free(&v);
}

static void test_allocation_failures(void **state) {
    (void)state;
    gov_rulepack_t *ref = must_parse(docs_example);
    const char *want = gov_rulepack_canonical_json(ref, NULL);
    long n;
    for (n = 0;; n++) {
        gov_rulepack_t *p = (gov_rulepack_t *)0x1;
        gov_rulepack_error_t d;
        char err[512] = "";
        gov_alloc_fail_after(n);
        gov_err_t rc =
            gov_rulepack_parse(docs_example, strlen(docs_example), NULL, &p, &d, err, sizeof err);
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            assert_string_equal(gov_rulepack_canonical_json(p, NULL), want);
            gov_rulepack_free(p);
            break;
        }
        if (rc != GOV_ERR_NOMEM)
            fail_msg("allocation %ld: got %s [%s]: %s", n, gov_err_code(rc), gov_reason_code(d.code), err);
        assert_null(p);
        assert_string_equal(gov_reason_code(d.code), "nomem");
    }
    assert_true(n > 20);
    gov_rulepack_free(ref);
}

int main(void) {
    gov_alloc_install_jansson();
    if (gov_matcher_install_allocator() != GOV_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docs_example_parses),
        cmocka_unit_test(test_canonical_json_and_order),
        cmocka_unit_test(test_versions_thresholds_and_no_patterns),
        cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_invalid_packs),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_error_field_is_sanitized),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_signed_pack_known_answers),
        cmocka_unit_test(test_signed_pack_every_rule),
        cmocka_unit_test(test_signatures_json_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
