/* test_file.c - the bounded file reader (gov_file.h), on real files. */
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

#include "gov_alloc.h"
#include "gov_constitution.h"
#include "gov_file.h"

static char dir[64];
static char path[128];
static char eb[512];

static void write_file(const char *p, const char *text, size_t len) {
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/gov_file_test_XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof path, "%s/f.txt", dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static void test_reads_whole_file(void **state) {
    (void)state;
    char *out = NULL;
    size_t len = 0;
    write_file(path, "hello\0world", 11);
    assert_int_equal(gov_file_read(path, 11, 0, &out, &len, eb, sizeof eb), GOV_OK);
    assert_int_equal(len, 11);
    assert_memory_equal(out, "hello\0world", 11);
    assert_int_equal(out[11], '\0');
    gov_free(out);
    /* empty file */
    write_file(path, "", 0);
    assert_int_equal(gov_file_read(path, 10, 0, &out, &len, eb, sizeof eb), GOV_OK);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    gov_free(out);
}

static void test_limit_is_exact(void **state) {
    (void)state;
    char *out = (char *)1;
    size_t len = 99;
    static char big[10000];
    memset(big, 'x', sizeof big);
    write_file(path, big, sizeof big);
    assert_int_equal(gov_file_read(path, sizeof big, 0, &out, &len, eb, sizeof eb), GOV_OK);
    assert_int_equal(len, sizeof big);
    gov_free(out);
    assert_int_equal(gov_file_read(path, sizeof big - 1, 0, &out, &len, eb, sizeof eb),
                     GOV_ERR_TOO_LARGE);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_non_null(strstr(eb, path));
    assert_non_null(strstr(eb, "is larger than 9999 bytes"));
    /* a secret is read into one buffer; the same limit holds */
    assert_int_equal(gov_file_read(path, sizeof big - 1, GOV_FILE_SECRET, &out, &len, eb,
                                   sizeof eb), GOV_ERR_TOO_LARGE);
    assert_int_equal(gov_file_read(path, sizeof big, GOV_FILE_SECRET, &out, &len, eb, sizeof eb),
                     GOV_OK);
    assert_int_equal(len, sizeof big);
    gov_free(out);
}

static void test_errors_name_the_path(void **state) {
    (void)state;
    char *out = NULL;
    size_t len = 0;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no-such-file", dir);
    assert_int_equal(gov_file_read(missing, 100, 0, &out, &len, eb, sizeof eb),
                     GOV_ERR_NOT_FOUND);
    assert_non_null(strstr(eb, "cannot open "));
    assert_non_null(strstr(eb, missing));
    assert_int_equal(gov_file_read(dir, 100, 0, &out, &len, eb, sizeof eb), GOV_ERR_IO);
    assert_non_null(strstr(eb, "is a directory"));
    assert_non_null(strstr(eb, dir));
    /* a character device is not a regular file, unless streams are allowed */
    assert_int_equal(gov_file_read("/dev/null", 100, 0, &out, &len, eb, sizeof eb), GOV_ERR_IO);
    assert_non_null(strstr(eb, "/dev/null is not a regular file"));
    assert_int_equal(gov_file_read("/dev/null", 100, GOV_FILE_ALLOW_STREAM, &out, &len, eb,
                                   sizeof eb), GOV_OK);
    assert_int_equal(len, 0);
    gov_free(out);
    /* "-" is a file name unless asked otherwise */
    assert_int_equal(gov_file_read("-", 100, 0, &out, &len, eb, sizeof eb), GOV_ERR_NOT_FOUND);
    assert_int_equal(gov_file_read(NULL, 100, 0, &out, &len, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    if (geteuid() != 0) {
        write_file(path, "secret", 6);
        assert_int_equal(chmod(path, 0), 0);
        assert_int_equal(gov_file_read(path, 100, 0, &out, &len, eb, sizeof eb), GOV_ERR_IO);
        assert_non_null(strstr(eb, path));
        assert_int_equal(chmod(path, 0600), 0);
    }
}

/* Every allocation failure is GOV_ERR_NOMEM with nothing leaked (the
 * valgrind and ASan runs check the leaking part). */
static void test_allocation_failures(void **state) {
    (void)state;
    static char big[20000];
    memset(big, 'y', sizeof big);
    write_file(path, big, sizeof big);
    int failed = 0;
    for (long n = 0; n < 20; n++) {
        char *out = NULL;
        size_t len = 0;
        gov_alloc_fail_after(n);
        gov_err_t err = gov_file_read(path, sizeof big, 0, &out, &len, eb, sizeof eb);
        gov_alloc_fail_reset();
        if (err == GOV_OK) {
            assert_int_equal(len, sizeof big);
            gov_free(out);
            break;
        }
        assert_int_equal(err, GOV_ERR_NOMEM);
        assert_null(out);
        failed++;
    }
    assert_true(failed >= 2); /* the first buffer and at least one growth */
}

/* A FIFO with no writer is refused at once (a blocking open would hang the
 * start-up of a binary pointed at it); a limit that would make the size
 * arithmetic wrap is refused before anything is read. */
/* gov_file_trust_load: the same bounded read, then gov_trust_parse. */
static void test_trust_load(void **state) {
    (void)state;
    gov_trust_t *t = (gov_trust_t *)&eb; /* overwritten with NULL on error */
    assert_int_equal(gov_file_trust_load(NULL, &t, eb, sizeof eb), GOV_ERR_INVALID_ARG);
    assert_null(t);
    assert_non_null(strstr(eb, "no trust file"));
    assert_int_not_equal(gov_file_trust_load("/nonexistent/trust.json", &t, eb, sizeof eb),
                         GOV_OK);
    assert_null(t);
    write_file(path, "{\"threshold\":1}", 15);
    assert_int_not_equal(gov_file_trust_load(path, &t, eb, sizeof eb), GOV_OK);
    assert_null(t);
    const char *ok = "{\"signers\":{\"op\":\"-----BEGIN PUBLIC KEY-----\\n"
                     "MCowBQYDK2VwAyEA09R6Azol9+y/cub48/L3Uqdv9718SBkyYRt3hjoHZdk=\\n"
                     "-----END PUBLIC KEY-----\\n\"},"
                     "\"tenants\":{\"acme\":{\"threshold\":1,\"signers\":[\"op\"]}}}";
    write_file(path, ok, strlen(ok));
    assert_int_equal(gov_file_trust_load(path, &t, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_trust_count(t), 1);
    assert_int_equal(gov_trust_tenant(t, "acme", NULL, NULL), 0);
    assert_int_equal(gov_trust_tenant(t, "other", NULL, NULL), -1);
    gov_trust_free(t);
}

static void test_fifo_refused_without_blocking(void **state) {
    (void)state;
    char fifo[160], *out = NULL;
    size_t len = 0;
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    alarm(10); /* a hang fails the test instead of the suite */
    assert_int_equal(gov_file_read(fifo, 100, 0, &out, &len, eb, sizeof eb), GOV_ERR_IO);
    alarm(0);
    assert_null(out);
    assert_non_null(strstr(eb, "not a regular file"));
    unlink(fifo);

    write_file(path, "x", 1);
    assert_int_equal(gov_file_read(path, SIZE_MAX, GOV_FILE_SECRET, &out, &len, eb, sizeof eb),
                     GOV_ERR_INVALID_ARG);
    assert_null(out);
    assert_int_equal(gov_file_read(path, SIZE_MAX / 4, 0, &out, &len, eb, sizeof eb), GOV_OK);
    assert_int_equal(len, 1);
    gov_free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_whole_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_is_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_the_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_refused_without_blocking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trust_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
