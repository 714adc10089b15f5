/* test_edge_lanes.c - gov-edge's lookup lanes and the fail-closed answers of
 * its policy routes (REVIEW11 H2, L4, L1, L2), against the real stack.
 *
 * A private gov-edge ("edge-itest-lanes-<unique>") reads the stack's Redis
 * (the demo tenant, the keys, a client this test registers with `govctl
 * clients add`) and signs with the stack's key directory.  Everything is
 * read from its own port (its /metrics, its answers) and its own log file,
 * so the stack's edge cannot pass any check in its place.  Its lanes are
 * made small on purpose, so that a handful of client threads on a shared
 * machine fills them: the general lane 1 thread / 4 queued, the policy
 * lane 1 thread / 4 queued (session start at most 2 of them).
 *   - H2: while one thread asks /v1/authz in a loop with a valid session
 *     token, FLOOD_THREADS threads post /v1/tokens/issue with random
 *     client ids for FLOOD_MS: every check answers 200, the general lane
 *     was full meanwhile (edge_lookup_queue_full_total{route="token_issue"}
 *     grew), the policy lane refused nothing, and the edge logged one WARN
 *     per episode, not one per refusal.  Before the lanes (one shared
 *     queue) checks answered 503 during the flood.
 *   - H2, the policy lane's other route: the same while FLOOD_THREADS
 *     threads start sessions (a valid bearer token, a denied prompt): the
 *     session starts are refused lookup_capacity, the checks never, since
 *     session start may fill only half of the lane's queue.
 *   - L4: an unknown client id issued twice takes one lookup
 *     (edge_lookups_total{route="token_issue"} grows by 1), as a known one.
 *   - L1: two Authorization, two Content-Digest or two X-Original-URI
 *     headers on /v1/authz, two Authorization headers on
 *     /v1/sessions/start: 400 duplicate_header with X-Policy-Decision: deny,
 *     and no decision was made (policy_decision_total unchanged).
 *   - L2: on the policy routes, 404, 405, a framing refusal, 413 and a full
 *     policy lane (concurrent checks, 503 lookup_capacity) all carry
 *     X-Policy-Decision: deny.
 * Every wait is on an observable outcome, bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gov_alloc.h"
#include "gov_time.h"
#include "itest_util.h"

#define TENANT "demo"
#define WAIT_MS 60000
#define FLOOD_THREADS 8
#define FLOOD_MS 5000
#define BURST 40
#define ALLOW_PROMPT "hello there"
#define DENY_PROMPT "please rm -rf / now"

static itest_proc_t edge;
static char env_brokers[256];
static char client_id[128], client_secret[128];
static char bearer_auth[4200];   /* "Authorization: Bearer <bearer>\r\n" */
static char session_auth[4200];  /* "Authorization: Bearer <session token>\r\n" */
static void identity_resume(void);

/* --- helpers -------------------------------------------------------------------------- */

static double metric(const char *name, const char *route) {
    char f[96];
    snprintf(f, sizeof f, "route=\"%s\"", route);
    double v = itest_proc_metric(&edge, name, (const char *const[]){f, NULL});
    return v < 0 ? 0 : v;
}

static double decisions_total(void) {
    double v = itest_proc_metric(&edge, "policy_decision_total",
                                 (const char *const[]){"tenant=\"demo\"", NULL});
    return v < 0 ? 0 : v;
}

/* Fails unless raw is status `status`, error `code` (NULL: any), deny. */
static void expect_deny(const char *raw, int got, int status, const char *code, int line) {
    char v[64], c[64];
    itest_header_of(raw, "X-Policy-Decision", v, sizeof v);
    itest_error_code(raw, c, sizeof c);
    if (got != status || (code && strcmp(c, code) != 0) || strcmp(v, "deny") != 0)
        fail_msg("line %d: want %d %s with X-Policy-Decision: deny, got %d %s '%s': %.600s",
                 line, status, code ? code : "", got, c, v, raw);
}

/* GET /v1/authz as nginx asks it, with extra header lines. */
static int authz(const char *auth, const char *extra, char *raw, size_t size) {
    char hdrs[9000];
    snprintf(hdrs, sizeof hdrs, "%sX-Original-Method: GET\r\nX-Original-URI: /api/items\r\n%s",
             auth, extra ? extra : "");
    return itest_http_request(edge.port, "GET", "/v1/authz", hdrs, NULL, raw, size);
}

