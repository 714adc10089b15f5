/* gov_keyrotate.c - rotation and clock-driven transitions of signing keys
 * (docs/contracts.md "Key rotation").
 *
 * How: the current state is what gov-identity materialized (Redis), read
 * once per call into an array; decisions are plain functions of that
 * array and the time handed in; every decision becomes a KeyRotated
 * produced synchronously (acks=all) on identity.keys, which gov-identity
 * materializes like any other.  A KeyRotated for a known key repeats its
 * fixed fields from Redis and changes only state (and retires_at).
 *
 * Every KeyRotated is signed by the caller's operator keys (gov_events_sign)
 * just before it is produced: gov-identity and gov-edge believe no key
 * whose publication a trusted operator did not sign.
 *
 * What it does not do: write Redis (gov-identity does, from Kafka), decide
 * who may act (the caller: an operator, or the lease holder), or touch a
 * key its store does not hold.
 */
#include "gov_keyrotate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_buf.h"
#include "gov_events.h"

#define US_PER_S 1000000LL

void gov_keyrotate_keys_free(gov_keyrotate_key_t *keys, size_t n) {
    if (keys == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        gov_state_identity_key_clear(&keys[i].rec);
    gov_free(keys);
}

static int kid_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

gov_err_t gov_keyrotate_keys_load(gov_redis_t *r, gov_keystore_t *ks, gov_keyrotate_key_t **keys,
                                  size_t *n, gov_reason_t *why, char *errbuf,
                                  size_t errbuf_size) {
    char **kids = NULL, **held = NULL;
    size_t nkids = 0, nheld = 0, used = 0;
    gov_keyrotate_key_t *out = NULL;
    *keys = NULL;
    *n = 0;
    gov_err_t err = gov_state_identity_key_list(r, &kids, &nkids, errbuf, errbuf_size);
    if (err != GOV_OK) {
        *why = GOV_REASON_REDIS_UNAVAILABLE;
        goto out;
    }
    if (ks != NULL && (err = gov_keystore_list(ks, &held, &nheld, why, errbuf, errbuf_size)) !=
                          GOV_OK)
        goto out;
    if (nkids > 0 && (out = gov_calloc(nkids, sizeof *out)) == NULL) {
        err = GOV_ERR_NOMEM;
        *why = GOV_REASON_INTERNAL_ERROR;
        goto out;
    }
    for (size_t i = 0; i < nkids; i++) {
        gov_keyrotate_key_t *k = &out[used];
        if ((err = gov_state_identity_key_get(r, kids[i], &k->rec, errbuf, errbuf_size)) !=
            GOV_OK) {
            *why = GOV_REASON_REDIS_UNAVAILABLE;
            goto out;
        }
        /* a kid in the index whose hash is gone or unreadable is skipped:
         * nothing can be said about it, nothing is done to it */
        if (!k->rec.found || !k->rec.state || strlen(kids[i]) >= sizeof k->kid ||
            strlen(k->rec.state) >= sizeof k->state) {
            gov_state_identity_key_clear(&k->rec);
            continue;
        }
        snprintf(k->kid, sizeof k->kid, "%s", kids[i]);
        snprintf(k->state, sizeof k->state, "%s", k->rec.state);
        k->created_at = k->rec.created_at;
        k->activates_at = k->rec.activates_at;
        k->retires_at = k->rec.retires_at;
        const char *kp = kids[i];
        k->in_store = held != NULL && bsearch(&kp, held, nheld, sizeof *held, kid_cmp) != NULL;
        used++;
    }
    *keys = out;
    *n = used;
    out = NULL;
    err = GOV_OK;
out:
    gov_keyrotate_keys_free(out, used);
    gov_state_identity_kids_free(kids, nkids);
    gov_keystore_list_free(held, nheld);
    return err;
}

static int is_current(const gov_keyrotate_key_t *k) {
    return k->in_store && (strcmp(k->state, "pending") == 0 || strcmp(k->state, "active") == 0);
}

const gov_keyrotate_key_t *gov_keyrotate_newest(const gov_keyrotate_key_t *keys, size_t n) {
    const gov_keyrotate_key_t *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const gov_keyrotate_key_t *k = &keys[i];
        if (!is_current(k))
            continue;
        if (best == NULL || k->activates_at > best->activates_at ||
            (k->activates_at == best->activates_at &&
             (k->created_at > best->created_at ||
              (k->created_at == best->created_at && strcmp(k->kid, best->kid) > 0))))
            best = k;
    }
    return best;
}

