/* bench_util.h - small helpers shared by the bench/ tools (make bench).
 *
 * Files, NDJSON request lists, the constitution document of a bundle,
 * monotonic time and exact percentiles.  Nothing here decides anything
 * about policy: the tools call libgov for that.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* The whole file, NUL-terminated (*len bytes without the NUL), or NULL
 * with a message on stderr. */
char *bu_read_file(const char *path, size_t *len);

/* Non-empty lines of a file (the request lists are one JSON object a
 * line).  line[i] points into buf and is NUL-terminated. */
typedef struct bu_lines {
    char *buf;
    char **line;
    size_t *len;
    size_t n;
} bu_lines_t;

int bu_read_lines(const char *path, bu_lines_t *out);
void bu_lines_free(bu_lines_t *l);

/* The "document" of a constitution bundle file (new reference), or NULL
 * with a message on stderr. */
json_t *bu_bundle_document(const char *path);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t bu_now_ns(void);

/* Sorts v[0..n) ascending (in place). */
void bu_sort_u64(uint64_t *v, size_t n);

/* Nearest-rank percentile of a sorted array: the smallest value such that
 * at least p percent of the values are <= it (v[ceil(p/100*n)-1]).  0 when
 * n == 0. */
uint64_t bu_percentile(const uint64_t *sorted, size_t n, double p);

/* Percentiles of sorted nanosecond samples as JSON members
 * "p50_ms","p95_ms","p99_ms","p999_ms","max_ms","mean_ms" (3 decimals
 * for ms values below 10, else 3 as well; written as numbers). */
void bu_put_latency(json_t *obj, const uint64_t *sorted, size_t n);

#endif
