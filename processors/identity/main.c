/* gov-identity - materializes identity: signing keys and the JWKS, OAuth
 * clients, issued and revoked tokens.
 *
 * Consumes three topics (docs/contracts.md "Identity"):
 *   identity.keys     KeyRotated, key = kid.  The public JWK must be an
 *                     Ed25519 OKP key without a private part, and kid its
 *                     RFC 7638 thumbprint (else poison: invalid_jwk,
 *                     kid_not_thumbprint).  A known kid moves forward only
 *                     (pending -> active -> retiring -> retired; activates_at
 *                     and retires_at never earlier) and keeps what is fixed
 *                     (key_state_backwards, key_changed).  Retired is final:
 *                     a retired kid's permanent tombstone refuses any other
 *                     state for it (key_retired), and an unknown kid whose
 *                     activates_at is older than the longest token lifetime
 *                     at the message's time is a replay (key_stale; the
 *                     time is the broker's append time - a record whose
 *                     timestamp the producer chose is key_stale whenever
 *                     this rule applies); one
 *                     produced under a rotator lease epoch (header
 *                     x-gov-lease-epoch) older than the lease's, or
 *                     without that header once the lease has an epoch
 *                     (but a retirement), is fenced (key_lease_stale).  The JWK is stored
 *                     normalized and identity:{keys}:jwks is rebuilt in the
 *                     same script.
 *   identity.clients  ClientRegistered / ClientRemoved, key = client_id.  Only
 *                     the secret's hash ever arrives; a malformed client is
 *                     poison (invalid_client), a second registration of an id
 *                     with other content is duplicate_id, a registration of a
 *                     removed id is client_removed (removal is final).
 *   identity.tokens   TokenIssued / TokenRevoked, key = tenant: one record per
 *                     jti with a TTL at exp; a revocation is kept until exp even
 *                     when the issue is not (yet) materialized.
 * Only signatures decide (docs/contracts.md, "Signed identity events"):
 * before anything else, a KeyRotated, ClientRegistered or ClientRemoved
 * must carry a threshold of valid signatures by the identity trust file's
 * signers (identity_trust_file, required) over its signed payload
 * (gov_identity_sig); otherwise it is dead-lettered with
 * identity_signature_invalid (the detail names the rule: no_signatures,
 * invalid_signature, untrusted_signer, threshold_not_met, ...), counted in
 * identity_signature_rejections_total, and the state stays as it was.  The
 * signed payload and the signatures are stored with the record, so gov-edge
 * re-verifies what it reads instead of believing Redis.
 * Each accepted change of a key or a client is announced by an AuditEvent on
 * identity.audit (identity.key_<state>, identity.client_registered,
 * identity.client_removed) with an id derived from the input event, so a
 * redelivery re-emits the same event (gov-audit deduplicates); a rebuild of
 * Redis (m->replay) announces nothing.  Offsets are stored only after the
 * state script and the audit event are durable (gov_processor).
 *
 * The key rotator (rotator.c; on when a key store is configured): one
 * gov-identity per Redis, the holder of a lease, produces the KeyRotated of
 * each key transition whose time has come and, every key_rotation_period_s,
 * a rotation (gov_keyrotate, as `govctl keys rotate`), signed with the
 * identity operator key (identity_operator_key_file; without it the rotator
 * is off).  It runs between messages in this same loop; what it produces
 * comes back through it.
 * identity_active_key_age_seconds is refreshed every key_rotator_tick from
 * the materialized keys, so it grows on an idle processor too (and is right
 * after a restart that consumes nothing).
 *
 * What it does not do: sign or issue tokens (gov-edge does), or judge them
 * (gov-edge verifies them against this state).
 *
 * Reads top to bottom: config -> connect -> loop -> shut down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_events.h"
#include "gov_file.h"
#include "gov_identity_sig.h"
#include "gov_keyrotate.h"
#include "gov_log.h"
#include "gov_processor.h"
#include "gov_state_identity.h"
#include "gov_time.h"
#include "jwk.h"
#include "rotator.h"

#define TOPIC_KEYS GOV_TOPIC_IDENTITY_KEYS
#define TOPIC_CLIENTS GOV_TOPIC_IDENTITY_CLIENTS
#define TOPIC_TOKENS GOV_TOPIC_IDENTITY_TOKENS

/* Bounds on a client's lists: what one ClientRegistered may carry. */
#define CLIENT_TENANTS_MAX GOV_EVENTS_CLIENT_LIST_MAX
#define CLIENT_SCOPES_MAX GOV_EVENTS_CLIENT_LIST_MAX
#define SCOPE_TOKEN_MAX GOV_EVENTS_SCOPE_MAX

