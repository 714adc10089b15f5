/* cmd_clients.c - `govctl clients add` and `govctl clients remove`.
 *
 * add: draws a client secret (32 bytes from OpenSSL's CSPRNG, base64url), a
 * client id ("client-" + 16 random bytes in base64url), produces a
 * ClientRegistered with only the secret's SHA-256 ("sha256:<hex>" over the
 * secret's base64url text) on identity.clients keyed by the client id,
 * waits for acks=all, and only then prints one JSON object
 * {"client_id": ..., "client_secret": ...} on stdout - the one time the
 * secret exists outside the operator's hands.  A fast hash is right here:
 * the secret has 256 bits of entropy, nothing to guess a dictionary for.
 * The secret is never logged and is wiped from memory after printing.
 *
 * remove: produces ClientRemoved for the id (acks=all); gov-identity
 * deletes the client and keeps a tombstone, so the id cannot come back.
 *
 * Both sign their event with an identity operator key (--key PEM, --signer
 * ID, or GOV_IDENTITY_OPERATOR_KEY_FILE and the id the identity trust file
 * gives the key): gov-identity dead-letters an identity event without a
 * threshold of trusted signatures, and gov-edge uses no client whose record
 * does not verify.
 *
 * What it does not do: talk to Redis (gov-identity materializes), or retry
 * (a failure exits 1 with kafka_unavailable and nothing was registered
 * that the operator was told about).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "gov_alloc.h"
#include "gov_events.h"
#include "gov_b64url.h"
#include "gov_file.h"
#include "gov_signature.h"
#include "gov_signer.h"
#include "gov_util.h"
#include "govctl.h"

#define CLIENTS_HELP                                                                           \
    "govctl clients add --tenants A,B --scopes \"X Y\" [--key PEM] [--signer ID] [--brokers B] | " \
    "govctl clients remove [--key PEM] [--signer ID] [--brokers B] CLIENT_ID"

/* Splits s (copied into buf) at any of seps into items (at most max);
 * returns the count, or -1 when there are more than max. */
static int split(const char *s, const char *seps, char *buf, size_t buf_size, char **items,
                 int max) {
    int n = 0;
    snprintf(buf, buf_size, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, seps, &save); t; t = strtok_r(NULL, seps, &save)) {
        if (n == max)
            return -1;
        items[n++] = t;
    }
    return n;
}

int govctl_identity_signer(const char *keypath, const char *signer_id, gov_signer_t **key,
                           char id[GOV_SIGNER_ID_MAX + 1]) {
    char eb[512] = "";
    gov_reason_t why = GOV_REASON_NONE;
    gov_trust_t *trust = NULL;
    *key = NULL;
    if (keypath == NULL)
        keypath = govctl_env("GOV_IDENTITY_OPERATOR_KEY_FILE", NULL);
    if (signer_id == NULL)
        signer_id = govctl_env("GOV_IDENTITY_SIGNER", NULL);
    if (keypath == NULL || keypath[0] == 0)
        return govctl_fail(GOV_REASON_NO_SIGNATURES,
                           "identity events are signed: give the operator key (--key PEM or "
                           "GOV_IDENTITY_OPERATOR_KEY_FILE)");
    if (gov_events_operator_key_load(keypath, key, &why, eb, sizeof eb) != GOV_OK)
        return govctl_fail_clean(why, "%s", eb);
    if (signer_id && signer_id[0]) {
        if (!gov_signer_id_valid(signer_id)) {
            gov_signer_free(*key);
            *key = NULL;
            return govctl_fail_clean(GOV_REASON_MALFORMED_SIGNATURE, "'%s' is not a signer id",
                                     signer_id);
        }
        snprintf(id, GOV_SIGNER_ID_MAX + 1, "%s", signer_id);
        return GOVCTL_OK;
    }
    /* no id given: the one the identity trust file gives this key */
    const char *tpath = govctl_env("GOV_IDENTITY_TRUST_FILE", NULL);
    int found = tpath && gov_file_trust_load(tpath, &trust, eb, sizeof eb) == GOV_OK &&
                gov_trust_signer_of(trust, gov_signer_public_key(*key), id) == 0;
    gov_trust_free(trust);
    if (found)
        return GOVCTL_OK;
    gov_signer_free(*key);
    *key = NULL;
    return govctl_fail_clean(GOV_REASON_UNTRUSTED_SIGNER,
                             "no --signer given and the identity trust file (%s) lists no signer "
                             "with the key of %s%s%s",
                             tpath ? tpath : "GOV_IDENTITY_TRUST_FILE unset", keypath,
                             eb[0] ? ": " : "", eb);
}

/* Signs ev (a ClientRegistered or ClientRemoved) as the operator o names.
 * GOVCTL_OK, or GOVCTL_FAIL after printing. */
