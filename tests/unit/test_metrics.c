/* test_metrics.c - the metrics registry and its Prometheus text exposition.
 *
 * Exact expected text for small registries (hand-derived from the format
 * spec, with values chosen to be exact in binary), escaping, histogram bucket
 * arithmetic checked against a brute-force count, float round-trips over
 * random doubles, the per-family series limit, concurrent updates, the
 * registration rules, failure injection on every allocation of registration,
 * update and rendering, and the real `promtool check metrics` on the output
 * (with a control showing promtool does reject bad input).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_metrics.h"

static char *render(gov_metrics_t *reg, size_t *len_out) {
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(gov_metrics_render(reg, &text, &len), GOV_OK);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    if (len_out)
        *len_out = len;
    return text;
}

static size_t count_lines(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The value of the sample line that starts with `prefix ` (NaN if absent). */
static double sample_value(const char *text, const char *prefix) {
    size_t plen = strlen(prefix);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        if (strncmp(line, prefix, plen) == 0 && line[plen] == ' ')
            return strtod(line + plen + 1, NULL);
        if (end == NULL)
            break;
        line = end + 1;
    }
    fail_msg("no sample line for %s", prefix);
    return NAN;
}

/* ------------------------------------------------------------------------ */

/* Builds the small registry used by the exact-text and failure tests.
 * Tolerates every allocation failing (NULL registry or metrics). */
static gov_metrics_t *build_small_registry(void) {
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *events = gov_metrics_counter(
        reg, "processor_events_total", "Events handled by a processor.", 2,
        (const char *[]){"processor", "outcome"});
    gov_metric_t *version = gov_metrics_gauge(reg, "constitution_bundle_version",
                                              "Active constitution bundle version.", 0, NULL);
    gov_metric_t *latency = gov_metrics_histogram(
        reg, "policy_evaluation_duration_seconds", "Policy evaluation time.", 1,
        (const char *[]){"tenant"}, 3, (const double[]){0.001, 0.5, 2});
    (void)gov_metrics_counter(reg, "constitution_rejected_total",
                              "Bundles rejected, by reason.", 2,
                              (const char *[]){"tenant", "reason"});
    gov_metric_inc(events, (const char *[]){"gov-audit", "ok"}, 3);
    gov_metric_inc(events, (const char *[]){"gov-audit", "error"}, 1);
    gov_metric_inc(events, (const char *[]){"gov-audit", "ok"}, 2);
    gov_metric_set(version, NULL, 42);
    /* 2^-10, 0.5 and 3 are exact in binary, so the sum is exactly 3.5009765625. */
    gov_metric_observe(latency, (const char *[]){"acme"}, 0.0009765625);
    gov_metric_observe(latency, (const char *[]){"acme"}, 0.5);
    gov_metric_observe(latency, (const char *[]){"acme"}, 3);
    return reg;
}

static const char small_registry_text[] =
    "# HELP processor_events_total Events handled by a processor.\n"
    "# TYPE processor_events_total counter\n"
    "processor_events_total{processor=\"gov-audit\",outcome=\"ok\"} 5\n"
    "processor_events_total{processor=\"gov-audit\",outcome=\"error\"} 1\n"
    "# HELP constitution_bundle_version Active constitution bundle version.\n"
    "# TYPE constitution_bundle_version gauge\n"
    "constitution_bundle_version 42\n"
    "# HELP policy_evaluation_duration_seconds Policy evaluation time.\n"
    "# TYPE policy_evaluation_duration_seconds histogram\n"
    "policy_evaluation_duration_seconds_bucket{tenant=\"acme\",le=\"0.001\"} 1\n"
    "policy_evaluation_duration_seconds_bucket{tenant=\"acme\",le=\"0.5\"} 2\n"
    "policy_evaluation_duration_seconds_bucket{tenant=\"acme\",le=\"2\"} 2\n"
    "policy_evaluation_duration_seconds_bucket{tenant=\"acme\",le=\"+Inf\"} 3\n"
    "policy_evaluation_duration_seconds_sum{tenant=\"acme\"} 3.5009765625\n"
    "policy_evaluation_duration_seconds_count{tenant=\"acme\"} 3\n"
    "# HELP constitution_rejected_total Bundles rejected, by reason.\n"
    "# TYPE constitution_rejected_total counter\n";

static void test_exact_exposition(void **state) {
    (void)state;
    gov_metrics_t *reg = build_small_registry();
    size_t len;
    char *text = render(reg, &len);
    assert_string_equal(text, small_registry_text);
    assert_int_equal(len, sizeof(small_registry_text) - 1);
    gov_free(text);
    gov_metrics_free(reg);
}

