/* gov_signer_rt.h - key stores: where signing keys are generated and kept.
 *
 * A key store hands out gov_signer_t handles (common/core/gov_signer.h) for
 * Ed25519 keys it generates or already holds, named by their kid (RFC 7638
 * thumbprint).  Two real backends, chosen by configuration:
 *
 *   file    (default) a key directory, GOV_SIGNER_KEY_DIR: one PKCS#8 PEM
 *           file per key, <dir>/<kid>.pem, created 0600.  Opening refuses a
 *           directory writable by group or others and a key file with any
 *           access for group or others, or not owned by the effective user
 *           (reason key_insecure).
 *   pkcs11  a PKCS#11 token (GOV_PKCS11_MODULE, dlopen'ed;
 *           GOV_PKCS11_TOKEN_LABEL; the user PIN from GOV_PKCS11_PIN or from
 *           GOV_PKCS11_PIN_FILE, which must not be open to group or others).
 *           Keys are generated on the token (CKM_EC_EDWARDS_KEY_PAIR_GEN,
 *           sensitive, not extractable) and sign there (CKM_EDDSA); CKA_ID and
 *           CKA_LABEL of both halves are the kid.
 *
 * The private key never leaves the backend through this API: nothing
 * returns, logs or prints it (the PIN row is a secret row, never printed).
 *
 * Errors: every failing call returns a gov_err_t, sets *why (may be NULL)
 * to a stable reason (gov_reason.h: key_insecure, key_not_found, key_exists,
 * key_invalid, keystore_unavailable, pin_incorrect, io_error, crypto_error)
 * and writes the detail (path, PKCS#11 return value name) to errbuf.
 *
 * Thread-safety: gov_keystore_generate, _signer and _list may be called from
 * any thread; the signers they return may sign from many threads at once
 * (PKCS#11: one session per thread, opened on first use and closed when the
 * thread exits or the store is released).  A signer keeps its store's
 * backend alive: signers and the store may be freed in any order, but not
 * while another thread still uses them.  One PKCS#11 key store per module
 * per process (a second open is refused: the token's login is per process).
 */
#ifndef GOV_SIGNER_RT_H
#define GOV_SIGNER_RT_H

#include <stddef.h>

#include "gov_config.h"
#include "gov_err.h"
#include "gov_reason.h"
#include "gov_signer.h"

typedef struct gov_keystore gov_keystore_t;

/* The backends, in the order of the signer_backend row's choices. */
enum { GOV_KEYSTORE_FILE = 0, GOV_KEYSTORE_PKCS11 = 1 };
extern const char *const gov_keystore_backends[]; /* {"file", "pkcs11", NULL} */

/* Largest number of kids gov_keystore_list returns (bounded listing). */
#define GOV_KEYSTORE_LIST_MAX 4096

/* What a key store is opened with.  The strings are borrowed. */
typedef struct gov_keystore_config {
    int backend;               /* GOV_KEYSTORE_FILE | GOV_KEYSTORE_PKCS11 */
    char *key_dir;             /* file: the key directory */
    char *pkcs11_module;       /* pkcs11: path of the module (.so) */
    char *pkcs11_token_label;  /* pkcs11: label of the token to use */
    char *pkcs11_pin;          /* pkcs11: user PIN (env GOV_PKCS11_PIN), or */
    char *pkcs11_pin_file;     /* pkcs11: a file holding it (one line) */
} gov_keystore_config_t;

/* The configuration rows of a binary that signs, filling a
 * gov_keystore_config_t *c (place them in the binary's table):
 *   static gov_keystore_config_t ks;
 *   static const gov_config_entry_t rows[] = { GOV_KEYSTORE_CONFIG_ROWS(&ks), ... };
 * Env vars: GOV_SIGNER_BACKEND, GOV_SIGNER_KEY_DIR, GOV_PKCS11_MODULE,
 * GOV_PKCS11_TOKEN_LABEL, GOV_PKCS11_PIN_FILE, GOV_PKCS11_PIN (secret). */
#define GOV_KEYSTORE_CONFIG_ROWS(c)                                                         \
    GOV_CFG_ENUM("signer_backend", "file", gov_keystore_backends,                           \
                 "where signing keys live: file (a key directory) or pkcs11 (a token)",     \
                 &(c)->backend),                                                            \
    GOV_CFG_STRING("signer_key_dir", NULL,                                                  \
                   "file backend: key directory (0700; one <kid>.pem per key, 0600)",       \
                   &(c)->key_dir),                                                          \
    GOV_CFG_STRING("pkcs11_module", NULL, "pkcs11 backend: path of the PKCS#11 module",     \
                   &(c)->pkcs11_module),                                                    \
    GOV_CFG_STRING("pkcs11_token_label", NULL, "pkcs11 backend: label of the token",        \
                   &(c)->pkcs11_token_label),                                               \
    GOV_CFG_STRING("pkcs11_pin_file", NULL,                                                 \
                   "pkcs11 backend: file holding the user PIN (mode 0600 or stricter)",     \
                   &(c)->pkcs11_pin_file),                                                  \
    GOV_CFG_STRING("pkcs11_pin", NULL,                                                      \
                   "pkcs11 backend: the user PIN (prefer pkcs11_pin_file; never printed)",  \
                   &(c)->pkcs11_pin, GOV_CFG_SECRET)

