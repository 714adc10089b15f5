/* gov_runtime.h - the one start-up path of every binary.
 *
 * Every binary (gov-edge, gov-somabrain-sync, each processor through
 * gov_processor) starts and stops here, so its main.c holds only its own
 * configuration rows and its own decisions:
 *
 *   static const gov_config_entry_t rows[] = {
 *       GOV_CFG_INT("threads", "2", 1, 256, "HTTP worker threads", &threads),
 *       GOV_RUNTIME_ROW("kafka_brokers"),       // a shared row, placed here
 *       GOV_RUNTIME_ROW("log_level"),
 *   };
 *   static const gov_runtime_spec_t spec = {.name = "gov-x", .producer = 1, ...};
 *   gov_runtime_t *rt;
 *   int code;
 *   if (gov_runtime_start(&rt, &spec, rows, n, argc, argv, &code) != GOV_OK)
 *       return code;
 *   while (gov_runtime_running(rt)) { ...; gov_runtime_sleep(rt, 200); }
 *   return gov_runtime_shutdown(rt, 0);
 *
 * Shared rows.  The settings several binaries have (kafka_brokers,
 * redis_host, redis_port, redis_nodes, redis_timeout, admin_addr, admin_port, log_level,
 * component_name) are defined once here: type, default, bounds, help,
 * validator.  A binary places the ones it has with GOV_RUNTIME_ROW(name) at
 * the position its --help and docs show them (GOV_RUNTIME_ROW_HELP keeps a
 * binary's own wording of the help line); the runtime puts its definition
 * there and the value lands in gov_runtime_config(rt).  A binary has exactly
 * the shared keys it places, with one exception: redis_nodes (Redis Cluster
 * seeds) is placed right after redis_host wherever redis_host is, so every
 * binary that talks to Redis can run on a cluster (gov_redis_connect).
 *
 * What gov_runtime_start does, in order: install the jansson allocator, start
 * logging (level info until the configuration is read), load the
 * configuration (exit code 2 on a usage error, 0 after --help,
 * --print-config or --print-config-docs), restart logging at log_level,
 * install SIGTERM/SIGINT (clear the run flag) and ignore SIGPIPE, create the
 * metrics registry and the status set, let the binary register its parts
 * (spec->register_parts), start the admin server (/healthz,
 * /readyz, /metrics) when asked, load the Avro registry, connect to Redis
 * when asked (unreachable is a warning: gov_redis reconnects), create the
 * producer when asked (with its metric kafka_producer_recreated_total and
 * its status component kafka_producer, gov_kafka_producer_report).  gov_runtime_shutdown undoes all of it in reverse.
 *
 * Thread-safety: one runtime per process, started and shut down from main;
 * gov_runtime_running may be read from any thread.
 */
#ifndef GOV_RUNTIME_H
#define GOV_RUNTIME_H

#include <signal.h>
#include <stddef.h>

#include "gov_admin.h"
#include "gov_avro.h"
#include "gov_config.h"
#include "gov_err.h"
#include "gov_kafka.h"
#include "gov_metrics.h"
#include "gov_redis.h"
#include "gov_status.h"

/* Places the shared row `name_` (see above) in a binary's table. */
#define GOV_RUNTIME_ROW(name_) {.name = (name_), .type = GOV_CFG_T_PLACEHOLDER}
/* The same, with this binary's help text for it. */
#define GOV_RUNTIME_ROW_HELP(name_, help_) \
    {.name = (name_), .type = GOV_CFG_T_PLACEHOLDER, .help = (help_)}

/* The values of the shared rows (only those the binary placed are set;
 * strings borrowed from the runtime, valid until gov_runtime_shutdown). */
typedef struct gov_runtime_config {
    char *kafka_brokers;
    char *redis_host;
    long redis_port;
    char *redis_nodes;     /* NULL or "": single node redis_host:redis_port */
    long redis_timeout_ms;
    char *admin_addr;
    long admin_port;
    char *log_level;
    char *component_name; /* by default spec->name */
} gov_runtime_config_t;

