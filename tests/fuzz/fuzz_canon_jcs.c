/* fuzz_canon_jcs.c - gov_canon_parse + both serializers, JCS properties.
 *
 * For any input: parsing either fails with a documented code or gives a
 * document that both serializers accept; the JCS bytes are valid UTF-8 with
 * no raw control characters, the SomaBrain bytes are printable ASCII; and
 * JCS round-trips with no exception (issue 9, point 3): parse(jcs(doc))
 * succeeds, holds every number as the same double as doc, and serializes
 * to the same bytes.  Our grammar pass must agree with jansson: whatever it
 * refuses as malformed, jansson refuses too (but for jansson's NUL
 * leniency, below), and jansson never fails (without failure injection) on
 * text it passed - gov_canon_parse would then say NOMEM, which the check on
 * its codes rules out.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_json.h"
#include "gov_util.h"

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
    char *jcs = NULL, *soma = NULL, *jcs2 = NULL, err[512];
    size_t jcs_len, soma_len, jcs2_len;

    gov_reason_t why = GOV_REASON_COUNT_;
    gov_err_t rc = gov_canon_parse((const char *)data, size, &doc, &why, err, sizeof err);
    if (rc != GOV_OK) {
        CHECK(doc == NULL);
        CHECK(rc == GOV_ERR_PARSE || rc == GOV_ERR_TOO_LARGE || rc == GOV_ERR_UNSUPPORTED);
        CHECK(why != GOV_REASON_NONE && why < GOV_REASON_COUNT_);
        if (rc == GOV_ERR_PARSE && why != GOV_REASON_DUPLICATE_KEY) {
            /* Our grammar pass refused it: jansson must refuse it too, except
             * for jansson 2.14's one leniency - it drops a raw NUL byte that
             * follows a number or literal ("[1\0,2]" loads as [1,2]), which
             * RFC 8259 and CPython refuse, and so do we. */
            json_error_t jerr;
            json_t *j = json_loadb((const char *)data, size, JSON_ALLOW_NUL | JSON_DECODE_ANY,
                                   &jerr);
            if (j != NULL && memchr(data, 0, size) == NULL) {
                fprintf(stderr, "grammar pass refused what jansson accepts: %s\n", err);
                abort();
            }
            json_decref(j);
        }
        return 0;
    }
    CHECK(gov_canon_serialize(doc, GOV_CANON_JCS, &jcs, &jcs_len, NULL, err, sizeof err) == GOV_OK);
    CHECK(gov_canon_serialize(doc, GOV_CANON_SOMABRAIN, &soma, &soma_len, NULL, err, sizeof err) ==
          GOV_OK);
    CHECK(gov_utf8_valid(jcs, jcs_len));
    for (size_t i = 0; i < jcs_len; i++)
        CHECK((unsigned char)jcs[i] >= 0x20);
    for (size_t i = 0; i < soma_len; i++)
        CHECK(soma[i] >= 0x20 && soma[i] <= 0x7e);

    rc = gov_canon_parse(jcs, jcs_len, &again, &why, err, sizeof err);
    if (rc != GOV_OK)
        fprintf(stderr, "JCS output does not parse back: %s\n  %.*s\n", err, (int)jcs_len, jcs);
    CHECK(rc == GOV_OK);
    CHECK(gov_json_equal_jcs(doc, again));
    CHECK(gov_canon_serialize(again, GOV_CANON_JCS, &jcs2, &jcs2_len, NULL, err, sizeof err) ==
          GOV_OK);
    if (jcs2_len != jcs_len || memcmp(jcs, jcs2, jcs_len) != 0)
        fprintf(stderr, "not a fixed point:\n  %.*s\n  %.*s\n", (int)jcs_len, jcs,
                (int)jcs2_len, jcs2);
    CHECK(jcs2_len == jcs_len && memcmp(jcs, jcs2, jcs_len) == 0);
    json_decref(again);
    json_decref(doc);
    gov_free(jcs);
    gov_free(jcs2);
    gov_free(soma);
    return 0;
}
