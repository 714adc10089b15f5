#!/usr/bin/env python3
"""Generates the canonicalization vectors that tests/unit/test_canon.c checks.

The expected bytes come from implementations that share no code with
common/core/gov_canon.c:

  somabrain.out  CPython's own json.dumps(doc, sort_keys=True,
                 separators=(",", ":")) - the definition of "somabrain-json".
  jcs.out        the PyPI package rfc8785 (Trail of Bits), fed the document
                 with every number read as an IEEE-754 double (RFC 8785 3.2.2:
                 JSON numbers are doubles; parse_int=float rounds an integer
                 literal exactly as a JavaScript JSON.parse does).
                 With --canonicalize-js, every jcs.out is also produced by
                 node's JSON.parse + the npm package "canonicalize" and the
                 run fails unless the two agree byte for byte.
  checksums      hashlib's SHA3-512 and SHA-256 of both outputs.
  numbers.txt    for single doubles: ECMAScript Number::toString (rfc8785,
                 cross-checked against node's String(x) with --node) and
                 Python's repr().

Usage (from the repository root):
  pip install rfc8785
  python3 tests/vectors/canon/gen.py [--canonicalize-js PATH/TO/canonicalize/lib/canonicalize.js]

The output is deterministic for a given Python version (seeded PRNG); the
committed files are the vectors, this script is how they were made.
"""
import argparse
import hashlib
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys

import rfc8785

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 8785
MAX_DEPTH = 64  # GOV_CANON_MAX_DEPTH

rng = random.Random(SEED)


# ---- values -----------------------------------------------------------------

def f64(bits):
    return struct.unpack(">d", struct.pack(">Q", bits))[0]


def bits_of(x):
    return struct.unpack(">Q", struct.pack(">d", x))[0]


def random_bits_double():
    while True:
        x = f64(rng.getrandbits(64))
        if math.isfinite(x):
            return x


def random_decimal_double():
    digits = rng.randint(1, 17)
    mant = rng.randint(10 ** (digits - 1), 10 ** digits - 1)
    exp = rng.randint(-30, 30)
    x = float(f"{mant}e{exp}")
    return -x if rng.random() < 0.3 else x


def random_subnormal():
    return f64(rng.randint(1, (1 << 52) - 1)) * (1 if rng.random() < 0.7 else -1)


def neighbours(x):
    return [math.nextafter(x, -math.inf), x, math.nextafter(x, math.inf)]


BOUNDARY_FLOATS = []
for anchor in (1e21, 1e-6, 1e-7, 1e16, 1e17, 1e-4, 1e-5, 9007199254740992.0, 2.0 ** 63,
               1e23, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 0.5,
               1.0, 333333333.3333333, 1e15, 123456789012345680.0):
    for v in neighbours(anchor):
        if math.isfinite(v) and v != 0.0:
            BOUNDARY_FLOATS += [v, -v]
BOUNDARY_FLOATS += [0.0, -0.0, 100.0, 1e300, 1.5e300, 1e-300, 4.35, 0.000001, 1e-7,
                    9999999999999998.0, 1e+16, 12345678901234567890.0]

BOUNDARY_INTS = []
for anchor in (2 ** 53, -(2 ** 53), 2 ** 63 - 1, -(2 ** 63), 2 ** 62, -(2 ** 62), 10 ** 15,
               10 ** 16, 10 ** 18, 2 ** 63 - 512, 2 ** 63 - 513, 2 ** 63 - 1024, 0):
    for d in (-3, -2, -1, 0, 1, 2, 3):
        v = anchor + d
        if -(2 ** 63) <= v <= 2 ** 63 - 1:
            BOUNDARY_INTS.append(v)


def random_int():
    kind = rng.random()
    if kind < 0.3:
        return rng.randint(-1000, 1000)
    if kind < 0.6:
        return rng.randint(-(2 ** 63), 2 ** 63 - 1)
    if kind < 0.8:
        return rng.choice([1, -1]) * (2 ** 53 + rng.randint(-64, 64))
    return rng.choice(BOUNDARY_INTS)


