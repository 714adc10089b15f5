/* gov_util.h - small pure helpers: ids, hex, tenant syntax, UTF-8.
 *
 * Hashing (gov_sha256 and the named algorithms) is gov_hash.h's; it is
 * included here so callers of gov_sha256 keep compiling.
 *
 * Thread-safety: all functions are thread-safe.
 */
#ifndef GOV_UTIL_H
#define GOV_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_hash.h"

#define GOV_UUID_STRLEN 36
#define GOV_TENANT_MAX 64

/* Formats into errbuf (may be NULL or of size 0: then nothing happens) -
 * the errbuf, errbuf_size convention of every libgov function. */
void gov_errbuf(char *errbuf, size_t errbuf_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with a va_list, for a module's own failure helper that records
 * more than the message (a reason code, a field). */
void gov_errbuf_v(char *errbuf, size_t errbuf_size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Formats the arguments that follow `fmt` in the enclosing variadic function
 * into buf[size] (NUL-terminated, cut when too long; nothing when size is 0):
 * the one spelling of va_start / vsnprintf / va_end.  Needs <stdarg.h>. */
#define GOV_FORMAT_VA(buf, size, fmt)                  \
    do {                                               \
        va_list gov_ap_;                               \
        va_start(gov_ap_, fmt);                        \
        gov_errbuf_v((buf), (size), (fmt), gov_ap_);   \
        va_end(gov_ap_);                               \
    } while (0)

/* Pure: formats a UUIDv7 from a millisecond timestamp and 10 random bytes. */
void gov_uuid_v7_format(uint64_t unix_ms, const unsigned char rnd[10],
                        char out[GOV_UUID_STRLEN + 1]);
/* Derives a UUIDv7 deterministically: the time part is unix_ms, the 74
 * random bits come from SHA-256(seed).  Used for events that may have to be
 * emitted again after a crash, so the re-emission carries the same event_id
 * and consumers deduplicate it. */
gov_err_t gov_uuid_v7_derive(uint64_t unix_ms, const char *seed,
                             char out[GOV_UUID_STRLEN + 1]);
/* 1 when s is a canonical lowercase UUID string of version 7. */
int gov_uuid_v7_valid(const char *s);

/* Lowercase hex of len bytes into out (2*len + 1 bytes). */
void gov_hex_encode(const unsigned char *in, size_t len, char *out);
/* Decodes exactly 2*outlen hex chars (either case); -1 on bad input. */
int gov_hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen);
/* Decodes the 4 hex chars (either case) of a JSON \uXXXX escape at in
 * (4 bytes are read) into *out, 0..0xFFFF; -1 on bad input. */
int gov_hex_u16(const void *in, uint32_t *out);

/* A tenant id is 1..64 chars of [A-Za-z0-9._-], not starting with '.' or '-'.
 * The syntax keeps ids safe inside Redis hash tags ({T}), Kafka keys, metric
 * labels and URL paths.  "_system" is the tenant of events about no tenant. */
int gov_tenant_valid(const char *s, size_t len);

/* 1 when buf[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int gov_utf8_valid(const void *buf, size_t len);
/* Length (1..4) of the well-formed UTF-8 sequence at s (avail bytes there),
 * or 0 when the bytes are not one (overlong, surrogate, > U+10FFFF, cut). */
size_t gov_utf8_seq_len(const unsigned char *s, size_t avail);
/* Returns a new NUL-terminated copy (gov_free) of the C string s, at most
 * max_bytes long, cut at a character boundary, each byte that does not start
 * a well-formed sequence replaced by U+FFFD; NULL on allocation failure. */
char *gov_utf8_sanitize(const char *s, size_t max_bytes);
/* Writes the C string s into dst for an error message, so a hostile key
 * can neither flood nor garble a log line: at most max_bytes of s, cut on a
 * character boundary (and at the first byte that is not well-formed UTF-8),
 * each ASCII control character (C0, DEL) as '?', then "..." when anything
 * was left out.  dst receives at most dst_size bytes with the NUL (the cut
 * moves earlier to leave room for "..."); dst_size 0 writes nothing.
 * O(max_bytes). */
void gov_utf8_shorten(char *dst, size_t dst_size, const char *s, size_t max_bytes);


#endif /* GOV_UTIL_H */
