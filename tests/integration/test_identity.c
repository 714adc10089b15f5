/* test_identity.c - gov-identity and `govctl clients`, against the real Kafka
 * of the stack and a PRIVATE gov-identity (its own component name, consumer
 * group and Redis), so the stack's own gov-identity cannot pass a test in
 * its place: state is read from the private Redis, dead letters are matched
 * by their bytes and x-gov-component, audit events by component.
 *
 * What is checked is what an operator checks: `govctl clients add` prints
 * one JSON object and the client hash appears with only the secret's hash
 * (the secret is in no Redis value, no Kafka message and no log); remove
 * deletes it for good; a key's pending -> active -> retiring -> retired life
 * shows in identity:{keys}:jwks at each step; a forged key (kid not its
 * thumbprint) and a key moved back are dead-lettered with their reasons and
 * change nothing; a TokenIssued becomes a record with a TTL at exp, a
 * TokenRevoked marks it revoked (also before its issue); poison bytes go to
 * the DLQ; and a second private gov-identity, a new group reading every
 * topic from offset 0 into an empty Redis, builds byte-identical state.
 * Token and key events are built with the gov_events builders; key and
 * client events are signed as the stack's identity operator
 * (itest_identity_signed), and unsigned, wrongly signed or tampered ones
 * are dead-lettered as identity_signature_invalid without changing state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "gov_alloc.h"
#include "gov_events.h"
#include "gov_identity_sig.h"
#include "gov_signer.h"
#include "gov_state_identity.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

#define COMPONENT "gov-identity-itest"
/* the longest token lifetime gov-identity assumes: 1 s (+ no leeway), so a
 * retired key leaves the kid index 1 s after its retires_at */
#define ENV_LIFETIME "GOV_TOKEN_TTL_MAX_S=1", "GOV_TOKEN_LEEWAY_S=0"
#define COMPONENT_REPLAY "gov-identity-itest-replay"
#define WAIT_MS 60000

static itest_proc_t proc, replay;
static pid_t redis_pid = -1, redis2_pid = -1;
static int redis_port, redis2_port;
static char env_redis[64], env_brokers[256];
static char g_out[1 << 14], g_err[1 << 14];
static char tenant[64];

/* --- helpers ----------------------------------------------------------------------- */

