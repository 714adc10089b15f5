/* test_evaluate.c - POST /v1/evaluate on two real edges, end to end.
 *
 * A private redis-server; private gov-constitution (own trust of two fresh
 * Ed25519 keys), gov-rulepacks and gov-audit (own consumer groups); two
 * gov-edge replicas on their own ports.  The constitution and the rule packs
 * travel the real way: signed bundles on constitution.bundles,
 * RulePackPublished on policy.rulepacks.  Checked as a client would: the
 * answers of both replicas, the headers, the decision log, /metrics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

#define NPROC 5
static pid_t redis_pid = -1;
static const char *names[NPROC] = {"gov-constitution", "gov-rulepacks", "gov-audit", "gov-edge",
                                   "gov-edge"};
/* The processors' own component names: the stack's processors read the same
 * topics and audit the same events under theirs. */
static const char *components[NPROC] = {"gov-constitution-itest-eval", "gov-rulepacks-itest-eval",
                                        "gov-audit-itest-eval", NULL, NULL};
static itest_proc_t procs[NPROC];
static int redis_port;
static char tenant[64], trust_path[512];
static EVP_PKEY *keys[2];
static const char *signer_ids[2] = {"alice", "bob"};

/* --- HTTP with headers ----------------------------------------------------------- */

typedef struct http_answer {
    long status;
    char *body;
    size_t len;
    char decision_hdr[16], score_hdr[32], hash_hdr[160], id_hdr[64];
} http_answer_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    http_answer_t *a = ud;
    size_t add = sz * n;
    a->body = realloc(a->body, a->len + add + 1);
    memcpy(a->body + a->len, p, add);
    a->len += add;
    a->body[a->len] = 0;
    return add;
}

static void take_header(const char *line, size_t n, const char *name, char *dst, size_t dsz) {
    size_t nl = strlen(name);
    if (n > nl + 2 && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
        const char *v = line + nl + 1;
        while (*v == ' ')
            v++;
        size_t vl = n - (size_t)(v - line);
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
            vl--;
        snprintf(dst, dsz, "%.*s", (int)vl, v);
    }
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    http_answer_t *a = ud;
    size_t len = sz * n;
    take_header(p, len, "X-Policy-Decision", a->decision_hdr, sizeof a->decision_hdr);
    take_header(p, len, "X-Policy-Score", a->score_hdr, sizeof a->score_hdr);
    take_header(p, len, "X-Constitution-Hash", a->hash_hdr, sizeof a->hash_hdr);
    take_header(p, len, "X-Policy-Decision-Id", a->id_hdr, sizeof a->id_hdr);
    return len;
}

