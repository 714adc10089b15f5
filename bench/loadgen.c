/* loadgen - constant-rate HTTP/1.1 load generator without coordinated omission.
 *
 *   loadgen --url http://HOST:PORT/PATH --bodies FILE [--wrap-input]
 *           --rate R [--duration S] [--warmup S] [--connections C]
 *           [--drain S] [--name NAME] [--out FILE]
 *   loadgen --url http://HOST:PORT/PATH --form BODY [--basic ID:SECRET] [--expect-token]
 *           --closed-loop [--duration S] [--warmup S] [--connections C] ...
 *
 * Why it exists: wrk (Debian's 4.1) is closed-loop - each connection sends
 * its next request when the previous answer arrives - so it measures the
 * most a server can do, and when the server stalls it simply sends less,
 * hiding the stall from its percentiles (coordinated omission).  The target
 * "p95 <= 1 ms at 10,000 requests/s" is about a fixed offered load, which
 * wrk2 would provide, but wrk2 is not packaged in Debian.  So this program:
 *
 *   - schedules request k at start + k / R (an open-loop schedule that does
 *     not care how fast answers come back);
 *   - sends it on a free keep-alive connection (C of them, TCP_NODELAY), or
 *     queues it until one is free;
 *   - measures its latency from the INTENDED send time to the last byte of
 *     the answer, so time spent queued (because the server was slow to free
 *     connections) or late (because this process did not get the CPU) counts
 *     against the measurement, never in its favour.
 *
 * One thread, epoll, a timerfd armed (absolute, CLOCK_MONOTONIC) at the next
 * scheduled send.  Bodies are one JSON a line (gen_requests), cycled in
 * order; --wrap-input sends {"input": <line>} (Open Policy Agent's data API).
 * Answers are parsed as HTTP/1.1 (Content-Length or chunked); any status
 * other than 200, a closed or failed connection, or an answer not complete
 * --drain seconds (default 5) after the end of the schedule is an error.
 * Requests scheduled during the warm-up are sent but not recorded.  Requests
 * still unanswered at the end are counted as errors ("unfinished") and enter
 * the percentiles with the time they had waited so far (a lower bound).
 *
 * --closed-loop (instead of --rate) measures the most a server delivers at a
 * fixed concurrency, as wrk does, but ends cleanly: each of the C
 * connections sends its next request as soon as its answer arrived, until
 * the end of the measured window; then every request in flight is awaited
 * (up to --drain s), so every request sent has its answer read.  That is
 * what makes a count of what the server did (the TokenIssued events of
 * bench/run.sh's token benchmarks) comparable with what was received:
 * wrk drops the answers in flight at its end.  Latency is from the actual
 * send.
 *
 * Token issuance (RFC 6749 §4.4): --form BODY posts one
 * application/x-www-form-urlencoded body ("grant_type=client_credentials&
 * scope=..") for every request, --basic ID:SECRET adds HTTP Basic client
 * authentication (RFC 6749 §2.3.1: id and secret form-urlencoded, then
 * base64), and --expect-token checks EVERY answer, warm-up included: status
 * 200 and a JSON object whose "token_type" is Bearer and whose
 * "access_token" is a compact JWS, three strict base64url parts
 * (gov_b64url) whose header and payload decode to JSON objects, the header
 * naming "alg" and the payload carrying a numeric "exp".  Any other answer
 * is a bad token ("tokens_bad", and an error when measured);
 * "tokens_received" counts the good ones over the whole run.
 *
 * Sessions: --bearer TOKEN adds "Authorization: Bearer TOKEN" to every
 * --bodies request, and --expect-session checks every answer as for
 * --expect-token but for POST /v1/sessions/start: status 201, a session_id
 * and a compact JWS "token" (counted in tokens_received).
 *
 * throughput_rps is the delivered rate: answers (to any request, warm-up
 * ones included) received during the measured window, per second.
 *
 * Output (--out, else stdout): one JSON object {"name","mode":"fixed-rate",
 * "target_rps","throughput_rps","p50_ms","p95_ms","p99_ms","p999_ms",
 * "max_ms","mean_ms","concurrency","duration_s","warmup_s","requests",
 * "completed","errors","unfinished","status","send_lag_p50_ms",
 * "send_lag_p99_ms","send_lag_max_ms","backlog_max","command"}.  send_lag is
 * actual send time minus intended time: near zero when the generator keeps
 * up and the server frees connections in time.  With --closed-loop, "mode"
 * is "closed-loop" (no target_rps, no send_lag); with --expect-token the
 * object adds "tokens_received" and "tokens_bad".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench_util.h"
#include "gov_b64url.h"

typedef enum { C_DOWN = 0, C_CONNECTING, C_IDLE, C_BUSY } cstate_t;

typedef struct conn {
    int fd;
    cstate_t st;
    const char *w;       /* request bytes being written */
    size_t wlen, woff;
    char *r;             /* response bytes */
    size_t rlen, rcap;
    int64_t intended_ns;
    int measured;
} conn_t;

