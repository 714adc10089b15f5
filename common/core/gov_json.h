/* gov_json.h - checks on parsed JSON (jansson) trees that validators share.
 *
 * gov_rulepack and gov_policy both bound the nesting of a parsed document
 * and both refuse members they do not know, naming one; the rules for that
 * are written here once so both name the same member for the same input.
 *
 * Thread-safety: all functions are pure and thread-safe (they only read).
 */
#ifndef GOV_JSON_H
#define GOV_JSON_H

#include <jansson.h>

/* Nesting depth of v (borrowed): 0 for a scalar or NULL, 1 + the deepest
 * child for an array or object.  Recursive: call it on trees parsed by
 * gov_canon_parse, whose depth is already bounded (GOV_CANON_MAX_DEPTH).
 * O(number of values). */
int gov_json_depth(const json_t *v);

/* The member of obj (borrowed) whose key is not in allowed (a
 * NULL-terminated list); of several, the bytewise smallest, so the answer
 * does not depend on the member order.  Returns a key borrowed from obj,
 * or NULL when every key is allowed (or obj is not an object).
 * O(members * allowed). */
const char *gov_json_unknown_member(const json_t *obj, const char *const *allowed);

#endif /* GOV_JSON_H */
