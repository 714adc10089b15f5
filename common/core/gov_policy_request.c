/* gov_policy_request.c - the evaluation request in one bounded, strict pass.
 *
 * What it is for: POST /v1/evaluate, /v1/sessions/start and /v1/authz parse
 * a request on every call, so the parse is the larger part of an
 * evaluation.  Building a jansson tree (gov_canon_parse: a grammar pass,
 * then jansson's own), walking it to validate, and serializing it again
 * for the RFC 8785 digest did the same work three times.  This parser reads
 * the text once, decodes the strings the request uses into one arena,
 * records the members it knows, and writes the RFC 8785 bytes of the
 * validated request straight from those (docs/contracts.md, "Evaluation
 * request"; docs/policy.md, "Request").
 *
 * How it works: one iterative pass over the text with a stack of open
 * containers (at most GOV_CANON_MAX_DEPTH), the grammar of gov_canon_parse
 * (RFC 8259, UTF-8 only, no lone surrogate escapes, no NUL after a token)
 * with its messages and byte offsets.  The refusals jansson used to add
 * (an integer beyond int64 that is not JCS's spelling of a double, a real
 * beyond DBL_MAX, a NUL in a key, a duplicate key) are recorded at their
 * byte offset and the pass goes on, because a grammar error anywhere in the
 * text still comes first, as it did; of those, the one earliest in the text
 * is reported, as jansson stopped at the first.  Duplicate keys are found
 * per object when it closes (sorted when it has many keys), so a body of
 * many keys costs O(k log k), never O(k^2).  Then the depth limit, then the
 * members in the fixed order of the old validator.  So every request gets
 * the same code, the same reason and (but for the byte offset of a jansson
 * refusal) the same message as before; tests/unit/test_policy_parse.c and
 * fuzz_policy_request run the tree parser of old beside this one to show it.
 *
 * What it does not do: keep anything it does not need - an unknown member,
 * a value nested deeper than a request has, are checked and dropped - or
 * allocate per string: the arena is one allocation of len + 1 bytes, which
 * every decoded string with its NUL fits in (a JSON string is never shorter
 * than its decoded bytes plus its two quotes).
 */
#include "gov_policy.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_buf.h"
#include "gov_canon.h"
#include "gov_util.h"

/* A key named in an error message: 32 bytes at most (gov_utf8_shorten). */
#define KEY_SHOWN_MAX 32
/* Keys remembered without allocating: a request has about 20. */
#define KEYS_INLINE 64

/* What a member's value was, as far as validation asks. */
enum { VT_NONE = 0, VT_STRING, VT_OBJECT, VT_OTHER };

/* The request's members, in the order the validator checks them. */
enum { F_TENANT, F_SESSION, F_USER, F_ROLE, F_PROMPT, F_ACTION, F_TOOL, F_METADATA, F_COUNT,
       F_UNKNOWN = F_COUNT };
static const char *const top_names[F_COUNT] = {"tenant", "session_id", "user",  "role",
                                               "prompt", "action",     "tool", "metadata"};
enum { T_NAME, T_CATEGORY, T_COUNT, T_UNKNOWN = T_COUNT };
static const char *const tool_names[T_COUNT] = {"name", "category"};

/* Which object a container is, when it is one the request reads. */
enum { CTX_NONE = 0, CTX_TOP, CTX_TOOL, CTX_METADATA };

typedef struct field {
    int type;
    const char *s;   /* decoded, NUL-terminated, when type is VT_STRING */
    size_t len;
} field_t;

/* A key of an open object: decoded bytes and where it starts in the text. */
typedef struct seen_key {
    const char *k;
    size_t len, pos;
} seen_key_t;

typedef struct level {
    char open;          /* '{' or '[' */
    int ctx;            /* CTX_* */
    size_t key_base;    /* its keys are keys[key_base .. nkeys) */
    int slot;           /* the member being read: F_* / T_* / metadata entry */
} level_t;

typedef struct parse {
    const unsigned char *s;
    size_t n, i;
    /* the first grammar failure: it stops the pass */
    gov_reason_t scan_reason;
    const char *scan_detail;
    /* the earliest refusal jansson made: the pass goes on */
    gov_reason_t sem_reason;
    const char *sem_text;
    size_t sem_pos;
    int nomem;
    char *arena;
    size_t used;
    seen_key_t keys_inline[KEYS_INLINE], *keys;
    size_t nkeys, capkeys;
    int max_depth_seen;
    int top_type;
    field_t top[F_COUNT];
    const char *top_unknown;   /* the bytewise-smallest unknown member */
    field_t tool[T_COUNT];
    const char *tool_unknown;
    gov_policy_meta_t *md;     /* the metadata object's entries, up to md_cap */
    int *md_type;
    size_t nmd, md_cap, md_limit, md_count;
} parse_t;

static int scan_fail(parse_t *p, gov_reason_t reason, const char *detail) {
    p->scan_reason = reason;
    p->scan_detail = detail;
    return -1;
}

