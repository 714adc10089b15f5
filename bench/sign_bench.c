/* sign_bench.c - raw Ed25519 signing rate of a key store backend.
 *
 *   build/release/bench/sign_bench file   [threads] [seconds]    (a temp key directory)
 *   build/release/bench/sign_bench pkcs11 [threads] [seconds]    (GOV_PKCS11_MODULE,
 *        GOV_PKCS11_TOKEN_LABEL, GOV_PKCS11_PIN or GOV_PKCS11_PIN_FILE; generates one key
 *        on that token)
 *
 * What it measures: signatures per second through gov_signer_sign over a
 * JWT-sized message (about 300 bytes), each thread signing in a loop for
 * the given time (default 1 thread, 3 s) after a short warm-up, and the
 * per-signature latency percentiles.  Every 64th signature is verified by
 * OpenSSL so a broken backend cannot post a rate.  Prints one JSON object.
 *
 * What it does not do: issue tokens or produce audit events (that is the
 * token-issue bench of `make bench`, which this feeds as the raw ceiling).
 */
#include <ftw.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "gov_alloc.h"
#include "gov_signer_rt.h"

#define MAX_THREADS 64
#define MAX_SAMPLES 4000000

typedef struct worker {
    gov_signer_t *s;
    int64_t end_ns;
    uint64_t count, bad;
    uint64_t *lat;
    size_t nlat;
} worker_t;

static const char msg_text[] =
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImtQcktfcW14VldhWVZBOXd3QkY2SXVvM3ZWeno3VHhIQ1R3WEJ5Z3JTNGsiLCJ0"
    "eXAiOiJKV1QifQ.eyJhdWQiOiJzb21hIiwiY29uc3RpdHV0aW9uX2hhc2giOiJhYmNkZWYwMTIzNDU2Nzg5IiwiZXhwI"
    "joxNzAwMDAwMDAwLCJpYXQiOjE3MDAwMDAwMDAsImlzcyI6InNvbWEtZ292IiwianRpIjoiMDEyMzQ1Njc4OSIsInNjb3"
    "BlIjoiYSBiIiwic3ViIjoiY2xpZW50IiwidGVuYW50IjoiYWNtZSJ9";

static int verify(const uint8_t *pub, const uint8_t *m, size_t n, const uint8_t *sig) {
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = k && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(md, sig, 64, m, n) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok;
}

static void *sign_loop(void *arg) {
    worker_t *w = arg;
    const uint8_t *m = (const uint8_t *)msg_text;
    size_t n = sizeof msg_text - 1;
    char eb[256];
    uint8_t sig[64];
    while (bu_now_ns() < w->end_ns) {
        int64_t t0 = bu_now_ns();
        if (gov_signer_sign(w->s, m, n, sig, eb, sizeof eb) != GOV_OK) {
            w->bad++;
            continue;
        }
        int64_t t1 = bu_now_ns();
        if (w->nlat < MAX_SAMPLES / MAX_THREADS)
            w->lat[w->nlat++] = (uint64_t)(t1 - t0);
        if (w->count % 64 == 0 && !verify(gov_signer_public_key(w->s), m, n, sig))
            w->bad++;
        w->count++;
    }
    return NULL;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "file") != 0 && strcmp(argv[1], "pkcs11") != 0)) {
        fprintf(stderr, "usage: %s file|pkcs11 [threads] [seconds]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    double seconds = argc > 3 ? atof(argv[3]) : 3.0;
    if (threads < 1 || threads > MAX_THREADS || seconds <= 0) {
        fprintf(stderr, "threads 1..%d, seconds > 0\n", MAX_THREADS);
        return 2;
    }
    char dir[64] = "";
    gov_keystore_config_t cfg = {0};
    if (strcmp(argv[1], "file") == 0) {
        snprintf(dir, sizeof dir, "/tmp/gov_sign_bench_XXXXXX");
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        cfg.backend = GOV_KEYSTORE_FILE;
        cfg.key_dir = dir;
    } else {
        cfg.backend = GOV_KEYSTORE_PKCS11;
        cfg.pkcs11_module = getenv("GOV_PKCS11_MODULE");
        cfg.pkcs11_token_label = getenv("GOV_PKCS11_TOKEN_LABEL");
        cfg.pkcs11_pin = getenv("GOV_PKCS11_PIN");
        cfg.pkcs11_pin_file = getenv("GOV_PKCS11_PIN_FILE");
    }
    char eb[512];
    gov_reason_t why = GOV_REASON_COUNT_;
    gov_keystore_t *ks = NULL;
    gov_signer_t *s = NULL;
    int code = 1;
    worker_t w[MAX_THREADS];
    memset(w, 0, sizeof w);
    if (gov_keystore_open(&cfg, &ks, &why, eb, sizeof eb) != GOV_OK ||
        gov_keystore_generate(ks, &s, &why, eb, sizeof eb) != GOV_OK) {
        fprintf(stderr, "sign_bench: %s: %s\n", gov_reason_code(why), eb);
        goto out;
    }
    /* Warm-up: every thread's first signature opens its session (PKCS#11). */
    int64_t start = bu_now_ns() + 200000000LL;
    int64_t end = start + (int64_t)(seconds * 1e9);
    pthread_t th[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        w[i].s = s;
        w[i].end_ns = end;
        w[i].lat = malloc(sizeof(uint64_t) * (MAX_SAMPLES / MAX_THREADS));
        if (w[i].lat == NULL || pthread_create(&th[i], NULL, sign_loop, &w[i]) != 0) {
            fprintf(stderr, "sign_bench: cannot start thread %d\n", i);
            return 1;
        }
    }
    uint64_t total = 0, bad = 0;
    size_t nlat = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += w[i].count;
        bad += w[i].bad;
        nlat += w[i].nlat;
    }
    /* The whole run (warm-up included) is the denominator: a slight
     * underestimate, never an overestimate. */
    double elapsed = (double)(end - start + 200000000LL) / 1e9;
    uint64_t *all = malloc(sizeof(uint64_t) * (nlat ? nlat : 1));
    size_t k = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + k, w[i].lat, w[i].nlat * sizeof(uint64_t));
        k += w[i].nlat;
    }
    bu_sort_u64(all, nlat);
    json_t *o = json_object();
    json_object_set_new(o, "backend", json_string(gov_signer_backend(s)));
    json_object_set_new(o, "threads", json_integer(threads));
    json_object_set_new(o, "seconds", json_real(elapsed));
    json_object_set_new(o, "signatures", json_integer((json_int_t)total));
    json_object_set_new(o, "signatures_per_s", json_integer((json_int_t)((double)total / elapsed)));
    json_object_set_new(o, "failed", json_integer((json_int_t)bad));
    bu_put_latency(o, all, nlat);
    char *text = json_dumps(o, JSON_SORT_KEYS);
    printf("%s\n", text);
    free(text);
    json_decref(o);
    free(all);
    code = bad == 0 ? 0 : 1;
out:
    for (int i = 0; i < MAX_THREADS; i++)
        free(w[i].lat);
    gov_signer_free(s);
    gov_keystore_free(ks);
    if (dir[0] != '\0')
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return code;
}
