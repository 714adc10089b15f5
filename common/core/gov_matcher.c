/* gov_matcher.c - the pattern matcher: a generic layer over a backend table,
 * and the Vectorscan backend.
 *
 * What it is for: a rule pack may hold hundreds of prompt patterns; scanning
 * the prompt once per pattern, or with a backtracking engine, would let a
 * request's size or shape decide how long an evaluation takes.  Vectorscan
 * compiles all patterns into one automaton and scans the data once, in time
 * linear in its length.
 *
 * How it works: the generic layer (gov_matcher_*) owns the handles and the
 * checks that do not depend on the engine (argument checks, the UTF-8 guard
 * of UTF-8 databases, zeroing the results); the backend (vs_*) turns
 * patterns into Vectorscan expressions - literals escaped byte by byte,
 * regexes passed as written - and turns Vectorscan's match callbacks into
 * "matched + lowest end offset" per pattern.  Every scan refits the scratch
 * to the database first, so a scratch prepared for another pack cannot be
 * misused (Vectorscan itself checks only part of the fit).
 *
 * Start-of-match offsets (HS_FLAG_SOM_LEFTMOST) cost memory and scan time
 * and Vectorscan refuses them for some patterns, so the scan database does
 * without; a second, span database of the same patterns serves
 * gov_matcher_spans, which gov_policy calls only to mask excerpts.  A
 * pattern the engine refuses start tracking for is compiled into it without
 * (its starts read 0); after SOM_RETRIES refusals no pattern gets it.
 *
 * What it does not do: no streaming mode, no caching: a caller keeps its
 * compiled matcher and its per-thread scratch.
 */
#include "gov_matcher.h"

#include <assert.h>
#include <hs/hs.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_util.h"

struct gov_matcher {
    const gov_matcher_backend_t *be;
    void *db;
    void *som_db;  /* the span database: same patterns, start-of-match where som[i] */
    unsigned char *som;   /* n flags: 1 when pattern i reports its true start */
    size_t n;
    int utf8_only;
    uint64_t id;   /* unique for the process's lifetime: never reused, unlike an address */
};

/* Fitting a scratch (hs_alloc_scratch) costs more than scanning a short
 * prompt, so a scratch remembers the matchers it was fitted to since it was
 * last allocated; Vectorscan scratches only grow, so a scratch fitted to a
 * matcher stays fit for it.  FITTED_MAX recent ids is plenty: a thread sees
 * a handful of live packs at a time; an id that fell out is simply fitted
 * again. */
#define FITTED_MAX 16

struct gov_matcher_scratch {
    const gov_matcher_backend_t *be;
    void *state;   /* backend scratch; NULL until first fitted */
    uint64_t fitted[FITTED_MAX];
    size_t nfitted, next;
};

static _Atomic uint64_t next_matcher_id = 1;

static int scratch_fitted(const gov_matcher_scratch_t *s, uint64_t id) {
    for (size_t i = 0; i < s->nfitted; i++)
        if (s->fitted[i] == id)
            return 1;
    return 0;
}

static void scratch_remember(gov_matcher_scratch_t *s, uint64_t id) {
    s->fitted[s->next] = id;
    s->next = (s->next + 1) % FITTED_MAX;
    if (s->nfitted < FITTED_MAX)
        s->nfitted++;
}


/* ---- Vectorscan backend -------------------------------------------------- */

