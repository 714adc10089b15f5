/* gov_signer_pkcs11.c - the PKCS#11 key store: Ed25519 keys that are made
 * on a token and never leave it.
 *
 * How it works: open dlopens the module, takes its function list
 * (C_GetFunctionList), initializes it with CKF_OS_LOCKING_OK (the module
 * may be called from many threads and uses the OS's locks), finds the slot
 * whose token label is the configured one, and logs in as CKU_USER once on
 * a session kept open for the store's life (a token logs out when the last
 * session of the process closes).  Every thread that signs gets its own
 * session, opened on first use (a pthread key per store; the record is also
 * on the store's list so release can close sessions of threads still
 * alive), because a PKCS#11 session runs one operation at a time.
 * Generation uses CKM_EC_EDWARDS_KEY_PAIR_GEN with CKA_EC_PARAMS the DER of
 * OID 1.3.101.112 (id-Ed25519, RFC 8410), a private key that is a token
 * object, private, sensitive, not extractable, sign-only; then sets CKA_ID
 * and CKA_LABEL of both halves to the kid computed from the public
 * CKA_EC_POINT (a DER OCTET STRING around the 32 bytes).  Signing is
 * C_SignInit(CKM_EDDSA) + C_Sign on the thread's session; a session found
 * closed under the thread is replaced once and the signature retried.  The store's
 * state is reference counted: each signer holds a reference, so signers may
 * outlive the store handle; the last release closes the sessions, logs out,
 * calls C_Finalize and dlcloses.
 *
 * Opening a key by kid signs one probe and verifies it under the public
 * key, so a private object under another key's CKA_ID is refused.
 *
 * What it does not do: manage the token (init, PINs: softhsm2-util or the
 * HSM's tools), delete keys, or accept a key whose CKA_ID is not the
 * thumbprint of its public key.  One store per module per process: PKCS#11
 * login state is per process, so a second store could not prove its PIN.
 *
 * Types and constants come from p11-kit's <p11-kit/pkcs11.h> (Debian
 * libp11-kit-dev), headers only: the module is loaded at run time.
 */
#include <dlfcn.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

#include "gov_alloc.h"
#include "gov_signer_rt.h"

/* DER of OID 1.3.101.112 (id-Ed25519). */
static const CK_BYTE ed25519_params[] = {0x06, 0x03, 0x2b, 0x65, 0x70};

typedef struct p11_thread p11_thread_t;

typedef struct p11 {
    atomic_int refs;
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE login_session;
    int initialized, logged_in, key_made;
    pthread_key_t key;
    pthread_mutex_t mu;       /* guards threads */
    p11_thread_t *threads;    /* every live per-thread session */
    char *module;
} p11_t;

struct p11_thread {
    p11_t *p;
    CK_SESSION_HANDLE session;
    p11_thread_t *next;
};

/* Modules in use in this process (by dlopen handle): one store each. */
static pthread_mutex_t modules_mu = PTHREAD_MUTEX_INITIALIZER;
#define MODULES_MAX 8
static void *modules_in_use[MODULES_MAX];

static int module_claim(void *dl) {
    int ok = 0;
    pthread_mutex_lock(&modules_mu);
    int free_slot = -1, dup = 0;
    for (int i = 0; i < MODULES_MAX; i++) {
        if (modules_in_use[i] == dl)
            dup = 1;
        else if (modules_in_use[i] == NULL && free_slot < 0)
            free_slot = i;
    }
    if (!dup && free_slot >= 0) {
        modules_in_use[free_slot] = dl;
        ok = 1;
    }
    pthread_mutex_unlock(&modules_mu);
    return ok;
}

static void module_release(void *dl) {
    pthread_mutex_lock(&modules_mu);
    for (int i = 0; i < MODULES_MAX; i++)
        if (modules_in_use[i] == dl)
            modules_in_use[i] = NULL;
    pthread_mutex_unlock(&modules_mu);
}

