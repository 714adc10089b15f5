/* test_log.c - gov_log: JSON lines on stderr.
 *
 * Runtime: it links libgov_runtime.a (RUNTIME_UNIT in the Makefile).  The
 * real stderr is redirected into a pipe for each line, and each line is
 * parsed back with jansson: one object per line, whatever the input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "gov_log.h"

/* Captures what gov_log writes to stderr and parses it as JSON. */
static json_t *capture_log(gov_log_level_t lv, const char *msg, const char *k, const char *v) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    gov_log(lv, msg, k, v, (const char *)NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char buf[16384];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    if (n <= 0)
        return NULL;
    buf[n] = 0;
    assert_int_equal(buf[n - 1], '\n');
    assert_null(strchr(buf, '\n') == buf + n - 1 ? NULL : "embedded newline");
    return json_loads(buf, 0, NULL);
}

static void test_log_json_lines(void **state) {
    (void)state;
    gov_log_init("unit", GOV_LOG_INFO);
    json_t *j = capture_log(GOV_LOG_WARN, "line\nbreak \"quoted\"", "key\x01", "v\xc3\xa9\\");
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "component")), "unit");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "line\nbreak \"quoted\"");
    assert_string_equal(json_string_value(json_object_get(j, "key\x01")), "v\xc3\xa9\\");
    assert_non_null(json_string_value(json_object_get(j, "ts")));
    json_decref(j);
    /* invalid UTF-8 in a value: the line stays valid JSON, the byte becomes U+FFFD */
    j = capture_log(GOV_LOG_WARN, "bad", "v", "a\xff\xc3(b\xe2\x82\xac");
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "v")), "a\xef\xbf\xbd\xef\xbf\xbd(b\xe2\x82\xac");
    json_decref(j);
    /* below the level: nothing */
    assert_null(capture_log(GOV_LOG_DEBUG, "hidden", "a", "b"));
    /* oversize values are cut but the line stays one valid JSON object */
    char *big = malloc(20000);
    memset(big, 'x', 19999);
    big[19999] = 0;
    big[5000] = '"';
    j = capture_log(GOV_LOG_ERROR, "big", "v", big);
    assert_non_null(j);
    assert_true(strlen(json_string_value(json_object_get(j, "v"))) < 8192);
    json_decref(j);
    free(big);
    assert_int_equal(gov_log_level_parse("debug"), GOV_LOG_DEBUG);
    assert_int_equal(gov_log_level_parse("warning"), GOV_LOG_WARN);
    assert_int_equal(gov_log_level_parse("loud"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_json_lines),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
