/* cmd_rulepack.c - govctl rulepack validate | sign | publish.
 *
 * The operator's side of rule packs (docs/policy.md).  Every rule lives in
 * libgov: gov_rulepack_parse validates and compiles, so `govctl rulepack
 * validate` answers exactly what gov-rulepacks and every edge would for the
 * pack itself, under the same limits (contract constants: nothing to
 * configure, nothing to get out of step).
 * govctl_publish_event (publish.c) puts the RulePackPublished event on
 * policy.rulepacks.
 *
 * The pack text is published as it is in the file, byte for byte: the
 * processor parses it again and stores its own canonical form, so what was
 * validated here and what is judged there are the same bytes.
 *
 * Signing (docs/contracts.md, "Signed rule packs"): `sign` computes the
 * digest every verifier computes (gov_rulepack_digest_hex: the SHA-256 hex
 * of the pack's canonical JSON), signs it with an operator's Ed25519 key and
 * keeps the signatures DETACHED, beside the pack, in PACK.sig (or --sigs):
 *   {"pack_sha256": "<hex>", "signatures": [{"signer_id", "algorithm",
 *    "signature"}, ...]}
 * so the pack file itself never changes.  Each signer runs `sign` in turn;
 * a signer signing again replaces its entry; signatures of another digest
 * (the pack was edited) are dropped, not carried over.  `publish` refuses a
 * pack without signatures for its digest and carries them in the event's
 * `signatures` field.
 *
 * What it does not do: compare the version with the tenant's current pack
 * (only gov-rulepacks knows it; a lower or equal version is rejected or
 * recognised as a replay there, and shows in its audit events), or publish
 * a pack it would reject.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "gov_alloc.h"
#include "gov_rulepack.h"
#include "gov_time.h"
#include "gov_util.h"
#include "govctl.h"

#define TOPIC_RULEPACKS "policy.rulepacks"
/* Read bound of a pack file; the parse applies the real limit (max_bytes)
 * and names it, so the read bound only has to be above any sane limit. */
#define RULEPACK_READ_MAX (16u << 20)

/* Read bound of a signature file: 32 signatures of well under 1 KiB each. */
#define SIGS_READ_MAX (64u << 10)

static const char *const RULEPACK_HELP =
    "govctl rulepack validate FILE | govctl rulepack sign --signer ID --key PRIV.pem "
    "[--sigs SIGFILE] FILE | govctl rulepack publish [--brokers B] [--sigs SIGFILE] FILE";

/* --- validate -------------------------------------------------------------------- */

/* Reads and validates path.  GOVCTL_OK with a new pack in *pack and the
 * text in *text (gov_free), or GOVCTL_FAIL after printing
 * "govctl: <code>: <message naming the rule and field>". */
static int load_pack(const char *path, char **text, size_t *text_len, gov_rulepack_t **pack) {
    char eb[1024] = "";
    gov_rulepack_error_t detail;
    *pack = NULL;
    int rc = govctl_read_file(path, RULEPACK_READ_MAX, text, text_len);
    if (rc != GOVCTL_OK)
        return rc;
    gov_err_t err = gov_rulepack_parse(*text, *text_len, NULL, pack, &detail, eb, sizeof eb);
    if (err == GOV_OK)
        return GOVCTL_OK;
    gov_free(*text);
    *text = NULL;
    govctl_printable(eb);
    if (err == GOV_ERR_NOMEM)
        return govctl_fail(GOV_REASON_INTERNAL_ERROR, "out of memory validating the pack");
    /* gov_rulepack_parse names a reason for every refusal; a NONE would be
     * its bug, reported as ours rather than as a pack error. */
    return govctl_fail(detail.code != GOV_REASON_NONE ? detail.code : GOV_REASON_INTERNAL_ERROR,
                       "%s", eb);
}

static size_t pattern_count(const gov_rulepack_t *pack) {
    size_t n = 0;
    for (size_t i = 0; i < gov_rulepack_rule_count(pack); i++)
        n += gov_rulepack_rule(pack, i)->pattern_count;
    return n;
}

static int rulepack_validate(int argc, char **argv) {
    static const char *help = "govctl rulepack validate FILE";
    if (argc != 2 || (argv[1][0] == '-' && argv[1][1] != 0))
        return govctl_usage("%s  [exactly one FILE (or - for stdin) is required]", help);
    int rc;
    char *text = NULL;
    size_t len = 0;
    gov_rulepack_t *pack = NULL;
    if ((rc = load_pack(argv[1], &text, &len, &pack)) != GOVCTL_OK)
        return rc;
    printf("OK pack_id=%s tenant=%s version=%s rules=%zu patterns=%zu\n", gov_rulepack_id(pack),
           gov_rulepack_tenant(pack), gov_rulepack_version(pack), gov_rulepack_rule_count(pack),
           pattern_count(pack));
    gov_rulepack_free(pack);
    gov_free(text);
    return govctl_finish_stdout(GOVCTL_OK);
}