/* A refusal jansson would have made at byte pos: the earliest one counts. */
static void sem_fail(parse_t *p, gov_reason_t reason, const char *text, size_t pos) {
    if (p->sem_reason == GOV_REASON_NONE || pos < p->sem_pos) {
        p->sem_reason = reason;
        p->sem_text = text;
        p->sem_pos = pos;
    }
}

static void skip_ws(parse_t *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

/* Appends code point cp as UTF-8 at d. */
static size_t put_utf8(char *d, uint32_t cp) {
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At '"': consumes the string and decodes it into the arena (NUL-terminated,
 * *out, *out_len bytes).  The checks and messages are gov_canon's grammar
 * pass's.  O(string). */
static int read_string(parse_t *p, const char **out, size_t *out_len) {
    char *d = p->arena + p->used, *start = d;
    p->i++;
    for (;;) {
        /* the plain run, copied as is: eight bytes a step, then byte by byte */
        size_t j = p->i + gov_json_plain_run((const char *)p->s + p->i, p->n - p->i, 1);
        while (j < p->n) {
            unsigned char c = p->s[j];
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
                break;
            j++;
        }
        memcpy(d, p->s + p->i, j - p->i);
        d += j - p->i;
        p->i = j;
        if (p->i >= p->n)
            return scan_fail(p, GOV_REASON_SYNTAX, "unterminated string");
        unsigned char c = p->s[p->i];
        if (c == '"') {
            p->i++;
            *d = '\0';
            *out = start;
            *out_len = (size_t)(d - start);
            p->used += (size_t)(d - start) + 1;
            return 0;
        }
        if (c < 0x20)
            return scan_fail(p, GOV_REASON_SYNTAX, "control character in string");
        if (c >= 0x80) {
            size_t len = gov_utf8_seq_len(p->s + p->i, p->n - p->i);
            if (len == 0)
                return scan_fail(p, GOV_REASON_INVALID_UTF8, "malformed UTF-8");
            memcpy(d, p->s + p->i, len);
            d += len;
            p->i += len;
            continue;
        }
        /* a backslash */
        if (p->n - p->i < 2)
            return scan_fail(p, GOV_REASON_SYNTAX, "unterminated string");
        c = p->s[p->i + 1];
        if (c != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *e = c != '\0' ? strchr(from, c) : NULL;
            if (e == NULL)
                return scan_fail(p, GOV_REASON_SYNTAX, "invalid escape");
            *d++ = to[e - from];
            p->i += 2;
            continue;
        }
        uint32_t u;
        gov_reason_t why;
        const char *detail;
        if (gov_canon_u_escape(p->s, p->n, &p->i, &u, &why, &detail) != 0)
            return scan_fail(p, why, detail);
        d += put_utf8(d, u);
    }
}

static int is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

/* A number or literal must not run into letters or digits ("truex", "1.5x"). */
static int token_end(parse_t *p) {
    if (p->i < p->n) {
        unsigned char c = p->s[p->i];
        if (is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
            c == '-' || c == '+' || c == '_')
            return scan_fail(p, GOV_REASON_SYNTAX, "invalid token");
    }
    return 0;
}

/* 1 when the real literal tok[0..n) overflows a double (strtod gives
 * +-HUGE_VAL with ERANGE, what jansson refuses).  Its decimal exponent
 * decides without strtod except within one power of ten of DBL_MAX. */
static int real_overflows(const unsigned char *tok, size_t n) {
    size_t k = tok[0] == '-';
    long long lead = 0; /* position of the first significant digit, as a power of ten */
    int seen = 0, in_frac = 0;
    long long int_digits = 0, frac_zeros = 0;
    for (; k < n && (is_digit(tok[k]) || tok[k] == '.'); k++) {
        if (tok[k] == '.') {
            in_frac = 1;
            continue;
        }
        if (!seen && tok[k] != '0') {
            seen = 1;
            lead = in_frac ? -frac_zeros - 1 : 0;
        }
        if (!in_frac)
            int_digits += seen;
        else if (!seen)
            frac_zeros++;
    }
    if (!seen)
        return 0; /* zero, whatever its exponent */
    if (!in_frac || int_digits > 0)
        lead = int_digits - 1;
    long long e = 0;
    if (k < n) { /* 'e' or 'E' */
        int neg = tok[++k] == '-';
        if (tok[k] == '+' || tok[k] == '-')
            k++;
        for (; k < n; k++)
            if (e < 100000000)
                e = e * 10 + (tok[k] - '0');
        e = neg ? -e : e;
    }
    long long mag = lead + e; /* the value is in [10^mag, 10^(mag+1)) */
    if (mag < 308)
        return 0;
    if (mag > 308)
        return 1;
    char *copy = gov_malloc(n + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, tok, n);
    copy[n] = '\0';
    errno = 0;
    double v = strtod(copy, NULL); /* digits, '.', 'e' only: no locale issue in "C" */
    int over = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
    gov_free(copy);
    return over;
}

/* 1 when the integer literal tok[0..n) is outside int64 (jansson's
 * json_int_t), as strtoll decides. */
static int integer_overflows(const unsigned char *tok, size_t n) {
    int neg = tok[0] == '-';
    size_t nd = n - (size_t)neg;
    if (nd < 19)
        return 0;
    if (nd > 19)
        return 1;
    return memcmp(tok + neg, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0;
}

static int read_number(parse_t *p) {
    const unsigned char *s = p->s;
    size_t n = p->n, start = p->i;
    if (p->i < n && s[p->i] == '-')
        p->i++;
    if (p->i < n && s[p->i] == '0') {
        p->i++;
    } else if (p->i < n && is_digit(s[p->i])) {
        while (p->i < n && is_digit(s[p->i]))
            p->i++;
    } else {
        return scan_fail(p, GOV_REASON_SYNTAX, "invalid number");
    }
    size_t int_end = p->i;
    if (p->i < n && s[p->i] == '.') {
        p->i++;
        if (p->i >= n || !is_digit(s[p->i]))
            return scan_fail(p, GOV_REASON_SYNTAX, "invalid number");
        while (p->i < n && is_digit(s[p->i]))
            p->i++;
    }
    if (p->i < n && (s[p->i] == 'e' || s[p->i] == 'E')) {
        p->i++;
        if (p->i < n && (s[p->i] == '+' || s[p->i] == '-'))
            p->i++;
        if (p->i >= n || !is_digit(s[p->i]))
            return scan_fail(p, GOV_REASON_SYNTAX, "invalid number");
        while (p->i < n && is_digit(s[p->i]))
            p->i++;
    }
    if (token_end(p) != 0)
        return -1;
    size_t len = p->i - start;
    if (p->i == int_end) {
        if (integer_overflows(s + start, len) &&
            !gov_canon_jcs_integer_beyond_int64(s + start, len))
            sem_fail(p, GOV_REASON_NUMBER_OUT_OF_RANGE,
                     s[start] == '-' ? "too big negative integer" : "too big integer", start);
    } else {
        int over = real_overflows(s + start, len);
        if (over < 0)
            p->nomem = 1;
        else if (over)
            sem_fail(p, GOV_REASON_NUMBER_OUT_OF_RANGE, "real number overflow", start);
    }
    return 0;
}

static int read_literal(parse_t *p, const char *lit) {
    size_t l = strlen(lit);
    if (p->n - p->i < l || memcmp(p->s + p->i, lit, l) != 0)
        return scan_fail(p, GOV_REASON_SYNTAX, "invalid token");
    p->i += l;
    return token_end(p);
}

static int key_cmp(const void *a, const void *b) {
    const seen_key_t *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->k, y->k, m);
    if (c != 0)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The object whose keys are keys[base..nkeys) closed: a key seen twice is
 * a duplicate at its second occurrence.  O(k^2) for a few keys, else
 * O(k log k). */
static void check_duplicates(parse_t *p, size_t base) {
    seen_key_t *k = p->keys + base;
    size_t nk = p->nkeys - base;
    if (nk < 2)
        return;
    if (nk <= 16) {
        for (size_t a = 1; a < nk; a++)
            for (size_t b = 0; b < a; b++)
                if (k[a].len == k[b].len && memcmp(k[a].k, k[b].k, k[a].len) == 0) {
                    sem_fail(p, GOV_REASON_DUPLICATE_KEY, "duplicate object key", k[a].pos);
                    break;
                }
        return;
    }
    qsort(k, nk, sizeof *k, key_cmp);
    for (size_t a = 1; a < nk; a++)
        if (k[a].len == k[a - 1].len && memcmp(k[a].k, k[a - 1].k, k[a].len) == 0)
            sem_fail(p, GOV_REASON_DUPLICATE_KEY, "duplicate object key", k[a].pos);
}

static int remember_key(parse_t *p, const char *k, size_t len, size_t pos) {
    if (p->nkeys == p->capkeys) {
        size_t cap = p->capkeys * 2;
        seen_key_t *nk = gov_malloc(cap * sizeof *nk);
        if (nk == NULL) {
            p->nomem = 1;
            return -1;
        }
        memcpy(nk, p->keys, p->nkeys * sizeof *nk);
        if (p->keys != p->keys_inline)
            gov_free(p->keys);
        p->keys = nk;
        p->capkeys = cap;
    }
    p->keys[p->nkeys++] = (seen_key_t){k, len, pos};
    return 0;
}

/* The slot a key names among names[0..count): its index, or count. */
static int slot_of(const char *k, const char *const *names, int count) {
    for (int f = 0; f < count; f++)
        if (strcmp(k, names[f]) == 0)
            return f;
    return count;
}

/* Opens the metadata object: its entries are kept up to the entry limit
 * (more is refused as too large whatever they hold). */
static void metadata_open(parse_t *p) {
    p->nmd = 0;
    p->md_count = 0;
}

/* Room for one more metadata entry (the array doubles, up to the limit);
 * 0 when there is, -1 when memory failed. */
static int metadata_room(parse_t *p) {
    if (p->nmd < p->md_cap)
        return 0;
    size_t cap = p->md_cap ? 2 * p->md_cap : 16;
    if (cap > p->md_limit)
        cap = p->md_limit;
    gov_policy_meta_t *md = gov_realloc(p->md, cap * sizeof *md);
    if (md == NULL) {
        p->nomem = 1;
        return -1;
    }
    p->md = md;
    int *ty = gov_realloc(p->md_type, cap * sizeof *ty);
    if (ty == NULL) {
        p->nomem = 1;
        return -1;
    }
    p->md_type = ty;
    p->md_cap = cap;
    return 0;
}

/* ws "key" ws ':' inside the object `lv`: decodes and remembers the key and
 * picks the slot its value goes to. */
static int read_member_key(parse_t *p, level_t *lv) {
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != '"')
        return scan_fail(p, GOV_REASON_SYNTAX, "object key expected");
    size_t pos = p->i, len;
    const char *k;
    if (read_string(p, &k, &len) != 0)
        return -1;
    if (memchr(k, '\0', len) != NULL)
        sem_fail(p, GOV_REASON_NUL_IN_KEY, "NUL byte in object key not supported", pos);
    if (remember_key(p, k, len, pos) != 0)
        return -1;
    switch (lv->ctx) {
    case CTX_TOP:
        lv->slot = slot_of(k, top_names, F_COUNT);
        if (lv->slot == F_UNKNOWN && (p->top_unknown == NULL || strcmp(k, p->top_unknown) < 0))
            p->top_unknown = k;
        break;
    case CTX_TOOL:
        lv->slot = slot_of(k, tool_names, T_COUNT);
        if (lv->slot == T_UNKNOWN &&
            (p->tool_unknown == NULL || strcmp(k, p->tool_unknown) < 0))
            p->tool_unknown = k;
        break;
    case CTX_METADATA:
        p->md_count++;
        lv->slot = -1;
        if (p->nmd < p->md_limit && metadata_room(p) != 0)
            return -1;
        if (p->nmd < p->md_limit) {
            p->md[p->nmd] = (gov_policy_meta_t){k, NULL, 0};
            p->md_type[p->nmd] = VT_NONE;
            lv->slot = (int)p->nmd++;
        }
        break;
    default:
        break;
    }
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != ':')
        return scan_fail(p, GOV_REASON_SYNTAX, "':' expected");
    p->i++;
    return 0;
}

/* Where the value about to be read goes: sets its type (and string) in the
 * request's fields; returns the context a container value opens. */
static int record_value(parse_t *p, const level_t *parent, int type, const char *s,
                        size_t len) {
    field_t *f = NULL;
    int ctx = CTX_NONE;
    if (parent == NULL) {
        p->top_type = type;
        return type == VT_OBJECT ? CTX_TOP : CTX_NONE;
    }
    if (parent->ctx == CTX_TOP && parent->slot < F_COUNT) {
        f = &p->top[parent->slot];
        if (type == VT_OBJECT)
            ctx = parent->slot == F_TOOL ? CTX_TOOL : parent->slot == F_METADATA ? CTX_METADATA
                                                                                : CTX_NONE;
    } else if (parent->ctx == CTX_TOOL && parent->slot < T_COUNT) {
        f = &p->tool[parent->slot];
    } else if (parent->ctx == CTX_METADATA && parent->slot >= 0) {
        p->md_type[parent->slot] = type;
        p->md[parent->slot].value = s;
        p->md[parent->slot].value_len = len;
        return CTX_NONE;
    }
    if (f != NULL) {
        f->type = type;
        f->s = s;
        f->len = len;
    }
    return ctx;
}

/* The pass: 0 when the text is one JSON value nested at most
 * GOV_CANON_MAX_DEPTH deep, with the request's members recorded; -1 with
 * scan_reason set (or nomem).  O(len), no recursion. */
static int parse_text(parse_t *p) {
    level_t stack[GOV_CANON_MAX_DEPTH];
    int depth = 0;
    for (;;) {
        level_t *parent = depth > 0 ? &stack[depth - 1] : NULL;
        skip_ws(p);
        if (p->i >= p->n)
            return scan_fail(p, GOV_REASON_SYNTAX, "value expected");
        unsigned char c = p->s[p->i];
        if (c == '[' || c == '{') {
            if (depth == GOV_CANON_MAX_DEPTH)
                return scan_fail(p, GOV_REASON_TOO_DEEP, "nesting exceeds the limit");
            int ctx = record_value(p, parent, c == '{' ? VT_OBJECT : VT_OTHER, NULL, 0);
            if (ctx == CTX_METADATA)
                metadata_open(p);
            stack[depth++] = (level_t){(char)c, ctx, p->nkeys, -1};
            if (depth > p->max_depth_seen)
                p->max_depth_seen = depth;
            p->i++;
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == (c == '[' ? ']' : '}')) {
                p->i++;
                depth--;
            } else {
                if (c == '{' && read_member_key(p, &stack[depth - 1]) != 0)
                    return -1;
                continue;
            }
        } else if (c == '"') {
            size_t mark = p->used, len;
            const char *s;
            if (read_string(p, &s, &len) != 0)
                return -1;
            int wanted = parent == NULL || (parent->ctx == CTX_TOP && parent->slot < F_COUNT) ||
                         (parent->ctx == CTX_TOOL && parent->slot < T_COUNT) ||
                         (parent->ctx == CTX_METADATA && parent->slot >= 0);
            if (!wanted)
                p->used = mark; /* a value nobody reads: its bytes are free again */
            record_value(p, parent, VT_STRING, s, len);
        } else if (c == '-' || is_digit(c)) {
            if (read_number(p) != 0)
                return -1;
            record_value(p, parent, VT_OTHER, NULL, 0);
        } else {
            if (read_literal(p, c == 't' ? "true" : c == 'f' ? "false" : "null") != 0)
                return -1;
            record_value(p, parent, VT_OTHER, NULL, 0);
        }
        if (p->nomem)
            return -1;
        /* a value ended: close containers or move to the next element */
        for (;;) {
            skip_ws(p);
            if (depth == 0) {
                if (p->i != p->n)
                    return scan_fail(p, GOV_REASON_TRAILING_GARBAGE, "end of input expected");
                return 0;
            }
            if (p->i >= p->n)
                return scan_fail(p, GOV_REASON_SYNTAX, "unexpected end of input");
            c = p->s[p->i];
            level_t *lv = &stack[depth - 1];
            if ((lv->open == '[' && c == ']') || (lv->open == '{' && c == '}')) {
                p->i++;
                if (lv->open == '{')
                    check_duplicates(p, lv->key_base);
                p->nkeys = lv->key_base;
                depth--;
                continue;
            }
            if (c != ',')
                return scan_fail(p, GOV_REASON_SYNTAX, lv->open == '[' ? "',' or ']' expected"
                                                                       : "',' or '}' expected");
            p->i++;
            if (lv->open == '{' && read_member_key(p, lv) != 0)
                return -1;
            break;
        }
    }
}

