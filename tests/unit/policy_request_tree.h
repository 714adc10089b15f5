/* policy_request_tree.h - the evaluation request parser as it was before the
 * one-pass parser (common/core/gov_policy_request.c): gov_canon_parse into a
 * jansson tree, gov_json_depth, a member-by-member validation of the tree,
 * and SHA-256 over gov_canon_serialize's RFC 8785 bytes.  Kept here, word
 * for word, as the reference the new parser is run against: same code, same
 * reason, same digest, same fields for every input
 * (tests/unit/test_policy_parse.c over the vectors and the fuzz corpus,
 * tests/fuzz/fuzz_policy_request.c on whatever the fuzzer finds).  Tests
 * only: nothing in the product links it.
 */
#ifndef POLICY_REQUEST_TREE_H
#define POLICY_REQUEST_TREE_H

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_canon.h"
#include "gov_json.h"
#include "gov_policy.h"
#include "gov_util.h"

#define TREE_KEY_SHOWN_MAX 32

/* The request as the tree parser gave it: pointers borrowed from doc. */
typedef struct tree_request {
    json_t *doc;
    const char *tenant;
    const char *session_id;
    const char *user;
    const char *role;
    const char *prompt;
    size_t prompt_len;
    const char *action;
    const char *tool_name;
    const char *tool_category;
    const json_t *metadata;
    char input_digest[GOV_SHA256_HEXLEN + 1];
} tree_request_t;

static void tree_request_clear(tree_request_t *req) {
    if (req == NULL)
        return;
    json_decref(req->doc);
    memset(req, 0, sizeof *req);
}

/* Records why a request is refused: the reason value in *why, the detail
 * (without the code) in errbuf. */
#define tree_req_fail(why, r, errbuf, errbuf_size, ...) \
    (*(why) = (r), gov_errbuf((errbuf), (errbuf_size), __VA_ARGS__))

/* A string member: NULL (absent) is allowed when optional.  Checks type,
 * length (min_len..max) and U+0000 (unless allow_nul).  *out stays NULL when
 * absent. */
static gov_err_t tree_req_string(const json_t *obj, const char *name, const char *path, int required,
                            size_t min_len, size_t max, int allow_nul, const char **out,
                            size_t *out_len, gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    const json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (v == NULL) {
        if (!required)
            return GOV_OK;
        tree_req_fail(why, GOV_REASON_MISSING_FIELD, errbuf, errbuf_size, "%s is required", path);
        return GOV_ERR_PARSE;
    }
    if (!json_is_string(v)) {
        tree_req_fail(why, GOV_REASON_INVALID_TYPE, errbuf, errbuf_size, "%s must be a string", path);
        return GOV_ERR_PARSE;
    }
    size_t n = json_string_length(v);
    if (n > max) {
        tree_req_fail(why, GOV_REASON_TOO_LARGE, errbuf, errbuf_size,
                 "%s is %zu bytes (limit %zu)", path, n, max);
        return GOV_ERR_TOO_LARGE;
    }
    if (n < min_len) {
        tree_req_fail(why, GOV_REASON_INVALID_VALUE, errbuf, errbuf_size, "%s must not be empty", path);
        return GOV_ERR_PARSE;
    }
    if (!allow_nul && memchr(json_string_value(v), '\0', n) != NULL) {
        tree_req_fail(why, GOV_REASON_INVALID_VALUE, errbuf, errbuf_size,
                 "%s must not contain U+0000", path);
        return GOV_ERR_PARSE;
    }
    *out = json_string_value(v);
    if (out_len != NULL)
        *out_len = n;
    return GOV_OK;
}

/* Names the bytewise-smallest member of obj not in allowed[]. */
static gov_err_t tree_req_members(const json_t *obj, const char *const *allowed, const char *prefix,
                             gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    const char *worst = gov_json_unknown_member(obj, allowed);
    if (worst == NULL)
        return GOV_OK;
    char key[48];
    gov_utf8_shorten(key, sizeof key, worst, TREE_KEY_SHOWN_MAX);
    tree_req_fail(why, GOV_REASON_UNKNOWN_FIELD, errbuf, errbuf_size,
             "%s%s is not a known member", prefix, key);
    return GOV_ERR_PARSE;
}

