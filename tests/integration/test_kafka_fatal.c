/* test_kafka_fatal.c - the producer survives librdkafka's fatal state, for real.
 *
 * The failure seen in CI: an idempotent producer's id collided with a stale
 * id the broker already held sequence state for; the broker answered its
 * first request with OUT_OF_ORDER_SEQUENCE_NUMBER, librdkafka raised a fatal
 * error, and every later produce failed with "Local: Fatal error".
 *
 * Here the same happens against the stack's real broker:
 * kafka_forge_producer_state.py, an independent client speaking the Kafka
 * protocol itself, asks the broker for a producer id N and writes record
 * batches for the next ids (N+1...) with epoch 0 and sequence 1000 to a fresh
 * one-partition topic.  A gov_kafka producer created right after gets id N+1
 * and sequence 0 is out of order: a genuine broker-side fatal error.
 *
 * Checked, as an operator would: the first send fails with the broker's
 * reason; the next send succeeds and its message is read back from the
 * topic; kafka_producer_recreated_total says 1; the log holds exactly one
 * "kafka producer fatal error; recreating the producer" line from this
 * test's own component with librdkafka's reason.  Then, with six forged ids
 * in a row, each recreated handle collides again: after
 * GOV_KAFKA_RECREATE_LIMIT recreations the producer gives up and every send
 * returns GOV_ERR_KAFKA naming why, and the status component turns ERROR
 * (/readyz not ready).  Without the recovery the second send
 * fails and the test fails.
 *
 * Another client creating an idempotent producer between the forging and
 * our producer takes the forged id; the round is then repeated (at most 5
 * times) rather than passed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_kafka.h"
#include "gov_log.h"
#include "gov_metrics.h"
#include "gov_status.h"
#include "itest_util.h"

#define ROUNDS 5

static char component[96];
static char log_name[160];
static int saved_stderr = -1;

static const char *python3(void) {
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

/* Our own log lines go to a file of their own (the component name filters
 * them), so the test can read what an operator would. */
static int setup(void **state) {
    (void)state;
    itest_unique("itest-kfatal", component, sizeof component);
    snprintf(log_name, sizeof log_name, "%s.log", component);
    gov_log_init(component, GOV_LOG_INFO);
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(itest_log_path(log_name), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved_stderr < 0 || fd < 0 || dup2(fd, 2) < 0) {
        fprintf(stderr, "cannot redirect stderr to %s\n", log_name);
        return -1;
    }
    close(fd);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    fflush(stderr);
    if (saved_stderr >= 0) {
        dup2(saved_stderr, 2);
        close(saved_stderr);
        saved_stderr = -1;
    }
    return 0;
}

/* Leaves stale producer state for the broker's next `count` producer ids on
 * partition 0 of topic. */