/* The names of the return values an operator will meet; hex otherwise. */
static const char *ckr_name(CK_RV rv, char *tmp, size_t n) {
    switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_PIN_EXPIRED: return "CKR_PIN_EXPIRED";
    case CKR_USER_PIN_NOT_INITIALIZED: return "CKR_USER_PIN_NOT_INITIALIZED";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_HOST_MEMORY: return "CKR_HOST_MEMORY";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_ATTRIBUTE_SENSITIVE: return "CKR_ATTRIBUTE_SENSITIVE";
    case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
    case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_CRYPTOKI_ALREADY_INITIALIZED: return "CKR_CRYPTOKI_ALREADY_INITIALIZED";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_SESSION_CLOSED: return "CKR_SESSION_CLOSED";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
    default: snprintf(tmp, n, "CKR 0x%lx", (unsigned long)rv); return tmp;
    }
}

#define P11_FAIL(why_, reason_, rc_, what_, rv_)                                                \
    do {                                                                                      \
        char ckr_tmp_[32];                                                                    \
        rc = gov_reason_fail((why_), (reason_), (rc_), errbuf, errbuf_size, "pkcs11: %s: %s", \
                             (what_), ckr_name((rv_), ckr_tmp_, sizeof ckr_tmp_));            \
    } while (0)

/* --- the shared state's life ---------------------------------------------------------- */

static void p11_release(p11_t *p) {
    if (p == NULL || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    if (p->key_made)
        pthread_key_delete(p->key);
    for (p11_thread_t *t = p->threads, *next; t != NULL; t = next) {
        next = t->next;
        p->f->C_CloseSession(t->session);
        gov_free(t);
    }
    if (p->logged_in)
        p->f->C_Logout(p->login_session);
    if (p->login_session != CK_INVALID_HANDLE)
        p->f->C_CloseSession(p->login_session);
    if (p->initialized)
        p->f->C_Finalize(NULL);
    if (p->dl != NULL) {
        module_release(p->dl);
        dlclose(p->dl);
    }
    pthread_mutex_destroy(&p->mu);
    gov_free(p->module);
    gov_free(p);
}

/* Thread exit: close this thread's session and forget it. */
static void thread_session_close(void *arg) {
    p11_thread_t *t = arg;
    p11_t *p = t->p;
    pthread_mutex_lock(&p->mu);
    for (p11_thread_t **pp = &p->threads; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    p->f->C_CloseSession(t->session);
    gov_free(t);
}

/* The calling thread's session, opened on first use. */
static gov_err_t thread_session(p11_t *p, CK_SESSION_HANDLE *out, gov_reason_t *why,
                                char *errbuf, size_t errbuf_size) {
    gov_err_t rc = GOV_OK;
    p11_thread_t *t = pthread_getspecific(p->key);
    if (t != NULL) {
        *out = t->session;
        return GOV_OK;
    }
    t = gov_calloc(1, sizeof *t);
    if (t == NULL)
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_NOMEM, errbuf,
                               errbuf_size, "out of memory");
    CK_RV rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
                                   &t->session);
    if (rv != CKR_OK) {
        gov_free(t);
        P11_FAIL(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, "C_OpenSession", rv);
        return rc;
    }
    t->p = p;
    pthread_mutex_lock(&p->mu);
    t->next = p->threads;
    p->threads = t;
    pthread_mutex_unlock(&p->mu);
    if (pthread_setspecific(p->key, t) != 0) {
        thread_session_close(t);
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_NOMEM, errbuf,
                               errbuf_size, "out of memory");
    }
    *out = t->session;
    return rc;
}

/* --- signing ----------------------------------------------------------------------------- */

typedef struct p11_key {
    p11_t *p;                 /* a reference */
    CK_OBJECT_HANDLE priv;
} p11_key_t;

/* 1 when rv says the session itself is gone (closed by another party, the
 * token's slot reset), so a fresh session may succeed where it failed. */
static int session_lost(CK_RV rv) {
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED;
}

/* Forgets the calling thread's session (closing it if it still exists), so
 * its next thread_session opens a new one. */
static void thread_session_drop(p11_t *p) {
    p11_thread_t *t = pthread_getspecific(p->key);
    if (t == NULL)
        return;
    pthread_setspecific(p->key, NULL);
    thread_session_close(t);
}

