/* gov_bundle.h - the constitution bundle as it arrives on the wire.
 *
 * A bundle (docs/contracts.md) is a JSON object:
 *   { "tenant": "acme", "document": { ... }, "canonicalization": "jcs",
 *     "hash_alg": "sha256", "checksum": "<hex>",
 *     "signatures": [ {"signer_id": ..., "algorithm": ..., "signature": ...} ] }
 * This module checks that shape and turns a bundle into the ConstitutionBundle
 * event of constitution.bundles.  It does NOT verify checksums or signatures:
 * that is gov_constitution's job, with the configured trust.  What it
 * guarantees is that nothing that is not even a bundle gets published.
 *
 * The document travels as the exact JSON text received.  Re-serializing it
 * would change number text ("1e-7", "0.10") and escapes, and so the bytes
 * that somabrain-json and JCS hash; so the document's raw byte span is found
 * in the body by gov_bundle_member_span, a strict, allocation-free,
 * non-recursive JSON scanner (RFC 8259 grammar, UTF-8 checked, escapes in
 * member names decoded before comparing, nesting bounded).
 *
 * Everything here is pure: no I/O, no clock, no globals.
 * Thread-safety: reentrant; json_t arguments are only read.
 */
#ifndef GOV_BUNDLE_H
#define GOV_BUNDLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_reason.h"

/* Deepest nesting accepted by the scanner: the bundle object is depth 1, so
 * the document may nest 64 deep, the bound gov_canon applies to documents. */
#define GOV_BUNDLE_MAX_DEPTH 65
/* Bounds of the shape check (the body size bounds everything else). */
#define GOV_BUNDLE_MAX_SIGNATURES 256
#define GOV_BUNDLE_MAX_FIELD 1024   /* bytes of any string member but tenant */

/* Finds the value of member `name` in the top-level JSON object text[0..len)
 * (no NUL terminator needed) and gives its byte span: text + *off, *span_len
 * bytes, without surrounding whitespace.  The whole text is scanned: it must
 * be exactly one object (whitespace around it allowed), well-formed per RFC
 * 8259, valid UTF-8 in strings, no lone surrogate escapes, nesting at most
 * GOV_BUNDLE_MAX_DEPTH.  Member names are compared after decoding escapes, as
 * a JSON parser would ("docum\u0065nt" is "document").
 * Returns GOV_OK; GOV_ERR_NOT_FOUND (well-formed, no such member);
 * GOV_ERR_PARSE (malformed, not an object, or the member appears twice);
 * GOV_ERR_TOO_LARGE (too deep); GOV_ERR_INVALID_ARG.  errbuf (may be NULL)
 * says what and at which byte offset.  Cost: O(len), no allocation, constant
 * stack. */
gov_err_t gov_bundle_member_span(const char *text, size_t len, const char *name,
                                 size_t *off, size_t *span_len, char *errbuf,
                                 size_t errbuf_size);

/* gov_bundle_member_span for "document". */
gov_err_t gov_bundle_extract_document_span(const char *text, size_t len, size_t *off,
                                           size_t *span_len, char *errbuf,
                                           size_t errbuf_size);

/* Checks the shape of a parsed bundle (borrowed): an object with
 *   tenant            string, valid tenant syntax, equal to expected_tenant
 *                     when that is not NULL (else reason tenant_mismatch)
 *   document          object; when expected_tenant is not NULL and the
 *                     document names a tenant, it names expected_tenant
 *                     (else tenant_mismatch, the rule gov_constitution_verify
 *                     applies too)
 *   canonicalization, hash_alg, checksum
 *                     non-empty strings of at most GOV_BUNDLE_MAX_FIELD bytes
 *   signatures        array of at most GOV_BUNDLE_MAX_SIGNATURES objects, each
 *                     with non-empty string signer_id, algorithm, signature
 * Other members are ignored (they are not signed and do not travel).
 * Returns GOV_OK (*reason GOV_REASON_NONE), or GOV_ERR_VERIFY with *reason
 * (may be NULL) GOV_REASON_INVALID_BUNDLE or GOV_REASON_TENANT_MISMATCH and
 * the culprit named in errbuf (may be NULL).  Cost: O(number of signatures). */
gov_err_t gov_bundle_check_shape(const json_t *bundle, const char *expected_tenant,
                                 gov_reason_t *reason, char *errbuf, size_t errbuf_size);

/* Parses an untrusted body (len bytes; the caller bounds len): JSON (jansson,
 * duplicate keys refused), an object, the shape above, then the document's
 * raw span.  On GOV_OK *bundle is a new reference (json_decref) and the
 * document text is body + *doc_off, *doc_len bytes.  On failure *bundle is
 * NULL and *reason (may be NULL) is one of
 *   GOV_REASON_INVALID_JSON    GOV_ERR_PARSE   not JSON (or not what the scanner accepts)
 *   GOV_REASON_INVALID_BUNDLE  GOV_ERR_VERIFY  not an object, wrong shape, too deep
 *   GOV_REASON_TENANT_MISMATCH GOV_ERR_VERIFY
 *   GOV_REASON_INTERNAL        GOV_ERR_NOMEM, GOV_ERR_INVALID_ARG
 * (GOV_REASON_NONE on GOV_OK) with detail in errbuf (may be NULL; may
 * quote bytes of the body, so a caller that logs it sanitizes it).
 * Cost: O(len). */
gov_err_t gov_bundle_parse(const char *body, size_t len, const char *expected_tenant,
                           json_t **bundle, size_t *doc_off, size_t *doc_len,
                           gov_reason_t *reason, char *errbuf, size_t errbuf_size);

/* Builds the ConstitutionBundle event (a new object for gov_avro_encode) of a
 * bundle that passed gov_bundle_check_shape: event_id (UUIDv7 text),
 * occurred_at (microseconds), tenant, document_json (doc[0..doc_len), copied
 * byte for byte; must be valid UTF-8), canonicalization, hash_alg, checksum,
 * signatures (only signer_id, algorithm, signature of each), source, etag
 * (NULL -> JSON null).  Returns GOV_OK with *event new, GOV_ERR_INVALID_ARG
 * (bundle not checked, document not UTF-8) or GOV_ERR_NOMEM. */
gov_err_t gov_bundle_event_new(const json_t *bundle, const char *doc, size_t doc_len,
                               const char *event_id, int64_t occurred_at_us,
                               const char *source, const char *etag, json_t **event);

#endif /* GOV_BUNDLE_H */
