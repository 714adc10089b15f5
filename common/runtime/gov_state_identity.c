/* gov_state_identity.c - identity's Redis state: signing keys and the JWKS,
 * OAuth clients, issued and revoked tokens (layout in gov_state_identity.h,
 * docs/contracts.md "Redis keys").
 *
 * How: one Lua script per event kind.  Each script's keys share one hash
 * slot - {keys} for the key store, {<client_id>} for a client, {T} for a
 * tenant's tokens - and it writes the state together with that slot's
 * applied offset gov:applied:{<slot>}:<group>:<topic>:<partition>, so state
 * and position never disagree and the script runs on a Redis Cluster.
 *
 * Replays: a key or client message at or below the slot's applied offset is
 * a replay and changes nothing (a rebuild after lost writes starts below it
 * only when Redis lost the state too).  A refused message (a key moved
 * back, a removed client) does not move the applied offset: delivered
 * again, it is refused again - never mistaken for an applied replay.  Token writes set fields and an
 * absolute expiry that only moves later (the latest expires_at seen), so
 * applying one twice is the same as once and no event shortens a record;
 * the first revocation's time and reason stay.
 *
 * Retired is final: the key script writes a permanent tombstone
 * identity:{keys}:key:<kid>:retired with the retired state and checks it
 * before anything else, so a signed event captured while the key lived
 * cannot bring it back once its hash has expired; an unknown kid whose
 * activates_at is older than the longest token lifetime at the event's
 * time is refused as stale (the second line, for a lost tombstone).
 *
 * The JWKS is rebuilt inside the key script from the stored key hashes,
 * found through the kid set identity:{keys}:kids; those hashes are named
 * from the set inside the script (not declared as KEYS) - they carry the
 * same {keys} tag, so they are in the script's slot and a cluster serves
 * them.  The JWKS is the public JWKs as gov-identity normalized them, in
 * activates_at order (then kid), so it is a function of the key hashes and
 * a rebuild yields the same bytes.
 *
 * What it does not do: judge a JWK or a client (gov-identity does), or
 * produce anything.
 */
#include "gov_state_identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_time.h"

#define KEYS_PREFIX "identity:{" GOV_STATE_IDENTITY_KEYS_SLOT "}:"

/* --- key names ---------------------------------------------------------------- */