/* --- signatures ------------------------------------------------------------------- */

/* The signature file of path: sigs_opt, or "<path>.sig". */
static int sigs_path(const char *path, const char *sigs_opt, char *out, size_t size) {
    int n = sigs_opt ? snprintf(out, size, "%s", sigs_opt) : snprintf(out, size, "%s.sig", path);
    if (n < 0 || (size_t)n >= size)
        return govctl_usage("the signature file's path is too long");
    return GOVCTL_OK;
}

/* Reads a signature file: GOVCTL_OK with *doc (new reference) an object
 * {"pack_sha256": string, "signatures": array of {signer_id, algorithm,
 * signature} strings}, or GOVCTL_FAIL after printing why. */
static int read_sigs(const char *file, json_t **doc) {
    char *text = NULL;
    size_t len = 0;
    *doc = NULL;
    int rc = govctl_read_file(file, SIGS_READ_MAX, &text, &len);
    if (rc != GOVCTL_OK)
        return rc;
    json_t *d = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    gov_free(text);
    const json_t *arr = json_object_get(d, "signatures");
    int ok = json_is_object(d) && json_object_size(d) == 2 &&
             json_is_string(json_object_get(d, "pack_sha256")) && json_is_array(arr);
    for (size_t i = 0; ok && i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        ok = json_is_object(e) && json_object_size(e) == 3 &&
             json_is_string(json_object_get(e, "signer_id")) &&
             json_is_string(json_object_get(e, "algorithm")) &&
             json_is_string(json_object_get(e, "signature"));
    }
    if (!ok) {
        json_decref(d);
        return govctl_fail_clean(GOV_REASON_MALFORMED_SIGNATURE,
                                 "%s is not a signature file {\"pack_sha256\", \"signatures\": "
                                 "[{\"signer_id\", \"algorithm\", \"signature\"}...]}", file);
    }
    *doc = d;
    return GOVCTL_OK;
}

static int sign_pack(const char *path, const char *sigfile, const char *signer, EVP_PKEY *key) {
    char *text = NULL, *out = NULL, hex[GOV_SHA256_HEXLEN + 1], sig_hex[129];
    size_t len = 0;
    gov_rulepack_t *pack = NULL;
    json_t *old = NULL, *doc = NULL;
    int rc;
    /* A signer never vouches for a pack gov-rulepacks would refuse. */
    if ((rc = load_pack(path, &text, &len, &pack)) != GOVCTL_OK)
        return rc;
    rc = GOVCTL_FAIL;
    if (gov_rulepack_digest_hex(pack, hex) != GOV_OK) {
        rc = govctl_fail(GOV_REASON_CRYPTO_ERROR, "cannot hash the pack");
        goto out;
    }
    if (access(sigfile, F_OK) == 0) {
        if ((rc = read_sigs(sigfile, &old)) != GOVCTL_OK)
            goto out;
        if (strcmp(json_string_value(json_object_get(old, "pack_sha256")), hex) != 0) {
            fprintf(stderr, "govctl: %s held signatures of another version of the pack; "
                            "they are dropped\n", sigfile);
            json_decref(old);
            old = NULL;
        }
    }
    if ((rc = govctl_sign_hex(key, hex, sig_hex)) != GOVCTL_OK)
        goto out;
    json_t *sigs = govctl_signatures_with(json_object_get(old, "signatures"), signer, sig_hex);
    doc = sigs ? json_pack("{s:s, s:o}", "pack_sha256", hex, "signatures", sigs) : NULL;
    out = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    if (out == NULL) {
        rc = govctl_fail(GOV_REASON_INTERNAL_ERROR, "out of memory");
        goto out;
    }
    if ((rc = govctl_write_atomically(sigfile, out, strlen(out))) != GOVCTL_OK)
        goto out;
    printf("signed %s signer=%s pack_sha256=%s signatures=%zu\n", sigfile, signer, hex,
           json_array_size(json_object_get(doc, "signatures")));
    rc = govctl_finish_stdout(GOVCTL_OK);
out:
    gov_free(out);
    json_decref(doc);
    json_decref(old);
    gov_rulepack_free(pack);
    gov_free(text);
    return rc;
}

static int rulepack_sign(int argc, char **argv) {
    static const char *help =
        "govctl rulepack sign --signer ID --key PRIV.pem [--sigs SIGFILE] FILE";
    const char *signer, *keypath, *sigs_opt;
    int orc = govctl_sign_options(argc, argv, help, "sigs", &signer, &keypath, &sigs_opt);
    if (orc != GOVCTL_OK)
        return orc;
    if (argc - optind != 1 || strcmp(argv[optind], "-") == 0)
        return govctl_usage("%s  [exactly one FILE (not stdin) is required]", help);
    char sigfile[4096];
    int rc = sigs_path(argv[optind], sigs_opt, sigfile, sizeof sigfile);
    if (rc != GOVCTL_OK)
        return rc;
    EVP_PKEY *key = NULL;
    if ((rc = govctl_load_private_key(keypath, &key)) != GOVCTL_OK)
        return rc;
    rc = sign_pack(argv[optind], sigfile, signer, key);
    EVP_PKEY_free(key);
    return rc;
}

