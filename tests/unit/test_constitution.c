/* test_constitution.c - bundle verification rules, with known answers.
 *
 * Sources: Ed25519 test vectors 1-3 of RFC 8032 section 7.1; the semver 2.0.0
 * precedence example (semver.org, item 11); bundles signed the SomaBrain way
 * by CPython + the `cryptography` package (tests/vectors/constitution/gen.py).
 * Every rejection rule of gov_constitution.h is exercised with a bundle that
 * breaks exactly that rule and is otherwise valid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_constitution.h"
#include "gov_util.h"
#include "rfc8032_vectors.h"

/* --- RFC 8032 7.1 (rfc8032_vectors.h) ------------------------------------ */

static void test_rfc8032_vectors(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof rfc8032 / sizeof rfc8032[0]; i++) {
        unsigned char sk[32], pk[32], msg[8], sig[64], got[64];
        size_t mlen = strlen(rfc8032[i].message) / 2, slen = 64;
        assert_int_equal(gov_hex_decode(rfc8032[i].secret, 64, sk, 32), 0);
        assert_int_equal(gov_hex_decode(rfc8032[i].public_key, 64, pk, 32), 0);
        assert_int_equal(gov_hex_decode(rfc8032[i].message, mlen * 2, msg, mlen), 0);
        assert_int_equal(gov_hex_decode(rfc8032[i].signature, 128, sig, 64), 0);
        EVP_PKEY *priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32);
        unsigned char derived[32];
        size_t dl = 32;
        assert_int_equal(EVP_PKEY_get_raw_public_key(priv, derived, &dl), 1);
        assert_memory_equal(derived, pk, 32);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, NULL, NULL, priv), 1);
        assert_int_equal(EVP_DigestSign(ctx, got, &slen, msg, mlen), 1);
        assert_memory_equal(got, sig, 64); /* Ed25519 is deterministic */
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(priv);
        /* and the same signature decodes from hex and from base64 */
        unsigned char dec[64];
        assert_int_equal(gov_signature_decode(rfc8032[i].signature, dec), 0);
        assert_memory_equal(dec, sig, 64);
        unsigned char b64[100];
        EVP_EncodeBlock(b64, sig, 64);
        assert_int_equal(gov_signature_decode((char *)b64, dec), 0);
        assert_memory_equal(dec, sig, 64);
        /* the accepted spellings (gov_signature.h): either alphabet, with or
         * without the "==" - the same 64 bytes each time */
        char v[4][89];
        snprintf(v[0], sizeof v[0], "%.86s", (char *)b64);   /* standard, unpadded */
        snprintf(v[1], sizeof v[1], "%.88s", (char *)b64);
        for (char *c = v[1]; *c; c++)
            *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;     /* URL alphabet, padded */
        snprintf(v[2], sizeof v[2], "%.86s", v[1]);           /* URL, unpadded */
        snprintf(v[3], sizeof v[3], "%.86s=", (char *)b64);  /* one '=': refused */
        for (int k = 0; k < 3; k++) {
            memset(dec, 0, sizeof dec);
            assert_int_equal(gov_signature_decode(v[k], dec), 0);
            assert_memory_equal(dec, sig, 64);
        }
        assert_int_equal(gov_signature_decode(v[3], dec), -1);
    }
}

static void test_signature_decode_rejects(void **state) {
    (void)state;
    unsigned char out[64];
    assert_int_equal(gov_signature_decode("abcd", out), -1);
    assert_int_equal(gov_signature_decode(NULL, out), -1);
    char bad[129];
    memset(bad, 'g', 128);
    bad[128] = 0;
    assert_int_equal(gov_signature_decode(bad, out), -1);
    /* 86 symbols whose last carries nonzero leftover bits: not canonical */
    char b[87];
    memset(b, 'A', 86);
    b[85] = 'B';
    b[86] = 0;
    assert_int_equal(gov_signature_decode(b, out), -1);
    b[85] = 'A';
    assert_int_equal(gov_signature_decode(b, out), 0);
    b[10] = '+';
    b[11] = '_'; /* two alphabets mixed */
    assert_int_equal(gov_signature_decode(b, out), -1);
}

/* --- bundles built here --------------------------------------------------------- */

typedef struct signer {
    const char *id;
    EVP_PKEY *key;
    char *pem;
} signer_t;

static signer_t signers[4] = {{"alice", NULL, NULL}, {"bob", NULL, NULL},
                              {"carol", NULL, NULL}, {"mallory", NULL, NULL}};

static int setup(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
        EVP_PKEY_keygen_init(kc);
        EVP_PKEY_keygen(kc, &signers[i].key);
        EVP_PKEY_CTX_free(kc);
        BIO *bio = BIO_new(BIO_s_mem());
        PEM_write_bio_PUBKEY(bio, signers[i].key);
        char *p;
        long n = BIO_get_mem_data(bio, &p);
        signers[i].pem = strndup(p, (size_t)n);
        BIO_free(bio);
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        EVP_PKEY_free(signers[i].key);
        free(signers[i].pem);
    }
    return 0;
}

