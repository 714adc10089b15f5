/* gov_canon.h - the two canonical byte forms a signed constitution is hashed under.
 *
 * A constitution bundle (docs/contracts.md) carries a checksum: the hex
 * digest of canonical(document).  Two canonicalizations are in use and both
 * must be byte-exact with the signer's, or a valid signature fails to verify:
 *
 *   GOV_CANON_JCS        RFC 8785, the JSON Canonicalization Scheme: object
 *                        keys sorted by UTF-16 code units, minimal string
 *                        escaping with literal UTF-8, every number as an
 *                        IEEE-754 double in ECMAScript Number::toString form.
 *   GOV_CANON_SOMABRAIN  what SomaBrain signs today: Python 3's
 *                        json.dumps(doc, sort_keys=True, separators=(",", ":"))
 *                        with ensure_ascii=True: keys sorted by code point,
 *                        everything outside ' '..'~' escaped as lowercase
 *                        \uXXXX (surrogate pairs above U+FFFF, DEL included),
 *                        integers exact, reals in Python float repr.
 *
 * The module is pure: no I/O, no globals, no locale dependence (numbers are
 * formatted and re-read without a decimal separator, so LC_NUMERIC does not
 * matter).  Untrusted text goes through gov_canon_parse, which applies the
 * bounds; the serializers also bound nesting depth, so a document built in
 * code (or a cyclic one) cannot recurse without limit.
 *
 * What jansson can represent decides what we accept.  Integers are json_int_t
 * (64-bit): jansson 2.14 refuses an integer literal outside that range with
 * json_error_numeric_overflow ("too big integer") instead of falling back to a
 * real, and a real literal beyond DBL_MAX the same way ("real number
 * overflow"); we report both as GOV_ERR_UNSUPPORTED "number_out_of_range".
 * One kind of integer literal beyond json_int_t is read, as a real: the
 * exact spelling JCS gives an integral double with 2^63 <= |x| < 1e21
 * ("9223372036854776000" for 2^63), so that JCS output always parses back.
 * Any other such literal ("9223372036854775808") would be rounded to become
 * a double and is refused instead.
 * Python would accept them (as a bignum, or as Infinity, which json.dumps then
 * writes as the non-JSON token Infinity).  Underflowing reals (1e-400) parse as
 * 0.0 / -0.0 in both.  Lone surrogate escapes ("\ud800"), which Python
 * accepts, jansson rejects as a parse error; so are duplicate keys (Python
 * keeps the last one) and NUL in object keys.  A raw NUL byte after a number
 * or literal, which jansson 2.14 alone would silently drop ("[1\0,2]" loads as
 * [1,2]), is refused by our own grammar pass, as RFC 8259 and Python refuse it.
 *
 * Thread-safety: every function is reentrant and thread-safe; documents passed
 * in are only read (jansson reference counts are not touched).
 */
#ifndef GOV_CANON_H
#define GOV_CANON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gov_err.h"
#include "gov_hash.h"
#include "gov_reason.h"

/* Deepest nesting of arrays/objects accepted by parse and serialize: the
 * top-level container is depth 1. */
#define GOV_CANON_MAX_DEPTH 64
/* hex_out size for gov_canon_checksum: the longest registered digest's hex
 * (SHA3-512, 128) + NUL. */
#define GOV_CANON_HEX_MAX GOV_HASH_HEX_MAX
/* Buffer size for the number formatters (longest output is 25 chars + NUL:
 * "-0.0000033333333333333333"). */
#define GOV_CANON_NUMBUF 32

typedef enum { GOV_CANON_JCS, GOV_CANON_SOMABRAIN } gov_canon_t;

/* Parses untrusted JSON text text[0..len) (no NUL terminator needed) into a new
 * reference at *out, which the caller json_decref()s.  Any JSON value is
 * accepted at the top level.  The caller bounds len before calling; this
 * function checks the grammar and bounds nesting at GOV_CANON_MAX_DEPTH in
 * its own allocation-free pass before jansson sees the text, so the reason
 * codes do not depend on jansson's error strings (and an allocation failure
 * inside jansson, which jansson 2.14 reports as a syntax error, is told apart).
 *
 * Returns GOV_OK (*reason GOV_REASON_NONE), or, with *out = NULL, *reason
 * (may be NULL) saying which rule refused the text and the detail with its
 * byte offset in errbuf (may be NULL; no "reason: " prefix):
 *   GOV_ERR_PARSE        GOV_REASON_SYNTAX, _TRAILING_GARBAGE, _DUPLICATE_KEY,
 *                        _INVALID_UTF8 (malformed UTF-8, lone surrogate escapes)
 *   GOV_ERR_TOO_LARGE    GOV_REASON_TOO_DEEP
 *   GOV_ERR_UNSUPPORTED  GOV_REASON_NUMBER_OUT_OF_RANGE, _NUL_IN_KEY
 *   GOV_ERR_NOMEM        GOV_REASON_NOMEM
 *   GOV_ERR_INVALID_ARG  GOV_REASON_INVALID_ARG
 * Cost: O(len), two passes (three, and a copy of the text, when it holds an
 * integer beyond json_int_t in JCS's spelling); each 19-21 digit integer
 * literal costs up to five strtod more. */
gov_err_t gov_canon_parse(const char *text, size_t len, json_t **out, gov_reason_t *reason,
                          char *errbuf, size_t errbuf_size);

