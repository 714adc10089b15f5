/* constitution_store.c - read the tenant's constitution state; write an
 * accepted one atomically with a compare-and-set on the current checksum.
 *
 * The compare-and-set makes two gov-constitution replicas safe: both may
 * verify against the same state, only the first write lands, the second sees
 * CONFLICT, re-reads and (now comparing against the winner) decides again.
 */
#include "constitution_store.h"

#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"

static gov_redis_script_t write_script = {
    /* KEYS: 1 hash, 2 doc, 3 history, 4 offset
     * ARGV: 1 expected ('' = none), 2 checksum, 3 hash_alg, 4 version,
     *       5 verified_at, 6 signers, 7 source, 8 canonicalization,
     *       9 bundle_event_id, 10 document, 11 offset, 12 history cap */
    "local cur = redis.call('HGET', KEYS[1], 'checksum') or ''\n"
    "if cur ~= ARGV[1] then return {'conflict', cur} end\n"
    "if cur ~= '' then\n"
    "  redis.call('LPUSH', KEYS[3], cur)\n"
    "  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[12]) - 1)\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'checksum', ARGV[2], 'hash_alg', ARGV[3], 'version', ARGV[4],\n"
    "  'verified_at', ARGV[5], 'signers', ARGV[6], 'source', ARGV[7],\n"
    "  'canonicalization', ARGV[8], 'bundle_event_id', ARGV[9])\n"
    "redis.call('SET', KEYS[2], ARGV[10])\n"
    "redis.call('SET', KEYS[4], ARGV[11])\n"
    "return {'ok'}\n",
    {0}};

void constitution_current_clear(constitution_current_t *cur) {
    gov_free(cur->version);
    gov_free(cur->checksum);
    for (size_t i = 0; i < cur->nhistory; i++)
        gov_free(cur->history[i]);
    memset(cur, 0, sizeof *cur);
}

gov_err_t constitution_store_read(gov_redis_t *r, const char *tenant,
                                  constitution_current_t *cur, char *errbuf,
                                  size_t errbuf_size) {
    memset(cur, 0, sizeof *cur);
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_commandf(r, &rep, errbuf, errbuf_size,
                                       "HMGET constitution:{%s} version checksum", tenant);
    if (err != GOV_OK)
        return err;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING) {
        cur->version = gov_strdup(rep->element[0]->str);
        cur->checksum = gov_strdup(rep->element[1]->str);
        if (!cur->version || !cur->checksum)
            err = GOV_ERR_NOMEM;
    }
    freeReplyObject(rep);
    if (err != GOV_OK || cur->version == NULL)
        goto out;
    err = gov_redis_commandf(r, &rep, errbuf, errbuf_size, "LRANGE constitution:{%s}:history 0 %d",
                             tenant, CONSTITUTION_HISTORY_MAX - 1);
    if (err != GOV_OK)
        goto out;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements &&
                       i < CONSTITUTION_HISTORY_MAX; i++) {
        if (rep->element[i]->type != REDIS_REPLY_STRING)
            continue;
        if ((cur->history[cur->nhistory] = gov_strdup(rep->element[i]->str)) == NULL) {
            err = GOV_ERR_NOMEM;
            break;
        }
        cur->nhistory++;
    }
    freeReplyObject(rep);
out:
    if (err != GOV_OK)
        constitution_current_clear(cur);
    return err;
}

void constitution_current_view(const constitution_current_t *cur,
                               gov_constitution_state_t *st) {
    st->version = cur->version;
    st->checksum = cur->checksum;
    st->history = (const char *const *)cur->history;
    st->nhistory = cur->nhistory;
}

gov_err_t constitution_store_write(gov_redis_t *r, const constitution_accepted_t *a,
                                   const char *expected_checksum, const char *offset_key,
                                   long long offset, char *errbuf, size_t errbuf_size) {
    char k_hash[96], k_doc[96], k_hist[96], at[32], off[32], cap[16];
    snprintf(k_hash, sizeof k_hash, "constitution:{%s}", a->tenant);
    snprintf(k_doc, sizeof k_doc, "constitution:{%s}:doc", a->tenant);
    snprintf(k_hist, sizeof k_hist, "constitution:{%s}:history", a->tenant);
    snprintf(at, sizeof at, "%lld", a->verified_at_us);
    snprintf(off, sizeof off, "%lld", offset);
    snprintf(cap, sizeof cap, "%d", CONSTITUTION_HISTORY_MAX);
    const char *argv[] = {k_hash, k_doc, k_hist, offset_key,
                          expected_checksum ? expected_checksum : "", a->checksum, a->hash_alg,
                          a->version, at, a->signers, a->source, a->canonicalization,
                          a->bundle_event_id, a->canonical, off, cap};
    size_t lens[16];
    for (int i = 0; i < 16; i++)
        lens[i] = strlen(argv[i]);
    lens[13] = a->canonical_len;
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_eval(r, &write_script, 4, 16, argv, lens, &rep, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
        rep->element[0]->type == REDIS_REPLY_STRING && strcmp(rep->element[0]->str, "ok") == 0)
        err = GOV_OK;
    else if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
             rep->element[0]->type == REDIS_REPLY_STRING &&
             strcmp(rep->element[0]->str, "conflict") == 0)
        err = GOV_ERR_CONFLICT;
    else {
        snprintf(errbuf, errbuf_size, "unexpected reply from the constitution write script");
        err = GOV_ERR_REDIS;
    }
    freeReplyObject(rep);
    if (err == GOV_OK) {
        /* The tenant index lives outside the tenant's hash slot, so it is a
         * separate (idempotent) command; readers also reconcile from it. */
        err = gov_redis_commandf(r, NULL, errbuf, errbuf_size, "SADD constitution:tenants %s",
                                 a->tenant);
    }
    return err;
}

gov_err_t constitution_store_offset(gov_redis_t *r, const char *offset_key, long long offset,
                                    char *errbuf, size_t errbuf_size) {
    return gov_redis_commandf(r, NULL, errbuf, errbuf_size, "SET %s %lld", offset_key, offset);
}
