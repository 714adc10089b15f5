/* test_tokens.c - gov-edge's token endpoints against the real Kafka, Redis
 * and SoftHSM2 of the stack.
 *
 * A private Redis holds a copy of the stack's demo tenant; a private
 * gov-identity ("gov-identity-itest-tokens") materializes identity.keys and
 * identity.clients into it; two private gov-edge replicas
 * ("edge-itest-tokens-a-<unique>", "-b-<unique>") share a private key directory.  The test
 * creates keys with the keystore API and publishes their KeyRotated the way
 * `govctl keys rotate` does, registers a client with `govctl clients add`,
 * and checks what a client and an operator see:
 *   - issue (HTTP Basic) -> verify and introspect active on BOTH replicas;
 *     the TokenIssued and the AuditEvent (component gov-edge, subject the
 *     jti, details.edge_id the replica) are on their topics, the token is in
 *     neither;
 *   - revoke (client_secret_post) -> verify and introspect inactive on both
 *     replicas at once (read-your-writes);
 *   - refusals: wrong secret 401 invalid_client, scope not the client's 400
 *     invalid_scope, tenant not the client's 403, another grant type, and
 *     crafted tokens reaching the HTTP answer with their reason (alg none,
 *     unknown kid, expired, tampered);
 *   - rotation with overlap: a pending key does not sign; once its
 *     activates_at passes new tokens carry its kid and old ones still
 *     verify; after the old key's retires_at they do not;
 *   - Kafka unreachable: issue answers 503 and the token is nowhere;
 *   - the PKCS#11 backend end to end: an edge over the stack's SoftHSM2
 *     token signs with a key generated on the token, another edge verifies.
 * Every wait is on an observable outcome, bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_b64url.h"
#include "gov_events.h"
#include "gov_jwt.h"
#include "gov_signer.h"
#include "gov_signer_rt.h"
#include "gov_state_identity.h"
#include "gov_time.h"
#include "itest_util.h"

#define COMPONENT "gov-identity-itest-tokens"
/* Edge ids, made unique per run (itest_unique): a replica's loader group
 * is named after its id, so a run never waits for a crashed run's member. */
static char id_a[96], id_b[96], id_hsm[96], id_nokafka[96];
#define TENANT "demo"
#define WAIT_MS 20000

static pid_t redis_pid = -1;
static int redis_port;
static gov_redis_t *priv;
static itest_proc_t ident, edge_a, edge_b, edge_hsm;   /* teardown stops every one */
static char keydir[256];
static gov_keystore_t *ks;
static gov_signer_t *key1, *key2;
static char client_id[80], secret[80];
static char env_redis[64], env_brokers[160], env_trust[512], env_pack_trust[512], env_keydir[320];
static char token1[4096];
static int64_t key1_activates;   /* fixed once published: a KeyRotated may not move it */

/* --- HTTP ----------------------------------------------------------------------------- */

#define FORM "application/x-www-form-urlencoded"

/* Issues through HTTP Basic with extra form parameters; the status, the
 * token in tok (when 200), the JSON answer in *j (may be NULL). */
static int issue(const itest_proc_t *p, const char *extra, char *tok, size_t tok_size,
                 json_t **j) {
    char authz[512], body[512], raw[16384];
    itest_basic_auth(client_id, secret, authz);
    snprintf(body, sizeof body, "grant_type=client_credentials%s", extra ? extra : "");
    json_t *ans = NULL;
    int st = itest_http_post_raw(p->port, "/v1/tokens/issue", FORM, authz, body, &ans, raw,
                                 sizeof raw);
    if (st == 200 && tok) {
        const char *t = json_string_value(json_object_get(ans, "access_token"));
        assert_non_null(t);
        snprintf(tok, tok_size, "%s", t);
    }
    if (j)
        *j = ans;
    else
        json_decref(ans);
    return st;
}

/* POST /v1/tokens/verify {"token"}: the status, *code the error code (or ""). */
static int verify(const itest_proc_t *p, const char *tok, char code[64]) {
    return itest_token_verify(p->port, tok, code, NULL);
}

/* POST /v1/tokens/introspect as the client: the "active" member (-1: no 200). */
static int introspect(const itest_proc_t *p, const char *tok, json_t **out) {
    char body[8192], raw[16384], authz[512];
    itest_basic_auth(client_id, secret, authz);
    snprintf(body, sizeof body, "token=%s&token_type_hint=access_token", tok);
    json_t *j = NULL;
    int st = itest_http_post_raw(p->port, "/v1/tokens/introspect", FORM, authz, body, &j, raw,
                                 sizeof raw);
    int active = st == 200 ? json_is_true(json_object_get(j, "active")) : -1;
    if (out)
        *out = j;
    else
        json_decref(j);
    return active;
}

/* The kid in a token's header. */
static void token_kid(const char *tok, char kid[64]) {
    const char *dot = strchr(tok, '.');
    assert_non_null(dot);
    uint8_t hdr[512];
    size_t n = 0;
    assert_int_equal(gov_b64url_decode(tok, (size_t)(dot - tok), hdr, sizeof hdr - 1, &n, NULL, 0),
                     GOV_OK);
    hdr[n] = 0;
    json_t *h = json_loads((const char *)hdr, 0, NULL);
    snprintf(kid, 64, "%s", json_string_value(json_object_get(h, "kid")));
    json_decref(h);
}

/* --- keys ------------------------------------------------------------------------------ */

