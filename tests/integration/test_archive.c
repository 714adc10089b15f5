/* test_archive.c - gov-archive against the real stack (docs/contracts.md,
 * "The archive").
 *
 * A private gov-archive (its own component name, its own archive
 * directory, one tenant of its own named in `tenants`, so it claims the
 * tenant before the first event and the stack's gov-archive leaves it
 * alone) archives a chain the stack's gov-audit builds from AuditEvents
 * this test produces to identity.audit.  Checked as an operator would:
 *   - segment files appear, named by sequence range, and fastavro (an
 *     independent Avro implementation, in a venv tests/archive/install.sh
 *     makes) reads them and finds every hash and link from genesis;
 *   - audit:{T} is trimmed exactly up to the watermark, never past it; the
 *     anchor is the last trimmed entry; the owner is the private component;
 *   - `govctl audit verify` passes from the anchor, and with --archive from
 *     genesis; a deleted, a swapped and an altered segment each fail with
 *     their own reason code (on copies of the directory);
 *   - kill -9 of gov-archive while segments are being cut, three times,
 *     then a restart: the archive and the tail still cover the chain
 *     exactly once (verify --archive checks contiguity from genesis).
 * Waits are on observable outcomes: the head's seq, the watermark.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_archive.h"
#include "gov_state.h"
#include "itest_util.h"

#define SEG 5

static char tenant[64], component[96], workdir[512], archive_dir[600];
static char env_dir[700], env_tenants[128];
static itest_proc_t archiver;

/* An integer field of a hash (-1 when absent). */
static long long hash_field(const char *key, const char *field) {
    const char *argv[] = {"HGET", key, field};
    redisReply *r = itest_redis_cmd(itest_redis(), 3, argv, NULL);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

static char key_head[128], key_archive[128], key_anchor[128], key_stream[128];

typedef struct want_seq {
    const char *key;
    long long seq;
} want_seq_t;

static int seq_reached(void *opaque) {
    const want_seq_t *w = opaque;
    return hash_field(w->key, "seq") >= w->seq;
}

static void wait_seq(const char *key, long long seq, int timeout_ms) {
    want_seq_t w = {key, seq};
    if (itest_wait_for(seq_reached, &w, timeout_ms, 50) < 0)
        fail_msg("%s did not reach seq %lld (it is %lld); log %s", key, seq,
                 hash_field(key, "seq"), archiver.log);
}

static void produce(int n) {
    for (int i = 0; i < n; i++) {
        json_t *e = itest_audit_event(tenant, "archive.test");
        itest_produce_event("identity.audit", "AuditEvent", e);
        json_decref(e);
    }
}

/* The first stream entry's seq (0 when the stream is empty) and XLEN. */
static long long stream_first_seq(long long *len) {
    const char *argv[] = {"XRANGE", key_stream, "-", "+", "COUNT", "1"};
    redisReply *r = itest_redis_cmd(itest_redis(), 6, argv, NULL);
    long long seq = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        gov_audit_entry_t e;
        const char *h;
        char why[160];
        assert_int_equal(gov_state_audit_entry_parse(r->element[0], &e, &h, NULL, why, sizeof why), 0);
        seq = (long long)e.seq;
    }
    freeReplyObject(r);
    const char *xl[] = {"XLEN", key_stream};
    r = itest_redis_cmd(itest_redis(), 2, xl, NULL);
    *len = r->integer;
    freeReplyObject(r);
    return seq;
}

/* Trimmed only past archived entries: the stream starts right after the
 * anchor, the anchor is at or behind the watermark, and the stream still
 * holds everything after it up to the head. */
static void check_trim(void) {
    long long len = 0;
    long long first = stream_first_seq(&len);
    long long anchor = hash_field(key_anchor, "seq"), mark = hash_field(key_archive, "seq");
    long long head = hash_field(key_head, "seq");
    if (anchor > mark)
        fail_msg("anchor %lld beyond the watermark %lld", anchor, mark);
    if (len > 0 && first != (anchor < 0 ? 1 : anchor + 1))
        fail_msg("stream starts at seq %lld, anchor is %lld", first, anchor);
    if (len != head - (anchor < 0 ? 0 : anchor))
        fail_msg("stream holds %lld entries, head %lld anchor %lld", len, head, anchor);
}

static void start_archiver(void) {
    const char *env[] = {env_dir, env_tenants, "GOV_SEGMENT_ENTRIES=5", "GOV_SEGMENT_AGE=1h",
                         "GOV_POLL_INTERVAL=20ms", NULL};
    itest_proc_start(&archiver, "gov-archive", component, env, "archive-private");
}