int gov_state_identity_kid_valid(const char *kid) {
    if (kid == NULL || strlen(kid) != GOV_STATE_IDENTITY_KID_LEN)
        return 0;
    for (const char *c = kid; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return 0;
    return 1;
}

/* 1 when s has the tenant id syntax (what client ids and jtis use too). */
static int id_ok(const char *s) {
    return s != NULL && strnlen(s, GOV_TENANT_MAX + 1) <= GOV_TENANT_MAX &&
           gov_tenant_valid(s, strlen(s));
}

gov_err_t gov_state_identity_key_key(const char *kid, char out[GOV_STATE_KEY_MAX]) {
    out[0] = 0;
    if (!gov_state_identity_kid_valid(kid))
        return GOV_ERR_INVALID_ARG;
    snprintf(out, GOV_STATE_KEY_MAX, KEYS_PREFIX "key:%s", kid);
    return GOV_OK;
}

gov_err_t gov_state_identity_client_key(const char *client_id, char out[GOV_STATE_KEY_MAX]) {
    out[0] = 0;
    if (!id_ok(client_id))
        return GOV_ERR_INVALID_ARG;
    snprintf(out, GOV_STATE_KEY_MAX, "identity:client:{%s}", client_id);
    return GOV_OK;
}

gov_err_t gov_state_identity_token_key(const char *tenant, const char *jti,
                                       char out[GOV_STATE_KEY_MAX]) {
    out[0] = 0;
    if (!id_ok(tenant) || !id_ok(jti))
        return GOV_ERR_INVALID_ARG;
    snprintf(out, GOV_STATE_KEY_MAX, "identity:token:{%s}:%s", tenant, jti);
    return GOV_OK;
}

const char *gov_state_identity_jwks_key(void) {
    return KEYS_PREFIX "jwks";
}

const char *gov_state_identity_kids_key(void) {
    return KEYS_PREFIX "kids";
}

gov_err_t gov_state_identity_key_tombstone_key(const char *kid, char out[GOV_STATE_KEY_MAX]) {
    gov_err_t err = gov_state_identity_key_key(kid, out);
    if (err == GOV_OK)
        strncat(out, ":retired", GOV_STATE_KEY_MAX - strlen(out) - 1);
    return err;
}

const char *gov_state_identity_retired_key(void) {
    return KEYS_PREFIX "retired";
}

/* The applied-offset key of pos in the slot `slot`. */
static gov_err_t applied_key(const gov_state_pos_t *pos, const char *slot,
                             char out[GOV_STATE_KEY_MAX], char *errbuf, size_t errbuf_size) {
    gov_state_pos_t p = *pos;
    p.tenant = slot;
    gov_err_t err = gov_state_offset_key(&p, out);
    if (err != GOV_OK)
        snprintf(errbuf, errbuf_size, "no applied-offset key for %s/%s in slot %s",
                 pos->processor ? pos->processor : "", pos->topic ? pos->topic : "", slot);
    return err;
}

int gov_state_identity_key_rank(const char *state) {
    static const char *const order[] = {"pending", "active", "retiring", "retired"};
    for (int i = 0; state && i < 4; i++)
        if (strcmp(state, order[i]) == 0)
            return i;
    return -1;
}

/* --- keys ------------------------------------------------------------------------ */

static gov_redis_script_t key_script = {
    /* KEYS: 1 key hash, 2 kid set, 3 jwks, 4 applied offset
     * ARGV: 1 offset, 2 kid, 3 alg, 4 public_jwk, 5 backend, 6 state,
     *       7 state rank, 8 created_at, 9 activates_at, 10 retires_at ('' none),
     *       11 previous_kid ('' none), 12 key-hash prefix, 13 event_id,
     *       14 signed payload, 15 signatures (JSON), 16 now (µs),
     *       17 longest token lifetime (µs), 18 retired hash kept (ms),
     *       19 sweep batch
     * KEYS 5: the retired kids by the time they leave the index (ms)
     * KEYS 6: the kid's retired tombstone (permanent), 7: the rotator lease epoch
     * ARGV 20: the event's time (µs; 0: no freshness rule; '': a time that
     *          cannot be trusted - an unknown kid is stale), 21: the producer's
     *          lease epoch ('' none: not fenced; '0': required and absent)
     * {'ok'|'applied'|'replay'|'changed'|'backwards'|'retired'|'stale'|'fenced',
     *  detail, previous state}
     * ('applied': this very event was applied before, a redelivery) */
    "local applied = tonumber(redis.call('GET', KEYS[4]) or '-1') or -1\n"
    "if tonumber(ARGV[1]) <= applied then\n"
    "  if redis.call('HGET', KEYS[1], 'event_id') == ARGV[13] then\n"
    "    return {'applied', '', ARGV[6]}\n"
    "  end\n"
    "  return {'replay', 'offset', ''}\n"
    "end\n"
    /* a producer that lost the rotator lease since (a newer epoch) no
     * longer speaks for this deployment */
    "if ARGV[21] ~= '' and tonumber(ARGV[21]) < tonumber(redis.call('GET', KEYS[7]) or '0') then\n"
    "  return {'fenced', ARGV[21], ''}\n"
    "end\n"
    "local ranks = {pending = 0, active = 1, retiring = 2, retired = 3}\n"
    "local cur = redis.call('HMGET', KEYS[1], 'alg', 'public_jwk', 'backend', 'created_at',\n"
    "  'previous_kid', 'state', 'activates_at', 'retires_at')\n"
    "local prev = cur[6] or ''\n"
    /* 'retired' is final, first of all: the tombstone outlives the hash, so
     * a signed event captured while the key lived cannot bring it back */
    "local tomb = redis.call('GET', KEYS[6])\n"
    "if tomb then\n"
    "  if ARGV[6] ~= 'retired' then return {'retired', tomb, 'retired'} end\n"
    "  if not cur[6] then\n"
    "    redis.call('SET', KEYS[4], ARGV[1])\n"
    "    return {'replay', 'retired', 'retired'}\n"
    "  end\n"
    "end\n"
    /* an unknown kid must be fresh: one that activated longer ago than a
     * token lives is a replay of a key this store has forgotten */
    "if not cur[6] and (ARGV[6] == 'pending' or ARGV[6] == 'active') then\n"
    "  if ARGV[20] == '' then return {'stale', 'untrusted_time', ''} end\n"
    "  if tonumber(ARGV[20]) > 0 and tonumber(ARGV[9]) + tonumber(ARGV[17]) < tonumber(ARGV[20]) then\n"
    "    return {'stale', 'activates_at ' .. ARGV[9], ''}\n"
    "  end\n"
    "end\n"
    "if cur[6] then\n"
    "  local fixed = {{'alg', ARGV[3]}, {'public_jwk', ARGV[4]}, {'backend', ARGV[5]},\n"
    "    {'created_at', ARGV[8]}, {'previous_kid', ARGV[11]}}\n"
    "  for i, f in ipairs(fixed) do\n"
    "    if cur[i] ~= f[2] then return {'changed', f[1], prev} end\n"
    "  end\n"
    "  local why = nil\n"
    "  if tonumber(ARGV[7]) < (ranks[cur[6]] or -1) then\n"
    "    why = 'state ' .. cur[6] .. ' -> ' .. ARGV[6]\n"
    "  elseif tonumber(ARGV[9]) < (tonumber(cur[7] or '') or 0) then\n"
    "    why = 'activates_at ' .. cur[7] .. ' -> ' .. ARGV[9]\n"
    "  elseif cur[8] and cur[8] ~= '' and (ARGV[10] == '' or\n"
    "         tonumber(ARGV[10]) < (tonumber(cur[8]) or 0)) then\n"
    "    why = 'retires_at ' .. cur[8] .. ' -> ' .. (ARGV[10] == '' and 'none' or ARGV[10])\n"
    "  end\n"
    "  if why then return {'backwards', why, prev} end\n"
    "  if cur[6] == ARGV[6] and cur[7] == ARGV[9] and (cur[8] or '') == ARGV[10] then\n"
    "    redis.call('SET', KEYS[4], ARGV[1])\n"
    "    return {'replay', 'same', prev}\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'alg', ARGV[3], 'public_jwk', ARGV[4], 'backend', ARGV[5],\n"
    "  'state', ARGV[6], 'created_at', ARGV[8], 'activates_at', ARGV[9],\n"
    "  'retires_at', ARGV[10], 'previous_kid', ARGV[11], 'event_id', ARGV[13],\n"
    "  'signed', ARGV[14], 'signatures', ARGV[15])\n"
    "redis.call('SADD', KEYS[2], ARGV[2])\n"
    /* a retired kid leaves the index once no token it signed can be alive:
     * retires_at (activates_at when none) + the longest token lifetime - a
     * function of the event, so a replay schedules the same; the sweep
     * takes a bounded batch per write, so no write touches every kid ever */
    "if ARGV[6] == 'retired' then\n"
    "  redis.call('SET', KEYS[6], ARGV[10] ~= '' and ARGV[10] or ARGV[9])\n"
    "  local r = tonumber(ARGV[10]) or tonumber(ARGV[9]) or 0\n"
    "  redis.call('ZADD', KEYS[5], string.format('%.0f',\n"
    "    math.floor((r + tonumber(ARGV[17])) / 1000)), ARGV[2])\n"
    "end\n"
    "for _, kid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf',\n"
    "    math.floor(tonumber(ARGV[16]) / 1000), 'LIMIT', 0, tonumber(ARGV[19]))) do\n"
    "  redis.call('SREM', KEYS[2], kid)\n"
    "  redis.call('ZREM', KEYS[5], kid)\n"
    "  redis.call('PEXPIRE', ARGV[12] .. kid, ARGV[18])\n"
    "end\n"
    "local ks = {}\n"
    "for _, kid in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
    "  local v = redis.call('HMGET', ARGV[12] .. kid, 'state', 'public_jwk', 'activates_at')\n"
    "  if v[1] and v[1] ~= 'retired' and v[2] then\n"
    "    ks[#ks + 1] = {tonumber(v[3]) or 0, kid, v[2]}\n"
    "  end\n"
    "end\n"
    "table.sort(ks, function(a, b)\n"
    "  if a[1] ~= b[1] then return a[1] < b[1] end\n"
    "  return a[2] < b[2]\n"
    "end)\n"
    "local parts = {}\n"
    "for i, k in ipairs(ks) do parts[i] = k[3] end\n"
    "redis.call('SET', KEYS[3], '{\"keys\":[' .. table.concat(parts, ',') .. ']}')\n"
    "redis.call('SET', KEYS[4], ARGV[1])\n"
    "return {'ok', '', prev}\n",
    {0}};

/* The status word of a script's reply {status, ...}; "" when not that shape. */
static const char *status_of(const redisReply *rep, size_t min_elements) {
    if (rep->type == REDIS_REPLY_STRING)
        return rep->str;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < min_elements || rep->elements == 0)
        return "";
    for (size_t i = 0; i < rep->elements; i++)
        if (rep->element[i]->type != REDIS_REPLY_STRING && rep->element[i]->type != REDIS_REPLY_INTEGER)
            return "";
    return rep->element[0]->type == REDIS_REPLY_STRING ? rep->element[0]->str : "";
}

