/* gov_err.c - names of gov_err_t values.
 *
 * One table indexed by -err keeps the description and the stable code side by
 * side, so adding a value is one line and the two can never disagree.
 */
#include "gov_err.h"

#include <stddef.h>

static const struct {
    const char *code;
    const char *desc;
} err_table[] = {
    [0] = {"ok", "success"},
    [1] = {"out_of_memory", "out of memory"},
    [2] = {"invalid_argument", "invalid argument"},
    [3] = {"io_error", "I/O error"},
    [4] = {"timeout", "timed out"},
    [5] = {"not_found", "not found"},
    [6] = {"already_exists", "already exists"},
    [7] = {"parse_error", "malformed input"},
    [8] = {"too_large", "input exceeds a configured limit"},
    [9] = {"unsupported", "unsupported"},
    [10] = {"config_error", "invalid configuration"},
    [11] = {"kafka_error", "Kafka failure"},
    [12] = {"redis_error", "Redis failure"},
    [13] = {"avro_error", "Avro schema or datum error"},
    [14] = {"crypto_error", "cryptographic failure"},
    [15] = {"verification_failed", "verification failed"},
    [16] = {"conflict", "concurrent update conflict"},
    [17] = {"unavailable", "dependency unavailable"},
    [18] = {"state_missing", "required state is missing"},
    [19] = {"duplicate", "already processed"},
    [20] = {"http_error", "HTTP failure"},
    [21] = {"internal_error", "internal error"},
};

#define ERR_COUNT (sizeof(err_table) / sizeof(err_table[0]))

static size_t err_index(gov_err_t err) {
    long i = -(long)err;
    if (i < 0 || (size_t)i >= ERR_COUNT || err_table[i].code == NULL)
        return (size_t)-1;
    return (size_t)i;
}

const char *gov_err_str(gov_err_t err) {
    size_t i = err_index(err);
    return i == (size_t)-1 ? "unknown error" : err_table[i].desc;
}

const char *gov_err_code(gov_err_t err) {
    size_t i = err_index(err);
    return i == (size_t)-1 ? "unknown_error" : err_table[i].code;
}
