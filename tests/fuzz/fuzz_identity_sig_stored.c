/* fuzz_identity_sig_stored.c - a signed identity record as read back from
 * Redis (untrusted: any Redis writer can put any bytes there):
 * gov_identity_sig_check_stored over a payload and a signatures text, with
 * the trust of tests/unit/test_identity_sig.c (RFC 8032 TEST 1 key as
 * "ops", threshold 1).
 *
 * Input: the first byte b splits the rest: payload = data[1 .. 1+k), the
 * signatures text the remainder, k = b * len / 256.
 *
 * For any input:
 *   - the check decides (GOV_OK, GOV_ERR_VERIFY with a reason) or reports
 *     GOV_ERR_NOMEM / GOV_ERR_CRYPTO, never anything else, never a crash;
 *   - an acceptance is of exactly the one payload the TEST 1 key signed (a
 *     fuzzer cannot forge Ed25519, so anything else accepted is a bug), and
 *     the content it returns names the kind and the id asked for.
 */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "gov_identity_sig.h"

static const char trust_text[] =
    "{\"threshold\": 1, \"signers\": {\"ops\": \"-----BEGIN PUBLIC KEY-----\\n"
    "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\\n-----END PUBLIC KEY-----\\n\"}}";

/* tests/unit/test_identity_sig.c's ClientRegistered payload */
static const char signed_payload[] =
    "{\"client_id\":\"app-1\",\"registered_by\":\"ops@example\",\"scopes\":[\"evaluate\","
    "\"tokens:issue\"],\"secret_hash\":\"sha256:"
    "abababababababababababababababababababababababababababababababab\",\"tenants\":[\"demo\","
    "\"t2\"],\"type\":\"ClientRegistered\"}";

static gov_trust_t *trust;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (trust == NULL) {
        char eb[256];
        CHECK(gov_trust_parse(trust_text, strlen(trust_text), &trust, eb, sizeof eb) == GOV_OK);
    }
    if (size < 1)
        return 0;
    size_t rest = size - 1, k = (size_t)data[0] * rest / 256;
    const char *payload = (const char *)data + 1, *sigs = payload + k;
    json_t *content = NULL;
    gov_sig_count_t c;
    gov_err_t err = gov_identity_sig_check_stored(trust, "ClientRegistered", "client_id", "app-1",
                                                  payload, k, sigs, rest - k, &content, &c);
    CHECK(err == GOV_OK || err == GOV_ERR_VERIFY || err == GOV_ERR_NOMEM ||
          err == GOV_ERR_CRYPTO);
    if (err == GOV_OK) {
        CHECK(c.reason == GOV_REASON_NONE);
        CHECK(k == strlen(signed_payload) && memcmp(payload, signed_payload, k) == 0);
        CHECK(strcmp(json_string_value(json_object_get(content, "type")), "ClientRegistered") == 0);
        CHECK(strcmp(json_string_value(json_object_get(content, "client_id")), "app-1") == 0);
    } else {
        CHECK(content == NULL);
        CHECK(err != GOV_ERR_VERIFY || c.reason != GOV_REASON_NONE);
    }
    json_decref(content);
    return 0;
}