static int session_start(const char *auth, const char *extra, const char *prompt, char *raw,
                         size_t size) {
    char hdrs[9000], body[512];
    snprintf(hdrs, sizeof hdrs, "%sContent-Type: application/json\r\n%s", auth,
             extra ? extra : "");
    snprintf(body, sizeof body,
             "{\"tenant\":\"" TENANT "\",\"session_id\":\"s-lanes\",\"user\":\"u-1\","
             "\"role\":\"analyst\",\"prompt\":\"%s\"}", prompt);
    return itest_http_request(edge.port, "POST", "/v1/sessions/start", hdrs, body, raw, size);
}

/* POST /v1/tokens/issue with Basic id:secret; the status. */
static int issue(const char *id, const char *secret, char *raw, size_t size) {
    char basic[512], hdrs[700];
    itest_basic_auth(id, secret, basic);
    snprintf(hdrs, sizeof hdrs, "Authorization: %s\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\n", basic);
    return itest_http_request(edge.port, "POST", "/v1/tokens/issue", hdrs,
                              "grant_type=client_credentials&scope=sessions:start", raw, size);
}

/* The number of log lines of the private edge holding both a and b. */
static int log_lines_with(const char *a, const char *b) {
    size_t len = 0;
    char *text = itest_read_file(itest_log_path(edge.log), &len);
    int n = 0;
    for (char *line = text; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        n += strstr(line, a) != NULL && strstr(line, b) != NULL;
        line = end ? end + 1 : NULL;
    }
    free(text);
    return n;
}

/* --- set-up --------------------------------------------------------------------------- */

/* The session token of an allowed /v1/sessions/start into session_auth. */
static int got_session(void *opaque) {
    (void)opaque;
    static char raw[32768];
    char token_raw[16384];
    if (issue(client_id, client_secret, token_raw, sizeof token_raw) != 200)
        return 0;
    json_t *j = json_loads(strstr(token_raw, "\r\n\r\n") + 4, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "access_token"));
    if (t)
        snprintf(bearer_auth, sizeof bearer_auth, "Authorization: Bearer %s\r\n", t);
    json_decref(j);
    if (t == NULL || session_start(bearer_auth, NULL, ALLOW_PROMPT, raw, sizeof raw) != 201)
        return 0;
    j = json_loads(strstr(raw, "\r\n\r\n") + 4, 0, NULL);
    t = json_string_value(json_object_get(j, "token"));
    if (t)
        snprintf(session_auth, sizeof session_auth, "Authorization: Bearer %s\r\n", t);
    json_decref(j);
    return t != NULL;
}

