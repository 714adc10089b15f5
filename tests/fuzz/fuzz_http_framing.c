/* fuzz_http_framing.c - gov_http_target_check and gov_http_framing_check.
 *
 * The input is a request target; it is also split at its first two '\n'
 * into a Content-Length value and a Transfer-Encoding value, each present
 * or repeated according to the first byte.  For any input:
 *   - the target check gives GOV_OK or GOV_ERR_PARSE with invalid_path and a
 *     detail, and never accepts a NUL, a control byte, a byte outside ASCII,
 *     an escape of a control byte, or a path segment that decodes to "." or
 *     "..";
 *   - the framing check gives GOV_OK (with *declared <= max_body, or -1
 *     exactly when there is no Content-Length), GOV_ERR_PARSE with
 *     invalid_framing, or GOV_ERR_TOO_LARGE with body_too_large - each with
 *     a detail; never OK with two lengths or a length with an encoding;
 *   - the field check, on the same two values as a name and a value, gives
 *     GOV_OK only for a token name that is no framing name with more after
 *     it and a value without control bytes but tab, else GOV_ERR_PARSE with
 *     invalid_framing and a detail.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_check.h"
#include "gov_http.h"

static int hex(unsigned char c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* 1 when a check refused (then as a parse error with its reason and a
 * detail), 0 when it accepted. */
static int refused(gov_err_t rc, gov_reason_t why, gov_reason_t want, const char *eb) {
    if (rc == GOV_OK)
        return 0;
    CHECK(rc == GOV_ERR_PARSE && why == want && eb[0] != '\0');
    return 1;
}

static void check_target(const char *data, size_t size) {
    char eb[160] = "";
    gov_reason_t why = GOV_REASON_NONE;
    gov_err_t rc = gov_http_target_check(data, size, &why, eb, sizeof eb);
    if (refused(rc, why, GOV_REASON_INVALID_PATH, eb))
        return;
    CHECK(size > 0);
    for (size_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)data[i];
        CHECK(c > 0x20 && c < 0x7f && c != '#');
        if (c == '%') {
            CHECK(i + 2 < size && hex((unsigned char)data[i + 1]) && hex((unsigned char)data[i + 2]));
            CHECK(data[i + 1] != '0' && data[i + 1] != '1'); /* %00-%1F */
            CHECK(!(data[i + 1] == '7' && (data[i + 2] | 0x20) == 'f'));
        }
    }
    /* no accepted path holds a dot segment: count the dots of each
     * segment made of '.' and "%2e" only */
    size_t path = 0;
    while (path < size && data[path] != '?')
        path++;
    for (size_t s = 0; s <= path;) {
        size_t e = s, dots = 0, k = s;
        while (e < path && data[e] != '/')
            e++;
        while (k < e) {
            if (data[k] == '.')
                k++;
            else if (data[k] == '%' && e - k >= 3 && data[k + 1] == '2' && (data[k + 2] | 0x20) == 'e')
                k += 3;
            else
                break;
            dots++;
        }
        CHECK(k < e || dots == 0 || dots > 2);
        s = e + 1;
    }
}

static void check_field(const char *name, const char *value) {
    char eb[160] = "";
    gov_reason_t why = GOV_REASON_NONE;
    gov_err_t rc = gov_http_field_check(name, value, &why, eb, sizeof eb);
    if (refused(rc, why, GOV_REASON_INVALID_FRAMING, eb))
        return;
    CHECK(why == GOV_REASON_NONE && name[0] != '\0');
    for (const char *p = name; *p; p++)
        CHECK(*p > 0x20 && *p < 0x7f && strchr("\"(),/:;<=>?@[\\]{}", *p) == NULL);
    CHECK(strncasecmp(name, "Content-Length", 14) != 0 || name[14] == '\0');
    CHECK(strncasecmp(name, "Transfer-Encoding", 17) != 0 || name[17] == '\0');
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        CHECK((*p >= 0x20 || *p == '\t') && *p != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_target((const char *)data, size);
    if (size == 0)
        return 0;
    /* Framing: byte 0 chooses the counts, the rest holds the two values. */
    unsigned mode = data[0];
    char *copy = malloc(size);
    if (copy == NULL)
        return 0;
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    char *te = strchr(copy, '\n');
    if (te)
        *te++ = '\0';
    check_field(copy, te ? te : "");
    gov_http_framing_t f = {mode & 3, copy, (mode >> 2) & 3, te};
    if (f.content_length_count == 0)
        f.content_length = NULL;
    uint64_t max_body = 65536;
    int64_t declared = 7;
    char eb[160] = "";
    gov_reason_t why = GOV_REASON_NONE;
    gov_err_t rc = gov_http_framing_check(&f, max_body, &declared, &why, eb, sizeof eb);
    if (rc == GOV_OK) {
        CHECK(f.content_length_count <= 1 && f.transfer_encoding_count <= 1);
        CHECK(!(f.content_length_count && f.transfer_encoding_count));
        CHECK(f.content_length_count ? declared >= 0 && (uint64_t)declared <= max_body
                                     : declared == -1);
        CHECK(why == GOV_REASON_NONE);
    } else {
        CHECK((rc == GOV_ERR_PARSE && why == GOV_REASON_INVALID_FRAMING) ||
              (rc == GOV_ERR_TOO_LARGE && why == GOV_REASON_BODY_TOO_LARGE));
        CHECK(eb[0] != '\0');
    }
    free(copy);
    return 0;
}
