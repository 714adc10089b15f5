/* govctl - the operator CLI of Soma Governance Core.
 *
 * One binary, one subcommand per operator task; each lives in its own
 * cmd_*.c file.  Connection settings default to the GOV_* environment of
 * var/stack.env so `set -a; . var/stack.env` is all an operator needs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_log.h"
#include "govctl.h"

int govctl_fail(const char *code, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "govctl: %s: ", code);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return GOVCTL_FAIL;
}

int govctl_usage(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "govctl: usage: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return GOVCTL_USAGE;
}

const char *govctl_env(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static void usage(FILE *out) {
    fputs("usage: govctl <command> [options]\n"
          "\n"
          "commands:\n"
          "  audit verify --tenant T   walk audit:{T} and check its hash chain\n"
          "  checksum [--canonicalization jcs|somabrain-json] [--hash-alg sha3-512|sha256]\n"
          "           [--print-canonical] FILE|-\n"
          "                            checksum (or canonical bytes) of a JSON document;\n"
          "                            defaults: somabrain-json, sha3-512\n"
          "  keygen --signer ID --out DIR\n"
          "                            new Ed25519 pair DIR/ID.key (PKCS#8, 0600) + DIR/ID.pub\n"
          "  sign --signer ID --key PRIV.pem [--out FILE] BUNDLE.json\n"
          "                            check the bundle's checksum, add ID's signature\n"
          "  verify --trust TRUST.json [--current-version V --current-checksum C] BUNDLE.json\n"
          "                            every verification rule, offline, as gov-constitution\n"
          "  publish --tenant T [--brokers B] [--source S] BUNDLE.json\n"
          "                            produce the bundle to constitution.bundles (acks=all)\n"
          "\n"
          "Connection defaults come from GOV_REDIS_HOST, GOV_REDIS_PORT, GOV_KAFKA_BROKERS.\n"
          "Exit: 0 success, 1 rejected/failed (reason code on stderr), 2 usage error.\n",
          out);
}

int main(int argc, char **argv) {
    gov_alloc_install_jansson();
    gov_log_init("govctl", GOV_LOG_WARN);
    if (argc < 2) {
        usage(stderr);
        return GOVCTL_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return GOVCTL_OK;
    }
    if (strcmp(cmd, "audit") == 0)
        return govctl_cmd_audit(argc - 1, argv + 1);
    if (strcmp(cmd, "checksum") == 0)
        return govctl_cmd_checksum(argc - 1, argv + 1);
    if (strcmp(cmd, "keygen") == 0)
        return govctl_cmd_keygen(argc - 1, argv + 1);
    if (strcmp(cmd, "sign") == 0)
        return govctl_cmd_sign(argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0)
        return govctl_cmd_verify(argc - 1, argv + 1);
    if (strcmp(cmd, "publish") == 0)
        return govctl_cmd_publish(argc - 1, argv + 1);
    usage(stderr);
    return govctl_usage("unknown command '%s'", cmd);
}