static int is_alnum_ascii(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Writes the regex form of a literal into a new NUL-terminated buffer: ASCII
 * letters and digits as themselves, every other ASCII byte as \xHH; bytes >=
 * 0x80 raw in UTF-8 mode (where \xHH would mean the code point U+00HH, not
 * the byte) and as \xHH in byte mode.  O(len); at most 4 * len + 1 bytes. */
static char *vs_escape_literal(const char *text, size_t len, int utf8) {
    static const char hex[] = "0123456789abcdef";
    if (len > (SIZE_MAX - 1) / 4)
        return NULL;
    char *out = gov_malloc(4 * len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (is_alnum_ascii(c) || (utf8 && c >= 0x80)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

/* Vectorscan reports allocation failures as compile errors with no
 * expression index; these are its two messages for them (hs_enomem in
 * compiler/error.cpp, and dbCreate's caller in compiler/compiler.cpp). */
static int vs_error_is_nomem(const char *msg) {
    return msg != NULL && (strcmp(msg, "Unable to allocate memory.") == 0 ||
                           strcmp(msg, "Could not allocate memory for bytecode.") == 0);
}

static gov_err_t vs_compile(const gov_pattern_t *patterns, size_t n, const unsigned char *som,
                            void **db_out,
                            int *utf8_only, size_t *bad_index, char *errbuf,
                            size_t errbuf_size) {
    gov_err_t rc = GOV_OK;
    char **exprs = NULL;
    unsigned *flags = NULL, *ids = NULL;
    hs_database_t *db = NULL;
    hs_compile_error_t *cerr = NULL;
    size_t i;

    *db_out = NULL;
    *utf8_only = 0;
    if (n > UINT_MAX) {
        gov_errbuf(errbuf, errbuf_size, "too many patterns (%zu)", n);
        *bad_index = (size_t)-1;
        return GOV_ERR_UNSUPPORTED;
    }
    exprs = gov_calloc(n, sizeof *exprs);
    flags = gov_calloc(n, sizeof *flags);
    ids = gov_calloc(n, sizeof *ids);
    if (exprs == NULL || flags == NULL || ids == NULL) {
        rc = GOV_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        const gov_pattern_t *p = &patterns[i];
        int utf8 = gov_utf8_valid(p->text, p->len);
        if (p->kind == GOV_PATTERN_LITERAL) {
            exprs[i] = vs_escape_literal(p->text, p->len, utf8);
        } else {
            if (memchr(p->text, '\0', p->len) != NULL) {
                gov_errbuf(errbuf, errbuf_size, "a regex cannot hold a NUL byte (write \\x00)");
                *bad_index = i;
                rc = GOV_ERR_PARSE;
                goto out;
            }
            exprs[i] = gov_strndup(p->text, p->len);
        }
        if (exprs[i] == NULL) {
            rc = GOV_ERR_NOMEM;
            goto out;
        }
        flags[i] = (p->case_insensitive ? HS_FLAG_CASELESS : 0u) | (utf8 ? HS_FLAG_UTF8 : 0u) |
                   (som != NULL && som[i] ? HS_FLAG_SOM_LEFTMOST : 0u);
        ids[i] = (unsigned)i;
        if (utf8)
            *utf8_only = 1;
    }
    hs_error_t hr = hs_compile_multi((const char *const *)exprs, flags, ids, (unsigned)n,
                                     HS_MODE_BLOCK, NULL, &db, &cerr);
    if (hr == HS_COMPILER_ERROR && cerr != NULL) {
        /* An allocation failure may carry the index of the expression being
         * compiled when it happened: test the message first. */
        if (vs_error_is_nomem(cerr->message)) {
            gov_errbuf(errbuf, errbuf_size, "vectorscan: %s", cerr->message);
            rc = GOV_ERR_NOMEM;
        } else if (cerr->expression >= 0 && (size_t)cerr->expression < n) {
            *bad_index = (size_t)cerr->expression;
            gov_errbuf(errbuf, errbuf_size, "%s", cerr->message);
            rc = GOV_ERR_PARSE;
        } else {
            gov_errbuf(errbuf, errbuf_size, "vectorscan: %s", cerr->message);
            rc = GOV_ERR_UNSUPPORTED;
        }
        goto out;
    }
    if (hr != HS_SUCCESS) {
        gov_errbuf(errbuf, errbuf_size, "vectorscan: hs_compile_multi failed (%d)", (int)hr);
        rc = hr == HS_NOMEM ? GOV_ERR_NOMEM : GOV_ERR_INTERNAL;
        goto out;
    }
    *db_out = db;
    db = NULL;
out:
    if (rc == GOV_ERR_NOMEM) {
        *bad_index = (size_t)-1;
        if (errbuf != NULL && errbuf_size > 0 && errbuf[0] == '\0')
            gov_errbuf(errbuf, errbuf_size, "out of memory");
    }
    if (cerr != NULL)
        hs_free_compile_error(cerr);
    hs_free_database(db);
    if (exprs != NULL)
        for (i = 0; i < n; i++)
            gov_free(exprs[i]);
    gov_free(exprs);
    gov_free(flags);
    gov_free(ids);
    return rc;
}

static void vs_db_free(void *db) {
    hs_free_database(db);
}

static gov_err_t vs_scratch_prepare(const void *db, void **scratch) {
    hs_scratch_t *s = *scratch;
    hs_error_t hr = hs_alloc_scratch(db, &s);
    *scratch = s;   /* on HS_NOMEM Vectorscan has freed the old one: s is NULL */
    switch (hr) {
    case HS_SUCCESS:
        return GOV_OK;
    case HS_NOMEM:
        return GOV_ERR_NOMEM;
    case HS_SCRATCH_IN_USE:
    case HS_INVALID:
        return GOV_ERR_INVALID_ARG;
    default:
        return GOV_ERR_INTERNAL;
    }
}

static void vs_scratch_free(void *scratch) {
    hs_free_scratch(scratch);
}

typedef struct vs_span_ctx {
    gov_match_span_fn fn;
    void *ctx;
    size_t n;
} vs_span_ctx_t;

static int vs_on_span(unsigned id, unsigned long long from, unsigned long long to,
                      unsigned flags, void *ctx_) {
    (void)flags;
    vs_span_ctx_t *ctx = ctx_;
    assert(id < ctx->n);
    if (id >= ctx->n)
        return 0;
    return ctx->fn(ctx->ctx, id, (size_t)from, (size_t)to) != 0;
}

/* hs_scan's answer as a gov_err_t; a callback that stopped the scan is fine. */
static gov_err_t vs_scan_result(hs_error_t hr, char *errbuf, size_t errbuf_size) {
    switch (hr) {
    case HS_SUCCESS:
    case HS_SCAN_TERMINATED:
        return GOV_OK;
    case HS_NOMEM:
        gov_errbuf(errbuf, errbuf_size, "vectorscan: out of memory");
        return GOV_ERR_NOMEM;
    case HS_SCRATCH_IN_USE:
        gov_errbuf(errbuf, errbuf_size, "vectorscan: scratch in use by another scan");
        return GOV_ERR_INVALID_ARG;
    case HS_INVALID:
        gov_errbuf(errbuf, errbuf_size, "vectorscan: invalid database or scratch");
        return GOV_ERR_INVALID_ARG;
    default:
        gov_errbuf(errbuf, errbuf_size, "vectorscan: hs_scan failed (%d)", (int)hr);
        return GOV_ERR_INTERNAL;
    }
}

static gov_err_t vs_scan_spans(const void *db, void *scratch, const char *data, size_t len,
                               size_t n, gov_match_span_fn fn, void *ctx, char *errbuf,
                               size_t errbuf_size) {
    vs_span_ctx_t sc = {fn, ctx, n};
    return vs_scan_result(hs_scan(db, data, (unsigned)len, 0, scratch, vs_on_span, &sc), errbuf,
                          errbuf_size);
}

typedef struct vs_scan_ctx {
    gov_match_t *results;
    size_t n;
} vs_scan_ctx_t;

/* Keeps the lowest end offset per pattern; never stops the scan, because
 * a pattern with assertions may report a lower offset later. */
static int vs_on_match(unsigned id, unsigned long long from, unsigned long long to,
                       unsigned flags, void *ctx_) {
    (void)from;
    (void)flags;
    vs_scan_ctx_t *ctx = ctx_;
    assert(id < ctx->n);
    if (id >= ctx->n)
        return 0;
    gov_match_t *r = &ctx->results[id];
    if (!r->matched || (size_t)to < r->first_end) {
        r->matched = 1;
        r->first_end = (size_t)to;
    }
    return 0;
}

static gov_err_t vs_scan(const void *db, void *scratch, const char *data, size_t len,
                         gov_match_t *results, size_t n, char *errbuf, size_t errbuf_size) {
    vs_scan_ctx_t ctx = {results, n};
    return vs_scan_result(hs_scan(db, data, (unsigned)len, 0, scratch, vs_on_match, &ctx),
                          errbuf, errbuf_size);
}

static const gov_matcher_backend_t vectorscan_backend = {
    .name = "vectorscan",
    .compile = vs_compile,
    .db_free = vs_db_free,
    .scratch_prepare = vs_scratch_prepare,
    .scratch_free = vs_scratch_free,
    .scan = vs_scan,
    .scan_spans = vs_scan_spans,
};

const gov_matcher_backend_t *gov_matcher_backend_vectorscan(void) {
    return &vectorscan_backend;
}

static void *HS_CDECL vs_alloc(size_t size) {
    return gov_malloc(size);
}

static void HS_CDECL vs_free(void *p) {
    gov_free(p);
}

gov_err_t gov_matcher_install_allocator(void) {
    return hs_set_allocator(vs_alloc, vs_free) == HS_SUCCESS ? GOV_OK : GOV_ERR_INTERNAL;
}

/* ---- generic layer --------------------------------------------------------- */

/* Refusals of start tracking tolerated before no pattern gets it: each one
 * costs a whole compile, and a pack is bounded but may be large. */
#define SOM_RETRIES 8

/* Compiles m's span database: every pattern with start tracking, except
 * those the engine refuses it for (one compile per refusal, at most
 * SOM_RETRIES, then none).  The patterns compiled once already, so a
 * failure other than memory can only be about start tracking.
 * GOV_ERR_NOMEM, or GOV_ERR_INTERNAL when even the plain set fails. */
static gov_err_t compile_span_db(gov_matcher_t *m, const gov_pattern_t *patterns,
                                 char *errbuf, size_t errbuf_size) {
    m->som = gov_malloc(m->n);
    if (m->som == NULL) {
        gov_errbuf(errbuf, errbuf_size, "out of memory");
        return GOV_ERR_NOMEM;
    }
    memset(m->som, 1, m->n);
    for (int attempt = 0;; attempt++) {
        int utf8 = 0;
        size_t bad = (size_t)-1;
        char err[160] = "";
        gov_err_t rc =
            m->be->compile(patterns, m->n, m->som, &m->som_db, &utf8, &bad, err, sizeof err);
        if (rc == GOV_OK)
            return GOV_OK;
        if (rc == GOV_ERR_NOMEM) {
            gov_errbuf(errbuf, errbuf_size, "out of memory");
            return rc;
        }
        if (bad < m->n && m->som[bad] && attempt < SOM_RETRIES) {
            m->som[bad] = 0;
        } else if (memchr(m->som, 1, m->n) != NULL) {
            memset(m->som, 0, m->n);   /* the last try: the scan database's own flags */
        } else {
            gov_errbuf(errbuf, errbuf_size, "the span database failed: %s", err);
            return GOV_ERR_INTERNAL;
        }
    }
}

gov_err_t gov_matcher_compile(const gov_matcher_backend_t *backend, const gov_pattern_t *patterns,
                              size_t n, gov_matcher_t **out, size_t *bad_index, char *errbuf,
                              size_t errbuf_size) {
    size_t bad_dummy;
    if (bad_index == NULL)
        bad_index = &bad_dummy;
    *bad_index = (size_t)-1;
    if (errbuf != NULL && errbuf_size > 0)
        errbuf[0] = '\0';
    if (out == NULL)
        return GOV_ERR_INVALID_ARG;
    *out = NULL;
    if (patterns == NULL || n == 0) {
        gov_errbuf(errbuf, errbuf_size, "no patterns");
        return GOV_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++) {
        if (patterns[i].text == NULL || patterns[i].len == 0 ||
            (patterns[i].kind != GOV_PATTERN_LITERAL && patterns[i].kind != GOV_PATTERN_REGEX)) {
            *bad_index = i;
            gov_errbuf(errbuf, errbuf_size, "empty or malformed pattern");
            return GOV_ERR_INVALID_ARG;
        }
    }
    if (backend == NULL)
        backend = &vectorscan_backend;
    gov_matcher_t *m = gov_calloc(1, sizeof *m);
    if (m == NULL) {
        gov_errbuf(errbuf, errbuf_size, "out of memory");
        return GOV_ERR_NOMEM;
    }
    m->be = backend;
    m->n = n;
    m->id = atomic_fetch_add(&next_matcher_id, 1);
    gov_err_t rc =
        backend->compile(patterns, n, NULL, &m->db, &m->utf8_only, bad_index, errbuf, errbuf_size);
    if (rc != GOV_OK) {
        gov_free(m);
        return rc;
    }
    if ((rc = compile_span_db(m, patterns, errbuf, errbuf_size)) != GOV_OK) {
        gov_matcher_free(m);
        return rc;
    }
    *out = m;
    return GOV_OK;
}

void gov_matcher_free(gov_matcher_t *m) {
    if (m == NULL)
        return;
    m->be->db_free(m->db);
    if (m->som_db != NULL)
        m->be->db_free(m->som_db);
    gov_free(m->som);
    gov_free(m);
}

size_t gov_matcher_count(const gov_matcher_t *m) {
    return m ? m->n : 0;
}

int gov_matcher_utf8_only(const gov_matcher_t *m) {
    return m ? m->utf8_only : 0;
}

const char *gov_matcher_backend_name(const gov_matcher_t *m) {
    return m ? m->be->name : "none";
}

gov_err_t gov_matcher_scratch_new(const gov_matcher_t *m, gov_matcher_scratch_t **out) {
    if (out == NULL)
        return GOV_ERR_INVALID_ARG;
    *out = NULL;
    gov_matcher_scratch_t *s = gov_calloc(1, sizeof *s);
    if (s == NULL)
        return GOV_ERR_NOMEM;
    s->be = m ? m->be : &vectorscan_backend;
    if (m != NULL) {
        gov_err_t rc = gov_matcher_scratch_prepare(s, m);
        if (rc != GOV_OK) {
            gov_matcher_scratch_free(s);
            return rc;
        }
    }
    *out = s;
    return GOV_OK;
}

gov_err_t gov_matcher_scratch_prepare(gov_matcher_scratch_t *s, const gov_matcher_t *m) {
    if (s == NULL || m == NULL)
        return GOV_ERR_INVALID_ARG;
    if (s->state == NULL)
        s->be = m->be;
    else if (s->be != m->be)
        return GOV_ERR_INVALID_ARG;
    if (s->state != NULL && scratch_fitted(s, m->id))
        return GOV_OK;
    gov_err_t rc = m->be->scratch_prepare(m->db, &s->state);
    if (rc == GOV_OK)
        rc = m->be->scratch_prepare(m->som_db, &s->state);
    if (rc == GOV_OK)
        scratch_remember(s, m->id);
    else if (s->state == NULL)
        s->nfitted = 0; /* the backend freed it: nothing is fitted any more */
    return rc;
}

void gov_matcher_scratch_free(gov_matcher_scratch_t *s) {
    if (s == NULL)
        return;
    if (s->state != NULL)
        s->be->scratch_free(s->state);
    gov_free(s);
}

int gov_matcher_pattern_has_start(const gov_matcher_t *m, size_t i) {
    return m != NULL && i < m->n && m->som[i];
}

/* The checks every scan makes before the engine sees the data: the length
 * fits the engine, UTF-8 databases get valid UTF-8, the scratch fits. */
static gov_err_t scan_ready(const gov_matcher_t *m, gov_matcher_scratch_t *s, const char *data,
                            size_t len, int known_utf8, char *errbuf, size_t errbuf_size) {
    if (len > UINT_MAX) {
        gov_errbuf(errbuf, errbuf_size, "data of %zu bytes exceeds the engine's limit", len);
        return GOV_ERR_TOO_LARGE;
    }
    if (m->utf8_only && !known_utf8 && !gov_utf8_valid(data ? data : "", len)) {
        gov_errbuf(errbuf, errbuf_size, "data is not valid UTF-8");
        return GOV_ERR_INVALID_ARG;
    }
    gov_err_t rc = gov_matcher_scratch_prepare(s, m);
    if (rc != GOV_OK)
        gov_errbuf(errbuf, errbuf_size, "cannot fit the scratch to the database: %s",
                   gov_err_code(rc));
    return rc;
}

gov_err_t gov_matcher_scan(const gov_matcher_t *m, gov_matcher_scratch_t *s, const char *data,
                           size_t len, gov_match_t *results, char *errbuf, size_t errbuf_size) {
    if (m == NULL || s == NULL || results == NULL || (data == NULL && len > 0)) {
        gov_errbuf(errbuf, errbuf_size, "NULL argument");
        return GOV_ERR_INVALID_ARG;
    }
    memset(results, 0, m->n * sizeof *results);
    gov_err_t rc = scan_ready(m, s, data, len, 0, errbuf, errbuf_size);
    if (rc != GOV_OK)
        return rc;
    return m->be->scan(m->db, s->state, data ? data : "", len, results, m->n, errbuf,
                       errbuf_size);
}

static gov_err_t spans(const gov_matcher_t *m, gov_matcher_scratch_t *s, const char *data,
                       size_t len, int known_utf8, gov_match_span_fn fn, void *ctx, char *errbuf,
                       size_t errbuf_size) {
    if (m == NULL || s == NULL || fn == NULL || (data == NULL && len > 0)) {
        gov_errbuf(errbuf, errbuf_size, "NULL argument");
        return GOV_ERR_INVALID_ARG;
    }
    gov_err_t rc = scan_ready(m, s, data, len, known_utf8, errbuf, errbuf_size);
    if (rc != GOV_OK)
        return rc;
    return m->be->scan_spans(m->som_db, s->state, data ? data : "", len, m->n, fn, ctx, errbuf,
                             errbuf_size);
}

gov_err_t gov_matcher_spans(const gov_matcher_t *m, gov_matcher_scratch_t *s, const char *data,
                            size_t len, gov_match_span_fn fn, void *ctx, char *errbuf,
                            size_t errbuf_size) {
    return spans(m, s, data, len, 0, fn, ctx, errbuf, errbuf_size);
}

gov_err_t gov_matcher_spans_utf8(const gov_matcher_t *m, gov_matcher_scratch_t *s,
                                 const char *data, size_t len, gov_match_span_fn fn, void *ctx,
                                 char *errbuf, size_t errbuf_size) {
    return spans(m, s, data, len, 1, fn, ctx, errbuf, errbuf_size);
}
