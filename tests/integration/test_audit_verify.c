/* test_audit_verify.c - `govctl audit verify` against damaged chains in a real Redis.
 *
 * A private redis-server holds the chains, so damage done here cannot reach
 * the stack's state and the stack's gov-audit cannot repair or extend what
 * a test damaged.  Each chain is written by the real writer
 * (gov_state_audit_append, gov-audit's materialization), then copied entry
 * by entry - same stream ids, same fields - into a fresh stream, with one
 * edit applied to one entry.  An unedited copy must verify, so every
 * refusal below is the edit's.  The edits are those the hash cannot see
 * when the verifier reads numbers leniently or stops at a NUL: "2x", "02"
 * and "+2" as seq read as 2, "<occurred_at>x" as occurred_at, an event_id
 * with a NUL inside hashes like its prefix (issue 9, point 9).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_state.h"
#include "gov_util.h"
#include "itest_util.h"

#define ENTRIES 3

static pid_t redis_pid = -1;
static int redis_port;
static char env_port[48];

static int setup(void **state) {
    (void)state;
    redis_pid = itest_private_redis("audit-verify", &redis_port);
    snprintf(env_port, sizeof env_port, "GOV_REDIS_PORT=%d", redis_port);
    putenv(env_port); /* itest_redis() and govctl use the private Redis */
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (redis_pid > 0)
        itest_stop(redis_pid, SIGTERM, 5000);
    return 0;
}

/* A chain of ENTRIES AuditEvents for tenant, written by gov-audit's writer. */
static void write_chain(const char *tenant) {
    char eb[256];
    gov_state_audit_t *w = gov_state_audit_new(itest_redis(), 60);
    assert_non_null(w);
    for (int i = 0; i < ENTRIES; i++) {
        json_t *e = itest_audit_event(tenant, "token.issued");
        char source[64];
        snprintf(source, sizeof source, "identity.audit/0/%d", i);
        gov_state_pos_t pos = {"gov-audit-itest-verify", "identity.audit", 0, i, tenant};
        if (gov_state_audit_append(w, e, "AuditEvent", source, &pos, NULL, NULL, eb, sizeof eb) != GOV_OK)
            fail_msg("append: %s", eb);
        json_decref(e);
    }
    gov_state_audit_free(w);
}

typedef enum { EDIT_NONE, EDIT_REPLACE, EDIT_APPEND, EDIT_ADD_FIELD, EDIT_REPEAT } edit_kind_t;

/* What to do to one field of the entry at position `entry` (0-based). */
typedef struct edit {
    const char *name;
    edit_kind_t kind;
    int entry;
    const char *field;
    const char *bytes; /* the new value, or what is appended */
    size_t len;
    const char *want_out; /* in stdout; NULL: the copy verifies */
} edit_t;

