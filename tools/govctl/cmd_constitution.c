/* cmd_constitution.c - govctl checksum | keygen | sign | verify | publish.
 *
 * The operator's side of signed constitutions (docs/contracts.md).  Every
 * rule lives in libgov and is only called from here: gov_canon computes
 * checksums, gov_constitution verifies (so `govctl verify` answers exactly
 * what gov-constitution would), gov_bundle checks the shape, finds the
 * document's raw bytes and builds the ConstitutionBundle event, and
 * govctl_publish_event (publish.c) puts it on constitution.bundles.  What
 * this file adds is file handling: bounded reads, keys written with O_EXCL
 * and the right modes, and bundles rewritten atomically (temp file, fsync,
 * rename).
 *
 * The document of a bundle is never re-serialized.  Its number spellings
 * ("1e-7", "0.10") and escapes are what the signer hashed, so `sign` splices
 * the raw text found by gov_bundle_extract_document_span into its output
 * and re-reads that output with gov_bundle_parse before writing it: if the
 * span did not survive byte for byte, nothing is written.
 *
 * What it does not do: verify on publish (gov-constitution does), read
 * encrypted keys (no passphrase prompt: the CLI must never block on a tty),
 * print key material.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_buf.h"
#include "gov_bundle.h"
#include "gov_canon.h"
#include "gov_constitution.h"
#include "gov_events.h"
#include "gov_file.h"
#include "gov_hash.h"
#include "gov_time.h"
#include "gov_util.h"
#include "govctl.h"

/* Largest bundle, document or trust file read (the Avro limit of 1 MiB per
 * message bounds what can be published long before this). */
#define GOVCTL_MAX_INPUT (8u << 20)
/* Largest private key file: an Ed25519 PKCS#8 PEM is 119 bytes. */
#define GOVCTL_MAX_KEY_FILE (64u << 10)
#define GOVCTL_MAX_SOURCE 256

#define TOPIC_BUNDLES "constitution.bundles"

#define DEFAULT_CANONICALIZATION "somabrain-json"

/* --- shared helpers ---------------------------------------------------------- */

/* A bad option seen by getopt_long (optstring starts with ':', opterr 0). */
static int bad_option(int argc, char **argv, int c, const char *help) {
    char shortopt[3] = {'-', (char)(optopt ? optopt : '?'), 0};
    const char *opt = optind >= 1 && optind - 1 < argc && argv[optind - 1][0] == '-'
                          ? argv[optind - 1] : shortopt;
    if (c == ':')
        return govctl_usage("%s  [option '%s' needs a value]", help, opt);
    return govctl_usage("%s  [unknown option '%s']", help, opt);
}

/* Signer ids have no '/', so an id is also a safe file name stem. */
#define signer_id_valid gov_signer_id_valid

/* Reads path ("-": stdin) into new memory *out (gov_free; NUL-terminated,
 * *out_len bytes without it), at most max bytes.  A secret (a private key)
 * is read into one buffer of max + 1 bytes that is never reallocated, so the
 * caller can cleanse the only copy.  Returns GOVCTL_OK or, after printing
 * io_error / too_large, GOVCTL_FAIL.  Cost: O(file size). */
static int slurp(const char *path, size_t max, int secret, char **out, size_t *out_len) {
    char eb[1024];
    unsigned flags = GOV_FILE_DASH_IS_STDIN | GOV_FILE_ALLOW_STREAM | (secret ? GOV_FILE_SECRET : 0);
    gov_err_t err = gov_file_read(path, max, flags, out, out_len, eb, sizeof eb);
    return err == GOV_OK ? GOVCTL_OK : govctl_fail_clean(govctl_file_error_code(err), "%s", eb);
}

/* fsyncs the directory holding path, so a created or renamed entry is
 * durable.  Best effort: some file systems refuse fsync on directories. */
static void fsync_parent(const char *path) {
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Replaces target with data atomically: a temp file in the same directory,
 * written and fsynced, then renamed over target (a symlink is followed, so
 * the file it points to is replaced).  The new file keeps target's mode, or
 * gets 0666 & ~umask when target does not exist yet.  On failure target is
 * untouched and the temp file removed. */
int govctl_write_atomically(const char *target, const char *data, size_t len) {
    char path[PATH_MAX], tmp[PATH_MAX + 32];
    struct stat st;
    mode_t mode;
    if (realpath(target, path) == NULL) {
        if (errno != ENOENT)
            return govctl_fail_clean(GOV_REASON_IO_ERROR, "cannot resolve %s: %s", target,
                                     strerror(errno));
        if (snprintf(path, sizeof path, "%s", target) >= (int)sizeof path)
            return govctl_fail_clean(GOV_REASON_IO_ERROR, "path too long: %s", target);
    }
    if (stat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return govctl_fail_clean(GOV_REASON_IO_ERROR, "%s is not a regular file", path);
        mode = st.st_mode & 07777;
    } else {
        mode_t um = umask(0);
        umask(um);
        mode = 0666 & ~um;
    }
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(tmp, sizeof tmp, "%.*s/.%s.govctl-XXXXXX", (int)(slash - path), path, slash + 1);
    else
        snprintf(tmp, sizeof tmp, ".%s.govctl-XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return govctl_fail_clean(GOV_REASON_IO_ERROR,
                                 "cannot create a temporary file next to %s: %s", path,
                                 strerror(errno));
    if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return govctl_fail_clean(GOV_REASON_IO_ERROR, "cannot write %s: %s", tmp, strerror(e));
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return govctl_fail_clean(GOV_REASON_IO_ERROR, "cannot replace %s: %s", path, strerror(e));
    }
    fsync_parent(path);
    return GOVCTL_OK;
}