typedef struct sample_vec {
    uint64_t *v;
    size_t n, cap;
} sample_vec_t;

static void push(sample_vec_t *s, uint64_t x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1 << 16;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (s->v == NULL) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(1);
        }
    }
    s->v[s->n++] = x;
}

/* --- configuration and state --------------------------------------------------- */

static struct sockaddr_in addr;
static char **reqs;          /* full HTTP requests */
static size_t *reqlen, nreqs;
static int ep;
static conn_t *conns;
static int nconns;

static sample_vec_t lat, lag;
static long long completed, errors, unfinished, status_counts[6];
static long long conn_failures;
/* --expect-token: every answer checked (warm-up included). */
static int expect_token;
static int expect_session;   /* --expect-session: 201 with a session token */
static int want_status = 200;
static long long tokens_received, tokens_bad;
/* Answers (any request's) received inside the measured window: the delivered rate. */
static long long window_answers;
static int64_t win_from, win_to;

/* Backlog: intended times (and the request index) of scheduled, unsent requests. */
typedef struct pending {
    int64_t t;
    size_t idx;
    int measured;
} pending_t;
static pending_t *q;
static size_t qhead, qlen, qcap, backlog_max;

static void q_push(pending_t p) {
    if (qlen == qcap) {
        size_t ncap = qcap ? qcap * 2 : 4096;
        pending_t *nq = malloc(ncap * sizeof *nq);
        if (nq == NULL) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < qlen; i++)
            nq[i] = q[(qhead + i) % qcap];
        free(q);
        q = nq;
        qcap = ncap;
        qhead = 0;
    }
    q[(qhead + qlen) % qcap] = p;
    qlen++;
    if (qlen > backlog_max)
        backlog_max = qlen;
}

static pending_t q_pop(void) {
    pending_t p = q[qhead];
    qhead = (qhead + 1) % qcap;
    qlen--;
    return p;
}

/* --- connections -------------------------------------------------------------------- */

static void conn_close(conn_t *c) {
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->st = C_DOWN;
    c->rlen = 0;
}

static int conn_open(conn_t *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->st = C_CONNECTING;
    c->rlen = 0;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void want_write(conn_t *c, int on) {
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void fail_request(conn_t *c) {
    if (c->measured) {
        errors++;
        status_counts[0]++;
        conn_failures++;
    }
    conn_close(c);
    conn_open(c);
}

static void try_write(conn_t *c) {
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->w + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_write(c, 1);
            return;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            fail_request(c);
            return;
        }
    }
    want_write(c, 0);
}

static void send_on(conn_t *c, pending_t p, int64_t now) {
    c->st = C_BUSY;
    c->w = reqs[p.idx];
    c->wlen = reqlen[p.idx];
    c->woff = 0;
    c->rlen = 0;
    c->intended_ns = p.t;
    c->measured = p.measured;
    if (p.measured)
        push(&lag, (uint64_t)(now > p.t ? now - p.t : 0));
    try_write(c);
}

/* Parses a complete HTTP/1.1 response at the start of c->r: returns its
 * length, 0 when incomplete, -1 when malformed.  *status, *close set. */
