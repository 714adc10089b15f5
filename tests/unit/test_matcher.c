/* test_matcher.c - gov_matcher over the real Vectorscan backend.
 *
 * Expected answers come from outside the matcher: hand-placed offsets in
 * short texts, and, for the random properties, a naive reference search
 * (memmem-style, with ASCII case folding) written here.  Vectorscan's own
 * refusals (back-references, unbalanced groups, patterns that match the
 * empty string) are provoked for real and must name the pattern index.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_matcher.h"
#include "gov_util.h"

static gov_pattern_t lit(const char *s, int ci) {
    gov_pattern_t p = {GOV_PATTERN_LITERAL, s, strlen(s), ci};
    return p;
}

static gov_pattern_t rx(const char *s, int ci) {
    gov_pattern_t p = {GOV_PATTERN_REGEX, s, strlen(s), ci};
    return p;
}

static gov_matcher_t *must_compile(const gov_pattern_t *p, size_t n) {
    gov_matcher_t *m = NULL;
    size_t bad = 0;
    char err[256] = "";
    gov_err_t rc = gov_matcher_compile(NULL, p, n, &m, &bad, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("compile failed: %s (pattern %zu): %s", gov_err_code(rc), bad, err);
    return m;
}

/* Scans data with a fresh scratch into results (caller's array). */
static void scan_fresh(const gov_matcher_t *m, const char *data, size_t len,
                       gov_match_t *results) {
    gov_matcher_scratch_t *s = NULL;
    char err[256] = "";
    assert_int_equal(gov_matcher_scratch_new(m, &s), GOV_OK);
    gov_err_t rc = gov_matcher_scan(m, s, data, len, results, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("scan failed: %s: %s", gov_err_code(rc), err);
    gov_matcher_scratch_free(s);
}

static void expect_match(const gov_match_t *r, int matched, size_t end) {
    assert_int_equal(r->matched, matched);
    if (matched)
        assert_int_equal(r->first_end, end);
}

static void test_backend_is_vectorscan(void **state) {
    (void)state;
    gov_pattern_t p[] = {lit("abc", 0)};
    gov_matcher_t *m = must_compile(p, 1);
    assert_string_equal(gov_matcher_backend_name(m), "vectorscan");
    assert_string_equal(gov_matcher_backend_vectorscan()->name, "vectorscan");
    assert_int_equal(gov_matcher_count(m), 1);
    assert_int_equal(gov_matcher_utf8_only(m), 1);
    gov_matcher_free(m);
    gov_matcher_free(NULL);
    gov_matcher_scratch_free(NULL);
}

static void test_literals_and_regexes(void **state) {
    (void)state;
    gov_pattern_t p[] = {
        lit("password", 0),                               /* 0 */
        rx("[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}", 1),  /* 1 */
        lit("absent", 0),                                 /* 2 */
        rx("AKIA[0-9A-Z]{16}", 0),                        /* 3 */
        lit("PASSWORD", 1),                               /* 4: caseless */
        lit("Password", 0),                               /* 5: case-sensitive, absent */
    };
    const char *text = "my password is x, mail Bob@Corp.IO, key AKIAABCDEFGHIJKLMNOP";
    gov_match_t r[6];
    gov_matcher_t *m = must_compile(p, 6);
    scan_fresh(m, text, strlen(text), r);
    expect_match(&r[0], 1, 11);          /* "my password" */
    expect_match(&r[1], 1, 34);          /* "Bob@Corp.IO" (23..34): first end after "IO" */
    expect_match(&r[2], 0, 0);
    expect_match(&r[3], 1, strlen(text));
    expect_match(&r[4], 1, 11);
    expect_match(&r[5], 0, 0);
    gov_matcher_free(m);
}

/* Every ASCII punctuation character in a literal is matched as itself. */
static void test_literal_metacharacters(void **state) {
    (void)state;
    const char *meta = ".*+?()[]{}|\\^$#/- \t\"'~`!@%&=,;:<>";
    gov_pattern_t p[] = {lit(meta, 0), lit("a.c", 0), lit("(x)", 0), lit("\\d", 0),
                         lit("$end", 0)};
    gov_matcher_t *m = must_compile(p, 5);
    gov_match_t r[5];
    const char *t1 = "abc xyz 5 end";   /* no metacharacter semantics may fire */
    scan_fresh(m, t1, strlen(t1), r);
    for (int i = 0; i < 5; i++)
        expect_match(&r[i], 0, 0);
    char t2[256];
    snprintf(t2, sizeof t2, "<%s> a.c (x) \\d $end", meta);
    scan_fresh(m, t2, strlen(t2), r);
    expect_match(&r[0], 1, 1 + strlen(meta));
    assert_true(r[1].matched && r[2].matched && r[3].matched && r[4].matched);
    gov_matcher_free(m);
}

/* A literal is bytes: an embedded NUL byte matches a NUL in the data. */
static void test_literal_with_nul(void **state) {
    (void)state;
    gov_pattern_t p = {GOV_PATTERN_LITERAL, "a\0b", 3, 0};
    gov_matcher_t *m = must_compile(&p, 1);
    gov_match_t r;
    scan_fresh(m, "xa\0bx", 5, &r);
    expect_match(&r, 1, 4);
    scan_fresh(m, "xab", 3, &r);
    expect_match(&r, 0, 0);
    gov_matcher_free(m);
}

/* Matches are reported for the lowest end offset, also for a pattern with
 * an assertion (whose matches Vectorscan may deliver out of order). */
static void test_first_end_is_lowest(void **state) {
    (void)state;
    gov_pattern_t p[] = {lit("ab", 0), rx("a\\b", 0), rx("b|abc\\b", 0), rx("c$", 0)};
    gov_matcher_t *m = must_compile(p, 4);
    gov_match_t r[4];
    const char *t = "xxabyyab a abc";
    scan_fresh(m, t, strlen(t), r);
    expect_match(&r[0], 1, 4);
    expect_match(&r[1], 1, 10);   /* the lone "a" at 9 */
    expect_match(&r[2], 1, 4);    /* "b" at 3 */
    expect_match(&r[3], 1, strlen(t));
    gov_matcher_free(m);
}

/* Case folding in UTF-8 mode is Unicode's simple folding, for literals and
 * regexes alike. */
static void test_unicode_caseless(void **state) {
    (void)state;
    gov_pattern_t p[] = {lit("\xc3\xa9t\xc3\xa9", 1), rx("\xc3\xa9t\xc3\xa9", 1),
                         lit("\xc3\xa9t\xc3\xa9", 0), rx(".", 0)};
    gov_matcher_t *m = must_compile(p, 4);
    gov_match_t r[4];
    const char *t = "\xc3\x89T\xc3\x89";   /* ÉTÉ */
    scan_fresh(m, t, strlen(t), r);
    expect_match(&r[0], 1, 5);
    expect_match(&r[1], 1, 5);
    expect_match(&r[2], 0, 0);
    expect_match(&r[3], 1, 2);            /* "." is one character: two bytes */
    gov_matcher_free(m);
}

/* PCRE defaults, as docs/policy.md states them: "." does not match "\n"
 * unless (?s) says so; ^ and $ anchor at the ends of the data only. */
static void test_pcre_defaults(void **state) {
    (void)state;
    gov_pattern_t p[] = {rx("a.b", 0), rx("(?s)a.b", 0), rx("^line", 0), rx("end$", 0),
                         rx("(?i)MiXeD", 0)};
    gov_matcher_t *m = must_compile(p, 5);
    gov_match_t r[5];
    const char *t = "x a\nb\nline end\nmixed end";
    scan_fresh(m, t, strlen(t), r);
    expect_match(&r[0], 0, 0);
    expect_match(&r[1], 1, 5);
    expect_match(&r[2], 0, 0);            /* "line" follows a newline, not the start */
    expect_match(&r[3], 1, strlen(t));    /* only the final "end" */
    expect_match(&r[4], 1, 20);
    gov_matcher_free(m);
}

static void expect_compile_error(const gov_pattern_t *p, size_t n, gov_err_t want_rc,
                                 size_t want_index, const char *want_text) {
    gov_matcher_t *m = (gov_matcher_t *)0x1;
    size_t bad = 12345;
    char err[256] = "";
    gov_err_t rc = gov_matcher_compile(NULL, p, n, &m, &bad, err, sizeof err);
    if (rc != want_rc)
        fail_msg("want %s, got %s: %s", gov_err_code(want_rc), gov_err_code(rc), err);
    assert_null(m);
    assert_int_equal(bad, want_index);
    if (strstr(err, want_text) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, want_text);
}

static void test_compile_errors_name_the_pattern(void **state) {
    (void)state;
    gov_pattern_t backref[] = {lit("ok", 0), rx("fine", 0), rx("(a)\\1", 0)};
    expect_compile_error(backref, 3, GOV_ERR_PARSE, 2, "Back-references are unsupported");
    gov_pattern_t paren[] = {rx("(abc", 0), lit("x", 0)};
    expect_compile_error(paren, 2, GOV_ERR_PARSE, 0, "Missing close parenthesis");
    gov_pattern_t empty_ok[] = {lit("x", 0), rx("a*", 0)};
    expect_compile_error(empty_ok, 2, GOV_ERR_PARSE, 1, "empty");
    gov_pattern_t look[] = {rx("a(?=b)", 0)};
    expect_compile_error(look, 1, GOV_ERR_PARSE, 0, "assertions are not supported");
    gov_pattern_t nul[] = {lit("x", 0), {GOV_PATTERN_REGEX, "a\0b", 3, 0}};
    expect_compile_error(nul, 2, GOV_ERR_PARSE, 1, "NUL");
    gov_pattern_t empty[] = {lit("x", 0), {GOV_PATTERN_LITERAL, "", 0, 0}};
    expect_compile_error(empty, 2, GOV_ERR_INVALID_ARG, 1, "empty");
    expect_compile_error(empty, 0, GOV_ERR_INVALID_ARG, (size_t)-1, "no patterns");
}

/* A UTF-8 database refuses data that is not UTF-8 (Vectorscan's behaviour
 * would be undefined); a byte-mode database scans any bytes. */
static void test_utf8_guard(void **state) {
    (void)state;
    gov_pattern_t p[] = {lit("abc", 0)};
    gov_matcher_t *m = must_compile(p, 1);
    gov_matcher_scratch_t *s = NULL;
    gov_match_t r;
    char err[128] = "";
    assert_int_equal(gov_matcher_scratch_new(m, &s), GOV_OK);
    assert_int_equal(gov_matcher_scan(m, s, "abc\xff", 4, &r, err, sizeof err),
                     GOV_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "UTF-8"));
    assert_int_equal(gov_matcher_scan(m, s, "", 0, &r, NULL, 0), GOV_OK);
    expect_match(&r, 0, 0);
    assert_int_equal(gov_matcher_scan(m, s, NULL, 0, &r, NULL, 0), GOV_OK);

    gov_pattern_t bytes = {GOV_PATTERN_LITERAL, "\xff\xfe", 2, 0};
    gov_matcher_t *mb = must_compile(&bytes, 1);
    assert_int_equal(gov_matcher_utf8_only(mb), 0);
    assert_int_equal(gov_matcher_scan(mb, s, "a\xff\xfe", 3, &r, NULL, 0), GOV_OK);
    expect_match(&r, 1, 3);
    gov_matcher_free(mb);
    gov_matcher_scratch_free(s);
    gov_matcher_free(m);
}

