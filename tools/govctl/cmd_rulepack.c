/* cmd_rulepack.c - govctl rulepack validate | publish.
 *
 * The operator's side of rule packs (docs/policy.md).  Every rule lives in
 * libgov: gov_rulepack_parse validates and compiles, so `govctl rulepack
 * validate` answers exactly what gov-rulepacks would for the pack itself,
 * under the same limits when the GOV_RULEPACK_MAX_* variables of the
 * processor are in the environment (the library defaults otherwise).
 * govctl_publish_event (publish.c) puts the RulePackPublished event on
 * policy.rulepacks.
 *
 * The pack text is published as it is in the file, byte for byte: the
 * processor parses it again and stores its own canonical form, so what was
 * validated here and what is judged there are the same bytes.
 *
 * What it does not do: compare the version with the tenant's current pack
 * (only gov-rulepacks knows it; a lower or equal version is rejected or
 * recognised as a replay there, and shows in its audit events), or publish
 * a pack it would reject.
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_rulepack.h"
#include "gov_time.h"
#include "gov_util.h"
#include "govctl.h"

#define TOPIC_RULEPACKS "policy.rulepacks"
/* Read bound of a pack file; the parse applies the real limit (max_bytes)
 * and names it, so the read bound only has to be above any sane limit. */
#define RULEPACK_READ_MAX (16u << 20)

static const char *const RULEPACK_HELP =
    "govctl rulepack validate FILE | govctl rulepack publish [--brokers B] FILE";

/* --- limits --------------------------------------------------------------------- */

/* The processor's limit keys, read from the environment the way gov-rulepacks
 * reads them (GOV_<KEY>), with its bounds. */
typedef struct limit_key {
    const char *env;
    long min, max;
    size_t off;      /* offset of the size_t field; (size_t)-1 for max_depth */
} limit_key_t;

#define LIMIT_FIELD(f) offsetof(gov_rulepack_limits_t, f)
static const limit_key_t limit_keys[] = {
    {"GOV_RULEPACK_MAX_BYTES", 1024, 16L << 20, LIMIT_FIELD(max_bytes)},
    {"GOV_RULEPACK_MAX_DEPTH", 2, 64, (size_t)-1},
    {"GOV_RULEPACK_MAX_RULES", 1, 100000, LIMIT_FIELD(max_rules)},
    {"GOV_RULEPACK_MAX_PATTERNS", 1, 100000, LIMIT_FIELD(max_patterns)},
    {"GOV_RULEPACK_MAX_PATTERN_BYTES", 1, 16L << 20, LIMIT_FIELD(max_pattern_bytes)},
    {"GOV_RULEPACK_MAX_PATTERN_LEN", 1, 1L << 20, LIMIT_FIELD(max_pattern_len)},
    {"GOV_RULEPACK_MAX_SET_ENTRIES", 1, 100000, LIMIT_FIELD(max_set_entries)},
    {"GOV_RULEPACK_MAX_METADATA_KEYS", 1, 4096, LIMIT_FIELD(max_metadata_keys)},
    {"GOV_RULEPACK_MAX_VALUE_BYTES", 1, 65536, LIMIT_FIELD(max_value_bytes)},
    {"GOV_RULEPACK_MAX_TEXT_BYTES", 1, 1L << 20, LIMIT_FIELD(max_text_bytes)},
};

/* The library defaults, overridden by the GOV_RULEPACK_MAX_* variables that
 * are set.  GOVCTL_OK, or GOVCTL_USAGE naming a malformed variable. */
static int limits_from_env(gov_rulepack_limits_t *l) {
    *l = gov_rulepack_limits_default();
    for (size_t i = 0; i < sizeof limit_keys / sizeof limit_keys[0]; i++) {
        const limit_key_t *k = &limit_keys[i];
        const char *v = getenv(k->env);
        if (v == NULL || v[0] == 0)
            continue;
        char *end = NULL;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno != 0 || end == v || *end != 0 || n < k->min || n > k->max)
            return govctl_usage("%s must be an integer in %ld..%ld", k->env, k->min, k->max);
        if (k->off == (size_t)-1)
            l->max_depth = (int)n;
        else
            *(size_t *)((char *)l + k->off) = (size_t)n;
    }
    return GOVCTL_OK;
}

