/* test_identity_attack.c - gov-edge's token endpoints as an attacker and an
 * operator see them (review 10), and the constitution grace window end to
 * end.
 *
 * A private deployment next to the stack's: a private Redis, a private
 * gov-constitution ("gov-constitution-itest-attack", a trust file of its own
 * binding a fresh tenant to two keys made by `govctl keygen`), a private
 * gov-identity ("gov-identity-itest-attack"), and private gov-edge replicas
 * (ids "edge-itest-attack-*-<unique>") signing from a private key directory.
 * Constitutions travel the real chain: `govctl sign` twice and
 * `govctl publish`, gov-constitution verifies and materializes, the edge
 * verifies what Redis holds.
 *
 * Default run (all pass today; each guards a behaviour an attacker probes):
 *   - grace window: a token bound to constitution H1 still verifies after
 *     H1 is replaced by H2, for GOV_TOKEN_CONSTITUTION_GRACE_S (2 s here),
 *     then answers token_constitution_stale; a token issued after carries H2;
 *   - request games: malformed Basic credentials (unpadded, re-spelled,
 *     URL alphabet, no colon), a parameter twice (also through a
 *     percent-escaped name), scope strings with odd separators, tenant
 *     parameter edge cases, ttl overflow and junk;
 *   - clients against each other: introspect and revoke without
 *     authentication, revoking another client's token (403, the token still
 *     verifies);
 *   - crafted tokens signed by the edge's real key: kid with path
 *     characters, times at and beyond the int64/NumericDate limits,
 *     nbf after exp, duplicate claims - each refused with its reason;
 *   - the signing key file made group-readable while the edge runs:
 *     issuance stops (503 signing_key_unavailable) at the next rebuild,
 *     verification goes on, chmod 600 brings issuance back.
 *
 *   - review 10's findings fixed in the identity code, each test failing
 *     before its fix: P1 the grace is the same on a replica that refreshes
 *     slowly and on one started after the replacement (computed from
 *     constitution:{T} previous_checksum/replaced_at); P1b it lasts the
 *     configured seconds from the recorded replacement (rounded up); P4 the
 *     key store's refusal is logged, identity_signing_keys_usable 0, /readyz
 *     signing degraded; P5 past 1024 kids in identity:{keys}:kids the edge
 *     keeps its last snapshot and says so (gauge, readyz) instead of
 *     sampling; P6 a later TokenRevoked with an earlier expires_at does not
 *     shorten a revocation; P2 a removed client's tokens stop verifying
 *     (token_client_removed, within client_cache_ttl); P3 a client sees the
 *     claims of its own or its tenants' tokens only.
 *   - review 11's M5: a retired kid is retired forever - the signed active
 *     event captured while the key lived, replayed after the retired hash
 *     expired (GOV_KEY_RETIRED_KEEP_S=2, observed), is dead-lettered
 *     key_retired and its token stays refused; an unknown kid activated
 *     longer ago than the token lifetime is key_stale.
 * Every wait is on an observable outcome, bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/evp.h>
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
#include "gov_keyrotate.h"
#include "gov_signer.h"
#include "gov_signer_rt.h"
#include "gov_state.h"
#include "gov_state_identity.h"
#include "gov_time.h"
#include "itest_util.h"

#define COMP_CONSTITUTION "gov-constitution-itest-attack"
#define COMP_IDENTITY "gov-identity-itest-attack"
#define ISSUER "https://gov.attack.test"
#define WAIT_MS 20000
#define GRACE_S 2
#define LIFETIME_S "3" /* the private gov-identity's token_ttl_max_s (leeway 0) */
#define FORM "application/x-www-form-urlencoded"

static pid_t redis_pid = -1;
static int redis_port;
static gov_redis_t *priv;
static itest_proc_t constitution, ident, edge;
static itest_proc_t extra[3];   /* pending tests' replicas; teardown stops them */
static char work[256], keydir[300], trust[320], bundle_path[320];
static char tenant[64], other_tenant[64];
static gov_keystore_t *ks;
static gov_signer_t *key;
static char env_redis[48], env_brokers[200], env_trust[400], env_rp_trust[420],
    env_keydir[340], env_issuer[80];
static int version = 0;
static char current_hash[129];

typedef struct client {
    char id[80], secret[80];
} client_t;
static client_t alice_client, other_client;

/* --- HTTP ------------------------------------------------------------------------------- */

static void basic(const client_t *c, char out[512]) {
    itest_basic_auth(c->id, c->secret, out);
}

/* The OAuth error of an answer: its status, and "error" in code. */
static int oauth_call(const itest_proc_t *p, const char *path, const char *authz,
                      const char *body, char code[64], json_t **out) {
    char raw[16384];
    json_t *j = NULL;
    int st = itest_http_post_raw(p->port, path, FORM, authz, body, &j, raw, sizeof raw);
    const char *e = json_string_value(json_object_get(j, "error"));
    snprintf(code, 64, "%s", e ? e : "");
    if (out)
        *out = j;
    else
        json_decref(j);
    return st;
}

/* Issues for client c with extra form parameters: the status; the token in
 * tok when 200 (tok may be NULL); "error" in code. */
