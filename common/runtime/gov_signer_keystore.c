/* gov_signer_keystore.c - the key store façade over the signing backends.
 *
 * What: gov_keystore_open picks the backend the configuration names (file
 * or pkcs11) and returns one handle whose generate/signer/list calls go
 * through the backend's function table, so the edge and govctl never ask
 * which one they hold.  The few rules both backends share live here too:
 * what makes a private file (key file, PIN file) acceptable, and reading a
 * one-line secret file.
 *
 * How: a handle is a table pointer plus the backend's context.  The secret
 * file is checked on the descriptor it is read from (fstat after open with
 * O_NOFOLLOW and O_NONBLOCK, so neither a link nor a FIFO is followed or
 * waited on), so what was checked is what is read.
 *
 * What it does not do: hold keys (the backends do), or read the
 * environment (the configuration table does, GOV_KEYSTORE_CONFIG_ROWS).
 */
#include "gov_signer_rt.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_alloc.h"

const char *const gov_keystore_backends[] = {"file", "pkcs11", NULL};

struct gov_keystore {
    const gov_keystore_ops_t *ops;
    void *ctx;
};

#define SECRET_FILE_MAX 256

gov_keystore_t *gov_keystore_wrap(const gov_keystore_ops_t *ops, void *ctx) {
    gov_keystore_t *ks = gov_calloc(1, sizeof *ks);
    if (ks == NULL) {
        ops->free(ctx);
        return NULL;
    }
    ks->ops = ops;
    ks->ctx = ctx;
    return ks;
}

gov_err_t gov_keystore_open(const gov_keystore_config_t *cfg, gov_keystore_t **out,
                            gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    *out = NULL;
    if (cfg == NULL)
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "key store: no configuration");
    switch (cfg->backend) {
    case GOV_KEYSTORE_FILE:
        if (cfg->key_dir == NULL || cfg->key_dir[0] == '\0')
            return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_CONFIG, errbuf,
                                   errbuf_size,
                                   "key store: signer_backend=file needs signer_key_dir");
        return gov_keystore_open_dir(cfg->key_dir, out, why, errbuf, errbuf_size);
    case GOV_KEYSTORE_PKCS11: {
        int has_pin = cfg->pkcs11_pin != NULL && cfg->pkcs11_pin[0] != '\0';
        int has_file = cfg->pkcs11_pin_file != NULL && cfg->pkcs11_pin_file[0] != '\0';
        if (cfg->pkcs11_module == NULL || cfg->pkcs11_token_label == NULL)
            return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_CONFIG, errbuf,
                                   errbuf_size,
                                   "key store: signer_backend=pkcs11 needs pkcs11_module and "
                                   "pkcs11_token_label");
        if (has_pin == has_file)
            return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_CONFIG, errbuf,
                                   errbuf_size,
                                   "key store: signer_backend=pkcs11 needs exactly one of "
                                   "pkcs11_pin and pkcs11_pin_file");
        return gov_keystore_open_pkcs11(cfg->pkcs11_module, cfg->pkcs11_token_label,
                                        has_pin ? cfg->pkcs11_pin : NULL,
                                        has_file ? cfg->pkcs11_pin_file : NULL, out, why, errbuf,
                                        errbuf_size);
    }
    default:
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_CONFIG, errbuf,
                               errbuf_size, "key store: unknown signer_backend %d", cfg->backend);
    }
}

const char *gov_keystore_backend(const gov_keystore_t *ks) { return ks->ops->name; }

gov_err_t gov_keystore_generate(gov_keystore_t *ks, gov_signer_t **out, gov_reason_t *why,
                                char *errbuf, size_t errbuf_size) {
    *out = NULL;
    return ks->ops->generate(ks->ctx, out, why, errbuf, errbuf_size);
}

gov_err_t gov_keystore_signer(gov_keystore_t *ks, const char *kid, gov_signer_t **out,
                              gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    *out = NULL;
    /* A kid is also a file name and a token label: anything else is not a
     * key of ours, and never reaches a path or a search template. */
    if (!gov_signer_kid_valid(kid))
        return gov_reason_fail(why, GOV_REASON_KEY_NOT_FOUND, GOV_ERR_NOT_FOUND, errbuf,
                               errbuf_size, "key store: \"%.64s\" is not a key id",
                               kid != NULL ? kid : "(null)");
    return ks->ops->signer(ks->ctx, kid, out, why, errbuf, errbuf_size);
}

gov_err_t gov_keystore_list(gov_keystore_t *ks, char ***kids, size_t *n, gov_reason_t *why,
                            char *errbuf, size_t errbuf_size) {
    *kids = NULL;
    *n = 0;
    gov_err_t rc = ks->ops->list(ks->ctx, kids, n, why, errbuf, errbuf_size);
    if (rc != GOV_OK) {
        gov_keystore_list_free(*kids, *n);
        *kids = NULL;
        *n = 0;
        return rc;
    }
    gov_keystore_list_sort(*kids, *n);
    return GOV_OK;
}