/* A KeyRotated for s as `govctl keys rotate` builds it, not yet signed. */
static json_t *key_rotated(gov_signer_t *s, const char *state, int64_t activates_at,
                           int64_t retires_at, const char *backend) {
    gov_buf_t jwk;
    gov_buf_init(&jwk, 0);
    assert_int_equal(gov_signer_public_jwk(gov_signer_public_key(s), gov_signer_kid(s), &jwk),
                     GOV_OK);
    int64_t created = activates_at - 1000000;
    gov_key_rotated_t k = {.occurred_at = gov_now_micros(), .kid = gov_signer_kid(s),
                           .alg = "EdDSA", .public_jwk = jwk.data, .backend = backend,
                           .state = state, .created_at = created, .activates_at = activates_at,
                           .retires_at = retires_at};
    json_t *ev = gov_events_key_rotated_new(&k);
    gov_buf_free(&jwk);
    assert_non_null(ev);
    return ev;
}

/* Produces ev (a KeyRotated of kid; stolen) and waits until the private
 * gov-identity handled it (materialized or dead-lettered). */
static void produce_key(json_t *ev, const char *kid) {
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[256];
    int32_t part = -1;
    int64_t off = -1;
    if (gov_avro_encode(itest_avro(), "KeyRotated", ev, &buf, &len, eb, sizeof eb) != GOV_OK)
        fail_msg("encode: %s", eb);
    json_decref(ev);
    char epoch[24];
    gov_kafka_header_t h;
    size_t nh = itest_lease_epoch_header(priv, epoch, &h);   /* as govctl publishes */
    if (gov_kafka_produce_sync(itest_producer(), GOV_TOPIC_IDENTITY_KEYS, kid, strlen(kid), buf,
                               len, &h, nh, 15000, &part, &off, eb, sizeof eb) != GOV_OK)
        fail_msg("produce: %s", eb);
    gov_free(buf);
    if (!itest_wait_offset(priv, ident.group, GOV_TOPIC_IDENTITY_KEYS, part, off, WAIT_MS))
        fail_msg("KeyRotated %s was not handled by %s", kid, COMPONENT);
}

/* Publishes a KeyRotated for s, signed as the stack's identity operator,
 * and waits until the private gov-identity handled it. */
static void publish_key(gov_signer_t *s, const char *state, int64_t activates_at,
                        int64_t retires_at, const char *backend) {
    produce_key(itest_identity_signed(key_rotated(s, state, activates_at, retires_at, backend),
                                      "KeyRotated"),
                gov_signer_kid(s));
}

/* --- setup ----------------------------------------------------------------------------- */

static int client_known(void *opaque) {
    (void)opaque;
    gov_state_identity_client_rec_t c;
    char eb[256];
    int found = gov_state_identity_client_get(priv, client_id, &c, eb, sizeof eb) == GOV_OK &&
                c.found;
    gov_state_identity_client_clear(&c);
    return found;
}

static void start_edge(itest_proc_t *p, const char *id, const char *const *more, const char *log) {
    static char env_id[4][128];
    static int slot;
    int s = slot++ % 4;
    snprintf(env_id[s], sizeof env_id[s], "GOV_EDGE_ID=%s", id);
    const char *env[20] = {env_redis, env_trust, env_pack_trust, env_id[s],
                           "GOV_IDENTITY_REFRESH=200ms", "GOV_TOKEN_ISSUER=https://gov.test",
                           "GOV_LOOKUP_TIMEOUT=2s"};
    size_t n = 7;
    for (size_t i = 0; more && more[i] && n < 19; i++)
        env[n++] = more[i];
    env[n] = NULL;
    itest_proc_start(p, "gov-edge", NULL, env, log);
}

static int setup(void **state) {
    (void)state;
    char eb[256];
    redis_pid = itest_private_redis("tokens", &redis_port);
    if (gov_redis_new("127.0.0.1", redis_port, 5000, &priv, eb, sizeof eb) != GOV_OK)
        fail_msg("private redis: %s", eb);
    itest_copy_tenant(priv, TENANT);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    snprintf(env_trust, sizeof env_trust, "GOV_TRUST_FILE=%s", itest_path("var/demo/trust.json"));
    snprintf(env_pack_trust, sizeof env_pack_trust, "GOV_RULEPACK_TRUST_FILE=%s",
             itest_path("var/demo/rulepack-trust.json"));
    const char *ienv[] = {env_redis, env_brokers, NULL};
    itest_proc_start(&ident, "gov-identity", COMPONENT, ienv, "itest-tokens-gov-identity.log");
    if (!itest_wait_caught_up(ident.port, 9, 120000))
        fail_msg("%s did not catch up with the identity topics", COMPONENT);

    /* the key store the edges share, and the first key, active */
    if (itest_workdir_new("tokens-keys", keydir, sizeof keydir) != 0)
        fail_msg("no work directory");
    chmod(keydir, 0700);
    gov_reason_t why;
    if (gov_keystore_open_dir(keydir, &ks, &why, eb, sizeof eb) != GOV_OK ||
        gov_keystore_generate(ks, &key1, &why, eb, sizeof eb) != GOV_OK)
        fail_msg("key store: %s", eb);
    key1_activates = gov_now_micros() - 5000000;
    publish_key(key1, "active", key1_activates, -1, "file");
    snprintf(env_keydir, sizeof env_keydir, "GOV_SIGNER_KEY_DIR=%s", keydir);

    /* a client of the demo tenant */
    char out[1024], err[4096];
    const char *genv[] = {env_brokers, NULL};
    int rc = itest_govctl(genv,
                          (const char *const[]){"clients", "add", "--tenants", TENANT, "--scopes",
                                                "read write", NULL},
                          out, sizeof out, err, sizeof err);
    itest_expect_ok(rc, err, __LINE__);
    json_t *o = json_loads(out, 0, NULL);
    snprintf(client_id, sizeof client_id, "%s",
             json_string_value(json_object_get(o, "client_id")));
    snprintf(secret, sizeof secret, "%s", json_string_value(json_object_get(o, "client_secret")));
    json_decref(o);
    if (itest_wait_for(client_known, NULL, WAIT_MS, 50) < 0)
        fail_msg("client %s was not materialized", client_id);

    const char *more[] = {env_keydir, NULL};
    itest_unique("edge-itest-tokens-a", id_a, sizeof id_a);
    itest_unique("edge-itest-tokens-b", id_b, sizeof id_b);
    itest_unique("edge-itest-tokens-hsm", id_hsm, sizeof id_hsm);
    itest_unique("edge-itest-tokens-nokafka", id_nokafka, sizeof id_nokafka);
    start_edge(&edge_a, id_a, more, "itest-tokens-edge-a.log");
    start_edge(&edge_b, id_b, more, "itest-tokens-edge-b.log");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = itest_proc_stop(&edge_a);
    rc |= itest_proc_stop(&edge_b);
    rc |= itest_proc_stop(&edge_hsm);
    rc |= itest_proc_stop(&ident);
    gov_signer_free(key1);
    gov_signer_free(key2);
    gov_keystore_free(ks);
    gov_redis_free(priv);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    itest_workdir_remove(keydir);
    return rc;
}

