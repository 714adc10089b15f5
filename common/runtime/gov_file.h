/* gov_file.h - the one bounded file reader.
 *
 *   char *text; size_t len;
 *   if (gov_file_read(path, 1 << 20, 0, &text, &len, eb, sizeof eb) != GOV_OK)
 *       ... eb names the path and what went wrong ...
 *
 * Reads a whole file into new memory, NUL-terminated, refusing anything
 * larger than a byte limit before it grows past it.  Errors are distinct and
 * name the path:
 *   GOV_ERR_NOT_FOUND  "cannot open <path>: No such file or directory"
 *   GOV_ERR_IO         "cannot open <path>: <reason>" (permissions, ...),
 *                      "<path> is a directory", "<path> is not a regular
 *                      file", "cannot read <path>: <reason>"
 *   GOV_ERR_TOO_LARGE  "<path> is larger than <max> bytes"
 *   GOV_ERR_NOMEM      "out of memory"
 *
 * gov_file_trust_load reads a trust file with it and parses it
 * (gov_trust_parse, pure, in common/core): the I/O half of loading trust,
 * shared by every binary that verifies signatures.
 *
 * Thread-safety: thread-safe (no shared state).
 */
#ifndef GOV_FILE_H
#define GOV_FILE_H

#include <stddef.h>

#include "gov_err.h"

enum {
    /* "-" reads standard input (not closed afterwards). */
    GOV_FILE_DASH_IS_STDIN = 1 << 0,
    /* Accept pipes, character devices and other streams besides regular
     * files (directories are always refused). */
    GOV_FILE_ALLOW_STREAM = 1 << 1,
    /* The content is a secret (a private key): it is read into one buffer
     * of max + 1 bytes that is never reallocated, and wiped on failure, so
     * the caller holds the only copy and can cleanse it. */
    GOV_FILE_SECRET = 1 << 2,
};

/* Reads path (at most max bytes) into a new gov_malloc buffer *out (free
 * with gov_free; NUL-terminated, *out_len bytes without the NUL).  flags:
 * GOV_FILE_* above.  On error *out is NULL and errbuf says why (see above).
 * Cost: O(file size); memory at most max + 1 bytes (twice that briefly while
 * growing, secrets excepted). */
gov_err_t gov_file_read(const char *path, size_t max, unsigned flags, char **out,
                        size_t *out_len, char *errbuf, size_t errbuf_size);

/* The largest trust file read (local configuration). */
#define GOV_TRUST_FILE_MAX (1u << 20)

struct gov_trust;
/* Reads and parses a trust file (gov_trust_parse's format) at path: on
 * GOV_OK *out is a new trust (gov_trust_free).  A NULL path is an error
 * ("not configured").  gov-constitution and gov-edge load theirs here, so
 * both read the same file the same way. */
gov_err_t gov_file_trust_load(const char *path, struct gov_trust **out, char *errbuf,
                              size_t errbuf_size);

#endif /* GOV_FILE_H */
