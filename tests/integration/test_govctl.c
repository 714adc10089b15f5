/* test_govctl.c - govctl checksum / keygen / sign / verify / publish, driven
 * the way an operator drives them: the real binary (itest_bin("govctl"),
 * so the suite's second pass runs the ASan + UBSan build), real files, real
 * Ed25519 keys made by `govctl keygen`, the real broker of the stack.
 *
 * What is checked is what an operator sees: exit codes (0 / 1 / 2), the
 * reason code on stderr, stdout, the files written (modes, bytes), and the
 * ConstitutionBundle that arrives on constitution.bundles (consumed and
 * decoded).  Expected values come from outside govctl wherever possible:
 * the RFC 8785 authors' output files, the checksums SomaBrain's own scheme
 * gave the bundles in tests/vectors/constitution/somabrain/ (gen.py,
 * CPython), OpenSSL directly for digests and keys, and an independent
 * Python client (check_govctl_python.py: json.dumps + hashlib +
 * cryptography) for what `govctl sign` produced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_bundle.h"
#include "gov_time.h"
#include "gov_util.h"
#include "itest_util.h"

static char work[PATH_MAX];     /* var/test-logs/govctl-<pid>-<rnd>, removed at the end */
static char keys[PATH_MAX + 16];    /* work/keys: alice, bob, carol, mallory from govctl keygen */
static char g_out[1 << 17];     /* stdout of the last run */
static char g_err[1 << 16];     /* stderr of the last run */

/* --- running govctl ---------------------------------------------------------- */

/* Runs argv with extra env; stdout into g_out, stderr into g_err.  A
 * sanitizer report fails the test whatever the exit code; ITEST_VERBOSE
 * echoes every run. */
static int run_argv(const char *const *argv, const char *const *env) {
    return itest_run_capture(argv, env, g_out, sizeof g_out, g_err, sizeof g_err);
}

#define GOVCTL(env, ...)                                                                         \
    itest_govctl((env), (const char *const[]){__VA_ARGS__, NULL}, g_out, sizeof g_out, g_err,    \
                 sizeof g_err)
#define NOENV ((const char *const *)NULL)

/* Exit 1 with "govctl: <code>: " on stderr. */
#define EXPECT_FAIL(rc, code) expect_fail((rc), (code), __LINE__)
static void expect_fail(int rc, const char *code, int line) {
    char want[128];
    snprintf(want, sizeof want, "govctl: %s: ", code);
    if (rc != 1 || strstr(g_err, want) == NULL)
        fail_msg("line %d: want exit 1 with \"%s\" on stderr; got exit %d, stderr:\n%s", line,
                 want, rc, g_err);
}

#define EXPECT_USAGE(rc) itest_expect_usage((rc), g_err, __LINE__)
#define EXPECT_OK(rc) itest_expect_ok((rc), g_err, __LINE__)

/* --- files ------------------------------------------------------------------- */

/* Paths handed out by wpath/keyfile stay valid until the group teardown. */
static char **g_paths;
static size_t g_npaths;

static const char *keep_path(const char *fmt, const char *a, const char *b) {
    char buf[2 * PATH_MAX];
    snprintf(buf, sizeof buf, fmt, a, b);
    char **np = realloc(g_paths, (g_npaths + 1) * sizeof *np);
    if (np == NULL || (np[g_npaths] = strdup(buf)) == NULL)
        fail_msg("out of memory");
    g_paths = np;
    return g_paths[g_npaths++];
}

static const char *wpath(const char *name) { return keep_path("%s/%s", work, name); }

static void write_str(const char *path, const char *s) { itest_write_file(path, s, strlen(s)); }

static void hex_digest(const EVP_MD *md, const void *buf, size_t len, char *hex) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    assert_int_equal(EVP_Digest(buf, len, d, &dl, md, NULL), 1);
    gov_hex_encode(d, dl, hex);
}

/* The raw "document" text of a bundle file (new memory, free). */
static char *document_text(const char *bundle_path, size_t *len) {
    size_t blen, off, dlen;
    char *body = itest_read_file(bundle_path, &blen), eb[200];
    if (gov_bundle_extract_document_span(body, blen, &off, &dlen, eb, sizeof eb) != GOV_OK)
        fail_msg("%s: %s", bundle_path, eb);
    char *doc = strndup(body + off, dlen);
    free(body);
    *len = dlen;
    return doc;
}

static json_t *load_json(const char *path) {
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        fail_msg("%s: %s", path, je.text);
    return j;
}

static const char *member(json_t *o, const char *name) {
    const char *s = json_string_value(json_object_get(o, name));
    if (s == NULL)
        fail_msg("member \"%s\" missing", name);
    return s;
}

/* A bundle file: tenant, the document's text as given, then `rest` (more
 * members, each starting with ",\n"; may be ""). */
static void write_bundle(const char *path, const char *tenant, const char *doc, const char *rest) {
    size_t n = strlen(tenant) + strlen(doc) + strlen(rest) + 64;
    char *b = malloc(n);
    snprintf(b, n, "{\n \"tenant\": \"%s\",\n \"document\": %s%s\n}\n", tenant, doc, rest);
    write_str(path, b);
    free(b);
}

static const char *keyfile(const char *signer, const char *ext) {
    char stem[PATH_MAX + 80];
    snprintf(stem, sizeof stem, "%s/%s", keys, signer);
    return keep_path("%s.%s", stem, ext);
}

static void sign_as(const char *bundle, const char *signer) {
    EXPECT_OK(GOVCTL(NOENV, "sign", "--signer", signer, "--key", keyfile(signer, "key"), bundle));
}

/* Trust file at path: tenant acme bound to the .pub files of the named
 * signers with this threshold, taking unbound documents (DOC_PLAIN names no
 * tenant, as SomaBrain's global constitution does). */
static void write_trust(const char *path, int threshold, const char *const *signers) {
    char *pems[8] = {NULL};
    size_t n = 0;
    for (; signers[n]; n++) {
        if (n == sizeof pems / sizeof pems[0])
            fail_msg("too many signers");
        pems[n] = itest_read_file(keyfile(signers[n], "pub"), NULL);
    }
    itest_write_trust_tenant_pems(path, "acme", threshold, 1, n, signers,
                                  (const char *const *)pems);
    for (size_t i = 0; i < n; i++)
        free(pems[i]);
}