/* POST (or another method) to the edge replica `which`. */
static http_answer_t http(int which, const char *method, const char *path, const char *body,
                          size_t len, const char *content_type) {
    http_answer_t a;
    memset(&a, 0, sizeof a);
    char url[256];
    snprintf(url, sizeof url, "%s%s", procs[3 + which].url, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    if (content_type) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        h = curl_slist_append(h, ct);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (a.body == NULL)
        a.body = strdup("");
    return a;
}

static http_answer_t evaluate(int which, const char *body) {
    return http(which, "POST", "/v1/evaluate", body, strlen(body), "application/json");
}

/* --- setup --------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++)
        keys[i] = itest_ed25519_new();
    snprintf(trust_path, sizeof trust_path, "%s", itest_log_path("itest-evaluate-trust.json"));
    itest_write_trust(trust_path, 2, 2, signer_ids, keys);
    /* rule packs: signed by alice (the older trust form covers every tenant) */
    static char rp_trust_path[512];
    snprintf(rp_trust_path, sizeof rp_trust_path, "%s", itest_log_path("itest-evaluate-rulepack-trust.json"));
    itest_write_trust(rp_trust_path, 1, 1, signer_ids, keys);

    redis_pid = itest_private_redis("evaluate", &redis_port);
    static char env_redis[48], env_trust[560], env_edge_id[2][32], env_rp_trust[600];
    snprintf(env_rp_trust, sizeof env_rp_trust, "GOV_RULEPACK_TRUST_FILE=%s", rp_trust_path);
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_redis);
    snprintf(env_trust, sizeof env_trust, "GOV_TRUST_FILE=%s", trust_path);
    for (int i = 0; i < NPROC; i++) {
        /* gov-constitution and every edge verify against the same trust. */
        const char *env[5] = {env_redis, NULL, NULL, NULL, NULL};
        if (i == 0)
            env[1] = env_trust;
        if (i == 1)
            env[1] = env_rp_trust;
        if (i == 2)
            env[1] = ITEST_NO_RELAY;
        if (i >= 3) {
            snprintf(env_edge_id[i - 3], sizeof env_edge_id[i - 3], "GOV_EDGE_ID=edge-%c", 'a' + i - 3);
            env[1] = env_edge_id[i - 3];
            env[2] = env_trust;
            env[3] = env_rp_trust;
        }
        char log[96];
        snprintf(log, sizeof log, "itest-evaluate-%s-%d.log", names[i], i);
        itest_proc_start(&procs[i], names[i], components[i], env, log);
    }
    /* Fresh groups start at the topics' beginning: wait until the private
     * processors worked through the history, so this test's events are next. */
    for (int i = 0; i < 3; i++)
        itest_must_catch_up(&procs[i], 3);
    itest_unique("eval", tenant, sizeof tenant);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = 0;
    for (int i = NPROC - 1; i >= 0; i--)
        rc |= itest_proc_stop(&procs[i]);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    for (int i = 0; i < 2; i++)
        EVP_PKEY_free(keys[i]);
    return rc;
}

/* --- publishing the real way ------------------------------------------------------ */

static char constitution_hash[129];

static void publish_constitution(const char *version, const char *max_risk, const char *approval) {
    char doc[1024];
    snprintf(doc, sizeof doc,
             "{\"version\":\"%s\",\"tenant\":\"%s\",\"rules\":{\"prohibited_actions\":[\"exfiltrate_data\"],"
             "\"permitted_tool_categories\":[\"search\",\"email\"],\"max_risk_score\":%s,"
             "\"require_human_approval_above_risk\":%s},\"governance\":{\"signature_threshold\":2}}",
             version, tenant, max_risk, approval);
    static const int both[] = {0, 1, -1};
    json_t *b = itest_bundle_event(tenant, doc, "jcs", "sha256", NULL, keys, signer_ids, both);
    char cs[129];
    snprintf(cs, sizeof cs, "%s", json_string_value(json_object_get(b, "checksum")));
    itest_produce_event("constitution.bundles", "ConstitutionBundle", b);
    json_decref(b);
    snprintf(constitution_hash, sizeof constitution_hash, "%s", cs);
}

/* The pack used here: weights chosen so scores are easy to follow.  The
 * event id into id (the correlation id of gov-rulepacks' audit event). */
static void publish_pack(const char *version, const char *email_weight,
                         char id[GOV_UUID_STRLEN + 1]) {
    char pack[4096];
    snprintf(pack, sizeof pack,
        "{\"pack_id\":\"itest\",\"tenant\":\"%s\",\"version\":\"%s\","
        "\"thresholds\":{\"max_risk_score\":0.7},"
        "\"rules\":["
        "{\"id\":\"pii.email\",\"severity\":\"high\",\"weight\":%s,\"effect\":\"add\",\"message\":\"e-mail address\","
        " \"match\":{\"prompt\":[{\"regex\":\"[a-z0-9._%%+-]+@[a-z0-9.-]+\\\\.[a-z]{2,}\",\"case_insensitive\":true}]}},"
        "{\"id\":\"secrets.password\",\"severity\":\"critical\",\"weight\":0.3,\"effect\":\"add\",\"message\":\"password\","
        " \"match\":{\"prompt\":[{\"literal\":\"password\",\"case_insensitive\":true}]}},"
        "{\"id\":\"role.intern.export\",\"severity\":\"medium\",\"weight\":0.2,\"effect\":\"add\",\"message\":\"intern export\","
        " \"match\":{\"role\":[\"intern\"],\"action\":[\"export\"]}},"
        "{\"id\":\"shell.rm\",\"severity\":\"critical\",\"weight\":0.1,\"effect\":\"deny\",\"message\":\"destructive command\","
        " \"match\":{\"prompt\":[{\"literal\":\"rm -rf /\"}]}}"
        "]}",
        tenant, version, email_weight);
    gov_uuid_v7(id);
    json_t *ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "event_id", id, "occurred_at",
                           (json_int_t)gov_now_micros(), "tenant", tenant, "pack_id", "itest",
                           "version", version, "rulepack_json", pack, "published_by", "itest");
    itest_sign_rulepack_event(ev, keys, signer_ids, (const int[]){0, -1});
    itest_produce_event("policy.rulepacks", "RulePackPublished", ev);
    json_decref(ev);
}

