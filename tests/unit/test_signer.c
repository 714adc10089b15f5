/* test_signer.c - the signer interface (gov_signer.h) with known answers.
 *
 * Sources: Ed25519 test vectors 1-3 of RFC 8032 section 7.1 (the signatures
 * must come out byte for byte through gov_signer_sign); the JWK thumbprint
 * of RFC 8037 Appendix A.3 for the key of Appendix A.1 (which is RFC 8032's
 * TEST 1 key); the base64url examples of RFC 4648 section 10 (with the
 * URL-safe alphabet and no padding).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gov_alloc.h"
#include "gov_buf.h"
#include "gov_b64url.h"
#include "gov_signer.h"
#include "gov_util.h"
#include "rfc8032_vectors.h"


static void unhex(const char *hex, uint8_t *out, size_t n) {
    assert_int_equal(strlen(hex), 2 * n);
    assert_int_equal(gov_hex_decode(hex, 2 * n, out, n), 0);
}

static void test_rfc8032_through_interface(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof rfc8032 / sizeof rfc8032[0]; i++) {
        uint8_t seed[32], pub[32], want[64], sig[64], msg[8];
        size_t mlen = strlen(rfc8032[i].message) / 2;
        unhex(rfc8032[i].secret, seed, 32);
        unhex(rfc8032[i].public_key, pub, 32);
        unhex(rfc8032[i].signature, want, 64);
        unhex(rfc8032[i].message, msg, mlen);
        gov_signer_t *s = NULL;
        char eb[256] = "";
        assert_int_equal(gov_signer_from_ed25519_raw(seed, "memory", &s, eb, sizeof eb), GOV_OK);
        assert_memory_equal(gov_signer_public_key(s), pub, 32);
        assert_string_equal(gov_signer_backend(s), "memory");
        assert_true(gov_signer_kid_valid(gov_signer_kid(s)));
        memset(sig, 0, sizeof sig);
        assert_int_equal(gov_signer_sign(s, mlen ? msg : NULL, mlen, sig, eb, sizeof eb), GOV_OK);
        assert_memory_equal(sig, want, 64);
        /* gov_signer_verify on the same vector, and on it with one bit off */
        assert_int_equal(gov_signer_verify(pub, mlen ? msg : NULL, mlen, want), 1);
        want[63] ^= 0x01;
        assert_int_equal(gov_signer_verify(pub, mlen ? msg : NULL, mlen, want), 0);
        gov_signer_free(s);
    }
}

