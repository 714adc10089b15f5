/* itest_util.c - the helpers every integration test shares (itest_util.h).
 *
 * What: the stack's addresses, running the project's binaries (one-shot
 * tools with their output captured, private processors with their own
 * component name, group and port), Ed25519 keys, trust files and signed
 * bundles made with OpenSSL, and waits on observable outcomes (an HTTP
 * answer, a Redis key, a Kafka message) with a deadline.
 * How: real servers only - libcurl, hiredis through gov_redis, librdkafka
 * through gov_kafka and its admin API, fork/exec for binaries.
 * Not: a fixture of any one test; nothing here simulates a server, and a
 * helper that cannot do its work fails the test with what is missing.
 */
#include "itest_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_events.h"
#include "gov_file.h"
#include "gov_signature.h"
#include "gov_rulepack.h"
#include "gov_state.h"
#include "gov_state_identity.h"
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

const char *itest_log_path(const char *name) {
    /* Its own buffers: a caller may hold an itest_path() result meanwhile. */
    static char buf[PATH_MAX * 2];
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/var", root());
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/var/test-logs", root());
    mkdir(dir, 0755);
    snprintf(buf, sizeof buf, "%s/var/test-logs/%s", root(), name);
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
    /* its own path buffer: a caller may hold an itest_path() result */
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/var/stack.env", root());
    FILE *f = fopen(path, "r");
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

/* Every process itest_spawn started and itest_stop has not reaped: killed
 * when the test exits, however it exits (a failed assertion longjmps past
 * the test's own stop; cmocka then returns from main).  A test killed
 * outright (SIGKILL, a crash) cannot run this: its children die by
 * PR_SET_PDEATHSIG, set in the child before exec. */
#define SPAWNED_MAX 64
static pid_t spawned[SPAWNED_MAX];

static void spawned_forget(pid_t pid) {
    for (int i = 0; i < SPAWNED_MAX; i++)
        if (spawned[i] == pid)
            spawned[i] = 0;
}

/* atexit: SIGKILL what is still running.  Only un-reaped children are
 * signalled (waitpid WNOHANG answers 0 for them), so a pid reaped elsewhere
 * and reused by an unrelated process is never hit. */
static void spawned_kill_all(void) {
    for (int i = 0; i < SPAWNED_MAX; i++) {
        pid_t pid = spawned[i];
        spawned[i] = 0;
        if (pid > 0 && waitpid(pid, NULL, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
    }
}

static void spawned_add(pid_t pid) {
    static int registered;
    if (!registered && atexit(spawned_kill_all) == 0)
        registered = 1;
    for (int i = 0; i < SPAWNED_MAX; i++)
        if (spawned[i] == 0) {
            spawned[i] = pid;
            return;
        }
    /* full: the child still dies with the test by PR_SET_PDEATHSIG */
}

pid_t itest_spawn(const char *const *argv, const char *const *extra_env, const char *logname) {
    char logpath[PATH_MAX];
    snprintf(logpath, sizeof logpath, "%s", itest_log_path(logname));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        /* die with the test, even when it is killed outright; a test that
         * died before this line leaves no parent to wait for */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
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
    spawned_add(pid);
    return pid;
}

int itest_stop(pid_t pid, int sig, int timeout_ms) {
    int status = 0;
    kill(pid, sig);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            spawned_forget(pid);
            return status;
        }
        itest_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    spawned_forget(pid);
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

/* GET (json NULL) or a POST of json. */
static long http_do(const char *url, const char *json, char **body) {
    CURL *c = curl_easy_init();
    membuf_t m = {NULL, 0};
    long status = 0;
    struct curl_slist *h = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (json) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    }
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (body)
        *body = m.buf ? m.buf : strdup("");
    else
        free(m.buf);
    return status;
}

long itest_http_get(const char *url, char **body) {
    return http_do(url, NULL, body);
}

long itest_http_post_json(const char *url, const char *json, char **body) {
    return http_do(url, json, body);
}

long itest_wait_for(int (*ready)(void *opaque), void *opaque, int timeout_ms, int interval_ms) {
    int64_t start = gov_mono_micros(), end = start + (int64_t)timeout_ms * 1000;
    for (;;) {
        if (ready(opaque))
            return (long)((gov_mono_micros() - start) / 1000);
        if (gov_mono_micros() >= end)
            return -1;
        itest_sleep_ms(interval_ms);
    }
}

typedef struct http_want {
    const char *url;
    long status;
} http_want_t;

static int http_answers(void *opaque) {
    const http_want_t *w = opaque;
    return itest_http_get(w->url, NULL) == w->status;
}

int itest_wait_http(const char *url, long want, int timeout_ms) {
    http_want_t w = {url, want};
    return itest_wait_for(http_answers, &w, timeout_ms, 100) >= 0;
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

static rd_kafka_t *admin_client(void);

/* One series of processor_consumer_position: topic and partition from its
 * labels, the value after them.  0 when the line is not one. */
static int position_series(const char *line, char *topic, size_t tsize, int *partition,
                           double *value) {
    const char *t = strstr(line, "topic=\"");
    const char *p = strstr(line, "partition=\"");
    const char *end = strchr(line, '}');
    if (t == NULL || p == NULL || end == NULL || t > end || p > end)
        return 0;
    t += strlen("topic=\"");
    size_t n = strcspn(t, "\"");
    if (n == 0 || n >= tsize)
        return 0;
    snprintf(topic, tsize, "%.*s", (int)n, t);
    *partition = atoi(p + strlen("partition=\""));
    *value = strtod(end + 1, NULL);
    return 1;
}

int itest_wait_caught_up(int port, int partitions, int timeout_ms) {
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    struct {
        char topic[128];
        int partition;
        int64_t target;
    } seen[64];
    int nseen = 0;
    rd_kafka_t *rk = admin_client();
    int64_t end = gov_mono_micros() + (int64_t)timeout_ms * 1000;
    int done = 0;
    while (!done && gov_mono_micros() < end) {
        char *body = NULL;
        if (itest_http_get(url, &body) == 200) {
            int series = 0, reached = 0;
            for (const char *p = strstr(body, "\nprocessor_consumer_position{"); p;
                 p = strstr(p + 1, "\nprocessor_consumer_position{")) {
                char topic[128];
                int part = -1;
                double pos = -1;
                if (!position_series(p + 1, topic, sizeof topic, &part, &pos))
                    continue;
                int k = 0;
                while (k < nseen && !(seen[k].partition == part && strcmp(seen[k].topic, topic) == 0))
                    k++;
                if (k == nseen) {
                    /* its end now (at least its end when the wait began) */
                    int64_t lo = -1, hi = -1;
                    if (nseen == 64 ||
                        rd_kafka_query_watermark_offsets(rk, topic, part, &lo, &hi, 15000) !=
                            RD_KAFKA_RESP_ERR_NO_ERROR)
                        continue;
                    snprintf(seen[k].topic, sizeof seen[k].topic, "%s", topic);
                    seen[k].partition = part;
                    seen[k].target = hi;
                    nseen++;
                }
                series++;
                reached += (int64_t)pos >= seen[k].target;
            }
            done = series >= partitions && reached == series;
        }
        free(body);
        if (!done)
            itest_sleep_ms(100);
    }
    rd_kafka_destroy(rk);
    return done;
}

void itest_must_catch_up(const itest_proc_t *p, int partitions) {
    if (!itest_wait_caught_up(p->port, partitions, ITEST_HISTORY_MS))
        fail_msg("%s on port %d did not catch up with its topics (var/test-logs/%s)", p->bin,
                 p->port, p->log);
}

int itest_private_stop(itest_proc_t *p, pid_t redis_pid) {
    int rc = itest_proc_stop(p);
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    return rc;
}

int itest_promtool_check(const char *text) {
    char path[PATH_MAX], name[64];
    snprintf(name, sizeof name, "metrics-%d.txt", (int)getpid());
    snprintf(path, sizeof path, "%s", itest_log_path(name));
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

void itest_produce_event_at(const char *topic, const char *type, json_t *event,
                            int32_t *partition, int64_t *offset) {
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[256];
    if (gov_avro_encode(itest_avro(), type, event, &buf, &len, eb, sizeof eb) != GOV_OK)
        fail_msg("encode %s: %s", type, eb);
    const char *key = json_string_value(json_object_get(event, "tenant"));
    if (key == NULL)
        key = json_string_value(json_object_get(event, "kid"));
    if (key == NULL)
        key = "";
    if (gov_kafka_produce_sync(itest_producer(), topic, key, strlen(key), buf, len, NULL, 0,
                               15000, partition, offset, eb, sizeof eb) != GOV_OK)
        fail_msg("produce to %s: %s", topic, eb);
    gov_free(buf);
}

void itest_produce_event(const char *topic, const char *type, json_t *event) {
    itest_produce_event_at(topic, type, event, NULL, NULL);
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

int itest_topic_partitions(const char *topic) {
    rd_kafka_t *rk = admin_client();
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    if (rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    if (n <= 0)
        fail_msg("no metadata for %s", topic);
    return n;
}

int64_t itest_high_watermark(const char *topic, int32_t partition) {
    rd_kafka_t *rk = admin_client();
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, 10000);
    rd_kafka_destroy(rk);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail_msg("watermarks of %s/%d: %s", topic, (int)partition, rd_kafka_err2str(e));
    return hi;
}

int itest_topic_ends(const char *topic, int64_t *ends, int max) {
    int n = itest_topic_partitions(topic);
    if (n > max)
        fail_msg("%s has %d partitions (room for %d)", topic, n, max);
    rd_kafka_t *rk = admin_client();
    for (int32_t i = 0; i < n; i++) {
        int64_t lo = -1;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &ends[i], 15000);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_destroy(rk);
            fail_msg("watermarks of %s/%d: %s", topic, (int)i, rd_kafka_err2str(e));
        }
    }
    rd_kafka_destroy(rk);
    return n;
}

int64_t itest_topic_end(const char *topic) {
    int64_t ends[64], sum = 0;
    int n = itest_topic_ends(topic, ends, 64);
    for (int i = 0; i < n; i++)
        sum += ends[i];
    return sum;
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

int itest_scan_topic(const char *topic, const int64_t *from, itest_msg_fn fn, void *opaque,
                     int timeout_ms) {
    int64_t ends[64];
    int n = itest_topic_ends(topic, ends, 64), left = 0;
    char eb[256], group[128];
    unsigned char done[64] = {0};
    itest_unique("itest-scan", group, sizeof group);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[][2] = {{"bootstrap.servers", itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092")},
                           {"group.id", group},
                           {"enable.auto.commit", "false"},
                           {"auto.offset.reset", "earliest"},
                           {"enable.partition.eof", "true"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], eb, sizeof eb) != RD_KAFKA_CONF_OK)
            fail_msg("scan consumer %s: %s", kv[i][0], eb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, eb, sizeof eb);
    if (rk == NULL)
        fail_msg("scan consumer: %s", eb);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        if (ends[i] <= 0 || (from && from[i] >= ends[i])) {
            done[i] = 1;   /* nothing in its range */
            continue;
        }
        rd_kafka_topic_partition_list_add(parts, topic, i)->offset =
            from ? from[i] : RD_KAFKA_OFFSET_BEGINNING;
        left++;
    }
    if (left > 0 && rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail_msg("scan consumer: assign %s failed", topic);
    rd_kafka_topic_partition_list_destroy(parts);
    int64_t deadline = gov_mono_micros() + (int64_t)timeout_ms * 1000;
    while (left > 0 && gov_mono_micros() < deadline) {
        rd_kafka_message_t *km = rd_kafka_consumer_poll(rk, 200);
        if (km == NULL)
            continue;
        int p = km->partition;
        if (p >= 0 && p < n && !done[p]) {
            if (km->err == RD_KAFKA_RESP_ERR_NO_ERROR && km->offset < ends[p]) {
                gov_kafka_msg_t g = {topic, p, km->offset, km->key, km->key_len,
                                     km->payload, km->len, -1, km};
                (void)fn(opaque, &g);
            }
            if ((km->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && km->offset >= ends[p]) ||
                (km->err == RD_KAFKA_RESP_ERR_NO_ERROR && km->offset + 1 >= ends[p])) {
                done[p] = 1;
                left--;
            }
        }
        rd_kafka_message_destroy(km);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return left == 0;
}

typedef struct find_events {
    const char *type;
    itest_found_t *want;
    size_t n, found;
} find_events_t;

static int match_events(void *opaque, const gov_kafka_msg_t *m) {
    find_events_t *f = opaque;
    json_t *ev = NULL;
    const char *type = NULL;
    char eb[256];
    if (gov_avro_decode(itest_avro(), m->value, m->len, &ev, &type, eb, sizeof eb) != GOV_OK)
        return 0;
    const char *id = json_string_value(json_object_get(ev, "event_id"));
    for (size_t i = 0; id && strcmp(type, f->type) == 0 && i < f->n; i++) {
        itest_found_t *w = &f->want[i];
        if (w->found || strcmp(id, w->event_id) != 0)
            continue;
        w->found = 1;
        w->partition = m->partition;
        w->offset = m->offset;
        snprintf(w->key, sizeof w->key, "%.*s", (int)m->key_len, (const char *)m->key);
        w->event = json_incref(ev);
        f->found++;
    }
    json_decref(ev);
    return f->found == f->n;
}

int itest_find_events(const char *topic, const char *type, itest_found_t *want, size_t n,
                      int timeout_ms) {
    find_events_t f = {type, want, n, 0};
    return itest_consume_until(topic, match_events, &f, timeout_ms);
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

/* --- files ------------------------------------------------------------------ */

char *itest_read_file(const char *path, size_t *len) {
    const char *full = path[0] == '/' ? path : itest_path(path);
    FILE *f = fopen(full, "rb");
    if (f == NULL)
        fail_msg("cannot open %s: %s", full, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (nb == NULL)
                fail_msg("out of memory reading %s", full);
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

void itest_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len) {
        if (f)
            fclose(f);
        fail_msg("cannot write %s", path);
    }
    if (fclose(f) != 0)
        fail_msg("cannot write %s", path);
}

char *itest_replace_once(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    if (at == NULL || strstr(at + 1, from) != NULL)
        fail_msg("\"%s\" does not occur exactly once", from);
    size_t pre = (size_t)(at - text), fl = strlen(from), tl = strlen(to);
    char *out = malloc(strlen(text) - fl + tl + 1);
    memcpy(out, text, pre);
    memcpy(out + pre, to, tl);
    strcpy(out + pre + tl, at + fl);
    return out;
}

int itest_workdir_new(const char *prefix, char *dir, size_t size) {
    char name[96];
    itest_unique(prefix, name, sizeof name);
    snprintf(dir, size, "%s", itest_log_path(name));
    if (mkdir(dir, 0700) != 0) {
        fprintf(stderr, "cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

void itest_workdir_remove(const char *dir) {
    if (dir[0] == 0 || getenv("ITEST_KEEP") != NULL)
        return;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* --- running a command line tool ------------------------------------------- */

int itest_run_capture(const char *const *argv, const char *const *extra_env, char *out,
                      size_t out_size, char *err, size_t err_size) {
    /* itest_run captures stdout; the child inherits our fd 2, pointed at a
     * file for the duration. */
    char errpath[PATH_MAX], name[64];
    snprintf(name, sizeof name, "stderr-%d.txt", (int)getpid());
    snprintf(errpath, sizeof errpath, "%s", itest_log_path(name));
    fflush(stderr);
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        fail_msg("cannot create %s", errpath);
    int saved = dup(2);
    dup2(fd, 2);
    close(fd);
    int rc = itest_run(argv, extra_env, out, out_size);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(errpath, "rb");
    size_t n = f ? fread(err, 1, err_size - 1, f) : 0;
    err[n] = 0;
    if (f)
        fclose(f);
    unlink(errpath);
    if (strstr(err, "Sanitizer") || strstr(err, "runtime error:"))
        fail_msg("%s: sanitizer report:\n%s", argv[0], err);
    if (getenv("ITEST_VERBOSE"))
        fprintf(stderr, "$ %s %s ... -> %d\n%s%s", argv[0], argv[1] ? argv[1] : "", rc,
                out ? out : "", err);
    return rc;
}

/* --- the stack's identity trust (docs/contracts.md "Signed identity events") --- */

/* "NAME=<value of var/stack.env>" in buf, or NULL when the stack has none. */
static const char *stack_env_entry(const char *name, char *buf, size_t size) {
    const char *v = itest_env(name, NULL);
    if (v == NULL || v[0] == 0)
        return NULL;
    snprintf(buf, size, "%s=%s", name, v);
    return buf;
}

json_t *itest_identity_signed(json_t *ev, const char *type) {
    static gov_signer_t *op;
    static char op_id[GOV_SIGNER_ID_MAX + 1];
    char eb[512] = "", path[1024];
    gov_reason_t why = GOV_REASON_NONE;
    if (ev == NULL)
        fail_msg("no %s to sign", type);
    if (op == NULL) {
        gov_trust_t *t = NULL;
        snprintf(path, sizeof path, "%s", itest_env("GOV_IDENTITY_OPERATOR_KEY_FILE", ""));
        if (gov_events_operator_key_load(path, &op, &why, eb, sizeof eb) != GOV_OK)
            fail_msg("the stack's identity operator key (%s): %s: %s", path,
                     gov_reason_code(why), eb);
        snprintf(path, sizeof path, "%s", itest_env("GOV_IDENTITY_TRUST_FILE", ""));
        if (gov_file_trust_load(path, &t, eb, sizeof eb) != GOV_OK ||
            gov_trust_signer_of(t, gov_signer_public_key(op), op_id) != 0)
            fail_msg("the stack's identity trust (%s) does not list its operator key %s", path,
                     eb);
        gov_trust_free(t);
    }
    gov_events_signer_t s = {.signer_id = op_id, .signer = op};
    if (gov_events_sign(ev, type, &s, 1, eb, sizeof eb) != GOV_OK)
        fail_msg("signing a %s: %s", type, eb);
    return ev;
}

int itest_govctl(const char *const *extra_env, const char *const *args, char *out, size_t out_size,
                 char *err, size_t err_size) {
    /* govctl signs identity events as the stack's identity operator unless
     * the caller's environment says otherwise (extra_env comes last) */
    static char trust[1100], key[1100];
    const char *env[48];
    size_t ne = 0;
    if (stack_env_entry("GOV_IDENTITY_TRUST_FILE", trust, sizeof trust))
        env[ne++] = trust;
    if (stack_env_entry("GOV_IDENTITY_OPERATOR_KEY_FILE", key, sizeof key))
        env[ne++] = key;
    for (const char *const *e = extra_env; e && *e; e++) {
        if (ne + 1 >= sizeof env / sizeof env[0])
            fail_msg("too many environment entries for govctl");
        env[ne++] = *e;
    }
    env[ne] = NULL;
    extra_env = env;
    const char *argv[32];
    size_t n = 0;
    argv[n++] = itest_bin("govctl");
    for (size_t i = 0; args[i]; i++) {
        if (n + 1 >= sizeof argv / sizeof argv[0])
            fail_msg("too many arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    return itest_run_capture(argv, extra_env, out, out_size, err, err_size);
}

void itest_expect_usage(int rc, const char *err, int line) {
    if (rc != 2 || strstr(err, "govctl: usage: ") == NULL)
        fail_msg("line %d: want exit 2 with a usage line; got exit %d, stderr:\n%s", line, rc,
                 err);
}

void itest_expect_ok(int rc, const char *err, int line) {
    if (rc != 0)
        fail_msg("line %d: want exit 0; got %d, stderr:\n%s", line, rc, err);
}

/* --- Ed25519 keys, trust files, signed bundles ----------------------------- */

EVP_PKEY *itest_ed25519_new(void) {
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (kc == NULL || EVP_PKEY_keygen_init(kc) != 1 || EVP_PKEY_keygen(kc, &k) != 1)
        fail_msg("Ed25519 key generation failed");
    EVP_PKEY_CTX_free(kc);
    return k;
}

char *itest_public_pem(EVP_PKEY *k) {
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio_PUBKEY(bio, k) != 1)
        fail_msg("cannot write a public key PEM");
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(bio);
    return out;
}

void itest_sign_hex(EVP_PKEY *k, const char *msg, char out[129]) {
    unsigned char sig[64];
    size_t sl = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) != 1 ||
        EVP_DigestSign(ctx, sig, &sl, (const unsigned char *)msg, strlen(msg)) != 1 || sl != 64)
        fail_msg("Ed25519 signing failed");
    EVP_MD_CTX_free(ctx);
    gov_hex_encode(sig, 64, out);
}

/* Writes {"signers": {ids[i]: pems[i]}} plus `binding` (stolen) to path:
 * the older {"threshold"} or the per-tenant {"tenants"}. */
static void write_trust_file(const char *path, size_t n, const char *const *ids,
                             const char *const *pems, const char *member, json_t *binding) {
    json_t *map = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(map, ids[i], json_string(pems[i]));
    json_t *t = json_pack("{s:o, s:o}", "signers", map, member, binding);
    if (t == NULL || json_dump_file(t, path, JSON_INDENT(2)) != 0)
        fail_msg("cannot write %s", path);
    json_decref(t);
}

void itest_write_trust_pems(const char *path, int threshold, size_t n, const char *const *ids,
                            const char *const *pems) {
    write_trust_file(path, n, ids, pems, "threshold", json_integer(threshold));
}

void itest_write_trust_tenant_pems(const char *path, const char *tenant, int threshold,
                                   int unbound, size_t n, const char *const *ids,
                                   const char *const *pems) {
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_string(ids[i]));
    json_t *tenants = json_pack("{s:{s:i, s:o, s:b}}", tenant, "threshold", threshold, "signers",
                                list, "unbound_documents", unbound);
    write_trust_file(path, n, ids, pems, "tenants", tenants);
}

void itest_write_trust(const char *path, int threshold, size_t n, const char *const *ids,
                       EVP_PKEY *const *keys) {
    char *pems[8] = {NULL};
    if (n > sizeof pems / sizeof pems[0])
        fail_msg("too many signers for a test trust file");
    for (size_t i = 0; i < n; i++)
        pems[i] = itest_public_pem(keys[i]);
    itest_write_trust_pems(path, threshold, n, ids, (const char *const *)pems);
    for (size_t i = 0; i < n; i++)
        free(pems[i]);
}

void itest_checksum(const char *doc, const char *canon, const char *alg, char out[129]) {
    json_t *d = NULL;
    char eb[200];
    gov_canon_t kind;
    if (gov_canon_from_name(canon, &kind) != 0)
        fail_msg("unknown canonicalization %s", canon);
    if (gov_canon_parse(doc, strlen(doc), &d, NULL, eb, sizeof eb) != GOV_OK)
        fail_msg("test document does not parse: %s", eb);
    if (gov_canon_checksum(d, kind, alg, out, NULL, eb, sizeof eb) != GOV_OK)
        fail_msg("checksum: %s", eb);
    json_decref(d);
}

json_t *itest_bundle_event(const char *tenant, const char *doc, const char *canon, const char *alg,
                           const char *checksum, EVP_PKEY *const *keys, const char *const *ids,
                           const int *who) {
    char cs[129];
    if (checksum)
        snprintf(cs, sizeof cs, "%s", checksum);
    else
        itest_checksum(doc, canon, alg, cs);
    json_t *sigs = json_array();
    for (size_t i = 0; who[i] >= 0; i++) {
        char sig[129];
        itest_sign_hex(keys[who[i]], cs, sig);
        json_array_append_new(sigs, json_pack("{s:s, s:s, s:s}", "signer_id", ids[who[i]],
                                              "algorithm", "ed25519", "signature", sig));
    }
    char id[GOV_UUID_STRLEN + 1];
    gov_uuid_v7(id);
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:n}", "event_id", id,
                     "occurred_at", (json_int_t)gov_now_micros(), "tenant", tenant,
                     "document_json", doc, "canonicalization", canon, "hash_alg", alg,
                     "checksum", cs, "signatures", sigs, "source", "itest", "etag");
}

void itest_sign_rulepack_event(json_t *ev, EVP_PKEY *const *keys, const char *const *ids,
                               const int *who) {
    json_t *text = json_object_get(ev, "rulepack_json"), *sigs = json_array();
    gov_rulepack_t *pack = NULL;
    char hex[GOV_SHA256_HEXLEN + 1];
    if (gov_rulepack_parse(json_string_value(text), json_string_length(text), NULL, &pack, NULL,
                           NULL, 0) == GOV_OK &&
        gov_rulepack_digest_hex(pack, hex) == GOV_OK) {
        for (size_t i = 0; who[i] >= 0; i++) {
            char sig[129];
            itest_sign_hex(keys[who[i]], hex, sig);
            json_array_append_new(sigs, json_pack("{s:s, s:s, s:s}", "signer_id", ids[who[i]],
                                                  "algorithm", "ed25519", "signature", sig));
        }
    }
    gov_rulepack_free(pack);
    json_object_set_new(ev, "signatures", sigs);
}

/* --- private processes ------------------------------------------------------ */

int itest_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0)
        fail_msg("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

/* The one spawn-environment builder of a private process: its port
 * (GOV_PORT for gov-edge, GOV_ADMIN_PORT otherwise), the stack's identity
 * trust file (every gov-identity and gov-edge needs one; the stack's,
 * unless extra_env names another: it comes later, and wins), for a
 * processor its component name and consumer group, then extra_env.  Starts
 * it and returns without waiting: the caller waits on what "started" means
 * for it. */
static void proc_spawn(itest_proc_t *p, const char *bin, const char *component,
                       const char *const *extra_env, const char *logname) {
    char env_port[48], env_component[128], env_group[160], env_idtrust[1100];
    const char *env[40];
    size_t n = 0;
    snprintf(p->bin, sizeof p->bin, "%s", bin);
    snprintf(p->log, sizeof p->log, "%s", logname);
    if (p->port == 0)
        p->port = itest_free_port();
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d", p->port);
    snprintf(env_port, sizeof env_port, "%s=%d",
             strcmp(bin, "gov-edge") == 0 ? "GOV_PORT" : "GOV_ADMIN_PORT", p->port);
    env[n++] = env_port;
    if (stack_env_entry("GOV_IDENTITY_TRUST_FILE", env_idtrust, sizeof env_idtrust))
        env[n++] = env_idtrust;
    if (component != NULL) {
        snprintf(env_component, sizeof env_component, "GOV_COMPONENT_NAME=%s", component);
        if (p->group[0] == 0)
            itest_unique(component, p->group, sizeof p->group);
        snprintf(env_group, sizeof env_group, "GOV_KAFKA_GROUP=%s", p->group);
        env[n++] = env_component;
        env[n++] = env_group;
    }
    for (const char *const *e = extra_env; e && *e; e++) {
        if (n + 1 >= sizeof env / sizeof env[0])
            fail_msg("too many environment entries for %s", bin);
        env[n++] = *e;
    }
    env[n] = NULL;
    const char *argv[] = {itest_bin(bin), NULL};
    p->pid = itest_spawn(argv, env, logname);
}

void itest_proc_spawn(itest_proc_t *p, const char *bin, const char *component,
                      const char *const *extra_env, const char *logname) {
    proc_spawn(p, bin, component, extra_env, logname);
}

void itest_proc_start(itest_proc_t *p, const char *bin, const char *component,
                      const char *const *extra_env, const char *logname) {
    proc_spawn(p, bin, component, extra_env, logname);
    char url[96];
    snprintf(url, sizeof url, "%s/readyz", p->url);
    if (!itest_wait_http(url, 200, 30000))
        fail_msg("%s did not become ready on port %d (var/test-logs/%s)", bin, p->port, logname);
}

double itest_edge_refused(const itest_proc_t *edge, const char *tenant, const char *kind,
                          const char *reason) {
    char f1[128], f2[64], f3[96];
    snprintf(f1, sizeof f1, "tenant=\"%s\"", tenant);
    snprintf(f2, sizeof f2, "kind=\"%s\"", kind);
    snprintf(f3, sizeof f3, "reason=\"%s\"", reason);
    const char *flt[] = {f1, f2, f3, NULL};
    return itest_proc_metric(edge, "edge_state_rejected_total", flt);
}

int itest_raw_post(int port, const char *path, const char *ctype, const char *authz,
                   const char *body, char *raw, size_t raw_size) {
    size_t n = strlen(body) + (authz ? strlen(authz) : 0) + strlen(path) + strlen(ctype) + 256;
    char *req = malloc(n);
    if (req == NULL)
        fail_msg("out of memory");
    int len = snprintf(req, n,
                       "POST %s HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n%s%s%s"
                       "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n%s",
                       path, authz ? "Authorization: " : "", authz ? authz : "",
                       authz ? "\r\n" : "", ctype, strlen(body), body);
    int fd = itest_raw_send(port, req, (size_t)len);
    free(req);
    return itest_raw_answer(fd, raw, raw_size, 30000, NULL);
}

static const itest_proc_t *edge_probe;

/* The probed edge serves the JWKS (with a key) and the demo tenant. */
static int edge_has_state(void *opaque) {
    (void)opaque;
    char *body = NULL;
    int ok = itest_proc_get(edge_probe, "/.well-known/jwks.json", &body) == 200 && body &&
             strstr(body, "\"kid\"") != NULL;
    free(body);
    body = NULL;
    ok = ok && itest_proc_get(edge_probe, "/v1/constitution/demo", &body) == 200;
    free(body);
    return ok;
}

void itest_edge_start_on_stack(itest_proc_t *c, const char *prefix, const char *const *extra,
                               const char *logname) {
    char env_id[128], host[96], port[48], trust[8300], pack[8300], keys[8300], issuer[1100],
        audience[1100];
    memset(c, 0, sizeof *c);
    itest_unique(prefix, c->id, sizeof c->id);
    snprintf(env_id, sizeof env_id, "GOV_EDGE_ID=%s", c->id);
    snprintf(host, sizeof host, "GOV_REDIS_HOST=%s", itest_env("GOV_REDIS_HOST", "127.0.0.1"));
    snprintf(port, sizeof port, "GOV_REDIS_PORT=%s", itest_env("GOV_REDIS_PORT", "6379"));
    snprintf(trust, sizeof trust, "GOV_TRUST_FILE=%s", itest_path("var/demo/trust.json"));
    snprintf(pack, sizeof pack, "GOV_RULEPACK_TRUST_FILE=%s",
             itest_path("var/demo/rulepack-trust.json"));
    snprintf(keys, sizeof keys, "GOV_SIGNER_KEY_DIR=%s",
             itest_env("GOV_SIGNER_KEY_DIR", itest_path("var/keys")));
    const char *env[20] = {host, port, trust, pack, keys, env_id, "GOV_IDENTITY_REFRESH=200ms"};
    size_t n = 7;
    /* the stack's issuer and audience: it signs with the stack's keys, and
     * verifies the tokens the stack's edge issued */
    if (stack_env_entry("GOV_TOKEN_ISSUER", issuer, sizeof issuer))
        env[n++] = issuer;
    if (stack_env_entry("GOV_TOKEN_AUDIENCE", audience, sizeof audience))
        env[n++] = audience;
    for (size_t i = 0; extra && extra[i]; i++) {
        if (n + 1 >= sizeof env / sizeof env[0])
            fail_msg("too many environment entries for %s", c->id);
        env[n++] = extra[i];
    }
    env[n] = NULL;
    /* the port and the stack's identity trust come from the one builder */
    proc_spawn(c, "gov-edge", NULL, env, logname);
    char url[96];
    snprintf(url, sizeof url, "%s/healthz", c->url);
    if (!itest_wait_http(url, 200, 30000))
        fail_msg("%s did not start (log var/test-logs/%s)", c->id, logname);
    edge_probe = c;
    if (itest_wait_for(edge_has_state, NULL, 60000, 100) < 0)
        fail_msg("%s did not load the keys and the tenant (log var/test-logs/%s)", c->id, logname);
}

int itest_edge_degraded(const itest_proc_t *edge, const char *tenant) {
    char *body = NULL, name[96];
    long st = itest_proc_get(edge, "/readyz", &body);
    json_t *j = json_loads(body ? body : "", 0, NULL);
    free(body);
    snprintf(name, sizeof name, "tenant:%s", tenant);
    int found = itest_component_is(j, name, "degraded");
    const char *top = json_string_value(json_object_get(j, "status"));
    int degraded = top != NULL && strcmp(top, "degraded") == 0;
    json_decref(j);
    return st == 200 && found && degraded;
}

int itest_proc_stop(itest_proc_t *p) {
    if (p->pid <= 0)
        return 0;
    int st = itest_stop(p->pid, SIGTERM, 15000);
    p->pid = -1;
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "%s did not exit cleanly on SIGTERM (status %d); see var/test-logs/%s\n",
                p->bin, st, p->log);
        return -1;
    }
    return 0;
}

long itest_proc_get(const itest_proc_t *p, const char *path, char **body) {
    char url[256];
    snprintf(url, sizeof url, "%s%s", p->url, path);
    return itest_http_get(url, body);
}

double itest_proc_metric(const itest_proc_t *p, const char *name, const char *const *filters) {
    char *body = NULL;
    double v = -1;
    if (itest_proc_get(p, "/metrics", &body) == 200)
        v = itest_metric(body, name, filters);
    free(body);
    return v;
}

/* --- waiting on outcomes ---------------------------------------------------- */

typedef struct offset_want {
    gov_redis_t *r;
    const char *key;
    int64_t offset;
} offset_want_t;

static int offset_reached(void *opaque) {
    offset_want_t *w = opaque;
    redisReply *rep = NULL;
    char eb[200];
    int done = 0;
    if (gov_redis_commandf(w->r, &rep, eb, sizeof eb, "GET %s", w->key) == GOV_OK) {
        done = rep->type == REDIS_REPLY_STRING && atoll(rep->str) >= w->offset;
        freeReplyObject(rep);
    }
    return done;
}

int itest_wait_offset(gov_redis_t *r, const char *processor, const char *topic, int32_t partition,
                      int64_t offset, int timeout_ms) {
    char key[256];
    snprintf(key, sizeof key, "gov:offsets:%s:%s:%d", processor, topic, (int)partition);
    offset_want_t w = {r, key, offset};
    return itest_wait_for(offset_reached, &w, timeout_ms, 50) >= 0;
}

typedef struct audit_find {
    const char *tenant, *component, *action, *correlation_id;
    json_t *found;
} audit_find_t;

static int str_is(const json_t *o, const char *member, const char *want) {
    const char *v = json_string_value(json_object_get(o, member));
    return v != NULL && strcmp(v, want) == 0;
}

static int match_audit(void *opaque, const gov_kafka_msg_t *m) {
    audit_find_t *f = opaque;
    if (m->key_len != strlen(f->tenant) || memcmp(m->key, f->tenant, m->key_len) != 0)
        return 0;
    json_t *ev = NULL;
    const char *type = NULL;
    char eb[200];
    if (gov_avro_decode(itest_avro(), m->value, m->len, &ev, &type, eb, sizeof eb) != GOV_OK)
        return 0; /* poison tests share the topic */
    if (strcmp(type, "AuditEvent") == 0 && str_is(ev, "component", f->component) &&
        (f->action == NULL || str_is(ev, "action", f->action)) &&
        (f->correlation_id == NULL || str_is(ev, "correlation_id", f->correlation_id))) {
        f->found = ev;
        return 1;
    }
    json_decref(ev);
    return 0;
}

json_t *itest_find_audit(const char *tenant, const char *component, const char *action,
                         const char *correlation_id, int timeout_ms) {
    audit_find_t f = {tenant, component, action, correlation_id, NULL};
    itest_consume_until("identity.audit", match_audit, &f, timeout_ms);
    return f.found;
}

/* --- raw HTTP --------------------------------------------------------------------- */

int itest_raw_send(int port, const void *data, size_t len) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        fail_msg("socket: %s", strerror(errno));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fail_msg("connect to port %d: %s", port, strerror(errno));
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, (const char *)data + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may refuse before reading it all */
        off += (size_t)n;
    }
    return fd;
}

int itest_raw_answer(int fd, char *buf, size_t size, int timeout_ms, long *waited_ms) {
    int64_t t0 = gov_mono_micros(), deadline = t0 + (int64_t)timeout_ms * 1000;
    size_t got = 0;
    long first = -1;
    for (;;) {
        int64_t left = (deadline - gov_mono_micros()) / 1000;
        if (left <= 0)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)left) <= 0)
            break;
        char tmp[4096];
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0)
            break; /* closed (or reset) */
        if (first < 0)
            first = (long)((gov_mono_micros() - t0) / 1000);
        size_t take = (size_t)n < size - 1 - got ? (size_t)n : size - 1 - got;
        memcpy(buf + got, tmp, take);
        got += take;
    }
    buf[got] = '\0';
    close(fd);
    if (waited_ms)
        *waited_ms = first;
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    return status;
}

