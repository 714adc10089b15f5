/* report - var/bench/results.json, the table and the ratios of one bench run.
 *
 *   report --out RESULTS.json [--summary SUMMARY.json] FRAGMENT.json...
 *
 * Each fragment is what one benchmark wrote: an object or an array of
 * objects.  Objects with "tool": "wrk" carry wrk's raw numbers (the
 * WRK_JSON line of bench/wrk-cycle.lua's done(), under "wrk") and are
 * normalized here: throughput_rps = requests / wrk's measured duration,
 * pXX_ms = wrk's histogram percentiles (microseconds) / 1000, errors =
 * connect + read + write + status + timeout errors.  Every other member
 * (name, command, concurrency, ...) is kept.
 *
 * RESULTS.json is the list of entries, each with at least "name",
 * "throughput_rps", "p50_ms", "p95_ms", "p99_ms" (and "p999_ms").  The
 * ratios are computed only from entries of this run (the fragments given):
 *   throughput  evaluate / opa-evaluate       (wrk, same concurrency)
 *   p95         opa-evaluate / evaluate       (how many times lower the edge's p95 is)
 *   cpu         OPA's server CPU per request / the edge's (wrk entries, from run.sh's
 *               /proc accounting)
 *   and the p95 pair for the fixed-rate entries evaluate-rate-R / opa-evaluate-rate-R,
 *   when both answered every request (else "n/a"), and their delivered throughput ratio;
 *   tokens      token-issue-pem / hydra-token-issue and token-issue-pkcs11 /
 *               hydra-token-issue (tokens/s, same load, same run), and each edge's
 *               tokens/s over the raw signing rate of its key store (sign-raw-pem,
 *               sign-raw-pkcs11: bench/sign_bench, normalized here from "tool":
 *               "sign_bench": throughput_rps = signatures_per_s, errors = failed).
 * The targets of the issue are judged from the same entries:
 *   "p95 <= 1 ms at 10,000 rps"  evaluate-rate-10000: p95_ms <= 1 with no errors and
 *                                nothing unfinished
 *   ">= 3x OPA's throughput"     throughput ratio >= 3 (issue 12: ">= 10x", the same ratio)
 *   ">= 10,000 tokens/s, PEM, every audit event acknowledged"  token-issue-pem with
 *                                no errors, no bad token, audit.all_acknowledged
 *   ">= 5x Hydra's token throughput"  token-issue-pem / hydra-token-issue >= 5
 * They go to SUMMARY.json with the machine facts passed in the environment
 * (BENCH_NPROC, BENCH_CPU_MODEL, BENCH_KERNEL, BENCH_LOADAVG, BENCH_STARTED_AT,
 * BENCH_OPA_VERSION, BENCH_WRK_VERSION, BENCH_REDIS_USED_BEFORE/AFTER).
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double num(const json_t *o, const char *k) {
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static double r3(double x) {
    return round(x * 1000.0) / 1000.0;
}

static json_t *normalize(json_t *e) {
    const char *tool = json_string_value(json_object_get(e, "tool"));
    if (tool != NULL && strcmp(tool, "sign_bench") == 0) {
        json_t *o = json_object(), *sb = json_object_get(e, "sign_bench");
        json_object_update(o, e);
        json_object_del(o, "sign_bench");
        json_object_update_missing(o, sb);
        json_object_set_new(o, "throughput_rps", json_real(num(sb, "signatures_per_s")));
        json_object_set_new(o, "concurrency", json_integer((json_int_t)num(sb, "threads")));
        json_object_set_new(o, "errors", json_integer((json_int_t)num(sb, "failed")));
        json_object_set_new(o, "latency_from", json_string("one gov_signer_sign call (in process)"));
        return o;
    }
    if (tool == NULL || strcmp(tool, "wrk") != 0)
        return json_incref(e);
    json_t *w = json_object_get(e, "wrk");
    json_t *o = json_object();
    json_object_update(o, e);
    json_object_del(o, "wrk");
    double dur = num(w, "duration_us") / 1e6, req = num(w, "requests");
    json_object_set_new(o, "throughput_rps", json_real(round(req / dur)));
    json_object_set_new(o, "p50_ms", json_real(r3(num(w, "p50_us") / 1000)));
    json_object_set_new(o, "p95_ms", json_real(r3(num(w, "p95_us") / 1000)));
    json_object_set_new(o, "p99_ms", json_real(r3(num(w, "p99_us") / 1000)));
    json_object_set_new(o, "p999_ms", json_real(r3(num(w, "p999_us") / 1000)));
    json_object_set_new(o, "max_ms", json_real(r3(num(w, "max_us") / 1000)));
    json_object_set_new(o, "mean_ms", json_real(r3(num(w, "mean_us") / 1000)));
    json_object_set_new(o, "requests", json_integer((json_int_t)req));
    json_object_set_new(o, "errors", json_integer((json_int_t)num(w, "errors")));
    json_object_set_new(o, "errors_detail", json_incref(json_object_get(w, "errors_detail")));
    json_object_set_new(o, "measured_s", json_real(r3(dur)));
    json_object_set_new(o, "latency_from", json_string("request write, per connection (closed loop, wrk)"));
    return o;
}

static json_t *find(json_t *list, const char *name) {
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n && strcmp(n, name) == 0)
            return e;
    }
    return NULL;
}

/* Merges the measurement context run.sh recorded around each benchmark
 * (load average before, CPU seconds of the server process, wall time, how
 * busy the whole machine was) into the entries it names, and derives the
 * server's CPU cost: server_cpu_pct (of one core) and, for wrk entries
 * whose CPU window is exactly the measured run, server_cpu_us_per_request. */
