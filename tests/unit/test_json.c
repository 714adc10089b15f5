/* test_json.c - gov_json: nesting depth, the unknown member named, JCS equality. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "gov_json.h"

static json_t *load(const char *text) {
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (v == NULL)
        fail_msg("%s: %s", text, je.text);
    return v;
}

static void test_depth(void **state) {
    (void)state;
    static const struct {
        const char *json;
        int depth;
    } cases[] = {
        {"1", 0}, {"\"s\"", 0}, {"null", 0}, {"[]", 1}, {"{}", 1}, {"[1,2]", 1},
        {"{\"a\":{\"b\":[1]}}", 3}, {"[[],[[[]]],{}]", 4}, {"{\"a\":1,\"b\":[[2]]}", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = load(cases[i].json);
        if (gov_json_depth(v) != cases[i].depth)
            fail_msg("%s: depth %d, want %d", cases[i].json, gov_json_depth(v), cases[i].depth);
        json_decref(v);
    }
    assert_int_equal(gov_json_depth(NULL), 0);
}

static void test_unknown_member(void **state) {
    (void)state;
    static const char *const allowed[] = {"name", "category", NULL};
    static const char *const none[] = {NULL};
    json_t *v = load("{\"name\":1,\"category\":2}");
    assert_null(gov_json_unknown_member(v, allowed));
    assert_string_equal(gov_json_unknown_member(v, none), "category");
    json_decref(v);
    /* Of several unknown keys the bytewise smallest, whatever their order. */
    v = load("{\"zeta\":1,\"name\":2,\"Zeta\":3,\"alpha\":4}");
    assert_string_equal(gov_json_unknown_member(v, allowed), "Zeta");
    json_decref(v);
    v = load("{\"alpha\":4,\"Zeta\":3,\"name\":2,\"zeta\":1}");
    assert_string_equal(gov_json_unknown_member(v, allowed), "Zeta");
    json_decref(v);
    /* Not an object: nothing to name. */
    v = load("[\"x\"]");
    assert_null(gov_json_unknown_member(v, allowed));
    json_decref(v);
    assert_null(gov_json_unknown_member(NULL, allowed));
}

/* Equality in RFC 8785's data model: numbers as doubles, the rest exact. */
static void test_equal_jcs(void **state) {
    (void)state;
    static const struct {
        const char *a, *b;
        int equal;
    } cases[] = {
        {"1", "1.0", 1},
        {"[1e2, -0.0]", "[100, 0]", 1},
        {"9007199254740993", "9007199254740992", 1}, /* one double */
        {"9223372036854775807", "9.223372036854775808e18", 1},
        {"{\"a\":[1,{\"b\":2}]}", "{\"a\":[1.0,{\"b\":2e0}]}", 1},
        {"{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}", 1},
        {"1", "2", 0},
        {"9007199254740991", "9007199254740992", 0},
        {"1", "\"1\"", 0},
        {"[1]", "[1,1]", 0},
        {"{\"a\":1}", "{\"a\":1,\"b\":1}", 0},
        {"{\"a\":1}", "{\"b\":1}", 0},
        {"\"a\\u0000b\"", "\"a\\u0000c\"", 0},
        {"null", "false", 0},
        {"[]", "{}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t je;
        json_t *a = json_loads(cases[i].a, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        json_t *b = json_loads(cases[i].b, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        assert_non_null(a);
        assert_non_null(b);
        if (gov_json_equal_jcs(a, b) != cases[i].equal || gov_json_equal_jcs(b, a) != cases[i].equal)
            fail_msg("%s vs %s: want %d", cases[i].a, cases[i].b, cases[i].equal);
        json_decref(a);
        json_decref(b);
    }
    assert_true(gov_json_equal_jcs(NULL, NULL));
    json_t *one = json_integer(1);
    assert_false(gov_json_equal_jcs(one, NULL));
    assert_false(gov_json_equal_jcs(NULL, one));
    json_decref(one);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_unknown_member),
        cmocka_unit_test(test_equal_jcs),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
