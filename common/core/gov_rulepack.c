/* gov_rulepack.c - parse, validate and compile a tenant's rule pack.
 *
 * What it is for: a rule pack arrives as untrusted JSON (an operator's file,
 * a Kafka event) and, once accepted, decides requests on every edge replica.
 * So it is checked completely before anything uses it, and the first problem
 * rejects it with a message an operator can act on: which rule (index as
 * published, and id), which field, what is wrong.
 *
 * How it works, in one pass over the parsed document: bounds first (text
 * size before parsing, nesting depth, then every count and length as the
 * walker meets it), then each member in a fixed order, so the same bad pack
 * always gives the same error.  Rules are validated in declaration order
 * into a build array; then sorted by id (duplicates found as neighbours);
 * then the prompt patterns of all rules, in id order, are compiled into one
 * Vectorscan database, and a pattern Vectorscan refuses is traced back to
 * its rule.  Finally the canonical JSON is written: the document with its
 * rules array in id order, serialized as RFC 8785.
 *
 * Weights and thresholds are decided on text, not on doubles, by
 * gov_micros_from_json; unknown members and nesting are judged by gov_json,
 * so gov_policy names the same member for the same input.
 *
 * What it does not do: it does not compare the version with a previously
 * published one (gov-rulepacks does, with gov_version_compare), nor check
 * that the tenant is the one the pack was published under.
 */
#include "gov_rulepack.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_json.h"
#include "gov_util.h"

struct gov_rulepack {
    char *pack_id;
    char *tenant;
    char *version;
    gov_version_t version_parsed;
    int64_t max_risk_micros;     /* -1: absent */
    int64_t approval_micros;     /* -1: absent */
    gov_rule_t *rules;           /* sorted by id */
    size_t nrules;
    gov_matcher_t *matcher;      /* NULL when there are no prompt patterns */
    char *canonical;
    size_t canonical_len;
};

gov_rulepack_limits_t gov_rulepack_limits_default(void) {
    gov_rulepack_limits_t l = {
        .max_bytes = 512 * 1024, /* with the event around it, always one Avro message (1 MiB) */
        .max_depth = 8,
        .max_rules = 500,
        .max_patterns = 2048,
        .max_pattern_bytes = 64 * 1024,
        .max_pattern_len = 4 * 1024,
        .max_set_entries = 256,
        .max_metadata_keys = 32,
        .max_value_bytes = 256,
        .max_text_bytes = 4096,
    };
    return l;
}

const char *gov_severity_name(gov_severity_t s) {
    switch (s) {
    case GOV_SEVERITY_LOW:
        return "low";
    case GOV_SEVERITY_MEDIUM:
        return "medium";
    case GOV_SEVERITY_HIGH:
        return "high";
    case GOV_SEVERITY_CRITICAL:
        return "critical";
    }
    return "unknown";
}

const char *gov_effect_name(gov_effect_t e) {
    switch (e) {
    case GOV_EFFECT_ADD:
        return "add";
    case GOV_EFFECT_DENY:
        return "deny";
    }
    return "unknown";
}

/* ---- errors -------------------------------------------------------------- */

typedef struct pctx {
    const gov_rulepack_limits_t *lim;
    gov_rulepack_error_t *detail;
    char *errbuf;
    size_t errbuf_size;
    long rule_index;               /* -1: pack level */
    const char *rule_id;           /* NULL: not known */
    size_t npatterns;
    size_t pattern_bytes;
} pctx_t;

/* Records the error: message "rules[3] (id): field detail" (the prefix only
 * for rule errors, the field only when given).  Returns rc. */
