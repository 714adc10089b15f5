/* test_signer_pkcs11.c - the PKCS#11 key store (gov_signer_pkcs11.c) against a
 * real SoftHSM2 token.
 *
 * The test makes its own token in a temporary directory (its own
 * SOFTHSM2_CONF, softhsm2-util --init-token with random PINs), so the
 * stack's token is never touched and no earlier run's keys are seen.  It
 * drives the store the way gov-edge and `govctl keys` will (generate, sign,
 * open by kid, list, many threads), then - with the store released - opens
 * the token itself through the module to check what the store left there:
 * the public key it reports is the token's, the private key is sensitive
 * and not extractable (CKA_VALUE cannot be read), CKA_ID and CKA_LABEL are
 * the kid.  Every signature is verified by OpenSSL, not by the token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "gov_alloc.h"
#include "gov_signer_rt.h"
#include "gov_util.h"
#include "itest_util.h"

static char dir[128];
static char label[33];
static char user_pin[33];
static char so_pin[33];
static char module[512];
static char eb[512];

static void random_hex(char *out, size_t bytes) {
    unsigned char r[16];
    assert_true(bytes <= sizeof r);
    assert_int_equal(RAND_bytes(r, (int)bytes), 1);
    gov_hex_encode(r, bytes, out);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

/* softhsm2-util, no shell: the PINs are arguments, not text to parse. */
static void run_softhsm_util(const char *const argv[]) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s failed (status %d); is the softhsm2 package installed?", argv[0], status);
}

static int setup_token(void **state) {
    (void)state;
    snprintf(module, sizeof module, "%s",
             itest_env("GOV_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"));
    snprintf(dir, sizeof dir, "/tmp/gov_itest_p11_XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char tokens[256], conf[256];
    snprintf(tokens, sizeof tokens, "%s/tokens", dir);
    snprintf(conf, sizeof conf, "%s/softhsm2.conf", dir);
    if (mkdir(tokens, 0700) != 0)
        return -1;
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens);
    fclose(f);
    /* Before the module is loaded: SoftHSM2 reads it at C_Initialize. */
    setenv("SOFTHSM2_CONF", conf, 1);
    char rnd[9];
    random_hex(rnd, 4);
    snprintf(label, sizeof label, "gov-itest-%s", rnd);
    random_hex(user_pin, 8);
    random_hex(so_pin, 8);
    const char *argv[] = {"softhsm2-util", "--init-token", "--free", "--label", label,
                          "--so-pin", so_pin, "--pin", user_pin, NULL};
    run_softhsm_util(argv);
    return 0;
}

static int teardown_token(void **state) {
    (void)state;
    return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static gov_keystore_t *open_store(void) {
    gov_keystore_config_t cfg = {.backend = GOV_KEYSTORE_PKCS11,
                                 .pkcs11_module = module,
                                 .pkcs11_token_label = label,
                                 .pkcs11_pin = user_pin};
    gov_keystore_t *ks = NULL;
    gov_reason_t why = GOV_REASON_COUNT_;
    if (gov_keystore_open(&cfg, &ks, &why, eb, sizeof eb) != GOV_OK)
        fail_msg("pkcs11 store did not open (%s): %s", gov_reason_code(why), eb);
    assert_string_equal(gov_keystore_backend(ks), "pkcs11");
    return ks;
}

static int openssl_verify(const uint8_t pub[32], const uint8_t *msg, size_t len,
                          const uint8_t sig[64]) {
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = k != NULL && md != NULL && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(md, sig, 64, msg, len) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok;
}

/* --- the token as the test sees it, without the store ----------------------------------- */

typedef struct raw_token {
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    CK_SESSION_HANDLE s;
} raw_token_t;

static void raw_open(raw_token_t *t) {
    t->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(t->dl);
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(t->dl, "C_GetFunctionList");
    assert_non_null(get);
    assert_int_equal(get(&t->f), CKR_OK);
    CK_C_INITIALIZE_ARGS init = {.flags = CKF_OS_LOCKING_OK};
    assert_int_equal(t->f->C_Initialize(&init), CKR_OK);
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    assert_int_equal(t->f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        assert_int_equal(t->f->C_GetTokenInfo(slots[i], &ti), CKR_OK);
        if (memcmp(ti.label, label, strlen(label)) == 0) {
            assert_int_equal(t->f->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                                 NULL, NULL, &t->s),
                             CKR_OK);
            assert_int_equal(t->f->C_Login(t->s, CKU_USER, (CK_UTF8CHAR_PTR)user_pin,
                                           strlen(user_pin)),
                             CKR_OK);
            return;
        }
    }
    fail_msg("the test's token %s is not in a slot", label);
}

