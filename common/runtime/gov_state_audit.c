/* gov_state_audit.c - gov-audit's materialization: a Lua script writes an
 * event's chain entry, the dedup index, the decision record and the
 * tenant's applied offset, per event and all in the tenant's hash slot (one
 * script per event, or one per tenant and batch doing the same per event);
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
 * The relay's copies are recognised by their verified source stamp instead,
 * against per-tenant marks (audit:{T}:relay) written in the same script, so
 * a copy is a replay at any age and a rebuild decides as the live run did.
 *
 * Cost: gov_state_audit_append, one EVALSHA per event (two after a cache
 * miss or a concurrent writer); hashing is one pass over the payload.
 * gov_state_audit_append_batch sends one script per tenant of the batch
 * (group_script), all in one pipeline (one round trip), each event still
 * compared and appended alone inside it; the replay read before it only
 * while replays are being met.
 *
 * What it does not do: verify the chain (gov_audit_chain, govctl).
 */
#include "gov_state.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_audit_chain.h"
#include "gov_time.h"
#include "gov_util.h"

/* The relay's copies are deduplicated by where they came from, not by
 * time (docs/contracts.md, "Exactly once in the chain"): audit:{T}:relay
 * maps a policy.decisions partition <p> to the source offset of the last
 * new copy this chain handled, and <p>:t to the latest Kafka time of any
 * (the stamp's third part).  A copy stamped at or below both is a replay of
 * that record whatever its age - long after the event id window, after a
 * relay group lost its offsets - and any other is judged by content as
 * any event, then moves the mark to its offset.  The time is what tells a
 * recreated or truncated topic: its new records come again at offsets the
 * mark has passed, but with later times, so they are judged (and take the
 * mark over) instead of being dropped as replays.  The mark is written by
 * the same script as the entry, in identity.audit's order, so a rebuild
 * from identity.audit reaches the same marks and the same chain.  A copy
 * with no valid stamp (written before stamps, or by another producer) is
 * judged by content alone, as before, and so is one against a mark
 * written before times were (no <p>:t).
 * relay_check answers 'replay', 'new' (not a replay of a marked record)
 * or ''; relay_mark moves the mark. */
#define RELAY_CHECK_LUA \
    "local function relay_src(src)\n" \
    "  local off, t = string.match(src, '^(%d+)/(%d+)$')\n" \
    "  return tonumber(off), tonumber(t)\n" \
    "end\n" \
    "local function relay_check(key, part, src)\n" \
    "  if part == '' then return '' end\n" \
    "  local off, t = relay_src(src)\n" \
    "  local m = redis.call('HMGET', key, part, part .. ':t')\n" \
    "  if m[1] and m[2] and off <= tonumber(m[1]) and t <= tonumber(m[2]) then\n" \
    "    return 'replay'\n" \
    "  end\n" \
    "  return 'new'\n" \
    "end\n" \
    "local function relay_mark(key, part, src)\n" \
    "  local off, t = relay_src(src)\n" \
    "  local mt = tonumber(redis.call('HGET', key, part .. ':t') or '0')\n" \
    "  if mt > t then t = mt end\n" \
    "  redis.call('HSET', key, part, string.format('%d', off), part .. ':t', string.format('%d', t))\n" \
    "end\n"

/* KEYS: 1 stream, 2 head, 3 ids, 4 applied offset, 5 ids age (zset),
 *       6 relay marks, [7 decision key] - all in the tenant's slot
 * ARGV: 1 event_id, 2 prev_hash, 3 seq, 4 hash, 5 offset, 6 ttl_s,
 *       7 decision_id ('' for an AuditEvent), 8 content digest (64 hex),
 *       9 now (ms), 10 event id window (ms), 11 relay source partition
 *       ('' when the event carries no relay stamp), 12 relay source offset,
 *       13 n (entry field/value pairs), then the pairs, then the decision
 *       pairs
 *
 * Dedup compares content, not only ids (docs/contracts.md, "Audit
 * conflicts").  :ids maps an event_id to "<digest> <stream id>":
 *   - known id, same digest: a replay - only the offset moves ('duplicate');
 *   - known id, other digest: a conflicting twin - chained as its own entry,
 *     noted under "<event_id>#<digest>" (so its own replay is a duplicate);
 *   - a PolicyDecision naming a known decision_id under another event_id:
 *     a conflicting twin too - chained; the record is never overwritten but
 *     marked (conflicting_event_id), so GET /v1/decisions says so.
 *     The decision_id's owner is the record's own event_id field: the
 *     record lives exactly as long as a decision_id must be remembered
 *     (decision_ttl), so a separate decision_id -> event_id index (and its
 *     age zset, four more commands per decision) would say nothing more.
 * A value without a digest (written before digests) counts as a replay.
 * The reply's third element names the twin ('event_id', 'decision_id', '');
 * the last element of every reply is the tenant's applied offset as it was
 * before this call ('' when none): the processor compares it with what it
 * applied (a lower one means the tenant's slot lost writes).
 *
 * Bounded: every id noted in :ids is scored with the time in the age zset;
 * each append first removes at most 64 ids older than the window, so both
 * stay proportional to the tenant's traffic over the window; a decision
 * record expires by its TTL. */
