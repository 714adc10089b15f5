/* gov_state.c - the key builders, offsets and watermarks, tenant indexes and
 * the reads gov-edge makes (served state, decisions).
 *
 * How: every key is formatted by gov_state_key, gov_state_decision_key or
 * gov_state_offset_key from a table of prefixes and suffixes, into a fixed
 * buffer, after checking the inputs: a tenant id is checked with
 * gov_tenant_valid (so it cannot break out of its {T} hash tag) and an input
 * too long for the buffer is refused, never cut - a truncated key would be
 * another tenant's or nobody's.
 *
 * What it does not do: the per-kind writers with their scripts live in
 * gov_state_constitution.c, gov_state_rulepack.c and gov_state_audit.c.
 */
#include "gov_state.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_rulepack.h"
#include "gov_state_internal.h"

/* prefix{T}suffix, in gov_state_key_t order. */
static const struct {
    const char *prefix, *suffix;
} tenant_keys[] = {
    [GOV_STATE_CONSTITUTION] = {"constitution:", ""},
    [GOV_STATE_CONSTITUTION_DOC] = {"constitution:", ":doc"},
    [GOV_STATE_CONSTITUTION_HISTORY] = {"constitution:", ":history"},
    [GOV_STATE_RULEPACK] = {"policy:rulepack:", ""},
    [GOV_STATE_RULEPACK_META] = {"policy:rulepack:", ":meta"},
    [GOV_STATE_RULEPACK_HISTORY] = {"policy:rulepack:", ":history"},
    [GOV_STATE_AUDIT] = {"audit:", ""},
    [GOV_STATE_AUDIT_HEAD] = {"audit:", ":head"},
    [GOV_STATE_AUDIT_IDS] = {"audit:", ":ids"},
    [GOV_STATE_AUDIT_DECISION_IDS] = {"audit:", ":decision_ids"},
};

/* GOV_OK when s is a tenant id (or a key part with the same syntax). */
static gov_err_t check_id(const char *s) {
    if (s == NULL)
        return GOV_ERR_INVALID_ARG;
    size_t len = strnlen(s, GOV_TENANT_MAX + 1);
    if (len > GOV_TENANT_MAX)
        return GOV_ERR_TOO_LARGE;
    return gov_tenant_valid(s, len) ? GOV_OK : GOV_ERR_INVALID_ARG;
}

/* snprintf into out, refusing (out = "") what does not fit. */
__attribute__((format(printf, 2, 3)))
static gov_err_t format_key(char out[GOV_STATE_KEY_MAX], const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, GOV_STATE_KEY_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= GOV_STATE_KEY_MAX) {
        out[0] = 0;
        return GOV_ERR_TOO_LARGE;
    }
    return GOV_OK;
}

gov_err_t gov_state_key(gov_state_key_t kind, const char *tenant, char out[GOV_STATE_KEY_MAX]) {
    out[0] = 0;
    if ((unsigned)kind >= sizeof tenant_keys / sizeof tenant_keys[0])
        return GOV_ERR_INVALID_ARG;
    gov_err_t err = check_id(tenant);
    if (err != GOV_OK)
        return err;
    return format_key(out, "%s{%s}%s", tenant_keys[kind].prefix, tenant, tenant_keys[kind].suffix);
}

gov_err_t gov_state_decision_key(const char *tenant, const char *decision_id,
                                 char out[GOV_STATE_KEY_MAX]) {
    out[0] = 0;
    gov_err_t err = check_id(tenant);
    if (err == GOV_OK)
        err = check_id(decision_id);
    if (err != GOV_OK)
        return err;
    return format_key(out, "policy:decision:{%s}:%s", tenant, decision_id);
}

static int name_ok(const char *s) {
    return s != NULL && s[0] != 0 && strchr(s, ':') == NULL;
}

gov_err_t gov_state_offset_key(const gov_state_pos_t *pos, char out[GOV_STATE_KEY_MAX]) {
    out[0] = 0;
    gov_err_t err = check_id(pos->tenant);
    if (err != GOV_OK)
        return err;
    if (!name_ok(pos->processor) || !name_ok(pos->topic) || pos->partition < 0)
        return GOV_ERR_INVALID_ARG;
    return format_key(out, "gov:applied:{%s}:%s:%s:%d", pos->tenant, pos->processor, pos->topic,
                      (int)pos->partition);
}