/* Parses a trust file whose "signers" map is alice, bob, carol (not
 * mallory) and whose other members are `rest` (JSON object members, no
 * braces). */
static gov_err_t parse_trust(const char *rest, gov_trust_t **t, char *eb, size_t ebsize) {
    json_t *sg = json_pack("{s:s, s:s, s:s}", "alice", signers[0].pem, "bob", signers[1].pem,
                           "carol", signers[2].pem);
    char *sgt = json_dumps(sg, 0);
    char text[8192];
    snprintf(text, sizeof text, "{\"signers\": %s, %s}", sgt, rest);
    gov_free(sgt);
    json_decref(sg);
    *t = NULL;
    return gov_trust_parse(text, strlen(text), t, eb, ebsize);
}

static gov_trust_t *trust_of(const char *rest) {
    gov_trust_t *t = NULL;
    char eb[200] = "";
    if (parse_trust(rest, &t, eb, sizeof eb) != GOV_OK)
        fail_msg("trust refused: %s", eb);
    return t;
}

/* Tenant acme bound to alice, bob, carol with the given threshold, taking
 * unbound documents (most fixtures below name no tenant). */
static gov_trust_t *make_trust(int threshold) {
    char rest[300];
    snprintf(rest, sizeof rest,
             "\"tenants\": {\"acme\": {\"threshold\": %d, \"signers\": [\"alice\", \"bob\", "
             "\"carol\"], \"unbound_documents\": true}}",
             threshold);
    return trust_of(rest);
}

static void sign_hex(int who, const char *msg, char out[129]) {
    unsigned char sig[64];
    size_t sl = 64;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestSignInit(ctx, NULL, NULL, NULL, signers[who].key);
    EVP_DigestSign(ctx, sig, &sl, (const unsigned char *)msg, strlen(msg));
    EVP_MD_CTX_free(ctx);
    gov_hex_encode(sig, 64, out);
}

typedef struct test_bundle {
    char doc[2048];
    char checksum[129];
    char sigtext[8][129];
    gov_bundle_sig_t sigs[8];
    gov_bundle_in_t in;
} test_bundle_t;

/* A valid bundle of `doc` (JSON text), canonicalization/hash given, signed
 * by the listed signer indexes (-1 ends). */
