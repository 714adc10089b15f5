/* gov_state_constitution.c - read a tenant's constitution state; write an
 * accepted one atomically with a compare-and-set on the current checksum.
 *
 * A replay must be silent (no second ConstitutionUpdated, no second
 * accepted audit event), yet a crash between the write and the events'
 * acknowledgement must not leave them unsent: the field `announced` records
 * the checksum whose events Kafka acknowledged, so a replay re-emits only
 * what was never announced.
 *
 * The compare-and-set makes two gov-constitution replicas safe: both may
 * verify against the same state, only the first write lands, the second sees
 * CONFLICT, re-reads and (now comparing against the winner) decides again.
 * The offset is written by the same script, so a crash never leaves the
 * state written and the offset behind (or the reverse).
 *
 * What it does not do: verify.  gov_constitution_verify judges; this stores.
 */
#include "gov_state.h"

#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_state_internal.h"

static gov_redis_script_t write_script = {
    /* KEYS: 1 hash, 2 doc, 3 history, 4 offset
     * ARGV: 1 expected ('' = none), 2 checksum, 3 hash_alg, 4 version,
     *       5 verified_at, 6 signers, 7 source, 8 canonicalization,
     *       9 bundle_event_id, 10 document, 11 offset, 12 history cap,
     *       13 signatures (compact JSON) */
    "local cur = redis.call('HGET', KEYS[1], 'checksum') or ''\n"
    "if cur ~= ARGV[1] then return {'conflict', cur} end\n"
    "if cur ~= '' then\n"
    "  redis.call('LPUSH', KEYS[3], cur)\n"
    "  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[12]) - 1)\n"
    /* the replacement, for the token grace every edge computes alike */
    "  redis.call('HSET', KEYS[1], 'previous_checksum', cur, 'replaced_at', ARGV[5])\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'checksum', ARGV[2], 'hash_alg', ARGV[3], 'version', ARGV[4],\n"
    "  'verified_at', ARGV[5], 'signers', ARGV[6], 'source', ARGV[7],\n"
    "  'canonicalization', ARGV[8], 'bundle_event_id', ARGV[9], 'signatures', ARGV[13])\n"
    "redis.call('SET', KEYS[2], ARGV[10])\n"
    "redis.call('SET', KEYS[4], ARGV[11])\n"
    "return {'ok'}\n",
    {0}};

static gov_redis_script_t announce_script = {
    /* KEYS: 1 hash; ARGV: 1 checksum */
    "if redis.call('HGET', KEYS[1], 'checksum') == ARGV[1] then\n"
    "  redis.call('HSET', KEYS[1], 'announced', ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "return 0\n",
    {0}};

static gov_redis_script_t add_signatures_script = {
    /* KEYS: 1 hash; ARGV: 1 checksum, 2 signatures */
    "if redis.call('HGET', KEYS[1], 'checksum') == ARGV[1] and\n"
    "   redis.call('HEXISTS', KEYS[1], 'signatures') == 0 then\n"
    "  redis.call('HSET', KEYS[1], 'signatures', ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n",
    {0}};

void gov_state_constitution_clear(gov_state_constitution_t *cur) {
    gov_free(cur->version);
    gov_free(cur->checksum);
    gov_free(cur->hash_alg);
    gov_free(cur->canonicalization);
    gov_free(cur->signatures);
    for (size_t i = 0; i < cur->nhistory; i++)
        gov_free(cur->history[i]);
    gov_free(cur->document);
    memset(cur, 0, sizeof *cur);
}

