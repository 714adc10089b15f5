/* gov_spool_frame.h - the record framing of gov-edge's durable decision
 * spool (docs/contracts.md, "Decision spool").
 *
 * The spool is a ring of bytes in a file (gov_spool.c maps it); each record
 * in it is one frame, 8-byte aligned, all integers little-endian:
 *
 *   off  0  u32 magic     "GSF1" (a record) or "GSFW" (a wrap marker: the
 *                         next frame starts at the ring's beginning)
 *   off  4  u32 crc       CRC-32C (Castagnoli) of bytes [8, 32 + key + value)
 *   off  8  u64 seq       the record's sequence number; consecutive in a ring
 *   off 16  i64 at_us     when the record was written (wall clock, µs)
 *   off 24  u32 value_len
 *   off 28  u16 key_len
 *   off 30  u16 zero
 *   off 32  key, value, zero padding to a multiple of 8
 *
 * A reader is told the sequence number it expects: a frame of another seq
 * (a stale frame of an earlier lap, zeros, garbage) ends the log cleanly;
 * a frame with the expected seq whose lengths overrun the bytes given or
 * whose CRC does not match is TORN - the tail a kill -9 cut mid-write.  A
 * torn frame is never handed out as a record.
 *
 * Pure: takes bytes, touches no file.  Thread-safe.
 */
#ifndef GOV_SPOOL_FRAME_H
#define GOV_SPOOL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"

#define GOV_SPOOL_FRAME_HEADER 32u
#define GOV_SPOOL_FRAME_MAX_KEY 65535u
#define GOV_SPOOL_FRAME_MAX_VALUE (16u * 1024u * 1024u)

typedef enum gov_spool_frame_kind {
    GOV_SPOOL_FRAME_END = 0,    /* no record here: zeros, stale or garbage */
    GOV_SPOOL_FRAME_RECORD = 1, /* a whole record with the expected seq */
    GOV_SPOOL_FRAME_WRAP = 2,   /* a wrap marker with the expected seq */
    GOV_SPOOL_FRAME_TORN = 3,   /* the expected seq, cut or damaged */
} gov_spool_frame_kind_t;

/* One frame as read; key and value borrow the reader's buffer. */
typedef struct gov_spool_frame {
    uint64_t seq;
    int64_t at_us;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    size_t size;       /* bytes the frame takes, padding included */
} gov_spool_frame_t;

/* CRC-32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF) of
 * data[0..len), continuing from crc (0 to start).  "123456789" ->
 * 0xE3069283.  O(len). */
uint32_t gov_crc32c(uint32_t crc, const void *data, size_t len);
/* The same by the byte table alone (gov_crc32c uses the CPU's CRC-32C
 * instruction where there is one): for tests that compare the two. */
uint32_t gov_crc32c_portable(uint32_t crc, const void *data, size_t len);

/* Bytes a record with these lengths takes (header + key + value, rounded
 * up to 8).  O(1). */
size_t gov_spool_frame_size(size_t key_len, size_t value_len);

/* Writes a record frame into out (at least gov_spool_frame_size bytes;
 * padding zeroed).  GOV_ERR_TOO_LARGE when key_len or value_len exceed the
 * bounds above, GOV_ERR_INVALID_ARG when out_size is too small.  Borrows
 * every argument.  O(key_len + value_len). */
gov_err_t gov_spool_frame_write(uint8_t *out, size_t out_size, uint64_t seq, int64_t at_us,
                                const void *key, size_t key_len, const void *value,
                                size_t value_len);

/* Writes a wrap marker (GOV_SPOOL_FRAME_HEADER bytes) announcing that the
 * record seq starts at the ring's beginning.  GOV_ERR_INVALID_ARG when
 * out_size < GOV_SPOOL_FRAME_HEADER.  O(1). */
gov_err_t gov_spool_frame_write_wrap(uint8_t *out, size_t out_size, uint64_t seq);