static const gov_processor_spec_t spec = {
    .name = "gov-identity",
    .default_admin_port = 8703,
    .topics = {{TOPIC_KEYS, GOV_PROCESSOR_SCHEMAS("KeyRotated"), 0},
               {TOPIC_CLIENTS, GOV_PROCESSOR_SCHEMAS("ClientRegistered", "ClientRemoved"), 0},
               {TOPIC_TOKENS, GOV_PROCESSOR_SCHEMAS("TokenIssued", "TokenRevoked"), 1}},
};

typedef struct ctx {
    gov_processor_t *p;
    const gov_trust_t *trust;   /* the identity trust (borrowed) */
    gov_metric_t *m_transitions, *m_key_age, *m_clients, *m_tokens, *m_revoked, *m_sig_refused;
    int64_t newest_active_us;   /* activates_at of the newest active key seen; 0 none */
    int64_t key_age_read_us;    /* when the keys were last read for the gauge (monotonic) */
    int64_t token_lifetime_us;  /* token_ttl_max_s + token_leeway_s: a retired kid's stay */
    int64_t retired_keep_ms;    /* key_retired_keep_s: a swept retired kid's hash kept */
} ctx_t;

static const char *str(json_t *ev, const char *name) {
    return json_string_value(json_object_get(ev, name));
}

static int64_t num(json_t *ev, const char *name) {
    return (int64_t)json_integer_value(json_object_get(ev, name));
}

/* 1 when the Kafka key is exactly s. */
static int key_is(const gov_processor_msg_t *m, const char *s) {
    size_t n = s ? strlen(s) : 0;
    return s && m->kafka->key && m->kafka->key_len == n && memcmp(m->kafka->key, s, n) == 0;
}

/* --- audit ---------------------------------------------------------------------- */

/* Announces a change of identity state with an id derived from the input
 * event (a redelivery re-emits the same event). */
static gov_err_t announce(ctx_t *c, gov_processor_msg_t *m, const char *action,
                          const char *actor, const char *subject, json_t *details, char *eb,
                          size_t ebsize) {
    char id[GOV_UUID_STRLEN + 1];
    const char *event_id = str(m->event, "event_id");
    gov_err_t err = gov_processor_derive_id(c->p, (uint64_t)(num(m->event, "occurred_at") / 1000),
                                            event_id, action, id);
    if (err != GOV_OK)
        return err;
    gov_audit_fields_t af = {
        .tenant = "_system", .component = gov_processor_name(c->p), .actor = actor,
        .action = action, .outcome = "success", .subject = subject,
        .correlation_id = event_id, .details = details, .event_id = id,
    };
    return gov_events_audit(gov_processor_producer(c->p), gov_processor_avro(c->p), &af, eb,
                            ebsize);
}

/* --- signatures ----------------------------------------------------------------- */

/* Checks m's signatures against the identity trust.  GOV_OK with *payload
 * (the signed payload) and *sigs (the signatures as compact JSON), both new
 * (gov_free), for the state write; GOV_ERR_VERIFY with
 * identity_signature_invalid (the rule in eb) when they do not hold;
 * GOV_ERR_NOMEM / GOV_ERR_CRYPTO (retried). */
