/* cmd_audit.c - `govctl audit verify --tenant T`.
 *
 * Walks audit:{T} from the first entry in pages of 500 (gov_state's XRANGE
 * with an exclusive start), recomputes every entry's hash from its fields
 * and checks its link to the entry before it, then checks that
 * audit:{T}:head names the last entry (so a truncated tail is found too).
 * Reports the first break and exits 1, or the chain's length and head and
 * exits 0.  Memory is bounded by one page whatever the chain's length.
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

#include "gov_audit_chain.h"
#include "gov_redis.h"
#include "gov_state.h"
#include "gov_util.h"
#include "govctl.h"

#define PAGE 500

/* The fields of a stream entry, each covered by the hash (gov_audit_chain.h)
 * or the hash itself. */
enum { F_SEQ, F_EVENT_ID, F_TYPE, F_OCCURRED_AT, F_SOURCE, F_PAYLOAD, F_PREV_HASH, F_HASH, F_COUNT };
static const char *const field_names[F_COUNT] = {
    "seq", "event_id", "type", "occurred_at", "source", "payload", "prev_hash", "hash",
};

/* 1 when s[0..len) is exactly what "%" PRIu64 (is_signed 0) or "%" PRId64
 * (1) writes for the number it reads as: digits, no sign but a leading '-'
 * for a negative signed one, no leading zero, no overflow. */
static int canonical_decimal(const char *s, size_t len, int is_signed, int64_t *out) {
    char back[32];
    if (len == 0 || len >= sizeof back)
        return 0;
    errno = 0;
    char *end = NULL;
    int n;
    if (is_signed) {
        long long v = strtoll(s, &end, 10);
        n = snprintf(back, sizeof back, "%lld", v);
        *out = (int64_t)v;
    } else {
        unsigned long long v = strtoull(s, &end, 10);
        n = snprintf(back, sizeof back, "%llu", v);
        *out = (int64_t)v; /* seq: compared as uint64_t by the caller */
        if (v > (unsigned long long)INT64_MAX)
            return 0;
    }
    return errno == 0 && end == s + len && (size_t)n == len && memcmp(back, s, len) == 0;
}

