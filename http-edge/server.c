/* server.c - libmicrohttpd glue and the router of gov-edge.
 *
 * libmicrohttpd runs an epoll thread pool (cfg.threads threads, each with its
 * own epoll set), with a per-connection timeout and a connection limit, bound
 * only to cfg.listen_addr.  The access callback accumulates the request body
 * into a per-connection buffer bounded by cfg.max_body (a larger
 * Content-Length is refused at once, a body that grows past it is drained
 * and refused), then builds an edge_request_t and calls the router.
 *
 * Error answers always have the JSON form {"error":{"code","message"}}.  The
 * router maps paths to handlers; an unknown path is 404, a known path with
 * another method 405 with an Allow header.
 *
 * What it does not do: TLS (the gateway in front terminates it), keep state
 * between requests, or block on anything but the snapshot mutex.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "edge.h"
#include "gov_alloc.h"
#include "gov_buf.h"
#include "gov_log.h"
#include "gov_time.h"
#include "gov_util.h"

struct edge_server {
    struct MHD_Daemon *daemon;
    edge_t *edge;
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
    memset(r, 0, sizeof *r);
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

static void serve_metrics(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    (void)req;
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
    const char *method;      /* GET routes also answer HEAD */
    const char *pattern[EDGE_MAX_SEGMENTS]; /* literal segments, "*" any, NULL ends */
    edge_handler_t handler;
} route_t;

static const route_t routes[] = {
    {"healthz", "GET", {"healthz"}, serve_healthz},
    {"readyz", "GET", {"readyz"}, serve_readyz},
    {"metrics", "GET", {"metrics"}, serve_metrics},
    {"constitution_list", "GET", {"v1", "constitution"}, edge_constitution_list},
    {"constitution", "GET", {"v1", "constitution", "*"}, edge_constitution_get},
    {"constitution_hash", "GET", {"v1", "constitution", "*", "hash"}, edge_constitution_get},
    {"constitution_document", "GET", {"v1", "constitution", "*", "document"}, edge_constitution_get},
    {"evaluate", "POST", {"v1", "evaluate"}, edge_evaluate},
    {"decision", "GET", {"v1", "decisions", "*", "*"}, edge_decision_get},
};

static int route_matches(const route_t *rt, const edge_request_t *req) {
    size_t n = 0;
    while (n < EDGE_MAX_SEGMENTS && rt->pattern[n])
        n++;
    if (n != req->nseg)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(rt->pattern[i], "*") != 0 && strcmp(rt->pattern[i], req->seg[i]) != 0)
            return 0;
    return 1;
}

void edge_route(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    const route_t *path_match = NULL;
    const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!route_matches(&routes[i], req))
            continue;
        path_match = &routes[i];
        if (strcmp(routes[i].method, method) == 0) {
            resp->route = routes[i].name;
            routes[i].handler(e, req, resp);
            return;
        }
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

typedef struct conn_ctx {
    gov_buf_t body; /* limit max_body: GOV_ERR_TOO_LARGE once past it */
    int too_large;  /* by Content-Length or by the body itself */
    int64_t started_us;
} conn_ctx_t;

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
    MHD_add_response_header(r, "Cache-Control", "no-store");
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    edge_t *e = cls;
    conn_ctx_t *cc = *con_cls;
    if (cc == NULL) {
        cc = gov_calloc(1, sizeof *cc);
        if (cc == NULL)
            return MHD_NO;
        cc->started_us = gov_mono_micros();
        gov_buf_init(&cc->body, (size_t)e->cfg.max_body);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)e->cfg.max_body)
            cc->too_large = 1;
        *con_cls = cc;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (!cc->too_large) {
            gov_buf_put(&cc->body, upload_data, n);
            if (cc->body.err == GOV_ERR_NOMEM)
                return MHD_NO;
            cc->too_large = cc->body.err == GOV_ERR_TOO_LARGE;
        }
        *upload_data_size = 0; /* consumed (or drained, when too large) */
        return MHD_YES;
    }

    edge_request_t req;
    memset(&req, 0, sizeof req);
    edge_response_t resp;
    memset(&resp, 0, sizeof resp);
    req.method = method;
    req.path = url;
    req.body = cc->body.data ? cc->body.data : "";
    req.body_len = cc->body.len;
    req.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    req.authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (cc->too_large) {
        resp.route = "too_large";
        edge_respond_error(&resp, 413, GOV_REASON_BODY_TOO_LARGE, "request body exceeds %ld bytes",
                           e->cfg.max_body);
    } else if (split_path(url, &req) != 0) {
        resp.route = "invalid_path";
        edge_respond_error(&resp, 400, GOV_REASON_INVALID_PATH, "the request path is not acceptable");
    } else {
        edge_route(e, &req, &resp);
    }
    for (size_t i = 0; i < req.nseg; i++)
        gov_free(req.seg[i]);
    return send_response(conn, e, &resp, cc->started_us);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    conn_ctx_t *cc = *con_cls;
    if (cc) {
        gov_buf_free(&cc->body);
        gov_free(cc);
        *con_cls = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
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
    unsigned timeout_s = (unsigned)((e->cfg.connection_timeout_ms + 999) / 1000);
    s->daemon = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)e->cfg.port, NULL, NULL,
        on_request, e,
        /* first, so that what the other options report is logged our way */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)e->cfg.threads,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)e->cfg.connection_limit,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_END);
    if (s->daemon == NULL) {
        snprintf(errbuf, errbuf_size, "cannot listen on %s:%ld", e->cfg.listen_addr, e->cfg.port);
        gov_free(s);
        return GOV_ERR_IO;
    }
    *out = s;
    return GOV_OK;
}

void edge_server_stop(edge_server_t *s) {
    if (s == NULL)
        return;
    MHD_stop_daemon(s->daemon);
    gov_free(s);
}
