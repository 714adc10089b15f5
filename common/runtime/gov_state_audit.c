/* gov_state_audit.c - gov-audit's materialization: one Lua script per event
 * writes the chain entry, the dedup indexes, the decision record and the
 * tenant's applied offset, all or nothing and all in the tenant's hash slot;
 * and the reads `govctl audit verify` walks.
 *
 * Redis Lua has no SHA-256, so the entry hash is computed here and the script
 * does a compare-and-append: it appends only if the tenant's head is still
 * the (hash, seq) the entry was computed against, and otherwise returns the
 * current head so we recompute and try again.  A small per-tenant cache of
 * the head makes the common case one round trip.  Replays are recognised by
 * event_id and content digest (audit:{T}:ids), so replaying a partition from
 * any offset, or the same event arriving twice, leaves the stream unchanged;
 * an event reusing a known id with other content is chained too (a
 * conflicting twin: nothing a producer sends first can hide a later event).
 *
 * Cost: one EVALSHA per event (two after a cache miss or a concurrent
 * writer); hashing is one pass over the payload.
 *
 * What it does not do: verify the chain (gov_audit_chain, govctl).
 */
#include "gov_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_audit_chain.h"
#include "gov_time.h"
#include "gov_util.h"

/* KEYS: 1 stream, 2 head, 3 ids, 4 applied offset, 5 ids age (zset),
 *       [6 decision key, 7 decision_ids, 8 decision_ids age (zset)]
 *       - all in the tenant's slot
 * ARGV: 1 event_id, 2 prev_hash, 3 seq, 4 hash, 5 offset, 6 ttl_s,
 *       7 decision_id ('' for an AuditEvent), 8 content digest (64 hex),
 *       9 now (ms), 10 event id window (ms), 11 n (entry field/value pairs),
 *       then the pairs, then the decision pairs
 *
 * Dedup compares content, not only ids (docs/contracts.md, "Audit
 * conflicts").  :ids maps an event_id to "<digest> <stream id>":
 *   - known id, same digest: a replay - only the offset moves ('duplicate');
 *   - known id, other digest: a conflicting twin - chained as its own entry,
 *     noted under "<event_id>#<digest>" (so its own replay is a duplicate);
 *   - a PolicyDecision naming a known decision_id under another event_id:
 *     a conflicting twin too - chained; the record is never overwritten but
 *     marked (conflicting_event_id), so GET /v1/decisions says so.
 * A value without a digest (written before digests) counts as a replay.
 * The reply's third element names the twin ('event_id', 'decision_id', '');
 * the last element of every reply is the tenant's applied offset as it was
 * before this call ('' when none): the processor compares it with what it
 * applied (a lower one means the tenant's slot lost writes).
 *
 * Bounded: every id noted in :ids (:decision_ids) is scored with the time
 * in the age zset; each append first removes at most 64 ids older than the
 * window (the decision TTL for decision ids), so both stay proportional to
 * the tenant's traffic over the window. */
