/* gov_state.h - the Redis layout of the governance state, in one place.
 *
 * Every Redis key the chain uses is built here, and every read and write of
 * each kind of state goes through here: constitution, rule pack, audit chain,
 * decision record, processor offsets, and the two tenant indexes.  No other
 * file formats a key.  The layout (docs/contracts.md, docs/architecture.md):
 *
 *   constitution:{T}              hash: checksum, hash_alg, version,
 *                                 verified_at, signers, source, announced,
 *                                 canonicalization, bundle_event_id,
 *                                 signatures (the bundle's, compact JSON:
 *                                 with :doc, hash_alg, canonicalization and
 *                                 checksum, what lets an edge verify again)
 *   constitution:{T}:doc          string: the verified document, canonical
 *   constitution:{T}:history      list: previous checksums, newest first (100)
 *   gov:{tenants}:constitution    set: tenants that have a constitution
 *   policy:rulepack:{T}           string: the accepted pack's canonical JSON
 *   policy:rulepack:{T}:meta      hash: pack_id, version, sha256, rules,
 *                                 patterns, event_id, published_by,
 *                                 accepted_at, previous_version, signers,
 *                                 signatures (the pack's, compact JSON: what
 *                                 lets an edge verify the pack again)
 *   policy:rulepack:{T}:history   list: SHA-256 of earlier packs, newest first
 *   gov:{tenants}:rulepack        set: tenants that have a pack (both index
 *                                 sets share one slot: one SUNION reads
 *                                 them; they replace constitution:tenants and
 *                                 policy:rulepack:tenants, moved over by
 *                                 gov_state_tenants_read)
 *   policy:decision:{T}:<id>      hash of a PolicyDecision, with a TTL
 *   audit:{T}                     stream: the tenant's hash chain
 *   audit:{T}:head                hash: hash, seq of the last entry
 *   audit:{T}:ids                 hash: event_id -> stream entry id
 *   audit:{T}:relay               hash: policy.decisions partition -> the
 *                                 highest source offset of a relay copy the
 *                                 chain handled (no TTL: one field a partition)
 *   audit:{T}:decision_ids        no longer written (a decision_id's owner is
 *                                 its record's event_id field)
 *   gov:applied:{T}:<group>:<topic>:<partition>
 *                                 string: the last offset of that partition
 *                                 applied to this tenant's keys
 *   gov:offsets:<group>:<topic>:<partition>
 *                                 string: the partition's watermark, the
 *                                 last offset whose effect is durable
 *
 * {T} is a Redis Cluster hash tag, so all of a tenant's keys share a slot and
 * one script can write them together: every script touches exactly one
 * slot.  A writer that materializes a Kafka message takes the message's
 * position (gov_state_pos_t) and writes the tenant's applied offset in the
 * same script as the state, so state and offset never disagree.  What is
 * global - the tenant indexes, the partition watermark - is written by a
 * separate single-key command after the script: the indexes by an
 * idempotent SADD, the watermark by gov_processor once the message is done.
 * The watermark is how a processor notices that Redis lost writes (flushed,
 * an older snapshot restored, a failover): it is missing or lower than what
 * the processor wrote last (docs/contracts.md, "Rebuilding Redis").
 *
 * What it does not do: decide.  Whether a bundle verifies, a pack is a
 * rollback or an event is poison is the processors' business; this module
 * stores and fetches what they decided.
 *
 * Thread-safety: functions use the caller's gov_redis_t (one per thread); a
 * gov_state_audit_t belongs to one thread.  Key builders are pure and
 * thread-safe.
 */
#ifndef GOV_STATE_H
#define GOV_STATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gov_constitution.h"
#include "gov_err.h"
#include "gov_redis.h"
#include "gov_util.h"

/* --- keys ------------------------------------------------------------------ */

/* Room for any key this module builds, terminator included. */
#define GOV_STATE_KEY_MAX 320