/* --- issue, verify, introspect, revoke --------------------------------------------------- */

typedef struct scan {
    const char *needle, *forbidden;
    int holds, leaked;
} scan_t;

static int scan_msgs(void *opaque, const gov_kafka_msg_t *m) {
    scan_t *s = opaque;
    if (memmem(m->value, m->len, s->needle, strlen(s->needle)))
        s->holds++;
    if (s->forbidden && memmem(m->value, m->len, s->forbidden, strlen(s->forbidden)))
        s->leaked = 1;
    return 0;
}

static void test_issue_verify_revoke(void **state) {
    (void)state;
    json_t *j = NULL;
    int st = issue(&edge_a, NULL, token1, sizeof token1, &j);
    if (st != 200)
        fail_msg("issue answered %d (see %s)", st, edge_a.log);
    assert_string_equal(json_string_value(json_object_get(j, "token_type")), "Bearer");
    assert_string_equal(json_string_value(json_object_get(j, "scope")), "read write");
    assert_int_equal(json_integer_value(json_object_get(j, "expires_in")), 900);
    json_decref(j);
    char kid[64];
    token_kid(token1, kid);
    assert_string_equal(kid, gov_signer_kid(key1));

    itest_expect_verify(&edge_a, token1, 200, NULL, __LINE__);
    itest_expect_verify(&edge_b, token1, 200, NULL, __LINE__);
    json_t *in = NULL;
    assert_int_equal(introspect(&edge_b, token1, &in), 1);
    assert_string_equal(json_string_value(json_object_get(in, "client_id")), client_id);
    assert_string_equal(json_string_value(json_object_get(in, "tenant")), TENANT);
    assert_string_equal(json_string_value(json_object_get(in, "iss")), "https://gov.test");
    char jti[64];
    snprintf(jti, sizeof jti, "%s", json_string_value(json_object_get(in, "jti")));
    json_decref(in);

    /* the TokenIssued and the AuditEvent (by this replica) hold the jti, never the token */
    const char *sig = strrchr(token1, '.') + 1;
    scan_t s1 = {jti, sig, 0, 0}, s2 = {jti, sig, 0, 0};
    itest_consume_until(GOV_TOPIC_IDENTITY_TOKENS, scan_msgs, &s1, 5000);
    assert_true(s1.holds >= 1);
    assert_false(s1.leaked);
    itest_consume_until(GOV_TOPIC_AUDIT, scan_msgs, &s2, 5000);
    assert_true(s2.holds >= 1);
    assert_false(s2.leaked);
    json_t *audit = itest_find_audit(TENANT, "gov-edge", "token.issued", NULL, 1000);
    assert_non_null(audit);
    json_decref(audit);
    scan_t s3 = {id_a, NULL, 0, 0};
    itest_consume_until(GOV_TOPIC_AUDIT, scan_msgs, &s3, 5000);
    assert_true(s3.holds >= 1);

    /* revoke (client_secret_post), then inactive on both replicas at once */
    char body[8192], raw[8192];
    snprintf(body, sizeof body, "token=%s&client_id=%s&client_secret=%s", token1, client_id,
             secret);
    assert_int_equal(itest_http_post_raw(edge_b.port, "/v1/tokens/revoke", FORM, NULL, body, NULL,
                                         raw, sizeof raw),
                     200);
    itest_expect_verify(&edge_a, token1, 401, "token_revoked", __LINE__);
    itest_expect_verify(&edge_b, token1, 401, "token_revoked", __LINE__);
    assert_int_equal(introspect(&edge_a, token1, NULL), 0);
    assert_int_equal(introspect(&edge_b, token1, NULL), 0);
    /* revoking an unknown or invalid token is 200 as well (RFC 7009) */
    snprintf(body, sizeof body, "token=not-a-token&client_id=%s&client_secret=%s", client_id,
             secret);
    assert_int_equal(itest_http_post_raw(edge_a.port, "/v1/tokens/revoke", FORM, NULL, body, NULL,
                                         raw, sizeof raw),
                     200);
    /* the log never holds the token */
    size_t ll = 0;
    char *log = itest_read_file(itest_log_path(edge_a.log), &ll);
    if (log)
        assert_null(memmem(log, ll, sig, strlen(sig)));
    free(log);
}

/* --- refusals -------------------------------------------------------------------------------- */

static void expect_oauth_error(int st, json_t *j, int want, const char *code, int line) {
    const char *got = json_string_value(json_object_get(j, "error"));
    if (st != want || got == NULL || strcmp(got, code) != 0)
        fail_msg("line %d: want %d %s, got %d %s", line, want, code, st, got ? got : "(none)");
    assert_non_null(json_string_value(json_object_get(j, "error_description")));
    json_decref(j);
}

