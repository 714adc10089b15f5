/* gov_runtime.c - start-up and shut-down shared by every binary.
 *
 * How it works: gov_runtime_start copies the binary's rows into one table,
 * replacing each GOV_RUNTIME_ROW placement with the runtime's definition of
 * that shared setting (destination: the runtime's gov_runtime_config_t),
 * loads it with gov_config, and then brings the parts up in a fixed order,
 * each one only if the spec asks for it.  A failure part-way goes through the
 * same teardown as a normal shutdown, so nothing is left half-started.
 *
 * The run flag is a process-wide volatile sig_atomic_t, because a signal
 * handler can reach nothing else; there is one runtime per process.
 *
 * What it does not do: anything a binary decides for itself - its metrics,
 * its status components, its threads, its main loop.
 */
#include "gov_runtime.h"

#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_log.h"
#include "gov_time.h"
#include "gov_util.h"

#define ADMIN_PORT_DEFAULT_BYTES 16

static volatile sig_atomic_t run_flag = 1;

static void on_stop_signal(int sig) {
    (void)sig;
    run_flag = 0;
}

struct gov_runtime {
    const gov_runtime_spec_t *spec;
    gov_config_entry_t *cfg;
    size_t ncfg;
    gov_runtime_config_t conf;
    char admin_port_default[ADMIN_PORT_DEFAULT_BYTES];
    gov_metrics_t *metrics;
    gov_status_t *status;
    gov_admin_t *admin;
    gov_avro_registry_t *avro;
    gov_redis_t *redis;
    gov_kafka_producer_t *producer;
};

static int validate_log_level(const char *v, char *eb, size_t n) {
    if (gov_log_level_parse(v) < 0) {
        snprintf(eb, n, "must be debug, info, warn or error");
        return -1;
    }
    return 0;
}

static int validate_component(const char *v, char *eb, size_t n) {
    if (!gov_tenant_valid(v, strlen(v))) {
        snprintf(eb, n, "must be 1-64 chars of [A-Za-z0-9._-]");
        return -1;
    }
    return 0;
}

/* Writes the runtime's definition of the shared row `name` into *row.
 * Returns 0, or -1 when no shared row has that name. */
static int shared_row(gov_runtime_t *rt, const char *name, gov_config_entry_t *row) {
    gov_runtime_config_t *c = &rt->conf;
    const gov_config_entry_t rows[] = {
        GOV_CFG_STRING("kafka_brokers", "127.0.0.1:19092",
                       "Kafka bootstrap servers (host:port,...)", &c->kafka_brokers),
        GOV_CFG_STRING("redis_host", "127.0.0.1", "Redis host", &c->redis_host),
        GOV_CFG_INT("redis_port", "6390", 1, 65535, "Redis port", &c->redis_port),
        GOV_CFG_STRING("redis_nodes", NULL,
                       "Redis Cluster seeds (host:port,...); when set, Redis is that cluster "
                       "and redis_host/redis_port are not used",
                       &c->redis_nodes),
        GOV_CFG_DURATION("redis_timeout", "2s", 10, 60000, "Redis connect and command timeout",
                         &c->redis_timeout_ms),
        GOV_CFG_STRING("admin_addr", "127.0.0.1",
                       "address of the admin HTTP server (/healthz, /readyz, /metrics)",
                       &c->admin_addr),
        GOV_CFG_INT("admin_port", rt->admin_port_default, 1, 65535,
                    "port of the admin HTTP server", &c->admin_port),
        GOV_CFG_STRING("log_level", "info", "debug, info, warn or error", &c->log_level,
                       GOV_CFG_VALIDATE(validate_log_level)),
        GOV_CFG_STRING("component_name", rt->spec->name,
                       "this deployment's name in its audit events (and in the seed of their "
                       "ids): replicas share it, a separate deployment on the same Kafka takes "
                       "its own",
                       &c->component_name, GOV_CFG_VALIDATE(validate_component)),
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (strcmp(rows[i].name, name) == 0) {
            *row = rows[i];
            return 0;
        }
    }
    return -1;
}

static int placed(const gov_config_entry_t *rows, size_t nrows, const char *name) {
    for (size_t i = 0; i < nrows; i++)
        if (rows[i].type == GOV_CFG_T_PLACEHOLDER && strcmp(rows[i].name, name) == 0)
            return 1;
    return 0;
}

/* A part the spec asks for needs the rows it is configured by: returns the
 * name of a missing one, or NULL. */