int itest_http_post_raw(int port, const char *path, const char *ctype, const char *authz,
                        const char *body, json_t **json, char *raw, size_t raw_size) {
    int status = itest_raw_post(port, path, ctype, authz, body, raw, raw_size);
    if (json) {
        const char *b = strstr(raw, "\r\n\r\n");
        *json = b ? json_loads(b + 4, 0, NULL) : NULL;
    }
    return status;
}

void itest_basic_auth(const char *id, const char *secret, char out[512]) {
    char pair[301];
    if ((size_t)snprintf(pair, sizeof pair, "%s:%s", id, secret) >= sizeof pair)
        fail_msg("Basic credentials longer than %zu bytes", sizeof pair - 1);
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)pair, (int)strlen(pair));
}

int itest_token_verify(int port, const char *tok, char code[64], json_t **answer) {
    char body[8192], raw[16384];
    if ((size_t)snprintf(body, sizeof body, "{\"token\":\"%s\"}", tok) >= sizeof body)
        fail_msg("a token of %zu bytes does not fit the verify request", strlen(tok));
    json_t *j = NULL;
    int st = itest_http_post_raw(port, "/v1/tokens/verify", "application/json", NULL, body, &j,
                                 raw, sizeof raw);
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    snprintf(code, 64, "%s", c ? c : "");
    if (st == 200 && !json_is_true(json_object_get(j, "active")))
        fail_msg("verify answered 200 without \"active\": true: %s", raw);
    if (answer)
        *answer = j;
    else
        json_decref(j);
    return st;
}

