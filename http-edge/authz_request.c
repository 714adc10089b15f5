/* authz_request.c - what a /v1/authz check asks about, as an evaluation
 * request, and the rules a decision must meet before it lets anything pass.
 *
 * How: the gateway's description of the original request (method, target,
 * Content-Digest, whether a body was declared; or, from Envoy, the check's
 * own method, raw target and body) is checked byte by byte against fixed
 * bounds, the target made canonical (authz_prompt: a path that is not its
 * own canonical form - dot segments, "//", "%25", a backslash, a ';' path
 * parameter, a segment ending in '.' or a space - is refused,
 * since an upstream would resolve it to another path than the one decided;
 * the path and query percent-decoded once, the query also form-decoded, so
 * a rule pack sees "rm -rf /" however the client escaped it), and mapped to the /v1/evaluate request shape with the
 * caller taken from the verified token.  The body is bound through its
 * digest, which goes into the request's metadata and so into input_digest.
 * authz_decision_consistent() is the fail-closed cross-check of issue 11
 * point 3 (docs/contracts.md, "Gateway").
 *
 * What it does not do: verify tokens, evaluate, read the body of an nginx
 * request (nginx does not hand it to an auth subrequest; the upstream checks
 * the body against its Content-Digest), or keep anything: pure, no I/O.
 */
#include "authz_request.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gov_alloc.h"
#include "gov_hash.h"
#include "gov_http.h"
#include "gov_util.h"

