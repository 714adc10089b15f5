/* itest_util.c - see itest_util.h.  Real servers only. */
#include "itest_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_time.h"
#include "gov_util.h"

extern char **environ;

static char root_dir[PATH_MAX];

static const char *root(void) {
    if (root_dir[0] == 0) {
        const char *r = getenv("GOV_ROOT");
        if (r == NULL) {
            if (getcwd(root_dir, sizeof root_dir) == NULL)
                fail_msg("getcwd failed");
        } else {
            snprintf(root_dir, sizeof root_dir, "%s", r);
        }
    }
    return root_dir;
}

const char *itest_path(const char *rel) {
    static char buf[PATH_MAX * 2];
    snprintf(buf, sizeof buf, "%s/%s", root(), rel);
    return buf;
}

const char *itest_bin(const char *name) {
    static char buf[8][PATH_MAX];
    static int next;
    char *b = buf[next++ % 8];
    const char *dir = getenv("ITEST_BIN_DIR");
    snprintf(b, PATH_MAX, "%s/%s", dir && *dir ? dir : "build/release/bin", name);
    return b;
}

void itest_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

const char *itest_env(const char *name, const char *fallback) {
    static char val[1024];
    const char *e = getenv(name);
    if (e && *e)
        return e;
    FILE *f = fopen(itest_path("var/stack.env"), "r");
    if (f) {
        char line[1200];
        size_t nl = strlen(name);
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, name, nl) == 0 && line[nl] == '=') {
                char *v = line + nl + 1;
                v[strcspn(v, "\r\n")] = 0;
                if (v[0] == '"' || v[0] == '\'') { /* quoted */
                    size_t l = strlen(v);
                    if (l >= 2 && v[l - 1] == v[0]) {
                        v[l - 1] = 0;
                        v++;
                    }
                }
                snprintf(val, sizeof val, "%s", v);
                fclose(f);
                return val;
            }
        }
        fclose(f);
    }
    return fallback;
}

void itest_unique(const char *prefix, char *buf, size_t size) {
    unsigned char r[4];
    char hex[9];
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(r, 1, 4, f) != 4)
        fail_msg("cannot read /dev/urandom");
    fclose(f);
    gov_hex_encode(r, 4, hex);
    snprintf(buf, size, "%s-%d-%s", prefix, (int)getpid(), hex);
}

pid_t itest_spawn(const char *const *argv, const char *const *extra_env, const char *logname) {
    char logpath[PATH_MAX];
    mkdir(itest_path("var"), 0755);
    mkdir(itest_path("var/test-logs"), 0755);
    snprintf(logpath, sizeof logpath, "%s/var/test-logs/%s", root(), logname);
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        for (const char *const *e = extra_env; e && *e; e++)
            putenv((char *)*e);
        char exe[PATH_MAX];
        if (argv[0][0] == '/')
            snprintf(exe, sizeof exe, "%s", argv[0]);
        else
            snprintf(exe, sizeof exe, "%s/%s", root(), argv[0]);
        execv(exe, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    return pid;
}

int itest_stop(pid_t pid, int sig, int timeout_ms) {
    int status = 0;
    kill(pid, sig);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        itest_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int itest_run(const char *const *argv, const char *const *extra_env, char *out, size_t out_size) {
    int fds[2];
    if (pipe(fds) != 0)
        fail_msg("pipe failed");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        for (const char *const *e = extra_env; e && *e; e++)
            putenv((char *)*e);
        char exe[PATH_MAX];
        if (argv[0][0] == '/')
            snprintf(exe, sizeof exe, "%s", argv[0]);
        else if (strchr(argv[0], '/'))
            snprintf(exe, sizeof exe, "%s/%s", root(), argv[0]);
        else {
            execvp(argv[0], (char *const *)argv);
            _exit(127);
        }
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    char sink[4096];
    for (;;) {
        ssize_t n;
        if (out && used + 1 < out_size)
            n = read(fds[0], out + used, out_size - 1 - used);
        else
            n = read(fds[0], sink, sizeof sink);
        if (n <= 0)
            break;
        if (out && used + 1 < out_size)
            used += (size_t)n;
    }
    if (out)
        out[used] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* --- HTTP ------------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len;
} membuf_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    membuf_t *m = ud;
    size_t add = sz * n;
    char *nb = realloc(m->buf, m->len + add + 1);
    if (nb == NULL)
        return 0;
    memcpy(nb + m->len, p, add);
    m->buf = nb;
    m->len += add;
    m->buf[m->len] = 0;
    return add;
}

long itest_http_get(const char *url, char **body) {
    CURL *c = curl_easy_init();
    membuf_t m = {NULL, 0};
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (body)
        *body = m.buf ? m.buf : strdup("");
    else
        free(m.buf);
    return status;
}

int itest_wait_http(const char *url, long want, int timeout_ms) {
    int64_t end = gov_mono_micros() + (int64_t)timeout_ms * 1000;
    while (gov_mono_micros() < end) {
        if (itest_http_get(url, NULL) == want)
            return 1;
        itest_sleep_ms(100);
    }
    return 0;
}

double itest_metric(const char *text, const char *name, const char *const *filters) {
    double sum = 0;
    int found = 0;
    size_t nl = strlen(name);
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (line[0] != '#' && len > nl && strncmp(line, name, nl) == 0 &&
            (line[nl] == '{' || line[nl] == ' ')) {
            char buf[2048];
            snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf - 1 ? len : sizeof buf - 1), line);
            int match = 1;
            for (const char *const *f = filters; f && *f; f++)
                if (strstr(buf, *f) == NULL)
                    match = 0;
            if (match) {
                const char *sp = strrchr(buf, ' ');
                if (sp) {
                    sum += strtod(sp + 1, NULL);
                    found = 1;
                }
            }
        }
        line = end ? end + 1 : NULL;
    }
    return found ? sum : -1;
}

