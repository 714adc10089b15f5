/* gov_redis.c - hiredis wrapper: timeouts, lazy reconnect, scripts.
 *
 * The context is (re)created on demand: a NULL or broken context is replaced
 * at the start of the next call.  hiredis marks a context with err after any
 * I/O failure and it is unusable afterwards, so "broken" is simply ctx->err.
 *
 * A connection is also dropped on any doubt about where its reply stream
 * stands: every pipelined command is counted when appended and uncounted
 * when its reply (an error reply too) is read, and a connection whose
 * pipeline was abandoned with replies still unread (a caller returned on an
 * error reply) is never reused - the next call reconnects, so a later
 * command can never be paired with an earlier command's reply.
 *
 * The error replies that say the server cannot serve now (LOADING, BUSY,
 * MASTERDOWN, TRYAGAIN, CLUSTERDOWN, NOAUTH, READONLY, OOM) are reported as
 * GOV_ERR_UNAVAILABLE, like a closed socket: callers retry them as they retry
 * an outage.  Every other error reply (WRONGTYPE, a script error) is
 * GOV_ERR_REDIS: a fact about the data, not about the server.
 *
 * An optional hold-off (gov_redis_set_hold_off) makes a handle that just
 * failed to reach Redis answer GOV_ERR_UNAVAILABLE at once for a while, for
 * callers that must answer promptly rather than wait a timeout per call.
 *
 * Cluster mode (gov_redis_new_cluster): the handle forwards every call to a
 * gov_redis_cluster_t (gov_redis_cluster.c), which holds one plain handle
 * per master; so gov_state* runs unchanged on a Redis Cluster.
 */
#include "gov_redis.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "gov_alloc.h"
#include "gov_redis_cluster.h"
#include "gov_time.h"
#include "gov_util.h"

struct gov_redis {
    char *host;
    int port;
    int timeout_ms;
    redisContext *ctx;
    size_t pending;     /* pipelined commands whose reply is not read yet */
    int reading;        /* a reply was read since the last append */
    int doubt;          /* the reply stream's position is not known: drop */
    int hold_off_ms;    /* 0: off */
    int64_t down_until_us; /* monotonic; calls fail at once before it */
    gov_redis_cluster_t *cluster; /* cluster mode: every call goes there */
};

static void drop(gov_redis_t *r) {
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->pending = 0;
    r->reading = 0;
    r->doubt = 0;
}

/* Remembers an unreachable Redis for the hold-off, when one is set. */
static void mark_down(gov_redis_t *r) {
    if (r->hold_off_ms > 0)
        r->down_until_us = gov_mono_micros() + (int64_t)r->hold_off_ms * 1000;
}

/* A usable context whose reply stream holds nothing unread; `appending`: the
 * caller continues a pipeline it has not started reading. */
static gov_err_t ensure_ready(gov_redis_t *r, int appending, char *errbuf, size_t errbuf_size) {
    if (r->ctx && r->ctx->err == 0 && !r->doubt &&
        (r->pending == 0 || (appending && !r->reading)))
        return GOV_OK;
    drop(r);
    if (r->down_until_us != 0 && gov_mono_micros() < r->down_until_us) {
        snprintf(errbuf, errbuf_size, "redis %s:%d: unreachable a moment ago (holding off)",
                 r->host, r->port);
        return GOV_ERR_UNAVAILABLE;
    }
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
    if (c == NULL) {
        snprintf(errbuf, errbuf_size, "redis %s:%d: cannot allocate context", r->host, r->port);
        return GOV_ERR_NOMEM;
    }
    if (c->err) {
        snprintf(errbuf, errbuf_size, "redis %s:%d: %s", r->host, r->port, c->errstr);
        redisFree(c);
        mark_down(r);
        return GOV_ERR_UNAVAILABLE;
    }
    redisSetTimeout(c, tv);
    redisEnableKeepAlive(c);
    r->ctx = c;
    r->down_until_us = 0;
    return GOV_OK;
}

static gov_err_t ensure_connected(gov_redis_t *r, char *errbuf, size_t errbuf_size) {
    return ensure_ready(r, 0, errbuf, errbuf_size);
}

gov_err_t gov_redis_new(const char *host, int port, int timeout_ms,
                        gov_redis_t **out, char *errbuf, size_t errbuf_size) {
    gov_redis_t *r = gov_calloc(1, sizeof *r);
    if (r == NULL)
        return GOV_ERR_NOMEM;
    r->host = gov_strdup(host);
    if (r->host == NULL) {
        gov_free(r);
        return GOV_ERR_NOMEM;
    }
    r->port = port;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    *out = r;
    return ensure_connected(r, errbuf, errbuf_size);
}

int gov_redis_is_cluster(const gov_redis_t *r) {
    return r != NULL && r->cluster != NULL;
}

