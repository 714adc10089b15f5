/* gov-archive - moves each tenant's audit chain from Redis into segment
 * files and trims the stream behind them (docs/contracts.md, "The
 * archive").
 *
 * For every tenant it owns (audit:{T}:archive `component`), every
 * poll_interval: read the watermark, read the entries after it from
 * audit:{T} (XRANGE), check every hash and link, and when segment_entries
 * are waiting or the oldest waiting one is older than segment_age, write
 * them as one Avro container file <archive_dir>/<T>/<first>-<last>.avro
 * (gov_archive: temporary, fsync, link, directory fsync); a segment is also
 * cut at the entry that crosses segment_max_bytes, every record counted
 * whole, so a file stays under the readers' bound; only then move
 * the watermark and trim the stream up to it, in one script
 * (gov_state_archive_advance).  Why the stream and not a consumer group:
 * the chain's seq and hashes exist only after gov-audit's dedup.
 *
 * Restart and Redis loss: the first visit of a tenant (and any visit that
 * finds the watermark elsewhere than this process left it) reconciles the
 * directory with Redis - temporaries removed, a last segment beyond the
 * watermark adopted once the stream holds its last entry with the same
 * hash - so kill -9 at any point leaves no gap and no duplicate.  A chain
 * that breaks, or differs from the archive, is neither archived nor
 * trimmed: its readiness component tenant:<T> turns degraded (the other
 * tenants go on; /readyz stays 200), it is counted and logged.
 *
 * What it does not do: read Kafka, write anything of gov-audit's but the
 * trim, or delete segments (retention of the archive is the operator's).
 *
 * Reads top to bottom: config -> start (gov_runtime) -> loop (discover ->
 * per tenant: reconcile -> read -> check -> write -> advance) -> shut down.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gov_alloc.h"
#include "gov_archive.h"
#include "gov_audit_chain.h"
#include "gov_log.h"
#include "gov_runtime.h"
#include "gov_state.h"
#include "gov_time.h"
#include "gov_util.h"

#define COMPONENT "gov-archive"
#define MAX_TENANTS 10000
#define PAGE 1000
/* XRANGE pages one segment may take (the pages are held until the write) */
#define MAX_PAGES (1 + 1000000 / PAGE)
/* what one entry is assumed to weigh before it is read: about the largest
 * event Kafka carries.  A page asks for at most (budget left) / this many
 * entries, so the pages held stay near the budget however large the
 * entries turn out to be. */
#define ENTRY_BYTES_HINT (1024u * 1024)
/* segments one tenant may write per round, so others get their turn */
#define SEGMENTS_PER_ROUND 8
/* a tenant's transient failure is logged at most this often (counted always) */
#define WARN_EVERY_US (10 * 1000000LL)

/* --- configuration ------------------------------------------------------------ */

static char *archive_dir;
static char *tenant_list;
static long segment_entries;
static long segment_max_bytes;
static long segment_age_ms;
static long poll_interval_ms;
static long discover_interval_ms;
static int trim_stream;

static int validate_dir(const char *v, char *eb, size_t n) {
    if (v[0] != '/') {
        snprintf(eb, n, "must be an absolute path");
        return -1;
    }
    return strlen(v) > 3000 ? (snprintf(eb, n, "too long"), -1) : 0;
}

static int validate_tenants(const char *v, char *eb, size_t n) {
    const char *p = v;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (!gov_tenant_valid(p, len)) {
            snprintf(eb, n, "not a comma-separated list of tenant ids");
            return -1;
        }
        p += len + (c != NULL);
    }
    return 0;
}