static char *request(const char *prompt, const char *role, const char *action) {
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:s}", "tenant", tenant, "session_id", "sess-1",
                          "user", "alice", "role", role, "prompt", prompt);
    if (action)
        json_object_set_new(r, "action", json_string(action));
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    return s;
}

/* Waits until replica `which` answers `want_status` with a body containing
 * `want` for req; returns ms waited or -1. */
static long wait_answer(int which, const char *req, long want_status, const char *want, int timeout_ms) {
    int64_t t0 = gov_mono_micros();
    while (gov_mono_micros() - t0 < (int64_t)timeout_ms * 1000) {
        http_answer_t a = evaluate(which, req);
        int ok = a.status == want_status && strstr(a.body, want) != NULL;
        free(a.body);
        if (ok)
            return (long)((gov_mono_micros() - t0) / 1000);
        itest_sleep_ms(10);
    }
    return -1;
}

/* --- tests --------------------------------------------------------------------------- */

static void test_not_configured_tenant_is_503(void **state) {
    (void)state;
    char *req = request("hello", "analyst", NULL);
    http_answer_t a = evaluate(0, req);
    assert_int_equal(a.status, 503);
    assert_non_null(strstr(a.body, "\"constitution_missing\""));
    free(a.body);
    publish_constitution("1.0.0", "0.8", "0.5");
    assert_true(wait_answer(0, req, 503, "\"rulepack_missing\"", 10000) >= 0);
    free(req);
}

static void test_decisions_identical_on_both_replicas(void **state) {
    (void)state;
    char id[GOV_UUID_STRLEN + 1];
    publish_pack("1", "0.35", id);
    char *req = request("Password reset for bob@example.org please", "analyst", "search");
    long ms = wait_answer(0, req, 200, "\"rulepack_version\":\"1\"", 10000);
    assert_true(ms >= 0);
    assert_true(wait_answer(1, req, 200, "\"rulepack_version\":\"1\"", 10000) >= 0);
    /* 0.35 + 0.3 = 0.65: above approval 0.5, not above max 0.7 -> review */
    http_answer_t first = evaluate(0, req);
    assert_int_equal(first.status, 200);
    assert_string_equal(first.decision_hdr, "review");
    assert_string_equal(first.score_hdr, "0.650000");
    assert_string_equal(first.hash_hdr, constitution_hash);
    assert_true(gov_uuid_v7_valid(first.id_hdr));
    json_t *f = json_loads(first.body, 0, NULL);
    assert_non_null(f);
    for (int i = 0; i < 50; i++) {
        http_answer_t a = evaluate(i % 2, req);
        assert_int_equal(a.status, 200);
        json_t *j = json_loads(a.body, 0, NULL);
        /* decision, score, reasons (in order) and input digest are the same on
         * every replica, every time; ids and times are per decision */
        const char *same[] = {"decision", "score", "reasons", "input_digest", "constitution_hash",
                              "rulepack_version", "policy_id", "effective_thresholds"};
        for (size_t k = 0; k < sizeof same / sizeof same[0]; k++)
            if (!json_equal(json_object_get(f, same[k]), json_object_get(j, same[k])))
                fail_msg("member %s differs between answers", same[k]);
        assert_string_not_equal(json_string_value(json_object_get(j, "decision_id")),
                                json_string_value(json_object_get(f, "decision_id")));
        json_decref(j);
        free(a.body);
    }
    json_t *reasons = json_object_get(f, "reasons");
    assert_int_equal(json_array_size(reasons), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(reasons, 0), "rule_id")), "pii.email");
    assert_string_equal(json_string_value(json_object_get(json_array_get(reasons, 1), "rule_id")), "secrets.password");
    json_decref(f);
    free(first.body);
    free(req);
}

