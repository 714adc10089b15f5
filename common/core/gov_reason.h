/* gov_reason.h - the one list of stable reason codes.
 *
 * A reason code says why something was refused or failed, in snake_case
 * ("checksum_mismatch").  The codes are user-visible: HTTP error bodies,
 * metric labels, audit events, DLQ headers, govctl's stderr and the docs
 * (docs/contracts.md) all carry them, so a code's text never changes.
 *
 * Inside the code a reason travels as a gov_reason_t value: a parser gives
 * it through an out-parameter next to its errbuf (which then holds only the
 * human-readable detail), and the text is looked up with gov_reason_code()
 * where it leaves the process.  Nobody parses a code back out of a message.
 *
 * The list below is the only definition: the enum and the name table are
 * both generated from it.  Values are never renumbered or reused, only added
 * at the end (the first 22 keep the numbers of the former gov_reject_t).  Two
 * codes that differ only slightly ("internal" for the bundle parser and the
 * rule pack validator, "internal_error" for constitution verification and
 * govctl) are distinct values because both texts are in use.
 *
 * Not here: gov_err_t (gov_err.h), which says what kind of failure a function
 * hit; a reason says which rule refused the input.  gov_err_code() stays the
 * fallback code where no reason applies.
 *
 * Thread-safety: pure; the table is constant.
 */
#ifndef GOV_REASON_H
#define GOV_REASON_H

#include <stddef.h>

#include "gov_err.h"

