/* gov_admin.h - component status and the admin HTTP server of every binary.
 *
 * Every long-running part of a binary (its Kafka consumer, its Redis
 * connection, its loaded state) registers a component and reports
 * NOT_READY / OK / ERROR with the time of its last success and its active
 * revision, like OPA's plugin status.  The admin server (libmicrohttpd, its
 * own thread) answers:
 *   GET /healthz  200 {"status":"ok"} while the process runs its loop
 *   GET /readyz   200 when every component is OK, else 503; the body lists
 *                 each component {"name","state","last_ok","revision","detail"}
 *   GET /metrics  the registry in Prometheus text format
 * Anything else is 404 with the JSON error body of DESIGN.md section 8.
 *
 * Thread-safety: gov_status_* may be called from any thread.
 */
#ifndef GOV_ADMIN_H
#define GOV_ADMIN_H

#include <jansson.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_metrics.h"

typedef enum gov_status_state {
    GOV_STATUS_NOT_READY = 0,
    GOV_STATUS_OK = 1,
    GOV_STATUS_ERROR = 2,
} gov_status_state_t;

typedef struct gov_status gov_status_t;

gov_status_t *gov_status_new(void);
void gov_status_free(gov_status_t *st);

/* Registers (or finds) a component by name; starts NOT_READY. */
gov_err_t gov_status_register(gov_status_t *st, const char *component);
/* Sets a component's state.  detail and revision are copied (may be NULL;
 * NULL keeps the previous revision).  OK also records the time of success. */
void gov_status_set(gov_status_t *st, const char *component,
                    gov_status_state_t state, const char *detail,
                    const char *revision);
/* 1 when every registered component is OK (and at least one exists). */
int gov_status_ready(gov_status_t *st);

/* The /readyz body {"status":"ok"|"not_ready","components":[...]} as a new
 * JSON value (NULL on allocation failure); *ready set as gov_status_ready.
 * For servers that answer /readyz themselves (gov-edge). */
json_t *gov_status_to_json(gov_status_t *st, int *ready);

typedef struct gov_admin gov_admin_t;

/* Starts the admin server on addr:port (e.g. "127.0.0.1", 8704).  status and
 * metrics are borrowed and must outlive the server. */
gov_err_t gov_admin_start(const char *addr, unsigned port, gov_status_t *status,
                          gov_metrics_t *metrics, gov_admin_t **out,
                          char *errbuf, size_t errbuf_size);
void gov_admin_stop(gov_admin_t *admin);

#endif /* GOV_ADMIN_H */