static gov_err_t verify_signed(ctx_t *c, gov_processor_msg_t *m, char **payload, char **sigs,
                               gov_reason_t *reason, char *eb, size_t ebsize) {
    size_t len = 0;
    gov_sig_count_t sc;
    json_t *arr = json_object_get(m->event, "signatures");
    *payload = *sigs = NULL;
    gov_err_t err = gov_identity_sig_payload(m->type, m->event, payload, &len, eb, ebsize);
    if (err == GOV_ERR_NOMEM)
        return err;
    if (err != GOV_OK) {
        sc.reason = GOV_REASON_IDENTITY_SIGNATURE_INVALID;
        snprintf(sc.detail, sizeof sc.detail, "no signed payload: %.200s", eb);
    } else if ((err = gov_identity_sig_check(c->trust, *payload, len, arr, &sc)) == GOV_OK) {
        if ((*sigs = json_dumps(arr, JSON_COMPACT)) != NULL)
            return GOV_OK;
        err = GOV_ERR_NOMEM;
    }
    gov_free(*payload);
    *payload = NULL;
    if (err != GOV_ERR_VERIFY && err != GOV_ERR_INVALID_ARG && err != GOV_ERR_TOO_LARGE)
        return err;
    if (!m->replay)
        gov_metric_inc(c->m_sig_refused, (const char *[]){m->type, gov_reason_code(sc.reason)}, 1);
    return gov_reason_fail(reason, GOV_REASON_IDENTITY_SIGNATURE_INVALID, GOV_ERR_VERIFY, eb,
                           ebsize, "%s: %s", gov_reason_code(sc.reason), sc.detail);
}

/* --- keys ----------------------------------------------------------------------- */

static void key_age_update(ctx_t *c) {
    if (c->newest_active_us > 0)
        gov_metric_set(c->m_key_age, NULL,
                       (double)(gov_now_micros() - c->newest_active_us) / 1e6);
}

/* Every period_ms, the newest active key's activates_at from what is
 * materialized (a restart, another replica's events, an idle topic), then
 * the gauge.  A failed read keeps what was known. */
static void key_age_refresh(ctx_t *c, long period_ms) {
    int64_t now = gov_mono_micros();
    if (c->key_age_read_us != 0 && now - c->key_age_read_us < (int64_t)period_ms * 1000) {
        key_age_update(c);
        return;
    }
    c->key_age_read_us = now;
    gov_keyrotate_key_t *keys = NULL;
    size_t n = 0;
    gov_reason_t why = GOV_REASON_NONE;
    char eb[256];
    if (gov_keyrotate_keys_load(gov_processor_redis(c->p), NULL, &keys, &n, &why, eb,
                                sizeof eb) == GOV_OK) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(keys[i].state, "active") == 0 && keys[i].activates_at > c->newest_active_us)
                c->newest_active_us = keys[i].activates_at;
        gov_keyrotate_keys_free(keys, n);
    }
    key_age_update(c);
}

/* The producer's rotator lease epoch (header GOV_KEYROTATE_EPOCH_HEADER);
 * 0 when absent or not a positive decimal. */
static int64_t lease_epoch_of(const gov_processor_msg_t *m) {
    char v[24], *end = NULL;
    if (!gov_kafka_msg_header(m->kafka, GOV_KEYROTATE_EPOCH_HEADER, v, sizeof v) || v[0] == 0)
        return 0;
    long long e = strtoll(v, &end, 10);
    return end && *end == 0 && e > 0 ? (int64_t)e : 0;
}

/* Whether the message's Kafka timestamp says when it arrived.  A live
 * message's must be the broker's append time (identity.keys is created
 * with message.timestamp.type=LogAppendTime): a CreateTime is whatever the
 * producer wrote, and a replay of a captured KeyRotated would choose its own
 * age (0 or the original time).  A message replayed to rebuild Redis was
 * judged when it was first applied, so its CreateTime (an older topic's
 * history) still places it in time.  A timestamp of 0 or none is never a
 * time: it does not switch the freshness rule off. */
