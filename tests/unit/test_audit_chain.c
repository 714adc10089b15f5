/* test_audit_chain.c - known-answer tests of the audit hash chain.
 *
 * The expected hashes were computed independently with Python's hashlib
 * (the recipe is in the comment of gov_audit_chain.h): see
 * tests/vectors/audit/README.md for the script.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "gov_audit_chain.h"

#define H1 "c1eaab176c7b67aa12670fcb2137ed165916b9cde26534839fad16215a6241d5"
#define H2 "94c2e1fc50b1a3e21bc34e42dc7d59150d67038e3feea49fffffb85dc34d1084"
#define H3 "454da145508184b2ddb953baef0166d5e2e5f91c12ad6718de39443f7ac6986a"

static const char P1[] = "{\"action\":\"token.issued\",\"tenant\":\"acme\"}";
static const char P2[] = "{\"decision\":\"deny\",\"tenant\":\"acme\",\"note\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}";

static gov_audit_entry_t e1(void) {
    gov_audit_entry_t e = {GOV_AUDIT_GENESIS, 1, "0190a7b2-3c4d-7e5f-8a6b-7c8d9e0f1a2b",
                           "AuditEvent", 1732400000123456LL, "identity.audit/0/0", P1,
                           sizeof P1 - 1};
    return e;
}

static gov_audit_entry_t e2(void) {
    gov_audit_entry_t e = {H1, 2, "0190a7b2-3c4d-7e5f-8a6b-7c8d9e0f1a2c", "PolicyDecision",
                           -5, "policy.decisions/2/17", P2, sizeof P2 - 1};
    return e;
}

static void test_known_answers(void **state) {
    (void)state;
    char h[65];
    gov_audit_entry_t a = e1(), b = e2();
    assert_int_equal(gov_audit_chain_hash(&a, h), GOV_OK);
    assert_string_equal(h, H1);
    assert_int_equal(gov_audit_chain_hash(&b, h), GOV_OK);
    assert_string_equal(h, H2);
    gov_audit_entry_t c = {H2, 3, "e", "T", 0, "s", "", 0};
    assert_int_equal(gov_audit_chain_hash(&c, h), GOV_OK);
    assert_string_equal(h, H3);
}

static void test_check_intact_chain(void **state) {
    (void)state;
    gov_audit_entry_t a = e1(), b = e2();
    assert_int_equal(gov_audit_chain_check(&a, H1, GOV_AUDIT_GENESIS, 1), GOV_AUDIT_INTACT);
    assert_int_equal(gov_audit_chain_check(&b, H2, H1, 2), GOV_AUDIT_INTACT);
}

static void test_check_detects_tampering(void **state) {
    (void)state;
    gov_audit_entry_t b = e2();
    /* payload changed by one byte */
    char tampered[sizeof P2];
    memcpy(tampered, P2, sizeof P2);
    tampered[14] = 'a'; /* "deny" -> "aeny" */
    b.payload = tampered;
    assert_int_equal(gov_audit_chain_check(&b, H2, H1, 2), GOV_AUDIT_BAD_HASH);
    /* every other hashed field, one at a time */
    b = e2(); b.event_id = "0190a7b2-3c4d-7e5f-8a6b-7c8d9e0f1a2d";
    assert_int_equal(gov_audit_chain_check(&b, H2, H1, 2), GOV_AUDIT_BAD_HASH);
    b = e2(); b.type = "AuditEvent";
    assert_int_equal(gov_audit_chain_check(&b, H2, H1, 2), GOV_AUDIT_BAD_HASH);
    b = e2(); b.occurred_at = -4;
    assert_int_equal(gov_audit_chain_check(&b, H2, H1, 2), GOV_AUDIT_BAD_HASH);
    b = e2(); b.source = "policy.decisions/2/18";
    assert_int_equal(gov_audit_chain_check(&b, H2, H1, 2), GOV_AUDIT_BAD_HASH);
    /* removed predecessor: the link does not match */
    b = e2();
    assert_int_equal(gov_audit_chain_check(&b, H2, GOV_AUDIT_GENESIS, 2), GOV_AUDIT_BAD_PREV);
    /* reordered: seq out of place */
    assert_int_equal(gov_audit_chain_check(&b, H2, H1, 1), GOV_AUDIT_BAD_SEQ);
    /* stored hash replaced */
    assert_int_equal(gov_audit_chain_check(&b, H1, H1, 2), GOV_AUDIT_BAD_HASH);
}

static void test_length_prefix_is_injective(void **state) {
    (void)state;
    /* Moving a byte between adjacent fields must change the hash. */
    char h1[65], h2[65];
    gov_audit_entry_t a = {GOV_AUDIT_GENESIS, 1, "ab", "c", 0, "s", "p", 1};
    gov_audit_entry_t b = {GOV_AUDIT_GENESIS, 1, "a", "bc", 0, "s", "p", 1};
    assert_int_equal(gov_audit_chain_hash(&a, h1), GOV_OK);
    assert_int_equal(gov_audit_chain_hash(&b, h2), GOV_OK);
    assert_string_not_equal(h1, h2);
}

static void test_missing_fields(void **state) {
    (void)state;
    char h[65];
    gov_audit_entry_t a = e1();
    a.payload = NULL;
    assert_int_equal(gov_audit_chain_hash(&a, h), GOV_ERR_INVALID_ARG);
    a = e1();
    assert_int_equal(gov_audit_chain_check(&a, NULL, GOV_AUDIT_GENESIS, 1), GOV_AUDIT_MALFORMED);
}