static gov_err_t tree_request_validate(tree_request_t *r, const gov_policy_limits_t *lim,
                                  gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    static const char *const allowed[] = {"tenant", "session_id", "user",     "role", "prompt",
                                          "action", "tool",       "metadata", NULL};
    static const char *const tool_allowed[] = {"name", "category", NULL};
    const json_t *doc = r->doc;
    size_t smax = lim->max_string_bytes, tlen = 0;
    gov_err_t rc;

    if (!json_is_object(doc)) {
        tree_req_fail(why, GOV_REASON_INVALID_TYPE, errbuf, errbuf_size,
                 "the request must be a JSON object");
        return GOV_ERR_PARSE;
    }
    if ((rc = tree_req_members(doc, allowed, "", why, errbuf, errbuf_size)) != GOV_OK)
        return rc;
    if ((rc = tree_req_string(doc, "tenant", "tenant", 1, 1, GOV_TENANT_MAX, 0, &r->tenant, &tlen,
                         why, errbuf, errbuf_size)) != GOV_OK)
        return rc;
    if (!gov_tenant_valid(r->tenant, tlen)) {
        tree_req_fail(why, GOV_REASON_INVALID_TENANT, errbuf, errbuf_size,
                 "tenant must be 1-64 characters of [A-Za-z0-9._-], not "
                 "starting with . or -");
        return GOV_ERR_PARSE;
    }
    if ((rc = tree_req_string(doc, "session_id", "session_id", 1, 1, smax, 0, &r->session_id, NULL,
                         why, errbuf, errbuf_size)) != GOV_OK ||
        (rc = tree_req_string(doc, "user", "user", 1, 1, smax, 0, &r->user, NULL, why, errbuf,
                         errbuf_size)) != GOV_OK ||
        (rc = tree_req_string(doc, "role", "role", 1, 1, smax, 0, &r->role, NULL, why, errbuf,
                         errbuf_size)) != GOV_OK ||
        (rc = tree_req_string(doc, "prompt", "prompt", 1, 0, lim->max_prompt_bytes, 1, &r->prompt,
                         &r->prompt_len, why, errbuf, errbuf_size)) != GOV_OK ||
        (rc = tree_req_string(doc, "action", "action", 0, 1, smax, 0, &r->action, NULL, why, errbuf,
                         errbuf_size)) != GOV_OK)
        return rc;

    const json_t *tool = json_object_get(doc, "tool");
    if (tool != NULL) {
        if (!json_is_object(tool)) {
            tree_req_fail(why, GOV_REASON_INVALID_TYPE, errbuf, errbuf_size, "tool must be an object");
            return GOV_ERR_PARSE;
        }
        if ((rc = tree_req_members(tool, tool_allowed, "tool.", why, errbuf, errbuf_size)) != GOV_OK ||
            (rc = tree_req_string(tool, "name", "tool.name", 1, 1, smax, 0, &r->tool_name, NULL,
                             why, errbuf, errbuf_size)) != GOV_OK ||
            (rc = tree_req_string(tool, "category", "tool.category", 1, 1, smax, 0,
                             &r->tool_category, NULL, why, errbuf, errbuf_size)) != GOV_OK)
            return rc;
    }

    const json_t *md = json_object_get(doc, "metadata");
    if (md != NULL) {
        if (!json_is_object(md)) {
            tree_req_fail(why, GOV_REASON_INVALID_TYPE, errbuf, errbuf_size,
                     "metadata must be an object of strings");
            return GOV_ERR_PARSE;
        }
        if (json_object_size(md) > lim->max_metadata_entries) {
            tree_req_fail(why, GOV_REASON_TOO_LARGE, errbuf, errbuf_size,
                     "metadata has %zu entries (limit %zu)", json_object_size(md),
                     lim->max_metadata_entries);
            return GOV_ERR_TOO_LARGE;
        }
        /* Of several bad entries the bytewise-smallest key is named, so the
         * error does not depend on the member order. */
        enum { MD_OK, MD_EMPTY_KEY, MD_LONG_KEY, MD_TYPE, MD_LONG, MD_NUL } md_why = MD_OK;
        const char *bad = NULL, *k;
        json_t *v;
        json_object_foreach((json_t *)md, k, v) {
            size_t klen = strlen(k);
            int w = MD_OK;
            if (klen == 0)
                w = MD_EMPTY_KEY;
            else if (klen > smax)
                w = MD_LONG_KEY;
            else if (!json_is_string(v))
                w = MD_TYPE;
            else if (json_string_length(v) > smax)
                w = MD_LONG;
            else if (memchr(json_string_value(v), '\0', json_string_length(v)) != NULL)
                w = MD_NUL;
            if (w != MD_OK && (bad == NULL || strcmp(k, bad) < 0)) {
                bad = k;
                md_why = w;
            }
        }
        if (bad != NULL) {
            char key[48];
            gov_utf8_shorten(key, sizeof key, bad, TREE_KEY_SHOWN_MAX);
            /* What each kind of bad entry is reported as, by md_why. */
            static const struct {
                gov_reason_t reason;
                gov_err_t err;
            } md_fail[] = {
                [MD_OK] = {GOV_REASON_INVALID_VALUE, GOV_ERR_PARSE},
                [MD_EMPTY_KEY] = {GOV_REASON_INVALID_VALUE, GOV_ERR_PARSE},
                [MD_LONG_KEY] = {GOV_REASON_TOO_LARGE, GOV_ERR_TOO_LARGE},
                [MD_TYPE] = {GOV_REASON_INVALID_TYPE, GOV_ERR_PARSE},
                [MD_LONG] = {GOV_REASON_TOO_LARGE, GOV_ERR_TOO_LARGE},
                [MD_NUL] = {GOV_REASON_INVALID_VALUE, GOV_ERR_PARSE},
            };
            char msg[160];
            if (md_why == MD_EMPTY_KEY)
                snprintf(msg, sizeof msg, "metadata keys must not be empty");
            else if (md_why == MD_LONG_KEY)
                snprintf(msg, sizeof msg, "metadata key %s is longer than %zu bytes", key, smax);
            else if (md_why == MD_TYPE)
                snprintf(msg, sizeof msg, "metadata.%s must be a string", key);
            else if (md_why == MD_LONG)
                snprintf(msg, sizeof msg, "metadata.%s is longer than %zu bytes", key, smax);
            else
                snprintf(msg, sizeof msg, "metadata.%s must not contain U+0000", key);
            tree_req_fail(why, md_fail[md_why].reason, errbuf, errbuf_size, "%s", msg);
            return md_fail[md_why].err;
        }
        r->metadata = md;
    }
    return GOV_OK;
}

