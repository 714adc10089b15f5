/* fuzz_avro_decode.c - libFuzzer target for the Avro single-object decoder.
 *
 * Each input is treated as a Kafka message value: gov_avro_decode must
 * either return a JSON object or refuse the bytes with an error, never crash,
 * leak or read out of bounds (ASan/UBSan watch).  The raw input is also given
 * to gov_avro_validate_body as the body of every registered schema, so the
 * walker is fuzzed directly, not only behind a matching fingerprint.
 *
 * When the walker accepts a body, avro-c must decode it: a validated body that
 * avro-c then refuses means the walker and avro-c disagree, which is a bug and
 * aborts.  A decoded event must also encode back to the very same bytes.
 *
 * Seeds: tests/fuzz/corpus/avro_decode/ (real messages of every schema).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_err.h"
#include "gov_schemas_gen.h"

static gov_avro_registry_t *registry;

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
        /* Accepted by the walker: avro-c must read it. */
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
