/* gov_config.h - one configuration table per binary.
 *
 * A binary declares an array of rows, one per setting, each built by a typed
 * constructor (usable in static initializers):
 *
 *   static char *kafka_brokers; static long admin_port, poll_ms; static int verbose;
 *   static double jitter; static int mode;
 *   static const char *const modes[] = {"fast", "safe", NULL};
 *   static const gov_config_entry_t cfg[] = {
 *     GOV_CFG_STRING("kafka_brokers", "127.0.0.1:19092", "Kafka bootstrap servers",
 *                    &kafka_brokers),
 *     GOV_CFG_INT("admin_port", "8704", 1, 65535, "admin HTTP port", &admin_port),
 *     GOV_CFG_DURATION("poll", "250ms", 1, 60000, "poll timeout", &poll_ms),
 *     GOV_CFG_BOOL("verbose", "false", "verbose logging", &verbose),
 *     GOV_CFG_FRACTION("jitter", "0.1", 0.0, 1.0, "wait jitter", &jitter),
 *     GOV_CFG_ENUM("mode", "safe", modes, "how to run", &mode),
 *     GOV_CFG_STRING("token", NULL, "signer token", &token, GOV_CFG_SECRET),
 *     GOV_CFG_STRING("url", NULL, "URL", &url, GOV_CFG_VALIDATE(check_url)),
 *   };
 *
 * The destination goes into a union of typed pointers through a designated
 * initializer, so a `long *` given to GOV_CFG_BOOL (which wants `int *`) is an
 * incompatible-pointer error at compile time, not a corrupted variable.
 * Destinations: STRING -> char * (new string, freed by
 * gov_config_free_strings), INT and DURATION (milliseconds) -> long, BOOL ->
 * int, ENUM -> int (the index of the chosen name in the NULL-terminated
 * list), FRACTION -> double.  Defaults are written as text and go through
 * the same parser as every other source.  Durations accept "250ms", "5s",
 * "5m", "1h" or a bare number of milliseconds.  Bools accept
 * true/false/1/0/yes/no/on/off.  min == max == 0 means unbounded.
 *
 * Thread-safety: call from main before threads start.
 */
#ifndef GOV_CONFIG_H
#define GOV_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "gov_err.h"

typedef enum gov_config_type {
    GOV_CFG_T_STRING,
    GOV_CFG_T_INT,
    GOV_CFG_T_BOOL,
    GOV_CFG_T_DURATION_MS,
    GOV_CFG_T_ENUM,
    GOV_CFG_T_FRACTION,
    GOV_CFG_T_PLACEHOLDER, /* a row a start-up layer fills in (gov_runtime);
                            * gov_config_load rejects it */
} gov_config_type_t;

/* Returns 0 when value (already type-checked) is acceptable, else writes a
 * reason to errbuf and returns -1. */
typedef int (*gov_config_validator_t)(const char *value, char *errbuf,
                                      size_t errbuf_size);

/* Where a row's value goes; the member is chosen by the row's constructor. */
typedef union gov_config_dest {
    char **str;        /* STRING */
    long *num;         /* INT, DURATION_MS */
    int *flag;         /* BOOL */
    int *choice;       /* ENUM */
    double *fraction;  /* FRACTION */
    void *any;         /* for "is it set" checks only */
} gov_config_dest_t;

typedef struct gov_config_entry {
    const char *name;
    gov_config_type_t type;
    const char *default_value;   /* may be NULL: no default (string -> NULL) */
    long min, max;               /* INT / DURATION_MS bounds; 0, 0: none */
    double fmin, fmax;           /* FRACTION bounds; 0, 0: none */
    const char *const *choices;  /* ENUM: NULL-terminated allowed names */
    const char *help;
    gov_config_dest_t dest;
    gov_config_validator_t validator; /* optional */
    int secret;                       /* 1: never printed */
} gov_config_entry_t;

/* Options for the trailing `...` of the constructors below. */
#define GOV_CFG_SECRET .secret = 1
#define GOV_CFG_VALIDATE(fn) .validator = (fn)

#define GOV_CFG_STRING(name_, def_, help_, dest_, ...)                                   \
    {.name = (name_), .type = GOV_CFG_T_STRING, .default_value = (def_), .help = (help_), \
     .dest = {.str = (dest_)}, __VA_ARGS__}
#define GOV_CFG_INT(name_, def_, min_, max_, help_, dest_, ...)                        \
    {.name = (name_), .type = GOV_CFG_T_INT, .default_value = (def_), .min = (min_),    \
     .max = (max_), .help = (help_), .dest = {.num = (dest_)}, __VA_ARGS__}
#define GOV_CFG_DURATION(name_, def_, min_ms_, max_ms_, help_, dest_, ...)                \
    {.name = (name_), .type = GOV_CFG_T_DURATION_MS, .default_value = (def_),             \
     .min = (min_ms_), .max = (max_ms_), .help = (help_), .dest = {.num = (dest_)},      \
     __VA_ARGS__}
#define GOV_CFG_BOOL(name_, def_, help_, dest_, ...)                                   \
    {.name = (name_), .type = GOV_CFG_T_BOOL, .default_value = (def_), .help = (help_), \
     .dest = {.flag = (dest_)}, __VA_ARGS__}
#define GOV_CFG_ENUM(name_, def_, choices_, help_, dest_, ...)                         \
    {.name = (name_), .type = GOV_CFG_T_ENUM, .default_value = (def_),                  \
     .choices = (choices_), .help = (help_), .dest = {.choice = (dest_)}, __VA_ARGS__}
#define GOV_CFG_FRACTION(name_, def_, min_, max_, help_, dest_, ...)                    \
    {.name = (name_), .type = GOV_CFG_T_FRACTION, .default_value = (def_),               \
     .fmin = (min_), .fmax = (max_), .help = (help_), .dest = {.fraction = (dest_)},     \
     __VA_ARGS__}

typedef enum gov_config_result {
    GOV_CONFIG_RUN = 0,   /* parsed; the binary should run */
    GOV_CONFIG_EXIT = 1,  /* --help / --print-config handled; exit 0 */
} gov_config_result_t;

/* Parses file, environment and argv (argv[0] is skipped) into the table.
 * Unknown --options and unknown keys in the file are errors (GOV_ERR_CONFIG
 * with the key named in errbuf).  Unknown GOV_* environment variables are
 * ignored (other binaries share the environment).  *result tells whether to
 * run or exit. */
gov_err_t gov_config_load(const gov_config_entry_t *table, size_t n, int argc,
                          char **argv, gov_config_result_t *result,
                          char *errbuf, size_t errbuf_size);

/* Writes `name = value` lines of the effective configuration. */
void gov_config_print(const gov_config_entry_t *table, size_t n, FILE *out);

/* Writes a Markdown table: name, env var, type, default, bounds, help. */
void gov_config_print_docs(const gov_config_entry_t *table, size_t n, FILE *out);

/* Frees the strings the table's GOV_CFG_STRING destinations hold. */
void gov_config_free_strings(const gov_config_entry_t *table, size_t n);

#endif /* GOV_CONFIG_H */
