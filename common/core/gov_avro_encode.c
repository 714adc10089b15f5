/* gov_avro_encode.c - JSON event -> Avro binary body, over the schema tree.
 *
 * What it is for: writing the events libgov produces, with the mapping of
 * gov_avro.h, and refusing an event that does not fit its schema with the
 * field path of the first problem ("reasons[1].weight_micros: expected an
 * integer, got a boolean").
 *
 * How it works: one walk of the JSON value beside the schema tree appends to
 * a gov_buf (zig-zag varints; length-prefixed strings and bytes; an array or
 * map as one block with a positive count, then 0; a union as its branch
 * index then the value).  That is the shortest form the spec allows, and the
 * bytes the Apache Avro libraries (Java, Python, C) write.  Type errors are
 * reported before any buffer failure, because the walk goes on checking
 * after the buffer has failed (its error is sticky).  With no buffer the
 * walk only checks, which the registry uses on schema defaults.
 *
 * What it does not do: float, double, fixed and unions other than null + one
 * type (gov_avro_codec_check refuses such schemas up front), or the Avro JSON
 * encoding.
 */
#include "gov_avro_internal.h"

#include <string.h>

#include "gov_alloc.h"

typedef struct writer {
    gov_buf_t *out; /* NULL: check only */
    gov_avro_path_t path;
    char *errbuf;
    size_t errbuf_size;
} writer_t;

/* "<field path>: <reason>" into errbuf; returns err. */
#define write_fail(w, err, ...)                                                         \
    gov_avro_path_fail(&(w)->path, GOV_AVRO_NO_OFFSET, (w)->errbuf, (w)->errbuf_size, (err), \
                       __VA_ARGS__)

/* long and int: zig-zag, then base-128 groups, least significant first. */
void gov_avro_write_long(gov_buf_t *out, int64_t v) {
    unsigned char b[10];
    size_t n = 0;
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z >= 0x80) {
        b[n++] = (unsigned char)(z | 0x80);
        z >>= 7;
    }
    b[n++] = (unsigned char)z;
    gov_buf_put(out, b, n);
}

static void put_long(writer_t *w, int64_t v) {
    if (w->out != NULL)
        gov_avro_write_long(w->out, v);
}

static void put_raw(writer_t *w, const void *p, size_t n) {
    if (w->out != NULL)
        gov_buf_put(w->out, p, n);
}

/* A string or map key: its length, then its bytes, which must be strict
 * UTF-8 (jansson checks its strings, except those made with the _nocheck
 * constructors) so that nothing is written that the decoder would refuse. */
static gov_err_t put_string(writer_t *w, const char *what, const char *s, size_t len) {
    if (gov_avro_utf8_valid_prefix((const unsigned char *)s, len) != len)
        return write_fail(w, GOV_ERR_INVALID_ARG, "%s is not valid UTF-8", what);
    put_long(w, (int64_t)len);
    put_raw(w, s, len);
    return GOV_OK;
}

static const char *json_type_name(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Bytes travel as a JSON string whose code points are the byte values
 * (U+0000..U+00FF), the convention of the Avro JSON encoding: a length, then
 * each code point as one byte.  Two passes (count, then write) so nothing is
 * allocated here. */
static gov_err_t put_latin1(writer_t *w, const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++, n++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            if (!((c == 0xC2 || c == 0xC3) && i + 1 < len))
                return write_fail(w, GOV_ERR_INVALID_ARG,
                                  "bytes must be a string of code points U+0000..U+00FF");
            i++;
        }
    }
    put_long(w, (int64_t)n);
    for (size_t i = 0; i < len && w->out != NULL; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80)
            c = (unsigned char)(((c & 0x03) << 6) | ((unsigned char)s[++i] & 0x3f));
        gov_buf_put(w->out, &c, 1);
    }
    return GOV_OK;
}

static gov_err_t write_value(writer_t *w, const gov_avro_node_t *n, json_t *j, unsigned depth,
                             bool in_default);

/* Extra members are refused: a typo must not silently vanish.  Missing
 * members take the field's default. */
