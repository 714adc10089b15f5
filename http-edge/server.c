/* server.c - libmicrohttpd glue and the router of gov-edge.
 *
 * libmicrohttpd runs an epoll thread pool (cfg.threads threads, each with its
 * own epoll set), with a per-connection timeout and a connection limit, bound
 * only to cfg.listen_addr.
 *
 * Framing is strict and decided before any body byte is read (the rules are
 * gov_http's, pure): once the headers are in, the first call of the access
 * callback refuses
 *   - a request target with a control byte, a byte outside ASCII, a broken
 *     percent escape, or an escape that decodes to a control byte (%00) or,
 *     in the path, to '/' (400 invalid_path) - checked on the raw target from
 *     MHD_OPTION_URI_LOG_CALLBACK, since libmicrohttpd hands the access
 *     callback a decoded path cut at the first NUL;
 *   - more than one Content-Length, Content-Length that is not plain digits,
 *     Content-Length with Transfer-Encoding, a Transfer-Encoding other than
 *     "chunked" (400 invalid_framing: RFC 9112 section 6.3, the
 *     request-smuggling shapes);
 *   - a header field libmicrohttpd reads differently from RFC 9112:
 *     whitespace before the colon, an obs-fold continuation line, any name
 *     that is not a token, a control byte in a value (400 invalid_framing;
 *     RFC 9112 sections 5.1, 5.2 - see gov_http_field_check);
 *   - a declared Content-Length over cfg.max_body (413 body_too_large).
 * The answer is queued in that first call with "Connection: close", so
 * libmicrohttpd sends no "100 Continue", reads none of the body and closes
 * the connection after the answer: bytes after a misread header are never
 * taken for a second request.  A chunked body that grows past max_body is drained and refused
 * (413), and cut off unanswered once it runs max_body past the limit.
 *
 * Handlers marked "lookup" in the route table wait on Redis (GET
 * /v1/decisions, the token endpoints, /v1/authz, /v1/sessions/start).
 * They never run on the HTTP threads: the connection is suspended, queued
 * to a lane's threads of their own, and resumed with the answer, so a slow
 * or unreachable Redis never delays /v1/evaluate.  A route marked
 * LOOKUP_ON_DEMAND (token issuance) runs on the HTTP thread and goes to a
 * lookup thread only when its handler asks (edge_respond_lookup: the
 * client record is not cached), where it runs again from the start.
 * Two lanes, each its own queue and threads (REVIEW11 H2): the policy
 * routes (ROUTE_POLICY: the gateway's check and session start;
 * cfg.policy_lookup_threads/queue) and the general lane for the rest
 * (cfg.lookup_threads/queue) - so a flood of the token endpoints, which
 * anyone can call, fills the general queue only and never refuses a
 * gateway check.  Session start, which anyone can call through the
 * gateway too, may fill at most half of the policy queue (ROUTE_LANE_HALF),
 * so the checks always keep the other half.  A check that needs no lookup
 * - no bearer token (401), no gateway credential (403) - is answered on
 * the HTTP thread before it is queued (ROUTE_CHECK; REVIEW12 M2), so an
 * anonymous flood through the gateway, or straight at the edge, takes no
 * place in the policy lane.  A full queue is 503
 * lookup_capacity at once, counted per route
 * (edge_lookup_queue_full_total) and logged once per episode.
 *
 * Policy routes fail closed on every path (REVIEW11 L1, L2): every non-2xx
 * answer in their path area - handler, framing, 413, 404/405, a full lane
 * - carries X-Policy-Decision: deny (send_response), and a request that
 * names Authorization, Content-Digest or an X-Original-* header twice is
 * refused (400 duplicate_header) before any lookup.
 *
 * Deferred answers (edge_defer): a handler that waits on Kafka
 * acknowledgements (token issuance, sessions) hands its response to the
 * completion and returns at once, releasing its thread.  The connection is
 * suspended and resumed by whichever of two "arms" finishes last: the
 * server's (after the handler returned, on the thread that ran it) and the
 * completion's (edge_deferred_finish, usually on the Kafka delivery-report
 * thread).  libmicrohttpd allows MHD_resume_connection from any thread when
 * it owns its event loop (internal threads with an inter-thread channel),
 * and the resumed connection is processed by the pool thread that owns it,
 * after that thread's current callback returns - so the request context
 * (conn_ctx) lives until both arms are done and the answer is sent: a
 * suspended connection is neither read nor timed out, and a client that
 * closed meanwhile is noticed only when the answer is written, after which
 * on_completed frees the context.  Nothing can free it under a completion.
 * At most cfg.deferred_max at once (503 deferred_capacity beyond, one WARN
 * per episode; main.c keeps it at most connection_limit/4, so deferred
 * answers can never hold every connection and /v1/evaluate and /v1/authz
 * keep theirs during a Kafka stall - REVIEW11 H1).  Stopping the server
 * refuses new ones (503 shutting_down), waits cfg.shutdown_grace for those
 * in flight, then purges the producer so the rest complete (503) before
 * the daemon stops (edge_server_stop).  Every refusal is counted in
 * edge_deferred_refused_total{reason}; the gauge edge_deferred_requests
 * is read from the count when /metrics is rendered.
 *
 * Error answers always have the JSON form {"error":{"code","message"}}.  The
 * router maps paths to handlers; an unknown path is 404, a known path with
 * another method 405 with an Allow header.
 *
 * What it does not do: TLS (the gateway in front terminates it), keep state
 * between requests, or block an HTTP thread on anything but the snapshot
 * mutex and the lookup queue's mutex.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "edge.h"
#include "gov_alloc.h"
#include "gov_buf.h"
#include "gov_http.h"
#include "gov_log.h"
#include "gov_time.h"
#include "gov_util.h"

typedef struct conn_ctx conn_ctx_t;

/* One lookup lane: its threads and their queue (FIFO of suspended
 * connections), at most capacity waiting. */
typedef struct lookup_pool {
    const char *name;     /* "general", "policy": in logs */
    edge_server_t *server;
    size_t capacity;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    conn_ctx_t *head, *tail;
    size_t queued;
    size_t queued_half;   /* of them, ROUTE_LANE_HALF requests */
    int stopping;
    size_t nthreads;      /* started */
    pthread_t *threads;
    /* the current queue-full episode (under mu): open from the first
     * refusal until LANE_EPISODE_GAP_US passes without one */
    int full;
    int64_t last_refused_us;   /* monotonic */
    uint64_t refused;          /* in this episode */
} lookup_pool_t;

