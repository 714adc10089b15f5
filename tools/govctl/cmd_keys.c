/* cmd_keys.c - `govctl keys rotate` and `govctl keys list`.
 *
 * rotate: opens the key store (GOV_SIGNER_BACKEND and the rows of
 * gov_signer_rt.h), reads the current keys from Redis - what gov-identity
 * materialized from identity.keys, the record (gov_keyrotate.h says why not
 * the topic itself) - and rotates through gov_keyrotate, the same code
 * gov-identity's scheduled rotation runs: a new Ed25519 key generated in the
 * store (its private key never leaves it), KeyRotated pending (or active,
 * for the very first key with --activate-in 0) and the previous key
 * retiring, each acknowledged by Kafka (acks=all) before the next.  Prints
 * one JSON line {"kid","activates_at","previous_kid","retires_at"} (µs since
 * the epoch; null for none).
 *
 * list: the materialized keys, one JSON line each: kid, state,
 * activates_at, retires_at, backend.
 *
 * retire KID: the emergency path (a compromised key): KeyRotated{state
 * retired} at once (gov_keyrotate_retire_now); the key leaves the JWKS and
 * its tokens stop verifying.  Prints {"kid","retires_at"}.
 *
 * rotate and retire sign every KeyRotated with the identity operator key
 * (--key PEM / GOV_IDENTITY_OPERATOR_KEY_FILE, under --signer ID or the id
 * the identity trust file GOV_IDENTITY_TRUST_FILE gives it): gov-identity
 * and gov-edge believe no key publication a trusted operator did not sign.
 *
 * Options: the configuration table below (--name=value, GOV_<NAME>), with
 * the short spellings --activate-in, --backend, --brokers, --key and
 * --signer.
 *
 * What it does not do: write Redis (but the rotator lease), or wait for gov-identity (the JSONL
 * shows what was published; `keys list` shows what is materialized).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_config.h"
#include "gov_events.h"
#include "gov_keyrotate.h"
#include "gov_signature.h"
#include "gov_time.h"
#include "govctl.h"

#define KEYS_HELP                                                                           \
    "govctl keys rotate [--key PEM] [--signer ID] [--activate-in SECONDS] "                  \
    "[--backend file|pkcs11] [--brokers B] "                                                \
    "[--NAME=VALUE of the key store and timing rows] | govctl keys list | "                 \
    "govctl keys retire [--key PEM] [--signer ID] KID"
#define ARGS_MAX 64
/* The rotator lease while a rotation runs (its produce waits are bounded by
 * message.timeout.ms, 12 s each), then after it. */
#define LEASE_ROTATE_MS 120000
#define LEASE_AFTER_MS 10000

typedef struct keys_cfg {
    char *brokers, *redis_host, *redis_nodes;
    long redis_port, activate_in;
    char *operator_key_file, *signer;
    gov_keystore_config_t ks;
    gov_keyrotate_config_t timing;
} keys_cfg_t;

/* Loads the table from env and argv (argv[0] is the subcommand), mapping
 * the short option spellings.  GOVCTL_OK, or GOVCTL_USAGE after printing. */
enum { KEYS_LIST, KEYS_ROTATE, KEYS_RETIRE };

static int load(int argc, char **argv, gov_config_entry_t *rows, size_t nrows) {
    static const char *const alias[][2] = {{"--activate-in", "--activate_in"},
                                           {"--backend", "--signer_backend"},
                                           {"--brokers", "--kafka_brokers"},
                                           {"--key", "--identity_operator_key_file"},
                                           {"--signer", "--identity_signer"}};
    char *args[ARGS_MAX + 1], mapped[ARGS_MAX][320];
    char eb[512] = "";
    gov_config_result_t res;
    if (argc > ARGS_MAX)
        return govctl_usage("%s  [too many arguments]", KEYS_HELP);
    for (int i = 0; i < argc; i++) {
        args[i] = argv[i];
        for (size_t a = 0; a < sizeof alias / sizeof alias[0]; a++) {
            size_t n = strlen(alias[a][0]);
            if (strncmp(argv[i], alias[a][0], n) == 0 && (argv[i][n] == 0 || argv[i][n] == '=')) {
                snprintf(mapped[i], sizeof mapped[i], "%s%.256s", alias[a][1], argv[i] + n);
                args[i] = mapped[i];
            }
        }
    }
    args[argc] = NULL;
    if (gov_config_load(rows, nrows, argc, args, &res, eb, sizeof eb) != GOV_OK)
        return govctl_usage("%s  [%s]", KEYS_HELP, eb);
    if (res == GOV_CONFIG_EXIT)
        return GOVCTL_USAGE;
    return GOVCTL_OK;
}