static void test_constitution_and_deny_rules_come_first(void **state) {
    (void)state;
    char *req = request("harmless", "analyst", "exfiltrate_data");
    http_answer_t a = evaluate(0, req);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.decision_hdr, "deny");
    assert_string_equal(a.score_hdr, "0.000000");
    assert_non_null(strstr(a.body, "constitution.prohibited_action"));
    free(a.body);
    free(req);
    req = request("please run rm -rf / now", "analyst", NULL);
    a = evaluate(1, req);
    assert_string_equal(a.decision_hdr, "deny");
    assert_non_null(strstr(a.body, "\"shell.rm\""));
    free(a.body);
    free(req);
    /* a tool category outside the constitution's list */
    char body[512];
    snprintf(body, sizeof body, "{\"tenant\":\"%s\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\","
             "\"prompt\":\"hi\",\"tool\":{\"name\":\"bash\",\"category\":\"shell\"}}", tenant);
    a = evaluate(0, body);
    assert_string_equal(a.decision_hdr, "deny");
    assert_non_null(strstr(a.body, "constitution.tool_category_not_permitted"));
    free(a.body);
}

static void test_new_pack_version_is_live_within_a_second(void **state) {
    (void)state;
    char *req = request("Password reset for bob@example.org please", "analyst", "search");
    char id[GOV_UUID_STRLEN + 1];
    publish_pack("2", "0.5", id); /* 0.5 + 0.3 = 0.8 > 0.7 -> deny */
    long ms = wait_answer(0, req, 200, "\"rulepack_version\":\"2\"", 10000);
    long ms1 = wait_answer(1, req, 200, "\"rulepack_version\":\"2\"", 10000);
    print_message("pack v2 live on the replicas after %ld ms and %ld ms\n", ms, ms1);
    assert_true(ms >= 0 && ms <= 1000);
    assert_true(ms1 >= 0 && ms1 <= 1000);
    http_answer_t a = evaluate(1, req);
    assert_string_equal(a.decision_hdr, "deny");
    assert_string_equal(a.score_hdr, "0.800000");
    free(a.body);
    /* a downgrade is refused by gov-rulepacks (its audit event says so, and
     * it is emitted once the refusal is final): v2 stays */
    publish_pack("1", "0.01", id);
    json_t *refusal = itest_find_audit(tenant, components[1], "rulepack.rejected", id, 60000);
    if (refusal == NULL)
        fail_msg("no rulepack.rejected audit event for the downgrade %s", id);
    assert_string_equal(json_string_value(json_object_get(refusal, "reason")), "version_rollback");
    json_decref(refusal);
    a = evaluate(0, req);
    assert_non_null(strstr(a.body, "\"rulepack_version\":\"2\""));
    free(a.body);
    free(req);
}

static void test_new_constitution_rebinds(void **state) {
    (void)state;
    char *req = request("Password reset for bob@example.org please", "analyst", "search");
    char old_hash[129];
    snprintf(old_hash, sizeof old_hash, "%s", constitution_hash);
    publish_constitution("1.1.0", "0.9", "0.85"); /* the pack's 0.7 still tightens max */
    char want[200];
    snprintf(want, sizeof want, "\"constitution_hash\":\"%s\"", constitution_hash);
    long ms = wait_answer(0, req, 200, want, 10000);
    print_message("constitution 1.1.0 bound to decisions after %ld ms\n", ms);
    assert_true(ms >= 0 && ms <= 1000);
    http_answer_t a = evaluate(0, req);
    assert_string_equal(a.hash_hdr, constitution_hash);
    assert_string_not_equal(a.hash_hdr, old_hash);
    assert_non_null(strstr(a.body, "\"max_risk_score\":0.700000"));
    assert_non_null(strstr(a.body, "\"require_human_approval_above_risk\":0.850000"));
    assert_string_equal(a.decision_hdr, "deny"); /* 0.8 > 0.7 */
    free(a.body);
    free(req);
}

