/* test_signer_pem.c - the file key store (gov_signer_pem.c) and the key
 * store façade (gov_signer_rt.h) on a real temporary directory.
 *
 * Every signature is checked by OpenSSL against the public key the signer
 * reports, and that public key against the one in the file; the refusals
 * (permissions, ownership is not testable without a second user, a wrong
 * kid, a file whose name is not its key) each give their stable reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_signer_rt.h"

static char dir[64];
static char eb[512];

static int rm_tree(void) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    return rmdir(dir);
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/gov_signer_pem_XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    chmod(dir, 0700);
    return rm_tree();
}

static void key_file(const char *kid, char *path, size_t n) { snprintf(path, n, "%s/%s.pem", dir, kid); }

/* OpenSSL's verdict on sig over msg under the raw public key pub. */
static int openssl_verify(const uint8_t pub[32], const uint8_t *msg, size_t len, const uint8_t sig[64]) {
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = k != NULL && md != NULL && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(md, sig, 64, msg, len) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok;
}

static gov_keystore_t *open_store(void) {
    gov_keystore_config_t cfg = {.backend = GOV_KEYSTORE_FILE, .key_dir = dir};
    gov_keystore_t *ks = NULL;
    gov_reason_t why = GOV_REASON_COUNT_;
    assert_int_equal(gov_keystore_open(&cfg, &ks, &why, eb, sizeof eb), GOV_OK);
    assert_string_equal(gov_keystore_backend(ks), "file");
    return ks;
}

