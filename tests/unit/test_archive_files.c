/* test_archive_files.c - the archive's files (gov_archive.h) on a real
 * directory: a directory made for a tenant (made durable in its parent,
 * REVIEW12 L1), and the per-entry byte bound gov-archive cuts segments by
 * (REVIEW12 M1) held against what avro-c's container writer really writes.
 *
 * What a power-loss test would need instead of this one: a block device
 * that drops unflushed writes (dm-flakey, or a loop device under a VM that
 * is reset), a first segment written and the watermark moved, the device
 * cut, remounted, and verify --archive run; that needs root and a kernel
 * module, so here the code path runs and its result is checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_archive.h"

static char root[64];
static char eb[512];

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/gov_archive_test_XXXXXX");
    return mkdtemp(root) == NULL ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_mkdir(void **state) {
    (void)state;
    char dir[128], deep[160];
    struct stat st;
    int created = -1;
    snprintf(dir, sizeof dir, "%s/tenant-a", root);
    assert_int_equal(gov_archive_mkdir(dir, &created, eb, sizeof eb), GOV_OK);
    assert_int_equal(created, 1);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0027, 0);   /* 0750 under any umask */
    /* there already: nothing made, its parent synced again, no error */
    assert_int_equal(gov_archive_mkdir(dir, &created, eb, sizeof eb), GOV_OK);
    assert_int_equal(created, 0);
    /* a trailing slash names the same directory */
    char slashed[140];
    snprintf(slashed, sizeof slashed, "%s/", dir);
    assert_int_equal(gov_archive_mkdir(slashed, &created, eb, sizeof eb), GOV_OK);
    assert_int_equal(created, 0);
    /* parents are not made */
    snprintf(deep, sizeof deep, "%s/missing/tenant-b", root);
    assert_int_equal(gov_archive_mkdir(deep, &created, eb, sizeof eb), GOV_ERR_IO);
    assert_int_equal(created, 0);
    assert_non_null(strstr(eb, "cannot create"));
}

/* The directory whose entry a new directory is: trailing slashes do not
 * make a directory its own parent (REVIEW13 L11). */
static void test_parent_dir(void **state) {
    (void)state;
    static const char *const cases[][2] = {
        {"var/archive", "var"}, {"var/archive/", "var"}, {"var/archive//", "var"},
        {"/x", "/"},            {"/x/", "/"},            {"x", "."},
        {"x/", "."},            {"/", "/"},              {"/a/b/c", "/a/b"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(gov_archive_parent_dir(cases[i][0], out, sizeof out), 0);
        assert_string_equal(out, cases[i][1]);
    }
    char small[4];
    assert_int_equal(gov_archive_parent_dir("/abcdef/g", small, sizeof small), -1);
}

static long file_size(const char *dir, const char *name) {
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

static gov_err_t count_record(void *ctx, const gov_archive_record_t *rec, char *e, size_t n) {
    (void)e;
    (void)n;
    size_t *count = ctx;
    assert_int_equal(rec->entry.seq, *count + 1);
    (*count)++;
    return GOV_OK;
}

/* A fresh tenant directory through the writer (its first segment), and the
 * bound: the records' bytes in the file are at most the sum of
 * gov_archive_record_bytes and at least the sum of their payloads. */
static void test_record_bound(void **state) {
    (void)state;
    char dir[128], name[GOV_ARCHIVE_NAME_MAX], empty_name[GOV_ARCHIVE_NAME_MAX];
    static const size_t sizes[] = {0, 1, 127, 128, 16383, 16384, 300 * 1024};
    const size_t n = sizeof sizes / sizeof sizes[0];
    /* each payload NUL-terminated at its length, as a Redis reply's is
     * (the writer hands avro-c the terminator too) */
    char *payload = malloc(300 * 1024 + 1);
    assert_non_null(payload);
    memset(payload, 'p', 300 * 1024 + 1);
    const char *hash = "1111111111111111111111111111111111111111111111111111111111111111";
    snprintf(dir, sizeof dir, "%s/tenant-w", root);

    gov_archive_writer_t *w = NULL;
    assert_int_equal(gov_archive_writer_open(dir, &w, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_archive_writer_commit(w, 1000, 1000, empty_name, eb, sizeof eb), GOV_OK);
    gov_archive_writer_free(w);
    long empty = file_size(dir, empty_name);

    size_t bound = 0, payloads = 0;
    assert_int_equal(gov_archive_writer_open(dir, &w, eb, sizeof eb), GOV_OK);
    for (size_t i = 0; i < n; i++) {
        gov_audit_entry_t e = {
            .prev_hash = GOV_AUDIT_GENESIS, .seq = i + 1,
            .event_id = "0190a0b0-c0d0-7e0f-8a0b-0c0d0e0f1011", .type = "AuditEvent",
            .occurred_at = INT64_MAX, .source = "identity.audit/2/123456789",
            .payload = payload, .payload_len = sizes[i]};
        bound += gov_archive_record_bytes("tenant-w", &e, hash);
        payloads += sizes[i];
        payload[sizes[i]] = '\0';
        assert_int_equal(gov_archive_writer_append(w, "tenant-w", &e, hash, eb, sizeof eb),
                         GOV_OK);
        payload[sizes[i]] = 'p';
    }
    assert_int_equal(gov_archive_writer_commit(w, 1, n, name, eb, sizeof eb), GOV_OK);
    gov_archive_writer_free(w);
    long records = file_size(dir, name) - empty;
    /* one block: its count, its size and the sync marker besides the records */
    assert_true((size_t)records <= bound + 2 * 10 + 16);
    assert_true((size_t)records >= payloads);
    size_t count = 0;
    assert_int_equal(gov_archive_segment_load(dir, name, count_record, &count, eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(count, n);
    free(payload);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkdir),
        cmocka_unit_test(test_parent_dir),
        cmocka_unit_test(test_record_bound),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
