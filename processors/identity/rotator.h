/* rotator.h - gov-identity's key rotator: scheduled rotation and the
 * clock-driven key transitions (docs/contracts.md "Key rotation").
 *
 * Thread-safety: one rotator, used from the processor's main loop only.
 */
#ifndef IDENTITY_ROTATOR_H
#define IDENTITY_ROTATOR_H

#include "gov_keyrotate.h"
#include "gov_processor.h"
#include "gov_signature.h"
#include "gov_signer_rt.h"

/* The rotator's configuration rows (place them in the binary's table). */
typedef struct identity_rotator_config {
    gov_keystore_config_t ks;
    gov_keyrotate_config_t timing;
    long period_s;   /* key_rotation_period_s; 0: no scheduled rotation */
    long tick_ms;    /* key_rotator_tick */
    char *operator_key_file;   /* identity_operator_key_file; NULL: rotator off */
} identity_rotator_config_t;

#define IDENTITY_ROTATOR_CONFIG_ROWS(c)                                                     \
    GOV_KEYSTORE_CONFIG_ROWS(&(c)->ks), GOV_KEYROTATE_CONFIG_ROWS(&(c)->timing),           \
    GOV_CFG_INT("key_rotation_period_s", "0", 0, 31536000,                                  \
                "rotate when the newest key is this many seconds old (0: never; "           \
                "gov-identity only)",                                                       \
                &(c)->period_s),                                                            \
    GOV_CFG_DURATION("key_rotator_tick", "1s", 100, 60000,                                  \
                     "how often gov-identity checks key transitions and rotation; the "     \
                     "rotator lease lasts 5 ticks (at least 3 s)",                          \
                     &(c)->tick_ms),                                                        \
    GOV_CFG_STRING("identity_operator_key_file", NULL,                                      \
                   "Ed25519 PEM private key (mode 0600, as key files) that signs the "      \
                   "KeyRotated events gov-identity's rotator produces; it authorizes key "  \
                   "publication, so its public key must be a signer of "                    \
                   "identity_trust_file. Unset: no scheduled rotation, no key transitions", \
                   &(c)->operator_key_file)

typedef struct identity_rotator identity_rotator_t;

/* Opens the key store cfg names (borrowed) and the operator key, finds the
 * key's signer id in trust (borrowed, must outlive the rotator), and
 * registers the rotator's metrics and status component with p.  *out NULL
 * (and GOV_OK) when no key store or no operator key is configured: the
 * rotator is off, logged once.  Errors (logged): the key store's, the
 * operator key's (key_insecure, key_invalid), GOV_ERR_CONFIG for an
 * operator key the trust does not list. */
gov_err_t identity_rotator_new(gov_processor_t *p, const identity_rotator_config_t *cfg,
                               const gov_trust_t *trust, identity_rotator_t **out);

/* Does what is due, at most once per tick: renews the lease, and when this
 * process holds it, produces the due transitions and a due scheduled
 * rotation.  Failures are logged and shown as the key_rotator component
 * (degraded); the next tick tries again.  NULL r is a no-op. */
void identity_rotator_tick(identity_rotator_t *r);

void identity_rotator_free(identity_rotator_t *r);

#endif /* IDENTITY_ROTATOR_H */
