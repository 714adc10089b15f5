/* rotator.c - gov-identity's key rotator.
 *
 * Every tick (key_rotator_tick) the rotator renews a Redis lease,
 * identity:{keys}:rotator (SET NX PX through gov_state_identity; every take
 * increments its epoch), and only the holder acts: it reads the keys gov-identity materialized, produces the
 * KeyRotated of each transition whose time has come (pending -> active at
 * activates_at, retiring -> retired at retires_at), and when the newest key
 * of its store is key_rotation_period_s old, rotates exactly as
 * `govctl keys rotate` does (gov_keyrotate).  A lease rather than "whoever
 * owns partition 0 of identity.keys": it does not depend on how many
 * partitions the topic has or on the consumer group's assignment (a
 * rebalance moves partitions, the lease just expires: 5 ticks, at least
 * 3 s, after its holder stops), and it is per Redis, i.e. per deployment.
 *
 * `govctl keys rotate` takes the lease over (a new epoch) for its own
 * rotation: the rotator checks the lease and its epoch again right before
 * it generates a key, so an operator's rotation and a scheduled one never
 * both publish.  Every KeyRotated it produces carries its lease epoch
 * (header x-gov-lease-epoch): one produced by a holder paused past its
 * lease and materialized after another took it is refused by gov-identity
 * (key_lease_stale); the new holder produces what is still due.
 *
 * Duplicates: the events the rotator produces come back through this very
 * processor, a moment later.  A transition produced twice before the first
 * is materialized is harmless (same content: a replay).  A rotation is not,
 * so after one the rotator waits until the new kid is materialized (at most
 * a minute) before it considers another.
 *
 * Every KeyRotated it produces is signed with the identity operator key
 * (identity_operator_key_file), under the id the identity trust file gives
 * that key: without a key, or with one the trust file does not list, the
 * rotator is off (said once at start-up), since gov-identity itself would
 * dead-letter what it produced (identity_signature_invalid).
 *
 * What it does not do: act on keys its store does not hold (another
 * deployment's, a test's), or create the very first key (an operator's
 * `govctl keys rotate --activate-in 0`; deploy/stack.sh does it).
 */
#include "rotator.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_identity_sig.h"
#include "gov_log.h"
#include "gov_time.h"

#define COMPONENT "key_rotator"
#define AWAIT_MAX_US (60LL * 1000000)

struct identity_rotator {
    gov_processor_t *p;
    identity_rotator_config_t cfg;   /* strings borrowed from the config table */
    gov_keystore_t *ks;
    gov_signer_t *op_key;                      /* the identity operator key */
    char op_id[GOV_SIGNER_ID_MAX + 1];         /* its id in the identity trust */
    gov_events_signer_t op_signer;
    gov_keyrotate_signers_t op;
    gov_metric_t *m_rotations;
    char owner[256];
    long lease_ms;
    int64_t next_tick_us;
    int held;                                  /* the lease, at the last tick */
    int64_t epoch;                             /* its epoch when held */
    char awaiting_kid[GOV_SIGNER_KID_SIZE];    /* a rotation's new kid not yet seen */
    int64_t awaiting_since_us;
};

/* Loads the operator key and finds its id in the trust.  GOV_OK with
 * r->op set, or an error logged. */
static gov_err_t operator_open(identity_rotator_t *r, const gov_trust_t *trust) {
    char eb[512] = "";
    gov_reason_t why = GOV_REASON_NONE;
    gov_err_t err = gov_events_operator_key_load(r->cfg.operator_key_file, &r->op_key, &why, eb,
                                                 sizeof eb);
    if (err != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "identity operator key cannot be used", "path",
                r->cfg.operator_key_file, "reason", gov_reason_code(why), "detail", eb,
                (const char *)NULL);
        return err;
    }
    if (gov_trust_signer_of(trust, gov_signer_public_key(r->op_key), r->op_id) != 0) {
        gov_log(GOV_LOG_ERROR,
                "the identity operator key is not a signer of the identity trust file: what it "
                "signed would be refused (add its public key to identity_trust_file)",
                "path", r->cfg.operator_key_file, (const char *)NULL);
        return GOV_ERR_CONFIG;
    }
    r->op_signer = (gov_events_signer_t){.signer_id = r->op_id, .signer = r->op_key};
    r->op = (gov_keyrotate_signers_t){.signers = &r->op_signer, .n = 1};
    return GOV_OK;
}