static gov_redis_script_t append_script = {
    "local function trim(h, z, cutoff)\n"
    "  local old = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', 0, 64)\n"
    "  if #old > 0 then\n"
    "    redis.call('HDEL', h, unpack(old))\n"
    "    redis.call('ZREM', z, unpack(old))\n"
    "  end\n"
    "end\n"
    "local function applied()\n"
    "  return redis.call('SET', KEYS[4], ARGV[5], 'GET') or ''\n"
    "end\n"
    "local now = tonumber(ARGV[9])\n"
    "local dec = ARGV[7] ~= ''\n"
    "local idf = ARGV[1]\n"
    "local twin = ''\n"
    "local seen = redis.call('HGET', KEYS[3], idf)\n"
    "if seen then\n"
    "  if string.len(seen) < 65 or string.sub(seen, 1, 64) == ARGV[8] then\n"
    "    return {'duplicate', seen, applied()}\n"
    "  end\n"
    "  idf = ARGV[1] .. '#' .. ARGV[8]\n"
    "  local again = redis.call('HGET', KEYS[3], idf)\n"
    "  if again then\n"
    "    return {'duplicate', again, applied()}\n"
    "  end\n"
    "  twin = 'event_id'\n"
    "end\n"
    "local known = false\n"
    "if dec then\n"
    "  local owner = redis.call('HGET', KEYS[7], ARGV[7])\n"
    "  if owner == ARGV[1] and twin == '' then\n"
    "    return {'duplicate', '', applied()}\n"
    "  end\n"
    "  known = owner or redis.call('EXISTS', KEYS[6]) == 1\n"
    "  if known and twin == '' then twin = 'decision_id' end\n"
    "end\n"
    "local head = redis.call('HMGET', KEYS[2], 'hash', 'seq')\n"
    "local h = head[1] or '" GOV_AUDIT_GENESIS "'\n"
    "local s = head[2] or '0'\n"
    "if h ~= ARGV[2] or tonumber(s) + 1 ~= tonumber(ARGV[3]) then\n"
    "  return {'conflict', h, s, redis.call('GET', KEYS[4]) or ''}\n"
    "end\n"
    "local n = tonumber(ARGV[11])\n"
    "local entry = {}\n"
    "for i = 12, 11 + 2 * n do entry[#entry + 1] = ARGV[i] end\n"
    "local id = redis.call('XADD', KEYS[1], '*', unpack(entry))\n"
    "trim(KEYS[3], KEYS[5], now - tonumber(ARGV[10]))\n"
    "redis.call('HSET', KEYS[3], idf, ARGV[8] .. ' ' .. id)\n"
    "redis.call('ZADD', KEYS[5], now, idf)\n"
    "redis.call('HSET', KEYS[2], 'hash', ARGV[4], 'seq', ARGV[3])\n"
    "if dec then\n"
    "  trim(KEYS[7], KEYS[8], now - 1000 * tonumber(ARGV[6]))\n"
    "  if not known then\n"
    "    local d = {}\n"
    "    for i = 12 + 2 * n, #ARGV do d[#d + 1] = ARGV[i] end\n"
    "    redis.call('HSET', KEYS[7], ARGV[7], ARGV[1])\n"
    "    redis.call('ZADD', KEYS[8], now, ARGV[7])\n"
    "    redis.call('HSET', KEYS[6], unpack(d))\n"
    "    redis.call('EXPIRE', KEYS[6], ARGV[6])\n"
    "  end\n"
    "  if twin ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then\n"
    "    redis.call('HSET', KEYS[6], 'conflicting_event_id', ARGV[1])\n"
    "  end\n"
    "end\n"
    "return {'ok', id, twin, applied()}\n",
    {0}};

#define HEAD_SLOTS 256

typedef struct head_slot {
    char tenant[GOV_TENANT_MAX + 1];
    char hash[GOV_SHA256_HEXLEN + 1];
    uint64_t seq;
} head_slot_t;

struct gov_state_audit {
    gov_redis_t *redis;
    long decision_ttl_s;
    long long id_window_ms;
    head_slot_t heads[HEAD_SLOTS];
};

gov_state_audit_t *gov_state_audit_new(gov_redis_t *redis, long decision_ttl_s) {
    gov_state_audit_t *s = gov_calloc(1, sizeof *s);
    if (s) {
        s->redis = redis;
        s->decision_ttl_s = decision_ttl_s;
        s->id_window_ms = GOV_STATE_AUDIT_ID_WINDOW_MS;
    }
    return s;
}

void gov_state_audit_set_id_window(gov_state_audit_t *s, long long window_ms) {
    s->id_window_ms = window_ms;
}

void gov_state_audit_free(gov_state_audit_t *s) {
    gov_free(s);
}

void gov_state_audit_forget(gov_state_audit_t *s) {
    memset(s->heads, 0, sizeof s->heads);
}

static head_slot_t *head_for(gov_state_audit_t *s, const char *tenant) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *c = tenant; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    head_slot_t *slot = &s->heads[h % HEAD_SLOTS];
    if (strcmp(slot->tenant, tenant) != 0) {
        /* Unknown here: guess genesis; a conflict reply corrects it. */
        snprintf(slot->tenant, sizeof slot->tenant, "%s", tenant);
        memcpy(slot->hash, GOV_AUDIT_GENESIS, sizeof slot->hash);
        slot->seq = 0;
    }
    return slot;
}

/* Argument vector under construction; strings it owns are freed at the end. */
#define ARGV_MAX 128 /* the widest event (PolicyDecision) needs about 70 */

typedef struct argv_buf {
    const char *v[ARGV_MAX];
    size_t len[ARGV_MAX];
    char *owned[ARGV_MAX];
    int n, nowned;
    int overflow; /* more arguments than ARGV_MAX: the event is unmaterializable */
} argv_buf_t;

static int arg_add(argv_buf_t *a, const char *s, size_t len) {
    if (a->n >= ARGV_MAX) {
        a->overflow = 1;
        return -1;
    }
    a->v[a->n] = s;
    a->len[a->n] = len;
    a->n++;
    return 0;
}

