/* tokens_api.c - the token endpoints of gov-edge (docs/api.md "Tokens").
 *
 *   POST /v1/tokens/issue       client credentials (RFC 6749 section 4.4)
 *   POST /v1/tokens/verify      the house check: claims or the reason code
 *   POST /v1/tokens/introspect  RFC 7662
 *   POST /v1/tokens/revoke      RFC 7009
 *   GET  /.well-known/jwks.json, GET /.well-known/openid-configuration
 *
 * How: verify, introspect and revoke are lookups (server.c runs them on
 * the lookup threads): they read the client and the token status from
 * Redis through this thread's connection (gov_state_identity).  Issue runs
 * on the HTTP thread when the client's record is in the client cache
 * (client_cache_ttl) or its id is cached as absent (or cannot be an id),
 * else on a lookup thread of the general lane that reads it (server.c,
 * LOOKUP_ON_DEMAND).
 * Issuance is fail-closed and asynchronous (edge_token_mint, shared with
 * /v1/sessions/start): the token is signed, its TokenIssued
 * (identity.tokens, claims only) and an AuditEvent (identity.audit) are
 * queued together as one gov_kafka group, and the answer is deferred
 * (edge_defer): the thread is free at once, and the group's completion -
 * on the producer's delivery-report thread, when BOTH are acknowledged
 * (acks=all) - answers 200 with the token.  When either is refused, purged
 * or times out (kafka_ack_timeout) the answer is 503 and the token, which
 * exists only in the mint's buffer, is wiped: it is never answered, logged
 * or sent anywhere.  A Kafka stall (brokers that accept and never
 * acknowledge) would make every issuance hold a connection for the whole
 * kafka_ack_timeout: a circuit breaker (REVIEW11 H1) opens when the last
 * BREAKER_TRIP groups all failed by timeout within kafka_ack_timeout, and
 * while it is open issuance and sessions answer 503 kafka_unavailable at
 * once, without signing or deferring, except one probe a second that is
 * deferred as usual; the first acknowledged group closes it.  While open
 * the status component "kafka_acks" is DEGRADED (never NOT_READY: the
 * edge's other routes need no acknowledgement) and one WARN is logged.  Why the cache: measured under load, a blocking Redis
 * read per token on two lookup threads, not the signature, bounded
 * issuance (each read waits for the scheduler on a busy machine); with the
 * record cached the HTTP thread signs (one Ed25519 signature) and queues
 * the events, and waits for nothing (docs/benchmarks.md, "Token results").
 * Its price: a client removed in Redis is still accepted by this edge for
 * up to client_cache_ttl.  A removed (or unknown) client's tokens stop
 * verifying within the same ttl (token_client_live: the cache, else one
 * client read); introspection shows claims only to the token's own client
 * or a client of its tenant (may_introspect).
 * Client secrets are compared as "sha256:<hex>" with CRYPTO_memcmp (constant
 * time), and an unknown client costs the same hash and comparison.
 * Revocation is read-your-writes: after its TokenRevoked is acknowledged,
 * the edge writes the same revocation through gov_state_identity_token_revoke
 * (idempotent: gov-identity applying the event again gives the same hash)
 * before answering 200, so every replica, which reads the status from the
 * same Redis, refuses the token from then on.  Writing through was chosen
 * over waiting for gov-identity: the answer then does not depend on
 * gov-identity's lag or liveness, and the write carries its own applied
 * offset under the edge's own group name ("gov-edge"), so it never moves
 * gov-identity's bookkeeping.
 * Errors: issue, introspect and revoke are OAuth endpoints and answer the
 * RFC 6749 section 5.2 shape {"error","error_description"}, "error" one of
 * the stable reason codes (invalid_client, invalid_request, invalid_scope,
 * unsupported_grant_type, ...); verify and the well-known documents answer
 * the house shape {"error":{"code","message"}}.
 *
 * What it does not do: log a token or a secret, create keys (identity.c
 * only picks among the published ones), or trust anything in a token before
 * gov_jwt_verify accepted it.
 */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge.h"
#include "edge_identity.h"
#include "gov_alloc.h"
#include "gov_buf.h"
#include "gov_events.h"
#include "gov_hash.h"
#include "gov_jwt.h"
#include "gov_log.h"
#include "gov_state_identity.h"
#include "gov_time.h"
#include "gov_util.h"
#include "oauth_params.h"

#define SECRET_HASH_LEN (7 + GOV_SHA256_HEXLEN)
/* The audit component and the group of the revocation write-through. */
#define TOKENS_COMPONENT "gov-edge"

/* --- request helpers -------------------------------------------------------- */

/* Reads the parameters; on failure fills resp (oauth: the OAuth shape) and
 * returns -1. */
static int read_params(const edge_request_t *req, int oauth, int json_ok, oauth_params_t *p,
                       edge_response_t *resp) {
    int form = edge_content_type_is(req->content_type, "application/x-www-form-urlencoded");
    if (!form && !(json_ok && edge_content_type_is(req->content_type, "application/json"))) {
        if (oauth)
            edge_respond_oauth_error(resp, 415, GOV_REASON_UNSUPPORTED_MEDIA_TYPE,
                                     "the body must be application/x-www-form-urlencoded%s",
                                     json_ok ? " or application/json" : "");
        else
            edge_respond_error(resp, 415, GOV_REASON_UNSUPPORTED_MEDIA_TYPE,
                               "the body must be application/json or "
                               "application/x-www-form-urlencoded");
        return -1;
    }
    char eb[160];
    gov_reason_t why = GOV_REASON_NONE;
    gov_err_t err = oauth_params_parse(req->body, req->body_len, form, req->authorization, p, &why,
                                       eb, sizeof eb);
    if (err == GOV_OK)
        return 0;
    unsigned status = err == GOV_ERR_NOMEM ? 503 : 400;
    if (oauth)
        edge_respond_oauth_error(resp, status, why, "%s", eb);
    else
        edge_respond_error(resp, status, why, "%s", eb);
    return -1;
}

/* "sha256:<hex>" of secret. */
static void secret_hash(const char *secret, char out[SECRET_HASH_LEN + 1]) {
    unsigned char d[GOV_SHA256_LEN];
    memset(d, 0, sizeof d);
    gov_sha256(secret, strlen(secret), d);
    memcpy(out, "sha256:", 7);
    gov_hex_encode(d, sizeof d, out + 7);
    OPENSSL_cleanse(d, sizeof d);
}