struct edge_server {
    struct MHD_Daemon *daemon;
    edge_t *edge;
    lookup_pool_t lookups;  /* the general lane: decisions, tokens */
    lookup_pool_t policy;   /* the policy lane: authz, session_start (ROUTE_POLICY) */
    gov_metric_t *m_lookups;     /* edge_lookups_total{route} */
    gov_metric_t *m_queue_full;  /* edge_lookup_queue_full_total{route} */
    atomic_long deferred;   /* answers awaiting edge_deferred_finish; the gauge
                             * edge_deferred_requests is read from it when
                             * /metrics is rendered, never set by the movers */
    atomic_int stopping;    /* no new deferred answers */
    atomic_int refusing;    /* deferred_capacity episode: its WARN is logged */
    atomic_llong conn_limit_last_us; /* MHD's last "connection limit" line */
};

/* --- responses --------------------------------------------------------------- */

void edge_respond_json(edge_response_t *r, unsigned status, json_t *j) {
    gov_free(r->body);
    r->body = NULL;
    r->body_len = 0;
    r->status = status;
    r->content_type = "application/json";
    if (j != NULL) {
        r->body = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        json_decref(j);
    }
    if (r->body == NULL) {
        /* Out of memory: a fixed body, still in the documented form. */
        static const char oom[] = "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";
        r->status = 503;
        r->body = gov_strdup(oom);
    }
    r->body_len = r->body ? strlen(r->body) : 0;
}

void edge_respond_error(edge_response_t *r, unsigned status, gov_reason_t code,
                        const char *fmt, ...) {
    char msg[512];
    GOV_FORMAT_VA(msg, sizeof msg, fmt);
    /* Messages may quote input: keep them valid UTF-8. */
    char *clean = gov_utf8_sanitize(msg, sizeof msg);
    edge_respond_json(r, status, json_pack("{s:{s:s, s:s}}", "error", "code",
                                           gov_reason_code(code), "message",
                                           clean ? clean : "error"));
    gov_free(clean);
}

void edge_respond_oauth_error(edge_response_t *r, unsigned status, gov_reason_t code,
                              const char *fmt, ...) {
    char msg[512];
    GOV_FORMAT_VA(msg, sizeof msg, fmt);
    char *clean = gov_utf8_sanitize(msg, sizeof msg);
    edge_respond_json(r, status, json_pack("{s:s, s:s}", "error", gov_reason_code(code),
                                           "error_description", clean ? clean : "error"));
    gov_free(clean);
}

void edge_add_header(edge_response_t *r, const char *name, const char *value) {
    if (r->nheaders >= sizeof r->headers / sizeof r->headers[0])
        return;
    size_t n = strlen(name) + strlen(value) + 3;
    char *h = gov_malloc(n);
    if (h == NULL)
        return;
    snprintf(h, n, "%s: %s", name, value);
    r->headers[r->nheaders++] = h;
}

static void response_clear(edge_response_t *r) {
    gov_free(r->body);
    for (size_t i = 0; i < r->nheaders; i++)
        gov_free(r->headers[i]);
    void *ctx = r->server_ctx;
    memset(r, 0, sizeof *r);
    r->server_ctx = ctx;
}

const char *edge_request_header(const edge_request_t *req, const char *name) {
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

typedef struct header_walk {
    edge_header_fn fn;
    void *ctx;
    int rc;
} header_walk_t;

static enum MHD_Result header_walk_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value) {
    (void)kind;
    header_walk_t *w = cls;
    w->rc = w->fn(w->ctx, key, value ? value : "");
    return w->rc ? MHD_NO : MHD_YES;
}

int edge_request_headers(const edge_request_t *req, edge_header_fn fn, void *ctx) {
    header_walk_t w = {fn, ctx, 0};
    if (req->conn)
        MHD_get_connection_values(req->conn, MHD_HEADER_KIND, header_walk_one, &w);
    return w.rc;
}

/* --- built-in routes ----------------------------------------------------------- */

