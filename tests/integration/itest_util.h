/* itest_util.h - helpers for integration tests against the real stack.
 *
 * Everything here talks to real servers: the Kafka broker and Redis that
 * deploy/stack.sh started (addresses from var/stack.env), binaries from
 * build/release/bin run as child processes, HTTP through libcurl.  Nothing
 * is simulated.  Helpers abort the test (cmocka fail) when the environment
 * is not usable, with a message saying what is missing.
 */
#ifndef ITEST_UTIL_H
#define ITEST_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gov_avro.h"
#include "gov_kafka.h"
#include "gov_redis.h"

/* A value from the environment, else var/stack.env, else fallback.  The
 * returned string is static storage valid until the next call. */
const char *itest_env(const char *name, const char *fallback);

/* "<prefix>-<pid>-<random>" into buf: names that no other run uses. */
void itest_unique(const char *prefix, char *buf, size_t size);

/* Path of a project binary ("gov-audit"): $ITEST_BIN_DIR/<name>, by default
 * build/release/bin/<name>; the suite runs the integration tests a second
 * time with ITEST_BIN_DIR=build/asan/bin (ASan + UBSan binaries). */
const char *itest_bin(const char *name);

/* Absolute path of a repository file ("build/release/bin/gov-audit"). */
const char *itest_path(const char *rel);

/* Starts argv[0] (a path relative to the repository) with extra environment
 * entries "K=V" (NULL-terminated, may be NULL), stdout+stderr to logfile
 * (under var/test-logs/).  Returns the pid. */
pid_t itest_spawn(const char *const *argv, const char *const *extra_env, const char *logname);
/* Sends sig and waits up to timeout_ms for exit; returns the wait status or
 * -1 on timeout (then SIGKILL was sent). */
int itest_stop(pid_t pid, int sig, int timeout_ms);
/* Runs a command to completion with extra env; returns its exit code and
 * captures stdout into out (may be NULL). */
int itest_run(const char *const *argv, const char *const *extra_env, char *out, size_t out_size);

/* HTTP GET; returns the status (0 on connection failure); *body is a new
 * NUL-terminated string (free) when body is not NULL. */
long itest_http_get(const char *url, char **body);
/* Polls url until it answers `want` or timeout_ms passes; returns 1 if so. */
int itest_wait_http(const char *url, long want, int timeout_ms);
/* Sum of a metric's samples whose label set contains every "k=\"v\"" filter
 * (NULL-terminated).  -1 when no sample matched. */
double itest_metric(const char *metrics_text, const char *name, const char *const *filters);
/* Waits until the processor whose admin server is on `port` reports
 * processor_consumer_lag 0 on at least `partitions` partitions (a fresh
 * consumer group first works through the topic's history).  1 when it did. */
int itest_wait_caught_up(int port, int partitions, int timeout_ms);

/* Runs `promtool check metrics` on the text; returns its exit code. */
int itest_promtool_check(const char *metrics_text);

/* Stack clients (connect once per test binary). */
gov_redis_t *itest_redis(void);
gov_kafka_producer_t *itest_producer(void);
const gov_avro_registry_t *itest_avro(void);
/* Starts a private redis-server on a free port under var/test-redis/<name>;
 * returns its pid and port. */
pid_t itest_private_redis(const char *name, int *port);

/* Encodes the event as `type` and produces it with the tenant key, waiting
 * for the acknowledgement.  Fails the test on error. */
void itest_produce_event(const char *topic, const char *type, json_t *event);
/* Produces raw bytes (for poison messages). */
void itest_produce_raw(const char *topic, const char *key, const void *buf, size_t len);

/* Creates a topic (partitions, RF 1) with the Kafka admin API; deletes it. */
void itest_create_topic(const char *topic, int partitions);
void itest_delete_topic(const char *topic);

/* Consumes topic from the beginning with a fresh group until fn returns 1 or
 * timeout_ms passes; returns 1 when fn accepted a message. */
typedef int (*itest_msg_fn)(void *opaque, const gov_kafka_msg_t *m);
int itest_consume_until(const char *topic, itest_msg_fn fn, void *opaque, int timeout_ms);
/* Value of header `name` of a consumed message into buf ("" if absent). */
void itest_msg_header(const gov_kafka_msg_t *m, const char *name, char *buf, size_t size);

/* A new event JSON with event_id, occurred_at and tenant set. */
json_t *itest_audit_event(const char *tenant, const char *action);
json_t *itest_decision_event(const char *tenant, const char *decision_id);

/* Polls `XLEN key` until it is >= want or timeout; returns the last length. */
long long itest_wait_xlen(const char *key, long long want, int timeout_ms);

void itest_sleep_ms(long ms);

#endif /* ITEST_UTIL_H */