static gov_redis_script_t append_script = {
    RELAY_CHECK_LUA
    "local function trim(h, z, cutoff)\n"
    "  local old = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', 0, 64)\n"
    "  if #old > 0 then\n"
    "    redis.call('HDEL', h, unpack(old))\n"
    "    redis.call('ZREM', z, unpack(old))\n"
    "  end\n"
    "end\n"
    "local rs = relay_check(KEYS[6], ARGV[11], ARGV[12])\n"
    "local function applied()\n"
    "  if rs == 'new' then relay_mark(KEYS[6], ARGV[11], ARGV[12]) end\n"
    "  return redis.call('SET', KEYS[4], ARGV[5], 'GET') or ''\n"
    "end\n"
    "if rs == 'replay' then return {'duplicate', 'relay', applied()} end\n"
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
    "  local owner = redis.call('HGET', KEYS[7], 'event_id')\n"
    "  if owner == ARGV[1] and twin == '' then\n"
    "    return {'duplicate', '', applied()}\n"
    "  end\n"
    "  known = owner ~= false\n"
    "  if known and twin == '' then twin = 'decision_id' end\n"
    "end\n"
    "local head = redis.call('HMGET', KEYS[2], 'hash', 'seq')\n"
    "local h = head[1] or '" GOV_AUDIT_GENESIS "'\n"
    "local s = head[2] or '0'\n"
    "if h ~= ARGV[2] or tonumber(s) + 1 ~= tonumber(ARGV[3]) then\n"
    "  return {'conflict', h, s, redis.call('GET', KEYS[4]) or ''}\n"
    "end\n"
    "local n = tonumber(ARGV[13])\n"
    "local entry = {}\n"
    "for i = 14, 13 + 2 * n do entry[#entry + 1] = ARGV[i] end\n"
    "local id = redis.call('XADD', KEYS[1], '*', unpack(entry))\n"
    "trim(KEYS[3], KEYS[5], now - tonumber(ARGV[10]))\n"
    "redis.call('HSET', KEYS[3], idf, ARGV[8] .. ' ' .. id)\n"
    "redis.call('ZADD', KEYS[5], now, idf)\n"
    "redis.call('HSET', KEYS[2], 'hash', ARGV[4], 'seq', ARGV[3])\n"
    "if dec then\n"
    "  if not known then\n"
    "    local d = {}\n"
    "    for i = 14 + 2 * n, #ARGV do d[#d + 1] = ARGV[i] end\n"
    "    redis.call('HSET', KEYS[7], unpack(d))\n"
    "    redis.call('EXPIRE', KEYS[7], ARGV[6])\n"
    "  end\n"
    "  if twin ~= '' then\n"
    "    redis.call('HSET', KEYS[7], 'conflicting_event_id', ARGV[1])\n"
    "  end\n"
    "end\n"
    "return {'ok', id, twin, applied()}\n",
    {0}};

/* The tenant's events of one batch in one script (one EVALSHA per tenant
 * and batch instead of one per event): the same rules, per event and in
 * order, as append_script - the hash chain is still computed here per
 * event and compare-and-appended per event - but the head is read once
 * (and written after each entry, so a script stopped half-way by an error
 * leaves a head that matches its stream), each applied offset key is read
 * once and set once (to the offset of its last event; a script stopped
 * half-way leaves them behind, and the events after come again as
 * replays), and the :ids trim runs once (up to 2n + 64
 * expired ids for n events, so the index still shrinks faster than it
 * grows).  The first event whose head is not the one it was chained to
 * stops the script: it and everything after it get no reply element (the
 * caller appends them one by one, in order).
 *
 * KEYS: 1 stream, 2 head, 3 ids, 4 ids age, 5 relay marks, then per event
 *       its applied offset key and, for a PolicyDecision, its decision key
 *       - all in the tenant's slot
 * ARGV: per event: m, then append_script's ARGV for it (m values)
 * Reply: one element per event handled, each append_script's reply. */
static gov_redis_script_t group_script = {
    RELAY_CHECK_LUA
    "if #ARGV == 0 then return {} end\n"
    "local head = redis.call('HMGET', KEYS[2], 'hash', 'seq')\n"
    "local h = head[1] or '" GOV_AUDIT_GENESIS "'\n"
    "local s = head[2] or '0'\n"
    "local before, set, out = {}, {}, {}\n"
    "local k, a, nev = 6, 1, 0\n"
    "local now = tonumber(ARGV[10])\n"
    "local window = tonumber(ARGV[11])\n"
    "while a <= #ARGV do\n"
    "  local m = tonumber(ARGV[a])\n"
    "  local b = a\n"
    "  a = a + 1 + m\n"
    "  local eid = ARGV[b + 1]\n"
    "  local dig = ARGV[b + 8]\n"
    "  local dec = ARGV[b + 7] ~= ''\n"
    "  local okey = KEYS[k]\n"
    "  local dkey = KEYS[k + 1]\n"
    "  if dec then k = k + 2 else k = k + 1 end\n"
    "  if before[okey] == nil then before[okey] = redis.call('GET', okey) or '' end\n"
    "  local prior = before[okey]\n"
    "  local res = nil\n"
    "  local idf = eid\n"
    "  local twin = ''\n"
    "  local rs = relay_check(KEYS[5], ARGV[b + 11], ARGV[b + 12])\n"
    "  if rs == 'replay' then res = {'duplicate', 'relay', prior} end\n"
    "  local seen = res == nil and redis.call('HGET', KEYS[3], idf)\n"
    "  if seen then\n"
    "    if string.len(seen) < 65 or string.sub(seen, 1, 64) == dig then\n"
    "      res = {'duplicate', seen, prior}\n"
    "    else\n"
    "      idf = eid .. '#' .. dig\n"
    "      local again = redis.call('HGET', KEYS[3], idf)\n"
    "      if again then res = {'duplicate', again, prior} else twin = 'event_id' end\n"
    "    end\n"
    "  end\n"
    "  local known = false\n"
    "  if res == nil and dec then\n"
    "    local owner = redis.call('HGET', dkey, 'event_id')\n"
    "    if owner == eid and twin == '' then\n"
    "      res = {'duplicate', '', prior}\n"
    "    else\n"
    "      known = owner ~= false\n"
    "      if known and twin == '' then twin = 'decision_id' end\n"
    "    end\n"
    "  end\n"
    "  if res == nil then\n"
    "    if h ~= ARGV[b + 2] or tonumber(s) + 1 ~= tonumber(ARGV[b + 3]) then\n"
    "      out[#out + 1] = {'conflict', h, s, prior}\n"
    "      break\n"
    "    end\n"
    "    local n = tonumber(ARGV[b + 13])\n"
    "    local entry = {}\n"
    "    for i = b + 14, b + 13 + 2 * n do entry[#entry + 1] = ARGV[i] end\n"
    "    local id = redis.call('XADD', KEYS[1], '*', unpack(entry))\n"
    "    redis.call('HSET', KEYS[3], idf, dig .. ' ' .. id)\n"
    "    redis.call('ZADD', KEYS[4], now, idf)\n"
    "    h = ARGV[b + 4]\n"
    "    s = ARGV[b + 3]\n"
    "    redis.call('HSET', KEYS[2], 'hash', h, 'seq', s)\n"
    "    if dec then\n"
    "      if not known then\n"
    "        local d = {}\n"
    "        for i = b + 14 + 2 * n, b + m do d[#d + 1] = ARGV[i] end\n"
    "        redis.call('HSET', dkey, unpack(d))\n"
    "        redis.call('EXPIRE', dkey, ARGV[b + 6])\n"
    "      end\n"
    "      if twin ~= '' then\n"
    "        redis.call('HSET', dkey, 'conflicting_event_id', eid)\n"
    "      end\n"
    "    end\n"
    "    res = {'ok', id, twin, prior}\n"
    "  end\n"
    "  out[#out + 1] = res\n"
    "  if rs == 'new' then relay_mark(KEYS[5], ARGV[b + 11], ARGV[b + 12]) end\n"
    "  before[okey] = ARGV[b + 5]\n"
    "  set[okey] = ARGV[b + 5]\n"
    "  nev = nev + 1\n"
    "end\n"
    "if nev > 0 then\n"
    "  local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - window, 'LIMIT', 0, 2 * nev + 64)\n"
    "  if #old > 0 then\n"
    "    redis.call('HDEL', KEYS[3], unpack(old))\n"
    "    redis.call('ZREM', KEYS[4], unpack(old))\n"
    "  end\n"
    "end\n"
    "for key, v in pairs(set) do redis.call('SET', key, v) end\n"
    "return out\n",
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
    /* 1: the next batch reads which of its items are replays first
     * (predict_replays); set at start, after forget, and after a batch
     * that met a replay or a head it did not predict */
    int predict;
    int group_unloaded;   /* 1: group_script's SHA-1 unknown or not in Redis */
    /* kept across batches (grown, never shrunk): a batch's argument
     * vectors, and one tenant group's merged vector */
    struct argv_buf *bufs;
    size_t nbufs;
    const char **gv;
    size_t *glen;
    size_t ngv;
    head_slot_t heads[HEAD_SLOTS];
};

