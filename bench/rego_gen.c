/* rego_gen - the bench's rule pack + constitution as an equivalent Rego v1 policy.
 *
 *   rego_gen --pack PACK.json --constitution BUNDLE.json [--out FILE]
 *
 * So that Open Policy Agent can be measured against gov-edge on the same
 * work, this writes a Rego v1 module (package soma) whose rule `decision`
 * computes, for an input that is a POST /v1/evaluate body,
 *     {"decision": "allow"|"review"|"deny", "score_micros": <int>,
 *      "reasons": [<reason id>, ...]}
 * exactly as common/core/gov_policy.c does (docs/policy.md, "Evaluation"):
 * constitution reasons first (prohibited action, then tool category not
 * permitted), then the matched rules sorted by id (bytewise, as Rego's
 * sort() on strings); score = sum of the weights of matched "add" rules in
 * integer millionths, clamped to 1000000; deny when a constitution reason
 * or a matched "deny" rule exists or score > max_risk; review when
 * score > approval; thresholds = min(constitution, pack).
 *
 * The pack is read with gov_rulepack_parse, the parser gov-edge uses, so
 * the rules, weights (micros), sets and thresholds are what the edge sees.
 * Prompt patterns are not exposed by gov_rule_t; they are read from the
 * pack's canonical JSON (gov_rulepack_canonical_json: rules sorted by id,
 * the form gov-rulepacks stores and the edge parses), whose rule i is rule
 * i of the parsed pack (checked).  The constitution's rules are read with
 * gov_policy_constitution_from_json (validation, thresholds) and its two
 * lists from the same document.
 *
 * Patterns:
 *   literal                    contains(input.prompt, "lit")
 *   literal, case-insensitive,  contains(prompt_lower, "lit" lowered), with
 *     ASCII                      prompt_lower := lower(input.prompt) computed
 *                                once per query.  Exact when the prompt is
 *                                ASCII; for non-ASCII prompts Go's
 *                                strings.ToLower and Vectorscan's Unicode
 *                                simple case folding differ on a handful of
 *                                characters (U+017F, U+0130, final sigma...).
 *   literal, case-insensitive,  regex.match("(?i)" + the literal quoted)
 *     non-ASCII                  (RE2's folding is simple case folding).
 *   regex                      regex.match(pattern, input.prompt), with
 *                                "(?i)" prepended when case-insensitive.
 * Vectorscan (PCRE syntax) and RE2 agree on the subset the bench uses;
 * constructs whose meaning differs are refused, naming the rule: "$"
 * (PCRE also matches before a final newline), \s \S (PCRE includes VT),
 * \h \H \v \V \R \X \C \K \G \Q \E \Z \p \P, and "(?" other than "(?:".
 * The bench checks the edge and OPA on every input before timing
 * anything; this list only catches the known differences early.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "gov_policy.h"
#include "gov_rulepack.h"

static FILE *out;

/* Writes s as a Rego (JSON) string literal. */
static void put_str(const char *s, size_t len) {
    json_t *j = json_stringn(s, len);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    if (t == NULL) {
        fprintf(stderr, "rego_gen: cannot encode a string\n");
        exit(1);
    }
    fputs(t, out);
    free(t);
    json_decref(j);
}

static void put_set(const gov_strset_t *s) {
    if (s->n == 0) {
        fputs("set()", out);
        return;
    }
    fputc('{', out);
    for (size_t i = 0; i < s->n; i++) {
        if (i)
            fputs(", ", out);
        put_str(s->v[i], strlen(s->v[i]));
    }
    fputc('}', out);
}

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

/* NULL when the regex only uses constructs that mean the same in
 * Vectorscan and RE2 (as far as this check goes), else the reason. */