static int arg_take(argv_buf_t *a, char *s) {
    if (s == NULL || a->nowned >= ARGV_MAX) {
        a->overflow |= s != NULL;
        gov_free(s);
        return -1;
    }
    a->owned[a->nowned++] = s;
    return arg_add(a, s, strlen(s));
}

static void arg_free(argv_buf_t *a) {
    for (int i = 0; i < a->nowned; i++)
        gov_free(a->owned[i]);
}

static char *fmt_dup(const char *fmt, long long v) {
    char b[32];
    snprintf(b, sizeof b, fmt, v);
    return gov_strdup(b);
}

/* Adds the decision record's field/value pairs. */
static int add_decision_fields(argv_buf_t *a, json_t *ev) {
    const char *k;
    json_t *v;
    json_object_foreach(ev, k, v) {
        if (json_is_null(v))
            continue;
        if (arg_add(a, k, strlen(k)) != 0)
            return -1;
        if (json_is_string(v)) {
            if (arg_add(a, json_string_value(v), json_string_length(v)) != 0)
                return -1;
        } else if (json_is_integer(v)) {
            if (arg_take(a, fmt_dup("%lld", (long long)json_integer_value(v))) != 0)
                return -1;
        } else {
            if (arg_take(a, json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS)) != 0)
                return -1;
        }
    }
    /* The score as the decimal the API shows (6 places), from exact micros. */
    json_int_t micros = json_integer_value(json_object_get(ev, "score_micros"));
    char score[32];
    snprintf(score, sizeof score, "%lld.%06lld", (long long)(micros / 1000000),
             (long long)(micros % 1000000));
    if (arg_add(a, "score", 5) != 0)
        return -1;
    return arg_take(a, gov_strdup(score));
}

