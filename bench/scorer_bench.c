/* scorer_bench - the policy scorer in process, without HTTP (make bench).
 *
 *   scorer_bench --pack PACK.json --constitution BUNDLE.json --requests FILE
 *                [--threads 1,2] [--duration S] [--warmup S] [--out FILE]
 *
 * Parses the rule pack (gov_rulepack_parse: validation + Vectorscan compile)
 * and the constitution's rules once, then, for each thread count, runs that
 * many threads that each loop over the request bodies (one JSON a line,
 * from gen_requests; thread t starts at line t*n/threads) for the warm-up,
 * then for the duration, timing every evaluation with CLOCK_MONOTONIC.
 *
 * One evaluation is what gov-edge's handler does per request apart from
 * HTTP and its own ids and timestamps: gov_policy_request_parse (bounded
 * parse, validation, SHA-256 of the JCS form), gov_policy_evaluate (one
 * Vectorscan scan of the prompt, 50 rules), gov_policy_decision_to_json
 * (the response body).  Each thread has its own matcher scratch.
 *
 * Before timing, every request is evaluated once and the mix of decisions
 * is printed (it is also in the JSON).  Any evaluation error aborts.
 *
 * Output (--out, else stdout): a JSON array, one entry per thread count:
 * {"name","threads","throughput_rps","p50_ms","p95_ms","p99_ms","p999_ms",
 *  "max_ms","mean_ms","requests","errors","duration_s","warmup_s","mix",
 *  "command"}; name is "scorer-inprocess" for 2 threads and
 * "scorer-inprocess-<T>t" otherwise.  Percentiles are nearest-rank over
 * every timed evaluation; throughput is evaluations / measured seconds
 * summed over threads.
 */
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "gov_alloc.h"
#include "gov_policy.h"
#include "gov_rulepack.h"

typedef struct shared {
    const gov_policy_constitution_t *cons;
    const gov_rulepack_t *pack;
    const bu_lines_t *req;
    int64_t warm_end_ns, end_ns;
    atomic_int errors;
} shared_t;

typedef struct worker {
    pthread_t th;
    shared_t *sh;
    size_t start;
    uint64_t *lat, *cpu;   /* per call: wall and this thread's CPU time, ns */
    size_t n, cap;
    int64_t first_ns, last_ns;
} worker_t;

static int eval_one(const shared_t *sh, gov_matcher_scratch_t *scratch, size_t i,
                    gov_decision_t *decision) {
    char eb[256];
    gov_policy_request_t req;
    gov_policy_decision_t d;
    char *body = NULL;
    size_t blen = 0;
    gov_reason_t why = GOV_REASON_NONE;
    if (gov_policy_request_parse(sh->req->line[i], sh->req->len[i], NULL, &req, &why, eb,
                                 sizeof eb) != GOV_OK) {
        fprintf(stderr, "scorer_bench: request %zu: %s: %s\n", i + 1, gov_reason_code(why), eb);
        return -1;
    }
    if (gov_policy_evaluate(sh->cons, sh->pack, &req, scratch, &d, &why, eb, sizeof eb) !=
        GOV_OK) {
        fprintf(stderr, "scorer_bench: request %zu: %s: %s\n", i + 1, gov_reason_code(why), eb);
        gov_policy_request_clear(&req);
        return -1;
    }
    int rc = gov_policy_decision_to_json(&d, NULL, &body, &blen) == GOV_OK ? 0 : -1;
    if (decision)
        *decision = d.decision;
    gov_free(body);
    gov_policy_decision_clear(&d);
    gov_policy_request_clear(&req);
    return rc;
}

/* This thread's CPU time: unlike the wall clock it does not run while the
 * thread waits for a core, so on a shared machine its percentiles are the
 * cost of an evaluation, not of the machine's load.  Its own read (a system
 * call) is inside every sample, before and after alike. */