static void test_empty_registry_and_label_less_series(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    char *text = render(reg, NULL);
    assert_string_equal(text, "");
    gov_free(text);
    /* A family without labels shows its single series before any update. */
    assert_non_null(gov_metrics_counter(reg, "identity_key_rotations_total",
                                        "Signing key rotations.", 0, NULL));
    assert_non_null(gov_metrics_histogram(reg, "gateway_policy_duration_seconds",
                                          "Gateway policy time.", 0, NULL, 1,
                                          (const double[]){0.25}));
    text = render(reg, NULL);
    assert_string_equal(text,
                        "# HELP identity_key_rotations_total Signing key rotations.\n"
                        "# TYPE identity_key_rotations_total counter\n"
                        "identity_key_rotations_total 0\n"
                        "# HELP gateway_policy_duration_seconds Gateway policy time.\n"
                        "# TYPE gateway_policy_duration_seconds histogram\n"
                        "gateway_policy_duration_seconds_bucket{le=\"0.25\"} 0\n"
                        "gateway_policy_duration_seconds_bucket{le=\"+Inf\"} 0\n"
                        "gateway_policy_duration_seconds_sum 0\n"
                        "gateway_policy_duration_seconds_count 0\n");
    gov_free(text);
    gov_metrics_free(reg);
}

static void test_escaping(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *m = gov_metrics_gauge(reg, "escape_test_value",
                                        "Help with \\ backslash, \"quotes\"\nand a second line.",
                                        1, (const char *[]){"tenant"});
    assert_non_null(m);
    gov_metric_set(m, (const char *[]){"a\\b\"c\nd"}, 1);
    gov_metric_set(m, (const char *[]){""}, 2);
    gov_metric_set(m, (const char *[]){NULL}, 3); /* NULL is the empty value */
    char *text = render(reg, NULL);
    assert_string_equal(text,
                        "# HELP escape_test_value Help with \\\\ backslash, \"quotes\"\\nand "
                        "a second line.\n"
                        "# TYPE escape_test_value gauge\n"
                        "escape_test_value{tenant=\"a\\\\b\\\"c\\nd\"} 1\n"
                        "escape_test_value{tenant=\"\"} 3\n");
    gov_free(text);
    gov_metrics_free(reg);
}

static void test_invalid_utf8_label_values(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *m = gov_metrics_counter(reg, "utf8_test_total", "UTF-8 test.", 1,
                                          (const char *[]){"tenant"});
    assert_non_null(m);
    gov_metric_inc(m, (const char *[]){"bad\xff"}, 1);
    gov_metric_inc(m, (const char *[]){"bad\xff"}, 1);
    /* Another invalid byte sanitizes to the same text, hence the same series. */
    gov_metric_inc(m, (const char *[]){"bad\xc0"}, 1);
    /* Valid multi-byte text is kept as is; a truncated sequence is not. */
    gov_metric_inc(m, (const char *[]){"caf\xc3\xa9"}, 1);
    gov_metric_inc(m, (const char *[]){"cut\xe2\x82"}, 1);
    /* Encoded surrogate (ED A0 80) and overlong '/' (C0 AF) are invalid. */
    gov_metric_inc(m, (const char *[]){"\xed\xa0\x80"}, 1);
    gov_metric_inc(m, (const char *[]){"\xc0\xaf"}, 1);
    assert_true(gov_metric_value(m, (const char *[]){"bad\xef\xbf\xbd"}) == 3);
    char *text = render(reg, NULL);
    assert_string_equal(text,
                        "# HELP utf8_test_total UTF-8 test.\n"
                        "# TYPE utf8_test_total counter\n"
                        "utf8_test_total{tenant=\"bad\xef\xbf\xbd\"} 3\n"
                        "utf8_test_total{tenant=\"caf\xc3\xa9\"} 1\n"
                        "utf8_test_total{tenant=\"cut\xef\xbf\xbd\xef\xbf\xbd\"} 1\n"
                        "utf8_test_total{tenant=\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"} 1\n"
                        "utf8_test_total{tenant=\"\xef\xbf\xbd\xef\xbf\xbd\"} 1\n");
    gov_free(text);
    gov_metrics_free(reg);
}