static void serve_healthz(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    (void)e;
    (void)req;
    edge_respond_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void serve_readyz(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    (void)req;
    int ready = 0;
    json_t *j = gov_status_to_json(e->status, &ready);
    edge_respond_json(resp, ready ? 200 : 503, j);
}

static long server_deferred_of(const edge_response_t *resp);

static void serve_metrics(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    (void)req;
    /* The gauge is taken from the count at collect time: set by the
     * threads that move the count, the last set could carry a value read
     * before another thread's move (REVIEW11 L3). */
    long deferred = server_deferred_of(resp);
    if (deferred >= 0)
        gov_metric_set(e->m_deferred, NULL, (double)deferred);
    char *text = NULL;
    size_t len = 0;
    if (gov_metrics_render(e->metrics, &text, &len) != GOV_OK) {
        edge_respond_error(resp, 503, GOV_REASON_OUT_OF_MEMORY, "metrics could not be rendered");
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = text;
    resp->body_len = len;
}

/* --- router -------------------------------------------------------------------- */

typedef void (*edge_handler_t)(edge_t *, const edge_request_t *, edge_response_t *);

typedef struct route {
    const char *name;        /* metric label */
    const char *method;      /* GET routes also answer HEAD; "*" any method */
    const char *pattern[EDGE_MAX_SEGMENTS]; /* literal segments, "*" any, a last "**" any
                                               number of them, NULL ends */
    edge_handler_t handler;
    int lookup;              /* waits on Redis: runs on a lookup thread; LOOKUP_ON_DEMAND:
                              * on the HTTP thread unless it asks (edge_respond_lookup) */
    unsigned flags;          /* ROUTE_* */
} route_t;

#define LOOKUP_ON_DEMAND 2
/* A policy route (the gateway's check, session start): its lookups run on
 * the policy lane, every non-2xx answer on its path carries
 * X-Policy-Decision: deny, and a request naming Authorization,
 * Content-Digest or an X-Original-* header twice is refused (400). */
#define ROUTE_POLICY 1u
/* An OAuth endpoint: the server's own refusals take the RFC 6749 shape. */
#define ROUTE_OAUTH 2u
/* May fill at most half of its lane's queue: /v1/sessions/start, which
 * anyone can call through the gateway, shares the policy lane with the
 * gateway's own checks, and must never be able to refuse them all. */
#define ROUTE_LANE_HALF 4u
/* The gateway's check: its refusals that need no lookup (no bearer token,
 * no gateway credential, a token that does not verify against the key
 * snapshot) are answered on the HTTP thread before it is queued
 * (edge_authz_early), so only checks holding a verified token fill the
 * policy lane (REVIEW12 M2, REVIEW13 M2). */
#define ROUTE_CHECK 8u

static const route_t routes[] = {
    {"healthz", "GET", {"healthz"}, serve_healthz, 0, 0},
    {"readyz", "GET", {"readyz"}, serve_readyz, 0, 0},
    {"metrics", "GET", {"metrics"}, serve_metrics, 0, 0},
    {"constitution_list", "GET", {"v1", "constitution"}, edge_constitution_list, 0, 0},
    {"constitution", "GET", {"v1", "constitution", "*"}, edge_constitution_get, 0, 0},
    {"constitution_hash", "GET", {"v1", "constitution", "*", "hash"}, edge_constitution_get, 0, 0},
    {"constitution_document", "GET", {"v1", "constitution", "*", "document"}, edge_constitution_get, 0, 0},
    {"evaluate", "POST", {"v1", "evaluate"}, edge_evaluate, 0, 0},
    {"decision", "GET", {"v1", "decisions", "*", "*"}, edge_decision_get, 1, 0},
    {"token_issue", "POST", {"v1", "tokens", "issue"}, edge_token_issue, LOOKUP_ON_DEMAND,
     ROUTE_OAUTH},
    {"token_verify", "POST", {"v1", "tokens", "verify"}, edge_token_verify, 1, 0},
    {"token_introspect", "POST", {"v1", "tokens", "introspect"}, edge_token_introspect, 1,
     ROUTE_OAUTH},
    {"token_revoke", "POST", {"v1", "tokens", "revoke"}, edge_token_revoke, 1, ROUTE_OAUTH},
    {"session_start", "POST", {"v1", "sessions", "start"}, edge_session_start, 1,
     ROUTE_POLICY | ROUTE_LANE_HALF},
    {"jwks", "GET", {".well-known", "jwks.json"}, edge_jwks, 0, 0},
    {"openid_configuration", "GET", {".well-known", "openid-configuration"},
     edge_openid_configuration, 0, 0},
    {"authz", "*", {"v1", "authz", "**"}, edge_authz, 1,
     ROUTE_POLICY | ROUTE_CHECK},
};

static int route_matches(const route_t *rt, const edge_request_t *req) {
    size_t n = 0;
    while (n < EDGE_MAX_SEGMENTS && rt->pattern[n])
        n++;
    /* a last "**" takes any number of segments (Envoy's path after /v1/authz) */
    if (n > 0 && strcmp(rt->pattern[n - 1], "**") == 0) {
        if (req->nseg < --n)
            return 0;
    } else if (n != req->nseg) {
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(rt->pattern[i], "*") != 0 && strcmp(rt->pattern[i], req->seg[i]) != 0)
            return 0;
    return 1;
}

/* The route that serves req (path and method), or NULL; *path_match (may be
 * NULL) is set to a route with that path and any method. */
static const route_t *route_find(const edge_request_t *req, const route_t **path_match) {
    const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!route_matches(&routes[i], req))
            continue;
        if (path_match)
            *path_match = &routes[i];
        if (strcmp(routes[i].method, "*") == 0 || strcmp(routes[i].method, method) == 0)
            return &routes[i];
    }
    return NULL;
}

/* 1 when the decoded path url lies in a policy route's area: its first two
 * non-empty segments are those of a ROUTE_POLICY pattern (/v1/authz...,
 * /v1/sessions/...), whatever follows and whatever the method, so that a
 * 404, a 405 or a framing refusal there says deny as well.  Empty segments
 * are skipped as split_path skips them.  Allocates nothing; O(strlen(url)). */
static int path_is_policy(const char *url) {
    const char *seg[2];
    size_t len[2], n = 0;
    for (const char *p = url; n < 2 && p && *p;) {
        p += strspn(p, "/");
        if (*p == '\0')
            break;
        seg[n] = p;
        len[n] = strcspn(p, "/");
        p += len[n++];
    }
    if (n < 2)
        return 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route_t *rt = &routes[i];
        if (!(rt->flags & ROUTE_POLICY) || rt->pattern[0] == NULL || rt->pattern[1] == NULL)
            continue;
        if (strlen(rt->pattern[0]) == len[0] && memcmp(rt->pattern[0], seg[0], len[0]) == 0 &&
            strlen(rt->pattern[1]) == len[1] && memcmp(rt->pattern[1], seg[1], len[1]) == 0)
            return 1;
    }
    return 0;
}

void edge_route(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    const route_t *path_match = NULL;
    const route_t *rt = route_find(req, &path_match);
    if (rt) {
        resp->route = rt->name;
        rt->handler(e, req, resp);
        return;
    }
    if (path_match) {
        resp->route = path_match->name;
        edge_respond_error(resp, 405, GOV_REASON_METHOD_NOT_ALLOWED, "%s is not allowed here",
                           req->method);
        edge_add_header(resp, "Allow", strcmp(path_match->method, "GET") == 0 ? "GET, HEAD"
                                                                               : path_match->method);
        return;
    }
    resp->route = "unknown";
    edge_respond_error(resp, 404, GOV_REASON_NOT_FOUND, "no such endpoint");
}

/* --- libmicrohttpd glue ----------------------------------------------------------- */

