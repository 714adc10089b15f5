/* unit_files.h - reading repository files in the unit tests (test_canon.c,
 * test_policy.c, test_policy_log.c, test_policy_parse.c) and the policy
 * vectors, one copy instead of one per file.
 *
 * Paths are relative to the repository root ($GOV_ROOT, else the current
 * directory, which tests/run.sh sets to the root).  Plain malloc, not
 * gov_malloc: a test's allocation-failure injection must not hit the
 * harness.  A file that cannot be read fails the test (cmocka's fail_msg),
 * so a test never runs on nothing.  Include after <cmocka.h> and
 * <jansson.h>.
 */
#ifndef UNIT_FILES_H
#define UNIT_FILES_H

#include <stdio.h>
#include <stdlib.h>

/* rel under the repository root, in a static buffer (one at a time). */
static inline const char *unit_repo_path(const char *rel) {
    static char buf[4096];
    const char *root = getenv("GOV_ROOT");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : ".", rel);
    return buf;
}

/* The whole file at path, NUL-terminated (free); *len (may be NULL) its
 * length.  Fails the test when the file cannot be read. */
static inline char *unit_slurp_path(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot read %s (run from the repository root or set GOV_ROOT)", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (n + 1 >= cap) {
            buf = realloc(buf, cap *= 2);
            assert_non_null(buf);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* The file at rel under the repository root (unit_slurp_path). */
static inline char *unit_slurp(const char *rel, size_t *len) {
    return unit_slurp_path(unit_repo_path(rel), len);
}

/* tests/vectors/policy/cases.json as a new jansson value (json_decref);
 * fails the test when it does not parse. */
static inline json_t *unit_policy_cases(void) {
    size_t len;
    char *text = unit_slurp("tests/vectors/policy/cases.json", &len);
    json_error_t je;
    json_t *v = json_loadb(text, len, 0, &je);
    free(text);
    if (v == NULL)
        fail_msg("cases.json: %s (line %d)", je.text, je.line);
    return v;
}

#endif /* UNIT_FILES_H */
