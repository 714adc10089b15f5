/* loadgen - constant-rate HTTP/1.1 load generator without coordinated omission.
 *
 *   loadgen --url http://HOST:PORT/PATH --bodies FILE [--wrap-input]
 *           --rate R [--duration S] [--warmup S] [--connections C]
 *           [--drain S] [--name NAME] [--out FILE]
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
 * throughput_rps is the delivered rate: answers (to any request, warm-up
 * ones included) received during the measured window, per second.
 *
 * Output (--out, else stdout): one JSON object {"name","mode":"fixed-rate",
 * "target_rps","throughput_rps","p50_ms","p95_ms","p99_ms","p999_ms",
 * "max_ms","mean_ms","concurrency","duration_s","warmup_s","requests",
 * "completed","errors","unfinished","status","send_lag_p50_ms",
 * "send_lag_p99_ms","send_lag_max_ms","backlog_max","command"}.  send_lag is
 * actual send time minus intended time: near zero when the generator keeps
 * up and the server frees connections in time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench_util.h"

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
static long parse_response(const conn_t *c, int *status, int *close_after) {
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
    int status = 0, close_after = 0;
    long len = parse_response(c, &status, &close_after);
    if (len == 0)
        return;
    *now = bu_now_ns();
    if (*now >= win_from && *now < win_to)
        window_answers++;
    if (len < 0) {
        fail_request(c);
        return;
    }
    if (c->measured) {
        completed++;
        push(&lat, (uint64_t)(*now - c->intended_ns));
        int cls = status / 100;
        status_counts[cls >= 1 && cls <= 5 ? cls : 0]++;
        if (status != 200)
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

static void usage(FILE *f) {
    fputs("usage: loadgen --url http://HOST:PORT/PATH --bodies FILE [--wrap-input] --rate R\n"
          "               [--duration S] [--warmup S] [--connections C] [--drain S]\n"
          "               [--name NAME] [--out FILE]\n",
          f);
}

int main(int argc, char **argv) {
    const char *url = NULL, *bodies = NULL, *name = "fixed-rate", *out_path = NULL;
    double rate = 0, duration = 15, warmup = 3, drain = 5;
    int wrap = 0;
    nconns = 32;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},      {"bodies", required_argument, NULL, 'b'},
        {"wrap-input", no_argument, NULL, 'W'},     {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'}, {"warmup", required_argument, NULL, 'w'},
        {"connections", required_argument, NULL, 'c'}, {"drain", required_argument, NULL, 'D'},
        {"name", required_argument, NULL, 'n'},     {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "u:b:Wr:d:w:c:D:n:o:h", opts, NULL)) != -1) {
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
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    char host[256];
    int port;
    const char *path;
    if (!url || !bodies || rate <= 0 || duration <= 0 || warmup < 0 || nconns < 1 ||
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

    bu_lines_t lines;
    if (bu_read_lines(bodies, &lines) != 0)
        return 1;
    nreqs = lines.n;
    reqs = calloc(nreqs, sizeof *reqs);
    reqlen = calloc(nreqs, sizeof *reqlen);
    for (size_t i = 0; i < nreqs; i++) {
        size_t blen = lines.len[i] + (wrap ? 10 : 0);
        size_t cap = blen + strlen(path) + strlen(host) + 200;
        reqs[i] = malloc(cap);
        int h = snprintf(reqs[i], cap,
                         "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s%s%s",
                         path, host, port, blen, wrap ? "{\"input\":" : "", lines.line[i],
                         wrap ? "}" : "");
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

    const double interval_ns = 1e9 / rate;
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
        /* schedule what is due */
        for (;;) {
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
        int64_t next = start + (int64_t)((double)k * interval_ns);
        if (next >= end_sched && qlen == 0 && busy == 0)
            break;
        if (now >= hard_end)
            break;
        /* arm the timer at the next scheduled send (or the hard end) */
        int64_t wake = next < end_sched ? next : hard_end;
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
    for (int i = 0; i < argc && o < sizeof command - 2; i++)
        o += (size_t)snprintf(command + o, sizeof command - o, "%s%s", i ? " " : "", argv[i]);
    json_t *e = json_object();
    json_object_set_new(e, "name", json_string(name));
    json_object_set_new(e, "mode", json_string("fixed-rate"));
    json_object_set_new(e, "url", json_string(url));
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
    json_object_set_new(e, "send_lag_p50_ms",
                        json_real((double)bu_percentile(lag.v, lag.n, 50) / 1e6));
    json_object_set_new(e, "send_lag_p99_ms",
                        json_real((double)bu_percentile(lag.v, lag.n, 99) / 1e6));
    json_object_set_new(e, "send_lag_max_ms",
                        json_real(lag.n ? (double)lag.v[lag.n - 1] / 1e6 : 0));
    json_object_set_new(e, "backlog_max", json_integer((json_int_t)backlog_max));
    json_object_set_new(e, "latency_from", json_string("intended send time (open loop)"));
    json_object_set_new(e, "command", json_string(command));
    int rc = out_path ? json_dump_file(e, out_path, JSON_INDENT(1) | JSON_REAL_PRECISION(10))
                      : json_dumpf(e, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    fprintf(stderr,
            "loadgen: %s: %.0f rps offered, %lld completed, %lld errors, p50 %.3f ms, "
            "p95 %.3f ms, p99 %.3f ms\n",
            name, rate, completed, errors, (double)bu_percentile(lat.v, lat.n, 50) / 1e6,
            (double)bu_percentile(lat.v, lat.n, 95) / 1e6,
            (double)bu_percentile(lat.v, lat.n, 99) / 1e6);
    json_decref(e);
    return rc == 0 ? 0 : 1;
}
