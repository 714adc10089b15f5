/* gov_log.h - JSON-lines logging on stderr.
 *
 * One JSON object per line: {"ts":"2026-11-24T10:16:00.123456Z","level":"info",
 * "component":"gov-audit","msg":"...", <key>: <value>, ...}.  Keys and values
 * are given as pairs of C strings ending with NULL; values are always JSON
 * strings, escaped, so no input can break the line format.
 *
 *   gov_log(GOV_LOG_WARN, "poison message", "topic", t, "offset", off, NULL);
 *
 * A line is written with a single write(2) so lines from threads never
 * interleave.  Lines longer than 8 KiB are truncated (values are cut, the
 * object stays valid JSON).
 *
 * Thread-safety: thread-safe; gov_log_init is called once from main first.
 */
#ifndef GOV_LOG_H
#define GOV_LOG_H

#include <stdarg.h>

typedef enum gov_log_level {
    GOV_LOG_DEBUG = 0,
    GOV_LOG_INFO = 1,
    GOV_LOG_WARN = 2,
    GOV_LOG_ERROR = 3,
} gov_log_level_t;

/* Sets the component name (borrowed: must outlive logging) and minimum level. */
void gov_log_init(const char *component, gov_log_level_t min_level);

/* Parses "debug"/"info"/"warn"/"error"; returns -1 for anything else. */
int gov_log_level_parse(const char *s);

/* Logs msg with NULL-terminated key/value string pairs.  A NULL value is
 * logged as JSON null. */
void gov_log(gov_log_level_t level, const char *msg, ...);
void gov_logv(gov_log_level_t level, const char *msg, va_list kv);

/* Formats msg printf-style (no key/value pairs). */
void gov_logf(gov_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* GOV_LOG_H */