static const gov_config_entry_t config[] = {
    GOV_CFG_STRING("archive_dir", NULL,
                   "directory of the archive: one subdirectory per tenant, one Avro container "
                   "file per segment (required, absolute)",
                   &archive_dir, GOV_CFG_VALIDATE(validate_dir)),
    GOV_CFG_INT("segment_entries", "10000", 1, 1000000,
                "entries per segment: a segment is cut when this many are waiting",
                &segment_entries),
    GOV_CFG_INT("segment_max_bytes", "67108864", 65536, GOV_ARCHIVE_WRITER_MAX_BYTES,
                "a segment is cut at the entry that crosses this many bytes (every field of "
                "every record counted), so a file holds at most this plus one entry: the "
                "writer's memory bound, kept well under the readers' 256 MiB",
                &segment_max_bytes),
    GOV_CFG_DURATION("segment_age", "5m", 10, 24L * 3600 * 1000,
                     "a shorter segment is cut when its oldest entry was appended this long ago",
                     &segment_age_ms),
    GOV_CFG_DURATION("poll_interval", "1s", 10, 600000,
                     "pause between rounds over the tenants", &poll_interval_ms),
    GOV_CFG_DURATION("discover_interval", "10s", 100, 3600000,
                     "how often tenants are looked for (SCAN audit:{*}:head) when tenants is empty",
                     &discover_interval_ms),
    GOV_CFG_STRING("tenants", NULL,
                   "comma-separated tenants to archive, claimed at start-up (default: every "
                   "tenant with a chain not owned by another deployment)",
                   &tenant_list, GOV_CFG_VALIDATE(validate_tenants)),
    GOV_CFG_BOOL("trim", "true",
                 "trim audit:{T} up to the archived watermark after each segment",
                 &trim_stream),
    GOV_RUNTIME_ROW("redis_host"),
    GOV_RUNTIME_ROW("redis_port"),
    GOV_RUNTIME_ROW("redis_timeout"),
    GOV_RUNTIME_ROW("admin_addr"),
    GOV_RUNTIME_ROW("admin_port"),
    GOV_RUNTIME_ROW("log_level"),
    GOV_RUNTIME_ROW("component_name"),
};
#define NCONFIG (sizeof config / sizeof config[0])

static int check_config(char *eb, size_t n) {
    if (archive_dir == NULL) {
        snprintf(eb, n, "archive_dir is required (GOV_ARCHIVE_DIR)");
        return -1;
    }
    return 0;
}

/* --- state ------------------------------------------------------------------- */

typedef enum tenant_state {
    T_NEW = 0,      /* not reconciled with the directory yet */
    T_ACTIVE,       /* reconciled: archiving */
    T_FOREIGN,      /* owned by another deployment: skipped */
    T_BROKEN,       /* chain broken or diverged: neither archived nor trimmed */
} tenant_state_t;

typedef struct tenant {
    char id[GOV_TENANT_MAX + 1];
    char status_name[GOV_TENANT_MAX + 16];
    tenant_state_t state;
    uint64_t seq;                          /* watermark as this process left it */
    char hash[GOV_SHA256_HEXLEN + 1];
    char stream_id[48];
    int64_t broken_since_us;
    int64_t warned_us;                     /* last transient warning (rate limit) */
    int shown;                             /* has a readiness component (was degraded) */
} tenant_t;

typedef struct app {
    gov_runtime_t *rt;
    gov_redis_t *redis;
    gov_status_t *status;
    const char *component;
    tenant_t *tenants;
    size_t ntenants;
    gov_metric_t *m_segments, *m_entries, *m_trimmed, *m_errors, *m_watermark, *m_waiting;
} app_t;

static app_t app;

static tenant_t *tenant_add(app_t *a, const char *id) {
    for (size_t i = 0; i < a->ntenants; i++)
        if (strcmp(a->tenants[i].id, id) == 0)
            return &a->tenants[i];
    if (a->ntenants == MAX_TENANTS)
        return NULL;
    tenant_t *t = &a->tenants[a->ntenants++];
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", id);
    snprintf(t->status_name, sizeof t->status_name, "tenant:%s", id);
    memcpy(t->hash, GOV_AUDIT_GENESIS, sizeof t->hash);
    return t;
}

static void discovered(void *ctx, const char *tenant) {
    tenant_add(ctx, tenant);
}

static void tenant_dir(const tenant_t *t, char *out, size_t n) {
    snprintf(out, n, "%s/%s", archive_dir, t->id);
}

/* A tenant that cannot be archived: degraded on /readyz, counted, logged once
 * per state change. */
static void tenant_broken(app_t *a, tenant_t *t, gov_reason_t reason, const char *why) {
    if (t->state != T_BROKEN)
        gov_log(GOV_LOG_ERROR, "tenant not archived", "tenant", t->id, "reason",
                gov_reason_code(reason), "error", why, (const char *)NULL);
    t->state = T_BROKEN;
    t->broken_since_us = gov_now_micros();
    gov_metric_inc(a->m_errors, (const char *[]){t->id, gov_reason_code(reason)}, 1);
    /* a component only for a tenant in trouble: /readyz stays small with
     * thousands of tenants */
    gov_status_register(a->status, t->status_name);
    t->shown = 1;
    gov_status_set(a->status, t->status_name, GOV_STATUS_DEGRADED, why, NULL);
}

