/* gov_policy.h - the policy evaluator behind POST /v1/evaluate (docs/policy.md).
 *
 * Pure and deterministic: the constitution's rules, the tenant's compiled
 * rule pack, the parsed request and a per-thread matcher scratch go in; a
 * decision comes out.  No clock, no I/O, no globals: the same inputs give
 * the same decision, score, reasons (in a fixed order), excerpts and
 * input_digest on every replica, every time.  All arithmetic is in integer
 * millionths (int64); the score saturates at 1000000.
 *
 * The flow of one request:
 *   gov_policy_request_parse()     bounded parse + validation + input_digest
 *   gov_policy_evaluate()          constitution, rules, score, decision,
 *                                  excerpts masked (redaction)
 *   gov_policy_decision_to_json()  the response body (score with 6 decimals)
 *
 * Thresholds: the constitution gives max_risk_score and
 * require_human_approval_above_risk; when it does not, each defaults to 1.0,
 * and since the score never exceeds 1.0 that means no deny (or no review)
 * by score.  A pack may only tighten them: effective = min(constitution, pack).
 *
 * Thread-safety: every function is reentrant.  A gov_policy_constitution_t
 * is immutable and shareable; a request and a decision belong to one caller;
 * the scratch belongs to one thread (gov_matcher.h).
 */
#ifndef GOV_POLICY_H
#define GOV_POLICY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gov_buf.h"
#include "gov_err.h"
#include "gov_matcher.h"
#include "gov_reason.h"
#include "gov_rulepack.h"
#include "gov_util.h"

/* Longest excerpt, in bytes. */
#define GOV_EXCERPT_MAX 64
/* The excerpt window: up to this many bytes before the first match's end... */
#define GOV_EXCERPT_BEFORE 48
/* Reason ids of the constitution checks. */
#define GOV_REASON_PROHIBITED_ACTION "constitution.prohibited_action"
#define GOV_REASON_TOOL_CATEGORY "constitution.tool_category_not_permitted"

/* --- constitution rules ------------------------------------------------------- */

typedef struct gov_policy_constitution gov_policy_constitution_t;

/* Reads the "rules" object of a verified constitution document (borrowed,
 * not modified): prohibited_actions and permitted_tool_categories (arrays of
 * strings), max_risk_score and require_human_approval_above_risk (numbers in
 * [0,1], at most 6 decimals, 0/1 may be integers).  Each is optional; an
 * absent "rules" means no rules.  Any other member of "rules" is refused
 * (GOV_ERR_VERIFY, "rules.<member> is not a known rule"): a typo such as
 * "prohibited_action" must not silently disable a prohibition.
 * On GOV_OK *out is new (gov_policy_constitution_free).  Otherwise
 * GOV_ERR_VERIFY with "rules.<field> ..." in errbuf, GOV_ERR_NOMEM,
 * GOV_ERR_INVALID_ARG.  O(size of "rules" + n log n). */
gov_err_t gov_policy_constitution_from_json(const json_t *document,
                                            gov_policy_constitution_t **out, char *errbuf,
                                            size_t errbuf_size);
void gov_policy_constitution_free(gov_policy_constitution_t *c);
/* The constitution's thresholds in micros (1000000 when not given). */
int64_t gov_policy_constitution_max_risk_micros(const gov_policy_constitution_t *c);
int64_t gov_policy_constitution_approval_micros(const gov_policy_constitution_t *c);

/* --- request -------------------------------------------------------------------- */

/* Bounds on an untrusted request; gov_policy_limits_default() gives the
 * documented defaults. */
typedef struct gov_policy_limits {
    size_t max_bytes;             /* request text; default 2 MiB */
    int max_depth;                /* JSON nesting, top level = 1; default 4 (max 64) */
    size_t max_prompt_bytes;      /* the prompt, decoded; default 1 MiB */
    size_t max_string_bytes;      /* every other string, metadata keys too; default 256 */
    size_t max_metadata_entries;  /* default 64 */
} gov_policy_limits_t;

gov_policy_limits_t gov_policy_limits_default(void);

/* One metadata entry of a request: both strings NUL-terminated, without
 * U+0000, borrowed from the request. */
typedef struct gov_policy_meta {
    const char *key;
    const char *value;
    size_t value_len;
} gov_policy_meta_t;

