/* itest_util.h - helpers for integration tests against the real stack.
 *
 * Everything here talks to real servers: the Kafka broker and Redis that
 * deploy/stack.sh started (addresses from var/stack.env), binaries from
 * build/release/bin (or ITEST_BIN_DIR) run as child processes, HTTP through
 * libcurl.  Nothing is simulated.  Helpers abort the test (cmocka fail) when
 * the environment is not usable, with a message saying what is missing.
 *
 * Every test uses these rather than its own copy:
 *   - keys and PEM files, trust files, signed bundles and packs
 *     (itest_ed25519_new, itest_public_pem, itest_write_trust,
 *     itest_bundle_event, itest_sign_rulepack_event);
 *   - a private processor with its own component name, consumer group and
 *     admin port, ready when started (itest_proc_start / itest_proc_stop):
 *     a test then reads only what that component emitted, so the stack's
 *     processor on the same topics cannot pass the test in its place;
 *   - waiting on an observable outcome with a deadline, never a bare sleep
 *     (itest_wait_for, itest_wait_http, itest_wait_offset,
 *     itest_find_audit, itest_find_events, itest_wait_caught_up);
 *   - the stack's addresses (itest_env) and clients (itest_redis,
 *     itest_producer).
 * Not thread-safe: one test thread per binary.  Functions returning paths
 * or values in static storage say so.
 */
#ifndef ITEST_UTIL_H
#define ITEST_UTIL_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gov_avro.h"
#include "gov_kafka.h"
#include "gov_redis.h"

/* --- the stack and the repository ------------------------------------------ */

/* How long a private processor with a fresh consumer group may take to work
 * through a topic's history before a test's own events: the history grows
 * with every run on a long-lived stack, and the ASan build is slow. */
#define ITEST_HISTORY_MS 240000

/* A private gov-audit's setting: it chains what the stack's gov-audit relays
 * and relays nothing itself.  A relay in a new consumer group copies all of
 * policy.decisions into identity.audit again, which every gov-audit after it
 * reads: one per private deployment made the suite's history grow with the
 * square of its length.  Only a test of the relay itself leaves it on. */
#define ITEST_NO_RELAY "GOV_RELAY=false"

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
/* Absolute path of var/test-logs/<name>, the folder made when missing
 * (static storage, valid until the next call). */
const char *itest_log_path(const char *name);

/* Starts argv[0] (a path relative to the repository) with extra environment
 * entries "K=V" (NULL-terminated, may be NULL), stdout+stderr to logfile
 * (under var/test-logs/).  Returns the pid.  The process dies with the
 * test: SIGKILL when the test exits with it still running (a failed
 * assertion included), and by PR_SET_PDEATHSIG when the test is killed
 * outright (call it from the main thread: the signal follows the thread
 * that forked). */
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
/* HTTP POST of a JSON body (Content-Type: application/json); as
 * itest_http_get otherwise. */
long itest_http_post_json(const char *url, const char *json, char **body);
/* Polls url until it answers `want` or timeout_ms passes; returns 1 if so. */
int itest_wait_http(const char *url, long want, int timeout_ms);
/* Sum of a metric's samples whose label set contains every "k=\"v\"" filter
 * (NULL-terminated).  -1 when no sample matched. */
double itest_metric(const char *metrics_text, const char *name, const char *const *filters);
/* Waits until the processor whose admin server is on `port` has read, on
 * at least `partitions` partitions, as far as each partition's end was when
 * the wait first saw it (processor_consumer_position; a fresh consumer
 * group first works through the topic's history).  Not "lag 0 at one
 * moment": other tests produce to the same topics all the time, and a
 * consumer that waits for its fetch to fill is rarely at the very end.  1
 * when it did. */
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
/* Copies a tenant's served state (constitution hash and document, rule pack
 * and its meta) from the stack's Redis into `to`, byte for byte (DUMP and
 * RESTORE, so the stack's trust files verify it there), and adds the tenant
 * to both indexes.  Fails the test when the stack has no such state. */
void itest_copy_tenant(gov_redis_t *to, const char *tenant);
/* Copies one key of the stack's Redis into `to` under the name `as`. */
void itest_copy_key(gov_redis_t *to, const char *key, const char *as);
/* One command on r (argv binary-safe with lens, or C strings with NULL):
 * its reply (new; freeReplyObject).  Fails the test on an error. */
