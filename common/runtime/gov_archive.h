/* gov_archive.h - the files of the audit archive: segment names, the listing
 * of a tenant's directory, reading a segment, and writing one atomically
 * (docs/contracts.md, "The archive").
 *
 *   <archive_dir>/<tenant>/<first seq>-<last seq>.avro   (20 digits each)
 *
 * Writing uses avro-c's file writer (the container format, codec null) into
 * a temporary ".seg-XXXXXX.tmp" of the same directory, then fsync, rename,
 * fsync of the directory: a segment name exists only for a complete, durable
 * file.  Reading goes through gov_archive_segment_read (core, bounded): a
 * file on disk is outside input.
 *
 * Thread-safety: no shared state; a writer belongs to one thread.
 */
#ifndef GOV_ARCHIVE_H
#define GOV_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "gov_archive_segment.h"
#include "gov_audit_chain.h"
#include "gov_err.h"

#define GOV_ARCHIVE_NAME_MAX 48   /* "%020llu-%020llu.avro" + NUL */
#define GOV_ARCHIVE_LIST_MAX 1000000
/* The largest entry a segment can hold: avro-c refuses a record larger than
 * its block, and the writer's block is this size (a 1 MiB event with room). */
#define GOV_ARCHIVE_ENTRY_MAX_BYTES (4u * 1024 * 1024)
/* The largest byte budget a writer may be given (gov-archive's
 * segment_max_bytes).  A segment is cut at the entry that crosses the
 * budget, so a file holds at most budget + one entry + container framing:
 * that must stay well under what the readers accept, or the archive could
 * not be read back by its own tools. */
#define GOV_ARCHIVE_WRITER_MAX_BYTES (96u * 1024 * 1024)
_Static_assert(GOV_ARCHIVE_WRITER_MAX_BYTES + GOV_ARCHIVE_ENTRY_MAX_BYTES <=
                   GOV_ARCHIVE_SEGMENT_MAX_BYTES / 2,
               "a full segment must stay well under the reader's bound");

/* An upper bound of the bytes one entry (borrowed) of tenant's chain takes
 * in a segment: every field's bytes plus the longest varint of each length
 * and number.  What a writer counts against its budget.  Cost: O(1) plus
 * the strlen of the short fields. */
size_t gov_archive_record_bytes(const char *tenant, const gov_audit_entry_t *e,
                                const char *hash);

/* The directory dir lives in, into out (size bytes): dir without its
 * trailing slashes, up to its last '/' - "var" for "var/archive/", "/" for
 * "/x", "." for "x".  0, or -1 when it does not fit.  Pure. */
int gov_archive_parent_dir(const char *dir, char *out, size_t size);

/* Creates dir (mode 0750; its parent must exist) when it is missing and
 * then fsyncs its parent - when it existed already too, so a retry after a
 * failed fsync still makes the entry durable - before anything is written
 * in it: without that, a power loss after the first segment (watermark
 * moved, stream trimmed) could lose the whole directory on a file system
 * that does not order the parent's entry.  *created is 1 when it was made
 * now.  GOV_ERR_IO with the cause in errbuf. */
gov_err_t gov_archive_mkdir(const char *dir, int *created, char *errbuf, size_t errbuf_size);

/* Writes the segment name of [first, last] into out. */
void gov_archive_segment_name(uint64_t first, uint64_t last, char out[GOV_ARCHIVE_NAME_MAX]);
/* 1 when name is exactly such a name (first >= 1, last >= first). */
int gov_archive_segment_name_parse(const char *name, uint64_t *first, uint64_t *last);

typedef struct gov_archive_segment_ref {
    uint64_t first, last;
    char name[GOV_ARCHIVE_NAME_MAX];
} gov_archive_segment_ref_t;

/* The segments of one tenant's directory, sorted by (first, last); owned
 * (gov_archive_listing_clear).  other: entries that are neither segments
 * nor temporaries ("." names), counted. */
typedef struct gov_archive_listing {
    gov_archive_segment_ref_t *seg;
    size_t n, cap;
    size_t other;
} gov_archive_listing_t;

/* Lists dir (a missing directory is an empty listing).  At most
 * GOV_ARCHIVE_LIST_MAX segments (GOV_ERR_TOO_LARGE beyond).  Cost: one
 * readdir pass and a sort. */
gov_err_t gov_archive_list(const char *dir, gov_archive_listing_t *out, char *errbuf,
                           size_t errbuf_size);
void gov_archive_listing_clear(gov_archive_listing_t *l);

/* Removes the ".seg-*.tmp" temporaries a killed writer left in dir
 * (*removed counts them).  Only the directory's one writer may call it. */
gov_err_t gov_archive_remove_temporaries(const char *dir, int *removed, char *errbuf,
                                         size_t errbuf_size);

/* Reads dir/name (bounded by GOV_ARCHIVE_SEGMENT_MAX_BYTES) and walks its
 * records with fn (gov_archive_segment_read).  GOV_ERR_PARSE for a file
 * that is not a segment; I/O errors as gov_file_read. */
gov_err_t gov_archive_segment_load(const char *dir, const char *name, gov_archive_record_fn fn,
                                   void *ctx, char *errbuf, size_t errbuf_size);

typedef struct gov_archive_writer gov_archive_writer_t;

/* Creates dir (mode 0750, parents not) when missing and a new temporary
 * segment in it.  *out is a new writer (gov_archive_writer_free). */
gov_err_t gov_archive_writer_open(const char *dir, gov_archive_writer_t **out, char *errbuf,
                                  size_t errbuf_size);
/* Appends one entry (borrowed) of tenant's chain with its stored hash.
 * Every string must be NUL-terminated, the payload at payload_len too (as a
 * Redis reply's is): avro-c is handed the terminator. */
gov_err_t gov_archive_writer_append(gov_archive_writer_t *w, const char *tenant,
                                    const gov_audit_entry_t *e, const char *hash, char *errbuf,
                                    size_t errbuf_size);
/* Closes the file, fsyncs it, renames it to the name of [first, last]
 * (refusing to replace an existing file: GOV_ERR_EXISTS), fsyncs the
 * directory.  name_out gets the name.  The writer is spent either way. */
gov_err_t gov_archive_writer_commit(gov_archive_writer_t *w, uint64_t first, uint64_t last,
                                    char name_out[GOV_ARCHIVE_NAME_MAX], char *errbuf,
                                    size_t errbuf_size);
/* Frees the writer; an uncommitted temporary is removed.  NULL is a no-op. */
void gov_archive_writer_free(gov_archive_writer_t *w);

/* The Parsing Canonical Form of AuditChainEntry (new string, gov_free). */
gov_err_t gov_archive_schema_pcf(char **out, char *errbuf, size_t errbuf_size);

#endif /* GOV_ARCHIVE_H */