static void b64url(const unsigned char *in, size_t n, char *out) {
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = 0;
    for (char *c = out; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
}

/* A fresh Ed25519 public JWK (no kid member) and its RFC 7638 thumbprint. */
static void new_jwk(char jwk[160], char kid[48]) {
    EVP_PKEY *k = itest_ed25519_new();
    unsigned char raw[32], digest[32];
    size_t len = sizeof raw;
    char x[48], members[128];
    unsigned int dlen = 0;
    assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &len), 1);
    EVP_PKEY_free(k);
    b64url(raw, 32, x);
    snprintf(jwk, 160, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", x);
    snprintf(members, sizeof members, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    assert_int_equal(EVP_Digest(members, strlen(members), digest, &dlen, EVP_sha256(), NULL), 1);
    b64url(digest, 32, kid);
}

/* Produces ev (built by gov_events) keyed by `key`; where it landed. */
static void produce_keyed(const char *topic, const char *type, const char *key, json_t *ev,
                          int32_t *partition, int64_t *offset) {
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[256];
    assert_non_null(ev);
    if (gov_avro_encode(itest_avro(), type, ev, &buf, &len, eb, sizeof eb) != GOV_OK)
        fail_msg("encode %s: %s", type, eb);
    char epoch[24];
    gov_kafka_header_t h;
    /* a key event under the private rotator's lease epoch, as govctl publishes */
    size_t nh = strcmp(topic, GOV_TOPIC_IDENTITY_KEYS) == 0
                    ? itest_lease_epoch_header(itest_redis(), epoch, &h) : 0;
    if (gov_kafka_produce_sync(itest_producer(), topic, key, strlen(key), buf, len, &h, nh, 15000,
                               partition, offset, eb, sizeof eb) != GOV_OK)
        fail_msg("produce to %s: %s", topic, eb);
    gov_free(buf);
}

/* Produces ev keyed by `key` and waits until the private gov-identity has
 * finished it (its partition watermark in the private Redis). */
static void produce_and_wait(const char *topic, const char *type, const char *key, json_t *ev) {
    int32_t part = -1;
    int64_t off = -1;
    produce_keyed(topic, type, key, ev, &part, &off);
    json_decref(ev);
    if (!itest_wait_offset(itest_redis(), proc.group, topic, part, off, WAIT_MS))
        fail_msg("%s %s/%d/%lld was not handled by %s", type, topic, (int)part, (long long)off,
                 COMPONENT);
}

static redisReply *cmd(gov_redis_t *r, const char *const *argv, int argc) {
    return itest_redis_cmd(r, argc, (const char **)argv, NULL);
}

/* HGET key field on the private Redis (new string or NULL). */
static char *hget(const char *key, const char *field) {
    redisReply *rep = cmd(itest_redis(), (const char *[]){"HGET", key, field}, 3);
    char *v = rep->type == REDIS_REPLY_STRING ? strdup(rep->str) : NULL;
    freeReplyObject(rep);
    return v;
}

static long long int_cmd(const char *c, const char *key) {
    redisReply *rep = cmd(itest_redis(), (const char *[]){c, key}, 2);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -99;
    freeReplyObject(rep);
    return v;
}

static char *jwks(void) {
    char *j = NULL, eb[200];
    size_t len = 0;
    assert_int_equal(gov_state_identity_jwks_get(itest_redis(), &j, &len, eb, sizeof eb), GOV_OK);
    return j;
}

/* Position of kid in the JWKS (its byte offset), -1 when absent. */
static long jwks_pos(const char *doc, const char *kid) {
    char needle[80];
    snprintf(needle, sizeof needle, "\"kid\":\"%s\"", kid);
    const char *at = doc ? strstr(doc, needle) : NULL;
    return at ? at - doc : -1;
}

/* A DLQ message with these value bytes, dead-lettered by COMPONENT. */
typedef struct dlq_find {
    const void *value;
    size_t len;
    char reason[64];
} dlq_find_t;

static int match_dlq(void *opaque, const gov_kafka_msg_t *m) {
    dlq_find_t *f = opaque;
    char comp[96] = "";
    if (m->len != f->len || memcmp(m->value, f->value, f->len) != 0)
        return 0;
    itest_msg_header(m, "x-gov-component", comp, sizeof comp);
    if (strcmp(comp, COMPONENT) != 0)
        return 0;
    itest_msg_header(m, "x-gov-dlq-reason", f->reason, sizeof f->reason);
    return 1;
}

/* Produces ev (keyed by key), expects it dead-lettered by COMPONENT with
 * `reason`. */
static void expect_dlq(const char *topic, const char *type, const char *key, json_t *ev,
                       const char *reason) {
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[256], dlq[96];
    assert_int_equal(gov_avro_encode(itest_avro(), type, ev, &buf, &len, eb, sizeof eb), GOV_OK);
    json_decref(ev);
    char epoch[24];
    gov_kafka_header_t h;
    size_t nh = strcmp(topic, GOV_TOPIC_IDENTITY_KEYS) == 0
                    ? itest_lease_epoch_header(itest_redis(), epoch, &h) : 0;
    itest_produce_raw_at(topic, key, buf, len, 0, &h, nh, NULL, NULL);
    dlq_find_t f = {buf, len, ""};
    snprintf(dlq, sizeof dlq, "%s.dlq", topic);
    if (!itest_consume_until(dlq, match_dlq, &f, WAIT_MS))
        fail_msg("%s was not dead-lettered by %s on %s", type, COMPONENT, dlq);
    assert_string_equal(f.reason, reason);
    gov_free(buf);
}

static json_t *key_event(const char *kid, const char *jwk, const char *state, int64_t created,
                         int64_t activates, int64_t retires) {
    gov_key_rotated_t k = {.kid = kid, .alg = "EdDSA", .public_jwk = jwk, .backend = "file",
                           .state = state, .created_at = created, .activates_at = activates,
                           .retires_at = retires};
    return itest_identity_signed(gov_events_key_rotated_new(&k), "KeyRotated");
}

/* Every byte of every key of Redis r in one buffer (DUMP of each key). */
static int redis_holds(gov_redis_t *r, const char *secret) {
    redisReply *keys = cmd(r, (const char *[]){"KEYS", "*"}, 2);
    int found = 0;
    for (size_t i = 0; i < keys->elements && !found; i++) {
        const char *k = keys->element[i]->str;
        redisReply *d = cmd(r, (const char *[]){"DUMP", k}, 2);
        if (d->type == REDIS_REPLY_STRING && memmem(d->str, d->len, secret, strlen(secret)))
            found = 1;
        freeReplyObject(d);
    }
    freeReplyObject(keys);
    return found;
}

typedef struct bytes_find {
    const char *key, *needle;
    int seen, holds;
} bytes_find_t;

/* Every message keyed `key` on the topic; notes whether one holds needle. */
static int scan_key(void *opaque, const gov_kafka_msg_t *m) {
    bytes_find_t *f = opaque;
    if (m->key_len == strlen(f->key) && memcmp(m->key, f->key, m->key_len) == 0) {
        f->seen++;
        if (memmem(m->value, m->len, f->needle, strlen(f->needle)))
            f->holds = 1;
    }
    return 0;   /* read to the end (the timeout) */
}

/* --- setup --------------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    redis_pid = itest_private_redis("identity", &redis_port);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_redis); /* itest_redis() talks to the private Redis */
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    itest_unique("idt", tenant, sizeof tenant);
    const char *env[] = {env_redis, env_brokers, ENV_LIFETIME, NULL};
    itest_proc_start(&proc, "gov-identity", COMPONENT, env, "itest-gov-identity.log");
    /* a new group works through the history of three topics first */
    itest_must_catch_up(&proc, 9);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_proc_stop(&replay);
    rc |= itest_proc_stop(&proc);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    if (redis2_pid > 0)
        itest_stop(redis2_pid, SIGTERM, 5000);
    return rc;
}

/* --- clients ------------------------------------------------------------------------- */

typedef struct exists_want {
    const char *key;
    long long want;
} exists_want_t;

static int exists_is(void *opaque) {
    exists_want_t *w = opaque;
    return int_cmd("EXISTS", w->key) == w->want;
}