static void test_float_formatting(void **state) {
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},          {3, "3"},          {-2, "-2"},
        {0.1, "0.1"},      {1e-05, "1e-05"},  {2.5, "2.5"},
        {1234567890123.0, "1234567890123"},   {9007199254740993.0, "9007199254740992"},
        {1e20, "1e+20"},   {-0.5, "-0.5"},    {1.0 / 3, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
    };
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *g = gov_metrics_gauge(reg, "float_test_value", "Floats.", 0, NULL);
    assert_non_null(g);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char expected[128];
        gov_metric_set(g, NULL, cases[i].v);
        char *text = render(reg, NULL);
        snprintf(expected, sizeof(expected),
                 "# HELP float_test_value Floats.\n# TYPE float_test_value gauge\n"
                 "float_test_value %s\n",
                 cases[i].text);
        assert_string_equal(text, expected);
        gov_free(text);
    }
    static const struct {
        double v;
        const char *text;
    } special[] = {{INFINITY, "+Inf"}, {-INFINITY, "-Inf"}, {NAN, "NaN"}};
    for (size_t i = 0; i < 3; i++) {
        gov_metric_set(g, NULL, special[i].v);
        char *text = render(reg, NULL);
        char expected[32];
        snprintf(expected, sizeof(expected), "\nfloat_test_value %s\n", special[i].text);
        const char *line = strstr(text, "\nfloat_test_value ");
        assert_non_null(line);
        assert_string_equal(line, expected);
        gov_free(text);
    }
    gov_metrics_free(reg);
}

/* Every finite double must come back bit-identical from the text. */
static void test_float_round_trip_random(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *g = gov_metrics_gauge(reg, "round_trip_value", "Round trip.", 0, NULL);
    assert_non_null(g);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    int checked = 0;
    while (checked < 20000) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof(v));
        if (!isfinite(v))
            continue;
        if (checked % 4 == 0)
            v = (double)(int64_t)(x >> 12) / 1024.0; /* also many "ordinary" numbers */
        gov_metric_set(g, NULL, v);
        char *text = render(reg, NULL);
        const char *line = strstr(text, "\nround_trip_value ");
        assert_non_null(line);
        const char *num = line + strlen("\nround_trip_value ");
        double back = strtod(num, NULL);
        if (memcmp(&back, &v, sizeof(v)) != 0)
            fail_msg("%.17g rendered as %s", v, num);
        if (v == floor(v) && fabs(v) < 9e18 && strpbrk(num, "eE") != NULL)
            fail_msg("integer %.17g rendered with an exponent: %s", v, num);
        gov_free(text);
        checked++;
    }
    gov_metrics_free(reg);
}

/* ------------------------------------------------------------------------ */

static void test_histogram_bucket_math(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *h = gov_metrics_histogram(reg, "bucket_test_seconds", "Buckets.", 1,
                                            (const char *[]){"case"}, 3,
                                            (const double[]){1, 2, 5});
    assert_non_null(h);
    /* le is "less or equal": a value on a bound counts in that bound. */
    const double values[] = {0.5, 1, 1.0009765625, 2, 5, 5.5, 100, -3};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        gov_metric_observe(h, (const char *[]){"finite"}, values[i]);
    gov_metric_observe(h, (const char *[]){"special"}, INFINITY);
    gov_metric_observe(h, (const char *[]){"special"}, NAN); /* ignored */
    gov_metric_observe(h, (const char *[]){"special"}, -INFINITY);
    char *text = render(reg, NULL);
    assert_string_equal(text,
                        "# HELP bucket_test_seconds Buckets.\n"
                        "# TYPE bucket_test_seconds histogram\n"
                        "bucket_test_seconds_bucket{case=\"finite\",le=\"1\"} 3\n"
                        "bucket_test_seconds_bucket{case=\"finite\",le=\"2\"} 5\n"
                        "bucket_test_seconds_bucket{case=\"finite\",le=\"5\"} 6\n"
                        "bucket_test_seconds_bucket{case=\"finite\",le=\"+Inf\"} 8\n"
                        "bucket_test_seconds_sum{case=\"finite\"} 112.0009765625\n"
                        "bucket_test_seconds_count{case=\"finite\"} 8\n"
                        "bucket_test_seconds_bucket{case=\"special\",le=\"1\"} 1\n"
                        "bucket_test_seconds_bucket{case=\"special\",le=\"2\"} 1\n"
                        "bucket_test_seconds_bucket{case=\"special\",le=\"5\"} 1\n"
                        "bucket_test_seconds_bucket{case=\"special\",le=\"+Inf\"} 2\n"
                        "bucket_test_seconds_sum{case=\"special\"} NaN\n"
                        "bucket_test_seconds_count{case=\"special\"} 2\n");
    gov_free(text);
    gov_metrics_free(reg);
}

