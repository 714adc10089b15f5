/* identity.c - the edge's view of the signing keys and the JWKS.
 *
 * What: an immutable, reference-counted identity snapshot - every key
 * gov-identity materialized (kid, public key, state, activates_at,
 * retires_at), the keystore's signer for each key it holds, the JWKS text -
 * and the grace of the constitution hash a tenant replaced less than
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
 * Constitution grace (edge_identity_grace): computed per request from the
 * served tenant - the hash its constitution replaced and when
 * gov-constitution verified the replacement (constitution:{T}
 * previous_checksum, replaced_at) plus token_constitution_grace_s, rounded
 * up to the second - so every replica, whenever it started and however
 * often it refreshes, honours the same window from the moment it serves the
 * new constitution.  Only the hash replaced last has a grace.
 *
 * Redis is a view, not a trust root (docs/contracts.md, "Signed identity
 * events"): every key record is re-verified against the edge's own
 * identity trust (identity_trust_file) - the signed payload gov-identity
 * stored with it must carry a threshold of trusted signatures - and the
 * key is then taken from that payload alone (public key, state, times),
 * never from the record's other fields.  A record that does not verify is
 * not in the snapshot: it neither verifies a token nor appears in the JWKS,
 * which is built here from the verified keys (not read from Redis).  A
 * keystore key signs only when its public key is the published one: a
 * keystore entry under a published kid but with another key (a swapped
 * file, a token object replaced) is not used.  Clients are read per
 * request and checked the same way (edge_identity_client_get).  Each
 * refusal counts in identity_records_refused_total{kind,rule}.
 *
 * What it does not do: create, rotate or publish keys (govctl keys rotate,
 * gov-identity), or trust a key the keystore holds but Redis does not list:
 * a key signs only once its KeyRotated was materialized, so every verifier
 * can find it in the JWKS.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
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
#include "gov_file.h"
#include "gov_hash.h"
#include "gov_identity_sig.h"
#include "gov_util.h"
#include "gov_log.h"
#include "gov_status.h"
#include "gov_state_identity.h"
#include "gov_time.h"


struct edge_identity {
    edge_t *edge;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    edge_idsnap_t *cur;        /* under mu */
    int stopping;              /* under mu */
    pthread_t thread;
    int started;
    gov_redis_t *redis;        /* the thread's */
    int failing;               /* the last refresh failed: 1, 2 the kid index over its
                                  bound (the thread's) */
    int64_t signers_tried_us;  /* when the keystore was last asked (monotonic; the thread's) */
    gov_trust_t *trust;        /* identity trust (identity_trust_file); immutable */
    gov_metric_t *m_refused;   /* identity_records_refused_total{kind,rule} */
    gov_metric_t *m_over;      /* identity_key_index_over_bound (0/1) */
    gov_metric_t *m_usable;    /* identity_signing_keys_usable */
    char *refusals;            /* "\nkid reason\n..." of the last rebuild (the thread's) */
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
    size_t n = 0;
    if (max == 0 || e->cfg.token_constitution_grace_s <= 0)
        return 0;
    edge_snapshot_t *snap = edge_state_acquire(e->state);
    const edge_tenant_t *t = snap ? edge_snapshot_find(snap, tenant) : NULL;
    if (t && t->constitution.checksum[0] && t->constitution.previous_checksum[0] &&
        t->constitution.replaced_at_us > 0) {
        /* rounded up: the grace lasts at least its seconds, never up to one
         * second less */
        snprintf(out[0].tenant, sizeof out[0].tenant, "%s", tenant);
        snprintf(out[0].hash, sizeof out[0].hash, "%s", t->constitution.previous_checksum);
        out[0].until_s =
            (t->constitution.replaced_at_us + 999999) / 1000000 + e->cfg.token_constitution_grace_s;
        n = 1;
    }
    edge_snapshot_release(snap);
    return n;
}

/* Pulls the raw public key out of a stored JWK's "x" (strict base64url).
 * -1 when the JWK is not readable as one. */