gov_err_t gov_redis_new_cluster(const char *nodes, int timeout_ms, gov_redis_t **out,
                                char *errbuf, size_t errbuf_size) {
    *out = NULL;
    gov_redis_t *r = gov_calloc(1, sizeof *r);
    if (r == NULL)
        return GOV_ERR_NOMEM;
    gov_err_t err = gov_redis_cluster_new(nodes, timeout_ms, &r->cluster, errbuf, errbuf_size);
    if (r->cluster == NULL) {
        gov_free(r);
        return err;
    }
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    *out = r;
    return err;
}

gov_err_t gov_redis_connect(const char *nodes, const char *host, int port, int timeout_ms,
                            gov_redis_t **out, char *errbuf, size_t errbuf_size) {
    if (nodes != NULL && nodes[0] != '\0')
        return gov_redis_new_cluster(nodes, timeout_ms, out, errbuf, errbuf_size);
    return gov_redis_new(host, port, timeout_ms, out, errbuf, errbuf_size);
}

void gov_redis_set_hold_off(gov_redis_t *r, int hold_off_ms) {
    r->hold_off_ms = hold_off_ms > 0 ? hold_off_ms : 0;
    if (r->cluster)
        gov_redis_cluster_set_hold_off(r->cluster, r->hold_off_ms);
}

void gov_redis_free(gov_redis_t *r) {
    if (r == NULL)
        return;
    drop(r);
    gov_redis_cluster_free(r->cluster);
    gov_free(r->host);
    gov_free(r);
}

/* 1 when an error reply says the server cannot serve now (it will later):
 * the first word of the reply, as Redis sends it. */
static int error_is_unavailable(const char *str, size_t len) {
    static const char *const words[] = {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN",
                                        "CLUSTERDOWN", "NOAUTH", "READONLY", "OOM"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if (len >= n && memcmp(str, words[i], n) == 0 && (len == n || str[n] == ' '))
            return 1;
    }
    return 0;
}

/* Turns a hiredis result into gov_err_t, consuming `rep` unless handed out. */
static gov_err_t finish(gov_redis_t *r, redisReply *rep, redisReply **reply,
                        char *errbuf, size_t errbuf_size) {
    if (rep == NULL) {
        snprintf(errbuf, errbuf_size, "redis %s:%d: %s", r->host, r->port,
                 r->ctx && r->ctx->err ? r->ctx->errstr : "no reply");
        /* hiredis 0.14 reports a timeout as REDIS_ERR_IO with EAGAIN; the
         * context is unusable after it (ctx->err), and so after any doubt. */
        r->doubt = 1;
        mark_down(r);
        return GOV_ERR_UNAVAILABLE;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(errbuf, errbuf_size, "redis: %.*s", (int)rep->len, rep->str);
        int unavailable = error_is_unavailable(rep->str, rep->len);
        freeReplyObject(rep);
        return unavailable ? GOV_ERR_UNAVAILABLE : GOV_ERR_REDIS;
    }
    if (reply)
        *reply = rep;
    else
        freeReplyObject(rep);
    return GOV_OK;
}

gov_err_t gov_redis_command(gov_redis_t *r, redisReply **reply, int argc,
                            const char **argv, const size_t *argvlen,
                            char *errbuf, size_t errbuf_size) {
    if (r->cluster)
        return gov_redis_cluster_command(r->cluster, reply, argc, argv, argvlen, errbuf,
                                         errbuf_size);
    gov_err_t err = ensure_connected(r, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, argvlen);
    return finish(r, rep, reply, errbuf, errbuf_size);
}

