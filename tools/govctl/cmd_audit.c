/* cmd_audit.c - `govctl audit verify --tenant T [--archive DIR]`.
 *
 * Walks audit:{T} from the first entry in pages of 500 (gov_state's XRANGE
 * with an exclusive start), recomputes every entry's hash from its fields
 * and checks its link to the entry before it, then checks that
 * audit:{T}:head names the last entry (so a truncated tail is found too).
 * Reports the first break and exits 1, or the chain's length and head and
 * exits 0.  Memory is bounded by one page whatever the chain's length.
 *
 * The stream holds the hot tail only (docs/contracts.md, "The archive"):
 * without --archive the walk starts at audit:{T}:anchor (the last trimmed
 * entry; genesis when nothing was trimmed).  With --archive DIR it starts at
 * genesis: the segments of DIR/T in name order, every record hashed and
 * linked, every file against its name, then the tail from the archive's
 * end.  Each kind of damage has its own reason: archive_segment_missing (a
 * gap in the ranges, or between the archive and the tail, or a watermark
 * beyond the archive), archive_segment_reordered (a file holding other
 * seqs than its name, overlapping names), archive_segment_altered (not a
 * readable segment, a record that does not hash or link, a file shorter
 * than its name).
 *
 * Where the stream still holds archived entries (trim=false, or before the
 * trim) the two copies must agree: the walk takes the archive's hash of the
 * seq before the stream's first entry, checks every stream entry from there
 * (seq strictly one more than the last, hash and link) and requires the
 * stream's copy of the archive's last seq to carry the archive's hash.  So
 * an altered archived-but-untrimmed entry breaks, and so does a copy of an
 * old seq appended after the tail: nothing is skipped because its seq is
 * at or below the archive's end.
 *
 * Strictness (docs/contracts.md, "Audit chain"): the hash covers the bytes
 * gov-audit wrote, so an entry is read back only if hashing it again would
 * see exactly those bytes.  Every entry has exactly the eight fields the
 * hash is built from, once each; seq and occurred_at must be their own
 * decimal form ("5x", "05", "+5" are refused: strtoull would read 5 and
 * hash "5", and the damage would verify); no field but payload may hold a
 * NUL (the hash would stop at it); hashes are 64 lowercase hex characters.
 * The head's seq is held to the same rule.
 *
 * A missing chain is a break too when the tenant is known - when it is in
 * constitution:tenants or policy:rulepack:tenants: accepting a constitution
 * or a pack emits an audit event, so such a tenant has at least one entry,
 * and "no stream, no head" means the chain was deleted or never
 * materialized.  An unknown tenant with no chain is reported as such and
 * exits 0: there is nothing to verify.
 *
 * What it does not do: compare the chain with Kafka (identity.audit may be
 * compacted or expired), or repair anything.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_archive.h"
#include "gov_audit_chain.h"
#include "gov_redis.h"
#include "gov_state.h"
#include "gov_util.h"
#include "govctl.h"

#define PAGE 500

/* *known = 1 when tenant is in either tenant index (gov_state_tenants_read:
 * the set the edges serve). */
static gov_err_t tenant_known(gov_redis_t *r, const char *tenant, int *known, char *eb,
                              size_t eb_size) {
    gov_state_tenants_t t;
    *known = 0;
    gov_err_t err = gov_state_tenants_read(r, &t, eb, eb_size);
    if (err != GOV_OK)
        return err;
    for (size_t i = 0; i < t.count && !*known; i++) {
        size_t len = 0;
        const char *name = gov_state_tenants_get(&t, i, &len);
        *known = name != NULL && len == strlen(tenant) && memcmp(name, tenant, len) == 0;
    }
    gov_state_tenants_clear(&t);
    return GOV_OK;
}

static int report_break(const char *tenant, const char *id, uint64_t position, const char *why) {
    char clean[256];
    snprintf(clean, sizeof clean, "%s", why);
    govctl_printable(clean);
    printf("BROKEN tenant=%s entry=%s position=%" PRIu64 " reason=%s\n", tenant, id, position,
           clean);
    return govctl_fail(GOV_REASON_CHAIN_BROKEN,
                       "audit chain of %s breaks at entry %s (position %" PRIu64 "): %s", tenant,
                       id, position, clean);
}

/* --- the archive ------------------------------------------------------------- */

