/* test_json.c - gov_json: nesting depth and the unknown member named. */
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_unknown_member),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
