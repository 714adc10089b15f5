/* fetch.c - one bounded, conditional GET of a bundle with libcurl.
 *
 * How it works: a fresh easy handle per fetch (a fetch every few minutes
 * gains nothing from keeping connections, and a fresh handle carries no
 * state from the last one).  The header callback tracks the status line of
 * each response in a redirect chain, keeps the final response's ETag and
 * refuses a 200 whose Content-Length is over the cap before any body byte is
 * read; the write callback refuses a body that grows over the cap (chunked
 * responses have no Content-Length) and does not read the body of a non-200
 * answer at all.  A pre-request callback records that a connection was made,
 * so a timeout is told apart from a peer that never answered the connect.
 *
 * What it does not do: interpret the body, retry (the caller's schedule
 * backs off), or decompress (no Accept-Encoding is sent, so the cap applies
 * to the bytes SomaBrain signs).
 */
#include "fetch.h"

#include <curl/curl.h>
#include <stdio.h>
#if LIBCURL_VERSION_NUM < 0x075500
#error "libcurl 7.85 or newer is needed (CURLOPT_PROTOCOLS_STR, CURLOPT_PREREQFUNCTION)"
#endif
#include <string.h>
#include <strings.h>

#include "gov_alloc.h"
#include "gov_buf.h"

typedef struct fetch_ctx {
    somabrain_fetch_result_t *res;
    size_t max_body;
    gov_buf_t body;             /* limit max_body; handed to res->body at the end */
    long status;                /* of the response being received */
    int too_large;
    int connected;
    int nomem;
    volatile sig_atomic_t *running;
} fetch_ctx_t;

int somabrain_etag_valid(const char *s, size_t len) {
    if (s == NULL || len == 0 || len > SOMABRAIN_ETAG_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* When line[0..len) is the header `name`, returns its value trimmed of
 * blanks and CRLF (*vlen bytes); else NULL. */
static const char *header_value(const char *line, size_t len, const char *name,
                                size_t *vlen) {
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return NULL;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *vlen = (size_t)(end - v);
    return v;
}

static size_t on_header(char *line, size_t size, size_t n, void *ud) {
    fetch_ctx_t *c = ud;
    size_t len = size * n, vlen;
    const char *v;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or a 1xx): forget the last one's. */
        const char *p = line + 5, *end = line + len;
        while (p < end && *p != ' ')
            p++;
        while (p < end && *p == ' ')
            p++;
        long st = 0;
        for (int i = 0; i < 3 && p < end && *p >= '0' && *p <= '9'; i++, p++)
            st = st * 10 + (*p - '0');
        c->status = st;
        c->res->etag[0] = '\0';
        return len;
    }
    if ((v = header_value(line, len, "etag", &vlen)) != NULL) {
        if (somabrain_etag_valid(v, vlen)) {
            memcpy(c->res->etag, v, vlen);
            c->res->etag[vlen] = '\0';
        } else {
            c->res->etag[0] = '\0'; /* unusable: fetch unconditionally next time */
        }
    } else if ((v = header_value(line, len, "content-length", &vlen)) != NULL &&
               c->status == 200) {
        unsigned long long cl = 0;
        int overflow = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return len; /* malformed: curl itself will refuse it */
            if (cl > (~0ULL - 9) / 10)
                overflow = 1;
            else
                cl = cl * 10 + (unsigned long long)(v[i] - '0');
        }
        if (overflow || cl > c->max_body) {
            c->too_large = 1;
            snprintf(c->res->detail, sizeof c->res->detail,
                     "Content-Length %.*s exceeds max_body %zu", (int)(vlen < 40 ? vlen : 40),
                     v, c->max_body);
            return 0; /* abort before reading the body */
        }
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    fetch_ctx_t *c = ud;
    somabrain_fetch_result_t *r = c->res;
    size_t len = size * n;
    if (c->status != 200)
        return 0; /* the status says it all; do not read an error page */
    gov_buf_put(&c->body, data, len);
    if (c->body.err == GOV_ERR_TOO_LARGE) {
        c->too_large = 1;
        snprintf(r->detail, sizeof r->detail, "body exceeds max_body %zu bytes", c->max_body);
        return 0;
    }
    if (c->body.err != GOV_OK) {
        c->nomem = 1;
        return 0;
    }
    return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    fetch_ctx_t *c = ud;
    return c->running != NULL && !*c->running; /* non-zero aborts */
}

static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port,
                     int local_port) {
    (void)primary_ip, (void)local_ip, (void)primary_port, (void)local_port;
    fetch_ctx_t *c = ud;
    c->connected = 1;
    return CURL_PREREQFUNC_OK;
}

static int is_tls_error(CURLcode cc) {
    switch (cc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return 1;
    default:
        return 0;
    }
}

/* Marks r failed with reason; detail (may be NULL) replaces the current one. */
static void fail(somabrain_fetch_result_t *r, gov_reason_t reason, const char *detail) {
    r->outcome = SOMABRAIN_FETCH_FAILED;
    r->reason = reason;
    if (detail != NULL)
        snprintf(r->detail, sizeof r->detail, "%s", detail);
}