/* The walk over one tenant's segments. */
typedef struct archive_walk {
    const char *tenant;
    const char *segment;     /* the file being read */
    uint64_t expect;         /* seq the next record must have */
    char prev[GOV_SHA256_HEXLEN + 1];
    uint64_t want_seq;       /* the seq whose hash is kept in want_hash (0: none) */
    char want_hash[GOV_SHA256_HEXLEN + 1];
    gov_reason_t reason;     /* of a break found by the callback */
    char why[400];
} archive_walk_t;

static gov_err_t walk_record(void *ctx, const gov_archive_record_t *rec, char *eb, size_t n) {
    archive_walk_t *w = ctx;
    (void)eb;
    (void)n;
    if (rec->entry.seq != w->expect) {
        w->reason = GOV_REASON_ARCHIVE_SEGMENT_REORDERED;
        snprintf(w->why, sizeof w->why, "segment %s holds seq %" PRIu64 " where seq %" PRIu64
                 " belongs: segments were renamed, swapped or reordered",
                 w->segment, rec->entry.seq, w->expect);
        return GOV_ERR_VERIFY;
    }
    gov_audit_break_t b = gov_audit_chain_check(&rec->entry, rec->hash, w->prev, w->expect);
    if (b != GOV_AUDIT_INTACT || strcmp(rec->tenant, w->tenant) != 0) {
        w->reason = GOV_REASON_ARCHIVE_SEGMENT_ALTERED;
        snprintf(w->why, sizeof w->why, "segment %s, seq %" PRIu64 ": %s", w->segment,
                 w->expect, b != GOV_AUDIT_INTACT ? gov_audit_break_str(b)
                                                  : "a record of another tenant");
        return GOV_ERR_VERIFY;
    }
    memcpy(w->prev, rec->hash, sizeof w->prev);
    if (rec->entry.seq == w->want_seq)
        memcpy(w->want_hash, rec->hash, sizeof w->want_hash);
    w->expect++;
    return GOV_OK;
}

static int archive_break(const char *tenant, gov_reason_t reason, const char *why) {
    char clean[512];
    snprintf(clean, sizeof clean, "%s", why);
    govctl_printable(clean);
    printf("BROKEN tenant=%s reason=%s detail=%s\n", tenant, gov_reason_code(reason), clean);
    return govctl_fail(reason, "archive of %s: %s", tenant, clean);
}

/* Verifies DIR/tenant from genesis; on success *seq and prev are the
 * archive's end (0 and genesis when it is empty), *segments its files, and
 * want_hash the archive's hash of seq want_seq (genesis for 0; left as it
 * is when the archive ends before want_seq). */
static int archive_verify(const char *dir, const char *tenant, uint64_t *seq,
                          char prev[GOV_SHA256_HEXLEN + 1], size_t *segments, uint64_t want_seq,
                          char want_hash[GOV_SHA256_HEXLEN + 1]) {
    char path[4096], eb[512];
    gov_archive_listing_t l;
    archive_walk_t w = {.tenant = tenant, .expect = 1, .prev = GOV_AUDIT_GENESIS,
                        .want_seq = want_seq, .want_hash = GOV_AUDIT_GENESIS};
    int rc = GOVCTL_OK;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, tenant) >= sizeof path)
        return govctl_usage("--archive path too long");
    if (gov_archive_list(path, &l, eb, sizeof eb) != GOV_OK)
        return govctl_fail(GOV_REASON_IO_ERROR, "%s", eb);
    for (size_t i = 0; i < l.n && rc == GOVCTL_OK; i++) {
        const gov_archive_segment_ref_t *s = &l.seg[i];
        if (s->first > w.expect) {
            snprintf(w.why, sizeof w.why, "seq %" PRIu64 "..%" PRIu64 " are in no segment (the "
                     "next one is %s)", w.expect, s->first - 1, s->name);
            rc = archive_break(tenant, GOV_REASON_ARCHIVE_SEGMENT_MISSING, w.why);
            break;
        }
        if (s->first < w.expect) {
            snprintf(w.why, sizeof w.why, "segment %s overlaps the segment before it (which "
                     "ends at seq %" PRIu64 ")", s->name, w.expect - 1);
            rc = archive_break(tenant, GOV_REASON_ARCHIVE_SEGMENT_REORDERED, w.why);
            break;
        }
        w.segment = s->name;
        w.reason = GOV_REASON_ARCHIVE_SEGMENT_ALTERED;
        gov_err_t err = gov_archive_segment_load(path, s->name, walk_record, &w, eb, sizeof eb);
        if (err != GOV_OK) {
            if (err != GOV_ERR_VERIFY)
                snprintf(w.why, sizeof w.why, "segment %s is not a readable segment: %.300s",
                         s->name, eb);
            rc = archive_break(tenant, w.reason, w.why);
            break;
        }
        if (w.expect != s->last + 1) {
            snprintf(w.why, sizeof w.why, "segment %s ends at seq %" PRIu64 ", its name says %"
                     PRIu64 ": records were removed", s->name, w.expect - 1, s->last);
            rc = archive_break(tenant, GOV_REASON_ARCHIVE_SEGMENT_ALTERED, w.why);
        }
    }
    *seq = w.expect - 1;
    memcpy(prev, w.prev, GOV_SHA256_HEXLEN + 1);
    memcpy(want_hash, w.want_hash, GOV_SHA256_HEXLEN + 1);
    *segments = l.n;
    gov_archive_listing_clear(&l);
    return rc;
}