/* The keys of one tenant's state, each inside the {T} hash tag. */
typedef enum gov_state_key {
    GOV_STATE_CONSTITUTION,           /* constitution:{T} */
    GOV_STATE_CONSTITUTION_DOC,       /* constitution:{T}:doc */
    GOV_STATE_CONSTITUTION_HISTORY,   /* constitution:{T}:history */
    GOV_STATE_RULEPACK,               /* policy:rulepack:{T} */
    GOV_STATE_RULEPACK_META,          /* policy:rulepack:{T}:meta */
    GOV_STATE_RULEPACK_HISTORY,       /* policy:rulepack:{T}:history */
    GOV_STATE_AUDIT,                  /* audit:{T} */
    GOV_STATE_AUDIT_HEAD,             /* audit:{T}:head */
    GOV_STATE_AUDIT_IDS,              /* audit:{T}:ids */
    GOV_STATE_AUDIT_DECISION_IDS,     /* audit:{T}:decision_ids */
} gov_state_key_t;

/* Where a Kafka message came from: what the offset keys are built from.
 * The strings are borrowed. */
typedef struct gov_state_pos {
    const char *processor;   /* the processor's consumer group, "gov-audit" by
                                default: separate deployments sharing a Redis
                                keep separate offsets */
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *tenant;      /* the event's tenant: whose slot holds the
                                applied offset (NULL: none, watermark only) */
} gov_state_pos_t;

/* Writes the tenant's key of the given kind into out.  GOV_ERR_TOO_LARGE
 * when tenant is longer than GOV_TENANT_MAX, GOV_ERR_INVALID_ARG when it is
 * not a tenant id (gov_tenant_valid) or kind is unknown; out is then "".
 * Never truncates. */
gov_err_t gov_state_key(gov_state_key_t kind, const char *tenant, char out[GOV_STATE_KEY_MAX]);

/* policy:decision:{T}:<decision_id>; decision_id has the tenant id syntax
 * (a UUID does).  Errors as gov_state_key. */
gov_err_t gov_state_decision_key(const char *tenant, const char *decision_id,
                                 char out[GOV_STATE_KEY_MAX]);

/* gov:applied:{T}:<processor>:<topic>:<partition>, the tenant's applied
 * offset (in the tenant's slot).  GOV_ERR_INVALID_ARG for a tenant that is
 * not a tenant id, a missing or empty name, a ':' in one, or a negative
 * partition; GOV_ERR_TOO_LARGE when the key would not fit. */
gov_err_t gov_state_offset_key(const gov_state_pos_t *pos, char out[GOV_STATE_KEY_MAX]);

/* gov:offsets:<processor>:<topic>:<partition>, the partition's watermark
 * (pos->tenant and pos->offset are not used).  Errors as
 * gov_state_offset_key. */
gov_err_t gov_state_watermark_key(const gov_state_pos_t *pos, char out[GOV_STATE_KEY_MAX]);

/* The two tenant index sets (static strings). */
const char *gov_state_constitution_index_key(void);   /* gov:{tenants}:constitution */
const char *gov_state_rulepack_index_key(void);       /* gov:{tenants}:rulepack */

/* --- offsets ---------------------------------------------------------------- */

/* Records pos->offset as applied to pos->tenant without writing state (a
 * rejection, a replay).  One SET in the tenant's slot. */
gov_err_t gov_state_offset_write(gov_redis_t *r, const gov_state_pos_t *pos, char *errbuf,
                                 size_t errbuf_size);

/* Reads the tenant's applied offset for pos's partition (the key of
 * gov_state_offset_key; pos->offset is not used) into *applied: -1 when
 * there is none or it is not a decimal offset (Redis is not trusted to hold
 * what we wrote).  What gov-constitution and gov-rulepacks check before
 * judging a message (gov_processor_tenant_applied): a message at or below
 * it was applied for the tenant already.  One GET. */
gov_err_t gov_state_applied_read(gov_redis_t *r, const gov_state_pos_t *pos, int64_t *applied,
                                 char *errbuf, size_t errbuf_size);

/* Sets the partition's watermark to pos->offset and gives the value it
 * replaced in *previous (-1 when there was none): one SET ... GET, so a
 * watermark that vanished or went back since the processor last wrote it is
 * seen by the write itself. */