redisReply *itest_redis_cmd(gov_redis_t *r, int argc, const char **argv, const size_t *lens);

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
/* Reads every message of topic from from[p] (NULL: each partition's first
 * retained message) up to the partitions' ends when called, handing each to
 * fn (whose result is ignored: every message in the range is seen).  Returns
 * 1 when every partition was read to that end, 0 when timeout_ms ran out
 * first - so a count over the range is complete or the caller knows it is
 * not, however long the topic's history.  from[] as itest_topic_ends wrote
 * it before the case produced anything keeps the range to the case's own. */
int itest_scan_topic(const char *topic, const int64_t *from, itest_msg_fn fn, void *opaque,
                     int timeout_ms);
/* Value of header `name` of a consumed message into buf ("" if absent). */
void itest_msg_header(const gov_kafka_msg_t *m, const char *name, char *buf, size_t size);

/* A new event JSON with event_id, occurred_at and tenant set. */
json_t *itest_audit_event(const char *tenant, const char *action);
json_t *itest_decision_event(const char *tenant, const char *decision_id);

/* Polls `XLEN key` until it is >= want or timeout; returns the last length. */
long long itest_wait_xlen(const char *key, long long want, int timeout_ms);

void itest_sleep_ms(long ms);

/* --- files ------------------------------------------------------------------ */

/* The whole file at path (absolute, or relative to the repository) as a new
 * NUL-terminated string (free); its length into *len when len is not NULL.
 * Fails the test when it cannot be read. */
char *itest_read_file(const char *path, size_t *len);
/* Writes len bytes to path, replacing it.  Fails the test on error. */
void itest_write_file(const char *path, const void *data, size_t len);
/* A copy of text with `from`, which must occur exactly once, replaced by `to`
 * (new memory, free).  Fails the test when `from` occurs 0 or 2+ times. */
char *itest_replace_once(const char *text, const char *from, const char *to);
/* Creates var/test-logs/<prefix>-<pid>-<random> (mode 0700) and writes its
 * path into dir.  Returns 0, or -1 with a message on stderr (for a group
 * setup, which must not fail_msg before the group runs). */
int itest_workdir_new(const char *prefix, char *dir, size_t size);
/* Removes what itest_workdir_new made, unless ITEST_KEEP is set. */
void itest_workdir_remove(const char *dir);

/* --- running a command line tool ------------------------------------------- */

/* Runs argv like itest_run with stdout into out and stderr into err (through
 * a file under var/test-logs, so the child writes freely).  A sanitizer
 * report on stderr fails the test whatever the exit code.  Returns the exit
 * code. */
int itest_run_capture(const char *const *argv, const char *const *extra_env, char *out,
                      size_t out_size, char *err, size_t err_size);
/* itest_bin("govctl") with args (NULL-terminated) through itest_run_capture. */
int itest_govctl(const char *const *extra_env, const char *const *args, char *out, size_t out_size,
                 char *err, size_t err_size);
/* Exit code 2 with "govctl: usage: " on stderr, else the test fails naming
 * the caller's line. */
void itest_expect_usage(int rc, const char *err, int line);
/* Exit code 0, else the test fails naming the caller's line and stderr. */
void itest_expect_ok(int rc, const char *err, int line);

/* --- Ed25519 keys, trust files, signed bundles ----------------------------- */

/* A fresh Ed25519 key pair from OpenSSL (new reference: EVP_PKEY_free). */
EVP_PKEY *itest_ed25519_new(void);
/* The SubjectPublicKeyInfo PEM of k's public half (new string, free). */
char *itest_public_pem(EVP_PKEY *k);
/* The Ed25519 signature of msg's bytes by k, as 128 lower-case hex digits. */
void itest_sign_hex(EVP_PKEY *k, const char *msg, char out[129]);
/* Writes a trust file as gov-constitution and `govctl verify` read it:
 * {"threshold": t, "signers": {ids[i]: pems[i]}} for i < n (all borrowed). */
void itest_write_trust_pems(const char *path, int threshold, size_t n, const char *const *ids,
                            const char *const *pems);
/* The per-tenant form: {"signers": {...}, "tenants": {tenant: {"threshold":
 * t, "signers": all ids, "unbound_documents": unbound}}}. */
void itest_write_trust_tenant_pems(const char *path, const char *tenant, int threshold,
                                   int unbound, size_t n, const char *const *ids,
                                   const char *const *pems);
