/* fuzz_policy_request.c - gov_policy_request_parse and gov_policy_evaluate.
 *
 * The input is parsed as a request; a valid one is evaluated against a fixed,
 * realistic pack (the base pack of tests/vectors/policy plus a few regexes)
 * and the demo constitution.  The input is also used, when it is UTF-8, as
 * the prompt of an otherwise fixed request.  For any input:
 *   - parsing gives GOV_OK, or GOV_ERR_PARSE / TOO_LARGE with an empty
 *     request and an errbuf of the form "code: detail";
 *   - the one-pass parser gives what the tree parser it replaced gives
 *     (tests/unit/policy_request_tree.h): the same code and reason, the same
 *     message (but for the byte offset of a refusal jansson made), and for a
 *     valid request the same fields and input_digest;
 *   - a valid request has a 64-hex-digit input_digest that its own RFC 8785
 *     form reproduces;
 *   - evaluation succeeds (or refuses another tenant's request), and the
 *     decision obeys the contract: reasons constitution first then rules in
 *     strictly increasing id order, score = min(1, sum of matched add
 *     weights), deny iff a constitution reason or a deny rule or score >
 *     max_risk, review iff not deny and score > approval; every excerpt is
 *     valid UTF-8, at most 64 bytes, and holds its match end;
 *   - redaction: each excerpt is the prompt's window with whole characters
 *     replaced by '*', and no excerpt shows an AWS key id (AKIA + 16 of
 *     [0-9A-Z]) or an e-mail address of the pack's pii.email form: those are
 *     matches of redacting rules, masked in every excerpt; and every excerpt
 *     byte from the first such key id or "my password is" (any case) on is
 *     '*' (what follows a redacting match is masked);
 *   - the response body is JSON, and a second evaluation gives the same bytes.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_policy.h"
#include "gov_rulepack.h"
#include "gov_util.h"
#include "../unit/policy_request_tree.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static const char pack_text[] =
    "{\"pack_id\":\"base\",\"tenant\":\"demo\",\"version\":\"3\","
    "\"thresholds\":{\"max_risk_score\":0.7,\"require_human_approval_above_risk\":0.4},"
    "\"rules\":["
    "{\"id\":\"pii.email\",\"severity\":\"high\",\"weight\":0.35,\"effect\":\"add\","
    "\"message\":\"prompt contains an e-mail address\",\"match\":{\"prompt\":["
    "{\"regex\":\"[a-z0-9._%+-]+@[a-z0-9.-]+\\\\.[a-z]{2,}\",\"case_insensitive\":true},"
    "{\"literal\":\"my password is\",\"case_insensitive\":true}]}},"
    "{\"id\":\"secrets.aws_key\",\"severity\":\"critical\",\"weight\":0.5,\"effect\":\"add\","
    "\"message\":\"AWS key\",\"match\":{\"prompt\":[{\"regex\":\"AKIA[0-9A-Z]{16}\"}]}},"
    "{\"id\":\"exfil.export_prod\",\"severity\":\"critical\",\"weight\":0.2,\"effect\":\"deny\","
    "\"message\":\"export from production\",\"match\":{\"action\":[\"export\"],"
    "\"metadata\":{\"env\":{\"equals\":\"prod\"}}}},"
    "{\"id\":\"role.intern_email\",\"severity\":\"medium\",\"weight\":0.15,\"effect\":\"add\","
    "\"message\":\"intern e-mail\",\"match\":{\"role\":[\"intern\"],\"tool_category\":[\"email\"]}},"
    "{\"id\":\"jailbreak.ignore\",\"severity\":\"high\",\"weight\":0.45,\"effect\":\"add\","
    "\"message\":\"jailbreak\",\"match\":{\"prompt\":[{\"literal\":\"ignore previous "
    "instructions\",\"case_insensitive\":true},{\"regex\":\"\\\\bDAN\\\\b\"}]}},"
    "{\"id\":\"region.eu_send\",\"severity\":\"low\",\"weight\":0.05,\"effect\":\"add\","
    "\"message\":\"regulated region\",\"match\":{\"action\":[\"send_email\"],"
    "\"metadata\":{\"region\":{\"in\":[\"eu\",\"us\"]}}}},"
    "{\"id\":\"unicode.accent\",\"severity\":\"low\",\"weight\":0.000001,\"effect\":\"add\","
    "\"message\":\"accent\",\"match\":{\"prompt\":[{\"regex\":\"\xc3\xa9t\xc3\xa9.\","
    "\"case_insensitive\":true},{\"literal\":\"\xf0\x9f\x99\x82\"}]}},"
    "{\"id\":\"cc.number\",\"severity\":\"high\",\"weight\":0.6,\"effect\":\"add\","
    "\"message\":\"card number\",\"match\":{\"prompt\":[{\"regex\":\"\\\\b[0-9]{4}([ -]?[0-9]{4}){3}\\\\b\"}],"
    "\"role\":[\"analyst\",\"intern\",\"admin\"]}}"
    "]}";

static const char constitution_text[] =
    "{\"rules\":{\"prohibited_actions\":[\"exfiltrate_data\",\"disable_audit\"],"
    "\"permitted_tool_categories\":[\"search\",\"calculator\",\"email\"],"
    "\"max_risk_score\":0.8,\"require_human_approval_above_risk\":0.5}}";

static gov_rulepack_t *pack;
static gov_policy_constitution_t *constitution;
static gov_matcher_scratch_t *scratch;

static const gov_rule_t *rule_by_id(const char *id) {
    for (size_t i = 0; i < gov_rulepack_rule_count(pack); i++)
        if (strcmp(gov_rulepack_rule(pack, i)->id, id) == 0)
            return gov_rulepack_rule(pack, i);
    return NULL;
}

static int is_upper_digit(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

static int is_lower_alnum(char c) {
    c = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
}

static int is_letter(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Where the first "AKIA" + 16 of [0-9A-Z] (secrets.aws_key) or "my password
 * is" in any case (pii.email) starts in t[0..n), or n: both redacting
 * matches, so every excerpt byte from there on must be '*'. */
