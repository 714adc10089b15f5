"""tests/vectors/archive/generate.py - known-answer segments for tests/unit/test_archive_segment.c,
written by fastavro (an Avro implementation independent of avro-c, which writes the real
segments, and of common/core/gov_archive_segment.c, which reads them):

  valid-3.avro       3 chained records of tenant "t1" (seq 1..3, from genesis), codec null,
                     schema schemas/AuditChainEntry.avsc, two blocks (sync_interval small)
  deflate.avro       the same records, codec deflate (refused: gov-archive writes null only)
  other-schema.avro  a record of another schema (refused)
  expected.txt       "<seq> <hash>" per record of valid-3.avro, hashes by hashlib

Run from the repository root with a venv holding fastavro (tests/archive/install.sh):
  "$(bash tests/archive/install.sh)/bin/python" tests/vectors/archive/generate.py
"""
import hashlib
import json
import os

import fastavro

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")


def lp(v):
    b = v.encode()
    return str(len(b)).encode() + b":" + b


def chain_hash(r):
    h = hashlib.sha256(b"soma-audit-v1")
    for part in (r["prev_hash"], str(r["seq"]), r["event_id"], r["type"], str(r["occurred_at"]),
                 r["source"], r["payload"]):
        h.update(lp(part))
    return h.hexdigest()


def records():
    prev, out = "0" * 64, []
    for seq in (1, 2, 3):
        r = {"tenant": "t1", "seq": seq, "event_id": f"0190a0a0-0000-7000-8000-00000000000{seq}",
             "type": "AuditEvent", "occurred_at": 1700000000000000 + seq,
             "source": f"identity.audit/0/{seq - 1}",
             "payload": json.dumps({"action": "x", "n": seq}, separators=(",", ":"), sort_keys=True),
             "prev_hash": prev, "hash": ""}
        r["hash"] = chain_hash(r)
        prev = r["hash"]
        out.append(r)
    return out


def main():
    with open(os.path.join(ROOT, "schemas", "AuditChainEntry.avsc")) as f:
        schema = fastavro.parse_schema(json.load(f))
    recs = records()
    sync = bytes(range(16))  # fixed, so the files are reproducible
    with open(os.path.join(HERE, "valid-3.avro"), "wb") as f:
        w = fastavro.write.Writer(f, schema, codec="null", sync_interval=1, sync_marker=sync)
        for r in recs:
            w.write(r)
        w.flush()
    with open(os.path.join(HERE, "deflate.avro"), "wb") as f:
        fastavro.writer(f, schema, recs, codec="deflate", sync_marker=sync)
    other = fastavro.parse_schema({"type": "record", "name": "Other", "fields": [{"name": "a", "type": "long"}]})
    with open(os.path.join(HERE, "other-schema.avro"), "wb") as f:
        fastavro.writer(f, other, [{"a": 1}], codec="null", sync_marker=sync)
    with open(os.path.join(HERE, "expected.txt"), "w") as f:
        for r in recs:
            f.write(f"{r['seq']} {r['hash']}\n")


if __name__ == "__main__":
    main()
