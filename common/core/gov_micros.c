/* gov_micros.c - exact decimal numbers in [0,1] as integer millionths.
 *
 * How it works: the double jansson read is written in its shortest
 * round-trip decimal form (gov_canon_format_es6, the form RFC 8785 puts in
 * the canonical JSON), and that text - not the double - is judged: range
 * [0,1], at most 6 decimal places, then converted digit by digit.  So 0.35
 * is exactly 350000 and 0.1234567 is refused, with no floating-point
 * arithmetic anywhere in the decision.
 *
 * What it does not do: accept strings ("0.5") or anything outside [0,1];
 * arithmetic on micros is the caller's (gov_policy saturates its sums).
 */
#include "gov_micros.h"

#include <stdio.h>
#include <string.h>

gov_micros_status_t gov_micros_from_json(const json_t *v, int64_t *micros,
                                         char text[GOV_CANON_NUMBUF]) {
    char local[GOV_CANON_NUMBUF];
    char *t = text ? text : local;
    t[0] = '\0';
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        snprintf(t, GOV_CANON_NUMBUF, "%" JSON_INTEGER_FORMAT, i);
        if (i != 0 && i != 1)
            return GOV_MICROS_OUT_OF_RANGE;
        *micros = (int64_t)i * GOV_MICROS_ONE;
        return GOV_MICROS_OK;
    }
    if (!json_is_real(v))
        return GOV_MICROS_NOT_NUMBER;
    if (gov_canon_format_es6(json_real_value(v), t) < 0)
        return GOV_MICROS_OUT_OF_RANGE;
    /* t is ECMAScript Number::toString: "-"? digits ("." digits)? or
     * d(.ddd)?e[+-]N.  -0 is written "0". */
    if (t[0] == '-')
        return GOV_MICROS_OUT_OF_RANGE;
    const char *e = strchr(t, 'e');
    if (e != NULL)   /* only for x < 1e-6 (too precise) or x >= 1e21 (too big) */
        return e[1] == '-' ? GOV_MICROS_TOO_PRECISE : GOV_MICROS_OUT_OF_RANGE;
    const char *dot = strchr(t, '.');
    size_t int_len = dot ? (size_t)(dot - t) : strlen(t);
    if (int_len != 1 || (t[0] != '0' && t[0] != '1'))
        return GOV_MICROS_OUT_OF_RANGE;
    if (t[0] == '1') {
        /* The shortest form of 1 is "1"; "1.x" is above 1. */
        if (dot != NULL)
            return GOV_MICROS_OUT_OF_RANGE;
        *micros = GOV_MICROS_ONE;
        return GOV_MICROS_OK;
    }
    int64_t m = 0;
    size_t frac_len = dot ? strlen(dot + 1) : 0;
    if (frac_len > 6)
        return GOV_MICROS_TOO_PRECISE;
    for (size_t k = 0; k < 6; k++) {
        int d = 0;
        if (k < frac_len) {
            char c = dot[1 + k];
            if (c < '0' || c > '9')
                return GOV_MICROS_NOT_NUMBER;   /* cannot happen for ES6 output */
            d = c - '0';
        }
        m = m * 10 + d;
    }
    *micros = m;
    return GOV_MICROS_OK;
}

int gov_micros_format(int64_t micros, char buf[GOV_MICROS_TEXT]) {
    uint64_t a = micros < 0 ? (uint64_t)0 - (uint64_t)micros : (uint64_t)micros;
    if (a < 1000000ULL * GOV_MICROS_ONE) {
        /* Written by hand: every answer of /v1/evaluate writes three or
         * more of these, and snprintf costs more than the rest of the
         * number.  At most "-999999.999999": 14 bytes. */
        char *p = buf, tmp[8];
        uint64_t whole = a / GOV_MICROS_ONE, frac = a % GOV_MICROS_ONE;
        int n = 0;
        if (micros < 0)
            *p++ = '-';
        do {
            tmp[n++] = (char)('0' + whole % 10);
            whole /= 10;
        } while (whole != 0);
        while (n > 0)
            *p++ = tmp[--n];
        *p++ = '.';
        for (int i = 5; i >= 0; i--, frac /= 10)
            p[i] = (char)('0' + frac % 10);
        p += 6;
        *p = '\0';
        return (int)(p - buf);
    }
    return snprintf(buf, GOV_MICROS_TEXT, "%s%llu.%06llu", micros < 0 ? "-" : "",
                    (unsigned long long)(a / GOV_MICROS_ONE),
                    (unsigned long long)(a % GOV_MICROS_ONE));
}
