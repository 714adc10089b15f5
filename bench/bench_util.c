/* bench_util.c - see bench_util.h. */
#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *bu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (buf == NULL) {
            fprintf(stderr, "%s: out of memory\n", path);
            fclose(f);
            return NULL;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (nb == NULL)
            free(buf);
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int bu_read_lines(const char *path, bu_lines_t *out) {
    memset(out, 0, sizeof *out);
    size_t len = 0;
    char *buf = bu_read_file(path, &len);
    if (buf == NULL)
        return -1;
    size_t cap = 1024;
    out->buf = buf;
    out->line = malloc(cap * sizeof *out->line);
    out->len = malloc(cap * sizeof *out->len);
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p) {
            if (out->n == cap) {
                cap *= 2;
                out->line = realloc(out->line, cap * sizeof *out->line);
                out->len = realloc(out->len, cap * sizeof *out->len);
            }
            if (out->line == NULL || out->len == NULL) {
                fprintf(stderr, "%s: out of memory\n", path);
                return -1;
            }
            *e = '\0';
            out->line[out->n] = p;
            out->len[out->n++] = (size_t)(e - p);
        }
        p = e + 1;
    }
    if (out->n == 0) {
        fprintf(stderr, "%s: no lines\n", path);
        return -1;
    }
    return 0;
}

void bu_lines_free(bu_lines_t *l) {
    free(l->buf);
    free(l->line);
    free(l->len);
    memset(l, 0, sizeof *l);
}

json_t *bu_bundle_document(const char *path) {
    json_error_t je;
    json_t *b = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (b == NULL) {
        fprintf(stderr, "%s:%d: %s\n", path, je.line, je.text);
        return NULL;
    }
    json_t *doc = json_object_get(b, "document");
    if (!json_is_object(doc)) {
        fprintf(stderr, "%s: no \"document\" object\n", path);
        json_decref(b);
        return NULL;
    }
    json_incref(doc);
    json_decref(b);
    return doc;
}

int64_t bu_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void bu_sort_u64(uint64_t *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_u64);
}

uint64_t bu_percentile(const uint64_t *sorted, size_t n, double p) {
    if (n == 0)
        return 0;
    double rank = ceil(p / 100.0 * (double)n);
    size_t i = rank < 1 ? 0 : (size_t)rank - 1;
    if (i >= n)
        i = n - 1;
    return sorted[i];
}

static double ms3(uint64_t ns) {
    return round((double)ns / 1000.0) / 1000.0; /* ms with microsecond resolution */
}

void bu_put_latency(json_t *obj, const uint64_t *sorted, size_t n) {
    long double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += sorted[i];
    json_object_set_new(obj, "p50_ms", json_real(ms3(bu_percentile(sorted, n, 50))));
    json_object_set_new(obj, "p95_ms", json_real(ms3(bu_percentile(sorted, n, 95))));
    json_object_set_new(obj, "p99_ms", json_real(ms3(bu_percentile(sorted, n, 99))));
    json_object_set_new(obj, "p999_ms", json_real(ms3(bu_percentile(sorted, n, 99.9))));
    json_object_set_new(obj, "max_ms", json_real(ms3(n ? sorted[n - 1] : 0)));
    json_object_set_new(obj, "mean_ms", json_real(ms3(n ? (uint64_t)(sum / n) : 0)));
}