gov_err_t gov_redis_commandf(gov_redis_t *r, redisReply **reply, char *errbuf,
                             size_t errbuf_size, const char *fmt, ...) {
    if (r->cluster) {
        /* a formatted command cannot be routed by its key: argv only */
        snprintf(errbuf, errbuf_size, "redis cluster: use gov_redis_command (argv)");
        return GOV_ERR_UNSUPPORTED;
    }
    gov_err_t err = ensure_connected(r, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    return finish(r, rep, reply, errbuf, errbuf_size);
}

static void script_sha1(gov_redis_script_t *s) {
    if (s->sha1[0])
        return;
    unsigned char md[20];
    unsigned int n = 0;
    EVP_Digest(s->source, strlen(s->source), md, &n, EVP_sha1(), NULL);
    gov_hex_encode(md, 20, s->sha1);
}

enum { EVAL_MAX_ARGS = 160 };

/* av/al = EVALSHA <sha1> <nkeys> argv...; nk holds the count's text.
 * GOV_ERR_INVALID_ARG when the arguments do not fit. */
static gov_err_t evalsha_argv(gov_redis_script_t *script, int nkeys, int argc, const char **argv,
                              const size_t *argvlen, const char **av, size_t *al, char nk[16]) {
    if (argc < 0 || argc > EVAL_MAX_ARGS - 3 || nkeys > argc)
        return GOV_ERR_INVALID_ARG;
    script_sha1(script);
    snprintf(nk, 16, "%d", nkeys);
    av[0] = "EVALSHA";
    av[1] = script->sha1;
    av[2] = nk;
    al[0] = 7;
    al[1] = 40;
    al[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        av[3 + i] = argv[i];
        al[3 + i] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    return GOV_OK;
}

gov_err_t gov_redis_eval(gov_redis_t *r, gov_redis_script_t *script, int nkeys,
                         int argc, const char **argv, const size_t *argvlen,
                         redisReply **reply, char *errbuf, size_t errbuf_size) {
    if (r->cluster)
        return gov_redis_cluster_eval(r->cluster, script, nkeys, argc, argv, argvlen, reply,
                                      errbuf, errbuf_size);
    const char *av[EVAL_MAX_ARGS];
    size_t al[EVAL_MAX_ARGS];
    char nk[16];
    gov_err_t err = evalsha_argv(script, nkeys, argc, argv, argvlen, av, al, nk);
    if (err != GOV_OK)
        return err;
    err = gov_redis_command(r, reply, argc + 3, av, al, errbuf, errbuf_size);
    if (err == GOV_ERR_REDIS && strstr(errbuf, "NOSCRIPT") != NULL) {
        av[0] = "EVAL";
        al[0] = 4;
        av[1] = script->source;
        al[1] = strlen(script->source);
        err = gov_redis_command(r, reply, argc + 3, av, al, errbuf, errbuf_size);
    }
    return err;
}

gov_err_t gov_redis_append_eval(gov_redis_t *r, gov_redis_script_t *script, int nkeys,
                                int argc, const char **argv, const size_t *argvlen) {
    if (r->cluster)
        return gov_redis_cluster_append_eval(r->cluster, script, nkeys, argc, argv, argvlen);
    const char *av[EVAL_MAX_ARGS];
    size_t al[EVAL_MAX_ARGS];
    char nk[16];
    gov_err_t err = evalsha_argv(script, nkeys, argc, argv, argvlen, av, al, nk);
    return err != GOV_OK ? err : gov_redis_append(r, argc + 3, av, al);
}

gov_err_t gov_redis_append(gov_redis_t *r, int argc, const char **argv,
                           const size_t *argvlen) {
    if (r->cluster)
        return gov_redis_cluster_append(r->cluster, argc, argv, argvlen);
    char eb[128];
    gov_err_t err = ensure_ready(r, 1, eb, sizeof eb);
    if (err != GOV_OK)
        return err;
    if (r->pending == 0)
        r->reading = 0; /* a new pipeline */
    if (redisAppendCommandArgv(r->ctx, argc, argv, argvlen) != REDIS_OK) {
        r->doubt = 1; /* part of a pipeline may be queued: never send it */
        return GOV_ERR_NOMEM;
    }
    r->pending++;
    return GOV_OK;
}

gov_err_t gov_redis_read(gov_redis_t *r, redisReply **reply, char *errbuf,
                         size_t errbuf_size) {
    if (r->cluster)
        return gov_redis_cluster_read(r->cluster, reply, errbuf, errbuf_size);
    if (r->ctx == NULL || r->ctx->err || r->doubt || r->pending == 0) {
        snprintf(errbuf, errbuf_size, "redis %s:%d: %s", r->host, r->port,
                 r->pending == 0 ? "no pipelined command to read" : "not connected");
        r->doubt = 1;
        return r->pending == 0 ? GOV_ERR_INVALID_ARG : GOV_ERR_UNAVAILABLE;
    }
    void *rep = NULL;
    if (redisGetReply(r->ctx, &rep) != REDIS_OK)
        rep = NULL;
    r->reading = 1;
    if (rep != NULL)
        r->pending--;
    return finish(r, rep, reply, errbuf, errbuf_size);
}

int gov_redis_shards(gov_redis_t *r) {
    if (r->cluster == NULL)
        return 1;
    char eb[256];
    (void)gov_redis_cluster_refresh(r->cluster, eb, sizeof eb); /* else the map we have */
    return gov_redis_cluster_masters(r->cluster);
}

gov_redis_t *gov_redis_shard(gov_redis_t *r, int i) {
    if (r->cluster == NULL)
        return i == 0 ? r : NULL;
    return gov_redis_cluster_master(r->cluster, i, NULL, NULL);
}

gov_err_t gov_redis_ping(gov_redis_t *r) {
    if (r->cluster)
        return gov_redis_cluster_ping(r->cluster);
    char eb[256];
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_commandf(r, &rep, eb, sizeof eb, "PING");
    if (err != GOV_OK)
        return err;
    int ok = rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    freeReplyObject(rep);
    return ok ? GOV_OK : GOV_ERR_REDIS;
}