static void test_rfc8037_thumbprint(void **state) {
    (void)state;
    uint8_t seed[32], pub[32];
    char kid[GOV_SIGNER_KID_SIZE];
    unhex(rfc8032[0].secret, seed, 32);
    unhex(rfc8032[0].public_key, pub, 32);
    /* RFC 8037 A.1: x is the base64url of the TEST 1 public key. */
    char x[GOV_SIGNER_KID_SIZE];
    gov_b64url_encode(pub, 32, x);
    assert_string_equal(x, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    assert_int_equal(gov_signer_kid_of(pub, kid), GOV_OK);
    assert_string_equal(kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    gov_signer_t *s = NULL;
    assert_int_equal(gov_signer_from_ed25519_raw(seed, "memory", &s, NULL, 0), GOV_OK);
    assert_string_equal(gov_signer_kid(s), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    gov_signer_free(s);
}

static void test_jwk_shape(void **state) {
    (void)state;
    uint8_t pub[32];
    unhex(rfc8032[0].public_key, pub, 32);
    gov_buf_t b;
    gov_buf_init(&b, 0);
    assert_int_equal(gov_signer_public_jwk(pub, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", &b),
                     GOV_OK);
    char *s = NULL;
    assert_int_equal(gov_buf_finish(&b, &s, NULL), GOV_OK);
    assert_string_equal(s, "{\"alg\":\"EdDSA\",\"crv\":\"Ed25519\","
                           "\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\",\"kty\":\"OKP\","
                           "\"use\":\"sig\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}");
    gov_free(s);
    /* A kid that is not a thumbprint's shape is refused, nothing appended. */
    gov_buf_init(&b, 0);
    assert_int_equal(gov_signer_public_jwk(pub, "a\"b", &b), GOV_ERR_INVALID_ARG);
    assert_int_equal(b.len, 0);
    gov_buf_free(&b);
}

static void test_kid_valid(void **state) {
    (void)state;
    assert_true(gov_signer_kid_valid("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"));
    assert_false(gov_signer_kid_valid(NULL));
    assert_false(gov_signer_kid_valid(""));
    assert_false(gov_signer_kid_valid("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4"));   /* 42 */
    assert_false(gov_signer_kid_valid("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4kk")); /* 44 */
    assert_false(gov_signer_kid_valid("kPrK/qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"));  /* '/' */
    assert_false(gov_signer_kid_valid("../qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4kxx"));
}

static void test_b64url_rfc4648(void **state) {
    (void)state;
    static const struct { const char *in, *out; } v[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
        {"\xfb\xff", "-_8"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char out[16];
        size_t n = strlen(v[i].in);
        assert_int_equal(gov_b64url_encoded_len(n), strlen(v[i].out));
        gov_b64url_encode((const uint8_t *)v[i].in, n, out);
        assert_string_equal(out, v[i].out);
    }
}

/* A backend written here (a real one, over the in-process key) to check that
 * wrap steals its context and free releases it exactly once. */
static int frees;
static gov_signer_t *inner;
static gov_err_t relay_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64], char *eb,
                            size_t ebs) {
    return gov_signer_sign(ctx, msg, len, sig, eb, ebs);
}
static void relay_free(void *ctx) {
    frees++;
    gov_signer_free(ctx);
}
static const gov_signer_ops_t relay_ops = {.sign = relay_sign, .free = relay_free};

static void test_wrap_ownership(void **state) {
    (void)state;
    uint8_t seed[32], want[64], sig[64];
    unhex(rfc8032[0].secret, seed, 32);
    unhex(rfc8032[0].signature, want, 64);
    frees = 0;
    assert_int_equal(gov_signer_from_ed25519_raw(seed, "memory", &inner, NULL, 0), GOV_OK);
    gov_signer_t *s = gov_signer_wrap(&relay_ops, inner, gov_signer_public_key(inner), "relay");
    assert_non_null(s);
    assert_string_equal(gov_signer_kid(s), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    assert_int_equal(gov_signer_sign(s, NULL, 0, sig, NULL, 0), GOV_OK);
    assert_memory_equal(sig, want, 64);
    gov_signer_free(s);
    assert_int_equal(frees, 1);
    /* A refused wrap (backend name too long) still releases the context. */
    assert_int_equal(gov_signer_from_ed25519_raw(seed, "memory", &inner, NULL, 0), GOV_OK);
    assert_null(gov_signer_wrap(&relay_ops, inner, seed, "a-backend-name-too-long"));
    assert_int_equal(frees, 2);
    gov_signer_free(NULL);
}

/* Every allocation failing in turn: an error, never a crash or a leak. */
static void test_oom(void **state) {
    (void)state;
    uint8_t seed[32];
    unhex(rfc8032[1].secret, seed, 32);
    int ok = 0;
    for (long n = 0; n < 32 && !ok; n++) {
        gov_signer_t *s = NULL;
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_signer_from_ed25519_raw(seed, "memory", &s, NULL, 0);
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            ok = 1;
            assert_non_null(s);
        } else {
            assert_int_equal(rc, GOV_ERR_NOMEM);
            assert_null(s);
        }
        gov_signer_free(s);
    }
    assert_true(ok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8032_through_interface),
        cmocka_unit_test(test_rfc8037_thumbprint),
        cmocka_unit_test(test_jwk_shape),
        cmocka_unit_test(test_kid_valid),
        cmocka_unit_test(test_b64url_rfc4648),
        cmocka_unit_test(test_wrap_ownership),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