gov_err_t gov_state_watermark_swap(gov_redis_t *r, const gov_state_pos_t *pos, int64_t *previous,
                                   char *errbuf, size_t errbuf_size);

/* Puts the partition's watermark back to pos->offset, or deletes it when
 * pos->offset is -1 (after lost writes were found: a restart must resume
 * from what Redis really holds).  One SET or DEL. */
gov_err_t gov_state_watermark_reset(gov_redis_t *r, const gov_state_pos_t *pos, char *errbuf,
                                    size_t errbuf_size);

/* Reads the partition's watermark into *value (-1 when there is none, or
 * when the key holds something that is not an offset).  One GET. */
gov_err_t gov_state_watermark_read(gov_redis_t *r, const gov_state_pos_t *pos, int64_t *value,
                                   char *errbuf, size_t errbuf_size);

/* --- constitution ---------------------------------------------------------- */

#define GOV_STATE_CONSTITUTION_HISTORY_MAX 100

/* A tenant's current constitution as gov-constitution needs it (owned
 * strings; gov_state_constitution_clear). */
typedef struct gov_state_constitution {
    char *version;          /* NULL: none yet */
    char *checksum;
    char *history[GOV_STATE_CONSTITUTION_HISTORY_MAX];
    size_t nhistory;
    char *document;         /* the in-force canonical document; NULL when absent */
    size_t document_len;
    int has_signatures;     /* 1 when its bundle's signatures are stored too */
    int announced;          /* 1 when its ConstitutionUpdated and accepted
                               audit event were acknowledged by Kafka */
    char *hash_alg, *canonicalization, *signatures;   /* stored with it; NULL if absent */
    int document_too_large; /* 1: the stored document is beyond GOV_STATE_DOC_MAX
                               (not read; document is NULL) */
} gov_state_constitution_t;

/* Reads version, checksum, history and the in-force document (its
 * governance binds the successor).  On error cur is empty.  Cost: three
 * commands, O(history + document). */
gov_err_t gov_state_constitution_read(gov_redis_t *r, const char *tenant,
                                      gov_state_constitution_t *cur, char *errbuf,
                                      size_t errbuf_size);
void gov_state_constitution_clear(gov_state_constitution_t *cur);

/* Runs gov_constitution_verify (no current state) over a stored bundle:
 * the document bytes, its forms, checksum and signatures (compact JSON as
 * stored; NULL when absent) against trust - Redis is not a trust root, so
 * what it holds counts only once it verifies here.  All borrowed.  Fills *v
 * (gov_verdict_clear after); GOV_OK whenever a verdict was reached
 * (missing signatures or document: REJECT no_signatures).  Cost: one
 * verification. */
gov_err_t gov_state_constitution_reverify(const gov_trust_t *trust, const char *tenant,
                                          const char *doc, size_t doc_len,
                                          const char *canonicalization, const char *hash_alg,
                                          const char *checksum, const char *signatures,
                                          gov_verdict_t *v);

/* Fills st with pointers borrowed from cur, for gov_constitution_verify. */
void gov_state_constitution_view(const gov_state_constitution_t *cur,
                                 gov_constitution_state_t *st);

/* An accepted constitution (all borrowed). */
typedef struct gov_state_constitution_accepted {
    const char *tenant;
    const char *checksum;
    const char *hash_alg;
    const char *canonicalization;
    const char *version;
    const char *signers;        /* comma-separated, sorted */
    const char *source;
    const char *bundle_event_id;
    long long verified_at_us;
    const char *canonical;
    size_t canonical_len;
    /* The bundle's signatures as compact JSON, [{"signer_id","algorithm",
     * "signature"}...]: stored so every edge can run gov_constitution_verify
     * again over the canonical document (Redis is not a trust root). */
    const char *signatures;
} gov_state_constitution_accepted_t;

/* Writes the accepted constitution, pushes the previous checksum to the
 * history (capped) and writes pos's offset, in one script - only if the
 * current checksum is still expected_checksum (NULL: none).  Then adds the
 * tenant to gov:{tenants}:constitution.  GOV_ERR_CONFLICT when another writer got
 * there first: re-read and verify again.  Cost: one script, one SADD. */