/* --- the client cache --------------------------------------------------------- */

/* Client records read from Redis, kept client_cache_ttl so that issuance
 * for a known client needs no Redis round trip and so no lookup thread
 * (under load that round trip, not the signature, bounded issuance: each
 * blocking read waits for the scheduler on a busy machine).  Direct-mapped
 * by a hash of the client id, one mutex held only to copy; a slot holds a
 * record that was found in Redis.  The cost: a client removed (or whose
 * secret changed) in Redis keeps being accepted by this edge for up to
 * client_cache_ttl; 0 disables the cache.
 * Unknown ids are cached too, apart (REVIEW11 H2, L4): an id whose read
 * answered "no such client" (or a record that did not verify, which is
 * refused the same way) is answered 401 from the absent cache for
 * client_cache_ttl with no lookup, so repeating an unknown id takes no
 * lookup thread and costs what a known one costs (no timing tells them
 * apart).  Only a read that succeeded fills it - a Redis error caches
 * nothing - and it has its own slots, so a flood of random ids evicts
 * other absent ids, never a known client's record.  The cost: a client
 * registered right after an edge saw its id as unknown is refused by that
 * edge for up to CLIENT_ABSENT_TTL_MAX_MS (or client_cache_ttl, if shorter).
 * REVIEW12 L2: an absence never overrides a fresher presence.  Each slot has
 * a generation, moved by every record found and cached there; a read that
 * found no client stores its absence only when the generation is still the
 * one it saw before it read (a concurrent read that found the client wins),
 * and a fresh record is looked at before an absence.  Absences live at most
 * CLIENT_ABSENT_TTL_MAX_MS whatever client_cache_ttl says, so a client
 * registered after its id was asked about (or an identity store that was
 * empty for a moment, a Redis restarted before gov-identity rebuilt it) is
 * accepted within that bound, not after up to a minute. */
#define CLIENT_CACHE_SLOTS 1024
#define CLIENT_ABSENT_TTL_MAX_MS 1000

typedef struct cached_client {
    char id[GOV_JWT_CLIENT_ID_MAX + 1];
    gov_state_identity_client_rec_t rec;   /* owned copies */
    int64_t until_us;
} cached_client_t;

typedef struct absent_client {
    char id[GOV_JWT_CLIENT_ID_MAX + 1];
    int64_t until_us;
} absent_client_t;

static cached_client_t client_cache[CLIENT_CACHE_SLOTS];
static absent_client_t absent_cache[CLIENT_CACHE_SLOTS];
static uint64_t found_generation[CLIENT_CACHE_SLOTS];   /* moved by cache_put */
static pthread_mutex_t client_cache_mu = PTHREAD_MUTEX_INITIALIZER;

static size_t cache_index(const char *id) {
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (const unsigned char *q = (const unsigned char *)id; *q; q++)
        h = (h ^ *q) * 16777619u;
    return h % CLIENT_CACHE_SLOTS;
}

static cached_client_t *cache_slot(const char *id) { return &client_cache[cache_index(id)]; }

/* 1 when id is cached as absent and fresh. */
static int cache_absent(const char *id) {
    absent_client_t *a = &absent_cache[cache_index(id)];
    pthread_mutex_lock(&client_cache_mu);
    int hit = strcmp(a->id, id) == 0 && gov_mono_micros() < a->until_us;
    pthread_mutex_unlock(&client_cache_mu);
    return hit;
}

/* The generation of id's slot: read before a client read, handed to
 * cache_absent_put after it. */
static uint64_t cache_generation(const char *id) {
    pthread_mutex_lock(&client_cache_mu);
    uint64_t g = found_generation[cache_index(id)];
    pthread_mutex_unlock(&client_cache_mu);
    return g;
}

/* Records that a successful read, begun at generation gen of the slot,
 * found no (verified) client id - unless a record was found and cached in
 * the slot since (REVIEW12 L2: that answer is fresher). */
static void cache_absent_put(edge_t *e, const char *id, uint64_t gen) {
    if (e->cfg.client_cache_ttl_ms <= 0)
        return;
    size_t i = cache_index(id);
    long ttl_ms = e->cfg.client_cache_ttl_ms < CLIENT_ABSENT_TTL_MAX_MS
                      ? e->cfg.client_cache_ttl_ms : CLIENT_ABSENT_TTL_MAX_MS;
    absent_client_t *a = &absent_cache[i];
    pthread_mutex_lock(&client_cache_mu);
    if (found_generation[i] == gen) {
        snprintf(a->id, sizeof a->id, "%s", id);
        a->until_us = gov_mono_micros() + ttl_ms * 1000;
    }
    pthread_mutex_unlock(&client_cache_mu);
}

/* Copies rec's strings into out; 0, or -1 when out of memory (out cleared). */
static int client_rec_copy(const gov_state_identity_client_rec_t *rec,
                           gov_state_identity_client_rec_t *out) {
    memset(out, 0, sizeof *out);
    out->found = rec->found;
    out->registered_at = rec->registered_at;
    const char *const from[] = {rec->secret_hash, rec->tenants, rec->scopes, rec->registered_by};
    char **const to[] = {&out->secret_hash, &out->tenants, &out->scopes, &out->registered_by};
    for (size_t i = 0; i < 4; i++)
        if (from[i] && (*to[i] = gov_strdup(from[i])) == NULL) {
            gov_state_identity_client_clear(out);
            return -1;
        }
    return 0;
}

/* 1 when id's record is cached and fresh (copied into out). */
static int cache_get(const char *id, gov_state_identity_client_rec_t *out) {
    cached_client_t *c = cache_slot(id);
    int hit = 0;
    pthread_mutex_lock(&client_cache_mu);
    if (strcmp(c->id, id) == 0 && gov_mono_micros() < c->until_us)
        hit = client_rec_copy(&c->rec, out) == 0;
    pthread_mutex_unlock(&client_cache_mu);
    return hit;
}

/* 1 when id's record is cached and fresh (nothing copied). */
static int cache_fresh(const char *id) {
    cached_client_t *c = cache_slot(id);
    pthread_mutex_lock(&client_cache_mu);
    int hit = strcmp(c->id, id) == 0 && gov_mono_micros() < c->until_us;
    pthread_mutex_unlock(&client_cache_mu);
    return hit;
}

