/* test_config.c - the configuration table: defaults, file, environment,
 * command line, validation, printing, and failure injection.
 *
 * Real files (mkstemp), the real process environment (setenv/unsetenv), real
 * argv arrays, and stdout captured through a real file descriptor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_config.h"

static char *kafka_brokers, *signing_token, *log_level, *redis_addr, *label;
static long admin_port, poll_timeout, retry_backoff, workers;
static int verbose;

static int validate_host_port(const char *value, char *errbuf, size_t size) {
    const char *colon = strrchr(value, ':');
    if (colon == NULL || colon == value || colon[1] == '\0') {
        snprintf(errbuf, size, "expected host:port");
        return -1;
    }
    return 0;
}

static int validate_token(const char *value, char *errbuf, size_t size) {
    if (strlen(value) < 8) {
        snprintf(errbuf, size, "shorter than 8 characters");
        return -1;
    }
    return 0;
}

static const gov_config_entry_t table[] = {
    GOV_CFG_STRING("kafka_brokers", "127.0.0.1:19092", "Kafka bootstrap servers",
                   &kafka_brokers, GOV_CFG_VALIDATE(validate_host_port)),
    GOV_CFG_INT("admin_port", "8704", 1, 65535, "admin HTTP port", &admin_port),
    GOV_CFG_DURATION("poll_timeout", "250ms", 1, 60000, "consumer poll timeout",
                     &poll_timeout),
    GOV_CFG_DURATION("retry_backoff", "5s", 0, 0, "retry backoff", &retry_backoff),
    GOV_CFG_BOOL("verbose", "false", "verbose logging", &verbose),
    GOV_CFG_STRING("signing_token", NULL, "token for the signer", &signing_token,
                   GOV_CFG_VALIDATE(validate_token), GOV_CFG_SECRET),
    GOV_CFG_INT("workers", "4", 0, 0, "worker threads | unbounded", &workers),
    GOV_CFG_STRING("log-level", "info", "log level", &log_level),
    GOV_CFG_STRING("redis.addr", "127.0.0.1:6390", "Redis address", &redis_addr),
    GOV_CFG_STRING("label", NULL, "free text", &label),
};
#define TABLE_SIZE (sizeof(table) / sizeof(table[0]))

static const char *const env_names[] = {
    "GOV_KAFKA_BROKERS", "GOV_ADMIN_PORT", "GOV_POLL_TIMEOUT", "GOV_RETRY_BACKOFF",
    "GOV_VERBOSE",       "GOV_SIGNING_TOKEN", "GOV_WORKERS", "GOV_LOG_LEVEL",
    "GOV_REDIS_ADDR",    "GOV_LABEL",      "GOV_CONFIG_FILE", "GOV_UNRELATED_THING",
};

static char errbuf[512];

static void reset_destinations(void) {
    admin_port = poll_timeout = retry_backoff = workers = -12345;
    verbose = -1;
}

static int setup(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
        unsetenv(env_names[i]);
    gov_config_free_strings(table, TABLE_SIZE);
    reset_destinations();
    errbuf[0] = '\0';
    return 0;
}

static int teardown(void **state) {
    return setup(state);
}

/* Loads with argv = {"gov-test", args..., NULL}. */
static gov_err_t load_args(gov_config_result_t *result, ...) {
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, result);
    argv[argc++] = (char *)"gov-test";
    for (char *a = va_arg(ap, char *); a != NULL; a = va_arg(ap, char *)) {
        assert_true(argc < 31);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    return gov_config_load(table, TABLE_SIZE, argc, argv, result, errbuf, sizeof(errbuf));
}

/* Writes text to a new temporary file; returns its path (static buffer). */
static const char *write_temp(const char *text) {
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/gov_config_test_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return path;
}

#define assert_error_mentions(...)                                                        \
    do {                                                                                  \
        const char *needles_[] = {__VA_ARGS__};                                           \
        for (size_t i_ = 0; i_ < sizeof(needles_) / sizeof(needles_[0]); i_++)            \
            if (strstr(errbuf, needles_[i_]) == NULL)                                     \
                fail_msg("error \"%s\" does not mention \"%s\"", errbuf, needles_[i_]);   \
    } while (0)

/* ------------------------------------------------------------------------ */

