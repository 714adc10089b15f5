/* gov_archive.c - the audit archive's files (see gov_archive.h).
 *
 * Why avro-c writes and core reads: the brief of the archive is "readable by
 * any Avro tool", so the files are made by the Apache implementation's own
 * container writer; reading them back must survive a damaged or hostile
 * file, which avro-c 1.11 does not promise, so gov_archive_segment_read
 * (bounded, fuzzed) reads them.
 *
 * Durability: temporary in the same directory -> avro-c writes and closes
 * (flushing its last block) -> fflush + fsync(file) -> link(2) to the final
 * name (fails if it exists: a segment is never replaced) -> unlink the
 * temporary -> fsync(directory).  A crash before the link leaves only a
 * temporary (removed by the next writer); after it, a complete file.  A
 * directory made here (a tenant's first segment) is made durable in its
 * parent first (gov_archive_mkdir).
 *
 * What it does not do: decide segment boundaries or talk to Redis
 * (gov-archive), or check the chain (the callers, gov_audit_chain).
 */
#include "gov_archive.h"

#include <avro.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_file.h"
#include "gov_schemas_gen.h"

#define SCHEMA_NAME "AuditChainEntry"
/* avro-c refuses a record larger than its block */
#define BLOCK_SIZE GOV_ARCHIVE_ENTRY_MAX_BYTES
/* the longest zig-zag varint: a string's length or a long */
#define VARINT_MAX 10

size_t gov_archive_record_bytes(const char *tenant, const gov_audit_entry_t *e,
                                const char *hash) {
    /* nine fields: seven strings (length + bytes) and two longs */
    return 9 * VARINT_MAX + strlen(tenant) + strlen(e->event_id) + strlen(e->type) +
           strlen(e->source) + e->payload_len + strlen(e->prev_hash) + strlen(hash);
}

/* fsync of a directory: makes its entries durable. */
static gov_err_t fsync_dir(const char *dir, char *errbuf, size_t errbuf_size) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        snprintf(errbuf, errbuf_size, "cannot fsync %s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return GOV_ERR_IO;
    }
    close(dfd);
    return GOV_OK;
}

int gov_archive_parent_dir(const char *dir, char *out, size_t size) {
    size_t end = strlen(dir);
    while (end > 1 && dir[end - 1] == '/')
        end--;
    const char *slash = NULL;
    for (size_t i = 0; i < end; i++)
        if (dir[i] == '/')
            slash = dir + i;
    size_t len = slash == NULL ? 0 : slash == dir ? 1 : (size_t)(slash - dir);
    if (len >= size || size < 2)
        return -1;
    if (len == 0)
        snprintf(out, size, ".");
    else
        snprintf(out, size, "%.*s", (int)len, dir);
    return 0;
}

gov_err_t gov_archive_mkdir(const char *dir, int *created, char *errbuf, size_t errbuf_size) {
    char parent[4096];
    *created = 0;
    if (mkdir(dir, 0750) == 0) {
        *created = 1;
    } else if (errno != EEXIST) {
        snprintf(errbuf, errbuf_size, "cannot create %s: %s", dir, strerror(errno));
        return GOV_ERR_IO;
    }
    /* The parent is synced when the directory already existed too: a
     * first call whose mkdir succeeded but whose fsync failed returned an
     * error, and its retry meets EEXIST - the entry may still not be
     * durable (REVIEW13 L11).  One fsync of a directory per segment write. */
    if (gov_archive_parent_dir(dir, parent, sizeof parent) != 0) {
        snprintf(errbuf, errbuf_size, "path too long: %s", dir);
        return GOV_ERR_IO;
    }
    return fsync_dir(parent, errbuf, errbuf_size);
}

void gov_archive_segment_name(uint64_t first, uint64_t last, char out[GOV_ARCHIVE_NAME_MAX]) {
    snprintf(out, GOV_ARCHIVE_NAME_MAX, "%020" PRIu64 "-%020" PRIu64 ".avro", first, last);
}