/* --- checksum ---------------------------------------------------------------- */

int govctl_cmd_checksum(int argc, char **argv) {
    static const char *help =
        "govctl checksum [--canonicalization jcs|somabrain-json] [--hash-alg sha3-512|sha256] "
        "[--print-canonical] FILE|-";
    static const struct option opts[] = {
        {"canonicalization", required_argument, NULL, 'c'},
        {"hash-alg", required_argument, NULL, 'a'},
        {"print-canonical", no_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    const char *canon_name = DEFAULT_CANONICALIZATION, *alg = GOV_HASH_DEFAULT_NAME;
    int print_canonical = 0, c;
    gov_canon_t kind;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:a:p", opts, NULL)) != -1) {
        switch (c) {
        case 'c': canon_name = optarg; break;
        case 'a': alg = optarg; break;
        case 'p': print_canonical = 1; break;
        default: return bad_option(argc, argv, c, help);
        }
    }
    if (gov_canon_from_name(canon_name, &kind) != 0)
        return govctl_usage("%s  [unknown canonicalization '%s']", help, canon_name);
    if (gov_hash_by_name(alg) == NULL)
        return govctl_usage("%s  [unknown hash algorithm '%s']", help, alg);
    if (argc - optind != 1)
        return govctl_usage("%s  [exactly one FILE is required]", help);
    const char *path = argv[optind];

    char *text = NULL, *canon = NULL, eb[256] = "";
    size_t len = 0, canon_len = 0;
    json_t *doc = NULL;
    int rc = slurp(path, GOVCTL_MAX_INPUT, 0, &text, &len);
    if (rc != GOVCTL_OK)
        return rc;
    /* Each gov_canon step names its reason as a value, which becomes the
     * printed code; errbuf holds the detail. */
    char hex[GOV_CANON_HEX_MAX];
    gov_reason_t why = GOV_REASON_NONE;
    gov_err_t err = gov_canon_parse(text, len, &doc, &why, eb, sizeof eb);
    if (err == GOV_OK && print_canonical)
        err = gov_canon_serialize(doc, kind, &canon, &canon_len, &why, eb, sizeof eb);
    else if (err == GOV_OK)
        err = gov_canon_checksum(doc, kind, alg, hex, &why, eb, sizeof eb);
    if (err != GOV_OK) {
        rc = govctl_fail_clean(why, "%s: %s", path, eb);
        goto out;
    }
    if (print_canonical)
        fwrite(canon, 1, canon_len, stdout);
    else
        printf("%s\n", hex);
    rc = govctl_finish_stdout(GOVCTL_OK);
out:
    json_decref(doc);
    gov_free(canon);
    gov_free(text);
    return rc;
}

/* --- keygen ------------------------------------------------------------------ */

/* Writes the PEM of key (private: PKCS#8, else SubjectPublicKeyInfo) to fd
 * and fsyncs it.  OpenSSL cleanses its own encoding buffers.  Returns 0/-1. */
static int write_pem(int fd, EVP_PKEY *key, int private_key) {
    BIO *bio = BIO_new_fd(fd, BIO_NOCLOSE);
    int ok = bio != NULL &&
             (private_key ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
                          : PEM_write_bio_PUBKEY(bio, key)) == 1 &&
             BIO_flush(bio) == 1;
    BIO_free(bio);
    return ok && fsync(fd) == 0 ? 0 : -1;
}

int govctl_cmd_keygen(int argc, char **argv) {
    static const char *help = "govctl keygen --signer ID --out DIR";
    static const struct option opts[] = {
        {"signer", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    const char *signer = NULL, *dir = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":s:o:", opts, NULL)) != -1) {
        switch (c) {
        case 's': signer = optarg; break;
        case 'o': dir = optarg; break;
        default: return bad_option(argc, argv, c, help);
        }
    }
    if (signer == NULL || dir == NULL || dir[0] == 0)
        return govctl_usage("%s  [--signer and --out are required]", help);
    if (!signer_id_valid(signer))
        return govctl_usage("%s  [signer id must be 1..%d chars of A-Z a-z 0-9 _ - . @ :]",
                            help, GOV_SIGNER_ID_MAX);
    if (optind != argc)
        return govctl_usage("%s  [unexpected argument '%s']", help, argv[optind]);

    char dirbuf[PATH_MAX];
    if (snprintf(dirbuf, sizeof dirbuf, "%s", dir) >= (int)sizeof dirbuf)
        return govctl_fail_clean(GOV_REASON_IO_ERROR, "path too long: %s", dir);
    for (size_t n = strlen(dirbuf); n > 1 && dirbuf[n - 1] == '/'; n--)
        dirbuf[n - 1] = 0; /* "keys/" -> "keys", so the printed paths are clean */
    dir = dirbuf;
    const char *sep = strcmp(dir, "/") == 0 ? "" : "/";
    char keypath[PATH_MAX], pubpath[PATH_MAX];
    if (snprintf(keypath, sizeof keypath, "%s%s%s.key", dir, sep, signer) >= (int)sizeof keypath ||
        snprintf(pubpath, sizeof pubpath, "%s%s%s.pub", dir, sep, signer) >= (int)sizeof pubpath)
        return govctl_fail_clean(GOV_REASON_IO_ERROR, "path too long under %s", dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return govctl_fail_clean(GOV_REASON_IO_ERROR, "cannot create %s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return govctl_fail_clean(GOV_REASON_IO_ERROR, "%s is not a directory", dir);

    int rc = GOVCTL_FAIL, fdk = -1, fdp = -1, created_key = 0, created_pub = 0;
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (kc == NULL || EVP_PKEY_keygen_init(kc) != 1 || EVP_PKEY_keygen(kc, &key) != 1) {
        rc = govctl_fail_clean(GOV_REASON_CRYPTO_ERROR, "Ed25519 key generation failed");
        goto out;
    }
    /* O_EXCL: an existing private key is never overwritten (nor is a key
     * created through a planted symlink). */
    fdk = open(keypath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fdk < 0) {
        rc = errno == EEXIST ? govctl_fail_clean(GOV_REASON_KEY_EXISTS,
                                                 "%s exists; it is never overwritten", keypath)
                             : govctl_fail_clean(GOV_REASON_IO_ERROR, "cannot create %s: %s",
                                                 keypath, strerror(errno));
        goto out;
    }
    created_key = 1;
    /* A stale public key next to a new private key would mislead whoever
     * builds the trust file, so the pair is created together or not at all. */
    fdp = open(pubpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fdp < 0) {
        rc = errno == EEXIST ? govctl_fail_clean(GOV_REASON_KEY_EXISTS,
                                                 "%s exists; it is never overwritten", pubpath)
                             : govctl_fail_clean(GOV_REASON_IO_ERROR, "cannot create %s: %s",
                                                 pubpath, strerror(errno));
        goto out;
    }
    created_pub = 1;
    /* Exact modes whatever the umask. */
    if (fchmod(fdk, 0600) != 0 || fchmod(fdp, 0644) != 0) {
        rc = govctl_fail_clean(GOV_REASON_IO_ERROR, "cannot set file modes in %s: %s", dir,
                               strerror(errno));
        goto out;
    }
    if (write_pem(fdk, key, 1) != 0) {
        rc = govctl_fail_clean(GOV_REASON_IO_ERROR, "cannot write %s", keypath);
        goto out;
    }
    if (write_pem(fdp, key, 0) != 0) {
        rc = govctl_fail_clean(GOV_REASON_IO_ERROR, "cannot write %s", pubpath);
        goto out;
    }
    if (close(fdk) != 0 || close(fdp) != 0) {
        fdk = fdp = -1;
        rc = govctl_fail_clean(GOV_REASON_IO_ERROR, "cannot close the key files in %s: %s", dir,
                               strerror(errno));
        goto out;
    }
    fdk = fdp = -1;
    fsync_parent(keypath);
    printf("%s\n%s\n", keypath, pubpath);
    rc = govctl_finish_stdout(GOVCTL_OK);
out:
    if (fdk >= 0)
        close(fdk);
    if (fdp >= 0)
        close(fdp);
    if (rc != GOVCTL_OK) {
        if (created_key)
            unlink(keypath);
        if (created_pub)
            unlink(pubpath);
    }
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(kc);
    ERR_clear_error();
    return rc;
}

/* --- sign -------------------------------------------------------------------- */

/* Loads an Ed25519 private key from a PEM file ("-": stdin) into *out
 * (gov_events_pem_private_key, the parser gov-identity's rotator uses). */
int govctl_load_private_key(const char *path, EVP_PKEY **out) {
    char *pem = NULL, eb[512] = "";
    size_t len = 0;
    gov_reason_t why = GOV_REASON_NONE;
    *out = NULL;
    int rc = slurp(path, GOVCTL_MAX_KEY_FILE, 1, &pem, &len);
    if (rc != GOVCTL_OK)
        return rc;
    gov_err_t err = gov_events_pem_private_key(pem, len, path, out, &why, eb, sizeof eb);
    OPENSSL_cleanse(pem, GOVCTL_MAX_KEY_FILE + 1);
    gov_free(pem);
    return err == GOV_OK ? GOVCTL_OK : govctl_fail_clean(why, "%s", eb);
}

/* Computes the checksum of the raw document text the way
 * gov_constitution_verify does (gov_canon_parse of the text, then
 * gov_canon_checksum).  On failure prints the reject code of the rule that
 * verify would apply and returns GOVCTL_FAIL. */
static int document_checksum(const char *doc, size_t doc_len, const char *canon_name,
                             const char *alg, char hex[GOV_CANON_HEX_MAX]) {
    gov_canon_t kind;
    json_t *parsed = NULL;
    char eb[256] = "";
    if (gov_canon_from_name(canon_name, &kind) != 0)
        return govctl_fail_clean(GOV_REASON_UNKNOWN_CANONICALIZATION,
                                 "canonicalization \"%.40s\" is not jcs or somabrain-json",
                                 canon_name ? canon_name : "(not a string)");
    if (gov_hash_by_name(alg) == NULL)
        return govctl_fail_clean(GOV_REASON_UNKNOWN_HASH_ALGORITHM,
                                 "hash_alg \"%.40s\" is not " GOV_HASH_NAMES_TEXT,
                                 alg ? alg : "(not a string)");
    gov_reason_t why = GOV_REASON_NONE;
    gov_err_t err = gov_canon_parse(doc, doc_len, &parsed, &why, eb, sizeof eb);
    if (err == GOV_ERR_NOMEM)
        return govctl_fail_clean(GOV_REASON_INTERNAL_ERROR, "out of memory");
    if (err != GOV_OK || !json_is_object(parsed)) {
        json_decref(parsed);
        return govctl_fail_clean(GOV_REASON_MALFORMED_DOCUMENT, "document: %s%s%s",
                                 err != GOV_OK ? gov_reason_code(why) : "",
                                 err != GOV_OK ? ": " : "",
                                 err != GOV_OK ? eb : "not a JSON object");
    }
    err = gov_canon_checksum(parsed, kind, alg, hex, &why, eb, sizeof eb);
    json_decref(parsed);
    if (err == GOV_ERR_NOMEM)
        return govctl_fail_clean(GOV_REASON_INTERNAL_ERROR,
                                 "document cannot be canonicalized: %s: %s", gov_reason_code(why),
                                 eb);
    if (err != GOV_OK)
        return govctl_fail_clean(GOV_REASON_MALFORMED_DOCUMENT,
                                 "document cannot be canonicalized: %s: %s", gov_reason_code(why),
                                 eb);
    return GOVCTL_OK;
}

/* Ed25519 signature of the ASCII checksum hex, as lowercase hex; the
 * signature is checked with the same key before it is used, so a faulty
 * computation is never written out. */
int govctl_sign_hex(EVP_PKEY *key, const char *checksum, char out[129]) {
    unsigned char sig[64];
    size_t sl = sizeof sig;
    int ok = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
        EVP_DigestSign(ctx, sig, &sl, (const unsigned char *)checksum, strlen(checksum)) == 1 &&
        sl == sizeof sig) {
        EVP_MD_CTX_free(ctx);
        ctx = EVP_MD_CTX_new();
        ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig, sl, (const unsigned char *)checksum,
                              strlen(checksum)) == 1;
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    if (!ok)
        return govctl_fail_clean(GOV_REASON_CRYPTO_ERROR, "Ed25519 signing failed");
    gov_hex_encode(sig, sizeof sig, out);
    return GOVCTL_OK;
}

/* Appends the compact JSON text of v (borrowed); an allocation failure
 * becomes the buffer's sticky error. */
static void put_json(gov_buf_t *o, const json_t *v) {
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (s == NULL) {
        if (o->err == GOV_OK)
            o->err = GOV_ERR_NOMEM;
        return;
    }
    gov_buf_puts(o, s);
    gov_free(s);
}

/* The bundle as text: members in their order, one per line; "document" is
 * the raw text doc[0..doc_len) spliced in unchanged, the other members are
 * re-serialized (they are not signed), signatures one per line.  Returns new
 * memory (gov_free) or NULL when out of memory. */
static char *render_bundle(const json_t *b, const char *doc, size_t doc_len, size_t *out_len) {
    gov_buf_t o;
    const char *k;
    size_t klen, i = 0, n = json_object_size(b);
    json_t *v;
    char *text = NULL;
    gov_buf_init(&o, 0);
    gov_buf_puts(&o, "{\n");
    json_object_keylen_foreach((json_t *)b, k, klen, v) {
        json_t *name = json_stringn(k, klen);
        gov_buf_puts(&o, "  ");
        put_json(&o, name);
        json_decref(name);
        gov_buf_puts(&o, ": ");
        if (klen == 8 && memcmp(k, "document", 8) == 0) {
            gov_buf_put(&o, doc, doc_len);
        } else if (klen == 10 && memcmp(k, "signatures", 10) == 0 && json_is_array(v) &&
                   json_array_size(v) > 0) {
            gov_buf_puts(&o, "[\n");
            for (size_t j = 0; j < json_array_size(v); j++) {
                gov_buf_puts(&o, "    ");
                put_json(&o, json_array_get(v, j));
                gov_buf_puts(&o, j + 1 < json_array_size(v) ? ",\n" : "\n");
            }
            gov_buf_puts(&o, "  ]");
        } else {
            put_json(&o, v);
        }
        gov_buf_puts(&o, ++i < n ? ",\n" : "\n");
    }
    gov_buf_puts(&o, "}\n");
    if (gov_buf_finish(&o, &text, out_len) != GOV_OK)
        return NULL;
    return text;
}

/* Sets member name of b to a default string when it is absent. */
static int set_default(json_t *b, const char *name, const char *value) {
    if (json_object_get(b, name) != NULL)
        return 0;
    return json_object_set_new(b, name, json_string(value));
}

/* The signatures with signer's entry replaced by (or, when absent, followed
 * by) {signer_id, algorithm: "ed25519", signature}; a signer listed more
 * than once keeps one entry.  Returns a new array, or NULL. */
json_t *govctl_signatures_with(const json_t *old, const char *signer, const char *sig_hex) {
    json_t *sigs = json_array();
    json_t *mine = json_pack("{s:s, s:s, s:s}", "signer_id", signer, "algorithm", "ed25519",
                             "signature", sig_hex);
    int placed = 0;
    if (sigs == NULL || mine == NULL)
        goto fail;
    for (size_t i = 0; i < json_array_size(old); i++) {
        json_t *s = json_array_get(old, i);
        const char *id = json_string_value(json_object_get(s, "signer_id"));
        if (id && strcmp(id, signer) == 0) {
            if (!placed && json_array_append(sigs, mine) != 0)
                goto fail;
            placed = 1;
        } else if (json_array_append(sigs, s) != 0) {
            goto fail;
        }
    }
    if (!placed && json_array_append(sigs, mine) != 0)
        goto fail;
    json_decref(mine);
    return sigs;
fail:
    json_decref(mine);
    json_decref(sigs);
    return NULL;
}

static int sign_bundle(const char *path, const char *target, const char *signer, EVP_PKEY *key) {
    char *body = NULL, *text = NULL, eb[512] = "";
    char hex[GOV_CANON_HEX_MAX], sig_hex[129];
    size_t len = 0, doc_off = 0, doc_len = 0, text_len = 0, chk_off = 0, chk_len = 0;
    json_t *b = NULL, *chk = NULL;
    json_error_t je;
    gov_reason_t reason = GOV_REASON_NONE;
    int rc = slurp(path, GOVCTL_MAX_INPUT, 0, &body, &len);
    if (rc != GOVCTL_OK)
        return rc;
    rc = GOVCTL_FAIL;

    /* The bundle as gov_bundle_parse reads it (jansson, duplicate keys
     * refused; then the strict scanner for the document's raw bytes), but
     * before the shape check: an unsigned bundle may lack checksum and
     * signatures, which are completed here. */
    memset(&je, 0, sizeof je);
    b = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (b == NULL) {
        rc = govctl_fail_clean(GOV_REASON_INVALID_JSON, "%s: not JSON: %s at byte %d", path,
                               je.text, je.position);
        goto out;
    }
    if (!json_is_object(b)) {
        rc = govctl_fail_clean(GOV_REASON_INVALID_BUNDLE, "%s: bundle is not a JSON object", path);
        goto out;
    }
    gov_err_t err = gov_bundle_extract_document_span(body, len, &doc_off, &doc_len, eb, sizeof eb);
    if (err != GOV_OK) {
        rc = govctl_fail_clean(err == GOV_ERR_PARSE ? GOV_REASON_INVALID_JSON
                                                    : GOV_REASON_INVALID_BUNDLE,
                               "%s: %s", path, eb);
        goto out;
    }
    if (set_default(b, "canonicalization", DEFAULT_CANONICALIZATION) != 0 ||
        set_default(b, "hash_alg", GOV_HASH_DEFAULT_NAME) != 0) {
        rc = govctl_fail_clean(GOV_REASON_INTERNAL_ERROR, "out of memory");
        goto out;
    }

    /* A signer never vouches for what it did not check: the checksum is
     * always recomputed from the document text. */
    const char *canon_name = json_string_value(json_object_get(b, "canonicalization"));
    const char *alg = json_string_value(json_object_get(b, "hash_alg"));
    if ((rc = document_checksum(body + doc_off, doc_len, canon_name, alg, hex)) != GOVCTL_OK)
        goto out;
    rc = GOVCTL_FAIL;
    json_t *stated = json_object_get(b, "checksum");
    if (stated == NULL) {
        if (json_object_set_new(b, "checksum", json_string(hex)) != 0) {
            rc = govctl_fail_clean(GOV_REASON_INTERNAL_ERROR, "out of memory");
            goto out;
        }
    } else if (!json_is_string(stated)) {
        rc = govctl_fail_clean(GOV_REASON_INVALID_BUNDLE, "%s: member \"checksum\" is not a string",
                               path);
        goto out;
    } else if (strcmp(json_string_value(stated), hex) != 0) {
        if (strcasecmp(json_string_value(stated), hex) == 0)
            rc = govctl_fail_clean(GOV_REASON_MALFORMED_CHECKSUM,
                                   "%s: the checksum must be lowercase hex", path);
        else
            rc = govctl_fail_clean(GOV_REASON_CHECKSUM_MISMATCH,
                                   "%s: %s of the %s form of the document is %s, the bundle "
                                   "states %.140s; refusing to sign",
                                   path, alg, canon_name, hex, json_string_value(stated));
        goto out;
    }
    if (json_object_get(b, "signatures") == NULL &&
        json_object_set_new(b, "signatures", json_array()) != 0) {
        rc = govctl_fail_clean(GOV_REASON_INTERNAL_ERROR, "out of memory");
        goto out;
    }
    if (gov_bundle_check_shape(b, NULL, &reason, eb, sizeof eb) != GOV_OK) {
        rc = govctl_fail_clean(reason, "%s: %s", path, eb);
        goto out;
    }

    if ((rc = govctl_sign_hex(key, hex, sig_hex)) != GOVCTL_OK)
        goto out;
    rc = GOVCTL_FAIL;
    json_t *sigs = govctl_signatures_with(json_object_get(b, "signatures"), signer, sig_hex);
    if (sigs == NULL || json_object_set_new(b, "signatures", sigs) != 0) {
        rc = govctl_fail_clean(GOV_REASON_INTERNAL_ERROR, "out of memory");
        goto out;
    }
    if ((text = render_bundle(b, body + doc_off, doc_len, &text_len)) == NULL) {
        rc = govctl_fail_clean(GOV_REASON_INTERNAL_ERROR, "out of memory");
        goto out;
    }

    /* What is written must read back as this bundle with the same document
     * bytes; anything else is a bug here, and then nothing is written. */
    err = gov_bundle_parse(text, text_len, NULL, &chk, &chk_off, &chk_len, &reason, eb, sizeof eb);
    if (err != GOV_OK || chk_len != doc_len || memcmp(text + chk_off, body + doc_off, doc_len) != 0 ||
        !json_equal(chk, b)) {
        rc = govctl_fail_clean(GOV_REASON_INTERNAL_ERROR,
                               "the signed bundle did not read back intact (%s); nothing was "
                               "written",
                               err != GOV_OK ? eb : "content differs");
        goto out;
    }
    if ((rc = govctl_write_atomically(target, text, text_len)) != GOVCTL_OK)
        goto out;
    printf("signed %s signer=%s checksum=%s signatures=%zu\n", target, signer, hex,
           json_array_size(json_object_get(b, "signatures")));
    rc = govctl_finish_stdout(GOVCTL_OK);
out:
    json_decref(chk);
    json_decref(b);
    gov_free(text);
    gov_free(body);
    return rc;
}

int govctl_sign_options(int argc, char **argv, const char *help, const char *file_opt,
                        const char **signer, const char **keypath, const char **file_val) {
    const struct option opts[] = {
        {"signer", required_argument, NULL, 's'},
        {"key", required_argument, NULL, 'k'},
        {file_opt, required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    int c;
    *signer = *keypath = *file_val = NULL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":s:k:o:", opts, NULL)) != -1) {
        switch (c) {
        case 's': *signer = optarg; break;
        case 'k': *keypath = optarg; break;
        case 'o': *file_val = optarg; break;
        default: return bad_option(argc, argv, c, help);
        }
    }
    if (*signer == NULL || *keypath == NULL)
        return govctl_usage("%s  [--signer and --key are required]", help);
    if (!signer_id_valid(*signer))
        return govctl_usage("%s  [signer id must be 1..%d chars of A-Z a-z 0-9 _ - . @ :]",
                            help, GOV_SIGNER_ID_MAX);
    return GOVCTL_OK;
}

