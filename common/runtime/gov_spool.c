/* gov_spool.c - the durable decision spool (gov_spool.h;
 * docs/contracts.md, "Decision spool").
 *
 * What: a bounded, crash-safe FIFO of decision log records between
 * gov-edge's HTTP threads and Kafka, so a Kafka outage costs no decision:
 * the spool rides it out, and when it is full the edge refuses to decide
 * (503 decision_log_full) instead of deciding without a record.
 *
 * How: the file is mapped MAP_SHARED; positions are logical byte offsets
 * (lsn) that only grow, a ring offset being lsn % capacity.  Appenders
 * write a frame at write_lsn under the mutex (a frame that would cross the
 * ring's end is preceded by a wrap marker and starts at 0).  The drain
 * thread walks [send_lsn, write_lsn) - bytes no appender touches again
 * until they are acknowledged - and produces them as groups of up to
 * BATCH_MAX (gov_kafka_group_*), at most INFLIGHT groups out.  Groups are
 * retired in order: the cursor (ack_lsn, ack_seq) moves past a group only
 * when it and every group before it were acknowledged, and is stored in the
 * header's alternate slot (two 8-byte-aligned stores a kill cannot tear
 * into a valid-looking slot: each slot has its CRC).  A failed group
 * (message.timeout.ms ran out: Kafka is down) stops new sends; once every
 * group out has reported, sending starts again from the cursor after a
 * pause - in order, at-least-once.  Appenders wake the drain only when it
 * sleeps, so a busy spool costs no futex call per record.  At open only a
 * torn last frame is cut (what a kill -9 leaves); any damage behind which
 * intact records remain, a lost cursor or a header failing its CRC refuses
 * the open, since cutting there would overwrite answered records.
 *
 * Not: no compaction, no multi-file segments (one preallocated ring), no
 * sharing between processes (flock), no reading by other tools.
 */
#include "gov_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_log.h"
#include "gov_spool_frame.h"
#include "gov_time.h"

#define HEADER_PAGE 4096u
#define SLOT_OFF 64u
#define BATCH_MAX 512
#define INFLIGHT 32
#define RETRY_PAUSE_MS 500
#define TICK_MS 250

enum { BATCH_OUT = 1, BATCH_ACKED = 2, BATCH_FAILED = 3 };

typedef struct spool_batch {
    gov_spool_t *s;
    uint64_t start_seq;          /* its first record */
    uint64_t end_lsn, end_seq;   /* the cursor once this batch is acknowledged */
    uint64_t unqueued_seq;       /* a record librdkafka would not queue (0: none) */
    int state;                   /* under s->mu */
} spool_batch_t;

struct gov_spool {
    int fd;
    uint8_t *map;                /* header page, then the ring */
    size_t map_len;
    uint8_t *ring;
    uint64_t cap;
    char *topic;
    long sync_ms, degraded_pct;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t write_lsn, next_seq;   /* appenders (mu) */
    uint64_t ack_lsn, ack_seq;      /* drain (mu) */
    uint64_t send_lsn, send_seq;    /* drain only */
    uint64_t cursor_gen;            /* drain only */
    spool_batch_t batches[INFLIGHT];
    unsigned head, out;             /* batches[head .. head+out) in order (mu) */
    int failing;                    /* a batch failed: resend once all reported (mu) */
    uint64_t refused_seq;           /* the cursor seq Kafka last refused (mu) */
    int64_t refused_logged_us;      /* when that was last logged at error (mu) */
    int drain_sleeping;             /* mu */
    int stop;                       /* mu */
    uint64_t replayed, torn_bytes, refused, resent;
    uint64_t refused_need;          /* frame bytes of the last refused append (mu) */
    uint64_t sync_errors;           /* msync failures (mu) */
    int sync_errno;                 /* the last one's errno (mu) */
    int opened;                     /* open succeeded: free may note close_seq */

    pthread_t thread;
    int started;
    gov_kafka_producer_t *producer;
    gov_status_t *status;
    gov_metric_t *m_bytes, *m_records, *m_oldest, *m_replayed, *m_refused, *m_resent,
        *m_capacity, *m_sync_errors;
    uint64_t refused_reported;
    uint64_t full_need;             /* drain only: ERROR until this much is free */
};

/* --- file -------------------------------------------------------------------- */

static void store_cursor(gov_spool_t *s) {
    gov_spool_cursor_t c = {.gen = ++s->cursor_gen, .lsn = s->ack_lsn, .seq = s->ack_seq};
    gov_spool_cursor_write(s->map + SLOT_OFF + (c.gen & 1) * GOV_SPOOL_CURSOR_SLOT, &c);
}