static void cache_put(edge_t *e, const char *id, const gov_state_identity_client_rec_t *rec) {
    if (e->cfg.client_cache_ttl_ms <= 0 || !rec->found)
        return;
    gov_state_identity_client_rec_t copy;
    if (client_rec_copy(rec, &copy) != 0)
        return;
    cached_client_t *c = cache_slot(id);
    absent_client_t *a = &absent_cache[cache_index(id)];
    pthread_mutex_lock(&client_cache_mu);
    found_generation[cache_index(id)]++;   /* an absence read before this is stale */
    if (strcmp(a->id, id) == 0)
        a->until_us = 0;   /* found since: no longer absent */
    gov_state_identity_client_clear(&c->rec);
    c->rec = copy;
    snprintf(c->id, sizeof c->id, "%s", id);
    c->until_us = gov_mono_micros() + e->cfg.client_cache_ttl_ms * 1000;
    pthread_mutex_unlock(&client_cache_mu);
}

/* Authenticates the client of p; on GOV_OK *c holds its record (the caller
 * clears it).  Otherwise resp is filled: 401 invalid_client, 503 when the
 * client store cannot be read, 400 when no credentials came - or, off a
 * lookup thread when the record is not cached, edge_respond_lookup (the
 * request runs again on a lookup thread) and GOV_ERR_UNAVAILABLE. */
static gov_err_t client_auth(edge_t *e, const oauth_params_t *p, gov_state_identity_client_rec_t *c,
                             edge_response_t *resp) {
    memset(c, 0, sizeof *c);
    if (p->client_id == NULL || p->client_secret == NULL) {
        edge_respond_oauth_error(resp, 401, GOV_REASON_INVALID_CLIENT,
                                 "client authentication required (HTTP Basic or "
                                 "client_id/client_secret)");
        edge_add_header(resp, "WWW-Authenticate", "Basic realm=\"gov-edge\"");
        return GOV_ERR_VERIFY;
    }
    char eb[256], key[GOV_STATE_KEY_MAX];
    /* An id no client can have, or one a read just found absent: no read,
     * and so no lookup thread (the same 401 as an unknown id, below).  A
     * fresh record wins over an absence (REVIEW12 L2). */
    int invalid = strlen(p->client_id) > GOV_JWT_CLIENT_ID_MAX ||
                  gov_state_identity_client_key(p->client_id, key) != GOV_OK;
    int cached = !invalid && cache_get(p->client_id, c);
    int absent = invalid || (!cached && cache_absent(p->client_id));
    if (!absent && !cached && !edge_on_lookup_thread()) {
        edge_respond_lookup(resp);
        return GOV_ERR_UNAVAILABLE;
    }
    uint64_t gen = cache_generation(p->client_id);
    gov_redis_t *r = c->found || absent ? NULL : edge_thread_redis(e);
    if (c->found || absent) {
        /* cached, known or absent: no read */
    } else if (r == NULL) {
        edge_respond_oauth_error(resp, 503, GOV_REASON_IDENTITY_STORE_UNAVAILABLE,
                                 "the client store cannot be read");
        return GOV_ERR_UNAVAILABLE;
    } else {
        /* signatures re-checked against the identity trust (identity.c) */
        gov_err_t gerr = edge_identity_client_get(e, r, p->client_id, c, eb, sizeof eb);
        /* A client_id that is not an id names no client: 401 below, not 503. */
        if (gerr != GOV_OK)
            gov_state_identity_client_clear(c);
        if (gerr != GOV_OK && gerr != GOV_ERR_INVALID_ARG) {
            edge_respond_oauth_error(resp, 503, GOV_REASON_IDENTITY_STORE_UNAVAILABLE,
                                     "the client store cannot be read");
            return GOV_ERR_UNAVAILABLE;
        }
        if (gerr == GOV_OK && c->found)
            cache_put(e, p->client_id, c);
        else if (gerr == GOV_OK)
            cache_absent_put(e, p->client_id, gen);
    }
    char given[SECRET_HASH_LEN + 1];
    secret_hash(p->client_secret, given);
    /* an unknown client costs the same hash and comparison */
    static const char dummy[SECRET_HASH_LEN + 1] =
        "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    const char *stored = c->found && c->secret_hash && strlen(c->secret_hash) == SECRET_HASH_LEN
                             ? c->secret_hash
                             : dummy;
    int ok = CRYPTO_memcmp(given, stored, SECRET_HASH_LEN) == 0 && stored != dummy;
    OPENSSL_cleanse(given, sizeof given);
    if (!ok) {
        gov_state_identity_client_clear(c);
        edge_respond_oauth_error(resp, 401, GOV_REASON_INVALID_CLIENT,
                                 "unknown client or wrong secret");
        if (p->basic)
            edge_add_header(resp, "WWW-Authenticate", "Basic realm=\"gov-edge\"");
        return GOV_ERR_VERIFY;
    }
    return GOV_OK;
}

