/* test_token_interop.c - gov-edge's tokens read by independent, maintained libraries.
 *
 * What: a client registered with `govctl clients add` gets tokens from the stack's gov-edge
 * (POST /v1/tokens/issue), and tests/interop/token_interop.mjs checks them with node and
 * the npm packages `jose` (jwtVerify against /.well-known/jwks.json: issuer from
 * /.well-known/openid-configuration, the configured audience, algorithms ['EdDSA'] only;
 * a token signed by a key not in the JWKS, a tampered payload, a wrong audience and a
 * non-EdDSA allow-list all fail) and `openid-client` (client-credentials grant with HTTP
 * Basic and with the form body, RFC 7662 introspection active/inactive, RFC 7009
 * revocation then inactive).  Nothing of libgov verifies anything here.
 *
 * How: tests/interop/install.sh puts the pinned packages in a cache outside the repository
 * (`make deps` runs it; here it only confirms the cache, or fills it once); the script is
 * copied into a work folder next to a node_modules link to that cache (ES modules resolve
 * packages from the script's folder).  The test waits until the edge knows the new client
 * (its first 200 from /v1/tokens/issue), never a fixed sleep.  The checker is itself checked:
 * with a wrong audience and with a wrong secret it must fail, naming why.
 *
 * Settings: the edge is GOV_EDGE_URL and its audience GOV_TOKEN_AUDIENCE (environment, else
 * var/stack.env); the tenant is the stack's demo tenant (deploy/demo.sh loads its
 * constitution, so the edge has a constitution_hash to put in the token).
 *
 * What it does not do: the verification rules themselves (tests/unit/test_jwt.c), rotation
 * or both edge replicas (test_tokens), load (bench/run.sh token-issue-*).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest_util.h"

#define WAIT_MS 60000
#define TENANT "demo"
#define SCOPES "interop.read interop.write"

static char g_out[1 << 15], g_err[1 << 15];
static char workdir[512], script[600], edge[256], audience[256];
static char client_id[128], client_secret[128];
static const char *node_bin(void) {
    return access("/usr/bin/node", X_OK) == 0 ? "/usr/bin/node" : "node";
}

static int setup(void **state) {
    (void)state;
    snprintf(edge, sizeof edge, "%s", itest_env("GOV_EDGE_URL", ""));
    snprintf(audience, sizeof audience, "%s", itest_env("GOV_TOKEN_AUDIENCE", ""));
    if (edge[0] == 0 || audience[0] == 0) {
        fprintf(stderr, "test_token_interop: GOV_EDGE_URL and GOV_TOKEN_AUDIENCE must be set "
                        "(environment or var/stack.env: deploy/stack.sh start writes them)\n");
        return -1;
    }
    /* the pinned npm packages, in their cache; prints the cache folder */
    const char *inst[] = {"bash", itest_path("tests/interop/install.sh"), NULL};
    char cache[512];
    if (itest_run_capture(inst, NULL, cache, sizeof cache, g_err, sizeof g_err) != 0) {
        fprintf(stderr, "test_token_interop: tests/interop/install.sh failed: %s\n", g_err);
        return -1;
    }
    cache[strcspn(cache, "\r\n")] = 0;
    if (itest_workdir_new("token-interop", workdir, sizeof workdir) != 0)
        return -1;
    char mods[600], link[600];
    snprintf(mods, sizeof mods, "%s/node_modules", cache);
    snprintf(link, sizeof link, "%s/node_modules", workdir);
    snprintf(script, sizeof script, "%s/token_interop.mjs", workdir);
    if (symlink(mods, link) != 0) {
        perror("test_token_interop: symlink node_modules");
        return -1;
    }
    size_t n = 0;
    char *src = itest_read_file(itest_path("tests/interop/token_interop.mjs"), &n);
    if (src == NULL)
        return -1;
    itest_write_file(script, src, n);
    free(src);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (client_id[0]) {
        const char *rm[] = {"clients", "remove", client_id, NULL};
        (void)itest_govctl(NULL, rm, g_out, sizeof g_out, g_err, sizeof g_err);
    }
    if (workdir[0])
        itest_workdir_remove(workdir);
    return 0;
}

/* POST /v1/tokens/issue with HTTP Basic: the status (0 when the edge did not answer). */
static long issue_status(void) {
    char url[300];
    snprintf(url, sizeof url, "%s/v1/tokens/issue", edge);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return 0;
    long status = 0;
    FILE *sink = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, client_id);
    curl_easy_setopt(c, CURLOPT_PASSWORD, client_secret);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "grant_type=client_credentials&tenant=" TENANT);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    if (sink)
        curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (sink)
        fclose(sink);
    return status;
}

static int client_known(void *opaque) {
    (void)opaque;
    return issue_status() == 200;
}

static int run_check(const char *aud, const char *secret) {
    const char *argv[] = {node_bin(), script,           "--edge",          edge,
                          "--client-id", client_id,     "--client-secret", secret,
                          "--audience",  aud,           "--tenant",        TENANT,
                          "--scope",     SCOPES,        NULL};
    return itest_run_capture(argv, NULL, g_out, sizeof g_out, g_err, sizeof g_err);
}

static void test_jose_and_introspection(void **state) {
    (void)state;
    const char *add[] = {"clients", "add", "--tenants", TENANT, "--scopes", SCOPES, NULL};
    int rc = itest_govctl(NULL, add, g_out, sizeof g_out, g_err, sizeof g_err);
    itest_expect_ok(rc, g_err, __LINE__);
    json_error_t je;
    json_t *o = json_loads(g_out, 0, &je);
    const char *id = json_string_value(json_object_get(o, "client_id"));
    const char *sec = json_string_value(json_object_get(o, "client_secret"));
    if (id == NULL || sec == NULL)
        fail_msg("govctl clients add printed no {client_id, client_secret}: %s", g_out);
    snprintf(client_id, sizeof client_id, "%s", id);
    snprintf(client_secret, sizeof client_secret, "%s", sec);
    json_decref(o);

    /* the edge learns the client through identity.clients -> gov-identity -> Redis */
    if (itest_wait_for(client_known, NULL, WAIT_MS, 100) < 0)
        fail_msg("%s/v1/tokens/issue did not answer 200 for the new client %s within %d ms "
                 "(last status %ld)", edge, client_id, WAIT_MS, issue_status());

    rc = run_check(audience, client_secret);
    if (rc != 0 || strstr(g_out, "checks passed") == NULL)
        fail_msg("token_interop.mjs exit %d\nstdout:\n%s\nstderr:\n%s", rc, g_out, g_err);
    printf("%s", g_out);

    /* the checker can fail: another audience, and a wrong secret */
    char other[300];
    snprintf(other, sizeof other, "%s-not-ours", audience);
    rc = run_check(other, client_secret);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(g_err, "ERR_JWT_CLAIM_VALIDATION_FAILED"));
    rc = run_check(audience, "not-the-secret-of-this-client-0000000000000");
    assert_int_equal(rc, 1);
    assert_non_null(strstr(g_err, "client-credentials grant"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jose_and_introspection),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
