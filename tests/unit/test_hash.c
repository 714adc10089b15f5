/* test_hash.c - gov_hash: the registry of named hash algorithms.
 *
 * Known answers: SHA3-512 of "" and "abc" from FIPS 202 (NIST CSRC
 * "SHA3-512" examples); SHA-256 of "abc" and of the 448-bit two-block
 * message from FIPS 180-2 Appendix B.1 and B.2, and of "" (NIST CSRC
 * "SHA256" example).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "gov_hash.h"
#include "gov_util.h"

typedef struct kat {
    const char *alg, *msg, *hex;
} kat_t;

static const kat_t kats[] = {
    {"sha3-512", "", "a69f73cca23a9ac5c8b567dc185a756e97c982164fe25859e0d1dcc1475c80a6"
                     "15b2123af1f5f94c11e3e9402c3ac558f500199d95b6d3e301758586281dcd26"},
    {"sha3-512", "abc", "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e"
                        "10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0"},
    {"sha256", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"sha256", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"sha256", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
};

/* FIPS 202 / FIPS 180 vectors through both the hex and the byte form. */
static void test_known_answers(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        const gov_hash_alg_t *alg = gov_hash_by_name(kats[i].alg);
        assert_non_null(alg);
        char hex[GOV_HASH_HEX_MAX];
        assert_int_equal(gov_hash_hex(alg, kats[i].msg, strlen(kats[i].msg), hex), GOV_OK);
        if (strcmp(hex, kats[i].hex) != 0)
            fail_msg("%s(\"%s\") = %s, want %s", kats[i].alg, kats[i].msg, hex, kats[i].hex);
        unsigned char md[GOV_HASH_MAX_LEN], want[GOV_HASH_MAX_LEN];
        assert_int_equal(gov_hash_digest(alg, kats[i].msg, strlen(kats[i].msg), md), GOV_OK);
        assert_int_equal(gov_hex_decode(kats[i].hex, strlen(kats[i].hex), want,
                                        gov_hash_len(alg)), 0);
        assert_memory_equal(md, want, gov_hash_len(alg));
    }
}

static void test_sha256_fips180(void **state) {
    (void)state;
    unsigned char md[GOV_SHA256_LEN];
    char hex[GOV_SHA256_HEXLEN + 1];
    assert_int_equal(gov_sha256("abc", 3, md), GOV_OK);
    gov_hex_encode(md, GOV_SHA256_LEN, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_registry(void **state) {
    (void)state;
    const gov_hash_alg_t *s3 = gov_hash_by_name("sha3-512"), *s2 = gov_hash_by_name("sha256");
    assert_ptr_equal(s3, gov_hash_sha3_512());
    assert_ptr_equal(s2, gov_hash_sha256());
    assert_string_equal(gov_hash_name(s3), "sha3-512");
    assert_string_equal(gov_hash_name(s2), "sha256");
    assert_int_equal(gov_hash_len(s3), 64);
    assert_int_equal(gov_hash_hex_len(s3), 128);
    assert_int_equal(gov_hash_len(s2), GOV_SHA256_LEN);
    assert_int_equal(gov_hash_hex_len(s2), GOV_SHA256_HEXLEN);
    assert_ptr_equal(gov_hash_by_name(GOV_HASH_DEFAULT_NAME), s3);
    /* Exact names only: no case folding, no aliases. */
    const char *unknown[] = {"SHA3-512", "sha3_512", "SHA256", "sha-256", "sha512", "md5",
                             "sha256 ", "", "sha3-512\n"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_null(gov_hash_by_name(unknown[i]));
    assert_null(gov_hash_by_name(NULL));
    /* The table, the largest length and the message text agree. */
    char names[128] = "";
    size_t longest = 0;
    assert_int_equal(gov_hash_count(), 2);
    for (size_t i = 0; i < gov_hash_count(); i++) {
        const gov_hash_alg_t *a = gov_hash_at(i);
        assert_non_null(a);
        assert_ptr_equal(gov_hash_by_name(gov_hash_name(a)), a);
        longest = gov_hash_len(a) > longest ? gov_hash_len(a) : longest;
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, "%s%s", i == 0 ? "" : " or ",
                 gov_hash_name(a));
    }
    assert_null(gov_hash_at(gov_hash_count()));
    assert_string_equal(names, GOV_HASH_NAMES_TEXT);
    assert_int_equal(longest, GOV_HASH_MAX_LEN);
    assert_int_equal(GOV_HASH_HEX_MAX, 2 * GOV_HASH_MAX_LEN + 1);
}

static void test_bad_arguments(void **state) {
    (void)state;
    unsigned char md[GOV_HASH_MAX_LEN];
    char hex[GOV_HASH_HEX_MAX] = "untouched";
    assert_int_equal(gov_hash_digest(NULL, "abc", 3, md), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_hash_hex(NULL, "abc", 3, hex), GOV_ERR_INVALID_ARG);
    assert_string_equal(hex, "");
    assert_int_equal(gov_hash_hex(gov_hash_sha256(), "abc", 3, NULL), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_hash_digest(gov_hash_sha256(), NULL, 1, md), GOV_ERR_INVALID_ARG);
    /* NULL with length 0 is the empty message. */
    assert_int_equal(gov_hash_hex(gov_hash_sha256(), NULL, 0, hex), GOV_OK);
    assert_string_equal(hex, kats[2].hex);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_sha256_fips180),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests_name("hash", tests, NULL, NULL);
}
