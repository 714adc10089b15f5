/* gov_config.c - the configuration table: file, environment, command line.
 *
 * Loading runs in three steps, so that a bad configuration changes nothing:
 *   1. collect: for every entry, the winning raw string and where it came
 *      from, in precedence order default < file < GOV_<NAME> < --name;
 *   2. parse and check each winning string (type, bounds, validator) into a
 *      scratch array, naming the key, the value and its source on error;
 *   3. commit the scratch values to the destinations, all at once.
 * A value that is overridden is never parsed, so a bad file entry fixed on
 * the command line is not an error.  Defaults go through the same parser, so
 * a bad default in a table is reported like any other bad value.
 *
 * The file format is deliberately small: `name = value` per line, blank lines
 * and lines whose first non-blank character is '#' ignored, whitespace around
 * name and value trimmed, and an optional pair of double quotes around the
 * value removed (to keep leading/trailing blanks or a leading '#').  Lines are
 * bounded (MAX_LINE_BYTES).  No includes, no escapes, no sections.
 *
 * --help and --print-config-docs act before anything is read, so they work
 * with a broken configuration; --print-config acts after a successful load.
 * Values of secret entries are never printed, not even in error messages.
 */
#include "gov_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gov_alloc.h"
#include "gov_util.h"

#define MAX_LINE_BYTES 4096
#define MAX_NAME_BYTES 128
#define SHOWN_VALUE_BYTES 80

typedef enum value_source {
    SOURCE_NONE,
    SOURCE_DEFAULT,
    SOURCE_FILE,
    SOURCE_ENV,
    SOURCE_ARGV,
} value_source_t;

typedef struct pending {
    const char *raw; /* borrowed, or == owned */
    char *owned;     /* a copy of a file value */
    value_source_t source;
    unsigned line; /* SOURCE_FILE */
} pending_t;

typedef union parsed {
    char *s;
    long l;
    int b;
    double d;
} parsed_t;

typedef struct load_ctx {
    const gov_config_entry_t *table;
    size_t n;
    const char *file_path;
    char *errbuf;
    size_t errbuf_size;
} load_ctx_t;

static const char *const type_names[] = {"string", "int",      "bool",       "duration",
                                          "enum",   "fraction", "placeholder"};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static void set_error(load_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(load_ctx_t *ctx, const char *fmt, ...) {
    GOV_FORMAT_VA(ctx->errbuf, ctx->errbuf_size, fmt);
}

/* GOV_ + name upper-cased, '-' and '.' as '_'.  buf holds MAX_NAME_BYTES+5. */
static void env_name(const char *name, char *buf, size_t size) {
    size_t o = 0;
    const char *prefix = "GOV_";
    for (const char *p = prefix; *p && o + 1 < size; p++)
        buf[o++] = *p;
    for (const char *p = name; *p && o + 1 < size; p++) {
        char c = *p;
        buf[o++] = (c == '-' || c == '.') ? '_' : (char)toupper((unsigned char)c);
    }
    buf[o] = '\0';
}

static int starts_with_dashes(const char *s) {
    return s != NULL && s[0] == '-' && s[1] == '-';
}

static long find_entry(const gov_config_entry_t *table, size_t n, const char *name,
                       size_t len) {
    for (size_t i = 0; i < n; i++)
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0)
            return (long)i;
    return -1;
}

/* Writes v milliseconds in the largest exact unit: 0ms, 250ms, 5s, 5m, 1h. */
static void format_duration(long v, char *buf, size_t size) {
    if (v != 0 && v % 3600000L == 0)
        snprintf(buf, size, "%ldh", v / 3600000L);
    else if (v != 0 && v % 60000L == 0)
        snprintf(buf, size, "%ldm", v / 60000L);
    else if (v != 0 && v % 1000L == 0)
        snprintf(buf, size, "%lds", v / 1000L);
    else
        snprintf(buf, size, "%ldms", v);
}

static int has_bounds(const gov_config_entry_t *e) {
    return (e->type == GOV_CFG_T_INT || e->type == GOV_CFG_T_DURATION_MS) &&
           !(e->min == 0 && e->max == 0);
}

static void format_bound(const gov_config_entry_t *e, long v, char *buf, size_t size) {
    if (e->type == GOV_CFG_T_DURATION_MS)
        format_duration(v, buf, size);
    else
        snprintf(buf, size, "%ld", v);
}

