/* gov_backoff.h - the one back-off function: exponential, capped, jittered.
 *
 * Pure: the random value comes in as an argument (u, uniform in [0, 1)), so
 * the result depends on the inputs alone and tests can pin it.  Binaries get
 * u from gov_random_unit() (common/runtime/gov_time.h), or call the runtime
 * wrapper gov_backoff_ms that draws it.
 *
 * Thread-safety: all functions are pure and thread-safe.
 */
#ifndef GOV_BACKOFF_H
#define GOV_BACKOFF_H

/* The wait before retry number attempt + 1 (attempt 0: the first retry):
 *   min(cap_ms, base_ms * 2^attempt) * (1 + jitter * (2u - 1)),
 * i.e. uniformly within +/- jitter of the capped exponential, never above
 * cap_ms, at least 1 ms.  base_ms <= 0 counts as 1; cap_ms <= 0 means the
 * cap is base_ms.  jitter is clamped to [0, 1], u to [0, 1) (NaN -> 0).
 * O(1); no overflow for any input. */
long gov_backoff_delay_ms(long base_ms, long cap_ms, unsigned attempt, double jitter,
                          double u);

/* The next wait of a periodic task (a poller): interval_ms +/- jitter while
 * it succeeds (interval_ms <= 0 counts as 1), and after consecutive_failures
 * > 0 failures gov_backoff_delay_ms(backoff_base_ms, backoff_max_ms,
 * consecutive_failures - 1, jitter, u).  Pure; O(1). */
long gov_backoff_periodic_ms(long interval_ms, double jitter, long backoff_base_ms,
                             long backoff_max_ms, unsigned consecutive_failures, double u);

#endif /* GOV_BACKOFF_H */
