/* gov_avro_decode.c - Avro binary body -> JSON event, over the schema tree.
 *
 * What it is for: reading untrusted Kafka message bodies.  The decoder is
 * the bounds checker: there is no separate validation pass and no second
 * implementation that reads the bytes afterwards.  gov_avro_validate_body is
 * this same walk with the output switched off.
 *
 * How it works: a cursor (p, end) moves through the body as the tree says.
 * Every varint is bounded in bytes and in range before it is used; every
 * string/bytes length and array/map block byte size is checked against the
 * bytes that remain; block counts are bounded per array/map and per message
 * (GOV_AVRO_MAX_ITEMS, MAX_TOTAL_ITEMS); records/arrays/maps nest at most
 * GOV_AVRO_MAX_DEPTH; strings and map keys must be strict UTF-8 and map keys
 * free of NUL and distinct.  A failure names the reason, the body offset and
 * the field path.  JSON values are built only from bytes already checked.
 *
 * What it does not do: float, double and fixed are skipped by the checker
 * (the canonical form handles every type) but the registry refuses schemas
 * with them, so they never reach the JSON mapping; no schema resolution.
 */
#include "gov_avro_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"

/* Elements over all arrays and maps of one message.  One element costs at
 * least one byte unless its type encodes to nothing (null, an empty record),
 * so this bound only ever bites on such types, where it keeps the work of the
 * decoder proportional to the input. */
#define MAX_TOTAL_ITEMS ((size_t)GOV_AVRO_MAX_BODY)

typedef struct map_key {
    const unsigned char *p;
    size_t len;
} map_key_t;

typedef struct reader {
    const unsigned char *start;
    const unsigned char *p;
    const unsigned char *end;
    size_t total_items;
    bool build; /* make JSON values, or only check */
    gov_avro_path_t path;
    char *errbuf;
    size_t errbuf_size;
} reader_t;

/* The reason, the body offset and the field path into errbuf; returns err. */
#define read_fail(r, err, ...)                                                          \
    gov_avro_path_fail(&(r)->path, (size_t)((r)->p - (r)->start), (r)->errbuf,          \
                       (r)->errbuf_size, (err), __VA_ARGS__)

static gov_err_t read_nomem(reader_t *r) {
    return read_fail(r, GOV_ERR_NOMEM, "out of memory");
}

static size_t remaining(const reader_t *r) {
    return (size_t)(r->end - r->p);
}

/* ------------------------------------------------------------------------ */
/* Bounded primitive reads                                                   */

/* Reads a zig-zag varint of at most max_bytes bytes whose last byte may carry
 * no more than last_max (so the value fits 32 or 64 bits).  Encodings that are
 * longer than needed but within those bounds are accepted, as the spec does
 * not require the shortest form. */
static gov_err_t read_zigzag(reader_t *r, unsigned max_bytes, unsigned char last_max,
                             int64_t *out) {
    uint64_t v = 0;
    for (unsigned i = 0;; i++) {
        if (r->p == r->end)
            return read_fail(r, GOV_ERR_PARSE, "truncated varint");
        unsigned char b = *r->p;
        if (i == max_bytes - 1 && b > last_max)
            return read_fail(r, GOV_ERR_PARSE, "varint longer than %u bytes or out of range",
                             max_bytes);
        r->p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0)
            break;
    }
    *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
    return GOV_OK;
}

static gov_err_t read_long(reader_t *r, int64_t *out) {
    return read_zigzag(r, 10, 0x01, out);
}

/* Reads a string or bytes length and checks it against the remaining bytes. */
static gov_err_t read_length(reader_t *r, const char *what, size_t *out) {
    const unsigned char *at = r->p;
    int64_t len;
    gov_err_t err = read_long(r, &len);
    if (err != GOV_OK)
        return err;
    if (len < 0) {
        r->p = at;
        return read_fail(r, GOV_ERR_PARSE, "negative %s length %" PRId64, what, len);
    }
    if ((uint64_t)len > remaining(r)) {
        size_t left = remaining(r);
        r->p = at;
        return read_fail(r, GOV_ERR_PARSE, "%s length %" PRId64 " exceeds the %zu remaining bytes",
                         what, len, left);
    }
    *out = (size_t)len;
    return GOV_OK;
}

/* Reads a long that indexes one of count things (enum symbols, union
 * branches); the cursor stays on it when it is out of range. */
