/* test_keyrotate.c - the decisions of gov_keyrotate that need no Redis or
 * Kafka: which key is the newest current one of a store, when a retiring
 * key retires, when a scheduled rotation is due.  (The produce paths are
 * driven end to end by tests/integration/test_keys.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gov_keyrotate.h"

#define S 1000000LL

static gov_keyrotate_key_t key(const char *kid, const char *state, int in_store, int64_t created,
                               int64_t activates) {
    gov_keyrotate_key_t k;
    memset(&k, 0, sizeof k);
    snprintf(k.kid, sizeof k.kid, "%s", kid);
    snprintf(k.state, sizeof k.state, "%s", state);
    k.in_store = in_store;
    k.created_at = created;
    k.activates_at = activates;
    k.retires_at = -1;
    return k;
}

static void test_newest_is_the_stores_latest_current_key(void **state) {
    (void)state;
    gov_keyrotate_key_t keys[] = {
        key("a", "active", 1, 10 * S, 20 * S),
        key("b", "pending", 1, 30 * S, 90 * S),
        key("c", "pending", 0, 40 * S, 99 * S),    /* another store's: never */
        key("d", "retiring", 1, 50 * S, 100 * S),  /* not current */
        key("e", "retired", 1, 60 * S, 200 * S),
    };
    assert_null(gov_keyrotate_newest(NULL, 0));
    assert_string_equal(gov_keyrotate_newest(keys, 5)->kid, "b");
    /* ties: created_at, then kid */
    gov_keyrotate_key_t tie[] = {key("x", "active", 1, 5 * S, 9 * S),
                                 key("y", "active", 1, 5 * S, 9 * S),
                                 key("w", "active", 1, 4 * S, 9 * S)};
    assert_string_equal(gov_keyrotate_newest(tie, 3)->kid, "y");
    /* only other stores' keys: none */
    assert_null(gov_keyrotate_newest(&keys[2], 1));
}

static void test_retires_after_the_longest_token(void **state) {
    (void)state;
    gov_keyrotate_config_t cfg = {.propagation_s = 60, .token_ttl_max_s = 3600, .leeway_s = 60};
    assert_int_equal(gov_keyrotate_retires_at(&cfg, 0, 1000 * S), (1000 + 3660) * S);
    /* never before the key's own activation (a pending key retired early) */
    assert_int_equal(gov_keyrotate_retires_at(&cfg, 9000 * S, 1000 * S), 9000 * S);
}

static void test_due_when_the_newest_is_a_period_old(void **state) {
    (void)state;
    gov_keyrotate_key_t keys[] = {key("a", "active", 1, 100 * S, 100 * S),
                                  key("b", "pending", 1, 200 * S, 260 * S)};
    assert_false(gov_keyrotate_due(keys, 2, 0, 10000 * S));         /* period off */
    assert_false(gov_keyrotate_due(keys, 2, 100, 299 * S));          /* b is 99 s old */
    assert_true(gov_keyrotate_due(keys, 2, 100, 300 * S));
    assert_false(gov_keyrotate_due(NULL, 0, 100, 10000 * S));        /* no key: an operator's */
    keys[0].in_store = keys[1].in_store = 0;
    assert_false(gov_keyrotate_due(keys, 2, 100, 10000 * S));        /* not ours */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newest_is_the_stores_latest_current_key),
        cmocka_unit_test(test_retires_after_the_longest_token),
        cmocka_unit_test(test_due_when_the_newest_is_a_period_old),
    };
    return cmocka_run_group_tests_name("keyrotate", tests, NULL, NULL);
}
