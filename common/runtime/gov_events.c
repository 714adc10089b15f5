/* gov_events.c - encode + produce-and-wait for shared events. */
#include "gov_events.h"

#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_time.h"
#include "gov_util.h"

gov_err_t gov_events_emit(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                          const char *topic, const char *type, const char *key,
                          json_t *event, char *errbuf, size_t errbuf_size) {
    unsigned char *buf = NULL;
    size_t len = 0;
    gov_err_t err = gov_avro_encode(reg, type, event, &buf, &len, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    err = gov_kafka_produce_sync(p, topic, key, strlen(key), buf, len, NULL, 0,
                                 GOV_EVENTS_ACK_TIMEOUT_MS, NULL, NULL, errbuf, errbuf_size);
    gov_free(buf);
    return err;
}

/* A JSON string of s; bytes that are not UTF-8 become U+FFFD, so a caller's
 * bad input can never look like out-of-memory (which is retried forever). */
static json_t *str_or_null(const char *s) {
    if (s == NULL)
        return json_null();
    json_t *j = json_string(s);
    if (j == NULL && !gov_utf8_valid(s, strlen(s))) {
        char *clean = gov_utf8_sanitize(s, (size_t)-1);
        j = clean ? json_string(clean) : NULL;
        gov_free(clean);
    }
    return j;
}

gov_err_t gov_events_audit(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                           const gov_audit_fields_t *f, char *errbuf, size_t errbuf_size) {
    char id[GOV_UUID_STRLEN + 1];
    if (f->event_id)
        snprintf(id, sizeof id, "%s", f->event_id);
    else if (gov_uuid_v7(id) != GOV_OK)
        return GOV_ERR_CRYPTO;
    char *details = f->details ? json_dumps(f->details, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_t *ev = json_object();
    gov_err_t err = GOV_ERR_NOMEM;
    if (ev == NULL || (f->details && details == NULL))
        goto out;
    if (json_object_set_new(ev, "event_id", json_string(id)) ||
        json_object_set_new(ev, "occurred_at", json_integer(gov_now_micros())) ||
        json_object_set_new(ev, "tenant", str_or_null(f->tenant)) ||
        json_object_set_new(ev, "component", str_or_null(f->component)) ||
        json_object_set_new(ev, "actor", str_or_null(f->actor)) ||
        json_object_set_new(ev, "action", str_or_null(f->action)) ||
        json_object_set_new(ev, "outcome", str_or_null(f->outcome)) ||
        json_object_set_new(ev, "reason", str_or_null(f->reason)) ||
        json_object_set_new(ev, "subject", str_or_null(f->subject)) ||
        json_object_set_new(ev, "correlation_id", str_or_null(f->correlation_id)) ||
        json_object_set_new(ev, "details_json", str_or_null(details)))
        goto out;
    err = gov_events_emit(p, reg, GOV_TOPIC_AUDIT, "AuditEvent", f->tenant, ev, errbuf,
                          errbuf_size);
out:
    if (err == GOV_ERR_NOMEM)
        snprintf(errbuf, errbuf_size, "out of memory building an audit event");
    json_decref(ev);
    gov_free(details);
    return err;
}