int itest_wait_caught_up(int port, int partitions, int timeout_ms) {
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    int64_t end = gov_mono_micros() + (int64_t)timeout_ms * 1000;
    while (gov_mono_micros() < end) {
        char *body = NULL;
        if (itest_http_get(url, &body) == 200) {
            int series = 0;
            double lag = 0;
            for (const char *p = strstr(body, "\nprocessor_consumer_lag{"); p;
                 p = strstr(p + 1, "\nprocessor_consumer_lag{")) {
                series++;
                lag += strtod(strchr(p + 1, ' ') + 1, NULL);
            }
            free(body);
            if (series >= partitions && lag == 0)
                return 1;
        } else {
            free(body);
        }
        itest_sleep_ms(100);
    }
    return 0;
}

int itest_promtool_check(const char *text) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/var/test-logs/metrics-%d.txt", root(), (int)getpid());
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' >/dev/null 2>&1", path);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' 2>&1 | head -20 >&2", path);
        if (system(cmd) != 0) {
        }
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

/* --- stack clients ----------------------------------------------------------- */

static gov_redis_t *g_redis;
static gov_kafka_producer_t *g_producer;
static gov_avro_registry_t *g_avro;

gov_redis_t *itest_redis(void) {
    if (g_redis == NULL) {
        char eb[256];
        if (gov_redis_new(itest_env("GOV_REDIS_HOST", "127.0.0.1"),
                          atoi(itest_env("GOV_REDIS_PORT", "6390")), 5000, &g_redis, eb,
                          sizeof eb) != GOV_OK)
            fail_msg("Redis of the stack is not reachable (%s); is `make run` up?", eb);
    }
    return g_redis;
}

gov_kafka_producer_t *itest_producer(void) {
    if (g_producer == NULL) {
        char eb[256];
        if (gov_kafka_producer_new(itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"), "itest",
                                   NULL, &g_producer, eb, sizeof eb) != GOV_OK)
            fail_msg("Kafka producer: %s", eb);
    }
    return g_producer;
}

const gov_avro_registry_t *itest_avro(void) {
    if (g_avro == NULL) {
        char eb[256];
        if (gov_avro_registry_new(&g_avro, eb, sizeof eb) != GOV_OK)
            fail_msg("schema registry: %s", eb);
    }
    return g_avro;
}

pid_t itest_private_redis(const char *name, int *port) {
    char dir[PATH_MAX], portbuf[16];
    snprintf(dir, sizeof dir, "%s/var/test-redis/%s", root(), name);
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0)
        fail_msg("cannot create %s", dir);
    for (int p = 16400 + (int)(getpid() % 500); p < 17400; p++) {
        snprintf(portbuf, sizeof portbuf, "%d", p);
        const char *argv[] = {"/usr/bin/redis-server", "--port", portbuf, "--bind", "127.0.0.1",
                              "--dir", dir, "--save", "", "--appendonly", "no", NULL};
        char logname[128];
        snprintf(logname, sizeof logname, "redis-%s.log", name);
        pid_t pid = itest_spawn(argv, NULL, logname);
        for (int i = 0; i < 50; i++) {
            itest_sleep_ms(50);
            gov_redis_t *r = NULL;
            char eb[128];
            int ok = gov_redis_new("127.0.0.1", p, 500, &r, eb, sizeof eb) == GOV_OK &&
                     gov_redis_ping(r) == GOV_OK;
            gov_redis_free(r);
            if (ok) {
                *port = p;
                return pid;
            }
            if (waitpid(pid, NULL, WNOHANG) == pid)
                break; /* port taken: try the next */
        }
        itest_stop(pid, SIGKILL, 1000);
    }
    fail_msg("could not start a private redis-server");
    return -1;
}

void itest_produce_raw(const char *topic, const char *key, const void *buf, size_t len) {
    char eb[256];
    if (gov_kafka_produce_sync(itest_producer(), topic, key, strlen(key), buf, len, NULL, 0,
                               15000, NULL, NULL, eb, sizeof eb) != GOV_OK)
        fail_msg("produce to %s: %s", topic, eb);
}

