/* equiv_check - before anything is timed: the edge, OPA and libgov agree.
 *
 *   equiv_check --pack PACK.json --constitution BUNDLE.json --requests FILE
 *               [--edge URL] [--opa URL] [--out FILE]
 *
 * For every request body of FILE (one JSON a line) it computes the answer
 * in process with libgov (gov_policy_request_parse + gov_policy_evaluate on
 * the pack and the constitution's rules: the reference), then asks
 *   --edge URL   gov-edge's POST /v1/evaluate with the body as is, and
 *   --opa URL    Open Policy Agent's POST /v1/data/soma/decision with
 *                {"input": <body>} (the policy from bench/rego_gen),
 * and compares the decision, the score in integer millionths and the list
 * of reason ids in order.  The edge must answer 200 with the pack's
 * rulepack_version.  The first difference stops it: the offending input,
 * the three answers, exit status 1.  Nothing is timed here.
 *
 * The edge writes the score with exactly 6 decimals ("0.350000"); it is
 * read back as a double and rounded to the nearest millionth, which is exact
 * for every 6-decimal number in [0,1].
 *
 * Output (--out): {"requests","edge_checked","opa_checked","mix":{allow,
 * review,deny},"constitution_hash","rulepack_version"}; the mix is also
 * printed on stderr.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "gov_alloc.h"
#include "gov_policy.h"
#include "gov_rulepack.h"

typedef struct answer {
    char decision[16];
    long long score_micros;
    json_t *reasons;   /* array of reason id strings */
} answer_t;

typedef struct buf {
    char *p;
    size_t n;
} buf_t;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
    buf_t *b = ud;
    size_t add = size * nmemb;
    char *np = realloc(b->p, b->n + add + 1);
    if (np == NULL)
        return 0;
    b->p = np;
    memcpy(b->p + b->n, ptr, add);
    b->n += add;
    b->p[b->n] = '\0';
    return add;
}