/* A validated request.  Every string is borrowed from mem, which the
 * request owns (one allocation of the body's length + 1); strings are
 * NUL-terminated and hold no U+0000, except the prompt, which may (use
 * prompt_len). */
typedef struct gov_policy_request {
    char *mem;                     /* owned: the decoded strings */
    const char *tenant;
    const char *session_id;
    const char *user;
    const char *role;
    const char *prompt;
    size_t prompt_len;
    const char *action;            /* NULL when absent */
    const char *tool_name;         /* NULL when there is no tool */
    const char *tool_category;     /* NULL when there is no tool */
    gov_policy_meta_t *metadata;   /* owned; sorted by key (bytewise); NULL when absent */
    size_t nmetadata;
    char input_digest[GOV_SHA256_HEXLEN + 1];   /* hex SHA-256 of JCS(request) */
} gov_policy_request_t;

/* Parses and validates text[0..len) as an evaluation request (docs/policy.md,
 * "Request") and computes its input_digest, in one pass over the text
 * (gov_policy_request.c).  limits NULL: the defaults.  On
 * GOV_OK *req is filled (gov_policy_request_clear) and *reason is
 * GOV_REASON_NONE; otherwise *req is empty, *reason (may be NULL) is the
 * stable code and errbuf the detail (no "code: " prefix), the code one of
 *   GOV_ERR_PARSE      syntax, trailing_garbage, duplicate_key, invalid_utf8,
 *                      number_out_of_range, nul_in_key (gov_canon_parse's
 *                      grammar and refusals, in its precedence: a grammar
 *                      error anywhere first, then the earliest refusal),
 *                      invalid_type, unknown_field, missing_field,
 *                      invalid_value (empty, or holds U+0000), invalid_tenant
 *   GOV_ERR_TOO_LARGE  too_large (body, a string, metadata), too_deep
 *   GOV_ERR_NOMEM      nomem
 *   GOV_ERR_INVALID_ARG invalid_arg
 *   GOV_ERR_INTERNAL   internal
 * Cost: O(len): one pass over the text, one RFC 8785 serialization of the
 * validated members, one SHA-256; O(k log k) more for an object of k > 16
 * keys; two to four allocations. */
gov_err_t gov_policy_request_parse(const char *text, size_t len, const gov_policy_limits_t *limits,
                                   gov_policy_request_t *req, gov_reason_t *reason, char *errbuf,
                                   size_t errbuf_size);
/* The value of metadata key `key` (borrowed), or NULL.  O(log entries). */
const char *gov_policy_request_metadata(const gov_policy_request_t *req, const char *key);
void gov_policy_request_clear(gov_policy_request_t *req);

/* --- decision ------------------------------------------------------------------ */

typedef enum gov_decision {
    GOV_DECISION_ALLOW = 0,
    GOV_DECISION_REVIEW = 1,
    GOV_DECISION_DENY = 2,
} gov_decision_t;

/* "allow", "review", "deny". */
const char *gov_decision_name(gov_decision_t d);

typedef struct gov_policy_reason {
    char rule_id[GOV_RULE_ID_MAX + 1];
    gov_severity_t severity;
    gov_effect_t effect;              /* constitution reasons: deny */
    int64_t weight_micros;            /* the rule's weight; 0 for constitution reasons */
    char *message;                    /* owned */
    int has_excerpt;                  /* rules with a prompt condition */
    size_t excerpt_start;             /* byte offsets into the prompt, end exclusive */
    size_t excerpt_end;
    size_t excerpt_len;               /* excerpt_end - excerpt_start */
    char excerpt[GOV_EXCERPT_MAX + 1];    /* NUL-terminated copy (may hold U+0000), masked:
                                             matched characters are '*' (docs/policy.md,
                                             "Redaction"); same byte length */
    size_t match_end;                 /* end offset of the first prompt match */
} gov_policy_reason_t;

typedef struct gov_policy_decision {
    gov_decision_t decision;
    int64_t score_micros;             /* 0..1000000 */
    int64_t max_risk_micros;          /* effective thresholds */
    int64_t approval_micros;
    gov_policy_reason_t *reasons;     /* owned; constitution first, then rules by id */
    size_t nreasons;
    char input_digest[GOV_SHA256_HEXLEN + 1];
} gov_policy_decision_t;