static gov_err_t fail(pctx_t *c, gov_err_t rc, gov_reason_t code, const char *field,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static gov_err_t fail(pctx_t *c, gov_err_t rc, gov_reason_t code, const char *field,
                      const char *fmt, ...) {
    char what[512];
    GOV_FORMAT_VA(what, sizeof what, fmt);
    if (field == NULL)
        field = "";
    if (c->detail != NULL) {
        c->detail->rule_index = c->rule_index;
        snprintf(c->detail->rule_id, sizeof c->detail->rule_id, "%s",
                 c->rule_id ? c->rule_id : "");
        snprintf(c->detail->field, sizeof c->detail->field, "%s", field);
        c->detail->code = code;
    }
    if (c->errbuf != NULL && c->errbuf_size > 0) {
        char prefix[GOV_RULE_ID_MAX + 48] = "";
        if (c->rule_index >= 0 && c->rule_id != NULL)
            snprintf(prefix, sizeof prefix, "rules[%ld] (%s): ", c->rule_index, c->rule_id);
        else if (c->rule_index >= 0)
            snprintf(prefix, sizeof prefix, "rules[%ld]: ", c->rule_index);
        snprintf(c->errbuf, c->errbuf_size, "%s%s%s%s", prefix, field, field[0] ? " " : "",
                 what);
    }
    return rc;
}

static gov_err_t fail_nomem(pctx_t *c) {
    return fail(c, GOV_ERR_NOMEM, GOV_REASON_NOMEM, NULL, "out of memory");
}

/* Appends ".key" to a field path, the key cut to 32 bytes on a character
 * boundary and control characters shown as '?', so a hostile key cannot
 * flood or garble a log line. */
static void field_key(char *dst, size_t dst_size, const char *base, const char *key) {
    char k[40];
    gov_utf8_shorten(k, sizeof k, key, 32);
    snprintf(dst, dst_size, "%s.%s", base, k);
}

/* ---- JSON helpers ---------------------------------------------------------- */

/* Rejects a member of obj not in allowed[] (NULL-terminated); of several,
 * the bytewise smallest is named, so the error does not depend on the
 * member order. */
static gov_err_t check_members(pctx_t *c, const json_t *obj, const char *const *allowed,
                               const char *base) {
    const char *worst = gov_json_unknown_member(obj, allowed);
    if (worst == NULL)
        return GOV_OK;
    char f[160];
    if (base[0] == '\0') {
        field_key(f, sizeof f, "", worst);
        memmove(f, f + 1, strlen(f));   /* drop the leading '.' */
    } else {
        field_key(f, sizeof f, base, worst);
    }
    return fail(c, GOV_ERR_VERIFY, GOV_REASON_UNKNOWN_FIELD, f, "is not a known member");
}

/* A string member with 1..max bytes (0..max when allow_empty) and no NUL. */
static gov_err_t get_string(pctx_t *c, const json_t *v, const char *field, size_t max,
                            int allow_empty, const char **out) {
    if (!json_is_string(v))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, field, "must be a string");
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n == 0 && !allow_empty)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, field, "must not be empty");
    if (n > max)
        return fail(c, GOV_ERR_TOO_LARGE, GOV_REASON_TOO_LARGE, field, "is %zu bytes (limit %zu)", n,
                    max);
    if (memchr(s, '\0', n) != NULL)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, field,
                    "must not contain U+0000");
    *out = s;
    return GOV_OK;
}

static int charset_ok(const char *s, size_t n, const char *extra) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'))
            continue;
        if (ch != 0 && strchr(extra, ch) != NULL)
            continue;
        return 0;
    }
    return 1;
}

static gov_err_t get_micros(pctx_t *c, const json_t *v, const char *field, int64_t *out) {
    char text[GOV_CANON_NUMBUF];
    switch (gov_micros_from_json(v, out, text)) {
    case GOV_MICROS_OK:
        return GOV_OK;
    case GOV_MICROS_NOT_NUMBER:
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, field, "must be a number");
    case GOV_MICROS_OUT_OF_RANGE:
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_OUT_OF_RANGE, field, "%s is not in [0,1]", text);
    case GOV_MICROS_TOO_PRECISE:
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_TOO_MANY_DECIMALS, field,
                    "%s has more than 6 decimal places", text);
    }
    return fail(c, GOV_ERR_INTERNAL, GOV_REASON_INTERNAL, field, "unexpected number status");
}

/* Builds a sorted, deduplicated set from a JSON array of strings. */
static gov_err_t get_strset(pctx_t *c, const json_t *v, const char *field, gov_strset_t *out) {
    if (!json_is_array(v))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, field, "must be an array of strings");
    size_t n = json_array_size(v);
    if (n == 0)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, field, "must hold at least one value");
    if (n > c->lim->max_set_entries)
        return fail(c, GOV_ERR_TOO_LARGE, GOV_REASON_TOO_LARGE, field, "has %zu values (limit %zu)", n,
                    c->lim->max_set_entries);
    out->v = gov_calloc(n, sizeof *out->v);
    if (out->v == NULL)
        return fail_nomem(c);
    for (size_t i = 0; i < n; i++) {
        char f[160];
        const char *s;
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        gov_err_t rc = get_string(c, json_array_get(v, i), f, c->lim->max_value_bytes, 0, &s);
        if (rc != GOV_OK)
            return rc;
        out->v[out->n] = gov_strdup(s);
        if (out->v[out->n] == NULL)
            return fail_nomem(c);
        out->n++;
    }
    gov_strset_finish(out);
    return GOV_OK;
}

/* ---- rules ------------------------------------------------------------------- */

/* A rule while the pack is being built: the public rule plus its patterns,
 * which point into the parsed document. */
typedef struct rule_build {
    gov_rule_t rule;
    gov_pattern_t *pats;
    size_t npats;
} rule_build_t;

static void rule_clear(gov_rule_t *r) {
    gov_free(r->id);
    gov_free(r->message);
    gov_free(r->description);
    gov_strset_clear(&r->roles);
    gov_strset_clear(&r->actions);
    gov_strset_clear(&r->tool_categories);
    for (size_t i = 0; i < r->nmetadata; i++) {
        gov_free(r->metadata[i].key);
        gov_strset_clear(&r->metadata[i].values);
    }
    gov_free(r->metadata);
    memset(r, 0, sizeof *r);
}