int64_t gov_keyrotate_retires_at(const gov_keyrotate_config_t *cfg, int64_t own_activates_at,
                                 int64_t successor_activates_at) {
    int64_t t = successor_activates_at + (cfg->token_ttl_max_s + cfg->leeway_s) * US_PER_S;
    return t < own_activates_at ? own_activates_at : t;
}

int gov_keyrotate_due(const gov_keyrotate_key_t *keys, size_t n, long period_s, int64_t now_us) {
    const gov_keyrotate_key_t *newest = gov_keyrotate_newest(keys, n);
    return period_s > 0 && newest != NULL && now_us - newest->created_at >= period_s * US_PER_S;
}

/* Produces one KeyRotated (built by gov_events) keyed by its kid and waits
 * for the acknowledgement. */
static gov_err_t produce(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                         const gov_keyrotate_signers_t *op, const gov_key_rotated_t *k,
                         gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    json_t *ev = gov_events_key_rotated_new(k);
    if (ev == NULL) {
        *why = GOV_REASON_INTERNAL_ERROR;
        snprintf(errbuf, errbuf_size, "out of memory");
        return GOV_ERR_NOMEM;
    }
    /* signed last, over exactly what is produced */
    gov_err_t err = gov_events_sign(ev, "KeyRotated", op->signers, op->n, errbuf, errbuf_size);
    if (err != GOV_OK) {
        *why = GOV_REASON_INTERNAL_ERROR;
        json_decref(ev);
        return err;
    }
    char epoch[24];
    snprintf(epoch, sizeof epoch, "%lld", (long long)op->lease_epoch);
    gov_kafka_header_t h = {GOV_KEYROTATE_EPOCH_HEADER, epoch, strlen(epoch)};
    err = gov_events_emit_with(p, reg, GOV_TOPIC_IDENTITY_KEYS, "KeyRotated", k->kid, ev, &h,
                               op->lease_epoch > 0 ? 1 : 0, errbuf, errbuf_size);
    json_decref(ev);
    if (err != GOV_OK)
        *why = err == GOV_ERR_NOMEM || err == GOV_ERR_TOO_LARGE ? GOV_REASON_INTERNAL_ERROR
                                                                : GOV_REASON_KAFKA_UNAVAILABLE;
    return err;
}

/* A stored key moved to state (retires_at as given; -1 keeps none). */
static gov_err_t produce_state(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                               const gov_keyrotate_signers_t *op, const gov_keyrotate_key_t *k, const char *state,
                               int64_t retires_at, gov_reason_t *why, char *errbuf,
                               size_t errbuf_size) {
    const char *prev = k->rec.previous_kid;
    gov_key_rotated_t ev = {
        .kid = k->kid, .alg = k->rec.alg, .public_jwk = k->rec.public_jwk,
        .backend = k->rec.backend, .state = state, .created_at = k->created_at,
        .activates_at = k->activates_at, .retires_at = retires_at,
        .previous_kid = prev && prev[0] ? prev : NULL,
    };
    return produce(p, reg, op, &ev, why, errbuf, errbuf_size);
}