gov_err_t gov_state_constitution_write(gov_redis_t *r, const gov_state_constitution_accepted_t *a,
                                       const char *expected_checksum, const gov_state_pos_t *pos,
                                       char *errbuf, size_t errbuf_size);

/* Stores `signatures` (compact JSON) beside the tenant's constitution when
 * its checksum is still `checksum` and it has none: a constitution
 * materialized before signatures were stored becomes verifiable by the
 * edges when its bundle is replayed.  One script; no-op otherwise. */
gov_err_t gov_state_constitution_add_signatures(gov_redis_t *r, const char *tenant,
                                                const char *checksum, const char *signatures,
                                                char *errbuf, size_t errbuf_size);

/* Records that the events announcing the tenant's constitution `checksum`
 * were acknowledged (field `announced` of constitution:{T}), when it is
 * still the current one: a replay of it is then silent.  One script. */
gov_err_t gov_state_constitution_announced(gov_redis_t *r, const char *tenant,
                                           const char *checksum, char *errbuf,
                                           size_t errbuf_size);

/* SADD gov:{tenants}:constitution tenant (idempotent). */
gov_err_t gov_state_constitution_index(gov_redis_t *r, const char *tenant, char *errbuf,
                                       size_t errbuf_size);

/* --- rule pack ------------------------------------------------------------- */

#define GOV_STATE_RULEPACK_HISTORY_MAX 100

/* A tenant's current rule pack as gov-rulepacks needs it (owned memory;
 * gov_state_rulepack_clear). */
typedef struct gov_state_rulepack {
    char *canonical;              /* NULL: the tenant has no pack */
    size_t canonical_len;
    char sha256[GOV_SHA256_HEXLEN + 1];   /* of canonical, computed here; "" when none */
    char *event_id;               /* meta: the RulePackPublished that made it current */
    char *previous_version;       /* meta: version it replaced ("" none); NULL if unknown */
    int has_signatures;           /* meta: 1 when its signatures are stored too */
    char *signatures;             /* meta: those signatures (compact JSON); NULL when
                                     absent or beyond GOV_STATE_FIELD_MAX */
    char *history[GOV_STATE_RULEPACK_HISTORY_MAX];
    size_t nhistory;
} gov_state_rulepack_t;

/* Reads the tenant's pack, meta fields and history atomically (one script).
 * GOV_ERR_STATE (errbuf naming the key) when one of the keys holds another
 * Redis type or the pack is beyond the pack bound (not sent): the state was
 * damaged by hand.  Cost: O(pack + history). */
gov_err_t gov_state_rulepack_read(gov_redis_t *r, const char *tenant, gov_state_rulepack_t *cur,
                                  char *errbuf, size_t errbuf_size);
void gov_state_rulepack_clear(gov_state_rulepack_t *cur);

/* 1 when sha256 hex is the current pack's or in its history. */
int gov_state_rulepack_knows(const gov_state_rulepack_t *cur, const char *sha256);

/* An accepted pack (all borrowed). */
typedef struct gov_state_rulepack_accepted {
    const char *tenant;
    const char *canonical;
    size_t canonical_len;
    const char *sha256;
    const char *pack_id;
    const char *version;
    size_t rules;
    size_t patterns;
    const char *event_id;
    const char *published_by;
    long long accepted_at_us;
    const char *previous_version;   /* "" when none */
    /* The pack's signatures as compact JSON [{"signer_id","algorithm",
     * "signature"}...] and the signers that counted (comma-separated):
     * stored so every edge verifies the pack again (Redis is not a trust
     * root). */
    const char *signatures;
    const char *signers;
} gov_state_rulepack_accepted_t;

/* Writes the accepted pack and its meta hash, pushes the previous pack's
 * SHA-256 to the history (capped) and writes pos's offset, in one script -
 * only if the tenant's pack is still exactly cur->canonical (none when
 * NULL).  Then adds the tenant to gov:{tenants}:rulepack.
 * GOV_ERR_CONFLICT when another writer got there first.  Cost: one script
 * carrying both packs, one SADD. */
