/* gov_archive_segment.c - the bounded reader of archived audit segments.
 *
 * An Avro Object Container File (Avro specification, "Object Container
 * Files") is: "Obj" 0x01, a map<bytes> of metadata, a 16-byte sync marker,
 * then blocks of (long count, long size, size bytes of records, the sync
 * marker).  Longs are zig-zag varints.  Every count and length is checked
 * against the bytes that remain before it is used, so a damaged or hostile
 * file ends in GOV_ERR_PARSE, never in a read past the buffer or a large
 * allocation.  Records are AuditChainEntry (schemas/), nine fields in
 * order: tenant, seq, event_id, type, occurred_at, source, payload,
 * prev_hash, hash.
 *
 * What it does not do: check the chain (the caller does, with
 * gov_audit_chain_check), decompress (gov-archive writes codec null only),
 * or read any other schema.
 */
#include "gov_archive_segment.h"

#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_avro.h"

typedef struct reader {
    const unsigned char *base, *p, *end;
    char *eb;
    size_t ebsize;
} reader_t;

static gov_err_t fail(reader_t *r, const char *why) {
    snprintf(r->eb, r->ebsize, "%s at byte %zu", why, (size_t)(r->p - r->base));
    return GOV_ERR_PARSE;
}

/* A zig-zag varint of at most 10 bytes. */
static gov_err_t read_long(reader_t *r, int64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return fail(r, "truncated long");
        unsigned char b = *r->p++;
        if (shift == 63 && (b & 0x7e) != 0)
            return fail(r, "long overflows 64 bits");
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return GOV_OK;
        }
    }
    return fail(r, "long longer than 10 bytes");
}

/* A string or bytes value: its bytes stay in the buffer (*s, *n). */
static gov_err_t read_bytes(reader_t *r, const unsigned char **s, size_t *n) {
    int64_t len;
    gov_err_t e = read_long(r, &len);
    if (e != GOV_OK)
        return e;
    if (len < 0 || (uint64_t)len > (uint64_t)(r->end - r->p))
        return fail(r, "length beyond the remaining bytes");
    *s = r->p;
    *n = (size_t)len;
    r->p += len;
    return GOV_OK;
}

/* A NUL-terminated copy of a string field; NUL inside refused unless
 * allow_nul. */
static gov_err_t read_string(reader_t *r, char **out, size_t *out_len, int allow_nul) {
    const unsigned char *s;
    size_t n;
    gov_err_t e = read_bytes(r, &s, &n);
    if (e != GOV_OK)
        return e;
    if (!allow_nul && memchr(s, '\0', n) != NULL)
        return fail(r, "NUL byte in a string field");
    *out = gov_malloc(n + 1);   /* every byte, a NUL in payload included */
    if (*out == NULL)
        return GOV_ERR_NOMEM;
    memcpy(*out, s, n);
    (*out)[n] = '\0';
    if (out_len)
        *out_len = n;
    return GOV_OK;
}