/* C_SignInit + C_Sign on the thread's session.  A session found lost is
 * replaced once and the signature tried again: without that, a thread whose
 * session was closed under it (another process of the same token calling
 * C_CloseAllSessions, a module reset) would fail every signature for the
 * rest of its life while the store and the key are fine.  Not logged in
 * (CKR_USER_NOT_LOGGED_IN: the process's login went with its last session)
 * is not retried: the PIN is not kept, so only a restart logs in again;
 * the error says so.  Cost: one or two signatures on the token. */
static gov_err_t p11_sign(void *ctx, const uint8_t *msg, size_t len,
                          uint8_t sig[GOV_SIGNER_SIG_LEN], char *errbuf, size_t errbuf_size) {
    p11_key_t *k = ctx;
    gov_err_t rc = GOV_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        CK_SESSION_HANDLE s;
        if ((rc = thread_session(k->p, &s, NULL, errbuf, errbuf_size)) != GOV_OK)
            return rc;
        CK_MECHANISM mech = {CKM_EDDSA, NULL, 0};
        CK_RV rv = k->p->f->C_SignInit(s, &mech, k->priv);
        const char *what = "C_SignInit(CKM_EDDSA)";
        CK_ULONG siglen = GOV_SIGNER_SIG_LEN;
        if (rv == CKR_OK) {
            what = "C_Sign";
            rv = k->p->f->C_Sign(s, (CK_BYTE_PTR)msg, (CK_ULONG)len, sig, &siglen);
        }
        if (rv == CKR_OK && siglen == GOV_SIGNER_SIG_LEN)
            return GOV_OK;
        if (session_lost(rv) && attempt == 0) {
            thread_session_drop(k->p);
            continue;
        }
        if (rv == CKR_OK) {
            rc = gov_reason_fail(NULL, GOV_REASON_CRYPTO_ERROR, GOV_ERR_CRYPTO, errbuf,
                                 errbuf_size, "pkcs11: C_Sign returned %lu bytes, not %d",
                                 (unsigned long)siglen, GOV_SIGNER_SIG_LEN);
        } else if (rv == CKR_USER_NOT_LOGGED_IN || session_lost(rv) ||
                   rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT) {
            if (session_lost(rv))
                thread_session_drop(k->p);
            P11_FAIL(NULL, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, what, rv);
        } else {
            P11_FAIL(NULL, GOV_REASON_CRYPTO_ERROR, GOV_ERR_CRYPTO, what, rv);
        }
        return rc;
    }
    return rc;
}

static void p11_key_free(void *ctx) {
    p11_key_t *k = ctx;
    p11_release(k->p);
    gov_free(k);
}

static const gov_signer_ops_t p11_signer_ops = {.sign = p11_sign, .free = p11_key_free};

/* A signer over the private key priv with public key pub; takes a new
 * reference on p. */
static gov_err_t make_signer(p11_t *p, CK_OBJECT_HANDLE priv, const uint8_t pub[32],
                             gov_signer_t **out, gov_reason_t *why, char *errbuf,
                             size_t errbuf_size) {
    p11_key_t *k = gov_calloc(1, sizeof *k);
    if (k == NULL)
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_NOMEM, errbuf,
                               errbuf_size, "out of memory");
    atomic_fetch_add(&p->refs, 1);
    k->p = p;
    k->priv = priv;
    *out = gov_signer_wrap(&p11_signer_ops, k, pub, "pkcs11");
    if (*out == NULL)
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_NOMEM, errbuf,
                               errbuf_size, "out of memory");
    return GOV_OK;
}

/* --- objects ------------------------------------------------------------------------------ */

/* The 32-byte public key of CKA_EC_POINT: a DER OCTET STRING (04 20 ...),
 * or the bare 32 bytes some modules return. */
static int ec_point_unwrap(const CK_BYTE *pt, CK_ULONG n, uint8_t pub[32]) {
    if (n == 34 && pt[0] == 0x04 && pt[1] == 0x20) {
        memcpy(pub, pt + 2, 32);
        return 0;
    }
    if (n == 32) {
        memcpy(pub, pt, 32);
        return 0;
    }
    return -1;
}