gov_err_t gov_state_identity_key_write(gov_redis_t *r, const gov_state_identity_key_t *k,
                                       const gov_state_pos_t *pos,
                                       gov_state_identity_outcome_t *outcome,
                                       char *previous_state, char *errbuf, size_t errbuf_size) {
    char k_key[GOV_STATE_KEY_MAX], k_off[GOV_STATE_KEY_MAX], off[32], rank[16], created[32],
        activates[32], retires[32];
    gov_err_t err;
    *outcome = GOV_STATE_IDENTITY_REPLAY;
    if (previous_state)
        previous_state[0] = 0;
    int rk = gov_state_identity_key_rank(k->state);
    if (gov_state_identity_key_key(k->kid, k_key) != GOV_OK || rk < 0) {
        snprintf(errbuf, errbuf_size, "kid is not a thumbprint or state is unknown");
        return GOV_ERR_INVALID_ARG;
    }
    if ((err = applied_key(pos, GOV_STATE_IDENTITY_KEYS_SLOT, k_off, errbuf, errbuf_size)) !=
        GOV_OK)
        return err;
    snprintf(off, sizeof off, "%lld", (long long)pos->offset);
    snprintf(rank, sizeof rank, "%d", rk);
    snprintf(created, sizeof created, "%lld", (long long)k->created_at);
    snprintf(activates, sizeof activates, "%lld", (long long)k->activates_at);
    if (k->retires_at >= 0)
        snprintf(retires, sizeof retires, "%lld", (long long)k->retires_at);
    else
        retires[0] = 0;
    char tomb[GOV_STATE_KEY_MAX];
    gov_state_identity_key_tombstone_key(k->kid, tomb);
    char now[32], lifetime[32], keep[32], batch[16], event_time[32], epoch[24] = "";
    /* '0' when required but absent: below any epoch the lease has */
    if (k->lease_epoch > 0 || k->lease_epoch_required)
        snprintf(epoch, sizeof epoch, "%lld", (long long)(k->lease_epoch > 0 ? k->lease_epoch : 0));
    snprintf(now, sizeof now, "%lld", (long long)gov_now_micros());
    snprintf(lifetime, sizeof lifetime, "%lld",
             (long long)(k->token_lifetime_us > 0 ? k->token_lifetime_us : 0));
    snprintf(keep, sizeof keep, "%lld",
             (long long)(k->retired_keep_ms > 0 ? k->retired_keep_ms
                                                : GOV_STATE_IDENTITY_RETIRED_KEEP_S * 1000));
    if (k->event_time_untrusted)
        event_time[0] = '\0';
    else
        snprintf(event_time, sizeof event_time, "%lld",
                 (long long)(k->event_time_us > 0 ? k->event_time_us : 0));
    snprintf(batch, sizeof batch, "%d", GOV_STATE_IDENTITY_SWEEP_BATCH);
    const char *argv[] = {k_key, gov_state_identity_kids_key(), gov_state_identity_jwks_key(),
                          k_off, gov_state_identity_retired_key(), tomb,
                          gov_state_identity_rotator_epoch_key(), off, k->kid, k->alg, k->public_jwk, k->backend, k->state, rank,
                          created, activates, retires,
                          k->previous_kid ? k->previous_kid : "", KEYS_PREFIX "key:",
                          k->event_id ? k->event_id : "",
                          k->signed_payload ? k->signed_payload : "",
                          k->signatures ? k->signatures : "", now, lifetime, keep, batch,
                          event_time, epoch};
    redisReply *rep = NULL;
    if ((err = gov_redis_eval(r, &key_script, 7, 28, argv, NULL, &rep, errbuf, errbuf_size)) !=
        GOV_OK)
        return err;
    const char *st = status_of(rep, 3);
    static const struct {
        const char *status;
        gov_state_identity_outcome_t outcome;
    } outcomes[] = {
        {"ok", GOV_STATE_IDENTITY_WRITTEN},        {"applied", GOV_STATE_IDENTITY_APPLIED},
        {"replay", GOV_STATE_IDENTITY_REPLAY},     {"changed", GOV_STATE_IDENTITY_CHANGED},
        {"backwards", GOV_STATE_IDENTITY_BACKWARDS}, {"retired", GOV_STATE_IDENTITY_RETIRED},
        {"stale", GOV_STATE_IDENTITY_STALE},       {"fenced", GOV_STATE_IDENTITY_FENCED},
    };
    size_t i = 0;
    while (i < sizeof outcomes / sizeof outcomes[0] && strcmp(st, outcomes[i].status) != 0)
        i++;
    if (i < sizeof outcomes / sizeof outcomes[0]) {
        *outcome = outcomes[i].outcome;
        if (*outcome == GOV_STATE_IDENTITY_CHANGED)
            snprintf(errbuf, errbuf_size, "kid %s is stored with another %s", k->kid,
                     rep->element[1]->str);
        else if (*outcome == GOV_STATE_IDENTITY_BACKWARDS)
            snprintf(errbuf, errbuf_size, "kid %s would move back: %s", k->kid,
                     rep->element[1]->str);
        else if (*outcome == GOV_STATE_IDENTITY_RETIRED)
            snprintf(errbuf, errbuf_size, "kid %s was retired (retires_at %s); retired is final",
                     k->kid, rep->element[1]->str);
        else if (*outcome == GOV_STATE_IDENTITY_FENCED && k->lease_epoch <= 0)
            snprintf(errbuf, errbuf_size,
                     "kid %s: the event carries no rotator lease epoch (header "
                     "x-gov-lease-epoch) and the rotator lease has one", k->kid);
        else if (*outcome == GOV_STATE_IDENTITY_FENCED)
            snprintf(errbuf, errbuf_size,
                     "kid %s: produced under rotator lease epoch %s, older than the lease's",
                     k->kid, rep->element[1]->str);
        else if (*outcome == GOV_STATE_IDENTITY_STALE && k->event_time_untrusted)
            snprintf(errbuf, errbuf_size,
                     "kid %s is unknown and the record's timestamp is not the broker's append "
                     "time (LogAppendTime): its age cannot be judged", k->kid);
        else if (*outcome == GOV_STATE_IDENTITY_STALE)
            snprintf(errbuf, errbuf_size,
                     "kid %s is unknown and its %s is older than the longest token lifetime",
                     k->kid, rep->element[1]->str);
        if (previous_state)
            snprintf(previous_state, GOV_STATE_IDENTITY_STATE_MAX, "%s", rep->element[2]->str);
    } else {
        snprintf(errbuf, errbuf_size, "unexpected reply from the key write script");
        err = GOV_ERR_REDIS;
    }
    freeReplyObject(rep);
    return err;
}