int gov_archive_segment_name_parse(const char *name, uint64_t *first, uint64_t *last) {
    /* exactly 20 digits, '-', 20 digits, ".avro" */
    if (strlen(name) != 46 || name[20] != '-' || strcmp(name + 41, ".avro") != 0)
        return 0;
    uint64_t v[2] = {0, 0};
    for (int part = 0; part < 2; part++)
        for (int i = 0; i < 20; i++) {
            char c = name[part * 21 + i];
            if (c < '0' || c > '9' || v[part] > (UINT64_MAX - 9) / 10)
                return 0;
            v[part] = v[part] * 10 + (uint64_t)(c - '0');
        }
    if (v[0] == 0 || v[1] < v[0] || v[1] > INT64_MAX)
        return 0;
    *first = v[0];
    *last = v[1];
    return 1;
}

static int ref_cmp(const void *a, const void *b) {
    const gov_archive_segment_ref_t *x = a, *y = b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return x->last < y->last ? -1 : x->last > y->last;
}

/* Calls fn for every entry of dir (a missing directory has none); stops at
 * the first error fn returns. */
static gov_err_t dir_walk(const char *dir, gov_err_t (*fn)(void *ctx, int dfd, const char *name),
                          void *ctx, char *errbuf, size_t errbuf_size) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return GOV_OK;
        snprintf(errbuf, errbuf_size, "cannot open %s: %s", dir, strerror(errno));
        return GOV_ERR_IO;
    }
    gov_err_t err = GOV_OK;
    struct dirent *de;
    while (err == GOV_OK && (de = readdir(d)) != NULL)
        err = fn(ctx, dirfd(d), de->d_name);
    closedir(d);
    return err;
}

static gov_err_t list_one(void *ctx, int dfd, const char *name) {
    gov_archive_listing_t *out = ctx;
    uint64_t first, last;
    (void)dfd;
    if (name[0] == '.')
        return GOV_OK;
    if (!gov_archive_segment_name_parse(name, &first, &last)) {
        out->other++;
        return GOV_OK;
    }
    if (out->n == GOV_ARCHIVE_LIST_MAX)
        return GOV_ERR_TOO_LARGE;
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64;
        gov_archive_segment_ref_t *s = gov_realloc(out->seg, cap * sizeof *s);
        if (s == NULL)
            return GOV_ERR_NOMEM;
        out->seg = s;
        out->cap = cap;
    }
    gov_archive_segment_ref_t *r = &out->seg[out->n++];
    r->first = first;
    r->last = last;
    memcpy(r->name, name, strlen(name) + 1);
    return GOV_OK;
}

gov_err_t gov_archive_list(const char *dir, gov_archive_listing_t *out, char *errbuf,
                           size_t errbuf_size) {
    memset(out, 0, sizeof *out);
    gov_err_t err = dir_walk(dir, list_one, out, errbuf, errbuf_size);
    if (err == GOV_ERR_TOO_LARGE)
        snprintf(errbuf, errbuf_size, "%s holds more than %d segments", dir, GOV_ARCHIVE_LIST_MAX);
    if (err != GOV_OK) {
        gov_archive_listing_clear(out);
        return err;
    }
    if (out->n > 1)
        qsort(out->seg, out->n, sizeof *out->seg, ref_cmp);
    return GOV_OK;
}

void gov_archive_listing_clear(gov_archive_listing_t *l) {
    gov_free(l->seg);
    memset(l, 0, sizeof *l);
}

static int is_temporary(const char *name) {
    size_t n = strlen(name);
    return strncmp(name, ".seg-", 5) == 0 && n > 9 && strcmp(name + n - 4, ".tmp") == 0;
}

typedef struct removal {
    int removed;
    int err_no;   /* of a failed unlink */
} removal_t;

static gov_err_t remove_one(void *ctx, int dfd, const char *name) {
    removal_t *r = ctx;
    if (!is_temporary(name))
        return GOV_OK;
    if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT) {
        r->err_no = errno;
        return GOV_ERR_IO;
    }
    r->removed++;
    return GOV_OK;
}

gov_err_t gov_archive_remove_temporaries(const char *dir, int *removed, char *errbuf,
                                         size_t errbuf_size) {
    removal_t r = {0, 0};
    gov_err_t err = dir_walk(dir, remove_one, &r, errbuf, errbuf_size);
    if (err == GOV_ERR_IO && r.err_no != 0)
        snprintf(errbuf, errbuf_size, "cannot remove a temporary in %s: %s", dir,
                 strerror(r.err_no));
    *removed = r.removed;
    return err;
}

