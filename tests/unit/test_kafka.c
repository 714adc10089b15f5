/* test_kafka.c - the producer's handling of librdkafka's fatal state, without
 * a broker.
 *
 * gov_kafka_producer_test_fatal puts the real librdkafka handle in its
 * genuine fatal state (rd_kafka_test_fatal_error: the same code path a
 * broker-side fatal error takes; produce then fails with
 * RD_KAFKA_RESP_ERR__FATAL).  The broker address is a closed loopback port:
 * nothing here needs one to be reachable, messages only queue.  Checked: each
 * fatal event recreates the handle exactly once (also with several threads
 * producing while it happens - the ASan build catches a handle used after it
 * was destroyed), the count reaches kafka_producer_recreated_total, and
 * after GOV_KAFKA_RECREATE_LIMIT recreations within the window the next
 * fatal error is final with a clear error, which /readyz shows.  The broker-side fatal error
 * itself is provoked in tests/integration/test_kafka_fatal.c.
 * Also (REVIEW11): a full local queue fails gov_kafka_produce and a group at
 * once (gov-edge's HTTP threads must not wait 500 ms for room) and counts
 * it; gov_kafka_producer_purge runs a pending group's callback now.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_kafka.h"
#include "gov_log.h"
#include "gov_metrics.h"
#include "gov_status.h"
#include "gov_time.h"

/* Port 1 on loopback: nothing listens there; librdkafka's own log is kept
 * below error so its connection failures do not drown the output. */
static const char *const quiet[] = {"log_level", "2", NULL};

static gov_kafka_producer_t *producer_new(gov_metrics_t *reg, gov_status_t *status) {
    gov_kafka_producer_t *p = NULL;
    char eb[256] = "";
    gov_err_t err = gov_kafka_producer_new("127.0.0.1:1", "test-kafka", quiet, &p, eb, sizeof eb);
    if (err != GOV_OK)
        fail_msg("producer: %s", eb);
    if (reg)
        assert_int_equal(gov_kafka_producer_report(p, reg, status), GOV_OK);
    return p;
}

/* Waits (bounded) until the producer has been recreated `want` times. */
static int wait_recreated(gov_kafka_producer_t *p, uint64_t want) {
    int64_t end = gov_mono_micros() + 10 * 1000000;
    while (gov_kafka_producer_recreated(p) < want && gov_mono_micros() < end)
        gov_sleep_ms_interruptible(5, NULL);
    return gov_kafka_producer_recreated(p) == want;
}

/* A queue of one message: the second produce meets a full queue. */
static const char *const one_slot[] = {"log_level", "2", "queue.buffering.max.messages", "1",
                                       NULL};

typedef struct outcome {
    atomic_int calls;
    gov_err_t err;
} outcome_t;

static void record_outcome(void *arg, gov_err_t err, const char *detail) {
    (void)detail;
    outcome_t *o = arg;
    o->err = err;
    atomic_fetch_add(&o->calls, 1);
}

