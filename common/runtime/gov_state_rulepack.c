/* gov_state_rulepack.c - read a tenant's rule pack state; write an accepted
 * pack atomically with a compare-and-set on the current pack's exact bytes.
 *
 * The compare is on the bytes themselves, not on a version or a digest kept
 * beside them: the string policy:rulepack:{T} is what gov-edge evaluates
 * with, so it is what two gov-rulepacks replicas must agree they replaced.
 * Both may decide against the same state; only the first write lands, the
 * second sees CONFLICT, re-reads and (now comparing against the winner)
 * decides again.  Carrying the current pack back to Redis costs one more
 * copy of at most rulepack_max_bytes per accepted publication, which are
 * rare.  The offset is written by the same script, and so are the pack's
 * signatures (meta "signatures"), which every edge verifies again before it
 * serves the pack.
 *
 * What it does not do: decide anything.  Versions, equivocation and replays
 * are judged by gov-rulepacks on what gov_state_rulepack_read returned.
 */
#include "gov_state.h"

#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_state_internal.h"

static gov_redis_script_t read_script = {
    /* KEYS: 1 pack, 2 meta, 3 history   ARGV: 1 history cap, 2 pack max,
     * 3 field max (a value beyond its bound is not sent: finding 6)
     * A key of the wrong type (Redis edited by hand) is reported, not
     * raised: an error would retry the message forever. */
    "local want = {'string', 'hash', 'list'}\n"
    "for i = 1, 3 do\n"
    "  local t = redis.call('TYPE', KEYS[i]).ok\n"
    "  if t ~= 'none' and t ~= want[i] then return {'wrongtype', KEYS[i], t} end\n"
    "end\n"
    "if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[2]) then\n"
    "  return {'too_large', KEYS[1], tostring(redis.call('STRLEN', KEYS[1]))} end\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "local meta = redis.call('HMGET', KEYS[2], 'event_id', 'previous_version', 'signatures')\n"
    "local hist = redis.call('LRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1)\n"
    "local sigs = false\n"
    "if redis.call('HSTRLEN', KEYS[2], 'signatures') <= tonumber(ARGV[3]) then sigs = meta[3] end\n"
    "return {cur, meta[1], meta[2], hist, meta[3] and 1 or 0, sigs}\n",
    {0}};

static gov_redis_script_t write_script = {
    /* KEYS: 1 pack, 2 meta, 3 history, 4 offset
     * ARGV: 1 expected pack ('' = none), 2 canonical, 3 sha256, 4 version,
     *       5 pack_id, 6 rules, 7 patterns, 8 event_id, 9 published_by,
     *       10 accepted_at, 11 previous_version, 12 previous sha256,
     *       13 offset, 14 history cap, 15 signatures, 16 signers */
    "local cur = redis.call('GET', KEYS[1]) or ''\n"
    "if cur ~= ARGV[1] then return {'conflict'} end\n"
    "if cur ~= '' then\n"
    "  redis.call('LPUSH', KEYS[3], ARGV[12])\n"
    "  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[14]) - 1)\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[2])\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('HSET', KEYS[2], 'sha256', ARGV[3], 'version', ARGV[4], 'pack_id', ARGV[5],\n"
    "  'rules', ARGV[6], 'patterns', ARGV[7], 'event_id', ARGV[8], 'published_by', ARGV[9],\n"
    "  'accepted_at', ARGV[10], 'previous_version', ARGV[11], 'signatures', ARGV[15],\n"
    "  'signers', ARGV[16])\n"
    "redis.call('SET', KEYS[4], ARGV[13])\n"
    "return {'ok'}\n",
    {0}};

static gov_redis_script_t add_signatures_script = {
    /* KEYS: 1 meta   ARGV: 1 sha256 of the current pack, 2 signatures,
     * 3 signers.  Only a pack that is still current and has none. */
    "if redis.call('HGET', KEYS[1], 'sha256') ~= ARGV[1] then return 0 end\n"
    "if redis.call('HEXISTS', KEYS[1], 'signatures') == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'signatures', ARGV[2], 'signers', ARGV[3])\n"
    "return 1\n",
    {0}};

