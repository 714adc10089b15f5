/* gov_events.c - encode + produce-and-wait for shared events, and the
 * builders of the identity events.
 *
 * The builders fill a jansson object member by member and give up on the
 * first failed set (out of memory): an event is either whole or NULL.
 */
#include "gov_events.h"

#include <stdio.h>
#include <string.h>

#include <stdint.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "gov_alloc.h"
#include "gov_identity_sig.h"
#include "gov_signer_rt.h"
#include "gov_time.h"
#include "gov_util.h"

gov_err_t gov_events_emit_with(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                               const char *topic, const char *type, const char *key,
                               json_t *event, const gov_kafka_header_t *headers,
                               size_t nheaders, char *errbuf, size_t errbuf_size) {
    unsigned char *buf = NULL;
    size_t len = 0;
    gov_err_t err = gov_avro_encode(reg, type, event, &buf, &len, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    err = gov_kafka_produce_sync(p, topic, key, strlen(key), buf, len, headers, nheaders,
                                 GOV_EVENTS_ACK_TIMEOUT_MS, NULL, NULL, errbuf, errbuf_size);
    gov_free(buf);
    return err;
}

gov_err_t gov_events_emit(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                          const char *topic, const char *type, const char *key,
                          json_t *event, char *errbuf, size_t errbuf_size) {
    return gov_events_emit_with(p, reg, topic, type, key, event, NULL, 0, errbuf, errbuf_size);
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

json_t *gov_events_audit_new(const gov_audit_fields_t *f) {
    char id[GOV_UUID_STRLEN + 1];
    if (f->event_id)
        snprintf(id, sizeof id, "%s", f->event_id);
    else if (gov_uuid_v7(id) != GOV_OK)
        return NULL;
    char *details = f->details ? json_dumps(f->details, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_t *ev = json_object();
    if (ev == NULL || (f->details && details == NULL) ||
        json_object_set_new(ev, "event_id", json_string(id)) ||
        json_object_set_new(ev, "occurred_at", json_integer(gov_now_micros())) ||
        json_object_set_new(ev, "tenant", str_or_null(f->tenant)) ||
        json_object_set_new(ev, "component", str_or_null(f->component)) ||
        json_object_set_new(ev, "actor", str_or_null(f->actor)) ||
        json_object_set_new(ev, "action", str_or_null(f->action)) ||
        json_object_set_new(ev, "outcome", str_or_null(f->outcome)) ||
        json_object_set_new(ev, "reason", str_or_null(f->reason)) ||
        json_object_set_new(ev, "subject", str_or_null(f->subject)) ||
        json_object_set_new(ev, "correlation_id", str_or_null(f->correlation_id)) ||
        json_object_set_new(ev, "details_json", str_or_null(details))) {
        json_decref(ev);
        ev = NULL;
    }
    gov_free(details);
    return ev;
}

gov_err_t gov_events_audit(gov_kafka_producer_t *p, const gov_avro_registry_t *reg,
                           const gov_audit_fields_t *f, char *errbuf, size_t errbuf_size) {
    json_t *ev = gov_events_audit_new(f);
    if (ev == NULL) {
        snprintf(errbuf, errbuf_size, "out of memory building an audit event");
        return GOV_ERR_NOMEM;
    }
    gov_err_t err = gov_events_emit(p, reg, GOV_TOPIC_AUDIT, "AuditEvent", f->tenant, ev, errbuf,
                                    errbuf_size);
    json_decref(ev);
    return err;
}

/* --- identity event builders ------------------------------------------------ */

/* Sets the envelope: event_id (given, or a fresh UUIDv7) and occurred_at
 * (given, or now).  0 on success. */
static int set_envelope(json_t *ev, const char *event_id, int64_t occurred_at) {
    char id[GOV_UUID_STRLEN + 1];
    if (event_id == NULL) {
        if (gov_uuid_v7(id) != GOV_OK)
            return -1;
        event_id = id;
    }
    return json_object_set_new(ev, "event_id", json_string(event_id)) ||
           json_object_set_new(ev, "occurred_at",
                               json_integer(occurred_at ? occurred_at : gov_now_micros()));
}

static json_t *string_array(const char *const *items, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, str_or_null(items[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* Finishes a builder: ev when every set succeeded (failed == 0), else NULL. */
static json_t *built(json_t *ev, int failed) {
    if (failed) {
        json_decref(ev);
        return NULL;
    }
    return ev;
}

json_t *gov_events_client_registered_new(const gov_client_registered_t *c) {
    json_t *ev = json_object();
    if (ev == NULL)
        return NULL;
    int failed = set_envelope(ev, c->event_id, c->occurred_at) ||
                 json_object_set_new(ev, "client_id", str_or_null(c->client_id)) ||
                 json_object_set_new(ev, "secret_hash", str_or_null(c->secret_hash)) ||
                 json_object_set_new(ev, "tenants", string_array(c->tenants, c->ntenants)) ||
                 json_object_set_new(ev, "scopes", string_array(c->scopes, c->nscopes)) ||
                 json_object_set_new(ev, "registered_by", str_or_null(c->registered_by)) ||
                 json_object_set_new(ev, "signatures", json_array());
    return built(ev, failed);
}

json_t *gov_events_client_removed_new(const char *event_id, int64_t occurred_at,
                                      const char *client_id, const char *removed_by) {
    json_t *ev = json_object();
    if (ev == NULL)
        return NULL;
    int failed = set_envelope(ev, event_id, occurred_at) ||
                 json_object_set_new(ev, "client_id", str_or_null(client_id)) ||
                 json_object_set_new(ev, "removed_by", str_or_null(removed_by)) ||
                 json_object_set_new(ev, "signatures", json_array());
    return built(ev, failed);
}

json_t *gov_events_key_rotated_new(const gov_key_rotated_t *k) {
    json_t *ev = json_object();
    if (ev == NULL)
        return NULL;
    int failed =
        set_envelope(ev, k->event_id, k->occurred_at) ||
        json_object_set_new(ev, "kid", str_or_null(k->kid)) ||
        json_object_set_new(ev, "alg", str_or_null(k->alg)) ||
        json_object_set_new(ev, "public_jwk", str_or_null(k->public_jwk)) ||
        json_object_set_new(ev, "backend", str_or_null(k->backend)) ||
        json_object_set_new(ev, "state", str_or_null(k->state)) ||
        json_object_set_new(ev, "created_at", json_integer(k->created_at)) ||
        json_object_set_new(ev, "activates_at", json_integer(k->activates_at)) ||
        json_object_set_new(ev, "retires_at",
                            k->retires_at < 0 ? json_null() : json_integer(k->retires_at)) ||
        json_object_set_new(ev, "previous_kid", str_or_null(k->previous_kid)) ||
        json_object_set_new(ev, "signatures", json_array());
    return built(ev, failed);
}

json_t *gov_events_token_issued_new(const gov_token_issued_t *t) {
    json_t *ev = json_object();
    if (ev == NULL)
        return NULL;
    int failed = set_envelope(ev, t->event_id, t->occurred_at) ||
                 json_object_set_new(ev, "tenant", str_or_null(t->tenant)) ||
                 json_object_set_new(ev, "jti", str_or_null(t->jti)) ||
                 json_object_set_new(ev, "sub", str_or_null(t->sub)) ||
                 json_object_set_new(ev, "client_id", str_or_null(t->client_id)) ||
                 json_object_set_new(ev, "scope", str_or_null(t->scope)) ||
                 json_object_set_new(ev, "aud", str_or_null(t->aud)) ||
                 json_object_set_new(ev, "kid", str_or_null(t->kid)) ||
                 json_object_set_new(ev, "constitution_hash", str_or_null(t->constitution_hash)) ||
                 json_object_set_new(ev, "issued_at", json_integer(t->issued_at)) ||
                 json_object_set_new(ev, "not_before", json_integer(t->not_before)) ||
                 json_object_set_new(ev, "expires_at", json_integer(t->expires_at)) ||
                 json_object_set_new(ev, "session_id", str_or_null(t->session_id)) ||
                 json_object_set_new(ev, "decision_id", str_or_null(t->decision_id));
    return built(ev, failed);
}

json_t *gov_events_token_revoked_new(const char *event_id, int64_t occurred_at,
                                     const char *tenant, const char *jti, int64_t expires_at,
                                     const char *reason, const char *revoked_by) {
    json_t *ev = json_object();
    if (ev == NULL)
        return NULL;
    int failed = set_envelope(ev, event_id, occurred_at) ||
                 json_object_set_new(ev, "tenant", str_or_null(tenant)) ||
                 json_object_set_new(ev, "jti", str_or_null(jti)) ||
                 json_object_set_new(ev, "expires_at", json_integer(expires_at)) ||
                 json_object_set_new(ev, "reason", str_or_null(reason)) ||
                 json_object_set_new(ev, "revoked_by", str_or_null(revoked_by));
    return built(ev, failed);
}

int gov_events_scope_token_valid(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > GOV_EVENTS_SCOPE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x21 || ch > 0x7E || ch == 0x22 || ch == 0x5C)
            return 0;
    }
    return 1;
}

int gov_events_secret_hash_valid(const char *s) {
    if (s == NULL || strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 64)
        return 0;
    for (const char *c = s + 7; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return 0;
    return 1;
}

/* --- signing identity events --------------------------------------------------- */

gov_err_t gov_events_sign(json_t *ev, const char *type, const gov_events_signer_t *signers,
                          size_t n, char *errbuf, size_t errbuf_size) {
    char *payload = NULL;
    size_t len = 0;
    json_t *sigs = json_array();
    gov_err_t err = sigs ? GOV_OK : GOV_ERR_NOMEM;
    if (err == GOV_OK && n == 0) {
        snprintf(errbuf, errbuf_size, "no operator key to sign the %s with", type);
        err = GOV_ERR_INVALID_ARG;
    }
    if (err == GOV_OK)
        err = gov_identity_sig_payload(type, ev, &payload, &len, errbuf, errbuf_size);
    for (size_t i = 0; err == GOV_OK && i < n; i++)
        err = gov_identity_sig_sign(signers[i].signer, signers[i].signer_id, payload, len, sigs,
                                    errbuf, errbuf_size);
    if (err == GOV_OK && json_object_set(ev, "signatures", sigs) != 0)
        err = GOV_ERR_NOMEM;
    if (err == GOV_ERR_NOMEM)
        snprintf(errbuf, errbuf_size, "out of memory signing a %s", type);
    json_decref(sigs);
    gov_free(payload);
    return err;
}

/* The largest operator key file read (a PKCS#8 Ed25519 PEM is 119 bytes). */
#define OPERATOR_KEY_MAX 4096

/* Refuses every passphrase request: an encrypted key fails instead of
 * blocking on a terminal prompt. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

gov_err_t gov_events_pem_private_key(const char *pem, size_t len, const char *path,
                                     EVP_PKEY **out, gov_reason_t *why, char *errbuf,
                                     size_t errbuf_size) {
    *out = NULL;
    BIO *bio = len <= INT32_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    if (key == NULL)
        return gov_reason_fail(why, GOV_REASON_KEY_INVALID, GOV_ERR_CONFIG, errbuf, errbuf_size,
                               "%s is not a PEM private key (encrypted keys are not supported)",
                               path);
    if (EVP_PKEY_id(key) != EVP_PKEY_ED25519) {
        const char *type = EVP_PKEY_get0_type_name(key);
        gov_reason_fail(why, GOV_REASON_KEY_INVALID, GOV_ERR_CONFIG, errbuf, errbuf_size,
                        "%s is %s %s key, not Ed25519", path, type ? "an" : "a",
                        type ? type : "non-Ed25519");
        EVP_PKEY_free(key);
        return GOV_ERR_CONFIG;
    }
    *out = key;
    return GOV_OK;
}

gov_err_t gov_events_operator_key_load(const char *path, gov_signer_t **out, gov_reason_t *why,
                                       char *errbuf, size_t errbuf_size) {
    char *pem = NULL;
    size_t len = 0;
    EVP_PKEY *key = NULL;
    *out = NULL;
    gov_err_t err = gov_keystore_read_private(path, "operator key file", OPERATOR_KEY_MAX, &pem,
                                              &len, why, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    err = gov_events_pem_private_key(pem, len, path, &key, why, errbuf, errbuf_size);
    OPENSSL_cleanse(pem, OPERATOR_KEY_MAX + 1);
    gov_free(pem);
    if (err != GOV_OK)
        return err;
    /* the key is stolen: freed on failure too */
    if ((err = gov_signer_from_evp_take(key, "file", out, errbuf, errbuf_size)) != GOV_OK)
        return gov_reason_fail(why, GOV_REASON_KEY_INVALID, GOV_ERR_CONFIG, errbuf, errbuf_size,
                               "%s is not an Ed25519 private key", path);
    return GOV_OK;
}
