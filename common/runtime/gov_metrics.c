/* gov_metrics.c - Prometheus registry and text exposition (format 0.0.4).
 *
 * A registry is an append-only list of families; a family owns its series in
 * a creation-ordered list plus a chained hash table keyed by the label values
 * (FNV-1a), so the hot path on an existing series is: hash the values outside
 * any lock, take the family mutex, walk one short chain, add, unlock.  No
 * allocation happens on that path unless a label value is invalid UTF-8.
 *
 * Rendering walks families in registration order and series in creation
 * order, so the output is deterministic.  Histogram series store one
 * non-cumulative count per bucket (an observation increments exactly one
 * slot, found by binary search); the cumulative _bucket values and _count are
 * summed at render time, so _count always equals the +Inf bucket.
 *
 * What keeps /metrics clean under `promtool check metrics`, by construction:
 *   - names are checked at registration against the exposition grammar and
 *     promtool's lint rules (snake_case, counters end in _total and nothing
 *     else does, no _bucket/_sum/_count suffixes, no type or abbreviated or
 *     non-base unit in the name, no "le"/"quantile" labels, non-empty help);
 *     a name that would be flagged is refused (registration returns NULL);
 *   - label values are made valid UTF-8 (bad bytes become U+FFFD) before they
 *     are looked up or stored, since one bad byte would fail the whole scrape;
 *   - floats are printed in the shortest of %.15g/%.16g/%.17g that reads back
 *     to the same double, integers without exponent, and NaN/+Inf/-Inf.
 *
 * What it does not do: summaries, timestamps, exemplars, OpenMetrics, series
 * removal.  A family holds at most MAX_SERIES_PER_FAMILY series; each update
 * that would create one more is counted in `dropped` and ignored, and
 * exported as metrics_series_dropped_total{family} (rendered only once a
 * family dropped one).  An update
 * whose series cannot be allocated is ignored (updates return nothing), so
 * under memory pressure a metric may lag; it never crashes.
 *
 * Floats are formatted with snprintf, so the process must keep LC_NUMERIC at
 * "C" (the default unless the binary calls setlocale).
 */
#include "gov_metrics.h"
#include "gov_util.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_buf.h"

#define MAX_SERIES_PER_FAMILY 10000
#define MAX_LABELS 16
#define INITIAL_SLOTS 16

