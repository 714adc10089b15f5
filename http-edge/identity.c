/* identity.c - the edge's view of the signing keys and the JWKS.
 *
 * What: an immutable, reference-counted identity snapshot - every key
 * gov-identity materialized (kid, public key, state, activates_at,
 * retires_at), the keystore's signer for each key it holds, the JWKS text -
 * plus the constitution hashes a tenant replaced less than
 * token_constitution_grace_s ago (docs/contracts.md, "Tokens").
 *
 * How: one thread with its own Redis connection.  gov-identity has no
 * update topic, so every identity_refresh_ms the thread reads the key list,
 * each key hash and the JWKS through gov_state_identity (O(keys) small
 * reads) and compares their fingerprint with the served one; only a
 * difference (or, once per reconcile period, keys whose signer the keystore
 * did not hold) builds a new snapshot, which is swapped in under a mutex held for a few
 * instructions.  A request holds its snapshot for as long as it needs it.
 * The signing key is chosen per request (edge_identity_signing_key): the
 * newest key whose activates_at <= now, that the keystore holds, whose
 * state is pending or active and which is not past its retires_at - so a
 * key published ahead of time starts signing on the second it activates,
 * on every replica, without waiting for a refresh.  Verification looks
 * keys up in the same snapshot (active_from = activates_at, retired_at =
 * retires_at, retired = state retired).
 * Constitution grace: the same thread compares each tenant's served
 * constitution hash with the one it saw last; a replaced hash is kept, with
 * the time it was seen replaced plus the grace, in a bounded list.  The
 * list is this replica's observation (constitution:{T}:history carries no
 * times); replicas see a change within one reconcile of each other.
 *
 * What it does not do: create, rotate or publish keys (govctl keys rotate,
 * gov-identity), or trust a key the keystore holds but Redis does not list:
 * a key signs only once its KeyRotated was materialized, so every verifier
 * can find it in the JWKS.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge.h"
#include "edge_identity.h"
#include "gov_alloc.h"
#include "gov_b64url.h"
#include "gov_buf.h"
#include "gov_log.h"
#include "gov_state_identity.h"
#include "gov_time.h"

#define GRACE_MAX 256

struct edge_identity {
    edge_t *edge;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    edge_idsnap_t *cur;        /* under mu */
    int stopping;              /* under mu */
    pthread_t thread;
    int started;
    gov_redis_t *redis;        /* the thread's */
    int failing;               /* the last refresh failed (the thread's) */
    int64_t signers_tried_us;  /* when the keystore was last asked (monotonic; the thread's) */
    /* constitution grace, under mu */
    edge_grace_t grace[GRACE_MAX];
    size_t ngrace;
    struct seen {
        char tenant[GOV_TENANT_MAX + 1];
        char hash[GOV_JWT_HASH_MAX + 1];
    } *seen;
    size_t nseen, seen_cap;
};

static void snap_free(edge_idsnap_t *s) {
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        gov_signer_free(s->keys[i].signer);
    gov_free(s->keys);
    gov_free(s->jwks);
    gov_free(s->fingerprint);
    gov_free(s);
}

void edge_idsnap_release(edge_idsnap_t *s) {
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        snap_free(s);
}

edge_idsnap_t *edge_identity_acquire(edge_t *e) {
    edge_identity_t *id = e->identity;
    if (id == NULL)
        return NULL;
    pthread_mutex_lock(&id->mu);
    edge_idsnap_t *s = id->cur;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&id->mu);
    return s;
}

const edge_idkey_t *edge_identity_find(const edge_idsnap_t *s, const char *kid) {
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(s->keys[i].kid, kid) == 0)
            return &s->keys[i];
    return NULL;
}

const edge_idkey_t *edge_identity_signing_key(const edge_idsnap_t *s, int64_t now_us) {
    const edge_idkey_t *best = NULL;
    for (size_t i = 0; s && i < s->n; i++) {
        const edge_idkey_t *k = &s->keys[i];
        if (k->signer == NULL || k->rank < 0 || k->rank > 1 || k->activates_at > now_us)
            continue;
        if (k->retires_at >= 0 && k->retires_at <= now_us)
            continue;
        if (best == NULL || k->activates_at > best->activates_at ||
            (k->activates_at == best->activates_at && strcmp(k->kid, best->kid) > 0))
            best = k;
    }
    return best;
}

