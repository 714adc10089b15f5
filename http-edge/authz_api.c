/* authz_api.c - /v1/authz: the gateway's question "may this request pass?"
 * (docs/api.md, "/v1/authz"; docs/contracts.md, "Gateway").
 *
 * Two callers speak it.  nginx auth_request sends GET /v1/authz with the
 * original request in X-Original-Method, X-Original-URI,
 * X-Original-Content-Length, X-Original-Transfer-Encoding and the client's
 * Content-Digest (deploy/nginx/gateway.conf.in).  Envoy ext_authz (HTTP
 * service, path_prefix "/v1/authz") sends the original method on the
 * original path below /v1/authz, with the body when with_request_body is on.
 *
 * How: the bearer token is verified (edge_token_check: signature, claims,
 * revocation, constitution binding; it reads Redis, so this handler runs on
 * a lookup thread); the tenant, user and session come from the token alone;
 * the original request is mapped to an evaluation request
 * (authz_request_build) and decided by edge_decide, the same path as
 * /v1/evaluate (the decision is logged as a PolicyDecision); then the
 * decision must be consistent (authz_decision_consistent): its constitution
 * current or in grace and the token's, its input_digest the digest of the
 * request asked about, computed here apart from the evaluation.
 * A check without any bearer token (401), when a gateway credential is
 * configured without that credential (403), or with a token that does not
 * verify against the in-memory key snapshot (401 with the token's reason;
 * signature and claims, no Redis) is answered by edge_authz_early, which
 * server.c asks on the HTTP thread before it queues the check: only a check
 * holding a verified token takes a place in the policy lane, so neither an
 * anonymous flood (REVIEW12 M2) nor one of junk bearer tokens (REVIEW13 M2)
 * can fill it.
 * Answers: 200 allow; 403 deny, review or an inconsistency; 401 no or a bad
 * token (WWW-Authenticate, RFC 6750); 503 anything that cannot be decided.
 * Every answer carries X-Policy-Decision (deny unless allowed), and once
 * there is a decision X-Policy-Score, X-Constitution-Hash,
 * X-Policy-Decision-Id and X-Policy-Input-Digest.
 *
 * What it does not do: pass anything it could not decide, take a tenant from
 * the client, or see the body of an nginx request (nginx does not give it to
 * an auth subrequest: the decision binds the Content-Digest, and the
 * upstream checks the body against it).
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "authz_request.h"
#include "edge.h"
#include "edge_identity.h"
#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_file.h"
#include "gov_log.h"
#include "gov_time.h"

#define AUTHZ_ROUTE "authz"
#define AUTHZ_PREFIX "/v1/authz"
#define REALM "soma-governance"
#define GRACE_MAX 16
/* The gateway credential: the header the gateway's check location sets
 * (deploy/nginx/gateway.conf.in), and the bounds of its value. */
#define CREDENTIAL_HEADER "X-Gov-Gateway-Credential"
#define CREDENTIAL_MIN 32
#define CREDENTIAL_MAX 256

/* Fills resp with a refusal that says deny: the error body, status, and
 * X-Policy-Decision: deny. */
static void deny(edge_response_t *resp, unsigned status, gov_reason_t why, const char *msg) {
    edge_respond_error(resp, status, why, "%s", msg);
    edge_add_header(resp, "X-Policy-Decision", "deny");
}

/* The token of "Authorization: Bearer <token>" (borrowed), or NULL. */
static const char *bearer(const char *authz) {
    if (authz == NULL || strncasecmp(authz, "Bearer ", 7) != 0)
        return NULL;
    authz += 7;
    while (*authz == ' ')
        authz++;
    return *authz ? authz : NULL;
}

