#!/usr/bin/env python3
"""Bundles signed the way SomaBrain signs them, by an implementation independent of ours.

SomaBrain's scheme (docs/contracts.md, "Constitution bundles"): checksum = hex(sha3_512(json.dumps(document,
sort_keys=True, separators=(",", ":")))) with Python's default ensure_ascii=True, and each
signer's Ed25519 signature over the ASCII checksum hex. This script does exactly that with
CPython's json and hashlib and the `cryptography` package, and writes:

  somabrain/trust.json           the signers' public keys (PEM); tenant demo, threshold 2
  somabrain/bundle-*.json        signed bundles (hex and base64 signatures)

The C unit test (tests/unit/test_constitution.c) must accept every bundle-*.json here.
Run: python3 gen.py   (needs: pip install cryptography)
"""
import base64, hashlib, json, os
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "somabrain")
os.makedirs(here, exist_ok=True)

signers = ["human_operator", "somabrain_root", "ethics_board"]
keys = {s: Ed25519PrivateKey.generate() for s in signers}
# Per-tenant trust: tenant demo, threshold 2; it takes unbound documents
# because two of SomaBrain's vectors name no tenant (SomaBrain's is global).
trust = {"signers": {
    s: k.public_key().public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    for s, k in keys.items()},
    "tenants": {"demo": {"threshold": 2, "signers": sorted(signers), "unbound_documents": True}}}
with open(os.path.join(here, "trust.json"), "w") as f:
    json.dump(trust, f, indent=2)

def somabrain_checksum(doc, alg):
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return (hashlib.sha3_512 if alg == "sha3-512" else hashlib.sha256)(text.encode()).hexdigest()

documents = {
    "plain": {"version": "1.0.0", "tenant": "demo", "title": "Demo constitution",
              "rules": {"prohibited_actions": ["exfiltrate_data", "disable_audit"],
                        "permitted_tool_categories": ["search", "calculator"],
                        "max_risk_score": 0.8, "require_human_approval_above_risk": 0.5},
              "governance": {"signature_threshold": 2,
                             "valid_signers": ["human_operator", "somabrain_root", "ethics_board"]}},
    # Non-ASCII (escaped as \uXXXX by ensure_ascii), a non-BMP character (surrogate pair),
    # floats whose repr differs from other formatters, big exact integers, nesting.
    "unicode-floats": {"version": 7, "préambule": "Les agents doivent être honnêtes \U0001F916",
                       "weights": [0.1, 1e-05, 1e16, 1.5e+300, -0.0, 2.5, 100.0, 1e-7],
                       "limits": {"max_tokens": 9007199254740993, "neg": -42},
                       "controls": "tab\there\nnewline \"quoted\" back\\slash \x7f del \x01",
                       "rules": {"max_risk_score": 0.75, "require_human_approval_above_risk": 0.4,
                                 "prohibited_actions": [], "permitted_tool_categories": ["search"]}},
}

for name, doc in documents.items():
    for alg in ("sha3-512", "sha256"):
        checksum = somabrain_checksum(doc, alg)
        sigs = []
        for i, s in enumerate(["human_operator", "somabrain_root"]):
            raw = keys[s].sign(checksum.encode("ascii"))
            enc = raw.hex() if i == 0 else base64.b64encode(raw).decode()
            sigs.append({"signer_id": s, "algorithm": "ed25519", "signature": enc})
        bundle = {"tenant": "demo", "document": doc, "canonicalization": "somabrain-json",
                  "hash_alg": alg, "checksum": checksum, "signatures": sigs}
        with open(os.path.join(here, f"bundle-{name}-{alg}.json"), "w") as f:
            # ensure_ascii=False on purpose: the document must be re-canonicalized, not trusted as sent
            json.dump(bundle, f, ensure_ascii=False, indent=1)
print("wrote", sorted(os.listdir(here)))
