/* test_govctl_rulepack.c - `govctl rulepack validate | sign | publish`, driven the
 * way an operator drives them: the real binary (itest_bin("govctl"), so the
 * suite's second pass runs the ASan + UBSan build), real files, the real
 * broker of the stack, and a private gov-rulepacks with a private Redis that
 * takes what govctl published.
 *
 * What is checked is what an operator sees: exit codes (0 / 1 / 2), the
 * reason code first on stderr followed by the rule and the field, the
 * summary line on stdout, the RulePackPublished that arrives on
 * policy.rulepacks (consumed and decoded: key, partition and offset as
 * printed, the file's bytes as is), that a refused pack never reaches the
 * topic, and the pack materialized in Redis by gov-rulepacks.  Signing keys
 * are made with `govctl keygen`; the private gov-rulepacks trusts ops-a for
 * the test's tenant through its own rule-pack trust file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_rulepack.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

#define TOPIC "policy.rulepacks"

static char work[PATH_MAX];     /* var/test-logs/govctl-rp-<pid>-<rnd>, removed at the end */
static char g_out[1 << 16];     /* stdout of the last run */
static char g_err[1 << 16];     /* stderr of the last run */
static char *demo;              /* deploy/demo/rulepack-demo.json */
static char keydir[PATH_MAX + 16], key_a[PATH_MAX + 32], key_b[PATH_MAX + 32];

/* --- running govctl ---------------------------------------------------------- */

/* Runs argv with extra env; stdout into g_out, stderr into g_err.  A
 * sanitizer report fails the test whatever the exit code. */
static int run_argv(const char *const *argv, const char *const *env) {
    return itest_run_capture(argv, env, g_out, sizeof g_out, g_err, sizeof g_err);
}

#define GOVCTL(env, ...)                                                                         \
    itest_govctl((env), (const char *const[]){__VA_ARGS__, NULL}, g_out, sizeof g_out, g_err,    \
                 sizeof g_err)
#define NOENV ((const char *const *)NULL)

/* Exit 1 with a stderr line "govctl: <code>: <message...>", the message
 * starting with `starts` (librdkafka's log lines may come before it),
 * nothing on stdout. */
#define EXPECT_FAIL(rc, code, starts) expect_fail((rc), (code), (starts), __LINE__)
static void expect_fail(int rc, const char *code, const char *starts, int line) {
    char want[512];
    snprintf(want, sizeof want, "govctl: %s: %s", code, starts);
    const char *at = g_err;
    while (at && strncmp(at, want, strlen(want)) != 0)
        at = (at = strchr(at, '\n')) ? at + 1 : NULL;
    if (rc != 1 || at == NULL || g_out[0] != 0)
        fail_msg("line %d: want exit 1 with \"%s...\" on stderr; got exit %d, stderr:\n%s"
                 "stdout:\n%s", line, want, rc, g_err, g_out);
}

#define EXPECT_USAGE(rc) itest_expect_usage((rc), g_err, __LINE__)
#define EXPECT_OK(rc) itest_expect_ok((rc), g_err, __LINE__)

/* --- files ------------------------------------------------------------------- */

/* Writes s to work/name; returns the path (static, one of 8 rotating). */
static const char *write_pack(const char *name, const char *s) {
    static char paths[8][PATH_MAX + 64];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, PATH_MAX + 64, "%s/%s", work, name);
    itest_write_file(p, s, strlen(s));
    return p;
}

/* The demo pack with `from` (occurring exactly once) replaced by `to`. */
static char *demo_with(const char *from, const char *to) {
    return itest_replace_once(demo, from, to);
}

/* The demo pack for tenant t (new memory). */
static char *demo_for(const char *t) {
    char to[128];
    snprintf(to, sizeof to, "\"tenant\": \"%s\"", t);
    return demo_with("\"tenant\": \"demo\"", to);
}

