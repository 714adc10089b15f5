/* test_identity_sig.c - gov_identity_sig: the signed payload of identity
 * events and its threshold check.
 *
 * Known answers: the payloads and signatures below were computed
 * independently (Python 3: json.dumps(sort_keys=True, separators=(",", ":"),
 * ensure_ascii=False), which is RFC 8785 for strings, null and integers
 * below 2^53, and the `cryptography` package's Ed25519 over those bytes)
 * with the RFC 8032 section 7.1 TEST 1 key; tests/vectors/identity_sig/
 * README.md has the script.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gov_alloc.h"
#include "gov_identity_sig.h"
#include "gov_signature.h"
#include "gov_signer.h"
#include "gov_util.h"
#include "rfc8032_vectors.h"

static const char test1_pem[] =
    "-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\\n"
    "-----END PUBLIC KEY-----\\n";

static const char kr_payload[] =
    "{\"activates_at\":1765000060000000,\"alg\":\"EdDSA\",\"backend\":\"file\",\"created_at\":"
    "1765000000000000,\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\",\"previous_kid\":"
    "null,\"public_jwk\":\"{\\\"crv\\\":\\\"Ed25519\\\",\\\"kty\\\":\\\"OKP\\\",\\\"x\\\":"
    "\\\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\\\"}\",\"retires_at\":null,\"state\":"
    "\"active\",\"type\":\"KeyRotated\"}";
static const char kr_sig[] =
    "5fa70ff7d6925b816d5d35cc6a275c13fb6abe1b54468739dcbb5e71950cb1dbdcd5cb0f4f9dac01151bf1ef"
    "0738361be34e67b7d83bdc16300d63b498106807";
static const char cr_payload[] =
    "{\"client_id\":\"app-1\",\"registered_by\":\"ops@example\",\"scopes\":[\"evaluate\","
    "\"tokens:issue\"],\"secret_hash\":\"sha256:"
    "abababababababababababababababababababababababababababababababab\",\"tenants\":[\"demo\","
    "\"t2\"],\"type\":\"ClientRegistered\"}";
static const char cr_sig[] =
    "44588cbe05e95b3bf0a74dcf72e209dd9f66aaa5e5d5e2e3c78326c6742e3d7b806534e0d0b12730ea977bcf"
    "5d23327845fc5da5272f7161865467f2c97caf0f";
static const char rm_payload[] =
    "{\"client_id\":\"app-1\",\"removed_by\":\"ops@example\",\"type\":\"ClientRemoved\"}";
static const char rm_sig[] =
    "31393cb9db58216dd42fe8301f5673a68b5750637f25e73940625545161610af0df1d181bb11135338b4496d"
    "f288889a086a14429efc5e3c1eeaedfb3e47d10d";

/* The events as gov_avro decodes them: envelope and signatures included
 * (neither is signed). */
static json_t *key_rotated(void) {
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:n, s:n, s:[]}",
                     "event_id", "019ae000-0000-7000-8000-000000000001", "occurred_at",
                     (json_int_t)1765000000000001LL, "kid",
                     "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "alg", "EdDSA",
                     "public_jwk",
                     "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":"
                     "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
                     "backend", "file", "state", "active", "created_at",
                     (json_int_t)1765000000000000LL, "activates_at",
                     (json_int_t)1765000060000000LL, "retires_at", "previous_kid",
                     "signatures");
}

static json_t *client_registered(void) {
    return json_pack("{s:s, s:I, s:s, s:s, s:[ss], s:[ss], s:s}", "event_id",
                     "019ae000-0000-7000-8000-000000000002", "occurred_at",
                     (json_int_t)1765000000000002LL, "client_id", "app-1", "secret_hash",
                     "sha256:abababababababababababababababababababababababababababababababab",
                     "tenants", "demo", "t2", "scopes", "evaluate", "tokens:issue",
                     "registered_by", "ops@example");
}