static int event_time_trusted(const gov_processor_msg_t *m) {
    if (m->kafka->timestamp_ms <= 0)
        return 0;
    return m->replay || gov_kafka_msg_log_append_time(m->kafka);
}

static gov_err_t on_key(ctx_t *c, gov_processor_msg_t *m, const char *payload,
                        const char *sigs, gov_reason_t *reason, char *eb, size_t ebsize) {
    json_t *ev = m->event;
    const char *kid = str(ev, "kid"), *alg = str(ev, "alg"), *backend = str(ev, "backend");
    char norm[IDENTITY_JWK_NORM_MAX];
    if (!key_is(m, kid))
        return gov_reason_fail(reason, GOV_REASON_KEY_MISMATCH, GOV_ERR_VERIFY, eb, ebsize,
                               "the Kafka key is not the event's kid");
    if (!gov_state_identity_kid_valid(kid))
        return gov_reason_fail(reason, GOV_REASON_KID_NOT_THUMBPRINT, GOV_ERR_VERIFY, eb, ebsize,
                               "kid is not 43 base64url characters");
    if (!alg || strcmp(alg, "EdDSA") != 0 || !backend || backend[0] == 0 || strlen(backend) > 32)
        return gov_reason_fail(reason, GOV_REASON_INVALID_JWK, GOV_ERR_VERIFY, eb, ebsize,
                               "alg must be EdDSA and backend a short name");
    gov_err_t err = identity_jwk_check(str(ev, "public_jwk"), kid, norm, sizeof norm, reason, eb,
                                       ebsize);
    if (err != GOV_OK)
        return err;
    json_t *rj = json_object_get(ev, "retires_at");
    gov_state_identity_key_t k = {
        .event_id = str(ev, "event_id"), .kid = kid, .alg = alg, .public_jwk = norm, .backend = backend, .state = str(ev, "state"),
        .previous_kid = str(ev, "previous_kid") ? str(ev, "previous_kid") : "",
        .created_at = num(ev, "created_at"), .activates_at = num(ev, "activates_at"),
        .retires_at = json_is_integer(rj) ? (int64_t)json_integer_value(rj) : -1,
        .signed_payload = payload, .signatures = sigs,
        .token_lifetime_us = c->token_lifetime_us,
        /* the Kafka timestamp, not now: a deployment reading the topic's
         * history judges each key at the time it was published */
        .event_time_us = gov_processor_msg_time_us(m),
        .event_time_untrusted = !event_time_trusted(m),
        .retired_keep_ms = c->retired_keep_ms,
        /* a rebuild re-applies what was applied: no fencing then; a live
         * event without the header is fenced once a lease has an epoch,
         * but for a retirement (`govctl keys retire`, an emergency, takes
         * no lease; retiring only ever removes trust).  The header is not
         * signed: see docs/runbooks/security.md */
        .lease_epoch = m->replay ? 0 : lease_epoch_of(m),
        .lease_epoch_required = !m->replay && !(str(ev, "state") &&
                                                strcmp(str(ev, "state"), "retired") == 0),
    };
    if (k.activates_at < k.created_at || (k.retires_at >= 0 && k.retires_at < k.activates_at))
        return gov_reason_fail(reason, GOV_REASON_INVALID_VALUE, GOV_ERR_VERIFY, eb, ebsize,
                               "activates_at before created_at, or retires_at before activates_at");
    gov_state_pos_t pos = gov_processor_position(c->p, m);
    gov_state_identity_outcome_t outcome;
    char before[GOV_STATE_IDENTITY_STATE_MAX];
    err = gov_state_identity_key_write(gov_processor_redis(c->p), &k, &pos, &outcome, before, eb,
                                       ebsize);
    if (err != GOV_OK)
        return err;
    switch (outcome) {
    case GOV_STATE_IDENTITY_BACKWARDS: *reason = GOV_REASON_KEY_STATE_BACKWARDS; return GOV_ERR_VERIFY;
    case GOV_STATE_IDENTITY_CHANGED: *reason = GOV_REASON_KEY_CHANGED; return GOV_ERR_VERIFY;
    case GOV_STATE_IDENTITY_RETIRED: *reason = GOV_REASON_KEY_RETIRED; return GOV_ERR_VERIFY;
    case GOV_STATE_IDENTITY_STALE: *reason = GOV_REASON_KEY_STALE; return GOV_ERR_VERIFY;
    case GOV_STATE_IDENTITY_FENCED: *reason = GOV_REASON_KEY_LEASE_STALE; return GOV_ERR_VERIFY;
    default: break;
    }
    if (strcmp(k.state, "active") == 0 && k.activates_at > c->newest_active_us)
        c->newest_active_us = k.activates_at;
    key_age_update(c);
    /* announced: a change, or a redelivery of the change (its audit event
     * may not have been acknowledged); a rebuild announces nothing */
    if (m->replay || (outcome != GOV_STATE_IDENTITY_WRITTEN &&
                      outcome != GOV_STATE_IDENTITY_APPLIED))
        return outcome == GOV_STATE_IDENTITY_WRITTEN ? GOV_OK : GOV_ERR_DUPLICATE;
    if (outcome == GOV_STATE_IDENTITY_WRITTEN && strcmp(before, k.state) != 0)
        gov_metric_inc(c->m_transitions, (const char *[]){k.state}, 1);
    char action[48];
    snprintf(action, sizeof action, "identity.key_%s", k.state);
    /* details come from the event alone: a redelivery announces the same
     * content under the same id (gov-audit sees a replay, not a twin) */
    json_t *details = json_pack("{s:s, s:I, s:o, s:s}", "backend", backend, "activates_at",
                                (json_int_t)k.activates_at, "retires_at",
                                k.retires_at >= 0 ? json_integer(k.retires_at) : json_null(),
                                "previous_kid", k.previous_kid);
    if (details == NULL)
        return GOV_ERR_NOMEM;
    err = announce(c, m, action, "gov-identity", kid, details, eb, ebsize);
    json_decref(details);
    if (err != GOV_OK)
        return err;
    return outcome == GOV_STATE_IDENTITY_WRITTEN ? GOV_OK : GOV_ERR_DUPLICATE;
}