/* Opens the store cfg describes (cfg borrowed; nothing of it is kept but
 * copies).  On GOV_OK *out is a new store (gov_keystore_free).  Cost: file:
 * a stat (creating the directory 0700 when it is missing); pkcs11: loading
 * the module, C_Initialize, finding the token, one login. */
gov_err_t gov_keystore_open(const gov_keystore_config_t *cfg, gov_keystore_t **out,
                            gov_reason_t *why, char *errbuf, size_t errbuf_size);

/* The backend's name, "file" or "pkcs11" (static). */
const char *gov_keystore_backend(const gov_keystore_t *ks);

/* Generates a new Ed25519 key in the store; on GOV_OK *out is a new signer
 * for it (gov_signer_free), its kid the new key's name in the store. */
gov_err_t gov_keystore_generate(gov_keystore_t *ks, gov_signer_t **out, gov_reason_t *why,
                                char *errbuf, size_t errbuf_size);

/* Opens the key named kid (borrowed): on GOV_OK *out is a new signer.
 * key_not_found when the store has no such key (a kid of the wrong shape is
 * not found either); key_invalid when what is stored under that name is not
 * an Ed25519 key whose thumbprint is kid. */
gov_err_t gov_keystore_signer(gov_keystore_t *ks, const char *kid, gov_signer_t **out,
                              gov_reason_t *why, char *errbuf, size_t errbuf_size);

/* Lists the kids of the store's keys, sorted: on GOV_OK *kids is a new
 * array of *n new strings (gov_keystore_list_free), NULL when *n is 0.  At
 * most GOV_KEYSTORE_LIST_MAX (GOV_ERR_TOO_LARGE beyond). */
gov_err_t gov_keystore_list(gov_keystore_t *ks, char ***kids, size_t *n, gov_reason_t *why,
                            char *errbuf, size_t errbuf_size);
void gov_keystore_list_free(char **kids, size_t n);

/* Releases the store (signers already handed out stay usable).  NULL is
 * safe. */
void gov_keystore_free(gov_keystore_t *ks);

/* --- the backends' own entry points (gov_keystore_open calls them) --------- */

/* The file backend over directory dir (borrowed, copied). */
gov_err_t gov_keystore_open_dir(const char *dir, gov_keystore_t **out, gov_reason_t *why,
                                char *errbuf, size_t errbuf_size);

/* The PKCS#11 backend.  pin or pin_file (exactly one non-NULL). */
gov_err_t gov_keystore_open_pkcs11(const char *module, const char *token_label, const char *pin,
                                   const char *pin_file, gov_keystore_t **out, gov_reason_t *why,
                                   char *errbuf, size_t errbuf_size);

/* Reads a secret file of one line (a PIN): refused (key_insecure) when it is
 * open to group or others or not owned by the effective user; a trailing
 * "\n" or "\r\n" is stripped.  On GOV_OK *out is a new string the caller
 * cleanses and frees.  At most 256 bytes. */
gov_err_t gov_keystore_read_secret_file(const char *path, char **out, gov_reason_t *why,
                                        char *errbuf, size_t errbuf_size);

/* --- for the backends only ------------------------------------------------- */

typedef struct gov_keystore_ops {
    const char *name;
    gov_err_t (*generate)(void *ctx, gov_signer_t **out, gov_reason_t *why, char *errbuf,
                          size_t errbuf_size);
    gov_err_t (*signer)(void *ctx, const char *kid, gov_signer_t **out, gov_reason_t *why,
                        char *errbuf, size_t errbuf_size);
    gov_err_t (*list)(void *ctx, char ***kids, size_t *n, gov_reason_t *why, char *errbuf,
                      size_t errbuf_size);
    void (*free)(void *ctx);
} gov_keystore_ops_t;

/* Makes a store of a backend: ops borrowed (static), ctx STOLEN (freed with
 * ops->free, also on failure).  NULL on allocation failure. */
gov_keystore_t *gov_keystore_wrap(const gov_keystore_ops_t *ops, void *ctx);

/* Adds a copy of kid to a growing sorted-later list (the backends' list
 * helper): GOV_ERR_TOO_LARGE past GOV_KEYSTORE_LIST_MAX, GOV_ERR_NOMEM. */
gov_err_t gov_keystore_list_add(char ***kids, size_t *n, const char *kid);
/* Sorts the list (strcmp order). */
void gov_keystore_list_sort(char **kids, size_t n);

/* The one reader of private files (key files, PIN files): opens path
 * without following a symbolic link, checks the open file (a regular file
 * owned by the effective user, no access for group or others: else
 * GOV_ERR_CONFIG with key_insecure) and reads at most max bytes of it.  On
 * GOV_OK *out is a new buffer of max + 1 bytes (NUL-terminated, *out_len
 * bytes) the caller cleanses (OPENSSL_cleanse over max + 1) and frees;
 * on failure nothing is left in memory.  what ("key file") starts the
 * messages.  A missing file is GOV_ERR_NOT_FOUND (keystore_unavailable). */
gov_err_t gov_keystore_read_private(const char *path, const char *what, size_t max, char **out,
                                    size_t *out_len, gov_reason_t *why, char *errbuf,
                                    size_t errbuf_size);

#endif /* GOV_SIGNER_RT_H */