static int has_fraction_bounds(const gov_config_entry_t *e) {
    return e->type == GOV_CFG_T_FRACTION && !(e->fmin == 0.0 && e->fmax == 0.0);
}

/* The "range" text of a row, or "" when it has none: "1..65535", "10ms..1m",
 * "0..1", or an enum's allowed names "a|b|c". */
static void format_range(const gov_config_entry_t *e, char *buf, size_t size) {
    char lo[32], hi[32];
    buf[0] = '\0';
    if (has_bounds(e)) {
        format_bound(e, e->min, lo, sizeof(lo));
        format_bound(e, e->max, hi, sizeof(hi));
        snprintf(buf, size, "%s..%s", lo, hi);
    } else if (has_fraction_bounds(e)) {
        snprintf(buf, size, "%g..%g", e->fmin, e->fmax);
    } else if (e->type == GOV_CFG_T_ENUM && e->choices != NULL) {
        size_t o = 0;
        for (const char *const *c = e->choices; *c && o + 1 < size; c++) {
            int w = snprintf(buf + o, size - o, "%s%s", c == e->choices ? "" : "|", *c);
            if (w < 0)
                break;
            o += (size_t)w;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Value parsers: strict, whole string, no surrounding blanks.               */

static int parse_long(const char *s, long *out) {
    char *end;
    if (s[0] == '\0' || isspace((unsigned char)s[0]))
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* "250ms", "5s", "5m", "1h" or bare milliseconds; non-negative. */
static int parse_duration_ms(const char *s, long *out) {
    static const struct {
        const char *suffix;
        long factor;
    } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *p = s;
    long v = 0;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        int d = *p - '0';
        if (v > (LONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].suffix) == 0) {
            if (v > LONG_MAX / units[i].factor)
                return -1;
            *out = v * units[i].factor;
            return 0;
        }
    }
    return -1;
}

/* A finite decimal number, whole string. */
static int parse_double(const char *s, double *out) {
    char *end;
    if (s[0] == '\0' || isspace((unsigned char)s[0]))
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_choice(const gov_config_entry_t *e, const char *s, int *out) {
    for (int i = 0; e->choices != NULL && e->choices[i] != NULL; i++) {
        if (strcmp(e->choices[i], s) == 0) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

static int parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Describes where a value came from, for error messages. */
static void describe_source(const load_ctx_t *ctx, const gov_config_entry_t *e,
                            const pending_t *p, char *buf, size_t size) {
    char env[MAX_NAME_BYTES + 8];
    switch (p->source) {
    case SOURCE_FILE:
        snprintf(buf, size, "config file %s line %u", ctx->file_path, p->line);
        break;
    case SOURCE_ENV:
        env_name(e->name, env, sizeof(env));
        snprintf(buf, size, "environment %s", env);
        break;
    case SOURCE_ARGV:
        snprintf(buf, size, "command line --%s", e->name);
        break;
    case SOURCE_DEFAULT:
    case SOURCE_NONE:
        snprintf(buf, size, "built-in default");
        break;
    }
}

/* Parses and checks the winning value of entry i into *out.  A string result
 * is a new copy the caller owns.  Returns GOV_OK or GOV_ERR_CONFIG /
 * GOV_ERR_NOMEM with ctx->errbuf naming the key, value and source. */
static gov_err_t parse_entry(load_ctx_t *ctx, size_t i, const pending_t *p,
                             parsed_t *out) {
    const gov_config_entry_t *e = &ctx->table[i];
    const char *raw = p->raw;
    char reason[256] = "";
    char range[200];

    memset(out, 0, sizeof(*out));
    if (raw == NULL) {
        if (e->type == GOV_CFG_T_STRING)
            return GOV_OK; /* no default: stays NULL */
        snprintf(reason, sizeof(reason), "a value is required");
        goto bad;
    }
    switch (e->type) {
    case GOV_CFG_T_STRING:
    case GOV_CFG_T_PLACEHOLDER: /* refused by check_table */
        break;
    case GOV_CFG_T_INT:
        if (parse_long(raw, &out->l) != 0) {
            snprintf(reason, sizeof(reason), "not an integer");
            goto bad;
        }
        break;
    case GOV_CFG_T_DURATION_MS:
        if (parse_duration_ms(raw, &out->l) != 0) {
            snprintf(reason, sizeof(reason),
                     "not a duration (use e.g. 250ms, 5s, 5m, 1h or milliseconds)");
            goto bad;
        }
        break;
    case GOV_CFG_T_BOOL:
        if (parse_bool(raw, &out->b) != 0) {
            snprintf(reason, sizeof(reason),
                     "not a boolean (use true/false, 1/0, yes/no, on/off)");
            goto bad;
        }
        break;
    case GOV_CFG_T_ENUM:
        if (parse_choice(e, raw, &out->b) != 0) {
            format_range(e, range, sizeof(range));
            snprintf(reason, sizeof(reason), "not one of %s", range);
            goto bad;
        }
        break;
    case GOV_CFG_T_FRACTION:
        if (parse_double(raw, &out->d) != 0) {
            snprintf(reason, sizeof(reason), "not a number");
            goto bad;
        }
        break;
    }
    if ((has_bounds(e) && (out->l < e->min || out->l > e->max)) ||
        (has_fraction_bounds(e) && !(out->d >= e->fmin && out->d <= e->fmax))) {
        format_range(e, range, sizeof(range));
        snprintf(reason, sizeof(reason), "out of range %s", range);
        goto bad;
    }
    if (e->validator && e->validator(raw, reason, sizeof(reason)) != 0) {
        if (reason[0] == '\0')
            snprintf(reason, sizeof(reason), "rejected by validator");
        goto bad;
    }
    if (e->type == GOV_CFG_T_STRING) {
        out->s = gov_strdup(raw);
        if (out->s == NULL) {
            set_error(ctx, "config: %s: out of memory", e->name);
            return GOV_ERR_NOMEM;
        }
    }
    return GOV_OK;
bad: {
    char source[MAX_NAME_BYTES + 64 + 256];
    describe_source(ctx, e, p, source, sizeof(source));
    if (raw == NULL)
        set_error(ctx, "config: %s: %s", e->name, reason);
    else if (e->secret)
        set_error(ctx, "config: %s: invalid value (secret, not shown) from %s: %s",
                  e->name, source, reason);
    else
        set_error(ctx, "config: %s: invalid value \"%.*s%s\" from %s: %s", e->name,
                  SHOWN_VALUE_BYTES, raw, strlen(raw) > SHOWN_VALUE_BYTES ? "..." : "",
                  source, reason);
    return GOV_ERR_CONFIG;
}
}

/* ------------------------------------------------------------------------ */
/* Sources                                                                   */

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Reads `name = value` lines into pending.  Cost: O(lines * entries). */
static gov_err_t read_file(load_ctx_t *ctx, pending_t *pending) {
    gov_err_t err = GOV_OK;
    char line[MAX_LINE_BYTES];
    unsigned lineno = 0;
    FILE *f = fopen(ctx->file_path, "r");
    if (f == NULL) {
        char reason[128];
        set_error(ctx, "config: cannot open config file %s: %s", ctx->file_path,
                  strerror_r(errno, reason, sizeof(reason)));
        return GOV_ERR_CONFIG;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n' && !feof(f)) {
            set_error(ctx, "config: config file %s line %u: longer than %d bytes",
                      ctx->file_path, lineno, MAX_LINE_BYTES - 2);
            err = GOV_ERR_CONFIG;
            goto out;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            set_error(ctx, "config: config file %s line %u: expected `name = value`",
                      ctx->file_path, lineno);
            err = GOV_ERR_CONFIG;
            goto out;
        }
        *eq = '\0';
        char *name = trim(s);
        char *value = trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        long idx = find_entry(ctx->table, ctx->n, name, strlen(name));
        if (idx < 0) {
            set_error(ctx, "config: config file %s line %u: unknown key \"%.*s\"",
                      ctx->file_path, lineno, MAX_NAME_BYTES, name);
            err = GOV_ERR_CONFIG;
            goto out;
        }
        char *copy = gov_strdup(value);
        if (copy == NULL) {
            set_error(ctx, "config: out of memory");
            err = GOV_ERR_NOMEM;
            goto out;
        }
        pending_t *p = &pending[idx];
        gov_free(p->owned);
        p->owned = copy;
        p->raw = copy;
        p->source = SOURCE_FILE;
        p->line = lineno;
    }
    if (ferror(f)) {
        set_error(ctx, "config: error reading config file %s", ctx->file_path);
        err = GOV_ERR_CONFIG;
    }
out:
    fclose(f);
    return err;
}

static void read_env(load_ctx_t *ctx, pending_t *pending) {
    char env[MAX_NAME_BYTES + 8];
    for (size_t i = 0; i < ctx->n; i++) {
        env_name(ctx->table[i].name, env, sizeof(env));
        const char *v = getenv(env);
        if (v != NULL) {
            pending[i].raw = v;
            pending[i].source = SOURCE_ENV;
        }
    }
}

typedef struct argv_flags {
    const char *config_path;
    int print_config;
} argv_flags_t;

/* Parses --name=value / --name value (a bool alone means true) into
 * argv_pending, plus --config and --print-config. */
static gov_err_t read_argv(load_ctx_t *ctx, int argc, char **argv,
                           pending_t *argv_pending, argv_flags_t *flags) {
    for (int i = 1; i < argc && argv[i] != NULL; i++) {
        const char *arg = argv[i];
        if (!starts_with_dashes(arg) || arg[2] == '\0') {
            set_error(ctx, "config: unexpected argument \"%.*s\"", MAX_NAME_BYTES, arg);
            return GOV_ERR_CONFIG;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        int next_is_value = next != NULL && !starts_with_dashes(next);

        if (name_len == 6 && memcmp(name, "config", 6) == 0) {
            if (value == NULL && !next_is_value) {
                set_error(ctx, "config: option --config needs a file name");
                return GOV_ERR_CONFIG;
            }
            flags->config_path = value ? value : argv[++i];
            continue;
        }
        if (strcmp(name, "print-config") == 0) {
            flags->print_config = 1;
            continue;
        }
        if (strcmp(name, "help") == 0 || strcmp(name, "print-config-docs") == 0)
            continue; /* handled before loading */
        long idx = find_entry(ctx->table, ctx->n, name, name_len);
        if (idx < 0) {
            int shown = (int)(name_len > MAX_NAME_BYTES ? MAX_NAME_BYTES : name_len);
            set_error(ctx, "config: unknown option --%.*s", shown, name);
            return GOV_ERR_CONFIG;
        }
        if (value == NULL) {
            if (next_is_value)
                value = argv[++i];
            else if (ctx->table[idx].type == GOV_CFG_T_BOOL)
                value = "true";
            else {
                set_error(ctx, "config: option --%s needs a value", ctx->table[idx].name);
                return GOV_ERR_CONFIG;
            }
        }
        argv_pending[idx].raw = value;
        argv_pending[idx].source = SOURCE_ARGV;
    }
    return GOV_OK;
}

/* A table is a programming artifact: reject what would make loading
 * ambiguous (duplicate or reserved names, missing destinations). */
static gov_err_t check_table(load_ctx_t *ctx) {
    static const char *const reserved[] = {"config", "help", "print-config",
                                           "print-config-docs"};
    for (size_t i = 0; i < ctx->n; i++) {
        const gov_config_entry_t *e = &ctx->table[i];
        if (e->name == NULL || e->name[0] == '\0' || strlen(e->name) > MAX_NAME_BYTES ||
            e->dest.any == NULL || (unsigned)e->type > GOV_CFG_T_FRACTION ||
            (e->type == GOV_CFG_T_ENUM && (e->choices == NULL || e->choices[0] == NULL))) {
            set_error(ctx, "config: table entry %zu is malformed", i);
            return GOV_ERR_INVALID_ARG;
        }
        for (const char *p = e->name; *p; p++) {
            if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.') {
                set_error(ctx, "config: table entry \"%s\": bad character in name", e->name);
                return GOV_ERR_INVALID_ARG;
            }
        }
        for (size_t r = 0; r < sizeof(reserved) / sizeof(reserved[0]); r++) {
            if (strcmp(e->name, reserved[r]) == 0) {
                set_error(ctx, "config: table entry \"%s\": reserved name", e->name);
                return GOV_ERR_INVALID_ARG;
            }
        }
        if (find_entry(ctx->table, i, e->name, strlen(e->name)) >= 0) {
            set_error(ctx, "config: table entry \"%s\": duplicate name", e->name);
            return GOV_ERR_INVALID_ARG;
        }
    }
    return GOV_OK;
}

static void print_help(const gov_config_entry_t *table, size_t n, const char *prog,
                       FILE *out) {
    char env[MAX_NAME_BYTES + 8];
    fprintf(out, "Usage: %s [--config FILE] [--NAME=VALUE | --NAME VALUE ...]\n\n", prog);
    fprintf(out, "Precedence: default < config file < GOV_<NAME> environment < command line.\n\n");
    for (size_t i = 0; i < n; i++) {
        const gov_config_entry_t *e = &table[i];
        env_name(e->name, env, sizeof(env));
        fprintf(out, "  --%s=%s\n      %s\n      env %s", e->name, type_names[e->type],
                e->help ? e->help : "", env);
        if (e->default_value)
            fprintf(out, ", default %s", e->secret ? "(secret)" : e->default_value);
        char range[256];
        format_range(e, range, sizeof(range));
        if (range[0])
            fprintf(out, e->type == GOV_CFG_T_ENUM ? ", one of %s" : ", range %s", range);
        fprintf(out, "\n");
    }
    fprintf(out, "  --config FILE\n      read `name = value` lines from FILE (env GOV_CONFIG_FILE)\n"
                 "  --print-config\n      print the effective configuration and exit\n"
                 "  --print-config-docs\n      print the configuration as a Markdown table and exit\n"
                 "  --help\n      print this help and exit\n");
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

gov_err_t gov_config_load(const gov_config_entry_t *table, size_t n, int argc,
                          char **argv, gov_config_result_t *result,
                          char *errbuf, size_t errbuf_size) {
    gov_err_t err = GOV_OK;
    pending_t *pending = NULL, *argv_pending = NULL;
    parsed_t *values = NULL;
    argv_flags_t flags = {NULL, 0};
    char scratch[1];
    load_ctx_t ctx = {table, n, NULL, errbuf, errbuf_size};

    if (errbuf == NULL || errbuf_size == 0) {
        ctx.errbuf = scratch;
        ctx.errbuf_size = sizeof(scratch);
    }
    ctx.errbuf[0] = '\0';
    if ((table == NULL && n > 0) || result == NULL || argc < 0 || (argc > 0 && argv == NULL)) {
        set_error(&ctx, "config: invalid arguments");
        return GOV_ERR_INVALID_ARG;
    }
    *result = GOV_CONFIG_RUN;
    err = check_table(&ctx);
    if (err != GOV_OK)
        return err;

    for (int i = 1; i < argc && argv[i] != NULL; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help(table, n, argv[0] ? argv[0] : "gov", stdout);
            fflush(stdout);
            *result = GOV_CONFIG_EXIT;
            return GOV_OK;
        }
        if (strcmp(argv[i], "--print-config-docs") == 0) {
            gov_config_print_docs(table, n, stdout);
            fflush(stdout);
            *result = GOV_CONFIG_EXIT;
            return GOV_OK;
        }
    }

    pending = gov_calloc(n ? n : 1, sizeof(*pending));
    argv_pending = gov_calloc(n ? n : 1, sizeof(*argv_pending));
    values = gov_calloc(n ? n : 1, sizeof(*values));
    if (pending == NULL || argv_pending == NULL || values == NULL) {
        set_error(&ctx, "config: out of memory");
        err = GOV_ERR_NOMEM;
        goto out;
    }
    err = read_argv(&ctx, argc, argv, argv_pending, &flags);
    if (err != GOV_OK)
        goto out;

    for (size_t i = 0; i < n; i++) {
        pending[i].raw = table[i].default_value;
        pending[i].source = SOURCE_DEFAULT;
    }
    ctx.file_path = flags.config_path;
    if (ctx.file_path == NULL) {
        const char *env_path = getenv("GOV_CONFIG_FILE");
        if (env_path != NULL && env_path[0] != '\0')
            ctx.file_path = env_path;
    }
    if (ctx.file_path != NULL) {
        err = read_file(&ctx, pending);
        if (err != GOV_OK)
            goto out;
    }
    read_env(&ctx, pending);
    for (size_t i = 0; i < n; i++) {
        if (argv_pending[i].source == SOURCE_ARGV) {
            pending[i].raw = argv_pending[i].raw;
            pending[i].source = SOURCE_ARGV;
        }
    }

    for (size_t i = 0; i < n; i++) {
        err = parse_entry(&ctx, i, &pending[i], &values[i]);
        if (err != GOV_OK)
            goto out;
    }

    /* Commit: nothing below can fail. */
    for (size_t i = 0; i < n; i++) {
        const gov_config_entry_t *e = &table[i];
        switch (e->type) {
        case GOV_CFG_T_STRING:
            *e->dest.str = values[i].s;
            values[i].s = NULL;
            break;
        case GOV_CFG_T_INT:
        case GOV_CFG_T_DURATION_MS:
            *e->dest.num = values[i].l;
            break;
        case GOV_CFG_T_BOOL:
            *e->dest.flag = values[i].b;
            break;
        case GOV_CFG_T_ENUM:
            *e->dest.choice = values[i].b;
            break;
        case GOV_CFG_T_FRACTION:
            *e->dest.fraction = values[i].d;
            break;
        case GOV_CFG_T_PLACEHOLDER:
            break;
        }
    }
    if (flags.print_config) {
        gov_config_print(table, n, stdout);
        fflush(stdout);
        *result = GOV_CONFIG_EXIT;
    }
out:
    if (values != NULL) {
        for (size_t i = 0; i < n; i++)
            if (table[i].type == GOV_CFG_T_STRING)
                gov_free(values[i].s);
    }
    if (pending != NULL) {
        for (size_t i = 0; i < n; i++)
            gov_free(pending[i].owned);
    }
    gov_free(values);
    gov_free(pending);
    gov_free(argv_pending);
    return err;
}

void gov_config_print(const gov_config_entry_t *table, size_t n, FILE *out) {
    if (table == NULL || out == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const gov_config_entry_t *e = &table[i];
        char num[32];
        if (e->dest.any == NULL)
            continue;
        fprintf(out, "%s = ", e->name);
        switch (e->type) {
        case GOV_CFG_T_STRING: {
            const char *s = *e->dest.str;
            if (e->secret)
                fputs(s && s[0] ? "(set)" : "(unset)", out);
            else if (s)
                fputs(s, out);
            break;
        }
        case GOV_CFG_T_INT:
            snprintf(num, sizeof(num), "%ld", *e->dest.num);
            fputs(e->secret ? "(set)" : num, out);
            break;
        case GOV_CFG_T_DURATION_MS:
            format_duration(*e->dest.num, num, sizeof(num));
            fputs(e->secret ? "(set)" : num, out);
            break;
        case GOV_CFG_T_BOOL:
            fputs(e->secret ? "(set)" : (*e->dest.flag ? "true" : "false"), out);
            break;
        case GOV_CFG_T_ENUM:
            fputs(e->secret ? "(set)" : e->choices[*e->dest.choice], out);
            break;
        case GOV_CFG_T_FRACTION:
            snprintf(num, sizeof(num), "%g", *e->dest.fraction);
            fputs(e->secret ? "(set)" : num, out);
            break;
        case GOV_CFG_T_PLACEHOLDER:
            break;
        }
        fputc('\n', out);
    }
}

/* Markdown cell text: '|' escaped, newlines as spaces. */
static void put_cell(FILE *out, const char *s) {
    for (const char *p = s; *p; p++) {
        if (*p == '|')
            fputs("\\|", out);
        else if (*p == '\n' || *p == '\r')
            fputc(' ', out);
        else
            fputc(*p, out);
    }
}

void gov_config_print_docs(const gov_config_entry_t *table, size_t n, FILE *out) {
    char env[MAX_NAME_BYTES + 8];
    if (table == NULL || out == NULL)
        return;
    fputs("| Name | Environment | Type | Default | Bounds | Description |\n", out);
    fputs("|---|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < n; i++) {
        const gov_config_entry_t *e = &table[i];
        env_name(e->name, env, sizeof(env));
        fprintf(out, "| `%s` | `%s` | %s | ", e->name, env, type_names[e->type]);
        if (e->default_value && e->secret) {
            fputs("(secret)", out);
        } else if (e->default_value) {
            fputc('`', out);
            put_cell(out, e->default_value);
            fputc('`', out);
        }
        fputs(" | ", out);
        char range[256];
        format_range(e, range, sizeof(range));
        put_cell(out, range);
        fputs(" | ", out);
        put_cell(out, e->help ? e->help : "");
        fputs(e->secret ? " (secret) |\n" : " |\n", out);
    }
}

void gov_config_free_strings(const gov_config_entry_t *table, size_t n) {
    if (table == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        if (table[i].type == GOV_CFG_T_STRING && table[i].dest.str != NULL) {
            gov_free(*table[i].dest.str);
            *table[i].dest.str = NULL;
        }
    }
}
