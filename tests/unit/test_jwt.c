/* test_jwt.c - gov_b64url and gov_jwt: strict base64url, EdDSA tokens issued
 * and verified, and one crafted token per verification rule.
 *
 * Known answers: RFC 4648 §10 (the base64 test vectors, in the url alphabet
 * without padding); RFC 8037 Appendix A.1 (the Ed25519 key, which is RFC 8032
 * §7.1 TEST 1) and A.4 (the compact JWS of "Example of Ed25519 signing").
 *
 * Every crafted token is signed with the A.1 key through OpenSSL (the test's
 * own signer, not gov_jwt's code), so the rule under test is the only thing
 * broken; the signing input is re-signed after a part is re-spelled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gov_alloc.h"
#include "gov_b64url.h"
#include "gov_buf.h"
#include "gov_canon.h"
#include "gov_jwt.h"
#include "gov_reason.h"
#include "../vectors/jwt/rfc8037_a1.h"

static const uint8_t *const a1_d = rfc8037_a1_d;
static const uint8_t *const a1_x = rfc8037_a1_x;
/* RFC 8032 §7.1 TEST 2's secret key: a second, unrelated signer */
static const uint8_t other_d[32] = {
    0x4c, 0xcd, 0x08, 0x9b, 0x28, 0xff, 0x96, 0xda, 0x9d, 0xb6, 0xc3, 0x46, 0xec, 0x11, 0x4e, 0x0f,
    0x5b, 0x8a, 0x31, 0x9f, 0x35, 0xab, 0xa6, 0x24, 0xda, 0x8c, 0xf6, 0xed, 0x4f, 0xb8, 0xa6, 0xfb};
/* RFC 8037 A.4 */
static const char a4_token[] =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
/* The A.1 public key as the PEM an attacker would use as an HMAC secret. */
static const char a1_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                             "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
                             "-----END PUBLIC KEY-----\n";

/* fill_claims() below, issued by an independent implementation: Python's
 * json.dumps(sort_keys=True, separators=(",", ":")) and the cryptography
 * package's Ed25519 with the A.1 key (tests/vectors/jwt/independent_token.py). */
static const char python_token[] =
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0."
    "eyJhdWQiOiJnb3YtZWRnZSIsImNsaWVudF9pZCI6ImNsaWVudC0xIiwiY29uc3RpdHV0aW9uX2hhc2giOiI5Zjg2ZDA4"
    "MTg4NGM3ZDY1OWEyZmVhYTBjNTVhZDAxNWEzYmY0ZjFiMmIwYjgyMmNkMTVkNmMxNWIwZjAwYTA4IiwiZXhwIjoxNzAw"
    "MDAwNjAwLCJpYXQiOjE3MDAwMDAwMDAsImlzcyI6Imh0dHBzOi8vZ292LmV4YW1wbGUiLCJqdGkiOiIwMThjMmI2ZS00"
    "ZDAwLTdhYmMtOGRlZi0wMTIzNDU2Nzg5YWIiLCJuYmYiOjE3MDAwMDAwMDAsInNjb3BlIjoicG9saWN5OmV2YWx1YXRl"
    "IGRlY2lzaW9uczpyZWFkIiwic3ViIjoiY2xpZW50LTEiLCJ0ZW5hbnQiOiJkZW1vIn0."
    "_C0OQxHCX-mBxn-e6D15JxipJ7n5xYAARCfwGrDScLrzJf5340CRHyEO7qwORApgFHbin2pUHqG5ivTyRUjSBA";

#define NOW INT64_C(1700000000)
#define KID "k1"

/* --- the test's own signer and key set --------------------------------------- */

#define openssl_sign rfc8037_sign

static gov_err_t failing_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64],
                              char *errbuf, size_t errbuf_size) {
    (void)ctx, (void)msg, (void)len, (void)sig;
    snprintf(errbuf, errbuf_size, "the backend is down");
    return GOV_ERR_UNAVAILABLE;
}

typedef struct keyset {
    gov_jwt_key_t k1;
    gov_err_t answer; /* what a lookup of an unknown kid answers */
    int calls;
} keyset_t;

static gov_err_t lookup(void *ctx, const char *kid, gov_jwt_key_t *out) {
    keyset_t *ks = ctx;
    ks->calls++;
    if (strcmp(kid, KID) != 0)
        return ks->answer;
    *out = ks->k1;
    return GOV_OK;
}

static keyset_t keys;
static gov_jwt_verify_opts_t opts;

static int setup(void **state) {
    (void)state;
    memset(&keys, 0, sizeof keys);
    memcpy(keys.k1.pub, a1_x, 32);
    keys.answer = GOV_ERR_NOT_FOUND;
    memset(&opts, 0, sizeof opts);
    opts.alg = GOV_JWT_ALG_EDDSA;
    opts.iss = "https://gov.example";
    opts.aud = "gov-edge";
    opts.leeway_s = 30;
    opts.lookup = lookup;
    opts.lookup_ctx = &keys;
    return 0;
}

static void fill_claims(gov_jwt_claims_t *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->iss, "https://gov.example");
    strcpy(c->sub, "client-1");
    strcpy(c->aud, "gov-edge");
    c->iat = NOW;
    c->nbf = NOW;
    c->exp = NOW + 600;
    strcpy(c->jti, "018c2b6e-4d00-7abc-8def-0123456789ab");
    strcpy(c->tenant, "demo");
    strcpy(c->scope, "policy:evaluate decisions:read");
    strcpy(c->constitution_hash,
           "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    strcpy(c->client_id, "client-1");
}

/* The claims of fill_claims as a JSON object (new reference), to be broken. */
static json_t *claims_json(void) {
    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s}", "iss", "https://gov.example",
                     "sub", "client-1", "aud", "gov-edge", "exp", (json_int_t)(NOW + 600), "nbf",
                     (json_int_t)NOW, "iat", (json_int_t)NOW, "jti", "j-1", "tenant", "demo",
                     "scope", "a b", "constitution_hash",
                     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
}

/* --- crafting ----------------------------------------------------------------- */

/* Appends base64url(sig over signing_input) to the ASCII header.payload. */
static char *sign_ascii(const char *signing_input, const uint8_t *d) {
    uint8_t sig[64];
    char eb[128];
    assert_int_equal(openssl_sign((void *)d, (const uint8_t *)signing_input,
                                  strlen(signing_input), sig, eb, sizeof eb),
                     GOV_OK);
    gov_buf_t b;
    gov_buf_init(&b, 0);
    gov_buf_puts(&b, signing_input);
    gov_buf_putc(&b, '.');
    gov_b64url_put(&b, sig, sizeof sig);
    char *out;
    assert_int_equal(gov_buf_finish(&b, &out, NULL), GOV_OK);
    return out;
}