static void raw_close(raw_token_t *t) {
    t->f->C_Logout(t->s);
    t->f->C_CloseSession(t->s);
    t->f->C_Finalize(NULL);
    dlclose(t->dl);
}

static CK_OBJECT_HANDLE raw_find(raw_token_t *t, CK_OBJECT_CLASS cls, const char *kid) {
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, (void *)kid, strlen(kid)}};
    CK_OBJECT_HANDLE h[2];
    CK_ULONG n = 0;
    assert_int_equal(t->f->C_FindObjectsInit(t->s, tmpl, 2), CKR_OK);
    assert_int_equal(t->f->C_FindObjects(t->s, h, 2, &n), CKR_OK);
    t->f->C_FindObjectsFinal(t->s);
    assert_int_equal(n, 1);
    return h[0];
}

/* --- tests -------------------------------------------------------------------------------- */

static char kid1[GOV_SIGNER_KID_SIZE];
static uint8_t pub1[32];

static void test_generate_sign_verify(void **state) {
    (void)state;
    gov_keystore_t *ks = open_store();
    gov_signer_t *s = NULL, *again = NULL;
    gov_reason_t why;
    if (gov_keystore_generate(ks, &s, &why, eb, sizeof eb) != GOV_OK)
        fail_msg("generate: %s: %s", gov_reason_code(why), eb);
    assert_string_equal(gov_signer_backend(s), "pkcs11");
    assert_true(gov_signer_kid_valid(gov_signer_kid(s)));
    snprintf(kid1, sizeof kid1, "%s", gov_signer_kid(s));
    memcpy(pub1, gov_signer_public_key(s), 32);

    const uint8_t msg[] = "eyJhbGciOiJFZERTQSIsImtpZCI6IngifQ.eyJzdWIiOiJjbGllbnQifQ";
    uint8_t sig[64];
    assert_int_equal(gov_signer_sign(s, msg, sizeof msg - 1, sig, eb, sizeof eb), GOV_OK);
    assert_true(openssl_verify(pub1, msg, sizeof msg - 1, sig));
    sig[0] ^= 0x80;
    assert_false(openssl_verify(pub1, msg, sizeof msg - 1, sig));
    /* The empty message signs too (RFC 8032 allows it). */
    assert_int_equal(gov_signer_sign(s, NULL, 0, sig, eb, sizeof eb), GOV_OK);
    assert_true(openssl_verify(pub1, (const uint8_t *)"", 0, sig));

    /* By kid, and listed; an unknown kid is not found. */
    assert_int_equal(gov_keystore_signer(ks, kid1, &again, &why, eb, sizeof eb), GOV_OK);
    assert_memory_equal(gov_signer_public_key(again), pub1, 32);
    gov_signer_t *missing = NULL;
    assert_int_equal(gov_keystore_signer(ks, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", &missing,
                                         &why, eb, sizeof eb),
                     GOV_ERR_NOT_FOUND);
    assert_int_equal(why, GOV_REASON_KEY_NOT_FOUND);
    char **kids = NULL;
    size_t n = 0;
    assert_int_equal(gov_keystore_list(ks, &kids, &n, &why, eb, sizeof eb), GOV_OK);
    assert_int_equal(n, 1);
    assert_string_equal(kids[0], kid1);
    gov_keystore_list_free(kids, n);

    /* One store per module per process: a second open is refused while
     * the first (or any signer of it) lives. */
    gov_keystore_config_t cfg = {.backend = GOV_KEYSTORE_PKCS11, .pkcs11_module = module,
                                 .pkcs11_token_label = label, .pkcs11_pin = user_pin};
    gov_keystore_t *second = NULL;
    gov_keystore_free(ks);
    assert_int_equal(gov_keystore_open(&cfg, &second, &why, eb, sizeof eb), GOV_ERR_EXISTS);
    assert_int_equal(why, GOV_REASON_KEYSTORE_UNAVAILABLE);
    /* The signers keep the token open after the store handle is gone. */
    assert_int_equal(gov_signer_sign(again, msg, sizeof msg - 1, sig, eb, sizeof eb), GOV_OK);
    assert_true(openssl_verify(pub1, msg, sizeof msg - 1, sig));
    gov_signer_free(again);
    gov_signer_free(s);

    /* Reopened: the key is a token object, it is still there. */
    ks = open_store();
    assert_int_equal(gov_keystore_signer(ks, kid1, &again, &why, eb, sizeof eb), GOV_OK);
    assert_int_equal(gov_signer_sign(again, msg, sizeof msg - 1, sig, eb, sizeof eb), GOV_OK);
    assert_true(openssl_verify(pub1, msg, sizeof msg - 1, sig));
    gov_signer_free(again);
    gov_keystore_free(ks);
}

