/* gov_log.c - JSON-lines logger.
 *
 * Builds each line in a stack buffer and emits it with one write(2), which
 * POSIX keeps atomic for a pipe up to PIPE_BUF and which in practice keeps
 * whole lines together on files and terminals.  No allocation, so logging
 * works when memory is exhausted.
 */
#include "gov_log.h"

#include "gov_util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192

static const char *log_component = "gov";
static gov_log_level_t log_min_level = GOV_LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void gov_log_init(const char *component, gov_log_level_t min_level) {
    if (component)
        log_component = component;
    log_min_level = min_level;
}

int gov_log_level_parse(const char *s) {
    if (s == NULL)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return GOV_LOG_WARN;
    return -1;
}

typedef struct {
    char buf[LINE_MAX_BYTES];
    size_t len;
    int full;
} line_t;

static void put_raw(line_t *l, const char *s, size_t n) {
    /* Keep room for the closing '"}\n'. */
    if (l->full || l->len + n > LINE_MAX_BYTES - 8) {
        l->full = 1;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(line_t *l, const char *s) {
    put_raw(l, s, strlen(s));
}

/* Appends s as the inside of a JSON string; cuts at a character boundary.
 * Bytes that do not form valid UTF-8 are written as U+FFFD, so a line is
 * valid JSON whatever a value holds. */
static void put_escaped(line_t *l, const char *s) {
    static const char hex[] = "0123456789abcdef";
    size_t len = strlen(s);
    for (const unsigned char *p = (const unsigned char *)s; *p && !l->full; p++) {
        if (*p >= 0x80) {
            size_t n = gov_utf8_seq_len(p, len - (size_t)(p - (const unsigned char *)s));
            if (n == 0) {
                put_raw(l, "\\ufffd", 6);
            } else {
                put_raw(l, (const char *)p, n);
                p += n - 1;
            }
            continue;
        }
        char esc[7];
        size_t n = 0;
        switch (*p) {
        case '"': esc[n++] = '\\'; esc[n++] = '"'; break;
        case '\\': esc[n++] = '\\'; esc[n++] = '\\'; break;
        case '\n': esc[n++] = '\\'; esc[n++] = 'n'; break;
        case '\r': esc[n++] = '\\'; esc[n++] = 'r'; break;
        case '\t': esc[n++] = '\\'; esc[n++] = 't'; break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                esc[n++] = '\\'; esc[n++] = 'u'; esc[n++] = '0'; esc[n++] = '0';
                esc[n++] = hex[*p >> 4]; esc[n++] = hex[*p & 15];
            } else {
                esc[n++] = (char)*p;
            }
        }
        put_raw(l, esc, n);
    }
}

static void put_value(line_t *l, const char *v) {
    if (v == NULL) {
        put_str(l, "null");
        return;
    }
    size_t before = l->len;
    put_raw(l, "\"", 1);
    put_escaped(l, v);
    if (l->full) {
        /* Truncate inside the string but keep the object valid. */
        l->full = 0;
        while (l->len > before + 1 && ((unsigned char)l->buf[l->len - 1] & 0xC0) == 0x80)
            l->len--; /* do not end in the middle of a UTF-8 sequence */
        if (l->len > before + 1 && ((unsigned char)l->buf[l->len - 1] & 0x80))
            l->len--;
        /* The reserved tail always has room for the closing quote. */
        l->buf[l->len++] = '"';
        l->full = 1;
        return;
    }
    put_raw(l, "\"", 1);
}

void gov_logv(gov_log_level_t level, const char *msg, va_list kv) {
    if (level < log_min_level || level > GOV_LOG_ERROR)
        return;
    line_t l;
    l.len = 0;
    l.full = 0;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tsbuf[96];
    snprintf(tsbuf, sizeof tsbuf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, (long)(ts.tv_nsec / 1000) % 1000000);

    put_str(&l, "{\"ts\":\"");
    put_str(&l, tsbuf);
    put_str(&l, "\",\"level\":\"");
    put_str(&l, level_names[level]);
    put_str(&l, "\",\"component\":");
    put_value(&l, log_component);
    put_str(&l, ",\"msg\":");
    put_value(&l, msg ? msg : "");
    for (;;) {
        const char *k = va_arg(kv, const char *);
        if (k == NULL || l.full)
            break;
        const char *v = va_arg(kv, const char *);
        put_str(&l, ",");
        put_value(&l, k);
        put_str(&l, ":");
        put_value(&l, v);
    }
    /* put_raw reserved room for this even when the line filled up. */
    memcpy(l.buf + l.len, "}\n", 2);
    l.len += 2;
    ssize_t w = write(STDERR_FILENO, l.buf, l.len);
    (void)w;
}

void gov_log(gov_log_level_t level, const char *msg, ...) {
    va_list ap;
    va_start(ap, msg);
    gov_logv(level, msg, ap);
    va_end(ap);
}

void gov_logf(gov_log_level_t level, const char *fmt, ...) {
    char msg[2048];
    GOV_FORMAT_VA(msg, sizeof msg, fmt);
    gov_log(level, msg, (const char *)NULL);
}
