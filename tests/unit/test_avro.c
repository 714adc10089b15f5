/* test_avro.c - unit tests of gov_avro (canonical form, fingerprint,
 * single-object framing, body validation, encode/decode).
 *
 * Known answers come from outside libgov, all under tests/vectors/avro/
 * (see its README.md):
 *   valid/schema-tests-NNN   the Avro project's share/test/data/schema-tests.txt
 *                            (canonical forms and the CRC-64-AVRO fingerprints
 *                            the Java implementation is checked against)
 *   valid/py-*, invalid/py-* the Apache Avro Python test suite
 *                            (lang/py/avro/test/test_schema.py)
 *   registry/<Name>/...      canonical form, fingerprint and single-object
 *                            messages of our schemas written by the Apache
 *                            Avro Python library (registry/generate.py)
 * Malformed bodies are built byte by byte here, each named by the rule of
 * the Avro specification it breaks.
 *
 * The Apache Avro C library (avro-c), which libgov's codec does not use, is the
 * independent implementation every event is cross-checked against: the
 * registry vectors and random events of every schema must be written to the
 * same bytes by both and read back by each from the other's bytes.
 *
 * The vectors are found next to this file (tests/vectors/avro, from
 * __FILE__), or where GOV_AVRO_VECTORS points.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_avro_internal.h"
#include "gov_err.h"
#include "gov_schemas_gen.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static const char *vectors_dir(void) {
    static char dir[1024];
    const char *env = getenv("GOV_AVRO_VECTORS");
    if (env != NULL && env[0] != '\0')
        return env;
    const char *file = __FILE__;
    const char *cut = strstr(file, "unit/test_avro.c");
    if (cut == NULL)
        return "tests/vectors/avro";
    snprintf(dir, sizeof(dir), "%.*svectors/avro", (int)(cut - file), file);
    return dir;
}

/* Reads a whole file into new malloc memory (NUL-terminated); NULL if absent. */
static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n + 1 < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
        assert_non_null(buf);
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* A text vector file without its final newline. */
static char *read_text(const char *dir, const char *name) {
    char path[1400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    size_t n;
    char *s = (char *)read_all(path, &n);
    if (s != NULL && n > 0 && s[n - 1] == '\n')
        s[n - 1] = '\0';
    return s;
}

static json_t *load_json(const char *dir, const char *name) {
    char path[1400];
    json_error_t jerr;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    json_t *j = json_load_file(path, 0, &jerr);
    if (j == NULL)
        fail_msg("%s: %s", path, jerr.text);
    return j;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the subdirectories of dir (malloc'd; free with free_list). */
static char **list_dirs(const char *dir, size_t *count) {
    DIR *d = opendir(dir);
    if (d == NULL)
        fail_msg("cannot open vector directory %s (set GOV_AVRO_VECTORS)", dir);
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[1400];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        DIR *sub = opendir(path);
        if (sub == NULL)
            continue;
        closedir(sub);
        names = realloc(names, (n + 1) * sizeof(*names));
        assert_non_null(names);
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    *count = n;
    return names;
}

static void free_list(char **names, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static uint64_t parse_hex64(const char *s) {
    char *end;
    unsigned long long v = strtoull(s, &end, 16);
    assert_true(end != s && *end == '\0');
    return (uint64_t)v;
}

static gov_avro_registry_t *registry(void) {
    gov_avro_registry_t *reg = NULL;
    char err[256];
    gov_err_t rc = gov_avro_registry_new(&reg, err, sizeof(err));
    if (rc != GOV_OK)
        fail_msg("registry: %s (%s)", gov_err_code(rc), err);
    return reg;
}

/* An Avro binary body under construction (Avro spec, "Binary Encoding"). */
typedef struct body {
    unsigned char b[4096];
    size_t n;
} body_t;

static void put_raw(body_t *o, const void *p, size_t n) {
    assert_true(o->n + n <= sizeof(o->b));
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put_varint(body_t *o, uint64_t v) {
    while (v >= 0x80) {
        unsigned char c = (unsigned char)(v | 0x80);
        put_raw(o, &c, 1);
        v >>= 7;
    }
    unsigned char c = (unsigned char)v;
    put_raw(o, &c, 1);
}

/* long: zig-zag, then base-128 little-endian groups. */
static void put_long(body_t *o, int64_t v) {
    put_varint(o, ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0));
}

static void put_bytes(body_t *o, const void *p, size_t n) {
    put_long(o, (int64_t)n);
    put_raw(o, p, n);
}

static void put_str(body_t *o, const char *s) {
    put_bytes(o, s, strlen(s));
}

/* A valid TokenRevoked body (fields: event_id, occurred_at, tenant, jti,
 * expires_at, reason, revoked_by) and the JSON it stands for. */
static void token_revoked_body(body_t *o) {
    put_str(o, "019ab5c2-c060-7377-8ca4-60718293a4b5");
    put_long(o, 1763979367000000);
    put_str(o, "acme");
    put_str(o, "jti-1");
    put_long(o, 1763982966000000);
    put_str(o, "user_logout");
    put_str(o, "acme-agents");
}

static const char token_revoked_json[] =
    "{\"event_id\":\"019ab5c2-c060-7377-8ca4-60718293a4b5\",\"occurred_at\":1763979367000000,"
    "\"tenant\":\"acme\",\"jti\":\"jti-1\",\"expires_at\":1763982966000000,"
    "\"reason\":\"user_logout\",\"revoked_by\":\"acme-agents\"}";

/* ConstitutionUpdated up to its signers array; the caller appends the array
 * blocks, then constitution_updated_tail(). */
static void constitution_updated_head(body_t *o) {
    put_str(o, "019ab5c2-6b10-7e22-9d5f-1b2c3d4e5f60");
    put_long(o, 1763979362000000);
    put_str(o, "acme");
    put_str(o, "ab12");
    put_str(o, "sha256");
    put_str(o, "3");
    put_long(o, 0); /* previous_checksum: union branch 0, null */
}

static void constitution_updated_tail(body_t *o) {
    put_str(o, "govctl:operator");
    put_str(o, "019ab5c2-5a00-7d11-8c4e-0a1b2c3d4e60");
}

/* The vector fingerprint of a schema, independent of libgov. */
static uint64_t vector_fingerprint(const char *name) {
    char dir[1200];
    snprintf(dir, sizeof(dir), "%s/registry/%s", vectors_dir(), name);
    char *hex = read_text(dir, "fingerprint");
    if (hex == NULL)
        fail_msg("no fingerprint vector for %s", name);
    uint64_t fp = parse_hex64(hex);
    free(hex);
    return fp;
}

/* C3 01 | fingerprint (little-endian) | body */
static unsigned char *frame(uint64_t fp, const body_t *b, size_t *len) {
    unsigned char *m = malloc(GOV_AVRO_HEADER_LEN + b->n + 1);
    assert_non_null(m);
    m[0] = 0xC3;
    m[1] = 0x01;
    for (int i = 0; i < 8; i++)
        m[2 + i] = (unsigned char)(fp >> (8 * i));
    memcpy(m + GOV_AVRO_HEADER_LEN, b->b, b->n);
    *len = GOV_AVRO_HEADER_LEN + b->n;
    return m;
}

/* Asserts that validate_body and decode both reject the body with
 * GOV_ERR_PARSE and a message containing `reason`. */
static void expect_rejected(const gov_avro_registry_t *reg, const char *name,
                            const body_t *b, const char *reason) {
    char err[256] = "";
    gov_err_t rc = gov_avro_validate_body(reg, name, b->b, b->n, err, sizeof(err));
    if (rc != GOV_ERR_PARSE || strstr(err, reason) == NULL)
        fail_msg("%s: expected parse_error \"%s\", got %s \"%s\"", name, reason,
                 gov_err_code(rc), err);
    size_t len;
    unsigned char *m = frame(vector_fingerprint(name), b, &len);
    json_t *ev = NULL;
    const char *got = "unchanged";
    err[0] = '\0';
    rc = gov_avro_decode(reg, m, len, &ev, &got, err, sizeof(err));
    if (rc != GOV_ERR_PARSE || strstr(err, reason) == NULL)
        fail_msg("%s decode: expected parse_error \"%s\", got %s \"%s\"", name, reason,
                 gov_err_code(rc), err);
    assert_null(ev);
    assert_null(got);
    free(m);
}

static json_t *expect_decoded(const gov_avro_registry_t *reg, const char *name,
                              const body_t *b) {
    char err[256] = "";
    gov_err_t rc = gov_avro_validate_body(reg, name, b->b, b->n, err, sizeof(err));
    if (rc != GOV_OK)
        fail_msg("%s: validate: %s \"%s\"", name, gov_err_code(rc), err);
    size_t len;
    unsigned char *m = frame(vector_fingerprint(name), b, &len);
    json_t *ev = NULL;
    const char *got = NULL;
    rc = gov_avro_decode(reg, m, len, &ev, &got, err, sizeof(err));
    if (rc != GOV_OK)
        fail_msg("%s: decode: %s \"%s\"", name, gov_err_code(rc), err);
    assert_string_equal(got, name);
    free(m);
    return ev;
}

/* ------------------------------------------------------------------------ */
/* CRC-64-AVRO                                                               */

/* The fingerprint as the spec defines it, one bit at a time, with no table:
 * an independent check of the table the library ships. */
static uint64_t crc64_bitwise(const unsigned char *p, size_t n) {
    const uint64_t empty = 0xc15d213aa4d7a795ULL;
    uint64_t fp = empty;
    for (size_t i = 0; i < n; i++) {
        fp ^= p[i];
        for (int k = 0; k < 8; k++)
            fp = (fp >> 1) ^ (empty & (0 - (fp & 1)));
    }
    return fp;
}

static void test_fingerprint_empty_and_bitwise(void **state) {
    (void)state;
    /* The spec: the fingerprint of the empty string is EMPTY. */
    assert_true(gov_avro_fingerprint64("", 0) == 0xc15d213aa4d7a795ULL);
    unsigned char buf[1024];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    /* Every table entry is reached by single bytes 0..255. */
    for (unsigned v = 0; v < 256; v++) {
        unsigned char c = (unsigned char)v;
        assert_true(gov_avro_fingerprint64(&c, 1) == crc64_bitwise(&c, 1));
    }
    for (size_t n = 0; n <= sizeof(buf); n += 37)
        assert_true(gov_avro_fingerprint64(buf, n) == crc64_bitwise(buf, n));
}

/* ------------------------------------------------------------------------ */
/* Parsing Canonical Form                                                    */

static void test_canonical_form_vectors(void **state) {
    (void)state;
    char base[1100];
    snprintf(base, sizeof(base), "%s/valid", vectors_dir());
    size_t n;
    char **cases = list_dirs(base, &n);
    size_t with_fp = 0, from_avro_data = 0;
    for (size_t i = 0; i < n; i++) {
        char dir[1200];
        snprintf(dir, sizeof(dir), "%s/%s", base, cases[i]);
        char *input = read_text(dir, "schema.json");
        char *expect = read_text(dir, "canonical");
        char *fp_text = read_text(dir, "fingerprint");
        assert_non_null(input);
        assert_non_null(expect);
        char *pcf = NULL, err[256] = "";
        gov_err_t rc = gov_avro_canonical_form(input, &pcf, err, sizeof(err));
        if (rc != GOV_OK)
            fail_msg("%s: %s (%s)", cases[i], gov_err_code(rc), err);
        if (strcmp(pcf, expect) != 0)
            fail_msg("%s:\n got %s\nwant %s", cases[i], pcf, expect);
        /* Fingerprints are printed as Java longs (signed decimal). */
        uint64_t fp = gov_avro_fingerprint64(pcf, strlen(pcf));
        if (fp_text != NULL) {
            long long want = strtoll(fp_text, NULL, 10);
            if (fp != (uint64_t)want)
                fail_msg("%s: fingerprint %016" PRIx64 ", want %lld", cases[i], fp, want);
            with_fp++;
        }
        from_avro_data += strncmp(cases[i], "schema-tests-", 13) == 0;
        gov_free(pcf);
        free(input);
        free(expect);
        free(fp_text);
    }
    /* All 34 cases of schema-tests.txt (26 with a fingerprint) and the
     * Python suite's 11 must have been found: an empty directory is a
     * failure, not a pass. */
    assert_true(from_avro_data >= 34);
    assert_true(n >= 45);
    assert_true(with_fp >= 37);
    free_list(cases, n);
}

static void test_canonical_form_rejects_invalid_schemas(void **state) {
    (void)state;
    char base[1100];
    snprintf(base, sizeof(base), "%s/invalid", vectors_dir());
    size_t n;
    char **cases = list_dirs(base, &n);
    assert_true(n >= 21);
    for (size_t i = 0; i < n; i++) {
        char dir[1200];
        snprintf(dir, sizeof(dir), "%s/%s", base, cases[i]);
        char *input = read_text(dir, "schema.json");
        assert_non_null(input);
        char *pcf = (char *)"unchanged", err[256] = "";
        gov_err_t rc = gov_avro_canonical_form(input, &pcf, err, sizeof(err));
        if (rc == GOV_OK)
            fail_msg("%s accepted as %s", cases[i], pcf);
        assert_true(rc == GOV_ERR_AVRO || rc == GOV_ERR_PARSE);
        assert_null(pcf);
        assert_true(err[0] != '\0');
        free(input);
    }
    free_list(cases, n);
}

/* FULLNAMES for nested named types: they inherit the namespace of the most
 * tightly enclosing named type, an explicit namespace or a dotted name
 * overrides it, and a later use of a type is its fullname.  Expected output
 * derived by hand from the spec's rules (Avro 1.11, "Names" and "Parsing
 * Canonical Form"). */
static void test_canonical_form_namespaces(void **state) {
    (void)state;
    /* %s is the type of Outer.in.g.h, a reference made from inside G, which
     * sits in the null namespace. */
    const char *tmpl =
        "{\"type\":\"record\",\"name\":\"Outer\",\"namespace\":\"a.b\",\"doc\":\"x\",\"fields\":["
        " {\"name\":\"in\",\"type\":{\"type\":\"record\",\"name\":\"Inner\",\"fields\":["
        "   {\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"namespace\":\"c\",\"symbols\":[\"X\"]}},"
        "   {\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"d.F\",\"size\":\"004\"}},"
        "   {\"name\":\"g\",\"type\":{\"type\":\"record\",\"name\":\"G\",\"namespace\":\"\",\"fields\":["
        "     {\"name\":\"h\",\"type\":[\"null\",\"%s\"]}]}}]}},"
        " {\"name\":\"again\",\"type\":[\"Inner\",\"c.E\",\"d.F\",\"G\"]},"
        " {\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"},\"default\":0}]}";
    char schema[2048], err[256];
    char *pcf = NULL;

    /* Undefined, and a short name that only exists in another namespace. */
    const char *unresolved[] = {"H0", "Inner", "Outer"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(schema, sizeof(schema), tmpl, unresolved[i]);
        assert_int_equal(gov_avro_canonical_form(schema, &pcf, err, sizeof(err)), GOV_ERR_AVRO);
        assert_non_null(strstr(err, unresolved[i]));
        assert_null(pcf);
    }

    snprintf(schema, sizeof(schema), tmpl, "a.b.Outer");
    assert_int_equal(gov_avro_canonical_form(schema, &pcf, err, sizeof(err)), GOV_OK);
    assert_string_equal(
        pcf,
        "{\"name\":\"a.b.Outer\",\"type\":\"record\",\"fields\":["
        "{\"name\":\"in\",\"type\":{\"name\":\"a.b.Inner\",\"type\":\"record\",\"fields\":["
        "{\"name\":\"e\",\"type\":{\"name\":\"c.E\",\"type\":\"enum\",\"symbols\":[\"X\"]}},"
        "{\"name\":\"f\",\"type\":{\"name\":\"d.F\",\"type\":\"fixed\",\"size\":4}},"
        "{\"name\":\"g\",\"type\":{\"name\":\"G\",\"type\":\"record\",\"fields\":["
        "{\"name\":\"h\",\"type\":[\"null\",\"a.b.Outer\"]}]}}]}},"
        "{\"name\":\"again\",\"type\":[\"a.b.Inner\",\"c.E\",\"d.F\",\"G\"]},"
        "{\"name\":\"ts\",\"type\":\"long\"}]}");
    gov_free(pcf);
}

static void test_canonical_form_bad_arguments(void **state) {
    (void)state;
    char *pcf = NULL, err[128];
    assert_int_equal(gov_avro_canonical_form(NULL, &pcf, err, sizeof(err)), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_avro_canonical_form("{", &pcf, err, sizeof(err)), GOV_ERR_PARSE);
    assert_null(pcf);
    /* errbuf may be NULL. */
    assert_int_equal(gov_avro_canonical_form("\"nope\"", &pcf, NULL, 0), GOV_ERR_AVRO);
    assert_int_equal(gov_avro_canonical_form("{\"type\":\"record\",\"name\":\"r\",\"fields\":[],"
                                             "\"name\":\"s\"}", &pcf, err, sizeof(err)),
                     GOV_ERR_PARSE); /* duplicate JSON member */
}

/* ------------------------------------------------------------------------ */
/* Registry                                                                  */

static void test_registry_matches_reference_library(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    assert_true(gov_embedded_schema_count >= 8);
    for (unsigned i = 0; i < gov_embedded_schema_count; i++) {
        const char *name = gov_embedded_schemas[i].name;
        char dir[1200];
        snprintf(dir, sizeof(dir), "%s/registry/%s", vectors_dir(), name);
        char *want = read_text(dir, "canonical");
        if (want == NULL)
            fail_msg("no registry vector for schema %s: run registry/generate.py", name);
        const char *pcf = gov_avro_registry_canonical(reg, name);
        assert_non_null(pcf);
        assert_string_equal(pcf, want);
        uint64_t fp = 0;
        assert_int_equal(gov_avro_registry_fingerprint(reg, name, &fp), GOV_OK);
        assert_true(fp == vector_fingerprint(name));
        /* The public function gives the same form as the registry. */
        char *pcf2 = NULL;
        assert_int_equal(gov_avro_canonical_form(gov_embedded_schemas[i].json, &pcf2, NULL, 0),
                         GOV_OK);
        assert_string_equal(pcf2, pcf);
        gov_free(pcf2);
        free(want);
    }
    uint64_t fp = 42;
    assert_int_equal(gov_avro_registry_fingerprint(reg, "NoSuchEvent", &fp), GOV_ERR_NOT_FOUND);
    assert_true(fp == 42);
    assert_null(gov_avro_registry_canonical(reg, "NoSuchEvent"));
    gov_avro_registry_free(reg);
    gov_avro_registry_free(NULL);
}

/* ------------------------------------------------------------------------ */
/* Round trips against the reference library                                 */

typedef struct cover {
    char path[160];
    bool seen_null;
    bool seen_value;
} cover_t;

typedef struct cover_set {
    cover_t c[64];
    size_t n;
} cover_set_t;

static cover_t *cover_get(cover_set_t *s, const char *path) {
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->c[i].path, path) == 0)
            return &s->c[i];
    assert_true(s->n < 64);
    cover_t *c = &s->c[s->n++];
    snprintf(c->path, sizeof(c->path), "%s", path);
    return c;
}

/* Walks a canonical-form schema (as JSON) and, when value is not NULL, a
 * value of it, noting for every optional (null-union) field whether it was
 * seen null and seen set. */
static void cover_walk(cover_set_t *s, json_t *schema, json_t *value, const char *path) {
    char sub[200];
    if (json_is_array(schema)) {
        cover_t *c = cover_get(s, path);
        if (value == NULL)
            goto branches;
        if (json_is_null(value)) {
            c->seen_null = true;
            return;
        }
        c->seen_value = true;
    branches:
        for (size_t i = 0; i < json_array_size(schema); i++) {
            json_t *b = json_array_get(schema, i);
            if (!(json_is_string(b) && strcmp(json_string_value(b), "null") == 0))
                cover_walk(s, b, value, path);
        }
        return;
    }
    if (!json_is_object(schema))
        return;
    const char *type = json_string_value(json_object_get(schema, "type"));
    if (strcmp(type, "record") == 0) {
        json_t *fields = json_object_get(schema, "fields");
        for (size_t i = 0; i < json_array_size(fields); i++) {
            json_t *f = json_array_get(fields, i);
            const char *fname = json_string_value(json_object_get(f, "name"));
            snprintf(sub, sizeof(sub), "%s.%s", path, fname);
            cover_walk(s, json_object_get(f, "type"), value ? json_object_get(value, fname) : NULL,
                       sub);
        }
    } else if (strcmp(type, "array") == 0) {
        snprintf(sub, sizeof(sub), "%s[]", path);
        json_t *items = json_object_get(schema, "items");
        cover_walk(s, items, NULL, sub);
        for (size_t i = 0; value && i < json_array_size(value); i++)
            cover_walk(s, items, json_array_get(value, i), sub);
    }
}

/* Both implementations' view of one schema: libgov's tree, avro-c's own
 * parse of the same text (both_load, both_free below). */
typedef struct both_schemas {
    gov_avro_schema_t *tree;
    avro_schema_t avro_c;
    avro_value_iface_t *iface;
} both_schemas_t;
static both_schemas_t *both_load(const char *text, size_t len);
static void both_free(both_schemas_t *b);
static void cross_check(const gov_avro_registry_t *reg, const char *name,
                        const both_schemas_t *both, json_t *event, const char *label);

/* Every registry vector: our bytes are the Python library's, we read its
 * bytes as it does, and avro-c agrees with both (cross_check). */
static void test_round_trip_every_schema(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    size_t total_cases = 0;
    for (unsigned i = 0; i < gov_embedded_schema_count; i++) {
        const char *name = gov_embedded_schemas[i].name;
        char base[1200];
        snprintf(base, sizeof(base), "%s/registry/%s", vectors_dir(), name);
        size_t n;
        char **cases = list_dirs(base, &n);
        if (n == 0)
            fail_msg("schema %s has no event vectors", name);

        both_schemas_t *both = both_load(gov_embedded_schemas[i].json,
                                         gov_embedded_schemas[i].len);
        json_error_t jerr;
        json_t *pcf_json = json_loads(gov_avro_registry_canonical(reg, name), 0, &jerr);
        assert_non_null(pcf_json);
        cover_set_t cover = {.n = 0};
        cover_walk(&cover, pcf_json, NULL, name);

        for (size_t k = 0; k < n; k++) {
            char dir[1400];
            snprintf(dir, sizeof(dir), "%s/%s", base, cases[k]);
            json_t *event = load_json(dir, "event.json");
            json_t *decoded_ref = load_json(dir, "decoded.json");
            char path[1500];
            snprintf(path, sizeof(path), "%s/message.bin", dir);
            size_t ref_len;
            unsigned char *ref = read_all(path, &ref_len);
            assert_non_null(ref);

            /* encode == the reference library's bytes, header included */
            unsigned char *msg = NULL;
            size_t len = 0;
            char err[256];
            gov_err_t rc = gov_avro_encode(reg, name, event, &msg, &len, err, sizeof(err));
            if (rc != GOV_OK)
                fail_msg("%s/%s: encode %s (%s)", name, cases[k], gov_err_code(rc), err);
            if (len != ref_len || memcmp(msg, ref, len) != 0)
                fail_msg("%s/%s: encoding differs from the reference (%zu vs %zu bytes)", name,
                         cases[k], len, ref_len);

            /* decode(reference bytes) == what the reference library reads */
            json_t *out = NULL;
            const char *got = NULL;
            rc = gov_avro_decode(reg, ref, ref_len, &out, &got, err, sizeof(err));
            if (rc != GOV_OK)
                fail_msg("%s/%s: decode %s (%s)", name, cases[k], gov_err_code(rc), err);
            assert_string_equal(got, name);
            if (!json_equal(out, decoded_ref)) {
                char *a = json_dumps(out, JSON_COMPACT), *b = json_dumps(decoded_ref, JSON_COMPACT);
                fail_msg("%s/%s: decoded\n%s\nwant\n%s", name, cases[k], a, b);
            }
            /* every field is present in what decode returns */
            json_t *fields = json_object_get(pcf_json, "fields");
            assert_int_equal(json_object_size(out), json_array_size(fields));
            cover_walk(&cover, pcf_json, out, name);
            char label[300];
            snprintf(label, sizeof(label), "%s/%s", name, cases[k]);
            cross_check(reg, name, both, decoded_ref, label);

            json_decref(out);
            gov_free(msg);
            free(ref);
            json_decref(decoded_ref);
            json_decref(event);
            total_cases++;
        }
        /* Each optional field was exercised both null and set. */
        for (size_t c = 0; c < cover.n; c++)
            if (!cover.c[c].seen_null || !cover.c[c].seen_value)
                fail_msg("vectors of %s never have %s %s", name, cover.c[c].path,
                         cover.c[c].seen_null ? "set" : "null");
        json_decref(pcf_json);
        free_list(cases, n);
        both_free(both);
    }
    assert_true(total_cases >= 2 * gov_embedded_schema_count);
    gov_avro_registry_free(reg);
}

static void test_single_object_header(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    json_error_t jerr;
    json_t *ev = json_loads(token_revoked_json, 0, &jerr);
    assert_non_null(ev);
    unsigned char *msg = NULL;
    size_t len = 0;
    char err[256];
    assert_int_equal(gov_avro_encode(reg, "TokenRevoked", ev, &msg, &len, err, sizeof(err)),
                     GOV_OK);
    uint64_t fp = vector_fingerprint("TokenRevoked");
    assert_true(len > GOV_AVRO_HEADER_LEN);
    assert_int_equal(msg[0], 0xC3);
    assert_int_equal(msg[1], 0x01);
    for (int i = 0; i < 8; i++) /* little-endian */
        assert_int_equal(msg[2 + i], (fp >> (8 * i)) & 0xff);
    /* The body is exactly the Avro binary encoding of the record. */
    body_t b = {.n = 0};
    token_revoked_body(&b);
    assert_int_equal(len - GOV_AVRO_HEADER_LEN, b.n);
    assert_memory_equal(msg + GOV_AVRO_HEADER_LEN, b.b, b.n);
    gov_free(msg);
    json_decref(ev);
    gov_avro_registry_free(reg);
}

/* Strings are length-prefixed, so a NUL inside one must survive (avro-c
 * reports sizes including a terminating NUL). */
static void test_string_with_nul_and_empty(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    json_error_t jerr;
    json_t *ev = json_loads(token_revoked_json, 0, &jerr);
    assert_non_null(ev);
    assert_int_equal(json_object_set_new(ev, "reason", json_stringn("a\0b", 3)), 0);
    assert_int_equal(json_object_set_new(ev, "jti", json_string("")), 0);
    unsigned char *msg = NULL;
    size_t len;
    char err[256];
    assert_int_equal(gov_avro_encode(reg, "TokenRevoked", ev, &msg, &len, err, sizeof(err)),
                     GOV_OK);
    json_t *out = NULL;
    assert_int_equal(gov_avro_decode(reg, msg, len, &out, NULL, err, sizeof(err)), GOV_OK);
    assert_true(json_equal(out, ev));
    assert_int_equal(json_string_length(json_object_get(out, "reason")), 3);
    json_decref(out);
    gov_free(msg);
    json_decref(ev);
    gov_avro_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* Rejections of untrusted bodies                                           */

static void test_hand_built_body_is_accepted(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    body_t b = {.n = 0};
    token_revoked_body(&b);
    json_t *ev = expect_decoded(reg, "TokenRevoked", &b);
    json_error_t jerr;
    json_t *want = json_loads(token_revoked_json, 0, &jerr);
    assert_true(json_equal(ev, want));
    json_decref(ev);
    json_decref(want);

    /* A varint longer than needed is still a varint (the spec does not
     * demand the shortest form): 0 as 80 80 00. */
    body_t c = {.n = 0};
    put_str(&c, "e");
    put_raw(&c, "\x80\x80\x00", 3);
    put_str(&c, "t");
    put_str(&c, "j");
    put_long(&c, INT64_MIN); /* ten bytes, the last 0x01 */
    put_str(&c, "");
    put_str(&c, "r");
    ev = expect_decoded(reg, "TokenRevoked", &c);
    assert_int_equal(json_integer_value(json_object_get(ev, "occurred_at")), 0);
    assert_true(json_integer_value(json_object_get(ev, "expires_at")) == INT64_MIN);
    json_decref(ev);
    gov_avro_registry_free(reg);
}

static void test_reject_truncated_and_malformed_varints(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    body_t b = {.n = 0};

    /* Body ends inside the varint of occurred_at (continuation bit set). */
    put_str(&b, "e");
    put_raw(&b, "\xff", 1);
    expect_rejected(reg, "TokenRevoked", &b, "truncated varint");

    /* Empty body: the first string length is missing. */
    b.n = 0;
    expect_rejected(reg, "TokenRevoked", &b, "truncated varint");

    /* Eleven bytes with continuation: more than the 10 a long may take. */
    b.n = 0;
    put_str(&b, "e");
    put_raw(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
    expect_rejected(reg, "TokenRevoked", &b, "varint longer than 10 bytes");

    /* Ten bytes whose last carries bits beyond 64. */
    b.n = 0;
    put_str(&b, "e");
    put_raw(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10);
    expect_rejected(reg, "TokenRevoked", &b, "out of range");

    /* A whole valid body cut at every position short of its end. */
    body_t full = {.n = 0};
    token_revoked_body(&full);
    for (size_t cut = 0; cut < full.n; cut++) {
        body_t t = full;
        t.n = cut;
        char err[256];
        assert_int_equal(gov_avro_validate_body(reg, "TokenRevoked", t.b, t.n, err, sizeof(err)),
                         GOV_ERR_PARSE);
    }
    gov_avro_registry_free(reg);
}

static void test_reject_bad_lengths(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    body_t b = {.n = 0};
    put_long(&b, -1); /* event_id length -1 */
    put_raw(&b, "abc", 3);
    expect_rejected(reg, "TokenRevoked", &b, "negative string length");

    b.n = 0;
    put_long(&b, INT64_MIN);
    expect_rejected(reg, "TokenRevoked", &b, "negative string length");

    b.n = 0;
    put_long(&b, 5); /* 5 announced, 2 present */
    put_raw(&b, "ab", 2);
    expect_rejected(reg, "TokenRevoked", &b, "exceeds the 2 remaining bytes");

    b.n = 0;
    put_long(&b, INT64_MAX);
    expect_rejected(reg, "TokenRevoked", &b, "exceeds the 0 remaining bytes");
    gov_avro_registry_free(reg);
}

static void test_reject_invalid_utf8(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"\xc3\x28", 2},         /* continuation byte missing */
        {"\xc0\xaf", 2},         /* overlong '/' */
        {"\xe0\x80\xaf", 3},     /* overlong, three bytes */
        {"\xed\xa0\x80", 3},     /* UTF-16 surrogate D800 */
        {"\xf4\x90\x80\x80", 4}, /* above U+10FFFF */
        {"\xf8\x88\x80\x80\x80", 5},
        {"\xff", 1},
        {"ok\xe2\x82", 4},       /* sequence cut by the end of the string */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        body_t b = {.n = 0};
        put_str(&b, "e");
        put_long(&b, 1);
        put_bytes(&b, bad[i].bytes, bad[i].len); /* tenant */
        put_str(&b, "j");
        put_long(&b, 2);
        put_str(&b, "r");
        put_str(&b, "x");
        expect_rejected(reg, "TokenRevoked", &b, "invalid UTF-8");
    }
    /* The same places take good multi-byte text: "zoë 東京 🔒". */
    body_t ok = {.n = 0};
    put_str(&ok, "e");
    put_long(&ok, 1);
    put_str(&ok, "zo\xc3\xab \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x94\x92");
    put_str(&ok, "j");
    put_long(&ok, 2);
    put_str(&ok, "r");
    put_str(&ok, "x");
    json_t *ev = expect_decoded(reg, "TokenRevoked", &ok);
    assert_string_equal(json_string_value(json_object_get(ev, "tenant")),
                        "zo\xc3\xab \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x94\x92");
    json_decref(ev);
    gov_avro_registry_free(reg);
}

/* AuditEvent: six strings/longs, the outcome enum, then four ["null",
 * "string"] unions. */
static void audit_event_head(body_t *b) {
    put_str(b, "019ab5c2-4f1e-7c3a-9b1e-5f2c8a4d6e01");
    put_long(b, 1763979360123456);
    put_str(b, "acme");
    put_str(b, "gov-edge");
    put_str(b, "acme-agents");
    put_str(b, "token.issued");
}

static void test_reject_enum_and_union_index(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    body_t b = {.n = 0};

    /* Positive control: outcome "failure" (2), reason set, the rest null. */
    audit_event_head(&b);
    put_long(&b, 2);
    put_long(&b, 1);
    put_str(&b, "kafka_unavailable");
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 0);
    json_t *ev = expect_decoded(reg, "AuditEvent", &b);
    assert_string_equal(json_string_value(json_object_get(ev, "outcome")), "failure");
    assert_string_equal(json_string_value(json_object_get(ev, "reason")), "kafka_unavailable");
    assert_true(json_is_null(json_object_get(ev, "subject")));
    json_decref(ev);

    /* Enum index 3 of 3 symbols, and -1. */
    int64_t bad_enum[] = {3, -1, INT64_MAX};
    for (size_t i = 0; i < 3; i++) {
        b.n = 0;
        audit_event_head(&b);
        put_long(&b, bad_enum[i]);
        put_long(&b, 0);
        put_long(&b, 0);
        put_long(&b, 0);
        put_long(&b, 0);
        expect_rejected(reg, "AuditEvent", &b, "enum index");
        expect_rejected(reg, "AuditEvent", &b, "out of range (3 symbols)");
    }

    /* Union index 2 of 2 branches, and -1. */
    int64_t bad_union[] = {2, -1};
    for (size_t i = 0; i < 2; i++) {
        b.n = 0;
        audit_event_head(&b);
        put_long(&b, 0);
        put_long(&b, 0);
        put_long(&b, 0);
        put_long(&b, bad_union[i]);
        put_long(&b, 0);
        expect_rejected(reg, "AuditEvent", &b, "union index");
        expect_rejected(reg, "AuditEvent", &b, "(correlation_id)");
    }
    gov_avro_registry_free(reg);
}

