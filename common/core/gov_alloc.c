/* gov_alloc.c - allocation wrappers with failure injection for tests.
 *
 * The countdown is an atomic long: -1 means disarmed (the production state),
 * 0 means "fail now", n > 0 means "n more allocations succeed".  The cost on
 * the normal path is one relaxed atomic load.
 */
#include "gov_alloc.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown = -1;
static atomic_long fail_count = 0;

static int should_fail(void) {
    long cur = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (cur >= 0) {
        if (cur == 0) {
            atomic_fetch_add(&fail_count, 1);
            return 1;
        }
        if (atomic_compare_exchange_weak(&fail_countdown, &cur, cur - 1))
            return 0;
    }
    return 0;
}

void *gov_malloc(size_t size) {
    if (should_fail())
        return NULL;
    return malloc(size ? size : 1);
}

void *gov_calloc(size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    if (should_fail())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *gov_realloc(void *ptr, size_t size) {
    if (should_fail())
        return NULL;
    return realloc(ptr, size ? size : 1);
}

char *gov_strndup(const char *s, size_t n) {
    if (s == NULL)
        return NULL;
    char *p = gov_malloc(n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *gov_strdup(const char *s) {
    return s ? gov_strndup(s, strlen(s)) : NULL;
}

void gov_free(void *ptr) {
    free(ptr);
}

void gov_alloc_fail_after(long n) {
    atomic_store(&fail_count, 0);
    atomic_store(&fail_countdown, n < 0 ? -1 : n);
}

void gov_alloc_fail_reset(void) {
    atomic_store(&fail_countdown, -1);
}

long gov_alloc_failures(void) {
    return atomic_load(&fail_count);
}

void gov_alloc_install_jansson(void) {
    json_set_alloc_funcs(gov_malloc, gov_free);
}