/* The same with the public halves of keys[i] (borrowed). */
void itest_write_trust(const char *path, int threshold, size_t n, const char *const *ids,
                       EVP_PKEY *const *keys);
/* The checksum gov-constitution computes of a document text: canonical form
 * `canon` ("jcs", "somabrain-json") hashed with `alg`, hex into out. */
void itest_checksum(const char *doc, const char *canon, const char *alg, char out[129]);
/* A ConstitutionBundle event for tenant (new reference): the document text,
 * canon, alg, checksum (NULL: computed by itest_checksum), and one ed25519
 * signature over the checksum text for each entry of who[] (an index into
 * keys and ids; -1 ends), as gov-somabrain-sync and `govctl publish` send
 * it (source "itest", etag null).  keys and ids are borrowed. */
json_t *itest_bundle_event(const char *tenant, const char *doc, const char *canon, const char *alg,
                           const char *checksum, EVP_PKEY *const *keys, const char *const *ids,
                           const int *who);

/* Signs a RulePackPublished event (ev, borrowed; its "rulepack_json"): sets
 * its "signatures" to one Ed25519 signature of the pack's digest
 * (gov_rulepack_digest_hex, the pack parsed with the default limits) for
 * each who[i] (an index into keys and ids; -1 ends), as `govctl rulepack
 * sign` makes them.  A pack that does not parse gets an empty array
 * (gov-rulepacks refuses it before it looks at signatures). */
void itest_sign_rulepack_event(json_t *ev, EVP_PKEY *const *keys, const char *const *ids,
                               const int *who);

/* --- private processes ------------------------------------------------------ */

/* A free TCP port on 127.0.0.1 (the kernel's pick; free when returned). */
int itest_free_port(void);

/* A binary of the project run as a private deployment next to the stack's:
 * its own consumer group, its own component name (so its audit events and
 * derived ids are told apart from the stack's processor, which reads the
 * same topics), its own port. */
typedef struct itest_proc {
    pid_t pid;        /* -1 when not running */
    int port;         /* admin port (processors) or HTTP port (gov-edge) */
    char bin[64];     /* "gov-rulepacks" */
    char log[128];    /* under var/test-logs/ */
    char url[64];     /* http://127.0.0.1:<port> */
    char group[128];  /* its consumer group, made at the first start */
    char id[96];      /* a gov-edge's GOV_EDGE_ID (itest_edge_start_on_stack) */
} itest_proc_t;

/* Starts itest_bin(bin) with extra_env (NULL-terminated "K=V", may be NULL)
 * plus its port (GOV_PORT for gov-edge, GOV_ADMIN_PORT otherwise: p->port,
 * or a free port when p->port is 0), the stack's GOV_IDENTITY_TRUST_FILE
 * (extra_env may name another; it wins), and for a processor (component not
 * NULL) GOV_COMPONENT_NAME=component and GOV_KAFKA_GROUP=p->group (a fresh
 * group when p->group is empty); a restart keeps port and group, so it
 * resumes from its committed offsets.  Waits up to 30 s for its /readyz to
 * answer 200 and fails the test, naming the log, when it does not.  p is
 * zeroed by the caller before the first start. */
void itest_proc_start(itest_proc_t *p, const char *bin, const char *component,
                      const char *const *extra_env, const char *logname);
/* itest_proc_start without the wait for /readyz: for a test that must act
 * while the process works through what it found at start (a kill -9
 * mid-burst); p->pid is set when this returns. */
void itest_proc_spawn(itest_proc_t *p, const char *bin, const char *component,
                      const char *const *extra_env, const char *logname);
/* SIGTERM, then waits up to 15 s: 0 when it exited with status 0, else -1
 * with a message on stderr (a clean exit is part of every binary's contract,
 * and LeakSanitizer reports at exit).  p->pid becomes -1; 0 when it was not
 * running. */
int itest_proc_stop(itest_proc_t *p);

/* itest_wait_caught_up over ITEST_HISTORY_MS for processor p, failing the
 * test (naming p's binary and log) when it does not catch up. */
void itest_must_catch_up(const itest_proc_t *p, int partitions);
/* A private deployment's teardown: stops p (its clean exit is the result)
 * and then, when redis_pid > 0, its private redis-server. */
