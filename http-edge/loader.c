/* loader.c - keeps the edge's snapshot in step with Redis.
 *
 * One thread, one Redis connection, one Kafka consumer.  It:
 *   1. subscribes to constitution.updated with a group of its own (every
 *      edge replica must see every event; new groups start at the end, and
 *      nothing is committed - the state of record is Redis, not the topic);
 *   2. loads every tenant listed in constitution:tenants, then marks the
 *      state loaded (until then the edge answers 503, never a guess);
 *   3. on each ConstitutionUpdated reloads that tenant from Redis;
 *   4. every reconcile_ms compares each tenant's checksum in Redis with the
 *      snapshot and reloads what differs, so a missed event (the edge was
 *      down, the consumer was rebalancing) heals within one period.
 * A tenant is read with MULTI/EXEC so the metadata and the document belong
 * together, and the document's hash is checked against its checksum before
 * it is served: a Redis that was tampered with is refused and logged, and
 * the last good state stays.  Failures back off exponentially.
 */
#include <openssl/evp.h>
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
#include "gov_kafka.h"
#include "gov_log.h"
#include "gov_redis.h"
#include "gov_util.h"

struct edge_loader {
    edge_t *edge;
    pthread_t thread;
    volatile sig_atomic_t running;
    gov_redis_t *redis;
    gov_kafka_consumer_t *consumer;
    gov_avro_registry_t *avro;
};

static const char *hash_field(redisReply *arr, const char *name) {
    for (size_t i = 0; i + 1 < arr->elements; i += 2)
        if (arr->element[i]->type == REDIS_REPLY_STRING && strcmp(arr->element[i]->str, name) == 0 &&
            arr->element[i + 1]->type == REDIS_REPLY_STRING)
            return arr->element[i + 1]->str;
    return NULL;
}

static void count_reload(edge_t *e, const char *tenant, const char *trigger, const char *outcome) {
    gov_metric_inc(e->m_reloads, (const char *[]){tenant, trigger, outcome}, 1);
}

/* Reads one tenant from Redis and installs it.  GOV_ERR_NOT_FOUND when the
 * tenant has no constitution; GOV_ERR_VERIFY when Redis holds a document
 * that does not match its checksum. */
static gov_err_t load_tenant(edge_loader_t *l, const char *tenant, const char *trigger) {
    char eb[256], k_hash[96], k_doc[96];
    snprintf(k_hash, sizeof k_hash, "constitution:{%s}", tenant);
    snprintf(k_doc, sizeof k_doc, "constitution:{%s}:doc", tenant);
    const char *multi[] = {"MULTI"}, *hgetall[] = {"HGETALL", k_hash}, *get[] = {"GET", k_doc},
               *exec[] = {"EXEC"};
    gov_err_t err;
    if ((err = gov_redis_append(l->redis, 1, multi, NULL)) ||
        (err = gov_redis_append(l->redis, 2, hgetall, NULL)) ||
        (err = gov_redis_append(l->redis, 2, get, NULL)) ||
        (err = gov_redis_append(l->redis, 1, exec, NULL)))
        return err;
    redisReply *rep = NULL;
    for (int i = 0; i < 3; i++) {
        if ((err = gov_redis_read(l->redis, &rep, eb, sizeof eb)) != GOV_OK)
            return err;
        freeReplyObject(rep);
    }
    if ((err = gov_redis_read(l->redis, &rep, eb, sizeof eb)) != GOV_OK)
        return err;
    edge_tenant_t *t = NULL;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_ARRAY) {
        err = GOV_ERR_REDIS;
        goto out;
    }
    redisReply *h = rep->element[0], *doc = rep->element[1];
    const char *checksum = hash_field(h, "checksum");
    if (checksum == NULL || doc->type != REDIS_REPLY_STRING) {
        err = GOV_ERR_NOT_FOUND;
        goto out;
    }
    const char *alg = hash_field(h, "hash_alg");
    const EVP_MD *md = alg && strcmp(alg, "sha256") == 0 ? EVP_sha256()
                     : alg && strcmp(alg, "sha3-512") == 0 ? EVP_sha3_512() : NULL;
    unsigned char digest[64];
    unsigned int dlen = 0;
    char hex[129];
    if (md == NULL || EVP_Digest(doc->str, doc->len, digest, &dlen, md, NULL) != 1) {
        err = GOV_ERR_VERIFY;
        goto out;
    }
    gov_hex_encode(digest, dlen, hex);
    if (strcmp(hex, checksum) != 0) {
        gov_log(GOV_LOG_ERROR, "refusing state: the document in Redis does not match its checksum",
                "tenant", tenant, "checksum", checksum, (const char *)NULL);
        err = GOV_ERR_VERIFY;
        goto out;
    }
    t = edge_tenant_new(tenant);
    if (t == NULL) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    edge_constitution_t *c = &t->constitution;
    snprintf(c->checksum, sizeof c->checksum, "%s", checksum);
    snprintf(c->hash_alg, sizeof c->hash_alg, "%s", alg);
    const char *v;
    snprintf(c->canonicalization, sizeof c->canonicalization, "%s",
             (v = hash_field(h, "canonicalization")) ? v : "");
    snprintf(c->version, sizeof c->version, "%s", (v = hash_field(h, "version")) ? v : "");
    c->verified_at_us = (v = hash_field(h, "verified_at")) ? strtoll(v, NULL, 10) : 0;
    c->signers = gov_strdup((v = hash_field(h, "signers")) ? v : "");
    c->source = gov_strdup((v = hash_field(h, "source")) ? v : "");
    c->doc = gov_strndup(doc->str, doc->len);
    c->doc_len = doc->len;
    if (!c->signers || !c->source || !c->doc) {
        err = GOV_ERR_NOMEM;
        goto out;
    }
    if ((err = gov_canon_parse(c->doc, c->doc_len, &c->doc_json, eb, sizeof eb)) != GOV_OK)
        goto out;
    err = edge_state_put_take(l->edge->state, t);
    t = NULL;
    if (err == GOV_OK)
        gov_log(GOV_LOG_INFO, "constitution loaded", "tenant", tenant, "version", c->version,
                "checksum", checksum, "trigger", trigger, (const char *)NULL);