gov_err_t gov_state_rulepack_write(gov_redis_t *r, const gov_state_rulepack_accepted_t *a,
                                   const gov_state_rulepack_t *cur, const gov_state_pos_t *pos,
                                   char *errbuf, size_t errbuf_size);

/* Stores `signatures` and `signers` in the tenant's pack meta when its pack
 * is still the one of SHA-256 hex `sha256` and has no signatures: a pack
 * materialized before packs were signed becomes verifiable by the edges
 * when its signed event is replayed.  *stored is 1 when it wrote.  One
 * script. */
gov_err_t gov_state_rulepack_add_signatures(gov_redis_t *r, const char *tenant,
                                            const char *sha256, const char *signatures,
                                            const char *signers, int *stored, char *errbuf,
                                            size_t errbuf_size);

/* SADD gov:{tenants}:rulepack tenant (idempotent). */
gov_err_t gov_state_rulepack_index(gov_redis_t *r, const char *tenant, char *errbuf,
                                   size_t errbuf_size);

/* --- what gov-edge serves --------------------------------------------------- */

/* The union of both tenant indexes (owned; gov_state_tenants_clear).  Names
 * are what Redis holds: not validated. */
typedef struct gov_state_tenants {
    redisReply *reply_;   /* private */
    size_t count;
} gov_state_tenants_t;

/* SUNION of gov:{tenants}:constitution and gov:{tenants}:rulepack (one slot).
 * First moves the legacy sets constitution:tenants and
 * policy:rulepack:tenants, where a single-node Redis still holds them, into
 * those keys (atomically, then deleted), so an existing deployment needs no
 * operator step and a member an older writer adds during a rolling upgrade
 * is picked up by the next read.  Cost: three round trips. */
gov_err_t gov_state_tenants_read(gov_redis_t *r, gov_state_tenants_t *out, char *errbuf,
                                 size_t errbuf_size);
/* Borrowed name i (< count) and its length. */
const char *gov_state_tenants_get(const gov_state_tenants_t *t, size_t i, size_t *len);
void gov_state_tenants_clear(gov_state_tenants_t *t);

/* One tenant's served state, read with MULTI/EXEC so the constitution and
 * the pack belong together.  Pointers borrow from the private reply and stay
 * valid until gov_state_served_clear.  A string is NULL when absent. */
typedef struct gov_state_served {
    redisReply *reply_;   /* private */
    const char *checksum, *hash_alg, *canonicalization, *version, *verified_at, *signers,
        *source, *signatures;   /* constitution:{T} fields */
    const char *previous_checksum, *replaced_at;   /* the replacement (NULL: none) */
    const char *doc;      /* constitution:{T}:doc */
    size_t doc_len;
    const char *pack;     /* policy:rulepack:{T} */
    size_t pack_len;
    const char *pack_signatures;   /* policy:rulepack:{T}:meta signatures */
    int answered;         /* 1 once the transaction's reply arrived, even when
                             its shape was wrong */
} gov_state_served_t;

/* Bounds on what gov-edge reads from Redis (docs/contracts.md "State size
 * bounds"): a constitution document (gov-constitution's max_document upper
 * bound), a rule pack (the fixed pack limit) and any one hash field. */
#define GOV_STATE_DOC_MAX (16u * 1024 * 1024)
#define GOV_STATE_FIELD_MAX (64u * 1024)
/* The rule pack bound: gov_rulepack_limits_default().max_bytes. */
size_t gov_state_served_pack_max(void);

/* Reads what gov-edge serves for tenant in one script (atomic, so the
 * constitution and the pack belong together), which checks every key's
 * type and every value's size BEFORE sending any value.  GOV_ERR_REDIS
 * (with answered = 1) for a key of another type or a reply of the wrong
 * shape; GOV_ERR_TOO_LARGE (answered = 1) for a value beyond its bound
 * (nothing of it was sent or allocated); other errors leave answered 0. */
