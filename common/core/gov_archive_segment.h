/* gov_archive_segment.h - reading an archived audit segment: an Avro Object
 * Container File of AuditChainEntry records (docs/contracts.md, "The
 * archive").
 *
 * gov-archive writes segments with avro-c's file writer; reading them back
 * (govctl audit verify --archive, gov-archive's restart) is done here, not
 * by avro-c, because avro-c 1.11 trusts its input and a segment on disk is
 * outside input (anyone with access to the directory can change it).  The
 * reader walks the container format bounded by the bytes it was given:
 * magic, the metadata map (avro.schema must have the Parsing Canonical
 * Form the caller expects, avro.codec absent or "null"), the sync marker,
 * then blocks (object count, byte size, records, the same sync marker),
 * every length checked against what remains before it is used.
 *
 * Pure: takes the file's bytes, touches no file.  Thread-safe.
 */
#ifndef GOV_ARCHIVE_SEGMENT_H
#define GOV_ARCHIVE_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "gov_audit_chain.h"
#include "gov_err.h"

/* One record as read (every string a NUL-terminated copy, borrowed for the
 * callback only; no field but payload holds a NUL). */
typedef struct gov_archive_record {
    const char *tenant;
    gov_audit_entry_t entry;   /* the fields the hash covers */
    const char *hash;          /* the stored hash */
} gov_archive_record_t;

/* Called once per record, in file order.  Returning anything but GOV_OK
 * stops the walk and is returned by gov_archive_segment_read. */
typedef gov_err_t (*gov_archive_record_fn)(void *ctx, const gov_archive_record_t *rec,
                                           char *errbuf, size_t errbuf_size);

/* Hard bounds on a segment file and its parts. */
#define GOV_ARCHIVE_SEGMENT_MAX_BYTES (256u * 1024 * 1024)
#define GOV_ARCHIVE_META_MAX_ENTRIES 64

/* Walks the container in buf[0..len) (borrowed) and calls fn for every
 * record.  expected_pcf: the Parsing Canonical Form of AuditChainEntry (the
 * file's avro.schema must have it).  GOV_ERR_PARSE with the reason in
 * errbuf for anything that is not such a file (truncated, bad magic, wrong
 * schema or codec, a length beyond the remaining bytes, a sync marker that
 * differs, a negative count or seq, a NUL in a field other than payload);
 * GOV_ERR_NOMEM; or what fn returned.  Cost: O(len), one allocation per
 * string field per record. */
gov_err_t gov_archive_segment_read(const void *buf, size_t len, const char *expected_pcf,
                                   gov_archive_record_fn fn, void *ctx, char *errbuf,
                                   size_t errbuf_size);

#endif /* GOV_ARCHIVE_SEGMENT_H */