/* --- setup ------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    if (itest_workdir_new("govctl-rp", work, sizeof work) != 0)
        return -1;
    demo = itest_read_file("deploy/demo/rulepack-demo.json", NULL);
    snprintf(keydir, sizeof keydir, "%s/keys", work);
    snprintf(key_a, sizeof key_a, "%s/ops-a.key", keydir);
    snprintf(key_b, sizeof key_b, "%s/ops-b.key", keydir);
    if (GOVCTL(NOENV, "keygen", "--signer", "ops-a", "--out", keydir) != 0 ||
        GOVCTL(NOENV, "keygen", "--signer", "ops-b", "--out", keydir) != 0)
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    itest_workdir_remove(work);
    free(demo);
    return 0;
}

/* --- validate ---------------------------------------------------------------- */

static void test_validate_ok(void **state) {
    (void)state;
    const char *want = "OK pack_id=demo-baseline tenant=demo version=1.1.0 rules=12 patterns=20\n";
    EXPECT_OK(GOVCTL(NOENV, "rulepack", "validate", itest_path("deploy/demo/rulepack-demo.json")));
    assert_string_equal(g_out, want);
    assert_string_equal(g_err, "");

    /* the counts are the library's, not the CLI's own */
    gov_rulepack_t *p = NULL;
    char eb[256];
    assert_int_equal(gov_rulepack_parse(demo, strlen(demo), NULL, &p, NULL, eb, sizeof eb), GOV_OK);
    size_t patterns = 0;
    for (size_t i = 0; i < gov_rulepack_rule_count(p); i++)
        patterns += gov_rulepack_rule(p, i)->pattern_count;
    assert_int_equal(gov_rulepack_rule_count(p), 12);
    assert_int_equal(patterns, 20);
    gov_rulepack_free(p);

    /* from standard input, and an integer version */
    char *t = demo_with("\"version\": \"1.1.0\"", "\"version\": 7");
    const char *path = write_pack("int-version.json", t);
    free(t);
    const char *bin = itest_bin("govctl");
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "exec '%s' rulepack validate - < '%s'",
             bin[0] == '/' ? bin : itest_path(bin), path);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    EXPECT_OK(run_argv(argv, NULL));
    assert_string_equal(g_out, "OK pack_id=demo-baseline tenant=demo version=7 rules=12 patterns=20\n");
}

typedef struct bad {
    const char *from, *to;       /* edit of the demo pack */
    const char *code;            /* first on stderr */
    const char *message;         /* what follows "govctl: <code>: " */
} bad_t;