static gov_err_t parse_prompt(pctx_t *c, const json_t *v, rule_build_t *b) {
    static const char *const allowed[] = {"literal", "regex", "case_insensitive", NULL};
    if (!json_is_array(v))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, "match.prompt",
                    "must be an array of patterns");
    size_t n = json_array_size(v);
    if (n == 0)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "match.prompt",
                    "must hold at least one pattern");
    if (n > c->lim->max_patterns || c->npatterns + n > c->lim->max_patterns)
        return fail(c, GOV_ERR_TOO_LARGE, GOV_REASON_TOO_MANY_PATTERNS, "match.prompt",
                    "brings the pack to %zu patterns (limit %zu)", c->npatterns + n,
                    c->lim->max_patterns);
    b->pats = gov_calloc(n, sizeof *b->pats);
    if (b->pats == NULL)
        return fail_nomem(c);
    for (size_t i = 0; i < n; i++) {
        const json_t *p = json_array_get(v, i);
        char base[64], f[96];
        snprintf(base, sizeof base, "match.prompt[%zu]", i);
        if (!json_is_object(p))
            return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, base, "must be an object");
        gov_err_t rc = check_members(c, p, allowed, base);
        if (rc != GOV_OK)
            return rc;
        const json_t *lit = json_object_get(p, "literal");
        const json_t *re = json_object_get(p, "regex");
        const json_t *ci = json_object_get(p, "case_insensitive");
        if (lit != NULL && re != NULL)
            return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, base,
                        "must give exactly one of literal and regex");
        if (lit == NULL && re == NULL)
            return fail(c, GOV_ERR_VERIFY, GOV_REASON_MISSING_FIELD, base,
                        "must give a literal or a regex");
        const json_t *t = lit ? lit : re;
        snprintf(f, sizeof f, "%s.%s", base, lit ? "literal" : "regex");
        if (!json_is_string(t))
            return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, f, "must be a string");
        size_t len = json_string_length(t);
        if (len == 0)
            return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, f, "must not be empty");
        if (len > c->lim->max_pattern_len)
            return fail(c, GOV_ERR_TOO_LARGE, GOV_REASON_PATTERN_TOO_LONG, f,
                        "is %zu bytes (limit %zu)", len, c->lim->max_pattern_len);
        if (c->pattern_bytes + len > c->lim->max_pattern_bytes)
            return fail(c, GOV_ERR_TOO_LARGE, GOV_REASON_TOO_MANY_PATTERN_BYTES, f,
                        "brings the pack's patterns to %zu bytes (limit %zu)",
                        c->pattern_bytes + len, c->lim->max_pattern_bytes);
        if (ci != NULL && !json_is_boolean(ci)) {
            snprintf(f, sizeof f, "%s.case_insensitive", base);
            return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, f, "must be true or false");
        }
        c->pattern_bytes += len;
        c->npatterns++;
        b->pats[i].kind = lit ? GOV_PATTERN_LITERAL : GOV_PATTERN_REGEX;
        b->pats[i].text = json_string_value(t);
        b->pats[i].len = len;
        b->pats[i].case_insensitive = ci != NULL && json_is_true(ci);
        b->npats = i + 1;
    }
    return GOV_OK;
}

static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const gov_rule_metadata_t *)a)->key, ((const gov_rule_metadata_t *)b)->key);
}