static void test_reject_trailing_bytes(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    body_t b = {.n = 0};
    token_revoked_body(&b);
    put_raw(&b, "\x00", 1);
    expect_rejected(reg, "TokenRevoked", &b, "1 trailing bytes");
    gov_avro_registry_free(reg);
}

/* Arrays: blocks with a positive count, or a negative count followed by the
 * block's byte size; a zero count ends the array (spec, "Arrays"). */
static void test_array_blocks(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    body_t b = {.n = 0};

    /* Two blocks, the second with a negative count and its byte size. */
    constitution_updated_head(&b);
    put_long(&b, 1);
    put_str(&b, "human_operator");
    put_long(&b, -2);
    put_long(&b, 1 + 9 + 1 + 2); /* "somabrain", "ci", each length-prefixed */
    put_str(&b, "somabrain");
    put_str(&b, "ci");
    put_long(&b, 0);
    constitution_updated_tail(&b);
    json_t *ev = expect_decoded(reg, "ConstitutionUpdated", &b);
    json_t *signers = json_object_get(ev, "signers");
    assert_int_equal(json_array_size(signers), 3);
    assert_string_equal(json_string_value(json_array_get(signers, 0)), "human_operator");
    assert_string_equal(json_string_value(json_array_get(signers, 1)), "somabrain");
    assert_string_equal(json_string_value(json_array_get(signers, 2)), "ci");
    json_decref(ev);

    /* Byte size that does not match the items. */
    b.n = 0;
    constitution_updated_head(&b);
    put_long(&b, -1);
    put_long(&b, 3);
    put_str(&b, "somabrain");
    put_long(&b, 0);
    constitution_updated_tail(&b);
    expect_rejected(reg, "ConstitutionUpdated", &b, "does not match its items");

    /* Negative byte size, and one beyond the end. */
    int64_t sizes[] = {-5, 100000};
    for (size_t i = 0; i < 2; i++) {
        b.n = 0;
        constitution_updated_head(&b);
        put_long(&b, -1);
        put_long(&b, sizes[i]);
        put_str(&b, "x");
        put_long(&b, 0);
        constitution_updated_tail(&b);
        expect_rejected(reg, "ConstitutionUpdated", &b, "block byte size");
    }

    /* Counts above GOV_AVRO_MAX_ITEMS, in one block or in total, and the
     * count whose negation overflows. */
    b.n = 0;
    constitution_updated_head(&b);
    put_long(&b, (int64_t)GOV_AVRO_MAX_ITEMS + 1);
    expect_rejected(reg, "ConstitutionUpdated", &b, "too many items");
    b.n = 0;
    constitution_updated_head(&b);
    put_long(&b, INT64_MIN);
    put_long(&b, 1);
    expect_rejected(reg, "ConstitutionUpdated", &b, "too many items");
    b.n = 0;
    constitution_updated_head(&b);
    put_long(&b, 1);
    put_str(&b, "a");
    put_long(&b, (int64_t)GOV_AVRO_MAX_ITEMS);
    expect_rejected(reg, "ConstitutionUpdated", &b, "too many items");

    /* A block count that promises more items than there are bytes. */
    b.n = 0;
    constitution_updated_head(&b);
    put_long(&b, 1000);
    put_str(&b, "a");
    expect_rejected(reg, "ConstitutionUpdated", &b, "truncated varint");

    /* Array never terminated. */
    b.n = 0;
    constitution_updated_head(&b);
    put_long(&b, 1);
    put_str(&b, "a");
    expect_rejected(reg, "ConstitutionUpdated", &b, "truncated varint");
    gov_avro_registry_free(reg);
}

