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
static itest_proc_t archiver, archiver_untrimmed;

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

static void produce_for(const char *t, int n) {
    for (int i = 0; i < n; i++) {
        json_t *e = itest_audit_event(t, "archive.test");
        itest_produce_event("identity.audit", "AuditEvent", e);
        json_decref(e);
    }
}

static void produce(int n) {
    produce_for(tenant, n);
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
    if (archiver_untrimmed.pid > 0)
        itest_proc_stop(&archiver_untrimmed);
    itest_workdir_remove(workdir);
    return 0;
}

static int verify_tenant(const char *t, const char *dir, char *out, size_t out_size, char *err,
                         size_t err_size) {
    const char *args[] = {"audit", "verify", "--tenant", t, dir ? "--archive" : NULL, dir, NULL};
    return itest_govctl(NULL, args, out, out_size, err, err_size);
}

static int verify(const char *dir, char *out, size_t out_size, char *err, size_t err_size) {
    return verify_tenant(tenant, dir, out, out_size, err, err_size);
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

/* audit:{t}'s entries (a new reply). */
static redisReply *stream_snapshot(const char *t) {
    char key[128];
    snprintf(key, sizeof key, "audit:{%s}", t);
    const char *xr[] = {"XRANGE", key, "-", "+"};
    redisReply *all = itest_redis_cmd(itest_redis(), 4, xr, NULL);
    assert_int_equal(all->type, REDIS_REPLY_ARRAY);
    return all;
}

/* Replaces audit:{t} by the entries of snap XADDed again with fresh ids,
 * the payload of seq edit_seq changed by one byte (0: none), then a copy of
 * the entry of seq copy_seq appended at the end (0: none).  Only the stream
 * ids change otherwise, and the verifier does not read them: an unedited
 * rebuild verifies. */
static void rebuild_stream(const char *t, const redisReply *snap, long long edit_seq,
                           long long copy_seq) {
    char key[128];
    snprintf(key, sizeof key, "audit:{%s}", t);
    const char *del[] = {"DEL", key};
    freeReplyObject(itest_redis_cmd(itest_redis(), 2, del, NULL));
    const redisReply *copy = NULL;
    for (size_t i = 0; i <= snap->elements; i++) {
        const redisReply *ent = i < snap->elements ? snap->element[i] : copy;
        if (ent == NULL)
            break;
        const redisReply *f = ent->element[1];
        const char *argv[3 + 32];
        size_t lens[3 + 32];
        char edited[65536];
        assert_true(f->elements <= 32);
        argv[0] = "XADD", argv[1] = key, argv[2] = "*";
        lens[0] = 4, lens[1] = strlen(key), lens[2] = 1;
        long long seq = 0;
        for (size_t j = 0; j + 1 < f->elements; j += 2)
            if (strcmp(f->element[j]->str, "seq") == 0)
                seq = atoll(f->element[j + 1]->str);
        for (size_t j = 0; j < f->elements; j++) {
            argv[3 + j] = f->element[j]->str;
            lens[3 + j] = f->element[j]->len;
            if (j % 2 == 1 && seq == edit_seq && strcmp(f->element[j - 1]->str, "payload") == 0) {
                assert_true(f->element[j]->len <= sizeof edited);
                memcpy(edited, f->element[j]->str, f->element[j]->len);
                char *at = memmem(edited, f->element[j]->len, "archive.test", 12);
                assert_non_null(at);
                at[11] = 'x';
                argv[3 + j] = edited;
            }
        }
        if (seq == copy_seq && i < snap->elements)
            copy = ent;
        redisReply *r = itest_redis_cmd(itest_redis(), 3 + (int)f->elements, argv, lens);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
    }
}

static void expect_verify(const char *t, int want_rc, const char *want_out, const char *what) {
    char out[4096], err[4096];
    int rc = verify_tenant(t, archive_dir, out, sizeof out, err, sizeof err);
    if (rc != want_rc || strstr(out, want_out) == NULL)
        fail_msg("%s: verify --archive answered %d, want %d with %s; stdout %s stderr %s", what,
                 rc, want_rc, want_out, out, err);
}

/* REVIEW12 M4: with trim=false the stream keeps archived entries; verify
 * --archive must compare them with the archive, not skip them, and must
 * not skip an old seq appended after the tail. */
static void test_untrimmed_overlap(void **state) {
    (void)state;
    char t[64], comp[128], envt[128], head[128], mark[128];
    itest_unique("archov", t, sizeof t);
    snprintf(comp, sizeof comp, "gov-archive-itest-%s", t);
    snprintf(envt, sizeof envt, "GOV_TENANTS=%s", t);
    snprintf(head, sizeof head, "audit:{%s}:head", t);
    snprintf(mark, sizeof mark, "audit:{%s}:archive", t);
    const char *env[] = {env_dir, envt, "GOV_SEGMENT_ENTRIES=5", "GOV_SEGMENT_AGE=1h",
                         "GOV_POLL_INTERVAL=20ms", "GOV_TRIM=false", NULL};
    itest_proc_start(&archiver_untrimmed, "gov-archive", comp, env, "archive-untrimmed");
    produce_for(t, 12);
    wait_seq(head, 12, 60000);
    wait_seq(mark, 10, 30000);
    assert_int_equal(itest_proc_stop(&archiver_untrimmed), 0);
    archiver_untrimmed.pid = -1;
    expect_verify(t, 0, "entries=12 ", "untrimmed");
    expect_verify(t, 0, "archived=10 segments=2 tail=2", "untrimmed");
    redisReply *snap = stream_snapshot(t);
    assert_int_equal(snap->elements, 12);   /* nothing was trimmed */

    /* the unedited rebuild verifies: every refusal below is the edit's */
    rebuild_stream(t, snap, 0, 0);
    expect_verify(t, 0, "archived=10 segments=2 tail=2", "an unedited rebuild");
    /* (a) seq 5's payload altered in Redis: archived, not trimmed */
    rebuild_stream(t, snap, 5, 0);
    expect_verify(t, 1, "BROKEN", "seq 5 altered in the untrimmed stream");
    /* (b) a copy of seq 3 appended after the tail */
    rebuild_stream(t, snap, 0, 3);
    expect_verify(t, 1, "BROKEN", "a copy of seq 3 after the tail");
    rebuild_stream(t, snap, 0, 0);
    expect_verify(t, 0, "entries=12 ", "the original restored");
    freeReplyObject(snap);
}

/* REVIEW12 M1: entries of 300-900 KiB against a 2 MiB segment budget.
 * Every segment file holds at most the budget plus one entry (the one that
 * crossed it), a restarted gov-archive reads its own last segment back (no
 * degraded tenant component) and verify --archive reads them all. */
#define BIG_EVENTS 36
#define BIG_BUDGET (2u * 1024 * 1024)
#define BIG_ENTRY_MAX (1024u * 1024)   /* 900 KiB of details and the rest */

static void test_large_entries(void **state) {
    (void)state;
    char t[64], comp[128], envt[128], head[128], mark[128], tdir[700], out[4096], err[4096];
    itest_unique("archbig", t, sizeof t);
    snprintf(comp, sizeof comp, "gov-archive-itest-%s", t);
    snprintf(envt, sizeof envt, "GOV_TENANTS=%s", t);
    snprintf(head, sizeof head, "audit:{%s}:head", t);
    snprintf(mark, sizeof mark, "audit:{%s}:archive", t);
    snprintf(tdir, sizeof tdir, "%s/%s", archive_dir, t);
    char budget[64];
    snprintf(budget, sizeof budget, "GOV_SEGMENT_MAX_BYTES=%u", BIG_BUDGET);
    const char *env[] = {env_dir, envt, budget, "GOV_SEGMENT_ENTRIES=1000", "GOV_SEGMENT_AGE=1s",
                         "GOV_POLL_INTERVAL=20ms", NULL};
    itest_proc_start(&archiver_untrimmed, "gov-archive", comp, env, "archive-big");
    size_t blob_max = 900 * 1024;
    char *details = malloc(blob_max + 32);
    assert_non_null(details);
    for (int i = 0; i < BIG_EVENTS; i++) {
        size_t n = (size_t)(300 + 300 * (i % 3)) * 1024;   /* 300, 600, 900 KiB */
        int off = snprintf(details, 32, "{\"blob\":\"");
        memset(details + off, 'a' + i % 26, n);
        snprintf(details + off + n, 8, "\"}");
        json_t *e = itest_audit_event(t, "archive.big");
        json_object_set_new(e, "details_json", json_string(details));
        itest_produce_event("identity.audit", "AuditEvent", e);
        json_decref(e);
    }
    free(details);
    wait_seq(head, BIG_EVENTS, 60000);
    wait_seq(mark, BIG_EVENTS, 30000);   /* the last, short segment by age */

    gov_archive_listing_t l;
    char eb[256];
    assert_int_equal(gov_archive_list(tdir, &l, eb, sizeof eb), GOV_OK);
    /* 36 entries of 600 KiB on average: about ten segments */
    if (l.n < BIG_EVENTS * 600 / 1024 / 2 / 2)
        fail_msg("only %zu segments for %d entries of 300-900 KiB", l.n, BIG_EVENTS);
    for (size_t i = 0; i < l.n; i++) {
        char path[800];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", tdir, l.seg[i].name);
        assert_int_equal(stat(path, &st), 0);
        if ((size_t)st.st_size > BIG_BUDGET + BIG_ENTRY_MAX)
            fail_msg("segment %s is %lld bytes, the budget %u plus one entry at most", path,
                     (long long)st.st_size, BIG_BUDGET);
    }
    gov_archive_listing_clear(&l);

    /* a restart reads its last segment back: the tenant is not degraded */
    assert_int_equal(itest_proc_stop(&archiver_untrimmed), 0);
    itest_proc_start(&archiver_untrimmed, "gov-archive", comp, env, "archive-big");
    char *body = NULL;
    long status = itest_proc_get(&archiver_untrimmed, "/readyz", &body);
    char component_name[96];
    snprintf(component_name, sizeof component_name, "tenant:%s", t);
    if (status != 200 || body == NULL || strstr(body, component_name) != NULL)
        fail_msg("readyz after the restart: %ld %s", status, body ? body : "");
    free(body);
    assert_int_equal(itest_proc_stop(&archiver_untrimmed), 0);
    archiver_untrimmed.pid = -1;
    int rc = verify_tenant(t, archive_dir, out, sizeof out, err, sizeof err);
    char want[64];
    snprintf(want, sizeof want, "entries=%d ", BIG_EVENTS);
    if (rc != 0 || strstr(out, want) == NULL)
        fail_msg("verify --archive of large entries: %d %s %s", rc, out, err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_archive),
        cmocka_unit_test(test_kill9),
        cmocka_unit_test(test_untrimmed_overlap),
        cmocka_unit_test(test_large_entries),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
