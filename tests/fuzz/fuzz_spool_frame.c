/* fuzz_spool_frame.c - libFuzzer target for the decision spool's frame
 * reader (common/core/gov_spool_frame.c).
 *
 * Each input stands for the ring of a spool file after a crash or a
 * tamper (outside input: the file is on disk): the walk gov_spool.c does at
 * start - frames from offset 0 with consecutive seqs, wrap markers jumping
 * to the start, ending at the first END or TORN - must never read out of
 * bounds, never hand out a record whose CRC does not match, never loop
 * (at most one lap), and a record it hands out must read back identically
 * when written again.  The cursor slot decoder gets the input's first 32
 * bytes, the file header decoder its first 40; the search for an intact
 * frame behind damage runs over the whole input and must name a frame
 * that reads back whole.
 *
 * Seeds: tests/fuzz/corpus/spool_frame/ (frames this codec wrote).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "gov_spool_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size >= GOV_SPOOL_CURSOR_SLOT) {
        gov_spool_cursor_t c;
        if (gov_spool_cursor_read(data, &c) == GOV_OK)
            CHECK(c.gen != 0);
    }
    if (size >= GOV_SPOOL_HEADER_BYTES) {
        uint64_t cap;
        unsigned version;
        char eb[128];
        if (gov_spool_header_read(data, &cap, &version, eb, sizeof eb) == GOV_OK)
            CHECK(version == 1 || version == GOV_SPOOL_HEADER_VERSION);
        else
            CHECK(cap == 0 && eb[0] != 0);
    }
    if (size >= 16) {
        uint64_t want = 0, peeked;
        size_t off;
        for (int i = 7; i >= 0; i--)
            want = want << 8 | data[8 + i];
        if (gov_spool_frame_find(data, size, size, want, &off) == GOV_OK) {
            gov_spool_frame_t g;
            CHECK(off % 8 == 0 && off + GOV_SPOOL_FRAME_HEADER <= size);
            gov_spool_frame_kind_t k = gov_spool_frame_read(data + off, size - off, want, 1, &g);
            CHECK(k == GOV_SPOOL_FRAME_RECORD || k == GOV_SPOOL_FRAME_WRAP);
            CHECK(gov_spool_frame_peek(data + off, size - off, &peeked) && peeked == want);
        }
    }
    uint64_t pos = 0, seq = size ? data[0] : 0, lap = 0;
    /* the ring's walk: seq starts where the first frame says it does */
    if (size >= 16) {
        seq = 0;
        for (int i = 7; i >= 0; i--)
            seq = seq << 8 | data[8 + i];
    }
    while (lap < size + 1) {
        size_t phys = size ? (size_t)(pos % size) : 0;
        if (size - phys < GOV_SPOOL_FRAME_HEADER) {
            if (size < GOV_SPOOL_FRAME_HEADER)
                break;
            pos += size - phys;
            lap += size - phys;
            continue;
        }
        gov_spool_frame_t f;
        gov_spool_frame_kind_t k = gov_spool_frame_read(data + phys, size - phys, seq, 1, &f);
        CHECK(f.size <= size - phys);
        if (k == GOV_SPOOL_FRAME_RECORD) {
            CHECK(f.size >= GOV_SPOOL_FRAME_HEADER && f.size % 8 == 0);
            CHECK(f.key + f.key_len <= data + size && f.value + f.value_len <= data + size);
            uint8_t *copy = malloc(f.size);
            CHECK(copy != NULL);
            CHECK(gov_spool_frame_write(copy, f.size, f.seq, f.at_us, f.key, f.key_len, f.value,
                                        f.value_len) == GOV_OK);
            gov_spool_frame_t g;
            CHECK(gov_spool_frame_read(copy, f.size, seq, 1, &g) == GOV_SPOOL_FRAME_RECORD);
            CHECK(g.value_len == f.value_len && memcmp(g.value, f.value, f.value_len) == 0);
            free(copy);
            pos += f.size;
            lap += f.size;
            seq++;
        } else if (k == GOV_SPOOL_FRAME_WRAP) {
            pos += size - phys;
            lap += size - phys;
        } else {
            break;
        }
    }
    return 0;
}