static int setup(void **state) {
    (void)state;
    itest_unique("arch", tenant, sizeof tenant);
    snprintf(component, sizeof component, "gov-archive-itest-%s", tenant);
    if (itest_workdir_new("archive", workdir, sizeof workdir) != 0)
        return -1;
    snprintf(archive_dir, sizeof archive_dir, "%s/archive", workdir);
    snprintf(env_dir, sizeof env_dir, "GOV_ARCHIVE_DIR=%s", archive_dir);
    snprintf(env_tenants, sizeof env_tenants, "GOV_TENANTS=%s", tenant);
    snprintf(key_stream, sizeof key_stream, "audit:{%s}", tenant);
    snprintf(key_head, sizeof key_head, "audit:{%s}:head", tenant);
    snprintf(key_archive, sizeof key_archive, "audit:{%s}:archive", tenant);
    snprintf(key_anchor, sizeof key_anchor, "audit:{%s}:anchor", tenant);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (archiver.pid > 0)
        itest_proc_stop(&archiver);
    itest_workdir_remove(workdir);
    return 0;
}

static int verify(const char *dir, char *out, size_t out_size, char *err, size_t err_size) {
    const char *args[] = {"audit", "verify", "--tenant", tenant, dir ? "--archive" : NULL, dir,
                          NULL};
    return itest_govctl(NULL, args, out, out_size, err, err_size);
}

/* cp -a of the archive into workdir/<name>; returns its tenant directory. */
static void copy_archive(const char *name, char *root, size_t root_size, char *tdir,
                         size_t tdir_size) {
    char out[256], err[256], src[700];
    snprintf(root, root_size, "%s/%s", workdir, name);
    snprintf(src, sizeof src, "%s/.", archive_dir);
    mkdir(root, 0700);
    const char *argv[] = {"cp", "-a", src, root, NULL};
    if (itest_run_capture(argv, NULL, out, sizeof out, err, sizeof err) != 0)
        fail_msg("cp: %s", err);
    snprintf(tdir, tdir_size, "%s/%s", root, tenant);
}

static void seg_path(const char *tdir, uint64_t first, uint64_t last, char *out, size_t n) {
    char name[GOV_ARCHIVE_NAME_MAX];
    gov_archive_segment_name(first, last, name);
    snprintf(out, n, "%s/%s", tdir, name);
}

static void expect_damage(const char *root, const char *reason, const char *what) {
    char out[2048], err[2048];
    int rc = verify(root, out, sizeof out, err, sizeof err);
    if (rc != 1 || strstr(err, reason) == NULL)
        fail_msg("%s: verify --archive answered %d, want 1 with %s; stdout %s stderr %s", what,
                 rc, reason, out, err);
}