/* One request's state, made by the URI callback (before the headers). */
struct conn_ctx {
    gov_buf_t body;        /* limit max_body: GOV_ERR_TOO_LARGE once past it */
    int too_large;         /* by the body itself (chunked) */
    uint64_t drained;      /* bytes read and dropped since too_large */
    int bad_target;        /* the raw request target is not acceptable */
    char *target;          /* the raw request target, as sent (req.target) */
    char target_error[128];
    int headers_checked;   /* the first access call happened */
    int answered;          /* a lookup thread or a completion filled resp */
    int deferred;          /* the handler called edge_defer (its thread only) */
    int needs_lookup;      /* edge_respond_lookup: run again on a lookup thread
                            * (the handler's thread only, before it returns) */
    int policy;            /* the path is a policy route's (path_is_policy) */
    int lane_half;         /* queued as a ROUTE_LANE_HALF request */
    atomic_int arms;       /* deferred: server + completion; the last resumes */
    edge_server_t *server;
    int64_t started_us;
    struct MHD_Connection *conn;
    edge_request_t req;    /* its segments are owned here */
    edge_response_t resp;
    conn_ctx_t *next;      /* lookup queue */
};

/* Splits the (already percent-decoded) path into segments; -1 when there
 * are too many or a segment is not valid UTF-8. */
static int split_path(const char *path, edge_request_t *req) {
    req->nseg = 0;
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0) {
            if (req->nseg >= EDGE_MAX_SEGMENTS || !gov_utf8_valid(p, n))
                return -1;
            req->seg[req->nseg] = gov_strndup(p, n);
            if (req->seg[req->nseg] == NULL)
                return -1;
            req->nseg++;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

static enum MHD_Result send_response(struct MHD_Connection *conn, edge_t *e,
                                     edge_response_t *resp, int64_t started_us) {
    struct MHD_Response *r = MHD_create_response_from_buffer(resp->body_len, resp->body,
                                                             MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        response_clear(resp);
        return MHD_NO;
    }
    resp->body = NULL; /* owned by libmicrohttpd now (freed with free) */
    MHD_add_response_header(r, "Content-Type", resp->content_type ? resp->content_type
                                                                  : "application/json");
    /* no-store unless the handler chose a cache policy (the JWKS) */
    int cache_set = 0, decision_set = 0;
    for (size_t i = 0; i < resp->nheaders; i++) {
        cache_set |= strncasecmp(resp->headers[i], "Cache-Control:", 14) == 0;
        decision_set |= strncasecmp(resp->headers[i], "X-Policy-Decision:", 18) == 0;
    }
    if (!cache_set)
        MHD_add_response_header(r, "Cache-Control", "no-store");
    /* A policy route fails closed on every path (REVIEW11 L2): an answer
     * that is not 2xx says deny even when no handler ran (framing, 413,
     * 404/405, a full lane), so a gateway reading only this header never
     * takes a refusal for a pass. */
    const conn_ctx_t *owner = resp->server_ctx;
    if (owner != NULL && owner->policy && (resp->status < 200 || resp->status > 299) &&
        !decision_set)
        MHD_add_response_header(r, "X-Policy-Decision", "deny");
    for (size_t i = 0; i < resp->nheaders; i++) {
        char *colon = strchr(resp->headers[i], ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        MHD_add_response_header(r, resp->headers[i], colon + 2);
    }
    enum MHD_Result ret = MHD_queue_response(conn, resp->status, r);
    MHD_destroy_response(r);
    char code[8];
    snprintf(code, sizeof code, "%u", resp->status);
    const char *route = resp->route ? resp->route : "unknown";
    gov_metric_inc(e->m_requests, (const char *[]){route, code}, 1);
    gov_metric_observe(e->m_duration, (const char *[]){route},
                       (double)(gov_mono_micros() - started_us) / 1e6);
    response_clear(resp);
    return ret;
}

/* What refuse_early learns from the header fields: the framing headers
 * (duplicates included: the iterator sees every occurrence, lookups only the
 * first) and the first field gov_http_field_check refuses. */
typedef struct header_scan {
    gov_http_framing_t framing;
    int bad_field;
    char detail[160];
} header_scan_t;

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
    (void)kind;
    header_scan_t *h = cls;
    if (!h->bad_field && gov_http_field_check(key, value, NULL, h->detail, sizeof h->detail) !=
                             GOV_OK)
        h->bad_field = 1;
    if (strcasecmp(key, "Content-Length") == 0) {
        h->framing.content_length_count++;
        h->framing.content_length = value;
    } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
        h->framing.transfer_encoding_count++;
        h->framing.transfer_encoding = value;
    }
    return MHD_YES;
}

/* Decides on the target and the headers alone (gov_http) whether the
 * request is refused before its body: fills resp and returns 1 when it is.
 * Every such answer closes the connection ("Connection: close"): when a
 * field was misread, what follows the headers may be a body we lost track
 * of, and must never be read as another request.  O(total header bytes). */
static int refuse_early(edge_t *e, struct MHD_Connection *conn, const conn_ctx_t *cc,
                        edge_response_t *resp) {
    header_scan_t h;
    memset(&h, 0, sizeof h);
    if (cc->bad_target) {
        resp->route = "invalid_path";
        edge_respond_error(resp, 400, GOV_REASON_INVALID_PATH, "%s", cc->target_error);
        goto refused;
    }
    MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header, &h);
    if (h.bad_field) {
        resp->route = "invalid_framing";
        edge_respond_error(resp, 400, GOV_REASON_INVALID_FRAMING, "%s", h.detail);
        goto refused;
    }
    gov_reason_t why = GOV_REASON_NONE;
    gov_err_t err = gov_http_framing_check(&h.framing, (uint64_t)e->cfg.max_body, NULL, &why,
                                           h.detail, sizeof h.detail);
    if (err == GOV_OK)
        return 0;
    int too_large = why == GOV_REASON_BODY_TOO_LARGE;
    resp->route = too_large ? "too_large" : "invalid_framing";
    edge_respond_error(resp, too_large ? 413 : 400, why, "%s", h.detail);
refused:
    edge_add_header(resp, "Connection", "close");
    return 1;
}

/* What refuse_duplicate_headers counts: the headers a policy decision
 * reads, each of which must come at most once. */
typedef struct policy_headers {
    unsigned authorization, content_digest;
    const char *original[16];   /* the distinct X-Original-* names seen */
    size_t noriginal;
    char detail[128];
} policy_headers_t;