int itest_private_stop(itest_proc_t *p, pid_t redis_pid);
/* GET <p->url><path>: as itest_http_get. */
long itest_proc_get(const itest_proc_t *p, const char *path, char **body);
/* A metric of the process's /metrics as itest_metric; -1 when no sample
 * matched or /metrics did not answer. */
double itest_proc_metric(const itest_proc_t *p, const char *name, const char *const *filters);
/* Fails the test, naming line and p's log, unless verifying tok on the
 * gov-edge p answers want and, when code is not NULL, that error code. */
void itest_expect_verify(const itest_proc_t *p, const char *tok, int want, const char *code,
                         int line);

/* For a private gov-edge: edge_state_rejected_total{tenant,kind,reason} of
 * its /metrics (-1 when no sample), and 1 when its /readyz answers 200,
 * "degraded", and names component tenant:<tenant> degraded. */
double itest_edge_refused(const itest_proc_t *edge, const char *tenant, const char *kind,
                          const char *reason);
int itest_edge_degraded(const itest_proc_t *edge, const char *tenant);
/* A private gov-edge over the stack's own state: the stack's Redis, trust
 * files, identity trust, key directory, token issuer and audience
 * (var/stack.env), its own id "<prefix>-<unique>" (c->id) and a free port,
 * with extra env "K=V" (NULL-terminated, at most 10; they win; e.g.
 * GOV_KAFKA_BROKERS, which is not set otherwise).  Waits for /healthz, then
 * until it serves the JWKS and the demo tenant's constitution (an edge
 * without Kafka is never ready, so /readyz is not waited for); fails the
 * test naming the log otherwise.  Stop it with itest_proc_stop. */
void itest_edge_start_on_stack(itest_proc_t *c, const char *prefix, const char *const *extra,
                               const char *logname);

/* --- waiting on outcomes ---------------------------------------------------- */

/* Polls ready(opaque) every interval_ms until it returns non-zero or
 * timeout_ms passes.  Returns the ms waited, -1 on timeout. */
long itest_wait_for(int (*ready)(void *opaque), void *opaque, int timeout_ms, int interval_ms);
/* Waits until the partition watermark a processor writes last for a
 * message, gov:offsets:<group>:<topic>:<partition> in r (the processor's
 * Redis), reaches offset.  `processor` is the processor's consumer group: a
 * private processor's itest_proc_t.group, "gov-audit" for the stack's.  1
 * when it did, 0 on timeout. */
int itest_wait_offset(gov_redis_t *r, const char *processor, const char *topic, int32_t partition,
                      int64_t offset, int timeout_ms);
/* Reads identity.audit from its beginning until an AuditEvent keyed by
 * tenant, emitted by `component` and, where not NULL, with this action and
 * correlation_id; returns it (new reference) or NULL after timeout_ms. */
json_t *itest_find_audit(const char *tenant, const char *component, const char *action,
                         const char *correlation_id, int timeout_ms);

/* --- Kafka ------------------------------------------------------------------ */

/* An event looked for on a topic by its event_id, and where it was found. */
typedef struct itest_found {
    char event_id[48];   /* in */
    int found;           /* out: 1 once seen */
    int32_t partition;
    int64_t offset;
    char key[128];       /* the message key */
    json_t *event;       /* the decoded event, a new reference (json_decref) */
} itest_found_t;
/* Reads topic from its beginning with a fresh group until every want[i]
 * (a message of Avro type `type` whose event_id is want[i].event_id) is
 * found, or timeout_ms passes; messages that do not decode are passed over
 * (poison tests share the topics).  Returns 1 when all were found. */
int itest_find_events(const char *topic, const char *type, itest_found_t *want, size_t n,
                      int timeout_ms);

/* itest_produce_event that also gives where the message landed. */
void itest_produce_event_at(const char *topic, const char *type, json_t *event,
                            int32_t *partition, int64_t *offset);
/* Partitions of a topic, from the broker's metadata.  Fails the test when
 * the topic is unknown. */
int itest_topic_partitions(const char *topic);
/* High watermark (the next offset) of one partition of a topic. */
int64_t itest_high_watermark(const char *topic, int32_t partition);
/* High watermarks of every partition of a topic into ends[0..n), one client
 * for all; returns n.  Fails the test when the topic has more than max. */
int itest_topic_ends(const char *topic, int64_t *ends, int max);
/* Sum of the high watermarks of every partition of a topic. */
int64_t itest_topic_end(const char *topic);