/* POSTs body to url; fills *status and *out (caller frees out->p). */
static int post(CURL *h, const char *url, const char *body, size_t len, long *status, buf_t *out) {
    static struct curl_slist *hdrs;
    if (hdrs == NULL) {
        hdrs = curl_slist_append(NULL, "Content-Type: application/json");
        hdrs = curl_slist_append(hdrs, "Expect:");
    }
    out->p = NULL;
    out->n = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        fprintf(stderr, "equiv_check: POST %s: %s\n", url, curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

static char *answer_text(const answer_t *a) {
    static char buf[4096];
    char *r = json_dumps(a->reasons, JSON_COMPACT);
    snprintf(buf, sizeof buf, "decision=%s score_micros=%lld reasons=%s", a->decision,
             a->score_micros, r ? r : "?");
    free(r);
    return buf;
}

static int same(const answer_t *a, const answer_t *b) {
    return strcmp(a->decision, b->decision) == 0 && a->score_micros == b->score_micros &&
           json_equal(a->reasons, b->reasons);
}

static void usage(FILE *f) {
    fputs("usage: equiv_check --pack PACK.json --constitution BUNDLE.json --requests FILE\n"
          "                   [--edge URL] [--opa URL] [--out FILE]\n",
          f);
}

int main(int argc, char **argv) {
    const char *pack_path = NULL, *bundle_path = NULL, *req_path = NULL, *edge_url = NULL,
               *opa_url = NULL, *out_path = NULL;
    static const struct option opts[] = {
        {"pack", required_argument, NULL, 'p'},     {"constitution", required_argument, NULL, 'c'},
        {"requests", required_argument, NULL, 'r'}, {"edge", required_argument, NULL, 'e'},
        {"opa", required_argument, NULL, 'a'},      {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "p:c:r:e:a:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': pack_path = optarg; break;
        case 'c': bundle_path = optarg; break;
        case 'r': req_path = optarg; break;
        case 'e': edge_url = optarg; break;
        case 'a': opa_url = optarg; break;
        case 'o': out_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!pack_path || !bundle_path || !req_path || optind != argc) {
        usage(stderr);
        return 2;
    }
    gov_alloc_install_jansson();
    size_t len = 0;
    char *text = bu_read_file(pack_path, &len), eb[512] = "";
    if (text == NULL)
        return 1;
    gov_rulepack_t *pack = NULL;
    if (gov_rulepack_parse(text, len, NULL, &pack, NULL, eb, sizeof eb) != GOV_OK) {
        fprintf(stderr, "equiv_check: %s: %s\n", pack_path, eb);
        return 1;
    }
    free(text);
    json_t *doc = bu_bundle_document(bundle_path);
    if (doc == NULL)
        return 1;
    gov_policy_constitution_t *cons = NULL;
    if (gov_policy_constitution_from_json(doc, &cons, eb, sizeof eb) != GOV_OK) {
        fprintf(stderr, "equiv_check: %s: %s\n", bundle_path, eb);
        return 1;
    }
    bu_lines_t req;
    if (bu_read_lines(req_path, &req) != 0)
        return 1;
    gov_matcher_scratch_t *scratch = NULL;
    if (gov_matcher_scratch_new(gov_rulepack_matcher(pack), &scratch) != GOV_OK)
        return 1;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *edge = edge_url ? curl_easy_init() : NULL;
    CURL *opa = opa_url ? curl_easy_init() : NULL;
    size_t mix[3] = {0, 0, 0}, edge_checked = 0, opa_checked = 0;
    json_t *hits = json_object(); /* reason id -> requests it appears in */
    char constitution_hash[160] = "", rulepack_version[80] = "";
    int rc = 0;

    for (size_t i = 0; i < req.n && rc == 0; i++) {
        const char *line = req.line[i];
        size_t ll = req.len[i];
        answer_t ref = {.reasons = json_array()}, ea = {.reasons = json_array()},
                 oa = {.reasons = json_array()};
        char *ebody = NULL, *obody = NULL;
        gov_policy_request_t pr;
        gov_policy_decision_t d;
        gov_reason_t why = GOV_REASON_NONE;
        if (gov_policy_request_parse(line, ll, NULL, &pr, &why, eb, sizeof eb) != GOV_OK ||
            gov_policy_evaluate(cons, pack, &pr, scratch, &d, &why, eb, sizeof eb) != GOV_OK) {
            fprintf(stderr, "equiv_check: request %zu: libgov: %s%s%s\ninput: %s\n", i + 1,
                    why != GOV_REASON_NONE ? gov_reason_code(why) : "",
                    why != GOV_REASON_NONE ? ": " : "", eb, line);
            return 1;
        }
        snprintf(ref.decision, sizeof ref.decision, "%s", gov_decision_name(d.decision));
        ref.score_micros = d.score_micros;
        for (size_t k = 0; k < d.nreasons; k++) {
            const char *id = d.reasons[k].rule_id;
            json_array_append_new(ref.reasons, json_string(id));
            json_t *h = json_object_get(hits, id);
            json_object_set_new(hits, id, json_integer(h ? json_integer_value(h) + 1 : 1));
        }
        mix[d.decision]++;
        gov_policy_decision_clear(&d);
        gov_policy_request_clear(&pr);

        if (edge) {
            long st = 0;
            buf_t b;
            if (post(edge, edge_url, line, ll, &st, &b) != 0) {
                rc = 1;
                goto next;
            }
            ebody = b.p;
            json_error_t je;
            json_t *j = b.p ? json_loads(b.p, 0, &je) : NULL;
            const char *dec = json_string_value(json_object_get(j, "decision"));
            json_t *score = json_object_get(j, "score");
            json_t *reasons = json_object_get(j, "reasons");
            const char *rv = json_string_value(json_object_get(j, "rulepack_version"));
            const char *ch = json_string_value(json_object_get(j, "constitution_hash"));
            if (st != 200 || !dec || !json_is_number(score) || !json_is_array(reasons)) {
                fprintf(stderr, "equiv_check: request %zu: the edge answered %ld: %s\ninput: %s\n",
                        i + 1, st, b.p ? b.p : "", line);
                json_decref(j);
                rc = 1;
                goto next;
            }
            if (rv == NULL || strcmp(rv, gov_rulepack_version(pack)) != 0) {
                fprintf(stderr,
                        "equiv_check: the edge evaluates with rulepack_version %s, the pack "
                        "file is version %s\n",
                        rv ? rv : "(none)", gov_rulepack_version(pack));
                json_decref(j);
                rc = 1;
                goto next;
            }
            snprintf(rulepack_version, sizeof rulepack_version, "%s", rv);
            if (ch)
                snprintf(constitution_hash, sizeof constitution_hash, "%s", ch);
            snprintf(ea.decision, sizeof ea.decision, "%s", dec);
            ea.score_micros = llround(json_number_value(score) * 1e6);
            size_t k;
            json_t *r;
            json_array_foreach(reasons, k, r) {
                json_array_append(ea.reasons, json_object_get(r, "rule_id"));
            }
            json_decref(j);
            if (!same(&ref, &ea)) {
                fprintf(stderr, "equiv_check: MISMATCH on request %zu (edge vs libgov)\n", i + 1);
                fprintf(stderr, "input:  %s\nlibgov: %s\n", line, answer_text(&ref));
                fprintf(stderr, "edge:   %s\n", answer_text(&ea));
                fprintf(stderr, "edge body: %s\n", ebody);
                rc = 1;
                goto next;
            }
            edge_checked++;
        }
        if (opa) {
            long st = 0;
            buf_t b;
            size_t wl = ll + 10;
            char *wrapped = malloc(wl + 1);
            snprintf(wrapped, wl + 1, "{\"input\":%s}", line);
            int prc = post(opa, opa_url, wrapped, wl, &st, &b);
            free(wrapped);
            if (prc != 0) {
                rc = 1;
                goto next;
            }
            obody = b.p;
            json_error_t je;
            json_t *j = b.p ? json_loads(b.p, 0, &je) : NULL;
            json_t *res = json_object_get(j, "result");
            const char *dec = json_string_value(json_object_get(res, "decision"));
            json_t *score = json_object_get(res, "score_micros");
            json_t *reasons = json_object_get(res, "reasons");
            if (st != 200 || !dec || !json_is_integer(score) || !json_is_array(reasons)) {
                fprintf(stderr, "equiv_check: request %zu: OPA answered %ld: %s\ninput: %s\n",
                        i + 1, st, b.p ? b.p : "", line);
                json_decref(j);
                rc = 1;
                goto next;
            }
            snprintf(oa.decision, sizeof oa.decision, "%s", dec);
            oa.score_micros = json_integer_value(score);
            json_array_extend(oa.reasons, reasons);
            json_decref(j);
            if (!same(&ref, &oa)) {
                fprintf(stderr, "equiv_check: MISMATCH on request %zu (OPA vs libgov)\n", i + 1);
                fprintf(stderr, "input:  %s\nlibgov: %s\n", line, answer_text(&ref));
                if (edge)
                    fprintf(stderr, "edge:   %s\n", answer_text(&ea));
                fprintf(stderr, "opa:    %s\n", answer_text(&oa));
                rc = 1;
                goto next;
            }
            opa_checked++;
        }
    next:
        free(ebody);
        free(obody);
        json_decref(ref.reasons);
        json_decref(ea.reasons);
        json_decref(oa.reasons);
    }
    if (rc != 0)
        return rc;
    size_t pack_rules_hit = 0;
    for (size_t k = 0; k < gov_rulepack_rule_count(pack); k++)
        pack_rules_hit += json_object_get(hits, gov_rulepack_rule(pack, k)->id) != NULL;
    fprintf(stderr,
            "equiv_check: %zu requests agree (libgov%s%s): allow %zu, review %zu, deny %zu; "
            "%zu of the pack's %zu rules fire at least once\n",
            req.n, edge ? ", edge" : "", opa ? ", OPA" : "", mix[0], mix[1], mix[2],
            pack_rules_hit, gov_rulepack_rule_count(pack));
    if (out_path) {
        json_t *o = json_pack("{s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:s, s:s, s:I, s:O}",
                              "requests", (json_int_t)req.n, "edge_checked",
                              (json_int_t)edge_checked, "opa_checked", (json_int_t)opa_checked,
                              "mix", "allow", (json_int_t)mix[0], "review", (json_int_t)mix[1],
                              "deny", (json_int_t)mix[2], "constitution_hash", constitution_hash,
                              "rulepack_version", rulepack_version, "pack_rules_hit",
                              (json_int_t)pack_rules_hit, "reason_counts", hits);
        if (o == NULL || json_dump_file(o, out_path, JSON_INDENT(1)) != 0)
            return 1;
        json_decref(o);
    }
    json_decref(hits);
    if (edge)
        curl_easy_cleanup(edge);
    if (opa)
        curl_easy_cleanup(opa);
    curl_global_cleanup();
    gov_matcher_scratch_free(scratch);
    bu_lines_free(&req);
    json_decref(doc);
    gov_policy_constitution_free(cons);
    gov_rulepack_free(pack);
    return 0;
}