static gov_err_t read_public(p11_t *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, uint8_t pub[32],
                             gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    gov_err_t rc;
    CK_BYTE point[80];
    CK_ATTRIBUTE a = {CKA_EC_POINT, point, sizeof point};
    CK_RV rv = p->f->C_GetAttributeValue(s, obj, &a, 1);
    if (rv != CKR_OK) {
        P11_FAIL(why, GOV_REASON_KEY_INVALID, GOV_ERR_CRYPTO, "C_GetAttributeValue(CKA_EC_POINT)",
                 rv);
        return rc;
    }
    if (ec_point_unwrap(point, a.ulValueLen, pub) != 0)
        return gov_reason_fail(why, GOV_REASON_KEY_INVALID, GOV_ERR_UNSUPPORTED, errbuf,
                               errbuf_size,
                               "pkcs11: the public key's CKA_EC_POINT is not an Ed25519 point "
                               "(%lu bytes)",
                               (unsigned long)a.ulValueLen);
    return GOV_OK;
}

/* Finds at most max objects of class cls (Ed25519 keys), with CKA_ID = id
 * when id is not NULL. */
static gov_err_t find_keys(p11_t *p, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *id,
                           CK_OBJECT_HANDLE *objs, CK_ULONG max, CK_ULONG *found,
                           gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    gov_err_t rc = GOV_OK;
    CK_KEY_TYPE kt = CKK_EC_EDWARDS;
    CK_ATTRIBUTE tmpl[3] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_ID, (void *)id, id != NULL ? strlen(id) : 0},
    };
    *found = 0;
    CK_RV rv = p->f->C_FindObjectsInit(s, tmpl, id != NULL ? 3 : 2);
    if (rv != CKR_OK) {
        P11_FAIL(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, "C_FindObjectsInit",
                 rv);
        return rc;
    }
    rv = p->f->C_FindObjects(s, objs, max, found);
    if (rv != CKR_OK)
        P11_FAIL(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, "C_FindObjects", rv);
    p->f->C_FindObjectsFinal(s);
    return rc;
}

/* The private object was found by its CKA_ID alone, and only the public
 * object's point was checked against the kid: one signature verified in
 * process under that public key proves the private object is its other
 * half.  A private key put on the token under another key's CKA_ID (or
 * a token fault) would otherwise sign tokens no verifier accepts, and
 * every issuance would look fine to the edge.  On failure *out is freed.
 * Cost: one signature on the token and one verification. */
static gov_err_t pair_check(gov_signer_t **out, const char *kid, gov_reason_t *why, char *errbuf,
                            size_t errbuf_size) {
    static const uint8_t probe[] = "gov_signer_pkcs11 key pair check";
    uint8_t sig[GOV_SIGNER_SIG_LEN];
    gov_err_t rc = gov_signer_sign(*out, probe, sizeof probe - 1, sig, errbuf, errbuf_size);
    if (rc == GOV_OK &&
        gov_signer_verify(gov_signer_public_key(*out), probe, sizeof probe - 1, sig) != 1)
        rc = gov_reason_fail(why, GOV_REASON_KEY_INVALID, GOV_ERR_VERIFY, errbuf, errbuf_size,
                             "pkcs11: the private key with CKA_ID %s does not sign for its public "
                             "key",
                             kid);
    else if (rc != GOV_OK && why != NULL)
        *why = GOV_REASON_KEYSTORE_UNAVAILABLE;
    if (rc != GOV_OK) {
        gov_signer_free(*out);
        *out = NULL;
    }
    return rc;
}

