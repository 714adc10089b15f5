/* gov_avro_schema.c - the Avro schema tree, its Parsing Canonical Form and
 * CRC-64-AVRO.
 *
 * What it is for: the one data model of gov_avro.  A schema text is parsed
 * once with jansson into a compact tree of gov_avro_node_t (kind, fullname,
 * field names, enum symbols, union branches, field defaults); the encoder and
 * the decoder walk that tree and nothing else, so there is no second model
 * to keep in agreement.
 *
 * How it works:
 *  - A named type is one shared node, so a recursive schema is a cyclic
 *    graph; every node lives in the schema's arena and is freed with it.
 *    Names are resolved as the spec says (FULLNAMES; a short reference tries
 *    the enclosing namespace, then the null one, as the Java implementation
 *    does).
 *  - The Parsing Canonical Form is printed from the tree (into a gov_buf), so
 *    the form and the codec cannot disagree about the schema.  CRC-64-AVRO is
 *    the table-driven Rabin fingerprint of the spec over the form's bytes.
 *
 * What it does not do: schema resolution (reader vs writer schema), logical
 * types beyond stripping them (PRIMITIVES), or deciding which types the
 * event codec supports (gov_avro_codec_check does that).
 */
#include "gov_avro_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"

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

const char *const gov_avro_kind_names[] = {
    "null",   "boolean", "int",   "long", "float", "double", "bytes",
    "string", "record",  "enum",  "array", "map",  "union",  "fixed",
};

static void node_free(gov_avro_node_t *n) {
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

void gov_avro_schema_free(gov_avro_schema_t *t) {
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_nodes; i++)
        node_free(t->nodes[i]);
    gov_free(t->nodes);
    gov_free(t);
}

typedef struct parse_ctx {
    gov_avro_schema_t *tree;
    gov_avro_node_t **named;  /* named types defined so far (borrowed from the arena) */
    size_t n_named;
    size_t cap_named;
    char *errbuf;
    size_t errbuf_size;
} parse_ctx_t;

static gov_avro_node_t *node_new(parse_ctx_t *ctx, gov_avro_kind_t kind) {
    gov_avro_schema_t *t = ctx->tree;
    if (t->n_nodes == t->cap_nodes) {
        size_t cap = t->cap_nodes ? t->cap_nodes * 2 : 16;
        gov_avro_node_t **nodes = gov_realloc(t->nodes, cap * sizeof(*nodes));
        if (nodes == NULL)
            return NULL;
        t->nodes = nodes;
        t->cap_nodes = cap;
    }
    gov_avro_node_t *n = gov_calloc(1, sizeof(*n));
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
    return gov_avro_fail(ctx->errbuf, ctx->errbuf_size, GOV_ERR_NOMEM, "out of memory");
}

/* Every error of a schema text that is valid JSON is GOV_ERR_AVRO. */
#define bad_schema(ctx, ...) \
    gov_avro_fail((ctx)->errbuf, (ctx)->errbuf_size, GOV_ERR_AVRO, __VA_ARGS__)

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
    for (int k = 0; k < GOV_AVRO_PRIMITIVE_COUNT; k++)
        if (strcmp(s, gov_avro_kind_names[k]) == 0)
            return k;
    return -1;
}

static gov_avro_node_t *find_named(const parse_ctx_t *ctx, const char *fullname) {
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
                                   const char *ns, gov_avro_node_t **out) {
    gov_avro_node_t *n = NULL;
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
                              unsigned depth, gov_avro_node_t **out);

/* FULLNAMES: a name with a dot is full and its namespace is what precedes the
 * last dot; otherwise an explicit "namespace" (null or "" = the null
 * namespace) applies; otherwise the enclosing one is inherited.  The node is
 * registered before its children are parsed, so they may refer to it. */
