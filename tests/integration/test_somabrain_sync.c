/* test_somabrain_sync.c - gov-somabrain-sync against a real nginx and the
 * real Kafka broker of the stack.
 *
 * The group setup starts a private nginx (its own generated config, on free
 * loopback ports, plain and TLS with a certificate made here by the openssl
 * command) serving a temporary directory under var/.  Bundles are files in
 * it, each really signed (Ed25519 over the checksum hex, OpenSSL EVP); nginx
 * sends ETags and answers If-None-Match with 304 by itself.  Failures are
 * real too: a loopback port bound but never listening (unreachable), nginx's
 * limit_rate (timeout), a missing file (404), files over the cap (with and
 * without Content-Length; sub_filter makes nginx send chunked), garbage,
 * wrong shapes, another tenant's bundle, a redirect to file://, a Kafka
 * address where no broker listens, a CA the binary does not trust.
 *
 * What is checked is what an operator checks: the binary's exit code, the
 * events on constitution.bundles and identity.audit (read back from the
 * offsets they had before the run and decoded), /metrics (also through
 * promtool), /readyz, the JSON log lines and nginx's access log.  Waits are
 * on outcomes, never on the clock: a fetch in flight is nginx's
 * stub_status "Writing" count, a newer file is its mtime observed to
 * change, "nothing arrived later" is a marker produced after the process
 * was reaped being the tenant's only event up to the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

#define TOPIC_BUNDLES "constitution.bundles"
#define TOPIC_AUDIT "identity.audit"
#define MAX_BODY 8192

/* Everything re-serialization would change: number spellings, escapes,
 * literal non-ASCII, whitespace, key order. */
static const char DOC_V1[] =
    "{\"version\": \"1.0.0\",\n"
    "  \"rules\": {\"max_risk_score\": 0.1, \"min_confidence\": 1e-7,"
    " \"weights\": [1.0, 2.50, -0.0, 1E+2],\n"
    "            \"prohibited_actions\": [\"rm -rf /\"]},\n"
    "  \"preamble\": \"caf\\u00e9 caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 \\\"quoted\\\"\"}";
static const char DOC_V2[] =
    "{\"version\": \"1.1.0\", \"rules\": {\"max_risk_score\": 0.25, \"min_confidence\": 5e-324,"
    " \"note\": \"\xe6\x97\xa5\xe6\x9c\xac\"}}";

static char ngx_dir[512], www[600];
static pid_t ngx_pid = -1;
static int http_port, tls_port, closed_port, closed_fd = -1;
static EVP_PKEY *signing_key;

/* --- small helpers ------------------------------------------------------------ */

static void write_file(const char *path, const void *data, size_t len) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        fail_msg("cannot write %s", tmp);
    chmod(tmp, 0644);
    if (rename(tmp, path) != 0) /* atomic: nginx never serves half a file */
        fail_msg("rename %s: %s", path, strerror(errno));
}

static void write_www(const char *tenant, const char *text, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/b/%s.json", www, tenant);
    write_file(path, text, len);
}

/* nginx's ETag of a static file: "<mtime hex>-<size hex>". */
static void nginx_etag(const char *tenant, char *out, size_t size) {
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/b/%s.json", www, tenant);
    if (stat(path, &st) != 0)
        fail_msg("stat %s", path);
    snprintf(out, size, "\"%lx-%lx\"", (unsigned long)st.st_mtime, (unsigned long)st.st_size);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

static void sha256_hex(const void *buf, size_t len, char out[65]) {
    unsigned char d[GOV_SHA256_LEN];
    assert_int_equal(gov_sha256(buf, len, d), GOV_OK);
    gov_hex_encode(d, sizeof d, out);
}

/* A bundle for `tenant` whose document is doc (verbatim): checksum =
 * SHA-256 of the document bytes (sync does not verify checksums, so any
 * canonical bytes do), signature = Ed25519 over the ASCII checksum hex. */
static char *make_bundle(const char *tenant, const char *doc) {
    char checksum[65], sig_hex[129];
    sha256_hex(doc, strlen(doc), checksum);
    itest_sign_hex(signing_key, checksum, sig_hex);
    size_t n = strlen(doc) + 512;
    char *b = malloc(n);
    snprintf(b, n,
             "{\"tenant\": \"%s\",\n \"document\": %s,\n \"canonicalization\": \"somabrain-json\","
             " \"hash_alg\": \"sha256\", \"checksum\": \"%s\",\n \"signatures\": [{\"signer_id\":"
             " \"human_operator\", \"algorithm\": \"ed25519\", \"signature\": \"%s\"}]}\n",
             tenant, doc, checksum, sig_hex);
    return b;
}

static void publish_file(const char *tenant, const char *doc) {
    char *b = make_bundle(tenant, doc);
    write_www(tenant, b, strlen(b));
    free(b);
}

/* The file's mtime in whole seconds (what nginx's ETag carries). */
static time_t www_mtime(const char *tenant) {
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/b/%s.json", www, tenant);
    if (stat(path, &st) != 0)
        fail_msg("stat %s", path);
    return st.st_mtime;
}

/* publish_file over an existing file, with an mtime observed to differ
 * from the old one: when the rewrite landed in the same second, the file's
 * time is moved one second on (no waiting for the clock to tick). */
static void publish_file_newer(const char *tenant, const char *doc) {
    time_t old = www_mtime(tenant);
    publish_file(tenant, doc);
    if (www_mtime(tenant) == old) {
        char path[1024];
        snprintf(path, sizeof path, "%s/b/%s.json", www, tenant);
        struct timespec ts[2] = {{old + 1, 0}, {old + 1, 0}};
        if (utimensat(AT_FDCWD, path, ts, 0) != 0)
            fail_msg("utimensat %s: %s", path, strerror(errno));
    }
    assert_true(www_mtime(tenant) != old);
}

static int verify_signature(const char *checksum, const char *sig_hex) {
    unsigned char sig[64];
    if (strlen(sig_hex) != 128 || gov_hex_decode(sig_hex, 128, sig, 64) != 0)
        return 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, signing_key) == 1 &&
             EVP_DigestVerify(ctx, sig, 64, (const unsigned char *)checksum,
                              strlen(checksum)) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static const char *jstr(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* --- Kafka: read exactly what was produced after a point ------------------------- */

#define MAX_PARTS 64
typedef struct offsets {
    int n;
    int64_t end[MAX_PARTS];
} offsets_t;

static rd_kafka_t *kafka_reader(void) {
    char eb[256], group[96];
    itest_unique("itest-sync-reader", group, sizeof group);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers",
                          itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"), eb, sizeof eb) ||
        rd_kafka_conf_set(conf, "group.id", group, eb, sizeof eb) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", eb, sizeof eb) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", eb, sizeof eb))
        fail_msg("kafka reader config: %s", eb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, eb, sizeof eb);
    if (rk == NULL)
        fail_msg("kafka reader: %s", eb);
    return rk;
}