static size_t first_redacting_sign(const char *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (n - i >= 14 && strncasecmp(t + i, "my password is", 14) == 0)
            return i;
        size_t k = 0;
        if (n - i >= 20 && memcmp(t + i, "AKIA", 4) == 0)
            for (k = 4; k < 20 && is_upper_digit(t[i + k]);)
                k++;
        if (k == 20)
            return i;
    }
    return n;
}

/* 1 when t[0..n) holds "AKIA" + 16 of [0-9A-Z] (secrets.aws_key). */
static int shows_aws_key(const char *t, size_t n) {
    for (size_t i = 0; i + 20 <= n; i++) {
        if (memcmp(t + i, "AKIA", 4) != 0)
            continue;
        size_t k = 4;
        while (k < 20 && is_upper_digit(t[i + k]))
            k++;
        if (k == 20)
            return 1;
    }
    return 0;
}

/* 1 when t[0..n) holds a match of [a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,},
 * case-insensitively (pii.email): a local character before an '@', then
 * a run of domain characters in which some '.' after the first follows
 * with two letters. */
static int shows_email(const char *t, size_t n) {
    for (size_t i = 1; i < n; i++) {
        char l = t[i - 1];
        if (t[i] != '@' || !(is_lower_alnum(l) || (l != '\0' && strchr("._%+-", l) != NULL)))
            continue;
        size_t j = i + 1;   /* the domain run: t[i+1 .. j) */
        while (j < n && (is_lower_alnum(t[j]) || t[j] == '.' || t[j] == '-'))
            j++;
        for (size_t k = i + 2; k + 2 < j; k++)
            if (t[k] == '.' && is_letter(t[k + 1]) && is_letter(t[k + 2]))
                return 1;
    }
    return 0;
}