/* edge_header_fn: stops at the first name seen twice (detail says which). */
static int count_policy_header(void *ctx, const char *name, const char *value) {
    (void)value;
    policy_headers_t *h = ctx;
    if (strcasecmp(name, "Authorization") == 0) {
        if (h->authorization++ == 0)
            return 0;
    } else if (strcasecmp(name, "Content-Digest") == 0) {
        if (h->content_digest++ == 0)
            return 0;
    } else if (strncasecmp(name, "X-Original-", 11) != 0) {
        return 0;
    } else {
        size_t i = 0;
        while (i < h->noriginal && strcasecmp(h->original[i], name) != 0)
            i++;
        if (i == h->noriginal && i < sizeof h->original / sizeof h->original[0]) {
            h->original[h->noriginal++] = name;
            return 0;
        }
        if (i == h->noriginal) {
            snprintf(h->detail, sizeof h->detail, "more than %zu distinct X-Original-* headers",
                     i);
            return 1;
        }
    }
    snprintf(h->detail, sizeof h->detail, "%.64s is sent more than once", name);
    return 1;
}

/* REVIEW11 L1: on a policy route, the decision reads the first
 * Authorization, Content-Digest and X-Original-* value, while a proxy or
 * upstream behind the gateway may read another: a request that names one
 * of them twice is refused (400 duplicate_header; send_response adds the
 * deny).  Returns 1 with resp filled when refused.  O(header fields). */
static int refuse_duplicate_headers(const edge_request_t *req, edge_response_t *resp) {
    const route_t *rt = route_find(req, NULL);
    if (rt == NULL || !(rt->flags & ROUTE_POLICY))
        return 0;
    policy_headers_t h;
    memset(&h, 0, sizeof h);
    if (edge_request_headers(req, count_policy_header, &h) == 0)
        return 0;
    resp->route = rt->name;
    edge_respond_error(resp, 400, GOV_REASON_DUPLICATE_HEADER, "%s", h.detail);
    return 1;
}

/* --- lookups on demand ------------------------------------------------------------ */

static _Thread_local int on_lookup_thread;

int edge_on_lookup_thread(void) { return on_lookup_thread; }

int edge_content_type_is(const char *ct, const char *want) {
    size_t n = strlen(want);
    if (ct == NULL || strncasecmp(ct, want, n) != 0)
        return 0;
    ct += n;
    ct += strspn(ct, " \t");   /* OWS before ";" */
    return *ct == '\0' || *ct == ';';
}

void edge_respond_lookup(edge_response_t *resp) {
    conn_ctx_t *cc = resp->server_ctx;
    if (cc != NULL)
        cc->needs_lookup = 1;
}

/* --- deferred answers ------------------------------------------------------------ */

void edge_deferred_refused(edge_t *e, edge_response_t *resp, gov_reason_t why, int oauth,
                           const char *msg) {
    gov_metric_inc(e->m_deferred_refused, (const char *[]){gov_reason_code(why)}, 1);
    if (oauth)
        edge_respond_oauth_error(resp, 503, why, "%s", msg);
    else
        edge_respond_error(resp, 503, why, "%s", msg);
    edge_add_header(resp, "Retry-After", "1");
}

edge_deferred_t *edge_defer(edge_response_t *resp, int oauth) {
    conn_ctx_t *cc = resp->server_ctx;
    edge_server_t *s = cc ? cc->server : NULL;
    gov_reason_t why = GOV_REASON_DEFERRED_CAPACITY;
    if (s != NULL) {
        edge_t *e = s->edge;
        /* counted up only below deferred_max, so the count (and the gauge
         * read from it) never passes it, not even for a moment */
        long n = atomic_load(&s->deferred);
        int got = 0;
        while (n < e->cfg.deferred_max &&
               !(got = atomic_compare_exchange_weak(&s->deferred, &n, n + 1))) {
        }
        /* stopping is read after the count is up, so a stop that waits for
         * the count to drain either sees this one or refuses it here */
        if (got && atomic_load(&s->stopping)) {
            atomic_fetch_sub(&s->deferred, 1);
            why = GOV_REASON_SHUTTING_DOWN;
        } else if (got) {
            cc->deferred = 1;
            atomic_store(&cc->arms, 2);
            if (atomic_load(&s->refusing) && atomic_exchange(&s->refusing, 0))
                gov_log(GOV_LOG_INFO, "deferred answers accepted again", (const char *)NULL);
            return (edge_deferred_t *)cc;
        } else if (atomic_load(&s->stopping)) {
            why = GOV_REASON_SHUTTING_DOWN;
        } else if (!atomic_exchange(&s->refusing, 1)) {
            char max[24];
            snprintf(max, sizeof max, "%ld", e->cfg.deferred_max);
            gov_log(GOV_LOG_WARN, "deferred answers at deferred_max: issuance and sessions "
                    "answer 503 deferred_capacity (logged once per episode; "
                    "edge_deferred_refused_total counts each)", "deferred_max", max,
                    (const char *)NULL);
        }
        edge_deferred_refused(e, resp, why, oauth, why == GOV_REASON_SHUTTING_DOWN
                              ? "this edge is stopping; try again (another replica)"
                              : "too many requests are awaiting their acknowledgements; "
                                "try again");
        return NULL;
    }
    if (oauth)
        edge_respond_oauth_error(resp, 503, why, "too many requests are awaiting their "
                                 "acknowledgements; try again");
    else
        edge_respond_error(resp, 503, why,
                           "too many requests are awaiting their acknowledgements; try again");
    return NULL;
}

/* The deferred count of the server that owns resp; -1 outside a server. */
static long server_deferred_of(const edge_response_t *resp) {
    const conn_ctx_t *cc = resp->server_ctx;
    return cc ? atomic_load(&cc->server->deferred) : -1;
}

edge_response_t *edge_deferred_response(edge_deferred_t *d) {
    return &((conn_ctx_t *)d)->resp;
}

/* Drops one arm of a deferred request; the last one resumes the connection
 * (the connection is suspended by then: the server suspends before it
 * drops its arm).  cc must not be touched after this: once resumed, the
 * connection's own thread may answer and free it. */
static void deferred_drop_arm(conn_ctx_t *cc) {
    struct MHD_Connection *conn = cc->conn;
    if (atomic_fetch_sub(&cc->arms, 1) == 1)
        MHD_resume_connection(conn);
}

