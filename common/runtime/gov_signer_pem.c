/* gov_signer_pem.c - the file key store: Ed25519 keys as PKCS#8 PEM files in
 * one directory, the local default signing backend.
 *
 * How it works: a key is <dir>/<kid>.pem, the kid being the RFC 7638
 * thumbprint of its public key, so the name says which key a file holds and
 * opening checks that it does.  Generation writes the PEM to a temporary
 * name created 0600 with O_EXCL, fsyncs it, links it to its final name
 * (link fails if that name exists: a key is never overwritten) and fsyncs
 * the directory, so a crash leaves either no key or a whole one.  Opening
 * checks the directory (owned by us, not writable by group or others: else
 * someone else could swap a key in) and then the key file on the very
 * descriptor it reads (O_NOFOLLOW, fstat: owned by us, no access for group
 * or others), and refuses either with key_insecure.  A loaded key becomes
 * the in-process signer of gov_signer.c; the PEM text is read into one
 * buffer and cleansed, never logged.
 *
 * Temporaries a crashed generation left behind are removed when the store
 * is opened (their pid no longer runs).
 *
 * What it does not do: rotate or delete keys (that is key lifecycle, above
 * this), encrypt keys at rest (the directory's permissions are the
 * protection; use the pkcs11 backend for more), or follow symlinks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_signer_rt.h"

#define KEY_FILE_MAX 4096
#define PATH_MAX_LEN 4096

typedef struct pem_store {
    char *dir;
} pem_store_t;

/* The directory rule: a directory, ours, not writable by group or others. */
static gov_err_t check_dir(const char *dir, gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    struct stat st;
    if (stat(dir, &st) != 0)
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE,
                               errno == ENOENT ? GOV_ERR_NOT_FOUND : GOV_ERR_IO, errbuf,
                               errbuf_size, "key directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_CONFIG, errbuf,
                               errbuf_size, "key directory %s is not a directory", dir);
    if (st.st_uid != geteuid())
        return gov_reason_fail(why, GOV_REASON_KEY_INSECURE, GOV_ERR_CONFIG, errbuf, errbuf_size,
                               "key directory %s is owned by uid %u, not by this process's uid %u",
                               dir, (unsigned)st.st_uid, (unsigned)geteuid());
    if ((st.st_mode & 022) != 0)
        return gov_reason_fail(why, GOV_REASON_KEY_INSECURE, GOV_ERR_CONFIG, errbuf, errbuf_size,
                               "key directory %s has mode %04o: it must not be writable by group "
                               "or others (chmod 700)",
                               dir, (unsigned)(st.st_mode & 07777));
    return GOV_OK;
}

static gov_err_t key_path(const pem_store_t *ps, const char *name, char *path, size_t size) {
    int n = snprintf(path, size, "%s/%s", ps->dir, name);
    return n < 0 || (size_t)n >= size ? GOV_ERR_TOO_LARGE : GOV_OK;
}

/* --- open -------------------------------------------------------------------------- */

/* The in-process signer of a key this backend loaded or made: key STOLEN. */
static gov_err_t file_signer_take(EVP_PKEY *key, gov_signer_t **out, gov_reason_t *why,
                                  char *errbuf, size_t errbuf_size) {
    gov_err_t rc = gov_signer_from_evp_take(key, "file", out, errbuf, errbuf_size);
    if (rc != GOV_OK && why != NULL)
        *why = GOV_REASON_CRYPTO_ERROR;
    return rc;
}

static gov_err_t pem_signer(void *ctx, const char *kid, gov_signer_t **out, gov_reason_t *why,
                            char *errbuf, size_t errbuf_size) {
    pem_store_t *ps = ctx;
    char path[PATH_MAX_LEN], name[GOV_SIGNER_KID_SIZE + 8];
    char *buf = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    EVP_PKEY *key = NULL;
    gov_signer_t *s = NULL;
    gov_err_t rc;

    if ((rc = check_dir(ps->dir, why, errbuf, errbuf_size)) != GOV_OK)
        return rc;
    snprintf(name, sizeof name, "%s.pem", kid);
    if (key_path(ps, name, path, sizeof path) != GOV_OK)
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_TOO_LARGE, errbuf,
                               errbuf_size, "key directory path too long");
    rc = gov_keystore_read_private(path, "key file", KEY_FILE_MAX, &buf, &len, why, errbuf,
                                   errbuf_size);
    if (rc == GOV_ERR_NOT_FOUND)
        return gov_reason_fail(why, GOV_REASON_KEY_NOT_FOUND, GOV_ERR_NOT_FOUND, errbuf,
                               errbuf_size, "no key %s in %s", kid, ps->dir);
    if (rc != GOV_OK)
        return rc;
    bio = BIO_new_mem_buf(buf, (int)len);
    if (bio == NULL) {
        rc = gov_reason_fail(why, GOV_REASON_CRYPTO_ERROR, GOV_ERR_NOMEM, errbuf, errbuf_size,
                             "out of memory");
        goto out;
    }
    /* No passphrase callback: an encrypted key is not one of ours. */
    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
    if (key == NULL || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
        rc = gov_reason_fail(why, GOV_REASON_KEY_INVALID, GOV_ERR_PARSE, errbuf, errbuf_size,
                             "key file %s does not hold an unencrypted Ed25519 private key (PKCS#8 "
                             "PEM)",
                             path);
        goto out;
    }
    rc = file_signer_take(key, &s, why, errbuf, errbuf_size);
    key = NULL;
    if (rc != GOV_OK)
        goto out;
    if (strcmp(gov_signer_kid(s), kid) != 0) {
        rc = gov_reason_fail(why, GOV_REASON_KEY_INVALID, GOV_ERR_VERIFY, errbuf, errbuf_size,
                             "key file %s holds the key %s, not %s", path, gov_signer_kid(s), kid);
        goto out;
    }
    *out = s;
    s = NULL;
    rc = GOV_OK;
