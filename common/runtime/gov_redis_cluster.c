/* gov_redis_cluster.c - the Redis Cluster client (gov_redis_cluster.h).
 *
 * What: routes each command to the master of its key's slot, keeps the slot
 * map (common/core/gov_redis_slot.h) current through MOVED, ASK and
 * failover, and pipelines across masters.
 * How: one gov_redis_t per node address, kept in a small table (masters of
 * the map, seeds, redirect targets; bounded), so a connection survives map
 * reloads and a node coming back is reconnected by gov_redis itself.  A
 * redirect is recognised in the error text gov_redis returns ("redis: MOVED
 * <slot> <host>:<port>"), parsed by the strict core parser.  The map is
 * reloaded with CLUSTER SLOTS into a fresh map that replaces the current one
 * only when the reply is whole and valid.
 * What it does not do: read from replicas (every read goes to the master:
 * the processors read what they just wrote), run MULTI across slots, or wait
 * for a failover - a call fails GOV_ERR_UNAVAILABLE and the caller retries,
 * as for a single-node outage.
 */
#include "gov_redis_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gov_alloc.h"
#include "gov_redis_slot.h"

enum { CONNS_MAX = GOV_REDIS_SLOTMAP_NODES_MAX + GOV_REDIS_CLUSTER_SEEDS_MAX + 8 };
enum { EVAL_ARGS_MAX = 160 };

typedef struct conn {
    char host[GOV_REDIS_HOST_MAX + 1];
    int port;
    gov_redis_t *r;
} conn_t;

struct gov_redis_cluster {
    int timeout_ms;
    int hold_off_ms;
    int nseeds;
    struct {
        char host[GOV_REDIS_HOST_MAX + 1];
        int port;
    } seed[GOV_REDIS_CLUSTER_SEEDS_MAX];
    conn_t conn[CONNS_MAX];
    int nconns;
    gov_redis_slotmap_t *map;    /* the current map; none loaded: 0 nodes */
    gov_redis_slotmap_t *spare;  /* where a reload is built */
    int stale;                   /* reload before the next call */
    int16_t *queue;              /* pipelined commands: their conn, in order */
    size_t queued, read_pos, queue_cap;
    gov_redis_cluster_stats_t stats;
};

/* Parses "host:port" or "[v6]:port" of len bytes into host/port. */
static int parse_addr(const char *s, size_t len, char host[GOV_REDIS_HOST_MAX + 1], int *port) {
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':')
            colon = s + i;
    if (colon == NULL)
        return 0;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl > GOV_REDIS_HOST_MAX)
        return 0;
    char digits[8];
    size_t dl = len - (size_t)(colon + 1 - s);
    if (dl == 0 || dl > 5)
        return 0;
    memcpy(digits, colon + 1, dl);
    digits[dl] = 0;
    for (size_t i = 0; i < dl; i++)
        if (digits[i] < '0' || digits[i] > '9')
            return 0;
    long p = strtol(digits, NULL, 10);
    if (p < 1 || p > 65535)
        return 0;
    memcpy(host, h, hl);
    host[hl] = 0;
    *port = (int)p;
    return 1;
}

/* The connection to host:port, created on first use; NULL when the table is
 * full or memory ran out.  A node that does not answer still gets its
 * handle (gov_redis reconnects on the next call). */
static gov_redis_t *conn_for(gov_redis_cluster_t *c, const char *host, int port, int *index) {
    for (int i = 0; i < c->nconns; i++)
        if (c->conn[i].port == port && strcmp(c->conn[i].host, host) == 0) {
            if (index)
                *index = i;
            return c->conn[i].r;
        }
    if (c->nconns == CONNS_MAX)
        return NULL;
    char eb[256];
    gov_redis_t *r = NULL;
    gov_err_t err = gov_redis_new(host, port, c->timeout_ms, &r, eb, sizeof eb);
    if (err != GOV_OK && r == NULL)
        return NULL;
    gov_redis_set_hold_off(r, c->hold_off_ms);
    conn_t *k = &c->conn[c->nconns];
    snprintf(k->host, sizeof k->host, "%s", host);
    k->port = port;
    k->r = r;
    if (index)
        *index = c->nconns;
    c->nconns++;
    return r;
}