gov_state_audit_t *gov_state_audit_new(gov_redis_t *redis, long decision_ttl_s) {
    gov_state_audit_t *s = gov_calloc(1, sizeof *s);
    if (s) {
        s->redis = redis;
        s->decision_ttl_s = decision_ttl_s;
        s->id_window_ms = GOV_STATE_AUDIT_ID_WINDOW_MS;
        s->predict = 1;
        s->group_unloaded = 1;
    }
    return s;
}

void gov_state_audit_set_id_window(gov_state_audit_t *s, long long window_ms) {
    s->id_window_ms = window_ms;
}

void gov_state_audit_free(gov_state_audit_t *s) {
    if (s == NULL)
        return;
    gov_free(s->bufs);
    gov_free(s->gv);
    gov_free(s->glen);
    gov_free(s);
}

void gov_state_audit_forget(gov_state_audit_t *s) {
    memset(s->heads, 0, sizeof s->heads);
    s->predict = 1;
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

/* One event made ready for the script: everything but the head it is
 * chained to.  Owns payload. */
typedef struct audit_prep {
    const char *tenant, *event_id, *decision_id, *type, *source;
    json_t *event;
    int is_decision;
    int64_t occurred_at, offset;
    char *payload;
    size_t payload_len;
    char digest[GOV_SHA256_HEXLEN + 1];
    long long now_ms;
    /* the relay's stamp as the script takes it: "" and "" when none */
    char relay_part[16], relay_off[48];   /* relay_off: "<offset>/<time>" */
    int64_t relay_offset, relay_time_ms;
    char k_stream[GOV_STATE_KEY_MAX], k_head[GOV_STATE_KEY_MAX], k_ids[GOV_STATE_KEY_MAX],
        k_dec[GOV_STATE_KEY_MAX], offset_key[GOV_STATE_KEY_MAX], k_ids_age[GOV_STATE_KEY_MAX + 8],
        k_relay[GOV_STATE_KEY_MAX + 8];
} audit_prep_t;

/* Validates event and fills pr (payload, content digest, keys, the relay
 * stamp: relay_partition < 0 for none; only a PolicyDecision's counts).
 * GOV_ERR_INVALID_ARG for an event that cannot be materialized,
 * GOV_ERR_NOMEM.  On GOV_OK, pr->payload is the caller's (gov_free). */
static gov_err_t prep(json_t *event, const char *type, const char *source,
                      const gov_state_pos_t *pos, int32_t relay_partition, int64_t relay_offset,
                      int64_t relay_time_ms, audit_prep_t *pr, char *errbuf,
                      size_t errbuf_size) {
    memset(pr, 0, sizeof *pr);
    pr->event = event;
    pr->type = type;
    pr->source = source;
    pr->offset = pos->offset;
    pr->tenant = json_string_value(json_object_get(event, "tenant"));
    pr->event_id = json_string_value(json_object_get(event, "event_id"));
    json_t *at = json_object_get(event, "occurred_at");
    pr->is_decision = strcmp(type, "PolicyDecision") == 0;
    pr->decision_id = json_string_value(json_object_get(event, "decision_id"));
    if (pr->tenant == NULL || pr->event_id == NULL || !json_is_integer(at)) {
        snprintf(errbuf, errbuf_size, "event lacks tenant, event_id or occurred_at");
        return GOV_ERR_INVALID_ARG;
    }
    pr->occurred_at = (int64_t)json_integer_value(at);
    if (pr->is_decision &&
        (pr->decision_id == NULL || !gov_tenant_valid(pr->decision_id, strlen(pr->decision_id)))) {
        snprintf(errbuf, errbuf_size, "decision_id missing or not a safe key part");
        return GOV_ERR_INVALID_ARG;
    }
    gov_state_pos_t tpos = *pos;
    tpos.tenant = pr->tenant; /* the applied offset lives in the event's tenant's slot */
    if (gov_state_key(GOV_STATE_AUDIT, pr->tenant, pr->k_stream) != GOV_OK ||
        gov_state_key(GOV_STATE_AUDIT_HEAD, pr->tenant, pr->k_head) != GOV_OK ||
        gov_state_key(GOV_STATE_AUDIT_IDS, pr->tenant, pr->k_ids) != GOV_OK ||
        (pr->is_decision &&
         gov_state_decision_key(pr->tenant, pr->decision_id, pr->k_dec) != GOV_OK) ||
        gov_state_offset_key(&tpos, pr->offset_key) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "tenant, decision_id or position is not a safe key part");
        return GOV_ERR_INVALID_ARG;
    }
    /* the age index of the id hash, the relay marks: same slot, a suffix */
    snprintf(pr->k_ids_age, sizeof pr->k_ids_age, "%s:age", pr->k_ids);
    snprintf(pr->k_relay, sizeof pr->k_relay, "%s:relay", pr->k_stream);
    if (pr->is_decision && relay_partition >= 0 && relay_partition <= GOV_RELAY_PARTITION_MAX &&
        relay_offset >= 0 && relay_offset <= GOV_RELAY_OFFSET_MAX && relay_time_ms >= 0 &&
        relay_time_ms <= GOV_RELAY_OFFSET_MAX) {
        snprintf(pr->relay_part, sizeof pr->relay_part, "%" PRId32, relay_partition);
        snprintf(pr->relay_off, sizeof pr->relay_off, "%" PRId64 "/%" PRId64, relay_offset,
                 relay_time_ms);
        pr->relay_offset = relay_offset;
        pr->relay_time_ms = relay_time_ms;
    }

    pr->payload = json_dumps(event, JSON_COMPACT | JSON_SORT_KEYS);
    if (pr->payload == NULL)
        return GOV_ERR_NOMEM;
    pr->payload_len = strlen(pr->payload);
    /* The content the dedup compares: the event as it is chained, without
     * occurred_at - a processor re-emitting after a crash re-derives the
     * same event_id and content but stamps a new emission time, and that
     * copy is a replay, not a conflict. */
    unsigned char md[GOV_SHA256_LEN];
    json_t *content = json_copy(event);   /* shallow: the values are shared */
    char *content_text = NULL;
    gov_err_t err = GOV_OK;
    if (content == NULL || json_object_del(content, "occurred_at") != 0 ||
        (content_text = json_dumps(content, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
        gov_sha256(content_text, strlen(content_text), md) != GOV_OK)
        err = GOV_ERR_NOMEM;
    json_decref(content);
    gov_free(content_text);
    if (err != GOV_OK) {
        gov_free(pr->payload);
        pr->payload = NULL;
        return err;
    }
    gov_hex_encode(md, GOV_SHA256_LEN, pr->digest);
    pr->now_ms = (long long)(gov_now_micros() / 1000);
    return GOV_OK;
}

/* The script's arguments for pr chained after (prev_hash, seq - 1); hash
 * receives the entry's hash.  a's strings borrow from pr, prev_hash and
 * hash: keep them until the call.  GOV_OK, GOV_ERR_INVALID_ARG (too many
 * fields), GOV_ERR_NOMEM; a is to be arg_free'd in every case. */
static gov_err_t build(const gov_state_audit_t *s, const audit_prep_t *pr, const char *prev_hash,
                       uint64_t seq, char hash[GOV_SHA256_HEXLEN + 1], argv_buf_t *a,
                       int *nkeys, char *errbuf, size_t errbuf_size) {
    memset(a, 0, sizeof *a);
    gov_audit_entry_t e = {
        .prev_hash = prev_hash, .seq = seq, .event_id = pr->event_id,
        .type = pr->type, .occurred_at = pr->occurred_at,
        .source = pr->source, .payload = pr->payload, .payload_len = pr->payload_len,
    };
    gov_err_t err = gov_audit_chain_hash(&e, hash);
    if (err != GOV_OK)
        return err;
    int bad = 0;
    bad |= arg_add(a, pr->k_stream, strlen(pr->k_stream));
    bad |= arg_add(a, pr->k_head, strlen(pr->k_head));
    bad |= arg_add(a, pr->k_ids, strlen(pr->k_ids));
    bad |= arg_add(a, pr->offset_key, strlen(pr->offset_key));
    bad |= arg_add(a, pr->k_ids_age, strlen(pr->k_ids_age));
    bad |= arg_add(a, pr->k_relay, strlen(pr->k_relay));
    if (pr->is_decision)
        bad |= arg_add(a, pr->k_dec, strlen(pr->k_dec));
    *nkeys = a->n;
    bad |= arg_add(a, pr->event_id, strlen(pr->event_id));
    bad |= arg_add(a, prev_hash, GOV_SHA256_HEXLEN);
    bad |= arg_take(a, fmt_dup("%lld", (long long)seq));
    bad |= arg_add(a, hash, GOV_SHA256_HEXLEN);
    bad |= arg_take(a, fmt_dup("%lld", (long long)pr->offset));
    bad |= arg_take(a, fmt_dup("%lld", (long long)s->decision_ttl_s));
    bad |= pr->is_decision ? arg_add(a, pr->decision_id, strlen(pr->decision_id))
                           : arg_add(a, "", 0);
    bad |= arg_add(a, pr->digest, GOV_SHA256_HEXLEN);
    bad |= arg_take(a, fmt_dup("%lld", pr->now_ms));
    bad |= arg_take(a, fmt_dup("%lld", s->id_window_ms));
    bad |= arg_add(a, pr->relay_part, strlen(pr->relay_part));
    bad |= arg_add(a, pr->relay_off, strlen(pr->relay_off));
    bad |= arg_add(a, "8", 1); /* entry pairs below */
    bad |= arg_add(a, "seq", 3);
    bad |= arg_take(a, fmt_dup("%lld", (long long)seq));
    bad |= arg_add(a, "event_id", 8);
    bad |= arg_add(a, pr->event_id, strlen(pr->event_id));
    bad |= arg_add(a, "type", 4);
    bad |= arg_add(a, pr->type, strlen(pr->type));
    bad |= arg_add(a, "occurred_at", 11);
    bad |= arg_take(a, fmt_dup("%lld", (long long)pr->occurred_at));
    bad |= arg_add(a, "source", 6);
    bad |= arg_add(a, pr->source, strlen(pr->source));
    bad |= arg_add(a, "payload", 7);
    bad |= arg_add(a, pr->payload, pr->payload_len);
    bad |= arg_add(a, "prev_hash", 9);
    bad |= arg_add(a, prev_hash, GOV_SHA256_HEXLEN);
    bad |= arg_add(a, "hash", 4);
    bad |= arg_add(a, hash, GOV_SHA256_HEXLEN);
    if (pr->is_decision)
        bad |= add_decision_fields(a, pr->event);
    if (!bad)
        return GOV_OK;
    if (a->overflow) {
        snprintf(errbuf, errbuf_size, "event has more fields than a chain entry can hold");
        return GOV_ERR_INVALID_ARG;
    }
    snprintf(errbuf, errbuf_size, "out of memory building the chain entry");
    return GOV_ERR_NOMEM;
}

/* Reads the script's reply for pr, appended as (hash, seq) to head:
 *   GOV_OK (head moved to it; *twin), GOV_ERR_DUPLICATE,
 *   GOV_ERR_CONFLICT (head was elsewhere: head now holds it),
 *   GOV_ERR_STATE (the head went back: Redis lost writes), GOV_ERR_REDIS.
 * *applied_before as gov_state_audit_append documents. */
static gov_err_t parse_reply(const audit_prep_t *pr, const redisReply *rep, head_slot_t *head,
                             const char *hash, uint64_t seq, gov_state_audit_twin_t *twin,
                             int64_t *applied_before, char *errbuf, size_t errbuf_size) {
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
        head->seq = seq;
        const char *kind = rep->elements >= 3 && rep->element[2]->type == REDIS_REPLY_STRING
                               ? rep->element[2]->str : "";
        if (twin && strcmp(kind, "event_id") == 0)
            *twin = GOV_STATE_AUDIT_TWIN_EVENT_ID;
        else if (twin && strcmp(kind, "decision_id") == 0)
            *twin = GOV_STATE_AUDIT_TWIN_DECISION_ID;
        return GOV_OK;
    }
    if (strcmp(status, "duplicate") == 0)
        return GOV_ERR_DUPLICATE;
    if (strcmp(status, "conflict") == 0 && rep->elements == 4 &&
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
                     pr->tenant, (unsigned long long)head->seq, (unsigned long long)found);
            head->tenant[0] = 0;   /* forget the cached head */
            return GOV_ERR_STATE;
        }
        memcpy(head->hash, rep->element[1]->str, GOV_SHA256_HEXLEN + 1);
        head->seq = found;
        return GOV_ERR_CONFLICT;
    }
    snprintf(errbuf, errbuf_size, "unexpected reply from append script");
    return GOV_ERR_REDIS;
}