static const char *regex_unsafe(const char *re) {
    int in_class = 0;
    for (const char *p = re; *p; p++) {
        if (*p == '\\') {
            char c = p[1];
            if (c == '\0')
                return "ends with a backslash";
            if (strchr("sShHvVRXCKGQEZpP", c))
                return "an escape whose meaning differs between Vectorscan and RE2 "
                       "(\\s \\h \\v \\R \\X \\C \\K \\G \\Q \\E \\Z \\p)";
            p++;
            continue;
        }
        if (in_class) {
            if (*p == ']')
                in_class = 0;
            continue;
        }
        if (*p == '[') {
            in_class = 1;
            if (p[1] == '^')
                p++;
            if (p[1] == ']')
                p++; /* a leading ] is literal */
            continue;
        }
        if (*p == '$')
            return "\"$\" (PCRE also matches before a final newline, RE2 does not)";
        if (*p == '(' && p[1] == '?' && p[2] != ':')
            return "\"(?\" other than \"(?:\" (flags, lookaround, named groups)";
    }
    return NULL;
}

/* RE2 quoting of a literal (regexp.QuoteMeta's set). */
static char *quote_meta(const char *s, size_t n) {
    char *q = malloc(2 * n + 1), *o = q;
    for (size_t i = 0; i < n; i++) {
        if (strchr("\\.+*?()|[]{}^$", s[i]) && s[i] != '\0')
            *o++ = '\\';
        *o++ = s[i];
    }
    *o = '\0';
    return q;
}

static int emit_pattern(size_t ri, const char *rule_id, const json_t *pat) {
    const char *lit = json_string_value(json_object_get(pat, "literal"));
    const char *re = json_string_value(json_object_get(pat, "regex"));
    int ci = json_is_true(json_object_get(pat, "case_insensitive"));
    fprintf(out, "r%03zu_prompt if ", ri);
    if (lit != NULL) {
        size_t n = json_string_length(json_object_get(pat, "literal"));
        if (!ci) {
            fputs("contains(input.prompt, ", out);
            put_str(lit, n);
            fputs(")\n", out);
        } else if (is_ascii(lit, n)) {
            char *low = malloc(n + 1);
            for (size_t i = 0; i < n; i++)
                low[i] = (lit[i] >= 'A' && lit[i] <= 'Z') ? (char)(lit[i] - 'A' + 'a') : lit[i];
            fputs("contains(prompt_lower, ", out);
            put_str(low, n);
            fputs(")\n", out);
            free(low);
        } else {
            char *q = quote_meta(lit, n);
            size_t ql = strlen(q);
            char *r = malloc(ql + 5);
            memcpy(r, "(?i)", 4);
            memcpy(r + 4, q, ql + 1);
            fputs("regex.match(", out);
            put_str(r, ql + 4);
            fputs(", input.prompt)\n", out);
            free(q);
            free(r);
        }
        return 0;
    }
    if (re == NULL) {
        fprintf(stderr, "rego_gen: rule %s: a prompt pattern is neither literal nor regex\n",
                rule_id);
        return -1;
    }
    const char *why = regex_unsafe(re);
    if (why != NULL) {
        fprintf(stderr, "rego_gen: rule %s: regex %s: %s\n", rule_id, re, why);
        return -1;
    }
    size_t n = strlen(re);
    char *r = malloc(n + 5);
    size_t o = 0;
    if (ci) {
        memcpy(r, "(?i)", 4);
        o = 4;
    }
    memcpy(r + o, re, n + 1);
    fputs("regex.match(", out);
    put_str(r, o + n);
    fputs(", input.prompt)\n", out);
    free(r);
    return 0;
}

static void put_list_as_set(const json_t *arr) {
    if (json_array_size(arr) == 0) {
        fputs("set()", out);
        return;
    }
    fputc('{', out);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *s = json_array_get(arr, i);
        if (i)
            fputs(", ", out);
        put_str(json_string_value(s), json_string_length(s));
    }
    fputc('}', out);
}

static void usage(FILE *f) {
    fputs("usage: rego_gen --pack PACK.json --constitution BUNDLE.json [--out FILE]\n", f);
}