/* ---- validation: the old validator's order and messages ------------------------------- */

#define req_fail(why, r, errbuf, errbuf_size, ...) \
    (*(why) = (r), gov_errbuf((errbuf), (errbuf_size), __VA_ARGS__))

/* A string member: absent is allowed when optional.  Checks type, length
 * (min_len..max) and U+0000 (unless allow_nul). */
static gov_err_t check_string(const field_t *f, const char *path, int required, size_t min_len,
                              size_t max, int allow_nul, gov_reason_t *why, char *errbuf,
                              size_t errbuf_size) {
    if (f->type == VT_NONE) {
        if (!required)
            return GOV_OK;
        req_fail(why, GOV_REASON_MISSING_FIELD, errbuf, errbuf_size, "%s is required", path);
        return GOV_ERR_PARSE;
    }
    if (f->type != VT_STRING) {
        req_fail(why, GOV_REASON_INVALID_TYPE, errbuf, errbuf_size, "%s must be a string", path);
        return GOV_ERR_PARSE;
    }
    if (f->len > max) {
        req_fail(why, GOV_REASON_TOO_LARGE, errbuf, errbuf_size, "%s is %zu bytes (limit %zu)",
                 path, f->len, max);
        return GOV_ERR_TOO_LARGE;
    }
    if (f->len < min_len) {
        req_fail(why, GOV_REASON_INVALID_VALUE, errbuf, errbuf_size, "%s must not be empty", path);
        return GOV_ERR_PARSE;
    }
    if (!allow_nul && memchr(f->s, '\0', f->len) != NULL) {
        req_fail(why, GOV_REASON_INVALID_VALUE, errbuf, errbuf_size,
                 "%s must not contain U+0000", path);
        return GOV_ERR_PARSE;
    }
    return GOV_OK;
}