static void check_decision(const gov_policy_request_t *req, const gov_policy_decision_t *d) {
    CHECK(d->score_micros >= 0 && d->score_micros <= GOV_MICROS_ONE);
    CHECK(strcmp(d->input_digest, req->input_digest) == 0);
    size_t tail = first_redacting_sign(req->prompt, req->prompt_len);
    int64_t sum = 0;
    int deny = 0;
    size_t k = 0;
    while (k < d->nreasons && strncmp(d->reasons[k].rule_id, "constitution.", 13) == 0) {
        deny = 1;
        CHECK(d->reasons[k].weight_micros == 0 && !d->reasons[k].has_excerpt);
        k++;
    }
    CHECK(k <= 2);
    for (; k < d->nreasons; k++) {
        const gov_policy_reason_t *r = &d->reasons[k];
        const gov_rule_t *rule = rule_by_id(r->rule_id);
        CHECK(rule != NULL);
        if (k > 0 && strncmp(d->reasons[k - 1].rule_id, "constitution.", 13) != 0)
            CHECK(strcmp(d->reasons[k - 1].rule_id, r->rule_id) < 0);
        CHECK(r->weight_micros == rule->weight_micros && r->effect == rule->effect);
        if (rule->effect == GOV_EFFECT_DENY)
            deny = 1;
        else
            sum += rule->weight_micros;
        CHECK(r->has_excerpt == ((rule->conditions & GOV_COND_PROMPT) != 0));
        if (r->has_excerpt) {
            CHECK(r->excerpt_start <= r->match_end && r->match_end <= r->excerpt_end);
            CHECK(r->excerpt_end <= req->prompt_len && r->match_end >= 1);
            CHECK(r->excerpt_len == r->excerpt_end - r->excerpt_start);
            CHECK(r->excerpt_len <= GOV_EXCERPT_MAX);
            /* The window's bytes, whole characters of it masked. */
            const char *w = req->prompt + r->excerpt_start;
            for (size_t i = 0; i < r->excerpt_len;) {
                unsigned char b = (unsigned char)w[i];
                size_t cl = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
                CHECK(i + cl <= r->excerpt_len);
                int same = memcmp(r->excerpt + i, w + i, cl) == 0, stars = 1;
                for (size_t q = i; q < i + cl; q++)
                    stars &= r->excerpt[q] == '*';
                CHECK(same || stars);
                i += cl;
            }
            CHECK(gov_utf8_valid(r->excerpt, r->excerpt_len));
            CHECK(!shows_aws_key(r->excerpt, r->excerpt_len));
            CHECK(!shows_email(r->excerpt, r->excerpt_len));
            for (size_t q = r->excerpt_start; q < r->excerpt_end; q++)
                CHECK(q < tail || r->excerpt[q - r->excerpt_start] == '*');
        }
    }
    CHECK(d->score_micros == (sum > GOV_MICROS_ONE ? GOV_MICROS_ONE : sum));
    CHECK(d->max_risk_micros == 700000 && d->approval_micros == 400000);
    gov_decision_t want = (deny || d->score_micros > d->max_risk_micros) ? GOV_DECISION_DENY
                          : d->score_micros > d->approval_micros         ? GOV_DECISION_REVIEW
                                                                         : GOV_DECISION_ALLOW;
    CHECK(d->decision == want);
}

static void evaluate_request(const gov_policy_request_t *req) {
    gov_policy_decision_t d, d2;
    char err[256];
    gov_reason_t why = GOV_REASON_COUNT_;
    gov_err_t rc = gov_policy_evaluate(constitution, pack, req, scratch, &d, &why, err, sizeof err);
    if (strcmp(req->tenant, "demo") != 0) {
        CHECK(rc == GOV_ERR_INVALID_ARG && why == GOV_REASON_TENANT_MISMATCH);
        return;
    }
    if (rc != GOV_OK) {
        fprintf(stderr, "evaluate: %s %s: %s\n", gov_err_code(rc), gov_reason_code(why), err);
        abort();
    }
    CHECK(why == GOV_REASON_NONE);
    check_decision(req, &d);
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    CHECK(gov_policy_decision_to_json(&d, NULL, &a, &alen) == GOV_OK);
    json_t *j = json_loadb(a, alen, JSON_ALLOW_NUL, NULL);
    CHECK(j != NULL);
    CHECK(json_array_size(json_object_get(j, "reasons")) == d.nreasons);
    json_decref(j);
    CHECK(gov_policy_evaluate(constitution, pack, req, scratch, &d2, NULL, err, sizeof err) ==
          GOV_OK);
    CHECK(gov_policy_decision_to_json(&d2, NULL, &b, &blen) == GOV_OK);
    CHECK(alen == blen && memcmp(a, b, alen) == 0);
    gov_free(a);
    gov_free(b);
    gov_policy_decision_clear(&d);
    gov_policy_decision_clear(&d2);
}