/* One scratch serves several databases in turn; an empty scratch is fitted
 * by the first scan; answers never depend on the scratch's history. */
static void test_scratch_shared_across_databases(void **state) {
    (void)state;
    gov_pattern_t p1[] = {lit("one", 0)};
    gov_pattern_t p2[] = {rx("t[wx]o", 0), rx("th(r|R)ee\\b", 1), lit("four", 1)};
    gov_matcher_t *m1 = must_compile(p1, 1), *m2 = must_compile(p2, 3);
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    const char *t = "one two THREE four";
    for (int round = 0; round < 5; round++) {
        gov_match_t r1[1], r2[3];
        assert_int_equal(gov_matcher_scan(m1, s, t, strlen(t), r1, NULL, 0), GOV_OK);
        expect_match(&r1[0], 1, 3);
        assert_int_equal(gov_matcher_scan(m2, s, t, strlen(t), r2, NULL, 0), GOV_OK);
        expect_match(&r2[0], 1, 7);
        expect_match(&r2[1], 1, 13);
        expect_match(&r2[2], 1, 18);
    }
    assert_int_equal(gov_matcher_scratch_prepare(s, m1), GOV_OK);
    assert_int_equal(gov_matcher_scratch_prepare(NULL, m1), GOV_ERR_INVALID_ARG);
    gov_matcher_scratch_free(s);
    gov_matcher_free(m1);
    gov_matcher_free(m2);
}