/* Random observations on the latency buckets, checked against brute force. */
static void test_histogram_random_against_brute_force(void **state) {
    (void)state;
    const size_t nb = gov_metrics_latency_bucket_count;
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *h = gov_metrics_histogram(reg, "random_latency_seconds", "Random.", 0,
                                            NULL, nb, gov_metrics_latency_buckets);
    assert_non_null(h);
    enum { N = 50000 };
    static double obs[N];
    uint64_t x = 88172645463325252ULL;
    double sum = 0;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* log-uniform over 1us..100s, and every 16th exactly on a bound */
        double v = pow(10, -6 + 8 * (double)(x >> 11) / 9007199254740992.0);
        if (i % 16 == 0)
            v = gov_metrics_latency_buckets[(x >> 3) % nb];
        obs[i] = v;
        sum += v;
        gov_metric_observe(h, NULL, v);
    }
    char *text = render(reg, NULL);
    for (size_t b = 0; b <= nb; b++) {
        uint64_t expected = 0;
        for (size_t i = 0; i < N; i++)
            expected += b == nb || obs[i] <= gov_metrics_latency_buckets[b];
        char prefix[96], le[40];
        if (b == nb)
            snprintf(le, sizeof(le), "+Inf");
        else
            snprintf(le, sizeof(le), "%.15g", gov_metrics_latency_buckets[b]);
        snprintf(prefix, sizeof(prefix), "random_latency_seconds_bucket{le=\"%s\"}", le);
        assert_true(sample_value(text, prefix) == (double)expected);
    }
    assert_true(sample_value(text, "random_latency_seconds_count") == N);
    assert_true(sample_value(text, "random_latency_seconds_sum") == sum);
    gov_free(text);
    gov_metrics_free(reg);
}

static void test_latency_buckets(void **state) {
    (void)state;
    assert_int_equal(gov_metrics_latency_bucket_count, 19);
    assert_true(gov_metrics_latency_buckets[0] == 1e-5);
    assert_true(gov_metrics_latency_buckets[gov_metrics_latency_bucket_count - 1] == 10);
    for (size_t i = 1; i < gov_metrics_latency_bucket_count; i++)
        assert_true(gov_metrics_latency_buckets[i] > gov_metrics_latency_buckets[i - 1]);
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *h = gov_metrics_histogram(reg, "latency_test_seconds", "Latency.", 0, NULL,
                                            gov_metrics_latency_bucket_count,
                                            gov_metrics_latency_buckets);
    assert_non_null(h);
    gov_metric_observe(h, NULL, 0.000012);
    char *text = render(reg, NULL);
    assert_non_null(strstr(text, "latency_test_seconds_bucket{le=\"1e-05\"} 0\n"
                                 "latency_test_seconds_bucket{le=\"2.5e-05\"} 1\n"));
    assert_non_null(strstr(text, "latency_test_seconds_bucket{le=\"0.0001\"} 1\n"));
    assert_non_null(strstr(text, "latency_test_seconds_bucket{le=\"10\"} 1\n"
                                 "latency_test_seconds_bucket{le=\"+Inf\"} 1\n"));
    assert_int_equal(count_lines(text), 2 + 20 + 2);
    gov_free(text);
    gov_metrics_free(reg);
}

/* ------------------------------------------------------------------------ */

