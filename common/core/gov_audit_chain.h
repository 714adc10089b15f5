/* gov_audit_chain.h - the tamper-evident hash chain of audit:{T} streams.
 *
 * Each entry of a tenant's audit stream carries the hash of the entry before
 * it (prev_hash) and its own hash:
 *
 *   hash = hex(SHA-256("soma-audit-v1" || LP(prev_hash) || LP(seq) ||
 *                      LP(event_id) || LP(type) || LP(occurred_at) ||
 *                      LP(source) || LP(payload)))
 *   LP(x) = decimal byte length of x || ":" || x
 *
 * seq and occurred_at are decimal integers; prev_hash of the first entry is
 * 64 '0's (GOV_AUDIT_GENESIS).  Length prefixes make the encoding injective:
 * no two different entries hash the same input.  Changing, removing,
 * inserting or reordering any entry breaks the chain at that point, which
 * gov_audit_chain_check finds.
 *
 * Pure: no I/O, no globals.  Thread-safe.
 */
#ifndef GOV_AUDIT_CHAIN_H
#define GOV_AUDIT_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_util.h"

#define GOV_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

typedef struct gov_audit_entry {
    const char *prev_hash;   /* 64 hex chars */
    uint64_t seq;            /* 1-based position in the chain */
    const char *event_id;
    const char *type;        /* Avro schema name of the event */
    int64_t occurred_at;     /* microseconds */
    const char *source;      /* "<topic>/<partition>/<offset>" it came from */
    const char *payload;     /* the event as compact JSON with sorted keys */
    size_t payload_len;
} gov_audit_entry_t;

/* Computes the entry's hash as 64 lowercase hex chars + NUL. */
gov_err_t gov_audit_chain_hash(const gov_audit_entry_t *e,
                               char out[GOV_SHA256_HEXLEN + 1]);

typedef enum gov_audit_break {
    GOV_AUDIT_INTACT = 0,
    GOV_AUDIT_BAD_PREV = 1,   /* prev_hash is not the previous entry's hash */
    GOV_AUDIT_BAD_SEQ = 2,    /* seq is not previous seq + 1 */
    GOV_AUDIT_BAD_HASH = 3,   /* stored hash differs from the recomputed one */
    GOV_AUDIT_MALFORMED = 4,  /* a field is missing or unparsable */
} gov_audit_break_t;

/* Checks one entry against the expected predecessor (expected_prev: hash of
 * the previous entry or GOV_AUDIT_GENESIS; expected_seq: its seq + 1) and
 * its stored hash. */
gov_audit_break_t gov_audit_chain_check(const gov_audit_entry_t *e,
                                        const char *stored_hash,
                                        const char *expected_prev,
                                        uint64_t expected_seq);

/* Static reason text for a break. */
const char *gov_audit_break_str(gov_audit_break_t b);

/* The relay's stamp on a copy of a policy.decisions record
 * (x-gov-relay-source: "<partition>/<offset>/<time>" of the source record,
 * time its Kafka timestamp in ms, 0 when it has none; docs/contracts.md,
 * "The decision relay").  The time tells two incarnations of one offset
 * apart: a topic deleted and recreated, or a partition truncated (an
 * unclean leader election, a lone broker's power loss), gives new records
 * offsets the chain has already marked - but later times.  Decimal, no
 * sign, no leading zero, partition <= GOV_RELAY_PARTITION_MAX, offset and
 * time <= GOV_RELAY_OFFSET_MAX (2^53: the chain's Lua compares them as
 * doubles, exact below it).  GOV_OK and the three outputs; GOV_ERR_PARSE
 * for anything else (a two-part stamp of an older relay included; the
 * outputs untouched).  s is len bytes, not necessarily NUL-terminated.
 * Pure; cost O(len), len bounded by GOV_RELAY_SOURCE_MAX. */
#define GOV_RELAY_SOURCE_HEADER "x-gov-relay-source"
#define GOV_RELAY_PARTITION_MAX 1000000L
#define GOV_RELAY_OFFSET_MAX (1LL << 53)
#define GOV_RELAY_SOURCE_MAX 48 /* longest valid stamp + NUL, with room */
gov_err_t gov_relay_source_parse(const char *s, size_t len, int32_t *partition, int64_t *offset,
                                 int64_t *time_ms);

/* The relay's authentication of a stamp (x-gov-relay-mac): hex
 * HMAC-SHA256(key, "soma-relay-v1" || LP(stamp) || value) over the stamp
 * and the copied record's bytes, with a key every gov-audit deployment of
 * the cluster shares (relay_key_file).  Without it any producer of
 * identity.audit could stamp a forged decision with a source offset beyond
 * the relay's and so make the relay's later copies replays; with it a
 * stamp is only honoured on the bytes the relay copied.  key: at least
 * GOV_RELAY_KEY_MIN bytes.  gov_relay_mac: GOV_OK and out (64 hex + NUL),
 * GOV_ERR_INVALID_ARG (short key), GOV_ERR_CRYPTO.  gov_relay_mac_ok: 1
 * when mac (mac_len bytes, lowercase hex) is the stamp's, compared in
 * constant time; 0 otherwise.  Pure; cost one HMAC pass over value. */
#define GOV_RELAY_MAC_HEADER "x-gov-relay-mac"
#define GOV_RELAY_KEY_MIN 32
gov_err_t gov_relay_mac(const void *key, size_t key_len, const char *stamp, size_t stamp_len,
                        const void *value, size_t len, char out[GOV_SHA256_HEXLEN + 1]);
int gov_relay_mac_ok(const void *key, size_t key_len, const char *stamp, size_t stamp_len,
                     const void *value, size_t len, const char *mac, size_t mac_len);

#endif /* GOV_AUDIT_CHAIN_H */