static int setup(void **state) {
    (void)state;
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    /* materialized before the edge asks: an id it found absent is cached so */
    itest_client_add(TENANT, "sessions:start", client_id, sizeof client_id, client_secret,
                     sizeof client_secret);
    itest_edge_start_on_stack(&edge, "edge-itest-lanes",
                              (const char *const[]){env_brokers, "GOV_LOOKUP_THREADS=1",
                                                    "GOV_LOOKUP_QUEUE=4",
                                                    "GOV_POLICY_LOOKUP_THREADS=1",
                                                    "GOV_POLICY_LOOKUP_QUEUE=4",
                                                    /* the flood shares the two cores with
                                                     * redis-server: its replies can lag by
                                                     * seconds (the machine, not the lanes) */
                                                    "GOV_LOOKUP_TIMEOUT=10s",
                                                    "GOV_REDIS_TIMEOUT=10s",
                                                    "GOV_CLIENT_CACHE_TTL=10s", NULL},
                              "itest-lanes-edge.log");
    if (itest_wait_for(got_session, NULL, WAIT_MS, 200) < 0) {
        fprintf(stderr, "no session token from the private edge (log var/test-logs/%s)\n",
                edge.log);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    identity_resume();   /* never left paused by a failed case */
    return itest_proc_stop(&edge);
}

/* --- H2: a flood of the token endpoint ------------------------------------------------ */

typedef struct flood {
    pthread_t thread;
    int id;
    int64_t until_us;
    const char *req;   /* the request to repeat; NULL: issuance, a random client id */
    long sent, refused_lane, unanswered;
    char sample[4096];   /* the first answer refused lookup_capacity */
} flood_t;

/* Counts st/buf into f. */
static void flood_count(flood_t *f, int st, const char *buf) {
    f->sent++;
    f->unanswered += st == 0;
    if (st == 503 && strstr(buf, "lookup_capacity") != NULL) {
        if (f->refused_lane++ == 0)
            snprintf(f->sample, sizeof f->sample, "%s", buf);
    }
}

static void *flood_main(void *arg) {
    flood_t *f = arg;
    char buf[4096], req[1024], pair[128], basic[256];
    const char *body = "grant_type=client_credentials";
    int fd = -1;
    /* The flood stands for outside clients; on the suite's two cores its
     * threads at full priority starved the stack's redis-server itself
     * (95 runnable threads, Redis's replies late past the edge's 2 s
     * timeout, "AOF fsync is taking too long" in its log) - the machine,
     * not the lanes under test.  At nice 19 they still keep the edge's
     * HTTP threads and the general lane saturated. */
    itest_thread_nice();
    while (gov_mono_micros() < f->until_us && f->req) {
        int st = itest_keepalive_request(&fd, edge.port, f->req, strlen(f->req), buf, sizeof buf);
        flood_count(f, st, buf);
    }
    while (gov_mono_micros() < f->until_us) {
        char uuid[GOV_UUID_STRLEN + 1];
        if (gov_uuid_v7(uuid) != GOV_OK)
            break;
        /* a random, well-formed, never registered client id */
        snprintf(pair, sizeof pair, "flood-%s:not-the-secret", uuid);
        EVP_EncodeBlock((unsigned char *)basic, (const unsigned char *)pair, (int)strlen(pair));
        int n = snprintf(req, sizeof req,
                         "POST /v1/tokens/issue HTTP/1.1\r\nHost: edge\r\n"
                         "Authorization: Basic %s\r\n"
                         "Content-Type: application/x-www-form-urlencoded\r\n"
                         "Content-Length: %zu\r\n\r\n%s", basic, strlen(body), body);
        int st = itest_keepalive_request(&fd, edge.port, req, (size_t)n, buf, sizeof buf);
        flood_count(f, st, buf);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static const char *probe_lane;
static int probe_ends_before;

/* One lookup on probe_lane (an unknown id's issuance on the general lane,
 * a check on the policy lane); 1 once the lane logged an episode's end. */
static int episode_ended(void *opaque) {
    (void)opaque;
    char raw[16384], field[64], uuid[GOV_UUID_STRLEN + 1], id[64];
    if (strcmp(probe_lane, "general") == 0) {
        if (gov_uuid_v7(uuid) != GOV_OK)
            return 0;
        snprintf(id, sizeof id, "probe-%s", uuid);
        issue(id, "not-the-secret", raw, sizeof raw);
    } else {
        authz(session_auth, NULL, raw, sizeof raw);
    }
    snprintf(field, sizeof field, "\"lane\":\"%s\"", probe_lane);
    return log_lines_with("lookup lane accepts again", field) > probe_ends_before;
}

/* Floods route with FLOOD_THREADS threads repeating req (NULL: issuance
 * with random client ids) for FLOOD_MS while this thread checks /v1/authz
 * in a loop: fails unless every check answers 200, the flood was refused
 * lookup_capacity (its lane was full meanwhile), the checks were never
 * refused, and lane logged one WARN per episode. */
static void flood_and_check(const char *route, const char *req, const char *lane) {
    char raw[16384], lane_field[64];
    snprintf(lane_field, sizeof lane_field, "\"lane\":\"%s\"", lane);
    /* the check passes before the flood */
    int st = authz(session_auth, NULL, raw, sizeof raw);
    if (st != 200)
        fail_msg("the check before the flood answered %d: %.600s", st, raw);
    double full_before = metric("edge_lookup_queue_full_total", route);
    double authz_full_before = metric("edge_lookup_queue_full_total", "authz");
    double authz_lookups_before = metric("edge_lookups_total", "authz");
    int warns_before = log_lines_with("lookup lane full", lane_field);

    static flood_t floods[FLOOD_THREADS];
    int64_t until = gov_mono_micros() + (int64_t)FLOOD_MS * 1000;
    for (int i = 0; i < FLOOD_THREADS; i++) {
        floods[i] = (flood_t){.id = i, .until_us = until, .req = req};
        assert_int_equal(pthread_create(&floods[i].thread, NULL, flood_main, &floods[i]), 0);
    }
    long checks = 0, passed = 0;
    char first_bad[700] = "";
    while (gov_mono_micros() < until) {
        st = authz(session_auth, NULL, raw, sizeof raw);
        checks++;
        if (st == 200)
            passed++;
        else if (first_bad[0] == '\0')
            snprintf(first_bad, sizeof first_bad, "%d %.600s", st, raw);
    }
    long sent = 0, refused = 0, unanswered = 0;
    const char *sample = NULL;
    for (int i = 0; i < FLOOD_THREADS; i++) {
        pthread_join(floods[i].thread, NULL);
        sent += floods[i].sent;
        refused += floods[i].refused_lane;
        unanswered += floods[i].unanswered;
        if (sample == NULL && floods[i].refused_lane > 0)
            sample = floods[i].sample;
    }
    fprintf(stderr, "flood: %ld %s requests, %ld refused lookup_capacity, %ld unanswered; "
            "checks: %ld, %ld answered 200\n", sent, route, refused, unanswered, checks, passed);
    if (passed != checks)
        fail_msg("%ld of %ld checks did not pass during the flood; first: %s", checks - passed,
                 checks, first_bad);
    assert_true(checks >= 5);
    /* the flood did fill the general lane meanwhile: the check was tested */
    double full_after = metric("edge_lookup_queue_full_total", route);
    if (full_after - full_before < 1 || refused < 1)
        fail_msg("the flood never filled the %s lane (%.0f refusals counted, %ld seen)", lane,
                 full_after - full_before, refused);
    assert_true(full_after - full_before >= (double)refused);
    /* the refusal: OAuth shape on the token endpoint, deny on a policy route */
    char retry[16];
    itest_header_of(sample, "Retry-After", retry, sizeof retry);
    assert_string_equal(retry, "1");
    if (req == NULL)
        assert_non_null(strstr(sample, "\"error\":\"lookup_capacity\""));
    else
        expect_deny(sample, 503, 503, "lookup_capacity", __LINE__);
    /* the policy lane refused nothing, and ran every check */
    assert_true(metric("edge_lookup_queue_full_total", "authz") == authz_full_before);
    assert_true(metric("edge_lookups_total", "authz") - authz_lookups_before >= (double)checks);
    /* one WARN per episode, not one per refusal */
    int warns = log_lines_with("lookup lane full", lane_field) - warns_before;
    if (warns < 1 || warns > FLOOD_MS / 1000 + 1)
        fail_msg("%d WARN lines for %.0f refusals (want 1 per episode)", warns,
                 full_after - full_before);
    /* and the episode's end, at the lane's first lookup a second after */
    probe_lane = lane;
    probe_ends_before = log_lines_with("lookup lane accepts again", lane_field);
    if (itest_wait_for(episode_ended, NULL, 15000, 200) < 0)
        fail_msg("the %s lane never logged the end of its episode", lane);
}

static void test_authz_survives_token_flood(void **state) {
    (void)state;
    flood_and_check("token_issue", NULL, "general");
}

static void test_authz_survives_session_flood(void **state) {
    (void)state;
    static char req[8192];
    const char *body = "{\"tenant\":\"" TENANT "\",\"session_id\":\"s-lanes\",\"user\":\"u-1\","
                       "\"role\":\"analyst\",\"prompt\":\"" DENY_PROMPT "\"}";
    snprintf(req, sizeof req, "POST /v1/sessions/start HTTP/1.1\r\nHost: edge\r\n"
             "%sContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s", bearer_auth, strlen(body), body);
    flood_and_check("session_start", req, "policy");
}

/* --- L4: an unknown client id is cached as absent ---------------------------------------- */

static void test_unknown_client_takes_one_lookup(void **state) {
    (void)state;
    char raw[16384], code[64], uuid[GOV_UUID_STRLEN + 1], id[64];
    assert_int_equal(gov_uuid_v7(uuid), GOV_OK);
    snprintf(id, sizeof id, "unknown-%s", uuid);
    double before = metric("edge_lookups_total", "token_issue");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(issue(id, "not-the-secret", raw, sizeof raw), 401);
        itest_error_code(raw, code, sizeof code);
        assert_string_equal(code, "invalid_client");
    }
    double after = metric("edge_lookups_total", "token_issue");
    if (after - before != 1)
        fail_msg("an unknown client id issued twice took %.0f lookups, want 1", after - before);
    /* a known client: the same, one lookup at most (cached since set-up) */
    before = after;
    for (int i = 0; i < 2; i++)
        assert_int_equal(issue(client_id, client_secret, raw, sizeof raw), 200);
    assert_true(metric("edge_lookups_total", "token_issue") - before <= 1);
}

/* --- REVIEW12 L2: a client registered while its id is asked about --------------------------- */

#define REG_THREADS 2
#define REG_SAMPLES 100000
/* tokens_api.c CLIENT_ABSENT_TTL_MAX_MS, and the slack of a shared machine */
#define ABSENT_MAX_MS 1000
#define ABSENT_SLACK_MS 500

typedef struct reg_sample {
    int64_t start_us, end_us;
    int status;
} reg_sample_t;

typedef struct reg_hammer {
    pthread_t thread;
    const char *req;
    size_t n;
    reg_sample_t s[REG_SAMPLES];
} reg_hammer_t;

static reg_hammer_t hammers[REG_THREADS];
static atomic_int reg_stop;
static atomic_long reg_401, reg_200;
static pid_t identity_stopped = -1;   /* the stack's gov-identity while paused */

static void *reg_hammer_main(void *arg) {
    reg_hammer_t *h = arg;
    char buf[16384];
    int fd = -1;
    itest_thread_nice();
    while (!atomic_load(&reg_stop) && h->n < REG_SAMPLES) {
        reg_sample_t *x = &h->s[h->n++];
        x->start_us = gov_mono_micros();
        x->status = itest_keepalive_request(&fd, edge.port, h->req, strlen(h->req), buf,
                                            sizeof buf);
        x->end_us = gov_mono_micros();
        if (x->status == 401)
            atomic_fetch_add(&reg_401, 1);
        else if (x->status == 200)
            atomic_fetch_add(&reg_200, 1);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int hammer_saw_401(void *opaque) {
    (void)opaque;
    return atomic_load(&reg_401) >= 1;
}

static int hammer_saw_200s(void *opaque) {
    (void)opaque;
    return atomic_load(&reg_200) >= 20;
}

/* The pid of the stack's gov-identity (var/run/gov-identity.pid, checked
 * against /proc/<pid>/cmdline). */
static pid_t stack_identity_pid(void) {
    size_t len = 0;
    char *text = itest_read_file(itest_path("var/run/gov-identity.pid"), &len);
    pid_t pid = (pid_t)atol(text);
    free(text);
    char path[64], cmd[512] = "";
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(cmd, 1, sizeof cmd - 1, f) : 0;
    if (f)
        fclose(f);
    cmd[n] = '\0';
    if (pid <= 0 || strstr(cmd, "gov-identity") == NULL)
        fail_msg("var/run/gov-identity.pid names no running gov-identity");
    return pid;
}

static void identity_resume(void) {
    if (identity_stopped > 0)
        kill(identity_stopped, SIGCONT);
    identity_stopped = -1;
}

/* Two threads issue tokens for a client id from before the stack's
 * gov-identity materialized it (paused meanwhile, so the edge sees the id
 * unknown first and caches that) until well after.  With client_cache_ttl
 * 10 s, no 401 may be answered to a request that started more than the
 * absence bound after the client is in Redis, nor to one that started
 * after a 200 was answered (an absence never overrides a presence). */
static void test_client_registered_during_issue(void **state) {
    (void)state;
    static char id[128], secret[128], req[1024];
    char basic[512];
    const char *body = "grant_type=client_credentials&scope=sessions:start";
    identity_stopped = stack_identity_pid();
    assert_int_equal(kill(identity_stopped, SIGSTOP), 0);
    itest_client_add_unmaterialized(TENANT, "sessions:start", id, sizeof id, secret,
                                    sizeof secret);
    itest_basic_auth(id, secret, basic);
    snprintf(req, sizeof req, "POST /v1/tokens/issue HTTP/1.1\r\nHost: edge\r\n"
             "Authorization: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
             "Content-Length: %zu\r\n\r\n%s", basic, strlen(body), body);
    atomic_store(&reg_stop, 0);
    atomic_store(&reg_401, 0);
    atomic_store(&reg_200, 0);
    for (int i = 0; i < REG_THREADS; i++) {
        hammers[i].req = req;
        hammers[i].n = 0;
        assert_int_equal(pthread_create(&hammers[i].thread, NULL, reg_hammer_main, &hammers[i]),
                         0);
    }
    /* the edge answered the id unknown (and cached that), then it registers */
    long waited = itest_wait_for(hammer_saw_401, NULL, 10000, 5);
    identity_resume();
    int64_t registered_us = 0;
    if (waited >= 0) {
        itest_client_wait_known(id);
        registered_us = gov_mono_micros();
        waited = itest_wait_for(hammer_saw_200s, NULL, 30000, 5);
    }
    atomic_store(&reg_stop, 1);
    for (int i = 0; i < REG_THREADS; i++)
        pthread_join(hammers[i].thread, NULL);
    if (registered_us == 0)
        fail_msg("the edge never answered the unregistered id 401");
    int64_t first_200_end = INT64_MAX, last_401_start = 0;
    long n = 0, late = 0, after_200 = 0;
    for (int i = 0; i < REG_THREADS; i++)
        for (size_t k = 0; k < hammers[i].n; k++) {
            const reg_sample_t *x = &hammers[i].s[k];
            n++;
            if (x->status == 200 && x->end_us < first_200_end)
                first_200_end = x->end_us;
            if (x->status == 401 && x->start_us > last_401_start)
                last_401_start = x->start_us;
        }
    for (int i = 0; i < REG_THREADS; i++)
        for (size_t k = 0; k < hammers[i].n; k++) {
            const reg_sample_t *x = &hammers[i].s[k];
            late += x->status == 401 &&
                    x->start_us > registered_us + (ABSENT_MAX_MS + ABSENT_SLACK_MS) * 1000;
            after_200 += x->status == 401 && x->start_us > first_200_end;
        }
    fprintf(stderr, "registration: %ld issuances, %ld 401, %ld 200; the last 401 started "
            "%+.0f ms from the registration in Redis, the first 200 ended %+.0f ms\n", n,
            atomic_load(&reg_401), atomic_load(&reg_200),
            (double)(last_401_start - registered_us) / 1000,
            first_200_end == INT64_MAX ? 0.0 : (double)(first_200_end - registered_us) / 1000);
    if (waited < 0)
        fail_msg("the registered client was never issued 20 tokens");
    if (late > 0)
        fail_msg("%ld issuances refused 401 more than %d ms after the client was in Redis",
                 late, ABSENT_MAX_MS + ABSENT_SLACK_MS);
    if (after_200 > 0)
        fail_msg("%ld issuances refused 401 after one was answered 200", after_200);
}

/* --- L1: duplicate headers on policy routes ---------------------------------------------- */

static void test_duplicate_headers_refused(void **state) {
    (void)state;
    char raw[16384], extra[4600];
    double decided = decisions_total();
    double checks = metric("edge_lookups_total", "authz");
    /* a second token after the valid one */
    snprintf(extra, sizeof extra, "%s", bearer_auth);
    expect_deny(raw, authz(session_auth, extra, raw, sizeof raw), 400, "duplicate_header",
                __LINE__);
    expect_deny(raw, authz(session_auth, "Content-Digest: sha-256=:AAAA:\r\n"
                           "content-digest: sha-256=:BBBB:\r\n", raw, sizeof raw),
                400, "duplicate_header", __LINE__);
    expect_deny(raw, authz(session_auth, "x-original-uri: /admin/users\r\n", raw, sizeof raw),
                400, "duplicate_header", __LINE__);
    expect_deny(raw, session_start(bearer_auth, session_auth, ALLOW_PROMPT, raw, sizeof raw),
                400, "duplicate_header", __LINE__);
    assert_non_null(strstr(raw, "Authorization"));
    /* refused before any lookup or decision */
    assert_true(decisions_total() == decided);
    assert_true(metric("edge_lookups_total", "authz") == checks);
    /* one of each still passes */
    assert_int_equal(authz(session_auth, NULL, raw, sizeof raw), 200);
}

/* --- L2: every refusal on a policy route says deny ---------------------------------------- */

/* A raw request to the private edge; its status, the answer in raw. */
static int raw_request(const char *req, char *raw, size_t size) {
    int fd = itest_raw_send(edge.port, req, strlen(req));
    return itest_raw_answer(fd, raw, size, 30000, NULL);
}

typedef struct burst_result {
    int refused, other;
} burst_result_t;

/* BURST requests on as many connections at once, then every answer: counts
 * the 503 lookup_capacity answers (each must say deny) into r. */
static void burst(const char *req, burst_result_t *r, int line) {
    int fds[BURST];
    for (int i = 0; i < BURST; i++)
        fds[i] = itest_raw_send(edge.port, req, strlen(req));
    for (int i = 0; i < BURST; i++) {
        static char raw[32768];
        int st = itest_raw_answer(fds[i], raw, sizeof raw, 30000, NULL);
        if (st == 503 && strstr(raw, "lookup_capacity")) {
            expect_deny(raw, st, 503, "lookup_capacity", line);
            char retry[16];
            itest_header_of(raw, "Retry-After", retry, sizeof retry);
            assert_string_equal(retry, "1");
            r->refused++;
        } else {
            r->other++;
        }
    }
}

static void test_policy_refusals_say_deny(void **state) {
    (void)state;
    char raw[16384], big[256], req[12000];
    /* 405 and 404 on the policy paths; not elsewhere */
    expect_deny(raw, itest_http_request(edge.port, "GET", "/v1/sessions/start", NULL, NULL, raw,
                                        sizeof raw), 405, "method_not_allowed", __LINE__);
    expect_deny(raw, itest_http_request(edge.port, "POST", "/v1/sessions/nowhere", NULL, "{}",
                                        raw, sizeof raw), 404, "not_found", __LINE__);
    char v[32];
    assert_int_equal(itest_http_request(edge.port, "GET", "/v1/nowhere", NULL, NULL, raw,
                                        sizeof raw), 404);
    itest_header_of(raw, "X-Policy-Decision", v, sizeof v);
    assert_string_equal(v, "");
    /* framing refused before the body, and 413 */
    expect_deny(raw, raw_request("POST /v1/sessions/start HTTP/1.1\r\nHost: edge\r\n"
                                 "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", raw,
                                 sizeof raw), 400, "invalid_framing", __LINE__);
    snprintf(big, sizeof big, "GET /v1/authz HTTP/1.1\r\nHost: edge\r\n"
             "Content-Length: 999999999\r\n\r\n");
    expect_deny(raw, raw_request(big, raw, sizeof raw), 413, "body_too_large", __LINE__);

    /* a full policy lane (1 thread, 4 queued): concurrent checks and
     * session starts are refused 503 lookup_capacity, deny */
    double full_before = metric("edge_lookup_queue_full_total", "authz");
    double sess_full_before = metric("edge_lookup_queue_full_total", "session_start");
    snprintf(req, sizeof req, "GET /v1/authz HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n"
             "%sX-Original-Method: GET\r\nX-Original-URI: /api/items\r\n\r\n", session_auth);
    burst_result_t r = {0, 0};
    for (int i = 0; i < 5 && r.refused == 0; i++)
        burst(req, &r, __LINE__);
    if (r.refused == 0)
        fail_msg("%d concurrent checks never filled the policy lane", 5 * BURST);
    assert_true(metric("edge_lookup_queue_full_total", "authz") - full_before >= r.refused);
    const char *body = "{\"tenant\":\"" TENANT "\",\"session_id\":\"s-lanes\",\"user\":\"u-1\","
                       "\"role\":\"analyst\",\"prompt\":\"" DENY_PROMPT "\"}";
    snprintf(req, sizeof req, "POST /v1/sessions/start HTTP/1.1\r\nHost: edge\r\n"
             "Connection: close\r\n%sContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s", bearer_auth, strlen(body), body);
    burst_result_t rs = {0, 0};
    for (int i = 0; i < 5 && rs.refused == 0; i++)
        burst(req, &rs, __LINE__);
    if (rs.refused == 0)
        fail_msg("%d concurrent session starts never filled the policy lane", 5 * BURST);
    assert_true(metric("edge_lookup_queue_full_total", "session_start") - sess_full_before >=
                rs.refused);
    assert_true(log_lines_with("lookup lane full", "\"lane\":\"policy\"") >= 1);
    /* the lane drains: a check passes again */
    assert_int_equal(authz(session_auth, NULL, raw, sizeof raw), 200);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authz_survives_token_flood),
        cmocka_unit_test(test_authz_survives_session_flood),
        cmocka_unit_test(test_unknown_client_takes_one_lookup),
        cmocka_unit_test(test_client_registered_during_issue),
        cmocka_unit_test(test_duplicate_headers_refused),
        cmocka_unit_test(test_policy_refusals_say_deny),
    };
    return cmocka_run_group_tests_name("edge-lanes", tests, setup, teardown);
}