static void test_issue_refusals(void **state) {
    (void)state;
    char authz[512], raw[8192];
    json_t *j = NULL;
    itest_basic_auth(client_id, "wrong-secret", authz);
    int st = itest_http_post_raw(edge_a.port, "/v1/tokens/issue", FORM, authz,
                                 "grant_type=client_credentials", &j, raw, sizeof raw);
    expect_oauth_error(st, j, 401, "invalid_client", __LINE__);
    assert_non_null(strstr(raw, "WWW-Authenticate: Basic"));
    st = issue(&edge_a, "&scope=read+admin", NULL, 0, &j);
    expect_oauth_error(st, j, 400, "invalid_scope", __LINE__);
    st = issue(&edge_a, "&tenant=someone-else", NULL, 0, &j);
    expect_oauth_error(st, j, 403, "unauthorized_client", __LINE__);
    itest_basic_auth(client_id, secret, authz);
    st = itest_http_post_raw(edge_a.port, "/v1/tokens/issue", FORM, authz, "grant_type=password",
                             &j, raw, sizeof raw);
    expect_oauth_error(st, j, 400, "unsupported_grant_type", __LINE__);
    st = itest_http_post_raw(edge_a.port, "/v1/tokens/issue", FORM, authz,
              "grant_type=client_credentials&scope=read&scope=write", &j, raw, sizeof raw);
    expect_oauth_error(st, j, 400, "invalid_request", __LINE__);
    /* a subset of the scopes, in a JSON body with client_secret_post, ttl capped */
    char body[512];
    snprintf(body, sizeof body,
             "{\"grant_type\":\"client_credentials\",\"client_id\":\"%s\",\"client_secret\":"
             "\"%s\",\"scope\":\"read\",\"ttl\":999999}",
             client_id, secret);
    st = itest_http_post_raw(edge_a.port, "/v1/tokens/issue", "application/json", NULL, body, &j,
                             raw, sizeof raw);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(j, "scope")), "read");
    assert_int_equal(json_integer_value(json_object_get(j, "expires_in")), 3600);
    assert_non_null(strstr(raw, "Cache-Control: no-store"));
    json_decref(j);
}

static gov_err_t sign_cb(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64], char *eb,
                         size_t ebs) {
    return gov_signer_sign(ctx, msg, len, sig, eb, ebs);
}

static void craft(gov_signer_t *s, int64_t iat, int64_t exp, char *out, size_t size) {
    gov_jwt_claims_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.iss, sizeof c.iss, "https://gov.test");
    snprintf(c.sub, sizeof c.sub, "%s", client_id);
    snprintf(c.client_id, sizeof c.client_id, "%s", client_id);
    snprintf(c.aud, sizeof c.aud, "soma-governance");
    snprintf(c.tenant, sizeof c.tenant, TENANT);
    snprintf(c.scope, sizeof c.scope, "read");
    memset(c.constitution_hash, 'a', 128);   /* a SHA3-512 hex no constitution has */
    assert_int_equal(gov_uuid_v7(c.jti), GOV_OK);
    c.iat = c.nbf = iat;
    c.exp = exp;
    gov_buf_t b;
    gov_buf_init(&b, 0);
    char eb[256];
    if (gov_jwt_sign(&c, gov_signer_kid(s), sign_cb, s, &b, eb, sizeof eb) != GOV_OK)
        fail_msg("sign: %s", eb);
    snprintf(out, size, "%s", b.data);
    gov_buf_free(&b);
}