static int sign_event(json_t *ev, const char *type, const char *keypath, const char *signer_id) {
    gov_signer_t *key = NULL;
    char id[GOV_SIGNER_ID_MAX + 1], eb[256] = "";
    int rc = govctl_identity_signer(keypath, signer_id, &key, id);
    if (rc != GOVCTL_OK)
        return rc;
    gov_events_signer_t s = {.signer_id = id, .signer = key};
    if (gov_events_sign(ev, type, &s, 1, eb, sizeof eb) != GOV_OK)
        rc = govctl_fail(GOV_REASON_CRYPTO_ERROR, "signing the %s: %s", type, eb);
    gov_signer_free(key);
    return rc;
}

/* Shared option parsing: --brokers, --key, --signer, and for add
 * --tenants/--scopes. */
typedef struct opts {
    const char *brokers, *tenants, *scopes, *key, *signer;
} opts_t;

static int parse(int argc, char **argv, opts_t *o, const char *help) {
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"tenants", required_argument, NULL, 't'},
        {"scopes", required_argument, NULL, 's'},
        {"key", required_argument, NULL, 'k'},
        {"signer", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    int c;
    o->brokers = govctl_env("GOV_KAFKA_BROKERS", "127.0.0.1:19092");
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":b:t:s:k:i:", longopts, NULL)) != -1) {
        if (c == 'b')
            o->brokers = optarg;
        else if (c == 'k')
            o->key = optarg;
        else if (c == 'i')
            o->signer = optarg;
        else if (c == 't')
            o->tenants = optarg;
        else if (c == 's')
            o->scopes = optarg;
        else {
            const char *opt = optind >= 1 && optind - 1 < argc ? argv[optind - 1] : "?";
            return govctl_usage(c == ':' ? "%s  [option '%s' needs a value]"
                                         : "%s  [unknown option '%s']", help, opt);
        }
    }
    if (o->brokers[0] == 0)
        return govctl_usage("%s  [--brokers is empty]", help);
    return GOVCTL_OK;
}

