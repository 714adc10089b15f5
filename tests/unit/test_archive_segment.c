/* test_archive_segment.c - the bounded reader of archived audit segments
 * (common/core/gov_archive_segment.c) against known-answer files written by
 * fastavro, an independent Avro implementation (tests/vectors/archive/,
 * generate.py): the valid file's records and hashes as fastavro and
 * hashlib made them, a deflate file and another schema refused, every
 * truncation and a changed sync marker refused (or, cut exactly at a block
 * boundary, fewer records), a callback's error returned, and every failed
 * allocation a clean GOV_ERR_NOMEM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_archive_segment.h"
#include "gov_audit_chain.h"
#include "gov_avro.h"
#include "gov_schemas_gen.h"

#define VEC "tests/vectors/archive/"

static char *pcf;

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

typedef struct walk {
    int count;
    char prev[GOV_SHA256_HEXLEN + 1];
    char hashes[8][GOV_SHA256_HEXLEN + 1];
    int fail_at;   /* answer GOV_ERR_VERIFY at this record (0: never) */
} walk_t;

static gov_err_t on_record(void *ctx, const gov_archive_record_t *rec, char *eb, size_t n) {
    walk_t *w = ctx;
    (void)eb;
    (void)n;
    if (w->fail_at && w->count + 1 == w->fail_at)
        return GOV_ERR_VERIFY;
    assert_string_equal(rec->tenant, "t1");
    assert_int_equal(rec->entry.seq, (uint64_t)w->count + 1);
    assert_int_equal(gov_audit_chain_check(&rec->entry, rec->hash, w->prev, rec->entry.seq),
                     GOV_AUDIT_INTACT);
    memcpy(w->prev, rec->hash, sizeof w->prev);
    if (w->count < 8)
        memcpy(w->hashes[w->count], rec->hash, GOV_SHA256_HEXLEN + 1);
    w->count++;
    return GOV_OK;
}

static gov_err_t walk(const unsigned char *buf, size_t len, walk_t *w, char *eb, size_t ebn) {
    memset(w->prev, 0, sizeof w->prev);
    memcpy(w->prev, GOV_AUDIT_GENESIS, GOV_SHA256_HEXLEN);
    w->count = 0;
    return gov_archive_segment_read(buf, len, pcf, on_record, w, eb, ebn);
}

static void test_valid(void **state) {
    (void)state;
    size_t len;
    unsigned char *buf = read_all(VEC "valid-3.avro", &len);
    walk_t w = {0};
    char eb[256];
    assert_int_equal(walk(buf, len, &w, eb, sizeof eb), GOV_OK);
    assert_int_equal(w.count, 3);
    FILE *f = fopen(VEC "expected.txt", "r");
    assert_non_null(f);
    for (int i = 0; i < 3; i++) {
        int seq;
        char hash[80];
        assert_int_equal(fscanf(f, "%d %79s", &seq, hash), 2);
        assert_int_equal(seq, i + 1);
        assert_string_equal(w.hashes[i], hash);
    }
    fclose(f);
    free(buf);
}

static void expect_refused(const char *file, const char *why) {
    size_t len;
    unsigned char *buf = read_all(file, &len);
    walk_t w = {0};
    char eb[256] = "";
    assert_int_equal(walk(buf, len, &w, eb, sizeof eb), GOV_ERR_PARSE);
    if (strstr(eb, why) == NULL)
        fail_msg("%s: %s, want %s", file, eb, why);
    free(buf);
}

static void test_refused_files(void **state) {
    (void)state;
    expect_refused(VEC "deflate.avro", "codec is not null");
    expect_refused(VEC "other-schema.avro", "schema is not AuditChainEntry");
}

static void test_truncations(void **state) {
    (void)state;
    size_t len;
    unsigned char *buf = read_all(VEC "valid-3.avro", &len);
    for (size_t n = 0; n < len; n++) {
        unsigned char *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        walk_t w = {0};
        char eb[256];
        gov_err_t e = walk(cut, n, &w, eb, sizeof eb);
        /* cut at a block's end: a shorter, valid file */
        if (!(e == GOV_ERR_PARSE || (e == GOV_OK && w.count < 3)))
            fail_msg("cut at %zu: %d with %d records", n, e, w.count);
        free(cut);
    }
    /* the last block's sync marker changed */
    buf[len - 1] ^= 1;
    walk_t w = {0};
    char eb[256];
    assert_int_equal(walk(buf, len, &w, eb, sizeof eb), GOV_ERR_PARSE);
    assert_non_null(strstr(eb, "sync marker"));
    free(buf);
}

static void test_callback_error(void **state) {
    (void)state;
    size_t len;
    unsigned char *buf = read_all(VEC "valid-3.avro", &len);
    walk_t w = {.fail_at = 2};
    char eb[256];
    assert_int_equal(walk(buf, len, &w, eb, sizeof eb), GOV_ERR_VERIFY);
    assert_int_equal(w.count, 1);
    free(buf);
}

static void test_oom(void **state) {
    (void)state;
    size_t len;
    unsigned char *buf = read_all(VEC "valid-3.avro", &len);
    for (long n = 0;; n++) {
        walk_t w = {0};
        char eb[256];
        gov_alloc_fail_after(n);
        gov_err_t e = walk(buf, len, &w, eb, sizeof eb);
        long failed = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (failed == 0) {
            assert_int_equal(e, GOV_OK);
            break;
        }
        assert_int_equal(e, GOV_ERR_NOMEM);
    }
    free(buf);
}

static int setup(void **state) {
    (void)state;
    char eb[128];
    for (unsigned i = 0; i < gov_embedded_schema_count; i++)
        if (strcmp(gov_embedded_schemas[i].name, "AuditChainEntry") == 0 &&
            gov_avro_canonical_form(gov_embedded_schemas[i].json, &pcf, eb, sizeof eb) != GOV_OK)
            return -1;
    return pcf ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    gov_free(pcf);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_refused_files),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_callback_error),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