/* 1 when word[0..n) is an element of the list sep-separated list. */
static int list_has(const char *list, char sep, const char *word, size_t n) {
    const char *p = list;
    while (p && *p) {
        const char *end = strchr(p, sep);
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == n && memcmp(p, word, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* The requested scope checked against the client's: every scope-token (a
 * single space between them) one of the client's.  -1 with detail. */
static int scope_check(const char *want, const char *have, char *bad, size_t bad_size) {
    const char *p = want;
    if (*p == '\0')
        return 0;
    for (;;) {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char tok[GOV_EVENTS_SCOPE_MAX + 1];
        if (n == 0 || n > GOV_EVENTS_SCOPE_MAX) {
            snprintf(bad, bad_size, "scope must be scope-tokens separated by single spaces");
            return -1;
        }
        memcpy(tok, p, n);
        tok[n] = '\0';
        if (!gov_events_scope_token_valid(tok) || !list_has(have, ' ', p, n)) {
            snprintf(bad, bad_size, "scope %.128s is not one of the client's", tok);
            return -1;
        }
        if (!end)
            return 0;
        p = end + 1;
    }
}

/* --- verification shared by verify, introspect, revoke ---------------------- */

/* REVIEW10 P2: a removed client's tokens stop verifying (the compromised-
 * client runbook).  gov-identity deletes the client's record when it
 * removes it (the tombstone only keeps the id from coming back), so "no
 * record" is the test, and it covers a client that never existed too.
 * Cost on the verify path: nothing while the client is in the client
 * cache, else one client read (a script and the signature check of
 * edge_identity_client_get) that fills the cache - at most one read per
 * client per client_cache_ttl; a removal is seen within that ttl.
 * GOV_OK, GOV_ERR_VERIFY (token_client_removed) or GOV_ERR_UNAVAILABLE. */
static gov_err_t token_client_live(edge_t *e, gov_redis_t *r, const gov_jwt_claims_t *c,
                                   gov_reason_t *why, char *eb, size_t ebs) {
    gov_state_identity_client_rec_t rec;
    memset(&rec, 0, sizeof rec);
    if (c->client_id[0] && cache_fresh(c->client_id))
        return GOV_OK;
    gov_err_t err = GOV_ERR_INVALID_ARG;   /* no client_id: no client */
    uint64_t gen = c->client_id[0] ? cache_generation(c->client_id) : 0;
    if (c->client_id[0] && !cache_absent(c->client_id))
        err = edge_identity_client_get(e, r, c->client_id, &rec, eb, ebs);
    int found = err == GOV_OK && rec.found;
    if (found)
        cache_put(e, c->client_id, &rec);
    else if (err == GOV_OK)
        cache_absent_put(e, c->client_id, gen);
    gov_state_identity_client_clear(&rec);
    if (err != GOV_OK && err != GOV_ERR_INVALID_ARG)
        return GOV_ERR_UNAVAILABLE;
    if (!found)
        return gov_reason_fail(why, GOV_REASON_TOKEN_CLIENT_REMOVED, GOV_ERR_VERIFY, eb, ebs,
                               "the token's client %s was removed or is unknown", c->client_id);
    return GOV_OK;
}

gov_err_t edge_token_check(edge_t *e, const char *token, int full, gov_jwt_claims_t *c,
                             gov_reason_t *why, char *eb, size_t ebs) {
    *why = GOV_REASON_NONE;
    edge_idsnap_t *snap = edge_identity_acquire(e);
    if (snap == NULL) {
        snprintf(eb, ebs, "the signing keys are not loaded yet");
        return GOV_ERR_UNAVAILABLE;
    }
    gov_jwt_verify_opts_t o = {
        .alg = GOV_JWT_ALG_EDDSA,
        .iss = e->cfg.token_issuer,
        .aud = e->cfg.token_audience,
        .leeway_s = e->cfg.token_leeway_s,
        .max_lifetime_s = e->cfg.token_ttl_max_s,
        .lookup = edge_identity_lookup,
        .lookup_ctx = snap,
    };
    int64_t now_us = gov_now_micros();
    gov_err_t err = gov_jwt_verify(token, strlen(token), &o, now_us / 1000000, c, why, eb, ebs);
    edge_idsnap_release(snap);
    if (err != GOV_OK || !full)
        return err == GOV_ERR_VERIFY || err == GOV_OK ? err : GOV_ERR_UNAVAILABLE;

    gov_redis_t *r = edge_thread_redis(e);
    gov_state_token_status_t st = GOV_STATE_TOKEN_UNKNOWN;
    int64_t exp = 0;
    if (r == NULL || gov_state_identity_token_status(r, c->tenant, c->jti, &st, &exp, eb, ebs) !=
                         GOV_OK)
        return GOV_ERR_UNAVAILABLE;
    if (st == GOV_STATE_TOKEN_REVOKED) {
        *why = GOV_REASON_TOKEN_REVOKED;
        snprintf(eb, ebs, "token %s was revoked", c->jti);
        return GOV_ERR_VERIFY;
    }
    /* UNKNOWN is not a refusal: gov-identity may not have materialized the
     * issue yet; a revocation is written before revoke answers. */
    if (c->parent_jti[0] != '\0') {
        /* a session token ends with the bearer that started it (review 11,
         * M6); its exp is never past the parent's (sessions_api.c) */
        if (gov_state_identity_token_status(r, c->tenant, c->parent_jti, &st, &exp, eb, ebs) !=
            GOV_OK)
            return GOV_ERR_UNAVAILABLE;
        if (st == GOV_STATE_TOKEN_REVOKED) {
            *why = GOV_REASON_TOKEN_PARENT_REVOKED;
            snprintf(eb, ebs, "token %s was started by token %s, which was revoked", c->jti,
                     c->parent_jti);
            return GOV_ERR_VERIFY;
        }
    }
    if ((err = token_client_live(e, r, c, why, eb, ebs)) != GOV_OK)
        return err;

    edge_snapshot_t *s = edge_state_acquire(e->state);
    const edge_tenant_t *t = s ? edge_snapshot_find(s, c->tenant) : NULL;
    const char *current = t && t->constitution.checksum[0] ? t->constitution.checksum : NULL;
    edge_grace_t g[16];
    gov_jwt_grace_t grace[16];
    size_t ng = edge_identity_grace(e, c->tenant, g, 16);
    for (size_t i = 0; i < ng; i++) {
        grace[i].hash = g[i].hash;
        grace[i].until_s = g[i].until_s;
    }
    err = gov_jwt_check_constitution(c, current, grace, ng, now_us / 1000000, why, eb, ebs);
    edge_snapshot_release(s);
    return err == GOV_OK || err == GOV_ERR_VERIFY ? err : GOV_ERR_UNAVAILABLE;
}

/* The claims as JSON (a new reference). */
static json_t *claims_json(const gov_jwt_claims_t *c) {
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s}", "iss", c->iss,
                          "sub", c->sub, "aud", c->aud, "exp", (json_int_t)c->exp, "nbf",
                          (json_int_t)c->nbf, "iat", (json_int_t)c->iat, "jti", c->jti, "tenant",
                          c->tenant, "scope", c->scope, "constitution_hash",
                          c->constitution_hash);
    if (j && c->client_id[0])
        json_object_set_new(j, "client_id", json_string(c->client_id));
    if (j && c->parent_jti[0])
        json_object_set_new(j, "parent_jti", json_string(c->parent_jti));
    return j;
}

/* --- POST /v1/tokens/issue ---------------------------------------------------- */

static gov_err_t sign_with(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64],
                           char *errbuf, size_t errbuf_size) {
    return gov_signer_sign(ctx, msg, len, sig, errbuf, errbuf_size);
}

/* One token in flight: signed, its events queued, its answer deferred.
 * Owned by the group's completion (mint_done), which frees it. */
typedef struct mint {
    edge_t *e;
    edge_deferred_t *d;
    gov_jwt_claims_t c;
    gov_buf_t tok;                 /* the token: wiped before it is freed */
    edge_mint_answer_fn answer;
    void *arg;
    void (*arg_free)(void *);
} mint_t;