/* Replaces audit:{tenant} by a copy with ed applied. */
static void copy_chain_with(const char *tenant, const edit_t *ed) {
    char key[128], eb[256];
    snprintf(key, sizeof key, "audit:{%s}", tenant);
    redisReply *all = NULL, *r = NULL;
    const char *range[] = {"XRANGE", key, "-", "+"};
    assert_int_equal(gov_redis_command(itest_redis(), &all, 4, range, NULL, eb, sizeof eb), GOV_OK);
    assert_int_equal(all->type, REDIS_REPLY_ARRAY);
    assert_int_equal(all->elements, ENTRIES);
    const char *del[] = {"DEL", key};
    assert_int_equal(gov_redis_command(itest_redis(), &r, 2, del, NULL, eb, sizeof eb), GOV_OK);
    freeReplyObject(r);
    for (size_t i = 0; i < all->elements; i++) {
        const redisReply *ent = all->element[i], *f = ent->element[1];
        const char *argv[40];
        size_t lens[40], argc = 0;
        char edited[512];
        argv[argc] = "XADD", lens[argc++] = 4;
        argv[argc] = key, lens[argc++] = strlen(key);
        argv[argc] = ent->element[0]->str, lens[argc++] = ent->element[0]->len;
        int here = (int)i == ed->entry;
        for (size_t k = 0; k + 1 < f->elements && argc + 4 < 40; k += 2) {
            const redisReply *name = f->element[k], *val = f->element[k + 1];
            argv[argc] = name->str, lens[argc++] = name->len;
            int hit = here && strcmp(name->str, ed->field) == 0;
            if (hit && ed->kind == EDIT_REPLACE) {
                argv[argc] = ed->bytes, lens[argc++] = ed->len;
            } else if (hit && ed->kind == EDIT_APPEND) {
                assert_true(val->len + ed->len <= sizeof edited);
                memcpy(edited, val->str, val->len);
                memcpy(edited + val->len, ed->bytes, ed->len);
                argv[argc] = edited, lens[argc++] = val->len + ed->len;
            } else {
                argv[argc] = val->str, lens[argc++] = val->len;
            }
            if (hit && ed->kind == EDIT_REPEAT) { /* the same pair once more */
                argv[argc] = name->str, lens[argc++] = name->len;
                argv[argc] = val->str, lens[argc++] = val->len;
            }
        }
        if (here && ed->kind == EDIT_ADD_FIELD) {
            argv[argc] = ed->field, lens[argc++] = strlen(ed->field);
            argv[argc] = ed->bytes, lens[argc++] = ed->len;
        }
        if (gov_redis_command(itest_redis(), &r, (int)argc, argv, lens, eb, sizeof eb) != GOV_OK)
            fail_msg("XADD copy: %s", eb);
        freeReplyObject(r);
    }
    freeReplyObject(all);
}

static int verify(const char *tenant, char *out, size_t out_size, char *err, size_t err_size) {
    const char *args[] = {"audit", "verify", "--tenant", tenant, NULL};
    return itest_govctl(NULL, args, out, out_size, err, err_size);
}

static void expect_broken(const char *what, int rc, const char *out, const char *err,
                          const char *want_out, const char *want_code) {
    if (rc != 1 || strstr(out, "BROKEN") == NULL || strstr(out, want_out) == NULL ||
        strstr(err, want_code) == NULL)
        fail_msg("%s: exit %d\nstdout: %s\nstderr: %s\nwant exit 1, \"%s\", %s", what, rc, out,
                 err, want_out, want_code);
}

/* The byte-for-byte rule: each edit breaks the chain at its entry, and the
 * unedited copy verifies. */
static void test_fields_must_reserialize_byte_for_byte(void **state) {
    (void)state;
    static const edit_t edits[] = {
        {"unedited copy", EDIT_NONE, -1, "", "", 0, NULL},
        {"seq with trailing garbage", EDIT_REPLACE, 1, "seq", "2x", 2, "position=2"},
        {"seq with a leading zero", EDIT_REPLACE, 1, "seq", "02", 2, "position=2"},
        {"seq with a plus sign", EDIT_REPLACE, 1, "seq", "+2", 2, "position=2"},
        {"seq with a leading space", EDIT_REPLACE, 1, "seq", " 2", 2, "position=2"},
        {"occurred_at with trailing garbage", EDIT_APPEND, 2, "occurred_at", "x", 1,
         "position=3"},
        {"event_id with a NUL inside", EDIT_APPEND, 0, "event_id", "\0junk", 5, "position=1"},
        {"a field the hash does not cover", EDIT_ADD_FIELD, 1, "note", "hello", 5,
         "not covered by the hash"},
        {"a field twice", EDIT_REPEAT, 2, "type", "", 0, "appears twice"},
        {"payload changed", EDIT_APPEND, 1, "payload", " ", 1, "does not match its contents"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char tenant[64], out[2048] = "", err[2048] = "";
        itest_unique("av", tenant, sizeof tenant);
        write_chain(tenant);
        copy_chain_with(tenant, &edits[i]);
        int rc = verify(tenant, out, sizeof out, err, sizeof err);
        if (edits[i].want_out == NULL) {
            if (rc != 0 || strstr(out, "OK tenant=") == NULL || strstr(out, "entries=3") == NULL)
                fail_msg("%s: exit %d\nstdout: %s\nstderr: %s", edits[i].name, rc, out, err);
            continue;
        }
        expect_broken(edits[i].name, rc, out, err, edits[i].want_out, "chain_broken");
    }
}

/* The head is held to the same rule as the entries, and hashes are spelled
 * the one way gov-audit writes them. */
static void test_head_and_hash_spelling(void **state) {
    (void)state;
    char tenant[64], out[2048] = "", err[2048] = "", eb[256];
    itest_unique("avh", tenant, sizeof tenant);
    write_chain(tenant);
    redisReply *r = NULL;
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                        "HSET audit:{%s}:head seq 3x", tenant), GOV_OK);
    freeReplyObject(r);
    int rc = verify(tenant, out, sizeof out, err, sizeof err);
    expect_broken("head seq 3x", rc, out, err, "head does not match", "chain_truncated");

    /* an uppercase hash names the same digest, but is not what was written */
    itest_unique("avu", tenant, sizeof tenant);
    write_chain(tenant);
    assert_int_equal(gov_redis_commandf(itest_redis(), &r, eb, sizeof eb,
                                        "XRANGE audit:{%s} - + COUNT 1", tenant), GOV_OK);
    char upper[GOV_SHA256_HEXLEN + 1] = "";
    const redisReply *f = r->element[0]->element[1];
    for (size_t k = 0; k + 1 < f->elements; k += 2)
        if (strcmp(f->element[k]->str, "hash") == 0)
            snprintf(upper, sizeof upper, "%s", f->element[k + 1]->str);
    freeReplyObject(r);
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(strlen(upper), GOV_SHA256_HEXLEN);
    edit_t ed = {"hash in uppercase", EDIT_REPLACE, 0, "hash", upper, GOV_SHA256_HEXLEN, NULL};
    copy_chain_with(tenant, &ed);
    rc = verify(tenant, out, sizeof out, err, sizeof err);
    expect_broken("hash in uppercase", rc, out, err, "lowercase hex", "chain_broken");
}