gov_err_t gov_state_watermark_key(const gov_state_pos_t *pos, char out[GOV_STATE_KEY_MAX]) {
    out[0] = 0;
    if (!name_ok(pos->processor) || !name_ok(pos->topic) || pos->partition < 0)
        return GOV_ERR_INVALID_ARG;
    return format_key(out, "gov:offsets:%s:%s:%d", pos->processor, pos->topic,
                      (int)pos->partition);
}

/* Both index sets share the hash tag {tenants}, so one SUNION reads them on
 * a Redis Cluster too (docs/contracts.md "Redis Cluster"). */
const char *gov_state_constitution_index_key(void) {
    return "gov:{tenants}:constitution";
}

const char *gov_state_rulepack_index_key(void) {
    return "gov:{tenants}:rulepack";
}

gov_err_t gov_state_offset_write(gov_redis_t *r, const gov_state_pos_t *pos, char *errbuf,
                                 size_t errbuf_size) {
    char key[GOV_STATE_KEY_MAX], off[32];
    gov_err_t err = gov_state_offset_key(pos, key);
    if (err != GOV_OK) {
        snprintf(errbuf, errbuf_size, "no offset key for %s/%s", pos->processor, pos->topic);
        return err;
    }
    snprintf(off, sizeof off, "%lld", (long long)pos->offset);
    const char *argv[] = {"SET", key, off};
    return gov_redis_command(r, NULL, 3, argv, NULL, errbuf, errbuf_size);
}

/* An offset reply: its value, or -1 for nil or anything that is not a
 * non-negative decimal (Redis is not trusted to hold what we wrote). */
static int64_t offset_of(const redisReply *rep) {
    if (rep->type != REDIS_REPLY_STRING || rep->len == 0 || rep->len > 19)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < rep->len; i++) {
        if (rep->str[i] < '0' || rep->str[i] > '9')
            return -1;
        v = v * 10 + (rep->str[i] - '0');
    }
    return v;
}

gov_err_t gov_state_applied_read(gov_redis_t *r, const gov_state_pos_t *pos, int64_t *applied,
                                 char *errbuf, size_t errbuf_size) {
    char key[GOV_STATE_KEY_MAX];
    *applied = -1;
    gov_err_t err = gov_state_offset_key(pos, key);
    if (err != GOV_OK) {
        snprintf(errbuf, errbuf_size, "no offset key for %s/%s", pos->processor, pos->topic);
        return err;
    }
    const char *get[] = {"GET", key};
    redisReply *rep = NULL;
    if ((err = gov_redis_command(r, &rep, 2, get, NULL, errbuf, errbuf_size)) != GOV_OK)
        return err;
    *applied = offset_of(rep);
    freeReplyObject(rep);
    return GOV_OK;
}