/* Reads the frame at buf[0..avail) expecting seq expect_seq.  verify_crc 0
 * skips the CRC (only for bytes this process wrote or already verified).
 * Never reads past avail; *out is filled for RECORD and WRAP (size is the
 * frame's length; for TORN it is the bytes the frame claimed, capped at
 * avail).  O(frame) with the CRC, O(1) without. */
gov_spool_frame_kind_t gov_spool_frame_read(const uint8_t *buf, size_t avail,
                                            uint64_t expect_seq, int verify_crc,
                                            gov_spool_frame_t *out);

/* The cursor: what the spool's reader (Kafka's acknowledgements) has
 * consumed - a logical byte position and the next seq - with a generation
 * and a CRC, kept in two alternating 32-byte slots so a write cut by a kill
 * leaves the other slot intact. */
#define GOV_SPOOL_CURSOR_SLOT 32u
typedef struct gov_spool_cursor {
    uint64_t gen;
    uint64_t lsn;
    uint64_t seq;
} gov_spool_cursor_t;

/* Encodes c into out[0..GOV_SPOOL_CURSOR_SLOT).  O(1). */
void gov_spool_cursor_write(uint8_t *out, const gov_spool_cursor_t *c);
/* Decodes a slot: GOV_OK, or GOV_ERR_PARSE when its CRC does not match
 * (never written, or cut).  O(1). */
gov_err_t gov_spool_cursor_read(const uint8_t *in, gov_spool_cursor_t *out);

/* Looks for a whole frame (RECORD or WRAP, CRC verified) with seq seq
 * that starts at an 8-byte offset in buf[0..min(span, avail)) and lies
 * inside buf[0..avail).  This is how the spool tells a torn tail (nothing
 * follows it) from damage in the middle (the next seq is there, intact).
 * GOV_OK with *off set, or GOV_ERR_NOT_FOUND.  Borrows buf.  O(span / 8)
 * header checks plus a CRC per frame with that seq. */
gov_err_t gov_spool_frame_find(const uint8_t *buf, size_t avail, size_t span, uint64_t seq,
                               size_t *off);

/* Whether buf starts with a frame header (either magic), whatever its seq
 * or CRC; *seq gets the seq it names.  A spool whose cursor was never
 * stored holds seq 1 first, if anything: this tells "never written" from
 * "cursor lost".  O(1). */
int gov_spool_frame_peek(const uint8_t *buf, size_t avail, uint64_t *seq);

/* The spool file's header, the first GOV_SPOOL_HEADER_BYTES of its header
 * page:
 *
 *   off  0  "GOVSPOOL"
 *   off  8  u8 version (2; 1 = the same without a CRC), 7 bytes zero
 *   off 16  u64 capacity  the ring's bytes
 *   off 24  u32 crc       CRC-32C of bytes [0, 24)   (version 2)
 *   off 28  u32 zero
 *   off 32  u64 close_seq the next seq when the spool was last closed
 *                         cleanly (0: never); informational, for tools
 *                         that count the records left without a scan
 *                         (deploy/stack.sh), not covered by the CRC
 *
 * The CRC keeps a flipped capacity from moving every ring position. */
#define GOV_SPOOL_HEADER_BYTES 40u
#define GOV_SPOOL_HEADER_VERSION 2u

/* Encodes a version-2 header for capacity (close_seq 0) into
 * out[0..GOV_SPOOL_HEADER_BYTES).  O(1). */
void gov_spool_header_write(uint8_t *out, uint64_t capacity);
/* Sets the close_seq field of an encoded header.  O(1). */
void gov_spool_header_set_close_seq(uint8_t *hdr, uint64_t close_seq);
/* Decodes a header: GOV_OK with *capacity and *version (1 or 2);
 * GOV_ERR_PARSE when the magic or version is not ours, or a version-2 CRC
 * does not match (detail in errbuf).  Bounds on the capacity are the
 * caller's.  O(1). */
gov_err_t gov_spool_header_read(const uint8_t *in, uint64_t *capacity, unsigned *version,
                                char *errbuf, size_t errbuf_size);

#endif /* GOV_SPOOL_FRAME_H */