def random_float():
    kind = rng.random()
    if kind < 0.3:
        return random_bits_double()
    if kind < 0.6:
        return random_decimal_double()
    if kind < 0.7:
        return random_subnormal()
    if kind < 0.8:
        return float(rng.randint(-(10 ** 6), 10 ** 6))  # integral: "100.0" vs "100"
    return rng.choice(BOUNDARY_FLOATS)


# ---- strings ----------------------------------------------------------------

SPECIAL_CHARS = ([chr(c) for c in range(0x20)] + ["\x7f", '"', "\\", "/", "\u2028", "\u2029",
                 "\u0080", "\u009f", "\u00a0", "\u00e9", "\u07ff", "\u0800", "\ud7ff",
                 "\ue000", "\uf8ff", "\ufb33", "\ufeff", "\ufffd", "\uffff", "\U00010000",
                 "\U0001f600", "\U0001f602", "\U0010ffff", "<", ">", "&", "'"])


def random_char():
    kind = rng.random()
    if kind < 0.4:
        return chr(rng.randint(0x20, 0x7e))
    if kind < 0.55:
        return rng.choice(SPECIAL_CHARS)
    if kind < 0.75:
        while True:
            c = rng.randint(0x80, 0xFFFF)
            if not 0xD800 <= c <= 0xDFFF:
                return chr(c)
    if kind < 0.9:
        return chr(rng.randint(0x10000, 0x10FFFF))
    return chr(rng.randint(0xE000, 0xFFFF))


def random_string(maxlen=12):
    return "".join(random_char() for _ in range(rng.randint(0, maxlen)))


def random_key():
    # Short keys drawn from a small alphabet collide on prefixes and exercise
    # the UTF-16 vs code point difference (U+E000..U+FFFF vs U+10000..).
    # No U+0000: jansson refuses NUL in object keys (an invalid vector).
    alphabet = ["a", "b", "A", "1", "\u00e9", "\ue000", "\uffff", "\U00010000",
                "\U0001f600", "\U0010ffff", "\x01", "\n", "\x7f", "\u2028"]
    if rng.random() < 0.5:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
    return random_string(8).replace("\x00", "\x01")


# ---- documents --------------------------------------------------------------

def random_value(depth):
    kind = rng.random()
    if depth < 6 and kind < 0.25:
        n = rng.randint(0, 6)
        obj = {}
        for _ in range(n):
            obj[random_key()] = random_value(depth + 1)
        return obj
    if depth < 6 and kind < 0.4:
        return [random_value(depth + 1) for _ in range(rng.randint(0, 6))]
    if kind < 0.55:
        return random_float()
    if kind < 0.7:
        return random_int()
    if kind < 0.9:
        return random_string()
    return rng.choice([True, False, None])


def key_order_doc():
    keys = set()
    pool = ["", "a", "aa", "ab", "b", "\u00e9", "\u0800", "\ud7ff", "\ue000", "\uf8ff",
            "\ufb33", "\uffff", "\U00010000", "\U0001f600", "\U0001f602", "\U0010ffff",
            "a\ue000", "a\U00010000", "\U00010000a", "\ue000a", "\x01", "\x1f", "\x7f", "~"]
    while len(keys) < rng.randint(3, 14):
        if rng.random() < 0.6:
            keys.add(rng.choice(pool))
        else:
            keys.add(rng.choice(pool) + rng.choice(pool))
    keys = list(keys)
    rng.shuffle(keys)
    return {k: rng.randint(0, 99) for k in keys}


def every_control_doc():
    chars = "".join(chr(c) for c in range(0x20)) + '\x7f"\\/\u2028\u2029'
    return {chars[1:]: chars, "each": {chr(c): chr(c) for c in range(1, 0x20)}, "nul": "\x00",
            "del\x7f": ["\x7f", "\\", '"', "/", "\u2028", "\u2029"]}


def nested_doc(depth, obj):
    v = rng.choice([1, "x", None, 1.5])
    for i in range(depth):
        v = {"k%d" % i: v} if obj else [v]
    return v