static gov_err_t read_index(reader_t *r, const char *what, size_t count, const char *things,
                            size_t *out) {
    const unsigned char *at = r->p;
    int64_t v;
    gov_err_t err = read_long(r, &v);
    if (err != GOV_OK)
        return err;
    if (v < 0 || (uint64_t)v >= count) {
        r->p = at;
        return read_fail(r, GOV_ERR_PARSE, "%s index %" PRId64 " out of range (%zu %s)", what, v,
                         count, things);
    }
    *out = (size_t)v;
    return GOV_OK;
}

size_t gov_avro_utf8_valid_prefix(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        /* RFC 3629 section 4: the lead byte gives the number of continuation
         * bytes and narrows the range of the first one (no overlong form
         * after E0/F0, no surrogate after ED, nothing past U+10FFFF after
         * F4); C0, C1 and F5..FF never start a character. */
        size_t need = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
        unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        if (c < 0xC2 || c > 0xF4 || len - i - 1 < need || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return i;
        i += need + 1;
    }
    return i;
}

/* Reads a string (or a map key: no NUL either, as a key becomes a C string)
 * and returns where its checked bytes are. */
static gov_err_t read_string(reader_t *r, const char *what, bool map_key, map_key_t *out) {
    size_t len;
    gov_err_t err = read_length(r, what, &len);
    if (err != GOV_OK)
        return err;
    size_t ok = gov_avro_utf8_valid_prefix(r->p, len);
    if (ok != len) {
        r->p += ok;
        return read_fail(r, GOV_ERR_PARSE, "invalid UTF-8 in %s", what);
    }
    if (map_key && memchr(r->p, '\0', len) != NULL)
        return read_fail(r, GOV_ERR_PARSE, "NUL byte in map key");
    *out = (map_key_t){r->p, len};
    r->p += len;
    return GOV_OK;
}

/* Bytes travel as a JSON string whose code points are the byte values
 * (U+0000..U+00FF), the convention of the Avro JSON encoding. */
static json_t *json_from_bytes(const unsigned char *b, size_t n) {
    char *s = gov_malloc(2 * n + 1);
    size_t k = 0;
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (b[i] < 0x80) {
            s[k++] = (char)b[i];
        } else {
            s[k++] = (char)(0xC0 | (b[i] >> 6));
            s[k++] = (char)(0x80 | (b[i] & 0x3f));
        }
    }
    json_t *j = json_stringn_nocheck(s, k);
    gov_free(s);
    return j;
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */

/* The one exit of a reader that built `value` (a new reference or NULL): on
 * success it goes to *out when the caller wants it, otherwise it is
 * released. */
static gov_err_t hand_over(gov_err_t err, json_t *value, json_t **out) {
    if (err == GOV_OK && out != NULL)
        *out = value;
    else
        json_decref(value);
    return err;
}

static gov_err_t read_value(reader_t *r, const gov_avro_node_t *n, unsigned depth,
                            json_t **out);

static int map_key_cmp(const void *a, const void *b) {
    const map_key_t *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->p, y->p, x->len);
}

/* Reads the count (and, for a negative count, the byte size) that opens an
 * array/map block; *count 0 ends the array/map.  items: elements so far. */
static gov_err_t read_block_header(reader_t *r, const gov_avro_node_t *n, size_t items,
                                   int64_t *count, int64_t *block_size) {
    const char *kind = gov_avro_kind_names[n->kind];
    const unsigned char *at = r->p;
    gov_err_t err = read_long(r, count);
    *block_size = -1;
    if (err != GOV_OK || *count == 0)
        return err;
    if (*count < 0) {
        if (*count < -(int64_t)GOV_AVRO_MAX_ITEMS) {
            r->p = at;
            return read_fail(r, GOV_ERR_PARSE, "too many items in one %s (block of %" PRId64 ")",
                             kind, *count);
        }
        *count = -*count;
        const unsigned char *size_at = r->p;
        err = read_long(r, block_size);
        if (err != GOV_OK)
            return err;
        if (*block_size < 0 || (uint64_t)*block_size > remaining(r)) {
            size_t left = remaining(r);
            r->p = size_at;
            return read_fail(r, GOV_ERR_PARSE,
                             "%s block byte size %" PRId64
                             " is negative or beyond the %zu remaining bytes",
                             kind, *block_size, left);
        }
    }
    /* Every map entry takes at least one byte (its key's length), so a count
     * beyond the remaining bytes is refused before the key table is sized
     * from it.  (An array of nulls takes no bytes: the item caps bound it.) */
    if (n->kind == GOV_AVRO_MAP && (uint64_t)*count > remaining(r)) {
        size_t left = remaining(r);
        r->p = at;
        return read_fail(r, GOV_ERR_PARSE,
                         "map block of %" PRId64 " entries is beyond the %zu remaining bytes",
                         *count, left);
    }
    if ((uint64_t)*count > GOV_AVRO_MAX_ITEMS - items) {
        r->p = at;
        return read_fail(r, GOV_ERR_PARSE, "too many items in one %s (more than %u)", kind,
                         GOV_AVRO_MAX_ITEMS);
    }
    if ((size_t)*count > MAX_TOTAL_ITEMS - r->total_items) {
        r->p = at;
        return read_fail(r, GOV_ERR_PARSE, "too many items in the message (more than %zu)",
                         MAX_TOTAL_ITEMS);
    }
    r->total_items += (size_t)*count;
    return GOV_OK;
}

