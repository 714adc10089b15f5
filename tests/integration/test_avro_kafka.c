/* test_avro_kafka.c - every event schema round-trips through the real broker.
 *
 * For each schema in schemas/, a realistic event with every field set (and,
 * for optional fields, once with null) is encoded as an Avro single-object
 * message, produced to a fresh topic, consumed back by another consumer and
 * decoded; the decoded event must equal the original exactly and carry the
 * schema's fingerprint in its header bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

static char topic[128];

static int setup(void **state) {
    (void)state;
    itest_unique("itest.roundtrip", topic, sizeof topic);
    itest_create_topic(topic, 1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    itest_delete_topic(topic);
    return 0;
}

static json_t *envelope(void) {
    char id[37];
    gov_uuid_v7(id);
    return json_pack("{s:s, s:I}", "event_id", id, "occurred_at", (json_int_t)gov_now_micros());
}

static json_t *with(json_t *base, json_t *fields) {
    json_object_update(base, fields);
    json_decref(fields);
    return base;
}

/* One full event per schema; `nulls` sets every optional field to null. */
static json_t *sample(const char *type, int nulls) {
    json_t *e = envelope();
    int64_t now = gov_now_micros();
    if (strcmp(type, "ConstitutionBundle") == 0)
        return with(e, json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}], s:s, s:o}",
            "tenant", "acme", "document_json", "{\"version\":\"1.2.0\",\"rules\":{\"max_risk_score\":0.8},\"note\":\"\xe2\x82\xac\"}",
            "canonicalization", "jcs", "hash_alg", "sha3-512", "checksum", "9f86d081884c7d65",
            "signatures", "signer_id", "human_operator", "algorithm", "ed25519", "signature", "deadbeef",
            "signer_id", "somabrain", "algorithm", "ed25519", "signature", "cafebabe",
            "source", "http://127.0.0.1:8790/constitution", "etag", nulls ? json_null() : json_string("\"v1\"")));
    if (strcmp(type, "ConstitutionUpdated") == 0)
        return with(e, json_pack("{s:s, s:s, s:s, s:s, s:o, s:[s, s], s:s, s:s}",
            "tenant", "acme", "checksum", "abcd", "hash_alg", "sha256", "version", "7",
            "previous_checksum", nulls ? json_null() : json_string("abcc"),
            "signers", "human_operator", "somabrain", "source", "govctl:root",
            "bundle_event_id", "0190a7b2-3c4d-7e5f-8a6b-7c8d9e0f1a2b"));
    if (strcmp(type, "RulePackPublished") == 0)
        return with(e, json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "tenant", "acme", "pack_id", "base",
            "version", "12", "rulepack_json", "{\"rules\":[]}", "published_by", "govctl:root",
            "signatures", nulls ? json_array()
                                : json_pack("[{s:s, s:s, s:s}]", "signer_id", "ops", "algorithm",
                                            "ed25519", "signature", "deadbeef")));
    if (strcmp(type, "RulePackUpdated") == 0)
        return with(e, json_pack("{s:s, s:s, s:s, s:s, s:o, s:[s], s:s, s:s}", "tenant", "acme",
            "pack_id", "base", "version", "13", "sha256", "abcd",
            "previous_version", nulls ? json_null() : json_string("12"), "signers", "ops",
            "published_event_id", "0190a7b2-3c4d-7e5f-8a6b-7c8d9e0f1a2b", "component",
            "gov-rulepacks"));
    if (strcmp(type, "PolicyDecision") == 0) {
        json_t *d = itest_decision_event("acme", "0190a7b2-3c4d-7e5f-8a6b-7c8d9e0f1a2d");
        json_decref(e);
        if (!nulls) {
            json_object_set_new(d, "tool_name", json_string("browser"));
        } else {
            json_object_set_new(d, "action", json_null());
            json_object_set_new(d, "tool_category", json_null());
            json_object_set_new(json_array_get(json_object_get(d, "reasons"), 0), "excerpt", json_null());
        }
        return d;
    }
    if (strcmp(type, "TokenIssued") == 0)
        return with(e, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:o}",
            "tenant", "acme", "jti", "j-1", "sub", "agent-7", "client_id", "svc", "scope", "eval read",
            "aud", "soma", "kid", "k1", "constitution_hash", "abcd", "issued_at", (json_int_t)now,
            "not_before", (json_int_t)now, "expires_at", (json_int_t)(now + 900000000LL),
            "session_id", nulls ? json_null() : json_string("s-1"),
            "decision_id", nulls ? json_null() : json_string("d-1")));
    if (strcmp(type, "TokenRevoked") == 0)
        return with(e, json_pack("{s:s, s:s, s:I, s:s, s:s}", "tenant", "acme", "jti", "j-1",
            "expires_at", (json_int_t)(now + 1000), "reason", "operator", "revoked_by", "svc"));
    if (strcmp(type, "KeyRotated") == 0)
        return with(e, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o, s:o}",
            "kid", "k2", "alg", "EdDSA", "public_jwk", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"}",
            "backend", "pkcs11", "state", "active", "created_at", (json_int_t)now,
            "activates_at", (json_int_t)now,
            "retires_at", nulls ? json_null() : json_integer(now + 86400000000LL),
            "previous_kid", nulls ? json_null() : json_string("k1"),
            "signatures", nulls ? json_array()
                                : json_pack("[{s:s, s:s, s:s}]", "signer_id", "ops", "algorithm",
                                            "ed25519", "signature", "deadbeef")));
    if (strcmp(type, "AuditEvent") == 0) {
        json_decref(e);
        json_t *a = itest_audit_event("acme", "constitution.rejected");
        json_object_set_new(a, "outcome", json_string("rejected"));
        if (nulls) {
            json_object_set_new(a, "subject", json_null());
            json_object_set_new(a, "details_json", json_null());
        } else {
            json_object_set_new(a, "reason", json_string("threshold_not_met"));
            json_object_set_new(a, "correlation_id", json_string("c-9"));
        }
        return a;
    }
    fail_msg("no sample for schema %s", type);
    return NULL;
}