static long parse_response(const conn_t *c, int *status, int *close_after, size_t *body_off,
                           int *is_chunked) {
    const char *r = c->r;
    size_t n = c->rlen;
    const char *hend = memmem(r, n, "\r\n\r\n", 4);
    if (hend == NULL)
        return n > 65536 ? -1 : 0;
    size_t hlen = (size_t)(hend - r) + 4;
    if (n < 12 || memcmp(r, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(r + 9);
    *close_after = 0;
    long clen = -1;
    int chunked = 0;
    for (const char *line = (const char *)memchr(r, '\n', hlen) + 1; line < hend;) {
        const char *eol = memchr(line, '\n', (size_t)(hend + 2 - line));
        if (eol == NULL)
            break;
        if (strncasecmp(line, "content-length:", 15) == 0)
            clen = strtol(line + 15, NULL, 10);
        else if (strncasecmp(line, "transfer-encoding:", 18) == 0 &&
                 memmem(line, (size_t)(eol - line), "chunked", 7))
            chunked = 1;
        else if (strncasecmp(line, "connection:", 11) == 0 &&
                 memmem(line, (size_t)(eol - line), "close", 5))
            *close_after = 1;
        line = eol + 1;
    }
    *body_off = hlen;
    *is_chunked = chunked;
    if (chunked) {
        size_t off = hlen;
        for (;;) {
            const char *le = memmem(r + off, n - off, "\r\n", 2);
            if (le == NULL)
                return 0;
            long sz = strtol(r + off, NULL, 16);
            if (sz < 0)
                return -1;
            off = (size_t)(le - r) + 2;
            if (sz == 0) {
                /* trailers (none expected) end with an empty line */
                const char *te = memmem(r + off, n - off, "\r\n", 2);
                if (te == NULL)
                    return 0;
                return (long)((size_t)(te - r) + 2);
            }
            if (n - off < (size_t)sz + 2)
                return 0;
            off += (size_t)sz + 2;
        }
    }
    if (clen < 0)
        clen = 0;
    if (n < hlen + (size_t)clen)
        return 0;
    return (long)(hlen + (size_t)clen);
}

/* The body of a complete answer r[0..len) whose body starts at off, de-chunked
 * when chunked, into a NUL-terminated malloc'd string; NULL when malformed. */
static char *answer_body(const char *r, size_t len, size_t off, int chunked) {
    char *b = malloc(len - off + 1);
    if (b == NULL)
        return NULL;
    size_t n = 0;
    if (!chunked) {
        memcpy(b, r + off, len - off);
        n = len - off;
    } else {
        while (off < len) {
            const char *le = memmem(r + off, len - off, "\r\n", 2);
            long sz = le ? strtol(r + off, NULL, 16) : -1;
            if (sz < 0 || (size_t)(le - r) + 2 + (size_t)sz > len) {
                free(b);
                return NULL;
            }
            off = (size_t)(le - r) + 2;
            if (sz == 0)
                break;
            memcpy(b + n, r + off, (size_t)sz);
            n += (size_t)sz;
            off += (size_t)sz + 2;
        }
    }
    b[n] = '\0';
    return b;
}

/* One base64url JWS part that must decode to a JSON object holding member
 * `want` of type `type`. */
static int jws_part_ok(const char *p, size_t n, const char *want, json_type type) {
    uint8_t dec[8192];
    size_t dl = 0;
    if (n == 0 || gov_b64url_decode(p, n, dec, sizeof dec, &dl, NULL, 0) != GOV_OK)
        return 0;
    json_t *o = json_loadb((const char *)dec, dl, JSON_REJECT_DUPLICATES, NULL);
    json_t *v = json_object_get(o, want);
    int ok = json_is_object(o) && v != NULL && json_typeof(v) == type;
    json_decref(o);
    return ok;
}

/* A compact JWS whose header names alg and whose payload holds exp. */
static int jws_ok(const char *tok) {
    int ok = 0;
    if (tok) {
        const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
        size_t sl = d2 ? strlen(d2 + 1) : 0;
        uint8_t sig[1024];
        size_t dl = 0;
        ok = d2 && strchr(d2 + 1, '.') == NULL &&
             jws_part_ok(tok, (size_t)(d1 - tok), "alg", JSON_STRING) &&
             jws_part_ok(d1 + 1, (size_t)(d2 - d1 - 1), "exp", JSON_INTEGER) && sl > 0 &&
             gov_b64url_decode(d2 + 1, sl, sig, sizeof sig, &dl, NULL, 0) == GOV_OK;
    }
    return ok;
}

/* An RFC 6749 §5.1 answer carrying a compact JWS access token (see the
 * header), or with --expect-session a /v1/sessions/start answer: a
 * session_id and a compact JWS "token". */
static int token_ok(const char *body) {
    json_t *o = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
    int ok;
    if (expect_session) {
        ok = json_string_value(json_object_get(o, "session_id")) != NULL &&
             jws_ok(json_string_value(json_object_get(o, "token")));
    } else {
        const char *type = json_string_value(json_object_get(o, "token_type"));
        ok = type && strcasecmp(type, "bearer") == 0 &&
             jws_ok(json_string_value(json_object_get(o, "access_token")));
    }
    json_decref(o);
    return ok;
}

/* --expect-token: 1 when the answer r[0..len) is a good token answer. */
static int check_token_answer(const conn_t *c, long len, int status, size_t off, int chunked) {
    char *body = status == want_status ? answer_body(c->r, (size_t)len, off, chunked) : NULL;
    int ok = body != NULL && token_ok(body);
    if (ok) {
        tokens_received++;
    } else {
        if (tokens_bad++ == 0)
            fprintf(stderr, "loadgen: first bad token answer: status %d: %.300s\n", status,
                    body ? body : "(no body)");
    }
    free(body);
    return ok;
}

static void on_readable(conn_t *c, int64_t *now) {
    for (;;) {
        if (c->rcap - c->rlen < 16384) {
            c->rcap = c->rcap ? c->rcap * 2 : 65536;
            c->r = realloc(c->r, c->rcap);
            if (c->r == NULL) {
                fprintf(stderr, "loadgen: out of memory\n");
                exit(1);
            }
        }
        ssize_t n = recv(c->fd, c->r + c->rlen, c->rcap - c->rlen, 0);
        if (n > 0) {
            c->rlen += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* closed or failed */
        if (c->st == C_BUSY)
            fail_request(c);
        else {
            conn_close(c);
            conn_open(c);
        }
        return;
    }
    if (c->st != C_BUSY)
        return;
    int status = 0, close_after = 0, chunked = 0;
    size_t body_off = 0;
    long len = parse_response(c, &status, &close_after, &body_off, &chunked);
    if (len == 0)
        return;
    *now = bu_now_ns();
    if (*now >= win_from && *now < win_to)
        window_answers++;
    if (len < 0) {
        fail_request(c);
        return;
    }
    int good = !expect_token || check_token_answer(c, len, status, body_off, chunked);
    if (c->measured) {
        completed++;
        push(&lat, (uint64_t)(*now - c->intended_ns));
        int cls = status / 100;
        status_counts[cls >= 1 && cls <= 5 ? cls : 0]++;
        if (status != want_status || !good)
            errors++;
    }
    c->st = C_IDLE;
    c->rlen = 0;
    if (close_after) {
        conn_close(c);
        conn_open(c);
    }
}

static int parse_url(const char *url, char *host, size_t hsz, int *port, const char **path) {
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7, *colon = strchr(h, ':'), *slash = strchr(h, '/');
    if (colon == NULL || slash == NULL || colon > slash || (size_t)(colon - h) >= hsz)
        return -1;
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = '\0';
    *port = atoi(colon + 1);
    *path = slash;
    return *port > 0 && *port < 65536 ? 0 : -1;
}

/* RFC 6749 Appendix B form-urlencoding of s into out (3x + 1 bytes). */
static void form_encode(const char *s, char *out) {
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *out++ = (char)ch;
        } else if (ch == ' ') {
            *out++ = '+';
        } else {
            *out++ = '%';
            *out++ = hex[ch >> 4];
            *out++ = hex[ch & 15];
        }
    }
    *out = '\0';
}

/* "Authorization: Basic ...\r\n" for ID:SECRET (split at the first ':') into
 * out; -1 when it has no ':' or does not fit. */
static int basic_header(const char *cred, char *out, size_t size) {
    const char *colon = strchr(cred, ':');
    if (colon == NULL || strlen(cred) > 512)
        return -1;
    char id[520], enc[2 * 3 * 520 + 2], b64[2200];
    snprintf(id, sizeof id, "%.*s", (int)(colon - cred), cred);
    form_encode(id, enc);
    size_t n = strlen(enc);
    enc[n++] = ':';
    form_encode(colon + 1, enc + n);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)enc, (int)strlen(enc));
    int w = snprintf(out, size, "Authorization: Basic %s\r\n", b64);
    return w > 0 && (size_t)w < size ? 0 : -1;
}

