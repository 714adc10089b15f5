/* gov_admin.c - the admin HTTP server of every binary.
 *
 * Readiness comes from a gov_status set (gov_status.c), metrics from a
 * gov_metrics registry; both are borrowed.
 *
 * Server: libmicrohttpd with its own polling thread (epoll when the library
 * has it, select otherwise), bound only to the given address
 * (MHD_OPTION_SOCK_ADDR), with a connection limit and an idle timeout.  The
 * handler answers on its first call: it routes on the path (unknown: 404),
 * then on the method (not GET/HEAD: 405 with Allow), then builds the body.
 * JSON bodies are built with jansson and dumped into gov_malloc memory;
 * MHD frees them through gov_free.  When even the error body cannot be
 * allocated, a static one is sent.
 *
 * What it does not do: TLS, authentication (bind it to loopback), request
 * bodies, keep-alive tuning.  Port 0 is refused: the API has no way to report
 * the port the kernel would pick.
 */
#include "gov_admin.h"
#include "gov_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "gov_alloc.h"
#include "gov_log.h"

#define ADMIN_CONNECTION_LIMIT 64u
#define ADMIN_CONNECTION_TIMEOUT_S 10u

#define CONTENT_TYPE_JSON "application/json"
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"


/* ------------------------------------------------------------------------ */
/* HTTP                                                                      */

struct gov_admin {
    struct MHD_Daemon *daemon;
    gov_status_t *status;
    gov_metrics_t *metrics;
};

static const char oom_body[] =
    "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";

static void free_body(void *body) {
    gov_free(body);
}

/* Returns a new gov_malloc buffer with the compact JSON of value (no NUL
 * needed by MHD, but one is added), or NULL. */
static char *json_dump_new(const json_t *value, size_t *len) {
    size_t n = json_dumpb(value, NULL, 0, JSON_COMPACT);
    if (n == 0)
        return NULL;
    char *buf = gov_malloc(n + 1);
    if (buf == NULL)
        return NULL;
    if (json_dumpb(value, buf, n, JSON_COMPACT) != n) {
        gov_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Queues status + body.  Steals body (a gov_malloc buffer); a NULL body means
 * "allocation failed": a static 500 body is sent instead. */
static enum MHD_Result send_take(struct MHD_Connection *conn, unsigned status,
                                 const char *content_type, char *body, size_t len,
                                 int allow_header) {
    struct MHD_Response *resp;
    if (body == NULL) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        content_type = CONTENT_TYPE_JSON;
        resp = MHD_create_response_from_buffer(sizeof(oom_body) - 1, (void *)oom_body,
                                               MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer_with_free_callback(len, body, free_body);
        if (resp == NULL)
            gov_free(body);
    }
    if (resp == NULL)
        return MHD_NO;
    enum MHD_Result ret = MHD_NO;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
        (allow_header &&
         MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES))
        goto out;
    ret = MHD_queue_response(conn, status, resp);
out:
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status,
                                 json_t *value_take, int allow_header) {
    size_t len = 0;
    char *body = value_take ? json_dump_new(value_take, &len) : NULL;
    json_decref(value_take);
    return send_take(conn, status, CONTENT_TYPE_JSON, body, len, allow_header);
}

/* The error body of docs/contracts.md: {"error":{"code","message"}}. */
static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status,
                                  const char *code, const char *message,
                                  int allow_header) {
    json_t *body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    return send_json(conn, status, body, allow_header);
}

static enum MHD_Result serve_healthz(struct MHD_Connection *conn) {
    return send_json(conn, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"), 0);
}

static enum MHD_Result serve_readyz(struct MHD_Connection *conn, gov_admin_t *admin) {
    int ready = 0;
    json_t *body = gov_status_to_json(admin->status, &ready);
    return send_json(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body, 0);
}

static enum MHD_Result serve_metrics(struct MHD_Connection *conn, gov_admin_t *admin) {
    char *text = NULL;
    size_t len = 0;
    gov_err_t err = gov_metrics_render(admin->metrics, &text, &len);
    if (err != GOV_OK)
        return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, gov_err_code(err),
                          gov_err_str(err), 0);
    return send_take(conn, MHD_HTTP_OK, CONTENT_TYPE_METRICS, text, len, 0);
}