static void test_crafted_tokens(void **state) {
    (void)state;
    char tok[4096], kid[64];
    /* alg none: header {"alg":"none","typ":"JWT"} over a real payload */
    assert_int_equal(issue(&edge_a, NULL, tok, sizeof tok, NULL), 200);
    itest_expect_verify(&edge_b, tok, 200, NULL, __LINE__);
    char none[4096];
    snprintf(none, sizeof none, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0%s", strchr(tok, '.'));
    itest_expect_verify(&edge_a, none, 401, "token_alg_not_allowed", __LINE__);
    /* tampered: one payload character changed */
    char tampered[4096];
    snprintf(tampered, sizeof tampered, "%s", tok);
    char *p = strchr(tampered, '.') + 5;
    *p = *p == 'A' ? 'B' : 'A';
    itest_expect_verify(&edge_a, tampered, 401, "token_bad_signature", __LINE__);
    /* a key nobody published */
    gov_signer_t *stranger = NULL;
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(i * 7 + 1);
    char eb[256];
    assert_int_equal(gov_signer_from_ed25519_raw(seed, "memory", &stranger, eb, sizeof eb), GOV_OK);
    int64_t now = gov_now_micros() / 1000000;
    craft(stranger, now, now + 60, tok, sizeof tok);
    gov_signer_free(stranger);
    itest_expect_verify(&edge_a, tok, 401, "token_unknown_kid", __LINE__);
    /* expired (beyond the 30 s leeway), signed by the published key */
    craft(key1, now - 600, now - 300, tok, sizeof tok);
    token_kid(tok, kid);
    itest_expect_verify(&edge_b, tok, 401, "token_expired", __LINE__);
    /* a wrong constitution hash */
    craft(key1, now, now + 60, tok, sizeof tok);
    itest_expect_verify(&edge_b, tok, 401, "token_constitution_stale", __LINE__);
}

/* --- rotation ----------------------------------------------------------------------------------- */

typedef struct kidwait {
    const char *want;
    const itest_proc_t *edge;
    char tok[4096];
} kidwait_t;

static int signs_with(void *opaque) {
    kidwait_t *w = opaque;
    char kid[64];
    if (issue(w->edge, NULL, w->tok, sizeof w->tok, NULL) != 200)
        return 0;
    token_kid(w->tok, kid);
    return strcmp(kid, w->want) == 0;
}

static const char *retired_tok;

static int refused_retired(void *opaque) {
    (void)opaque;
    char code[64];
    return verify(&edge_b, retired_tok, code) == 401 && strcmp(code, "token_key_retired") == 0;
}

static void test_rotation_overlap(void **state) {
    (void)state;
    char eb[256], old[4096], kid[64];
    gov_reason_t why;
    assert_int_equal(gov_keystore_generate(ks, &key2, &why, eb, sizeof eb), GOV_OK);
    int64_t activates = gov_now_micros() + 3000000;
    publish_key(key2, "pending", activates, -1, "file");
    /* pending: the old key still signs */
    assert_int_equal(issue(&edge_a, NULL, old, sizeof old, NULL), 200);
    token_kid(old, kid);
    assert_string_equal(kid, gov_signer_kid(key1));
    /* once its activates_at passed, the new one signs; the old token still verifies */
    kidwait_t w = {.want = gov_signer_kid(key2), .edge = &edge_b};
    if (itest_wait_for(signs_with, &w, 15000, 100) < 0)
        fail_msg("the new key never signed");
    assert_true(gov_now_micros() >= activates);
    itest_expect_verify(&edge_a, w.tok, 200, NULL, __LINE__);
    itest_expect_verify(&edge_a, old, 200, NULL, __LINE__);
    /* the old key retires: its tokens stop verifying at retires_at */
    int64_t retires = gov_now_micros() + 2000000;
    publish_key(key1, "retiring", key1_activates, retires, "file");
    itest_expect_verify(&edge_b, old, 200, NULL, __LINE__);
    retired_tok = old;
    if (itest_wait_for(refused_retired, NULL, 15000, 100) < 0)
        fail_msg("the old key's token never stopped verifying");
    assert_true(gov_now_micros() >= retires);
}

/* --- Kafka unavailable ------------------------------------------------------------------------------- */

static const itest_proc_t *nokafka;

static int edge_has_state(void *opaque) {
    (void)opaque;
    char *body = NULL;
    int ok = itest_proc_get(nokafka, "/.well-known/jwks.json", &body) == 200 && body &&
             strstr(body, gov_signer_kid(key2)) != NULL;
    free(body);
    body = NULL;
    ok = ok && itest_proc_get(nokafka, "/v1/constitution/" TENANT, &body) == 200;
    free(body);
    return ok;
}

static void test_kafka_unavailable(void **state) {
    (void)state;
    itest_proc_t c;
    memset(&c, 0, sizeof c);
    char bad[64];
    snprintf(bad, sizeof bad, "GOV_KAFKA_BROKERS=127.0.0.1:%d", itest_free_port());
    const char *more[] = {env_keydir, bad, NULL};
    /* The edge serves without Kafka (the loader reads Redis); it is not
     * ready while Kafka is away, so it is started by hand and waited for on
     * /healthz. */
    static char env_id[128];
    snprintf(env_id, sizeof env_id, "GOV_EDGE_ID=%s", id_nokafka);
    c.port = itest_free_port();
    snprintf(c.url, sizeof c.url, "http://127.0.0.1:%d", c.port);
    char env_port[32];
    snprintf(env_port, sizeof env_port, "GOV_PORT=%d", c.port);
    static char env_idtrust[1100];
    snprintf(env_idtrust, sizeof env_idtrust, "GOV_IDENTITY_TRUST_FILE=%s",
             itest_env("GOV_IDENTITY_TRUST_FILE", ""));
    const char *env[] = {env_redis, env_trust, env_pack_trust, env_id, env_port,
                         "GOV_IDENTITY_REFRESH=200ms", "GOV_TOKEN_ISSUER=https://gov.test",
                         env_idtrust, more[0], more[1], NULL};
    c.pid = itest_spawn((const char *const[]){itest_bin("gov-edge"), NULL}, env,
                        "itest-tokens-edge-nokafka.log");
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", c.port);
    if (!itest_wait_http(url, 200, 30000))
        fail_msg("the edge without Kafka did not start");
    json_t *j = NULL;
    char tok[4096] = "";
    /* the edge has its keys and the tenant once /v1/tokens/jwks lists the key
     * and the constitution API serves the tenant */
    nokafka = &c;
    if (itest_wait_for(edge_has_state, NULL, 20000, 100) < 0)
        fail_msg("the edge without Kafka did not load the keys and the tenant");
    int st = issue(&c, NULL, tok, sizeof tok, &j);
    const char *err = json_string_value(json_object_get(j, "error"));
    if (st != 503 || err == NULL || strcmp(err, "kafka_unavailable") != 0)
        fail_msg("want 503 kafka_unavailable, got %d %s", st, err ? err : "(none)");
    assert_null(json_object_get(j, "access_token"));
    json_decref(j);
    assert_int_equal(itest_stop(c.pid, SIGTERM, 15000), 0);
    size_t ll = 0;
    char *log = itest_read_file(itest_log_path("itest-tokens-edge-nokafka.log"), &ll);
    assert_non_null(log);
    /* no JWS header (every token starts with the same base64url) in its log */
    assert_null(memmem(log, ll, "eyJhbGciOiJFZERTQSI", 19));
    assert_non_null(memmem(log, ll, "token not issued", 16));
    free(log);
}

/* --- PKCS#11 ---------------------------------------------------------------------------------------- */

static void test_pkcs11_backend(void **state) {
    (void)state;
    /* the stack's token (environment, else var/stack.env: the suite exports
     * only the stack's addresses) */
    static const char *names[] = {"GOV_PKCS11_MODULE", "GOV_PKCS11_TOKEN_LABEL",
                                  "GOV_PKCS11_PIN", "SOFTHSM2_CONF"};
    static char vals[4][512];   /* itest_env answers in one static buffer: copy each */
    for (int i = 0; i < 4; i++) {
        const char *v = itest_env(names[i], NULL);
        if (v == NULL || !*v)
            fail_msg("%s missing (set -a; . var/stack.env)", names[i]);
        snprintf(vals[i], sizeof vals[i], "%s", v);
    }
    const char *module = vals[0], *label = vals[1], *pin = vals[2];
    setenv("SOFTHSM2_CONF", vals[3], 1);   /* this process and the edge it starts */
    gov_keystore_t *hsm = NULL;
    gov_signer_t *hkey = NULL;
    gov_reason_t why;
    char eb[256];
    if (gov_keystore_open_pkcs11(module, label, pin, NULL, &hsm, &why, eb, sizeof eb) != GOV_OK ||
        gov_keystore_generate(hsm, &hkey, &why, eb, sizeof eb) != GOV_OK)
        fail_msg("pkcs11: %s", eb);
    /* newer than every file key, so the HSM edge signs with it */
    publish_key(hkey, "active", gov_now_micros() - 1000000, -1, "pkcs11");
    char kid[64];
    snprintf(kid, sizeof kid, "%s", gov_signer_kid(hkey));
    gov_signer_free(hkey);
    gov_keystore_free(hsm);

    itest_proc_t *h = &edge_hsm;
    char m[600], l[600], pn[600];
    snprintf(m, sizeof m, "GOV_PKCS11_MODULE=%s", module);
    snprintf(l, sizeof l, "GOV_PKCS11_TOKEN_LABEL=%s", label);
    snprintf(pn, sizeof pn, "GOV_PKCS11_PIN=%s", pin);
    /* an ASan edge: SoftHSM2's own leak (C_SignInit) is suppressed, nothing else */
    char lsan[600];
    snprintf(lsan, sizeof lsan, "LSAN_OPTIONS=suppressions=%s",
             itest_path("tests/integration/lsan-softhsm.supp"));
    const char *more[] = {"GOV_SIGNER_BACKEND=pkcs11", m, l, pn, lsan, NULL};
    start_edge(h, id_hsm, more, "itest-tokens-edge-hsm.log");
    kidwait_t w = {.want = kid, .edge = h};
    if (itest_wait_for(signs_with, &w, 10000, 100) < 0)
        fail_msg("the PKCS#11 edge never signed with the token's key (see %s)", h->log);
    itest_expect_verify(&edge_a, w.tok, 200, NULL, __LINE__);
    itest_expect_verify(h, w.tok, 200, NULL, __LINE__);
    assert_int_equal(itest_proc_stop(h), 0);
}

/* --- well-known ------------------------------------------------------------------------------------- */

static void test_well_known(void **state) {
    (void)state;
    char *body = NULL;
    assert_int_equal(itest_proc_get(&edge_a, "/.well-known/jwks.json", &body), 200);
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    assert_true(json_is_array(json_object_get(j, "keys")));
    int seen = 0;
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(j, "keys"), i, k) {
        if (strcmp(json_string_value(json_object_get(k, "kid")), gov_signer_kid(key1)) == 0)
            seen = 1;
    }
    assert_true(seen);
    json_decref(j);
    assert_int_equal(itest_proc_get(&edge_b, "/.well-known/openid-configuration", &body), 200);
    j = json_loads(body, 0, NULL);
    free(body);
    assert_string_equal(json_string_value(json_object_get(j, "issuer")), "https://gov.test");
    assert_string_equal(json_string_value(json_object_get(j, "token_endpoint")),
                        "https://gov.test/v1/tokens/issue");
    assert_string_equal(json_string_value(json_object_get(j, "jwks_uri")),
                        "https://gov.test/.well-known/jwks.json");
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(j, "grant_types_supported"), 0)),
        "client_credentials");
    json_decref(j);
}