/* The tenant's three rule pack keys; errbuf says why when there are none. */
static gov_err_t keys_of(const char *tenant, char pack[GOV_STATE_KEY_MAX],
                         char meta[GOV_STATE_KEY_MAX], char hist[GOV_STATE_KEY_MAX],
                         char *errbuf, size_t errbuf_size) {
    gov_err_t err;
    if ((err = gov_state_key(GOV_STATE_RULEPACK, tenant, pack)) != GOV_OK ||
        (err = gov_state_key(GOV_STATE_RULEPACK_META, tenant, meta)) != GOV_OK ||
        (err = gov_state_key(GOV_STATE_RULEPACK_HISTORY, tenant, hist)) != GOV_OK)
        snprintf(errbuf, errbuf_size, "no rule pack keys for tenant %s", tenant);
    return err;
}

void gov_state_rulepack_clear(gov_state_rulepack_t *cur) {
    gov_free(cur->canonical);
    gov_free(cur->event_id);
    gov_free(cur->previous_version);
    gov_free(cur->signatures);
    for (size_t i = 0; i < cur->nhistory; i++)
        gov_free(cur->history[i]);
    memset(cur, 0, sizeof *cur);
}

int gov_state_rulepack_knows(const gov_state_rulepack_t *cur, const char *sha256) {
    if (cur->canonical != NULL && strcmp(cur->sha256, sha256) == 0)
        return 1;
    for (size_t i = 0; i < cur->nhistory; i++)
        if (strcmp(cur->history[i], sha256) == 0)
            return 1;
    return 0;
}

/* A new copy of a string reply, NULL (and *nomem unchanged) for nil. */
static char *dup_reply(const redisReply *e, int *nomem) {
    if (e == NULL || e->type != REDIS_REPLY_STRING)
        return NULL;
    char *s = gov_strndup(e->str, e->len);
    if (s == NULL)
        *nomem = 1;
    return s;
}