/* --- reconcile ------------------------------------------------------------------ */

typedef struct last_rec {
    uint64_t seq;
    char hash[GOV_SHA256_HEXLEN + 1];
    uint64_t count;
} last_rec_t;

static gov_err_t remember_last(void *ctx, const gov_archive_record_t *rec, char *eb, size_t n) {
    last_rec_t *l = ctx;
    (void)eb;
    (void)n;
    l->seq = rec->entry.seq;
    snprintf(l->hash, sizeof l->hash, "%s", rec->hash);
    l->count++;
    return GOV_OK;
}

/* Finds the stream entry of seq `want` at or after `from` ("-" or "(<id>"):
 * *found 1 with its hash and id; 0 when the stream ends before it. */
static gov_err_t find_entry(app_t *a, const tenant_t *t, const char *from, uint64_t want,
                            int *found, char hash[GOV_SHA256_HEXLEN + 1], char id[48], char *eb,
                            size_t ebn) {
    char start[64];
    snprintf(start, sizeof start, "%s", from);
    *found = 0;
    for (;;) {
        redisReply *page = NULL;
        gov_err_t err = gov_state_audit_range(a->redis, t->id, start, PAGE, &page, eb, ebn);
        if (err != GOV_OK)
            return err;
        size_t n = page->type == REDIS_REPLY_ARRAY ? page->elements : 0;
        for (size_t i = 0; i < n; i++) {
            gov_audit_entry_t e;
            const char *h, *sid;
            char why[160];
            if (gov_state_audit_entry_parse(page->element[i], &e, &h, &sid, why, sizeof why) != 0) {
                snprintf(eb, ebn, "stream entry unreadable: %s", why);
                freeReplyObject(page);
                return GOV_ERR_STATE;
            }
            if (e.seq == want && strlen(sid) < 48) {
                *found = 1;
                snprintf(hash, GOV_SHA256_HEXLEN + 1, "%s", h);
                snprintf(id, 48, "%s", sid);
                freeReplyObject(page);
                return GOV_OK;
            }
            if (e.seq > want) {
                freeReplyObject(page);
                return GOV_OK;
            }
            snprintf(start, sizeof start, "(%s", sid);
        }
        freeReplyObject(page);
        if (n < PAGE)
            return GOV_OK;
    }
}

/* Brings the directory and Redis's watermark into agreement (see the top
 * comment).  Leaves t ACTIVE, FOREIGN, BROKEN, or NEW (try again later). */