static int clients_add(int argc, char **argv) {
    static const char *help =
        "govctl clients add --tenants A,B --scopes \"X Y\" [--key PEM] [--signer ID] [--brokers B]";
    opts_t o = {0};
    int rc = parse(argc, argv, &o, help);
    if (rc != GOVCTL_OK)
        return rc;
    if (optind != argc || o.tenants == NULL || o.scopes == NULL)
        return govctl_usage("%s  [--tenants and --scopes are required, nothing else]", help);
    char tbuf[GOV_EVENTS_CLIENT_LIST_MAX * (GOV_TENANT_MAX + 1) + 1];
    char sbuf[GOV_EVENTS_CLIENT_LIST_MAX * (GOV_EVENTS_SCOPE_MAX + 1) + 1];
    char *tenants[GOV_EVENTS_CLIENT_LIST_MAX], *scopes[GOV_EVENTS_CLIENT_LIST_MAX];
    if (strlen(o.tenants) >= sizeof tbuf || strlen(o.scopes) >= sizeof sbuf)
        return govctl_fail(GOV_REASON_TOO_LARGE, "--tenants or --scopes is too long");
    int nt = split(o.tenants, ",", tbuf, sizeof tbuf, tenants, GOV_EVENTS_CLIENT_LIST_MAX);
    int ns = split(o.scopes, " ", sbuf, sizeof sbuf, scopes, GOV_EVENTS_CLIENT_LIST_MAX);
    if (nt <= 0 || ns <= 0)
        return govctl_fail(GOV_REASON_INVALID_CLIENT,
                           "--tenants and --scopes need 1 to %d entries each",
                           GOV_EVENTS_CLIENT_LIST_MAX);
    for (int i = 0; i < nt; i++) {
        if (!gov_tenant_valid(tenants[i], strlen(tenants[i])))
            return govctl_fail_clean(GOV_REASON_INVALID_TENANT,
                                     "tenant '%s' is not a tenant id (1-64 of A-Z a-z 0-9 . _ -, not starting with . or -)",
                                     tenants[i]);
        for (int j = 0; j < i; j++)
            if (strcmp(tenants[i], tenants[j]) == 0)
                return govctl_fail_clean(GOV_REASON_INVALID_CLIENT, "tenant '%s' is repeated",
                                         tenants[i]);
    }
    for (int i = 0; i < ns; i++) {
        if (!gov_events_scope_token_valid(scopes[i]))
            return govctl_fail_clean(GOV_REASON_INVALID_CLIENT,
                                     "scope '%s' is not an RFC 6749 scope-token (printable ASCII without space, '\"' or '\\', at most %d bytes)",
                                     scopes[i], GOV_EVENTS_SCOPE_MAX);
        for (int j = 0; j < i; j++)
            if (strcmp(scopes[i], scopes[j]) == 0)
                return govctl_fail_clean(GOV_REASON_INVALID_CLIENT, "scope '%s' is repeated",
                                         scopes[i]);
    }

    unsigned char raw[32], id_raw[16], digest[32];
    char secret[48], id_b64[24], client_id[32], secret_hash[7 + 64 + 1], operator_name[128];
    unsigned int dlen = 0;
    json_t *ev = NULL, *out = NULL;
    rc = GOVCTL_FAIL;
    if (RAND_bytes(raw, sizeof raw) != 1 || RAND_bytes(id_raw, sizeof id_raw) != 1) {
        rc = govctl_fail(GOV_REASON_CRYPTO_ERROR, "the CSPRNG failed");
        goto out;
    }
    gov_b64url_encode(raw, sizeof raw, secret);
    gov_b64url_encode(id_raw, sizeof id_raw, id_b64);
    snprintf(client_id, sizeof client_id, "client-%s", id_b64);
    if (EVP_Digest(secret, strlen(secret), digest, &dlen, EVP_sha256(), NULL) != 1) {
        rc = govctl_fail(GOV_REASON_CRYPTO_ERROR, "SHA-256 failed");
        goto out;
    }
    memcpy(secret_hash, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        snprintf(secret_hash + 7 + 2 * i, 3, "%02x", digest[i]);
    govctl_operator(operator_name, sizeof operator_name);
    gov_client_registered_t reg = {
        .client_id = client_id, .secret_hash = secret_hash,
        .tenants = (const char *const *)tenants, .ntenants = (size_t)nt,
        .scopes = (const char *const *)scopes, .nscopes = (size_t)ns,
        .registered_by = operator_name,
    };
    if ((ev = gov_events_client_registered_new(&reg)) == NULL) {
        rc = govctl_fail(GOV_REASON_INTERNAL_ERROR, "out of memory");
        goto out;
    }
    if ((rc = sign_event(ev, "ClientRegistered", o.key, o.signer)) != GOVCTL_OK)
        goto out;
    int32_t partition;
    int64_t offset;
    if ((rc = govctl_produce_event(o.brokers, GOV_TOPIC_IDENTITY_CLIENTS, "ClientRegistered",
                                   client_id, ev, "the ClientRegistered", NULL, &partition,
                                   &offset)) != GOVCTL_OK)
        goto out;
    /* acknowledged: now, and only now, the secret is shown */
    out = json_pack("{s:s, s:s}", "client_id", client_id, "client_secret", secret);
    char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
    if (text == NULL) {
        rc = govctl_fail(GOV_REASON_INTERNAL_ERROR, "out of memory");
        goto out;
    }
    printf("%s\n", text);
    OPENSSL_cleanse(text, strlen(text));
    gov_free(text);
    rc = govctl_finish_stdout(GOVCTL_OK);
out:
    json_decref(out);
    json_decref(ev);
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(secret, sizeof secret);
    return rc;
}

static int clients_remove(int argc, char **argv) {
    static const char *help =
        "govctl clients remove [--key PEM] [--signer ID] [--brokers B] CLIENT_ID";
    opts_t o = {0};
    int rc = parse(argc, argv, &o, help);
    if (rc != GOVCTL_OK)
        return rc;
    if (o.tenants || o.scopes || argc - optind != 1)
        return govctl_usage("%s  [exactly one CLIENT_ID is required]", help);
    const char *client_id = argv[optind];
    if (!gov_tenant_valid(client_id, strlen(client_id)))
        return govctl_fail_clean(GOV_REASON_INVALID_CLIENT, "'%s' is not a client id", client_id);
    char operator_name[128];
    govctl_operator(operator_name, sizeof operator_name);
    json_t *ev = gov_events_client_removed_new(NULL, 0, client_id, operator_name);
    if (ev == NULL)
        return govctl_fail(GOV_REASON_INTERNAL_ERROR, "out of memory");
    if ((rc = sign_event(ev, "ClientRemoved", o.key, o.signer)) != GOVCTL_OK) {
        json_decref(ev);
        return rc;
    }
    rc = govctl_publish_event(o.brokers, GOV_TOPIC_IDENTITY_CLIENTS, "ClientRemoved", client_id,
                              ev, json_string_value(json_object_get(ev, "event_id")),
                              "the ClientRemoved", NULL);
    json_decref(ev);
    return rc;
}

int govctl_cmd_clients(int argc, char **argv) {
    if (argc < 2)
        return govctl_usage("%s", CLIENTS_HELP);
    if (strcmp(argv[1], "add") == 0)
        return clients_add(argc - 1, argv + 1);
    if (strcmp(argv[1], "remove") == 0)
        return clients_remove(argc - 1, argv + 1);
    return govctl_usage("%s  [unknown subcommand '%s']", CLIENTS_HELP, argv[1]);
}