static gov_err_t parse_metadata(pctx_t *c, const json_t *v, gov_rule_t *r) {
    static const char *const allowed[] = {"equals", "in", NULL};
    if (!json_is_object(v))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, "match.metadata", "must be an object");
    size_t n = json_object_size(v);
    if (n == 0)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "match.metadata",
                    "must hold at least one key");
    if (n > c->lim->max_metadata_keys)
        return fail(c, GOV_ERR_TOO_LARGE, GOV_REASON_TOO_LARGE, "match.metadata",
                    "has %zu keys (limit %zu)", n, c->lim->max_metadata_keys);
    r->metadata = gov_calloc(n, sizeof *r->metadata);
    if (r->metadata == NULL)
        return fail_nomem(c);
    /* Keys in bytewise order, so the first bad key named does not depend on
     * the order they were written in. */
    const char **keys = gov_calloc(n, sizeof *keys);
    if (keys == NULL)
        return fail_nomem(c);
    gov_err_t rc = GOV_OK;
    size_t k = 0;
    const char *key;
    json_t *x;
    json_object_foreach((json_t *)v, key, x) keys[k++] = key;
    qsort(keys, n, sizeof *keys, gov_strset_cmp);
    for (k = 0; k < n; k++) {
        char base[160], f[176];
        const json_t *cond = json_object_get(v, keys[k]);
        size_t klen = strlen(keys[k]);
        field_key(base, sizeof base, "match.metadata", keys[k]);
        if (klen == 0) {
            rc = fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "match.metadata",
                      "keys must not be empty");
            goto out;
        }
        if (klen > c->lim->max_value_bytes) {
            rc = fail(c, GOV_ERR_TOO_LARGE, GOV_REASON_TOO_LARGE, base, "key is %zu bytes (limit %zu)",
                      klen, c->lim->max_value_bytes);
            goto out;
        }
        if (!json_is_object(cond)) {
            rc = fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, base,
                      "must be {\"equals\": v} or {\"in\": [...]}");
            goto out;
        }
        if ((rc = check_members(c, cond, allowed, base)) != GOV_OK)
            goto out;
        const json_t *eq = json_object_get(cond, "equals");
        const json_t *in = json_object_get(cond, "in");
        if ((eq != NULL) == (in != NULL)) {
            rc = fail(c, GOV_ERR_VERIFY, eq ? GOV_REASON_INVALID_VALUE : GOV_REASON_MISSING_FIELD, base,
                      "must give exactly one of equals and in");
            goto out;
        }
        gov_rule_metadata_t *m = &r->metadata[r->nmetadata];
        m->key = gov_strdup(keys[k]);
        if (m->key == NULL) {
            rc = fail_nomem(c);
            goto out;
        }
        r->nmetadata++;
        if (eq != NULL) {
            const char *s;
            snprintf(f, sizeof f, "%s.equals", base);
            if ((rc = get_string(c, eq, f, c->lim->max_value_bytes, 1, &s)) != GOV_OK)
                goto out;
            m->values.v = gov_calloc(1, sizeof *m->values.v);
            if (m->values.v == NULL || (m->values.v[0] = gov_strdup(s)) == NULL) {
                rc = fail_nomem(c);
                goto out;
            }
            m->values.n = 1;
        } else {
            m->is_in = 1;
            snprintf(f, sizeof f, "%s.in", base);
            if ((rc = get_strset(c, in, f, &m->values)) != GOV_OK)
                goto out;
        }
    }
    qsort(r->metadata, r->nmetadata, sizeof *r->metadata, cmp_meta);
out:
    gov_free(keys);
    return rc;
}

static const char *const severity_names[] = {"low", "medium", "high", "critical", NULL};