/* --- setup ------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    if (itest_workdir_new("govctl", work, sizeof work) != 0)
        return -1;
    snprintf(keys, sizeof keys, "%s/keys", work);
    static const char *const signers[] = {"alice", "bob", "carol", "mallory"};
    for (size_t i = 0; i < 4; i++) {
        const char *argv[] = {itest_bin("govctl"), "keygen", "--signer", signers[i], "--out",
                              keys, NULL};
        int rc = run_argv(argv, NULL);
        if (rc != 0) {
            fprintf(stderr, "govctl keygen %s failed (%d): %s\n", signers[i], rc, g_err);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    itest_workdir_remove(work);
    for (size_t i = 0; i < g_npaths; i++)
        free(g_paths[i]);
    free(g_paths);
    return 0;
}

/* A document as SomaBrain writes them, with a governance section. */
static const char *DOC_PLAIN =
    "{\"version\": \"2.1.0\", \"title\": \"Ops constitution\",\n"
    "  \"rules\": {\"prohibited_actions\": [\"exfiltrate_data\"], \"permitted_tool_categories\": "
    "[\"search\"], \"max_risk_score\": 0.8, \"require_human_approval_above_risk\": 0.5},\n"
    "  \"governance\": {\"signature_threshold\": 2}}";

/* --- keygen ------------------------------------------------------------------ */

