/* gov_policy.c - request validation, evaluation and the response body.
 *
 * What it is for: POST /v1/evaluate must give the same answer on every edge
 * replica for the same request, constitution and rule pack.  So nothing here
 * reads a clock or a global, no floating point decides anything (weights and
 * thresholds are int64 millionths from gov_rulepack), and every order is
 * fixed: rules are visited in id order (the pack keeps them so), reasons come
 * out constitution first, then rules by id.
 *
 * How it works: the request is parsed, validated and digested in one pass
 * (gov_policy_request.c; input_digest is SHA-256 over its RFC 8785 bytes).
 * Evaluation runs the
 * constitution checks, scans the prompt once with the pack's matcher, tests
 * each rule's conditions (all must hold; a missing request value never
 * matches), sums the weights of matched "add" rules with saturation, and
 * applies the effective thresholds.  Before the decision is returned, every
 * excerpt is masked (docs/policy.md, "Redaction"): a second scan with the
 * matcher's span database gives each match's start, the spans are merged per
 * pattern and marked on the (merged, at most 64-byte) excerpt windows, and a
 * covered character becomes '*' unless it is the excerpt's own rule's match
 * and that rule has redact false.  A match of a rule with redact true also
 * masks everything after its start, in every excerpt: such rules find the
 * sign of a secret ("my password is", a PEM header, a key id), and the
 * secret itself comes after it, where no pattern of theirs can see its
 * shape.  So no caller can send an unmasked excerpt:
 * the answer, the decision log, Redis and the audit chain all get it masked.
 * The response writer formats numbers itself ("0.350000"): jansson would
 * print 0.35.
 *
 * What it does not do: it keeps nothing of the prompt beyond the masked
 * excerpts; it does not pick the constitution or the pack for a tenant, add decision_id / constitution_hash / rulepack_version /
 * evaluated_at (the caller owns those), or log.
 */
#include "gov_policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_buf.h"
#include "gov_canon.h"
#include "gov_util.h"


const char *gov_decision_name(gov_decision_t d) {
    switch (d) {
    case GOV_DECISION_ALLOW:
        return "allow";
    case GOV_DECISION_REVIEW:
        return "review";
    case GOV_DECISION_DENY:
        return "deny";
    }
    return "unknown";
}

/* ---- constitution rules --------------------------------------------------- */

struct gov_policy_constitution {
    gov_strset_t prohibited_actions;
    int has_permitted;
    gov_strset_t permitted_tool_categories;
    int64_t max_risk_micros;
    int64_t approval_micros;
};

void gov_policy_constitution_free(gov_policy_constitution_t *c) {
    if (c == NULL)
        return;
    gov_strset_clear(&c->prohibited_actions);
    gov_strset_clear(&c->permitted_tool_categories);
    gov_free(c);
}

/* An array of strings (possibly empty) into a sorted, deduplicated set. */
static gov_err_t constitution_set(const json_t *v, const char *name, gov_strset_t *out,
                                  char *errbuf, size_t errbuf_size) {
    if (!json_is_array(v)) {
        gov_errbuf(errbuf, errbuf_size, "rules.%s must be an array of strings", name);
        return GOV_ERR_VERIFY;
    }
    size_t n = json_array_size(v);
    if (n == 0)
        return GOV_OK;
    out->v = gov_calloc(n, sizeof *out->v);
    if (out->v == NULL)
        return GOV_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(v, i);
        if (!json_is_string(s) ||
            memchr(json_string_value(s), '\0', json_string_length(s)) != NULL) {
            gov_errbuf(errbuf, errbuf_size, "rules.%s[%zu] must be a string without U+0000", name,
                    i);
            return GOV_ERR_VERIFY;
        }
        if ((out->v[out->n] = gov_strdup(json_string_value(s))) == NULL)
            return GOV_ERR_NOMEM;
        out->n++;
    }
    gov_strset_finish(out);
    return GOV_OK;
}