static void json_time(FILE *out, const char *name, int64_t us) {
    if (us < 0)
        fprintf(out, "\"%s\":null", name);
    else
        fprintf(out, "\"%s\":%" PRId64, name, us);
}

static int keys_run(int argc, char **argv, int what) {
    int rotate = what == KEYS_ROTATE;
    const char *kid = NULL;
    if (what == KEYS_RETIRE) {
        /* the one operand, last: the rows take --name=value before it.  A
         * kid is base64url and may begin with '-' (about 1 in 64), so only
         * a "--" start is taken for a misplaced option */
        if (argc < 2 || strncmp(argv[argc - 1], "--", 2) == 0)
            return govctl_usage("%s  [keys retire needs a KID]", KEYS_HELP);
        kid = argv[--argc];
        if (!gov_signer_kid_valid(kid))
            return govctl_fail_clean(GOV_REASON_KEY_NOT_FOUND, "'%s' is not a kid", kid);
    }
    keys_cfg_t c = {0};
    gov_config_entry_t rows[] = {
        GOV_CFG_STRING("kafka_brokers", "127.0.0.1:19092", "Kafka bootstrap servers", &c.brokers),
        GOV_CFG_STRING("redis_host", "127.0.0.1", "Redis host (gov-identity's)", &c.redis_host),
        GOV_CFG_INT("redis_port", "6379", 1, 65535, "Redis port", &c.redis_port),
        GOV_CFG_STRING("redis_nodes", NULL,
                       "Redis Cluster seeds (host:port,...); when set, used instead of "
                       "redis_host/redis_port",
                       &c.redis_nodes),
        GOV_CFG_INT("activate_in", "-1", -1, 31536000,
                    "seconds until the new key activates (-1: key_propagation_s)",
                    &c.activate_in),
        GOV_CFG_STRING("identity_operator_key_file", NULL,
                       "Ed25519 PEM (0600) that signs the KeyRotated events (--key)",
                       &c.operator_key_file),
        GOV_CFG_STRING("identity_signer", NULL,
                       "its signer id (--signer; unset: the id GOV_IDENTITY_TRUST_FILE gives "
                       "the key)",
                       &c.signer),
        GOV_KEYSTORE_CONFIG_ROWS(&c.ks),
        GOV_KEYROTATE_CONFIG_ROWS(&c.timing),
    };
    size_t nrows = sizeof rows / sizeof rows[0];
    char eb[512] = "", eb2[256] = "";
    gov_reason_t why = GOV_REASON_NONE;
    gov_redis_t *r = NULL;
    gov_keystore_t *ks = NULL;
    gov_kafka_producer_t *p = NULL;
    gov_avro_registry_t *reg = NULL;
    gov_keyrotate_key_t *keys = NULL;
    size_t n = 0;
    gov_signer_t *op_key = NULL;
    char op_id[GOV_SIGNER_ID_MAX + 1];
    int rc = load(argc, argv, rows, nrows);
    if (rc != GOVCTL_OK)
        goto out;
    /* the operator first: nothing is generated for an event nobody may sign */
    if (what != KEYS_LIST &&
        (rc = govctl_identity_signer(c.operator_key_file ? c.operator_key_file : "",
                                     c.signer, &op_key, op_id)) != GOVCTL_OK)
        goto out;
    gov_events_signer_t op_signer = {.signer_id = op_id, .signer = op_key};
    gov_keyrotate_signers_t op = {.signers = &op_signer, .n = 1};
    rc = GOVCTL_FAIL;
    if (gov_redis_connect(c.redis_nodes, c.redis_host, (int)c.redis_port, 5000, &r, eb,
                          sizeof eb) != GOV_OK) {
        rc = govctl_fail_clean(GOV_REASON_REDIS_UNAVAILABLE, "%s", eb);
        goto out;
    }
    if (rotate && gov_keystore_open(&c.ks, &ks, &why, eb, sizeof eb) != GOV_OK) {
        rc = govctl_fail_clean(why, "key store: %s", eb);
        goto out;
    }
    if (gov_keyrotate_keys_load(r, ks, &keys, &n, &why, eb, sizeof eb) != GOV_OK) {
        rc = govctl_fail_clean(why, "%s", eb);
        goto out;
    }
    if (what == KEYS_LIST) {
        for (size_t i = 0; i < n; i++) {
            printf("{\"kid\":\"%s\",\"state\":\"%s\",", keys[i].kid, keys[i].state);
            json_time(stdout, "activates_at", keys[i].activates_at);
            putchar(',');
            json_time(stdout, "retires_at", keys[i].retires_at);
            printf(",\"backend\":\"%s\"}\n", keys[i].rec.backend ? keys[i].rec.backend : "");
        }
        rc = govctl_finish_stdout(GOVCTL_OK);
        goto out;
    }
    static const char *const extra_conf[] = {"message.timeout.ms", "12000", NULL};
    if (gov_avro_registry_new(&reg, eb, sizeof eb) != GOV_OK) {
        rc = govctl_fail_clean(GOV_REASON_INTERNAL_ERROR, "schemas: %s", eb);
        goto out;
    }
    if (gov_kafka_producer_new(c.brokers, "govctl", extra_conf, &p, eb, sizeof eb) != GOV_OK) {
        rc = govctl_fail_clean(GOV_REASON_KAFKA_UNAVAILABLE, "producer for %s: %s", c.brokers, eb);
        goto out;
    }
    if (what == KEYS_RETIRE) {
        int64_t ret = -1;
        if (gov_keyrotate_retire_now(p, reg, &op, keys, n, kid, gov_now_micros(), &ret, &why, eb,
                                     sizeof eb) != GOV_OK) {
            rc = govctl_fail_clean(why, "%s", eb);
            goto out;
        }
        printf("{\"kid\":\"%s\",", kid);
        json_time(stdout, "retires_at", ret);
        printf("}\n");
        rc = govctl_finish_stdout(GOVCTL_OK);
        goto out;
    }
    /* the rotator lease, taken over: gov-identity's scheduled rotator stands
     * by while this rotation runs and until what it published is
     * materialized, instead of rotating too (two new keys) */
    char owner[128];
    int64_t epoch = 0;
    int held = 0;
    snprintf(owner, sizeof owner, "govctl/%ld/%lld", (long)getpid(), (long long)gov_now_micros());
    if (gov_state_identity_rotator_take(r, owner, LEASE_ROTATE_MS, &epoch, eb, sizeof eb) !=
        GOV_OK) {
        rc = govctl_fail_clean(GOV_REASON_REDIS_UNAVAILABLE, "rotator lease: %s", eb);
        goto out;
    }
    op.lease_epoch = epoch;
    /* the keys again, under the lease: a rotation the rotator finished
     * just before is seen */
    gov_keyrotate_keys_free(keys, n);
    keys = NULL;
    n = 0;
    if (gov_keyrotate_keys_load(r, ks, &keys, &n, &why, eb, sizeof eb) != GOV_OK) {
        rc = govctl_fail_clean(why, "%s", eb);
        goto out;
    }
    gov_keyrotate_result_t res;
    gov_err_t rerr = gov_keyrotate_rotate(ks, p, reg, &op, &c.timing, keys, n, gov_now_micros(),
                                          c.activate_in, &res, &why, eb, sizeof eb);
    /* kept a little longer either way: gov-identity materializes what was
     * published before the rotator may act again */
    (void)gov_state_identity_rotator_lease(r, owner, LEASE_AFTER_MS, &held, NULL, eb2,
                                           sizeof eb2);
    if (rerr != GOV_OK) {
        rc = govctl_fail_clean(why, "%s", eb);
        goto out;
    }
    printf("{\"lease_epoch\":%lld,\"kid\":\"%s\",", (long long)epoch, res.kid);
    json_time(stdout, "activates_at", res.activates_at);
    if (res.previous_kid[0])
        printf(",\"previous_kid\":\"%s\",", res.previous_kid);
    else
        printf(",\"previous_kid\":null,");
    json_time(stdout, "retires_at", res.retires_at);
    printf("}\n");
    rc = govctl_finish_stdout(GOVCTL_OK);
out:
    gov_keyrotate_keys_free(keys, n);
    gov_signer_free(op_key);
    gov_kafka_producer_free(p, 2000);
    gov_avro_registry_free(reg);
    gov_keystore_free(ks);
    gov_redis_free(r);
    gov_config_free_strings(rows, nrows);
    return rc;
}

int govctl_cmd_keys(int argc, char **argv) {
    if (argc < 2)
        return govctl_usage("%s", KEYS_HELP);
    if (strcmp(argv[1], "rotate") == 0)
        return keys_run(argc - 1, argv + 1, KEYS_ROTATE);
    if (strcmp(argv[1], "list") == 0)
        return keys_run(argc - 1, argv + 1, KEYS_LIST);
    if (strcmp(argv[1], "retire") == 0)
        return keys_run(argc - 1, argv + 1, KEYS_RETIRE);
    return govctl_usage("%s  [unknown subcommand '%s']", KEYS_HELP, argv[1]);
}