/* A nested record inside an array: the path names the element. */
static void test_reject_reports_nested_path(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    body_t b = {.n = 0};
    put_str(&b, "019ab5c2-5a00-7d11-8c4e-0a1b2c3d4e5f");
    put_long(&b, 1);
    put_str(&b, "acme");
    put_str(&b, "{}");
    put_str(&b, "jcs");
    put_str(&b, "sha256");
    put_str(&b, "00");
    put_long(&b, 2); /* two signatures */
    put_str(&b, "human_operator");
    put_str(&b, "ed25519");
    put_str(&b, "aa");
    put_str(&b, "somabrain");
    put_bytes(&b, "\xc0\x80", 2); /* overlong NUL as algorithm */
    put_str(&b, "bb");
    put_long(&b, 0);
    put_str(&b, "govctl:x");
    put_long(&b, 0);
    expect_rejected(reg, "ConstitutionBundle", &b, "invalid UTF-8");
    expect_rejected(reg, "ConstitutionBundle", &b, "(signatures[1].algorithm)");
    gov_avro_registry_free(reg);
}

static void test_decode_rejects_framing(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    body_t b = {.n = 0};
    token_revoked_body(&b);
    size_t len;
    unsigned char *m = frame(vector_fingerprint("TokenRevoked"), &b, &len);
    json_t *ev = NULL;
    const char *name = NULL;
    char err[256];

    /* The untouched message decodes: the mutations below are the cause. */
    assert_int_equal(gov_avro_decode(reg, m, len, &ev, &name, err, sizeof(err)), GOV_OK);
    json_decref(ev);
    ev = NULL;

    m[0] = 0xC2;
    assert_int_equal(gov_avro_decode(reg, m, len, &ev, &name, err, sizeof(err)), GOV_ERR_PARSE);
    assert_non_null(strstr(err, "bad magic"));
    m[0] = 0xC3;
    m[1] = 0x00;
    assert_int_equal(gov_avro_decode(reg, m, len, &ev, &name, err, sizeof(err)), GOV_ERR_PARSE);
    assert_non_null(strstr(err, "bad magic"));
    m[1] = 0x01;

    /* Unknown fingerprint: one bit flipped, and the fingerprint's bytes in
     * big-endian order (a classic producer bug). */
    m[9] ^= 0x01;
    assert_int_equal(gov_avro_decode(reg, m, len, &ev, &name, err, sizeof(err)),
                     GOV_ERR_UNSUPPORTED);
    assert_non_null(strstr(err, "unknown schema fingerprint"));
    m[9] ^= 0x01;
    uint64_t fp = vector_fingerprint("TokenRevoked");
    for (int i = 0; i < 8; i++)
        m[2 + i] = (unsigned char)(fp >> (8 * (7 - i)));
    assert_int_equal(gov_avro_decode(reg, m, len, &ev, &name, err, sizeof(err)),
                     GOV_ERR_UNSUPPORTED);

    /* Shorter than the header. */
    for (size_t n = 0; n < GOV_AVRO_HEADER_LEN; n++)
        assert_int_equal(gov_avro_decode(reg, m, n, &ev, &name, err, sizeof(err)),
                         GOV_ERR_PARSE);
    assert_null(ev);
    assert_null(name);
    assert_int_equal(gov_avro_decode(reg, NULL, 5, &ev, &name, err, sizeof(err)),
                     GOV_ERR_INVALID_ARG);
    free(m);

    /* Bodies over the limit are refused before they are read. */
    unsigned char *big = calloc(GOV_AVRO_MAX_BODY + 1, 1);
    assert_non_null(big);
    assert_int_equal(gov_avro_validate_body(reg, "TokenRevoked", big, GOV_AVRO_MAX_BODY + 1,
                                            err, sizeof(err)),
                     GOV_ERR_TOO_LARGE);
    free(big);
    assert_int_equal(gov_avro_validate_body(reg, "NoSuchEvent", "", 0, err, sizeof(err)),
                     GOV_ERR_NOT_FOUND);
    gov_avro_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* Encode refusals                                                           */

static void expect_encode_error(const gov_avro_registry_t *reg, const char *name, json_t *ev,
                                gov_err_t want, const char *fragment) {
    unsigned char *msg = (unsigned char *)"unchanged";
    size_t len = 99;
    char err[256] = "";
    gov_err_t rc = gov_avro_encode(reg, name, ev, &msg, &len, err, sizeof(err));
    if (rc != want || strstr(err, fragment) == NULL)
        fail_msg("expected %s \"%s\", got %s \"%s\"", gov_err_code(want), fragment,
                 gov_err_code(rc), err);
    assert_null(msg);
    assert_int_equal(len, 0);
}

static json_t *policy_decision(void) {
    char dir[1200];
    snprintf(dir, sizeof(dir), "%s/registry/PolicyDecision/full", vectors_dir());
    return load_json(dir, "event.json");
}

static void test_encode_refuses_bad_events(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    json_t *ev = policy_decision();

    /* Baseline: the event encodes. */
    unsigned char *msg = NULL;
    size_t len;
    char err[256];
    assert_int_equal(gov_avro_encode(reg, "PolicyDecision", ev, &msg, &len, err, sizeof(err)),
                     GOV_OK);
    gov_free(msg);

    json_t *e = json_deep_copy(ev);
    json_object_del(e, "tenant");
    expect_encode_error(reg, "PolicyDecision", e, GOV_ERR_INVALID_ARG,
                        "tenant: missing field without a default");
    json_decref(e);

    e = json_deep_copy(ev);
    json_object_set_new(e, "tennant", json_string("acme"));
    expect_encode_error(reg, "PolicyDecision", e, GOV_ERR_INVALID_ARG, "tennant: not a field");
    json_decref(e);

    e = json_deep_copy(ev);
    json_object_set_new(e, "score_micros", json_string("650000"));
    expect_encode_error(reg, "PolicyDecision", e, GOV_ERR_INVALID_ARG,
                        "score_micros: expected an integer, got a string");
    json_decref(e);

    e = json_deep_copy(ev);
    json_object_set_new(e, "score_micros", json_real(0.65));
    expect_encode_error(reg, "PolicyDecision", e, GOV_ERR_INVALID_ARG, "got a real number");
    json_decref(e);

    e = json_deep_copy(ev);
    json_object_set_new(e, "decision", json_string("maybe"));
    expect_encode_error(reg, "PolicyDecision", e, GOV_ERR_INVALID_ARG,
                        "decision: not a symbol of enum soma.governance.v1.Decision");
    json_decref(e);

    e = json_deep_copy(ev);
    json_object_set_new(e, "tool_name", json_integer(7));
    expect_encode_error(reg, "PolicyDecision", e, GOV_ERR_INVALID_ARG,
                        "tool_name: expected a string");
    json_decref(e);

    e = json_deep_copy(ev);
    json_object_set_new(json_array_get(json_object_get(e, "reasons"), 1), "weight_micros",
                        json_true());
    expect_encode_error(reg, "PolicyDecision", e, GOV_ERR_INVALID_ARG,
                        "reasons[1].weight_micros: expected an integer");
    json_decref(e);

    e = json_deep_copy(ev);
    json_object_del(json_array_get(json_object_get(e, "reasons"), 0), "rule_id");
    expect_encode_error(reg, "PolicyDecision", e, GOV_ERR_INVALID_ARG, "reasons[0].rule_id");
    json_decref(e);

    e = json_deep_copy(ev);
    json_object_set_new(e, "reasons", json_object());
    expect_encode_error(reg, "PolicyDecision", e, GOV_ERR_INVALID_ARG,
                        "reasons: expected an array, got an object");
    json_decref(e);

    /* A string jansson did not check (gov-edge builds excerpts with
     * json_stringn_nocheck): never written, since decode would refuse it. */
    e = json_deep_copy(ev);
    json_object_set_new(json_array_get(json_object_get(e, "reasons"), 0), "excerpt",
                        json_stringn_nocheck("ab\xe2\x82", 4));
    expect_encode_error(reg, "PolicyDecision", e, GOV_ERR_INVALID_ARG,
                        "reasons[0].excerpt: string is not valid UTF-8");
    json_decref(e);

    json_t *arr = json_array();
    expect_encode_error(reg, "PolicyDecision", arr, GOV_ERR_INVALID_ARG, "expected an object");
    json_decref(arr);
    expect_encode_error(reg, "NoSuchEvent", ev, GOV_ERR_NOT_FOUND, "NoSuchEvent");

    /* Optional fields may be absent (default null) or null. */
    e = json_deep_copy(ev);
    json_object_del(e, "action");
    json_object_set_new(e, "tool_name", json_null());
    assert_int_equal(gov_avro_encode(reg, "PolicyDecision", e, &msg, &len, err, sizeof(err)),
                     GOV_OK);
    json_t *out = NULL;
    assert_int_equal(gov_avro_decode(reg, msg, len, &out, NULL, err, sizeof(err)), GOV_OK);
    assert_true(json_is_null(json_object_get(out, "action")));
    assert_true(json_is_null(json_object_get(out, "tool_name")));
    assert_string_equal(json_string_value(json_object_get(out, "tool_category")), "data_access");
    json_decref(out);
    gov_free(msg);
    json_decref(e);

    json_decref(ev);
    gov_avro_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* Cross-checks against avro-c, an independent implementation                */

/* libgov's codec walks its own schema tree; the Apache Avro C library parses
 * the same schema texts on its own and reads and writes through its own
 * generic values.  The two must agree byte for byte on every event of every
 * schema: what we write avro-c reads back as the same event, and what avro-c
 * writes is exactly what we write and we read it back. */

/* Fills an avro-c value from JSON with the mapping of gov_avro.h, guided by
 * avro-c's own view of the schema (never by libgov's tree). */
static void json_to_avro_c(json_t *j, avro_value_t *v) {
    avro_schema_t s = avro_value_get_schema(v);
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        assert_true(json_is_null(j));
        assert_int_equal(avro_value_set_null(v), 0);
        return;
    case AVRO_BOOLEAN:
        assert_int_equal(avro_value_set_boolean(v, json_is_true(j)), 0);
        return;
    case AVRO_INT32:
        assert_int_equal(avro_value_set_int(v, (int32_t)json_integer_value(j)), 0);
        return;
    case AVRO_INT64:
        assert_int_equal(avro_value_set_long(v, (int64_t)json_integer_value(j)), 0);
        return;
    case AVRO_STRING: /* avro-c's size counts a terminating NUL */
        assert_int_equal(
            avro_value_set_string_len(v, json_string_value(j), json_string_length(j) + 1), 0);
        return;
    case AVRO_BYTES: {
        /* Code points U+0000..U+00FF are the bytes (gov_avro.h). */
        const unsigned char *p = (const unsigned char *)json_string_value(j);
        size_t n = 0, len = json_string_length(j);
        unsigned char *raw = malloc(len + 1);
        assert_non_null(raw);
        for (size_t i = 0; i < len; i++, n++) {
            raw[n] = p[i];
            if (p[i] >= 0x80) {
                raw[n] = (unsigned char)(((p[i] & 0x03) << 6) | (p[i + 1] & 0x3f));
                i++;
            }
        }
        assert_int_equal(avro_value_set_bytes(v, raw, n), 0);
        free(raw);
        return;
    }
    case AVRO_ENUM: {
        int idx = avro_schema_enum_get_by_name(s, json_string_value(j));
        assert_true(idx >= 0);
        assert_int_equal(avro_value_set_enum(v, idx), 0);
        return;
    }
    case AVRO_UNION: {
        for (size_t i = 0; i < avro_schema_union_size(s); i++) {
            bool is_null = avro_typeof(avro_schema_union_branch(s, (int)i)) == AVRO_NULL;
            if (is_null == json_is_null(j)) {
                avro_value_t b;
                assert_int_equal(avro_value_set_branch(v, (int)i, &b), 0);
                json_to_avro_c(j, &b);
                return;
            }
        }
        fail_msg("no union branch for the value");
        return;
    }
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++) {
            avro_value_t f;
            const char *fname = avro_schema_record_field_name(s, (int)i);
            json_t *member = json_object_get(j, fname);
            assert_non_null(member);
            assert_int_equal(avro_value_get_by_index(v, i, &f, NULL), 0);
            json_to_avro_c(member, &f);
        }
        return;
    case AVRO_ARRAY:
        for (size_t i = 0; i < json_array_size(j); i++) {
            avro_value_t e;
            assert_int_equal(avro_value_append(v, &e, NULL), 0);
            json_to_avro_c(json_array_get(j, i), &e);
        }
        return;
    case AVRO_MAP: {
        const char *key;
        json_t *val;
        json_object_foreach(j, key, val) {
            avro_value_t e;
            assert_int_equal(avro_value_add(v, key, &e, NULL, NULL), 0);
            json_to_avro_c(val, &e);
        }
        return;
    }
    default:
        fail_msg("avro-c type %d is not used by the event schemas", avro_value_get_type(v));
    }
}