/* ---- random properties against a naive reference ------------------------------ */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n) {
    /* xorshift64*: a fixed seed gives the same cases on every run. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32) % n;
}

static int fold(int c) {
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Lowest end offset of needle in hay (ASCII folding when ci), or 0. */
static int naive_first_end(const char *hay, size_t hn, const char *needle, size_t nn, int ci,
                           size_t *end) {
    for (size_t i = 0; i + nn <= hn; i++) {
        size_t k = 0;
        while (k < nn && (ci ? fold((unsigned char)hay[i + k]) == fold((unsigned char)needle[k])
                             : hay[i + k] == needle[k]))
            k++;
        if (k == nn) {
            *end = i + nn;   /* fixed length: first start gives first end */
            return 1;
        }
    }
    return 0;
}

/* Literals over a small alphabet full of metacharacters, case folded or
 * not, against random texts: Vectorscan agrees with the naive search. */
static void test_random_literals_vs_reference(void **state) {
    (void)state;
    static const char alphabet[] = "abAB.*()[\\$^|?+ ";
    rng_state = 0x9E3779B97F4A7C15ULL;
    for (int iter = 0; iter < 300; iter++) {
        enum { NP = 6 };
        char pats[NP][8];
        gov_pattern_t p[NP];
        for (int i = 0; i < NP; i++) {
            size_t n = 1 + rnd(4);
            for (size_t k = 0; k < n; k++)
                pats[i][k] = alphabet[rnd(sizeof alphabet - 1)];
            pats[i][n] = '\0';
            p[i] = lit(pats[i], (int)rnd(2));
        }
        char text[200];
        size_t tn = rnd(sizeof text);
        for (size_t k = 0; k < tn; k++)
            text[k] = alphabet[rnd(sizeof alphabet - 1)];
        gov_matcher_t *m = must_compile(p, NP);
        gov_match_t r[NP];
        scan_fresh(m, text, tn, r);
        for (int i = 0; i < NP; i++) {
            size_t end = 0;
            int want = naive_first_end(text, tn, pats[i], strlen(pats[i]), p[i].case_insensitive,
                                       &end);
            if (r[i].matched != want || (want && r[i].first_end != end))
                fail_msg("iter %d pattern \"%s\" ci=%d text \"%.*s\": got %d/%zu want %d/%zu",
                         iter, pats[i], p[i].case_insensitive, (int)tn, text, r[i].matched,
                         r[i].first_end, want, end);
        }
        gov_matcher_free(m);
    }
}

/* Escapes a literal as a regex the way a person would (backslash before
 * every ASCII non-alphanumeric), differently from the matcher's \xHH. */
static void regex_of(const char *s, char *out) {
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (c < 0x80 && !alnum)
            out[o++] = '\\';
        out[o++] = (char)c;
    }
    out[o] = '\0';
}

