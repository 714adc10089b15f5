/* gov_version.h - versions of constitutions and rule packs.
 *
 * A version is semver 2.0.0 (MAJOR.MINOR.PATCH with optional -prerelease
 * and +build) or a non-negative integer N, read as N.0.0 (SomaBrain numbers
 * its constitutions).  Versions decide what may replace what, so parsing is
 * strict: no leading zeros, no "v" prefix, no missing parts, no overflow.
 *
 * Thread-safety: all functions are pure and thread-safe.
 */
#ifndef GOV_VERSION_H
#define GOV_VERSION_H

/* Longest version text accepted, with the NUL. */
#define GOV_VERSION_MAX 64

typedef struct gov_version {
    unsigned long long major, minor, patch;
    char pre[GOV_VERSION_MAX];   /* prerelease identifiers, "" when none */
} gov_version_t;

/* Parses s (borrowed, may be NULL) into *out.  Returns 0, or -1 when s is
 * not a version (then *out is untouched).  O(strlen(s)). */
int gov_version_parse(const char *s, gov_version_t *out);

/* Semver precedence: <0, 0, >0.  Build metadata is ignored (it is not kept).
 * O(length of the prerelease parts). */
int gov_version_compare(const gov_version_t *a, const gov_version_t *b);

#endif /* GOV_VERSION_H */
