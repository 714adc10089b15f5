/* gov_avro.c - Avro single-object codec for the governance events.
 *
 * What it is for: turning the JSON events libgov works with into Avro
 * single-object messages (C3 01 | CRC-64-AVRO fingerprint | binary body) and
 * back, without ever letting an untrusted body reach avro-c unchecked.
 *
 * How it works:
 *  - A schema text is parsed once with jansson into a compact tree of
 *    schema_node_t: kind, fullname, field names, enum symbols, union
 *    branches, field defaults.  A named type is one shared node, so a
 *    recursive schema is a cyclic graph; every node lives in the tree's arena
 *    and is freed with it.
 *  - The Parsing Canonical Form is printed from that tree, so the form and
 *    the walker cannot disagree about the schema.  CRC-64-AVRO is the
 *    table-driven Rabin fingerprint of the spec over the form's bytes.
 *  - gov_avro_validate_body walks a binary body with the tree alone: every
 *    varint, length, block count, union and enum index and UTF-8 sequence is
 *    checked against the bytes that remain and the bounds of gov_avro.h.
 *    Only a body that passes is given to avro-c (avro_value_read into a
 *    generic value), because avro-c 1.11 trusts lengths and counts.
 *  - Encoding fills an avro-c generic value from JSON and lets avro-c write
 *    it; the body is then run through the walker too, so encode never emits
 *    what decode would refuse.
 *  - When the registry is built, each tree is compared with avro-c's own parse
 *    of the same text, so the walker vouches for exactly what avro-c reads.
 *
 * What it does not do: schema resolution (a reader schema different from the
 * writer's), the Avro JSON encoding, or float/double/fixed and general unions
 * in events (the canonical form handles every Avro type; the codec handles
 * what gov_avro.h promises).  It never calls avro_strerror(), a process-wide
 * string: every message in errbuf is written here.
 *
 * Allocation: our memory comes from gov_malloc and friends, JSON values from
 * jansson (which libgov points at gov_malloc), and avro-c allocates its own
 * values with its allocator.
 */
#include "gov_avro.h"

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_schemas_gen.h"

/* Nesting of schema definitions (not data): far beyond any real schema, and
 * it bounds the recursion of the schema parser on hostile text. */
#define SCHEMA_MAX_DEPTH 128u

/* Elements over all arrays and maps of one message.  One element costs at
 * least one byte unless its type encodes to nothing (null, an empty record),
 * so this bound only ever bites on such types, where it keeps the work of the
 * walker and of avro-c proportional to the input. */
#define MAX_TOTAL_ITEMS ((size_t)GOV_AVRO_MAX_BODY)

/* Path frames: one per record field, array element or map value. */
#define PATH_MAX_FRAMES (GOV_AVRO_MAX_DEPTH + 2u)

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