static int issue(const itest_proc_t *p, const client_t *c, const char *extra_params, char *tok,
                 size_t tok_size, char code[64]) {
    char authz[512], body[1024];
    basic(c, authz);
    snprintf(body, sizeof body, "grant_type=client_credentials%s",
             extra_params ? extra_params : "");
    json_t *j = NULL;
    int st = oauth_call(p, "/v1/tokens/issue", authz, body, code, &j);
    if (st == 200 && tok)
        snprintf(tok, tok_size, "%s", json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    return st;
}

/* POST /v1/tokens/verify: the status, the error code (or "") in code, the
 * token's constitution_hash (when 200) in hash (may be NULL). */
static int verify(const itest_proc_t *p, const char *tok, char code[64], char hash[129]) {
    json_t *j = NULL;
    int st = itest_token_verify(p->port, tok, code, &j);
    if (hash) {
        const char *h = json_string_value(
            json_object_get(json_object_get(j, "claims"), "constitution_hash"));
        snprintf(hash, 129, "%s", h ? h : "");
    }
    json_decref(j);
    return st;
}

static void expect_oauth(int st, const char *code, int want, const char *want_code, int line) {
    if (st != want || strcmp(code, want_code) != 0)
        fail_msg("line %d: want %d %s, got %d %s", line, want, want_code, st, code);
}

/* --- the chain: constitutions, keys, clients ----------------------------------------------- */

static const char *govctl_env[4];

static void govctl(const char *const *args, char *out, size_t out_size, int line) {
    char err[4096];
    int rc = itest_govctl(govctl_env, args, out, out_size, err, sizeof err);
    itest_expect_ok(rc, err, line);
}

/* The edge's answer for the tenant's current hash contains want. */
typedef struct serve_wait {
    const itest_proc_t *p;
    const char *hash;
} serve_wait_t;

static int serves(void *opaque) {
    const serve_wait_t *w = opaque;
    char path[160], *body = NULL;
    snprintf(path, sizeof path, "/v1/constitution/%s/hash", tenant);
    int ok = itest_proc_get(w->p, path, &body) == 200 && body && strstr(body, w->hash) != NULL;
    free(body);
    return ok;
}

static void wait_serves(const itest_proc_t *p, const char *hash) {
    serve_wait_t w = {p, hash};
    if (itest_wait_for(serves, &w, WAIT_MS, 10) < 0)
        fail_msg("%s does not serve constitution %s of %s", p->log, hash, tenant);
}

/* Publishes the tenant's next constitution version through the real
 * chain (govctl sign by alice and bob, govctl publish) and waits until the
 * main edge serves it; its checksum in current_hash. */
static void publish_next_constitution(void) {
    char doc[1024], out[4096], path[400];
    version++;
    snprintf(doc, sizeof doc,
             "{\"tenant\":\"%s\",\"document\":{\"governance\":{\"signature_threshold\":2},"
             "\"rules\":{\"max_risk_score\":0.8,\"permitted_tool_categories\":[\"search\"],"
             "\"prohibited_actions\":[\"exfiltrate\"],\"require_human_approval_above_risk\":0.5},"
             "\"tenant\":\"%s\",\"version\":\"%d.0.0\"}}\n",
             tenant, tenant, version);
    itest_write_file(bundle_path, doc, strlen(doc));
    static const char *const signers[] = {"alice", "bob"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s.key", work, signers[i]);
        govctl((const char *const[]){"sign", "--signer", signers[i], "--key", path, bundle_path,
                                     NULL},
               out, sizeof out, __LINE__);
    }
    govctl((const char *const[]){"publish", "--tenant", tenant, "--source", "itest-attack",
                                 bundle_path, NULL},
           out, sizeof out, __LINE__);
    char *text = itest_read_file(bundle_path, NULL);
    json_t *b = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(b);
    snprintf(current_hash, sizeof current_hash, "%s",
             json_string_value(json_object_get(b, "checksum")));
    json_decref(b);
    assert_true(current_hash[0] != '\0');
    wait_serves(&edge, current_hash);
}

/* Every key this test published, so teardown can retire it: the topic is
 * shared, and a key left active would stay in every JWKS built from it. */
typedef struct published_key {
    char kid[GOV_SIGNER_KID_SIZE];
    char jwk[256];
    int64_t activates;
} published_key_t;
static published_key_t published[4];
static size_t npublished;

/* Produces the KeyRotated of k in state (retires_at when retiring, else
 * none); with wait, waits until the private gov-identity handled it. */
static void produce_key_json(const char *kid, json_t *ev, int wait) {
    int32_t part = -1;
    int64_t off = -1;
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[256], epoch[24];
    gov_kafka_header_t h;
    /* under the private rotator's lease epoch, as govctl publishes */
    size_t nh = itest_lease_epoch_header(priv, epoch, &h);
    assert_int_equal(gov_avro_encode(itest_avro(), "KeyRotated", ev, &buf, &len, eb, sizeof eb),
                     GOV_OK);
    itest_produce_raw_at(GOV_TOPIC_IDENTITY_KEYS, kid, buf, len, 0, &h, nh, &part, &off);
    gov_free(buf);
    if (wait && !itest_wait_offset(priv, ident.group, GOV_TOPIC_IDENTITY_KEYS, part, off, WAIT_MS))
        fail_msg("KeyRotated %s was not handled by %s", kid, COMP_IDENTITY);
}

/* The signed KeyRotated of k in state (retires_at when retiring, else
 * none): a new reference. */
static json_t *key_event(const published_key_t *k, const char *state, int64_t retires_at) {
    gov_key_rotated_t e = {.occurred_at = gov_now_micros(), .kid = k->kid, .alg = "EdDSA",
                           .public_jwk = k->jwk, .backend = "file", .state = state,
                           .created_at = k->activates - 1000000, .activates_at = k->activates,
                           .retires_at = retires_at};
    json_t *ev = itest_identity_signed(gov_events_key_rotated_new(&e), "KeyRotated");
    assert_non_null(ev);
    return ev;
}

static void produce_key_event(const published_key_t *k, const char *state, int64_t retires_at,
                              int wait) {
    json_t *ev = key_event(k, state, retires_at);
    produce_key_json(k->kid, ev, wait);
    json_decref(ev);
}

/* k's kid and normalized public JWK from signer s, activating at activates. */
static void key_of(gov_signer_t *s, int64_t activates, published_key_t *k) {
    gov_buf_t jwk;
    gov_buf_init(&jwk, 0);
    assert_int_equal(gov_signer_public_jwk(gov_signer_public_key(s), gov_signer_kid(s), &jwk),
                     GOV_OK);
    snprintf(k->kid, sizeof k->kid, "%s", gov_signer_kid(s));
    snprintf(k->jwk, sizeof k->jwk, "%s", jwk.data);
    gov_buf_free(&jwk);
    k->activates = activates;
}

/* Publishes a KeyRotated for s, as `govctl keys rotate` does for a first
 * key, and waits until the private gov-identity handled it.  (govctl itself
 * would retire the newest key gov-identity holds - another test's, on the
 * shared topic - so the event is produced here.) */
static void publish_key(gov_signer_t *s, const char *state, int64_t activates) {
    assert_true(npublished < sizeof published / sizeof published[0]);
    published_key_t *k = &published[npublished++];
    key_of(s, activates, k);
    produce_key_event(k, state, -1, 1);
}

typedef struct client_wait {
    const char *id;
    int want_found;
} client_wait_t;

static int client_is(void *opaque) {
    const client_wait_t *w = opaque;
    gov_state_identity_client_rec_t c;
    char eb[256];
    int found = gov_state_identity_client_get(priv, w->id, &c, eb, sizeof eb) == GOV_OK &&
                c.found;
    gov_state_identity_client_clear(&c);
    return found == w->want_found;
}

static void add_client(const char *tenants, const char *scopes, client_t *c) {
    char out[1024];
    govctl((const char *const[]){"clients", "add", "--tenants", tenants, "--scopes", scopes, NULL},
           out, sizeof out, __LINE__);
    json_t *o = json_loads(out, 0, NULL);
    snprintf(c->id, sizeof c->id, "%s", json_string_value(json_object_get(o, "client_id")));
    snprintf(c->secret, sizeof c->secret, "%s",
             json_string_value(json_object_get(o, "client_secret")));
    json_decref(o);
    client_wait_t w = {c->id, 1};
    if (itest_wait_for(client_is, &w, WAIT_MS, 20) < 0)
        fail_msg("client %s was not materialized by %s", c->id, COMP_IDENTITY);
}

/* Starts a private gov-edge (id prefix-<unique>) with the grace and the
 * identity refresh given. */
static void start_edge(itest_proc_t *p, const char *prefix, int grace_s, const char *refresh,
                       const char *keydir_env, const char *log) {
    static char ids[4][128], graces[4][64], refreshes[4][64];
    static int slot;
    int s = slot++ % 4;
    char id[96];
    itest_unique(prefix, id, sizeof id);
    snprintf(ids[s], sizeof ids[s], "GOV_EDGE_ID=%s", id);
    snprintf(graces[s], sizeof graces[s], "GOV_TOKEN_CONSTITUTION_GRACE_S=%d", grace_s);
    snprintf(refreshes[s], sizeof refreshes[s], "GOV_IDENTITY_REFRESH=%s", refresh);
    const char *env[] = {env_redis, env_brokers, env_trust, env_rp_trust, keydir_env, env_issuer,
                         ids[s], graces[s], refreshes[s], "GOV_LOOKUP_TIMEOUT=2s",
                         "GOV_RECONCILE=1s", NULL};
    itest_proc_start(p, "gov-edge", NULL, env, log);
}

static int setup(void **state) {
    (void)state;
    char eb[256], out[4096];
    itest_unique("attack", tenant, sizeof tenant);
    itest_unique("attack-other", other_tenant, sizeof other_tenant);
    if (itest_workdir_new("attack", work, sizeof work) != 0)
        fail_msg("no work directory");
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    govctl_env[0] = env_brokers;

    /* two constitution signers, bound to the tenant by a trust file of our own */
    static const char *const ids[] = {"alice", "bob"};
    char *pems[2];
    for (size_t i = 0; i < 2; i++) {
        govctl((const char *const[]){"keygen", "--signer", ids[i], "--out", work, NULL}, out,
               sizeof out, __LINE__);
        char path[400];
        snprintf(path, sizeof path, "%s/%s.pub", work, ids[i]);
        pems[i] = itest_read_file(path, NULL);
        assert_non_null(pems[i]);
    }
    snprintf(trust, sizeof trust, "%s/trust.json", work);
    itest_write_trust_tenant_pems(trust, tenant, 2, 0, 2, ids, (const char *const *)pems);
    free(pems[0]);
    free(pems[1]);
    snprintf(bundle_path, sizeof bundle_path, "%s/bundle.json", work);
    snprintf(env_trust, sizeof env_trust, "GOV_TRUST_FILE=%s", trust);
    snprintf(env_rp_trust, sizeof env_rp_trust, "GOV_RULEPACK_TRUST_FILE=%s", trust);

    redis_pid = itest_private_redis("attack", &redis_port);
    if (gov_redis_new("127.0.0.1", redis_port, 5000, &priv, eb, sizeof eb) != GOV_OK)
        fail_msg("private redis: %s", eb);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    const char *cenv[] = {env_redis, env_brokers, env_trust, NULL};
    itest_proc_start(&constitution, "gov-constitution", COMP_CONSTITUTION, cenv,
                     "itest-attack-gov-constitution.log");
    /* a 3 s token lifetime and a 2 s keep: a retired kid leaves the index
     * and its hash expires within seconds (M5); keys published below
     * activate 1 s back, fresh within that lifetime */
    const char *ienv[] = {env_redis, env_brokers, "GOV_TOKEN_TTL_MAX_S=" LIFETIME_S,
                          "GOV_TOKEN_LEEWAY_S=0", "GOV_KEY_RETIRED_KEEP_S=2", NULL};
    itest_proc_start(&ident, "gov-identity", COMP_IDENTITY, ienv, "itest-attack-gov-identity.log");
    itest_must_catch_up(&constitution, 3);
    if (!itest_wait_caught_up(ident.port, 9, 120000))
        fail_msg("%s did not catch up with the identity topics", COMP_IDENTITY);

    /* the edges' key store and its one key, active */
    snprintf(keydir, sizeof keydir, "%s/keys", work);
    gov_reason_t why;
    if (gov_keystore_open_dir(keydir, &ks, &why, eb, sizeof eb) != GOV_OK ||
        gov_keystore_generate(ks, &key, &why, eb, sizeof eb) != GOV_OK)
        fail_msg("key store: %s", eb);
    publish_key(key, "active", gov_now_micros() - 1000000);
    snprintf(env_keydir, sizeof env_keydir, "GOV_SIGNER_KEY_DIR=%s", keydir);
    snprintf(env_issuer, sizeof env_issuer, "GOV_TOKEN_ISSUER=%s", ISSUER);

    add_client(tenant, "read write", &alice_client);
    add_client(other_tenant, "read", &other_client);
    start_edge(&edge, "edge-itest-attack", GRACE_S, "100ms", env_keydir, "itest-attack-edge.log");
    publish_next_constitution();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (size_t i = 0; i < npublished; i++) {
        /* retires_at may not precede activates_at (a pending key's is ahead) */
        int64_t now = gov_now_micros();
        produce_key_event(&published[i], "retired",
                          published[i].activates > now ? published[i].activates : now, 0);
    }
    int rc = itest_proc_stop(&edge);
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        rc |= itest_proc_stop(&extra[i]);
    rc |= itest_proc_stop(&ident);
    rc |= itest_proc_stop(&constitution);
    gov_signer_free(key);
    gov_keystore_free(ks);
    gov_redis_free(priv);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    itest_workdir_remove(work);
    return rc;
}

/* --- the constitution grace window --------------------------------------------------------- */

/* Issues a token bound to the current constitution, publishes the next one
 * and polls verify until the token's answer flips from 200 to
 * token_constitution_stale (bounded: the grace plus 10 s).  Returns the ms
 * from the edge serving the new hash to the flip; *ok_after the 200s seen
 * after the swap. */
static int64_t flip_wall_us; /* wall clock of grace_flip_ms's first refusal */

static long grace_flip_ms(int *ok_after) {
    char tok[4096], code[64], hash[129], before[129];
    snprintf(before, sizeof before, "%s", current_hash);
    int st = issue(&edge, &alice_client, NULL, tok, sizeof tok, code);
    if (st != 200)
        fail_msg("issue answered %d %s (see %s)", st, code, edge.log);
    assert_int_equal(verify(&edge, tok, code, hash), 200);
    assert_string_equal(hash, before);

    publish_next_constitution(); /* served by the edge from now on */
    int64_t served_us = gov_mono_micros();
    assert_string_not_equal(current_hash, before);
    *ok_after = 0;
    while (gov_mono_micros() - served_us < (int64_t)(GRACE_S + 10) * 1000000) {
        st = verify(&edge, tok, code, NULL);
        if (st != 200) {
            if (st != 401 || strcmp(code, "token_constitution_stale") != 0)
                fail_msg("verify after the replacement answered %d %s", st, code);
            /* refused from now on */
            flip_wall_us = gov_now_micros();
            itest_expect_verify(&edge, tok, 401, "token_constitution_stale", __LINE__);
            return (long)((gov_mono_micros() - served_us) / 1000);
        }
        (*ok_after)++;
        itest_sleep_ms(20);
    }
    fail_msg("a token bound to the replaced constitution still verifies %d s after it",
             GRACE_S + 10);
    return -1;
}

/* H1 -> H2: the H1 token verifies inside the grace, then is stale; a new
 * token carries H2.  The window is counted from the replacement
 * gov-constitution recorded, which precedes the edge serving H2 by the
 * propagation (test_grace_is_not_shortened checks the exact bound), so the
 * bound checked here is GRACE_S - 1 s. */
static void test_grace_window(void **state) {
    (void)state;
    int ok_after = 0;
    long flip_ms = grace_flip_ms(&ok_after);
    print_message("token bound to the replaced hash verified %d times, refused %ld ms after the "
                  "edge served the new one (grace %d s)\n",
                  ok_after, flip_ms, GRACE_S);
    assert_true(ok_after > 0);
    assert_true(flip_ms >= (GRACE_S - 1) * 1000 - 200);
    char tok[4096], code[64], hash[129];
    assert_int_equal(issue(&edge, &alice_client, NULL, tok, sizeof tok, code), 200);
    assert_int_equal(verify(&edge, tok, code, hash), 200);
    assert_string_equal(hash, current_hash);
}

/* --- request games --------------------------------------------------------------------------- */

static void test_request_games(void **state) {
    (void)state;
    char code[64], authz[512], body[1024];
    json_t *j = NULL;
    /* Basic credentials that are not the one spelling of id:secret */
    basic(&alice_client, authz);
    size_t n = strlen(authz);
    char respelled[512];
    static const char *const bad_basic[] = {
        "Basic",
        "Basic ",
        "Basic !!!!",
        "Basic YWJj" /* no colon */,
        "Basic YWI6Y2Q" /* unpadded */,
        "Basic YWI6Y2R=" /* unused bits */, "Basic YWI6Y2Q==" /* padding over */,
    };
    for (size_t i = 0; i < sizeof bad_basic / sizeof bad_basic[0]; i++) {
        int st = oauth_call(&edge, "/v1/tokens/issue", bad_basic[i],
                            "grant_type=client_credentials", code, NULL);
        if (st != 400 && st != 401)
            fail_msg("Authorization \"%s\" answered %d %s", bad_basic[i], st, code);
    }
    /* the real credentials with the URL alphabet or without their padding */
    snprintf(respelled, sizeof respelled, "%s", authz);
    for (char *p = respelled + 6; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    if (strcmp(respelled, authz) != 0)
        expect_oauth(oauth_call(&edge, "/v1/tokens/issue", respelled,
                                "grant_type=client_credentials", code, NULL),
                     code, 400, "invalid_request", __LINE__);
    if (authz[n - 1] == '=') {
        snprintf(respelled, sizeof respelled, "%.*s", (int)(n - 1), authz);
        expect_oauth(oauth_call(&edge, "/v1/tokens/issue", respelled,
                                "grant_type=client_credentials", code, NULL),
                     code, 400, "invalid_request", __LINE__);
    }
    /* a parameter twice, also through an escaped name; credentials twice */
    snprintf(body, sizeof body, "grant_type=client_credentials&scope=read&%%73cope=write");
    expect_oauth(oauth_call(&edge, "/v1/tokens/issue", authz, body, code, NULL), code, 400,
                 "invalid_request", __LINE__);
    snprintf(body, sizeof body, "grant_type=client_credentials&client_id=%s", alice_client.id);
    expect_oauth(oauth_call(&edge, "/v1/tokens/issue", authz, body, code, NULL), code, 400,
                 "invalid_request", __LINE__);
    /* scope strings with odd separators */
    static const char *const scopes[] = {"read%09write", "read++write", "read,write", "+read",
                                         "read+", "read%00", "read%0Awrite", "admin"};
    for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++) {
        char extra_p[128];
        snprintf(extra_p, sizeof extra_p, "&scope=%s", scopes[i]);
        int st = issue(&edge, &alice_client, extra_p, NULL, 0, code);
        if (st != 400 || (strcmp(code, "invalid_scope") != 0 && strcmp(code, "invalid_request")))
            fail_msg("scope=%s answered %d %s", scopes[i], st, code);
    }
    /* tenant parameter edge cases: none of them is the client's tenant */
    char t_extra[6][200];
    snprintf(t_extra[0], sizeof t_extra[0], "&tenant=");
    snprintf(t_extra[1], sizeof t_extra[1], "&tenant=%s,%s", tenant, other_tenant);
    snprintf(t_extra[2], sizeof t_extra[2], "&tenant=%.*s", (int)strlen(tenant) - 1, tenant);
    snprintf(t_extra[3], sizeof t_extra[3], "&tenant=%s%%00", tenant);
    snprintf(t_extra[4], sizeof t_extra[4], "&tenant=%s", other_tenant);
    snprintf(t_extra[5], sizeof t_extra[5], "&tenant=%s+", tenant);
    for (size_t i = 0; i < 6; i++) {
        int st = issue(&edge, &alice_client, t_extra[i], NULL, 0, code);
        if (st != 400 && st != 403)
            fail_msg("%s answered %d %s", t_extra[i], st, code);
    }
    /* ttl: overflow is capped, junk is refused */
    char tok[4096];
    assert_int_equal(issue(&edge, &alice_client, "&ttl=99999999999999999999999", tok, sizeof tok,
                           code),
                     200);
    basic(&alice_client, authz);
    int st = oauth_call(&edge, "/v1/tokens/issue", authz,
                        "grant_type=client_credentials&ttl=9223372036854775807", code, &j);
    assert_int_equal(st, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "expires_in")), 3600);
    json_decref(j);
    static const char *const ttls[] = {"0", "-1", "1e3", "0x10", "", "12abc"};
    for (size_t i = 0; i < sizeof ttls / sizeof ttls[0]; i++) {
        char extra_p[64];
        snprintf(extra_p, sizeof extra_p, "&ttl=%s", ttls[i]);
        expect_oauth(issue(&edge, &alice_client, extra_p, NULL, 0, code), code, 400,
                     "invalid_request", __LINE__);
    }
    /* a 1 MiB form body is refused before it is parsed */
    size_t big = 1 << 20;
    char *huge = malloc(big + 64);
    assert_non_null(huge);
    memcpy(huge, "grant_type=client_credentials&scope=", 36);
    memset(huge + 36, 'a', big);
    huge[36 + big] = '\0';
    char raw[4096];
    st = itest_http_post_raw(edge.port, "/v1/tokens/issue", FORM, authz, huge, NULL, raw,
                             sizeof raw);
    free(huge);
    if (st != 413 && st != 400)
        fail_msg("a 1 MiB body answered %d", st);
    itest_expect_verify(&edge, tok, 200, NULL, __LINE__); /* the edge is still fine */
}