static void reconcile(app_t *a, tenant_t *t) {
    char eb[512], dir[4096], owner[128];
    gov_state_archive_mark_t m;
    gov_archive_listing_t l = {0};
    tenant_dir(t, dir, sizeof dir);
    if (gov_state_archive_mark_read(a->redis, t->id, &m, eb, sizeof eb) != GOV_OK)
        goto transient;
    if (m.component[0] != '\0' && strcmp(m.component, a->component) != 0) {
        t->state = T_FOREIGN;
        return;
    }
    if (m.component[0] == '\0') {
        if (gov_state_archive_claim(a->redis, t->id, a->component, owner, sizeof owner, eb,
                                    sizeof eb) != GOV_OK)
            goto transient;
        if (strcmp(owner, a->component) != 0) {
            t->state = T_FOREIGN;
            return;
        }
    }
    int removed = 0;
    if (gov_archive_remove_temporaries(dir, &removed, eb, sizeof eb) != GOV_OK ||
        gov_archive_list(dir, &l, eb, sizeof eb) != GOV_OK)
        goto transient;
    if (removed > 0) {
        char nb[16];
        snprintf(nb, sizeof nb, "%d", removed);
        gov_log(GOV_LOG_WARN, "removed temporaries of an interrupted segment", "tenant", t->id,
                "count", nb, (const char *)NULL);
    }
    last_rec_t last = {0};
    if (l.n > 0) {
        const gov_archive_segment_ref_t *s = &l.seg[l.n - 1];
        gov_err_t err = gov_archive_segment_load(dir, s->name, remember_last, &last, eb, sizeof eb);
        if (err != GOV_OK || last.seq != s->last) {
            if (err == GOV_OK)
                snprintf(eb, sizeof eb, "last segment %s ends at seq %" PRIu64, s->name, last.seq);
            tenant_broken(a, t, GOV_REASON_ARCHIVE_SEGMENT_ALTERED, eb);
            goto out;
        }
    }
    if (last.seq < m.seq) {
        snprintf(eb, sizeof eb,
                 "the watermark is seq %" PRIu64 " but the tenant's archive directory ends "
                 "at seq %" PRIu64 ": it lacks segments",
                 m.seq, last.seq);
        tenant_broken(a, t, GOV_REASON_ARCHIVE_SEGMENT_MISSING, eb);
        goto out;
    }
    if (last.seq == m.seq) {
        if (m.seq != 0 && strcmp(last.hash, m.hash) != 0) {
            snprintf(eb, sizeof eb, "seq %" PRIu64 " has hash %s in the archive, %s in Redis",
                     m.seq, last.hash, m.hash);
            tenant_broken(a, t, GOV_REASON_ARCHIVE_CHAIN_DIVERGED, eb);
            goto out;
        }
    } else {
        /* the directory is ahead (killed before the script, or Redis lost
         * writes): adopt its last segment once the stream has that entry */
        int found = 0;
        char hash[GOV_SHA256_HEXLEN + 1], id[48], from[64];
        snprintf(from, sizeof from, m.seq ? "(%s" : "-", m.stream_id);
        if (find_entry(a, t, from, last.seq, &found, hash, id, eb, sizeof eb) != GOV_OK)
            goto transient;
        if (!found) {
            if (gov_mono_micros() - t->warned_us >= WARN_EVERY_US) {
                t->warned_us = gov_mono_micros();
                gov_log(GOV_LOG_INFO, "waiting for the stream to reach the archive's last segment",
                        "tenant", t->id, "segment", l.seg[l.n - 1].name, (const char *)NULL);
            }
            goto out;   /* still NEW: gov-audit may be rebuilding */
        }
        if (strcmp(hash, last.hash) != 0) {
            snprintf(eb, sizeof eb, "seq %" PRIu64 " has hash %s in the archive, %s in Redis",
                     last.seq, last.hash, hash);
            tenant_broken(a, t, GOV_REASON_ARCHIVE_CHAIN_DIVERGED, eb);
            goto out;
        }
        gov_state_archive_outcome_t oc;
        long long trimmed = 0;
        if (gov_state_archive_advance(a->redis, t->id, a->component, m.seq, last.seq, hash, id,
                                      l.seg[l.n - 1].name, (long long)gov_now_micros(),
                                      trim_stream, &oc, &trimmed, eb, sizeof eb) != GOV_OK)
            goto transient;
        if (oc != GOV_STATE_ARCHIVE_ADVANCED)
            goto out;   /* moved under us: next round */
        gov_log(GOV_LOG_WARN, "watermark taken from the archive directory", "tenant", t->id,
                "segment", l.seg[l.n - 1].name, (const char *)NULL);
        gov_metric_inc(a->m_trimmed, (const char *[]){t->id}, (uint64_t)trimmed);
        m.seq = last.seq;
        memcpy(m.hash, hash, sizeof m.hash);
        snprintf(m.stream_id, sizeof m.stream_id, "%s", id);
    }
    t->seq = m.seq;
    memcpy(t->hash, m.seq ? m.hash : GOV_AUDIT_GENESIS, sizeof t->hash);
    snprintf(t->stream_id, sizeof t->stream_id, "%s", m.stream_id);
    t->state = T_ACTIVE;
    if (t->shown)
        gov_status_set(a->status, t->status_name, GOV_STATUS_OK, NULL, NULL);
    goto out;
transient:
    if (gov_mono_micros() - t->warned_us >= WARN_EVERY_US) {
        t->warned_us = gov_mono_micros();
        gov_log(GOV_LOG_WARN, "cannot reconcile the archive yet", "tenant", t->id, "error", eb,
                (const char *)NULL);
    }
out:
    gov_archive_listing_clear(&l);
}

/* --- one segment ------------------------------------------------------------------ */

/* Reads what waits after the watermark (at most segment_entries entries;
 * the entry that crosses segment_max_bytes is the last one), checks it, and
 * archives it when it is a full segment or old enough.  Returns 1 when a
 * segment was written (the caller may go on), 0 when there is nothing to
 * cut, -1 on an error.  Memory: the pages read, about segment_max_bytes
 * plus one page asked for by ENTRY_BYTES_HINT. */
