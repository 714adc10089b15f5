/* gov_spool.h - gov-edge's durable decision spool: every decision log
 * record is written here before the answer is sent, and a drain thread
 * hands the records to Kafka in order, forgetting one only once Kafka
 * acknowledged it (docs/contracts.md, "Decision spool").
 *
 * A spool is one file, <dir>/decisions.spool: a 4 KiB header page (format,
 * capacity, the acknowledged cursor in two alternating slots) and a ring of
 * `capacity` bytes of gov_spool_frame records, mapped MAP_SHARED.  Appending
 * is a memcpy into the mapping under a mutex - no syscall - so a kill -9
 * loses nothing appended (the pages are the kernel's); a power loss loses
 * at most what was appended since the last msync (every sync_ms).  At open
 * the records after the cursor are found again (a torn last record is cut
 * and counted; damage a crash cannot explain - intact records behind a bad
 * one, a lost cursor, a header failing its CRC - refuses the open and
 * leaves the file as it is) and are sent again: delivery into Kafka is at-least-once,
 * and gov-audit's dedup by event_id and content digest makes the chain
 * exactly-once (the bytes sent again are the same bytes).
 *
 * Thread-safety: gov_spool_append from any thread; open/start/stop/free
 * from one thread.
 */
#ifndef GOV_SPOOL_H
#define GOV_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_kafka.h"
#include "gov_metrics.h"
#include "gov_status.h"

typedef struct gov_spool gov_spool_t;

/* The largest record (key + value) the spool takes: librdkafka's default
 * message.max.bytes, which the producers here do not change.  A larger one
 * would be accepted, answered, and then refused by librdkafka for good,
 * wedging the drain at its seq (REVIEW13 L5); it is refused at append
 * instead, so the decision is not answered (503). */
#define GOV_SPOOL_RECORD_MAX 1000000u

typedef struct gov_spool_config {
    const char *dir;       /* created (0700) when missing; borrowed */
    uint64_t capacity;     /* ring bytes (a multiple of 8; a new file only) */
    long sync_ms;          /* msync period; 0: the kernel's writeback only */
    long degraded_pct;     /* readiness DEGRADED at or above this fill */
    const char *topic;     /* where the drain sends; borrowed */
} gov_spool_config_t;

typedef struct gov_spool_stats {
    uint64_t capacity;     /* ring bytes */
    uint64_t bytes;        /* bytes held (unacknowledged, wrap waste included) */
    uint64_t records;      /* records not yet acknowledged */
    uint64_t next_seq;     /* seq of the next record appended */
    uint64_t replayed;     /* records found unacknowledged at open */
    uint64_t torn_bytes;   /* bytes of a torn last record cut at open */
    uint64_t refused;      /* appends refused: full */
    uint64_t resent;       /* records handed to Kafka again after a failure */
} gov_spool_stats_t;

/* Opens (creating when missing) the spool in cfg->dir, takes its lock
 * (flock: a second process on the same directory is refused,
 * GOV_ERR_EXISTS), reserves its disk (posix_fallocate: a full disk is
 * found here, never as a SIGBUS later), maps it and finds the records
 * after the cursor.  A file of another capacity keeps its own (logged).
 * GOV_ERR_IO / GOV_ERR_PARSE (not a spool file, or damaged: the seqs in
 * errbuf) / GOV_ERR_CONFIG (directory or file open to group or others, or
 * not ours) / GOV_ERR_NOMEM with detail in errbuf.  *out is new; free with gov_spool_free.  Cost: one pass over
 * the unacknowledged records (CRC of each). */
gov_err_t gov_spool_open(const gov_spool_config_t *cfg, gov_spool_t **out, char *errbuf,
                         size_t errbuf_size);

/* Appends one record (key and value copied).  GOV_OK once it is in the
 * mapping; GOV_ERR_UNAVAILABLE when the spool is full (counted: refused);
 * GOV_ERR_TOO_LARGE when the record could never fit, or key_len + len is
 * over GOV_SPOOL_RECORD_MAX (Kafka would never take it).  No syscall; O(len)
 * (a memcpy and a CRC-32C) under the spool's mutex. */
gov_err_t gov_spool_append(gov_spool_t *s, const void *key, size_t key_len, const void *value,
                           size_t len);

/* Starts the drain thread: records go to p (borrowed; must outlive the
 * spool's stop) as groups of up to 512 messages; an acknowledged group
 * moves the cursor; a failed one makes the drain wait for every group out,
 * then send again from the cursor.  Registers the decision_spool_* metrics
 * in reg and the readiness component "decision_spool" in st (both borrowed,
 * may be NULL).  GOV_ERR_NOMEM / GOV_ERR_INTERNAL. */
gov_err_t gov_spool_start(gov_spool_t *s, gov_kafka_producer_t *p, gov_metrics_t *reg,
                          gov_status_t *st, char *errbuf, size_t errbuf_size);

/* Stops the drain thread (when running) after waiting up to wait_ms for
 * the records to be acknowledged (not when Kafka is failing: they stay for
 * the next start), then waits what is left of wait_ms for the groups still
 * out to report, and moves the cursor past those acknowledged.  Returns the
 * groups still out (0: nothing of the producer refers to s any more; else
 * purge the producer and call again).  NULL: 0. */
int gov_spool_stop(gov_spool_t *s, int wait_ms);

/* Syncs, unmaps, unlocks and frees.  Only after gov_spool_stop returned 0
 * (or when never started).  NULL is a no-op. */
void gov_spool_free(gov_spool_t *s);

/* A consistent copy of the counters.  O(1). */
void gov_spool_stats(gov_spool_t *s, gov_spool_stats_t *out);

#endif /* GOV_SPOOL_H */
