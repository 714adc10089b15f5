/* gov_alloc.h - the allocator every libgov module goes through.
 *
 * All heap allocation in libgov and the binaries uses these wrappers so that
 * a test can make the Nth allocation fail (gov_alloc_fail_after) and check
 * that the code under test returns GOV_ERR_NOMEM, leaks nothing and does not
 * crash - the technique of jansson's test_chaos.c and SQLite's OOM tests.
 *
 * The failure injection counter is a process-wide atomic; production code
 * never arms it.  gov_free(NULL) is a no-op.
 *
 * Thread-safety: thread-safe.
 */
#ifndef GOV_ALLOC_H
#define GOV_ALLOC_H

#include <stddef.h>

/* Returns new memory the caller frees with gov_free, or NULL. */
void *gov_malloc(size_t size);
/* Returns zeroed memory for n * size bytes (overflow-checked), or NULL. */
void *gov_calloc(size_t n, size_t size);
/* Like realloc; on failure returns NULL and ptr stays valid. */
void *gov_realloc(void *ptr, size_t size);
/* Returns a new copy of s (NULL in, NULL out), or NULL on failure. */
char *gov_strdup(const char *s);
/* Returns a new NUL-terminated copy of the first n bytes of s, or NULL. */
char *gov_strndup(const char *s, size_t n);
void gov_free(void *ptr);

/* Test hook: after `n` more successful allocations, every allocation fails
 * until gov_alloc_fail_reset().  n < 0 disarms. */
void gov_alloc_fail_after(long n);
void gov_alloc_fail_reset(void);
/* Number of allocations that were made to fail since the last reset. */
long gov_alloc_failures(void);

/* Installs gov_malloc/gov_free as jansson's allocator, so JSON values built
 * by libgov also obey failure injection.  Call once at start. */
void gov_alloc_install_jansson(void);

#endif /* GOV_ALLOC_H */
