/* oauth_params.h - the parameters of the token endpoints, read from outside
 * input (oauth_params.c; pure, fuzzed by tests/fuzz/fuzz_oauth_params.c).
 *
 * Thread-safety: reentrant.
 */
#ifndef OAUTH_PARAMS_H
#define OAUTH_PARAMS_H

#include <stddef.h>

#include "gov_err.h"
#include "gov_reason.h"

/* Longest value of one parameter (bytes, decoded). */
#define OAUTH_PARAM_MAX 16384

/* The parameters the endpoints know (NULL: absent); owned (oauth_params_clear). */
typedef struct oauth_params {
    char *grant_type, *client_id, *client_secret, *scope, *tenant, *ttl, *token,
        *token_type_hint;
    int basic;   /* client_id/client_secret came from HTTP Basic */
} oauth_params_t;

/* Reads body[0..len) as application/x-www-form-urlencoded (form != 0) or as
 * a JSON object (form == 0) into p (zeroed first), then the Authorization
 * header authz (may be NULL; only "Basic" is read, RFC 6749 section 2.3.1:
 * base64 of form-urlencoded id ":" form-urlencoded secret).  Unknown
 * parameters are ignored; a known one twice, a value over OAUTH_PARAM_MAX,
 * a broken percent escape, a NUL, invalid UTF-8, a JSON value that is not a
 * string (ttl/expires_in: a string or an integer), credentials both in the
 * header and in the body, or a malformed Basic header are GOV_ERR_INVALID_ARG
 * with *why invalid_request (invalid_json for a body that is not JSON) and
 * the detail in errbuf.  GOV_ERR_NOMEM.  On failure p is cleared.
 * Cost: O(len + strlen(authz)). */
gov_err_t oauth_params_parse(const char *body, size_t len, int form, const char *authz,
                             oauth_params_t *p, gov_reason_t *why, char *errbuf,
                             size_t errbuf_size);
void oauth_params_clear(oauth_params_t *p);

#endif
