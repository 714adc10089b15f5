/* fuzz_rulepack_parse.c - gov_rulepack_parse on arbitrary text.
 *
 * For any input, with the default limits and with small ones:
 *   - the result is GOV_OK, or GOV_ERR_PARSE / TOO_LARGE / VERIFY with no
 *     pack, a non-empty message and code, and a message that starts with
 *     "rules[<index>]" exactly when the error names a rule;
 *   - an accepted pack is well-formed: rules strictly sorted by id, weights
 *     and thresholds in [0, 1000000], pattern ranges that tile the matcher;
 *   - its canonical JSON parses again to a pack with the same canonical
 *     bytes (a fixed point), the same rules and the same thresholds;
 *   - its matcher scans the input itself (when it is UTF-8) without error,
 *     with the same answer on a second scan.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_matcher.h"
#include "gov_rulepack.h"
#include "gov_util.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static gov_matcher_scratch_t *scratch;

static void check_pack(const gov_rulepack_t *p, const char *text, size_t size) {
    size_t n = gov_rulepack_rule_count(p), np = 0;
    CHECK(n >= 1);
    for (size_t i = 0; i < n; i++) {
        const gov_rule_t *r = gov_rulepack_rule(p, i);
        if (i > 0)
            CHECK(strcmp(gov_rulepack_rule(p, i - 1)->id, r->id) < 0);
        CHECK(r->weight_micros >= 0 && r->weight_micros <= GOV_MICROS_ONE);
        CHECK(r->conditions != 0);
        CHECK(r->pattern_first == np);
        CHECK((r->pattern_count > 0) == ((r->conditions & GOV_COND_PROMPT) != 0));
        np += r->pattern_count;
    }
    int64_t m = gov_rulepack_max_risk_micros(p), a = gov_rulepack_approval_micros(p);
    CHECK(m >= -1 && m <= GOV_MICROS_ONE && a >= -1 && a <= GOV_MICROS_ONE);
    const gov_matcher_t *mt = gov_rulepack_matcher(p);
    CHECK((mt != NULL) == (np > 0));
    CHECK(gov_matcher_count(mt) == np);

    size_t clen = 0;
    const char *canon = gov_rulepack_canonical_json(p, &clen);
    CHECK(canon != NULL && strlen(canon) == clen);
    gov_rulepack_t *again = NULL;
    char err[512];
    gov_err_t rc = gov_rulepack_parse(canon, clen, NULL, &again, NULL, err, sizeof err);
    if (rc != GOV_OK) {
        fprintf(stderr, "canonical form refused: %s\n%s\n", err, canon);
        abort();
    }
    size_t clen2 = 0;
    CHECK(strcmp(gov_rulepack_canonical_json(again, &clen2), canon) == 0 && clen2 == clen);
    CHECK(gov_rulepack_rule_count(again) == n);
    CHECK(gov_rulepack_max_risk_micros(again) == m && gov_rulepack_approval_micros(again) == a);
    CHECK(strcmp(gov_rulepack_version(again), gov_rulepack_version(p)) == 0);
    for (size_t i = 0; i < n; i++) {
        const gov_rule_t *x = gov_rulepack_rule(p, i), *y = gov_rulepack_rule(again, i);
        CHECK(strcmp(x->id, y->id) == 0 && x->weight_micros == y->weight_micros);
        CHECK(x->effect == y->effect && x->severity == y->severity);
        CHECK(x->conditions == y->conditions && x->pattern_count == y->pattern_count);
    }
    gov_rulepack_free(again);

    if (mt != NULL && gov_utf8_valid(text, size)) {
        gov_match_t *r1 = calloc(np, sizeof *r1), *r2 = calloc(np, sizeof *r2);
        CHECK(r1 != NULL && r2 != NULL);
        CHECK(gov_matcher_scan(mt, scratch, text, size, r1, err, sizeof err) == GOV_OK);
        CHECK(gov_matcher_scan(mt, scratch, text, size, r2, err, sizeof err) == GOV_OK);
        CHECK(memcmp(r1, r2, np * sizeof *r1) == 0);
        for (size_t k = 0; k < np; k++)
            CHECK(!r1[k].matched || (r1[k].first_end >= 1 && r1[k].first_end <= size));
        free(r1);
        free(r2);
    }
}

static void run(const char *text, size_t size, const gov_rulepack_limits_t *lim) {
    gov_rulepack_t *p = (gov_rulepack_t *)1;
    gov_rulepack_error_t d;
    char err[512] = "";
    gov_err_t rc = gov_rulepack_parse(text, size, lim, &p, &d, err, sizeof err);
    if (rc != GOV_OK) {
        CHECK(p == NULL);
        CHECK(rc == GOV_ERR_PARSE || rc == GOV_ERR_TOO_LARGE || rc == GOV_ERR_VERIFY);
        CHECK(err[0] != '\0' && d.code != GOV_REASON_NONE && d.code < GOV_REASON_COUNT_);
        if (d.rule_index >= 0) {
            char prefix[48];
            snprintf(prefix, sizeof prefix, "rules[%ld]", d.rule_index);
            CHECK(strncmp(err, prefix, strlen(prefix)) == 0);
            if (d.rule_id[0] != '\0') {
                char withid[GOV_RULE_ID_MAX + 64];
                snprintf(withid, sizeof withid, "rules[%ld] (%s): ", d.rule_index, d.rule_id);
                CHECK(strncmp(err, withid, strlen(withid)) == 0);
            }
        } else {
            CHECK(d.rule_id[0] == '\0');
        }
        return;
    }
    CHECK(p != NULL);
    check_pack(p, text, size);
    gov_rulepack_free(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    gov_alloc_install_jansson();
    CHECK(gov_matcher_install_allocator() == GOV_OK);
    CHECK(gov_matcher_scratch_new(NULL, &scratch) == GOV_OK);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    run(text, size, NULL);
    gov_rulepack_limits_t small = gov_rulepack_limits_default();
    small.max_rules = 3;
    small.max_patterns = 4;
    small.max_pattern_bytes = 40;
    small.max_pattern_len = 16;
    small.max_set_entries = 2;
    small.max_value_bytes = 8;
    small.max_text_bytes = 16;
    small.max_depth = 6;
    run(text, size, &small);
    return 0;
}