static void apply_meta(json_t *list, json_t *metas) {
    size_t i, j;
    json_t *m, *nm;
    json_array_foreach(metas, i, m) {
        json_array_foreach(json_object_get(m, "meta_for"), j, nm) {
            json_t *e = find(list, json_string_value(nm));
            if (e == NULL)
                continue;
            const char *k;
            json_t *v;
            json_object_foreach(m, k, v) {
                if (strcmp(k, "meta_for") != 0)
                    json_object_set(e, k, v);
            }
            double cpu = num(m, "server_cpu_s"), wall = num(m, "wall_s");
            if (!isnan(cpu) && wall > 0)
                json_object_set_new(e, "server_cpu_pct", json_real(round(cpu / wall * 1000) / 10));
            const char *tool = json_string_value(json_object_get(e, "tool"));
            if (!isnan(cpu) && tool && strcmp(tool, "wrk") == 0 && num(e, "requests") > 0)
                json_object_set_new(e, "server_cpu_us_per_request",
                                    json_real(round(cpu * 1e6 / num(e, "requests") * 10) / 10));
        }
    }
}

static int rank(const char *name) {
    static const char *const order[] = {"scorer-inprocess-1t", "scorer-inprocess", "evaluate",
                                        "opa-evaluate", "evaluate-rate", "opa-evaluate-rate",
                                        "sign-raw-pem", "token-issue-pem", "sign-raw-pkcs11",
                                        "token-issue-pkcs11", "hydra-token-issue"};
    int best = 99;
    size_t best_len = 0;
    for (int i = 0; i < (int)(sizeof order / sizeof order[0]); i++) {
        size_t l = strlen(order[i]);
        if (strncmp(name, order[i], l) == 0 && l > best_len) {
            best = i;
            best_len = l;
        }
    }
    return best;
}

static int cmp_entries(const void *a, const void *b) {
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    int rx = rank(x ? x : ""), ry = rank(y ? y : "");
    if (rx != ry)
        return rx - ry;
    return strcmp(x ? x : "", y ? y : "");
}

/* 1 when a token entry is a result: no error, no bad token and, for the edge's, every
 * TokenIssued acknowledged (run.sh's audit count equal to the tokens handed out). */