/* The seq of audit:{T}'s first entry: 0 when the stream is empty or that
 * entry does not parse (the walk reports it). */
static gov_err_t stream_first_seq(gov_redis_t *r, const char *tenant, uint64_t *first, char *eb,
                                  size_t eb_size) {
    redisReply *page = NULL;
    *first = 0;
    gov_err_t err = gov_state_audit_range(r, tenant, "-", 1, &page, eb, eb_size);
    if (err != GOV_OK)
        return err;
    if (page->type == REDIS_REPLY_ARRAY && page->elements == 1) {
        gov_audit_entry_t e;
        const char *stored = NULL;
        char why[160];
        if (gov_state_audit_entry_parse(page->element[0], &e, &stored, NULL, why, sizeof why) == 0)
            *first = e.seq;
    }
    freeReplyObject(page);
    return GOV_OK;
}

static int audit_verify(const char *tenant, const char *nodes, const char *host, int port,
                        int quiet, const char *archive_dir) {
    char eb[512], key[GOV_STATE_KEY_MAX], head_key[GOV_STATE_KEY_MAX], start[80] = "-";
    char prev[GOV_SHA256_HEXLEN + 1] = GOV_AUDIT_GENESIS;
    /* the archive's hashes of its last seq and of the seq before the stream's first */
    char archive_end[GOV_SHA256_HEXLEN + 1] = GOV_AUDIT_GENESIS;
    char before_first[GOV_SHA256_HEXLEN + 1] = GOV_AUDIT_GENESIS;
    uint64_t seq = 0, archived = 0, tail = 0, first_seq = 0, walked = 0;
    size_t segments = 0;
    gov_redis_t *r = NULL;
    redisReply *head = NULL;
    gov_state_archive_mark_t mark;
    int rc = GOVCTL_OK;
    if (gov_redis_connect(nodes, host, port, 5000, &r, eb, sizeof eb) != GOV_OK) {
        gov_redis_free(r);
        return govctl_fail(GOV_REASON_REDIS_UNAVAILABLE, "%s", eb);
    }
    if (gov_state_key(GOV_STATE_AUDIT, tenant, key) != GOV_OK ||
        gov_state_key(GOV_STATE_AUDIT_HEAD, tenant, head_key) != GOV_OK) {
        rc = govctl_usage("not a tenant id: %s", tenant);
        goto out;
    }
    if (gov_state_archive_mark_read(r, tenant, &mark, eb, sizeof eb) != GOV_OK) {
        rc = govctl_fail(GOV_REASON_REDIS_ERROR, "%s", eb);
        goto out;
    }
    if (archive_dir != NULL) {
        if (stream_first_seq(r, tenant, &first_seq, eb, sizeof eb) != GOV_OK) {
            rc = govctl_fail(GOV_REASON_REDIS_ERROR, "%s", eb);
            goto out;
        }
        if ((rc = archive_verify(archive_dir, tenant, &seq, prev, &segments,
                                 first_seq > 0 ? first_seq - 1 : 0, before_first)) != GOVCTL_OK)
            goto out;
        archived = seq;
        memcpy(archive_end, prev, sizeof archive_end);
        if (mark.seq > archived) {
            snprintf(eb, sizeof eb, "the watermark says seq %" PRIu64 " is archived, the "
                     "archive ends at seq %" PRIu64, mark.seq, archived);
            rc = archive_break(tenant, GOV_REASON_ARCHIVE_SEGMENT_MISSING, eb);
            goto out;
        }
    } else if (mark.anchor_seq != 0) {
        /* the tail from its anchor: the last entry trimmed */
        seq = mark.anchor_seq;
        memcpy(prev, mark.anchor_hash, sizeof prev);
    }
    for (;;) {
        redisReply *page = NULL;
        if (gov_state_audit_range(r, tenant, start, PAGE, &page, eb, sizeof eb) != GOV_OK) {
            rc = govctl_fail(GOV_REASON_REDIS_ERROR, "%s", eb);
            goto out;
        }
        if (page->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(page);
            rc = govctl_fail(GOV_REASON_REDIS_ERROR, "%s is not a stream", key);
            goto out;
        }
        size_t n = page->elements;
        for (size_t i = 0; i < n; i++) {
            const redisReply *ent = page->element[i];
            char id[64] = "?", why[160];
            if (ent->type == REDIS_REPLY_ARRAY && ent->elements >= 1 &&
                ent->element[0]->type == REDIS_REPLY_STRING)
                snprintf(id, sizeof id, "%s", ent->element[0]->str);
            gov_audit_entry_t e;
            const char *stored = NULL;
            if (gov_state_audit_entry_parse(ent, &e, &stored, NULL, why, sizeof why) != 0) {
                char full[200];
                snprintf(full, sizeof full, "%s: %s", gov_audit_break_str(GOV_AUDIT_MALFORMED),
                         why);
                freeReplyObject(page);
                rc = report_break(tenant, id, seq + 1, full);
                goto out;
            }
            snprintf(start, sizeof start, "(%s", id);
            if (archive_dir != NULL && walked == 0 && e.seq >= 1 && e.seq <= archived) {
                /* the stream starts inside the archive: check it from the
                 * archive's hash of the seq before it */
                if (e.seq != first_seq) {
                    freeReplyObject(page);
                    rc = govctl_fail(GOV_REASON_REDIS_ERROR, "%s was trimmed while it was "
                                     "verified (it started at seq %" PRIu64 ", now at %" PRIu64
                                     "); run the verify again", key, first_seq, e.seq);
                    goto out;
                }
                seq = e.seq - 1;
                memcpy(prev, before_first, sizeof prev);
            }
            if (archive_dir != NULL && walked == 0 && e.seq > seq + 1) {
                snprintf(eb, sizeof eb, "seq %" PRIu64 "..%" PRIu64 " are neither archived nor "
                         "in the tail (the archive ends at seq %" PRIu64 ")",
                         seq + 1, e.seq - 1, archived);
                freeReplyObject(page);
                rc = archive_break(tenant, GOV_REASON_ARCHIVE_SEGMENT_MISSING, eb);
                goto out;
            }
            gov_audit_break_t b = gov_audit_chain_check(&e, stored, prev, seq + 1);
            if (b != GOV_AUDIT_INTACT) {
                freeReplyObject(page);
                rc = report_break(tenant, id, seq + 1, gov_audit_break_str(b));
                goto out;
            }
            if (archive_dir != NULL && e.seq == archived && strcmp(stored, archive_end) != 0) {
                /* archived, not trimmed yet: the two copies must be one */
                snprintf(eb, sizeof eb, "seq %" PRIu64 " has hash %.64s in Redis but %s in "
                         "the archive", e.seq, stored, archive_end);
                freeReplyObject(page);
                rc = archive_break(tenant, GOV_REASON_ARCHIVE_SEGMENT_ALTERED, eb);
                goto out;
            }
            memcpy(prev, stored, sizeof prev);
            seq++;
            walked++;
            tail += e.seq > archived;
        }
        freeReplyObject(page);
        if (n < PAGE)
            break;
    }
    if (archive_dir != NULL && seq < archived) {
        snprintf(eb, sizeof eb, "the stream ends at seq %" PRIu64 ", inside the archive (which "
                 "ends at seq %" PRIu64 ")", seq, archived);
        rc = archive_break(tenant, GOV_REASON_CHAIN_TRUNCATED, eb);
        goto out;
    }
    if (gov_state_audit_head_read(r, tenant, &head, eb, sizeof eb) != GOV_OK) {
        rc = govctl_fail(GOV_REASON_REDIS_ERROR, "%s", eb);
        goto out;
    }
    if (head->type != REDIS_REPLY_ARRAY || head->elements != 2) {
        rc = govctl_fail(GOV_REASON_REDIS_ERROR, "%s did not answer HMGET as a hash", head_key);
        goto out;
    }
    const redisReply *h = head->element[0], *s = head->element[1];
    const char *hh = h->type == REDIS_REPLY_STRING ? h->str : NULL;
    const char *hs = s->type == REDIS_REPLY_STRING ? s->str : NULL;
    int64_t head_seq = -1;
    int head_ok = (seq == 0 && hh == NULL && hs == NULL) ||
                  (hh && hs && h->len == GOV_SHA256_HEXLEN && strcmp(hh, prev) == 0 &&
                   gov_state_decimal_canonical(hs, s->len, 0, &head_seq) &&
                   (uint64_t)head_seq == seq);
    if (!head_ok) {
        printf("BROKEN tenant=%s position=%" PRIu64 " reason=head does not match the last entry\n",
               tenant, seq);
        rc = govctl_fail_clean(GOV_REASON_CHAIN_TRUNCATED,
                               "%s is seq %.24s hash %.64s but the stream ends at seq %" PRIu64
                               " hash %s",
                               head_key, hs ? hs : "(none)", hh ? hh : "(none)", seq, prev);
        goto out;
    }
    if (seq == 0) {
        int known = 0;
        if (tenant_known(r, tenant, &known, eb, sizeof eb) != GOV_OK) {
            rc = govctl_fail(GOV_REASON_REDIS_ERROR, "%s", eb);
            goto out;
        }
        if (known) {
            printf("BROKEN tenant=%s position=0 reason=no audit chain for a known tenant\n",
                   tenant);
            rc = govctl_fail(GOV_REASON_CHAIN_MISSING,
                             "%s has a constitution or a rule pack, but neither %s nor %s exists",
                             tenant, key, head_key);
        } else if (!quiet) {
            printf("OK tenant=%s entries=0 head=none (unknown tenant: no constitution, no rule "
                   "pack, no chain)\n",
                   tenant);
        }
        goto out;
    }
    if (!quiet && archive_dir != NULL)
        printf("OK tenant=%s entries=%" PRIu64 " head=%s archived=%" PRIu64 " segments=%zu "
               "tail=%" PRIu64 "\n", tenant, seq, prev, archived, segments, tail);
    else if (!quiet)
        printf("OK tenant=%s entries=%" PRIu64 " head=%s from=%" PRIu64 " tail=%" PRIu64 "\n",
               tenant, seq, prev, mark.anchor_seq, tail);
out:
    freeReplyObject(head);
    gov_redis_free(r);
    return rc;
}

