/* upstream_counter.c - a real HTTP upstream for the nginx gateway that
 * counts and remembers what reaches it (test_gateway, and the stack's
 * default upstream behind deploy/nginx).
 *
 *   upstream_counter <port> [name]
 *
 * Every request except GET /__counts is counted and answered 200 with a
 * JSON echo {"name","method","uri","policy":{<header>: <value>}} where
 * policy holds every X-Policy-* and X-Constitution-Hash header it received
 * (names lower-cased), so a test sees exactly what the gateway passed on.
 * A request with a Content-Digest whose body does not match it (sha-256) is
 * answered 400 and counted as digest_mismatch: the check RFC 9530 asks of
 * the recipient, which nginx cannot make.  GET /__counts answers
 * {"name","requests","digest_mismatch","last":<the last echo>} and is not
 * counted; a test reads it on the upstream's own port, never through nginx.
 *
 * How: libmicrohttpd, one internal thread, bodies bounded at 1 MiB, a mutex
 * over the counters.  Stops on SIGTERM/SIGINT.
 * What it does not do: TLS, keep more than the last request, or decide
 * anything: it is the application behind the gateway.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_buf.h"
#include "gov_hash.h"

#define MAX_BODY (1 << 20)

static volatile sig_atomic_t running = 1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long requests, digest_mismatch;
static char *last;            /* the last echo (gov_malloc) */
static const char *name = "upstream-counter";

static void on_signal(int sig) {
    (void)sig;
    running = 0;
}

typedef struct req_ctx {
    gov_buf_t body;
} req_ctx_t;

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value) {
    (void)kind;
    json_t *policy = cls;
    if (strncasecmp(key, "X-Policy-", 9) != 0 && strcasecmp(key, "X-Constitution-Hash") != 0)
        return MHD_YES;
    char lower[128];
    size_t i = 0;
    for (; key[i] && i + 1 < sizeof lower; i++)
        lower[i] = (char)tolower((unsigned char)key[i]);
    lower[i] = '\0';
    /* a repeated header is kept as "a, b": a test sees any duplicate */
    const char *had = json_string_value(json_object_get(policy, lower));
    if (had) {
        char both[1024];
        snprintf(both, sizeof both, "%s, %s", had, value);
        json_object_set_new(policy, lower, json_string(both));
    } else {
        json_object_set_new(policy, lower, json_string(value));
    }
    return MHD_YES;
}

/* 1 when the body matches a sha-256 Content-Digest, or there is none. */
static int digest_matches(const char *cd, const req_ctx_t *rc) {
    if (cd == NULL)
        return 1;
    unsigned char d[GOV_SHA256_LEN];
    char want[64] = "sha-256=:";
    if (gov_sha256(rc->body.data ? rc->body.data : "", rc->body.len, d) != GOV_OK)
        return 0;
    EVP_EncodeBlock((unsigned char *)want + 9, d, (int)sizeof d);
    strcat(want, ":");
    return strcmp(cd, want) == 0;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(body ? strlen(body) : 0, body,
                                                             MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)cls;
    (void)version;
    req_ctx_t *rc = *con_cls;
    if (rc == NULL) {
        rc = gov_calloc(1, sizeof *rc);
        if (rc == NULL)
            return MHD_NO;
        gov_buf_init(&rc->body, MAX_BODY);
        *con_cls = rc;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        gov_buf_put(&rc->body, upload, *upload_size);
        *upload_size = 0;
        return rc->body.err == GOV_OK ? MHD_YES : MHD_NO;
    }
    if (strcmp(method, "GET") == 0 && strcmp(url, "/__counts") == 0) {
        pthread_mutex_lock(&mu);
        json_t *j = json_pack("{s:s, s:I, s:I}", "name", name, "requests", (json_int_t)requests,
                              "digest_mismatch", (json_int_t)digest_mismatch);
        json_t *l = last ? json_loads(last, 0, NULL) : NULL;
        pthread_mutex_unlock(&mu);
        json_object_set_new(j, "last", l ? l : json_null());
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        return answer(c, 200, text);
    }
    json_t *policy = json_object();
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect, policy);
    const char *cd = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Digest");
    int ok = digest_matches(cd, rc);
    json_t *echo = json_pack("{s:s, s:s, s:s, s:o, s:b}", "name", name, "method", method, "uri",
                             url, "policy", policy, "digest_ok", ok);
    char *text = json_dumps(echo, JSON_COMPACT);
    json_decref(echo);
    pthread_mutex_lock(&mu);
    requests++;
    if (!ok)
        digest_mismatch++;
    gov_free(last);
    last = text ? gov_strdup(text) : NULL;
    pthread_mutex_unlock(&mu);
    return answer(c, ok ? 200 : 400, text);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    req_ctx_t *rc = *con_cls;
    if (rc) {
        gov_buf_free(&rc->body);
        gov_free(rc);
        *con_cls = NULL;
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: upstream_counter <port> [name]\n");
        return 2;
    }
    if (argc > 2)
        name = argv[2];
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(argv[1]));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)atoi(argv[1]), NULL, NULL,
        on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "upstream_counter: cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    fprintf(stderr, "{\"msg\":\"listening\",\"component\":\"%s\",\"port\":%s}\n", name, argv[1]);
    while (running)
        usleep(50000);
    MHD_stop_daemon(d);
    gov_free(last);
    return 0;
}
