/* gov_version.h - versions of constitutions and rule packs.
 *
 * A version is semver 2.0.0 (MAJOR.MINOR.PATCH with optional -prerelease
 * and +build) or a non-negative integer N, read as N.0.0 (SomaBrain numbers
 * its constitutions).  Versions decide what may replace what, so parsing is
 * strict: no leading zeros, no "v" prefix, no missing parts, no overflow.
 *
 * Limits (docs/contracts.md, "Versions"): the text is at most
 * GOV_VERSION_MAX - 1 bytes, and MAJOR, MINOR, PATCH and the integer form
 * are at most GOV_VERSION_NUM_MAX = 2^53 - 1.  A version travels inside
 * JSON that is canonicalized: JCS (RFC 8785) writes every number as an
 * IEEE-754 double, so an integer version above 2^53 - 1 would be stored as
 * a different integer than the one validated (9223372036854775807 becomes
 * 9223372036854776000).  Such versions are refused, never rounded; so are
 * longer texts, never truncated.  The same bound holds inside strings, so
 * "N" and N mean the same version whichever spelling a publisher uses.
 *
 * Thread-safety: all functions are pure and thread-safe.
 */
#ifndef GOV_VERSION_H
#define GOV_VERSION_H

#include <jansson.h>
#include <stddef.h>

#include "gov_err.h"
#include "gov_reason.h"

/* Longest version text accepted, with the NUL. */
#define GOV_VERSION_MAX 64
/* Largest MAJOR, MINOR, PATCH or integer version: 2^53 - 1, the largest
 * integer every IEEE-754 double reader holds exactly (RFC 7493 2.2). */
#define GOV_VERSION_NUM_MAX 9007199254740991ULL

typedef struct gov_version {
    unsigned long long major, minor, patch;
    char pre[GOV_VERSION_MAX];   /* prerelease identifiers, "" when none */
} gov_version_t;

/* Parses s (borrowed, may be NULL) into *out.  Returns 0, or -1 when s is
 * not a version or breaks a limit (then *out is untouched).  O(strlen(s)). */
int gov_version_parse(const char *s, gov_version_t *out);

/* Parses the len bytes at s (borrowed; no NUL needed) into *out, saying why
 * when it refuses (then *out is untouched).  Returns GOV_OK (*reason NONE),
 * or with *reason (may be NULL) and the detail in errbuf (may be NULL),
 * worded to follow a field name ("is longer than 63 bytes"):
 *   GOV_ERR_TOO_LARGE    GOV_REASON_VERSION_TOO_LONG: len >= GOV_VERSION_MAX
 *                        GOV_REASON_VERSION_TOO_LARGE: a number above
 *                        GOV_VERSION_NUM_MAX
 *   GOV_ERR_VERIFY       GOV_REASON_INVALID_VALUE: not a version (a NUL byte
 *                        included)
 *   GOV_ERR_INVALID_ARG  GOV_REASON_INVALID_ARG: s or out NULL
 * O(len). */
gov_err_t gov_version_parse_text(const char *s, size_t len, gov_version_t *out,
                                 gov_reason_t *reason, char *errbuf, size_t errbuf_size);

/* Reads a JSON version member v (borrowed, may be NULL when absent): a
 * string, or a non-negative JSON integer N meaning "N".  Writes the text
 * into text (always NUL-terminated; "" on failure) and the parsed version
 * into *out.  Errors are gov_version_parse_text's, plus:
 *   GOV_ERR_VERIFY  GOV_REASON_MISSING_FIELD (v NULL), GOV_REASON_INVALID_TYPE
 *                   (not a string or integer: a real 1.0 included),
 *                   GOV_REASON_INVALID_VALUE (a negative integer)
 * An integer above GOV_VERSION_NUM_MAX is GOV_REASON_VERSION_TOO_LARGE.
 * O(length of the text). */
gov_err_t gov_version_from_json(const json_t *v, char text[GOV_VERSION_MAX], gov_version_t *out,
                                gov_reason_t *reason, char *errbuf, size_t errbuf_size);

/* Semver precedence: <0, 0, >0.  Build metadata is ignored (it is not kept).
 * O(length of the prerelease parts). */
int gov_version_compare(const gov_version_t *a, const gov_version_t *b);

#endif /* GOV_VERSION_H */