static void test_defaults(void **state) {
    (void)state;
    gov_config_result_t result = GOV_CONFIG_EXIT;
    assert_int_equal(load_args(&result, NULL), GOV_OK);
    assert_int_equal(result, GOV_CONFIG_RUN);
    assert_string_equal(kafka_brokers, "127.0.0.1:19092");
    assert_int_equal(admin_port, 8704);
    assert_int_equal(poll_timeout, 250);
    assert_int_equal(retry_backoff, 5000);
    assert_int_equal(verbose, 0);
    assert_null(signing_token);
    assert_int_equal(workers, 4);
    assert_string_equal(log_level, "info");
    assert_string_equal(redis_addr, "127.0.0.1:6390");
    assert_null(label);
    /* argc 0 / argv NULL is a valid "no arguments". */
    gov_config_free_strings(table, TABLE_SIZE);
    assert_int_equal(gov_config_load(table, TABLE_SIZE, 0, NULL, &result, errbuf,
                                     sizeof(errbuf)),
                     GOV_OK);
    assert_int_equal(admin_port, 8704);
}

static const char sample_file[] =
    "# Soma test configuration\n"
    "\n"
    "  admin_port = 9000\n"
    "kafka_brokers=10.0.0.1:9092\n"
    "   \t\n"
    "poll_timeout = 5s\r\n"
    "  # indented comment\n"
    "verbose = yes\n"
    "label = \"  padded # not a comment \"\n"
    "redis.addr = 10.0.0.2:6379\n";

static void check_sample_file_values(void) {
    assert_int_equal(admin_port, 9000);
    assert_string_equal(kafka_brokers, "10.0.0.1:9092");
    assert_int_equal(poll_timeout, 5000);
    assert_int_equal(verbose, 1);
    assert_string_equal(label, "  padded # not a comment ");
    assert_string_equal(redis_addr, "10.0.0.2:6379");
    assert_int_equal(workers, 4); /* not in the file: default */
}

static void test_file(void **state) {
    (void)state;
    gov_config_result_t result;
    char path[64];
    snprintf(path, sizeof(path), "%s", write_temp(sample_file));

    assert_int_equal(load_args(&result, "--config", path, NULL), GOV_OK);
    check_sample_file_values();
    gov_config_free_strings(table, TABLE_SIZE);
    reset_destinations();

    char opt[96];
    snprintf(opt, sizeof(opt), "--config=%s", path);
    assert_int_equal(load_args(&result, opt, NULL), GOV_OK);
    check_sample_file_values();
    gov_config_free_strings(table, TABLE_SIZE);
    reset_destinations();

    setenv("GOV_CONFIG_FILE", path, 1);
    assert_int_equal(load_args(&result, NULL), GOV_OK);
    check_sample_file_values();
    unlink(path);
}

static void test_env_overrides_file(void **state) {
    (void)state;
    gov_config_result_t result;
    char path[64];
    snprintf(path, sizeof(path), "%s", write_temp(sample_file));
    setenv("GOV_CONFIG_FILE", path, 1);
    setenv("GOV_ADMIN_PORT", "9100", 1);
    setenv("GOV_VERBOSE", "off", 1);
    setenv("GOV_LOG_LEVEL", "debug", 1);     /* '-' becomes '_' */
    setenv("GOV_REDIS_ADDR", "10.9.9.9:1", 1); /* '.' becomes '_' */
    setenv("GOV_UNRELATED_THING", "ignored", 1);
    assert_int_equal(load_args(&result, NULL), GOV_OK);
    assert_int_equal(admin_port, 9100);
    assert_int_equal(verbose, 0);
    assert_string_equal(log_level, "debug");
    assert_string_equal(redis_addr, "10.9.9.9:1");
    assert_int_equal(poll_timeout, 5000); /* from the file */
    assert_string_equal(kafka_brokers, "10.0.0.1:9092");
    unlink(path);
}

