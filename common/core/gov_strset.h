/* gov_strset.h - a set of strings, sorted bytewise, without duplicates.
 *
 * The roles, actions and tool categories of a rule, the values of a
 * metadata condition and the constitution's prohibited actions are all
 * sets: membership is all that matters, and the order must not depend on
 * how they were declared.  The struct is public so a parser can fill v[]
 * and n directly, then call gov_strset_finish once.
 *
 *   gov_strset_t s = {gov_calloc(n, sizeof *s.v), 0};
 *   for (...) s.v[s.n++] = gov_strdup(...);     // the set owns each entry
 *   gov_strset_finish(&s);
 *   if (gov_strset_contains(&s, "x")) ...
 *   gov_strset_clear(&s);
 *
 * Thread-safety: a finished set may be read by any number of threads.
 */
#ifndef GOV_STRSET_H
#define GOV_STRSET_H

#include <stddef.h>

typedef struct gov_strset {
    char **v;   /* owned array of owned NUL-terminated strings (gov_malloc) */
    size_t n;
} gov_strset_t;

/* Sorts the set's entries bytewise and frees duplicates, making it a set.
 * O(n log n). */
void gov_strset_finish(gov_strset_t *set);

/* 1 when s is in the finished set (NULL set or s: 0).  O(log n)
 * comparisons. */
int gov_strset_contains(const gov_strset_t *set, const char *s);

/* The set's order as a qsort/bsearch comparator over an array of char *
 * (strcmp of the pointed-to strings), for callers that sort other string
 * arrays the same way. */
int gov_strset_cmp(const void *a, const void *b);

/* Frees every entry and the array; the set is empty afterwards and may be
 * filled again.  NULL is safe. */
void gov_strset_clear(gov_strset_t *set);

#endif /* GOV_STRSET_H */