static gov_err_t constitution_threshold(const json_t *v, const char *name, int64_t *out,
                                        char *errbuf, size_t errbuf_size) {
    char text[GOV_CANON_NUMBUF];
    switch (gov_micros_from_json(v, out, text)) {
    case GOV_MICROS_OK:
        return GOV_OK;
    case GOV_MICROS_NOT_NUMBER:
        gov_errbuf(errbuf, errbuf_size, "rules.%s must be a number", name);
        break;
    case GOV_MICROS_OUT_OF_RANGE:
        gov_errbuf(errbuf, errbuf_size, "rules.%s %s is not in [0,1]", name, text);
        break;
    case GOV_MICROS_TOO_PRECISE:
        gov_errbuf(errbuf, errbuf_size, "rules.%s %s has more than 6 decimal places", name, text);
        break;
    }
    return GOV_ERR_VERIFY;
}

gov_err_t gov_policy_constitution_from_json(const json_t *document,
                                            gov_policy_constitution_t **out, char *errbuf,
                                            size_t errbuf_size) {
    gov_err_t rc = GOV_OK;
    if (out == NULL)
        return GOV_ERR_INVALID_ARG;
    *out = NULL;
    if (!json_is_object(document)) {
        gov_errbuf(errbuf, errbuf_size, "the constitution document must be an object");
        return GOV_ERR_INVALID_ARG;
    }
    gov_policy_constitution_t *c = gov_calloc(1, sizeof *c);
    if (c == NULL) {
        rc = GOV_ERR_NOMEM; /* out: says so */
        goto out;
    }
    c->max_risk_micros = GOV_MICROS_ONE;
    c->approval_micros = GOV_MICROS_ONE;
    const json_t *rules = json_object_get(document, "rules");
    if (rules != NULL) {
        const json_t *v;
        if (!json_is_object(rules)) {
            gov_errbuf(errbuf, errbuf_size, "rules must be an object");
            rc = GOV_ERR_VERIFY;
            goto out;
        }
        /* Strict: a member this engine does not know is refused, so a typo
         * ("prohibited_action") cannot silently disable a rule. */
        const char *k;
        json_object_foreach((json_t *)rules, k, v) {
            if (strcmp(k, "prohibited_actions") != 0 &&
                strcmp(k, "permitted_tool_categories") != 0 &&
                strcmp(k, "max_risk_score") != 0 &&
                strcmp(k, "require_human_approval_above_risk") != 0) {
                gov_errbuf(errbuf, errbuf_size, "rules.%.64s is not a known rule", k);
                rc = GOV_ERR_VERIFY;
                goto out;
            }
        }
        if ((v = json_object_get(rules, "prohibited_actions")) != NULL &&
            (rc = constitution_set(v, "prohibited_actions", &c->prohibited_actions, errbuf,
                                   errbuf_size)) != GOV_OK)
            goto out;
        if ((v = json_object_get(rules, "permitted_tool_categories")) != NULL) {
            c->has_permitted = 1;
            if ((rc = constitution_set(v, "permitted_tool_categories",
                                       &c->permitted_tool_categories, errbuf, errbuf_size)) !=
                GOV_OK)
                goto out;
        }
        if ((v = json_object_get(rules, "max_risk_score")) != NULL &&
            (rc = constitution_threshold(v, "max_risk_score", &c->max_risk_micros, errbuf,
                                         errbuf_size)) != GOV_OK)
            goto out;
        if ((v = json_object_get(rules, "require_human_approval_above_risk")) != NULL &&
            (rc = constitution_threshold(v, "require_human_approval_above_risk",
                                         &c->approval_micros, errbuf, errbuf_size)) != GOV_OK)
            goto out;
    }
out:
    if (rc != GOV_OK) {
        if (rc == GOV_ERR_NOMEM)
            gov_errbuf(errbuf, errbuf_size, "out of memory");
        gov_policy_constitution_free(c);
        return rc;
    }
    *out = c;
    return GOV_OK;
}

int64_t gov_policy_constitution_max_risk_micros(const gov_policy_constitution_t *c) {
    return c->max_risk_micros;
}

int64_t gov_policy_constitution_approval_micros(const gov_policy_constitution_t *c) {
    return c->approval_micros;
}

/* ---- request: gov_policy_request.c ------------------------------------------- */

/* Records why a request is refused: the reason value in *why, the detail
 * (without the code) in errbuf. */
#define req_fail(why, r, errbuf, errbuf_size, ...) \
    (*(why) = (r), gov_errbuf((errbuf), (errbuf_size), __VA_ARGS__))

/* ---- evaluation ------------------------------------------------------------------ */