static void test_argv_overrides_env(void **state) {
    (void)state;
    gov_config_result_t result;
    char path[64];
    snprintf(path, sizeof(path), "%s", write_temp(sample_file));
    setenv("GOV_ADMIN_PORT", "9100", 1);
    setenv("GOV_POLL_TIMEOUT", "2s", 1);
    setenv("GOV_VERBOSE", "0", 1);
    assert_int_equal(load_args(&result, "--config", path, "--admin_port=9200",
                               "--poll_timeout", "1m", "--verbose", "--label", "from argv",
                               NULL),
                     GOV_OK);
    assert_int_equal(result, GOV_CONFIG_RUN);
    assert_int_equal(admin_port, 9200);
    assert_int_equal(poll_timeout, 60000);
    assert_int_equal(verbose, 1); /* a bool option alone means true */
    assert_string_equal(label, "from argv");
    assert_string_equal(kafka_brokers, "10.0.0.1:9092"); /* file */
    gov_config_free_strings(table, TABLE_SIZE);

    /* The last occurrence wins; a bool takes an explicit value too. */
    assert_int_equal(load_args(&result, "--admin_port=1", "--admin_port", "2", "--verbose",
                               "no", "--workers=-3", NULL),
                     GOV_OK);
    assert_int_equal(admin_port, 2);
    assert_int_equal(verbose, 0);
    assert_int_equal(workers, -3); /* no bounds on workers */
    unlink(path);
}

/* A value that is overridden is never parsed. */
static void test_overridden_bad_value_is_not_an_error(void **state) {
    (void)state;
    gov_config_result_t result;
    char path[64];
    snprintf(path, sizeof(path), "%s", write_temp("admin_port = not-a-number\n"));
    setenv("GOV_CONFIG_FILE", path, 1);
    assert_int_equal(load_args(&result, NULL), GOV_ERR_CONFIG);
    setenv("GOV_ADMIN_PORT", "81", 1);
    assert_int_equal(load_args(&result, NULL), GOV_OK);
    assert_int_equal(admin_port, 81);
    unlink(path);
}

static void test_bounds_error_names_key_and_value(void **state) {
    (void)state;
    gov_config_result_t result;
    admin_port = 1234;
    assert_int_equal(load_args(&result, "--admin_port=70000", NULL), GOV_ERR_CONFIG);
    assert_error_mentions("admin_port", "\"70000\"", "1..65535", "command line");
    /* Nothing was written: not the port, not the strings. */
    assert_int_equal(admin_port, 1234);
    assert_null(kafka_brokers);

    setenv("GOV_ADMIN_PORT", "0", 1);
    assert_int_equal(load_args(&result, NULL), GOV_ERR_CONFIG);
    assert_error_mentions("admin_port", "\"0\"", "GOV_ADMIN_PORT");
    unsetenv("GOV_ADMIN_PORT");

    char path[64];
    snprintf(path, sizeof(path), "%s", write_temp("# x\npoll_timeout = 2m\n"));
    assert_int_equal(load_args(&result, "--config", path, NULL), GOV_ERR_CONFIG);
    assert_error_mentions("poll_timeout", "\"2m\"", path, "line 2", "1ms..1m");
    unlink(path);
}

static void test_durations(void **state) {
    (void)state;
    static const struct {
        const char *text;
        long ms;
    } good[] = {{"250ms", 250}, {"5s", 5000},       {"5m", 300000}, {"1h", 3600000},
                {"1500", 1500}, {"0", 0},           {"0ms", 0},     {"24h", 86400000},
                {"007s", 7000}};
    gov_config_result_t result;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char opt[64];
        snprintf(opt, sizeof(opt), "--retry_backoff=%s", good[i].text);
        assert_int_equal(load_args(&result, opt, NULL), GOV_OK);
        assert_int_equal(retry_backoff, good[i].ms);
        gov_config_free_strings(table, TABLE_SIZE);
    }
    static const char *const bad[] = {"5x", "ms", "-5s", "5 s", " 5s", "1.5s", "",
                                      "5S", "5sec", "99999999999999999999", "9223372036854775807h",
                                      "+5s", "5ms5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char opt[64];
        retry_backoff = -7;
        snprintf(opt, sizeof(opt), "--retry_backoff=%s", bad[i]);
        if (load_args(&result, opt, NULL) != GOV_ERR_CONFIG)
            fail_msg("duration \"%s\" was accepted", bad[i]);
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "\"%s\"", bad[i]);
        assert_error_mentions("retry_backoff", quoted, "duration");
        assert_int_equal(retry_backoff, -7);
    }
}