/* Evaluates req against the constitution's rules and the pack (all
 * borrowed).  scratch may be NULL only when the pack has no prompt pattern;
 * it is fitted to the pack's matcher as needed.  On GOV_OK *out is filled
 * (gov_policy_decision_clear) and *reason (may be NULL) is GOV_REASON_NONE;
 * otherwise *out is empty, *reason says why and errbuf holds the detail
 * alone (no "code: " prefix):
 *   GOV_ERR_INVALID_ARG  GOV_REASON_INVALID_ARG: NULL arguments, patterns and
 *                        no scratch; GOV_REASON_TENANT_MISMATCH: the
 *                        request's tenant is not the pack's;
 *                        GOV_REASON_MATCHER: the scratch is in use
 *   GOV_ERR_NOMEM        GOV_REASON_NOMEM
 *   GOV_ERR_INTERNAL     GOV_REASON_MATCHER: the matcher failed (also the
 *                        redaction scan: an excerpt is never left unmasked)
 * Cost: one scan of the prompt (O(prompt)) plus O(rules x conditions x
 * log(set size)); when a reason has an excerpt, one more scan for the match
 * spans, plus O(matches x log excerpts + patterns x 64 x excerpts) at
 * worst to mark them. */
gov_err_t gov_policy_evaluate(const gov_policy_constitution_t *constitution,
                              const gov_rulepack_t *pack, const gov_policy_request_t *req,
                              gov_matcher_scratch_t *scratch, gov_policy_decision_t *out,
                              gov_reason_t *reason, char *errbuf, size_t errbuf_size);
void gov_policy_decision_clear(gov_policy_decision_t *d);

/* Writes the response body as a JSON object into a new buffer (*out,
 * gov_free; *out_len bytes without the NUL):
 *   {<extra_members>,"decision":"review","score":0.350000,"reasons":[{"rule_id":..,
 *    "severity":..,"weight":0.350000,"message":..,"excerpt":..,"excerpt_start":N,
 *    "excerpt_end":N}],"input_digest":"<hex>","effective_thresholds":
 *    {"max_risk_score":0.700000,"require_human_approval_above_risk":0.400000}}
 * extra_members (may be NULL) is the caller's JSON member text, inserted
 * first as is - e.g. "\"decision_id\":\"...\",\"evaluated_at\":\"...\"";
 * the caller vouches that it is well-formed.  Numbers are written by hand
 * with exactly 6 decimals.  O(size of the output). */
gov_err_t gov_policy_decision_to_json(const gov_policy_decision_t *d, const char *extra_members,
                                      char **out, size_t *out_len);

/* --- the decision log ------------------------------------------------------------- */

typedef struct gov_avro_registry gov_avro_registry_t;

/* What a PolicyDecision carries besides the request and the decision: the
 * caller's ids, clocks and state (all borrowed, NUL-terminated, of checked
 * syntax: UUIDs, tenant, hex, pack id and version, the edge's id). */
typedef struct gov_policy_log {
    const char *event_id;
    int64_t occurred_at_us;
    const char *tenant;
    const char *decision_id;
    const char *constitution_hash;
    const char *policy_id;
    const char *rulepack_version;
    int64_t evaluated_at_us;
    const char *edge_id;
} gov_policy_log_t;

/* Appends the PolicyDecision event of decision d on request req to out as an
 * Avro single-object message (schemas/PolicyDecision.avsc, the registry's
 * fingerprint), written directly: no JSON event in between
 * (gov_policy_log.c).  Returns out's sticky error (GOV_ERR_NOMEM,
 * GOV_ERR_TOO_LARGE past its limit), GOV_ERR_NOT_FOUND when the registry
 * lacks PolicyDecision, GOV_ERR_INVALID_ARG on NULL.  O(size of the event). */
gov_err_t gov_policy_decision_avro(const gov_avro_registry_t *reg, const gov_policy_log_t *log,
                                   const gov_policy_request_t *req,
                                   const gov_policy_decision_t *d, gov_buf_t *out);

/* The excerpt window for a match ending at match_end in a prompt of len
 * bytes: at most GOV_EXCERPT_MAX bytes, up to GOV_EXCERPT_BEFORE of them
 * before match_end (more when the prompt ends sooner), both ends moved
 * inwards to UTF-8 character boundaries.  Exposed for tests.  O(1). */
void gov_policy_excerpt_window(const char *prompt, size_t len, size_t match_end, size_t *start,
                               size_t *end);

#endif /* GOV_POLICY_H */