void edge_deferred_finish(edge_deferred_t *d) {
    conn_ctx_t *cc = (conn_ctx_t *)d;
    edge_server_t *s = cc->server;
    cc->answered = 1;
    deferred_drop_arm(cc);
    /* last, and nothing of s after it: once the count reaches zero,
     * edge_server_stop may go on and free s (REVIEW11 M4) */
    atomic_fetch_sub(&s->deferred, 1);
}

/* An episode of refusals ends after this long without one. */
#define LANE_EPISODE_GAP_US (1000 * 1000)

/* Logs the start (WARN) or the end (INFO) of a lane's queue-full episode;
 * called outside the lane's mutex. */
static void lane_episode_log(const lookup_pool_t *lp, int start, const char *route,
                             uint64_t refused) {
    char cap[24], n[24];
    snprintf(cap, sizeof cap, "%zu", lp->capacity);
    snprintf(n, sizeof n, "%llu", (unsigned long long)refused);
    if (start)
        gov_log(GOV_LOG_WARN, "lookup lane full: refusing lookups (503 lookup_capacity)", "lane",
                lp->name, "route", route, "queue", cap, (const char *)NULL);
    else
        gov_log(GOV_LOG_INFO, "lookup lane accepts again", "lane", lp->name, "refused", n,
                (const char *)NULL);
}

/* Queues cc for a thread of lane lp and suspends its connection; 0 when the
 * queue is full - for a half request (ROUTE_LANE_HALF), when half of it
 * (at least 1) holds half requests already - or the lane is stopping (then
 * the caller answers 503).  Counts edge_lookups_total or
 * edge_lookup_queue_full_total for route, and logs one WARN per queue-full
 * episode. */
static int lookup_enqueue(lookup_pool_t *lp, conn_ctx_t *cc, const char *route, int half) {
    edge_server_t *s = lp->server;
    size_t half_max = lp->capacity / 2 > 0 ? lp->capacity / 2 : 1;
    pthread_mutex_lock(&lp->mu);
    if (lp->stopping) {
        pthread_mutex_unlock(&lp->mu);
        return 0;
    }
    if (lp->queued >= lp->capacity || (half && lp->queued_half >= half_max)) {
        int64_t now = gov_mono_micros();
        int start = !lp->full || now - lp->last_refused_us > LANE_EPISODE_GAP_US;
        if (start) {
            lp->full = 1;
            lp->refused = 0;
        }
        lp->refused++;
        lp->last_refused_us = now;
        pthread_mutex_unlock(&lp->mu);
        gov_metric_inc(s->m_queue_full, (const char *[]){route}, 1);
        if (start)
            lane_episode_log(lp, 1, route, 0);
        return 0;
    }
    /* Suspended before a lookup thread can see it, so the resume that
     * follows the answer always finds it suspended. */
    MHD_suspend_connection(cc->conn);
    cc->next = NULL;
    if (lp->tail)
        lp->tail->next = cc;
    else
        lp->head = cc;
    lp->tail = cc;
    lp->queued++;
    cc->lane_half = half;
    lp->queued_half += (size_t)half;
    pthread_cond_signal(&lp->cv);
    pthread_mutex_unlock(&lp->mu);
    gov_metric_inc(s->m_lookups, (const char *[]){route}, 1);
    return 1;
}

/* A lookup thread of lane arg: runs queued lookups until the lane stops
 * and its queue is empty (every suspended connection is resumed before it
 * exits). */
static void *lookup_main(void *arg) {
    lookup_pool_t *lp = arg;
    edge_server_t *s = lp->server;
    on_lookup_thread = 1;
    for (;;) {
        pthread_mutex_lock(&lp->mu);
        while (lp->head == NULL && !lp->stopping)
            pthread_cond_wait(&lp->cv, &lp->mu);
        conn_ctx_t *cc = lp->head;
        if (cc == NULL) {
            pthread_mutex_unlock(&lp->mu);
            return NULL;
        }
        lp->head = cc->next;
        if (lp->head == NULL)
            lp->tail = NULL;
        lp->queued--;
        lp->queued_half -= (size_t)cc->lane_half;
        uint64_t refused = 0;
        int ended = lp->full && gov_mono_micros() - lp->last_refused_us > LANE_EPISODE_GAP_US;
        if (ended) {
            lp->full = 0;
            refused = lp->refused;
        }
        pthread_mutex_unlock(&lp->mu);
        if (ended)
            lane_episode_log(lp, 0, NULL, refused);
        edge_route(s->edge, &cc->req, &cc->resp);
        if (cc->deferred) {
            deferred_drop_arm(cc); /* the completion answers (or did) */
            continue;
        }
        cc->answered = 1;
        MHD_resume_connection(cc->conn); /* its mutex orders the writes above */
    }
}

/* Initializes lane lp of s and starts its threads; on failure (errbuf
 * filled) the threads started so far run until lookup_pool_stop. */
static gov_err_t lookup_pool_start(edge_server_t *s, lookup_pool_t *lp, const char *name,
                                   long threads, long capacity, char *errbuf, size_t errbuf_size) {
    lp->server = s;
    lp->name = name;
    lp->threads = gov_calloc((size_t)threads, sizeof *lp->threads);
    if (lp->threads == NULL)
        return GOV_ERR_NOMEM;
    lp->capacity = (size_t)capacity;
    for (long i = 0; i < threads; i++) {
        if (pthread_create(&lp->threads[i], NULL, lookup_main, lp) != 0) {
            snprintf(errbuf, errbuf_size, "cannot start %s lookup thread %ld", name, i);
            return GOV_ERR_INTERNAL;
        }
        lp->nthreads++;
    }
    return GOV_OK;
}

static void lookup_pool_stop(lookup_pool_t *lp) {
    pthread_mutex_lock(&lp->mu);
    lp->stopping = 1;
    pthread_cond_broadcast(&lp->cv);
    pthread_mutex_unlock(&lp->mu);
    for (size_t i = 0; i < lp->nthreads; i++)
        pthread_join(lp->threads[i], NULL);
    gov_free(lp->threads);
    lp->threads = NULL;
    lp->nthreads = 0;
}