gov_err_t edge_identity_lookup(void *ctx, const char *kid, gov_jwt_key_t *out) {
    const edge_idkey_t *k = edge_identity_find(ctx, kid);
    if (k == NULL)
        return GOV_ERR_NOT_FOUND;
    memset(out, 0, sizeof *out);
    memcpy(out->pub, k->pub, sizeof out->pub);
    out->active_from = k->activates_at > 0 ? k->activates_at / 1000000 : 0;
    /* a retires_at of 0 would mean "never" to gov_jwt: the epoch is past anyway */
    /* rounded up: a key retires no earlier than its retires_at */
    out->retired_at = k->retires_at < 0 ? 0 : (k->retires_at + 999999) / 1000000;
    out->retired = k->rank == 3 || k->retires_at == 0;
    if (out->active_from > GOV_JWT_TIME_MAX)
        out->active_from = GOV_JWT_TIME_MAX;
    if (out->retired_at > GOV_JWT_TIME_MAX)
        out->retired_at = GOV_JWT_TIME_MAX;
    return GOV_OK;
}

size_t edge_identity_grace(edge_t *e, const char *tenant, edge_grace_t *out, size_t max) {
    edge_identity_t *id = e->identity;
    size_t n = 0;
    if (id == NULL)
        return 0;
    pthread_mutex_lock(&id->mu);
    for (size_t i = 0; i < id->ngrace && n < max; i++)
        if (strcmp(id->grace[i].tenant, tenant) == 0)
            out[n++] = id->grace[i];
    pthread_mutex_unlock(&id->mu);
    return n;
}

/* Pulls the raw public key out of a stored JWK's "x" (strict base64url).
 * -1 when the JWK is not readable as one. */
static int jwk_pub(const char *jwk, uint8_t pub[32]) {
    json_t *j = json_loads(jwk, JSON_REJECT_DUPLICATES, NULL);
    const char *x = j ? json_string_value(json_object_get(j, "x")) : NULL;
    size_t n = 0;
    int rc = x && gov_b64url_decode(x, strlen(x), pub, 32, &n, NULL, 0) == GOV_OK &&
                     n == 32
                 ? 0
                 : -1;
    json_decref(j);
    return rc;
}

/* Reads the keys and the JWKS into a new snapshot (not yet with signers)
 * and its fingerprint.  O(keys) Redis reads. */
static gov_err_t read_snapshot(edge_identity_t *id, edge_idsnap_t **out, char *eb, size_t ebs) {
    char **kids = NULL;
    size_t nkids = 0;
    gov_buf_t fp;
    gov_buf_init(&fp, 0);
    edge_idsnap_t *s = gov_calloc(1, sizeof *s);
    gov_err_t err = s ? GOV_OK : GOV_ERR_NOMEM;
    if (err == GOV_OK)
        err = gov_state_identity_key_list(id->redis, &kids, &nkids, eb, ebs);
    if (err == GOV_OK && nkids > 0 && (s->keys = gov_calloc(nkids, sizeof *s->keys)) == NULL)
        err = GOV_ERR_NOMEM;
    for (size_t i = 0; err == GOV_OK && i < nkids; i++) {
        gov_state_identity_key_rec_t rec;
        err = gov_state_identity_key_get(id->redis, kids[i], &rec, eb, ebs);
        if (err != GOV_OK)
            break;
        edge_idkey_t *k = &s->keys[s->n];
        if (rec.found && gov_signer_kid_valid(kids[i]) && rec.public_jwk &&
            jwk_pub(rec.public_jwk, k->pub) == 0) {
            char kid[GOV_SIGNER_KID_SIZE];
            /* the kid must be the thumbprint of the key it names */
            if (gov_signer_kid_of(k->pub, kid) == GOV_OK && strcmp(kid, kids[i]) == 0) {
                memcpy(k->kid, kid, sizeof k->kid);
                k->rank = gov_state_identity_key_rank(rec.state);
                k->activates_at = rec.activates_at;
                k->retires_at = rec.retires_at;
                gov_buf_printf(&fp, "%s|%d|%lld|%lld;", k->kid, k->rank,
                               (long long)k->activates_at, (long long)k->retires_at);
                s->n++;
            }
        }
        gov_state_identity_key_clear(&rec);
    }
    if (err == GOV_OK)
        err = gov_state_identity_jwks_get(id->redis, &s->jwks, &s->jwks_len, eb, ebs);
    if (err == GOV_OK) {
        gov_buf_puts(&fp, s->jwks ? s->jwks : "");
        err = gov_buf_finish(&fp, &s->fingerprint, NULL);
    }
    gov_state_identity_kids_free(kids, nkids);
    gov_buf_free(&fp);
    if (err != GOV_OK) {
        snap_free(s);
        return err;
    }
    atomic_init(&s->refs, 1);
    *out = s;
    return GOV_OK;
}