static void mint_free(mint_t *m) {
    if (m->tok.data)
        OPENSSL_cleanse(m->tok.data, m->tok.len);
    gov_buf_free(&m->tok);
    if (m->arg_free)
        m->arg_free(m->arg);
    OPENSSL_cleanse(&m->c, sizeof m->c);
    gov_free(m);
}

/* 1 while issuance fails (a Kafka outage): the WARN is logged when it
 * starts, not per request (REVIEW10 L10); the metric still counts each.
 * Process-wide: one gov-edge per process. */
static atomic_int mint_failing;

/* --- the acknowledgement breaker (REVIEW11 H1) -------------------------------- */

#define BREAKER_TRIP 20               /* groups failed by timeout in a row */
#define BREAKER_PROBE_US 1000000      /* one deferred probe a second while open */

/* Process-wide, like mint_failing.  mu guards every field; each operation
 * is O(1) under it. */
static struct {
    pthread_mutex_t mu;
    int open;
    int streak;                       /* groups failed by timeout in a row */
    int64_t failed_at[BREAKER_TRIP];  /* when the last BREAKER_TRIP of them failed (ring) */
    size_t next;
    int64_t probe_at;                 /* the last probe let through (open) */
} breaker = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* 1 when a mint may go on to Kafka: the breaker is closed, or it is open
 * and no probe went through in the last second (this one is the probe). */
static int breaker_allows(void) {
    int64_t now = gov_mono_micros();
    pthread_mutex_lock(&breaker.mu);
    int ok = !breaker.open || now - breaker.probe_at >= BREAKER_PROBE_US;
    if (breaker.open && ok)
        breaker.probe_at = now;
    pthread_mutex_unlock(&breaker.mu);
    return ok;
}

/* Records a group's outcome: an acknowledgement closes the breaker, a
 * timeout extends the streak and opens it at BREAKER_TRIP within
 * kafka_ack_timeout, any other failure (refused, purged: Kafka answered)
 * ends the streak. */
static void breaker_record(edge_t *e, gov_err_t err) {
    int64_t now = gov_mono_micros();
    pthread_mutex_lock(&breaker.mu);
    if (err == GOV_OK) {
        breaker.streak = 0;
        if (breaker.open) {
            breaker.open = 0;
            gov_status_set(e->status, "kafka_acks", GOV_STATUS_OK, NULL, NULL);
            gov_log(GOV_LOG_INFO, "kafka acknowledgements back: issuance deferred again",
                    (const char *)NULL);
        }
    } else if (err == GOV_ERR_TIMEOUT) {
        breaker.failed_at[breaker.next] = now;
        breaker.next = (breaker.next + 1) % BREAKER_TRIP;
        if (breaker.streak < BREAKER_TRIP)
            breaker.streak++;
        /* failed_at[next] is now the oldest of the last BREAKER_TRIP */
        if (!breaker.open && breaker.streak >= BREAKER_TRIP &&
            now - breaker.failed_at[breaker.next] <= e->cfg.kafka_ack_timeout_ms * 1000) {
            breaker.open = 1;
            breaker.probe_at = now;
            gov_status_set(e->status, "kafka_acks", GOV_STATUS_DEGRADED,
                           "Kafka does not acknowledge: issuance and sessions answer 503 "
                           "kafka_unavailable at once (one probe a second)", NULL);
            gov_log(GOV_LOG_WARN, "kafka acknowledgements stalled: issuance and sessions "
                    "answer 503 kafka_unavailable at once until one is acknowledged "
                    "(logged once per episode; edge_deferred_refused_total counts each)",
                    (const char *)NULL);
        }
    } else {
        breaker.streak = 0;
    }
    pthread_mutex_unlock(&breaker.mu);
}

/* The group's outcome (on the delivery-report thread, or in the seal): the
 * answer, then the connection resumed.  Never blocks. */
static void mint_done(void *arg, gov_err_t err, const char *detail) {
    mint_t *m = arg;
    edge_response_t *resp = edge_deferred_response(m->d);
    breaker_record(m->e, err);
    if (err != GOV_OK) {
        gov_metric_inc(m->e->m_tokens, (const char *[]){"kafka_unavailable"}, 1);
        if (!atomic_exchange(&mint_failing, 1))
            gov_log(GOV_LOG_WARN, "token not issued: its events were not acknowledged "
                    "(logged once per outage; identity_tokens_issued_total counts "
                    "each)", "tenant", m->c.tenant, "client_id", m->c.client_id, "jti",
                    m->c.jti, "error", detail, (const char *)NULL);
        m->answer(m->arg, err, NULL, 0, &m->c, resp);
    } else {
        if (atomic_exchange(&mint_failing, 0))
            gov_log(GOV_LOG_INFO, "token issuance acknowledged again", (const char *)NULL);
        gov_metric_inc(m->e->m_tokens, (const char *[]){"issued"}, 1);
        m->answer(m->arg, GOV_OK, m->tok.data, m->tok.len, &m->c, resp);
    }
    edge_deferred_t *d = m->d;
    mint_free(m);
    edge_deferred_finish(d);
}

/* Encodes ev (borrowed) as type and queues it in g keyed by the tenant; a
 * message that cannot even be encoded fails the group. */
static void mint_queue(mint_t *m, gov_kafka_group_t *g, const char *topic, const char *type,
                       json_t *ev) {
    char eb[256] = "out of memory building an event";
    unsigned char *buf = NULL;
    size_t len = 0;
    if (ev == NULL || gov_avro_encode(m->e->avro, type, ev, &buf, &len, eb, sizeof eb) != GOV_OK)
        gov_kafka_group_fail(g, GOV_ERR_NOMEM, eb);
    else
        gov_kafka_group_produce(g, topic, m->c.tenant, strlen(m->c.tenant), buf, len, NULL, 0);
    gov_free(buf);
    json_decref(ev);
}