static json_t *client_removed(void) {
    return json_pack("{s:s, s:I, s:s, s:s}", "event_id", "019ae000-0000-7000-8000-000000000003",
                     "occurred_at", (json_int_t)1765000000000003LL, "client_id", "app-1",
                     "removed_by", "ops@example");
}

static gov_trust_t *trust(const char *fmt) {
    char text[1024];
    gov_trust_t *t = NULL;
    char eb[256];
    snprintf(text, sizeof text, fmt, test1_pem);
    assert_int_equal(gov_trust_parse(text, strlen(text), &t, eb, sizeof eb), GOV_OK);
    return t;
}

static gov_trust_t *test1_trust(void) {
    return trust("{\"threshold\": 1, \"signers\": {\"ops\": \"%s\"}}");
}

static gov_signer_t *test1_signer(void) {
    uint8_t seed[32];
    gov_signer_t *s = NULL;
    char eb[128];
    assert_int_equal(gov_hex_decode(rfc8032[0].secret, 64, seed, sizeof seed), 0);
    assert_int_equal(gov_signer_from_ed25519_raw(seed, "memory", &s, eb, sizeof eb), GOV_OK);
    return s;
}

static void payload_is(json_t *ev, const char *type, const char *want) {
    char *p = NULL, eb[128];
    size_t n = 0;
    assert_int_equal(gov_identity_sig_payload(type, ev, &p, &n, eb, sizeof eb), GOV_OK);
    assert_int_equal(n, strlen(want));
    assert_string_equal(p, want);
    gov_free(p);
    json_decref(ev);
}

static void test_payload_known_answers(void **state) {
    (void)state;
    payload_is(key_rotated(), "KeyRotated", kr_payload);
    payload_is(client_registered(), "ClientRegistered", cr_payload);
    payload_is(client_removed(), "ClientRemoved", rm_payload);
}