static void test_clients_add_and_remove(void **state) {
    (void)state;
    char t2[64], ck[GOV_STATE_KEY_MAX], tenants[160];
    itest_unique("idt2", t2, sizeof t2);
    snprintf(tenants, sizeof tenants, "%s,%s", tenant, t2);
    int rc = itest_govctl(NULL,
                          (const char *const[]){"clients", "add", "--tenants", tenants, "--scopes",
                                                "tokens:issue read", NULL},
                          g_out, sizeof g_out, g_err, sizeof g_err);
    itest_expect_ok(rc, g_err, __LINE__);
    /* exactly one JSON object with exactly the two members */
    json_error_t je;
    json_t *o = json_loads(g_out, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(o) || json_object_size(o) != 2)
        fail_msg("want one JSON object {client_id, client_secret}, got: %s", g_out);
    char client_id[80], secret[80];
    snprintf(client_id, sizeof client_id, "%s", json_string_value(json_object_get(o, "client_id")));
    snprintf(secret, sizeof secret, "%s", json_string_value(json_object_get(o, "client_secret")));
    json_decref(o);
    assert_int_equal(strlen(secret), 43);   /* 32 bytes, base64url */

    assert_int_equal(gov_state_identity_client_key(client_id, ck), GOV_OK);
    exists_want_t w = {ck, 1};
    assert_true(itest_wait_for(exists_is, &w, WAIT_MS, 50) >= 0);

    /* only the hash of the secret: sha256 over its text */
    unsigned char d[32];
    unsigned int dl = 0;
    char want_hash[80];
    assert_int_equal(EVP_Digest(secret, strlen(secret), d, &dl, EVP_sha256(), NULL), 1);
    strcpy(want_hash, "sha256:");
    for (int i = 0; i < 32; i++)
        snprintf(want_hash + 7 + 2 * i, 3, "%02x", d[i]);
    gov_state_identity_client_rec_t rec;
    char eb[256];
    assert_int_equal(gov_state_identity_client_get(itest_redis(), client_id, &rec, eb, sizeof eb),
                     GOV_OK);
    assert_true(rec.found);
    assert_string_equal(rec.secret_hash, want_hash);
    assert_string_equal(rec.tenants, tenants);
    assert_string_equal(rec.scopes, "tokens:issue read");
    assert_true(rec.registered_at > 0);
    gov_state_identity_client_clear(&rec);

    /* the secret is nowhere: no Redis value, no Kafka message, no log */
    assert_false(redis_holds(itest_redis(), secret));
    bytes_find_t bf = {client_id, secret, 0, 0};
    itest_consume_until(GOV_TOPIC_IDENTITY_CLIENTS, scan_key, &bf, 8000);
    assert_int_equal(bf.seen, 1);
    assert_int_equal(bf.holds, 0);
    bytes_find_t bh = {client_id, want_hash, 0, 0};
    itest_consume_until(GOV_TOPIC_IDENTITY_CLIENTS, scan_key, &bh, 8000);
    assert_int_equal(bh.holds, 1);   /* the scan does see message bytes */
    assert_null(strstr(g_err, secret));
    char *log = itest_read_file(itest_log_path(proc.log), NULL);
    assert_non_null(log);
    assert_null(strstr(log, secret));
    free(log);

    /* announced: an AuditEvent of this component for this registration */
    char *event_id = hget(ck, "event_id");
    assert_non_null(event_id);
    json_t *audit = itest_find_audit("_system", COMPONENT, "identity.client_registered",
                                     event_id, WAIT_MS);
    assert_non_null(audit);
    assert_string_equal(json_string_value(json_object_get(audit, "subject")), client_id);
    json_decref(audit);
    free(event_id);

    /* remove: gone, with a tombstone; registering the id again is refused */
    rc = itest_govctl(NULL, (const char *const[]){"clients", "remove", client_id, NULL}, g_out,
                      sizeof g_out, g_err, sizeof g_err);
    itest_expect_ok(rc, g_err, __LINE__);
    w.want = 0;
    assert_true(itest_wait_for(exists_is, &w, WAIT_MS, 50) >= 0);
    char tomb[GOV_STATE_KEY_MAX + 16];
    snprintf(tomb, sizeof tomb, "%s:removed", ck);
    assert_int_equal(int_cmd("EXISTS", tomb), 1);
    const char *tl[] = {tenant};
    const char *sl[] = {"read"};
    gov_client_registered_t again = {.client_id = client_id, .secret_hash = want_hash,
                                     .tenants = tl, .ntenants = 1, .scopes = sl, .nscopes = 1,
                                     .registered_by = "itest"};
    expect_dlq(GOV_TOPIC_IDENTITY_CLIENTS, "ClientRegistered", client_id,
               itest_identity_signed(gov_events_client_registered_new(&again), "ClientRegistered"),
               "client_removed");
    assert_int_equal(int_cmd("EXISTS", ck), 0);

    /* malformed clients: refused by govctl before Kafka, and by gov-identity */
    rc = itest_govctl(NULL, (const char *const[]){"clients", "add", "--tenants", "-x", "--scopes",
                                                  "a", NULL},
                      g_out, sizeof g_out, g_err, sizeof g_err);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(g_err, "govctl: invalid_tenant: "));
    assert_string_equal(g_out, "");
    const char *bad_scope[] = {"has\"quote"};
    char bad_id[64];
    itest_unique("client-bad", bad_id, sizeof bad_id);
    gov_client_registered_t bad = {.client_id = bad_id, .secret_hash = want_hash, .tenants = tl,
                                   .ntenants = 1, .scopes = bad_scope, .nscopes = 1,
                                   .registered_by = "itest"};
    expect_dlq(GOV_TOPIC_IDENTITY_CLIENTS, "ClientRegistered", bad_id,
               itest_identity_signed(gov_events_client_registered_new(&bad), "ClientRegistered"),
               "invalid_client");
    /* a Kafka key that is not the client_id */
    bad.scopes = sl;
    expect_dlq(GOV_TOPIC_IDENTITY_CLIENTS, "ClientRegistered", "someone-else",
               itest_identity_signed(gov_events_client_registered_new(&bad), "ClientRegistered"),
               "key_mismatch");
}

/* --- keys ------------------------------------------------------------------------------ */

