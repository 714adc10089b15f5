/* snapshot.c - copy-on-write snapshots of per-tenant state.
 *
 * The mutex protects only the `current` pointer and its reference count
 * increment, so acquiring a snapshot costs one uncontended lock; building a
 * new snapshot (allocation, copying n pointers) happens outside it.
 * Writers are serialized by a second mutex so two updates never race to
 * build from the same base and lose one of them.
 */
#include "snapshot.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_time.h"

edge_tenant_t *edge_tenant_new(const char *name) {
    edge_tenant_t *t = gov_calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    atomic_store(&t->refs, 1);
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

edge_tenant_t *edge_tenant_ref(edge_tenant_t *t) {
    atomic_fetch_add(&t->refs, 1);
    return t;
}

void edge_constitution_clear(edge_constitution_t *c) {
    gov_free(c->signers);
    gov_free(c->source);
    gov_free(c->doc);
    json_decref(c->doc_json);
    gov_policy_constitution_free(c->rules);
    memset(c, 0, sizeof *c);
}

void edge_rulepack_clear(edge_rulepack_t *p) {
    gov_rulepack_free(p->pack);
    memset(p, 0, sizeof *p);
}

void edge_tenant_unref(edge_tenant_t *t) {
    if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    edge_constitution_clear(&t->constitution);
    edge_rulepack_clear(&t->rulepack);
    gov_free(t);
}

gov_err_t edge_constitution_compile(edge_constitution_t *c, char *errbuf, size_t errbuf_size) {
    gov_err_t err = gov_canon_parse(c->doc, c->doc_len, &c->doc_json, NULL, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    if (gov_policy_constitution_from_json(c->doc_json, &c->rules, c->rules_error,
                                          sizeof c->rules_error) != GOV_OK)
        c->rules = NULL;
    return GOV_OK;
}

gov_err_t edge_constitution_copy(edge_constitution_t *dst, const edge_constitution_t *src) {
    char eb[256];
    memcpy(dst->checksum, src->checksum, sizeof dst->checksum);
    memcpy(dst->hash_alg, src->hash_alg, sizeof dst->hash_alg);
    memcpy(dst->canonicalization, src->canonicalization, sizeof dst->canonicalization);
    memcpy(dst->version, src->version, sizeof dst->version);
    dst->verified_at_us = src->verified_at_us;
    dst->signers = gov_strdup(src->signers ? src->signers : "");
    dst->source = gov_strdup(src->source ? src->source : "");
    dst->doc = gov_strndup(src->doc, src->doc_len);
    dst->doc_len = src->doc_len;
    gov_err_t err = GOV_ERR_NOMEM;
    if (dst->signers && dst->source && dst->doc)
        err = edge_constitution_compile(dst, eb, sizeof eb);
    if (err != GOV_OK)
        edge_constitution_clear(dst);
    return err;
}

gov_err_t edge_rulepack_copy(edge_rulepack_t *dst, const edge_rulepack_t *src) {
    size_t len = 0;
    const char *text = gov_rulepack_canonical_json(src->pack, &len);
    gov_rulepack_error_t pe;
    gov_err_t err = gov_rulepack_parse(text, len, NULL, &dst->pack, &pe, dst->error,
                                       sizeof dst->error);
    if (err != GOV_OK) {
        edge_rulepack_clear(dst);
        return err;
    }
    memcpy(dst->sha256, src->sha256, sizeof dst->sha256);
    return GOV_OK;
}

static int cmp_name(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(edge_tenant_t *const *)elem)->name);
}

edge_tenant_t *edge_snapshot_find(const edge_snapshot_t *s, const char *tenant) {
    if (s == NULL || s->n == 0)
        return NULL;
    edge_tenant_t **hit = bsearch(tenant, s->tenants, s->n, sizeof *s->tenants, cmp_name);
    return hit ? *hit : NULL;
}

void edge_snapshot_release(edge_snapshot_t *s) {
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        edge_tenant_unref(s->tenants[i]);
    gov_free(s->tenants);
    gov_free(s);
}

struct edge_state {
    pthread_mutex_t mu;       /* guards `current` */
    pthread_mutex_t writer;   /* one writer at a time */
    edge_snapshot_t *current;
    atomic_int loaded;
};

edge_state_t *edge_state_new(void) {
    edge_state_t *st = gov_calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->current = gov_calloc(1, sizeof *st->current);
    if (st->current == NULL) {
        gov_free(st);
        return NULL;
    }
    atomic_store(&st->current->refs, 1);
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->writer, NULL);
    return st;
}

void edge_state_free(edge_state_t *st) {
    if (st == NULL)
        return;
    edge_snapshot_release(st->current);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->writer);
    gov_free(st);
}

edge_snapshot_t *edge_state_acquire(edge_state_t *st) {
    pthread_mutex_lock(&st->mu);
    edge_snapshot_t *s = st->current;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&st->mu);
    return s;
}

gov_err_t edge_state_put_take(edge_state_t *st, edge_tenant_t *t) {
    pthread_mutex_lock(&st->writer);
    edge_snapshot_t *base = edge_state_acquire(st);
    gov_err_t err = GOV_ERR_NOMEM;
    edge_snapshot_t *next = gov_calloc(1, sizeof *next);
    if (next == NULL)
        goto out;
    next->tenants = gov_calloc(base->n + 1, sizeof *next->tenants);
    if (next->tenants == NULL) {
        gov_free(next);
        next = NULL;
        goto out;
    }
    atomic_store(&next->refs, 1);
    size_t j = 0, i = 0;
    int placed = 0;
    for (; i < base->n; i++) {
        int c = strcmp(base->tenants[i]->name, t->name);
        if (!placed && c >= 0) {
            next->tenants[j++] = t; /* takes the caller's reference */
            placed = 1;
            if (c == 0)
                continue; /* replaced */
        }
        next->tenants[j++] = edge_tenant_ref(base->tenants[i]);
    }
    if (!placed)
        next->tenants[j++] = t;
    next->n = j;
    next->generation = base->generation + 1;
    next->built_at_us = gov_now_micros();
    t = NULL;

    pthread_mutex_lock(&st->mu);
    edge_snapshot_t *old = st->current;
    st->current = next;
    pthread_mutex_unlock(&st->mu);
    edge_snapshot_release(old);
    err = GOV_OK;
out:
    edge_snapshot_release(base);
    pthread_mutex_unlock(&st->writer);
    if (t)
        edge_tenant_unref(t);
    return err;
}

int edge_state_loaded(edge_state_t *st) {
    return atomic_load(&st->loaded);
}

void edge_state_set_loaded(edge_state_t *st) {
    atomic_store(&st->loaded, 1);
}