static void test_decision_log_is_materialized(void **state) {
    (void)state;
    char *req = request("mail carol@example.org", "analyst", "search");
    http_answer_t a = evaluate(0, req);
    assert_int_equal(a.status, 200);
    char path[256];
    snprintf(path, sizeof path, "/v1/decisions/%s/%s", tenant, a.id_hdr);
    http_answer_t d = {0};
    for (int i = 0; i < 100; i++) {
        free(d.body);
        d = http(1, "GET", path, NULL, 0, NULL);
        if (d.status == 200)
            break;
        itest_sleep_ms(50);
    }
    assert_int_equal(d.status, 200);
    json_t *dj = json_loads(d.body, 0, NULL), *aj = json_loads(a.body, 0, NULL);
    assert_non_null(dj);
    assert_string_equal(json_string_value(json_object_get(dj, "decision")), a.decision_hdr);
    assert_string_equal(json_string_value(json_object_get(dj, "input_digest")),
                        json_string_value(json_object_get(aj, "input_digest")));
    assert_string_equal(json_string_value(json_object_get(dj, "constitution_hash")), constitution_hash);
    assert_non_null(strstr(d.body, "\"score\":0.500000"));
    json_decref(dj);
    json_decref(aj);
    free(d.body);
    free(a.body);
    free(req);
    /* unknown and malformed ids */
    char unknown[37];
    gov_uuid_v7(unknown);
    snprintf(path, sizeof path, "/v1/decisions/%s/%s", tenant, unknown);
    d = http(0, "GET", path, NULL, 0, NULL);
    assert_int_equal(d.status, 404);
    free(d.body);
    snprintf(path, sizeof path, "/v1/decisions/%s/not-a-uuid", tenant);
    d = http(0, "GET", path, NULL, 0, NULL);
    assert_int_equal(d.status, 400);
    free(d.body);
}

typedef struct bad_case {
    const char *name;
    const char *method;
    const char *content_type;
    long status;
    const char *code;
} bad_case_t;

