/* gov_state_archive.c - the archive's part of the Redis layout: the archived
 * watermark audit:{T}:archive, the trim anchor audit:{T}:anchor, the trim of
 * audit:{T} itself, tenant discovery, and the strict reading of a chain
 * entry that gov-archive and `govctl audit verify` share.
 *
 * The one rule this file keeps (docs/contracts.md, "The archive"): the
 * stream is trimmed only in the script that moves the watermark, only up to
 * the entry the watermark names, and only when that entry is still in the
 * stream with the same seq and hash - so nothing that is not in a durable
 * segment leaves Redis, and a stream rebuilt under a stale watermark is
 * left alone.  The watermark moves by compare-and-set on its seq and its
 * owner, so two archivers cannot both advance one tenant.
 *
 * What it does not do: write files (gov-archive), verify chains (govctl,
 * gov_audit_chain), or touch anything gov-audit writes but the stream's
 * archived prefix.
 */
#include "gov_state.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_util.h"

/* audit:{T}:archive and audit:{T}:anchor: the stream's key plus a suffix,
 * in the tenant's slot. */
static gov_err_t archive_keys(const char *tenant, char stream[GOV_STATE_KEY_MAX],
                              char archive[GOV_STATE_KEY_MAX + 16],
                              char anchor[GOV_STATE_KEY_MAX + 16], char *errbuf,
                              size_t errbuf_size) {
    if (gov_state_key(GOV_STATE_AUDIT, tenant, stream) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "not a tenant id");
        return GOV_ERR_INVALID_ARG;
    }
    snprintf(archive, GOV_STATE_KEY_MAX + 16, "%s:archive", stream);
    snprintf(anchor, GOV_STATE_KEY_MAX + 16, "%s:anchor", stream);
    return GOV_OK;
}