/* --- clients -------------------------------------------------------------------- */

/* Joins a string array (each checked by valid, no duplicates) with sep into
 * out.  0 when an item is bad, repeated, the list empty or too long. */
static int join_list(json_t *arr, size_t max, int (*valid)(const char *), char sep, char *out,
                     size_t out_size) {
    size_t n = json_array_size(arr), used = 0;
    out[0] = 0;
    if (!json_is_array(arr) || n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!valid(s))
            return 0;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s, json_string_value(json_array_get(arr, j))) == 0)
                return 0;
        int w = snprintf(out + used, out_size - used, "%s%s", i ? (char[]){sep, 0} : "", s);
        if (w < 0 || (size_t)w >= out_size - used)
            return 0;
        used += (size_t)w;
    }
    return 1;
}

static int tenant_ok(const char *s) {
    return s && gov_tenant_valid(s, strlen(s));
}

static gov_err_t on_client(ctx_t *c, gov_processor_msg_t *m, const char *payload,
                           const char *sigs, gov_reason_t *reason, char *eb, size_t ebsize) {
    json_t *ev = m->event;
    const char *client_id = str(ev, "client_id");
    if (!key_is(m, client_id))
        return gov_reason_fail(reason, GOV_REASON_KEY_MISMATCH, GOV_ERR_VERIFY, eb, ebsize,
                               "the Kafka key is not the event's client_id");
    if (!tenant_ok(client_id))
        return gov_reason_fail(reason, GOV_REASON_INVALID_CLIENT, GOV_ERR_VERIFY, eb, ebsize,
                               "client_id is not an id (letters, digits, '.', '_', '-')");
    gov_state_pos_t pos = gov_processor_position(c->p, m);
    gov_state_identity_outcome_t outcome;
    gov_err_t err;
    json_t *details = NULL;
    const char *action, *actor;
    if (strcmp(m->type, "ClientRemoved") == 0) {
        int existed = 0;
        actor = str(ev, "removed_by");
        action = "identity.client_removed";
        err = gov_state_identity_client_remove(gov_processor_redis(c->p), client_id, actor,
                                               str(ev, "event_id"), gov_processor_msg_time_us(m),
                                               &pos, &outcome, &existed, eb, ebsize);
        if (err != GOV_OK)
            return err;
        if (!existed && outcome == GOV_STATE_IDENTITY_WRITTEN)
            gov_log(GOV_LOG_WARN, "ClientRemoved for a client that is not registered; tombstoned",
                    "client_id", client_id, "source", m->source, (const char *)NULL);
        details = json_object();
    } else {
        char tenants[CLIENT_TENANTS_MAX * (GOV_TENANT_MAX + 1) + 1];
        char scopes[CLIENT_SCOPES_MAX * (SCOPE_TOKEN_MAX + 1) + 1];
        if (!gov_events_secret_hash_valid(str(ev, "secret_hash")) ||
            !join_list(json_object_get(ev, "tenants"), CLIENT_TENANTS_MAX, tenant_ok, ',',
                       tenants, sizeof tenants) ||
            !join_list(json_object_get(ev, "scopes"), CLIENT_SCOPES_MAX, gov_events_scope_token_valid, ' ',
                       scopes, sizeof scopes))
            return gov_reason_fail(reason, GOV_REASON_INVALID_CLIENT, GOV_ERR_VERIFY, eb, ebsize,
                                   "secret_hash is not sha256:<64 hex>, or tenants/scopes are empty, repeated or malformed");
        actor = str(ev, "registered_by");
        action = "identity.client_registered";
        gov_state_identity_client_t cl = {
            .client_id = client_id, .secret_hash = str(ev, "secret_hash"), .tenants = tenants,
            .scopes = scopes, .registered_by = actor, .event_id = str(ev, "event_id"),
            .registered_at = gov_processor_msg_time_us(m),
            .signed_payload = payload, .signatures = sigs,
        };
        err = gov_state_identity_client_add(gov_processor_redis(c->p), &cl, &pos, &outcome, eb,
                                            ebsize);
        if (err != GOV_OK)
            return err;
        if (outcome == GOV_STATE_IDENTITY_CHANGED)
            return gov_reason_fail(reason, GOV_REASON_DUPLICATE_ID, GOV_ERR_VERIFY, eb, ebsize,
                                   "client_id is registered with other content");
        if (outcome == GOV_STATE_IDENTITY_REMOVED)
            return gov_reason_fail(reason, GOV_REASON_CLIENT_REMOVED, GOV_ERR_VERIFY, eb, ebsize,
                                   "client_id was removed; removal is final");
        if (outcome == GOV_STATE_IDENTITY_WRITTEN && !m->replay)
            gov_metric_inc(c->m_clients, NULL, 1);
        details = json_pack("{s:s, s:s}", "tenants", tenants, "scopes", scopes);
    }
    if (details == NULL)
        return GOV_ERR_NOMEM;
    /* a change, or a redelivery of it, is announced (same id, same content) */
    if (!m->replay &&
        (outcome == GOV_STATE_IDENTITY_WRITTEN || outcome == GOV_STATE_IDENTITY_APPLIED))
        err = announce(c, m, action, actor ? actor : "unknown", client_id, details, eb, ebsize);
    json_decref(details);
    if (err != GOV_OK)
        return err;
    return outcome == GOV_STATE_IDENTITY_WRITTEN ? GOV_OK : GOV_ERR_DUPLICATE;
}

