/* loader.c - keeps the edge's snapshot in step with Redis.
 *
 * One thread, one Redis connection, one Kafka consumer.  It:
 *   1. subscribes to constitution.updated and policy.rulepacks.updated with
 *      a group of its own (every edge replica must see every event; nothing
 *      is committed - the state of record is Redis, not the topic); each
 *      assigned partition starts at its end, fixed at assignment (on_assign),
 *      and Redis is reconciled right after it, so an update is either seen
 *      by that reconcile or consumed from the topic, never lost;
 *   2. loads every tenant listed in constitution:tenants or
 *      policy:rulepack:tenants (constitution and pack together), then marks the
 *      state loaded (until then the edge answers 503, never a guess);
 *   3. on ConstitutionUpdated or RulePackUpdated compares that tenant in
 *      Redis with what it serves and reloads it when it differs: both are
 *      produced by their processor AFTER the state is materialized, so the
 *      reload finds it, whenever the processor got to it (restarted, busy) -
 *      no edge lags Redis beyond the propagation time.  Events are drained
 *      in bursts and each tenant is compared once per burst, so a replayed
 *      flood costs comparisons, not reloads (outcome "unchanged"), and a
 *      made-up tenant with nothing in Redis costs one and leaves no series;
 *   4. every reconcile_ms compares each tenant's checksum in Redis with the
 *      snapshot and reloads what differs, so a missed event (the edge was
 *      down, the consumer was rebalancing) heals within one period.
 * A tenant is read with MULTI/EXEC so the metadata and the document belong
 * together.  Redis is not a trust root: before a constitution is served, the
 * stored bytes must hash to the stored checksum, and the stored bundle
 * (document, signatures, canonicalization, hash algorithm, checksum) must
 * pass gov_constitution_verify against the edge's OWN trust file for the
 * tenant being loaded - signatures, tenant binding, checksum, strict rules.
 * A rule pack likewise: it must compile here and its stored signatures must
 * verify against the edge's own rule-pack trust (rulepack_trust_file).
 * Without a current state: the history rules (rollback, equivocation) are
 * gov-constitution's business; the edge checks what it can check alone.
 * What is served comes from what verified: the version and signers of the
 * verdict, never the hash fields beside the document.  Constitution and
 * pack are judged each on its own merit, so one refused never freezes the
 * other.  Values are size-checked inside Redis before they are sent
 * (gov_state_served_read): an oversized one is refused (kind "state",
 * too_large) with nothing allocated.  A verified state older than the one
 * served (or none where one is served) is "state_behind": the served one
 * stays and the tenant is degraded.
 * What does not verify is never served: the last verified state of that
 * tenant stays (or the tenant stays unknown: evaluate answers 503
 * constitution_missing), the tenant's status component "tenant:<T>" turns
 * DEGRADED (reported in /readyz, not failing readiness) and
 * edge_state_rejected_total{tenant,kind,reason} counts it.  A later load
 * that verifies turns the component back to OK.  Failures back off
 * exponentially.
 * Redis replies: a tenant whose keys answer with an error reply (a key of
 * the wrong type) is refused like state that does not verify (kind "state",
 * reason state_unreadable) and the others load; a reply that says Redis
 * cannot serve (LOADING, BUSY, a timeout: GOV_ERR_UNAVAILABLE) stops the
 * pass, which is retried with back-off - the start-up load until it
 * succeeds.  gov_redis drops a connection left with unread replies, so an
 * error in the middle of a pipeline never pairs a later command with an
 * earlier reply.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge.h"
#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_canon.h"
#include "gov_hash.h"
#include "gov_kafka.h"
#include "gov_log.h"
#include "gov_redis.h"
#include "gov_state.h"
#include "gov_time.h"
#include "gov_util.h"

struct edge_loader {
    edge_t *edge;
    pthread_t thread;
    volatile sig_atomic_t running;
    gov_redis_t *redis;
    gov_kafka_consumer_t *consumer;
    gov_avro_registry_t *avro;
    uint64_t delivery_failed_seen;
    int assigned_now;   /* set by on_assign (loader thread): reconcile now */
};

