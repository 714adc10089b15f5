/* gov_avro_internal.h - what the gov_avro files share, and nothing else sees.
 *
 * gov_avro is split by concern:
 *   gov_avro_schema.c  the schema tree (THE data model), its Parsing
 *                      Canonical Form and CRC-64-AVRO
 *   gov_avro_decode.c  binary body -> JSON over the tree; the decoder is the
 *                      bounds checker (validate_body is a decode that builds
 *                      nothing)
 *   gov_avro_encode.c  JSON -> binary body over the tree, into a gov_buf
 *   gov_avro.c         the registry, single-object framing, the public API
 * Callers use gov_avro.h only.
 */
#ifndef GOV_AVRO_INTERNAL_H
#define GOV_AVRO_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gov_avro.h"
#include "gov_buf.h"
#include "gov_err.h"
#include "gov_util.h"

/* Nesting of schema definitions (not data): far beyond any real schema, and
 * it bounds the recursion of the schema parser on hostile text. */
#define GOV_AVRO_SCHEMA_MAX_DEPTH 128u

typedef enum gov_avro_kind {
    /* The primitives first: their values index gov_avro_kind_names[]. */
    GOV_AVRO_NULL = 0,
    GOV_AVRO_BOOLEAN,
    GOV_AVRO_INT,
    GOV_AVRO_LONG,
    GOV_AVRO_FLOAT,
    GOV_AVRO_DOUBLE,
    GOV_AVRO_BYTES,
    GOV_AVRO_STRING,
    GOV_AVRO_RECORD,
    GOV_AVRO_ENUM,
    GOV_AVRO_ARRAY,
    GOV_AVRO_MAP,
    GOV_AVRO_UNION,
    GOV_AVRO_FIXED,
} gov_avro_kind_t;

#define GOV_AVRO_PRIMITIVE_COUNT 8

/* "null", "boolean", ... indexed by gov_avro_kind_t. */
extern const char *const gov_avro_kind_names[];

/* One node of a schema.  A named type is one shared node, so a recursive
 * schema is a cyclic graph; every node lives in its schema's arena. */
typedef struct gov_avro_node gov_avro_node_t;
struct gov_avro_node {
    gov_avro_kind_t kind;
    size_t id;               /* index in the arena: a visitor's seen-set */
    char *fullname;          /* record, enum, fixed */
    size_t count;            /* fields, symbols, branches; fixed: the size */
    char **names;            /* record: field names; enum: symbols */
    gov_avro_node_t **child; /* record: field types; union: branches */
    json_t **defaults;       /* record: each field's default (owned) or NULL */
    gov_avro_node_t *item;   /* array items, map values */
    /* A union of null and exactly one other type: its two branch indexes.
     * union_value is SIZE_MAX for any other union. */
    size_t union_null;
    size_t union_value;
};

typedef struct gov_avro_schema {
    gov_avro_node_t **nodes; /* the arena: owns every node */
    size_t n_nodes;
    size_t cap_nodes;
    gov_avro_node_t *root;   /* borrowed from the arena */
} gov_avro_schema_t;

/* --- gov_avro_schema.c ---------------------------------------------------- */

/* Formats into errbuf (when it has room) and evaluates to err. */
#define gov_avro_fail(errbuf, errbuf_size, err, ...) \
    (gov_errbuf((errbuf), (errbuf_size), __VA_ARGS__), (err))

/* Parses schema text (len bytes, JSON) into a new schema (*out, freed with
 * gov_avro_schema_free).  GOV_ERR_PARSE: not JSON; GOV_ERR_AVRO: not a valid
 * Avro schema; GOV_ERR_NOMEM.  Cost: linear in the text, plus a linear name
 * lookup per named type. */
gov_err_t gov_avro_schema_parse(const char *text, size_t len, gov_avro_schema_t **out,
                                char *errbuf, size_t errbuf_size);

/* NULL is safe. */
void gov_avro_schema_free(gov_avro_schema_t *s);