static void test_keygen(void **state) {
    (void)state;
    char dir[PATH_MAX + 16], want[3 * PATH_MAX];
    snprintf(dir, sizeof dir, "%s/kg", work); /* does not exist yet */
    EXPECT_OK(GOVCTL(NOENV, "keygen", "--signer", "ops.alice@corp:1", "--out", dir));
    char key[PATH_MAX + 64], pub[PATH_MAX + 64];
    snprintf(key, sizeof key, "%s/ops.alice@corp:1.key", dir);
    snprintf(pub, sizeof pub, "%s/ops.alice@corp:1.pub", dir);
    snprintf(want, sizeof want, "%s\n%s\n", key, pub);
    assert_string_equal(g_out, want);
    assert_null(strstr(g_out, "PRIVATE"));
    assert_null(strstr(g_err, "PRIVATE"));

    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(stat(key, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(pub, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);

    /* PKCS#8 PEM of an Ed25519 key whose public half is the .pub (SPKI). */
    size_t klen, plen;
    char *kpem = itest_read_file(key, &klen), *ppem = itest_read_file(pub, &plen);
    assert_true(strncmp(kpem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
    assert_true(strncmp(ppem, "-----BEGIN PUBLIC KEY-----\n", 27) == 0);
    BIO *bk = BIO_new_mem_buf(kpem, (int)klen), *bp = BIO_new_mem_buf(ppem, (int)plen);
    EVP_PKEY *kp = PEM_read_bio_PrivateKey(bk, NULL, NULL, NULL);
    EVP_PKEY *pp = PEM_read_bio_PUBKEY(bp, NULL, NULL, NULL);
    assert_non_null(kp);
    assert_non_null(pp);
    assert_int_equal(EVP_PKEY_id(kp), EVP_PKEY_ED25519);
    assert_int_equal(EVP_PKEY_id(pp), EVP_PKEY_ED25519);
    unsigned char a[32], b[32];
    size_t al = sizeof a, bl = sizeof b;
    assert_int_equal(EVP_PKEY_get_raw_public_key(kp, a, &al), 1);
    assert_int_equal(EVP_PKEY_get_raw_public_key(pp, b, &bl), 1);
    assert_int_equal(al, 32);
    assert_memory_equal(a, b, 32);
    EVP_PKEY_free(kp);
    EVP_PKEY_free(pp);
    BIO_free(bk);
    BIO_free(bp);

    /* Never overwritten: same bytes after a second keygen, which fails. */
    EXPECT_FAIL(GOVCTL(NOENV, "keygen", "--signer", "ops.alice@corp:1", "--out", dir), "key_exists");
    assert_string_equal(g_out, "");
    char *k2 = itest_read_file(key, NULL), *p2 = itest_read_file(pub, NULL);
    assert_string_equal(k2, kpem);
    assert_string_equal(p2, ppem);
    free(k2);
    free(p2);

    /* A leftover .pub without its .key: refused, and no orphan .key left. */
    assert_int_equal(unlink(key), 0);
    EXPECT_FAIL(GOVCTL(NOENV, "keygen", "--signer", "ops.alice@corp:1", "--out", dir), "key_exists");
    assert_int_not_equal(access(key, F_OK), 0);
    free(kpem);
    free(ppem);

    /* The signer id syntax of gov_constitution; a "/" never reaches a path. */
    EXPECT_USAGE(GOVCTL(NOENV, "keygen", "--signer", "../evil", "--out", dir));
    EXPECT_USAGE(GOVCTL(NOENV, "keygen", "--signer", "", "--out", dir));
    EXPECT_USAGE(GOVCTL(NOENV, "keygen", "--signer",
                        "a123456789b123456789c123456789d123456789e123456789f123456789g1234",
                        "--out", dir));
    /* An unwritable place is an I/O failure, not a crash. */
    EXPECT_FAIL(GOVCTL(NOENV, "keygen", "--signer", "x", "--out", "/proc/govctl-no"), "io_error");
}

/* --- checksum ---------------------------------------------------------------- */

static void test_checksum_jcs_vectors(void **state) {
    (void)state;
    static const char *const names[] = {"arrays", "french", "structures", "unicode", "values",
                                        "weird"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char in[PATH_MAX], outp[PATH_MAX], h256[129], h3[129], want[140];
        snprintf(in, sizeof in, "%s", itest_path("tests/vectors/canon/jcs/input/"));
        strncat(in, names[i], sizeof in - strlen(in) - 8);
        strcat(in, ".json");
        snprintf(outp, sizeof outp, "%s", itest_path("tests/vectors/canon/jcs/output/"));
        strncat(outp, names[i], sizeof outp - strlen(outp) - 8);
        strcat(outp, ".json");
        size_t olen;
        char *expected = itest_read_file(outp, &olen);
        hex_digest(EVP_sha256(), expected, olen, h256);
        hex_digest(EVP_sha3_512(), expected, olen, h3);

        EXPECT_OK(GOVCTL(NOENV, "checksum", "--canonicalization", "jcs", "--hash-alg", "sha256", in));
        snprintf(want, sizeof want, "%s\n", h256);
        if (strcmp(g_out, want) != 0)
            fail_msg("%s: jcs sha256 %s, want %s", names[i], g_out, want);
        EXPECT_OK(GOVCTL(NOENV, "checksum", "--hash-alg", "sha3-512", "--canonicalization", "jcs", in));
        snprintf(want, sizeof want, "%s\n", h3);
        if (strcmp(g_out, want) != 0)
            fail_msg("%s: jcs sha3-512 %s, want %s", names[i], g_out, want);
        EXPECT_OK(GOVCTL(NOENV, "checksum", "--canonicalization", "jcs", "--print-canonical", in));
        if (strlen(g_out) != olen || memcmp(g_out, expected, olen) != 0)
            fail_msg("%s: --print-canonical gave\n%s\nwant\n%s", names[i], g_out, expected);
        free(expected);
    }
}

static void test_checksum_somabrain_vectors(void **state) {
    (void)state;
    static const char *const names[] = {"bundle-plain-sha256", "bundle-plain-sha3-512",
                                        "bundle-unicode-floats-sha256",
                                        "bundle-unicode-floats-sha3-512"};
    const char *trust = itest_path("tests/vectors/constitution/somabrain/trust.json");
    char trust_copy[PATH_MAX];
    snprintf(trust_copy, sizeof trust_copy, "%s", trust);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char bpath[PATH_MAX], want[140];
        snprintf(bpath, sizeof bpath, "%s/%s.json",
                 itest_path("tests/vectors/constitution/somabrain"), names[i]);
        json_t *b = load_json(bpath);
        const char *alg = member(b, "hash_alg"), *stated = member(b, "checksum");
        assert_string_equal(member(b, "canonicalization"), "somabrain-json");
        size_t dlen;
        char *doc = document_text(bpath, &dlen);
        const char *docpath = wpath("somabrain-doc.json");
        itest_write_file(docpath, doc, dlen);
        snprintf(want, sizeof want, "%s\n", stated);

        EXPECT_OK(GOVCTL(NOENV, "checksum", "--hash-alg", alg, docpath));
        if (strcmp(g_out, want) != 0)
            fail_msg("%s: %s, SomaBrain stated %s", names[i], g_out, stated);
        if (strcmp(alg, "sha3-512") == 0) { /* the defaults are SomaBrain's scheme */
            EXPECT_OK(GOVCTL(NOENV, "checksum", docpath));
            assert_string_equal(g_out, want);
        }
        /* "-" reads the document from stdin */
        const char *argv[] = {"/bin/sh", "-c", "exec \"$0\" checksum --hash-alg \"$2\" - < \"$1\"",
                              itest_bin("govctl"), docpath, alg, NULL};
        EXPECT_OK(run_argv(argv, NULL));
        assert_string_equal(g_out, want);

        /* and SomaBrain's own signatures (hex and base64) verify offline */
        EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", trust_copy, bpath));
        char ok[300];
        snprintf(ok, sizeof ok, "OK version=%s checksum=%s signers=human_operator,somabrain_root "
                 "required=2\n", strstr(names[i], "unicode") ? "7" : "1.0.0", stated);
        assert_string_equal(g_out, ok);
        free(doc);
        json_decref(b);
    }
}

static void test_checksum_errors(void **state) {
    (void)state;
    static const struct { const char *text, *code; } cases[] = {
        {"{\"a\": 1, \"a\": 2}", "duplicate_key"},
        {"[1, 2,]", "syntax"},
        {"{\"a\": 1} x", "trailing_garbage"},
        {"{\"a\": \"\xc3\x28\"}", "invalid_utf8"},
        {"[123456789012345678901234567890]", "number_out_of_range"},
        {"", "syntax"},
    };
    const char *p = wpath("bad.json");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_str(p, cases[i].text);
        EXPECT_FAIL(GOVCTL(NOENV, "checksum", p), cases[i].code);
        assert_string_equal(g_out, "");
    }
    char deep[200] = "";
    for (int i = 0; i < 65; i++)
        strcat(deep, "[");
    for (int i = 0; i < 65; i++)
        strcat(deep, "]");
    write_str(p, deep);
    EXPECT_FAIL(GOVCTL(NOENV, "checksum", p), "too_deep");
    EXPECT_FAIL(GOVCTL(NOENV, "checksum", wpath("no-such-file.json")), "io_error");
    EXPECT_FAIL(GOVCTL(NOENV, "checksum", work), "io_error"); /* a directory */
    /* any JSON value is a document for checksum: a bare string */
    write_str(p, "\"caf\\u00e9\"");
    EXPECT_OK(GOVCTL(NOENV, "checksum", "--print-canonical", p));
    assert_string_equal(g_out, "\"caf\\u00e9\"");
    EXPECT_OK(GOVCTL(NOENV, "checksum", "--canonicalization", "jcs", "--print-canonical", p));
    assert_string_equal(g_out, "\"caf\xc3\xa9\"");
}

/* --- sign + verify ------------------------------------------------------------ */

static void test_sign_verify_roundtrip(void **state) {
    (void)state;
    const char *bundle = wpath("roundtrip.json"), *trust = wpath("trust-ab.json");
    write_trust(trust, 2, (const char *const[]){"alice", "bob", NULL});
    /* unsigned, no checksum, no algorithms: the defaults are SomaBrain's */
    write_bundle(bundle, "acme", DOC_PLAIN, "");

    sign_as(bundle, "alice");
    json_t *b = load_json(bundle);
    char cs[129];
    snprintf(cs, sizeof cs, "%s", member(b, "checksum"));
    assert_string_equal(member(b, "canonicalization"), "somabrain-json");
    assert_string_equal(member(b, "hash_alg"), "sha3-512");
    assert_int_equal(json_array_size(json_object_get(b, "signatures")), 1);
    json_decref(b);
    char want[400];
    snprintf(want, sizeof want, "signed %s signer=alice checksum=%s signatures=1\n", bundle, cs);
    assert_string_equal(g_out, want);
    /* the checksum is that of the document, as `govctl checksum` computes it */
    size_t dlen;
    char *doc = document_text(bundle, &dlen);
    itest_write_file(wpath("roundtrip-doc.json"), doc, dlen);
    free(doc);
    EXPECT_OK(GOVCTL(NOENV, "checksum", wpath("roundtrip-doc.json")));
    snprintf(want, sizeof want, "%s\n", cs);
    assert_string_equal(g_out, want);

    /* one signer short */
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust, bundle), "threshold_not_met");
    assert_string_equal(g_out, "");

    sign_as(bundle, "bob");
    EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", trust, bundle));
    snprintf(want, sizeof want, "OK version=2.1.0 checksum=%s signers=alice,bob required=2\n", cs);
    assert_string_equal(g_out, want);

    /* signing again replaces alice's entry in place, never duplicates it */
    char *before = itest_read_file(bundle, NULL);
    sign_as(bundle, "alice");
    b = load_json(bundle);
    json_t *sigs = json_object_get(b, "signatures");
    assert_int_equal(json_array_size(sigs), 2);
    assert_string_equal(member(json_array_get(sigs, 0), "signer_id"), "alice");
    assert_string_equal(member(json_array_get(sigs, 0), "algorithm"), "ed25519");
    assert_string_equal(member(json_array_get(sigs, 1), "signer_id"), "bob");
    json_decref(b);
    char *after = itest_read_file(bundle, NULL);
    assert_string_equal(after, before); /* Ed25519 is deterministic: same bytes */
    free(before);
    free(after);
    EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", trust, bundle));

    /* against a tenant's current state */
    EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", trust, "--current-version", "2.0.9",
                     "--current-checksum", "00ff", bundle));
    assert_true(strncmp(g_out, "OK version=2.1.0 ", 17) == 0);
    EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", trust, "--current-version", "2.1.0",
                     "--current-checksum", cs, bundle));
    snprintf(want, sizeof want, "DUPLICATE version=2.1.0 checksum=%s signers=alice,bob required=2\n",
             cs);
    assert_string_equal(g_out, want);
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust, "--current-version", "2.1.0",
                       "--current-checksum", "00ff", bundle), "equivocation");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust, "--current-version", "10",
                       "--current-checksum", "00ff", bundle), "version_rollback");

    /* --out leaves the input alone and writes a new file */
    const char *fresh = wpath("roundtrip-unsigned.json"), *outp = wpath("roundtrip-out.json");
    write_bundle(fresh, "acme", DOC_PLAIN, "");
    char *orig = itest_read_file(fresh, NULL);
    EXPECT_OK(GOVCTL(NOENV, "sign", "--signer", "carol", "--key", keyfile("carol", "key"),
                     "--out", outp, fresh));
    char *unchanged = itest_read_file(fresh, NULL);
    assert_string_equal(unchanged, orig);
    free(unchanged);
    free(orig);
    b = load_json(outp);
    assert_string_equal(member(b, "checksum"), cs);
    assert_string_equal(member(json_array_get(json_object_get(b, "signatures"), 0), "signer_id"),
                        "carol");
    json_decref(b);
}

