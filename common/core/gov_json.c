/* gov_json.c - depth and unknown-member checks on parsed JSON trees.
 *
 * How it works: plain walks over jansson values.  jansson has no const
 * iterator; the casts below only iterate, nothing is modified.
 *
 * What it does not do: parse (gov_canon_parse does, bounded) or produce
 * error messages (each validator words its own, in its own error codes).
 */
#include "gov_json.h"

#include <string.h>

int gov_json_depth(const json_t *v) {
    int best = 0;
    json_t *x;
    if (json_is_object(v)) {
        const char *k;
        json_object_foreach((json_t *)v, k, x) {
            int d = gov_json_depth(x);
            if (d > best)
                best = d;
        }
        return best + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_array_foreach(v, i, x) {
            int d = gov_json_depth(x);
            if (d > best)
                best = d;
        }
        return best + 1;
    }
    return 0;
}

const char *gov_json_unknown_member(const json_t *obj, const char *const *allowed) {
    const char *k, *worst = NULL;
    json_t *x;
    if (!json_is_object(obj))
        return NULL;
    json_object_foreach((json_t *)obj, k, x) {
        int ok = 0;
        for (const char *const *a = allowed; *a != NULL && !ok; a++)
            ok = strcmp(*a, k) == 0;
        if (!ok && (worst == NULL || strcmp(k, worst) < 0))
            worst = k;
    }
    return worst;
}