static void test_key_lifecycle_and_jwks(void **state) {
    (void)state;
    char jwk1[160], kid1[48], jwk2[160], kid2[48], kk[GOV_STATE_KEY_MAX];
    new_jwk(jwk1, kid1);
    new_jwk(jwk2, kid2);
    int64_t now = gov_now_micros(), created = now - 10000000, act1 = now,
            act2 = now + 3600000000LL;
    double rot_before = itest_proc_metric(&proc, "identity_key_transitions_total",
                                          (const char *[]){"state", "active", NULL});

    produce_and_wait(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid1,
                     key_event(kid1, jwk1, "pending", created, act1, -1));
    assert_int_equal(gov_state_identity_key_key(kid1, kk), GOV_OK);
    char *st = hget(kk, "state");
    assert_string_equal(st, "pending");
    free(st);
    char *doc = jwks();
    assert_true(jwks_pos(doc, kid1) >= 0);   /* published before it signs */
    json_t *j = json_loads(doc, 0, NULL);
    assert_non_null(j);
    /* the normalized JWK: what a verifier needs, nothing else */
    json_t *entry = NULL;
    for (size_t i = 0; i < json_array_size(json_object_get(j, "keys")); i++) {
        json_t *e = json_array_get(json_object_get(j, "keys"), i);
        if (strcmp(json_string_value(json_object_get(e, "kid")), kid1) == 0)
            entry = e;
    }
    assert_non_null(entry);
    assert_string_equal(json_string_value(json_object_get(entry, "kty")), "OKP");
    assert_string_equal(json_string_value(json_object_get(entry, "crv")), "Ed25519");
    assert_string_equal(json_string_value(json_object_get(entry, "alg")), "EdDSA");
    assert_string_equal(json_string_value(json_object_get(entry, "use")), "sig");
    assert_null(json_object_get(entry, "d"));
    json_decref(j);
    free(doc);

    produce_and_wait(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid1,
                     key_event(kid1, jwk1, "active", created, act1, -1));
    produce_and_wait(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid2,
                     key_event(kid2, jwk2, "pending", now, act2, -1));
    doc = jwks();
    long p1 = jwks_pos(doc, kid1), p2 = jwks_pos(doc, kid2);
    assert_true(p1 >= 0 && p2 > p1);   /* by activates_at */
    free(doc);
    assert_true(itest_proc_metric(&proc, "identity_key_transitions_total",
                                  (const char *[]){"state", "active", NULL}) >=
                (rot_before < 0 ? 0 : rot_before) + 1);
    assert_true(itest_proc_metric(&proc, "identity_active_key_age_seconds", NULL) >= 0);

    /* moved back: dead-lettered with its reason, the key unchanged */
    expect_dlq(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid1,
               key_event(kid1, jwk1, "pending", created, act1, -1), "key_state_backwards");
    expect_dlq(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid1,
               key_event(kid1, jwk1, "active", created, act1 - 1, -1), "key_state_backwards");
    expect_dlq(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid1,
               key_event(kid1, jwk1, "active", created + 1, act1, -1), "key_changed");
    st = hget(kk, "state");
    assert_string_equal(st, "active");
    free(st);

    /* retiring keeps it published; retired removes it */
    int64_t ret = now + 7200000000LL;
    produce_and_wait(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid1,
                     key_event(kid1, jwk1, "retiring", created, act1, ret));
    doc = jwks();
    assert_true(jwks_pos(doc, kid1) >= 0);
    free(doc);
    char *retires = hget(kk, "retires_at");
    char want_ret[32];
    snprintf(want_ret, sizeof want_ret, "%lld", (long long)ret);
    assert_string_equal(retires, want_ret);
    free(retires);
    expect_dlq(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid1,
               key_event(kid1, jwk1, "retired", created, act1, ret - 1), "key_state_backwards");
    produce_and_wait(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid1,
                     key_event(kid1, jwk1, "retired", created, act1, ret));
    doc = jwks();
    assert_int_equal(jwks_pos(doc, kid1), -1);
    assert_true(jwks_pos(doc, kid2) >= 0);
    free(doc);

    /* the read API a later gov-edge uses */
    char **kids = NULL, eb[256];
    size_t nk = 0;
    int saw1 = 0, saw2 = 0;
    assert_int_equal(gov_state_identity_key_list(itest_redis(), &kids, &nk, eb, sizeof eb), GOV_OK);
    for (size_t i = 0; i < nk; i++) {
        saw1 |= strcmp(kids[i], kid1) == 0;
        saw2 |= strcmp(kids[i], kid2) == 0;
    }
    gov_state_identity_kids_free(kids, nk);
    assert_true(saw1 && saw2);
    gov_state_identity_key_rec_t rec;
    assert_int_equal(gov_state_identity_key_get(itest_redis(), kid1, &rec, eb, sizeof eb), GOV_OK);
    assert_true(rec.found);
    assert_string_equal(rec.state, "retired");
    assert_string_equal(rec.alg, "EdDSA");
    assert_string_equal(rec.backend, "file");
    assert_int_equal(rec.activates_at, act1);
    assert_int_equal(rec.retires_at, ret);
    assert_int_equal(rec.created_at, created);
    assert_non_null(strstr(rec.public_jwk, kid1));
    gov_state_identity_key_clear(&rec);

    /* an audit event per state change, from this component */
    json_t *audit = itest_find_audit("_system", COMPONENT, "identity.key_retired", NULL, WAIT_MS);
    assert_non_null(audit);
    json_decref(audit);
}