/* Where each assigned update partition starts: its end, fixed here - the
 * high watermark is read in the poll that receives the assignment, before
 * the reconcile that follows reads Redis.  An update produced after this
 * point is consumed from the topic; one produced before it was produced
 * after its state was materialized, so that reconcile sees the state.
 * Either way nothing falls between the two (with a lazily resolved
 * "latest", the end could be fixed after the reconcile had read Redis).
 * Nothing is committed, so `committed` is ignored.  Loader thread. */
static int64_t on_assign(void *opaque, const char *topic, int32_t partition, int64_t committed) {
    edge_loader_t *l = opaque;
    (void)topic;
    (void)partition;
    (void)committed;
    l->assigned_now = 1;
    return GOV_KAFKA_OFFSET_END;
}

static void count_reload(edge_t *e, const char *tenant, const char *trigger, const char *outcome) {
    gov_metric_inc(e->m_reloads, (const char *[]){tenant, trigger, outcome}, 1);
}

/* Tenants whose stored state was refused (their status component is
 * DEGRADED until a load verifies).  Loader thread only; bounded like the
 * status set itself. */
#define DEGRADED_MAX 64
static char degraded[DEGRADED_MAX][GOV_TENANT_MAX + 1];
static size_t ndegraded;

static void status_name(const char *tenant, char *buf, size_t size) {
    snprintf(buf, size, "tenant:%s", tenant);
}

/* Counts a refused state of `kind` for tenant and marks the tenant degraded. */
static void refuse(edge_t *e, const char *tenant, const char *kind, gov_reason_t reason,
                   const char *detail) {
    char name[GOV_TENANT_MAX + 16], text[400];
    gov_log(GOV_LOG_ERROR, "refusing state from Redis: the last verified state stays", "tenant",
            tenant, "kind", kind, "reason", gov_reason_code(reason), "detail", detail,
            (const char *)NULL);
    gov_metric_inc(e->m_rejected, (const char *[]){tenant, kind, gov_reason_code(reason)}, 1);
    status_name(tenant, name, sizeof name);
    snprintf(text, sizeof text, "%s refused (%s): serving the last verified state, if any", kind,
             gov_reason_code(reason));
    gov_status_set(e->status, name, GOV_STATUS_DEGRADED, text, NULL);
    for (size_t i = 0; i < ndegraded; i++)
        if (strcmp(degraded[i], tenant) == 0)
            return;
    if (ndegraded < DEGRADED_MAX)
        snprintf(degraded[ndegraded++], sizeof degraded[0], "%s", tenant);
}

/* A verified load: a degraded tenant is well again. */
static void recovered(edge_t *e, const char *tenant) {
    for (size_t i = 0; i < ndegraded; i++)
        if (strcmp(degraded[i], tenant) == 0) {
            char name[GOV_TENANT_MAX + 16];
            status_name(tenant, name, sizeof name);
            gov_status_set(e->status, name, GOV_STATUS_OK, NULL, NULL);
            memmove(degraded[i], degraded[i + 1], (ndegraded - i - 1) * sizeof degraded[0]);
            ndegraded--;
            return;
        }
}

/* Runs gov_constitution_verify over the stored bundle against the edge's own
 * trust, with no current state (the history is gov-constitution's).  GOV_OK
 * when it verifies, with c->version and c->signers taken from the verdict -
 * the document's own version and the trusted signers whose signatures
 * counted, never the hash fields beside it; GOV_ERR_VERIFY with *reason and
 * detail otherwise. */
static gov_err_t verify_stored(const edge_t *e, const char *tenant, const gov_state_served_t *h,
                               edge_constitution_t *c, gov_reason_t *reason, char *detail,
                               size_t detail_size) {
    gov_verdict_t v;
    gov_err_t err = gov_state_constitution_reverify(e->trust, tenant, h->doc, h->doc_len,
                                                    h->canonicalization, h->hash_alg,
                                                    h->checksum, h->signatures, &v);
    if (err == GOV_OK && v.outcome != GOV_VERIFY_ACCEPT) {
        *reason = v.reason;
        snprintf(detail, detail_size, "%s", v.detail);
        err = GOV_ERR_VERIFY;
    }
    if (err == GOV_OK) {
        char list[GOV_MAX_SIGNATURES * (GOV_SIGNER_ID_MAX + 1) + 1];
        size_t used = 0;
        list[0] = '\0';
        for (size_t i = 0; i < v.nsigners; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? "," : "",
                                     v.signers[i]);
        snprintf(c->version, sizeof c->version, "%s", v.version);
        if ((c->signers = gov_strdup(list)) == NULL)
            err = GOV_ERR_NOMEM;
    }
    gov_verdict_clear(&v);
    return err;
}