static int64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    shared_t *sh = w->sh;
    gov_matcher_scratch_t *scratch = NULL;
    if (gov_matcher_scratch_new(gov_rulepack_matcher(sh->pack), &scratch) != GOV_OK) {
        atomic_fetch_add(&sh->errors, 1);
        return NULL;
    }
    size_t i = w->start, n = sh->req->n;
    int measuring = 0;
    for (;;) {
        int64_t c0 = thread_cpu_ns();
        int64_t t0 = bu_now_ns();
        if (t0 >= sh->end_ns)
            break;
        if (!measuring && t0 >= sh->warm_end_ns) {
            measuring = 1;
            w->first_ns = t0;
        }
        if (eval_one(sh, scratch, i, NULL) != 0) {
            atomic_fetch_add(&sh->errors, 1);
            break;
        }
        int64_t t1 = bu_now_ns();
        int64_t c1 = thread_cpu_ns();
        if (measuring) {
            if (w->n == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 1 << 16;
                w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
                w->cpu = realloc(w->cpu, w->cap * sizeof *w->cpu);
                if (w->lat == NULL || w->cpu == NULL) {
                    atomic_fetch_add(&sh->errors, 1);
                    break;
                }
            }
            w->cpu[w->n] = (uint64_t)(c1 - c0);
            w->lat[w->n++] = (uint64_t)(t1 - t0);
            w->last_ns = t1;
        }
        if (++i == n)
            i = 0;
    }
    gov_matcher_scratch_free(scratch);
    return NULL;
}

static void usage(FILE *f) {
    fputs("usage: scorer_bench --pack PACK.json --constitution BUNDLE.json --requests FILE\n"
          "                    [--threads 1,2] [--duration S] [--warmup S] [--out FILE]\n",
          f);
}