typedef struct scan_rec scan_rec_t;
static gov_err_t redact_excerpts(const gov_rulepack_t *pack, const gov_policy_request_t *req,
                                 gov_matcher_scratch_t *scratch, gov_policy_decision_t *out,
                                 const size_t *rule_of, const scan_rec_t *rec,
                                 gov_reason_t *reason, char *errbuf, size_t errbuf_size);

/* A failed scan of the prompt (`what`: "prompt", "redaction") as the
 * evaluation's error: the reason and detail recorded, the code mapped
 * (memory and argument errors as such, anything else internal). */
static gov_err_t scan_failed(gov_err_t rc, const char *what, const char *merr,
                             gov_reason_t *reason, char *errbuf, size_t errbuf_size) {
    req_fail(reason, rc == GOV_ERR_NOMEM ? GOV_REASON_NOMEM : GOV_REASON_MATCHER, errbuf,
             errbuf_size, "the %s scan failed: %s", what, merr);
    return rc == GOV_ERR_NOMEM || rc == GOV_ERR_INVALID_ARG ? rc : GOV_ERR_INTERNAL;
}

static int is_cont(unsigned char c) {
    return (c & 0xC0) == 0x80;
}

void gov_policy_excerpt_window(const char *prompt, size_t len, size_t match_end, size_t *start,
                               size_t *end) {
    const unsigned char *p = (const unsigned char *)prompt;
    if (match_end > len)
        match_end = len;
    size_t s = match_end > GOV_EXCERPT_BEFORE ? match_end - GOV_EXCERPT_BEFORE : 0;
    size_t e = len - s > GOV_EXCERPT_MAX ? s + GOV_EXCERPT_MAX : len;
    if (e - s < GOV_EXCERPT_MAX)   /* the prompt ends soon: take more before */
        s = e > GOV_EXCERPT_MAX ? e - GOV_EXCERPT_MAX : 0;
    while (s < e && is_cont(p[s]))
        s++;
    while (e < len && e > s && is_cont(p[e]))
        e--;
    *start = s;
    *end = e;
}

void gov_policy_decision_clear(gov_policy_decision_t *d) {
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nreasons; i++)
        gov_free(d->reasons[i].message);
    gov_free(d->reasons);
    memset(d, 0, sizeof *d);
}

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

/* ---- the one scan ---------------------------------------------------------------- */

/* Merged spans kept for redaction: enough for any ordinary prompt; past it
 * the excerpts are masked from a second scan instead (redact_excerpts), so
 * a prompt that matches everywhere costs time, never unbounded memory. */
#define SPANS_MAX 4096

typedef struct span {
    size_t pattern, start, end;
} span_t;

typedef struct redact_ctx redact_ctx_t;
static void redact_apply(redact_ctx_t *c, size_t rule, size_t s, size_t e);

/* What the one scan of the prompt records (gov_matcher_spans on the span
 * database: every match with its start): per pattern whether it matched and
 * its lowest end (what gov_matcher_scan would give: the span database holds
 * the same patterns, so the same ends), the union of each pattern's
 * overlapping spans (closed ones in spans[], the open one in cur_*), and
 * where the first match of a redacting rule starts. */
struct scan_rec {
    gov_match_t *matches;
    size_t *pattern_rule;   /* pattern -> rule index */
    size_t *cur_start, *cur_end;
    unsigned char *cur_set;
    const gov_rulepack_t *pack;
    size_t tail_from;       /* first start of a redacting rule's match, or SIZE_MAX */
    span_t *spans;
    size_t nspans, capspans;
    int overflow;           /* spans[] ran out: redaction scans again */
    redact_ctx_t *apply;    /* set: spans are marked on these windows, not kept */
};

static void rec_push(scan_rec_t *r, size_t pattern, size_t start, size_t end) {
    if (r->apply != NULL) {
        redact_apply(r->apply, r->pattern_rule[pattern], start, end);
        return;
    }
    if (r->overflow)
        return;
    if (r->nspans == r->capspans) {
        size_t cap = r->capspans ? 2 * r->capspans : 64;
        span_t *sp = cap <= SPANS_MAX ? gov_realloc(r->spans, cap * sizeof *sp) : NULL;
        if (sp == NULL) {
            /* no room: redaction falls back to a second scan */
            r->overflow = 1;
            return;
        }
        r->spans = sp;
        r->capspans = cap;
    }
    r->spans[r->nspans++] = (span_t){pattern, start, end};
}