out:
    edge_tenant_unref(t);
    freeReplyObject(rep);
    count_reload(l->edge, tenant, trigger, err == GOV_OK ? "loaded" : gov_err_code(err));
    return err;
}

/* Loads (trigger "startup") or reconciles every tenant in the index. */
static gov_err_t sync_all(edge_loader_t *l, const char *trigger) {
    char eb[256];
    redisReply *members = NULL;
    gov_err_t err = gov_redis_commandf(l->redis, &members, eb, sizeof eb, "SMEMBERS constitution:tenants");
    if (err != GOV_OK) {
        gov_log(GOV_LOG_WARN, "cannot read the tenant index", "error", eb, (const char *)NULL);
        return err;
    }
    edge_snapshot_t *s = edge_state_acquire(l->edge->state);
    for (size_t i = 0; err == GOV_OK && i < members->elements; i++) {
        const char *tenant = members->element[i]->str;
        if (!gov_tenant_valid(tenant, members->element[i]->len))
            continue;
        if (strcmp(trigger, "reconcile") == 0) {
            redisReply *cs = NULL;
            if ((err = gov_redis_commandf(l->redis, &cs, eb, sizeof eb,
                                          "HGET constitution:{%s} checksum", tenant)) != GOV_OK)
                break;
            edge_tenant_t *t = edge_snapshot_find(s, tenant);
            int same = cs->type == REDIS_REPLY_STRING && t &&
                       strcmp(cs->str, t->constitution.checksum) == 0;
            freeReplyObject(cs);
            if (same)
                continue;
        }
        gov_err_t e = load_tenant(l, tenant, trigger);
        if (e == GOV_ERR_UNAVAILABLE || e == GOV_ERR_TIMEOUT || e == GOV_ERR_REDIS)
            err = e; /* connection trouble: stop and retry the whole pass */
    }
    edge_snapshot_release(s);
    freeReplyObject(members);
    return err;
}

static void on_update(edge_loader_t *l, const gov_kafka_msg_t *m) {
    json_t *ev = NULL;
    const char *type = NULL;
    char eb[256];
    if (gov_avro_decode(l->avro, m->value, m->len, &ev, &type, eb, sizeof eb) != GOV_OK ||
        strcmp(type, "ConstitutionUpdated") != 0) {
        gov_log(GOV_LOG_WARN, "ignoring an undecodable constitution.updated message", "error", eb,
                (const char *)NULL);
        json_decref(ev);
        return;
    }
    const char *tenant = json_string_value(json_object_get(ev, "tenant"));
    if (tenant && gov_tenant_valid(tenant, strlen(tenant)))
        load_tenant(l, tenant, "event");
    json_decref(ev);
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
    attempt = 0;
    while (l->running) {
        gov_kafka_msg_t *m = NULL;
        if (gov_kafka_consumer_poll(l->consumer, 200, &m) == GOV_OK) {
            on_update(l, m);
            gov_kafka_msg_free(m);
        }
        int64_t now = gov_mono_micros();
        if (now >= next_health) {
            next_health = now + 1000000;
            int kh = gov_kafka_consumer_healthy(l->consumer);
            gov_status_set(e->status, "kafka", kh ? GOV_STATUS_OK : GOV_STATUS_NOT_READY,
                           kh ? NULL : "waiting for partition assignment or brokers", NULL);
            edge_snapshot_t *s = edge_state_acquire(e->state);
            gov_metric_set(e->m_snapshot_gen, NULL, (double)s->generation);
            edge_snapshot_release(s);
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
    err = gov_redis_new(e->cfg.redis_host, (int)e->cfg.redis_port, (int)e->cfg.redis_timeout_ms,
                        &l->redis, errbuf, errbuf_size);
    if (err != GOV_OK && err != GOV_ERR_UNAVAILABLE)
        goto fail;
    char group[160], host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(group, sizeof group, "gov-edge-%s-%s-%d", e->cfg.edge_id, host, (int)getpid());
    const char *topics[] = {"constitution.updated"};
    const char *extra[] = {"auto.offset.reset", "latest", "enable.auto.commit", "false", NULL};
    err = gov_kafka_consumer_new(e->cfg.kafka_brokers, group, "gov-edge", topics, 1, extra,
                                 &l->consumer, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto fail;
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