/* Answers every request on the first call (no request body is ever read). */
static enum MHD_Result admin_handle(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version, const char *upload_data,
                                    size_t *upload_data_size, void **req_cls) {
    gov_admin_t *admin = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;

    enum { ROUTE_NONE, ROUTE_HEALTHZ, ROUTE_READYZ, ROUTE_METRICS } route = ROUTE_NONE;
    if (strcmp(url, "/healthz") == 0)
        route = ROUTE_HEALTHZ;
    else if (strcmp(url, "/readyz") == 0)
        route = ROUTE_READYZ;
    else if (strcmp(url, "/metrics") == 0)
        route = ROUTE_METRICS;

    if (route == ROUTE_NONE)
        return send_error(conn, MHD_HTTP_NOT_FOUND, gov_err_code(GOV_ERR_NOT_FOUND),
                          "no such endpoint; try /healthz, /readyz or /metrics", 0);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                          "only GET and HEAD are allowed", 1);
    switch (route) {
    case ROUTE_HEALTHZ:
        return serve_healthz(conn);
    case ROUTE_READYZ:
        return serve_readyz(conn, admin);
    case ROUTE_METRICS:
        return serve_metrics(conn, admin);
    case ROUTE_NONE:
        break;
    }
    return MHD_NO;
}

/* libmicrohttpd's diagnostics go to our JSON-lines log. */
static void admin_log(void *cls, const char *fmt, va_list ap) {
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    gov_log(GOV_LOG_WARN, "admin http server", "detail", msg, NULL);
}

gov_err_t gov_admin_start(const char *addr, unsigned port, gov_status_t *status,
                          gov_metrics_t *metrics, gov_admin_t **out,
                          char *errbuf, size_t errbuf_size) {
    gov_err_t err = GOV_OK;
    gov_admin_t *admin = NULL;
    struct sockaddr_storage ss;
    char scratch[1];
    if (errbuf == NULL || errbuf_size == 0) {
        errbuf = scratch;
        errbuf_size = sizeof(scratch);
    }
    errbuf[0] = '\0';
    if (out)
        *out = NULL;
    if (addr == NULL || out == NULL || status == NULL || metrics == NULL) {
        snprintf(errbuf, errbuf_size, "admin: missing argument");
        return GOV_ERR_INVALID_ARG;
    }
    if (port == 0 || port > 65535) {
        snprintf(errbuf, errbuf_size, "admin: port %u out of range 1..65535", port);
        return GOV_ERR_INVALID_ARG;
    }

    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
        flags |= MHD_USE_EPOLL;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(errbuf, errbuf_size, "admin: address \"%.64s\" is not a numeric IPv4 or IPv6 address",
                 addr);
        return GOV_ERR_INVALID_ARG;
    }

    admin = gov_calloc(1, sizeof(*admin));
    if (admin == NULL) {
        err = GOV_ERR_NOMEM;
        snprintf(errbuf, errbuf_size, "admin: out of memory");
        goto out;
    }
    admin->status = status;
    admin->metrics = metrics;
    errno = 0;
    admin->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, admin_handle, admin,
        /* the logger first, so that no option's message escapes it */
        MHD_OPTION_EXTERNAL_LOGGER, admin_log, (void *)NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, ADMIN_CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_CONNECTION_TIMEOUT_S,
        MHD_OPTION_END);
    if (admin->daemon == NULL) {
        int saved = errno;
        char reason[128];
        err = GOV_ERR_IO;
        snprintf(errbuf, errbuf_size, "admin: cannot listen on %s:%u: %s", addr, port,
                 saved ? strerror_r(saved, reason, sizeof(reason))
                       : "libmicrohttpd could not start");
        goto out;
    }
    *out = admin;
    admin = NULL;
out:
    gov_free(admin);
    return err;
}

void gov_admin_stop(gov_admin_t *admin) {
    if (admin == NULL)
        return;
    MHD_stop_daemon(admin->daemon);
    gov_free(admin);
}