/* Fills m from a CLUSTER SLOTS reply of the node at asked_host (its host
 * for a range that names none).  GOV_OK when every range is well-formed and
 * at least one was given. */
static gov_err_t map_from_reply(gov_redis_slotmap_t *m, const redisReply *rep,
                                const char *asked_host, char *errbuf, size_t errbuf_size) {
    gov_redis_slotmap_clear(m);
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
        snprintf(errbuf, errbuf_size, "CLUSTER SLOTS answered no ranges");
        return GOV_ERR_STATE;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
            snprintf(errbuf, errbuf_size, "CLUSTER SLOTS range %zu has an unexpected shape", i);
            return GOV_ERR_REDIS;
        }
        long long s = e->element[0]->integer, t = e->element[1]->integer;
        long long port = e->element[2]->element[1]->integer;
        const char *host = e->element[2]->element[0]->str;
        if (host[0] == 0)
            host = asked_host;
        if (s < 0 || t < 0 || s >= GOV_REDIS_SLOTS || t >= GOV_REDIS_SLOTS || port < 1 ||
            port > 65535)
            goto range;
        if (gov_redis_slotmap_assign(m, (unsigned)s, (unsigned)t, host, (int)port, errbuf,
                                     errbuf_size) != GOV_OK)
            goto range;
    }
    return GOV_OK;
range:
    snprintf(errbuf, errbuf_size, "CLUSTER SLOTS gave an invalid range or address");
    return GOV_ERR_REDIS;
}