static void test_bad_input_matrix(void **state) {
    (void)state;
    char big[70000], deep[512], t[200];
    snprintf(t, sizeof t, "\"tenant\":\"%s\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\"", tenant);
    size_t n = (size_t)snprintf(big, sizeof big, "{%s,\"prompt\":\"", t);
    memset(big + n, 'a', 66000);
    snprintf(big + n + 66000, sizeof big - n - 66000, "\"}");
    size_t dn = 0;
    for (int i = 0; i < 100; i++) deep[dn++] = '[';
    deep[dn] = 0;
    char unknown[256], wrong_type[256], missing[256], nul[256], bad_tenant[256], utf8[256], dup[256];
    snprintf(unknown, sizeof unknown, "{%s,\"prompt\":\"x\",\"admin\":true}", t);
    snprintf(wrong_type, sizeof wrong_type, "{%s,\"prompt\":42}", t);
    snprintf(missing, sizeof missing, "{\"tenant\":\"%s\",\"prompt\":\"x\"}", tenant);
    snprintf(nul, sizeof nul, "{%s,\"prompt\":\"x\",\"action\":\"a\\u0000b\"}", t);
    snprintf(bad_tenant, sizeof bad_tenant, "{\"tenant\":\"a}b\",\"session_id\":\"s\",\"user\":\"u\",\"role\":\"r\",\"prompt\":\"x\"}");
    snprintf(utf8, sizeof utf8, "{%s,\"prompt\":\"caf\xc3\x28\"}", t);
    snprintf(dup, sizeof dup, "{%s,\"prompt\":\"x\",\"prompt\":\"y\"}", t);
    struct {
        const char *name, *body, *method, *ct;
        long status;
        const char *code;
    } cases[] = {
        {"malformed json", "{\"tenant\":", "POST", "application/json", 400, "syntax"},
        {"not an object", "[1,2,3]", "POST", "application/json", 400, "invalid_type"},
        {"empty body", "", "POST", "application/json", 400, "syntax"},
        {"unknown field", unknown, "POST", "application/json", 400, "unknown_field"},
        {"wrong type", wrong_type, "POST", "application/json", 400, "invalid_type"},
        {"missing field", missing, "POST", "application/json", 400, "missing_field"},
        {"NUL in a string", nul, "POST", "application/json", 400, "invalid_value"},
        {"bad tenant id", bad_tenant, "POST", "application/json", 400, "invalid_tenant"},
        {"invalid UTF-8", utf8, "POST", "application/json", 400, "invalid_utf8"},
        {"duplicate key", dup, "POST", "application/json", 400, "duplicate_key"},
        {"deep nesting", deep, "POST", "application/json", 413, "too_deep"},
        {"oversize body", big, "POST", "application/json", 413, "body_too_large"},
        {"wrong content type", unknown, "POST", "text/plain", 415, "unsupported_media_type"},
        /* RFC 9110 section 8.3.1: the type is case-insensitive and ends at ";" or the end -
         * unknown_field shows the body was read as JSON */
        {"JSON in capitals", unknown, "POST", "Application/JSON", 400, "unknown_field"},
        {"JSON with a parameter", unknown, "POST", "APPLICATION/json ; charset=utf-8", 400,
         "unknown_field"},
        {"a longer type", unknown, "POST", "application/jsonx", 415, "unsupported_media_type"},
        {"json-seq", unknown, "POST", "application/json-seq", 415, "unsupported_media_type"},
        {"GET on evaluate", NULL, "GET", NULL, 405, "method_not_allowed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_answer_t a = http((int)(i % 2), cases[i].method, "/v1/evaluate", cases[i].body,
                               cases[i].body ? strlen(cases[i].body) : 0, cases[i].ct);
        char want[96];
        snprintf(want, sizeof want, "{\"error\":{\"code\":\"%s\"", cases[i].code);
        if (a.status != cases[i].status || strncmp(a.body, want, strlen(want)) != 0)
            fail_msg("%s: got %ld %s", cases[i].name, a.status, a.body);
        free(a.body);
    }
    /* and both replicas are still healthy */
    for (int w = 0; w < 2; w++)
        assert_int_equal(itest_proc_get(&procs[3 + w], "/readyz", NULL), 200);
}

static void test_metrics(void **state) {
    (void)state;
    char *body = NULL, f[128];
    assert_int_equal(itest_proc_get(&procs[3], "/metrics", &body), 200);
    snprintf(f, sizeof f, "tenant=\"%s\"", tenant);
    const char *flt[] = {f, "policy_id=\"itest\"", NULL};
    assert_true(itest_metric(body, "policy_decision_total", flt) >= 20);
    assert_true(itest_metric(body, "policy_evaluation_duration_seconds_count", NULL) >= 20);
    const char *lf[] = {NULL};
    assert_true(itest_metric(body, "policy_decision_log_failed_total", lf) <= 0);
    assert_int_equal(itest_promtool_check(body), 0);
    free(body);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_configured_tenant_is_503),
        cmocka_unit_test(test_decisions_identical_on_both_replicas),
        cmocka_unit_test(test_constitution_and_deny_rules_come_first),
        cmocka_unit_test(test_new_pack_version_is_live_within_a_second),
        cmocka_unit_test(test_new_constitution_rebinds),
        cmocka_unit_test(test_decision_log_is_materialized),
        cmocka_unit_test(test_bad_input_matrix),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests_name("evaluate", tests, setup, teardown);
}