/* 1 when scope (space-separated) holds want. */
static int scope_has(const char *scope, const char *want) {
    size_t n = strlen(want);
    for (const char *p = scope; p && *p;) {
        const char *end = strchr(p, ' ');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == n && memcmp(p, want, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* The 401 of a request without any bearer token: RFC 6750 section 3, no
 * error attribute when no token was sent. */
static void token_missing(edge_response_t *resp, const char *realm) {
    char h[320];
    deny(resp, 401, GOV_REASON_AUTHZ_TOKEN_MISSING, "send Authorization: Bearer <token>");
    snprintf(h, sizeof h, "Bearer realm=\"%s\"", realm);
    edge_add_header(resp, "WWW-Authenticate", h);
}

/* edge_bearer_check's body; full as edge_token_check's (0: the signature
 * and claims against the in-memory key snapshot only, no Redis - any
 * thread; 1: revocation and the constitution binding too - a lookup thread
 * only).  The scope is a claim, so it is checked in both. */
static int bearer_verify(edge_t *e, const edge_request_t *req, const char *realm,
                         const char *scope, int full, gov_jwt_claims_t *c,
                         edge_response_t *resp) {
    char eb[512], h[320];
    gov_reason_t why = GOV_REASON_NONE;
    const char *token = bearer(req->authorization);
    if (token == NULL) {
        token_missing(resp, realm);
        return -1;
    }
    gov_err_t err = edge_token_check(e, token, full, c, &why, eb, sizeof eb);
    if (err == GOV_ERR_VERIFY) {
        deny(resp, 401, why, eb);
        snprintf(h, sizeof h, "Bearer realm=\"%s\", error=\"invalid_token\", "
                 "error_description=\"%s\"", realm, gov_reason_code(why));
        edge_add_header(resp, "WWW-Authenticate", h);
        return -1;
    }
    if (err != GOV_OK) {
        gov_log(GOV_LOG_WARN, "the bearer token cannot be checked now", "path", req->path,
                "error", eb, (const char *)NULL);
        deny(resp, 503, GOV_REASON_IDENTITY_STORE_UNAVAILABLE,
             "the token cannot be checked now; denied");
        return -1;
    }
    if (scope && scope[0] && !scope_has(c->scope, scope)) {
        snprintf(eb, sizeof eb, "the token's scope lacks %s", scope);
        deny(resp, 403, GOV_REASON_INSUFFICIENT_SCOPE, eb);
        snprintf(h, sizeof h, "Bearer realm=\"%s\", error=\"insufficient_scope\", "
                 "scope=\"%.128s\"", realm, scope);
        edge_add_header(resp, "WWW-Authenticate", h);
        return -1;
    }
    return 0;
}

int edge_bearer_check(edge_t *e, const edge_request_t *req, const char *realm,
                      const char *scope, gov_jwt_claims_t *c, edge_response_t *resp) {
    return bearer_verify(e, req, realm, scope, 1, c, resp);
}

/* The outcome label of gateway_requests_total of a bearer refusal in resp. */
static const char *bearer_refusal_outcome(const edge_response_t *resp) {
    return resp->status == 401 ? "unauthenticated" : resp->status == 403 ? "deny" : "error";
}

/* edge_header_fn: stops at the first policy header, its name into ctx. */
static int forged_header(void *ctx, const char *name, const char *value) {
    (void)value;
    if (!authz_header_is_policy(name))
        return 0;
    snprintf(ctx, 128, "%.100s", name);
    return 1;
}

/* The original request as the caller describes it (borrowed from req). */
static void original_of(const edge_request_t *req, authz_original_t *o) {
    memset(o, 0, sizeof *o);
    o->content_digest = edge_request_header(req, "Content-Digest");
    o->body = req->body;
    o->body_len = req->body_len;
    o->uri = edge_request_header(req, "X-Original-URI");
    if (o->uri != NULL) { /* nginx auth_request */
        o->method = edge_request_header(req, "X-Original-Method");
        o->content_length = edge_request_header(req, "X-Original-Content-Length");
        o->transfer_encoding = edge_request_header(req, "X-Original-Transfer-Encoding");
        return;
    }
    /* Envoy ext_authz: the original method on <prefix><original target>,
     * which is never the bare prefix: a bare /v1/authz without
     * X-Original-URI is a gateway that forgot to say what it asks about,
     * refused (o->uri stays NULL) rather than taken for "/".  The raw
     * target, query included (review 11, M3): the same prompt as nginx's
     * X-Original-URI gives for the same request. */
    if (req->target == NULL || strncmp(req->target, AUTHZ_PREFIX "/", sizeof AUTHZ_PREFIX) != 0)
        return;
    o->method = req->method;
    o->uri = req->target + strlen(AUTHZ_PREFIX);
}

gov_err_t edge_authz_init(edge_t *e, char *errbuf, size_t errbuf_size) {
    const char *path = e->cfg.authz_gateway_credential_file;
    e->authz_credential = NULL;
    if (path == NULL || path[0] == '\0')
        return GOV_OK;
    char *s = NULL;
    size_t n = 0;
    gov_err_t err = gov_file_read(path, CREDENTIAL_MAX + 1, GOV_FILE_SECRET, &s, &n, errbuf,
                                  errbuf_size);
    if (err != GOV_OK)
        return err;
    if (n > 0 && s[n - 1] == '\n')
        s[--n] = '\0';
    int ok = n >= CREDENTIAL_MIN && n <= CREDENTIAL_MAX &&
             strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/=-") == n;
    if (!ok) {
        OPENSSL_cleanse(s, n);
        gov_free(s);
        snprintf(errbuf, errbuf_size, "%s: the gateway credential must be one line of %d-%d "
                 "bytes of [A-Za-z0-9._~+/=-]", path, CREDENTIAL_MIN, CREDENTIAL_MAX);
        return GOV_ERR_INVALID_ARG;
    }
    e->authz_credential = s;
    return GOV_OK;
}

void edge_authz_fini(edge_t *e) {
    if (e->authz_credential) {
        OPENSSL_cleanse(e->authz_credential, strlen(e->authz_credential));
        gov_free(e->authz_credential);
        e->authz_credential = NULL;
    }
}

/* 1 when the check carries the configured gateway credential (or none is
 * configured).  Compared in constant time over the configured length. */
static int from_gateway(const edge_t *e, const edge_request_t *req) {
    if (e->authz_credential == NULL)
        return 1;
    const char *got = edge_request_header(req, CREDENTIAL_HEADER);
    size_t n = strlen(e->authz_credential);
    return got != NULL && strlen(got) == n && CRYPTO_memcmp(got, e->authz_credential, n) == 0;
}

/* The tenant's current constitution hash into out ("" when none) and its
 * live grace entries into g/grace; returns how many. */
static size_t constitution_now(edge_t *e, const char *tenant, char *out, size_t out_size,
                               edge_grace_t *g, gov_jwt_grace_t *grace) {
    out[0] = '\0';
    edge_snapshot_t *s = edge_state_acquire(e->state);
    const edge_tenant_t *t = s ? edge_snapshot_find(s, tenant) : NULL;
    if (t)
        snprintf(out, out_size, "%s", t->constitution.checksum);
    if (s)
        edge_snapshot_release(s);
    size_t n = edge_identity_grace(e, tenant, g, GRACE_MAX);
    for (size_t i = 0; i < n; i++) {
        grace[i].hash = g[i].hash;
        grace[i].until_s = g[i].until_s;
    }
    return n;
}

/* The refusals of a check that read nothing but the request (REVIEW12 M2):
 * no bearer token (401 authz_token_missing, RFC 6750: before the credential,
 * so a gateway check without a token is told what to send), or a bearer
 * token without the configured gateway credential (403
 * authz_gateway_credential_invalid: a client that reached /v1/authz past the
 * gateway - review 11, M1; no token is looked at, nothing decided or logged).
 * The outcome label of gateway_requests_total with resp filled (deny), or
 * NULL when the check needs its lookup.  O(length of the headers). */
static const char *refuse_unread(const edge_t *e, const edge_request_t *req,
                                 edge_response_t *resp) {
    if (bearer(req->authorization) == NULL) {
        token_missing(resp, REALM);
        return "unauthenticated";
    }
    if (!from_gateway(e, req)) {
        deny(resp, 403, GOV_REASON_AUTHZ_GATEWAY_CREDENTIAL_INVALID,
             "/v1/authz answers the gateway only (" CREDENTIAL_HEADER ")");
        return "deny";
    }
    return NULL;
}

/* refuse_unread, then the bearer token against the in-memory key snapshot
 * (REVIEW13 M2): its signature, iss/aud/exp/nbf/lifetime and the required
 * scope, none of which reads Redis.  So a check whose token cannot verify -
 * "Bearer x", or a real kid over a bogus signature - is answered with the
 * same status and reason code as the late check would give (401 invalid_token
 * with the token_* code; 403 insufficient_scope; 503 when the keys are not
 * loaded) and never takes a place in the policy lane.  The late check
 * (authorize) verifies again in full: revocation and the constitution
 * binding read Redis and stay there.  Cost: at most one JWT parse and one
 * Ed25519 verification on the HTTP thread. */
static const char *refuse_early(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    const char *unread = refuse_unread(e, req, resp);
    if (unread != NULL)
        return unread;
    gov_jwt_claims_t c;
    if (bearer_verify(e, req, REALM, e->cfg.authz_required_scope, 0, &c, resp) != 0)
        return bearer_refusal_outcome(resp);
    return NULL;
}

/* Decides req into resp; returns the outcome label of gateway_requests_total. */
static const char *authorize(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    char eb[512];
    gov_reason_t why = GOV_REASON_NONE;
    const char *unread = refuse_unread(e, req, resp);
    if (unread != NULL)
        return unread;   /* on the HTTP thread already, normally (edge_authz_early) */
    gov_jwt_claims_t c;
    if (edge_bearer_check(e, req, REALM, e->cfg.authz_required_scope, &c, resp) != 0)
        return bearer_refusal_outcome(resp);
    gov_err_t err;
    char forged[128] = "";
    if (edge_request_headers(req, forged_header, forged) != 0) {
        char msg[192];
        snprintf(msg, sizeof msg, "the request carries %s: decisions come from the gateway only",
                 forged);
        deny(resp, 403, GOV_REASON_AUTHZ_POLICY_HEADER_FORGED, msg);
        return "deny";
    }
    authz_original_t o;
    original_of(req, &o);
    authz_caller_t who = {.tenant = c.tenant, .sub = c.sub, .jti = c.jti};
    json_t *doc = NULL;
    err = authz_request_build(&o, &who, &doc, &why, eb, sizeof eb);
    if (err != GOV_OK) {
        if (err == GOV_ERR_NOMEM) {
            deny(resp, 503, GOV_REASON_OUT_OF_MEMORY, "out of memory; denied");
            return "error";
        }
        deny(resp, 403, why, eb);
        return "deny";
    }
    /* The digest of the request asked about, apart from the evaluation's own. */
    char expected[GOV_CANON_HEX_MAX];
    char *text = json_dumps(doc, JSON_COMPACT);
    err = gov_canon_checksum(doc, GOV_CANON_JCS, "sha256", expected, NULL, NULL, 0);
    json_decref(doc);
    gov_policy_request_t pr;
    memset(&pr, 0, sizeof pr);
    if (text == NULL || err != GOV_OK ||
        gov_policy_request_parse(text, strlen(text), NULL, &pr, &why, eb, sizeof eb) != GOV_OK) {
        int refused = text != NULL && err == GOV_OK && why != GOV_REASON_NOMEM;
        gov_free(text);
        if (refused) {
            deny(resp, 403, GOV_REASON_AUTHZ_ORIGINAL_REQUEST_INVALID, eb);
            return "deny";
        }
        deny(resp, 503, GOV_REASON_OUT_OF_MEMORY, "out of memory; denied");
        return "error";
    }
    gov_free(text);

    edge_decision_t d;
    if (edge_decide(e, &pr, &d, resp) != 0) {
        gov_policy_request_clear(&pr);
        edge_add_header(resp, "X-Policy-Decision", "deny");
        return "error";
    }
    gov_policy_request_clear(&pr);

    char current[GOV_JWT_HASH_MAX + 1];
    edge_grace_t g[GRACE_MAX];
    gov_jwt_grace_t grace[GRACE_MAX];
    size_t ng = constitution_now(e, c.tenant, current, sizeof current, g, grace);
    const char *outcome;
    int consistent = authz_decision_consistent(d.tenant->constitution.checksum, current,
                                               c.constitution_hash, grace, ng,
                                               gov_now_micros() / 1000000, d.d.input_digest,
                                               expected, &why, eb, sizeof eb) == GOV_OK;
    if (!consistent) {
        gov_log(GOV_LOG_WARN, "authz: inconsistent decision denied", "tenant", c.tenant,
                "decision_id", d.decision_id, "reason", gov_reason_code(why), "error", eb,
                (const char *)NULL);
        edge_respond_error(resp, 403, why, "%s; denied", eb);
        outcome = "deny";
    } else if (d.d.decision == GOV_DECISION_ALLOW) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"decision\":\"allow\",\"score\":%s,\"decision_id\":\"%s\","
                 "\"constitution_hash\":\"%s\",\"input_digest\":\"%s\"}",
                 d.score, d.decision_id, d.tenant->constitution.checksum, d.d.input_digest);
        gov_free(resp->body);
        resp->body = gov_strdup(body);
        if (resp->body == NULL) {
            edge_decision_clear(&d);
            deny(resp, 503, GOV_REASON_OUT_OF_MEMORY, "out of memory; denied");
            return "error";
        }
        resp->body_len = strlen(resp->body);
        resp->status = 200;
        resp->content_type = "application/json";
        outcome = "allow";
    } else {
        int review = d.d.decision == GOV_DECISION_REVIEW;
        edge_respond_error(resp, 403, review ? GOV_REASON_AUTHZ_REVIEW_REQUIRED
                                             : GOV_REASON_AUTHZ_DENIED,
                           "the policy decision is %s", gov_decision_name(d.d.decision));
        outcome = review ? "review" : "deny";
    }
    if (consistent) {
        edge_decision_headers(&d, resp);   /* allow, review or deny as decided */
    } else {
        /* inconsistent: deny, whatever was evaluated */
        edge_add_header(resp, "X-Policy-Decision", "deny");
        edge_add_header(resp, "X-Policy-Score", d.score);
        edge_add_header(resp, "X-Constitution-Hash", d.tenant->constitution.checksum);
        edge_add_header(resp, "X-Policy-Decision-Id", d.decision_id);
    }
    edge_add_header(resp, "X-Policy-Input-Digest", d.d.input_digest);
    edge_decision_clear(&d);
    return outcome;
}

/* Counts one answered check in gateway_requests_total and its duration. */
static void count_check(edge_t *e, const char *outcome, int64_t t0) {
    gov_metric_inc(e->m_gw_requests, (const char *[]){AUTHZ_ROUTE, outcome}, 1);
    gov_metric_observe(e->m_gw_duration, NULL, (double)(gov_mono_micros() - t0) / 1e6);
}

void edge_authz(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    int64_t t0 = gov_mono_micros();
    count_check(e, authorize(e, req, resp), t0);
}

int edge_authz_early(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    int64_t t0 = gov_mono_micros();
    const char *outcome = refuse_early(e, req, resp);
    if (outcome == NULL)
        return 0;
    count_check(e, outcome, t0);
    return 1;
}