gov_err_t identity_rotator_new(gov_processor_t *p, const identity_rotator_config_t *cfg,
                               const gov_trust_t *trust, identity_rotator_t **out) {
    char eb[512] = "", host[128] = "";
    gov_reason_t why = GOV_REASON_NONE;
    *out = NULL;
    if (cfg->ks.backend == GOV_KEYSTORE_FILE && cfg->ks.key_dir == NULL) {
        gov_log(GOV_LOG_INFO, "no key store configured (signer_key_dir): key rotator off",
                (const char *)NULL);
        return GOV_OK;
    }
    if (cfg->operator_key_file == NULL) {
        gov_log(GOV_LOG_WARN,
                "no identity operator key (identity_operator_key_file): key rotator off - no "
                "scheduled rotation and no key transitions are produced by this process",
                (const char *)NULL);
        return GOV_OK;
    }
    identity_rotator_t *r = gov_calloc(1, sizeof *r);
    if (r == NULL)
        return GOV_ERR_NOMEM;
    r->p = p;
    r->cfg = *cfg;
    gov_err_t err = operator_open(r, trust);
    if (err != GOV_OK) {
        identity_rotator_free(r);
        return err;
    }
    err = gov_keystore_open(&cfg->ks, &r->ks, &why, eb, sizeof eb);
    if (err != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "key store", "reason", gov_reason_code(why), "detail", eb,
                (const char *)NULL);
        identity_rotator_free(r);
        return err;
    }
    r->m_rotations = gov_metrics_counter(gov_processor_metrics(p), "identity_key_rotations_total",
        "Key rotations this process performed (scheduled; a new key generated and published).",
        0, NULL);
    if (r->m_rotations == NULL ||
        gov_status_register(gov_processor_status(p), COMPONENT) != GOV_OK) {
        identity_rotator_free(r);
        return GOV_ERR_NOMEM;
    }
    char id[GOV_UUID_STRLEN + 1] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "unknown");
    if (gov_uuid_v7(id) != GOV_OK)
        snprintf(id, sizeof id, "no-uuid");
    /* unique per process: a restarted instance waits out its own old lease
     * only if another instance did not take it meanwhile */
    snprintf(r->owner, sizeof r->owner, "%.64s/%.64s/%ld/%s", gov_processor_name(p), host,
             (long)getpid(), id);
    r->lease_ms = cfg->tick_ms * 5 < 3000 ? 3000 : cfg->tick_ms * 5;
    gov_status_set(gov_processor_status(p), COMPONENT, GOV_STATUS_OK, "waiting for the first tick",
                   gov_keystore_backend(r->ks));
    gov_log(GOV_LOG_INFO, "key rotator on", "backend", gov_keystore_backend(r->ks), "owner",
            r->owner, "operator", r->op_id, (const char *)NULL);
    *out = r;
    return GOV_OK;
}

void identity_rotator_free(identity_rotator_t *r) {
    if (r == NULL)
        return;
    gov_keystore_free(r->ks);
    gov_signer_free(r->op_key);
    gov_free(r);
}

static int kid_seen(const gov_keyrotate_key_t *keys, size_t n, const char *kid) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].kid, kid) == 0)
            return 1;
    return 0;
}

static void failed(identity_rotator_t *r, const char *what, gov_reason_t why, const char *eb) {
    char detail[600];
    snprintf(detail, sizeof detail, "%s: %s: %s", what, gov_reason_code(why), eb);
    gov_status_set(gov_processor_status(r->p), COMPONENT, GOV_STATUS_DEGRADED, detail, NULL);
    gov_log(GOV_LOG_ERROR, "key rotator", "step", what, "reason", gov_reason_code(why), "detail",
            eb, (const char *)NULL);
}

