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

const char *gov_state_constitution_index_key(void) {
    return "constitution:tenants";
}

const char *gov_state_rulepack_index_key(void) {
    return "policy:rulepack:tenants";
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

gov_err_t gov_state_tenants_read(gov_redis_t *r, gov_state_tenants_t *out, char *errbuf,
                                 size_t errbuf_size) {
    memset(out, 0, sizeof *out);
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

static const char *hash_field(const redisReply *arr, const char *name) {
    for (size_t i = 0; i + 1 < arr->elements; i += 2)
        if (arr->element[i]->type == REDIS_REPLY_STRING && strcmp(arr->element[i]->str, name) == 0 &&
            arr->element[i + 1]->type == REDIS_REPLY_STRING)
            return arr->element[i + 1]->str;
    return NULL;
}

gov_err_t gov_state_served_read(gov_redis_t *r, const char *tenant, gov_state_served_t *out,
                                char *errbuf, size_t errbuf_size) {
    memset(out, 0, sizeof *out);
    char k_hash[GOV_STATE_KEY_MAX], k_doc[GOV_STATE_KEY_MAX], k_pack[GOV_STATE_KEY_MAX],
        k_meta[GOV_STATE_KEY_MAX];
    gov_err_t err;
    if ((err = gov_state_key(GOV_STATE_CONSTITUTION, tenant, k_hash)) ||
        (err = gov_state_key(GOV_STATE_CONSTITUTION_DOC, tenant, k_doc)) ||
        (err = gov_state_key(GOV_STATE_RULEPACK, tenant, k_pack)) ||
        (err = gov_state_key(GOV_STATE_RULEPACK_META, tenant, k_meta)))
        return err;
    const char *multi[] = {"MULTI"}, *hgetall[] = {"HGETALL", k_hash}, *get[] = {"GET", k_doc},
               *getp[] = {"GET", k_pack}, *hgets[] = {"HGET", k_meta, "signatures"},
               *exec[] = {"EXEC"};
    if ((err = gov_redis_append(r, 1, multi, NULL)) ||
        (err = gov_redis_append(r, 2, hgetall, NULL)) ||
        (err = gov_redis_append(r, 2, get, NULL)) ||
        (err = gov_redis_append(r, 2, getp, NULL)) ||
        (err = gov_redis_append(r, 3, hgets, NULL)) ||
        (err = gov_redis_append(r, 1, exec, NULL)))
        return err;
    redisReply *rep = NULL;
    for (int i = 0; i < 5; i++) {
        if ((err = gov_redis_read(r, &rep, errbuf, errbuf_size)) != GOV_OK)
            return err;
        freeReplyObject(rep);
    }
    if ((err = gov_redis_read(r, &rep, errbuf, errbuf_size)) != GOV_OK)
        return err;
    out->answered = 1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4 ||
        rep->element[0]->type != REDIS_REPLY_ARRAY ||
        rep->element[1]->type == REDIS_REPLY_ERROR || rep->element[2]->type == REDIS_REPLY_ERROR ||
        rep->element[3]->type == REDIS_REPLY_ERROR) {
        const redisReply *bad = rep->type == REDIS_REPLY_ARRAY && rep->elements == 4 ? NULL : rep;
        for (size_t i = 0; bad == NULL && i < 4; i++)
            if (rep->element[i]->type == REDIS_REPLY_ERROR)
                bad = rep->element[i];
        snprintf(errbuf, errbuf_size, "unexpected reply reading tenant %s%s%.*s", tenant,
                 bad && bad->type == REDIS_REPLY_ERROR ? ": " : "",
                 bad && bad->type == REDIS_REPLY_ERROR ? (int)bad->len : 0,
                 bad && bad->type == REDIS_REPLY_ERROR ? bad->str : "");
        freeReplyObject(rep);
        return GOV_ERR_REDIS;
    }
    const redisReply *h = rep->element[0], *doc = rep->element[1], *pack = rep->element[2],
                     *psig = rep->element[3];
    out->reply_ = rep;
    out->checksum = hash_field(h, "checksum");
    out->hash_alg = hash_field(h, "hash_alg");
    out->canonicalization = hash_field(h, "canonicalization");
    out->version = hash_field(h, "version");
    out->verified_at = hash_field(h, "verified_at");
    out->signers = hash_field(h, "signers");
    out->signatures = hash_field(h, "signatures");
    out->source = hash_field(h, "source");
    if (doc->type == REDIS_REPLY_STRING) {
        out->doc = doc->str;
        out->doc_len = doc->len;
    }
    if (pack->type == REDIS_REPLY_STRING) {
        out->pack = pack->str;
        out->pack_len = pack->len;
    }
    if (psig->type == REDIS_REPLY_STRING)
        out->pack_signatures = psig->str;
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
    char k_hash[GOV_STATE_KEY_MAX], k_pack[GOV_STATE_KEY_MAX];
    gov_err_t err;
    if ((err = gov_state_key(GOV_STATE_CONSTITUTION, tenant, k_hash)) ||
        (err = gov_state_key(GOV_STATE_RULEPACK, tenant, k_pack)))
        return err;
    const char *hget[] = {"HGET", k_hash, "checksum"}, *get[] = {"GET", k_pack};
    redisReply *cs = NULL, *pk = NULL;
    if ((err = gov_redis_append(r, 3, hget, NULL)) || (err = gov_redis_append(r, 2, get, NULL)) ||
        (err = gov_redis_read(r, &cs, errbuf, errbuf_size)) ||
        (err = gov_redis_read(r, &pk, errbuf, errbuf_size))) {
        if (cs)
            freeReplyObject(cs);
        return err;
    }
    int same_cs = cs->type == REDIS_REPLY_STRING ? strcmp(cs->str, checksum) == 0 : checksum[0] == 0;
    int same_pack = pack_sha256[0] == 0 && pk->type != REDIS_REPLY_STRING;
    if (pk->type == REDIS_REPLY_STRING) {
        char hex[GOV_SHA256_HEXLEN + 1];
        same_pack = gov_hash_hex(gov_hash_sha256(), pk->str, pk->len, hex) == GOV_OK &&
                    strcmp(hex, pack_sha256) == 0;
    }
    freeReplyObject(cs);
    freeReplyObject(pk);
    *same = same_cs && same_pack;
    return GOV_OK;
}

/* --- decisions ------------------------------------------------------------- */

gov_err_t gov_state_decision_read(gov_redis_t *r, const char *tenant, const char *decision_id,
                                  redisReply **fields, char *errbuf, size_t errbuf_size) {
    char key[GOV_STATE_KEY_MAX];
    gov_err_t err = gov_state_decision_key(tenant, decision_id, key);
    if (err != GOV_OK) {
        snprintf(errbuf, errbuf_size, "no decision key for tenant %s", tenant);
        return err;
    }
    const char *argv[] = {"HGETALL", key};
    return gov_redis_command(r, fields, 2, argv, NULL, errbuf, errbuf_size);
}
