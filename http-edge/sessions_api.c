/* sessions_api.c - POST /v1/sessions/start (docs/api.md "Sessions").
 *
 * What: the chain in one request.  The body is a /v1/evaluate request; the
 * caller presents a bearer token (Authorization: Bearer) of the request's
 * tenant with the scope sessions:start.  The request is evaluated
 * (edge_decide, which also queues its PolicyDecision) and:
 *   allow  -> a session token is minted and answered 201
 *             {session_id, token, expires_in, decision, score, reasons, ...}
 *             only once its TokenIssued and AuditEvent (action
 *             session.started) are acknowledged (edge_token_mint: the answer
 *             is deferred, no thread waits);
 *   review -> 202 with the decision, no token;
 *   deny   -> 403 with the decision, no token.
 * Every answer carries X-Policy-Decision, X-Policy-Score,
 * X-Constitution-Hash and X-Policy-Decision-Id once a decision exists; an
 * answer without a token for any other reason (401 bearer token refused,
 * 403 scope or tenant, 503 state or Kafka unavailable, 400 bad body) fails
 * closed: it carries X-Policy-Decision: deny (and the decision's other
 * headers when there was one).
 *
 * The session token: the claims of an access token (docs/contracts.md,
 * "JWT"), sub and client_id the bearer token's, scope "session" (what a
 * downstream service requires of a session token; it grants nothing at the
 * token endpoints), the tenant, and constitution_hash the hash of the
 * constitution the decision was made under - so the token is bound to the
 * decision's constitution - and parent_jti the bearer token's jti (also in
 * the session.started AuditEvent's details): edge_token_check refuses a
 * session token whose parent was revoked (token_parent_revoked).
 * session_id is the token's jti (a UUIDv7).  Its lifetime is
 * token_ttl_default_s, but never past the bearer's exp.
 *
 * Consistency: the bearer token must verify in full (signature, claims,
 * revocation, its constitution hash current or in the grace window:
 * edge_token_check), and the decision's constitution hash must equal the
 * token's or, when the constitution was replaced between the two, the
 * token's must still be in the grace window - otherwise 403
 * session_constitution_mismatch.
 *
 * Why a lookup: edge_token_check reads the token's revocation from Redis.
 * The evaluation and the signature then run on the lookup thread too, and
 * nothing waits for Kafka there.
 *
 * What it does not do: store sessions (the TokenIssued on identity.tokens
 * is the record, materialized by gov-identity), log the prompt or a token,
 * or answer a token before its events are acknowledged.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge.h"
#include "edge_identity.h"
#include "gov_alloc.h"
#include "gov_log.h"
#include "gov_time.h"

#define SESSION_SCOPE "session"
#define REQUIRED_SCOPE "sessions:start"
#define REALM "gov-edge"

/* Fail-closed headers of an answer without a token: deny, and the
 * decision's other headers when one was made (d may be NULL). */
static void deny_headers(const edge_decision_t *d, edge_response_t *resp) {
    edge_add_header(resp, "X-Policy-Decision", "deny");
    if (d == NULL)
        return;
    edge_add_header(resp, "X-Policy-Score", d->score);
    edge_add_header(resp, "X-Constitution-Hash", d->tenant->constitution.checksum);
    edge_add_header(resp, "X-Policy-Decision-Id", d->decision_id);
}

/* 1 when hash is in tenant's constitution grace window now. */
static int in_grace(edge_t *e, const char *tenant, const char *hash) {
    edge_grace_t g[16];
    size_t n = edge_identity_grace(e, tenant, g, 16);
    int64_t now_s = gov_now_micros() / 1000000;
    for (size_t i = 0; i < n; i++)
        if (strcmp(g[i].hash, hash) == 0 && now_s < g[i].until_s)   /* as gov_jwt, authz */
            return 1;
    return 0;
}

/* The decision as the answer's body, with extra members (may be NULL). */
static void decision_body(const edge_decision_t *d, unsigned status, const char *extra,
                          edge_response_t *resp) {
    /* every value is of a checked syntax (uuid, hex, tenant): no escaping */
    size_t n = 512 + (extra ? strlen(extra) : 0);
    char *members = gov_malloc(n);
    if (members)
        snprintf(members, n, "\"decision_id\":\"%s\",\"tenant\":\"%s\","
                 "\"constitution_hash\":\"%s\"%s%s", d->decision_id, d->tenant->name,
                 d->tenant->constitution.checksum, extra ? "," : "", extra ? extra : "");
    char *body = NULL;
    size_t len = 0;
    gov_err_t err = members ? gov_policy_decision_to_json(&d->d, members, &body, &len)
                            : GOV_ERR_NOMEM;
    if (members)
        OPENSSL_cleanse(members, n);   /* it may hold the token */
    gov_free(members);
    if (err != GOV_OK) {
        edge_respond_error(resp, 503, GOV_REASON_OUT_OF_MEMORY, "out of memory");
        return;
    }
    gov_free(resp->body);
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = body;
    resp->body_len = len;
}

/* What the mint's answer needs: the decision (its snapshot reference held
 * until the answer). */
typedef struct session {
    edge_decision_t d;
} session_t;

static void session_free(void *arg) {
    session_t *s = arg;
    edge_decision_clear(&s->d);
    gov_free(s);
}