static gov_err_t parse_rule(pctx_t *c, const json_t *v, size_t index, rule_build_t *b) {
    static const char *const allowed[] = {"id",     "description", "severity", "weight",
                                          "effect", "message",     "match",    "redact", NULL};
    static const char *const match_allowed[] = {"prompt", "role", "action", "tool_category",
                                                "metadata", NULL};
    gov_rule_t *r = &b->rule;
    gov_err_t rc;
    const char *s;

    c->rule_index = (long)index;
    c->rule_id = NULL;
    r->decl_index = index;
    if (!json_is_object(v))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, NULL, "must be an object");

    /* The id first, so that every later error can name the rule by it. */
    const json_t *id = json_object_get(v, "id");
    if (id == NULL)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_MISSING_FIELD, "id", "is required");
    if (!json_is_string(id))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, "id", "must be a string");
    size_t idlen = json_string_length(id);
    if (idlen < 1 || idlen > GOV_RULE_ID_MAX ||
        !charset_ok(json_string_value(id), idlen, "._:-"))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "id",
                    "must be 1-128 characters of [A-Za-z0-9._:-]");
    r->id = gov_strdup(json_string_value(id));
    if (r->id == NULL)
        return fail_nomem(c);
    c->rule_id = r->id;

    if ((rc = check_members(c, v, allowed, "")) != GOV_OK)
        return rc;

    const json_t *sev = json_object_get(v, "severity");
    if (sev == NULL)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_MISSING_FIELD, "severity", "is required");
    if (!json_is_string(sev))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, "severity", "must be a string");
    int found = 0;
    for (int i = 0; severity_names[i] != NULL; i++) {
        if (strcmp(json_string_value(sev), severity_names[i]) == 0 &&
            json_string_length(sev) == strlen(severity_names[i])) {
            r->severity = (gov_severity_t)i;
            found = 1;
        }
    }
    if (!found)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "severity",
                    "must be one of low, medium, high, critical");

    const json_t *w = json_object_get(v, "weight");
    if (w == NULL)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_MISSING_FIELD, "weight", "is required");
    if ((rc = get_micros(c, w, "weight", &r->weight_micros)) != GOV_OK)
        return rc;

    const json_t *eff = json_object_get(v, "effect");
    if (eff == NULL)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_MISSING_FIELD, "effect", "is required");
    if (!json_is_string(eff))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, "effect", "must be a string");
    if (strcmp(json_string_value(eff), "add") == 0 && json_string_length(eff) == 3)
        r->effect = GOV_EFFECT_ADD;
    else if (strcmp(json_string_value(eff), "deny") == 0 && json_string_length(eff) == 4)
        r->effect = GOV_EFFECT_DENY;
    else
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "effect", "must be add or deny");

    const json_t *msg = json_object_get(v, "message");
    if (msg == NULL)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_MISSING_FIELD, "message", "is required");
    if ((rc = get_string(c, msg, "message", c->lim->max_text_bytes, 0, &s)) != GOV_OK)
        return rc;
    if ((r->message = gov_strdup(s)) == NULL)
        return fail_nomem(c);

    const json_t *desc = json_object_get(v, "description");
    if (desc != NULL) {
        if ((rc = get_string(c, desc, "description", c->lim->max_text_bytes, 1, &s)) != GOV_OK)
            return rc;
        if ((r->description = gov_strdup(s)) == NULL)
            return fail_nomem(c);
    }

    /* Whether excerpts mask this rule's matches (gov_policy): personal data
     * and secrets by default, by the id namespace; docs/policy.md. */
    const json_t *red = json_object_get(v, "redact");
    if (red != NULL && !json_is_boolean(red))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, "redact", "must be true or false");
    r->redact = red != NULL ? json_is_true(red)
                            : strncmp(r->id, "pii.", 4) == 0 || strncmp(r->id, "secrets.", 8) == 0;

    const json_t *match = json_object_get(v, "match");
    if (match == NULL)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_MISSING_FIELD, "match", "is required");
    if (!json_is_object(match))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, "match", "must be an object");
    if ((rc = check_members(c, match, match_allowed, "match")) != GOV_OK)
        return rc;
    if (json_object_size(match) == 0)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_EMPTY_MATCH, "match",
                    "must give at least one condition");
    const json_t *x;
    if ((x = json_object_get(match, "prompt")) != NULL) {
        if ((rc = parse_prompt(c, x, b)) != GOV_OK)
            return rc;
        r->conditions |= GOV_COND_PROMPT;
    }
    if ((x = json_object_get(match, "role")) != NULL) {
        if ((rc = get_strset(c, x, "match.role", &r->roles)) != GOV_OK)
            return rc;
        r->conditions |= GOV_COND_ROLE;
    }
    if ((x = json_object_get(match, "action")) != NULL) {
        if ((rc = get_strset(c, x, "match.action", &r->actions)) != GOV_OK)
            return rc;
        r->conditions |= GOV_COND_ACTION;
    }
    if ((x = json_object_get(match, "tool_category")) != NULL) {
        if ((rc = get_strset(c, x, "match.tool_category", &r->tool_categories)) != GOV_OK)
            return rc;
        r->conditions |= GOV_COND_TOOL_CATEGORY;
    }
    if ((x = json_object_get(match, "metadata")) != NULL) {
        if ((rc = parse_metadata(c, x, r)) != GOV_OK)
            return rc;
        r->conditions |= GOV_COND_METADATA;
    }
    return GOV_OK;
}

static int cmp_build(const void *a, const void *b) {
    const rule_build_t *x = a, *y = b;
    int d = strcmp(x->rule.id, y->rule.id);
    if (d != 0)
        return d;
    return x->rule.decl_index < y->rule.decl_index ? -1 : x->rule.decl_index > y->rule.decl_index;
}

/* ---- the pack ------------------------------------------------------------------ */

void gov_rulepack_free(gov_rulepack_t *p) {
    if (p == NULL)
        return;
    gov_free(p->pack_id);
    gov_free(p->tenant);
    gov_free(p->version);
    for (size_t i = 0; i < p->nrules; i++)
        rule_clear(&p->rules[i]);
    gov_free(p->rules);
    gov_matcher_free(p->matcher);
    gov_free(p->canonical);
    gov_free(p);
}