/* --- clients against each other ------------------------------------------------------- */

static void test_clients_against_each_other(void **state) {
    (void)state;
    char tok[4096], code[64], body[8192], authz[512];
    assert_int_equal(issue(&edge, &alice_client, NULL, tok, sizeof tok, code), 200);
    /* introspect and revoke without authentication */
    snprintf(body, sizeof body, "token=%s", tok);
    expect_oauth(oauth_call(&edge, "/v1/tokens/introspect", NULL, body, code, NULL), code, 401,
                 "invalid_client", __LINE__);
    expect_oauth(oauth_call(&edge, "/v1/tokens/revoke", NULL, body, code, NULL), code, 401,
                 "invalid_client", __LINE__);
    /* another client's wrong secret, then the right one: 403, the token lives on */
    client_t wrong = other_client;
    snprintf(wrong.secret, sizeof wrong.secret, "%s", alice_client.secret);
    basic(&wrong, authz);
    expect_oauth(oauth_call(&edge, "/v1/tokens/revoke", authz, body, code, NULL), code, 401,
                 "invalid_client", __LINE__);
    basic(&other_client, authz);
    expect_oauth(oauth_call(&edge, "/v1/tokens/revoke", authz, body, code, NULL), code, 403,
                 "unauthorized_client", __LINE__);
    snprintf(body, sizeof body, "token=%s&token_type_hint=refresh_token", tok);
    expect_oauth(oauth_call(&edge, "/v1/tokens/revoke", authz, body, code, NULL), code, 403,
                 "unauthorized_client", __LINE__);
    itest_expect_verify(&edge, tok, 200, NULL, __LINE__);
    /* its own client revokes it, whatever the hint says */
    basic(&alice_client, authz);
    snprintf(body, sizeof body, "token=%s&token_type_hint=refresh_token", tok);
    int st = oauth_call(&edge, "/v1/tokens/revoke", authz, body, code, NULL);
    assert_int_equal(st, 200);
    itest_expect_verify(&edge, tok, 401, "token_revoked", __LINE__);
}

