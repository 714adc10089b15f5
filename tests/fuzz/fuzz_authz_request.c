/* fuzz_authz_request.c - the original request of a /v1/authz check as
 * untrusted input (http-edge/authz_request.c, pure, linked here with core):
 * what a client controls through nginx (the target, the Content-Digest, the
 * declared length) or through Envoy (the path and the body).
 *
 * Input: one mode byte (bit 0: Envoy form - the rest after the fields is
 * the body; bit 1: a Content-Digest line; bit 2: a declared
 * length line), then newline-separated fields: method, target, [digest],
 * [length], and for Envoy the body.
 * For any input:
 *   - the mapper returns GOV_OK, or GOV_ERR_INVALID_ARG with one of the four
 *     authz_* request codes (GOV_ERR_NOMEM only with nomem) - never anything
 *     else, never a crash;
 *   - on success the request parses as an evaluation request
 *     (gov_policy_request_parse), its prompt is one or two lines (the second
 *     the form-decoded query), each starting with the method, valid UTF-8
 *     without control bytes, its tenant is the caller's, and the path
 *     accepted was canonical (no "//", "%25", backslash, "." segment, ';' or
 *     %3B, segment ending in '.', %2E or %20).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../http-edge/authz_request.h"
#include "fuzz_check.h"
#include "gov_policy.h"
#include "gov_util.h"

/* The next newline-terminated field of *p (NUL-terminated in place), or NULL. */
static char *field(char **p, char *end) {
    if (*p >= end)
        return NULL;
    char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    if (nl == NULL) {
        *p = end;
        return s;
    }
    *nl = '\0';
    *p = nl + 1;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 16384)
        return 0;
    int envoy = data[0] & 1, with_digest = data[0] & 2, with_length = data[0] & 4;
    char *buf = malloc(size);
    CHECK(buf != NULL);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    char *p = buf, *end = buf + size - 1;
    authz_original_t o = {0};
    o.method = field(&p, end);
    o.uri = field(&p, end);
    if (with_digest)
        o.content_digest = field(&p, end);
    if (with_length)
        o.content_length = field(&p, end);
    if (envoy && p < end) {
        o.body = p;
        o.body_len = (size_t)(end - p);
    }
    authz_caller_t who = {.tenant = "demo", .sub = "fuzz", .jti = "fuzz-jti"};
    json_t *j = NULL;
    gov_reason_t why = GOV_REASON_NONE;
    char eb[256];
    gov_err_t err = authz_request_build(&o, &who, &j, &why, eb, sizeof eb);
    if (err == GOV_OK) {
        CHECK(j != NULL);
        char *text = json_dumps(j, JSON_COMPACT);
        CHECK(text != NULL);
        gov_policy_request_t pr;
        gov_reason_t pwhy;
        CHECK(gov_policy_request_parse(text, strlen(text), NULL, &pr, &pwhy, eb, sizeof eb) ==
              GOV_OK);
        size_t ml = strlen(o.method);
        CHECK(pr.prompt_len > ml && memcmp(pr.prompt, o.method, ml) == 0);
        CHECK(gov_utf8_valid(pr.prompt, pr.prompt_len));
        /* control-free but the one '\n' before the form-decoded line, which
         * starts with the method too */
        size_t lines = 1;
        for (size_t i = 0; i < pr.prompt_len; i++) {
            if (pr.prompt[i] == '\n') {
                lines++;
                CHECK(pr.prompt_len - i - 1 > ml && memcmp(pr.prompt + i + 1, o.method, ml) == 0);
                continue;
            }
            CHECK((unsigned char)pr.prompt[i] >= 0x20 && pr.prompt[i] != 0x7f);
        }
        CHECK(lines <= 2);
        /* the accepted path is canonical: no "//", "%25", backslash, dot segment */
        size_t q = strcspn(o.uri, "?");
        for (size_t i = 0; i < q; i++) {
            CHECK(o.uri[i] != '\\' && !(o.uri[i] == '/' && o.uri[i + 1] == '/'));
            CHECK(!(o.uri[i] == '%' && o.uri[i + 1] == '2' && o.uri[i + 2] == '5'));
            CHECK(!(o.uri[i] == '/' && o.uri[i + 1] == '.' &&
                    (o.uri[i + 2] == '/' || o.uri[i + 2] == '?' || o.uri[i + 2] == '\0')));
            /* no path parameter, no segment ending in '.' or a space (REVIEW12 M5) */
            CHECK(o.uri[i] != ';' &&
                  !(o.uri[i] == '%' && o.uri[i + 1] == '3' && (o.uri[i + 2] | 0x20) == 'b'));
            CHECK(!(o.uri[i] == '.' && (i + 1 == q || o.uri[i + 1] == '/')));
            CHECK(!(o.uri[i] == '%' && o.uri[i + 1] == '2' &&
                    (o.uri[i + 2] == '0' || (o.uri[i + 2] | 0x20) == 'e') &&
                    (i + 3 == q || o.uri[i + 3] == '/')));
        }
        CHECK(strcmp(pr.tenant, "demo") == 0);
        gov_policy_request_clear(&pr);
        free(text);
        json_decref(j);
    } else {
        CHECK(j == NULL);
        CHECK(err == GOV_ERR_INVALID_ARG || err == GOV_ERR_NOMEM);
        CHECK(err != GOV_ERR_INVALID_ARG || why == GOV_REASON_AUTHZ_ORIGINAL_REQUEST_INVALID ||
              why == GOV_REASON_AUTHZ_BODY_DIGEST_REQUIRED ||
              why == GOV_REASON_AUTHZ_BODY_DIGEST_INVALID);
    }
    free(buf);
    return 0;
}
