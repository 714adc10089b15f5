/* gov_status.c - component status: what /readyz is computed from.
 *
 * A mutex-protected array of components in registration order, each with its
 * state, the time of its last OK, its active revision and a short detail.
 * Text that may come from outside (detail, revision) is copied bounded and
 * made valid UTF-8 at the door, so building the /readyz JSON can never fail
 * on content.  A state value outside the enum is stored as ERROR: readiness
 * fails closed.  gov_status_set on a name never registered registers it, so
 * an ERROR report is never lost to a missing register call.
 *
 * What it does not do: serve anything (gov_admin and gov-edge's server answer
 * /readyz from gov_status_to_json).
 */
#include "gov_status.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gov_alloc.h"
#include "gov_util.h"

#define MAX_COMPONENTS 64
#define MAX_NAME_BYTES 128
#define MAX_DETAIL_BYTES 512
#define MAX_REVISION_BYTES 256

/* ------------------------------------------------------------------------ */
/* Component status                                                          */

typedef struct component {
    char *name;
    gov_status_state_t state;
    char *detail;   /* NULL: none */
    char *revision; /* NULL: none yet */
    int has_last_ok;
    struct timespec last_ok; /* CLOCK_REALTIME */
} component_t;

struct gov_status {
    pthread_mutex_t lock;
    component_t items[MAX_COMPONENTS];
    size_t count;
};

gov_status_t *gov_status_new(void) {
    gov_status_t *st = gov_calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        gov_free(st);
        return NULL;
    }
    return st;
}

void gov_status_free(gov_status_t *st) {
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->count; i++) {
        gov_free(st->items[i].name);
        gov_free(st->items[i].detail);
        gov_free(st->items[i].revision);
    }
    pthread_mutex_destroy(&st->lock);
    gov_free(st);
}

static component_t *component_find_locked(gov_status_t *st, const char *name) {
    for (size_t i = 0; i < st->count; i++)
        if (strcmp(st->items[i].name, name) == 0)
            return &st->items[i];
    return NULL;
}

/* Finds or appends name.  Caller holds st->lock.  Returns GOV_OK with *out
 * set, or an error with *out NULL. */
static gov_err_t component_get_locked(gov_status_t *st, const char *name,
                                      component_t **out) {
    *out = component_find_locked(st, name);
    if (*out != NULL)
        return GOV_OK;
    if (st->count == MAX_COMPONENTS)
        return GOV_ERR_TOO_LARGE;
    char *copy = gov_strdup(name);
    if (copy == NULL)
        return GOV_ERR_NOMEM;
    component_t *c = &st->items[st->count++];
    memset(c, 0, sizeof(*c));
    c->name = copy;
    c->state = GOV_STATUS_NOT_READY;
    *out = c;
    return GOV_OK;
}

static int component_name_ok(const char *name) {
    return name != NULL && name[0] != '\0' && strlen(name) <= MAX_NAME_BYTES &&
           gov_utf8_valid(name, strlen(name));
}

gov_err_t gov_status_register(gov_status_t *st, const char *component) {
    component_t *c;
    if (st == NULL || !component_name_ok(component))
        return GOV_ERR_INVALID_ARG;
    pthread_mutex_lock(&st->lock);
    gov_err_t err = component_get_locked(st, component, &c);
    pthread_mutex_unlock(&st->lock);
    return err;
}

