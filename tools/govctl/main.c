/* govctl - the operator CLI of Soma Governance Core.
 *
 * One binary, one subcommand per operator task; each lives in its own
 * cmd_*.c file.  Connection settings default to the GOV_* environment of
 * var/stack.env so `set -a; . var/stack.env` is all an operator needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gov_alloc.h"
#include "gov_file.h"
#include "gov_log.h"
#include "gov_util.h"
#include "govctl.h"

int govctl_fail(gov_reason_t code, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "govctl: %s: ", gov_reason_code(code));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return GOVCTL_FAIL;
}

int govctl_fail_clean(gov_reason_t code, const char *fmt, ...) {
    char msg[1024];
    GOV_FORMAT_VA(msg, sizeof msg, fmt);
    govctl_printable(msg);
    return govctl_fail(code, "%s", msg);
}

int govctl_finish_stdout(int rc) {
    if (fflush(stdout) != 0 || ferror(stdout))
        return govctl_fail(GOV_REASON_IO_ERROR, "cannot write to standard output: %s",
                           strerror(errno));
    return rc;
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

void govctl_printable(char *s) {
    unsigned char *p = (unsigned char *)s;
    size_t left = strlen(s);
    while (left > 0) {
        size_t n = *p < 0x80 ? 1 : gov_utf8_seq_len(p, left);
        if (n == 0 || *p < 0x20 || *p == 0x7f || (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)) {
            for (size_t i = 0; i < (n ? n : 1); i++)
                p[i] = '?';
            n = n ? n : 1;
        }
        p += n;
        left -= n;
    }
}

gov_reason_t govctl_file_error_code(gov_err_t err) {
    if (err == GOV_ERR_NOMEM)
        return GOV_REASON_INTERNAL_ERROR;
    return err == GOV_ERR_TOO_LARGE ? GOV_REASON_TOO_LARGE : GOV_REASON_IO_ERROR;
}

int govctl_read_file(const char *path, size_t max, char **out, size_t *out_len) {
    char eb[1024];
    gov_err_t err = gov_file_read(path, max, GOV_FILE_DASH_IS_STDIN | GOV_FILE_ALLOW_STREAM, out,
                                  out_len, eb, sizeof eb);
    if (err == GOV_OK)
        return GOVCTL_OK;
    /* the path is the operator's, shown as text */
    return govctl_fail_clean(govctl_file_error_code(err), "%s", eb);
}

void govctl_operator(char *buf, size_t size) {
    const char *user = getenv("USER");
    if (user == NULL || user[0] == 0) {
        struct passwd *pw = getpwuid(getuid());
        user = pw && pw->pw_name ? pw->pw_name : NULL;
    }
    if (user)
        snprintf(buf, size, "govctl:%s", user);
    else
        snprintf(buf, size, "govctl:uid%u", (unsigned)getuid());
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
          "  verify --trust TRUST.json [--tenant T] [--current-version V --current-checksum C\n"
          "         [--current-document DOC.json]] BUNDLE.json\n"
          "                            every verification rule, offline, as gov-constitution\n"
          "  publish --tenant T [--brokers B] [--source S] BUNDLE.json\n"
          "                            produce the bundle to constitution.bundles (acks=all)\n"
          "  rulepack validate FILE|-  every rule pack rule of docs/policy.md, offline, as\n"
          "                            gov-rulepacks and every edge (the contract limits)\n"
          "  rulepack sign --signer ID --key PRIV.pem [--sigs SIGFILE] FILE\n"
          "                            validate, then add ID's Ed25519 signature of the pack's\n"
          "                            canonical SHA-256 to SIGFILE (default FILE.sig)\n"
          "  rulepack publish [--brokers B] [--sigs SIGFILE] FILE\n"
          "                            validate, then produce RulePackPublished with the\n"
          "                            signatures of SIGFILE to policy.rulepacks keyed by\n"
          "                            the pack's tenant (acks=all)\n"
          "  clients add --tenants A,B --scopes \"X Y\" [--brokers B]\n"
          "                            register a client (ClientRegistered on identity.clients,\n"
          "                            acks=all); prints {\"client_id\",\"client_secret\"} once\n"
          "  clients remove [--brokers B] CLIENT_ID\n"
          "                            produce ClientRemoved (final)\n"
          "  keys rotate [--activate-in SECONDS] [--backend file|pkcs11] [--brokers B]\n"
          "                            new Ed25519 key in the key store, KeyRotated pending and\n"
          "                            the previous key retiring (acks=all); prints one JSON line\n"
          "  keys list                 the keys gov-identity materialized, one JSON line each\n"
          "  keys retire KID           emergency: KeyRotated retired now (leaves the JWKS; its\n"
          "                            tokens stop verifying)\n"
          "\n"
          "Connection defaults come from GOV_REDIS_HOST, GOV_REDIS_PORT, GOV_KAFKA_BROKERS;\n"
          "GOV_REDIS_NODES (host:port,...) names a Redis Cluster instead of one Redis.\n"
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
    if (strcmp(cmd, "rulepack") == 0)
        return govctl_cmd_rulepack(argc - 1, argv + 1);
    if (strcmp(cmd, "clients") == 0)
        return govctl_cmd_clients(argc - 1, argv + 1);
    if (strcmp(cmd, "keys") == 0)
        return govctl_cmd_keys(argc - 1, argv + 1);
    usage(stderr);
    return govctl_usage("unknown command '%s'", cmd);
}
