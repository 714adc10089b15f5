/* gov_json.c - depth, unknown-member and JCS-equality checks on parsed JSON trees.
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

int gov_json_equal_jcs(const json_t *a, const json_t *b) {
    if (a == NULL || b == NULL)
        return a == b;
    if (json_is_number(a) || json_is_number(b))
        return json_is_number(a) && json_is_number(b) &&
               json_number_value(a) == json_number_value(b);
    if (json_is_array(a)) {
        if (!json_is_array(b) || json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!gov_json_equal_jcs(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        const char *k;
        json_t *x;
        if (!json_is_object(b) || json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach((json_t *)a, k, x) {
            if (!gov_json_equal_jcs(x, json_object_get(b, k)))
                return 0;
        }
        return 1;
    }
    return json_equal(a, b); /* strings (with their length), true, false, null */
}