static gov_err_t parse_header(pctx_t *c, const json_t *doc, gov_rulepack_t *p) {
    static const char *const allowed[] = {"pack_id", "tenant", "version", "description",
                                          "thresholds", "rules", NULL};
    static const char *const thr_allowed[] = {"max_risk_score",
                                              "require_human_approval_above_risk", NULL};
    gov_err_t rc;
    const char *s;
    if ((rc = check_members(c, doc, allowed, "")) != GOV_OK)
        return rc;

    const json_t *v = json_object_get(doc, "pack_id");
    if (v == NULL)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_MISSING_FIELD, "pack_id", "is required");
    if (!json_is_string(v))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, "pack_id", "must be a string");
    size_t n = json_string_length(v);
    if (n < 1 || n > GOV_PACK_ID_MAX || !charset_ok(json_string_value(v), n, "._-"))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "pack_id",
                    "must be 1-64 characters of [A-Za-z0-9._-]");
    if ((p->pack_id = gov_strdup(json_string_value(v))) == NULL)
        return fail_nomem(c);

    v = json_object_get(doc, "tenant");
    if (v == NULL)
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_MISSING_FIELD, "tenant", "is required");
    if (!json_is_string(v))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, "tenant", "must be a string");
    if (!gov_tenant_valid(json_string_value(v), json_string_length(v)))
        return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "tenant",
                    "must be 1-64 characters of [A-Za-z0-9._-], not starting with . or -");
    if ((p->tenant = gov_strdup(json_string_value(v))) == NULL)
        return fail_nomem(c);

    /* gov_version_from_json: the limits (2^53 - 1, 63 bytes) and their
     * reason codes are the constitution's too (docs/contracts.md). */
    char vbuf[GOV_VERSION_MAX], vwhy[160];
    gov_reason_t vreason;
    rc = gov_version_from_json(json_object_get(doc, "version"), vbuf, &p->version_parsed,
                               &vreason, vwhy, sizeof vwhy);
    if (rc != GOV_OK)
        return fail(c, rc, vreason, "version", "%s", vwhy);
    if ((p->version = gov_strdup(vbuf)) == NULL)
        return fail_nomem(c);

    v = json_object_get(doc, "description");
    if (v != NULL &&
        (rc = get_string(c, v, "description", c->lim->max_text_bytes, 1, &s)) != GOV_OK)
        return rc;

    p->max_risk_micros = -1;
    p->approval_micros = -1;
    v = json_object_get(doc, "thresholds");
    if (v != NULL) {
        if (!json_is_object(v))
            return fail(c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, "thresholds", "must be an object");
        if ((rc = check_members(c, v, thr_allowed, "thresholds")) != GOV_OK)
            return rc;
        const json_t *t = json_object_get(v, "max_risk_score");
        if (t != NULL &&
            (rc = get_micros(c, t, "thresholds.max_risk_score", &p->max_risk_micros)) != GOV_OK)
            return rc;
        t = json_object_get(v, "require_human_approval_above_risk");
        if (t != NULL && (rc = get_micros(c, t, "thresholds.require_human_approval_above_risk",
                                          &p->approval_micros)) != GOV_OK)
            return rc;
    }
    return GOV_OK;
}

/* The document with its rules array replaced by the rules in id order
 * (shallow: the rule objects are shared), serialized as JCS. */
