/* test_state_identity.c - gov_state_identity's key builders against the
 * documented layout (docs/contracts.md "Identity"), written out literally:
 * this file and gov_state_identity.c are the only places it appears as
 * strings.  The scripts are tested against real Redis in
 * tests/integration/test_identity.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "gov_state_identity.h"

#define KID "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"   /* RFC 7638 section 3.1's shape */

static void test_keys_match_the_layout(void **state) {
    (void)state;
    char key[GOV_STATE_KEY_MAX];
    assert_int_equal(gov_state_identity_key_key(KID, key), GOV_OK);
    assert_string_equal(key, "identity:{keys}:key:" KID);
    assert_string_equal(gov_state_identity_jwks_key(), "identity:{keys}:jwks");
    assert_string_equal(gov_state_identity_kids_key(), "identity:{keys}:kids");
    assert_int_equal(gov_state_identity_client_key("client-abc_1", key), GOV_OK);
    assert_string_equal(key, "identity:client:{client-abc_1}");
    assert_int_equal(gov_state_identity_token_key("acme", "01890a5d-ac96-774b", key), GOV_OK);
    assert_string_equal(key, "identity:token:{acme}:01890a5d-ac96-774b");
}

static void test_ids_that_could_leave_their_slot_are_refused(void **state) {
    (void)state;
    char key[GOV_STATE_KEY_MAX];
    /* a kid is exactly 43 base64url characters (a '-' first is fine) */
    assert_true(gov_state_identity_kid_valid("-zbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    assert_false(gov_state_identity_kid_valid(KID "A"));
    assert_false(gov_state_identity_kid_valid("{x}LsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    assert_false(gov_state_identity_kid_valid(NULL));
    assert_int_equal(gov_state_identity_key_key("short", key), GOV_ERR_INVALID_ARG);
    assert_string_equal(key, "");
    assert_int_equal(gov_state_identity_client_key("a}b", key), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_state_identity_client_key("-lead", key), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_state_identity_token_key("acme", "bad jti", key), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_state_identity_token_key("{x}", "j", key), GOV_ERR_INVALID_ARG);
    assert_string_equal(key, "");
}

static void test_key_states_are_ordered(void **state) {
    (void)state;
    assert_int_equal(gov_state_identity_key_rank("pending"), 0);
    assert_int_equal(gov_state_identity_key_rank("active"), 1);
    assert_int_equal(gov_state_identity_key_rank("retiring"), 2);
    assert_int_equal(gov_state_identity_key_rank("retired"), 3);
    assert_int_equal(gov_state_identity_key_rank("Active"), -1);
    assert_int_equal(gov_state_identity_key_rank(NULL), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_match_the_layout),
        cmocka_unit_test(test_ids_that_could_leave_their_slot_are_refused),
        cmocka_unit_test(test_key_states_are_ordered),
    };
    return cmocka_run_group_tests_name("state_identity", tests, NULL, NULL);
}