static void test_sign_jcs_sha256(void **state) {
    (void)state;
    const char *bundle = wpath("jcs.json"), *trust = wpath("trust-ab.json");
    write_trust(trust, 2, (const char *const[]){"alice", "bob", NULL});
    write_bundle(bundle, "acme", DOC_PLAIN,
                 ",\n \"canonicalization\": \"jcs\",\n \"hash_alg\": \"sha256\"");
    sign_as(bundle, "alice");
    sign_as(bundle, "bob");
    json_t *b = load_json(bundle);
    size_t dlen;
    char *doc = document_text(bundle, &dlen);
    itest_write_file(wpath("jcs-doc.json"), doc, dlen);
    free(doc);
    EXPECT_OK(GOVCTL(NOENV, "checksum", "--canonicalization", "jcs", "--hash-alg", "sha256",
                     wpath("jcs-doc.json")));
    char want[200];
    snprintf(want, sizeof want, "%s\n", member(b, "checksum"));
    assert_string_equal(g_out, want);
    assert_int_equal(strlen(member(b, "checksum")), 64);
    EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", trust, bundle));
    json_decref(b);
}

/* Writes a variant of a signed bundle's text and runs verify on it. */
static int verify_text(const char *trust, const char *text) {
    const char *p = wpath("variant.json");
    write_str(p, text);
    return GOVCTL(NOENV, "verify", "--trust", trust, p);
}