static gov_err_t write_record(writer_t *w, const gov_avro_node_t *n, json_t *j, unsigned depth,
                              bool in_default) {
    gov_err_t err = GOV_OK;
    for (void *it = json_object_iter(j); it != NULL; it = json_object_iter_next(j, it)) {
        const char *key = json_object_iter_key(it);
        if (gov_avro_node_find_name(n, key) == n->count ||
            strlen(key) != json_object_iter_key_len(it)) {
            gov_avro_path_push_name(&w->path, key);
            err = write_fail(w, GOV_ERR_INVALID_ARG, "not a field of record %s", n->fullname);
            gov_avro_path_pop(&w->path);
            return err;
        }
    }
    for (size_t f = 0; f < n->count && err == GOV_OK; f++) {
        json_t *member = json_object_get(j, n->names[f]);
        bool from_default = member == NULL;
        gov_avro_path_push_name(&w->path, n->names[f]);
        if (from_default)
            member = n->defaults[f];
        if (member == NULL)
            err = write_fail(w, GOV_ERR_INVALID_ARG, "missing field without a default");
        else
            err = write_value(w, n->child[f], member, depth, in_default || from_default);
        gov_avro_path_pop(&w->path);
    }
    return err;
}

/* An array or a map: one block of every element, then the closing 0 (only
 * the 0 when empty). */
static gov_err_t write_blocks(writer_t *w, const gov_avro_node_t *n, json_t *j, unsigned depth,
                              bool in_default) {
    bool is_map = n->kind == GOV_AVRO_MAP;
    size_t size = is_map ? json_object_size(j) : json_array_size(j);
    gov_err_t err = GOV_OK;
    if (size > GOV_AVRO_MAX_ITEMS)
        return write_fail(w, GOV_ERR_TOO_LARGE, "more than %u items", GOV_AVRO_MAX_ITEMS);
    if (size > 0)
        put_long(w, (int64_t)size);
    if (is_map) {
        for (void *it = json_object_iter(j); it != NULL && err == GOV_OK;
             it = json_object_iter_next(j, it)) {
            const char *key = json_object_iter_key(it);
            size_t key_len = json_object_iter_key_len(it);
            if (strlen(key) != key_len)
                return write_fail(w, GOV_ERR_INVALID_ARG, "map key with a NUL byte");
            err = put_string(w, "map key", key, key_len);
            gov_avro_path_push_name(&w->path, key);
            if (err == GOV_OK)
                err = write_value(w, n->item, json_object_iter_value(it), depth, in_default);
            gov_avro_path_pop(&w->path);
        }
    } else {
        for (size_t i = 0; i < size && err == GOV_OK; i++) {
            gov_avro_path_push_index(&w->path, i);
            err = write_value(w, n->item, json_array_get(j, i), depth, in_default);
            gov_avro_path_pop(&w->path);
        }
    }
    if (err == GOV_OK)
        put_long(w, 0);
    return err;
}

/* Writes j as type n.  depth counts the records, arrays and maps around it.
 * Cost: linear in the size of j (a record's members: quadratic in its field
 * count, which the schema fixes). */