static void test_registration_rules(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    const char *labels[] = {"tenant", "reason"};
    gov_metric_t *c = gov_metrics_counter(reg, "rules_events_total", "Events.", 2, labels);
    assert_non_null(c);
    /* Same name and type and labels: the same metric. */
    assert_ptr_equal(gov_metrics_counter(reg, "rules_events_total", "Other help.", 2, labels), c);
    /* Same name, other type or other labels: refused. */
    assert_null(gov_metrics_gauge(reg, "rules_events_total", "Events.", 2, labels));
    assert_null(gov_metrics_counter(reg, "rules_events_total", "Events.", 1, labels));
    assert_null(gov_metrics_counter(reg, "rules_events_total", "Events.", 2,
                                    (const char *[]){"tenant", "outcome"}));
    /* Histograms: same buckets give the same metric, others are refused. */
    gov_metric_t *h = gov_metrics_histogram(reg, "rules_wait_seconds", "Wait.", 0, NULL, 2,
                                            (const double[]){1, 2});
    assert_non_null(h);
    assert_ptr_equal(gov_metrics_histogram(reg, "rules_wait_seconds", "Wait.", 0, NULL, 2,
                                           (const double[]){1, 2}),
                     h);
    assert_null(gov_metrics_histogram(reg, "rules_wait_seconds", "Wait.", 0, NULL, 2,
                                      (const double[]){1, 3}));

    /* Names that break the format or promtool's lint are refused. */
    static const char *const bad_counters[] = {
        "events",         "Events_total", "9events_total",  "ev-ents_total",
        "ev:ents_total",  "__x_total",    "",               "events_counter_total",
        "requests_ms_total", "bytes_kilobytes_total",
    };
    for (size_t i = 0; i < sizeof(bad_counters) / sizeof(bad_counters[0]); i++)
        if (gov_metrics_counter(reg, bad_counters[i], "x", 0, NULL) != NULL)
            fail_msg("counter name \"%s\" was accepted", bad_counters[i]);
    assert_null(gov_metrics_counter(reg, NULL, "x", 0, NULL));
    static const char *const bad_gauges[] = {
        "queue_total", "queue_bucket", "queue_sum", "queue_count", "queue_gauge",
        "delay_milliseconds", "delay_ms", "camelCase",
    };
    for (size_t i = 0; i < sizeof(bad_gauges) / sizeof(bad_gauges[0]); i++)
        if (gov_metrics_gauge(reg, bad_gauges[i], "x", 0, NULL) != NULL)
            fail_msg("gauge name \"%s\" was accepted", bad_gauges[i]);
    /* Help must be present (promtool flags missing help). */
    assert_null(gov_metrics_gauge(reg, "queue_depth", NULL, 0, NULL));
    assert_null(gov_metrics_gauge(reg, "queue_depth", "", 0, NULL));
    /* Label names: grammar, reserved, duplicates. */
    assert_null(gov_metrics_gauge(reg, "queue_depth", "x", 1, (const char *[]){"le"}));
    assert_null(gov_metrics_gauge(reg, "queue_depth", "x", 1, (const char *[]){"quantile"}));
    assert_null(gov_metrics_gauge(reg, "queue_depth", "x", 1, (const char *[]){"__name"}));
    assert_null(gov_metrics_gauge(reg, "queue_depth", "x", 1, (const char *[]){"Tenant"}));
    assert_null(gov_metrics_gauge(reg, "queue_depth", "x", 1, (const char *[]){"a-b"}));
    assert_null(gov_metrics_gauge(reg, "queue_depth", "x", 2, (const char *[]){"a", "a"}));
    assert_null(gov_metrics_gauge(reg, "queue_depth", "x", 1, NULL));
    /* Buckets: strictly increasing and finite. */
    assert_null(gov_metrics_histogram(reg, "bad_wait_seconds", "x", 0, NULL, 2,
                                      (const double[]){2, 1}));
    assert_null(gov_metrics_histogram(reg, "bad_wait_seconds", "x", 0, NULL, 2,
                                      (const double[]){1, 1}));
    assert_null(gov_metrics_histogram(reg, "bad_wait_seconds", "x", 0, NULL, 1,
                                      (const double[]){INFINITY}));
    assert_null(gov_metrics_histogram(reg, "bad_wait_seconds", "x", 0, NULL, 1,
                                      (const double[]){NAN}));
    assert_null(gov_metrics_histogram(reg, "bad_wait_seconds", "x", 1, NULL, 0, NULL));
    assert_non_null(gov_metrics_gauge(reg, "queue_depth", "Queue depth.", 0, NULL));
    assert_null(gov_metrics_counter(NULL, "x_total", "x", 0, NULL));

    /* Only the accepted families show up. */
    char *text = render(reg, NULL);
    assert_int_equal(count_lines(text), 2 + (2 + 3 + 2) + (2 + 1));
    gov_free(text);
    gov_metrics_free(reg);
}

/* Operations that do not fit the type, and NULL metrics, are no-ops. */
static void test_type_mismatch_and_null_metric(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *c = gov_metrics_counter(reg, "mismatch_events_total", "C.", 0, NULL);
    gov_metric_t *g = gov_metrics_gauge(reg, "mismatch_level", "G.", 0, NULL);
    gov_metric_t *h = gov_metrics_histogram(reg, "mismatch_wait_seconds", "H.", 0, NULL, 0,
                                            NULL);
    assert_non_null(c);
    assert_non_null(g);
    assert_non_null(h);
    gov_metric_set(c, NULL, 5);
    gov_metric_add(c, NULL, 5);
    gov_metric_observe(c, NULL, 5);
    gov_metric_inc(c, NULL, 2);
    assert_true(gov_metric_value(c, NULL) == 2);
    gov_metric_observe(g, NULL, 5);
    gov_metric_inc(g, NULL, 2);
    gov_metric_add(g, NULL, -0.5);
    assert_true(gov_metric_value(g, NULL) == 1.5);
    gov_metric_inc(h, NULL, 1);
    gov_metric_set(h, NULL, 1);
    gov_metric_observe(h, NULL, 7);
    assert_true(gov_metric_value(h, NULL) == 0);
    gov_metric_inc(NULL, NULL, 1);
    gov_metric_set(NULL, NULL, 1);
    gov_metric_add(NULL, NULL, 1);
    gov_metric_observe(NULL, NULL, 1);
    assert_true(gov_metric_value(NULL, NULL) == 0);
    char *text = render(reg, NULL);
    assert_non_null(strstr(text, "\nmismatch_events_total 2\n"));
    assert_non_null(strstr(text, "\nmismatch_level 1.5\n"));
    assert_non_null(strstr(text, "\nmismatch_wait_seconds_bucket{le=\"+Inf\"} 1\n"
                                 "mismatch_wait_seconds_sum 7\n"
                                 "mismatch_wait_seconds_count 1\n"));
    gov_free(text);
    assert_int_equal(gov_metrics_render(NULL, &text, NULL), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_metrics_render(reg, NULL, NULL), GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_metrics_dropped(NULL), 0);
    gov_metrics_free(reg);
    gov_metrics_free(NULL);
}