/* --- bounded reads ---------------------------------------------------------------- */

/* Fields of a hash, each sent only within ARGV[1] bytes (an oversized one
 * reads as absent); a key of another type is an error reply, never read. */
static gov_redis_script_t hash_read_script = {
    /* KEYS: 1 hash   ARGV: 1 field max, 2.. field names */
    "local t = redis.call('TYPE', KEYS[1]).ok\n"
    "if t == 'none' then return {} end\n"
    "if t ~= 'hash' then return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is a ' .. t) end\n"
    "local out, m = {}, tonumber(ARGV[1])\n"
    "for i = 2, #ARGV do\n"
    "  if redis.call('HSTRLEN', KEYS[1], ARGV[i]) <= m then\n"
    "    out[i - 1] = redis.call('HGET', KEYS[1], ARGV[i])\n"
    "  else out[i - 1] = false end\n"
    "end\n"
    "return out\n",
    {0}};

/* Reads nfields fields of key into new strings out[i] (NULL absent);
 * *found 1 when the hash exists. */
static gov_err_t hash_read(gov_redis_t *r, const char *key, const char *const *fields,
                           size_t nfields, char **out, int *found, char *errbuf,
                           size_t errbuf_size) {
    char fmax[24];
    const char *argv[16];
    *found = 0;
    for (size_t i = 0; i < nfields; i++)
        out[i] = NULL;
    if (nfields > 14)
        return GOV_ERR_INVALID_ARG;
    snprintf(fmax, sizeof fmax, "%zu", (size_t)GOV_STATE_FIELD_MAX);
    argv[0] = key;
    argv[1] = fmax;
    for (size_t i = 0; i < nfields; i++)
        argv[2 + i] = fields[i];
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_eval(r, &hash_read_script, 1, (int)nfields + 2, argv, NULL, &rep,
                                   errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    if (rep->type != REDIS_REPLY_ARRAY || (rep->elements != 0 && rep->elements != nfields)) {
        snprintf(errbuf, errbuf_size, "unexpected reply reading %s", key);
        freeReplyObject(rep);
        return GOV_ERR_REDIS;
    }
    *found = rep->elements != 0;
    for (size_t i = 0; i < rep->elements && err == GOV_OK; i++)
        if (rep->element[i]->type == REDIS_REPLY_STRING &&
            (out[i] = gov_strdup(rep->element[i]->str)) == NULL)
            err = GOV_ERR_NOMEM;
    freeReplyObject(rep);
    if (err != GOV_OK)
        for (size_t i = 0; i < nfields; i++) {
            gov_free(out[i]);
            out[i] = NULL;
        }
    return err;
}

/* A decimal field; dflt when absent or not a number. */
static int64_t int_field(const char *s, int64_t dflt) {
    if (s == NULL || s[0] == 0)
        return dflt;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    return end && *end == 0 ? (int64_t)v : dflt;
}

gov_err_t gov_state_identity_key_get(gov_redis_t *r, const char *kid,
                                     gov_state_identity_key_rec_t *out, char *errbuf,
                                     size_t errbuf_size) {
    static const char *const fields[] = {"alg", "public_jwk", "backend", "state", "previous_kid",
                                         "created_at", "activates_at", "retires_at", "signed",
                                         "signatures"};
    char key[GOV_STATE_KEY_MAX], *v[10];
    memset(out, 0, sizeof *out);
    if (gov_state_identity_key_key(kid, key) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "kid is not a thumbprint");
        return GOV_ERR_INVALID_ARG;
    }
    gov_err_t err = hash_read(r, key, fields, 10, v, &out->found, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    out->signed_payload = v[8];
    out->signatures = v[9];
    out->alg = v[0];
    out->public_jwk = v[1];
    out->backend = v[2];
    out->state = v[3];
    out->previous_kid = v[4];
    out->created_at = int_field(v[5], 0);
    out->activates_at = int_field(v[6], 0);
    out->retires_at = int_field(v[7], -1);
    gov_free(v[5]);
    gov_free(v[6]);
    gov_free(v[7]);
    return GOV_OK;
}

void gov_state_identity_key_clear(gov_state_identity_key_rec_t *k) {
    gov_free(k->alg);
    gov_free(k->public_jwk);
    gov_free(k->backend);
    gov_free(k->state);
    gov_free(k->previous_kid);
    gov_free(k->signed_payload);
    gov_free(k->signatures);
    memset(k, 0, sizeof *k);
}

/* The whole kid index, or its size when it holds more than ARGV[1]: never
 * a sample (a sample drops live keys at random). */
static gov_redis_script_t kids_read_script = {
    /* KEYS: 1 kid set   ARGV: 1 bound */
    "local n = redis.call('SCARD', KEYS[1])\n"
    "if n > tonumber(ARGV[1]) then return n end\n"
    "return redis.call('SMEMBERS', KEYS[1])\n",
    {0}};

gov_err_t gov_state_identity_key_list(gov_redis_t *r, char ***kids, size_t *n, char *errbuf,
                                      size_t errbuf_size) {
    *kids = NULL;
    *n = 0;
    char count[16];
    snprintf(count, sizeof count, "%d", GOV_STATE_IDENTITY_KIDS_MAX);
    const char *argv[] = {gov_state_identity_kids_key(), count};
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_eval(r, &kids_read_script, 1, 2, argv, NULL, &rep, errbuf,
                                   errbuf_size);
    if (err != GOV_OK)
        return err;
    if (rep->type == REDIS_REPLY_INTEGER) {
        snprintf(errbuf, errbuf_size, "%s holds %lld kids, more than the bound %d",
                 gov_state_identity_kids_key(), (long long)rep->integer,
                 GOV_STATE_IDENTITY_KIDS_MAX);
        freeReplyObject(rep);
        return GOV_ERR_TOO_LARGE;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements > GOV_STATE_IDENTITY_KIDS_MAX) {
        snprintf(errbuf, errbuf_size, "%s is not a set of at most %d kids",
                 gov_state_identity_kids_key(), GOV_STATE_IDENTITY_KIDS_MAX);
        freeReplyObject(rep);
        return GOV_ERR_REDIS;
    }
    char **out = rep->elements ? gov_calloc(rep->elements, sizeof *out) : NULL;
    size_t k = 0;
    if (rep->elements && out == NULL)
        err = GOV_ERR_NOMEM;
    for (size_t i = 0; err == GOV_OK && i < rep->elements; i++) {
        if (rep->element[i]->type != REDIS_REPLY_STRING)
            continue;
        if ((out[k] = gov_strdup(rep->element[i]->str)) == NULL)
            err = GOV_ERR_NOMEM;
        else
            k++;
    }
    freeReplyObject(rep);
    if (err != GOV_OK) {
        gov_state_identity_kids_free(out, k);
        return err;
    }
    *kids = out;
    *n = k;
    return GOV_OK;
}

void gov_state_identity_kids_free(char **kids, size_t n) {
    for (size_t i = 0; kids && i < n; i++)
        gov_free(kids[i]);
    gov_free(kids);
}

gov_err_t gov_state_identity_jwks_get(gov_redis_t *r, char **json, size_t *len, char *errbuf,
                                      size_t errbuf_size) {
    *json = NULL;
    *len = 0;
    char last[24];
    snprintf(last, sizeof last, "%zu", (size_t)GOV_STATE_FIELD_MAX);
    /* at most one byte past the bound is sent: a larger JWKS is refused */
    const char *argv[] = {"GETRANGE", gov_state_identity_jwks_key(), "0", last};
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_command(r, &rep, 4, argv, NULL, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    if (rep->type == REDIS_REPLY_STRING && rep->len > GOV_STATE_FIELD_MAX) {
        snprintf(errbuf, errbuf_size, "%s is beyond its bound", gov_state_identity_jwks_key());
        err = GOV_ERR_TOO_LARGE;
    } else if (rep->type == REDIS_REPLY_STRING && rep->len > 0) {
        if ((*json = gov_malloc(rep->len + 1)) == NULL) {
            err = GOV_ERR_NOMEM;
        } else {
            memcpy(*json, rep->str, rep->len);
            (*json)[rep->len] = 0;
            *len = rep->len;
        }
    }
    freeReplyObject(rep);
    return err;
}

/* --- clients ------------------------------------------------------------------------ */

static gov_redis_script_t client_add_script = {
    /* KEYS: 1 client hash, 2 tombstone, 3 applied offset
     * ARGV: 1 offset, 2 secret_hash, 3 tenants, 4 scopes, 5 registered_at,
     *       6 registered_by, 7 event_id, 8 signed payload, 9 signatures (JSON)
     * 'ok' | 'applied' (this event, redelivered) | 'replay' | 'changed' | 'removed' */
    "local applied = tonumber(redis.call('GET', KEYS[3]) or '-1') or -1\n"
    "if tonumber(ARGV[1]) <= applied then\n"
    "  if redis.call('HGET', KEYS[1], 'event_id') == ARGV[7] then return 'applied' end\n"
    "  return 'replay'\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then return 'removed' end\n"
    "local cur = redis.call('HMGET', KEYS[1], 'secret_hash', 'tenants', 'scopes')\n"
    "if cur[1] then\n"
    "  if cur[1] == ARGV[2] and cur[2] == ARGV[3] and cur[3] == ARGV[4] then\n"
    "    redis.call('SET', KEYS[3], ARGV[1])\n"
    "    return 'replay'\n"
    "  end\n"
    "  return 'changed'\n"
    "end\n"
    "redis.call('SET', KEYS[3], ARGV[1])\n"
    "redis.call('HSET', KEYS[1], 'secret_hash', ARGV[2], 'tenants', ARGV[3], 'scopes', ARGV[4],\n"
    "  'registered_at', ARGV[5], 'registered_by', ARGV[6], 'event_id', ARGV[7],\n"
    "  'signed', ARGV[8], 'signatures', ARGV[9])\n"
    "return 'ok'\n",
    {0}};

static gov_redis_script_t client_remove_script = {
    /* KEYS: 1 client hash, 2 tombstone, 3 applied offset
     * ARGV: 1 offset, 2 removed_at, 3 removed_by, 4 event_id
     * {'ok'|'applied'|'replay', existed} */
    "local applied = tonumber(redis.call('GET', KEYS[3]) or '-1') or -1\n"
    "if tonumber(ARGV[1]) <= applied then\n"
    "  if redis.call('HGET', KEYS[2], 'event_id') == ARGV[4] then return {'applied', 0} end\n"
    "  return {'replay', 0}\n"
    "end\n"
    "local existed = redis.call('DEL', KEYS[1])\n"
    "if redis.call('EXISTS', KEYS[2]) == 0 then\n"
    "  redis.call('HSET', KEYS[2], 'removed_at', ARGV[2], 'removed_by', ARGV[3],\n"
    "    'event_id', ARGV[4])\n"
    "end\n"
    "redis.call('SET', KEYS[3], ARGV[1])\n"
    "return {'ok', existed}\n",
    {0}};

/* The three keys of a client's scripts. */
static gov_err_t client_keys(const char *client_id, const gov_state_pos_t *pos,
                             char k[3][GOV_STATE_KEY_MAX], char *errbuf, size_t errbuf_size) {
    if (gov_state_identity_client_key(client_id, k[0]) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "client_id is not an id");
        return GOV_ERR_INVALID_ARG;
    }
    snprintf(k[1], GOV_STATE_KEY_MAX, "identity:client:{%s}:removed", client_id);
    return applied_key(pos, client_id, k[2], errbuf, errbuf_size);
}

gov_err_t gov_state_identity_client_add(gov_redis_t *r, const gov_state_identity_client_t *c,
                                        const gov_state_pos_t *pos,
                                        gov_state_identity_outcome_t *outcome, char *errbuf,
                                        size_t errbuf_size) {
    char k[3][GOV_STATE_KEY_MAX], off[32], at[32];
    *outcome = GOV_STATE_IDENTITY_REPLAY;
    gov_err_t err = client_keys(c->client_id, pos, k, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    snprintf(off, sizeof off, "%lld", (long long)pos->offset);
    snprintf(at, sizeof at, "%lld", (long long)c->registered_at);
    const char *argv[] = {k[0], k[1], k[2], off, c->secret_hash, c->tenants, c->scopes, at,
                          c->registered_by, c->event_id,
                          c->signed_payload ? c->signed_payload : "",
                          c->signatures ? c->signatures : ""};
    redisReply *rep = NULL;
    if ((err = gov_redis_eval(r, &client_add_script, 3, 12, argv, NULL, &rep, errbuf,
                              errbuf_size)) != GOV_OK)
        return err;
    const char *st = status_of(rep, 1);
    if (strcmp(st, "ok") == 0)
        *outcome = GOV_STATE_IDENTITY_WRITTEN;
    else if (strcmp(st, "replay") == 0)
        *outcome = GOV_STATE_IDENTITY_REPLAY;
    else if (strcmp(st, "applied") == 0)
        *outcome = GOV_STATE_IDENTITY_APPLIED;
    else if (strcmp(st, "changed") == 0)
        *outcome = GOV_STATE_IDENTITY_CHANGED;
    else if (strcmp(st, "removed") == 0)
        *outcome = GOV_STATE_IDENTITY_REMOVED;
    else {
        snprintf(errbuf, errbuf_size, "unexpected reply from the client write script");
        err = GOV_ERR_REDIS;
    }
    freeReplyObject(rep);
    return err;
}

gov_err_t gov_state_identity_client_remove(gov_redis_t *r, const char *client_id,
                                           const char *removed_by, const char *event_id,
                                           int64_t removed_at, const gov_state_pos_t *pos,
                                           gov_state_identity_outcome_t *outcome, int *existed,
                                           char *errbuf, size_t errbuf_size) {
    char k[3][GOV_STATE_KEY_MAX], off[32], at[32];
    *outcome = GOV_STATE_IDENTITY_REPLAY;
    *existed = 0;
    gov_err_t err = client_keys(client_id, pos, k, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    snprintf(off, sizeof off, "%lld", (long long)pos->offset);
    snprintf(at, sizeof at, "%lld", (long long)removed_at);
    const char *argv[] = {k[0], k[1], k[2], off, at, removed_by, event_id};
    redisReply *rep = NULL;
    if ((err = gov_redis_eval(r, &client_remove_script, 3, 7, argv, NULL, &rep, errbuf,
                              errbuf_size)) != GOV_OK)
        return err;
    const char *st = status_of(rep, 2);
    if (strcmp(st, "ok") == 0 || strcmp(st, "replay") == 0 || strcmp(st, "applied") == 0) {
        *outcome = st[0] == 'o'   ? GOV_STATE_IDENTITY_WRITTEN
                   : st[0] == 'a' ? GOV_STATE_IDENTITY_APPLIED
                                  : GOV_STATE_IDENTITY_REPLAY;
        *existed = rep->element[1]->type == REDIS_REPLY_INTEGER && rep->element[1]->integer > 0;
    } else {
        snprintf(errbuf, errbuf_size, "unexpected reply from the client remove script");
        err = GOV_ERR_REDIS;
    }
    freeReplyObject(rep);
    return err;
}

gov_err_t gov_state_identity_client_get(gov_redis_t *r, const char *client_id,
                                        gov_state_identity_client_rec_t *out, char *errbuf,
                                        size_t errbuf_size) {
    static const char *const fields[] = {"secret_hash", "tenants", "scopes", "registered_by",
                                         "registered_at", "signed", "signatures"};
    char key[GOV_STATE_KEY_MAX], *v[7];
    memset(out, 0, sizeof *out);
    if (gov_state_identity_client_key(client_id, key) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "client_id is not an id");
        return GOV_ERR_INVALID_ARG;
    }
    gov_err_t err = hash_read(r, key, fields, 7, v, &out->found, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    out->signed_payload = v[5];
    out->signatures = v[6];
    out->secret_hash = v[0];
    out->tenants = v[1];
    out->scopes = v[2];
    out->registered_by = v[3];
    out->registered_at = int_field(v[4], 0);
    gov_free(v[4]);
    return GOV_OK;
}

void gov_state_identity_client_clear(gov_state_identity_client_rec_t *c) {
    gov_free(c->secret_hash);
    gov_free(c->tenants);
    gov_free(c->scopes);
    gov_free(c->registered_by);
    gov_free(c->signed_payload);
    gov_free(c->signatures);
    memset(c, 0, sizeof *c);
}

/* --- tokens ------------------------------------------------------------------------- */

/* The token record's exp (µs, field exp) and its key's expiry (ms, ARGV[2])
 * only ever move later: the latest expires_at any TokenIssued or
 * TokenRevoked of the jti carried.  An event with an earlier one (a replay,
 * a skewed producer) never shortens a record - a revocation that expired
 * early would let its token verify again.  Every write of the record sets
 * both together, so a stored exp at or past this one means the key's expiry
 * already is. */
#define TOKEN_EXP_MAX_LUA(exp_us_argv)                                                          \
    "local cur_exp = tonumber(redis.call('HGET', KEYS[1], 'exp') or '')\n"                     \
    "if cur_exp == nil or tonumber(ARGV[" exp_us_argv "]) >= cur_exp then\n"                   \
    "  redis.call('HSET', KEYS[1], 'exp', ARGV[" exp_us_argv "])\n"                            \
    "  redis.call('PEXPIREAT', KEYS[1], ARGV[2])\n"                                            \
    "end\n"

static gov_redis_script_t token_issue_script = {
    /* KEYS: 1 token hash, 2 applied offset
     * ARGV: 1 offset, 2 exp (ms), 3 sub, 4 client_id, 5 scope, 6 aud, 7 kid,
     *       8 constitution_hash, 9 iat, 10 nbf, 11 exp (µs)
     * the applied offset before (or '-1') */
    "local before = redis.call('GET', KEYS[2]) or '-1'\n"
    "redis.call('SET', KEYS[2], ARGV[1])\n"
    "redis.call('HSET', KEYS[1], 'sub', ARGV[3], 'client_id', ARGV[4], 'scope', ARGV[5],\n"
    "  'aud', ARGV[6], 'kid', ARGV[7], 'constitution_hash', ARGV[8], 'iat', ARGV[9],\n"
    "  'nbf', ARGV[10])\n"
    "redis.call('HSETNX', KEYS[1], 'status', 'active')\n"
    TOKEN_EXP_MAX_LUA("11")
    "return before\n",
    {0}};

static gov_redis_script_t token_revoke_script = {
    /* KEYS: 1 token hash, 2 applied offset
     * ARGV: 1 offset, 2 exp (ms), 3 exp (µs), 4 revoked_at, 5 reason
     * the applied offset before (or '-1') */
    "local before = redis.call('GET', KEYS[2]) or '-1'\n"
    "redis.call('SET', KEYS[2], ARGV[1])\n"
    "redis.call('HSET', KEYS[1], 'status', 'revoked')\n"
    "redis.call('HSETNX', KEYS[1], 'revoked_at', ARGV[4])\n"
    "redis.call('HSETNX', KEYS[1], 'revoke_reason', ARGV[5])\n"
    TOKEN_EXP_MAX_LUA("3")
    "return before\n",
    {0}};

/* Runs a token script over the token key and the tenant's applied offset. */
static gov_err_t token_eval(gov_redis_t *r, gov_redis_script_t *script, const char *tenant,
                            const char *jti, const gov_state_pos_t *pos, int64_t expires_at,
                            const char **args, int nargs, int64_t *applied_before, char *errbuf,
                            size_t errbuf_size) {
    char k_tok[GOV_STATE_KEY_MAX], k_off[GOV_STATE_KEY_MAX], off[32], exp_ms[32];
    const char *argv[16];
    *applied_before = GOV_STATE_APPLIED_UNKNOWN;
    if (gov_state_identity_token_key(tenant, jti, k_tok) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "tenant or jti is not an id");
        return GOV_ERR_INVALID_ARG;
    }
    gov_err_t err = applied_key(pos, tenant, k_off, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    snprintf(off, sizeof off, "%lld", (long long)pos->offset);
    /* µs -> ms, rounded up: the record never outlives the token by less
     * than it should, nor by more than a millisecond */
    snprintf(exp_ms, sizeof exp_ms, "%lld", (long long)((expires_at + 999) / 1000));
    argv[0] = k_tok;
    argv[1] = k_off;
    argv[2] = off;
    argv[3] = exp_ms;
    for (int i = 0; i < nargs && i < 12; i++)
        argv[4 + i] = args[i];
    redisReply *rep = NULL;
    if ((err = gov_redis_eval(r, script, 2, 4 + nargs, argv, NULL, &rep, errbuf,
                              errbuf_size)) != GOV_OK)
        return err;
    if (rep->type == REDIS_REPLY_STRING)
        *applied_before = int_field(rep->str, -1);
    else {
        snprintf(errbuf, errbuf_size, "unexpected reply from the token script");
        err = GOV_ERR_REDIS;
    }
    freeReplyObject(rep);
    return err;
}

gov_err_t gov_state_identity_token_issue(gov_redis_t *r, const gov_state_identity_token_t *t,
                                         const gov_state_pos_t *pos, int64_t *applied_before,
                                         char *errbuf, size_t errbuf_size) {
    char iat[32], nbf[32], exp[32];
    snprintf(iat, sizeof iat, "%lld", (long long)t->issued_at);
    snprintf(nbf, sizeof nbf, "%lld", (long long)t->not_before);
    snprintf(exp, sizeof exp, "%lld", (long long)t->expires_at);
    const char *args[] = {t->sub, t->client_id, t->scope, t->aud, t->kid, t->constitution_hash,
                          iat, nbf, exp};
    return token_eval(r, &token_issue_script, t->tenant, t->jti, pos, t->expires_at, args, 9,
                      applied_before, errbuf, errbuf_size);
}

gov_err_t gov_state_identity_token_revoke(gov_redis_t *r, const char *tenant, const char *jti,
                                          int64_t expires_at, int64_t revoked_at,
                                          const char *reason, const gov_state_pos_t *pos,
                                          int64_t *applied_before, char *errbuf,
                                          size_t errbuf_size) {
    char exp[32], at[32];
    snprintf(exp, sizeof exp, "%lld", (long long)expires_at);
    snprintf(at, sizeof at, "%lld", (long long)revoked_at);
    const char *args[] = {exp, at, reason};
    return token_eval(r, &token_revoke_script, tenant, jti, pos, expires_at, args, 3,
                      applied_before, errbuf, errbuf_size);
}

gov_err_t gov_state_identity_token_status(gov_redis_t *r, const char *tenant, const char *jti,
                                          gov_state_token_status_t *status, int64_t *exp,
                                          char *errbuf, size_t errbuf_size) {
    static const char *const fields[] = {"status", "exp"};
    char key[GOV_STATE_KEY_MAX], *v[2];
    int found = 0;
    *status = GOV_STATE_TOKEN_UNKNOWN;
    *exp = 0;
    if (gov_state_identity_token_key(tenant, jti, key) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "tenant or jti is not an id");
        return GOV_ERR_INVALID_ARG;
    }
    gov_err_t err = hash_read(r, key, fields, 2, v, &found, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    if (v[0] && strcmp(v[0], "revoked") == 0)
        *status = GOV_STATE_TOKEN_REVOKED;
    else if (v[0] && strcmp(v[0], "active") == 0)
        *status = GOV_STATE_TOKEN_ACTIVE;
    *exp = int_field(v[1], 0);
    gov_free(v[0]);
    gov_free(v[1]);
    return GOV_OK;
}

/* --- the rotator lease -------------------------------------------------------------- */

static gov_redis_script_t lease_script = {
    /* KEYS: 1 the lease, 2 its epoch counter.  ARGV: 1 owner, 2 lease ms,
     * 3 '1' take it over from any holder.
     * {1|0 the caller holds it (taken or renewed) | another owner does,
     *  the epoch} - every take (not a renewal) increments the epoch */
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return {1, tonumber(redis.call('GET', KEYS[2]) or '0')}\n"
    "end\n"
    "if v and ARGV[3] ~= '1' then\n"
    "  return {0, tonumber(redis.call('GET', KEYS[2]) or '0')}\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "return {1, redis.call('INCR', KEYS[2])}\n",
    {0}};

const char *gov_state_identity_rotator_key(void) {
    return KEYS_PREFIX "rotator";
}

const char *gov_state_identity_rotator_epoch_key(void) {
    return KEYS_PREFIX "rotator:epoch";
}

static gov_err_t rotator_lease(gov_redis_t *r, const char *owner, long lease_ms, int take_over,
                               int *held, int64_t *epoch, char *errbuf, size_t errbuf_size) {
    char ms[24];
    *held = 0;
    if (epoch)
        *epoch = 0;
    if (owner == NULL || owner[0] == 0 || strlen(owner) > 200 || lease_ms <= 0) {
        snprintf(errbuf, errbuf_size, "rotator lease: an owner of 1..200 bytes and a lease > 0");
        return GOV_ERR_INVALID_ARG;
    }
    snprintf(ms, sizeof ms, "%ld", lease_ms);
    const char *argv[] = {gov_state_identity_rotator_key(), gov_state_identity_rotator_epoch_key(),
                          owner, ms, take_over ? "1" : "0"};
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_eval(r, &lease_script, 2, 5, argv, NULL, &rep, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER) {
        snprintf(errbuf, errbuf_size, "unexpected reply from the rotator lease script");
        freeReplyObject(rep);
        return GOV_ERR_REDIS;
    }
    *held = rep->element[0]->integer == 1;
    if (epoch)
        *epoch = (int64_t)rep->element[1]->integer;
    freeReplyObject(rep);
    return GOV_OK;
}

gov_err_t gov_state_identity_rotator_lease(gov_redis_t *r, const char *owner, long lease_ms,
                                           int *held, int64_t *epoch, char *errbuf,
                                           size_t errbuf_size) {
    return rotator_lease(r, owner, lease_ms, 0, held, epoch, errbuf, errbuf_size);
}

gov_err_t gov_state_identity_rotator_take(gov_redis_t *r, const char *owner, long lease_ms,
                                          int64_t *epoch, char *errbuf, size_t errbuf_size) {
    int held = 0;
    return rotator_lease(r, owner, lease_ms, 1, &held, epoch, errbuf, errbuf_size);
}