/* --- a private Redis that restarts slowly ----------------------------------------- */

/* Fills the Redis on port with ITEST_FILL_KEYS filler keys and SAVEs its
 * RDB file, so that a restart over the same directory loads them. */
#define ITEST_FILL_KEYS 20000
void itest_redis_fill_and_save(int port);
/* Starts redis-server again on port over var/test-redis/<name> (the private
 * Redis of that name, stopped by the caller) with a per-key load delay, and
 * waits until it answers LOADING (it loads for a few seconds).  Returns its
 * pid; fails the test when it never answers LOADING. */
pid_t itest_private_redis_restart_loading(const char *name, int port);
/* The pid of the redis-server answering on 127.0.0.1:port, as it reports
 * itself (INFO server process_id), for a test that kills it; fails the test
 * when it does not answer. */
pid_t itest_redis_node_pid(int port);
/* Deletes the filler keys of itest_redis_fill_and_save. */
void itest_redis_unfill(int port);

/* --- raw HTTP (framing a client library would not send) ------------------------ */

/* A TCP connection to 127.0.0.1:port with `data` (len bytes) sent on it; the
 * socket, or fails the test. */
int itest_raw_send(int port, const void *data, size_t len);
/* Reads what the server sends on fd until it closes the connection or
 * timeout_ms passes (a bounded wait, never a timing assertion), into buf
 * (NUL-terminated, truncated to size - 1), then closes fd.  Returns the
 * status of the first status line, 0 when none arrived in time; *waited_ms
 * (may be NULL) gets the time until the first byte, or -1 when none came. */
int itest_raw_answer(int fd, char *buf, size_t size, int timeout_ms, long *waited_ms);
/* POSTs body to 127.0.0.1:port path as one HTTP/1.1 request (Connection:
 * close) with Content-Type ctype and, when authz is not NULL,
 * "Authorization: <authz>"; waits up to 30 s for the answer.  Returns its
 * status (0: none), the raw answer in raw (as itest_raw_answer) and, when
 * json is not NULL, the answer's body parsed as JSON in *json (a new
 * reference; NULL when it is not JSON). */
int itest_http_post_raw(int port, const char *path, const char *ctype, const char *authz,
                        const char *body, json_t **json, char *raw, size_t raw_size);
/* "Basic " and the standard base64 of "<id>:<secret>" (RFC 7617) into out,
 * which holds 512 bytes (id and secret together at most 300). */
void itest_basic_auth(const char *id, const char *secret, char out[512]);
/* POST /v1/tokens/verify {"token":tok} (tok at most 8000 bytes) to the
 * gov-edge at port: the status; the house error code (or "") in code; the
 * answer in *answer when answer is not NULL (a new reference).  A 200 must
 * say "active": true, else the test fails. */
int itest_token_verify(int port, const char *tok, char code[64], json_t **answer);
/* POSTs body (Content-Type ctype; Authorization authz when not NULL) to
 * path on 127.0.0.1:port over a new connection ("Connection: close") and
 * reads the answer as itest_raw_answer (30 s) into raw: its status. */
int itest_raw_post(int port, const char *path, const char *ctype, const char *authz,
                   const char *body, char *raw, size_t raw_size);

/* --- replaying a partition (per-tenant applied offsets) ---------------------- */

/* The exact state of keys[0..n) in r: one line per key, its name and the
 * hex of its DUMP (type and value byte for byte; "(nil)" when absent).
 * New string (free). */
char *itest_redis_snapshot(gov_redis_t *r, const char *const *keys, size_t n);
/* Makes the private processor p replay a partition as after a lost
 * watermark: deletes gov:offsets:<p->group>:<topic>:<partition> in r (its
 * Redis), then waits until p counted a rebuild of that partition
 * (processor_rebuilds_total) and its watermark is back at `offset` or
 * beyond - every message up to offset was consumed again.  1 when both
 * happened within timeout_ms. */
/* 1 when the private processor p logged (var/test-logs/<p->log>) that it
 * finished the tenant's message at `offset` as already applied, naming
 * `applied` as the tenant's applied offset it holds (the stored one). */
int itest_log_already_applied(const itest_proc_t *p, const char *tenant, int64_t offset,
                              int64_t applied);
int itest_replay_partition(const itest_proc_t *p, gov_redis_t *r, const char *topic,
                           int32_t partition, int64_t offset, int timeout_ms);

