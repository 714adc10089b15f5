/* gov_redis_cluster.h - a Redis Cluster client: the slot map, routing by the
 * first key's hash slot, MOVED and ASK, failover.
 *
 * Debian packages no cluster-aware hiredis (hiredis-cluster is not in the
 * archive), so this is written here, small, on top of gov_redis: one
 * gov_redis_t per master (timeouts, lazy reconnect and error mapping come
 * from there) plus the pure arithmetic of common/core/gov_redis_slot.h.
 *
 * Routing: a command goes to the master of its first key's slot (argv[1],
 * or the first of an EVAL/EVALSHA's KEYS); a command without a key (PING,
 * SCAN, ...) to the first master.  A script whose KEYS span two slots is
 * refused before it is sent (GOV_ERR_INVALID_ARG): docs/contracts.md "Redis
 * Cluster" - every script touches one slot.
 *
 * Redirects, bounded by GOV_REDIS_CLUSTER_REDIRECTS_MAX per call:
 *   MOVED  the slot lives elsewhere: the map is reloaded (CLUSTER SLOTS from
 *          any node that answers; the redirect's target alone when none does)
 *          and the command is sent again;
 *   ASK    the slot is being migrated and this key is already on the
 *          target: ASKING and the command, once, on the target; the map is
 *          left as it is.  A script is sent as EVAL there (ASKING covers one
 *          command; an EVALSHA answered NOSCRIPT would lose it).
 * An unreachable master (killed; its replica not yet promoted) or a
 * CLUSTERDOWN/TRYAGAIN reply gives GOV_ERR_UNAVAILABLE like a single-node
 * outage, after one reload of the map and one more try when the reload moved
 * the slot to another node: a call never waits out a failover (seconds), the
 * caller retries as it retries an outage.  The next call after a failure
 * reloads the map first.
 *
 * A call is never retried after the command may have run, except on a
 * redirect (a MOVED or ASK reply means the node did not run it).
 *
 * Thread-safety: one handle per thread, like gov_redis_t.
 */
#ifndef GOV_REDIS_CLUSTER_H
#define GOV_REDIS_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_redis.h"

#define GOV_REDIS_CLUSTER_REDIRECTS_MAX 5
#define GOV_REDIS_CLUSTER_SEEDS_MAX 16

typedef struct gov_redis_cluster gov_redis_cluster_t;

/* Counters of what the client did, for metrics and tests. */
typedef struct gov_redis_cluster_stats {
    uint64_t moved;        /* MOVED replies followed */
    uint64_t ask;          /* ASK replies followed */
    uint64_t refreshes;    /* slot-map reloads that succeeded */
} gov_redis_cluster_stats_t;

/* Parses nodes ("host:port,host:port", 1..GOV_REDIS_CLUSTER_SEEDS_MAX seeds,
 * IPv6 hosts bracketed "[::1]:7000") and loads the slot map from the first
 * seed that answers.  Like gov_redis_new, a cluster that cannot be reached
 * still gives a handle (*out set, GOV_ERR_UNAVAILABLE with the reason): the
 * map is loaded by the first call that can.  GOV_ERR_CONFIG for a malformed
 * list (*out NULL).  The caller frees *out with gov_redis_cluster_free. */
gov_err_t gov_redis_cluster_new(const char *nodes, int timeout_ms, gov_redis_cluster_t **out,
                                char *errbuf, size_t errbuf_size);
void gov_redis_cluster_free(gov_redis_cluster_t *c);

/* Reloads the slot map (CLUSTER SLOTS), asking the known masters, then the
 * seeds.  GOV_OK when a node answered with a map covering every slot. */
gov_err_t gov_redis_cluster_refresh(gov_redis_cluster_t *c, char *errbuf, size_t errbuf_size);

/* As gov_redis_command / gov_redis_eval, routed (above).  *reply is a new
 * reference. */
gov_err_t gov_redis_cluster_command(gov_redis_cluster_t *c, redisReply **reply, int argc,
                                    const char **argv, const size_t *argvlen, char *errbuf,
                                    size_t errbuf_size);
gov_err_t gov_redis_cluster_eval(gov_redis_cluster_t *c, gov_redis_script_t *script, int nkeys,
                                 int argc, const char **argv, const size_t *argvlen,
                                 redisReply **reply, char *errbuf, size_t errbuf_size);

/* Pipelining across masters: append routes each command to its master's
 * connection and remembers the order; read returns the replies in that
 * order.  Redirects are not followed inside a pipeline: a MOVED or ASK reply
 * is an error reply (GOV_ERR_REDIS) the caller handles by running that call
 * again through gov_redis_cluster_eval/command (which follow them), and a
 * MOVED marks the map for reloading.  As with gov_redis, stopping early is
 * allowed. */
gov_err_t gov_redis_cluster_append(gov_redis_cluster_t *c, int argc, const char **argv,
                                   const size_t *argvlen);
gov_err_t gov_redis_cluster_append_eval(gov_redis_cluster_t *c, gov_redis_script_t *script,
                                        int nkeys, int argc, const char **argv,
                                        const size_t *argvlen);
gov_err_t gov_redis_cluster_read(gov_redis_cluster_t *c, redisReply **reply, char *errbuf,
                                 size_t errbuf_size);

/* The masters of the current map, for the commands that act per node
 * (SCAN, FLUSHALL, INFO): count, and master i's connection (borrowed, valid
 * until the next call on c) and address.  NULL when i is out of range or a
 * connection cannot be allocated. */
int gov_redis_cluster_masters(const gov_redis_cluster_t *c);
gov_redis_t *gov_redis_cluster_master(gov_redis_cluster_t *c, int i, const char **host,
                                      int *port);

/* Where the map routes key now (host borrowed until the next call on c);
 * GOV_ERR_STATE when no map is loaded or the slot has no master. */
gov_err_t gov_redis_cluster_route(const gov_redis_cluster_t *c, const char *key, size_t len,
                                  const char **host, int *port);

void gov_redis_cluster_stats(const gov_redis_cluster_t *c, gov_redis_cluster_stats_t *out);

/* gov_redis_set_hold_off for every node connection, present and future. */
void gov_redis_cluster_set_hold_off(gov_redis_cluster_t *c, int hold_off_ms);

/* PING every master of the map (reloaded first when stale or empty);
 * GOV_OK when each answered PONG. */
gov_err_t gov_redis_cluster_ping(gov_redis_cluster_t *c);

#endif /* GOV_REDIS_CLUSTER_H */