/* Opens the keystore's signer of every key it holds: one listing, then one
 * open per held key (a PKCS#11 search each), not one per published key. */
static void open_signers(edge_t *e, edge_idsnap_t *s) {
    char **held = NULL;
    size_t nheld = 0;
    char eb[256];
    if (e->keystore == NULL || s->n == 0 ||
        gov_keystore_list(e->keystore, &held, &nheld, NULL, eb, sizeof eb) != GOV_OK) {
        s->missing_signers = s->n;
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        int listed = 0;
        for (size_t h = 0; h < nheld && !listed; h++)
            listed = strcmp(held[h], s->keys[i].kid) == 0;
        if (!listed || s->keys[i].rank > 1 ||
            gov_keystore_signer(e->keystore, s->keys[i].kid, &s->keys[i].signer, NULL, eb,
                                sizeof eb) != GOV_OK) {
            s->keys[i].signer = NULL;
            s->missing_signers++;
        }
    }
    gov_keystore_list_free(held, nheld);
}

/* Notes replaced constitution hashes (grace list).  Under no lock but mu
 * for the list; O(tenants). */
static void track_constitutions(edge_identity_t *id, int64_t now_us) {
    edge_t *e = id->edge;
    edge_snapshot_t *snap = edge_state_acquire(e->state);
    if (snap == NULL)
        return;
    pthread_mutex_lock(&id->mu);
    /* expired entries leave */
    size_t w = 0;
    for (size_t i = 0; i < id->ngrace; i++)
        if (id->grace[i].until_s * 1000000 > now_us)
            id->grace[w++] = id->grace[i];
    id->ngrace = w;
    for (size_t t = 0; t < snap->n; t++) {
        const edge_tenant_t *ten = snap->tenants[t];
        const char *hash = ten->constitution.checksum;
        struct seen *sn = NULL;
        for (size_t i = 0; i < id->nseen; i++)
            if (strcmp(id->seen[i].tenant, ten->name) == 0)
                sn = &id->seen[i];
        if (sn == NULL) {
            if (id->nseen == id->seen_cap) {
                size_t cap = id->seen_cap ? id->seen_cap * 2 : 16;
                struct seen *ns = gov_realloc(id->seen, cap * sizeof *ns);
                if (ns == NULL)
                    break;
                id->seen = ns;
                id->seen_cap = cap;
            }
            sn = &id->seen[id->nseen++];
            snprintf(sn->tenant, sizeof sn->tenant, "%s", ten->name);
            snprintf(sn->hash, sizeof sn->hash, "%s", hash);
            continue;
        }
        if (strcmp(sn->hash, hash) == 0)
            continue;
        if (sn->hash[0] && e->cfg.token_constitution_grace_s > 0) {
            if (id->ngrace == GRACE_MAX) /* the oldest goes first */
                memmove(&id->grace[0], &id->grace[1], (GRACE_MAX - 1) * sizeof id->grace[0]);
            else
                id->ngrace++;
            edge_grace_t *g = &id->grace[id->ngrace - 1];
            snprintf(g->tenant, sizeof g->tenant, "%s", sn->tenant);
            snprintf(g->hash, sizeof g->hash, "%s", sn->hash);
            g->until_s = now_us / 1000000 + e->cfg.token_constitution_grace_s;
        }
        snprintf(sn->hash, sizeof sn->hash, "%s", hash);
    }
    pthread_mutex_unlock(&id->mu);
    edge_snapshot_release(snap);
}

