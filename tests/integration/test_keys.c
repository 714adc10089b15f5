/* test_keys.c - signing-key rotation: `govctl keys rotate` and gov-identity's
 * rotator, against the real Kafka of the stack, a PRIVATE gov-identity (its
 * own component name, consumer group, Redis and key directory) and a
 * private SoftHSM2 token, so neither the stack's gov-identity nor its key
 * store can pass a test in its place: every state is read from the private
 * Redis, and the private rotator only acts on keys its own store holds.
 *
 * Short timings (propagation 3 s, longest token 2 s, leeway 1 s, a tick of
 * 200 ms) make the clock-driven transitions happen within the test; every
 * step waits on the Redis state, never on a fixed sleep.  Checked: the
 * first key activates at once, a rotation publishes the new key pending
 * (in the JWKS before it signs) with activates_at >= now + delay and the
 * previous key retiring with retires_at = activates_at + max TTL + leeway;
 * pending -> active and retiring -> retired happen at (not before) their
 * times, and the retired key leaves the JWKS only then; an activation
 * sooner than the delay is refused with key_activation_too_soon; the
 * scheduled rotation fires on its own; the metrics show on the private
 * admin port; a PKCS#11 rotation keeps the key in the token; `keys retire`
 * (the emergency path) takes a key out of the JWKS at once; the key file
 * is 0600 in a 0700 directory and its private bytes are in no Kafka
 * message, Redis value or log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "gov_alloc.h"
#include "gov_b64url.h"
#include "gov_events.h"
#include "gov_keyrotate.h"
#include "gov_state_identity.h"
#include "gov_time.h"
#include "itest_util.h"

#define COMPONENT "gov-identity-itest-keys"
#define WAIT_MS 30000
#define PROPAGATION_S 3
#define TTL_MAX_S 2
#define LEEWAY_S 1
#define US 1000000LL

static itest_proc_t proc;
static pid_t redis_pid = -1;
static int redis_port;
static char env_redis[64], env_brokers[256], env_dir[400], key_dir[300];
static char g_out[1 << 14], g_err[1 << 14];
static char kid1[GOV_SIGNER_KID_SIZE], kid2[GOV_SIGNER_KID_SIZE];
static char token_label[64];

static const char *timing_env[] = {"GOV_KEY_PROPAGATION_S=3", "GOV_TOKEN_TTL_MAX_S=2",
                                   "GOV_TOKEN_LEEWAY_S=1", "GOV_SIGNER_BACKEND=file", NULL};

/* --- helpers ----------------------------------------------------------------------- */

/* The private gov-identity's env: private Redis, key dir, short timings,
 * a fast tick, and the rotation period given. */
static void start_identity(const char *period) {
    char env_period[64], env_op[1100];
    snprintf(env_period, sizeof env_period, "GOV_KEY_ROTATION_PERIOD_S=%s", period);
    /* its rotator signs what it produces with the stack's identity operator
     * key, which the stack's identity trust lists */
    snprintf(env_op, sizeof env_op, "GOV_IDENTITY_OPERATOR_KEY_FILE=%s",
             itest_env("GOV_IDENTITY_OPERATOR_KEY_FILE", ""));
    const char *env[] = {env_redis, env_brokers, env_dir, env_period,
                         "GOV_KEY_ROTATOR_TICK=200ms", timing_env[0], timing_env[1],
                         timing_env[2], timing_env[3], env_op, NULL};
    itest_proc_start(&proc, "gov-identity", COMPONENT, env, "itest-gov-identity-keys.log");
}

