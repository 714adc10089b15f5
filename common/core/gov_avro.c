/* gov_avro.c - the schema registry and the single-object framing.
 *
 * What it is for: the public face of gov_avro (gov_avro.h).  It builds the
 * registry of the schemas compiled into the binary, and wraps the body codec
 * in the single-object encoding: C3 01 | CRC-64-AVRO fingerprint of the
 * schema's Parsing Canonical Form, little-endian | Avro binary body.
 *
 * How it works: each embedded schema is parsed once into the schema tree of
 * gov_avro_schema.c, checked to fit the event codec (a record at the root,
 * only the types gov_avro.h maps, defaults valid), and its canonical form and
 * fingerprint are kept.  Encoding writes the header and the body into one
 * gov_buf bounded by GOV_AVRO_MAX_BODY; decoding checks the magic, finds the
 * schema by fingerprint and hands the body to gov_avro_decode_body, which
 * checks every byte as it reads it.  Lookups are linear: there are a handful
 * of schemas.
 *
 * What it does not do: fetch schemas from a registry service, or resolve a
 * writer schema against a different reader schema.  avro-c is not used here:
 * the tests use it as an independent implementation to check our bytes.
 */
#include "gov_avro.h"

#include <inttypes.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_avro_internal.h"
#include "gov_schemas_gen.h"

typedef struct registry_entry {
    const char *name;        /* static, from gov_embedded_schemas */
    char *canonical;         /* Parsing Canonical Form */
    uint64_t fingerprint;
    gov_avro_schema_t *schema;
} registry_entry_t;

struct gov_avro_registry {
    registry_entry_t *entries;
    size_t count;
};

static void clear_err(char *errbuf, size_t errbuf_size) {
    if (errbuf != NULL && errbuf_size > 0)
        errbuf[0] = '\0';
}

static void entry_clear(registry_entry_t *e) {
    gov_avro_schema_free(e->schema);
    gov_free(e->canonical);
    memset(e, 0, sizeof(*e));
}

void gov_avro_registry_free(gov_avro_registry_t *reg) {
    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->count; i++)
        entry_clear(&reg->entries[i]);
    gov_free(reg->entries);
    gov_free(reg);
}

static const registry_entry_t *find_entry(const gov_avro_registry_t *reg, const char *name) {
    if (reg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < reg->count; i++)
        if (strcmp(reg->entries[i].name, name) == 0)
            return &reg->entries[i];
    return NULL;
}

gov_err_t gov_avro_registry_fingerprint(const gov_avro_registry_t *reg, const char *name,
                                        uint64_t *fp) {
    const registry_entry_t *e = find_entry(reg, name);
    if (e == NULL || fp == NULL)
        return GOV_ERR_NOT_FOUND;
    *fp = e->fingerprint;
    return GOV_OK;
}

const char *gov_avro_registry_canonical(const gov_avro_registry_t *reg, const char *name) {
    const registry_entry_t *e = find_entry(reg, name);
    return e ? e->canonical : NULL;
}

/* Loads one embedded schema into e.  Everything e holds is released by
 * entry_clear, also on failure. */
static gov_err_t entry_load(registry_entry_t *e, const gov_embedded_schema_t *src,
                            char *errbuf, size_t errbuf_size) {
    e->name = src->name;
    gov_err_t err = gov_avro_schema_parse(src->json, src->len, &e->schema, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    if (e->schema->root->kind != GOV_AVRO_RECORD)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_UNSUPPORTED,
                             "an event schema must be a record");
    err = gov_avro_codec_check(e->schema, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    err = gov_avro_schema_canonical(e->schema, &e->canonical, errbuf, errbuf_size);
    if (err != GOV_OK)
        return err;
    e->fingerprint = gov_avro_fingerprint64(e->canonical, strlen(e->canonical));
    return GOV_OK;
}

gov_err_t gov_avro_registry_new(gov_avro_registry_t **out, char *errbuf, size_t errbuf_size) {
    gov_avro_registry_t *reg = NULL;
    gov_err_t err = GOV_OK;
    clear_err(errbuf, errbuf_size);
    if (out == NULL)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    reg = gov_calloc(1, sizeof(*reg));
    if (reg == NULL) {
        err = gov_avro_fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
        goto out;
    }
    reg->entries = gov_calloc(gov_embedded_schema_count, sizeof(*reg->entries));
    if (reg->entries == NULL) {
        err = gov_avro_fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < gov_embedded_schema_count; i++) {
        const gov_embedded_schema_t *src = &gov_embedded_schemas[i];
        registry_entry_t *e = &reg->entries[i];
        reg->count = i + 1;
        char detail[256] = "";
        err = entry_load(e, src, detail, sizeof(detail));
        if (err != GOV_OK) {
            gov_errbuf(errbuf, errbuf_size, "schema %s: %s", src->name, detail);
            goto out;
        }
        for (unsigned k = 0; k < i; k++) {
            if (strcmp(reg->entries[k].name, e->name) == 0 ||
                reg->entries[k].fingerprint == e->fingerprint) {
                err = gov_avro_fail(errbuf, errbuf_size, GOV_ERR_EXISTS,
                                    "schemas %s and %s share a name or a fingerprint",
                                    reg->entries[k].name, e->name);
                goto out;
            }
        }
    }
    *out = reg;
    reg = NULL;
out:
    gov_avro_registry_free(reg);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Validate, encode, decode                                                  */

gov_err_t gov_avro_validate_body(const gov_avro_registry_t *reg, const char *name,
                                 const void *body, size_t len, char *errbuf,
                                 size_t errbuf_size) {
    clear_err(errbuf, errbuf_size);
    if (reg == NULL || name == NULL || (body == NULL && len > 0))
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_INVALID_ARG, "NULL argument");
    const registry_entry_t *e = find_entry(reg, name);
    if (e == NULL)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_NOT_FOUND, "unknown schema \"%s\"",
                             name);
    return gov_avro_decode_body(e->schema->root, body, len, NULL, errbuf, errbuf_size);
}

