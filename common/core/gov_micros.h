/* gov_micros.h - exact decimals in [0,1] as integer millionths ("micros").
 *
 * Weights, scores and thresholds of rule packs and constitutions are
 * decided in int64 millionths, never in floating point, so every edge
 * replica gives the same decision for the same inputs: 0.35 is 350000.  A
 * JSON number is accepted only when its shortest round-trip decimal has at
 * most 6 decimal places and lies in [0,1].
 *
 * Thread-safety: all functions are pure and thread-safe.
 */
#ifndef GOV_MICROS_H
#define GOV_MICROS_H

#include <jansson.h>
#include <stdint.h>

#include "gov_canon.h"

/* 1.0 in micros. */
#define GOV_MICROS_ONE 1000000
/* Text of a micros value: "1.000000" + NUL, with room for a sign. */
#define GOV_MICROS_TEXT 16

typedef enum gov_micros_status {
    GOV_MICROS_OK = 0,
    GOV_MICROS_NOT_NUMBER,      /* not a JSON number */
    GOV_MICROS_OUT_OF_RANGE,    /* < 0 or > 1 */
    GOV_MICROS_TOO_PRECISE,     /* more than 6 decimal places */
} gov_micros_status_t;

/* Converts a JSON number (v borrowed) in [0,1] with at most 6 decimal
 * places (checked on its shortest round-trip decimal form) into millionths
 * at *micros, written only on GOV_MICROS_OK.  text (may be NULL) receives
 * the number as it was judged ("0.1234567", "1e-7"), for messages.  No
 * floating-point arithmetic is involved in the decision.  O(1). */
gov_micros_status_t gov_micros_from_json(const json_t *v, int64_t *micros,
                                         char text[GOV_CANON_NUMBUF]);

/* Writes micros as a decimal with exactly 6 decimals ("0.350000",
 * "1.000000", "-0.250000") into buf and returns its length. */
int gov_micros_format(int64_t micros, char buf[GOV_MICROS_TEXT]);

#endif /* GOV_MICROS_H */
