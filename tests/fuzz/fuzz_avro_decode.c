/* fuzz_avro_decode.c - libFuzzer target for the Avro single-object decoder.
 *
 * Each input is treated as a Kafka message value: gov_avro_decode must
 * either return a JSON object or refuse the bytes with an error, never crash,
 * leak or read out of bounds (ASan/UBSan watch).  The raw input is also given
 * to gov_avro_validate_body as the body of every registered schema, so the
 * decoder is fuzzed directly, not only behind a matching fingerprint.
 *
 * A body validate_body accepts must decode (it is the same walk, building
 * nothing), and the Apache Avro C library, an independent implementation
 * that libgov's codec does not use, must read it too: a body we accept and
 * avro-c refuses means we accept something that is not Avro, which aborts.
 * A decoded event must also encode back to an event that decodes equal.
 *
 * Seeds: tests/fuzz/corpus/avro_decode/ (real messages of every schema).
 */
#include <avro.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_err.h"
#include "gov_schemas_gen.h"

static gov_avro_registry_t *registry;
/* avro-c's own parse of each embedded schema, by index. */
static avro_value_iface_t *avro_c_class[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char err[256];
    gov_alloc_install_jansson();
    if (gov_avro_registry_new(&registry, err, sizeof(err)) != GOV_OK) {
        fprintf(stderr, "fuzz_avro_decode: registry: %s\n", err);
        abort();
    }
    if (gov_embedded_schema_count > sizeof(avro_c_class) / sizeof(avro_c_class[0]))
        abort();
    for (unsigned i = 0; i < gov_embedded_schema_count; i++) {
        avro_schema_t s = NULL;
        if (avro_schema_from_json_length(gov_embedded_schemas[i].json,
                                         gov_embedded_schemas[i].len, &s) != 0)
            abort();
        avro_c_class[i] = avro_generic_class_from_schema(s);
        avro_schema_decref(s); /* the class keeps its own reference */
        if (avro_c_class[i] == NULL)
            abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    json_t *event = NULL;
    const char *name = NULL;

    gov_err_t rc = gov_avro_decode(registry, data, size, &event, &name, err, sizeof(err));
    if (rc == GOV_OK) {
        if (!json_is_object(event) || name == NULL)
            abort();
        /* Decode then encode is the identity on accepted messages, except
         * that a varint may legally be written longer than needed: compare
         * by decoding the re-encoding. */
        unsigned char *again = NULL;
        size_t again_len = 0;
        if (gov_avro_encode(registry, name, event, &again, &again_len, err, sizeof(err)) !=
            GOV_OK)
            abort();
        json_t *event2 = NULL;
        if (gov_avro_decode(registry, again, again_len, &event2, NULL, err, sizeof(err)) !=
                GOV_OK ||
            !json_equal(event, event2))
            abort();
        json_decref(event2);
        gov_free(again);
        json_decref(event);
    } else if (event != NULL || name != NULL) {
        abort();
    }

    /* The whole input as a body of each schema. */
    for (unsigned i = 0; i < gov_embedded_schema_count; i++) {
        const char *schema = gov_embedded_schemas[i].name;
        rc = gov_avro_validate_body(registry, schema, data, size, err, sizeof(err));
        if (rc != GOV_OK)
            continue;
        /* Accepted: avro-c must read it, from a copy exactly size long so
         * ASan sees any read past the end. */
        avro_value_t v;
        char *copy = malloc(size ? size : 1);
        if (copy == NULL || avro_generic_value_new(avro_c_class[i], &v) != 0)
            abort();
        if (size > 0)
            memcpy(copy, data, size);
        avro_reader_t reader = avro_reader_memory(copy, (int64_t)size);
        if (reader == NULL)
            abort();
        if (avro_value_read(reader, &v) != 0) {
            fprintf(stderr, "body of %s we accept is refused by avro-c: %s\n", schema,
                    avro_strerror());
            abort();
        }
        avro_reader_free(reader);
        avro_value_decref(&v);
        free(copy);
        /* And our decoder, behind the real framing. */
        uint64_t fp;
        if (gov_avro_registry_fingerprint(registry, schema, &fp) != GOV_OK)
            abort();
        unsigned char *msg = malloc(GOV_AVRO_HEADER_LEN + size + 1);
        if (msg == NULL)
            return 0;
        msg[0] = GOV_AVRO_MAGIC0;
        msg[1] = GOV_AVRO_MAGIC1;
        for (int k = 0; k < 8; k++)
            msg[2 + k] = (unsigned char)(fp >> (8 * k));
        if (size > 0)
            memcpy(msg + GOV_AVRO_HEADER_LEN, data, size);
        event = NULL;
        rc = gov_avro_decode(registry, msg, GOV_AVRO_HEADER_LEN + size, &event, &name, err,
                             sizeof(err));
        free(msg);
        if (rc != GOV_OK) {
            fprintf(stderr, "validated body of %s not decoded: %s (%s)\n", schema,
                    gov_err_code(rc), err);
            abort();
        }
        json_decref(event);
    }
    return 0;
}