static void test_payload_refuses_other_kinds(void **state) {
    (void)state;
    json_t *ev = client_removed();
    char *p = NULL, eb[128];
    size_t n = 0;
    assert_int_equal(gov_identity_sig_payload("TokenIssued", ev, &p, &n, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_null(p);
    json_t *arr = json_array();
    assert_int_equal(gov_identity_sig_payload("ClientRemoved", arr, &p, &n, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    json_decref(arr);
    assert_false(gov_identity_sig_kind(NULL));
    assert_true(gov_identity_sig_kind("KeyRotated"));
    json_decref(ev);
}

/* Signing the known payloads with the TEST 1 key gives the known
 * signatures (Ed25519 is deterministic). */
static void test_sign_known_answers(void **state) {
    (void)state;
    gov_signer_t *s = test1_signer();
    const char *pl[] = {kr_payload, cr_payload, rm_payload}, *sg[] = {kr_sig, cr_sig, rm_sig};
    for (int i = 0; i < 3; i++) {
        json_t *sigs = json_array();
        char eb[128];
        assert_int_equal(gov_identity_sig_sign(s, "ops", pl[i], strlen(pl[i]), sigs, eb, sizeof eb),
                         GOV_OK);
        json_t *e = json_array_get(sigs, 0);
        assert_string_equal(json_string_value(json_object_get(e, "signer_id")), "ops");
        assert_string_equal(json_string_value(json_object_get(e, "algorithm")), "ed25519");
        assert_string_equal(json_string_value(json_object_get(e, "signature")), sg[i]);
        json_decref(sigs);
    }
    json_t *sigs = json_array();
    char eb[128];
    assert_int_equal(gov_identity_sig_sign(s, "bad/id", "x", 1, sigs, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    json_decref(sigs);
    gov_signer_free(s);
}

static json_t *sigs_of(const char *signer, const char *hex) {
    return json_pack("[{s:s, s:s, s:s}]", "signer_id", signer, "algorithm", "ed25519",
                     "signature", hex);
}

static void check_is(gov_trust_t *t, const char *payload, json_t *sigs, gov_err_t err,
                     gov_reason_t reason) {
    gov_sig_count_t c;
    assert_int_equal(gov_identity_sig_check(t, payload, strlen(payload), sigs, &c), err);
    assert_int_equal(c.reason, reason);
    json_decref(sigs);
}

static void test_check(void **state) {
    (void)state;
    gov_trust_t *t = test1_trust();
    check_is(t, kr_payload, sigs_of("ops", kr_sig), GOV_OK, GOV_REASON_NONE);
    check_is(t, cr_payload, sigs_of("ops", cr_sig), GOV_OK, GOV_REASON_NONE);
    /* one changed byte of the content: the trusted signature fails */
    char tampered[sizeof kr_payload];
    memcpy(tampered, kr_payload, sizeof kr_payload);
    *strstr(tampered, "active") = 'A';
    check_is(t, tampered, sigs_of("ops", kr_sig), GOV_ERR_VERIFY, GOV_REASON_INVALID_SIGNATURE);
    /* a signature over another kind never passes for this one */
    check_is(t, rm_payload, sigs_of("ops", cr_sig), GOV_ERR_VERIFY, GOV_REASON_INVALID_SIGNATURE);
    check_is(t, kr_payload, json_array(), GOV_ERR_VERIFY, GOV_REASON_NO_SIGNATURES);
    check_is(t, kr_payload, NULL, GOV_ERR_VERIFY, GOV_REASON_NO_SIGNATURES);
    check_is(t, kr_payload, json_string("x"), GOV_ERR_VERIFY, GOV_REASON_NO_SIGNATURES);
    check_is(t, kr_payload, sigs_of("mallory", kr_sig), GOV_ERR_VERIFY,
             GOV_REASON_UNTRUSTED_SIGNER);
    check_is(t, kr_payload, sigs_of("ops", "00"), GOV_ERR_VERIFY, GOV_REASON_MALFORMED_SIGNATURE);
    gov_trust_free(t);
    /* a per-tenant trust without the identity scope trusts nobody here */
    t = trust("{\"signers\": {\"ops\": \"%s\"}, \"tenants\": {\"demo\": {\"threshold\": 1, "
              "\"signers\": [\"ops\"]}}}");
    check_is(t, kr_payload, sigs_of("ops", kr_sig), GOV_ERR_VERIFY,
             GOV_REASON_TENANT_NOT_TRUSTED);
    gov_trust_free(t);
    t = trust("{\"signers\": {\"ops\": \"%s\"}, \"tenants\": {\"identity\": {\"threshold\": 1, "
              "\"signers\": [\"ops\"]}}}");
    check_is(t, kr_payload, sigs_of("ops", kr_sig), GOV_OK, GOV_REASON_NONE);
    gov_trust_free(t);
}

static gov_err_t stored(gov_trust_t *t, const char *type, const char *id, const char *payload,
                        const char *sigs, gov_reason_t want) {
    json_t *content = NULL;
    gov_sig_count_t c;
    gov_err_t err = gov_identity_sig_check_stored(t, type, "client_id", id, payload,
                                                  payload ? strlen(payload) : 0, sigs,
                                                  sigs ? strlen(sigs) : 0, &content, &c);
    assert_int_equal(c.reason, want);
    if (err == GOV_OK)
        assert_string_equal(json_string_value(json_object_get(content, "client_id")), id);
    else
        assert_null(content);
    json_decref(content);
    return err;
}

static void test_check_stored(void **state) {
    (void)state;
    gov_trust_t *t = test1_trust();
    char sigs[512], wrong[512];
    snprintf(sigs, sizeof sigs,
             "[{\"signer_id\":\"ops\",\"algorithm\":\"ed25519\",\"signature\":\"%s\"}]", cr_sig);
    snprintf(wrong, sizeof wrong,
             "[{\"signer_id\":\"ops\",\"algorithm\":\"ed25519\",\"signature\":\"%s\"}]", rm_sig);
    assert_int_equal(stored(t, "ClientRegistered", "app-1", cr_payload, sigs, GOV_REASON_NONE),
                     GOV_OK);
    /* another id, another kind, no payload, no or unreadable signatures */
    assert_int_equal(stored(t, "ClientRegistered", "app-2", cr_payload, sigs,
                            GOV_REASON_IDENTITY_SIGNATURE_INVALID),
                     GOV_ERR_VERIFY);
    assert_int_equal(stored(t, "ClientRemoved", "app-1", cr_payload, sigs,
                            GOV_REASON_IDENTITY_SIGNATURE_INVALID),
                     GOV_ERR_VERIFY);
    assert_int_equal(stored(t, "ClientRegistered", "app-1", NULL, sigs,
                            GOV_REASON_IDENTITY_SIGNATURE_INVALID),
                     GOV_ERR_VERIFY);
    assert_int_equal(stored(t, "ClientRegistered", "app-1", cr_payload, NULL,
                            GOV_REASON_NO_SIGNATURES),
                     GOV_ERR_VERIFY);
    assert_int_equal(stored(t, "ClientRegistered", "app-1", cr_payload, "[{",
                            GOV_REASON_NO_SIGNATURES),
                     GOV_ERR_VERIFY);
    assert_int_equal(stored(t, "ClientRegistered", "app-1", cr_payload, wrong,
                            GOV_REASON_INVALID_SIGNATURE),
                     GOV_ERR_VERIFY);
    /* the same content spelled otherwise is not what was signed */
    char spaced[sizeof cr_payload + 1];
    snprintf(spaced, sizeof spaced, "%s ", cr_payload);
    assert_int_equal(stored(t, "ClientRegistered", "app-1", spaced, sigs,
                            GOV_REASON_INVALID_SIGNATURE),
                     GOV_ERR_VERIFY);
    gov_trust_free(t);
}

/* A payload signed as it is but not canonical is refused after the
 * signature check: what Redis holds must be what a producer signed. */
static void test_check_stored_not_canonical(void **state) {
    (void)state;
    gov_trust_t *t = test1_trust();
    gov_signer_t *s = test1_signer();
    const char *loose = "{\"type\":\"ClientRemoved\",\"client_id\":\"app-1\",\"removed_by\":\"x\"}";
    json_t *arr = json_array();
    char eb[128];
    assert_int_equal(gov_identity_sig_sign(s, "ops", loose, strlen(loose), arr, eb, sizeof eb),
                     GOV_OK);
    char *text = json_dumps(arr, JSON_COMPACT);
    json_t *content = NULL;
    gov_sig_count_t c;
    assert_int_equal(gov_identity_sig_check_stored(t, "ClientRemoved", "client_id", "app-1", loose,
                                                   strlen(loose), text, strlen(text), &content,
                                                   &c),
                     GOV_ERR_VERIFY);
    assert_int_equal(c.reason, GOV_REASON_IDENTITY_SIGNATURE_INVALID);
    assert_null(content);
    free(text);
    json_decref(arr);
    gov_signer_free(s);
    gov_trust_free(t);
}

static void test_trust_signer_of(void **state) {
    (void)state;
    gov_trust_t *t = test1_trust();
    uint8_t pub[32];
    char id[GOV_SIGNER_ID_MAX + 1] = "";
    assert_int_equal(gov_hex_decode(rfc8032[0].public_key, 64, pub, sizeof pub), 0);
    assert_int_equal(gov_trust_signer_of(t, pub, id), 0);
    assert_string_equal(id, "ops");
    pub[0] ^= 1;
    assert_int_equal(gov_trust_signer_of(t, pub, id), -1);
    gov_trust_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload_known_answers),
        cmocka_unit_test(test_payload_refuses_other_kinds),
        cmocka_unit_test(test_sign_known_answers),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_check_stored),
        cmocka_unit_test(test_check_stored_not_canonical),
        cmocka_unit_test(test_trust_signer_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