/* govctl keys <args> with the private Redis, key dir and timings. */
static int govctl_keys(const char *const *extra, const char *const *args) {
    const char *env[16];
    size_t n = 0;
    env[n++] = env_redis;
    env[n++] = env_dir;
    for (size_t i = 0; timing_env[i]; i++)
        env[n++] = timing_env[i];
    for (size_t i = 0; extra && extra[i] && n < 15; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    return itest_govctl(env, args, g_out, sizeof g_out, g_err, sizeof g_err);
}

/* The one JSON line of `keys rotate` (new reference). */
static json_t *rotate_line(void) {
    json_t *j = json_loads(g_out, 0, NULL);
    if (j == NULL)
        fail_msg("keys rotate printed no JSON: %s / %s", g_out, g_err);
    return j;
}

/* The key as the private Redis holds it (found 0: absent). */
static gov_state_identity_key_rec_t key_get(const char *kid) {
    gov_state_identity_key_rec_t k;
    char eb[200];
    assert_int_equal(gov_state_identity_key_get(itest_redis(), kid, &k, eb, sizeof eb), GOV_OK);
    return k;
}

static char *jwks(void) {
    char *j = NULL, eb[200];
    size_t len = 0;
    assert_int_equal(gov_state_identity_jwks_get(itest_redis(), &j, &len, eb, sizeof eb), GOV_OK);
    return j;
}

static int in_jwks(const char *kid) {
    char needle[80], *doc = jwks();
    snprintf(needle, sizeof needle, "\"kid\":\"%s\"", kid);
    int in = doc && strstr(doc, needle) != NULL;
    gov_free(doc);
    return in;
}

/* Waits for kid's state in the private Redis.  Meanwhile the JWKS must
 * hold kid (unless the state waited for is "retired" and the clock is past
 * its retires_at): a key leaves the JWKS only after it retired. */
typedef struct state_want {
    const char *kid, *state;
    int64_t seen_at;   /* gov_now_micros when first observed */
} state_want_t;

static int state_is(void *opaque) {
    state_want_t *w = opaque;
    gov_state_identity_key_rec_t k = key_get(w->kid);
    int done = k.found && strcmp(k.state, w->state) == 0;
    int64_t now = gov_now_micros();
    if (k.found && !in_jwks(w->kid) && strcmp(k.state, "retired") != 0)
        fail_msg("%s left the JWKS while %s (retires_at %lld, now %lld)", w->kid, k.state,
                 (long long)k.retires_at, (long long)now);
    gov_state_identity_key_clear(&k);
    if (done)
        w->seen_at = now;
    return done;
}

static int64_t wait_state(const char *kid, const char *state) {
    state_want_t w = {kid, state, 0};
    if (itest_wait_for(state_is, &w, WAIT_MS, 50) < 0)
        fail_msg("%s did not become %s in %s's Redis", kid, state, COMPONENT);
    return w.seen_at;
}

static void copy_kid(json_t *line, const char *member, char out[GOV_SIGNER_KID_SIZE]) {
    const char *s = json_string_value(json_object_get(line, member));
    assert_non_null(s);
    assert_int_equal(strlen(s), GOV_SIGNER_KID_LEN);
    snprintf(out, GOV_SIGNER_KID_SIZE, "%s", s);
}

/* --- setup --------------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    redis_pid = itest_private_redis("keys", &redis_port);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_redis); /* itest_redis() talks to the private Redis */
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    if (itest_workdir_new("keys", key_dir, sizeof key_dir) != 0)
        return -1;
    snprintf(env_dir, sizeof env_dir, "GOV_SIGNER_KEY_DIR=%s", key_dir);
    start_identity("0");
    itest_must_catch_up(&proc, 9);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_proc_stop(&proc);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    if (token_label[0]) {
        const char *argv[] = {"softhsm2-util", "--delete-token", "--token", token_label, NULL};
        itest_run(argv, NULL, NULL, 0);
    }
    itest_workdir_remove(key_dir);
    return rc;
}

/* --- the file store: first key, rotation, the clock's transitions ---------------- */