/* Maps a finished transfer to the result. */
static void classify(fetch_ctx_t *c, CURLcode cc, const char *curl_err, int conditional) {
    somabrain_fetch_result_t *r = c->res;
    const char *msg = curl_err[0] ? curl_err : curl_easy_strerror(cc);
    char buf[96];
    r->http_status = c->status;
    if (cc == CURLE_ABORTED_BY_CALLBACK) {
        r->outcome = SOMABRAIN_FETCH_ABORTED;
        snprintf(r->detail, sizeof r->detail, "abandoned: shutting down");
        return;
    }
    if (c->nomem) {
        fail(r, GOV_REASON_TRANSFER_FAILED, "out of memory");
        return;
    }
    if (c->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
        fail(r, GOV_REASON_TOO_LARGE, r->detail[0] ? NULL : msg);
        return;
    }
    /* The write callback refuses the body of a non-200 answer: that is a
     * complete answer, not a transfer failure. */
    if (cc == CURLE_OK || (cc == CURLE_WRITE_ERROR && c->status != 200 && c->status != 0)) {
        if (c->status == 200) {
            r->outcome = SOMABRAIN_FETCH_BODY; /* the body is handed over by the caller */
            return;
        }
        if (c->status == 304 && conditional) {
            r->outcome = SOMABRAIN_FETCH_NOT_MODIFIED;
            return;
        }
        snprintf(buf, sizeof buf, "HTTP status %ld%s", c->status,
                 c->status == 304 ? " to an unconditional request" : "");
        fail(r, GOV_REASON_HTTP_STATUS, buf);
        return;
    }
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        r->http_status = 0;
        fail(r, GOV_REASON_UNREACHABLE, msg);
        return;
    case CURLE_OPERATION_TIMEDOUT:
        /* Never connected: the server is not reachable, it is not slow. */
        if (!c->connected)
            r->http_status = 0;
        fail(r, c->connected ? GOV_REASON_TIMEOUT : GOV_REASON_UNREACHABLE, msg);
        return;
    default:
        break;
    }
    fail(r, is_tls_error(cc) ? GOV_REASON_TLS : GOV_REASON_TRANSFER_FAILED, msg);
}

gov_err_t somabrain_fetch(const somabrain_fetch_opts_t *opts, const char *url,
                          const char *if_none_match, volatile sig_atomic_t *running,
                          somabrain_fetch_result_t *res) {
    gov_err_t err = GOV_OK;
    CURL *h = NULL;
    struct curl_slist *hdrs = NULL, *nh;
    char curl_err[CURL_ERROR_SIZE] = "";
    char inm[SOMABRAIN_ETAG_MAX + 32];
    memset(res, 0, sizeof *res);
    fetch_ctx_t c = {.res = res, .max_body = opts->max_body, .running = running};
    gov_buf_init(&c.body, opts->max_body);
    int conditional = if_none_match != NULL && if_none_match[0] != '\0';
    int https = strncasecmp(url, "https://", 8) == 0;

    if (conditional && !somabrain_etag_valid(if_none_match, strlen(if_none_match))) {
        snprintf(res->detail, sizeof res->detail, "unusable ETag");
        return GOV_ERR_INVALID_ARG;
    }
    if ((h = curl_easy_init()) == NULL) {
        snprintf(res->detail, sizeof res->detail, "curl_easy_init failed");
        return GOV_ERR_NOMEM;
    }
    if ((nh = curl_slist_append(hdrs, "Accept: application/json")) == NULL)
        goto nomem;
    hdrs = nh;
    if (conditional) {
        snprintf(inm, sizeof inm, "If-None-Match: %s", if_none_match);
        if ((nh = curl_slist_append(hdrs, inm)) == NULL)
            goto nomem;
        hdrs = nh;
    }
    /* A failing setopt here is a libcurl built without a needed feature. */
    CURLcode sc = CURLE_OK;
#define SET(opt, val) \
    do { if (sc == CURLE_OK) sc = curl_easy_setopt(h, opt, val); } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, https ? "https" : "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, 5L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (opts->ca_file != NULL && opts->ca_file[0] != '\0')
        SET(CURLOPT_CAINFO, opts->ca_file);
    SET(CURLOPT_CONNECTTIMEOUT_MS, opts->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, opts->total_timeout_ms);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_USERAGENT, "gov-somabrain-sync/1");
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, &c);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, &c);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, &c);
    SET(CURLOPT_PREREQFUNCTION, on_prereq);
    SET(CURLOPT_PREREQDATA, &c);
    SET(CURLOPT_ERRORBUFFER, curl_err);
#undef SET
    if (sc != CURLE_OK) {
        snprintf(res->detail, sizeof res->detail, "libcurl option refused: %s",
                 curl_easy_strerror(sc));
        err = GOV_ERR_INTERNAL;
        goto out;
    }
    CURLcode cc = curl_easy_perform(h);
    classify(&c, cc, curl_err, conditional);
    /* An empty 200 is a body too: "" (allocated, so it can fail). */
    if (res->outcome == SOMABRAIN_FETCH_BODY &&
        gov_buf_finish(&c.body, &res->body, &res->body_len) != GOV_OK)
        fail(res, GOV_REASON_TRANSFER_FAILED, "out of memory");
    goto out;
nomem:
    snprintf(res->detail, sizeof res->detail, "out of memory");
    err = GOV_ERR_NOMEM;
out:
    gov_buf_free(&c.body);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return err;
}

void somabrain_fetch_result_clear(somabrain_fetch_result_t *res) {
    if (res == NULL)
        return;
    gov_free(res->body);
    memset(res, 0, sizeof *res);
}