static char *b64(const char *s) {
    gov_buf_t b;
    gov_buf_init(&b, 0);
    gov_b64url_put(&b, s, strlen(s));
    char *out;
    assert_int_equal(gov_buf_finish(&b, &out, NULL), GOV_OK);
    return out;
}

/* A token of exactly these header and payload texts, signed with d. */
static char *craft_with(const char *header, const char *payload, const uint8_t *d) {
    char *h = b64(header), *p = b64(payload);
    char *input = malloc(strlen(h) + strlen(p) + 2);
    assert_non_null(input);
    sprintf(input, "%s.%s", h, p);
    char *t = sign_ascii(input, d);
    free(input);
    gov_free(h);
    gov_free(p);
    return t;
}

static char *craft(const char *header, const char *payload) {
    return craft_with(header, payload, a1_d);
}

static const char good_header[] = "{\"alg\":\"EdDSA\",\"kid\":\"k1\",\"typ\":\"JWT\"}";

static char *craft_json(const char *header, json_t *payload_take) {
    char *p = json_dumps(payload_take, JSON_COMPACT);
    json_decref(payload_take);
    char *t = craft(header, p);
    free(p);
    return t;
}

/* Verifies tok at now and checks the reason. */
static void expect_at(const char *tok, int64_t now, gov_reason_t want) {
    gov_jwt_claims_t c;
    gov_reason_t why = GOV_REASON_COUNT_;
    char eb[256] = "";
    gov_err_t rc = gov_jwt_verify(tok, strlen(tok), &opts, now, &c, &why, eb, sizeof eb);
    if (why != want)
        fail_msg("want %s, got %s (%s): %s", gov_reason_code(want), gov_reason_code(why),
                 gov_err_code(rc), eb);
    assert_int_equal(rc, want == GOV_REASON_NONE ? GOV_OK : GOV_ERR_VERIFY);
    if (want != GOV_REASON_NONE)
        assert_true(eb[0] != '\0');
}

static void expect(const char *tok, gov_reason_t want) {
    expect_at(tok, NOW, want);
}

static void expect_free(char *tok, gov_reason_t want) {
    expect(tok, want);
    gov_free(tok);
}

static char *issue(const gov_jwt_claims_t *c);

/* fill_claims(c), issued. */
static char *issue_default(gov_jwt_claims_t *c) {
    fill_claims(c);
    return issue(c);
}

static char *issue(const gov_jwt_claims_t *c) {
    gov_buf_t b;
    char eb[256];
    gov_buf_init(&b, 0);
    assert_int_equal(gov_jwt_sign(c, KID, openssl_sign, (void *)a1_d, &b, eb, sizeof eb),
                     GOV_OK);
    char *out;
    assert_int_equal(gov_buf_finish(&b, &out, NULL), GOV_OK);
    return out;
}

/* --- base64url ---------------------------------------------------------------- */

static void test_b64url_rfc4648(void **state) {
    (void)state;
    static const char *const vec[][2] = {{"", ""},         {"f", "Zg"},         {"fo", "Zm8"},
                                         {"foo", "Zm9v"},  {"foob", "Zm9vYg"},  {"fooba", "Zm9vYmE"},
                                         {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        char *e = b64(vec[i][0]);
        assert_string_equal(e, vec[i][1]);
        assert_int_equal(gov_b64url_encoded_len(strlen(vec[i][0])), strlen(e));
        uint8_t out[8];
        size_t n = 99;
        assert_int_equal(gov_b64url_decode(e, strlen(e), out, sizeof out, &n, NULL, 0), GOV_OK);
        assert_int_equal(n, strlen(vec[i][0]));
        assert_memory_equal(out, vec[i][0], n);
        gov_free(e);
    }
    /* the two characters that differ from standard base64 */
    const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
    gov_buf_t b;
    gov_buf_init(&b, 0);
    gov_b64url_put(&b, bytes, 3);
    assert_string_equal(b.data, "-_-_");
    gov_buf_free(&b);
}

/* A text a decoder must refuse, and with which error. */
typedef struct b64_refusal {
    const char *text;
    gov_err_t rc;
} b64_refusal_t;

typedef gov_err_t (*b64_decode_fn)(const char *, size_t, uint8_t *, size_t, size_t *, char *,
                                   size_t);

/* Each bad[i] refused by decode with its error and a detail. */
static void expect_b64_refusals(b64_decode_fn decode, const b64_refusal_t *bad, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t out[8];
        size_t len;
        char eb[128] = "";
        gov_err_t rc = decode(bad[i].text, strlen(bad[i].text), out, sizeof out, &len, eb, sizeof eb);
        if (rc != bad[i].rc)
            fail_msg("%s: want %s, got %s", bad[i].text, gov_err_str(bad[i].rc), gov_err_str(rc));
        assert_true(eb[0] != '\0');
    }
}

static void test_b64url_refusals(void **state) {
    (void)state;
    static const b64_refusal_t bad[] = {
        {"Zg==", GOV_ERR_UNSUPPORTED}, /* padding */
        {"Zm8=", GOV_ERR_UNSUPPORTED},
        {"Zh", GOV_ERR_UNSUPPORTED},   /* 'f' with a non-zero unused bit */
        {"Zm9", GOV_ERR_UNSUPPORTED},  /* "fo" with unused bits 01 */
        {"Z", GOV_ERR_PARSE},          /* 1 mod 4 */
        {"Zm9vY", GOV_ERR_PARSE},
        {"Zm+v", GOV_ERR_PARSE},       /* standard alphabet */
        {"Zm/v", GOV_ERR_PARSE},
        {"Zm9v\n", GOV_ERR_PARSE},     /* no whitespace skipped */
        {" Zg", GOV_ERR_PARSE},
        {"Z\x80", GOV_ERR_PARSE},
    };
    expect_b64_refusals(gov_b64url_decode, bad, sizeof bad / sizeof bad[0]);
    uint8_t out[8];
    size_t n;
    assert_int_equal(gov_b64url_decode("Zm9v\0", 5, out, sizeof out, &n, NULL, 0), GOV_ERR_PARSE);
    assert_int_equal(gov_b64url_decode("Zm9vYmFy", 8, out, 5, &n, NULL, 0), GOV_ERR_TOO_LARGE);
    assert_int_equal(gov_b64url_decode("Zm9vYmFy", 8, out, 6, &n, NULL, 0), GOV_OK);
}

/* Standard padded base64 (gov_b64_decode, HTTP Basic): the RFC 4648
 * section 10 vectors, '+' and '/', and every re-spelling refused - the
 * padding the length calls for, no more, no less, and zero unused bits. */