void itest_produce_event(const char *topic, const char *type, json_t *event) {
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[256];
    if (gov_avro_encode(itest_avro(), type, event, &buf, &len, eb, sizeof eb) != GOV_OK)
        fail_msg("encode %s: %s", type, eb);
    const char *key = json_string_value(json_object_get(event, "tenant"));
    if (key == NULL)
        key = json_string_value(json_object_get(event, "kid"));
    itest_produce_raw(topic, key ? key : "", buf, len);
    gov_free(buf);
}

static rd_kafka_t *admin_client(void) {
    char eb[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"),
                      eb, sizeof eb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, eb, sizeof eb);
    if (rk == NULL)
        fail_msg("admin client: %s", eb);
    return rk;
}

static void admin_wait(rd_kafka_queue_t *q, const char *what) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (ev == NULL)
        fail_msg("%s: no answer from Kafka", what);
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail_msg("%s: %s", what, rd_kafka_event_error_string(ev));
    rd_kafka_event_destroy(ev);
}

void itest_create_topic(const char *topic, int partitions) {
    char eb[256];
    rd_kafka_t *rk = admin_client();
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, eb, sizeof eb);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    admin_wait(q, "create topic");
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

void itest_delete_topic(const char *topic) {
    rd_kafka_t *rk = admin_client();
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    admin_wait(q, "delete topic");
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

int itest_consume_until(const char *topic, itest_msg_fn fn, void *opaque, int timeout_ms) {
    char group[128], eb[256];
    itest_unique("itest-reader", group, sizeof group);
    gov_kafka_consumer_t *c = NULL;
    const char *topics[] = {topic};
    if (gov_kafka_consumer_new(itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"), group,
                               "itest-reader", topics, 1, NULL, &c, eb, sizeof eb) != GOV_OK)
        fail_msg("consumer: %s", eb);
    int64_t end = gov_mono_micros() + (int64_t)timeout_ms * 1000;
    int accepted = 0;
    while (!accepted && gov_mono_micros() < end) {
        gov_kafka_msg_t *m = NULL;
        if (gov_kafka_consumer_poll(c, 200, &m) != GOV_OK)
            continue;
        accepted = fn(opaque, m);
        gov_kafka_msg_free(m);
    }
    gov_kafka_consumer_close(c);
    return accepted;
}

void itest_msg_header(const gov_kafka_msg_t *m, const char *name, char *buf, size_t size) {
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    buf[0] = 0;
    if (rd_kafka_message_headers(m->priv, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (rd_kafka_header_get_last(h, name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v)
        snprintf(buf, size, "%.*s", (int)len, (const char *)v);
}

static json_t *base_event(const char *tenant) {
    char id[37];
    gov_uuid_v7(id);
    return json_pack("{s:s, s:I, s:s}", "event_id", id, "occurred_at",
                     (json_int_t)gov_now_micros(), "tenant", tenant);
}

json_t *itest_audit_event(const char *tenant, const char *action) {
    json_t *e = base_event(tenant);
    json_object_set_new(e, "component", json_string("itest"));
    json_object_set_new(e, "actor", json_string("integration-test"));
    json_object_set_new(e, "action", json_string(action));
    json_object_set_new(e, "outcome", json_string("success"));
    json_object_set_new(e, "reason", json_null());
    json_object_set_new(e, "subject", json_string("subject-1"));
    json_object_set_new(e, "correlation_id", json_null());
    json_object_set_new(e, "details_json", json_string("{\"note\":\"caf\xc3\xa9\"}"));
    return e;
}

json_t *itest_decision_event(const char *tenant, const char *decision_id) {
    json_t *e = base_event(tenant);
    json_t *reasons = json_pack(
        "[{s:s, s:s, s:I, s:s, s:s}]", "rule_id", "pii.email", "severity", "high",
        "weight_micros", (json_int_t)350000, "message", "prompt contains an email address",
        "excerpt", "mail me at x@example.org");
    json_t *fields = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:n, s:s, s:s, s:I, s:o, s:s, s:s, s:s, s:s, s:I, s:s}",
        "decision_id", decision_id, "session_id", "sess-1", "user", "alice", "role", "analyst",
        "action", "search", "tool_name", "tool_category", "web", "decision", "review",
        "score_micros", (json_int_t)350000, "reasons", reasons, "constitution_hash",
        "ab12", "policy_id", "pack-1", "rulepack_version", "3", "input_digest",
        "0000000000000000000000000000000000000000000000000000000000000000", "evaluated_at",
        (json_int_t)gov_now_micros(), "edge_id", "itest");
    if (fields == NULL)
        fail_msg("decision event did not pack");
    json_object_update(e, fields);
    json_decref(fields);
    return e;
}

long long itest_wait_xlen(const char *key, long long want, int timeout_ms) {
    int64_t end = gov_mono_micros() + (int64_t)timeout_ms * 1000;
    long long n = -1;
    char eb[256];
    do {
        redisReply *r = NULL;
        if (gov_redis_commandf(itest_redis(), &r, eb, sizeof eb, "XLEN %s", key) == GOV_OK) {
            n = r->integer;
            freeReplyObject(r);
        }
        if (n >= want)
            break;
        itest_sleep_ms(50);
    } while (gov_mono_micros() < end);
    return n;
}