/* Property (e): a case-insensitive literal and the equivalent escaped regex
 * give the same answer on every text, ASCII and not. */
static void test_caseless_literal_equals_regex(void **state) {
    (void)state;
    static const char *const pieces[] = {"a", "B", ".", "*", "(", "]", "\xc3\xa9", "\xc3\x89",
                                         "\xc3\x9f", "k", "K", " ", "\xe2\x84\xaa", "$"};
    const size_t np = sizeof pieces / sizeof pieces[0];
    rng_state = 42;
    for (int iter = 0; iter < 300; iter++) {
        char l[32] = "", re[64], text[256] = "";
        size_t n = 1 + rnd(4);
        for (size_t k = 0; k < n; k++)
            strcat(l, pieces[rnd((uint32_t)np)]);
        regex_of(l, re);
        size_t tn = rnd(30);
        for (size_t k = 0; k < tn; k++)
            strcat(text, pieces[rnd((uint32_t)np)]);
        gov_pattern_t p[] = {lit(l, 1), rx(re, 1)};
        gov_matcher_t *m = must_compile(p, 2);
        gov_match_t r[2];
        scan_fresh(m, text, strlen(text), r);
        if (r[0].matched != r[1].matched || (r[0].matched && r[0].first_end != r[1].first_end))
            fail_msg("literal \"%s\" vs regex \"%s\" on \"%s\": %d/%zu vs %d/%zu", l, re, text,
                     r[0].matched, r[0].first_end, r[1].matched, r[1].first_end);
        gov_matcher_free(m);
    }
}

