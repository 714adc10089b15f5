/* test_policy_log.c - gov_policy_decision_avro against the JSON path it replaced.
 *
 * For every case of tests/vectors/policy (every decision, reasons with and
 * without excerpts, requests with and without action and tool), the
 * PolicyDecision written directly must be byte for byte what gov_avro_encode
 * writes for the same event built as a JSON object (the way gov-edge built
 * it before), and gov_avro_decode must read it back as that object.  Plus:
 * a buffer limit is reported, NULL arguments are refused, and a failed
 * allocation is reported as such.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_policy.h"
#include "gov_rulepack.h"
#include "unit_files.h"

static const gov_policy_log_t log_fields = {
    .event_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    .occurred_at_us = 1733580000123456,
    .tenant = "demo",
    .decision_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
    .constitution_hash = "2c8856577c9e0000000000000000000000000000000000000000000000000000",
    .policy_id = "base",
    .rulepack_version = "3",
    .evaluated_at_us = 1733580000123457,
    .edge_id = "edge-1",
};

/* The event as gov-edge built it before (json_pack over the same values). */
static json_t *event_json(const gov_policy_log_t *l, const gov_policy_request_t *req,
                          const gov_policy_decision_t *d) {
    json_t *reasons = json_array();
    for (size_t i = 0; i < d->nreasons; i++) {
        const gov_policy_reason_t *r = &d->reasons[i];
        json_array_append_new(
            reasons, json_pack("{s:s, s:s, s:I, s:s, s:o}", "rule_id", r->rule_id, "severity",
                               gov_severity_name(r->severity), "weight_micros",
                               (json_int_t)r->weight_micros, "message", r->message,
                               "excerpt",
                               r->has_excerpt ? json_stringn_nocheck(r->excerpt, r->excerpt_len)
                                              : json_null()));
    }
#define OPT(s) ((s) ? json_string(s) : json_null())
    json_t *ev = json_pack(
        "{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:I, s:o, s:s, s:s, s:s, s:s, "
        "s:I, s:s}",
        "event_id", l->event_id, "occurred_at", (json_int_t)l->occurred_at_us, "tenant",
        l->tenant, "decision_id", l->decision_id, "session_id", req->session_id, "user",
        req->user, "role", req->role, "action", OPT(req->action), "tool_name",
        OPT(req->tool_name), "tool_category", OPT(req->tool_category), "decision",
        gov_decision_name(d->decision), "score_micros", (json_int_t)d->score_micros, "reasons",
        reasons, "constitution_hash", l->constitution_hash, "policy_id", l->policy_id,
        "rulepack_version", l->rulepack_version, "input_digest", d->input_digest,
        "evaluated_at", (json_int_t)l->evaluated_at_us, "edge_id", l->edge_id);
#undef OPT
    assert_non_null(ev);
    return ev;
}