void gov_keystore_list_free(char **kids, size_t n) {
    if (kids == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        gov_free(kids[i]);
    gov_free(kids);
}

void gov_keystore_free(gov_keystore_t *ks) {
    if (ks == NULL)
        return;
    ks->ops->free(ks->ctx);
    gov_free(ks);
}

gov_err_t gov_keystore_list_add(char ***kids, size_t *n, const char *kid) {
    if (*n >= GOV_KEYSTORE_LIST_MAX)
        return GOV_ERR_TOO_LARGE;
    char **grown = gov_realloc(*kids, (*n + 1) * sizeof *grown);
    if (grown == NULL)
        return GOV_ERR_NOMEM;
    *kids = grown;
    grown[*n] = gov_strdup(kid);
    if (grown[*n] == NULL)
        return GOV_ERR_NOMEM;
    (*n)++;
    return GOV_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void gov_keystore_list_sort(char **kids, size_t n) {
    if (n > 1)
        qsort(kids, n, sizeof *kids, cmp_str);
}

/* The ownership rule, applied to the descriptor that is read. */
static gov_err_t check_private(const struct stat *st, const char *path, const char *what,
                               gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    if (!S_ISREG(st->st_mode))
        return gov_reason_fail(why, GOV_REASON_KEY_INSECURE, GOV_ERR_CONFIG, errbuf, errbuf_size,
                               "%s %s is not a regular file", what, path);
    if (st->st_uid != geteuid())
        return gov_reason_fail(why, GOV_REASON_KEY_INSECURE, GOV_ERR_CONFIG, errbuf, errbuf_size,
                               "%s %s is owned by uid %u, not by this process's uid %u", what,
                               path, (unsigned)st->st_uid, (unsigned)geteuid());
    if ((st->st_mode & 077) != 0)
        return gov_reason_fail(why, GOV_REASON_KEY_INSECURE, GOV_ERR_CONFIG, errbuf, errbuf_size,
                               "%s %s has mode %04o: group and others must have no access "
                               "(chmod 600)",
                               what, path, (unsigned)(st->st_mode & 07777));
    return GOV_OK;
}

gov_err_t gov_keystore_read_private(const char *path, const char *what, size_t max, char **out,
                                    size_t *out_len, gov_reason_t *why, char *errbuf,
                                    size_t errbuf_size) {
    gov_err_t rc;
    char *buf = NULL;
    size_t len = 0;
    struct stat st;
    *out = NULL;
    *out_len = 0;
    /* O_NONBLOCK: a FIFO put in the file's place must not make open wait
     * for a writer; it is refused below as not a regular file (the flag
     * does nothing to the reads of a regular file). */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_NOT_FOUND, errbuf,
                                   errbuf_size, "%s %s does not exist", what, path);
        if (errno == ELOOP)
            return gov_reason_fail(why, GOV_REASON_KEY_INSECURE, GOV_ERR_CONFIG, errbuf,
                                   errbuf_size, "%s %s is a symbolic link", what, path);
        return gov_reason_fail(why, GOV_REASON_IO_ERROR, GOV_ERR_IO, errbuf, errbuf_size,
                               "cannot open %s %s: %s", what, path, strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        rc = gov_reason_fail(why, GOV_REASON_IO_ERROR, GOV_ERR_IO, errbuf, errbuf_size,
                             "cannot stat %s %s: %s", what, path, strerror(errno));
        goto out;
    }
    if ((rc = check_private(&st, path, what, why, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    /* One buffer, never grown: no copy of the secret is left behind. */
    buf = gov_malloc(max + 1);
    if (buf == NULL) {
        rc = gov_reason_fail(why, GOV_REASON_IO_ERROR, GOV_ERR_NOMEM, errbuf, errbuf_size,
                             "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, max + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = gov_reason_fail(why, GOV_REASON_IO_ERROR, GOV_ERR_IO, errbuf, errbuf_size,
                                 "cannot read %s %s: %s", what, path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > max) {
            rc = gov_reason_fail(why, GOV_REASON_TOO_LARGE, GOV_ERR_TOO_LARGE, errbuf, errbuf_size,
                                 "%s %s is larger than %zu bytes", what, path, max);
            goto out;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = GOV_OK;
out:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, max + 1);
        gov_free(buf);
    }
    close(fd);
    return rc;
}

gov_err_t gov_keystore_read_secret_file(const char *path, char **out, gov_reason_t *why,
                                        char *errbuf, size_t errbuf_size) {
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    gov_err_t rc = gov_keystore_read_private(path, "PIN file", SECRET_FILE_MAX, &buf, &len, why,
                                             errbuf, errbuf_size);
    if (rc != GOV_OK)
        return rc;
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    buf[len] = '\0';
    if (len == 0 || memchr(buf, '\n', len) != NULL || memchr(buf, '\0', len) != NULL) {
        OPENSSL_cleanse(buf, SECRET_FILE_MAX + 1);
        gov_free(buf);
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_CONFIG, errbuf,
                               errbuf_size, "PIN file %s must hold one non-empty line", path);
    }
    *out = buf;
    return GOV_OK;
}