void identity_rotator_tick(identity_rotator_t *r) {
    if (r == NULL)
        return;
    int64_t now = gov_now_micros();
    if (now < r->next_tick_us)
        return;
    r->next_tick_us = now + (int64_t)r->cfg.tick_ms * 1000;
    char eb[512] = "";
    gov_reason_t why = GOV_REASON_NONE;
    gov_redis_t *redis = gov_processor_redis(r->p);
    gov_keyrotate_key_t *keys = NULL;
    size_t n = 0;
    int held = 0;
    int64_t epoch = 0;
    if (gov_state_identity_rotator_lease(redis, r->owner, r->lease_ms, &held, &epoch, eb,
                                         sizeof eb) != GOV_OK) {
        failed(r, "lease", GOV_REASON_REDIS_UNAVAILABLE, eb);
        return;
    }
    if (held != r->held || (held && epoch != r->epoch)) {
        char ep[24];
        snprintf(ep, sizeof ep, "%lld", (long long)epoch);
        gov_log(GOV_LOG_INFO, held ? "key rotator lease taken" : "key rotator lease held elsewhere",
                "owner", r->owner, "epoch", ep, (const char *)NULL);
    }
    r->held = held;
    r->epoch = epoch;
    r->op.lease_epoch = epoch;   /* every event of this tick carries it */
    if (!held) {
        gov_status_set(gov_processor_status(r->p), COMPONENT, GOV_STATUS_OK,
                       "standby: another gov-identity holds the rotator lease", NULL);
        return;
    }
    if (gov_keyrotate_keys_load(redis, r->ks, &keys, &n, &why, eb, sizeof eb) != GOV_OK) {
        failed(r, "read keys", why, eb);
        return;
    }
    int produced = 0;
    if (gov_keyrotate_transitions(gov_processor_producer(r->p), gov_processor_avro(r->p), &r->op,
                                  keys, n, now, &produced, &why, eb, sizeof eb) != GOV_OK) {
        failed(r, "transition", why, eb);
        goto out;
    }
    if (r->awaiting_kid[0] &&
        (kid_seen(keys, n, r->awaiting_kid) || now - r->awaiting_since_us > AWAIT_MAX_US))
        r->awaiting_kid[0] = 0;
    if (r->awaiting_kid[0] == 0 && gov_keyrotate_due(keys, n, r->cfg.period_s, now)) {
        gov_keyrotate_result_t res;
        /* the lease again, right before generating: an operator's `govctl
         * keys rotate` takes it over (a new epoch), and then this rotation
         * is theirs, not ours - two would publish two new keys */
        if (gov_state_identity_rotator_lease(redis, r->owner, r->lease_ms, &held, &epoch, eb,
                                             sizeof eb) != GOV_OK ||
            !held || epoch != r->epoch) {
            gov_log(GOV_LOG_INFO, "key rotator lease lost before a rotation: not rotating",
                    "owner", r->owner, (const char *)NULL);
            r->held = 0;
            goto out;
        }
        if (gov_keyrotate_rotate(r->ks, gov_processor_producer(r->p), gov_processor_avro(r->p),
                                 &r->op, &r->cfg.timing, keys, n, now, -1, &res, &why, eb,
                                 sizeof eb) != GOV_OK) {
            failed(r, "rotate", why, eb);
            goto out;
        }
        gov_metric_inc(r->m_rotations, NULL, 1);
        snprintf(r->awaiting_kid, sizeof r->awaiting_kid, "%s", res.kid);
        r->awaiting_since_us = now;
        char act[24], ret[24];
        snprintf(act, sizeof act, "%lld", (long long)res.activates_at);
        snprintf(ret, sizeof ret, "%lld", (long long)res.retires_at);
        gov_log(GOV_LOG_INFO, "scheduled key rotation", "kid", res.kid, "activates_at", act,
                "previous_kid", res.previous_kid, "retires_at", ret, (const char *)NULL);
    }
    gov_status_set(gov_processor_status(r->p), COMPONENT, GOV_STATUS_OK, "lease held",
                   gov_keystore_backend(r->ks));
out:
    gov_keyrotate_keys_free(keys, n);
}