static int bytes_are(const unsigned char *s, size_t n, const char *want) {
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* The metadata map: checks avro.schema's canonical form and avro.codec. */
static gov_err_t read_meta(reader_t *r, const char *expected_pcf) {
    int have_schema = 0, entries = 0;
    for (;;) {
        int64_t count;
        gov_err_t e = read_long(r, &count);
        if (e != GOV_OK)
            return e;
        if (count == 0)
            break;
        if (count < 0) {   /* a block with its byte size: skip the size */
            int64_t size;
            if ((e = read_long(r, &size)) != GOV_OK)
                return e;
            if (count == INT64_MIN)
                return fail(r, "metadata count out of range");
            count = -count;
        }
        if (count > GOV_ARCHIVE_META_MAX_ENTRIES - entries)
            return fail(r, "too many metadata entries");
        entries += (int)count;
        for (int64_t i = 0; i < count; i++) {
            const unsigned char *k, *v;
            size_t kn, vn;
            if ((e = read_bytes(r, &k, &kn)) != GOV_OK || (e = read_bytes(r, &v, &vn)) != GOV_OK)
                return e;
            if (bytes_are(k, kn, "avro.codec")) {
                if (!bytes_are(v, vn, "null"))
                    return fail(r, "codec is not null");
            } else if (bytes_are(k, kn, "avro.schema")) {
                char *text = gov_strndup((const char *)v, vn), *pcf = NULL;
                char eb[128];
                if (text == NULL)
                    return GOV_ERR_NOMEM;
                gov_err_t ce = strlen(text) == vn ? gov_avro_canonical_form(text, &pcf, eb, sizeof eb)
                                                  : GOV_ERR_PARSE;
                int same = ce == GOV_OK && strcmp(pcf, expected_pcf) == 0;
                gov_free(text);
                gov_free(pcf);
                if (ce == GOV_ERR_NOMEM)
                    return ce;
                if (!same)
                    return fail(r, "schema is not AuditChainEntry");
                have_schema = 1;
            }
        }
    }
    return have_schema ? GOV_OK : fail(r, "no avro.schema");
}

/* One record; the callback sees it, then the copies are freed. */
static gov_err_t read_record(reader_t *r, gov_archive_record_fn fn, void *ctx) {
    char *tenant = NULL, *event_id = NULL, *type = NULL, *source = NULL, *payload = NULL,
         *prev_hash = NULL, *hash = NULL;
    size_t payload_len = 0;
    int64_t seq = 0, at = 0;
    gov_err_t e;
    if ((e = read_string(r, &tenant, NULL, 0)) != GOV_OK || (e = read_long(r, &seq)) != GOV_OK ||
        (e = read_string(r, &event_id, NULL, 0)) != GOV_OK ||
        (e = read_string(r, &type, NULL, 0)) != GOV_OK || (e = read_long(r, &at)) != GOV_OK ||
        (e = read_string(r, &source, NULL, 0)) != GOV_OK ||
        (e = read_string(r, &payload, &payload_len, 1)) != GOV_OK ||
        (e = read_string(r, &prev_hash, NULL, 0)) != GOV_OK ||
        (e = read_string(r, &hash, NULL, 0)) != GOV_OK)
        goto out;
    if (seq <= 0) {
        e = fail(r, "seq is not positive");
        goto out;
    }
    gov_archive_record_t rec = {
        .tenant = tenant,
        .entry = {.prev_hash = prev_hash, .seq = (uint64_t)seq, .event_id = event_id,
                  .type = type, .occurred_at = at, .source = source, .payload = payload,
                  .payload_len = payload_len},
        .hash = hash,
    };
    e = fn(ctx, &rec, r->eb, r->ebsize);
out:
    gov_free(tenant);
    gov_free(event_id);
    gov_free(type);
    gov_free(source);
    gov_free(payload);
    gov_free(prev_hash);
    gov_free(hash);
    return e;
}

gov_err_t gov_archive_segment_read(const void *buf, size_t len, const char *expected_pcf,
                                   gov_archive_record_fn fn, void *ctx, char *errbuf,
                                   size_t errbuf_size) {
    reader_t r = {.base = buf, .p = buf, .end = (const unsigned char *)buf + len, .eb = errbuf,
                  .ebsize = errbuf_size};
    const unsigned char *sync;
    gov_err_t e;
    if (len > GOV_ARCHIVE_SEGMENT_MAX_BYTES)
        return fail(&r, "segment larger than its bound");
    if (len < 4 || memcmp(buf, "Obj\x01", 4) != 0)
        return fail(&r, "not an Avro object container file");
    r.p += 4;
    if ((e = read_meta(&r, expected_pcf)) != GOV_OK)
        return e;
    if (r.end - r.p < 16)
        return fail(&r, "truncated sync marker");
    sync = r.p;
    r.p += 16;
    while (r.p < r.end) {
        int64_t count, size;
        if ((e = read_long(&r, &count)) != GOV_OK || (e = read_long(&r, &size)) != GOV_OK)
            return e;
        if (count < 0 || size < 0 || (uint64_t)size > (uint64_t)(r.end - r.p) ||
            (uint64_t)(r.end - r.p) - (uint64_t)size < 16)
            return fail(&r, "block count or size beyond the remaining bytes");
        if ((uint64_t)count > (uint64_t)size)
            return fail(&r, "block holds more records than bytes");
        const unsigned char *block_end = r.p + size;
        reader_t br = {.base = r.base, .p = r.p, .end = block_end, .eb = errbuf, .ebsize = errbuf_size};
        for (int64_t i = 0; i < count; i++)
            if ((e = read_record(&br, fn, ctx)) != GOV_OK)
                return e;
        if (br.p != block_end)
            return fail(&r, "block has bytes after its last record");
        r.p = block_end;
        if (memcmp(r.p, sync, 16) != 0)
            return fail(&r, "sync marker differs from the header's");
        r.p += 16;
    }
    return GOV_OK;
}