static void test_verify_matrix(void **state) {
    (void)state;
    const char *trust = wpath("trust-ab.json"), *trust3 = wpath("trust-abc.json");
    write_trust(trust, 2, (const char *const[]){"alice", "bob", NULL});
    write_trust(trust3, 2, (const char *const[]){"alice", "bob", "carol", NULL});
    const char *good = wpath("matrix-good.json");
    write_bundle(good, "acme", DOC_PLAIN, "");
    sign_as(good, "alice");
    sign_as(good, "bob");
    EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", trust, good));
    char *text = itest_read_file(good, NULL);
    json_t *b = load_json(good);
    char cs[129];
    snprintf(cs, sizeof cs, "%s", member(b, "checksum"));
    const char *sig_a = member(json_array_get(json_object_get(b, "signatures"), 0), "signature");

    /* tampered document */
    char *t = itest_replace_once(text, "\"max_risk_score\": 0.8", "\"max_risk_score\": 0.9");
    EXPECT_FAIL(verify_text(trust, t), "checksum_mismatch");
    /* tampered document with its checksum recomputed: the signatures are over the old one */
    size_t dlen;
    write_str(wpath("t.json"), t);
    char *tdoc = document_text(wpath("t.json"), &dlen);
    itest_write_file(wpath("t-doc.json"), tdoc, dlen);
    free(tdoc);
    EXPECT_OK(GOVCTL(NOENV, "checksum", wpath("t-doc.json")));
    g_out[strcspn(g_out, "\n")] = 0;
    char *t2 = itest_replace_once(t, cs, g_out);
    EXPECT_FAIL(verify_text(trust, t2), "invalid_signature");
    free(t2);
    free(t);

    /* tampered checksum (well-formed, one digit changed) */
    char cs2[129];
    snprintf(cs2, sizeof cs2, "%s", cs);
    cs2[10] = cs2[10] == '0' ? '1' : '0';
    t = itest_replace_once(text, cs, cs2);
    EXPECT_FAIL(verify_text(trust, t), "checksum_mismatch");
    free(t);

    /* tampered signature */
    char sig2[129];
    snprintf(sig2, sizeof sig2, "%s", sig_a);
    sig2[20] = sig2[20] == 'a' ? 'b' : 'a';
    t = itest_replace_once(text, sig_a, sig2);
    EXPECT_FAIL(verify_text(trust, t), "invalid_signature");
    free(t);

    /* unknown hash algorithm */
    t = itest_replace_once(text, "\"hash_alg\": \"sha3-512\"", "\"hash_alg\": \"md5\"");
    EXPECT_FAIL(verify_text(trust, t), "unknown_hash_algorithm");
    free(t);
    t = itest_replace_once(text, "\"canonicalization\": \"somabrain-json\"",
                     "\"canonicalization\": \"c14n\"");
    EXPECT_FAIL(verify_text(trust, t), "unknown_canonicalization");
    free(t);
    json_decref(b);
    free(text);

    /* untrusted signer: mallory's valid signature does not count */
    const char *p = wpath("matrix-mallory.json");
    write_bundle(p, "acme", DOC_PLAIN, "");
    sign_as(p, "alice");
    sign_as(p, "mallory");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust, p), "untrusted_signer");

    /* one signer short */
    p = wpath("matrix-short.json");
    write_bundle(p, "acme", DOC_PLAIN, "");
    sign_as(p, "bob");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust, p), "threshold_not_met");

    /* signer outside governance.valid_signers: bob is trusted but not listed */
    p = wpath("matrix-valid-signers.json");
    write_bundle(p, "acme",
                 "{\"version\": 3, \"governance\": {\"signature_threshold\": 2, "
                 "\"valid_signers\": [\"alice\", \"carol\"]}}", "");
    sign_as(p, "alice");
    sign_as(p, "bob");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust3, p), "signer_not_permitted");
    sign_as(p, "carol");
    EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", trust3, p));
    assert_true(strstr(g_out, " signers=alice,carol required=2\n") != NULL);

    /* the document names another tenant */
    p = wpath("matrix-tenant.json");
    write_bundle(p, "acme", "{\"version\": 1, \"tenant\": \"globex\"}", "");
    sign_as(p, "alice");
    sign_as(p, "bob");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust, p), "tenant_mismatch");
    /* --tenant says which tenant to verify for: this one is globex's */
    const char *legacy = wpath("trust-legacy.json");
    char *pa = itest_read_file(keyfile("alice", "pub"), NULL),
         *pb = itest_read_file(keyfile("bob", "pub"), NULL);
    itest_write_trust_pems(legacy, 2, 2, (const char *const[]){"alice", "bob"},
                           (const char *const[]){pa, pb});
    EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", legacy, "--tenant", "globex", p));
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", legacy, "--tenant", "acme", p), "tenant_mismatch");
    EXPECT_USAGE(GOVCTL(NOENV, "verify", "--trust", legacy, "--tenant", "a/b", p));
    /* acme's bundle verified for a tenant the trust does not cover */
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust, "--tenant", "globex", good),
                "tenant_not_trusted");
    /* a document naming no tenant: the older trust format takes none */
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", legacy, good), "unbound_document");
    /* one key under two ids is refused at load, naming both */
    itest_write_trust_pems(wpath("trust-twice.json"), 2, 2, (const char *const[]){"alice", "alice2"},
                           (const char *const[]){pa, pa});
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", wpath("trust-twice.json"), good), "trust_invalid");
    assert_non_null(strstr(g_err, "\"alice\""));
    assert_non_null(strstr(g_err, "\"alice2\""));
    free(pa);
    free(pb);

    /* continuity: the in-force document requires 3 signatures; a successor
     * that drops its governance section still needs them */
    write_str(wpath("in-force-doc.json"),
              "{\"version\": \"2.1.0\", \"governance\": {\"signature_threshold\": 3}}");
    p = wpath("matrix-successor.json");
    write_bundle(p, "acme", "{\"version\": \"3.0.0\"}", "");
    sign_as(p, "alice");
    sign_as(p, "bob");
    EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", trust3, "--current-version", "2.1.0",
                     "--current-checksum", cs, p));
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust3, "--current-version", "2.1.0",
                       "--current-checksum", cs, "--current-document", wpath("in-force-doc.json"), p),
                "threshold_not_met");
    sign_as(p, "carol");
    EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", trust3, "--current-version", "2.1.0",
                     "--current-checksum", cs, "--current-document", wpath("in-force-doc.json"), p));
    assert_true(strstr(g_out, " required=3\n") != NULL);
    EXPECT_USAGE(GOVCTL(NOENV, "verify", "--trust", trust3, "--current-document",
                        wpath("in-force-doc.json"), p));

    /* a typo in the rules */
    p = wpath("matrix-rules.json");
    write_bundle(p, "acme", "{\"version\": 4, \"rules\": {\"prohibited_action\": [\"x\"]}}", "");
    sign_as(p, "alice");
    sign_as(p, "bob");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust, p), "invalid_rules");
    assert_non_null(strstr(g_err, "prohibited_action"));

    /* bad inputs */
    write_str(wpath("trust-bad.json"), "{\"threshold\": 3, \"signers\": {}}");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", wpath("trust-bad.json"), good), "trust_invalid");
    write_str(wpath("trust-bad.json"), "{\"threshold\": 1, \"signers\": {\"alice\": \"not a key\"}}");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", wpath("trust-bad.json"), good), "trust_invalid");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", wpath("no-such-trust.json"), good), "io_error");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust, wpath("no-such-bundle.json")), "io_error");
    write_str(wpath("notjson.json"), "{\"tenant\": ");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust, wpath("notjson.json")), "invalid_json");
    write_str(wpath("notbundle.json"), "[1, 2]");
    EXPECT_FAIL(GOVCTL(NOENV, "verify", "--trust", trust, wpath("notbundle.json")), "invalid_bundle");
}

/* No temporary file of govctl is left in the work directory. */
static void assert_no_temp_files(void) {
    DIR *d = opendir(work);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".govctl-"))
            fail_msg("temporary file left behind: %s", e->d_name);
    closedir(d);
}

static void write_pem_key(const char *path, EVP_PKEY *k, const EVP_CIPHER *enc, const char *pass) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, enc, (unsigned char *)pass,
                                          pass ? (int)strlen(pass) : 0, NULL, NULL), 1);
    fclose(f);
}