static int token_clean(const json_t *e, int audited) {
    return num(e, "errors") == 0 && num(e, "tokens_bad") == 0 &&
           (!audited ||
            json_is_true(json_object_get(json_object_get(e, "audit"), "all_acknowledged")));
}

/* The token ratios and targets (see the header), printed and put in ratios/targets. */
static void token_ratios(json_t *list, json_t *ratios, json_t *targets) {
    static const char *const pairs[][3] = {
        {"token-issue-pem", "hydra-token-issue", "tokens_pem_over_hydra"},
        {"token-issue-pkcs11", "hydra-token-issue", "tokens_pkcs11_over_hydra"},
        {"token-issue-pem", "sign-raw-pem", "tokens_pem_over_raw_signing_pem"},
        {"token-issue-pkcs11", "sign-raw-pkcs11", "tokens_pkcs11_over_raw_signing_pkcs11"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        json_t *a = find(list, pairs[i][0]), *b = find(list, pairs[i][1]);
        if (a == NULL || b == NULL)
            continue;
        double r = num(a, "throughput_rps") / num(b, "throughput_rps");
        printf("%s / %s, same run: %.2fx (%.0f vs %.0f per s)\n", pairs[i][0], pairs[i][1], r,
               num(a, "throughput_rps"), num(b, "throughput_rps"));
        json_object_set_new(ratios, pairs[i][2], json_real(r3(r)));
    }
    json_t *pem = find(list, "token-issue-pem"), *hy = find(list, "hydra-token-issue");
    if (pem) {
        double rps = num(pem, "throughput_rps");
        int clean = token_clean(pem, 1);
        json_object_set_new(targets, "tokens_pem_at_least_10000_per_s_audited",
                            json_pack("{s:b, s:f, s:b}", "met", rps >= 10000 && clean,
                                      "tokens_per_s", rps, "every_audit_event_acknowledged",
                                      clean));
    }
    if (pem && hy) {
        double r = num(pem, "throughput_rps") / num(hy, "throughput_rps");
        json_object_set_new(targets, "tokens_at_least_5x_hydra",
                            json_pack("{s:b, s:f}", "met",
                                      r >= 5 && token_clean(pem, 1) && token_clean(hy, 0),
                                      "ratio", r3(r)));
    }
}

static void fmt(char *buf, size_t n, double v, const char *f) {
    if (isnan(v))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, f, v);
}

