/* gov_rulepack.h - rule packs: parse, validate, compile (docs/policy.md).
 *
 * A rule pack is a tenant's JSON list of scoring rules.  gov_rulepack_parse
 * takes untrusted text (a RulePackPublished event, a govctl file), applies
 * every rule of docs/policy.md, bounded by gov_rulepack_limits_t, and
 * compiles all prompt patterns into one gov_matcher_t.  The first problem
 * found rejects the pack, with an error that names the rule (its index and
 * id) and the field: "rules[3] (pii.email): weight 0.1234567 has more than 6
 * decimal places".
 *
 * The result is immutable.  Its rules are kept sorted by id (bytewise), so
 * the order in which a pack declares its rules changes nothing downstream:
 * not the evaluation, not the canonical JSON (rules sorted by id, then RFC
 * 8785), which is what gov-rulepacks stores in Redis and gov-edge parses
 * again (a fixed point: parsing the canonical JSON gives the same pack and
 * the same bytes).
 *
 * Numbers (weights, thresholds) become integer millionths ("micros") without
 * floating-point arithmetic (gov_micros.h); role/action/category lists
 * become gov_strset_t sets; the version is a gov_version_t.
 *
 * Thread-safety: gov_rulepack_parse is reentrant.  A gov_rulepack_t is
 * immutable and may be read (and its matcher scanned, each thread with its
 * own scratch) by any number of threads at once.
 */
#ifndef GOV_RULEPACK_H
#define GOV_RULEPACK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gov_canon.h"
#include "gov_hash.h"
#include "gov_signature.h"
#include "gov_err.h"
#include "gov_reason.h"
#include "gov_matcher.h"
#include "gov_micros.h"
#include "gov_strset.h"
#include "gov_version.h"

#define GOV_RULE_ID_MAX 128
#define GOV_PACK_ID_MAX 64

typedef enum gov_severity {
    GOV_SEVERITY_LOW = 0,
    GOV_SEVERITY_MEDIUM,
    GOV_SEVERITY_HIGH,
    GOV_SEVERITY_CRITICAL,
} gov_severity_t;

typedef enum gov_effect {
    GOV_EFFECT_ADD = 0,
    GOV_EFFECT_DENY,
} gov_effect_t;

/* Bit per condition a rule's "match" gives. */
enum {
    GOV_COND_PROMPT = 1u << 0,
    GOV_COND_ROLE = 1u << 1,
    GOV_COND_ACTION = 1u << 2,
    GOV_COND_TOOL_CATEGORY = 1u << 3,
    GOV_COND_METADATA = 1u << 4,
};

/* Bounds on untrusted pack text.  gov_rulepack_limits_default() gives the
 * contract limits (docs/policy.md "Limits", docs/contracts.md "Signed rule
 * packs"): gov-rulepacks, every edge and govctl parse with them (limits
 * NULL), and they are not configurable, so whatever gov-rulepacks accepts
 * every edge loads.  Other values are for tests and fuzzing. */
typedef struct gov_rulepack_limits {
    size_t max_bytes;            /* pack text; default 512 KiB (fits one 1 MiB Avro message) */
    int max_depth;               /* JSON nesting, top level = 1; default 8 (max 64) */
    size_t max_rules;            /* default 500 */
    size_t max_patterns;         /* prompt patterns in the pack; default 2048 */
    size_t max_pattern_bytes;    /* sum of pattern lengths; default 64 KiB */
    size_t max_pattern_len;      /* one pattern; default 4 KiB */
    size_t max_set_entries;      /* one role/action/tool_category/"in" list; default 256 */
    size_t max_metadata_keys;    /* keys in one rule's match.metadata; default 32 */
    size_t max_value_bytes;      /* one set entry, metadata key or value; default 256 */
    size_t max_text_bytes;       /* message, description; default 4096 */
} gov_rulepack_limits_t;

gov_rulepack_limits_t gov_rulepack_limits_default(void);

/* What was wrong with a rejected pack, for logs, audit events and tests. */
typedef struct gov_rulepack_error {
    long rule_index;                      /* declaration index, -1 when not about one rule */
    char rule_id[GOV_RULE_ID_MAX + 1];    /* "" when the rule's id is not known (yet) */
    char field[128];                      /* "weight", "match.prompt[1].regex",
                                             "thresholds.max_risk_score", "" for the text */
    gov_reason_t code;                    /* stable: see docs/policy.md "Error codes";
                                             never GOV_REASON_NONE on failure */
} gov_rulepack_error_t;

typedef struct gov_rule_metadata {
    char *key;
    int is_in;               /* 0: {"equals": v} (values has one entry), 1: {"in": [...]} */
    gov_strset_t values;
} gov_rule_metadata_t;

/* One validated rule (read-only; owned by its pack). */
typedef struct gov_rule {
    char *id;
    size_t decl_index;             /* position in the pack's "rules" as published */
    gov_severity_t severity;
    gov_effect_t effect;
    int64_t weight_micros;         /* 0..1000000 */
    char *message;
    char *description;             /* NULL when absent */
    unsigned conditions;           /* GOV_COND_* bits, at least one */
    int redact;                    /* 1: mask this rule's matches in excerpts ("redact";
                                      default 1 for ids under pii. and secrets.) */
    size_t pattern_first;          /* this rule's patterns in the pack matcher: */
    size_t pattern_count;          /*   [pattern_first, pattern_first + pattern_count) */
    gov_strset_t roles, actions, tool_categories;
    gov_rule_metadata_t *metadata; /* sorted by key, unique keys */
    size_t nmetadata;
} gov_rule_t;