/* --- validate -------------------------------------------------------------------- */

/* Reads and validates path.  GOVCTL_OK with a new pack in *pack and the
 * text in *text (gov_free), or GOVCTL_FAIL after printing
 * "govctl: <code>: <message naming the rule and field>". */
static int load_pack(const char *path, const gov_rulepack_limits_t *limits, char **text,
                     size_t *text_len, gov_rulepack_t **pack) {
    char eb[1024] = "";
    gov_rulepack_error_t detail;
    *pack = NULL;
    int rc = govctl_read_file(path, RULEPACK_READ_MAX, text, text_len);
    if (rc != GOVCTL_OK)
        return rc;
    gov_err_t err = gov_rulepack_parse(*text, *text_len, limits, pack, &detail, eb, sizeof eb);
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
    gov_rulepack_limits_t limits;
    int rc = limits_from_env(&limits);
    if (rc != GOVCTL_OK)
        return rc;
    char *text = NULL;
    size_t len = 0;
    gov_rulepack_t *pack = NULL;
    if ((rc = load_pack(argv[1], &limits, &text, &len, &pack)) != GOVCTL_OK)
        return rc;
    printf("OK pack_id=%s tenant=%s version=%s rules=%zu patterns=%zu\n", gov_rulepack_id(pack),
           gov_rulepack_tenant(pack), gov_rulepack_version(pack), gov_rulepack_rule_count(pack),
           pattern_count(pack));
    gov_rulepack_free(pack);
    gov_free(text);
    return govctl_finish_stdout(GOVCTL_OK);
}

/* --- publish ---------------------------------------------------------------------- */

static int publish_pack(const char *path, const char *brokers) {
    char *text = NULL, id[GOV_UUID_STRLEN + 1], who[300];
    size_t len = 0;
    gov_rulepack_t *pack = NULL;
    json_t *ev = NULL;
    gov_rulepack_limits_t limits;
    int rc = limits_from_env(&limits);
    if (rc != GOVCTL_OK)
        return rc;
    if ((rc = load_pack(path, &limits, &text, &len, &pack)) != GOVCTL_OK)
        return rc;
    rc = GOVCTL_FAIL;
    gov_err_t err = gov_uuid_v7(id);
    if (err != GOV_OK) {
        rc = govctl_fail(GOV_REASON_INTERNAL_ERROR, "cannot make an event id: %s",
                         gov_err_str(err));
        goto out;
    }
    govctl_operator(who, sizeof who);
    const char *tenant = gov_rulepack_tenant(pack);
    ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s%, s:s}", "event_id", id, "occurred_at",
                   (json_int_t)gov_now_micros(), "tenant", tenant, "pack_id",
                   gov_rulepack_id(pack), "version", gov_rulepack_version(pack),
                   "rulepack_json", text, len, "published_by", who);
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
    gov_rulepack_free(pack);
    gov_free(text);
    return rc;
}

static int rulepack_publish(int argc, char **argv) {
    static const char *help = "govctl rulepack publish [--brokers B] FILE";
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    const char *brokers = govctl_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092");
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":b:", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            brokers = optarg;
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
    return publish_pack(argv[optind], brokers);
}

int govctl_cmd_rulepack(int argc, char **argv) {
    if (argc < 2)
        return govctl_usage("%s", RULEPACK_HELP);
    if (strcmp(argv[1], "validate") == 0)
        return rulepack_validate(argc - 1, argv + 1);
    if (strcmp(argv[1], "publish") == 0)
        return rulepack_publish(argc - 1, argv + 1);
    return govctl_usage("%s  [unknown subcommand '%s']", RULEPACK_HELP, argv[1]);
}