static int lower_hex64(const char *s, size_t len) {
    if (len != GOV_SHA256_HEXLEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* Reads one XRANGE element into *e and *stored_hash (borrowed from ent).
 * Returns 0, or -1 with why (a sentence for the report) filled in. */
static int entry_read(const redisReply *ent, gov_audit_entry_t *e, const char **stored_hash,
                      char *why, size_t why_size) {
    const redisReply *val[F_COUNT] = {0};
    if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
        ent->element[1]->type != REDIS_REPLY_ARRAY || ent->element[1]->elements % 2 != 0) {
        snprintf(why, why_size, "not a stream entry");
        return -1;
    }
    const redisReply *f = ent->element[1];
    for (size_t i = 0; i < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        int which = -1;
        for (int n = 0; n < F_COUNT && which < 0; n++)
            if (k->type == REDIS_REPLY_STRING && k->len == strlen(field_names[n]) &&
                memcmp(k->str, field_names[n], k->len) == 0)
                which = n;
        if (which < 0) {
            char name[40];
            gov_utf8_shorten(name, sizeof name, k->type == REDIS_REPLY_STRING ? k->str : "?", 32);
            govctl_printable(name);
            snprintf(why, why_size, "field \"%s\" is not covered by the hash", name);
            return -1;
        }
        if (val[which] != NULL) {
            snprintf(why, why_size, "field %s appears twice", field_names[which]);
            return -1;
        }
        if (v->type != REDIS_REPLY_STRING ||
            (which != F_PAYLOAD && memchr(v->str, '\0', v->len) != NULL)) {
            snprintf(why, why_size, "field %s is not a string without NUL bytes",
                     field_names[which]);
            return -1;
        }
        val[which] = v;
    }
    for (int n = 0; n < F_COUNT; n++)
        if (val[n] == NULL) {
            snprintf(why, why_size, "field %s is missing", field_names[n]);
            return -1;
        }
    int64_t seq, at;
    if (!canonical_decimal(val[F_SEQ]->str, val[F_SEQ]->len, 0, &seq) || seq == 0) {
        snprintf(why, why_size, "seq is not a positive decimal in its own canonical form");
        return -1;
    }
    if (!canonical_decimal(val[F_OCCURRED_AT]->str, val[F_OCCURRED_AT]->len, 1, &at)) {
        snprintf(why, why_size, "occurred_at is not a decimal in its own canonical form");
        return -1;
    }
    if (!lower_hex64(val[F_PREV_HASH]->str, val[F_PREV_HASH]->len) ||
        !lower_hex64(val[F_HASH]->str, val[F_HASH]->len)) {
        snprintf(why, why_size, "prev_hash or hash is not 64 lowercase hex characters");
        return -1;
    }
    *e = (gov_audit_entry_t){
        .prev_hash = val[F_PREV_HASH]->str,
        .seq = (uint64_t)seq,
        .event_id = val[F_EVENT_ID]->str,
        .type = val[F_TYPE]->str,
        .occurred_at = at,
        .source = val[F_SOURCE]->str,
        .payload = val[F_PAYLOAD]->str,
        .payload_len = val[F_PAYLOAD]->len,
    };
    *stored_hash = val[F_HASH]->str;
    return 0;
}

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

static int audit_verify(const char *tenant, const char *host, int port, int quiet) {
    char eb[512], key[GOV_STATE_KEY_MAX], head_key[GOV_STATE_KEY_MAX], start[80] = "-";
    char prev[GOV_SHA256_HEXLEN + 1] = GOV_AUDIT_GENESIS;
    uint64_t seq = 0;
    gov_redis_t *r = NULL;
    redisReply *head = NULL;
    int rc = GOVCTL_OK;
    if (gov_redis_new(host, port, 5000, &r, eb, sizeof eb) != GOV_OK) {
        gov_redis_free(r);
        return govctl_fail(GOV_REASON_REDIS_UNAVAILABLE, "%s", eb);
    }
    if (gov_state_key(GOV_STATE_AUDIT, tenant, key) != GOV_OK ||
        gov_state_key(GOV_STATE_AUDIT_HEAD, tenant, head_key) != GOV_OK) {
        rc = govctl_usage("not a tenant id: %s", tenant);
        goto out;
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
            if (entry_read(ent, &e, &stored, why, sizeof why) != 0) {
                char full[200];
                snprintf(full, sizeof full, "%s: %s", gov_audit_break_str(GOV_AUDIT_MALFORMED),
                         why);
                freeReplyObject(page);
                rc = report_break(tenant, id, seq + 1, full);
                goto out;
            }
            gov_audit_break_t b = gov_audit_chain_check(&e, stored, prev, seq + 1);
            if (b != GOV_AUDIT_INTACT) {
                freeReplyObject(page);
                rc = report_break(tenant, id, seq + 1, gov_audit_break_str(b));
                goto out;
            }
            memcpy(prev, stored, sizeof prev);
            seq++;
            snprintf(start, sizeof start, "(%s", id);
        }
        freeReplyObject(page);
        if (n < PAGE)
            break;
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
                   canonical_decimal(hs, s->len, 0, &head_seq) && (uint64_t)head_seq == seq);
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
    if (!quiet)
        printf("OK tenant=%s entries=%" PRIu64 " head=%s\n", tenant, seq, prev);
out:
    freeReplyObject(head);
    gov_redis_free(r);
    return rc;
}

int govctl_cmd_audit(int argc, char **argv) {
    static const char *help =
        "govctl audit verify --tenant T [--redis-host H] [--redis-port P] [--quiet]";
    if (argc < 2 || strcmp(argv[1], "verify") != 0)
        return govctl_usage("%s", help);
    const char *tenant = NULL;
    const char *host = govctl_env("GOV_REDIS_HOST", "127.0.0.1");
    int port = atoi(govctl_env("GOV_REDIS_PORT", "6390"));
    int quiet = 0;
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'},
        {"redis-host", required_argument, NULL, 'H'},
        {"redis-port", required_argument, NULL, 'P'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "t:H:P:q", opts, NULL)) != -1) {
        switch (c) {
        case 't': tenant = optarg; break;
        case 'H': host = optarg; break;
        case 'P': port = atoi(optarg); break;
        case 'q': quiet = 1; break;
        default: return govctl_usage("%s", help);
        }
    }
    if (tenant == NULL || !gov_tenant_valid(tenant, strlen(tenant)))
        return govctl_usage("%s (a valid --tenant is required)", help);
    if (port <= 0 || port > 65535)
        return govctl_usage("--redis-port must be 1..65535");
    return audit_verify(tenant, host, port, quiet);
}
