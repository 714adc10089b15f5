/* test_redis_slot.c - Redis Cluster hash slots, redirects, slot map
 * (gov_redis_slot.h).
 *
 * Known answers: the Redis Cluster specification
 * (https://redis.io/docs/reference/cluster-spec/, "Keys distribution model"
 * and appendix A: CRC16("123456789") = 0x31C3; the hash-tag examples
 * {user1000}.following / {user1000}.followers, foo{}{bar}, foo{{bar}}zap,
 * foo{bar}{zap}).  The slot numbers of plain keys were cross-checked with
 * redis-server 7.0.15's CLUSTER KEYSLOT on a cluster-enabled node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gov_redis_slot.h"

static unsigned slot_of(const char *k) {
    return gov_redis_key_slot(k, strlen(k));
}

static void test_crc16_spec_vector(void **state) {
    (void)state;
    assert_int_equal(gov_crc16_xmodem("123456789", 9), 0x31C3);
    assert_int_equal(gov_crc16_xmodem("", 0), 0);
}

static void test_hash_tags(void **state) {
    (void)state;
    /* the spec's examples: the same tag, the same slot */
    assert_int_equal(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
    assert_int_equal(slot_of("{user1000}.following"), slot_of("user1000"));
    /* "{}" is no tag: the whole key */
    assert_int_equal(slot_of("foo{}{bar}"),
                     gov_crc16_xmodem("foo{}{bar}", 10) % GOV_REDIS_SLOTS);
    /* the tag is up to the first '}' after the first '{' */
    assert_int_equal(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    assert_int_equal(slot_of("foo{bar}{zap}"), slot_of("bar"));
    /* no closing brace: the whole key */
    assert_int_equal(slot_of("foo{bar"), gov_crc16_xmodem("foo{bar", 7) % GOV_REDIS_SLOTS);
    /* CLUSTER KEYSLOT answers (redis-server 7.0.15) */
    assert_int_equal(slot_of("foo"), 12182);
    assert_int_equal(slot_of("{user1000}.following"), 3443);
    assert_int_equal(slot_of("foo{}{bar}"), 8363);
    assert_int_equal(slot_of("foo{{bar}}zap"), 4015);
    assert_int_equal(slot_of("foo{bar}{zap}"), 5061);
    /* our keys: one tenant, one slot (docs/contracts.md "Redis Cluster") */
    assert_int_equal(slot_of("constitution:{demo}"), 903);
    assert_int_equal(slot_of("gov:applied:{demo}:gov-audit:identity.audit:0"), 903);
    assert_int_equal(slot_of("constitution:tenants"), 10060);
    assert_int_equal(slot_of("policy:rulepack:tenants"), 11607);
    assert_int_equal(slot_of("identity:{keys}:jwks"), 2915);
    /* binary-safe: a NUL inside the key counts */
    assert_int_not_equal(gov_redis_key_slot("a\0b", 3), gov_redis_key_slot("a", 1));
}

/* Parses the first len bytes of m as a redirect and checks every field. */
static void expect_redirect(const char *m, size_t len, gov_redis_redirect_kind_t kind, int slot,
                            const char *host, int port) {
    gov_redis_redirect_t r;
    char eb[128];
    assert_int_equal(gov_redis_redirect_parse(m, len, &r, eb, sizeof eb), 0);
    assert_int_equal(r.kind, kind);
    assert_int_equal(r.slot, slot);
    assert_string_equal(r.host, host);
    assert_int_equal(r.port, port);
}

static void test_redirect_parse_good(void **state) {
    (void)state;
    static const struct {
        const char *m;
        size_t len;   /* 0: all of it */
        gov_redis_redirect_kind_t kind;
        int slot;
        const char *host;
        int port;
    } cases[] = {
        {"MOVED 3999 127.0.0.1:6381", 0, GOV_REDIS_REDIRECT_MOVED, 3999, "127.0.0.1", 6381},
        {"ASK 16383 ::1:9001", 0, GOV_REDIS_REDIRECT_ASK, 16383, "::1", 9001},
        /* no host announced: the one asked */
        {"MOVED 0 :65535", 0, GOV_REDIS_REDIRECT_MOVED, 0, "", 65535},
        /* only len bytes count: a longer buffer holding more is fine */
        {"ASK 7 h:1XYZ", 9, GOV_REDIS_REDIRECT_ASK, 7, "h", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_redirect(cases[i].m, cases[i].len ? cases[i].len : strlen(cases[i].m),
                        cases[i].kind, cases[i].slot, cases[i].host, cases[i].port);
}

static void test_redirect_parse_bad(void **state) {
    (void)state;
    gov_redis_redirect_t r;
    char eb[128];
    static const char *not_redirects[] = {"", "ERR wrong", "MOVED", "ASK", "moved 1 h:1",
                                          "CROSSSLOT Keys in request don't hash to the same slot",
                                          "ASKING"};
    for (size_t i = 0; i < sizeof not_redirects / sizeof *not_redirects; i++)
        assert_int_equal(gov_redis_redirect_parse(not_redirects[i], strlen(not_redirects[i]), &r,
                                                  eb, sizeof eb),
                         GOV_ERR_NOT_FOUND);
    static const char *bad[] = {
        "MOVED  1 h:1", "MOVED 16384 h:1", "MOVED 01 h:1", "MOVED -1 h:1", "MOVED +1 h:1",
        "MOVED 1 h:0", "MOVED 1 h:65536", "MOVED 1 h:01", "MOVED 1 h", "MOVED 1 h:",
        "MOVED 1 h:1 ", "MOVED 1 h :1", "MOVED 1  h:1", "MOVED 1", "MOVED 1 ", "MOVED x h:1",
        "ASK 1 h:1\n", "ASK 1 h\t:1", "ASK 99999999999999999999 h:1", "ASK 1 h:99999999999",
        "MOVED 1 h\x80:1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        eb[0] = 0;
        assert_int_equal(gov_redis_redirect_parse(bad[i], strlen(bad[i]), &r, eb, sizeof eb),
                         GOV_ERR_PARSE);
        assert_true(eb[0] != 0);
        assert_int_equal(r.port, 0);
    }
    /* a host of 255 bytes is taken, 256 refused */
    char big[300];
    memcpy(big, "MOVED 5 ", 8);
    memset(big + 8, 'a', 255);
    memcpy(big + 8 + 255, ":7", 3);
    assert_int_equal(gov_redis_redirect_parse(big, strlen(big), &r, eb, sizeof eb), 0);
    assert_int_equal(strlen(r.host), 255);
    memset(big + 8, 'a', 256);
    memcpy(big + 8 + 256, ":7", 3);
    assert_int_equal(gov_redis_redirect_parse(big, strlen(big), &r, eb, sizeof eb),
                     GOV_ERR_PARSE);
}

static void test_slotmap(void **state) {
    (void)state;
    char eb[128];
    gov_redis_slotmap_t *m = gov_redis_slotmap_new();
    assert_non_null(m);
    assert_int_equal(gov_redis_slotmap_covered(m), 0);
    assert_int_equal(gov_redis_slotmap_node(m, 0), GOV_REDIS_NO_NODE);
    /* the split redis-cli --cluster create makes for three masters */
    assert_int_equal(gov_redis_slotmap_assign(m, 0, 5460, "127.0.0.1", 9001, eb, sizeof eb), 0);
    assert_int_equal(gov_redis_slotmap_assign(m, 5461, 10922, "127.0.0.1", 9002, eb, sizeof eb),
                     0);
    assert_int_equal(gov_redis_slotmap_covered(m), 10923);
    assert_int_equal(gov_redis_slotmap_assign(m, 10923, 16383, "127.0.0.1", 9003, eb, sizeof eb),
                     0);
    assert_int_equal(gov_redis_slotmap_covered(m), GOV_REDIS_SLOTS);
    assert_int_equal(gov_redis_slotmap_nodes(m), 3);
    int port = 0;
    assert_string_equal(gov_redis_slotmap_node_host(m, gov_redis_slotmap_node(m, 903), &port),
                        "127.0.0.1");
    assert_int_equal(port, 9001);
    gov_redis_slotmap_node_host(m, gov_redis_slotmap_node(m, 10060), &port);
    assert_int_equal(port, 9002);
    gov_redis_slotmap_node_host(m, gov_redis_slotmap_node(m, 16383), &port);
    assert_int_equal(port, 9003);
    /* a migrated slot: a later range overrides, the node is reused */
    assert_int_equal(gov_redis_slotmap_assign(m, 903, 903, "127.0.0.1", 9003, eb, sizeof eb), 0);
    assert_int_equal(gov_redis_slotmap_nodes(m), 3);
    assert_int_equal(gov_redis_slotmap_node(m, 903), gov_redis_slotmap_node(m, 16383));
    assert_int_equal(gov_redis_slotmap_node(m, 902), gov_redis_slotmap_node(m, 0));
    /* refused: reversed, out of range, bad host or port */
    assert_int_equal(gov_redis_slotmap_assign(m, 5, 4, "h", 1, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_redis_slotmap_assign(m, 0, 16384, "h", 1, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_redis_slotmap_assign(m, 0, 1, "", 1, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_redis_slotmap_assign(m, 0, 1, NULL, 1, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_redis_slotmap_assign(m, 0, 1, "h", 0, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_redis_slotmap_assign(m, 0, 1, "h", 65536, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_redis_slotmap_node(m, GOV_REDIS_SLOTS), GOV_REDIS_NO_NODE);
    assert_null(gov_redis_slotmap_node_host(m, 3, NULL));
    assert_null(gov_redis_slotmap_node_host(m, -1, NULL));
    /* the node table is bounded */
    gov_redis_slotmap_clear(m);
    assert_int_equal(gov_redis_slotmap_nodes(m), 0);
    for (int i = 0; i < GOV_REDIS_SLOTMAP_NODES_MAX; i++)
        assert_int_equal(gov_redis_slotmap_assign(m, (unsigned)i, (unsigned)i, "h", 1000 + i, eb,
                                                  sizeof eb),
                         0);
    assert_int_equal(gov_redis_slotmap_assign(m, 100, 100, "h", 999, eb, sizeof eb),
                     GOV_ERR_TOO_LARGE);
    gov_redis_slotmap_free(m);
    gov_redis_slotmap_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_spec_vector),
        cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_redirect_parse_good),
        cmocka_unit_test(test_redirect_parse_bad),
        cmocka_unit_test(test_slotmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