void itest_expect_verify(const itest_proc_t *p, const char *tok, int want, const char *code,
                         int line) {
    char got[64];
    int st = itest_token_verify(p->port, tok, got, NULL);
    if (st != want || (code && strcmp(got, code) != 0))
        fail_msg("line %d: verify on %s: want %d %s, got %d %s", line, p->log, want,
                 code ? code : "", st, got);
}

/* --- a private Redis that restarts slowly ------------------------------------------- */

/* Runs one command (redisCommand format, one %s argument) on the Redis at port. */
static void command_on(int port, const char *fmt, const char *arg) {
    char eb[256];
    gov_redis_t *r = NULL;
    if (gov_redis_new("127.0.0.1", port, 10000, &r, eb, sizeof eb) != GOV_OK ||
        gov_redis_commandf(r, NULL, eb, sizeof eb, fmt, arg) != GOV_OK)
        fail_msg("redis on port %d: %s", port, eb);
    gov_redis_free(r);
}

void itest_redis_fill_and_save(int port) {
    char script[160];
    snprintf(script, sizeof script,
             "for i=1,%d do redis.call('SET','itest:fill:'..i,'x') end return 1", ITEST_FILL_KEYS);
    command_on(port, "EVAL %s 0", script);
    command_on(port, "SAVE", NULL);
}

