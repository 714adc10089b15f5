/* authz_request.h - the original request of a /v1/authz check, read from
 * outside input and mapped to an evaluation request; the consistency rules
 * a decision must meet before it lets a request through (authz_request.c;
 * pure, fuzzed by tests/fuzz/fuzz_authz_request.c).
 *
 * Thread-safety: reentrant.
 */
#ifndef AUTHZ_REQUEST_H
#define AUTHZ_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_jwt.h"
#include "gov_reason.h"

/* Longest original request target (bytes, as sent) and method. */
#define AUTHZ_URI_MAX 4096
#define AUTHZ_METHOD_MAX 32
/* Longest accepted Content-Digest value ("sha-512=:<88 base64>:"). */
#define AUTHZ_DIGEST_MAX 100
/* The role every gateway request is evaluated with (docs/api.md, "/v1/authz"). */
#define AUTHZ_ROLE "gateway"

/* What the gateway says about the original request; every pointer borrowed,
 * each may be NULL when the gateway did not send it. */
typedef struct authz_original {
    const char *method;           /* X-Original-Method (nginx) or the check's own method (Envoy) */
    const char *uri;              /* the raw request target, "/path?query": X-Original-URI
                                   * (nginx) or the check's own target after the prefix (Envoy) */
    const char *content_digest;   /* Content-Digest of the original request (RFC 9530) */
    const char *content_length;   /* X-Original-Content-Length (nginx) */
    const char *transfer_encoding;/* X-Original-Transfer-Encoding (nginx) */
    const char *body;             /* the body the check carries (Envoy with_request_body) */
    size_t body_len;
} authz_original_t;

/* Who asks, from the verified token (borrowed). */
typedef struct authz_caller {
    const char *tenant;   /* the token's tenant: never the client's word */
    const char *sub;      /* user */
    const char *jti;      /* session_id: the decision names the token it was made for */
} authz_caller_t;

/* The prompt of the original request (docs/api.md, "/v1/authz"; rule packs
 * match this canonical form): "<METHOD> <path>?<query>" with the path and
 * the query percent-decoded once and, when the query holds a '+', a second
 * line "<METHOD> <path>?<query form-decoded>" ('+' a space), so a rule sees
 * what an upstream that decodes forms reads.  The raw uri must be origin
 * form, 1..AUTHZ_URI_MAX bytes, pass gov_http_target_check (printable
 * ASCII, well-formed escapes, no escaped control byte, no %2F in the path,
 * no "." / ".." segment however escaped, no '#'), and its path must be its
 * own canonical form - no "//", no "%25", no backslash raw or as %5C, no
 * ';' raw or as %3B (a path parameter: Tomcat, Jetty and Spring drop it and
 * resolve "/public/..;/admin" as "/admin"), no segment ending in '.' or a
 * space, raw or escaped (IIS drops them; REVIEW12 M5):
 * anything an upstream may resolve to another path than the one decided is
 * refused, never rewritten (review 11, M2).  On GOV_OK *out is a new string
 * (gov_free), valid UTF-8 without control bytes but the '\n' between lines.
 * Else GOV_ERR_INVALID_ARG with *why authz_original_request_invalid, or
 * GOV_ERR_NOMEM (out_of_memory); errbuf has the detail.  O(strlen(uri)). */
gov_err_t authz_prompt(const char *method, const char *uri, char **out, gov_reason_t *why,
                       char *errbuf, size_t errbuf_size);

/* Maps o and who to the evaluation request (docs/api.md, "/v1/authz"):
 *   {"tenant": tenant, "session_id": jti, "user": sub, "role": "gateway",
 *    "prompt": authz_prompt(method, uri), "action": "<method, lower case>",
 *    "metadata": {"content_digest": "<Content-Digest>" or "none"}}
 * The body digest is bound in the metadata, so input_digest covers it.  When
 * the check carries a body (Envoy), its SHA-256 is the digest ("sha-256=:<b64>:")
 * and a Content-Digest sent as well must be exactly that.
 * On GOV_OK *out is a new object (json_decref).  Refusals, GOV_ERR_INVALID_ARG
 * with *why:
 *   authz_original_request_invalid  no or bad method (not an RFC 9110 token of
 *       1..AUTHZ_METHOD_MAX upper-case letters), no or bad target (what
 *       authz_prompt refuses), a bad X-Original-Content-Length
 *   authz_body_digest_required  a body was declared and there is no Content-Digest
 *   authz_body_digest_invalid   Content-Digest is not one "sha-256=:..:" or
 *       "sha-512=:..:" member with canonical padded base64 of 32 / 64 bytes, or
 *       differs from the digest of the carried body
 * GOV_ERR_NOMEM (out_of_memory).  errbuf has the detail.  Cost: O(uri + body). */
gov_err_t authz_request_build(const authz_original_t *o, const authz_caller_t *who, json_t **out,
                              gov_reason_t *why, char *errbuf, size_t errbuf_size);

/* 1 when a header of this name may carry a decision (X-Policy-*, any case,
 * or X-Constitution-Hash): only gov-edge sets those, so a check request
 * carrying one (the gateway removes its own names before the check) was
 * forged by the client and is refused.  O(1). */
int authz_header_is_policy(const char *name);

/* The consistency rules of a decision (docs/contracts.md, "Gateway"): the
 * decision's constitution hash must be the current one (current_hash) or in
 * the grace window; the token's hash must be the decision's or in the grace
 * window; the decision's input_digest must equal expected_digest (the
 * digest of the request the gateway asked about, computed apart from the
 * evaluation).  grace[0..ngrace) (borrowed): entries count while
 * now_s < until_s.  GOV_OK, or GOV_ERR_VERIFY with *why
 * authz_constitution_mismatch / authz_input_digest_mismatch and the detail.
 * Any NULL hash or digest is a mismatch.  O(ngrace). */
gov_err_t authz_decision_consistent(const char *decision_hash, const char *current_hash,
                                    const char *token_hash, const gov_jwt_grace_t *grace,
                                    size_t ngrace, int64_t now_s, const char *decision_digest,
                                    const char *expected_digest, gov_reason_t *why, char *errbuf,
                                    size_t errbuf_size);

#endif
