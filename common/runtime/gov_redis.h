/* gov_redis.h - a Redis connection with timeouts, reconnect and scripts.
 *
 * One gov_redis_t per thread (hiredis contexts are not thread-safe).  Every
 * call has the connect/command timeout given at creation.  After an I/O
 * error the connection is marked broken and the next call reconnects first;
 * a call is never retried behind the caller's back (a write may or may not
 * have happened), so callers that need a retry make their operation
 * idempotent and retry themselves, as the processors do.
 *
 * Scripts: gov_redis_script_t holds a Lua source and its SHA-1; eval runs
 * EVALSHA and falls back to EVAL on NOSCRIPT (a restarted Redis).  One script
 * is how a processor writes its state and its offset atomically.
 *
 * Pipelining: gov_redis_append queues commands, gov_redis_read reads their
 * replies in order.  A caller may stop reading early (on an error reply):
 * the connection then holds unread replies and is dropped, never reused, by
 * the next call, which reconnects.
 *
 * Replies are hiredis redisReply objects, freed with freeReplyObject.  A
 * Redis error reply is returned as GOV_ERR_REDIS with its text in errbuf,
 * except the replies that say the server cannot serve now (LOADING, BUSY,
 * MASTERDOWN, TRYAGAIN, CLUSTERDOWN, NOAUTH, READONLY, OOM): those are
 * GOV_ERR_UNAVAILABLE, like an outage, and are retried like one.
 */
#ifndef GOV_REDIS_H
#define GOV_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "gov_err.h"

typedef struct gov_redis gov_redis_t;

typedef struct gov_redis_script {
    const char *source;   /* Lua text, static */
    char sha1[41];        /* computed on first use */
} gov_redis_script_t;

/* Connects to host:port with timeout_ms for connect and each command.  A
 * failed first connection still returns a handle (GOV_ERR_UNAVAILABLE with
 * the reason): later calls retry the connection, so a binary can start
 * before Redis and report NOT_READY meanwhile.  *out is set in both cases. */
gov_err_t gov_redis_new(const char *host, int port, int timeout_ms,
                        gov_redis_t **out, char *errbuf, size_t errbuf_size);
void gov_redis_free(gov_redis_t *r);

/* Cluster mode: a handle on a Redis Cluster reached through the seeds in
 * nodes ("host:port,..."), with every call below routed by its first key's
 * hash slot, MOVED/ASK followed and failover tracked (gov_redis_cluster.h).
 * gov_redis_commandf is not routable and answers GOV_ERR_UNSUPPORTED; ping
 * pings every master.  Like gov_redis_new, an unreachable cluster still
 * gives a handle (GOV_ERR_UNAVAILABLE); GOV_ERR_CONFIG for a malformed list
 * (*out NULL). */
gov_err_t gov_redis_new_cluster(const char *nodes, int timeout_ms, gov_redis_t **out,
                                char *errbuf, size_t errbuf_size);

/* The one place a binary's Redis settings pick the mode: nodes non-empty
 * ("host:port,...", the redis_nodes row) gives gov_redis_new_cluster(nodes),
 * else gov_redis_new(host, port).  Same results and ownership as those. */
gov_err_t gov_redis_connect(const char *nodes, const char *host, int port, int timeout_ms,
                            gov_redis_t **out, char *errbuf, size_t errbuf_size);

/* After a call that found Redis unreachable (connect failed, a reply timed
 * out), calls on r fail at once with GOV_ERR_UNAVAILABLE for hold_off_ms
 * instead of waiting a timeout each (0, the default: never).  For callers
 * that must answer promptly, such as gov-edge's lookups. */
void gov_redis_set_hold_off(gov_redis_t *r, int hold_off_ms);

/* Runs one command given as argv (binary-safe; argvlen may be NULL for C
 * strings).  On GOV_OK *reply is a new reply (may be NULL if reply is NULL:
 * then it is freed).  Redis error replies give GOV_ERR_REDIS. */
gov_err_t gov_redis_command(gov_redis_t *r, redisReply **reply, int argc,
                            const char **argv, const size_t *argvlen,
                            char *errbuf, size_t errbuf_size);

/* printf-style hiredis command (redisCommand formats: %s %b %d %lld). */
gov_err_t gov_redis_commandf(gov_redis_t *r, redisReply **reply, char *errbuf,
                             size_t errbuf_size, const char *fmt, ...);

/* Runs a script with nkeys keys followed by args (argv holds keys then
 * args). */
gov_err_t gov_redis_eval(gov_redis_t *r, gov_redis_script_t *script, int nkeys,
                         int argc, const char **argv, const size_t *argvlen,
                         redisReply **reply, char *errbuf, size_t errbuf_size);

/* Pipelining: append queues a command (argv borrowed, copied); read returns
 * the next queued command's reply (a new reference) in order, GOV_ERR_REDIS
 * or GOV_ERR_UNAVAILABLE for an error reply, which also counts as read.
 * Stopping before the last reply is allowed: the connection is then dropped
 * by the next call (see above). */
gov_err_t gov_redis_append(gov_redis_t *r, int argc, const char **argv,
                           const size_t *argvlen);
gov_err_t gov_redis_read(gov_redis_t *r, redisReply **reply, char *errbuf,
                         size_t errbuf_size);
/* Queues EVALSHA of script (argv as for gov_redis_eval, copied).  Unlike
 * gov_redis_eval it cannot load the script: a reply "NOSCRIPT" (Redis
 * restarted or flushed its scripts) is the caller's to handle, e.g. by
 * running that call again through gov_redis_eval. */
gov_err_t gov_redis_append_eval(gov_redis_t *r, gov_redis_script_t *script, int nkeys,
                                int argc, const char **argv, const size_t *argvlen);

/* The nodes that hold data, for the commands that act per node (SCAN):
 * gov_redis_shards reloads a cluster's slot map (kept as it is when no node
 * answers) and returns how many masters it names, 1 for a single node (0: a
 * cluster whose map could never be loaded).  gov_redis_shard(r, i) is node
 * i's connection, borrowed, valid until r is freed (r itself for a single
 * node); NULL when i is out of range.  Not thread-safe, like r. */
int gov_redis_shards(gov_redis_t *r);
gov_redis_t *gov_redis_shard(gov_redis_t *r, int i);

/* 1 when r talks to a Redis Cluster (gov_redis_new_cluster), else 0. */
int gov_redis_is_cluster(const gov_redis_t *r);

/* PING; GOV_OK when the server (every master, in cluster mode) answered
 * PONG. */
gov_err_t gov_redis_ping(gov_redis_t *r);

#endif /* GOV_REDIS_H */