static void test_queue_full_fails_fast(void **state) {
    (void)state;
    gov_kafka_producer_t *p = NULL;
    char eb[256] = "";
    assert_int_equal(gov_kafka_producer_new("127.0.0.1:1", "test-kafka", one_slot, &p, eb,
                                            sizeof eb), GOV_OK);
    assert_int_equal(gov_kafka_produce(p, "t", "k", 1, "v", 1, NULL, 0), GOV_OK);
    /* it used to wait 50 x 10 ms per message for room: a bound below that
     * (not tighter: valgrind runs this too) */
    int64_t t0 = gov_mono_micros();
    assert_int_equal(gov_kafka_produce(p, "t", "k", 1, "v", 1, NULL, 0), GOV_ERR_KAFKA);
    int64_t waited_ms = (gov_mono_micros() - t0) / 1000;
    if (waited_ms >= 500)
        fail_msg("a full queue held gov_kafka_produce %lld ms", (long long)waited_ms);
    /* a group member likewise: the group fails in its seal, at once */
    outcome_t o = {0};
    gov_kafka_group_t *g = NULL;
    assert_int_equal(gov_kafka_group_new(p, record_outcome, &o, &g), GOV_OK);
    t0 = gov_mono_micros();
    assert_int_equal(gov_kafka_group_produce(g, "t", "k", 1, "v", 1, NULL, 0), GOV_ERR_KAFKA);
    waited_ms = (gov_mono_micros() - t0) / 1000;
    if (waited_ms >= 500)
        fail_msg("a full queue held gov_kafka_group_produce %lld ms", (long long)waited_ms);
    gov_kafka_group_seal(g);
    assert_int_equal(atomic_load(&o.calls), 1);
    assert_int_equal(o.err, GOV_ERR_KAFKA);
    assert_int_equal(gov_kafka_producer_queue_full(p), 2);
    gov_kafka_producer_free(p, 0);
}

static void test_purge_completes_groups(void **state) {
    (void)state;
    gov_kafka_producer_t *p = producer_new(NULL, NULL);
    outcome_t o = {0};
    gov_kafka_group_t *g = NULL;
    assert_int_equal(gov_kafka_group_new(p, record_outcome, &o, &g), GOV_OK);
    assert_int_equal(gov_kafka_group_produce(g, "t", "k", 1, "v", 1, NULL, 0), GOV_OK);
    gov_kafka_group_seal(g);
    assert_int_equal(atomic_load(&o.calls), 0);   /* no broker: pending for message.timeout.ms */
    assert_int_equal(gov_kafka_producer_purge(p, 5000), GOV_OK);
    assert_int_equal(atomic_load(&o.calls), 1);   /* ran within the purge */
    assert_int_equal(o.err, GOV_ERR_KAFKA);
    /* still usable */
    assert_int_equal(gov_kafka_produce(p, "t", "k", 1, "v", 1, NULL, 0), GOV_OK);
    gov_kafka_producer_free(p, 0);
}

static void test_recreates_then_gives_up(void **state) {
    (void)state;
    gov_metrics_t *reg = gov_metrics_new();
    assert_non_null(reg);
    gov_status_t *st = gov_status_new();
    assert_non_null(st);
    gov_kafka_producer_t *p = producer_new(reg, st);
    assert_int_equal(gov_status_ready(st), 1);
    gov_metric_t *m = gov_metrics_counter(reg, "kafka_producer_recreated_total",
                                          "Times the Kafka producer was recreated after a "
                                          "librdkafka fatal error.",
                                          0, NULL);
    assert_non_null(m);
    assert_true(gov_metric_value(m, NULL) == 0.0);

    for (uint64_t i = 1; i <= GOV_KAFKA_RECREATE_LIMIT; i++) {
        assert_int_equal(gov_kafka_producer_test_fatal(p, "unit test"), GOV_OK);
        /* the produce that meets the fatal handle goes to a new one */
        assert_int_equal(gov_kafka_produce(p, "t", "k", 1, "v", 1, NULL, 0), GOV_OK);
        assert_true(wait_recreated(p, i));
        assert_true(gov_metric_value(m, NULL) == (double)i);
        assert_int_equal(gov_status_ready(st), 1);
    }

    assert_int_equal(gov_kafka_producer_test_fatal(p, "once too often"), GOV_OK);
    char eb[512] = "";
    int32_t part;
    int64_t off;
    assert_int_equal(gov_kafka_produce_sync(p, "t", "k", 1, "v", 1, NULL, 0, 1000, &part, &off,
                                            eb, sizeof eb),
                     GOV_ERR_KAFKA);
    if (strstr(eb, "kafka producer gave up: fatal error 6 times within 60 s") == NULL ||
        strstr(eb, "once too often") == NULL || strstr(eb, "restart the process") == NULL)
        fail_msg("unclear give-up error: %s", eb);
    /* final: nothing is recreated any more, every produce fails at once */
    assert_int_equal(gov_kafka_produce(p, "t", "k", 1, "v", 1, NULL, 0), GOV_ERR_KAFKA);
    assert_int_equal(gov_kafka_producer_recreated(p), GOV_KAFKA_RECREATE_LIMIT);
    assert_true(gov_metric_value(m, NULL) == (double)GOV_KAFKA_RECREATE_LIMIT);
    /* and /readyz says so */
    int ready = 1;
    json_t *body = gov_status_to_json(st, &ready);
    assert_non_null(body);
    assert_int_equal(ready, 0);
    char *text = json_dumps(body, JSON_COMPACT);
    if (strstr(text, "\"kafka_producer\"") == NULL || strstr(text, "kafka producer gave up") == NULL)
        fail_msg("readyz body without the give-up reason: %s", text);
    free(text);
    json_decref(body);
    gov_kafka_producer_free(p, 1000);
    gov_status_free(st);
    gov_metrics_free(reg);
}