static int jwk_pub(const char *jwk, uint8_t pub[32]) {
    if (jwk == NULL)
        return -1;
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

/* Counts and logs one refused record (kind "key", "client" or
 * "keystore_key"); the log names the rule and the record. */
static void refused(edge_identity_t *id, const char *kind, const char *what,
                    const gov_sig_count_t *sc) {
    const char *rule = gov_reason_code(sc->reason);
    gov_metric_inc(id->m_refused, (const char *[]){kind, rule}, 1);
    gov_log(GOV_LOG_WARN, "identity record not used: its signatures do not verify", "kind", kind,
            "id", what, "rule", rule, "detail", sc->detail, (const char *)NULL);
}

/* The verified content of a key record into k: its signed payload must
 * carry the identity trust's threshold, name this kid, and hold an Ed25519
 * JWK whose thumbprint is the kid.  -1 (counted, logged) otherwise. */
static int key_verified(edge_identity_t *id, const char *kid,
                        const gov_state_identity_key_rec_t *rec, edge_idkey_t *k) {
    json_t *content = NULL;
    gov_sig_count_t sc;
    const char *pl = rec->signed_payload, *sg = rec->signatures;
    if (gov_identity_sig_check_stored(id->trust, "KeyRotated", "kid", kid, pl, pl ? strlen(pl) : 0,
                                      sg, sg ? strlen(sg) : 0, &content, &sc) != GOV_OK) {
        refused(id, "key", kid, &sc);
        return -1;
    }
    char thumb[GOV_SIGNER_KID_SIZE];
    json_t *ret = json_object_get(content, "retires_at");
    const char *state = json_string_value(json_object_get(content, "state"));
    int ok = jwk_pub(json_string_value(json_object_get(content, "public_jwk")), k->pub) == 0 &&
             gov_signer_kid_of(k->pub, thumb) == GOV_OK && strcmp(thumb, kid) == 0 &&
             json_is_integer(json_object_get(content, "activates_at")) &&
             (json_is_null(ret) || json_is_integer(ret)) &&
             gov_state_identity_key_rank(state) >= 0;
    if (ok) {
        memcpy(k->kid, thumb, sizeof k->kid);
        k->rank = gov_state_identity_key_rank(state);
        k->activates_at = (int64_t)json_integer_value(json_object_get(content, "activates_at"));
        k->retires_at = json_is_integer(ret) ? (int64_t)json_integer_value(ret) : -1;
    } else {
        sc.reason = GOV_REASON_INVALID_JWK;
        snprintf(sc.detail, sizeof sc.detail,
                 "the signed KeyRotated holds no Ed25519 JWK of this kid or no valid times");
        refused(id, "key", kid, &sc);
    }
    json_decref(content);
    return ok ? 0 : -1;
}

static int key_order(const void *a, const void *b) {
    const edge_idkey_t *x = *(const edge_idkey_t *const *)a, *y = *(const edge_idkey_t *const *)b;
    if (x->activates_at != y->activates_at)
        return x->activates_at < y->activates_at ? -1 : 1;
    return strcmp(x->kid, y->kid);
}

/* The JWKS of the verified keys that are not retired, by activates_at then
 * kid (the order gov-identity writes): a new string in *out. */
static gov_err_t build_jwks(const edge_idsnap_t *s, char **out, size_t *len) {
    gov_buf_t b;
    const edge_idkey_t **order = NULL;
    size_t n = 0;
    gov_buf_init(&b, GOV_STATE_FIELD_MAX);   /* what gov-identity's JWKS may hold */
    if (s->n > 0 && (order = gov_calloc(s->n, sizeof *order)) == NULL)
        return GOV_ERR_NOMEM;
    for (size_t i = 0; i < s->n; i++)
        if (s->keys[i].rank != 3)
            order[n++] = &s->keys[i];
    if (n > 1)
        qsort(order, n, sizeof *order, key_order);
    gov_buf_puts(&b, "{\"keys\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            gov_buf_puts(&b, ",");
        gov_signer_public_jwk(order[i]->pub, order[i]->kid, &b);
    }
    gov_buf_puts(&b, "]}");
    gov_free(order);
    gov_err_t err = gov_buf_finish(&b, out, len);
    gov_buf_free(&b);
    return err;
}

/* Appends the SHA-256 of one record's kid, signed payload and signatures
 * to fp: the fingerprint covers what was read, verified or not, so only a
 * changed record is verified (and, when it fails, counted) again. */
static void fingerprint_record(gov_buf_t *fp, const char *kid,
                               const gov_state_identity_key_rec_t *rec) {
    unsigned char d[GOV_SHA256_LEN];
    char hex[2 * GOV_SHA256_LEN + 1];
    gov_buf_t rb;
    gov_buf_init(&rb, 0);
    gov_buf_printf(&rb, "%s|%s|%s", kid, rec->signed_payload ? rec->signed_payload : "",
                   rec->signatures ? rec->signatures : "");
    if (rb.err == GOV_OK && gov_sha256(rb.data, rb.len, d) == GOV_OK) {
        gov_hex_encode(d, sizeof d, hex);
        gov_buf_printf(fp, "%s;", hex);
    } else if (fp->err == GOV_OK) {
        fp->err = rb.err != GOV_OK ? rb.err : GOV_ERR_CRYPTO;
    }
    gov_buf_free(&rb);
}

/* Reads the key records; when their fingerprint is prev_fp (may be NULL)
 * *out is NULL (nothing changed, nothing verified).  Otherwise a new
 * snapshot (not yet with signers) of the records that verify
 * (key_verified), the JWKS built from them, and the fingerprint.  O(keys)
 * Redis reads, and on a change O(keys) Ed25519 verifications. */
static gov_err_t read_snapshot(edge_identity_t *id, const char *prev_fp, edge_idsnap_t **out,
                               char *eb, size_t ebs) {
    char **kids = NULL;
    size_t nkids = 0, nrecs = 0;
    gov_state_identity_key_rec_t *recs = NULL;
    gov_buf_t fp;
    gov_buf_init(&fp, 0);
    *out = NULL;
    edge_idsnap_t *s = gov_calloc(1, sizeof *s);
    gov_err_t err = s ? GOV_OK : GOV_ERR_NOMEM;
    if (err == GOV_OK)
        err = gov_state_identity_key_list(id->redis, &kids, &nkids, eb, ebs);
    if (err == GOV_OK && nkids > 0 &&
        ((s->keys = gov_calloc(nkids, sizeof *s->keys)) == NULL ||
         (recs = gov_calloc(nkids, sizeof *recs)) == NULL))
        err = GOV_ERR_NOMEM;
    for (; err == GOV_OK && nrecs < nkids; nrecs++) {
        err = gov_state_identity_key_get(id->redis, kids[nrecs], &recs[nrecs], eb, ebs);
        if (err == GOV_OK && recs[nrecs].found)
            fingerprint_record(&fp, kids[nrecs], &recs[nrecs]);
    }
    if (err == GOV_OK)
        err = gov_buf_finish(&fp, &s->fingerprint, NULL);
    if (err == GOV_OK && prev_fp && strcmp(prev_fp, s->fingerprint) == 0) {
        snap_free(s);   /* the same records: the served snapshot stands */
        s = NULL;
        goto out;
    }
    for (size_t i = 0; err == GOV_OK && i < nkids; i++)
        if (recs[i].found && gov_signer_kid_valid(kids[i]) &&
            key_verified(id, kids[i], &recs[i], &s->keys[s->n]) == 0)
            s->n++;
    if (err == GOV_OK)
        err = build_jwks(s, &s->jwks, &s->jwks_len);
out:
    for (size_t i = 0; recs && i < nrecs; i++)
        gov_state_identity_key_clear(&recs[i]);
    gov_free(recs);
    gov_state_identity_kids_free(kids, nkids);
    gov_buf_free(&fp);
    if (err != GOV_OK) {
        snap_free(s);
        return err;
    }
    if (s != NULL)
        atomic_init(&s->refs, 1);
    *out = s;
    return GOV_OK;
}

/* 1 when signer's signature over a probe verifies under pub (the published
 * key): proof that the private key the keystore uses is that key, whatever
 * the backend says its public half is.  One signature, one verification. */
static int signs_as_published(gov_signer_t *signer, const uint8_t pub[GOV_SIGNER_PUB_LEN]) {
    static const char probe[] = "gov-edge: is this keystore key the published one?";
    uint8_t sig[GOV_SIGNER_SIG_LEN];
    char eb[128];
    if (gov_signer_sign(signer, (const uint8_t *)probe, sizeof probe - 1, sig, eb, sizeof eb) !=
        GOV_OK)
        return 0;
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, GOV_SIGNER_PUB_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = k && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(ctx, sig, sizeof sig, (const unsigned char *)probe,
                              sizeof probe - 1) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    ERR_clear_error();
    return ok;
}

/* Notes the key store's refusal of kid ("*": the listing) in this
 * rebuild's list and logs it when the previous rebuild did not refuse kid
 * for the same reason: once per (kid, reason) change, not once per
 * rebuild.  The first refusal's text becomes *first (the readyz detail). */
static void signer_refused(edge_identity_t *id, gov_buf_t *now, const char *kid,
                           gov_reason_t why, const char *detail, char *first,
                           size_t first_size) {
    char line[128];
    const char *code = why != GOV_REASON_NONE ? gov_reason_code(why) : "keystore_error";
    snprintf(line, sizeof line, "\n%s %s\n", kid, code);
    gov_buf_puts(now, line + 1);
    if (id->refusals == NULL || strstr(id->refusals, line) == NULL)
        gov_log(GOV_LOG_ERROR, "signing key not usable: the key store refused it", "kid", kid,
                "reason", code, "detail", detail, (const char *)NULL);
    if (first[0] == 0)
        snprintf(first, first_size, "key store refused %s: %s: %s", kid, code, detail);
}

/* Opens the keystore's signer of every key it holds: one listing, then one
 * open per held key (a PKCS#11 search each), not one per published key.
 * Reports what it found (P4 of the identity review): each refusal logged
 * once per (kid, reason) change, identity_signing_keys_usable, and the
 * "signing" readyz component - degraded, never unready (verification and
 * evaluation go on), when no published key can sign. */
static void open_signers(edge_t *e, edge_idsnap_t *s) {
    edge_identity_t *id = e->identity;
    char **held = NULL;
    size_t nheld = 0, usable = 0;
    char eb[256], first[400] = "";
    gov_reason_t why = GOV_REASON_NONE;
    gov_buf_t now;
    gov_buf_init(&now, 0);
    gov_buf_putc(&now, '\n');
    int listed_ok = 0;
    if (e->keystore == NULL || s->n == 0)
        s->missing_signers = s->n;
    else if (gov_keystore_list(e->keystore, &held, &nheld, &why, eb, sizeof eb) != GOV_OK) {
        s->missing_signers = s->n;
        signer_refused(id, &now, "*", why, eb, first, sizeof first);
    } else
        listed_ok = 1;
    for (size_t i = 0; listed_ok && i < s->n; i++) {
        int listed = 0;
        for (size_t h = 0; h < nheld && !listed; h++)
            listed = strcmp(held[h], s->keys[i].kid) == 0;
        why = GOV_REASON_NONE;
        if (!listed || s->keys[i].rank > 1 ||
            gov_keystore_signer(e->keystore, s->keys[i].kid, &s->keys[i].signer, &why, eb,
                                sizeof eb) != GOV_OK) {
            if (listed && s->keys[i].rank <= 1)
                signer_refused(id, &now, s->keys[i].kid, why, eb, first, sizeof first);
            s->keys[i].signer = NULL;
            s->missing_signers++;
            continue;
        }
        /* signs only with the published key: a keystore entry under this
         * kid holding another key (its public half, or only its private
         * half, swapped) would issue tokens nobody can verify */
        if (memcmp(gov_signer_public_key(s->keys[i].signer), s->keys[i].pub,
                   GOV_SIGNER_PUB_LEN) != 0 ||
            !signs_as_published(s->keys[i].signer, s->keys[i].pub)) {
            gov_sig_count_t sc = {.reason = GOV_REASON_KEY_CHANGED};
            snprintf(sc.detail, sizeof sc.detail,
                     "the keystore's key under this kid is not the published public key");
            refused(e->identity, "keystore_key", s->keys[i].kid, &sc);
            gov_signer_free(s->keys[i].signer);
            s->keys[i].signer = NULL;
            if (first[0] == 0)
                snprintf(first, sizeof first, "key store key %s is not the published one",
                         s->keys[i].kid);
            continue;
        }
        usable++;
    }
    gov_keystore_list_free(held, nheld);
    char *text = NULL;
    if (gov_buf_finish(&now, &text, NULL) == GOV_OK) {
        gov_free(id->refusals);
        id->refusals = text;
    }
    gov_metric_set(id->m_usable, NULL, (double)usable);
    if (e->keystore == NULL)
        return;   /* no key store configured: this edge does not sign */
    if (usable > 0)
        gov_status_set(e->status, "signing", GOV_STATUS_OK, NULL, NULL);
    else
        gov_status_set(e->status, "signing", GOV_STATUS_DEGRADED,
                       first[0] ? first : "no published signing key is in the key store", NULL);
}

/* One refresh: read, and swap when something changed. */
static void refresh(edge_identity_t *id) {
    char eb[256] = "";
    edge_idsnap_t *s = NULL;
    /* Keys the keystore did not hold are looked for again only every
     * reconcile period: a lookup is a token search on PKCS#11, and most
     * published keys (other edges', old ones) are never held here. */
    int64_t now = gov_mono_micros();
    edge_idsnap_t *old = edge_identity_acquire(id->edge);
    int retry = old && old->missing_signers > 0 &&
                now - id->signers_tried_us >= id->edge->cfg.reconcile_ms * 1000;
    gov_err_t err = read_snapshot(id, old && !retry ? old->fingerprint : NULL, &s, eb, sizeof eb);
    edge_idsnap_release(old);
    if (err != GOV_OK) {
        /* once per outage, not once per period.  A kid index past its bound
         * is never sampled (a sample drops live keys at random): the last
         * snapshot stays, loudly - an error, the gauge, /readyz degraded */
        int over = err == GOV_ERR_TOO_LARGE;
        if (id->failing != (over ? 2 : 1))
            gov_log(over ? GOV_LOG_ERROR : GOV_LOG_WARN,
                    over ? "identity snapshot not refreshed: the kid index is over its bound, "
                           "the last snapshot is kept"
                         : "identity snapshot not refreshed",
                    "error", eb[0] ? eb : gov_err_str(err), (const char *)NULL);
        if (over) {
            gov_metric_set(id->m_over, NULL, 1);
            gov_status_set(id->edge->status, "identity", GOV_STATUS_DEGRADED, eb, NULL);
        }
        id->failing = over ? 2 : 1;
        return;
    }
    if (id->failing)
        gov_log(GOV_LOG_INFO, "identity snapshot refreshed again", (const char *)NULL);
    if (id->failing == 2) {
        gov_metric_set(id->m_over, NULL, 0);
        gov_status_set(id->edge->status, "identity", GOV_STATUS_OK, NULL, NULL);
    }
    id->failing = 0;
    if (s == NULL)   /* nothing changed */
        return;
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
    /* no identity trust, no identity: Redis alone would decide which keys
     * verify tokens and which clients get them */
    gov_err_t err = gov_file_trust_load(e->cfg.identity_trust_file, &id->trust, errbuf,
                                        errbuf_size);
    if (err != GOV_OK) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s", errbuf);
        snprintf(errbuf, errbuf_size, "identity trust file (GOV_IDENTITY_TRUST_FILE) %s: %s",
                 e->cfg.identity_trust_file ? e->cfg.identity_trust_file : "unset", detail);
        goto fail;
    }
    id->m_refused = gov_metrics_counter(
        e->metrics, "identity_records_refused_total",
        "Identity records read from Redis that gov-edge did not use: a key or client whose "
        "signatures do not verify against its identity trust, or a keystore key that is not "
        "the published one (kind key|client|keystore_key, rule the reason).",
        2, (const char *[]){"kind", "rule"});
    id->m_over = gov_metrics_gauge(
        e->metrics, "identity_key_index_over_bound",
        "1 while identity:{keys}:kids holds more kids than gov-edge reads (1024): the identity "
        "snapshot is not refreshed (the last one serves) and /readyz shows identity degraded.",
        0, NULL);
    id->m_usable = gov_metrics_gauge(
        e->metrics, "identity_signing_keys_usable",
        "Published pending or active keys this gov-edge can sign with (the key store holds "
        "them, opened them and they are the published key); 0 with a key store: issuance "
        "answers 503 signing_key_unavailable and /readyz shows signing degraded.",
        0, NULL);
    if (id->m_refused == NULL || id->m_over == NULL || id->m_usable == NULL) {
        err = GOV_ERR_NOMEM;
        goto fail;
    }
    err = gov_redis_connect(e->cfg.redis_nodes, e->cfg.redis_host, (int)e->cfg.redis_port,
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
    gov_trust_free(id->trust);
    gov_free(id->refusals);
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
    gov_trust_free(id->trust);
    gov_free(id->refusals);
    pthread_cond_destroy(&id->cv);
    pthread_mutex_destroy(&id->mu);
    gov_free(id);
}

/* Joins a JSON array of strings with sep into a new string; NULL when an
 * item is not a string or out of memory. */
static char *join_strings(const json_t *arr, char sep) {
    gov_buf_t b;
    gov_buf_init(&b, GOV_IDENTITY_SIG_PAYLOAD_MAX);   /* within the payload it came from */
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *v = json_string_value(json_array_get(arr, i));
        if (v == NULL) {
            gov_buf_free(&b);
            return NULL;
        }
        if (i)
            gov_buf_printf(&b, "%c", sep);
        gov_buf_puts(&b, v);
    }
    char *out = NULL;
    if (gov_buf_finish(&b, &out, NULL) != GOV_OK)
        out = NULL;
    gov_buf_free(&b);
    return out;
}

