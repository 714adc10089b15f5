/* gov_config.h - one configuration table per binary.
 *
 * A binary declares a static array of gov_config_entry_t: name, type,
 * default, bounds, help and where the value goes.  The same table
 *   - parses an optional file (--config FILE, or GOV_CONFIG_FILE): lines of
 *     `name = value`, '#' comments, blank lines;
 *   - parses environment variables GOV_<NAME> (name upper-cased, '-' and '.'
 *     as '_'), which override the file;
 *   - parses command-line `--name=value` / `--name value`, which override both;
 *   - validates types, bounds and the optional validator, naming the key;
 *   - prints the effective configuration (--print-config; secrets shown as
 *     "(set)"), and the Markdown table for the docs (--print-config-docs).
 * Precedence: default < file < environment < command line.
 *
 *   static char *kafka_brokers; static long admin_port;
 *   static const gov_config_entry_t cfg[] = {
 *     {"kafka_brokers", GOV_CFG_STRING, "127.0.0.1:19092", 0, 0,
 *      "Kafka bootstrap servers", &kafka_brokers, NULL, 0},
 *     {"admin_port", GOV_CFG_INT, "8704", 1, 65535, "admin HTTP port",
 *      &admin_port, NULL, 0},
 *   };
 *
 * Destinations: GOV_CFG_STRING -> char * (new string, freed by
 * gov_config_free_strings), GOV_CFG_INT and GOV_CFG_DURATION_MS -> long,
 * GOV_CFG_BOOL -> int.  Durations accept "250ms", "5s", "5m", "1h" or a bare
 * number of milliseconds.  Bools accept true/false/1/0/yes/no/on/off.
 *
 * Thread-safety: call from main before threads start.
 */
#ifndef GOV_CONFIG_H
#define GOV_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "gov_err.h"

typedef enum gov_config_type {
    GOV_CFG_STRING,
    GOV_CFG_INT,
    GOV_CFG_BOOL,
    GOV_CFG_DURATION_MS,
} gov_config_type_t;

/* Returns 0 when value (already type-checked) is acceptable, else writes a
 * reason to errbuf and returns -1. */
typedef int (*gov_config_validator_t)(const char *value, char *errbuf,
                                      size_t errbuf_size);

typedef struct gov_config_entry {
    const char *name;
    gov_config_type_t type;
    const char *default_value;  /* may be NULL: no default (string -> NULL) */
    long min, max;              /* bounds for INT / DURATION_MS; min==max==0: none */
    const char *help;
    void *dest;
    gov_config_validator_t validator; /* optional */
    int secret;                       /* 1: never printed */
} gov_config_entry_t;

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