static void test_rotate_and_transitions(void **state) {
    (void)state;
    /* the first key of this store activates at once */
    int rc = govctl_keys(NULL, (const char *const[]){"keys", "rotate", "--activate-in", "0", NULL});
    itest_expect_ok(rc, g_err, __LINE__);
    json_t *line = rotate_line();
    copy_kid(line, "kid", kid1);
    assert_true(json_is_null(json_object_get(line, "previous_kid")));
    assert_true(json_is_null(json_object_get(line, "retires_at")));
    json_decref(line);
    wait_state(kid1, "active");
    assert_true(in_jwks(kid1));

    /* the key file: 0600 in a 0700 directory */
    char path[400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.pem", key_dir, kid1);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(key_dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* sooner than the propagation delay while a key is current: refused */
    rc = govctl_keys(NULL, (const char *const[]){"keys", "rotate", "--activate-in", "1", NULL});
    assert_int_equal(rc, 1);
    assert_non_null(strstr(g_err, "govctl: key_activation_too_soon: "));
    assert_string_equal(g_out, "");

    /* a rotation: the new key pending, the old one retiring */
    int64_t before = gov_now_micros();
    rc = govctl_keys(NULL, (const char *const[]){"keys", "rotate", NULL});
    itest_expect_ok(rc, g_err, __LINE__);
    line = rotate_line();
    copy_kid(line, "kid", kid2);
    int64_t act2 = json_integer_value(json_object_get(line, "activates_at"));
    int64_t ret1 = json_integer_value(json_object_get(line, "retires_at"));
    assert_string_equal(json_string_value(json_object_get(line, "previous_kid")), kid1);
    json_decref(line);
    assert_true(act2 >= before + PROPAGATION_S * US);
    assert_int_equal(ret1, act2 + (TTL_MAX_S + LEEWAY_S) * US);

    /* published before it signs: pending and in the JWKS */
    wait_state(kid2, "pending");
    assert_true(in_jwks(kid2));
    gov_state_identity_key_rec_t k2 = key_get(kid2);
    assert_int_equal(k2.activates_at, act2);
    assert_string_equal(k2.previous_kid, kid1);
    assert_string_equal(k2.backend, "file");
    gov_state_identity_key_clear(&k2);
    wait_state(kid1, "retiring");
    gov_state_identity_key_rec_t k1 = key_get(kid1);
    assert_int_equal(k1.retires_at, ret1);
    gov_state_identity_key_clear(&k1);

    /* the clock: pending -> active at activates_at, not before */
    int64_t seen = wait_state(kid2, "active");
    assert_true(seen >= act2);
    /* retiring -> retired at retires_at; in the JWKS until then (state_is) */
    seen = wait_state(kid1, "retired");
    assert_true(seen >= ret1);
    assert_false(in_jwks(kid1));
    assert_true(in_jwks(kid2));

    /* the private admin port shows the transitions it materialized */
    assert_true(itest_proc_metric(&proc, "identity_key_transitions_total",
                                  (const char *[]){"state", "retired", NULL}) >= 1);
    assert_true(itest_proc_metric(&proc, "identity_active_key_age_seconds", NULL) >= 0);
    /* rotations by hand are govctl's, not this process's */
    assert_true(itest_proc_metric(&proc, "identity_key_rotations_total", NULL) == 0);
}

/* --- the private key's bytes are nowhere but in its file ---------------------------- */

typedef struct needles {
    unsigned char seed[32];
    char seed_b64url[48], seed_hex[65], pem_body[128];
    int hits;
    long long scanned;
} needles_t;

static int holds(const needles_t *n, const void *buf, size_t len) {
    return memmem(buf, len, n->seed, sizeof n->seed) || memmem(buf, len, n->seed_b64url, 43) ||
           memmem(buf, len, n->seed_hex, 64) ||
           (n->pem_body[0] && memmem(buf, len, n->pem_body, strlen(n->pem_body)));
}

static int scan_msg(void *opaque, const gov_kafka_msg_t *m) {
    needles_t *n = opaque;
    n->scanned++;
    if (holds(n, m->value, m->len))
        n->hits++;
    return 0;   /* read to the end */
}

static void test_private_key_stays_in_its_file(void **state) {
    (void)state;
    needles_t n = {0};
    char path[400];
    snprintf(path, sizeof path, "%s/%s.pem", key_dir, kid2);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    size_t len = sizeof n.seed;
    assert_int_equal(EVP_PKEY_get_raw_private_key(k, n.seed, &len), 1);
    EVP_PKEY_free(k);
    gov_b64url_encode(n.seed, 32, n.seed_b64url);
    for (int i = 0; i < 32; i++)
        snprintf(n.seed_hex + 2 * i, 3, "%02x", n.seed[i]);
    size_t pem_len = 0;
    char *pem = itest_read_file(path, &pem_len);
    const char *body = strchr(pem, '\n');   /* the base64 line after the header */
    assert_non_null(body);
    snprintf(n.pem_body, sizeof n.pem_body, "%.*s", (int)strcspn(body + 1, "\n"), body + 1);
    free(pem);

    /* Kafka: every message of identity.keys and identity.audit */
    itest_consume_until(GOV_TOPIC_IDENTITY_KEYS, scan_msg, &n, 5000);
    itest_consume_until(GOV_TOPIC_AUDIT, scan_msg, &n, 5000);
    assert_true(n.scanned > 0);
    assert_int_equal(n.hits, 0);

    /* Redis: every string and hash value of the private Redis */
    char cursor[32] = "0";
    long long values = 0;
    do {
        redisReply *rep = itest_redis_cmd(itest_redis(), 4,
                                          (const char *[]){"SCAN", cursor, "COUNT", "500"}, NULL);
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            const char *key = rep->element[1]->element[i]->str;
            redisReply *t = itest_redis_cmd(itest_redis(), 2, (const char *[]){"TYPE", key}, NULL);
            const char *cmd = strcmp(t->str, "string") == 0 ? "GET"
                              : strcmp(t->str, "hash") == 0 ? "HGETALL"
                                                            : NULL;
            freeReplyObject(t);
            if (cmd == NULL)
                continue;
            redisReply *v = itest_redis_cmd(itest_redis(), 2, (const char *[]){cmd, key}, NULL);
            if (v->type == REDIS_REPLY_STRING) {
                values++;
                assert_false(holds(&n, v->str, v->len));
            }
            for (size_t j = 0; v->type == REDIS_REPLY_ARRAY && j < v->elements; j++) {
                values++;
                assert_false(holds(&n, v->element[j]->str, v->element[j]->len));
            }
            freeReplyObject(v);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    assert_true(values > 0);

    /* logs: the private gov-identity's, and what govctl printed */
    size_t log_len = 0;
    char *log = itest_read_file(itest_log_path(proc.log), &log_len);
    assert_non_null(log);
    assert_true(log_len > 0);
    assert_false(holds(&n, log, log_len));
    free(log);
    assert_false(holds(&n, g_out, strlen(g_out)));
    assert_false(holds(&n, g_err, strlen(g_err)));
}

/* --- PKCS#11: the key is generated in the token ------------------------------------- */

static void test_rotate_pkcs11(void **state) {
    (void)state;
    /* the stack's SoftHSM2 (var/stack.env when not in the environment),
     * for softhsm2-util and govctl alike */
    const char *module = itest_env("GOV_PKCS11_MODULE", NULL);   /* itest_env's buffer */
    if (module == NULL)
        fail_msg("the stack's SoftHSM2 module (GOV_PKCS11_MODULE) is not configured");
    setenv("GOV_PKCS11_MODULE", module, 1);
    const char *conf = itest_env("SOFTHSM2_CONF", NULL);
    if (conf == NULL)
        fail_msg("the stack's SOFTHSM2_CONF is not configured");
    setenv("SOFTHSM2_CONF", conf, 1);
    /* a token of this test's own in the stack's SoftHSM2: a rotation
     * retires the store's current keys, and the stack token's belong to
     * other tests and the edge */
    itest_unique("itk", token_label, 32);
    const char *init[] = {"softhsm2-util", "--init-token", "--free", "--label", token_label,
                          "--so-pin", "itest-so-pin", "--pin", "itest-user-pin", NULL};
    if (itest_run(init, NULL, NULL, 0) != 0)
        fail_msg("softhsm2-util --init-token %s failed", token_label);
    char env_label[96];
    snprintf(env_label, sizeof env_label, "GOV_PKCS11_TOKEN_LABEL=%s", token_label);
    const char *extra[] = {env_label, "GOV_PKCS11_PIN=itest-user-pin", NULL};
    int rc = govctl_keys(extra, (const char *const[]){"keys", "rotate", "--backend", "pkcs11",
                                                      "--activate-in", "0", NULL});
    itest_expect_ok(rc, g_err, __LINE__);
    json_t *line = rotate_line();
    char kid[GOV_SIGNER_KID_SIZE], path[400];
    copy_kid(line, "kid", kid);
    json_decref(line);
    wait_state(kid, "active");
    gov_state_identity_key_rec_t k = key_get(kid);
    assert_string_equal(k.backend, "pkcs11");
    gov_state_identity_key_clear(&k);
    assert_true(in_jwks(kid));
    /* in the token, not in a file */
    snprintf(path, sizeof path, "%s/%s.pem", key_dir, kid);
    assert_int_equal(access(path, F_OK), -1);
    /* the file store's keys were not touched by a rotation in the token */
    k = key_get(kid2);
    assert_string_equal(k.state, "active");
    gov_state_identity_key_clear(&k);

    /* emergency: retired at once, out of the JWKS; twice is refused */
    rc = govctl_keys(NULL, (const char *const[]){"keys", "retire", kid, NULL});
    itest_expect_ok(rc, g_err, __LINE__);
    line = rotate_line();
    assert_true(json_integer_value(json_object_get(line, "retires_at")) > 0);
    json_decref(line);
    wait_state(kid, "retired");
    assert_false(in_jwks(kid));
    rc = govctl_keys(NULL, (const char *const[]){"keys", "retire", kid, NULL});
    assert_int_equal(rc, 1);
    assert_non_null(strstr(g_err, "govctl: key_already_retired: "));
    rc = govctl_keys(NULL, (const char *const[]){"keys", "retire",
                                                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL});
    assert_int_equal(rc, 1);
    assert_non_null(strstr(g_err, "govctl: key_not_found: "));
    rc = govctl_keys(NULL, (const char *const[]){"keys", "retire", NULL});
    itest_expect_usage(rc, g_err, __LINE__);
}

/* --- the scheduled rotation ------------------------------------------------------------ */

typedef struct successor {
    char kid[GOV_SIGNER_KID_SIZE];
} successor_t;

/* A key in Redis whose previous_kid is kid2: the scheduled rotation's. */
static int successor_found(void *opaque) {
    successor_t *s = opaque;
    gov_keyrotate_key_t *keys = NULL;
    size_t n = 0;
    gov_reason_t why;
    char eb[200];
    assert_int_equal(gov_keyrotate_keys_load(itest_redis(), NULL, &keys, &n, &why, eb, sizeof eb),
                     GOV_OK);
    for (size_t i = 0; i < n; i++)
        if (keys[i].rec.previous_kid && strcmp(keys[i].rec.previous_kid, kid2) == 0)
            snprintf(s->kid, sizeof s->kid, "%s", keys[i].kid);
    gov_keyrotate_keys_free(keys, n);
    return s->kid[0] != 0;
}

static void test_scheduled_rotation(void **state) {
    (void)state;
    /* kid2 is older than 2 s: a period of 2 s makes the rotation due */
    assert_int_equal(itest_proc_stop(&proc), 0);
    start_identity("2");
    successor_t s = {{0}};
    if (itest_wait_for(successor_found, &s, WAIT_MS, 100) < 0)
        fail_msg("%s did not rotate on its own", COMPONENT);
    /* not waited for as pending: with a 2 s period its own successor may
     * already retire it */
    gov_state_identity_key_rec_t k = key_get(s.kid);
    assert_int_equal(k.activates_at - k.created_at, PROPAGATION_S * US);
    gov_state_identity_key_clear(&k);
    wait_state(kid2, "retiring");
    k = key_get(kid2);
    gov_state_identity_key_rec_t kn = key_get(s.kid);
    assert_int_equal(k.retires_at, kn.activates_at + (TTL_MAX_S + LEEWAY_S) * US);
    gov_state_identity_key_clear(&k);
    gov_state_identity_key_clear(&kn);
    /* its new key file is in the private store */
    char path[400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.pem", key_dir, s.kid);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_true(itest_proc_metric(&proc, "identity_key_rotations_total", NULL) >= 1);
    assert_true(itest_proc_metric(&proc, "identity_active_key_age_seconds", NULL) >= 0);
    /* this process holds the rotator lease of its Redis */
    redisReply *rep = itest_redis_cmd(itest_redis(), 2,
                                      (const char *[]){"GET", gov_state_identity_rotator_key()},
                                      NULL);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_true(strncmp(rep->str, COMPONENT "/", strlen(COMPONENT) + 1) == 0);
    freeReplyObject(rep);
}

/* A DLQ message keyed kid, dead-lettered by COMPONENT. */
typedef struct dlq_key {
    const char *kid;
    char reason[64];
} dlq_key_t;

static int match_dlq_key(void *opaque, const gov_kafka_msg_t *m) {
    dlq_key_t *f = opaque;
    char comp[96] = "";
    if (m->key_len != strlen(f->kid) || memcmp(m->key, f->kid, m->key_len) != 0)
        return 0;
    itest_msg_header(m, "x-gov-component", comp, sizeof comp);
    if (strcmp(comp, COMPONENT) != 0)
        return 0;
    itest_msg_header(m, "x-gov-dlq-reason", f->reason, sizeof f->reason);
    return 1;
}

static int count_key_files(void) {
    char cmdline[600], out[64] = "";
    snprintf(cmdline, sizeof cmdline, "ls -1 '%s' | grep -c '\\.pem$'", key_dir);
    const char *argv[] = {"sh", "-c", cmdline, NULL};
    itest_run(argv, NULL, out, sizeof out);
    return atoi(out);
}

/* The rotator lease's owner (into owner) and epoch. */
static int64_t lease_of(char *owner, size_t size) {
    redisReply *rep = itest_redis_cmd(itest_redis(), 2,
                                      (const char *[]){"GET", gov_state_identity_rotator_key()},
                                      NULL);
    snprintf(owner, size, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
    rep = itest_redis_cmd(itest_redis(), 2,
                          (const char *[]){"GET", gov_state_identity_rotator_epoch_key()}, NULL);
    int64_t epoch = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);
    return epoch;
}

static int lease_is_ours(void *opaque) {
    char owner[256];
    (void)opaque;
    lease_of(owner, sizeof owner);
    return strncmp(owner, COMPONENT "/", strlen(COMPONENT) + 1) == 0;
}

/* Two rotators (review 10, L2): the scheduled one (this gov-identity, a 2 s
 * period: a rotation is due 2 s after every new key) and an operator's
 * `govctl keys rotate`.  govctl takes the lease over (a new epoch) and keeps
 * it 10 s past its rotation; meanwhile the scheduled rotator stands by and
 * does not rotate the operator's new key again; then it takes the lease
 * back under a newer epoch.  Before: govctl ignored the lease, and the
 * rotator rotated the operator's key 2 s later - two rotations for one. */
static void test_operator_rotation_takes_the_lease(void **state) {
    (void)state;
    char owner[256];
    if (itest_wait_for(lease_is_ours, NULL, WAIT_MS, 50) < 0)
        fail_msg("%s does not hold the rotator lease", COMPONENT);
    int64_t e1 = lease_of(owner, sizeof owner);
    assert_true(e1 >= 1);
    int rc = govctl_keys(NULL, (const char *const[]){"keys", "rotate", NULL});
    itest_expect_ok(rc, g_err, __LINE__);
    json_t *line = rotate_line();
    char kid[GOV_SIGNER_KID_SIZE];
    copy_kid(line, "kid", kid);
    int64_t e2 = (int64_t)json_integer_value(json_object_get(line, "lease_epoch"));
    json_decref(line);
    if (e2 <= e1)
        fail_msg("govctl keys rotate did not take the rotator lease over (epoch %lld, was %lld)",
                 (long long)e2, (long long)e1);
    wait_state(kid, "pending");
    /* the scheduled rotator, paused past its lease, wakes up and produces
     * what was due in its epoch e1: the new key's activation, early.
     * gov-identity refuses it (key_lease_stale); the key stays pending. */
    gov_state_identity_key_rec_t rec = key_get(kid);
    gov_key_rotated_t e = {.occurred_at = gov_now_micros(), .kid = kid, .alg = rec.alg,
                           .public_jwk = rec.public_jwk, .backend = rec.backend,
                           .state = "active", .created_at = rec.created_at,
                           .activates_at = rec.activates_at, .retires_at = -1,
                           .previous_kid = rec.previous_kid};
    json_t *ev = itest_identity_signed(gov_events_key_rotated_new(&e), "KeyRotated");
    gov_state_identity_key_clear(&rec);
    assert_non_null(ev);
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[256], stale[24];
    assert_int_equal(gov_avro_encode(itest_avro(), "KeyRotated", ev, &buf, &len, eb, sizeof eb),
                     GOV_OK);
    json_decref(ev);
    snprintf(stale, sizeof stale, "%lld", (long long)e1);
    gov_kafka_header_t h = {GOV_KEYROTATE_EPOCH_HEADER, stale, strlen(stale)};
    assert_int_equal(gov_kafka_produce_sync(itest_producer(), GOV_TOPIC_IDENTITY_KEYS, kid,
                                            strlen(kid), buf, len, &h, 1, 15000, NULL, NULL, eb,
                                            sizeof eb),
                     GOV_OK);
    gov_free(buf);
    dlq_key_t dk = {kid, ""};
    if (!itest_consume_until(GOV_TOPIC_IDENTITY_KEYS ".dlq", match_dlq_key, &dk, WAIT_MS))
        fail_msg("the KeyRotated of %s under stale lease epoch %lld was not dead-lettered by %s",
                 kid, (long long)e1, COMPONENT);
    assert_string_equal(dk.reason, "key_lease_stale");
    rec = key_get(kid);
    assert_string_equal(rec.state, "pending");
    gov_state_identity_key_clear(&rec);
    /* while govctl holds it, no scheduled rotation of its key (due after 2 s) */
    int64_t until = gov_mono_micros() + 20LL * 1000000;
    int polls = 0;
    while (lease_of(owner, sizeof owner) == e2 && strncmp(owner, "govctl/", 7) == 0) {
        successor_t s = {{0}};
        gov_keyrotate_key_t *keys = NULL;
        size_t n = 0;
        gov_reason_t why;
        assert_int_equal(
            gov_keyrotate_keys_load(itest_redis(), NULL, &keys, &n, &why, eb, sizeof eb), GOV_OK);
        for (size_t i = 0; i < n; i++)
            if (keys[i].rec.previous_kid && strcmp(keys[i].rec.previous_kid, kid) == 0)
                snprintf(s.kid, sizeof s.kid, "%s", keys[i].kid);
        gov_keyrotate_keys_free(keys, n);
        if (s.kid[0])
            fail_msg("the scheduled rotator rotated %s (new %s) while govctl held the lease", kid,
                     s.kid);
        if (gov_mono_micros() > until)
            fail_msg("govctl's lease did not end");
        polls++;
        itest_sleep_ms(100);
    }
    assert_true(polls > 20); /* held for seconds: a rotation was due meanwhile */
    if (itest_wait_for(lease_is_ours, NULL, WAIT_MS, 50) < 0)
        fail_msg("%s did not take the rotator lease back", COMPONENT);
    int64_t e3 = lease_of(owner, sizeof owner);
    if (e3 <= e2)
        fail_msg("the rotator took the lease back under epoch %lld, not a newer one than %lld",
                 (long long)e3, (long long)e2);
}

/* Only a trusted operator publishes keys: without an operator key govctl
 * refuses before generating anything (no_signatures); a key file open to
 * others is refused (key_insecure); a rotation signed by a key the
 * identity trust does not hold is produced, but the private gov-identity
 * dead-letters it (identity_signature_invalid) and the key never appears. */
static void test_rotation_needs_a_trusted_operator(void **state) {
    (void)state;
    assert_int_equal(itest_proc_stop(&proc), 0);
    start_identity("0");
    int files = count_key_files();
    int rc = govctl_keys((const char *[]){"GOV_IDENTITY_OPERATOR_KEY_FILE=", NULL},
                         (const char *const[]){"keys", "rotate", NULL});
    assert_int_equal(rc, 1);
    assert_non_null(strstr(g_err, "govctl: no_signatures: "));
    assert_string_equal(g_out, "");
    assert_int_equal(count_key_files(), files);

    char dir[300], pem_path[400], key_env[460];
    assert_int_equal(itest_workdir_new("stranger", dir, sizeof dir), 0);
    snprintf(pem_path, sizeof pem_path, "%s/stranger.pem", dir);
    EVP_PKEY *k = itest_ed25519_new();
    FILE *f = fopen(pem_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(k);
    assert_int_equal(chmod(pem_path, 0644), 0);
    snprintf(key_env, sizeof key_env, "GOV_IDENTITY_OPERATOR_KEY_FILE=%s", pem_path);
    rc = govctl_keys((const char *[]){key_env, NULL},
                     (const char *const[]){"keys", "rotate", "--signer", "mallory", NULL});
    assert_int_equal(rc, 1);
    assert_non_null(strstr(g_err, "govctl: key_insecure: "));
    assert_int_equal(chmod(pem_path, 0600), 0);
    rc = govctl_keys((const char *[]){key_env, NULL},
                     (const char *const[]){"keys", "rotate", "--signer", "mallory", NULL});
    itest_expect_ok(rc, g_err, __LINE__);
    json_t *line = rotate_line();
    char kid[GOV_SIGNER_KID_SIZE];
    copy_kid(line, "kid", kid);
    json_decref(line);
    dlq_key_t dk = {kid, ""};
    if (!itest_consume_until(GOV_TOPIC_IDENTITY_KEYS ".dlq", match_dlq_key, &dk, WAIT_MS))
        fail_msg("the KeyRotated of %s signed by an untrusted key was not dead-lettered by %s",
                 kid, COMPONENT);
    assert_string_equal(dk.reason, "identity_signature_invalid");
    gov_state_identity_key_rec_t rec = key_get(kid);
    assert_false(rec.found);
    gov_state_identity_key_clear(&rec);
    assert_false(in_jwks(kid));
    itest_workdir_remove(dir);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotate_and_transitions),
        cmocka_unit_test(test_private_key_stays_in_its_file),
        cmocka_unit_test(test_rotate_pkcs11),
        cmocka_unit_test(test_scheduled_rotation),
        cmocka_unit_test(test_operator_rotation_takes_the_lease),
        cmocka_unit_test(test_rotation_needs_a_trusted_operator),
    };
    return cmocka_run_group_tests_name("keys", tests, setup, teardown);
}