/* --- tokens --------------------------------------------------------------------- */

static gov_err_t on_token(ctx_t *c, gov_processor_msg_t *m, gov_reason_t *reason, char *eb,
                          size_t ebsize) {
    json_t *ev = m->event;
    gov_state_pos_t pos = gov_processor_position(c->p, m);
    int64_t applied_before = GOV_STATE_APPLIED_UNKNOWN;
    int revoked = strcmp(m->type, "TokenRevoked") == 0;
    gov_err_t err;
    if (revoked) {
        err = gov_state_identity_token_revoke(gov_processor_redis(c->p), str(ev, "tenant"),
                                              str(ev, "jti"), num(ev, "expires_at"),
                                              num(ev, "occurred_at"), str(ev, "reason"), &pos,
                                              &applied_before, eb, ebsize);
    } else {
        gov_state_identity_token_t t = {
            .tenant = str(ev, "tenant"), .jti = str(ev, "jti"), .sub = str(ev, "sub"),
            .client_id = str(ev, "client_id"), .scope = str(ev, "scope"), .aud = str(ev, "aud"),
            .kid = str(ev, "kid"), .constitution_hash = str(ev, "constitution_hash"),
            .issued_at = num(ev, "issued_at"), .not_before = num(ev, "not_before"),
            .expires_at = num(ev, "expires_at"),
        };
        err = gov_state_identity_token_issue(gov_processor_redis(c->p), &t, &pos, &applied_before,
                                             eb, ebsize);
    }
    if (err == GOV_ERR_INVALID_ARG) {
        *reason = GOV_REASON_UNMATERIALIZABLE;
        return err;
    }
    if (err != GOV_OK)
        return err;
    if (gov_processor_applied(c->p, m, applied_before)) {
        snprintf(eb, ebsize, "tenant's applied offset went back; rebuilding");
        return GOV_ERR_STATE;
    }
    if (!m->replay)
        gov_metric_inc(revoked ? c->m_revoked : c->m_tokens, NULL, 1);
    return GOV_OK;
}

