/* gov_time.c - the clock, sleeping and randomness the runtime hands to core.
 *
 * Core code never reads a clock or draws random bytes: it takes the time and
 * random values as arguments.  These wrappers are where binaries get them.
 */
#include "gov_time.h"

#include "gov_backoff.h"

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

double gov_random_unit(void) {
    unsigned char r[8];
    if (RAND_bytes(r, sizeof r) != 1)
        return 0.5;
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof r; i++)
        v = v << 8 | r[i];
    return (double)(v >> 11) / 9007199254740992.0; /* 53 bits -> [0, 1) */
}

long gov_backoff_ms(unsigned attempt, long base_ms, long cap_ms) {
    return gov_backoff_delay_ms(base_ms, cap_ms, attempt, 0.2, gov_random_unit());
}
