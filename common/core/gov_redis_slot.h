/* gov_redis_slot.h - Redis Cluster arithmetic, pure: hash slots, redirect
 * replies, the slot map.
 *
 * What a cluster client needs that involves no socket (docs/contracts.md,
 * "Redis Cluster"):
 *   - the hash slot of a key: CRC16-XMODEM of the key, or of its hash tag
 *     (the bytes between the first '{' and the next '}' when there is at
 *     least one), modulo 16384 - the Redis Cluster specification's rule;
 *   - the parse of a MOVED or ASK error reply ("MOVED <slot> <host>:<port>"),
 *     strict and bounded: a reply that is not exactly that shape is refused;
 *   - the slot map: 16384 slots -> the index of the master serving them,
 *     built from the plain values of a CLUSTER SLOTS reply (start, end,
 *     host, port per range), which the runtime extracts from hiredis.
 *
 * Thread-safety: the functions on plain values are pure; a slot map is
 * owned by one thread (the runtime keeps one per connection handle).
 */
#ifndef GOV_REDIS_SLOT_H
#define GOV_REDIS_SLOT_H

#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"

#define GOV_REDIS_SLOTS 16384
#define GOV_REDIS_HOST_MAX 255      /* a DNS name's bound; longer is refused */
#define GOV_REDIS_SLOTMAP_NODES_MAX 64
#define GOV_REDIS_NO_NODE (-1)

/* CRC16-XMODEM (poly 0x1021, init 0, no reflection, no xorout): the CRC the
 * Redis Cluster specification names; "123456789" -> 0x31C3.  O(len). */
uint16_t gov_crc16_xmodem(const void *data, size_t len);

/* The hash slot (0..16383) of the key's len bytes, hash tags honoured.
 * O(len). */
unsigned gov_redis_key_slot(const void *key, size_t len);

typedef enum {
    GOV_REDIS_REDIRECT_MOVED = 1,   /* the slot lives elsewhere: refresh the map */
    GOV_REDIS_REDIRECT_ASK = 2      /* this one command: ASKING on the target */
} gov_redis_redirect_kind_t;

typedef struct gov_redis_redirect {
    gov_redis_redirect_kind_t kind;
    unsigned slot;
    char host[GOV_REDIS_HOST_MAX + 1];   /* "" when the reply names none
                                            (":<port>": same host as asked) */
    int port;
} gov_redis_redirect_t;

/* Parses an error reply's text (len bytes, not NUL-terminated necessarily):
 * "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>", one space each,
 * slot a decimal 0..16383 without sign or leading zero, port 1..65535, host
 * up to GOV_REDIS_HOST_MAX bytes of printable non-space ASCII, split at its
 * last ':' (an IPv6 address keeps its own colons).  GOV_OK with *out set;
 * GOV_ERR_NOT_FOUND when the text is no redirect at all (another error);
 * GOV_ERR_PARSE when it starts like one but is malformed (errbuf says why).
 * O(len); reads no byte past len. */
gov_err_t gov_redis_redirect_parse(const char *text, size_t len, gov_redis_redirect_t *out,
                                   char *errbuf, size_t errbuf_size);

typedef struct gov_redis_slotmap gov_redis_slotmap_t;

/* A new empty map (every slot unassigned); NULL when out of memory.  The
 * caller frees it with gov_redis_slotmap_free (NULL is safe). */
gov_redis_slotmap_t *gov_redis_slotmap_new(void);
void gov_redis_slotmap_free(gov_redis_slotmap_t *m);

/* Forgets every range and node. */
void gov_redis_slotmap_clear(gov_redis_slotmap_t *m);

/* Assigns slots start..end (inclusive) to the master host:port (host
 * borrowed, copied), adding the node when new.  GOV_ERR_INVALID_ARG for a
 * range outside 0..16383 or reversed, a host empty or longer than
 * GOV_REDIS_HOST_MAX, a port outside 1..65535; GOV_ERR_TOO_LARGE past
 * GOV_REDIS_SLOTMAP_NODES_MAX nodes.  A later range overrides an earlier one
 * for the slots they share.  O(end - start + nodes). */
gov_err_t gov_redis_slotmap_assign(gov_redis_slotmap_t *m, unsigned start, unsigned end,
                                   const char *host, int port, char *errbuf,
                                   size_t errbuf_size);

/* The node index serving slot, or GOV_REDIS_NO_NODE. O(1). */
int gov_redis_slotmap_node(const gov_redis_slotmap_t *m, unsigned slot);

/* Node i's address (borrowed, valid until the next clear/free); NULL when i
 * is out of range.  O(1). */
const char *gov_redis_slotmap_node_host(const gov_redis_slotmap_t *m, int i, int *port);

/* Number of nodes, and of slots with a node (16384: the map covers all). */
int gov_redis_slotmap_nodes(const gov_redis_slotmap_t *m);
unsigned gov_redis_slotmap_covered(const gov_redis_slotmap_t *m);

#endif /* GOV_REDIS_SLOT_H */