static void test_bool_forms(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int value;
    } good[] = {{"true", 1}, {"false", 0}, {"1", 1},    {"0", 0},   {"yes", 1},
                {"no", 0},   {"on", 1},    {"off", 0},  {"TRUE", 1}, {"Off", 0}};
    gov_config_result_t result;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        setenv("GOV_VERBOSE", good[i].text, 1);
        verbose = -1;
        assert_int_equal(load_args(&result, NULL), GOV_OK);
        if (verbose != good[i].value)
            fail_msg("\"%s\" gave %d", good[i].text, verbose);
        gov_config_free_strings(table, TABLE_SIZE);
    }
    static const char *const bad[] = {"maybe", "2", "", "t", "enabled", "yes "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("GOV_VERBOSE", bad[i], 1);
        if (load_args(&result, NULL) != GOV_ERR_CONFIG)
            fail_msg("bool \"%s\" was accepted", bad[i]);
        assert_error_mentions("verbose", "GOV_VERBOSE", "boolean");
    }
}

static void test_int_parse_errors(void **state) {
    (void)state;
    static const char *const bad[] = {"12abc", "", " 5", "5 ", "0x10", "1e3",
                                      "99999999999999999999999"};
    gov_config_result_t result;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("GOV_WORKERS", bad[i], 1);
        if (load_args(&result, NULL) != GOV_ERR_CONFIG)
            fail_msg("int \"%s\" was accepted", bad[i]);
        assert_error_mentions("workers", "not an integer");
    }
}

static void test_unknown_and_malformed_options(void **state) {
    (void)state;
    gov_config_result_t result;
    assert_int_equal(load_args(&result, "--nope=1", NULL), GOV_ERR_CONFIG);
    assert_error_mentions("unknown option --nope");
    assert_int_equal(load_args(&result, "--nope", NULL), GOV_ERR_CONFIG);
    assert_error_mentions("--nope");
    assert_int_equal(load_args(&result, "extra", NULL), GOV_ERR_CONFIG);
    assert_error_mentions("unexpected argument \"extra\"");
    assert_int_equal(load_args(&result, "-x", NULL), GOV_ERR_CONFIG);
    assert_int_equal(load_args(&result, "--", NULL), GOV_ERR_CONFIG);
    assert_int_equal(load_args(&result, "--admin_port", NULL), GOV_ERR_CONFIG);
    assert_error_mentions("--admin_port needs a value");
    assert_int_equal(load_args(&result, "--admin_port", "--verbose", NULL), GOV_ERR_CONFIG);
    assert_error_mentions("--admin_port needs a value");
    assert_int_equal(load_args(&result, "--config", NULL), GOV_ERR_CONFIG);
    assert_error_mentions("--config");
    /* Names are exact: no '-' for '_' aliasing. */
    assert_int_equal(load_args(&result, "--admin-port=1", NULL), GOV_ERR_CONFIG);
    assert_error_mentions("admin-port");

    char path[64];
    snprintf(path, sizeof(path), "%s", write_temp("admin_port = 1\n\nbogus_key = 3\n"));
    assert_int_equal(load_args(&result, "--config", path, NULL), GOV_ERR_CONFIG);
    assert_error_mentions("unknown key \"bogus_key\"", "line 3", path);
    unlink(path);
    snprintf(path, sizeof(path), "%s", write_temp("admin_port 1\n"));
    assert_int_equal(load_args(&result, "--config", path, NULL), GOV_ERR_CONFIG);
    assert_error_mentions("line 1", "name = value");
    unlink(path);
    assert_int_equal(load_args(&result, "--config", "/nonexistent/gov.conf", NULL),
                     GOV_ERR_CONFIG);
    assert_error_mentions("/nonexistent/gov.conf");

    /* A line longer than the bound is refused, not split. */
    char *big = malloc(6000);
    assert_non_null(big);
    memcpy(big, "label = ", 8);
    memset(big + 8, 'a', 5000);
    strcpy(big + 5008, "\n");
    snprintf(path, sizeof(path), "%s", write_temp(big));
    free(big);
    assert_int_equal(load_args(&result, "--config", path, NULL), GOV_ERR_CONFIG);
    assert_error_mentions("line 1", "longer than");
    unlink(path);
}