int govctl_cmd_sign(int argc, char **argv) {
    static const char *help = "govctl sign --signer ID --key PRIV.pem [--out FILE] BUNDLE.json";
    const char *signer, *keypath, *out;
    int orc = govctl_sign_options(argc, argv, help, "out", &signer, &keypath, &out);
    if (orc != GOVCTL_OK)
        return orc;
    if (out != NULL && out[0] == 0)
        return govctl_usage("%s  [--out needs a file name]", help);
    if (argc - optind != 1)
        return govctl_usage("%s  [exactly one BUNDLE.json is required]", help);
    const char *path = argv[optind];
    EVP_PKEY *key = NULL;
    int rc = govctl_load_private_key(keypath, &key);
    if (rc != GOVCTL_OK)
        return rc;
    rc = sign_bundle(path, out ? out : path, signer, key);
    EVP_PKEY_free(key);
    return rc;
}

/* --- verify ------------------------------------------------------------------ */

/* tenant: the tenant to verify for; NULL = the bundle's own "tenant". */
static int verify_bundle(const char *trust_path, const char *path, const char *tenant,
                         const gov_constitution_state_t *state) {
    char *trust_text = NULL, *body = NULL, eb[512] = "";
    size_t trust_len = 0, len = 0, doc_off = 0, doc_len = 0;
    gov_trust_t *trust = NULL;
    json_t *b = NULL;
    gov_bundle_sig_t *sigs = NULL;
    gov_reason_t reason = GOV_REASON_NONE;
    gov_verdict_t v;
    int have_verdict = 0;
    int rc = slurp(trust_path, GOVCTL_MAX_INPUT, 0, &trust_text, &trust_len);
    if (rc != GOVCTL_OK)
        return rc;
    rc = GOVCTL_FAIL;
    gov_err_t err = gov_trust_parse(trust_text, trust_len, &trust, eb, sizeof eb);
    if (err != GOV_OK) {
        rc = govctl_fail_clean(err == GOV_ERR_NOMEM ? GOV_REASON_INTERNAL_ERROR
                                                    : GOV_REASON_TRUST_INVALID,
                               "%s: %s", trust_path, err == GOV_ERR_NOMEM ? "out of memory" : eb);
        goto out;
    }
    if ((rc = slurp(path, GOVCTL_MAX_INPUT, 0, &body, &len)) != GOVCTL_OK)
        goto out;
    rc = GOVCTL_FAIL;
    err = gov_bundle_parse(body, len, NULL, &b, &doc_off, &doc_len, &reason, eb, sizeof eb);
    if (err != GOV_OK) {
        rc = govctl_fail_clean(reason, "%s: %s", path, eb);
        goto out;
    }
    const json_t *arr = json_object_get(b, "signatures");
    size_t nsigs = json_array_size(arr);
    if (nsigs > 0 && (sigs = gov_calloc(nsigs, sizeof *sigs)) == NULL) {
        rc = govctl_fail_clean(GOV_REASON_INTERNAL_ERROR, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nsigs; i++) {
        const json_t *s = json_array_get(arr, i);
        sigs[i].signer_id = json_string_value(json_object_get(s, "signer_id"));
        sigs[i].algorithm = json_string_value(json_object_get(s, "algorithm"));
        sigs[i].signature = json_string_value(json_object_get(s, "signature"));
    }
    gov_bundle_in_t in = {
        .tenant = tenant ? tenant : json_string_value(json_object_get(b, "tenant")),
        .document_json = body + doc_off,
        .document_len = doc_len,
        .canonicalization = json_string_value(json_object_get(b, "canonicalization")),
        .hash_alg = json_string_value(json_object_get(b, "hash_alg")),
        .checksum = json_string_value(json_object_get(b, "checksum")),
        .sigs = sigs,
        .nsigs = nsigs,
    };
    err = gov_constitution_verify(&in, trust, state, &v);
    have_verdict = 1;
    if (err != GOV_OK) {
        rc = govctl_fail_clean(GOV_REASON_INTERNAL_ERROR, "%s: %s", path, gov_err_str(err));
        goto out;
    }
    if (v.outcome == GOV_VERIFY_REJECT) {
        rc = govctl_fail_clean(v.reason, "%s: %s", path, v.detail);
        goto out;
    }
    /* DUPLICATE: valid, and already what the tenant has (a replay): the
     * processor would change nothing and reject nothing. */
    printf("%s version=%s checksum=%s signers=", v.outcome == GOV_VERIFY_ACCEPT ? "OK" : "DUPLICATE",
           v.version, in.checksum);
    for (size_t i = 0; i < v.nsigners; i++)
        printf("%s%s", i ? "," : "", v.signers[i]);
    printf(" required=%d\n", v.required);
    rc = govctl_finish_stdout(GOVCTL_OK);
out:
    if (have_verdict)
        gov_verdict_clear(&v);
    gov_free(sigs);
    json_decref(b);
    gov_trust_free(trust);
    gov_free(body);
    gov_free(trust_text);
    return rc;
}

int govctl_cmd_verify(int argc, char **argv) {
    static const char *help =
        "govctl verify --trust TRUST.json [--tenant T] [--current-version V --current-checksum C"
        " [--current-document DOC.json]] BUNDLE.json";
    static const struct option opts[] = {
        {"trust", required_argument, NULL, 't'},
        {"tenant", required_argument, NULL, 'T'},
        {"current-document", required_argument, NULL, 'D'},
        {"current-version", required_argument, NULL, 'V'},
        {"current-checksum", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    const char *trust = NULL, *cur_version = NULL, *cur_checksum = NULL, *tenant = NULL,
               *cur_doc = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:V:C:T:D:", opts, NULL)) != -1) {
        switch (c) {
        case 't': trust = optarg; break;
        case 'V': cur_version = optarg; break;
        case 'C': cur_checksum = optarg; break;
        case 'T': tenant = optarg; break;
        case 'D': cur_doc = optarg; break;
        default: return bad_option(argc, argv, c, help);
        }
    }
    if (trust == NULL)
        return govctl_usage("%s  [--trust is required]", help);
    if ((cur_version == NULL) != (cur_checksum == NULL))
        return govctl_usage("%s  [--current-version and --current-checksum go together]", help);
    gov_version_t ver;
    if (cur_version && gov_version_parse(cur_version, &ver) != 0)
        return govctl_usage("%s  [--current-version '%s' is neither semver nor an integer]", help,
                            cur_version);
    if (cur_checksum && cur_checksum[0] == 0)
        return govctl_usage("%s  [--current-checksum is empty]", help);
    if (cur_doc && cur_version == NULL)
        return govctl_usage("%s  [--current-document needs --current-version]", help);
    if (tenant && !gov_tenant_valid(tenant, strlen(tenant)))
        return govctl_usage("%s  [--tenant '%s' is not a tenant id]", help, tenant);
    if (argc - optind != 1)
        return govctl_usage("%s  [exactly one BUNDLE.json is required]", help);
    char *doc_text = NULL;
    size_t doc_len = 0;
    if (cur_doc) {
        int rc = slurp(cur_doc, GOVCTL_MAX_INPUT, 0, &doc_text, &doc_len);
        if (rc != GOVCTL_OK)
            return rc;
    }
    gov_constitution_state_t state = {.version = cur_version, .checksum = cur_checksum,
                                      .history = NULL, .nhistory = 0,
                                      .document_json = doc_text, .document_len = doc_len};
    int rc = verify_bundle(trust, argv[optind], tenant, cur_version ? &state : NULL);
    gov_free(doc_text);
    return rc;
}

/* --- publish ----------------------------------------------------------------- */

static int publish_bundle(const char *path, const char *tenant, const char *brokers,
                          const char *source) {
    char *body = NULL, eb[512] = "", id[GOV_UUID_STRLEN + 1];
    size_t len = 0, doc_off = 0, doc_len = 0;
    json_t *b = NULL, *ev = NULL;
    gov_reason_t reason = GOV_REASON_NONE;
    int rc = slurp(path, GOVCTL_MAX_INPUT, 0, &body, &len);
    if (rc != GOVCTL_OK)
        return rc;
    rc = GOVCTL_FAIL;
    gov_err_t err = gov_bundle_parse(body, len, tenant, &b, &doc_off, &doc_len, &reason, eb,
                                     sizeof eb);
    if (err != GOV_OK) {
        rc = govctl_fail_clean(reason, "%s: %s", path, eb);
        goto out;
    }
    if ((err = gov_uuid_v7(id)) != GOV_OK) {
        rc = govctl_fail_clean(GOV_REASON_INTERNAL_ERROR, "cannot make an event id: %s",
                               gov_err_str(err));
        goto out;
    }
    err = gov_bundle_event_new(b, body + doc_off, doc_len, id, gov_now_micros(), source, NULL, &ev);
    if (err != GOV_OK) {
        rc = govctl_fail_clean(err == GOV_ERR_NOMEM ? GOV_REASON_INTERNAL_ERROR
                                                    : GOV_REASON_INVALID_BUNDLE,
                               "%s: cannot build the ConstitutionBundle event: %s", path,
                               gov_err_str(err));
        goto out;
    }
    rc = govctl_publish_event(brokers, TOPIC_BUNDLES, "ConstitutionBundle", tenant, ev, id, path,
                              path);
out:
    json_decref(ev);
    json_decref(b);
    gov_free(body);
    return rc;
}

int govctl_cmd_publish(int argc, char **argv) {
    static const char *help =
        "govctl publish --tenant T [--brokers B] [--source S] BUNDLE.json";
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'},
        {"brokers", required_argument, NULL, 'b'},
        {"source", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *tenant = NULL, *brokers = govctl_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092");
    const char *source = NULL;
    char default_source[GOVCTL_MAX_SOURCE];
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:b:s:", opts, NULL)) != -1) {
        switch (c) {
        case 't': tenant = optarg; break;
        case 'b': brokers = optarg; break;
        case 's': source = optarg; break;
        default: return bad_option(argc, argv, c, help);
        }
    }
    if (tenant == NULL || !gov_tenant_valid(tenant, strlen(tenant)))
        return govctl_usage("%s  [a valid --tenant is required]", help);
    if (brokers[0] == 0)
        return govctl_usage("%s  [--brokers is empty]", help);
    if (source == NULL) {
        const char *user = getenv("USER");
        if (user == NULL || user[0] == 0) {
            struct passwd *pw = getpwuid(getuid());
            user = pw && pw->pw_name ? pw->pw_name : NULL;
        }
        if (user)
            snprintf(default_source, sizeof default_source, "govctl:%s", user);
        else
            snprintf(default_source, sizeof default_source, "govctl:uid%u", (unsigned)getuid());
        source = default_source;
    }
    if (source[0] == 0 || strlen(source) > GOVCTL_MAX_SOURCE || !gov_utf8_valid(source, strlen(source)))
        return govctl_usage("%s  [--source must be 1..%d bytes of UTF-8]", help, GOVCTL_MAX_SOURCE);
    if (argc - optind != 1)
        return govctl_usage("%s  [exactly one BUNDLE.json is required]", help);
    return publish_bundle(argv[optind], tenant, brokers, source);
}