/* Index of `name` among the field names or symbols of n; n->count when
 * absent.  Linear: records and enums are small. */
size_t gov_avro_node_find_name(const gov_avro_node_t *n, const char *name);

/* Prints the Parsing Canonical Form: *out is a new NUL-terminated string
 * (gov_free).  Only GOV_ERR_NOMEM can fail. */
gov_err_t gov_avro_schema_canonical(const gov_avro_schema_t *s, char **out, char *errbuf,
                                    size_t errbuf_size);

/* --- field paths for messages ("signatures[1].signer_id") ----------------- */

#define GOV_AVRO_PATH_FRAMES (GOV_AVRO_MAX_DEPTH + 2u)

typedef struct gov_avro_path {
    struct {
        const char *name; /* field name or map key, or NULL for an index */
        size_t index;
    } frames[GOV_AVRO_PATH_FRAMES];
    size_t depth; /* may exceed the frames kept; only those are printed */
} gov_avro_path_t;

void gov_avro_path_push_name(gov_avro_path_t *p, const char *name);
void gov_avro_path_push_index(gov_avro_path_t *p, size_t index);
void gov_avro_path_pop(gov_avro_path_t *p);
/* Writes the path into buf and returns it, or "(top level)". */
const char *gov_avro_path_format(const gov_avro_path_t *p, char *buf, size_t size);

/* Formats the reason and where it happened into errbuf and returns err: a
 * decoder error as "<reason> at body byte <offset> (<path>)", an encoder
 * error (offset GOV_AVRO_NO_OFFSET) as "<path>: <reason>". */
#define GOV_AVRO_NO_OFFSET SIZE_MAX
gov_err_t gov_avro_path_fail(const gov_avro_path_t *p, size_t offset, char *errbuf,
                             size_t errbuf_size, gov_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* --- gov_avro_decode.c ----------------------------------------------------- */

/* Decodes (or, with out == NULL, only checks) a binary body of `root`:
 * every varint, length, block count, union and enum index and UTF-8 sequence
 * is checked against the bytes that remain and the bounds of gov_avro.h
 * before it is used.  GOV_ERR_TOO_LARGE for a body over GOV_AVRO_MAX_BODY,
 * GOV_ERR_PARSE with the reason, the body offset and the field path in errbuf,
 * GOV_ERR_NOMEM.  On success *out (if asked) is a new JSON object.  Cost:
 * linear in len plus the element count, n log n in the keys of a map. */
gov_err_t gov_avro_decode_body(const gov_avro_node_t *root, const unsigned char *body,
                               size_t len, json_t **out, char *errbuf, size_t errbuf_size);

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF.  Returns the length of the valid prefix (== len when valid).
 * The decoder refuses any other string, so the encoder does too. */
size_t gov_avro_utf8_valid_prefix(const unsigned char *s, size_t len);

/* --- gov_avro_encode.c ----------------------------------------------------- */

/* Appends the binary encoding of `value` (borrowed) as type n to out, or,
 * with out == NULL, only checks that it would encode.  in_default: value is
 * a schema default, whose union values must take the union's first branch.
 * GOV_ERR_INVALID_ARG (with the field path in errbuf), GOV_ERR_TOO_LARGE,
 * GOV_ERR_UNSUPPORTED.  A failure of out itself (memory, its limit) is left
 * in out->err for the caller.  Cost: linear in the size of value. */
gov_err_t gov_avro_encode_value(const gov_avro_node_t *n, json_t *value, gov_buf_t *out,
                                bool in_default, char *errbuf, size_t errbuf_size);

/* Registry-time check that a schema fits the codec: only the types gov_avro.h
 * maps, only unions of null and one type, and every field default valid for
 * its type.  GOV_ERR_UNSUPPORTED, GOV_ERR_AVRO (bad default), GOV_ERR_NOMEM. */
gov_err_t gov_avro_codec_check(const gov_avro_schema_t *s, char *errbuf, size_t errbuf_size);

#endif /* GOV_AVRO_INTERNAL_H */
