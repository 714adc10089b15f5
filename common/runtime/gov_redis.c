/* gov_redis.c - hiredis wrapper: timeouts, lazy reconnect, scripts.
 *
 * The context is (re)created on demand: a NULL or broken context is replaced
 * at the start of the next call.  hiredis marks a context with err after any
 * I/O failure and it is unusable afterwards, so "broken" is simply ctx->err.
 */
#include "gov_redis.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "gov_alloc.h"
#include "gov_util.h"

struct gov_redis {
    char *host;
    int port;
    int timeout_ms;
    redisContext *ctx;
};

static gov_err_t ensure_connected(gov_redis_t *r, char *errbuf, size_t errbuf_size) {
    if (r->ctx && r->ctx->err == 0)
        return GOV_OK;
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
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
        return GOV_ERR_UNAVAILABLE;
    }
    redisSetTimeout(c, tv);
    redisEnableKeepAlive(c);
    r->ctx = c;
    return GOV_OK;
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

void gov_redis_free(gov_redis_t *r) {
    if (r == NULL)
        return;
    if (r->ctx)
        redisFree(r->ctx);
    gov_free(r->host);
    gov_free(r);
}

/* Turns a hiredis result into gov_err_t, consuming `rep` unless handed out. */
static gov_err_t finish(gov_redis_t *r, redisReply *rep, redisReply **reply,
                        char *errbuf, size_t errbuf_size) {
    if (rep == NULL) {
        snprintf(errbuf, errbuf_size, "redis %s:%d: %s", r->host, r->port,
                 r->ctx && r->ctx->err ? r->ctx->errstr : "no reply");
        /* hiredis 0.14 reports a timeout as REDIS_ERR_IO with EAGAIN. */
        return GOV_ERR_UNAVAILABLE;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(errbuf, errbuf_size, "redis: %.*s", (int)rep->len, rep->str);
        freeReplyObject(rep);
        return GOV_ERR_REDIS;
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
    gov_err_t err = ensure_connected(r, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, argvlen);
    return finish(r, rep, reply, errbuf, errbuf_size);
}

gov_err_t gov_redis_commandf(gov_redis_t *r, redisReply **reply, char *errbuf,
                             size_t errbuf_size, const char *fmt, ...) {
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

gov_err_t gov_redis_eval(gov_redis_t *r, gov_redis_script_t *script, int nkeys,
                         int argc, const char **argv, const size_t *argvlen,
                         redisReply **reply, char *errbuf, size_t errbuf_size) {
    enum { MAX_ARGS = 160 };
    if (argc < 0 || argc > MAX_ARGS - 3 || nkeys > argc)
        return GOV_ERR_INVALID_ARG;
    script_sha1(script);
    const char *av[MAX_ARGS];
    size_t al[MAX_ARGS];
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
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
    gov_err_t err = gov_redis_command(r, reply, argc + 3, av, al, errbuf, errbuf_size);
    if (err == GOV_ERR_REDIS && strstr(errbuf, "NOSCRIPT") != NULL) {
        av[0] = "EVAL";
        al[0] = 4;
        av[1] = script->source;
        al[1] = strlen(script->source);
        err = gov_redis_command(r, reply, argc + 3, av, al, errbuf, errbuf_size);
    }
    return err;
}

gov_err_t gov_redis_append(gov_redis_t *r, int argc, const char **argv,
                           const size_t *argvlen) {
    char eb[128];
    gov_err_t err = ensure_connected(r, eb, sizeof eb);
    if (err != GOV_OK)
        return err;
    return redisAppendCommandArgv(r->ctx, argc, argv, argvlen) == REDIS_OK
               ? GOV_OK : GOV_ERR_NOMEM;
}

gov_err_t gov_redis_read(gov_redis_t *r, redisReply **reply, char *errbuf,
                         size_t errbuf_size) {
    if (r->ctx == NULL || r->ctx->err) {
        snprintf(errbuf, errbuf_size, "redis %s:%d: not connected", r->host, r->port);
        return GOV_ERR_UNAVAILABLE;
    }
    void *rep = NULL;
    if (redisGetReply(r->ctx, &rep) != REDIS_OK)
        rep = NULL;
    return finish(r, rep, reply, errbuf, errbuf_size);
}

gov_err_t gov_redis_ping(gov_redis_t *r) {
    char eb[256];
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_commandf(r, &rep, eb, sizeof eb, "PING");
    if (err != GOV_OK)
        return err;
    int ok = rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    freeReplyObject(rep);
    return ok ? GOV_OK : GOV_ERR_REDIS;
}