/* gov_state_audit_append once pr is ready. */
static gov_err_t append_prepared(gov_state_audit_t *s, const audit_prep_t *pr,
                                 gov_state_audit_twin_t *twin, int64_t *applied_before,
                                 char *errbuf, size_t errbuf_size) {
    gov_err_t err = GOV_OK;
    head_slot_t *head = head_for(s, pr->tenant);
    for (int attempt = 0; attempt < 8; attempt++) {
        char hash[GOV_SHA256_HEXLEN + 1], prev[GOV_SHA256_HEXLEN + 1];
        memcpy(prev, head->hash, sizeof prev);
        uint64_t seq = head->seq + 1;
        argv_buf_t a;
        int nkeys = 0;
        err = build(s, pr, prev, seq, hash, &a, &nkeys, errbuf, errbuf_size);
        redisReply *rep = NULL;
        if (err == GOV_OK)
            err = gov_redis_eval(s->redis, &append_script, nkeys, a.n, a.v, a.len, &rep, errbuf,
                                 errbuf_size);
        arg_free(&a);
        if (err != GOV_OK)
            break;
        err = parse_reply(pr, rep, head, hash, seq, twin, applied_before, errbuf, errbuf_size);
        freeReplyObject(rep);
        if (err != GOV_ERR_CONFLICT)
            break;
    }
    if (err == GOV_ERR_CONFLICT)
        snprintf(errbuf, errbuf_size, "audit head kept moving; will retry");
    return err;
}