/* Asks the node at host:port for the map; replaces c->map on success. */
static gov_err_t refresh_from(gov_redis_cluster_t *c, const char *host, int port, char *errbuf,
                              size_t errbuf_size) {
    gov_redis_t *r = conn_for(c, host, port, NULL);
    if (r == NULL) {
        snprintf(errbuf, errbuf_size, "no connection slot for %s:%d", host, port);
        return GOV_ERR_NOMEM;
    }
    const char *argv[] = {"CLUSTER", "SLOTS"};
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_command(r, &rep, 2, argv, NULL, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    err = map_from_reply(c->spare, rep, host, errbuf, errbuf_size);
    freeReplyObject(rep);
    if (err != GOV_OK)
        return err;
    gov_redis_slotmap_t *t = c->map;
    c->map = c->spare;
    c->spare = t;
    c->stale = 0;
    c->stats.refreshes++;
    return GOV_OK;
}

gov_err_t gov_redis_cluster_refresh(gov_redis_cluster_t *c, char *errbuf, size_t errbuf_size) {
    gov_err_t err = GOV_ERR_UNAVAILABLE;
    snprintf(errbuf, errbuf_size, "no Redis Cluster node to ask");
    /* the masters we know first (a seed may be the dead one), then seeds */
    int n = gov_redis_slotmap_nodes(c->map);
    for (int i = 0; i < n; i++) {
        int port = 0;
        const char *host = gov_redis_slotmap_node_host(c->map, i, &port);
        char h[GOV_REDIS_HOST_MAX + 1];
        snprintf(h, sizeof h, "%s", host);   /* the map is replaced inside */
        if ((err = refresh_from(c, h, port, errbuf, errbuf_size)) == GOV_OK)
            return GOV_OK;
        if (err == GOV_ERR_NOMEM)
            return err;
    }
    for (int i = 0; i < c->nseeds; i++)
        if ((err = refresh_from(c, c->seed[i].host, c->seed[i].port, errbuf, errbuf_size)) ==
                GOV_OK ||
            err == GOV_ERR_NOMEM)
            return err;
    c->stale = 1;
    return err == GOV_ERR_REDIS ? GOV_ERR_REDIS : GOV_ERR_UNAVAILABLE;
}

gov_err_t gov_redis_cluster_new(const char *nodes, int timeout_ms, gov_redis_cluster_t **out,
                                char *errbuf, size_t errbuf_size) {
    *out = NULL;
    gov_redis_cluster_t *c = gov_calloc(1, sizeof *c);
    if (c == NULL)
        return GOV_ERR_NOMEM;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    c->map = gov_redis_slotmap_new();
    c->spare = gov_redis_slotmap_new();
    if (c->map == NULL || c->spare == NULL) {
        gov_redis_cluster_free(c);
        return GOV_ERR_NOMEM;
    }
    const char *p = nodes ? nodes : "";
    while (1) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (c->nseeds == GOV_REDIS_CLUSTER_SEEDS_MAX ||
            !parse_addr(p, len, c->seed[c->nseeds].host, &c->seed[c->nseeds].port)) {
            snprintf(errbuf, errbuf_size,
                     "redis_nodes: want 1..%d host:port separated by ',', got \"%.100s\"",
                     GOV_REDIS_CLUSTER_SEEDS_MAX, nodes ? nodes : "");
            gov_redis_cluster_free(c);
            return GOV_ERR_CONFIG;
        }
        c->nseeds++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *out = c;
    return gov_redis_cluster_refresh(c, errbuf, errbuf_size);
}

void gov_redis_cluster_free(gov_redis_cluster_t *c) {
    if (c == NULL)
        return;
    for (int i = 0; i < c->nconns; i++)
        gov_redis_free(c->conn[i].r);
    gov_redis_slotmap_free(c->map);
    gov_redis_slotmap_free(c->spare);
    gov_free(c->queue);
    gov_free(c);
}

/* The index of the first key in argv, or -1 for a command without one. */
static int first_key(int argc, const char **argv, const size_t *argvlen) {
    static const char *const keyless[] = {
        "PING", "SCAN", "INFO", "CLUSTER", "SCRIPT", "FLUSHALL", "FLUSHDB", "DBSIZE", "KEYS",
        "ROLE", "CONFIG", "ASKING", "READONLY", "READWRITE", "TIME", "ECHO", "CLIENT",
        "WAIT", "LASTSAVE", "SAVE", "BGSAVE", "BGREWRITEAOF", "MULTI", "EXEC", "DISCARD"};
    if (argc < 1)
        return -1;
    size_t n = argvlen ? argvlen[0] : strlen(argv[0]);
    char name[16];
    if (n >= sizeof name)
        return argc > 1 ? 1 : -1;
    memcpy(name, argv[0], n);
    name[n] = 0;
    for (size_t i = 0; i < sizeof keyless / sizeof *keyless; i++)
        if (strcasecmp(name, keyless[i]) == 0)
            return -1;
    if (strcasecmp(name, "EVAL") == 0 || strcasecmp(name, "EVALSHA") == 0 ||
        strcasecmp(name, "EVAL_RO") == 0 || strcasecmp(name, "EVALSHA_RO") == 0 ||
        strcasecmp(name, "FCALL") == 0)
        return argc > 3 && atoi(argv[2]) > 0 ? 3 : -1;
    return argc > 1 ? 1 : -1;
}

/* The connection serving argv's key (the first master for none). */
static gov_redis_t *route(gov_redis_cluster_t *c, int argc, const char **argv,
                          const size_t *argvlen, int *index, char *errbuf, size_t errbuf_size) {
    if (c->stale || gov_redis_slotmap_nodes(c->map) == 0) {
        gov_err_t err = gov_redis_cluster_refresh(c, errbuf, errbuf_size);
        if (err != GOV_OK && gov_redis_slotmap_nodes(c->map) == 0)
            return NULL;
    }
    int k = first_key(argc, argv, argvlen);
    int node = 0;
    if (k >= 0) {
        unsigned slot = gov_redis_key_slot(argv[k], argvlen ? argvlen[k] : strlen(argv[k]));
        node = gov_redis_slotmap_node(c->map, slot);
        if (node == GOV_REDIS_NO_NODE) {
            snprintf(errbuf, errbuf_size, "redis cluster: slot %u has no master", slot);
            return NULL;
        }
    }
    int port = 0;
    const char *host = gov_redis_slotmap_node_host(c->map, node, &port);
    gov_redis_t *r = host ? conn_for(c, host, port, index) : NULL;
    if (r == NULL)
        snprintf(errbuf, errbuf_size, "redis cluster: no connection for slot's master");
    return r;
}

/* A redirect in gov_redis's error text ("redis: <reply>"), or 0. */
static int redirect_of(const char *errbuf, gov_redis_redirect_t *rd) {
    static const char prefix[] = "redis: ";
    char eb[64];
    if (strncmp(errbuf, prefix, sizeof prefix - 1) != 0)
        return 0;
    const char *t = errbuf + sizeof prefix - 1;
    return gov_redis_redirect_parse(t, strlen(t), rd, eb, sizeof eb) == GOV_OK;
}

/* Runs argv (a script: EVAL'd source for ASK) with redirects followed.
 * script NULL: argv is the command. */
static gov_err_t run(gov_redis_cluster_t *c, gov_redis_script_t *script, int nkeys, int argc,
                     const char **argv, const size_t *argvlen, redisReply **reply, char *errbuf,
                     size_t errbuf_size) {
    /* the routing view of a script call: EVAL <src> <nkeys> KEYS... */
    const char *rv[EVAL_ARGS_MAX];
    size_t rl[EVAL_ARGS_MAX];
    int rc = argc;
    const char **rav = argv;
    const size_t *ral = argvlen;
    char nk[16];
    if (script != NULL) {
        if (argc < 0 || argc > EVAL_ARGS_MAX - 3 || nkeys < 0 || nkeys > argc)
            return GOV_ERR_INVALID_ARG;
        snprintf(nk, sizeof nk, "%d", nkeys);
        rv[0] = "EVAL";
        rv[1] = script->source;
        rv[2] = nk;
        rl[0] = 4;
        rl[1] = strlen(script->source);
        rl[2] = strlen(nk);
        for (int i = 0; i < argc; i++) {
            rv[3 + i] = argv[i];
            rl[3 + i] = argvlen ? argvlen[i] : strlen(argv[i]);
        }
        /* one slot per script, refused here rather than by CROSSSLOT */
        for (int i = 1; i < nkeys; i++)
            if (gov_redis_key_slot(rv[3 + i], rl[3 + i]) != gov_redis_key_slot(rv[3], rl[3])) {
                snprintf(errbuf, errbuf_size, "script keys %.60s and %.60s are in two slots",
                         rv[3], rv[3 + i]);
                return GOV_ERR_INVALID_ARG;
            }
        rc = argc + 3;
        rav = rv;
        ral = rl;
    }
    gov_err_t err = GOV_ERR_UNAVAILABLE;
    gov_redis_redirect_t rd = {0};
    int asking = 0, retried_down = 0, last = -1;
    for (int hop = 0; hop <= GOV_REDIS_CLUSTER_REDIRECTS_MAX; hop++) {
        gov_redis_t *r;
        if (asking) {
            /* the target of an ASK: the host the reply named, else the
             * one asked (empty host: same as the node that answered) */
            r = conn_for(c, rd.host[0] || last < 0 ? rd.host : c->conn[last].host, rd.port,
                         &last);
            if (r == NULL)
                return GOV_ERR_NOMEM;
            const char *ask[] = {"ASKING"};
            redisReply *ok = NULL;
            if ((err = gov_redis_append(r, 1, ask, NULL)) != GOV_OK ||
                (err = gov_redis_append(r, rc, rav, ral)) != GOV_OK ||
                (err = gov_redis_read(r, &ok, errbuf, errbuf_size)) != GOV_OK) {
                freeReplyObject(ok);
                c->stale = 1;
                return err;
            }
            freeReplyObject(ok);
            err = gov_redis_read(r, reply, errbuf, errbuf_size);
            asking = 0;
        } else {
            r = route(c, rc, rav, ral, &last, errbuf, errbuf_size);
            if (r == NULL)
                return GOV_ERR_UNAVAILABLE;
            err = script ? gov_redis_eval(r, script, nkeys, argc, argv, argvlen, reply, errbuf,
                                          errbuf_size)
                         : gov_redis_command(r, reply, argc, argv, argvlen, errbuf, errbuf_size);
        }
        if (err == GOV_ERR_REDIS && redirect_of(errbuf, &rd)) {
            if (rd.kind == GOV_REDIS_REDIRECT_MOVED) {
                c->stats.moved++;
                char eb[256];
                if (gov_redis_cluster_refresh(c, eb, sizeof eb) != GOV_OK)
                    /* no node gave a map: trust the redirect for its slot */
                    (void)gov_redis_slotmap_assign(c->map, rd.slot, rd.slot,
                                                   rd.host[0] || last < 0 ? rd.host
                                                                          : c->conn[last].host,
                                                   rd.port, eb, sizeof eb);
            } else {
                c->stats.ask++;
                asking = 1;
            }
            continue;
        }
        if (err == GOV_ERR_UNAVAILABLE && !retried_down) {
            /* a dead master or CLUSTERDOWN: reload once; when the slot
             * now lives elsewhere (a replica was promoted), try there */
            retried_down = 1;
            int before = -1, after = -1;
            char eb[256];
            route(c, rc, rav, ral, &before, eb, sizeof eb);
            if (gov_redis_cluster_refresh(c, eb, sizeof eb) == GOV_OK &&
                route(c, rc, rav, ral, &after, eb, sizeof eb) != NULL && after != before)
                continue;
            c->stale = 1;
        }
        return err;
    }
    snprintf(errbuf, errbuf_size, "redis cluster: more than %d redirects",
             GOV_REDIS_CLUSTER_REDIRECTS_MAX);
    c->stale = 1;
    return GOV_ERR_UNAVAILABLE;
}

gov_err_t gov_redis_cluster_command(gov_redis_cluster_t *c, redisReply **reply, int argc,
                                    const char **argv, const size_t *argvlen, char *errbuf,
                                    size_t errbuf_size) {
    return run(c, NULL, 0, argc, argv, argvlen, reply, errbuf, errbuf_size);
}

gov_err_t gov_redis_cluster_eval(gov_redis_cluster_t *c, gov_redis_script_t *script, int nkeys,
                                 int argc, const char **argv, const size_t *argvlen,
                                 redisReply **reply, char *errbuf, size_t errbuf_size) {
    return run(c, script, nkeys, argc, argv, argvlen, reply, errbuf, errbuf_size);
}

/* Remembers that the next reply to read comes from conn i. */
static gov_err_t enqueue(gov_redis_cluster_t *c, int i) {
    if (c->read_pos > 0 && c->read_pos < c->queued) {
        /* an append after reading began starts a new pipeline: the replies
         * the caller left unread are read and dropped first, so no node's
         * connection pairs a new command with an old reply (a node whose
         * replies were never read would otherwise keep its connection) */
        char eb[64];
        while (c->read_pos < c->queued) {
            redisReply *r = NULL;
            (void)gov_redis_read(c->conn[c->queue[c->read_pos++]].r, &r, eb, sizeof eb);
            freeReplyObject(r);
        }
    }
    if (c->read_pos == c->queued)
        c->read_pos = c->queued = 0;   /* everything read: a new pipeline */
    if (c->queued == c->queue_cap) {
        size_t cap = c->queue_cap ? 2 * c->queue_cap : 64;
        int16_t *q = gov_realloc(c->queue, cap * sizeof *q);
        if (q == NULL)
            return GOV_ERR_NOMEM;
        c->queue = q;
        c->queue_cap = cap;
    }
    c->queue[c->queued++] = (int16_t)i;
    return GOV_OK;
}

gov_err_t gov_redis_cluster_append(gov_redis_cluster_t *c, int argc, const char **argv,
                                   const size_t *argvlen) {
    char eb[256];
    int i = -1;
    gov_redis_t *r = route(c, argc, argv, argvlen, &i, eb, sizeof eb);
    if (r == NULL)
        return GOV_ERR_UNAVAILABLE;
    gov_err_t err = enqueue(c, i);
    if (err == GOV_OK && (err = gov_redis_append(r, argc, argv, argvlen)) != GOV_OK)
        c->queued--;
    return err;
}

gov_err_t gov_redis_cluster_append_eval(gov_redis_cluster_t *c, gov_redis_script_t *script,
                                        int nkeys, int argc, const char **argv,
                                        const size_t *argvlen) {
    if (nkeys < 1 || argc < nkeys)
        return GOV_ERR_INVALID_ARG;
    const char *key[] = {"EVAL", "", "1", argv[0]};
    size_t kl[] = {4, 0, 1, argvlen ? argvlen[0] : strlen(argv[0])};
    char eb[256];
    int i = -1;
    gov_redis_t *r = route(c, 4, key, kl, &i, eb, sizeof eb);
    if (r == NULL)
        return GOV_ERR_UNAVAILABLE;
    gov_err_t err = enqueue(c, i);
    if (err == GOV_OK &&
        (err = gov_redis_append_eval(r, script, nkeys, argc, argv, argvlen)) != GOV_OK)
        c->queued--;
    return err;
}

gov_err_t gov_redis_cluster_read(gov_redis_cluster_t *c, redisReply **reply, char *errbuf,
                                 size_t errbuf_size) {
    if (c->read_pos >= c->queued) {
        snprintf(errbuf, errbuf_size, "redis cluster: no pipelined command to read");
        return GOV_ERR_INVALID_ARG;
    }
    gov_redis_t *r = c->conn[c->queue[c->read_pos++]].r;
    gov_err_t err = gov_redis_read(r, reply, errbuf, errbuf_size);
    gov_redis_redirect_t rd;
    if ((err == GOV_ERR_REDIS && redirect_of(errbuf, &rd) &&
         rd.kind == GOV_REDIS_REDIRECT_MOVED) ||
        err == GOV_ERR_UNAVAILABLE)
        c->stale = 1;
    return err;
}

int gov_redis_cluster_masters(const gov_redis_cluster_t *c) {
    return gov_redis_slotmap_nodes(c->map);
}

gov_redis_t *gov_redis_cluster_master(gov_redis_cluster_t *c, int i, const char **host,
                                      int *port) {
    int p = 0;
    const char *h = gov_redis_slotmap_node_host(c->map, i, &p);
    if (h == NULL)
        return NULL;
    int index = -1;
    gov_redis_t *r = conn_for(c, h, p, &index);
    if (r == NULL)
        return NULL;
    if (host)
        *host = c->conn[index].host;
    if (port)
        *port = p;
    return r;
}

gov_err_t gov_redis_cluster_route(const gov_redis_cluster_t *c, const char *key, size_t len,
                                  const char **host, int *port) {
    int node = gov_redis_slotmap_node(c->map, gov_redis_key_slot(key, len));
    const char *h = node == GOV_REDIS_NO_NODE ? NULL
                                              : gov_redis_slotmap_node_host(c->map, node, port);
    if (h == NULL)
        return GOV_ERR_STATE;
    *host = h;
    return GOV_OK;
}

void gov_redis_cluster_stats(const gov_redis_cluster_t *c, gov_redis_cluster_stats_t *out) {
    *out = c->stats;
}

void gov_redis_cluster_set_hold_off(gov_redis_cluster_t *c, int hold_off_ms) {
    c->hold_off_ms = hold_off_ms > 0 ? hold_off_ms : 0;
    for (int i = 0; i < c->nconns; i++)
        gov_redis_set_hold_off(c->conn[i].r, c->hold_off_ms);
}

gov_err_t gov_redis_cluster_ping(gov_redis_cluster_t *c) {
    char eb[256];
    if ((c->stale || gov_redis_slotmap_nodes(c->map) == 0) &&
        gov_redis_cluster_refresh(c, eb, sizeof eb) != GOV_OK &&
        gov_redis_slotmap_nodes(c->map) == 0)
        return GOV_ERR_UNAVAILABLE;
    for (int i = 0; i < gov_redis_slotmap_nodes(c->map); i++) {
        gov_redis_t *r = gov_redis_cluster_master(c, i, NULL, NULL);
        gov_err_t err = r ? gov_redis_ping(r) : GOV_ERR_NOMEM;
        if (err != GOV_OK) {
            c->stale = 1;
            return err;
        }
    }
    return GOV_OK;
}