gov_err_t gov_state_constitution_read(gov_redis_t *r, const char *tenant,
                                      gov_state_constitution_t *cur, char *errbuf,
                                      size_t errbuf_size) {
    memset(cur, 0, sizeof *cur);
    char k_hash[GOV_STATE_KEY_MAX], k_hist[GOV_STATE_KEY_MAX], k_doc[GOV_STATE_KEY_MAX], last[16];
    gov_err_t err;
    if ((err = gov_state_key(GOV_STATE_CONSTITUTION, tenant, k_hash)) != GOV_OK ||
        (err = gov_state_key(GOV_STATE_CONSTITUTION_DOC, tenant, k_doc)) != GOV_OK ||
        (err = gov_state_key(GOV_STATE_CONSTITUTION_HISTORY, tenant, k_hist)) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "not a tenant id");
        return err;
    }
    redisReply *rep = NULL;
    /* Every field is bounded before it is sent (finding 6: Redis values are
     * not trusted to be small): an oversized field reads as absent, which
     * the re-verification then refuses. */
    static gov_redis_script_t fields_script = {
        "local f = {'version', 'checksum', 'signatures', 'announced', 'hash_alg',\n"
        "  'canonicalization'}\n"
        "local out = {}\n"
        "for i, n in ipairs(f) do\n"
        "  if redis.call('HSTRLEN', KEYS[1], n) <= tonumber(ARGV[1]) then\n"
        "    out[i] = redis.call('HGET', KEYS[1], n)\n"
        "  else out[i] = false end\n"
        "end\n"
        "return out\n",
        {0}};
    char fmax[24];
    snprintf(fmax, sizeof fmax, "%zu", (size_t)GOV_STATE_FIELD_MAX);
    const char *fargv[] = {k_hash, fmax};
    if ((err = gov_redis_eval(r, &fields_script, 1, 2, fargv, NULL, &rep, errbuf,
                              errbuf_size)) != GOV_OK)
        return err;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 6 &&
        rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING) {
        cur->version = gov_strdup(rep->element[0]->str);
        cur->checksum = gov_strdup(rep->element[1]->str);
        cur->has_signatures = rep->element[2]->type == REDIS_REPLY_STRING;
        if (cur->has_signatures && (cur->signatures = gov_strdup(rep->element[2]->str)) == NULL)
            err = GOV_ERR_NOMEM;
        cur->announced = rep->element[3]->type == REDIS_REPLY_STRING &&
                         strcmp(rep->element[3]->str, rep->element[1]->str) == 0;
        if (rep->element[4]->type == REDIS_REPLY_STRING &&
            (cur->hash_alg = gov_strdup(rep->element[4]->str)) == NULL)
            err = GOV_ERR_NOMEM;
        if (rep->element[5]->type == REDIS_REPLY_STRING &&
            (cur->canonicalization = gov_strdup(rep->element[5]->str)) == NULL)
            err = GOV_ERR_NOMEM;
        if (!cur->version || !cur->checksum)
            err = GOV_ERR_NOMEM;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        err = GOV_ERR_REDIS;
    }
    freeReplyObject(rep);
    if (err != GOV_OK || cur->version == NULL)
        goto out;
    snprintf(last, sizeof last, "%d", GOV_STATE_CONSTITUTION_HISTORY_MAX - 1);
    const char *lrange[] = {"LRANGE", k_hist, "0", last};
    if ((err = gov_redis_command(r, &rep, 4, lrange, NULL, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements &&
                       i < GOV_STATE_CONSTITUTION_HISTORY_MAX; i++) {
        if (rep->element[i]->type != REDIS_REPLY_STRING)
            continue;
        if ((cur->history[cur->nhistory] = gov_strdup(rep->element[i]->str)) == NULL) {
            err = GOV_ERR_NOMEM;
            break;
        }
        cur->nhistory++;
    }
    freeReplyObject(rep);
    if (err != GOV_OK)
        goto out;
    /* At most one byte past the bound is read: a longer document is not
     * fetched (it is refused as unverifiable by the caller). */
    char last_byte[24];
    snprintf(last_byte, sizeof last_byte, "%zu", (size_t)GOV_STATE_DOC_MAX);
    const char *get[] = {"GETRANGE", k_doc, "0", last_byte};
    if ((err = gov_redis_command(r, &rep, 4, get, NULL, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    if (rep->type == REDIS_REPLY_STRING && rep->len > GOV_STATE_DOC_MAX) {
        cur->document_too_large = 1;
    } else if (rep->type == REDIS_REPLY_STRING && rep->len > 0) {
        if ((cur->document = gov_malloc(rep->len + 1)) == NULL) {
            err = GOV_ERR_NOMEM;
        } else {
            memcpy(cur->document, rep->str, rep->len);
            cur->document[rep->len] = '\0';
            cur->document_len = rep->len;
        }
    }
    freeReplyObject(rep);
out:
    if (err != GOV_OK)
        gov_state_constitution_clear(cur);
    return err;
}

gov_err_t gov_state_constitution_reverify(const gov_trust_t *trust, const char *tenant,
                                          const char *doc, size_t doc_len,
                                          const char *canonicalization, const char *hash_alg,
                                          const char *checksum, const char *signatures,
                                          gov_verdict_t *v) {
    gov_bundle_sig_t sigs[GOV_MAX_SIGNATURES + 1];
    size_t nsigs = 0;
    memset(v, 0, sizeof *v);
    json_t *arr = signatures ? json_loads(signatures, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_array(arr) || doc == NULL || checksum == NULL) {
        json_decref(arr);
        v->outcome = GOV_VERIFY_REJECT;
        v->reason = GOV_REASON_NO_SIGNATURES;
        snprintf(v->detail, sizeof v->detail,
                 doc && checksum ? "no readable signatures stored with the document"
                                 : "no stored document or checksum");
        return GOV_OK;
    }
    /* One past the limit is enough for too_many_signatures. */
    for (size_t i = 0; i < json_array_size(arr) && nsigs <= GOV_MAX_SIGNATURES; i++) {
        json_t *sg = json_array_get(arr, i);
        sigs[nsigs++] = (gov_bundle_sig_t){json_string_value(json_object_get(sg, "signer_id")),
                                           json_string_value(json_object_get(sg, "algorithm")),
                                           json_string_value(json_object_get(sg, "signature"))};
    }
    gov_bundle_in_t in = {tenant, doc, doc_len, canonicalization, hash_alg, checksum, sigs, nsigs};
    gov_err_t err = gov_constitution_verify(&in, trust, NULL, v);
    json_decref(arr);
    return err;
}

void gov_state_constitution_view(const gov_state_constitution_t *cur,
                                 gov_constitution_state_t *st) {
    st->version = cur->version;
    st->checksum = cur->checksum;
    st->history = (const char *const *)cur->history;
    st->nhistory = cur->nhistory;
    st->document_json = cur->document;
    st->document_len = cur->document_len;
}

gov_err_t gov_state_constitution_write(gov_redis_t *r, const gov_state_constitution_accepted_t *a,
                                       const char *expected_checksum, const gov_state_pos_t *pos,
                                       char *errbuf, size_t errbuf_size) {
    char k_hash[GOV_STATE_KEY_MAX], k_doc[GOV_STATE_KEY_MAX], k_hist[GOV_STATE_KEY_MAX],
        k_off[GOV_STATE_KEY_MAX], at[32], off[32], cap[16];
    gov_err_t err;
    gov_state_pos_t tpos = *pos;
    tpos.tenant = a->tenant; /* the applied offset lives in the tenant's slot */
    if ((err = gov_state_key(GOV_STATE_CONSTITUTION, a->tenant, k_hash)) != GOV_OK ||
        (err = gov_state_key(GOV_STATE_CONSTITUTION_DOC, a->tenant, k_doc)) != GOV_OK ||
        (err = gov_state_key(GOV_STATE_CONSTITUTION_HISTORY, a->tenant, k_hist)) != GOV_OK ||
        (err = gov_state_offset_key(&tpos, k_off)) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "no state keys for tenant %s", a->tenant);
        return err;
    }
    snprintf(at, sizeof at, "%lld", a->verified_at_us);
    snprintf(off, sizeof off, "%lld", (long long)pos->offset);
    snprintf(cap, sizeof cap, "%d", GOV_STATE_CONSTITUTION_HISTORY_MAX);
    const char *argv[] = {k_hash, k_doc, k_hist, k_off,
                          expected_checksum ? expected_checksum : "", a->checksum, a->hash_alg,
                          a->version, at, a->signers, a->source, a->canonicalization,
                          a->bundle_event_id, a->canonical, off, cap, a->signatures};
    enum { NARGS = sizeof argv / sizeof argv[0] };
    size_t lens[NARGS];
    for (size_t i = 0; i < NARGS; i++)
        lens[i] = strlen(argv[i]);
    lens[13] = a->canonical_len;
    return gov_state_cas_write(r, &write_script, NARGS, argv, lens,
                               gov_state_constitution_index_key(), a->tenant, "constitution",
                               errbuf, errbuf_size);
}

gov_err_t gov_state_constitution_add_signatures(gov_redis_t *r, const char *tenant,
                                                const char *checksum, const char *signatures,
                                                char *errbuf, size_t errbuf_size) {
    char k_hash[GOV_STATE_KEY_MAX];
    if (gov_state_key(GOV_STATE_CONSTITUTION, tenant, k_hash) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "not a tenant id");
        return GOV_ERR_INVALID_ARG;
    }
    const char *argv[] = {k_hash, checksum, signatures};
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_eval(r, &add_signatures_script, 1, 3, argv, NULL, &rep, errbuf,
                                   errbuf_size);
    if (rep)
        freeReplyObject(rep);
    return err;
}

gov_err_t gov_state_constitution_announced(gov_redis_t *r, const char *tenant,
                                           const char *checksum, char *errbuf,
                                           size_t errbuf_size) {
    char k_hash[GOV_STATE_KEY_MAX];
    if (gov_state_key(GOV_STATE_CONSTITUTION, tenant, k_hash) != GOV_OK) {
        snprintf(errbuf, errbuf_size, "not a tenant id");
        return GOV_ERR_INVALID_ARG;
    }
    const char *argv[] = {k_hash, checksum};
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_eval(r, &announce_script, 1, 2, argv, NULL, &rep, errbuf,
                                   errbuf_size);
    if (rep)
        freeReplyObject(rep);
    return err;
}

gov_err_t gov_state_constitution_index(gov_redis_t *r, const char *tenant, char *errbuf,
                                       size_t errbuf_size) {
    const char *argv[] = {"SADD", gov_state_constitution_index_key(), tenant};
    return gov_redis_command(r, NULL, 3, argv, NULL, errbuf, errbuf_size);
}
