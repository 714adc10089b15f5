/* fuzz_redis_redirect.c - gov_redis_redirect_parse and gov_redis_key_slot on
 * arbitrary bytes (an error reply from a Redis node is outside input).
 *
 * For any input:
 *   - the parser answers GOV_OK, GOV_ERR_NOT_FOUND or GOV_ERR_PARSE, never
 *     reads past the input (ASan), and a refusal leaves *out zeroed;
 *   - what it takes has a slot below 16384, a port 1..65535, a host of at
 *     most GOV_REDIS_HOST_MAX bytes, and prints back to exactly the input
 *     (one spelling per redirect);
 *   - the key slot of the input is below 16384 and equals the slot of its
 *     hash tag when it has one.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_check.h"
#include "gov_redis_slot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gov_redis_redirect_t r;
    char eb[128];
    gov_err_t rc = gov_redis_redirect_parse((const char *)data, size, &r, eb, sizeof eb);
    CHECK(rc == GOV_OK || rc == GOV_ERR_NOT_FOUND || rc == GOV_ERR_PARSE);
    if (rc == GOV_OK) {
        CHECK(r.slot < GOV_REDIS_SLOTS && r.port >= 1 && r.port <= 65535);
        CHECK(strlen(r.host) <= GOV_REDIS_HOST_MAX);
        char back[GOV_REDIS_HOST_MAX + 32];
        int n = snprintf(back, sizeof back, "%s %u %s:%d",
                         r.kind == GOV_REDIS_REDIRECT_MOVED ? "MOVED" : "ASK", r.slot, r.host,
                         r.port);
        CHECK(n > 0 && (size_t)n == size && memcmp(back, data, size) == 0);
    } else if (rc == GOV_ERR_PARSE) {
        CHECK(r.port == 0 && r.slot == 0 && r.host[0] == 0);
    }
    unsigned s = gov_redis_key_slot(data, size);
    CHECK(s < GOV_REDIS_SLOTS);
    const uint8_t *open = memchr(data, '{', size);
    if (open != NULL) {
        size_t from = (size_t)(open - data) + 1;
        const uint8_t *close = memchr(data + from, '}', size - from);
        if (close != NULL && close > data + from)
            CHECK(s == gov_redis_key_slot(data + from, (size_t)(close - data) - from));
    }
    return 0;
}