static gov_err_t materialize(void *ctx, gov_processor_t *p, gov_processor_msg_t *m,
                             gov_reason_t *reason, char *eb, size_t ebsize) {
    ctx_t *c = ctx;
    (void)p;
    int keys = strcmp(m->kafka->topic, TOPIC_KEYS) == 0;
    if (!keys && strcmp(m->kafka->topic, TOPIC_CLIENTS) != 0)
        return on_token(c, m, reason, eb, ebsize);
    /* only signatures decide: nothing unsigned reaches the state */
    char *payload = NULL, *sigs = NULL;
    gov_err_t err = verify_signed(c, m, &payload, &sigs, reason, eb, ebsize);
    if (err == GOV_OK)
        err = keys ? on_key(c, m, payload, sigs, reason, eb, ebsize)
                   : on_client(c, m, payload, sigs, reason, eb, ebsize);
    gov_free(payload);
    gov_free(sigs);
    return err;
}

static identity_rotator_config_t rotator_cfg;
static char *identity_trust_file;
static long key_retired_keep_s;
static const gov_config_entry_t extra_rows[] = {
    IDENTITY_ROTATOR_CONFIG_ROWS(&rotator_cfg),
    GOV_CFG_INT("key_retired_keep_s", "2592000", 1, 315360000,
                "seconds a retired key's hash is kept once it left the kid index (a late "
                "event for it is refused as key_state_backwards meanwhile); its tombstone "
                "is permanent either way, so a retired kid never comes back (key_retired)",
                &key_retired_keep_s),
    GOV_CFG_STRING("identity_trust_file", NULL,
                   "identity trust (the rule-pack trust format; signers bound to the scope "
                   "\"identity\", or the single-binding format): every KeyRotated, "
                   "ClientRegistered and ClientRemoved needs its threshold of signatures; "
                   "required by gov-identity and gov-edge",
                   &identity_trust_file),
};