static const char *missing_row(const gov_runtime_spec_t *spec, const gov_config_entry_t *rows,
                               size_t nrows) {
    static const char *const admin_rows[] = {"admin_addr", "admin_port", NULL};
    static const char *const redis_rows[] = {"redis_host", "redis_port", "redis_timeout", NULL};
    static const char *const producer_rows[] = {"kafka_brokers", NULL};
    const struct {
        int wanted;
        const char *const *names;
    } parts[] = {{spec->admin, admin_rows}, {spec->redis, redis_rows},
                 {spec->producer, producer_rows}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        for (const char *const *n = parts[i].names; parts[i].wanted && *n; n++)
            if (!placed(rows, nrows, *n))
                return *n;
    return NULL;
}

/* The full table: the binary's rows with placements filled in, checked
 * against the parts the spec asks for. */
static gov_err_t build_table(gov_runtime_t *rt, const gov_config_entry_t *rows, size_t nrows) {
    /* redis_nodes goes wherever redis_host does, so every binary that talks
     * to Redis can be pointed at a cluster without placing it itself. */
    int add_nodes = placed(rows, nrows, "redis_host") && !placed(rows, nrows, "redis_nodes");
    rt->cfg = gov_calloc(nrows + 1, sizeof *rt->cfg);
    if (rt->cfg == NULL)
        return GOV_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < nrows; i++) {
        rt->cfg[n] = rows[i];
        if (rows[i].type != GOV_CFG_T_PLACEHOLDER) {
            n++;
            continue;
        }
        if (shared_row(rt, rows[i].name, &rt->cfg[n]) != 0) {
            fprintf(stderr, "%s: configuration row \"%s\" is not a shared row\n",
                    rt->spec->name, rows[i].name);
            return GOV_ERR_INVALID_ARG;
        }
        if (rows[i].help != NULL)
            rt->cfg[n].help = rows[i].help;
        n++;
        if (add_nodes && strcmp(rows[i].name, "redis_host") == 0)
            (void)shared_row(rt, "redis_nodes", &rt->cfg[n++]);
    }
    rt->ncfg = n;
    const char *missing = missing_row(rt->spec, rows, nrows);
    if (missing != NULL) {
        fprintf(stderr, "%s: the configuration does not place the shared row \"%s\"\n",
                rt->spec->name, missing);
        return GOV_ERR_INVALID_ARG;
    }
    return GOV_OK;
}

void gov_runtime_stop_admin(gov_runtime_t *rt) {
    if (rt == NULL)
        return;
    gov_admin_stop(rt->admin);
    rt->admin = NULL;
}

static void teardown(gov_runtime_t *rt) {
    gov_runtime_stop_admin(rt);
    gov_kafka_producer_free(rt->producer,
                            rt->spec->producer_flush_ms > 0 ? rt->spec->producer_flush_ms : 10000);
    gov_redis_free(rt->redis);
    gov_avro_registry_free(rt->avro);
    gov_status_free(rt->status);
    gov_metrics_free(rt->metrics);
    if (rt->cfg != NULL) {
        gov_config_free_strings(rt->cfg, rt->ncfg);
        gov_free(rt->cfg);
    }
    gov_free(rt);
}

/* Brings up the parts after the configuration is loaded. */
static gov_err_t start_parts(gov_runtime_t *rt) {
    const gov_runtime_spec_t *spec = rt->spec;
    gov_runtime_config_t *c = &rt->conf;
    char eb[512] = "";
    gov_err_t err;

    rt->metrics = gov_metrics_new();
    rt->status = gov_status_new();
    if (rt->metrics == NULL || rt->status == NULL)
        return GOV_ERR_NOMEM;
    if (spec->register_parts != NULL &&
        (err = spec->register_parts(spec->register_ctx, rt->metrics, rt->status)) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "start-up failed", "error", gov_err_str(err), (const char *)NULL);
        return err;
    }
    if (spec->admin && !(spec->admin_unless != NULL && *spec->admin_unless)) {
        err = gov_admin_start(c->admin_addr, (unsigned)c->admin_port, rt->status, rt->metrics,
                              &rt->admin, eb, sizeof eb);
        if (err != GOV_OK) {
            gov_log(GOV_LOG_ERROR, "admin server did not start", "error", eb, (const char *)NULL);
            return err;
        }
    }
    if ((err = gov_avro_registry_new(&rt->avro, eb, sizeof eb)) != GOV_OK) {
        gov_log(GOV_LOG_ERROR, "schema registry did not load", "error", eb, (const char *)NULL);
        return err;
    }
    if (spec->redis) {
        err = gov_redis_connect(c->redis_nodes, c->redis_host, (int)c->redis_port,
                                (int)c->redis_timeout_ms, &rt->redis, eb, sizeof eb);
        if (err == GOV_ERR_UNAVAILABLE) {
            gov_log(GOV_LOG_WARN, "redis not reachable yet; will retry", "error", eb,
                    (const char *)NULL);
        } else if (err != GOV_OK) {
            gov_log(GOV_LOG_ERROR, "redis", "error", eb[0] ? eb : gov_err_str(err),
                    (const char *)NULL);
            return err;
        }
    }
    if (spec->producer) {
        char timeout[24], linger[24];
        const char *conf[5];
        size_t nconf = 0;
        if (spec->producer_message_timeout_ms != NULL) {
            snprintf(timeout, sizeof timeout, "%ld", *spec->producer_message_timeout_ms);
            conf[nconf++] = "message.timeout.ms";
            conf[nconf++] = timeout;
        }
        if (spec->producer_linger_ms != NULL) {
            snprintf(linger, sizeof linger, "%ld", *spec->producer_linger_ms);
            conf[nconf++] = "linger.ms";
            conf[nconf++] = linger;
        }
        conf[nconf] = NULL;
        err = gov_kafka_producer_new(c->kafka_brokers, spec->name, conf, &rt->producer, eb,
                                     sizeof eb);
        if (err != GOV_OK) {
            gov_log(GOV_LOG_ERROR, "kafka producer", "error", eb, (const char *)NULL);
            return err;
        }
        if ((err = gov_kafka_producer_report(rt->producer, rt->metrics, rt->status)) != GOV_OK)
            return err;
    }
    return GOV_OK;
}

