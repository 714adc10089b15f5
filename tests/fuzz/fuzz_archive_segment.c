/* fuzz_archive_segment.c - libFuzzer target for the archived-segment reader.
 *
 * Each input is treated as a segment file from an archive directory
 * (outside input: govctl audit verify --archive and gov-archive's restart
 * read them): gov_archive_segment_read must walk it or refuse it with an
 * error, never crash, leak or read out of bounds (ASan/UBSan watch).  Every
 * record it hands out has a positive seq and NUL-free strings but payload,
 * and the walk is deterministic (a second pass sees the same records).
 *
 * Seeds: tests/fuzz/corpus/archive_segment/ (segments gov-archive wrote with
 * avro-c in test_archive).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "gov_alloc.h"
#include "gov_archive_segment.h"
#include "gov_avro.h"
#include "gov_err.h"
#include "gov_schemas_gen.h"

static char *pcf;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char err[256];
    for (unsigned i = 0; i < gov_embedded_schema_count; i++)
        if (strcmp(gov_embedded_schemas[i].name, "AuditChainEntry") == 0)
            CHECK(gov_avro_canonical_form(gov_embedded_schemas[i].json, &pcf, err, sizeof err) ==
                  GOV_OK);
    CHECK(pcf != NULL);
    return 0;
}

typedef struct tally {
    uint64_t count, seq_sum;
} tally_t;

static gov_err_t on_record(void *ctx, const gov_archive_record_t *rec, char *eb, size_t n) {
    tally_t *t = ctx;
    (void)eb;
    (void)n;
    CHECK(rec->entry.seq > 0);
    CHECK(rec->tenant && rec->hash && rec->entry.prev_hash && rec->entry.event_id &&
          rec->entry.type && rec->entry.source && rec->entry.payload);
    CHECK(rec->entry.payload[rec->entry.payload_len] == '\0');
    t->count++;
    t->seq_sum += rec->entry.seq;
    return GOV_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    tally_t a = {0}, b = {0};
    gov_err_t e1 = gov_archive_segment_read(data, size, pcf, on_record, &a, err, sizeof err);
    gov_err_t e2 = gov_archive_segment_read(data, size, pcf, on_record, &b, err, sizeof err);
    CHECK(e1 == e2);
    CHECK(e1 == GOV_OK || e1 == GOV_ERR_PARSE || e1 == GOV_ERR_NOMEM);
    CHECK(a.count == b.count && a.seq_sum == b.seq_sum);
    return 0;
}