/* Signs ev (a KeyRotated, ClientRegistered or ClientRemoved built by
 * gov_events; borrowed, modified) as the stack's identity operator
 * (GOV_IDENTITY_OPERATOR_KEY_FILE under the id GOV_IDENTITY_TRUST_FILE
 * gives it, from var/stack.env) and returns it; fails the test when the
 * stack has no identity operator.  itest_govctl and itest_proc_start pass
 * the same identity trust (and govctl the operator key) to what they start
 * unless extra_env names others. */
json_t *itest_identity_signed(json_t *ev, const char *type);

/* --- the nginx gateway (deploy/nginx) and its counting upstream ---------------- */

/* One HTTP/1.1 request (Connection: close) to 127.0.0.1:port: method,
 * target, extra header lines ("Name: value\r\n"..., may be NULL), a body
 * (may be NULL; Content-Length is added).  The status (0: none), the raw
 * answer in raw (as itest_raw_answer, 30 s). */
int itest_http_request(int port, const char *method, const char *target, const char *headers,
                       const char *body, char *raw, size_t raw_size);
/* The value of the first header `name` (any case) of the raw answer raw
 * into out ("" when absent). */
void itest_header_of(const char *raw, const char *name, char *out, size_t size);
/* Starts tests/integration/upstream_counter named `name` on a free port
 * (*port), the build's own beside itest_bin("gov-edge") or the release one;
 * waits until its /__counts answers; fails the test otherwise. */
pid_t itest_upstream_start(const char *name, const char *logname, int *port);
/* The counting upstream's /__counts on its own port (a new reference);
 * fails the test unless it answers 200 under `name`. */
json_t *itest_upstream_counts(int port, const char *name);
/* Renders deploy/nginx/gateway.conf.in into a fresh work directory (dir)
 * for `what`: listening on port, over the gov-edge at edge_port and the
 * upstream at upstream_port, authz timeouts `timeout` ("2s"); starts nginx
 * on it (one process, no daemon) and waits until it answers its own 404
 * for /v1/authz.  Its pid; fails the test otherwise.  Remove dir with
 * itest_workdir_remove after stopping it. */
pid_t itest_gateway_start(const char *what, int edge_port, int upstream_port, int port,
                          const char *timeout, char *dir, size_t dir_size);

/* --- Kafka stalls and registered clients (REVIEW11 H1, M4) --------------------- */

/* A TCP listener on 127.0.0.1 that never accepts: the kernel completes
 * every handshake into its backlog and buffers what is sent, and nothing
 * ever answers - at the socket level exactly a broker whose process is
 * stopped (SIGSTOP), without touching the stack's broker.  Its port in
 * *port; the socket (close it when done).  Fails the test otherwise. */
int itest_kafka_blackhole(int *port);
/* A private gov-edge (itest_edge_start_on_stack with extra, at most 6)
 * whose brokers are a fresh itest_kafka_blackhole, its log emptied first;
 * the black hole's socket (close it after stopping the edge). */
int itest_edge_start_stalled(itest_proc_t *edge, const char *prefix, const char *const *extra,
                             const char *logname);
/* 1 when the /readyz body readyz (borrowed) lists component name in state
 * ("degraded", "ok", ...). */
int itest_component_is(const json_t *readyz, const char *name, const char *state);
/* Registers a client of tenant with scopes (`govctl clients add`, on the
 * stack's Kafka) and waits until the stack's gov-edge (GOV_EDGE_URL)
 * issues it a token (the stack's gov-identity materialized it).  Its id
 * (id_size bytes) and the Basic Authorization value into authz.  Fails
 * the test otherwise. */
void itest_client_register(const char *tenant, const char *scopes, char *id, size_t id_size,
                           char authz[512]);

/* --- a client, a private edge, upstream and nginx over the stack ------------- */

/* Registers a client of tenant with scopes ("read", "sessions:start") by
 * `govctl clients add` against the stack's Kafka, its id and secret into
 * id/secret, and waits until the stack's gov-identity materialized it in the
 * stack's Redis; fails the test otherwise.  The one place that registers:
 * when `clients add` changes, only this changes. */
void itest_client_add(const char *tenant, const char *scopes, char *id, size_t id_size,
                      char *secret, size_t secret_size);

