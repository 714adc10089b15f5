/* govctl.h - shared pieces of the operator CLI.
 *
 * Exit codes (docs/contracts.md, "Exit codes"): 0 success, 1 rejected or failed (the
 * reason code on stderr), 2 usage error.
 */
#ifndef GOVCTL_H
#define GOVCTL_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_reason.h"

#define GOVCTL_OK 0
#define GOVCTL_FAIL 1
#define GOVCTL_USAGE 2

/* Prints "govctl: <code>: <message>" on stderr, <code> being
 * gov_reason_code(code), and returns GOVCTL_FAIL. */
int govctl_fail(gov_reason_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* govctl_fail with the message made printable first (govctl_printable):
 * for messages that quote file contents, paths or arguments. */
int govctl_fail_clean(gov_reason_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Flushes stdout and returns rc; a full disk or a closed pipe is an error
 * (io_error printed, GOVCTL_FAIL), not success. */
int govctl_finish_stdout(int rc);
/* Prints a usage error and returns GOVCTL_USAGE. */
int govctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* An environment default: getenv(name) or fallback. */
const char *govctl_env(const char *name, const char *fallback);

/* Reads path ("-": stdin) into new memory *out (gov_free; NUL-terminated,
 * *out_len bytes without it), at most max bytes.  Returns GOVCTL_OK or,
 * after printing io_error / too_large / internal_error, GOVCTL_FAIL.
 * Cost: O(file size). */
int govctl_read_file(const char *path, size_t max, char **out, size_t *out_len);
/* The reason govctl prints for a gov_file_read failure: GOV_REASON_TOO_LARGE,
 * GOV_REASON_INTERNAL_ERROR (out of memory) or GOV_REASON_IO_ERROR. */
gov_reason_t govctl_file_error_code(gov_err_t err);

/* Replaces, in place, what a terminal could take for a command: C0 and C1
 * controls, DEL, and bytes that are not well-formed UTF-8 (error messages
 * quote bytes of untrusted files). */
void govctl_printable(char *s);

/* "govctl:$USER" (or "govctl:<login name>", "govctl:uid<N>") into buf. */
void govctl_operator(char *buf, size_t size);

int govctl_cmd_audit(int argc, char **argv);

/* cmd_constitution.c: argv[0] is the subcommand's name. */
int govctl_cmd_checksum(int argc, char **argv);
int govctl_cmd_keygen(int argc, char **argv);
int govctl_cmd_sign(int argc, char **argv);
int govctl_cmd_verify(int argc, char **argv);
int govctl_cmd_publish(int argc, char **argv);

/* publish.c: encodes ev (borrowed) as schema ("ConstitutionBundle",
 * "RulePackPublished"), produces it on topic keyed by tenant with acks=all
 * through a producer of its own, waits for the acknowledgement and prints
 * "published <topic> partition=<p> offset=<o> event_id=<event_id>".
 * Failures print internal_error ("schemas: ..."), too_large / internal_error
 * ("<encode_prefix>: <detail>", or the detail alone when encode_prefix is
 * NULL) or kafka_unavailable ("producer for <brokers>: ...", "<subject> was
 * not acknowledged by <brokers>: ...") and return GOVCTL_FAIL.
 * Cost: one encode plus a round trip to the brokers, at most 15 s. */
int govctl_publish_event(const char *brokers, const char *topic, const char *schema,
                         const char *tenant, json_t *ev, const char *event_id,
                         const char *subject, const char *encode_prefix);

/* publish.c: govctl_publish_event without the "published" line: produces
 * ev keyed by `key`, waits for the acknowledgement and gives its partition
 * and offset; prints only failures (stderr).  For commands whose stdout is
 * their own (`clients add` prints one JSON object). */
int govctl_produce_event(const char *brokers, const char *topic, const char *schema,
                         const char *key, json_t *ev, const char *subject,
                         const char *encode_prefix, int32_t *partition_out,
                         int64_t *offset_out);

/* cmd_clients.c: `clients add` / `clients remove`. */
int govctl_cmd_clients(int argc, char **argv);

/* cmd_clients.c, shared with `keys`: the operator who signs identity events
 * (docs/contracts.md "Signed identity events").  keypath: the Ed25519 PEM
 * (--key; NULL: GOV_IDENTITY_OPERATOR_KEY_FILE), read under the key file
 * rules (0600); signer_id: --signer (NULL: GOV_IDENTITY_SIGNER, else the id
 * the identity trust file GOV_IDENTITY_TRUST_FILE gives that key).  On
 * GOVCTL_OK *key is a new signer (gov_signer_free) and id holds its id;
 * GOVCTL_FAIL after printing why (no_signatures when no key is given). */
struct gov_signer;
int govctl_identity_signer(const char *keypath, const char *signer_id, struct gov_signer **key,
                           char id[65]);

/* cmd_keys.c: `keys rotate` / `keys list`; argv[0] is "keys". */
int govctl_cmd_keys(int argc, char **argv);

/* cmd_constitution.c, shared with `rulepack sign`: */
/* Loads an Ed25519 private key from a PEM file (no passphrase) into *out
 * (new reference, EVP_PKEY_free); GOVCTL_FAIL after printing key_invalid. */
int govctl_load_private_key(const char *path, EVP_PKEY **out);
/* The Ed25519 signature of the ASCII text msg, as 128 lowercase hex digits,
 * checked with the same key before it is returned; GOVCTL_FAIL after
 * printing crypto_error. */
int govctl_sign_hex(EVP_PKEY *key, const char *msg, char out[129]);
/* The signatures array old (borrowed, may be NULL) with signer's entry
 * replaced by (or, when absent, followed by) {signer_id, algorithm
 * "ed25519", signature}.  A new array, or NULL when out of memory. */
json_t *govctl_signatures_with(const json_t *old, const char *signer, const char *sig_hex);
/* Parses the options of a signing command: --signer ID, --key PRIV.pem and
 * --<file_opt> VALUE (optional; *file_val NULL when absent), all borrowed
 * from argv; the signer id must be valid.  GOVCTL_OK with optind at the
 * first operand, or GOVCTL_USAGE after printing help and why. */
int govctl_sign_options(int argc, char **argv, const char *help, const char *file_opt,
                        const char **signer, const char **keypath, const char **file_val);
/* Replaces target with data atomically (temp file, fsync, rename). */
int govctl_write_atomically(const char *target, const char *data, size_t len);

/* cmd_rulepack.c: `rulepack validate|sign|publish`; argv[0] is "rulepack". */
int govctl_cmd_rulepack(int argc, char **argv);

#endif