/* Builds the constitution part of t from what Redis holds; GOV_ERR_VERIFY
 * (counted, tenant degraded, t->constitution left empty) when the stored
 * document does not hash to its checksum or the stored bundle does not
 * verify against the edge's trust.  What is served comes from what verified:
 * version and signers from the verdict, source from the document's own
 * top-level "source" (the bundle's envelope source is not signed, so the
 * edge does not repeat it).  verified_at stays gov-constitution's record. */
static gov_err_t build_constitution(edge_t *e, edge_tenant_t *t, const gov_state_served_t *h) {
    char eb[256];
    const char *checksum = h->checksum;
    const char *alg = h->hash_alg;
    char hex[GOV_HASH_HEX_MAX];
    edge_constitution_t *c = &t->constitution;
    /* The exact bytes stored must be the ones hashed: canonicalizing first
     * would forgive edits that canonicalization erases (whitespace). */
    if (gov_hash_hex(gov_hash_by_name(alg), h->doc, h->doc_len, hex) != GOV_OK ||
        strcmp(hex, checksum) != 0) {
        refuse(e, t->name, "constitution", GOV_REASON_CHECKSUM_MISMATCH,
               "the stored document does not hash to the stored checksum");
        return GOV_ERR_VERIFY;
    }
    gov_reason_t reason = GOV_REASON_NONE;
    gov_err_t err = verify_stored(e, t->name, h, c, &reason, eb, sizeof eb);
    if (err == GOV_ERR_VERIFY)
        refuse(e, t->name, "constitution", reason, eb);
    if (err != GOV_OK)
        goto out;
    snprintf(c->checksum, sizeof c->checksum, "%s", checksum);
    snprintf(c->hash_alg, sizeof c->hash_alg, "%s", alg);
    snprintf(c->canonicalization, sizeof c->canonicalization, "%s",
             h->canonicalization ? h->canonicalization : "");
    c->verified_at_us = h->verified_at ? strtoll(h->verified_at, NULL, 10) : 0;
    /* the replacement gov-constitution recorded with it: the grace of the
     * replaced hash (edge_identity_grace) is computed from this, alike on
     * every replica (docs/contracts.md, "Tokens") */
    if (h->previous_checksum && h->replaced_at && strlen(h->previous_checksum) < sizeof c->previous_checksum) {
        snprintf(c->previous_checksum, sizeof c->previous_checksum, "%s", h->previous_checksum);
        c->replaced_at_us = strtoll(h->replaced_at, NULL, 10);
    }
    c->doc = gov_strndup(h->doc, h->doc_len);
    c->doc_len = h->doc_len;
    if (c->doc == NULL) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    if ((err = edge_constitution_compile(c, eb, sizeof eb)) != GOV_OK)
        goto out;
    const char *src = json_string_value(json_object_get(c->doc_json, "source"));
    if ((c->source = gov_strdup(src ? src : "")) == NULL) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    /* A constitution whose rules this engine cannot read is still served by
     * the read APIs, but evaluation refuses the tenant (503), never guesses. */
    if (c->rules == NULL)
        gov_log(GOV_LOG_ERROR, "constitution rules cannot be evaluated", "tenant", t->name,
                "error", c->rules_error, (const char *)NULL);
out:
    if (err != GOV_OK)
        edge_constitution_clear(c);
    return err;
}

/* Builds the rule pack part of t from what Redis holds: it must parse and
 * compile here, and its stored signatures must verify against the edge's
 * OWN rule-pack trust for this tenant (gov_rulepack_verify_signatures: the
 * trust covers the tenant, the pack names it, enough trusted signers signed
 * its canonical SHA-256 hex).  GOV_ERR_VERIFY (counted, tenant degraded,
 * t->rulepack left empty) otherwise; GOV_ERR_NOMEM / GOV_ERR_CRYPTO when it
 * could not be decided.  Its version is the verified pack's own. */
