#!/usr/bin/env python3
"""Signed rule packs, by an implementation independent of ours.

The scheme (docs/contracts.md, "Signed rule packs"): the pack's canonical JSON is
the pack with its "rules" sorted by id, serialized as RFC 8785 (for the ASCII
strings, integers and short decimals used here that is json.dumps with sorted
keys, no whitespace); the signed message is the ASCII lowercase SHA-256 hex of
those bytes; each operator signs it with Ed25519.  The keys are the secret keys
of RFC 8032 section 7.1, tests 1 and 2, so the signatures are reproducible
(Ed25519 is deterministic) and the files here never change when re-run.

Writes, under signed/:
  pack.json        the pack as an operator wrote it (rules out of order, spaces)
  canonical.json   its canonical JSON (no trailing newline)
  sha256           the SHA-256 hex of canonical.json (the signed message)
  trust.json       ops-1 (RFC 8032 key 1) and ops-2 (key 2) for tenant demo, threshold 2
  signatures.json  ops-1's signature in hex, ops-2's in base64 (both forms verify)

tests/unit/test_rulepack.c checks libgov against every file.
Run: python3 gen.py   (needs: pip install cryptography)
"""
import base64, hashlib, json, os
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "signed")
os.makedirs(here, exist_ok=True)

RFC8032 = {
    "ops-1": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "ops-2": "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
}
keys = {s: Ed25519PrivateKey.from_private_bytes(bytes.fromhex(h)) for s, h in RFC8032.items()}

pack_text = """{
  "pack_id": "signed-demo",
  "tenant": "demo",
  "version": "2.1.0",
  "thresholds": {"max_risk_score": 0.7},
  "rules": [
    {"id": "secrets.password", "severity": "critical", "weight": 0.5, "effect": "add",
     "message": "password", "match": {"prompt": [{"literal": "password", "case_insensitive": true}]}},
    {"id": "pii.email", "severity": "high", "weight": 0.35, "effect": "add",
     "message": "e-mail address", "match": {"prompt": [{"regex": "[a-z]+@[a-z]+\\\\.com"}]}}
  ]
}
"""
pack = json.loads(pack_text)
pack["rules"].sort(key=lambda r: r["id"].encode())
canonical = json.dumps(pack, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
digest = hashlib.sha256(canonical.encode()).hexdigest()

trust = {"signers": {
    s: k.public_key().public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    for s, k in keys.items()},
    "tenants": {"demo": {"threshold": 2, "signers": ["ops-1", "ops-2"]}}}
sigs = [
    {"signer_id": "ops-1", "algorithm": "ed25519",
     "signature": keys["ops-1"].sign(digest.encode("ascii")).hex()},
    {"signer_id": "ops-2", "algorithm": "ed25519",
     "signature": base64.b64encode(keys["ops-2"].sign(digest.encode("ascii"))).decode()},
]
files = {"pack.json": pack_text, "canonical.json": canonical, "sha256": digest + "\n",
         "trust.json": json.dumps(trust, indent=2) + "\n",
         "signatures.json": json.dumps(sigs, indent=2) + "\n"}
for name, text in files.items():
    with open(os.path.join(here, name), "w") as f:
        f.write(text)
print(digest)