/* Writes the canonical bytes of doc (borrowed, not modified) into a new
 * NUL-terminated buffer *out of *out_len bytes (the NUL not counted); the
 * caller gov_free()s it.  The output never contains a NUL byte.
 *
 * Returns GOV_OK (*reason GOV_REASON_NONE), or, with *out = NULL, *reason
 * (may be NULL) saying why and the detail alone in errbuf (may be NULL; no
 * "reason: " prefix):
 *   GOV_ERR_TOO_LARGE    GOV_REASON_TOO_DEEP: nesting deeper than
 *                        GOV_CANON_MAX_DEPTH
 *   GOV_ERR_UNSUPPORTED  GOV_REASON_INVALID_UTF8: a string or key that is not
 *                        valid UTF-8 (only possible for values built with
 *                        jansson's *_nocheck functions);
 *                        GOV_REASON_NON_FINITE_NUMBER: a NaN or infinite real
 *   GOV_ERR_NOMEM        GOV_REASON_NOMEM
 *   GOV_ERR_INVALID_ARG  GOV_REASON_INVALID_ARG (NULL argument, unknown kind)
 *   GOV_ERR_INTERNAL     GOV_REASON_INTERNAL (a jansson type it does not know)
 * Both forms round-trip: gov_canon_parse reads any output back, every
 * number as the same double (JCS) or the same integer or real (SomaBrain),
 * and serializing that again gives the same bytes.
 * Cost: O(size of output + sum over objects of k log k key comparisons). */
gov_err_t gov_canon_serialize(const json_t *doc, gov_canon_t kind, char **out,
                              size_t *out_len, gov_reason_t *reason, char *errbuf,
                              size_t errbuf_size);

/* Lowercase hex digest of gov_canon_serialize(doc, kind) into hex_out, which
 * must hold GOV_CANON_HEX_MAX bytes.  hash_alg is a name gov_hash_by_name
 * knows ("sha3-512": 128 hex chars, "sha256": 64).  doc is borrowed.
 * Errors, reported as gov_canon_serialize reports them, are its own plus:
 *   GOV_ERR_UNSUPPORTED  GOV_REASON_UNSUPPORTED_HASH_ALG: any other hash_alg
 *   GOV_ERR_CRYPTO       GOV_REASON_CRYPTO: the digest failed
 *   GOV_ERR_INVALID_ARG  GOV_REASON_INVALID_ARG: NULL hash_alg or hex_out */
gov_err_t gov_canon_checksum(const json_t *doc, gov_canon_t kind, const char *hash_alg,
                             char *hex_out, gov_reason_t *reason, char *errbuf,
                             size_t errbuf_size);

/* Maps "jcs" / "somabrain-json" to the enum.  Returns 0, or -1 for any other
 * name (or NULL), leaving *out untouched. */
int gov_canon_from_name(const char *name, gov_canon_t *out);

/* The wire name of kind ("jcs", "somabrain-json"); "unknown" for others.
 * Static storage, never NULL. */
const char *gov_canon_name(gov_canon_t kind);

/* ECMAScript Number::toString(x) (ECMA-262 7.1.12.1, as RFC 8785 3.2.2.3
 * requires): shortest round-trip digits, fixed notation for 1e-6 <= |x| < 1e21,
 * otherwise d[.ddd]e+N / e-N; -0 and 0 give "0".  Writes a NUL-terminated
 * string into buf and returns its length, or -1 (buf = "") when x is NaN or
 * infinite, which have no JSON form. */
int gov_canon_format_es6(double x, char buf[GOV_CANON_NUMBUF]);

/* Python 3 repr(x) for a float: shortest round-trip digits; exponent form
 * (at least two exponent digits: 1e-05, 1e+16) when the decimal exponent is
 * < -4 or >= 16, otherwise fixed with ".0" appended to integral values;
 * -0.0 gives "-0.0".  Returns the length, or -1 (buf = "") for NaN/infinity,
 * which json.dumps would write as the non-JSON tokens NaN/Infinity. */
int gov_canon_format_pyrepr(double x, char buf[GOV_CANON_NUMBUF]);

/* At a JSON "\\u" escape (s[*i] is the backslash, n the text's length):
 * decodes it - a surrogate pair as one code point - into *cp and moves *i
 * past it; 0.  -1 with *reason and *detail as gov_canon_parse reports them
 * (GOV_REASON_SYNTAX "invalid \\u escape", GOV_REASON_INVALID_UTF8 "lone
 * trail/lead surrogate escape"), *i where the grammar pass stops.  O(1). */
int gov_canon_u_escape(const unsigned char *s, size_t n, size_t *i, uint32_t *cp,
                       gov_reason_t *reason, const char **detail);

/* RFC 8785's member order: compares the UTF-8 strings a[0..alen) and
 * b[0..blen) (valid UTF-8) by their UTF-16 code units.  <0, 0, >0.
 * O(min(alen, blen)). */
int gov_canon_utf16_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* 1 when tok[0..n), an integer literal ('-'? digits, no fraction or
 * exponent) beyond int64, is exactly JCS's spelling of a double
 * ("9223372036854776000" for 2^63): gov_canon_parse reads such a literal
 * as that double; any other integer beyond int64 is refused
 * (number_out_of_range).  At most five strtod. */
int gov_canon_jcs_integer_beyond_int64(const unsigned char *tok, size_t n);

#endif /* GOV_CANON_H */