gov_err_t gov_state_audit_append(gov_state_audit_t *s, json_t *event, const char *type,
                                 const char *source, const gov_state_pos_t *pos,
                                 gov_state_audit_twin_t *twin, int64_t *applied_before,
                                 char *errbuf, size_t errbuf_size) {
    if (twin)
        *twin = GOV_STATE_AUDIT_TWIN_NONE;
    if (applied_before)
        *applied_before = GOV_STATE_APPLIED_UNKNOWN;
    audit_prep_t pr;
    gov_err_t err = prep(event, type, source, pos, -1, 0, 0, &pr, errbuf, errbuf_size);
    if (err == GOV_OK)
        err = append_prepared(s, &pr, twin, applied_before, errbuf, errbuf_size);
    gov_free(pr.payload);
    return err;
}

/* The batch: every item is prepared and chained after the head its tenant
 * will have if the items before it are appended (the cached head, then each
 * earlier item of the tenant: a prediction), and the scripts are sent as
 * one pipeline - one round trip.  The script still compares and appends per
 * event, so a wrong prediction costs nothing but a retry: a reply "ok" or
 * "duplicate" is final (the script checked the head; a replay is known
 * before the head is looked at), and every other item (a head that moved,
 * a duplicate before it, a NOSCRIPT after a Redis restart, a lost reply)
 * goes through gov_state_audit_append's path one by one, in order, after
 * the pipeline was read.  A tenant whose
 * item failed transiently has its later items failed too (not applied: the
 * caller's rewind delivers them again).  Cost: one round trip, plus one per
 * item of a tenant whose prediction failed. */
