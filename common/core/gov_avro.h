/* gov_avro.h - Avro single-object encoding of the governance events.
 *
 * Framing (Avro specification, "Single-object encoding"):
 *     C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the schema's
 *     Parsing Canonical Form | Avro binary body
 *
 * The Parsing Canonical Form and CRC-64-AVRO are implemented here
 * (gov_avro_canonical_form, gov_avro_fingerprint64), and so is the codec:
 * encoding and decoding walk one schema tree, and the decoder checks every
 * length, count, index and UTF-8 sequence against the bytes that remain
 * before it uses it, so an untrusted body needs no second pass and no other
 * library reads it (gov_avro_validate_body is that decoder building
 * nothing).  The Apache Avro C library serves only the tests, as an
 * independent implementation the bytes are checked against.
 *
 * Events are exchanged with callers as jansson objects whose members are the
 * record's fields: string -> JSON string, long/int -> JSON integer (logical
 * timestamps are integer microseconds), boolean -> true/false, enum -> the
 * symbol as a string, array -> JSON array, nested record -> JSON object, a
 * ["null", T] union -> JSON null or the T value directly (no Avro-JSON union
 * wrapper).  Only the types the schemas/ use need be supported: null,
 * boolean, int, long, string, bytes (a JSON string whose code points
 * U+0000..U+00FF are the byte values), record, enum, array, map (a JSON
 * object), and unions of null and one other type.
 *
 * The registry is built from the schemas compiled into the binary
 * (build/gen/gov_schemas_gen.c, generated from the .avsc files in schemas/).
 *
 * Thread-safety: a registry is immutable after gov_avro_registry_new and may
 * be shared by threads; encode/decode keep all state on the stack or in
 * values they return.
 */
#ifndef GOV_AVRO_H
#define GOV_AVRO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gov_buf.h"
#include "gov_err.h"

#define GOV_AVRO_MAGIC0 0xC3
#define GOV_AVRO_MAGIC1 0x01
#define GOV_AVRO_HEADER_LEN 10

/* Hard bounds on untrusted bodies, checked as they are read. */
#define GOV_AVRO_MAX_BODY (1u << 20)     /* 1 MiB per message */
#define GOV_AVRO_MAX_ITEMS 100000u       /* elements of one array/map */
#define GOV_AVRO_MAX_DEPTH 32u           /* nesting of records/arrays/maps */

typedef struct gov_avro_registry gov_avro_registry_t;

/* --- pure functions (no I/O) -------------------------------------------- */

/* CRC-64-AVRO (the Rabin fingerprint of the Avro spec, EMPTY =
 * 0xc15d213aa4d7a795) of len bytes.  O(len). */
uint64_t gov_avro_fingerprint64(const void *buf, size_t len);

/* Computes the Parsing Canonical Form of the schema text `schema_json`
 * (Avro spec, "Parsing Canonical Form for Schemas": PRIMITIVES, FULLNAMES,
 * STRIP, ORDER, STRINGS, INTEGERS, WHITESPACE).  On success *out is a new
 * NUL-terminated string the caller frees with gov_free. */
gov_err_t gov_avro_canonical_form(const char *schema_json, char **out,
                                  char *errbuf, size_t errbuf_size);

/* --- registry ------------------------------------------------------------ */

/* Builds a registry of every embedded schema (parsed, checked to fit the
 * codec, PCF and fingerprint computed).  Returns GOV_OK and a new registry in *out. */
gov_err_t gov_avro_registry_new(gov_avro_registry_t **out, char *errbuf,
                                size_t errbuf_size);
void gov_avro_registry_free(gov_avro_registry_t *reg);

/* Looks up a schema by short name ("AuditEvent"); returns its fingerprint in
 * *fp.  GOV_ERR_NOT_FOUND when unknown. */
gov_err_t gov_avro_registry_fingerprint(const gov_avro_registry_t *reg,
                                        const char *name, uint64_t *fp);

/* Returns the borrowed Parsing Canonical Form of `name`, or NULL. */
const char *gov_avro_registry_canonical(const gov_avro_registry_t *reg,
                                        const char *name);

/* --- encode / decode ----------------------------------------------------- */

/* An Avro long (or int) as the binary encoding writes it: zig-zag, then
 * base-128 groups, least significant first (1..10 bytes), appended to out.
 * For writers that encode one known schema directly, without a JSON event
 * (gov_policy_decision_avro). */
void gov_avro_write_long(gov_buf_t *out, int64_t v);

/* Encodes `event` (borrowed; a JSON object following the mapping above) as a
 * single-object message of schema `name`.  Missing fields with a default take
 * it; a missing field without one, an extra member, or a value of the wrong
 * type is GOV_ERR_INVALID_ARG with the field path in errbuf; a body over
 * GOV_AVRO_MAX_BODY is GOV_ERR_TOO_LARGE.  On success *buf is new memory
 * (gov_free) of *len bytes. */
gov_err_t gov_avro_encode(const gov_avro_registry_t *reg, const char *name,
                          json_t *event, unsigned char **buf, size_t *len,
                          char *errbuf, size_t errbuf_size);

/* Decodes an untrusted single-object message.  Checks the magic, resolves the
 * fingerprint (unknown: GOV_ERR_UNSUPPORTED), and decodes the body, checking
 * it against the schema's bounds as it goes (GOV_ERR_TOO_LARGE over
 * GOV_AVRO_MAX_BODY; GOV_ERR_PARSE with the reason in errbuf: truncated,
 * negative length, length beyond the remaining bytes, union index out of
 * range, enum index out of range, invalid UTF-8 in a string, trailing bytes,
 * too deep, too many items).  On success *event is a new JSON object and
 * *name the borrowed schema name; on failure *event and *name are NULL. */
gov_err_t gov_avro_decode(const gov_avro_registry_t *reg, const void *buf,
                          size_t len, json_t **event, const char **name,
                          char *errbuf, size_t errbuf_size);

/* Pure bounds check of an Avro binary body against the named schema: the
 * decoder of gov_avro_decode building nothing, so it accepts exactly what
 * decode accepts, with the same errors.  Exposed for tests and the fuzz
 * target. */
gov_err_t gov_avro_validate_body(const gov_avro_registry_t *reg,
                                 const char *name, const void *body,
                                 size_t len, char *errbuf, size_t errbuf_size);

#endif /* GOV_AVRO_H */
