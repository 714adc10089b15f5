/* test_events.c - the identity event builders of gov_events and the field
 * rules of a ClientRegistered.
 *
 * Each builder's event is encoded with the embedded schema and decoded back
 * (gov_avro): every field arrives as given, optional fields as null.  Every
 * allocation of a builder is made to fail in turn: the builder returns NULL
 * and leaks nothing (valgrind and ASan runs of this file check the leak).
 * gov_events_sign: a signed event survives the Avro round trip with its
 * signatures, which verify over the decoded event's signed payload; the
 * operator key reader refuses a key file open to others and a non-key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_events.h"
#include "gov_identity_sig.h"
#include "gov_signature.h"
#include "gov_util.h"

static gov_avro_registry_t *reg;

static int setup(void **state) {
    (void)state;
    char eb[256];
    gov_alloc_install_jansson();
    return gov_avro_registry_new(&reg, eb, sizeof eb) == GOV_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    gov_avro_registry_free(reg);
    return 0;
}

/* Encodes ev as type, decodes it, and returns the decoded event (new). */
static json_t *round_trip(const char *type, json_t *ev) {
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[256];
    json_t *out = NULL;
    const char *got_type = NULL;
    assert_non_null(ev);
    assert_int_equal(gov_avro_encode(reg, type, ev, &buf, &len, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_avro_decode(reg, buf, len, &out, &got_type, eb, sizeof eb), GOV_OK);
    assert_string_equal(got_type, type);
    gov_free(buf);
    return out;
}

static const char *s(json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

static const char *const tenants[] = {"acme", "demo"};
static const char *const scopes[] = {"tokens:issue", "read"};
#define EID "01890a5d-ac96-774b-bcce-b302099a8057"

static json_t *client_event(void) {
    gov_client_registered_t c = {
        .event_id = EID, .occurred_at = 1700000000000000, .client_id = "client-abc",
        .secret_hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        .tenants = tenants, .ntenants = 2, .scopes = scopes, .nscopes = 2,
        .registered_by = "govctl:ops",
    };
    return gov_events_client_registered_new(&c);
}

static void test_client_events_round_trip(void **state) {
    (void)state;
    json_t *ev = client_event();
    json_t *d = round_trip("ClientRegistered", ev);
    assert_true(json_equal(ev, d));
    assert_string_equal(s(d, "client_id"), "client-abc");
    assert_int_equal(json_array_size(json_object_get(d, "tenants")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(d, "scopes"), 0)),
                        "tokens:issue");
    json_decref(ev);
    json_decref(d);

    ev = gov_events_client_removed_new(NULL, 0, "client-abc", "govctl:ops");
    d = round_trip("ClientRemoved", ev);
    assert_true(json_equal(ev, d));
    /* a fresh UUIDv7 and the clock when none are given */
    assert_true(gov_uuid_v7_valid(s(d, "event_id")));
    assert_true(json_integer_value(json_object_get(d, "occurred_at")) > 1700000000000000);
    json_decref(ev);
    json_decref(d);
}

static void test_key_and_token_events_round_trip(void **state) {
    (void)state;
    gov_key_rotated_t k = {.event_id = EID, .occurred_at = 1, .kid = "kid", .alg = "EdDSA",
                           .public_jwk = "{}", .backend = "file", .state = "retiring",
                           .created_at = 10, .activates_at = 20, .retires_at = -1};
    json_t *ev = gov_events_key_rotated_new(&k);
    json_t *d = round_trip("KeyRotated", ev);
    assert_true(json_equal(ev, d));
    assert_true(json_is_null(json_object_get(d, "retires_at")));
    assert_true(json_is_null(json_object_get(d, "previous_kid")));
    json_decref(ev);
    json_decref(d);
    k.retires_at = 30;
    k.previous_kid = "old";
    ev = gov_events_key_rotated_new(&k);
    d = round_trip("KeyRotated", ev);
    assert_int_equal(json_integer_value(json_object_get(d, "retires_at")), 30);
    assert_string_equal(s(d, "previous_kid"), "old");
    json_decref(ev);
    json_decref(d);

    gov_token_issued_t t = {.event_id = EID, .occurred_at = 1, .tenant = "acme", .jti = "j",
                            .sub = "s", .client_id = "c", .scope = "read", .aud = "a",
                            .kid = "k", .constitution_hash = "h", .issued_at = 1,
                            .not_before = 2, .expires_at = 3, .decision_id = "d"};
    ev = gov_events_token_issued_new(&t);
    d = round_trip("TokenIssued", ev);
    assert_true(json_equal(ev, d));
    assert_true(json_is_null(json_object_get(d, "session_id")));
    json_decref(ev);
    json_decref(d);

    ev = gov_events_token_revoked_new(EID, 5, "acme", "j", 3, "rfc7009", "edge");
    d = round_trip("TokenRevoked", ev);
    assert_true(json_equal(ev, d));
    json_decref(ev);
    json_decref(d);
}

/* Every allocation of a builder fails in turn: NULL, nothing leaked. */
static void test_builders_survive_allocation_failures(void **state) {
    (void)state;
    long n;
    for (n = 0; n < 10000; n++) {
        gov_alloc_fail_after(n);
        json_t *ev = client_event();
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (failures == 0) {
            assert_non_null(ev);
            json_decref(ev);
            break;
        }
        assert_null(ev);
    }
    assert_true(n > 3 && n < 10000);
}

static void test_client_field_rules(void **state) {
    (void)state;
    /* RFC 6749 A.4 scope-token: %x21 / %x23-5B / %x5D-7E */
    assert_true(gov_events_scope_token_valid("read"));
    assert_true(gov_events_scope_token_valid("tokens:issue"));
    assert_true(gov_events_scope_token_valid("!#[]~"));
    assert_false(gov_events_scope_token_valid(""));
    assert_false(gov_events_scope_token_valid(NULL));
    assert_false(gov_events_scope_token_valid("a b"));
    assert_false(gov_events_scope_token_valid("a\"b"));
    assert_false(gov_events_scope_token_valid("a\\b"));
    assert_false(gov_events_scope_token_valid("caf\xc3\xa9"));
    assert_false(gov_events_scope_token_valid("a\x7f"));
    char big[GOV_EVENTS_SCOPE_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[GOV_EVENTS_SCOPE_MAX] = 0;
    assert_true(gov_events_scope_token_valid(big));
    big[GOV_EVENTS_SCOPE_MAX] = 'a';
    big[GOV_EVENTS_SCOPE_MAX + 1] = 0;
    assert_false(gov_events_scope_token_valid(big));

    const char *ok = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_true(gov_events_secret_hash_valid(ok));
    assert_false(gov_events_secret_hash_valid(NULL));
    assert_false(gov_events_secret_hash_valid(ok + 1));
    assert_false(gov_events_secret_hash_valid(
        "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(gov_events_secret_hash_valid(
        "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(gov_events_secret_hash_valid(
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"));
}

/* Writes a fresh Ed25519 private key to a new file under dir with mode;
 * its public PEM into pub_pem (new, free). */
static void write_key(const char *path, mode_t mode, char **pub_pem) {
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    assert_non_null(kc);
    assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
    assert_int_equal(EVP_PKEY_keygen(kc, &k), 1);
    EVP_PKEY_CTX_free(kc);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k), 1);
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    *pub_pem = strndup(p, (size_t)n);
    BIO_free(bio);
    EVP_PKEY_free(k);
}

static void test_sign_and_operator_key(void **state) {
    (void)state;
    char dir[] = "/tmp/test_events_XXXXXX", path[64], eb[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/op.pem", dir);
    char *pub = NULL;
    gov_signer_t *op = NULL;
    gov_reason_t why = GOV_REASON_NONE;
    write_key(path, 0644, &pub);
    assert_int_equal(gov_events_operator_key_load(path, &op, &why, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_int_equal(why, GOV_REASON_KEY_INSECURE);
    assert_null(op);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(gov_events_operator_key_load(path, &op, &why, eb, sizeof eb), GOV_OK);

    /* the trust that lists it, as the identity trust file would */
    json_t *tj = json_pack("{s:i, s:{s:s}}", "threshold", 1, "signers", "ops", pub);
    char *tt = json_dumps(tj, JSON_COMPACT);
    gov_trust_t *trust = NULL;
    assert_int_equal(gov_trust_parse(tt, strlen(tt), &trust, eb, sizeof eb), GOV_OK);
    char id[GOV_SIGNER_ID_MAX + 1];
    assert_int_equal(gov_trust_signer_of(trust, gov_signer_public_key(op), id), 0);
    assert_string_equal(id, "ops");

    json_t *ev = gov_events_client_removed_new(NULL, 0, "app-1", "ops@example");
    assert_non_null(ev);
    assert_int_equal(gov_events_sign(ev, "ClientRemoved", NULL, 0, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    gov_events_signer_t es = {.signer_id = id, .signer = op};
    assert_int_equal(gov_events_sign(ev, "ClientRemoved", &es, 1, eb, sizeof eb), GOV_OK);
    json_t *d = round_trip("ClientRemoved", ev);
    assert_int_equal(json_array_size(json_object_get(d, "signatures")), 1);
    char *payload = NULL;
    size_t len = 0;
    gov_sig_count_t c;
    assert_int_equal(gov_identity_sig_payload("ClientRemoved", d, &payload, &len, eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(gov_identity_sig_check(trust, payload, len, json_object_get(d, "signatures"),
                                            &c),
                     GOV_OK);
    gov_free(payload);
    /* a changed content field voids it */
    json_object_set_new(d, "removed_by", json_string("mallory"));
    assert_int_equal(gov_identity_sig_payload("ClientRemoved", d, &payload, &len, eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(gov_identity_sig_check(trust, payload, len, json_object_get(d, "signatures"),
                                            &c),
                     GOV_ERR_VERIFY);
    assert_int_equal(c.reason, GOV_REASON_INVALID_SIGNATURE);
    gov_free(payload);

    /* not a key */
    FILE *f = fopen(path, "w");
    fputs("not a key\n", f);
    fclose(f);
    gov_signer_t *bad = NULL;
    assert_int_equal(gov_events_operator_key_load(path, &bad, &why, eb, sizeof eb),
                     GOV_ERR_CONFIG);
    assert_int_equal(why, GOV_REASON_KEY_INVALID);
    assert_null(bad);

    json_decref(d);
    json_decref(ev);
    json_decref(tj);
    gov_free(tt);
    gov_trust_free(trust);
    gov_signer_free(op);
    free(pub);
    unlink(path);
    rmdir(dir);
}

/* The PEM of key (private, encrypted with pass when not NULL) in a new
 * string (free). */
static char *pem_of(EVP_PKEY *key, const char *pass) {
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PrivateKey(b, key, pass ? EVP_aes_256_cbc() : NULL,
                                              (unsigned char *)pass, pass ? (int)strlen(pass) : 0,
                                              NULL, NULL),
                     1);
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(b);
    assert_non_null(out);
    return out;
}

/* gov_events_pem_private_key, the one PEM private-key parser (govctl sign,
 * govctl rulepack sign, the operator key): an Ed25519 key is taken; a P-256
 * key, an encrypted key (no prompt), a public key and junk are key_invalid
 * with the path named. */
static void test_pem_private_key(void **state) {
    (void)state;
    char eb[256];
    gov_reason_t why = GOV_REASON_NONE;
    EVP_PKEY *got = NULL;
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ed);
    assert_non_null(ec);
    char *pem = pem_of(ed, NULL);
    assert_int_equal(gov_events_pem_private_key(pem, strlen(pem), "ed.pem", &got, &why, eb,
                                                sizeof eb),
                     GOV_OK);
    assert_int_equal(EVP_PKEY_eq(got, ed), 1);
    EVP_PKEY_free(got);
    free(pem);
    char *bad[4];
    bad[0] = pem_of(ec, NULL);
    bad[1] = pem_of(ed, "secret-passphrase");
    bad[2] = strdup("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n");
    bad[3] = strdup("not a key at all");
    for (size_t i = 0; i < 4; i++) {
        got = NULL;
        why = GOV_REASON_NONE;
        assert_int_equal(gov_events_pem_private_key(bad[i], strlen(bad[i]), "bad.pem", &got, &why,
                                                    eb, sizeof eb),
                         GOV_ERR_CONFIG);
        assert_null(got);
        assert_int_equal(why, GOV_REASON_KEY_INVALID);
        assert_non_null(strstr(eb, "bad.pem"));
        free(bad[i]);
    }
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ec);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_events_round_trip),
        cmocka_unit_test(test_key_and_token_events_round_trip),
        cmocka_unit_test(test_builders_survive_allocation_failures),
        cmocka_unit_test(test_client_field_rules),
        cmocka_unit_test(test_sign_and_operator_key),
        cmocka_unit_test(test_pem_private_key),
    };
    return cmocka_run_group_tests_name("events", tests, setup, teardown);
}