gov_err_t edge_identity_client_get(edge_t *e, gov_redis_t *r, const char *client_id,
                                   gov_state_identity_client_rec_t *out, char *eb, size_t ebs) {
    edge_identity_t *id = e->identity;
    gov_err_t err = gov_state_identity_client_get(r, client_id, out, eb, ebs);
    if (err != GOV_OK || !out->found)
        return err;
    json_t *content = NULL;
    gov_sig_count_t sc;
    const char *pl = out->signed_payload, *sg = out->signatures;
    char *tenants = NULL, *scopes = NULL, *hash = NULL;
    if (id == NULL ||
        gov_identity_sig_check_stored(id->trust, "ClientRegistered", "client_id", client_id, pl,
                                      pl ? strlen(pl) : 0, sg, sg ? strlen(sg) : 0, &content,
                                      &sc) != GOV_OK) {
        if (id != NULL)
            refused(id, "client", client_id, &sc);
        gov_state_identity_client_clear(out);   /* found 0: unknown client */
        return GOV_OK;
    }
    /* what authenticates and authorizes is the signed content alone */
    const char *h = json_string_value(json_object_get(content, "secret_hash"));
    tenants = join_strings(json_object_get(content, "tenants"), ',');
    scopes = join_strings(json_object_get(content, "scopes"), ' ');
    hash = h ? gov_strdup(h) : NULL;
    json_decref(content);
    if (tenants == NULL || scopes == NULL || hash == NULL) {
        gov_free(tenants);
        gov_free(scopes);
        gov_free(hash);
        gov_state_identity_client_clear(out);
        snprintf(eb, ebs, "out of memory, or a signed client without secret_hash");
        return h == NULL ? GOV_OK : GOV_ERR_NOMEM;
    }
    gov_free(out->tenants);
    gov_free(out->scopes);
    gov_free(out->secret_hash);
    out->tenants = tenants;
    out->scopes = scopes;
    out->secret_hash = hash;
    return GOV_OK;
}