/* ---- threads: one database, a scratch per thread --------------------------------- */

typedef struct thread_arg {
    const gov_matcher_t *m;
    const char *text;
    size_t len;
    gov_match_t want[3];
    int failures;
} thread_arg_t;

static void *thread_main(void *arg_) {
    thread_arg_t *a = arg_;
    gov_matcher_scratch_t *s = NULL;
    if (gov_matcher_scratch_new(a->m, &s) != GOV_OK) {
        a->failures++;
        return NULL;
    }
    for (int i = 0; i < 200; i++) {
        gov_match_t r[3];
        if (gov_matcher_scan(a->m, s, a->text, a->len, r, NULL, 0) != GOV_OK ||
            memcmp(r, a->want, sizeof r) != 0)
            a->failures++;
    }
    gov_matcher_scratch_free(s);
    return NULL;
}

static void test_threads_share_database(void **state) {
    (void)state;
    gov_pattern_t p[] = {lit("needle", 1), rx("[0-9]{4}-[0-9]{4}", 0), lit("never", 0)};
    gov_matcher_t *m = must_compile(p, 3);
    char text[4096];
    memset(text, 'x', sizeof text);
    memcpy(text + 1000, "NeEdLe", 6);
    memcpy(text + 3000, "1234-5678", 9);
    thread_arg_t args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].m = m;
        args[i].text = text;
        args[i].len = sizeof text;
        args[i].want[0] = (gov_match_t){1, 1006};
        args[i].want[1] = (gov_match_t){1, 3009};
        args[i].want[2] = (gov_match_t){0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    gov_matcher_free(m);
}

/* ---- allocation failures ---------------------------------------------------------- */

/* ---- spans (gov_matcher_spans) ---------------------------------------------- */

#define SPAN_MAX 4096

typedef struct span_list {
    size_t n;
    size_t pattern[SPAN_MAX], start[SPAN_MAX], end[SPAN_MAX];
} span_list_t;

static int collect_span(void *ctx, size_t pattern, size_t start, size_t end) {
    span_list_t *l = ctx;
    if (l->n < SPAN_MAX) {
        l->pattern[l->n] = pattern;
        l->start[l->n] = start;
        l->end[l->n] = end;
        l->n++;
    }
    return 0;
}

