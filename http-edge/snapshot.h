/* snapshot.h - the edge's in-memory view of the materialized state.
 *
 * Requests never talk to Redis.  They read an immutable snapshot: a sorted
 * array of per-tenant states, each immutable and reference-counted.  A
 * change (a new constitution for one tenant) builds a new tenant state off
 * to the side, then a new snapshot that shares every other tenant's state,
 * and swaps the snapshot pointer under a mutex held for a few instructions.
 * A request holds a reference to the snapshot it started with, so it sees
 * one consistent state from start to end, however many swaps happen
 * meanwhile - no request ever sees half of a state.
 *
 * Thread-safety: edge_state_* are thread-safe; a snapshot and its tenants
 * are immutable and may be read by any number of threads.
 */
#ifndef EDGE_SNAPSHOT_H
#define EDGE_SNAPSHOT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>

#include "gov_err.h"
#include "gov_policy.h"
#include "gov_rulepack.h"
#include "gov_util.h"

typedef struct edge_constitution {
    char checksum[129];
    char hash_alg[16];
    char canonicalization[20];
    char version[64];
    long long verified_at_us;
    char previous_checksum[129];   /* the hash this one replaced ("" none) and when */
    long long replaced_at_us;      /* gov-constitution verified the replacement (µs) */
    char *signers;          /* comma-separated */
    char *source;
    char *doc;              /* canonical bytes, NUL-terminated */
    size_t doc_len;
    json_t *doc_json;       /* parsed document (read-only) */
    gov_policy_constitution_t *rules;   /* its "rules", compiled; NULL if invalid */
    char rules_error[256];              /* why rules is NULL */
} edge_constitution_t;

/* The tenant's rule pack as gov-rulepacks materialized it. */
typedef struct edge_rulepack {
    gov_rulepack_t *pack;               /* NULL: none (or it failed to compile here) */
    char sha256[GOV_SHA256_HEXLEN + 1]; /* of the canonical JSON in Redis, "" when none */
    char error[256];                    /* why pack is NULL although Redis has one */
} edge_rulepack_t;

/* Everything the edge knows of one tenant.  Immutable once installed: a new
 * constitution or pack builds a new edge_tenant_t holding both, so a request
 * always evaluates against a constitution and a pack that were current
 * together. */
typedef struct edge_tenant {
    atomic_int refs;
    char name[GOV_TENANT_MAX + 1];
    edge_constitution_t constitution;   /* constitution.checksum[0] == 0: none */
    edge_rulepack_t rulepack;
} edge_tenant_t;

/* Parses c->doc (c->doc_len canonical bytes, already verified) into
 * c->doc_json and compiles its "rules" into c->rules; rules that this engine
 * cannot read leave c->rules NULL with the reason in c->rules_error (the
 * read APIs still serve the document, evaluation refuses the tenant).
 * GOV_ERR_NOMEM, or the parse error with errbuf.  O(doc_len). */
gov_err_t edge_constitution_compile(edge_constitution_t *c, char *errbuf, size_t errbuf_size);

/* Releases what c owns and zeroes it ("none"). */
void edge_constitution_clear(edge_constitution_t *c);
void edge_rulepack_clear(edge_rulepack_t *p);

/* Copies a served part into an empty one of a new tenant state, so the last
 * verified constitution (or pack) stays served while the other part is
 * replaced: rebuilt from the verified canonical bytes src holds (nothing is
 * shared, so the two tenant states stay independent).  GOV_ERR_NOMEM or the
 * rebuild's error (dst left empty).  Cost: a parse (and for a pack the
 * matcher compile) of bytes that verified before. */
gov_err_t edge_constitution_copy(edge_constitution_t *dst, const edge_constitution_t *src);
gov_err_t edge_rulepack_copy(edge_rulepack_t *dst, const edge_rulepack_t *src);

/* A new tenant state with one reference, or NULL. */
edge_tenant_t *edge_tenant_new(const char *name);
edge_tenant_t *edge_tenant_ref(edge_tenant_t *t);
void edge_tenant_unref(edge_tenant_t *t);

typedef struct edge_snapshot {
    atomic_int refs;
    size_t n;
    edge_tenant_t **tenants;   /* sorted by name, each referenced */
    long long built_at_us;
    unsigned long long generation;
} edge_snapshot_t;

/* Borrowed tenant of a held snapshot, or NULL.  O(log n). */
edge_tenant_t *edge_snapshot_find(const edge_snapshot_t *s, const char *tenant);
void edge_snapshot_release(edge_snapshot_t *s);

typedef struct edge_state edge_state_t;

edge_state_t *edge_state_new(void);
void edge_state_free(edge_state_t *st);

/* The current snapshot with a reference the caller releases. */
edge_snapshot_t *edge_state_acquire(edge_state_t *st);

/* Installs t (stealing the caller's reference) for its tenant, replacing any
 * previous state of that tenant.  O(number of tenants). */
gov_err_t edge_state_put_take(edge_state_t *st, edge_tenant_t *t);

/* 1 once the first full load from Redis completed. */
int edge_state_loaded(edge_state_t *st);
void edge_state_set_loaded(edge_state_t *st);

#endif