/* Called by libmicrohttpd with the raw request target, before the headers
 * are parsed; what it returns is the request's *con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    edge_server_t *s = cls;
    conn_ctx_t *cc = gov_calloc(1, sizeof *cc);
    if (cc == NULL)
        return NULL;
    cc->started_us = gov_mono_micros();
    cc->conn = conn;
    cc->server = s;
    cc->resp.server_ctx = cc;
    cc->bad_target = uri == NULL || gov_http_target_check(uri, strlen(uri), NULL, cc->target_error,
                                                          sizeof cc->target_error) != GOV_OK;
    /* kept as sent: libmicrohttpd decodes its copy in place and cuts the query off */
    cc->target = gov_strdup(uri ? uri : "");
    if (cc->target == NULL) {
        gov_free(cc);
        return NULL;
    }
    gov_buf_init(&cc->body, (size_t)s->edge->cfg.max_body);
    return cc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    edge_server_t *s = cls;
    edge_t *e = s->edge;
    conn_ctx_t *cc = *con_cls;
    if (cc == NULL)
        return MHD_NO; /* the URI callback was out of memory: close */
    if (!cc->headers_checked) {
        cc->headers_checked = 1;
        cc->policy = path_is_policy(url);
        /* Answered now or never early: an answer queued here is sent
         * without reading the body (and the connection is closed after). */
        if (refuse_early(e, conn, cc, &cc->resp))
            return send_response(conn, e, &cc->resp, cc->started_us);
        return MHD_YES;
    }
    if (cc->answered)
        return send_response(conn, e, &cc->resp, cc->started_us);
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (!cc->too_large) {
            gov_buf_put(&cc->body, upload_data, n);
            if (cc->body.err == GOV_ERR_NOMEM)
                return MHD_NO;
            cc->too_large = cc->body.err == GOV_ERR_TOO_LARGE;
        } else if ((cc->drained += n) > (uint64_t)e->cfg.max_body) {
            /* libmicrohttpd cannot answer in the middle of a body: a chunked
             * body is drained for its 413, but never more than max_body past
             * the limit - a stream that goes on is cut off unanswered. */
            gov_metric_inc(e->m_requests, (const char *[]){"too_large", "closed"}, 1);
            return MHD_NO;
        }
        *upload_data_size = 0; /* consumed (or drained, when too large) */
        return MHD_YES;
    }

    edge_request_t *req = &cc->req;
    edge_response_t *resp = &cc->resp;
    req->method = method;
    req->path = url;
    req->target = cc->target;
    req->body = cc->body.data ? cc->body.data : "";
    req->body_len = cc->body.len;
    req->content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    req->authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    req->conn = conn;
    if (cc->too_large) {
        resp->route = "too_large";
        edge_respond_error(resp, 413, GOV_REASON_BODY_TOO_LARGE, "request body exceeds %ld bytes",
                           e->cfg.max_body);
    } else if (split_path(url, req) != 0) {
        resp->route = "invalid_path";
        edge_respond_error(resp, 400, GOV_REASON_INVALID_PATH, "the request path is not acceptable");
    } else if (refuse_duplicate_headers(req, resp)) {
        /* resp holds the 400 (policy routes only) */
    } else {
        const route_t *rt = route_find(req, NULL);
        if (rt && (rt->flags & ROUTE_CHECK) && edge_authz_early(e, req, resp)) {
            resp->route = rt->name;   /* answered here: no lane taken (REVIEW12/13 M2) */
            return send_response(conn, e, resp, cc->started_us);
        }
        int queue = rt && rt->lookup == 1;
        if (!queue) {
            edge_route(e, req, resp);
            /* a LOOKUP_ON_DEMAND route asked; kept in cc, not in resp: a
             * deferred resp belongs to its completion once handed on */
            queue = cc->needs_lookup;
            cc->needs_lookup = 0;
            if (!queue && cc->deferred) {
                /* suspended before the arm is dropped, so the completion's
                 * resume (if it is the last) always finds it suspended */
                MHD_suspend_connection(conn);
                deferred_drop_arm(cc);
                return MHD_YES;
            }
        }
        if (queue) {
            const char *route = rt ? rt->name : "unknown";
            lookup_pool_t *lane = rt && (rt->flags & ROUTE_POLICY) ? &s->policy : &s->lookups;
            if (lookup_enqueue(lane, cc, route, rt && (rt->flags & ROUTE_LANE_HALF)))
                return MHD_YES; /* resumed with cc->answered set */
            response_clear(resp);
            resp->route = route;
            if (rt && (rt->flags & ROUTE_OAUTH))
                edge_respond_oauth_error(resp, 503, GOV_REASON_LOOKUP_CAPACITY,
                                         "too many lookups waiting; try again");
            else
                edge_respond_error(resp, 503, GOV_REASON_LOOKUP_CAPACITY,
                                   "too many lookups waiting; try again");
            edge_add_header(resp, "Retry-After", "1");
        }
    }
    return send_response(conn, e, resp, cc->started_us);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    conn_ctx_t *cc = *con_cls;
    if (cc) {
        for (size_t i = 0; i < cc->req.nseg; i++)
            gov_free(cc->req.seg[i]);
        response_clear(&cc->resp);
        gov_buf_free(&cc->body);
        gov_free(cc->target);
        gov_free(cc);
        *con_cls = NULL;
    }
}

/* libmicrohttpd logs "Server reached connection limit" once per connection
 * it accepts and closes at the limit (at the limit it mostly stops
 * accepting, but the workers of the pool race on the shared listening
 * socket): at a thousand requests a second that can be a flood hiding
 * everything else.  Those lines are counted
 * (edge_connection_limit_refused_total) and logged once per episode - a
 * run of them with gaps under CONN_LIMIT_EPISODE_US.  Every other line
 * goes out as it is. */
#define CONN_LIMIT_EPISODE_US (10 * 1000000LL)

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    edge_server_t *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (s != NULL && strncmp(msg, "Server reached connection limit", 31) == 0) {
        gov_metric_inc(s->edge->m_conn_limited, NULL, 1);
        long long now = (long long)gov_mono_micros();
        long long prev = atomic_exchange(&s->conn_limit_last_us, now);
        if (prev != 0 && now - prev < CONN_LIMIT_EPISODE_US)
            return;
        char limit[24];
        snprintf(limit, sizeof limit, "%ld", s->edge->cfg.connection_limit);
        gov_log(GOV_LOG_WARN, "connection limit reached: new connections are closed at once "
                "(logged once per episode; edge_connection_limit_refused_total counts each)",
                "source", "libmicrohttpd", "connection_limit", limit, (const char *)NULL);
        return;
    }
    gov_log(GOV_LOG_WARN, msg, "source", "libmicrohttpd", (const char *)NULL);
}