static void test_series_limit(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *m = gov_metrics_counter(reg, "limit_events_total", "Limit.", 1,
                                          (const char *[]){"tenant"});
    gov_metric_t *other = gov_metrics_gauge(reg, "limit_other_value", "Other.", 1,
                                            (const char *[]){"tenant"});
    assert_non_null(m);
    assert_non_null(other);
    char value[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(value, sizeof(value), "t%d", i);
        gov_metric_inc(m, (const char *[]){value}, 1);
    }
    assert_int_equal(gov_metrics_dropped(reg), 0);
    gov_metric_inc(m, (const char *[]){"one-too-many"}, 1);
    gov_metric_inc(m, (const char *[]){"two-too-many"}, 1);
    gov_metric_inc(m, (const char *[]){"one-too-many"}, 1);
    assert_int_equal(gov_metrics_dropped(reg), 3);
    assert_true(gov_metric_value(m, (const char *[]){"one-too-many"}) == 0);
    /* Existing series keep counting; other families are not affected. */
    gov_metric_inc(m, (const char *[]){"t9999"}, 4);
    assert_true(gov_metric_value(m, (const char *[]){"t9999"}) == 5);
    assert_true(gov_metric_value(m, (const char *[]){"t0"}) == 1);
    gov_metric_set(other, (const char *[]){"fresh"}, 7);
    assert_true(gov_metric_value(other, (const char *[]){"fresh"}) == 7);
    assert_int_equal(gov_metrics_dropped(reg), 3);

    char *text = render(reg, NULL);
    /* The refused updates are exported per family: HELP, TYPE, one series. */
    assert_int_equal(count_lines(text), 2 + 10000 + 2 + 1 + 3);
    assert_null(strstr(text, "too-many"));
    assert_non_null(strstr(text, "\nmetrics_series_dropped_total{family=\"limit_events_total\"} 3\n"));
    assert_null(strstr(text, "family=\"limit_other_value\""));
    /* Creation order is kept through hash table growth. */
    const char *first = strstr(text, "limit_events_total{tenant=\"t0\"} 1\n");
    const char *second = strstr(text, "limit_events_total{tenant=\"t1\"} 1\n");
    const char *last = strstr(text, "limit_events_total{tenant=\"t9999\"} 5\n");
    assert_non_null(first);
    assert_non_null(second);
    assert_non_null(last);
    assert_true(first < second && second < last);
    gov_free(text);
    gov_metrics_free(reg);
}

/* ------------------------------------------------------------------------ */

typedef struct thread_arg {
    gov_metric_t *counter;
    gov_metric_t *histogram;
    int id;
} thread_arg_t;

enum { THREADS = 8, ITERATIONS = 20000 };

static void *hammer(void *p) {
    thread_arg_t *a = p;
    char own[16];
    snprintf(own, sizeof(own), "w%d", a->id);
    for (int i = 0; i < ITERATIONS; i++) {
        gov_metric_inc(a->counter, (const char *[]){"shared"}, 1);
        gov_metric_inc(a->counter, (const char *[]){own}, 2);
        gov_metric_observe(a->histogram, NULL, (i % 2) ? 0.25 : 4);
    }
    return NULL;
}

static void *render_loop(void *p) {
    gov_metrics_t *reg = p;
    for (int i = 0; i < 50; i++) {
        char *text = NULL;
        if (gov_metrics_render(reg, &text, NULL) != GOV_OK)
            return (void *)1;
        gov_free(text);
    }
    return NULL;
}