static gov_err_t build_rulepack(edge_t *e, edge_tenant_t *t, const gov_state_served_t *h) {
    edge_rulepack_t *rp = &t->rulepack;
    gov_reason_t reason;
    char detail[256];
    /* An empty digest never equals what the reconcile compares it with, so a
     * failed hash means "reload", never a false "unchanged". */
    if (gov_hash_hex(gov_hash_sha256(), h->pack, h->pack_len, rp->sha256) != GOV_OK)
        rp->sha256[0] = '\0';
    gov_rulepack_error_t pe;
    gov_err_t err = gov_rulepack_parse(h->pack, h->pack_len, NULL, &rp->pack, &pe, rp->error,
                                       sizeof rp->error);
    if (err == GOV_ERR_NOMEM)
        goto out;
    if (err != GOV_OK) {
        rp->pack = NULL;
        reason = pe.code != GOV_REASON_NONE ? pe.code : GOV_REASON_INTERNAL_ERROR;
        snprintf(detail, sizeof detail, "the stored pack cannot be compiled here: %.200s",
                 rp->error);
        goto refused;
    }
    gov_bundle_sig_t sigs[GOV_MAX_SIGNATURES + 1];
    size_t nsigs = 0;
    json_t *arr = h->pack_signatures
                      ? json_loads(h->pack_signatures, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (gov_signatures_from_json(arr, sigs, GOV_MAX_SIGNATURES + 1, &nsigs) != 0) {
        json_decref(arr);
        reason = GOV_REASON_NO_SIGNATURES;
        snprintf(detail, sizeof detail, "no readable signatures stored with the pack");
        goto refused;
    }
    gov_sig_count_t sc;
    err = gov_rulepack_verify_signatures(rp->pack, t->name, sigs, nsigs, e->rulepack_trust, &sc);
    json_decref(arr);
    if (err != GOV_OK || sc.reason == GOV_REASON_NONE)
        goto out;
    reason = sc.reason;
    snprintf(detail, sizeof detail, "%s", sc.detail);
refused:
    refuse(e, t->name, "rulepack", reason, detail);
    err = GOV_ERR_VERIFY;
out:
    if (err != GOV_OK)
        edge_rulepack_clear(rp);
    return err;
}

/* Redis behind the edge: an older verified version than the one served, or
 * none where one is served - Redis that lost writes while the processors
 * rebuild it from Kafka (anti-rollback forbids older versions otherwise).
 * The served one stays; the tenant is degraded until Redis catches up. */
static void behind(edge_t *e, const char *tenant, const char *kind, const char *redis_version,
                   const char *served_version) {
    char detail[256];
    snprintf(detail, sizeof detail, "Redis holds %s %s, older than the served %s", kind,
             redis_version && redis_version[0] ? redis_version : "none", served_version);
    refuse(e, tenant, kind, GOV_REASON_STATE_BEHIND, detail);
}

/* 1 when the verified constitution in t is older than the served one (both
 * versions come from verified documents). */
static int constitution_older(const edge_constitution_t *t, const edge_constitution_t *cur) {
    gov_version_t a, b;
    return gov_version_parse(t->version, &a) == 0 && gov_version_parse(cur->version, &b) == 0 &&
           gov_version_compare(&a, &b) < 0;
}

/* Part outcomes of one load. */
enum part { PART_NONE, PART_NEW, PART_KEPT_REFUSED, PART_KEPT_BEHIND };

/* Reads one tenant (constitution and rule pack, in one script so they belong
 * together) and installs what verified.  The two parts are judged on their
 * own merit: a part that does not verify (or is behind the served one)
 * keeps its last verified state - copied into the new tenant state - while
 * the other part is replaced, so a pack refused by one edge never freezes
 * the tenant's constitution there, and vice versa.  GOV_ERR_NOT_FOUND when
 * the tenant has neither; GOV_ERR_VERIFY / GOV_ERR_STATE (outcome
 * "state_behind") when no part was replaced. */
static gov_err_t load_tenant(edge_loader_t *l, const char *tenant, const char *trigger) {
    char eb[256];
    const char *outcome = NULL;
    gov_state_served_t st;
    edge_tenant_t *t = NULL;
    edge_snapshot_t *s = NULL;
    enum part pc = PART_NONE, pp = PART_NONE;
    gov_err_t err = gov_state_served_read(l->redis, tenant, &st, eb, sizeof eb);
    if (err != GOV_OK && !st.answered)
        return err;   /* connection trouble: not a reload outcome */
    if (err != GOV_OK) {
        /* Redis answered, but not with what a tenant's keys hold (a key of
         * the wrong type, a value beyond its bound): this tenant only is
         * refused - its last verified state stays served, the other tenants
         * load as usual. */
        refuse(l->edge, tenant, "state",
               err == GOV_ERR_TOO_LARGE ? GOV_REASON_TOO_LARGE : GOV_REASON_STATE_UNREADABLE, eb);
        err = GOV_ERR_VERIFY;
        goto out;
    }
    int has_constitution = st.checksum != NULL && st.doc != NULL;
    int has_pack = st.pack != NULL;
    if (!has_constitution && !has_pack) {
        err = GOV_ERR_NOT_FOUND;
        goto out;
    }
    if ((t = edge_tenant_new(tenant)) == NULL) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    s = edge_state_acquire(l->edge->state);
    const edge_tenant_t *cur = edge_snapshot_find(s, tenant);
    int served_c = cur && cur->constitution.checksum[0];
    int served_p = cur && cur->rulepack.pack;

    if (has_constitution) {
        err = build_constitution(l->edge, t, &st);
        if (err != GOV_OK && err != GOV_ERR_VERIFY)
            goto out;
        pc = err == GOV_OK ? PART_NEW : PART_KEPT_REFUSED;
        if (pc == PART_NEW && served_c &&
            constitution_older(&t->constitution, &cur->constitution)) {
            behind(l->edge, tenant, "constitution", t->constitution.version,
                   cur->constitution.version);
            edge_constitution_clear(&t->constitution);
            pc = PART_KEPT_BEHIND;
        }
    } else if (served_c) {
        behind(l->edge, tenant, "constitution", NULL, cur->constitution.version);
        pc = PART_KEPT_BEHIND;
    }
    if (has_pack) {
        err = build_rulepack(l->edge, t, &st);
        if (err != GOV_OK && err != GOV_ERR_VERIFY)
            goto out;
        pp = err == GOV_OK ? PART_NEW : PART_KEPT_REFUSED;
        if (pp == PART_NEW && served_p &&
            gov_version_compare(gov_rulepack_version_parsed(t->rulepack.pack),
                                gov_rulepack_version_parsed(cur->rulepack.pack)) < 0) {
            behind(l->edge, tenant, "rulepack", gov_rulepack_version(t->rulepack.pack),
                   gov_rulepack_version(cur->rulepack.pack));
            edge_rulepack_clear(&t->rulepack);
            pp = PART_KEPT_BEHIND;
        }
    } else if (served_p) {
        behind(l->edge, tenant, "rulepack", NULL, gov_rulepack_version(cur->rulepack.pack));
        pp = PART_KEPT_BEHIND;
    }
    outcome = pc == PART_KEPT_REFUSED || pp == PART_KEPT_REFUSED ? gov_err_code(GOV_ERR_VERIFY)
              : pc == PART_KEPT_BEHIND || pp == PART_KEPT_BEHIND ? "state_behind"
                                                                 : "loaded";
    if (pc != PART_NEW && pp != PART_NEW) {
        err = pc == PART_KEPT_REFUSED || pp == PART_KEPT_REFUSED ? GOV_ERR_VERIFY : GOV_ERR_STATE;
        goto out;
    }
    /* Keep the last verified state of the part that was not replaced. */
    if (pc != PART_NEW && served_c &&
        (err = edge_constitution_copy(&t->constitution, &cur->constitution)) != GOV_OK)
        goto out;
    if (pp != PART_NEW && served_p &&
        (err = edge_rulepack_copy(&t->rulepack, &cur->rulepack)) != GOV_OK)
        goto out;
    edge_snapshot_release(s);
    s = NULL;
    err = edge_state_put_take(l->edge->state, t);
    if (err == GOV_OK && pc != PART_KEPT_REFUSED && pc != PART_KEPT_BEHIND &&
        pp != PART_KEPT_REFUSED && pp != PART_KEPT_BEHIND)
        recovered(l->edge, tenant);
    if (err == GOV_OK)
        gov_log(GOV_LOG_INFO, "tenant state loaded", "tenant", tenant, "constitution",
                t->constitution.version[0] ? t->constitution.version : NULL, "rulepack",
                t->rulepack.pack ? gov_rulepack_version(t->rulepack.pack) : NULL, "trigger",
                trigger, "outcome", outcome, (const char *)NULL);
    t = NULL;
out:
    edge_snapshot_release(s);
    edge_tenant_unref(t);
    gov_state_served_clear(&st);
    if (err != GOV_OK && err != GOV_ERR_VERIFY && err != GOV_ERR_STATE)
        outcome = NULL;
    count_reload(l->edge, tenant, trigger,
                 outcome ? outcome : err == GOV_OK ? "loaded" : gov_err_code(err));
    return err;
}

/* 1 when Redis still holds what the snapshot holds for the tenant (also on
 * connection trouble, with *err set: do not reload on a guess). */
static int tenant_current(edge_loader_t *l, const edge_snapshot_t *s, const char *tenant,
                          gov_err_t *err) {
    char eb[256];
    const edge_tenant_t *t = edge_snapshot_find(s, tenant);
    int same = 1;
    *err = gov_state_served_same(l->redis, tenant, t ? t->constitution.checksum : "",
                                 t ? t->rulepack.sha256 : "", &same, eb, sizeof eb);
    if (*err == GOV_ERR_REDIS) {
        /* An error reply about this tenant's keys (WRONGTYPE), not about the
         * connection: let load_tenant judge it, so one bad tenant never
         * stops the reconcile of the others. */
        *err = GOV_OK;
        return 0;
    }
    return same;
}

/* Loads (trigger "startup") or reconciles every tenant of both indexes. */
static gov_err_t sync_all(edge_loader_t *l, const char *trigger) {
    char eb[256];
    gov_state_tenants_t members;
    gov_err_t err = gov_state_tenants_read(l->redis, &members, eb, sizeof eb);
    if (err != GOV_OK) {
        gov_log(GOV_LOG_WARN, "cannot read the tenant index", "error", eb, (const char *)NULL);
        return err;
    }
    edge_snapshot_t *s = edge_state_acquire(l->edge->state);
    for (size_t i = 0; err == GOV_OK && i < members.count; i++) {
        size_t len;
        const char *tenant = gov_state_tenants_get(&members, i, &len);
        if (!gov_tenant_valid(tenant, len))
            continue;
        if (strcmp(trigger, "reconcile") == 0 && tenant_current(l, s, tenant, &err))
            continue;
        if (err != GOV_OK)
            break;
        gov_err_t e = load_tenant(l, tenant, trigger);
        if (e == GOV_ERR_UNAVAILABLE || e == GOV_ERR_TIMEOUT || e == GOV_ERR_REDIS)
            err = e; /* connection trouble: stop and retry the whole pass */
    }
    edge_snapshot_release(s);
    gov_state_tenants_clear(&members);
    return err;
}

/* Tenants named by update events of one burst, each once: a burst of
 * events (a replay, a flood of RulePackUpdated) costs one comparison per
 * distinct tenant, and a reload only where Redis differs from what is
 * served - never one full reload per event.  More distinct tenants than fit
 * turn into one reconcile pass (every tenant compared once). */
#define PENDING_MAX 256
#define BURST_MAX 1000
typedef struct pending {
    size_t n;
    int overflow;
    char names[PENDING_MAX][GOV_TENANT_MAX + 1];
} pending_t;

static void pending_add(pending_t *p, const char *tenant) {
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->names[i], tenant) == 0)
            return;
    if (p->n == PENDING_MAX) {
        p->overflow = 1;
        return;
    }
    snprintf(p->names[p->n++], sizeof p->names[0], "%s", tenant);
}