static const gov_embedded_schema_t *schema_text(void) {
    for (unsigned i = 0; i < gov_embedded_schema_count; i++)
        if (strcmp(gov_embedded_schemas[i].name, SCHEMA_NAME) == 0)
            return &gov_embedded_schemas[i];
    return NULL;
}

gov_err_t gov_archive_schema_pcf(char **out, char *errbuf, size_t errbuf_size) {
    const gov_embedded_schema_t *s = schema_text();
    *out = NULL;
    if (s == NULL) {
        snprintf(errbuf, errbuf_size, "schema %s is not compiled in", SCHEMA_NAME);
        return GOV_ERR_INTERNAL;
    }
    return gov_avro_canonical_form(s->json, out, errbuf, errbuf_size);
}

gov_err_t gov_archive_segment_load(const char *dir, const char *name, gov_archive_record_fn fn,
                                   void *ctx, char *errbuf, size_t errbuf_size) {
    char path[4096], *buf = NULL, *pcf = NULL;
    size_t len = 0;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        snprintf(errbuf, errbuf_size, "path too long");
        return GOV_ERR_INVALID_ARG;
    }
    gov_err_t err = gov_archive_schema_pcf(&pcf, errbuf, errbuf_size);
    if (err == GOV_OK)
        err = gov_file_read(path, GOV_ARCHIVE_SEGMENT_MAX_BYTES, 0, &buf, &len, errbuf,
                            errbuf_size);
    if (err == GOV_OK)
        err = gov_archive_segment_read(buf, len, pcf, fn, ctx, errbuf, errbuf_size);
    gov_free(buf);
    gov_free(pcf);
    return err;
}

struct gov_archive_writer {
    char dir[4096];
    char tmp[4096];
    FILE *fp;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t rec;
    int have_rec;
    avro_file_writer_t fw;
};

gov_err_t gov_archive_writer_open(const char *dir, gov_archive_writer_t **out, char *errbuf,
                                  size_t errbuf_size) {
    const gov_embedded_schema_t *s = schema_text();
    gov_archive_writer_t *w = gov_calloc(1, sizeof *w);
    *out = NULL;
    if (w == NULL)
        return GOV_ERR_NOMEM;
    gov_err_t err = GOV_ERR_IO;
    if (s == NULL) {
        snprintf(errbuf, errbuf_size, "schema %s is not compiled in", SCHEMA_NAME);
        err = GOV_ERR_INTERNAL;
        goto fail;
    }
    if ((size_t)snprintf(w->dir, sizeof w->dir, "%s", dir) >= sizeof w->dir ||
        (size_t)snprintf(w->tmp, sizeof w->tmp, "%s/.seg-XXXXXX.tmp", dir) >= sizeof w->tmp) {
        snprintf(errbuf, errbuf_size, "path too long");
        err = GOV_ERR_INVALID_ARG;
        goto fail;
    }
    int created = 0;
    if ((err = gov_archive_mkdir(dir, &created, errbuf, errbuf_size)) != GOV_OK)
        goto fail;
    err = GOV_ERR_IO;
    int fd = mkstemps(w->tmp, 4);
    if (fd < 0) {
        snprintf(errbuf, errbuf_size, "cannot create a temporary in %s: %s", dir, strerror(errno));
        w->tmp[0] = '\0';
        goto fail;
    }
    if ((w->fp = fdopen(fd, "wb")) == NULL) {
        snprintf(errbuf, errbuf_size, "fdopen: %s", strerror(errno));
        close(fd);
        goto fail;
    }
    err = GOV_ERR_AVRO;
    if (avro_schema_from_json_length(s->json, s->len, &w->schema) != 0 ||
        (w->iface = avro_generic_class_from_schema(w->schema)) == NULL ||
        avro_generic_value_new(w->iface, &w->rec) != 0) {
        snprintf(errbuf, errbuf_size, "avro-c cannot build the %s schema", SCHEMA_NAME);
        goto fail;
    }
    w->have_rec = 1;
    if (avro_file_writer_create_with_codec_fp(w->fp, w->tmp, 0, w->schema, &w->fw, "null",
                                              BLOCK_SIZE) != 0) {
        w->fw = NULL;
        snprintf(errbuf, errbuf_size, "avro-c cannot start a container in %s", w->tmp);
        goto fail;
    }
    *out = w;
    return GOV_OK;
fail:
    gov_archive_writer_free(w);
    return err;
}