/* Bytes as the JSON string of their values as code points (new reference),
 * written here from the UTF-8 definition: U+0080..U+00FF is 110000xx
 * 10xxxxxx. */
static json_t *latin1_json(const unsigned char *raw, size_t n) {
    char *text = malloc(2 * n + 1), *o = text;
    assert_non_null(text);
    for (const unsigned char *p = raw; p < raw + n; p++) {
        unsigned cp = *p;
        if (cp >= 0x80)
            *o++ = (char)(0xC0 + cp / 64);
        *o++ = (char)(cp >= 0x80 ? 0x80 + cp % 64 : cp);
    }
    json_t *j = json_stringn(text, (size_t)(o - text));
    free(text);
    return j;
}

/* The JSON of an avro-c value, with the mapping of gov_avro.h.  New reference. */
static json_t *avro_c_to_json(avro_value_t *v) {
    avro_schema_t s = avro_value_get_schema(v);
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        return json_null();
    case AVRO_BOOLEAN: {
        int b;
        assert_int_equal(avro_value_get_boolean(v, &b), 0);
        return json_boolean(b);
    }
    case AVRO_INT32: {
        int32_t i;
        assert_int_equal(avro_value_get_int(v, &i), 0);
        return json_integer(i);
    }
    case AVRO_INT64: {
        int64_t l;
        assert_int_equal(avro_value_get_long(v, &l), 0);
        return json_integer((json_int_t)l);
    }
    case AVRO_STRING: {
        const char *str;
        size_t size;
        assert_int_equal(avro_value_get_string(v, &str, &size), 0);
        return json_stringn(str, size - 1);
    }
    case AVRO_BYTES: {
        const void *raw;
        size_t size;
        assert_int_equal(avro_value_get_bytes(v, &raw, &size), 0);
        return latin1_json(raw, size);
    }
    case AVRO_ENUM: {
        int idx;
        assert_int_equal(avro_value_get_enum(v, &idx), 0);
        return json_string(avro_schema_enum_get(s, idx));
    }
    case AVRO_UNION: {
        avro_value_t b;
        assert_int_equal(avro_value_get_current_branch(v, &b), 0);
        return avro_c_to_json(&b);
    }
    case AVRO_RECORD:
    case AVRO_MAP:
    case AVRO_ARRAY: {
        bool array = avro_value_get_type(v) == AVRO_ARRAY;
        json_t *out = array ? json_array() : json_object();
        size_t n;
        assert_int_equal(avro_value_get_size(v, &n), 0);
        for (size_t i = 0; i < n; i++) {
            avro_value_t e;
            const char *key = NULL;
            assert_int_equal(avro_value_get_by_index(v, i, &e, &key), 0);
            json_t *ej = avro_c_to_json(&e);
            if (array)
                json_array_append_new(out, ej);
            else
                json_object_set_new(out, key, ej);
        }
        return out;
    }
    default:
        fail_msg("avro-c type %d is not used by the event schemas", avro_value_get_type(v));
        return NULL;
    }
}

