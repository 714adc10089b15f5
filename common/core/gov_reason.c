/* gov_reason.c - name table of the stable reason codes.
 *
 * What: gov_reason_code / gov_reason_meaning / gov_reason_from_code over the
 * GOV_REASON_LIST of gov_reason.h, and gov_reason_fail, the one way a
 * refusal is recorded (reason value + detail in an errbuf).  How: both tables
 * are generated from that one list, indexed by value, so a code cannot drift
 * from its value.  What it does not do: decide which reason applies (each
 * module does) or put the code into the message (the detail travels
 * separately; the code is looked up where it leaves the process).
 */
#include "gov_reason.h"

#include <stdarg.h>
#include <string.h>

#include "gov_util.h"

static const char *const reason_codes[GOV_REASON_COUNT_] = {
#define GOV_REASON_CODE_(name, code, meaning) [GOV_REASON_##name] = code,
    GOV_REASON_LIST(GOV_REASON_CODE_)
#undef GOV_REASON_CODE_
};

static const char *const reason_meanings[GOV_REASON_COUNT_] = {
#define GOV_REASON_MEANING_(name, code, meaning) [GOV_REASON_##name] = meaning,
    GOV_REASON_LIST(GOV_REASON_MEANING_)
#undef GOV_REASON_MEANING_
};

const char *gov_reason_code(gov_reason_t r) {
    if ((int)r < 0 || r >= GOV_REASON_COUNT_)
        return "unknown";
    return reason_codes[r];
}

const char *gov_reason_meaning(gov_reason_t r) {
    if ((int)r < 0 || r >= GOV_REASON_COUNT_)
        return "";
    return reason_meanings[r];
}

int gov_reason_from_code(const char *code, gov_reason_t *out) {
    if (code == NULL)
        return -1;
    for (int i = 0; i < GOV_REASON_COUNT_; i++) {
        if (strcmp(reason_codes[i], code) == 0) {
            if (out != NULL)
                *out = (gov_reason_t)i;
            return 0;
        }
    }
    return -1;
}

gov_err_t gov_reason_fail(gov_reason_t *why, gov_reason_t reason, gov_err_t rc, char *errbuf,
                          size_t errbuf_size, const char *fmt, ...) {
    if (why != NULL)
        *why = reason;
    GOV_FORMAT_VA(errbuf, errbuf_size, fmt);
    return rc;
}
