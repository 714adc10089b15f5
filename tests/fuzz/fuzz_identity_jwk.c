/* fuzz_identity_jwk.c - a KeyRotated's public JWK and kid as untrusted input
 * (what any producer on identity.keys controls): identity_jwk_check of
 * gov-identity (processors/identity/jwk.c, pure, linked here with core).
 *
 * Input: "<kid>\n<public_jwk>".  For any input:
 *   - the check accepts (GOV_OK, reason none) or refuses with GOV_ERR_VERIFY
 *     and invalid_jwk or kid_not_thumbprint - never anything else, never a
 *     crash;
 *   - an accepted key's normalized form is accepted again for the same kid
 *     and normalizes to itself, carries that kid, and has no private part.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../processors/identity/jwk.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 1);
    CHECK(buf != NULL);
    memcpy(buf, data, size);
    buf[size] = 0;
    char *nl = memchr(buf, '\n', size);
    const char *kid = "", *jwk = buf;
    if (nl) {
        *nl = 0;
        kid = buf;
        jwk = nl + 1;
    }
    char norm[IDENTITY_JWK_NORM_MAX], again[IDENTITY_JWK_NORM_MAX], eb[256];
    gov_reason_t reason = GOV_REASON_NONE;
    gov_err_t err = identity_jwk_check(jwk, kid, norm, sizeof norm, &reason, eb, sizeof eb);
    CHECK(err == GOV_OK || err == GOV_ERR_VERIFY);
    if (err == GOV_ERR_VERIFY)
        CHECK(reason == GOV_REASON_INVALID_JWK || reason == GOV_REASON_KID_NOT_THUMBPRINT);
    if (err == GOV_OK) {
        CHECK(reason == GOV_REASON_NONE);
        CHECK(identity_jwk_check(norm, kid, again, sizeof again, &reason, eb, sizeof eb) ==
              GOV_OK);
        CHECK(strcmp(norm, again) == 0);
        json_t *j = json_loads(norm, JSON_REJECT_DUPLICATES, NULL);
        CHECK(j != NULL);
        CHECK(strcmp(json_string_value(json_object_get(j, "kid")), kid) == 0);
        CHECK(json_object_get(j, "d") == NULL);
        json_decref(j);
    }
    free(buf);
    return 0;
}