def dumps_input(doc):
    """An input spelling of doc: the parser has to cope with all of them."""
    style = rng.random()
    ensure_ascii = rng.random() < 0.5
    if style < 0.3:
        return json.dumps(doc, ensure_ascii=ensure_ascii, indent=2)
    if style < 0.4:
        return json.dumps(doc, ensure_ascii=ensure_ascii, indent="\t")
    if style < 0.7:
        return json.dumps(doc, ensure_ascii=ensure_ascii)
    return json.dumps(doc, ensure_ascii=ensure_ascii, separators=(",", ":"))


def random_number_literal():
    """A JSON number spelled the many ways the grammar allows."""
    while True:
        sign = "-" if rng.random() < 0.4 else ""
        nd = rng.choice([1, 1, 2, 5, 10, 17, 18, 19, 25, 40])
        intpart = "0" if rng.random() < 0.2 else str(rng.randint(1, 9)) + "".join(
            rng.choice("0123456789") for _ in range(nd - 1))
        frac = ""
        if rng.random() < 0.5:
            frac = "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 25)))
        exp = ""
        if rng.random() < 0.5:
            exp = rng.choice("eE") + rng.choice(["", "+", "-"]) + rng.choice(
                ["0", "00", "1", "7", "21", "020", "300", "308", "309", "320", "324", "330"])
        lit = sign + intpart + frac + exp
        if not frac and not exp and not -(2 ** 63) <= int(lit) <= 2 ** 63 - 1:
            continue  # out of json_int_t range: an invalid vector, not this set
        if not math.isfinite(float(lit)):
            continue  # overflows a double: an invalid vector too
        return lit


FIXED_LITERALS = ["0", "-0", "0.0", "-0.0", "0e0", "-0E-0", "1E30", "4.50", "2e-3",
                  "0.000000000000000000000000001", "333333333.33333329", "1e-400", "-1e-400",
                  "1e21", "1E+21", "100000000000000000000.0", "999999999999999999999e0",
                  "9007199254740993", "-9007199254740993", "9007199254740993.0",
                  "9223372036854775807", "-9223372036854775808", "1e007", "1.0e-7",
                  "0.0000001", "0.000001", "1e16", "1e-5", "0.00001", "0.0001",
                  "2.4703282292062328e-324", "2.4703282292062327e-324",
                  "1.7976931348623157e308", "4.9406564584124654e-324"]


def build_cases():
    cases = []  # (name, text)

    def add(cat, text):
        cases.append(("%03d-%s" % (len(cases), cat), text))

    add("every-control", dumps_input(every_control_doc()))
    add("every-control-ascii", json.dumps(every_control_doc()))
    add("every-control-raw", json.dumps(every_control_doc(), ensure_ascii=False))
    for lits in (FIXED_LITERALS[i:i + 12] for i in range(0, len(FIXED_LITERALS), 12)):
        add("literals-fixed", "[" + ", ".join(lits) + "]")
    add("boundary-floats", json.dumps(BOUNDARY_FLOATS))
    add("boundary-ints", json.dumps(BOUNDARY_INTS))
    add("depth-64-array", json.dumps(nested_doc(MAX_DEPTH, False)))
    add("depth-64-object", json.dumps(nested_doc(MAX_DEPTH, True), indent=1))
    add("scalar-string", json.dumps("\U0001f600\u2028\x7f"))
    add("scalar-float", "1e+16")
    add("scalar-int", "-9223372036854775808")
    add("scalar-null", " null ")
    add("empty-object", "{}")
    add("empty-array", "[ ]")
    for _ in range(40):
        add("floats-bits", dumps_input([random_bits_double() for _ in range(20)]))
    for _ in range(30):
        add("floats-decimal", dumps_input([random_decimal_double() for _ in range(20)]))
    for _ in range(10):
        add("floats-subnormal", dumps_input([random_subnormal() for _ in range(10)]))
    for _ in range(20):
        add("ints", dumps_input({random_key(): random_int() for _ in range(15)}))
    for _ in range(30):
        ws = rng.choice(["", " ", "\n", "\t", " \r\n "])
        add("literals", "[" + ("," + ws).join(random_number_literal() for _ in range(15)) + "]")
    for _ in range(40):
        add("strings", dumps_input({random_key(): random_string(16) for _ in range(8)}))
    for _ in range(40):
        add("key-order", dumps_input(key_order_doc()))
    for _ in range(70):
        add("mixed", dumps_input({random_key(): random_value(1) for _ in range(6)}))
    return cases