static void on_event(edge_loader_t *l, const gov_kafka_msg_t *m, pending_t *p) {
    json_t *ev = NULL;
    const char *type = NULL;
    char eb[256];
    if (gov_avro_decode(l->avro, m->value, m->len, &ev, &type, eb, sizeof eb) != GOV_OK) {
        gov_log(GOV_LOG_WARN, "ignoring an undecodable message", "topic", m->topic, "error", eb,
                (const char *)NULL);
        return;
    }
    const char *tenant = json_string_value(json_object_get(ev, "tenant"));
    if (tenant && gov_tenant_valid(tenant, strlen(tenant))) {
        if (strcmp(type, "ConstitutionUpdated") == 0 || strcmp(type, "RulePackUpdated") == 0)
            pending_add(p, tenant);
    }
    json_decref(ev);
}

/* Reloads each pending tenant whose state in Redis differs from the served
 * one (one cheap comparison each); an overflowed burst reconciles all. */
static gov_err_t apply_pending(edge_loader_t *l, pending_t *p) {
    gov_err_t err = GOV_OK;
    if (p->overflow) {
        err = sync_all(l, "event");
    } else {
        edge_snapshot_t *s = edge_state_acquire(l->edge->state);
        for (size_t i = 0; err == GOV_OK && i < p->n; i++) {
            if (tenant_current(l, s, p->names[i], &err) || err != GOV_OK) {
                /* Counted only for a tenant the edge serves: an event may
                 * name anything, and a made-up name must not make a series. */
                if (err == GOV_OK && edge_snapshot_find(s, p->names[i]) != NULL)
                    count_reload(l->edge, p->names[i], "event", "unchanged");
                continue;
            }
            load_tenant(l, p->names[i], "event");
        }
        edge_snapshot_release(s);
    }
    p->n = 0;
    p->overflow = 0;
    return err;
}