/* Array and map blocks until a 0 count.  A negative count carries the
 * block's byte size, which must match what its items really take.  Map keys
 * must be distinct: a JSON object would merge duplicates silently.  *out (when
 * building) is the new array/object. */
static gov_err_t read_blocks(reader_t *r, const gov_avro_node_t *n, unsigned depth,
                             json_t **out) {
    bool is_map = n->kind == GOV_AVRO_MAP;
    map_key_t *keys = NULL;
    size_t n_keys = 0, cap_keys = 0, items = 0;
    json_t *container = NULL;
    gov_err_t err = GOV_OK;

    if (r->build) {
        container = is_map ? json_object() : json_array();
        if (container == NULL) {
            err = read_nomem(r);
            goto out;
        }
    }
    for (;;) {
        int64_t count, block_size;
        err = read_block_header(r, n, items, &count, &block_size);
        if (err != GOV_OK || count == 0)
            goto out_blocks;
        items += (size_t)count;
        if (is_map && n_keys + (size_t)count > cap_keys) {
            size_t cap = cap_keys ? cap_keys : 8;
            while (cap < n_keys + (size_t)count)
                cap *= 2;
            map_key_t *k = gov_realloc(keys, cap * sizeof(*keys));
            if (k == NULL) {
                err = read_nomem(r);
                goto out;
            }
            keys = k;
            cap_keys = cap;
        }
        const unsigned char *block_start = r->p;
        for (int64_t i = 0; i < count; i++) {
            json_t *item = NULL;
            gov_avro_path_push_index(&r->path, items - (size_t)count + (size_t)i);
            if (is_map)
                err = read_string(r, "map key", true, &keys[n_keys++]);
            if (err == GOV_OK)
                err = read_value(r, n->item, depth, r->build ? &item : NULL);
            gov_avro_path_pop(&r->path);
            if (err == GOV_OK && r->build) {
                int set = is_map ? json_object_setn_new_nocheck(container,
                                                                (const char *)keys[n_keys - 1].p,
                                                                keys[n_keys - 1].len, item)
                                 : json_array_append_new(container, item);
                if (set != 0)
                    err = read_nomem(r);
            }
            if (err != GOV_OK)
                goto out;
        }
        if (block_size >= 0 && (size_t)(r->p - block_start) != (size_t)block_size) {
            err = read_fail(r, GOV_ERR_PARSE,
                            "%s block byte size %" PRId64 " does not match its items (%zu bytes)",
                            gov_avro_kind_names[n->kind], block_size,
                            (size_t)(r->p - block_start));
            goto out;
        }
    }
out_blocks:
    if (err == GOV_OK && is_map && n_keys > 1) {
        qsort(keys, n_keys, sizeof(*keys), map_key_cmp);
        for (size_t i = 1; i < n_keys; i++) {
            if (map_key_cmp(&keys[i - 1], &keys[i]) == 0) {
                err = read_fail(r, GOV_ERR_PARSE, "duplicate map key");
                break;
            }
        }
    }
out:
    gov_free(keys);
    return hand_over(err, container, out);
}

static gov_err_t read_record(reader_t *r, const gov_avro_node_t *n, unsigned depth,
                             json_t **out) {
    json_t *obj = NULL;
    gov_err_t err = GOV_OK;
    if (r->build && (obj = json_object()) == NULL)
        return read_nomem(r);
    for (size_t i = 0; i < n->count && err == GOV_OK; i++) {
        json_t *field = NULL;
        gov_avro_path_push_name(&r->path, n->names[i]);
        err = read_value(r, n->child[i], depth, r->build ? &field : NULL);
        if (err == GOV_OK && r->build &&
            json_object_set_new_nocheck(obj, n->names[i], field) != 0)
            err = read_nomem(r);
        gov_avro_path_pop(&r->path);
    }
    return hand_over(err, obj, out);
}