/* RFC 9110 methods as every gateway sends them: upper-case letters. */
static int method_valid(const char *m) {
    size_t n = m ? strlen(m) : 0;
    if (n == 0 || n > AUTHZ_METHOD_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            return 0;
    return 1;
}

/* Decodes the n bytes at s (escapes already checked well-formed) into out
 * at *o: %XX once; '+' a space when form (application/x-www-form-urlencoded,
 * as an upstream reads a query). */
static void decode_into(const char *s, size_t n, int form, char *out, size_t *o) {
    for (size_t i = 0; i < n; i++) {
        unsigned char d;
        if (s[i] == '%' && i + 2 < n && gov_hex_decode(s + i + 1, 2, &d, 1) == 0) {
            out[(*o)++] = (char)d;
            i += 2;
        } else {
            out[(*o)++] = form && s[i] == '+' ? ' ' : s[i];
        }
    }
}

/* 1 when the byte at uri[q] (of n; escapes checked well-formed) is a '.',
 * "%2E" or "%20" that ends its path segment: Windows servers (IIS) drop
 * trailing dots and spaces of a name, so "/admin." and "/admin%20" are
 * served as "/admin" (REVIEW12 M5). */
static int segment_trail(const char *uri, size_t q, size_t n) {
    size_t w;
    if (uri[q] == '.')
        w = 1;
    else if (uri[q] == '%' && uri[q + 1] == '2' &&
             (uri[q + 2] == '0' || (uri[q + 2] | 0x20) == 'e'))
        w = 3;
    else
        return 0;
    return q + w == n || uri[q + w] == '/' || uri[q + w] == '?';
}

gov_err_t authz_prompt(const char *method, const char *uri, char **out, gov_reason_t *why,
                       char *errbuf, size_t errbuf_size) {
    char detail[160];
    *out = NULL;
    if (why)
        *why = GOV_REASON_NONE;
    size_t n = uri ? strnlen(uri, AUTHZ_URI_MAX + 1) : 0;
    const char *problem = NULL;
    if (!method_valid(method)) {
        problem = "the original method is not 1-32 upper-case letters";
    } else if (n == 0 || n > AUTHZ_URI_MAX || uri[0] != '/') {
        snprintf(detail, sizeof detail,
                 "the original target must be origin-form (\"/path?query\"), 1-%d bytes",
                 AUTHZ_URI_MAX);
        problem = detail;
    } else if (gov_http_target_check(uri, n, NULL, detail, sizeof detail) != GOV_OK) {
        problem = detail;   /* bytes, escapes, %2F, "." and "..", '#' */
    }
    size_t q = 0;
    while (problem == NULL && q < n && uri[q] != '?') {
        /* the path must be its own canonical form: what the policy sees is
         * what any upstream resolves, however many times it decodes */
        if (uri[q] == '\\' || (uri[q] == '%' && uri[q + 1] == '5' && (uri[q + 2] | 0x20) == 'c'))
            problem = "a backslash in the original path (read as '/' by some servers)";
        else if (uri[q] == '%' && uri[q + 1] == '2' && uri[q + 2] == '5')
            problem = "an escaped '%' (%25) in the original path (decoded twice, another path)";
        else if (uri[q] == '/' && q + 1 < n && uri[q + 1] == '/')
            problem = "an empty segment (\"//\") in the original path (merged by servers)";
        else if (uri[q] == ';' ||
                 (uri[q] == '%' && uri[q + 1] == '3' && (uri[q + 2] | 0x20) == 'b'))
            problem = "a ';' (raw or %3B) in the original path (a path parameter: Java "
                      "servers drop it and resolve what is left, \"/..;/\" as \"/../\")";
        else if (segment_trail(uri, q, n))
            problem = "a path segment ending in '.' or %20 (raw or escaped: IIS drops them)";
        if (problem && problem != detail) {
            snprintf(detail, sizeof detail, "%s at %zu", problem, q);
            problem = detail;
        }
        q++;
    }
    if (problem)
        return gov_reason_fail(why, GOV_REASON_AUTHZ_ORIGINAL_REQUEST_INVALID, GOV_ERR_INVALID_ARG,
                               errbuf, errbuf_size, "%s", problem);
    size_t mlen = strlen(method);
    int form = memchr(uri + q, '+', n - q) != NULL;
    size_t cap = (mlen + 1 + n) * (form ? 2 : 1) + 2, o = 0;
    char *p = gov_malloc(cap);
    if (p == NULL)
        return gov_reason_fail(why, GOV_REASON_NOMEM, GOV_ERR_NOMEM, errbuf, errbuf_size,
                               "out of memory");
    for (int line = 0; line <= form; line++) {
        if (line)
            p[o++] = '\n';
        memcpy(p + o, method, mlen);
        o += mlen;
        p[o++] = ' ';
        decode_into(uri, q, 0, p, &o);
        decode_into(uri + q, n - q, line, p, &o);
    }
    p[o] = '\0';
    if (!gov_utf8_valid(p, o)) {
        gov_free(p);
        return gov_reason_fail(why, GOV_REASON_AUTHZ_ORIGINAL_REQUEST_INVALID, GOV_ERR_INVALID_ARG,
                               errbuf, errbuf_size,
                               "the decoded original target is not valid UTF-8");
    }
    *out = p;
    return GOV_OK;
}

/* 1 when v is exactly one "sha-256=:<b64>:" or "sha-512=:<b64>:" member
 * with the canonical padded base64 of 32 or 64 bytes. */
static int content_digest_valid(const char *v) {
    size_t n = strlen(v), want, b64;
    if (n > AUTHZ_DIGEST_MAX)
        return 0;
    if (strncmp(v, "sha-256=:", 9) == 0)
        want = 32;
    else if (strncmp(v, "sha-512=:", 9) == 0)
        want = 64;
    else
        return 0;
    b64 = 4 * ((want + 2) / 3);
    if (n != 9 + b64 + 1 || v[n - 1] != ':')
        return 0;
    unsigned char raw[66 + 3];
    int got = EVP_DecodeBlock(raw, (const unsigned char *)v + 9, (int)b64);
    if (got < 0)
        return 0;
    /* canonical: re-encoding the 32/64 bytes gives the text back */
    char again[96];
    EVP_EncodeBlock((unsigned char *)again, raw, (int)want);
    return memcmp(again, v + 9, b64) == 0;
}

/* "sha-256=:<b64>:" of body into out (at least 56 bytes). */
static int body_digest(const char *body, size_t len, char *out, size_t size) {
    unsigned char d[GOV_SHA256_LEN];
    if (gov_sha256(body, len, d) != GOV_OK || size < 9 + 44 + 2)
        return -1;
    memcpy(out, "sha-256=:", 9);
    EVP_EncodeBlock((unsigned char *)out + 9, d, (int)sizeof d);
    strcpy(out + 9 + 44, ":");
    return 0;
}

/* 1 when the nginx headers declare a body: a Content-Length above 0 or any
 * Transfer-Encoding.  -1 when the length is not plain digits. */
static int body_declared(const authz_original_t *o) {
    if (o->transfer_encoding && o->transfer_encoding[0])
        return 1;
    const char *cl = o->content_length;
    if (cl == NULL || cl[0] == '\0')
        return 0;
    int nonzero = 0;
    for (const char *p = cl; *p; p++) {
        if (*p < '0' || *p > '9' || p - cl >= 19)
            return -1;
        nonzero |= *p != '0';
    }
    return nonzero;
}

gov_err_t authz_request_build(const authz_original_t *o, const authz_caller_t *who, json_t **out,
                              gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    *out = NULL;
    if (why)
        *why = GOV_REASON_NONE;
    if (!method_valid(o->method))
        return gov_reason_fail(why, GOV_REASON_AUTHZ_ORIGINAL_REQUEST_INVALID, GOV_ERR_INVALID_ARG,
                               errbuf, errbuf_size,
                               "the original method (X-Original-Method) is missing or not 1-%d "
                               "upper-case letters",
                               AUTHZ_METHOD_MAX);
    if (o->uri == NULL)
        return gov_reason_fail(why, GOV_REASON_AUTHZ_ORIGINAL_REQUEST_INVALID, GOV_ERR_INVALID_ARG,
                               errbuf, errbuf_size,
                               "the original target (X-Original-URI) is missing");
    int declared = body_declared(o);
    if (declared < 0)
        return gov_reason_fail(why, GOV_REASON_AUTHZ_ORIGINAL_REQUEST_INVALID, GOV_ERR_INVALID_ARG,
                               errbuf, errbuf_size,
                               "X-Original-Content-Length is not a decimal length");

    char carried[64] = "";
    const char *digest = o->content_digest && o->content_digest[0] ? o->content_digest : NULL;
    if (digest && !content_digest_valid(digest))
        return gov_reason_fail(why, GOV_REASON_AUTHZ_BODY_DIGEST_INVALID, GOV_ERR_INVALID_ARG,
                               errbuf, errbuf_size,
                               "Content-Digest must be one sha-256 or sha-512 member with the "
                               "padded base64 of the digest (RFC 9530)");
    if (o->body_len > 0) {
        if (body_digest(o->body, o->body_len, carried, sizeof carried) != 0)
            return gov_reason_fail(why, GOV_REASON_AUTHZ_BODY_DIGEST_INVALID, GOV_ERR_INVALID_ARG,
                                   errbuf, errbuf_size, "the body's digest could not be computed");
        if (digest && strcmp(digest, carried) != 0)
            return gov_reason_fail(why, GOV_REASON_AUTHZ_BODY_DIGEST_INVALID, GOV_ERR_INVALID_ARG,
                                   errbuf, errbuf_size,
                                   "Content-Digest is not the sha-256 of the body the check "
                                   "carries");
        digest = carried;
    } else if (declared && digest == NULL) {
        return gov_reason_fail(why, GOV_REASON_AUTHZ_BODY_DIGEST_REQUIRED, GOV_ERR_INVALID_ARG,
                               errbuf, errbuf_size,
                               "the original request has a body: send its Content-Digest "
                               "(RFC 9530, sha-256) so that the decision is bound to it");
    }

    char *prompt = NULL;
    gov_err_t err = authz_prompt(o->method, o->uri, &prompt, why, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    size_t mlen = strlen(o->method);
    char action[AUTHZ_METHOD_MAX + 1];
    for (size_t i = 0; i <= mlen; i++)
        action[i] = (char)(o->method[i] >= 'A' && o->method[i] <= 'Z' ? o->method[i] + 32
                                                                       : o->method[i]);
    json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}}", "tenant", who->tenant,
                            "session_id", who->jti, "user", who->sub, "role", AUTHZ_ROLE,
                            "prompt", prompt, "action", action, "metadata", "content_digest",
                            digest ? digest : "none");
    gov_free(prompt);
    if (req == NULL) {
        return gov_reason_fail(why, GOV_REASON_NOMEM, GOV_ERR_NOMEM, errbuf, errbuf_size,
                               "out of memory");
    }
    *out = req;
    return GOV_OK;
}

