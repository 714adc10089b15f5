/* gov_b64url.h - strict, unpadded base64url (RFC 4648 §5, as JWS uses it:
 * RFC 7515 §2), and strict padded standard base64 (gov_b64_decode).
 *
 * Encoding writes the alphabet A-Z a-z 0-9 '-' '_' with no padding.
 * Decoding accepts exactly what the encoder writes, so every byte string
 * has one accepted spelling and a token cannot be re-spelled without its
 * bytes changing:
 *   GOV_ERR_PARSE        a character outside the alphabet (including the
 *                        standard '+' '/', whitespace and NUL), or a length
 *                        that is 1 mod 4 (no byte string encodes to it)
 *   GOV_ERR_UNSUPPORTED  a spelling of real bytes that the encoder would not
 *                        write: '=' padding, or non-zero unused bits in the
 *                        last character ("QR" for the byte 'A' instead of "QQ")
 *   GOV_ERR_TOO_LARGE    the decoded bytes do not fit out_cap
 *
 * Thread-safety: pure and reentrant; no allocation.
 */
#ifndef GOV_B64URL_H
#define GOV_B64URL_H

#include <stddef.h>
#include <stdint.h>

#include "gov_buf.h"
#include "gov_err.h"

/* Characters of the unpadded encoding of n bytes: ceil(4n/3).  n must be
 * below SIZE_MAX / 4 (callers bound their inputs far below). */
size_t gov_b64url_encoded_len(size_t n);

/* Bytes that text of len characters decodes to when it is well-formed
 * (floor(3len/4)); an upper bound for out_cap. */
size_t gov_b64url_decoded_len(size_t len);

/* Writes the encoding of in[0..n) to out, which must hold
 * gov_b64url_encoded_len(n) + 1 bytes, and NUL-terminates it.  O(n). */
void gov_b64url_encode(const void *in, size_t n, char *out);

/* Appends the encoding of in[0..n) to b (borrowed; b's sticky error records
 * a failure).  in may be NULL when n is 0.  O(n). */
void gov_b64url_put(gov_buf_t *b, const void *in, size_t n);

/* Decodes text[0..len) (no NUL needed) into out[0..out_cap); on GOV_OK
 * *out_len is the number of bytes written.  Errors as in the header comment,
 * detail in errbuf (may be NULL), with the offending offset; on error the
 * contents of out are unspecified.  O(len). */
gov_err_t gov_b64url_decode(const char *text, size_t len, uint8_t *out, size_t out_cap,
                            size_t *out_len, char *errbuf, size_t errbuf_size);

/* Standard base64 (RFC 4648 section 4, alphabet '+' '/'), padded: text's
 * length is a multiple of 4 and ends in exactly the '=' (none, one or two)
 * the encoded length calls for; the rest decodes as gov_b64url_decode does
 * (unused bits zero, so one spelling per byte string).  For HTTP Basic
 * credentials (RFC 7617).  GOV_ERR_PARSE for a length that is not a
 * multiple of 4 or a character outside the alphabet (including '-' '_',
 * whitespace and NUL); GOV_ERR_UNSUPPORTED for '=' where it does not belong
 * or non-zero unused bits; GOV_ERR_TOO_LARGE.  Decodes into
 * out[0..out_cap) (gov_b64url_decoded_len(len) always suffices); *out_len
 * the bytes written.  O(len). */
gov_err_t gov_b64_decode(const char *text, size_t len, uint8_t *out, size_t out_cap,
                         size_t *out_len, char *errbuf, size_t errbuf_size);

#endif /* GOV_B64URL_H */
