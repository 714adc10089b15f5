/* gov_matcher.h - multi-pattern matching behind a small backend table.
 *
 * A rule pack's prompt patterns (literals and regexes) are compiled into ONE
 * database; one scan of the prompt then says, for every pattern, whether it
 * matched and where its first match ends.  The engine sits behind a table of
 * function pointers (gov_matcher_backend_t), as Redis's ae.c sits over
 * ae_epoll.c: the rest of libgov sees gov_matcher_t and gov_matcher_scratch_t
 * only.  There is one backend, the real one: Vectorscan (Hyperscan's API,
 * <hs/hs.h>), block mode, linear time in the data, no backtracking.
 *
 * Pattern semantics (Vectorscan / PCRE syntax, PCRE defaults: "." does not
 * match "\n", "^" and "$" anchor at the ends of the data):
 *   GOV_PATTERN_LITERAL  the exact bytes; every ASCII byte that is not a
 *                        letter or digit is escaped as \xHH before compiling,
 *                        so no byte is a metacharacter (bytes >= 0x80 stay
 *                        raw in UTF-8 mode, where \xHH would mean U+00HH).
 *   GOV_PATTERN_REGEX    Vectorscan syntax as given.  Back-references,
 *                        lookaround and other backtracking-only constructs
 *                        are refused by Vectorscan at compile time; so is a
 *                        pattern that can match the empty string.
 *   case_insensitive     HS_FLAG_CASELESS.  In UTF-8 mode Vectorscan folds
 *                        case the Unicode way ("é" matches "É", "k" matches
 *                        KELVIN SIGN); literals and regexes get exactly the
 *                        same treatment.
 *   UTF-8 mode           a pattern whose bytes are valid UTF-8 (every pattern
 *                        coming from JSON) is compiled with HS_FLAG_UTF8, so
 *                        "." and classes work on characters and matches end
 *                        on character boundaries.  Such a database may only
 *                        scan valid UTF-8 (Vectorscan's behaviour is
 *                        undefined otherwise): gov_matcher_scan checks it.
 * Spans for redaction: besides the scan database, every matcher compiles the
 * same patterns a second time with HS_FLAG_SOM_LEFTMOST, so that
 * gov_matcher_spans can say where each match STARTS (the leftmost start for
 * each end).  That database is only scanned when a decision has excerpts to
 * mask, so the common path (no match) pays nothing for it.  Vectorscan
 * refuses start-of-match tracking for some patterns it compiles without it
 * ("Pattern is too large.", e.g. a bounded repeat of a wide class before a
 * literal); such a pattern stays in the span database without it, and its
 * matches report start 0 - "somewhere before the end" - so a caller that
 * masks [start, end) masks too much, never too little
 * (gov_matcher_pattern_has_start says which patterns are exact).
 * HS_FLAG_SINGLEMATCH is not used: Vectorscan may report the matches of a
 * pattern with assertions (\b, $) out of end-offset order
 * (hs_expr_info_t.unordered_matches), so the single match it would keep need
 * not be the first.  The scan callback keeps the minimum end offset instead.
 *
 * Thread-safety (Hyperscan's rules): a gov_matcher_t is immutable after
 * compilation and may be scanned by any number of threads at once.  A
 * gov_matcher_scratch_t is per thread (or per concurrent caller): it must
 * never be used by two scans at the same time.  One scratch may serve many
 * databases: gov_matcher_scan first makes the scratch fit the database it is
 * given (hs_alloc_scratch, which returns at once when it fits already), so a
 * scratch is never used with a database it was not allocated for.
 */
#ifndef GOV_MATCHER_H
#define GOV_MATCHER_H

#include <stddef.h>

#include "gov_err.h"

typedef enum gov_pattern_kind {
    GOV_PATTERN_LITERAL = 0,
    GOV_PATTERN_REGEX = 1,
} gov_pattern_kind_t;

