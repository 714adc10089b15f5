/* test_state.c - gov_state's key builders against the documented layout.
 *
 * The expected keys are written out literally: this file and gov_state.c are
 * the only places the layout appears as strings, so a change to either shows
 * up here.  The readers and writers are tested against the real Redis of the
 * stack in tests/integration/test_state_redis.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "gov_state.h"
#include "gov_util.h"

/* A valid tenant id of exactly GOV_TENANT_MAX characters. */
static void max_tenant(char out[GOV_TENANT_MAX + 1]) {
    for (int i = 0; i < GOV_TENANT_MAX; i++)
        out[i] = "abcdefghij"[i % 10];
    out[GOV_TENANT_MAX] = 0;
}

static void test_tenant_keys_match_the_layout(void **state) {
    (void)state;
    static const struct {
        gov_state_key_t kind;
        const char *want;
    } cases[] = {
        {GOV_STATE_CONSTITUTION, "constitution:{acme-1}"},
        {GOV_STATE_CONSTITUTION_DOC, "constitution:{acme-1}:doc"},
        {GOV_STATE_CONSTITUTION_HISTORY, "constitution:{acme-1}:history"},
        {GOV_STATE_RULEPACK, "policy:rulepack:{acme-1}"},
        {GOV_STATE_RULEPACK_META, "policy:rulepack:{acme-1}:meta"},
        {GOV_STATE_RULEPACK_HISTORY, "policy:rulepack:{acme-1}:history"},
        {GOV_STATE_AUDIT, "audit:{acme-1}"},
        {GOV_STATE_AUDIT_HEAD, "audit:{acme-1}:head"},
        {GOV_STATE_AUDIT_IDS, "audit:{acme-1}:ids"},
        {GOV_STATE_AUDIT_DECISION_IDS, "audit:{acme-1}:decision_ids"},
    };
    char key[GOV_STATE_KEY_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(gov_state_key(cases[i].kind, "acme-1", key), GOV_OK);
        assert_string_equal(key, cases[i].want);
    }
    assert_string_equal(gov_state_constitution_index_key(), "gov:{tenants}:constitution");
    assert_string_equal(gov_state_rulepack_index_key(), "gov:{tenants}:rulepack");
}

static void test_decision_and_offset_keys_match_the_layout(void **state) {
    (void)state;
    char key[GOV_STATE_KEY_MAX];
    assert_int_equal(gov_state_decision_key("_system", "017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
                                            key), GOV_OK);
    assert_string_equal(key, "policy:decision:{_system}:017f22e2-79b0-7cc3-98c4-dc0c0c07398f");

    /* the applied offset lives in the tenant's slot; the watermark is global */
    gov_state_pos_t pos = {"gov-audit", "policy.decisions", 3, 42, "acme"};
    assert_int_equal(gov_state_offset_key(&pos, key), GOV_OK);
    assert_string_equal(key, "gov:applied:{acme}:gov-audit:policy.decisions:3");
    assert_int_equal(gov_state_watermark_key(&pos, key), GOV_OK);
    assert_string_equal(key, "gov:offsets:gov-audit:policy.decisions:3");
    pos = (gov_state_pos_t){"gov-constitution", "constitution.bundles", 0, 0, "_system"};
    assert_int_equal(gov_state_offset_key(&pos, key), GOV_OK);
    assert_string_equal(key, "gov:applied:{_system}:gov-constitution:constitution.bundles:0");
    assert_int_equal(gov_state_watermark_key(&pos, key), GOV_OK);
    assert_string_equal(key, "gov:offsets:gov-constitution:constitution.bundles:0");
    pos = (gov_state_pos_t){"gov-rulepacks", "policy.rulepacks", INT32_MAX, 0, "acme"};
    assert_int_equal(gov_state_offset_key(&pos, key), GOV_OK);
    assert_string_equal(key, "gov:applied:{acme}:gov-rulepacks:policy.rulepacks:2147483647");
    /* no tenant: a watermark, but no applied offset */
    pos.tenant = NULL;
    assert_int_equal(gov_state_offset_key(&pos, key), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_state_watermark_key(&pos, key), GOV_OK);
    assert_string_equal(key, "gov:offsets:gov-rulepacks:policy.rulepacks:2147483647");
}

/* The Redis Cluster hash tag of key (the part between the first '{' and the
 * next '}', when not empty; else the whole key), as CLUSTER KEYSLOT hashes
 * it. */
static void hash_tag(const char *key, char *out, size_t size) {
    const char *open = strchr(key, '{');
    const char *close = open ? strchr(open + 1, '}') : NULL;
    if (open && close && close > open + 1)
        snprintf(out, size, "%.*s", (int)(close - open - 1), open + 1);
    else
        snprintf(out, size, "%s", key);
}

/* Every key a tenant's script touches hashes to the tenant's slot: a Redis
 * Cluster runs the script (no CROSSSLOT). */