static void *loader_main(void *arg) {
    edge_loader_t *l = arg;
    edge_t *e = l->edge;
    unsigned attempt = 0;
    /* startup: retry until the full load succeeds */
    while (l->running && !edge_state_loaded(e->state)) {
        if (sync_all(l, "startup") == GOV_OK) {
            edge_state_set_loaded(e->state);
            gov_status_set(e->status, "state", GOV_STATUS_OK, NULL, NULL);
            gov_status_set(e->status, "redis", GOV_STATUS_OK, NULL, NULL);
            break;
        }
        gov_status_set(e->status, "redis", GOV_STATUS_ERROR, "cannot load state from Redis", NULL);
        gov_sleep_ms_interruptible(gov_backoff_ms(attempt < 10 ? attempt++ : attempt, 200, 10000),
                                   &l->running);
    }
    int64_t next_reconcile = gov_mono_micros() + e->cfg.reconcile_ms * 1000;
    int64_t next_health = 0;
    int was_assigned = 0;
    int ever_assigned = 0;   /* the consumer worked once: the state is loaded */
    attempt = 0;
    pending_t *pend = gov_calloc(1, sizeof *pend);
    if (pend == NULL) {
        gov_log(GOV_LOG_ERROR, "loader: out of memory", (const char *)NULL);
        return NULL;
    }
    while (l->running) {
        gov_kafka_msg_t *m = NULL;
        /* Drain what is already fetched (bounded), then act once per tenant. */
        for (int n = 0; n < BURST_MAX &&
                        gov_kafka_consumer_poll(l->consumer, n == 0 ? 200 : 0, &m) == GOV_OK;
             n++) {
            on_event(l, m, pend);
            gov_kafka_msg_free(m);
            m = NULL;
        }
        if (pend->n > 0 || pend->overflow)
            apply_pending(l, pend);
        int64_t now = gov_mono_micros();
        if (l->assigned_now) {
            /* the end offsets are fixed: compare with Redis now */
            l->assigned_now = 0;
            next_reconcile = now;
        }
        if (now >= next_health) {
            next_health = now + 1000000;
            int kh = gov_kafka_consumer_healthy(l->consumer);
            /* Once it has worked, losing the brokers (a Kafka stall) is
             * DEGRADED, not NOT_READY: the snapshot is served from Redis
             * and reconciled every reconcile_ms, and /v1/evaluate and
             * /v1/authz must stay in rotation (REVIEW11 H1). */
            ever_assigned |= kh;
            gov_status_set(e->status, "kafka", kh ? GOV_STATUS_OK
                           : ever_assigned ? GOV_STATUS_DEGRADED : GOV_STATUS_NOT_READY,
                           kh ? NULL : ever_assigned
                           ? "consumer lost its brokers or assignment: updates come from the "
                             "periodic reconcile with Redis"
                           : "waiting for partition assignment or brokers", NULL);
            /* Back from a broker outage (or a rebalance the hook did not
             * see): compare with Redis at once as after an assignment. */
            if (kh && !was_assigned)
                next_reconcile = now;
            was_assigned = kh;
            edge_snapshot_t *s = edge_state_acquire(e->state);
            gov_metric_set(e->m_snapshot_gen, NULL, (double)s->generation);
            edge_snapshot_release(s);
            if (e->producer) {
                uint64_t failed = gov_kafka_producer_failed(e->producer);
                if (failed > l->delivery_failed_seen) {
                    gov_metric_inc(e->m_log_failed, (const char *[]){"delivery"},
                                   failed - l->delivery_failed_seen);
                    l->delivery_failed_seen = failed;
                }
            }
        }
        if (now >= next_reconcile) {
            gov_err_t err = sync_all(l, "reconcile");
            gov_status_set(e->status, "redis", err == GOV_OK ? GOV_STATUS_OK : GOV_STATUS_ERROR,
                           err == GOV_OK ? NULL : gov_err_str(err), NULL);
            long delay = err == GOV_OK ? e->cfg.reconcile_ms
                                       : gov_backoff_ms(attempt < 10 ? attempt++ : attempt, 200,
                                                        e->cfg.reconcile_ms);
            if (err == GOV_OK)
                attempt = 0;
            next_reconcile = now + (int64_t)delay * 1000;
        }
    }
    gov_free(pend);
    return NULL;
}

