/* gov_strset.c - sorted, duplicate-free sets of owned strings.
 *
 * How it works: entries are collected in any order, then sorted bytewise
 * (strcmp) once; equal neighbours are freed, which makes the array a set.
 * Membership is a binary search.  Bytewise order needs no locale and gives
 * the same set - and the same canonical JSON - on every host.
 *
 * What it does not do: grow the array (the caller sizes v and counts n, as
 * gov_rulepack and gov_policy do from a JSON array's length) or keep the
 * declaration order.
 */
#include "gov_strset.h"

#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"

int gov_strset_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void gov_strset_finish(gov_strset_t *set) {
    if (set->n == 0) /* v may be NULL: qsort must not see it */
        return;
    qsort(set->v, set->n, sizeof *set->v, gov_strset_cmp);
    size_t w = 0;
    for (size_t i = 0; i < set->n; i++) {
        if (w > 0 && strcmp(set->v[w - 1], set->v[i]) == 0)
            gov_free(set->v[i]);
        else
            set->v[w++] = set->v[i];
    }
    set->n = w;
}

int gov_strset_contains(const gov_strset_t *set, const char *s) {
    if (set == NULL || s == NULL || set->n == 0)
        return 0;
    return bsearch(&s, set->v, set->n, sizeof *set->v, gov_strset_cmp) != NULL;
}

void gov_strset_clear(gov_strset_t *set) {
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        gov_free(set->v[i]);
    gov_free(set->v);
    set->v = NULL;
    set->n = 0;
}