/* One watermark command: GET, or SET ... GET when set_to is given. */
static gov_err_t watermark_command(gov_redis_t *r, const gov_state_pos_t *pos, const char *set_to,
                                   int64_t *value, char *errbuf, size_t errbuf_size) {
    char key[GOV_STATE_KEY_MAX];
    *value = -1;
    gov_err_t err = gov_state_watermark_key(pos, key);
    if (err != GOV_OK) {
        snprintf(errbuf, errbuf_size, "no watermark key for %s/%s", pos->processor, pos->topic);
        return err;
    }
    const char *set[] = {"SET", key, set_to, "GET"}, *get[] = {"GET", key};
    redisReply *rep = NULL;
    err = set_to ? gov_redis_command(r, &rep, 4, set, NULL, errbuf, errbuf_size)
                 : gov_redis_command(r, &rep, 2, get, NULL, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    *value = offset_of(rep);
    freeReplyObject(rep);
    return GOV_OK;
}

gov_err_t gov_state_watermark_swap(gov_redis_t *r, const gov_state_pos_t *pos, int64_t *previous,
                                   char *errbuf, size_t errbuf_size) {
    char off[32];
    snprintf(off, sizeof off, "%lld", (long long)pos->offset);
    return watermark_command(r, pos, off, previous, errbuf, errbuf_size);
}

gov_err_t gov_state_watermark_reset(gov_redis_t *r, const gov_state_pos_t *pos, char *errbuf,
                                    size_t errbuf_size) {
    char key[GOV_STATE_KEY_MAX], off[32];
    gov_err_t err = gov_state_watermark_key(pos, key);
    if (err != GOV_OK) {
        snprintf(errbuf, errbuf_size, "no watermark key for %s/%s", pos->processor, pos->topic);
        return err;
    }
    snprintf(off, sizeof off, "%lld", (long long)pos->offset);
    const char *set[] = {"SET", key, off}, *del[] = {"DEL", key};
    return pos->offset < 0 ? gov_redis_command(r, NULL, 2, del, NULL, errbuf, errbuf_size)
                           : gov_redis_command(r, NULL, 3, set, NULL, errbuf, errbuf_size);
}

gov_err_t gov_state_watermark_read(gov_redis_t *r, const gov_state_pos_t *pos, int64_t *value,
                                   char *errbuf, size_t errbuf_size) {
    return watermark_command(r, pos, NULL, value, errbuf, errbuf_size);
}

gov_err_t gov_state_cas_write(gov_redis_t *r, gov_redis_script_t *script, int argc,
                              const char **argv, const size_t *lens, const char *index_key,
                              const char *tenant, const char *what, char *errbuf,
                              size_t errbuf_size) {
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_eval(r, script, 4, argc, argv, lens, &rep, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    const char *status = rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
                                 rep->element[0]->type == REDIS_REPLY_STRING
                             ? rep->element[0]->str : "";
    if (strcmp(status, "ok") == 0) {
        err = GOV_OK;
    } else if (strcmp(status, "conflict") == 0) {
        err = GOV_ERR_CONFLICT;
    } else {
        snprintf(errbuf, errbuf_size, "unexpected reply from the %s write script", what);
        err = GOV_ERR_REDIS;
    }
    freeReplyObject(rep);
    if (err == GOV_OK) {
        const char *sadd[] = {"SADD", index_key, tenant};
        err = gov_redis_command(r, NULL, 3, sadd, NULL, errbuf, errbuf_size);
    }
    return err;
}

/* --- tenant indexes -------------------------------------------------------- */

/* The index sets of deployments before the {tenants} tag, each beside the
 * key that replaced it.  Only a single-node Redis can hold them: no binary
 * that wrote them could talk to a cluster. */
static const char *const legacy_index[][2] = {
    {"constitution:tenants", "gov:{tenants}:constitution"},
    {"policy:rulepack:tenants", "gov:{tenants}:rulepack"},
};

/* KEYS[1] the legacy set, KEYS[2] its replacement: copies the members over.
 * The legacy set stays (REVIEW14 M3): an older edge restarted during a
 * rolling upgrade still reads it, and a member an older writer adds meanwhile
 * is copied by the next read.  An operator deletes the two legacy sets once
 * no older binary runs (docs/contracts.md, "Redis Cluster"). */
static gov_redis_script_t legacy_index_move_script = {
    .source = "redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[1])\n"
              "return 1\n",
};

/* Copies whatever a legacy index set holds into its {tenants} key: one
 * EXISTS per set, plus one script for a set that exists.  Single node only:
 * no binary that wrote the legacy sets could talk to a cluster, and on a
 * cluster the two keys hash to different slots (a legacy key imported there
 * would make every read fail with CROSSSLOT).  Cost: O(1) round trips,
 * O(tenants) in Redis while a legacy set exists. */
static gov_err_t tenants_migrate(gov_redis_t *r, char *errbuf, size_t errbuf_size) {
    if (gov_redis_is_cluster(r))
        return GOV_OK;
    for (size_t i = 0; i < sizeof legacy_index / sizeof legacy_index[0]; i++) {
        const char *exists[] = {"EXISTS", legacy_index[i][0]};
        redisReply *rep = NULL;
        gov_err_t err = gov_redis_command(r, &rep, 2, exists, NULL, errbuf, errbuf_size);
        if (err != GOV_OK)
            return err;
        int present = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
        freeReplyObject(rep);
        if (!present)
            continue;
        const char *keys[] = {legacy_index[i][0], legacy_index[i][1]};
        err = gov_redis_eval(r, &legacy_index_move_script, 2, 2, keys, NULL, NULL, errbuf,
                             errbuf_size);
        if (err != GOV_OK)
            return err;
    }
    return GOV_OK;
}

gov_err_t gov_state_tenants_read(gov_redis_t *r, gov_state_tenants_t *out, char *errbuf,
                                 size_t errbuf_size) {
    memset(out, 0, sizeof *out);
    gov_err_t merr = tenants_migrate(r, errbuf, errbuf_size);
    if (merr != GOV_OK)
        return merr;
    const char *argv[] = {"SUNION", gov_state_constitution_index_key(),
                          gov_state_rulepack_index_key()};
    redisReply *rep = NULL;
    gov_err_t err = gov_redis_command(r, &rep, 3, argv, NULL, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    out->reply_ = rep;
    out->count = rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
    return GOV_OK;
}

const char *gov_state_tenants_get(const gov_state_tenants_t *t, size_t i, size_t *len) {
    const redisReply *e = t->reply_->element[i];
    if (e->type != REDIS_REPLY_STRING) {
        *len = 0;
        return "";
    }
    *len = e->len;
    return e->str;
}

void gov_state_tenants_clear(gov_state_tenants_t *t) {
    if (t->reply_)
        freeReplyObject(t->reply_);
    memset(t, 0, sizeof *t);
}

/* --- served state (gov-edge) ----------------------------------------------- */

/* Sizes are checked inside Redis, before any value is sent: a value edited
 * to hundreds of megabytes costs the edge one short reply, never the
 * allocation (docs/contracts.md "State size bounds"). */
static gov_redis_script_t served_read_script = {
    /* KEYS: 1 constitution hash, 2 doc, 3 pack, 4 pack meta
     * ARGV: 1 doc max, 2 pack max, 3 field max
     * {'ok', {fields...}, doc, pack, pack signatures}, or
     * {'wrongtype', key, type} / {'too_large', key, size}. */
    "local want = {'hash', 'string', 'string', 'hash'}\n"
    "for i = 1, 4 do\n"
    "  local t = redis.call('TYPE', KEYS[i]).ok\n"
    "  if t ~= 'none' and t ~= want[i] then return {'wrongtype', KEYS[i], t} end\n"
    "end\n"
    "local f = {'checksum', 'hash_alg', 'canonicalization', 'version', 'verified_at',\n"
    "  'signers', 'source', 'signatures', 'previous_checksum', 'replaced_at'}\n"
    "local fmax = tonumber(ARGV[3])\n"
    "for _, n in ipairs(f) do\n"
    "  local l = redis.call('HSTRLEN', KEYS[1], n)\n"
    "  if l > fmax then return {'too_large', KEYS[1] .. ' ' .. n, tostring(l)} end\n"
    "end\n"
    "local l = redis.call('HSTRLEN', KEYS[4], 'signatures')\n"
    "if l > fmax then return {'too_large', KEYS[4] .. ' signatures', tostring(l)} end\n"
    "l = redis.call('STRLEN', KEYS[2])\n"
    "if l > tonumber(ARGV[1]) then return {'too_large', KEYS[2], tostring(l)} end\n"
    "l = redis.call('STRLEN', KEYS[3])\n"
    "if l > tonumber(ARGV[2]) then return {'too_large', KEYS[3], tostring(l)} end\n"
    "return {'ok', redis.call('HMGET', KEYS[1], unpack(f)), redis.call('GET', KEYS[2]),\n"
    "  redis.call('GET', KEYS[3]), redis.call('HGET', KEYS[4], 'signatures')}\n",
    {0}};

static gov_redis_script_t served_same_script = {
    /* KEYS: 1 constitution hash, 2 pack   ARGV: 1 pack max, 2 field max
     * {checksum, pack}, or {'too_large'} / {'wrongtype'}: never the same. */
    "if redis.call('TYPE', KEYS[1]).ok ~= 'hash' and redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  return {'wrongtype'} end\n"
    "if redis.call('TYPE', KEYS[2]).ok ~= 'string' and redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  return {'wrongtype'} end\n"
    "if redis.call('HSTRLEN', KEYS[1], 'checksum') > tonumber(ARGV[2]) or\n"
    "   redis.call('STRLEN', KEYS[2]) > tonumber(ARGV[1]) then return {'too_large'} end\n"
    "return {'ok', redis.call('HGET', KEYS[1], 'checksum'), redis.call('GET', KEYS[2])}\n",
    {0}};

size_t gov_state_served_pack_max(void) {
    return gov_rulepack_limits_default().max_bytes;
}

/* The four keys of what gov-edge serves for tenant. */
static gov_err_t served_keys(const char *tenant, char k[4][GOV_STATE_KEY_MAX]) {
    gov_err_t err;
    if ((err = gov_state_key(GOV_STATE_CONSTITUTION, tenant, k[0])) ||
        (err = gov_state_key(GOV_STATE_CONSTITUTION_DOC, tenant, k[1])) ||
        (err = gov_state_key(GOV_STATE_RULEPACK, tenant, k[2])) ||
        (err = gov_state_key(GOV_STATE_RULEPACK_META, tenant, k[3])))
        return err;
    return GOV_OK;
}

static const char *str_of(const redisReply *e) {
    return e->type == REDIS_REPLY_STRING ? e->str : NULL;
}

gov_err_t gov_state_served_read(gov_redis_t *r, const char *tenant, gov_state_served_t *out,
                                char *errbuf, size_t errbuf_size) {
    memset(out, 0, sizeof *out);
    char k[4][GOV_STATE_KEY_MAX], dmax[24], pmax[24], fmax[24];
    gov_err_t err = served_keys(tenant, k);
    if (err != GOV_OK)
        return err;
    snprintf(dmax, sizeof dmax, "%zu", (size_t)GOV_STATE_DOC_MAX);
    snprintf(pmax, sizeof pmax, "%zu", gov_state_served_pack_max());
    snprintf(fmax, sizeof fmax, "%zu", (size_t)GOV_STATE_FIELD_MAX);
    const char *argv[] = {k[0], k[1], k[2], k[3], dmax, pmax, fmax};
    redisReply *rep = NULL;
    if ((err = gov_redis_eval(r, &served_read_script, 4, 7, argv, NULL, &rep, errbuf,
                              errbuf_size)) != GOV_OK)
        return err;
    out->answered = 1;
    const char *status = rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1
                             ? str_of(rep->element[0]) : NULL;
    if (status && rep->elements == 3 && str_of(rep->element[1]) && str_of(rep->element[2]) &&
        (strcmp(status, "wrongtype") == 0 || strcmp(status, "too_large") == 0)) {
        int big = strcmp(status, "too_large") == 0;
        snprintf(errbuf, errbuf_size, big ? "%s holds %s bytes, beyond its bound"
                                          : "%s is a %s, not what it should be",
                 rep->element[1]->str, rep->element[2]->str);
        freeReplyObject(rep);
        return big ? GOV_ERR_TOO_LARGE : GOV_ERR_REDIS;
    }
    if (status == NULL || strcmp(status, "ok") != 0 || rep->elements != 5 ||
        rep->element[1]->type != REDIS_REPLY_ARRAY || rep->element[1]->elements != 10) {
        snprintf(errbuf, errbuf_size, "unexpected reply reading tenant %s", tenant);
        freeReplyObject(rep);
        return GOV_ERR_REDIS;
    }
    redisReply **h = rep->element[1]->element;
    const redisReply *doc = rep->element[2], *pack = rep->element[3];
    out->reply_ = rep;
    out->checksum = str_of(h[0]);
    out->hash_alg = str_of(h[1]);
    out->canonicalization = str_of(h[2]);
    out->version = str_of(h[3]);
    out->verified_at = str_of(h[4]);
    out->signers = str_of(h[5]);
    out->source = str_of(h[6]);
    out->signatures = str_of(h[7]);
    out->previous_checksum = str_of(h[8]);
    out->replaced_at = str_of(h[9]);
    if (doc->type == REDIS_REPLY_STRING) {
        out->doc = doc->str;
        out->doc_len = doc->len;
    }
    if (pack->type == REDIS_REPLY_STRING) {
        out->pack = pack->str;
        out->pack_len = pack->len;
    }
    out->pack_signatures = str_of(rep->element[4]);
    return GOV_OK;
}

void gov_state_served_clear(gov_state_served_t *s) {
    if (s->reply_)
        freeReplyObject(s->reply_);
    memset(s, 0, sizeof *s);
}

gov_err_t gov_state_served_same(gov_redis_t *r, const char *tenant, const char *checksum,
                                const char *pack_sha256, int *same, char *errbuf,
                                size_t errbuf_size) {
    *same = 1;
    char k[4][GOV_STATE_KEY_MAX], pmax[24], fmax[24];
    gov_err_t err = served_keys(tenant, k);
    if (err != GOV_OK)
        return err;
    snprintf(pmax, sizeof pmax, "%zu", gov_state_served_pack_max());
    snprintf(fmax, sizeof fmax, "%zu", (size_t)GOV_STATE_FIELD_MAX);
    const char *argv[] = {k[0], k[2], pmax, fmax};
    redisReply *rep = NULL;
    if ((err = gov_redis_eval(r, &served_same_script, 2, 4, argv, NULL, &rep, errbuf,
                              errbuf_size)) != GOV_OK)
        return err;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
        /* wrongtype, too_large or a shape we do not know: let the loader
         * read and judge it (and count what it refuses). */
        freeReplyObject(rep);
        *same = 0;
        return GOV_OK;
    }
    const redisReply *cs = rep->element[1], *pk = rep->element[2];
    int same_cs = cs->type == REDIS_REPLY_STRING ? strcmp(cs->str, checksum) == 0 : checksum[0] == 0;
    int same_pack = pack_sha256[0] == 0 && pk->type != REDIS_REPLY_STRING;
    if (pk->type == REDIS_REPLY_STRING) {
        char hex[GOV_SHA256_HEXLEN + 1];
        same_pack = gov_hash_hex(gov_hash_sha256(), pk->str, pk->len, hex) == GOV_OK &&
                    strcmp(hex, pack_sha256) == 0;
    }
    freeReplyObject(rep);
    *same = same_cs && same_pack;
    return GOV_OK;
}

/* --- decisions ------------------------------------------------------------- */

/* A decision record is read only when it is the size gov-audit writes: a
 * record grown by a Redis writer (many fields, a huge value) is an error
 * reply, never sent (finding 6). */
static gov_redis_script_t decision_read_script = {
    /* KEYS: 1 record   ARGV: 1 max fields, 2 max bytes (names and values) */
    "if redis.call('TYPE', KEYS[1]).ok == 'hash' then\n"
    "  if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[1]) then\n"
    "    return redis.error_reply('TOOLARGE decision record has too many fields') end\n"
    "  local total = 0\n"
    "  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
    "    total = total + string.len(f) + redis.call('HSTRLEN', KEYS[1], f)\n"
    "  end\n"
    "  if total > tonumber(ARGV[2]) then\n"
    "    return redis.error_reply('TOOLARGE decision record beyond its bound') end\n"
    "end\n"
    "return redis.call('HGETALL', KEYS[1])\n",
    {0}};

gov_err_t gov_state_decision_read(gov_redis_t *r, const char *tenant, const char *decision_id,
                                  redisReply **fields, char *errbuf, size_t errbuf_size) {
    char key[GOV_STATE_KEY_MAX], nmax[16], fmax[24];
    gov_err_t err = gov_state_decision_key(tenant, decision_id, key);
    if (err != GOV_OK) {
        snprintf(errbuf, errbuf_size, "no decision key for tenant %s", tenant);
        return err;
    }
    snprintf(nmax, sizeof nmax, "%d", GOV_STATE_DECISION_FIELDS_MAX);
    snprintf(fmax, sizeof fmax, "%zu", (size_t)GOV_STATE_DECISION_BYTES_MAX);
    const char *argv[] = {key, nmax, fmax};
    return gov_redis_eval(r, &decision_read_script, 1, 3, argv, NULL, fields, errbuf,
                          errbuf_size);
}