static void test_b64_standard(void **state) {
    (void)state;
    static const char *const vec[][2] = {{"", ""},           {"f", "Zg=="},         {"fo", "Zm8="},
                                         {"foo", "Zm9v"},    {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                         {"foobar", "Zm9vYmFy"}, {"\xfb\xff\xbf", "+/+/"}};
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        uint8_t out[8];
        size_t n = 99;
        assert_int_equal(gov_b64_decode(vec[i][1], strlen(vec[i][1]), out, sizeof out, &n, NULL, 0),
                         GOV_OK);
        assert_int_equal(n, strlen(vec[i][0]));
        assert_memory_equal(out, vec[i][0], n);
    }
    static const b64_refusal_t bad[] = {
        {"Zg", GOV_ERR_PARSE},          /* padding missing */
        {"Zm8", GOV_ERR_PARSE},
        {"Zg=", GOV_ERR_PARSE},
        {"Zh==", GOV_ERR_UNSUPPORTED},  /* 'f' with a non-zero unused bit */
        {"Zm9=", GOV_ERR_UNSUPPORTED},  /* "fo" with unused bits 01 */
        {"Z===", GOV_ERR_UNSUPPORTED},  /* one '=' more than a length calls for */
        {"====", GOV_ERR_UNSUPPORTED},
        {"Zg==Zg==", GOV_ERR_UNSUPPORTED}, /* padding inside */
        {"Zm-v", GOV_ERR_PARSE},        /* the URL alphabet */
        {"Zm_v", GOV_ERR_PARSE},
        {"Zm9v\n", GOV_ERR_PARSE},
        {"Zm 9", GOV_ERR_PARSE},
    };
    expect_b64_refusals(gov_b64_decode, bad, sizeof bad / sizeof bad[0]);
    uint8_t out[8];
    size_t n;
    assert_int_equal(gov_b64_decode("Zm9vYmFy", 8, out, 5, &n, NULL, 0), GOV_ERR_TOO_LARGE);
    assert_int_equal(gov_b64_decode(NULL, 4, out, 5, &n, NULL, 0), GOV_ERR_INVALID_ARG);
}

/* One spelling per byte string: every 2- and 3-character text over the
 * alphabet either decodes and re-encodes to itself or is refused as
 * non-canonical; and exactly 1 in 16 (2 chars) and 1 in 4 (3 chars) is taken,
 * so each of the 256 / 65536 byte strings has exactly one spelling. */
static void test_b64url_one_spelling(void **state) {
    (void)state;
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (int len = 2; len <= 3; len++) {
        size_t taken = 0, total = len == 2 ? 64 * 64 : 64 * 64 * 64;
        for (size_t v = 0; v < total; v++) {
            char t[4] = {al[v % 64], al[(v / 64) % 64], al[(v / 4096) % 64], 0};
            uint8_t out[3];
            size_t n;
            gov_err_t rc = gov_b64url_decode(t, (size_t)len, out, sizeof out, &n, NULL, 0);
            if (rc == GOV_ERR_UNSUPPORTED)
                continue;
            assert_int_equal(rc, GOV_OK);
            assert_int_equal(n, (size_t)len - 1);
            gov_buf_t b;
            gov_buf_init(&b, 0);
            gov_b64url_put(&b, out, n);
            assert_memory_equal(b.data, t, (size_t)len);
            gov_buf_free(&b);
            taken++;
        }
        assert_int_equal(taken, len == 2 ? 256 : 65536);
    }
}

/* --- RFC 8037 ----------------------------------------------------------------- */

static void test_rfc8037_a4(void **state) {
    (void)state;
    gov_buf_t payload;
    gov_buf_init(&payload, 0);
    gov_reason_t why;
    char eb[256];
    assert_int_equal(gov_jws_verify_compact(a4_token, strlen(a4_token), a1_x, &payload, &why, eb,
                                            sizeof eb),
                     GOV_OK);
    assert_int_equal(why, GOV_REASON_NONE);
    assert_int_equal(payload.len, strlen("Example of Ed25519 signing"));
    assert_memory_equal(payload.data, "Example of Ed25519 signing", payload.len);
    gov_buf_free(&payload);

    /* Ed25519 is deterministic: the same input and key give the same token */
    gov_buf_t tok;
    gov_buf_init(&tok, 0);
    const char hdr[] = "{\"alg\":\"EdDSA\"}";
    const char msg[] = "Example of Ed25519 signing";
    assert_int_equal(gov_jws_sign_compact(hdr, strlen(hdr), msg, strlen(msg), openssl_sign,
                                          (void *)a1_d, &tok, eb, sizeof eb),
                     GOV_OK);
    assert_string_equal(tok.data, a4_token);
    gov_buf_free(&tok);

    /* under another key it does not verify */
    uint8_t other_x[32];
    memcpy(other_x, a1_x, 32);
    other_x[0] ^= 1;
    assert_int_equal(gov_jws_verify_compact(a4_token, strlen(a4_token), other_x, NULL, &why, eb,
                                            sizeof eb),
                     GOV_ERR_VERIFY);
    assert_int_equal(why, GOV_REASON_TOKEN_BAD_SIGNATURE);
    /* as an access token it names no kid */
    expect(a4_token, GOV_REASON_TOKEN_UNKNOWN_KID);
}

/* --- issue and verify ----------------------------------------------------------- */

static void assert_claims_equal(const gov_jwt_claims_t *a, const gov_jwt_claims_t *b) {
    assert_string_equal(a->iss, b->iss);
    assert_string_equal(a->sub, b->sub);
    assert_string_equal(a->aud, b->aud);
    assert_int_equal(a->exp, b->exp);
    assert_int_equal(a->nbf, b->nbf);
    assert_int_equal(a->iat, b->iat);
    assert_string_equal(a->jti, b->jti);
    assert_string_equal(a->tenant, b->tenant);
    assert_string_equal(a->scope, b->scope);
    assert_string_equal(a->constitution_hash, b->constitution_hash);
    assert_string_equal(a->client_id, b->client_id);
    assert_string_equal(a->parent_jti, b->parent_jti);
}