static void test_archive(void **state) {
    (void)state;
    char out[4096], err[4096];
    start_archiver();
    /* the claim was made before any event */
    const char *hg[] = {"HGET", key_archive, "component"};
    redisReply *r = itest_redis_cmd(itest_redis(), 3, hg, NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, component);
    freeReplyObject(r);

    produce(23);
    wait_seq(key_head, 23, 60000);
    wait_seq(key_archive, 20, 30000);
    check_trim();
    assert_int_equal(hash_field(key_anchor, "seq"), 20);

    /* segments named by range, each exactly SEG entries */
    char tdir[700];
    snprintf(tdir, sizeof tdir, "%s/%s", archive_dir, tenant);
    gov_archive_listing_t l;
    char eb[256];
    assert_int_equal(gov_archive_list(tdir, &l, eb, sizeof eb), GOV_OK);
    assert_int_equal(l.n, 4);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(l.seg[i].first, i * SEG + 1);
        assert_int_equal(l.seg[i].last, (i + 1) * SEG);
    }
    gov_archive_listing_clear(&l);
    assert_int_equal(l.other, 0);
    double segs = itest_proc_metric(&archiver, "archive_segments_total",
                                    (const char *[]){"tenant", tenant, NULL});
    assert_true(segs == 4);

    /* fastavro reads them and finds the chain from genesis */
    char venv[512];
    const char *inst[] = {"bash", itest_path("tests/archive/install.sh"), NULL};
    if (itest_run_capture(inst, NULL, venv, sizeof venv, err, sizeof err) != 0)
        fail_msg("tests/archive/install.sh: %s", err);
    venv[strcspn(venv, "\n")] = '\0';
    char py[600];
    snprintf(py, sizeof py, "%s/bin/python", venv);
    char script[600], schema[600];   /* itest_path answers in one static buffer */
    snprintf(script, sizeof script, "%s", itest_path("tests/archive/read_segments.py"));
    snprintf(schema, sizeof schema, "%s", itest_path("schemas/AuditChainEntry.avsc"));
    const char *readargv[] = {py, script, archive_dir, tenant, schema, NULL};
    if (itest_run_capture(readargv, NULL, out, sizeof out, err, sizeof err) != 0)
        fail_msg("fastavro: %s %s", out, err);
    if (strstr(out, "segments=4 records=20 first=1 last=20 start=" GOV_AUDIT_GENESIS) == NULL)
        fail_msg("fastavro read: %s", out);
    const char *hh[] = {"HGET", key_archive, "hash"};
    r = itest_redis_cmd(itest_redis(), 3, hh, NULL);
    char endwant[80];
    snprintf(endwant, sizeof endwant, "end=%s", r->str);
    freeReplyObject(r);
    assert_non_null(strstr(out, endwant));

    /* verify: the tail from its anchor; the whole chain with --archive */
    int rc = verify(NULL, out, sizeof out, err, sizeof err);
    if (rc != 0 || strstr(out, "entries=23") == NULL || strstr(out, "from=20 tail=3") == NULL)
        fail_msg("verify: %d %s %s", rc, out, err);
    rc = verify(archive_dir, out, sizeof out, err, sizeof err);
    if (rc != 0 || strstr(out, "entries=23") == NULL ||
        strstr(out, "archived=20 segments=4 tail=3") == NULL)
        fail_msg("verify --archive: %d %s %s", rc, out, err);

    /* damage, each on a copy of the archive */
    char root[700], cdir[800], a[900], b[900], c[900];
    copy_archive("deleted", root, sizeof root, cdir, sizeof cdir);
    seg_path(cdir, 6, 10, a, sizeof a);
    assert_int_equal(unlink(a), 0);
    expect_damage(root, "archive_segment_missing", "segment 6-10 deleted");

    copy_archive("deleted-last", root, sizeof root, cdir, sizeof cdir);
    seg_path(cdir, 16, 20, a, sizeof a);
    assert_int_equal(unlink(a), 0);
    expect_damage(root, "archive_segment_missing", "the last segment deleted");

    copy_archive("swapped", root, sizeof root, cdir, sizeof cdir);
    seg_path(cdir, 1, 5, a, sizeof a);
    seg_path(cdir, 6, 10, b, sizeof b);
    snprintf(c, sizeof c, "%s/swap", cdir);
    assert_int_equal(rename(a, c), 0);
    assert_int_equal(rename(b, a), 0);
    assert_int_equal(rename(c, b), 0);
    expect_damage(root, "archive_segment_reordered", "segments 1-5 and 6-10 swapped");

    copy_archive("altered", root, sizeof root, cdir, sizeof cdir);
    seg_path(cdir, 11, 15, a, sizeof a);
    size_t len = 0;
    char *bytes = itest_read_file(a, &len);
    char *at = memmem(bytes, len, "archive.test", 12);
    assert_non_null(at);
    at[11] = 'x';   /* one payload byte: the container still reads */
    itest_write_file(a, bytes, len);
    free(bytes);
    expect_damage(root, "archive_segment_altered", "a payload byte changed");

    /* the original still verifies: every refusal above was the damage's */
    rc = verify(archive_dir, out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("verify --archive after the copies: %d %s %s", rc, out, err);
}

/* kill -9 while segments are cut, three times; then no gap, no duplicate.
 * A backlog is built while the archiver is down, so after its restart it
 * is still cutting segments when it is killed (checked: the watermark is
 * short of the backlog's end at the kill). */
static void test_kill9(void **state) {
    (void)state;
    char out[4096], err[4096];
    long long target = hash_field(key_head, "seq");
    int mid_flight = 0;
    itest_stop(archiver.pid, SIGKILL, 5000);
    archiver.pid = -1;
    for (int round = 0; round < 3; round++) {
        produce(200);
        target += 200;
        wait_seq(key_head, target, 60000);
        long long mark = hash_field(key_archive, "seq");
        start_archiver();
        wait_seq(key_archive, mark + SEG, 30000);
        itest_stop(archiver.pid, SIGKILL, 5000);
        archiver.pid = -1;
        mid_flight += hash_field(key_archive, "seq") < target / SEG * SEG;
        check_trim();
        /* what a writer killed mid-file leaves behind */
        char tmp[800];
        snprintf(tmp, sizeof tmp, "%s/%s/.seg-killed.tmp", archive_dir, tenant);
        itest_write_file(tmp, "Obj\x01", 4);
    }
    if (mid_flight == 0)
        fail_msg("no kill landed while segments were being cut");
    start_archiver();
    wait_seq(key_head, target, 60000);
    long long want = target / SEG * SEG;
    wait_seq(key_archive, want, 60000);
    check_trim();
    int rc = verify(archive_dir, out, sizeof out, err, sizeof err);
    char expect[64];
    snprintf(expect, sizeof expect, "entries=%lld", target);
    if (rc != 0 || strstr(out, expect) == NULL)
        fail_msg("verify --archive after kill -9: %d %s %s", rc, out, err);
    snprintf(expect, sizeof expect, "archived=%lld", want);
    assert_non_null(strstr(out, expect));
    /* no temporary survived the restarts */
    char tdir[700];
    snprintf(tdir, sizeof tdir, "%s/%s", archive_dir, tenant);
    DIR *d = opendir(tdir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".tmp") != NULL)
            fail_msg("temporary %s left in %s", de->d_name, tdir);
    closedir(d);
    assert_int_equal(itest_proc_stop(&archiver), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_archive),
        cmocka_unit_test(test_kill9),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