out:
    gov_signer_free(s);
    EVP_PKEY_free(key);
    BIO_free(bio);
    if (buf != NULL) {
        OPENSSL_cleanse(buf, KEY_FILE_MAX + 1);
        gov_free(buf);
    }
    return rc;
}

/* --- generate ------------------------------------------------------------------------- */

static gov_err_t write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return GOV_ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return GOV_OK;
}

static gov_err_t fsync_dir(const char *dir) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return GOV_ERR_IO;
    int r = fsync(dfd);
    close(dfd);
    return r == 0 ? GOV_OK : GOV_ERR_IO;
}

static gov_err_t pem_generate(void *ctx, gov_signer_t **out, gov_reason_t *why, char *errbuf,
                              size_t errbuf_size) {
    pem_store_t *ps = ctx;
    EVP_PKEY_CTX *kctx = NULL;
    EVP_PKEY *key = NULL;
    BIO *bio = NULL;
    gov_signer_t *s = NULL;
    char tmp[PATH_MAX_LEN], path[PATH_MAX_LEN], name[GOV_SIGNER_KID_SIZE + 32];
    int fd = -1, tmp_made = 0;
    gov_err_t rc;

    if ((rc = check_dir(ps->dir, why, errbuf, errbuf_size)) != GOV_OK)
        return rc;
    kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (kctx == NULL || EVP_PKEY_keygen_init(kctx) != 1 || EVP_PKEY_keygen(kctx, &key) != 1) {
        rc = gov_reason_fail(why, GOV_REASON_CRYPTO_ERROR, GOV_ERR_CRYPTO, errbuf, errbuf_size,
                             "cannot generate an Ed25519 key");
        goto out;
    }
    /* Secure-heap BIO: the PEM text is wiped when the BIO is freed. */
    bio = BIO_new(BIO_s_secmem());
    if (bio == NULL || PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        rc = gov_reason_fail(why, GOV_REASON_CRYPTO_ERROR, GOV_ERR_CRYPTO, errbuf, errbuf_size,
                             "cannot encode the new key as PKCS#8 PEM");
        goto out;
    }
    rc = file_signer_take(key, &s, why, errbuf, errbuf_size);
    key = NULL;
    if (rc != GOV_OK)
        goto out;
    snprintf(name, sizeof name, ".%s.pem.tmp.%ld", gov_signer_kid(s), (long)getpid());
    gov_err_t tmp_rc = key_path(ps, name, tmp, sizeof tmp);
    snprintf(name, sizeof name, "%s.pem", gov_signer_kid(s));
    if (tmp_rc != GOV_OK || key_path(ps, name, path, sizeof path) != GOV_OK) {
        rc = gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_TOO_LARGE, errbuf,
                             errbuf_size, "key directory path too long");
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = gov_reason_fail(why, GOV_REASON_IO_ERROR, GOV_ERR_IO, errbuf, errbuf_size,
                             "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    tmp_made = 1;
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    /* fchmod: the umask may have taken bits away, never added; make it exact. */
    if (pem_len <= 0 || write_all(fd, pem, (size_t)pem_len) != GOV_OK || fchmod(fd, 0600) != 0 ||
        fsync(fd) != 0) {
        rc = gov_reason_fail(why, GOV_REASON_IO_ERROR, GOV_ERR_IO, errbuf, errbuf_size,
                             "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = gov_reason_fail(why, GOV_REASON_IO_ERROR, GOV_ERR_IO, errbuf, errbuf_size,
                             "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (link(tmp, path) != 0) {
        rc = gov_reason_fail(why, errno == EEXIST ? GOV_REASON_KEY_EXISTS : GOV_REASON_IO_ERROR,
                             errno == EEXIST ? GOV_ERR_EXISTS : GOV_ERR_IO, errbuf, errbuf_size,
                             "cannot create key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (fsync_dir(ps->dir) != GOV_OK) {
        rc = gov_reason_fail(why, GOV_REASON_IO_ERROR, GOV_ERR_IO, errbuf, errbuf_size,
                             "cannot sync key directory %s: %s", ps->dir, strerror(errno));
        unlink(path);
        goto out;
    }
    *out = s;
    s = NULL;
    rc = GOV_OK;
out:
    if (fd >= 0)
        close(fd);
    if (tmp_made)
        unlink(tmp);
    gov_signer_free(s);
    BIO_free(bio);
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(kctx);
    return rc;
}

/* --- list ------------------------------------------------------------------------------- */

static gov_err_t pem_list(void *ctx, char ***kids, size_t *n, gov_reason_t *why, char *errbuf,
                          size_t errbuf_size) {
    pem_store_t *ps = ctx;
    gov_err_t rc;
    if ((rc = check_dir(ps->dir, why, errbuf, errbuf_size)) != GOV_OK)
        return rc;
    DIR *d = opendir(ps->dir);
    if (d == NULL)
        return gov_reason_fail(why, GOV_REASON_IO_ERROR, GOV_ERR_IO, errbuf, errbuf_size,
                               "cannot list key directory %s: %s", ps->dir, strerror(errno));
    rc = GOV_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        /* <kid>.pem exactly; temporaries start with '.', other files are not keys. */
        size_t len = strlen(e->d_name);
        char kid[GOV_SIGNER_KID_SIZE];
        if (len != GOV_SIGNER_KID_LEN + 4 || strcmp(e->d_name + GOV_SIGNER_KID_LEN, ".pem") != 0)
            continue;
        memcpy(kid, e->d_name, GOV_SIGNER_KID_LEN);
        kid[GOV_SIGNER_KID_LEN] = '\0';
        if (!gov_signer_kid_valid(kid))
            continue;
        if ((rc = gov_keystore_list_add(kids, n, kid)) != GOV_OK) {
            rc = gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, rc, errbuf, errbuf_size,
                                 rc == GOV_ERR_TOO_LARGE ? "key directory %s holds more than %d keys"
                                                         : "out of memory listing %s (%d)",
                                 ps->dir, GOV_KEYSTORE_LIST_MAX);
            break;
        }
    }
    closedir(d);
    return rc;
}

static void pem_free(void *ctx) {
    pem_store_t *ps = ctx;
    gov_free(ps->dir);
    gov_free(ps);
}

static const gov_keystore_ops_t pem_ops = {
    .name = "file",
    .generate = pem_generate,
    .signer = pem_signer,
    .list = pem_list,
    .free = pem_free,
};

/* Removes the temporaries `.<kid>.pem.tmp.<pid>` a generation left when its
 * process died before linking them (a crash mid-generate): a temporary
 * whose pid no longer runs (kill(pid, 0) ESRCH).  A live generator's, or
 * one under a reused pid, stays - it is never listed as a key anyway.
 * Best effort, O(directory entries); called once per open. */
static void remove_stale_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    static const char tag[] = ".pem.tmp.";
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        size_t len = strlen(n);
        if (len <= 1 + GOV_SIGNER_KID_LEN + sizeof tag - 1 || n[0] != '.' ||
            memcmp(n + 1 + GOV_SIGNER_KID_LEN, tag, sizeof tag - 1) != 0)
            continue;
        char kid[GOV_SIGNER_KID_SIZE], *end = NULL;
        memcpy(kid, n + 1, GOV_SIGNER_KID_LEN);
        kid[GOV_SIGNER_KID_LEN] = '\0';
        const char *digits = n + 1 + GOV_SIGNER_KID_LEN + sizeof tag - 1;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (!gov_signer_kid_valid(kid) || digits[0] < '0' || digits[0] > '9' || errno != 0 ||
            *end != '\0' || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            (void)unlinkat(dirfd(d), n, 0);
    }
    closedir(d);
}