/* Reads one value of schema n; depth counts the records, arrays and maps
 * around it.  out is NULL when only checking; otherwise *out is a new
 * reference.  Cost: linear in the bytes consumed plus the element count
 * (bounded by MAX_TOTAL_ITEMS). */
static gov_err_t read_value(reader_t *r, const gov_avro_node_t *n, unsigned depth,
                            json_t **out) {
    int64_t v;
    size_t len, idx;
    map_key_t s;
    json_t *j = NULL;
    gov_err_t err = GOV_OK;

    switch (n->kind) {
    case GOV_AVRO_NULL:
        if (out != NULL)
            j = json_null();
        break;
    case GOV_AVRO_BOOLEAN:
        if (r->p == r->end)
            return read_fail(r, GOV_ERR_PARSE, "truncated boolean");
        if (*r->p > 1)
            return read_fail(r, GOV_ERR_PARSE, "boolean byte 0x%02x is neither 0 nor 1", *r->p);
        if (out != NULL)
            j = json_boolean(*r->p);
        r->p++;
        break;
    case GOV_AVRO_INT:
    case GOV_AVRO_LONG:
        err = n->kind == GOV_AVRO_INT ? read_zigzag(r, 5, 0x0f, &v) : read_long(r, &v);
        if (err == GOV_OK && out != NULL)
            j = json_integer((json_int_t)v);
        break;
    case GOV_AVRO_FLOAT:
    case GOV_AVRO_DOUBLE:
    case GOV_AVRO_FIXED:
        len = n->kind == GOV_AVRO_FLOAT ? 4 : n->kind == GOV_AVRO_DOUBLE ? 8 : n->count;
        if (remaining(r) < len)
            return read_fail(r, GOV_ERR_PARSE, "truncated %s", gov_avro_kind_names[n->kind]);
        if (out != NULL) /* the registry admits no schema that gets here */
            return read_fail(r, GOV_ERR_UNSUPPORTED, "type %s is not supported by the codec",
                             gov_avro_kind_names[n->kind]);
        r->p += len;
        break;
    case GOV_AVRO_BYTES:
        err = read_length(r, "bytes", &len);
        if (err == GOV_OK && out != NULL)
            j = json_from_bytes(r->p, len);
        if (err == GOV_OK)
            r->p += len;
        break;
    case GOV_AVRO_STRING:
        err = read_string(r, "string", false, &s);
        /* Checked strictly above, so jansson need not check it again. */
        if (err == GOV_OK && out != NULL)
            j = json_stringn_nocheck((const char *)s.p, s.len);
        break;
    case GOV_AVRO_ENUM:
        err = read_index(r, "enum", n->count, "symbols", &idx);
        if (err == GOV_OK && out != NULL)
            j = json_string_nocheck(n->names[idx]);
        break;
    case GOV_AVRO_UNION:
        err = read_index(r, "union", n->count, "branches", &idx);
        if (err != GOV_OK)
            return err;
        return read_value(r, n->child[idx], depth, out);
    case GOV_AVRO_RECORD:
    case GOV_AVRO_ARRAY:
    case GOV_AVRO_MAP:
        if (depth + 1 > GOV_AVRO_MAX_DEPTH)
            return read_fail(r, GOV_ERR_PARSE, "nested deeper than %u", GOV_AVRO_MAX_DEPTH);
        return n->kind == GOV_AVRO_RECORD ? read_record(r, n, depth + 1, out)
                                          : read_blocks(r, n, depth + 1, out);
    }
    if (err != GOV_OK)
        return err;
    if (out != NULL) {
        if (j == NULL)
            return read_nomem(r);
        *out = j;
    }
    return GOV_OK;
}

gov_err_t gov_avro_decode_body(const gov_avro_node_t *root, const unsigned char *body,
                               size_t len, json_t **out, char *errbuf, size_t errbuf_size) {
    static const unsigned char empty[1];
    json_t *value = NULL;
    if (body == NULL)
        body = empty; /* len is 0: no arithmetic on a null pointer */
    if (len > GOV_AVRO_MAX_BODY)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_TOO_LARGE,
                             "body of %zu bytes exceeds the %u-byte limit", len,
                             GOV_AVRO_MAX_BODY);
    reader_t r = {.start = body, .p = body, .end = body + len, .build = out != NULL,
                  .errbuf = errbuf, .errbuf_size = errbuf_size};
    gov_err_t err = read_value(&r, root, 0, out != NULL ? &value : NULL);
    if (err == GOV_OK && r.p != r.end)
        err = read_fail(&r, GOV_ERR_PARSE, "%zu trailing bytes after the value", remaining(&r));
    return hand_over(err, value, out);
}