/* Every match of the scan: the lowest end per pattern, then the span
 * bookkeeping of redaction (the same merging redact_on_span does). */
static int rec_on_match(void *ctx, size_t pattern, size_t start, size_t end) {
    scan_rec_t *r = ctx;
    gov_match_t *m = &r->matches[pattern];
    if (!m->matched || end < m->first_end) {
        m->matched = 1;
        m->first_end = end;
    }
    if (start >= end)
        return 0;
    if (start < r->tail_from && gov_rulepack_rule(r->pack, r->pattern_rule[pattern])->redact)
        r->tail_from = start;
    if (r->cur_set[pattern] && start <= r->cur_end[pattern] && end >= r->cur_start[pattern]) {
        if (start < r->cur_start[pattern])
            r->cur_start[pattern] = start;
        if (end > r->cur_end[pattern])
            r->cur_end[pattern] = end;
        return 0;
    }
    if (r->cur_set[pattern])
        rec_push(r, pattern, r->cur_start[pattern], r->cur_end[pattern]);
    r->cur_set[pattern] = 1;
    r->cur_start[pattern] = start;
    r->cur_end[pattern] = end;
    return 0;
}

/* The per-pattern arrays of a scan record, in one allocation. */
static gov_err_t rec_init(scan_rec_t *r, const gov_rulepack_t *pack, size_t np) {
    memset(r, 0, sizeof *r);
    r->pack = pack;
    r->tail_from = SIZE_MAX;
    size_t each = sizeof(gov_match_t) + 3 * sizeof(size_t) + 1;
    unsigned char *blk = gov_calloc(np ? np : 1, each);
    if (blk == NULL)
        return GOV_ERR_NOMEM;
    r->matches = (gov_match_t *)blk;
    r->pattern_rule = (size_t *)(blk + np * sizeof(gov_match_t));
    r->cur_start = r->pattern_rule + np;
    r->cur_end = r->cur_start + np;
    r->cur_set = (unsigned char *)(r->cur_end + np);
    for (size_t i = 0; i < gov_rulepack_rule_count(pack); i++) {
        const gov_rule_t *rule = gov_rulepack_rule(pack, i);
        for (size_t k = 0; k < rule->pattern_count; k++)
            r->pattern_rule[rule->pattern_first + k] = i;
    }
    return GOV_OK;
}

static void rec_free(scan_rec_t *r) {
    gov_free(r->matches);
    gov_free(r->spans);
}

/* 1 when every condition the rule gives holds for the request.  matches may
 * be NULL when the pack has no patterns. */
static int rule_holds(const gov_rule_t *r, const gov_policy_request_t *req,
                      const gov_match_t *matches, size_t *first_end) {
    if (r->conditions & GOV_COND_PROMPT) {
        int any = 0;
        for (size_t k = 0; k < r->pattern_count; k++) {
            const gov_match_t *m = &matches[r->pattern_first + k];
            if (m->matched && (!any || m->first_end < *first_end)) {
                *first_end = m->first_end;
                any = 1;
            }
        }
        if (!any)
            return 0;
    }
    if ((r->conditions & GOV_COND_ROLE) && !gov_strset_contains(&r->roles, req->role))
        return 0;
    if ((r->conditions & GOV_COND_ACTION) &&
        (req->action == NULL || !gov_strset_contains(&r->actions, req->action)))
        return 0;
    if ((r->conditions & GOV_COND_TOOL_CATEGORY) &&
        (req->tool_category == NULL ||
         !gov_strset_contains(&r->tool_categories, req->tool_category)))
        return 0;
    if (r->conditions & GOV_COND_METADATA) {
        for (size_t i = 0; i < r->nmetadata; i++) {
            const char *v = gov_policy_request_metadata(req, r->metadata[i].key);
            if (v == NULL || !gov_strset_contains(&r->metadata[i].values, v))
                return 0;
        }
    }
    return 1;
}

static gov_err_t add_reason(gov_policy_decision_t *d, const char *id, gov_severity_t sev,
                            gov_effect_t eff, int64_t weight, const char *message) {
    gov_policy_reason_t *r = &d->reasons[d->nreasons];
    memset(r, 0, sizeof *r);
    snprintf(r->rule_id, sizeof r->rule_id, "%s", id);
    r->severity = sev;
    r->effect = eff;
    r->weight_micros = weight;
    r->message = gov_strdup(message);
    if (r->message == NULL)
        return GOV_ERR_NOMEM;
    d->nreasons++;
    return GOV_OK;
}