/* avro-c writes event; returns the body (malloc) and its length. */
static unsigned char *avro_c_write(avro_value_iface_t *iface, json_t *event, size_t *len) {
    avro_value_t v;
    assert_int_equal(avro_generic_value_new(iface, &v), 0);
    json_to_avro_c(event, &v);
    assert_int_equal(avro_value_sizeof(&v, len), 0);
    unsigned char *body = malloc(*len + 1);
    assert_non_null(body);
    avro_writer_t w = avro_writer_memory((char *)body, (int64_t)*len);
    assert_non_null(w);
    assert_int_equal(avro_value_write(w, &v), 0);
    assert_int_equal(avro_writer_tell(w), (int64_t)*len);
    avro_writer_free(w);
    avro_value_decref(&v);
    return body;
}

/* avro-c reads a body; returns the event as JSON (new reference). */
static json_t *avro_c_read(avro_value_iface_t *iface, const unsigned char *body, size_t len) {
    avro_value_t v;
    assert_int_equal(avro_generic_value_new(iface, &v), 0);
    avro_reader_t r = avro_reader_memory((const char *)body, (int64_t)len);
    assert_non_null(r);
    if (avro_value_read(r, &v) != 0)
        fail_msg("avro-c cannot read our body: %s", avro_strerror());
    json_t *j = avro_c_to_json(&v);
    avro_reader_free(r);
    avro_value_decref(&v);
    return j;
}