typedef struct gov_runtime_spec {
    const char *name;             /* "gov-audit": log component, Kafka client id */
    unsigned default_admin_port;  /* the admin_port row's default */
    int admin;                    /* 1: start the admin server (needs admin_* rows) */
    const int *admin_unless;      /* optional: no admin server when *admin_unless
                                   * is set after loading (a one-shot mode) */
    int redis;                    /* 1: connect to Redis (needs redis_* rows) */
    int producer;                 /* 1: create a producer (needs kafka_brokers) */
    const long *producer_message_timeout_ms; /* optional: message.timeout.ms,
                                              * read after loading */
    const long *producer_linger_ms; /* optional: linger.ms (default 1), read after
                                     * loading: a longer linger puts more messages
                                     * in one produce request, which is what the
                                     * broker's CPU is spent per */
    int producer_flush_ms;        /* flush bound at shutdown; 0: 10 s */
    /* optional: checks that span several rows, run after loading and before
     * anything starts; returns 0, or -1 with the reason in errbuf (printed
     * as "<name>: <reason>", exit code 2). */
    int (*check_config)(char *errbuf, size_t errbuf_size);
    /* optional: registers the binary's status components and metric
     * families on the new registries before the admin server starts, so
     * the first scrape of /metrics and /readyz already has them. Returns
     * GOV_OK or a start-up failure.  ctx is register_ctx. */
    gov_err_t (*register_parts)(void *ctx, gov_metrics_t *metrics, gov_status_t *status);
    void *register_ctx;
} gov_runtime_spec_t;

typedef struct gov_runtime gov_runtime_t;

/* Starts the binary as described above.  spec is borrowed and must outlive
 * the runtime.  rows: the binary's own rows and its GOV_RUNTIME_ROW
 * placements (copied; their destinations must outlive the runtime, which
 * frees their strings at shutdown).  On GOV_OK *out is a new runtime (free it with
 * gov_runtime_shutdown).  Otherwise nothing is left running, the reason has
 * been printed (stderr for usage errors, the log for failures) and
 * *exit_code is what main returns: 0 after --help and friends, 2 for a
 * configuration error, 1 for a start-up failure. */
gov_err_t gov_runtime_start(gov_runtime_t **out, const gov_runtime_spec_t *spec,
                            const gov_config_entry_t *rows, size_t nrows, int argc,
                            char **argv, int *exit_code);

/* 1 until SIGTERM or SIGINT arrived (or gov_runtime_stop was called). */
int gov_runtime_running(const gov_runtime_t *rt);
/* Clears the run flag, as a signal does. */
void gov_runtime_stop(gov_runtime_t *rt);
/* The run flag itself, for loops that poll it (somabrain_fetch). Borrowed. */
volatile sig_atomic_t *gov_runtime_run_flag(gov_runtime_t *rt);
/* Sleeps ms milliseconds, returning early when a stop signal arrives. */
void gov_runtime_sleep(gov_runtime_t *rt, long ms);

/* Borrowed handles; NULL for a part the spec did not ask for. */
const gov_runtime_config_t *gov_runtime_config(const gov_runtime_t *rt);
gov_metrics_t *gov_runtime_metrics(gov_runtime_t *rt);
gov_status_t *gov_runtime_status(gov_runtime_t *rt);
gov_avro_registry_t *gov_runtime_avro(gov_runtime_t *rt);
gov_redis_t *gov_runtime_redis(gov_runtime_t *rt);
gov_kafka_producer_t *gov_runtime_producer(gov_runtime_t *rt);

/* Stops the admin server now, so nothing answers /readyz with a state that
 * is no longer kept up to date while the binary winds down (a consumer's
 * final commit can take as long as the broker does).  Idempotent; also done
 * by gov_runtime_shutdown. */
void gov_runtime_stop_admin(gov_runtime_t *rt);

/* Stops the admin server, flushes and frees the producer, closes Redis,
 * frees the registry, status, metrics and the configuration (the binary's
 * string rows included), logs "stopped", and returns exit_code.  NULL is a
 * no-op returning exit_code. */
int gov_runtime_shutdown(gov_runtime_t *rt, int exit_code);

#endif /* GOV_RUNTIME_H */