/* The set-up test_chain and test_gateway share: a client of the tenant, a
 * private gov-edge over the stack (itest_edge_start_on_stack, id
 * "edge-itest-<name>-<unique>", waited until its /readyz answers 200), a
 * private counting upstream
 * ("upstream-itest-<name>-<unique>") and a private nginx over both (authz
 * timeouts 2 s).  Logs var/test-logs/itest-<name>-{edge,upstream,nginx}.log. */
typedef struct itest_rig {
    char client_id[128], client_secret[128];
    itest_proc_t edge;
    char upstream_name[96];
    pid_t upstream_pid, nginx_pid;     /* -1 when not running */
    int upstream_port, gw_port;        /* gw_port: nginx's */
    char prefix[256];                  /* nginx's work directory */
} itest_rig_t;

/* Starts all of it for `name` ("chain", "gateway"); edge_extra is
 * itest_edge_start_on_stack's extra (GOV_KAFKA_BROKERS at least).  Fails the
 * test when a part does not start. */
void itest_rig_start(itest_rig_t *g, const char *name, const char *tenant, const char *scopes,
                     const char *const *edge_extra);
/* Stops nginx, the upstream and the edge, removes nginx's directory: 0 when
 * each exited cleanly (or was not running), -1 otherwise. */
int itest_rig_stop(itest_rig_t *g);
/* The upstream's /__counts (a new reference) and its request count; fail
 * the test unless it answers under its own name. */
json_t *itest_rig_counts(const itest_rig_t *g);
long itest_rig_requests(const itest_rig_t *g);

/* --- floods ------------------------------------------------------------------ */

/* One raw request (len bytes) on a keep-alive connection *fd to 127.0.0.1:port
 * (opened when *fd is -1; closed and set to -1 after an error or a
 * "Connection: close" answer): its status (0: no complete answer within
 * 10 s), the answer in buf (headers and a Content-Length body).  For flood
 * threads: no cmocka call, so it may run off the test's thread; keep-alive
 * keeps a flood from spending thousands of sockets. */
int itest_keepalive_request(int *fd, int port, const char *req, size_t len, char *buf,
                            size_t size);
/* Lowers the calling thread to nice 19: a flood stands for outside clients
 * and must not starve the stack's own redis-server on a shared machine. */
void itest_thread_nice(void);

/* itest_client_add in two halves: `govctl clients add` only (acknowledged
 * by Kafka, not yet materialized), and the wait until the stack's Redis
 * holds the client (polled every 5 ms, up to 20 s); each fails the test on
 * error. */
void itest_client_add_unmaterialized(const char *tenant, const char *scopes, char *id,
                                     size_t id_size, char *secret, size_t secret_size);
void itest_client_wait_known(const char *id);

/* --- JSON answers ------------------------------------------------------------ */

/* The error code of a raw HTTP answer's JSON body into out ("" when none):
 * {"error":{"code":...}} or the OAuth {"error":"..."}. */
void itest_error_code(const char *raw, char *out, size_t size);
/* The string member `key` of a raw HTTP answer's JSON body into out; 1 when
 * there is one (out "" otherwise). */
int itest_answer_string(const char *raw, const char *key, char *out, size_t size);
/* Produces buf (borrowed) to topic under key with the CreateTime
 * timestamp_ms the producer chooses (ms since the epoch; librdkafka reads 0
 * as "now", so the oldest time it can send is 1) and the headers given,
 * waits for the broker's acknowledgement, and puts the partition and offset
 * into *partition, *offset (either may be NULL).  Fails the test when the
 * message is not delivered.  For what a producer of a topic can forge. */
void itest_produce_raw_at(const char *topic, const char *key, const void *buf, size_t len,
                          int64_t timestamp_ms, const gov_kafka_header_t *headers,
                          size_t nheaders, int32_t *partition, int64_t *offset);

/* The rotator lease's epoch in Redis r as header x-gov-lease-epoch: *h
 * points into epoch (24 bytes, the caller's) and 1 is returned when
 * identity:{keys}:rotator:epoch is set, 0 (no header) when it is not.  A
 * test that publishes KeyRotated to a gov-identity whose Redis has a lease
 * (its own rotator took it) speaks under the lease's epoch, as govctl does:
 * without the header the event is fenced (key_lease_stale). */
size_t itest_lease_epoch_header(gov_redis_t *r, char epoch[24], gov_kafka_header_t *h);

#endif /* ITEST_UTIL_H */