/* A recreation registered after the fact still reaches the metric. */
static void test_metric_counts_earlier_recreations(void **state) {
    (void)state;
    gov_kafka_producer_t *p = producer_new(NULL, NULL);
    assert_int_equal(gov_kafka_producer_test_fatal(p, "before metrics"), GOV_OK);
    assert_int_equal(gov_kafka_produce(p, "t", "k", 1, "v", 1, NULL, 0), GOV_OK);
    assert_true(wait_recreated(p, 1));
    gov_metrics_t *reg = gov_metrics_new();
    assert_non_null(reg);
    assert_int_equal(gov_kafka_producer_report(p, reg, NULL), GOV_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(gov_metrics_render(reg, &text, &len), GOV_OK);
    assert_non_null(strstr(text, "\nkafka_producer_recreated_total 1\n"));
    gov_free(text);
    gov_kafka_producer_free(p, 1000);
    gov_metrics_free(reg);
}

typedef struct worker {
    gov_kafka_producer_t *p;
    atomic_int *stop;
    long ok, failed;
} worker_t;

static void *produce_loop(void *arg) {
    worker_t *w = arg;
    for (long i = 0; i < 20000 && !atomic_load(w->stop); i++) {
        if (gov_kafka_produce(w->p, "t", "k", 1, "v", 1, NULL, 0) == GOV_OK)
            w->ok++;
        else
            w->failed++;
    }
    return NULL;
}

/* Four threads produce while the handle goes fatal five times: each fatal
 * event is acted on once, and no thread touches a destroyed handle. */
static void test_concurrent_producers_across_recreations(void **state) {
    (void)state;
    gov_kafka_producer_t *p = producer_new(NULL, NULL);
    atomic_int stop = 0;
    worker_t w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){.p = p, .stop = &stop};
        assert_int_equal(pthread_create(&t[i], NULL, produce_loop, &w[i]), 0);
    }
    for (uint64_t i = 1; i <= GOV_KAFKA_RECREATE_LIMIT; i++) {
        assert_int_equal(gov_kafka_producer_test_fatal(p, "concurrent"), GOV_OK);
        assert_true(wait_recreated(p, i));
    }
    atomic_store(&stop, 1);
    long ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
    }
    assert_true(ok > 0);
    assert_int_equal(gov_kafka_producer_recreated(p), GOV_KAFKA_RECREATE_LIMIT);
    gov_kafka_producer_free(p, 1000);
}

int main(void) {
    gov_log_init("test-kafka", GOV_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_full_fails_fast),
        cmocka_unit_test(test_purge_completes_groups),
        cmocka_unit_test(test_recreates_then_gives_up),
        cmocka_unit_test(test_metric_counts_earlier_recreations),
        cmocka_unit_test(test_concurrent_producers_across_recreations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