int authz_header_is_policy(const char *name) {
    return name != NULL && (strncasecmp(name, "X-Policy-", 9) == 0 ||
                            strcasecmp(name, "X-Constitution-Hash") == 0);
}

/* 1 when h is one of the live grace hashes. */
static int in_grace(const char *h, const gov_jwt_grace_t *grace, size_t n, int64_t now_s) {
    for (size_t i = 0; h && i < n; i++)
        if (grace[i].hash && now_s < grace[i].until_s && strcmp(grace[i].hash, h) == 0)
            return 1;
    return 0;
}

gov_err_t authz_decision_consistent(const char *decision_hash, const char *current_hash,
                                    const char *token_hash, const gov_jwt_grace_t *grace,
                                    size_t ngrace, int64_t now_s, const char *decision_digest,
                                    const char *expected_digest, gov_reason_t *why, char *errbuf,
                                    size_t errbuf_size) {
    if (why)
        *why = GOV_REASON_NONE;
    int decision_ok = decision_hash && decision_hash[0] &&
                      ((current_hash && strcmp(decision_hash, current_hash) == 0) ||
                       in_grace(decision_hash, grace, ngrace, now_s));
    if (!decision_ok) {
        return gov_reason_fail(why, GOV_REASON_AUTHZ_CONSTITUTION_MISMATCH, GOV_ERR_VERIFY, errbuf,
                               errbuf_size, "the decision's constitution is neither the tenant's "
                               "current one nor within the grace window");
    }
    int token_ok = token_hash && token_hash[0] &&
                   (strcmp(token_hash, decision_hash) == 0 ||
                    in_grace(token_hash, grace, ngrace, now_s));
    if (!token_ok) {
        return gov_reason_fail(why, GOV_REASON_AUTHZ_CONSTITUTION_MISMATCH, GOV_ERR_VERIFY, errbuf,
                               errbuf_size, "the token is bound to another constitution than the "
                               "decision used, outside the grace window");
    }
    if (decision_digest == NULL || expected_digest == NULL || decision_digest[0] == '\0' ||
        strcmp(decision_digest, expected_digest) != 0) {
        return gov_reason_fail(why, GOV_REASON_AUTHZ_INPUT_DIGEST_MISMATCH, GOV_ERR_VERIFY, errbuf,
                               errbuf_size, "the decision's input_digest is not the digest of "
                               "the request asked about");
    }
    return GOV_OK;
}