gov_err_t edge_loader_start(edge_t *e, edge_loader_t **out, char *errbuf, size_t errbuf_size) {
    edge_loader_t *l = gov_calloc(1, sizeof *l);
    if (l == NULL)
        return GOV_ERR_NOMEM;
    l->edge = e;
    l->running = 1;
    gov_err_t err = gov_avro_registry_new(&l->avro, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto fail;
    err = gov_redis_connect(e->cfg.redis_nodes, e->cfg.redis_host, (int)e->cfg.redis_port,
                            (int)e->cfg.redis_timeout_ms, &l->redis, errbuf, errbuf_size);
    if (err != GOV_OK && err != GOV_ERR_UNAVAILABLE)
        goto fail;
    char group[160], host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(group, sizeof group, "gov-edge-%s-%s-%d", e->cfg.edge_id, host, (int)getpid());
    const char *topics[] = {"constitution.updated", "policy.rulepacks.updated"};
    const char *extra[] = {"auto.offset.reset", "latest", "enable.auto.commit", "false", NULL};
    err = gov_kafka_consumer_new(e->cfg.kafka_brokers, group, "gov-edge", topics, 2, extra,
                                 &l->consumer, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto fail;
    gov_kafka_consumer_on_assign(l->consumer, on_assign, NULL, l);
    if (pthread_create(&l->thread, NULL, loader_main, l) != 0) {
        snprintf(errbuf, errbuf_size, "cannot start the loader thread");
        err = GOV_ERR_INTERNAL;
        goto fail;
    }
    *out = l;
    return GOV_OK;
fail:
    gov_kafka_consumer_close(l->consumer);
    gov_redis_free(l->redis);
    gov_avro_registry_free(l->avro);
    gov_free(l);
    return err;
}

void edge_loader_stop(edge_loader_t *l) {
    if (l == NULL)
        return;
    l->running = 0;
    pthread_join(l->thread, NULL);
    gov_kafka_consumer_close(l->consumer);
    gov_redis_free(l->redis);
    gov_avro_registry_free(l->avro);
    gov_free(l);
}