# ---- invalid inputs -----------------------------------------------------------
# (name, input bytes, expected "gov_err_code reason")

INVALID = [
    ("int-too-big", b"9223372036854775808", "unsupported number_out_of_range"),
    ("int-too-small", b"-9223372036854775809", "unsupported number_out_of_range"),
    ("int-2-64-nested", b'{"a":[1,{"b":18446744073709551616}]}', "unsupported number_out_of_range"),
    ("real-overflow", b"1e400", "unsupported number_out_of_range"),
    ("real-overflow-negative", b"[-1.8e308]", "unsupported number_out_of_range"),
    ("duplicate-key", b'{"a":1,"a":2}', "parse_error duplicate_key"),
    ("duplicate-key-escaped", b'{"a":1,"\\u0061":2}', "parse_error duplicate_key"),
    ("duplicate-key-nested", b'[{"x":{"k":1,"k":1}}]', "parse_error duplicate_key"),
    ("nul-in-key", b'{"a\\u0000":1}', "unsupported nul_in_key"),
    ("lone-lead-surrogate", b'"\\ud800"', "parse_error invalid_utf8"),
    ("lone-trail-surrogate", b'["\\udc00"]', "parse_error invalid_utf8"),
    ("reversed-surrogates", b'"\\ude00\\ud83d"', "parse_error invalid_utf8"),
    ("raw-invalid-utf8", b'"\xff"', "parse_error invalid_utf8"),
    ("raw-overlong-utf8", b'"\xc0\xaf"', "parse_error invalid_utf8"),
    ("raw-encoded-surrogate", b'"\xed\xa0\x80"', "parse_error invalid_utf8"),
    ("trailing-garbage", b"{} x", "parse_error trailing_garbage"),
    ("two-documents", b"[1] [2]", "parse_error trailing_garbage"),
    ("nan", b"NaN", "parse_error syntax"),
    ("infinity", b"[Infinity]", "parse_error syntax"),
    ("empty", b"", "parse_error syntax"),
    ("whitespace-only", b" \n", "parse_error syntax"),
    ("trailing-comma", b"[1,]", "parse_error syntax"),
    ("leading-zero", b"01", "parse_error syntax"),
    ("raw-control-in-string", b'"a\x01"', "parse_error syntax"),
    # jansson 2.14 alone would drop a NUL byte after a number or literal.
    ("nul-after-number", b"[1.5\x00,2]", "parse_error syntax"),
    ("nul-after-literal", b"true\x00", "parse_error trailing_garbage"),
    ("nul-after-scalar", b"3\x00", "parse_error trailing_garbage"),
    ("single-quotes", b"{'a':1}", "parse_error syntax"),
    ("utf8-bom", b"\xef\xbb\xbf{}", "parse_error syntax"),
    ("unterminated", b'{"a":', "parse_error syntax"),
    ("too-deep-array", b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "too_large too_deep"),
    ("too-deep-object", b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1),
     "too_large too_deep"),
    ("too-deep-mixed", b'[{"a":' * 33 + b"[]" + b"}]" * 33, "too_large too_deep"),
]