static gov_err_t p11_signer(void *ctx, const char *kid, gov_signer_t **out, gov_reason_t *why,
                            char *errbuf, size_t errbuf_size) {
    p11_t *p = ctx;
    gov_err_t rc;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE priv[2], pubobj[2];
    CK_ULONG npriv = 0, npub = 0;
    uint8_t pub[32];
    char actual[GOV_SIGNER_KID_SIZE];
    if ((rc = thread_session(p, &s, why, errbuf, errbuf_size)) != GOV_OK)
        return rc;
    if ((rc = find_keys(p, s, CKO_PRIVATE_KEY, kid, priv, 2, &npriv, why, errbuf, errbuf_size)) !=
            GOV_OK ||
        (rc = find_keys(p, s, CKO_PUBLIC_KEY, kid, pubobj, 2, &npub, why, errbuf, errbuf_size)) !=
            GOV_OK)
        return rc;
    if (npriv == 0 || npub == 0)
        return gov_reason_fail(why, GOV_REASON_KEY_NOT_FOUND, GOV_ERR_NOT_FOUND, errbuf,
                               errbuf_size, "pkcs11: no Ed25519 key pair with CKA_ID %s on the token",
                               kid);
    if (npriv > 1 || npub > 1)
        return gov_reason_fail(why, GOV_REASON_KEY_INVALID, GOV_ERR_CONFLICT, errbuf, errbuf_size,
                               "pkcs11: more than one key pair with CKA_ID %s on the token", kid);
    if ((rc = read_public(p, s, pubobj[0], pub, why, errbuf, errbuf_size)) != GOV_OK)
        return rc;
    if (gov_signer_kid_of(pub, actual) != GOV_OK || strcmp(actual, kid) != 0)
        return gov_reason_fail(why, GOV_REASON_KEY_INVALID, GOV_ERR_VERIFY, errbuf, errbuf_size,
                               "pkcs11: the key with CKA_ID %s has the thumbprint %s", kid, actual);
    if ((rc = make_signer(p, priv[0], pub, out, why, errbuf, errbuf_size)) != GOV_OK)
        return rc;
    return pair_check(out, kid, why, errbuf, errbuf_size);
}

static gov_err_t p11_generate(void *ctx, gov_signer_t **out, gov_reason_t *why, char *errbuf,
                              size_t errbuf_size) {
    p11_t *p = ctx;
    gov_err_t rc;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_KEY_TYPE kt = CKK_EC_EDWARDS;
    uint8_t pub[32];
    char kid[GOV_SIGNER_KID_SIZE];
    if ((rc = thread_session(p, &s, why, errbuf, errbuf_size)) != GOV_OK)
        return rc;
    CK_MECHANISM mech = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub_tmpl[] = {
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_EC_PARAMS, (void *)ed25519_params, sizeof ed25519_params},
    };
    CK_ATTRIBUTE priv_tmpl[] = {
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},
        {CKA_DECRYPT, &no, sizeof no},
        {CKA_DERIVE, &no, sizeof no},
    };
    CK_RV rv = p->f->C_GenerateKeyPair(s, &mech, pub_tmpl, sizeof pub_tmpl / sizeof pub_tmpl[0],
                                       priv_tmpl, sizeof priv_tmpl / sizeof priv_tmpl[0], &hpub,
                                       &hpriv);
    if (rv != CKR_OK) {
        P11_FAIL(why, GOV_REASON_CRYPTO_ERROR, GOV_ERR_CRYPTO,
                 "C_GenerateKeyPair(CKM_EC_EDWARDS_KEY_PAIR_GEN)", rv);
        return rc;
    }
    if ((rc = read_public(p, s, hpub, pub, why, errbuf, errbuf_size)) != GOV_OK)
        goto fail;
    if (gov_signer_kid_of(pub, kid) != GOV_OK) {
        rc = gov_reason_fail(why, GOV_REASON_CRYPTO_ERROR, GOV_ERR_CRYPTO, errbuf, errbuf_size,
                             "pkcs11: cannot compute the new key's kid");
        goto fail;
    }
    CK_ATTRIBUTE names[] = {
        {CKA_ID, kid, GOV_SIGNER_KID_LEN},
        {CKA_LABEL, kid, GOV_SIGNER_KID_LEN},
    };
    if ((rv = p->f->C_SetAttributeValue(s, hpub, names, 2)) != CKR_OK ||
        (rv = p->f->C_SetAttributeValue(s, hpriv, names, 2)) != CKR_OK) {
        P11_FAIL(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE,
                 "C_SetAttributeValue(CKA_ID, CKA_LABEL)", rv);
        goto fail;
    }
    rc = make_signer(p, hpriv, pub, out, why, errbuf, errbuf_size);
    if (rc == GOV_OK)
        return GOV_OK;