static void test_concurrent_updates(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *c = gov_metrics_counter(reg, "concurrent_events_total", "C.", 1,
                                          (const char *[]){"worker"});
    gov_metric_t *h = gov_metrics_histogram(reg, "concurrent_wait_seconds", "H.", 0, NULL, 1,
                                            (const double[]){1});
    assert_non_null(c);
    assert_non_null(h);
    pthread_t threads[THREADS], renderer;
    thread_arg_t args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (thread_arg_t){c, h, i};
        assert_int_equal(pthread_create(&threads[i], NULL, hammer, &args[i]), 0);
    }
    assert_int_equal(pthread_create(&renderer, NULL, render_loop, reg), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    void *render_result = NULL;
    assert_int_equal(pthread_join(renderer, &render_result), 0);
    assert_null(render_result);

    assert_true(gov_metric_value(c, (const char *[]){"shared"}) == THREADS * ITERATIONS);
    for (int i = 0; i < THREADS; i++) {
        char own[16];
        snprintf(own, sizeof(own), "w%d", i);
        assert_true(gov_metric_value(c, (const char *[]){own}) == 2.0 * ITERATIONS);
    }
    char *text = render(reg, NULL);
    assert_true(sample_value(text, "concurrent_wait_seconds_bucket{le=\"1\"}") ==
                THREADS * ITERATIONS / 2);
    assert_true(sample_value(text, "concurrent_wait_seconds_count") == THREADS * ITERATIONS);
    assert_true(sample_value(text, "concurrent_wait_seconds_sum") ==
                THREADS * (ITERATIONS / 2) * 4.25);
    gov_free(text);
    gov_metrics_free(reg);
}

/* ------------------------------------------------------------------------ */
/* promtool                                                                  */