void itest_redis_unfill(int port) {
    char script[128];
    snprintf(script, sizeof script, "for i=1,%d do redis.call('DEL','itest:fill:'..i) end return 1",
             ITEST_FILL_KEYS);
    command_on(port, "EVAL %s 0", script);
}

static int redis_loading(void *opaque) {
    char eb[256];
    gov_redis_t *r = NULL;
    int loading = 0;
    if (gov_redis_new("127.0.0.1", *(int *)opaque, 500, &r, eb, sizeof eb) == GOV_OK) {
        redisReply *rep = NULL;
        /* LOADING is "cannot serve now", like an outage. */
        loading = gov_redis_commandf(r, &rep, eb, sizeof eb, "PING") == GOV_ERR_UNAVAILABLE &&
                  strstr(eb, "LOADING") != NULL;
        if (rep)
            freeReplyObject(rep);
    }
    gov_redis_free(r);
    return loading;
}

pid_t itest_private_redis_restart_loading(const char *name, int port) {
    char dir[PATH_MAX], portbuf[16], logname[128];
    snprintf(dir, sizeof dir, "%s/var/test-redis/%s", root(), name);
    snprintf(portbuf, sizeof portbuf, "%d", port);
    snprintf(logname, sizeof logname, "redis-%s.log", name);
    /* 150 us a key, events served every KiB read: LOADING for ~3 s. */
    const char *argv[] = {"/usr/bin/redis-server", "--port", portbuf, "--bind", "127.0.0.1",
                          "--dir", dir, "--save", "", "--appendonly", "no",
                          "--key-load-delay", "150", "--loading-process-events-interval-bytes",
                          "1024", NULL};
    pid_t pid = itest_spawn(argv, NULL, logname);
    if (itest_wait_for(redis_loading, &port, 5000, 20) < 0)
        fail_msg("the restarted redis-server on port %d never answered LOADING", port);
    return pid;
}