static int archive_once(app_t *a, tenant_t *t) {
    char eb[512], dir[4096], start[64];
    redisReply *pages[MAX_PAGES];
    size_t npages = 0, count = 0, bytes = 0;
    const size_t budget = (size_t)segment_max_bytes;
    int rc = -1;
    gov_archive_writer_t *w = NULL;
    snprintf(start, sizeof start, t->seq ? "(%s" : "-", t->stream_id);
    uint64_t expect_seq = t->seq + 1;
    char prev[GOV_SHA256_HEXLEN + 1];
    memcpy(prev, t->hash, sizeof prev);
    const char *last_hash = NULL, *last_id = NULL;
    long long oldest_ms = -1;
    int full = 0;   /* cut now: by entries, by bytes, or by pages held */
    while (!full) {
        /* fewer entries per page as the budget runs out */
        size_t want = (size_t)segment_entries - count, by_bytes = (budget - bytes) / ENTRY_BYTES_HINT;
        if (want > PAGE)
            want = PAGE;
        if (want > by_bytes)
            want = by_bytes > 0 ? by_bytes : 1;
        redisReply *page = NULL;
        if (gov_state_audit_range(a->redis, t->id, start, want, &page, eb, sizeof eb) != GOV_OK)
            goto transient;
        pages[npages++] = page;
        if (page->type != REDIS_REPLY_ARRAY) {
            snprintf(eb, sizeof eb, "audit:{%s} is not a stream", t->id);
            goto transient;
        }
        for (size_t i = 0; i < page->elements && !full; i++) {
            gov_audit_entry_t e;
            const char *h, *sid;
            char why[200];
            if (gov_state_audit_entry_parse(page->element[i], &e, &h, &sid, why, sizeof why) != 0) {
                tenant_broken(a, t, GOV_REASON_CHAIN_BROKEN, why);
                goto out;
            }
            gov_audit_break_t b = gov_audit_chain_check(&e, h, prev, expect_seq);
            if (b != GOV_AUDIT_INTACT) {
                snprintf(why, sizeof why, "stream entry %s (seq %" PRIu64 "): %s", sid, expect_seq,
                         gov_audit_break_str(b));
                tenant_broken(a, t, GOV_REASON_CHAIN_BROKEN, why);
                goto out;
            }
            size_t entry_bytes = gov_archive_record_bytes(t->id, &e, h);
            if (entry_bytes > GOV_ARCHIVE_ENTRY_MAX_BYTES) {
                snprintf(why, sizeof why, "stream entry %s (seq %" PRIu64 ") takes %zu bytes, a "
                         "segment record at most %u", sid, expect_seq, entry_bytes,
                         GOV_ARCHIVE_ENTRY_MAX_BYTES);
                tenant_broken(a, t, GOV_REASON_ARCHIVE_ENTRY_TOO_LARGE, why);
                goto out;
            }
            if (oldest_ms < 0)
                oldest_ms = atoll(sid);
            memcpy(prev, h, sizeof prev);
            expect_seq++;
            count++;
            bytes += entry_bytes;
            last_hash = h;
            last_id = sid;
            snprintf(start, sizeof start, "(%s", sid);
            /* the entry that crosses the budget ends the segment */
            full = count >= (size_t)segment_entries || bytes >= budget;
        }
        if (!full && page->elements < want)
            break;   /* the stream has no more */
        full = full || npages == MAX_PAGES;
    }
    gov_metric_set(a->m_waiting, (const char *[]){t->id}, (double)count);
    long long now_ms = (long long)(gov_now_micros() / 1000);
    if (count == 0 || (!full && now_ms - oldest_ms < segment_age_ms)) {
        rc = 0;
        goto out;
    }
    /* write the segment: the counted entries again, from the pages held */
    tenant_dir(t, dir, sizeof dir);
    if (gov_archive_writer_open(dir, &w, eb, sizeof eb) != GOV_OK)
        goto transient;
    size_t written = 0;
    for (size_t p = 0; p < npages; p++)
        for (size_t i = 0; i < pages[p]->elements && written < count; i++, written++) {
            gov_audit_entry_t e;
            const char *h, *sid;
            char why[160];
            /* the same bytes the first pass checked: a failure here is a bug */
            if (gov_state_audit_entry_parse(pages[p]->element[i], &e, &h, &sid, why,
                                            sizeof why) != 0) {
                snprintf(eb, sizeof eb, "internal: a checked entry did not parse again: %s", why);
                goto transient;
            }
            if (gov_archive_writer_append(w, t->id, &e, h, eb, sizeof eb) != GOV_OK)
                goto transient;
        }
    char name[GOV_ARCHIVE_NAME_MAX];
    uint64_t first = t->seq + 1, last = expect_seq - 1;
    gov_err_t err = gov_archive_writer_commit(w, first, last, name, eb, sizeof eb);
    if (err == GOV_ERR_EXISTS) {
        /* a segment of this range is already there: the directory and Redis
         * disagree; reconcile before anything else */
        t->state = T_NEW;
        goto transient;
    }
    if (err != GOV_OK)
        goto transient;
    gov_state_archive_outcome_t oc;
    long long trimmed = 0;
    if (gov_state_archive_advance(a->redis, t->id, a->component, t->seq, last, last_hash,
                                  last_id, name, (long long)gov_now_micros(), trim_stream, &oc,
                                  &trimmed, eb, sizeof eb) != GOV_OK) {
        t->state = T_NEW;   /* the file is durable: the next reconcile adopts it */
        goto transient;
    }
    if (oc != GOV_STATE_ARCHIVE_ADVANCED) {
        gov_log(GOV_LOG_ERROR, "watermark moved under this archiver", "tenant", t->id, "error",
                eb, (const char *)NULL);
        t->state = oc == GOV_STATE_ARCHIVE_NOT_OWNER ? T_FOREIGN : T_NEW;
        goto out;
    }
    char fs[24], ls[24], ns[24], ts[24];
    snprintf(fs, sizeof fs, "%" PRIu64, first);
    snprintf(ls, sizeof ls, "%" PRIu64, last);
    snprintf(ns, sizeof ns, "%zu", count);
    snprintf(ts, sizeof ts, "%lld", trimmed);
    gov_log(GOV_LOG_INFO, "segment archived", "tenant", t->id, "first_seq", fs, "last_seq", ls,
            "entries", ns, "trimmed", ts, "segment", name, (const char *)NULL);
    gov_metric_inc(a->m_segments, (const char *[]){t->id}, 1);
    gov_metric_inc(a->m_entries, (const char *[]){t->id}, count);
    gov_metric_inc(a->m_trimmed, (const char *[]){t->id}, (uint64_t)trimmed);
    gov_metric_set(a->m_watermark, (const char *[]){t->id}, (double)last);
    t->seq = last;
    memcpy(t->hash, last_hash, sizeof t->hash);
    snprintf(t->stream_id, sizeof t->stream_id, "%s", last_id);
    rc = 1;
    goto out;
transient:
    if (gov_mono_micros() - t->warned_us >= WARN_EVERY_US) {
        t->warned_us = gov_mono_micros();
        gov_log(GOV_LOG_WARN, "archiving failed; retried next round", "tenant", t->id, "error",
                eb, (const char *)NULL);
    }
    gov_metric_inc(a->m_errors, (const char *[]){t->id, "transient"}, 1);
out:
    gov_archive_writer_free(w);
    for (size_t p = 0; p < npages; p++)
        freeReplyObject(pages[p]);
    return rc;
}

