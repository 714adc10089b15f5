/* fuzz_bundle_parse.c - gov_bundle: the raw span scanner, the shape check,
 * gov_bundle_parse and the ConstitutionBundle event built from what it
 * accepts.
 *
 * For any input:
 *   - the scanner either refuses with a documented code or returns a span
 *     inside the input with no whitespace at its ends;
 *   - where jansson accepts the input as an object (duplicate keys refused)
 *     and the input holds no NUL byte (jansson 2.14 skips a raw NUL after a
 *     number or literal; the scanner refuses it), the scanner agrees: it
 *     finds "document" exactly when jansson has that member (unless the
 *     nesting is past GOV_BUNDLE_MAX_DEPTH), and the span parses to a value
 *     json_equal to jansson's;
 *   - gov_bundle_parse refuses with one of its four reason codes, or
 *     accepts a bundle that passes the shape check, whose span is the
 *     scanner's, and whose event encodes to Avro and decodes back with
 *     document_json byte-equal to the span.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_bundle.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static gov_avro_registry_t *registry;

static void check_scanner(const char *text, size_t size) {
    size_t off = 0, len = 0;
    char eb[256] = "";
    gov_err_t e = gov_bundle_extract_document_span(text, size, &off, &len, eb, sizeof eb);
    CHECK(e == GOV_OK || e == GOV_ERR_PARSE || e == GOV_ERR_NOT_FOUND || e == GOV_ERR_TOO_LARGE);
    CHECK(eb[0] != '\0' || e == GOV_OK);
    if (e == GOV_OK) {
        CHECK(off < size && len > 0 && len <= size - off);
        CHECK(!is_ws(text[off]) && !is_ws(text[off + len - 1]));
    }

    json_t *j = json_loadb(text, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (j != NULL && json_is_object(j) && memchr(text, '\0', size) == NULL) {
        json_t *doc = json_object_get(j, "document");
        if (e != GOV_ERR_TOO_LARGE) {
            CHECK(doc != NULL ? e == GOV_OK : e == GOV_ERR_NOT_FOUND);
        }
        if (e == GOV_OK) {
            json_t *again = json_loadb(text + off, len, JSON_DECODE_ANY, NULL);
            CHECK(again != NULL);
            CHECK(json_equal(again, doc));
            json_decref(again);
        }
    }
    json_decref(j);
}

static void check_parse(const char *text, size_t size, const char *tenant) {
    json_t *b = (json_t *)1;
    size_t off = 0, len = 0;
    gov_reason_t reason = GOV_REASON_COUNT_;
    char eb[512] = "";
    gov_err_t e = gov_bundle_parse(text, size, tenant, &b, &off, &len, &reason, eb, sizeof eb);
    if (e != GOV_OK) {
        CHECK(b == NULL);
        CHECK(reason != GOV_REASON_NONE);
        CHECK((e == GOV_ERR_PARSE && reason == GOV_REASON_INVALID_JSON) ||
              (e == GOV_ERR_VERIFY && (reason == GOV_REASON_INVALID_BUNDLE ||
                                       reason == GOV_REASON_TENANT_MISMATCH)));
        CHECK(eb[0] != '\0');
        return;
    }
    CHECK(b != NULL && reason == GOV_REASON_NONE);
    CHECK(gov_bundle_check_shape(b, tenant, &reason, NULL, 0) == GOV_OK);
    if (tenant)
        CHECK(strcmp(json_string_value(json_object_get(b, "tenant")), tenant) == 0);
    size_t off2, len2;
    CHECK(gov_bundle_extract_document_span(text, size, &off2, &len2, NULL, 0) == GOV_OK);
    CHECK(off2 == off && len2 == len);
    CHECK(text[off] == '{' && text[off + len - 1] == '}'); /* the document is an object */

    json_t *ev = NULL, *back = NULL;
    unsigned char *buf = NULL;
    size_t blen = 0;
    const char *name = NULL;
    CHECK(gov_bundle_event_new(b, text + off, len, "019a9e8e-4f11-7cc3-98c4-dc0c0c07398f", 1,
                               "fuzz", NULL, &ev) == GOV_OK);
    gov_err_t ee = gov_avro_encode(registry, "ConstitutionBundle", ev, &buf, &blen, eb, sizeof eb);
    CHECK(ee == GOV_OK || ee == GOV_ERR_TOO_LARGE);
    if (ee == GOV_OK) {
        CHECK(gov_avro_decode(registry, buf, blen, &back, &name, eb, sizeof eb) == GOV_OK);
        json_t *dj = json_object_get(back, "document_json");
        CHECK(json_string_length(dj) == len);
        CHECK(memcmp(json_string_value(dj), text + off, len) == 0);
    }
    json_decref(back);
    gov_free(buf);
    json_decref(ev);
    json_decref(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char eb[256];
    gov_alloc_install_jansson();
    if (gov_avro_registry_new(&registry, eb, sizeof eb) != GOV_OK) {
        fprintf(stderr, "fuzz_bundle_parse: registry: %s\n", eb);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    check_scanner(text, size);
    check_parse(text, size, NULL);
    check_parse(text, size, "acme");
    return 0;
}