redisReply *itest_redis_cmd(gov_redis_t *r, int argc, const char **argv, const size_t *lens) {
    char eb[256];
    redisReply *rep = NULL;
    if (gov_redis_command(r, &rep, argc, argv, lens, eb, sizeof eb) != GOV_OK)
        fail_msg("redis %s: %s", argv[0], eb);
    return rep;
}

void itest_copy_key(gov_redis_t *to, const char *key, const char *as) {
    const char *dump[] = {"DUMP", key};
    redisReply *d = itest_redis_cmd(itest_redis(), 2, dump, NULL);
    if (d->type != REDIS_REPLY_STRING)
        fail_msg("the stack's Redis has no %s: is the tenant loaded (deploy/stack.sh)?", key);
    const char *restore[] = {"RESTORE", as, "0", d->str, "REPLACE"};
    size_t lens[] = {strlen("RESTORE"), strlen(as), 1, d->len, strlen("REPLACE")};
    freeReplyObject(itest_redis_cmd(to, 5, restore, lens));
    freeReplyObject(d);
}

void itest_copy_tenant(gov_redis_t *to, const char *tenant) {
    static const gov_state_key_t kinds[] = {GOV_STATE_CONSTITUTION, GOV_STATE_CONSTITUTION_DOC,
                                            GOV_STATE_RULEPACK, GOV_STATE_RULEPACK_META};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char key[GOV_STATE_KEY_MAX];
        if (gov_state_key(kinds[i], tenant, key) != GOV_OK)
            fail_msg("no state key for %s", tenant);
        itest_copy_key(to, key, key);
    }
    const char *sadd1[] = {"SADD", gov_state_constitution_index_key(), tenant};
    const char *sadd2[] = {"SADD", gov_state_rulepack_index_key(), tenant};
    freeReplyObject(itest_redis_cmd(to, 3, sadd1, NULL));
    freeReplyObject(itest_redis_cmd(to, 3, sadd2, NULL));
}