static void usage(FILE *f) {
    fputs("usage: loadgen --url http://HOST:PORT/PATH --bodies FILE [--wrap-input] --rate R\n"
          "               [--duration S] [--warmup S] [--connections C] [--drain S]\n"
          "               [--name NAME] [--out FILE]\n"
          "       loadgen --url http://HOST:PORT/PATH --form BODY [--basic ID:SECRET]\n"
          "               [--expect-token] --closed-loop [--duration S] [--warmup S]\n"
          "               [--connections C] [--drain S] [--name NAME] [--out FILE]\n"
          "       loadgen --url http://HOST:PORT/v1/sessions/start --bodies FILE\n"
          "               --bearer TOKEN --expect-session --closed-loop [...]\n",
          f);
}

int main(int argc, char **argv) {
    const char *url = NULL, *bodies = NULL, *name = NULL, *out_path = NULL;
    const char *form = NULL, *basic = NULL, *bearer = NULL;
    double rate = 0, duration = 15, warmup = 3, drain = 5;
    int wrap = 0, closed = 0;
    nconns = 32;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},      {"bodies", required_argument, NULL, 'b'},
        {"wrap-input", no_argument, NULL, 'W'},     {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'}, {"warmup", required_argument, NULL, 'w'},
        {"connections", required_argument, NULL, 'c'}, {"drain", required_argument, NULL, 'D'},
        {"name", required_argument, NULL, 'n'},     {"out", required_argument, NULL, 'o'},
        {"form", required_argument, NULL, 'F'},     {"basic", required_argument, NULL, 'B'},
        {"expect-token", no_argument, NULL, 'T'},   {"closed-loop", no_argument, NULL, 'L'},
        {"bearer", required_argument, NULL, 'A'},   {"expect-session", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "u:b:Wr:d:w:c:D:n:o:F:B:TLA:Sh", opts, NULL)) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'b': bodies = optarg; break;
        case 'W': wrap = 1; break;
        case 'r': rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 'D': drain = atof(optarg); break;
        case 'n': name = optarg; break;
        case 'o': out_path = optarg; break;
        case 'F': form = optarg; break;
        case 'B': basic = optarg; break;
        case 'T': expect_token = 1; break;
        case 'L': closed = 1; break;
        case 'A': bearer = optarg; break;
        case 'S': expect_session = expect_token = 1; want_status = 201; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    char host[256];
    int port;
    const char *path;
    if (!url || (bodies == NULL) == (form == NULL) || (form && wrap) || (basic && !form) || (bearer && !bodies) || (bearer && strlen(bearer) > 8192) ||
        (closed ? rate != 0 : rate <= 0) || duration <= 0 || warmup < 0 || nconns < 1 ||
        nconns > 10000 || optind != argc || parse_url(url, host, sizeof host, &port, &path) != 0) {
        usage(stderr);
        return 2;
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: %s: an IPv4 address is expected\n", host);
        return 2;
    }

    if (name == NULL)
        name = closed ? "closed-loop" : "fixed-rate";
    char auth[2400] = "";
    if (basic && basic_header(basic, auth, sizeof auth) != 0) {
        fprintf(stderr, "loadgen: --basic wants ID:SECRET (at most 512 bytes)\n");
        return 2;
    }
    bu_lines_t lines = {0};
    if (form) { /* one request, sent every time */
        nreqs = 1;
        size_t cap = strlen(form) + strlen(path) + strlen(host) + strlen(auth) + 200;
        reqs = calloc(1, sizeof *reqs);
        reqlen = calloc(1, sizeof *reqlen);
        reqs[0] = malloc(cap);
        reqlen[0] = (size_t)snprintf(reqs[0], cap,
                                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\n%s"
                                     "Accept: application/json\r\n"
                                     "Content-Type: application/x-www-form-urlencoded\r\n"
                                     "Content-Length: %zu\r\n\r\n%s",
                                     path, host, port, auth, strlen(form), form);
    } else if (bu_read_lines(bodies, &lines) != 0) {
        return 1;
    }
    if (bodies) {
        nreqs = lines.n;
        reqs = calloc(nreqs, sizeof *reqs);
        reqlen = calloc(nreqs, sizeof *reqlen);
    }
    for (size_t i = 0; bodies && i < nreqs; i++) {
        size_t blen = lines.len[i] + (wrap ? 10 : 0);
        size_t cap = blen + strlen(path) + strlen(host) + (bearer ? strlen(bearer) : 0) + 240;
        reqs[i] = malloc(cap);
        int h = snprintf(reqs[i], cap,
                         "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                         "%s%s%sContent-Length: %zu\r\n\r\n%s%s%s",
                         path, host, port, bearer ? "Authorization: Bearer " : "",
                         bearer ? bearer : "", bearer ? "\r\n" : "", blen,
                         wrap ? "{\"input\":" : "", lines.line[i], wrap ? "}" : "");
        reqlen[i] = (size_t)h;
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
    conns = calloc((size_t)nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        if (conn_open(&conns[i]) != 0) {
            fprintf(stderr, "loadgen: cannot connect to %s\n", url);
            return 1;
        }
    }

    const double interval_ns = closed ? 0 : 1e9 / rate;
    int64_t start = bu_now_ns() + 200000000; /* connections settle for 200 ms */
    int64_t measure_from = start + (int64_t)(warmup * 1e9);
    int64_t end_sched = measure_from + (int64_t)(duration * 1e9);
    int64_t hard_end = end_sched + (int64_t)(drain * 1e9);
    win_from = measure_from;
    win_to = end_sched;
    unsigned long long k = 0;
    long long scheduled_measured = 0;
    struct epoll_event evs[256];

    for (;;) {
        int64_t now = bu_now_ns();
        if (closed) { /* each idle connection sends its next request at once */
            for (int i = 0; i < nconns && now >= start && now < end_sched; i++) {
                if (conns[i].st != C_IDLE)
                    continue;
                pending_t p = {.t = now, .idx = (size_t)(k++ % nreqs),
                               .measured = now >= measure_from};
                scheduled_measured += p.measured;
                send_on(&conns[i], p, now);
            }
        }
        /* schedule what is due */
        for (; !closed;) {
            int64_t t = start + (int64_t)((double)k * interval_ns);
            if (t > now || t >= end_sched)
                break;
            pending_t p = {.t = t, .idx = (size_t)(k % nreqs), .measured = t >= measure_from};
            scheduled_measured += p.measured;
            q_push(p);
            k++;
        }
        /* dispatch to idle connections */
        for (int i = 0; i < nconns && qlen > 0; i++)
            if (conns[i].st == C_IDLE)
                send_on(&conns[i], q_pop(), now);
        int busy = 0;
        for (int i = 0; i < nconns; i++)
            busy += conns[i].st == C_BUSY;
        int64_t next = closed ? (now < start ? start : end_sched)
                              : start + (int64_t)((double)k * interval_ns);
        if ((closed ? now >= end_sched : next >= end_sched) && qlen == 0 && busy == 0)
            break;
        if (now >= hard_end)
            break;
        /* arm the timer at the next scheduled send (or the hard end) */
        int64_t wake = next < end_sched && next > now ? next : hard_end;
        struct itimerspec its = {.it_value = {.tv_sec = wake / 1000000000,
                                              .tv_nsec = wake % 1000000000}};
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 1;
        }
        now = bu_now_ns();
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c == NULL) {
                uint64_t x;
                while (read(tfd, &x, sizeof x) > 0) {
                }
                continue;
            }
            if (c->fd < 0)
                continue;
            if (c->st == C_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0) {
                    fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
                    conn_failures++;
                    conn_close(c);
                    if (conn_failures > 1000) {
                        fprintf(stderr, "loadgen: too many connection failures\n");
                        return 1;
                    }
                    conn_open(c);
                    continue;
                }
                c->st = C_IDLE;
                want_write(c, 0);
                if (qlen > 0)
                    send_on(c, q_pop(), now);
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && c->st == C_BUSY && c->woff < c->wlen)
                try_write(c);
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                on_readable(c, &now);
            if (c->st == C_IDLE && qlen > 0)
                send_on(c, q_pop(), now);
        }
    }

    /* What is left: unanswered or never sent. */
    int64_t stop = bu_now_ns();
    for (int i = 0; i < nconns; i++)
        if (conns[i].st == C_BUSY && conns[i].measured) {
            unfinished++;
            push(&lat, (uint64_t)(stop - conns[i].intended_ns));
        }
    while (qlen > 0) {
        pending_t p = q_pop();
        if (p.measured) {
            unfinished++;
            push(&lat, (uint64_t)(stop - p.t));
        }
    }
    errors += unfinished;

    bu_sort_u64(lat.v, lat.n);
    bu_sort_u64(lag.v, lag.n);
    char command[4096];
    size_t o = 0;
    for (int i = 0; i < argc && o < sizeof command - 2; i++) {
        /* the client secret of --basic stays out of the results */
        int secret = i > 0 && strcmp(argv[i - 1], "--basic") == 0 && strchr(argv[i], ':');
        o += (size_t)snprintf(command + o, sizeof command - o, "%s%.*s%s", i ? " " : "",
                              secret ? (int)(strchr(argv[i], ':') - argv[i]) : (int)strlen(argv[i]),
                              argv[i], secret ? ":SECRET" : "");
    }
    json_t *e = json_object();
    json_object_set_new(e, "name", json_string(name));
    json_object_set_new(e, "mode", json_string(closed ? "closed-loop" : "fixed-rate"));
    json_object_set_new(e, "url", json_string(url));
    if (!closed)
        json_object_set_new(e, "target_rps", json_real(rate));
    json_object_set_new(e, "throughput_rps",
                        json_real((double)(long long)((double)window_answers / duration + 0.5)));
    bu_put_latency(e, lat.v, lat.n);
    json_object_set_new(e, "concurrency", json_integer(nconns));
    json_object_set_new(e, "duration_s", json_real(duration));
    json_object_set_new(e, "warmup_s", json_real(warmup));
    json_object_set_new(e, "requests", json_integer(scheduled_measured));
    json_object_set_new(e, "completed", json_integer(completed));
    json_object_set_new(e, "errors", json_integer(errors));
    json_object_set_new(e, "unfinished", json_integer(unfinished));
    json_object_set_new(e, "status", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "none",
                                               status_counts[0], "1xx", status_counts[1], "2xx",
                                               status_counts[2], "3xx", status_counts[3], "4xx",
                                               status_counts[4], "5xx", status_counts[5]));
    if (expect_token) {
        json_object_set_new(e, "tokens_received", json_integer(tokens_received));
        json_object_set_new(e, "tokens_bad", json_integer(tokens_bad));
    }
    if (!closed) {
        json_object_set_new(e, "send_lag_p50_ms",
                            json_real((double)bu_percentile(lag.v, lag.n, 50) / 1e6));
        json_object_set_new(e, "send_lag_p99_ms",
                            json_real((double)bu_percentile(lag.v, lag.n, 99) / 1e6));
        json_object_set_new(e, "send_lag_max_ms",
                            json_real(lag.n ? (double)lag.v[lag.n - 1] / 1e6 : 0));
        json_object_set_new(e, "backlog_max", json_integer((json_int_t)backlog_max));
    }
    json_object_set_new(e, "latency_from",
                        json_string(closed ? "actual send, per connection (closed loop, loadgen)"
                                           : "intended send time (open loop)"));
    json_object_set_new(e, "command", json_string(command));
    int rc = out_path ? json_dump_file(e, out_path, JSON_INDENT(1) | JSON_REAL_PRECISION(10))
                      : json_dumpf(e, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    fprintf(stderr,
            "loadgen: %s: %.0f rps %s, %lld completed, %lld errors, p50 %.3f ms, "
            "p95 %.3f ms, p99 %.3f ms\n",
            name, closed ? (double)window_answers / duration : rate,
            closed ? "delivered (closed loop)" : "offered", completed, errors,
            (double)bu_percentile(lat.v, lat.n, 50) / 1e6,
            (double)bu_percentile(lat.v, lat.n, 95) / 1e6,
            (double)bu_percentile(lat.v, lat.n, 99) / 1e6);
    if (expect_token)
        fprintf(stderr, "loadgen: %s: %lld tokens received (warm-up included), %lld bad answers\n",
                name, tokens_received, tokens_bad);
    json_decref(e);
    return rc == 0 && (!expect_token || tokens_bad == 0) ? 0 : 1;
}