/* One pattern to compile; its index in the array is its id in the results. */
typedef struct gov_pattern {
    gov_pattern_kind_t kind;
    const char *text;          /* borrowed; len bytes, no NUL terminator needed */
    size_t len;                /* >= 1 */
    int case_insensitive;
} gov_pattern_t;

/* Per-pattern result of one scan. */
typedef struct gov_match {
    int matched;               /* 1 when the pattern matched anywhere */
    size_t first_end;          /* lowest match end offset (exclusive), when matched */
} gov_match_t;

/* Called by gov_matcher_spans for every match: pattern id, leftmost start
 * and end (exclusive) byte offsets.  Returns 0 to go on. */
typedef int (*gov_match_span_fn)(void *ctx, size_t pattern, size_t start, size_t end);

/* The backend table.  All members are required.  `db` and `scratch` are the
 * backend's private state; the generic layer never looks inside. */
typedef struct gov_matcher_backend {
    const char *name;
    /* Compiles n >= 1 patterns into *db; som (NULL: none) marks the
     * patterns whose matches must report their leftmost start.  On failure
     * *bad_index is the index of the culprit pattern, or (size_t)-1 when the
     * failure is not about one pattern, and errbuf names the engine's
     * reason. */
    gov_err_t (*compile)(const gov_pattern_t *patterns, size_t n, const unsigned char *som,
                         void **db, int *utf8_only, size_t *bad_index, char *errbuf,
                         size_t errbuf_size);
    void (*db_free)(void *db);
    /* Makes *scratch (NULL: none yet) usable with db as well; on failure
     * *scratch is NULL (the old one is gone). */
    gov_err_t (*scratch_prepare)(const void *db, void **scratch);
    void (*scratch_free)(void *scratch);
    /* Scans data; results has one zeroed entry per pattern. */
    gov_err_t (*scan)(const void *db, void *scratch, const char *data, size_t len,
                      gov_match_t *results, size_t n, char *errbuf, size_t errbuf_size);
    /* Scans data with a som database, calling fn for every match. */
    gov_err_t (*scan_spans)(const void *db, void *scratch, const char *data, size_t len, size_t n,
                            gov_match_span_fn fn, void *ctx, char *errbuf, size_t errbuf_size);
} gov_matcher_backend_t;

typedef struct gov_matcher gov_matcher_t;
typedef struct gov_matcher_scratch gov_matcher_scratch_t;

/* The Vectorscan backend (static storage, never NULL). */
const gov_matcher_backend_t *gov_matcher_backend_vectorscan(void);

/* Makes Vectorscan allocate through gov_malloc/gov_free (hs_set_allocator),
 * so failure injection reaches its databases, scratches and error reports.
 * Process-wide: call once at start, before any compile, like
 * gov_alloc_install_jansson().  Returns GOV_OK or GOV_ERR_INTERNAL. */
gov_err_t gov_matcher_install_allocator(void);

/* Compiles patterns[0..n) (borrowed; copied as needed) into one database.
 * backend NULL means Vectorscan.  On GOV_OK *out is a new matcher
 * (gov_matcher_free).  On failure *out is NULL and *bad_index (may be NULL)
 * is set:
 *   GOV_ERR_PARSE        the engine refused pattern *bad_index (errbuf has
 *                        its reason, e.g. "Back-references are unsupported.")
 *                        or a regex holds a NUL byte
 *   GOV_ERR_UNSUPPORTED  the engine refused the set as a whole
 *                        (*bad_index = (size_t)-1), e.g. too large
 *   GOV_ERR_INVALID_ARG  n == 0, an empty pattern, NULL arguments
 *   GOV_ERR_NOMEM
 * Cost: the engine's compile time, superlinear in the total pattern size;
 * bound the input (gov_rulepack limits) before calling. */
gov_err_t gov_matcher_compile(const gov_matcher_backend_t *backend, const gov_pattern_t *patterns,
                              size_t n, gov_matcher_t **out, size_t *bad_index, char *errbuf,
                              size_t errbuf_size);
