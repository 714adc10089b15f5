/* test_strset.c - gov_strset: sorted, duplicate-free sets of strings.
 *
 * Sets are built the way gov_rulepack and gov_policy build them (an array
 * sized up front, entries appended, gov_strset_finish once), under the
 * allocation counter, so a duplicate that is not freed shows as a leak in
 * the ASan and valgrind runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gov_alloc.h"
#include "gov_strset.h"

static gov_strset_t make(const char *const *items, size_t n) {
    gov_strset_t s = {gov_calloc(n ? n : 1, sizeof(char *)), 0};
    assert_non_null(s.v);
    for (size_t i = 0; i < n; i++) {
        s.v[s.n] = gov_strdup(items[i]);
        assert_non_null(s.v[s.n]);
        s.n++;
    }
    gov_strset_finish(&s);
    return s;
}

static void test_finish_sorts_and_dedups(void **state) {
    (void)state;
    /* Bytewise: uppercase before lowercase, a prefix before its extensions,
     * UTF-8 after ASCII; "export" three times is one entry. */
    static const char *const in[] = {"send_email", "export", "Export", "export", "exp",
                                     "\xc3\xa9t\xc3\xa9", "export", "a b", ""};
    static const char *const want[] = {"", "Export", "a b", "exp", "export", "send_email",
                                       "\xc3\xa9t\xc3\xa9"};
    gov_strset_t s = make(in, sizeof in / sizeof in[0]);
    assert_int_equal(s.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < s.n; i++)
        assert_string_equal(s.v[i], want[i]);
    gov_strset_clear(&s);
    assert_null(s.v);
    assert_int_equal(s.n, 0);
    gov_strset_clear(&s); /* twice is safe */
    gov_strset_clear(NULL);
}

static void test_contains(void **state) {
    (void)state;
    static const char *const in[] = {"c", "a", "b", "a"};
    gov_strset_t s = make(in, 4);
    assert_true(gov_strset_contains(&s, "a"));
    assert_true(gov_strset_contains(&s, "b"));
    assert_true(gov_strset_contains(&s, "c"));
    assert_false(gov_strset_contains(&s, "d"));
    assert_false(gov_strset_contains(&s, "A"));
    assert_false(gov_strset_contains(&s, ""));
    assert_false(gov_strset_contains(&s, "ab"));
    assert_false(gov_strset_contains(&s, NULL));
    assert_false(gov_strset_contains(NULL, "a"));
    gov_strset_clear(&s);
    gov_strset_t empty = {NULL, 0};
    assert_false(gov_strset_contains(&empty, "a"));
    gov_strset_finish(&empty);
    assert_int_equal(empty.n, 0);
}

/* The comparator sorts any char * array in the set's order. */
static void test_cmp(void **state) {
    (void)state;
    const char *keys[] = {"region", "env", "Env", "env2"};
    qsort(keys, 4, sizeof keys[0], gov_strset_cmp);
    assert_string_equal(keys[0], "Env");
    assert_string_equal(keys[1], "env");
    assert_string_equal(keys[2], "env2");
    assert_string_equal(keys[3], "region");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finish_sorts_and_dedups),
        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_cmp),
    };
    return cmocka_run_group_tests_name("strset", tests, NULL, NULL);
}