static int same_str(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The tree parser on the same text: the same answer (the differential of
 * tests/unit/test_policy_parse.c, on whatever the fuzzer finds); on success
 * the digest is checked against the tree's own RFC 8785 form, parsed back. */
static void check_against_tree(const char *text, size_t size, gov_err_t rc, gov_reason_t reason,
                               const char *err, const gov_policy_request_t *req) {
    tree_request_t t;
    char terr[256] = "";
    gov_reason_t treason = GOV_REASON_COUNT_;
    gov_err_t trc = tree_request_parse(text, size, NULL, &t, &treason, terr, sizeof terr);
    if (trc != rc || treason != reason ||
        (reason != GOV_REASON_DUPLICATE_KEY && reason != GOV_REASON_NUMBER_OUT_OF_RANGE &&
         reason != GOV_REASON_NUL_IN_KEY && strcmp(err, terr) != 0)) {
        fprintf(stderr, "one-pass %s %s \"%s\", tree %s %s \"%s\"\n", gov_err_code(rc),
                gov_reason_code(reason), err, gov_err_code(trc), gov_reason_code(treason), terr);
        abort();
    }
    if (rc == GOV_OK) {
        CHECK(strcmp(req->input_digest, t.input_digest) == 0);
        CHECK(same_str(req->tenant, t.tenant) && same_str(req->session_id, t.session_id) &&
              same_str(req->user, t.user) && same_str(req->role, t.role) &&
              same_str(req->action, t.action) && same_str(req->tool_name, t.tool_name) &&
              same_str(req->tool_category, t.tool_category));
        CHECK(req->prompt_len == t.prompt_len &&
              memcmp(req->prompt, t.prompt, req->prompt_len) == 0);
        CHECK(req->nmetadata == (t.metadata ? json_object_size(t.metadata) : 0));
        for (size_t i = 0; i < req->nmetadata; i++) {
            const json_t *v = json_object_get(t.metadata, req->metadata[i].key);
            CHECK(v != NULL && strcmp(json_string_value(v), req->metadata[i].value) == 0);
        }
        CHECK(strlen(req->input_digest) == GOV_SHA256_HEXLEN);
        char *canon = NULL;
        size_t clen = 0;
        CHECK(gov_canon_serialize(t.doc, GOV_CANON_JCS, &canon, &clen, NULL, NULL, 0) == GOV_OK);
        gov_policy_request_t again;
        char aerr[256];
        gov_err_t arc = gov_policy_request_parse(canon, clen, NULL, &again, NULL, aerr, sizeof aerr);
        if (arc != GOV_OK) {
            fprintf(stderr, "canonical request refused: %s\n%s\n", aerr, canon);
            abort();
        }
        CHECK(strcmp(again.input_digest, req->input_digest) == 0);
        gov_policy_request_clear(&again);
        gov_free(canon);
    }
    tree_request_clear(&t);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char err[512];
    gov_alloc_install_jansson();
    CHECK(gov_matcher_install_allocator() == GOV_OK);
    if (gov_rulepack_parse(pack_text, sizeof pack_text - 1, NULL, &pack, NULL, err, sizeof err) !=
        GOV_OK) {
        fprintf(stderr, "fuzz_policy_request: pack: %s\n", err);
        abort();
    }
    json_t *c = json_loads(constitution_text, 0, NULL);
    CHECK(c != NULL);
    CHECK(gov_policy_constitution_from_json(c, &constitution, err, sizeof err) == GOV_OK);
    json_decref(c);
    CHECK(gov_matcher_scratch_new(gov_rulepack_matcher(pack), &scratch) == GOV_OK);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    gov_policy_request_t req;
    char err[256] = "";
    gov_reason_t reason = GOV_REASON_COUNT_;
    gov_err_t rc = gov_policy_request_parse(text, size, NULL, &req, &reason, err, sizeof err);
    if (rc != GOV_OK) {
        CHECK(rc == GOV_ERR_PARSE || rc == GOV_ERR_TOO_LARGE);
        CHECK(req.mem == NULL && req.tenant == NULL && req.metadata == NULL);
        /* a named reason, and a detail that does not repeat it as a prefix */
        CHECK(reason != GOV_REASON_NONE && reason < GOV_REASON_COUNT_);
        CHECK(err[0] != '\0');
        const char *code = gov_reason_code(reason);
        CHECK(!(strncmp(err, code, strlen(code)) == 0 && err[strlen(code)] == ':'));
        check_against_tree(text, size, rc, reason, err, &req);
    } else {
        CHECK(reason == GOV_REASON_NONE);
        check_against_tree(text, size, rc, reason, err, &req);
        evaluate_request(&req);
        gov_policy_request_clear(&req);
    }

    /* The input as a prompt. */
    if (gov_utf8_valid(text, size) && size <= 4096) {
        json_t *rq = json_pack("{s:s,s:s,s:s,s:s,s:s%,s:s,s:{s:s,s:s},s:{s:s,s:s}}", "tenant",
                               "demo", "session_id", "s", "user", "u", "role", "intern", "prompt",
                               text, size, "action", "send_email", "tool", "name", "smtp",
                               "category", "email", "metadata", "region", "eu", "env", "prod");
        CHECK(rq != NULL);
        char *body = json_dumps(rq, JSON_COMPACT);
        CHECK(body != NULL);
        CHECK(gov_policy_request_parse(body, strlen(body), NULL, &req, NULL, err, sizeof err) ==
              GOV_OK);
        CHECK(req.prompt_len == size && memcmp(req.prompt, text, size) == 0);
        evaluate_request(&req);
        gov_policy_request_clear(&req);
        free(body);
        json_decref(rq);
    }
    return 0;
}