int main(int argc, char **argv) {
    const char *pack_path = NULL, *bundle_path = NULL, *req_path = NULL, *out_path = NULL;
    const char *threads_arg = "1,2";
    double duration = 5, warmup = 1;
    static const struct option opts[] = {
        {"pack", required_argument, NULL, 'p'},     {"constitution", required_argument, NULL, 'c'},
        {"requests", required_argument, NULL, 'r'}, {"threads", required_argument, NULL, 't'},
        {"duration", required_argument, NULL, 'd'}, {"warmup", required_argument, NULL, 'w'},
        {"out", required_argument, NULL, 'o'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "p:c:r:t:d:w:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': pack_path = optarg; break;
        case 'c': bundle_path = optarg; break;
        case 'r': req_path = optarg; break;
        case 't': threads_arg = optarg; break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'o': out_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!pack_path || !bundle_path || !req_path || optind != argc || duration <= 0 || warmup < 0) {
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
        fprintf(stderr, "scorer_bench: %s: %s\n", pack_path, eb);
        return 1;
    }
    free(text);
    json_t *doc = bu_bundle_document(bundle_path);
    if (doc == NULL)
        return 1;
    gov_policy_constitution_t *cons = NULL;
    if (gov_policy_constitution_from_json(doc, &cons, eb, sizeof eb) != GOV_OK) {
        fprintf(stderr, "scorer_bench: %s: %s\n", bundle_path, eb);
        return 1;
    }
    bu_lines_t req;
    if (bu_read_lines(req_path, &req) != 0)
        return 1;

    shared_t sh = {.cons = cons, .pack = pack, .req = &req};

    /* The mix of decisions over the request set (one pass). */
    size_t mix[3] = {0, 0, 0};
    gov_matcher_scratch_t *scratch = NULL;
    if (gov_matcher_scratch_new(gov_rulepack_matcher(pack), &scratch) != GOV_OK)
        return 1;
    for (size_t i = 0; i < req.n; i++) {
        gov_decision_t d;
        if (eval_one(&sh, scratch, i, &d) != 0)
            return 1;
        mix[d]++;
    }
    gov_matcher_scratch_free(scratch);
    fprintf(stderr, "scorer_bench: %zu requests: allow %zu, review %zu, deny %zu\n", req.n, mix[0],
            mix[1], mix[2]);

    char command[4096];
    size_t o = 0;
    for (int i = 0; i < argc && o < sizeof command - 2; i++)
        o += (size_t)snprintf(command + o, sizeof command - o, "%s%s", i ? " " : "", argv[i]);

    json_t *results = json_array();
    const char *p = threads_arg;
    while (*p) {
        char *end;
        long nt = strtol(p, &end, 10);
        if (end == p || nt < 1 || nt > 64) {
            usage(stderr);
            return 2;
        }
        p = *end == ',' ? end + 1 : end;
        worker_t *w = calloc((size_t)nt, sizeof *w);
        int64_t now = bu_now_ns();
        sh.warm_end_ns = now + (int64_t)(warmup * 1e9);
        sh.end_ns = sh.warm_end_ns + (int64_t)(duration * 1e9);
        for (long t = 0; t < nt; t++) {
            w[t].sh = &sh;
            w[t].start = (size_t)t * req.n / (size_t)nt;
            if (pthread_create(&w[t].th, NULL, worker_main, &w[t]) != 0) {
                fprintf(stderr, "scorer_bench: pthread_create failed\n");
                return 1;
            }
        }
        size_t total = 0;
        double rps = 0;
        for (long t = 0; t < nt; t++) {
            pthread_join(w[t].th, NULL);
            total += w[t].n;
            if (w[t].n > 0 && w[t].last_ns > w[t].first_ns)
                rps += (double)w[t].n / ((double)(w[t].last_ns - w[t].first_ns) / 1e9);
        }
        if (atomic_load(&sh.errors) != 0) {
            fprintf(stderr, "scorer_bench: evaluation errors; aborting\n");
            return 1;
        }
        uint64_t *all = malloc((total ? total : 1) * sizeof *all);
        uint64_t *cpu = malloc((total ? total : 1) * sizeof *cpu);
        size_t k = 0;
        double cpu_sum = 0;
        for (long t = 0; t < nt; t++) {
            memcpy(all + k, w[t].lat, w[t].n * sizeof *all);
            memcpy(cpu + k, w[t].cpu, w[t].n * sizeof *cpu);
            k += w[t].n;
            free(w[t].lat);
            free(w[t].cpu);
        }
        for (size_t q = 0; q < total; q++)
            cpu_sum += (double)cpu[q];
        bu_sort_u64(all, total);
        bu_sort_u64(cpu, total);
        char name[64];
        if (nt == 2)
            snprintf(name, sizeof name, "scorer-inprocess");
        else
            snprintf(name, sizeof name, "scorer-inprocess-%ldt", nt);
        json_t *e = json_object();
        json_object_set_new(e, "name", json_string(name));
        json_object_set_new(e, "threads", json_integer(nt));
        json_object_set_new(e, "concurrency", json_integer(nt));
        json_object_set_new(e, "throughput_rps", json_real((double)(long long)(rps + 0.5)));
        bu_put_latency(e, all, total);
        json_object_set_new(e, "cpu_p50_us", json_real(bu_percentile(cpu, total, 50) / 1e3));
        json_object_set_new(e, "cpu_p95_us", json_real(bu_percentile(cpu, total, 95) / 1e3));
        json_object_set_new(e, "cpu_p99_us", json_real(bu_percentile(cpu, total, 99) / 1e3));
        json_object_set_new(e, "cpu_mean_us", json_real(total ? cpu_sum / (double)total / 1e3 : 0));
        json_object_set_new(e, "requests", json_integer((json_int_t)total));
        json_object_set_new(e, "errors", json_integer(0));
        json_object_set_new(e, "duration_s", json_real(duration));
        json_object_set_new(e, "warmup_s", json_real(warmup));
        json_object_set_new(e, "mix", json_pack("{s:I, s:I, s:I}", "allow", (json_int_t)mix[0],
                                                "review", (json_int_t)mix[1], "deny",
                                                (json_int_t)mix[2]));
        json_object_set_new(e, "measures",
                            json_string("gov_policy_request_parse + gov_policy_evaluate + "
                                        "gov_policy_decision_to_json, per call, in process"));
        json_object_set_new(e, "command", json_string(command));
        json_array_append_new(results, e);
        fprintf(stderr,
                "scorer_bench: %s: %.0f evaluations/s, p50 %.3f ms, p99 %.3f ms; CPU per "
                "evaluation p50 %.1f us, mean %.1f us\n",
                name, rps, bu_percentile(all, total, 50) / 1e6, bu_percentile(all, total, 99) / 1e6,
                bu_percentile(cpu, total, 50) / 1e3, total ? cpu_sum / (double)total / 1e3 : 0);
        free(all);
        free(cpu);
        free(w);
    }
    int rc = 0;
    if (out_path)
        rc = json_dump_file(results, out_path, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) == 0 ? 0 : 1;
    else
        rc = json_dumpf(results, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) == 0 ? 0 : 1;
    json_decref(results);
    json_decref(doc);
    bu_lines_free(&req);
    gov_policy_constitution_free(cons);
    gov_rulepack_free(pack);
    return rc;
}