/* X(NAME, "code", "meaning") - append only. */
#define GOV_REASON_LIST(X) \
    X(NONE, "none", "no reason: accepted, or the caller's gov_err_t code applies") \
    /* constitution verification (gov_constitution) */ \
    X(UNKNOWN_CANONICALIZATION, "unknown_canonicalization", "canonicalization is not jcs or somabrain-json") \
    X(UNKNOWN_HASH_ALGORITHM, "unknown_hash_algorithm", "hash_alg is not sha3-512 or sha256") \
    X(MALFORMED_CHECKSUM, "malformed_checksum", "checksum is not hex of the algorithm's length") \
    X(MALFORMED_DOCUMENT, "malformed_document", "document is not a JSON object that canonicalizes") \
    X(CHECKSUM_MISMATCH, "checksum_mismatch", "the document's digest differs from the claimed checksum") \
    X(NO_SIGNATURES, "no_signatures", "the bundle carries no signature") \
    X(TOO_MANY_SIGNATURES, "too_many_signatures", "more signatures than GOV_MAX_SIGNATURES") \
    X(UNKNOWN_SIGNATURE_ALGORITHM, "unknown_signature_algorithm", "a signature's algorithm is not ed25519") \
    X(DUPLICATE_SIGNER, "duplicate_signer", "one signer signed twice") \
    X(MALFORMED_SIGNATURE, "malformed_signature", "a signature is not 64 bytes of hex or base64") \
    X(INVALID_SIGNATURE, "invalid_signature", "a trusted signer's signature does not verify") \
    X(INVALID_GOVERNANCE, "invalid_governance", "the document's governance member is malformed") \
    X(UNTRUSTED_SIGNER, "untrusted_signer", "a signer is not in the configured trust") \
    X(SIGNER_NOT_PERMITTED, "signer_not_permitted", "a trusted signer the document does not permit") \
    X(THRESHOLD_NOT_MET, "threshold_not_met", "fewer valid signatures than the threshold") \
    X(INVALID_VERSION, "invalid_version", "document.version is not semver or a non-negative integer") \
    X(EQUIVOCATION, "equivocation", "the current version signed again with another checksum") \
    X(VERSION_ROLLBACK, "version_rollback", "an older version never accepted") \
    X(TENANT_MISMATCH, "tenant_mismatch", "the input names another tenant") \
    X(DOCUMENT_TOO_LARGE, "document_too_large", "the document exceeds the configured bound") \
    X(INTERNAL_ERROR, "internal_error", "out of memory or a library failure") \
    /* bundle parsing (gov_bundle) */ \
    X(INVALID_JSON, "invalid_json", "not JSON") \
    X(INVALID_BUNDLE, "invalid_bundle", "JSON, but not the shape of a bundle") \
    X(INTERNAL, "internal", "out of memory or an unexpected state") \
    /* JSON text parsing (gov_canon) */ \
    X(SYNTAX, "syntax", "not RFC 8259 JSON") \
    X(TRAILING_GARBAGE, "trailing_garbage", "bytes after the JSON value") \
    X(DUPLICATE_KEY, "duplicate_key", "an object names a member twice") \
    X(INVALID_UTF8, "invalid_utf8", "malformed UTF-8 or a lone surrogate escape") \
    X(TOO_DEEP, "too_deep", "nesting deeper than the bound") \
    X(NUMBER_OUT_OF_RANGE, "number_out_of_range", "a number jansson cannot hold") \
    X(NUL_IN_KEY, "nul_in_key", "an object key holds U+0000") \
    X(NOMEM, "nomem", "out of memory") \
    X(INVALID_ARG, "invalid_arg", "the caller passed NULL or an unusable argument") \
    X(NON_FINITE_NUMBER, "non_finite_number", "NaN or Infinity") \
    X(UNSUPPORTED_HASH_ALG, "unsupported_hash_alg", "a digest name gov_canon does not know") \
    X(CRYPTO, "crypto", "a digest computation failed") \
    /* evaluation requests (gov_policy) and rule packs (gov_rulepack) */ \
    X(INVALID_TYPE, "invalid_type", "a member has the wrong JSON type") \
    X(UNKNOWN_FIELD, "unknown_field", "a member that is not part of the format") \
    X(MISSING_FIELD, "missing_field", "a required member is absent") \
    X(INVALID_VALUE, "invalid_value", "a member's value is not allowed") \
    X(INVALID_TENANT, "invalid_tenant", "a tenant id is not 1-64 of [A-Za-z0-9._-]") \
    X(TOO_LARGE, "too_large", "a size bound was exceeded") \
    X(INVALID_REQUEST, "invalid_request", "an evaluation request that is not valid") \
    X(MATCHER, "matcher", "the pattern engine failed") \
    X(OUT_OF_RANGE, "out_of_range", "a number outside [0,1]") \
    X(TOO_MANY_DECIMALS, "too_many_decimals", "a number with more than 6 decimal places") \
    X(DUPLICATE_ID, "duplicate_id", "two rules share an id") \
    X(EMPTY_MATCH, "empty_match", "a rule without any condition") \
    X(INVALID_PATTERN, "invalid_pattern", "the pattern engine refused a pattern") \
    X(TOO_MANY_RULES, "too_many_rules", "more rules than max_rules") \
    X(TOO_MANY_PATTERNS, "too_many_patterns", "more prompt patterns than max_patterns") \
    X(PATTERN_TOO_LONG, "pattern_too_long", "a pattern longer than max_pattern_len") \
    X(TOO_MANY_PATTERN_BYTES, "too_many_pattern_bytes", "patterns longer than max_pattern_bytes together") \
    /* bundle fetches (gov-somabrain-sync) */ \
    X(UNREACHABLE, "unreachable", "the server could not be reached") \
    X(TIMEOUT, "timeout", "the fetch ran out of time") \
    X(TLS, "tls", "the TLS handshake or certificate check failed") \
    X(HTTP_STATUS, "http_status", "the server answered with a status that is not 200 or 304") \
    X(TRANSFER_FAILED, "transfer_failed", "the transfer failed otherwise") \
    X(KAFKA_UNAVAILABLE, "kafka_unavailable", "Kafka did not take the event") \
    /* poison messages (gov_processor dead-letter headers) */ \
    X(UNEXPECTED_TOPIC, "unexpected_topic", "a message from a topic the processor does not read") \
    X(UNEXPECTED_SCHEMA, "unexpected_schema", "a schema the topic does not carry") \
    X(INVALID_EVENT_ID, "invalid_event_id", "event_id is not a UUIDv7") \
    X(KEY_MISMATCH, "key_mismatch", "the message key is not the event's tenant") \
    X(UNKNOWN_SCHEMA, "unknown_schema", "a schema fingerprint the registry does not know") \
    X(UNDECODABLE, "undecodable", "the value is not a valid Avro single-object encoding") \
    X(UNMATERIALIZABLE, "unmaterializable", "an event the store cannot record") \
    /* HTTP edge error bodies */ \
    X(UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "the body is not application/json") \
    X(OUT_OF_MEMORY, "out_of_memory", "the edge ran out of memory") \
    X(STATE_NOT_LOADED, "state_not_loaded", "the edge has not loaded its state yet") \
    X(CONSTITUTION_MISSING, "constitution_missing", "no verified constitution for the tenant") \
    X(CONSTITUTION_RULES_INVALID, "constitution_rules_invalid", "constitution rules this engine cannot apply") \
    X(RULEPACK_MISSING, "rulepack_missing", "no usable rule pack for the tenant") \
    X(EVALUATION_FAILED, "evaluation_failed", "the evaluation could not complete") \
    X(CONSTITUTION_NOT_FOUND, "constitution_not_found", "no constitution for the tenant") \
    X(DECISION_NOT_FOUND, "decision_not_found", "no decision with that id") \
    X(DECISION_STORE_UNAVAILABLE, "decision_store_unavailable", "the decision log cannot be read") \
    X(INVALID_DECISION_ID, "invalid_decision_id", "a decision id that is not a UUIDv7") \
    X(METHOD_NOT_ALLOWED, "method_not_allowed", "the endpoint does not take this method") \
    X(NOT_FOUND, "not_found", "no such endpoint") \
    /* govctl exit diagnostics */ \
    X(IO_ERROR, "io_error", "a file could not be read or written") \
    X(CRYPTO_ERROR, "crypto_error", "a key or signature operation failed") \
    X(KEY_EXISTS, "key_exists", "the key file is already there") \
    X(KEY_INVALID, "key_invalid", "the key file is not a usable key") \
    X(REDIS_UNAVAILABLE, "redis_unavailable", "Redis could not be reached") \
    X(REDIS_ERROR, "redis_error", "Redis answered with an error") \
    X(CHAIN_BROKEN, "chain_broken", "an audit entry does not link to its predecessor") \
    X(CHAIN_TRUNCATED, "chain_truncated", "the audit stream ends before its recorded head") \
    X(UNSUPPORTED, "unsupported", "well-formed, but not something this tool can do") \
    /* rule pack events (gov-rulepacks) */ \
    X(PACK_ID_MISMATCH, "pack_id_mismatch", "the pack's pack_id is not the event's") \
    X(VERSION_MISMATCH, "version_mismatch", "the pack's version is not the event's") \
    X(CURRENT_PACK_UNREADABLE, "current_pack_unreadable", "the tenant's current pack cannot be read") \
    /* codes the HTTP edge and govctl printed as literals before they became values */ \
    X(TRUST_INVALID, "trust_invalid", "the trust file is not a usable trust configuration") \
    X(BODY_TOO_LARGE, "body_too_large", "the request body exceeds the edge's limit") \
    X(INVALID_PATH, "invalid_path", "the request path is not acceptable") \
    /* tenant binding and strict rules (gov_constitution) */ \
    X(TENANT_NOT_TRUSTED, "tenant_not_trusted", "the trust configuration does not cover the tenant") \
    X(UNBOUND_DOCUMENT, "unbound_document", "a document naming no tenant, for a tenant that takes none") \
    X(INVALID_RULES, "invalid_rules", "the constitution's rules have an unknown member or a wrong type") \
    X(INVALID_FRAMING, "invalid_framing", "conflicting Content-Length headers, Content-Length with Transfer-Encoding, or another framing a proxy could read differently") \
    X(STATE_UNREADABLE, "state_unreadable", "a tenant's state in Redis cannot be read as stored (a key of the wrong type)") \
    /* version limits (gov_version) and the audit chain's presence (govctl) */ \
    X(VERSION_TOO_LARGE, "version_too_large", "a number in the version is beyond 2^53-1") \
    X(VERSION_TOO_LONG, "version_too_long", "the version text is longer than its field") \
    X(CHAIN_MISSING, "chain_missing", "a known tenant has no audit stream and no head") \
    /* the edge's reload (loader.c) */ \
    X(STATE_BEHIND, "state_behind", "Redis holds an older verified state (or none) than the one served") \
    /* access tokens (gov_jwt; docs/contracts.md, "JWT") */ \
    X(TOKEN_TOO_LARGE, "token_too_large", "the token is longer than the verifier's limit") \
    X(TOKEN_UNSUPPORTED_SERIALIZATION, "token_unsupported_serialization", "a JWS JSON serialization or a nested JWT, not a compact JWS of claims") \
    X(TOKEN_MALFORMED, "token_malformed", "not three base64url parts with a JSON object header and payload") \
    X(TOKEN_NONCANONICAL, "token_noncanonical", "a part is padded base64url or has non-zero unused bits") \
    X(TOKEN_DUPLICATE_CLAIM, "token_duplicate_claim", "the header or the payload names a member twice") \
    X(TOKEN_CRIT_HEADER, "token_crit_header", "the header carries crit, which no verifier here understands") \
    X(TOKEN_ALG_NOT_ALLOWED, "token_alg_not_allowed", "the header's alg is not the configured one (none and HMAC never are)") \
    X(TOKEN_HEADER_INVALID, "token_header_invalid", "the header has a member other than alg, kid and typ, or a typ other than JWT") \
    X(TOKEN_UNKNOWN_KID, "token_unknown_kid", "the header names no kid, or one the key set does not hold") \
    X(TOKEN_KEY_RETIRED, "token_key_retired", "the signing key is retired") \
    X(TOKEN_KEY_NOT_ACTIVE, "token_key_not_active", "the token says it was issued before its key became active") \
    X(TOKEN_BAD_SIGNATURE, "token_bad_signature", "the signature does not verify under the named key") \
    X(TOKEN_INVALID_CLAIM, "token_invalid_claim", "a claim is missing, of the wrong type or out of its bounds") \
    X(TOKEN_WRONG_ISSUER, "token_wrong_issuer", "iss is not the configured issuer") \
    X(TOKEN_WRONG_AUDIENCE, "token_wrong_audience", "aud does not name the configured audience") \
    X(TOKEN_EXPIRED, "token_expired", "now is at or past exp plus the leeway") \
    X(TOKEN_NOT_YET_VALID, "token_not_yet_valid", "now is before nbf, or before iat, minus the leeway") \
    X(TOKEN_LIFETIME_TOO_LONG, "token_lifetime_too_long", "exp - iat is beyond the verifier's maximum lifetime") \
    X(TOKEN_CONSTITUTION_STALE, "token_constitution_stale", "constitution_hash is neither the tenant's current one nor in its grace window") \
    X(TOKEN_REVOKED, "token_revoked", "the token's jti was revoked") \
    /* signing key stores (gov_signer_pem, gov_signer_pkcs11) */ \
    X(KEY_INSECURE, "key_insecure", "a key file, key directory or PIN file is open to other users or not owned by this user") \
    X(KEY_NOT_FOUND, "key_not_found", "the key store holds no key with that kid") \
    X(KEYSTORE_UNAVAILABLE, "keystore_unavailable", "the key store (directory, PKCS#11 module or token) cannot be used") \
    X(PIN_INCORRECT, "pin_incorrect", "the PKCS#11 token refused the PIN") \
    /* gov-identity (KeyRotated, ClientRegistered) */ \
    X(INVALID_JWK, "invalid_jwk", "a public key is not an Ed25519 OKP JWK (kty OKP, crv Ed25519, x base64url of 32 bytes, no private part)") \
    X(KID_NOT_THUMBPRINT, "kid_not_thumbprint", "a key's kid is not the RFC 7638 SHA-256 thumbprint of its public JWK") \
    X(KEY_STATE_BACKWARDS, "key_state_backwards", "a KeyRotated moves a known key back (state, activates_at or retires_at earlier than stored)") \
    X(KEY_CHANGED, "key_changed", "a KeyRotated changes what is fixed for a known kid (alg, public_jwk, created_at, backend, previous_kid)") \
    X(INVALID_CLIENT, "invalid_client", "a ClientRegistered with a malformed client_id, secret_hash, tenant or scope") \
    X(CLIENT_REMOVED, "client_removed", "a ClientRegistered for a client_id that was removed (removal is final)") \
    /* key rotation (govctl keys rotate, gov-identity's rotator) */ \
    X(KEY_ACTIVATION_TOO_SOON, "key_activation_too_soon", "a rotation asks a new key to activate sooner than the propagation delay while a current key exists") \
    X(KEY_ALREADY_RETIRED, "key_already_retired", "govctl keys retire names a key that is retired already (nothing produced)") \
    /* the token endpoints of gov-edge (tokens_api.c) */ \
    X(UNSUPPORTED_GRANT_TYPE, "unsupported_grant_type", "the token request's grant_type is not client_credentials (RFC 6749 section 5.2)") \
    X(INVALID_SCOPE, "invalid_scope", "a requested scope is malformed or not one of the client's (RFC 6749 section 5.2)") \
    X(UNAUTHORIZED_CLIENT, "unauthorized_client", "the client may not do this: a tenant not its own, or a token issued to another client") \
    X(SIGNING_KEY_UNAVAILABLE, "signing_key_unavailable", "no published, active signing key that this edge's keystore holds: tokens cannot be issued") \
    X(IDENTITY_STORE_UNAVAILABLE, "identity_store_unavailable", "the identity state (clients, keys, token status) cannot be read now") \
    X(IDENTITY_SIGNATURE_INVALID, "identity_signature_invalid", "a KeyRotated, ClientRegistered or ClientRemoved (or its record in Redis) lacks a threshold of valid signatures by the identity trust file's signers") \
    /* gateway authorization (/v1/authz, http-edge/authz_api.c) */ \
    X(AUTHZ_TOKEN_MISSING, "authz_token_missing", "a request to /v1/authz or /v1/sessions/start without an Authorization: Bearer token (401)") \
    X(AUTHZ_ORIGINAL_REQUEST_INVALID, "authz_original_request_invalid", "the original request of a /v1/authz check (X-Original-Method, X-Original-URI) is missing or malformed") \
    X(AUTHZ_BODY_DIGEST_REQUIRED, "authz_body_digest_required", "the original request has a body but no Content-Digest to bind the decision to") \
    X(AUTHZ_BODY_DIGEST_INVALID, "authz_body_digest_invalid", "the original request's Content-Digest is not one sha-256 or sha-512 member (RFC 9530), or not the digest of the body the check carries") \
    X(AUTHZ_DENIED, "authz_denied", "the policy decision for the original request is deny (403)") \
    X(AUTHZ_REVIEW_REQUIRED, "authz_review_required", "the policy decision for the original request is review: it does not pass until approved (403)") \
    X(AUTHZ_CONSTITUTION_MISMATCH, "authz_constitution_mismatch", "the decision's constitution hash is not the token's or not the current one (nor within the grace window): denied") \
    X(AUTHZ_INPUT_DIGEST_MISMATCH, "authz_input_digest_mismatch", "the decision's input_digest is not the digest of the request the gateway asked about: denied") \
    X(AUTHZ_UNAVAILABLE, "authz_unavailable", "the nginx gateway got no decision from /v1/authz (an error, a timeout, an edge down): denied, 503 (deploy/nginx)") \
    X(AUTHZ_POLICY_HEADER_FORGED, "authz_policy_header_forged", "the checked request carries an X-Policy-* or X-Constitution-Hash header the gateway did not remove: only the client can have sent it (403)") \
    /* deferred answers and sessions (gov-edge server.c, sessions_api.c) */ \
    X(DEFERRED_CAPACITY, "deferred_capacity", "too many answers are awaiting their Kafka acknowledgements (deferred_max); try again") \
    X(INSUFFICIENT_SCOPE, "insufficient_scope", "the bearer token lacks the scope the endpoint requires (RFC 6750 section 3.1)") \
    X(SESSION_CONSTITUTION_MISMATCH, "session_constitution_mismatch", "the decision's constitution hash is neither the bearer token's nor in the tenant's grace window") \
    X(INVALID_TOKEN, "invalid_token", "alias of authz_token_missing, no longer answered (was: no bearer token at /v1/sessions/start)") \
    /* tokens of a removed client (gov-edge tokens_api.c, REVIEW10 P2) */ \
    X(TOKEN_CLIENT_REMOVED, "token_client_removed", "the token's client was removed (or is unknown): its tokens no longer verify") \
    /* gov-edge stopping (server.c, REVIEW11 M4) */ \
    X(SHUTTING_DOWN, "shutting_down", "the edge is stopping: a request that would await Kafka acknowledgements is refused (503); try another replica") \
    /* gov-edge lookup lanes and policy-route headers (server.c, REVIEW11 H2, L1, L2) */ \
    X(LOOKUP_CAPACITY, "lookup_capacity", "the lookup lane of the route has its queue full: answered 503 at once, nothing was looked up") \
    X(DUPLICATE_HEADER, "duplicate_header", "a policy route got Authorization, Content-Digest or an X-Original-* header more than once") \
    /* the gateway paths (gov-edge authz_api.c, review 11 M1/M6) */ \
    X(AUTHZ_GATEWAY_CREDENTIAL_INVALID, "authz_gateway_credential_invalid", "a /v1/authz check without the gateway credential (X-Gov-Gateway-Credential) this edge is configured with: only the gateway may ask (403)") \
    X(TOKEN_PARENT_REVOKED, "token_parent_revoked", "the session token's parent (parent_jti: the bearer token that started the session) was revoked: its sessions end with it (401)") \
    X(GATEWAY_RATE_LIMITED, "gateway_rate_limited", "the nginx gateway refused a token or session request over its per-address rate or connection limit: 429, X-Policy-Decision: deny (deploy/nginx)") \
    X(GATEWAY_EDGE_UNAVAILABLE, "gateway_edge_unavailable", "the nginx gateway could not reach gov-edge for its own API (/v1/...): 503, X-Policy-Decision: deny (deploy/nginx)") \
    X(KEY_RETIRED, "key_retired", "a KeyRotated would bring back a retired kid: retired is final (its tombstone is permanent)") \
    X(KEY_STALE, "key_stale", "a KeyRotated for an unknown kid, pending or active, whose activates_at is older than the longest token lifetime (a forgotten key replayed)") \
    X(KEY_LEASE_STALE, "key_lease_stale", "a KeyRotated produced under a rotator lease epoch older than the lease's: its producer lost the lease since") \
    /* the audit archive (gov-archive, govctl audit verify --archive) */ \
    X(ARCHIVE_SEGMENT_MISSING, "archive_segment_missing", "a sequence range of the chain is in no archived segment and not in the tail: a segment was deleted or never written") \
    X(ARCHIVE_SEGMENT_REORDERED, "archive_segment_reordered", "an archived segment holds other entries than its name says, or segment names overlap: segments were renamed or swapped") \
    X(ARCHIVE_SEGMENT_ALTERED, "archive_segment_altered", "an archived segment is not a readable AuditChainEntry container, or a record in it does not hash or link: its content was changed") \
    X(ARCHIVE_CHAIN_DIVERGED, "archive_chain_diverged", "the chain in Redis has another hash than the archive at the same seq: gov-archive neither archives nor trims the tenant") \
    X(DECISION_LOG_FULL, "decision_log_full", "the edge's decision spool is full (Kafka has not acknowledged the decisions it holds): the edge refuses to decide without a durable record") \
    X(ARCHIVE_ENTRY_TOO_LARGE, "archive_entry_too_large", "a chain entry is larger than one segment record may be (GOV_ARCHIVE_ENTRY_MAX_BYTES): gov-archive neither archives nor trims the tenant")

