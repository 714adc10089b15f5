/* fetch.h - one bounded, conditional HTTP(S) GET of a SomaBrain bundle.
 *
 * The I/O edge of gov-somabrain-sync: libcurl with http/https only (also
 * for redirects, and https never downgraded to http), TLS verification on,
 * a connect and a total timeout, a body cap checked against Content-Length
 * before any byte is read and again while reading, and If-None-Match with
 * the last ETag.  The outcome is classified into the stable reason codes of
 * the sync; what the body means is not this module's business.
 *
 * Thread-safety: somabrain_fetch may run in several threads at once (each
 * call has its own easy handle); curl_global_init must have been called.
 */
#ifndef SOMABRAIN_FETCH_H
#define SOMABRAIN_FETCH_H

#include <signal.h>
#include <stddef.h>

#include "gov_err.h"
#include "gov_reason.h"

/* The longest ETag kept; a longer one is ignored (no conditional request). */
#define SOMABRAIN_ETAG_MAX 256

typedef struct somabrain_fetch_opts {
    long connect_timeout_ms;
    long total_timeout_ms;
    size_t max_body;            /* bytes */
    const char *ca_file;        /* NULL: the system trust store */
} somabrain_fetch_opts_t;

typedef enum somabrain_fetch_outcome {
    SOMABRAIN_FETCH_BODY = 0,         /* 200: body holds the bytes */
    SOMABRAIN_FETCH_NOT_MODIFIED = 1, /* 304 to our If-None-Match */
    SOMABRAIN_FETCH_FAILED = 2,       /* reason, detail (and http_status) say why */
    SOMABRAIN_FETCH_ABORTED = 3,      /* *running went to 0: shutting down */
} somabrain_fetch_outcome_t;

typedef struct somabrain_fetch_result {
    somabrain_fetch_outcome_t outcome;
    gov_reason_t reason;    /* when FAILED: GOV_REASON_UNREACHABLE, _TIMEOUT, _TLS,
                               _HTTP_STATUS, _TOO_LARGE or _TRANSFER_FAILED;
                               else GOV_REASON_NONE */
    long http_status;       /* final status, 0 when no response */
    char *body;             /* BODY: new NUL-terminated buffer (gov_free) */
    size_t body_len;
    char etag[SOMABRAIN_ETAG_MAX + 1]; /* of the final response, "" when none */
    char detail[256];       /* human-readable; ASCII */
} somabrain_fetch_result_t;

/* GETs url.  if_none_match (may be NULL) is sent as If-None-Match.  The
 * transfer is abandoned (ABORTED) soon after *running becomes 0 (running may
 * be NULL).  Returns GOV_OK with *res filled for every HTTP outcome, failures
 * included; GOV_ERR_NOMEM or GOV_ERR_INTERNAL when it could not try at all
 * (then res->detail says why).  The caller releases res with
 * somabrain_fetch_result_clear.  Cost: bounded by opts' timeouts and cap. */
gov_err_t somabrain_fetch(const somabrain_fetch_opts_t *opts, const char *url,
                          const char *if_none_match, volatile sig_atomic_t *running,
                          somabrain_fetch_result_t *res);

/* Frees the body and resets res. */
void somabrain_fetch_result_clear(somabrain_fetch_result_t *res);

/* 1 when s is usable as an ETag we store and send back: 1..SOMABRAIN_ETAG_MAX
 * visible ASCII characters (no spaces, no control characters). */
int somabrain_etag_valid(const char *s, size_t len);

#endif /* SOMABRAIN_FETCH_H */