/* Loads the newer valid cursor slot.  No valid slot is an empty spool
 * only when nothing says otherwise: both slots all zeros (never stored) and
 * the ring empty or starting with seq 1 (records never acknowledged, so the
 * ring never wrapped).  A slot that holds bytes but fails its CRC, or a
 * ring that starts with another seq, means the cursor was lost: guessing
 * "empty" would overwrite answered records, so open refuses. */
static gov_err_t load_cursor(gov_spool_t *s, const char *path, char *errbuf,
                             size_t errbuf_size) {
    gov_spool_cursor_t a, b, *best = NULL;
    if (gov_spool_cursor_read(s->map + SLOT_OFF, &a) == GOV_OK)
        best = &a;
    if (gov_spool_cursor_read(s->map + SLOT_OFF + GOV_SPOOL_CURSOR_SLOT, &b) == GOV_OK &&
        (best == NULL || b.gen > best->gen))
        best = &b;
    s->cursor_gen = best ? best->gen : 0;
    s->ack_lsn = best ? best->lsn : 0;
    s->ack_seq = best ? best->seq : 1;
    if (best != NULL)
        return GOV_OK;
    static const uint8_t zeros[2 * GOV_SPOOL_CURSOR_SLOT];
    uint64_t first = 0;
    if (memcmp(s->map + SLOT_OFF, zeros, sizeof zeros) != 0) {
        snprintf(errbuf, errbuf_size, "decision spool %s is damaged: neither cursor slot is "
                 "valid, so the unacknowledged records cannot be placed; refusing to start "
                 "rather than overwrite them (keep the file; docs/runbooks/security.md)", path);
        return GOV_ERR_PARSE;
    }
    if (gov_spool_frame_peek(s->ring, s->cap, &first) && first != 1) {
        snprintf(errbuf, errbuf_size, "decision spool %s is damaged: no cursor is stored, but "
                 "its ring starts with seq %llu (a cursor was stored and lost); refusing to "
                 "start rather than overwrite its records (keep the file; "
                 "docs/runbooks/security.md)", path, (unsigned long long)first);
        return GOV_ERR_PARSE;
    }
    return GOV_OK;
}

/* Walks the frames from (*pos, *seq) while they are records or wrap
 * markers with consecutive seqs, never more than one lap past the cursor;
 * returns what ended the walk (END or TORN, *f the frame then) with
 * (*pos, *seq) at it.  O(bytes walked) with a CRC per record. */
static gov_spool_frame_kind_t walk(gov_spool_t *s, uint64_t *pos, uint64_t *seq,
                                   gov_spool_frame_t *f) {
    for (;;) {
        uint64_t phys = *pos % s->cap;
        if (s->cap - phys < GOV_SPOOL_FRAME_HEADER) {
            *pos += s->cap - phys;   /* too little room for a header: an implicit wrap */
            continue;
        }
        gov_spool_frame_kind_t k = gov_spool_frame_read(s->ring + phys, s->cap - phys, *seq, 1, f);
        uint64_t next = k == GOV_SPOOL_FRAME_WRAP ? *pos + (s->cap - phys) : *pos + f->size;
        if ((k == GOV_SPOOL_FRAME_RECORD || k == GOV_SPOOL_FRAME_WRAP) &&
            next - s->ack_lsn > s->cap)
            k = GOV_SPOOL_FRAME_END;   /* never more than one lap */
        if (k == GOV_SPOOL_FRAME_RECORD) {
            *pos = next;
            (*seq)++;
        } else if (k == GOV_SPOOL_FRAME_WRAP) {
            *pos = next;
        } else {
            return k;
        }
    }
}

/* After a TORN frame (seq at lsn pos): is anything intact behind it?  A
 * kill -9 tears only the last frame, so a whole frame of the next seq -
 * right behind it (up to the largest frame, 8-byte steps), or at the
 * ring's start when the torn frame was the lap's last - means the damage
 * is in the middle (a media error, a stray write, a power loss that kept a
 * later page and lost an earlier one).  Sets (*after_pos, *after_seq) to
 * that frame.  O(largest frame / 8) header checks. */
static int intact_after(gov_spool_t *s, uint64_t pos, uint64_t seq, uint64_t *after_pos,
                        uint64_t *after_seq) {
    const size_t span = GOV_SPOOL_FRAME_HEADER + GOV_SPOOL_FRAME_MAX_KEY +
                        GOV_SPOOL_FRAME_MAX_VALUE + 8;
    uint64_t phys = pos % s->cap;
    size_t off;
    if (s->cap - phys > 8 &&
        gov_spool_frame_find(s->ring + phys + 8, s->cap - phys - 8, span, seq + 1, &off) ==
            GOV_OK) {
        *after_pos = pos + 8 + off;
        *after_seq = seq + 1;
        return *after_pos - s->ack_lsn <= s->cap;
    }
    /* a torn wrap marker announces seq itself at offset 0; a torn record,
     * seq + 1 */
    for (uint64_t want = seq; phys != 0 && want <= seq + 1; want++) {
        gov_spool_frame_t f;
        if (gov_spool_frame_read(s->ring, s->cap, want, 1, &f) == GOV_SPOOL_FRAME_RECORD &&
            pos + (s->cap - phys) - s->ack_lsn <= s->cap) {
            *after_pos = pos + (s->cap - phys);
            *after_seq = want;
            return 1;
        }
    }
    return 0;
}