/* A tenant in either index has a chain (accepting its constitution or pack
 * emitted an audit event): no stream and no head is a failure.  A tenant in
 * neither, with no chain, is only reported. */
static void test_missing_chain_of_a_known_tenant(void **state) {
    (void)state;
    char tenant[64], out[2048] = "", err[2048] = "", eb[256];
    gov_redis_t *r = itest_redis();

    itest_unique("avu", tenant, sizeof tenant);
    int rc = verify(tenant, out, sizeof out, err, sizeof err);
    if (rc != 0 || strstr(out, "entries=0") == NULL || strstr(out, "unknown tenant") == NULL)
        fail_msg("unknown tenant: exit %d\nstdout: %s\nstderr: %s", rc, out, err);

    /* known through the constitution index, never had a chain */
    itest_unique("avc", tenant, sizeof tenant);
    assert_int_equal(gov_state_constitution_index(r, tenant, eb, sizeof eb), GOV_OK);
    rc = verify(tenant, out, sizeof out, err, sizeof err);
    expect_broken("constitution tenant, no chain", rc, out, err, "no audit chain",
                  "chain_missing");

    /* known through the rule pack index: its chain verifies, then is deleted */
    itest_unique("avp", tenant, sizeof tenant);
    assert_int_equal(gov_state_rulepack_index(r, tenant, eb, sizeof eb), GOV_OK);
    write_chain(tenant);
    rc = verify(tenant, out, sizeof out, err, sizeof err);
    if (rc != 0 || strstr(out, "entries=3") == NULL)
        fail_msg("known tenant, intact chain: exit %d\nstdout: %s\nstderr: %s", rc, out, err);
    redisReply *rep = NULL;
    assert_int_equal(gov_redis_commandf(r, &rep, eb, sizeof eb, "DEL audit:{%s} audit:{%s}:head",
                                        tenant, tenant), GOV_OK);
    assert_int_equal(rep->integer, 2);
    freeReplyObject(rep);
    rc = verify(tenant, out, sizeof out, err, sizeof err);
    expect_broken("rule pack tenant, chain deleted", rc, out, err, "no audit chain",
                  "chain_missing");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_must_reserialize_byte_for_byte),
        cmocka_unit_test(test_head_and_hash_spelling),
        cmocka_unit_test(test_missing_chain_of_a_known_tenant),
    };
    return cmocka_run_group_tests_name("audit_verify", tests, setup, teardown);
}