gov_err_t gov_runtime_start(gov_runtime_t **out, const gov_runtime_spec_t *spec,
                            const gov_config_entry_t *rows, size_t nrows, int argc,
                            char **argv, int *exit_code) {
    char eb[512] = "";
    gov_err_t err;
    gov_config_result_t res;

    *out = NULL;
    *exit_code = 1;
    run_flag = 1; /* a process may start a runtime again after a shutdown (tests) */
    gov_alloc_install_jansson();
    gov_log_init(spec->name, GOV_LOG_INFO);
    gov_runtime_t *rt = gov_calloc(1, sizeof *rt);
    if (rt == NULL) {
        fprintf(stderr, "%s: out of memory\n", spec->name);
        return GOV_ERR_NOMEM;
    }
    rt->spec = spec;
    snprintf(rt->admin_port_default, sizeof rt->admin_port_default, "%u",
             spec->default_admin_port);
    if ((err = build_table(rt, rows, nrows)) != GOV_OK)
        goto fail;

    err = gov_config_load(rt->cfg, rt->ncfg, argc, argv, &res, eb, sizeof eb);
    if (err != GOV_OK) {
        fprintf(stderr, "%s: %s\n", spec->name, eb);
        *exit_code = 2;
        goto fail;
    }
    if (res == GOV_CONFIG_EXIT) {
        *exit_code = 0;
        err = GOV_ERR_STATE;
        goto fail;
    }
    if (spec->check_config != NULL && spec->check_config(eb, sizeof eb) != 0) {
        fprintf(stderr, "%s: %s\n", spec->name, eb);
        *exit_code = 2;
        err = GOV_ERR_CONFIG;
        goto fail;
    }
    if (rt->conf.log_level != NULL)
        gov_log_init(spec->name, (gov_log_level_t)gov_log_level_parse(rt->conf.log_level));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((err = start_parts(rt)) != GOV_OK)
        goto fail;
    *out = rt;
    *exit_code = 0;
    return GOV_OK;
fail:
    teardown(rt);
    return err == GOV_OK ? GOV_ERR_INTERNAL : err;
}

int gov_runtime_running(const gov_runtime_t *rt) {
    (void)rt;
    return run_flag;
}

void gov_runtime_stop(gov_runtime_t *rt) {
    (void)rt;
    run_flag = 0;
}

volatile sig_atomic_t *gov_runtime_run_flag(gov_runtime_t *rt) {
    (void)rt;
    return &run_flag;
}

void gov_runtime_sleep(gov_runtime_t *rt, long ms) {
    (void)rt;
    gov_sleep_ms_interruptible(ms, &run_flag);
}

const gov_runtime_config_t *gov_runtime_config(const gov_runtime_t *rt) { return &rt->conf; }
gov_metrics_t *gov_runtime_metrics(gov_runtime_t *rt) { return rt->metrics; }
gov_status_t *gov_runtime_status(gov_runtime_t *rt) { return rt->status; }
gov_avro_registry_t *gov_runtime_avro(gov_runtime_t *rt) { return rt->avro; }
gov_redis_t *gov_runtime_redis(gov_runtime_t *rt) { return rt->redis; }
gov_kafka_producer_t *gov_runtime_producer(gov_runtime_t *rt) { return rt->producer; }

int gov_runtime_shutdown(gov_runtime_t *rt, int exit_code) {
    if (rt == NULL)
        return exit_code;
    teardown(rt);
    gov_log(GOV_LOG_INFO, "stopped", (const char *)NULL);
    return exit_code;
}
