/* gov_status.h - component status, like OPA's plugin status.
 *
 * Every long-running part of a binary (its Kafka consumer, its Redis
 * connection, its loaded state) registers a component and reports
 * NOT_READY / OK / DEGRADED / ERROR with the time of its last success and
 * its active revision.  /readyz is computed from the set: ready when every
 * registered component is OK or DEGRADED.  DEGRADED is for a part that
 * serves less than it should but must not take the whole binary out of
 * rotation (gov-edge: one tenant whose stored state did not verify keeps its
 * last verified state, the other tenants are fine); it shows in the body
 * ("status":"degraded", the component "degraded"), never in the code.
 *
 * Thread-safety: gov_status_* may be called from any thread.
 */
#ifndef GOV_STATUS_H
#define GOV_STATUS_H

#include <jansson.h>
#include <stdint.h>

#include "gov_err.h"

typedef enum gov_status_state {
    GOV_STATUS_NOT_READY = 0,
    GOV_STATUS_OK = 1,
    GOV_STATUS_ERROR = 2,
    GOV_STATUS_DEGRADED = 3,   /* serving, with less than it should: still ready */
} gov_status_state_t;

typedef struct gov_status gov_status_t;

/* Returns a new, empty set (NULL when out of memory). */
gov_status_t *gov_status_new(void);
/* Frees the set; NULL is a no-op. */
void gov_status_free(gov_status_t *st);

/* Registers (or finds) a component by name; starts NOT_READY. */
gov_err_t gov_status_register(gov_status_t *st, const char *component);
/* Sets a component's state.  detail and revision are copied (may be NULL;
 * NULL keeps the previous revision).  OK also records the time of success. */
void gov_status_set(gov_status_t *st, const char *component,
                    gov_status_state_t state, const char *detail,
                    const char *revision);
/* 1 when every registered component is OK or DEGRADED (and at least one
 * exists). */
int gov_status_ready(gov_status_t *st);

/* The /readyz body {"status":"ok"|"degraded"|"not_ready","components":[...]}
 * ("degraded": ready, some component DEGRADED) as a new
 * JSON value (NULL on allocation failure); *ready set as gov_status_ready.
 * For servers that answer /readyz themselves (gov-edge). */
json_t *gov_status_to_json(gov_status_t *st, int *ready);

#endif /* GOV_STATUS_H */
