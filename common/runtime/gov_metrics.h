/* gov_metrics.h - a Prometheus metrics registry with text exposition.
 *
 * A registry holds metric families (counter, gauge, histogram), each with a
 * fixed list of label names declared at registration.  Series are created on
 * first use of a label-value combination.  gov_metrics_render writes the
 * Prometheus text exposition format 0.0.4 (HELP, TYPE, escaped label values,
 * histogram _bucket{le=...}/_sum/_count with a final +Inf bucket), clean
 * under `promtool check metrics`.
 *
 *   gov_metric_t *m = gov_metrics_counter(reg, "processor_events_total",
 *       "Events handled by a processor.", 3, (const char *[]){"processor",
 *       "topic", "outcome"});
 *   gov_metric_inc(m, (const char *[]){"gov-audit", "identity.audit", "ok"}, 1);
 *
 * Values are doubles for gauges and histogram sums; counters are uint64.
 * Label values are copied.  A family may hold at most 10000 series; past
 * that, new series are counted into gov_metrics_dropped and exported as
 * metrics_series_dropped_total{family}, and ignored, so a
 * hostile label value (e.g. a tenant name) cannot exhaust memory.
 *
 * Thread-safety: all functions are thread-safe (one mutex per family; the
 * hot path of an existing series takes it briefly).
 */
#ifndef GOV_METRICS_H
#define GOV_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"

typedef struct gov_metrics gov_metrics_t;
typedef struct gov_metric gov_metric_t;

gov_metrics_t *gov_metrics_new(void);
void gov_metrics_free(gov_metrics_t *reg);

/* Registration returns a metric owned by the registry (borrowed), or NULL on
 * allocation failure or when the name is already registered with another
 * type.  Registering the same name and type again returns the same metric.
 * label_names is copied; nlabels may be 0 (label arrays may then be NULL). */
gov_metric_t *gov_metrics_counter(gov_metrics_t *reg, const char *name,
                                  const char *help, size_t nlabels,
                                  const char *const *label_names);
gov_metric_t *gov_metrics_gauge(gov_metrics_t *reg, const char *name,
                                const char *help, size_t nlabels,
                                const char *const *label_names);
/* buckets: strictly increasing upper bounds, copied; +Inf is implicit. */
gov_metric_t *gov_metrics_histogram(gov_metrics_t *reg, const char *name,
                                    const char *help, size_t nlabels,
                                    const char *const *label_names,
                                    size_t nbuckets, const double *buckets);

/* label_values has exactly the registered number of entries. */
void gov_metric_inc(gov_metric_t *m, const char *const *label_values, uint64_t n);
void gov_metric_set(gov_metric_t *m, const char *const *label_values, double v);
void gov_metric_add(gov_metric_t *m, const char *const *label_values, double v);
void gov_metric_observe(gov_metric_t *m, const char *const *label_values, double v);

/* Reads a counter or gauge value (0 when the series does not exist). */
double gov_metric_value(gov_metric_t *m, const char *const *label_values);

/* Renders every family into a new NUL-terminated buffer (gov_free). */
gov_err_t gov_metrics_render(gov_metrics_t *reg, char **out, size_t *len);

/* Series refused because a family reached its series limit. */
uint64_t gov_metrics_dropped(gov_metrics_t *reg);

/* Buckets from 10 us to 10 s, fine enough to show microseconds. */
extern const double gov_metrics_latency_buckets[];
extern const size_t gov_metrics_latency_bucket_count;

#endif /* GOV_METRICS_H */
