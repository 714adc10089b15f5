/* gov_state_internal.h - what the gov_state_*.c files share; not for use
 * outside them.
 */
#ifndef GOV_STATE_INTERNAL_H
#define GOV_STATE_INTERNAL_H

#include "gov_state.h"

/* Runs a compare-and-set write script (4 keys: the tenant's three and the
 * offset key, then the arguments; it answers {'ok'} or {'conflict', ...})
 * and, when it wrote, adds tenant to the index set index_key - a separate
 * idempotent SADD, since the index lives outside the tenant's hash slot (a
 * failed SADD fails the write: the message is retried and the replay adds
 * it).  GOV_ERR_CONFLICT when the script found another current value.
 * `what` names the script in errbuf ("constitution"). */
gov_err_t gov_state_cas_write(gov_redis_t *r, gov_redis_script_t *script, int argc,
                              const char **argv, const size_t *lens, const char *index_key,
                              const char *tenant, const char *what, char *errbuf,
                              size_t errbuf_size);

#endif /* GOV_STATE_INTERNAL_H */