static gov_err_t unknown_member(const char *worst, const char *prefix, gov_reason_t *why,
                                char *errbuf, size_t errbuf_size) {
    char key[48];
    gov_utf8_shorten(key, sizeof key, worst, KEY_SHOWN_MAX);
    req_fail(why, GOV_REASON_UNKNOWN_FIELD, errbuf, errbuf_size, "%s%s is not a known member",
             prefix, key);
    return GOV_ERR_PARSE;
}

static gov_err_t check_metadata(const parse_t *p, const gov_policy_limits_t *lim,
                                gov_reason_t *why, char *errbuf, size_t errbuf_size) {
    size_t smax = lim->max_string_bytes;
    if (p->md_count > lim->max_metadata_entries) {
        req_fail(why, GOV_REASON_TOO_LARGE, errbuf, errbuf_size,
                 "metadata has %zu entries (limit %zu)", p->md_count, lim->max_metadata_entries);
        return GOV_ERR_TOO_LARGE;
    }
    /* Of several bad entries the bytewise-smallest key is named, so the
     * error does not depend on the member order. */
    enum { MD_OK, MD_EMPTY_KEY, MD_LONG_KEY, MD_TYPE, MD_LONG, MD_NUL } md_why = MD_OK;
    const char *bad = NULL;
    for (size_t i = 0; i < p->nmd; i++) {
        const gov_policy_meta_t *m = &p->md[i];
        size_t klen = strlen(m->key);
        int w = MD_OK;
        if (klen == 0)
            w = MD_EMPTY_KEY;
        else if (klen > smax)
            w = MD_LONG_KEY;
        else if (p->md_type[i] != VT_STRING)
            w = MD_TYPE;
        else if (m->value_len > smax)
            w = MD_LONG;
        else if (memchr(m->value, '\0', m->value_len) != NULL)
            w = MD_NUL;
        if (w != MD_OK && (bad == NULL || strcmp(m->key, bad) < 0)) {
            bad = m->key;
            md_why = w;
        }
    }
    if (bad == NULL)
        return GOV_OK;
    char key[48];
    gov_utf8_shorten(key, sizeof key, bad, KEY_SHOWN_MAX);
    switch (md_why) {
    case MD_EMPTY_KEY:
        req_fail(why, GOV_REASON_INVALID_VALUE, errbuf, errbuf_size,
                 "metadata keys must not be empty");
        return GOV_ERR_PARSE;
    case MD_LONG_KEY:
        req_fail(why, GOV_REASON_TOO_LARGE, errbuf, errbuf_size,
                 "metadata key %s is longer than %zu bytes", key, smax);
        return GOV_ERR_TOO_LARGE;
    case MD_TYPE:
        req_fail(why, GOV_REASON_INVALID_TYPE, errbuf, errbuf_size, "metadata.%s must be a string",
                 key);
        return GOV_ERR_PARSE;
    case MD_LONG:
        req_fail(why, GOV_REASON_TOO_LARGE, errbuf, errbuf_size,
                 "metadata.%s is longer than %zu bytes", key, smax);
        return GOV_ERR_TOO_LARGE;
    default:
        req_fail(why, GOV_REASON_INVALID_VALUE, errbuf, errbuf_size,
                 "metadata.%s must not contain U+0000", key);
        return GOV_ERR_PARSE;
    }
}