static void build(test_bundle_t *b, const char *doc, const char *canon, const char *alg,
                  const int *who) {
    memset(b, 0, sizeof *b);
    snprintf(b->doc, sizeof b->doc, "%s", doc);
    json_t *d = NULL;
    char eb[200];
    gov_canon_t kind;
    assert_int_equal(gov_canon_from_name(canon, &kind), 0);
    assert_int_equal(gov_canon_parse(b->doc, strlen(b->doc), &d, NULL, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_canon_checksum(d, kind, alg, b->checksum, NULL, eb, sizeof eb), GOV_OK);
    json_decref(d);
    size_t n = 0;
    for (; who[n] >= 0; n++) {
        sign_hex(who[n], b->checksum, b->sigtext[n]);
        b->sigs[n].signer_id = signers[who[n]].id;
        b->sigs[n].algorithm = "ed25519";
        b->sigs[n].signature = b->sigtext[n];
    }
    b->in = (gov_bundle_in_t){"acme", b->doc, strlen(b->doc), canon, alg, b->checksum, b->sigs, n};
}

#define DOC_V(v) "{\"version\":\"" v "\",\"rules\":{\"max_risk_score\":0.8},\"governance\":{\"signature_threshold\":2,\"valid_signers\":[\"alice\",\"bob\",\"mallory\"]}}"

static const int AB[] = {0, 1, -1};

static gov_reason_t verify(test_bundle_t *b, gov_trust_t *t, const gov_constitution_state_t *st,
                           gov_verify_outcome_t *outcome) {
    gov_verdict_t v;
    assert_int_equal(gov_constitution_verify(&b->in, t, st, &v), GOV_OK);
    if (outcome)
        *outcome = v.outcome;
    gov_reason_t r = v.reason;
    if (v.outcome == GOV_VERIFY_ACCEPT) {
        assert_non_null(v.document);
        assert_non_null(v.canonical);
    }
    gov_verdict_clear(&v);
    return r;
}

static void test_accepts_valid_bundle_both_forms(void **state) {
    (void)state;
    gov_trust_t *t = make_trust(2);
    const char *forms[][2] = {{"jcs", "sha3-512"}, {"jcs", "sha256"},
                              {"somabrain-json", "sha3-512"}, {"somabrain-json", "sha256"}};
    for (size_t i = 0; i < 4; i++) {
        test_bundle_t b;
        build(&b, DOC_V("1.2.0"), forms[i][0], forms[i][1], AB);
        gov_verdict_t v;
        assert_int_equal(gov_constitution_verify(&b.in, t, NULL, &v), GOV_OK);
        assert_int_equal(v.outcome, GOV_VERIFY_ACCEPT);
        assert_string_equal(v.version, "1.2.0");
        assert_int_equal(v.nsigners, 2);
        assert_string_equal(v.signers[0], "alice");
        assert_string_equal(v.signers[1], "bob");
        assert_int_equal(v.required, 2);
        gov_verdict_clear(&v);
    }
    gov_trust_free(t);
}

static void test_rejections_each_rule(void **state) {
    (void)state;
    gov_trust_t *t = make_trust(2);
    test_bundle_t b;
    gov_verify_outcome_t o;

    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AB);
    b.in.canonicalization = "xml-c14n";
    assert_int_equal(verify(&b, t, NULL, &o), GOV_REASON_UNKNOWN_CANONICALIZATION);
    assert_int_equal(o, GOV_VERIFY_REJECT);

    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AB);
    b.in.hash_alg = "md5";
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_UNKNOWN_HASH_ALGORITHM);

    build(&b, DOC_V("1.0.0"), "jcs", "sha256", AB);
    b.checksum[3] = 'A'; /* uppercase is not the signed form */
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_MALFORMED_CHECKSUM);

    /* tampered document: one digit of max_risk_score */
    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AB);
    char *p = strstr(b.doc, "0.8");
    p[2] = '9';
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_CHECKSUM_MISMATCH);

    /* tampered checksum (still well-formed) */
    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AB);
    b.checksum[0] = b.checksum[0] == 'a' ? 'b' : 'a';
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_CHECKSUM_MISMATCH);

    /* a document that is not JSON, duplicate keys, not an object */
    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AB);
    b.in.document_json = "{\"version\":\"1.0.0\",\"version\":\"2.0.0\"}";
    b.in.document_len = strlen(b.in.document_json);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_MALFORMED_DOCUMENT);
    b.in.document_json = "[1,2]";
    b.in.document_len = 5;
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_MALFORMED_DOCUMENT);

    const int none[] = {-1};
    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", none);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_NO_SIGNATURES);

    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AB);
    b.sigs[1].algorithm = "rsa-pss";
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_UNKNOWN_SIGNATURE_ALGORITHM);

    /* the same signer twice */
    const int AA[] = {0, 0, -1};
    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AA);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_DUPLICATE_SIGNER);

    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AB);
    b.sigtext[1][5] = 'z';
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_MALFORMED_SIGNATURE);

    /* a trusted signer's signature over something else */
    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AB);
    sign_hex(1, "not the checksum", b.sigtext[1]);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_INVALID_SIGNATURE);

    /* an untrusted signer (mallory has a valid signature but no trust) */
    const int AM[] = {0, 3, -1};
    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AM);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_UNTRUSTED_SIGNER);

    /* too few signers */
    const int A[] = {0, -1};
    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", A);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_THRESHOLD_NOT_MET);

    /* carol is trusted but not in valid_signers */
    const int AC[] = {0, 2, -1};
    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AC);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_SIGNER_NOT_PERMITTED);

    /* the document's threshold (3) above the configured one (2) applies */
    build(&b, "{\"version\":\"1.0.0\",\"governance\":{\"signature_threshold\":3}}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_THRESHOLD_NOT_MET);
    const int ABC[] = {0, 1, 2, -1};
    build(&b, "{\"version\":\"1.0.0\",\"governance\":{\"signature_threshold\":3}}", "jcs", "sha256", ABC);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_NONE);
    /* ... but a lower document threshold never loosens the configured one */
    build(&b, "{\"version\":\"1.0.0\",\"governance\":{\"signature_threshold\":1}}", "jcs", "sha256", A);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_THRESHOLD_NOT_MET);

    build(&b, "{\"version\":\"1.0.0\",\"governance\":{\"signature_threshold\":\"2\"}}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_INVALID_GOVERNANCE);
    build(&b, "{\"version\":\"1.0.0\",\"governance\":{\"valid_signers\":[]}}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_INVALID_GOVERNANCE);

    build(&b, "{\"version\":\"1.0\"}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_INVALID_VERSION);
    build(&b, "{\"rules\":{}}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_INVALID_VERSION);
    build(&b, "{\"version\":-3}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_INVALID_VERSION);
    /* beyond 2^53 - 1 or longer than the field: refused, never rounded or
     * cut (gov_version_from_json; a signed 9223372036854775807 would be
     * stored by JCS as 9223372036854776000) */
    build(&b, "{\"version\":9223372036854775807}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_VERSION_TOO_LARGE);
    build(&b, "{\"version\":\"9007199254740992.0.0\"}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_VERSION_TOO_LARGE);
    build(&b, "{\"version\":\"1.0.0-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
          "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_VERSION_TOO_LONG);
    build(&b, "{\"version\":9007199254740991}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_NONE);

    build(&b, "{\"version\":\"1.0.0\",\"tenant\":\"globex\"}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_TENANT_MISMATCH);
    gov_trust_free(t);
}

static void test_anti_rollback_equivocation_duplicate(void **state) {
    (void)state;
    gov_trust_t *t = make_trust(2);
    test_bundle_t cur, b;
    build(&cur, DOC_V("2.0.0"), "jcs", "sha3-512", AB);
    const char *hist[] = {"00aa", NULL};
    gov_constitution_state_t st = {"2.0.0", cur.checksum, hist, 1, NULL, 0};
    gov_verify_outcome_t o;

    build(&b, DOC_V("2.0.1"), "jcs", "sha3-512", AB);
    assert_int_equal(verify(&b, t, &st, &o), GOV_REASON_NONE);
    assert_int_equal(o, GOV_VERIFY_ACCEPT);

    build(&b, DOC_V("1.9.9"), "jcs", "sha3-512", AB);
    assert_int_equal(verify(&b, t, &st, &o), GOV_REASON_VERSION_ROLLBACK);

    /* same version, another document */
    build(&b, "{\"version\":\"2.0.0\",\"rules\":{\"max_risk_score\":0.1}}", "jcs", "sha3-512", AB);
    assert_int_equal(verify(&b, t, &st, &o), GOV_REASON_EQUIVOCATION);
    /* an integer version equal to 2.0.0 is the same version */
    build(&b, "{\"version\":2,\"rules\":{}}", "jcs", "sha3-512", AB);
    assert_int_equal(verify(&b, t, &st, &o), GOV_REASON_EQUIVOCATION);

    /* the current one again: a replay, not a rejection */
    assert_int_equal(verify(&cur, t, &st, &o), GOV_REASON_NONE);
    assert_int_equal(o, GOV_VERIFY_DUPLICATE);

    /* an older one that was accepted before: also a replay */
    build(&b, DOC_V("1.0.0"), "jcs", "sha3-512", AB);
    const char *hist2[] = {b.checksum};
    gov_constitution_state_t st2 = {"2.0.0", cur.checksum, hist2, 1, NULL, 0};
    assert_int_equal(verify(&b, t, &st2, &o), GOV_REASON_NONE);
    assert_int_equal(o, GOV_VERIFY_DUPLICATE);

    /* semver prerelease below the release */
    build(&b, DOC_V("2.0.0-rc.1"), "jcs", "sha3-512", AB);
    assert_int_equal(verify(&b, t, &st, &o), GOV_REASON_VERSION_ROLLBACK);
    gov_trust_free(t);
}

static void test_trust_parse_errors(void **state) {
    (void)state;
    gov_trust_t *t = NULL;
    char eb[200];
    const char *bad[] = {
        "[]", "{\"threshold\":0,\"signers\":{\"a\":\"x\"}}", "{\"threshold\":1}",
        "{\"threshold\":2,\"signers\":{\"a\":\"-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEA\\n-----END PUBLIC KEY-----\\n\"}}",
        "{\"threshold\":1,\"signers\":{\"a\":\"not pem\"}}",
        "{\"threshold\":1,\"signers\":{},\"extra\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(gov_trust_parse(bad[i], strlen(bad[i]), &t, eb, sizeof eb), GOV_ERR_CONFIG);
        assert_true(strlen(eb) > 0);
    }
    /* an RSA key is not an Ed25519 key */
    EVP_PKEY *rsa = EVP_RSA_gen(1024);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, rsa);
    char *pem;
    long n = BIO_get_mem_data(bio, &pem);
    json_t *j = json_pack("{s:i, s:{s:s%}}", "threshold", 1, "signers", "r", pem, (size_t)n);
    char *text = json_dumps(j, 0);
    assert_int_equal(gov_trust_parse(text, strlen(text), &t, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_non_null(strstr(eb, "Ed25519"));
    gov_free(text);
    json_decref(j);
    BIO_free(bio);
    EVP_PKEY_free(rsa);
}

/* --- tenant binding ------------------------------------------------------------- */

/* acme: alice+bob, 2 of them, no unbound documents; globex: all three, 2,
 * takes unbound documents. */
#define TWO_TENANTS \
    "\"tenants\": {\"acme\": {\"threshold\": 2, \"signers\": [\"alice\", \"bob\"]}," \
    " \"globex\": {\"threshold\": 2, \"signers\": [\"alice\", \"bob\", \"carol\"]," \
    " \"unbound_documents\": true}}"

static void test_tenant_binding(void **state) {
    (void)state;
    gov_trust_t *t = trust_of(TWO_TENANTS);
    assert_int_equal(gov_trust_tenant_count(t), 2);
    int th = 0, ub = -1;
    assert_int_equal(gov_trust_tenant(t, "acme", &th, &ub), 0);
    assert_int_equal(th, 2);
    assert_int_equal(ub, 0);
    assert_int_equal(gov_trust_tenant(t, "globex", NULL, &ub), 0);
    assert_int_equal(ub, 1);
    assert_int_equal(gov_trust_tenant(t, "victim", NULL, NULL), -1);

    test_bundle_t b;
    gov_verify_outcome_t o;
    /* acme's own bundle verifies for acme ... */
    build(&b, "{\"version\":\"1.0.0\",\"tenant\":\"acme\"}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, &o), GOV_REASON_NONE);
    assert_int_equal(o, GOV_VERIFY_ACCEPT);
    /* ... and replayed to globex (same signers, who globex trusts too) it is refused */
    b.in.tenant = "globex";
    assert_int_equal(verify(&b, t, NULL, &o), GOV_REASON_TENANT_MISMATCH);
    assert_int_equal(o, GOV_VERIFY_REJECT);
    /* a tenant the trust does not cover: refused whatever the document says */
    b.in.tenant = "victim";
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_TENANT_NOT_TRUSTED);
    build(&b, "{\"version\":\"99\"}", "jcs", "sha256", AB);
    b.in.tenant = "victim";
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_TENANT_NOT_TRUSTED);
    b.in.tenant = NULL;
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_TENANT_NOT_TRUSTED);

    /* an unbound document: refused for acme, accepted for globex */
    b.in.tenant = "acme";
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_UNBOUND_DOCUMENT);
    b.in.tenant = "globex";
    assert_int_equal(verify(&b, t, NULL, &o), GOV_REASON_NONE);
    assert_int_equal(o, GOV_VERIFY_ACCEPT);
    /* a tenant member that is not a string names no tenant we are */
    build(&b, "{\"version\":\"1.0.0\",\"tenant\":7}", "jcs", "sha256", AB);
    b.in.tenant = "globex";
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_TENANT_MISMATCH);

    /* carol counts for globex, not for acme */
    const int AC[] = {0, 2, -1};
    build(&b, "{\"version\":\"1.0.0\",\"tenant\":\"acme\"}", "jcs", "sha256", AC);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_UNTRUSTED_SIGNER);
    build(&b, "{\"version\":\"1.0.0\",\"tenant\":\"globex\"}", "jcs", "sha256", AC);
    b.in.tenant = "globex";
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_NONE);
    gov_trust_free(t);
}

/* The older {"threshold", "signers"} format: every tenant, all signers, no
 * unbound document. */
static void test_legacy_trust_binds_named_tenant_only(void **state) {
    (void)state;
    gov_trust_t *t = trust_of("\"threshold\": 2");
    assert_int_equal(gov_trust_tenant_count(t), 0);
    int th = 0, ub = -1;
    assert_int_equal(gov_trust_tenant(t, "anyone", &th, &ub), 0);
    assert_int_equal(th, 2);
    assert_int_equal(ub, 0);
    test_bundle_t b;
    gov_verify_outcome_t o;
    build(&b, "{\"version\":\"1.0.0\",\"tenant\":\"acme\"}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, &o), GOV_REASON_NONE);
    assert_int_equal(o, GOV_VERIFY_ACCEPT);
    b.in.tenant = "globex";
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_TENANT_MISMATCH);
    build(&b, "{\"version\":\"1.0.0\"}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_UNBOUND_DOCUMENT);
    b.in.tenant = "../x";
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_TENANT_NOT_TRUSTED);
    gov_trust_free(t);
}

static void test_trust_one_key_two_ids(void **state) {
    (void)state;
    char eb[300] = "";
    gov_trust_t *t = NULL;
    /* alice's key again under "alice2": the same key must not count twice */
    json_t *j = json_pack("{s:i, s:{s:s, s:s}}", "threshold", 2, "signers", "alice",
                          signers[0].pem, "alice2", signers[0].pem);
    char *text = json_dumps(j, 0);
    assert_int_equal(gov_trust_parse(text, strlen(text), &t, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_null(t);
    assert_non_null(strstr(eb, "\"alice\""));
    assert_non_null(strstr(eb, "\"alice2\""));
    assert_non_null(strstr(eb, "same public key"));
    gov_free(text);
    json_decref(j);
    /* the same in the per-tenant format */
    j = json_pack("{s:{s:s, s:s}, s:{s:{s:i, s:[s]}}}", "signers", "bob", signers[1].pem, "bob-too",
                  signers[1].pem, "tenants", "acme", "threshold", 1, "signers", "bob");
    text = json_dumps(j, 0);
    eb[0] = '\0';
    assert_int_equal(gov_trust_parse(text, strlen(text), &t, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_non_null(strstr(eb, "\"bob\""));
    assert_non_null(strstr(eb, "\"bob-too\""));
    gov_free(text);
    json_decref(j);
}

static void test_trust_tenants_parse_errors(void **state) {
    (void)state;
    const char *bad[] = {
        "\"tenants\": {}",
        "\"tenants\": []",
        "\"tenants\": {\"acme\": {\"threshold\": 1, \"signers\": [\"mallory\"]}}",
        "\"tenants\": {\"acme\": {\"threshold\": 3, \"signers\": [\"alice\", \"bob\"]}}",
        "\"tenants\": {\"acme\": {\"threshold\": 0, \"signers\": [\"alice\"]}}",
        "\"tenants\": {\"acme\": {\"threshold\": 1, \"signers\": []}}",
        "\"tenants\": {\"acme\": {\"threshold\": 1, \"signers\": [\"alice\", \"alice\"]}}",
        "\"tenants\": {\"acme\": {\"threshold\": 1, \"signers\": [\"alice\"], \"unbound_documents\": 1}}",
        "\"tenants\": {\"acme\": {\"threshold\": 1, \"signers\": [\"alice\"], \"unbound\": true}}",
        "\"tenants\": {\"a/b\": {\"threshold\": 1, \"signers\": [\"alice\"]}}",
        "\"tenants\": {\"acme\": 1}",
        "\"threshold\": 1, \"tenants\": {\"acme\": {\"threshold\": 1, \"signers\": [\"alice\"]}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gov_trust_t *t = NULL;
        char eb[300] = "";
        if (parse_trust(bad[i], &t, eb, sizeof eb) != GOV_ERR_CONFIG)
            fail_msg("accepted: %s", bad[i]);
        assert_null(t);
        assert_true(strlen(eb) > 0);
    }
}

/* --- continuity: the in-force document binds its successor ------------------------ */

static void test_continuity(void **state) {
    (void)state;
    gov_trust_t *t = make_trust(1);
    test_bundle_t cur, b;
    gov_verify_outcome_t o;
    const int A[] = {0, -1}, C[] = {2, -1}, AC[] = {0, 2, -1}, ABC[] = {0, 1, 2, -1};
    /* in force: threshold 2, valid_signers alice, bob, mallory */
    build(&cur, DOC_V("2.0.0"), "jcs", "sha3-512", AB);
    gov_constitution_state_t st = {"2.0.0", cur.checksum, NULL, 0, cur.doc, strlen(cur.doc)};

    /* a successor that drops its governance section needs the in-force threshold */
    build(&b, "{\"version\":\"3.0.0\"}", "jcs", "sha3-512", A);
    gov_verdict_t v;
    assert_int_equal(gov_constitution_verify(&b.in, t, &st, &v), GOV_OK);
    assert_int_equal(v.outcome, GOV_VERIFY_REJECT);
    assert_int_equal(v.reason, GOV_REASON_THRESHOLD_NOT_MET);
    assert_int_equal(v.required, 2);
    gov_verdict_clear(&v);
    /* (without the in-force document only the configured threshold 1 applies) */
    gov_constitution_state_t blind = {"2.0.0", cur.checksum, NULL, 0, NULL, 0};
    assert_int_equal(verify(&b, t, &blind, NULL), GOV_REASON_NONE);
    build(&b, "{\"version\":\"3.0.0\"}", "jcs", "sha3-512", AB);
    assert_int_equal(verify(&b, t, &st, &o), GOV_REASON_NONE);
    assert_int_equal(o, GOV_VERIFY_ACCEPT);
    /* lowering its own threshold does not help either */
    build(&b, "{\"version\":\"3.0.0\",\"governance\":{\"signature_threshold\":1}}", "jcs", "sha3-512", A);
    assert_int_equal(verify(&b, t, &st, NULL), GOV_REASON_THRESHOLD_NOT_MET);

    /* valid_signers of the in-force document restrict the successor: carol
     * is trusted, the successor permits her, the in-force one does not */
    build(&b, "{\"version\":\"3.0.0\",\"governance\":{\"valid_signers\":[\"alice\",\"carol\"]}}",
          "jcs", "sha3-512", AC);
    assert_int_equal(verify(&b, t, &st, NULL), GOV_REASON_SIGNER_NOT_PERMITTED);
    /* in force: no threshold, valid_signers alice, bob */
    test_bundle_t cur2;
    build(&cur2, "{\"version\":\"2.0.0\",\"governance\":{\"valid_signers\":[\"alice\",\"bob\"]}}",
          "jcs", "sha3-512", AB);
    gov_constitution_state_t st2 = {"2.0.0", cur2.checksum, NULL, 0, cur2.doc, strlen(cur2.doc)};
    build(&b, "{\"version\":\"3.0.0\"}", "jcs", "sha3-512", C);
    assert_int_equal(verify(&b, t, &st2, NULL), GOV_REASON_SIGNER_NOT_PERMITTED);
    build(&b, "{\"version\":\"3.0.0\"}", "jcs", "sha3-512", AC);
    assert_int_equal(gov_constitution_verify(&b.in, t, &st2, &v), GOV_OK);
    assert_int_equal(v.outcome, GOV_VERIFY_ACCEPT);
    assert_int_equal(v.nsigners, 1); /* carol does not count */
    assert_string_equal(v.signers[0], "alice");
    gov_verdict_clear(&v);

    /* in force: threshold 3 */
    test_bundle_t cur3;
    build(&cur3, "{\"version\":\"2.0.0\",\"governance\":{\"signature_threshold\":3}}", "jcs",
          "sha3-512", ABC);
    gov_constitution_state_t st3 = {"2.0.0", cur3.checksum, NULL, 0, cur3.doc, strlen(cur3.doc)};
    build(&b, "{\"version\":\"3.0.0\",\"governance\":{\"signature_threshold\":2}}", "jcs", "sha3-512", AB);
    assert_int_equal(verify(&b, t, &st3, NULL), GOV_REASON_THRESHOLD_NOT_MET);
    build(&b, "{\"version\":\"3.0.0\",\"governance\":{\"signature_threshold\":2}}", "jcs", "sha3-512", ABC);
    assert_int_equal(verify(&b, t, &st3, NULL), GOV_REASON_NONE);

    /* a replay of what was accepted before stays a replay */
    build(&b, "{\"version\":\"1.0.0\"}", "jcs", "sha3-512", C);
    const char *hist[] = {b.checksum};
    gov_constitution_state_t st4 = {"2.0.0", cur2.checksum, hist, 1, cur2.doc, strlen(cur2.doc)};
    assert_int_equal(verify(&b, t, &st4, &o), GOV_REASON_NONE);
    assert_int_equal(o, GOV_VERIFY_DUPLICATE);

    /* an in-force document that cannot be read refuses (fail closed) */
    gov_constitution_state_t broken = {"2.0.0", cur.checksum, NULL, 0, "{\"governance\":7}", 16};
    build(&b, "{\"version\":\"3.0.0\"}", "jcs", "sha3-512", ABC);
    assert_int_equal(verify(&b, t, &broken, NULL), GOV_REASON_INTERNAL_ERROR);
    gov_trust_free(t);
}

/* --- strict rules ------------------------------------------------------------------ */

static void test_invalid_rules_refused(void **state) {
    (void)state;
    gov_trust_t *t = make_trust(2);
    test_bundle_t b;
    gov_verdict_t v;
    build(&b, "{\"version\":\"1.0.0\",\"rules\":{\"prohibited_action\":[\"exfiltrate\"]}}", "jcs",
          "sha256", AB);
    assert_int_equal(gov_constitution_verify(&b.in, t, NULL, &v), GOV_OK);
    assert_int_equal(v.outcome, GOV_VERIFY_REJECT);
    assert_int_equal(v.reason, GOV_REASON_INVALID_RULES);
    assert_non_null(strstr(v.detail, "prohibited_action"));
    gov_verdict_clear(&v);
    build(&b, "{\"version\":\"1.0.0\",\"rules\":{\"max_risk_score\":\"0.5\"}}", "jcs", "sha256", AB);
    assert_int_equal(gov_constitution_verify(&b.in, t, NULL, &v), GOV_OK);
    assert_int_equal(v.reason, GOV_REASON_INVALID_RULES);
    assert_non_null(strstr(v.detail, "max_risk_score"));
    gov_verdict_clear(&v);
    build(&b, "{\"version\":\"1.0.0\",\"rules\":[]}", "jcs", "sha256", AB);
    assert_int_equal(verify(&b, t, NULL, NULL), GOV_REASON_INVALID_RULES);
    gov_trust_free(t);
}

/* --- SomaBrain-scheme bundles made by CPython ----------------------------------- */

static char *slurp(const char *rel) {
    char path[1024];
    const char *root = getenv("GOV_ROOT");
    snprintf(path, sizeof path, "%s/%s", root ? root : ".", rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s (run from the repository root or set GOV_ROOT)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_somabrain_signed_bundles_verify(void **state) {
    (void)state;
    char *trust_text = slurp("tests/vectors/constitution/somabrain/trust.json");
    gov_trust_t *t = NULL;
    char eb[200];
    assert_int_equal(gov_trust_parse(trust_text, strlen(trust_text), &t, eb, sizeof eb), GOV_OK);
    free(trust_text);
    const char *names[] = {"plain-sha3-512", "plain-sha256", "unicode-floats-sha3-512",
                           "unicode-floats-sha256"};
    for (size_t i = 0; i < 4; i++) {
        char rel[200];
        snprintf(rel, sizeof rel, "tests/vectors/constitution/somabrain/bundle-%s.json", names[i]);
        char *text = slurp(rel);
        json_t *bj = json_loads(text, 0, NULL);
        assert_non_null(bj);
        /* The document travels as text; any exact-round-trip serialization
         * of the parsed value is equivalent for verification. */
        char *doc = json_dumps(json_object_get(bj, "document"),
                               JSON_COMPACT | JSON_REAL_PRECISION(17));
        json_t *sa = json_object_get(bj, "signatures");
        gov_bundle_sig_t sigs[4];
        size_t ns = json_array_size(sa);
        for (size_t k = 0; k < ns; k++) {
            json_t *s = json_array_get(sa, k);
            sigs[k] = (gov_bundle_sig_t){json_string_value(json_object_get(s, "signer_id")),
                                         json_string_value(json_object_get(s, "algorithm")),
                                         json_string_value(json_object_get(s, "signature"))};
        }
        gov_bundle_in_t in = {json_string_value(json_object_get(bj, "tenant")), doc, strlen(doc),
                              json_string_value(json_object_get(bj, "canonicalization")),
                              json_string_value(json_object_get(bj, "hash_alg")),
                              json_string_value(json_object_get(bj, "checksum")), sigs, ns};
        gov_verdict_t v;
        assert_int_equal(gov_constitution_verify(&in, t, NULL, &v), GOV_OK);
        if (v.outcome != GOV_VERIFY_ACCEPT)
            fail_msg("%s: %s: %s", names[i], gov_reason_code(v.reason), v.detail);
        assert_int_equal(v.nsigners, 2);
        gov_verdict_clear(&v);
        gov_free(doc);
        json_decref(bj);
        free(text);
    }
    gov_trust_free(t);
}

static void test_allocation_failures(void **state) {
    (void)state;
    gov_trust_t *t = make_trust(2);
    test_bundle_t b;
    build(&b, DOC_V("1.0.0"), "somabrain-json", "sha3-512", AB);
    for (long n = 0;; n++) {
        gov_verdict_t v;
        gov_alloc_fail_after(n);
        gov_err_t e = gov_constitution_verify(&b.in, t, NULL, &v);
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        gov_verdict_clear(&v);
        if (failures == 0) {
            assert_int_equal(e, GOV_OK);
            assert_int_equal(v.outcome, GOV_VERIFY_ACCEPT);
            break;
        }
        /* either a clean error or a verdict; never a wrong acceptance */
        assert_true(e == GOV_ERR_NOMEM || e == GOV_OK);
        if (e == GOV_ERR_NOMEM)
            assert_int_equal(v.outcome, GOV_VERIFY_REJECT);
        assert_true(n < 10000);
    }
    gov_trust_free(t);
}

/* Sweeps every allocation failure over a bundle that must be refused, and
 * asserts no failure ever turns it into an acceptance (or a replay). */
static void sweep_reject(const gov_bundle_in_t *in, const gov_trust_t *t,
                         const gov_constitution_state_t *st, gov_reason_t want) {
    for (long n = 0;; n++) {
        gov_verdict_t v;
        gov_alloc_fail_after(n);
        gov_err_t e = gov_constitution_verify(in, t, st, &v);
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        gov_verify_outcome_t o = v.outcome;
        gov_reason_t r = v.reason;
        gov_verdict_clear(&v);
        assert_true(e == GOV_ERR_NOMEM || e == GOV_OK);
        assert_int_equal(o, GOV_VERIFY_REJECT);
        if (failures == 0) {
            assert_int_equal(e, GOV_OK);
            assert_int_equal(r, want);
            break;
        }
        assert_true(n < 10000);
    }
}

static void test_allocation_failures_never_accept_a_rejection(void **state) {
    (void)state;
    gov_trust_t *t = trust_of(TWO_TENANTS);
    test_bundle_t b, cur;
    /* acme's bundle replayed to globex */
    build(&b, "{\"version\":\"1.0.0\",\"tenant\":\"acme\",\"rules\":{\"max_risk_score\":0.5}}",
          "somabrain-json", "sha3-512", AB);
    b.in.tenant = "globex";
    sweep_reject(&b.in, t, NULL, GOV_REASON_TENANT_MISMATCH);
    /* a successor below the in-force threshold (3; the trust says 2) */
    const int ABC[] = {0, 1, 2, -1};
    build(&cur, "{\"version\":\"2.0.0\",\"governance\":{\"signature_threshold\":3}}", "jcs",
          "sha3-512", ABC);
    cur.in.tenant = "globex";
    gov_constitution_state_t st = {"2.0.0", cur.checksum, NULL, 0, cur.doc, strlen(cur.doc)};
    build(&b, "{\"version\":\"3.0.0\",\"rules\":{\"prohibited_actions\":[\"x\",\"y\"]}}", "jcs",
          "sha3-512", AB);
    b.in.tenant = "globex";
    sweep_reject(&b.in, t, &st, GOV_REASON_THRESHOLD_NOT_MET);
    /* unknown rules member */
    build(&b, "{\"version\":\"3.0.0\",\"rules\":{\"prohibited_actions\":[\"x\"],\"prohibited_action\":[\"y\"]}}",
          "jcs", "sha3-512", ABC);
    b.in.tenant = "globex";
    sweep_reject(&b.in, t, &st, GOV_REASON_INVALID_RULES);
    gov_trust_free(t);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8032_vectors),
        cmocka_unit_test(test_signature_decode_rejects),
        cmocka_unit_test(test_accepts_valid_bundle_both_forms),
        cmocka_unit_test(test_rejections_each_rule),
        cmocka_unit_test(test_anti_rollback_equivocation_duplicate),
        cmocka_unit_test(test_trust_parse_errors),
        cmocka_unit_test(test_somabrain_signed_bundles_verify),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_tenant_binding),
        cmocka_unit_test(test_legacy_trust_binds_named_tenant_only),
        cmocka_unit_test(test_trust_one_key_two_ids),
        cmocka_unit_test(test_trust_tenants_parse_errors),
        cmocka_unit_test(test_continuity),
        cmocka_unit_test(test_invalid_rules_refused),
        cmocka_unit_test(test_allocation_failures_never_accept_a_rejection),
    };
    return cmocka_run_group_tests_name("constitution", tests, setup, teardown);
}