/* The kid index holds live keys only (docs/contracts.md, identity:{keys}:kids):
 * a key retired longer ago than the longest token lifetime leaves it (and
 * the JWKS) at the next key write - here its own - while its hash stays,
 * with a TTL, so a late event for it is still judged against it. */
static void test_retired_key_leaves_the_index(void **state) {
    (void)state;
    char jwk[160], kid[48], kk[GOV_STATE_KEY_MAX];
    new_jwk(jwk, kid);
    int64_t now = gov_now_micros();
    produce_and_wait(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid,
                     key_event(kid, jwk, "retired", now - 20000000, now - 20000000,
                               now - 10000000));
    assert_int_equal(gov_state_identity_key_key(kid, kk), GOV_OK);
    redisReply *m = cmd(itest_redis(), (const char *[]){"SISMEMBER",
                                                        gov_state_identity_kids_key(), kid}, 3);
    redisReply *t = cmd(itest_redis(), (const char *[]){"PTTL", kk}, 2);
    assert_int_equal(m->type, REDIS_REPLY_INTEGER);
    assert_int_equal(t->type, REDIS_REPLY_INTEGER);
    if (m->integer != 0 || t->integer <= 0)
        fail_msg("a key retired 10 s ago (lifetime 1 s): in %s %lld, its hash's PTTL %lld",
                 gov_state_identity_kids_key(), m->integer, t->integer);
    freeReplyObject(m);
    freeReplyObject(t);
    char *st = hget(kk, "state");
    assert_string_equal(st, "retired");
    free(st);
    char *doc = jwks();
    assert_int_equal(jwks_pos(doc, kid), -1);
    free(doc);
}

static void test_forged_key_is_dead_lettered(void **state) {
    (void)state;
    char jwk[160], kid[48], jwk_other[160], kid_other[48], kk[GOV_STATE_KEY_MAX];
    new_jwk(jwk, kid);
    new_jwk(jwk_other, kid_other);
    int64_t now = gov_now_micros();
    char *before = jwks();
    /* the kid of another key */
    expect_dlq(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid_other,
               key_event(kid_other, jwk, "active", now, now, -1), "kid_not_thumbprint");
    /* a private part, a wrong curve */
    char with_d[240], wrong_crv[160];
    const char *x = strstr(jwk, "\"x\"");   /* "x":"..."} */
    snprintf(with_d, sizeof with_d, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"%s\",%s", kid, x);
    expect_dlq(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid,
               key_event(kid, with_d, "active", now, now, -1), "invalid_jwk");
    snprintf(wrong_crv, sizeof wrong_crv, "{\"kty\":\"OKP\",\"crv\":\"X25519\",%s", x);
    expect_dlq(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid,
               key_event(kid, wrong_crv, "active", now, now, -1), "invalid_jwk");
    /* nothing changed */
    assert_int_equal(gov_state_identity_key_key(kid_other, kk), GOV_OK);
    assert_int_equal(int_cmd("EXISTS", kk), 0);
    assert_int_equal(gov_state_identity_key_key(kid, kk), GOV_OK);
    assert_int_equal(int_cmd("EXISTS", kk), 0);
    char *after = jwks();
    assert_string_equal(after ? after : "", before ? before : "");
    free(before);
    free(after);
}

/* --- tokens ---------------------------------------------------------------------------- */

static json_t *issued(const char *jti, int64_t exp) {
    int64_t now = gov_now_micros();
    gov_token_issued_t t = {.tenant = tenant, .jti = jti, .sub = "svc-a", .client_id = "client-x",
                            .scope = "read", .aud = "soma", .kid = "k",
                            .constitution_hash = "sha3-512:00", .issued_at = now,
                            .not_before = now, .expires_at = exp};
    return gov_events_token_issued_new(&t);
}

/* Signs ev with a key the identity trust does not hold, under signer_id. */
static json_t *signed_by_stranger(json_t *ev, const char *type, const char *signer_id) {
    gov_signer_t *s = NULL;
    char eb[256];
    assert_int_equal(gov_signer_from_evp_take(itest_ed25519_new(), "memory", &s, eb, sizeof eb),
                     GOV_OK);
    gov_events_signer_t es = {.signer_id = signer_id, .signer = s};
    assert_int_equal(gov_events_sign(ev, type, &es, 1, eb, sizeof eb), GOV_OK);
    gov_signer_free(s);
    return ev;
}

/* The id the stack's identity trust gives its operator (the first signer). */
static void trusted_id(char *out, size_t size) {
    json_t *t = json_load_file(itest_env("GOV_IDENTITY_TRUST_FILE", ""), 0, NULL);
    const char *id = NULL;
    json_t *v;
    json_object_foreach(json_object_get(t, "signers"), id, v) break;
    if (id == NULL)
        fail_msg("the stack's identity trust file lists no signer");
    snprintf(out, size, "%s", id);
    json_decref(t);
}

/* Only signatures decide: an unsigned KeyRotated or client event, one
 * signed by a key the identity trust does not hold (under a stranger's id
 * or the trusted operator's), and a signed one changed after signing are
 * all dead-lettered as identity_signature_invalid, counted by rule, and
 * change nothing: no key hash, no JWKS entry, no client. */