static gov_err_t validate(const parse_t *p, const gov_policy_limits_t *lim, gov_reason_t *why,
                          char *errbuf, size_t errbuf_size) {
    size_t smax = lim->max_string_bytes;
    gov_err_t rc;
    if (p->top_type != VT_OBJECT) {
        req_fail(why, GOV_REASON_INVALID_TYPE, errbuf, errbuf_size,
                 "the request must be a JSON object");
        return GOV_ERR_PARSE;
    }
    if (p->top_unknown != NULL)
        return unknown_member(p->top_unknown, "", why, errbuf, errbuf_size);
    if ((rc = check_string(&p->top[F_TENANT], "tenant", 1, 1, GOV_TENANT_MAX, 0, why, errbuf,
                           errbuf_size)) != GOV_OK)
        return rc;
    if (!gov_tenant_valid(p->top[F_TENANT].s, p->top[F_TENANT].len)) {
        req_fail(why, GOV_REASON_INVALID_TENANT, errbuf, errbuf_size,
                 "tenant must be 1-64 characters of [A-Za-z0-9._-], not starting with . or -");
        return GOV_ERR_PARSE;
    }
    if ((rc = check_string(&p->top[F_SESSION], "session_id", 1, 1, smax, 0, why, errbuf,
                           errbuf_size)) != GOV_OK ||
        (rc = check_string(&p->top[F_USER], "user", 1, 1, smax, 0, why, errbuf, errbuf_size)) !=
            GOV_OK ||
        (rc = check_string(&p->top[F_ROLE], "role", 1, 1, smax, 0, why, errbuf, errbuf_size)) !=
            GOV_OK ||
        (rc = check_string(&p->top[F_PROMPT], "prompt", 1, 0, lim->max_prompt_bytes, 1, why,
                           errbuf, errbuf_size)) != GOV_OK ||
        (rc = check_string(&p->top[F_ACTION], "action", 0, 1, smax, 0, why, errbuf,
                           errbuf_size)) != GOV_OK)
        return rc;
    if (p->top[F_TOOL].type != VT_NONE) {
        if (p->top[F_TOOL].type != VT_OBJECT) {
            req_fail(why, GOV_REASON_INVALID_TYPE, errbuf, errbuf_size, "tool must be an object");
            return GOV_ERR_PARSE;
        }
        if (p->tool_unknown != NULL)
            return unknown_member(p->tool_unknown, "tool.", why, errbuf, errbuf_size);
        if ((rc = check_string(&p->tool[T_NAME], "tool.name", 1, 1, smax, 0, why, errbuf,
                               errbuf_size)) != GOV_OK ||
            (rc = check_string(&p->tool[T_CATEGORY], "tool.category", 1, 1, smax, 0, why, errbuf,
                               errbuf_size)) != GOV_OK)
            return rc;
    }
    if (p->top[F_METADATA].type != VT_NONE) {
        if (p->top[F_METADATA].type != VT_OBJECT) {
            req_fail(why, GOV_REASON_INVALID_TYPE, errbuf, errbuf_size,
                     "metadata must be an object of strings");
            return GOV_ERR_PARSE;
        }
        return check_metadata(p, lim, why, errbuf, errbuf_size);
    }
    return GOV_OK;
}