/* --- crafted tokens with the edge's real key ------------------------------------------ */

static gov_err_t sign_cb(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64], char *eb,
                         size_t ebs) {
    return gov_signer_sign(ctx, msg, len, sig, eb, ebs);
}

/* A compact JWS of header and payload (exact bytes) signed by s. */
static void jws_by(gov_signer_t *s, const char *header, const char *payload, char *out,
                   size_t size) {
    gov_buf_t b;
    gov_buf_init(&b, 0);
    char eb[256];
    if (gov_jws_sign_compact(header, strlen(header), payload, strlen(payload), sign_cb, s, &b,
                             eb, sizeof eb) != GOV_OK)
        fail_msg("sign: %s", eb);
    snprintf(out, size, "%s", b.data);
    gov_buf_free(&b);
}

/* ... by the edge's key. */
static void jws(const char *header, const char *payload, char *out, size_t size) {
    jws_by(key, header, payload, out, size);
}

static void test_crafted_tokens(void **state) {
    (void)state;
    char hdr[512], payload[2048], tok[8192];
    int64_t now = gov_now_micros() / 1000000;
    snprintf(hdr, sizeof hdr, "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
             gov_signer_kid(key));
#define CLAIMS(exp, nbf, iat, more)                                                             \
    snprintf(payload, sizeof payload,                                                          \
             "{\"aud\":\"soma-governance\",\"client_id\":\"%s\",\"constitution_hash\":\"%s\","  \
             "\"exp\":%s,\"iat\":%s,\"iss\":\"" ISSUER "\",\"jti\":\"j-%d\",\"nbf\":%s,"         \
             "\"scope\":\"read\",\"sub\":\"%s\",\"tenant\":\"%s\"%s}",                          \
             alice_client.id, current_hash, exp, iat, __LINE__, nbf, alice_client.id, tenant,   \
             more)
    char e[32], n[32];
    snprintf(e, sizeof e, "%lld", (long long)(now + 300));
    snprintf(n, sizeof n, "%lld", (long long)(now - 10));
    /* the control: well-formed, verifies */
    CLAIMS(e, n, n, "");
    jws(hdr, payload, tok, sizeof tok);
    itest_expect_verify(&edge, tok, 200, NULL, __LINE__);
    /* times at and beyond the limits */
    static const struct {
        const char *exp, *nbf, *iat, *code;
    } times[] = {
        {"9223372036854775807", NULL, NULL, "token_invalid_claim"},
        {"9223372036854775808", NULL, NULL, "token_malformed"}, /* not an int64 */
        {"253402300800", NULL, NULL, "token_invalid_claim"},    /* year 10000 */
        {"-1", NULL, NULL, "token_invalid_claim"},
        {NULL, "-9223372036854775808", "-9223372036854775808", "token_invalid_claim"},
        {NULL, "253402300799", NULL, "token_invalid_claim"},   /* nbf after exp */
        {"1e10", NULL, NULL, "token_invalid_claim"},            /* not an integer */
        {"1700000000.0", NULL, NULL, "token_invalid_claim"},
    };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        CLAIMS(times[i].exp ? times[i].exp : e, times[i].nbf ? times[i].nbf : n,
               times[i].iat ? times[i].iat : n, "");
        jws(hdr, payload, tok, sizeof tok);
        char code[64];
        int st = verify(&edge, tok, code, NULL);
        if (st != 401 || strcmp(code, times[i].code) != 0)
            fail_msg("exp %s nbf %s iat %s: want 401 %s, got %d %s", times[i].exp,
                     times[i].nbf, times[i].iat, times[i].code, st, code);
    }
    /* duplicate claims, and a kid with path characters */
    CLAIMS(e, n, n, ",\"tenant\":\"demo\"");
    jws(hdr, payload, tok, sizeof tok);
    itest_expect_verify(&edge, tok, 401, "token_duplicate_claim", __LINE__);
    CLAIMS(e, n, n, "");
    static const char *const kids[] = {"../../../etc/passwd", "..%2F..%2Fkeys", "/dev/zero",
                                       "kid\\u0000", "a/b"};
    for (size_t i = 0; i < sizeof kids / sizeof kids[0]; i++) {
        snprintf(hdr, sizeof hdr, "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"typ\":\"JWT\"}", kids[i]);
        jws(hdr, payload, tok, sizeof tok);
        itest_expect_verify(&edge, tok, 401, "token_unknown_kid", __LINE__);
    }