gov_err_t gov_state_rulepack_read(gov_redis_t *r, const char *tenant, gov_state_rulepack_t *cur,
                                  char *errbuf, size_t errbuf_size) {
    char k_pack[GOV_STATE_KEY_MAX], k_meta[GOV_STATE_KEY_MAX], k_hist[GOV_STATE_KEY_MAX], cap[16];
    memset(cur, 0, sizeof *cur);
    gov_err_t err = keys_of(tenant, k_pack, k_meta, k_hist, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    char pmax[24], fmax[24];
    snprintf(cap, sizeof cap, "%d", GOV_STATE_RULEPACK_HISTORY_MAX);
    snprintf(pmax, sizeof pmax, "%zu", gov_state_served_pack_max());
    snprintf(fmax, sizeof fmax, "%zu", (size_t)GOV_STATE_FIELD_MAX);
    const char *argv[] = {k_pack, k_meta, k_hist, cap, pmax, fmax};
    redisReply *rep = NULL;
    err = gov_redis_eval(r, &read_script, 3, 6, argv, NULL, &rep, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
        rep->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(rep->element[0]->str, "too_large") == 0) {
        snprintf(errbuf, errbuf_size, "%s holds %s bytes, beyond the pack bound",
                 rep->element[1]->str, rep->element[2]->str);
        freeReplyObject(rep);
        return GOV_ERR_STATE;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
        rep->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(rep->element[0]->str, "wrongtype") == 0) {
        snprintf(errbuf, errbuf_size, "%s is a %s, not a %s", rep->element[1]->str,
                 rep->element[2]->str,
                 strcmp(rep->element[1]->str, k_pack) == 0 ? "string"
                 : strcmp(rep->element[1]->str, k_meta) == 0 ? "hash" : "list");
        freeReplyObject(rep);
        return GOV_ERR_STATE;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 6 ||
        rep->element[3]->type != REDIS_REPLY_ARRAY) {
        snprintf(errbuf, errbuf_size, "unexpected reply from the rule pack read script");
        freeReplyObject(rep);
        return GOV_ERR_REDIS;
    }
    int nomem = 0;
    const redisReply *pack = rep->element[0];
    if (pack->type == REDIS_REPLY_STRING) {
        cur->canonical = gov_strndup(pack->str, pack->len);
        cur->canonical_len = pack->len;
        unsigned char md[GOV_SHA256_LEN];
        if (cur->canonical == NULL)
            nomem = 1;
        else if ((err = gov_sha256(pack->str, pack->len, md)) == GOV_OK)
            gov_hex_encode(md, GOV_SHA256_LEN, cur->sha256);
    }
    cur->event_id = dup_reply(rep->element[1], &nomem);
    cur->previous_version = dup_reply(rep->element[2], &nomem);
    cur->has_signatures = rep->element[4]->type == REDIS_REPLY_INTEGER && rep->element[4]->integer == 1;
    cur->signatures = dup_reply(rep->element[5], &nomem);
    const redisReply *h = rep->element[3];
    for (size_t i = 0; i < h->elements && i < GOV_STATE_RULEPACK_HISTORY_MAX; i++) {
        char *s = dup_reply(h->element[i], &nomem);
        if (s != NULL)
            cur->history[cur->nhistory++] = s;
    }
    freeReplyObject(rep);
    if (nomem)
        err = GOV_ERR_NOMEM;
    if (err != GOV_OK) {
        snprintf(errbuf, errbuf_size, "reading the rule pack state: %s", gov_err_str(err));
        gov_state_rulepack_clear(cur);
    }
    return err;
}

gov_err_t gov_state_rulepack_write(gov_redis_t *r, const gov_state_rulepack_accepted_t *a,
                                   const gov_state_rulepack_t *cur, const gov_state_pos_t *pos,
                                   char *errbuf, size_t errbuf_size) {
    char k_pack[GOV_STATE_KEY_MAX], k_meta[GOV_STATE_KEY_MAX], k_hist[GOV_STATE_KEY_MAX],
        k_off[GOV_STATE_KEY_MAX], rules[24], patterns[24], at[32], off[32], cap[16];
    gov_err_t err = keys_of(a->tenant, k_pack, k_meta, k_hist, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    if ((err = gov_state_offset_key(pos, k_off)) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "no offset key for %s/%s", pos->processor, pos->topic);
        return err;
    }
    snprintf(rules, sizeof rules, "%zu", a->rules);
    snprintf(patterns, sizeof patterns, "%zu", a->patterns);
    snprintf(at, sizeof at, "%lld", a->accepted_at_us);
    snprintf(off, sizeof off, "%lld", (long long)pos->offset);
    snprintf(cap, sizeof cap, "%d", GOV_STATE_RULEPACK_HISTORY_MAX);
    const char *argv[] = {
        k_pack, k_meta, k_hist, k_off,
        cur->canonical ? cur->canonical : "", a->canonical, a->sha256, a->version, a->pack_id,
        rules, patterns, a->event_id, a->published_by, at, a->previous_version,
        cur->canonical ? cur->sha256 : "", off, cap, a->signatures, a->signers,
    };
    enum { NARGS = sizeof argv / sizeof argv[0] };
    size_t lens[NARGS];
    for (size_t i = 0; i < NARGS; i++)
        lens[i] = strlen(argv[i]);
    lens[4] = cur->canonical ? cur->canonical_len : 0;
    lens[5] = a->canonical_len;
    return gov_state_cas_write(r, &write_script, NARGS, argv, lens,
                               gov_state_rulepack_index_key(), a->tenant, "rule pack", errbuf,
                               errbuf_size);
}

gov_err_t gov_state_rulepack_add_signatures(gov_redis_t *r, const char *tenant,
                                            const char *sha256, const char *signatures,
                                            const char *signers, int *stored, char *errbuf,
                                            size_t errbuf_size) {
    char k_meta[GOV_STATE_KEY_MAX];
    *stored = 0;
    gov_err_t err = gov_state_key(GOV_STATE_RULEPACK_META, tenant, k_meta);
    if (err != GOV_OK) {
        snprintf(errbuf, errbuf_size, "no rule pack keys for tenant %s", tenant);
        return err;
    }
    const char *argv[] = {k_meta, sha256, signatures, signers};
    redisReply *rep = NULL;
    err = gov_redis_eval(r, &add_signatures_script, 1, 4, argv, NULL, &rep, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    *stored = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return GOV_OK;
}

gov_err_t gov_state_rulepack_index(gov_redis_t *r, const char *tenant, char *errbuf,
                                   size_t errbuf_size) {
    const char *argv[] = {"SADD", gov_state_rulepack_index_key(), tenant};
    return gov_redis_command(r, NULL, 3, argv, NULL, errbuf, errbuf_size);
}