typedef enum gov_reason {
#define GOV_REASON_ENUM_(name, code, meaning) GOV_REASON_##name,
    GOV_REASON_LIST(GOV_REASON_ENUM_)
#undef GOV_REASON_ENUM_
    GOV_REASON_COUNT_
} gov_reason_t;

/* The stable snake_case code of r (static storage); "unknown" for a value
 * outside the list.  Never NULL.  O(1). */
const char *gov_reason_code(gov_reason_t r);

/* The one-line meaning of r (static storage); "" outside the list. */
const char *gov_reason_meaning(gov_reason_t r);

/* Looks up the value of code (NUL-terminated, compared exactly).  Returns 0
 * and sets *out, or -1 when code is NULL or not in the list.  O(number of
 * codes); meant for tests and tools, not for hot paths. */
int gov_reason_from_code(const char *code, gov_reason_t *out);

/* Records a refusal the way the parsers report one: *why = reason (why may
 * be NULL) and the formatted detail in errbuf (may be NULL; no "code: "
 * prefix, the code travels as the value).  Returns rc, so a caller can
 * `return gov_reason_fail(...)`.  O(length of the detail). */
gov_err_t gov_reason_fail(gov_reason_t *why, gov_reason_t reason, gov_err_t rc, char *errbuf,
                          size_t errbuf_size, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif /* GOV_REASON_H */