static void test_generate_sign_verify(void **state) {
    (void)state;
    gov_keystore_t *ks = open_store();
    gov_signer_t *s = NULL;
    gov_reason_t why;
    assert_int_equal(gov_keystore_generate(ks, &s, &why, eb, sizeof eb), GOV_OK);
    assert_string_equal(gov_signer_backend(s), "file");
    assert_true(gov_signer_kid_valid(gov_signer_kid(s)));

    /* The file: <kid>.pem, mode 0600, a PKCS#8 Ed25519 key whose public half is the signer's. */
    char path[256];
    key_file(gov_signer_kid(s), path, sizeof path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char first[64] = "";
    assert_non_null(fgets(first, sizeof first, f));
    assert_string_equal(first, "-----BEGIN PRIVATE KEY-----\n");
    rewind(f);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    uint8_t pub[32];
    size_t publen = sizeof pub;
    assert_int_equal(EVP_PKEY_get_raw_public_key(k, pub, &publen), 1);
    EVP_PKEY_free(k);
    assert_memory_equal(pub, gov_signer_public_key(s), 32);

    const uint8_t msg[] = "eyJhbGciOiJFZERTQSJ9.e30";
    uint8_t sig[64];
    assert_int_equal(gov_signer_sign(s, msg, sizeof msg - 1, sig, eb, sizeof eb), GOV_OK);
    assert_true(openssl_verify(pub, msg, sizeof msg - 1, sig));
    sig[5] ^= 1;
    assert_false(openssl_verify(pub, msg, sizeof msg - 1, sig));

    /* Reopened by kid in a new store: the same key. */
    gov_keystore_t *ks2 = open_store();
    gov_signer_t *s2 = NULL;
    assert_int_equal(gov_keystore_signer(ks2, gov_signer_kid(s), &s2, &why, eb, sizeof eb), GOV_OK);
    assert_memory_equal(gov_signer_public_key(s2), pub, 32);
    assert_int_equal(gov_signer_sign(s2, msg, sizeof msg - 1, sig, eb, sizeof eb), GOV_OK);
    assert_true(openssl_verify(pub, msg, sizeof msg - 1, sig));

    /* Listed, sorted, with a second key; the temporary and stray files are not. */
    gov_signer_t *s3 = NULL;
    assert_int_equal(gov_keystore_generate(ks, &s3, &why, eb, sizeof eb), GOV_OK);
    char stray[256];
    snprintf(stray, sizeof stray, "%s/notes.txt", dir);
    FILE *sf = fopen(stray, "w");
    assert_non_null(sf);
    fclose(sf);
    char **kids = NULL;
    size_t n = 0;
    assert_int_equal(gov_keystore_list(ks, &kids, &n, &why, eb, sizeof eb), GOV_OK);
    assert_int_equal(n, 2);
    assert_true(strcmp(kids[0], kids[1]) < 0);
    assert_true(strcmp(kids[0], gov_signer_kid(s)) == 0 || strcmp(kids[1], gov_signer_kid(s)) == 0);
    assert_true(strcmp(kids[0], gov_signer_kid(s3)) == 0 || strcmp(kids[1], gov_signer_kid(s3)) == 0);
    gov_keystore_list_free(kids, n);

    /* Signers outlive their store. */
    gov_keystore_free(ks);
    gov_keystore_free(ks2);
    assert_int_equal(gov_signer_sign(s3, msg, sizeof msg - 1, sig, eb, sizeof eb), GOV_OK);
    assert_true(openssl_verify(gov_signer_public_key(s3), msg, sizeof msg - 1, sig));
    gov_signer_free(s);
    gov_signer_free(s2);
    gov_signer_free(s3);
}

static void test_insecure_key_file_refused(void **state) {
    (void)state;
    gov_keystore_t *ks = open_store();
    gov_signer_t *s = NULL, *again = NULL;
    gov_reason_t why;
    assert_int_equal(gov_keystore_generate(ks, &s, &why, eb, sizeof eb), GOV_OK);
    char path[256];
    key_file(gov_signer_kid(s), path, sizeof path);
    static const mode_t bad[] = {0640, 0604, 0660, 0610};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(path, bad[i]), 0);
        why = GOV_REASON_COUNT_;
        eb[0] = '\0';
        assert_int_equal(gov_keystore_signer(ks, gov_signer_kid(s), &again, &why, eb, sizeof eb),
                         GOV_ERR_CONFIG);
        assert_null(again);
        assert_int_equal(why, GOV_REASON_KEY_INSECURE);
        assert_string_equal(gov_reason_code(why), "key_insecure");
        assert_non_null(strstr(eb, path));
        assert_non_null(strstr(eb, "chmod 600"));
    }
    /* 0400 is stricter than 0600: accepted. */
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(gov_keystore_signer(ks, gov_signer_kid(s), &again, &why, eb, sizeof eb), GOV_OK);
    gov_signer_free(again);
    again = NULL;

    /* A group-writable directory: refused at open and at every use. */
    assert_int_equal(chmod(dir, 0770), 0);
    assert_int_equal(gov_keystore_signer(ks, gov_signer_kid(s), &again, &why, eb, sizeof eb),
                     GOV_ERR_CONFIG);
    assert_int_equal(why, GOV_REASON_KEY_INSECURE);
    assert_non_null(strstr(eb, "chmod 700"));
    gov_keystore_config_t cfg = {.backend = GOV_KEYSTORE_FILE, .key_dir = dir};
    gov_keystore_t *ks2 = NULL;
    why = GOV_REASON_COUNT_;
    assert_int_equal(gov_keystore_open(&cfg, &ks2, &why, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_null(ks2);
    assert_int_equal(why, GOV_REASON_KEY_INSECURE);
    assert_int_equal(chmod(dir, 0700), 0);

    /* A symbolic link in place of the key file is not followed. */
    char real[256];
    snprintf(real, sizeof real, "%s/real.key", dir);
    assert_int_equal(rename(path, real), 0);
    assert_int_equal(symlink(real, path), 0);
    assert_int_not_equal(gov_keystore_signer(ks, gov_signer_kid(s), &again, &why, eb, sizeof eb),
                         GOV_OK);
    assert_int_equal(why, GOV_REASON_KEY_INSECURE);

    /* review10: a FIFO in place of the key file is refused at once; the
     * open used to wait for a writer, hanging the edge's identity thread
     * (the alarm turns a hang into a failure) */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(10);
    assert_int_equal(gov_keystore_signer(ks, gov_signer_kid(s), &again, &why, eb, sizeof eb),
                     GOV_ERR_CONFIG);
    alarm(0);
    assert_int_equal(why, GOV_REASON_KEY_INSECURE);
    assert_non_null(strstr(eb, "not a regular file"));
    gov_signer_free(s);
    gov_keystore_free(ks);
}

static void test_not_found_and_mismatch(void **state) {
    (void)state;
    gov_keystore_t *ks = open_store();
    gov_signer_t *s = NULL, *a = NULL, *b = NULL;
    gov_reason_t why;
    /* A well-formed kid with no file, and things that are not kids. */
    assert_int_equal(gov_keystore_signer(ks, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", &s, &why,
                                         eb, sizeof eb),
                     GOV_ERR_NOT_FOUND);
    assert_int_equal(why, GOV_REASON_KEY_NOT_FOUND);
    assert_string_equal(gov_reason_code(why), "key_not_found");
    assert_null(s);
    assert_int_equal(gov_keystore_signer(ks, "../../etc/passwd", &s, &why, eb, sizeof eb),
                     GOV_ERR_NOT_FOUND);
    assert_int_equal(why, GOV_REASON_KEY_NOT_FOUND);

    /* A key file renamed to another key's kid: not that key. */
    assert_int_equal(gov_keystore_generate(ks, &a, &why, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_keystore_generate(ks, &b, &why, eb, sizeof eb), GOV_OK);
    char pa[256], pb[256];
    key_file(gov_signer_kid(a), pa, sizeof pa);
    key_file(gov_signer_kid(b), pb, sizeof pb);
    assert_int_equal(rename(pa, pb), 0);
    assert_int_equal(gov_keystore_signer(ks, gov_signer_kid(b), &s, &why, eb, sizeof eb),
                     GOV_ERR_VERIFY);
    assert_int_equal(why, GOV_REASON_KEY_INVALID);
    /* Not a key at all. */
    FILE *f = fopen(pb, "w");
    assert_non_null(f);
    fputs("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    assert_int_equal(gov_keystore_signer(ks, gov_signer_kid(b), &s, &why, eb, sizeof eb),
                     GOV_ERR_PARSE);
    assert_int_equal(why, GOV_REASON_KEY_INVALID);
    gov_signer_free(a);
    gov_signer_free(b);
    gov_keystore_free(ks);
}

static void test_config_rows_and_pin_file(void **state) {
    (void)state;
    gov_keystore_config_t c = {0};
    const gov_config_entry_t rows[] = {GOV_KEYSTORE_CONFIG_ROWS(&c)};
    assert_int_equal(sizeof rows / sizeof rows[0], 6);
    assert_string_equal(rows[0].name, "signer_backend");
    assert_true(rows[5].secret);
    assert_string_equal(rows[5].name, "pkcs11_pin");

    /* Loaded from the environment as a binary would; the PIN is in the
     * struct and never in the printed configuration. */
    setenv("GOV_SIGNER_BACKEND", "pkcs11", 1);
    setenv("GOV_PKCS11_PIN", "pin-3141592653", 1);
    char *argv[] = {"test", NULL};
    gov_config_result_t res;
    assert_int_equal(gov_config_load(rows, 6, 1, argv, &res, eb, sizeof eb), GOV_OK);
    unsetenv("GOV_SIGNER_BACKEND");
    unsetenv("GOV_PKCS11_PIN");
    assert_int_equal(c.backend, GOV_KEYSTORE_PKCS11);
    assert_string_equal(c.pkcs11_pin, "pin-3141592653");
    char *printed = NULL;
    size_t plen = 0;
    FILE *mf = open_memstream(&printed, &plen);
    assert_non_null(mf);
    gov_config_print(rows, 6, mf);
    gov_config_print_docs(rows, 6, mf);
    fclose(mf);
    assert_non_null(strstr(printed, "signer_backend = pkcs11"));
    assert_non_null(strstr(printed, "pkcs11_pin = (set)"));
    assert_null(strstr(printed, "3141592653"));
    free(printed);
    gov_config_free_strings(rows, 6);

    /* The façade's own checks. */
    gov_keystore_t *ks = NULL;
    gov_reason_t why;
    gov_keystore_config_t none = {.backend = GOV_KEYSTORE_FILE};
    assert_int_equal(gov_keystore_open(&none, &ks, &why, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_non_null(strstr(eb, "signer_key_dir"));
    gov_keystore_config_t p11 = {.backend = GOV_KEYSTORE_PKCS11, .pkcs11_module = "x",
                                 .pkcs11_token_label = "t"};
    assert_int_equal(gov_keystore_open(&p11, &ks, &why, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_non_null(strstr(eb, "pkcs11_pin"));

    /* A PIN file: one line, trailing newline stripped; open to others: refused. */
    char pin[256];
    snprintf(pin, sizeof pin, "%s/pin", dir);
    FILE *f = fopen(pin, "w");
    assert_non_null(f);
    fputs("12345678\r\n", f);
    fclose(f);
    assert_int_equal(chmod(pin, 0600), 0);
    char *secret = NULL;
    assert_int_equal(gov_keystore_read_secret_file(pin, &secret, &why, eb, sizeof eb), GOV_OK);
    assert_string_equal(secret, "12345678");
    gov_free(secret);
    assert_int_equal(chmod(pin, 0644), 0);
    assert_int_equal(gov_keystore_read_secret_file(pin, &secret, &why, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_int_equal(why, GOV_REASON_KEY_INSECURE);
    assert_null(secret);
    unlink(pin);
}

/* Every allocation failing in turn through generate and open: an error,
 * never a crash or a leak (valgrind and ASan watch). */
/* A temporary a crashed generation left (its process gone) is removed when
 * the store opens; one of a running process (this one's parent stands in
 * for a live generator) stays; neither is ever listed as a key. */
static void test_stale_temporaries_removed(void **state) {
    (void)state;
    const char *kid = "dixDjxGpkL6Rnt1NYIgX9NH5BEoTjtNld_mTpSi6XME";
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child); /* reaped: its pid runs no more */
    char stale[256], live[256], other[256];
    snprintf(stale, sizeof stale, "%s/.%s.pem.tmp.%ld", dir, kid, (long)child);
    snprintf(live, sizeof live, "%s/.%s.pem.tmp.%ld", dir, kid, (long)getppid());
    snprintf(other, sizeof other, "%s/.notakid.pem.tmp.%ld", dir, (long)child);
    const char *paths[] = {stale, live, other};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(paths[i], "w");
        assert_non_null(f);
        fputs("partial", f);
        fclose(f);
        chmod(paths[i], 0600);
    }
    gov_keystore_t *ks = open_store();
    assert_int_equal(access(stale, F_OK), -1);
    assert_int_equal(access(live, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0); /* not a generation's name: not ours to remove */
    char **kids = NULL;
    size_t n = 9;
    gov_reason_t why = GOV_REASON_COUNT_;
    assert_int_equal(gov_keystore_list(ks, &kids, &n, &why, eb, sizeof eb), GOV_OK);
    assert_int_equal(n, 0);
    gov_keystore_list_free(kids, n);
    gov_keystore_free(ks);
}

static void test_oom(void **state) {
    (void)state;
    int ok = 0;
    for (long n = 0; n < 64 && !ok; n++) {
        gov_keystore_config_t cfg = {.backend = GOV_KEYSTORE_FILE, .key_dir = dir};
        gov_keystore_t *ks = NULL;
        gov_signer_t *s = NULL, *s2 = NULL;
        gov_reason_t why;
        gov_alloc_fail_after(n);
        gov_err_t rc = gov_keystore_open(&cfg, &ks, &why, eb, sizeof eb);
        if (rc == GOV_OK)
            rc = gov_keystore_generate(ks, &s, &why, eb, sizeof eb);
        if (rc == GOV_OK)
            rc = gov_keystore_signer(ks, gov_signer_kid(s), &s2, &why, eb, sizeof eb);
        gov_alloc_fail_reset();
        if (rc == GOV_OK)
            ok = 1;
        else
            assert_int_equal(rc, GOV_ERR_NOMEM);
        gov_signer_free(s);
        gov_signer_free(s2);
        gov_keystore_free(ks);
    }
    assert_true(ok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_sign_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insecure_key_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_rows_and_pin_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_temporaries_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