fail:
    /* A key nobody can name is of no use: take it off the token. */
    p->f->C_DestroyObject(s, hpriv);
    p->f->C_DestroyObject(s, hpub);
    return rc;
}

static gov_err_t p11_list(void *ctx, char ***kids, size_t *n, gov_reason_t *why, char *errbuf,
                          size_t errbuf_size) {
    p11_t *p = ctx;
    gov_err_t rc;
    CK_SESSION_HANDLE s;
    enum { BATCH = 64 };
    if ((rc = thread_session(p, &s, why, errbuf, errbuf_size)) != GOV_OK)
        return rc;
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_KEY_TYPE kt = CKK_EC_EDWARDS;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &kt, sizeof kt}};
    CK_RV rv = p->f->C_FindObjectsInit(s, tmpl, 2);
    if (rv != CKR_OK) {
        P11_FAIL(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, "C_FindObjectsInit", rv);
        return rc;
    }
    /* Collect the handles first: attribute reads are allowed during a
     * search, but keeping the search short keeps the rules simple. */
    CK_OBJECT_HANDLE objs[BATCH];
    CK_ULONG found = 0;
    for (;;) {
        rv = p->f->C_FindObjects(s, objs, BATCH, &found);
        if (rv != CKR_OK) {
            P11_FAIL(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, "C_FindObjects", rv);
            break;
        }
        if (found == 0)
            break;
        for (CK_ULONG i = 0; i < found && rc == GOV_OK; i++) {
            char id[GOV_SIGNER_KID_SIZE + 1], actual[GOV_SIGNER_KID_SIZE];
            uint8_t pub[32];
            CK_ATTRIBUTE a = {CKA_ID, id, sizeof id - 1};
            if (p->f->C_GetAttributeValue(s, objs[i], &a, 1) != CKR_OK ||
                a.ulValueLen != GOV_SIGNER_KID_LEN)
                continue; /* not one of ours */
            id[GOV_SIGNER_KID_LEN] = '\0';
            if (!gov_signer_kid_valid(id) ||
                read_public(p, s, objs[i], pub, NULL, NULL, 0) != GOV_OK ||
                gov_signer_kid_of(pub, actual) != GOV_OK || strcmp(actual, id) != 0)
                continue;
            if ((rc = gov_keystore_list_add(kids, n, id)) != GOV_OK)
                rc = gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, rc, errbuf, errbuf_size,
                                     "pkcs11: too many keys on the token (at most %d listed) or "
                                     "out of memory",
                                     GOV_KEYSTORE_LIST_MAX);
        }
        if (rc != GOV_OK)
            break;
    }
    p->f->C_FindObjectsFinal(s);
    return rc;
}

static void p11_store_free(void *ctx) { p11_release(ctx); }

static const gov_keystore_ops_t p11_ops = {
    .name = "pkcs11",
    .generate = p11_generate,
    .signer = p11_signer,
    .list = p11_list,
    .free = p11_store_free,
};

/* --- open ---------------------------------------------------------------------------------- */

/* A token label is 32 bytes padded with spaces. */
static int label_matches(const CK_UTF8CHAR label[32], const char *want) {
    size_t n = strlen(want);
    if (n > 32 || memcmp(label, want, n) != 0)
        return 0;
    for (size_t i = n; i < 32; i++)
        if (label[i] != ' ')
            return 0;
    return 1;
}

static gov_err_t find_slot(p11_t *p, const char *label, gov_reason_t *why, char *errbuf,
                           size_t errbuf_size) {
    gov_err_t rc;
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    CK_RV rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv != CKR_OK) {
        P11_FAIL(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, "C_GetSlotList", rv);
        return rc;
    }
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (p->f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && label_matches(ti.label, label)) {
            p->slot = slots[i];
            return GOV_OK;
        }
    }
    return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_NOT_FOUND, errbuf,
                           errbuf_size, "pkcs11: no token labelled \"%s\" in %s", label, p->module);
}