static void spans_fresh(const gov_matcher_t *m, const char *data, size_t len, span_list_t *l) {
    gov_matcher_scratch_t *s = NULL;
    char err[256] = "";
    l->n = 0;
    assert_int_equal(gov_matcher_scratch_new(m, &s), GOV_OK);
    gov_err_t rc = gov_matcher_spans(m, s, data, len, collect_span, l, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("spans failed: %s: %s", gov_err_code(rc), err);
    gov_matcher_scratch_free(s);
}

static int has_span(const span_list_t *l, size_t pattern, size_t start, size_t end) {
    for (size_t i = 0; i < l->n; i++)
        if (l->pattern[i] == pattern && l->start[i] == start && l->end[i] == end)
            return 1;
    return 0;
}

/* Every match is reported with its leftmost start; a pattern Vectorscan
 * cannot track starts for reports 0, and says so. */
static void test_spans_report_starts(void **state) {
    (void)state;
    gov_pattern_t p[] = {
        lit("abc", 0),                                                       /* 0 */
        rx("a+b", 0),                                                        /* 1 */
        rx("\\b(?:curl|wget) [^|;\\n]{1,200}\\| *(?:sudo +)?(?:ba|z)?sh\\b", 0), /* 2 */
        lit("\xc3\xa9t\xc3\xa9", 1),                                            /* 3 */
    };
    gov_matcher_t *m = must_compile(p, 4);
    assert_int_equal(gov_matcher_pattern_has_start(m, 0), 1);
    assert_int_equal(gov_matcher_pattern_has_start(m, 1), 1);
    assert_int_equal(gov_matcher_pattern_has_start(m, 2), 0);
    assert_int_equal(gov_matcher_pattern_has_start(m, 3), 1);
    assert_int_equal(gov_matcher_pattern_has_start(m, 4), 0);
    assert_int_equal(gov_matcher_pattern_has_start(NULL, 0), 0);
    /* "xaab abc curl u | sh \xc3\x89T\xc3\x89" */
    const char *t = "xaab abc curl u | sh \xc3\x89T\xc3\x89";
    span_list_t *l = malloc(sizeof *l);
    assert_non_null(l);
    spans_fresh(m, t, strlen(t), l);
    assert_true(has_span(l, 1, 1, 4));    /* "aab": leftmost start */
    assert_true(has_span(l, 0, 5, 8));    /* "abc" */
    assert_true(has_span(l, 1, 5, 7));    /* "ab" of "abc" */
    assert_true(has_span(l, 2, 0, 20));   /* "curl u | sh": start unknown, 0 */
    assert_true(has_span(l, 3, 21, 26));  /* "ÉTÉ", caseless, on character boundaries */
    assert_int_equal(l->n, 5);
    /* The same scratch serves scan and spans, in either order. */
    gov_matcher_scratch_t *s = NULL;
    gov_match_t r[4];
    char err[128];
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    assert_int_equal(gov_matcher_spans(m, s, t, strlen(t), collect_span, l, err, sizeof err),
                     GOV_OK);
    assert_int_equal(gov_matcher_scan(m, s, t, strlen(t), r, err, sizeof err), GOV_OK);
    expect_match(&r[1], 1, 4);
    /* The checks of a scan apply. */
    assert_int_equal(gov_matcher_spans(m, s, "\xff", 1, collect_span, l, err, sizeof err),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_matcher_spans(m, s, t, 1, NULL, l, err, sizeof err), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_matcher_spans(NULL, s, t, 1, collect_span, l, err, sizeof err),
                     GOV_ERR_INVALID_ARG);
    gov_matcher_scratch_free(s);
    free(l);
    gov_matcher_free(m);
}

/* Property: for random literals and texts, the spans are exactly the
 * occurrences a naive search finds (case-sensitive: a literal's match is its
 * own length). */
static void test_spans_vs_reference(void **state) {
    (void)state;
    static const char alphabet[] = "abAB.*( ";
    span_list_t *l = malloc(sizeof *l);
    assert_non_null(l);
    rng_state = 0xC0FFEEULL;
    for (int iter = 0; iter < 300; iter++) {
        enum { NP = 5 };
        char pats[NP][8];
        gov_pattern_t p[NP];
        for (int i = 0; i < NP; i++) {
            size_t n = 1 + rnd(3);
            for (size_t k = 0; k < n; k++)
                pats[i][k] = alphabet[rnd(sizeof alphabet - 1)];
            pats[i][n] = '\0';
            p[i] = lit(pats[i], 0);
        }
        char text[120];
        size_t tn = rnd(sizeof text);
        for (size_t k = 0; k < tn; k++)
            text[k] = alphabet[rnd(sizeof alphabet - 1)];
        gov_matcher_t *m = must_compile(p, NP);
        spans_fresh(m, text, tn, l);
        size_t want = 0;
        for (int i = 0; i < NP; i++) {
            size_t pl = strlen(pats[i]);
            for (size_t s = 0; s + pl <= tn; s++) {
                if (memcmp(text + s, pats[i], pl) != 0)
                    continue;
                want++;
                if (!has_span(l, (size_t)i, s, s + pl))
                    fail_msg("iter %d: \"%s\" at %zu not reported in \"%.*s\"", iter, pats[i], s,
                             (int)tn, text);
            }
        }
        assert_int_equal(l->n, want);   /* and nothing else */
        gov_matcher_free(m);
    }
    free(l);
}

static void test_allocation_failures(void **state) {
    (void)state;
    gov_pattern_t p[] = {lit("alpha", 1), rx("be+ta\\b", 0), rx("[0-9]{3,5}", 0)};
    const char *t = "ALPHA beeeta 12345";
    long n;
    for (n = 0;; n++) {
        gov_matcher_t *m = NULL;
        gov_matcher_scratch_t *s = NULL;
        gov_match_t r[3];
        size_t bad = 0;
        char err[256] = "";
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_matcher_compile(NULL, p, 3, &m, &bad, err, sizeof err);
        if (rc == GOV_OK)
            rc = gov_matcher_scratch_new(m, &s);
        if (rc == GOV_OK)
            rc = gov_matcher_scan(m, s, t, strlen(t), r, err, sizeof err);
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            expect_match(&r[0], 1, 5);
            expect_match(&r[1], 1, 12);
            expect_match(&r[2], 1, 16);
            gov_matcher_scratch_free(s);
            gov_matcher_free(m);
            break;
        }
        if (rc != GOV_ERR_NOMEM)
            fail_msg("allocation %ld: got %s: %s", n, gov_err_code(rc), err);
        if (m == NULL)
            assert_int_equal(bad, (size_t)-1);
        gov_matcher_scratch_free(s);
        gov_matcher_free(m);
    }
    assert_true(n > 3);   /* our arrays, Vectorscan's database, scratch */
    assert_true(gov_alloc_failures() >= 0);
}

int main(void) {
    gov_alloc_install_jansson();
    if (gov_matcher_install_allocator() != GOV_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backend_is_vectorscan),
        cmocka_unit_test(test_literals_and_regexes),
        cmocka_unit_test(test_literal_metacharacters),
        cmocka_unit_test(test_literal_with_nul),
        cmocka_unit_test(test_first_end_is_lowest),
        cmocka_unit_test(test_unicode_caseless),
        cmocka_unit_test(test_pcre_defaults),
        cmocka_unit_test(test_compile_errors_name_the_pattern),
        cmocka_unit_test(test_utf8_guard),
        cmocka_unit_test(test_scratch_shared_across_databases),
        cmocka_unit_test(test_random_literals_vs_reference),
        cmocka_unit_test(test_caseless_literal_equals_regex),
        cmocka_unit_test(test_threads_share_database),
        cmocka_unit_test(test_spans_report_starts),
        cmocka_unit_test(test_spans_vs_reference),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