def python_verdict(data):
    """What CPython's json.loads + json.dumps makes of the same bytes."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        return "python rejects: %s: %s\n" % (type(e).__name__, str(e).splitlines()[0])
    return "python accepts: %s\n" % json.dumps(doc, sort_keys=True, separators=(",", ":"))


# ---- node cross-check -----------------------------------------------------------

NODE_SCRIPT = r"""
import canonicalize from %s;
import fs from 'fs';
const req = JSON.parse(fs.readFileSync(0, 'utf8'));
const docs = req.docs.map((t) => canonicalize(JSON.parse(t)));
const nums = req.nums.map((h) => String(Buffer.from(h, 'hex').readDoubleBE(0)));
process.stdout.write(JSON.stringify({docs, nums}));
"""


def node_check(js_path, texts, hexes):
    script = NODE_SCRIPT % json.dumps("file://" + os.path.abspath(js_path))
    req = json.dumps({"docs": texts, "nums": hexes})
    out = subprocess.run(["node", "--input-type=module", "-e", script], input=req.encode(),
                         capture_output=True, check=True)
    return json.loads(out.stdout)


# ---- output -------------------------------------------------------------------

def number_rows():
    seen = set()
    values = []

    def add(x):
        b = bits_of(x)
        if math.isfinite(x) and b not in seen:
            seen.add(b)
            values.append(x)

    for e in range(-1074, 1024):  # every power of two: the lopsided rounding intervals
        add(math.ldexp(1.0, e))
    for x in BOUNDARY_FLOATS:
        add(x)
    for _ in range(1500):
        add(random_bits_double())
    for _ in range(700):
        add(random_decimal_double())
    for _ in range(200):
        add(random_subnormal())
    for _ in range(300):
        add(-math.ldexp(1.0, rng.randint(-1074, 1023)))
    return values


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--canonicalize-js", help="path to the npm package canonicalize's "
                    "lib/canonicalize.js: cross-check every JCS output with node")
    args = ap.parse_args()

    gen_dir = os.path.join(HERE, "generated")
    inv_dir = os.path.join(HERE, "invalid")
    for d in (gen_dir, inv_dir):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)

    cases = build_cases()
    texts, jcs_outs = [], []
    for name, text in cases:
        data = text.encode("utf-8")
        soma = json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode("ascii")
        jcs = rfc8785.dumps(json.loads(data, parse_int=float))
        d = os.path.join(gen_dir, name)
        os.makedirs(d)
        write(os.path.join(d, "input.json"), data)
        write(os.path.join(d, "somabrain.out"), soma)
        write(os.path.join(d, "jcs.out"), jcs)
        sums = ""
        for kind, out in (("jcs", jcs), ("somabrain-json", soma)):
            sums += "%s sha3-512 %s\n" % (kind, hashlib.sha3_512(out).hexdigest())
            sums += "%s sha256 %s\n" % (kind, hashlib.sha256(out).hexdigest())
        write(os.path.join(d, "checksums"), sums.encode())
        texts.append(text)
        jcs_outs.append(jcs)
    write(os.path.join(gen_dir, "MANIFEST"), "".join(n + "\n" for n, _ in cases).encode())

    values = number_rows()
    hexes = ["%016x" % bits_of(x) for x in values]
    es6 = [rfc8785.dumps(x).decode() for x in values]
    rows = "# hex es6 pyrepr - es6 from rfc8785, pyrepr from CPython repr()\n"
    rows += "".join("%s %s %s\n" % (h, e, repr(x)) for h, e, x in zip(hexes, es6, values))
    write(os.path.join(HERE, "numbers.txt"), rows.encode())

    for name, data, expect in INVALID:
        d = os.path.join(inv_dir, name)
        os.makedirs(d)
        write(os.path.join(d, "input.json"), data)
        write(os.path.join(d, "expect"), (expect + "\n").encode())
        write(os.path.join(d, "python"), python_verdict(data).encode())
    write(os.path.join(inv_dir, "MANIFEST"), "".join(n + "\n" for n, _, _ in INVALID).encode())

    if args.canonicalize_js:
        got = node_check(args.canonicalize_js, texts, hexes)
        bad = [cases[i][0] for i, s in enumerate(got["docs"]) if s.encode() != jcs_outs[i]]
        bad += [hexes[i] for i, s in enumerate(got["nums"]) if s != es6[i]]
        if bad:
            sys.exit("node canonicalize disagrees with rfc8785 on: %s" % ", ".join(bad[:20]))
        print("node canonicalize agrees on all %d documents and %d numbers"
              % (len(texts), len(hexes)))
    print("wrote %d cases, %d numbers, %d invalid inputs" % (len(cases), len(values), len(INVALID)))


if __name__ == "__main__":
    main()