static void test_unsigned_and_forged_events_are_dead_lettered(void **state) {
    (void)state;
    char jwk[160], kid[48], kk[GOV_STATE_KEY_MAX], ck[GOV_STATE_KEY_MAX], op_id[80];
    char client_id[64], hash[80];
    new_jwk(jwk, kid);
    trusted_id(op_id, sizeof op_id);
    int64_t now = gov_now_micros();
    char *before = jwks();
    double unsigned_before = itest_proc_metric(
        &proc, "identity_signature_rejections_total",
        (const char *[]){"type", "KeyRotated", "rule", "no_signatures", NULL});
    gov_key_rotated_t k = {.kid = kid, .alg = "EdDSA", .public_jwk = jwk, .backend = "file",
                           .state = "active", .created_at = now, .activates_at = now,
                           .retires_at = -1};
    expect_dlq(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid, gov_events_key_rotated_new(&k),
               "identity_signature_invalid");
    expect_dlq(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid,
               signed_by_stranger(gov_events_key_rotated_new(&k), "KeyRotated", "mallory"),
               "identity_signature_invalid");
    expect_dlq(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid,
               signed_by_stranger(gov_events_key_rotated_new(&k), "KeyRotated", op_id),
               "identity_signature_invalid");
    /* signed by the operator, then moved to another state */
    json_t *tampered = itest_identity_signed(gov_events_key_rotated_new(&k), "KeyRotated");
    json_object_set_new(tampered, "activates_at", json_integer(now - 1));
    expect_dlq(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid, tampered, "identity_signature_invalid");
    assert_int_equal(gov_state_identity_key_key(kid, kk), GOV_OK);
    assert_int_equal(int_cmd("EXISTS", kk), 0);
    char *after = jwks();
    assert_int_equal(jwks_pos(after, kid), -1);
    assert_string_equal(after ? after : "", before ? before : "");
    free(before);
    free(after);
    assert_true(itest_proc_metric(&proc, "identity_signature_rejections_total",
                                  (const char *[]){"type", "KeyRotated", "rule", "no_signatures",
                                                   NULL}) >=
                (unsigned_before < 0 ? 0 : unsigned_before) + 1);
    assert_true(itest_proc_metric(&proc, "identity_signature_rejections_total",
                                  (const char *[]){"type", "KeyRotated", "rule",
                                                   "invalid_signature", NULL}) >= 1);

    /* a client nobody signed for, one with a scope added after signing */
    itest_unique("client-forged", client_id, sizeof client_id);
    snprintf(hash, sizeof hash, "sha256:%064d", 0);
    const char *tl[] = {tenant}, *sl[] = {"read"};
    gov_client_registered_t c = {.client_id = client_id, .secret_hash = hash, .tenants = tl,
                                 .ntenants = 1, .scopes = sl, .nscopes = 1,
                                 .registered_by = "itest"};
    expect_dlq(GOV_TOPIC_IDENTITY_CLIENTS, "ClientRegistered", client_id,
               gov_events_client_registered_new(&c), "identity_signature_invalid");
    json_t *more = itest_identity_signed(gov_events_client_registered_new(&c), "ClientRegistered");
    json_array_append_new(json_object_get(more, "scopes"), json_string("admin"));
    expect_dlq(GOV_TOPIC_IDENTITY_CLIENTS, "ClientRegistered", client_id, more,
               "identity_signature_invalid");
    assert_int_equal(gov_state_identity_client_key(client_id, ck), GOV_OK);
    assert_int_equal(int_cmd("EXISTS", ck), 0);

    /* the same client signed is registered; an unsigned removal leaves it */
    produce_and_wait(GOV_TOPIC_IDENTITY_CLIENTS, "ClientRegistered", client_id,
                     itest_identity_signed(gov_events_client_registered_new(&c),
                                           "ClientRegistered"));
    assert_int_equal(int_cmd("EXISTS", ck), 1);
    char *signed_payload = hget(ck, "signed");
    assert_non_null(signed_payload);   /* stored for the edges to re-verify */
    assert_non_null(strstr(signed_payload, "\"type\":\"ClientRegistered\""));
    free(signed_payload);
    expect_dlq(GOV_TOPIC_IDENTITY_CLIENTS, "ClientRemoved", client_id,
               gov_events_client_removed_new(NULL, 0, client_id, "mallory"),
               "identity_signature_invalid");
    assert_int_equal(int_cmd("EXISTS", ck), 1);
}

typedef struct age_above {
    double than;
} age_above_t;

static int key_age_above(void *opaque) {
    age_above_t *a = opaque;
    return itest_proc_metric(&proc, "identity_active_key_age_seconds", NULL) > a->than;
}

/* identity_active_key_age_seconds follows the clock on an idle processor:
 * restarted on its own group (its offsets committed: nothing to consume),
 * the private gov-identity reads the age of the newest active key from its
 * Redis and the gauge grows between two reads of /metrics, with no event
 * on any topic for it.  The key was activated 5 s before it is published:
 * under the 1 s token lifetime of the other cases a kid that old is a
 * replay (key_stale), so this case runs its processor with an hour's, and
 * checks the key was materialized before it looks at the gauge. */