/* Runs `promtool check metrics < file` on text; returns its exit status. */
static int promtool_check(const char *text, size_t len) {
    char path[] = "/tmp/gov_metrics_promtool_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    int status = system(cmd);
    unlink(path);
    assert_true(status != -1);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_promtool_accepts_output(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *decisions = gov_metrics_counter(
        reg, "policy_decision_total", "Policy decisions by tenant and outcome.", 3,
        (const char *[]){"tenant", "decision", "policy_id"});
    gov_metric_t *eval = gov_metrics_histogram(
        reg, "policy_evaluation_duration_seconds", "Time to evaluate a policy.", 1,
        (const char *[]){"tenant"}, gov_metrics_latency_bucket_count,
        gov_metrics_latency_buckets);
    gov_metric_t *sync = gov_metrics_gauge(
        reg, "constitution_last_sync_timestamp_seconds",
        "Unix time of the last constitution sync.\nSecond \\ line.", 1,
        (const char *[]){"tenant"});
    gov_metric_t *lag = gov_metrics_gauge(reg, "processor_consumer_lag", "Consumer lag.", 3,
                                          (const char *[]){"processor", "topic", "partition"});
    gov_metric_t *rotations = gov_metrics_counter(reg, "identity_key_rotations_total",
                                                  "Signing key rotations.", 0, NULL);
    (void)gov_metrics_counter(reg, "constitution_rejected_total", "Rejected bundles.", 2,
                              (const char *[]){"tenant", "reason"});
    assert_non_null(decisions);
    assert_non_null(eval);
    assert_non_null(sync);
    assert_non_null(lag);
    assert_non_null(rotations);
    gov_metric_inc(decisions, (const char *[]){"acme", "allow", "p-1"}, 10);
    gov_metric_inc(decisions, (const char *[]){"we\"ird\\ten\nant", "deny", "p-2"}, 1);
    gov_metric_inc(decisions, (const char *[]){"bad\xff\xfe utf8", "review", ""}, 1);
    for (int i = 0; i < 1000; i++)
        gov_metric_observe(eval, (const char *[]){"acme"}, i * 1.7e-5);
    gov_metric_observe(eval, (const char *[]){"acme"}, 50);
    gov_metric_set(sync, (const char *[]){"acme"}, 1795515360.123);
    gov_metric_set(sync, (const char *[]){"inf"}, INFINITY);
    gov_metric_set(sync, (const char *[]){"ninf"}, -INFINITY);
    gov_metric_set(sync, (const char *[]){"nan"}, NAN);
    gov_metric_set(lag, (const char *[]){"gov-audit", "identity.audit", "0"}, 12345678901234.0);
    gov_metric_set(lag, (const char *[]){"gov-audit", "identity.audit", "1"}, 1e-300);
    gov_metric_inc(rotations, NULL, 1);
    size_t len;
    char *text = render(reg, &len);
    assert_int_equal(promtool_check(text, len), 0);
    gov_free(text);
    gov_metrics_free(reg);
}

/* Control: promtool is really checking (so the test above can fail). */
static void test_promtool_rejects_bad_text(void **state) {
    (void)state;
    static const char no_total[] = "# HELP events A counter.\n# TYPE events counter\nevents 1\n";
    static const char bad_utf8[] = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"\xff\"} 1\n";
    static const char bad_escape[] = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"\"\"} 1\n";
    assert_int_not_equal(promtool_check(no_total, sizeof(no_total) - 1), 0);
    assert_int_not_equal(promtool_check(bad_utf8, sizeof(bad_utf8) - 1), 0);
    assert_int_not_equal(promtool_check(bad_escape, sizeof(bad_escape) - 1), 0);
}

/* ------------------------------------------------------------------------ */
/* Failure injection                                                         */

/* Fails allocation n = 0, 1, 2, ... during registration, updates and
 * rendering until a run needs no failure; every run must be clean (no crash;
 * leaks are caught by ASan/valgrind) and the final run must be exact. */
static void test_alloc_failures_build_and_render(void **state) {
    (void)state;
    long n;
    int failed_runs = 0;
    for (n = 0;; n++) {
        gov_alloc_fail_after(n);
        gov_metrics_t *reg = build_small_registry();
        char *text = NULL;
        size_t len = 0;
        gov_err_t err = reg ? gov_metrics_render(reg, &text, &len) : GOV_ERR_NOMEM;
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (err != GOV_OK) {
            assert_int_equal(err, GOV_ERR_NOMEM);
            assert_null(text);
        } else {
            assert_int_equal(strlen(text), len);
        }
        if (failures == 0) {
            assert_int_equal(err, GOV_OK);
            assert_string_equal(text, small_registry_text);
            gov_free(text);
            gov_metrics_free(reg);
            break;
        }
        failed_runs++;
        gov_free(text);
        gov_metrics_free(reg);
        assert_true(n < 10000);
    }
    assert_true(failed_runs > 10);
}

static void test_alloc_failures_render_only(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *m = gov_metrics_counter(reg, "render_oom_total", "OOM.", 1,
                                          (const char *[]){"tenant"});
    assert_non_null(m);
    char value[32];
    for (int i = 0; i < 2000; i++) { /* enough text for the buffer to grow */
        snprintf(value, sizeof(value), "tenant-%d", i);
        gov_metric_inc(m, (const char *[]){value}, (uint64_t)i);
    }
    char *expected = render(reg, NULL);
    for (long n = 0;; n++) {
        char *text = (char *)"sentinel";
        gov_alloc_fail_after(n);
        gov_err_t err = gov_metrics_render(reg, &text, NULL);
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (failures == 0) {
            assert_int_equal(err, GOV_OK);
            assert_string_equal(text, expected);
            gov_free(text);
            assert_true(n > 3);
            break;
        }
        assert_int_equal(err, GOV_ERR_NOMEM);
        assert_null(text);
    }
    gov_free(expected);
    gov_metrics_free(reg);
}

/* Series creation (with a label value that needs sanitizing) under failure:
 * the update is lost, nothing leaks, and the next update works. */
static void test_alloc_failures_series_creation(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    gov_metric_t *h = gov_metrics_histogram(reg, "series_oom_seconds", "OOM.", 2,
                                            (const char *[]){"tenant", "route"}, 2,
                                            (const double[]){1, 2});
    assert_non_null(h);
    for (long n = 0;; n++) {
        gov_alloc_fail_after(n);
        gov_metric_observe(h, (const char *[]){"bad\xff", "/v1/x"}, 1.5);
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        char *text = render(reg, NULL);
        int present = strstr(text, "series_oom_seconds_count{tenant=\"bad\xef\xbf\xbd\","
                                   "route=\"/v1/x\"} 1\n") != NULL;
        gov_free(text);
        if (failures == 0) {
            assert_true(present);
            assert_true(n >= 4);
            break;
        }
        assert_false(present);
    }
    gov_metrics_free(reg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_exposition),
        cmocka_unit_test(test_empty_registry_and_label_less_series),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_invalid_utf8_label_values),
        cmocka_unit_test(test_float_formatting),
        cmocka_unit_test(test_float_round_trip_random),
        cmocka_unit_test(test_histogram_bucket_math),
        cmocka_unit_test(test_histogram_random_against_brute_force),
        cmocka_unit_test(test_latency_buckets),
        cmocka_unit_test(test_registration_rules),
        cmocka_unit_test(test_type_mismatch_and_null_metric),
        cmocka_unit_test(test_series_limit),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_promtool_accepts_output),
        cmocka_unit_test(test_promtool_rejects_bad_text),
        cmocka_unit_test(test_alloc_failures_build_and_render),
        cmocka_unit_test(test_alloc_failures_render_only),
        cmocka_unit_test(test_alloc_failures_series_creation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