gov_err_t gov_state_audit_append(gov_state_audit_t *s, json_t *event, const char *type,
                                 const char *source, const gov_state_pos_t *pos,
                                 gov_state_audit_twin_t *twin, int64_t *applied_before,
                                 char *errbuf, size_t errbuf_size) {
    if (twin)
        *twin = GOV_STATE_AUDIT_TWIN_NONE;
    if (applied_before)
        *applied_before = GOV_STATE_APPLIED_UNKNOWN;
    const char *tenant = json_string_value(json_object_get(event, "tenant"));
    const char *event_id = json_string_value(json_object_get(event, "event_id"));
    json_t *at = json_object_get(event, "occurred_at");
    int is_decision = strcmp(type, "PolicyDecision") == 0;
    const char *decision_id = json_string_value(json_object_get(event, "decision_id"));
    if (tenant == NULL || event_id == NULL || !json_is_integer(at)) {
        snprintf(errbuf, errbuf_size, "event lacks tenant, event_id or occurred_at");
        return GOV_ERR_INVALID_ARG;
    }
    if (is_decision && (decision_id == NULL || !gov_tenant_valid(decision_id, strlen(decision_id)))) {
        snprintf(errbuf, errbuf_size, "decision_id missing or not a safe key part");
        return GOV_ERR_INVALID_ARG;
    }

    gov_err_t err = GOV_OK;
    char *payload = json_dumps(event, JSON_COMPACT | JSON_SORT_KEYS);
    if (payload == NULL)
        return GOV_ERR_NOMEM;
    /* The content the dedup compares: the event as it is chained, without
     * occurred_at - a processor re-emitting after a crash re-derives the
     * same event_id and content but stamps a new emission time, and that
     * copy is a replay, not a conflict. */
    unsigned char md[GOV_SHA256_LEN];
    char digest[GOV_SHA256_HEXLEN + 1];
    json_t *content = json_copy(event);   /* shallow: the values are shared */
    char *content_text = NULL;
    if (content == NULL || json_object_del(content, "occurred_at") != 0 ||
        (content_text = json_dumps(content, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
        gov_sha256(content_text, strlen(content_text), md) != GOV_OK) {
        json_decref(content);
        gov_free(content_text);
        gov_free(payload);
        return GOV_ERR_NOMEM;
    }
    json_decref(content);
    gov_free(content_text);
    gov_hex_encode(md, GOV_SHA256_LEN, digest);
    long long now_ms = (long long)(gov_now_micros() / 1000);
    char k_stream[GOV_STATE_KEY_MAX], k_head[GOV_STATE_KEY_MAX], k_ids[GOV_STATE_KEY_MAX],
        k_dec[GOV_STATE_KEY_MAX], k_dec_ids[GOV_STATE_KEY_MAX], offset_key[GOV_STATE_KEY_MAX],
        k_ids_age[GOV_STATE_KEY_MAX + 8], k_dec_ids_age[GOV_STATE_KEY_MAX + 8];
    gov_state_pos_t tpos = *pos;
    tpos.tenant = tenant; /* the applied offset lives in the event's tenant's slot */
    if (gov_state_key(GOV_STATE_AUDIT, tenant, k_stream) != GOV_OK ||
        gov_state_key(GOV_STATE_AUDIT_HEAD, tenant, k_head) != GOV_OK ||
        gov_state_key(GOV_STATE_AUDIT_IDS, tenant, k_ids) != GOV_OK ||
        (is_decision && (gov_state_decision_key(tenant, decision_id, k_dec) != GOV_OK ||
                         gov_state_key(GOV_STATE_AUDIT_DECISION_IDS, tenant, k_dec_ids) != GOV_OK)) ||
        gov_state_offset_key(&tpos, offset_key) != GOV_OK) {
        gov_free(payload);
        snprintf(errbuf, errbuf_size, "tenant, decision_id or position is not a safe key part");
        return GOV_ERR_INVALID_ARG;
    }
    /* the age indexes of the two id hashes: same slot, ":age" appended */
    snprintf(k_ids_age, sizeof k_ids_age, "%s:age", k_ids);
    if (is_decision)
        snprintf(k_dec_ids_age, sizeof k_dec_ids_age, "%s:age", k_dec_ids);

    head_slot_t *head = head_for(s, tenant);
    for (int attempt = 0; attempt < 8; attempt++) {
        gov_audit_entry_t e = {
            .prev_hash = head->hash, .seq = head->seq + 1, .event_id = event_id,
            .type = type, .occurred_at = (int64_t)json_integer_value(at),
            .source = source, .payload = payload, .payload_len = strlen(payload),
        };
        char hash[GOV_SHA256_HEXLEN + 1];
        if ((err = gov_audit_chain_hash(&e, hash)) != GOV_OK)
            break;
        argv_buf_t a;
        memset(&a, 0, sizeof a);
        int bad = 0;
        bad |= arg_add(&a, k_stream, strlen(k_stream));
        bad |= arg_add(&a, k_head, strlen(k_head));
        bad |= arg_add(&a, k_ids, strlen(k_ids));
        bad |= arg_add(&a, offset_key, strlen(offset_key));
        bad |= arg_add(&a, k_ids_age, strlen(k_ids_age));
        if (is_decision) {
            bad |= arg_add(&a, k_dec, strlen(k_dec));
            bad |= arg_add(&a, k_dec_ids, strlen(k_dec_ids));
            bad |= arg_add(&a, k_dec_ids_age, strlen(k_dec_ids_age));
        }
        int nkeys = a.n;
        bad |= arg_add(&a, event_id, strlen(event_id));
        bad |= arg_add(&a, head->hash, GOV_SHA256_HEXLEN);
        bad |= arg_take(&a, fmt_dup("%lld", (long long)e.seq));
        bad |= arg_add(&a, hash, GOV_SHA256_HEXLEN);
        bad |= arg_take(&a, fmt_dup("%lld", (long long)pos->offset));
        bad |= arg_take(&a, fmt_dup("%lld", (long long)s->decision_ttl_s));
        bad |= is_decision ? arg_add(&a, decision_id, strlen(decision_id)) : arg_add(&a, "", 0);
        bad |= arg_add(&a, digest, GOV_SHA256_HEXLEN);
        bad |= arg_take(&a, fmt_dup("%lld", now_ms));
        bad |= arg_take(&a, fmt_dup("%lld", s->id_window_ms));
        bad |= arg_add(&a, "8", 1); /* entry pairs below */
        bad |= arg_add(&a, "seq", 3);
        bad |= arg_take(&a, fmt_dup("%lld", (long long)e.seq));
        bad |= arg_add(&a, "event_id", 8);
        bad |= arg_add(&a, event_id, strlen(event_id));
        bad |= arg_add(&a, "type", 4);
        bad |= arg_add(&a, type, strlen(type));
        bad |= arg_add(&a, "occurred_at", 11);
        bad |= arg_take(&a, fmt_dup("%lld", (long long)e.occurred_at));
        bad |= arg_add(&a, "source", 6);
        bad |= arg_add(&a, source, strlen(source));
        bad |= arg_add(&a, "payload", 7);
        bad |= arg_add(&a, payload, e.payload_len);
        bad |= arg_add(&a, "prev_hash", 9);
        bad |= arg_add(&a, head->hash, GOV_SHA256_HEXLEN);
        bad |= arg_add(&a, "hash", 4);
        bad |= arg_add(&a, hash, GOV_SHA256_HEXLEN);
        if (is_decision)
            bad |= add_decision_fields(&a, event);
        if (bad) {
            arg_free(&a);
            if (a.overflow) {
                snprintf(errbuf, errbuf_size, "event has more fields than a chain entry can hold");
                err = GOV_ERR_INVALID_ARG;
            } else {
                snprintf(errbuf, errbuf_size, "out of memory building the chain entry");
                err = GOV_ERR_NOMEM;
            }
            break;
        }
        redisReply *rep = NULL;
        err = gov_redis_eval(s->redis, &append_script, nkeys, a.n, a.v,
                             a.len, &rep, errbuf, errbuf_size);
        arg_free(&a);
        if (err != GOV_OK)
            break;
        const char *status = (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
                              rep->element[0]->type == REDIS_REPLY_STRING)
                                 ? rep->element[0]->str : "";
        if (applied_before && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 3) {
            const redisReply *last = rep->element[rep->elements - 1];
            if (last->type == REDIS_REPLY_STRING)
                *applied_before = last->len == 0 ? -1 : strtoll(last->str, NULL, 10);
        }
        if (strcmp(status, "ok") == 0) {
            memcpy(head->hash, hash, sizeof head->hash);
            head->seq = e.seq;
            err = GOV_OK;
            const char *kind = rep->elements >= 3 && rep->element[2]->type == REDIS_REPLY_STRING
                                   ? rep->element[2]->str : "";
            if (twin && strcmp(kind, "event_id") == 0)
                *twin = GOV_STATE_AUDIT_TWIN_EVENT_ID;
            else if (twin && strcmp(kind, "decision_id") == 0)
                *twin = GOV_STATE_AUDIT_TWIN_DECISION_ID;
        } else if (strcmp(status, "duplicate") == 0) {
            err = GOV_ERR_DUPLICATE;
        } else if (strcmp(status, "conflict") == 0 && rep->elements == 4 &&
                   rep->element[1]->type == REDIS_REPLY_STRING &&
                   rep->element[1]->len == GOV_SHA256_HEXLEN &&
                   rep->element[2]->type == REDIS_REPLY_STRING) {
            uint64_t found = strtoull(rep->element[2]->str, NULL, 10);
            if (found < head->seq) {
                /* A head only grows: one behind what this writer appended
                 * means Redis lost writes (flushed, an older snapshot).
                 * Appending now would re-link the chain from there. */
                snprintf(errbuf, errbuf_size,
                         "audit head of %s went back from seq %llu to %llu: Redis lost writes",
                         tenant, (unsigned long long)head->seq, (unsigned long long)found);
                head->tenant[0] = 0;   /* forget the cached head */
                err = GOV_ERR_STATE;
                freeReplyObject(rep);
                break;
            }
            memcpy(head->hash, rep->element[1]->str, GOV_SHA256_HEXLEN + 1);
            head->seq = found;
            err = GOV_ERR_CONFLICT;
        } else {
            snprintf(errbuf, errbuf_size, "unexpected reply from append script");
            err = GOV_ERR_REDIS;
        }
        freeReplyObject(rep);
        if (err != GOV_ERR_CONFLICT)
            break;
    }
    if (err == GOV_ERR_CONFLICT)
        snprintf(errbuf, errbuf_size, "audit head kept moving; will retry");
    gov_free(payload);
    return err;
}

gov_err_t gov_state_audit_range(gov_redis_t *r, const char *tenant, const char *start,
                                size_t count, redisReply **page, char *errbuf,
                                size_t errbuf_size) {
    char key[GOV_STATE_KEY_MAX], n[24];
    gov_err_t err = gov_state_key(GOV_STATE_AUDIT, tenant, key);
    if (err != GOV_OK) {
        snprintf(errbuf, errbuf_size, "not a tenant id");
        return err;
    }
    snprintf(n, sizeof n, "%zu", count);
    const char *argv[] = {"XRANGE", key, start, "+", "COUNT", n};
    return gov_redis_command(r, page, 6, argv, NULL, errbuf, errbuf_size);
}

gov_err_t gov_state_audit_head_read(gov_redis_t *r, const char *tenant, redisReply **head,
                                    char *errbuf, size_t errbuf_size) {
    char key[GOV_STATE_KEY_MAX];
    gov_err_t err = gov_state_key(GOV_STATE_AUDIT_HEAD, tenant, key);
    if (err != GOV_OK) {
        snprintf(errbuf, errbuf_size, "not a tenant id");
        return err;
    }
    const char *argv[] = {"HMGET", key, "hash", "seq"};
    return gov_redis_command(r, head, 4, argv, NULL, errbuf, errbuf_size);
}