static int set_str(avro_value_t *rec, const char *field, const char *s, size_t len) {
    avro_value_t f;
    return avro_value_get_by_name(rec, field, &f, NULL) != 0 ||
           avro_value_set_string_len(&f, s, len + 1) != 0;   /* avro-c counts the NUL */
}

static int set_long(avro_value_t *rec, const char *field, int64_t v) {
    avro_value_t f;
    return avro_value_get_by_name(rec, field, &f, NULL) != 0 || avro_value_set_long(&f, v) != 0;
}

gov_err_t gov_archive_writer_append(gov_archive_writer_t *w, const char *tenant,
                                    const gov_audit_entry_t *e, const char *hash, char *errbuf,
                                    size_t errbuf_size) {
    int bad = 0;
    avro_value_reset(&w->rec);
    bad |= set_str(&w->rec, "tenant", tenant, strlen(tenant));
    bad |= set_long(&w->rec, "seq", (int64_t)e->seq);
    bad |= set_str(&w->rec, "event_id", e->event_id, strlen(e->event_id));
    bad |= set_str(&w->rec, "type", e->type, strlen(e->type));
    bad |= set_long(&w->rec, "occurred_at", e->occurred_at);
    bad |= set_str(&w->rec, "source", e->source, strlen(e->source));
    bad |= set_str(&w->rec, "payload", e->payload, e->payload_len);
    bad |= set_str(&w->rec, "prev_hash", e->prev_hash, strlen(e->prev_hash));
    bad |= set_str(&w->rec, "hash", hash, strlen(hash));
    if (bad || avro_file_writer_append_value(w->fw, &w->rec) != 0) {
        snprintf(errbuf, errbuf_size, "avro-c cannot append seq %" PRIu64 " to %s", e->seq,
                 w->tmp);
        return GOV_ERR_AVRO;
    }
    return GOV_OK;
}

gov_err_t gov_archive_writer_commit(gov_archive_writer_t *w, uint64_t first, uint64_t last,
                                    char name_out[GOV_ARCHIVE_NAME_MAX], char *errbuf,
                                    size_t errbuf_size) {
    char final[4096 + GOV_ARCHIVE_NAME_MAX];
    gov_err_t err = GOV_ERR_IO;
    int rc = avro_file_writer_close(w->fw);   /* writes the last block */
    w->fw = NULL;
    if (rc != 0) {
        snprintf(errbuf, errbuf_size, "avro-c cannot finish %s", w->tmp);
        err = GOV_ERR_AVRO;
        goto out;
    }
    if (fflush(w->fp) != 0 || fsync(fileno(w->fp)) != 0) {
        snprintf(errbuf, errbuf_size, "cannot write %s: %s", w->tmp, strerror(errno));
        goto out;
    }
    gov_archive_segment_name(first, last, name_out);
    snprintf(final, sizeof final, "%s/%s", w->dir, name_out);
    /* link, not rename: an existing segment is never replaced */
    if (link(w->tmp, final) != 0) {
        snprintf(errbuf, errbuf_size, "cannot create %s: %s", final, strerror(errno));
        err = errno == EEXIST ? GOV_ERR_EXISTS : GOV_ERR_IO;
        goto out;
    }
    if (unlink(w->tmp) == 0)
        w->tmp[0] = '\0';
    err = fsync_dir(w->dir, errbuf, errbuf_size);
out:
    return err;
}

void gov_archive_writer_free(gov_archive_writer_t *w) {
    if (w == NULL)
        return;
    if (w->fw)
        avro_file_writer_close(w->fw);
    if (w->fp)
        fclose(w->fp);
    if (w->tmp[0] != '\0' && strstr(w->tmp, "XXXXXX") == NULL)
        unlink(w->tmp);
    if (w->have_rec)
        avro_value_decref(&w->rec);
    if (w->iface)
        avro_value_iface_decref(w->iface);
    if (w->schema)
        avro_schema_decref(w->schema);
    gov_free(w);
}