int main(int argc, char **argv) {
    const char *pack_path = NULL, *bundle_path = NULL, *out_path = NULL;
    static const struct option opts[] = {
        {"pack", required_argument, NULL, 'p'}, {"constitution", required_argument, NULL, 'c'},
        {"out", required_argument, NULL, 'o'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "p:c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': pack_path = optarg; break;
        case 'c': bundle_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!pack_path || !bundle_path || optind != argc) {
        usage(stderr);
        return 2;
    }

    size_t len = 0;
    char *text = bu_read_file(pack_path, &len), eb[512] = "";
    if (text == NULL)
        return 1;
    gov_rulepack_t *pack = NULL;
    gov_rulepack_error_t det;
    if (gov_rulepack_parse(text, len, NULL, &pack, &det, eb, sizeof eb) != GOV_OK) {
        fprintf(stderr, "rego_gen: %s: %s\n", pack_path, eb);
        return 1;
    }
    free(text);
    size_t clen = 0;
    const char *canon = gov_rulepack_canonical_json(pack, &clen);
    json_error_t je;
    json_t *cj = json_loadb(canon, clen, 0, &je);
    json_t *crules = json_object_get(cj, "rules");
    size_t nrules = gov_rulepack_rule_count(pack);
    if (!json_is_array(crules) || json_array_size(crules) != nrules) {
        fprintf(stderr, "rego_gen: the canonical pack does not list the parsed rules\n");
        return 1;
    }

    json_t *doc = bu_bundle_document(bundle_path);
    if (doc == NULL)
        return 1;
    gov_policy_constitution_t *cons = NULL;
    if (gov_policy_constitution_from_json(doc, &cons, eb, sizeof eb) != GOV_OK) {
        fprintf(stderr, "rego_gen: %s: %s\n", bundle_path, eb);
        return 1;
    }
    const json_t *crul = json_object_get(doc, "rules");
    const json_t *prohibited = json_object_get(crul, "prohibited_actions");
    const json_t *permitted = json_object_get(crul, "permitted_tool_categories");

    int64_t max_risk = gov_policy_constitution_max_risk_micros(cons);
    int64_t approval = gov_policy_constitution_approval_micros(cons);
    if (gov_rulepack_max_risk_micros(pack) >= 0 && gov_rulepack_max_risk_micros(pack) < max_risk)
        max_risk = gov_rulepack_max_risk_micros(pack);
    if (gov_rulepack_approval_micros(pack) >= 0 && gov_rulepack_approval_micros(pack) < approval)
        approval = gov_rulepack_approval_micros(pack);

    char tmp[4096];
    out = stdout;
    if (out_path) {
        snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
        if ((out = fopen(tmp, "w")) == NULL) {
            perror(tmp);
            return 1;
        }
    }
    fprintf(out,
            "# Generated by bench/rego_gen from the rule pack %s (pack_id %s, version %s)\n"
            "# and the constitution %s. Do not edit: `make bench` regenerates it.\n"
            "# The same decision, score (integer millionths) and reason ids as gov-edge\n"
            "# (docs/policy.md, \"Evaluation\"); see bench/rego_gen.c for the pattern mapping.\n"
            "package soma\n\n"
            "prompt_lower := lower(input.prompt)\n\n",
            pack_path, gov_rulepack_id(pack), gov_rulepack_version(pack), bundle_path);

    for (size_t i = 0; i < nrules; i++) {
        const gov_rule_t *r = gov_rulepack_rule(pack, i);
        const json_t *cr = json_array_get(crules, i);
        const char *cid = json_string_value(json_object_get(cr, "id"));
        if (cid == NULL || strcmp(cid, r->id) != 0) {
            fprintf(stderr, "rego_gen: canonical rule %zu is not %s\n", i, r->id);
            return 1;
        }
        char w[GOV_MICROS_TEXT];
        gov_micros_format(r->weight_micros, w);
        fprintf(out, "# %s: %s, %s, weight %s\n", r->id, gov_severity_name(r->severity),
                gov_effect_name(r->effect), w);
        if (r->conditions & GOV_COND_PROMPT) {
            const json_t *pats = json_object_get(json_object_get(cr, "match"), "prompt");
            if (json_array_size(pats) != r->pattern_count) {
                fprintf(stderr, "rego_gen: rule %s: pattern count differs\n", r->id);
                return 1;
            }
            for (size_t k = 0; k < json_array_size(pats); k++)
                if (emit_pattern(i, r->id, json_array_get(pats, k)) != 0)
                    return 1;
        }
        fputs("matched contains ", out);
        put_str(r->id, strlen(r->id));
        fputs(" if {\n", out);
        if (r->conditions & GOV_COND_ROLE) {
            fputs("\tinput.role in ", out);
            put_set(&r->roles);
            fputc('\n', out);
        }
        if (r->conditions & GOV_COND_ACTION) {
            fputs("\tinput.action in ", out);
            put_set(&r->actions);
            fputc('\n', out);
        }
        if (r->conditions & GOV_COND_TOOL_CATEGORY) {
            fputs("\tinput.tool.category in ", out);
            put_set(&r->tool_categories);
            fputc('\n', out);
        }
        if (r->conditions & GOV_COND_METADATA) {
            for (size_t k = 0; k < r->nmetadata; k++) {
                const gov_rule_metadata_t *m = &r->metadata[k];
                fputs("\tinput.metadata[", out);
                put_str(m->key, strlen(m->key));
                if (m->is_in) {
                    fputs("] in ", out);
                    put_set(&m->values);
                } else {
                    fputs("] == ", out);
                    put_str(m->values.v[0], strlen(m->values.v[0]));
                }
                fputc('\n', out);
            }
        }
        /* The prompt condition last: Rego stops at the first condition that
         * fails, and the set lookups are cheaper than the pattern scans. */
        if (r->conditions & GOV_COND_PROMPT)
            fprintf(out, "\tr%03zu_prompt\n", i);
        fputs("}\n\n", out);
    }

    fputs("# Weights of the \"add\" rules, in millionths.\nadd_weight := {\n", out);
    for (size_t i = 0, first = 1; i < nrules; i++) {
        const gov_rule_t *r = gov_rulepack_rule(pack, i);
        if (r->effect != GOV_EFFECT_ADD)
            continue;
        fputs(first ? "\t" : ",\n\t", out);
        first = 0;
        put_str(r->id, strlen(r->id));
        fprintf(out, ": %lld", (long long)r->weight_micros);
    }
    fputs("\n}\n\ndeny_rule_ids := ", out);
    size_t ndeny = 0;
    for (size_t i = 0; i < nrules; i++) {
        const gov_rule_t *r = gov_rulepack_rule(pack, i);
        if (r->effect != GOV_EFFECT_DENY)
            continue;
        fputs(ndeny++ ? ", " : "{", out);
        put_str(r->id, strlen(r->id));
    }
    fputs(ndeny ? "}\n\n" : "set()\n\n", out);

    fputs("# Constitution (checked first; its reasons lead the list).\n", out);
    if (json_array_size(prohibited) > 0) {
        fputs("constitution_reasons contains \"" GOV_REASON_PROHIBITED_ACTION
              "\" if input.action in ",
              out);
        put_list_as_set(prohibited);
        fputs("\n", out);
    }
    if (permitted != NULL) {
        fputs("constitution_reasons contains \"" GOV_REASON_TOOL_CATEGORY "\" if {\n"
              "\tcategory := input.tool.category\n\tnot category in ",
              out);
        put_list_as_set(permitted);
        fputs("\n}\n", out);
    }
    fprintf(out,
            "\n# Effective thresholds: min(constitution, pack), in millionths.\n"
            "max_risk := %lld\n\napproval := %lld\n\n"
            "score := min([sum([w | some id in matched; w := add_weight[id]]), 1000000])\n\n"
            "denied if count(constitution_reasons) > 0\n\n"
            "denied if {\n\tsome id in matched\n\tid in deny_rule_ids\n}\n\n"
            "denied if score > max_risk\n\n"
            "default verdict := \"allow\"\n\n"
            "verdict := \"deny\" if denied\n\n"
            "verdict := \"review\" if {\n\tnot denied\n\tscore > approval\n}\n\n"
            "reasons := array.concat(\n"
            "\t[r | some r in [\"" GOV_REASON_PROHIBITED_ACTION "\", \"" GOV_REASON_TOOL_CATEGORY
            "\"]; r in constitution_reasons],\n"
            "\tsort(matched),\n)\n\n"
            "decision := {\"decision\": verdict, \"score_micros\": score, \"reasons\": reasons}\n",
            (long long)max_risk, (long long)approval);

    if (out_path) {
        if (fclose(out) != 0 || rename(tmp, out_path) != 0) {
            perror(out_path);
            return 1;
        }
    }
    json_decref(cj);
    json_decref(doc);
    gov_policy_constitution_free(cons);
    gov_rulepack_free(pack);
    return 0;
}