/* The body-level agreement on one complete event (every field present):
 * avro-c writes exactly `body` (ours), avro-c reads ours back as the event,
 * and our decoder reads avro-c's bytes back as the event. */
static void cross_check_body(const gov_avro_node_t *root, avro_value_iface_t *iface,
                             json_t *event, const unsigned char *body, size_t body_len,
                             const char *label) {
    size_t ref_len;
    unsigned char *ref = avro_c_write(iface, event, &ref_len);
    if (ref_len != body_len || memcmp(ref, body, body_len) != 0)
        fail_msg("%s: our body (%zu bytes) differs from avro-c's (%zu bytes)", label, body_len,
                 ref_len);

    json_t *theirs = avro_c_read(iface, body, body_len);
    if (!json_equal(theirs, event)) {
        char *a = json_dumps(theirs, JSON_COMPACT), *b = json_dumps(event, JSON_COMPACT);
        fail_msg("%s: avro-c read\n%s\nwant\n%s", label, a, b);
    }

    json_t *ours = NULL;
    char err[256];
    gov_err_t rc = gov_avro_decode_body(root, ref, ref_len, &ours, err, sizeof(err));
    if (rc != GOV_OK)
        fail_msg("%s: decode of avro-c's bytes %s (%s)", label, gov_err_code(rc), err);
    assert_true(json_equal(ours, event));
    json_decref(ours);
    json_decref(theirs);
    free(ref);
}