/* --- replaying a partition (per-tenant applied offsets) ---------------------- */

char *itest_redis_snapshot(gov_redis_t *r, const char *const *keys, size_t n) {
    size_t cap = 1, len = 0;
    char *out = malloc(cap);
    if (out == NULL)
        fail_msg("out of memory");
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *argv[] = {"DUMP", keys[i]};
        redisReply *rep = itest_redis_cmd(r, 2, argv, NULL);
        size_t vlen = rep->type == REDIS_REPLY_STRING ? rep->len : 0;
        size_t need = len + strlen(keys[i]) + 2 * vlen + 16;
        char *grown = realloc(out, need);
        if (grown == NULL)
            fail_msg("out of memory");
        out = grown;
        len += (size_t)sprintf(out + len, "%s ", keys[i]);
        if (rep->type == REDIS_REPLY_STRING)
            for (size_t j = 0; j < vlen; j++)
                len += (size_t)sprintf(out + len, "%02x", (unsigned char)rep->str[j]);
        else
            len += (size_t)sprintf(out + len, "(nil)");
        out[len++] = '\n';
        out[len] = 0;
        freeReplyObject(rep);
    }
    return out;
}

typedef struct rebuild_want {
    const itest_proc_t *p;
    const char *const *filters;
    double before;
} rebuild_want_t;

static int rebuild_counted(void *opaque) {
    rebuild_want_t *w = opaque;
    return itest_proc_metric(w->p, "processor_rebuilds_total", w->filters) > w->before;
}

int itest_replay_partition(const itest_proc_t *p, gov_redis_t *r, const char *topic,
                           int32_t partition, int64_t offset, int timeout_ms) {
    char key[256], ftopic[160], fpart[48];
    snprintf(key, sizeof key, "gov:offsets:%s:%s:%d", p->group, topic, (int)partition);
    snprintf(ftopic, sizeof ftopic, "topic=\"%s\"", topic);
    snprintf(fpart, sizeof fpart, "partition=\"%d\"", (int)partition);
    const char *filters[] = {ftopic, fpart, NULL};
    rebuild_want_t w = {p, filters, itest_proc_metric(p, "processor_rebuilds_total", filters)};
    const char *del[] = {"DEL", key};
    freeReplyObject(itest_redis_cmd(r, 2, del, NULL));
    int64_t start = gov_mono_micros();
    if (itest_wait_for(rebuild_counted, &w, timeout_ms, 50) < 0)
        return 0;
    int left = timeout_ms - (int)((gov_mono_micros() - start) / 1000);
    return left > 0 && itest_wait_offset(r, p->group, topic, partition, offset, left);
}

int itest_log_already_applied(const itest_proc_t *p, const char *tenant, int64_t offset,
                              int64_t applied) {
    char *log = itest_read_file(itest_log_path(p->log), NULL);
    char tmark[96], omark[48], amark[48];
    snprintf(tmark, sizeof tmark, "\"tenant\":\"%s\"", tenant);
    snprintf(omark, sizeof omark, "\"offset\":\"%lld\"", (long long)offset);
    snprintf(amark, sizeof amark, "\"applied\":\"%lld\"", (long long)applied);
    int named = 0;
    for (char *save = NULL, *line = strtok_r(log, "\n", &save); line && !named;
         line = strtok_r(NULL, "\n", &save))
        named = strstr(line, "already applied for its tenant") && strstr(line, tmark) &&
                strstr(line, omark) && strstr(line, amark);
    free(log);
    return named;
}

/* --- the nginx gateway and its counting upstream ------------------------------- */

int itest_http_request(int port, const char *method, const char *target, const char *headers,
                       const char *body, char *raw, size_t raw_size) {
    char req[12288], length[48] = "";
    if (body)
        snprintf(length, sizeof length, "Content-Length: %zu\r\n", strlen(body));
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n%s%s\r\n%s",
                     method, target, headers ? headers : "", length, body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof req);
    int fd = itest_raw_send(port, req, (size_t)n);
    return itest_raw_answer(fd, raw, raw_size, 30000, NULL);
}

