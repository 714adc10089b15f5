/* gov_backoff.c - exponential back-off with jitter, as a pure function.
 *
 * How it works: the delay is computed in doubles (ldexp for the power of
 * two, so a huge attempt count cannot overflow an integer), capped, spread
 * by the jitter fraction around its value with the caller's u, capped again
 * (the cap is a promise: "longest wait"), and clamped to [1, 2^62].
 *
 * What it does not do: draw randomness or sleep - the runtime does both
 * (gov_time.h).
 */
#include "gov_backoff.h"

#include <limits.h>
#include <math.h>

/* Exponents at or above this reach any cap a long can express. */
#define MAX_SHIFT 62u

static double clamp_unit(double u) {
    if (!(u >= 0.0)) /* also NaN */
        return 0.0;
    if (u >= 1.0)
        return nextafter(1.0, 0.0);
    return u;
}

static double clamp_jitter(double jitter) {
    if (!(jitter >= 0.0))
        return 0.0;
    return jitter > 1.0 ? 1.0 : jitter;
}

/* Spreads base by +/- jitter with u, applies cap (< 0: none) and the bounds. */
static long jittered(double base, double cap, double jitter, double u) {
    double d = base * (1.0 + clamp_jitter(jitter) * (2.0 * clamp_unit(u) - 1.0));
    if (cap >= 0.0 && d > cap)
        d = cap;
    if (d < 1.0)
        d = 1.0;
    if (d > (double)LONG_MAX / 2)
        d = (double)LONG_MAX / 2;
    return (long)d;
}

long gov_backoff_delay_ms(long base_ms, long cap_ms, unsigned attempt, double jitter,
                          double u) {
    double b = base_ms > 0 ? (double)base_ms : 1.0;
    double cap = cap_ms > 0 ? (double)cap_ms : b;
    double base = attempt >= MAX_SHIFT ? cap : ldexp(b, (int)attempt);
    if (base > cap)
        base = cap;
    return jittered(base, cap, jitter, u);
}

long gov_backoff_periodic_ms(long interval_ms, double jitter, long backoff_base_ms,
                             long backoff_max_ms, unsigned consecutive_failures, double u) {
    if (consecutive_failures > 0)
        return gov_backoff_delay_ms(backoff_base_ms, backoff_max_ms, consecutive_failures - 1,
                                    jitter, u);
    return jittered(interval_ms > 0 ? (double)interval_ms : 1.0, -1.0, jitter, u);
}