static void test_round_trip(void **state) {
    (void)state;
    gov_jwt_claims_t c, back;
    fill_claims(&c);
    /* a subject that needs escaping and is not ASCII */
    strcpy(c.sub, "cli\"ent\\\x01-\xc3\xa9");
    char *tok = issue(&c);
    gov_reason_t why;
    char eb[256];
    assert_int_equal(gov_jwt_verify(tok, strlen(tok), &opts, NOW, &back, &why, eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(why, GOV_REASON_NONE);
    assert_claims_equal(&c, &back);
    assert_int_equal(keys.calls, 1);

    /* deterministic, and the header is exactly the documented one */
    char *again = issue(&c);
    assert_string_equal(tok, again);
    gov_free(again);
    char *h = b64(good_header);
    assert_memory_equal(tok, h, strlen(h));
    assert_int_equal(tok[strlen(h)], '.');

    /* the payload is its own RFC 8785 form */
    gov_buf_t payload;
    gov_buf_init(&payload, 0);
    assert_int_equal(gov_jws_verify_compact(tok, strlen(tok), a1_x, &payload, &why, eb, sizeof eb),
                     GOV_OK);
    json_t *doc;
    assert_int_equal(gov_canon_parse(payload.data, payload.len, &doc, NULL, NULL, 0), GOV_OK);
    char *jcs;
    size_t jcs_len;
    assert_int_equal(gov_canon_serialize(doc, GOV_CANON_JCS, &jcs, &jcs_len, NULL, NULL, 0),
                     GOV_OK);
    assert_int_equal(jcs_len, payload.len);
    assert_memory_equal(jcs, payload.data, jcs_len);
    assert_non_null(json_object_get(doc, "client_id"));
    gov_free(jcs);
    json_decref(doc);
    gov_buf_free(&payload);
    gov_free(h);
    gov_free(tok);

    /* client_id is optional and then absent; the empty scope is written */
    c.client_id[0] = '\0';
    c.scope[0] = '\0';
    tok = issue(&c);
    assert_int_equal(gov_jwt_verify(tok, strlen(tok), &opts, NOW, &back, &why, eb, sizeof eb),
                     GOV_OK);
    assert_claims_equal(&c, &back);
    assert_string_equal(back.parent_jti, "");
    gov_free(tok);

    /* parent_jti (a session's bearer) is signed in its RFC 8785 place and read back */
    strcpy(c.parent_jti, "01890a5d-ac96-774b-bcce-b302099a8057");
    tok = issue(&c);
    assert_int_equal(gov_jwt_verify(tok, strlen(tok), &opts, NOW, &back, &why, eb, sizeof eb),
                     GOV_OK);
    assert_string_equal(back.parent_jti, c.parent_jti);
    assert_claims_equal(&c, &back);
    gov_free(tok);
}

/* Our bytes are the independent implementation's bytes, both ways. */
static void test_independent_known_answer(void **state) {
    (void)state;
    gov_jwt_claims_t c, back;
    fill_claims(&c);
    char *tok = issue(&c);
    assert_string_equal(tok, python_token);
    gov_free(tok);
    gov_reason_t why;
    char eb[256];
    assert_int_equal(gov_jwt_verify(python_token, strlen(python_token), &opts, NOW, &back, &why,
                                    eb, sizeof eb),
                     GOV_OK);
    assert_claims_equal(&c, &back);
}

static void test_sign_refusals(void **state) {
    (void)state;
    gov_jwt_claims_t c;
    gov_buf_t b;
    char eb[256];
    gov_buf_init(&b, 0);
    gov_buf_puts(&b, "prefix:");
    fill_claims(&c);
    c.jti[0] = '\0';
    assert_int_equal(gov_jwt_sign(&c, KID, openssl_sign, (void *)a1_d, &b, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_non_null(strstr(eb, "jti"));
    fill_claims(&c);
    c.exp = c.nbf;
    assert_int_equal(gov_jwt_sign(&c, KID, openssl_sign, (void *)a1_d, &b, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_non_null(strstr(eb, "exp"));
    fill_claims(&c);
    strcpy(c.scope, "a  b");
    assert_int_equal(gov_jwt_sign(&c, KID, openssl_sign, (void *)a1_d, &b, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    fill_claims(&c);
    strcpy(c.sub, "\xff");
    assert_int_equal(gov_jwt_sign(&c, KID, openssl_sign, (void *)a1_d, &b, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    fill_claims(&c);
    assert_int_equal(gov_jwt_sign(&c, "k 1", openssl_sign, (void *)a1_d, &b, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_jwt_sign(&c, "", openssl_sign, (void *)a1_d, &b, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    /* the signer's error comes back, and nothing of the token is left */
    assert_int_equal(gov_jwt_sign(&c, KID, failing_sign, NULL, &b, eb, sizeof eb),
                     GOV_ERR_UNAVAILABLE);
    assert_string_equal(eb, "the backend is down");
    assert_string_equal(b.data, "prefix:");
    assert_int_equal(b.err, GOV_OK);
    /* a buffer limit too small for the token */
    gov_buf_t small;
    gov_buf_init(&small, 64);
    assert_int_equal(gov_jwt_sign(&c, KID, openssl_sign, (void *)a1_d, &small, eb, sizeof eb),
                     GOV_ERR_TOO_LARGE);
    assert_int_equal(small.len, 0);
    gov_buf_free(&small);
    gov_buf_free(&b);
}

/* --- one crafted token per rule --------------------------------------------------- */

static void test_reject_alg(void **state) {
    (void)state;
    json_t *p = claims_json();
    char *pt = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    /* alg none, unsecured: no signature at all */
    char *h = b64("{\"alg\":\"none\",\"kid\":\"k1\",\"typ\":\"JWT\"}"), *pp = b64(pt);
    char none_tok[4096];
    snprintf(none_tok, sizeof none_tok, "%s.%s.", h, pp);
    expect(none_tok, GOV_REASON_TOKEN_ALG_NOT_ALLOWED);
    gov_free(h);

    /* HS256 with the public key's PEM as the HMAC secret */
    h = b64("{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"JWT\"}");
    char input[4096];
    snprintf(input, sizeof input, "%s.%s", h, pp);
    unsigned char mac[32];
    unsigned int maclen = 0;
    assert_non_null(HMAC(EVP_sha256(), a1_pem, (int)strlen(a1_pem), (const unsigned char *)input,
                         strlen(input), mac, &maclen));
    assert_int_equal(maclen, 32);
    gov_buf_t b;
    gov_buf_init(&b, 0);
    gov_buf_puts(&b, input);
    gov_buf_putc(&b, '.');
    gov_b64url_put(&b, mac, maclen);
    expect(b.data, GOV_REASON_TOKEN_ALG_NOT_ALLOWED);
    /* ... and with the raw public key as the secret */
    assert_non_null(HMAC(EVP_sha256(), a1_x, 32, (const unsigned char *)input, strlen(input), mac,
                         &maclen));
    gov_buf_reset(&b);
    gov_buf_puts(&b, input);
    gov_buf_putc(&b, '.');
    gov_b64url_put(&b, mac, maclen);
    expect(b.data, GOV_REASON_TOKEN_ALG_NOT_ALLOWED);
    gov_buf_free(&b);
    gov_free(h);
    gov_free(pp);

    /* any alg but the pinned one, even with a valid Ed25519 signature */
    static const char *const headers[] = {
        "{\"alg\":\"eddsa\",\"kid\":\"k1\"}", "{\"alg\":\"ES256\",\"kid\":\"k1\"}",
        "{\"alg\":\"RS256\",\"kid\":\"k1\"}", "{\"alg\":\"Ed25519\",\"kid\":\"k1\"}",
        "{\"kid\":\"k1\"}",                   "{\"alg\":null,\"kid\":\"k1\"}",
        "{\"alg\":[\"EdDSA\"],\"kid\":\"k1\"}", "{\"alg\":\"EdDSA\\u0000\",\"kid\":\"k1\"}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
        expect_free(craft(headers[i], pt), GOV_REASON_TOKEN_ALG_NOT_ALLOWED);
    free(pt);
}

static void test_reject_header(void **state) {
    (void)state;
    json_t *p = claims_json();
    char *pt = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    expect_free(craft(good_header, pt), GOV_REASON_NONE);
    expect_free(craft("{\"alg\":\"EdDSA\",\"kid\":\"k1\"}", pt), GOV_REASON_NONE); /* typ optional */
    /* kid: missing, unknown, not a string, empty */
    expect_free(craft("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", pt), GOV_REASON_TOKEN_UNKNOWN_KID);
    expect_free(craft("{\"alg\":\"EdDSA\",\"kid\":\"k2\"}", pt), GOV_REASON_TOKEN_UNKNOWN_KID);
    expect_free(craft("{\"alg\":\"EdDSA\",\"kid\":1}", pt), GOV_REASON_TOKEN_UNKNOWN_KID);
    expect_free(craft("{\"alg\":\"EdDSA\",\"kid\":\"\"}", pt), GOV_REASON_TOKEN_UNKNOWN_KID);
    expect_free(craft("{\"alg\":\"EdDSA\",\"kid\":\"k1\\u0000x\"}", pt),
                GOV_REASON_TOKEN_UNKNOWN_KID);
    /* crit, whatever it lists, even with alg none */
    expect_free(craft("{\"alg\":\"EdDSA\",\"kid\":\"k1\",\"crit\":[\"exp\"],\"exp\":1}", pt),
                GOV_REASON_TOKEN_CRIT_HEADER);
    expect_free(craft("{\"alg\":\"none\",\"crit\":[]}", pt), GOV_REASON_TOKEN_CRIT_HEADER);
    /* members not taken */
    expect_free(craft("{\"alg\":\"EdDSA\",\"kid\":\"k1\",\"jku\":\"https://evil\"}", pt),
                GOV_REASON_TOKEN_HEADER_INVALID);
    expect_free(craft("{\"alg\":\"EdDSA\",\"kid\":\"k1\",\"b64\":false}", pt),
                GOV_REASON_TOKEN_HEADER_INVALID);
    expect_free(craft("{\"alg\":\"EdDSA\",\"kid\":\"k1\",\"typ\":\"at+jwt\"}", pt),
                GOV_REASON_TOKEN_HEADER_INVALID);
    /* nested JWT announced in the header */
    expect_free(craft("{\"alg\":\"EdDSA\",\"kid\":\"k1\",\"cty\":\"JWT\"}", pt),
                GOV_REASON_TOKEN_UNSUPPORTED_SERIALIZATION);
    /* duplicates, malformed and non-object headers */
    expect_free(craft("{\"alg\":\"EdDSA\",\"alg\":\"EdDSA\",\"kid\":\"k1\"}", pt),
                GOV_REASON_TOKEN_DUPLICATE_CLAIM);
    expect_free(craft("{\"alg\":\"EdDSA\",\"kid\":\"k1\"", pt), GOV_REASON_TOKEN_MALFORMED);
    expect_free(craft("[\"EdDSA\"]", pt), GOV_REASON_TOKEN_MALFORMED);
    free(pt);
}

static void test_reject_keys(void **state) {
    (void)state;
    gov_jwt_claims_t c;
    char *tok = issue_default(&c);
    keys.k1.retired = 1;
    expect(tok, GOV_REASON_TOKEN_KEY_RETIRED);
    keys.k1.retired = 0;
    keys.k1.retired_at = NOW;
    expect(tok, GOV_REASON_TOKEN_KEY_RETIRED);
    keys.k1.retired_at = NOW + 1;
    expect(tok, GOV_REASON_NONE);
    /* issued before its key was active (beyond the leeway) */
    keys.k1.active_from = NOW + 31;
    expect(tok, GOV_REASON_TOKEN_KEY_NOT_ACTIVE);
    keys.k1.active_from = NOW + 30;
    expect(tok, GOV_REASON_NONE);
    keys.k1.active_from = 0;
    /* a lookup answering nonsense times is the caller's bug, not an acceptance */
    keys.k1.active_from = INT64_MIN;
    gov_reason_t why0;
    char eb0[256];
    assert_int_equal(gov_jwt_verify(tok, strlen(tok), &opts, NOW, NULL, &why0, eb0, sizeof eb0),
                     GOV_ERR_INVALID_ARG);
    keys.k1.active_from = 0;
    keys.k1.retired_at = -1;
    assert_int_equal(gov_jwt_verify(tok, strlen(tok), &opts, NOW, NULL, &why0, eb0, sizeof eb0),
                     GOV_ERR_INVALID_ARG);
    keys.k1.retired_at = 0;
    /* signed by another key */
    json_t *p = claims_json();
    char *pt = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    expect_free(craft_with(good_header, pt, other_d), GOV_REASON_TOKEN_BAD_SIGNATURE);
    free(pt);
    /* a lookup that cannot answer fails closed with its own error */
    keys.answer = GOV_ERR_UNAVAILABLE;
    gov_reason_t why;
    char eb[256];
    char *k2 = craft("{\"alg\":\"EdDSA\",\"kid\":\"k2\"}", "{}");
    assert_int_equal(gov_jwt_verify(k2, strlen(k2), &opts, NOW, NULL, &why, eb, sizeof eb),
                     GOV_ERR_UNAVAILABLE);
    gov_free(k2);
    gov_free(tok);
}

static void test_reject_size(void **state) {
    (void)state;
    gov_jwt_claims_t c;
    char *tok = issue_default(&c);
    size_t n = strlen(tok);
    opts.max_token_bytes = n;
    expect(tok, GOV_REASON_NONE);
    opts.max_token_bytes = n - 1;
    expect(tok, GOV_REASON_TOKEN_TOO_LARGE);
    assert_int_equal(keys.calls, 1); /* refused before any key was looked up */
    opts.max_token_bytes = 0;
    gov_free(tok);
    /* beyond the default 8 KiB through an (ignored) extra claim */
    json_t *p = claims_json();
    char *pad = malloc(8193);
    assert_non_null(pad);
    memset(pad, 'x', 8192);
    pad[8192] = '\0';
    json_object_set_new(p, "pad", json_string(pad));
    free(pad);
    expect_free(craft_json(good_header, p), GOV_REASON_TOKEN_TOO_LARGE);
    /* an unknown claim of modest size is ignored */
    p = claims_json();
    json_object_set_new(p, "x-extra", json_string("ignored"));
    expect_free(craft_json(good_header, p), GOV_REASON_NONE);
}

static void test_reject_times(void **state) {
    (void)state;
    gov_jwt_claims_t c;
    fill_claims(&c);
    c.nbf = NOW + 100;
    c.exp = NOW + 700;
    char *tok = issue(&c);
    /* exp with a 30 s leeway: valid through exp + 29, expired from exp + 30 */
    expect_at(tok, c.exp + 29, GOV_REASON_NONE);
    expect_at(tok, c.exp + 30, GOV_REASON_TOKEN_EXPIRED);
    /* nbf: valid from nbf - 30, not before */
    expect_at(tok, c.nbf - 30, GOV_REASON_NONE);
    expect_at(tok, c.nbf - 31, GOV_REASON_TOKEN_NOT_YET_VALID);
    /* without leeway the edges are exp itself and nbf itself */
    opts.leeway_s = 0;
    expect_at(tok, c.exp - 1, GOV_REASON_NONE);
    expect_at(tok, c.exp, GOV_REASON_TOKEN_EXPIRED);
    expect_at(tok, c.nbf, GOV_REASON_NONE);
    expect_at(tok, c.nbf - 1, GOV_REASON_TOKEN_NOT_YET_VALID);
    /* the lifetime bound: exp - iat = 700 */
    opts.max_lifetime_s = 700;
    expect_at(tok, c.nbf, GOV_REASON_NONE);
    opts.max_lifetime_s = 699;
    expect_at(tok, c.nbf, GOV_REASON_TOKEN_LIFETIME_TOO_LONG);
    gov_free(tok);
    /* iat in the future: nbf >= iat holds, so nbf alone cannot pass it */
    json_t *p = claims_json();
    json_object_set_new(p, "iat", json_integer(NOW + 100));
    json_object_set_new(p, "nbf", json_integer(NOW + 100));
    opts.leeway_s = 30;
    expect_free(craft_json(good_header, p), GOV_REASON_TOKEN_NOT_YET_VALID);
}

static void test_reject_iss_aud(void **state) {
    (void)state;
    json_t *p = claims_json();
    json_object_set_new(p, "iss", json_string("https://evil.example"));
    expect_free(craft_json(good_header, p), GOV_REASON_TOKEN_WRONG_ISSUER);
    p = claims_json();
    json_object_set_new(p, "iss", json_string("https://gov.example/"));
    expect_free(craft_json(good_header, p), GOV_REASON_TOKEN_WRONG_ISSUER);
    p = claims_json();
    json_object_set_new(p, "aud", json_string("other-service"));
    expect_free(craft_json(good_header, p), GOV_REASON_TOKEN_WRONG_AUDIENCE);
    /* an array must contain the audience */
    p = claims_json();
    json_object_set_new(p, "aud", json_pack("[s,s]", "other", "gov-edge"));
    char *tok = craft_json(good_header, p);
    gov_jwt_claims_t c;
    gov_reason_t why;
    char eb[256];
    assert_int_equal(gov_jwt_verify(tok, strlen(tok), &opts, NOW, &c, &why, eb, sizeof eb),
                     GOV_OK);
    assert_string_equal(c.aud, "gov-edge");
    gov_free(tok);
    p = claims_json();
    json_object_set_new(p, "aud", json_pack("[s,s]", "other", "gov-edge-2"));
    expect_free(craft_json(good_header, p), GOV_REASON_TOKEN_WRONG_AUDIENCE);
    p = claims_json();
    json_object_set_new(p, "aud", json_array());
    expect_free(craft_json(good_header, p), GOV_REASON_TOKEN_INVALID_CLAIM);
    p = claims_json();
    json_object_set_new(p, "aud", json_pack("[s,i]", "gov-edge", 1));
    expect_free(craft_json(good_header, p), GOV_REASON_TOKEN_INVALID_CLAIM);
}

static void test_reject_tampered(void **state) {
    (void)state;
    gov_jwt_claims_t c;
    char *tok = issue_default(&c);
    char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
    /* the payload of another tenant under the original signature */
    strcpy(c.tenant, "evil");
    char *other = issue(&c);
    char *odot1 = strchr(other, '.'), *odot2 = strchr(odot1 + 1, '.');
    gov_buf_t b;
    gov_buf_init(&b, 0);
    gov_buf_put(&b, tok, (size_t)(dot1 - tok));
    gov_buf_put(&b, odot1, (size_t)(odot2 - odot1));
    gov_buf_puts(&b, dot2);
    expect(b.data, GOV_REASON_TOKEN_BAD_SIGNATURE);
    gov_buf_free(&b);
    /* one bit of the signature */
    char *flip = gov_strdup(tok);
    flip[(dot2 - tok) + 5] = flip[(dot2 - tok) + 5] == 'A' ? 'B' : 'A';
    expect(flip, GOV_REASON_TOKEN_BAD_SIGNATURE);
    gov_free(flip);
    gov_free(other);
    gov_free(tok);
}

/* Re-spells the last character of s[0..n) (n % 4 of 2 or 3) with a non-zero
 * unused bit: the same bytes for a lax decoder. */
static void nudge_last(char *s, size_t n) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert_true(n % 4 == 2 || n % 4 == 3);
    size_t v = (size_t)(strchr(al, s[n - 1]) - al);
    s[n - 1] = al[v ^ 1];
}

static void test_reject_noncanonical(void **state) {
    (void)state;
    /* header and payload texts whose encodings end in a partial group */
    const char *header = "{\"alg\":\"EdDSA\",\"kid\":\"k1\"}"; /* 26 bytes: 35 chars */
    json_t *p = claims_json();
    char *pt = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    while (strlen(pt) % 3 == 0) { /* pad the JSON with a space until it does */
        size_t n = strlen(pt);
        pt = realloc(pt, n + 2);
        memmove(pt + 1, pt, n + 1);
        pt[0] = ' ';
    }
    char *good = craft(header, pt);
    expect(good, GOV_REASON_NONE);
    char *d1 = strchr(good, '.'), *d2 = strchr(d1 + 1, '.');
    size_t hl = (size_t)(d1 - good), pl = (size_t)(d2 - d1 - 1), sl = strlen(d2 + 1);
    for (int part = 0; part < 3; part++) {
        /* non-zero unused bits, re-signed when the signing input changed */
        char *t = gov_strdup(good);
        char *e1 = t + hl, *e2 = t + hl + 1 + pl;
        if (part == 0)
            nudge_last(t, hl);
        else if (part == 1)
            nudge_last(e1 + 1, pl);
        else
            nudge_last(e2 + 1, sl);
        if (part < 2) {
            *e2 = '\0';
            char *re = sign_ascii(t, a1_d);
            gov_free(t);
            t = re;
        }
        expect_free(t, GOV_REASON_TOKEN_NONCANONICAL);
        /* '=' padding after the part */
        gov_buf_t b;
        gov_buf_init(&b, 0);
        if (part < 2) {
            gov_buf_put(&b, good, part == 0 ? hl : hl + 1 + pl);
            gov_buf_puts(&b, "=");
            gov_buf_put(&b, part == 0 ? d1 : d2, part == 0 ? (size_t)(d2 - d1) : 0);
            char *input;
            assert_int_equal(gov_buf_finish(&b, &input, NULL), GOV_OK);
            expect_free(sign_ascii(input, a1_d), GOV_REASON_TOKEN_NONCANONICAL);
            gov_free(input);
        } else {
            gov_buf_puts(&b, good);
            gov_buf_puts(&b, "==");
            expect(b.data, GOV_REASON_TOKEN_NONCANONICAL);
            gov_buf_free(&b);
        }
    }
    /* characters of the standard alphabet are not base64url at all */
    char *t = gov_strdup(good);
    t[hl + 3] = '+';
    expect_free(t, GOV_REASON_TOKEN_MALFORMED);
    gov_free(good);
    free(pt);
}

static void test_reject_serializations(void **state) {
    (void)state;
    gov_jwt_claims_t c;
    char *tok = issue_default(&c);
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    /* the flattened JWS JSON serialization of the same token */
    char json[4096];
    snprintf(json, sizeof json, "{\"protected\":\"%.*s\",\"payload\":\"%.*s\",\"signature\":\"%s\"}",
             (int)(d1 - tok), tok, (int)(d2 - d1 - 1), d1 + 1, d2 + 1);
    expect(json, GOV_REASON_TOKEN_UNSUPPORTED_SERIALIZATION);
    /* a nested JWT: the payload is itself a compact JWS */
    expect_free(craft(good_header, tok), GOV_REASON_TOKEN_UNSUPPORTED_SERIALIZATION);
    /* parts: too many, too few, empty */
    char buf[4096];
    snprintf(buf, sizeof buf, "%s.", tok);
    expect(buf, GOV_REASON_TOKEN_MALFORMED);
    snprintf(buf, sizeof buf, "%.*s", (int)(d2 - tok), tok);
    expect(buf, GOV_REASON_TOKEN_MALFORMED);
    snprintf(buf, sizeof buf, "%s", d1);
    expect(buf, GOV_REASON_TOKEN_MALFORMED); /* empty header part */
    snprintf(buf, sizeof buf, "%.*s.", (int)(d2 - tok), tok);
    expect(buf, GOV_REASON_TOKEN_MALFORMED); /* empty signature */
    snprintf(buf, sizeof buf, "%.*s%s", (int)(d1 - tok) + 1, tok, d2);
    expect(buf, GOV_REASON_TOKEN_MALFORMED); /* empty payload */
    snprintf(buf, sizeof buf, "%.*sAAAA", (int)strlen(tok), tok);
    expect(buf, GOV_REASON_TOKEN_MALFORMED); /* a 67-byte signature */
    expect("", GOV_REASON_TOKEN_MALFORMED);
    expect("..", GOV_REASON_TOKEN_MALFORMED);
    gov_free(tok);
}

static void test_reject_payload(void **state) {
    (void)state;
    /* duplicates, before any claim is read */
    expect_free(craft(good_header, "{\"sub\":\"a\",\"sub\":\"b\"}"), GOV_REASON_TOKEN_DUPLICATE_CLAIM);
    /* not a JSON object */
    expect_free(craft(good_header, "[1,2]"), GOV_REASON_TOKEN_MALFORMED);
    expect_free(craft(good_header, "\"claims\""), GOV_REASON_TOKEN_MALFORMED);
    expect_free(craft(good_header, "Example of Ed25519 signing"), GOV_REASON_TOKEN_MALFORMED);
    expect_free(craft(good_header, "{\"iss\":"), GOV_REASON_TOKEN_MALFORMED);
    /* wrong types and bounds, one claim at a time */
    static const struct {
        const char *claim;
        const char *json;
    } bad[] = {
        {"exp", "\"1700000600\""}, {"exp", "1700000600.5"}, {"exp", "-1"},
        {"exp", "253402300800"},   {"nbf", "null"},         {"iat", "true"},
        {"iss", "1"},              {"sub", "\"\""},         {"jti", "[]"},
        {"tenant", "\"bad tenant\""}, {"scope", "[\"a\",\"b\"]"}, {"scope", "\" a\""},
        {"constitution_hash", "\"ABCDEF\""}, {"constitution_hash", "\"\""},
        {"client_id", "\"\""},    {"client_id", "7"},      {"sub", "\"a\\u0000b\""},
        {"parent_jti", "\"\""},   {"parent_jti", "7"},     {"parent_jti", "null"},
        {"nbf", "1699999999"}, /* before iat */
        {"exp", "1700000000"}, /* not after nbf */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *p = claims_json();
        json_t *v = json_loads(bad[i].json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        assert_non_null(v);
        json_object_set_new(p, bad[i].claim, v);
        expect_free(craft_json(good_header, p), GOV_REASON_TOKEN_INVALID_CLAIM);
    }
    static const char *const required[] = {"iss", "sub", "aud", "exp", "nbf", "iat",
                                           "jti", "tenant", "scope", "constitution_hash"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        json_t *p = claims_json();
        json_object_del(p, required[i]);
        expect_free(craft_json(good_header, p), GOV_REASON_TOKEN_INVALID_CLAIM);
    }
    /* a string one byte longer than its field */
    json_t *p = claims_json();
    char tenant[GOV_JWT_TENANT_MAX + 2];
    memset(tenant, 'a', sizeof tenant - 1);
    tenant[sizeof tenant - 1] = '\0';
    json_object_set_new(p, "tenant", json_string(tenant));
    expect_free(craft_json(good_header, p), GOV_REASON_TOKEN_INVALID_CLAIM);
}

static void test_verify_options(void **state) {
    (void)state;
    gov_jwt_claims_t c;
    char *tok = issue_default(&c);
    gov_reason_t why;
    char eb[256];
    static const char *const algs[] = {"HS256", "none", "", NULL};
    for (size_t i = 0; i < 4; i++) {
        opts.alg = algs[i];
        assert_int_equal(gov_jwt_verify(tok, strlen(tok), &opts, NOW, &c, &why, eb, sizeof eb),
                         GOV_ERR_INVALID_ARG);
    }
    opts.alg = GOV_JWT_ALG_EDDSA;
    opts.leeway_s = GOV_JWT_LEEWAY_MAX + 1;
    assert_int_equal(gov_jwt_verify(tok, strlen(tok), &opts, NOW, &c, &why, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    opts.leeway_s = 0;
    opts.aud = "";
    assert_int_equal(gov_jwt_verify(tok, strlen(tok), &opts, NOW, &c, &why, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    opts.aud = "gov-edge";
    opts.max_token_bytes = GOV_JWT_MAX_TOKEN_LIMIT + 1;
    assert_int_equal(gov_jwt_verify(tok, strlen(tok), &opts, NOW, &c, &why, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    opts.max_token_bytes = 0;
    assert_int_equal(gov_jwt_verify(tok, strlen(tok), &opts, -1, &c, &why, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_jwt_verify(tok, strlen(tok), NULL, NOW, &c, &why, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(keys.calls, 0);
    gov_free(tok);
}

static void test_constitution(void **state) {
    (void)state;
    gov_jwt_claims_t c;
    fill_claims(&c);
    char cur[GOV_JWT_HASH_MAX + 1];
    strcpy(cur, c.constitution_hash);
    const char *prev = "1111111111111111111111111111111111111111111111111111111111111111";
    gov_reason_t why;
    char eb[256];
    assert_int_equal(gov_jwt_check_constitution(&c, cur, NULL, 0, NOW, &why, eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(why, GOV_REASON_NONE);
    gov_jwt_grace_t grace[2] = {{"2222", NOW + 100}, {NULL, NOW + 100}};
    strcpy(c.constitution_hash, prev);
    assert_int_equal(gov_jwt_check_constitution(&c, cur, grace, 2, NOW, &why, eb, sizeof eb),
                     GOV_ERR_VERIFY);
    assert_int_equal(why, GOV_REASON_TOKEN_CONSTITUTION_STALE);
    grace[1].hash = prev;
    assert_int_equal(gov_jwt_check_constitution(&c, cur, grace, 2, NOW + 99, &why, eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(gov_jwt_check_constitution(&c, cur, grace, 2, NOW + 100, &why, eb, sizeof eb),
                     GOV_ERR_VERIFY);
    assert_int_equal(why, GOV_REASON_TOKEN_CONSTITUTION_STALE);
    /* no verified constitution accepts nothing, not even a grace entry's hash */
    fill_claims(&c);
    assert_int_equal(gov_jwt_check_constitution(&c, NULL, NULL, 0, NOW, &why, eb, sizeof eb),
                     GOV_ERR_VERIFY);
    assert_int_equal(why, GOV_REASON_TOKEN_CONSTITUTION_STALE);
    /* review10: the grace list used to be consulted without a current hash */
    gov_jwt_grace_t own[1] = {{c.constitution_hash, NOW + 100}};
    assert_int_equal(gov_jwt_check_constitution(&c, NULL, own, 1, NOW, &why, eb, sizeof eb),
                     GOV_ERR_VERIFY);
    assert_int_equal(why, GOV_REASON_TOKEN_CONSTITUTION_STALE);
    assert_int_equal(gov_jwt_check_constitution(&c, "ffff", own, 1, NOW, &why, eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(gov_jwt_check_constitution(&c, cur, NULL, 1, NOW, &why, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
}

/* Every allocation of issuing and verifying may fail: the answer is then
 * GOV_ERR_NOMEM (or the test signer's crypto error), never a crash, a leak
 * or a token accepted or issued by halves. */
static void test_allocation_failures(void **state) {
    (void)state;
    gov_jwt_claims_t c, back;
    fill_claims(&c);
    char *tok = issue(&c);
    int ok_sign = 0, ok_verify = 0;
    for (long n = 0; n < 200 && !(ok_sign && ok_verify); n++) {
        gov_buf_t b;
        char eb[256];
        gov_reason_t why;
        gov_buf_init(&b, 0);
        gov_alloc_fail_after(n);
        gov_err_t s = gov_jwt_sign(&c, KID, openssl_sign, (void *)a1_d, &b, eb, sizeof eb);
        gov_alloc_fail_reset();
        assert_true(s == GOV_OK || s == GOV_ERR_NOMEM);
        if (s == GOV_OK) {
            assert_string_equal(b.data, tok);
            ok_sign = 1;
        }
        gov_buf_free(&b);
        gov_alloc_fail_after(n);
        gov_err_t v = gov_jwt_verify(tok, strlen(tok), &opts, NOW, &back, &why, eb, sizeof eb);
        gov_alloc_fail_reset();
        assert_true(v == GOV_OK || v == GOV_ERR_NOMEM);
        if (v == GOV_OK) {
            assert_claims_equal(&c, &back);
            ok_verify = 1;
        } else {
            assert_int_equal(why, GOV_REASON_NOMEM);
        }
    }
    assert_true(ok_sign && ok_verify);
    gov_free(tok);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_rfc4648),
        cmocka_unit_test(test_b64url_refusals),
        cmocka_unit_test(test_b64url_one_spelling),
        cmocka_unit_test(test_b64_standard),
        cmocka_unit_test_setup(test_rfc8037_a4, setup),
        cmocka_unit_test_setup(test_round_trip, setup),
        cmocka_unit_test_setup(test_independent_known_answer, setup),
        cmocka_unit_test_setup(test_sign_refusals, setup),
        cmocka_unit_test_setup(test_reject_alg, setup),
        cmocka_unit_test_setup(test_reject_header, setup),
        cmocka_unit_test_setup(test_reject_keys, setup),
        cmocka_unit_test_setup(test_reject_size, setup),
        cmocka_unit_test_setup(test_reject_times, setup),
        cmocka_unit_test_setup(test_reject_iss_aud, setup),
        cmocka_unit_test_setup(test_reject_tampered, setup),
        cmocka_unit_test_setup(test_reject_noncanonical, setup),
        cmocka_unit_test_setup(test_reject_serializations, setup),
        cmocka_unit_test_setup(test_reject_payload, setup),
        cmocka_unit_test_setup(test_verify_options, setup),
        cmocka_unit_test_setup(test_constitution, setup),
        cmocka_unit_test_setup(test_allocation_failures, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
