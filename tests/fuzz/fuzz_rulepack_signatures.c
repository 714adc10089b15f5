/* fuzz_rulepack_signatures.c - detached rule-pack signatures as untrusted
 * JSON (what a RulePackPublished carries and what an edge reads back from
 * Redis): gov_signatures_from_json, gov_rulepack_verify_signatures and
 * gov_signatures_to_json, against the known-answer pack and trust of
 * tests/vectors/rulepack/signed (RFC 8032 keys 1 and 2, threshold 2).
 *
 * For any input:
 *   - verification decides (GOV_OK with a reason) or reports GOV_ERR_CRYPTO,
 *     never anything else, never a crash;
 *   - an acceptance counts exactly ops-1 and ops-2 (no other id is
 *     trusted), so only their real signatures can make a pack verify;
 *   - the signatures' JSON form reads back to the same views.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_rulepack.h"
#include "gov_signature.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* tests/vectors/rulepack/signed/trust.json */
static const char trust_text[] =
    "{\n"
    "  \"signers\": {\n"
    "    \"ops-1\": \"-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\\n-----END PUBLIC KEY-----\\n\",\n"
    "    \"ops-2\": \"-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEAPUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=\\n-----END PUBLIC KEY-----\\n\"\n"
    "  },\n"
    "  \"tenants\": {\n"
    "    \"demo\": {\n"
    "      \"threshold\": 2,\n"
    "      \"signers\": [\n"
    "        \"ops-1\",\n"
    "        \"ops-2\"\n"
    "      ]\n"
    "    }\n"
    "  }\n"
    "}\n";

/* tests/vectors/rulepack/signed/pack.json */
static const char pack_text[] =
    "{\n"
    "  \"pack_id\": \"signed-demo\",\n"
    "  \"tenant\": \"demo\",\n"
    "  \"version\": \"2.1.0\",\n"
    "  \"thresholds\": {\"max_risk_score\": 0.7},\n"
    "  \"rules\": [\n"
    "    {\"id\": \"secrets.password\", \"severity\": \"critical\", \"weight\": 0.5, \"effect\": \"add\",\n"
    "     \"message\": \"password\", \"match\": {\"prompt\": [{\"literal\": \"password\", \"case_insensitive\": true}]}},\n"
    "    {\"id\": \"pii.email\", \"severity\": \"high\", \"weight\": 0.35, \"effect\": \"add\",\n"
    "     \"message\": \"e-mail address\", \"match\": {\"prompt\": [{\"regex\": \"[a-z]+@[a-z]+\\\\.com\"}]}}\n"
    "  ]\n"
    "}\n";

static gov_trust_t *trust;
static gov_rulepack_t *pack;

static int same(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (trust == NULL) {
        char eb[256];
        gov_alloc_install_jansson();
        CHECK(gov_trust_parse(trust_text, strlen(trust_text), &trust, eb, sizeof eb) == GOV_OK);
        CHECK(gov_rulepack_parse(pack_text, strlen(pack_text), NULL, &pack, NULL, eb,
                                 sizeof eb) == GOV_OK);
    }
    json_t *arr = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    gov_bundle_sig_t sigs[GOV_MAX_SIGNATURES + 1];
    size_t n = 0;
    if (gov_signatures_from_json(arr, sigs, GOV_MAX_SIGNATURES + 1, &n) != 0) {
        CHECK(!json_is_array(arr));
        json_decref(arr);
        return 0;
    }
    gov_sig_count_t sc;
    gov_err_t e = gov_rulepack_verify_signatures(pack, "demo", sigs, n, trust, &sc);
    CHECK(e == GOV_OK || e == GOV_ERR_CRYPTO);
    if (e == GOV_OK && sc.reason == GOV_REASON_NONE) {
        CHECK(sc.nsigners == 2 && sc.required == 2);
        CHECK(strcmp(sc.signers[0], "ops-1") == 0 && strcmp(sc.signers[1], "ops-2") == 0);
    }
    if (e == GOV_OK && sc.reason != GOV_REASON_NONE)
        CHECK(sc.detail[0] != '\0');
    char *text = NULL;
    if (gov_signatures_to_json(sigs, n, &text) == GOV_OK) {
        json_t *back = json_loads(text, 0, NULL);
        gov_bundle_sig_t again[GOV_MAX_SIGNATURES + 1];
        size_t m = 0;
        CHECK(gov_signatures_from_json(back, again, GOV_MAX_SIGNATURES + 1, &m) == 0);
        CHECK(m == n);
        for (size_t i = 0; i < n; i++)
            CHECK(same(again[i].signer_id, sigs[i].signer_id) &&
                  same(again[i].algorithm, sigs[i].algorithm) &&
                  same(again[i].signature, sigs[i].signature));
        json_decref(back);
        gov_free(text);
    }
    json_decref(arr);
    return 0;
}
