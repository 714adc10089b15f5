/* fuzz_canon_somabrain.c - gov_canon_parse + both serializers, SomaBrain properties.
 *
 * For any input that parses: both serializers succeed; the SomaBrain bytes
 * are printable ASCII and a fixed point - parse(somabrain(doc)) serializes
 * to the same bytes, with no exception (integers stay exact json_int_t,
 * reals are written with '.' or an exponent, so they stay reals) - and the
 * reparsed document is json_equal to the original.  Checksums of both forms
 * succeed with both algorithms and have the right lengths.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_canon.h"

#define MAX_INPUT (64 * 1024) /* the caller's length bound */

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        gov_alloc_install_jansson();
        init = 1;
    }
    if (size > MAX_INPUT)
        return 0;
    json_t *doc = NULL, *again = NULL;
    char *soma = NULL, *soma2 = NULL, *jcs = NULL, err[512];
    size_t soma_len, soma2_len, jcs_len;

    gov_err_t rc = gov_canon_parse((const char *)data, size, &doc, NULL, err, sizeof err);
    if (rc != GOV_OK) {
        CHECK(doc == NULL);
        CHECK(rc == GOV_ERR_PARSE || rc == GOV_ERR_TOO_LARGE || rc == GOV_ERR_UNSUPPORTED);
        return 0;
    }
    CHECK(gov_canon_serialize(doc, GOV_CANON_SOMABRAIN, &soma, &soma_len, NULL, err, sizeof err) ==
          GOV_OK);
    CHECK(gov_canon_serialize(doc, GOV_CANON_JCS, &jcs, &jcs_len, NULL, err, sizeof err) == GOV_OK);
    for (size_t i = 0; i < soma_len; i++)
        CHECK(soma[i] >= 0x20 && soma[i] <= 0x7e);

    rc = gov_canon_parse(soma, soma_len, &again, NULL, err, sizeof err);
    if (rc != GOV_OK)
        fprintf(stderr, "somabrain output does not parse: %s\n  %.*s\n", err, (int)soma_len,
                soma);
    CHECK(rc == GOV_OK);
    CHECK(json_equal(doc, again));
    CHECK(gov_canon_serialize(again, GOV_CANON_SOMABRAIN, &soma2, &soma2_len, NULL, err, sizeof err) ==
          GOV_OK);
    CHECK(soma2_len == soma_len && memcmp(soma, soma2, soma_len) == 0);

    static const char *algs[] = {"sha3-512", "sha256"};
    for (int k = 0; k < 2; k++) {
        for (int a = 0; a < 2; a++) {
            char hex[GOV_CANON_HEX_MAX];
            CHECK(gov_canon_checksum(doc, (gov_canon_t)k, algs[a], hex, NULL, err, sizeof err) ==
                  GOV_OK);
            CHECK(strlen(hex) == (a == 0 ? 128u : 64u));
        }
    }
    json_decref(again);
    json_decref(doc);
    gov_free(soma);
    gov_free(soma2);
    gov_free(jcs);
    return 0;
}