void itest_header_of(const char *raw, const char *name, char *out, size_t size) {
    out[0] = '\0';
    const char *end = strstr(raw, "\r\n\r\n");
    size_t nl = strlen(name);
    for (const char *p = strstr(raw, "\r\n"); p && (!end || p < end); p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            snprintf(out, size, "%.*s", (int)strcspn(v, "\r\n"), v);
            return;
        }
    }
}

pid_t itest_upstream_start(const char *name, const char *logname, int *port) {
    char bin[512], up[8300], port_s[16], url[96];
    snprintf(bin, sizeof bin, "%s", itest_bin("gov-edge"));
    snprintf(up, sizeof up, "%s/../itests/upstream_counter", dirname(bin));
    if (access(up, X_OK) != 0) /* not under test itself: the release build serves too */
        snprintf(up, sizeof up, "%s", itest_path("build/release/itests/upstream_counter"));
    *port = itest_free_port();
    snprintf(port_s, sizeof port_s, "%d", *port);
    pid_t pid = itest_spawn((const char *const[]){up, port_s, name, NULL}, NULL, logname);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/__counts", *port);
    if (!itest_wait_http(url, 200, 15000))
        fail_msg("the upstream did not start (%s)", up);
    return pid;
}

json_t *itest_upstream_counts(int port, const char *name) {
    char url[96], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/__counts", port);
    assert_int_equal(itest_http_get(url, &body), 200);
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "name")), name);
    return j;
}

/* The nginx binary: the first on PATH, then /usr/sbin (Debian's place,
 * often not on a user's PATH).  Static storage. */
static const char *nginx_bin(void) {
    static char path[512];
    const char *env = getenv("PATH");
    char dirs[2048];
    snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/usr/local/sbin", env ? env : "");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, sizeof path, "%s/nginx", d);
        if (d[0] == '/' && access(path, X_OK) == 0)
            return path;
    }
    fail_msg("nginx is not installed (bash deploy/install-deps.sh --all)");
    return NULL;
}

pid_t itest_gateway_start(const char *what, int edge_port, int upstream_port, int port,
                          const char *timeout, char *dir, size_t dir_size) {
    char listen_at[64], edge_at[64], up_at[64], conf[320], err_log[320], logname[96], out[512];
    if (itest_workdir_new(what, dir, dir_size) != 0)
        fail_msg("no work directory for %s", what);
    snprintf(listen_at, sizeof listen_at, "127.0.0.1:%d", port);
    snprintf(edge_at, sizeof edge_at, "127.0.0.1:%d", edge_port);
    snprintf(up_at, sizeof up_at, "127.0.0.1:%d", upstream_port);
    int rc = itest_run((const char *const[]){"bash", itest_path("deploy/nginx/render.sh"), dir,
                                             listen_at, edge_at, up_at, timeout, timeout, NULL},
                       NULL, out, sizeof out);
    assert_int_equal(rc, 0);
    snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
    snprintf(err_log, sizeof err_log, "%s/error.log", dir);
    snprintf(logname, sizeof logname, "itest-%s.log", what);
    pid_t pid = itest_spawn((const char *const[]){nginx_bin(), "-p", dir, "-c", conf, "-e", err_log,
                                                  "-g", "daemon off; master_process off;", NULL},
                            NULL, logname);
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/authz", port);
    if (!itest_wait_http(url, 404, 15000))
        fail_msg("nginx (%s) did not answer on port %d; see %s and %s", what, port, logname,
                 err_log);
    return pid;
}

/* --- Kafka stalls and registered clients ------------------------------------- */

int itest_component_is(const json_t *readyz, const char *name, const char *state) {
    json_t *c;
    size_t i;
    json_array_foreach(json_object_get(readyz, "components"), i, c) {
        const char *n = json_string_value(json_object_get(c, "name"));
        const char *st = json_string_value(json_object_get(c, "state"));
        if (n && st && strcmp(n, name) == 0 && strcmp(st, state) == 0)
            return 1;
    }
    return 0;
}

int itest_edge_start_stalled(itest_proc_t *edge, const char *prefix, const char *const *extra,
                             const char *logname) {
    int port = 0;
    int bh = itest_kafka_blackhole(&port);
    char brokers[64];
    snprintf(brokers, sizeof brokers, "GOV_KAFKA_BROKERS=127.0.0.1:%d", port);
    const char *env[8] = {brokers};
    for (size_t i = 0; extra && extra[i] && i < 6; i++)
        env[i + 1] = extra[i];
    itest_write_file(itest_log_path(logname), "", 0);
    itest_edge_start_on_stack(edge, prefix, env, logname);
    return bh;
}

int itest_kafka_blackhole(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        fail_msg("black-hole listener: %s", strerror(errno));
    *port = ntohs(sa.sin_port);
    return fd;
}

/* --- a client, a private edge, upstream and nginx over the stack ------------- */

static const char *client_probe;

/* The stack's gov-identity materialized client_probe in the stack's Redis. */
static int client_known(void *opaque) {
    (void)opaque;
    gov_state_identity_client_rec_t c;
    char eb[256];
    int found = gov_state_identity_client_get(itest_redis(), client_probe, &c, eb, sizeof eb) ==
                    GOV_OK && c.found;
    gov_state_identity_client_clear(&c);
    return found;
}

void itest_client_add(const char *tenant, const char *scopes, char *id, size_t id_size,
                      char *secret, size_t secret_size) {
    itest_client_add_unmaterialized(tenant, scopes, id, id_size, secret, secret_size);
    itest_client_wait_known(id);
}

