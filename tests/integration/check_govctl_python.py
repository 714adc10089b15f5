#!/usr/bin/env python3
"""check_govctl_python.py - an independent check of a bundle signed by `govctl sign`.

Nothing of libgov is used here: the checksum is recomputed the way SomaBrain computes it
(docs/contracts.md, canonicalization "somabrain-json"): CPython's

    json.dumps(document, sort_keys=True, separators=(",", ":"))   # ensure_ascii=True

hashed with hashlib (sha3_512 or sha256 per the bundle's hash_alg), and the signer's Ed25519
signature over the ASCII checksum hex is verified with the `cryptography` package against the
public key that `govctl keygen` wrote (SubjectPublicKeyInfo PEM).

Usage: check_govctl_python.py PUB.pem BUNDLE.json [SIGNER_ID]
       SIGNER_ID defaults to the name of PUB.pem without ".pub".

Exit 0: the stated checksum equals the recomputed one, and the signer's entry is
        {"algorithm": "ed25519", "signature": <128 lowercase hex>} and verifies.
Exit 1: a check failed (the reason on stderr).
Exit 2: usage error, or a bundle this checker does not cover (canonicalization other than
        somabrain-json).
Exit 3: python3's `cryptography` package is missing (Debian: python3-cryptography).
"""
import hashlib
import json
import os
import re
import sys

PROG = "check_govctl_python.py"


def fail(msg, code=1):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(code)


def main(argv):
    if len(argv) not in (3, 4):
        fail("usage: check_govctl_python.py PUB.pem BUNDLE.json [SIGNER_ID]", 2)
    pub_path, bundle_path = argv[1], argv[2]
    signer = argv[3] if len(argv) == 4 else os.path.basename(pub_path).removesuffix(".pub")
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError as e:
        fail(f"the Python package 'cryptography' is required ({e}); "
             "on Debian: apt-get install python3-cryptography", 3)

    with open(pub_path, "rb") as f:
        key = load_pem_public_key(f.read())
    if not isinstance(key, Ed25519PublicKey):
        fail(f"{pub_path} is not an Ed25519 public key")
    with open(bundle_path, "rb") as f:
        bundle = json.loads(f.read().decode("utf-8"))

    if bundle.get("canonicalization") != "somabrain-json":
        fail(f"canonicalization {bundle.get('canonicalization')!r} is not covered here", 2)
    algs = {"sha3-512": hashlib.sha3_512, "sha256": hashlib.sha256}
    alg = bundle.get("hash_alg")
    if alg not in algs:
        fail(f"hash_alg {alg!r} is not sha3-512 or sha256")
    text = json.dumps(bundle["document"], sort_keys=True, separators=(",", ":"))
    checksum = algs[alg](text.encode("ascii")).hexdigest()
    if bundle.get("checksum") != checksum:
        fail(f"checksum mismatch: the bundle states {bundle.get('checksum')!r}, "
             f"{alg} of json.dumps(document) is {checksum!r}")

    entries = [s for s in bundle.get("signatures", []) if s.get("signer_id") == signer]
    if len(entries) != 1:
        fail(f"{len(entries)} signature entries of signer {signer!r} (want exactly 1)")
    entry = entries[0]
    if entry.get("algorithm") != "ed25519":
        fail(f"algorithm {entry.get('algorithm')!r} is not ed25519")
    sig = entry.get("signature", "")
    if not re.fullmatch(r"[0-9a-f]{128}", sig):
        fail("the signature is not 128 lowercase hex characters")
    try:
        key.verify(bytes.fromhex(sig), checksum.encode("ascii"))
    except InvalidSignature:
        fail(f"the signature of {signer!r} does not verify over the checksum hex")
    print(f"OK signer={signer} {alg}={checksum}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