static void test_sign_refusals(void **state) {
    (void)state;
    const char *p = wpath("refuse.json");
    /* a stated checksum that is not the document's: the checksum of another document */
    const char *other = wpath("other-doc.json");
    write_str(other, "{\"version\": \"9.9.9\"}");
    EXPECT_OK(GOVCTL(NOENV, "checksum", other));
    g_out[strcspn(g_out, "\n")] = 0;
    char rest[400];
    snprintf(rest, sizeof rest, ",\n \"canonicalization\": \"somabrain-json\", \"hash_alg\": "
             "\"sha3-512\",\n \"checksum\": \"%.128s\",\n \"signatures\": []", g_out);
    write_bundle(p, "acme", DOC_PLAIN, rest);
    char *before = itest_read_file(p, NULL);
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "key"), p),
                "checksum_mismatch");
    assert_string_equal(g_out, "");
    char *after = itest_read_file(p, NULL);
    assert_string_equal(after, before);
    free(after);
    free(before);
    assert_no_temp_files();

    /* the right checksum in upper case is malformed, not silently fixed */
    write_bundle(p, "acme", DOC_PLAIN, "");
    sign_as(p, "alice");
    json_t *b = load_json(p);
    char upper[129];
    snprintf(upper, sizeof upper, "%s", member(b, "checksum"));
    for (char *c = upper; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    char *text = itest_read_file(p, NULL);
    char *t = itest_replace_once(text, member(b, "checksum"), upper);
    write_str(p, t);
    free(t);
    free(text);
    json_decref(b);
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "bob", "--key", keyfile("bob", "key"), p),
                "malformed_checksum");

    /* keys that are not Ed25519 private keys */
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    assert_non_null(ec);
    write_pem_key(wpath("p256.pem"), ec, NULL, NULL);
    EVP_PKEY_free(ec);
    write_bundle(p, "acme", DOC_PLAIN, "");
    before = itest_read_file(p, NULL);
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", wpath("p256.pem"), p),
                "key_invalid");
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "pub"), p),
                "key_invalid");
    /* an encrypted key is refused without prompting for a passphrase */
    EVP_PKEY *ed = itest_ed25519_new();
    write_pem_key(wpath("enc.pem"), ed, EVP_aes_256_cbc(), "secret-passphrase");
    EVP_PKEY_free(ed);
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", wpath("enc.pem"), p),
                "key_invalid");
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", wpath("no-such.key"), p),
                "io_error");
    assert_null(strstr(g_err, "PRIVATE"));
    after = itest_read_file(p, NULL);
    assert_string_equal(after, before);
    free(after);
    free(before);

    /* what is not a bundle, or names an algorithm we do not have */
    write_str(p, "{\"document\": {\"version\": 1}}");
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "key"), p),
                "invalid_bundle");
    write_str(p, "{\"tenant\": \"acme\"}");
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "key"), p),
                "invalid_bundle");
    write_str(p, "{\"tenant\": \"acme\", \"document\": [1]}");
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "key"), p),
                "malformed_document");
    write_str(p, "{\"tenant\": \"acme\", \"document\": {\"a\": 1, \"a\": 2}}");
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "key"), p),
                "invalid_json");
    write_str(p, "{\"tenant\": \"acme\", \"document\": {}, \"hash_alg\": \"md5\"}");
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "key"), p),
                "unknown_hash_algorithm");
    write_str(p, "{\"tenant\": \"acme\", \"document\": {}, \"canonicalization\": \"c14n\"}");
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "key"), p),
                "unknown_canonicalization");
    write_str(p, "not json");
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "key"), p),
                "invalid_json");
    /* error details quote the file; terminal control bytes never reach stderr */
    write_str(p, "{\"tenant\": \"acme\", \"document\": {}, \"canonicalization\": "
                 "\"\\u001b]0;owned\\u0007\\u001b[2J\\u009b1m\\u007f\"}");
    EXPECT_FAIL(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "key"), p),
                "unknown_canonicalization");
    assert_non_null(strstr(g_err, "owned"));
    for (const char *c = g_err; *c; c++)
        if ((unsigned char)*c < 0x20 ? *c != '\n' : (unsigned char)*c == 0x7f || (unsigned char)*c >= 0x80)
            fail_msg("control or non-ASCII byte 0x%02x on stderr: %s", (unsigned char)*c, g_err);
    assert_no_temp_files();
}

/* The exact text of a document SomaBrain might send: number spellings that
 * any re-serialization would change, escapes, key order as written, odd
 * whitespace. */
static const char *DOC_RAW =
    "{\n    \"zeta\": 1e-7,  \"alpha\" : 0.10,\n"
    "\t\"name\": \"caf\\u00e9 \\ud83e\\udd16 \\/ \\u0041\",\n"
    "  \"version\":\"1.2.3\", \"n\": [1E+2, -0.0, 100, 2.50, 1.0e0],\n"
    "  \"b\": {\"y\": true, \"x\": null}  }";

static void test_sign_preserves_document(void **state) {
    (void)state;
    const char *p = wpath("preserve.json"), *trust = wpath("trust-ab.json");
    write_trust(trust, 2, (const char *const[]){"alice", "bob", NULL});
    write_bundle(p, "acme", DOC_RAW, ",\n \"note\": {\"kept\": [1.5, \"\\u00e9\"]}");
    sign_as(p, "alice");
    sign_as(p, "bob");
    size_t dlen;
    char *doc = document_text(p, &dlen);
    assert_int_equal(dlen, strlen(DOC_RAW));
    assert_memory_equal(doc, DOC_RAW, dlen);
    free(doc);
    json_t *b = load_json(p);
    json_t *note = json_pack("{s:[f, s]}", "kept", 1.5, "\xc3\xa9");
    assert_true(json_equal(json_object_get(b, "note"), note));
    json_decref(note);
    json_decref(b);
    EXPECT_OK(GOVCTL(NOENV, "verify", "--trust", trust, p));
    assert_true(strncmp(g_out, "OK version=1.2.3 ", 17) == 0);
    /* the file keeps its mode across the atomic rewrite */
    assert_int_equal(chmod(p, 0640), 0);
    sign_as(p, "carol");
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    doc = document_text(p, &dlen);
    assert_memory_equal(doc, DOC_RAW, strlen(DOC_RAW));
    free(doc);
    assert_no_temp_files();
}

/* --- the independent check (Python) ----------------------------------------- */