/* One visit of a tenant: reconcile when needed, then cut what is due. */
static void visit(app_t *a, tenant_t *t) {
    char eb[256];
    if (t->state == T_FOREIGN || t->state == T_BROKEN)
        return;
    if (t->state == T_ACTIVE) {
        /* the watermark is where this process left it, or Redis lost writes
         * (or someone else moved it): reconcile again */
        gov_state_archive_mark_t m;
        if (gov_state_archive_mark_read(a->redis, t->id, &m, eb, sizeof eb) != GOV_OK)
            return;
        if (m.seq != t->seq || strcmp(m.component, a->component) != 0)
            t->state = T_NEW;
    }
    if (t->state == T_NEW)
        reconcile(a, t);
    for (int i = 0; i < SEGMENTS_PER_ROUND && t->state == T_ACTIVE; i++)
        if (archive_once(a, t) != 1)
            break;
}

/* --- start-up ------------------------------------------------------------------------ */

static gov_err_t register_parts(void *ctx, gov_metrics_t *metrics, gov_status_t *status) {
    app_t *a = ctx;
    a->status = status;
    a->m_segments = gov_metrics_counter(metrics, "archive_segments_total",
                                        "Segment files written and recorded in the watermark.",
                                        1, (const char *[]){"tenant"});
    a->m_entries = gov_metrics_counter(metrics, "archive_entries_total",
                                       "Chain entries archived in segments.", 1,
                                       (const char *[]){"tenant"});
    a->m_trimmed = gov_metrics_counter(metrics, "archive_trimmed_entries_total",
                                       "Entries trimmed from audit:{T} after they were archived.",
                                       1, (const char *[]){"tenant"});
    a->m_errors = gov_metrics_counter(metrics, "archive_errors_total",
                                      "Rounds in which a tenant was not archived: reason is a "
                                      "reason code, or transient (retried next round).",
                                      2, (const char *[]){"tenant", "reason"});
    a->m_watermark = gov_metrics_gauge(metrics, "archive_watermark_seq",
                                       "Last archived seq of the tenant's chain.", 1,
                                       (const char *[]){"tenant"});
    a->m_waiting = gov_metrics_gauge(metrics, "archive_waiting_entries",
                                     "Entries after the watermark at the last round (at most "
                                     "segment_entries).",
                                     1, (const char *[]){"tenant"});
    if (a->m_segments == NULL || a->m_entries == NULL || a->m_trimmed == NULL ||
        a->m_errors == NULL || a->m_watermark == NULL || a->m_waiting == NULL)
        return GOV_ERR_NOMEM;
    if (gov_status_register(status, "redis") != GOV_OK ||
        gov_status_register(status, "archive") != GOV_OK)
        return GOV_ERR_NOMEM;
    a->tenants = gov_calloc(MAX_TENANTS, sizeof *a->tenants);
    return a->tenants ? GOV_OK : GOV_ERR_NOMEM;
}