/* --- only signatures decide --------------------------------------------------------------------- */

/* The kid the edge signs with now. */
static void signing_kid(const itest_proc_t *edge, char kid[64]) {
    char tok[4096];
    assert_int_equal(issue(edge, NULL, tok, sizeof tok, NULL), 200);
    token_kid(tok, kid);
}

static int in_edge_jwks(const itest_proc_t *edge, const char *kid) {
    char *body = NULL;
    int in = itest_proc_get(edge, "/.well-known/jwks.json", &body) == 200 && body &&
             strstr(body, kid) != NULL;
    free(body);
    return in;
}

/* A key in the edges' own keystore whose KeyRotated nobody signed, produced
 * straight to identity.keys as the newest active key: the private
 * gov-identity dead-letters it, so no edge lists it, signs with it or
 * accepts a token it signed. */
static void test_forged_key_is_never_used(void **state) {
    (void)state;
    char before[64], now_kid[64], tok[4096], eb[256];
    gov_reason_t why;
    gov_signer_t *forged = NULL;
    signing_kid(&edge_a, before);
    assert_int_equal(gov_keystore_generate(ks, &forged, &why, eb, sizeof eb), GOV_OK);
    const char *kid = gov_signer_kid(forged);
    produce_key(key_rotated(forged, "active", gov_now_micros() - 1000000, -1, "file"), kid);
    gov_state_identity_key_rec_t rec;
    assert_int_equal(gov_state_identity_key_get(priv, kid, &rec, eb, sizeof eb), GOV_OK);
    assert_false(rec.found);
    gov_state_identity_key_clear(&rec);
    assert_true(itest_proc_metric(&ident, "identity_signature_rejections_total",
                                  (const char *[]){"type", "KeyRotated", "rule", "no_signatures",
                                                   NULL}) >= 1);
    /* two refreshes of the edges later (200 ms each), still the old key */
    signing_kid(&edge_a, now_kid);
    assert_string_equal(now_kid, before);
    signing_kid(&edge_b, now_kid);
    assert_string_equal(now_kid, before);
    assert_false(in_edge_jwks(&edge_a, kid));
    int64_t now = gov_now_micros() / 1000000;
    craft(forged, now, now + 60, tok, sizeof tok);
    itest_expect_verify(&edge_a, tok, 401, "token_unknown_kid", __LINE__);
    itest_expect_verify(&edge_b, tok, 401, "token_unknown_kid", __LINE__);
    gov_signer_free(forged);
}

typedef struct refused_want {
    const itest_proc_t *edge;
    const char *rule;
    double above;
} refused_want_t;