static gov_err_t define_named(parse_ctx_t *ctx, json_t *obj, const char *ns,
                              gov_avro_node_t *n, char **own_ns) {
    json_t *jname = json_object_get(obj, "name");
    json_t *jns = json_object_get(obj, "namespace");
    *own_ns = NULL;
    if (!json_is_string(jname))
        return bad_schema(ctx, "a %s needs a string \"name\"", gov_avro_kind_names[n->kind]);
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
        gov_avro_node_t **named = gov_realloc(ctx->named, cap * sizeof(*named));
        if (named == NULL)
            return nomem(ctx);
        ctx->named = named;
        ctx->cap_named = cap;
    }
    ctx->named[ctx->n_named++] = n;
    return GOV_OK;
}

size_t gov_avro_node_find_name(const gov_avro_node_t *n, const char *name) {
    size_t i = 0;
    while (i < n->count && strcmp(n->names[i], name) != 0)
        i++;
    return i;
}

/* Defines the record or enum n and finds its list of fields or symbols
 * (`member`), making room for that many names (and, for a record, types and
 * defaults).  *own_ns is the namespace its children inherit (gov_free). */
static gov_err_t open_list(parse_ctx_t *ctx, json_t *obj, const char *ns, gov_avro_node_t *n,
                           const char *member, json_t **list, char **own_ns) {
    gov_err_t err = define_named(ctx, obj, ns, n, own_ns);
    if (err != GOV_OK)
        return err;
    *list = json_object_get(obj, member);
    if (!json_is_array(*list))
        return bad_schema(ctx, "%s %s needs a \"%s\" array", gov_avro_kind_names[n->kind],
                          n->fullname, member);
    size_t count = json_array_size(*list);
    if (count == 0)
        return GOV_OK;
    n->names = gov_calloc(count, sizeof(*n->names));
    if (n->kind == GOV_AVRO_RECORD) {
        n->child = gov_calloc(count, sizeof(*n->child));
        n->defaults = gov_calloc(count, sizeof(*n->defaults));
    }
    if (n->names == NULL ||
        (n->kind == GOV_AVRO_RECORD && (n->child == NULL || n->defaults == NULL)))
        return nomem(ctx);
    return GOV_OK;
}

/* Takes the i-th field name or symbol of n (`what`): a valid Avro name, not
 * used before in n.  names[0..count) are owned by n from here on. */
static gov_err_t add_name(parse_ctx_t *ctx, gov_avro_node_t *n, size_t i, json_t *jname,
                          const char *what) {
    const char *kind = gov_avro_kind_names[n->kind];
    if (!json_is_string(jname) ||
        !is_simple_name(json_string_value(jname), json_string_length(jname)))
        return bad_schema(ctx, "%s %s: %s %zu is not a valid name", kind, n->fullname, what, i);
    const char *name = json_string_value(jname);
    if (gov_avro_node_find_name(n, name) < n->count)
        return bad_schema(ctx, "%s %s: %s \"%s\" appears twice", kind, n->fullname, what, name);
    n->names[i] = gov_strdup(name);
    if (n->names[i] == NULL)
        return nomem(ctx);
    n->count = i + 1;
    return GOV_OK;
}

static gov_err_t parse_record(parse_ctx_t *ctx, json_t *obj, const char *ns,
                              unsigned depth, gov_avro_node_t *n) {
    char *own_ns = NULL;
    json_t *fields = NULL;
    gov_err_t err = open_list(ctx, obj, ns, n, "fields", &fields, &own_ns);
    for (size_t i = 0; err == GOV_OK && i < json_array_size(fields); i++) {
        json_t *f = json_array_get(fields, i);
        json_t *ftype = json_object_get(f, "type");
        err = add_name(ctx, n, i, json_object_get(f, "name"), "field");
        if (err == GOV_OK && ftype == NULL)
            err = bad_schema(ctx, "record %s: field \"%s\" has no \"type\"", n->fullname,
                             n->names[i]);
        if (err == GOV_OK)
            err = parse_schema(ctx, ftype, own_ns, depth + 1, &n->child[i]);
        if (err == GOV_OK)
            n->defaults[i] = json_incref(json_object_get(f, "default"));
    }
    gov_free(own_ns);
    return err;
}

