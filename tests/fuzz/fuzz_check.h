/* fuzz_check.h - the one property check of the fuzz targets.
 *
 * CHECK(cond) aborts with the file, line and condition when cond is false,
 * so libFuzzer records the input as a crash; unlike assert it stays on in
 * every build.  (Older targets still define their own copy.)
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#endif /* FUZZ_CHECK_H */