static void test_validate_errors_name_rule_and_field(void **state) {
    (void)state;
    static const bad_t cases[] = {
        {"\"weight\": 0.35, \"effect\": \"add\", \"message\": \"prompt contains what looks like a US",
         "\"weight\": 0.3500001, \"effect\": \"add\", \"message\": \"prompt contains what looks like a US",
         "too_many_decimals",
         "rules[2] (pii.us_ssn): weight 0.3500001 has more than 6 decimal places\n"},
        {"\"weight\": 0.35, \"effect\": \"add\", \"message\": \"prompt contains what looks like a payment",
         "\"weight\": -0.1, \"effect\": \"add\", \"message\": \"prompt contains what looks like a payment",
         "out_of_range", "rules[1] (pii.payment_card): weight -0.1 is not in [0,1]\n"},
        {"\"id\": \"pii.us_ssn\"", "\"id\": \"pii.email\"", "duplicate_id",
         "rules[2] (pii.email): id duplicates rules[0]\n"},
        {"(dan|an? (unrestricted", "(dan|an? ((unrestricted", "invalid_pattern",
         "rules[4] (injection.persona_jailbreak): match.prompt[0].regex is refused by Vectorscan: "},
        {"\"id\": \"role.junior_export\",", "\"id\": \"role.junior_export\", \"priority\": 3,",
         "unknown_field", "rules[9] (role.junior_export): priority is not a known member\n"},
        {"\"severity\": \"medium\", \"weight\": 0.3,", "\"severity\": \"severe\", \"weight\": 0.3,",
         "invalid_value",
         "rules[9] (role.junior_export): severity must be one of low, medium, high, critical\n"},
        {"\"effect\": \"deny\", \"message\": \"prompt asks for a destructive shell command\",", "",
         "missing_field", "rules[8] (shell.destructive_command): effect is required\n"},
        {"\"max_risk_score\": 0.7", "\"max_risk_score\": 1.2", "out_of_range",
         "thresholds.max_risk_score 1.2 is not in [0,1]\n"},
        {"\"pack_id\": \"demo-baseline\"", "\"pack_id\": \"demo baseline\"", "invalid_value",
         "pack_id must be 1-64 characters of [A-Za-z0-9._-]\n"},
        {"\"rules\": [", "\"rules\": [[", "invalid_json", "pack is not valid JSON: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = demo_with(cases[i].from, cases[i].to), name[32];
        snprintf(name, sizeof name, "bad-%zu.json", i);
        const char *path = write_pack(name, t);
        free(t);
        EXPECT_FAIL(GOVCTL(NOENV, "rulepack", "validate", path), cases[i].code, cases[i].message);
    }

    /* the contract limits, the processor's and every edge's: nothing in
     * the environment changes them */
    const char *path = write_pack("demo.json", demo);
    const char *env5[] = {"GOV_RULEPACK_MAX_RULES=5", NULL};
    EXPECT_OK(GOVCTL(env5, "rulepack", "validate", path));
    json_t *doc = json_loads(demo, 0, NULL);
    json_t *rules = json_object_get(doc, "rules");
    json_t *plain = NULL;   /* a rule without prompt patterns: copies compile nothing */
    for (size_t i = 0; plain == NULL && i < json_array_size(rules); i++)
        if (json_object_get(json_object_get(json_array_get(rules, i), "match"), "prompt") == NULL)
            plain = json_array_get(rules, i);
    assert_non_null(plain);
    for (size_t i = json_array_size(rules); i <= 500; i++) {
        json_t *r = json_deep_copy(plain);
        char id[32];
        snprintf(id, sizeof id, "extra.rule_%03zu", i);
        json_object_set_new(r, "id", json_string(id));
        json_array_append_new(rules, r);
    }
    char *big = json_dumps(doc, 0);
    json_decref(doc);
    EXPECT_FAIL(GOVCTL(NOENV, "rulepack", "validate", write_pack("501.json", big)),
                "too_many_rules", "rules holds 501 rules (limit 500)\n");
    free(big);

    /* files */
    char missing[PATH_MAX + 32];
    snprintf(missing, sizeof missing, "%s/nope.json", work);
    EXPECT_FAIL(GOVCTL(NOENV, "rulepack", "validate", missing), "io_error", "cannot open ");
    EXPECT_FAIL(GOVCTL(NOENV, "rulepack", "validate", work), "io_error", "");
    assert_non_null(strstr(g_err, "is a directory"));
    /* a hostile byte in the pack is not echoed to the terminal */
    path = write_pack("esc.json", "{\"pack_id\": \"x\", \"\\u001b[2J\": 1}");
    EXPECT_FAIL(GOVCTL(NOENV, "rulepack", "validate", path), "unknown_field", "?[2J is not");
}

static void test_usage_errors(void **state) {
    (void)state;
    const char *path = write_pack("demo.json", demo);
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack"));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "frobnicate", path));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "validate"));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "validate", path, path));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "validate", "--strict", path));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "publish"));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "publish", "--brokers"));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "publish", "--tenant", "x", path));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "publish", "--brokers", "", path));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "sign", path));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-a", path));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "sign", "--key", key_a, path));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "sign", "--signer", "a/b", "--key", key_a, path));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-a", "--key", key_a, "-"));
    EXPECT_USAGE(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-a", "--key", key_a));
    EXPECT_OK(GOVCTL(NOENV, "--help"));
    assert_non_null(strstr(g_out, "rulepack validate FILE"));
    assert_non_null(strstr(g_out, "rulepack sign --signer ID --key PRIV.pem [--sigs SIGFILE] FILE"));
    assert_non_null(strstr(g_out, "rulepack publish [--brokers B] [--sigs SIGFILE] FILE"));
}

