/* test_reason.c - gov_reason: the one list of stable reason codes.
 *
 * Checks what makes the list safe to hand out: every value has a non-empty
 * snake_case code and a meaning, no two values share a code, code -> value
 * -> code round-trips, values outside the list are answered safely, and the
 * codes users already see keep their exact text (and the former
 * gov_reject_t values their numbers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gov_reason.h"

static int snake_case(const char *s) {
    if (s == NULL || s[0] < 'a' || s[0] > 'z')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return s[strlen(s) - 1] != '_';
}

static void test_every_value_named(void **state) {
    (void)state;
    for (int i = 0; i < GOV_REASON_COUNT_; i++) {
        const char *c = gov_reason_code((gov_reason_t)i);
        assert_non_null(c);
        if (!snake_case(c))
            fail_msg("value %d has code \"%s\", not snake_case", i, c);
        assert_string_not_equal(c, "unknown");
        assert_true(strlen(gov_reason_meaning((gov_reason_t)i)) > 0);
    }
}

static void test_codes_unique(void **state) {
    (void)state;
    for (int i = 0; i < GOV_REASON_COUNT_; i++)
        for (int j = i + 1; j < GOV_REASON_COUNT_; j++)
            if (strcmp(gov_reason_code((gov_reason_t)i), gov_reason_code((gov_reason_t)j)) == 0)
                fail_msg("values %d and %d share the code \"%s\"", i, j,
                         gov_reason_code((gov_reason_t)i));
}

static void test_round_trip(void **state) {
    (void)state;
    for (int i = 0; i < GOV_REASON_COUNT_; i++) {
        gov_reason_t r = GOV_REASON_COUNT_;
        assert_int_equal(gov_reason_from_code(gov_reason_code((gov_reason_t)i), &r), 0);
        assert_int_equal(r, i);
    }
    gov_reason_t r = GOV_REASON_CHECKSUM_MISMATCH;
    assert_int_equal(gov_reason_from_code("no_such_reason", &r), -1);
    assert_int_equal(r, GOV_REASON_CHECKSUM_MISMATCH);   /* untouched on failure */
    assert_int_equal(gov_reason_from_code(NULL, &r), -1);
    assert_int_equal(gov_reason_from_code("", &r), -1);
    assert_int_equal(gov_reason_from_code("Checksum_mismatch", &r), -1);  /* exact */
    assert_int_equal(gov_reason_from_code("checksum_mismatch", NULL), 0);
}

static void test_out_of_range(void **state) {
    (void)state;
    assert_string_equal(gov_reason_code(GOV_REASON_COUNT_), "unknown");
    assert_string_equal(gov_reason_code((gov_reason_t)-1), "unknown");
    assert_string_equal(gov_reason_code((gov_reason_t)100000), "unknown");
    assert_string_equal(gov_reason_meaning(GOV_REASON_COUNT_), "");
    assert_string_equal(gov_reason_meaning((gov_reason_t)-7), "");
}