gov_err_t gov_keystore_open_dir(const char *dir, gov_keystore_t **out, gov_reason_t *why,
                                char *errbuf, size_t errbuf_size) {
    *out = NULL;
    if (dir == NULL || dir[0] == '\0' || strlen(dir) > PATH_MAX_LEN - 64)
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_CONFIG, errbuf,
                               errbuf_size, "key directory: empty or too long a path");
    /* A missing directory is made private; an existing one must already be. */
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_IO, errbuf,
                               errbuf_size, "cannot create key directory %s: %s", dir,
                               strerror(errno));
    gov_err_t rc = check_dir(dir, why, errbuf, errbuf_size);
    if (rc != GOV_OK)
        return rc;
    remove_stale_temporaries(dir);
    pem_store_t *ps = gov_calloc(1, sizeof *ps);
    if (ps == NULL || (ps->dir = gov_strdup(dir)) == NULL) {
        gov_free(ps);
        return gov_reason_fail(why, GOV_REASON_IO_ERROR, GOV_ERR_NOMEM, errbuf, errbuf_size,
                               "out of memory");
    }
    *out = gov_keystore_wrap(&pem_ops, ps);
    if (*out == NULL)
        return gov_reason_fail(why, GOV_REASON_IO_ERROR, GOV_ERR_NOMEM, errbuf, errbuf_size,
                               "out of memory");
    return GOV_OK;
}