int main(int argc, char **argv) {
    int exit_code;
    gov_processor_t *p;
    identity_rotator_t *rot = NULL;
    gov_trust_t *trust = NULL;
    char teb[512] = "";
    if (gov_processor_init(&p, &spec, extra_rows, sizeof extra_rows / sizeof extra_rows[0], argc,
                           argv, &exit_code) != GOV_OK)
        return exit_code;
    /* no trust, no identity: without it every event would be refused anyway */
    if (gov_file_trust_load(identity_trust_file, &trust, teb, sizeof teb) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "identity trust file cannot be used (set GOV_IDENTITY_TRUST_FILE)",
                "path", identity_trust_file ? identity_trust_file : "(unset)", "error", teb,
                (const char *)NULL);
        gov_processor_shutdown(p);
        return 1;
    }
    gov_metrics_t *mr = gov_processor_metrics(p);
    ctx_t c = {
        .p = p,
        .trust = trust,
        .token_lifetime_us =
            (rotator_cfg.timing.token_ttl_max_s + rotator_cfg.timing.leeway_s) * 1000000LL,
        .retired_keep_ms = key_retired_keep_s * 1000LL,
        .m_transitions = gov_metrics_counter(mr, "identity_key_transitions_total",
            "Signing-key state changes materialized (a KeyRotated that moved a key to this state).",
            1, (const char *[]){"state"}),
        .m_key_age = gov_metrics_gauge(mr, "identity_active_key_age_seconds",
            "Seconds since the newest active signing key's activates_at (refreshed every key_rotator_tick, with or without messages).",
            0, NULL),
        .m_clients = gov_metrics_counter(mr, "identity_clients_registered_total",
            "Clients registered (ClientRegistered materialized).", 0, NULL),
        .m_tokens = gov_metrics_counter(mr, "identity_tokens_materialized_total",
            "TokenIssued events materialized into identity:token:{T}:<jti>.", 0, NULL),
        .m_revoked = gov_metrics_counter(mr, "identity_tokens_revoked_total",
            "TokenRevoked events materialized.", 0, NULL),
        .m_sig_refused = gov_metrics_counter(mr, "identity_signature_rejections_total",
            "Identity events dead-lettered as identity_signature_invalid, by event type and the "
            "signature rule that refused them.",
            2, (const char *[]){"type", "rule"}),
    };
    if (!c.m_transitions || !c.m_key_age || !c.m_clients || !c.m_tokens || !c.m_revoked ||
        !c.m_sig_refused) {
        gov_log(GOV_LOG_ERROR, "out of memory", (const char *)NULL);
        gov_trust_free(trust);
        gov_processor_shutdown(p);
        return 1;
    }
    if (identity_rotator_new(p, &rotator_cfg, trust, &rot) != GOV_OK) {
        gov_trust_free(trust);
        gov_processor_shutdown(p);
        return 1;
    }
    /* gov_processor_run's loop, with the rotator's tick between messages */
    while (gov_processor_running(p)) {
        gov_processor_msg_t m;
        if (gov_processor_next(p, &m) == GOV_OK) {
            char eb[512] = "";
            gov_reason_t reason = GOV_REASON_NONE;
            gov_err_t e = materialize(&c, p, &m, &reason, eb, sizeof eb);
            gov_processor_done(p, &m, e, reason, eb);
        }
        identity_rotator_tick(rot);
        key_age_refresh(&c, rotator_cfg.tick_ms);
    }
    identity_rotator_free(rot);
    exit_code = gov_processor_shutdown(p);
    gov_trust_free(trust);
    return exit_code;
}