int edge_token_mint(edge_t *e, const gov_jwt_claims_t *c, const edge_idkey_t *key,
                    const char *action, const char *correlation_id, int oauth,
                    edge_response_t *resp,
                    edge_mint_answer_fn answer, void *arg, void (*arg_free)(void *)) {
    char eb[256] = "";
    gov_kafka_group_t *g = NULL;
    if (!breaker_allows()) {   /* nothing signed, nothing deferred */
        if (arg_free)
            arg_free(arg);
        edge_deferred_refused(e, resp, GOV_REASON_KAFKA_UNAVAILABLE, oauth,
                              "Kafka is not acknowledging; no token was issued; try again");
        return -1;
    }
    mint_t *m = gov_calloc(1, sizeof *m);
    if (m == NULL) {
        if (arg_free)
            arg_free(arg);
        edge_respond_error(resp, 503, GOV_REASON_OUT_OF_MEMORY, "out of memory");
        return -1;
    }
    m->e = e;
    m->c = *c;
    m->answer = answer;
    m->arg = arg;
    m->arg_free = arg_free;
    gov_buf_init(&m->tok, 0);
    if (gov_jwt_sign(c, key->kid, sign_with, key->signer, &m->tok, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "token signing failed", "kid", key->kid, "error", eb,
                (const char *)NULL);
        if (oauth)
            edge_respond_oauth_error(resp, 503, GOV_REASON_SIGNING_KEY_UNAVAILABLE,
                                     "the signing key could not sign");
        else
            edge_respond_error(resp, 503, GOV_REASON_SIGNING_KEY_UNAVAILABLE,
                               "the signing key could not sign");
        mint_free(m);
        return -1;
    }
    if ((m->d = edge_defer(resp, oauth)) == NULL) {   /* resp holds the 503 */
        mint_free(m);
        return -1;
    }
    if (gov_kafka_group_new(e->producer, mint_done, m, &g) != GOV_OK) {
        mint_done(m, GOV_ERR_NOMEM, "out of memory");
        return 0;
    }
    gov_token_issued_t ti = {
        .occurred_at = gov_now_micros(), .tenant = c->tenant, .jti = c->jti, .sub = c->sub,
        .client_id = c->client_id, .scope = c->scope, .aud = c->aud, .kid = key->kid,
        .constitution_hash = c->constitution_hash, .issued_at = c->iat * 1000000,
        .not_before = c->nbf * 1000000, .expires_at = c->exp * 1000000,
    };
    mint_queue(m, g, GOV_TOPIC_IDENTITY_TOKENS, "TokenIssued", gov_events_token_issued_new(&ti));
    json_t *details = json_pack("{s:s, s:s, s:s, s:I, s:s}", "kid", key->kid, "scope", c->scope,
                                "edge_id", e->cfg.edge_id, "exp", (json_int_t)c->exp,
                                "constitution_hash", c->constitution_hash);
    if (details && c->parent_jti[0])   /* a session: the bearer that started it */
        json_object_set_new(details, "parent_jti", json_string(c->parent_jti));
    gov_audit_fields_t af = {
        .tenant = c->tenant, .component = TOKENS_COMPONENT,
        .actor = c->client_id[0] ? c->client_id : c->sub, .action = action,
        .outcome = "success", .subject = c->jti, .correlation_id = correlation_id,
        .details = details,
    };
    mint_queue(m, g, GOV_TOPIC_AUDIT, "AuditEvent", details ? gov_events_audit_new(&af) : NULL);
    json_decref(details);
    gov_kafka_group_seal(g);   /* m belongs to mint_done from here */
    return 0;
}

/* The answer of POST /v1/tokens/issue (mint_done's callback). */
static void issue_answer(void *arg, gov_err_t err, const char *tok, size_t tok_len,
                         const gov_jwt_claims_t *c, edge_response_t *resp) {
    (void)arg;
    if (err != GOV_OK) {
        edge_respond_oauth_error(resp, 503, GOV_REASON_KAFKA_UNAVAILABLE,
                                 "the issuance could not be recorded; no token was issued");
        return;
    }
    json_t *j = json_pack("{s:s%, s:s, s:I, s:s, s:s}", "access_token", tok, tok_len,
                          "token_type", "Bearer", "expires_in", (json_int_t)(c->exp - c->iat),
                          "scope", c->scope, "tenant", c->tenant);
    edge_respond_json(resp, 200, j);
    edge_add_header(resp, "Pragma", "no-cache");
}