gov_err_t gov_policy_evaluate(const gov_policy_constitution_t *c, const gov_rulepack_t *pack,
                              const gov_policy_request_t *req, gov_matcher_scratch_t *scratch,
                              gov_policy_decision_t *out, gov_reason_t *reason, char *errbuf,
                              size_t errbuf_size) {
    gov_match_t *matches = NULL;
    size_t *matched = NULL, *ends = NULL, *rule_of = NULL, nmatched = 0;
    scan_rec_t rec;
    memset(&rec, 0, sizeof rec);
    gov_err_t rc = GOV_OK;
    gov_reason_t reason_sink; /* where a caller that passed no reason pointer gets it */
    int deny = 0;

    if (reason == NULL)
        reason = &reason_sink;
    *reason = GOV_REASON_NONE;
    if (errbuf != NULL && errbuf_size > 0)
        errbuf[0] = '\0';
    if (out == NULL)
        return gov_reason_fail(reason, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "NULL decision");
    memset(out, 0, sizeof *out);
    if (c == NULL || pack == NULL || req == NULL || req->mem == NULL)
        return gov_reason_fail(reason, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "NULL argument");
    if (strcmp(req->tenant, gov_rulepack_tenant(pack)) != 0)
        return gov_reason_fail(reason, GOV_REASON_TENANT_MISMATCH, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "the request is for another tenant than the rule pack");
    const gov_matcher_t *m = gov_rulepack_matcher(pack);
    if (m != NULL && scratch == NULL)
        return gov_reason_fail(reason, GOV_REASON_INVALID_ARG, GOV_ERR_INVALID_ARG, errbuf,
                               errbuf_size, "the pack has patterns and no scratch given");
    size_t nrules = gov_rulepack_rule_count(pack);

    out->max_risk_micros = c->max_risk_micros;
    out->approval_micros = c->approval_micros;
    if (gov_rulepack_max_risk_micros(pack) >= 0)
        out->max_risk_micros = min64(out->max_risk_micros, gov_rulepack_max_risk_micros(pack));
    if (gov_rulepack_approval_micros(pack) >= 0)
        out->approval_micros = min64(out->approval_micros, gov_rulepack_approval_micros(pack));
    memcpy(out->input_digest, req->input_digest, sizeof out->input_digest);

    /* Rules: one scan of the prompt (which also records the match spans
     * redaction needs), then each rule in id order. */
    if (m != NULL) {
        if ((rc = rec_init(&rec, pack, gov_matcher_count(m))) != GOV_OK)
            goto out;
        matches = rec.matches;
        char merr[160] = "";
        /* the parser checked every byte of the prompt: no second UTF-8 pass */
        rc = gov_matcher_spans_utf8(m, scratch, req->prompt, req->prompt_len, rec_on_match,
                                    &rec, merr, sizeof merr);
        if (rc != GOV_OK) {
            rc = scan_failed(rc, "prompt", merr, reason, errbuf, errbuf_size);
            goto out;
        }
    }
    matched = gov_calloc(nrules ? nrules : 1, sizeof *matched);
    ends = gov_calloc(nrules ? nrules : 1, sizeof *ends);
    if (matched == NULL || ends == NULL) {
        rc = GOV_ERR_NOMEM;
        goto out;
    }
    int64_t score = 0;
    for (size_t i = 0; i < nrules; i++) {
        const gov_rule_t *r = gov_rulepack_rule(pack, i);
        size_t end = 0;
        if (!rule_holds(r, req, matches, &end))
            continue;
        matched[nmatched] = i;
        ends[nmatched++] = end;
        if (r->effect == GOV_EFFECT_DENY) {
            deny = 1;
        } else {
            /* Saturating: weights are in [0, 1000000], so the sum never
             * leaves [0, 2000000] before the clamp. */
            score += r->weight_micros;
            if (score > GOV_MICROS_ONE)
                score = GOV_MICROS_ONE;
        }
    }
    out->score_micros = score;

    out->reasons = gov_calloc(2 + nmatched, sizeof *out->reasons);
    rule_of = gov_calloc(2 + nmatched, sizeof *rule_of);
    if (out->reasons == NULL || rule_of == NULL) {
        rc = GOV_ERR_NOMEM;
        goto out;
    }
    /* Constitution first: its reasons lead the list. */
    if (req->action != NULL && gov_strset_contains(&c->prohibited_actions, req->action)) {
        deny = 1;
        if ((rc = add_reason(out, GOV_REASON_PROHIBITED_ACTION, GOV_SEVERITY_CRITICAL,
                             GOV_EFFECT_DENY, 0, "the action is prohibited by the constitution")) !=
            GOV_OK)
            goto out;
    }
    if (req->tool_category != NULL && c->has_permitted &&
        !gov_strset_contains(&c->permitted_tool_categories, req->tool_category)) {
        deny = 1;
        if ((rc = add_reason(out, GOV_REASON_TOOL_CATEGORY, GOV_SEVERITY_CRITICAL,
                             GOV_EFFECT_DENY, 0,
                             "the tool category is not permitted by the constitution")) != GOV_OK)
            goto out;
    }
    for (size_t j = 0; j < nmatched; j++) {
        const gov_rule_t *r = gov_rulepack_rule(pack, matched[j]);
        if ((rc = add_reason(out, r->id, r->severity, r->effect, r->weight_micros, r->message)) !=
            GOV_OK)
            goto out;
        rule_of[out->nreasons - 1] = matched[j];
        if (r->conditions & GOV_COND_PROMPT) {
            gov_policy_reason_t *x = &out->reasons[out->nreasons - 1];
            x->has_excerpt = 1;
            x->match_end = ends[j];
            gov_policy_excerpt_window(req->prompt, req->prompt_len, ends[j], &x->excerpt_start,
                                      &x->excerpt_end);
            x->excerpt_len = x->excerpt_end - x->excerpt_start;
            memcpy(x->excerpt, req->prompt + x->excerpt_start, x->excerpt_len);
            x->excerpt[x->excerpt_len] = '\0';
        }
    }
    /* Before anything leaves: no excerpt is used unmasked, not even on a
     * failure (which fails the whole evaluation). */
    if ((rc = redact_excerpts(pack, req, scratch, out, rule_of, &rec, reason, errbuf,
                              errbuf_size)) != GOV_OK)
        goto out;

    if (deny || score > out->max_risk_micros)
        out->decision = GOV_DECISION_DENY;
    else if (score > out->approval_micros)
        out->decision = GOV_DECISION_REVIEW;
    else
        out->decision = GOV_DECISION_ALLOW;
out:
    if (rc == GOV_ERR_NOMEM && *reason == GOV_REASON_NONE)
        req_fail(reason, GOV_REASON_NOMEM, errbuf, errbuf_size, "out of memory");
    rec_free(&rec);
    gov_free(matched);
    gov_free(ends);
    gov_free(rule_of);
    if (rc != GOV_OK)
        gov_policy_decision_clear(out);
    return rc;
}