static void test_every_key_a_script_touches_is_in_the_tenants_slot(void **state) {
    (void)state;
    static const char *const tenants[] = {"acme", "_system", "a.b-c_9"};
    char key[GOV_STATE_KEY_MAX], tag[GOV_STATE_KEY_MAX];
    for (size_t t = 0; t < sizeof tenants / sizeof tenants[0]; t++) {
        for (int kind = GOV_STATE_CONSTITUTION; kind <= GOV_STATE_AUDIT_DECISION_IDS; kind++) {
            assert_int_equal(gov_state_key((gov_state_key_t)kind, tenants[t], key), GOV_OK);
            hash_tag(key, tag, sizeof tag);
            assert_string_equal(tag, tenants[t]);
        }
        assert_int_equal(gov_state_decision_key(tenants[t], "017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
                                                key), GOV_OK);
        hash_tag(key, tag, sizeof tag);
        assert_string_equal(tag, tenants[t]);
        gov_state_pos_t pos = {"gov-audit", "identity.audit", 1, 7, tenants[t]};
        assert_int_equal(gov_state_offset_key(&pos, key), GOV_OK);
        hash_tag(key, tag, sizeof tag);
        assert_string_equal(tag, tenants[t]);
    }
}

static void test_a_tenant_of_the_maximum_length_fits(void **state) {
    (void)state;
    char tenant[GOV_TENANT_MAX + 1], want[GOV_STATE_KEY_MAX], key[GOV_STATE_KEY_MAX];
    max_tenant(tenant);
    /* the longest tenant key */
    assert_int_equal(gov_state_key(GOV_STATE_RULEPACK_HISTORY, tenant, key), GOV_OK);
    snprintf(want, sizeof want, "policy:rulepack:{%s}:history", tenant);
    assert_string_equal(key, want);
    /* a decision key with a maximum-length tenant and id */
    assert_int_equal(gov_state_decision_key(tenant, tenant, key), GOV_OK);
    snprintf(want, sizeof want, "policy:decision:{%s}:%s", tenant, tenant);
    assert_string_equal(key, want);
    assert_int_equal(strlen(key), strlen("policy:decision:{}:") + 2 * GOV_TENANT_MAX);
}

static void test_over_long_or_unsafe_input_is_refused_not_truncated(void **state) {
    (void)state;
    char tenant[GOV_TENANT_MAX + 2], key[GOV_STATE_KEY_MAX];
    max_tenant(tenant);
    strcat(tenant, "k");   /* one over */
    memset(key, 'x', sizeof key);
    assert_int_equal(gov_state_key(GOV_STATE_AUDIT, tenant, key), GOV_ERR_TOO_LARGE);
    assert_string_equal(key, "");
    assert_int_equal(gov_state_decision_key("acme", tenant, key), GOV_ERR_TOO_LARGE);
    assert_string_equal(key, "");
    assert_int_equal(gov_state_decision_key(tenant, "acme", key), GOV_ERR_TOO_LARGE);

    /* what would break out of the {T} hash tag or split the key */
    static const char *const unsafe[] = {"", "a}b", "{a}", "a:b", "a b", ".a", "-a", "a\nb"};
    for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++) {
        assert_int_equal(gov_state_key(GOV_STATE_CONSTITUTION, unsafe[i], key),
                         GOV_ERR_INVALID_ARG);
        assert_string_equal(key, "");
        assert_int_equal(gov_state_decision_key("acme", unsafe[i], key), GOV_ERR_INVALID_ARG);
    }
    assert_int_equal(gov_state_key(GOV_STATE_CONSTITUTION, NULL, key), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_state_key((gov_state_key_t)99, "acme", key), GOV_ERR_INVALID_ARG);
    assert_string_equal(key, "");

    /* offsets: names without ':' and a partition >= 0; a key that does not
     * fit is refused whole */
    gov_state_pos_t bad[] = {
        {NULL, "t", 0, 0, "a"}, {"p", NULL, 0, 0, "a"}, {"", "t", 0, 0, "a"},
        {"p", "", 0, 0, "a"}, {"p:q", "t", 0, 0, "a"}, {"p", "t:u", 0, 0, "a"},
        {"p", "t", -1, 0, "a"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(gov_state_offset_key(&bad[i], key), GOV_ERR_INVALID_ARG);
        assert_string_equal(key, "");
        assert_int_equal(gov_state_watermark_key(&bad[i], key), GOV_ERR_INVALID_ARG);
        assert_string_equal(key, "");
    }
    gov_state_pos_t bad_tenant = {"p", "t", 0, 0, "a}b"};
    assert_int_equal(gov_state_offset_key(&bad_tenant, key), GOV_ERR_INVALID_ARG);
    char topic[GOV_STATE_KEY_MAX];
    memset(topic, 't', sizeof topic - 1);
    topic[sizeof topic - 1] = 0;
    gov_state_pos_t big = {"gov-audit", topic, 0, 0, "acme"};
    assert_int_equal(gov_state_offset_key(&big, key), GOV_ERR_TOO_LARGE);
    assert_string_equal(key, "");
    /* the longest topic that fits: "gov:applied:{acme}:gov-audit:" + topic + ":0" */
    size_t fits = GOV_STATE_KEY_MAX - 1 - strlen("gov:applied:{acme}:gov-audit:") - strlen(":0");
    topic[fits] = 0;
    assert_int_equal(gov_state_offset_key(&big, key), GOV_OK);
    assert_int_equal(strlen(key), GOV_STATE_KEY_MAX - 1);
    topic[fits] = 't';
    topic[fits + 1] = 0;
    assert_int_equal(gov_state_offset_key(&big, key), GOV_ERR_TOO_LARGE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_keys_match_the_layout),
        cmocka_unit_test(test_decision_and_offset_keys_match_the_layout),
        cmocka_unit_test(test_every_key_a_script_touches_is_in_the_tenants_slot),
        cmocka_unit_test(test_a_tenant_of_the_maximum_length_fits),
        cmocka_unit_test(test_over_long_or_unsafe_input_is_refused_not_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