void edge_token_issue(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    oauth_params_t p;
    gov_state_identity_client_rec_t client;
    gov_jwt_claims_t c;
    edge_idsnap_t *snap = NULL;
    edge_snapshot_t *s = NULL;
    char eb[256] = "";
    memset(&client, 0, sizeof client);
    memset(&c, 0, sizeof c);
    if (read_params(req, 1, 1, &p, resp) != 0)
        return;
    if (p.grant_type == NULL) {
        edge_respond_oauth_error(resp, 400, GOV_REASON_INVALID_REQUEST, "grant_type is required");
        goto out;
    }
    if (strcmp(p.grant_type, "client_credentials") != 0) {
        edge_respond_oauth_error(resp, 400, GOV_REASON_UNSUPPORTED_GRANT_TYPE,
                                 "only grant_type=client_credentials is supported");
        goto out;
    }
    if (client_auth(e, &p, &client, resp) != GOV_OK)
        goto out;
    /* scope: what was asked (a subset of the client's), else all of them */
    const char *scope = p.scope ? p.scope : (client.scopes ? client.scopes : "");
    if (p.scope && scope_check(p.scope, client.scopes ? client.scopes : "", eb, sizeof eb) != 0) {
        edge_respond_oauth_error(resp, 400, GOV_REASON_INVALID_SCOPE, "%s", eb);
        goto out;
    }
    /* tenant: the one asked for (one of the client's), else its only one */
    char tenant[GOV_TENANT_MAX + 1];
    const char *tenants = client.tenants ? client.tenants : "";
    if ((p.tenant && strlen(p.tenant) > GOV_TENANT_MAX) ||
        (!p.tenant && strchr(tenants, ',') == NULL && strlen(tenants) > GOV_TENANT_MAX)) {
        /* never cut to a prefix, which may name another tenant (REVIEW10 L4) */
        edge_respond_oauth_error(resp, 400, GOV_REASON_INVALID_REQUEST,
                                 "the tenant is longer than %d bytes", GOV_TENANT_MAX);
        goto out;
    }
    if (p.tenant) {
        if (!list_has(tenants, ',', p.tenant, strlen(p.tenant))) {
            edge_respond_oauth_error(resp, 403, GOV_REASON_UNAUTHORIZED_CLIENT,
                                     "tenant %.64s is not one of the client's", p.tenant);
            goto out;
        }
        snprintf(tenant, sizeof tenant, "%s", p.tenant);
    } else if (tenants[0] == '\0' || strchr(tenants, ',') != NULL) {
        edge_respond_oauth_error(resp, 400, GOV_REASON_INVALID_REQUEST,
                                 "the client has several tenants: name one (tenant=)");
        goto out;
    } else {
        snprintf(tenant, sizeof tenant, "%s", tenants);
    }
    long ttl = e->cfg.token_ttl_default_s;
    if (p.ttl) {
        /* digits only: strtoll alone takes "+5" and " 5" (REVIEW10 L3) */
        char *end = NULL;
        size_t digits = strspn(p.ttl, "0123456789");
        long long v = strtoll(p.ttl, &end, 10);
        if (digits == 0 || p.ttl[digits] != '\0' || v <= 0) {
            edge_respond_oauth_error(resp, 400, GOV_REASON_INVALID_REQUEST,
                                     "ttl must be a positive integer (seconds)");
            goto out;
        }
        ttl = v > e->cfg.token_ttl_max_s ? e->cfg.token_ttl_max_s : (long)v;
    }
    s = edge_state_acquire(e->state);
    const edge_tenant_t *t = s ? edge_snapshot_find(s, tenant) : NULL;
    if (t == NULL || t->constitution.checksum[0] == '\0') {
        edge_respond_oauth_error(resp, 503, GOV_REASON_CONSTITUTION_MISSING,
                                 "tenant %s has no verified constitution", tenant);
        goto out;
    }
    int64_t now_us = gov_now_micros();
    snap = edge_identity_acquire(e);
    const edge_idkey_t *key = edge_identity_signing_key(snap, now_us);
    if (key == NULL) {
        edge_respond_oauth_error(resp, 503, GOV_REASON_SIGNING_KEY_UNAVAILABLE,
                                 "no active signing key is available to this edge");
        goto out;
    }
    int64_t now_s = now_us / 1000000;
    snprintf(c.iss, sizeof c.iss, "%s", e->cfg.token_issuer);
    snprintf(c.sub, sizeof c.sub, "%s", p.client_id);
    snprintf(c.client_id, sizeof c.client_id, "%s", p.client_id);
    snprintf(c.aud, sizeof c.aud, "%s", e->cfg.token_audience);
    snprintf(c.tenant, sizeof c.tenant, "%s", tenant);
    snprintf(c.constitution_hash, sizeof c.constitution_hash, "%s", t->constitution.checksum);
    if (strlen(scope) > GOV_JWT_SCOPE_MAX) {
        edge_respond_oauth_error(resp, 400, GOV_REASON_INVALID_SCOPE, "scope is too long");
        goto out;
    }
    snprintf(c.scope, sizeof c.scope, "%s", scope);
    c.iat = now_s;
    c.nbf = now_s;
    c.exp = now_s + ttl;
    if (gov_uuid_v7(c.jti) != GOV_OK) {
        edge_respond_oauth_error(resp, 503, GOV_REASON_INTERNAL_ERROR, "no jti");
        goto out;
    }
    /* answered later (deferred) by issue_answer, or now with an error */
    edge_token_mint(e, &c, key, "token.issued", NULL, 1, resp, issue_answer, NULL, NULL);
out:
    edge_idsnap_release(snap);
    edge_snapshot_release(s);
    gov_state_identity_client_clear(&client);
    oauth_params_clear(&p);
}

/* --- POST /v1/tokens/verify ----------------------------------------------------- */

void edge_token_verify(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    oauth_params_t p;
    if (read_params(req, 0, 1, &p, resp) != 0)
        return;
    if (p.token == NULL) {
        edge_respond_error(resp, 400, GOV_REASON_INVALID_REQUEST, "token is required");
        goto out;
    }
    gov_jwt_claims_t c;
    gov_reason_t why;
    char eb[256] = "";
    gov_err_t err = edge_token_check(e, p.token, 1, &c, &why, eb, sizeof eb);
    if (err == GOV_OK)
        edge_respond_json(resp, 200, json_pack("{s:b, s:o}", "active", 1, "claims",
                                               claims_json(&c)));
    else if (err == GOV_ERR_VERIFY)
        edge_respond_error(resp, 401, why, "%s", eb);
    else
        edge_respond_error(resp, 503, GOV_REASON_IDENTITY_STORE_UNAVAILABLE,
                           "the token cannot be checked now: %s", eb);
out:
    oauth_params_clear(&p);
}

/* What introspect and revoke share: the form, the client, the token and
 * its check. */
typedef struct token_request {
    oauth_params_t p;
    gov_state_identity_client_rec_t client;
    gov_jwt_claims_t c;
    gov_reason_t why;
    gov_err_t check;       /* edge_token_check's result */
    char eb[256];
} token_request_t;

/* The start of introspect and revoke: the form, the client, the token
 * parameter, then edge_token_check (full: revocation and constitution too)
 * into t->check.  0 when the request may go on (t filled: the caller ends
 * it with token_request_end); else resp is filled and nothing is left to
 * clear. */
static int token_request_begin(edge_t *e, const edge_request_t *req, int full, token_request_t *t,
                               edge_response_t *resp) {
    memset(t, 0, sizeof *t);
    if (read_params(req, 1, 0, &t->p, resp) != 0)
        return -1;
    if (client_auth(e, &t->p, &t->client, resp) == GOV_OK) {
        if (t->p.token != NULL) {
            t->check = edge_token_check(e, t->p.token, full, &t->c, &t->why, t->eb, sizeof t->eb);
            return 0;
        }
        edge_respond_oauth_error(resp, 400, GOV_REASON_INVALID_REQUEST, "token is required");
    }
    gov_state_identity_client_clear(&t->client);
    oauth_params_clear(&t->p);
    return -1;
}

static void token_request_end(token_request_t *t) {
    gov_state_identity_client_clear(&t->client);
    oauth_params_clear(&t->p);
}

/* --- POST /v1/tokens/introspect ------------------------------------------------- */

/* REVIEW10 P3 (RFC 7662 section 4 leaves it to the server): a client
 * learns a token's claims only when it is the token's own client or one of
 * its tenants is the token's; any other caller gets active:false, exactly
 * what an unknown token answers, so it does not even learn that the token
 * is valid.  1 when caller (authenticated as p->client_id) may see c. */
static int may_introspect(const gov_state_identity_client_rec_t *caller, const oauth_params_t *p,
                          const gov_jwt_claims_t *c) {
    if (c->client_id[0] && strcmp(p->client_id, c->client_id) == 0)
        return 1;
    return caller->tenants && list_has(caller->tenants, ',', c->tenant, strlen(c->tenant));
}