/* ---- redaction ------------------------------------------------------------------------ */

/* What a position inside an excerpt window is covered by: no match, the
 * matches of one rule (its index + 1), or of several rules. */
#define COVER_NONE 0
#define COVER_MANY SIZE_MAX

/* One merged excerpt window: prompt bytes [start, end), its coverage in
 * cover[base .. base + end - start). */
typedef struct redact_window {
    size_t start, end, base;
} redact_window_t;

/* The masking state: the merged windows and their coverage. */
struct redact_ctx {
    redact_window_t *win;
    size_t nwin;
    size_t *cover;
};

static int cmp_window(const void *a, const void *b) {
    const redact_window_t *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Marks span [s, e) of rule `rule` in every window it overlaps.  O(log
 * windows + bytes marked). */
static void redact_apply(redact_ctx_t *c, size_t rule, size_t s, size_t e) {
    size_t lo = 0, hi = c->nwin;
    while (lo < hi) {   /* the first window that ends after s */
        size_t mid = lo + (hi - lo) / 2;
        if (c->win[mid].end <= s)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t w = lo; w < c->nwin && c->win[w].start < e; w++) {
        size_t a = s > c->win[w].start ? s : c->win[w].start;
        size_t b = e < c->win[w].end ? e : c->win[w].end;
        for (size_t x = a; x < b; x++) {
            size_t *o = &c->cover[c->win[w].base + (x - c->win[w].start)];
            *o = *o == COVER_NONE || *o == rule + 1 ? rule + 1 : COVER_MANY;
        }
    }
}

/* Length of the UTF-8 character led by c (1 for a stray byte). */
static size_t utf8_char_len(unsigned char c) {
    return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

/* Masks the excerpts of out (rule_of[i]: the pack rule of reason i, or
 * SIZE_MAX): every byte of an excerpt covered by a match of any pattern is
 * written as '*', except the matches of the excerpt's own rule when that rule
 * has redact false; every byte at or after the start of the prompt's first
 * match of a rule with redact true is '*' too (the secret that follows its
 * sign); a masked byte masks its whole character, so an excerpt
 * stays valid UTF-8 and no code point is cut.  The spans come from the
 * evaluation's own scan (rec); only when it kept too many to hold
 * (SPANS_MAX) is the prompt scanned again, marking as it goes.  Cost:
 * O(spans x log windows) + O(patterns x window bytes) in the worst case,
 * plus O(prompt) for the second scan when there is one. */
static gov_err_t redact_excerpts(const gov_rulepack_t *pack, const gov_policy_request_t *req,
                                 gov_matcher_scratch_t *scratch, gov_policy_decision_t *out,
                                 const size_t *rule_of, const scan_rec_t *rec,
                                 gov_reason_t *reason, char *errbuf, size_t errbuf_size) {
    const gov_matcher_t *m = gov_rulepack_matcher(pack);
    size_t np = gov_matcher_count(m), nex = 0, total = 0, tail_from = SIZE_MAX;
    redact_ctx_t c;
    scan_rec_t again;
    gov_err_t rc = GOV_OK;
    memset(&c, 0, sizeof c);
    memset(&again, 0, sizeof again);
    for (size_t i = 0; i < out->nreasons; i++)
        nex += out->reasons[i].has_excerpt;
    if (nex == 0 || m == NULL)
        return GOV_OK;
    c.win = gov_calloc(nex, sizeof *c.win);
    if (c.win == NULL) {
        rc = GOV_ERR_NOMEM;
        goto out;
    }
    /* The windows, sorted and merged where they overlap or touch. */
    for (size_t i = 0; i < out->nreasons; i++)
        if (out->reasons[i].has_excerpt)
            c.win[c.nwin++] = (redact_window_t){out->reasons[i].excerpt_start,
                                                out->reasons[i].excerpt_end, 0};
    qsort(c.win, c.nwin, sizeof *c.win, cmp_window);
    size_t merged = 0;
    for (size_t i = 0; i < c.nwin; i++) {
        if (merged > 0 && c.win[i].start <= c.win[merged - 1].end) {
            if (c.win[i].end > c.win[merged - 1].end)
                c.win[merged - 1].end = c.win[i].end;
        } else {
            c.win[merged++] = c.win[i];
        }
    }
    c.nwin = merged;
    for (size_t i = 0; i < c.nwin; i++) {
        c.win[i].base = total;
        total += c.win[i].end - c.win[i].start;
    }
    c.cover = gov_calloc(total ? total : 1, sizeof *c.cover);
    if (c.cover == NULL) {
        rc = GOV_ERR_NOMEM;
        goto out;
    }
    const scan_rec_t *src = rec;
    if (rec->overflow) {
        /* Too many spans were kept: scan again, marking as the spans close. */
        if ((rc = rec_init(&again, pack, np)) != GOV_OK)
            goto out;
        again.apply = &c;
        char merr[160] = "";
        rc = gov_matcher_spans(m, scratch, req->prompt, req->prompt_len, rec_on_match, &again,
                               merr, sizeof merr);
        if (rc != GOV_OK) {
            rc = scan_failed(rc, "redaction", merr, reason, errbuf, errbuf_size);
            goto out;
        }
        src = &again;
    } else {
        for (size_t i = 0; i < rec->nspans; i++)
            redact_apply(&c, rec->pattern_rule[rec->spans[i].pattern], rec->spans[i].start,
                         rec->spans[i].end);
    }
    for (size_t p = 0; p < np; p++)
        if (src->cur_set[p])
            redact_apply(&c, src->pattern_rule[p], src->cur_start[p], src->cur_end[p]);
    tail_from = src->tail_from;

    for (size_t i = 0; i < out->nreasons; i++) {
        gov_policy_reason_t *x = &out->reasons[i];
        if (!x->has_excerpt)
            continue;
        size_t w = 0;
        while (w + 1 < c.nwin && c.win[w].end < x->excerpt_end)
            w++;
        const size_t *cov = c.cover + c.win[w].base + (x->excerpt_start - c.win[w].start);
        size_t own = rule_of[i] + 1;
        int own_masked = gov_rulepack_rule(pack, rule_of[i])->redact;
        for (size_t k = 0; k < x->excerpt_len;) {
            size_t n = utf8_char_len((unsigned char)x->excerpt[k]), mask = 0;
            if (n > x->excerpt_len - k)
                n = x->excerpt_len - k;
            for (size_t b = k; b < k + n; b++)
                if ((cov[b] != COVER_NONE && (own_masked || cov[b] != own)) ||
                    x->excerpt_start + b >= tail_from)
                    mask = 1;
            if (mask)
                memset(x->excerpt + k, '*', n);
            k += n;
        }
    }
out:
    gov_free(c.win);
    gov_free(c.cover);
    rec_free(&again);
    return rc;
}

/* ---- response body ------------------------------------------------------------------ */

/* Numbers the body writes itself: micros with exactly 6 decimals
 * ("0.350000"), which jansson would print as 0.35. */
static void put_micros(gov_buf_t *b, int64_t micros) {
    char num[GOV_MICROS_TEXT];
    int n = gov_micros_format(micros, num);
    gov_buf_put(b, num, (size_t)n);
}

/* Strings go out with RFC 8785's minimal escaping (gov_buf_put_json_string):
 * the values are valid UTF-8 (the request was checked, rule texts came from
 * a validated pack, excerpts are cut on character boundaries). */
static void put_str(gov_buf_t *b, const char *s) {
    gov_buf_put_json_string(b, s, strlen(s));
}

gov_err_t gov_policy_decision_to_json(const gov_policy_decision_t *d, const char *extra_members,
                                      char **out, size_t *out_len) {
    gov_buf_t b;
    if (d == NULL || out == NULL)
        return GOV_ERR_INVALID_ARG;
    *out = NULL;
    gov_buf_init(&b, 0);
    gov_buf_putc(&b, '{');
    if (extra_members != NULL && extra_members[0] != '\0') {
        gov_buf_puts(&b, extra_members);
        gov_buf_putc(&b, ',');
    }
    gov_buf_puts(&b, "\"decision\":");
    put_str(&b, gov_decision_name(d->decision));
    gov_buf_puts(&b, ",\"score\":");
    put_micros(&b, d->score_micros);
    gov_buf_puts(&b, ",\"reasons\":[");
    for (size_t i = 0; i < d->nreasons; i++) {
        const gov_policy_reason_t *r = &d->reasons[i];
        if (i > 0)
            gov_buf_putc(&b, ',');
        gov_buf_puts(&b, "{\"rule_id\":");
        put_str(&b, r->rule_id);
        gov_buf_puts(&b, ",\"severity\":");
        put_str(&b, gov_severity_name(r->severity));
        gov_buf_puts(&b, ",\"weight\":");
        put_micros(&b, r->weight_micros);
        gov_buf_puts(&b, ",\"message\":");
        put_str(&b, r->message);
        if (r->has_excerpt) {
            gov_buf_puts(&b, ",\"excerpt\":");
            gov_buf_put_json_string(&b, r->excerpt, r->excerpt_len);
            gov_buf_puts(&b, ",\"excerpt_start\":");
            gov_buf_put_u64(&b, r->excerpt_start);
            gov_buf_puts(&b, ",\"excerpt_end\":");
            gov_buf_put_u64(&b, r->excerpt_end);
        }
        gov_buf_putc(&b, '}');
    }
    gov_buf_puts(&b, "],\"input_digest\":");
    put_str(&b, d->input_digest);
    gov_buf_puts(&b, ",\"effective_thresholds\":{\"max_risk_score\":");
    put_micros(&b, d->max_risk_micros);
    gov_buf_puts(&b, ",\"require_human_approval_above_risk\":");
    put_micros(&b, d->approval_micros);
    gov_buf_puts(&b, "}}");
    /* No limit is set, so the only failure is memory. */
    return gov_buf_finish(&b, out, out_len);
}
