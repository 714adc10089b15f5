/* gov_time.c - the clock, sleeping and randomness the runtime hands to core.
 *
 * Core code never reads a clock or draws random bytes: it takes the time and
 * random values as arguments.  These wrappers are where binaries get them.
 */
#include "gov_time.h"

#include <openssl/rand.h>
#include <time.h>

int64_t gov_now_micros(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t gov_mono_micros(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

gov_err_t gov_uuid_v7(char out[GOV_UUID_STRLEN + 1]) {
    unsigned char rnd[10];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return GOV_ERR_CRYPTO;
    gov_uuid_v7_format((uint64_t)(gov_now_micros() / 1000), rnd, out);
    return GOV_OK;
}

void gov_sleep_ms_interruptible(long ms, volatile sig_atomic_t *running) {
    while (ms > 0 && (running == NULL || *running)) {
        long step = ms < 50 ? ms : 50;
        struct timespec ts = {step / 1000, (step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

long gov_backoff_ms(unsigned attempt, long base_ms, long cap_ms) {
    long d = base_ms;
    for (unsigned i = 0; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    unsigned char r[2];
    if (RAND_bytes(r, 2) != 1)
        return d;
    long span = d / 5; /* +/- 20% */
    if (span == 0)
        return d;
    long jitter = (long)((r[0] << 8 | r[1]) % (unsigned)(2 * span + 1)) - span;
    return d + jitter;
}