/* The same through the public API: encode gives the single-object message
 * whose body avro-c agrees on, and encode(decode(x)) == x byte for byte. */
static void cross_check(const gov_avro_registry_t *reg, const char *name,
                        const both_schemas_t *both, json_t *event, const char *label) {
    unsigned char *msg = NULL;
    size_t len = 0;
    char err[256];
    gov_err_t rc = gov_avro_encode(reg, name, event, &msg, &len, err, sizeof(err));
    if (rc != GOV_OK)
        fail_msg("%s: encode %s (%s)", label, gov_err_code(rc), err);
    assert_true(len >= GOV_AVRO_HEADER_LEN);
    cross_check_body(both->tree->root, both->iface, event, msg + GOV_AVRO_HEADER_LEN,
                     len - GOV_AVRO_HEADER_LEN, label);

    json_t *ours = NULL;
    assert_int_equal(gov_avro_decode(reg, msg, len, &ours, NULL, err, sizeof(err)), GOV_OK);
    assert_true(json_equal(ours, event));
    unsigned char *again = NULL;
    size_t again_len = 0;
    assert_int_equal(gov_avro_encode(reg, name, ours, &again, &again_len, err, sizeof(err)),
                     GOV_OK);
    assert_int_equal(again_len, len);
    assert_memory_equal(again, msg, len);
    gov_free(again);
    json_decref(ours);
    gov_free(msg);
}

static both_schemas_t *both_load(const char *text, size_t len) {
    both_schemas_t *b = calloc(1, sizeof(*b));
    char err[256];
    assert_non_null(b);
    gov_err_t rc = gov_avro_schema_parse(text, len, &b->tree, err, sizeof(err));
    if (rc != GOV_OK)
        fail_msg("schema: %s (%s)", gov_err_code(rc), err);
    assert_int_equal(gov_avro_codec_check(b->tree, err, sizeof(err)), GOV_OK);
    if (avro_schema_from_json_length(text, len, &b->avro_c) != 0)
        fail_msg("avro-c cannot parse the schema: %s", avro_strerror());
    b->iface = avro_generic_class_from_schema(b->avro_c);
    assert_non_null(b->iface);
    return b;
}

static void both_free(both_schemas_t *b) {
    avro_value_iface_decref(b->iface);
    avro_schema_decref(b->avro_c);
    gov_avro_schema_free(b->tree);
    free(b);
}

/* A small deterministic generator (xorshift64*), so a failure reproduces. */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* A long of every size class: 0, +-small, +-around each varint byte
 * boundary, and the extremes. */
static int64_t rng_long(uint64_t *s) {
    uint64_t r = rng_next(s);
    switch (r % 8) {
    case 0: return 0;
    case 1: return INT64_MIN;
    case 2: return INT64_MAX;
    case 3: return (int64_t)(r >> 3) % 64 - 32;
    default: {
        unsigned bits = (unsigned)(rng_next(s) % 63);
        int64_t v = (int64_t)(rng_next(s) >> (63 - bits));
        return (r & 8) ? -v : v;
    }
    }
}

/* A string of 0..24 code points mixing ASCII (NUL included), two-, three-
 * and four-byte UTF-8. */
static json_t *rng_string(uint64_t *s) {
    static const char *const pieces[] = {"a", "Z", "0", "-", "\"", "\\", "\n", "\xc3\xab",
                                         "\xe6\x9d\xb1", "\xf0\x9f\x94\x92", "\xed\x9f\xbf",
                                         "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf"};
    char buf[24 * 4 + 1];
    size_t n = 0, count = (size_t)(rng_next(s) % 25);
    for (size_t i = 0; i < count; i++) {
        uint64_t r = rng_next(s) % (sizeof(pieces) / sizeof(pieces[0]) + 1);
        if (r == sizeof(pieces) / sizeof(pieces[0])) {
            buf[n++] = '\0';
            continue;
        }
        size_t l = strlen(pieces[r]);
        memcpy(buf + n, pieces[r], l);
        n += l;
    }
    return json_stringn(buf, n);
}

/* A random complete event of an avro-c schema (every field present). */
static json_t *rng_value(uint64_t *s, avro_schema_t schema) {
    switch (avro_typeof(schema)) {
    case AVRO_NULL:
        return json_null();
    case AVRO_BOOLEAN:
        return json_boolean(rng_next(s) & 1);
    case AVRO_INT32:
        return json_integer((int32_t)rng_next(s));
    case AVRO_INT64:
        return json_integer((json_int_t)rng_long(s));
    case AVRO_STRING:
        return rng_string(s);
    case AVRO_BYTES: {
        unsigned char raw[16];
        size_t n = (size_t)(rng_next(s) % sizeof(raw));
        for (size_t i = 0; i < n; i++)
            raw[i] = (unsigned char)rng_next(s);
        return latin1_json(raw, n);
    }
    case AVRO_MAP: {
        json_t *o = json_object();
        size_t n = (size_t)(rng_next(s) % 5);
        for (size_t i = 0; i < n; i++) {
            char key[24];
            snprintf(key, sizeof(key), "k%" PRIu64, rng_next(s) % 1000);
            json_object_set_new(o, key, rng_value(s, avro_schema_map_values(schema)));
        }
        return o;
    }
    case AVRO_ENUM: {
        int n = avro_schema_enum_number_of_symbols(schema);
        return json_string(avro_schema_enum_get(schema, (int)(rng_next(s) % (uint64_t)n)));
    }
    case AVRO_UNION: {
        size_t n = avro_schema_union_size(schema);
        return rng_value(s, avro_schema_union_branch(schema, (int)(rng_next(s) % n)));
    }
    case AVRO_RECORD: {
        json_t *o = json_object();
        for (size_t i = 0; i < avro_schema_record_size(schema); i++)
            json_object_set_new(o, avro_schema_record_field_name(schema, (int)i),
                                rng_value(s, avro_schema_record_field_get_by_index(
                                                 schema, (int)i)));
        return o;
    }
    case AVRO_ARRAY: {
        json_t *a = json_array();
        size_t n = (size_t)(rng_next(s) % 5);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, rng_value(s, avro_schema_array_items(schema)));
        return a;
    }
    case AVRO_LINK:
        return rng_value(s, avro_schema_link_target(schema));
    default:
        fail_msg("avro-c type %d is not used by the event schemas", avro_typeof(schema));
        return NULL;
    }
}

/* Property: for random complete events of every schema, libgov and avro-c
 * write the same bytes and each reads the other's back to the same event,
 * and encode(decode(x)) == x byte for byte. */
static void test_property_random_events(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    for (unsigned i = 0; i < gov_embedded_schema_count; i++) {
        const char *name = gov_embedded_schemas[i].name;
        both_schemas_t *both = both_load(gov_embedded_schemas[i].json,
                                         gov_embedded_schemas[i].len);
        for (int k = 0; k < 300; k++) {
            char label[200];
            snprintf(label, sizeof(label), "%s random #%d", name, k);
            json_t *event = rng_value(&seed, both->avro_c);
            cross_check(reg, name, both, event, label);
            json_decref(event);
        }
        both_free(both);
    }
    gov_avro_registry_free(reg);
}

/* Every type the codec maps, including those no event schema uses yet
 * (boolean, int, bytes, maps, a union with null second, a named type used
 * twice, a record inside a union), through the internal body codec and
 * avro-c. */