/* What the store left on the token, seen through the module directly. */
static void test_token_objects(void **state) {
    (void)state;
    raw_token_t t;
    raw_open(&t);
    CK_OBJECT_HANDLE priv = raw_find(&t, CKO_PRIVATE_KEY, kid1);
    CK_OBJECT_HANDLE pub = raw_find(&t, CKO_PUBLIC_KEY, kid1);

    CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE, token = CK_FALSE, private_ = CK_FALSE;
    char lab[64];
    CK_ATTRIBUTE a[] = {
        {CKA_SENSITIVE, &sensitive, sizeof sensitive},
        {CKA_EXTRACTABLE, &extractable, sizeof extractable},
        {CKA_TOKEN, &token, sizeof token},
        {CKA_PRIVATE, &private_, sizeof private_},
        {CKA_LABEL, lab, sizeof lab},
    };
    assert_int_equal(t.f->C_GetAttributeValue(t.s, priv, a, 5), CKR_OK);
    assert_true(sensitive == CK_TRUE);
    assert_true(extractable == CK_FALSE);
    assert_true(token == CK_TRUE);
    assert_true(private_ == CK_TRUE);
    assert_int_equal(a[4].ulValueLen, GOV_SIGNER_KID_LEN);
    assert_memory_equal(lab, kid1, GOV_SIGNER_KID_LEN);

    /* The private value cannot be read. */
    uint8_t value[64];
    CK_ATTRIBUTE v = {CKA_VALUE, value, sizeof value};
    CK_RV rv = t.f->C_GetAttributeValue(t.s, priv, &v, 1);
    assert_int_equal(rv, CKR_ATTRIBUTE_SENSITIVE);
    assert_true(v.ulValueLen == CK_UNAVAILABLE_INFORMATION);

    /* The public key the store reported is the token's. */
    uint8_t point[64];
    CK_ATTRIBUTE p = {CKA_EC_POINT, point, sizeof point};
    assert_int_equal(t.f->C_GetAttributeValue(t.s, pub, &p, 1), CKR_OK);
    assert_int_equal(p.ulValueLen, 34);
    assert_int_equal(point[0], 0x04);
    assert_int_equal(point[1], 0x20);
    assert_memory_equal(point + 2, pub1, 32);

    /* CKA_EC_PARAMS: SoftHSM2 takes both the OID (what the store uses) and
     * the printable string "edwards25519" (session objects, gone at logout). */
    static const CK_BYTE oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
    static const CK_BYTE printable[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};
    const struct { const CK_BYTE *der; CK_ULONG len; } params[] = {{oid, sizeof oid},
                                                                  {printable, sizeof printable}};
    for (size_t i = 0; i < 2; i++) {
        CK_MECHANISM mech = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
        CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
        CK_ATTRIBUTE pt[] = {{CKA_TOKEN, &no, sizeof no},
                             {CKA_EC_PARAMS, (void *)params[i].der, params[i].len}};
        CK_ATTRIBUTE st[] = {{CKA_TOKEN, &no, sizeof no}, {CKA_SIGN, &yes, sizeof yes}};
        CK_OBJECT_HANDLE hp, hs;
        assert_int_equal(t.f->C_GenerateKeyPair(t.s, &mech, pt, 2, st, 2, &hp, &hs), CKR_OK);
        t.f->C_DestroyObject(t.s, hs);
        t.f->C_DestroyObject(t.s, hp);
    }
    raw_close(&t);
}

typedef struct worker {
    gov_signer_t *s;
    int index, verified, failed;
    char err[256];
} worker_t;

#define SIGS_PER_THREAD 200