/* ---- the digest: RFC 8785 bytes written from the fields ------------------------------ */

static int meta_cmp_bytes(const void *a, const void *b) {
    return strcmp(((const gov_policy_meta_t *)a)->key, ((const gov_policy_meta_t *)b)->key);
}

static int meta_cmp_jcs(const void *a, const void *b) {
    const gov_policy_meta_t *x = *(const gov_policy_meta_t *const *)a;
    const gov_policy_meta_t *y = *(const gov_policy_meta_t *const *)b;
    return gov_canon_utf16_cmp(x->key, strlen(x->key), y->key, strlen(y->key));
}

static void put_member(gov_buf_t *b, int *first, const char *name, const char *s, size_t len) {
    if (!*first)
        gov_buf_putc(b, ',');
    *first = 0;
    gov_buf_putc(b, '"');
    gov_buf_puts(b, name);
    gov_buf_puts(b, "\":");
    gov_buf_put_json_string(b, s, len);
}

/* SHA-256 of the request's RFC 8785 form: members in UTF-16 order (the
 * fixed names are ASCII, so their order is fixed; metadata keys are
 * sorted), strings with JCS's escaping.  The request holds only strings
 * and these two objects, so no number is ever written. */
static gov_err_t request_digest(const parse_t *p, gov_policy_request_t *r) {
    gov_buf_t b;
    const gov_policy_meta_t *order_inline[16], **order = order_inline;
    unsigned char md[GOV_SHA256_LEN];
    gov_err_t rc;
    int first = 1;
    gov_buf_init(&b, 0);
    gov_buf_reserve(&b, p->n + 64);
    gov_buf_putc(&b, '{');
    if (r->action)
        put_member(&b, &first, "action", r->action, strlen(r->action));
    if (p->top[F_METADATA].type == VT_OBJECT) {
        if (r->nmetadata > 16 && (order = gov_malloc(r->nmetadata * sizeof *order)) == NULL) {
            gov_buf_free(&b);
            return GOV_ERR_NOMEM;
        }
        for (size_t i = 0; i < r->nmetadata; i++)
            order[i] = &r->metadata[i];
        qsort(order, r->nmetadata, sizeof *order, meta_cmp_jcs);
        if (!first)
            gov_buf_putc(&b, ',');
        first = 0;
        gov_buf_puts(&b, "\"metadata\":{");
        for (size_t i = 0; i < r->nmetadata; i++) {
            if (i > 0)
                gov_buf_putc(&b, ',');
            gov_buf_put_json_string(&b, order[i]->key, strlen(order[i]->key));
            gov_buf_putc(&b, ':');
            gov_buf_put_json_string(&b, order[i]->value, order[i]->value_len);
        }
        gov_buf_putc(&b, '}');
        if (order != order_inline)
            gov_free(order);
    }
    put_member(&b, &first, "prompt", r->prompt, r->prompt_len);
    put_member(&b, &first, "role", r->role, strlen(r->role));
    put_member(&b, &first, "session_id", r->session_id, strlen(r->session_id));
    put_member(&b, &first, "tenant", r->tenant, strlen(r->tenant));
    if (r->tool_name) {
        gov_buf_puts(&b, ",\"tool\":{\"category\":");
        gov_buf_put_json_string(&b, r->tool_category, strlen(r->tool_category));
        gov_buf_puts(&b, ",\"name\":");
        gov_buf_put_json_string(&b, r->tool_name, strlen(r->tool_name));
        gov_buf_putc(&b, '}');
    }
    put_member(&b, &first, "user", r->user, strlen(r->user));
    gov_buf_putc(&b, '}');
    if ((rc = b.err) == GOV_OK && (rc = gov_sha256(b.data, b.len, md)) == GOV_OK)
        gov_hex_encode(md, sizeof md, r->input_digest);
    gov_buf_free(&b);
    return rc;
}

