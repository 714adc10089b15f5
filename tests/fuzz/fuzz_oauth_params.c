/* fuzz_oauth_params.c - the token endpoints' parameters as untrusted input
 * (http-edge/oauth_params.c, pure, linked here with core): a form or JSON
 * body and an Authorization header, as any HTTP client sends them.
 *
 * Input: one mode byte (bit 0: form, else JSON; bit 1: an Authorization
 * header), then "<authorization>\n<body>" (with bit 1) or "<body>".
 * For any input:
 *   - the parser returns GOV_OK, or GOV_ERR_INVALID_ARG with invalid_request
 *     or invalid_json (GOV_ERR_NOMEM only with out_of_memory) - never
 *     anything else, never a crash;
 *   - on success every value is NUL-free valid UTF-8 of at most
 *     OAUTH_PARAM_MAX bytes, and Basic credentials never coexist with body
 *     credentials; on failure nothing is left set.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../http-edge/oauth_params.h"
#include "fuzz_check.h"
#include "gov_util.h"

static void check_value(const char *v) {
    if (v == NULL)
        return;
    size_t n = strlen(v);
    CHECK(n <= OAUTH_PARAM_MAX);
    CHECK(gov_utf8_valid(v, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 65536)
        return 0;
    int form = data[0] & 1, with_authz = data[0] & 2;
    char *buf = malloc(size);
    CHECK(buf != NULL);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    const char *authz = NULL, *body = buf;
    size_t body_len = size - 1;
    if (with_authz) {
        char *nl = memchr(buf, '\n', size - 1);
        if (nl) {
            *nl = 0;
            authz = buf;
            body = nl + 1;
            body_len = (size_t)(buf + size - 1 - body);
        }
    }
    oauth_params_t p;
    gov_reason_t why = GOV_REASON_NONE;
    char eb[160];
    gov_err_t err = oauth_params_parse(body, body_len, form, authz, &p, &why, eb, sizeof eb);
    if (err == GOV_OK) {
        const char *all[] = {p.grant_type, p.client_id, p.client_secret, p.scope,
                             p.tenant, p.ttl, p.token, p.token_type_hint};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            check_value(all[i]);
        if (p.basic)
            CHECK(p.client_id != NULL && p.client_secret != NULL);
    } else {
        CHECK(err == GOV_ERR_INVALID_ARG || err == GOV_ERR_NOMEM);
        CHECK(err != GOV_ERR_INVALID_ARG || why == GOV_REASON_INVALID_REQUEST ||
              why == GOV_REASON_INVALID_JSON);
        CHECK(p.grant_type == NULL && p.client_id == NULL && p.client_secret == NULL &&
              p.token == NULL && p.basic == 0);
    }
    oauth_params_clear(&p);
    free(buf);
    return 0;
}