static void topic_ends(const char *topic, offsets_t *o) {
    o->n = itest_topic_ends(topic, o->end, MAX_PARTS);
    assert_true(o->n > 0);
}

/* Decodes every message keyed `key` between `from` and the current end of
 * topic, in order, into a new JSON array of events. */
static json_t *events_since(const char *topic, const offsets_t *from, const char *key) {
    rd_kafka_t *rk = kafka_reader();
    offsets_t now;
    topic_ends(topic, &now);
    json_t *out = json_array();
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(now.n);
    int pending = 0;
    for (int p = 0; p < now.n; p++)
        if (now.end[p] > from->end[p]) {
            rd_kafka_topic_partition_list_add(parts, topic, p)->offset = from->end[p];
            pending++;
        }
    if (pending > 0 && rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail_msg("assign %s", topic);
    int64_t deadline = gov_mono_micros() + 30 * 1000000LL;
    int done[MAX_PARTS] = {0};
    while (pending > 0 && gov_mono_micros() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL)
            continue;
        int p = m->partition;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->key_len == strlen(key) &&
            memcmp(m->key, key, m->key_len) == 0 && m->offset < now.end[p]) {
            json_t *ev = NULL;
            const char *name = NULL;
            char eb[256];
            if (gov_avro_decode(itest_avro(), m->payload, m->len, &ev, &name, eb, sizeof eb) !=
                GOV_OK)
                fail_msg("undecodable message on %s/%d@%lld: %s", topic, p, (long long)m->offset,
                         eb);
            json_array_append_new(out, ev);
        }
        if (p >= 0 && p < now.n && !done[p] &&
            (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
             (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->offset + 1 >= now.end[p]))) {
            done[p] = 1;
            pending--;
        }
        rd_kafka_message_destroy(m);
    }
    if (pending > 0)
        fail_msg("could not read %s to its end", topic);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return out;
}

/* --- nginx ------------------------------------------------------------------- */

static void write_nginx_conf(void) {
    char path[700], conf[8192];
    snprintf(path, sizeof path, "%s/nginx.conf", ngx_dir);
    int n = snprintf(conf, sizeof conf,
        "daemon off;\n"
        "worker_processes 1;\n"
        "pid %1$s/nginx.pid;\n"
        "error_log %1$s/error.log info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "  types { application/json json; }\n"
        "  default_type application/octet-stream;\n"
        "  log_format sync escape=none '$uri $status inm=$http_if_none_match bytes=$body_bytes_sent';\n"
        "  access_log %1$s/access.log sync;\n"
        "  client_body_temp_path %1$s/tmp/body;\n"
        "  proxy_temp_path %1$s/tmp/proxy;\n"
        "  fastcgi_temp_path %1$s/tmp/fastcgi;\n"
        "  uwsgi_temp_path %1$s/tmp/uwsgi;\n"
        "  scgi_temp_path %1$s/tmp/scgi;\n"
        "  server {\n"
        "    listen 127.0.0.1:%2$d;\n"
        "    listen 127.0.0.1:%3$d ssl;\n"
        "    ssl_certificate %1$s/cert.pem;\n"
        "    ssl_certificate_key %1$s/key.pem;\n"
        "    root %1$s/www;\n"
        "    location ~ ^/b/slow- { limit_rate 50; }\n"
        "    location = /nginx-status { stub_status; access_log off; }\n"
        "    location ~ ^/b/chunked- {\n"
        "      sub_filter_types *; sub_filter '@@never@@' '@@never@@'; sub_filter_once off;\n"
        "    }\n"
        "    location ~ ^/b/redir- { return 302 file:///etc/passwd; }\n"
        "  }\n"
        "}\n",
        ngx_dir, http_port, tls_port);
    assert_true(n > 0 && (size_t)n < sizeof conf);
    write_file(path, conf, (size_t)n);
}

static int start_nginx(void) {
    char conf[700], elog[700], url[96];
    snprintf(conf, sizeof conf, "%s/nginx.conf", ngx_dir);
    snprintf(elog, sizeof elog, "%s/error.log", ngx_dir);
    const char *argv[] = {"/usr/sbin/nginx", "-p", ngx_dir, "-e", elog, "-c", conf, NULL};
    ngx_pid = itest_spawn(argv, NULL, "itest-sync-nginx.log");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ping.txt", http_port);
    for (int i = 0; i < 100; i++) {
        if (itest_http_get(url, NULL) == 200)
            return 1;
        if (waitpid(ngx_pid, NULL, WNOHANG) == ngx_pid) { /* port taken: retry */
            ngx_pid = -1;
            return 0;
        }
        itest_sleep_ms(50);
    }
    return 0;
}

