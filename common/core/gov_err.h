/* gov_err.h - the one error enum of libgov.
 *
 * Every libgov function that can fail returns a gov_err_t: GOV_OK (0) on
 * success, a negative, stable value otherwise.  The names are part of the
 * public contract: they appear in logs, metrics labels and HTTP error codes
 * (gov_err_code() gives the snake_case form used there), so a value is never
 * renumbered or renamed, only added.
 *
 * Thread-safety: all functions here are pure and thread-safe.
 */
#ifndef GOV_ERR_H
#define GOV_ERR_H

typedef enum gov_err {
    GOV_OK = 0,
    GOV_ERR_NOMEM = -1,          /* allocation failed */
    GOV_ERR_INVALID_ARG = -2,    /* caller passed something unusable */
    GOV_ERR_IO = -3,             /* file or socket I/O failed */
    GOV_ERR_TIMEOUT = -4,        /* a bounded wait ran out */
    GOV_ERR_NOT_FOUND = -5,      /* the thing looked up does not exist */
    GOV_ERR_EXISTS = -6,         /* the thing created is already there */
    GOV_ERR_PARSE = -7,          /* input is not well-formed */
    GOV_ERR_TOO_LARGE = -8,      /* input exceeds a configured bound */
    GOV_ERR_UNSUPPORTED = -9,    /* well-formed, but not something we accept */
    GOV_ERR_CONFIG = -10,        /* configuration value missing or invalid */
    GOV_ERR_KAFKA = -11,         /* the Kafka client reported a failure */
    GOV_ERR_REDIS = -12,         /* the Redis client reported a failure */
    GOV_ERR_AVRO = -13,          /* Avro schema or datum problem */
    GOV_ERR_CRYPTO = -14,        /* a cryptographic primitive failed */
    GOV_ERR_VERIFY = -15,        /* a verification check rejected the input */
    GOV_ERR_CONFLICT = -16,      /* optimistic concurrency lost; retry */
    GOV_ERR_UNAVAILABLE = -17,   /* a dependency is down; fail closed */
    GOV_ERR_STATE = -18,         /* required state is missing */
    GOV_ERR_DUPLICATE = -19,     /* already processed (idempotent no-op) */
    GOV_ERR_HTTP = -20,          /* an HTTP exchange failed */
    GOV_ERR_INTERNAL = -21,      /* a bug: an invariant did not hold */
} gov_err_t;

/* Returns a static, human-readable description.  Never NULL. */
const char *gov_err_str(gov_err_t err);

/* Returns a static, stable snake_case code ("not_found"), for logs, metric
 * labels and the HTTP error body.  Never NULL. */
const char *gov_err_code(gov_err_t err);

#endif /* GOV_ERR_H */
