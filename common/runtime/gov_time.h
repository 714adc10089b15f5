/* gov_time.h - clock, sleep and randomness for the runtime and the binaries.
 *
 * Core (common/core) never calls these: it takes time and random values as
 * arguments, so its results depend on its inputs alone.
 *
 * Thread-safety: all functions are thread-safe.
 */
#ifndef GOV_TIME_H
#define GOV_TIME_H

#include <signal.h>
#include <stdint.h>

#include "gov_util.h"

/* Wall-clock time in microseconds since the Unix epoch. */
int64_t gov_now_micros(void);
/* Monotonic time in microseconds, for durations and deadlines. */
int64_t gov_mono_micros(void);

/* Writes a new UUIDv7 (RFC 9562: 48-bit Unix ms, version 7, variant 10,
 * random bits from the OpenSSL CSPRNG) as 36 chars + NUL into out. */
gov_err_t gov_uuid_v7(char out[GOV_UUID_STRLEN + 1]);

/* Sleeps ms milliseconds, returning early once *running becomes 0 (checked
 * every 50 ms); running may be NULL. */
void gov_sleep_ms_interruptible(long ms, volatile sig_atomic_t *running);

/* A uniform random number in [0, 1) from the OpenSSL CSPRNG (53 bits); 0.5
 * when no randomness is available (then a jittered wait is simply not
 * jittered, still valid). */
double gov_random_unit(void);

/* gov_backoff_delay_ms (core, gov_backoff.h) with +/-20% jitter and u drawn
 * by gov_random_unit: base * 2^attempt, capped at cap_ms. */
long gov_backoff_ms(unsigned attempt, long base_ms, long cap_ms);

#endif /* GOV_TIME_H */
