/* gov_json.h - checks on parsed JSON (jansson) trees that validators share.
 *
 * gov_rulepack and gov_policy both bound the nesting of a parsed document
 * and both refuse members they do not know, naming one; the rules for that
 * are written here once so both name the same member for the same input.
 * gov_json_equal_jcs says when two trees are one value under RFC 8785, the
 * round-trip property gov_canon promises (docs/contracts.md, "Canonical
 * JSON") and its tests and fuzz targets check.
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

/* 1 when a and b (borrowed, may be NULL) are the same value in RFC 8785's
 * data model, where every number is an IEEE-754 double: the same shape,
 * equal strings, keys and literals, and numbers equal as doubles (1, 1.0
 * and 1e0 alike; -0 and 0 alike, as JCS writes both "0"); else 0.  Two
 * NULLs are equal.  Recursive: for trees parsed by gov_canon_parse, whose
 * depth is bounded.  O(size of the trees). */
int gov_json_equal_jcs(const json_t *a, const json_t *b);

#endif /* GOV_JSON_H */