static gov_err_t render_canonical(const json_t *doc, const rule_build_t *b, size_t n,
                                  char **out, size_t *out_len) {
    gov_err_t rc = GOV_ERR_NOMEM;
    const json_t *rules = json_object_get(doc, "rules");
    json_t *copy = json_copy((json_t *)doc);
    json_t *sorted = json_array();
    if (copy == NULL || sorted == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (json_array_append(sorted, json_array_get(rules, b[i].rule.decl_index)) != 0)
            goto out;
    if (json_object_set(copy, "rules", sorted) != 0)
        goto out;
    rc = gov_canon_serialize(copy, GOV_CANON_JCS, out, out_len, NULL, NULL, 0);
out:
    json_decref(sorted);
    json_decref(copy);
    return rc;
}

gov_err_t gov_rulepack_parse(const char *text, size_t len, const gov_rulepack_limits_t *limits,
                             gov_rulepack_t **out, gov_rulepack_error_t *detail, char *errbuf,
                             size_t errbuf_size) {
    gov_rulepack_limits_t deflim = gov_rulepack_limits_default();
    pctx_t c = {limits ? limits : &deflim, detail, errbuf, errbuf_size, -1, NULL, 0, 0};
    json_t *doc = NULL;
    gov_rulepack_t *p = NULL;
    rule_build_t *b = NULL;
    gov_pattern_t *pats = NULL;
    size_t nrules = 0, i;
    gov_err_t rc;
    char cerr[256] = "";

    if (detail != NULL) {
        memset(detail, 0, sizeof *detail);
        detail->rule_index = -1;
    }
    if (errbuf != NULL && errbuf_size > 0)
        errbuf[0] = '\0';
    if (out == NULL || text == NULL) {
        if (out != NULL)
            *out = NULL;
        return fail(&c, GOV_ERR_INVALID_ARG, GOV_REASON_INVALID_ARG, NULL, "NULL argument");
    }
    *out = NULL;
    if (len > c.lim->max_bytes)
        return fail(&c, GOV_ERR_TOO_LARGE, GOV_REASON_TOO_LARGE, NULL,
                    "pack text is %zu bytes (limit %zu)", len, c.lim->max_bytes);

    gov_reason_t why = GOV_REASON_NONE;
    rc = gov_canon_parse(text, len, &doc, &why, cerr, sizeof cerr);
    if (rc != GOV_OK) {
        gov_reason_t code = GOV_REASON_INVALID_JSON;
        if (rc == GOV_ERR_NOMEM)
            return fail_nomem(&c);
        if (why == GOV_REASON_INVALID_UTF8 || why == GOV_REASON_DUPLICATE_KEY)
            code = why;
        else if (rc == GOV_ERR_TOO_LARGE)
            code = GOV_REASON_TOO_DEEP;
        /* The message keeps gov_canon's code in front of its detail. */
        return fail(&c, rc == GOV_ERR_TOO_LARGE ? GOV_ERR_TOO_LARGE : GOV_ERR_PARSE, code, NULL,
                    "pack is not valid JSON: %s: %s", gov_reason_code(why), cerr);
    }
    if (gov_json_depth(doc) > c.lim->max_depth) {
        rc = fail(&c, GOV_ERR_TOO_LARGE, GOV_REASON_TOO_DEEP, NULL, "pack nests deeper than %d",
                  c.lim->max_depth);
        goto out;
    }
    if (!json_is_object(doc)) {
        rc = fail(&c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, NULL, "pack must be a JSON object");
        goto out;
    }
    p = gov_calloc(1, sizeof *p);
    if (p == NULL) {
        rc = fail_nomem(&c);
        goto out;
    }
    if ((rc = parse_header(&c, doc, p)) != GOV_OK)
        goto out;

    const json_t *rules = json_object_get(doc, "rules");
    if (rules == NULL) {
        rc = fail(&c, GOV_ERR_VERIFY, GOV_REASON_MISSING_FIELD, "rules", "is required");
        goto out;
    }
    if (!json_is_array(rules)) {
        rc = fail(&c, GOV_ERR_VERIFY, GOV_REASON_INVALID_TYPE, "rules", "must be an array");
        goto out;
    }
    size_t declared = json_array_size(rules);
    if (declared == 0) {
        rc = fail(&c, GOV_ERR_VERIFY, GOV_REASON_INVALID_VALUE, "rules", "must hold at least one rule");
        goto out;
    }
    if (declared > c.lim->max_rules) {
        rc = fail(&c, GOV_ERR_TOO_LARGE, GOV_REASON_TOO_MANY_RULES, "rules",
                  "holds %zu rules (limit %zu)", declared, c.lim->max_rules);
        goto out;
    }
    b = gov_calloc(declared, sizeof *b);
    if (b == NULL) {
        rc = fail_nomem(&c);
        goto out;
    }
    for (i = 0; i < declared; i++) {
        nrules = i + 1;   /* b[i] may hold allocations even on failure */
        if ((rc = parse_rule(&c, json_array_get(rules, i), i, &b[i])) != GOV_OK)
            goto out;
    }
    c.rule_index = -1;
    c.rule_id = NULL;

    qsort(b, nrules, sizeof *b, cmp_build);
    for (i = 1; i < nrules; i++) {
        if (strcmp(b[i - 1].rule.id, b[i].rule.id) == 0) {
            c.rule_index = (long)b[i].rule.decl_index;
            c.rule_id = b[i].rule.id;
            rc = fail(&c, GOV_ERR_VERIFY, GOV_REASON_DUPLICATE_ID, "id", "duplicates rules[%zu]",
                      b[i - 1].rule.decl_index);
            goto out;
        }
    }

    /* All prompt patterns, in rule id order, into one database. */
    size_t np = 0;
    for (i = 0; i < nrules; i++) {
        b[i].rule.pattern_first = np;
        b[i].rule.pattern_count = b[i].npats;
        np += b[i].npats;
    }
    if (np > 0) {
        pats = gov_calloc(np, sizeof *pats);
        if (pats == NULL) {
            rc = fail_nomem(&c);
            goto out;
        }
        for (i = 0; i < nrules; i++)
            if (b[i].npats > 0)
                memcpy(pats + b[i].rule.pattern_first, b[i].pats, b[i].npats * sizeof *pats);
        size_t bad = (size_t)-1;
        char merr[256] = "";
        rc = gov_matcher_compile(NULL, pats, np, &p->matcher, &bad, merr, sizeof merr);
        if (rc == GOV_ERR_NOMEM) {
            rc = fail_nomem(&c);
            goto out;
        }
        if (rc != GOV_OK && bad != (size_t)-1) {
            for (i = 0; i < nrules; i++) {
                const gov_rule_t *r = &b[i].rule;
                if (bad >= r->pattern_first && bad < r->pattern_first + r->pattern_count) {
                    size_t k = bad - r->pattern_first;
                    char f[64];
                    snprintf(f, sizeof f, "match.prompt[%zu].%s", k,
                             b[i].pats[k].kind == GOV_PATTERN_LITERAL ? "literal" : "regex");
                    c.rule_index = (long)r->decl_index;
                    c.rule_id = r->id;
                    rc = fail(&c, GOV_ERR_VERIFY, GOV_REASON_INVALID_PATTERN, f,
                              "is refused by Vectorscan: %s", merr);
                    goto out;
                }
            }
        }
        if (rc != GOV_OK) {
            rc = fail(&c, GOV_ERR_VERIFY, GOV_REASON_INVALID_PATTERN, "rules",
                      "patterns are refused by Vectorscan as a set: %s", merr);
            goto out;
        }
    }

    rc = render_canonical(doc, b, nrules, &p->canonical, &p->canonical_len);
    if (rc != GOV_OK) {
        rc = rc == GOV_ERR_NOMEM ? fail_nomem(&c)
                                 : fail(&c, rc, GOV_REASON_INTERNAL, NULL, "cannot serialize the pack");
        goto out;
    }

    p->rules = gov_calloc(nrules, sizeof *p->rules);
    if (p->rules == NULL) {
        rc = fail_nomem(&c);
        goto out;
    }
    for (i = 0; i < nrules; i++) {
        p->rules[i] = b[i].rule;           /* the pack takes the rule's memory */
        memset(&b[i].rule, 0, sizeof b[i].rule);
    }
    p->nrules = nrules;
    *out = p;
    p = NULL;
    rc = GOV_OK;
out:
    if (b != NULL) {
        for (i = 0; i < nrules; i++) {
            rule_clear(&b[i].rule);
            gov_free(b[i].pats);
        }
        gov_free(b);
    }
    gov_free(pats);
    gov_rulepack_free(p);
    json_decref(doc);
    return rc;
}

const char *gov_rulepack_id(const gov_rulepack_t *p) {
    return p->pack_id;
}

const char *gov_rulepack_tenant(const gov_rulepack_t *p) {
    return p->tenant;
}

const char *gov_rulepack_version(const gov_rulepack_t *p) {
    return p->version;
}

const gov_version_t *gov_rulepack_version_parsed(const gov_rulepack_t *p) {
    return &p->version_parsed;
}

int64_t gov_rulepack_max_risk_micros(const gov_rulepack_t *p) {
    return p->max_risk_micros;
}

int64_t gov_rulepack_approval_micros(const gov_rulepack_t *p) {
    return p->approval_micros;
}

size_t gov_rulepack_rule_count(const gov_rulepack_t *p) {
    return p->nrules;
}

const gov_rule_t *gov_rulepack_rule(const gov_rulepack_t *p, size_t i) {
    return i < p->nrules ? &p->rules[i] : NULL;
}

const gov_matcher_t *gov_rulepack_matcher(const gov_rulepack_t *p) {
    return p->matcher;
}

const char *gov_rulepack_canonical_json(const gov_rulepack_t *p, size_t *len) {
    if (len != NULL)
        *len = p->canonical_len;
    return p->canonical;
}

gov_err_t gov_rulepack_render_canonical(const gov_rulepack_t *p, char **out, size_t *out_len) {
    if (p == NULL || out == NULL)
        return GOV_ERR_INVALID_ARG;
    *out = gov_strndup(p->canonical, p->canonical_len);
    if (*out == NULL)
        return GOV_ERR_NOMEM;
    if (out_len != NULL)
        *out_len = p->canonical_len;
    return GOV_OK;
}

/* --- signatures ------------------------------------------------------------------ */

gov_err_t gov_rulepack_digest_hex(const gov_rulepack_t *p, char out[GOV_SHA256_HEXLEN + 1]) {
    size_t len;
    const char *canonical = gov_rulepack_canonical_json(p, &len);
    return gov_hash_hex(gov_hash_sha256(), canonical, len, out);
}

/* The order is the contract's (docs/contracts.md, "Signed rule packs"): the
 * trust must cover the tenant, the pack must name it, then the signatures'
 * form and count exactly as for constitutions (gov_signature.c), over the
 * ASCII SHA-256 hex of the canonical JSON.  The tenant checks come first so
 * a pack replayed to another tenant is named for what it is, whoever
 * signed it. */
gov_err_t gov_rulepack_verify_signatures(const gov_rulepack_t *p, const char *tenant,
                                         const gov_bundle_sig_t *sigs, size_t nsigs,
                                         const gov_trust_t *trust, gov_sig_count_t *out) {
    memset(out, 0, sizeof *out);
    if (tenant == NULL || gov_trust_tenant(trust, tenant, NULL, NULL) != 0) {
        out->reason = GOV_REASON_TENANT_NOT_TRUSTED;
        snprintf(out->detail, sizeof out->detail,
                 "tenant \"%.64s\" is not in the rule-pack trust configuration",
                 tenant ? tenant : "");
        return GOV_OK;
    }
    if (strcmp(gov_rulepack_tenant(p), tenant) != 0) {
        out->reason = GOV_REASON_TENANT_MISMATCH;
        snprintf(out->detail, sizeof out->detail, "the pack names tenant \"%.64s\", not \"%.64s\"",
                 gov_rulepack_tenant(p), tenant);
        return GOV_OK;
    }
    out->reason = gov_signatures_check_form(sigs, nsigs, out->detail, sizeof out->detail);
    if (out->reason != GOV_REASON_NONE)
        return GOV_OK;
    char hex[GOV_SHA256_HEXLEN + 1];
    gov_err_t err = gov_rulepack_digest_hex(p, hex);
    if (err != GOV_OK)
        return err;
    return gov_signatures_count(trust, tenant, sigs, nsigs, hex, GOV_SHA256_HEXLEN, 0, NULL, out);
}