static void test_same_bytes_as_json_path(void **state) {
    (void)state;
    json_t *v = unit_policy_cases();
    gov_avro_registry_t *reg = NULL;
    char err[512] = "";
    assert_int_equal(gov_avro_registry_new(&reg, err, sizeof err), GOV_OK);
    gov_matcher_scratch_t *s = NULL;
    assert_int_equal(gov_matcher_scratch_new(NULL, &s), GOV_OK);
    json_t *cases = json_object_get(v, "cases"), *cs;
    size_t i, done = 0, with_excerpt = 0, decisions[3] = {0, 0, 0};
    json_array_foreach(cases, i, cs) {
        json_t *pj = json_object_get(json_object_get(v, "packs"),
                                     json_string_value(json_object_get(cs, "pack")));
        json_t *cj = json_object_get(json_object_get(v, "constitutions"),
                                     json_string_value(json_object_get(cs, "constitution")));
        json_t *rj = json_object_get(cs, "request");
        if (pj == NULL || cj == NULL || rj == NULL)
            continue;
        char *ptext = json_dumps(pj, JSON_COMPACT), *rtext = json_dumps(rj, JSON_COMPACT);
        gov_rulepack_t *p = NULL;
        gov_policy_constitution_t *c = NULL;
        gov_policy_request_t req;
        gov_policy_decision_t d;
        assert_int_equal(gov_rulepack_parse(ptext, strlen(ptext), NULL, &p, NULL, err, sizeof err),
                         GOV_OK);
        assert_int_equal(gov_policy_constitution_from_json(cj, &c, err, sizeof err), GOV_OK);
        assert_int_equal(
            gov_policy_request_parse(rtext, strlen(rtext), NULL, &req, NULL, err, sizeof err),
            GOV_OK);
        assert_int_equal(gov_policy_evaluate(c, p, &req, s, &d, NULL, err, sizeof err), GOV_OK);

        json_t *ev = event_json(&log_fields, &req, &d);
        unsigned char *want = NULL;
        size_t want_len = 0;
        assert_int_equal(
            gov_avro_encode(reg, "PolicyDecision", ev, &want, &want_len, err, sizeof err), GOV_OK);
        gov_buf_t b;
        gov_buf_init(&b, 0);
        assert_int_equal(gov_policy_decision_avro(reg, &log_fields, &req, &d, &b), GOV_OK);
        if (b.len != want_len || memcmp(b.data, want, want_len) != 0)
            fail_msg("case %s: the direct PolicyDecision (%zu bytes) differs from "
                     "gov_avro_encode's (%zu bytes)",
                     json_string_value(json_object_get(cs, "name")), b.len, want_len);
        json_t *back = NULL;
        const char *name = NULL;
        assert_int_equal(gov_avro_decode(reg, b.data, b.len, &back, &name, err, sizeof err),
                         GOV_OK);
        assert_string_equal(name, "PolicyDecision");
        assert_true(json_equal(back, ev));
        for (size_t k = 0; k < d.nreasons; k++)
            with_excerpt += d.reasons[k].has_excerpt;
        decisions[d.decision]++;
        done++;
        json_decref(back);
        json_decref(ev);
        gov_free(want);
        gov_buf_free(&b);
        gov_policy_decision_clear(&d);
        gov_policy_request_clear(&req);
        gov_policy_constitution_free(c);
        gov_rulepack_free(p);
        free(ptext);
        free(rtext);
    }
    assert_true(done >= 40);
    assert_true(with_excerpt > 10);
    assert_true(decisions[0] > 0 && decisions[1] > 0 && decisions[2] > 0);
    gov_matcher_scratch_free(s);
    gov_avro_registry_free(reg);
    json_decref(v);
}

static void test_limits_and_arguments(void **state) {
    (void)state;
    gov_avro_registry_t *reg = NULL;
    char err[256];
    assert_int_equal(gov_avro_registry_new(&reg, err, sizeof err), GOV_OK);
    const char *rtext = "{\"tenant\":\"demo\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\","
                        "\"prompt\":\"p\",\"tool\":{\"name\":\"n\",\"category\":\"c\"}}";
    gov_policy_request_t req;
    assert_int_equal(gov_policy_request_parse(rtext, strlen(rtext), NULL, &req, NULL, NULL, 0),
                     GOV_OK);
    gov_policy_decision_t d;
    memset(&d, 0, sizeof d);
    memcpy(d.input_digest, req.input_digest, sizeof d.input_digest);
    gov_buf_t b;
    gov_buf_init(&b, 20); /* smaller than any event */
    assert_int_equal(gov_policy_decision_avro(reg, &log_fields, &req, &d, &b), GOV_ERR_TOO_LARGE);
    gov_buf_free(&b);
    gov_buf_init(&b, 0);
    assert_int_equal(gov_policy_decision_avro(NULL, &log_fields, &req, &d, &b),
                     GOV_ERR_INVALID_ARG);
    assert_int_equal(gov_policy_decision_avro(reg, NULL, &req, &d, &b), GOV_ERR_INVALID_ARG);
    gov_alloc_fail_after(0);
    gov_err_t rc = gov_policy_decision_avro(reg, &log_fields, &req, &d, &b);
    gov_alloc_fail_reset();
    assert_int_equal(rc, GOV_ERR_NOMEM);
    gov_buf_free(&b);
    gov_policy_request_clear(&req);
    gov_avro_registry_free(reg);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_as_json_path),
        cmocka_unit_test(test_limits_and_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