/* --- sign -------------------------------------------------------------------- */

/* The SHA-256 hex of the pack's canonical JSON, by the library. */
static void digest_of(const char *text, char hex[GOV_SHA256_HEXLEN + 1]) {
    gov_rulepack_t *pack = NULL;
    char eb[256];
    assert_int_equal(gov_rulepack_parse(text, strlen(text), NULL, &pack, NULL, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_rulepack_digest_hex(pack, hex), GOV_OK);
    gov_rulepack_free(pack);
}

/* The signature file at path, parsed (new reference). */
static json_t *sigfile(const char *path) {
    char *text = itest_read_file(path, NULL);
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    if (j == NULL)
        fail_msg("%s is not JSON", path);
    return j;
}

static void test_sign_adds_detached_signatures(void **state) {
    (void)state;
    char hex[GOV_SHA256_HEXLEN + 1], sig[PATH_MAX + 64], want[PATH_MAX + 256];
    const char *path = write_pack("signed.json", demo);
    snprintf(sig, sizeof sig, "%s.sig", path);
    digest_of(demo, hex);

    EXPECT_OK(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-a", "--key", key_a, path));
    snprintf(want, sizeof want, "signed %s signer=ops-a pack_sha256=%s signatures=1\n", sig, hex);
    assert_string_equal(g_out, want);
    /* the pack file is untouched; the signature verifies over the digest */
    char *after = itest_read_file(path, NULL);
    assert_string_equal(after, demo);
    free(after);
    EXPECT_OK(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-b", "--key", key_b, path));
    EXPECT_OK(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-a", "--key", key_a, path));
    json_t *j = sigfile(sig);
    assert_string_equal(json_string_value(json_object_get(j, "pack_sha256")), hex);
    json_t *arr = json_object_get(j, "signatures");
    assert_int_equal(json_array_size(arr), 2);   /* ops-a signing again replaced its entry */
    char pem_path[PATH_MAX + 32];
    snprintf(pem_path, sizeof pem_path, "%s/ops-a.pub", keydir);
    char *pem = itest_read_file(pem_path, NULL);
    char trust[8192];
    json_t *tj = json_pack("{s:{s:s}, s:i}", "signers", "ops-a", pem, "threshold", 1);
    char *ts = json_dumps(tj, 0);
    snprintf(trust, sizeof trust, "%s", ts);
    free(ts);
    json_decref(tj);
    free(pem);
    gov_trust_t *t = NULL;
    char eb[256];
    assert_int_equal(gov_trust_parse(trust, strlen(trust), &t, eb, sizeof eb), GOV_OK);
    gov_bundle_sig_t sigs[GOV_MAX_SIGNATURES + 1];
    size_t n = 0;
    assert_int_equal(gov_signatures_from_json(arr, sigs, GOV_MAX_SIGNATURES + 1, &n), 0);
    gov_rulepack_t *pack = NULL;
    assert_int_equal(gov_rulepack_parse(demo, strlen(demo), NULL, &pack, NULL, eb, sizeof eb), GOV_OK);
    gov_sig_count_t sc;
    assert_int_equal(gov_rulepack_verify_signatures(pack, "demo", sigs, n, t, &sc), GOV_OK);
    assert_int_equal(sc.reason, GOV_REASON_NONE);
    assert_int_equal(sc.nsigners, 1);   /* ops-b is not in this trust */
    gov_rulepack_free(pack);
    gov_trust_free(t);
    json_decref(j);

    /* the pack edited: signatures of the old digest are dropped, not kept */
    char *edited = demo_with("\"max_risk_score\": 0.7", "\"max_risk_score\": 0.65");
    write_pack("signed.json", edited);
    EXPECT_OK(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-b", "--key", key_b, path));
    assert_non_null(strstr(g_err, "held signatures of another version of the pack"));
    j = sigfile(sig);
    digest_of(edited, hex);
    assert_string_equal(json_string_value(json_object_get(j, "pack_sha256")), hex);
    assert_int_equal(json_array_size(json_object_get(j, "signatures")), 1);
    json_decref(j);
    free(edited);

    /* --sigs elsewhere; a key that is not Ed25519; a pack that does not validate */
    char other[PATH_MAX + 64];
    snprintf(other, sizeof other, "%s/elsewhere.sig", work);
    EXPECT_OK(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-a", "--key", key_a, "--sigs",
                     other, path));
    assert_true(access(other, F_OK) == 0);
    EXPECT_FAIL(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-a", "--key", path, path),
                "key_invalid", "");
    const char *bad = write_pack("bad.json", "{}");
    EXPECT_FAIL(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-a", "--key", key_a, bad),
                "missing_field", "");
    snprintf(sig, sizeof sig, "%s.sig", bad);
    assert_true(access(sig, F_OK) != 0);   /* nothing signed */
}

/* --- publish ----------------------------------------------------------------- */

/* What `govctl rulepack publish` printed, and the event as consumed. */
typedef struct published {
    int printed_partition;
    long long printed_offset;
    itest_found_t at;
} published_t;

/* Parses "published policy.rulepacks partition=P offset=O event_id=E\n". */
static void parse_published(published_t *p) {
    char id[64] = "", nl = 0;
    memset(p, 0, sizeof *p);
    if (sscanf(g_out, "published policy.rulepacks partition=%d offset=%lld event_id=%63s%c",
               &p->printed_partition, &p->printed_offset, id, &nl) != 4 || nl != '\n' ||
        !gov_uuid_v7_valid(id) || p->printed_offset < 0 || p->printed_partition < 0)
        fail_msg("unexpected publish output: %s", g_out);
    snprintf(p->at.event_id, sizeof p->at.event_id, "%s", id);
}

static void check_published(published_t *p, const char *tenant, const char *text,
                            const char *who) {
    if (!itest_find_events(TOPIC, "RulePackPublished", &p->at, 1, 60000))
        fail_msg("event %s did not arrive on %s", p->at.event_id, TOPIC);
    assert_int_equal(p->at.partition, p->printed_partition);
    assert_int_equal(p->at.offset, p->printed_offset);
    assert_string_equal(p->at.key, tenant);
    json_t *ev = p->at.event;
    assert_string_equal(json_string_value(json_object_get(ev, "tenant")), tenant);
    assert_string_equal(json_string_value(json_object_get(ev, "pack_id")), "demo-baseline");
    assert_string_equal(json_string_value(json_object_get(ev, "version")), "1.1.0");
    assert_string_equal(json_string_value(json_object_get(ev, "published_by")), who);
    json_t *rj = json_object_get(ev, "rulepack_json");
    assert_int_equal(json_string_length(rj), strlen(text));
    assert_memory_equal(json_string_value(rj), text, strlen(text));   /* the file, as is */
    /* the signatures of FILE.sig, carried as they are */
    char sig[PATH_MAX + 64];
    snprintf(sig, sizeof sig, "%s/publish.json.sig", work);
    json_t *sj = sigfile(sig);
    assert_true(json_equal(json_object_get(ev, "signatures"), json_object_get(sj, "signatures")));
    json_decref(sj);
    json_int_t at = json_integer_value(json_object_get(ev, "occurred_at"));
    assert_true(at > gov_now_micros() - 600LL * 1000000 && at <= gov_now_micros());
    json_decref(ev);
}

static void test_publish_then_gov_rulepacks_materializes_it(void **state) {
    (void)state;
    char tenant[64], brokers[256], env_brokers[300], env_user[64], who[80];
    itest_unique("govctl-rp", tenant, sizeof tenant);
    snprintf(brokers, sizeof brokers, "%s", itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s", brokers);
    snprintf(env_user, sizeof env_user, "USER=ops-%d", (int)getpid());
    snprintf(who, sizeof who, "govctl:ops-%d", (int)getpid());
    char *text = demo_for(tenant);
    const char *path = write_pack("publish.json", text);

    /* unsigned: refused before anything is produced */
    int64_t before = itest_topic_end(TOPIC);
    EXPECT_FAIL(GOVCTL(NOENV, "rulepack", "publish", path), "no_signatures",
                "no signature file ");
    EXPECT_OK(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-a", "--key", key_a, path));
    /* signatures of another pack: refused */
    char *edited = itest_replace_once(text, "\"max_risk_score\": 0.7", "\"max_risk_score\": 0.6");
    const char *epath = write_pack("publish-edited.json", edited);
    char esig[PATH_MAX + 64], psig[PATH_MAX + 64];
    snprintf(esig, sizeof esig, "%s.sig", epath);
    snprintf(psig, sizeof psig, "%s.sig", path);
    char *stext = itest_read_file(psig, NULL);
    itest_write_file(esig, stext, strlen(stext));
    free(stext);
    free(edited);
    EXPECT_FAIL(GOVCTL(NOENV, "rulepack", "publish", epath), "checksum_mismatch",
                "the signatures in ");
    assert_true(itest_topic_end(TOPIC) == before);

    /* --brokers given */
    const char *env_u[] = {env_user, NULL};
    EXPECT_OK(GOVCTL(env_u, "rulepack", "publish", "--brokers", brokers, path));
    published_t p1;
    parse_published(&p1);
    /* brokers from GOV_KAFKA_BROKERS: the same file again, a new event */
    const char *env_b[] = {env_brokers, env_user, NULL};
    EXPECT_OK(GOVCTL(env_b, "rulepack", "publish", path));
    published_t p2;
    parse_published(&p2);
    assert_string_not_equal(p1.at.event_id, p2.at.event_id);
    check_published(&p1, tenant, text, who);
    check_published(&p2, tenant, text, who);

    /* a private gov-rulepacks takes it: the canonical pack lands in Redis,
     * once (the second publication is a replay) */
    int rport;
    pid_t rpid = itest_private_redis("govctl-rulepack", &rport);
    char env_redis[48];
    snprintf(env_redis, sizeof env_redis, "GOV_REDIS_PORT=%d", rport);
    /* its own rule-pack trust: ops-a for this tenant */
    char pub[PATH_MAX + 32], tpath[PATH_MAX + 64], env_trust[PATH_MAX + 96];
    snprintf(pub, sizeof pub, "%s/ops-a.pub", keydir);
    char *pem = itest_read_file(pub, NULL);
    const char *tids[] = {"ops-a"}, *tpems[] = {pem};
    snprintf(tpath, sizeof tpath, "%s/rulepack-trust.json", work);
    itest_write_trust_tenant_pems(tpath, tenant, 1, 0, 1, tids, tpems);
    free(pem);
    snprintf(env_trust, sizeof env_trust, "GOV_RULEPACK_TRUST_FILE=%s", tpath);
    const char *penv[] = {env_redis, env_brokers, env_trust, NULL};
    itest_proc_t proc = {0};
    itest_proc_start(&proc, "gov-rulepacks", "gov-rulepacks-itest-govctl", penv,
                     "itest-govctl-gov-rulepacks.log");
    gov_redis_t *r = NULL;
    char eb[256];
    assert_int_equal(gov_redis_new("127.0.0.1", rport, 2000, &r, eb, sizeof eb), GOV_OK);
    char key[160];
    snprintf(key, sizeof key, "policy:rulepack:{%s}", tenant);
    if (!itest_wait_offset(r, proc.group, TOPIC, p2.at.partition, p2.at.offset,
                           ITEST_HISTORY_MS))
        fail_msg("gov-rulepacks did not reach offset %lld (var/test-logs/itest-govctl-gov-rulepacks.log)",
                 (long long)p2.at.offset);
    gov_rulepack_t *pack = NULL;
    assert_int_equal(gov_rulepack_parse(text, strlen(text), NULL, &pack, NULL, eb, sizeof eb), GOV_OK);
    redisReply *rep = NULL;
    assert_int_equal(gov_redis_commandf(r, &rep, eb, sizeof eb, "GET %s", key), GOV_OK);
    size_t clen;
    const char *canonical = gov_rulepack_canonical_json(pack, &clen);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_int_equal(rep->len, clen);
    assert_memory_equal(rep->str, canonical, clen);
    freeReplyObject(rep);
    assert_int_equal(gov_redis_commandf(r, &rep, eb, sizeof eb,
                                        "HGET policy:rulepack:{%s}:meta event_id", tenant), GOV_OK);
    assert_string_equal(rep->str, p1.at.event_id);   /* the first publication won */
    freeReplyObject(rep);
    assert_int_equal(gov_redis_commandf(r, &rep, eb, sizeof eb,
                                        "HGET policy:rulepack:{%s}:meta signers", tenant), GOV_OK);
    assert_string_equal(rep->str, "ops-a");
    freeReplyObject(rep);
    gov_rulepack_free(pack);
    gov_redis_free(r);

    char *body = NULL;
    assert_int_equal(itest_proc_get(&proc, "/metrics", &body), 200);
    char f1[128];
    snprintf(f1, sizeof f1, "tenant=\"%s\"", tenant);
    const char *flt[] = {f1, NULL};
    assert_true(itest_metric(body, "rulepack_accepted_total", flt) == 1);
    assert_true(itest_metric(body, "rulepack_rejected_total", flt) < 0);   /* no sample */
    free(body);
    int st = itest_proc_stop(&proc);
    itest_stop(rpid, SIGTERM, 5000);
    assert_int_equal(st, 0);
    free(text);
}

static void test_publish_refuses_invalid_pack(void **state) {
    (void)state;
    char tenant[64];
    itest_unique("govctl-rp", tenant, sizeof tenant);
    char *good = demo_for(tenant), *from = strstr(good, "\"weight\": 0.2,");
    assert_non_null(from);
    memcpy(from, "\"weight\": 2  ,", 14);
    const char *path = write_pack("refused.json", good);
    free(good);
    int64_t before = itest_topic_end(TOPIC);
    EXPECT_FAIL(GOVCTL(NOENV, "rulepack", "publish", path), "out_of_range",
                "rules[0] (pii.email): weight 2 is not in [0,1]\n");
    EXPECT_FAIL(GOVCTL(NOENV, "rulepack", "publish", write_pack("empty.json", "")),
                "invalid_json", "pack is not valid JSON: ");
    /* nothing reached the topic */
    assert_true(itest_topic_end(TOPIC) == before);
}

static void test_publish_kafka_unavailable(void **state) {
    (void)state;
    const char *path = write_pack("down.json", demo);
    EXPECT_OK(GOVCTL(NOENV, "rulepack", "sign", "--signer", "ops-a", "--key", key_a, path));
    const char *env[] = {"GOV_KAFKA_BROKERS=127.0.0.1:1", NULL};
    int64_t t0 = gov_mono_micros();
    EXPECT_FAIL(GOVCTL(env, "rulepack", "publish", path), "kafka_unavailable",
                "the pack was not acknowledged by 127.0.0.1:1: ");
    int64_t ms = (gov_mono_micros() - t0) / 1000;
    if (ms > 20000)
        fail_msg("kafka_unavailable took %lld ms (bound: 20 s)", (long long)ms);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_ok),
        cmocka_unit_test(test_validate_errors_name_rule_and_field),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_sign_adds_detached_signatures),
        cmocka_unit_test(test_publish_then_gov_rulepacks_materializes_it),
        cmocka_unit_test(test_publish_refuses_invalid_pack),
        cmocka_unit_test(test_publish_kafka_unavailable),
    };
    return cmocka_run_group_tests_name("govctl-rulepack", tests, setup, teardown);
}
