/* fuzz_b64url.c - gov_b64url on arbitrary text and bytes.
 *
 * For any input:
 *   - decoding answers GOV_OK, GOV_ERR_PARSE or GOV_ERR_UNSUPPORTED (the
 *     output always fits gov_b64url_decoded_len), never a crash;
 *   - what decodes re-encodes to exactly the input (one spelling per byte
 *     string), and is refused again with one unused bit flipped;
 *   - the encoding of the input, taken as bytes, decodes back to them;
 *   - the padded standard decoder (gov_b64_decode, HTTP Basic) answers the
 *     same three codes, and what it takes is exactly what OpenSSL's
 *     EVP_EncodeBlock writes for the decoded bytes (one spelling).
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "gov_alloc.h"
#include "gov_b64url.h"
#include "gov_buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t cap = gov_b64url_decoded_len(size);
    uint8_t *out = gov_malloc(cap + 1);
    CHECK(out != NULL);
    size_t n = 0;
    gov_err_t rc = gov_b64url_decode((const char *)data, size, out, cap, &n, NULL, 0);
    CHECK(rc == GOV_OK || rc == GOV_ERR_PARSE || rc == GOV_ERR_UNSUPPORTED);
    gov_buf_t b;
    gov_buf_init(&b, 0);
    if (rc == GOV_OK) {
        CHECK(n == cap);
        gov_b64url_put(&b, out, n);
        CHECK(b.err == GOV_OK && b.len == size);
        CHECK(size == 0 || memcmp(b.data, data, size) == 0);
        if (size % 4 == 2 || size % 4 == 3) {
            static const char al[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            char *respelled = gov_strndup((const char *)data, size);
            CHECK(respelled != NULL);
            respelled[size - 1] = al[(strchr(al, respelled[size - 1]) - al) ^ 1];
            CHECK(gov_b64url_decode(respelled, size, out, cap, &n, NULL, 0) ==
                  GOV_ERR_UNSUPPORTED);
            gov_free(respelled);
        }
    }
    gov_buf_reset(&b);
    gov_b64url_put(&b, data, size);
    CHECK(b.err == GOV_OK && b.len == gov_b64url_encoded_len(size));
    uint8_t *back = gov_malloc(size + 1);
    CHECK(back != NULL);
    size_t m = 0;
    CHECK(gov_b64url_decode(b.data != NULL ? b.data : "", b.len, back, size, &m, NULL, 0) ==
          GOV_OK);
    CHECK(m == size && memcmp(back, data, size) == 0);
    gov_free(back);
    gov_buf_free(&b);

    rc = gov_b64_decode((const char *)data, size, out, cap, &n, NULL, 0);
    CHECK(rc == GOV_OK || rc == GOV_ERR_PARSE || rc == GOV_ERR_UNSUPPORTED);
    if (rc == GOV_OK && size < 65536) {
        CHECK(size % 4 == 0 && n <= cap);
        unsigned char *std = gov_malloc(size + 1);
        CHECK(std != NULL);
        int w = EVP_EncodeBlock(std, out, (int)n);
        CHECK(w >= 0 && (size_t)w == size && memcmp(std, data, size) == 0);
        gov_free(std);
    }
    gov_free(out);
    return 0;
}