static const gov_runtime_spec_t spec = {
    .name = COMPONENT,
    .default_admin_port = 8706,
    .admin = 1,
    .redis = 1,
    .check_config = check_config,
    .register_parts = register_parts,
    .register_ctx = &app,
};

int main(int argc, char **argv) {
    int exit_code;
    char eb[512];
    app_t *a = &app;
    if (gov_runtime_start(&a->rt, &spec, config, NCONFIG, argc, argv, &exit_code) != GOV_OK)
        return exit_code;
    a->redis = gov_runtime_redis(a->rt);
    int created = 0;
    if (gov_archive_mkdir(archive_dir, &created, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "cannot create the archive directory", "archive_dir", archive_dir,
                "error", eb, (const char *)NULL);
        return gov_runtime_shutdown(a->rt, 1);
    }
    a->component = gov_runtime_config(a->rt)->component_name;
    if (tenant_list != NULL) {
        /* named tenants are claimed now, before their first event */
        for (const char *p = tenant_list; *p;) {
            const char *c = strchr(p, ',');
            char id[GOV_TENANT_MAX + 1];
            size_t len = c ? (size_t)(c - p) : strlen(p);
            snprintf(id, sizeof id, "%.*s", (int)len, p);
            tenant_add(a, id);
            p += len + (c != NULL);
        }
    }
    gov_log(GOV_LOG_INFO, "archiving", "archive_dir", archive_dir, "tenants",
            tenant_list ? tenant_list : "(discovered)", (const char *)NULL);
    int64_t next_discover = 0;
    while (gov_runtime_running(a->rt)) {
        int64_t now = gov_mono_micros();
        if (gov_redis_ping(a->redis) != GOV_OK) {
            gov_status_set(a->status, "redis", GOV_STATUS_ERROR, "unreachable", NULL);
            gov_runtime_sleep(a->rt, poll_interval_ms);
            continue;
        }
        gov_status_set(a->status, "redis", GOV_STATUS_OK, NULL, NULL);
        if (tenant_list == NULL && now >= next_discover) {
            if (gov_state_archive_discover(a->redis, MAX_TENANTS, discovered, a, eb, sizeof eb) !=
                GOV_OK)
                gov_log(GOV_LOG_WARN, "tenant discovery failed", "error", eb, (const char *)NULL);
            next_discover = now + discover_interval_ms * 1000;
        }
        for (size_t i = 0; i < a->ntenants && gov_runtime_running(a->rt); i++)
            visit(a, &a->tenants[i]);
        /* ready once a whole round ran: every owned tenant reconciled or
         * shown as degraded on its own component */
        gov_status_set(a->status, "archive", GOV_STATUS_OK, NULL, NULL);
        gov_runtime_sleep(a->rt, poll_interval_ms);
    }
    gov_free(a->tenants);
    return gov_runtime_shutdown(a->rt, 0);
}