/* The relay's stamp: one spelling of a bounded partition, offset and time;
 * everything else refused with the outputs untouched. */
static void test_relay_source_parse(void **state) {
    (void)state;
    static const struct {
        const char *s;
        int ok;
        int32_t p;
        int64_t o, t;
    } cases[] = {
        {"0/0/0", 1, 0, 0, 0},
        {"3/1234/1796700000000", 1, 3, 1234, 1796700000000LL},
        {"1000000/9007199254740992/9007199254740992", 1, 1000000, 9007199254740992LL,
         9007199254740992LL},
        {"1000001/0/0", 0, 0, 0, 0},          /* partition past the bound */
        {"0/9007199254740993/0", 0, 0, 0, 0}, /* offset past 2^53 */
        {"0/0/9007199254740993", 0, 0, 0, 0}, /* time past 2^53 */
        {"0/99999999999999999999/1", 0, 0, 0, 0},
        {"03/1/1", 0, 0, 0, 0},               /* leading zero: a second spelling */
        {"3/01/1", 0, 0, 0, 0},
        {"3/1/01", 0, 0, 0, 0},
        {"-1/5/1", 0, 0, 0, 0},
        {"1/-5/1", 0, 0, 0, 0},
        {"1/5/-1", 0, 0, 0, 0},
        {"+1/5/1", 0, 0, 0, 0},
        {"1/5/6/7", 0, 0, 0, 0},
        {"1/5", 0, 0, 0, 0},                  /* an older relay's two-part stamp */
        {"1 /5/6", 0, 0, 0, 0},
        {"/5/6", 0, 0, 0, 0},
        {"5//6", 0, 0, 0, 0},
        {"5/6/", 0, 0, 0, 0},
        {"5", 0, 0, 0, 0},
        {"", 0, 0, 0, 0},
        {"policy.decisions/3/7", 0, 0, 0, 0}, /* x-gov-relayed-from's form */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t p = -7;
        int64_t o = -7, t = -7;
        gov_err_t rc = gov_relay_source_parse(cases[i].s, strlen(cases[i].s), &p, &o, &t);
        if (cases[i].ok) {
            assert_int_equal(rc, GOV_OK);
            assert_int_equal(p, cases[i].p);
            assert_true(o == cases[i].o);
            assert_true(t == cases[i].t);
        } else {
            assert_int_equal(rc, GOV_ERR_PARSE);
            assert_int_equal(p, -7);
            assert_true(o == -7 && t == -7);
        }
    }
    /* the length, not a NUL, ends the stamp */
    int32_t p = 0;
    int64_t o = 0, t = 0;
    assert_int_equal(gov_relay_source_parse("12/345/67xyz", 9, &p, &o, &t), GOV_OK);
    assert_int_equal(p, 12);
    assert_true(o == 345 && t == 67);
    assert_int_equal(gov_relay_source_parse(NULL, 0, &p, &o, &t), GOV_ERR_PARSE);
}

/* Known answers computed with Python's hmac/hashlib:
 *   hmac.new(key, b"soma-relay-v1" + b"%d:" % len(stamp) + stamp + value,
 *            hashlib.sha256).hexdigest() */
static void test_relay_mac(void **state) {
    (void)state;
    static const char k1[] = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
    static const unsigned char v1[] = "\xc3\x01value";
    static const char k2[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char mac[65];
    assert_int_equal(gov_relay_mac(k1, 32, "3/1234", 6, v1, sizeof v1 - 1, mac), GOV_OK);
    assert_string_equal(mac, "be968706974f923770b9b852f1cb481684a62c5d0e887600f39438c578eec57b");
    assert_true(gov_relay_mac_ok(k1, 32, "3/1234", 6, v1, sizeof v1 - 1, mac, 64));
    assert_int_equal(gov_relay_mac(k2, 64, "0/0", 3, NULL, 0, mac), GOV_OK);
    assert_string_equal(mac, "fb6e1894705f095097b64799263d3d860a0cbae488097bb215dedab843269d87");
    /* another stamp, value, key or a changed digit: refused */
    assert_int_equal(gov_relay_mac(k1, 32, "3/1234", 6, v1, sizeof v1 - 1, mac), GOV_OK);
    assert_false(gov_relay_mac_ok(k1, 32, "3/1235", 6, v1, sizeof v1 - 1, mac, 64));
    assert_false(gov_relay_mac_ok(k1, 32, "3/1234", 6, v1, sizeof v1 - 2, mac, 64));
    assert_false(gov_relay_mac_ok(k2, 32, "3/1234", 6, v1, sizeof v1 - 1, mac, 64));
    assert_false(gov_relay_mac_ok(k1, 32, "3/1234", 6, v1, sizeof v1 - 1, mac, 63));
    mac[10] = mac[10] == '0' ? '1' : '0';
    assert_false(gov_relay_mac_ok(k1, 32, "3/1234", 6, v1, sizeof v1 - 1, mac, 64));
    assert_false(gov_relay_mac_ok(k1, 32, "3/1234", 6, v1, sizeof v1 - 1, NULL, 0));
    /* a key shorter than GOV_RELAY_KEY_MIN is refused, not used */
    assert_int_equal(gov_relay_mac(k1, 31, "3/1234", 6, v1, sizeof v1 - 1, mac),
                     GOV_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_check_intact_chain),
        cmocka_unit_test(test_check_detects_tampering),
        cmocka_unit_test(test_length_prefix_is_injective),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_relay_source_parse),
        cmocka_unit_test(test_relay_mac),
    };
    return cmocka_run_group_tests_name("audit_chain", tests, NULL, NULL);
}