const double gov_metrics_latency_buckets[] = {
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
    2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
const size_t gov_metrics_latency_bucket_count =
    sizeof(gov_metrics_latency_buckets) / sizeof(gov_metrics_latency_buckets[0]);

typedef enum family_kind {
    FAMILY_COUNTER,
    FAMILY_GAUGE,
    FAMILY_HISTOGRAM,
} family_kind_t;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

typedef struct series {
    struct series *next_created; /* creation order, for rendering */
    struct series *next_in_slot; /* hash chain */
    uint64_t hash;
    char **label_values; /* nlabels owned copies, valid UTF-8 */
    uint64_t counter;
    double gauge;
    double hist_sum;
    uint64_t *hist_counts; /* nbuckets + 1 non-cumulative; last is +Inf */
} series_t;

struct gov_metric {
    struct gov_metric *next; /* registration order; guarded by reg->lock */
    gov_metrics_t *reg;
    family_kind_t kind;
    char *name;
    char *help;
    size_t nlabels;
    char **label_names;
    size_t nbuckets;
    double *buckets;
    char **bucket_le; /* the rendered upper bounds, computed once */

    pthread_mutex_t lock; /* guards everything below */
    series_t *first, *last;
    size_t nseries;
    series_t **slots;
    size_t nslots; /* power of two */
    uint64_t dropped; /* updates refused because the family was full */
};

struct gov_metrics {
    pthread_mutex_t lock; /* guards the family list */
    gov_metric_t *first, *last;
    atomic_uint_least64_t dropped;
};

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

static int ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

/* 1 when one of the '_'-separated words of name equals word. */
static int has_word(const char *name, const char *word) {
    size_t wl = strlen(word);
    for (const char *p = name; *p;) {
        const char *end = strchr(p, '_');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == wl && memcmp(p, word, n) == 0)
            return 1;
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

/* Lower-case snake_case identifier, not reserved ("__" prefix). */
static int valid_identifier(const char *s) {
    if (s == NULL || *s == '\0' || (s[0] == '_' && s[1] == '_'))
        return 0;
    if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
        return 0;
    for (const char *p = s + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

/* The exposition grammar plus promtool's lint rules, so that a registered
 * name can never make `promtool check metrics` complain. */
static int valid_metric_name(family_kind_t kind, const char *name) {
    /* Abbreviated units and units that have a base unit (promtool lint). */
    static const char *const banned_words[] = {
        "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m",
        "h", "d", "milliseconds", "microseconds", "nanoseconds", "minutes",
        "hours", "days", "weeks", "kilobytes", "megabytes", "gigabytes",
        "terabytes", "bits", "millis", "micros", "nanos",
    };
    if (!valid_identifier(name))
        return 0;
    if ((kind == FAMILY_COUNTER) != ends_with(name, "_total"))
        return 0;
    if (ends_with(name, "_bucket") || ends_with(name, "_sum") || ends_with(name, "_count"))
        return 0;
    for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
        if (has_word(name, kind_names[i]))
            return 0;
    for (size_t i = 0; i < sizeof(banned_words) / sizeof(banned_words[0]); i++)
        if (has_word(name, banned_words[i]))
            return 0;
    return 1;
}

static int valid_label_names(size_t nlabels, const char *const *label_names) {
    if (nlabels > MAX_LABELS || (nlabels > 0 && label_names == NULL))
        return 0;
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_identifier(label_names[i]) || strcmp(label_names[i], "le") == 0 ||
            strcmp(label_names[i], "quantile") == 0)
            return 0;
        for (size_t j = 0; j < i; j++)
            if (strcmp(label_names[i], label_names[j]) == 0)
                return 0;
    }
    return 1;
}

static int valid_buckets(size_t nbuckets, const double *buckets) {
    if (nbuckets > 0 && buckets == NULL)
        return 0;
    for (size_t i = 0; i < nbuckets; i++) {
        if (!isfinite(buckets[i]))
            return 0;
        if (i > 0 && !(buckets[i] > buckets[i - 1]))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Numbers                                                                   */

/* Writes v so that it parses back to the same double: NaN, +Inf, -Inf,
 * integers without exponent, otherwise the shortest of %.15g..%.17g that
 * round-trips.  buf holds at least 32 bytes. */
static void format_double(double v, char *buf, size_t size) {
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9.2e18) {
        snprintf(buf, size, "%.0f", v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, size, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Rendering helpers over gov_buf (its first failure sticks).               */

static void put_double(gov_buf_t *b, double v) {
    char num[40];
    format_double(v, num, sizeof(num));
    gov_buf_puts(b, num);
}

/* HELP text escapes '\' and newline; label values also escape '"'. */
static void put_escaped(gov_buf_t *b, const char *s, int escape_quote) {
    const char *run = s;
    for (const char *p = s; *p; p++) {
        const char *esc = NULL;
        if (*p == '\\')
            esc = "\\\\";
        else if (*p == '\n')
            esc = "\\n";
        else if (*p == '"' && escape_quote)
            esc = "\\\"";
        if (esc) {
            gov_buf_put(b, run, (size_t)(p - run));
            gov_buf_puts(b, esc);
            run = p + 1;
        }
    }
    gov_buf_puts(b, run);
}

/* ------------------------------------------------------------------------ */
/* Series lookup                                                             */

/* Label values as looked up and stored: NULL mapped to "", invalid UTF-8
 * replaced by owned sanitized copies, plus their hash. */
typedef struct series_key {
    const char *values[MAX_LABELS];
    char *owned[MAX_LABELS];
    size_t n;
    uint64_t hash;
} series_key_t;

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    /* 0xff never occurs in UTF-8, so ("a","b") and ("ab","") differ. */
    h ^= 0xff;
    h *= 1099511628211ULL;
    return h;
}

static void key_release(series_key_t *key) {
    for (size_t i = 0; i < key->n; i++)
        gov_free(key->owned[i]);
}

/* Returns 0, or -1 on allocation failure (nothing left to release). */
static int key_prepare(const gov_metric_t *m, const char *const *label_values,
                       series_key_t *key) {
    key->n = m->nlabels;
    key->hash = 14695981039346656037ULL;
    for (size_t i = 0; i < key->n; i++) {
        const char *v = label_values ? label_values[i] : NULL;
        key->owned[i] = NULL;
        if (v == NULL)
            v = "";
        if (!gov_utf8_valid(v, strlen(v))) {
            key->owned[i] = gov_utf8_sanitize(v, (size_t)-1);
            if (key->owned[i] == NULL) {
                key->n = i;
                key_release(key);
                return -1;
            }
            v = key->owned[i];
        }
        key->values[i] = v;
        key->hash = fnv1a(key->hash, v);
    }
    return 0;
}

static void series_free(const gov_metric_t *m, series_t *s) {
    if (s == NULL)
        return;
    if (s->label_values) {
        for (size_t i = 0; i < m->nlabels; i++)
            gov_free(s->label_values[i]);
        gov_free(s->label_values);
    }
    gov_free(s->hist_counts);
    gov_free(s);
}

/* Caller holds m->lock.  Returns the series or NULL when there is none. */
static series_t *series_find_locked(const gov_metric_t *m, const series_key_t *key) {
    for (series_t *s = m->slots[key->hash & (m->nslots - 1)]; s; s = s->next_in_slot) {
        if (s->hash != key->hash)
            continue;
        size_t i = 0;
        while (i < m->nlabels && strcmp(s->label_values[i], key->values[i]) == 0)
            i++;
        if (i == m->nlabels)
            return s;
    }
    return NULL;
}

/* Doubles the hash table; on allocation failure keeps the old one (chains
 * just get longer).  Caller holds m->lock.  Cost: O(nseries). */
static void slots_grow_locked(gov_metric_t *m) {
    size_t nslots = m->nslots * 2;
    series_t **slots = gov_calloc(nslots, sizeof(*slots));
    if (slots == NULL)
        return;
    for (series_t *s = m->first; s; s = s->next_created) {
        size_t i = s->hash & (nslots - 1);
        s->next_in_slot = slots[i];
        slots[i] = s;
    }
    gov_free(m->slots);
    m->slots = slots;
    m->nslots = nslots;
}

/* Finds the series for key or creates it.  Returns NULL when the family is
 * full (counted as dropped) or on allocation failure.  Caller holds m->lock.
 * Cost: one hash chain walk; creation O(nlabels + nbuckets). */
static series_t *series_get_locked(gov_metric_t *m, const series_key_t *key) {
    series_t *s = series_find_locked(m, key);
    if (s)
        return s;
    if (m->nseries >= MAX_SERIES_PER_FAMILY) {
        atomic_fetch_add(&m->reg->dropped, 1);
        m->dropped++;
        return NULL;
    }
    s = gov_calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->hash = key->hash;
    if (m->nlabels > 0) {
        s->label_values = gov_calloc(m->nlabels, sizeof(char *));
        if (s->label_values == NULL)
            goto fail;
        for (size_t i = 0; i < m->nlabels; i++) {
            s->label_values[i] = gov_strdup(key->values[i]);
            if (s->label_values[i] == NULL)
                goto fail;
        }
    }
    if (m->kind == FAMILY_HISTOGRAM) {
        s->hist_counts = gov_calloc(m->nbuckets + 1, sizeof(uint64_t));
        if (s->hist_counts == NULL)
            goto fail;
    }
    size_t slot = s->hash & (m->nslots - 1);
    s->next_in_slot = m->slots[slot];
    m->slots[slot] = s;
    if (m->last)
        m->last->next_created = s;
    else
        m->first = s;
    m->last = s;
    m->nseries++;
    if (m->nseries > m->nslots)
        slots_grow_locked(m);
    return s;
fail:
    series_free(m, s);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Registry                                                                  */

gov_metrics_t *gov_metrics_new(void) {
    gov_metrics_t *reg = gov_calloc(1, sizeof(*reg));
    if (reg == NULL)
        return NULL;
    if (pthread_mutex_init(&reg->lock, NULL) != 0) {
        gov_free(reg);
        return NULL;
    }
    atomic_init(&reg->dropped, 0);
    return reg;
}

static void family_free(gov_metric_t *m, int lock_initialized) {
    if (m == NULL)
        return;
    series_t *s = m->first;
    while (s) {
        series_t *next = s->next_created;
        series_free(m, s);
        s = next;
    }
    if (m->label_names) {
        for (size_t i = 0; i < m->nlabels; i++)
            gov_free(m->label_names[i]);
        gov_free(m->label_names);
    }
    if (m->bucket_le) {
        for (size_t i = 0; i < m->nbuckets; i++)
            gov_free(m->bucket_le[i]);
        gov_free(m->bucket_le);
    }
    gov_free(m->buckets);
    gov_free(m->slots);
    gov_free(m->name);
    gov_free(m->help);
    if (lock_initialized)
        pthread_mutex_destroy(&m->lock);
    gov_free(m);
}

void gov_metrics_free(gov_metrics_t *reg) {
    if (reg == NULL)
        return;
    gov_metric_t *m = reg->first;
    while (m) {
        gov_metric_t *next = m->next;
        family_free(m, 1);
        m = next;
    }
    pthread_mutex_destroy(&reg->lock);
    gov_free(reg);
}

/* Same labels (and buckets): registering again may return the family. */
static int family_same_shape(const gov_metric_t *m, size_t nlabels,
                             const char *const *label_names, size_t nbuckets,
                             const double *buckets) {
    if (m->nlabels != nlabels || m->nbuckets != nbuckets)
        return 0;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(m->label_names[i], label_names[i]) != 0)
            return 0;
    for (size_t i = 0; i < nbuckets; i++)
        if (m->buckets[i] != buckets[i])
            return 0;
    return 1;
}

/* Returns a new family (family_free) with its copies made, or NULL. */
static gov_metric_t *family_new(gov_metrics_t *reg, family_kind_t kind,
                                const char *name, const char *help, size_t nlabels,
                                const char *const *label_names, size_t nbuckets,
                                const double *buckets) {
    gov_metric_t *m = gov_calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->reg = reg;
    m->kind = kind;
    m->nlabels = nlabels;
    m->nbuckets = nbuckets;
    m->name = gov_strdup(name);
    m->help = gov_strdup(help);
    m->slots = gov_calloc(INITIAL_SLOTS, sizeof(*m->slots));
    m->nslots = INITIAL_SLOTS;
    if (m->name == NULL || m->help == NULL || m->slots == NULL)
        goto fail;
    if (nlabels > 0) {
        m->label_names = gov_calloc(nlabels, sizeof(char *));
        if (m->label_names == NULL)
            goto fail;
        for (size_t i = 0; i < nlabels; i++) {
            m->label_names[i] = gov_strdup(label_names[i]);
            if (m->label_names[i] == NULL)
                goto fail;
        }
    }
    if (nbuckets > 0) {
        m->buckets = gov_calloc(nbuckets, sizeof(double));
        m->bucket_le = gov_calloc(nbuckets, sizeof(char *));
        if (m->buckets == NULL || m->bucket_le == NULL)
            goto fail;
        for (size_t i = 0; i < nbuckets; i++) {
            char num[40];
            m->buckets[i] = buckets[i];
            format_double(buckets[i], num, sizeof(num));
            m->bucket_le[i] = gov_strdup(num);
            if (m->bucket_le[i] == NULL)
                goto fail;
        }
    }
    if (pthread_mutex_init(&m->lock, NULL) != 0)
        goto fail;
    return m;
fail:
    family_free(m, 0);
    return NULL;
}

/* Registration: validates, then returns the existing family of that name
 * (same type and shape) or appends a new one.  A family without labels gets
 * its single series now, so it renders 0 before its first update.
 * Cost: O(families) under the registry lock. */
static gov_metric_t *family_register(gov_metrics_t *reg, family_kind_t kind,
                                     const char *name, const char *help,
                                     size_t nlabels, const char *const *label_names,
                                     size_t nbuckets, const double *buckets) {
    gov_metric_t *result = NULL;
    if (reg == NULL || !valid_metric_name(kind, name) || help == NULL ||
        help[0] == '\0' || !gov_utf8_valid(help, strlen(help)) || !valid_label_names(nlabels, label_names) ||
        !valid_buckets(nbuckets, buckets))
        return NULL;

    pthread_mutex_lock(&reg->lock);
    for (gov_metric_t *m = reg->first; m; m = m->next) {
        if (strcmp(m->name, name) == 0) {
            if (m->kind == kind &&
                family_same_shape(m, nlabels, label_names, nbuckets, buckets))
                result = m;
            goto out;
        }
    }
    gov_metric_t *m = family_new(reg, kind, name, help, nlabels, label_names,
                                 nbuckets, buckets);
    if (m == NULL)
        goto out;
    if (nlabels == 0) {
        series_key_t key;
        if (key_prepare(m, NULL, &key) != 0 || series_get_locked(m, &key) == NULL) {
            family_free(m, 1);
            goto out;
        }
        key_release(&key);
    }
    if (reg->last)
        reg->last->next = m;
    else
        reg->first = m;
    reg->last = m;
    result = m;
out:
    pthread_mutex_unlock(&reg->lock);
    return result;
}

gov_metric_t *gov_metrics_counter(gov_metrics_t *reg, const char *name,
                                  const char *help, size_t nlabels,
                                  const char *const *label_names) {
    return family_register(reg, FAMILY_COUNTER, name, help, nlabels, label_names, 0, NULL);
}

gov_metric_t *gov_metrics_gauge(gov_metrics_t *reg, const char *name,
                                const char *help, size_t nlabels,
                                const char *const *label_names) {
    return family_register(reg, FAMILY_GAUGE, name, help, nlabels, label_names, 0, NULL);
}

gov_metric_t *gov_metrics_histogram(gov_metrics_t *reg, const char *name,
                                    const char *help, size_t nlabels,
                                    const char *const *label_names,
                                    size_t nbuckets, const double *buckets) {
    return family_register(reg, FAMILY_HISTOGRAM, name, help, nlabels, label_names,
                           nbuckets, buckets);
}

/* ------------------------------------------------------------------------ */
/* Updates.  A NULL metric (failed registration) and a call that does not fit
 * the type (set on a counter, observe on a gauge, ...) are no-ops.          */

typedef enum update_op {
    UPDATE_INC,
    UPDATE_SET,
    UPDATE_ADD,
    UPDATE_OBSERVE,
} update_op_t;

/* Index of the first bucket whose bound is >= v, nbuckets for +Inf. */
static size_t bucket_index(const gov_metric_t *m, double v) {
    size_t lo = 0, hi = m->nbuckets;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= m->buckets[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void metric_update(gov_metric_t *m, const char *const *label_values,
                          update_op_t op, uint64_t n, double v) {
    series_key_t key;
    if (key_prepare(m, label_values, &key) != 0)
        return;
    pthread_mutex_lock(&m->lock);
    series_t *s = series_get_locked(m, &key);
    if (s != NULL) {
        switch (op) {
        case UPDATE_INC:
            if (m->kind == FAMILY_COUNTER)
                s->counter += n;
            else
                s->gauge += (double)n;
            break;
        case UPDATE_SET:
            s->gauge = v;
            break;
        case UPDATE_ADD:
            s->gauge += v;
            break;
        case UPDATE_OBSERVE:
            s->hist_counts[bucket_index(m, v)]++;
            s->hist_sum += v;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    key_release(&key);
}

void gov_metric_inc(gov_metric_t *m, const char *const *label_values, uint64_t n) {
    if (m == NULL || m->kind == FAMILY_HISTOGRAM)
        return;
    metric_update(m, label_values, UPDATE_INC, n, 0);
}

void gov_metric_set(gov_metric_t *m, const char *const *label_values, double v) {
    if (m == NULL || m->kind != FAMILY_GAUGE)
        return;
    metric_update(m, label_values, UPDATE_SET, 0, v);
}

void gov_metric_add(gov_metric_t *m, const char *const *label_values, double v) {
    if (m == NULL || m->kind != FAMILY_GAUGE)
        return;
    metric_update(m, label_values, UPDATE_ADD, 0, v);
}

/* A NaN observation is ignored: it would make _sum NaN forever. */
void gov_metric_observe(gov_metric_t *m, const char *const *label_values, double v) {
    if (m == NULL || m->kind != FAMILY_HISTOGRAM || isnan(v))
        return;
    metric_update(m, label_values, UPDATE_OBSERVE, 0, v);
}

double gov_metric_value(gov_metric_t *m, const char *const *label_values) {
    double value = 0;
    series_key_t key;
    if (m == NULL || m->kind == FAMILY_HISTOGRAM || key_prepare(m, label_values, &key) != 0)
        return 0;
    pthread_mutex_lock(&m->lock);
    const series_t *s = series_find_locked(m, &key);
    if (s != NULL)
        value = m->kind == FAMILY_COUNTER ? (double)s->counter : s->gauge;
    pthread_mutex_unlock(&m->lock);
    key_release(&key);
    return value;
}

uint64_t gov_metrics_dropped(gov_metrics_t *reg) {
    return reg ? atomic_load(&reg->dropped) : 0;
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                 */

/* Writes `name{l1="v1",...,le="x"} ` (braces omitted when empty). */
static void render_series_name(gov_buf_t *b, const gov_metric_t *m, const char *suffix,
                               const series_t *s, const char *le) {
    gov_buf_puts(b, m->name);
    gov_buf_puts(b, suffix);
    if (m->nlabels > 0 || le != NULL) {
        gov_buf_puts(b, "{");
        for (size_t i = 0; i < m->nlabels; i++) {
            if (i > 0)
                gov_buf_puts(b, ",");
            gov_buf_puts(b, m->label_names[i]);
            gov_buf_puts(b, "=\"");
            put_escaped(b, s->label_values[i], 1);
            gov_buf_puts(b, "\"");
        }
        if (le != NULL) {
            if (m->nlabels > 0)
                gov_buf_puts(b, ",");
            gov_buf_puts(b, "le=\"");
            gov_buf_puts(b, le);
            gov_buf_puts(b, "\"");
        }
        gov_buf_puts(b, "}");
    }
    gov_buf_puts(b, " ");
}

/* Caller holds m->lock.  Cost: O(nseries * (nlabels + nbuckets)). */
static void render_family_locked(gov_buf_t *b, const gov_metric_t *m) {
    gov_buf_puts(b, "# HELP ");
    gov_buf_puts(b, m->name);
    gov_buf_puts(b, " ");
    put_escaped(b, m->help, 0);
    gov_buf_puts(b, "\n# TYPE ");
    gov_buf_puts(b, m->name);
    gov_buf_puts(b, " ");
    gov_buf_puts(b, kind_names[m->kind]);
    gov_buf_puts(b, "\n");
    for (const series_t *s = m->first; s; s = s->next_created) {
        switch (m->kind) {
        case FAMILY_COUNTER:
            render_series_name(b, m, "", s, NULL);
            gov_buf_put_u64(b, s->counter);
            gov_buf_puts(b, "\n");
            break;
        case FAMILY_GAUGE:
            render_series_name(b, m, "", s, NULL);
            put_double(b, s->gauge);
            gov_buf_puts(b, "\n");
            break;
        case FAMILY_HISTOGRAM: {
            uint64_t cumulative = 0;
            for (size_t i = 0; i <= m->nbuckets; i++) {
                cumulative += s->hist_counts[i];
                render_series_name(b, m, "_bucket", s,
                                   i < m->nbuckets ? m->bucket_le[i] : "+Inf");
                gov_buf_put_u64(b, cumulative);
                gov_buf_puts(b, "\n");
            }
            render_series_name(b, m, "_sum", s, NULL);
            put_double(b, s->hist_sum);
            gov_buf_puts(b, "\n");
            render_series_name(b, m, "_count", s, NULL);
            gov_buf_put_u64(b, cumulative);
            gov_buf_puts(b, "\n");
            break;
        }
        }
    }
}

gov_err_t gov_metrics_render(gov_metrics_t *reg, char **out, size_t *len) {
    gov_buf_t b;
    if (reg == NULL || out == NULL)
        return GOV_ERR_INVALID_ARG;
    *out = NULL;
    if (len)
        *len = 0;
    gov_buf_init(&b, 0);
    pthread_mutex_lock(&reg->lock);
    for (gov_metric_t *m = reg->first; m && b.err == GOV_OK; m = m->next) {
        pthread_mutex_lock(&m->lock);
        render_family_locked(&b, m);
        pthread_mutex_unlock(&m->lock);
    }
    /* The refused series are exported, so a full family is visible rather
     * than silently frozen: one series per family that dropped any. */
    int header = 0;
    for (gov_metric_t *m = reg->first; m && b.err == GOV_OK; m = m->next) {
        pthread_mutex_lock(&m->lock);
        uint64_t dropped = m->dropped;
        pthread_mutex_unlock(&m->lock);
        if (dropped == 0)
            continue;
        if (!header)
            gov_buf_puts(&b, "# HELP metrics_series_dropped_total Updates refused because their "
                             "metric family reached its series limit.\n"
                             "# TYPE metrics_series_dropped_total counter\n");
        header = 1;
        gov_buf_puts(&b, "metrics_series_dropped_total{family=\"");
        gov_buf_puts(&b, m->name);
        gov_buf_puts(&b, "\"} ");
        gov_buf_put_u64(&b, dropped);
        gov_buf_puts(&b, "\n");
    }
    pthread_mutex_unlock(&reg->lock);
    /* An empty registry renders "". */
    return gov_buf_finish(&b, out, len);
}