int govctl_cmd_audit(int argc, char **argv) {
    static const char *help =
        "govctl audit verify --tenant T [--archive DIR] [--redis-host H] [--redis-port P] "
        "[--redis-nodes H:P,...] [--quiet]";
    if (argc < 2 || strcmp(argv[1], "verify") != 0)
        return govctl_usage("%s", help);
    const char *tenant = NULL;
    const char *host = govctl_env("GOV_REDIS_HOST", "127.0.0.1");
    int port = atoi(govctl_env("GOV_REDIS_PORT", "6390"));
    const char *nodes = govctl_env("GOV_REDIS_NODES", NULL); /* set: a Redis Cluster */
    int quiet = 0;
    const char *archive_dir = NULL;
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'},
        {"redis-host", required_argument, NULL, 'H'},
        {"redis-port", required_argument, NULL, 'P'},
        {"redis-nodes", required_argument, NULL, 'N'},
        {"quiet", no_argument, NULL, 'q'},
        {"archive", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "t:H:P:N:qa:", opts, NULL)) != -1) {
        switch (c) {
        case 't': tenant = optarg; break;
        case 'H': host = optarg; break;
        case 'P': port = atoi(optarg); break;
        case 'N': nodes = optarg; break;
        case 'q': quiet = 1; break;
        case 'a': archive_dir = optarg; break;
        default: return govctl_usage("%s", help);
        }
    }
    if (tenant == NULL || !gov_tenant_valid(tenant, strlen(tenant)))
        return govctl_usage("%s (a valid --tenant is required)", help);
    if (port <= 0 || port > 65535)
        return govctl_usage("--redis-port must be 1..65535");
    return audit_verify(tenant, nodes, host, port, quiet, archive_dir);
}