/* Debian's interpreter, with python3-cryptography from deploy/install-deps.sh,
 * when it is there; else whatever python3 the PATH gives. */
static const char *python3(void) {
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static void test_python_independent_check(void **state) {
    (void)state;
    const char *probe[] = {python3(), "-c", "import cryptography", NULL};
    if (run_argv(probe, NULL) != 0)
        fail_msg("the independent check needs python3 with the 'cryptography' package, which "
                 "is missing (Debian: apt-get install python3 python3-cryptography; "
                 "deploy/install-deps.sh should install them): %s", g_err);
    const char *script = itest_path("tests/integration/check_govctl_python.py");
    char script_copy[PATH_MAX];
    snprintf(script_copy, sizeof script_copy, "%s", script);
    const char *p = wpath("python.json");
    write_bundle(p, "acme", DOC_RAW, "");
    sign_as(p, "alice");
    sign_as(p, "bob");
    const char *ok_a[] = {python3(), script_copy, keyfile("alice", "pub"), p, NULL};
    EXPECT_OK(run_argv(ok_a, NULL));
    assert_true(strncmp(g_out, "OK signer=alice sha3-512=", 25) == 0);
    const char *ok_b[] = {python3(), script_copy, keyfile("bob", "pub"), p, NULL};
    EXPECT_OK(run_argv(ok_b, NULL));

    /* sha256 too */
    const char *p2 = wpath("python-sha256.json");
    write_bundle(p2, "acme", DOC_PLAIN, ",\n \"hash_alg\": \"sha256\"");
    sign_as(p2, "carol");
    const char *ok_c[] = {python3(), script_copy, keyfile("carol", "pub"), p2, NULL};
    EXPECT_OK(run_argv(ok_c, NULL));
    assert_true(strncmp(g_out, "OK signer=carol sha256=", 23) == 0);

    /* and it can fail: the wrong key, a tampered document */
    const char *wrong[] = {python3(), script_copy, keyfile("bob", "pub"), p, "alice", NULL};
    assert_int_equal(run_argv(wrong, NULL), 1);
    char *text = itest_read_file(p, NULL);
    char *t = itest_replace_once(text, "\"alpha\" : 0.10", "\"alpha\" : 0.11");
    write_str(wpath("python-tampered.json"), t);
    free(t);
    free(text);
    const char *tampered[] = {python3(), script_copy, keyfile("alice", "pub"),
                              wpath("python-tampered.json"), NULL};
    assert_int_equal(run_argv(tampered, NULL), 1);
    assert_non_null(strstr(g_err, "checksum mismatch"));
}

/* --- usage ------------------------------------------------------------------- */

static void test_usage_errors(void **state) {
    (void)state;
    const char *b = wpath("usage.json"), *trust = wpath("trust-ab.json");
    write_bundle(b, "acme", DOC_PLAIN, "");
    const char *none[] = {itest_bin("govctl"), NULL};
    assert_int_equal(run_argv(none, NULL), 2);
    assert_non_null(strstr(g_err, "usage: govctl <command>"));
    EXPECT_USAGE(GOVCTL(NOENV, "frobnicate"));
    EXPECT_USAGE(GOVCTL(NOENV, "checksum"));
    EXPECT_USAGE(GOVCTL(NOENV, "checksum", b, b));
    EXPECT_USAGE(GOVCTL(NOENV, "checksum", "--bogus", b));
    assert_non_null(strstr(g_err, "--bogus"));
    EXPECT_USAGE(GOVCTL(NOENV, "checksum", "--hash-alg", "md5", b));
    EXPECT_USAGE(GOVCTL(NOENV, "checksum", "--canonicalization", "c14n", b));
    EXPECT_USAGE(GOVCTL(NOENV, "checksum", b, "--hash-alg"));
    assert_non_null(strstr(g_err, "needs a value"));
    EXPECT_USAGE(GOVCTL(NOENV, "keygen", "--signer", "x"));
    EXPECT_USAGE(GOVCTL(NOENV, "keygen", "--out", work));
    EXPECT_USAGE(GOVCTL(NOENV, "keygen", "--signer", "x", "--out", work, "extra"));
    EXPECT_USAGE(GOVCTL(NOENV, "sign", "--signer", "alice", b));
    EXPECT_USAGE(GOVCTL(NOENV, "sign", "--key", keyfile("alice", "key"), b));
    EXPECT_USAGE(GOVCTL(NOENV, "sign", "--signer", "al/ice", "--key", keyfile("alice", "key"), b));
    EXPECT_USAGE(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "key")));
    EXPECT_USAGE(GOVCTL(NOENV, "sign", "--signer", "alice", "--key", keyfile("alice", "key"), b, b));
    EXPECT_USAGE(GOVCTL(NOENV, "verify", b));
    EXPECT_USAGE(GOVCTL(NOENV, "verify", "--trust", trust));
    EXPECT_USAGE(GOVCTL(NOENV, "verify", "--trust", trust, "--current-version", "1.0.0", b));
    EXPECT_USAGE(GOVCTL(NOENV, "verify", "--trust", trust, "--current-checksum", "ab", b));
    EXPECT_USAGE(GOVCTL(NOENV, "verify", "--trust", trust, "--current-version", "one",
                        "--current-checksum", "ab", b));
    EXPECT_USAGE(GOVCTL(NOENV, "verify", "--trust", trust, "--frob", b));
    EXPECT_USAGE(GOVCTL(NOENV, "publish", b));
    EXPECT_USAGE(GOVCTL(NOENV, "publish", "--tenant", "no spaces", b));
    EXPECT_USAGE(GOVCTL(NOENV, "publish", "--tenant", "acme"));
    EXPECT_USAGE(GOVCTL(NOENV, "publish", "--tenant", "acme", "--source", "", b));
    /* nothing ran: the bundle is as written */
    char *text = itest_read_file(b, NULL);
    assert_null(strstr(text, "signatures"));
    free(text);
    EXPECT_OK(GOVCTL(NOENV, "--help"));
    assert_non_null(strstr(g_out, "govctl"));
    assert_non_null(strstr(g_out, "publish --tenant T"));
}

/* --- publish ----------------------------------------------------------------- */

/* What `govctl publish` printed. */
typedef struct published {
    char event_id[GOV_UUID_STRLEN + 1];
    int printed_partition;
    int64_t printed_offset;
} published_t;