gov_err_t edge_server_start(edge_t *e, edge_server_t **out, char *errbuf, size_t errbuf_size) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)e->cfg.port);
    if (inet_pton(AF_INET, e->cfg.listen_addr, &sa.sin_addr) != 1) {
        snprintf(errbuf, errbuf_size, "listen_addr %s is not an IPv4 address", e->cfg.listen_addr);
        return GOV_ERR_CONFIG;
    }
    edge_server_t *s = gov_calloc(1, sizeof *s);
    if (s == NULL)
        return GOV_ERR_NOMEM;
    s->edge = e;
    lookup_pool_t *const lanes[] = {&s->lookups, &s->policy};
    for (size_t i = 0; i < 2; i++) {
        pthread_mutex_init(&lanes[i]->mu, NULL);
        pthread_cond_init(&lanes[i]->cv, NULL);
    }
    gov_err_t err = GOV_ERR_NOMEM;
    s->m_lookups = gov_metrics_counter(e->metrics, "edge_lookups_total",
        "Requests queued to a lookup lane (they wait on Redis), by route.", 1,
        (const char *[]){"route"});
    s->m_queue_full = gov_metrics_counter(e->metrics, "edge_lookup_queue_full_total",
        "Requests refused (503 lookup_capacity) because their lookup lane's queue was full, "
        "by route.", 1, (const char *[]){"route"});
    if (s->m_lookups == NULL || s->m_queue_full == NULL) {
        snprintf(errbuf, errbuf_size, "cannot register the lookup metrics");
        goto fail;
    }
    /* Two lanes: a flood of one route family (token endpoints, which
     * anyone can call) cannot fill the queue of the gateway's check. */
    err = lookup_pool_start(s, &s->lookups, "general", e->cfg.lookup_threads,
                            e->cfg.lookup_queue, errbuf, errbuf_size);
    if (err == GOV_OK)
        err = lookup_pool_start(s, &s->policy, "policy", e->cfg.policy_lookup_threads,
                                e->cfg.policy_lookup_queue, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto fail;
    unsigned timeout_s = (unsigned)((e->cfg.connection_timeout_ms + 999) / 1000);
    s->daemon = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME,
        (uint16_t)e->cfg.port, NULL, NULL, on_request, s,
        /* first, so that what the other options report is logged our way */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)e->cfg.threads,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)e->cfg.connection_limit,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_END);
    if (s->daemon == NULL) {
        snprintf(errbuf, errbuf_size, "cannot listen on %s:%ld", e->cfg.listen_addr, e->cfg.port);
        err = GOV_ERR_IO;
        goto fail;
    }
    *out = s;
    return GOV_OK;
fail:
    for (size_t i = 0; i < 2; i++) {
        lookup_pool_stop(lanes[i]);
        pthread_cond_destroy(&lanes[i]->cv);
        pthread_mutex_destroy(&lanes[i]->mu);
    }
    gov_free(s);
    return err;
}

/* Waits up to ms for the deferred count to reach zero; 1 when it did. */
static int deferred_drain(edge_server_t *s, long ms) {
    int64_t give_up = gov_mono_micros() + (int64_t)ms * 1000;
    while (atomic_load(&s->deferred) > 0 && gov_mono_micros() < give_up) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&s->deferred) == 0;
}

/* How long a stop waits for the completions after purging the producer:
 * the purge runs them itself; this covers a handler between edge_defer
 * and its group's seal. */
#define STOP_AFTER_PURGE_MS 5000

void edge_server_stop(edge_server_t *s) {
    if (s == NULL)
        return;
    /* Deferred answers first (REVIEW11 M4): new ones are refused (503
     * shutting_down); those in flight get shutdown_grace to complete by
     * themselves.  What is left is purged from the producer while the
     * daemon, s and the state are alive, so every group's completion runs
     * now (its client gets 503) - never later, from gov_runtime_shutdown's
     * producer_free, on freed memory - and the daemon is stopped only once
     * no connection is suspended (libmicrohttpd panics on one).  Then the
     * lookups: queued ones are answered and their connections resumed
     * (each bounded by the lookup timeout), later ones get 503 at once. */
    edge_t *e = s->edge;
    atomic_store(&s->stopping, 1);
    char n[24];
    snprintf(n, sizeof n, "%ld", atomic_load(&s->deferred));
    gov_log(GOV_LOG_INFO, "stopping: new deferred answers are refused (shutting_down)",
            "pending", n, (const char *)NULL);
    if (!deferred_drain(s, e->cfg.shutdown_grace_ms)) {
        snprintf(n, sizeof n, "%ld", atomic_load(&s->deferred));
        gov_log(GOV_LOG_WARN, "deferred answers pending at shutdown: purging their Kafka "
                "messages (their clients get 503)", "count", n, (const char *)NULL);
        gov_kafka_producer_purge(e->producer, STOP_AFTER_PURGE_MS);
        if (!deferred_drain(s, STOP_AFTER_PURGE_MS)) {
            /* Not reached while every group completes (gov_kafka's
             * contract); stopping the daemon now would abort in
             * libmicrohttpd, so it is left to the exit. */
            snprintf(n, sizeof n, "%ld", atomic_load(&s->deferred));
            gov_log(GOV_LOG_ERROR, "deferred answers still pending after the purge; the "
                    "HTTP server is left to the process exit", "count", n, (const char *)NULL);
            return;
        }
    }
    lookup_pool_stop(&s->lookups);
    lookup_pool_stop(&s->policy);
    MHD_stop_daemon(s->daemon);
    pthread_cond_destroy(&s->lookups.cv);
    pthread_mutex_destroy(&s->lookups.mu);
    pthread_cond_destroy(&s->policy.cv);
    pthread_mutex_destroy(&s->policy.mu);
    gov_free(s);
}