#undef CLAIMS
}

/* --- a key file made readable while the edge runs ------------------------------------------ */

static int insecure_logged = -1; /* the edge's log named the key file's mode (pending P4) */

/* A wait for an endpoint of edge p to answer status want: an issue for
 * alice (issue_answers) or a verify of tok (verify_answers); the last
 * error code in code. */
typedef struct answer_wait {
    const itest_proc_t *p;
    const char *tok;
    int want;
    char code[64];
} answer_wait_t;

static int issue_answers(void *opaque) {
    answer_wait_t *w = opaque;
    return issue(w->p, &alice_client, NULL, NULL, 0, w->code) == w->want;
}

/* The operator's 3 a.m.: someone runs chmod g+r on the signing key.  The
 * edge already holds the key; at its next snapshot rebuild (here: another
 * key published) the key store refuses the file (key_insecure), issuance
 * answers 503 signing_key_unavailable while verification goes on, and once
 * the mode is 0600 again issuance comes back within a reconcile period. */
static void test_key_file_made_readable(void **state) {
    (void)state;
    itest_proc_t *p = &extra[2];
    char dir2[320], env_dir2[360], eb[256], file[400], tok[4096], code[64];
    gov_keystore_t *ks2 = NULL, *ks3 = NULL;
    gov_signer_t *k2 = NULL, *k3 = NULL;
    gov_reason_t why;
    snprintf(dir2, sizeof dir2, "%s/keys2", work);
    if (gov_keystore_open_dir(dir2, &ks2, &why, eb, sizeof eb) != GOV_OK ||
        gov_keystore_generate(ks2, &k2, &why, eb, sizeof eb) != GOV_OK)
        fail_msg("key store: %s", eb);
    publish_key(k2, "active", gov_now_micros() - 1000000);
    snprintf(env_dir2, sizeof env_dir2, "GOV_SIGNER_KEY_DIR=%s", dir2);
    start_edge(p, "edge-itest-attack-keyfile", 0, "100ms", env_dir2,
               "itest-attack-edge-keyfile.log");
    wait_serves(p, current_hash);
    answer_wait_t w = {p, NULL, 200, ""};
    if (itest_wait_for(issue_answers, &w, WAIT_MS, 50) < 0)
        fail_msg("the edge over %s never issued: %s", dir2, w.code);
    assert_int_equal(issue(p, &alice_client, NULL, tok, sizeof tok, code), 200);

    snprintf(file, sizeof file, "%s/%s.pem", dir2, gov_signer_kid(k2));
    assert_int_equal(chmod(file, 0640), 0);
    /* a rebuild: another key, pending for a day, appears */
    snprintf(dir2, sizeof dir2, "%s/keys3", work);
    if (gov_keystore_open_dir(dir2, &ks3, &why, eb, sizeof eb) != GOV_OK ||
        gov_keystore_generate(ks3, &k3, &why, eb, sizeof eb) != GOV_OK)
        fail_msg("key store: %s", eb);
    publish_key(k3, "pending", gov_now_micros() + 86400LL * 1000000);
    w.want = 503;
    if (itest_wait_for(issue_answers, &w, WAIT_MS, 50) < 0)
        fail_msg("the edge still issues with a group-readable key file");
    assert_string_equal(w.code, "signing_key_unavailable");
    itest_expect_verify(p, tok, 200, NULL, __LINE__);
    size_t ll = 0;
    char *log = itest_read_file(itest_log_path(p->log), &ll);
    insecure_logged = log != NULL && (memmem(log, ll, "key_insecure", 12) != NULL ||
                                      memmem(log, ll, "0640", 4) != NULL);
    free(log);
    /* the operator's view: no usable signing key, /readyz 200 but degraded on signing */
    double usable = itest_proc_metric(p, "identity_signing_keys_usable", NULL);
    char *body = NULL;
    long ready = itest_proc_get(p, "/readyz", &body);
    int degraded = body && strstr(body, "\"signing\"") && strstr(body, "key_insecure");
    free(body);
    if (usable != 0 || ready != 200 || !degraded)
        fail_msg("key file 0640: identity_signing_keys_usable %g, /readyz %ld %s", usable, ready,
                 degraded ? "names it" : "does not show signing degraded with key_insecure");

    assert_int_equal(chmod(file, 0600), 0);
    w.want = 200;
    if (itest_wait_for(issue_answers, &w, WAIT_MS, 50) < 0)
        fail_msg("issuance did not come back once the key file was 0600 again: %s", w.code);
    if (itest_proc_metric(p, "identity_signing_keys_usable", NULL) < 1)
        fail_msg("issuance is back but identity_signing_keys_usable is not");
    assert_int_equal(itest_proc_stop(p), 0);
    gov_signer_free(k2);
    gov_signer_free(k3);
    gov_keystore_free(ks2);
    gov_keystore_free(ks3);
}

/* --- review 10 findings (each failed before its fix) ------------------------------------- */

/* P1: the grace window is the same on every replica and starts when the
 * replacement is served.  edge_slow refreshes its identity snapshot every
 * 30 s; edge_late starts after the replacement.  Both have a 60 s grace, so
 * both should verify a token bound to the replaced hash right away. */
static void test_grace_on_every_replica(void **state) {
    (void)state;
    itest_proc_t *slow = &extra[0], *late = &extra[1];
    char tok[4096], code[64], failures[512] = "";
    start_edge(slow, "edge-itest-attack-slow", 60, "30s", env_keydir, "itest-attack-edge-slow.log");
    wait_serves(slow, current_hash);
    assert_int_equal(issue(&edge, &alice_client, NULL, tok, sizeof tok, code), 200);
    itest_expect_verify(slow, tok, 200, NULL, __LINE__);
    publish_next_constitution();
    wait_serves(slow, current_hash);
    int st = verify(slow, tok, code, NULL);
    if (st != 200)
        snprintf(failures + strlen(failures), sizeof failures - strlen(failures),
                 "replica with a 30 s identity refresh: %d %s right after the swap; ", st, code);
    start_edge(late, "edge-itest-attack-late", 60, "100ms", env_keydir,
               "itest-attack-edge-late.log");
    wait_serves(late, current_hash);
    st = verify(late, tok, code, NULL);
    if (st != 200)
        snprintf(failures + strlen(failures), sizeof failures - strlen(failures),
                 "replica started after the replacement: %d %s", st, code);
    if (failures[0])
        fail_msg("a token inside its 60 s grace window is refused: %s", failures);
}

/* P1b: the grace lasts the configured seconds from the replacement
 * gov-constitution recorded (constitution:{T} replaced_at), not up to one
 * second less (until_s was truncated), and at most a second more (rounded
 * up to the second) plus the 20 ms poll. */