gov_err_t gov_keystore_open_pkcs11(const char *module, const char *token_label, const char *pin,
                                   const char *pin_file, gov_keystore_t **out, gov_reason_t *why,
                                   char *errbuf, size_t errbuf_size) {
    gov_err_t rc;
    char *file_pin = NULL;
    p11_t *p = NULL;
    CK_RV rv;
    *out = NULL;
    if (module == NULL || token_label == NULL || (pin == NULL) == (pin_file == NULL))
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_CONFIG, errbuf,
                               errbuf_size,
                               "pkcs11: a module, a token label and one of PIN or PIN file are "
                               "needed");
    if (strlen(token_label) > 32)
        return gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_CONFIG, errbuf,
                               errbuf_size, "pkcs11: a token label has at most 32 bytes");
    if (pin_file != NULL) {
        if ((rc = gov_keystore_read_secret_file(pin_file, &file_pin, why, errbuf, errbuf_size)) !=
            GOV_OK)
            return rc;
        pin = file_pin;
    }
    p = gov_calloc(1, sizeof *p);
    if (p == NULL || (p->module = gov_strdup(module)) == NULL) {
        gov_free(p);
        p = NULL;
        rc = gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_NOMEM, errbuf,
                             errbuf_size, "out of memory");
        goto out;
    }
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->mu, NULL);
    p->login_session = CK_INVALID_HANDLE;
    void *dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        rc = gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, errbuf,
                             errbuf_size, "pkcs11: cannot load %s: %s", module, dlerror());
        goto out;
    }
    if (!module_claim(dl)) {
        dlclose(dl);
        rc = gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_EXISTS, errbuf,
                             errbuf_size,
                             "pkcs11: %s already backs a key store in this process (share it)",
                             module);
        goto out;
    }
    p->dl = dl;
    CK_C_GetFunctionList get_list = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
    if (get_list == NULL || (rv = get_list(&p->f)) != CKR_OK || p->f == NULL) {
        rc = gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, errbuf,
                             errbuf_size, "pkcs11: %s has no usable C_GetFunctionList", module);
        goto out;
    }
    CK_C_INITIALIZE_ARGS init = {.flags = CKF_OS_LOCKING_OK};
    if ((rv = p->f->C_Initialize(&init)) != CKR_OK) {
        P11_FAIL(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, "C_Initialize", rv);
        goto out;
    }
    p->initialized = 1;
    if ((rc = find_slot(p, token_label, why, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
                             &p->login_session);
    if (rv != CKR_OK) {
        P11_FAIL(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, "C_OpenSession", rv);
        goto out;
    }
    rv = p->f->C_Login(p->login_session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE) {
        rc = gov_reason_fail(why, GOV_REASON_PIN_INCORRECT, GOV_ERR_CONFIG, errbuf, errbuf_size,
                             "pkcs11: token \"%s\" refused the PIN (CKR_PIN_INCORRECT)",
                             token_label);
        goto out;
    }
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        P11_FAIL(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_UNAVAILABLE, "C_Login", rv);
        goto out;
    }
    p->logged_in = 1;
    if (pthread_key_create(&p->key, thread_session_close) != 0) {
        rc = gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_NOMEM, errbuf,
                             errbuf_size, "pkcs11: no thread key left");
        goto out;
    }
    p->key_made = 1;
    *out = gov_keystore_wrap(&p11_ops, p);
    p = NULL; /* stolen, freed on failure too */
    rc = *out != NULL ? GOV_OK
                      : gov_reason_fail(why, GOV_REASON_KEYSTORE_UNAVAILABLE, GOV_ERR_NOMEM,
                                        errbuf, errbuf_size, "out of memory");
out:
    p11_release(p);
    if (file_pin != NULL) {
        OPENSSL_cleanse(file_pin, strlen(file_pin));
        gov_free(file_pin);
    }
    return rc;
}