static const char *const types[] = {"ConstitutionBundle", "ConstitutionUpdated",
                                    "RulePackPublished", "RulePackUpdated", "PolicyDecision",
                                    "TokenIssued",
                                    "TokenRevoked", "KeyRotated", "AuditEvent"};
#define NTYPES (sizeof types / sizeof types[0])

typedef struct expect {
    json_t *events[2 * NTYPES];
    size_t n, seen;
    int mismatch;
} expect_t;

static int check_next(void *opaque, const gov_kafka_msg_t *m) {
    expect_t *x = opaque;
    json_t *ev = NULL;
    const char *name = NULL;
    char eb[256];
    if (gov_avro_decode(itest_avro(), m->value, m->len, &ev, &name, eb, sizeof eb) != GOV_OK) {
        fprintf(stderr, "decode failed: %s\n", eb);
        x->mismatch = 1;
        return 1;
    }
    json_t *want = x->events[x->seen];
    uint64_t fp = 0;
    gov_avro_registry_fingerprint(itest_avro(), types[x->seen / 2], &fp);
    const unsigned char *b = m->value;
    uint64_t got_fp = 0;
    for (int i = 7; i >= 0; i--)
        got_fp = got_fp << 8 | b[2 + i];
    if (!json_equal(ev, want) || strcmp(name, types[x->seen / 2]) != 0 || got_fp != fp ||
        b[0] != 0xC3 || b[1] != 0x01) {
        char *a = json_dumps(want, JSON_SORT_KEYS), *c = json_dumps(ev, JSON_SORT_KEYS);
        fprintf(stderr, "mismatch for %s:\n want %s\n got  %s\n", types[x->seen / 2], a, c);
        free(a);
        free(c);
        x->mismatch = 1;
    }
    json_decref(ev);
    x->seen++;
    return x->mismatch || x->seen == x->n;
}

static void test_every_schema_round_trips_through_kafka(void **state) {
    (void)state;
    expect_t x;
    memset(&x, 0, sizeof x);
    for (size_t i = 0; i < NTYPES; i++) {
        for (int nulls = 0; nulls < 2; nulls++) {
            json_t *e = sample(types[i], nulls);
            json_object_set_new(e, "tenant", json_string("acme")); /* key */
            if (strcmp(types[i], "KeyRotated") == 0)
                json_object_del(e, "tenant");
            x.events[x.n++] = e;
            itest_produce_event(topic, types[i], e);
        }
    }
    assert_true(itest_consume_until(topic, check_next, &x, 60000));
    assert_false(x.mismatch);
    assert_int_equal(x.seen, x.n);
    for (size_t i = 0; i < x.n; i++)
        json_decref(x.events[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_schema_round_trips_through_kafka),
    };
    return cmocka_run_group_tests_name("avro-kafka", tests, setup, teardown);
}