static const char all_types_schema[] =
    "{\"type\":\"record\",\"name\":\"AllTypes\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"l\",\"type\":\"long\"},{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"y\",\"type\":\"bytes\"},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}},"
    "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"R\","
    "\"fields\":[{\"name\":\"x\",\"type\":[\"null\",\"long\"]}]}}},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":[\"string\",\"null\"]}},"
    "{\"name\":\"mm\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":\"int\"}}},"
    "{\"name\":\"r\",\"type\":[\"null\",\"R\"]},{\"name\":\"n\",\"type\":\"null\"}]}";

static void test_property_all_types(void **state) {
    (void)state;
    both_schemas_t *both = both_load(all_types_schema, strlen(all_types_schema));
    uint64_t seed = 42;
    for (int k = 0; k < 500; k++) {
        char label[64];
        snprintf(label, sizeof(label), "AllTypes random #%d", k);
        json_t *event = rng_value(&seed, both->avro_c);
        gov_buf_t body;
        gov_buf_init(&body, 0);
        char err[256];
        gov_err_t rc = gov_avro_encode_value(both->tree->root, event, &body, false, err,
                                             sizeof(err));
        if (rc != GOV_OK || body.err != GOV_OK)
            fail_msg("%s: encode %s (%s)", label, gov_err_code(rc), err);
        cross_check_body(both->tree->root, both->iface, event, (unsigned char *)body.data,
                         body.len, label);
        gov_buf_free(&body);
        json_decref(event);
    }

    /* Rules only these types have: a boolean is one byte 0 or 1, an int
     * fits 32 bits, map keys are distinct and free of NUL.  Bodies: b, i, l,
     * s, y, e, a (empty), then m, mm (empty), r (null). */
    static const struct {
        const char *head; /* b, i */
        size_t head_len;
        const char *key1, *key2; /* the two keys of m, or NULL for an empty m */
        size_t key2_len;
        const char *reason;
    } bad[] = {
        {"\x02\x00", 2, NULL, NULL, 0, "boolean byte 0x02"},
        {"\x01\xff\xff\xff\xff\x1f", 6, NULL, NULL, 0, "varint longer than 5 bytes"},
        {"\x01\x00", 2, "a", "a", 1, "duplicate map key"},
        {"\x01\x00", 2, "a", "b\0c", 3, "NUL byte in map key"},
        {"\x01\x00", 2, "a", "b", 1, NULL}, /* the control: accepted */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        body_t b = {.n = 0};
        char err[256];
        put_raw(&b, bad[i].head, bad[i].head_len);
        put_raw(&b, "\x00\x00\x00\x00\x00", 5); /* l, s, y, e, a */
        if (bad[i].key1 != NULL) {
            put_long(&b, 2);
            put_str(&b, bad[i].key1);
            put_long(&b, 1); /* null */
            put_bytes(&b, bad[i].key2, bad[i].key2_len);
            put_long(&b, 0); /* string */
            put_str(&b, "v");
        }
        put_raw(&b, "\x00\x00\x00", 3); /* end of m, mm, r */
        gov_err_t rc = gov_avro_decode_body(both->tree->root, b.b, b.n, NULL, err, sizeof(err));
        if (bad[i].reason == NULL)
            assert_int_equal(rc, GOV_OK);
        else if (rc != GOV_ERR_PARSE || strstr(err, bad[i].reason) == NULL)
            fail_msg("case %zu: expected \"%s\", got %s \"%s\"", i, bad[i].reason,
                     gov_err_code(rc), err);
    }

    /* A map block announcing more entries than there are bytes left is
     * refused before anything is sized from its count (each entry takes at
     * least one byte), whether the count comes plain or as a sized block. */
    static const int64_t counts[] = {100000, 64, -64};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        body_t b = {.n = 0};
        char err[256];
        put_raw(&b, "\x01\x00\x00\x00\x00\x00\x00", 7); /* b, i, l, s, y, e, a */
        put_long(&b, counts[i]);
        if (counts[i] < 0)
            put_long(&b, 3); /* the block's byte size */
        put_raw(&b, "\x02a\x00", 3);  /* one entry's worth: key "a", value string "" */
        gov_err_t rc = gov_avro_decode_body(both->tree->root, b.b, b.n, NULL, err, sizeof(err));
        if (rc != GOV_ERR_PARSE || strstr(err, "map block of") == NULL)
            fail_msg("map count %lld: expected a refusal naming the remaining bytes, got %s \"%s\"",
                     (long long)counts[i], gov_err_code(rc), err);
    }
    both_free(both);
}

/* ------------------------------------------------------------------------ */
/* Failure injection                                                         */

/* Fails the nth allocation for n = 0, 1, ... until the call succeeds; every
 * failing run must report GOV_ERR_NOMEM (leaks are for ASan and valgrind). */
static void test_alloc_failures_decode(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    char dir[1200];
    snprintf(dir, sizeof(dir), "%s/registry/ConstitutionBundle/full", vectors_dir());
    char path[1300];
    snprintf(path, sizeof(path), "%s/message.bin", dir);
    size_t len;
    unsigned char *msg = read_all(path, &len);
    assert_non_null(msg);
    json_t *want = load_json(dir, "decoded.json");

    long n;
    for (n = 0; n < 100000; n++) {
        json_t *ev = NULL;
        char err[256];
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_avro_decode(reg, msg, len, &ev, NULL, err, sizeof(err));
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            assert_true(json_equal(ev, want));
            json_decref(ev);
            break;
        }
        if (rc != GOV_ERR_NOMEM || failures == 0)
            fail_msg("n=%ld: %s (%s) with %ld injected failures", n, gov_err_code(rc), err,
                     failures);
        assert_null(ev);
    }
    assert_true(n > 10); /* decode allocates: the loop did inject */
    json_decref(want);
    free(msg);
    gov_avro_registry_free(reg);
}

static void test_alloc_failures_encode_and_registry(void **state) {
    (void)state;
    gov_avro_registry_t *reg = registry();
    json_t *ev = policy_decision();
    long n;
    for (n = 0; n < 100000; n++) {
        unsigned char *msg = NULL;
        size_t len = 0;
        char err[256];
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_avro_encode(reg, "PolicyDecision", ev, &msg, &len, err, sizeof(err));
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            gov_free(msg);
            break;
        }
        if (rc != GOV_ERR_NOMEM)
            fail_msg("encode n=%ld: %s (%s)", n, gov_err_code(rc), err);
        assert_null(msg);
    }
    assert_true(n > 0);
    json_decref(ev);
    gov_avro_registry_free(reg);

    /* Schema loading parses JSON with jansson, whose lexer reports some
     * allocation failures as syntax errors ("string or '}' expected").  So
     * that error is accepted here, but only from a run where a failure was
     * injected. */
    for (n = 0; n < 1000000; n++) {
        gov_avro_registry_t *r = NULL;
        char err[256];
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_avro_registry_new(&r, err, sizeof(err));
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            gov_avro_registry_free(r);
            break;
        }
        bool jansson_oom = rc == GOV_ERR_PARSE && strstr(err, "schema is not JSON") != NULL;
        if (failures == 0 || (rc != GOV_ERR_NOMEM && !jansson_oom))
            fail_msg("registry n=%ld: %s (%s)", n, gov_err_code(rc), err);
        assert_null(r);
    }
    assert_true(n > 100);

    for (n = 0; n < 100000; n++) {
        char *pcf = NULL;
        char err[256];
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_avro_canonical_form(gov_embedded_schemas[0].json, &pcf, err,
                                               sizeof(err));
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (rc == GOV_OK) {
            gov_free(pcf);
            break;
        }
        bool jansson_oom = rc == GOV_ERR_PARSE && strstr(err, "schema is not JSON") != NULL;
        if (failures == 0 || (rc != GOV_ERR_NOMEM && !jansson_oom))
            fail_msg("canonical form n=%ld: %s (%s)", n, gov_err_code(rc), err);
        assert_null(pcf);
    }
    assert_true(n > 10);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fingerprint_empty_and_bitwise),
        cmocka_unit_test(test_canonical_form_vectors),
        cmocka_unit_test(test_canonical_form_rejects_invalid_schemas),
        cmocka_unit_test(test_canonical_form_namespaces),
        cmocka_unit_test(test_canonical_form_bad_arguments),
        cmocka_unit_test(test_registry_matches_reference_library),
        cmocka_unit_test(test_round_trip_every_schema),
        cmocka_unit_test(test_single_object_header),
        cmocka_unit_test(test_string_with_nul_and_empty),
        cmocka_unit_test(test_hand_built_body_is_accepted),
        cmocka_unit_test(test_reject_truncated_and_malformed_varints),
        cmocka_unit_test(test_reject_bad_lengths),
        cmocka_unit_test(test_reject_invalid_utf8),
        cmocka_unit_test(test_reject_enum_and_union_index),
        cmocka_unit_test(test_reject_trailing_bytes),
        cmocka_unit_test(test_array_blocks),
        cmocka_unit_test(test_reject_reports_nested_path),
        cmocka_unit_test(test_decode_rejects_framing),
        cmocka_unit_test(test_encode_refuses_bad_events),
        cmocka_unit_test(test_property_random_events),
        cmocka_unit_test(test_property_all_types),
        cmocka_unit_test(test_alloc_failures_decode),
        cmocka_unit_test(test_alloc_failures_encode_and_registry),
    };
    return cmocka_run_group_tests_name("gov_avro", tests, NULL, NULL);
}
