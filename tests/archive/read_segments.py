"""tests/archive/read_segments.py DIR TENANT SCHEMA - reads a tenant's archived segments with
fastavro, an Avro implementation independent of the writer (avro-c) and of our reader.

Checks, per file in name order: fastavro reads it as an Object Container File whose writer
schema resolves against schemas/AuditChainEntry.avsc; its records' seqs are the range its name
says; each record's hash is SHA-256 of the chain recipe (docs/contracts.md, "Audit chain
entries", recomputed here with hashlib) and links to the record before it, across files, from
genesis. Prints "segments=<n> records=<n> first=<seq> last=<seq> start=<prev_hash of the first>
end=<hash of the last>" and exits 0, or prints the problem and exits 1."""
import hashlib
import json
import os
import re
import sys

import fastavro

GENESIS = "0" * 64


def lp(value):
    data = value.encode() if isinstance(value, str) else value
    return str(len(data)).encode() + b":" + data


def chain_hash(r):
    h = hashlib.sha256(b"soma-audit-v1")
    for part in (r["prev_hash"], str(r["seq"]), r["event_id"], r["type"],
                 str(r["occurred_at"]), r["source"], r["payload"]):
        h.update(lp(part))
    return h.hexdigest()


def main():
    directory, tenant, schema_path = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(schema_path) as f:
        reader_schema = fastavro.parse_schema(json.load(f))
    names = sorted(n for n in os.listdir(os.path.join(directory, tenant))
                   if re.fullmatch(r"\d{20}-\d{20}\.avro", n))
    prev, expect, records, start = GENESIS, 1, 0, None
    for name in names:
        first, last = (int(x) for x in name[:-5].split("-"))
        with open(os.path.join(directory, tenant, name), "rb") as f:
            for r in fastavro.reader(f, reader_schema=reader_schema):
                if r["tenant"] != tenant or r["seq"] != expect:
                    print(f"{name}: seq {r['seq']} where {expect} belongs")
                    return 1
                if r["prev_hash"] != prev or chain_hash(r) != r["hash"]:
                    print(f"{name}: seq {r['seq']} does not hash or link")
                    return 1
                if start is None:
                    start = r["prev_hash"]
                prev, expect, records = r["hash"], expect + 1, records + 1
        if expect - 1 != last or first > last:
            print(f"{name}: ends at seq {expect - 1}")
            return 1
    print(f"segments={len(names)} records={records} first={1 if records else 0} "
          f"last={expect - 1} start={start} end={prev}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