gov_err_t gov_state_served_read(gov_redis_t *r, const char *tenant, gov_state_served_t *out,
                                char *errbuf, size_t errbuf_size);
void gov_state_served_clear(gov_state_served_t *s);

/* Sets *same to 1 when Redis still holds constitution checksum `checksum`
 * and a pack whose SHA-256 hex is `pack_sha256` ("" for none, either).
 * One script that sends the pack only within its bound (a key of another
 * type or a value too large: *same = 0, so the loader reads and refuses
 * it).  Cost: one round trip and one SHA-256 of at most the pack bound.
 * On error *same is 1: nothing should be reloaded on a guess. */
gov_err_t gov_state_served_same(gov_redis_t *r, const char *tenant, const char *checksum,
                                const char *pack_sha256, int *same, char *errbuf,
                                size_t errbuf_size);

/* --- decisions ------------------------------------------------------------- */

/* HGETALL policy:decision:{T}:<id>: *fields is a new reply (an array of
 * field/value pairs; empty when there is no such decision).  In one script
 * that first checks the record's size: more than GOV_STATE_DECISION_FIELDS_MAX
 * fields or more than GOV_STATE_DECISION_BYTES_MAX bytes of names and values
 * (the Kafka message bound the record came from) is GOV_ERR_REDIS (nothing
 * of it sent). */
#define GOV_STATE_DECISION_FIELDS_MAX 64
#define GOV_STATE_DECISION_BYTES_MAX (1024u * 1024)
gov_err_t gov_state_decision_read(gov_redis_t *r, const char *tenant, const char *decision_id,
                                  redisReply **fields, char *errbuf, size_t errbuf_size);

/* The first of the tenant's keys whose Redis type is not the one its
 * scripts write (gov_state_check.c), into key (its name) and type ("string
 * (want hash)"); both "" when every key has its type or is absent.  For the
 * log of a write that failed with WRONGTYPE.  GOV_OK, or the Redis error.
 * Cost: one TYPE per key kind. */
gov_err_t gov_state_wrong_type_key(gov_redis_t *r, const char *tenant, char *key, size_t key_size,
                                   char *type, size_t type_size, char *errbuf,
                                   size_t errbuf_size);

/* --- audit ----------------------------------------------------------------- */

typedef struct gov_state_audit gov_state_audit_t;

/* A new audit writer on redis (borrowed; must outlive it).  decision_ttl_s:
 * the TTL of materialized decisions.  NULL when out of memory. */
gov_state_audit_t *gov_state_audit_new(gov_redis_t *redis, long decision_ttl_s);
void gov_state_audit_free(gov_state_audit_t *s);

/* How long an event_id stays in audit:{T}:ids for dedup (default
 * GOV_STATE_AUDIT_ID_WINDOW_MS, 7 days): longer than any producer retry and
 * than the gap a replay of an unapplied offset can have.  A decision id is
 * known as long as its record policy:decision:{T}:<id> (the decision TTL). */
#define GOV_STATE_AUDIT_ID_WINDOW_MS (7LL * 24 * 3600 * 1000)
/* An applied offset the script did not report. */
#define GOV_STATE_APPLIED_UNKNOWN INT64_MIN
void gov_state_audit_set_id_window(gov_state_audit_t *s, long long window_ms);

/* What an appended event met: nothing, an earlier event with its event_id
 * and other content, or (a PolicyDecision) an earlier decision with its
 * decision_id under another event_id.  A twin is chained as its own entry;
 * a decision record is never overwritten but gets conflicting_event_id. */
typedef enum gov_state_audit_twin {
    GOV_STATE_AUDIT_TWIN_NONE = 0,
    GOV_STATE_AUDIT_TWIN_EVENT_ID,
    GOV_STATE_AUDIT_TWIN_DECISION_ID,
} gov_state_audit_twin_t;

/* Forgets every cached head (after Redis lost writes: the next append of
 * each tenant reads its head again). */
void gov_state_audit_forget(gov_state_audit_t *s);