/* ---- the entry point ------------------------------------------------------------------------ */

gov_policy_limits_t gov_policy_limits_default(void) {
    gov_policy_limits_t l = {
        .max_bytes = 2 * 1024 * 1024,
        .max_depth = 4,
        .max_prompt_bytes = 1024 * 1024,
        .max_string_bytes = 256,
        .max_metadata_entries = 64,
    };
    return l;
}

void gov_policy_request_clear(gov_policy_request_t *req) {
    if (req == NULL)
        return;
    gov_free(req->mem);
    gov_free(req->metadata);
    memset(req, 0, sizeof *req);
}

const char *gov_policy_request_metadata(const gov_policy_request_t *req, const char *key) {
    size_t lo = 0, hi = req->nmetadata;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(req->metadata[mid].key, key);
        if (c == 0)
            return req->metadata[mid].value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

gov_err_t gov_policy_request_parse(const char *text, size_t len, const gov_policy_limits_t *limits,
                                   gov_policy_request_t *req, gov_reason_t *reason, char *errbuf,
                                   size_t errbuf_size) {
    gov_policy_limits_t deflim = gov_policy_limits_default();
    const gov_policy_limits_t *lim = limits ? limits : &deflim;
    gov_reason_t reason_sink; /* where a caller that passed no reason pointer gets it */
    gov_reason_t *why = reason ? reason : &reason_sink;
    gov_err_t rc = GOV_OK;
    parse_t p;

    *why = GOV_REASON_NONE;
    if (errbuf != NULL && errbuf_size > 0)
        errbuf[0] = '\0';
    if (req == NULL || text == NULL) {
        req_fail(why, GOV_REASON_INVALID_ARG, errbuf, errbuf_size, "NULL argument");
        return GOV_ERR_INVALID_ARG;
    }
    memset(req, 0, sizeof *req);
    if (len > lim->max_bytes) {
        req_fail(why, GOV_REASON_TOO_LARGE, errbuf, errbuf_size,
                 "the request is %zu bytes (limit %zu)", len, lim->max_bytes);
        return GOV_ERR_TOO_LARGE;
    }
    memset(&p, 0, offsetof(parse_t, keys_inline));
    memset(&p.keys, 0, sizeof p - offsetof(parse_t, keys));
    p.s = (const unsigned char *)text;
    p.n = len;
    p.keys = p.keys_inline;
    p.capkeys = KEYS_INLINE;
    p.md_limit = lim->max_metadata_entries;
    p.arena = gov_malloc(len + 1);
    if (p.arena == NULL) {
        p.nomem = 1;
        goto out;
    }
    if (parse_text(&p) != 0) {
        if (p.nomem)
            goto out;
        int deep = p.scan_reason == GOV_REASON_TOO_DEEP;
        *why = p.scan_reason;
        if (deep)
            gov_errbuf(errbuf, errbuf_size, "nesting exceeds %d (byte %zu)", GOV_CANON_MAX_DEPTH,
                       p.i);
        else
            gov_errbuf(errbuf, errbuf_size, "%s (byte %zu)", p.scan_detail, p.i);
        rc = deep ? GOV_ERR_TOO_LARGE : GOV_ERR_PARSE;
        goto out;
    }
    if (p.nomem)
        goto out;
    if (p.sem_reason != GOV_REASON_NONE) {
        *why = p.sem_reason;
        gov_errbuf(errbuf, errbuf_size, "%s (byte %zu)", p.sem_text, p.sem_pos);
        rc = GOV_ERR_PARSE;
        goto out;
    }
    if (p.max_depth_seen > lim->max_depth) {
        req_fail(why, GOV_REASON_TOO_DEEP, errbuf, errbuf_size, "the request nests deeper than %d",
                 lim->max_depth);
        rc = GOV_ERR_TOO_LARGE;
        goto out;
    }
    if ((rc = validate(&p, lim, why, errbuf, errbuf_size)) != GOV_OK)
        goto out;
    req->mem = p.arena;
    p.arena = NULL;
    req->tenant = p.top[F_TENANT].s;
    req->session_id = p.top[F_SESSION].s;
    req->user = p.top[F_USER].s;
    req->role = p.top[F_ROLE].s;
    req->prompt = p.top[F_PROMPT].s;
    req->prompt_len = p.top[F_PROMPT].len;
    req->action = p.top[F_ACTION].s;
    req->tool_name = p.top[F_TOOL].type == VT_OBJECT ? p.tool[T_NAME].s : NULL;
    req->tool_category = p.top[F_TOOL].type == VT_OBJECT ? p.tool[T_CATEGORY].s : NULL;
    if (p.top[F_METADATA].type == VT_OBJECT) {
        req->metadata = p.md;
        req->nmetadata = p.nmd;
        p.md = NULL;
        if (req->nmetadata > 1)
            qsort(req->metadata, req->nmetadata, sizeof *req->metadata, meta_cmp_bytes);
    }
    if ((rc = request_digest(&p, req)) != GOV_OK) {
        if (rc == GOV_ERR_NOMEM) {
            p.nomem = 1;
        } else {
            req_fail(why, GOV_REASON_INTERNAL, errbuf, errbuf_size, "SHA-256 failed");
        }
    }
out:
    if (p.nomem) {
        req_fail(why, GOV_REASON_NOMEM, errbuf, errbuf_size, "out of memory");
        rc = GOV_ERR_NOMEM;
    }
    gov_free(p.arena);
    gov_free(p.md);
    gov_free(p.md_type);
    if (p.keys != p.keys_inline)
        gov_free(p.keys);
    if (rc != GOV_OK)
        gov_policy_request_clear(req);
    return rc;
}