/* The texts users see, and the numbers gov_reject_t had: never changed. */
static void test_stable_codes(void **state) {
    (void)state;
    static const struct {
        gov_reason_t r;
        int value;          /* -1: not pinned */
        const char *code;
    } pinned[] = {
        {GOV_REASON_NONE, 0, "none"},
        {GOV_REASON_UNKNOWN_CANONICALIZATION, 1, "unknown_canonicalization"},
        {GOV_REASON_UNKNOWN_HASH_ALGORITHM, 2, "unknown_hash_algorithm"},
        {GOV_REASON_MALFORMED_CHECKSUM, 3, "malformed_checksum"},
        {GOV_REASON_MALFORMED_DOCUMENT, 4, "malformed_document"},
        {GOV_REASON_CHECKSUM_MISMATCH, 5, "checksum_mismatch"},
        {GOV_REASON_NO_SIGNATURES, 6, "no_signatures"},
        {GOV_REASON_TOO_MANY_SIGNATURES, 7, "too_many_signatures"},
        {GOV_REASON_UNKNOWN_SIGNATURE_ALGORITHM, 8, "unknown_signature_algorithm"},
        {GOV_REASON_DUPLICATE_SIGNER, 9, "duplicate_signer"},
        {GOV_REASON_MALFORMED_SIGNATURE, 10, "malformed_signature"},
        {GOV_REASON_INVALID_SIGNATURE, 11, "invalid_signature"},
        {GOV_REASON_INVALID_GOVERNANCE, 12, "invalid_governance"},
        {GOV_REASON_UNTRUSTED_SIGNER, 13, "untrusted_signer"},
        {GOV_REASON_SIGNER_NOT_PERMITTED, 14, "signer_not_permitted"},
        {GOV_REASON_THRESHOLD_NOT_MET, 15, "threshold_not_met"},
        {GOV_REASON_INVALID_VERSION, 16, "invalid_version"},
        {GOV_REASON_EQUIVOCATION, 17, "equivocation"},
        {GOV_REASON_VERSION_ROLLBACK, 18, "version_rollback"},
        {GOV_REASON_TENANT_MISMATCH, 19, "tenant_mismatch"},
        {GOV_REASON_DOCUMENT_TOO_LARGE, 20, "document_too_large"},
        {GOV_REASON_INTERNAL_ERROR, 21, "internal_error"},
        {GOV_REASON_INVALID_JSON, -1, "invalid_json"},
        {GOV_REASON_INVALID_BUNDLE, -1, "invalid_bundle"},
        {GOV_REASON_INTERNAL, -1, "internal"},
        {GOV_REASON_SYNTAX, -1, "syntax"},
        {GOV_REASON_DUPLICATE_KEY, -1, "duplicate_key"},
        {GOV_REASON_TOO_DEEP, -1, "too_deep"},
        {GOV_REASON_INVALID_REQUEST, -1, "invalid_request"},
        {GOV_REASON_TRANSFER_FAILED, -1, "transfer_failed"},
        {GOV_REASON_KAFKA_UNAVAILABLE, -1, "kafka_unavailable"},
        {GOV_REASON_UNEXPECTED_TOPIC, -1, "unexpected_topic"},
        {GOV_REASON_UNDECODABLE, -1, "undecodable"},
        {GOV_REASON_UNMATERIALIZABLE, -1, "unmaterializable"},
        /* HTTP error bodies and govctl's stderr */
        {GOV_REASON_UNSUPPORTED_MEDIA_TYPE, -1, "unsupported_media_type"},
        {GOV_REASON_OUT_OF_MEMORY, -1, "out_of_memory"},
        {GOV_REASON_STATE_NOT_LOADED, -1, "state_not_loaded"},
        {GOV_REASON_METHOD_NOT_ALLOWED, -1, "method_not_allowed"},
        {GOV_REASON_NOT_FOUND, -1, "not_found"},
        {GOV_REASON_IO_ERROR, -1, "io_error"},
        {GOV_REASON_TOO_LARGE, -1, "too_large"},
        {GOV_REASON_TRUST_INVALID, -1, "trust_invalid"},
        {GOV_REASON_BODY_TOO_LARGE, -1, "body_too_large"},
        {GOV_REASON_INVALID_PATH, -1, "invalid_path"},
    };
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++) {
        if (pinned[i].value >= 0)
            assert_int_equal(pinned[i].r, pinned[i].value);
        assert_string_equal(gov_reason_code(pinned[i].r), pinned[i].code);
    }
    assert_int_not_equal(GOV_REASON_INTERNAL, GOV_REASON_INTERNAL_ERROR);
    /* Added at the end, after the codes that were there before them. */
    assert_int_equal(GOV_REASON_TRUST_INVALID, GOV_REASON_CURRENT_PACK_UNREADABLE + 1);
    assert_int_equal(GOV_REASON_INVALID_PATH, GOV_REASON_TRUST_INVALID + 2);
}

/* gov_reason_fail: the value goes to *why, the detail alone to errbuf, rc
 * comes back; NULL why or errbuf are allowed. */
static void test_fail_records(void **state) {
    (void)state;
    char eb[32] = "stale";
    gov_reason_t why = GOV_REASON_NONE;
    assert_int_equal(gov_reason_fail(&why, GOV_REASON_TOO_DEEP, GOV_ERR_TOO_LARGE, eb, sizeof eb,
                                     "nesting exceeds %d", 64),
                     GOV_ERR_TOO_LARGE);
    assert_int_equal(why, GOV_REASON_TOO_DEEP);
    assert_string_equal(eb, "nesting exceeds 64");
    /* Truncated to the buffer, still terminated. */
    assert_int_equal(gov_reason_fail(&why, GOV_REASON_SYNTAX, GOV_ERR_PARSE, eb, 8, "%s",
                                     "a long detail"),
                     GOV_ERR_PARSE);
    assert_int_equal(why, GOV_REASON_SYNTAX);
    assert_string_equal(eb, "a long ");
    assert_int_equal(gov_reason_fail(NULL, GOV_REASON_NOMEM, GOV_ERR_NOMEM, eb, sizeof eb, "oom"),
                     GOV_ERR_NOMEM);
    assert_string_equal(eb, "oom");
    assert_int_equal(gov_reason_fail(&why, GOV_REASON_CRYPTO, GOV_ERR_CRYPTO, NULL, 0, "x"),
                     GOV_ERR_CRYPTO);
    assert_int_equal(why, GOV_REASON_CRYPTO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_value_named), cmocka_unit_test(test_codes_unique),
        cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_stable_codes),      cmocka_unit_test(test_fail_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