void edge_token_introspect(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    token_request_t t;
    if (token_request_begin(e, req, 1, &t, resp) != 0)
        return;
    if (t.check == GOV_ERR_VERIFY || (t.check == GOV_OK && !may_introspect(&t.client, &t.p, &t.c))) {
        edge_respond_json(resp, 200, json_pack("{s:b}", "active", 0));
    } else if (t.check != GOV_OK) {
        edge_respond_oauth_error(resp, 503, GOV_REASON_IDENTITY_STORE_UNAVAILABLE,
                                 "the token cannot be checked now");
    } else {
        json_t *j = claims_json(&t.c);
        if (j) {
            json_object_set_new(j, "active", json_true());
            json_object_set_new(j, "token_type", json_string("Bearer"));
            if (!t.c.client_id[0])
                json_object_set_new(j, "client_id", json_string(t.c.sub));
        }
        edge_respond_json(resp, 200, j);
    }
    token_request_end(&t);
}

/* --- POST /v1/tokens/revoke ------------------------------------------------------ */

/* Produces the TokenRevoked of c (acknowledged) and writes the revocation
 * through to Redis.  GOV_OK or the error with eb. */
static gov_err_t revoke_token(edge_t *e, const gov_jwt_claims_t *c, const char *by, char *eb,
                              size_t ebs) {
    int64_t now_us = gov_now_micros();
    int64_t exp_us = c->exp * 1000000;
    json_t *ev = gov_events_token_revoked_new(NULL, now_us, c->tenant, c->jti, exp_us,
                                              "revoked by client", by);
    unsigned char *buf = NULL;
    size_t len = 0;
    int32_t partition = -1;
    int64_t offset = -1;
    gov_err_t err = ev ? gov_avro_encode(e->avro, "TokenRevoked", ev, &buf, &len, eb, ebs)
                       : GOV_ERR_NOMEM;
    json_decref(ev);
    if (err == GOV_OK)
        err = gov_kafka_produce_sync(e->producer, GOV_TOPIC_IDENTITY_TOKENS, c->tenant,
                                     strlen(c->tenant), buf, len, NULL, 0,
                                     GOV_EVENTS_ACK_TIMEOUT_MS, &partition, &offset, eb, ebs);
    gov_free(buf);
    if (err != GOV_OK)
        return err;
    gov_redis_t *r = edge_thread_redis(e);
    gov_state_pos_t pos = {.processor = TOKENS_COMPONENT, .topic = GOV_TOPIC_IDENTITY_TOKENS,
                           .partition = partition, .offset = offset, .tenant = c->tenant};
    int64_t before = -1;
    if (r == NULL)
        return GOV_ERR_UNAVAILABLE;
    return gov_state_identity_token_revoke(r, c->tenant, c->jti, exp_us, now_us,
                                           "revoked by client", &pos, &before, eb, ebs);
}

void edge_token_revoke(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    token_request_t t;
    if (token_request_begin(e, req, 0, &t, resp) != 0)
        return;
    if (t.check == GOV_ERR_VERIFY) {
        /* RFC 7009 section 2.2: an invalid token is answered 200 too */
        edge_respond_json(resp, 200, json_object());
        goto out;
    }
    if (t.check != GOV_OK) {
        edge_respond_oauth_error(resp, 503, GOV_REASON_IDENTITY_STORE_UNAVAILABLE,
                                 "the token cannot be checked now");
        goto out;
    }
    const char *owner = t.c.client_id[0] ? t.c.client_id : t.c.sub;
    if (strcmp(owner, t.p.client_id) != 0) {
        edge_respond_oauth_error(resp, 403, GOV_REASON_UNAUTHORIZED_CLIENT,
                                 "the token was not issued to this client");
        goto out;
    }
    if (revoke_token(e, &t.c, t.p.client_id, t.eb, sizeof t.eb) != GOV_OK) {
        gov_log(GOV_LOG_WARN, "token not revoked", "tenant", t.c.tenant, "jti", t.c.jti, "error",
                t.eb, (const char *)NULL);
        edge_respond_oauth_error(resp, 503, GOV_REASON_KAFKA_UNAVAILABLE,
                                 "the revocation could not be recorded; try again");
        goto out;
    }
    edge_respond_json(resp, 200, json_object());
out:
    token_request_end(&t);
}

/* --- well-known documents -------------------------------------------------------- */

void edge_jwks(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    (void)req;
    edge_idsnap_t *snap = edge_identity_acquire(e);
    const char *jwks = snap && snap->jwks ? snap->jwks : "{\"keys\":[]}";
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = gov_strdup(jwks);
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    edge_idsnap_release(snap);
    if (resp->body == NULL) {
        edge_respond_error(resp, 503, GOV_REASON_OUT_OF_MEMORY, "out of memory");
        return;
    }
    /* short: a key is published ahead of its activates_at by more than this */
    edge_add_header(resp, "Cache-Control", "public, max-age=60");
}

void edge_openid_configuration(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    (void)req;
    const char *iss = e->cfg.token_issuer;
    size_t n = strlen(iss);
    char base[GOV_JWT_ISS_MAX + 1];
    snprintf(base, sizeof base, "%.*s", (int)(n > 0 && iss[n - 1] == '/' ? n - 1 : n), iss);
    char jwks[512], issue[512], intro[512], revoke[512];
    snprintf(jwks, sizeof jwks, "%s/.well-known/jwks.json", base);
    snprintf(issue, sizeof issue, "%s/v1/tokens/issue", base);
    snprintf(intro, sizeof intro, "%s/v1/tokens/introspect", base);
    snprintf(revoke, sizeof revoke, "%s/v1/tokens/revoke", base);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:[s], s:[s,s], s:[s,s], s:[s,s], s:[]}", "issuer", iss,
        "jwks_uri", jwks, "token_endpoint", issue, "introspection_endpoint", intro,
        "revocation_endpoint", revoke, "grant_types_supported", "client_credentials",
        "token_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post",
        "introspection_endpoint_auth_methods_supported", "client_secret_basic",
        "client_secret_post", "revocation_endpoint_auth_methods_supported",
        "client_secret_basic", "client_secret_post", "response_types_supported");
    edge_respond_json(resp, 200, j);
    edge_add_header(resp, "Cache-Control", "public, max-age=60");
}