static void forge(const char *topic, int count) {
    char n[16], out[64] = "";
    snprintf(n, sizeof n, "%d", count);
    const char *argv[] = {python3(), itest_path("tests/integration/kafka_forge_producer_state.py"),
                          itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"), topic, n, NULL};
    int rc = itest_run(argv, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("kafka_forge_producer_state.py exited %d", rc);
}

static gov_kafka_producer_t *producer_new(gov_metrics_t *reg, gov_status_t *status) {
    gov_kafka_producer_t *p = NULL;
    char eb[512] = "";
    if (gov_kafka_producer_new(itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"), component,
                               NULL, &p, eb, sizeof eb) != GOV_OK)
        fail_msg("producer: %s", eb);
    assert_int_equal(gov_kafka_producer_report(p, reg, status), GOV_OK);
    return p;
}

static gov_err_t send(gov_kafka_producer_t *p, const char *topic, const char *value,
                      int32_t *part, int64_t *off, char *eb, size_t ebsize) {
    eb[0] = '\0';
    return gov_kafka_produce_sync(p, topic, "k", 1, value, strlen(value), NULL, 0, 15000, part,
                                  off, eb, ebsize);
}

typedef struct want_msg {
    const char *value;
    int32_t partition;
    int64_t offset;
} want_msg_t;

static int match_value(void *opaque, const gov_kafka_msg_t *m) {
    want_msg_t *w = opaque;
    return m->len == strlen(w->value) && memcmp(m->value, w->value, m->len) == 0 &&
           m->partition == w->partition && m->offset == w->offset;
}

/* Lines of our own log file holding every one of the strings (NULL-ended). */
static int log_lines_with(const char *const *needles) {
    fflush(stderr);
    char *text = itest_read_file(itest_log_path(log_name), NULL);
    int count = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int all = 1;
        for (const char *const *n = needles; *n && all; n++)
            all = strstr(line, *n) != NULL;
        count += all;
    }
    free(text);
    return count;
}

static double recreated_metric(gov_metrics_t *reg) {
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(gov_metrics_render(reg, &text, &len), GOV_OK);
    double v = itest_metric(text, "kafka_producer_recreated_total", (const char *[]){NULL});
    gov_free(text);
    return v;
}

#define ASYNC_N 20000

typedef struct seen_all {
    const char *prefix;
    unsigned char seen[ASYNC_N];
    int distinct;
} seen_all_t;

/* Counts the distinct "<prefix>-<i>" values; stops when all were seen. */
static int count_distinct(void *opaque, const gov_kafka_msg_t *m) {
    seen_all_t *s = opaque;
    char v[192];
    size_t pl = strlen(s->prefix);
    if (m->len >= sizeof v || m->len <= pl + 1)
        return 0;
    memcpy(v, m->value, m->len);
    v[m->len] = 0;
    if (strncmp(v, s->prefix, pl) != 0 || v[pl] != '-')
        return 0;
    int i = atoi(v + pl + 1);
    if (i >= 0 && i < ASYNC_N && !s->seen[i]) {
        s->seen[i] = 1;
        s->distinct++;
    }
    return s->distinct == ASYNC_N;
}

/* Asynchronous messages (gov-edge's decisions) queued when the producer
 * turns fatal are not lost: librdkafka fails them with the handle, nobody
 * retries them, so gov_kafka keeps them and produces them again on the
 * recreated handle - every one reaches the topic. */
static void test_async_messages_survive_a_recreation(void **state) {
    (void)state;
    char topic[128];
    itest_unique("itest.kfatal-async", topic, sizeof topic);
    itest_create_topic(topic, 1);
    gov_metrics_t *reg = gov_metrics_new();
    assert_non_null(reg);
    gov_kafka_producer_t *p = producer_new(reg, NULL);
    for (int i = 0; i < ASYNC_N; i++) {
        char v[192];
        int n = snprintf(v, sizeof v, "%s-%d", topic, i);
        assert_int_equal(gov_kafka_produce(p, topic, "k", 1, v, (size_t)n, NULL, 0), GOV_OK);
    }
    assert_int_equal(gov_kafka_producer_test_fatal(p, "itest: fatal with messages queued"),
                     GOV_OK);
    seen_all_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->prefix = topic;
    int all = itest_consume_until(topic, count_distinct, s, 60000);
    print_message("%d of %d asynchronous messages reached the topic\n", s->distinct, ASYNC_N);
    assert_true(all);
    assert_int_equal(gov_kafka_producer_recreated(p), 1);
    free(s);
    gov_kafka_producer_free(p, 5000);
    gov_metrics_free(reg);
    itest_delete_topic(topic);
}

static void test_recovers_from_a_real_fatal_error(void **state) {
    (void)state;
    int collided = 0;
    for (int round = 0; round < ROUNDS && !collided; round++) {
        char topic[128], first[160], after[160], eb[512];
        itest_unique("itest.kfatal", topic, sizeof topic);
        itest_create_topic(topic, 1);
        snprintf(first, sizeof first, "%s-first", topic);
        snprintf(after, sizeof after, "%s-after", topic);
        forge(topic, 1);
        gov_metrics_t *reg = gov_metrics_new();
        assert_non_null(reg);
        gov_kafka_producer_t *p = producer_new(reg, NULL);
        int32_t part = -1;
        int64_t off = -1;
        gov_err_t err = send(p, topic, first, &part, &off, eb, sizeof eb);
        if (err == GOV_OK) {
            /* another client took the forged id first: no collision */
            gov_kafka_producer_free(p, 2000);
            gov_metrics_free(reg);
            itest_delete_topic(topic);
            continue;
        }
        collided = 1;
        assert_int_equal(err, GOV_ERR_KAFKA);
        if (strstr(eb, "out of order sequence") == NULL)
            fail_msg("first send: expected the broker's out-of-order reason, got: %s", eb);

        /* The next send goes through a recreated producer. */
        err = send(p, topic, after, &part, &off, eb, sizeof eb);
        if (err != GOV_OK)
            fail_msg("send after the fatal error: %s", eb);
        assert_int_equal(gov_kafka_producer_recreated(p), 1);
        assert_true(recreated_metric(reg) == 1.0);
        want_msg_t w = {after, part, off};
        assert_true(itest_consume_until(topic, match_value, &w, 30000));

        assert_int_equal(log_lines_with((const char *[]){
                             "kafka producer fatal error; recreating the producer",
                             component, "\"level\":\"error\"", "sequence desynchronization",
                             NULL}),
                         1);
        gov_kafka_producer_free(p, 2000);
        gov_metrics_free(reg);
        itest_delete_topic(topic);
    }
    if (!collided)
        fail_msg("the forged producer id was taken by another client in all %d rounds", ROUNDS);
}

static void test_gives_up_after_repeated_fatal_errors(void **state) {
    (void)state;
    int gave_up = 0;
    for (int round = 0; round < ROUNDS && !gave_up; round++) {
        char topic[128], value[160], eb[512] = "";
        itest_unique("itest.kfatal", topic, sizeof topic);
        itest_create_topic(topic, 1);
        snprintf(value, sizeof value, "%s-v", topic);
        /* each handle the producer makes collides again */
        forge(topic, GOV_KAFKA_RECREATE_LIMIT + 1);
        gov_metrics_t *reg = gov_metrics_new();
        assert_non_null(reg);
        gov_status_t *st = gov_status_new();
        assert_non_null(st);
        gov_kafka_producer_t *p = producer_new(reg, st);
        int32_t part;
        int64_t off;
        gov_err_t err = GOV_ERR_KAFKA;
        int sends = 0;
        /* one fatal error per handle: LIMIT + 1 of them, then one send that
         * meets the decision */
        while (sends < GOV_KAFKA_RECREATE_LIMIT + 2 &&
               (err = send(p, topic, value, &part, &off, eb, sizeof eb)) != GOV_OK &&
               strstr(eb, "gave up") == NULL)
            sends++;
        if (err == GOV_OK) {
            /* a handle got an id nobody forged: another client took one */
            gov_kafka_producer_free(p, 2000);
            gov_status_free(st);
            gov_metrics_free(reg);
            itest_delete_topic(topic);
            continue;
        }
        gave_up = 1;
        assert_int_equal(gov_status_ready(st), 0); /* /readyz shows it */
        if (strstr(eb, "kafka producer gave up") == NULL || strstr(eb, "restart the process") == NULL)
            fail_msg("expected the give-up reason, got: %s", eb);
        assert_int_equal(gov_kafka_producer_recreated(p), GOV_KAFKA_RECREATE_LIMIT);
        assert_true(recreated_metric(reg) == (double)GOV_KAFKA_RECREATE_LIMIT);
        /* final: no more recreations, every send fails at once with the reason */
        assert_int_equal(send(p, topic, value, &part, &off, eb, sizeof eb), GOV_ERR_KAFKA);
        assert_non_null(strstr(eb, "kafka producer gave up"));
        assert_int_equal(gov_kafka_producer_recreated(p), GOV_KAFKA_RECREATE_LIMIT);
        assert_int_equal(log_lines_with((const char *[]){"kafka producer fatal error; giving up",
                                                         component, NULL}),
                         1);
        gov_kafka_producer_free(p, 2000);
        gov_status_free(st);
        gov_metrics_free(reg);
        itest_delete_topic(topic);
    }
    if (!gave_up)
        fail_msg("forged producer ids were taken by another client in all %d rounds", ROUNDS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recovers_from_a_real_fatal_error),
        cmocka_unit_test(test_async_messages_survive_a_recreation),
        cmocka_unit_test(test_gives_up_after_repeated_fatal_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