/* Walks the records after the cursor: sets write_lsn/next_seq, cuts a torn
 * last frame (its header zeroed, so it reads as the end from now on).  A
 * torn frame with intact records behind it is not a tail: GOV_ERR_PARSE,
 * naming the seqs, and the file is left as it is (the evidence). */
static gov_err_t scan(gov_spool_t *s, const char *path, char *errbuf, size_t errbuf_size) {
    uint64_t pos = s->ack_lsn, seq = s->ack_seq;
    gov_spool_frame_t f;
    if (walk(s, &pos, &seq, &f) == GOV_SPOOL_FRAME_TORN) {
        uint64_t apos, aseq;
        if (intact_after(s, pos, seq, &apos, &aseq)) {
            uint64_t last = aseq;
            gov_spool_frame_t g;
            walk(s, &apos, &last, &g);
            snprintf(errbuf, errbuf_size, "decision spool %s is damaged: record seq %llu (ring "
                     "offset %llu) fails its check while records seq %llu..%llu follow it "
                     "intact (%llu unacknowledged from seq %llu); refusing to start rather "
                     "than cut them (keep the file; docs/runbooks/security.md)", path,
                     (unsigned long long)seq, (unsigned long long)(pos % s->cap),
                     (unsigned long long)aseq, (unsigned long long)(last - 1),
                     (unsigned long long)(last - s->ack_seq), (unsigned long long)s->ack_seq);
            return GOV_ERR_PARSE;
        }
        s->torn_bytes = f.size;
        memset(s->ring + pos % s->cap, 0, GOV_SPOOL_FRAME_HEADER);
    }
    s->write_lsn = pos;
    s->next_seq = seq;
    s->send_lsn = s->ack_lsn;
    s->send_seq = s->ack_seq;
    s->replayed = seq - s->ack_seq;
    return GOV_OK;
}

/* The spool holds decisions (user, role, tool, masked excerpts): a
 * directory or file made by hand with group or world access, or owned by
 * another user, would expose them or let another user rewrite them.
 * Refused rather than changed (REVIEW13 L7), as the runbook tells
 * operators to check for the credential file.  GOV_ERR_CONFIG. */
static gov_err_t private_to_us(const struct stat *st, const char *what, const char *path,
                               char *errbuf, size_t errbuf_size) {
    if (st->st_uid != geteuid() || (st->st_mode & 077) != 0) {
        snprintf(errbuf, errbuf_size, "%s %s must be owned by this user (uid %u) and closed to "
                 "group and others (mode %04o, owner uid %u): chmod go-rwx / chown it",
                 what, path, (unsigned)geteuid(), (unsigned)(st->st_mode & 07777),
                 (unsigned)st->st_uid);
        return GOV_ERR_CONFIG;
    }
    return GOV_OK;
}