#define BATCH_TENANTS 64   /* distinct tenants predicted per batch; more go one by one */

typedef struct batch_tenant {
    const char *tenant;
    char hash[GOV_SHA256_HEXLEN + 1];
    uint64_t seq;
    int failed;   /* an item failed transiently: the rest is not applied */
    int one_by_one; /* past BATCH_TENANTS: not predicted, appended in phase 3 */
    int queued;     /* its group script was queued */
} batch_tenant_t;

static batch_tenant_t *batch_tenant(batch_tenant_t *t, size_t *nt, const char *tenant) {
    for (size_t i = 0; i < *nt; i++)
        if (strcmp(t[i].tenant, tenant) == 0)
            return &t[i];
    return NULL;
}

/* FNV-1a of an event id and digest, for the batch's own replays. */
static uint32_t id_hash(const audit_prep_t *pr) {
    uint32_t h = 2166136261u;
    for (const char *c = pr->event_id; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    for (const char *c = pr->digest; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    return h;
}

/* replay[i] = 1 for an item the script will answer "duplicate": its
 * event_id is in audit:{T}:ids with the same content digest (or without
 * one), or it is a PolicyDecision whose decision_id that same event_id
 * recorded, or an earlier item of the batch is the same event.  A
 * prediction only - the script decides - but a replay chained on as if it
 * were appended would send every later item of its tenant down the slow
 * path (a relayed decision is often in identity.audit twice: each relay
 * deployment copies it).  Cost: one pipelined round trip of one or two
 * HGETs per item, and a hash set of the batch's ids.  A failed read
 * predicts nothing.  GOV_ERR_NOMEM. */
static gov_err_t predict_replays(gov_state_audit_t *s, const audit_prep_t *prs,
                                 const gov_state_audit_item_t *items, size_t n,
                                 unsigned char *replay) {
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    size_t *set = gov_calloc(cap, sizeof *set);   /* item index + 1; 0 empty */
    if (set == NULL)
        return GOV_ERR_NOMEM;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        if (items[i].result != GOV_ERR_INTERNAL)
            continue;
        const audit_prep_t *pr = &prs[i];
        const char *get_id[] = {"HGET", pr->k_ids, pr->event_id};
        const char *get_dec[] = {"HGET", pr->k_dec, "event_id"};
        char part_t[sizeof pr->relay_part + 2];
        snprintf(part_t, sizeof part_t, "%s:t", pr->relay_part);
        const char *get_mark[] = {"HMGET", pr->k_relay, pr->relay_part, part_t};
        ok = gov_redis_append(s->redis, 3, get_id, NULL) == GOV_OK &&
             (!pr->is_decision || gov_redis_append(s->redis, 3, get_dec, NULL) == GOV_OK) &&
             (!pr->relay_part[0] || gov_redis_append(s->redis, 4, get_mark, NULL) == GOV_OK);
    }
    for (size_t i = 0; i < n && ok; i++) {
        if (items[i].result != GOV_ERR_INTERNAL)
            continue;
        const audit_prep_t *pr = &prs[i];
        redisReply *seen = NULL, *owner = NULL, *mark = NULL;
        char eb[128];
        ok = gov_redis_read(s->redis, &seen, eb, sizeof eb) == GOV_OK &&
             (!pr->is_decision || gov_redis_read(s->redis, &owner, eb, sizeof eb) == GOV_OK) &&
             (!pr->relay_part[0] || gov_redis_read(s->redis, &mark, eb, sizeof eb) == GOV_OK);
        if (ok && mark && mark->type == REDIS_REPLY_ARRAY && mark->elements == 2 &&
            mark->element[0]->type == REDIS_REPLY_STRING &&
            mark->element[1]->type == REDIS_REPLY_STRING &&
            pr->relay_offset <= strtoll(mark->element[0]->str, NULL, 10) &&
            pr->relay_time_ms <= strtoll(mark->element[1]->str, NULL, 10))
            replay[i] = 1;   /* at or below its partition's relay mark, offset and time */
        else if (ok && seen->type == REDIS_REPLY_STRING)
            replay[i] = seen->len < GOV_SHA256_HEXLEN + 1 ||
                        memcmp(seen->str, pr->digest, GOV_SHA256_HEXLEN) == 0;
        else if (ok && owner && owner->type == REDIS_REPLY_STRING)
            replay[i] = strcmp(owner->str, pr->event_id) == 0;
        freeReplyObject(seen);
        freeReplyObject(owner);
        freeReplyObject(mark);
        /* the same event earlier in this batch */
        size_t slot = id_hash(pr) & (cap - 1);
        while (set[slot] && !replay[i]) {
            const audit_prep_t *o = &prs[set[slot] - 1];
            if (strcmp(o->event_id, pr->event_id) == 0 && strcmp(o->digest, pr->digest) == 0)
                replay[i] = 1;
            slot = (slot + 1) & (cap - 1);
        }
        if (!replay[i])
            set[slot] = i + 1;
    }
    if (!ok)
        memset(replay, 0, n);
    gov_free(set);
    return GOV_OK;
}

/* Makes room in s for a batch of n items: n argument vectors and one
 * merged vector of a tenant's group (5 common keys, then per item at most
 * 2 keys, its count and ARGV_MAX values).  Kept across batches, so a batch
 * allocates nothing per event here.  GOV_ERR_NOMEM. */
static gov_err_t grow_scratch(gov_state_audit_t *s, size_t n) {
    if (n > s->nbufs) {
        argv_buf_t *b = gov_realloc(s->bufs, n * sizeof *b);
        if (b == NULL)
            return GOV_ERR_NOMEM;
        s->bufs = b;
        s->nbufs = n;
    }
    size_t need = 3 + 5 + n * (3 + ARGV_MAX);
    if (need > s->ngv) {
        const char **v = gov_realloc(s->gv, need * sizeof *v);
        if (v == NULL)
            return GOV_ERR_NOMEM;
        s->gv = v;
        size_t *l = gov_realloc(s->glen, need * sizeof *l);
        if (l == NULL)
            return GOV_ERR_NOMEM;
        s->glen = l;
        s->ngv = need;
    }
    return GOV_OK;
}

static int transient(gov_err_t e) {
    return e != GOV_OK && e != GOV_ERR_DUPLICATE && e != GOV_ERR_INVALID_ARG;
}

gov_err_t gov_state_audit_append_batch(gov_state_audit_t *s, gov_state_audit_item_t *items,
                                       size_t n) {
    audit_prep_t *prs = gov_calloc(n ? n : 1, sizeof *prs);
    /* every tenant of the batch has an entry, so a failure stops its later
     * items whether or not its head was predicted (REVIEW12 H2) */
    batch_tenant_t *tenants = gov_calloc(n ? n : 1, sizeof *tenants);
    size_t npredicted = 0;
    /* per item: its predicted hash and seq, and 1 when it was sent */
    char(*hashes)[GOV_SHA256_HEXLEN + 1] = gov_calloc(n ? n : 1, sizeof *hashes);
    uint64_t *seqs = gov_calloc(n ? n : 1, sizeof *seqs);
    unsigned char *sent = gov_calloc(n ? n : 1, 1);
    unsigned char *replay = gov_calloc(n ? n : 1, 1);
    char(*prevs)[GOV_SHA256_HEXLEN + 1] = gov_calloc(n ? n : 1, sizeof *prevs);
    char(*counts)[12] = gov_calloc(n ? n : 1, sizeof *counts);
    int *nkeys = gov_calloc(n ? n : 1, sizeof *nkeys);
    size_t nt = 0, nbuilt = 0;
    gov_err_t err = GOV_OK;
    for (size_t i = 0; i < n; i++) {
        items[i].result = GOV_ERR_INTERNAL;
        items[i].twin = GOV_STATE_AUDIT_TWIN_NONE;
        items[i].applied_before = GOV_STATE_APPLIED_UNKNOWN;
        items[i].errbuf[0] = 0;
    }
    if (prs == NULL || tenants == NULL || hashes == NULL || seqs == NULL || sent == NULL ||
        replay == NULL || prevs == NULL || counts == NULL || nkeys == NULL) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    /* 0. prepare; which items are replays (one pipelined read) */
    for (size_t i = 0; i < n; i++) {
        gov_state_audit_item_t *it = &items[i];
        gov_err_t e = prep(it->event, it->type, it->source, &it->pos,
                           it->relay_stamped ? it->relay_partition : -1, it->relay_offset,
                           it->relay_time_ms, &prs[i], it->errbuf, sizeof it->errbuf);
        if (e != GOV_OK)
            it->result = e;
    }
    /* In steady state nothing is a replay and the read is all cost (two
     * commands per decision): it is made only while replays are being met -
     * after a start, a rebuild, or a batch that met one.  Unpredicted, a
     * replay costs its tenant's later items of the batch the one-by-one
     * path below, never a wrong chain. */
    if (s->predict && predict_replays(s, prs, items, n, replay) != GOV_OK) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    s->predict = 0;
    /* 1. build, chaining each item on its tenant's predicted head */
    if (grow_scratch(s, n) != GOV_OK) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    memset(s->bufs, 0, n * sizeof *s->bufs);
    nbuilt = n;
    for (size_t i = 0; i < n; i++) {
        gov_state_audit_item_t *it = &items[i];
        gov_err_t e;
        if (it->result != GOV_ERR_INTERNAL)
            continue;
        batch_tenant_t *t = batch_tenant(tenants, &nt, prs[i].tenant);
        if (t == NULL) {
            t = &tenants[nt++];
            t->tenant = prs[i].tenant;
            if (npredicted < BATCH_TENANTS) {
                npredicted++;
                head_slot_t *h = head_for(s, prs[i].tenant);
                memcpy(t->hash, h->hash, sizeof t->hash);
                t->seq = h->seq;
            } else {
                t->one_by_one = 1;
            }
        }
        if (t->one_by_one || t->failed)
            continue;   /* one by one below, in order (a failed tenant: refused there) */
        seqs[i] = t->seq + 1;
        memcpy(prevs[i], t->hash, sizeof prevs[i]);
        e = build(s, &prs[i], prevs[i], seqs[i], hashes[i], &s->bufs[i], &nkeys[i], it->errbuf,
                  sizeof it->errbuf);
        if (e != GOV_OK) {
            it->result = e;   /* INVALID_ARG or NOMEM: not sent, the prediction stays */
            if (transient(e))
                t->failed = 1;   /* its later items must not pass it (REVIEW12 H2) */
            continue;
        }
        sent[i] = 1;
        if (!replay[i]) {   /* a replay leaves the head where it is */
            memcpy(t->hash, hashes[i], sizeof t->hash);
            t->seq = seqs[i];
        }
    }
    /* 1b. queue one group script per tenant: its items in order.  The
     * vector is longer than gov_redis_append_eval takes, so the EVALSHA is
     * spelled here; the script's SHA-1 is known (and the script loaded)
     * once gov_redis_eval ran it - with no events it answers {} at once */
    int queue_ok = 1;
    if (s->group_unloaded) {
        /* on every master: a keyless EVAL reaches one node of a Redis
         * Cluster, and the EVALSHAs go to each tenant's own master (a
         * promoted replica has no scripts: its NOSCRIPT brings us here) */
        int shards = gov_redis_shards(s->redis);
        queue_ok = shards > 0;
        for (int i = 0; i < shards && queue_ok; i++) {
            redisReply *rep = NULL;
            char eb[256];
            gov_redis_t *node = gov_redis_shard(s->redis, i);
            queue_ok = node != NULL && gov_redis_eval(node, &group_script, 0, 0, NULL, NULL, &rep,
                                                      eb, sizeof eb) == GOV_OK;
            freeReplyObject(rep);
        }
        if (queue_ok)
            s->group_unloaded = 0;
        /* else the rest goes one by one (and says why) */
    }
    char gnkeys[16];
    for (size_t ti = 0; ti < nt && queue_ok; ti++) {
        size_t g = 3;
        int first = 1;
        for (size_t i = 0; i < n; i++) {
            if (!sent[i] || strcmp(prs[i].tenant, tenants[ti].tenant) != 0)
                continue;
            const argv_buf_t *a = &s->bufs[i];
            if (first) {   /* stream, head, ids, ids age, relay: build's keys 0, 1, 2, 4, 5 */
                const int common[] = {0, 1, 2, 4, 5};
                for (int c = 0; c < 5; c++) {
                    s->gv[g] = a->v[common[c]];
                    s->glen[g++] = a->len[common[c]];
                }
                first = 0;
            }
            s->gv[g] = a->v[3];   /* the offset key */
            s->glen[g++] = a->len[3];
            if (nkeys[i] > 6) {   /* the decision key */
                s->gv[g] = a->v[6];
                s->glen[g++] = a->len[6];
            }
        }
        if (first)
            continue;
        snprintf(gnkeys, sizeof gnkeys, "%zu", g - 3);
        s->gv[0] = "EVALSHA";
        s->glen[0] = 7;
        s->gv[1] = group_script.sha1;
        s->glen[1] = strlen(group_script.sha1);
        s->gv[2] = gnkeys;
        s->glen[2] = strlen(gnkeys);
        for (size_t i = 0; i < n; i++) {
            if (!sent[i] || strcmp(prs[i].tenant, tenants[ti].tenant) != 0)
                continue;
            const argv_buf_t *a = &s->bufs[i];
            int m = a->n - nkeys[i];
            snprintf(counts[i], sizeof counts[i], "%d", m);
            s->gv[g] = counts[i];
            s->glen[g++] = strlen(counts[i]);
            for (int j = nkeys[i]; j < a->n; j++) {
                s->gv[g] = a->v[j];
                s->glen[g++] = a->len[j];
            }
        }
        if (g > INT_MAX || gov_redis_append(s->redis, (int)g, s->gv, s->glen) != GOV_OK) {
            queue_ok = 0;   /* not connected: the rest goes one by one (and says why) */
            for (size_t i = 0; i < n; i++)
                if (sent[i] && strcmp(prs[i].tenant, tenants[ti].tenant) == 0)
                    sent[i] = 0;
            continue;
        }
        tenants[ti].queued = 1;
    }
    /* 2. read every group's reply, in order; an item it does not answer
     * (after a head it did not expect, or the whole group on an error
     * reply such as NOSCRIPT) is settled below */
    int noscript = 0;
    for (size_t ti = 0; ti < nt; ti++) {
        if (!tenants[ti].queued)
            continue;
        batch_tenant_t *t = &tenants[ti];
        redisReply *rep = NULL;
        char eb[256] = "";
        gov_err_t e = gov_redis_read(s->redis, &rep, eb, sizeof eb);
        if (e != GOV_OK) {
            noscript |= strstr(eb, "NOSCRIPT") != NULL;
            s->predict = 1;
            continue;
        }
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
            if (!sent[i] || strcmp(prs[i].tenant, t->tenant) != 0)
                continue;
            gov_state_audit_item_t *it = &items[i];
            if (rep->type != REDIS_REPLY_ARRAY || j >= rep->elements)
                break;
            e = parse_reply(&prs[i], rep->element[j++], head_for(s, prs[i].tenant), hashes[i],
                            seqs[i], &it->twin, &it->applied_before, it->errbuf,
                            sizeof it->errbuf);
            if (e != GOV_OK)
                s->predict = 1;   /* replays (or another writer) about: read first next time */
            /* "ok" and "duplicate" are final whatever was predicted (the
             * script checked the head, and it recognises a replay before it
             * looks at the head); anything else is settled below */
            if (e == GOV_OK || e == GOV_ERR_DUPLICATE) {
                it->result = e;
            } else if (e == GOV_ERR_STATE) {
                it->result = e;
                t->failed = 1;
            } else {
                it->twin = GOV_STATE_AUDIT_TWIN_NONE;
                it->applied_before = GOV_STATE_APPLIED_UNKNOWN;
            }
        }
        freeReplyObject(rep);
    }
    if (noscript)   /* Redis lost its scripts: the next batch loads it again */
        s->group_unloaded = 1;
    /* 3. what the pipeline did not settle, one by one, in order */
    for (size_t i = 0; i < n; i++) {
        gov_state_audit_item_t *it = &items[i];
        if (it->result != GOV_ERR_INTERNAL || prs[i].payload == NULL)
            continue;
        batch_tenant_t *t = batch_tenant(tenants, &nt, prs[i].tenant);
        if (t != NULL && t->failed) {
            snprintf(it->errbuf, sizeof it->errbuf, "an earlier event of tenant %s failed",
                     prs[i].tenant);
            it->result = GOV_ERR_UNAVAILABLE;
            continue;
        }
        it->twin = GOV_STATE_AUDIT_TWIN_NONE;
        it->applied_before = GOV_STATE_APPLIED_UNKNOWN;
        it->result = append_prepared(s, &prs[i], &it->twin, &it->applied_before, it->errbuf,
                                     sizeof it->errbuf);
        if (t != NULL && transient(it->result))
            t->failed = 1;
    }
out:
    for (size_t i = 0; i < nbuilt; i++)
        arg_free(&s->bufs[i]);
    for (size_t i = 0; prs && i < n; i++)
        gov_free(prs[i].payload);
    gov_free(prs);
    gov_free(tenants);
    gov_free(hashes);
    gov_free(seqs);
    gov_free(sent);
    gov_free(replay);
    gov_free(prevs);
    gov_free(counts);
    gov_free(nkeys);
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