int main(int argc, char **argv) {
    const char *out_path = NULL, *summary_path = NULL, *equiv_path = NULL;
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"summary", required_argument, NULL, 's'},
        {"equivalence", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "o:s:e:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out_path = optarg; break;
        case 's': summary_path = optarg; break;
        case 'e': equiv_path = optarg; break;
        default:
            fputs("usage: report --out RESULTS.json [--summary SUMMARY.json] [--equivalence FILE] FRAGMENT...\n", stderr);
            return 2;
        }
    }
    if (!out_path) {
        fputs("usage: report --out RESULTS.json [--summary SUMMARY.json] [--equivalence FILE] FRAGMENT...\n", stderr);
        return 2;
    }
    size_t cap = 64, n = 0;
    json_t **entries = malloc(cap * sizeof *entries);
    json_t *metas = json_array();
    for (int i = optind; i < argc; i++) {
        json_error_t je;
        json_t *f = json_load_file(argv[i], 0, &je);
        if (f == NULL) {
            fprintf(stderr, "report: %s:%d: %s\n", argv[i], je.line, je.text);
            return 1;
        }
        json_t *arr = json_is_array(f) ? json_incref(f) : json_pack("[O]", f);
        size_t k;
        json_t *e;
        json_array_foreach(arr, k, e) {
            if (json_object_get(e, "meta_for")) {
                json_array_append(metas, e);
                continue;
            }
            if (n == cap)
                entries = realloc(entries, (cap *= 2) * sizeof *entries);
            entries[n++] = normalize(e);
        }
        json_decref(arr);
        json_decref(f);
    }
    qsort(entries, n, sizeof *entries, cmp_entries);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, entries[i]);
    free(entries);
    apply_meta(list, metas);
    json_decref(metas);
    if (json_dump_file(list, out_path, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) != 0) {
        fprintf(stderr, "report: cannot write %s\n", out_path);
        return 1;
    }

    /* the table */
    printf("\n%-26s %6s %12s %9s %9s %9s %9s %9s %8s\n", "benchmark", "conc", "rps", "p50 ms",
           "p95 ms", "p99 ms", "p99.9 ms", "max ms", "errors");
    printf("%-26s %6s %12s %9s %9s %9s %9s %9s %8s\n", "--------------------------", "------",
           "------------", "---------", "---------", "---------", "---------", "---------",
           "--------");
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        char rps[32], p50[32], p95[32], p99[32], p999[32], mx[32], conc[16], err[32];
        fmt(rps, sizeof rps, num(e, "throughput_rps"), "%.0f");
        fmt(p50, sizeof p50, num(e, "p50_ms"), "%.3f");
        fmt(p95, sizeof p95, num(e, "p95_ms"), "%.3f");
        fmt(p99, sizeof p99, num(e, "p99_ms"), "%.3f");
        fmt(p999, sizeof p999, num(e, "p999_ms"), "%.3f");
        fmt(mx, sizeof mx, num(e, "max_ms"), "%.3f");
        fmt(conc, sizeof conc, num(e, "concurrency"), "%.0f");
        fmt(err, sizeof err, num(e, "errors"), "%.0f");
        printf("%-26s %6s %12s %9s %9s %9s %9s %9s %8s\n",
               json_string_value(json_object_get(e, "name")), conc, rps, p50, p95, p99, p999, mx,
               err);
    }

    /* ratios and targets, from this run only */
    json_t *summary = json_object();
    json_t *ratios = json_object(), *targets = json_object();
    json_t *ev = find(list, "evaluate"), *op = find(list, "opa-evaluate");
    printf("\n");
    if (ev && op) {
        double tr = num(ev, "throughput_rps") / num(op, "throughput_rps");
        double pr = num(op, "p95_ms") / num(ev, "p95_ms");
        printf("edge vs OPA, wrk, %.0f vs %.0f connections, same run: throughput %.2fx "
               "(%.0f vs %.0f rps), p95 %.2fx lower (%.3f vs %.3f ms)\n",
               num(ev, "concurrency"), num(op, "concurrency"), tr, num(ev, "throughput_rps"),
               num(op, "throughput_rps"), pr, num(ev, "p95_ms"), num(op, "p95_ms"));
        json_object_set_new(ratios, "throughput_edge_over_opa", json_real(r3(tr)));
        double ce = num(ev, "server_cpu_us_per_request"), co = num(op, "server_cpu_us_per_request");
        if (!isnan(ce) && !isnan(co) && ce > 0) {
            printf("server CPU per request (utime+stime of the server process / requests): "
                   "edge %.1f us, OPA %.1f us: %.2fx less for the edge\n", ce, co, co / ce);
            json_object_set_new(ratios, "server_cpu_per_request_opa_over_edge",
                                json_real(r3(co / ce)));
        }
        json_object_set_new(ratios, "p95_opa_over_edge", json_real(r3(pr)));
        json_object_set_new(targets, "throughput_at_least_3x_opa",
                            json_pack("{s:b, s:f}", "met", tr >= 3.0, "ratio", r3(tr)));
        /* issue 12, point 6: the same ratio, >= 10x */
        json_object_set_new(targets, "throughput_at_least_10x_opa",
                            json_pack("{s:b, s:f}", "met", tr >= 10.0, "ratio", r3(tr)));
    }
    json_array_foreach(list, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!name || strncmp(name, "evaluate-rate-", 14) != 0)
            continue;
        char oname[96];
        snprintf(oname, sizeof oname, "opa-%s", name);
        json_t *o = find(list, oname);
        double target = num(e, "target_rps");
        double p95 = num(e, "p95_ms"), errs = num(e, "errors");
        printf("edge at a fixed %.0f rps (open loop): p95 %.3f ms, p99 %.3f ms, %.0f errors, "
               "%.0f completed of %.0f", target, p95, num(e, "p99_ms"), errs, num(e, "completed"),
               num(e, "requests"));
        if (o)
            printf("; OPA at the same rate: p95 %.3f ms, %.0f errors, %.0f completed",
                   num(o, "p95_ms"), num(o, "errors"), num(o, "completed"));
        printf("\n");
        if (o) {
            /* Only meaningful when both kept up: with a growing queue a p95 is a lower
             * bound of an unbounded latency. */
            char k[128];
            snprintf(k, sizeof k, "p95_opa_over_edge_at_%.0f_rps", target);
            if (errs == 0 && num(o, "errors") == 0)
                json_object_set_new(ratios, k, json_real(r3(num(o, "p95_ms") / p95)));
            else
                json_object_set_new(ratios, k, json_string("n/a: not both kept up with the rate"));
            /* delivered throughput at the same offered rate, same run (issue 12, point 6) */
            snprintf(k, sizeof k, "throughput_edge_over_opa_at_%.0f_rps", target);
            if (num(o, "throughput_rps") > 0)
                json_object_set_new(ratios, k, json_real(r3(num(e, "throughput_rps") /
                                                            num(o, "throughput_rps"))));
        }
        if (target == 10000)
            json_object_set_new(
                targets, "p95_at_most_1ms_at_10000_rps",
                json_pack("{s:b, s:f, s:I, s:I}", "met",
                          p95 <= 1.0 && errs == 0 && num(e, "unfinished") == 0, "p95_ms", p95,
                          "errors", (json_int_t)errs, "unfinished",
                          (json_int_t)num(e, "unfinished")));
    }
    token_ratios(list, ratios, targets);
    const char *keys[] = {"throughput_at_least_3x_opa", "throughput_at_least_10x_opa",
                          "p95_at_most_1ms_at_10000_rps",
                          "tokens_pem_at_least_10000_per_s_audited", "tokens_at_least_5x_hydra"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        json_t *t = json_object_get(targets, keys[k]);
        if (t)
            printf("target %-30s %s\n", keys[k],
                   json_is_true(json_object_get(t, "met")) ? "MET" : "NOT MET");
    }
    if (summary_path) {
        const char *envs[][2] = {{"nproc", "BENCH_NPROC"},
                                 {"cpu_model", "BENCH_CPU_MODEL"},
                                 {"kernel", "BENCH_KERNEL"},
                                 {"loadavg_before", "BENCH_LOADAVG"},
                                 {"started_at", "BENCH_STARTED_AT"},
                                 {"opa_version", "BENCH_OPA_VERSION"},
                                 {"hydra_version", "BENCH_HYDRA_VERSION"},
                                 {"wrk_version", "BENCH_WRK_VERSION"},
                                 {"redis_used_memory_before", "BENCH_REDIS_USED_BEFORE"},
                                 {"redis_used_memory_after", "BENCH_REDIS_USED_AFTER"}};
        json_t *m = json_object();
        for (size_t k = 0; k < sizeof envs / sizeof envs[0]; k++) {
            const char *v = getenv(envs[k][1]);
            if (v)
                json_object_set_new(m, envs[k][0], json_string(v));
        }
        json_object_set_new(summary, "machine", m);
        if (equiv_path) {
            json_error_t je;
            json_t *eq = json_load_file(equiv_path, 0, &je);
            if (eq)
                json_object_set_new(summary, "equivalence", eq);
        }
        json_object_set_new(summary, "ratios", ratios);
        json_object_set_new(summary, "targets", targets);
        if (json_dump_file(summary, summary_path, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) != 0) {
            fprintf(stderr, "report: cannot write %s\n", summary_path);
            return 1;
        }
    } else {
        json_decref(ratios);
        json_decref(targets);
    }
    json_decref(summary);
    json_decref(list);
    return 0;
}