void itest_client_add_unmaterialized(const char *tenant, const char *scopes, char *id,
                                     size_t id_size, char *secret, size_t secret_size) {
    char out[1024], err[4096], brokers[256];
    snprintf(brokers, sizeof brokers, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    int rc = itest_govctl((const char *const[]){brokers, NULL},
                          (const char *const[]){"clients", "add", "--tenants", tenant, "--scopes",
                                                scopes, NULL},
                          out, sizeof out, err, sizeof err);
    itest_expect_ok(rc, err, __LINE__);
    json_t *o = json_loads(out, 0, NULL);
    const char *cid = json_string_value(json_object_get(o, "client_id"));
    const char *csecret = json_string_value(json_object_get(o, "client_secret"));
    if (cid == NULL || csecret == NULL)
        fail_msg("govctl clients add printed no {client_id, client_secret}: %s", out);
    snprintf(id, id_size, "%s", cid);
    snprintf(secret, secret_size, "%s", csecret);
    json_decref(o);
}

void itest_client_wait_known(const char *id) {
    client_probe = id;
    if (itest_wait_for(client_known, NULL, 20000, 5) < 0)
        fail_msg("client %s was not materialized by the stack's gov-identity", id);
}

void itest_client_register(const char *tenant, const char *scopes, char *id, size_t id_size,
                           char authz[512]) {
    char secret[128], cid[128];
    itest_client_add(tenant, scopes, cid, sizeof cid, secret, sizeof secret);
    snprintf(id, id_size, "%s", cid);
    itest_basic_auth(cid, secret, authz);
    /* materialized in Redis; the stack's edge may still hold the id as
     * absent for client_cache_ttl, so wait until it issues */
    int edge_port = 0;
    if (sscanf(itest_env("GOV_EDGE_URL", "http://127.0.0.1:8700"), "http://%*[^:]:%d",
               &edge_port) != 1)
        fail_msg("GOV_EDGE_URL is not http://host:port");
    int64_t give_up = gov_mono_micros() + 60 * 1000000LL;
    static char raw[16384];
    while (itest_http_post_raw(edge_port, "/v1/tokens/issue", "application/x-www-form-urlencoded",
                               authz, "grant_type=client_credentials", NULL, raw,
                               sizeof raw) != 200) {
        if (gov_mono_micros() > give_up)
            fail_msg("client %s was never accepted by the stack's edge", cid);
        itest_sleep_ms(100);
    }
}

void itest_rig_start(itest_rig_t *g, const char *name, const char *tenant, const char *scopes,
                     const char *const *edge_extra) {
    char prefix[96], upstream_log[128], edge_log[128], nginx[96];
    memset(g, 0, sizeof *g);
    g->upstream_pid = g->nginx_pid = -1;
    g->edge.pid = -1;
    itest_client_add(tenant, scopes, g->client_id, sizeof g->client_id, g->client_secret,
                     sizeof g->client_secret);
    snprintf(prefix, sizeof prefix, "edge-itest-%s", name);
    snprintf(edge_log, sizeof edge_log, "itest-%s-edge.log", name);
    itest_edge_start_on_stack(&g->edge, prefix, edge_extra, edge_log);
    /* over the stack's Kafka it becomes ready: nginx asks a whole edge */
    char url[128];
    snprintf(url, sizeof url, "%s/readyz", g->edge.url);
    if (!itest_wait_http(url, 200, 30000))
        fail_msg("%s did not become ready (log var/test-logs/%s)", g->edge.id, edge_log);
    snprintf(prefix, sizeof prefix, "upstream-itest-%s", name);
    itest_unique(prefix, g->upstream_name, sizeof g->upstream_name);
    snprintf(upstream_log, sizeof upstream_log, "itest-%s-upstream.log", name);
    g->upstream_pid = itest_upstream_start(g->upstream_name, upstream_log, &g->upstream_port);
    g->gw_port = itest_free_port();
    snprintf(nginx, sizeof nginx, "%s-nginx", name);
    g->nginx_pid = itest_gateway_start(nginx, g->edge.port, g->upstream_port, g->gw_port, "2s",
                                       g->prefix, sizeof g->prefix);
}

int itest_rig_stop(itest_rig_t *g) {
    int rc = 0;
    if (g->nginx_pid > 0)
        rc |= itest_stop(g->nginx_pid, SIGTERM, 10000) != 0;
    if (g->upstream_pid > 0)
        rc |= itest_stop(g->upstream_pid, SIGTERM, 10000) != 0;
    g->nginx_pid = g->upstream_pid = -1;
    rc |= itest_proc_stop(&g->edge) != 0;
    if (g->prefix[0] != '\0')
        itest_workdir_remove(g->prefix);
    g->prefix[0] = '\0';
    return rc ? -1 : 0;
}

json_t *itest_rig_counts(const itest_rig_t *g) {
    return itest_upstream_counts(g->upstream_port, g->upstream_name);
}

long itest_rig_requests(const itest_rig_t *g) {
    json_t *j = itest_rig_counts(g);
    long n = (long)json_integer_value(json_object_get(j, "requests"));
    json_decref(j);
    return n;
}

/* --- floods ------------------------------------------------------------------ */

/* The length of the complete answer at the start of buf[0..got), or 0
 * while it is not complete (headers, then Content-Length bytes). */
static size_t keepalive_answer_length(const char *buf, size_t got) {
    const char *end = strstr(buf, "\r\n\r\n");
    if (end == NULL)
        return 0;
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    size_t body = cl && cl < end ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
    size_t total = (size_t)(end + 4 - buf) + body;
    return got >= total ? total : 0;
}

int itest_keepalive_request(int *fd, int port, const char *req, size_t len, char *buf,
                            size_t size) {
    int status = 0;
    size_t got = 0;
    buf[0] = '\0';
    if (*fd < 0) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *fd = socket(AF_INET, SOCK_STREAM, 0);
        if (*fd >= 0 && connect(*fd, (struct sockaddr *)&sa, sizeof sa) != 0)
            goto closed;
    }
    if (*fd < 0 || send(*fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
        goto closed;
    struct pollfd p = {*fd, POLLIN, 0};
    while (got < size - 1 && keepalive_answer_length(buf, got) == 0 && poll(&p, 1, 10000) > 0) {
        ssize_t n = recv(*fd, buf + got, size - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
    }
    if (keepalive_answer_length(buf, got) == 0 || sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    if (status != 0 && strcasestr(buf, "\r\nConnection: close") == NULL)
        return status;
closed:
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
    return status;
}

void itest_thread_nice(void) {
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
}

/* --- JSON answers ------------------------------------------------------------ */

/* The JSON body of a raw HTTP answer (a new reference), or NULL. */
static json_t *answer_body(const char *raw) {
    const char *b = raw ? strstr(raw, "\r\n\r\n") : NULL;
    return b ? json_loads(b + 4, 0, NULL) : NULL;
}

void itest_error_code(const char *raw, char *out, size_t size) {
    json_t *j = answer_body(raw);
    json_t *e = json_object_get(j, "error");
    const char *c = json_is_string(e) ? json_string_value(e)
                                      : json_string_value(json_object_get(e, "code"));
    snprintf(out, size, "%s", c ? c : "");
    json_decref(j);
}

int itest_answer_string(const char *raw, const char *key, char *out, size_t size) {
    json_t *j = answer_body(raw);
    const char *v = json_string_value(json_object_get(j, key));
    snprintf(out, size, "%s", v ? v : "");
    json_decref(j);
    return v != NULL;
}

typedef struct delivery {
    int done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
} delivery_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)opaque;
    (void)rk;
    delivery_t *d = m->_private;
    d->done = 1;
    d->err = m->err;
    d->partition = m->partition;
    d->offset = m->offset;
}

void itest_produce_raw_at(const char *topic, const char *key, const void *buf, size_t len,
                          int64_t timestamp_ms, const gov_kafka_header_t *headers,
                          size_t nheaders, int32_t *partition, int64_t *offset) {
    char eb[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers",
                          itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"), eb,
                          sizeof eb) != RD_KAFKA_CONF_OK)
        fail_msg("producer conf: %s", eb);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, eb, sizeof eb);
    if (rk == NULL)
        fail_msg("producer: %s", eb);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(nheaders + 1);
    for (size_t i = 0; i < nheaders; i++)
        rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                            (ssize_t)headers[i].len);
    delivery_t d = {0, RD_KAFKA_RESP_ERR_NO_ERROR, -1, -1};
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(&d),
        RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(hdrs);   /* owned by the message only on success */
        rd_kafka_destroy(rk);
        fail_msg("produce to %s: %s", topic, rd_kafka_err2str(err));
    }
    rd_kafka_flush(rk, 15000);
    rd_kafka_destroy(rk);
    if (!d.done || d.err != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail_msg("produce to %s: %s", topic, d.done ? rd_kafka_err2str(d.err) : "not delivered");
    if (partition)
        *partition = d.partition;
    if (offset)
        *offset = d.offset;
}

size_t itest_lease_epoch_header(gov_redis_t *r, char epoch[24], gov_kafka_header_t *h) {
    redisReply *rep = itest_redis_cmd(
        r, 2, (const char *[]){"GET", gov_state_identity_rotator_epoch_key()}, NULL);
    int set = rep->type == REDIS_REPLY_STRING && rep->len > 0 && rep->len < 24;
    snprintf(epoch, 24, "%s", set ? rep->str : "");
    freeReplyObject(rep);
    h->name = "x-gov-lease-epoch";   /* GOV_KEYROTATE_EPOCH_HEADER */
    h->value = epoch;
    h->len = strlen(epoch);
    return set ? 1 : 0;
}

pid_t itest_redis_node_pid(int port) {
    gov_redis_t *r = NULL;
    redisReply *rep = NULL;
    char eb[256];
    const char *info[] = {"INFO", "server"};
    if (gov_redis_new("127.0.0.1", port, 2000, &r, eb, sizeof eb) == GOV_OK)
        (void)gov_redis_command(r, &rep, 2, info, NULL, eb, sizeof eb);
    gov_redis_free(r);
    const char *pid_s = rep != NULL && rep->type == REDIS_REPLY_STRING
                            ? strstr(rep->str, "process_id:")
                            : NULL;
    pid_t pid = pid_s ? (pid_t)atoi(pid_s + strlen("process_id:")) : 0;
    if (rep != NULL)
        freeReplyObject(rep);
    if (pid <= 1)
        fail_msg("redis on port %d did not say its pid", port);
    return pid;
}