gov_err_t gov_spool_open(const gov_spool_config_t *cfg, gov_spool_t **out, char *errbuf,
                         size_t errbuf_size) {
    gov_err_t err = GOV_ERR_IO;
    *out = NULL;
    if (cfg == NULL || cfg->dir == NULL || cfg->topic == NULL || cfg->capacity < 4096 ||
        cfg->capacity % 8 != 0) {
        snprintf(errbuf, errbuf_size, "spool: a directory, a topic and a capacity of at "
                 "least 4096 bytes (a multiple of 8) are required");
        return GOV_ERR_INVALID_ARG;
    }
    gov_spool_t *s = gov_calloc(1, sizeof *s);
    if (s == NULL || (s->topic = gov_strdup(cfg->topic)) == NULL) {
        gov_free(s);
        snprintf(errbuf, errbuf_size, "out of memory");
        return GOV_ERR_NOMEM;
    }
    s->fd = -1;
    s->map = MAP_FAILED;
    s->sync_ms = cfg->sync_ms;
    s->degraded_pct = cfg->degraded_pct;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);

    char path[4096];
    if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errbuf, errbuf_size, "spool directory %s: %s", cfg->dir, strerror(errno));
        goto out;
    }
    struct stat st;
    if (stat(cfg->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(errbuf, errbuf_size, "spool directory %s is not a directory", cfg->dir);
        goto out;
    }
    if ((err = private_to_us(&st, "spool directory", cfg->dir, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    err = GOV_ERR_IO;
    snprintf(path, sizeof path, "%s/decisions.spool", cfg->dir);
    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        snprintf(errbuf, errbuf_size, "spool file %s: %s", path, strerror(errno));
        goto out;
    }
    if (flock(s->fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(errbuf, errbuf_size, "spool file %s is in use by another process: %s", path,
                 strerror(errno));
        err = GOV_ERR_EXISTS;
        goto out;
    }
    if (fstat(s->fd, &st) != 0) {
        snprintf(errbuf, errbuf_size, "spool file %s: %s", path, strerror(errno));
        goto out;
    }
    if ((err = private_to_us(&st, "spool file", path, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    err = GOV_ERR_IO;
    uint8_t hdr[HEADER_PAGE];
    memset(hdr, 0, sizeof hdr);
    s->cap = cfg->capacity;
    if (st.st_size == 0) {
        gov_spool_header_write(hdr, s->cap);
        if (pwrite(s->fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
            snprintf(errbuf, errbuf_size, "spool file %s: cannot write its header: %s", path,
                     strerror(errno));
            goto out;
        }
    } else {
        uint64_t cap = 0;
        unsigned version = 0;
        char why[128];
        snprintf(why, sizeof why, "not a decision spool (its header is short)");
        if (pread(s->fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr ||
            gov_spool_header_read(hdr, &cap, &version, why, sizeof why) != GOV_OK) {
            snprintf(errbuf, errbuf_size, "%s: %s", path, why);
            err = GOV_ERR_PARSE;
            goto out;
        }
        if (cap < 4096 || cap % 8 != 0 || cap > ((uint64_t)1 << 42)) {
            snprintf(errbuf, errbuf_size, "%s: capacity %llu in its header is not usable", path,
                     (unsigned long long)cap);
            err = GOV_ERR_PARSE;
            goto out;
        }
        if (cap != s->cap) {
            char have[32], want[32];
            snprintf(have, sizeof have, "%llu", (unsigned long long)cap);
            snprintf(want, sizeof want, "%llu", (unsigned long long)s->cap);
            gov_log(GOV_LOG_WARN, "decision spool file keeps its own capacity (remove it when "
                    "empty to resize)", "path", path, "file_bytes", have, "configured_bytes",
                    want, (const char *)NULL);
            s->cap = cap;
        }
        if (version == 1) {
            /* the same layout without the header's CRC: add it (a flipped
             * capacity would move every ring position) */
            gov_spool_header_write(hdr, s->cap);
            if (pwrite(s->fd, hdr, GOV_SPOOL_HEADER_BYTES, 0) != (ssize_t)GOV_SPOOL_HEADER_BYTES) {
                snprintf(errbuf, errbuf_size, "spool file %s: cannot write its header: %s",
                         path, strerror(errno));
                goto out;
            }
            gov_log(GOV_LOG_INFO, "decision spool header upgraded to version 2 (CRC)", "path",
                    path, (const char *)NULL);
        }
        if ((uint64_t)st.st_size < HEADER_PAGE + s->cap) {
            char sz[32];
            snprintf(sz, sizeof sz, "%lld", (long long)st.st_size);
            gov_log(GOV_LOG_WARN, "decision spool file is shorter than its capacity (cut): "
                    "extended with zeros; a record cut by it is a torn tail", "path", path,
                    "file_size", sz, (const char *)NULL);
        }
    }
    s->map_len = HEADER_PAGE + s->cap;
    /* Reserve every block now: a mapping that meets a full disk on a page
     * fault kills the process with SIGBUS. */
    int rc = posix_fallocate(s->fd, 0, (off_t)s->map_len);
    if (rc != 0) {
        snprintf(errbuf, errbuf_size, "spool file %s: cannot reserve %zu bytes: %s", path,
                 s->map_len, strerror(rc));
        goto out;
    }
    /* MAP_POPULATE: the pages are faulted in here, once, rather than one
     * fault per 4 KiB on the HTTP threads (measured: 3.4-5.2 -> 0.2-0.4
     * us per 650-byte append); the ring then lives in the page cache */
    s->map = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, s->fd, 0);
    if (s->map == MAP_FAILED) {
        snprintf(errbuf, errbuf_size, "spool file %s: mmap: %s", path, strerror(errno));
        goto out;
    }
    s->ring = s->map + HEADER_PAGE;
    err = load_cursor(s, path, errbuf, errbuf_size);
    if (err == GOV_OK)
        err = scan(s, path, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto out;
    s->opened = 1;
    gov_spool_header_set_close_seq(s->map, 0);   /* open: not closed cleanly (yet) */
    char recs[32], torn[32];
    snprintf(recs, sizeof recs, "%llu", (unsigned long long)s->replayed);
    snprintf(torn, sizeof torn, "%llu", (unsigned long long)s->torn_bytes);
    gov_log(s->torn_bytes ? GOV_LOG_WARN : GOV_LOG_INFO,
            s->torn_bytes ? "decision spool opened; a torn last record was cut"
                          : "decision spool opened",
            "path", path, "unacknowledged_records", recs, "torn_bytes", torn,
            (const char *)NULL);
    *out = s;
    return GOV_OK;
out:
    gov_spool_free(s);
    return err;
}

/* --- append ------------------------------------------------------------------- */

gov_err_t gov_spool_append(gov_spool_t *s, const void *key, size_t key_len, const void *value,
                           size_t len) {
    if (key_len > GOV_SPOOL_FRAME_MAX_KEY || len > GOV_SPOOL_FRAME_MAX_VALUE ||
        key_len + len > GOV_SPOOL_RECORD_MAX)
        return GOV_ERR_TOO_LARGE;
    uint64_t size = gov_spool_frame_size(key_len, len);
    if (size > s->cap / 2)
        return GOV_ERR_TOO_LARGE;
    int64_t now = gov_now_micros();
    pthread_mutex_lock(&s->mu);
    uint64_t pos = s->write_lsn, phys = pos % s->cap, waste = 0;
    if (s->cap - phys < size)
        waste = s->cap - phys;
    if (pos + waste + size - s->ack_lsn > s->cap) {
        s->refused++;
        s->refused_need = waste + size;
        pthread_mutex_unlock(&s->mu);
        gov_metric_inc(s->m_refused, NULL, 1);   /* set before the first append */
        return GOV_ERR_UNAVAILABLE;
    }
    if (waste) {
        if (waste >= GOV_SPOOL_FRAME_HEADER)
            gov_spool_frame_write_wrap(s->ring + phys, waste, s->next_seq);
        pos += waste;
        phys = 0;
    }
    gov_spool_frame_write(s->ring + phys, size, s->next_seq, now, key, key_len, value, len);
    s->write_lsn = pos + size;
    s->next_seq++;
    if (s->drain_sleeping) {
        s->drain_sleeping = 0;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return GOV_OK;
}

/* --- drain -------------------------------------------------------------------- */

/* A group's outcome.  A timeout (Kafka away) is the ordinary outage: one
 * warn a round.  Anything else is Kafka refusing (a record it will not
 * take, an ACL, an invalid record): sending again from the cursor meets
 * the same refusal, so the spool is stuck there and fills - logged at error
 * with the seqs (at once, then once a minute while it lasts), so a wedge is
 * never silent (REVIEW13 L5).  Runs on the delivery-report thread. */
static void batch_done(void *arg, gov_err_t err, const char *detail) {
    spool_batch_t *b = arg;
    gov_spool_t *s = b->s;
    pthread_mutex_lock(&s->mu);
    b->state = err == GOV_OK ? BATCH_ACKED : BATCH_FAILED;
    if (err != GOV_OK && !s->failing) {
        s->failing = 1;
        char lo[32], hi[32], at[32];
        snprintf(lo, sizeof lo, "%llu", (unsigned long long)b->start_seq);
        snprintf(hi, sizeof hi, "%llu",
                 (unsigned long long)(b->end_seq > b->start_seq ? b->end_seq - 1 : b->start_seq));
        snprintf(at, sizeof at, "%llu", (unsigned long long)b->unqueued_seq);
        int64_t now = gov_mono_micros();
        if (err == GOV_ERR_TIMEOUT) {
            gov_log(GOV_LOG_WARN, "decision spool: Kafka did not acknowledge a batch; the spool "
                    "keeps it and sends again from the cursor", "error", gov_err_str(err),
                    "detail", detail ? detail : "", "first_seq", lo, "last_seq", hi,
                    (const char *)NULL);
        } else if (s->refused_seq != b->start_seq ||
                   now - s->refused_logged_us >= 60 * 1000000LL) {
            s->refused_seq = b->start_seq;
            s->refused_logged_us = now;
            gov_log(GOV_LOG_ERROR, "decision spool: Kafka refused a batch; sent again from the "
                    "cursor - a refusal that repeats at the same seq stops the spool there "
                    "until it is full (docs/runbooks/security.md)", "error", gov_err_str(err),
                    "detail", detail ? detail : "", "first_seq", lo, "last_seq", hi,
                    "unqueued_seq", b->unqueued_seq ? at : "", (const char *)NULL);
        }
    }
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Walks up to BATCH_MAX records from send_lsn (bounded by to_lsn) and
 * produces them as one group into batch b.  Called without the mutex: the
 * bytes in [send_lsn, to_lsn) are complete and no appender writes them. */
static void send_batch(gov_spool_t *s, spool_batch_t *b, uint64_t to_lsn) {
    gov_kafka_group_t *g = NULL;
    b->start_seq = s->send_seq;
    b->end_seq = s->send_seq + 1;
    b->unqueued_seq = 0;
    if (gov_kafka_group_new(s->producer, batch_done, b, &g) != GOV_OK) {
        batch_done(b, GOV_ERR_NOMEM, "no group");
        return;
    }
    uint64_t pos = s->send_lsn, seq = s->send_seq;
    for (int n = 0; n < BATCH_MAX && pos < to_lsn;) {
        uint64_t phys = pos % s->cap;
        if (s->cap - phys < GOV_SPOOL_FRAME_HEADER) {
            pos += s->cap - phys;
            continue;
        }
        gov_spool_frame_t f;
        gov_spool_frame_kind_t k = gov_spool_frame_read(s->ring + phys, s->cap - phys, seq, 0, &f);
        if (k == GOV_SPOOL_FRAME_WRAP) {
            pos += s->cap - phys;
            continue;
        }
        if (k != GOV_SPOOL_FRAME_RECORD) {   /* cannot be: this process wrote it */
            gov_log(GOV_LOG_ERROR, "decision spool: a record in the ring does not read back",
                    (const char *)NULL);
            gov_kafka_group_fail(g, GOV_ERR_INTERNAL, "spool record unreadable");
            break;
        }
        if (gov_kafka_group_produce(g, s->topic, f.key, f.key_len, f.value, f.value_len, NULL,
                                    0) != GOV_OK) {
            b->unqueued_seq = seq;
            break;   /* the group failed; its outcome says so */
        }
        pos += f.size;
        seq++;
        n++;
    }
    b->end_lsn = pos;
    b->end_seq = seq;
    s->send_lsn = pos;
    s->send_seq = seq;
    gov_kafka_group_seal(g);
}

static void update_gauges(gov_spool_t *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t bytes = s->write_lsn - s->ack_lsn, records = s->next_seq - s->ack_seq;
    uint64_t refused = s->refused, resent = s->resent, ack_lsn = s->ack_lsn, ack_seq = s->ack_seq;
    uint64_t need = s->refused_need, sync_errors = s->sync_errors;
    int sync_errno = s->sync_errno;
    pthread_mutex_unlock(&s->mu);
    double oldest = 0;
    if (records > 0) {
        uint64_t phys = ack_lsn % s->cap;
        gov_spool_frame_t f;
        if (s->cap - phys < GOV_SPOOL_FRAME_HEADER)
            phys = 0;
        gov_spool_frame_kind_t k = gov_spool_frame_read(s->ring + phys, s->cap - phys, ack_seq, 0, &f);
        if (k == GOV_SPOOL_FRAME_WRAP)
            k = gov_spool_frame_read(s->ring, s->cap, ack_seq, 0, &f);
        if (k == GOV_SPOOL_FRAME_RECORD)
            oldest = (double)(gov_now_micros() - f.at_us) / 1e6;
    }
    gov_metric_set(s->m_bytes, NULL, (double)bytes);
    gov_metric_set(s->m_records, NULL, (double)records);
    gov_metric_set(s->m_oldest, NULL, oldest < 0 ? 0 : oldest);
    gov_metric_set(s->m_resent, NULL, (double)resent);
    /* Refusing decisions: ERROR until the last refused record would fit,
     * not only while refusals keep coming - a balancer that took the edge
     * out sends none, and must not put it back into a full spool (L8). */
    if (refused > s->refused_reported)
        s->full_need = need ? need : 1;
    else if (s->full_need && s->cap - bytes >= s->full_need)
        s->full_need = 0;
    s->refused_reported = refused;
    if (s->status) {
        char detail[200];
        unsigned pct = (unsigned)(bytes * 100 / s->cap);
        gov_status_state_t state = GOV_STATUS_OK;
        if (sync_errors > 0) {
            /* sticky: after a failed writeback the kernel may have dropped
             * the dirty pages' error, so a later msync that succeeds proves
             * nothing about the records before it */
            state = GOV_STATUS_ERROR;
            snprintf(detail, sizeof detail, "msync failed %llu time(s) (last: %s): the "
                     "power-loss bound does not hold; check the disk, then restart",
                     (unsigned long long)sync_errors, strerror(sync_errno));
        } else {
            snprintf(detail, sizeof detail, "%u%% full (%llu of %llu bytes, %llu records)%s",
                     pct, (unsigned long long)bytes, (unsigned long long)s->cap,
                     (unsigned long long)records, s->full_need ? ", refusing decisions" : "");
            if (s->full_need)
                state = GOV_STATUS_ERROR;   /* refusing decisions: take this edge out */
            else if ((long)pct >= s->degraded_pct)
                state = GOV_STATUS_DEGRADED;
        }
        gov_status_set(s->status, "decision_spool", state, detail, NULL);
    }
}

/* An msync that failed (EIO, ENOSPC on a CoW filesystem): counted, logged
 * at error, and the readiness component turns ERROR for the rest of the
 * run (update_gauges).  Without the mutex. */
static void sync_failed(gov_spool_t *s, int e) {
    pthread_mutex_lock(&s->mu);
    uint64_t n = ++s->sync_errors;
    s->sync_errno = e;
    pthread_mutex_unlock(&s->mu);
    gov_metric_inc(s->m_sync_errors, NULL, 1);
    char count[32];
    snprintf(count, sizeof count, "%llu", (unsigned long long)n);
    gov_log(GOV_LOG_ERROR, "decision spool: msync failed; records appended since the last "
            "good sync may not survive a power loss", "error", strerror(e), "sync_errors",
            count, (const char *)NULL);
}

/* Moves the cursor past the leading acknowledged groups, in order, and
 * stores it when it moved.  Under s->mu. */
static void retire_acked(gov_spool_t *s) {
    int moved = 0;
    while (s->out > 0 && s->batches[s->head].state == BATCH_ACKED) {
        spool_batch_t *b = &s->batches[s->head];
        s->ack_lsn = b->end_lsn;
        s->ack_seq = b->end_seq;
        b->state = 0;
        s->head = (s->head + 1) % INFLIGHT;
        s->out--;
        moved = 1;
    }
    if (moved)
        store_cursor(s);
}

static void *drain_main(void *arg) {
    gov_spool_t *s = arg;
    int64_t next_tick = 0, next_sync = 0, retry_at = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        retire_acked(s);
        int64_t now = gov_mono_micros();
        int reporting = 0;
        for (unsigned i = 0; s->failing && i < s->out; i++)
            reporting |= s->batches[(s->head + i) % INFLIGHT].state == BATCH_OUT;
        if (s->failing && !reporting) {
            /* every group out has reported and the first is a failure:
             * forget them all (one acknowledged behind it is sent again,
             * a replay) and send again from the cursor */
            for (unsigned i = 0; i < INFLIGHT; i++)
                s->batches[i].state = 0;
            s->head = 0;
            s->out = 0;
            s->resent += s->send_seq - s->ack_seq;
            s->send_lsn = s->ack_lsn;
            s->send_seq = s->ack_seq;
            s->failing = 0;
            retry_at = now + RETRY_PAUSE_MS * 1000;
        }
        if (now >= next_tick || (s->sync_ms > 0 && now >= next_sync)) {
            int do_sync = s->sync_ms > 0 && now >= next_sync;
            pthread_mutex_unlock(&s->mu);
            if (do_sync) {
                if (msync(s->map, s->map_len, MS_SYNC) != 0)
                    sync_failed(s, errno);
                next_sync = now + s->sync_ms * 1000;
            }
            update_gauges(s);
            next_tick = now + TICK_MS * 1000;
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (!s->failing && now >= retry_at && s->out < INFLIGHT && s->send_lsn < s->write_lsn) {
            spool_batch_t *b = &s->batches[(s->head + s->out) % INFLIGHT];
            b->s = s;
            b->state = BATCH_OUT;
            s->out++;
            uint64_t to = s->write_lsn;
            pthread_mutex_unlock(&s->mu);
            send_batch(s, b, to);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        int64_t wake = next_tick;
        if (s->sync_ms > 0 && next_sync < wake)
            wake = next_sync;
        if (retry_at > now && retry_at < wake)
            wake = retry_at;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait_us = wake - now;
        if (wait_us < 1000)
            wait_us = 1000;
        ts.tv_sec += wait_us / 1000000;
        ts.tv_nsec += (wait_us % 1000000) * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        s->drain_sleeping = 1;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        s->drain_sleeping = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

gov_err_t gov_spool_start(gov_spool_t *s, gov_kafka_producer_t *p, gov_metrics_t *reg,
                          gov_status_t *st, char *errbuf, size_t errbuf_size) {
    s->producer = p;
    s->status = st;
    if (reg) {
        s->m_bytes = gov_metrics_gauge(reg, "decision_spool_bytes",
            "Bytes of the decision spool holding records Kafka has not acknowledged.", 0, NULL);
        s->m_capacity = gov_metrics_gauge(reg, "decision_spool_capacity_bytes",
            "Size of the decision spool's ring (decision_spool_bytes at most this).", 0, NULL);
        s->m_records = gov_metrics_gauge(reg, "decision_spool_records",
            "Decision records in the spool that Kafka has not acknowledged.", 0, NULL);
        s->m_oldest = gov_metrics_gauge(reg, "decision_spool_oldest_unacked_seconds",
            "Age of the oldest decision record Kafka has not acknowledged (0: none).", 0, NULL);
        s->m_replayed = gov_metrics_counter(reg, "decision_spool_replayed_total",
            "Decision records found unacknowledged in the spool at start and sent again.", 0,
            NULL);
        s->m_refused = gov_metrics_counter(reg, "decision_spool_refused_total",
            "Decisions refused (503 decision_log_full) because the spool was full.", 0, NULL);
        s->m_resent = gov_metrics_gauge(reg, "decision_spool_resent_records",
            "Decision records handed to Kafka again after a batch was not acknowledged, "
            "since start.", 0, NULL);
        s->m_sync_errors = gov_metrics_counter(reg, "decision_spool_sync_errors_total",
            "msync calls of the decision spool that failed (readiness ERROR from the first).",
            0, NULL);
        if (!s->m_bytes || !s->m_capacity || !s->m_records || !s->m_oldest || !s->m_replayed ||
            !s->m_refused || !s->m_resent || !s->m_sync_errors) {
            snprintf(errbuf, errbuf_size, "out of memory");
            return GOV_ERR_NOMEM;
        }
        gov_metric_set(s->m_capacity, NULL, (double)s->cap);
        gov_metric_inc(s->m_replayed, NULL, s->replayed);
    }
    if (st && gov_status_register(st, "decision_spool") != GOV_OK) {
        snprintf(errbuf, errbuf_size, "out of memory");
        return GOV_ERR_NOMEM;
    }
    update_gauges(s);
    if (pthread_create(&s->thread, NULL, drain_main, s) != 0) {
        snprintf(errbuf, errbuf_size, "cannot start the spool's drain thread");
        return GOV_ERR_INTERNAL;
    }
    s->started = 1;
    return GOV_OK;
}

int gov_spool_stop(gov_spool_t *s, int wait_ms) {
    if (s == NULL)
        return 0;
    int64_t until = gov_mono_micros() + (int64_t)wait_ms * 1000;
    pthread_mutex_lock(&s->mu);
    if (s->started) {
        /* first the records (a clean stop leaves an empty spool when Kafka
         * is up; when it is down they stay for the next start), then the
         * thread */
        while (gov_mono_micros() < until && !s->failing &&
               (s->ack_lsn != s->write_lsn || s->out > 0)) {
            pthread_mutex_unlock(&s->mu);
            gov_sleep_ms_interruptible(20, NULL);
            pthread_mutex_lock(&s->mu);
        }
        s->stop = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->started = 0;
        pthread_mutex_lock(&s->mu);
    }
    /* then the groups still out (after a purge of the producer they all
     * report at once) */
    while (s->out > 0 && gov_mono_micros() < until) {
        int pending = 0;
        for (unsigned i = 0; i < s->out; i++)
            pending |= s->batches[(s->head + i) % INFLIGHT].state == BATCH_OUT;
        if (!pending)
            break;
        pthread_mutex_unlock(&s->mu);
        gov_sleep_ms_interruptible(20, NULL);
        pthread_mutex_lock(&s->mu);
    }
    retire_acked(s);   /* groups acknowledged meanwhile still move the cursor */
    int left = 0;
    for (unsigned i = 0; i < s->out; i++)
        if (s->batches[(s->head + i) % INFLIGHT].state == BATCH_OUT)
            left++;
    pthread_mutex_unlock(&s->mu);
    return left;
}

void gov_spool_free(gov_spool_t *s) {
    if (s == NULL)
        return;
    if (s->map != MAP_FAILED) {
        if (s->opened) {
            /* what was left, for tools that count without a scan */
            pthread_mutex_lock(&s->mu);
            gov_spool_header_set_close_seq(s->map, s->next_seq);
            pthread_mutex_unlock(&s->mu);
        }
        if (msync(s->map, s->map_len, MS_SYNC) != 0 && s->opened)
            gov_log(GOV_LOG_ERROR, "decision spool: msync at close failed", "error",
                    strerror(errno), (const char *)NULL);
        munmap(s->map, s->map_len);
    }
    if (s->fd >= 0)
        close(s->fd);   /* releases the flock */
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    gov_free(s->topic);
    gov_free(s);
}

void gov_spool_stats(gov_spool_t *s, gov_spool_stats_t *out) {
    pthread_mutex_lock(&s->mu);
    *out = (gov_spool_stats_t){
        .capacity = s->cap,
        .bytes = s->write_lsn - s->ack_lsn,
        .records = s->next_seq - s->ack_seq,
        .next_seq = s->next_seq,
        .replayed = s->replayed,
        .torn_bytes = s->torn_bytes,
        .refused = s->refused,
        .resent = s->resent,
    };
    pthread_mutex_unlock(&s->mu);
}