gov_err_t gov_avro_encode(const gov_avro_registry_t *reg, const char *name, json_t *event,
                          unsigned char **buf, size_t *len, char *errbuf, size_t errbuf_size) {
    gov_buf_t out;
    gov_buf_init(&out, GOV_AVRO_HEADER_LEN + GOV_AVRO_MAX_BODY);
    gov_err_t err;

    clear_err(errbuf, errbuf_size);
    if (reg == NULL || name == NULL || event == NULL || buf == NULL || len == NULL)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_INVALID_ARG, "NULL argument");
    *buf = NULL;
    *len = 0;
    const registry_entry_t *e = find_entry(reg, name);
    if (e == NULL)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_NOT_FOUND, "unknown schema \"%s\"",
                             name);

    unsigned char header[GOV_AVRO_HEADER_LEN] = {GOV_AVRO_MAGIC0, GOV_AVRO_MAGIC1};
    for (int i = 0; i < 8; i++)
        header[2 + i] = (unsigned char)(e->fingerprint >> (8 * i));
    gov_buf_put(&out, header, sizeof(header));
    err = gov_avro_encode_value(e->schema->root, event, &out, false, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto out;
    if (out.err == GOV_ERR_TOO_LARGE) {
        err = gov_avro_fail(errbuf, errbuf_size, GOV_ERR_TOO_LARGE,
                            "encoded body exceeds the %u-byte limit", GOV_AVRO_MAX_BODY);
        goto out;
    }
    char *bytes = NULL;
    if (gov_buf_finish(&out, &bytes, len) != GOV_OK) {
        err = gov_avro_fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
        goto out;
    }
    *buf = (unsigned char *)bytes;
out:
    gov_buf_free(&out);
    return err;
}

gov_err_t gov_avro_decode(const gov_avro_registry_t *reg, const void *buf, size_t len,
                          json_t **event, const char **name, char *errbuf,
                          size_t errbuf_size) {
    clear_err(errbuf, errbuf_size);
    if (reg == NULL || event == NULL || (buf == NULL && len > 0))
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_INVALID_ARG, "NULL argument");
    *event = NULL;
    if (name != NULL)
        *name = NULL;
    const unsigned char *msg = buf;
    if (len < GOV_AVRO_HEADER_LEN)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_PARSE,
                             "message of %zu bytes is shorter than the %d-byte header", len,
                             GOV_AVRO_HEADER_LEN);
    if (msg[0] != GOV_AVRO_MAGIC0 || msg[1] != GOV_AVRO_MAGIC1)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_PARSE,
                             "bad magic %02x %02x (single-object encoding starts c3 01)",
                             msg[0], msg[1]);
    uint64_t fp = 0;
    for (int i = 0; i < 8; i++)
        fp |= (uint64_t)msg[2 + i] << (8 * i);
    const registry_entry_t *e = NULL;
    for (size_t i = 0; i < reg->count && e == NULL; i++)
        if (reg->entries[i].fingerprint == fp)
            e = &reg->entries[i];
    if (e == NULL)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_UNSUPPORTED,
                             "unknown schema fingerprint %016" PRIx64, fp);
    gov_err_t err = gov_avro_decode_body(e->schema->root, msg + GOV_AVRO_HEADER_LEN,
                                         len - GOV_AVRO_HEADER_LEN, event, errbuf, errbuf_size);
    if (err == GOV_OK && name != NULL)
        *name = e->name;
    return err;
}