static void test_key_age_grows_when_idle(void **state) {
    (void)state;
    char jwk[160], kid[48], kk[GOV_STATE_KEY_MAX];
    new_jwk(jwk, kid);
    const char *hour[] = {env_redis, env_brokers, "GOV_TOKEN_TTL_MAX_S=3600",
                          "GOV_TOKEN_LEEWAY_S=0", NULL};
    assert_int_equal(itest_proc_stop(&proc), 0);
    itest_proc_start(&proc, "gov-identity", COMPONENT, hour, "itest-gov-identity-restarted.log");
    int64_t now = gov_now_micros();
    produce_and_wait(GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", kid,
                     key_event(kid, jwk, "active", now - 5000000, now - 5000000, -1));
    assert_int_equal(gov_state_identity_key_key(kid, kk), GOV_OK);
    char *st = hget(kk, "state");
    if (st == NULL || strcmp(st, "active") != 0)
        fail_msg("the key activated 5 s ago was not materialized (state %s; see "
                 "var/test-logs/itest-gov-identity-restarted.log)", st ? st : "none");
    free(st);
    assert_int_equal(itest_proc_stop(&proc), 0);
    itest_proc_start(&proc, "gov-identity", COMPONENT, hour, "itest-gov-identity-restarted.log");
    age_above_t a = {4.0};
    if (itest_wait_for(key_age_above, &a, WAIT_MS, 100) < 0)
        fail_msg("identity_active_key_age_seconds of the restarted %s is %.3f, not above 4",
                 COMPONENT, itest_proc_metric(&proc, "identity_active_key_age_seconds", NULL));
    double first = itest_proc_metric(&proc, "identity_active_key_age_seconds", NULL);
    a.than = first;
    if (itest_wait_for(key_age_above, &a, 10000, 100) < 0)
        fail_msg("identity_active_key_age_seconds stayed at %.3f on an idle %s", first,
                 COMPONENT);
    /* the other cases' 1 s lifetime again */
    const char *env[] = {env_redis, env_brokers, ENV_LIFETIME, NULL};
    assert_int_equal(itest_proc_stop(&proc), 0);
    itest_proc_start(&proc, "gov-identity", COMPONENT, env, "itest-gov-identity.log");
}

static void test_tokens_issue_and_revoke(void **state) {
    (void)state;
    char jti[64], jti2[64], tk[GOV_STATE_KEY_MAX], tk2[GOV_STATE_KEY_MAX], eb[256];
    itest_unique("jti", jti, sizeof jti);
    itest_unique("jti2", jti2, sizeof jti2);
    int64_t exp = gov_now_micros() + 600LL * 1000000;
    double before = itest_proc_metric(&proc, "identity_tokens_materialized_total", NULL);
    produce_and_wait(GOV_TOPIC_IDENTITY_TOKENS, "TokenIssued", tenant, issued(jti, exp));
    assert_int_equal(gov_state_identity_token_key(tenant, jti, tk), GOV_OK);
    char *s = hget(tk, "status");
    assert_string_equal(s, "active");
    free(s);
    long long pttl = int_cmd("PTTL", tk);
    assert_true(pttl > 590000 && pttl <= 600000);   /* the TTL is exp */
    gov_state_token_status_t st;
    int64_t got_exp = 0;
    assert_int_equal(gov_state_identity_token_status(itest_redis(), tenant, jti, &st, &got_exp, eb,
                                                     sizeof eb), GOV_OK);
    assert_int_equal(st, GOV_STATE_TOKEN_ACTIVE);
    assert_int_equal(got_exp, exp);
    assert_true(itest_proc_metric(&proc, "identity_tokens_materialized_total", NULL) >=
                (before < 0 ? 0 : before) + 1);

    produce_and_wait(GOV_TOPIC_IDENTITY_TOKENS, "TokenRevoked", tenant,
                     gov_events_token_revoked_new(NULL, 0, tenant, jti, exp, "rfc7009", "itest"));
    assert_int_equal(gov_state_identity_token_status(itest_redis(), tenant, jti, &st, &got_exp, eb,
                                                     sizeof eb), GOV_OK);
    assert_int_equal(st, GOV_STATE_TOKEN_REVOKED);
    assert_true(int_cmd("PTTL", tk) > 590000);

    /* a revocation before its issue is kept, and the issue does not undo it */
    produce_and_wait(GOV_TOPIC_IDENTITY_TOKENS, "TokenRevoked", tenant,
                     gov_events_token_revoked_new(NULL, 0, tenant, jti2, exp, "early", "itest"));
    assert_int_equal(gov_state_identity_token_key(tenant, jti2, tk2), GOV_OK);
    assert_true(int_cmd("PTTL", tk2) > 590000);
    produce_and_wait(GOV_TOPIC_IDENTITY_TOKENS, "TokenIssued", tenant, issued(jti2, exp));
    assert_int_equal(gov_state_identity_token_status(itest_redis(), tenant, jti2, &st, &got_exp,
                                                     eb, sizeof eb), GOV_OK);
    assert_int_equal(st, GOV_STATE_TOKEN_REVOKED);
    s = hget(tk2, "sub");
    assert_string_equal(s, "svc-a");
    free(s);

    /* a jti that cannot be a key: dead-lettered, not dropped */
    expect_dlq(GOV_TOPIC_IDENTITY_TOKENS, "TokenIssued", tenant, issued("bad jti!", exp),
               "unmaterializable");
}

static void test_poison_goes_to_dlq(void **state) {
    (void)state;
    const char *topics[] = {GOV_TOPIC_IDENTITY_KEYS, GOV_TOPIC_IDENTITY_CLIENTS,
                            GOV_TOPIC_IDENTITY_TOKENS};
    for (int i = 0; i < 3; i++) {
        char nonce[64], garbage[128], dlq[64];
        itest_unique("identity-garbage", nonce, sizeof nonce);
        snprintf(garbage, sizeof garbage, "not avro %s", nonce);
        itest_produce_raw(topics[i], tenant, garbage, strlen(garbage));
        dlq_find_t f = {garbage, strlen(garbage), ""};
        snprintf(dlq, sizeof dlq, "%s.dlq", topics[i]);
        if (!itest_consume_until(dlq, match_dlq, &f, WAIT_MS))
            fail_msg("garbage on %s was not dead-lettered by %s", topics[i], COMPONENT);
        assert_string_equal(f.reason, "undecodable");
    }
    char *body = NULL;
    assert_int_equal(itest_proc_get(&proc, "/metrics", &body), 200);
    assert_int_equal(itest_promtool_check(body), 0);
    free(body);
}