static gov_err_t parse_enum(parse_ctx_t *ctx, json_t *obj, const char *ns,
                            gov_avro_node_t *n) {
    char *own_ns = NULL;
    json_t *symbols = NULL;
    gov_err_t err = open_list(ctx, obj, ns, n, "symbols", &symbols, &own_ns);
    for (size_t i = 0; err == GOV_OK && i < json_array_size(symbols); i++)
        err = add_name(ctx, n, i, json_array_get(symbols, i), "symbol");
    json_t *def = json_object_get(obj, "default");
    if (err == GOV_OK && def != NULL &&
        (!json_is_string(def) || gov_avro_node_find_name(n, json_string_value(def)) == n->count))
        err = bad_schema(ctx, "enum %s: \"default\" is not one of its symbols", n->fullname);
    gov_free(own_ns);
    return err;
}

/* INTEGERS: the size may be written as a JSON integer or as a string of
 * digits (leading zeros allowed); both print as a plain integer. */
static gov_err_t parse_fixed(parse_ctx_t *ctx, json_t *obj, const char *ns,
                             gov_avro_node_t *n) {
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
                             unsigned depth, gov_avro_node_t *n) {
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
        gov_avro_node_t *b = n->child[i];
        if (b->kind == GOV_AVRO_UNION)
            return bad_schema(ctx, "a union may not directly contain a union");
        for (size_t k = 0; k < i; k++) {
            gov_avro_node_t *o = n->child[k];
            bool named = b->fullname != NULL;
            if (o->kind == b->kind &&
                (!named || strcmp(o->fullname, b->fullname) == 0))
                return bad_schema(ctx, "a union may not hold two branches of type %s",
                                  named ? b->fullname : gov_avro_kind_names[b->kind]);
        }
    }
    if (count == 2) {
        for (size_t i = 0; i < 2; i++) {
            if (n->child[i]->kind == GOV_AVRO_NULL) {
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
                              unsigned depth, gov_avro_node_t **out) {
    if (depth > GOV_AVRO_SCHEMA_MAX_DEPTH)
        return bad_schema(ctx, "schema nested deeper than %u", GOV_AVRO_SCHEMA_MAX_DEPTH);

    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        int k = primitive_kind(s);
        if (k >= 0) {
            *out = node_new(ctx, (gov_avro_kind_t)k);
            return *out ? GOV_OK : nomem(ctx);
        }
        return resolve_reference(ctx, s, ns, out);
    }
    if (json_is_array(j)) {
        gov_avro_node_t *n = node_new(ctx, GOV_AVRO_UNION);
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
        *out = node_new(ctx, (gov_avro_kind_t)k);
        return *out ? GOV_OK : nomem(ctx);
    }
    /* The complex types by their keyword ("union" has none: it is an array). */
    gov_avro_kind_t kind = GOV_AVRO_RECORD;
    while (kind <= GOV_AVRO_FIXED &&
           (kind == GOV_AVRO_UNION || strcmp(type, gov_avro_kind_names[kind]) != 0))
        kind++;
    if (strcmp(type, "error") == 0)
        return bad_schema(ctx, "\"error\" types belong to protocols, not schemas");
    if (kind > GOV_AVRO_FIXED)
        return resolve_reference(ctx, type, ns, out);

    gov_avro_node_t *n = node_new(ctx, kind);
    if (n == NULL)
        return nomem(ctx);
    *out = n;
    switch (kind) {
    case GOV_AVRO_RECORD:
        return parse_record(ctx, j, ns, depth, n);
    case GOV_AVRO_ENUM:
        return parse_enum(ctx, j, ns, n);
    case GOV_AVRO_FIXED:
        return parse_fixed(ctx, j, ns, n);
    case GOV_AVRO_ARRAY:
    case GOV_AVRO_MAP: {
        const char *attr = kind == GOV_AVRO_ARRAY ? "items" : "values";
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
 * (gov_avro_schema_free).  The JSON is borrowed; defaults are referenced, not copied. */
static gov_err_t tree_build(json_t *root, gov_avro_schema_t **out, char *errbuf,
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
    gov_avro_schema_free(ctx.tree);
    gov_free(ctx.named);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Parsing Canonical Form                                                    */

/* STRINGS: names and symbols are plain UTF-8.  They were checked against the
 * Avro name grammar, so nothing needs escaping; quotes and backslashes are
 * still escaped so a future relaxation cannot produce broken JSON. */
static void sb_put_jstring(gov_buf_t *sb, const char *s) {
    gov_buf_put(sb, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            gov_buf_put(sb, "\\", 1);
        gov_buf_put(sb, p, 1);
    }
    gov_buf_put(sb, "\"", 1);
}

/* Prints node in canonical form.  A named type is defined at its first
 * occurrence and referred to by its fullname afterwards; seen[] marks which
 * are printed.  Terminates on recursive schemas because a named node is
 * expanded once. */
static void pcf_print(gov_buf_t *sb, const gov_avro_node_t *n, bool *seen) {
    switch (n->kind) {
    case GOV_AVRO_NULL:
    case GOV_AVRO_BOOLEAN:
    case GOV_AVRO_INT:
    case GOV_AVRO_LONG:
    case GOV_AVRO_FLOAT:
    case GOV_AVRO_DOUBLE:
    case GOV_AVRO_BYTES:
    case GOV_AVRO_STRING:
        sb_put_jstring(sb, gov_avro_kind_names[n->kind]);
        return;
    case GOV_AVRO_UNION:
        gov_buf_puts(sb, "[");
        for (size_t i = 0; i < n->count; i++) {
            if (i > 0)
                gov_buf_puts(sb, ",");
            pcf_print(sb, n->child[i], seen);
        }
        gov_buf_puts(sb, "]");
        return;
    case GOV_AVRO_ARRAY:
    case GOV_AVRO_MAP:
        gov_buf_puts(sb, n->kind == GOV_AVRO_ARRAY ? "{\"type\":\"array\",\"items\":"
                                        : "{\"type\":\"map\",\"values\":");
        pcf_print(sb, n->item, seen);
        gov_buf_puts(sb, "}");
        return;
    case GOV_AVRO_RECORD:
    case GOV_AVRO_ENUM:
    case GOV_AVRO_FIXED:
        break;
    }
    if (seen[n->id]) {
        sb_put_jstring(sb, n->fullname);
        return;
    }
    seen[n->id] = true;
    gov_buf_puts(sb, "{\"name\":");
    sb_put_jstring(sb, n->fullname);
    gov_buf_puts(sb, ",\"type\":");
    sb_put_jstring(sb, gov_avro_kind_names[n->kind]);
    if (n->kind == GOV_AVRO_RECORD) {
        gov_buf_puts(sb, ",\"fields\":[");
        for (size_t i = 0; i < n->count; i++) {
            gov_buf_puts(sb, i > 0 ? ",{\"name\":" : "{\"name\":");
            sb_put_jstring(sb, n->names[i]);
            gov_buf_puts(sb, ",\"type\":");
            pcf_print(sb, n->child[i], seen);
            gov_buf_puts(sb, "}");
        }
        gov_buf_puts(sb, "]}");
    } else if (n->kind == GOV_AVRO_ENUM) {
        gov_buf_puts(sb, ",\"symbols\":[");
        for (size_t i = 0; i < n->count; i++) {
            if (i > 0)
                gov_buf_puts(sb, ",");
            sb_put_jstring(sb, n->names[i]);
        }
        gov_buf_puts(sb, "]}");
    } else {
        char num[32];
        snprintf(num, sizeof(num), ",\"size\":%zu}", n->count);
        gov_buf_puts(sb, num);
    }
}

gov_err_t gov_avro_schema_canonical(const gov_avro_schema_t *t, char **out, char *errbuf,
                                    size_t errbuf_size) {
    gov_buf_t sb;
    gov_buf_init(&sb, 0);
    gov_err_t err = GOV_OK;
    *out = NULL;
    bool *seen = gov_calloc(t->n_nodes, sizeof(*seen));
    if (seen == NULL) {
        err = gov_avro_fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
        goto out;
    }
    pcf_print(&sb, t->root, seen);
    if (gov_buf_finish(&sb, out, NULL) != GOV_OK)
        err = gov_avro_fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
out:
    gov_buf_free(&sb);
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
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_NOMEM, "out of memory");
    if (*out == NULL)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_PARSE,
                             "schema is not JSON: %s (line %d, column %d)", jerr.text,
                             jerr.line, jerr.column);
    return GOV_OK;
}

gov_err_t gov_avro_schema_parse(const char *text, size_t len, gov_avro_schema_t **out,
                                char *errbuf, size_t errbuf_size) {
    json_t *root = NULL;
    *out = NULL;
    gov_err_t err = load_schema_json(text, len, &root, errbuf, errbuf_size);
    if (err == GOV_OK)
        err = tree_build(root, out, errbuf, errbuf_size);
    json_decref(root); /* the tree keeps its own references to defaults */
    return err;
}

gov_err_t gov_avro_canonical_form(const char *schema_json, char **out,
                                  char *errbuf, size_t errbuf_size) {
    gov_avro_schema_t *tree = NULL;
    if (errbuf != NULL && errbuf_size > 0)
        errbuf[0] = '\0';
    if (schema_json == NULL || out == NULL)
        return gov_avro_fail(errbuf, errbuf_size, GOV_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    gov_err_t err = gov_avro_schema_parse(schema_json, strlen(schema_json), &tree, errbuf,
                                          errbuf_size);
    if (err == GOV_OK)
        err = gov_avro_schema_canonical(tree, out, errbuf, errbuf_size);
    gov_avro_schema_free(tree);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Field paths for messages ("signatures[1].signer_id")                      */

void gov_avro_path_push_name(gov_avro_path_t *p, const char *name) {
    if (p->depth < GOV_AVRO_PATH_FRAMES) {
        p->frames[p->depth].name = name;
        p->frames[p->depth].index = 0;
    }
    p->depth++;
}

void gov_avro_path_push_index(gov_avro_path_t *p, size_t index) {
    if (p->depth < GOV_AVRO_PATH_FRAMES) {
        p->frames[p->depth].name = NULL;
        p->frames[p->depth].index = index;
    }
    p->depth++;
}

void gov_avro_path_pop(gov_avro_path_t *p) {
    p->depth--;
}

const char *gov_avro_path_format(const gov_avro_path_t *p, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    size_t shown = p->depth < GOV_AVRO_PATH_FRAMES ? p->depth : GOV_AVRO_PATH_FRAMES;
    for (size_t i = 0; i < shown && len < size; i++) {
        const char *name = p->frames[i].name;
        int w = name ? snprintf(buf + len, size - len, "%s%s", i ? "." : "", name)
                     : snprintf(buf + len, size - len, "[%zu]", p->frames[i].index);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    return shown == 0 ? "(top level)" : buf;
}

gov_err_t gov_avro_path_fail(const gov_avro_path_t *p, size_t offset, char *errbuf,
                             size_t errbuf_size, gov_err_t err, const char *fmt, ...) {
    if (errbuf == NULL || errbuf_size == 0)
        return err;
    char reason[160], where[192];
    GOV_FORMAT_VA(reason, sizeof(reason), fmt);
    const char *path = gov_avro_path_format(p, where, sizeof(where));
    if (offset == GOV_AVRO_NO_OFFSET)
        snprintf(errbuf, errbuf_size, "%s: %s", path, reason);
    else
        snprintf(errbuf, errbuf_size, "%s at body byte %zu (%s)", reason, offset, path);
    return err;
}
