#!/usr/bin/env python3
"""Regenerates the registry known-answer vectors with the Apache Avro Python
library (the reference implementation, PyPI package "avro"; the checked-in
files were made with avro 1.12.2).  Nothing here uses libgov: the point is an
independent implementation to check ours against.

For every schemas/<Name>.avsc it writes, under tests/vectors/avro/registry/:
  <Name>/canonical    the Parsing Canonical Form (avro.schema canonical_form)
  <Name>/fingerprint  CRC-64-AVRO of it, as unsigned 16-digit hex
and for every hand-written <Name>/<case>/event.json:
  <Name>/<case>/message.bin   C3 01 | fingerprint (little-endian) | body,
                              body written by avro.io.DatumWriter
  <Name>/<case>/decoded.json  what avro.io.DatumReader reads back from body

Everything is computed from the schema with its "logicalType" attributes
removed, for two reasons:
  - libgov maps timestamp-micros to plain integer microseconds, while the
    Python library wants datetime objects (which cannot hold the extreme
    values some vectors use).  Logical types do not change the binary encoding.
  - avro-python 1.12.2 writes a long with a logicalType as {"type":"long"} in
    its canonical form.  The spec's PRIMITIVES rule and the Java reference
    implementation (SchemaNormalization.build emits the bare primitive name,
    "long") do not; the Java implementation is the one the Avro project's own
    share/test/data/schema-tests.txt fingerprints are checked against.  With
    logicalType removed first, the Python output is the Java/spec answer.

Usage (from the repository root, in a virtualenv with `pip install avro`):
  python3 tests/vectors/avro/registry/generate.py
"""
import io
import json
import os
import struct
import sys

import avro.io
import avro.schema

ROOT = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(ROOT, "..", "..", "..", "..", "schemas")


def without_logical_types(node):
    if isinstance(node, dict):
        return {k: without_logical_types(v) for k, v in node.items()
                if k != "logicalType"}
    if isinstance(node, list):
        return [without_logical_types(v) for v in node]
    return node


def main() -> int:
    for fname in sorted(os.listdir(SCHEMAS)):
        if not fname.endswith(".avsc"):
            continue
        name = fname[: -len(".avsc")]
        with open(os.path.join(SCHEMAS, fname), encoding="utf-8") as f:
            text = f.read()
        schema = avro.schema.parse(json.dumps(without_logical_types(json.loads(text))))
        fp_le = schema.fingerprint("CRC-64-AVRO")
        outdir = os.path.join(ROOT, name)
        os.makedirs(outdir, exist_ok=True)
        with open(os.path.join(outdir, "canonical"), "w", encoding="utf-8") as f:
            f.write(schema.canonical_form + "\n")
        with open(os.path.join(outdir, "fingerprint"), "w") as f:
            f.write("%016x\n" % struct.unpack("<Q", fp_le)[0])
        for case in sorted(os.listdir(outdir)):
            event_path = os.path.join(outdir, case, "event.json")
            if not os.path.isfile(event_path):
                continue
            with open(event_path, encoding="utf-8") as f:
                event = json.load(f)
            body = io.BytesIO()
            avro.io.DatumWriter(schema).write(event, avro.io.BinaryEncoder(body))
            with open(os.path.join(outdir, case, "message.bin"), "wb") as f:
                f.write(b"\xc3\x01" + fp_le + body.getvalue())
            decoded = avro.io.DatumReader(schema).read(
                avro.io.BinaryDecoder(io.BytesIO(body.getvalue())))
            with open(os.path.join(outdir, case, "decoded.json"), "w",
                      encoding="utf-8") as f:
                json.dump(decoded, f, ensure_ascii=False, indent=2)
                f.write("\n")
            print(name, case, len(body.getvalue()), "body bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