static void test_grace_is_not_shortened(void **state) {
    (void)state;
    int ok_after = 0;
    grace_flip_ms(&ok_after);
    char hkey[GOV_STATE_KEY_MAX];
    assert_int_equal(gov_state_key(GOV_STATE_CONSTITUTION, tenant, hkey), GOV_OK);
    const char *argv[] = {"HGET", hkey, "replaced_at"};
    redisReply *r = itest_redis_cmd(priv, 3, argv, NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    long long replaced_at = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    long long after_ms = (flip_wall_us - replaced_at) / 1000;
    if (after_ms < GRACE_S * 1000 || after_ms > (GRACE_S + 1) * 1000 + 250)
        fail_msg("a %d s grace ended %lld ms after the recorded replacement", GRACE_S, after_ms);
}

typedef struct removed_wait {
    const char *tok;
    char code[64];
} removed_wait_t;

/* 1 once the private edge refuses rw->tok (its code in rw->code). */
static int token_refused(void *opaque) {
    removed_wait_t *rw = opaque;
    return verify(&edge, rw->tok, rw->code, NULL) == 401;
}

/* P2: a removed client's tokens stop verifying (the compromised-client
 * runbook: `govctl clients remove`). */
static void test_removed_client_tokens_refused(void **state) {
    (void)state;
    client_t gone;
    char tok[4096], code[64], out[1024];
    add_client(tenant, "read", &gone);
    assert_int_equal(issue(&edge, &gone, NULL, tok, sizeof tok, code), 200);
    itest_expect_verify(&edge, tok, 200, NULL, __LINE__);
    govctl((const char *const[]){"clients", "remove", gone.id, NULL}, out, sizeof out, __LINE__);
    client_wait_t w = {gone.id, 0};
    if (itest_wait_for(client_is, &w, WAIT_MS, 20) < 0)
        fail_msg("client %s was not removed by %s", gone.id, COMP_IDENTITY);
    /* the edge's client cache (client_cache_ttl, 1 s) may serve the client
     * that long: verify is polled, bounded, until the removal is seen */
    removed_wait_t rw = {tok, ""};
    if (itest_wait_for(token_refused, &rw, WAIT_MS, 20) < 0)
        fail_msg("a token of removed client %s still verifies", gone.id);
    assert_string_equal(rw.code, "token_client_removed");
    char authz[512];
    basic(&gone, authz);
    expect_oauth(oauth_call(&edge, "/v1/tokens/issue", authz, "grant_type=client_credentials",
                            code, NULL),
                 code, 401, "invalid_client", __LINE__);
}

/* P3: a client of another tenant does not learn a token's claims through
 * introspection (RFC 7662 section 4: the server decides who may ask). */
static void test_introspect_other_tenant(void **state) {
    (void)state;
    char tok[4096], code[64], body[8192], authz[512];
    assert_int_equal(issue(&edge, &alice_client, NULL, tok, sizeof tok, code), 200);
    snprintf(body, sizeof body, "token=%s", tok);
    basic(&other_client, authz);
    json_t *j = NULL;
    int st = oauth_call(&edge, "/v1/tokens/introspect", authz, body, code, &j);
    int active = json_is_true(json_object_get(j, "active"));
    const char *t = json_string_value(json_object_get(j, "tenant"));
    char seen[80];
    snprintf(seen, sizeof seen, "%s", t ? t : "");
    json_decref(j);
    if (st == 200 && active)
        fail_msg("a client of %s introspected a token of %s and read its claims (tenant %s)",
                 other_tenant, tenant, seen);
}

/* P4: the edge says why it stopped issuing - the key store's refusal
 * (key_insecure, the file's mode) is in its log, not only a 503 to clients
 * (identity.c open_signers drops the error). */
static void test_unusable_key_is_logged(void **state) {
    (void)state;
    if (insecure_logged < 0)
        fail_msg("test_key_file_made_readable did not run");
    if (!insecure_logged)
        fail_msg("issuance stopped (signing_key_unavailable) and %s names no cause",
                 "itest-attack-edge-keyfile.log");
}

/* 1 once the gov-edge in opaque reads its kid index whole again. */
static int index_in_bound(void *opaque) {
    return itest_proc_metric(opaque, "identity_key_index_over_bound", NULL) == 0;
}

/* P5: a deployment that has rotated more than 1024 times.  identity:kids
 * keeps every kid ever published (retired ones are never removed) and the
 * edge reads it with SRANDMEMBER 1024 (gov_state_identity_key_list): past
 * that size each refresh sees a random subset, and the signing key drops
 * in and out.  20000 old kids stand in for the rotations; a valid token
 * must verify every time. */
static void test_many_rotations_keep_the_key(void **state) {
    (void)state;
    char tok[4096], code[64];
    assert_int_equal(issue(&edge, &alice_client, NULL, tok, sizeof tok, code), 200);
    enum { OLD = 20000 };
    const char **argv = calloc(OLD + 2, sizeof *argv);
    char(*kids)[64] = calloc(OLD, sizeof *kids);
    assert_true(argv != NULL && kids != NULL);
    argv[0] = "SADD";
    argv[1] = gov_state_identity_kids_key();
    for (int i = 0; i < OLD; i++) {
        snprintf(kids[i], sizeof kids[i], "old-rotation-%030d", i);
        argv[2 + i] = kids[i];
    }
    freeReplyObject(itest_redis_cmd(priv, OLD + 2, argv, NULL));
    int refused = 0;
    char last[64] = "";
    for (int i = 0; i < 20; i++) {
        if (verify(&edge, tok, code, NULL) != 200) {
            refused++;
            snprintf(last, sizeof last, "%s", code);
        }
        itest_sleep_ms(150); /* more than one identity refresh (100 ms) */
    }
    /* loud, not silent: the gauge and /readyz (degraded, still 200) */
    double over = itest_proc_metric(&edge, "identity_key_index_over_bound", NULL);
    char *body = NULL;
    long ready = itest_proc_get(&edge, "/readyz", &body);
    int degraded = body && strstr(body, "\"identity\"") && strstr(body, "degraded");
    free(body);
    argv[0] = "SREM";
    freeReplyObject(itest_redis_cmd(priv, OLD + 2, argv, NULL));
    free(argv);
    free(kids);
    if (refused)
        fail_msg("with %d old kids in %s a valid token was refused %d times of 20 (%s)", OLD,
                 gov_state_identity_kids_key(), refused, last);
    if (over != 1 || ready != 200 || !degraded)
        fail_msg("kid index over its bound: identity_key_index_over_bound %g, /readyz %ld %s",
                 over, ready, degraded ? "degraded" : "not degraded on identity");
    /* and back once the index is small again */
    if (itest_wait_for(index_in_bound, &edge, WAIT_MS, 50) < 0)
        fail_msg("identity_key_index_over_bound stayed set after the index shrank");
}

/* 1 once the token record key of the jti in opaque is gone from Redis. */
static int token_record_gone(void *opaque) {
    char rec[GOV_STATE_KEY_MAX];
    if (gov_state_identity_token_key(tenant, opaque, rec) != GOV_OK)
        return 0;
    const char *argv[] = {"EXISTS", rec};
    redisReply *r = itest_redis_cmd(priv, 2, argv, NULL);
    int gone = r->type == REDIS_REPLY_INTEGER && r->integer == 0;
    freeReplyObject(r);
    return gone;
}

/* P6: a revocation lasts until the token expires.  The token scripts set
 * the record's expiry from each event's expires_at (PEXPIREAT), so a later
 * TokenRevoked for the same jti with an earlier expires_at - a replay, a
 * skewed clock, any producer - shortens the revocation; once the record is
 * gone "no record" is accepted and the revoked token verifies again. */
static void test_revocation_not_shortened(void **state) {
    (void)state;
    char tok[4096], code[64], body[8192], authz[512];
    assert_int_equal(issue(&edge, &alice_client, NULL, tok, sizeof tok, code), 200);
    json_t *ans = NULL;
    assert_int_equal(itest_token_verify(edge.port, tok, code, &ans), 200);
    char jti[GOV_JWT_JTI_MAX + 1];
    snprintf(jti, sizeof jti, "%s",
             json_string_value(json_object_get(json_object_get(ans, "claims"), "jti")));
    json_decref(ans);
    basic(&alice_client, authz);
    snprintf(body, sizeof body, "token=%s", tok);
    assert_int_equal(oauth_call(&edge, "/v1/tokens/revoke", authz, body, code, NULL), 200);
    itest_expect_verify(&edge, tok, 401, "token_revoked", __LINE__);

    int64_t now = gov_now_micros();
    json_t *ev = gov_events_token_revoked_new(NULL, now, tenant, jti, now + 1000000,
                                              "revoked again", alice_client.id);
    assert_non_null(ev);
    int32_t part = -1;
    int64_t off = -1;
    itest_produce_event_at(GOV_TOPIC_IDENTITY_TOKENS, "TokenRevoked", ev, &part, &off);
    json_decref(ev);
    if (itest_wait_for(token_record_gone, jti, 5000, 50) >= 0) {
        int st = verify(&edge, tok, code, NULL);
        if (st != 401)
            fail_msg("a second TokenRevoked with an earlier expires_at removed the revocation of "
                     "%s: verify answers %d %s",
                     jti, st, code);
    }
}


/* --- M5 (review 11): a retired kid is retired forever -------------------------------------- */

/* A token for alice signed by s under its kid (the edge's issuer and
 * audience, 300 s). */
static void token_signed_by(gov_signer_t *s, char *out, size_t size) {
    char hdr[256], payload[1024];
    long long now = (long long)(gov_now_micros() / 1000000);
    snprintf(hdr, sizeof hdr, "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
             gov_signer_kid(s));
    snprintf(payload, sizeof payload,
             "{\"aud\":\"soma-governance\",\"client_id\":\"%s\",\"constitution_hash\":\"%s\","
             "\"exp\":%lld,\"iat\":%lld,\"iss\":\"" ISSUER "\",\"jti\":\"m5-%lld\",\"nbf\":%lld,"
             "\"scope\":\"read\",\"sub\":\"%s\",\"tenant\":\"%s\"}",
             alice_client.id, current_hash, now + 300, now - 1, now, now - 1, alice_client.id,
             tenant);
    jws_by(s, hdr, payload, out, size);
}

static int verify_answers(void *opaque) {
    answer_wait_t *w = opaque;
    return verify(w->p, w->tok, w->code, NULL) == w->want;
}

/* 1 when the private Redis has key `name`. */
static int priv_exists(const char *name) {
    redisReply *r = itest_redis_cmd(priv, 2, (const char *[]){"EXISTS", name}, NULL);
    int found = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return found;
}

/* 1 when the private JWKS names kid. */
static int in_priv_jwks(const char *kid) {
    redisReply *r = itest_redis_cmd(priv, 2, (const char *[]){"GET", gov_state_identity_jwks_key()},
                                    NULL);
    int found = r->type == REDIS_REPLY_STRING && strstr(r->str, kid) != NULL;
    freeReplyObject(r);
    return found;
}

/* The wait for a retired kid's hash to expire.  The sweep that starts the
 * keep period runs on a key write once the kid's time in the index is
 * over, so while the kid is still indexed each poll (at most every 300 ms)
 * writes one: a throwaway kid published retired, which never signs or
 * enters a JWKS. */
typedef struct hash_wait {
    const char *kid;
    gov_keystore_t *ks;
    int64_t last_write_us;
    int writes;
} hash_wait_t;

static int hash_gone(void *opaque) {
    hash_wait_t *w = opaque;
    char hkey[GOV_STATE_KEY_MAX], eb[256];
    assert_int_equal(gov_state_identity_key_key(w->kid, hkey), GOV_OK);
    if (!priv_exists(hkey))
        return 1;
    redisReply *r = itest_redis_cmd(
        priv, 3, (const char *[]){"SISMEMBER", gov_state_identity_kids_key(), w->kid}, NULL);
    int indexed = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (indexed && gov_mono_micros() - w->last_write_us > 300000 && w->writes < 40) {
        gov_signer_t *t = NULL;
        gov_reason_t why;
        published_key_t k;
        if (gov_keystore_generate(w->ks, &t, &why, eb, sizeof eb) != GOV_OK)
            fail_msg("key store: %s", eb);
        int64_t now = gov_now_micros();
        key_of(t, now, &k);
        produce_key_event(&k, "retired", now, 0);
        gov_signer_free(t);
        w->last_write_us = gov_mono_micros();
        w->writes++;
    }
    return 0;
}

/* A DLQ message of identity.keys keyed kid, dead-lettered by the private
 * gov-identity (the stack's own and other tests' consume the same topic). */
typedef struct dlq_kid {
    const char *kid;
    char reason[64];
} dlq_kid_t;

static int match_dlq_kid(void *opaque, const gov_kafka_msg_t *m) {
    dlq_kid_t *f = opaque;
    char comp[96] = "";
    if (m->key_len != strlen(f->kid) || memcmp(m->key, f->kid, m->key_len) != 0)
        return 0;
    itest_msg_header(m, "x-gov-component", comp, sizeof comp);
    if (strcmp(comp, COMP_IDENTITY) != 0)
        return 0;
    itest_msg_header(m, "x-gov-dlq-reason", f->reason, sizeof f->reason);
    return 1;
}

static void expect_key_dlq(const char *kid, const char *reason) {
    dlq_kid_t f = {kid, ""};
    if (!itest_consume_until(GOV_TOPIC_IDENTITY_KEYS ".dlq", match_dlq_kid, &f, WAIT_MS))
        fail_msg("the KeyRotated of %s was not dead-lettered by %s", kid, COMP_IDENTITY);
    assert_string_equal(f.reason, reason);
}

/* A new key of a key store of its own under work/<name> (*ks_out and the
 * signer: the caller frees both). */
static gov_signer_t *fresh_key(const char *name, gov_keystore_t **ks_out) {
    char dir[320], eb[256];
    gov_signer_t *k = NULL;
    gov_reason_t why;
    snprintf(dir, sizeof dir, "%s/%s", work, name);
    if (gov_keystore_open_dir(dir, ks_out, &why, eb, sizeof eb) != GOV_OK ||
        gov_keystore_generate(*ks_out, &k, &why, eb, sizeof eb) != GOV_OK)
        fail_msg("key store: %s", eb);
    return k;
}

/* A fresh key of key store `name` (*ks_out, *k: the caller frees both),
 * activated a second ago, published active and handled; returns the
 * operator-signed active event as produced (a new reference: what an
 * attacker who captured it would replay). */
static json_t *publish_active_key(const char *name, gov_keystore_t **ks_out, gov_signer_t **k,
                                  published_key_t *pk) {
    *k = fresh_key(name, ks_out);
    key_of(*k, gov_now_micros() - 1000000, pk);
    json_t *captured = key_event(pk, "active", -1);
    produce_key_json(pk->kid, captured, 1);
    return captured;
}

/* M5: key K is published and active (a token it signs verifies), then
 * retired (a compromised key); once its hash has expired (the keep period,
 * 2 s here, observed: the hash is gone) the operator-signed active event
 * captured while K lived is produced again.  It must be dead-lettered
 * (key_retired), K must stay out of the index and the JWKS, and the token
 * must stay refused.  Before the tombstone, "no hash" meant a new key: K
 * was active again and its token verified. */
static void test_retired_key_stays_retired(void **state) {
    (void)state;
    char tok[4096], tomb[GOV_STATE_KEY_MAX], hkey[GOV_STATE_KEY_MAX];
    gov_keystore_t *ks_m5 = NULL;
    gov_signer_t *k = NULL;
    published_key_t pk;
    json_t *captured = publish_active_key("keys-m5", &ks_m5, &k, &pk);
    token_signed_by(k, tok, sizeof tok);
    answer_wait_t vw = {&edge, tok, 200, ""};
    if (itest_wait_for(verify_answers, &vw, WAIT_MS, 20) < 0)
        fail_msg("a token signed by active key %s never verified: %s", pk.kid, vw.code);

    produce_key_event(&pk, "retired", pk.activates, 1);
    assert_int_equal(gov_state_identity_key_tombstone_key(pk.kid, tomb), GOV_OK);
    assert_true(priv_exists(tomb));
    hash_wait_t hw = {pk.kid, ks_m5, 0, 0};
    if (itest_wait_for(hash_gone, &hw, WAIT_MS, 50) < 0)
        fail_msg("the hash of retired kid %s did not expire (%d writes)", pk.kid, hw.writes);
    vw.want = 401;
    if (itest_wait_for(verify_answers, &vw, WAIT_MS, 20) < 0)
        fail_msg("a token signed by retired key %s still verifies", pk.kid);

    /* the replay */
    produce_key_json(pk.kid, captured, 1);
    json_decref(captured);
    expect_key_dlq(pk.kid, "key_retired");
    assert_int_equal(gov_state_identity_key_key(pk.kid, hkey), GOV_OK);
    assert_false(priv_exists(hkey));
    assert_false(in_priv_jwks(pk.kid));
    assert_true(priv_exists(tomb));
    /* the edge reads the same state every 100 ms: refused across refreshes */
    for (int i = 0; i < 5; i++) {
        char code[64];
        int st = verify(&edge, tok, code, NULL);
        if (st != 401)
            fail_msg("replayed retired key %s: its token answers %d %s", pk.kid, st, code);
        itest_sleep_ms(60);
    }
    gov_signer_free(k);
    gov_keystore_free(ks_m5);
}

/* M5, second line: a kid this Redis never saw (its tombstone lost with a
 * restored backup, say) published active with an activates_at older than
 * the longest token lifetime (3 s here) is a replay, not a new key
 * (key_stale); a fresh one is accepted. */
static void test_stale_unknown_key_refused(void **state) {
    (void)state;
    char hkey[GOV_STATE_KEY_MAX];
    gov_keystore_t *ks_m5 = NULL;
    gov_signer_t *k = fresh_key("keys-m5b", &ks_m5);
    published_key_t pk;
    key_of(k, gov_now_micros() - 60LL * 1000000, &pk);
    produce_key_event(&pk, "active", -1, 1);
    expect_key_dlq(pk.kid, "key_stale");
    assert_int_equal(gov_state_identity_key_key(pk.kid, hkey), GOV_OK);
    assert_false(priv_exists(hkey));
    assert_false(in_priv_jwks(pk.kid));
    /* every other gov-identity on the topic (the stack's: a longer token
     * lifetime) may have taken it: retired, it leaves their JWKS */
    produce_key_event(&pk, "retired", pk.activates, 0);
    gov_signer_free(k);
    gov_keystore_free(ks_m5);
}

/* Produces ev (a KeyRotated of kid) as a producer of identity.keys can:
 * with the CreateTime ts_ms it chooses (0: now) and, when epoch is not
 * NULL, the lease epoch header; waits until the private gov-identity
 * handled it. */
static void produce_key_forged(const char *kid, json_t *ev, int64_t ts_ms, const char *epoch) {
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[256];
    int32_t part = -1;
    int64_t off = -1;
    assert_int_equal(gov_avro_encode(itest_avro(), "KeyRotated", ev, &buf, &len, eb, sizeof eb),
                     GOV_OK);
    gov_kafka_header_t h = {GOV_KEYROTATE_EPOCH_HEADER, epoch, epoch ? strlen(epoch) : 0};
    itest_produce_raw_at(GOV_TOPIC_IDENTITY_KEYS, kid, buf, len, ts_ms, &h, epoch ? 1 : 0, &part,
                         &off);
    gov_free(buf);
    if (!itest_wait_offset(priv, ident.group, GOV_TOPIC_IDENTITY_KEYS, part, off, WAIT_MS))
        fail_msg("KeyRotated %s was not handled by %s", kid, COMP_IDENTITY);
}

/* 1 when the private edge's /.well-known/jwks.json names kid. */
static int in_edge_jwks(const char *kid) {
    char *body = NULL;
    long st = itest_proc_get(&edge, "/.well-known/jwks.json", &body);
    if (st != 200)
        fail_msg("/.well-known/jwks.json answered %ld", st);
    int found = body != NULL && strstr(body, kid) != NULL;
    free(body);
    return found;
}

static int past_us(void *opaque) {
    return gov_now_micros() > *(const int64_t *)opaque;
}

/* REVIEW12 M3: the freshness of an unknown kid is judged by the broker's
 * append time, not by a time the producer chose.  Key K is published
 * active and retired; its tombstone and hash are deleted (a lost
 * tombstone); once K activated longer ago than the token lifetime (3 s),
 * the captured signed active event is produced again with CreateTime 1 ms
 * (the oldest librdkafka sends; 0 means "now" to it) and with K's own
 * activation time.  Each is key_stale and K stays out of the JWKS: the
 * topic's LogAppendTime gives the broker's time, and gov-identity refuses
 * a record whose time the producer chose.  Before, the CreateTime was the
 * event's time and K was active again. */
static void test_replay_with_chosen_time_refused(void **state) {
    (void)state;
    char tomb[GOV_STATE_KEY_MAX], hkey[GOV_STATE_KEY_MAX];
    gov_keystore_t *ks_m3 = NULL;
    gov_signer_t *k = NULL;
    published_key_t pk;
    json_t *captured = publish_active_key("keys-m3", &ks_m3, &k, &pk);
    assert_true(in_priv_jwks(pk.kid));
    produce_key_event(&pk, "retired", pk.activates, 1);
    assert_false(in_priv_jwks(pk.kid));
    assert_int_equal(gov_state_identity_key_tombstone_key(pk.kid, tomb), GOV_OK);
    assert_int_equal(gov_state_identity_key_key(pk.kid, hkey), GOV_OK);
    freeReplyObject(itest_redis_cmd(priv, 3, (const char *[]){"DEL", tomb, hkey}, NULL));
    assert_false(priv_exists(tomb));
    int64_t stale_after = pk.activates + (atoi(LIFETIME_S) + 1) * 1000000LL;
    if (itest_wait_for(past_us, &stale_after, WAIT_MS, 50) < 0)
        fail_msg("the clock did not pass %lld", (long long)stale_after);

    const int64_t chosen_ms[] = {1, pk.activates / 1000};
    char epoch[24];
    gov_kafka_header_t h;
    int under_lease = itest_lease_epoch_header(priv, epoch, &h) == 1;
    for (size_t i = 0; i < 2; i++) {
        produce_key_forged(pk.kid, captured, chosen_ms[i], under_lease ? epoch : NULL);
        if (priv_exists(hkey) || in_priv_jwks(pk.kid))
            fail_msg("the captured active event of %s with CreateTime %lld ms was materialized",
                     pk.kid, (long long)chosen_ms[i]);
    }
    json_decref(captured);
    expect_key_dlq(pk.kid, "key_stale");
    /* the edge serves what the private Redis holds: not K */
    assert_false(in_edge_jwks(pk.kid));
    gov_signer_free(k);
    gov_keystore_free(ks_m3);
}

/* REVIEW12 L3: once the rotator lease has an epoch, a live KeyRotated
 * without x-gov-lease-epoch (an older producer, or one that strips the
 * header) is fenced (key_lease_stale); with the lease's epoch the same
 * event is accepted, so the refusal was the missing header's.  Runs last:
 * it leaves the private Redis with a lease, which it removes again. */
static void test_headerless_key_fenced_under_lease(void **state) {
    (void)state;
    char eb[256], hkey[GOV_STATE_KEY_MAX], epoch_s[24];
    int64_t epoch = 0;
    if (gov_state_identity_rotator_take(priv, "govctl/itest-attack", 60000, &epoch, eb,
                                        sizeof eb) != GOV_OK)
        fail_msg("rotator lease: %s", eb);
    assert_true(epoch >= 1);
    gov_keystore_t *ks_l3 = NULL;
    gov_signer_t *k = fresh_key("keys-l3", &ks_l3);
    published_key_t pk;
    key_of(k, gov_now_micros() - 1000000, &pk);
    json_t *ev = key_event(&pk, "active", -1);
    produce_key_forged(pk.kid, ev, 0, NULL);
    expect_key_dlq(pk.kid, "key_lease_stale");
    assert_int_equal(gov_state_identity_key_key(pk.kid, hkey), GOV_OK);
    assert_false(priv_exists(hkey));
    assert_false(in_priv_jwks(pk.kid));
    snprintf(epoch_s, sizeof epoch_s, "%lld", (long long)epoch);
    produce_key_forged(pk.kid, ev, 0, epoch_s);
    assert_true(in_priv_jwks(pk.kid));
    json_decref(ev);
    ev = key_event(&pk, "retired", pk.activates);
    produce_key_forged(pk.kid, ev, 0, epoch_s);
    json_decref(ev);
    assert_false(in_priv_jwks(pk.kid));
    freeReplyObject(itest_redis_cmd(priv, 3, (const char *[]){"DEL",
                                    gov_state_identity_rotator_key(),
                                    gov_state_identity_rotator_epoch_key()}, NULL));
    gov_signer_free(k);
    gov_keystore_free(ks_l3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grace_window),
        cmocka_unit_test(test_request_games),
        cmocka_unit_test(test_clients_against_each_other),
        cmocka_unit_test(test_crafted_tokens),
        cmocka_unit_test(test_key_file_made_readable),
        cmocka_unit_test(test_many_rotations_keep_the_key),
        cmocka_unit_test(test_revocation_not_shortened),
        cmocka_unit_test(test_unusable_key_is_logged),
        cmocka_unit_test(test_grace_is_not_shortened),
        cmocka_unit_test(test_grace_on_every_replica),
        cmocka_unit_test(test_removed_client_tokens_refused),
        cmocka_unit_test(test_introspect_other_tenant),
        cmocka_unit_test(test_retired_key_stays_retired),
        cmocka_unit_test(test_stale_unknown_key_refused),
        cmocka_unit_test(test_replay_with_chosen_time_refused),
        cmocka_unit_test(test_headerless_key_fenced_under_lease),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