static gov_err_t fail(char *errbuf, size_t errbuf_size, gov_err_t err,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static gov_err_t fail(char *errbuf, size_t errbuf_size, gov_err_t err,
                      const char *fmt, ...) {
    if (errbuf != NULL && errbuf_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errbuf_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

static void clear_err(char *errbuf, size_t errbuf_size) {
    if (errbuf != NULL && errbuf_size > 0)
        errbuf[0] = '\0';
}

/* ------------------------------------------------------------------------ */
/* CRC-64-AVRO                                                               */

/* FP_TABLE of the Avro specification ("Schema Fingerprints"): entry i is i
 * run eight times through fp = (fp >> 1) ^ (EMPTY & -(fp & 1)).  Generated
 * from that recurrence; tests/unit/test_avro.c recomputes it bit by bit. */
static const uint64_t crc64_avro_table[256] = {
    0x0000000000000000ULL, 0x2cf1cba6b75351faULL, 0x59e3974d6ea6a3f4ULL,
    0x75125cebd9f5f20eULL, 0xb3c72e9add4d47e8ULL, 0x9f36e53c6a1e1612ULL,
    0xea24b9d7b3ebe41cULL, 0xc6d5727104b8b5e6ULL, 0xe5341f40f335c0fbULL,
    0xc9c5d4e644669101ULL, 0xbcd7880d9d93630fULL, 0x902643ab2ac032f5ULL,
    0x56f331da2e788713ULL, 0x7a02fa7c992bd6e9ULL, 0x0f10a69740de24e7ULL,
    0x23e16d31f78d751dULL, 0x48d27cf4afc4ceddULL, 0x6423b75218979f27ULL,
    0x1131ebb9c1626d29ULL, 0x3dc0201f76313cd3ULL, 0xfb15526e72898935ULL,
    0xd7e499c8c5dad8cfULL, 0xa2f6c5231c2f2ac1ULL, 0x8e070e85ab7c7b3bULL,
    0xade663b45cf10e26ULL, 0x8117a812eba25fdcULL, 0xf405f4f93257add2ULL,
    0xd8f43f5f8504fc28ULL, 0x1e214d2e81bc49ceULL, 0x32d0868836ef1834ULL,
    0x47c2da63ef1aea3aULL, 0x6b3311c55849bbc0ULL, 0x91a4f9e95f899dbaULL,
    0xbd55324fe8dacc40ULL, 0xc8476ea4312f3e4eULL, 0xe4b6a502867c6fb4ULL,
    0x2263d77382c4da52ULL, 0x0e921cd535978ba8ULL, 0x7b80403eec6279a6ULL,
    0x57718b985b31285cULL, 0x7490e6a9acbc5d41ULL, 0x58612d0f1bef0cbbULL,
    0x2d7371e4c21afeb5ULL, 0x0182ba427549af4fULL, 0xc757c83371f11aa9ULL,
    0xeba60395c6a24b53ULL, 0x9eb45f7e1f57b95dULL, 0xb24594d8a804e8a7ULL,
    0xd976851df04d5367ULL, 0xf5874ebb471e029dULL, 0x809512509eebf093ULL,
    0xac64d9f629b8a169ULL, 0x6ab1ab872d00148fULL, 0x464060219a534575ULL,
    0x33523cca43a6b77bULL, 0x1fa3f76cf4f5e681ULL, 0x3c429a5d0378939cULL,
    0x10b351fbb42bc266ULL, 0x65a10d106dde3068ULL, 0x4950c6b6da8d6192ULL,
    0x8f85b4c7de35d474ULL, 0xa3747f616966858eULL, 0xd666238ab0937780ULL,
    0xfa97e82c07c0267aULL, 0xa1f3b1a7f6bc745fULL, 0x8d027a0141ef25a5ULL,
    0xf81026ea981ad7abULL, 0xd4e1ed4c2f498651ULL, 0x12349f3d2bf133b7ULL,
    0x3ec5549b9ca2624dULL, 0x4bd7087045579043ULL, 0x6726c3d6f204c1b9ULL,
    0x44c7aee70589b4a4ULL, 0x68366541b2dae55eULL, 0x1d2439aa6b2f1750ULL,
    0x31d5f20cdc7c46aaULL, 0xf700807dd8c4f34cULL, 0xdbf14bdb6f97a2b6ULL,
    0xaee31730b66250b8ULL, 0x8212dc9601310142ULL, 0xe921cd535978ba82ULL,
    0xc5d006f5ee2beb78ULL, 0xb0c25a1e37de1976ULL, 0x9c3391b8808d488cULL,
    0x5ae6e3c98435fd6aULL, 0x7617286f3366ac90ULL, 0x03057484ea935e9eULL,
    0x2ff4bf225dc00f64ULL, 0x0c15d213aa4d7a79ULL, 0x20e419b51d1e2b83ULL,
    0x55f6455ec4ebd98dULL, 0x79078ef873b88877ULL, 0xbfd2fc8977003d91ULL,
    0x9323372fc0536c6bULL, 0xe6316bc419a69e65ULL, 0xcac0a062aef5cf9fULL,
    0x3057484ea935e9e5ULL, 0x1ca683e81e66b81fULL, 0x69b4df03c7934a11ULL,
    0x454514a570c01bebULL, 0x839066d47478ae0dULL, 0xaf61ad72c32bfff7ULL,
    0xda73f1991ade0df9ULL, 0xf6823a3fad8d5c03ULL, 0xd563570e5a00291eULL,
    0xf9929ca8ed5378e4ULL, 0x8c80c04334a68aeaULL, 0xa0710be583f5db10ULL,
    0x66a47994874d6ef6ULL, 0x4a55b232301e3f0cULL, 0x3f47eed9e9ebcd02ULL,
    0x13b6257f5eb89cf8ULL, 0x788534ba06f12738ULL, 0x5474ff1cb1a276c2ULL,
    0x2166a3f7685784ccULL, 0x0d976851df04d536ULL, 0xcb421a20dbbc60d0ULL,
    0xe7b3d1866cef312aULL, 0x92a18d6db51ac324ULL, 0xbe5046cb024992deULL,
    0x9db12bfaf5c4e7c3ULL, 0xb140e05c4297b639ULL, 0xc452bcb79b624437ULL,
    0xe8a377112c3115cdULL, 0x2e7605602889a02bULL, 0x0287cec69fdaf1d1ULL,
    0x7795922d462f03dfULL, 0x5b64598bf17c5225ULL, 0xc15d213aa4d7a795ULL,
    0xedacea9c1384f66fULL, 0x98beb677ca710461ULL, 0xb44f7dd17d22559bULL,
    0x729a0fa0799ae07dULL, 0x5e6bc406cec9b187ULL, 0x2b7998ed173c4389ULL,
    0x0788534ba06f1273ULL, 0x24693e7a57e2676eULL, 0x0898f5dce0b13694ULL,
    0x7d8aa9373944c49aULL, 0x517b62918e179560ULL, 0x97ae10e08aaf2086ULL,
    0xbb5fdb463dfc717cULL, 0xce4d87ade4098372ULL, 0xe2bc4c0b535ad288ULL,
    0x898f5dce0b136948ULL, 0xa57e9668bc4038b2ULL, 0xd06cca8365b5cabcULL,
    0xfc9d0125d2e69b46ULL, 0x3a487354d65e2ea0ULL, 0x16b9b8f2610d7f5aULL,
    0x63abe419b8f88d54ULL, 0x4f5a2fbf0fabdcaeULL, 0x6cbb428ef826a9b3ULL,
    0x404a89284f75f849ULL, 0x3558d5c396800a47ULL, 0x19a91e6521d35bbdULL,
    0xdf7c6c14256bee5bULL, 0xf38da7b29238bfa1ULL, 0x869ffb594bcd4dafULL,
    0xaa6e30fffc9e1c55ULL, 0x50f9d8d3fb5e3a2fULL, 0x7c0813754c0d6bd5ULL,
    0x091a4f9e95f899dbULL, 0x25eb843822abc821ULL, 0xe33ef64926137dc7ULL,
    0xcfcf3def91402c3dULL, 0xbadd610448b5de33ULL, 0x962caaa2ffe68fc9ULL,
    0xb5cdc793086bfad4ULL, 0x993c0c35bf38ab2eULL, 0xec2e50de66cd5920ULL,
    0xc0df9b78d19e08daULL, 0x060ae909d526bd3cULL, 0x2afb22af6275ecc6ULL,
    0x5fe97e44bb801ec8ULL, 0x7318b5e20cd34f32ULL, 0x182ba427549af4f2ULL,
    0x34da6f81e3c9a508ULL, 0x41c8336a3a3c5706ULL, 0x6d39f8cc8d6f06fcULL,
    0xabec8abd89d7b31aULL, 0x871d411b3e84e2e0ULL, 0xf20f1df0e77110eeULL,
    0xdefed65650224114ULL, 0xfd1fbb67a7af3409ULL, 0xd1ee70c110fc65f3ULL,
    0xa4fc2c2ac90997fdULL, 0x880de78c7e5ac607ULL, 0x4ed895fd7ae273e1ULL,
    0x62295e5bcdb1221bULL, 0x173b02b01444d015ULL, 0x3bcac916a31781efULL,
    0x60ae909d526bd3caULL, 0x4c5f5b3be5388230ULL, 0x394d07d03ccd703eULL,
    0x15bccc768b9e21c4ULL, 0xd369be078f269422ULL, 0xff9875a13875c5d8ULL,
    0x8a8a294ae18037d6ULL, 0xa67be2ec56d3662cULL, 0x859a8fdda15e1331ULL,
    0xa96b447b160d42cbULL, 0xdc791890cff8b0c5ULL, 0xf088d33678abe13fULL,
    0x365da1477c1354d9ULL, 0x1aac6ae1cb400523ULL, 0x6fbe360a12b5f72dULL,
    0x434ffdaca5e6a6d7ULL, 0x287cec69fdaf1d17ULL, 0x048d27cf4afc4cedULL,
    0x719f7b249309bee3ULL, 0x5d6eb082245aef19ULL, 0x9bbbc2f320e25affULL,
    0xb74a095597b10b05ULL, 0xc25855be4e44f90bULL, 0xeea99e18f917a8f1ULL,
    0xcd48f3290e9addecULL, 0xe1b9388fb9c98c16ULL, 0x94ab6464603c7e18ULL,
    0xb85aafc2d76f2fe2ULL, 0x7e8fddb3d3d79a04ULL, 0x527e16156484cbfeULL,
    0x276c4afebd7139f0ULL, 0x0b9d81580a22680aULL, 0xf10a69740de24e70ULL,
    0xddfba2d2bab11f8aULL, 0xa8e9fe396344ed84ULL, 0x8418359fd417bc7eULL,
    0x42cd47eed0af0998ULL, 0x6e3c8c4867fc5862ULL, 0x1b2ed0a3be09aa6cULL,
    0x37df1b05095afb96ULL, 0x143e7634fed78e8bULL, 0x38cfbd924984df71ULL,
    0x4ddde17990712d7fULL, 0x612c2adf27227c85ULL, 0xa7f958ae239ac963ULL,
    0x8b08930894c99899ULL, 0xfe1acfe34d3c6a97ULL, 0xd2eb0445fa6f3b6dULL,
    0xb9d81580a22680adULL, 0x9529de261575d157ULL, 0xe03b82cdcc802359ULL,
    0xccca496b7bd372a3ULL, 0x0a1f3b1a7f6bc745ULL, 0x26eef0bcc83896bfULL,
    0x53fcac5711cd64b1ULL, 0x7f0d67f1a69e354bULL, 0x5cec0ac051134056ULL,
    0x701dc166e64011acULL, 0x050f9d8d3fb5e3a2ULL, 0x29fe562b88e6b258ULL,
    0xef2b245a8c5e07beULL, 0xc3daeffc3b0d5644ULL, 0xb6c8b317e2f8a44aULL,
    0x9a3978b155abf5b0ULL,
};

#define CRC64_AVRO_EMPTY 0xc15d213aa4d7a795ULL

uint64_t gov_avro_fingerprint64(const void *buf, size_t len) {
    const unsigned char *p = buf;
    uint64_t fp = CRC64_AVRO_EMPTY;
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ crc64_avro_table[(fp ^ p[i]) & 0xff];
    return fp;
}

/* ------------------------------------------------------------------------ */
/* Schema tree                                                               */

typedef enum node_kind {
    /* The primitives first: their values index kind_names[]. */
    NK_NULL = 0,
    NK_BOOLEAN,
    NK_INT,
    NK_LONG,
    NK_FLOAT,
    NK_DOUBLE,
    NK_BYTES,
    NK_STRING,
    NK_RECORD,
    NK_ENUM,
    NK_ARRAY,
    NK_MAP,
    NK_UNION,
    NK_FIXED,
} node_kind_t;

#define NK_PRIMITIVE_COUNT 8

static const char *const kind_names[] = {
    "null",   "boolean", "int",   "long", "float", "double", "bytes",
    "string", "record",  "enum",  "array", "map",  "union",  "fixed",
};

typedef struct schema_node schema_node_t;
struct schema_node {
    node_kind_t kind;
    size_t id;              /* index in the arena: the canonical printer's seen-set */
    char *fullname;         /* record, enum, fixed */
    size_t count;           /* fields, symbols, branches; fixed: the size */
    char **names;           /* record: field names; enum: symbols */
    schema_node_t **child;  /* record: field types; union: branches */
    json_t **defaults;      /* record: each field's default (new reference) or NULL */
    schema_node_t *item;    /* array items, map values */
    /* A union of null and exactly one other type: its two branch indexes.
     * union_value is SIZE_MAX for any other union. */
    size_t union_null;
    size_t union_value;
};

typedef struct schema_tree {
    schema_node_t **nodes;  /* the arena: owns every node */
    size_t n_nodes;
    size_t cap_nodes;
    schema_node_t *root;
} schema_tree_t;

static void node_free(schema_node_t *n) {
    if (n == NULL)
        return;
    if (n->names != NULL) {
        for (size_t i = 0; i < n->count; i++)
            gov_free(n->names[i]);
    }
    if (n->defaults != NULL) {
        for (size_t i = 0; i < n->count; i++)
            json_decref(n->defaults[i]);
    }
    gov_free(n->names);
    gov_free(n->defaults);
    gov_free(n->child);
    gov_free(n->fullname);
    gov_free(n);
}

static void tree_free(schema_tree_t *t) {
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_nodes; i++)
        node_free(t->nodes[i]);
    gov_free(t->nodes);
    gov_free(t);
}

typedef struct parse_ctx {
    schema_tree_t *tree;
    schema_node_t **named;  /* named types defined so far (borrowed from the arena) */
    size_t n_named;
    size_t cap_named;
    char *errbuf;
    size_t errbuf_size;
} parse_ctx_t;

static schema_node_t *node_new(parse_ctx_t *ctx, node_kind_t kind) {
    schema_tree_t *t = ctx->tree;
    if (t->n_nodes == t->cap_nodes) {
        size_t cap = t->cap_nodes ? t->cap_nodes * 2 : 16;
        schema_node_t **nodes = gov_realloc(t->nodes, cap * sizeof(*nodes));
        if (nodes == NULL)
            return NULL;
        t->nodes = nodes;
        t->cap_nodes = cap;
    }
    schema_node_t *n = gov_calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->id = t->n_nodes;
    n->union_value = SIZE_MAX;
    n->union_null = SIZE_MAX;
    t->nodes[t->n_nodes++] = n;
    return n;
}

static gov_err_t nomem(parse_ctx_t *ctx) {
    return fail(ctx->errbuf, ctx->errbuf_size, GOV_ERR_NOMEM, "out of memory");
}

static gov_err_t bad_schema(parse_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static gov_err_t bad_schema(parse_ctx_t *ctx, const char *fmt, ...) {
    if (ctx->errbuf != NULL && ctx->errbuf_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->errbuf, ctx->errbuf_size, fmt, ap);
        va_end(ap);
    }
    return GOV_ERR_AVRO;
}

/* Avro names: [A-Za-z_][A-Za-z0-9_]* */
static bool is_simple_name(const char *s, size_t len) {
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        bool digit = c >= '0' && c <= '9';
        if (!(alpha || (digit && i > 0)))
            return false;
    }
    return true;
}

/* Dot-separated simple names (a namespace or a fullname).  Empty is allowed
 * only when allow_empty (the null namespace). */
static bool is_dotted_name(const char *s, bool allow_empty) {
    size_t len = strlen(s);
    if (len == 0)
        return allow_empty;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (!is_simple_name(s + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

static int primitive_kind(const char *s) {
    for (int k = 0; k < NK_PRIMITIVE_COUNT; k++)
        if (strcmp(s, kind_names[k]) == 0)
            return k;
    return -1;
}

static schema_node_t *find_named(const parse_ctx_t *ctx, const char *fullname) {
    for (size_t i = 0; i < ctx->n_named; i++)
        if (strcmp(ctx->named[i]->fullname, fullname) == 0)
            return ctx->named[i];
    return NULL;
}

/* Joins namespace and name ("" namespace: the name alone).  New string. */
static char *join_name(const char *ns, const char *name) {
    size_t nl = strlen(ns), ml = strlen(name);
    if (nl == 0)
        return gov_strdup(name);
    char *s = gov_malloc(nl + 1 + ml + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, ns, nl);
    s[nl] = '.';
    memcpy(s + nl + 1, name, ml + 1);
    return s;
}

/* Resolves a type name used as a reference: a dotted name is already full;
 * otherwise the enclosing namespace is tried first, then the null namespace
 * (as the Java reference implementation does). */
static gov_err_t resolve_reference(parse_ctx_t *ctx, const char *name,
                                   const char *ns, schema_node_t **out) {
    schema_node_t *n = NULL;
    if (strchr(name, '.') == NULL && ns[0] != '\0') {
        char *full = join_name(ns, name);
        if (full == NULL)
            return nomem(ctx);
        n = find_named(ctx, full);
        gov_free(full);
    }
    if (n == NULL)
        n = find_named(ctx, name);
    if (n == NULL)
        return bad_schema(ctx, "unknown type \"%s\"", name);
    *out = n;
    return GOV_OK;
}

static gov_err_t parse_schema(parse_ctx_t *ctx, json_t *j, const char *ns,
                              unsigned depth, schema_node_t **out);

/* FULLNAMES: a name with a dot is full and its namespace is what precedes the
 * last dot; otherwise an explicit "namespace" (null or "" = the null
 * namespace) applies; otherwise the enclosing one is inherited.  The node is
 * registered before its children are parsed, so they may refer to it. */
static gov_err_t define_named(parse_ctx_t *ctx, json_t *obj, const char *ns,
                              schema_node_t *n, char **own_ns) {
    json_t *jname = json_object_get(obj, "name");
    json_t *jns = json_object_get(obj, "namespace");
    *own_ns = NULL;
    if (!json_is_string(jname))
        return bad_schema(ctx, "a %s needs a string \"name\"", kind_names[n->kind]);
    const char *name = json_string_value(jname);
    if (jns != NULL && !json_is_string(jns) && !json_is_null(jns))
        return bad_schema(ctx, "\"namespace\" of %s must be a string", name);
    if (!is_dotted_name(name, false))
        return bad_schema(ctx, "invalid name \"%s\"", name);

    const char *dot = strrchr(name, '.');
    if (dot != NULL) {
        n->fullname = gov_strdup(name);
        *own_ns = gov_strndup(name, (size_t)(dot - name));
    } else {
        const char *space = ns;
        if (jns != NULL)
            space = json_is_string(jns) ? json_string_value(jns) : "";
        if (!is_dotted_name(space, true))
            return bad_schema(ctx, "invalid namespace \"%s\"", space);
        n->fullname = join_name(space, name);
        *own_ns = gov_strdup(space);
    }
    if (n->fullname == NULL || *own_ns == NULL)
        return nomem(ctx);
    if (primitive_kind(n->fullname) >= 0)
        return bad_schema(ctx, "a named type may not be called \"%s\"", n->fullname);
    if (find_named(ctx, n->fullname) != NULL)
        return bad_schema(ctx, "type \"%s\" is defined twice", n->fullname);
    if (ctx->n_named == ctx->cap_named) {
        size_t cap = ctx->cap_named ? ctx->cap_named * 2 : 8;
        schema_node_t **named = gov_realloc(ctx->named, cap * sizeof(*named));
        if (named == NULL)
            return nomem(ctx);
        ctx->named = named;
        ctx->cap_named = cap;
    }
    ctx->named[ctx->n_named++] = n;
    return GOV_OK;
}

static gov_err_t parse_record(parse_ctx_t *ctx, json_t *obj, const char *ns,
                              unsigned depth, schema_node_t *n) {
    char *own_ns = NULL;
    gov_err_t err = define_named(ctx, obj, ns, n, &own_ns);
    if (err != GOV_OK)
        goto out;
    json_t *fields = json_object_get(obj, "fields");
    if (!json_is_array(fields)) {
        err = bad_schema(ctx, "record %s needs a \"fields\" array", n->fullname);
        goto out;
    }
    size_t count = json_array_size(fields);
    if (count > 0) {
        n->names = gov_calloc(count, sizeof(*n->names));
        n->child = gov_calloc(count, sizeof(*n->child));
        n->defaults = gov_calloc(count, sizeof(*n->defaults));
        if (n->names == NULL || n->child == NULL || n->defaults == NULL) {
            err = nomem(ctx);
            goto out;
        }
    }
    for (size_t i = 0; i < count; i++) {
        json_t *f = json_array_get(fields, i);
        json_t *fname = json_object_get(f, "name");
        json_t *ftype = json_object_get(f, "type");
        if (!json_is_object(f) || !json_is_string(fname) ||
            !is_simple_name(json_string_value(fname), json_string_length(fname))) {
            err = bad_schema(ctx, "record %s: field %zu needs a valid \"name\"",
                             n->fullname, i);
            goto out;
        }
        const char *name = json_string_value(fname);
        for (size_t k = 0; k < n->count; k++) {
            if (strcmp(n->names[k], name) == 0) {
                err = bad_schema(ctx, "record %s: field \"%s\" appears twice",
                                 n->fullname, name);
                goto out;
            }
        }
        if (ftype == NULL) {
            err = bad_schema(ctx, "record %s: field \"%s\" has no \"type\"",
                             n->fullname, name);
            goto out;
        }
        n->names[i] = gov_strdup(name);
        if (n->names[i] == NULL) {
            err = nomem(ctx);
            goto out;
        }
        n->count = i + 1; /* names[0..count) are owned from here on */
        err = parse_schema(ctx, ftype, own_ns, depth + 1, &n->child[i]);
        if (err != GOV_OK)
            goto out;
        n->defaults[i] = json_incref(json_object_get(f, "default"));
    }
out:
    gov_free(own_ns);
    return err;
}

static gov_err_t parse_enum(parse_ctx_t *ctx, json_t *obj, const char *ns,
                            schema_node_t *n) {
    char *own_ns = NULL;
    gov_err_t err = define_named(ctx, obj, ns, n, &own_ns);
    if (err != GOV_OK)
        goto out;
    json_t *symbols = json_object_get(obj, "symbols");
    if (!json_is_array(symbols)) {
        err = bad_schema(ctx, "enum %s needs a \"symbols\" array", n->fullname);
        goto out;
    }
    size_t count = json_array_size(symbols);
    if (count > 0) {
        n->names = gov_calloc(count, sizeof(*n->names));
        if (n->names == NULL) {
            err = nomem(ctx);
            goto out;
        }
    }
    for (size_t i = 0; i < count; i++) {
        json_t *s = json_array_get(symbols, i);
        if (!json_is_string(s) ||
            !is_simple_name(json_string_value(s), json_string_length(s))) {
            err = bad_schema(ctx, "enum %s: symbol %zu is not a valid name",
                             n->fullname, i);
            goto out;
        }
        for (size_t k = 0; k < n->count; k++) {
            if (strcmp(n->names[k], json_string_value(s)) == 0) {
                err = bad_schema(ctx, "enum %s: symbol \"%s\" appears twice",
                                 n->fullname, n->names[k]);
                goto out;
            }
        }
        n->names[i] = gov_strdup(json_string_value(s));
        if (n->names[i] == NULL) {
            err = nomem(ctx);
            goto out;
        }
        n->count = i + 1;
    }
    json_t *def = json_object_get(obj, "default");
    if (def != NULL) {
        bool found = false;
        for (size_t k = 0; json_is_string(def) && k < n->count; k++)
            found = found || strcmp(n->names[k], json_string_value(def)) == 0;
        if (!found) {
            err = bad_schema(ctx, "enum %s: \"default\" is not one of its symbols",
                             n->fullname);
            goto out;
        }
    }
out:
    gov_free(own_ns);
    return err;
}

/* INTEGERS: the size may be written as a JSON integer or as a string of
 * digits (leading zeros allowed); both print as a plain integer. */
static gov_err_t parse_fixed(parse_ctx_t *ctx, json_t *obj, const char *ns,
                             schema_node_t *n) {
    char *own_ns = NULL;
    gov_err_t err = define_named(ctx, obj, ns, n, &own_ns);
    if (err != GOV_OK)
        goto out;
    json_t *size = json_object_get(obj, "size");
    long long value = -1;
    if (json_is_integer(size)) {
        value = json_integer_value(size);
    } else if (json_is_string(size) && json_string_length(size) > 0 &&
               json_string_length(size) <= 10) {
        const char *s = json_string_value(size);
        value = 0;
        for (size_t i = 0; s[i] != '\0'; i++) {
            if (s[i] < '0' || s[i] > '9') {
                value = -1;
                break;
            }
            value = value * 10 + (s[i] - '0');
        }
    }
    if (value < 0 || value > INT32_MAX) {
        err = bad_schema(ctx, "fixed %s needs a non-negative integer \"size\"",
                         n->fullname);
        goto out;
    }
    n->count = (size_t)value;
out:
    gov_free(own_ns);
    return err;
}

static gov_err_t parse_union(parse_ctx_t *ctx, json_t *arr, const char *ns,
                             unsigned depth, schema_node_t *n) {
    size_t count = json_array_size(arr);
    if (count > 0) {
        n->child = gov_calloc(count, sizeof(*n->child));
        if (n->child == NULL)
            return nomem(ctx);
    }
    for (size_t i = 0; i < count; i++) {
        gov_err_t err = parse_schema(ctx, json_array_get(arr, i), ns, depth + 1,
                                     &n->child[i]);
        if (err != GOV_OK)
            return err;
        n->count = i + 1;
        schema_node_t *b = n->child[i];
        if (b->kind == NK_UNION)
            return bad_schema(ctx, "a union may not directly contain a union");
        for (size_t k = 0; k < i; k++) {
            schema_node_t *o = n->child[k];
            bool named = b->fullname != NULL;
            if (o->kind == b->kind &&
                (!named || strcmp(o->fullname, b->fullname) == 0))
                return bad_schema(ctx, "a union may not hold two branches of type %s",
                                  named ? b->fullname : kind_names[b->kind]);
        }
    }
    if (count == 2) {
        for (size_t i = 0; i < 2; i++) {
            if (n->child[i]->kind == NK_NULL) {
                n->union_null = i;
                n->union_value = 1 - i;
            }
        }
    }
    return GOV_OK;
}

/* Parses one schema (a type name, a union array or a type object) in the
 * enclosing namespace ns.  *out is borrowed from the tree's arena.  Cost:
 * linear in the schema text, plus a linear name lookup per named type. */
static gov_err_t parse_schema(parse_ctx_t *ctx, json_t *j, const char *ns,
                              unsigned depth, schema_node_t **out) {
    if (depth > SCHEMA_MAX_DEPTH)
        return bad_schema(ctx, "schema nested deeper than %u", SCHEMA_MAX_DEPTH);

    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        int k = primitive_kind(s);
        if (k >= 0) {
            *out = node_new(ctx, (node_kind_t)k);
            return *out ? GOV_OK : nomem(ctx);
        }
        return resolve_reference(ctx, s, ns, out);
    }
    if (json_is_array(j)) {
        schema_node_t *n = node_new(ctx, NK_UNION);
        if (n == NULL)
            return nomem(ctx);
        *out = n;
        return parse_union(ctx, j, ns, depth, n);
    }
    if (!json_is_object(j))
        return bad_schema(ctx, "a schema must be a string, an array or an object");

    json_t *jtype = json_object_get(j, "type");
    if (!json_is_string(jtype))
        return bad_schema(ctx, "a schema object needs a string \"type\"");
    const char *type = json_string_value(jtype);
    int k = primitive_kind(type);
    if (k >= 0) {
        /* PRIMITIVES: {"type":"long","logicalType":...} is just "long". */
        *out = node_new(ctx, (node_kind_t)k);
        return *out ? GOV_OK : nomem(ctx);
    }
    node_kind_t kind;
    if (strcmp(type, "record") == 0)
        kind = NK_RECORD;
    else if (strcmp(type, "enum") == 0)
        kind = NK_ENUM;
    else if (strcmp(type, "fixed") == 0)
        kind = NK_FIXED;
    else if (strcmp(type, "array") == 0)
        kind = NK_ARRAY;
    else if (strcmp(type, "map") == 0)
        kind = NK_MAP;
    else if (strcmp(type, "error") == 0)
        return bad_schema(ctx, "\"error\" types belong to protocols, not schemas");
    else
        return resolve_reference(ctx, type, ns, out);

    schema_node_t *n = node_new(ctx, kind);
    if (n == NULL)
        return nomem(ctx);
    *out = n;
    switch (kind) {
    case NK_RECORD:
        return parse_record(ctx, j, ns, depth, n);
    case NK_ENUM:
        return parse_enum(ctx, j, ns, n);
    case NK_FIXED:
        return parse_fixed(ctx, j, ns, n);
    case NK_ARRAY:
    case NK_MAP: {
        const char *attr = kind == NK_ARRAY ? "items" : "values";
        json_t *sub = json_object_get(j, attr);
        if (sub == NULL)
            return bad_schema(ctx, "%s needs \"%s\"", type, attr);
        return parse_schema(ctx, sub, ns, depth + 1, &n->item);
    }
    default:
        return bad_schema(ctx, "internal: unexpected kind");
    }
}

/* Builds the tree of a parsed schema.  On success *out is a new tree
 * (tree_free).  The JSON is borrowed; defaults are referenced, not copied. */
static gov_err_t tree_build(json_t *root, schema_tree_t **out, char *errbuf,
                            size_t errbuf_size) {
    parse_ctx_t ctx = {.errbuf = errbuf, .errbuf_size = errbuf_size};
    gov_err_t err;
    *out = NULL;
    ctx.tree = gov_calloc(1, sizeof(*ctx.tree));
    if (ctx.tree == NULL) {
        err = nomem(&ctx);
        goto out;
    }
    err = parse_schema(&ctx, root, "", 0, &ctx.tree->root);
    if (err != GOV_OK)
        goto out;
    *out = ctx.tree;
    ctx.tree = NULL;
out:
    tree_free(ctx.tree);
    gov_free(ctx.named);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Parsing Canonical Form                                                    */

typedef struct strbuf {
    char *buf;
    size_t len;
    size_t cap;
    bool oom;
} strbuf_t;

static void sb_put(strbuf_t *sb, const char *s, size_t n) {
    if (sb->oom)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *buf = gov_realloc(sb->buf, cap);
        if (buf == NULL) {
            sb->oom = true;
            return;
        }
        sb->buf = buf;
        sb->cap = cap;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

static void sb_puts(strbuf_t *sb, const char *s) {
    sb_put(sb, s, strlen(s));
}

/* STRINGS: names and symbols are plain UTF-8.  They were checked against the
 * Avro name grammar, so nothing needs escaping; quotes and backslashes are
 * still escaped so a future relaxation cannot produce broken JSON. */
static void sb_put_jstring(strbuf_t *sb, const char *s) {
    sb_put(sb, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_put(sb, "\\", 1);
        sb_put(sb, p, 1);
    }
    sb_put(sb, "\"", 1);
}

/* Prints node in canonical form.  A named type is defined at its first
 * occurrence and referred to by its fullname afterwards; seen[] marks which
 * are printed.  Terminates on recursive schemas because a named node is
 * expanded once. */
static void pcf_print(strbuf_t *sb, const schema_node_t *n, bool *seen) {
    switch (n->kind) {
    case NK_NULL:
    case NK_BOOLEAN:
    case NK_INT:
    case NK_LONG:
    case NK_FLOAT:
    case NK_DOUBLE:
    case NK_BYTES:
    case NK_STRING:
        sb_put_jstring(sb, kind_names[n->kind]);
        return;
    case NK_UNION:
        sb_puts(sb, "[");
        for (size_t i = 0; i < n->count; i++) {
            if (i > 0)
                sb_puts(sb, ",");
            pcf_print(sb, n->child[i], seen);
        }
        sb_puts(sb, "]");
        return;
    case NK_ARRAY:
    case NK_MAP:
        sb_puts(sb, n->kind == NK_ARRAY ? "{\"type\":\"array\",\"items\":"
                                        : "{\"type\":\"map\",\"values\":");
        pcf_print(sb, n->item, seen);
        sb_puts(sb, "}");
        return;
    case NK_RECORD:
    case NK_ENUM:
    case NK_FIXED:
        break;
    }
    if (seen[n->id]) {
        sb_put_jstring(sb, n->fullname);
        return;
    }
    seen[n->id] = true;
    sb_puts(sb, "{\"name\":");
    sb_put_jstring(sb, n->fullname);
    sb_puts(sb, ",\"type\":");
    sb_put_jstring(sb, kind_names[n->kind]);
    if (n->kind == NK_RECORD) {
        sb_puts(sb, ",\"fields\":[");
        for (size_t i = 0; i < n->count; i++) {
            sb_puts(sb, i > 0 ? ",{\"name\":" : "{\"name\":");
            sb_put_jstring(sb, n->names[i]);
            sb_puts(sb, ",\"type\":");
            pcf_print(sb, n->child[i], seen);
            sb_puts(sb, "}");
        }
        sb_puts(sb, "]}");
    } else if (n->kind == NK_ENUM) {
        sb_puts(sb, ",\"symbols\":[");
        for (size_t i = 0; i < n->count; i++) {
            if (i > 0)
                sb_puts(sb, ",");
            sb_put_jstring(sb, n->names[i]);
        }
        sb_puts(sb, "]}");
    } else {
        char num[32];
        snprintf(num, sizeof(num), ",\"size\":%zu}", n->count);
        sb_puts(sb, num);
    }
}

static gov_err_t tree_canonical(const schema_tree_t *t, char **out,
                                char *errbuf, size_t errbuf_size) {
    strbuf_t sb = {0};
    gov_err_t err = GOV_OK;
    bool *seen = gov_calloc(t->n_nodes, sizeof(*seen));
    if (seen == NULL) {
        err = fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
        goto out;
    }
    pcf_print(&sb, t->root, seen);
    if (sb.oom || sb.buf == NULL) {
        err = fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
        goto out;
    }
    *out = sb.buf;
    sb.buf = NULL;
out:
    gov_free(sb.buf);
    gov_free(seen);
    return err;
}

static gov_err_t load_schema_json(const char *text, size_t len, json_t **out,
                                  char *errbuf, size_t errbuf_size) {
    json_error_t jerr;
    memset(&jerr, 0, sizeof(jerr)); /* the code byte is only set with a text */
    *out = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    /* jansson reports most allocation failures as out_of_memory, but one
     * that happens before parsing starts (its lexer buffer) leaves the error
     * text empty; a real syntax error always has a text. */
    if (*out == NULL && (jerr.text[0] == '\0' ||
                         json_error_code(&jerr) == json_error_out_of_memory))
        return fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
    if (*out == NULL)
        return fail(errbuf, errbuf_size, GOV_ERR_PARSE,
                    "schema is not JSON: %s (line %d, column %d)", jerr.text,
                    jerr.line, jerr.column);
    return GOV_OK;
}

gov_err_t gov_avro_canonical_form(const char *schema_json, char **out,
                                  char *errbuf, size_t errbuf_size) {
    json_t *root = NULL;
    schema_tree_t *tree = NULL;
    gov_err_t err;
    clear_err(errbuf, errbuf_size);
    if (schema_json == NULL || out == NULL)
        return fail(errbuf, errbuf_size, GOV_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    err = load_schema_json(schema_json, strlen(schema_json), &root, errbuf,
                           errbuf_size);
    if (err != GOV_OK)
        goto out;
    err = tree_build(root, &tree, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto out;
    err = tree_canonical(tree, out, errbuf, errbuf_size);
out:
    tree_free(tree);
    json_decref(root);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Field paths for messages ("signatures[1].signer_id")                      */

typedef struct path_frame {
    const char *name;  /* field name, or NULL for an element index */
    size_t index;
} path_frame_t;

typedef struct path {
    path_frame_t frames[PATH_MAX_FRAMES];
    size_t depth;
} path_t;

static void path_push_name(path_t *p, const char *name) {
    if (p->depth < PATH_MAX_FRAMES)
        p->frames[p->depth] = (path_frame_t){.name = name};
    p->depth++;
}

static void path_push_index(path_t *p, size_t index) {
    if (p->depth < PATH_MAX_FRAMES)
        p->frames[p->depth] = (path_frame_t){.index = index};
    p->depth++;
}

static void path_pop(path_t *p) {
    p->depth--;
}

static const char *path_format(const path_t *p, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    size_t shown = p->depth < PATH_MAX_FRAMES ? p->depth : PATH_MAX_FRAMES;
    for (size_t i = 0; i < shown && len < size; i++) {
        const path_frame_t *f = &p->frames[i];
        int w = f->name ? snprintf(buf + len, size - len, "%s%s", i ? "." : "", f->name)
                        : snprintf(buf + len, size - len, "[%zu]", f->index);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    return shown == 0 ? "(top level)" : buf;
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF.  Returns the length of the valid prefix (== len when valid). */
static size_t utf8_valid_prefix(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return i;
        }
        if (len - i - 1 < need)
            return i;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return i;
        i += need + 1;
    }
    return i;
}

/* ------------------------------------------------------------------------ */
/* Body walker                                                               */

typedef struct map_key {
    const unsigned char *p;
    size_t len;
} map_key_t;

typedef struct walker {
    const unsigned char *start;
    const unsigned char *p;
    const unsigned char *end;
    size_t total_items;
    path_t path;
    char *errbuf;
    size_t errbuf_size;
} walker_t;

static gov_err_t walk_fail(walker_t *w, gov_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static gov_err_t walk_fail(walker_t *w, gov_err_t err, const char *fmt, ...) {
    if (w->errbuf != NULL && w->errbuf_size > 0) {
        char reason[160], where[192];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        snprintf(w->errbuf, w->errbuf_size, "%s at body byte %zu (%s)", reason,
                 (size_t)(w->p - w->start), path_format(&w->path, where, sizeof(where)));
    }
    return err;
}

static size_t walk_remaining(const walker_t *w) {
    return (size_t)(w->end - w->p);
}

/* Reads a zig-zag varint of at most max_bytes bytes whose last byte may carry
 * no more than last_max (so the value fits 32 or 64 bits).  Encodings that are
 * longer than needed but within those bounds are accepted, as the spec does
 * not require the shortest form. */
static gov_err_t read_zigzag(walker_t *w, unsigned max_bytes, unsigned char last_max,
                             int64_t *out) {
    uint64_t v = 0;
    for (unsigned i = 0;; i++) {
        if (w->p == w->end)
            return walk_fail(w, GOV_ERR_PARSE, "truncated varint");
        unsigned char b = *w->p;
        if (i == max_bytes - 1 && b > last_max)
            return walk_fail(w, GOV_ERR_PARSE, "varint longer than %u bytes or out of range",
                             max_bytes);
        w->p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0)
            break;
    }
    *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
    return GOV_OK;
}

static gov_err_t read_long(walker_t *w, int64_t *out) {
    return read_zigzag(w, 10, 0x01, out);
}

/* Reads a string or bytes length and checks it against the remaining bytes. */
static gov_err_t read_length(walker_t *w, const char *what, size_t *out) {
    const unsigned char *at = w->p;
    int64_t len;
    gov_err_t err = read_long(w, &len);
    if (err != GOV_OK)
        return err;
    if (len < 0) {
        w->p = at;
        return walk_fail(w, GOV_ERR_PARSE, "negative %s length %" PRId64, what, len);
    }
    if ((uint64_t)len > walk_remaining(w)) {
        size_t remaining = walk_remaining(w);
        w->p = at;
        return walk_fail(w, GOV_ERR_PARSE,
                         "%s length %" PRId64 " exceeds the %zu remaining bytes", what,
                         len, remaining);
    }
    *out = (size_t)len;
    return GOV_OK;
}

static gov_err_t walk_string(walker_t *w, const char *what, bool map_key,
                             map_key_t *key) {
    size_t len;
    gov_err_t err = read_length(w, what, &len);
    if (err != GOV_OK)
        return err;
    size_t ok = utf8_valid_prefix(w->p, len);
    if (ok != len) {
        w->p += ok;
        return walk_fail(w, GOV_ERR_PARSE, "invalid UTF-8 in %s", what);
    }
    /* avro-c keeps map keys as C strings: a NUL would silently cut the key. */
    if (map_key && memchr(w->p, '\0', len) != NULL)
        return walk_fail(w, GOV_ERR_PARSE, "NUL byte in map key");
    if (key != NULL)
        *key = (map_key_t){w->p, len};
    w->p += len;
    return GOV_OK;
}

static int map_key_cmp(const void *a, const void *b) {
    const map_key_t *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->p, y->p, x->len);
}

static gov_err_t walk_value(walker_t *w, const schema_node_t *n, unsigned depth);

/* Array and map blocks: a count, for a negative count also the byte size of
 * the block (checked against what its items really take), until a 0 count.
 * Map keys must be distinct: avro-c would merge duplicates silently. */
static gov_err_t walk_blocks(walker_t *w, const schema_node_t *n, unsigned depth) {
    bool is_map = n->kind == NK_MAP;
    map_key_t *keys = NULL;
    size_t n_keys = 0, cap_keys = 0, items = 0;
    gov_err_t err = GOV_OK;

    for (;;) {
        const unsigned char *at = w->p;
        int64_t count, block_size = -1;
        err = read_long(w, &count);
        if (err != GOV_OK)
            goto out;
        if (count == 0)
            break;
        if (count < 0) {
            if (count < -(int64_t)GOV_AVRO_MAX_ITEMS) {
                w->p = at;
                err = walk_fail(w, GOV_ERR_PARSE, "too many items in one %s (block of %" PRId64 ")",
                                kind_names[n->kind], count);
                goto out;
            }
            count = -count;
            const unsigned char *size_at = w->p;
            err = read_long(w, &block_size);
            if (err != GOV_OK)
                goto out;
            if (block_size < 0 || (uint64_t)block_size > walk_remaining(w)) {
                size_t remaining = walk_remaining(w);
                w->p = size_at;
                err = walk_fail(w, GOV_ERR_PARSE,
                                "%s block byte size %" PRId64 " is negative or beyond the %zu remaining bytes",
                                kind_names[n->kind], block_size, remaining);
                goto out;
            }
        }
        if ((uint64_t)count > GOV_AVRO_MAX_ITEMS - items) {
            w->p = at;
            err = walk_fail(w, GOV_ERR_PARSE, "too many items in one %s (more than %u)",
                            kind_names[n->kind], GOV_AVRO_MAX_ITEMS);
            goto out;
        }
        if ((size_t)count > MAX_TOTAL_ITEMS - w->total_items) {
            w->p = at;
            err = walk_fail(w, GOV_ERR_PARSE, "too many items in the message (more than %zu)",
                            MAX_TOTAL_ITEMS);
            goto out;
        }
        items += (size_t)count;
        w->total_items += (size_t)count;
        if (is_map && n_keys + (size_t)count > cap_keys) {
            size_t cap = cap_keys ? cap_keys : 8;
            while (cap < n_keys + (size_t)count)
                cap *= 2;
            map_key_t *k = gov_realloc(keys, cap * sizeof(*keys));
            if (k == NULL) {
                err = fail(w->errbuf, w->errbuf_size, GOV_ERR_NOMEM, "out of memory");
                goto out;
            }
            keys = k;
            cap_keys = cap;
        }
        const unsigned char *block_start = w->p;
        for (int64_t i = 0; i < count; i++) {
            path_push_index(&w->path, items - (size_t)count + (size_t)i);
            if (is_map)
                err = walk_string(w, "map key", true, &keys[n_keys++]);
            if (err == GOV_OK)
                err = walk_value(w, n->item, depth);
            path_pop(&w->path);
            if (err != GOV_OK)
                goto out;
        }
        if (block_size >= 0 && (size_t)(w->p - block_start) != (size_t)block_size) {
            err = walk_fail(w, GOV_ERR_PARSE,
                            "%s block byte size %" PRId64 " does not match its items (%zu bytes)",
                            kind_names[n->kind], block_size, (size_t)(w->p - block_start));
            goto out;
        }
    }
    if (is_map && n_keys > 1) {
        qsort(keys, n_keys, sizeof(*keys), map_key_cmp);
        for (size_t i = 1; i < n_keys; i++) {
            if (map_key_cmp(&keys[i - 1], &keys[i]) == 0) {
                err = walk_fail(w, GOV_ERR_PARSE, "duplicate map key");
                goto out;
            }
        }
    }
out:
    gov_free(keys);
    return err;
}

/* Checks one value of schema n.  depth counts the records, arrays and maps
 * around it.  Cost: linear in the bytes consumed plus the element count
 * (bounded by MAX_TOTAL_ITEMS), n log n for the keys of a map. */
static gov_err_t walk_value(walker_t *w, const schema_node_t *n, unsigned depth) {
    int64_t v;
    gov_err_t err;
    switch (n->kind) {
    case NK_NULL:
        return GOV_OK;
    case NK_BOOLEAN:
        if (w->p == w->end)
            return walk_fail(w, GOV_ERR_PARSE, "truncated boolean");
        if (*w->p > 1)
            return walk_fail(w, GOV_ERR_PARSE, "boolean byte 0x%02x is neither 0 nor 1", *w->p);
        w->p++;
        return GOV_OK;
    case NK_INT:
        return read_zigzag(w, 5, 0x0f, &v);
    case NK_LONG:
        return read_long(w, &v);
    case NK_FLOAT:
    case NK_DOUBLE:
    case NK_FIXED: {
        size_t size = n->kind == NK_FLOAT ? 4 : n->kind == NK_DOUBLE ? 8 : n->count;
        if (walk_remaining(w) < size)
            return walk_fail(w, GOV_ERR_PARSE, "truncated %s", kind_names[n->kind]);
        w->p += size;
        return GOV_OK;
    }
    case NK_BYTES: {
        size_t len;
        err = read_length(w, "bytes", &len);
        if (err == GOV_OK)
            w->p += len;
        return err;
    }
    case NK_STRING:
        return walk_string(w, "string", false, NULL);
    case NK_ENUM: {
        const unsigned char *at = w->p;
        err = read_long(w, &v);
        if (err != GOV_OK)
            return err;
        if (v < 0 || (uint64_t)v >= n->count) {
            w->p = at;
            return walk_fail(w, GOV_ERR_PARSE, "enum index %" PRId64 " out of range (%zu symbols)",
                             v, n->count);
        }
        return GOV_OK;
    }
    case NK_UNION: {
        const unsigned char *at = w->p;
        err = read_long(w, &v);
        if (err != GOV_OK)
            return err;
        if (v < 0 || (uint64_t)v >= n->count) {
            w->p = at;
            return walk_fail(w, GOV_ERR_PARSE, "union index %" PRId64 " out of range (%zu branches)",
                             v, n->count);
        }
        return walk_value(w, n->child[v], depth);
    }
    case NK_RECORD:
        if (depth + 1 > GOV_AVRO_MAX_DEPTH)
            return walk_fail(w, GOV_ERR_PARSE, "nested deeper than %u", GOV_AVRO_MAX_DEPTH);
        for (size_t i = 0; i < n->count; i++) {
            path_push_name(&w->path, n->names[i]);
            err = walk_value(w, n->child[i], depth + 1);
            path_pop(&w->path);
            if (err != GOV_OK)
                return err;
        }
        return GOV_OK;
    case NK_ARRAY:
    case NK_MAP:
        if (depth + 1 > GOV_AVRO_MAX_DEPTH)
            return walk_fail(w, GOV_ERR_PARSE, "nested deeper than %u", GOV_AVRO_MAX_DEPTH);
        return walk_blocks(w, n, depth + 1);
    }
    return walk_fail(w, GOV_ERR_INTERNAL, "unknown schema kind");
}

static gov_err_t walk_body(const schema_tree_t *t, const unsigned char *body,
                           size_t len, char *errbuf, size_t errbuf_size) {
    static const unsigned char empty[1];
    if (body == NULL)
        body = empty; /* len is 0: no arithmetic on a null pointer */
    if (len > GOV_AVRO_MAX_BODY)
        return fail(errbuf, errbuf_size, GOV_ERR_TOO_LARGE,
                    "body of %zu bytes exceeds the %u-byte limit", len, GOV_AVRO_MAX_BODY);
    walker_t w = {.start = body, .p = body, .end = body + len,
                  .errbuf = errbuf, .errbuf_size = errbuf_size};
    gov_err_t err = walk_value(&w, t->root, 0);
    if (err != GOV_OK)
        return err;
    if (w.p != w.end)
        return walk_fail(&w, GOV_ERR_PARSE, "%zu trailing bytes after the value",
                         walk_remaining(&w));
    return GOV_OK;
}

/* ------------------------------------------------------------------------ */
/* Registry                                                                  */

typedef struct registry_entry {
    const char *name;        /* static, from gov_embedded_schemas */
    char *canonical;         /* Parsing Canonical Form */
    uint64_t fingerprint;
    schema_tree_t *tree;
    avro_schema_t schema;
    avro_value_iface_t *iface;
} registry_entry_t;

struct gov_avro_registry {
    registry_entry_t *entries;
    size_t count;
};

static void entry_clear(registry_entry_t *e) {
    if (e->iface != NULL)
        avro_value_iface_decref(e->iface);
    if (e->schema != NULL)
        avro_schema_decref(e->schema);
    tree_free(e->tree);
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

static const registry_entry_t *find_entry(const gov_avro_registry_t *reg,
                                          const char *name) {
    if (reg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < reg->count; i++)
        if (strcmp(reg->entries[i].name, name) == 0)
            return &reg->entries[i];
    return NULL;
}

gov_err_t gov_avro_registry_fingerprint(const gov_avro_registry_t *reg,
                                        const char *name, uint64_t *fp) {
    const registry_entry_t *e = find_entry(reg, name);
    if (e == NULL || fp == NULL)
        return GOV_ERR_NOT_FOUND;
    *fp = e->fingerprint;
    return GOV_OK;
}

const char *gov_avro_registry_canonical(const gov_avro_registry_t *reg,
                                        const char *name) {
    const registry_entry_t *e = find_entry(reg, name);
    return e ? e->canonical : NULL;
}

/* Encoder state: the field path for messages, and whether we are filling a
 * schema default (where a union takes its first branch, per the spec). */
typedef struct encoder {
    path_t path;
    char *errbuf;
    size_t errbuf_size;
} encoder_t;

static gov_err_t enc_fail(encoder_t *e, gov_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static gov_err_t enc_fail(encoder_t *e, gov_err_t err, const char *fmt, ...) {
    if (e->errbuf != NULL && e->errbuf_size > 0) {
        char reason[160], where[192];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        snprintf(e->errbuf, e->errbuf_size, "%s: %s",
                 path_format(&e->path, where, sizeof(where)), reason);
    }
    return err;
}

static gov_err_t enc_avro(encoder_t *e, int rval) {
    if (rval == ENOMEM)
        return enc_fail(e, GOV_ERR_NOMEM, "out of memory in avro-c");
    return enc_fail(e, GOV_ERR_AVRO, "avro-c refused the value (error %d)", rval);
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
 * (U+0000..U+00FF), the convention of the Avro JSON encoding.  *out is new
 * gov_malloc memory (NULL for zero bytes). */
static gov_err_t latin1_from_utf8(encoder_t *e, const char *s, size_t len,
                                  unsigned char **out, size_t *out_len) {
    unsigned char *buf = gov_malloc(len ? len : 1);
    size_t n = 0;
    if (buf == NULL)
        return enc_fail(e, GOV_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            buf[n++] = c;
        } else if ((c == 0xC2 || c == 0xC3) && i + 1 < len) {
            buf[n++] = (unsigned char)(((c & 0x03) << 6) | ((unsigned char)s[++i] & 0x3f));
        } else {
            gov_free(buf);
            return enc_fail(e, GOV_ERR_INVALID_ARG,
                            "bytes must be a string of code points U+0000..U+00FF");
        }
    }
    *out = buf;
    *out_len = n;
    return GOV_OK;
}

/* Fills dst (may be NULL: check only) from j following the mapping of
 * gov_avro.h.  in_default: j is a schema default, so a union value must match
 * the union's first branch.  Cost: linear in the size of j. */
static gov_err_t json_to_avro(encoder_t *e, const schema_node_t *n, json_t *j,
                              avro_value_t *dst, unsigned depth, bool in_default) {
    int rval = 0;
    gov_err_t err = GOV_OK;

    switch (n->kind) {
    case NK_NULL:
        if (!json_is_null(j))
            return enc_fail(e, GOV_ERR_INVALID_ARG, "expected null, got %s", json_type_name(j));
        rval = dst ? avro_value_set_null(dst) : 0;
        break;
    case NK_BOOLEAN:
        if (!json_is_boolean(j))
            return enc_fail(e, GOV_ERR_INVALID_ARG, "expected a boolean, got %s",
                            json_type_name(j));
        rval = dst ? avro_value_set_boolean(dst, json_is_true(j)) : 0;
        break;
    case NK_INT:
        if (!json_is_integer(j) || json_integer_value(j) < INT32_MIN ||
            json_integer_value(j) > INT32_MAX)
            return enc_fail(e, GOV_ERR_INVALID_ARG, "expected a 32-bit integer, got %s",
                            json_type_name(j));
        rval = dst ? avro_value_set_int(dst, (int32_t)json_integer_value(j)) : 0;
        break;
    case NK_LONG:
        if (!json_is_integer(j))
            return enc_fail(e, GOV_ERR_INVALID_ARG, "expected an integer, got %s",
                            json_type_name(j));
        rval = dst ? avro_value_set_long(dst, (int64_t)json_integer_value(j)) : 0;
        break;
    case NK_STRING:
        if (!json_is_string(j))
            return enc_fail(e, GOV_ERR_INVALID_ARG, "expected a string, got %s",
                            json_type_name(j));
        /* avro-c wants the size including the NUL; jansson keeps one. */
        rval = dst ? avro_value_set_string_len(dst, json_string_value(j),
                                               json_string_length(j) + 1)
                   : 0;
        break;
    case NK_BYTES: {
        if (!json_is_string(j))
            return enc_fail(e, GOV_ERR_INVALID_ARG, "expected a string, got %s",
                            json_type_name(j));
        unsigned char *bytes = NULL;
        size_t nbytes = 0;
        err = latin1_from_utf8(e, json_string_value(j), json_string_length(j), &bytes, &nbytes);
        if (err != GOV_OK)
            return err;
        rval = dst ? avro_value_set_bytes(dst, bytes, nbytes) : 0;
        gov_free(bytes);
        break;
    }
    case NK_ENUM: {
        size_t idx = n->count;
        if (json_is_string(j))
            for (idx = 0; idx < n->count; idx++)
                if (strcmp(n->names[idx], json_string_value(j)) == 0)
                    break;
        if (idx == n->count)
            return enc_fail(e, GOV_ERR_INVALID_ARG, "not a symbol of enum %s", n->fullname);
        rval = dst ? avro_value_set_enum(dst, (int)idx) : 0;
        break;
    }
    case NK_UNION: {
        if (n->union_value == SIZE_MAX)
            return enc_fail(e, GOV_ERR_UNSUPPORTED, "only unions of null and one type are supported");
        size_t branch = json_is_null(j) ? n->union_null : n->union_value;
        if (in_default && branch != 0)
            return enc_fail(e, GOV_ERR_INVALID_ARG,
                            "a union default must match the union's first branch");
        avro_value_t bv;
        if (dst) {
            rval = avro_value_set_branch(dst, (int)branch, &bv);
            if (rval != 0)
                break;
        }
        return json_to_avro(e, n->child[branch], j, dst ? &bv : NULL, depth, in_default);
    }
    case NK_ARRAY: {
        if (!json_is_array(j))
            return enc_fail(e, GOV_ERR_INVALID_ARG, "expected an array, got %s",
                            json_type_name(j));
        if (depth + 1 > GOV_AVRO_MAX_DEPTH)
            return enc_fail(e, GOV_ERR_TOO_LARGE, "nested deeper than %u", GOV_AVRO_MAX_DEPTH);
        if (json_array_size(j) > GOV_AVRO_MAX_ITEMS)
            return enc_fail(e, GOV_ERR_TOO_LARGE, "more than %u items", GOV_AVRO_MAX_ITEMS);
        for (size_t i = 0; i < json_array_size(j); i++) {
            avro_value_t ev;
            if (dst && (rval = avro_value_append(dst, &ev, NULL)) != 0)
                break;
            path_push_index(&e->path, i);
            err = json_to_avro(e, n->item, json_array_get(j, i), dst ? &ev : NULL,
                               depth + 1, in_default);
            path_pop(&e->path);
            if (err != GOV_OK)
                return err;
        }
        break;
    }
    case NK_MAP: {
        if (!json_is_object(j))
            return enc_fail(e, GOV_ERR_INVALID_ARG, "expected an object, got %s",
                            json_type_name(j));
        if (depth + 1 > GOV_AVRO_MAX_DEPTH)
            return enc_fail(e, GOV_ERR_TOO_LARGE, "nested deeper than %u", GOV_AVRO_MAX_DEPTH);
        if (json_object_size(j) > GOV_AVRO_MAX_ITEMS)
            return enc_fail(e, GOV_ERR_TOO_LARGE, "more than %u items", GOV_AVRO_MAX_ITEMS);
        size_t i = 0;
        for (void *it = json_object_iter(j); it != NULL;
             it = json_object_iter_next(j, it), i++) {
            const char *key = json_object_iter_key(it);
            if (strlen(key) != json_object_iter_key_len(it))
                return enc_fail(e, GOV_ERR_INVALID_ARG, "map key with a NUL byte");
            avro_value_t ev;
            if (dst && (rval = avro_value_add(dst, key, &ev, NULL, NULL)) != 0)
                break;
            path_push_name(&e->path, key);
            err = json_to_avro(e, n->item, json_object_iter_value(it), dst ? &ev : NULL,
                               depth + 1, in_default);
            path_pop(&e->path);
            if (err != GOV_OK)
                return err;
        }
        break;
    }
    case NK_RECORD: {
        if (!json_is_object(j))
            return enc_fail(e, GOV_ERR_INVALID_ARG, "expected an object, got %s",
                            json_type_name(j));
        if (depth + 1 > GOV_AVRO_MAX_DEPTH)
            return enc_fail(e, GOV_ERR_TOO_LARGE, "nested deeper than %u", GOV_AVRO_MAX_DEPTH);
        /* Extra members are refused: a typo must not silently vanish. */
        for (void *it = json_object_iter(j); it != NULL; it = json_object_iter_next(j, it)) {
            const char *key = json_object_iter_key(it);
            size_t f = 0;
            while (f < n->count && strcmp(n->names[f], key) != 0)
                f++;
            if (f == n->count || strlen(key) != json_object_iter_key_len(it)) {
                path_push_name(&e->path, key);
                err = enc_fail(e, GOV_ERR_INVALID_ARG, "not a field of record %s", n->fullname);
                path_pop(&e->path);
                return err;
            }
        }
        for (size_t f = 0; f < n->count; f++) {
            json_t *member = json_object_get(j, n->names[f]);
            bool from_default = false;
            path_push_name(&e->path, n->names[f]);
            if (member == NULL) {
                member = n->defaults[f];
                from_default = true;
            }
            if (member == NULL) {
                err = enc_fail(e, GOV_ERR_INVALID_ARG, "missing field without a default");
            } else {
                avro_value_t fv;
                if (dst && (rval = avro_value_get_by_index(dst, f, &fv, NULL)) != 0) {
                    err = enc_avro(e, rval);
                } else {
                    err = json_to_avro(e, n->child[f], member, dst ? &fv : NULL, depth + 1,
                                       in_default || from_default);
                }
            }
            path_pop(&e->path);
            if (err != GOV_OK)
                return err;
        }
        break;
    }
    case NK_FLOAT:
    case NK_DOUBLE:
    case NK_FIXED:
        return enc_fail(e, GOV_ERR_UNSUPPORTED, "type %s is not supported by the codec",
                        kind_names[n->kind]);
    }
    return rval != 0 ? enc_avro(e, rval) : GOV_OK;
}

/* Registry-time check that a tree fits the codec: only the types gov_avro.h
 * maps, only unions of null and one type, a record at the root, and every
 * field default valid for its type.  Visits each named type once. */
static gov_err_t codec_check(const schema_node_t *n, bool *seen, char *errbuf,
                             size_t errbuf_size) {
    switch (n->kind) {
    case NK_FLOAT:
    case NK_DOUBLE:
    case NK_FIXED:
        return fail(errbuf, errbuf_size, GOV_ERR_UNSUPPORTED,
                    "type %s is not supported by the event codec", kind_names[n->kind]);
    case NK_UNION:
        if (n->union_value == SIZE_MAX)
            return fail(errbuf, errbuf_size, GOV_ERR_UNSUPPORTED,
                        "only unions of null and one other type are supported");
        return codec_check(n->child[n->union_value], seen, errbuf, errbuf_size);
    case NK_ARRAY:
    case NK_MAP:
        return codec_check(n->item, seen, errbuf, errbuf_size);
    case NK_RECORD:
        if (seen[n->id])
            return GOV_OK;
        seen[n->id] = true;
        for (size_t i = 0; i < n->count; i++) {
            gov_err_t err = codec_check(n->child[i], seen, errbuf, errbuf_size);
            if (err != GOV_OK)
                return err;
            if (n->defaults[i] != NULL) {
                encoder_t e = {.errbuf = errbuf, .errbuf_size = errbuf_size};
                path_push_name(&e.path, n->names[i]);
                err = json_to_avro(&e, n->child[i], n->defaults[i], NULL, 0, true);
                if (err != GOV_OK)
                    return err == GOV_ERR_NOMEM ? err : GOV_ERR_AVRO;
            }
        }
        return GOV_OK;
    default:
        return GOV_OK;
    }
}

/* Checks that avro-c parsed the same schema as we did: same kinds, field
 * names, symbols and branches, recursively.  The walker's guarantees hold for
 * avro-c only if this is true. */
static bool matches_avro(const schema_node_t *n, avro_schema_t s, bool *seen,
                         unsigned depth) {
    if (s == NULL || depth > SCHEMA_MAX_DEPTH)
        return false;
    while (avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    static const avro_type_t expect[] = {
        [NK_NULL] = AVRO_NULL,     [NK_BOOLEAN] = AVRO_BOOLEAN, [NK_INT] = AVRO_INT32,
        [NK_LONG] = AVRO_INT64,    [NK_FLOAT] = AVRO_FLOAT,     [NK_DOUBLE] = AVRO_DOUBLE,
        [NK_BYTES] = AVRO_BYTES,   [NK_STRING] = AVRO_STRING,   [NK_RECORD] = AVRO_RECORD,
        [NK_ENUM] = AVRO_ENUM,     [NK_ARRAY] = AVRO_ARRAY,     [NK_MAP] = AVRO_MAP,
        [NK_UNION] = AVRO_UNION,   [NK_FIXED] = AVRO_FIXED,
    };
    if (avro_typeof(s) != expect[n->kind])
        return false;
    switch (n->kind) {
    case NK_RECORD:
        if (seen[n->id])
            return true;
        seen[n->id] = true;
        if (avro_schema_record_size(s) != n->count)
            return false;
        for (size_t i = 0; i < n->count; i++) {
            const char *fname = avro_schema_record_field_name(s, (int)i);
            if (fname == NULL || strcmp(fname, n->names[i]) != 0 ||
                !matches_avro(n->child[i], avro_schema_record_field_get_by_index(s, (int)i),
                              seen, depth + 1))
                return false;
        }
        return true;
    case NK_ENUM:
        if ((size_t)avro_schema_enum_number_of_symbols(s) != n->count)
            return false;
        for (size_t i = 0; i < n->count; i++) {
            const char *sym = avro_schema_enum_get(s, (int)i);
            if (sym == NULL || strcmp(sym, n->names[i]) != 0)
                return false;
        }
        return true;
    case NK_FIXED:
        return avro_schema_fixed_size(s) == (int64_t)n->count;
    case NK_ARRAY:
        return matches_avro(n->item, avro_schema_array_items(s), seen, depth + 1);
    case NK_MAP:
        return matches_avro(n->item, avro_schema_map_values(s), seen, depth + 1);
    case NK_UNION:
        if (avro_schema_union_size(s) != n->count)
            return false;
        for (size_t i = 0; i < n->count; i++)
            if (!matches_avro(n->child[i], avro_schema_union_branch(s, (int)i), seen,
                              depth + 1))
                return false;
        return true;
    default:
        return true;
    }
}

/* Loads one embedded schema into e.  Everything e holds is released by
 * entry_clear, also on failure. */
static gov_err_t entry_load(registry_entry_t *e, const gov_embedded_schema_t *src,
                            char *errbuf, size_t errbuf_size) {
    json_t *root = NULL;
    bool *seen = NULL;
    gov_err_t err;

    e->name = src->name;
    err = load_schema_json(src->json, src->len, &root, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto out;
    err = tree_build(root, &e->tree, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto out;
    if (e->tree->root->kind != NK_RECORD) {
        err = fail(errbuf, errbuf_size, GOV_ERR_UNSUPPORTED, "an event schema must be a record");
        goto out;
    }
    seen = gov_calloc(e->tree->n_nodes, sizeof(*seen));
    if (seen == NULL) {
        err = fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
        goto out;
    }
    err = codec_check(e->tree->root, seen, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto out;
    err = tree_canonical(e->tree, &e->canonical, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto out;
    e->fingerprint = gov_avro_fingerprint64(e->canonical, strlen(e->canonical));

    /* avro-c parses with the same jansson (and so, in libgov, gov_malloc):
     * out of memory there also ends here, reported by avro-c as EINVAL. */
    if (avro_schema_from_json_length(src->json, src->len, &e->schema) != 0) {
        e->schema = NULL;
        err = fail(errbuf, errbuf_size, GOV_ERR_AVRO, "avro-c could not parse the schema");
        goto out;
    }
    memset(seen, 0, e->tree->n_nodes * sizeof(*seen));
    if (!matches_avro(e->tree->root, e->schema, seen, 0)) {
        err = fail(errbuf, errbuf_size, GOV_ERR_AVRO,
                   "avro-c reads the schema differently from the validator");
        goto out;
    }
    e->iface = avro_generic_class_from_schema(e->schema);
    if (e->iface == NULL) {
        err = fail(errbuf, errbuf_size, GOV_ERR_AVRO,
                   "avro-c could not make a value class for the schema");
        goto out;
    }
out:
    gov_free(seen);
    json_decref(root);
    return err;
}

gov_err_t gov_avro_registry_new(gov_avro_registry_t **out, char *errbuf,
                                size_t errbuf_size) {
    gov_avro_registry_t *reg = NULL;
    gov_err_t err = GOV_OK;
    clear_err(errbuf, errbuf_size);
    if (out == NULL)
        return fail(errbuf, errbuf_size, GOV_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    reg = gov_calloc(1, sizeof(*reg));
    if (reg == NULL) {
        err = fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
        goto out;
    }
    reg->entries = gov_calloc(gov_embedded_schema_count, sizeof(*reg->entries));
    if (reg->entries == NULL) {
        err = fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < gov_embedded_schema_count; i++) {
        const gov_embedded_schema_t *src = &gov_embedded_schemas[i];
        registry_entry_t *e = &reg->entries[i];
        reg->count = i + 1;
        char detail[256] = "";
        err = entry_load(e, src, detail, sizeof(detail));
        if (err != GOV_OK) {
            fail(errbuf, errbuf_size, err, "schema %s: %s", src->name, detail);
            goto out;
        }
        for (unsigned k = 0; k < i; k++) {
            if (strcmp(reg->entries[k].name, e->name) == 0 ||
                reg->entries[k].fingerprint == e->fingerprint) {
                err = fail(errbuf, errbuf_size, GOV_ERR_EXISTS,
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

gov_err_t gov_avro_validate_body(const gov_avro_registry_t *reg,
                                 const char *name, const void *body,
                                 size_t len, char *errbuf, size_t errbuf_size) {
    clear_err(errbuf, errbuf_size);
    if (reg == NULL || name == NULL || (body == NULL && len > 0))
        return fail(errbuf, errbuf_size, GOV_ERR_INVALID_ARG, "NULL argument");
    const registry_entry_t *e = find_entry(reg, name);
    if (e == NULL)
        return fail(errbuf, errbuf_size, GOV_ERR_NOT_FOUND, "unknown schema \"%s\"", name);
    return walk_body(e->tree, body, len, errbuf, errbuf_size);
}

gov_err_t gov_avro_encode(const gov_avro_registry_t *reg, const char *name,
                          json_t *event, unsigned char **buf, size_t *len,
                          char *errbuf, size_t errbuf_size) {
    avro_value_t value = {0};
    avro_writer_t writer = NULL;
    unsigned char *msg = NULL;
    size_t body_len = 0;
    gov_err_t err;
    int rval;

    clear_err(errbuf, errbuf_size);
    if (reg == NULL || name == NULL || event == NULL || buf == NULL || len == NULL)
        return fail(errbuf, errbuf_size, GOV_ERR_INVALID_ARG, "NULL argument");
    *buf = NULL;
    *len = 0;
    const registry_entry_t *e = find_entry(reg, name);
    if (e == NULL)
        return fail(errbuf, errbuf_size, GOV_ERR_NOT_FOUND, "unknown schema \"%s\"", name);

    if ((rval = avro_generic_value_new(e->iface, &value)) != 0) {
        value.iface = NULL;
        err = fail(errbuf, errbuf_size, rval == ENOMEM ? GOV_ERR_NOMEM : GOV_ERR_AVRO,
                   "avro-c could not create a value (error %d)", rval);
        goto out;
    }
    encoder_t enc = {.errbuf = errbuf, .errbuf_size = errbuf_size};
    err = json_to_avro(&enc, e->tree->root, event, &value, 0, false);
    if (err != GOV_OK)
        goto out;
    if ((rval = avro_value_sizeof(&value, &body_len)) != 0) {
        err = fail(errbuf, errbuf_size, GOV_ERR_AVRO, "avro-c could not size the value (error %d)",
                   rval);
        goto out;
    }
    if (body_len > GOV_AVRO_MAX_BODY) {
        err = fail(errbuf, errbuf_size, GOV_ERR_TOO_LARGE,
                   "encoded body of %zu bytes exceeds the %u-byte limit", body_len,
                   GOV_AVRO_MAX_BODY);
        goto out;
    }
    msg = gov_malloc(GOV_AVRO_HEADER_LEN + body_len);
    if (msg == NULL) {
        err = fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
        goto out;
    }
    writer = avro_writer_memory((const char *)msg + GOV_AVRO_HEADER_LEN, (int64_t)body_len);
    if (writer == NULL) {
        err = fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "avro-c could not create a writer");
        goto out;
    }
    if ((rval = avro_value_write(writer, &value)) != 0 ||
        avro_writer_tell(writer) != (int64_t)body_len) {
        err = fail(errbuf, errbuf_size, GOV_ERR_AVRO, "avro-c could not write the value (error %d)",
                   rval);
        goto out;
    }
    msg[0] = GOV_AVRO_MAGIC0;
    msg[1] = GOV_AVRO_MAGIC1;
    for (int i = 0; i < 8; i++)
        msg[2 + i] = (unsigned char)(e->fingerprint >> (8 * i));
    /* What we send must pass what we accept. */
    char detail[256];
    err = walk_body(e->tree, msg + GOV_AVRO_HEADER_LEN, body_len, detail, sizeof(detail));
    if (err != GOV_OK) {
        err = fail(errbuf, errbuf_size, err == GOV_ERR_NOMEM ? err : GOV_ERR_INTERNAL,
                   "encoded body fails validation: %s", detail);
        goto out;
    }
    *buf = msg;
    *len = GOV_AVRO_HEADER_LEN + body_len;
    msg = NULL;
out:
    if (writer != NULL)
        avro_writer_free(writer);
    if (value.iface != NULL)
        avro_value_decref(&value);
    gov_free(msg);
    return err;
}

typedef struct decoder {
    path_t path;
    char *errbuf;
    size_t errbuf_size;
} decoder_t;

static gov_err_t dec_fail(decoder_t *d, gov_err_t err, const char *what) {
    if (d->errbuf != NULL && d->errbuf_size > 0) {
        char where[192];
        snprintf(d->errbuf, d->errbuf_size, "%s: %s",
                 path_format(&d->path, where, sizeof(where)), what);
    }
    return err;
}

static gov_err_t dec_avro(decoder_t *d, int rval) {
    return dec_fail(d, rval == ENOMEM ? GOV_ERR_NOMEM : GOV_ERR_AVRO,
                    "avro-c could not read the value back");
}

/* JSON string of the byte values as code points (see latin1_from_utf8). */
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
    json_t *j = json_stringn(s, k);
    gov_free(s);
    return j;
}

/* Converts a value read by avro-c (from a body the walker accepted) to JSON.
 * *out is a new reference.  Failures here are out of memory or an avro-c
 * disagreement, never bad input. */
static gov_err_t avro_to_json(decoder_t *d, const schema_node_t *n, avro_value_t *src,
                              json_t **out) {
    json_t *j = NULL;
    gov_err_t err = GOV_OK;
    int rval = 0;
    *out = NULL;

    switch (n->kind) {
    case NK_NULL:
        j = json_null();
        break;
    case NK_BOOLEAN: {
        int b = 0;
        if ((rval = avro_value_get_boolean(src, &b)) == 0)
            j = json_boolean(b);
        break;
    }
    case NK_INT: {
        int32_t v = 0;
        if ((rval = avro_value_get_int(src, &v)) == 0)
            j = json_integer(v);
        break;
    }
    case NK_LONG: {
        int64_t v = 0;
        if ((rval = avro_value_get_long(src, &v)) == 0)
            j = json_integer((json_int_t)v);
        break;
    }
    case NK_STRING: {
        const char *s = NULL;
        size_t size = 0;
        /* avro-c's size counts the terminating NUL. */
        if ((rval = avro_value_get_string(src, &s, &size)) == 0)
            j = json_stringn(s ? s : "", size > 0 ? size - 1 : 0);
        break;
    }
    case NK_BYTES: {
        const void *b = NULL;
        size_t size = 0;
        if ((rval = avro_value_get_bytes(src, &b, &size)) == 0)
            j = json_from_bytes(b, size);
        break;
    }
    case NK_ENUM: {
        int v = -1;
        if ((rval = avro_value_get_enum(src, &v)) != 0)
            break;
        if (v < 0 || (size_t)v >= n->count)
            return dec_fail(d, GOV_ERR_INTERNAL, "enum index out of range after validation");
        j = json_string(n->names[v]);
        break;
    }
    case NK_UNION: {
        int disc = -1;
        avro_value_t branch;
        if ((rval = avro_value_get_discriminant(src, &disc)) != 0 ||
            (rval = avro_value_get_current_branch(src, &branch)) != 0)
            break;
        if (disc < 0 || (size_t)disc >= n->count)
            return dec_fail(d, GOV_ERR_INTERNAL, "union index out of range after validation");
        return avro_to_json(d, n->child[disc], &branch, out);
    }
    case NK_ARRAY:
    case NK_MAP:
    case NK_RECORD: {
        size_t count = 0;
        if ((rval = avro_value_get_size(src, &count)) != 0)
            break;
        j = n->kind == NK_ARRAY ? json_array() : json_object();
        if (j == NULL)
            break;
        for (size_t i = 0; i < count && err == GOV_OK; i++) {
            avro_value_t child;
            const char *key = NULL;
            json_t *cj = NULL;
            if ((rval = avro_value_get_by_index(src, i, &child, &key)) != 0)
                break;
            const schema_node_t *cn = n->kind == NK_RECORD ? n->child[i] : n->item;
            if (n->kind == NK_RECORD)
                key = n->names[i];
            if (n->kind == NK_ARRAY)
                path_push_index(&d->path, i);
            else
                path_push_name(&d->path, key ? key : "?");
            err = avro_to_json(d, cn, &child, &cj);
            path_pop(&d->path);
            if (err != GOV_OK)
                break;
            int set = n->kind == NK_ARRAY ? json_array_append_new(j, cj)
                                          : json_object_set_new(j, key ? key : "", cj);
            if (set != 0)
                err = dec_fail(d, GOV_ERR_NOMEM, "out of memory");
        }
        break;
    }
    case NK_FLOAT:
    case NK_DOUBLE:
    case NK_FIXED:
        return dec_fail(d, GOV_ERR_UNSUPPORTED, "type not supported by the codec");
    }
    if (err == GOV_OK && rval != 0)
        err = dec_avro(d, rval);
    if (err == GOV_OK && j == NULL)
        err = dec_fail(d, GOV_ERR_NOMEM, "out of memory");
    if (err != GOV_OK) {
        json_decref(j);
        return err;
    }
    *out = j;
    return GOV_OK;
}

gov_err_t gov_avro_decode(const gov_avro_registry_t *reg, const void *buf,
                          size_t len, json_t **event, const char **name,
                          char *errbuf, size_t errbuf_size) {
    avro_value_t value = {0};
    avro_reader_t reader = NULL;
    gov_err_t err;
    int rval;

    clear_err(errbuf, errbuf_size);
    if (reg == NULL || event == NULL || (buf == NULL && len > 0))
        return fail(errbuf, errbuf_size, GOV_ERR_INVALID_ARG, "NULL argument");
    *event = NULL;
    if (name != NULL)
        *name = NULL;
    const unsigned char *msg = buf;
    if (len < GOV_AVRO_HEADER_LEN)
        return fail(errbuf, errbuf_size, GOV_ERR_PARSE,
                    "message of %zu bytes is shorter than the %d-byte header", len,
                    GOV_AVRO_HEADER_LEN);
    if (msg[0] != GOV_AVRO_MAGIC0 || msg[1] != GOV_AVRO_MAGIC1)
        return fail(errbuf, errbuf_size, GOV_ERR_PARSE,
                    "bad magic %02x %02x (single-object encoding starts c3 01)", msg[0],
                    msg[1]);
    uint64_t fp = 0;
    for (int i = 0; i < 8; i++)
        fp |= (uint64_t)msg[2 + i] << (8 * i);
    const registry_entry_t *e = NULL;
    for (size_t i = 0; i < reg->count && e == NULL; i++)
        if (reg->entries[i].fingerprint == fp)
            e = &reg->entries[i];
    if (e == NULL)
        return fail(errbuf, errbuf_size, GOV_ERR_UNSUPPORTED,
                    "unknown schema fingerprint %016" PRIx64, fp);

    const unsigned char *body = msg + GOV_AVRO_HEADER_LEN;
    size_t body_len = len - GOV_AVRO_HEADER_LEN;
    err = walk_body(e->tree, body, body_len, errbuf, errbuf_size);
    if (err != GOV_OK)
        goto out;

    if ((rval = avro_generic_value_new(e->iface, &value)) != 0) {
        value.iface = NULL;
        err = fail(errbuf, errbuf_size, rval == ENOMEM ? GOV_ERR_NOMEM : GOV_ERR_AVRO,
                   "avro-c could not create a value (error %d)", rval);
        goto out;
    }
    reader = avro_reader_memory((const char *)body, (int64_t)body_len);
    if (reader == NULL) {
        err = fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "avro-c could not create a reader");
        goto out;
    }
    if ((rval = avro_value_read(reader, &value)) != 0) {
        /* The walker accepted the body, so this is avro-c running out of
         * memory or disagreeing with the walker. */
        err = fail(errbuf, errbuf_size, rval == ENOMEM ? GOV_ERR_NOMEM : GOV_ERR_AVRO,
                   "avro-c could not read a validated body (error %d)", rval);
        goto out;
    }
    decoder_t dec = {.errbuf = errbuf, .errbuf_size = errbuf_size};
    err = avro_to_json(&dec, e->tree->root, &value, event);
    if (err != GOV_OK)
        goto out;
    if (name != NULL)
        *name = e->name;
out:
    if (reader != NULL)
        avro_reader_free(reader);
    if (value.iface != NULL)
        avro_value_decref(&value);
    return err;
}