static void test_validator(void **state) {
    (void)state;
    gov_config_result_t result;
    assert_int_equal(load_args(&result, "--kafka_brokers=no-port-here", NULL), GOV_ERR_CONFIG);
    assert_error_mentions("kafka_brokers", "\"no-port-here\"", "expected host:port");
    assert_int_equal(load_args(&result, "--kafka_brokers=a:1,b:2", NULL), GOV_OK);
    assert_string_equal(kafka_brokers, "a:1,b:2");
}

static void test_secret_never_shown_in_errors(void **state) {
    (void)state;
    gov_config_result_t result;
    setenv("GOV_SIGNING_TOKEN", "hunter2", 1);
    assert_int_equal(load_args(&result, NULL), GOV_ERR_CONFIG);
    assert_error_mentions("signing_token", "GOV_SIGNING_TOKEN", "shorter than 8");
    assert_null(strstr(errbuf, "hunter2"));
}

/* Runs gov_config_load with stdout captured; returns the output (free). */
static char *load_capturing_stdout(gov_err_t *err, gov_config_result_t *result, char *a1,
                                   char *a2) {
    char *argv[] = {(char *)"gov-test", a1, a2, NULL};
    int argc = a2 ? 3 : 2;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
    *err = gov_config_load(table, TABLE_SIZE, argc, argv, result, errbuf, sizeof(errbuf));
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    /* The output went through the descriptor, so measure it from there. */
    assert_int_equal(fseek(tmp, 0, SEEK_END), 0);
    long size = ftell(tmp);
    assert_true(size >= 0);
    rewind(tmp);
    char *out = calloc(1, (size_t)size + 1);
    assert_non_null(out);
    assert_int_equal(fread(out, 1, (size_t)size, tmp), (size_t)size);
    fclose(tmp);
    return out;
}

static void test_print_config_hides_secrets(void **state) {
    (void)state;
    gov_err_t err;
    gov_config_result_t result = GOV_CONFIG_RUN;
    setenv("GOV_SIGNING_TOKEN", "correct-horse-battery", 1);
    setenv("GOV_POLL_TIMEOUT", "30000", 1);
    char *out = load_capturing_stdout(&err, &result, (char *)"--print-config",
                                      (char *)"--admin_port=8800");
    assert_int_equal(err, GOV_OK);
    assert_int_equal(result, GOV_CONFIG_EXIT);
    assert_null(strstr(out, "correct-horse"));
    assert_string_equal(out,
                        "kafka_brokers = 127.0.0.1:19092\n"
                        "admin_port = 8800\n"
                        "poll_timeout = 30s\n"
                        "retry_backoff = 5s\n"
                        "verbose = false\n"
                        "signing_token = (set)\n"
                        "workers = 4\n"
                        "log-level = info\n"
                        "redis.addr = 127.0.0.1:6390\n"
                        "label = \n");
    free(out);
    /* The effective values were loaded too. */
    assert_string_equal(signing_token, "correct-horse-battery");

    /* An unset secret says so without a value. */
    gov_config_free_strings(table, TABLE_SIZE);
    unsetenv("GOV_SIGNING_TOKEN");
    out = load_capturing_stdout(&err, &result, (char *)"--print-config", NULL);
    assert_int_equal(err, GOV_OK);
    assert_non_null(strstr(out, "signing_token = (unset)\n"));
    free(out);

    /* gov_config_print on its own. */
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    gov_config_print(table, TABLE_SIZE, tmp);
    assert_true(ftell(tmp) > 0);
    fclose(tmp);
}