static void session_answer(void *arg, gov_err_t err, const char *token, size_t token_len,
                           const gov_jwt_claims_t *c, edge_response_t *resp) {
    session_t *s = arg;
    if (err != GOV_OK) {
        edge_respond_error(resp, 503, GOV_REASON_KAFKA_UNAVAILABLE,
                           "the session could not be recorded; no token was issued");
        deny_headers(&s->d, resp);
        return;
    }
    size_t n = token_len + 256;
    char *extra = gov_malloc(n);
    if (extra == NULL) {
        edge_respond_error(resp, 503, GOV_REASON_OUT_OF_MEMORY, "out of memory");
        deny_headers(&s->d, resp);
        return;
    }
    /* the token is base64url and dots, the jti a UUID: no escaping */
    snprintf(extra, n, "\"session_id\":\"%s\",\"token\":\"%.*s\",\"expires_in\":%lld", c->jti,
             (int)token_len, token, (long long)(c->exp - c->iat));
    decision_body(&s->d, 201, extra, resp);
    OPENSSL_cleanse(extra, n);
    gov_free(extra);
    if (resp->status == 201) {
        edge_decision_headers(&s->d, resp);
        edge_add_header(resp, "Pragma", "no-cache");
    } else {
        deny_headers(&s->d, resp);
    }
}

void edge_session_start(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    gov_policy_request_t pr;
    gov_jwt_claims_t bc, sc;
    edge_decision_t d;
    edge_idsnap_t *snap = NULL;
    session_t *s = NULL;
    int decided = 0;
    memset(&d, 0, sizeof d);
    if (edge_bearer_check(e, req, REALM, REQUIRED_SCOPE, &bc, resp) != 0)
        return;   /* resp holds the 401/403/503 with X-Policy-Decision: deny */
    if (edge_policy_request_read(e, req, &pr, resp) != 0) {
        deny_headers(NULL, resp);
        return;
    }
    if (strcmp(pr.tenant, bc.tenant) != 0) {
        edge_respond_error(resp, 403, GOV_REASON_TENANT_MISMATCH,
                           "the request's tenant is not the token's");
        deny_headers(NULL, resp);
        goto out;
    }
    if (edge_decide(e, &pr, &d, resp) != 0) {
        deny_headers(NULL, resp);
        goto out;
    }
    decided = 1;
    const char *hash = d.tenant->constitution.checksum;
    if (strcmp(hash, bc.constitution_hash) != 0 && !in_grace(e, bc.tenant, bc.constitution_hash)) {
        edge_respond_error(resp, 403, GOV_REASON_SESSION_CONSTITUTION_MISMATCH,
                           "the decision was made under another constitution than the token's");
        deny_headers(&d, resp);
        goto out;
    }
    if (d.d.decision != GOV_DECISION_ALLOW) {
        int review = d.d.decision == GOV_DECISION_REVIEW;
        decision_body(&d, review ? 202 : 403, NULL, resp);
        edge_decision_headers(&d, resp);
        goto out;
    }
    int64_t now_us = gov_now_micros();
    snap = edge_identity_acquire(e);
    const edge_idkey_t *key = snap ? edge_identity_signing_key(snap, now_us) : NULL;
    if (key == NULL) {
        edge_respond_error(resp, 503, GOV_REASON_SIGNING_KEY_UNAVAILABLE,
                           "no active signing key is available to this edge");
        deny_headers(&d, resp);
        goto out;
    }
    memset(&sc, 0, sizeof sc);
    int64_t now_s = now_us / 1000000;
    snprintf(sc.iss, sizeof sc.iss, "%s", e->cfg.token_issuer);
    snprintf(sc.sub, sizeof sc.sub, "%s", bc.sub);
    snprintf(sc.client_id, sizeof sc.client_id, "%s", bc.client_id);
    snprintf(sc.aud, sizeof sc.aud, "%s", e->cfg.token_audience);
    snprintf(sc.tenant, sizeof sc.tenant, "%s", bc.tenant);
    snprintf(sc.scope, sizeof sc.scope, "%s", SESSION_SCOPE);
    snprintf(sc.constitution_hash, sizeof sc.constitution_hash, "%s", hash);
    snprintf(sc.parent_jti, sizeof sc.parent_jti, "%s", bc.jti);
    sc.iat = now_s;
    sc.nbf = now_s;
    /* never outlives its bearer (review 11, M6) */
    sc.exp = now_s + e->cfg.token_ttl_default_s;
    if (sc.exp > bc.exp)
        sc.exp = bc.exp;
    if (sc.exp <= now_s) {   /* verified within the leeway, but nothing left to give */
        edge_respond_error(resp, 401, GOV_REASON_TOKEN_EXPIRED,
                           "the bearer token expires now: no session outlives it");
        edge_add_header(resp, "WWW-Authenticate",
                        "Bearer realm=\"gov-edge\", error=\"invalid_token\"");
        deny_headers(&d, resp);
        goto out;
    }
    if (gov_uuid_v7(sc.jti) != GOV_OK || (s = gov_calloc(1, sizeof *s)) == NULL) {
        edge_respond_error(resp, 503, GOV_REASON_INTERNAL_ERROR, "no session id");
        deny_headers(&d, resp);
        goto out;
    }
    s->d = d;        /* moved: the session owns the decision now */
    decided = 0;
    if (edge_token_mint(e, &sc, key, "session.started", s->d.decision_id, 0, resp,
                        session_answer, s, session_free) != 0)
        /* resp holds the error; the session (and the decision) is freed, so
         * only the deny header can be added */
        deny_headers(NULL, resp);
out:
    edge_idsnap_release(snap);
    if (decided)
        edge_decision_clear(&d);
    gov_policy_request_clear(&pr);
}
