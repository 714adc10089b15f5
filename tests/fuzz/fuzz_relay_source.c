/* fuzz_relay_source.c - gov_relay_source_parse on arbitrary bytes (the
 * x-gov-relay-source header of identity.audit: any producer can set it).
 *
 * For any input: GOV_OK or GOV_ERR_PARSE, never a crash or a read past len;
 * what parses is within the bounds, and printing it back gives exactly the
 * input (one spelling per stamp, so a stamp cannot be respelled to pass as
 * another); what is refused leaves the outputs untouched.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_check.h"
#include "gov_alloc.h"
#include "gov_audit_chain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* an exact-size copy, so ASan sees any read past len */
    char *s = gov_malloc(size ? size : 1);
    CHECK(s != NULL);
    if (size)
        memcpy(s, data, size);
    int32_t p = -1;
    int64_t o = -1, t = -1;
    gov_err_t rc = gov_relay_source_parse(s, size, &p, &o, &t);
    CHECK(rc == GOV_OK || rc == GOV_ERR_PARSE);
    if (rc == GOV_OK) {
        CHECK(p >= 0 && p <= GOV_RELAY_PARTITION_MAX);
        CHECK(o >= 0 && o <= GOV_RELAY_OFFSET_MAX);
        CHECK(t >= 0 && t <= GOV_RELAY_OFFSET_MAX);
        char back[80];
        int n = snprintf(back, sizeof back, "%" PRId32 "/%" PRId64 "/%" PRId64, p, o, t);
        CHECK(n > 0 && (size_t)n == size && memcmp(back, s, size) == 0);
    } else {
        CHECK(p == -1 && o == -1 && t == -1);
    }
    gov_free(s);
    return 0;
}