/* One refresh: read, and swap when something changed. */
static void refresh(edge_identity_t *id) {
    char eb[256] = "";
    edge_idsnap_t *s = NULL;
    track_constitutions(id, gov_now_micros());
    gov_err_t err = read_snapshot(id, &s, eb, sizeof eb);
    if (err != GOV_OK) {
        /* once per outage, not once per period */
        if (!id->failing)
            gov_log(GOV_LOG_WARN, "identity snapshot not refreshed", "error",
                    eb[0] ? eb : gov_err_str(err), (const char *)NULL);
        id->failing = 1;
        return;
    }
    if (id->failing)
        gov_log(GOV_LOG_INFO, "identity snapshot refreshed again", (const char *)NULL);
    id->failing = 0;
    /* Keys the keystore did not hold are looked for again only every
     * reconcile period: a lookup is a token search on PKCS#11, and most
     * published keys (other edges', old ones) are never held here. */
    int64_t now = gov_mono_micros();
    edge_idsnap_t *old = edge_identity_acquire(id->edge);
    int retry = old && old->missing_signers > 0 &&
                now - id->signers_tried_us >= id->edge->cfg.reconcile_ms * 1000;
    int same = old && !retry && strcmp(old->fingerprint, s->fingerprint) == 0;
    edge_idsnap_release(old);
    if (same) {
        snap_free(s);
        return;
    }
    id->signers_tried_us = now;
    open_signers(id->edge, s);
    pthread_mutex_lock(&id->mu);
    old = id->cur;
    id->cur = s;
    pthread_mutex_unlock(&id->mu);
    edge_idsnap_release(old);
    char n[16];
    snprintf(n, sizeof n, "%zu", s->n);
    gov_log(GOV_LOG_DEBUG, "identity snapshot refreshed", "keys", n, (const char *)NULL);
}

static void *identity_main(void *arg) {
    edge_identity_t *id = arg;
    for (;;) {
        refresh(id);
        pthread_mutex_lock(&id->mu);
        if (!id->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long long ns = (long long)ts.tv_nsec + id->edge->cfg.identity_refresh_ms * 1000000LL;
            ts.tv_sec += (time_t)(ns / 1000000000LL);
            ts.tv_nsec = (long)(ns % 1000000000LL);
            pthread_cond_timedwait(&id->cv, &id->mu, &ts);
        }
        int stop = id->stopping;
        pthread_mutex_unlock(&id->mu);
        if (stop)
            break;
    }
    return NULL;
}

gov_err_t edge_identity_start(edge_t *e, char *errbuf, size_t errbuf_size) {
    edge_identity_t *id = gov_calloc(1, sizeof *id);
    if (id == NULL)
        return GOV_ERR_NOMEM;
    id->edge = e;
    pthread_mutex_init(&id->mu, NULL);
    pthread_cond_init(&id->cv, NULL);
    gov_err_t err = gov_redis_new(e->cfg.redis_host, (int)e->cfg.redis_port,
                                  (int)e->cfg.redis_timeout_ms, &id->redis, errbuf, errbuf_size);
    if (err != GOV_OK && err != GOV_ERR_UNAVAILABLE)
        goto fail;
    e->identity = id;
    /* the first read before any request: a reachable Redis gives the keys at once */
    refresh(id);
    if (pthread_create(&id->thread, NULL, identity_main, id) != 0) {
        snprintf(errbuf, errbuf_size, "cannot start the identity thread");
        err = GOV_ERR_INTERNAL;
        e->identity = NULL;
        goto fail;
    }
    id->started = 1;
    return GOV_OK;
fail:
    edge_idsnap_release(id->cur);
    gov_redis_free(id->redis);
    pthread_cond_destroy(&id->cv);
    pthread_mutex_destroy(&id->mu);
    gov_free(id);
    return err;
}

void edge_identity_stop(edge_t *e) {
    edge_identity_t *id = e->identity;
    if (id == NULL)
        return;
    pthread_mutex_lock(&id->mu);
    id->stopping = 1;
    pthread_cond_signal(&id->cv);
    pthread_mutex_unlock(&id->mu);
    if (id->started)
        pthread_join(id->thread, NULL);
    e->identity = NULL;
    edge_idsnap_release(id->cur);
    gov_redis_free(id->redis);
    gov_free(id->seen);
    pthread_cond_destroy(&id->cv);
    pthread_mutex_destroy(&id->mu);
    gov_free(id);
}