typedef struct gov_rulepack gov_rulepack_t;

/* Parses and validates text[0..len) (untrusted, no NUL terminator needed)
 * as a rule pack and compiles its patterns.  limits NULL means the defaults.
 * On GOV_OK *out is a new pack (gov_rulepack_free).  On failure *out is
 * NULL, errbuf holds the message naming the rule and field, and *detail (may
 * be NULL) the same in parts:
 *   GOV_ERR_PARSE        not JSON: syntax, invalid UTF-8, duplicate key
 *                        (code "invalid_json", "invalid_utf8", "duplicate_key")
 *   GOV_ERR_TOO_LARGE    a limit: text size, depth, rules, patterns, pattern
 *                        bytes, pattern length, lists, strings ("too_large",
 *                        "too_deep", "too_many_rules", ...)
 *   GOV_ERR_VERIFY       valid JSON but not a valid pack: "unknown_field",
 *                        "missing_field", "invalid_type", "invalid_value",
 *                        "out_of_range", "too_many_decimals", "duplicate_id",
 *                        "empty_match", "invalid_pattern" (Vectorscan refused
 *                        it; its reason is quoted)
 *   GOV_ERR_NOMEM, GOV_ERR_INVALID_ARG
 * Cost: O(len) parse and checks, O(r log r) sorting, plus the Vectorscan
 * compile of the (bounded) patterns, which dominates. */
gov_err_t gov_rulepack_parse(const char *text, size_t len, const gov_rulepack_limits_t *limits,
                             gov_rulepack_t **out, gov_rulepack_error_t *detail, char *errbuf,
                             size_t errbuf_size);
void gov_rulepack_free(gov_rulepack_t *p);

/* Accessors: borrowed values, valid while the pack lives.  O(1). */
const char *gov_rulepack_id(const gov_rulepack_t *p);
const char *gov_rulepack_tenant(const gov_rulepack_t *p);
const char *gov_rulepack_version(const gov_rulepack_t *p);   /* as published */
const gov_version_t *gov_rulepack_version_parsed(const gov_rulepack_t *p);
/* Pack thresholds in micros, -1 when the pack does not set one. */
int64_t gov_rulepack_max_risk_micros(const gov_rulepack_t *p);
int64_t gov_rulepack_approval_micros(const gov_rulepack_t *p);
size_t gov_rulepack_rule_count(const gov_rulepack_t *p);
/* Rule i in id order (0 <= i < count). */
const gov_rule_t *gov_rulepack_rule(const gov_rulepack_t *p, size_t i);
/* The compiled prompt patterns, NULL when no rule has a prompt condition. */
const gov_matcher_t *gov_rulepack_matcher(const gov_rulepack_t *p);

/* The pack's canonical JSON: the pack as published with its rules sorted by
 * id, in RFC 8785 (JCS) form.  Borrowed, NUL-terminated, *len (may be NULL)
 * bytes; the same for any declaration order of the same rules. */
const char *gov_rulepack_canonical_json(const gov_rulepack_t *p, size_t *len);

/* Renders the canonical JSON into a new buffer (*out, gov_free, *out_len
 * bytes without the NUL).  GOV_ERR_NOMEM on allocation failure. */
gov_err_t gov_rulepack_render_canonical(const gov_rulepack_t *p, char **out, size_t *out_len);

/* Stable names: "low".."critical", "add"/"deny". */
const char *gov_severity_name(gov_severity_t s);
const char *gov_effect_name(gov_effect_t e);

/* --- signed packs (docs/contracts.md, "Signed rule packs") --------------------- */

/* What a pack signer signs: the lowercase SHA-256 hex of the pack's
 * canonical JSON (gov_rulepack_canonical_json), as ASCII - the scheme of
 * constitution bundles.  So a signature covers the pack whatever the order
 * of its rules or its whitespace as published, and the edge can check it
 * again on the exact bytes Redis holds.  GOV_ERR_CRYPTO on a hash failure. */
gov_err_t gov_rulepack_digest_hex(const gov_rulepack_t *p, char out[GOV_SHA256_HEXLEN + 1]);

/* Verifies detached signatures sigs[0..nsigs) (borrowed) of pack p for
 * tenant against trust (the rule-pack trust file, the constitution trust
 * format; borrowed):
 *   the trust covers the tenant                    tenant_not_trusted
 *   the pack names this tenant                     tenant_mismatch
 *   then gov_signatures_check_form and gov_signatures_count over the digest
 *   above, threshold = the tenant's (at least 1)   no_signatures, untrusted_signer,
 *                                                  invalid_signature, ...
 * GOV_OK with out->reason GOV_REASON_NONE when it verifies, another reason
 * (and out->detail) when not; GOV_ERR_CRYPTO when it could not be decided.
 * Cost: one SHA-256 of the canonical JSON, one Ed25519 check per trusted
 * signature. */
gov_err_t gov_rulepack_verify_signatures(const gov_rulepack_t *p, const char *tenant,
                                         const gov_bundle_sig_t *sigs, size_t nsigs,
                                         const gov_trust_t *trust, gov_sig_count_t *out);

#endif /* GOV_RULEPACK_H */