/* --- rebuild from offset 0 -------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every identity:* key of r with its type and content, sorted, in one text
 * (hash fields sorted, set members sorted): equal texts, equal state. */
static char *identity_state(gov_redis_t *r) {
    redisReply *keys = cmd(r, (const char *[]){"KEYS", "identity:*"}, 2);
    size_t n = keys->elements, cap = 1 << 16, len = 0;
    char **names = calloc(n ? n : 1, sizeof *names), *out = malloc(cap);
    for (size_t i = 0; i < n; i++)
        names[i] = keys->element[i]->str;
    qsort(names, n, sizeof *names, cmp_str);
    out[0] = 0;
#define APPEND(s, l)                                                                               \
    do {                                                                                           \
        size_t l_ = (l);                                                                           \
        while (len + l_ + 2 > cap)                                                                 \
            out = realloc(out, cap *= 2);                                                          \
        memcpy(out + len, (s), l_);                                                                \
        len += l_;                                                                                 \
        out[len++] = '\n';                                                                         \
        out[len] = 0;                                                                              \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        APPEND(names[i], strlen(names[i]));
        redisReply *t = cmd(r, (const char *[]){"TYPE", names[i]}, 2);
        const char *type = t->str ? t->str : "?";
        redisReply *v = NULL;
        if (strcmp(type, "hash") == 0)
            v = cmd(r, (const char *[]){"HGETALL", names[i]}, 2);
        else if (strcmp(type, "set") == 0)
            v = cmd(r, (const char *[]){"SMEMBERS", names[i]}, 2);
        else if (strcmp(type, "string") == 0)
            v = cmd(r, (const char *[]){"GET", names[i]}, 2);
        if (v && v->type == REDIS_REPLY_STRING) {
            APPEND(v->str, v->len);
        } else if (v && v->type == REDIS_REPLY_ARRAY) {
            int pairs = strcmp(type, "hash") == 0;
            size_t m = pairs ? v->elements / 2 : v->elements;
            char **items = calloc(m ? m : 1, sizeof *items);
            for (size_t k = 0; k < m; k++) {
                const char *a = v->element[pairs ? 2 * k : k]->str;
                const char *b = pairs ? v->element[2 * k + 1]->str : "";
                items[k] = malloc(strlen(a) + strlen(b) + 2);
                sprintf(items[k], "%s=%s", a, b);
            }
            qsort(items, m, sizeof *items, cmp_str);
            for (size_t k = 0; k < m; k++) {
                APPEND(items[k], strlen(items[k]));
                free(items[k]);
            }
            free(items);
        }
        if (v)
            freeReplyObject(v);
        freeReplyObject(t);
    }
#undef APPEND
    free(names);
    freeReplyObject(keys);
    return out;
}

static void test_replay_from_zero_builds_the_same_state(void **state) {
    (void)state;
    char env2[64], eb[256];
    redis2_pid = itest_private_redis("identity-replay", &redis2_port);
    snprintf(env2, sizeof env2, "GOV_REDIS_PORT=%d", redis2_port);
    const char *env[] = {env2, env_brokers, ENV_LIFETIME, NULL};
    itest_proc_start(&replay, "gov-identity", COMPONENT_REPLAY, env, "itest-gov-identity-replay.log");
    gov_redis_t *r2 = NULL;
    assert_int_equal(gov_redis_new("127.0.0.1", redis2_port, 5000, &r2, eb, sizeof eb), GOV_OK);
    /* both have handled every message the topics hold now */
    const char *topics[] = {GOV_TOPIC_IDENTITY_KEYS, GOV_TOPIC_IDENTITY_CLIENTS,
                            GOV_TOPIC_IDENTITY_TOKENS};
    for (int i = 0; i < 3; i++) {
        int64_t ends[16];
        int n = itest_topic_ends(topics[i], ends, 16);
        for (int p = 0; p < n; p++) {
            if (ends[p] == 0)
                continue;
            if (!itest_wait_offset(r2, replay.group, topics[i], p, ends[p] - 1, ITEST_HISTORY_MS) ||
                !itest_wait_offset(itest_redis(), proc.group, topics[i], p, ends[p] - 1, WAIT_MS))
                fail_msg("%s/%d was not replayed to its end %lld", topics[i], p,
                         (long long)ends[p]);
        }
    }
    char *a = identity_state(itest_redis()), *b = identity_state(r2);
    assert_non_null(strstr(a, "identity:{keys}:jwks"));
    assert_non_null(strstr(a, "identity:token:{"));
    if (strcmp(a, b) != 0)
        fail_msg("a replay from offset 0 built other state:\n--- live\n%.4000s\n--- replay\n%.4000s",
                 a, b);
    free(a);
    free(b);
    gov_redis_free(r2);
    assert_int_equal(itest_proc_stop(&replay), 0);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clients_add_and_remove),
        cmocka_unit_test(test_key_lifecycle_and_jwks),
        cmocka_unit_test(test_retired_key_leaves_the_index),
        cmocka_unit_test(test_forged_key_is_dead_lettered),
        cmocka_unit_test(test_unsigned_and_forged_events_are_dead_lettered),
        cmocka_unit_test(test_key_age_grows_when_idle),
        cmocka_unit_test(test_tokens_issue_and_revoke),
        cmocka_unit_test(test_poison_goes_to_dlq),
        cmocka_unit_test(test_replay_from_zero_builds_the_same_state),
    };
    return cmocka_run_group_tests_name("identity", tests, setup, teardown);
}