/* Appends `event` (borrowed, decoded, of schema `type`) to its tenant's chain
 * and, for a PolicyDecision, materializes the decision; pos's offset is
 * written to the tenant's applied offset in the same script (pos->tenant is
 * taken from the event; a compare-and-append on the head; retried against a
 * moved head).  *applied_before (when not NULL): the tenant's applied
 * offset for pos's partition as Redis held it before this call (-1: none,
 * GOV_STATE_APPLIED_UNKNOWN: the script did not answer), for
 * gov_processor_applied.  GOV_OK (appended; *twin, when not NULL, says
 * whether it is a conflicting twin), GOV_ERR_DUPLICATE when the same event_id with the
 * same content is already in the chain (replay: only the offset is
 * written), GOV_ERR_INVALID_ARG for an event that cannot be materialized (reason in
 * errbuf), or a transient error.  Cost: one EVALSHA, more after a cache miss
 * or a concurrent writer. */
gov_err_t gov_state_audit_append(gov_state_audit_t *s, json_t *event, const char *type,
                                 const char *source, const gov_state_pos_t *pos,
                                 gov_state_audit_twin_t *twin, int64_t *applied_before,
                                 char *errbuf, size_t errbuf_size);

/* One event of gov_state_audit_append_batch: the inputs as for
 * gov_state_audit_append (borrowed), and its outcome. */
typedef struct gov_state_audit_item {
    json_t *event;
    const char *type;
    const char *source;
    gov_state_pos_t pos;
    gov_err_t result;                 /* as gov_state_audit_append returns */
    gov_state_audit_twin_t twin;
    int64_t applied_before;
    char errbuf[256];
    /* A PolicyDecision copied by the relay: relay_stamped 1 and the source
     * record's policy.decisions partition, offset and Kafka time (its
     * x-gov-relay-source, gov_relay_source_parse; set only once the caller
     * verified its x-gov-relay-mac: a stamp here is trusted).  At or below
     * the tenant's mark for that partition (audit:{T}:relay: the offset of
     * the last new copy and the latest time seen) in both offset and time it
     * is a replay (GOV_ERR_DUPLICATE) whatever its age; otherwise it is judged
     * by content and moves the mark to its offset (a later time at a marked
     * offset: the topic was recreated or truncated, and the new incarnation
     * takes the mark over).  0: judged by content alone.  Ignored on an
     * AuditEvent. */
    int relay_stamped;
    int32_t relay_partition;
    int64_t relay_offset;
    int64_t relay_time_ms;
} gov_state_audit_item_t;

/* gov_state_audit_append for items[0..n) in order, each with its own
 * result (same dedup, conflict and chain rules, per event): the scripts go
 * as one pipeline (one round trip) chained on the predicted heads; items
 * the pipeline did not settle are appended one by one after it, and once
 * an item of a tenant failed transiently the tenant's later items are not
 * applied (GOV_ERR_UNAVAILABLE).  Returns GOV_ERR_NOMEM when the batch
 * could not be started (every result GOV_ERR_INTERNAL), else GOV_OK.
 * Cost: one round trip plus one per item left over. */
gov_err_t gov_state_audit_append_batch(gov_state_audit_t *s, gov_state_audit_item_t *items,
                                       size_t n);

/* XRANGE audit:{T} <start> + COUNT count: *page is a new reply.  start is
 * "-" or an exclusive "(<id>". */
gov_err_t gov_state_audit_range(gov_redis_t *r, const char *tenant, const char *start,
                                size_t count, redisReply **page, char *errbuf,
                                size_t errbuf_size);

/* HMGET audit:{T}:head hash seq: *head is a new reply of two elements. */
gov_err_t gov_state_audit_head_read(gov_redis_t *r, const char *tenant, redisReply **head,
                                    char *errbuf, size_t errbuf_size);


/* --- archive (gov_state_archive.c) ------------------------------------------ */

#include "gov_audit_chain.h"

/* A tenant's archive marks (docs/contracts.md, "The archive"): the archived
 * watermark audit:{T}:archive and the trim anchor audit:{T}:anchor.  Strings
 * are copies; seq 0 with empty strings when absent. */