void gov_matcher_free(gov_matcher_t *m);
/* Number of patterns (results entries a scan fills). */
size_t gov_matcher_count(const gov_matcher_t *m);
/* 1 when the database only scans valid UTF-8 (some pattern is in UTF-8 mode). */
int gov_matcher_utf8_only(const gov_matcher_t *m);
/* Backend name ("vectorscan"). */
const char *gov_matcher_backend_name(const gov_matcher_t *m);

/* A new scratch fitted to m (m may be NULL: an empty scratch that the first
 * scan or prepare fits).  The caller frees it with gov_matcher_scratch_free.
 * GOV_ERR_NOMEM on allocation failure. */
gov_err_t gov_matcher_scratch_new(const gov_matcher_t *m, gov_matcher_scratch_t **out);
/* Makes s usable with m as well as with every database it fitted before
 * (pre-sizing, e.g. when a new pack is loaded).  On failure s is left empty
 * but valid: the next prepare or scan allocates again.  m and s must belong
 * to the same backend (GOV_ERR_INVALID_ARG otherwise). */
gov_err_t gov_matcher_scratch_prepare(gov_matcher_scratch_t *s, const gov_matcher_t *m);
void gov_matcher_scratch_free(gov_matcher_scratch_t *s);

/* Scans data[0..len) and fills results[0..gov_matcher_count(m)) (caller's
 * array): for each pattern, matched and its lowest match end offset.  The
 * answer depends only on m and the data (not on the scratch's history).
 *   GOV_ERR_INVALID_ARG  NULL arguments, a backend mismatch, data that is not
 *                        valid UTF-8 for a UTF-8 database, or a scratch in
 *                        use by another scan
 *   GOV_ERR_TOO_LARGE    len > UINT_MAX (the engine's length type)
 *   GOV_ERR_NOMEM        fitting the scratch failed
 *   GOV_ERR_INTERNAL     the engine reported an error
 * Cost: O(len) for the UTF-8 check and the scan, plus one callback per
 * match (at most patterns x len). */
gov_err_t gov_matcher_scan(const gov_matcher_t *m, gov_matcher_scratch_t *s, const char *data,
                           size_t len, gov_match_t *results, char *errbuf, size_t errbuf_size);

/* 1 when gov_matcher_spans reports the true leftmost start of pattern i's
 * matches, 0 when it reports 0 for them (the engine refused start-of-match
 * tracking for that pattern).  O(1). */
int gov_matcher_pattern_has_start(const gov_matcher_t *m, size_t i);

/* Scans data[0..len) again and calls fn(ctx, pattern, start, end) for EVERY
 * match of every pattern, start being the leftmost start of a match with that
 * end (0 for a pattern without start tracking), in the engine's order
 * (mostly by end; not sorted).  Same argument, UTF-8 and scratch rules and
 * errors as gov_matcher_scan.  fn returning non-zero stops the scan (GOV_OK).
 * Cost: O(len) plus one call per match (at most patterns x len): a caller
 * bounds what it does per call. */
gov_err_t gov_matcher_spans(const gov_matcher_t *m, gov_matcher_scratch_t *s, const char *data,
                            size_t len, gov_match_span_fn fn, void *ctx, char *errbuf,
                            size_t errbuf_size);

/* gov_matcher_spans for data the caller has already checked to be valid
 * UTF-8 (gov_policy_request_parse checks every byte of the prompt as it
 * decodes it), so a UTF-8 database's guard does not read it a second time.
 * Passing anything else is undefined behaviour in Vectorscan: the caller
 * vouches.  Same arguments, errors and cost otherwise. */
gov_err_t gov_matcher_spans_utf8(const gov_matcher_t *m, gov_matcher_scratch_t *s,
                                 const char *data, size_t len, gov_match_span_fn fn, void *ctx,
                                 char *errbuf, size_t errbuf_size);

#endif /* GOV_MATCHER_H */