static gov_err_t write_value(writer_t *w, const gov_avro_node_t *n, json_t *j, unsigned depth,
                             bool in_default) {
    switch (n->kind) {
    case GOV_AVRO_NULL:
        if (!json_is_null(j))
            return write_fail(w, GOV_ERR_INVALID_ARG, "expected null, got %s", json_type_name(j));
        return GOV_OK;
    case GOV_AVRO_BOOLEAN:
        if (!json_is_boolean(j))
            return write_fail(w, GOV_ERR_INVALID_ARG, "expected a boolean, got %s",
                              json_type_name(j));
        put_raw(w, json_is_true(j) ? "\x01" : "\x00", 1);
        return GOV_OK;
    case GOV_AVRO_INT:
    case GOV_AVRO_LONG: {
        bool is_int = n->kind == GOV_AVRO_INT;
        if (!json_is_integer(j) || (is_int && (json_integer_value(j) < INT32_MIN ||
                                               json_integer_value(j) > INT32_MAX)))
            return write_fail(w, GOV_ERR_INVALID_ARG, "expected %s, got %s",
                              is_int ? "a 32-bit integer" : "an integer", json_type_name(j));
        put_long(w, (int64_t)json_integer_value(j));
        return GOV_OK;
    }
    case GOV_AVRO_STRING:
        if (!json_is_string(j))
            return write_fail(w, GOV_ERR_INVALID_ARG, "expected a string, got %s",
                              json_type_name(j));
        return put_string(w, "string", json_string_value(j), json_string_length(j));
    case GOV_AVRO_BYTES:
        if (!json_is_string(j))
            return write_fail(w, GOV_ERR_INVALID_ARG, "expected a string, got %s",
                              json_type_name(j));
        return put_latin1(w, json_string_value(j), json_string_length(j));
    case GOV_AVRO_ENUM: {
        size_t idx = json_is_string(j) ? gov_avro_node_find_name(n, json_string_value(j))
                                       : n->count;
        if (idx == n->count)
            return write_fail(w, GOV_ERR_INVALID_ARG, "not a symbol of enum %s", n->fullname);
        put_long(w, (int64_t)idx);
        return GOV_OK;
    }
    case GOV_AVRO_UNION: {
        if (n->union_value == SIZE_MAX)
            return write_fail(w, GOV_ERR_UNSUPPORTED,
                              "only unions of null and one type are supported");
        size_t branch = json_is_null(j) ? n->union_null : n->union_value;
        if (in_default && branch != 0)
            return write_fail(w, GOV_ERR_INVALID_ARG,
                              "a union default must match the union's first branch");
        put_long(w, (int64_t)branch);
        return write_value(w, n->child[branch], j, depth, in_default);
    }
    case GOV_AVRO_ARRAY:
    case GOV_AVRO_MAP:
    case GOV_AVRO_RECORD: {
        bool want_array = n->kind == GOV_AVRO_ARRAY;
        if (want_array ? !json_is_array(j) : !json_is_object(j))
            return write_fail(w, GOV_ERR_INVALID_ARG, "expected %s, got %s",
                              want_array ? "an array" : "an object", json_type_name(j));
        if (depth + 1 > GOV_AVRO_MAX_DEPTH)
            return write_fail(w, GOV_ERR_TOO_LARGE, "nested deeper than %u", GOV_AVRO_MAX_DEPTH);
        return n->kind == GOV_AVRO_RECORD ? write_record(w, n, j, depth + 1, in_default)
                                          : write_blocks(w, n, j, depth + 1, in_default);
    }
    case GOV_AVRO_FLOAT:
    case GOV_AVRO_DOUBLE:
    case GOV_AVRO_FIXED:
        break;
    }
    return write_fail(w, GOV_ERR_UNSUPPORTED, "type %s is not supported by the codec",
                      gov_avro_kind_names[n->kind]);
}

gov_err_t gov_avro_encode_value(const gov_avro_node_t *n, json_t *value, gov_buf_t *out,
                                bool in_default, char *errbuf, size_t errbuf_size) {
    writer_t w = {.out = out, .errbuf = errbuf, .errbuf_size = errbuf_size};
    return write_value(&w, n, value, 0, in_default);
}

/* Visits each named type once (seen[] by node id). */
static gov_err_t check_node(const gov_avro_node_t *n, bool *seen, char *errbuf,
                            size_t errbuf_size) {
    switch (n->kind) {
    case GOV_AVRO_FLOAT:
    case GOV_AVRO_DOUBLE:
    case GOV_AVRO_FIXED:
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_UNSUPPORTED,
                             "type %s is not supported by the event codec",
                             gov_avro_kind_names[n->kind]);
    case GOV_AVRO_UNION:
        if (n->union_value == SIZE_MAX)
            return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_UNSUPPORTED,
                                 "only unions of null and one other type are supported");
        return check_node(n->child[n->union_value], seen, errbuf, errbuf_size);
    case GOV_AVRO_ARRAY:
    case GOV_AVRO_MAP:
        return check_node(n->item, seen, errbuf, errbuf_size);
    case GOV_AVRO_RECORD:
        if (seen[n->id])
            return GOV_OK;
        seen[n->id] = true;
        for (size_t i = 0; i < n->count; i++) {
            gov_err_t err = check_node(n->child[i], seen, errbuf, errbuf_size);
            if (err != GOV_OK)
                return err;
            if (n->defaults[i] != NULL) {
                writer_t w = {.errbuf = errbuf, .errbuf_size = errbuf_size};
                gov_avro_path_push_name(&w.path, n->names[i]);
                err = write_value(&w, n->child[i], n->defaults[i], 0, true);
                if (err != GOV_OK)
                    return err == GOV_ERR_NOMEM ? err : GOV_ERR_AVRO;
            }
        }
        return GOV_OK;
    default:
        return GOV_OK;
    }
}

gov_err_t gov_avro_codec_check(const gov_avro_schema_t *s, char *errbuf, size_t errbuf_size) {
    bool *seen = gov_calloc(s->n_nodes, sizeof(*seen));
    if (seen == NULL)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
    gov_err_t err = check_node(s->root, seen, errbuf, errbuf_size);
    gov_free(seen);
    return err;
}