void gov_status_set(gov_status_t *st, const char *component,
                    gov_status_state_t state, const char *detail,
                    const char *revision) {
    char *detail_copy = NULL, *revision_copy = NULL;
    component_t *c;
    if (st == NULL || !component_name_ok(component))
        return;
    if (state != GOV_STATUS_NOT_READY && state != GOV_STATUS_OK && state != GOV_STATUS_DEGRADED)
        state = GOV_STATUS_ERROR;
    /* Copies are made outside the lock.  If one fails, the state change still
     * happens: a missing detail is better than a stale state. */
    if (detail)
        detail_copy = gov_utf8_sanitize(detail, MAX_DETAIL_BYTES);
    if (revision)
        revision_copy = gov_utf8_sanitize(revision, MAX_REVISION_BYTES);

    pthread_mutex_lock(&st->lock);
    if (component_get_locked(st, component, &c) != GOV_OK)
        goto out;
    c->state = state;
    gov_free(c->detail);
    c->detail = detail_copy;
    detail_copy = NULL;
    if (revision) {
        /* On allocation failure the revision becomes unknown, not stale. */
        gov_free(c->revision);
        c->revision = revision_copy;
        revision_copy = NULL;
    }
    if (state == GOV_STATUS_OK) {
        clock_gettime(CLOCK_REALTIME, &c->last_ok);
        c->has_last_ok = 1;
    }
out:
    pthread_mutex_unlock(&st->lock);
    gov_free(detail_copy);
    gov_free(revision_copy);
}

/* 1 when ready (every component OK or DEGRADED), 2 when ready with some
 * component DEGRADED, 0 when not ready. */
static int status_ready_locked(const gov_status_t *st) {
    if (st->count == 0)
        return 0;
    int degraded = 0;
    for (size_t i = 0; i < st->count; i++) {
        if (st->items[i].state == GOV_STATUS_DEGRADED)
            degraded = 1;
        else if (st->items[i].state != GOV_STATUS_OK)
            return 0;
    }
    return degraded ? 2 : 1;
}

int gov_status_ready(gov_status_t *st) {
    if (st == NULL)
        return 0;
    pthread_mutex_lock(&st->lock);
    int ready = status_ready_locked(st) != 0;
    pthread_mutex_unlock(&st->lock);
    return ready;
}

static const char *state_name(gov_status_state_t s) {
    switch (s) {
    case GOV_STATUS_NOT_READY:
        return "not_ready";
    case GOV_STATUS_OK:
        return "ok";
    case GOV_STATUS_DEGRADED:
        return "degraded";
    case GOV_STATUS_ERROR:
        break;
    }
    return "error";
}

/* RFC 3339 UTC with milliseconds: 2026-11-24T10:16:00.123Z. */
static void format_rfc3339(const struct timespec *ts, char *buf, size_t size) {
    struct tm tm;
    char date[32];
    gmtime_r(&ts->tv_sec, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03ldZ", date, ts->tv_nsec / 1000000L);
}

/* Sets obj[key] to the string text (already valid UTF-8) or to null when
 * text is NULL.  Returns 0, or -1 on allocation failure. */
static int set_text_or_null(json_t *obj, const char *key, const char *text) {
    return json_object_set_new(obj, key, text ? json_string(text) : json_null());
}

/* Returns a new reference to {"status":..., "components":[...]} and sets
 * *ready, or NULL on allocation failure.  Cost: O(components). */
json_t *gov_status_to_json(gov_status_t *st, int *ready) {
    json_t *root = NULL, *list = NULL, *result = NULL;
    pthread_mutex_lock(&st->lock);
    int level = status_ready_locked(st);
    *ready = level != 0;
    root = json_object();
    if (root == NULL ||
        set_text_or_null(root, "status",
                         level == 2 ? "degraded" : level ? "ok" : "not_ready") != 0)
        goto out;
    list = json_array();
    if (json_object_set_new(root, "components", list) != 0)
        goto out;
    for (size_t i = 0; i < st->count; i++) {
        const component_t *c = &st->items[i];
        char when[64];
        if (c->has_last_ok)
            format_rfc3339(&c->last_ok, when, sizeof(when));
        json_t *item = json_object();
        if (json_array_append_new(list, item) != 0 ||
            set_text_or_null(item, "name", c->name) != 0 ||
            set_text_or_null(item, "state", state_name(c->state)) != 0 ||
            set_text_or_null(item, "last_ok", c->has_last_ok ? when : NULL) != 0 ||
            set_text_or_null(item, "revision", c->revision) != 0 ||
            set_text_or_null(item, "detail", c->detail) != 0)
            goto out;
    }
    result = root;
    root = NULL;
out:
    pthread_mutex_unlock(&st->lock);
    json_decref(root);
    return result;
}