static gov_err_t tree_request_parse(const char *text, size_t len, const gov_policy_limits_t *limits,
                                   tree_request_t *req, gov_reason_t *reason, char *errbuf,
                                   size_t errbuf_size) {
    gov_policy_limits_t deflim = gov_policy_limits_default();
    const gov_policy_limits_t *lim = limits ? limits : &deflim;
    char *canon = NULL;
    size_t canon_len = 0;
    unsigned char digest[GOV_SHA256_LEN];
    gov_err_t rc;
    gov_reason_t reason_sink; /* where a caller that passed no reason pointer gets it */
    gov_reason_t *why = reason ? reason : &reason_sink;

    *why = GOV_REASON_NONE;
    if (errbuf != NULL && errbuf_size > 0)
        errbuf[0] = '\0';
    if (req == NULL || text == NULL) {
        tree_req_fail(why, GOV_REASON_INVALID_ARG, errbuf, errbuf_size, "NULL argument");
        return GOV_ERR_INVALID_ARG;
    }
    memset(req, 0, sizeof *req);
    if (len > lim->max_bytes) {
        tree_req_fail(why, GOV_REASON_TOO_LARGE, errbuf, errbuf_size,
                 "the request is %zu bytes (limit %zu)", len, lim->max_bytes);
        return GOV_ERR_TOO_LARGE;
    }
    rc = gov_canon_parse(text, len, &req->doc, why, errbuf, errbuf_size);
    if (rc != GOV_OK) {
        /* gov_canon's reasons are in the same code vocabulary. */
        if (rc == GOV_ERR_UNSUPPORTED)
            rc = GOV_ERR_PARSE;
        return rc;
    }
    if (gov_json_depth(req->doc) > lim->max_depth) {
        tree_req_fail(why, GOV_REASON_TOO_DEEP, errbuf, errbuf_size,
                 "the request nests deeper than %d", lim->max_depth);
        rc = GOV_ERR_TOO_LARGE;
        goto out;
    }
    if ((rc = tree_request_validate(req, lim, why, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    rc = gov_canon_serialize(req->doc, GOV_CANON_JCS, &canon, &canon_len, NULL, NULL, 0);
    if (rc != GOV_OK) {
        tree_req_fail(why, rc == GOV_ERR_NOMEM ? GOV_REASON_NOMEM : GOV_REASON_INVALID_VALUE, errbuf,
                 errbuf_size, "cannot canonicalize the request");
        if (rc != GOV_ERR_NOMEM)
            rc = GOV_ERR_PARSE;
        goto out;
    }
    if ((rc = gov_sha256(canon, canon_len, digest)) != GOV_OK) {
        tree_req_fail(why, rc == GOV_ERR_NOMEM ? GOV_REASON_NOMEM : GOV_REASON_INTERNAL, errbuf,
                 errbuf_size, "SHA-256 failed");
        goto out;
    }
    gov_hex_encode(digest, sizeof digest, req->input_digest);
out:
    gov_free(canon);
    if (rc != GOV_OK)
        tree_request_clear(req);
    return rc;
}


#endif /* POLICY_REQUEST_TREE_H */