/* Parses "published constitution.bundles partition=P offset=O event_id=E\n". */
static void parse_published(published_t *p) {
    long long off = -1;
    int part = -1;
    char id[64] = "";
    if (sscanf(g_out, "published constitution.bundles partition=%d offset=%lld event_id=%63s",
               &part, &off, id) != 3 || !gov_uuid_v7_valid(id) || off < 0 || part < 0)
        fail_msg("unexpected publish output: %s", g_out);
    memset(p, 0, sizeof *p);
    snprintf(p->event_id, sizeof p->event_id, "%s", id);
    p->printed_offset = off; /* compared with the consumed message below */
    p->printed_partition = part;
}

/* The event as consumed (got) against what govctl printed (p) and the file. */
static void check_published(const published_t *p, const itest_found_t *got, const char *tenant,
                            const char *bundle_path, const char *source) {
    if (!got->found)
        fail_msg("event %s not found on constitution.bundles", p->event_id);
    assert_int_equal(got->offset, p->printed_offset);
    assert_int_equal(got->partition, p->printed_partition);
    assert_string_equal(got->key, tenant);
    json_t *ev = got->event, *b = load_json(bundle_path);
    assert_string_equal(member(ev, "tenant"), tenant);
    assert_string_equal(member(ev, "source"), source);
    assert_true(json_is_null(json_object_get(ev, "etag")));
    json_int_t at = json_integer_value(json_object_get(ev, "occurred_at"));
    assert_true(at > gov_now_micros() - 600LL * 1000000 && at <= gov_now_micros());
    size_t dlen;
    char *doc = document_text(bundle_path, &dlen);
    json_t *dj = json_object_get(ev, "document_json");
    assert_int_equal(json_string_length(dj), dlen);
    assert_memory_equal(json_string_value(dj), doc, dlen);
    free(doc);
    static const char *const fields[] = {"canonicalization", "hash_alg", "checksum"};
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(member(ev, fields[i]), member(b, fields[i]));
    assert_true(json_equal(json_object_get(ev, "signatures"), json_object_get(b, "signatures")));
    json_decref(b);
}

static void test_publish(void **state) {
    (void)state;
    char tenant[64], brokers[256], env_brokers[300], env_user[64];
    itest_unique("govctl", tenant, sizeof tenant);
    snprintf(brokers, sizeof brokers, "%s", itest_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092"));
    snprintf(env_brokers, sizeof env_brokers, "GOV_KAFKA_BROKERS=%s", brokers);
    snprintf(env_user, sizeof env_user, "USER=ops-%d", (int)getpid());
    const char *p = wpath("publish.json");
    write_bundle(p, tenant, DOC_RAW, "");
    sign_as(p, "alice");
    sign_as(p, "bob");

    published_t pub[2];
    /* --brokers and --source given */
    EXPECT_OK(GOVCTL(NOENV, "publish", "--tenant", tenant, "--brokers", brokers, "--source",
                     "itest-govctl", p));
    parse_published(&pub[0]);
    /* brokers from GOV_KAFKA_BROKERS, source from $USER */
    const char *env[] = {env_brokers, env_user, NULL};
    EXPECT_OK(GOVCTL(env, "publish", "--tenant", tenant, p));
    parse_published(&pub[1]);
    assert_string_not_equal(pub[0].event_id, pub[1].event_id);

    itest_found_t at[2];
    memset(at, 0, sizeof at);
    for (size_t i = 0; i < 2; i++)
        snprintf(at[i].event_id, sizeof at[i].event_id, "%s", pub[i].event_id);
    if (!itest_find_events("constitution.bundles", "ConstitutionBundle", at, 2, 60000))
        fail_msg("the published events did not arrive on constitution.bundles");
    check_published(&pub[0], &at[0], tenant, p, "itest-govctl");
    char src[80];
    snprintf(src, sizeof src, "govctl:%s", env_user + 5);
    check_published(&pub[1], &at[1], tenant, p, src);
    json_decref(at[0].event);
    json_decref(at[1].event);
}

static void test_publish_refusals(void **state) {
    (void)state;
    const char *p = wpath("publish-refused.json");
    write_bundle(p, "acme", DOC_PLAIN, "");
    sign_as(p, "alice");
    EXPECT_FAIL(GOVCTL(NOENV, "publish", "--tenant", "globex", p), "tenant_mismatch");
    assert_string_equal(g_out, "");
    /* not even a bundle: no checksum, no signatures */
    write_bundle(p, "acme", DOC_PLAIN, "");
    EXPECT_FAIL(GOVCTL(NOENV, "publish", "--tenant", "acme", p), "invalid_bundle");
    write_str(p, "{\"tenant\": \"acme\", \"document\": {}");
    EXPECT_FAIL(GOVCTL(NOENV, "publish", "--tenant", "acme", p), "invalid_json");
    EXPECT_FAIL(GOVCTL(NOENV, "publish", "--tenant", "acme", wpath("nope.json")), "io_error");
}

static void test_publish_kafka_unavailable(void **state) {
    (void)state;
    const char *p = wpath("publish-down.json");
    write_bundle(p, "acme", DOC_PLAIN, "");
    sign_as(p, "alice");
    const char *env[] = {"GOV_KAFKA_BROKERS=127.0.0.1:1", NULL};
    int64_t t0 = gov_mono_micros();
    EXPECT_FAIL(GOVCTL(env, "publish", "--tenant", "acme", p), "kafka_unavailable");
    int64_t ms = (gov_mono_micros() - t0) / 1000;
    assert_string_equal(g_out, "");
    if (ms > 20000)
        fail_msg("kafka_unavailable took %lld ms (bound: 20 s)", (long long)ms);
}

int main(void) {
    gov_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keygen),
        cmocka_unit_test(test_checksum_jcs_vectors),
        cmocka_unit_test(test_checksum_somabrain_vectors),
        cmocka_unit_test(test_checksum_errors),
        cmocka_unit_test(test_sign_verify_roundtrip),
        cmocka_unit_test(test_sign_jcs_sha256),
        cmocka_unit_test(test_verify_matrix),
        cmocka_unit_test(test_sign_refusals),
        cmocka_unit_test(test_sign_preserves_document),
        cmocka_unit_test(test_python_independent_check),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_publish_refusals),
        cmocka_unit_test(test_publish_kafka_unavailable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