typedef struct gov_state_archive_mark {
    char component[128];       /* the owning gov-archive deployment; "" none */
    uint64_t seq;              /* last archived entry; 0 none */
    char hash[GOV_SHA256_HEXLEN + 1];
    char stream_id[48];        /* its stream id "<ms>-<n>" */
    uint64_t anchor_seq;       /* last entry trimmed; 0 none */
    char anchor_hash[GOV_SHA256_HEXLEN + 1];
} gov_state_archive_mark_t;

/* Reads both hashes (one MULTI/EXEC).  GOV_ERR_STATE (errbuf names the key)
 * when a field is not in its canonical form (seq decimal, hash 64 lowercase
 * hex): a mark damaged by hand is never trusted. */
gov_err_t gov_state_archive_mark_read(gov_redis_t *r, const char *tenant,
                                      gov_state_archive_mark_t *out, char *errbuf,
                                      size_t errbuf_size);

/* HSETNX audit:{T}:archive component <component>; *owner (owner_size) gets
 * the owner after the call (component when the claim won). */
gov_err_t gov_state_archive_claim(gov_redis_t *r, const char *tenant, const char *component,
                                  char *owner, size_t owner_size, char *errbuf,
                                  size_t errbuf_size);

/* What gov_state_archive_advance found. */
typedef enum gov_state_archive_outcome {
    GOV_STATE_ARCHIVE_ADVANCED = 0,   /* watermark moved (and trimmed, if asked) */
    GOV_STATE_ARCHIVE_CONFLICT,       /* the watermark was not expected_seq */
    GOV_STATE_ARCHIVE_NOT_OWNER,      /* another deployment owns the tenant */
} gov_state_archive_outcome_t;

/* One script in the tenant's slot: when audit:{T}:archive names component
 * (or nobody) and holds seq expected_seq (0: none), sets it to the entry
 * (seq, hash, stream_id) and segment, archived_at_us; then, when trim, and
 * the stream's entry at stream_id still has that seq and hash, XTRIM MINID
 * just past it (exactly the archived entries) and sets audit:{T}:anchor to
 * (seq, hash).  *trimmed: entries removed (0 when not trimmed).  Never
 * trims past the watermark it sets. */
gov_err_t gov_state_archive_advance(gov_redis_t *r, const char *tenant, const char *component,
                                    uint64_t expected_seq, uint64_t seq, const char *hash,
                                    const char *stream_id, const char *segment,
                                    long long archived_at_us, int trim,
                                    gov_state_archive_outcome_t *outcome, long long *trimmed,
                                    char *errbuf, size_t errbuf_size);

/* Calls fn once for each tenant that has a chain head (SCAN MATCH
 * audit:{*}:head, COUNT 1000, on every master of a Redis Cluster's slot map,
 * merged), in name order, at most max_tenants of them (the first found).
 * Names are validated (gov_tenant_valid); others are skipped.  Nothing is
 * called when a node fails.  Cost: a full SCAN of the keyspace, O(n log n)
 * to merge, max_tenants * 65 bytes of memory. */
gov_err_t gov_state_archive_discover(gov_redis_t *r, size_t max_tenants,
                                     void (*fn)(void *ctx, const char *tenant), void *ctx,
                                     char *errbuf, size_t errbuf_size);

/* Reads one XRANGE element of audit:{T} as the bytes that were hashed
 * (docs/contracts.md, "Audit chain entries"): exactly the eight fields
 * once each, seq and occurred_at in their own decimal form, no NUL outside
 * payload, hashes 64 lowercase hex.  *e, *stored_hash and *stream_id borrow
 * from ent.  Returns 0, or -1 with why (a sentence) filled in. */
int gov_state_audit_entry_parse(const redisReply *ent, gov_audit_entry_t *e,
                                const char **stored_hash, const char **stream_id, char *why,
                                size_t why_size);

/* 1 when s[0..len) is exactly the decimal "%" PRIu64 (is_signed 0) or
 * "%" PRId64 (1) writes for the value it reads as (*out). */
int gov_state_decimal_canonical(const char *s, size_t len, int is_signed, int64_t *out);

#endif /* GOV_STATE_H */
