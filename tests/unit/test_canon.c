/* test_canon.c - gov_canon: RFC 8785 (JCS) and somabrain-json canonical bytes.
 *
 * Every expected byte comes from outside libgov (tests/vectors/canon/README.md):
 *   jcs/input, jcs/output   the RFC 8785 authors' test data (cyberphone/
 *                           json-canonicalization testdata/)
 *   jcs/appendix-b.txt      RFC 8785 Appendix B number samples
 *   generated/              296 documents: somabrain.out from CPython's
 *                           json.dumps, jcs.out from the rfc8785 PyPI package
 *                           (cross-checked with node + npm "canonicalize"),
 *                           checksums from hashlib
 *   numbers.txt             4888 doubles: ES6 form (rfc8785 / node) and repr()
 *   invalid/                inputs we refuse, with the reason code
 * (The FIPS 202 SHA3-512 known answers are test_hash.c's.)
 * Vectors are found under $GOV_ROOT, else the current directory (the suite
 * runs from the repository root).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <cmocka.h>
#include <jansson.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_err.h"
#include "gov_util.h"
#include "unit_files.h"

/* ---- helpers (plain malloc: failure injection must not hit the harness) -- */

static char *vec_path(const char *fmt, ...) {
    static char buf[4096];
    char rel[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    const char *root = getenv("GOV_ROOT");
    snprintf(buf, sizeof buf, "%s/tests/vectors/canon/%s", root ? root : ".", rel);
    return buf;
}

static json_t *must_parse_named(const char *what, const char *text, size_t len) {
    json_t *doc = NULL;
    char err[256] = "";
    gov_err_t rc = gov_canon_parse(text, len, &doc, NULL, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("%s: parse failed: %s: %s", what, gov_err_code(rc), err);
    return doc;
}

static json_t *must_parse(const char *text, size_t len) {
    return must_parse_named("inline", text, len);
}

/* Serializes doc and compares with want[0..want_len); names the case on a
 * mismatch. */
static void expect_canon(const char *what, const json_t *doc, gov_canon_t kind,
                         const char *want, size_t want_len) {
    char *out = NULL, err[256] = "";
    size_t len = 0;
    gov_reason_t why = GOV_REASON_COUNT_;
    gov_err_t rc = gov_canon_serialize(doc, kind, &out, &len, &why, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("%s (%s): serialize failed: %s %s: %s", what, gov_canon_name(kind),
                 gov_err_code(rc), gov_reason_code(why), err);
    assert_int_equal(why, GOV_REASON_NONE);
    assert_int_equal(strlen(out), len); /* NUL-terminated, no inner NUL */
    if (len != want_len || memcmp(out, want, len) != 0)
        fail_msg("%s (%s):\n  got  %.*s\n  want %.*s", what, gov_canon_name(kind), (int)len,
                 out, (int)want_len, want);
    gov_free(out);
}

static void serialize_str(const json_t *doc, gov_canon_t kind, char **out) {
    size_t len;
    assert_int_equal(gov_canon_serialize(doc, kind, out, &len, NULL, NULL, 0), GOV_OK);
}

static void roundtrip_real(const char *what, double x);

static double from_hex(const char *hex) {
    uint64_t bits = strtoull(hex, NULL, 16);
    double x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* Reads MANIFEST of dir into an array of names (malloc'd; free with free_lines). */
static char **read_manifest(const char *dir, size_t *count) {
    char *text = unit_slurp_path(vec_path("%s/MANIFEST", dir), NULL);
    size_t n = 0, cap = 64;
    char **names = malloc(cap * sizeof *names);
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (n == cap)
            names = realloc(names, (cap *= 2) * sizeof *names);
        names[n++] = strdup(line);
    }
    free(text);
    *count = n;
    return names;
}

static void free_lines(char **names, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* JCS writes integral doubles in 2^63 <= |x| < 1e21 as plain digits, which
 * jansson (json_int_t) cannot read back: the one way parse(jcs(x)) may fail. */
static int has_unreadable_jcs_integer(const json_t *v) {
    if (json_is_number(v)) {
        double x = json_number_value(v);
        return fabs(x) >= 0x1p63 && fabs(x) < 1e21 && x == floor(x);
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (has_unreadable_jcs_integer(json_array_get(v, i)))
                return 1;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
            if (has_unreadable_jcs_integer(m))
                return 1;
    }
    return 0;
}

/* ---- names and digests ---------------------------------------------------- */

static void test_from_name(void **state) {
    (void)state;
    gov_canon_t k = (gov_canon_t)99;
    assert_int_equal(gov_canon_from_name("jcs", &k), 0);
    assert_int_equal(k, GOV_CANON_JCS);
    assert_int_equal(gov_canon_from_name("somabrain-json", &k), 0);
    assert_int_equal(k, GOV_CANON_SOMABRAIN);
    k = (gov_canon_t)99;
    assert_int_equal(gov_canon_from_name("JCS", &k), -1);
    assert_int_equal(gov_canon_from_name("somabrain", &k), -1);
    assert_int_equal(gov_canon_from_name("", &k), -1);
    assert_int_equal(gov_canon_from_name(NULL, &k), -1);
    assert_int_equal(k, 99);
    assert_string_equal(gov_canon_name(GOV_CANON_JCS), "jcs");
    assert_string_equal(gov_canon_name(GOV_CANON_SOMABRAIN), "somabrain-json");
}

static void test_checksum_args(void **state) {
    (void)state;
    json_t *doc = must_parse("{\"b\":1,\"a\":[true]}", 18);
    char hex[GOV_CANON_HEX_MAX], err[128];
    gov_reason_t why = GOV_REASON_NONE;
    assert_int_equal(gov_canon_checksum(doc, GOV_CANON_JCS, "md5", hex, &why, err, sizeof err),
                     GOV_ERR_UNSUPPORTED);
    assert_string_equal(hex, "");
    /* The reason is a value; errbuf holds the detail alone. */
    assert_int_equal(why, GOV_REASON_UNSUPPORTED_HASH_ALG);
    assert_string_equal(gov_reason_code(why), "unsupported_hash_alg");
    assert_string_equal(err, "'md5' (want " GOV_HASH_NAMES_TEXT ")");
    assert_int_equal(gov_canon_checksum(doc, GOV_CANON_JCS, "SHA3-512", hex, &why, NULL, 0),
                     GOV_ERR_UNSUPPORTED);
    assert_int_equal(why, GOV_REASON_UNSUPPORTED_HASH_ALG);
    assert_int_equal(gov_canon_checksum(doc, GOV_CANON_JCS, NULL, hex, &why, NULL, 0),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(why, GOV_REASON_INVALID_ARG);
    assert_int_equal(gov_canon_checksum(doc, (gov_canon_t)7, "sha256", hex, &why, err, sizeof err),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(why, GOV_REASON_INVALID_ARG);
    assert_string_equal(err, "NULL argument or unknown canonicalization");
    assert_int_equal(gov_canon_checksum(doc, GOV_CANON_JCS, "sha3-512", hex, &why, NULL, 0),
                     GOV_OK);
    assert_int_equal(why, GOV_REASON_NONE);
    assert_int_equal(strlen(hex), 128);
    assert_int_equal(gov_canon_checksum(doc, GOV_CANON_JCS, "sha256", hex, NULL, NULL, 0), GOV_OK);
    assert_int_equal(strlen(hex), 64);
    /* The checksum is over the canonical bytes {"a":[true],"b":1}. */
    unsigned char md[32];
    char want[65];
    assert_int_equal(gov_sha256("{\"a\":[true],\"b\":1}", 18, md), GOV_OK);
    gov_hex_encode(md, 32, want);
    assert_string_equal(hex, want);
    json_decref(doc);
}

/* ---- standard vectors --------------------------------------------------- */

static void test_rfc8785_testdata(void **state) {
    (void)state;
    DIR *d = opendir(vec_path("jcs/input"));
    if (d == NULL)
        fail_msg("cannot open %s", vec_path("jcs/input"));
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        size_t in_len, out_len;
        char *in = unit_slurp_path(vec_path("jcs/input/%s", e->d_name), &in_len);
        char *want = unit_slurp_path(vec_path("jcs/output/%s", e->d_name), &out_len);
        json_t *doc = must_parse(in, in_len);
        expect_canon(e->d_name, doc, GOV_CANON_JCS, want, out_len);
        json_decref(doc);
        free(in);
        free(want);
        files++;
    }
    closedir(d);
    assert_int_equal(files, 6); /* arrays french structures unicode values weird */
}

static void test_rfc8785_appendix_b(void **state) {
    (void)state;
    char *text = unit_slurp_path(vec_path("jcs/appendix-b.txt"), NULL);
    int rows = 0, refused = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char *comma = strchr(line, ',');
        assert_non_null(comma);
        *comma = '\0';
        const char *want = comma + 1;
        double x = from_hex(line);
        char buf[GOV_CANON_NUMBUF];
        int n = gov_canon_format_es6(x, buf);
        if (want[0] == '\0') { /* NaN, Infinity: no JSON form */
            assert_int_equal(n, -1);
            assert_string_equal(buf, "");
            assert_null(json_real(x)); /* jansson cannot even hold them */
            refused++;
        } else {
            if (strcmp(buf, want) != 0)
                fail_msg("%s: got %s want %s", line, buf, want);
            assert_int_equal(n, (int)strlen(want));
            json_t *doc = json_pack("[f]", x);
            char wrapped[64];
            snprintf(wrapped, sizeof wrapped, "[%s]", want);
            expect_canon(line, doc, GOV_CANON_JCS, wrapped, strlen(wrapped));
            json_decref(doc);
            roundtrip_real(line, x); /* e.g. 999999999999999700000 reads back */
        }
        rows++;
    }
    free(text);
    assert_int_equal(rows, 28);
    assert_int_equal(refused, 2);
}

/* ---- independent implementations --------------------------------------------- */

static void test_number_table(void **state) {
    (void)state;
    char *text = unit_slurp_path(vec_path("numbers.txt"), NULL);
    int rows = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char hex[17], es6[64], py[64], buf[GOV_CANON_NUMBUF];
        assert_int_equal(sscanf(line, "%16s %63s %63s", hex, es6, py), 3);
        double x = from_hex(hex);
        gov_canon_format_es6(x, buf);
        if (strcmp(buf, es6) != 0)
            fail_msg("es6 %s: got %s want %s", hex, buf, es6);
        gov_canon_format_pyrepr(x, buf);
        if (strcmp(buf, py) != 0)
            fail_msg("repr %s: got %s want %s", hex, buf, py);
        if (isfinite(x))
            roundtrip_real(hex, x);
        rows++;
    }
    free(text);
    assert_true(rows >= 4000);
}

static void check_checksums(const char *name, const json_t *doc) {
    char *sums = unit_slurp_path(vec_path("generated/%s/checksums", name), NULL);
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(sums, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char kind_name[32], alg[16], want[GOV_CANON_HEX_MAX], got[GOV_CANON_HEX_MAX], err[256];
        gov_canon_t kind;
        assert_int_equal(sscanf(line, "%31s %15s %128s", kind_name, alg, want), 3);
        assert_int_equal(gov_canon_from_name(kind_name, &kind), 0);
        gov_err_t rc = gov_canon_checksum(doc, kind, alg, got, NULL, err, sizeof err);
        if (rc != GOV_OK)
            fail_msg("%s %s %s: %s", name, kind_name, alg, err);
        if (strcmp(got, want) != 0)
            fail_msg("%s %s %s: got %s want %s", name, kind_name, alg, got, want);
        lines++;
    }
    assert_int_equal(lines, 4);
    free(sums);
}

static void test_generated_vectors(void **state) {
    (void)state;
    size_t n;
    char **names = read_manifest("generated", &n);
    assert_true(n >= 250);
    for (size_t i = 0; i < n; i++) {
        size_t in_len, jcs_len, soma_len;
        char *in = unit_slurp_path(vec_path("generated/%s/input.json", names[i]), &in_len);
        char *jcs = unit_slurp_path(vec_path("generated/%s/jcs.out", names[i]), &jcs_len);
        char *soma = unit_slurp_path(vec_path("generated/%s/somabrain.out", names[i]), &soma_len);
        json_t *doc = must_parse_named(names[i], in, in_len);
        expect_canon(names[i], doc, GOV_CANON_JCS, jcs, jcs_len);
        expect_canon(names[i], doc, GOV_CANON_SOMABRAIN, soma, soma_len);
        check_checksums(names[i], doc);

        /* Both forms are fixed points: canonical bytes parse back to a
         * document with the same canonical bytes. */
        json_t *again = must_parse_named(names[i], soma, soma_len);
        expect_canon(names[i], again, GOV_CANON_SOMABRAIN, soma, soma_len);
        json_decref(again);
        again = NULL;
        gov_err_t rc = gov_canon_parse(jcs, jcs_len, &again, NULL, NULL, 0);
        if (rc == GOV_OK) {
            expect_canon(names[i], again, GOV_CANON_JCS, jcs, jcs_len);
            json_decref(again);
        } else {
            assert_int_equal(rc, GOV_ERR_UNSUPPORTED);
            assert_true(has_unreadable_jcs_integer(doc));
        }
        json_decref(doc);
        free(in);
        free(jcs);
        free(soma);
    }
    free_lines(names, n);
}

static void test_invalid_vectors(void **state) {
    (void)state;
    size_t n;
    char **names = read_manifest("invalid", &n);
    assert_true(n >= 25);
    for (size_t i = 0; i < n; i++) {
        size_t in_len;
        char *in = unit_slurp_path(vec_path("invalid/%s/input.json", names[i]), &in_len);
        char *expect = unit_slurp_path(vec_path("invalid/%s/expect", names[i]), NULL);
        char code[64], reason[64], err[512] = "";
        assert_int_equal(sscanf(expect, "%63s %63s", code, reason), 2);
        json_t *doc = (json_t *)0x1;
        gov_reason_t why = GOV_REASON_COUNT_;
        gov_err_t rc = gov_canon_parse(in, in_len, &doc, &why, err, sizeof err);
        assert_null(doc);
        if (strcmp(gov_err_code(rc), code) != 0 || strcmp(gov_reason_code(why), reason) != 0 ||
            err[0] == '\0')
            fail_msg("%s: got %s %s \"%s\", want %s %s", names[i], gov_err_code(rc),
                     gov_reason_code(why), err, code, reason);
        free(in);
        free(expect);
    }
    free_lines(names, n);
}

/* ---- the differences, spelled out ----------------------------------------- */

static void test_key_order_utf16_vs_codepoint(void **state) {
    (void)state;
    /* U+E000 is one UTF-16 unit 0xE000; U+10000 is 0xD800 0xDC00. */
    const char *in = "{\"\\ue000\":1,\"\\ud800\\udc00\":2,\"a\":3,\"\\u00e9\":4}";
    json_t *doc = must_parse(in, strlen(in));
    const char *jcs = "{\"a\":3,\"\xc3\xa9\":4,\"\xf0\x90\x80\x80\":2,\"\xee\x80\x80\":1}";
    const char *soma = "{\"a\":3,\"\\u00e9\":4,\"\\ue000\":1,\"\\ud800\\udc00\":2}";
    expect_canon("utf16 order", doc, GOV_CANON_JCS, jcs, strlen(jcs));
    expect_canon("codepoint order", doc, GOV_CANON_SOMABRAIN, soma, strlen(soma));
    json_decref(doc);
}

static void test_string_escapes(void **state) {
    (void)state;
    const char *in = "[\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\"\\\\/\\u007f"
                     "\\u2028\\u00e9\\ud83d\\ude00\"]";
    json_t *doc = must_parse(in, strlen(in));
    const char *jcs = "[\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\"\\\\/\x7f"
                      "\xe2\x80\xa8\xc3\xa9\xf0\x9f\x98\x80\"]";
    const char *soma = "[\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\"\\\\/\\u007f"
                       "\\u2028\\u00e9\\ud83d\\ude00\"]";
    expect_canon("escapes", doc, GOV_CANON_JCS, jcs, strlen(jcs));
    expect_canon("escapes", doc, GOV_CANON_SOMABRAIN, soma, strlen(soma));
    json_decref(doc);
}

static void test_numbers_spelled_out(void **state) {
    (void)state;
    const char *in = "[1, 1.0, -0, -0.0, 100, 1e2, 9007199254740993, 1e16, 1e-5, 0.0001,"
                     " 1e21, 1e-7, 0.000001, 1.5e300, 9223372036854775807]";
    json_t *doc = must_parse(in, strlen(in));
    const char *jcs = "[1,1,0,0,100,100,9007199254740992,10000000000000000,0.00001,0.0001,"
                      "1e+21,1e-7,0.000001,1.5e+300,9223372036854776000]";
    const char *soma = "[1,1.0,0,-0.0,100,100.0,9007199254740993,1e+16,1e-05,0.0001,"
                       "1e+21,1e-07,1e-06,1.5e+300,9223372036854775807]";
    expect_canon("numbers", doc, GOV_CANON_JCS, jcs, strlen(jcs));
    expect_canon("numbers", doc, GOV_CANON_SOMABRAIN, soma, strlen(soma));
    json_decref(doc);

    char buf[GOV_CANON_NUMBUF];
    assert_int_equal(gov_canon_format_es6(NAN, buf), -1);
    assert_int_equal(gov_canon_format_es6(-INFINITY, buf), -1);
    assert_int_equal(gov_canon_format_pyrepr(INFINITY, buf), -1);
    assert_string_equal(buf, "");
    /* The longest outputs fit GOV_CANON_NUMBUF. */
    assert_int_equal(gov_canon_format_es6(-2.2250738585072014e-308, buf), 24);
    assert_string_equal(buf, "-2.2250738585072014e-308");
    assert_int_equal(gov_canon_format_pyrepr(-2.2250738585072014e-308, buf), 24);
    assert_int_equal(gov_canon_format_es6(-0.0000033333333333333333, buf), 25);
}

/* ---- round trips ---------------------------------------------------------- */

/* The one number in a parsed one-element array. */
static const json_t *only_number(const char *what, const json_t *doc) {
    const json_t *v = json_array_get(doc, 0);
    if (json_array_size(doc) != 1 || !json_is_number(v))
        fail_msg("%s: parsed back to something other than one number", what);
    return v;
}

/* Serializes doc ([number]) as kind, parses the bytes back and serializes
 * again: the parse must succeed and the bytes must not change.  Returns
 * the parsed document (the caller json_decref()s it). */
static json_t *reparse(const char *what, const json_t *doc, gov_canon_t kind) {
    char *out = NULL, *again = NULL, err[256] = "";
    size_t len = 0, again_len = 0;
    assert_int_equal(gov_canon_serialize(doc, kind, &out, &len, NULL, NULL, 0), GOV_OK);
    json_t *back = NULL;
    gov_reason_t why = GOV_REASON_COUNT_;
    gov_err_t rc = gov_canon_parse(out, len, &back, &why, err, sizeof err);
    if (rc != GOV_OK)
        fail_msg("%s: %s output %s does not parse back: %s %s: %s", what, gov_canon_name(kind),
                 out, gov_err_code(rc), gov_reason_code(why), err);
    assert_int_equal(gov_canon_serialize(back, kind, &again, &again_len, NULL, NULL, 0), GOV_OK);
    if (again_len != len || memcmp(again, out, len) != 0)
        fail_msg("%s: %s %s reserializes as %s", what, gov_canon_name(kind), out, again);
    gov_free(out);
    gov_free(again);
    return back;
}

/* A real x (finite) in both forms: JCS gives back the same double (-0 and
 * 0 alike: JCS writes both "0"), SomaBrain the same real, bit for bit. */
static void roundtrip_real(const char *what, double x) {
    json_t *doc = json_pack("[f]", x);
    assert_non_null(doc);
    json_t *back = reparse(what, doc, GOV_CANON_JCS);
    double got = json_number_value(only_number(what, back));
    if (got != x)
        fail_msg("%s: JCS read %a back as %a", what, x, got);
    json_decref(back);
    back = reparse(what, doc, GOV_CANON_SOMABRAIN);
    const json_t *v = only_number(what, back);
    double y = json_real_value(v);
    if (!json_is_real(v) || memcmp(&y, &x, sizeof x) != 0)
        fail_msg("%s: SomaBrain read %a back as %s %a", what, x,
                 json_is_real(v) ? "real" : "integer", json_number_value(v));
    json_decref(back);
    json_decref(doc);
}

/* An integer i in both forms: JCS gives back the double nearest to i (every
 * JCS number is a double), SomaBrain the same integer. */
static void roundtrip_integer(const char *what, json_int_t i) {
    json_t *doc = json_pack("[I]", i);
    assert_non_null(doc);
    json_t *back = reparse(what, doc, GOV_CANON_JCS);
    double got = json_number_value(only_number(what, back));
    if (got != (double)i)
        fail_msg("%s: JCS read %" JSON_INTEGER_FORMAT " back as %a", what, i, got);
    json_decref(back);
    back = reparse(what, doc, GOV_CANON_SOMABRAIN);
    const json_t *v = only_number(what, back);
    if (!json_is_integer(v) || json_integer_value(v) != i)
        fail_msg("%s: SomaBrain read %" JSON_INTEGER_FORMAT " back differently", what, i);
    json_decref(back);
    json_decref(doc);
}

/* x and -x, and the doubles one ulp either side of x (the sign is one
 * prefix character in both forms: the negative neighbours add nothing). */
static void roundtrip_around(const char *what, double x) {
    roundtrip_real(what, x);
    roundtrip_real(what, -x);
    roundtrip_real(what, nextafter(x, 0));
    if (isfinite(nextafter(x, INFINITY)))
        roundtrip_real(what, nextafter(x, INFINITY));
}

/* splitmix64: a fixed seed, so a failure names a reproducible case. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double from_bits(uint64_t bits) {
    double x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* The property of issue 9 point 3 over the whole number range: whatever
 * either canonicalizer writes parses back to the same value and the same
 * bytes.  The edges are where the forms switch (1e21, 1e-6/1e-7, 1e16,
 * 1e-4/1e-5), where json_int_t ends (2^63) and where doubles stop holding
 * every integer (2^53); the random part covers the rest of the exponents,
 * subnormals included. */
static void test_roundtrip_property(void **state) {
    (void)state;
    char what[96];
    /* every power of two, normal and subnormal, and its neighbours */
    for (int e = -1074; e <= 1023; e++) {
        snprintf(what, sizeof what, "2^%d", e);
        roundtrip_around(what, ldexp(1.0, e));
    }
    /* every power of ten a double reaches, and its neighbours */
    for (int e = -323; e <= 308; e++) {
        char lit[16];
        snprintf(lit, sizeof lit, "1e%d", e);
        snprintf(what, sizeof what, "%s", lit);
        roundtrip_around(what, strtod(lit, NULL));
    }
    /* around 2^63 and 1e21, 32 ulps either side; integers around 2^53 and
     * at both ends of json_int_t */
    static const double edges[] = {0x1p63, 1e21, 0x1p64, 0x1p53, 999999999999999900000.0};
    for (size_t k = 0; k < sizeof edges / sizeof edges[0]; k++) {
        double lo = edges[k], hi = edges[k];
        for (int u = 0; u < 32; u++, lo = nextafter(lo, 0), hi = nextafter(hi, INFINITY)) {
            snprintf(what, sizeof what, "edge %zu - %d ulp", k, u);
            roundtrip_real(what, lo);
            roundtrip_real(what, -lo);
            snprintf(what, sizeof what, "edge %zu + %d ulp", k, u);
            roundtrip_real(what, hi);
            roundtrip_real(what, -hi);
        }
    }
    for (json_int_t d = -256; d <= 256; d++) {
        snprintf(what, sizeof what, "2^53%+" JSON_INTEGER_FORMAT, d);
        roundtrip_integer(what, ((json_int_t)1 << 53) + d);
        roundtrip_integer(what, -((json_int_t)1 << 53) - d);
        snprintf(what, sizeof what, "INT64_MAX-%" JSON_INTEGER_FORMAT, d + 256);
        roundtrip_integer(what, INT64_MAX - (d + 256));
        snprintf(what, sizeof what, "INT64_MIN+%" JSON_INTEGER_FORMAT, d + 256);
        roundtrip_integer(what, INT64_MIN + (d + 256));
    }
    roundtrip_integer("0", 0);
    roundtrip_real("-0.0", -0.0);
    roundtrip_real("DBL_MAX", 1.7976931348623157e308);
    roundtrip_real("DBL_TRUE_MIN", 5e-324);
    /* random doubles: bit patterns (every exponent), subnormals, integral
     * values between 2^53 and 1e21, short decimals */
    uint64_t seed = 0x5eed0009c0ffee00ULL;
    for (int i = 0; i < 2000; i++) {
        uint64_t r = next_random(&seed);
        double x = from_bits(r);
        if (isfinite(x)) {
            snprintf(what, sizeof what, "random bits %016" PRIx64, r);
            roundtrip_real(what, x);
        }
        x = from_bits(r & 0x800fffffffffffffULL); /* exponent 0: subnormal */
        snprintf(what, sizeof what, "subnormal %016" PRIx64, r);
        roundtrip_real(what, x);
        x = floor(ldexp((double)(r >> 11), (int)(next_random(&seed) % 18)));  /* 2^53..2^70 */
        snprintf(what, sizeof what, "integral %a", x);
        roundtrip_real(what, x);
        char lit[32];
        snprintf(lit, sizeof lit, "%" PRIu64 "e%d", r % 100000, (int)(next_random(&seed) % 60) - 30);
        snprintf(what, sizeof what, "decimal %s", lit);
        roundtrip_real(what, strtod(lit, NULL));
    }
}

/* The spelling rule of the parser: an integer literal beyond json_int_t is
 * read (as a real) only when it is exactly what JCS writes; any other one
 * would be rounded and is refused. */
static void test_parse_big_integer_literals(void **state) {
    (void)state;
    json_t *doc = NULL;
    char err[256] = "";
    static const struct {
        const char *text;
        double want; /* 0: refused as number_out_of_range */
    } cases[] = {
        {"[9223372036854776000]", 0x1p63},
        {"[-9223372036854776000]", -0x1p63},
        {"[18446744073709552000]", 0x1p64},
        {"[999999999999999900000]", 999999999999999900000.0},
        {"[1000000000000000000000]", 0},  /* JCS writes 1e+21 */
        {"[9223372036854775808]", 0},     /* exact 2^63, but not JCS's spelling */
        {"[9223372036854776001]", 0},
        {"[-9223372036854775809]", 0},
        {"[18446744073709551616]", 0},
        {"[92233720368547760000]", 0x1p64 * 5}, /* 2^63 * 10 is JCS's spelling */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gov_reason_t why = GOV_REASON_COUNT_;
        doc = NULL;
        gov_err_t rc = gov_canon_parse(cases[i].text, strlen(cases[i].text), &doc, &why, err,
                                       sizeof err);
        if (cases[i].want == 0) {
            if (rc != GOV_ERR_UNSUPPORTED || why != GOV_REASON_NUMBER_OUT_OF_RANGE)
                fail_msg("%s: got %s %s, want number_out_of_range", cases[i].text,
                         gov_err_code(rc), gov_reason_code(why));
            continue;
        }
        if (rc != GOV_OK)
            fail_msg("%s: %s %s", cases[i].text, gov_err_code(rc), err);
        const json_t *v = json_array_get(doc, 0);
        assert_true(json_is_real(v));
        assert_true(json_real_value(v) == cases[i].want);
        expect_canon(cases[i].text, doc, GOV_CANON_JCS, cases[i].text, strlen(cases[i].text));
        json_decref(doc);
    }
    /* The parser's fast test against gov_canon_format_es6 itself: random
     * literals of 19-21 digits with at most 17 significant ones (the only
     * ones that can be a JCS spelling), accepted exactly when formatting
     * their double gives them back.  Neighbours of JCS spellings included,
     * where the two disagree if either is wrong. */
    uint64_t seed = 0x5eed0009c0ffee01ULL;
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        char lit[40], es6[GOV_CANON_NUMBUF], text[48];
        uint64_t r = next_random(&seed);
        if (i % 2 == 0) { /* a JCS spelling, one unit off in its last digit, or not */
            double x = ldexp((double)((r >> 11) | (1ULL << 52)), 11 + (int)(r % 7)); /* >= 2^63 */
            if (x >= 1e21)
                continue;
            int len = gov_canon_format_es6(x, es6);
            snprintf(lit, sizeof lit, "%s", es6);
            int last = len - 1;
            while (last > 0 && lit[last] == '0')
                last--;
            int step = (int)(next_random(&seed) % 3) - 1; /* -1, 0, +1 */
            if (step != 0 && ((step < 0 && lit[last] > '1') || (step > 0 && lit[last] < '9')))
                lit[last] = (char)(lit[last] + step);
        } else { /* 1-17 significant digits, zeros up to 19-21 digits */
            int k = 1 + (int)(r % 17), nd = 19 + (int)(next_random(&seed) % 3);
            uint64_t d = next_random(&seed) % 100000000000000000ULL;
            snprintf(lit, sizeof lit, "%" PRIu64, d);
            lit[k] = '\0';
            lit[0] = lit[0] == '0' ? '1' : lit[0];
            if (lit[k - 1] == '0')
                lit[k - 1] = '7';
            while ((int)strlen(lit) < nd)
                strcat(lit, "0");
        }
        double x = strtod(lit, NULL);
        gov_canon_format_es6(x, es6);
        int beyond = strlen(lit) > 19 || (strlen(lit) == 19 && strcmp(lit, "9223372036854775807") > 0);
        int want = beyond && strcmp(es6, lit) == 0;
        snprintf(text, sizeof text, "[%s]", lit);
        gov_err_t rc = gov_canon_parse(text, strlen(text), &doc, NULL, err, sizeof err);
        if ((rc == GOV_OK) != (want || !beyond))
            fail_msg("%s: parse %s, es6 of its double is %s", lit, gov_err_code(rc), es6);
        accepted += want;
        if (rc == GOV_OK)
            json_decref(doc);
        doc = NULL;
    }
    assert_true(accepted > 1000);

    /* error offsets are the caller's: the respelling keeps every length */
    const char *dup = "{\"a\":[9223372036854776000,18446744073709552000],\"a\":1}";
    gov_reason_t why = GOV_REASON_COUNT_;
    assert_int_equal(gov_canon_parse(dup, strlen(dup), &doc, &why, err, sizeof err),
                     GOV_ERR_PARSE);
    assert_int_equal(why, GOV_REASON_DUPLICATE_KEY);
    json_error_t jerr;
    const char *same_len = "{\"a\":[92233720368547760e2,184467440737095520e2],\"a\":1}";
    assert_null(json_loads(same_len, JSON_REJECT_DUPLICATES, &jerr));
    char want[64];
    snprintf(want, sizeof want, "(byte %d)", jerr.position);
    if (strstr(err, want) == NULL)
        fail_msg("duplicate key reported as \"%s\", want %s", err, want);
    /* The respelled copy is the first allocation (the grammar pass makes
     * none): its failure is NOMEM, not a refusal.  Later ones are jansson's,
     * and jansson 2.14 asserts (load.c lex_unget_unsave) when its lexer
     * cannot grow the buffer of a number of 16 bytes or more, so they are
     * not injected here. */
    const char *big = "[9223372036854776000]";
    doc = (json_t *)0x1;
    gov_alloc_fail_after(0);
    gov_err_t rc = gov_canon_parse(big, strlen(big), &doc, &why, err, sizeof err);
    gov_alloc_fail_reset();
    assert_int_equal(rc, GOV_ERR_NOMEM);
    assert_int_equal(why, GOV_REASON_NOMEM);
    assert_null(doc);
    assert_int_equal(gov_canon_parse(big, strlen(big), &doc, &why, err, sizeof err), GOV_OK);
    assert_true(json_real_value(json_array_get(doc, 0)) == 0x1p63);
    json_decref(doc);
}

/* ---- bounds and bad input ----------------------------------------------- */

static char *nested_text(int depth, const char *inner) {
    char *s = malloc((size_t)depth * 2 + strlen(inner) + 1), *p = s;
    for (int i = 0; i < depth; i++)
        *p++ = '[';
    p += sprintf(p, "%s", inner);
    for (int i = 0; i < depth; i++)
        *p++ = ']';
    *p = '\0';
    return s;
}

static void test_parse_depth(void **state) {
    (void)state;
    char err[256];
    json_t *doc = NULL;
    char *ok = nested_text(GOV_CANON_MAX_DEPTH, "\"[[[[[[[[[[[[[[[[[[[[[[[[\\\"{{{{\"");
    assert_int_equal(gov_canon_parse(ok, strlen(ok), &doc, NULL, err, sizeof err), GOV_OK);
    json_decref(doc);
    free(ok);
    char *deep = nested_text(GOV_CANON_MAX_DEPTH + 1, "");
    gov_reason_t why = GOV_REASON_NONE;
    assert_int_equal(gov_canon_parse(deep, strlen(deep), &doc, &why, err, sizeof err),
                     GOV_ERR_TOO_LARGE);
    assert_null(doc);
    assert_int_equal(why, GOV_REASON_TOO_DEEP);
    assert_string_equal(gov_reason_code(why), "too_deep");
    free(deep);
    /* Far deeper than jansson's own 2048 limit: refused before jansson runs. */
    char *huge = nested_text(100000, "");
    assert_int_equal(gov_canon_parse(huge, strlen(huge), &doc, NULL, NULL, 0), GOV_ERR_TOO_LARGE);
    free(huge);
}

static void test_serialize_depth(void **state) {
    (void)state;
    json_t *top = json_array(), *cur = top;
    for (int i = 1; i < GOV_CANON_MAX_DEPTH; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    char *out = NULL, err[128];
    size_t len;
    gov_reason_t why = GOV_REASON_COUNT_;
    assert_int_equal(gov_canon_serialize(top, GOV_CANON_JCS, &out, &len, &why, err, sizeof err),
                     GOV_OK);
    assert_int_equal(why, GOV_REASON_NONE);
    assert_int_equal(len, 2 * GOV_CANON_MAX_DEPTH);
    gov_free(out);
    json_array_append_new(cur, json_object()); /* depth 65 */
    for (int k = 0; k < 2; k++) {
        out = (char *)0x1;
        why = GOV_REASON_NONE;
        assert_int_equal(
            gov_canon_serialize(top, (gov_canon_t)k, &out, &len, &why, err, sizeof err),
            GOV_ERR_TOO_LARGE);
        assert_null(out);
        assert_int_equal(len, 0);
        assert_int_equal(why, GOV_REASON_TOO_DEEP);
        assert_string_equal(err, "nesting exceeds 64");
    }
    json_decref(top);
}

static void test_serialize_bad_values(void **state) {
    (void)state;
    char *out = NULL, err[128];
    size_t len;
    /* Values jansson did not validate (the _nocheck constructors). */
    gov_reason_t why;
    json_t *doc = json_pack("[o]", json_stringn_nocheck("\xff", 1));
    for (int k = 0; k < 2; k++) {
        why = GOV_REASON_NONE;
        assert_int_equal(
            gov_canon_serialize(doc, (gov_canon_t)k, &out, &len, &why, err, sizeof err),
            GOV_ERR_UNSUPPORTED);
        assert_null(out);
        /* The code travels as a value, the detail alone in errbuf. */
        assert_int_equal(why, GOV_REASON_INVALID_UTF8);
        assert_string_equal(err, "string value is not UTF-8");
    }
    json_decref(doc);
    doc = json_object();
    json_object_setn_new_nocheck(doc, "\xed\xa0\x80", 3, json_true()); /* a surrogate */
    why = GOV_REASON_NONE;
    assert_int_equal(gov_canon_serialize(doc, GOV_CANON_JCS, &out, &len, &why, err, sizeof err),
                     GOV_ERR_UNSUPPORTED);
    assert_int_equal(why, GOV_REASON_INVALID_UTF8);
    assert_string_equal(err, "object key is not UTF-8");
    json_decref(doc);
    /* A NUL inside a key (possible when built in code): the length is used. */
    doc = json_object();
    assert_int_equal(json_object_setn_new(doc, "a\0b", 3, json_true()), 0);
    expect_canon("nul key", doc, GOV_CANON_JCS, "{\"a\\u0000b\":true}", 17);
    json_decref(doc);

    why = GOV_REASON_NONE;
    assert_int_equal(gov_canon_serialize(NULL, GOV_CANON_JCS, &out, &len, &why, NULL, 0),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(why, GOV_REASON_INVALID_ARG);
    doc = json_null();
    assert_int_equal(gov_canon_serialize(doc, (gov_canon_t)2, &out, &len, NULL, NULL, 0),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_canon_serialize(doc, GOV_CANON_JCS, NULL, &len, NULL, NULL, 0),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_canon_parse(NULL, 0, &doc, NULL, NULL, 0), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_canon_parse("1", 1, NULL, NULL, NULL, 0), GOV_ERR_INVALID_ARG);
}

static void test_parse_len_not_nul(void **state) {
    (void)state;
    /* text need not be NUL-terminated; bytes past len are not read. */
    const char buf[] = {'[', '1', ']', 'x'};
    json_t *doc = NULL;
    assert_int_equal(gov_canon_parse(buf, 3, &doc, NULL, NULL, 0), GOV_OK);
    char *out;
    serialize_str(doc, GOV_CANON_SOMABRAIN, &out);
    assert_string_equal(out, "[1]");
    gov_free(out);
    json_decref(doc);
    assert_int_equal(gov_canon_parse(buf, 4, &doc, NULL, NULL, 0), GOV_ERR_PARSE);
}

/* ---- allocation failure ------------------------------------------------- */

static void fail_every_allocation(const json_t *doc, gov_canon_t kind) {
    char *ref = NULL;
    size_t ref_len;
    assert_int_equal(gov_canon_serialize(doc, kind, &ref, &ref_len, NULL, NULL, 0), GOV_OK);
    long n;
    for (n = 0; n < 100000; n++) {
        char *out = (char *)0x1;
        size_t len = 99;
        gov_reason_t why = GOV_REASON_COUNT_;
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_canon_serialize(doc, kind, &out, &len, &why, NULL, 0);
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            assert_int_equal(why, GOV_REASON_NONE);
            assert_int_equal(len, ref_len);
            assert_memory_equal(out, ref, len);
            gov_free(out);
            break;
        }
        assert_int_equal(rc, GOV_ERR_NOMEM);
        assert_int_equal(why, GOV_REASON_NOMEM);
        assert_null(out);
        assert_int_equal(len, 0);
    }
    assert_true(n > 3); /* the document needs several allocations */
    gov_free(ref);
}

/* The largest generated input: the most allocation sites on one path. */
static char *largest_generated_input(size_t *len) {
    size_t n;
    char **names = read_manifest("generated", &n);
    char *best = NULL;
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        char *in = unit_slurp_path(vec_path("generated/%s/input.json", names[i]), &l);
        if (l > *len) {
            free(best);
            best = in;
            *len = l;
        } else {
            free(in);
        }
    }
    free_lines(names, n);
    return best;
}

static void test_alloc_failure(void **state) {
    (void)state;
    size_t len;
    char *in = largest_generated_input(&len);
    json_t *doc = must_parse(in, len);
    fail_every_allocation(doc, GOV_CANON_JCS);
    fail_every_allocation(doc, GOV_CANON_SOMABRAIN);

    char want[GOV_CANON_HEX_MAX], got[GOV_CANON_HEX_MAX];
    assert_int_equal(gov_canon_checksum(doc, GOV_CANON_JCS, "sha3-512", want, NULL, NULL, 0),
                     GOV_OK);
    for (long n = 0;; n++) {
        gov_reason_t why = GOV_REASON_COUNT_;
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_canon_checksum(doc, GOV_CANON_JCS, "sha3-512", got, &why, NULL, 0);
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            assert_int_equal(why, GOV_REASON_NONE);
            assert_string_equal(got, want);
            break;
        }
        assert_int_equal(rc, GOV_ERR_NOMEM);
        assert_int_equal(why, GOV_REASON_NOMEM);
        assert_string_equal(got, "");
    }
    /* Parsing: jansson allocates through gov_malloc (installed in main). */
    for (long n = 0;; n++) {
        json_t *again = (json_t *)0x1;
        char err[256];
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_canon_parse(in, len, &again, NULL, err, sizeof err);
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            assert_true(json_equal(again, doc));
            json_decref(again);
            assert_true(n > 10);
            break;
        }
        if (rc != GOV_ERR_NOMEM)
            fail_msg("allocation %ld failed: got %s: %s", n, gov_err_code(rc), err);
        assert_null(again);
    }
    json_decref(doc);
    free(in);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_name),
        cmocka_unit_test(test_checksum_args),
        cmocka_unit_test(test_rfc8785_testdata),
        cmocka_unit_test(test_rfc8785_appendix_b),
        cmocka_unit_test(test_number_table),
        cmocka_unit_test(test_generated_vectors),
        cmocka_unit_test(test_invalid_vectors),
        cmocka_unit_test(test_key_order_utf16_vs_codepoint),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_numbers_spelled_out),
        cmocka_unit_test(test_roundtrip_property),
        cmocka_unit_test(test_parse_big_integer_literals),
        cmocka_unit_test(test_parse_depth),
        cmocka_unit_test(test_serialize_depth),
        cmocka_unit_test(test_serialize_bad_values),
        cmocka_unit_test(test_parse_len_not_nul),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests_name("canon", tests, NULL, NULL);
}