static void *sign_loop(void *arg) {
    worker_t *w = arg;
    for (int i = 0; i < SIGS_PER_THREAD; i++) {
        char msg[64];
        uint8_t sig[64];
        int len = snprintf(msg, sizeof msg, "thread %d message %d", w->index, i);
        if (gov_signer_sign(w->s, (const uint8_t *)msg, (size_t)len, sig, w->err, sizeof w->err) !=
            GOV_OK) {
            w->failed++;
            continue;
        }
        if (openssl_verify(gov_signer_public_key(w->s), (const uint8_t *)msg, (size_t)len, sig))
            w->verified++;
        else
            w->failed++;
    }
    return NULL;
}

static void test_four_threads(void **state) {
    (void)state;
    gov_keystore_t *ks = open_store();
    gov_signer_t *s = NULL;
    gov_reason_t why;
    assert_int_equal(gov_keystore_signer(ks, kid1, &s, &why, eb, sizeof eb), GOV_OK);
    pthread_t th[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){.s = s, .index = i};
        assert_int_equal(pthread_create(&th[i], NULL, sign_loop, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (w[i].failed)
            fail_msg("thread %d: %d signatures failed (%s)", i, w[i].failed, w[i].err);
        assert_int_equal(w[i].verified, SIGS_PER_THREAD);
    }
    gov_signer_free(s);
    gov_keystore_free(ks);
}

/* review10: a thread's session closed under it (another user of the
 * module - here the test itself, through the same function list - closes
 * it) costs one retry, not every later signature.  The store opened its
 * login session first and this thread's signing session last, so the
 * highest live handle is the thread's; the login session stays open, so
 * the token stays logged in and a new session can sign.  Before the fix
 * every later gov_signer_sign answered CKR_SESSION_HANDLE_INVALID. */
static void test_lost_session_is_replaced(void **state) {
    (void)state;
    gov_keystore_t *ks = open_store();
    gov_signer_t *s = NULL;
    gov_reason_t why;
    if (gov_keystore_signer(ks, kid1, &s, &why, eb, sizeof eb) != GOV_OK)
        fail_msg("signer %s: %s", kid1, eb);
    const uint8_t msg[] = "lost session";
    uint8_t sig[64];
    assert_int_equal(gov_signer_sign(s, msg, sizeof msg - 1, sig, eb, sizeof eb), GOV_OK);

    /* the module is loaded already: dlopen hands back the same one */
    void *dl = dlopen(module, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    assert_non_null(dl);
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
    CK_FUNCTION_LIST_PTR f = NULL;
    assert_int_equal(get(&f), CKR_OK);
    CK_SESSION_HANDLE last = CK_INVALID_HANDLE;
    int live = 0;
    for (CK_SESSION_HANDLE h = 1; h < 4096; h++) {
        CK_SESSION_INFO info;
        if (f->C_GetSessionInfo(h, &info) == CKR_OK) {
            last = h;
            live++;
        }
    }
    assert_true(live >= 2); /* the login session and this thread's */
    assert_int_equal(f->C_CloseSession(last), CKR_OK);

    for (int i = 0; i < 3; i++) {
        memset(sig, 0, sizeof sig);
        if (gov_signer_sign(s, msg, sizeof msg - 1, sig, eb, sizeof eb) != GOV_OK)
            fail_msg("signature %d after the session was closed: %s", i, eb);
        assert_true(openssl_verify(pub1, msg, sizeof msg - 1, sig));
    }
    dlclose(dl);
    gov_signer_free(s);
    gov_keystore_free(ks);
}

/* review10: a private key put on the token under another key's CKA_ID.
 * The store finds the private object by CKA_ID and checked only the public
 * object's point, so it opened a signer whose signatures no verifier
 * accepts; it now signs a probe at open and refuses the pair
 * (key_invalid).  Runs last: it replaces kid1's private key. */
static void test_planted_private_key_refused(void **state) {
    (void)state;
    raw_token_t t;
    raw_open(&t);
    assert_int_equal(t.f->C_DestroyObject(t.s, raw_find(&t, CKO_PRIVATE_KEY, kid1)), CKR_OK);
    static const CK_BYTE oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
    CK_MECHANISM mech = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
    CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
    CK_ATTRIBUTE pt[] = {{CKA_TOKEN, &no, sizeof no}, {CKA_EC_PARAMS, (void *)oid, sizeof oid}};
    CK_ATTRIBUTE st[] = {{CKA_TOKEN, &yes, sizeof yes},
                         {CKA_PRIVATE, &yes, sizeof yes},
                         {CKA_SIGN, &yes, sizeof yes},
                         {CKA_ID, kid1, GOV_SIGNER_KID_LEN}};
    CK_OBJECT_HANDLE hp, hs;
    assert_int_equal(t.f->C_GenerateKeyPair(t.s, &mech, pt, 2, st, 4, &hp, &hs), CKR_OK);
    t.f->C_DestroyObject(t.s, hp);
    raw_close(&t);

    gov_keystore_t *ks = open_store();
    gov_signer_t *s = NULL;
    gov_reason_t why = GOV_REASON_NONE;
    gov_err_t rc = gov_keystore_signer(ks, kid1, &s, &why, eb, sizeof eb);
    if (rc == GOV_OK) {
        uint8_t sig[64];
        const uint8_t msg[] = "planted";
        int verifies = gov_signer_sign(s, msg, sizeof msg - 1, sig, eb, sizeof eb) == GOV_OK &&
                       openssl_verify(pub1, msg, sizeof msg - 1, sig);
        gov_signer_free(s);
        gov_keystore_free(ks);
        fail_msg("a planted private key was opened as %s (its signatures verify: %d)", kid1,
                 verifies);
    }
    assert_int_equal(rc, GOV_ERR_VERIFY);
    assert_int_equal(why, GOV_REASON_KEY_INVALID);
    assert_null(s);
    assert_non_null(strstr(eb, "does not sign for its public key"));
    gov_keystore_free(ks);
}

static void test_wrong_pin_and_pin_file(void **state) {
    (void)state;
    gov_keystore_t *ks = NULL;
    gov_reason_t why = GOV_REASON_COUNT_;
    char wrong[33];
    random_hex(wrong, 8);
    gov_keystore_config_t cfg = {.backend = GOV_KEYSTORE_PKCS11, .pkcs11_module = module,
                                 .pkcs11_token_label = label, .pkcs11_pin = wrong};
    assert_int_equal(gov_keystore_open(&cfg, &ks, &why, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_null(ks);
    assert_int_equal(why, GOV_REASON_PIN_INCORRECT);
    assert_string_equal(gov_reason_code(why), "pin_incorrect");
    assert_non_null(strstr(eb, "refused the PIN"));
    assert_null(strstr(eb, wrong)); /* the PIN is never in a message */

    /* No such token. */
    cfg.pkcs11_pin = user_pin;
    cfg.pkcs11_token_label = "no-such-token-label";
    assert_int_equal(gov_keystore_open(&cfg, &ks, &why, eb, sizeof eb), GOV_ERR_NOT_FOUND);
    assert_int_equal(why, GOV_REASON_KEYSTORE_UNAVAILABLE);
    assert_non_null(strstr(eb, "no-such-token-label"));

    /* A PIN file: world-readable is refused, 0600 opens. */
    char pin_path[256];
    snprintf(pin_path, sizeof pin_path, "%s/user.pin", dir);
    FILE *f = fopen(pin_path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", user_pin);
    fclose(f);
    assert_int_equal(chmod(pin_path, 0644), 0);
    gov_keystore_config_t fcfg = {.backend = GOV_KEYSTORE_PKCS11, .pkcs11_module = module,
                                  .pkcs11_token_label = label, .pkcs11_pin_file = pin_path};
    assert_int_equal(gov_keystore_open(&fcfg, &ks, &why, eb, sizeof eb), GOV_ERR_CONFIG);
    assert_int_equal(why, GOV_REASON_KEY_INSECURE);
    assert_non_null(strstr(eb, pin_path));
    assert_null(strstr(eb, user_pin));
    assert_int_equal(chmod(pin_path, 0600), 0);
    if (gov_keystore_open(&fcfg, &ks, &why, eb, sizeof eb) != GOV_OK)
        fail_msg("open with a 0600 PIN file: %s: %s", gov_reason_code(why), eb);
    gov_signer_t *s = NULL;
    assert_int_equal(gov_keystore_signer(ks, kid1, &s, &why, eb, sizeof eb), GOV_OK);
    gov_signer_free(s);
    gov_keystore_free(ks);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_sign_verify),
        cmocka_unit_test(test_token_objects),
        cmocka_unit_test(test_four_threads),
        cmocka_unit_test(test_lost_session_is_replaced),
        cmocka_unit_test(test_wrong_pin_and_pin_file),
        cmocka_unit_test(test_planted_private_key_refused),
    };
    return cmocka_run_group_tests(tests, setup_token, teardown_token);
}
