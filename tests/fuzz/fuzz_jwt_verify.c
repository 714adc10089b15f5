/* fuzz_jwt_verify.c - gov_jwt_verify on untrusted tokens, with the key set
 * of one key (RFC 8037 A.1, kid "k1") and fixed options.
 *
 * The first byte picks what the rest is:
 *   'S'   header text, a 0xFF byte, payload text: the target signs them with
 *         the A.1 key (OpenSSL, like an issuer would), so the fuzzer reaches
 *         the claim rules behind the signature;
 *   else  the token itself (signature rules, splitting, base64url).
 * For any input:
 *   - the answer is GOV_OK or GOV_ERR_VERIFY with a token_* reason and a
 *     detail, never another error, never a crash;
 *   - an accepted token has claims within their bounds, the configured iss
 *     and aud, and a time window containing now (with the leeway); issuing
 *     those claims again gives a token that verifies to the same claims;
 *   - gov_jws_verify_compact agrees with an acceptance.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "gov_alloc.h"
#include "gov_buf.h"
#include "gov_jwt.h"
#include "../vectors/jwt/rfc8037_a1.h"

#define NOW INT64_C(1700000000)

/* the A.1 signer, or the input cannot be signed: a bug of the target */
static gov_err_t sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64], char *errbuf,
                      size_t errbuf_size) {
    (void)ctx;
    CHECK(rfc8037_sign((void *)rfc8037_a1_d, msg, len, sig, errbuf, errbuf_size) == GOV_OK);
    return GOV_OK;
}

static gov_err_t lookup(void *ctx, const char *kid, gov_jwt_key_t *out) {
    (void)ctx;
    if (strcmp(kid, "k1") != 0)
        return GOV_ERR_NOT_FOUND;
    memset(out, 0, sizeof *out);
    memcpy(out->pub, rfc8037_a1_x, 32);
    out->retired_at = NOW + 3600;
    return GOV_OK;
}

static const gov_jwt_verify_opts_t opts = {
    .alg = GOV_JWT_ALG_EDDSA,
    .iss = "https://gov.example",
    .aud = "gov-edge",
    .leeway_s = 30,
    .max_lifetime_s = 86400,
    .lookup = lookup,
};

static int is_token_reason(gov_reason_t r) {
    return r >= GOV_REASON_TOKEN_TOO_LARGE && r <= GOV_REASON_TOKEN_LIFETIME_TOO_LONG;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        gov_alloc_install_jansson();
        init = 1;
    }
    gov_buf_t tok;
    gov_buf_init(&tok, 0);
    if (size > 0 && data[0] == 'S') {
        const uint8_t *sep = memchr(data + 1, 0xFF, size - 1);
        if (sep == NULL)
            return 0;
        char eb[128];
        CHECK(gov_jws_sign_compact(data + 1, (size_t)(sep - data - 1), sep + 1,
                                   size - (size_t)(sep + 1 - data), sign, NULL, &tok, eb,
                                   sizeof eb) == GOV_OK);
    } else if (size > 0) {
        gov_buf_put(&tok, data + 1, size - 1);
        CHECK(tok.err == GOV_OK);
    }
    const char *t = tok.data != NULL ? tok.data : "";
    gov_jwt_claims_t c;
    gov_reason_t why = GOV_REASON_COUNT_;
    char eb[256] = "";
    gov_err_t rc = gov_jwt_verify(t, tok.len, &opts, NOW, &c, &why, eb, sizeof eb);
    if (rc != GOV_OK) {
        CHECK(rc == GOV_ERR_VERIFY);
        CHECK(is_token_reason(why));
        CHECK(eb[0] != '\0');
        goto out;
    }
    CHECK(why == GOV_REASON_NONE);
    CHECK(strcmp(c.iss, opts.iss) == 0 && strcmp(c.aud, opts.aud) == 0);
    CHECK(c.iat <= c.nbf && c.nbf < c.exp && c.exp - c.iat <= opts.max_lifetime_s);
    CHECK(NOW < c.exp + opts.leeway_s && NOW >= c.nbf - opts.leeway_s);
    CHECK(c.jti[0] != '\0' && c.tenant[0] != '\0' && c.constitution_hash[0] != '\0');
    CHECK(gov_jws_verify_compact(t, tok.len, rfc8037_a1_x, NULL, &why, eb, sizeof eb) == GOV_OK);
    /* the claims issue again and read back the same */
    gov_buf_t again;
    gov_buf_init(&again, 0);
    CHECK(gov_jwt_sign(&c, "k1", sign, NULL, &again, eb, sizeof eb) == GOV_OK);
    gov_jwt_claims_t back;
    CHECK(gov_jwt_verify(again.data, again.len, &opts, NOW, &back, &why, eb, sizeof eb) == GOV_OK);
    CHECK(strcmp(back.sub, c.sub) == 0 && strcmp(back.scope, c.scope) == 0 &&
          strcmp(back.client_id, c.client_id) == 0 && strcmp(back.jti, c.jti) == 0 &&
          back.exp == c.exp && back.nbf == c.nbf && back.iat == c.iat);
    gov_buf_free(&again);
out:
    gov_buf_free(&tok);
    return 0;
}