static void test_help_and_docs(void **state) {
    (void)state;
    gov_err_t err;
    gov_config_result_t result = GOV_CONFIG_RUN;
    /* Work even when the configuration is broken. */
    setenv("GOV_ADMIN_PORT", "broken", 1);
    char *out = load_capturing_stdout(&err, &result, (char *)"--help", NULL);
    assert_int_equal(err, GOV_OK);
    assert_int_equal(result, GOV_CONFIG_EXIT);
    assert_non_null(strstr(out, "Usage: gov-test"));
    assert_non_null(strstr(out, "--admin_port=int\n      admin HTTP port\n"
                                "      env GOV_ADMIN_PORT, default 8704, range 1..65535\n"));
    assert_non_null(strstr(out, "--signing_token=string"));
    assert_non_null(strstr(out, "--print-config"));
    free(out);

    result = GOV_CONFIG_RUN;
    out = load_capturing_stdout(&err, &result, (char *)"--print-config-docs", NULL);
    assert_int_equal(err, GOV_OK);
    assert_int_equal(result, GOV_CONFIG_EXIT);
    assert_non_null(strstr(out, "| Name | Environment | Type | Default | Bounds | Description |\n"
                                "|---|---|---|---|---|---|\n"));
    assert_non_null(strstr(out, "| `admin_port` | `GOV_ADMIN_PORT` | int | `8704` | 1..65535 | "
                                "admin HTTP port |\n"));
    assert_non_null(strstr(out, "| `poll_timeout` | `GOV_POLL_TIMEOUT` | duration | `250ms` | "
                                "1ms..1m | consumer poll timeout |\n"));
    assert_non_null(strstr(out, "| `workers` | `GOV_WORKERS` | int | `4` |  | "
                                "worker threads \\| unbounded |\n"));
    assert_non_null(strstr(out, "| `redis.addr` | `GOV_REDIS_ADDR` |"));
    assert_non_null(strstr(out, "| `signing_token` | `GOV_SIGNING_TOKEN` | string |  |  | "
                                "token for the signer (secret) |\n"));
    /* One header, one rule, one row per entry. */
    size_t lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2 + TABLE_SIZE);
    free(out);
}

static void test_bad_tables(void **state) {
    (void)state;
    gov_config_result_t result;
    long a, b;
    char *s = NULL;
    const gov_config_entry_t dup[] = {
        GOV_CFG_INT("x", "1", 0, 0, "x", &a),
        GOV_CFG_INT("x", "2", 0, 0, "x", &b),
    };
    char *argv[] = {(char *)"t", NULL};
    assert_int_equal(gov_config_load(dup, 2, 1, argv, &result, errbuf, sizeof(errbuf)),
                     GOV_ERR_INVALID_ARG);
    assert_error_mentions("duplicate");
    const gov_config_entry_t reserved[] = {GOV_CFG_STRING("config", NULL, "x", &s)};
    assert_int_equal(gov_config_load(reserved, 1, 1, argv, &result, errbuf, sizeof(errbuf)),
                     GOV_ERR_INVALID_ARG);
    const gov_config_entry_t no_dest[] = {GOV_CFG_INT("y", "1", 0, 0, "y", NULL)};
    assert_int_equal(gov_config_load(no_dest, 1, 1, argv, &result, errbuf, sizeof(errbuf)),
                     GOV_ERR_INVALID_ARG);
    /* A bad default is reported like any bad value. */
    const gov_config_entry_t bad_default[] = {
        GOV_CFG_INT("port", "80", 1024, 65535, "p", &a)};
    assert_int_equal(gov_config_load(bad_default, 1, 1, argv, &result, errbuf, sizeof(errbuf)),
                     GOV_ERR_CONFIG);
    assert_error_mentions("port", "\"80\"", "default", "1024..65535");
    /* An int without a default and without a value is an error, named. */
    const gov_config_entry_t required[] = {GOV_CFG_INT("needed", NULL, 0, 0, "n", &a)};
    assert_int_equal(gov_config_load(required, 1, 1, argv, &result, errbuf, sizeof(errbuf)),
                     GOV_ERR_CONFIG);
    assert_error_mentions("needed", "required");
    assert_int_equal(gov_config_load(table, TABLE_SIZE, 1, argv, NULL, errbuf, sizeof(errbuf)),
                     GOV_ERR_INVALID_ARG);
    /* No errbuf is fine. */
    assert_int_equal(gov_config_load(required, 1, 1, argv, &result, NULL, 0), GOV_ERR_CONFIG);
}

/* Every allocation of a full load (file, env, argv, string copies) fails in
 * turn: GOV_ERR_NOMEM, destinations untouched, nothing leaked. */
static void test_allocation_failures(void **state) {
    (void)state;
    char path[64];
    snprintf(path, sizeof(path), "%s", write_temp(sample_file));
    setenv("GOV_LOG_LEVEL", "warn", 1);
    int failed_runs = 0;
    for (long n = 0;; n++) {
        gov_config_result_t result;
        gov_alloc_fail_after(n);
        gov_err_t err = load_args(&result, "--config", path, "--verbose=on", NULL);
        long failures = gov_alloc_failures();
        gov_alloc_fail_reset();
        if (failures == 0) {
            assert_int_equal(err, GOV_OK);
            check_sample_file_values();
            assert_string_equal(log_level, "warn");
            break;
        }
        assert_int_equal(err, GOV_ERR_NOMEM);
        assert_error_mentions("out of memory");
        assert_null(kafka_brokers);
        assert_null(label);
        assert_int_equal(admin_port, -12345);
        failed_runs++;
        assert_true(n < 1000);
    }
    assert_true(failed_runs >= 10);
    unlink(path);
}

