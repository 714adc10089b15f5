/* gov_state_check.c - finds which of a tenant's keys has the wrong Redis
 * type, so an operator is told the key, not only that a script failed.
 *
 * A tenant's script that meets a key of the wrong type (someone ran
 * `SET audit:{T}:ids x`) fails with WRONGTYPE and no key name.  The
 * processor then cannot apply that tenant's message and, to lose nothing,
 * retries it and holds the partition; this module names the culprit by
 * asking TYPE of each key the tenant's scripts write, against the type
 * docs/contracts.md gives it.
 *
 * Cost: one TYPE per key kind (a dozen round trips); called only when a
 * write failed with a data error, which is backed off anyway.
 *
 * What it does not do: repair anything - deleting or renaming the key is an
 * operator's decision (docs/runbooks/security.md).
 */
#include "gov_state.h"

#include <stdio.h>
#include <string.h>

typedef struct typed_key {
    gov_state_key_t kind;
    const char *suffix;   /* appended to the kind's key ("" for none) */
    const char *type;     /* what TYPE must answer */
} typed_key_t;

static const typed_key_t tenant_keys[] = {
    {GOV_STATE_CONSTITUTION, "", "hash"},
    {GOV_STATE_CONSTITUTION_DOC, "", "string"},
    {GOV_STATE_CONSTITUTION_HISTORY, "", "list"},
    {GOV_STATE_RULEPACK, "", "string"},
    {GOV_STATE_RULEPACK_META, "", "hash"},
    {GOV_STATE_RULEPACK_HISTORY, "", "list"},
    {GOV_STATE_AUDIT, "", "stream"},
    {GOV_STATE_AUDIT_HEAD, "", "hash"},
    {GOV_STATE_AUDIT_IDS, "", "hash"},
    {GOV_STATE_AUDIT_IDS, ":age", "zset"},
    {GOV_STATE_AUDIT, ":relay", "hash"},
    {GOV_STATE_AUDIT_DECISION_IDS, "", "hash"},
    {GOV_STATE_AUDIT_DECISION_IDS, ":age", "zset"},
};

gov_err_t gov_state_wrong_type_key(gov_redis_t *r, const char *tenant, char *key, size_t key_size,
                                   char *type, size_t type_size, char *errbuf,
                                   size_t errbuf_size) {
    key[0] = 0;
    type[0] = 0;
    for (size_t i = 0; i < sizeof tenant_keys / sizeof tenant_keys[0]; i++) {
        char base[GOV_STATE_KEY_MAX], full[GOV_STATE_KEY_MAX + 8];
        gov_err_t err = gov_state_key(tenant_keys[i].kind, tenant, base);
        if (err != GOV_OK) {
            snprintf(errbuf, errbuf_size, "not a tenant id");
            return err;
        }
        snprintf(full, sizeof full, "%s%s", base, tenant_keys[i].suffix);
        const char *argv[] = {"TYPE", full};
        redisReply *rep = NULL;
        if ((err = gov_redis_command(r, &rep, 2, argv, NULL, errbuf, errbuf_size)) != GOV_OK)
            return err;
        const char *got = rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_STRING
                              ? rep->str : "none";
        int wrong = strcmp(got, "none") != 0 && strcmp(got, tenant_keys[i].type) != 0;
        if (wrong) {
            snprintf(key, key_size, "%s", full);
            snprintf(type, type_size, "%s (want %s)", got, tenant_keys[i].type);
        }
        freeReplyObject(rep);
        if (wrong)
            return GOV_OK;
    }
    return GOV_OK;
}
