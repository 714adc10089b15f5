/* test_kafka_group.c - gov_kafka groups (asynchronous completion) against the
 * stack's real broker.
 *
 * A group's callback must come exactly once, with the outcome, in every way a
 * message can end:
 *   - both messages acknowledged -> GOV_OK, and both are on the topic;
 *   - no broker (a dead port) and message.timeout.ms 1.5 s -> GOV_ERR_TIMEOUT
 *     once the timeout ran out;
 *   - the producer's handle turns fatal (librdkafka's genuine fatal state,
 *     rd_kafka_test_fatal_error) while a message waits for an unreachable
 *     broker -> the recreation purges it and the group completes with
 *     GOV_ERR_KAFKA long before its 30 s timeout; the message is not produced
 *     again behind the group's back (the callback still came once);
 *   - the producer is freed with a message pending -> the callback comes
 *     (GOV_ERR_KAFKA) before gov_kafka_producer_free returns.
 * Each wait is on the callback, bounded.  The suite runs this binary's ASan
 * build (tests/run.sh), so a callback on freed memory aborts it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gov_kafka.h"
#include "itest_util.h"

/* What a group's callback saw. */
typedef struct outcome {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    gov_err_t err;
    char detail[256];
} outcome_t;

static void outcome_init(outcome_t *o) {
    memset(o, 0, sizeof *o);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
}

static void outcome_destroy(outcome_t *o) {
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
}

static void on_done(void *arg, gov_err_t err, const char *detail) {
    outcome_t *o = arg;
    pthread_mutex_lock(&o->mu);
    o->calls++;
    o->err = err;
    snprintf(o->detail, sizeof o->detail, "%s", detail);
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

/* Waits up to timeout_ms for the first call; the number of calls so far. */
static int wait_done(outcome_t *o, int timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&o->mu);
    while (o->calls == 0 && pthread_cond_timedwait(&o->cv, &o->mu, &until) == 0)
        ;
    int n = o->calls;
    pthread_mutex_unlock(&o->mu);
    return n;
}

static gov_kafka_producer_t *producer(const char *brokers, const char *timeout_ms) {
    char eb[512] = "";
    gov_kafka_producer_t *p = NULL;
    const char *conf[] = {"message.timeout.ms", timeout_ms, NULL};
    if (gov_kafka_producer_new(brokers, "itest-kafka-group", conf, &p, eb, sizeof eb) != GOV_OK)
        fail_msg("producer: %s", eb);
    return p;
}

static const char *dead_broker(void) {
    static char b[64];
    snprintf(b, sizeof b, "127.0.0.1:%d", itest_free_port());
    return b;
}

static void produce(gov_kafka_group_t *g, const char *topic, const char *value) {
    assert_int_equal(gov_kafka_group_produce(g, topic, "k", 1, value, strlen(value), NULL, 0),
                     GOV_OK);
}

/* One message to a topic no broker serves, in a sealed group reporting to o. */
static void nowhere_group(gov_kafka_producer_t *p, outcome_t *o, const char *value) {
    outcome_init(o);
    gov_kafka_group_t *g = NULL;
    assert_int_equal(gov_kafka_group_new(p, on_done, o, &g), GOV_OK);
    produce(g, "itest-kafka-group-nowhere", value);
    gov_kafka_group_seal(g);
}

static int find_value(void *opaque, const gov_kafka_msg_t *m) {
    const char *want = opaque;
    return m->len == strlen(want) && memcmp(m->value, want, m->len) == 0;
}

static void test_acknowledged(void **state) {
    (void)state;
    char topic[96], v1[96], v2[96];
    itest_unique("itest-kafka-group", topic, sizeof topic);
    itest_create_topic(topic, 1);
    itest_unique("first", v1, sizeof v1);
    itest_unique("second", v2, sizeof v2);
    gov_kafka_producer_t *p = producer(itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"), "10000");
    outcome_t o;
    outcome_init(&o);
    gov_kafka_group_t *g = NULL;
    assert_int_equal(gov_kafka_group_new(p, on_done, &o, &g), GOV_OK);
    produce(g, topic, v1);
    produce(g, topic, v2);
    gov_kafka_group_seal(g);
    assert_int_equal(wait_done(&o, 20000), 1);
    if (o.err != GOV_OK)
        fail_msg("want GOV_OK, got %d: %s", o.err, o.detail);
    /* both were written before the callback said so */
    assert_true(itest_consume_until(topic, find_value, v1, 20000));
    assert_true(itest_consume_until(topic, find_value, v2, 20000));
    gov_kafka_producer_free(p, 5000);
    assert_int_equal(o.calls, 1);
    outcome_destroy(&o);
    itest_delete_topic(topic);
}

static void test_timeout(void **state) {
    (void)state;
    gov_kafka_producer_t *p = producer(dead_broker(), "1500");
    outcome_t o;
    nowhere_group(p, &o, "lost");
    assert_int_equal(wait_done(&o, 15000), 1);
    if (o.err != GOV_ERR_TIMEOUT)
        fail_msg("want GOV_ERR_TIMEOUT, got %d: %s", o.err, o.detail);
    gov_kafka_producer_free(p, 100);
    assert_int_equal(o.calls, 1);
    outcome_destroy(&o);
}

static gov_kafka_producer_t *fatal_producer;

static int recreated_once(void *opaque) {
    (void)opaque;
    return gov_kafka_producer_recreated(fatal_producer) == 1;
}

static void test_fatal_error_fails_the_group(void **state) {
    (void)state;
    gov_kafka_producer_t *p = producer(dead_broker(), "30000");
    outcome_t o;
    nowhere_group(p, &o, "purged");
    assert_int_equal(gov_kafka_producer_test_fatal(p, "itest: forced fatal error"), GOV_OK);
    /* the poll thread recreates the handle and purges the old one's queue */
    assert_int_equal(wait_done(&o, 15000), 1);
    if (o.err != GOV_ERR_KAFKA)
        fail_msg("want GOV_ERR_KAFKA, got %d: %s", o.err, o.detail);
    /* librdkafka may purge the queue itself before the poll thread has
     * recreated the handle: wait for the recreation, then nothing more */
    fatal_producer = p;
    if (itest_wait_for(recreated_once, NULL, 15000, 20) < 0)
        fail_msg("the producer was not recreated");
    gov_kafka_producer_free(p, 100);
    assert_int_equal(o.calls, 1);   /* not re-sent, not reported twice */
    outcome_destroy(&o);
}

static void test_free_completes_pending(void **state) {
    (void)state;
    gov_kafka_producer_t *p = producer(dead_broker(), "30000");
    outcome_t o;
    nowhere_group(p, &o, "pending");
    assert_int_equal(o.calls, 0);
    gov_kafka_producer_free(p, 200);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.err, GOV_ERR_KAFKA);
    outcome_destroy(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acknowledged),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_fatal_error_fails_the_group),
        cmocka_unit_test(test_free_completes_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