gov_err_t gov_keyrotate_rotate(gov_keystore_t *ks, gov_kafka_producer_t *p,
                               const gov_avro_registry_t *reg, const gov_keyrotate_signers_t *op,
                               const gov_keyrotate_config_t *cfg,
                               const gov_keyrotate_key_t *keys, size_t n, int64_t now_us,
                               long activate_in_s, gov_keyrotate_result_t *out, gov_reason_t *why,
                               char *errbuf, size_t errbuf_size) {
    const gov_keyrotate_key_t *newest = gov_keyrotate_newest(keys, n);
    long delay_s = activate_in_s < 0 ? cfg->propagation_s : activate_in_s;
    gov_signer_t *s = NULL;
    gov_buf_t jwk;
    gov_err_t err;
    gov_buf_init(&jwk, 1024);
    memset(out, 0, sizeof *out);
    out->retires_at = -1;
    if (newest != NULL && delay_s < cfg->propagation_s) {
        err = gov_reason_fail(why, GOV_REASON_KEY_ACTIVATION_TOO_SOON, GOV_ERR_INVALID_ARG, errbuf,
                              errbuf_size,
                              "activation in %lds is sooner than the propagation delay (%lds) "
                              "while key %s is current; only the very first key may activate "
                              "sooner",
                              delay_s, cfg->propagation_s, newest->kid);
        goto out;
    }
    if ((err = gov_keystore_generate(ks, &s, why, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    if ((err = gov_signer_public_jwk(gov_signer_public_key(s), gov_signer_kid(s), &jwk)) !=
            GOV_OK ||
        (err = gov_buf_reserve(&jwk, 1)) != GOV_OK) {
        *why = GOV_REASON_INTERNAL_ERROR;
        snprintf(errbuf, errbuf_size, "public JWK: %s", gov_err_str(err));
        goto out;
    }
    jwk.data[jwk.len] = 0;
    snprintf(out->kid, sizeof out->kid, "%s", gov_signer_kid(s));
    out->activates_at = now_us + (int64_t)delay_s * US_PER_S;
    /* a key due now is published active at once: nothing would sign with
     * it earlier anyway, and there is no current key to overlap with */
    out->state = out->activates_at <= now_us ? "active" : "pending";
    if (newest != NULL)
        snprintf(out->previous_kid, sizeof out->previous_kid, "%s", newest->kid);
    gov_key_rotated_t ev = {
        .occurred_at = now_us, .kid = out->kid, .alg = "EdDSA", .public_jwk = jwk.data,
        .backend = gov_signer_backend(s), .state = out->state, .created_at = now_us,
        .activates_at = out->activates_at, .retires_at = -1,
        .previous_kid = newest ? newest->kid : NULL,
    };
    if ((err = produce(p, reg, op, &ev, why, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    /* every current key of the store retires (normally the one newest) */
    for (size_t i = 0; i < n; i++) {
        if (!is_current(&keys[i]))
            continue;
        int64_t ret = gov_keyrotate_retires_at(cfg, keys[i].activates_at, out->activates_at);
        if (&keys[i] == newest)
            out->retires_at = ret;
        if ((err = produce_state(p, reg, op, &keys[i], "retiring", ret, why, errbuf,
                                 errbuf_size)) != GOV_OK)
            goto out;
    }
out:
    gov_buf_free(&jwk);
    gov_signer_free(s);
    return err;
}

gov_err_t gov_keyrotate_transitions(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                                    const gov_keyrotate_signers_t *op,
                                    const gov_keyrotate_key_t *keys, size_t n, int64_t now_us,
                                    int *produced, gov_reason_t *why, char *errbuf,
                                    size_t errbuf_size) {
    *produced = 0;
    for (size_t i = 0; i < n; i++) {
        const gov_keyrotate_key_t *k = &keys[i];
        const char *to = NULL;
        if (!k->in_store)
            continue;
        if (strcmp(k->state, "pending") == 0 && k->activates_at <= now_us)
            to = "active";
        else if (strcmp(k->state, "retiring") == 0 && k->retires_at >= 0 &&
                 k->retires_at <= now_us)
            to = "retired";
        if (to == NULL)
            continue;
        gov_err_t err = produce_state(p, reg, op, k, to, k->retires_at, why, errbuf, errbuf_size);
        if (err != GOV_OK)
            return err;
        (*produced)++;
    }
    return GOV_OK;
}

gov_err_t gov_keyrotate_retire_now(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                                   const gov_keyrotate_signers_t *op,
                                   const gov_keyrotate_key_t *keys, size_t n, const char *kid,
                                   int64_t now_us, int64_t *retires_at, gov_reason_t *why,
                                   char *errbuf, size_t errbuf_size) {
    for (size_t i = 0; i < n; i++) {
        const gov_keyrotate_key_t *k = &keys[i];
        if (strcmp(k->kid, kid) != 0)
            continue;
        if (strcmp(k->state, "retired") == 0)
            return gov_reason_fail(why, GOV_REASON_KEY_ALREADY_RETIRED, GOV_ERR_DUPLICATE, errbuf, errbuf_size,
                                   "key %s is retired already", kid);
        *retires_at = k->retires_at >= 0           ? k->retires_at
                      : now_us < k->activates_at ? k->activates_at
                                                 : now_us;
        return produce_state(p, reg, op, k, "retired", *retires_at, why, errbuf, errbuf_size);
    }
    return gov_reason_fail(why, GOV_REASON_KEY_NOT_FOUND, GOV_ERR_NOT_FOUND, errbuf, errbuf_size,
                           "no key %s is materialized", kid);
}