int gov_state_decimal_canonical(const char *s, size_t len, int is_signed, int64_t *out) {
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
        *out = (int64_t)v;
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

/* The fields of a stream entry, each covered by the hash or the hash. */
enum { F_SEQ, F_EVENT_ID, F_TYPE, F_OCCURRED_AT, F_SOURCE, F_PAYLOAD, F_PREV_HASH, F_HASH, F_COUNT };
static const char *const field_names[F_COUNT] = {
    "seq", "event_id", "type", "occurred_at", "source", "payload", "prev_hash", "hash",
};

int gov_state_audit_entry_parse(const redisReply *ent, gov_audit_entry_t *e,
                                const char **stored_hash, const char **stream_id, char *why,
                                size_t why_size) {
    const redisReply *val[F_COUNT] = {0};
    if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
        ent->element[0]->type != REDIS_REPLY_STRING ||
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
            for (char *c = name; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                    *c = '?';
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
    if (!gov_state_decimal_canonical(val[F_SEQ]->str, val[F_SEQ]->len, 0, &seq) || seq == 0) {
        snprintf(why, why_size, "seq is not a positive decimal in its own canonical form");
        return -1;
    }
    if (!gov_state_decimal_canonical(val[F_OCCURRED_AT]->str, val[F_OCCURRED_AT]->len, 1, &at)) {
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
    if (stream_id)
        *stream_id = ent->element[0]->str;
    return 0;
}

/* A (seq, hash) pair of a mark hash: both absent, or both canonical. */
static int mark_pair(const redisReply *seq, const redisReply *hash, uint64_t *out_seq,
                     char out_hash[GOV_SHA256_HEXLEN + 1]) {
    if (seq->type == REDIS_REPLY_NIL && hash->type == REDIS_REPLY_NIL)
        return 1;
    int64_t v;
    if (seq->type != REDIS_REPLY_STRING || hash->type != REDIS_REPLY_STRING ||
        !gov_state_decimal_canonical(seq->str, seq->len, 0, &v) || v == 0 ||
        !lower_hex64(hash->str, hash->len))
        return 0;
    *out_seq = (uint64_t)v;
    memcpy(out_hash, hash->str, GOV_SHA256_HEXLEN + 1);
    return 1;
}

gov_err_t gov_state_archive_mark_read(gov_redis_t *r, const char *tenant,
                                      gov_state_archive_mark_t *out, char *errbuf,
                                      size_t errbuf_size) {
    char stream[GOV_STATE_KEY_MAX], archive[GOV_STATE_KEY_MAX + 16], anchor[GOV_STATE_KEY_MAX + 16];
    memset(out, 0, sizeof *out);
    gov_err_t err = archive_keys(tenant, stream, archive, anchor, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    const char *a[] = {"HMGET", archive, "component", "seq", "hash", "stream_id"};
    const char *b[] = {"HMGET", anchor, "seq", "hash"};
    redisReply *ra = NULL, *rb = NULL;
    if ((err = gov_redis_command(r, &ra, 6, a, NULL, errbuf, errbuf_size)) != GOV_OK ||
        (err = gov_redis_command(r, &rb, 4, b, NULL, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    err = GOV_ERR_STATE;
    if (ra->type != REDIS_REPLY_ARRAY || ra->elements != 4 || rb->type != REDIS_REPLY_ARRAY ||
        rb->elements != 2) {
        snprintf(errbuf, errbuf_size, "%s or %s did not answer HMGET as a hash", archive, anchor);
        goto out;
    }
    const redisReply *comp = ra->element[0], *sid = ra->element[3];
    if (!mark_pair(ra->element[1], ra->element[2], &out->seq, out->hash) ||
        (comp->type == REDIS_REPLY_STRING && comp->len >= sizeof out->component) ||
        (out->seq != 0) != (sid->type == REDIS_REPLY_STRING) ||
        (sid->type == REDIS_REPLY_STRING && sid->len >= sizeof out->stream_id)) {
        snprintf(errbuf, errbuf_size, "%s is not a watermark (seq, hash, stream_id)", archive);
        goto out;
    }
    if (!mark_pair(rb->element[0], rb->element[1], &out->anchor_seq, out->anchor_hash)) {
        snprintf(errbuf, errbuf_size, "%s is not an anchor (seq, hash)", anchor);
        goto out;
    }
    if (comp->type == REDIS_REPLY_STRING)
        memcpy(out->component, comp->str, comp->len + 1);
    if (sid->type == REDIS_REPLY_STRING)
        memcpy(out->stream_id, sid->str, sid->len + 1);
    err = GOV_OK;
out:
    freeReplyObject(ra);
    freeReplyObject(rb);
    return err;
}

gov_err_t gov_state_archive_claim(gov_redis_t *r, const char *tenant, const char *component,
                                  char *owner, size_t owner_size, char *errbuf,
                                  size_t errbuf_size) {
    char stream[GOV_STATE_KEY_MAX], archive[GOV_STATE_KEY_MAX + 16], anchor[GOV_STATE_KEY_MAX + 16];
    gov_err_t err = archive_keys(tenant, stream, archive, anchor, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    const char *set[] = {"HSETNX", archive, "component", component};
    const char *get[] = {"HGET", archive, "component"};
    redisReply *rep = NULL;
    if ((err = gov_redis_command(r, NULL, 4, set, NULL, errbuf, errbuf_size)) != GOV_OK ||
        (err = gov_redis_command(r, &rep, 3, get, NULL, errbuf, errbuf_size)) != GOV_OK)
        return err;
    if (rep->type != REDIS_REPLY_STRING) {
        snprintf(errbuf, errbuf_size, "%s has no component after HSETNX", archive);
        freeReplyObject(rep);
        return GOV_ERR_STATE;
    }
    snprintf(owner, owner_size, "%s", rep->str);
    freeReplyObject(rep);
    return GOV_OK;
}

/* KEYS: 1 archive, 2 stream, 3 anchor (one slot).
 * ARGV: 1 component, 2 expected seq ('0': none), 3 seq, 4 hash,
 *       5 stream_id, 6 segment, 7 archived_at, 8 trim ('1'/'0'), 9 minid
 * Answers {'ok', trimmed}, {'conflict', seq} or {'owner', component}. */
static gov_redis_script_t advance_script = {
    "local cur = redis.call('HMGET', KEYS[1], 'component', 'seq')\n"
    "if cur[1] and cur[1] ~= ARGV[1] then return {'owner', cur[1]} end\n"
    "if (cur[2] or '0') ~= ARGV[2] then return {'conflict', cur[2] or '0'} end\n"
    "redis.call('HSET', KEYS[1], 'component', ARGV[1], 'seq', ARGV[3], 'hash', ARGV[4],\n"
    "           'stream_id', ARGV[5], 'segment', ARGV[6], 'archived_at', ARGV[7])\n"
    "if ARGV[8] ~= '1' then return {'ok', 0} end\n"
    "local e = redis.call('XRANGE', KEYS[2], ARGV[5], ARGV[5])\n"
    "if #e ~= 1 then return {'ok', 0} end\n"
    "local f, s, h = e[1][2], nil, nil\n"
    "for i = 1, #f, 2 do\n"
    "  if f[i] == 'seq' then s = f[i + 1] elseif f[i] == 'hash' then h = f[i + 1] end\n"
    "end\n"
    "if s ~= ARGV[3] or h ~= ARGV[4] then return {'ok', 0} end\n"
    "local n = redis.call('XTRIM', KEYS[2], 'MINID', ARGV[9])\n"
    "redis.call('HSET', KEYS[3], 'seq', ARGV[3], 'hash', ARGV[4])\n"
    "return {'ok', n}\n",
    {0}};

gov_err_t gov_state_archive_advance(gov_redis_t *r, const char *tenant, const char *component,
                                    uint64_t expected_seq, uint64_t seq, const char *hash,
                                    const char *stream_id, const char *segment,
                                    long long archived_at_us, int trim,
                                    gov_state_archive_outcome_t *outcome, long long *trimmed,
                                    char *errbuf, size_t errbuf_size) {
    char stream[GOV_STATE_KEY_MAX], archive[GOV_STATE_KEY_MAX + 16], anchor[GOV_STATE_KEY_MAX + 16];
    *trimmed = 0;
    *outcome = GOV_STATE_ARCHIVE_CONFLICT;
    gov_err_t err = archive_keys(tenant, stream, archive, anchor, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    /* the smallest id after stream_id "<ms>-<n>": "<ms>-<n+1>" */
    unsigned long long ms, n;
    char minid[48], expected[24], seq_s[24], at[24];
    if (sscanf(stream_id, "%llu-%llu", &ms, &n) != 2 || n == ULLONG_MAX) {
        snprintf(errbuf, errbuf_size, "not a stream id: %.40s", stream_id);
        return GOV_ERR_INVALID_ARG;
    }
    snprintf(minid, sizeof minid, "%llu-%llu", ms, n + 1);
    snprintf(expected, sizeof expected, "%" PRIu64, expected_seq);
    snprintf(seq_s, sizeof seq_s, "%" PRIu64, seq);
    snprintf(at, sizeof at, "%lld", archived_at_us);
    const char *argv[] = {archive, stream, anchor, component, expected, seq_s, hash,
                          stream_id, segment, at, trim ? "1" : "0", minid};
    redisReply *rep = NULL;
    if ((err = gov_redis_eval(r, &advance_script, 3, 12, argv, NULL, &rep, errbuf,
                              errbuf_size)) != GOV_OK)
        return err;
    err = GOV_OK;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING) {
        snprintf(errbuf, errbuf_size, "archive script answered an unexpected shape");
        err = GOV_ERR_REDIS;
    } else if (strcmp(rep->element[0]->str, "ok") == 0) {
        *outcome = GOV_STATE_ARCHIVE_ADVANCED;
        *trimmed = rep->element[1]->type == REDIS_REPLY_INTEGER ? rep->element[1]->integer : 0;
    } else if (strcmp(rep->element[0]->str, "owner") == 0) {
        *outcome = GOV_STATE_ARCHIVE_NOT_OWNER;
        snprintf(errbuf, errbuf_size, "owned by %.100s",
                 rep->element[1]->type == REDIS_REPLY_STRING ? rep->element[1]->str : "?");
    } else {
        snprintf(errbuf, errbuf_size, "the watermark is seq %.24s, not %s",
                 rep->element[1]->type == REDIS_REPLY_STRING ? rep->element[1]->str : "?",
                 expected);
    }
    freeReplyObject(rep);
    return err;
}

/* SCANs one node for audit:{*}:head and appends each valid tenant to
 * names[*found], while *found < max_tenants. */
static gov_err_t discover_on(gov_redis_t *node, size_t max_tenants,
                             char (*names)[GOV_TENANT_MAX + 1], size_t *found, char *errbuf,
                             size_t errbuf_size) {
    char cursor[32] = "0";
    do {
        redisReply *rep = NULL;
        const char *argv[] = {"SCAN", cursor, "MATCH", "audit:{*}:head", "COUNT", "1000"};
        gov_err_t err = gov_redis_command(node, &rep, 6, argv, NULL, errbuf, errbuf_size);
        if (err != GOV_OK)
            return err;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[0]->len >= sizeof cursor || rep->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            snprintf(errbuf, errbuf_size, "SCAN answered an unexpected shape");
            return GOV_ERR_REDIS;
        }
        memcpy(cursor, rep->element[0]->str, rep->element[0]->len + 1);
        const redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements && *found < max_tenants; i++) {
            const redisReply *k = keys->element[i];
            /* audit:{T}:head -> T */
            if (k->type != REDIS_REPLY_STRING || k->len < 13 || memcmp(k->str, "audit:{", 7) != 0 ||
                memcmp(k->str + k->len - 6, "}:head", 6) != 0)
                continue;
            size_t tlen = k->len - 13;
            if (tlen == 0 || tlen > GOV_TENANT_MAX || !gov_tenant_valid(k->str + 7, tlen))
                continue;
            memcpy(names[*found], k->str + 7, tlen);
            names[(*found)++][tlen] = '\0';
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0 && *found < max_tenants);
    return GOV_OK;
}

static int tenant_cmp(const void *a, const void *b) {
    return strcmp(a, b);
}

gov_err_t gov_state_archive_discover(gov_redis_t *r, size_t max_tenants,
                                     void (*fn)(void *ctx, const char *tenant), void *ctx,
                                     char *errbuf, size_t errbuf_size) {
    size_t found = 0;
    if (max_tenants == 0)
        return GOV_OK;
    char(*names)[GOV_TENANT_MAX + 1] = gov_calloc(max_tenants, sizeof *names);
    if (names == NULL)
        return GOV_ERR_NOMEM;
    gov_err_t err = GOV_OK;
    int shards = gov_redis_shards(r);
    if (shards == 0) {
        snprintf(errbuf, errbuf_size, "redis cluster: no slot map (no node answered)");
        err = GOV_ERR_UNAVAILABLE;
    }
    /* every master holds its own slots' keys: a SCAN of one sees only those */
    for (int i = 0; i < shards && err == GOV_OK && found < max_tenants; i++) {
        gov_redis_t *node = gov_redis_shard(r, i);
        if (node == NULL) {
            snprintf(errbuf, errbuf_size, "redis cluster: no connection for master %d", i);
            err = GOV_ERR_UNAVAILABLE;
            break;
        }
        err = discover_on(node, max_tenants, names, &found, errbuf, errbuf_size);
    }
    /* merged: SCAN may return a key twice, and a slot that moved during the
     * round is seen on two masters */
    if (err == GOV_OK && found > 0) {
        qsort(names, found, sizeof *names, tenant_cmp);
        for (size_t i = 0; i < found; i++)
            if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
                fn(ctx, names[i]);
    }
    gov_free(names);
    return err;
}