/* Enum and fraction rows: parsed once at load into int / double, bounded,
 * listed in --help, --print-config and the docs. */
static void test_enum_and_fraction(void **state) {
    (void)state;
    static const char *const modes[] = {"fast", "safe", NULL};
    int mode = -1;
    double jitter = -1.0;
    gov_config_result_t result;
    const gov_config_entry_t typed[] = {
        GOV_CFG_ENUM("mode", "safe", modes, "how to run", &mode),
        GOV_CFG_FRACTION("jitter", "0.1", 0.0, 1.0, "wait jitter", &jitter),
    };
    char *argv[] = {(char *)"t", NULL, NULL, NULL};
    assert_int_equal(gov_config_load(typed, 2, 1, argv, &result, errbuf, sizeof(errbuf)), GOV_OK);
    assert_int_equal(mode, 1);
    assert_true(jitter == 0.1);
    argv[1] = (char *)"--mode=fast";
    argv[2] = (char *)"--jitter=0.25";
    assert_int_equal(gov_config_load(typed, 2, 3, argv, &result, errbuf, sizeof(errbuf)), GOV_OK);
    assert_int_equal(mode, 0);
    assert_true(jitter == 0.25);
    argv[2] = NULL;
    argv[1] = (char *)"--mode=Fast";
    assert_int_equal(gov_config_load(typed, 2, 2, argv, &result, errbuf, sizeof(errbuf)),
                     GOV_ERR_CONFIG);
    assert_error_mentions("mode", "\"Fast\"", "not one of fast|safe");
    assert_int_equal(mode, 0); /* a failed load changes nothing */
    const char *const bad_fractions[] = {"1.5", "-0.1", "nan", "inf", "0.1x", "", " 0.1"};
    for (size_t i = 0; i < sizeof(bad_fractions) / sizeof(bad_fractions[0]); i++) {
        char opt[32];
        snprintf(opt, sizeof(opt), "--jitter=%s", bad_fractions[i]);
        argv[1] = opt;
        if (gov_config_load(typed, 2, 2, argv, &result, errbuf, sizeof(errbuf)) != GOV_ERR_CONFIG)
            fail_msg("fraction \"%s\" accepted", bad_fractions[i]);
        assert_error_mentions("jitter");
        assert_true(jitter == 0.25);
    }
    argv[1] = (char *)"--jitter=1";
    assert_int_equal(gov_config_load(typed, 2, 2, argv, &result, errbuf, sizeof(errbuf)), GOV_OK);
    assert_true(jitter == 1.0);

    char *out = NULL;
    FILE *f = tmpfile();
    assert_non_null(f);
    gov_config_print(typed, 2, f);
    gov_config_print_docs(typed, 2, f);
    long size = ftell(f);
    assert_true(size > 0);
    out = calloc(1, (size_t)size + 1);
    assert_non_null(out);
    rewind(f);
    assert_int_equal(fread(out, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    assert_non_null(strstr(out, "mode = safe\n"));
    assert_non_null(strstr(out, "jitter = 1\n"));
    assert_non_null(strstr(out, "| `mode` | `GOV_MODE` | enum | `safe` | fast\\|safe | how to run |\n"));
    assert_non_null(strstr(out, "| `jitter` | `GOV_JITTER` | fraction | `0.1` | 0..1 | wait jitter |\n"));
    free(out);
}

/* A row's destination is type-checked: GOV_CFG_BOOL(..., &a_long) does not
 * compile (incompatible pointer types under -Werror).  Nothing to run here;
 * the constructors' designated initializers are the check. */

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_overrides_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_argv_overrides_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overridden_bad_value_is_not_an_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bounds_error_names_key_and_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bool_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_int_parse_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_malformed_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_never_shown_in_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print_config_hides_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_and_docs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enum_and_fraction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