static int edge_refused(void *opaque) {
    refused_want_t *w = opaque;
    return itest_proc_metric(w->edge, "identity_records_refused_total",
                             (const char *[]){"kind", "key", "rule", w->rule, NULL}) > w->above;
}

static void hset_key(const char *kid, const char *const *fields, size_t n) {
    char kk[GOV_STATE_KEY_MAX];
    const char *argv[32];
    size_t a = 0;
    assert_int_equal(gov_state_identity_key_key(kid, kk), GOV_OK);
    argv[a++] = "HSET";
    argv[a++] = kk;
    for (size_t i = 0; i < n; i++)
        argv[a++] = fields[i];
    freeReplyObject(itest_redis_cmd(priv, (int)a, argv, NULL));
    freeReplyObject(itest_redis_cmd(
        priv, 3, (const char *[]){"SADD", gov_state_identity_kids_key(), kid}, NULL));
}

/* Redis is a view: a key record written straight into Redis - without
 * signatures, or with the valid signatures of another key's record - is
 * refused by every edge (identity_records_refused_total), is not in the
 * JWKS they serve though it is in the JWKS string gov-identity keeps in
 * Redis, does not sign although the edges' keystore holds it, and does not
 * verify a token it signed. */
static void test_key_written_into_redis_is_not_used(void **state) {
    (void)state;
    char before[64], now_kid[64], tok[4096], eb[256], act[32];
    gov_reason_t why;
    gov_signer_t *bare = NULL, *borrowed = NULL;
    signing_kid(&edge_a, before);
    assert_int_equal(gov_keystore_generate(ks, &bare, &why, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_keystore_generate(ks, &borrowed, &why, eb, sizeof eb), GOV_OK);
    /* both records are refused: one has no signed payload at all, the
     * other a signed payload about another kid */
    const char *rule = "identity_signature_invalid";
    refused_want_t ra = {&edge_a, rule, 0}, rb = {&edge_b, rule, 0};
    ra.above = itest_proc_metric(&edge_a, "identity_records_refused_total",
                                 (const char *[]){"kind", "key", "rule", rule, NULL});
    rb.above = itest_proc_metric(&edge_b, "identity_records_refused_total",
                                 (const char *[]){"kind", "key", "rule", rule, NULL});
    ra.above = (ra.above < 0 ? 0 : ra.above) + 1;
    rb.above = (rb.above < 0 ? 0 : rb.above) + 1;
    snprintf(act, sizeof act, "%lld", (long long)(gov_now_micros() - 1000000));
    /* the signed payload and signatures of a real key, under another kid */
    char kk1[GOV_STATE_KEY_MAX];
    assert_int_equal(gov_state_identity_key_key(gov_signer_kid(key1), kk1), GOV_OK);
    redisReply *sp = itest_redis_cmd(priv, 3, (const char *[]){"HGET", kk1, "signed"}, NULL);
    redisReply *sg = itest_redis_cmd(priv, 3, (const char *[]){"HGET", kk1, "signatures"}, NULL);
    assert_int_equal(sp->type, REDIS_REPLY_STRING);
    assert_int_equal(sg->type, REDIS_REPLY_STRING);
    gov_signer_t *both[] = {bare, borrowed};
    gov_buf_t jwks;
    gov_buf_init(&jwks, 0);
    gov_buf_puts(&jwks, "{\"keys\":[");
    for (int i = 0; i < 2; i++) {
        gov_buf_t jwk;
        gov_buf_init(&jwk, 0);
        assert_int_equal(gov_signer_public_jwk(gov_signer_public_key(both[i]),
                                               gov_signer_kid(both[i]), &jwk),
                         GOV_OK);
        gov_buf_printf(&jwks, "%s%.*s", i ? "," : "", (int)jwk.len, jwk.data);
        const char *f[] = {"alg", "EdDSA", "public_jwk", jwk.data, "backend", "file", "state",
                           "active", "created_at", act, "activates_at", act, "retires_at", "",
                           "previous_kid", "", "event_id", "written-into-redis",
                           "signed", i ? sp->str : "", "signatures", i ? sg->str : ""};
        hset_key(gov_signer_kid(both[i]), f, i ? 22 : 18);
        gov_buf_free(&jwk);
    }
    gov_buf_puts(&jwks, "]}");
    freeReplyObject(itest_redis_cmd(
        priv, 3, (const char *[]){"SET", gov_state_identity_jwks_key(), jwks.data}, NULL));
    gov_buf_free(&jwks);
    freeReplyObject(sp);
    freeReplyObject(sg);
    if (itest_wait_for(edge_refused, &ra, WAIT_MS, 50) < 0)
        fail_msg("%s did not refuse the key records written into Redis", edge_a.log);
    if (itest_wait_for(edge_refused, &rb, WAIT_MS, 50) < 0)
        fail_msg("%s did not refuse the key records written into Redis", edge_b.log);
    int64_t now = gov_now_micros() / 1000000;
    for (int i = 0; i < 2; i++) {
        const char *kid = gov_signer_kid(both[i]);
        assert_false(in_edge_jwks(&edge_a, kid));
        assert_false(in_edge_jwks(&edge_b, kid));
        craft(both[i], now, now + 60, tok, sizeof tok);
        itest_expect_verify(&edge_a, tok, 401, "token_unknown_kid", __LINE__);
        itest_expect_verify(&edge_b, tok, 401, "token_unknown_kid", __LINE__);
    }
    signing_kid(&edge_a, now_kid);
    assert_string_equal(now_kid, before);
    signing_kid(&edge_b, now_kid);
    assert_string_equal(now_kid, before);
    /* the served JWKS still holds the real keys */
    assert_true(in_edge_jwks(&edge_a, before));
    for (int i = 0; i < 2; i++) {
        char kk[GOV_STATE_KEY_MAX];
        assert_int_equal(gov_state_identity_key_key(gov_signer_kid(both[i]), kk), GOV_OK);
        freeReplyObject(itest_redis_cmd(priv, 2, (const char *[]){"DEL", kk}, NULL));
        freeReplyObject(itest_redis_cmd(
            priv, 3, (const char *[]){"SREM", gov_state_identity_kids_key(), gov_signer_kid(both[i])},
            NULL));
        gov_signer_free(both[i]);
    }
}

static int in_edge_jwks_is(void *opaque) {
    kidwait_t *w = opaque;
    return in_edge_jwks(w->edge, w->want);
}

/* A published (signed) key that the edges' keystore holds under its kid
 * but as another key is not used to sign: the edges keep signing with the
 * key before it, and verification of that key's tokens goes through the
 * published public key alone. */
static void test_keystore_key_not_the_published_one(void **state) {
    (void)state;
    char before[64], now_kid[64], eb[256], other_dir[256], path[600];
    gov_reason_t why;
    gov_keystore_t *elsewhere = NULL;
    gov_signer_t *published = NULL;
    signing_kid(&edge_a, before);
    if (itest_workdir_new("tokens-elsewhere", other_dir, sizeof other_dir) != 0)
        fail_msg("no work directory");
    chmod(other_dir, 0700);
    assert_int_equal(gov_keystore_open_dir(other_dir, &elsewhere, &why, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_keystore_generate(elsewhere, &published, &why, eb, sizeof eb), GOV_OK);
    const char *kid = gov_signer_kid(published);
    /* the edges' keystore: the published kid's file holds another key */
    snprintf(path, sizeof path, "%s/%s.pem", keydir, kid);
    EVP_PKEY *other = itest_ed25519_new();
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(PEM_write_PrivateKey(f, other, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(other);
    publish_key(published, "active", gov_now_micros() - 1000000, -1, "file");
    kidwait_t w = {.want = kid, .edge = &edge_a};
    if (itest_wait_for(in_edge_jwks_is, &w, WAIT_MS, 50) < 0)
        fail_msg("the published key %s never reached %s's JWKS", kid, edge_a.log);
    /* newest and published, but not the keystore's: the previous key signs */
    signing_kid(&edge_a, now_kid);
    assert_string_equal(now_kid, before);
    signing_kid(&edge_b, now_kid);
    assert_string_equal(now_kid, before);
    /* a token of the published key verifies through its published key */
    char tok[4096];
    int64_t now = gov_now_micros() / 1000000;
    craft(published, now, now + 60, tok, sizeof tok);
    itest_expect_verify(&edge_a, tok, 401, "token_constitution_stale", __LINE__);
    unlink(path);
    gov_signer_free(published);
    gov_keystore_free(elsewhere);
    itest_workdir_remove(other_dir);
}

/* A client written straight into Redis gets no token (401 invalid_client),
 * and a scope added to a registered client's record in Redis is not the
 * client's (400 invalid_scope): the edges authenticate and authorize from
 * the signed ClientRegistered stored with the record, not from the fields
 * beside it. */
static void test_client_written_into_redis_is_not_used(void **state) {
    (void)state;
    char id[80], ck[GOV_STATE_KEY_MAX], hash[80], authz[512], raw[16384];
    const char *sec = "written-into-redis-secret";
    unsigned char d[32];
    unsigned int dl = 0;
    itest_unique("client-injected", id, sizeof id);
    assert_int_equal(EVP_Digest(sec, strlen(sec), d, &dl, EVP_sha256(), NULL), 1);
    strcpy(hash, "sha256:");
    for (int i = 0; i < 32; i++)
        snprintf(hash + 7 + 2 * i, 3, "%02x", d[i]);
    assert_int_equal(gov_state_identity_client_key(id, ck), GOV_OK);
    freeReplyObject(itest_redis_cmd(
        priv, 12,
        (const char *[]){"HSET", ck, "secret_hash", hash, "tenants", TENANT, "scopes", "read",
                         "registered_by", "redis-writer", "registered_at", "1"},
        NULL));
    itest_basic_auth(id, sec, authz);
    json_t *j = NULL;
    int st = itest_http_post_raw(edge_a.port, "/v1/tokens/issue", FORM, authz,
                  "grant_type=client_credentials", &j, raw, sizeof raw);
    assert_int_equal(st, 401);
    assert_string_equal(json_string_value(json_object_get(j, "error")), "invalid_client");
    json_decref(j);
    freeReplyObject(itest_redis_cmd(priv, 2, (const char *[]){"DEL", ck}, NULL));
    /* the registered client, its scopes widened in Redis */
    assert_int_equal(gov_state_identity_client_key(client_id, ck), GOV_OK);
    freeReplyObject(itest_redis_cmd(
        priv, 4, (const char *[]){"HSET", ck, "scopes", "read write admin"}, NULL));
    assert_int_equal(issue(&edge_a, "&scope=admin", NULL, 0, &j), 400);
    assert_string_equal(json_string_value(json_object_get(j, "error")), "invalid_scope");
    json_decref(j);
    assert_int_equal(issue(&edge_b, "&scope=read", NULL, 0, NULL), 200);
    freeReplyObject(itest_redis_cmd(
        priv, 4, (const char *[]){"HSET", ck, "scopes", "read write"}, NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_well_known),
        cmocka_unit_test(test_issue_verify_revoke),
        cmocka_unit_test(test_issue_refusals),
        cmocka_unit_test(test_crafted_tokens),
        cmocka_unit_test(test_rotation_overlap),
        cmocka_unit_test(test_pkcs11_backend),
        cmocka_unit_test(test_kafka_unavailable),
        cmocka_unit_test(test_forged_key_is_never_used),
        cmocka_unit_test(test_key_written_into_redis_is_not_used),
        cmocka_unit_test(test_keystore_key_not_the_published_one),
        cmocka_unit_test(test_client_written_into_redis_is_not_used),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
