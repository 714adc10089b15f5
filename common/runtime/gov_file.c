/* gov_file.c - read a whole file, bounded.
 *
 * How it works: open with O_CLOEXEC, fstat to refuse directories (and
 * non-regular files unless streams are allowed), then read into a buffer
 * that starts small (or at max + 1 for a secret) and doubles up to max + 1:
 * reading one byte past the limit is how an over-long stream is detected
 * without trusting st_size, which a growing file or a pipe does not have.
 *
 * gov_file_trust_load is that read followed by gov_trust_parse, so a trust
 * file is bounded like every other file.
 *
 * What it does not do: mmap, follow "include" directives, or retry on
 * anything but EINTR.
 */
#include "gov_file.h"

#include "gov_constitution.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_util.h"

#define FIRST_CHUNK 4096u

/* Wipes a secret buffer before freeing it; explicit_bzero is not optimized
 * away. */
static void release(char *buf, size_t cap, int secret) {
    if (buf != NULL && secret)
        explicit_bzero(buf, cap + 1);
    gov_free(buf);
}

gov_err_t gov_file_read(const char *path, size_t max, unsigned flags, char **out,
                        size_t *out_len, char *errbuf, size_t errbuf_size) {
    const int secret = (flags & GOV_FILE_SECRET) != 0;
    const int is_stdin = (flags & GOV_FILE_DASH_IS_STDIN) && path != NULL && strcmp(path, "-") == 0;
    gov_err_t err = GOV_ERR_IO;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    char reason[128];

    if (errbuf != NULL && errbuf_size > 0)
        errbuf[0] = '\0';
    if (out == NULL || out_len == NULL || path == NULL) {
        gov_errbuf(errbuf, errbuf_size, "invalid arguments");
        return GOV_ERR_INVALID_ARG;
    }
    *out = NULL;
    *out_len = 0;
    if (max > SIZE_MAX / 4) {
        /* cap + 1 and the doubling must not wrap: no caller needs more. */
        gov_errbuf(errbuf, errbuf_size, "a limit of %zu bytes is too large", max);
        return GOV_ERR_INVALID_ARG;
    }
    /* Without streams a FIFO must be refused, not waited on: O_NONBLOCK makes
     * the open of a FIFO with no writer return at once (fstat then refuses
     * it); a regular file ignores the flag. */
    int oflags = O_RDONLY | O_CLOEXEC | ((flags & GOV_FILE_ALLOW_STREAM) ? 0 : O_NONBLOCK);
    int fd = is_stdin ? STDIN_FILENO : open(path, oflags);
    if (fd < 0) {
        int e = errno;
        gov_errbuf(errbuf, errbuf_size, "cannot open %s: %s", path,
                  strerror_r(e, reason, sizeof reason));
        return e == ENOENT ? GOV_ERR_NOT_FOUND : GOV_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            gov_errbuf(errbuf, errbuf_size, "%s is a directory", path);
            goto out;
        }
        if (!S_ISREG(st.st_mode) && !(flags & GOV_FILE_ALLOW_STREAM) && !is_stdin) {
            gov_errbuf(errbuf, errbuf_size, "%s is not a regular file", path);
            goto out;
        }
    }
    cap = secret ? max + 1 : (max + 1 < FIRST_CHUNK ? max + 1 : FIRST_CHUNK);
    if ((buf = gov_malloc(cap + 1)) == NULL) {
        gov_errbuf(errbuf, errbuf_size, "out of memory");
        err = GOV_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > max)
                break; /* read one byte past the limit: too large */
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = gov_realloc(buf, ncap + 1);
            if (nb == NULL) {
                gov_errbuf(errbuf, errbuf_size, "out of memory");
                err = GOV_ERR_NOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            gov_errbuf(errbuf, errbuf_size, "cannot read %s: %s", path,
                      strerror_r(errno, reason, sizeof reason));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max) {
        gov_errbuf(errbuf, errbuf_size, "%s is larger than %zu bytes", path, max);
        err = GOV_ERR_TOO_LARGE;
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
    err = GOV_OK;
out:
    release(buf, cap, secret);
    if (!is_stdin)
        close(fd);
    return err;
}

gov_err_t gov_file_trust_load(const char *path, gov_trust_t **out, char *errbuf,
                              size_t errbuf_size) {
    char *buf = NULL;
    size_t n = 0;
    *out = NULL;
    if (path == NULL || path[0] == '\0') {
        gov_errbuf(errbuf, errbuf_size, "no trust file configured");
        return GOV_ERR_INVALID_ARG;
    }
    gov_err_t err = gov_file_read(path, GOV_TRUST_FILE_MAX, 0, &buf, &n, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    err = gov_trust_parse(buf, n, out, errbuf, errbuf_size);
    gov_free(buf);
    return err;
}