static int setup(void **state) {
    (void)state;
    char name[96], cmd[2048];
    itest_unique("sync", name, sizeof name);
    snprintf(ngx_dir, sizeof ngx_dir, "%s", itest_path("var/test-nginx"));
    mkdir(ngx_dir, 0755);
    snprintf(ngx_dir + strlen(ngx_dir), sizeof ngx_dir - strlen(ngx_dir), "/%s", name);
    snprintf(www, sizeof www, "%s/www", ngx_dir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%1$s/www/b' '%1$s/tmp' && chmod -R 0755 '%1$s' && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout '%1$s/key.pem' -out '%1$s/cert.pem' -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 >'%1$s/openssl.log' 2>&1 && "
             "chmod 0644 '%1$s/key.pem'",
             ngx_dir);
    if (system(cmd) != 0)
        fail_msg("could not prepare %s (see openssl.log there)", ngx_dir);
    char ping[700];
    snprintf(ping, sizeof ping, "%s/ping.txt", www);
    write_file(ping, "pong\n", 5);

    /* bound, never listening: connections to it are refused */
    closed_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (closed_fd < 0 || bind(closed_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(closed_fd, (struct sockaddr *)&a, &l) != 0)
        fail_msg("cannot bind a closed port");
    closed_port = ntohs(a.sin_port);

    for (int attempt = 0; attempt < 5; attempt++) {
        http_port = itest_free_port();
        tls_port = itest_free_port();
        if (tls_port == http_port)
            continue;
        write_nginx_conf();
        if (start_nginx())
            break;
    }
    if (ngx_pid < 0)
        fail_msg("nginx did not start; see %s/error.log", ngx_dir);

    signing_key = itest_ed25519_new();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (ngx_pid > 0)
        itest_stop(ngx_pid, SIGTERM, 10000);
    if (closed_fd >= 0)
        close(closed_fd);
    EVP_PKEY_free(signing_key);
    /* the binaries' logs stay in var/test-logs; the served files go */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ngx_dir);
    if (ngx_dir[0] != '\0' && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", ngx_dir);
    return 0;
}

/* --- running the binary -------------------------------------------------------- */

typedef struct run_env {
    char e[16][400];
    const char *list[17];
} run_env_t;

/* Environment for gov-somabrain-sync: the stack's Kafka, fast timings for
 * tests, then `extra` ("K=V" entries, NULL-terminated) which override. */
static const char *const *sync_env(run_env_t *r, const char *url_template, const char *tenants,
                                   const char *const *extra) {
    int n = 0;
    snprintf(r->e[n++], 400, "GOV_SOMABRAIN_URL=%s", url_template);
    snprintf(r->e[n++], 400, "GOV_SOMABRAIN_TENANTS=%s", tenants);
    snprintf(r->e[n++], 400, "GOV_KAFKA_BROKERS=%s",
             itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    snprintf(r->e[n++], 400, "GOV_SYNC_INTERVAL=1s");
    snprintf(r->e[n++], 400, "GOV_SOMABRAIN_CONNECT_TIMEOUT=1s");
    snprintf(r->e[n++], 400, "GOV_SOMABRAIN_TIMEOUT=1500ms");
    snprintf(r->e[n++], 400, "GOV_SOMABRAIN_MAX_BODY=%d", MAX_BODY);
    snprintf(r->e[n++], 400, "GOV_SYNC_BACKOFF_BASE=500ms");
    snprintf(r->e[n++], 400, "GOV_SYNC_BACKOFF_MAX=2s");
    snprintf(r->e[n++], 400, "GOV_LOG_LEVEL=debug");
    for (const char *const *x = extra; x && *x && n < 16; x++)
        snprintf(r->e[n++], 400, "%s", *x);
    for (int i = 0; i < n; i++)
        r->list[i] = r->e[i];
    r->list[n] = NULL;
    return r->list;
}

static void http_template(char *buf, size_t size) {
    snprintf(buf, size, "http://127.0.0.1:%d/b/{tenant}.json", http_port);
}

/* Runs gov-somabrain-sync --once to completion (at most timeout_ms); returns
 * its exit code; its JSON log lines are in var/test-logs/<logname>. */
static int run_once(const char *const *env, const char *logname, int timeout_ms) {
    char path[1024];
    snprintf(path, sizeof path, "var/test-logs/%s", logname);
    unlink(itest_path(path));
    const char *argv[] = {itest_bin("gov-somabrain-sync"), "--once", NULL};
    pid_t pid = itest_spawn(argv, env, logname);
    int status = 0;
    int64_t end = gov_mono_micros() + (int64_t)timeout_ms * 1000;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (gov_mono_micros() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("gov-somabrain-sync --once did not finish in %d ms (%s)", timeout_ms, path);
        }
        itest_sleep_ms(20);
    }
    if (!WIFEXITED(status))
        fail_msg("gov-somabrain-sync --once died (signal %d); see %s", WTERMSIG(status), path);
    return WEXITSTATUS(status);
}

static char *log_text(const char *logname) {
    char path[1024];
    snprintf(path, sizeof path, "var/test-logs/%s", logname);
    return read_text(itest_path(path));
}

/* 1 when some JSON log line has msg and tenant and reason as given. */
static int log_has(const char *log, const char *msg, const char *tenant, const char *reason) {
    for (const char *line = log; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        json_t *j = json_loadb(line, len, 0, NULL);
        int hit = j && strcmp(jstr(j, "msg"), msg) == 0 &&
                  (!tenant || strcmp(jstr(j, "tenant"), tenant) == 0) &&
                  (!reason || strcmp(jstr(j, "reason"), reason) == 0);
        json_decref(j);
        if (hit)
            return 1;
        line = end ? end + 1 : NULL;
    }
    return 0;
}

typedef struct daemon {
    pid_t pid;
    char url[64];
    char logname[96];
    run_env_t env;
} daemon_t;

static void daemon_start(daemon_t *d, const char *url_template, const char *tenants,
                         const char *logname) {
    char port[32];
    int p = itest_free_port();
    snprintf(port, sizeof port, "GOV_ADMIN_PORT=%d", p);
    snprintf(d->url, sizeof d->url, "http://127.0.0.1:%d", p);
    snprintf(d->logname, sizeof d->logname, "%s", logname);
    const char *extra[] = {port, NULL};
    const char *argv[] = {itest_bin("gov-somabrain-sync"), NULL};
    char path[256];
    snprintf(path, sizeof path, "var/test-logs/%s", logname);
    unlink(itest_path(path));
    d->pid = itest_spawn(argv, sync_env(&d->env, url_template, tenants, extra), logname);
    char hz[96];
    snprintf(hz, sizeof hz, "%s/healthz", d->url);
    if (!itest_wait_http(hz, 200, 20000))
        fail_msg("gov-somabrain-sync did not answer /healthz (see %s)", path);
}

/* SIGTERM must end it cleanly, promptly (and, in the sanitizer build, with
 * no leak reported, which would make the exit status non-zero). */
static void daemon_stop(daemon_t *d) {
    int64_t t0 = gov_mono_micros();
    int st = itest_stop(d->pid, SIGTERM, 15000);
    d->pid = -1;
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("gov-somabrain-sync did not exit cleanly on SIGTERM (status %d); see "
                 "var/test-logs/%s", st, d->logname);
    assert_true(gov_mono_micros() - t0 < 5 * 1000000LL);
}

static char *daemon_metrics(const daemon_t *d) {
    char url[96], *body = NULL;
    snprintf(url, sizeof url, "%s/metrics", d->url);
    if (itest_http_get(url, &body) != 200)
        fail_msg("/metrics did not answer 200");
    return body;
}

static double metric(const daemon_t *d, const char *name, const char *tenant, const char *lk,
                     const char *lv) {
    char f1[128], f2[128];
    snprintf(f1, sizeof f1, "tenant=\"%s\"", tenant);
    snprintf(f2, sizeof f2, "%s=\"%s\"", lk ? lk : "tenant", lk ? lv : tenant);
    const char *filters[] = {f1, f2, NULL};
    char *m = daemon_metrics(d);
    double v = itest_metric(m, name, filters);
    free(m);
    return v;
}

static double wait_metric(const daemon_t *d, const char *name, const char *tenant, const char *lk,
                          const char *lv, double at_least, int timeout_ms) {
    int64_t end = gov_mono_micros() + (int64_t)timeout_ms * 1000;
    double v;
    do {
        v = metric(d, name, tenant, lk, lv);
        if (v >= at_least)
            return v;
        itest_sleep_ms(100);
    } while (gov_mono_micros() < end);
    fail_msg("%s{tenant=%s,%s=%s} stayed at %g, wanted >= %g (see var/test-logs/%s)", name,
             tenant, lk ? lk : "-", lv ? lv : "-", v, at_least, d->logname);
    return v;
}

/* The /readyz answer: HTTP status, and the component `name` (new ref). */
static long readyz(const daemon_t *d, const char *name, json_t **component) {
    char url[96], *body = NULL;
    snprintf(url, sizeof url, "%s/readyz", d->url);
    long st = itest_http_get(url, &body);
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    *component = NULL;
    json_t *c;
    size_t i;
    json_array_foreach(json_object_get(j, "components"), i, c) {
        if (strcmp(jstr(c, "name"), name) == 0)
            *component = json_incref(c);
    }
    json_decref(j);
    return st;
}

/* --- tests ------------------------------------------------------------------------ */

static void test_once_publishes_the_exact_document(void **state) {
    (void)state;
    char tenant[64], tmpl[128], url[160], etag[64];
    itest_unique("t-once", tenant, sizeof tenant);
    publish_file(tenant, DOC_V1);
    nginx_etag(tenant, etag, sizeof etag);
    http_template(tmpl, sizeof tmpl);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/b/%s.json", http_port, tenant);
    offsets_t b0, a0;
    topic_ends(TOPIC_BUNDLES, &b0);
    topic_ends(TOPIC_AUDIT, &a0);
    run_env_t env;
    int64_t t0 = gov_now_micros();
    assert_int_equal(run_once(sync_env(&env, tmpl, tenant, NULL), "itest-sync-once.log", 30000),
                     0);

    json_t *evs = events_since(TOPIC_BUNDLES, &b0, tenant);
    assert_int_equal(json_array_size(evs), 1);
    json_t *ev = json_array_get(evs, 0);
    json_t *dj = json_object_get(ev, "document_json");
    /* byte for byte: 0.1, 1e-7, 2.50, -0.0, 1E+2, \u00e9, literal UTF-8, whitespace */
    assert_int_equal(json_string_length(dj), strlen(DOC_V1));
    assert_memory_equal(json_string_value(dj), DOC_V1, strlen(DOC_V1));
    assert_string_equal(jstr(ev, "tenant"), tenant);
    assert_true(gov_uuid_v7_valid(jstr(ev, "event_id")));
    json_int_t at = json_integer_value(json_object_get(ev, "occurred_at"));
    assert_true(at >= t0 && at <= gov_now_micros());
    assert_string_equal(jstr(ev, "canonicalization"), "somabrain-json");
    assert_string_equal(jstr(ev, "hash_alg"), "sha256");
    char checksum[65];
    sha256_hex(DOC_V1, strlen(DOC_V1), checksum);
    assert_string_equal(jstr(ev, "checksum"), checksum);
    assert_string_equal(jstr(ev, "source"), url);
    assert_string_equal(jstr(ev, "etag"), etag); /* nginx's own ETag of the file */
    json_t *sigs = json_object_get(ev, "signatures");
    assert_int_equal(json_array_size(sigs), 1);
    json_t *sig = json_array_get(sigs, 0);
    assert_string_equal(jstr(sig, "signer_id"), "human_operator");
    assert_string_equal(jstr(sig, "algorithm"), "ed25519");
    assert_true(verify_signature(jstr(ev, "checksum"), jstr(sig, "signature")));
    json_decref(evs);

    /* a success is not audited as a failure (the stack's own gov-constitution
     * may audit its verdict on this bundle: only gov-somabrain-sync's count) */
    json_t *audits = events_since(TOPIC_AUDIT, &a0, tenant);
    size_t i, from_sync = 0;
    json_t *a;
    json_array_foreach(audits, i, a) {
        const char *comp = json_string_value(json_object_get(a, "component"));
        from_sync += comp && strcmp(comp, "gov-somabrain-sync") == 0;
    }
    assert_int_equal(from_sync, 0);
    json_decref(audits);
    char *log = log_text("itest-sync-once.log");
    assert_true(log_has(log, "bundle published", tenant, NULL));
    free(log);
}

static void test_daemon_conditional_fetch_and_change(void **state) {
    (void)state;
    char tenant[64], tmpl[128], etag1[64], etag2[64];
    itest_unique("t-etag", tenant, sizeof tenant);
    publish_file(tenant, DOC_V1);
    nginx_etag(tenant, etag1, sizeof etag1);
    http_template(tmpl, sizeof tmpl);
    offsets_t b0;
    topic_ends(TOPIC_BUNDLES, &b0);
    double started = (double)gov_now_micros() / 1e6;

    daemon_t d;
    daemon_start(&d, tmpl, tenant, "itest-sync-daemon.log");
    wait_metric(&d, "somabrain_sync_total", tenant, "outcome", "published", 1, 20000);
    double sync1 = metric(&d, "constitution_last_sync_timestamp_seconds", tenant, NULL, NULL);
    assert_true(sync1 >= started - 1 && sync1 <= (double)gov_now_micros() / 1e6 + 1);
    /* interval 1 s +/- 10 %: two more fetches, both 304, nothing published */
    wait_metric(&d, "somabrain_sync_total", tenant, "outcome", "not_modified", 2, 15000);
    assert_int_equal(metric(&d, "somabrain_sync_total", tenant, "outcome", "published"), 1);
    assert_true(metric(&d, "constitution_last_sync_timestamp_seconds", tenant, NULL, NULL) >
                sync1);
    assert_true(metric(&d, "constitution_fetch_duration_seconds_count", tenant, NULL, NULL) >= 3);
    double errors = metric(&d, "somabrain_sync_errors_total", tenant, NULL, NULL);
    assert_true(errors == 0); /* every reason series exists, all at 0 */
    json_t *evs = events_since(TOPIC_BUNDLES, &b0, tenant);
    assert_int_equal(json_array_size(evs), 1);
    json_decref(evs);

    /* the 304s came from nginx, to our If-None-Match */
    char alog_path[700], want304[300];
    snprintf(alog_path, sizeof alog_path, "%s/access.log", ngx_dir);
    snprintf(want304, sizeof want304, "/b/%s.json 304 inm=%s", tenant, etag1);
    char *alog = read_text(alog_path);
    assert_non_null(strstr(alog, want304));
    free(alog);

    json_t *comp = NULL;
    char cname[96];
    snprintf(cname, sizeof cname, "tenant:%s", tenant);
    assert_int_equal(readyz(&d, cname, &comp), 200);
    assert_non_null(comp);
    assert_string_equal(jstr(comp, "state"), "ok");
    json_decref(comp);
    assert_int_equal(readyz(&d, "kafka", &comp), 200);
    assert_string_equal(jstr(comp, "state"), "ok");
    json_decref(comp);

    /* SomaBrain publishes a new bundle: a new ETag, one new publication */
    publish_file_newer(tenant, DOC_V2); /* a different mtime as well as a different size */
    nginx_etag(tenant, etag2, sizeof etag2);
    assert_string_not_equal(etag1, etag2);
    wait_metric(&d, "somabrain_sync_total", tenant, "outcome", "published", 2, 15000);
    double nm = metric(&d, "somabrain_sync_total", tenant, "outcome", "not_modified");
    wait_metric(&d, "somabrain_sync_total", tenant, "outcome", "not_modified", nm + 1, 15000);
    assert_int_equal(metric(&d, "somabrain_sync_total", tenant, "outcome", "published"), 2);

    char *m = daemon_metrics(&d);
    assert_int_equal(itest_promtool_check(m), 0);
    free(m);
    daemon_stop(&d);

    evs = events_since(TOPIC_BUNDLES, &b0, tenant);
    assert_int_equal(json_array_size(evs), 2);
    json_t *e1 = json_array_get(evs, 0), *e2 = json_array_get(evs, 1);
    assert_string_equal(jstr(e1, "etag"), etag1);
    assert_string_equal(jstr(e2, "etag"), etag2);
    json_t *dj = json_object_get(e2, "document_json");
    assert_int_equal(json_string_length(dj), strlen(DOC_V2));
    assert_memory_equal(json_string_value(dj), DOC_V2, strlen(DOC_V2));
    assert_true(verify_signature(jstr(e2, "checksum"),
                                 jstr(json_array_get(json_object_get(e2, "signatures"), 0),
                                      "signature")));
    json_decref(evs);
}

typedef struct failure_case {
    const char *prefix;       /* tenant prefix; nginx routes slow-, chunked-, redir- */
    const char *reason;
    long http_status;         /* in details_json; 0: none */
    const char *detail_has;   /* substring of the audited detail */
    char tenant[64];
} failure_case_t;

/* Checks a failure as an operator would, after the binary ran. */
static void check_failure_audited(const failure_case_t *c, const offsets_t *a0,
                                  const offsets_t *b0, const char *url_template) {
    json_t *evs = events_since(TOPIC_AUDIT, a0, c->tenant);
    if (json_array_size(evs) < 1)
        fail_msg("no AuditEvent for %s (%s)", c->tenant, c->reason);
    json_t *ev = json_array_get(evs, 0);
    assert_string_equal(jstr(ev, "reason"), c->reason);
    assert_string_equal(jstr(ev, "outcome"), "failure");
    assert_string_equal(jstr(ev, "action"), "constitution.sync");
    assert_string_equal(jstr(ev, "component"), "gov-somabrain-sync");
    assert_string_equal(jstr(ev, "actor"), "gov-somabrain-sync");
    assert_string_equal(jstr(ev, "tenant"), c->tenant);
    assert_true(gov_uuid_v7_valid(jstr(ev, "event_id")));
    char url[256];
    const char *brace = strstr(url_template, "{tenant}");
    snprintf(url, sizeof url, "%.*s%s%s", (int)(brace - url_template), url_template, c->tenant,
             brace + 8);
    assert_string_equal(jstr(ev, "subject"), url);
    json_t *details = json_loads(jstr(ev, "details_json"), 0, NULL);
    if (details == NULL)
        fail_msg("details_json of %s is not JSON", c->tenant);
    json_t *hs = json_object_get(details, "http_status");
    if (c->http_status > 0)
        assert_int_equal(json_integer_value(hs), c->http_status);
    else
        assert_null(hs);
    if (strstr(jstr(details, "detail"), c->detail_has) == NULL)
        fail_msg("%s: detail \"%s\" lacks \"%s\"", c->reason, jstr(details, "detail"),
                 c->detail_has);
    json_decref(details);
    json_decref(evs);
    evs = events_since(TOPIC_BUNDLES, b0, c->tenant);
    if (json_array_size(evs) != 0)
        fail_msg("%s (%s) published a bundle", c->tenant, c->reason);
    json_decref(evs);
}

static void test_failure_matrix(void **state) {
    (void)state;
    failure_case_t cases[] = {
        {"slow", "timeout", 200, "timed out", ""},
        {"missing", "http_status", 404, "404", ""},
        {"big", "too_large", 200, "Content-Length", ""},
        {"chunked-big", "too_large", 200, "body exceeds", ""},
        {"garbage", "invalid_json", 200, "not JSON", ""},
        {"notbundle", "invalid_bundle", 200, "not a JSON object", ""},
        {"shape", "invalid_bundle", 200, "signatures[0].signature", ""},
        {"mismatch", "tenant_mismatch", 200, "someone-else", ""},
        {"redir", "transfer_failed", 302, "file", ""},
    };
    size_t n = sizeof cases / sizeof cases[0];
    char tenants[2048] = "", tmpl[128];
    for (size_t i = 0; i < n; i++) {
        failure_case_t *c = &cases[i];
        itest_unique(c->prefix, c->tenant, sizeof c->tenant);
        snprintf(tenants + strlen(tenants), sizeof tenants - strlen(tenants), "%s%s",
                 i ? ", " : "", c->tenant);
        char *b = NULL;
        if (strcmp(c->prefix, "slow") == 0 || strcmp(c->prefix, "redir") == 0) {
            b = make_bundle(c->tenant, DOC_V1);  /* fine content, served badly */
        } else if (strcmp(c->prefix, "big") == 0 || strcmp(c->prefix, "chunked-big") == 0) {
            /* a well-formed bundle, over the cap only by its size */
            size_t pad = MAX_BODY * 2;
            char *doc = malloc(pad + 64);
            int o = sprintf(doc, "{\"version\": \"9\", \"padding\": \"");
            memset(doc + o, 'x', pad);
            strcpy(doc + o + pad, "\"}");
            b = make_bundle(c->tenant, doc);
            free(doc);
        } else if (strcmp(c->prefix, "garbage") == 0) {
            static const char junk[] = "\x89PNG\r\n\x1a\n\x00\xff garbage {\"tenant\":";
            write_www(c->tenant, junk, sizeof junk - 1);
        } else if (strcmp(c->prefix, "notbundle") == 0) {
            b = strdup("[{\"tenant\": \"x\"}]");
        } else if (strcmp(c->prefix, "shape") == 0) {
            char *good = make_bundle(c->tenant, DOC_V1);
            char *sigpos = strstr(good, ", \"signature\": ");
            assert_non_null(sigpos);
            strcpy(sigpos, "}]}"); /* the signature member is gone */
            b = good;
        } else if (strcmp(c->prefix, "mismatch") == 0) {
            b = make_bundle("someone-else", DOC_V1);
        }
        if (b) {
            write_www(c->tenant, b, strlen(b));
            free(b);
        } /* "missing": no file at all */
    }
    http_template(tmpl, sizeof tmpl);
    offsets_t b0, a0;
    topic_ends(TOPIC_BUNDLES, &b0);
    topic_ends(TOPIC_AUDIT, &a0);

    daemon_t d;
    daemon_start(&d, tmpl, tenants, "itest-sync-failures.log");
    for (size_t i = 0; i < n; i++)
        wait_metric(&d, "somabrain_sync_errors_total", cases[i].tenant, "reason", cases[i].reason,
                    1, 30000);
    for (size_t i = 0; i < n; i++) {
        /* that reason and no other; nothing succeeded */
        double all = metric(&d, "somabrain_sync_errors_total", cases[i].tenant, NULL, NULL);
        double mine = metric(&d, "somabrain_sync_errors_total", cases[i].tenant, "reason",
                             cases[i].reason);
        if (all != mine)
            fail_msg("%s: errors under other reasons (%g of %g)", cases[i].tenant, all - mine,
                     all);
        assert_true(metric(&d, "somabrain_sync_total", cases[i].tenant, NULL, NULL) == 0);
        assert_true(metric(&d, "constitution_last_sync_timestamp_seconds", cases[i].tenant, NULL,
                           NULL) < 0); /* never synced: no series */
        char cname[96];
        json_t *comp = NULL;
        snprintf(cname, sizeof cname, "tenant:%s", cases[i].tenant);
        assert_int_equal(readyz(&d, cname, &comp), 503);
        assert_non_null(comp);
        assert_string_equal(jstr(comp, "state"), "error");
        assert_true(strncmp(jstr(comp, "detail"), cases[i].reason, strlen(cases[i].reason)) == 0);
        json_decref(comp);
    }
    char *m = daemon_metrics(&d);
    assert_int_equal(itest_promtool_check(m), 0);
    free(m);
    daemon_stop(&d);

    char *log = log_text("itest-sync-failures.log");
    for (size_t i = 0; i < n; i++) {
        if (!log_has(log, "bundle sync failed", cases[i].tenant, cases[i].reason))
            fail_msg("no log line for %s (%s)", cases[i].tenant, cases[i].reason);
        check_failure_audited(&cases[i], &a0, &b0, tmpl);
    }
    free(log);
}

static void test_unreachable(void **state) {
    (void)state;
    char tenant[64], tmpl[128];
    itest_unique("t-unreach", tenant, sizeof tenant);
    snprintf(tmpl, sizeof tmpl, "http://127.0.0.1:%d/b/{tenant}.json", closed_port);
    offsets_t b0, a0;
    topic_ends(TOPIC_BUNDLES, &b0);
    topic_ends(TOPIC_AUDIT, &a0);

    run_env_t env;
    assert_int_equal(run_once(sync_env(&env, tmpl, tenant, NULL), "itest-sync-unreach.log",
                              30000), 1);
    char *log = log_text("itest-sync-unreach.log");
    assert_true(log_has(log, "bundle sync failed", tenant, "unreachable"));
    free(log);

    daemon_t d;
    daemon_start(&d, tmpl, tenant, "itest-sync-unreach-daemon.log");
    wait_metric(&d, "somabrain_sync_errors_total", tenant, "reason", "unreachable", 2, 20000);
    json_t *comp = NULL;
    char cname[96];
    snprintf(cname, sizeof cname, "tenant:%s", tenant);
    assert_int_equal(readyz(&d, cname, &comp), 503);
    assert_string_equal(jstr(comp, "state"), "error");
    json_decref(comp);
    daemon_stop(&d);

    failure_case_t c = {"", "unreachable", 0, "127.0.0.1", ""};
    snprintf(c.tenant, sizeof c.tenant, "%s", tenant);
    check_failure_audited(&c, &a0, &b0, tmpl);
    json_t *evs = events_since(TOPIC_AUDIT, &a0, tenant);
    assert_true(json_array_size(evs) >= 3); /* the --once run and two daemon fetches */
    json_decref(evs);
}

static void test_kafka_unavailable(void **state) {
    (void)state;
    char tenant[64], tmpl[128], brokers[64];
    itest_unique("t-nokafka", tenant, sizeof tenant);
    publish_file(tenant, DOC_V1);
    http_template(tmpl, sizeof tmpl);
    snprintf(brokers, sizeof brokers, "GOV_KAFKA_BROKERS=127.0.0.1:%d", closed_port);
    const char *extra[] = {brokers, "GOV_PRODUCE_TIMEOUT=1s", NULL};
    offsets_t b0;
    topic_ends(TOPIC_BUNDLES, &b0);
    run_env_t env;
    int64_t t0 = gov_mono_micros();
    assert_int_equal(run_once(sync_env(&env, tmpl, tenant, extra), "itest-sync-nokafka.log",
                              30000), 1);
    /* bounded: the bundle and the audit event each wait about produce_timeout */
    assert_true(gov_mono_micros() - t0 < 15 * 1000000LL);
    char *log = log_text("itest-sync-nokafka.log");
    assert_true(log_has(log, "bundle sync failed", tenant, "kafka_unavailable"));
    assert_true(log_has(log, "audit event not delivered", tenant, "kafka_unavailable"));
    free(log);
    /* and, on the real broker, nothing arrived later either: a marker
     * bundle of the tenant (same key, same partition), produced after the
     * process was reaped, is the only event of the tenant up to the end */
    json_t *marker = itest_bundle_event(tenant, "{\"version\":\"1.0.0\"}", "jcs", "sha3-512",
                                        NULL, (EVP_PKEY *const[]){signing_key},
                                        (const char *const[]){"marker"}, (const int[]){0, -1});
    itest_produce_event(TOPIC_BUNDLES, "ConstitutionBundle", marker);
    json_t *evs = events_since(TOPIC_BUNDLES, &b0, tenant);
    assert_int_equal(json_array_size(evs), 1);
    assert_string_equal(jstr(json_array_get(evs, 0), "event_id"), jstr(marker, "event_id"));
    json_decref(evs);
    json_decref(marker);
}

static void test_https_verifies_the_server(void **state) {
    (void)state;
    char tenant[64], tmpl[128], ca[700], ca_env[800];
    itest_unique("t-tls", tenant, sizeof tenant);
    publish_file(tenant, DOC_V2);
    snprintf(tmpl, sizeof tmpl, "https://127.0.0.1:%d/b/{tenant}.json", tls_port);
    snprintf(ca, sizeof ca, "%s/cert.pem", ngx_dir);
    snprintf(ca_env, sizeof ca_env, "GOV_SOMABRAIN_CA_FILE=%s", ca);
    offsets_t b0, a0;
    topic_ends(TOPIC_BUNDLES, &b0);
    topic_ends(TOPIC_AUDIT, &a0);

    /* the system trust store does not know our CA: refused, audited */
    run_env_t env;
    assert_int_equal(run_once(sync_env(&env, tmpl, tenant, NULL), "itest-sync-tls-untrusted.log",
                              30000), 1);
    char *log = log_text("itest-sync-tls-untrusted.log");
    assert_true(log_has(log, "bundle sync failed", tenant, "tls"));
    free(log);
    failure_case_t c = {"", "tls", 0, "certificate", ""};
    snprintf(c.tenant, sizeof c.tenant, "%s", tenant);
    check_failure_audited(&c, &a0, &b0, tmpl);

    /* with ca_file it is trusted: published, the document intact */
    const char *extra[] = {ca_env, NULL};
    assert_int_equal(run_once(sync_env(&env, tmpl, tenant, extra), "itest-sync-tls.log", 30000),
                     0);
    json_t *evs = events_since(TOPIC_BUNDLES, &b0, tenant);
    assert_int_equal(json_array_size(evs), 1);
    json_t *dj = json_object_get(json_array_get(evs, 0), "document_json");
    assert_int_equal(json_string_length(dj), strlen(DOC_V2));
    assert_memory_equal(json_string_value(dj), DOC_V2, strlen(DOC_V2));
    json_decref(evs);
}

/* nginx's stub_status "Writing" count: responses being written, the
 * status page's own included; -1 when it did not answer. */
static long nginx_writing(void) {
    char url[96], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/nginx-status", http_port);
    long st = itest_http_get(url, &body);
    const char *w = st == 200 && body ? strstr(body, "Writing: ") : NULL;
    long n = w ? strtol(w + 9, NULL, 10) : -1;
    free(body);
    return n;
}

static int nginx_writing_at_most_one(void *opaque) {
    (void)opaque;
    long n = nginx_writing();
    return n >= 0 && n <= 1;
}

static int nginx_writing_two(void *opaque) {
    (void)opaque;
    return nginx_writing() >= 2;
}

/* A fetch in flight does not hold up a shutdown: total_timeout is 20 s and
 * nginx trickles the body, yet SIGTERM ends the process within about a
 * second, and the abandoned fetch is no failure (nothing audited). */
static void test_sigterm_abandons_a_slow_fetch(void **state) {
    (void)state;
    char tenant[64], tmpl[128];
    itest_unique("slow", tenant, sizeof tenant);
    publish_file(tenant, DOC_V1);
    http_template(tmpl, sizeof tmpl);
    offsets_t a0;
    topic_ends(TOPIC_AUDIT, &a0);
    /* nginx writes no response but the status page's own (earlier tests'
     * trickled fetches are over) */
    if (itest_wait_for(nginx_writing_at_most_one, NULL, 30000, 50) < 0)
        fail_msg("nginx still writes an earlier response");
    char port[32];
    int p = itest_free_port();
    snprintf(port, sizeof port, "GOV_ADMIN_PORT=%d", p);
    const char *extra[] = {port, "GOV_SOMABRAIN_TIMEOUT=20s", NULL};
    daemon_t d;
    snprintf(d.url, sizeof d.url, "http://127.0.0.1:%d", p);
    snprintf(d.logname, sizeof d.logname, "itest-sync-sigterm.log");
    const char *argv[] = {itest_bin("gov-somabrain-sync"), NULL};
    d.pid = itest_spawn(argv, sync_env(&d.env, tmpl, tenant, extra), d.logname);
    char hz[96];
    snprintf(hz, sizeof hz, "%s/healthz", d.url);
    assert_true(itest_wait_http(hz, 200, 20000));
    /* the first fetch (due at start) is in flight: nginx is trickling it */
    if (itest_wait_for(nginx_writing_two, NULL, 20000, 20) < 0)
        fail_msg("the first fetch never reached nginx (see %s)", d.logname);
    json_t *comp = NULL;
    char cname[96];
    snprintf(cname, sizeof cname, "tenant:%s", tenant);
    assert_int_equal(readyz(&d, cname, &comp), 503);
    assert_string_equal(jstr(comp, "state"), "not_ready"); /* still fetching */
    json_decref(comp);
    int64_t t0 = gov_mono_micros();
    daemon_stop(&d);
    assert_true(gov_mono_micros() - t0 < 2500000);
    json_t *evs = events_since(TOPIC_AUDIT, &a0, tenant);
    assert_int_equal(json_array_size(evs), 0);
    json_decref(evs);
}

static void test_configuration_is_checked(void **state) {
    (void)state;
    char tmpl[128];
    http_template(tmpl, sizeof tmpl);
    static const struct {
        const char *url, *tenants;
    } bad[] = {
        {"http://127.0.0.1:1/b/fixed.json", "acme"},          /* no {tenant} */
        {"ftp://127.0.0.1/b/{tenant}.json", "acme"},          /* not http(s) */
        {"http://user:pw@127.0.0.1/b/{tenant}.json", "acme"}, /* credentials */
        {NULL, "acme, -bad"},                                 /* tenant syntax */
        {NULL, "acme,acme"},                                  /* listed twice */
        {NULL, "acme,,b"},                                    /* an empty item */
        {NULL, ""},                                           /* --once with none */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_env_t env;
        assert_int_equal(run_once(sync_env(&env, bad[i].url ? bad[i].url : tmpl, bad[i].tenants,
                                           NULL), "itest-sync-config.log", 10000), 2);
    }
    run_env_t env;
    const char *jitter[] = {"GOV_SYNC_JITTER=1.5", NULL};
    assert_int_equal(run_once(sync_env(&env, tmpl, "acme", jitter), "itest-sync-config.log", 10000),
                     2);

    /* not configured at all: a daemon stays up (the stack starts every
     * binary) and says so in /readyz */
    char port[32];
    int p = itest_free_port();
    snprintf(port, sizeof port, "GOV_ADMIN_PORT=%d", p);
    const char *env2[] = {port, NULL};
    const char *argv[] = {itest_bin("gov-somabrain-sync"), NULL};
    daemon_t d = {.pid = itest_spawn(argv, env2, "itest-sync-unconfigured.log")};
    snprintf(d.url, sizeof d.url, "http://127.0.0.1:%d", p);
    snprintf(d.logname, sizeof d.logname, "itest-sync-unconfigured.log");
    char hz[96];
    snprintf(hz, sizeof hz, "%s/healthz", d.url);
    assert_true(itest_wait_http(hz, 200, 20000));
    json_t *comp = NULL;
    assert_int_equal(readyz(&d, "config", &comp), 503);
    assert_string_equal(jstr(comp, "state"), "not_ready");
    json_decref(comp);
    daemon_stop(&d);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_once_publishes_the_exact_document),
        cmocka_unit_test(test_daemon_conditional_fetch_and_change),
        cmocka_unit_test(test_failure_matrix),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_kafka_unavailable),
        cmocka_unit_test(test_https_verifies_the_server),
        cmocka_unit_test(test_sigterm_abandons_a_slow_fetch),
        cmocka_unit_test(test_configuration_is_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