/* --- publish ---------------------------------------------------------------------- */

static int publish_pack(const char *path, const char *sigfile, const char *brokers) {
    char *text = NULL, id[GOV_UUID_STRLEN + 1], who[300], hex[GOV_SHA256_HEXLEN + 1];
    size_t len = 0;
    gov_rulepack_t *pack = NULL;
    json_t *ev = NULL, *sigs = NULL;
    int rc;
    if ((rc = load_pack(path, &text, &len, &pack)) != GOVCTL_OK)
        return rc;
    rc = GOVCTL_FAIL;
    if (access(sigfile, F_OK) != 0) {
        rc = govctl_fail_clean(GOV_REASON_NO_SIGNATURES,
                               "no signature file %s: sign the pack first (govctl rulepack sign)",
                               sigfile);
        goto out;
    }
    if ((rc = read_sigs(sigfile, &sigs)) != GOVCTL_OK)
        goto out;
    rc = GOVCTL_FAIL;
    if (gov_rulepack_digest_hex(pack, hex) != GOV_OK) {
        rc = govctl_fail(GOV_REASON_CRYPTO_ERROR, "cannot hash the pack");
        goto out;
    }
    if (strcmp(json_string_value(json_object_get(sigs, "pack_sha256")), hex) != 0) {
        rc = govctl_fail_clean(GOV_REASON_CHECKSUM_MISMATCH,
                               "the signatures in %s are of another pack (pack_sha256 %.64s, this "
                               "pack's %s): sign it again", sigfile,
                               json_string_value(json_object_get(sigs, "pack_sha256")), hex);
        goto out;
    }
    if (json_array_size(json_object_get(sigs, "signatures")) == 0) {
        rc = govctl_fail_clean(GOV_REASON_NO_SIGNATURES, "%s holds no signature", sigfile);
        goto out;
    }
    gov_err_t err = gov_uuid_v7(id);
    if (err != GOV_OK) {
        rc = govctl_fail(GOV_REASON_INTERNAL_ERROR, "cannot make an event id: %s",
                         gov_err_str(err));
        goto out;
    }
    govctl_operator(who, sizeof who);
    const char *tenant = gov_rulepack_tenant(pack);
    ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s%, s:s, s:O}", "event_id", id, "occurred_at",
                   (json_int_t)gov_now_micros(), "tenant", tenant, "pack_id",
                   gov_rulepack_id(pack), "version", gov_rulepack_version(pack),
                   "rulepack_json", text, len, "published_by", who, "signatures",
                   json_object_get(sigs, "signatures"));
    if (ev == NULL) {
        /* published_by comes from $USER: the one member not checked yet */
        rc = govctl_fail(GOV_REASON_INTERNAL_ERROR,
                         "cannot build the RulePackPublished event (is $USER valid UTF-8?)");
        goto out;
    }
    rc = govctl_publish_event(brokers, TOPIC_RULEPACKS, "RulePackPublished", tenant, ev, id,
                              "the pack", NULL);
out:
    json_decref(ev);
    json_decref(sigs);
    gov_rulepack_free(pack);
    gov_free(text);
    return rc;
}

static int rulepack_publish(int argc, char **argv) {
    static const char *help = "govctl rulepack publish [--brokers B] [--sigs SIGFILE] FILE";
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"sigs", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    const char *sigs_opt = NULL;
    const char *brokers = govctl_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092");
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":b:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            brokers = optarg;
            break;
        case 'o':
            sigs_opt = optarg;
            break;
        default: {
            const char *opt = optind >= 1 && optind - 1 < argc ? argv[optind - 1] : "?";
            return govctl_usage(c == ':' ? "%s  [option '%s' needs a value]"
                                         : "%s  [unknown option '%s']", help, opt);
        }
        }
    }
    if (brokers[0] == 0)
        return govctl_usage("%s  [--brokers is empty]", help);
    if (argc - optind != 1)
        return govctl_usage("%s  [exactly one FILE is required]", help);
    char sigfile[4096];
    int rc = sigs_path(argv[optind], sigs_opt, sigfile, sizeof sigfile);
    if (rc != GOVCTL_OK)
        return rc;
    return publish_pack(argv[optind], sigfile, brokers);
}

int govctl_cmd_rulepack(int argc, char **argv) {
    if (argc < 2)
        return govctl_usage("%s", RULEPACK_HELP);
    if (strcmp(argv[1], "validate") == 0)
        return rulepack_validate(argc - 1, argv + 1);
    if (strcmp(argv[1], "sign") == 0)
        return rulepack_sign(argc - 1, argv + 1);
    if (strcmp(argv[1], "publish") == 0)
        return rulepack_publish(argc - 1, argv + 1);
    return govctl_usage("%s  [unknown subcommand '%s']", RULEPACK_HELP, argv[1]);
}
