/* gov_admin.h - the admin HTTP server of every binary.
 *
 * The admin server (libmicrohttpd, its own thread) answers, from a
 * gov_status set (gov_status.h) and a metrics registry:
 *   GET /healthz  200 {"status":"ok"} while the process runs its loop
 *   GET /readyz   200 when every component is OK, else 503; the body lists
 *                 each component {"name","state","last_ok","revision","detail"}
 *   GET /metrics  the registry in Prometheus text format
 * Anything else is 404 with the JSON error body of docs/contracts.md.
 *
 * Thread-safety: start and stop from one thread.
 */
#ifndef GOV_ADMIN_H
#define GOV_ADMIN_H

#include <stddef.h>

#include "gov_err.h"
#include "gov_metrics.h"
#include "gov_status.h"

typedef struct gov_admin gov_admin_t;

/* Starts the admin server on addr:port (e.g. "127.0.0.1", 8704).  status and
 * metrics are borrowed and must outlive the server. */
gov_err_t gov_admin_start(const char *addr, unsigned port, gov_status_t *status,
                          gov_metrics_t *metrics, gov_admin_t **out,
                          char *errbuf, size_t errbuf_size);
void gov_admin_stop(gov_admin_t *admin);

#endif /* GOV_ADMIN_H */
